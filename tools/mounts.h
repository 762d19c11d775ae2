// Finding and removing Sluice FUSE mounts, for `sluice umount`, tests and
// the demo.
#pragma once

#include <string>
#include <vector>

#include "common/core/status.h"

namespace sluice::tools {

// Mount points of type fuse.sluice, from /proc/self/mountinfo.
std::vector<std::string> sluiceMounts();
bool isSluiceMount(const std::string& path);
// kAlreadyExists, saying to unmount first, if `path` is a Sluice mount.
Status checkNotSluiceMount(const std::string& path);

// fusermount3 -u (with -z when lazy); works when the daemon is alive (it
// then exits) or dead (the mount answered ENOTCONN). kBusy with advice when
// files are open.
Status unmountSluice(const std::string& path, bool lazy = false);

}  // namespace sluice::tools
