// bench_fuse: the FUSE mount against a local ext4 copy of the same data, in
// one run, on this machine:
//
//   sequential   one reader, 1 MiB reads of a large file, cold
//   random 128K  4 threads, 128 KiB reads at random aligned offsets, cold
//   small files  4 readers, ~112 KiB files read whole in one shuffled order
//   stat         every small file stat()ed by path, cold, one thread
//
// "Cold" means the page cache dropped (echo 3 > drop_caches) and, for the
// mount, a fresh mount (no dentries, attributes or cached pages). The local
// side reads the source tree that was uploaded, on the disk that also holds
// the storage nodes' chunks. Prints MB/s or ops/s for both and the ratio.
//
//   bench_fuse [--dir D] [--large-mib 2048] [--files 20000] [--file-kib 112]
//              [--random-reads 4000] [--replication 2]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/bench_util.h"
#include "tests/lib/test_cluster.h"
#include "tests/lib/test_mount.h"

namespace sluice::bench {
namespace {

namespace fs = std::filesystem;
using Clock = BenchClock;
using testing::MountGuard;
using testing::TestCluster;

struct Args {
  std::string dir;
  uint64_t large_mib = 2048;
  size_t files = 20000;
  size_t file_kib = 112;
  size_t random_reads = 4000;
  int replication = 2;
};

// Bytes read from `path` sequentially in 1 MiB reads.
uint64_t readSequential(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return 0;
  std::vector<char> buf(1 << 20);
  uint64_t total = 0;
  ssize_t n;
  while ((n = ::read(fd, buf.data(), buf.size())) > 0) total += static_cast<uint64_t>(n);
  ::close(fd);
  return total;
}

// `threads` threads each doing `reads / threads` 128 KiB preads at random
// 128 KiB-aligned offsets; returns the bytes read.
uint64_t readRandom(const std::string& path, uint64_t size, size_t reads, int threads) {
  std::atomic<uint64_t> total{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      int fd = ::open(path.c_str(), O_RDONLY);
      if (fd < 0) return;
      std::mt19937_64 rng(1000 + t);
      std::vector<char> buf(128 << 10);
      uint64_t blocks = size / buf.size();
      for (size_t i = 0; i < reads / threads; ++i) {
        off_t off = static_cast<off_t>((rng() % blocks) * buf.size());
        ssize_t n = ::pread(fd, buf.data(), buf.size(), off);
        if (n > 0) total += static_cast<uint64_t>(n);
      }
      ::close(fd);
    });
  }
  for (auto& t : pool) t.join();
  return total;
}

// Reads every file of `order` whole, split among `threads` readers (reader
// i takes i, i+threads, …); returns the files read.
size_t readFiles(const std::string& root, const std::vector<std::string>& order, int threads) {
  std::atomic<size_t> done{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<char> buf(1 << 20);
      for (size_t i = static_cast<size_t>(t); i < order.size(); i += static_cast<size_t>(threads)) {
        int fd = ::open((root + "/" + order[i]).c_str(), O_RDONLY);
        if (fd < 0) continue;
        while (::read(fd, buf.data(), buf.size()) > 0) {
        }
        ::close(fd);
        done++;
      }
    });
  }
  for (auto& t : pool) t.join();
  return done;
}

size_t statFiles(const std::string& root, const std::vector<std::string>& order) {
  size_t ok = 0;
  struct stat st {};
  for (const auto& f : order) ok += ::stat((root + "/" + f).c_str(), &st) == 0 ? 1 : 0;
  return ok;
}

struct Row {
  std::string name;
  std::string unit;
  double local = 0;
  double sluice = 0;
  double target = 0;
};

