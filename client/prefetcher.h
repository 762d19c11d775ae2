// Prefetcher: hands a training process its samples (files of one committed
// version) in a deterministic shuffled order, staging them ahead of use.
//
//   PrefetchOptions o;
//   o.dataset = "imagenet"; o.version = "v3";
//   o.order.seed = 42; o.order.epoch = e; o.order.rank = r; o.order.world_size = w;
//   o.cache_dir = "/nvme/sluice-cache"; o.cache_bytes = 200ull << 30;
//   auto p = Prefetcher::create(cluster, o);
//   while (auto s = (*p)->next(); s.isOk() && *s) use((*s)->path, (*s)->bytes());
//
// Order and split: see sample_order.h. Staging: fetch threads walk ahead of
// the consumer, many records in flight across nodes, up to
// `lookahead_bytes` of samples fetched but not yet consumed. Records go
// through the node-local cache (LocalCache) when `cache_dir` is set, so
// other processes on the node (DataLoader workers, ranks, a FUSE mount)
// and later epochs find them there.
//
// Eviction (kPlanned): the order of this epoch and the next is known, so
// each cached record is ranked by when it is needed next, and the one needed
// furthest ahead is evicted first (Belady); kLru ranks by last use.
//
// Thread safety: next(), state(), resume(), setEpoch() from one consumer
// thread; stats() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "client/cluster.h"
#include "client/file_info.h"
#include "client/local_cache.h"
#include "client/reader.h"
#include "client/sample_order.h"
#include "common/core/metrics.h"
#include "common/core/result.h"

namespace sluice::client {

enum class Eviction { kPlanned, kLru };

struct PrefetchOptions {
  std::string dataset;
  std::string version = "latest";  // "v<n>" or a tag, resolved once
  std::vector<std::string> files;  // explicit samples; empty: every file under `prefix`
  std::string prefix;              // a directory of the version ("" = all)
  OrderSpec order;
  std::string cache_dir;           // empty: no node-local cache
  uint64_t cache_bytes = 10ull << 30;
  uint64_t lookahead_bytes = 256ull << 20;
  size_t fetch_threads = 16;
  Eviction eviction = Eviction::kPlanned;
};

// A sample's bytes; shared so a binding can hand them out without copying.
struct SampleBytes {
  std::unique_ptr<uint8_t[]> data;
  size_t size = 0;
};

struct Sample {
  const std::string* path = nullptr;  // owned by the Prefetcher
  uint32_t index = 0;                 // in files()
  uint64_t position = 0;              // in the rank's sequence of the epoch
  std::shared_ptr<const SampleBytes> bytes;
  std::span<const uint8_t> view() const { return {bytes->data.get(), bytes->size}; }
};

// Where a consumer is: enough to continue, mid-epoch, with the samples not
// yet consumed.
struct PrefetchState {
  uint32_t epoch = 0;
  uint64_t position = 0;  // samples of the rank's sequence consumed
  uint64_t seed = 0;
  uint32_t world_size = 1;
  uint32_t rank = 0;
};

struct PrefetchStats {
  uint64_t samples = 0;
  uint64_t bytes = 0;            // sample bytes served
  uint64_t cache_hits = 0;       // records found in the node-local cache
  uint64_t cache_misses = 0;     // records fetched from the cluster
  uint64_t fetched_bytes = 0;    // stored bytes moved from storage nodes
  double stall_seconds = 0;      // consumer time spent waiting in next()
  double stall_p50_s = 0, stall_p90_s = 0, stall_p99_s = 0;
};

class Prefetcher {
 public:
  static Result<std::unique_ptr<Prefetcher>> create(Cluster& cluster, PrefetchOptions options);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next sample, or nullopt at the end of the epoch. An error names the
  // file; the prefetcher can continue with the next sample after it.
  Result<std::optional<Sample>> next();

  PrefetchState state() const;
  // Continues from a saved state (same seed, world size and rank).
  Status resume(const PrefetchState& state);
  // Starts epoch `epoch` from its beginning.
  void setEpoch(uint32_t epoch);

  // Samples this consumer yields per epoch, and the rank's share.
  uint64_t samplesPerEpoch() const;
  uint64_t rankLength() const { return rank_length_; }
  const std::vector<FileInfo>& files() const { return files_; }
  PrefetchStats stats() const;

 private:
  class PlannedCache;
  struct Slot {
    enum class State : uint8_t { kPending, kReady, kFailed } state = State::kPending;
    std::shared_ptr<const SampleBytes> bytes;
    Status error;
  };

  Prefetcher(Cluster& cluster, PrefetchOptions options);
  void start(uint32_t epoch, uint64_t position);
  void stop();
  void fetchLoop();
  void fetch(size_t slot);
  // Planned eviction ranks for this epoch and the next.
  void planEpoch();
  uint64_t plannedRank(uint32_t sample) const;

  Cluster& cluster_;
  const PrefetchOptions options_;
  std::vector<FileInfo> files_;
  std::unique_ptr<LocalCache> local_;
  std::unique_ptr<PlannedCache> planned_;
  std::unique_ptr<DatasetReader> reader_;
  uint64_t rank_length_ = 0;

  // The current epoch.
  uint32_t epoch_ = 0;
  std::vector<uint32_t> sequence_;          // the rank's samples
  std::vector<uint64_t> positions_;         // this consumer's positions in sequence_
  std::vector<int64_t> next_epoch_pos_;     // sample -> position next epoch (-1: none)

  mutable std::mutex mu_;
  std::condition_variable ready_cv_;
  std::condition_variable space_cv_;
  std::vector<Slot> slots_;                 // GUARDED_BY(mu_), one per positions_ entry
  size_t next_ = 0;                         // GUARDED_BY(mu_): the consumer's slot
  size_t dispatch_ = 0;                     // GUARDED_BY(mu_): the next slot to fetch
  uint64_t staged_bytes_ = 0;               // GUARDED_BY(mu_)
  bool stopping_ = false;                   // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;

  std::atomic<uint64_t> samples_{0}, bytes_{0};
  std::atomic<uint64_t> stall_nanos_{0};
  Histogram stall_;
};

}  // namespace sluice::client
