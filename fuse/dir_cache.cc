#include "fuse/dir_cache.h"

#include <algorithm>

namespace sluice::fuse {
namespace {
namespace meta = wire::meta;
}

DirCache::DirCache(client::Cluster& cluster, size_t max_entries)
    : cluster_(cluster), max_entries_(max_entries) {}

const DirEntry* DirCache::find(const DirListing& listing, const std::string& name) {
  auto it = std::lower_bound(listing.begin(), listing.end(), name,
                             [](const DirEntry& e, const std::string& n) { return e.name < n; });
  return it != listing.end() && it->name == name ? &*it : nullptr;
}

DirCache::Loaded DirCache::load(const std::string& dataset, uint32_t version,
                                const std::string& dir) {
  auto listing = std::make_shared<DirListing>();
  std::string cursor;
  for (;;) {
    meta::ReadDirRequestT req;
    req.dataset = dataset;
    req.version = "v" + std::to_string(version);
    req.path = dir;
    req.cursor = cursor;
    req.limit = 10000;
    SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster_.meta<meta::ReadDirRequest, meta::ReadDirResponse>(
                                           meta::MetaMethod::ReadDir, req, "ReadDir")));
    for (const auto& e : resp->entries) {
      if (!e) continue;
      DirEntry d;
      d.name = e->path;
      // A name the kernel cannot take would break every listing of the
      // directory; meta validates paths, so this only guards a bad server.
      if (d.name.empty() || d.name == "." || d.name == ".." || d.name.find('/') != std::string::npos) {
        return Status(StatusCode::kProtocolError, "ReadDir returned the invalid name '" + d.name + "'");
      }
      d.type = e->type == meta::EntryType::Directory ? client::FileType::kDirectory
               : e->type == meta::EntryType::Symlink ? client::FileType::kSymlink
                                                     : client::FileType::kFile;
      d.size = e->size;
      d.mode = e->mode & 07777;
      d.mtime_ns = e->mtime_ns;
      d.symlink_target = e->symlink_target;
      listing->push_back(std::move(d));
    }
    if (resp->next_cursor.empty() || resp->entries.empty()) break;
    cursor = resp->next_cursor;
  }
  std::sort(listing->begin(), listing->end(),
            [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  return std::shared_ptr<const DirListing>(std::move(listing));
}

Result<std::shared_ptr<const DirListing>> DirCache::get(const std::string& dataset,
                                                        uint64_t dataset_id, uint32_t version,
                                                        const std::string& dir) {
  std::string key = dataset + '\0' + std::to_string(dataset_id) + '\0' + std::to_string(version) +
                    '\0' + dir;
  std::promise<Loaded> promise;
  std::shared_future<Loaded> future;
  bool loader = false;
  {
    std::lock_guard lock(mu_);
    auto it = slots_.find(key);
    if (it != slots_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      future = it->second.listing;
    } else {
      loader = true;
      future = promise.get_future().share();
      lru_.push_front(key);
      slots_[key] = Slot{future, lru_.begin(), 0};
    }
  }
  if (!loader) return future.get();

  Loaded loaded = load(dataset, version, dir);
  promise.set_value(loaded);
  std::lock_guard lock(mu_);
  auto it = slots_.find(key);
  if (it == slots_.end()) return loaded;
  if (!loaded.isOk()) {
    // Errors are not cached: a node or meta that is back answers next time.
    lru_.erase(it->second.lru);
    slots_.erase(it);
    return loaded;
  }
  it->second.entries = (*loaded)->size() + 1;
  entries_ += it->second.entries;
  while (entries_ > max_entries_ && lru_.size() > 1) {
    auto victim = slots_.find(lru_.back());
    entries_ -= victim->second.entries;
    slots_.erase(victim);
    lru_.pop_back();
  }
  return loaded;
}

}  // namespace sluice::fuse
