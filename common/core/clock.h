// Clock: the only way Sluice code reads time or sleeps, so timeouts,
// heartbeats and leases can be tested without real waiting.
//
// Production code takes a `Clock&` (defaulting to Clock::real()); tests pass
// a ManualClock and move time with advance().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace sluice {

class Clock {
 public:
  using Duration = std::chrono::nanoseconds;
  // Monotonic time; only differences are meaningful.
  using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;

  virtual ~Clock() = default;

  virtual TimePoint now() const = 0;
  // Wall-clock time, for timestamps shown to people or stored (mtime).
  virtual std::chrono::system_clock::time_point wallNow() const = 0;
  // Blocks the calling thread until now() >= the time of the call + d.
  virtual void sleepFor(Duration d) = 0;
  void sleepUntil(TimePoint deadline) {
    TimePoint t = now();
    if (deadline > t) sleepFor(deadline - t);
  }

  // The process-wide real clock. Thread-safe.
  static Clock& real();
};

// steady_clock + system_clock + std::this_thread::sleep_for. Thread-safe.
class RealClock final : public Clock {
 public:
  TimePoint now() const override;
  std::chrono::system_clock::time_point wallNow() const override;
  void sleepFor(Duration d) override;
};

// Time stands still until advance() is called. sleepFor() blocks until
// another thread advances time past the sleeper's deadline, so a test can
// drive "5 s later" instantly and deterministically:
//
//   ManualClock clock;
//   Heartbeater hb(clock);                 // its thread calls clock.sleepFor(1s)
//   clock.waitForSleepers(1);              // it is now parked in sleepFor
//   clock.advance(std::chrono::seconds(1));  // wakes it; it sends one beat
//
// Thread-safe: all methods may be called from any thread.
class ManualClock final : public Clock {
 public:
  // Starts at an arbitrary fixed monotonic time and wall time 2026-01-01Z.
  ManualClock();

  TimePoint now() const override;
  std::chrono::system_clock::time_point wallNow() const override;
  void sleepFor(Duration d) override;

  // Moves both clocks forward and wakes sleepers whose deadline passed.
  void advance(Duration d);
  // Number of threads currently blocked in sleepFor().
  size_t sleepers() const;
  // Blocks (in real time, up to `realTimeout`) until at least `n` threads
  // are in sleepFor(). Returns false on timeout.
  bool waitForSleepers(size_t n, std::chrono::milliseconds realTimeout = std::chrono::seconds(10));

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;  // signalled on advance() and sleeper count change
  Duration elapsed_{0};              // GUARDED_BY(mu_)
  size_t sleepers_ = 0;              // GUARDED_BY(mu_)
  const TimePoint start_;
  const std::chrono::system_clock::time_point wallStart_;
};

}  // namespace sluice
