// The mount bookkeeping that needs no FUSE: who holds a mount point's lock.
#include "tools/mounts.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

namespace sluice::tools {
namespace {

// `sluice umount` waits for the daemons holding the directory's flock; the
// holders must be found, and found gone once the lock is let go.
TEST(Mounts, FlockHoldersNamesTheProcessHoldingADirectory) {
  const std::string dir = "/tmp/sluice-mounts-test-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  EXPECT_TRUE(flockHolders(dir).empty());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    char ok = (fd >= 0 && ::flock(fd, LOCK_EX) == 0) ? 'y' : 'n';
    (void)!::write(ready[1], &ok, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ::close(ready[0]);
  EXPECT_EQ(ok, 'y');
  auto holders = flockHolders(dir);
  EXPECT_EQ(holders, std::vector<pid_t>{child});
  // Another directory's lock is not this one's.
  std::filesystem::create_directories(dir + "/other");
  EXPECT_TRUE(flockHolders(dir + "/other").empty());
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(flockHolders(dir).empty());
  EXPECT_TRUE(flockHolders(dir + "/missing").empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::tools
