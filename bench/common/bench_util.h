// Small helpers the benchmarks share: the page cache, timing, data.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tools/process.h"

namespace sluice::bench {

using BenchClock = std::chrono::steady_clock;

inline double since(BenchClock::time_point t0) {
  return std::chrono::duration<double>(BenchClock::now() - t0).count();
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

}  // namespace sluice::bench
