// The slowest rate a node-to-node copy (repair, rebalance) may be given.
//
// A copy waits between chunks for as long as its rate asks, and that wait
// holds one of a node's few copy threads: at 1 byte/s (a typo for "1M") one
// 64 MiB chunk would hold it for two years and stall shutdown. 0 keeps its
// meaning everywhere: the default (or, for a node's own repair.rate, no limit).
#pragma once

#include <cstdint>
#include <string>

#include "common/core/status.h"
#include "common/core/units.h"

namespace sluice {

inline constexpr uint64_t kMinCopyRateBytesPerSec = 1u << 20;

// kInvalidArgument naming `what` when 0 < rate < kMinCopyRateBytesPerSec.
inline Status checkCopyRate(uint64_t rate, const std::string& what) {
  if (rate == 0 || rate >= kMinCopyRateBytesPerSec) return Status::ok();
  return invalidArgument(what + ": " + std::to_string(rate) + " bytes/s is below the minimum of " +
                         formatSize(kMinCopyRateBytesPerSec) + "/s; give a rate like 200M, or 0");
}

}  // namespace sluice
