// Mount bookkeeping that needs no FUSE: reading mountinfo.
#include "tools/mounts.h"

#include <gtest/gtest.h>

namespace sluice::tools {
namespace {

TEST(Mounts, ParsesSluiceMountsAndTheirDaemonsFromMountinfo) {
  const std::string text =
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "36 22 0:52 / /mnt/a rw,nosuid,nodev shared:20 - fuse.sluice sluice:4242 ro,user_id=0,group_id=0\n"
      "37 22 0:53 / /mnt/with\\040space rw shared:21 - fuse.sluice sluice:77 ro\n"
      "38 22 0:54 / /mnt/old rw - fuse.sluice sluice ro\n"          // an older daemon: no pid
      "39 22 0:55 / /mnt/bad rw - fuse.sluice sluice:12x ro\n"      // not a pid
      "40 22 0:56 / /mnt/other rw - fuse.sshfs sluice:5 ro\n"       // not ours
      "garbage line\n";
  auto m = parseSluiceMounts(text);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].mountpoint, "/mnt/a");
  EXPECT_EQ(m[0].daemon, 4242);
  EXPECT_EQ(m[1].mountpoint, "/mnt/with space");
  EXPECT_EQ(m[1].daemon, 77);
  EXPECT_EQ(m[2].mountpoint, "/mnt/old");
  EXPECT_EQ(m[2].daemon, 0);
  EXPECT_EQ(m[3].daemon, 0);
}

}  // namespace
}  // namespace sluice::tools
