// The on-disk format of one chunk file: <data>/stripes/<s>/<chunk-id-hex>.
//
//   [0, 64)          header: magic "SLCHNK01", version, header size, payload
//                    length, chunk id, reserved, XXH64 of the preceding 56 bytes
//   [64, 64 + len)   the chunk's bytes, exactly as put
//
// The file size is always 64 + len. Integrity: the header check catches a
// damaged header; XXH3-128 of the payload equals the file name's chunk id.
// A range read touches only the blocks of the range (plus alignment).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "common/codec/hash128.h"

namespace sluice::storage {

inline constexpr size_t kChunkHeaderSize = 64;
inline constexpr uint32_t kChunkFormatVersion = 1;

struct ChunkHeader {
  uint64_t length = 0;
  ChunkId id;
};

// Writes exactly kChunkHeaderSize bytes to `out`.
void encodeChunkHeader(const ChunkHeader& header, uint8_t* out);
// nullopt if the magic, version, size or check word is wrong.
std::optional<ChunkHeader> decodeChunkHeader(const uint8_t* in);

}  // namespace sluice::storage
