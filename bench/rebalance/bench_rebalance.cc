// bench_rebalance: how fast repair and rebalance move data, next to the
// disk and network limits measured in the same run, and what a reader
// keeps meanwhile.
//
//   1. 3 storage nodes, replication 2, one large file uploaded.
//   2. A reader streams the file: its throughput alone.
//   3. Node 2 is killed; once meta calls it down, `sluice repair`: bytes
//      copied / time, and the reader's throughput during it.
//   4. Node 2 comes back (its stale copies are cleaned), a 4th node is
//      added, `sluice rebalance apply`: the same figures.
//
//   bench_rebalance [--mib 1024]
#include <atomic>
#include <cstdio>
#include <thread>

#include "bench/common/bench_util.h"
#include "client/reader.h"
#include "common/wire/meta_generated.h"
#include "tests/lib/test_cluster.h"

namespace sluice::bench {
namespace {

namespace meta = wire::meta;
using testing::TestCluster;

uint64_t bytesCopied(client::Cluster& c) {
  meta::ListMovesRequestT req;
  auto r = c.meta<meta::ListMovesRequest, meta::ListMovesResponse>(meta::MetaMethod::ListMoves, req, "ListMoves");
  return r.isOk() ? (*r)->bytes_copied : 0;
}

// Streams the file over and over while `run` is set; bytes read go to `bytes`.
void streamReader(client::DatasetReader& reader, const client::FileInfo& info, std::atomic<bool>& run,
                  std::atomic<uint64_t>& bytes) {
  std::vector<uint8_t> buf(16u << 20);
  while (run) {
    for (uint64_t off = 0; off < info.size && run;) {
      auto n = reader.read(info, off, buf);
      if (!n.isOk() || *n == 0) break;
      off += *n;
      bytes += *n;
    }
  }
}

int run(int argc, char** argv) {
  uint64_t mib = 1024;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--mib" && i + 1 < argc) {
      mib = std::stoull(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_rebalance [--mib N]\n");
      return 2;
    }
  }
  TestCluster::Options o;
  o.nodes = 3;
  o.stripes = 64;
  o.replication = 2;
  o.extra_meta_args = {"--heartbeat_timeout", "2s", "--repair_grace", "1h"};
  auto cluster = TestCluster::start(o);
  if (!cluster.isOk()) {
    std::fprintf(stderr, "bench_rebalance: %s\n", cluster.status().toString().c_str());
    return 1;
  }
  TestCluster& tc = **cluster;
  double net = iperf3Loopback();
  double disk = fioBandwidth(tc.dir() + "/fio.dat", "write", "1M", 4) / 1e6;
  std::remove((tc.dir() + "/fio.dat").c_str());
  std::printf("bench_rebalance: %llu MiB, replication 2; limits: fio write 1M QD4 %.0f MB/s, iperf3 loopback %.0f MB/s\n",
              static_cast<unsigned long long>(mib), disk, net);
  const double limit = std::min(disk, net);

  std::mt19937_64 rng(5);
  writeDataFile(tc.dir() + "/src/large.bin", mib << 20, rng);
  if (tc.runCli({"dataset", "create", "rb", "--replication", "2"}).isOk() == false) return 1;
  auto put = tc.runCli({"put", tc.dir() + "/src", "rb", "-q"});
  if (!put.isOk() || put->exit_code != 0) return 1;
  std::remove((tc.dir() + "/src/large.bin").c_str());
  auto conn = tc.connect();
  if (!conn.isOk()) return 1;
  client::Cluster& c = **conn;
  auto reader = client::DatasetReader::open(c, "rb", "v1");
  if (!reader.isOk()) return 1;
  auto info = (*reader)->stat("large.bin");
  if (!info.isOk()) return 1;

  auto readerFor = [&](auto&& body) {
    std::atomic<bool> go{true};
    std::atomic<uint64_t> bytes{0};
    std::thread t([&] { streamReader(**reader, *info, go, bytes); });
    auto t0 = BenchClock::now();
    body();
    double secs = since(t0);
    go = false;
    t.join();
    return static_cast<double>(bytes) / 1e6 / secs;
  };
  double alone = readerFor([] { std::this_thread::sleep_for(std::chrono::seconds(5)); });
  std::printf("%-40s %10.1f MB/s\n", "reader alone", alone);

  // Repair.
  if (!tc.kill("node2").isOk()) return 1;
  std::this_thread::sleep_for(std::chrono::seconds(4));  // marked down after 2 s of silence
  uint64_t before = bytesCopied(c);
  double repair_secs = 0;
  double during = readerFor([&] {
    auto t0 = BenchClock::now();
    auto r = tc.runCli({"repair", "-q", "--timeout", "1800"});
    repair_secs = since(t0);
    if (!r.isOk() || r->exit_code != 0) std::fprintf(stderr, "bench_rebalance: repair failed\n");
  });
  double moved = static_cast<double>(bytesCopied(c) - before) / 1e6;
  std::printf("%-40s %10.1f MB/s  (%.0f MB in %.1f s)  ratio to min(disk, net) %.2f\n", "repair", moved / repair_secs,
              moved, repair_secs, moved / repair_secs / limit);
  std::printf("%-40s %10.1f MB/s  (%.2f of alone)\n", "reader during repair", during, during / alone);

  // Rebalance onto a new node.
  if (!tc.restart("node2").isOk()) return 1;
  if (!tc.addNode().isOk()) return 1;
  std::this_thread::sleep_for(std::chrono::seconds(3));
  before = bytesCopied(c);
  double rebalance_secs = 0;
  during = readerFor([&] {
    auto t0 = BenchClock::now();
    auto r = tc.runCli({"rebalance", "apply", "-q", "--timeout", "1800"});
    rebalance_secs = since(t0);
    if (!r.isOk() || r->exit_code != 0) std::fprintf(stderr, "bench_rebalance: rebalance failed\n");
  });
  moved = static_cast<double>(bytesCopied(c) - before) / 1e6;
  std::printf("%-40s %10.1f MB/s  (%.0f MB in %.1f s)  ratio to min(disk, net) %.2f\n", "rebalance", moved / rebalance_secs,
              moved, rebalance_secs, moved / rebalance_secs / limit);
  std::printf("%-40s %10.1f MB/s  (%.2f of alone)\n", "reader during rebalance", during, during / alone);
  return 0;
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) { return sluice::bench::run(argc, argv); }
