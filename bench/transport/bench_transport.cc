// bench_transport: Sluice transport figures next to the physical limits
// measured in the same run.
//
// Workloads (--workloads=a,b,...; default all, in this order):
//   rpc_latency     small RPC (64-byte ping), 1 in flight: round trips/s and
//                   mean latency, with the progress thread sleeping in
//                   fi_cq_sread (default) and busy-polling
//   rpc_inflight    small RPC with --window calls in flight (default 16)
//   rma_read        handler rmaRead()s the caller's buffer (upload path):
//                   64 KiB..16 MiB x 1,2,4,8 in flight
//   rma_write       handler rmaWrite()s into the caller's buffer (read path)
//   idle_cpu        CPU used by an idle server + client pair over 2 s
//   fi_pingpong     libfabric's own ping-pong, same provider, 64 KiB..16 MiB
//   iperf3          kernel TCP over loopback
//   memcpy          one thread copying 16 MiB buffers: what a same-host copy
//                   (shm's process_vm_readv/writev) cannot beat
// At the end, ratios: best RMA vs fi_pingpong's best, and vs iperf3 (tcp
// and verbs) or memcpy (shm).
//
// Everything runs on 127.0.0.1 (shm: same host, endpoints named
// "127.0.0.1:<n>"). Examples:
//   build/bench/transport/bench_transport --seconds=2
//   build/bench/transport/bench_transport --provider=shm
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/bench_util.h"
#include "common/net/endpoint.h"

namespace sluice::net {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint16_t kOpPull = makeOpcode(ServiceId::kTransport, 0x30);
constexpr uint16_t kOpPush = makeOpcode(ServiceId::kTransport, 0x31);
constexpr size_t kMaxRma = size_t{16} << 20;
constexpr size_t kMaxWindow = 8;

struct Flags {
  std::string provider = "tcp;ofi_rxm";
  std::vector<std::string> workloads = {"rpc_latency", "rpc_inflight", "rma_read", "rma_write",
                                        "idle_cpu",    "fi_pingpong",  "iperf3"};
  double seconds = 1.0;
  int window = 16;
  std::vector<size_t> sizes = {64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20};
  std::vector<size_t> inflight = {1, 2, 4, 8};
};

double elapsed(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

int freePortGuess() { return 20000 + static_cast<int>(getpid() % 20000); }

struct Pair {
  std::unique_ptr<Endpoint> server, client;
  PeerId peer = 0;
  std::vector<std::unique_ptr<MemoryRegion>> server_buffers;
  std::mutex pool_mu;
  std::vector<MemoryRegion*> pool;
};

MemoryRegion* takeBuffer(Pair& p) {
  std::lock_guard<std::mutex> lock(p.pool_mu);
  MemoryRegion* r = p.pool.back();
  p.pool.pop_back();
  return r;
}
void giveBuffer(Pair& p, MemoryRegion* r) {
  std::lock_guard<std::mutex> lock(p.pool_mu);
  p.pool.push_back(r);
}

std::unique_ptr<Pair> makePair(const Flags& f, bool busy_poll, bool with_buffers) {
  auto p = std::make_unique<Pair>();
  EndpointOptions o;
  o.provider = f.provider;
  o.listen = "127.0.0.1:0";
  o.worker_threads = kMaxWindow;
  o.busy_poll = busy_poll;
  o.max_inflight_per_peer = 64;
  o.default_timeout = Duration(60000);
  auto s = Endpoint::create(o);
  auto fail = [](const char* what, const Status& st) -> std::unique_ptr<Pair> {
    std::fprintf(stderr, "bench_transport: %s: %s\n", what, st.toString().c_str());
    return nullptr;
  };
  if (!s.isOk()) return fail("server endpoint", s.status());
  p->server = std::move(s).value();
  if (with_buffers) {
    for (size_t i = 0; i < kMaxWindow; ++i) {
      auto r = p->server->allocateMemory(kMaxRma, Access::kLocalOnly);
      if (!r.isOk()) return fail("server buffer", r.status());
      std::memset((*r)->data(), static_cast<int>(i), kMaxRma);
      p->pool.push_back(r->get());
      p->server_buffers.push_back(std::move(r).value());
    }
  }
  Pair* raw = p.get();
  auto rma = [raw](bool read) {
    return [raw, read](std::unique_ptr<IncomingCall> call) {
      RemoteBuffer rb;
      if (call->body().size() != sizeof(rb)) return call->reply(protocolError("bad body"));
      std::memcpy(&rb, call->body().data(), sizeof(rb));
      if (rb.length > kMaxRma) return call->reply(outOfRange("too big"));
      MemoryRegion* buf = takeBuffer(*raw);
      Status s = read ? call->rmaRead(*buf, 0, rb, 0, rb.length)
                      : call->rmaWrite(*buf, 0, rb, 0, rb.length);
      giveBuffer(*raw, buf);
      call->reply(s);
    };
  };
  p->server->registerHandler(kOpPull, rma(true));
  p->server->registerHandler(kOpPush, rma(false));
  if (Status st = p->server->start(); !st.isOk()) return fail("server start", st);
  o.worker_threads = 2;
  auto c = Endpoint::create(o);
  if (!c.isOk()) return fail("client endpoint", c.status());
  p->client = std::move(c).value();
  if (Status st = p->client->start(); !st.isOk()) return fail("client start", st);
  auto peer = p->client->connect(p->server->address());
  if (!peer.isOk()) return fail("connect", peer.status());
  p->peer = *peer;
  return p;
}

// Runs `issue(slot, done)` with `window` operations in flight for `seconds`.
// Returns completed operations per second; counts failures in `errors`.
template <typename Issue>
double windowed(size_t window, double seconds, Issue issue, uint64_t& errors) {
  std::mutex mu;
  std::condition_variable cv;
  size_t outstanding = 0;
  uint64_t completed = 0;
  std::vector<bool> busy(window, false);
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    size_t slot;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return outstanding < window; });
      slot = static_cast<size_t>(std::find(busy.begin(), busy.end(), false) - busy.begin());
      busy[slot] = true;
      ++outstanding;
    }
    issue(slot, [&, slot](const Status& s) {
      std::lock_guard<std::mutex> lock(mu);
      busy[slot] = false;
      --outstanding;
      ++completed;
      if (!s.isOk()) {
        if (errors++ == 0) std::fprintf(stderr, "error: %s\n", s.toString().c_str());
      }
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return outstanding == 0; });
  return static_cast<double>(completed) / elapsed(start);
}

