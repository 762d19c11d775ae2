// Size limits of records and chunks, shared by the uploader, the storage node
// and every decoder.
//
// The defaults are what a dataset gets when it names nothing; the caps are
// hard limits that no configuration may raise, because decoders use them to
// bound what they allocate for untrusted input.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/core/status.h"

namespace sluice {

inline constexpr size_t kDefaultMaxRecordSize = size_t{1} << 20;  // 1 MiB
inline constexpr size_t kMinRecordSizeLimit = size_t{4} << 10;    // 4 KiB
inline constexpr size_t kMaxRecordSizeCap = size_t{16} << 20;     // 16 MiB

inline constexpr size_t kDefaultChunkSize = size_t{4} << 20;  // 4 MiB
inline constexpr size_t kMinChunkSize = size_t{4} << 10;      // 4 KiB
inline constexpr size_t kMaxChunkSizeCap = size_t{64} << 20;  // 64 MiB

// A chunk of 64 MiB full of tiny records needs a bound on its table too.
inline constexpr uint32_t kMaxRecordsPerChunk = uint32_t{1} << 20;

// OK if `max_record_size` is in [kMinRecordSizeLimit, kMaxRecordSizeCap];
// otherwise kInvalidArgument naming the value and the range.
Status validateMaxRecordSize(size_t max_record_size);

// OK if `chunk_size` is in [kMinChunkSize, kMaxChunkSizeCap].
Status validateChunkSize(size_t chunk_size);

}  // namespace sluice
