// Repair bookkeeping of MetaStore: planned stripe moves, the map switch when
// a copy is done, and the cleanups owed by nodes that left a stripe.
//
// Layouts: kMoves   stripe (BE32) -> from, to, source (BE64 each), created_ms (BE64)
//          kCleanups node (BE64) + stripe (BE32) -> ""
#include <algorithm>
#include <map>
#include <set>

#include "metadata/meta_store.h"
#include "metadata/store_internal.h"

namespace sluice::meta {

using namespace internal;

namespace {

std::string moveKey(uint32_t stripe) {
  std::string k;
  putBe32(k, stripe);
  return k;
}

std::string encodeMove(const StripeMove& m) {
  std::string v;
  putBe64(v, m.from);
  putBe64(v, m.to);
  putBe64(v, m.source);
  putBe64(v, static_cast<uint64_t>(m.created_ms));
  putBe64(v, m.rate_bytes_per_sec);
  return v;
}

Result<StripeMove> decodeMove(std::string_view key, std::string_view v) {
  if (key.size() != 4 || (v.size() != 32 && v.size() != 40)) return corruption("stripe move record: bad size");
  StripeMove m;
  m.stripe = getBe32(key.data());
  m.from = getBe64(v.data());
  m.to = getBe64(v.data() + 8);
  m.source = getBe64(v.data() + 16);
  m.created_ms = static_cast<int64_t>(getBe64(v.data() + 24));
  if (v.size() == 40) m.rate_bytes_per_sec = getBe64(v.data() + 32);
  return m;
}

std::string cleanupKey(uint64_t node, uint32_t stripe) {
  std::string k;
  putBe64(k, node);
  putBe32(k, stripe);
  return k;
}

// The slots of one stripe in the flat map.
std::span<uint64_t> slotsOf(std::vector<uint64_t>& map, uint32_t stripe, uint32_t width) {
  return std::span<uint64_t>(map.data() + size_t{stripe} * width, width);
}

// Applies a move to one stripe's slots: `to` takes `from`'s slot; if `to`
// was further down the list, `from` takes its slot (a swap). False if the
// stripe no longer matches the move.
bool applyMove(std::span<uint64_t> slots, const StripeMove& m) {
  auto f = std::find(slots.begin(), slots.end(), m.from);
  if (f == slots.end()) return false;
  auto t = std::find(slots.begin(), slots.end(), m.to);
  if (t != slots.end()) {
    if (t < f) return false;
    std::swap(*f, *t);
  } else {
    *f = m.to;
  }
  return true;
}

}  // namespace

Result<uint32_t> internal::dataSlots(const Txn& txn) {
  uint32_t slots = 0;
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kDatasets));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
  while (ok) {
    SLUICE_ASSIGN_OR_RETURN(DatasetRecord d, decodeDataset(c.value()));
    slots = std::max<uint32_t>(slots, d.replication);
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return slots;
}

Result<uint64_t> internal::dropMovesFrom(Txn& txn, uint64_t node) {
  std::vector<StripeMove> leaving;
  {
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kMoves));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
    while (ok) {
      SLUICE_ASSIGN_OR_RETURN(StripeMove m, decodeMove(c.key(), c.value()));
      if (m.from == node) leaving.push_back(m);
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
  }
  for (const StripeMove& m : leaving) {
    SLUICE_RETURN_IF_ERROR(txn.del(Db::kMoves, moveKey(m.stripe)));
    SLUICE_RETURN_IF_ERROR(txn.put(Db::kCleanups, cleanupKey(m.to, m.stripe), ""));
  }
  return leaving.size();
}

