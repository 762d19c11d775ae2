// MetaStore: opening the cluster, nodes and the stripe map.
#include "metadata/meta_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "common/net/address.h"
#include "metadata/encoding.h"
#include "metadata/limits.h"
#include "metadata/placement.h"
#include "metadata/store_internal.h"

namespace sluice::meta {

using namespace internal;

const char* nodeStateName(NodeState s) {
  switch (s) {
    case NodeState::kUp: return "up";
    case NodeState::kDraining: return "draining";
    case NodeState::kDown: return "down";
    case NodeState::kRemoved: return "removed";
  }
  return "unknown";
}

namespace {

Hash128 randomClusterId() {
  Hash128 id;
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    uint64_t buf[2] = {0, 0};
    if (::read(fd, buf, sizeof(buf)) == static_cast<ssize_t>(sizeof(buf))) {
      id = Hash128{buf[0], buf[1]};
    }
    ::close(fd);
  }
  if (id.isZero()) {
    std::random_device rd;
    id = Hash128{(uint64_t{rd()} << 32) | rd(), (uint64_t{rd()} << 32) | rd()};
  }
  return id;
}

Status checkClusterId(const Hash128& given, const Hash128& ours) {
  if (given != ours) {
    return failedPrecondition("node belongs to cluster " + given.toHex() +
                              " but this metadata server serves cluster " + ours.toHex() +
                              "; point the node at its own cluster or wipe its data dir");
  }
  return Status::ok();
}

}  // namespace

std::string internal::encodeMap(const std::vector<uint64_t>& replicas) {
  return std::string(reinterpret_cast<const char*>(replicas.data()), replicas.size() * 8);
}

Result<std::vector<uint64_t>> internal::loadMap(const Txn& txn, const ClusterParams& p) {
  SLUICE_ASSIGN_OR_RETURN(std::string_view v, txn.get(Db::kMeta, kKeyStripeMap));
  size_t slots = size_t{p.stripe_count} * p.max_replicas;
  if (v.size() != slots * 8) return corruption("stripe map: bad size");
  std::vector<uint64_t> out(slots);
  std::memcpy(out.data(), v.data(), v.size());
  return out;
}

Result<std::vector<NodeRecord>> internal::loadNodes(const Txn& txn) {
  std::vector<NodeRecord> out;
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kNodes));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
  while (ok) {
    if (c.key().size() != 8) return corruption("node key: bad size");
    SLUICE_ASSIGN_OR_RETURN(NodeRecord n, decodeNode(getBe64(c.key().data()), c.value()));
    out.push_back(std::move(n));
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return out;
}


MetaStore::MetaStore(MetaStoreOptions options, std::unique_ptr<LmdbEnv> env)
    : options_(std::move(options)), env_(std::move(env)) {
  clock_ = options_.clock != nullptr ? options_.clock : &Clock::real();
}

int64_t MetaStore::nowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             clock_->wallNow().time_since_epoch())
      .count();
}

int64_t MetaStore::steadyMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_->now().time_since_epoch())
      .count();
}

MetaStore::~MetaStore() = default;

Result<std::unique_ptr<MetaStore>> MetaStore::open(const MetaStoreOptions& options) {
  if (options.stripe_count == 0 || options.stripe_count > kMaxStripes) {
    return invalidArgument("stripe_count: must be 1.." + std::to_string(kMaxStripes));
  }
  if (options.max_replicas == 0 || options.max_replicas > kMaxReplicas) {
    return invalidArgument("max_replicas: must be 1.." + std::to_string(kMaxReplicas));
  }
  if (uint64_t{options.stripe_count} * options.max_replicas > kMaxStripeSlots) {
    return invalidArgument("stripe_count x max_replicas: at most " +
                           std::to_string(kMaxStripeSlots) + " slots");
  }
  if (options.default_replication == 0 || options.default_replication > options.max_replicas) {
    return invalidArgument("default_replication: must be 1..max_replicas (" +
                           std::to_string(options.max_replicas) + ")");
  }
  if (options.heartbeat_timeout_ms <= 0) {
    return invalidArgument("heartbeat_timeout: must be positive");
  }
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<LmdbEnv> env, LmdbEnv::open(options.lmdb));
  std::unique_ptr<MetaStore> store(new MetaStore(options, std::move(env)));
  SLUICE_RETURN_IF_ERROR(store->initCluster());
  return store;
}