double rpcRate(Pair& p, size_t window, double seconds, uint64_t& errors) {
  std::vector<uint8_t> body(64, 1);
  return windowed(
      window, seconds,
      [&](size_t, auto done) {
        p.client->callAsync(p.peer, kOpPing, body, Duration(10000),
                            [done](Result<std::vector<uint8_t>> r) { done(r.status()); });
      },
      errors);
}

struct Results {
  double rpc_latency_us = 0;
  double best_rma_mbps = 0;
  std::string best_rma_what;
  double pingpong_best_mbps = 0;
  double iperf3_mbps = 0;
  double memcpy_mbps = 0;
};

bool isShm(const Flags& f) { return f.provider == "shm"; }

void rpcLatency(const Flags& f, Results& res) {
  struct Mode {
    const char* name;
    bool busy;
  };
  // shm endpoints never sleep in fi_cq_sread (it spins there): they poll
  // with a back-off instead (common/net/fabric_endpoint.cc).
  const char* idle_mode = isShm(f) ? "poll back-off" : "cq_sread";
  for (Mode m : {Mode{idle_mode, false}, Mode{"busy-poll", true}}) {
    auto p = makePair(f, m.busy, false);
    if (!p) return;
    uint64_t errors = 0;
    rpcRate(*p, 1, 0.2, errors);  // warm up the connection
    double rate = rpcRate(*p, 1, f.seconds, errors);
    std::printf("rpc_latency   64 B, 1 in flight, %-20s %8.0f calls/s %8.1f us/call  errors %llu\n",
                m.name, rate, 1e6 / rate, static_cast<unsigned long long>(errors));
    if (!m.busy) res.rpc_latency_us = 1e6 / rate;
  }
}

void rpcInflight(const Flags& f) {
  auto p = makePair(f, false, false);
  if (!p) return;
  uint64_t errors = 0;
  rpcRate(*p, 1, 0.2, errors);
  double rate = rpcRate(*p, static_cast<size_t>(f.window), f.seconds, errors);
  std::printf(
      "rpc_inflight  64 B, %2d in flight            %10.0f calls/s                    errors "
      "%llu\n",
      f.window, rate, static_cast<unsigned long long>(errors));
}

