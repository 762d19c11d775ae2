#include "storage_node/open_chunks.h"

#include <utility>
#include <vector>

namespace sluice::storage {

OpenChunks::Handle OpenChunks::find(const Hash128& id, uint32_t stripe) {
  std::lock_guard lock(mu_);
  auto it = kept_.find(id);
  if (it == kept_.end() || it->second.stripe != stripe) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.at);
  return it->second.file;
}

uint64_t OpenChunks::epoch(const Hash128& id) const {
  std::lock_guard lock(mu_);
  return epochs_[bucket(id)];
}

void OpenChunks::keep(const Hash128& id, uint32_t stripe, Handle file, uint64_t epoch) {
  Handle dropped;  // closed (if no reader holds it) after the lock is let go
  {
    std::lock_guard lock(mu_);
    if (capacity_ == 0 || epoch != epochs_[bucket(id)]) return;
    auto it = kept_.find(id);
    if (it != kept_.end()) {
      // Another reader kept one first, or the copy in another stripe: the
      // newer one wins.
      dropped = std::exchange(it->second.file, std::move(file));
      it->second.stripe = stripe;
      lru_.splice(lru_.begin(), lru_, it->second.at);
      return;
    }
    if (kept_.size() >= capacity_) {
      auto last = kept_.find(lru_.back());
      dropped = std::move(last->second.file);
      kept_.erase(last);
      lru_.pop_back();
    }
    auto [at, added] = kept_.emplace(id, Kept{stripe, std::move(file), lru_.end()});
    try {
      lru_.push_front(id);
    } catch (...) {
      kept_.erase(at);  // no entry without its place in lru_
      throw;
    }
    at->second.at = lru_.begin();
  }
}

void OpenChunks::forget(const Hash128& id) {
  Handle dropped;
  std::lock_guard lock(mu_);
  ++epochs_[bucket(id)];
  auto it = kept_.find(id);
  if (it == kept_.end()) return;
  dropped = std::move(it->second.file);
  lru_.erase(it->second.at);
  kept_.erase(it);
  // `dropped` is declared before the lock, so the file closes after unlocking.
}

size_t OpenChunks::shed(size_t n) {
  std::vector<Handle> dropped;  // closed after the lock is let go
  std::lock_guard lock(mu_);
  while (dropped.size() < n && !lru_.empty()) {
    auto last = kept_.find(lru_.back());
    dropped.push_back(std::move(last->second.file));
    kept_.erase(last);
    lru_.pop_back();
  }
  return dropped.size();
}

size_t OpenChunks::size() const {
  std::lock_guard lock(mu_);
  return kept_.size();
}

}  // namespace sluice::storage