Result<std::vector<StripeMove>> MetaStore::planRepairs(const std::vector<uint64_t>& nodes) {
  std::vector<StripeMove> planned;
  if (nodes.empty()) return planned;
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(std::vector<uint64_t> map, loadMap(txn, params_));
  SLUICE_ASSIGN_OR_RETURN(std::vector<NodeRecord> records, loadNodes(txn));
  std::set<uint64_t> up, draining;
  std::map<uint64_t, uint64_t> load;  // slots held, to spread new homes
  for (const auto& n : records) {
    if (n.state == NodeState::kUp) up.insert(n.id);
    if (n.state == NodeState::kDraining) draining.insert(n.id);
  }
  for (uint64_t id : map) {
    if (id != 0) load[id]++;
  }
  // Only nodes still down or draining in this transaction: the caller's list
  // comes from an older map, and a drain called off (or a node back up)
  // since must not have moves planned away from it again.
  std::set<uint64_t> leaving;
  for (const auto& n : records) {
    const bool asked = std::find(nodes.begin(), nodes.end(), n.id) != nodes.end();
    if (asked && (n.state == NodeState::kDown || n.state == NodeState::kDraining)) leaving.insert(n.id);
  }
  if (leaving.empty()) return planned;  // the transaction aborts unwritten
  const uint32_t width = params_.max_replicas;
  for (uint32_t s = 0; s < params_.stripe_count; ++s) {
    SLUICE_ASSIGN_OR_RETURN(auto pending, txn.find(Db::kMoves, moveKey(s)));
    if (pending) continue;
    auto slots = slotsOf(map, s, width);
    auto f = std::find_if(slots.begin(), slots.end(), [&](uint64_t id) { return leaving.count(id) != 0; });
    if (f == slots.end()) continue;
    StripeMove m;
    m.stripe = s;
    m.from = *f;
    // A live node outside the stripe, least loaded; else a live node further
    // down this stripe's list.
    uint64_t best = 0;
    for (uint64_t id : up) {
      if (std::find(slots.begin(), slots.end(), id) != slots.end()) continue;
      if (best == 0 || load[id] < load[best]) best = id;
    }
    if (best == 0) {
      // The last live node of the list: the down node goes to the end, past
      // the slots that hold data of the less replicated datasets.
      for (auto t = slots.end(); t != f + 1;) {
        --t;
        if (*t != 0 && up.count(*t) != 0) {
          best = *t;
          break;
        }
      }
    }
    if (best == 0) continue;  // no node can take it: wait for one
    m.to = best;
    // The source: a draining node copies its own stripes; otherwise the
    // first live replica other than the two (it holds the most: slot i holds
    // the chunks of every dataset replicated i+1 times or more).
    if (draining.count(m.from) != 0) m.source = m.from;
    for (uint64_t id : slots) {
      if (m.source != 0) break;
      if (id != 0 && id != m.from && id != m.to && up.count(id) != 0) m.source = id;
    }
    if (m.source == 0) continue;  // no live copy to copy from
    m.created_ms = nowMs();
    SLUICE_RETURN_IF_ERROR(txn.put(Db::kMoves, moveKey(s), encodeMove(m)));
    load[m.to]++;
    planned.push_back(m);
  }
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return planned;
}

Result<RebalancePlan> MetaStore::planRebalance(bool apply, uint64_t rate_bytes_per_sec) {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(std::vector<uint64_t> map, loadMap(txn, params_));
  SLUICE_ASSIGN_OR_RETURN(std::vector<NodeRecord> records, loadNodes(txn));
  SLUICE_ASSIGN_OR_RETURN(uint32_t data_slots, dataSlots(txn));
  const uint32_t width = params_.max_replicas;
  data_slots = std::min(data_slots, width);
  RebalancePlan plan;
  std::map<uint64_t, RebalanceNode*> by_id;
  plan.nodes.reserve(records.size());
  uint64_t total_capacity = 0;
  for (const auto& n : records) {
    if (n.state != NodeState::kUp) continue;
    plan.nodes.push_back({n.id, n.capacity_bytes, n.used_bytes, 0, 0});
    total_capacity += n.capacity_bytes;
  }
  for (auto& n : plan.nodes) by_id[n.id] = &n;
  if (plan.nodes.empty() || data_slots == 0 || total_capacity == 0) return plan;
  for (uint32_t s = 0; s < params_.stripe_count; ++s) {
    for (uint32_t i = 0; i < data_slots; ++i) {
      auto it = by_id.find(map[size_t{s} * width + i]);
      if (it != by_id.end()) it->second->slots_before++;
    }
  }
  // Each up node's fair share of the data slots, by capacity.
  uint64_t total_slots = uint64_t{params_.stripe_count} * data_slots;
  std::map<uint64_t, double> target;
  for (const auto& n : plan.nodes) {
    target[n.id] = static_cast<double>(total_slots) * static_cast<double>(n.capacity_bytes) /
                   static_cast<double>(total_capacity);
  }
  std::map<uint64_t, uint64_t> held;
  for (const auto& n : plan.nodes) held[n.id] = n.slots_before;
  // Greedy, stripe by stripe: a slot of a node above its share goes to the
  // node furthest below its share that the stripe's data slots do not list.
  // A node in a slot past them (a node back from repair, which swapped it
  // there, or one that filled a slot a removed node left) holds none of the
  // stripe's data, so it may take the slot: the move swaps the two.
  for (uint32_t s = 0; s < params_.stripe_count; ++s) {
    SLUICE_ASSIGN_OR_RETURN(auto pending, txn.find(Db::kMoves, moveKey(s)));
    if (pending) continue;
    auto slots = slotsOf(map, s, width);
    const auto holding = slots.first(data_slots);
    for (uint32_t i = 0; i < data_slots; ++i) {
      uint64_t from = slots[i];
      if (by_id.count(from) == 0) continue;  // down or draining: repair's and drain's business
      if (static_cast<double>(held[from]) <= target[from] + 0.5) continue;
      uint64_t best = 0;
      double best_gap = 0.5;
      for (const auto& n : plan.nodes) {
        if (std::find(holding.begin(), holding.end(), n.id) != holding.end()) continue;
        double gap = target[n.id] - static_cast<double>(held[n.id]);
        if (gap > best_gap) {
          best_gap = gap;
          best = n.id;
        }
      }
      if (best == 0) continue;
      StripeMove m;
      m.stripe = s;
      m.from = from;
      m.to = best;
      m.source = from;  // up: it copies its own chunks
      m.created_ms = nowMs();
      m.rate_bytes_per_sec = rate_bytes_per_sec;
      const RebalanceNode* src = by_id[from];
      if (src->slots_before > 0) plan.bytes_to_copy += src->used_bytes / src->slots_before;
      held[from]--;
      held[best]++;
      applyMove(slots, m);  // at most one move per stripe
      plan.moves.push_back(m);
      break;
    }
  }
  for (auto& n : plan.nodes) n.slots_after = held[n.id];
  if (apply) {
    for (const auto& m : plan.moves) SLUICE_RETURN_IF_ERROR(txn.put(Db::kMoves, moveKey(m.stripe), encodeMove(m)));
    SLUICE_RETURN_IF_ERROR(txn.commit());
  }
  return plan;
}

