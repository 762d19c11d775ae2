// MountGuard: a FUSE mount made with `sluice mount` for a test or a
// benchmark, unmounted (and its daemon gone) on destruction, whatever
// happened in between.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "tests/lib/test_cluster.h"

namespace sluice::testing {

class MountGuard {
 public:
  // Creates `mountpoint` if needed; `extra` are more `sluice mount` flags.
  MountGuard(const TestCluster& cluster, const std::string& mountpoint,
             const std::vector<std::string>& extra = {});
  ~MountGuard();
  MountGuard(const MountGuard&) = delete;
  MountGuard& operator=(const MountGuard&) = delete;

  bool ok() const { return mounted_; }
  const std::string& error() const { return error_; }
  pid_t pid() const { return pid_; }
  const std::string& path() const { return mountpoint_; }

 private:
  std::string mountpoint_;
  pid_t pid_ = 0;
  bool mounted_ = false;
  std::string error_;
};

}  // namespace sluice::testing
