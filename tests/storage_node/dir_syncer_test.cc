// DirSyncer's group commit: callers share fsyncs, and a failed fsync fails
// every caller it covered, even if a later one succeeds (Linux reports a
// writeback error once per file, so that later success proves nothing).
#include "storage_node/dir_syncer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::storage {
namespace {

// Only syncFd is used by DirSyncer: each call waits until the test lets it
// finish, with the result the test scripted for it.
class ScriptedSyncIo final : public FileIo {
 public:
  explicit ScriptedSyncIo(std::vector<Status> results) : results_(std::move(results)) {}
  void finish(size_t n) {  // lets calls [0, n) return
    std::lock_guard lock(mu_);
    released_ = n;
    cv_.notify_all();
  }
  size_t calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  Status syncFd(int) override {
    std::unique_lock lock(mu_);
    const size_t me = calls_++;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_ > me; });
    return me < results_.size() ? results_[me] : Status::ok();
  }
  void waitForCalls(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return calls_ >= n; });
  }
  Result<std::unique_ptr<IoQueue>> newQueue(uint8_t*, size_t) override { return unimplemented(); }
  Result<int> openAt(int, const std::string&, int, mode_t) override { return unimplemented(); }
  void closeFd(int) override {}
  Status truncate(int, uint64_t) override { return unimplemented(); }
  Status renameAt(int, const std::string&, int, const std::string&) override { return unimplemented(); }
  Status unlinkAt(int, const std::string&) override { return unimplemented(); }

 private:
  static Status unimplemented() { return Status(StatusCode::kUnimplemented, "not used by DirSyncer"); }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Status> results_;
  size_t calls_ = 0;
  size_t released_ = 0;
};

TEST(DirSyncer, AFailedFsyncFailsEveryCallerItCovered) {
  // fsync #0 (A's) succeeds, #1 (covering B and C) fails, any later succeeds.
  ScriptedSyncIo io({Status::ok(), ioError("EIO (injected)")});
  DirSyncer syncer(io);
  Status a, b, c;
  std::thread ta([&] { a = syncer.sync(7, 3); });
  io.waitForCalls(1);  // A's fsync is running; B and C register behind it
  std::thread tb([&] { b = syncer.sync(7, 3); });
  std::thread tc([&] { c = syncer.sync(7, 3); });
  // Give B and C time to register while A's fsync is still held.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  io.finish(1);
  ta.join();
  EXPECT_TRUE(a.isOk()) << a.toString();
  io.waitForCalls(2);  // one of B and C leads the next fsync, covering both
  io.finish(100);
  tb.join();
  tc.join();
  EXPECT_EQ(b.code(), StatusCode::kIoError) << b.toString();
  EXPECT_EQ(c.code(), StatusCode::kIoError) << c.toString();
  EXPECT_EQ(io.calls(), 2u) << "the caller that did not lead must not fsync again and succeed";
  // A put registered after the failure is served by a new fsync.
  EXPECT_TRUE(syncer.sync(7, 3).isOk());
  EXPECT_EQ(syncer.fsyncCount(), 3u);
}

}  // namespace
}  // namespace sluice::storage
