// bench_client: the client library against the physical limits of this
// machine, in one run:
//
//   limits   iperf3 (one TCP stream on loopback: what the tcp provider rides
//            on) and fio on the disk that holds the storage nodes' chunks
//   upload   1 GiB incompressible, 1 GiB compressible (MB/s of file bytes),
//            and 20,000 files of ~112 KiB (files/s) next to writing the same
//            tree to local ext4 (write + sync: as durable as an upload)
//   read     a 2 GiB file striped over 3 nodes, cold, 1 and 4 reader threads;
//            random 128 KiB reads, 4 threads
//
// Replication 2 on one disk: an upload writes every byte twice, so its disk
// limit is fio's write bandwidth / 2.
//
//   bench_client [--large-mib 2048] [--upload-mib 1024] [--files 20000] [--file-kib 112]
//                [--random-reads 4000]
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/bench_util.h"
#include "client/reader.h"
#include "client/uploader.h"
#include "common/wire/meta_generated.h"
#include "tests/lib/test_cluster.h"
#include "tools/process.h"

namespace sluice::bench {
namespace {

namespace fs = std::filesystem;
namespace meta = wire::meta;
using testing::TestCluster;

struct Args {
  uint64_t large_mib = 2048;
  uint64_t upload_mib = 1024;
  size_t files = 20000;
  size_t file_kib = 112;
  size_t random_reads = 4000;
};

void row(const std::string& name, double value, const std::string& unit, double limit,
         const std::string& limit_name) {
  if (limit > 0) {
    std::printf("%-44s %10.1f %-8s %-34s %10.1f  ratio %5.2f\n", name.c_str(), value, unit.c_str(),
                limit_name.c_str(), limit, value / limit);
  } else {
    std::printf("%-44s %10.1f %-8s\n", name.c_str(), value, unit.c_str());
  }
  std::fflush(stdout);
}

Status createDataset(client::Cluster& c, const std::string& name) {
  meta::CreateDatasetRequestT req;
  req.name = name;
  req.replication = 2;
  return c.meta<meta::CreateDatasetRequest, meta::CreateDatasetResponse>(meta::MetaMethod::CreateDataset,
                                                                         req, "CreateDataset")
      .status();
}

int run(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : "0"; };
    if (s == "--large-mib") a.large_mib = std::stoull(next());
    else if (s == "--upload-mib") a.upload_mib = std::stoull(next());
    else if (s == "--files") a.files = std::stoul(next());
    else if (s == "--file-kib") a.file_kib = std::stoul(next());
    else if (s == "--random-reads") a.random_reads = std::stoul(next());
    else {
      std::fprintf(stderr, "usage: bench_client [--large-mib N] [--upload-mib N] [--files N] [--file-kib N] [--random-reads N]\n");
      return 2;
    }
  }
  auto cluster = TestCluster::start();
  if (!cluster.isOk()) {
    std::fprintf(stderr, "bench_client: %s\n", cluster.status().toString().c_str());
    return 1;
  }
  auto conn = (*cluster)->connect();
  if (!conn.isOk()) return 1;
  client::Cluster& c = **conn;
  const std::string root = (*cluster)->dir();
  std::printf("bench_client: 3 storage nodes on loopback, replication 2, %s\n", root.c_str());

  // The limits, measured now.
  double net = iperf3Loopback();
  std::string fio_file = root + "/fio.dat";
  double disk_write = fioBandwidth(fio_file, "write", "1M", 4) / 1e6;
  double disk_read = fioBandwidth(fio_file, "read", "1M", 16) / 1e6;
  double disk_rand = fioBandwidth(fio_file, "randread", "128k", 4) / 1e6;
  fs::remove(fio_file);
  std::printf("limits: iperf3 loopback %.0f MB/s; fio write 1M QD4 %.0f MB/s, read 1M QD16 %.0f MB/s, "
              "randread 128k QD4 %.0f MB/s (%.0f IOPS)\n\n", net, disk_write, disk_read, disk_rand,
              disk_rand * 1e6 / (128 << 10));
  const double upload_limit = std::min(net, disk_write / 2);

  std::mt19937_64 rng(11);
  if (!createDataset(c, "bench").isOk()) return 1;
  for (bool compressible : {false, true}) {
    std::string dir = root + (compressible ? "/up-text" : "/up-random");
    writeDataFile(dir + "/data.bin", a.upload_mib << 20, rng, compressible);
    dropCaches();
    client::UploadOptions uo;
    auto t = BenchClock::now();
    auto r = client::uploadDirectory(c, dir, "bench", uo);
    double secs = since(t);
    if (!r.isOk()) {
      std::fprintf(stderr, "bench_client: upload: %s\n", r.status().toString().c_str());
      return 1;
    }
    row(compressible ? "upload 1 file, compressible (~4x)" : "upload 1 file, incompressible",
        static_cast<double>(r->logical_bytes) / 1e6 / secs, "MB/s", upload_limit,
        "min(iperf3, fio write / 2)");
    fs::remove_all(dir);
  }

