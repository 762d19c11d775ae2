// bench_storage_node: a real sluice-storage daemon (standalone, O_DIRECT) on
// the local disk, driven over libfabric (tcp;ofi_rxm on 127.0.0.1 by default,
// or --provider shm: the node's own path without the loopback TCP stack), next
// to fio (io_uring, O_DIRECT) on the same disk in the same run.
//
//   bench_storage_node [--dir /var/tmp/sluice-bench-storage] [--chunks 256]
//                      [--records 8000] [--no-fio] [--no-drop] [--provider P] [--busy-poll]
//                      [--only get4m|get128k] [--buffered] [--clients 1|4] [--depth 8]
//                      [--workers 8] [--open-files 4096] [--rounds 3] [--blocking-clients]
//                      [--chunk-depth 2]
//
// Workloads, in order:
//   put          PutChunk of --chunks distinct 4 MiB chunks, 4 clients
//   get4m        GetChunk of whole 4 MiB chunks (verified), 1 and 4 clients,
//                cold (page cache dropped) and warm; cold also with
//                --chunk-depth chunks in flight per client
//   get128k      GetChunk of random 128 KiB records, 1 and 4 clients, cold and warm;
//                cold also with --depth records in flight per client
//   *-buffered   the warm runs again against a daemon without O_DIRECT
//   --inventory N  only: ChunkStore::open over N small chunks, warm and cold
//   fio          seq write 1M QD4 (+fsync; again right before and after the
//                puts, whose ratio is to the mean), seq read 1M with as many bytes in
//                flight as each chunk run (a 4 MiB chunk is four 1 MiB reads),
//                random read 128k at each record run's reads in flight (clients x
//                depth), on a 1 GiB file in the same directory
// --only keeps the put and one read workload, cold and O_DIRECT only (for A/B
// runs and profiles of one path).
// Record reads are kept in flight without a thread per read, as fio keeps its
// queue: each client's next read starts from the transport's completion
// callback of the last (getChunkAsync), so on this two-core machine the load
// generator takes as little CPU from the node as it can. With
// --blocking-clients a thread per read in flight blocks in getChunk instead.
// Each read figure is printed with its fio job at the same block size, run
// again right before it and, for cold reads, right after it (the disk is
// shared and noisy), and the ratio to their mean. Cold record reads run
// --rounds times per configuration, fio between each two, and the median of
// the rounds' ratios is printed after them: this VM's disk and CPU (steal)
// change from minute to minute, and one pair can land in a bad one. Each
// record line also prints what a record cost: the node's CPU time and context switches (all
// its threads) and this process's (the clients') CPU time. A
// record read by one client waits for the disk and then the wire, one after
// the other, so that line also gets the limit in series: fio's read plus
// fi_pingpong's one-way time for the record and for a small request, on the
// same provider. The run ends with the ceilings: the node serving chunks and
// records from the page cache (no disk at all) at each shape measured both
// ways, as a ratio of fio's cold figure for that shape. Cold reads cannot
// beat it, so where it is below 0.85 the disk of that run outpaced what the
// node and the wire can carry on this machine.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/bench_util.h"
#include "common/net/endpoint.h"
#include "storage_node/chunk_store.h"
#include "storage_node/storage_client.h"
#include "tests/storage_node/daemon.h"

