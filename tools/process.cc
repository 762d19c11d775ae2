#include "tools/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
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

namespace {

// fork + exec with PR_SET_PDEATHSIG. Between fork and exec only
// async-signal-safe calls: everything is prepared before fork.
Result<pid_t> spawnTied(const ProcessSpec& spec, std::vector<char*>& argv) {
  pid_t parent = getpid();
  const char* log = spec.log_path.empty() ? nullptr : spec.log_path.c_str();
  pid_t pid = fork();
  if (pid < 0) return errnoStatus(errno, "starting '" + spec.executable + "'");
  if (pid == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
    if (spec.new_session) setsid();
    int in = open("/dev/null", O_RDONLY);
    if (in >= 0) dup2(in, 0);
    if (log != nullptr) {
      int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (out >= 0) {
        dup2(out, 1);
        dup2(out, 2);
      }
    }
    execve(spec.executable.c_str(), argv.data(), environ);
    _exit(127);
  }
  return pid;
}

}  // namespace

Result<pid_t> spawnProcess(const ProcessSpec& spec) {
  if (spec.die_with_parent) {
    std::vector<std::string> storage;
    storage.push_back(spec.executable);
    storage.insert(storage.end(), spec.args.begin(), spec.args.end());
    std::vector<char*> argv;
    for (auto& a : storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    return spawnTied(spec, argv);
  }
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

Result<RunOutput> runProcess(const std::string& executable, const std::vector<std::string>& args) {
  char out_tmpl[] = "/tmp/sluice-run-out-XXXXXX";
  char err_tmpl[] = "/tmp/sluice-run-err-XXXXXX";
  int out_fd = mkstemp(out_tmpl);
  int err_fd = mkstemp(err_tmpl);
  if (out_fd < 0 || err_fd < 0) return errnoStatus(errno, "creating capture files");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  std::vector<std::string> storage = {executable};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, executable.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  RunOutput result;
  if (rc == 0) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  auto slurp = [](int fd) {
    std::string s;
    char buf[65536];
    lseek(fd, 0, SEEK_SET);
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) s.append(buf, static_cast<size_t>(n));
    close(fd);
    return s;
  };
  result.out = slurp(out_fd);
  result.err = slurp(err_fd);
  unlink(out_tmpl);
  unlink(err_tmpl);
  if (rc != 0) return errnoStatus(rc, "starting '" + executable + "'");
  return result;
}

bool childAlive(pid_t pid) {
  int status;
  pid_t r;
  while ((r = waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (r == pid) return false;          // exited, now reaped
  if (r < 0) return kill(pid, 0) == 0;  // not our child: does it exist?
  return true;
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
