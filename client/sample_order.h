// SampleOrder: the deterministic order in which a training job visits a
// dataset's samples, and how that order is split among ranks and workers.
//
// For a (seed, epoch): the N samples (indices into the sorted file list) are
// cut into blocks of `shuffle_block` consecutive samples; the blocks are
// shuffled, then the samples inside each block. A block of 1 is a full
// shuffle; larger blocks keep neighbours (files of one shard) together.
//
// Ranks: the epoch's order is padded (repeating its first samples) or cut
// to a multiple of world_size, and rank r takes positions r, r + W, r + 2W…
// Every rank gets the same count; without padding every sample appears
// exactly once across ranks.
//
// Workers (DataLoader processes of one rank): worker w of K takes the
// rank's batches w, w + K, … (batches of `worker_batch` samples, counted
// from the start or resume point), which is the order a DataLoader hands
// them back, so "the first C samples the trainer consumed" is exactly a
// prefix of the rank's sequence, and a resume from C continues it.
#pragma once

#include <cstdint>
#include <vector>

namespace sluice::client {

struct OrderSpec {
  uint64_t seed = 0;
  uint32_t epoch = 0;
  uint32_t shuffle_block = 1;  // 0 or 1: full shuffle
  bool shuffle = true;         // false: sorted order (blocks ignored)
  uint32_t world_size = 1;
  uint32_t rank = 0;
  bool drop_last = false;      // cut instead of pad
  uint32_t num_workers = 1;
  uint32_t worker = 0;
  uint32_t worker_batch = 1;
};

// The epoch's order of all `n` samples (before the rank split).
std::vector<uint32_t> epochOrder(uint32_t n, const OrderSpec& spec);

// The samples of spec.rank, in order: its whole share of the epoch.
std::vector<uint32_t> rankSequence(uint32_t n, const OrderSpec& spec);

// The positions (indices into rankSequence) worker spec.worker yields, from
// `start` on (a resume point, counted in the rank's sequence).
std::vector<uint64_t> workerPositions(uint64_t rank_length, const OrderSpec& spec, uint64_t start);

}  // namespace sluice::client
