#include "tools/mounts.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tools/process.h"

namespace sluice::tools {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t j = 1; j <= 3; ++j) {
        char c = i + j < s.size() ? s[i + j] : 'x';
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string normalize(const std::string& path) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  return (ec ? std::filesystem::path(path) : abs).lexically_normal().string();
}

}  // namespace

std::vector<std::string> sluiceMounts() {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream tail(line.substr(sep + 3));
    std::string fstype;
    tail >> fstype;
    if (fstype != "fuse.sluice") continue;
    std::istringstream head(line.substr(0, sep));
    std::string id, parent, dev, root, mountpoint;
    head >> id >> parent >> dev >> root >> mountpoint;
    out.push_back(unescape(mountpoint));
  }
  return out;
}

bool isSluiceMount(const std::string& path) {
  std::string want = normalize(path);
  for (const auto& m : sluiceMounts()) {
    if (m == want) return true;
  }
  return false;
}

Status checkNotSluiceMount(const std::string& path) {
  if (!isSluiceMount(path)) return Status::ok();
  return Status(StatusCode::kAlreadyExists,
                path + " is already a Sluice mount; 'sluice umount " + path + "' first");
}

std::vector<pid_t> flockHolders(const std::string& path) {
  std::vector<pid_t> out;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return out;
  // "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF": the device as
  // hex major:minor, then the inode.
  char want[64];
  std::snprintf(want, sizeof want, "%02x:%02x:%lu", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long>(st.st_ino));
  std::ifstream in("/proc/locks");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string ordinal, kind, mode, access, pid, where;
    f >> ordinal >> kind;
    if (kind == "->") f >> kind;  // a waiter's line: "1: -> FLOCK ..."
    f >> mode >> access >> pid >> where;
    if (kind != "FLOCK" || where != want) continue;
    pid_t p = static_cast<pid_t>(std::atol(pid.c_str()));
    if (p > 0 && std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

Status unmountSluice(const std::string& path, bool lazy, std::chrono::milliseconds daemon_wait) {
  auto fusermount = findExecutable("fusermount3");
  if (!fusermount.isOk()) return fusermount.status();
  std::vector<std::string> args = {"-u"};
  if (lazy) args.push_back("-z");
  args.push_back(normalize(path));
  auto run = runProcess(*fusermount, args);
  if (!run.isOk()) return run.status();
  if (run->exit_code != 0) {
    std::string err = run->err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    if (err.find("busy") != std::string::npos) {
      return Status(StatusCode::kBusy, path + " is busy (files open or a shell inside it); close them, or 'sluice umount --lazy " + path + "'");
    }
    return Status(StatusCode::kInternal, "fusermount3 -u " + path + " failed: " + err);
  }
  if (lazy) return Status::ok();
  // Unmounted, but the daemon may still be closing down and holding the
  // mount point's lock: a mount started now would be refused as a rival.
  // Wait for the holders seen now (not for a new mount someone starts).
  const std::string dir = normalize(path);
  std::vector<pid_t> holders = flockHolders(dir);
  const auto deadline = std::chrono::steady_clock::now() + daemon_wait;
  while (!holders.empty()) {
    std::vector<pid_t> still = flockHolders(dir);
    std::erase_if(holders, [&](pid_t p) { return std::find(still.begin(), still.end(), p) == still.end(); });
    if (holders.empty()) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status(StatusCode::kTimeout,
                    path + " is unmounted, but its daemon (pid " + std::to_string(holders.front()) +
                        ") has not exited yet; a new mount of it is refused until it does (see its log)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Status::ok();
}

}  // namespace sluice::tools
