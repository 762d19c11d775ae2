// DirCache: whole directory listings of committed versions, loaded from
// sluice-meta once and kept (they never change), so `ls`, `find` and the
// lookups that follow a readdir cost no further round trips.
//
// Bounded by the number of entries held; least recently used listings go
// first. Concurrent requests for the same directory share one load.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/cluster.h"
#include "client/file_info.h"
#include "common/core/result.h"

namespace sluice::fuse {

struct DirEntry {
  std::string name;
  client::FileType type = client::FileType::kFile;
  uint64_t size = 0;
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  std::string symlink_target;
};

// Sorted by name.
using DirListing = std::vector<DirEntry>;

class DirCache {
 public:
  DirCache(client::Cluster& cluster, size_t max_entries);

  // The listing of `dir` ("" for the version's root) in dataset@v<version>;
  // kNotFound when it is not a directory of that version. `dataset_id`
  // keeps the listings of a dataset deleted and created again apart.
  Result<std::shared_ptr<const DirListing>> get(const std::string& dataset, uint64_t dataset_id,
                                                uint32_t version, const std::string& dir);
  // The entry `name` of the listing, or null.
  static const DirEntry* find(const DirListing& listing, const std::string& name);

 private:
  using Loaded = Result<std::shared_ptr<const DirListing>>;
  struct Slot {
    std::shared_future<Loaded> listing;
    std::list<std::string>::iterator lru;
    size_t entries = 0;
  };
  Loaded load(const std::string& dataset, uint32_t version, const std::string& dir);

  client::Cluster& cluster_;
  const size_t max_entries_;
  std::mutex mu_;
  std::list<std::string> lru_;                       // GUARDED_BY(mu_), most recent first
  std::unordered_map<std::string, Slot> slots_;      // GUARDED_BY(mu_)
  size_t entries_ = 0;                               // GUARDED_BY(mu_)
};

}  // namespace sluice::fuse
