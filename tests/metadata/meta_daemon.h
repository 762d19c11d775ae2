// MetaDaemon: runs the real sluice-meta binary on loopback for a test, and
// always stops it (by PID) when destroyed, even if the test failed.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/core/result.h"

namespace sluice::meta::testing {

class MetaDaemon {
 public:
  // data_dir: the LMDB dir; extra: more flags.
  MetaDaemon(std::string data_dir, std::vector<std::string> extra = {})
      : data_dir_(std::move(data_dir)), extra_(std::move(extra)) {}
  ~MetaDaemon() { kill(SIGKILL); }

  static std::string binary() {
    const char* build = std::getenv("SLUICE_BUILD_DIR");
    return std::string(build ? build : ".") + "/metadata/sluice-meta";
  }

  // Starts the daemon and waits (up to 30 s) for its address.
  Status start() {
    address_file_ = data_dir_ + ".addr";
    std::filesystem::remove(address_file_);
    std::vector<std::string> args = {binary(),
                                     "--data_dir=" + data_dir_,
                                     "--listen=127.0.0.1:0",
                                     "--metrics.listen=127.0.0.1:0",
                                     "--log.stderr=false",
                                     "--log.file=" + data_dir_ + ".log",
                                     "--map_size=8G",
                                     "--stripe_count=64",
                                     "--ready_file=" + address_file_};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = ::fork();
    if (pid_ < 0) return errnoStatus(errno, "fork");
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(address_file_);
      if (in && std::getline(in, address_) && !address_.empty()) return Status::ok();
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return Status(StatusCode::kUnavailable, "sluice-meta exited during startup; see " +
                                                    data_dir_ + ".log");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return timeoutError("sluice-meta did not publish its address");
  }

  // Sends `sig` and reaps the process.
  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }

 private:
  std::string data_dir_;
  std::vector<std::string> extra_;
  std::string address_file_;
  std::string address_;
  pid_t pid_ = -1;
};

}  // namespace sluice::meta::testing
