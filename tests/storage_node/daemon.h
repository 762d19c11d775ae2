// StorageDaemon: the real sluice-storage binary as a child process, found via
// $SLUICE_BUILD_DIR. Killed by PID (SIGKILL) in the destructor, so a failing
// test never leaves a daemon behind.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/core/result.h"

namespace sluice::storage::testing {

inline std::string storageBinary() {
  const char* dir = std::getenv("SLUICE_BUILD_DIR");
  return std::string(dir ? dir : ".") + "/storage_node/sluice-storage";
}

class StorageDaemon {
 public:
  ~StorageDaemon() { kill9(); }

  // Starts the daemon with `args` plus --ready_file and --log.file in
  // `work_dir`; waits until it serves (its address is then address()) or
  // exits (its exit code is then exitCode()).
  Status start(const std::string& work_dir, std::vector<std::string> args) {
    SLUICE_RETURN_IF_ERROR(launch(work_dir, std::move(args)));
    return waitReady();
  }

  // Starts the daemon as start() does, without waiting for it to serve.
  Status launch(const std::string& work_dir, std::vector<std::string> args) {
    ready_ = work_dir + "/ready";
    log_ = work_dir + "/daemon.log";
    ::unlink(ready_.c_str());
    args.push_back("--ready_file=" + ready_);
    args.push_back("--log.file=" + log_);
    args.push_back("--log.stderr=false");
    const std::string bin = storageBinary();
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(bin.c_str()));
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string out = work_dir + "/daemon.out";
    pid_ = ::fork();
    if (pid_ < 0) return errnoStatus(errno, "fork");
    if (pid_ == 0) {
      FILE* f = std::freopen(out.c_str(), "a", stdout);
      (void)f;
      ::dup2(::fileno(stdout), 2);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    return Status::ok();
  }

  // Waits until a launched daemon serves or exits (see start()).
  Status waitReady() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(ready_);
      std::string addr;
      if (in && std::getline(in, addr) && !addr.empty()) {
        address_ = addr;
        return Status::ok();
      }
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return unavailable("sluice-storage exited with code " + std::to_string(exit_code_));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return timeoutError("sluice-storage did not become ready in 30 s");
  }

  // SIGKILL, as a crash; waits for it.
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // SIGTERM and wait; returns the exit code.
  int stop() {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }

  const std::string& address() const { return address_; }
  const std::string& logFile() const { return log_; }
  pid_t pid() const { return pid_; }
  int exitCode() const { return exit_code_; }
  std::string output(const std::string& work_dir) const {
    std::ifstream in(work_dir + "/daemon.out");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string ready_, log_, address_;
};

}  // namespace sluice::storage::testing