Status MetaStore::initCluster() {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(auto id, txn.find(Db::kMeta, kKeyClusterId));
  if (!id) {
    // A new cluster: parameters from the options, fixed from now on.
    Hash128 cid = randomClusterId();
    ValueWriter w;
    w.hash(cid);
    SLUICE_RETURN_IF_ERROR(txn.put(Db::kMeta, kKeyClusterId, w.out()));
    SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyFormat, 1));
    SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyEpoch, 1));
    SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyStripeCount, options_.stripe_count));
    SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyMaxReplicas, options_.max_replicas));
    SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyDefaultReplication, options_.default_replication));
    SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyNextNodeId, 1));
    SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyNextDatasetId, 1));
    std::vector<uint64_t> empty(size_t{options_.stripe_count} * options_.max_replicas, 0);
    SLUICE_RETURN_IF_ERROR(txn.put(Db::kMeta, kKeyStripeMap, encodeMap(empty)));
  }
  SLUICE_ASSIGN_OR_RETURN(std::string_view cid, txn.get(Db::kMeta, kKeyClusterId));
  ValueReader r(cid, "cluster id");
  if (!r.hash(&params_.cluster_id)) return r.error();
  SLUICE_ASSIGN_OR_RETURN(uint64_t format, getU64(txn, kKeyFormat));
  if (format != 1) {
    return failedPrecondition("metadata directory " + options_.lmdb.dir + " has format " +
                              std::to_string(format) + "; this sluice-meta reads format 1");
  }
  SLUICE_ASSIGN_OR_RETURN(uint64_t sc, getU64(txn, kKeyStripeCount));
  SLUICE_ASSIGN_OR_RETURN(uint64_t mr, getU64(txn, kKeyMaxReplicas));
  SLUICE_ASSIGN_OR_RETURN(uint64_t dr, getU64(txn, kKeyDefaultReplication));
  if (sc == 0 || sc > kMaxStripes || mr == 0 || mr > kMaxReplicas || dr == 0 || dr > mr) {
    return corruption("cluster parameters out of range in " + options_.lmdb.dir);
  }
  params_.stripe_count = static_cast<uint32_t>(sc);
  params_.max_replicas = static_cast<uint32_t>(mr);
  params_.default_replication = static_cast<uint8_t>(dr);
  // gc epochs start at 1, in stores made before they existed too: their
  // tombstones read as epoch 1 and their drafts as epoch 0, so forgetting
  // those tombstones refuses those drafts (see pruneTombstones).
  SLUICE_ASSIGN_OR_RETURN(auto gc_epoch, txn.find(Db::kMeta, kKeyGcEpoch));
  if (!gc_epoch) SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyGcEpoch, 1));
  SLUICE_ASSIGN_OR_RETURN(std::vector<NodeRecord> nodes, loadNodes(txn));
  SLUICE_RETURN_IF_ERROR(txn.commit());
  int64_t now = steadyMs();
  std::lock_guard<std::mutex> lock(liveness_mu_);
  for (const NodeRecord& n : nodes) last_seen_[n.id] = now;
  return Status::ok();
}

// Recomputes placement from the node table. Bumps the epoch if the map or
// (node_states_changed) any node's state changed. Caller commits.
Status MetaStore::replaceMap(Txn& txn, bool node_states_changed) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<NodeRecord> nodes, loadNodes(txn));
  SLUICE_ASSIGN_OR_RETURN(std::vector<uint64_t> current, loadMap(txn, params_));
  std::vector<PlacementNode> candidates;
  for (const NodeRecord& n : nodes) {
    if (n.state == NodeState::kRemoved) continue;
    candidates.push_back({n.id, n.capacity_bytes, n.state == NodeState::kUp});
  }
  // Stripes move freely only while no data can exist. Chunk users appear
  // only when an upload names its files; its chunks are on the nodes before
  // that, from the moment its draft begins. Moved under them, they would sit
  // on nodes the map no longer lists for their stripe, unreadable until the
  // stray check copies them over.
  SLUICE_ASSIGN_OR_RETURN(uint64_t users, txn.count(Db::kChunkUsers));
  SLUICE_ASSIGN_OR_RETURN(uint64_t garbage, txn.count(Db::kGarbage));
  SLUICE_ASSIGN_OR_RETURN(uint64_t versions, txn.count(Db::kVersions));
  bool allow_moves = users == 0 && garbage == 0 && versions == 0;
  std::vector<uint64_t> next = placeStripes(current, params_.stripe_count, params_.max_replicas,
                                            candidates, allow_moves);
  bool changed = next != current;
  if (changed) SLUICE_RETURN_IF_ERROR(txn.put(Db::kMeta, kKeyStripeMap, encodeMap(next)));
  if (changed || node_states_changed) {
    SLUICE_ASSIGN_OR_RETURN(uint64_t epoch, getU64(txn, kKeyEpoch));
    SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyEpoch, epoch + 1));
  }
  return Status::ok();
}

