// DirSyncer: group commit of directory fsyncs.
//
// After renaming a chunk into its stripe directory, a put must not be
// acknowledged until the directory entry is durable. Concurrent puts into the
// same directory share one fsync: a caller registers after its rename and
// waits until an fsync that *started* after that registration has finished.
//
// Thread safety: all methods are safe from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>

#include "common/core/status.h"
#include "storage_node/file_io.h"

namespace sluice::storage {

class DirSyncer {
 public:
  explicit DirSyncer(FileIo& io) : io_(io) {}

  // Makes every rename into `dirfd` done before this call durable. `key`
  // identifies the directory (stripe number); fds may differ per key only.
  Status sync(uint64_t key, int dirfd);

  uint64_t fsyncCount() const;

 private:
  struct State {
    uint64_t requested = 0;
    uint64_t completed = 0;
    bool in_progress = false;
    // Registrations up to here were covered by an fsync that failed. Linux
    // reports a writeback error once per open file, so fsyncing again could
    // "succeed" without making those renames durable: they fail too.
    uint64_t failed_upto = 0;
    Status failure;
  };
  FileIo& io_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, State> dirs_;  // GUARDED_BY(mu_)
  uint64_t fsyncs_ = 0;             // GUARDED_BY(mu_)
};

}  // namespace sluice::storage
