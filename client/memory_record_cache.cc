#include "client/memory_record_cache.h"

#include <algorithm>
#include <cstring>

namespace sluice::client {

MemoryRecordCache::MemoryRecordCache(uint64_t budget_bytes)
    : shard_budget_(budget_bytes / kShards) {}

bool MemoryRecordCache::read(const RecordHash& record, uint32_t raw_length, uint64_t offset,
                             std::span<uint8_t> out) {
  std::shared_ptr<const std::vector<uint8_t>> raw;
  {
    Shard& shard = shardOf(record);
    std::lock_guard lock(shard.mu);
    auto it = shard.index.find(record);
    if (it == shard.index.end()) return false;
    shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
    raw = it->second->second;
  }
  if (raw->size() != raw_length || offset > raw->size() || out.size() > raw->size() - offset) {
    return false;
  }
  std::memcpy(out.data(), raw->data() + offset, out.size());
  return true;
}

void MemoryRecordCache::insert(const RecordHash& record, std::span<const uint8_t> raw) {
  if (raw.size() > shard_budget_) return;
  auto copy = std::make_shared<const std::vector<uint8_t>>(raw.begin(), raw.end());
  Shard& shard = shardOf(record);
  std::lock_guard lock(shard.mu);
  if (shard.index.count(record) != 0) return;
  while (shard.bytes + raw.size() > shard_budget_ && !shard.lru.empty()) {
    shard.bytes -= shard.lru.back().second->size();
    shard.index.erase(shard.lru.back().first);
    shard.lru.pop_back();
  }
  shard.lru.emplace_front(record, std::move(copy));
  shard.index.emplace(record, shard.lru.begin());
  shard.bytes += raw.size();
}

uint64_t MemoryRecordCache::bytes() const {
  uint64_t total = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    total += shard.bytes;
  }
  return total;
}

bool TieredCache::read(const RecordHash& record, uint32_t raw_length, uint64_t offset,
                       std::span<uint8_t> out) {
  if (near_.read(record, raw_length, offset, out)) return true;
  if (offset == 0 && out.size() == raw_length) {
    if (!far_.read(record, raw_length, 0, out)) return false;
    near_.insert(record, out);
    return true;
  }
  std::vector<uint8_t> whole(raw_length);
  if (!far_.read(record, raw_length, 0, whole)) return false;
  near_.insert(record, whole);
  std::memcpy(out.data(), whole.data() + offset, out.size());
  return true;
}

void TieredCache::insert(const RecordHash& record, std::span<const uint8_t> raw) {
  near_.insert(record, raw);
  far_.insert(record, raw);
}

}  // namespace sluice::client