void print(const Row& r) {
  double ratio = r.local > 0 ? r.sluice / r.local : 0;
  std::printf("%-34s %12.1f %12.1f %-8s %6.2f   %s (target %.2f)\n", r.name.c_str(), r.local, r.sluice,
              r.unit.c_str(), ratio, ratio >= r.target ? "met" : "MISSED", r.target);
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (s == "--dir") a.dir = next();
    else if (s == "--large-mib") a.large_mib = std::stoull(next());
    else if (s == "--files") a.files = std::stoul(next());
    else if (s == "--file-kib") a.file_kib = std::stoul(next());
    else if (s == "--random-reads") a.random_reads = std::stoul(next());
    else if (s == "--replication") a.replication = std::stoi(next());
    else {
      std::fprintf(stderr, "usage: bench_fuse [--dir D] [--large-mib N] [--files N] [--file-kib N] "
                           "[--random-reads N] [--replication R]\n");
      return 2;
    }
  }
  TestCluster::Options co;
  co.replication = a.replication;
  auto cluster = TestCluster::start(co);
  if (!cluster.isOk()) {
    std::fprintf(stderr, "bench_fuse: %s\n", cluster.status().toString().c_str());
    return 1;
  }
  const std::string root = a.dir.empty() ? (*cluster)->dir() : a.dir;
  const std::string local = root + "/local";
  const uint64_t large_bytes = a.large_mib << 20;

  std::printf("bench_fuse: %llu MiB file, %zu files of ~%zu KiB, replication %d, 3 storage nodes on loopback\n",
              static_cast<unsigned long long>(a.large_mib), a.files, a.file_kib, a.replication);
  std::mt19937_64 rng(42);
  auto t0 = Clock::now();
  writeDataFile(local + "/large.bin", large_bytes, rng);
  std::vector<std::string> smalls;
  for (size_t i = 0; i < a.files; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "small/d%03zu/f%06zu.bin", i % 100, i);
    // ±25% around the mean, like JPEGs of one dataset.
    uint64_t size = a.file_kib * 1024 * (75 + rng() % 51) / 100;
    writeDataFile(local + "/" + name, size, rng);
    smalls.push_back(name);
  }
  std::printf("generated the local copy in %.1f s\n", since(t0));
  t0 = Clock::now();
  auto put = (*cluster)->runCli({"dataset", "create", "bench", "--replication", std::to_string(a.replication)});
  put = (*cluster)->runCli({"put", local, "bench", "-q"});
  if (!put.isOk() || put->exit_code != 0) {
    std::fprintf(stderr, "bench_fuse: upload failed: %s\n", put.isOk() ? put->err.c_str() : put.status().toString().c_str());
    return 1;
  }
  std::printf("uploaded in %.1f s\n\n", since(t0));
  std::vector<std::string> shuffled = smalls;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(7));

  std::printf("%-34s %12s %12s %-8s %6s\n", "workload", "local ext4", "sluice", "unit", "ratio");
  const std::string mnt = root + "/mnt";
  auto mounted = [&](auto&& body) -> double {
    MountGuard m(**cluster, mnt);
    if (!m.ok()) {
      std::fprintf(stderr, "bench_fuse: mount failed: %s\n", m.error().c_str());
      return 0;
    }
    dropCaches();
    return body(mnt + "/bench/v1");
  };

  {
    Row r{"sequential read 1 MiB, cold", "MB/s", 0, 0, 0.80};
    dropCaches();
    auto t = Clock::now();
    uint64_t n = readSequential(local + "/large.bin");
    r.local = static_cast<double>(n) / 1e6 / since(t);
    r.sluice = mounted([&](const std::string& v) {
      auto t1 = Clock::now();
      uint64_t got = readSequential(v + "/large.bin");
      return static_cast<double>(got) / 1e6 / since(t1);
    });
    print(r);
  }
  {
    Row r{"random read 128 KiB, 4 threads", "MB/s", 0, 0, 0.70};
    dropCaches();
    auto t = Clock::now();
    uint64_t n = readRandom(local + "/large.bin", large_bytes, a.random_reads, 4);
    r.local = static_cast<double>(n) / 1e6 / since(t);
    r.sluice = mounted([&](const std::string& v) {
      auto t1 = Clock::now();
      uint64_t got = readRandom(v + "/large.bin", large_bytes, a.random_reads, 4);
      return static_cast<double>(got) / 1e6 / since(t1);
    });
    print(r);
  }
  {
    Row r{"small files, shuffled, 4 readers", "files/s", 0, 0, 0.60};
    dropCaches();
    auto t = Clock::now();
    size_t n = readFiles(local, shuffled, 4);
    r.local = static_cast<double>(n) / since(t);
    r.sluice = mounted([&](const std::string& v) {
      auto t1 = Clock::now();
      size_t got = readFiles(v, shuffled, 4);
      if (got != shuffled.size()) std::fprintf(stderr, "bench_fuse: read %zu of %zu files\n", got, shuffled.size());
      return static_cast<double>(got) / since(t1);
    });
    print(r);
  }
  {
    Row r{"stat every small file, cold", "stats/s", 0, 0, 0.50};
    dropCaches();
    auto t = Clock::now();
    size_t n = statFiles(local, shuffled);
    r.local = static_cast<double>(n) / since(t);
    r.sluice = mounted([&](const std::string& v) {
      auto t1 = Clock::now();
      size_t got = statFiles(v, shuffled);
      return static_cast<double>(got) / since(t1);
    });
    print(r);
  }
  return 0;
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) { return sluice::bench::run(argc, argv); }
