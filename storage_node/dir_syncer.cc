#include "storage_node/dir_syncer.h"

namespace sluice::storage {

Status DirSyncer::sync(uint64_t key, int dirfd) {
  std::unique_lock lock(mu_);
  State& st = dirs_[key];
  const uint64_t mine = ++st.requested;
  for (;;) {
    // Failure first: a later fsync that succeeded does not vouch for renames
    // a failed one covered (their error may have been reported only once).
    if (mine <= st.failed_upto) {
      return st.failure.withContext("fsync of stripe directory " + std::to_string(key));
    }
    if (st.completed >= mine) break;
    if (st.in_progress) {
      cv_.wait(lock);
      continue;
    }
    st.in_progress = true;
    const uint64_t target = st.requested;
    lock.unlock();
    Status s = io_.syncFd(dirfd);
    lock.lock();
    ++fsyncs_;
    st.in_progress = false;
    if (s.isOk()) {
      st.completed = target;
    } else {
      st.failed_upto = target;
      st.failure = s;
      cv_.notify_all();
      return s.withContext("fsync of stripe directory " + std::to_string(key));
    }
    cv_.notify_all();
  }
  return Status::ok();
}

uint64_t DirSyncer::fsyncCount() const {
  std::lock_guard lock(mu_);
  return fsyncs_;
}

}  // namespace sluice::storage