void rmaBench(const Flags& f, bool read, Results& res) {
  auto p = makePair(f, false, true);
  if (!p) return;
  auto local = p->client->allocateMemory(kMaxRma * kMaxWindow, Access::kRemoteReadWrite);
  if (!local.isOk()) return;
  std::memset((*local)->data(), 7, (*local)->size());
  const char* name = read ? "rma_read " : "rma_write";
  for (size_t size : f.sizes) {
    for (size_t window : f.inflight) {
      if (size > kMaxRma || window > kMaxWindow) continue;
      uint64_t errors = 0;
      auto issue = [&](size_t slot, auto done) {
        RemoteBuffer rb = (*local)->remote(slot * kMaxRma, size);
        p->client->callAsync(
            p->peer, read ? kOpPull : kOpPush,
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&rb), sizeof(rb)),
            Duration(60000), [done](Result<std::vector<uint8_t>> r) { done(r.status()); });
      };
      windowed(window, 0.1, issue, errors);  // warm up
      double rate = windowed(window, f.seconds, issue, errors);
      double mbps = rate * static_cast<double>(size) / 1e6;
      std::printf(
          "%s     %6zu KiB x %zu in flight        %10.1f MB/s  %8.0f ops/s    errors %llu\n", name,
          size >> 10, window, mbps, rate, static_cast<unsigned long long>(errors));
      if (errors == 0 && mbps > res.best_rma_mbps) {
        res.best_rma_mbps = mbps;
        char what[96];
        std::snprintf(what, sizeof(what), "%s %zu KiB x %zu", read ? "rma_read" : "rma_write",
                      size >> 10, window);
        res.best_rma_what = what;
      }
    }
  }
}

void idleCpu(const Flags& f) {
  for (bool busy : {false, true}) {
    auto p = makePair(f, busy, false);
    if (!p) return;
    const double before = bench::processCpuSeconds();
    auto start = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const double after = bench::processCpuSeconds();
    std::printf("idle_cpu      2 endpoints idle, %-10s %10.1f %% of one core\n",
                busy ? "busy-poll" : (isShm(f) ? "back-off" : "cq_sread"),
                100.0 * (after - before) / elapsed(start));
  }
}

void fiPingpong(const Flags& f, Results& res) {
  int port = freePortGuess();
  for (size_t size : {size_t{64} << 10, size_t{1} << 20, size_t{4} << 20, size_t{16} << 20}) {
    const int iters = size >= (size_t{4} << 20) ? 20 : 100;
    auto pp = bench::fiPingpong(f.provider, size, iters, port++);
    if (!pp) {
      std::printf("fi_pingpong   %6zu KiB: no result\n", size >> 10);
      continue;
    }
    std::printf("fi_pingpong   %6zu KiB ping-pong              %10.1f MB/s\n", size >> 10, pp->mbps);
    res.pingpong_best_mbps = std::max(res.pingpong_best_mbps, pp->mbps);
  }
}

void iperf3(const Flags& f, Results& res) {
  std::string port = std::to_string(freePortGuess() + 100);
  pid_t server = bench::spawnQuiet({"iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", port});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string secs = std::to_string(std::max(1, static_cast<int>(f.seconds * 3)));
  std::string out = bench::runWithTimeout({"iperf3", "-c", "127.0.0.1", "-p", port, "-t", secs, "-f", "m"}, 60);
  bench::reapOrKill(server);
  // Receiver summary line: "... sec  X MBytes  Y Mbits/sec   receiver"
  std::istringstream in(out);
  std::string line;
  double mbits = -1;
  while (std::getline(in, line)) {
    if (line.find("receiver") == std::string::npos) continue;
    auto pos = line.find("Mbits/sec");
    if (pos == std::string::npos) continue;
    auto start = line.rfind(' ', pos - 2);
    mbits = std::stod(line.substr(start + 1, pos - start - 1));
  }
  if (mbits < 0) {
    std::printf("iperf3        no result (%s)\n", out.substr(0, 200).c_str());
    return;
  }
  res.iperf3_mbps = mbits / 8.0;
  std::printf("iperf3        TCP 127.0.0.1, 1 stream             %10.1f MB/s\n", res.iperf3_mbps);
}

