// Scrubber: a background thread that re-reads and verifies every chunk at a
// bounded rate. ChunkStore::verify quarantines what fails; the scrubber
// counts and logs it. Passes repeat after `interval`.
//
// Thread safety: all methods are safe from any thread. The store must
// outlive the scrubber.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/core/clock.h"
#include "storage_node/chunk_store.h"

namespace sluice::storage {

struct ScrubOptions {
  uint64_t bytes_per_sec = 64ull << 20;  // 0 disables scrubbing
  std::chrono::microseconds interval{std::chrono::hours(24)};  // pause between passes
};

struct ScrubStats {
  uint64_t passes = 0;
  uint64_t bytes = 0;
  uint64_t chunks = 0;
  uint64_t corrupt = 0;
};

class Scrubber {
 public:
  Scrubber(ChunkStore& store, ScrubOptions options, Clock& clock = Clock::real());
  ~Scrubber();  // stops

  Status start();
  void stop();
  // Starts the next pass now instead of after the interval. Returns the pass
  // count at which a pass that began after this call has completed: callers
  // wait for stats().passes >= it. (Reading stats() after kick() instead is
  // racy: on a small store the kicked pass can finish in between.)
  uint64_t kick();
  ScrubStats stats() const;
  // False when scrub.rate is 0: no thread runs and kick() starts nothing.
  bool enabled() const { return options_.bytes_per_sec != 0; }

 private:
  void run();
  // Waits up to `d`; false if stopping.
  bool waitFor(std::chrono::nanoseconds d);

  ChunkStore& store_;
  ScrubOptions options_;
  Clock& clock_;
  std::unique_ptr<IoContext> ctx_;
  std::vector<std::unique_ptr<IoContext>> retired_;  // rings out of service, kept alive
  static constexpr size_t kMaxRetiredRings = 3;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  bool kicked_ = false;    // GUARDED_BY(mu_)
  bool in_pass_ = false;   // GUARDED_BY(mu_)
  std::atomic<uint64_t> passes_{0};  // written under mu_
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> chunks_{0};
  std::atomic<uint64_t> corrupt_{0};
};

}  // namespace sluice::storage
