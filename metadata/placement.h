// Stripe placement: which nodes hold each stripe.
//
// placeStripes() is a pure function of the current map and the candidate
// nodes, so it is tested directly. Contract:
// - Every stripe's replicas are distinct node ids, at most max_replicas, with
//   empty slots (0) trailing.
// - Only `eligible` nodes receive new slots; replicas on other nodes are
//   kept (a down node keeps its stripes until repair/rebalance moves them)
//   unless the node is absent from `nodes` (removed).
// - allow_moves = false (the cluster holds data): existing replicas never
//   move; only empty slots are filled. allow_moves = true (no data yet):
//   stripes are reassigned from scratch so each node holds slots in
//   proportion to its capacity (nothing is stored yet, so nothing moves).
#pragma once

#include <cstdint>
#include <vector>

namespace sluice::meta {

struct PlacementNode {
  uint64_t id = 0;
  uint64_t capacity_bytes = 0;
  bool eligible = true;  // up and not draining
};

std::vector<uint64_t> placeStripes(const std::vector<uint64_t>& current, uint32_t stripe_count,
                                   uint32_t max_replicas, const std::vector<PlacementNode>& nodes,
                                   bool allow_moves);

}  // namespace sluice::meta
