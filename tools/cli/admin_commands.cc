// sluice status | node list | gc
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <optional>
#include <thread>

#include "client/progress.h"
#include "common/core/copy_rate.h"
#include "common/core/units.h"
#include "common/wire/meta_generated.h"
#include "common/wire/storage_generated.h"
#include "tools/cli/commands.h"
#include "tools/cli/output.h"

namespace sluice::cli {
namespace {

namespace meta = wire::meta;
namespace storage = wire::storage;

// One storage-node RPC from the CLI.
template <typename Req, typename Resp>
Result<std::unique_ptr<typename Resp::NativeTableType>> storageCall(client::Cluster& c, client::NodeId node,
                                                                    storage::StorageMethod method,
                                                                    const typename Req::NativeTableType& req,
                                                                    const std::string& what) {
  SLUICE_ASSIGN_OR_RETURN(net::PeerId peer, c.nodePeer(node));
  return wire::typedCall<Req, Resp>(c.endpoint(), peer,
                                    net::makeOpcode(net::ServiceId::kStorage, static_cast<uint8_t>(method)), req,
                                    what + " node " + std::to_string(node), c.timeout());
}
using client::ProgressMeter;

// Bytes the pending moves still have to copy: each stripe's size on the
// node it is copied from (a node that does not answer counts 0).
uint64_t pendingMoveBytes(client::Cluster& c, const meta::ListMovesResponseT& moves) {
  std::map<uint64_t, std::vector<uint32_t>> by_source;
  for (const auto& m : moves.moves) by_source[m->source].push_back(m->stripe);
  uint64_t bytes = 0;
  for (const auto& [source, stripes] : by_source) {
    storage::StripeStatsRequestT req;
    req.stripes = stripes;
    auto r = storageCall<storage::StripeStatsRequest, storage::StripeStatsResponse>(
        c, source, storage::StorageMethod::StripeStats, req, "StripeStats");
    if (!r.isOk()) continue;
    for (const auto& st : (*r)->stats) bytes += st.bytes();
  }
  return bytes;
}

std::string stateName(meta::NodeState s) {
  switch (s) {
    case meta::NodeState::Up: return "up";
    case meta::NodeState::Draining: return "draining";
    case meta::NodeState::Down: return "down";
    case meta::NodeState::Removed: return "removed";
  }
  return "unknown";
}

std::string ago(int64_t ms) {
  if (ms <= 0) return "never";
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  return ProgressMeter::formatDuration(static_cast<double>(std::max<int64_t>(0, now - ms)) / 1000) + " ago";
}

// Only the first R slots of a stripe hold data, R the largest replication
// of any dataset.
Result<uint32_t> dataSlots(client::Cluster& cluster) {
  uint32_t slots = 0;
  std::string cursor;
  do {
    meta::ListDatasetsRequestT req;
    req.cursor = cursor;
    SLUICE_ASSIGN_OR_RETURN(auto ds, (cluster.meta<meta::ListDatasetsRequest, meta::ListDatasetsResponse>(
                                         meta::MetaMethod::ListDatasets, req, "ListDatasets")));
    for (const auto& d : ds->datasets) slots = std::max<uint32_t>(slots, d->replication);
    cursor = ds->datasets.empty() ? "" : ds->next_cursor;
  } while (!cursor.empty());
  return slots;
}

int status(Context& ctx, bool nodes_only) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  meta::GetClusterMapRequestT req;
  auto map = (*cluster)->meta<meta::GetClusterMapRequest, meta::GetClusterMapResponse>(
      meta::MetaMethod::GetClusterMap, req, "GetClusterMap");
  if (!map.isOk()) return reportError(map.status());
  const auto& m = **map;
  // Stripes whose data each node holds (its slot among the first R, R the
  // largest replication: slots past them hold nothing), and stripes that
  // list a node that is down (their chunks have a copy fewer until repair
  // moves them).
  std::map<uint64_t, uint64_t> primary, replicas;
  uint64_t under = 0;
  std::map<uint64_t, meta::NodeState> state;
  for (const auto& n : m.nodes) state[n->id] = n->state;
  auto slots = dataSlots(**cluster);
  if (!slots.isOk()) return reportError(slots.status());
  const uint32_t data_slots = *slots;
  for (uint32_t s = 0; s < m.stripe_count; ++s) {
    uint32_t live = 0;  // UINT32_MAX: the stripe lists a down node
    for (uint32_t i = 0; i < m.max_replicas; ++i) {
      uint64_t id = m.replicas[static_cast<size_t>(s) * m.max_replicas + i];
      if (id == 0 || i >= data_slots) continue;
      replicas[id]++;
      if (i == 0) primary[id]++;
      if (state[id] == meta::NodeState::Down && i < data_slots) live = UINT32_MAX;
    }
    if (live == UINT32_MAX) under++;
  }
  // Totals over the nodes in the cluster: removed ones are listed, not counted.
  uint64_t capacity = 0, used = 0, chunks = 0, up = 0, members = 0;
  for (const auto& n : m.nodes) {
    if (n->state == meta::NodeState::Removed) continue;
    members++;
    capacity += n->capacity_bytes;
    used += n->used_bytes;
    chunks += n->chunk_count;
    up += n->state == meta::NodeState::Up;
  }
  // Pending repair work, and data the mover found lost (an older meta, or
  // one that cannot answer, shows neither).
  meta::ListMovesRequestT mreq;
  auto moves = (*cluster)->meta<meta::ListMovesRequest, meta::ListMovesResponse>(meta::MetaMethod::ListMoves, mreq,
                                                                                 "ListMoves");
  std::vector<std::string> lost;  // the first 1,000
  uint64_t lost_count = 0;
  if (moves.isOk()) {
    for (const auto& h : (*moves)->lost_chunks) lost.push_back(Hash128{h.hi(), h.lo()}.toHex());
    lost_count = std::max<uint64_t>((*moves)->lost_chunk_count, lost.size());
  }
  if (ctx.json) {
    Json j;
    j.beginObject()
        .field("cluster_id", m.cluster_id ? Hash128{m.cluster_id->hi(), m.cluster_id->lo()}.toHex() : "")
        .field("epoch", m.epoch)
        .field("stripes", m.stripe_count)
        .field("max_replicas", m.max_replicas)
        .field("stripes_below_max_replicas", under)
        .field("capacity_bytes", capacity)
        .field("used_bytes", used)
        .field("chunks", chunks);
    j.field("lost_chunk_count", lost_count).beginArray("lost_chunks");
    for (const auto& hex : lost) j.value(hex);
    j.endArray();
    j.beginArray("nodes");
    for (const auto& n : m.nodes) {
      j.beginObject()
          .field("id", n->id)
          .field("address", n->address)
          .field("state", stateName(n->state))
          .field("capacity_bytes", n->capacity_bytes)
          .field("used_bytes", n->used_bytes)
          .field("chunks", n->chunk_count)
          .field("errors", n->error_count)
          .field("stripes", replicas[n->id])
          .field("primary_stripes", primary[n->id])
          .field("last_heartbeat_ms", n->last_heartbeat_ms)
          .endObject();
    }
    j.endArray().endObject();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  if (!nodes_only) {
    std::string id = m.cluster_id ? Hash128{m.cluster_id->hi(), m.cluster_id->lo()}.toHex() : "-";
    std::printf("cluster %s   map epoch %llu   %u stripes x up to %u replicas\n", id.substr(0, 12).c_str(),
                static_cast<unsigned long long>(m.epoch), m.stripe_count, m.max_replicas);
    std::printf("nodes   %llu up of %llu   used %s of %s   %s chunks\n",
                static_cast<unsigned long long>(up), static_cast<unsigned long long>(members),
                ProgressMeter::formatBytes(used).c_str(), ProgressMeter::formatBytes(capacity).c_str(),
                ProgressMeter::formatCount(chunks).c_str());
    if (under > 0) {
      std::printf("warning: %s stripes list a down node: their chunks have a copy fewer until repaired "
                  "(automatic after sluice-meta's repair_grace; now: 'sluice repair')\n",
                  ProgressMeter::formatCount(under).c_str());
    }
    if (lost_count > 0) {
      std::printf("LOST    %s chunk(s) in use have no good copy on any up node (found corrupt by scrub): reads of "
                  "the files with data in them fail. 'sluice scrub' names those files; bring back a node that "
                  "holds a copy, or upload the files again\n",
                  ProgressMeter::formatCount(lost_count).c_str());
    }
    if (moves.isOk() && (!(*moves)->moves.empty() || (*moves)->cleanups > 0)) {
      std::printf("repair  %zu stripe moves pending (%s to copy), %llu cleanups pending, %s copied since "
                  "sluice-meta started; follow with 'sluice repair --status'\n",
                  (*moves)->moves.size(), ProgressMeter::formatBytes(pendingMoveBytes(**cluster, **moves)).c_str(),
                  static_cast<unsigned long long>((*moves)->cleanups),
                  ProgressMeter::formatBytes((*moves)->bytes_copied).c_str());
    }
    std::printf("\n");
  }
  Table t({"NODE", "ADDRESS", "STATE", "CAPACITY", "USED", "USE%", "CHUNKS", "STRIPES", "ERRORS", "HEARTBEAT"},
          {true, false, false, true, true, true, true, true, true, false});
  for (const auto& n : m.nodes) {
    char pct[16];
    std::snprintf(pct, sizeof pct, "%.0f%%",
                  n->capacity_bytes ? 100.0 * static_cast<double>(n->used_bytes) / n->capacity_bytes : 0.0);
    t.addRow({std::to_string(n->id), n->address, stateName(n->state),
              ProgressMeter::formatBytes(n->capacity_bytes), ProgressMeter::formatBytes(n->used_bytes), pct,
              ProgressMeter::formatCount(n->chunk_count), std::to_string(replicas[n->id]),
              std::to_string(n->error_count), ago(n->last_heartbeat_ms)});
  }
  if (t.empty()) {
    std::printf("no storage nodes have registered yet\n");
  } else {
    std::fputs(t.render().c_str(), stdout);
  }
  return kExitOk;
}

// Deletes what no version references: meta tombstones a batch (no upload
// can reference those chunks again), then every node listing their stripes
// deletes its copies. Reports the bytes freed.
struct OrphanSweep {
  uint64_t copies = 0;
  uint64_t bytes = 0;
};

// Chunks on the nodes that meta knows nothing of — left by an upload that
// died before telling meta, or by a put that failed on another replica — are
// claimed from meta (tombstoned, so no late upload can name them) and
// deleted. Only chunks older than the grace: a running upload tells meta
// about its chunks within seconds of storing them.
Result<OrphanSweep> sweepOrphans(client::Cluster& c, uint64_t grace_s, bool dry_run) {
  OrphanSweep out;
  auto map = c.map();
  const uint64_t grace_ms = grace_s * 1000;
  for (const auto& n : map->nodes()) {
    if (n.state != meta::NodeState::Up && n.state != meta::NodeState::Draining) continue;
    storage::StripeStatsRequestT stats_req;
    SLUICE_ASSIGN_OR_RETURN(auto stats, (storageCall<storage::StripeStatsRequest, storage::StripeStatsResponse>(
                                            c, n.id, storage::StorageMethod::StripeStats, stats_req, "StripeStats")));
    std::vector<storage::Hash> candidates;
    std::map<std::pair<uint64_t, uint64_t>, uint64_t> lengths;
    auto claimAndDelete = [&]() -> Status {
      if (candidates.empty()) return Status();
      meta::ClaimOrphansRequestT claim;
      for (const auto& h : candidates) claim.chunks.emplace_back(h.hi(), h.lo());
      claim.dry_run = dry_run;
      SLUICE_ASSIGN_OR_RETURN(auto claimed, (c.meta<meta::ClaimOrphansRequest, meta::ClaimOrphansResponse>(
                                                meta::MetaMethod::ClaimOrphans, claim, "ClaimOrphans")));
      candidates.clear();
      storage::DeleteChunksRequestT del;
      for (const auto& h : claimed->claimed) {
        del.ids.emplace_back(h.hi(), h.lo());
        out.bytes += lengths[{h.hi(), h.lo()}];
      }
      lengths.clear();
      if (del.ids.empty()) return Status();
      if (dry_run) {
        out.copies += del.ids.size();
        return Status();
      }
      SLUICE_ASSIGN_OR_RETURN(auto gone, (storageCall<storage::DeleteChunksRequest, storage::DeleteChunksResponse>(
                                             c, n.id, storage::StorageMethod::DeleteChunks, del, "DeleteChunks")));
      out.copies += gone->deleted_count;
      return Status();
    };
    for (const auto& st : stats->stats) {
      storage::ListStripeRequestT list;
      list.stripe = st.stripe();
      list.limit = 1000;
      for (bool more = true; more;) {
        SLUICE_ASSIGN_OR_RETURN(auto page, (storageCall<storage::ListStripeRequest, storage::ListStripeResponse>(
                                               c, n.id, storage::StorageMethod::ListStripe, list, "ListStripe")));
        if (page->ages_ms.size() != page->ids.size() || page->lengths.size() != page->ids.size()) {
          return Status(StatusCode::kProtocolError, "ListStripe on node " + std::to_string(n.id) +
                                                        ": ids, lengths and ages differ in count (an older node? "
                                                        "upgrade it)");
        }
        for (size_t i = 0; i < page->ids.size(); ++i) {
          if (page->ages_ms[i] < grace_ms) continue;
          candidates.push_back(page->ids[i]);
          lengths[{page->ids[i].hi(), page->ids[i].lo()}] = page->lengths[i];
        }
        if (candidates.size() >= 5000) SLUICE_RETURN_IF_ERROR(claimAndDelete());
        more = page->more && !page->ids.empty();
        if (more) {
          list.after = std::make_unique<storage::Hash>(page->ids.back());
          list.has_after = true;
        }
      }
    }
    SLUICE_RETURN_IF_ERROR(claimAndDelete());
  }
  return out;
}

int collect(Context& ctx, uint64_t orphan_grace_s) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  client::Cluster& c = **cluster;
  if (Status s = c.refreshMap(); !s.isOk()) return reportError(s);
  auto map = c.map();
  uint64_t chunks = 0, copies = 0, bytes = 0, unreachable = 0;
  for (;;) {
    meta::CollectGarbageRequestT req;
    req.limit = 1000;
    auto taken = c.meta<meta::CollectGarbageRequest, meta::CollectGarbageResponse>(meta::MetaMethod::CollectGarbage,
                                                                                   req, "CollectGarbage");
    if (!taken.isOk()) return reportError(taken.status());
    if ((*taken)->chunks.empty()) break;
    chunks += (*taken)->chunks.size();
    // Per node: the collected chunks of the stripes it is listed for.
    std::map<client::NodeId, std::vector<storage::Hash>> per_node;
    for (const auto& g : (*taken)->chunks) {
      for (client::NodeId n : map->stripeNodes(g->stripe, map->maxReplicas())) {
        per_node[n].push_back(storage::Hash(g->chunk->hi(), g->chunk->lo()));
      }
    }
    for (const auto& [node, ids] : per_node) {
      const client::NodeEntry* entry = map->node(node);
      if (entry == nullptr || (entry->state != meta::NodeState::Up && entry->state != meta::NodeState::Draining)) {
        unreachable += ids.size();
        continue;
      }
      storage::HasChunksRequestT has;
      has.ids = ids;
      auto lengths = storageCall<storage::HasChunksRequest, storage::HasChunksResponse>(
          c, node, storage::StorageMethod::HasChunks, has, "HasChunks");
      if (!lengths.isOk()) return reportError(lengths.status());
      storage::DeleteChunksRequestT del;
      for (size_t i = 0; i < ids.size() && i < (*lengths)->lengths.size(); ++i) {
        if ((*lengths)->lengths[i] == 0) continue;
        del.ids.push_back(ids[i]);
        bytes += (*lengths)->lengths[i];
      }
      if (del.ids.empty()) continue;
      auto gone = storageCall<storage::DeleteChunksRequest, storage::DeleteChunksResponse>(
          c, node, storage::StorageMethod::DeleteChunks, del, "DeleteChunks");
      if (!gone.isOk()) return reportError(gone.status());
      copies += (*gone)->deleted_count;
    }
  }
  auto orphans = sweepOrphans(c, orphan_grace_s, /*dry_run=*/false);
  if (!orphans.isOk()) return reportError(orphans.status());
  if (ctx.json) {
    Json j;
    j.beginObject().field("chunks_collected", chunks).field("copies_deleted", copies).field("bytes_freed", bytes)
        .field("copies_on_unreachable_nodes", unreachable).field("orphan_copies_deleted", orphans->copies)
        .field("orphan_bytes_freed", orphans->bytes).endObject();
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("gc: %s chunks collected, %s copies deleted, %s freed\n", ProgressMeter::formatCount(chunks).c_str(),
                ProgressMeter::formatCount(copies).c_str(), ProgressMeter::formatBytes(bytes).c_str());
    if (orphans->copies > 0) {
      std::printf("gc: %s orphan copies deleted (chunks no version or draft names, older than %llu s: left by failed "
                  "or interrupted uploads), %s freed\n",
                  ProgressMeter::formatCount(orphans->copies).c_str(), static_cast<unsigned long long>(orphan_grace_s),
                  ProgressMeter::formatBytes(orphans->bytes).c_str());
    }
    if (unreachable > 0) {
      std::printf("gc: %s copies sit on nodes that are down and stay there until those nodes are "
                  "removed and their data directories wiped\n",
                  ProgressMeter::formatCount(unreachable).c_str());
    }
  }
  return kExitOk;
}

int gc(Context& ctx, uint64_t grace_seconds, uint64_t orphan_grace_s) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  uint64_t count = 0;
  std::map<uint32_t, uint64_t> per_stripe;
  Json j;
  j.beginObject().beginArray("chunks");
  std::string cursor;
  do {
    meta::ListGarbageRequestT req;
    // On the wire 0 asks for the server's default (a day), so "no grace"
    // goes as the shortest one there is.
    req.grace_ms = grace_seconds == 0 ? 1 : grace_seconds * 1000;
    req.cursor = cursor;
    auto resp = (*cluster)->meta<meta::ListGarbageRequest, meta::ListGarbageResponse>(
        meta::MetaMethod::ListGarbage, req, "ListGarbage");
    if (!resp.isOk()) return reportError(resp.status());
    for (const auto& c : (*resp)->chunks) {
      count++;
      per_stripe[c->stripe]++;
      if (ctx.json) {
        j.beginObject().field("chunk", Hash128{c->chunk->hi(), c->chunk->lo()}.toHex()).field("stripe", c->stripe).endObject();
      }
    }
    cursor = (*resp)->next_cursor;
  } while (!cursor.empty());
  auto orphans = sweepOrphans(**cluster, orphan_grace_s, /*dry_run=*/true);
  if (!orphans.isOk()) return reportError(orphans.status());
  if (ctx.json) {
    j.endArray().field("unreferenced_chunks", count).field("orphan_copies", orphans->copies)
        .field("orphan_bytes", orphans->bytes).endObject();
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("%s chunks are referenced by no version and no recent draft (in %zu stripes)\n",
                ProgressMeter::formatCount(count).c_str(), per_stripe.size());
    std::printf("%s orphan copies (%s) on the nodes are named by nothing in meta and older than %llu s\n",
                ProgressMeter::formatCount(orphans->copies).c_str(), ProgressMeter::formatBytes(orphans->bytes).c_str(),
                static_cast<unsigned long long>(orphan_grace_s));
  }
  return kExitOk;
}