Result<std::vector<StripeMove>> MetaStore::listMoves() const {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  std::vector<StripeMove> out;
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kMoves));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
  while (ok) {
    SLUICE_ASSIGN_OR_RETURN(StripeMove m, decodeMove(c.key(), c.value()));
    out.push_back(m);
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return out;
}

Status MetaStore::completeMove(const StripeMove& move) {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(auto pending, txn.find(Db::kMoves, moveKey(move.stripe)));
  if (!pending) return notFound("no pending move for stripe " + std::to_string(move.stripe));
  SLUICE_ASSIGN_OR_RETURN(StripeMove m, decodeMove(moveKey(move.stripe), *pending));
  if (m.from != move.from || m.to != move.to) {
    return Status(StatusCode::kConflict, "stripe " + std::to_string(move.stripe) + ": the pending move changed");
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<uint64_t> map, loadMap(txn, params_));
  if (!applyMove(slotsOf(map, m.stripe, params_.max_replicas), m)) {
    SLUICE_RETURN_IF_ERROR(txn.del(Db::kMoves, moveKey(m.stripe)));
    SLUICE_RETURN_IF_ERROR(txn.commit());
    return Status(StatusCode::kConflict, "stripe " + std::to_string(m.stripe) +
                                             ": the map changed under the move; it is planned anew");
  }
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kMeta, kKeyStripeMap, encodeMap(map)));
  SLUICE_ASSIGN_OR_RETURN(uint64_t epoch, getU64(txn, kKeyEpoch));
  SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyEpoch, epoch + 1));
  SLUICE_RETURN_IF_ERROR(txn.del(Db::kMoves, moveKey(m.stripe)));
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kCleanups, cleanupKey(m.from, m.stripe), ""));
  return txn.commit();
}

Status MetaStore::dropMove(uint32_t stripe) {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(auto pending, txn.find(Db::kMoves, moveKey(stripe)));
  if (!pending) return Status::ok();
  SLUICE_ASSIGN_OR_RETURN(StripeMove m, decodeMove(moveKey(stripe), *pending));
  SLUICE_RETURN_IF_ERROR(txn.del(Db::kMoves, moveKey(stripe)));
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kCleanups, cleanupKey(m.to, stripe), ""));
  return txn.commit();
}

Result<std::vector<StripeCleanup>> MetaStore::listCleanups() const {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  std::vector<StripeCleanup> out;
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kCleanups));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
  while (ok) {
    if (c.key().size() != 12) return corruption("cleanup key: bad size");
    out.push_back({getBe64(c.key().data()), getBe32(c.key().data() + 8)});
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return out;
}

Status MetaStore::finishCleanup(const StripeCleanup& cleanup) {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_RETURN_IF_ERROR(txn.del(Db::kCleanups, cleanupKey(cleanup.node, cleanup.stripe)));
  return txn.commit();
}

Status MetaStore::queueCleanups(const std::vector<StripeCleanup>& cleanups) {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  for (const auto& c : cleanups) SLUICE_RETURN_IF_ERROR(txn.put(Db::kCleanups, cleanupKey(c.node, c.stripe), ""));
  return txn.commit();
}

Result<std::vector<uint32_t>> MetaStore::chunkReplication(const std::vector<Hash128>& chunks) const {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  std::map<uint64_t, uint32_t> replication;  // dataset id -> replication
  {
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kDatasets));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
    while (ok) {
      SLUICE_ASSIGN_OR_RETURN(DatasetRecord d, decodeDataset(c.value()));
      replication[d.id] = d.replication;
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
  }
  std::vector<uint32_t> out(chunks.size(), 0);
  SLUICE_ASSIGN_OR_RETURN(Cursor users, Cursor::open(txn, Db::kChunkUsers));
  for (size_t i = 0; i < chunks.size(); ++i) {
    std::string prefix = chunkKey(chunks[i]);
    SLUICE_ASSIGN_OR_RETURN(bool ok, users.seek(prefix));
    while (ok && users.key().substr(0, prefix.size()) == prefix) {
      if (users.key().size() >= prefix.size() + 8) {
        auto it = replication.find(getBe64(users.key().data() + prefix.size()));
        // A user whose dataset is gone still counts: keep its chunk.
        out[i] = std::max<uint32_t>(out[i], it != replication.end() ? it->second : params_.max_replicas);
      }
      SLUICE_ASSIGN_OR_RETURN(ok, users.next());
    }
  }
  return out;
}

}  // namespace sluice::meta
