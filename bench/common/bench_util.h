// Small helpers the benchmarks share: the page cache, timing, data.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tools/process.h"

namespace sluice::bench {

using BenchClock = std::chrono::steady_clock;

inline double since(BenchClock::time_point t0) {
  return std::chrono::duration<double>(BenchClock::now() - t0).count();
}

// CPU time (user + system) this process has used so far, in seconds.
inline double processCpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

// Writes back dirty pages and drops the page cache, so the next read is cold.
inline void dropCaches() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd >= 0) {
    if (::write(fd, "3", 1) != 1) std::fprintf(stderr, "bench: cannot drop caches\n");
    ::close(fd);
  }
}

// `size` bytes at `path`: random (incompressible), or text-like words that
// zstd compresses ~4x when `compressible`.
inline void writeDataFile(const std::string& path, uint64_t size, std::mt19937_64& rng,
                          bool compressible = false) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  std::vector<uint64_t> buf(1 << 17);
  static const char* kWords[] = {"tensor ", "label ", "epoch ", "batch ", "image ", "token ", "0.25 ", "cat\n"};
  for (uint64_t done = 0; done < size;) {
    if (compressible) {
      auto* bytes = reinterpret_cast<char*>(buf.data());
      size_t at = 0;
      while (at + 8 <= buf.size() * 8) {
        const char* w = kWords[rng() % 8];
        for (const char* p = w; *p; ++p) bytes[at++] = *p;
      }
    } else {
      for (auto& v : buf) v = rng();
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(size - done, buf.size() * 8));
    if (::write(fd, buf.data(), n) != static_cast<ssize_t>(n)) break;
    done += n;
  }
  ::close(fd);
}

// Runs a shell command and returns its standard output ("" if it failed).
inline std::string capture(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (::pclose(p) != 0) return "";
  return out;
}

// fio's read or write bandwidth in bytes/s for one job on `file` (0 if fio failed).
inline double fioBandwidth(const std::string& file, const std::string& rw, const std::string& bs,
                           int depth, const std::string& size = "1G") {
  std::string out = capture("fio --name=b --filename=" + file + " --size=" + size +
                            " --ioengine=io_uring --direct=1 --rw=" + rw + " --bs=" + bs +
                            " --iodepth=" + std::to_string(depth) +
                            " --runtime=3 --time_based --output-format=json 2>/dev/null");
  // The job's result sections, not the "rw" option that names them too.
  std::string section = rw.find("write") != std::string::npos ? "\"write\" : {" : "\"read\" : {";
  size_t at = out.find(section);
  if (at == std::string::npos) return 0;
  at = out.find("\"bw_bytes\"", at);
  if (at == std::string::npos) return 0;
  return std::strtod(out.c_str() + out.find(':', at) + 1, nullptr);
}

// One iperf3 stream over loopback, in MB/s (0 if iperf3 is missing).
inline double iperf3Loopback() {
  auto exe = sluice::tools::findExecutable("iperf3");
  if (!exe.isOk()) return 0;
  const std::string port = "5399";
  pid_t server = ::fork();
  if (server == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execl(exe->c_str(), "iperf3", "-s", "-1", "-p", port.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string out = capture(*exe + " -c 127.0.0.1 -p " + port + " -t 3 -J");
  ::kill(server, SIGTERM);
  sluice::tools::reapIfChild(server);
  size_t at = out.find("\"sum_received\"");
  if (at == std::string::npos) return 0;
  at = out.find("\"bits_per_second\"", at);
  if (at == std::string::npos) return 0;
  return std::strtod(out.c_str() + out.find(':', at) + 1, nullptr) / 8 / 1e6;
}

// Runs argv, returns its stdout+stderr; kills it after `timeout_s`.
inline std::string runWithTimeout(const std::vector<std::string>& argv, double timeout_s) {
  int fds[2];
  if (pipe(fds) != 0) return "";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  std::atomic<bool> done{false};
  std::thread killer([&] {
    auto end = BenchClock::now() + std::chrono::duration<double>(timeout_s);
    while (!done && BenchClock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!done) kill(pid, SIGKILL);
  });
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  waitpid(pid, nullptr, 0);
  done = true;
  killer.join();
  return out;
}

// Spawns argv in the background with output discarded; returns its pid.
inline pid_t spawnQuiet(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    dup2(devnull, STDERR_FILENO);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// Waits up to 2 s for child `pid` to exit, then kills it.
inline void reapOrKill(pid_t pid) {
  if (pid <= 0) return;
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}


// libfabric's own ping-pong between two processes over `provider` on
// loopback: the transport's limit for one message of `size` bytes.
struct PingpongFigure {
  double mbps = 0;            // as fi_pingpong prints it (both directions)
  double usec_per_xfer = 0;   // one message, one way
};
inline std::optional<PingpongFigure> fiPingpong(const std::string& provider, size_t size, int iters,
                                                int port) {
  const std::string s = std::to_string(size), n = std::to_string(iters), p = std::to_string(port);
  pid_t server = spawnQuiet({"fi_pingpong", "-p", provider, "-e", "rdm", "-B", p, "-I", n, "-S", s});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string out = runWithTimeout(
      {"fi_pingpong", "-p", provider, "-e", "rdm", "-P", p, "-I", n, "-S", s, "127.0.0.1"}, 120);
  reapOrKill(server);
  // "bytes #sent #ack total time MB/sec usec/xfer Mxfers/sec", then the figures.
  std::istringstream in(out);
  std::string line;
  std::optional<PingpongFigure> got;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string bytes, sent, ack, total, time;
    PingpongFigure f;
    if (ls >> bytes >> sent >> ack >> total >> time >> f.mbps >> f.usec_per_xfer &&
        std::isdigit(static_cast<unsigned char>(bytes[0]))) {
      got = f;
    }
  }
  return got;
}

}  // namespace sluice::bench