// Repairs now (unless only asked for status), then reports pending moves
// until none are left (with --wait) or once. `label` names the work on the
// progress line ("repair", "rebalance").
int repair(Context& ctx, bool status_only, bool wait, uint64_t timeout_s, const char* label = "repair") {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  Json j;
  j.beginObject();
  if (!status_only) {
    meta::RepairRequestT req;
    auto planned = (*cluster)->meta<meta::RepairRequest, meta::RepairResponse>(meta::MetaMethod::Repair, req, "Repair");
    if (!planned.isOk()) return reportError(planned.status());
    const auto& moves = (*planned)->planned;
    if (ctx.json) {
      j.beginArray("planned");
      for (const auto& m : moves) {
        j.beginObject().field("stripe", m->stripe).field("from", m->from).field("to", m->to).field("source", m->source).endObject();
      }
      j.endArray();
    } else if (moves.empty()) {
      std::printf("no new repairs: no stripe lists a down node without a move already pending "
                  "(or no live node can take one)\n");
    } else {
      std::printf("planned %zu stripe moves away from down nodes:\n", moves.size());
      for (size_t i = 0; i < moves.size() && i < 8; ++i) {
        std::printf("  stripe %u: node %llu -> node %llu (copied from node %llu)\n", moves[i]->stripe,
                    static_cast<unsigned long long>(moves[i]->from), static_cast<unsigned long long>(moves[i]->to),
                    static_cast<unsigned long long>(moves[i]->source));
      }
      if (moves.size() > 8) std::printf("  ... and %zu more\n", moves.size() - 8);
    }
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::optional<ProgressMeter> meter;
  uint64_t moves_seen = 0, bytes_seen = 0;
  for (;;) {
    meta::ListMovesRequestT req;
    auto st = (*cluster)->meta<meta::ListMovesRequest, meta::ListMovesResponse>(meta::MetaMethod::ListMoves, req, "ListMoves");
    if (!st.isOk()) return reportError(st.status());
    const auto& r = **st;
    // Cleanups wait for their nodes to come back; the copies are the repair.
    bool done = r.moves.empty();
    if (!wait || done || std::chrono::steady_clock::now() > deadline) {
      const uint64_t remaining = done ? 0 : pendingMoveBytes(**cluster, r);
      if (meter) {
        meter->add(r.moves_done - moves_seen, r.bytes_copied - bytes_seen);
        meter->finish();
      }
      if (ctx.json) {
        j.field("pending_moves", uint64_t{r.moves.size()}).field("pending_cleanups", r.cleanups)
            .field("bytes_remaining", remaining).field("moves_done", r.moves_done).field("bytes_copied", r.bytes_copied)
            .field("chunks_deleted", r.chunks_deleted).endObject();
        std::printf("%s\n", j.str().c_str());
      } else {
        std::printf("repair: %zu moves pending (%s to copy), %llu cleanups pending (nodes that left stripes, done "
                    "once they are up); since sluice-meta started: %llu moves done, %s copied, %llu chunks "
                    "deleted\n", r.moves.size(), ProgressMeter::formatBytes(remaining).c_str(),
                    static_cast<unsigned long long>(r.cleanups), static_cast<unsigned long long>(r.moves_done),
                    ProgressMeter::formatBytes(r.bytes_copied).c_str(),
                    static_cast<unsigned long long>(r.chunks_deleted));
      }
      if (wait && !done) {
        return reportError(Status(StatusCode::kTimeout, "repair still running after " + std::to_string(timeout_s) +
                                                            " s; follow it with 'sluice repair --status'"));
      }
      return kExitOk;
    }
    if (!meter) {
      // Totals from the first look: moves left and the bytes their stripes hold.
      meter.emplace(label, r.moves.size(), pendingMoveBytes(**cluster, r));
      meter->setEnabled(!ctx.quiet && !ctx.json);
      meter->setUnit("moves");
      moves_seen = r.moves_done;
      bytes_seen = r.bytes_copied;
    } else {
      meter->add(r.moves_done - moves_seen, r.bytes_copied - bytes_seen);
      moves_seen = r.moves_done;
      bytes_seen = r.bytes_copied;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
}

Result<std::unique_ptr<meta::SetNodeStateResponseT>> setNodeState(client::Cluster& cluster, uint64_t node,
                                                                   meta::NodeState state) {
  meta::SetNodeStateRequestT req;
  req.node_id = node;
  req.state = state;
  return cluster.meta<meta::SetNodeStateRequest, meta::SetNodeStateResponse>(meta::MetaMethod::SetNodeState, req,
                                                                             "SetNodeState node " + std::to_string(node));
}

// Stripes whose data slots still list `node`.
Result<uint64_t> stripesHolding(client::Cluster& cluster, uint64_t node) {
  SLUICE_ASSIGN_OR_RETURN(uint32_t slots, dataSlots(cluster));
  meta::GetClusterMapRequestT req;
  SLUICE_ASSIGN_OR_RETURN(auto m, (cluster.meta<meta::GetClusterMapRequest, meta::GetClusterMapResponse>(
                                      meta::MetaMethod::GetClusterMap, req, "GetClusterMap")));
  uint64_t holding = 0;
  for (uint32_t s = 0; s < m->stripe_count; ++s) {
    for (uint32_t i = 0; i < std::min(slots, m->max_replicas); ++i) {
      holding += m->replicas[static_cast<size_t>(s) * m->max_replicas + i] == node ? 1 : 0;
    }
  }
  return holding;
}

// Pending moves to or from `node`.
size_t movesInvolving(const meta::ListMovesResponseT& moves, uint64_t node) {
  return std::count_if(moves.moves.begin(), moves.moves.end(),
                       [node](const auto& m) { return m->from == node || m->to == node; });
}

int drain(Context& ctx, uint64_t node, bool wait, uint64_t timeout_s) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  auto r = setNodeState(**cluster, node, meta::NodeState::Draining);
  if (!r.isOk()) return reportError(r.status());
  if (!ctx.json) std::printf("node %llu is draining: its stripes move to other nodes\n", static_cast<unsigned long long>(node));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    auto holding = stripesHolding(**cluster, node);
    if (!holding.isOk()) return reportError(holding.status());
    meta::ListMovesRequestT mreq;
    auto moves = (*cluster)->meta<meta::ListMovesRequest, meta::ListMovesResponse>(meta::MetaMethod::ListMoves, mreq, "ListMoves");
    if (!moves.isOk()) return reportError(moves.status());
    // Done when its data is elsewhere: moves and cleanups of other nodes (a
    // down node's cleanups wait for it to return) do not hold the drain up.
    bool done = *holding == 0 && movesInvolving(**moves, node) == 0;
    if (done || !wait) {
      if (ctx.json) {
        Json j;
        j.beginObject().field("node", node).field("stripes_holding_data", *holding).field("done", done).endObject();
        std::printf("%s\n", j.str().c_str());
      } else if (done) {
        if (!ctx.quiet) std::fprintf(stderr, "\n");
        std::printf("node %llu holds no data any more; remove it with 'sluice node remove %llu'\n",
                    static_cast<unsigned long long>(node), static_cast<unsigned long long>(node));
      } else {
        std::printf("node %llu still holds data of %llu stripes; follow with 'sluice repair --status'\n",
                    static_cast<unsigned long long>(node), static_cast<unsigned long long>(*holding));
      }
      return kExitOk;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return reportError(Status(StatusCode::kTimeout, "node " + std::to_string(node) + " still holds data of " +
                                                          std::to_string(*holding) + " stripes after " +
                                                          std::to_string(timeout_s) + " s; the drain continues"));
    }
    if (!ctx.quiet && !ctx.json) {
      std::fprintf(stderr, "\rdrain: node %llu holds data of %llu stripes, %zu of its moves pending ",
                   static_cast<unsigned long long>(node), static_cast<unsigned long long>(*holding),
                   movesInvolving(**moves, node));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
}

// The bytes an average data slot holds: the up nodes' usage over their slots.
uint64_t bytesPerDataSlot(const meta::RebalanceResponseT& plan) {
  uint64_t used = 0, slots = 0;
  for (const auto& n : plan.nodes) {
    used += n->used_bytes;
    slots += n->slots_before;
  }
  return slots ? used / slots : 0;
}

// plan: what would move, bytes, usage before/after. apply: persist the moves
// and (unless no_wait) follow them like `repair` does.
int rebalance(Context& ctx, bool apply, uint64_t rate, bool wait, uint64_t timeout_s) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  meta::RebalanceRequestT req;
  req.apply = apply;
  req.rate_bytes_per_sec = rate;
  auto r = (*cluster)->meta<meta::RebalanceRequest, meta::RebalanceResponse>(meta::MetaMethod::Rebalance, req, "Rebalance");
  if (!r.isOk()) return reportError(r.status());
  const auto& p = **r;
  if (ctx.json && !(apply && wait)) {
    Json j;
    j.beginObject().field("applied", apply).field("moves", uint64_t{p.moves.size()}).field("bytes_to_copy", p.bytes_to_copy);
    j.beginArray("nodes");
    for (const auto& n : p.nodes) {
      j.beginObject().field("id", n->id).field("slots_before", n->slots_before).field("slots_after", n->slots_after)
          .field("used_bytes", n->used_bytes).endObject();
    }
    j.endArray().endObject();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  if (!ctx.json) {
    std::printf("%s %zu stripe moves, about %s to copy node to node\n", apply ? "applying" : "plan:", p.moves.size(),
                ProgressMeter::formatBytes(p.bytes_to_copy).c_str());
    Table t({"NODE", "CAPACITY", "USED NOW", "DATA SLOTS NOW", "AFTER", "USED AFTER (est.)"},
            {true, true, true, true, true, true});
    const uint64_t per_slot = bytesPerDataSlot(p);
    for (const auto& n : p.nodes) {
      // What the node has, plus or minus an average slot's bytes per slot
      // gained or given up (a node with no slots yet has no bytes per slot
      // of its own to go by).
      const int64_t delta = (static_cast<int64_t>(n->slots_after) - static_cast<int64_t>(n->slots_before)) *
                            static_cast<int64_t>(per_slot);
      const uint64_t after = static_cast<uint64_t>(std::max<int64_t>(0, static_cast<int64_t>(n->used_bytes) + delta));
      t.addRow({std::to_string(n->id), ProgressMeter::formatBytes(n->capacity_bytes),
                ProgressMeter::formatBytes(n->used_bytes), std::to_string(n->slots_before),
                std::to_string(n->slots_after), ProgressMeter::formatBytes(after)});
    }
    std::fputs(t.render().c_str(), stdout);
    for (size_t i = 0; i < p.moves.size() && i < 8 && !apply; ++i) {
      std::printf("  stripe %u: node %llu -> node %llu\n", p.moves[i]->stripe,
                  static_cast<unsigned long long>(p.moves[i]->from), static_cast<unsigned long long>(p.moves[i]->to));
    }
    if (!apply && p.moves.size() > 8) std::printf("  ... and %zu more\n", p.moves.size() - 8);
    if (!apply && !p.moves.empty()) std::printf("apply with 'sluice rebalance apply [--rate BYTES/S]'\n");
  }
  if (!apply || !wait) return kExitOk;
  return repair(ctx, /*status_only=*/true, /*wait=*/true, timeout_s, "rebalance");
}

// For each of `ids` (missing on node `from`): does another of `nodes` still
// hold a copy that a repair could fetch?
Result<std::vector<bool>> copiesElsewhere(client::Cluster& c, const std::vector<client::NodeId>& nodes,
                                          client::NodeId from, const std::vector<storage::Hash>& ids) {
  std::vector<bool> found(ids.size(), false);
  if (ids.empty()) return found;
  storage::HasChunksRequestT has;
  has.ids = ids;
  for (auto other : nodes) {
    if (other == from) continue;
    auto h = storageCall<storage::HasChunksRequest, storage::HasChunksResponse>(c, other, storage::StorageMethod::HasChunks,
                                                                                has, "HasChunks");
    if (!h.isOk()) return h.status();
    for (size_t i = 0; i < (*h)->lengths.size() && i < ids.size(); ++i) found[i] = found[i] || (*h)->lengths[i] > 0;
  }
  return found;
}

// What a lost chunk takes with it: per chunk (hex), one line per version
// that uses it ("sc@v2: a/b, c and more files"), from meta. Chunks no version
// uses are absent: they were deleted since, and nothing is lost.
Result<std::map<std::string, std::vector<std::string>>> chunkUsers(client::Cluster& c,
                                                                   const std::vector<Hash128>& chunks) {
  constexpr uint32_t kPathsShown = 5;
  constexpr size_t kPerCall = 1000;
  std::map<std::string, std::vector<std::string>> out;
  for (size_t first = 0; first < chunks.size();) {
    meta::FindChunkUsersRequestT req;
    for (size_t i = first; i < chunks.size() && i < first + kPerCall; ++i) req.chunks.emplace_back(chunks[i].hi, chunks[i].lo);
    req.max_paths = kPathsShown;
    SLUICE_ASSIGN_OR_RETURN(auto r, (c.meta<meta::FindChunkUsersRequest, meta::FindChunkUsersResponse>(
                                        meta::MetaMethod::FindChunkUsers, req, "FindChunkUsers")));
    // Each answer covers the first `answered` chunks asked; the rest go in
    // the next call.
    if (r->answered == 0 || r->answered > req.chunks.size()) {
      return Status(StatusCode::kProtocolError, "FindChunkUsers answered " + std::to_string(r->answered) + " of " +
                                                    std::to_string(req.chunks.size()) + " chunks");
    }
    first += r->answered;
    for (const auto& u : r->users) {
      if (!u->chunk) continue;
      std::string line = (u->dataset.empty() ? "(a deleted dataset)" : u->dataset) + "@v" + std::to_string(u->version);
      if (u->state == meta::VersionState::Draft) line += " (draft)";
      std::string paths;
      for (const auto& p : u->paths) paths += (paths.empty() ? "" : ", ") + p;
      if (u->more_paths) paths += paths.empty() ? "files" : " and maybe more files";
      if (!paths.empty()) line += ": " + paths;
      out[Hash128{u->chunk->hi(), u->chunk->lo()}.toHex()].push_back(std::move(line));
    }
  }
  return out;
}

// Kicks a scrub pass on the nodes, waits for it, then for sluice-meta to
// fetch every corrupt chunk found again from a replica.
int scrub(Context& ctx, uint64_t only_node, bool wait, uint64_t timeout_s) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  client::Cluster& c = **cluster;
  if (Status s = c.refreshMap(); !s.isOk()) return reportError(s);
  auto map = c.map();
  std::vector<client::NodeId> nodes, live;  // to scrub; every node a repair could fetch from
  for (const auto& n : map->nodes()) {
    if (n.state != meta::NodeState::Up && n.state != meta::NodeState::Draining) continue;
    live.push_back(n.id);
    if (only_node == 0 || n.id == only_node) nodes.push_back(n.id);
  }
  if (nodes.empty()) {
    return reportError(notFound(only_node ? "node " + std::to_string(only_node) + " is not an up storage node"
                                          : std::string("no storage node is up")));
  }
  std::map<client::NodeId, uint64_t> done_at_passes;
  for (auto id : nodes) {
    storage::ScrubRequestT req;
    auto r = storageCall<storage::ScrubRequest, storage::ScrubResponse>(c, id, storage::StorageMethod::Scrub, req, "Scrub");
    if (!r.isOk()) return reportError(r.status());
    if (!(*r)->scrubbing) {
      return reportError(Status(StatusCode::kFailedPrecondition,
                                "node " + std::to_string(id) + " runs without a scrubber (scrub.rate = 0); restart it with "
                                "--scrub.rate=BYTES/S to scrub it"));
    }
    done_at_passes[id] = (*r)->done_at_passes;
  }
  if (!ctx.json && !ctx.quiet) std::fprintf(stderr, "scrub started on %zu nodes\n", nodes.size());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::map<client::NodeId, std::unique_ptr<storage::NodeStatsResponseT>> stats;
  // Chunks quarantined with no good copy left on any up node: no repair can
  // bring them back, so they are reported instead of waited for.
  std::set<Hash128> lost;
  for (bool pending = true; pending;) {
    pending = false;
    for (auto id : nodes) {
      storage::NodeStatsRequestT req;
      auto r = storageCall<storage::NodeStatsRequest, storage::NodeStatsResponse>(c, id, storage::StorageMethod::NodeStats,
                                                                                  req, "NodeStats");
      if (!r.isOk()) return reportError(r.status());
      bool scrubbed = (*r)->scrub_passes >= done_at_passes[id];
      // Repaired: every chunk it quarantined is back (fetched from a replica).
      uint64_t missing = 0;
      if (scrubbed && !(*r)->recent_corrupt.empty()) {
        storage::HasChunksRequestT has;
        for (const auto& bad : (*r)->recent_corrupt) has.ids.push_back(*bad->id);
        auto h = storageCall<storage::HasChunksRequest, storage::HasChunksResponse>(c, id, storage::StorageMethod::HasChunks,
                                                                                    has, "HasChunks");
        if (!h.isOk()) return reportError(h.status());
        std::vector<storage::Hash> gone;
        for (size_t i = 0; i < (*h)->lengths.size() && i < has.ids.size(); ++i) {
          if ((*h)->lengths[i] == 0) gone.push_back(has.ids[i]);
        }
        auto elsewhere = copiesElsewhere(c, live, id, gone);
        if (!elsewhere.isOk()) return reportError(elsewhere.status());
        for (size_t i = 0; i < gone.size(); ++i) {
          if ((*elsewhere)[i]) {
            ++missing;  // a replica has it: the node's repair fetches it
          } else {
            lost.insert(Hash128{gone[i].hi(), gone[i].lo()});
          }
        }
      }
      pending |= wait && (!scrubbed || missing > 0);
      stats[id] = std::move(*r);
    }
    if (!pending) break;
    if (std::chrono::steady_clock::now() > deadline) {
      return reportError(Status(StatusCode::kTimeout, "scrub or repair still running after " +
                                                          std::to_string(timeout_s) + " s; run 'sluice scrub --no-wait' to see where it is"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  // Which of them a version still uses, and which files: a chunk deleted
  // since it was quarantined (its versions removed, gc run) is no loss.
  std::map<std::string, std::vector<std::string>> users;
  Status named;  // not ok: meta could not say, so every such chunk counts as lost
  if (!lost.empty()) {
    auto u = chunkUsers(c, std::vector<Hash128>(lost.begin(), lost.end()));
    if (u.isOk()) {
      users = std::move(*u);
    } else {
      named = u.status();
      for (const auto& id : lost) users[id.toHex()] = {};
    }
  }
  const size_t unused = lost.size() - users.size();
  Table t({"NODE", "PASSES", "VERIFIED", "CORRUPT FOUND", "QUARANTINED", "RECENT CORRUPT"}, {true, true, true, true, true, true});
  Json j;
  j.beginObject().beginArray("lost_chunks");
  for (const auto& [hex, lines] : users) {
    j.beginObject().field("chunk", hex).beginArray("used_by");
    for (const auto& line : lines) j.value(line);
    j.endArray().endObject();
  }
  j.endArray().beginArray("nodes");
  for (auto id : nodes) {
    const auto& st = *stats[id];
    t.addRow({std::to_string(id), std::to_string(st.scrub_passes), ProgressMeter::formatBytes(st.scrub_bytes),
              std::to_string(st.corrupt_found), std::to_string(st.quarantined), std::to_string(st.recent_corrupt.size())});
    j.beginObject().field("node", uint64_t{id}).field("passes", st.scrub_passes).field("verified_bytes", st.scrub_bytes)
        .field("corrupt_found", st.corrupt_found).field("quarantined", st.quarantined).endObject();
  }
  j.endArray().endObject();
  if (ctx.json) {
    std::printf("%s\n", j.str().c_str());
  } else {
    std::fputs(t.render().c_str(), stdout);
    if (unused > 0) {
      std::printf("%zu corrupt chunk(s) with no good copy left are used by no version any more (deleted since): "
                  "nothing is lost\n",
                  unused);
    }
    if (wait && users.empty()) std::printf("every corrupt chunk still in use has been fetched again from a good replica\n");
  }
  if (!users.empty()) {
    std::string what;
    for (const auto& [hex, lines] : users) {
      what += "\n  chunk " + hex;
      for (const auto& line : lines) what += "\n    " + line;
    }
    const std::string files = named.isOk() ? " in use have no good copy left on any up node, so they cannot be "
                                             "repaired. Reads of these files fail:"
                                           : " have no good copy left on any up node, so they cannot be repaired. "
                                             "Which files use them is unknown (" + named.toString() +
                                                 "); reads of those files fail:";
    return reportError(Status(StatusCode::kCorruption,
                              std::to_string(users.size()) + " corrupt chunk(s)" + files + what +
                                  "\nUpload those files again (a new version), or bring back a node that holds a "
                                  "good copy."));
  }
  return kExitOk;
}

// Calls a drain off: the node takes new data again and keeps the stripes it
// still holds; moves planned away from it are dropped.
int undrain(Context& ctx, uint64_t node) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  auto r = setNodeState(**cluster, node, meta::NodeState::Up);
  if (!r.isOk()) return reportError(r.status());
  const meta::NodeState now = (*r)->node ? (*r)->node->state : meta::NodeState::Up;
  if (ctx.json) {
    Json j;
    j.beginObject().field("node", node).field("state", stateName(now)).endObject();
    std::printf("%s\n", j.str().c_str());
  } else if (now == meta::NodeState::Down) {
    std::printf("node %llu is no longer to be drained; it is down and comes back up when it heartbeats again\n",
                static_cast<unsigned long long>(node));
  } else {
    std::printf("node %llu is up and no longer draining: it keeps the stripes it holds and takes new data again\n",
                static_cast<unsigned long long>(node));
  }
  return kExitOk;
}

int removeNode(Context& ctx, uint64_t node) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  auto r = setNodeState(**cluster, node, meta::NodeState::Removed);
  if (!r.isOk()) return reportError(r.status());
  std::printf("node %llu removed from the cluster (map epoch %llu)\n", static_cast<unsigned long long>(node),
              static_cast<unsigned long long>((*r)->map_epoch));
  return kExitOk;
}

}  // namespace

void addAdminCommands(CLI::App& app, Context& ctx, Action& action) {
  auto* s = app.add_subcommand("status", "the cluster at a glance: nodes, usage, stripes, map epoch");
  s->callback([&ctx, &action] { action = [&ctx] { return status(ctx, false); }; });

  auto* node = app.add_subcommand("node", "storage nodes");
  node->require_subcommand(1);
  auto* nl = node->add_subcommand("list", "list storage nodes");
  nl->callback([&ctx, &action] { action = [&ctx] { return status(ctx, true); }; });
  struct NodeArgs {
    uint64_t id = 0;
    bool no_wait = false;
    uint64_t timeout = 3600;
  };
  auto na = std::make_shared<NodeArgs>();
  auto* nd = node->add_subcommand("drain", "move every stripe off a node (same copies as repair), then wait");
  nd->add_option("id", na->id, "the node id (see 'sluice node list')")->required();
  nd->add_flag("--no-wait", na->no_wait, "start the drain and return");
  nd->add_option("--timeout", na->timeout, "seconds to wait (default 3600)");
  nd->callback([&ctx, &action, na] { action = [&ctx, na] { return drain(ctx, na->id, !na->no_wait, na->timeout); }; });
  auto* nu = node->add_subcommand("undrain", "call a drain off: the node keeps its stripes and takes new data again");
  nu->add_option("id", na->id, "the node id")->required();
  nu->callback([&ctx, &action, na] { action = [&ctx, na] { return undrain(ctx, na->id); }; });
  auto* nr = node->add_subcommand("remove", "remove a node that holds no data (drain it first)");
  nr->add_option("id", na->id, "the node id")->required();
  nr->callback([&ctx, &action, na] { action = [&ctx, na] { return removeNode(ctx, na->id); }; });

  struct RepairArgs {
    bool status = false;
    bool no_wait = false;
    uint64_t timeout = 3600;
  };
  auto ra = std::make_shared<RepairArgs>();
  auto* r = app.add_subcommand("repair", "copy the stripes of down nodes to live nodes now, and wait until done");
  r->add_flag("--status", ra->status, "only report pending moves and what was copied");
  r->add_flag("--no-wait", ra->no_wait, "plan and return; the repair continues in sluice-meta");
  r->add_option("--timeout", ra->timeout, "seconds to wait for the repair (default 3600)");
  r->callback([&ctx, &action, ra] {
    action = [&ctx, ra] { return repair(ctx, ra->status, !ra->status && !ra->no_wait, ra->timeout); };
  });

  struct RebalanceArgs {
    std::string rate;
    bool no_wait = false;
    uint64_t timeout = 3600;
  };
  auto rb = std::make_shared<RebalanceArgs>();
  auto* reb = app.add_subcommand("rebalance", "even out stripes over the nodes (after adding one)");
  reb->require_subcommand(1);
  auto* rp = reb->add_subcommand("plan", "show which stripes would move where, the bytes, and each node's usage");
  rp->callback([&ctx, &action] { action = [&ctx] { return rebalance(ctx, false, 0, false, 0); }; });
  auto* rapply = reb->add_subcommand("apply", "move the stripes node to node, verified, then switch the map");
  rapply->add_option("--rate", rb->rate, "bytes/s per copy (e.g. 200M; default: the nodes' repair.rate)");
  rapply->add_flag("--no-wait", rb->no_wait, "start and return; follow with 'sluice rebalance status'");
  rapply->add_option("--timeout", rb->timeout, "seconds to wait (default 3600)");
  rapply->callback([&ctx, &action, rb] {
    action = [&ctx, rb] {
      uint64_t rate = 0;
      if (!rb->rate.empty()) {
        auto parsed = parseSize(rb->rate);
        if (!parsed.isOk()) return reportError(invalidArgument("--rate: " + parsed.status().message()));
        rate = *parsed;
        if (Status low = checkCopyRate(rate, "--rate"); !low.isOk()) return reportError(low);
      }
      return rebalance(ctx, true, rate, !rb->no_wait, rb->timeout);
    };
  });
  auto* rs = reb->add_subcommand("status", "pending moves and what was copied");
  rs->callback([&ctx, &action] { action = [&ctx] { return repair(ctx, true, false, 0); }; });

  struct ScrubArgs {
    uint64_t node = 0;
    bool no_wait = false;
    uint64_t timeout = 3600;
  };
  auto sa = std::make_shared<ScrubArgs>();
  auto* sc = app.add_subcommand("scrub", "verify every chunk on the nodes now; corrupt ones are fetched again from a replica");
  sc->add_option("--node", sa->node, "only this node");
  sc->add_flag("--no-wait", sa->no_wait, "start, print where the nodes are, return");
  sc->add_option("--timeout", sa->timeout, "seconds to wait (default 3600)");
  sc->callback([&ctx, &action, sa] { action = [&ctx, sa] { return scrub(ctx, sa->node, !sa->no_wait, sa->timeout); }; });

  constexpr uint64_t kMaxGraceSeconds = 10ull * 365 * 86400;  // ten years: anything longer is a typo
  struct GcArgs {
    uint64_t grace = 3600;
    uint64_t orphan_grace = 3600;
    bool dry_run = false;
  };
  auto ga = std::make_shared<GcArgs>();
  auto* g = app.add_subcommand("gc", "delete chunks that no version references any more, and report the bytes freed");
  g->add_flag("--dry-run", ga->dry_run, "only list what is unreferenced (also by drafts idle longer than --grace)");
  auto* grace = g->add_option("--grace", ga->grace,
                              "with --dry-run: seconds a draft protects its chunks (default 3600; 0: none)")
                    ->check(CLI::Range(uint64_t{0}, kMaxGraceSeconds));
  g->add_option("--orphan-grace", ga->orphan_grace,
                "seconds before a chunk no version or draft names (left by a failed upload) is deleted (default 3600)")
      ->check(CLI::Range(uint64_t{0}, kMaxGraceSeconds));
  g->callback([&ctx, &action, ga, grace] {
    if (grace->count() > 0 && !ga->dry_run) {
      throw CLI::ValidationError("--grace", "only applies with --dry-run (a real gc deletes what sluice-meta "
                                            "has tombstoned, after its own draft_grace)");
    }
    action = [&ctx, ga] { return ga->dry_run ? gc(ctx, ga->grace, ga->orphan_grace) : collect(ctx, ga->orphan_grace); };
  });
}

}  // namespace sluice::cli
