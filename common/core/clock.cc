#include "common/core/clock.h"

#include <algorithm>
#include <thread>

namespace sluice {

Clock& Clock::real() {
  static RealClock clock;
  return clock;
}

Clock::TimePoint RealClock::now() const {
  return std::chrono::time_point_cast<Duration>(std::chrono::steady_clock::now());
}

std::chrono::system_clock::time_point RealClock::wallNow() const {
  return std::chrono::system_clock::now();
}

void RealClock::sleepFor(Duration d) {
  if (d > Duration::zero()) std::this_thread::sleep_for(d);
}

ManualClock::ManualClock()
    : start_(TimePoint(std::chrono::hours(1000))),
      // 2026-01-01T00:00:00Z
      wallStart_(std::chrono::system_clock::time_point(std::chrono::seconds(1767225600))) {}

Clock::TimePoint ManualClock::now() const {
  std::lock_guard<std::mutex> lock(mu_);
  return start_ + elapsed_;
}

std::chrono::system_clock::time_point ManualClock::wallNow() const {
  std::lock_guard<std::mutex> lock(mu_);
  return wallStart_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(elapsed_);
}

void ManualClock::sleepFor(Duration d) {
  std::unique_lock<std::mutex> lock(mu_);
  Duration deadline = elapsed_ + std::max(d, Duration::zero());
  if (elapsed_ >= deadline) return;
  ++sleepers_;
  changed_.notify_all();
  changed_.wait(lock, [&] { return elapsed_ >= deadline; });
  --sleepers_;
  changed_.notify_all();
}

void ManualClock::advance(Duration d) {
  std::lock_guard<std::mutex> lock(mu_);
  elapsed_ += std::max(d, Duration::zero());
  changed_.notify_all();
}

size_t ManualClock::sleepers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sleepers_;
}

bool ManualClock::waitForSleepers(size_t n, std::chrono::milliseconds realTimeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, realTimeout, [&] { return sleepers_ >= n; });
}

}  // namespace sluice
