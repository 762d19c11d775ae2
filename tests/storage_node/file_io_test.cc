// The io_uring queue after a ring-level failure (io_uring_enter refusing a
// submission or a wait, injected through RingFaults): the failed operation
// returns its error, and the next operation on the same pooled ring sees only
// its own completions and no write of the failed one.
#include "storage_node/file_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "common/core/metrics.h"
#include "tests/storage_node/test_util.h"

namespace sluice::storage {
namespace {

using testing::randomBytes;
using testing::TempDir;

constexpr size_t kBuffer = 4u << 20;

class RingRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    buf_.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, kBuffer)));
    auto q = makeUringFileIo(8, faults_)->newQueue(buf_.get(), kBuffer);
    ASSERT_TRUE(q.isOk()) << q.status().toString();
    queue_ = std::move(q).value();
  }

  std::string pathOf(const std::string& name) const { return dir_.path() + "/" + name; }

  int create(const std::string& name, const std::vector<uint8_t>& bytes) {
    const int fd = ::open(pathOf(name).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    return fd;
  }

  off_t sizeOf(const std::string& name) const {
    struct stat st {};
    return ::stat(pathOf(name).c_str(), &st) == 0 ? st.st_size : -1;
  }

  TempDir dir_;
  std::shared_ptr<RingFaults> faults_ = std::make_shared<RingFaults>();
  std::unique_ptr<uint8_t, decltype(&std::free)> buf_{nullptr, &std::free};
  std::unique_ptr<IoQueue> queue_;
};

TEST_F(RingRecoveryTest, AReadWhoseWaitFailedLeavesNoCompletionForTheNext) {
  const auto x = randomBytes(kBuffer, 1);
  const auto y = randomBytes(8192, 2);
  const int fx = create("x", x);
  const int fy = create("y", y);

  faults_->waits = 1;  // four 1 MiB reads are in flight when their wait fails
  auto failed = queue_->readAt(fx, buf_.get(), kBuffer, 0);
  // The ring's failure, not the disk's: kIoError would get a chunk quarantined.
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);

  // Without the drain, this one-segment read takes the failed read's first
  // completion (1 MiB) for its own and returns before its bytes arrive.
  auto got = queue_->readAt(fy, buf_.get(), y.size(), 0);
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_EQ(*got, y.size());
  EXPECT_EQ(std::memcmp(buf_.get(), y.data(), y.size()), 0);

  got = queue_->readAt(fx, buf_.get(), kBuffer, 0);
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_EQ(*got, kBuffer);
  EXPECT_EQ(std::memcmp(buf_.get(), x.data(), kBuffer), 0);
  ::close(fx);
  ::close(fy);
}

TEST_F(RingRecoveryTest, AWriteWhoseSubmitFailedNeverLandsInALaterFile) {
  const int fa = create("a", {});
  std::memset(buf_.get(), 'a', 1u << 20);
  faults_->submits = 1;
  Status failed = queue_->writeAt(fa, buf_.get(), 1u << 20, 0);
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable);
  ::close(fa);  // as a failed put does; the next open reuses the number

  const int fb = create("b", {});
  ASSERT_EQ(fb, fa) << "the test needs the descriptor number reused";
  std::memset(buf_.get(), 'b', 4096);
  // Without the drain, the failed write is submitted with this one, into b.
  ASSERT_TRUE(queue_->writeAt(fb, buf_.get(), 4096, 0).isOk());
  ASSERT_TRUE(queue_->fsync(fb).isOk());
  ::close(fb);
  EXPECT_EQ(sizeOf("b"), 4096) << "b holds only its own write";
}

TEST_F(RingRecoveryTest, ARingThatCannotDrainIsTakenOutOfService) {
  const auto x = randomBytes(1u << 20, 3);
  const int fx = create("x", x);
  faults_->waits = 1000000;  // the ring never gives its completions back
  Counter& lost = MetricsRegistry::global().counter("sluice_storage_io_rings_lost_total", "");
  const uint64_t lost_before = lost.value();
  auto failed = queue_->readAt(fx, buf_.get(), x.size(), 0);
  EXPECT_FALSE(failed.isOk());
  EXPECT_EQ(lost.value(), lost_before + 1) << "a lost ring shows on /metrics";
  faults_->waits = 0;
  EXPECT_TRUE(queue_->outOfService());
  auto later = queue_->readAt(fx, buf_.get(), x.size(), 0);
  ASSERT_FALSE(later.isOk()) << "a ring whose completions are unaccounted for is not reused";
  EXPECT_EQ(later.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(later.status().message().find("out of service"), std::string::npos)
      << later.status().toString();
  ::close(fx);
}

}  // namespace
}  // namespace sluice::storage
