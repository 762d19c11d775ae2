// The on-disk and on-wire layout of a chunk, format version 1. Internal to
// ChunkBuilder and ChunkView; tests and the fuzz target use it to build
// hostile inputs. Everyone else goes through those two classes.
//
// All integers little-endian. A chunk is immutable; its ChunkId is
// Hash128::of(all of its bytes), checked by the storage node independently
// of this layout.
//
//   header, 32 bytes
//     0  u32 magic           kMagic ("SLCK")
//     4  u16 version         kVersion
//     6  u16 flags           0; version 1 defines no flag, any set bit is refused
//     8  u32 record_count    [1, kMaxRecordsPerChunk]
//    12  u32 salt            any value; only varies the ChunkId, so an
//                            uploader can move a chunk to another stripe
//                            (stripe = f(ChunkId)) when one is unavailable
//    16  u64 chunk_size      total bytes of the chunk, header included
//    24  u64 table_checksum  tableChecksum(): XXH3-64 of the record table,
//                            seeded with XXH3-64 of header bytes [0, 24)
//   record table, record_count entries of 32 bytes
//     0  u32 offset          from the chunk's first byte
//     4  u32 stored_size
//     8  u32 raw_size        <= kMaxRecordSizeCap
//    12  u8  codec           a Codec number
//    13  u8[3] reserved      0
//    16  u64 hash.hi         Hash128::of(raw bytes)
//    24  u64 hash.lo
//   record data: the stored bytes of each record in table order, back to
//     back, starting right after the table and ending at chunk_size.
//
// The table checksum lets a parser tell a damaged table from damaged record
// data without decoding every record; record data is covered by each
// record's own hash, so a reader of one record range never needs the table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice::chunk_format {

inline constexpr uint32_t kMagic = 0x4B434C53;  // bytes 'S' 'L' 'C' 'K'
inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kHeaderSize = 32;
inline constexpr size_t kEntrySize = 32;

// Header field offsets.
inline constexpr size_t kMagicAt = 0;
inline constexpr size_t kVersionAt = 4;
inline constexpr size_t kFlagsAt = 6;
inline constexpr size_t kCountAt = 8;
inline constexpr size_t kSaltAt = 12;
inline constexpr size_t kChunkSizeAt = 16;
inline constexpr size_t kTableChecksumAt = 24;

// Entry field offsets, relative to the entry.
inline constexpr size_t kOffsetAt = 0;
inline constexpr size_t kStoredSizeAt = 4;
inline constexpr size_t kRawSizeAt = 8;
inline constexpr size_t kCodecAt = 12;
inline constexpr size_t kEntryReservedAt = 13;
inline constexpr size_t kHashHiAt = 16;
inline constexpr size_t kHashLoAt = 24;

inline uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t load32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}
inline uint64_t load64(const uint8_t* p) {
  return uint64_t{load32(p)} | (uint64_t{load32(p + 4)} << 32);
}

inline void store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void store32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void store64(uint8_t* p, uint64_t v) {
  store32(p, static_cast<uint32_t>(v));
  store32(p + 4, static_cast<uint32_t>(v >> 32));
}

// The table checksum of a chunk whose header and table are `header_and_table`
// (kHeaderSize + record_count * kEntrySize bytes). REQUIRES that size.
uint64_t tableChecksum(std::span<const uint8_t> header_and_table);

}  // namespace sluice::chunk_format
