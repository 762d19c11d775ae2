// RateLimiter: keeps a byte stream (scrub, repair copies) at or below a rate.
//
// reserve(n) accounts n bytes and returns how long the caller should wait
// before moving them; the caller chooses how to wait (an interruptible
// condition-variable wait in the scrubber). A rate of 0 means unlimited.
//
// Thread safety: none; one limiter per stream.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "common/core/clock.h"

namespace sluice::storage {

class RateLimiter {
 public:
  explicit RateLimiter(uint64_t bytes_per_sec, Clock& clock = Clock::real())
      : rate_(bytes_per_sec), clock_(clock), next_(clock.now()) {}

  Clock::Duration reserve(uint64_t bytes) {
    if (rate_ == 0) return Clock::Duration::zero();
    const Clock::TimePoint now = clock_.now();
    // Idle time does not bank credit beyond the present.
    if (next_ < now) next_ = now;
    const Clock::TimePoint start = next_;
    next_ += std::chrono::nanoseconds(static_cast<int64_t>(
        static_cast<double>(bytes) * 1e9 / static_cast<double>(rate_)));
    return std::max(Clock::Duration::zero(), start - now);
  }

 private:
  uint64_t rate_;
  Clock& clock_;
  Clock::TimePoint next_;
};

}  // namespace sluice::storage
