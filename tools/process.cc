#include "tools/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <thread>

extern char** environ;

namespace sluice::tools {
namespace fs = std::filesystem;

Result<pid_t> spawnProcess(const ProcessSpec& spec) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (!spec.log_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, spec.log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  if (spec.new_session) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);

  std::vector<std::string> argv_storage;
  argv_storage.push_back(spec.executable);
  argv_storage.insert(argv_storage.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = 0;
  int rc = posix_spawn(&pid, spec.executable.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return errnoStatus(rc, "starting '" + spec.executable + "'");
  return pid;
}

bool isRunning(pid_t pid, const std::string& executable) {
  if (pid <= 0) return false;
  reapIfChild(pid);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  if (ec) return false;
  // A replaced binary shows as "<path> (deleted)"; it is still ours.
  std::string s = exe.string();
  const std::string deleted = " (deleted)";
  if (s.size() > deleted.size() && s.compare(s.size() - deleted.size(), deleted.size(), deleted) == 0) {
    s.resize(s.size() - deleted.size());
  }
  std::error_code ec2;
  fs::path want = fs::weakly_canonical(executable, ec2);
  return s == (ec2 ? executable : want.string());
}

void reapIfChild(pid_t pid) {
  int status;
  while (waitpid(pid, &status, WNOHANG) < 0 && errno == EINTR) {
  }
}

Status stopProcess(pid_t pid, const std::string& executable, std::chrono::milliseconds grace) {
  if (!isRunning(pid, executable)) return Status();
  if (kill(pid, SIGTERM) != 0 && errno != ESRCH) {
    return errnoStatus(errno, "stopping pid " + std::to_string(pid));
  }
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!isRunning(pid, executable)) return Status();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (kill(pid, SIGKILL) != 0 && errno != ESRCH) {
    return errnoStatus(errno, "killing pid " + std::to_string(pid));
  }
  for (int i = 0; i < 500 && isRunning(pid, executable); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (isRunning(pid, executable)) {
    return Status(StatusCode::kTimeout, "pid " + std::to_string(pid) + " survived SIGKILL");
  }
  return Status();
}

std::string selfDirectory() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : self.parent_path().string();
}

Result<std::string> findExecutable(const std::string& name) {
  fs::path here = selfDirectory();
  const fs::path candidates[] = {
      here / name,
      here / ".." / "metadata" / name,
      here / ".." / "storage_node" / name,
      here / ".." / "fuse" / name,
      here / ".." / "tools" / name,
      here / ".." / ".." / "metadata" / name,
      here / ".." / ".." / "storage_node" / name,
      here / ".." / ".." / "fuse" / name,
      here / ".." / ".." / "tools" / name,
  };
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec) && access(c.c_str(), X_OK) == 0) {
      return fs::canonical(c).string();
    }
  }
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find(':', start);
      if (end == std::string::npos) end = p.size();
      fs::path c = fs::path(p.substr(start, end - start)) / name;
      std::error_code ec;
      if (!c.empty() && fs::is_regular_file(c, ec) && access(c.c_str(), X_OK) == 0) {
        return fs::canonical(c).string();
      }
      start = end + 1;
    }
  }
  return notFound("executable '" + name + "' not found next to " + here.string() +
                  " or on PATH; build it with 'make' first");
}

}  // namespace sluice::tools