namespace {

// A drain moves the node's stripes to the other up nodes, and uploads skip
// stripes with a draining replica. With fewer other up nodes than the
// largest replication, no stripe could keep its replicas: every upload
// would fail and the drain would never end.
Status checkOthersCanTakeItsStripes(const Txn& txn, uint64_t node_id, uint32_t max_replicas) {
  SLUICE_ASSIGN_OR_RETURN(uint32_t needed, dataSlots(txn));
  needed = std::min(needed, max_replicas);
  SLUICE_ASSIGN_OR_RETURN(std::vector<NodeRecord> nodes, loadNodes(txn));
  std::string others;
  uint32_t count = 0;
  for (const NodeRecord& n : nodes) {
    if (n.id == node_id || n.state != NodeState::kUp) continue;
    others += (count++ == 0 ? " (node " : ", node ") + std::to_string(n.id);
  }
  if (count >= needed) return Status::ok();
  return failedPrecondition("node " + std::to_string(node_id) + " cannot be drained: datasets replicated " +
                            std::to_string(needed) + " times need " + std::to_string(needed) +
                            " up nodes besides it to hold their stripes, and " + std::to_string(count) +
                            (count == 1 ? " is up" : " are up") + (count > 0 ? others + ")" : "") +
                            "; add a node or bring a down one back, then drain");
}

// What a node may advertise: an address others can connect to. A wildcard
// host or port 0 is what it listens on, not where to reach it.
Status checkNodeAddress(const std::string& address) {
  SLUICE_RETURN_IF_ERROR(net::checkAddress(address));
  if (net::isFabricName(address)) return Status::ok();
  SLUICE_ASSIGN_OR_RETURN(net::HostPort hp, net::parseHostPort(address));
  if (hp.host.empty() || hp.host == "0.0.0.0" || hp.host == "::" || hp.port == "0") {
    return invalidArgument("address \"" + address +
                           "\": a wildcard host or port 0 is not an address peers can reach; "
                           "start sluice-storage with --advertise host:port");
  }
  return Status::ok();
}

}  // namespace

Result<RegisterResult> MetaStore::registerNode(const Hash128& cluster_id, uint64_t node_id,
                                               std::string_view address, const NodeUsage& usage) {
  if (address.empty() || address.size() > kMaxAddressLength) {
    return invalidArgument("address: expected host:port of at most " +
                           std::to_string(kMaxAddressLength) + " bytes");
  }
  SLUICE_RETURN_IF_ERROR(checkNodeAddress(std::string(address)));
  if (node_id != 0 || !cluster_id.isZero()) {
    SLUICE_RETURN_IF_ERROR(checkClusterId(cluster_id, params_.cluster_id));
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  NodeRecord rec;
  bool state_changed = false;
  bool is_new = node_id == 0;
  if (is_new) {
    SLUICE_ASSIGN_OR_RETURN(node_id, getU64(txn, kKeyNextNodeId));
    SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyNextNodeId, node_id + 1));
    rec.id = node_id;
    state_changed = true;
  } else {
    SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kNodes, nodeKey(node_id)));
    if (!v) {
      return notFound("node " + std::to_string(node_id) +
                      " is not registered with this cluster; wipe its data dir to join anew");
    }
    SLUICE_ASSIGN_OR_RETURN(rec, decodeNode(node_id, *v));
    if (rec.state == NodeState::kRemoved) {
      return failedPrecondition("node " + std::to_string(node_id) +
                                " was removed from the cluster; wipe its data dir to join anew");
    }
    if (rec.state == NodeState::kDown) {
      rec.state = rec.drain_requested ? NodeState::kDraining : NodeState::kUp;
      state_changed = true;
    }
    state_changed |= rec.address != address || rec.capacity_bytes != usage.capacity_bytes;
  }
  rec.address = std::string(address);
  rec.capacity_bytes = usage.capacity_bytes;
  rec.used_bytes = usage.used_bytes;
  rec.chunk_count = usage.chunk_count;
  rec.last_heartbeat_ms = nowMs();
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kNodes, nodeKey(node_id), encodeNode(rec)));
  SLUICE_RETURN_IF_ERROR(replaceMap(txn, state_changed));
  SLUICE_ASSIGN_OR_RETURN(uint64_t epoch, getU64(txn, kKeyEpoch));
  {
    // Before the commit: markStaleNodesDown() checks last_seen_ inside its own
    // write transaction, so it either runs before this one or sees this time.
    std::lock_guard<std::mutex> lock(liveness_mu_);
    last_seen_[node_id] = steadyMs();
  }
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return RegisterResult{params_.cluster_id, node_id, epoch};
}

