// Human-friendly sizes and durations, as written in config files and flags.
//
// Sizes are bytes with an optional binary suffix: "4096", "64K", "4M", "100G",
// "2T" (K = 1024; "KB"/"KiB" spellings are accepted and mean the same).
// Durations need a unit: "250ms", "5s", "2m", "1h" (also "us" for sub-
// millisecond timeouts). Parsers return a Status whose message quotes the bad
// text; callers prefix the key or flag with Status::withContext.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/core/result.h"

namespace sluice {

// "100G" -> 107374182400. Errors: "'12QB' is not a size like 100G".
Result<uint64_t> parseSize(std::string_view text);

// Largest exact suffix form: 107374182400 -> "100G", 1000 -> "1000".
std::string formatSize(uint64_t bytes);

// "250ms" -> 250000us. Errors: "'5' is not a duration like 500ms, 5s or 2m".
Result<std::chrono::microseconds> parseDuration(std::string_view text);

// Largest exact unit: 120s -> "2m", 1500ms -> "1500ms", 0 -> "0s".
std::string formatDuration(std::chrono::microseconds d);

}  // namespace sluice
