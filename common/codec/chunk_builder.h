// ChunkBuilder: packs encoded records into one immutable chunk.
//
// The uploader adds records while fits() says they do, then finish()es the
// chunk and starts another. Records keep the order they were added in; the
// returned locations are what files' extents record.
//
// Thread safety: none; use one builder per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/codec/codec_limits.h"
#include "common/codec/hash128.h"
#include "common/codec/record_codec.h"
#include "common/codec/record_location.h"
#include "common/core/result.h"

namespace sluice {

struct BuiltChunk {
  ChunkId id;                           // Hash128::of(bytes)
  std::vector<uint8_t> bytes;           // the whole chunk, as stored
  std::vector<RecordLocation> records;  // one per add(), in order
};

class ChunkBuilder {
 public:
  // `target_size` is clamped into [kMinChunkSize, kMaxChunkSizeCap]; validate
  // configured sizes with validateChunkSize() first to report bad values.
  explicit ChunkBuilder(size_t target_size = kDefaultChunkSize);

  // True if a record of `stored_size` bytes can be added: an empty builder
  // takes any one record (one larger than the target gets a chunk of its
  // own); otherwise the chunk must stay within the target size and
  // kMaxRecordsPerChunk records.
  bool fits(size_t stored_size) const;

  // Appends a copy of `record`'s stored bytes and returns its index.
  // kResourceExhausted if !fits(record.stored.size()): finish() and retry in
  // a new builder. kInvalidArgument if the record is inconsistent (over the
  // record cap, a raw record whose stored size differs from its raw size, a
  // zstd record larger than its raw size, an unknown codec).
  Result<uint32_t> add(const EncodedRecord& record);

  uint32_t recordCount() const { return static_cast<uint32_t>(records_.size()); }
  bool empty() const { return records_.empty(); }
  size_t targetSize() const { return target_size_; }
  // The size the chunk would have if finished now.
  size_t size() const;

  // Lays out header, table and data, names the chunk and resets the builder
  // for reuse. kFailedPrecondition if no record was added. `salt`: see
  // chunk_format.h (uploaders pick a random one so a chunk id never repeats
  // one that gc deleted, even for the same records).
  Result<BuiltChunk> finish(uint32_t salt = 0);

 private:
  size_t target_size_;
  std::vector<RecordLocation> records_;  // offsets relative to data_ until finish()
  std::vector<uint8_t> data_;
};

// Gives a finished chunk another salt (see chunk_format.h) and returns its new
// ChunkId. Record offsets and contents are unchanged, so locations taken from
// BuiltChunk::records stay valid with the new id. `chunk` must be the bytes
// of a BuiltChunk.
ChunkId resaltChunk(std::span<uint8_t> chunk, uint32_t salt);

}  // namespace sluice
