// Hash128: the XXH3-128 content hash that names records and chunks.
//
// A record's hash is the XXH3-128 of its raw (uncompressed) bytes: it is the
// deduplication identity and the end-to-end checksum the client verifies after
// decompression. A chunk's id is the XXH3-128 of the chunk's stored bytes: the
// storage node verifies it on put, on whole-chunk reads and on scrub.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sluice {

struct Hash128 {
  uint64_t hi = 0;
  uint64_t lo = 0;

  static Hash128 of(std::span<const uint8_t> bytes);
  static Hash128 of(const void* data, size_t size);

  // 32 lowercase hex digits, hi first. Used as chunk file names.
  std::string toHex() const;
  // Parses exactly 32 hex digits (either case); nullopt otherwise.
  static std::optional<Hash128> fromHex(std::string_view hex);

  bool isZero() const { return hi == 0 && lo == 0; }
  friend bool operator==(const Hash128&, const Hash128&) = default;
  friend auto operator<=>(const Hash128&, const Hash128&) = default;
};

using ChunkId = Hash128;
using RecordHash = Hash128;

// The stripe (placement group) a chunk belongs to: its id's low word mod the
// cluster's stripe count. Requires stripe_count > 0.
inline uint32_t stripeOf(const ChunkId& id, uint32_t stripe_count) {
  return static_cast<uint32_t>(id.lo % stripe_count);
}

}  // namespace sluice

template <>
struct std::hash<sluice::Hash128> {
  size_t operator()(const sluice::Hash128& h) const noexcept { return h.lo ^ (h.hi * 0x9e3779b97f4a7c15ull); }
};
