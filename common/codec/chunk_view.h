// ChunkView: a validated, read-only view of one chunk's bytes.
//
// parse() checks the whole structure before anything is trusted: magic,
// version, flags, size, record count bounds, the table checksum, and every
// entry (known codec, sizes within the record cap, records laid out back to
// back after the table up to the chunk's end, so no range overlaps the
// header, the table or another record and none reaches past the end). It
// does not decode records and does not hash the whole chunk: compare
// Hash128::of(bytes) with the expected ChunkId where the bytes came from an
// untrusted place and the whole chunk matters (the storage node does).
//
// Ownership: the view borrows `bytes`; they must outlive it and not change.
// Thread safety: const methods may be called concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/codec/hash128.h"
#include "common/codec/record_location.h"
#include "common/core/result.h"

namespace sluice {

class ChunkView {
 public:
  // `id`, when known, names the chunk in error messages ("chunk <hex>: …").
  // Errors: kCorruption for any malformed or inconsistent field, with the
  // field and the values; kFailedPrecondition for a newer format version or
  // unknown flags (written by a newer Sluice).
  static Result<ChunkView> parse(std::span<const uint8_t> bytes,
                                 std::optional<ChunkId> id = std::nullopt);

  uint32_t recordCount() const { return count_; }
  size_t size() const { return bytes_.size(); }

  // REQUIRES i < recordCount().
  RecordLocation record(uint32_t i) const;
  // The stored bytes of record i, exactly what a ranged read would fetch.
  // REQUIRES i < recordCount().
  std::span<const uint8_t> storedBytes(uint32_t i) const;

  // Decodes and verifies record i (see decodeRecord for the errors);
  // kOutOfRange if i >= recordCount().
  Result<std::vector<uint8_t>> readRecord(uint32_t i) const;
  Status readRecordInto(uint32_t i, std::span<uint8_t> out) const;

  // Decodes and verifies every record; the first failure is returned. For
  // scrub and compaction.
  Status verifyRecords() const;

  // "chunk <hex>" or "chunk <unknown id>".
  std::string name() const;

 private:
  ChunkView(std::span<const uint8_t> bytes, std::optional<ChunkId> id, uint32_t count)
      : bytes_(bytes), id_(id), count_(count) {}

  std::span<const uint8_t> bytes_;
  std::optional<ChunkId> id_;
  uint32_t count_;
};

}  // namespace sluice
