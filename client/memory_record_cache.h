// MemoryRecordCache: recently used records in this process's memory, up to a
// byte budget, least recently used evicted first. Sharded so concurrent
// readers (FUSE threads) rarely share a lock.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "client/record_cache.h"

namespace sluice::client {

class MemoryRecordCache : public RecordCache {
 public:
  explicit MemoryRecordCache(uint64_t budget_bytes);

  bool read(const RecordHash& record, uint32_t raw_length, uint64_t offset,
            std::span<uint8_t> out) override;
  void insert(const RecordHash& record, std::span<const uint8_t> raw) override;

  uint64_t bytes() const;

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    using Lru = std::list<std::pair<RecordHash, std::shared_ptr<const std::vector<uint8_t>>>>;
    mutable std::mutex mu;
    Lru lru;  // most recent first
    std::unordered_map<RecordHash, Lru::iterator> index;
    uint64_t bytes = 0;
  };
  Shard& shardOf(const RecordHash& record) { return shards_[record.lo % kShards]; }

  const uint64_t shard_budget_;
  Shard shards_[kShards];
};

}  // namespace sluice::client
