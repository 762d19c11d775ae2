// FaultyFileIo: wraps a real FileIo and injects failures, switched on by
// atomic flags (leveldb's ErrorEnv habit): ENOSPC or EIO on writes after a
// byte budget (a torn write: the first bytes land, then the error), EIO on
// reads, failing fsyncs.
#pragma once

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "storage_node/file_io.h"

namespace sluice::storage::testing {

struct Faults {
  std::atomic<int> write_errno{0};              // errno for writes once the budget is spent
  std::atomic<int64_t> write_budget{0};         // bytes that still succeed before write_errno
  std::atomic<int> read_errno{0};
  std::atomic<int> fsync_errno{0};
  std::atomic<int> dir_sync_failures{0};  // the next N syncFd calls fail with EIO, then pass
  std::atomic<uint64_t> writes_failed{0};
  // While hold_syncs is set, syncFd calls wait (counted in sync_waiters)
  // until it is cleared, so a test can line threads up inside a sync.
  std::mutex sync_mu;
  std::condition_variable sync_cv;
  bool hold_syncs = false;  // GUARDED_BY(sync_mu)
  int sync_waiters = 0;     // GUARDED_BY(sync_mu)
};

class FaultyQueue final : public IoQueue {
 public:
  FaultyQueue(std::unique_ptr<IoQueue> inner, Faults& f) : inner_(std::move(inner)), f_(f) {}
  Result<size_t> readStreaming(int fd, uint8_t* buf, size_t len, uint64_t off,
                               const Progress& progress) override {
    if (int e = f_.read_errno.load()) return errnoStatus(e, "read (injected)");
    return inner_->readStreaming(fd, buf, len, off, progress);
  }
  Status writeStreaming(int fd, uint8_t* buf, size_t len, uint64_t off, const Fill& fill) override {
    if (int e = f_.write_errno.load()) {
      int64_t budget = f_.write_budget.load();
      if (budget < static_cast<int64_t>(len)) {
        // Torn: a block-aligned prefix lands before the failure.
        size_t part = budget > 0 ? (static_cast<size_t>(budget) & ~size_t{4095}) : 0;
        if (part > 0) inner_->writeStreaming(fd, buf, part, off, fill).ignore();
        f_.write_budget = 0;
        ++f_.writes_failed;
        return errnoStatus(e, "write (injected)");
      }
      f_.write_budget -= static_cast<int64_t>(len);
    }
    return inner_->writeStreaming(fd, buf, len, off, fill);
  }
  Status fsync(int fd) override {
    if (int e = f_.fsync_errno.load()) return errnoStatus(e, "fsync (injected)");
    return inner_->fsync(fd);
  }
  bool outOfService() const override { return inner_->outOfService(); }

 private:
  std::unique_ptr<IoQueue> inner_;
  Faults& f_;
};

class FaultyFileIo final : public FileIo {
 public:
  explicit FaultyFileIo(std::shared_ptr<FileIo> inner) : inner_(std::move(inner)) {}
  Faults& faults() { return f_; }

  Result<std::unique_ptr<IoQueue>> newQueue(uint8_t* buf, size_t size) override {
    SLUICE_ASSIGN_OR_RETURN(auto q, inner_->newQueue(buf, size));
    return std::unique_ptr<IoQueue>(std::make_unique<FaultyQueue>(std::move(q), f_));
  }
  Result<int> openAt(int dirfd, const std::string& name, int flags, mode_t mode) override {
    return inner_->openAt(dirfd, name, flags, mode);
  }
  void closeFd(int fd) override { inner_->closeFd(fd); }
  Status truncate(int fd, uint64_t size) override { return inner_->truncate(fd, size); }
  Status syncFd(int fd) override {
    {
      std::unique_lock lock(f_.sync_mu);
      if (f_.hold_syncs) {
        ++f_.sync_waiters;
        f_.sync_cv.notify_all();
        f_.sync_cv.wait(lock, [&] { return !f_.hold_syncs; });
      }
    }
    if (int e = f_.fsync_errno.load()) return errnoStatus(e, "fsync (injected)");
    for (int n = f_.dir_sync_failures.load(); n > 0;) {
      if (f_.dir_sync_failures.compare_exchange_weak(n, n - 1)) return errnoStatus(EIO, "fsync (injected)");
    }
    return inner_->syncFd(fd);
  }
  Status renameAt(int a, const std::string& from, int b, const std::string& to) override {
    return inner_->renameAt(a, from, b, to);
  }
  Status unlinkAt(int dirfd, const std::string& name) override {
    return inner_->unlinkAt(dirfd, name);
  }

 private:
  std::shared_ptr<FileIo> inner_;
  Faults f_;
};

}  // namespace sluice::storage::testing
