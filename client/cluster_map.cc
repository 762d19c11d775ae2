#include "client/cluster_map.h"

#include <algorithm>

namespace sluice::client {

Result<ClusterMap> ClusterMap::fromResponse(const wire::meta::GetClusterMapResponseT& r) {
  auto bad = [](const std::string& what) {
    return Status(StatusCode::kProtocolError, "cluster map from sluice-meta: " + what);
  };
  if (r.stripe_count == 0 || r.stripe_count > kMaxStripes) {
    return bad("stripe_count " + std::to_string(r.stripe_count) + " outside 1.." +
               std::to_string(kMaxStripes));
  }
  if (r.max_replicas == 0 || r.max_replicas > kMaxReplicas) {
    return bad("max_replicas " + std::to_string(r.max_replicas) + " outside 1.." +
               std::to_string(kMaxReplicas));
  }
  if (r.replicas.size() != static_cast<size_t>(r.stripe_count) * r.max_replicas) {
    return bad("replicas has " + std::to_string(r.replicas.size()) + " entries, expected " +
               std::to_string(static_cast<size_t>(r.stripe_count) * r.max_replicas));
  }
  ClusterMap map;
  map.epoch_ = r.epoch;
  map.stripe_count_ = r.stripe_count;
  map.max_replicas_ = r.max_replicas;
  if (r.cluster_id) map.cluster_id_ = Hash128{r.cluster_id->hi(), r.cluster_id->lo()};
  for (const auto& n : r.nodes) {
    if (!n) return bad("null node entry");
    if (n->id == 0) return bad("node with id 0");
    if (map.node_index_.count(n->id)) return bad("node " + std::to_string(n->id) + " listed twice");
    NodeEntry e{n->id, n->address, n->state, n->capacity_bytes, n->used_bytes, n->chunk_count};
    map.node_index_[n->id] = map.nodes_.size();
    map.nodes_.push_back(std::move(e));
  }
  for (uint32_t s = 0; s < r.stripe_count; ++s) {
    bool seen_empty = false;
    for (uint32_t i = 0; i < r.max_replicas; ++i) {
      NodeId id = r.replicas[static_cast<size_t>(s) * r.max_replicas + i];
      if (id == 0) {
        seen_empty = true;
        continue;
      }
      if (seen_empty) return bad("stripe " + std::to_string(s) + " has a gap before a replica");
      if (!map.node_index_.count(id)) {
        return bad("stripe " + std::to_string(s) + " names unknown node " + std::to_string(id));
      }
      for (uint32_t j = 0; j < i; ++j) {
        if (r.replicas[static_cast<size_t>(s) * r.max_replicas + j] == id) {
          return bad("stripe " + std::to_string(s) + " lists node " + std::to_string(id) + " twice");
        }
      }
    }
  }
  map.replicas_ = r.replicas;
  return map;
}

std::vector<NodeId> ClusterMap::stripeNodes(uint32_t stripe, uint32_t replication) const {
  std::vector<NodeId> out;
  if (stripe >= stripe_count_) return out;
  uint32_t n = std::min(replication, max_replicas_);
  for (uint32_t i = 0; i < n; ++i) {
    NodeId id = replicas_[static_cast<size_t>(stripe) * max_replicas_ + i];
    if (id == 0) break;
    out.push_back(id);
  }
  return out;
}

const NodeEntry* ClusterMap::node(NodeId id) const {
  auto it = node_index_.find(id);
  return it == node_index_.end() ? nullptr : &nodes_[it->second];
}

}  // namespace sluice::client
