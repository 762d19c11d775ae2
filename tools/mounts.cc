#include "tools/mounts.h"

#include <filesystem>
#include <fstream>
#include <sstream>

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

Status unmountSluice(const std::string& path, bool lazy) {
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
  return Status::ok();
}

}  // namespace sluice::tools
