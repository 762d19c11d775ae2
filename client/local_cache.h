// LocalCache: records kept on node-local disk, shared by every process on the
// node that opens the same directory (FUSE mounts, prefetchers, DataLoader
// workers, ranks).
//
// Layout of the directory:
//   index/            LMDB: record -> {bytes, rank, state, owner pid}, an
//                     eviction order by rank, and the bytes in use
//   records/<hh>/<h>  one file per record, its raw bytes
//   tmp/              records being written (<h>.<pid>.<n>), through io_uring
//
// Contracts:
// - The byte budget holds across processes: an insert reserves its bytes (in
//   4 KiB blocks, as `du` counts) in the index before writing, evicting the
//   lowest-ranked ready entries to make room, so files on disk never exceed
//   the budget by more than the records being renamed into place.
// - A record is served only after its bytes hash to its name; a corrupt,
//   truncated or missing file is dropped from the index and reported as a
//   miss, so the caller refetches it.
// - A process killed at any point leaves a usable cache: its half-written
//   files are in tmp/ (removed by the next open), and index entries it left
//   "writing" are reclaimed once its pid is gone.
// - Eviction takes the lowest rank first, and only entries ranked below the
//   record being stored make room for it. insert() ranks by recency (the
//   time of the last use); a prefetcher that knows its future order ranks
//   with put(record, raw, rank) and setRanks() above every recency rank
//   (kPlannedBase - the time of the next use), so planned entries outlive
//   unplanned ones and the one needed furthest ahead goes first.
//
// Thread safety: all methods may be called concurrently, from any process.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <span>

#include "client/record_cache.h"
#include "common/core/result.h"

namespace sluice::client {

struct LocalCacheStats {
  uint64_t budget_bytes = 0;
  uint64_t used_bytes = 0;  // reserved in the index, all processes
  uint64_t entries = 0;
  // This process since open:
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t inserts = 0;
  uint64_t evictions = 0;
  uint64_t dropped_corrupt = 0;
};

class LocalCache : public RecordCache {
 public:
  // Opens (creating if needed) the cache in `dir`. The budget is the
  // directory's: opening with another budget changes it for every process.
  static Result<std::unique_ptr<LocalCache>> open(const std::string& dir, uint64_t budget_bytes);
  ~LocalCache() override;

  bool read(const RecordHash& record, uint32_t raw_length, uint64_t offset,
            std::span<uint8_t> out) override;
  void insert(const RecordHash& record, std::span<const uint8_t> raw) override;

  // Stores `raw` (verified by the caller) with eviction rank `rank`.
  // Returns false when it was not stored: no room (every other entry is
  // being written), larger than the budget, or another process is writing
  // it right now.
  Result<bool> put(const RecordHash& record, std::span<const uint8_t> raw, uint64_t rank);
  // Raises or lowers the eviction rank of a cached record; false if absent.
  bool setRank(const RecordHash& record, uint64_t rank);
  // Many at once, in one index transaction; returns how many were cached.
  size_t setRanks(std::span<const std::pair<RecordHash, uint64_t>> ranks);
  bool contains(const RecordHash& record);

  // The rank insert() and read() give: nanoseconds of CLOCK_MONOTONIC, the
  // same clock in every process on the node.
  static uint64_t recencyRank();
  // Planned ranks are kPlannedBase - (when the record is next needed).
  static constexpr uint64_t kPlannedBase = uint64_t{1} << 63;

  LocalCacheStats stats() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Impl;
  LocalCache(std::string dir, std::unique_ptr<Impl> impl);
  std::string recordPath(const RecordHash& record) const;
  void drop(const RecordHash& record);

  const std::string dir_;
  std::unique_ptr<Impl> impl_;
  std::atomic<uint64_t> hits_{0}, misses_{0}, inserts_{0}, evictions_{0}, dropped_{0};
  std::atomic<uint64_t> tmp_seq_{0};
};

}  // namespace sluice::client