Result<HeartbeatResult> MetaStore::heartbeat(const Hash128& cluster_id, uint64_t node_id,
                                             const NodeUsage& usage) {
  SLUICE_RETURN_IF_ERROR(checkClusterId(cluster_id, params_.cluster_id));
  if (node_id == 0) return invalidArgument("node_id: 0 is not a node; register first");
  {
    // The node is alive as of now, even if this heartbeat then waits behind a
    // long write (a large version's delete): the sweeper must not mark it
    // down meanwhile. Only nodes already known are noted (ids are untrusted).
    std::lock_guard<std::mutex> lock(liveness_mu_);
    if (auto it = last_seen_.find(node_id); it != last_seen_.end()) it->second = steadyMs();
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kNodes, nodeKey(node_id)));
  if (!v) return notFound("node " + std::to_string(node_id) + " is not registered; register first");
  SLUICE_ASSIGN_OR_RETURN(NodeRecord rec, decodeNode(node_id, *v));
  if (rec.state == NodeState::kRemoved) {
    return failedPrecondition("node " + std::to_string(node_id) + " was removed from the cluster");
  }
  bool came_back = rec.state == NodeState::kDown;
  bool capacity_changed = rec.capacity_bytes != usage.capacity_bytes;
  if (came_back) rec.state = rec.drain_requested ? NodeState::kDraining : NodeState::kUp;
  rec.capacity_bytes = usage.capacity_bytes;
  rec.used_bytes = usage.used_bytes;
  rec.chunk_count = usage.chunk_count;
  rec.error_count = usage.error_count;
  rec.last_heartbeat_ms = nowMs();
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kNodes, nodeKey(node_id), encodeNode(rec)));
  if (came_back || capacity_changed) SLUICE_RETURN_IF_ERROR(replaceMap(txn, came_back));
  SLUICE_ASSIGN_OR_RETURN(uint64_t epoch, getU64(txn, kKeyEpoch));
  {
    // Before the commit, as in registerNode().
    std::lock_guard<std::mutex> lock(liveness_mu_);
    last_seen_[node_id] = steadyMs();
  }
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return HeartbeatResult{epoch, rec.state};
}

Result<ClusterMap> MetaStore::clusterMap() const {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  ClusterMap m;
  m.cluster_id = params_.cluster_id;
  m.stripe_count = params_.stripe_count;
  m.max_replicas = params_.max_replicas;
  SLUICE_ASSIGN_OR_RETURN(m.epoch, getU64(txn, kKeyEpoch));
  SLUICE_ASSIGN_OR_RETURN(m.replicas, loadMap(txn, params_));
  SLUICE_ASSIGN_OR_RETURN(m.nodes, loadNodes(txn));
  return m;
}

Result<uint64_t> MetaStore::mapEpoch() const {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  return getU64(txn, kKeyEpoch);
}

Result<std::vector<NodeRecord>> MetaStore::listNodes() const {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  return loadNodes(txn);
}

