// Cutting a file's bytes into records: consecutive slices of
// max_record_size bytes, the last one shorter; an empty file has none.
// Fixed-size cuts keep a file's record boundaries stable across versions, so
// unchanged regions of a file deduplicate record by record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/core/result.h"

namespace sluice {

// The number of records a file of `file_size` bytes is cut into.
// REQUIRES max_record_size > 0.
inline uint64_t recordCountFor(uint64_t file_size, size_t max_record_size) {
  return (file_size + max_record_size - 1) / max_record_size;
}

// The records of `file`, as views into it (they borrow `file`).
// kInvalidArgument if validateMaxRecordSize(max_record_size) fails.
Result<std::vector<std::span<const uint8_t>>> splitIntoRecords(std::span<const uint8_t> file,
                                                               size_t max_record_size);

}  // namespace sluice
