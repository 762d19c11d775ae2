// ClusterMap: the client's copy of meta's stripe map, validated on arrival.
//
// A chunk's stripe is stripeOf(id, stripeCount()); its replicas are the first
// `replication` nodes of that stripe. Clients compute placement themselves
// and only return to meta when the epoch moves.
//
// Thread safety: immutable after construction; share as shared_ptr<const>.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/codec/hash128.h"
#include "common/core/result.h"
#include "common/wire/meta_generated.h"

namespace sluice::client {

using NodeId = uint64_t;

struct NodeEntry {
  NodeId id = 0;
  std::string address;  // "host:port"
  wire::meta::NodeState state = wire::meta::NodeState::Up;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t chunk_count = 0;
};

class ClusterMap {
 public:
  // Largest shapes accepted from the wire.
  static constexpr uint32_t kMaxStripes = 1u << 20;
  static constexpr uint32_t kMaxReplicas = 16;

  // Checks everything a hostile or buggy meta could send: shape, bounds,
  // node ids that exist, no node twice in one stripe, empty slots trailing.
  static Result<ClusterMap> fromResponse(const wire::meta::GetClusterMapResponseT& response);

  uint64_t epoch() const { return epoch_; }
  uint32_t stripeCount() const { return stripe_count_; }
  uint32_t maxReplicas() const { return max_replicas_; }
  const Hash128& clusterId() const { return cluster_id_; }

  // Node ids holding `stripe`, in replica order, at most `replication`.
  std::vector<NodeId> stripeNodes(uint32_t stripe, uint32_t replication) const;
  std::vector<NodeId> replicasOf(const ChunkId& chunk, uint32_t replication) const {
    return stripeNodes(stripeOf(chunk, stripe_count_), replication);
  }

  const NodeEntry* node(NodeId id) const;
  const std::vector<NodeEntry>& nodes() const { return nodes_; }

 private:
  uint64_t epoch_ = 0;
  uint32_t stripe_count_ = 0;
  uint32_t max_replicas_ = 0;
  Hash128 cluster_id_;
  std::vector<NodeId> replicas_;  // stripe_count_ * max_replicas_
  std::vector<NodeEntry> nodes_;
  std::unordered_map<NodeId, size_t> node_index_;
};

}  // namespace sluice::client