// Single-threaded memcpy of 16 MiB between two buffers, for --seconds.
void memcpyLimit(const Flags& f, Results& res) {
  std::vector<uint8_t> a(kMaxRma, 1), b(kMaxRma, 2);
  std::memcpy(b.data(), a.data(), kMaxRma);  // fault the pages in first
  uint64_t copies = 0;
  auto start = Clock::now();
  while (elapsed(start) < f.seconds) {
    std::memcpy(copies % 2 ? a.data() : b.data(), copies % 2 ? b.data() : a.data(), kMaxRma);
    ++copies;
  }
  res.memcpy_mbps = static_cast<double>(copies) * kMaxRma / 1e6 / elapsed(start);
  std::printf("memcpy        16 MiB, 1 thread                   %10.1f MB/s  (check %u)\n",
              res.memcpy_mbps, static_cast<unsigned>(a[kMaxRma / 2] + b[kMaxRma / 3]));
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int main(int argc, char** argv) {
  Flags f;
  bool workloads_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      size_t n = std::strlen(name);
      return a.compare(0, n, name) == 0 ? a.c_str() + n : nullptr;
    };
    if (const char* v = value("--workloads=")) {
      f.workloads = split(v);
      workloads_given = true;
    } else if (const char* v = value("--seconds=")) {
      f.seconds = std::stod(v);
    } else if (const char* v = value("--provider=")) {
      f.provider = v;
    } else if (const char* v = value("--window=")) {
      f.window = std::stoi(v);
    } else if (const char* v = value("--sizes_kib=")) {
      f.sizes.clear();
      for (auto& s : split(v)) f.sizes.push_back(std::stoul(s) << 10);
    } else if (const char* v = value("--inflight=")) {
      f.inflight.clear();
      for (auto& s : split(v)) f.inflight.push_back(std::stoul(s));
    } else {
      std::fprintf(stderr,
                   "usage: %s [--workloads=rpc_latency,rpc_inflight,rma_read,rma_write,idle_cpu,"
                   "fi_pingpong,iperf3,memcpy] [--seconds=1] [--provider=tcp;ofi_rxm] [--window=16] "
                   "[--sizes_kib=64,256,1024,4096,16384] [--inflight=1,2,4,8]\n",
                   argv[0]);
      return 2;
    }
  }
  if (isShm(f) && !workloads_given) {
    // Kernel TCP says nothing about a same-host shared-memory transport.
    std::replace(f.workloads.begin(), f.workloads.end(), std::string("iperf3"),
                 std::string("memcpy"));
  }
  std::printf("bench_transport: provider %s, %.1f s per point, 127.0.0.1\n", f.provider.c_str(),
              f.seconds);
  Results res;
  for (auto& w : f.workloads) {
    if (w == "rpc_latency")
      rpcLatency(f, res);
    else if (w == "rpc_inflight")
      rpcInflight(f);
    else if (w == "rma_read")
      rmaBench(f, true, res);
    else if (w == "rma_write")
      rmaBench(f, false, res);
    else if (w == "idle_cpu")
      idleCpu(f);
    else if (w == "fi_pingpong")
      fiPingpong(f, res);
    else if (w == "iperf3")
      iperf3(f, res);
    else if (w == "memcpy")
      memcpyLimit(f, res);
    else
      std::fprintf(stderr, "unknown workload %s\n", w.c_str());
  }
  std::printf("\nsummary\n");
  if (res.best_rma_mbps > 0) {
    std::printf("best RMA: %.1f MB/s (%s)\n", res.best_rma_mbps, res.best_rma_what.c_str());
  }
  if (res.best_rma_mbps > 0 && res.pingpong_best_mbps > 0) {
    std::printf("RMA / fi_pingpong best (%.1f MB/s): %.2f  (target >= 0.80)\n",
                res.pingpong_best_mbps, res.best_rma_mbps / res.pingpong_best_mbps);
  }
  if (res.best_rma_mbps > 0 && res.iperf3_mbps > 0) {
    std::printf("RMA / iperf3 (%.1f MB/s): %.2f\n", res.iperf3_mbps,
                res.best_rma_mbps / res.iperf3_mbps);
  }
  if (res.pingpong_best_mbps > 0 && res.iperf3_mbps > 0) {
    std::printf("fi_pingpong / iperf3: %.2f\n", res.pingpong_best_mbps / res.iperf3_mbps);
  }
  if (res.best_rma_mbps > 0 && res.memcpy_mbps > 0) {
    std::printf("RMA / memcpy (%.1f MB/s): %.2f\n", res.memcpy_mbps,
                res.best_rma_mbps / res.memcpy_mbps);
  }
  if (res.pingpong_best_mbps > 0 && res.memcpy_mbps > 0) {
    std::printf("fi_pingpong / memcpy: %.2f\n", res.pingpong_best_mbps / res.memcpy_mbps);
  }
  return 0;
}

}  // namespace
}  // namespace sluice::net

int main(int argc, char** argv) { return sluice::net::main(argc, argv); }
