#include "common/codec/chunk_view.h"

#include <cstdlib>
#include <string>

#include "common/codec/chunk_format.h"
#include "common/codec/codec_limits.h"

namespace sluice {

namespace cf = chunk_format;

namespace {

std::string chunkName(const std::optional<ChunkId>& id) {
  return id ? "chunk " + id->toHex() : std::string("chunk <unknown id>");
}

RecordLocation loadEntry(const uint8_t* e) {
  RecordLocation loc;
  loc.offset = cf::load32(e + cf::kOffsetAt);
  loc.stored_size = cf::load32(e + cf::kStoredSizeAt);
  loc.raw_size = cf::load32(e + cf::kRawSizeAt);
  loc.codec = static_cast<Codec>(e[cf::kCodecAt]);  // checked by parse()
  loc.hash.hi = cf::load64(e + cf::kHashHiAt);
  loc.hash.lo = cf::load64(e + cf::kHashLoAt);
  return loc;
}

// Checks entry i of a table whose data region must continue at `expected`.
Status checkEntry(const uint8_t* e, uint32_t i, uint64_t expected, uint64_t chunk_size,
                  const std::string& chunk) {
  auto bad = [&](const std::string& what) {
    return corruption(chunk + ": record table entry " + std::to_string(i) + ": " + what);
  };
  uint8_t codec = e[cf::kCodecAt];
  if (!codecFromByte(codec)) return bad("unknown codec " + std::to_string(codec));
  if (e[cf::kEntryReservedAt] != 0 || e[cf::kEntryReservedAt + 1] != 0 ||
      e[cf::kEntryReservedAt + 2] != 0) {
    return bad("reserved bytes are not zero");
  }
  RecordLocation loc = loadEntry(e);
  if (loc.raw_size > kMaxRecordSizeCap) {
    return bad("raw size " + std::to_string(loc.raw_size) + " exceeds the record cap");
  }
  if (loc.codec == Codec::kRaw && loc.stored_size != loc.raw_size) {
    return bad("raw record stores " + std::to_string(loc.stored_size) + " bytes for " +
               std::to_string(loc.raw_size));
  }
  if (loc.codec == Codec::kZstd && (loc.stored_size == 0 || loc.stored_size > loc.raw_size)) {
    return bad("zstd record stores " + std::to_string(loc.stored_size) + " bytes for " +
               std::to_string(loc.raw_size));
  }
  if (loc.offset != expected) {
    return bad("offset " + std::to_string(loc.offset) + " should be " + std::to_string(expected) +
               " (records are stored back to back after the table)");
  }
  if (uint64_t{loc.offset} + loc.stored_size > chunk_size) {
    return bad("range [" + std::to_string(loc.offset) + ", +" + std::to_string(loc.stored_size) +
               ") runs past the chunk's " + std::to_string(chunk_size) + " bytes");
  }
  return Status::ok();
}

}  // namespace

Result<ChunkView> ChunkView::parse(std::span<const uint8_t> bytes, std::optional<ChunkId> id) {
  const std::string chunk = chunkName(id);
  const uint64_t size = bytes.size();
  if (size < cf::kHeaderSize) {
    return corruption(chunk + ": truncated: " + std::to_string(size) + " bytes, less than the " +
                      std::to_string(cf::kHeaderSize) + "-byte header");
  }
  if (size > kMaxChunkSizeCap) {
    return corruption(chunk + ": " + std::to_string(size) + " bytes exceed the chunk size cap");
  }
  const uint8_t* p = bytes.data();
  if (cf::load32(p + cf::kMagicAt) != cf::kMagic) {
    return corruption(chunk + ": bad magic; not a Sluice chunk");
  }
  uint16_t version = cf::load16(p + cf::kVersionAt);
  if (version != cf::kVersion) {
    return failedPrecondition(chunk + ": format version " + std::to_string(version) +
                              " is not supported (this build reads version " +
                              std::to_string(cf::kVersion) + "); upgrade Sluice");
  }
  uint16_t flags = cf::load16(p + cf::kFlagsAt);
  if (flags != 0) {
    return failedPrecondition(chunk + ": unknown header flags " + std::to_string(flags) +
                              "; written by a newer Sluice?");
  }
  uint64_t declared = cf::load64(p + cf::kChunkSizeAt);
  if (declared != size) {
    return corruption(chunk + ": header declares " + std::to_string(declared) + " bytes but " +
                      std::to_string(size) + " are present (" +
                      (declared > size ? "truncated" : "trailing bytes") + ")");
  }
  uint32_t count = cf::load32(p + cf::kCountAt);
  if (count == 0 || count > kMaxRecordsPerChunk) {
    return corruption(chunk + ": record count " + std::to_string(count) + " is outside [1, " +
                      std::to_string(kMaxRecordsPerChunk) + "]");
  }
  const uint64_t table_end = cf::kHeaderSize + uint64_t{count} * cf::kEntrySize;
  if (table_end > size) {
    return corruption(chunk + ": a table of " + std::to_string(count) + " records needs " +
                      std::to_string(table_end) + " bytes but the chunk has " +
                      std::to_string(size));
  }
  uint64_t checksum = cf::tableChecksum(bytes.first(table_end));
  if (checksum != cf::load64(p + cf::kTableChecksumAt)) {
    return corruption(chunk + ": header or record table checksum mismatch; the chunk is damaged");
  }
  uint64_t expected = table_end;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = p + cf::kHeaderSize + uint64_t{i} * cf::kEntrySize;
    SLUICE_RETURN_IF_ERROR(checkEntry(e, i, expected, size, chunk));
    expected += cf::load32(e + cf::kStoredSizeAt);
  }
  if (expected != size) {
    return corruption(chunk + ": records end at byte " + std::to_string(expected) +
                      " but the chunk has " + std::to_string(size));
  }
  return ChunkView(bytes, id, count);
}

RecordLocation ChunkView::record(uint32_t i) const {
  if (i >= count_) std::abort();  // REQUIRES violated: a caller bug, not bad data
  return loadEntry(bytes_.data() + cf::kHeaderSize + uint64_t{i} * cf::kEntrySize);
}

std::span<const uint8_t> ChunkView::storedBytes(uint32_t i) const {
  RecordLocation loc = record(i);
  return bytes_.subspan(loc.offset, loc.stored_size);
}

Result<std::vector<uint8_t>> ChunkView::readRecord(uint32_t i) const {
  if (i >= count_) {
    return outOfRange(name() + ": record index " + std::to_string(i) + " of " +
                      std::to_string(count_));
  }
  RecordLocation loc = record(i);
  return decodeRecord(storedBytes(i), loc.codec, loc.raw_size, loc.hash, recordName(loc.hash, id_));
}

Status ChunkView::readRecordInto(uint32_t i, std::span<uint8_t> out) const {
  if (i >= count_) {
    return outOfRange(name() + ": record index " + std::to_string(i) + " of " +
                      std::to_string(count_));
  }
  RecordLocation loc = record(i);
  return decodeRecordInto(storedBytes(i), loc.codec, loc.raw_size, loc.hash, out,
                          recordName(loc.hash, id_));
}

Status ChunkView::verifyRecords() const {
  for (uint32_t i = 0; i < count_; ++i) {
    auto r = readRecord(i);
    if (!r.isOk()) return r.status();
  }
  return Status::ok();
}

std::string ChunkView::name() const { return chunkName(id_); }

}  // namespace sluice
