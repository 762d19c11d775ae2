#include "storage_node/chunk_file.h"

#include <xxhash.h>

#include <cstring>

namespace sluice::storage {
namespace {

constexpr char kMagic[8] = {'S', 'L', 'C', 'H', 'N', 'K', '0', '1'};

void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

void encodeChunkHeader(const ChunkHeader& header, uint8_t* out) {
  std::memset(out, 0, kChunkHeaderSize);
  std::memcpy(out, kMagic, 8);
  put32(out + 8, kChunkFormatVersion);
  put32(out + 12, static_cast<uint32_t>(kChunkHeaderSize));
  put64(out + 16, header.length);
  put64(out + 24, header.id.hi);
  put64(out + 32, header.id.lo);
  put64(out + 56, XXH64(out, 56, 0));
}

std::optional<ChunkHeader> decodeChunkHeader(const uint8_t* in) {
  if (std::memcmp(in, kMagic, 8) != 0) return std::nullopt;
  if (get32(in + 8) != kChunkFormatVersion || get32(in + 12) != kChunkHeaderSize) {
    return std::nullopt;
  }
  if (get64(in + 56) != XXH64(in, 56, 0)) return std::nullopt;
  ChunkHeader h;
  h.length = get64(in + 16);
  h.id.hi = get64(in + 24);
  h.id.lo = get64(in + 32);
  return h;
}

}  // namespace sluice::storage
