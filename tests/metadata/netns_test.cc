// A storage node cut off the network (not killed), with real daemons: the
// node runs in its own network namespace behind a veth pair, and the test
// sets this side's end of the pair down. With replication 2 on 3 nodes a
// reader looping over the dataset sees no errors and no wrong bytes while
// the node is unreachable, sluice-meta marks it down after the heartbeat
// timeout, and healing the link brings it back up and keeps it up (no
// flapping while connections recover from the cut). Healed before the repair
// grace, nothing moves; healed after it, repair has copied its stripes
// elsewhere and its leftover copies are deleted, so every chunk ends with
// exactly two copies. A restarted node stays in its namespace.
//
// Needs root and `ip netns`; skipped, saying why, where they are missing.
// (Not with shm: namespaces do not isolate it, and the dev cluster says so.)
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "client/cluster_config.h"
#include "client/reader.h"
#include "client/uploader.h"
#include "common/wire/meta_generated.h"
#include "tests/client/tree_util.h"
#include "tests/lib/test_cluster.h"
#include "tools/process.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
namespace meta = wire::meta;
using Clock = std::chrono::steady_clock;

constexpr int kIsolated = 3;  // the storage node that runs behind the veth pair
// Reader calls give up on the cut-off node after this, and fail over.
constexpr std::chrono::milliseconds kClientTimeout{2000};

// chunk id (file name) -> the storage nodes (1-based) holding it on disk.
std::map<std::string, std::set<int>> chunkCopies(const TestCluster& c, int nodes) {
  std::map<std::string, std::set<int>> out;
  for (int i = 1; i <= nodes; ++i) {
    for (const auto& f : c.chunkFiles(i)) out[fs::path(f).filename().string()].insert(i);
  }
  return out;
}

Result<std::unique_ptr<client::Cluster>> connectWithTimeout(const TestCluster& tc) {
  SLUICE_ASSIGN_OR_RETURN(auto config, client::readClusterConfig(tc.clientConfigPath()));
  config.timeout = kClientTimeout;
  return client::Cluster::connect(config);
}

std::unique_ptr<meta::ListMovesResponseT> listMoves(client::Cluster& c) {
  meta::ListMovesRequestT req;
  auto r = c.meta<meta::ListMovesRequest, meta::ListMovesResponse>(meta::MetaMethod::ListMoves, req,
                                                                   "ListMoves");
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return r.isOk() ? std::move(*r) : nullptr;
}

// The state `sluice --json status` gives the node at `address` ("up",
// "down", ...), or what went wrong.
std::string nodeState(const TestCluster& tc, const std::string& address) {
  auto r = tc.runCli({"--json", "status"});
  if (!r.isOk()) return "(cli: " + r.status().toString() + ")";
  if (r->exit_code != 0) return "(cli exit " + std::to_string(r->exit_code) + ": " + r->err + ")";
  size_t at = r->out.find("\"address\":\"" + address + "\"");
  if (at == std::string::npos) return "(not listed: " + r->out + ")";
  const std::string key = "\"state\":\"";
  size_t s = r->out.find(key, at);
  if (s == std::string::npos) return "(no state: " + r->out + ")";
  s += key.size();
  return r->out.substr(s, r->out.find('"', s) - s);
}

// Lines of `path` that contain `needle`.
int countLines(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

// "2026-11-28T11:10:31.722Z", as the daemons' logs write it.
std::string utcNow() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  return std::string(buf) + "." + std::to_string(1000 + ms % 1000).substr(1) + "Z";
}

// Prints how long a phase took, for the log (never asserted).
void phase(const char* what, Clock::time_point since) {
  std::printf(
      "  %-44s %6lld ms  (%s)\n", what,
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count()),
      utcNow().c_str());
  std::fflush(stdout);
}

