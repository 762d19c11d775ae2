// Finding and removing Sluice FUSE mounts, for `sluice umount`, tests and
// the demo.
#pragma once

#include <sys/types.h>

#include <chrono>
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
// files are open. A plain unmount returns once the daemon has let go of the
// mount point (it exits right after), so a new mount of `path` can start at
// once; kTimeout, naming the daemon's pid, if it has not within
// `daemon_wait`. A lazy unmount does not wait: the daemon serves the files
// still open until they close.
Status unmountSluice(const std::string& path, bool lazy = false,
                     std::chrono::milliseconds daemon_wait = std::chrono::seconds(30));

// Processes holding an flock on the directory at `path` (from /proc/locks).
// A Sluice mount's daemon holds one on the directory under its mount until
// it exits (see fuse/main.cc claimMountPoint).
std::vector<pid_t> flockHolders(const std::string& path);

}  // namespace sluice::tools