Result<NodeRecord> MetaStore::setNodeState(uint64_t node_id, NodeState state) {
  if (state == NodeState::kDown) {
    return invalidArgument("state: down is set by heartbeat timeouts, not by request");
  }
  if (state != NodeState::kUp && state != NodeState::kDraining && state != NodeState::kRemoved) {
    return invalidArgument("state: unknown node state " + std::to_string(static_cast<int>(state)));
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kNodes, nodeKey(node_id)));
  if (!v) return notFound("node " + std::to_string(node_id) + " does not exist");
  SLUICE_ASSIGN_OR_RETURN(NodeRecord rec, decodeNode(node_id, *v));
  if (rec.state == NodeState::kRemoved) {
    return failedPrecondition("node " + std::to_string(node_id) + " was removed");
  }
  if (state == NodeState::kRemoved) {
    // Refused while the node sits in a slot that holds data (the first R of
    // a stripe, R the largest replication of any dataset): it may hold the
    // only live copy of something.
    SLUICE_ASSIGN_OR_RETURN(uint32_t data_slots, dataSlots(txn));
    SLUICE_ASSIGN_OR_RETURN(std::vector<uint64_t> map, loadMap(txn, params_));
    uint64_t holding = 0;
    for (uint32_t s = 0; s < params_.stripe_count; ++s) {
      for (uint32_t i = 0; i < std::min(data_slots, params_.max_replicas); ++i) {
        holding += map[size_t{s} * params_.max_replicas + i] == node_id ? 1 : 0;
      }
    }
    if (holding > 0) {
      return failedPrecondition("node " + std::to_string(node_id) + " still holds data of " +
                                std::to_string(holding) + " stripes; move it off first: 'sluice node drain " +
                                std::to_string(node_id) + "' (or 'sluice repair' if the node is down)");
    }
  }
  if (state == NodeState::kDraining && rec.state == NodeState::kUp) {
    SLUICE_RETURN_IF_ERROR(checkOthersCanTakeItsStripes(txn, node_id, params_.max_replicas));
  }
  if (state == NodeState::kUp && rec.state == NodeState::kDown && !rec.drain_requested) {
    return failedPrecondition("node " + std::to_string(node_id) +
                              " is down; it comes up when it heartbeats again");
  }
  // Up for a draining node calls the drain off: the moves planned away from
  // it are dropped (it keeps the stripes it still holds). A down node whose
  // drain is called off stays down and forgets the request: its next
  // heartbeat brings it back up, not draining.
  if (state == NodeState::kUp && rec.state == NodeState::kDraining) {
    SLUICE_RETURN_IF_ERROR(dropMovesFrom(txn, node_id).status());
  }
  const bool undrain_while_down = state == NodeState::kUp && rec.state == NodeState::kDown;
  bool changed = rec.state != state && !undrain_while_down;
  if (!undrain_while_down) rec.state = state;
  if (state != NodeState::kRemoved) rec.drain_requested = state == NodeState::kDraining;
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kNodes, nodeKey(node_id), encodeNode(rec)));
  SLUICE_RETURN_IF_ERROR(replaceMap(txn, changed));
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return rec;
}

std::optional<int64_t> MetaStore::silentForMs(uint64_t node_id) const {
  std::lock_guard<std::mutex> lock(liveness_mu_);
  auto it = last_seen_.find(node_id);
  if (it == last_seen_.end()) return std::nullopt;
  return steadyMs() - it->second;
}

Result<std::vector<uint64_t>> MetaStore::markStaleNodesDown() {
  std::vector<uint64_t> stale;
  int64_t now = steadyMs();
  {
    SLUICE_ASSIGN_OR_RETURN(Txn rtxn, Txn::beginRead(*env_));
    SLUICE_ASSIGN_OR_RETURN(std::vector<NodeRecord> nodes, loadNodes(rtxn));
    std::lock_guard<std::mutex> lock(liveness_mu_);
    for (const NodeRecord& n : nodes) {
      if (n.state != NodeState::kUp && n.state != NodeState::kDraining) continue;
      auto it = last_seen_.find(n.id);
      int64_t seen = it == last_seen_.end() ? now : it->second;
      if (it == last_seen_.end()) last_seen_[n.id] = now;
      if (now - seen > options_.heartbeat_timeout_ms) stale.push_back(n.id);
    }
  }
  if (stale.empty()) return stale;
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  std::vector<uint64_t> marked;
  for (uint64_t id : stale) {
    SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kNodes, nodeKey(id)));
    if (!v) continue;
    SLUICE_ASSIGN_OR_RETURN(NodeRecord rec, decodeNode(id, *v));
    if (rec.state != NodeState::kUp && rec.state != NodeState::kDraining) continue;
    {
      // A heartbeat may have landed since the scan.
      std::lock_guard<std::mutex> lock(liveness_mu_);
      if (steadyMs() - last_seen_[id] <= options_.heartbeat_timeout_ms) continue;
    }
    rec.state = NodeState::kDown;
    SLUICE_RETURN_IF_ERROR(txn.put(Db::kNodes, nodeKey(id), encodeNode(rec)));
    marked.push_back(id);
  }
  if (!marked.empty()) SLUICE_RETURN_IF_ERROR(replaceMap(txn, true));
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return marked;
}

}  // namespace sluice::meta