// Polls `sluice status` until the node shows `want`; false after 60 s.
bool waitForState(const TestCluster& tc, const std::string& address, const std::string& want) {
  auto start = Clock::now();
  auto deadline = start + std::chrono::seconds(60);
  std::string last;
  while (Clock::now() < deadline) {
    last = nodeState(tc, address);
    if (last == want) {
      phase(("sluice status shows the node " + want).c_str(), start);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ADD_FAILURE() << "node " << address << " still '" << last << "' after 60 s, expected '" << want
                << "'";
  return false;
}

// A dataset of a few hundred small files and a few larger ones (a few MiB),
// uploaded with replication 2 in small chunks; keeps the expected bytes of
// every file.
struct Dataset {
  std::string name;
  std::string src;
  std::map<std::string, std::string> files;  // path -> content

  Status create(const TestCluster& tc, client::Cluster& c, const std::string& dataset) {
    name = dataset;
    src = tc.dir() + "/src";
    for (int i = 0; i < 300; ++i) {
      std::string path = "d" + std::to_string(i % 7) + "/f" + std::to_string(i);
      files[path] =
          makeContent(3000 + static_cast<size_t>(i) * 61, static_cast<uint64_t>(i) + 1, i % 3 == 0);
    }
    for (int i = 0; i < 3; ++i)
      files["big" + std::to_string(i)] = makeContent(size_t{900} << 10, 1000 + i);
    for (const auto& [path, content] : files) writeFile(fs::path(src) / path, content);
    meta::CreateDatasetRequestT req;
    req.name = dataset;
    req.replication = 2;
    req.chunk_size = 64u << 10;  // many chunks, spread over the stripes
    SLUICE_RETURN_IF_ERROR((c.meta<meta::CreateDatasetRequest, meta::CreateDatasetResponse>(
                                meta::MetaMethod::CreateDataset, req, "CreateDataset"))
                               .status());
    return client::uploadDirectory(c, src, dataset, client::UploadOptions{}).status();
  }

  // Every file reads back byte-identical through a fresh connection.
  void expectReadsBack(const TestCluster& tc) const {
    auto conn = connectWithTimeout(tc);
    ASSERT_TRUE(conn.isOk()) << conn.status().toString();
    auto r = client::DatasetReader::open(**conn, name, "v1");
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    for (const auto& [path, content] : files) {
      auto info = (*r)->stat(path);
      ASSERT_TRUE(info.isOk()) << path << ": " << info.status().toString();
      auto data = (*r)->readAll(*info);
      ASSERT_TRUE(data.isOk()) << path << ": " << data.status().toString();
      EXPECT_EQ(std::string(data->begin(), data->end()), content) << path;
    }
  }
};

// Reads every file of the dataset over and over on its own connection,
// counting errors and wrong bytes, until stopped. The destructor stops and
// joins it, so a failed ASSERT never leaves the thread running.
class ReaderLoop {
 public:
  ReaderLoop(const TestCluster& tc, const Dataset& ds)
      : thread_([this, &tc, &ds] { run(tc, ds); }) {}
  ~ReaderLoop() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Waits until `n` more whole rounds are done; false if 90 s pass first.
  bool waitRounds(int n) {
    const int target = rounds_.load() + n;
    auto deadline = Clock::now() + std::chrono::seconds(90);
    while (rounds_.load() < target && !stop_) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return rounds_.load() >= target;
  }
  int errors() const { return errors_.load(); }
  int mismatches() const { return mismatches_.load(); }
  int rounds() const { return rounds_.load(); }
  uint64_t failovers() const { return failovers_.load(); }
  uint64_t reads() const { return reads_.load(); }
  // The slowest single file read, in ms (a read that fails over waits out
  // one client timeout; one that took far longer would mean a hang).
  int64_t slowestReadMs() const { return slowest_ms_.load(); }
  std::string firstError() const {
    std::lock_guard lock(mu_);
    return first_error_;
  }

 private:
  // Errors carry the wall-clock time, to line them up with the daemons' logs.
  void fail(const std::string& what) {
    errors_++;
    std::lock_guard lock(mu_);
    if (first_error_.empty()) first_error_ = utcNow() + " " + what;
  }

  void run(const TestCluster& tc, const Dataset& ds) {
    auto conn = connectWithTimeout(tc);
    if (!conn.isOk()) return fail("connect: " + conn.status().toString());
    auto reader = client::DatasetReader::open(**conn, ds.name, "v1");
    if (!reader.isOk()) return fail("open: " + reader.status().toString());
    while (!stop_) {
      for (const auto& [path, content] : ds.files) {
        if (stop_) break;
        auto start = Clock::now();
        auto info = (*reader)->stat(path);
        auto data =
            info.isOk() ? (*reader)->readAll(*info) : Result<std::vector<uint8_t>>(info.status());
        int64_t ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
        if (ms > slowest_ms_.load()) slowest_ms_ = ms;
        reads_++;
        if (!data.isOk()) {
          fail(path + ": " + data.status().toString());
        } else if (std::string(data->begin(), data->end()) != content) {
          mismatches_++;
        }
      }
      failovers_ = (*reader)->stats().failovers.load();
      if (!stop_) rounds_++;
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> errors_{0}, mismatches_{0}, rounds_{0};
  std::atomic<uint64_t> failovers_{0}, reads_{0};
  std::atomic<int64_t> slowest_ms_{0};
  mutable std::mutex mu_;
  std::string first_error_;  // GUARDED_BY(mu_)
  std::thread thread_;       // last: starts once the counters exist
};

class NetnsPartition : public ::testing::Test {
 protected:
  // On failure, what the daemons said about the node and the moves (the
  // directory goes with the cluster).
  void TearDown() override {
    if (!HasFailure() || tc_ == nullptr) return;
    auto logs = tools::runProcess(
        "/bin/sh",
        {"-c", "grep -h -E 'mover|heartbeat|marked|warn|error' " + tc_->dir() +
                   "/meta.log | grep -v 'chunks deleted' | tail -40; for n in 1 2 3; do echo "
                   "---- node$n; grep -E 'warn|error' " + tc_->dir() +
                   "/node$n.log | tail -20; done"});
    if (logs.isOk()) std::printf("%s\n", logs->out.c_str());
  }

  // Starts 3 nodes (node 3 behind the veth pair), uploads the dataset, and
  // checks every chunk has its two copies. Skips where namespaces are missing.
  void startCluster(const std::string& repair_grace) {
    auto start = Clock::now();
    {
      auto probe = VethNamespace::create();
      if (!probe.isOk() && probe.status().code() == StatusCode::kUnavailable) {
        GTEST_SKIP() << probe.status().toString();
      }
      ASSERT_TRUE(probe.isOk()) << probe.status().toString();
    }
    TestCluster::Options o;
    o.nodes = 3;
    o.replication = 2;
    o.isolated_node = kIsolated;
    o.extra_meta_args = {"--heartbeat_timeout", "2s", "--repair_grace", repair_grace};
    auto cluster = TestCluster::start(o);
    ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
    tc_ = std::move(*cluster);
    ASSERT_NE(tc_->isolation(), nullptr);
    isolated_address_ = tc_->state().nodes.at(kIsolated - 1).address;
    // The layout this test is about: the node is inside, everyone else on the veth.
    ASSERT_EQ(isolated_address_.rfind(tc_->isolation()->innerAddress() + ":", 0), 0u)
        << isolated_address_;
    ASSERT_EQ(tc_->state().meta.address.rfind(tc_->isolation()->hostAddress() + ":", 0), 0u)
        << tc_->state().meta.address;
    auto conn = connectWithTimeout(*tc_);
    ASSERT_TRUE(conn.isOk()) << conn.status().toString();
    conn_ = std::move(*conn);
    Status s = ds_.create(*tc_, *conn_, "part");
    ASSERT_TRUE(s.isOk()) << s.toString();
    before_ = chunkCopies(*tc_, 3);
    ASSERT_GT(before_.size(), 5u);
    size_t on_isolated = 0;
    for (const auto& [chunk, nodes] : before_) {
      ASSERT_EQ(nodes.size(), 2u) << chunk;
      on_isolated += nodes.count(kIsolated);
    }
    ASSERT_GT(on_isolated, 0u) << "no chunk on the node to cut off";
    ASSERT_EQ(nodeState(*tc_, isolated_address_), "up");
    std::printf("%zu chunks, %zu with a copy on node %d (%s)\n", before_.size(), on_isolated,
                kIsolated, isolated_address_.c_str());
    phase("cluster up, dataset uploaded", start);
  }

  // Sets the link down, and waits until `sluice status` shows the node down
  // while the reader keeps going.
  void cutOff(ReaderLoop& reader) {
    ASSERT_TRUE(reader.waitRounds(1)) << "reader made no progress: " << reader.firstError();
    Status s = tc_->isolation()->setLinkUp(false);
    ASSERT_TRUE(s.isOk()) << s.toString();
    std::printf("link %s down\n", tc_->isolation()->hostLink().c_str());
    ASSERT_TRUE(waitForState(*tc_, isolated_address_, "down"));
    // The human form says it too, with the stripes it leaves short a copy.
    auto text = tc_->runCli({"status"});
    ASSERT_TRUE(text.isOk());
    EXPECT_EQ(text->exit_code, 0) << text->err;
    EXPECT_NE(text->out.find("stripes list a down node"), std::string::npos) << text->out;
    bool row = false;
    for (size_t at = 0, end; at < text->out.size(); at = end + 1) {
      end = text->out.find('\n', at);
      if (end == std::string::npos) end = text->out.size();
      std::string line = text->out.substr(at, end - at);
      if (line.find(isolated_address_) != std::string::npos)
        row = line.find(" down ") != std::string::npos;
    }
    EXPECT_TRUE(row) << text->out;
    // Whole rounds over every file with the node unreachable.
    auto start = Clock::now();
    ASSERT_TRUE(reader.waitRounds(2))
        << "reader stuck with the node cut off: " << reader.firstError();
    phase("2 reader rounds with the node cut off", start);
  }

  // Keeps the link down a while longer: long enough for the TCP connections
  // to the node to back off their retransmissions for seconds, and for the
  // node's own heartbeats to time out several times.
  void holdCut(std::chrono::seconds how_long) {
    auto start = Clock::now();
    std::this_thread::sleep_for(how_long);
    phase("link held down", start);
  }

  void heal() {
    Status s = tc_->isolation()->setLinkUp(true);
    ASSERT_TRUE(s.isOk()) << s.toString();
    std::printf("link %s up\n", tc_->isolation()->hostLink().c_str());
    ASSERT_TRUE(waitForState(*tc_, isolated_address_, "up"));
  }

  // The healed node stays up: `sluice status` shows it up every 200 ms for
  // several heartbeat timeouts, and meta marked nothing down but the cut.
  void expectStaysUp(std::chrono::seconds how_long) {
    auto start = Clock::now();
    int polls = 0;
    while (Clock::now() - start < how_long) {
      std::string state = nodeState(*tc_, isolated_address_);
      ASSERT_EQ(state, "up") << "the healed node flapped, " << polls * 200 << " ms after it came back";
      ++polls;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    phase("stayed up after the heal", start);
    EXPECT_EQ(countLines(tc_->dir() + "/meta.log", "missed heartbeats; marked down"), 1)
        << "meta marked a node down other than at the cut";
  }

  void expectReaderClean(const ReaderLoop& reader) {
    EXPECT_EQ(reader.errors(), 0) << "first: " << reader.firstError();
    EXPECT_EQ(reader.mismatches(), 0);
    std::printf(
        "reader: %d rounds, %llu reads, %llu failovers, slowest read %lld ms (client timeout %lld "
        "ms)\n",
        reader.rounds(), static_cast<unsigned long long>(reader.reads()),
        static_cast<unsigned long long>(reader.failovers()),
        static_cast<long long>(reader.slowestReadMs()),
        static_cast<long long>(kClientTimeout.count()));
  }

  std::unique_ptr<TestCluster> tc_;
  std::unique_ptr<client::Cluster> conn_;
  Dataset ds_;
  std::string isolated_address_;
  std::map<std::string, std::set<int>> before_;
};

TEST_F(NetnsPartition, NodeCutOffIsMarkedDownAndComesBackWhenHealedBeforeRepair) {
  startCluster("10m");  // no repair within this test
  if (IsSkipped() || HasFatalFailure()) return;
  ReaderLoop reader(*tc_, ds_);
  cutOff(reader);
  if (HasFatalFailure()) return;
  holdCut(std::chrono::seconds(8));  // 4 heartbeat timeouts
  heal();
  if (HasFatalFailure()) return;
  expectStaysUp(std::chrono::seconds(8));
  if (HasFatalFailure()) return;
  // Reads stay correct with the node back (the reader may use it again).
  ASSERT_TRUE(reader.waitRounds(2)) << reader.firstError();
  reader.stop();
  expectReaderClean(reader);

  // Nothing moved: the same two copies of every chunk, and no repair ran.
  auto m = listMoves(*conn_);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->moves_done, 0u);
  EXPECT_TRUE(m->moves.empty());
  EXPECT_EQ(chunkCopies(*tc_, 3), before_);
  ds_.expectReadsBack(*tc_);

  // A restart keeps the node in its namespace (its address exists only there).
  ASSERT_TRUE(tc_->kill("node" + std::to_string(kIsolated)).isOk());
  Status s = tc_->restart("node" + std::to_string(kIsolated));
  ASSERT_TRUE(s.isOk()) << s.toString();
  ASSERT_TRUE(waitForState(*tc_, isolated_address_, "up"));
}

TEST_F(NetnsPartition, NodeCutOffPastRepairGraceIsRepairedAndCleanedWhenHealed) {
  startCluster("3s");
  if (IsSkipped() || HasFatalFailure()) return;
  ReaderLoop reader(*tc_, ds_);
  cutOff(reader);
  if (HasFatalFailure()) return;

  // Past the grace period its stripes are copied to the other two nodes.
  auto start = Clock::now();
  auto deadline = start + std::chrono::seconds(90);
  for (;;) {
    auto m = listMoves(*conn_);
    ASSERT_NE(m, nullptr);
    if (m->moves_done > 0 && m->moves.empty()) break;
    ASSERT_LT(Clock::now(), deadline)
        << "repair did not finish: " << m->moves.size() << " moves pending";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  phase("repair done", start);
  // Two live copies of everything (the cut-off node still has its own on disk).
  auto repaired = chunkCopies(*tc_, 3);
  for (const auto& [chunk, nodes] : before_) {
    std::set<int> live = repaired[chunk];
    live.erase(kIsolated);
    EXPECT_EQ(live.size(), 2u) << chunk;
  }
  ASSERT_TRUE(conn_->refreshMap().isOk());
  auto map = conn_->map();
  for (uint32_t s = 0; s < map->stripeCount(); ++s) {
    auto nodes = map->stripeNodes(s, 2);
    EXPECT_EQ(nodes.size(), 2u) << "stripe " << s;
    EXPECT_EQ(std::count(nodes.begin(), nodes.end(), client::NodeId{kIsolated}), 0)
        << "stripe " << s;
  }
  ASSERT_TRUE(reader.waitRounds(1)) << reader.firstError();

  // Healed: the node is up again and deletes what it no longer holds.
  heal();
  if (HasFatalFailure()) return;
  start = Clock::now();
  deadline = start + std::chrono::seconds(90);
  for (;;) {
    auto m = listMoves(*conn_);
    ASSERT_NE(m, nullptr);
    if (m->cleanups == 0) break;
    ASSERT_LT(Clock::now(), deadline)
        << m->cleanups << " cleanups did not finish after the link came back";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  phase("cleanups done", start);
  // Meta's cleanup calls to the node share its connections: it stays up meanwhile.
  expectStaysUp(std::chrono::seconds(6));
  if (HasFatalFailure()) return;
  ASSERT_TRUE(reader.waitRounds(2)) << reader.firstError();
  reader.stop();
  expectReaderClean(reader);
  // Neither three copies nor one: exactly two of every chunk, none lost.
  auto after = chunkCopies(*tc_, 3);
  EXPECT_EQ(after.size(), before_.size());
  for (const auto& [chunk, nodes] : after) EXPECT_EQ(nodes.size(), 2u) << chunk;
  ds_.expectReadsBack(*tc_);
}

// shm goes through /dev/shm, which network namespaces share: a cut would
// not cut anything, so the dev cluster refuses the combination up front.
TEST(DevClusterNetworks, ShmProviderRefusesNodeNamespaces) {
  TempDir dir;
  tools::DevClusterOptions o;
  o.dir = dir.path() + "/cluster";
  o.provider = "shm";
  o.node_networks[1] = tools::NodeNetwork{"slnone", "10.0.0.2"};
  auto r = tools::devUp(o);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("/dev/shm"), std::string::npos) << r.status().toString();
  EXPECT_NE(r.status().message().find("tcp;ofi_rxm"), std::string::npos) << r.status().toString();
  EXPECT_FALSE(fs::exists(o.dir)) << "nothing is started or created";
}

}  // namespace
}  // namespace sluice::testing
