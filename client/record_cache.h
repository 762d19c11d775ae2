// RecordCache: where a reader looks for a record's raw bytes before asking
// the cluster, and where it leaves the records it fetched.
//
// Records are named by the hash of their raw bytes, so a cache entry is valid
// for every dataset and version that contains the record, and a reader can
// verify what a cache gives back. Implementations: MemoryRecordCache (this
// process) and LocalCache (node-local disk, shared by processes); TieredCache
// puts one in front of the other.
//
// Thread safety: implementations allow concurrent calls.
#pragma once

#include <cstdint>
#include <span>

#include "common/codec/hash128.h"

namespace sluice::client {

class RecordCache {
 public:
  virtual ~RecordCache() = default;

  // Copies bytes [offset, offset + out.size()) of the record, whose raw
  // length is `raw_length`, into `out` and returns true when the cache holds
  // it intact. False (and `out` unspecified) otherwise.
  virtual bool read(const RecordHash& record, uint32_t raw_length, uint64_t offset,
                    std::span<uint8_t> out) = 0;

  // Offers a record's raw bytes, already verified against `record`. The
  // cache may decline (too large, no room); that is not an error.
  virtual void insert(const RecordHash& record, std::span<const uint8_t> raw) = 0;
};

// The first cache that has a record serves it; records found only in the
// second are copied into the first.
class TieredCache : public RecordCache {
 public:
  TieredCache(RecordCache& near, RecordCache& far) : near_(near), far_(far) {}
  bool read(const RecordHash& record, uint32_t raw_length, uint64_t offset,
            std::span<uint8_t> out) override;
  void insert(const RecordHash& record, std::span<const uint8_t> raw) override;

 private:
  RecordCache& near_;
  RecordCache& far_;
};

}  // namespace sluice::client
