#include "client/sample_order.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace sluice::client {
namespace {

// SplitMix64: seeds that differ in one bit give unrelated streams.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// std::shuffle's result depends on the standard library; this does not.
template <typename T>
void shuffleWith(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(rng() % i);
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace

std::vector<uint32_t> epochOrder(uint32_t n, const OrderSpec& spec) {
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  if (!spec.shuffle || n < 2) return order;
  std::mt19937_64 rng(mix(spec.seed ^ mix(spec.epoch + 1)));
  // A block of n or more is one block (and n + block - 1 must not wrap).
  const uint32_t block = std::clamp<uint32_t>(spec.shuffle_block, 1, n);
  if (block == 1) {
    shuffleWith(order, rng);
    return order;
  }
  std::vector<uint32_t> blocks(static_cast<size_t>((uint64_t{n} + block - 1) / block));
  std::iota(blocks.begin(), blocks.end(), 0u);
  shuffleWith(blocks, rng);
  std::vector<uint32_t> out;
  out.reserve(n);
  for (uint32_t b : blocks) {
    std::vector<uint32_t> inner;
    for (uint32_t i = b * block; i < std::min<uint64_t>(n, uint64_t{b} * block + block); ++i) inner.push_back(i);
    shuffleWith(inner, rng);
    out.insert(out.end(), inner.begin(), inner.end());
  }
  return out;
}

std::vector<uint32_t> rankSequence(uint32_t n, const OrderSpec& spec) {
  const uint32_t world = std::max<uint32_t>(spec.world_size, 1);
  if (n == 0 || spec.rank >= world) return {};
  std::vector<uint32_t> order = epochOrder(n, spec);
  uint64_t per_rank = spec.drop_last ? n / world : (uint64_t{n} + world - 1) / world;
  std::vector<uint32_t> out;
  out.reserve(per_rank);
  for (uint64_t i = 0; i < per_rank; ++i) {
    uint64_t pos = i * world + spec.rank;
    out.push_back(order[pos % n]);  // past the end: padding from the start
  }
  return out;
}

std::vector<uint64_t> workerPositions(uint64_t rank_length, const OrderSpec& spec, uint64_t start) {
  const uint64_t workers = std::max<uint32_t>(spec.num_workers, 1);
  const uint64_t batch = std::max<uint32_t>(spec.worker_batch, 1);
  std::vector<uint64_t> out;
  for (uint64_t p = start; p < rank_length; ++p) {
    if (((p - start) / batch) % workers == spec.worker) out.push_back(p);
  }
  return out;
}

}  // namespace sluice::client
