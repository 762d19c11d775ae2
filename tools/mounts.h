// Finding and removing Sluice FUSE mounts, for `sluice umount`, tests and
// the demo.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/core/status.h"

namespace sluice::tools {

// A Sluice mount as /proc/self/mountinfo lists it.
struct SluiceMount {
  std::string mountpoint;
  pid_t daemon = 0;  // from the source "sluice:<pid>" sluice-fuse gives it; 0 if not there
};
// The fuse.sluice entries of mountinfo text (escapes undone).
std::vector<SluiceMount> parseSluiceMounts(const std::string& mountinfo);

// Mount points of type fuse.sluice, from /proc/self/mountinfo.
std::vector<std::string> sluiceMounts();
bool isSluiceMount(const std::string& path);
// kAlreadyExists, saying to unmount first, if `path` is a Sluice mount.
Status checkNotSluiceMount(const std::string& path);

// fusermount3 -u (with -z when lazy); works when the daemon is alive (it
// then exits) or dead (the mount answered ENOTCONN). kBusy with advice when
// files are open. A plain unmount returns once the mount's daemon has exited
// (its pid is read from the mount before), so a new mount of `path` can
// start at once; kTimeout, naming the pid, if it has not within
// `daemon_wait` (the mount is gone all the same). A lazy unmount does not
// wait: the daemon serves the files still open until they close.
Status unmountSluice(const std::string& path, bool lazy = false,
                     std::chrono::milliseconds daemon_wait = std::chrono::seconds(30));

}  // namespace sluice::tools
