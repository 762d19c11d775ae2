#include "tools/mounts.h"

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

std::vector<SluiceMount> parseSluiceMounts(const std::string& mountinfo) {
  std::vector<SluiceMount> out;
  std::istringstream in(mountinfo);
  std::string line;
  while (std::getline(in, line)) {
    // "36 35 0:52 / /mnt/x rw,nosuid - fuse.sluice sluice:4242 ro,user_id=0"
    size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream tail(line.substr(sep + 3));
    std::string fstype, source;
    tail >> fstype >> source;
    if (fstype != "fuse.sluice") continue;
    std::istringstream head(line.substr(0, sep));
    std::string id, parent, dev, root, mountpoint;
    head >> id >> parent >> dev >> root >> mountpoint;
    SluiceMount m{unescape(mountpoint), 0};
    source = unescape(source);
    if (source.rfind("sluice:", 0) == 0) {
      char* end = nullptr;
      const long pid = std::strtol(source.c_str() + 7, &end, 10);
      if (end != source.c_str() + 7 && *end == '\0' && pid > 0) m.daemon = static_cast<pid_t>(pid);
    }
    out.push_back(std::move(m));
  }
  return out;
}

namespace {

std::vector<SluiceMount> currentMounts() {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  return parseSluiceMounts(text.str());
}

}  // namespace

std::vector<std::string> sluiceMounts() {
  std::vector<std::string> out;
  for (auto& m : currentMounts()) out.push_back(std::move(m.mountpoint));
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

Status unmountSluice(const std::string& path, bool lazy, std::chrono::milliseconds daemon_wait) {
  // The daemon, known before the mount goes (after it, its pid could be
  // anyone's): pid from the mount's source, and its binary, which must be a
  // sluice-fuse (a pid from another pid namespace names someone else).
  pid_t daemon = 0;
  std::string daemon_exe;
  if (!lazy) {
    const std::string want = normalize(path);
    for (const auto& m : currentMounts()) {
      if (m.mountpoint == want && m.daemon > 0) daemon = m.daemon;
    }
    std::error_code ec;
    daemon_exe = std::filesystem::read_symlink("/proc/" + std::to_string(daemon) + "/exe", ec).string();
    if (daemon_exe.ends_with(" (deleted)")) daemon_exe.resize(daemon_exe.size() - 10);  // rebuilt since
    if (ec || std::filesystem::path(daemon_exe).filename() != "sluice-fuse") daemon = 0;
  }
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
  if (daemon == 0) return Status::ok();
  // Unmounted, but the daemon may still be closing down, holding the mount
  // point's lock: a mount started now would be refused as its rival.
  const auto deadline = std::chrono::steady_clock::now() + daemon_wait;
  while (isRunning(daemon, daemon_exe)) {  // a zombie has ended
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status(StatusCode::kTimeout,
                    path + " is unmounted, but its daemon (pid " + std::to_string(daemon) +
                        ") has not exited yet; a new mount of it is refused until it does (see its log)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return Status::ok();
}

}  // namespace sluice::tools
