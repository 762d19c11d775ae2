#include "tests/lib/test_mount.h"

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "tools/mounts.h"

namespace sluice::testing {

MountGuard::MountGuard(const TestCluster& cluster, const std::string& mountpoint,
                       const std::vector<std::string>& extra)
    : mountpoint_(mountpoint) {
  std::filesystem::create_directories(mountpoint);
  std::vector<std::string> args = {"mount", mountpoint};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = cluster.runCli(args);
  if (!r.isOk()) {
    error_ = r.status().toString();
    return;
  }
  if (r->exit_code != 0) {
    error_ = "sluice mount exited " + std::to_string(r->exit_code) + ": " + r->err + r->out;
    return;
  }
  // "mounted /x (cluster ..., pid 123, log ...)"
  size_t at = r->out.find("pid ");
  if (at != std::string::npos) pid_ = static_cast<pid_t>(std::atoi(r->out.c_str() + at + 4));
  mounted_ = pid_ > 0;
  if (!mounted_) error_ = "no pid in: " + r->out;
}

MountGuard::~MountGuard() {
  if (tools::isSluiceMount(mountpoint_)) (void)tools::unmountSluice(mountpoint_, /*lazy=*/true);
  // The daemon exits once unmounted; make sure of it.
  for (int i = 0; i < 100 && pid_ > 0 && ::kill(pid_, 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (pid_ > 0 && ::kill(pid_, 0) == 0) ::kill(pid_, SIGKILL);
}

}  // namespace sluice::testing