namespace sluice::storage {
namespace {

constexpr size_t kChunk = 4u << 20;
constexpr size_t kRecord = 128u << 10;

struct Args {
  std::string dir = "/var/tmp/sluice-bench-storage";
  size_t chunks = 256;
  size_t records = 8000;  // 1 GiB: each run lasts seconds, like fio's
  bool fio = true;
  bool drop = true;
  std::string provider = "tcp;ofi_rxm";
  bool busy_poll = false;  // the node's progress thread spins (the clients' sleep)
  std::string only;        // "", "get4m" or "get128k"
  bool buffered = false;   // with --only: page-cache reads (the transport's share)
  // Record reads from a thread per read in flight, each blocking in getChunk,
  // instead of from the transport's callbacks (getChunkAsync).
  bool blocking_clients = false;
  size_t clients = 0;      // 1 or 4: only that many clients in the read workloads (0: both)
  size_t depth = 8;    // records in flight per client in the deep runs (the reader keeps 32)
  size_t chunk_depth = 2;  // whole chunks in flight per client in the deep 4 MiB runs
  size_t workers = 8;  // the node's --workers (its default)
  size_t open_files = 4096;  // the node's --open_files (its default; 0: open and close per read)
  size_t inventory = 0;  // > 0: only time rebuilding the inventory of this many chunks
  size_t rounds = 3;     // cold record runs per configuration, each paired with fio
};

bool inRange(const char* arg, unsigned long lo, unsigned long hi) {
  char* end = nullptr;
  const unsigned long v = std::strtoul(arg, &end, 10);
  return end != arg && *end == '\0' && v >= lo && v <= hi;
}

bool dropCaches() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd < 0) return false;
  bool ok = ::write(fd, "3", 1) == 1;
  ::close(fd);
  return ok;
}

double seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct ClientSet {
  std::vector<std::unique_ptr<net::Endpoint>> eps;
  std::vector<std::unique_ptr<StorageClient>> clients;
  std::vector<std::unique_ptr<net::MemoryRegion>> bufs;

  Status connect(const std::string& address, size_t n, const std::string& provider, size_t buffer_bytes) {
    for (size_t i = 0; i < n; ++i) {
      net::EndpointOptions eo;
      eo.provider = provider;
      eo.listen = "127.0.0.1:0";
      eo.worker_threads = 1;
      SLUICE_ASSIGN_OR_RETURN(auto ep, net::Endpoint::create(eo));
      SLUICE_RETURN_IF_ERROR(ep->start());
      SLUICE_ASSIGN_OR_RETURN(auto c, StorageClient::connect(*ep, address));
      SLUICE_ASSIGN_OR_RETURN(auto buf, ep->allocateMemory(buffer_bytes, net::Access::kRemoteReadWrite));
      clients.push_back(std::make_unique<StorageClient>(std::move(c)));
      bufs.push_back(std::move(buf));
      eps.push_back(std::move(ep));
    }
    return Status::ok();
  }
  ~ClientSet() {
    clients.clear();
    bufs.clear();
    for (auto& ep : eps) ep->shutdown();
  }
};

// What a run cost: the node's CPU time and context switches and this
// process's (the clients') CPU time. CPU time still grows when the VM's host
// takes the cores back (steal); the switch count does not: it counts the hops
// a record takes through the node's threads, so it shows what a change to the
// record path saves even when throughput is lost in the noise.
struct CpuMeter {
  pid_t node;
  double node0, self0, switches0;
  explicit CpuMeter(pid_t node_pid)
      : node(node_pid),
        node0(nodeSeconds()),
        self0(bench::processCpuSeconds()),
        switches0(nodeSwitches()) {}
  double nodeSeconds() const {
    std::ifstream in("/proc/" + std::to_string(node) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    const size_t close = text.rfind(')');  // the command name may hold spaces
    if (close == std::string::npos) return 0;
    std::istringstream fields(text.substr(close + 2));
    std::string f;
    double ticks = 0;
    for (int i = 3; i <= 15 && (fields >> f); ++i) {
      if (i == 14 || i == 15) ticks += std::stod(f);  // utime, stime
    }
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  // Context switches of all the node's threads: each is a thread going to
  // sleep or being woken, the hops a request takes through the node. A lower
  // bound: io_uring's own worker threads (iou-wrk-*, for reads the kernel
  // cannot issue without blocking) that end during a run take theirs along.
  double nodeSwitches() const {
    double n = 0;
    std::error_code ec;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(node) + "/task", ec)) {
      std::ifstream in(task.path() / "status");
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind("voluntary_ctxt_switches:", 0) == 0 ||
            line.rfind("nonvoluntary_ctxt_switches:", 0) == 0) {
          n += std::stod(line.substr(line.find(':') + 1));
        }
      }
    }
    return n;
  }
  // "cpu per record: node 41 us (3.1 switches), clients 37 us" over
  // `records` records since construction.
  std::string perRecord(size_t records) const {
    const double k = static_cast<double>(records);
    char buf[128];
    std::snprintf(buf, sizeof(buf), "   cpu per record: node %.0f us (%.1f switches), clients %.0f us",
                  (nodeSeconds() - node0) * 1e6 / k, (nodeSwitches() - switches0) / k,
                  (bench::processCpuSeconds() - self0) * 1e6 / k);
    return buf;
  }
};

