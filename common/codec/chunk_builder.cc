#include "common/codec/chunk_builder.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/codec/chunk_format.h"

namespace sluice {

namespace cf = chunk_format;

ChunkBuilder::ChunkBuilder(size_t target_size)
    : target_size_(std::clamp(target_size, kMinChunkSize, kMaxChunkSizeCap)) {}

size_t ChunkBuilder::size() const {
  return cf::kHeaderSize + records_.size() * cf::kEntrySize + data_.size();
}

bool ChunkBuilder::fits(size_t stored_size) const {
  if (records_.empty()) return stored_size <= kMaxRecordSizeCap;
  if (records_.size() >= kMaxRecordsPerChunk) return false;
  return size() + cf::kEntrySize + stored_size <= target_size_;
}

Result<uint32_t> ChunkBuilder::add(const EncodedRecord& record) {
  const size_t stored = record.stored.size();
  std::string name = recordName(record.hash);
  if (record.raw_size > kMaxRecordSizeCap || stored > kMaxRecordSizeCap) {
    return invalidArgument(name + ": " + std::to_string(record.raw_size) +
                           " raw bytes exceed the record cap");
  }
  switch (record.codec) {
    case Codec::kRaw:
      if (stored != record.raw_size) {
        return invalidArgument(name + ": raw record stores " + std::to_string(stored) +
                               " bytes for " + std::to_string(record.raw_size) + " raw");
      }
      break;
    case Codec::kZstd:
      if (stored == 0 || stored > record.raw_size) {
        return invalidArgument(name + ": zstd record stores " + std::to_string(stored) +
                               " bytes for " + std::to_string(record.raw_size) + " raw");
      }
      break;
    default:
      return invalidArgument(name + ": unknown codec " +
                             std::to_string(static_cast<unsigned>(record.codec)));
  }
  if (!fits(stored)) {
    return Status(StatusCode::kResourceExhausted,
                  name + ": " + std::to_string(stored) + " bytes do not fit the chunk (" +
                      std::to_string(size()) + " of " + std::to_string(target_size_) +
                      " bytes used); finish it and start another");
  }
  if (data_.capacity() == 0) data_.reserve(target_size_);
  RecordLocation loc;
  loc.offset = static_cast<uint32_t>(data_.size());
  loc.stored_size = static_cast<uint32_t>(stored);
  loc.raw_size = record.raw_size;
  loc.codec = record.codec;
  loc.hash = record.hash;
  data_.insert(data_.end(), record.stored.begin(), record.stored.end());
  records_.push_back(loc);
  return static_cast<uint32_t>(records_.size() - 1);
}

Result<BuiltChunk> ChunkBuilder::finish(uint32_t salt) {
  if (records_.empty()) return failedPrecondition("cannot finish a chunk with no records");
  const size_t table_end = cf::kHeaderSize + records_.size() * cf::kEntrySize;
  BuiltChunk out;
  out.bytes.resize(table_end + data_.size());
  uint8_t* p = out.bytes.data();
  cf::store32(p + cf::kMagicAt, cf::kMagic);
  cf::store16(p + cf::kVersionAt, cf::kVersion);
  cf::store16(p + cf::kFlagsAt, 0);
  cf::store32(p + cf::kCountAt, static_cast<uint32_t>(records_.size()));
  cf::store32(p + cf::kSaltAt, salt);
  cf::store64(p + cf::kChunkSizeAt, out.bytes.size());
  out.records = std::move(records_);
  for (size_t i = 0; i < out.records.size(); ++i) {
    RecordLocation& loc = out.records[i];
    loc.offset += static_cast<uint32_t>(table_end);
    uint8_t* e = p + cf::kHeaderSize + i * cf::kEntrySize;
    cf::store32(e + cf::kOffsetAt, loc.offset);
    cf::store32(e + cf::kStoredSizeAt, loc.stored_size);
    cf::store32(e + cf::kRawSizeAt, loc.raw_size);
    e[cf::kCodecAt] = static_cast<uint8_t>(loc.codec);
    std::memset(e + cf::kEntryReservedAt, 0, 3);
    cf::store64(e + cf::kHashHiAt, loc.hash.hi);
    cf::store64(e + cf::kHashLoAt, loc.hash.lo);
  }
  cf::store64(p + cf::kTableChecksumAt, cf::tableChecksum(std::span<const uint8_t>(p, table_end)));
  if (!data_.empty()) std::memcpy(p + table_end, data_.data(), data_.size());
  out.id = Hash128::of(out.bytes);
  records_ = {};
  data_ = {};
  return out;
}

ChunkId resaltChunk(std::span<uint8_t> chunk, uint32_t salt) {
  uint8_t* p = chunk.data();
  cf::store32(p + cf::kSaltAt, salt);
  const size_t table_end = cf::kHeaderSize + size_t{cf::load32(p + cf::kCountAt)} * cf::kEntrySize;
  cf::store64(p + cf::kTableChecksumAt, cf::tableChecksum(chunk.first(table_end)));
  return Hash128::of(chunk);
}

}  // namespace sluice
