// Clock: the metadata server's source of time, injectable so tests can move
// time (heartbeat timeouts, gc grace) without sleeping.
//
// Thread safety: implementations must be safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace sluice::meta {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock milliseconds since the Unix epoch: timestamps users see.
  virtual int64_t nowMs() const = 0;
  // Monotonic milliseconds: liveness and grace periods.
  virtual int64_t steadyMs() const = 0;
};

class SystemClock : public Clock {
 public:
  int64_t nowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t steadyMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that moves only when told; both readings advance together.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t nowMs() const override { return now_.load(); }
  int64_t steadyMs() const override { return now_.load(); }
  void advanceMs(int64_t ms) { now_.fetch_add(ms); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace sluice::meta