// Fills `buf` with chunk i's bytes: one random block with i stamped in.
void chunkBytes(size_t i, const std::vector<uint8_t>& base, uint8_t* buf) {
  std::memcpy(buf, base.data(), kChunk);
  std::memcpy(buf, &i, sizeof(i));
}

// Runs fn(client_index, slot, item) over items [0, n) split across `k`
// clients, each keeping `depth` items in flight (slot < depth names the
// caller's part of its client's buffer); returns bytes/s given `bytes_per_item`.
template <typename Fn>
Result<double> parallel(size_t k, size_t depth, size_t n, size_t bytes_per_item, Fn fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  Status first;
  std::mutex mu;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < k * depth; ++t) {
    threads.emplace_back([&, c = t / depth, slot = t % depth] {
      for (;;) {
        const size_t i = next.fetch_add(1);
        if (i >= n || failed) break;
        Status s = fn(c, slot, i);
        if (!s.isOk()) {
          std::lock_guard lock(mu);
          if (!failed) first = s;
          failed = true;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = seconds(t0);
  if (failed) return first;
  return static_cast<double>(n * bytes_per_item) / secs;
}

// parallel() without a thread per read in flight (as fio keeps its queue):
// start(c, slot, i, done) starts
// item i and calls done(status) when it ends, on a transport thread, which
// then starts the slot's next item. Each client's `depth` slots go until the
// items run out; returns bytes/s given `bytes_per_item`.
template <typename Start>
Result<double> parallelAsync(size_t k, size_t depth, size_t n, size_t bytes_per_item, Start start) {
  struct Run {
    std::atomic<size_t> next{0};
    std::mutex mu;
    std::condition_variable cv;
    size_t active = 0;  // GUARDED_BY(mu): slots still going
    Status first;       // GUARDED_BY(mu)
    std::atomic<bool> failed{false};
  } run;
  run.active = k * depth;
  // A slot's loop: done() of one item starts the next. An item that fails at
  // once calls done() on this same stack, which returns without recursing.
  std::function<void(size_t, size_t)> go = [&](size_t c, size_t slot) {
    const size_t i = run.next.fetch_add(1);
    if (i >= n || run.failed) {
      std::lock_guard lock(run.mu);
      if (--run.active == 0) run.cv.notify_all();
      return;
    }
    // Nothing may touch `run` or `go` after a slot's last `go` returns: the
    // waiting thread may already have returned and destroyed them.
    start(c, slot, i, [&, c, slot](const Status& s) {
      if (!s.isOk()) {
        std::lock_guard lock(run.mu);
        if (!run.failed) run.first = s;
        run.failed = true;
      }
      go(c, slot);
    });
  };
  auto t0 = std::chrono::steady_clock::now();
  for (size_t t = 0; t < k * depth; ++t) go(t / depth, t % depth);
  std::unique_lock lock(run.mu);
  run.cv.wait(lock, [&] { return run.active == 0; });
  double secs = seconds(t0);
  if (run.failed) return run.first;
  return static_cast<double>(n * bytes_per_item) / secs;
}

// fio's bandwidth in bytes/s for `job` ("read" or "write" section).
Result<double> runFio(const std::string& file, const std::string& rw, const std::string& bs,
                      int depth, const std::string& extra, const char* section) {
  std::string cmd = "fio --name=b --filename=" + file + " --size=1G --ioengine=io_uring --direct=1 --rw=" +
                    rw + " --bs=" + bs + " --iodepth=" + std::to_string(depth) + " " + extra +
                    " --output-format=json 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return ioError("cannot run fio");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  if (rc != 0) return ioError("fio exited with " + std::to_string(rc) + " for: " + cmd);
  size_t at = out.find(std::string("\"") + section + "\" : {");
  if (at == std::string::npos) return ioError("fio output lacks a " + std::string(section) + " section");
  at = out.find("\"bw_bytes\" : ", at);
  if (at == std::string::npos) return ioError("fio output lacks bw_bytes");
  return std::stod(out.substr(at + 13, 32));
}

// A cold read's limit: fio run right before it and again right after (the
// disk's speed drifts by 2x within minutes); the ratio uses their mean.
// Warm reads run fio only before (after = 0).
struct Bracket {
  double before = 0;
  double after = 0;
  double mean() const {
    if (before > 0 && after > 0) return (before + after) / 2;
    return std::max(before, after);
  }
  std::string note() const {
    if (before <= 0 || after <= 0) return "";
    char buf[64];
    std::snprintf(buf, sizeof(buf), "   (fio before %.0f, after %.0f)", before / (1 << 20),
                  after / (1 << 20));
    return buf;
  }
};

// "4 clients x8": who reads, and how many reads each keeps in flight.
std::string shapeOf(const std::string& clients, size_t depth) {
  return clients + (depth == 1 ? "" : " x" + std::to_string(depth));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void line(const std::string& name, double bps, double limit, const std::string& limit_name,
          const std::string& note = "") {
  if (limit > 0) {
    std::printf("%-34s %9.1f MiB/s   %-26s %9.1f MiB/s   ratio %5.2f%s\n", name.c_str(),
                bps / (1 << 20), limit_name.c_str(), limit / (1 << 20), bps / limit, note.c_str());
  } else {
    std::printf("%-34s %9.1f MiB/s%s\n", name.c_str(), bps / (1 << 20), note.c_str());
  }
  std::fflush(stdout);
}

// Fills a store with `n` small chunks (not durable: the fill is not what is
// measured), then times ChunkStore::open, which rebuilds the inventory from
// the stripe directories: with the dentries and inodes cached, and cold.
int runInventory(const Args& a, bool drop) {
  ChunkStoreOptions o;
  o.data_dir = a.dir + "/inventory";
  o.durable = false;
  o.max_stripes = 256;
  o.io_buffer_bytes = 64 * 1024;
  {
    auto store = ChunkStore::open(o);
    if (!store.isOk()) {
      std::fprintf(stderr, "inventory: %s\n", store.status().toString().c_str());
      return 1;
    }
    std::printf("inventory: writing %zu chunks of 9-72 bytes in 256 stripes ...\n", a.inventory);
    constexpr size_t kWriters = 4;
    std::vector<std::unique_ptr<IoContext>> ctxs;
    for (size_t t = 0; t < kWriters; ++t) {
      auto ctx = (*store)->newContext();
      if (!ctx.isOk()) {
        std::fprintf(stderr, "inventory: %s\n", ctx.status().toString().c_str());
        return 1;
      }
      ctxs.push_back(std::move(ctx).value());
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto written = parallel(1, kWriters, a.inventory, 1, [&](size_t, size_t slot, size_t i) -> Status {
      uint8_t bytes[72] = {};
      std::memcpy(bytes, &i, sizeof(i));
      const size_t len = 9 + i % 64;
      const ChunkId id = Hash128::of(bytes, len);
      return (*store)
          ->put(*ctxs[slot], id, stripeOf(id, 256), len,
                [&](uint64_t off, std::span<uint8_t> dst) {
                  std::memcpy(dst.data(), bytes + off, dst.size());
                  return Status::ok();
                })
          .status();
    });
    if (!written.isOk()) {
      std::fprintf(stderr, "inventory put: %s\n", written.status().toString().c_str());
      return 1;
    }
    std::printf("inventory: written in %.1f s\n", seconds(t0));
  }
  for (bool cold : {false, true}) {
    if (cold && !drop) continue;
    if (cold) dropCaches();
    const auto t0 = std::chrono::steady_clock::now();
    auto store = ChunkStore::open(o);
    const double secs = seconds(t0);
    if (!store.isOk()) {
      std::fprintf(stderr, "inventory: %s\n", store.status().toString().c_str());
      return 1;
    }
    const StoreStats st = (*store)->stats();
    std::printf("inventory rebuild, %s: %lu chunks in %.2f s (%.0f chunks/s)\n",
                cold ? "cold (page cache, dentries and inodes dropped)" : "warm",
                static_cast<unsigned long>(st.chunks), secs, st.chunks / secs);
    if (st.chunks != a.inventory) {
      std::fprintf(stderr, "inventory: found %lu chunks, wrote %zu\n",
                   static_cast<unsigned long>(st.chunks), a.inventory);
      return 1;
    }
  }
  return 0;
}

int run(int argc, char** argv) {
  // Line-buffered even into a pipe: the daemon's fork would otherwise copy
  // unflushed lines, and its freopen print them a second time.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto val = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (s == "--dir") a.dir = val();
    else if (s == "--chunks") a.chunks = std::stoul(val());
    else if (s == "--records") a.records = std::stoul(val());
    else if (s == "--no-fio") a.fio = false;
    else if (s == "--no-drop") a.drop = false;
    else if (s == "--provider") a.provider = val();
    else if (s == "--busy-poll") a.busy_poll = true;
    else if (s == "--buffered") a.buffered = true;
    else if (s == "--blocking-clients") a.blocking_clients = true;
    else if (s == "--workers" && i + 1 < argc && inRange(argv[i + 1], 1, 64))
      a.workers = std::stoul(val());
    else if (s == "--inventory" && i + 1 < argc && inRange(argv[i + 1], 1, 100000000))
      a.inventory = std::stoul(val());
    else if (s == "--open-files" && i + 1 < argc && inRange(argv[i + 1], 0, 1 << 20))
      a.open_files = std::stoul(val());
    else if (s == "--rounds" && i + 1 < argc && inRange(argv[i + 1], 1, 15))
      a.rounds = std::stoul(val());
    else if (s == "--depth" && i + 1 < argc && inRange(argv[i + 1], 1, kChunk / kRecord))
      a.depth = std::stoul(val());
    else if (s == "--chunk-depth" && i + 1 < argc && inRange(argv[i + 1], 1, 4))
      a.chunk_depth = std::stoul(val());
    else if (s == "--clients" && i + 1 < argc &&
             (std::string(argv[i + 1]) == "1" || std::string(argv[i + 1]) == "4"))
      a.clients = std::stoul(val());
    else if (s == "--only" && i + 1 < argc && (std::string(argv[i + 1]) == "get4m" ||
                                               std::string(argv[i + 1]) == "get128k"))
      a.only = val();
    else {
      std::fprintf(stderr,
                   "usage: bench_storage_node [--dir D] [--chunks N] [--records N] [--no-fio] "
                   "[--no-drop] [--provider P] [--busy-poll] [--only get4m|get128k] [--buffered] [--blocking-clients] "
                   "[--clients 1|4] [--depth 1-32] [--chunk-depth 1-4] [--workers 1-64] [--open-files N] [--rounds 1-15] [--inventory N]\n");
      return 2;
    }
  }
  if (std::getenv("SLUICE_BUILD_DIR") == nullptr) {
    auto build = std::filesystem::canonical("/proc/self/exe").parent_path().parent_path().parent_path();
    ::setenv("SLUICE_BUILD_DIR", build.c_str(), 1);
  }
  std::error_code ec;
  std::filesystem::remove_all(a.dir, ec);
  std::filesystem::create_directories(a.dir);
  const std::string data = a.dir + "/data";
  if (a.drop && !dropCaches()) {
    std::printf("note: cannot drop the page cache (not root?); cold figures are warm\n");
    a.drop = false;
  }
  auto cold = [&] {
    if (a.drop) dropCaches();
  };
  if (a.inventory > 0) {
    const int rc = runInventory(a, a.drop);
    std::filesystem::remove_all(a.dir, ec);
    return rc;
  }
  std::printf("sluice-storage bench: %zu x 4 MiB chunks (%.1f GiB), %zu random 128 KiB records, dir %s, %s\n",
              a.chunks, a.chunks * 4.0 / 1024, a.records, a.dir.c_str(), a.provider.c_str());

  std::map<std::string, double> fio;
  if (a.fio && a.only.empty()) {
    const std::string f = a.dir + "/fio.dat";
    struct Job {
      const char* key;
      const char* rw;
      const char* bs;
      int depth;
      const char* extra;
      const char* section;
    };
    const Job jobs[] = {
        {"write1m", "write", "1M", 4, "--end_fsync=1", "write"},
        {"read1m_qd4", "read", "1M", 4, "", "read"},
        {"read1m_qd16", "read", "1M", 16, "", "read"},
    };
    for (const Job& j : jobs) {
      cold();
      auto bw = runFio(f, j.rw, j.bs, j.depth, j.extra, j.section);
      if (!bw.isOk()) {
        std::printf("fio %s: %s\n", j.key, bw.status().toString().c_str());
        continue;
      }
      fio[j.key] = *bw;
      line(std::string("fio ") + j.key, *bw, 0, "");
    }
  }
  // Each sluice figure is paired with its fio job run again just before it,
  // so both see the same moment of a shared (and noisy) virtual disk.
  const std::string fio_file = a.dir + "/fio.dat";
  // fio's sequential 1 MiB writes at QD4 with a closing fsync, run again
  // right before and after the puts as reads are (none with --only). Into a
  // new file each time, as puts write new files: this disk overwrites blocks
  // written before about twice as fast as it writes new ones.
  auto writeLimit = [&]() -> double {
    if (!a.fio || !a.only.empty()) return 0.0;
    const std::string file = a.dir + "/fio-write.dat";
    std::error_code ec;
    std::filesystem::remove(file, ec);
    auto bw = runFio(file, "write", "1M", 4, "--end_fsync=1", "write");
    std::filesystem::remove(file, ec);
    return bw.isOk() ? *bw : 0.0;
  };
  // fio's sequential 1 MiB reads with `qd` in flight.
  auto seqLimit = [&](size_t qd) -> double {
    if (!a.fio) return 0.0;
    cold();
    auto bw = runFio(fio_file, "read", "1M", static_cast<int>(qd), "", "read");
    return bw.isOk() ? *bw : 0.0;
  };
  // fio's random 128 KiB reads with `qd` in flight, for as long as a record run.
  auto randLimit = [&](size_t qd) -> double {
    if (!a.fio) return 0.0;
    cold();
    auto bw = runFio(fio_file, "randread", "128k", static_cast<int>(qd), "--runtime=5 --time_based", "read");
    return bw.isOk() ? *bw : 0.0;
  };

  // The wire's share of one record read: the request one way, the record the other.
  double wire_us = 0;
  if (a.fio) {
    const int port = 21000 + static_cast<int>(::getpid() % 20000);
    auto record = bench::fiPingpong(a.provider, kRecord, 2000, port);
    auto request = bench::fiPingpong(a.provider, 64, 2000, port + 1);
    if (record && request) {
      wire_us = record->usec_per_xfer + request->usec_per_xfer;
      std::printf("fi_pingpong 128 KiB one way %.1f us, 64 B one way %.1f us (%s)\n",
                  record->usec_per_xfer, request->usec_per_xfer, a.provider.c_str());
    } else {
      std::printf("fi_pingpong: no result; no limit in series\n");
    }
  }

  std::vector<uint8_t> base(kChunk);
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < kChunk; i += 8) {
    uint64_t x = rng();
    std::memcpy(&base[i], &x, 8);
  }
  std::vector<ChunkId> ids(a.chunks);
  {
    std::vector<uint8_t> tmp(kChunk);
    for (size_t i = 0; i < a.chunks; ++i) {
      chunkBytes(i, base, tmp.data());
      ids[i] = Hash128::of(tmp.data(), kChunk);
    }
  }
  std::vector<std::pair<size_t, uint64_t>> records(a.records);
  for (auto& r : records) r = {rng() % a.chunks, (rng() % (kChunk / kRecord)) * kRecord};

  // By "<size>, <clients> x<depth>": fio's cold figures (each cold run's
  // bracket) and the page-cache-warm node's figure, for the closing lines.
  std::map<std::string, std::vector<double>> cold_fio;
  std::map<std::string, double> no_disk;
  for (bool direct : {true, false}) {
    if (!a.only.empty() && direct == a.buffered) continue;
    testing::StorageDaemon daemon;
    std::vector<std::string> args = {"--standalone", "--data_dir=" + data, "--scrub.rate=0",
                                     "--workers=" + std::to_string(a.workers),
                                     "--open_files=" + std::to_string(a.open_files), std::string("--direct_io=") + (direct ? "true" : "false"),
                                     "--provider=" + a.provider,
                                     std::string("--busy_poll=") + (a.busy_poll ? "true" : "false")};
    Status s = daemon.start(a.dir, args);
    if (!s.isOk()) {
      std::fprintf(stderr, "daemon: %s\n%s\n", s.toString().c_str(), daemon.output(a.dir).c_str());
      return 1;
    }
    ClientSet cs;
    if (Status c = cs.connect(daemon.address(), 4, a.provider, a.chunk_depth * kChunk); !c.isOk()) {
      std::fprintf(stderr, "clients: %s\n", c.toString().c_str());
      return 1;
    }
    const std::string mode = direct ? "" : " buffered";
    if (direct || !a.only.empty()) {
      const double write_before = writeLimit();
      auto put = parallel(4, 1, a.chunks, kChunk, [&](size_t c, size_t, size_t i) -> Status {
        chunkBytes(i, base, cs.bufs[c]->data());
        auto r = cs.clients[c]->putChunk(ids[i], stripeOf(ids[i], 256), *cs.bufs[c], 0, kChunk);
        return r.status();
      });
      if (!put.isOk()) {
        std::fprintf(stderr, "put: %s\n", put.status().toString().c_str());
        return 1;
      }
      const Bracket b{write_before, writeLimit()};
      line("PutChunk 4M, 4 clients", *put, b.mean(), "fio write 1M QD4", b.note());
    }
    auto get4m = [&](size_t c, size_t slot, size_t i) -> Status {
      auto r = cs.clients[c]->getChunk(ids[i], 0, 0, *cs.bufs[c], slot * kChunk);
      if (r.isOk() && !r->verified) return internalError("unverified whole read");
      return r.status();
    };
    auto getRecord = [&](size_t c, size_t slot, size_t i) -> Status {
      auto& [chunk, off] = records[i];
      return cs.clients[c]->getChunk(ids[chunk], off, kRecord, *cs.bufs[c], slot * kRecord).status();
    };
    auto startRecord = [&](size_t c, size_t slot, size_t i, auto done) {
      auto& [chunk, off] = records[i];
      cs.clients[c]->getChunkAsync(ids[chunk], off, kRecord, *cs.bufs[c], slot * kRecord,
                                   [done](Result<GetChunkResult> r) { done(r.status()); });
    };
    auto get128k = [&](size_t k, size_t d) {
      return a.blocking_clients ? parallel(k, d, a.records, kRecord, getRecord)
                                : parallelAsync(k, d, a.records, kRecord, startRecord);
    };
    for (size_t k : {size_t{1}, size_t{4}}) {
      if (a.clients != 0 && k != a.clients) continue;
      const std::string clients = std::to_string(k) + (k == 1 ? " client" : " clients");
      for (bool warm : {false, true}) {
        if (!direct && !warm) continue;  // buffered mode only adds warm figures
        if (!a.only.empty() && warm == direct) continue;
        const std::string temp = warm ? "warm" : "cold";
        // Whole chunks one at a time per client, then `chunk_depth` in flight
        // per client, as readers keep chunks ahead; each against fio with as
        // many bytes in flight (a chunk is four 1 MiB reads). Warm O_DIRECT
        // reads are cold ones again, so only the page cache adds depth there.
        std::vector<size_t> chunk_depths = {1};
        if (a.chunk_depth > 1 && (!warm || !direct)) chunk_depths.push_back(a.chunk_depth);
        for (size_t d : a.only != "get128k" ? chunk_depths : std::vector<size_t>{}) {
          const size_t qd = 4 * k * d;
          const double seq_limit = seqLimit(qd);
          if (!warm) cold();
          if (warm && !direct) {
            // Warm the page cache first.
            parallel(k, d, a.chunks, kChunk, get4m).status().ignore();
          }
          auto r = parallel(k, d, a.chunks, kChunk, get4m);
          if (!r.isOk()) {
            std::fprintf(stderr, "get4m: %s\n", r.status().toString().c_str());
            return 1;
          }
          const Bracket b{seq_limit, warm ? 0.0 : seqLimit(qd)};
          const std::string shape = "4M, " + shapeOf(clients, d);
          line("GetChunk 4M " + temp + mode + ", " + shapeOf(clients, d), *r, b.mean(),
               "fio read 1M QD" + std::to_string(qd), b.note());
          if (direct && !warm && b.mean() > 0) cold_fio[shape].push_back(b.mean());
          if (!direct && warm) no_disk[shape] = *r;
        }
        if (a.only == "get4m") continue;
        // Records one at a time per client, then `depth` in flight per
        // client as the reader and the prefetcher keep them; each against
        // fio at the same number of reads in flight.
        std::vector<size_t> depths = {1};
        // Warm O_DIRECT reads are cold ones again; warm buffered ones at depth
        // show the node and wire without the disk: the ceiling on this machine.
        if (a.depth > 1 && (!warm || !direct)) depths.push_back(a.depth);
        for (size_t d : depths) {
          const size_t qd = k * d;
          const std::string name = "GetChunk 128K " + temp + mode + ", " + shapeOf(clients, d);
          const std::string fio_name = "fio randread 128k QD" + std::to_string(qd);
          const std::string shape = "128K, " + shapeOf(clients, d);
          // Cold: `rounds` runs, each between two fio runs (one round's
          // "after" is the next one's "before"), so every figure is paired
          // with the disk of its own minute; the median ratio is the figure.
          const size_t rounds = warm ? 1 : a.rounds;
          std::vector<double> ratios;
          double fio_before = randLimit(qd);
          for (size_t round = 0; round < rounds; ++round) {
            if (!warm) cold();
            if (warm && !direct) get128k(k, d).status().ignore();
            const CpuMeter cpu(daemon.pid());
            auto q = get128k(k, d);
            const std::string cpu_note = cpu.perRecord(a.records);
            if (!q.isOk()) {
              std::fprintf(stderr, "get128k: %s\n", q.status().toString().c_str());
              return 1;
            }
            const double fio_after = warm ? 0.0 : randLimit(qd);
            const Bracket b{fio_before, fio_after};
            fio_before = fio_after;
            const std::string tag = rounds == 1 ? "" : " #" + std::to_string(round + 1);
            line(name + tag, *q, b.mean(), fio_name, b.note() + cpu_note);
            if (b.mean() > 0) ratios.push_back(*q / b.mean());
            if (direct && !warm && b.mean() > 0) cold_fio[shape].push_back(b.mean());
            if (!direct && warm) no_disk[shape] = *q;
            if (qd == 1 && direct && !warm && b.mean() > 0 && wire_us > 0) {
              const double series = kRecord / (kRecord / b.mean() + wire_us * 1e-6);
              line("  (same)", *q, series, "fio QD1 + fi_pingpong");
            }
          }
          if (ratios.size() > 1) {
            std::printf("%-34s median ratio %.2f of %zu rounds (lowest %.2f, highest %.2f)\n",
                        ("  " + name).c_str(), median(ratios), ratios.size(),
                        *std::min_element(ratios.begin(), ratios.end()),
                        *std::max_element(ratios.begin(), ratios.end()));
          }
        }
      }
    }
    daemon.stop();
  }
  // What the node serves with no disk at all (from the page cache) bounds
  // what it can serve cold: a ratio below 0.85 here means this run's disk
  // outpaced what the node and the wire can carry on this machine.
  for (const auto& [shape, fios] : cold_fio) {
    auto it = no_disk.find(shape);
    if (it == no_disk.end() || fios.empty()) continue;
    const double fio_median = median(fios);
    std::printf("ceiling without the disk, %-19s %7.1f MiB/s (page cache) = %.2f of cold fio %.1f MiB/s\n",
                (shape + ":").c_str(), it->second / (1 << 20), it->second / fio_median,
                fio_median / (1 << 20));
  }
  std::filesystem::remove_all(a.dir, ec);
  return 0;
}

}  // namespace
}  // namespace sluice::storage

int main(int argc, char** argv) { return sluice::storage::run(argc, argv); }
