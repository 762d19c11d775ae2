// Where one record lives inside a chunk: everything a reader needs to fetch
// its stored bytes as one range [offset, offset + stored_size) of the chunk
// and decode them with decodeRecord, without reading the chunk's header or
// neighbours. A file's extent keeps this plus the ChunkId.
#pragma once

#include <cstdint>

#include "common/codec/hash128.h"
#include "common/codec/record_codec.h"

namespace sluice {

struct RecordLocation {
  uint32_t offset = 0;       // from the chunk's first byte
  uint32_t stored_size = 0;  // bytes in the chunk
  uint32_t raw_size = 0;     // bytes after decoding
  Codec codec = Codec::kRaw;
  RecordHash hash;  // Hash128::of(raw bytes): identity and checksum

  friend bool operator==(const RecordLocation&, const RecordLocation&) = default;
};

}  // namespace sluice
