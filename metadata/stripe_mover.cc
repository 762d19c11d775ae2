#include "metadata/stripe_mover.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>

#include "common/core/copy_rate.h"
#include "common/core/metrics.h"
#include "common/wire/storage_generated.h"
#include "common/wire/typed_call.h"

namespace sluice::meta {
namespace {

namespace storage = wire::storage;

uint16_t storageOp(storage::StorageMethod m) {
  return net::makeOpcode(net::ServiceId::kStorage, static_cast<uint8_t>(m));
}

storage::Hash toWire(const Hash128& h) { return storage::Hash(h.hi, h.lo); }

}  // namespace

StripeMover::StripeMover(MetaStore& store, net::Endpoint& endpoint, MoverOptions options)
    : store_(store), endpoint_(endpoint), options_(options) {}

StripeMover::~StripeMover() { stop(); }

void StripeMover::start() { thread_ = std::thread([this] { loop(); }); }

void StripeMover::requestStop() {
  {
    std::lock_guard lock(signal_->mu);
    signal_->stopping = true;
  }
  signal_->cv.notify_all();
}

void StripeMover::stop() {
  requestStop();
  if (thread_.joinable()) thread_.join();
}

Result<std::vector<StripeMove>> StripeMover::repairNow() {
  SLUICE_ASSIGN_OR_RETURN(ClusterMap map, store_.clusterMap());
  std::vector<uint64_t> down;
  for (const auto& n : map.nodes) {
    if (n.state == NodeState::kDown) down.push_back(n.id);
  }
  SLUICE_ASSIGN_OR_RETURN(auto planned, store_.planRepairs(down));
  signal_->notify();
  return planned;
}

MoverProgress StripeMover::progress() const {
  return {moves_done_,    chunks_copied_,    bytes_copied_,         cleanups_done_,
          chunks_deleted_, corrupt_repaired_, stray_cleanups_queued_};
}

void StripeMover::loop() {
  Signal& sig = *signal_;
  std::unique_lock lock(sig.mu);
  while (!sig.stopping) {
    sig.cv.wait_for(lock, options_.tick, [&] { return sig.stopping || sig.wake; });
    if (sig.stopping) break;
    sig.wake = false;
    lock.unlock();
    tick();
    lock.lock();
  }
}

Result<net::PeerId> StripeMover::peerOf(uint64_t node, const ClusterMap& map) {
  for (const auto& n : map.nodes) {
    if (n.id == node) return endpoint_.connect(n.address);
  }
  return notFound("node " + std::to_string(node) + " is not in the map");
}

void StripeMover::tick() {
  auto map = store_.clusterMap();
  if (!map.isOk()) {
    spdlog::warn("mover: {}", map.status().toString());
    return;
  }
  // 1. Nodes down past the grace period, and draining nodes, get their
  // stripes planned away.
  auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> overdue;
  std::map<uint64_t, NodeState> state;
  for (const auto& n : map->nodes) {
    state[n.id] = n.state;
    if (n.state == NodeState::kDraining) overdue.push_back(n.id);
    if (n.state != NodeState::kDown) {
      down_since_.erase(n.id);
      continue;
    }
    auto [it, inserted] = down_since_.emplace(n.id, now);
    if (now - it->second >= options_.repair_grace) overdue.push_back(n.id);
  }
  if (!overdue.empty()) {
    auto planned = store_.planRepairs(overdue);
    if (!planned.isOk()) {
      spdlog::warn("mover: planning repairs: {}", planned.status().toString());
    } else if (!planned->empty()) {
      spdlog::info("mover: planned {} stripe moves away from down or draining nodes", planned->size());
    }
  }
  // 2. Pending moves: copies in flight, finished, or to start.
  runMoves();
  if (stopping()) return;
  // 4. Corrupt chunks found by scrubbers, every five seconds (ticks also
  // come early, when copies finish).
  if (now - last_corrupt_check_ >= std::chrono::seconds(5)) {
    last_corrupt_check_ = now;
    repairCorrupt(*map);
  }

  // 5. Copies on nodes the map does not list for their stripe; their
  // cleanups run below. The first check waits a whole period after start.
  if (last_stray_check_ == std::chrono::steady_clock::time_point{}) last_stray_check_ = now;
  if (options_.stray_check.count() > 0 && now - last_stray_check_ >= options_.stray_check) {
    last_stray_check_ = now;
    findStrays();
  }

  // 3. Cleanups on nodes that are up.
  auto cleanups = store_.listCleanups();
  auto pending_moves = store_.listMoves();
  if (cleanups.isOk() && pending_moves.isOk()) {
    // A node a pending move copies a stripe to keeps what it has of it: the
    // copy resumes from there, and the switch needs all of it.
    std::set<std::pair<uint64_t, uint32_t>> copying;
    for (const auto& m : *pending_moves) copying.insert({m.to, m.stripe});
    for (const auto& c : *cleanups) {
      if (stopping()) return;
      if (copying.count({c.node, c.stripe})) continue;
      if (state.count(c.node) == 0 || state[c.node] == NodeState::kRemoved) {
        (void)store_.finishCleanup(c);
        continue;
      }
      if (state[c.node] != NodeState::kUp && state[c.node] != NodeState::kDraining) continue;
      // The map as it is now: moves of this round switched stripes.
      auto current = store_.clusterMap();
      if (!current.isOk()) return;
      Status s = cleanup(c, *current);
      if (!s.isOk()) spdlog::warn("mover: cleanup of stripe {} on node {}: {}", c.stripe, c.node, s.toString());
    }
  }
}

void StripeMover::runMoves() {
  auto moves = store_.listMoves();
  auto map = store_.clusterMap();
  if (!moves.isOk() || !map.isOk()) return;
  std::map<uint64_t, NodeState> state;
  for (const auto& n : map->nodes) state[n.id] = n.state;
  auto alive = [&](uint64_t id) {
    auto it = state.find(id);
    return it != state.end() && (it->second == NodeState::kUp || it->second == NodeState::kDraining);
  };
  std::map<uint32_t, StripeMove> pending;
  for (const auto& m : *moves) pending[m.stripe] = m;

  // Copies in flight: finished ones switch the map; ones whose nodes went
  // away (or whose move is gone) are abandoned, their reply ignored.
  for (auto it = copies_.begin(); it != copies_.end();) {
    Copy& c = *it->second;
    bool done;
    {
      std::lock_guard lock(c.mu);
      done = c.done;
    }
    const StripeMove& m = c.move;
    auto p = pending.find(m.stripe);
    const bool current = p != pending.end() && p->second.from == m.from && p->second.to == m.to;
    if (done) {
      if (current) {
        Status s = finishCopy(c);
        if (!s.isOk()) spdlog::warn("mover: stripe {} ({} -> {}): {}", m.stripe, m.from, m.to, s.toString());
      }
      it = copies_.erase(it);
      continue;
    }
    if (current && (state[m.to] != NodeState::kUp || !alive(m.source))) {
      spdlog::warn("mover: stripe {}: copy to node {} from node {} abandoned (node {} is {}); planned anew",
                   m.stripe, m.to, m.source, state[m.to] != NodeState::kUp ? m.to : m.source,
                   state[m.to] != NodeState::kUp ? "no longer up" : "gone");
      (void)store_.dropMove(m.stripe);
      it = copies_.erase(it);
      continue;
    }
    if (!current) {
      it = copies_.erase(it);
      continue;
    }
    ++it;
  }

  // Pending moves on targets with no copy in flight.
  std::map<uint64_t, size_t> busy;  // copies in flight per target node
  for (const auto& [stripe, c] : copies_) busy[c->move.to]++;
  for (const auto& [stripe, m] : pending) {
    if (copies_.size() >= options_.max_parallel_moves) break;
    if (copies_.count(stripe) || busy[m.to] >= options_.max_moves_per_target) continue;
    if (stopping()) return;
    if (state[m.to] != NodeState::kUp || !alive(m.source)) {
      // A node of the move went away: plan it again with the nodes there are.
      (void)store_.dropMove(m.stripe);
      continue;
    }
    Status s = startCopy(m, *map);
    if (!s.isOk()) {
      spdlog::warn("mover: stripe {} ({} -> {}): {}", m.stripe, m.from, m.to, s.toString());
      continue;
    }
    busy[m.to]++;
  }
}

Status StripeMover::startCopy(const StripeMove& m, const ClusterMap& map) {
  SLUICE_ASSIGN_OR_RETURN(net::PeerId target, peerOf(m.to, map));
  std::string source_address;
  for (const auto& n : map.nodes) {
    if (n.id == m.source) source_address = n.address;
  }
  storage::FetchChunksRequestT req;
  req.stripe = m.stripe;
  req.source = source_address;
  // A move saved with a rate now below the floor (before there was one)
  // takes the default rather than being refused by the node on every try.
  req.rate_bytes_per_sec = m.rate_bytes_per_sec >= kMinCopyRateBytesPerSec ? m.rate_bytes_per_sec
                                                                          : options_.rate_bytes_per_sec;
  auto copy = std::make_shared<Copy>();
  copy->move = m;
  copies_[m.stripe] = copy;
  std::vector<uint8_t> body = wire::packBody<storage::FetchChunksRequest>(req);
  endpoint_.callAsync(target, storageOp(storage::StorageMethod::FetchChunks), body, options_.transfer_timeout,
                      [copy, signal = signal_](Result<std::vector<uint8_t>> reply) {
                        auto r = reply.isOk() ? wire::unpackBody<storage::FetchChunksResponse>(*reply, "FetchChunks")
                                              : Result<std::unique_ptr<storage::FetchChunksResponseT>>(
                                                    wire::withCallContext(reply.status(), "FetchChunks"));
                        {
                          std::lock_guard lock(copy->mu);
                          copy->reply = std::move(r);
                          copy->done = true;
                        }
                        signal->notify();
                      });
  return Status::ok();
}

Status StripeMover::finishCopy(Copy& c) {
  static Counter& moves = MetricsRegistry::global().counter("sluice_meta_stripe_moves_total", "stripe replicas moved (repair)");
  static Counter& bytes = MetricsRegistry::global().counter("sluice_meta_moved_bytes_total", "chunk bytes copied by stripe moves");
  const StripeMove& m = c.move;
  std::lock_guard lock(c.mu);
  if (!c.reply.isOk()) return c.reply.status();
  const auto& reply = *c.reply;
  if (!reply->result) return Status(StatusCode::kProtocolError, "FetchChunks: no result");
  const auto* resp = reply->result.get();
  // Switch only when every chunk the source listed is on the new home.
  if (resp->failed > 0) {
    return Status(StatusCode::kIoError, std::to_string(resp->failed) + " chunks could not be copied (" +
                                            resp->first_error + "); retried next round");
  }
  SLUICE_RETURN_IF_ERROR(store_.completeMove(m));
  moves_done_++;
  chunks_copied_ += resp->copied;
  bytes_copied_ += resp->bytes;
  moves.inc();
  bytes.inc(resp->bytes);
  spdlog::info("mover: stripe {}: node {} replaces node {} ({} chunks, {} bytes copied from node {})",
               m.stripe, m.to, m.from, resp->copied, resp->bytes, m.source);
  return Status::ok();
}

void StripeMover::findStrays() {
  static Counter& queued = MetricsRegistry::global().counter(
      "sluice_meta_stray_cleanups_queued_total",
      "cleanups queued for stripes a node held chunks of without being listed for them");
  // The map as it is now (this tick's moves may have switched stripes); a
  // cleanup queued from it is safe even once stale, as it checks the map
  // again when it runs.
  auto current = store_.clusterMap();
  auto moves = store_.listMoves();
  auto cleanups = store_.listCleanups();
  if (!current.isOk() || !moves.isOk() || !cleanups.isOk()) return;
  const ClusterMap& map = *current;
  std::set<std::pair<uint64_t, uint32_t>> skip;  // copy targets, and cleanups already queued
  for (const auto& m : *moves) skip.insert({m.to, m.stripe});
  for (const auto& c : *cleanups) skip.insert({c.node, c.stripe});
  std::vector<StripeCleanup> found;
  // Copies no version references (an upload in flight, garbage, orphans)
  // are left to gc, so a stray stripe can come back every check unchanged:
  // it is queued again, but counted and logged only when its chunk count
  // changed since the last check.
  std::map<std::pair<uint64_t, uint32_t>, uint64_t> seen;
  size_t changed = 0;
  for (const auto& n : map.nodes) {
    if (n.state != NodeState::kUp) continue;
    auto peer = endpoint_.connect(n.address);
    if (!peer.isOk()) continue;
    storage::StripeStatsRequestT req;  // no stripes named: all it holds
    auto stats = wire::typedCall<storage::StripeStatsRequest, storage::StripeStatsResponse>(
        endpoint_, *peer, storageOp(storage::StorageMethod::StripeStats), req, "StripeStats",
        options_.call_timeout);
    if (!stats.isOk()) {
      spdlog::debug("mover: stray check of node {}: {}", n.id, stats.status().toString());
      continue;
    }
    for (const auto& st : (*stats)->stats) {
      const uint32_t s = st.stripe();
      if (st.chunks() == 0 || s >= map.stripe_count || skip.count({n.id, s})) continue;
      const auto slots = map.slots(s);
      if (std::find(slots.begin(), slots.end(), n.id) != slots.end()) continue;
      found.push_back({n.id, s});
      seen[{n.id, s}] = st.chunks();
      auto before = stray_chunks_seen_.find({n.id, s});
      if (before == stray_chunks_seen_.end() || before->second != st.chunks()) ++changed;
    }
  }
  stray_chunks_seen_ = std::move(seen);
  if (found.empty()) return;
  if (Status st = store_.queueCleanups(found); !st.isOk()) {
    spdlog::warn("mover: queueing cleanups of stray copies: {}", st.toString());
    return;
  }
  if (changed == 0) return;
  stray_cleanups_queued_ += changed;
  queued.inc(changed);
  spdlog::info("mover: {} stripes have copies on nodes the map does not list for them (puts made with "
               "an older map); their cleanups are queued",
               changed);
}

std::vector<StripeMover::LostChunk> StripeMover::lostChunks() const {
  std::lock_guard lock(lost_mu_);
  return lost_;
}

void StripeMover::repairCorrupt(const ClusterMap& map) {
  static Counter& repaired = MetricsRegistry::global().counter(
      "sluice_meta_corrupt_chunks_repaired_total", "quarantined chunks fetched again from a replica");
  static Gauge& lost_gauge = MetricsRegistry::global().gauge(
      "sluice_meta_chunks_lost", "quarantined chunks still in use with no good copy on any up node of their stripe");
  std::map<uint64_t, NodeState> state;
  for (const auto& n : map.nodes) state[n.id] = n.state;
  auto isUp = [&](uint64_t id) {
    auto it = state.find(id);
    return it != state.end() && (it->second == NodeState::kUp || it->second == NodeState::kDraining);
  };
  // Does an up node of the stripe (other than `skip`) hold the chunk? Each
  // that does is offered to `found` (which returns true to stop asking);
  // nullopt when one could not be asked, so the answer is not known.
  auto holders = [&](const storage::Hash& id, uint32_t stripe, uint64_t skip,
                     const std::function<bool(uint64_t)>& found) -> std::optional<bool> {
    storage::HasChunksRequestT has;
    has.ids.push_back(id);
    bool any = false, unknown = false;
    const size_t width = map.max_replicas;
    for (size_t i = 0; i < width; ++i) {
      const uint64_t other = map.replicas[size_t{stripe} * width + i];
      if (other == 0 || other == skip || !isUp(other)) continue;
      auto op = peerOf(other, map);
      auto there = op.isOk() ? wire::typedCall<storage::HasChunksRequest, storage::HasChunksResponse>(
                                   endpoint_, *op, storageOp(storage::StorageMethod::HasChunks), has, "HasChunks",
                                   options_.call_timeout)
                             : Result<std::unique_ptr<storage::HasChunksResponseT>>(op.status());
      if (!there.isOk() || there->get()->lengths.size() != 1) {
        unknown = true;
        continue;
      }
      if (there->get()->lengths[0] == 0) continue;
      any = true;
      if (found(other)) break;
    }
    if (any) return true;
    if (unknown) return std::nullopt;
    return false;
  };
  const std::vector<LostChunk> before = lostChunks();
  std::map<Hash128, LostChunk> lost;
  std::set<uint64_t> reported;  // nodes whose reports were read this pass
  auto stillUsed = [&](const Hash128& id) {
    auto users = store_.chunkUsers(std::span(&id, 1), 0);
    return !users.isOk() || !users->users.empty();  // unknown counts as used
  };
  auto wasLost = [&](const Hash128& id) {
    return std::any_of(before.begin(), before.end(), [&](const LostChunk& l) { return l.chunk == id; });
  };
  for (const auto& n : map.nodes) {
    if (stopping()) return;
    if (!isUp(n.id)) continue;
    auto peer = endpoint_.connect(n.address);
    if (!peer.isOk()) continue;
    storage::NodeStatsRequestT req;
    auto st = wire::typedCall<storage::NodeStatsRequest, storage::NodeStatsResponse>(
        endpoint_, *peer, storageOp(storage::StorageMethod::NodeStats), req, "NodeStats", options_.call_timeout);
    if (!st.isOk()) continue;
    reported.insert(n.id);
    for (const auto& bad : (*st)->recent_corrupt) {
      if (!bad || !bad->id || bad->stripe >= map.stripe_count) continue;
      const Hash128 id{bad->id->hi(), bad->id->lo()};
      storage::HasChunksRequestT has;
      has.ids.push_back(*bad->id);
      auto here = wire::typedCall<storage::HasChunksRequest, storage::HasChunksResponse>(
          endpoint_, *peer, storageOp(storage::StorageMethod::HasChunks), has, "HasChunks", options_.call_timeout);
      if (!here.isOk() || here->get()->lengths.size() != 1) {
        if (wasLost(id)) lost[id] = LostChunk{id, bad->stripe, n.id};  // not known: as before
        continue;
      }
      if (here->get()->lengths[0] != 0) continue;  // back already
      // Fetched again from the first up node of the stripe that has it.
      auto copy = holders(*bad->id, bad->stripe, n.id, [&](uint64_t other) {
        storage::FetchChunksRequestT fetch;
        fetch.stripe = bad->stripe;
        for (const auto& m : map.nodes) {
          if (m.id == other) fetch.source = m.address;
        }
        fetch.ids.push_back(*bad->id);
        auto got = wire::typedCall<storage::FetchChunksRequest, storage::FetchChunksResponse>(
            endpoint_, *peer, storageOp(storage::StorageMethod::FetchChunks), fetch, "FetchChunks",
            options_.transfer_timeout);
        if (!got.isOk() || !(*got)->result || (*got)->result->copied != 1) return false;
        corrupt_repaired_++;
        repaired.inc();
        spdlog::warn("mover: node {} chunk {} (stripe {}) was corrupt; fetched again from node {}", n.id, id.toHex(),
                     bad->stripe, other);
        return true;
      });
      if (copy == true) continue;
      // No up node of the stripe has it (or one could not be asked, and it
      // was lost before). Lost, unless no version uses it any more (deleted
      // and collected since it was quarantined).
      if ((copy == false || wasLost(id)) && stillUsed(id)) lost[id] = LostChunk{id, bad->stripe, n.id};
    }
  }
  // Losses found by nodes whose reports could not be read this pass (down,
  // restarting, not answering) stay until a copy shows up or no version
  // uses the chunk.
  for (const LostChunk& l : before) {
    if (reported.count(l.found_on) != 0 || lost.count(l.chunk) != 0) continue;
    const storage::Hash id(l.chunk.hi, l.chunk.lo);
    if (holders(id, l.stripe, 0, [](uint64_t) { return true; }) != true && stillUsed(l.chunk)) lost[l.chunk] = l;
  }
  std::vector<LostChunk> now;
  for (const auto& [id, l] : lost) now.push_back(l);
  if (now.size() > before.size()) {
    spdlog::error("mover: {} chunk(s) in use have no good copy on any up node of their stripe; "
                  "'sluice scrub' names the files that use them",
                  now.size());
  }
  lost_gauge.set(static_cast<int64_t>(now.size()));
  std::lock_guard lock(lost_mu_);
  lost_ = std::move(now);
}

Status StripeMover::cleanup(const StripeCleanup& c, const ClusterMap& map) {
  SLUICE_ASSIGN_OR_RETURN(net::PeerId peer, peerOf(c.node, map));
  std::vector<Hash128> held;
  storage::ListStripeRequestT list;
  list.stripe = c.stripe;
  for (;;) {
    SLUICE_ASSIGN_OR_RETURN(auto page, (wire::typedCall<storage::ListStripeRequest, storage::ListStripeResponse>(
                                           endpoint_, peer, storageOp(storage::StorageMethod::ListStripe),
                                           list, "ListStripe", options_.call_timeout)));
    // Ids must rise page after page, or a faulty node could keep this list
    // growing without end.
    for (const auto& id : page->ids) {
      const Hash128 h{id.hi(), id.lo()};
      if (!held.empty() && !(held.back() < h)) {
        return protocolError("ListStripe of stripe " + std::to_string(c.stripe) + " on node " +
                             std::to_string(c.node) + " did not answer in rising id order");
      }
      held.push_back(h);
    }
    if (!page->more || page->ids.empty()) break;
    list.has_after = true;
    list.after = std::make_unique<storage::Hash>(toWire(held.back()));
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<uint32_t> needed, store_.chunkReplication(held));
  const uint32_t width = map.max_replicas;
  const auto slots = map.slots(c.stripe);
  auto at = std::find(slots.begin(), slots.end(), c.node);
  const uint32_t my_slot = at == slots.end() ? UINT32_MAX : static_cast<uint32_t>(at - slots.begin());

  // A chunk leaves this node only once every node the map gives it holds it
  // (an upload that wrote here with the old map, after the copy, is copied
  // over first): a cleanup never lowers the number of copies.
  std::map<uint64_t, std::vector<size_t>> check;  // holder node -> candidate indices
  std::vector<bool> candidate(held.size(), false);
  for (size_t i = 0; i < held.size(); ++i) {
    if (needed[i] == 0 || (my_slot != UINT32_MAX && my_slot < needed[i])) continue;
    candidate[i] = true;
    for (uint32_t j = 0; j < std::min(needed[i], width); ++j) {
      if (slots[j] != 0 && slots[j] != c.node) check[slots[j]].push_back(i);
    }
  }
  std::map<uint64_t, NodeState> state;
  std::map<uint64_t, std::string> address;
  for (const auto& n : map.nodes) {
    state[n.id] = n.state;
    address[n.id] = n.address;
  }
  bool held_back = false;
  for (const auto& [holder, indices] : check) {
    if (stopping()) return unavailable("the metadata server is stopping");
    if (state[holder] != NodeState::kUp && state[holder] != NodeState::kDraining) {
      for (size_t i : indices) candidate[i] = false;
      held_back = true;
      continue;
    }
    SLUICE_ASSIGN_OR_RETURN(net::PeerId hp, peerOf(holder, map));
    storage::HasChunksRequestT has;
    for (size_t i : indices) has.ids.push_back(toWire(held[i]));
    SLUICE_ASSIGN_OR_RETURN(auto lengths, (wire::typedCall<storage::HasChunksRequest, storage::HasChunksResponse>(
                                              endpoint_, hp, storageOp(storage::StorageMethod::HasChunks), has,
                                              "HasChunks", options_.call_timeout)));
    if (lengths->lengths.size() != indices.size()) return Status(StatusCode::kProtocolError, "HasChunks: wrong count");
    storage::FetchChunksRequestT fetch;
    fetch.stripe = c.stripe;
    fetch.source = address[c.node];
    for (size_t k = 0; k < indices.size(); ++k) {
      if (lengths->lengths[k] == 0) fetch.ids.push_back(toWire(held[indices[k]]));
    }
    if (fetch.ids.empty()) continue;
    auto copied = wire::typedCall<storage::FetchChunksRequest, storage::FetchChunksResponse>(
        endpoint_, hp, storageOp(storage::StorageMethod::FetchChunks), fetch, "FetchChunks", options_.transfer_timeout);
    if (!copied.isOk() || !(*copied)->result || (*copied)->result->failed > 0) {
      for (size_t i : indices) candidate[i] = false;
      held_back = true;
      continue;
    }
    spdlog::info("mover: stripe {}: {} chunks only node {} had were copied to node {} before its cleanup",
                 c.stripe, fetch.ids.size(), c.node, holder);
  }
  storage::DeleteChunksRequestT del;
  for (size_t i = 0; i < held.size(); ++i) {
    if (candidate[i]) del.ids.push_back(toWire(held[i]));
  }
  uint64_t deleted = 0;
  if (!del.ids.empty()) {
    SLUICE_ASSIGN_OR_RETURN(auto resp, (wire::typedCall<storage::DeleteChunksRequest, storage::DeleteChunksResponse>(
                                           endpoint_, peer, storageOp(storage::StorageMethod::DeleteChunks),
                                           del, "DeleteChunks", options_.call_timeout)));
    deleted = resp->deleted_count;
  }
  chunks_deleted_ += deleted;
  if (held_back) return unavailable("some copies could not be checked; the cleanup is retried");
  SLUICE_RETURN_IF_ERROR(store_.finishCleanup(c));
  cleanups_done_++;
  spdlog::info("mover: node {} stripe {}: {} of {} chunks deleted (no longer its to hold)", c.node, c.stripe,
               deleted, held.size());
  return Status::ok();
}

}  // namespace sluice::meta