  // The small-file tree: written locally (the baseline), then uploaded.
  std::string tree = root + "/tree";
  for (size_t i = 0; i < a.files; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "/d%03zu/f%06zu.bin", i % 100, i);
    writeDataFile(tree + name, a.file_kib * 1024 * (75 + rng() % 51) / 100, rng);
  }
  dropCaches();
  // Local: read the tree (cold) and write a copy + sync, file by file.
  {
    auto t = BenchClock::now();
    std::vector<char> buf(1 << 20);
    for (const auto& e : fs::recursive_directory_iterator(tree)) {
      if (!e.is_regular_file()) continue;
      std::string to = root + "/tree-copy/" + fs::relative(e.path(), tree).string();
      fs::create_directories(fs::path(to).parent_path());
      int in = ::open(e.path().c_str(), O_RDONLY);
      int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ssize_t n;
      while ((n = ::read(in, buf.data(), buf.size())) > 0) {
        if (::write(out, buf.data(), static_cast<size_t>(n)) != n) break;
      }
      ::close(in);
      ::close(out);
    }
    ::sync();
    double local_fps = static_cast<double>(a.files) / since(t);
    fs::remove_all(root + "/tree-copy");
    dropCaches();
    if (!createDataset(c, "tree").isOk()) return 1;
    t = BenchClock::now();
    auto r = client::uploadDirectory(c, tree, "tree", client::UploadOptions{});
    double secs = since(t);
    if (!r.isOk()) return 1;
    row("upload 20,000 files of ~112 KiB", static_cast<double>(r->files) / secs, "files/s", local_fps,
        "local ext4 copy + sync, files/s");
  }
  fs::remove_all(tree);

  // Striped reads of one large file.
  std::string big = root + "/big";
  writeDataFile(big + "/large.bin", a.large_mib << 20, rng);
  if (!createDataset(c, "big").isOk()) return 1;
  if (!client::uploadDirectory(c, big, "big", client::UploadOptions{}).isOk()) return 1;
  fs::remove_all(big);
  auto reader = client::DatasetReader::open(c, "big", "v1");
  if (!reader.isOk()) return 1;
  auto info = (*reader)->stat("large.bin");
  if (!info.isOk()) return 1;
  const uint64_t size = info->size;
  for (int threads : {1, 4}) {
    dropCaches();
    std::atomic<uint64_t> total{0};
    auto t = BenchClock::now();
    std::vector<std::thread> pool;
    for (int k = 0; k < threads; ++k) {
      pool.emplace_back([&, k] {
        uint64_t begin = size / threads * k;
        uint64_t end = k == threads - 1 ? size : size / threads * (k + 1);
        std::vector<uint8_t> buf(16u << 20);
        for (uint64_t off = begin; off < end;) {
          auto n = (*reader)->read(*info, off, std::span<uint8_t>(buf.data(), std::min<uint64_t>(buf.size(), end - off)));
          if (!n.isOk() || *n == 0) break;
          off += *n;
          total += *n;
        }
      });
    }
    for (auto& th : pool) th.join();
    double mbs = static_cast<double>(total) / 1e6 / since(t);
    row("striped read 2 GiB, " + std::to_string(threads) + " reader thread" + (threads > 1 ? "s" : ""), mbs,
        "MB/s", std::min(net, disk_read), "min(iperf3, fio read 1M QD16)");
  }
  {
    dropCaches();
    std::atomic<uint64_t> reads{0};
    auto t = BenchClock::now();
    std::vector<std::thread> pool;
    for (int k = 0; k < 4; ++k) {
      pool.emplace_back([&, k] {
        std::mt19937_64 r(100 + k);
        std::vector<uint8_t> buf(128 << 10);
        for (size_t i = 0; i < a.random_reads / 4; ++i) {
          uint64_t off = (r() % (size / buf.size())) * buf.size();
          if ((*reader)->read(*info, off, buf).isOk()) reads++;
        }
      });
    }
    for (auto& th : pool) th.join();
    double iops = static_cast<double>(reads) / since(t);
    row("random 128 KiB reads, 4 threads", iops, "reads/s", disk_rand * 1e6 / (128 << 10),
        "fio randread 128k QD4, IOPS");
  }
  return 0;
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) { return sluice::bench::run(argc, argv); }
