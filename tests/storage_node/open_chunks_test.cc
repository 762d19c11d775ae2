// OpenChunks on real descriptors: what it keeps, what it refuses, and that a
// file closes only once the cache and every reader have let go of it.
#include "storage_node/open_chunks.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace sluice::storage {
namespace {

Hash128 idOf(uint64_t n) { return Hash128{n, ~n}; }

bool isOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

class OpenChunksTest : public ::testing::Test {
 protected:
  OpenChunks::Handle openOne() {
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    return std::make_shared<const OpenChunks::File>(*io_, fd);
  }
  std::shared_ptr<FileIo> io_ = makeUringFileIo();
};

TEST_F(OpenChunksTest, KeepsTheMostRecentlyReadUpToItsCapacity) {
  OpenChunks chunks(2);
  chunks.keep(idOf(1), 7, openOne(), chunks.epoch(idOf(1)));
  chunks.keep(idOf(2), 7, openOne(), chunks.epoch(idOf(2)));
  ASSERT_TRUE(chunks.find(idOf(1), 7));  // 1 is now the most recent
  chunks.keep(idOf(3), 7, openOne(), chunks.epoch(idOf(3)));
  EXPECT_EQ(chunks.size(), 2u);
  EXPECT_TRUE(chunks.find(idOf(1), 7));
  EXPECT_FALSE(chunks.find(idOf(2), 7)) << "the least recently read is closed first";
  EXPECT_TRUE(chunks.find(idOf(3), 7));
  EXPECT_FALSE(chunks.find(idOf(3), 8)) << "a copy in another stripe is another file";
}

TEST_F(OpenChunksTest, RefusesAFileOpenedWhileOneWasForgotten) {
  OpenChunks chunks(8);
  const uint64_t before_open = chunks.epoch(idOf(1));
  chunks.forget(idOf(1));  // a delete or quarantine lands between open and keep
  chunks.keep(idOf(1), 0, openOne(), before_open);
  EXPECT_FALSE(chunks.find(idOf(1), 0));
  chunks.keep(idOf(1), 0, openOne(), chunks.epoch(idOf(1)));
  EXPECT_TRUE(chunks.find(idOf(1), 0));
  // A forget in another bucket of ids does not keep a reader's file out.
  const uint64_t before_other = chunks.epoch(idOf(2));
  chunks.forget(idOf(3));
  chunks.keep(idOf(2), 0, openOne(), before_other);
  EXPECT_TRUE(chunks.find(idOf(2), 0));
}

TEST_F(OpenChunksTest, ClosesAFileOnlyWhenTheLastHolderLetsGo) {
  OpenChunks chunks(1);
  OpenChunks::Handle reading = openOne();
  const int fd = reading->fd();
  chunks.keep(idOf(1), 0, reading, chunks.epoch(idOf(1)));
  chunks.forget(idOf(1));
  EXPECT_EQ(chunks.size(), 0u);
  EXPECT_TRUE(isOpen(fd)) << "a reader still holds it";
  reading.reset();
  EXPECT_FALSE(isOpen(fd));

  OpenChunks::Handle evicted = openOne();
  const int fd2 = evicted->fd();
  chunks.keep(idOf(2), 0, std::move(evicted), chunks.epoch(idOf(2)));
  chunks.keep(idOf(3), 0, openOne(), chunks.epoch(idOf(3)));  // evicts 2, held by nobody
  EXPECT_FALSE(isOpen(fd2));
}

TEST_F(OpenChunksTest, KeepsNothingAtCapacityZero) {
  OpenChunks chunks(0);
  chunks.keep(idOf(1), 0, openOne(), chunks.epoch(idOf(1)));
  EXPECT_EQ(chunks.size(), 0u);
  EXPECT_FALSE(chunks.find(idOf(1), 0));
}

}  // namespace
}  // namespace sluice::storage
