#include "metadata/placement.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace sluice::meta {

namespace {
struct Share {
  double target = 0;  // slots this node should hold
  uint64_t held = 0;
  bool eligible = false;
};
}  // namespace

std::vector<uint64_t> placeStripes(const std::vector<uint64_t>& current, uint32_t stripe_count,
                                   uint32_t max_replicas, const std::vector<PlacementNode>& nodes,
                                   bool allow_moves) {
  const size_t slots = size_t{stripe_count} * max_replicas;
  std::vector<uint64_t> next(slots, 0);
  std::unordered_map<uint64_t, Share> share;
  uint64_t total_capacity = 0;
  size_t eligible_count = 0;
  for (const PlacementNode& n : nodes) {
    share[n.id].eligible = n.eligible;
    if (n.eligible) {
      total_capacity += std::max<uint64_t>(n.capacity_bytes, 1);
      ++eligible_count;
    }
  }
  const uint32_t width = static_cast<uint32_t>(std::min<size_t>(max_replicas, eligible_count));
  for (const PlacementNode& n : nodes) {
    if (n.eligible && total_capacity > 0) {
      share[n.id].target = double(stripe_count) * width *
                           double(std::max<uint64_t>(n.capacity_bytes, 1)) / double(total_capacity);
    }
  }

  // Pass 1: without moves, keep every existing replica (of nodes not removed).
  for (uint32_t s = 0; s < stripe_count; ++s) {
    uint32_t fill = 0;
    for (uint32_t r = 0; r < max_replicas; ++r) {
      size_t i = size_t{s} * max_replicas + r;
      uint64_t id = i < current.size() ? current[i] : 0;
      if (id == 0) continue;
      auto it = share.find(id);
      if (it == share.end()) continue;  // removed node
      if (allow_moves) continue;  // no data anywhere: a fresh placement moves nothing real
      bool dup = false;
      for (uint32_t j = 0; j < fill; ++j) dup |= next[size_t{s} * max_replicas + j] == id;
      if (dup) continue;
      next[size_t{s} * max_replicas + fill++] = id;
      ++it->second.held;
    }
  }

  // Pass 2: fill empty slots, rank by rank so every stripe gets a first
  // replica before any gets a third, each time from the eligible node with
  // the largest unmet share.
  std::vector<uint64_t> order;
  for (const PlacementNode& n : nodes) {
    if (n.eligible) order.push_back(n.id);
  }
  std::sort(order.begin(), order.end());
  for (uint32_t r = 0; r < max_replicas; ++r) {
    for (uint32_t s = 0; s < stripe_count; ++s) {
      uint64_t* stripe = &next[size_t{s} * max_replicas];
      uint32_t fill = 0;
      while (fill < max_replicas && stripe[fill] != 0) ++fill;
      if (fill > r || fill >= max_replicas) continue;
      uint64_t best = 0;
      double best_deficit = 0;
      for (uint64_t id : order) {
        bool present = false;
        for (uint32_t j = 0; j < fill; ++j) present |= stripe[j] == id;
        if (present) continue;
        const Share& sh = share[id];
        double deficit = (sh.target - double(sh.held)) / std::max(sh.target, 1e-9);
        if (best == 0 || deficit > best_deficit) {
          best = id;
          best_deficit = deficit;
        }
      }
      if (best == 0) continue;
      stripe[fill] = best;
      ++share[best].held;
    }
  }
  return next;
}

}  // namespace sluice::meta
