// Repair end to end, with real daemons: a storage node killed during a read
// loop (replication 2 on 3 nodes) costs no read errors; after the grace
// period sluice-meta copies its stripes node to node, so every chunk has two
// live copies again; when the node comes back, the copies it no longer
// needs are deleted, so no chunk is left with three.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>

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

// chunk id (file name) -> the storage nodes (1-based) holding it.
std::map<std::string, std::set<int>> chunkCopies(const TestCluster& c, int nodes) {
  std::map<std::string, std::set<int>> out;
  for (int i = 1; i <= nodes; ++i) {
    for (const auto& f : c.chunkFiles(i)) out[fs::path(f).filename().string()].insert(i);
  }
  return out;
}

std::unique_ptr<meta::ListMovesResponseT> listMoves(client::Cluster& c) {
  meta::ListMovesRequestT req;
  auto r = c.meta<meta::ListMovesRequest, meta::ListMovesResponse>(meta::MetaMethod::ListMoves, req, "ListMoves");
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return r.isOk() ? std::move(*r) : nullptr;
}

// Waits (up to a minute) until no cleanup is pending.
void waitForCleanups(client::Cluster& c) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto m = listMoves(c);
    ASSERT_NE(m, nullptr);
    if (m->cleanups == 0) return;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << m->cleanups << " cleanups still pending";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// Every file of `src` reads back byte-identical from dataset@version.
void expectReadsBack(client::Cluster& c, const std::string& dataset, const std::string& src,
                     const std::string& version = "v1") {
  auto r = client::DatasetReader::open(c, dataset, version);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  for (const auto& f : listFiles(src)) {
    auto info = (*r)->stat(f);
    ASSERT_TRUE(info.isOk()) << f << ": " << info.status().toString();
    auto data = (*r)->readAll(*info);
    ASSERT_TRUE(data.isOk()) << f << ": " << data.status().toString();
    EXPECT_EQ(std::string(data->begin(), data->end()), readFile(fs::path(src) / f)) << f;
  }
}

// The chunks dataset@version's files are stored in.
std::set<std::string> versionChunks(client::Cluster& c, const std::string& dataset, const std::string& version,
                                    const std::string& src) {
  std::set<std::string> out;
  auto r = client::DatasetReader::open(c, dataset, version);
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  if (!r.isOk()) return out;
  for (const auto& f : listFiles(src)) {
    auto info = (*r)->stat(f);
    EXPECT_TRUE(info.isOk()) << f;
    if (!info.isOk()) continue;
    for (const auto& e : info->extents) out.insert(e.chunk.toHex());
  }
  return out;
}

// chunk_size 0: the cluster's default (4 MiB).
void createDataset(client::Cluster& c, const std::string& name, uint32_t replication,
                   uint32_t chunk_size = 0) {
  meta::CreateDatasetRequestT create;
  create.name = name;
  create.replication = replication;
  create.chunk_size = chunk_size;
  auto r = c.meta<meta::CreateDatasetRequest, meta::CreateDatasetResponse>(meta::MetaMethod::CreateDataset, create,
                                                                           "CreateDataset");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
}

// A chunk's stripe follows from its id, so with a node down most stripes
// have a dead replica; the uploader salts such chunks onto stripes whose
// replicas all answer. Before meta notices the death (puts fail and are
// placed again) and after (the map says down), every new chunk gets both
// copies on live nodes, and gc later drops the copies of failed attempts.
TEST(Repair, UploadsKeepWorkingWhileANodeIsDown) {
  TestCluster::Options o;
  o.nodes = 3;
  o.replication = 2;
  o.extra_meta_args = {"--heartbeat_timeout", "2s"};
  auto cluster = TestCluster::start(o);
  ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
  TestCluster& tc = **cluster;
  auto conn = tc.connect();
  ASSERT_TRUE(conn.isOk());
  client::Cluster& c = **conn;
  // Small chunks, so each upload has ~150: with 4 MiB ones, an upload of a
  // few chunks could miss node 2's stripes by chance (about 1 in 27 for
  // three), and nothing would fail over.
  createDataset(c, "up", 2, 64u << 10);
  auto writeTree = [&](const std::string& dir, int seed) {
    for (int i = 0; i < 40; ++i) {
      writeFile(fs::path(dir) / ("f" + std::to_string(i)), makeContent(30000 + static_cast<size_t>(i) * 4099, seed * 100 + i));
    }
    writeFile(fs::path(dir) / "large.bin", makeContent(size_t{6} << 20, seed * 100 + 99));
  };
  const std::string src1 = tc.dir() + "/src1", src2 = tc.dir() + "/src2", src3 = tc.dir() + "/src3";
  writeTree(src1, 1);
  writeTree(src2, 2);
  writeTree(src3, 3);
  ASSERT_TRUE(client::uploadDirectory(c, src1, "up", client::UploadOptions{}).isOk());

  // Killed, and meta does not know yet: puts to node 2 fail and move.
  ASSERT_TRUE(tc.kill("node2").isOk());
  auto v2 = client::uploadDirectory(c, src2, "up", client::UploadOptions{});
  ASSERT_TRUE(v2.isOk()) << v2.status().toString();
  EXPECT_GT(v2->replaced_chunks, 0u);

  // Once meta marks it down, placement avoids it without trying.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (bool down = false; !down;) {
    ASSERT_TRUE(c.refreshMap().isOk());
    for (const auto& n : c.map()->nodes()) down |= n.state == meta::NodeState::Down;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "node 2 never marked down";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  auto v3 = client::uploadDirectory(c, src3, "up", client::UploadOptions{});
  ASSERT_TRUE(v3.isOk()) << v3.status().toString();
  EXPECT_GT(v3->replaced_chunks, 0u);

  expectReadsBack(c, "up", src1, "v1");
  expectReadsBack(c, "up", src2, "v2");
  expectReadsBack(c, "up", src3, "v3");
  // Every chunk of v2 and v3 has its two copies on the live nodes 1 and 3.
  auto copies = chunkCopies(tc, 3);
  for (const auto& [version, src] : {std::pair{"v2", src2}, std::pair{"v3", src3}}) {
    auto chunks = versionChunks(c, "up", version, src);
    ASSERT_FALSE(chunks.empty());
    for (const auto& id : chunks) {
      EXPECT_EQ(copies[id], (std::set<int>{1, 3})) << version << " chunk " << id;
    }
  }

  // The puts that landed before a failure left copies no version names; gc
  // finds them on the nodes and deletes them, and nothing else.
  ASSERT_TRUE(tc.restart("node2").isOk());
  std::set<std::string> named;
  for (const auto& [version, src] : {std::pair{"v1", src1}, std::pair{"v2", src2}, std::pair{"v3", src3}}) {
    auto chunks = versionChunks(c, "up", version, src);
    named.insert(chunks.begin(), chunks.end());
  }
  size_t orphans = 0;
  for (const auto& [id, nodes] : chunkCopies(tc, 3)) orphans += named.count(id) ? 0 : nodes.size();
  EXPECT_GT(orphans, 0u);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (bool up = false; !up;) {
    ASSERT_TRUE(c.refreshMap().isOk());
    up = true;
    for (const auto& n : c.map()->nodes()) up &= n.state == meta::NodeState::Up;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "node 2 never came back up";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  auto gc = tc.runCli({"gc", "--orphan-grace", "0"});
  ASSERT_TRUE(gc.isOk());
  EXPECT_EQ(gc->exit_code, 0) << gc->err;
  EXPECT_NE(gc->out.find(std::to_string(orphans) + " orphan copies deleted"), std::string::npos) << gc->out;
  for (const auto& [id, nodes] : chunkCopies(tc, 3)) EXPECT_TRUE(named.count(id)) << "orphan left: " << id;
  expectReadsBack(c, "up", src1, "v1");
  expectReadsBack(c, "up", src2, "v2");
  expectReadsBack(c, "up", src3, "v3");
}

// A node that hangs mid-repair (SIGSTOP: its connections stay open, nothing
// answers) must not hold up the rest of the repair until its calls time out:
// moves between the other nodes finish meanwhile, and once meta sees it down
// the copies to or from it are abandoned and planned anew with live nodes.
// When it resumes, everything ends with two copies.
TEST(Repair, RepairGoesOnWhileACopyTargetHangs) {
  TestCluster::Options o;
  o.nodes = 4;
  o.replication = 2;
  o.extra_meta_args = {"--heartbeat_timeout", "2s", "--repair_grace", "1s", "--repair_rate", "2M"};
  auto cluster = TestCluster::start(o);
  ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
  TestCluster& tc = **cluster;
  auto conn = tc.connect();
  ASSERT_TRUE(conn.isOk());
  client::Cluster& c = **conn;
  createDataset(c, "hang", 2);
  const std::string src = tc.dir() + "/src";
  for (int i = 0; i < 200; ++i) {
    writeFile(fs::path(src) / ("f" + std::to_string(i)), makeContent(60000 + static_cast<size_t>(i) * 977, i + 7));
  }
  ASSERT_TRUE(client::uploadDirectory(c, src, "hang", client::UploadOptions{}).isOk());
  const pid_t node4 = tc.state().nodes[3].pid;
  ASSERT_GT(node4, 0);
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{node4};

  ASSERT_TRUE(tc.kill("node1").isOk());
  // Wait for copies to start, then freeze node 4.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto m = listMoves(c);
    ASSERT_NE(m, nullptr);
    if (!m->moves.empty() || m->moves_done > 0) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no repair was planned";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(::kill(node4, SIGSTOP), 0);
  // Every move between live nodes finishes while node 4 hangs, including
  // those planned anew after it was marked down (the copy timeout is 30
  // minutes: only abandoning the hung copies gets there).
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  bool node4_down = false;
  uint64_t done = 0;
  for (;;) {
    auto m = listMoves(c);
    ASSERT_NE(m, nullptr);
    ASSERT_TRUE(c.refreshMap().isOk());
    auto map = c.map();
    auto up = [&](uint64_t id) {
      const client::NodeEntry* n = map->node(id);
      return n != nullptr && n->state == meta::NodeState::Up;
    };
    node4_down = node4_down || !up(4);
    bool waiting = false;
    for (const auto& mv : m->moves) waiting |= up(mv->to) && up(mv->source);
    if (node4_down && !waiting) {
      done = m->moves_done;
      break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "moves between live nodes stalled behind the hung one";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_GT(done, 0u);

  ASSERT_EQ(::kill(node4, SIGCONT), 0);
  ASSERT_TRUE(tc.runCli({"repair", "--timeout", "120", "-q"}).isOk());
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    auto m = listMoves(c);
    ASSERT_NE(m, nullptr);
    // (Cleanups of node 1 wait for it to return; the moves are the repair.)
    if (m->moves.empty()) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "repair did not finish after node 4 resumed: " << m->moves.size() << " moves pending, first stripe "
        << m->moves[0]->stripe << " " << m->moves[0]->from << " -> " << m->moves[0]->to;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // Node 1 is gone: every chunk is on both nodes the map now gives it (a
  // partial copy an abandoned move left on node 4 goes with its cleanup).
  ASSERT_TRUE(c.refreshMap().isOk());
  auto final_map = c.map();
  for (const auto& [chunk, nodes] : chunkCopies(tc, 4)) {
    auto id = Hash128::fromHex(chunk);
    ASSERT_TRUE(id.has_value());
    for (client::NodeId n : final_map->replicasOf(*id, 2)) {
      EXPECT_NE(n, 1u) << chunk;
      EXPECT_TRUE(nodes.count(static_cast<int>(n))) << chunk << " missing on node " << n;
    }
  }
  expectReadsBack(c, "hang", src);
}

TEST(Repair, DeadNodeIsRepairedAfterTheGracePeriodAndCleanedWhenItReturns) {
  TestCluster::Options o;
  o.nodes = 3;
  o.replication = 2;
  o.extra_meta_args = {"--heartbeat_timeout", "2s", "--repair_grace", "3s"};
  auto cluster = TestCluster::start(o);
  ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
  TestCluster& tc = **cluster;
  auto conn = tc.connect();
  ASSERT_TRUE(conn.isOk());
  client::Cluster& c = **conn;

  std::string src = tc.dir() + "/src";
  for (int i = 0; i < 60; ++i) {
    writeFile(fs::path(src) / ("f" + std::to_string(i)), makeContent(50000 + static_cast<size_t>(i) * 7919, i + 1));
  }
  writeFile(fs::path(src) / "large.bin", makeContent(size_t{12} << 20, 99));
  meta::CreateDatasetRequestT create;
  create.name = "rep";
  create.replication = 2;
  ASSERT_TRUE((c.meta<meta::CreateDatasetRequest, meta::CreateDatasetResponse>(
                   meta::MetaMethod::CreateDataset, create, "CreateDataset"))
                  .isOk());
  ASSERT_TRUE(client::uploadDirectory(c, src, "rep", client::UploadOptions{}).isOk());
  auto before = chunkCopies(tc, 3);
  ASSERT_GT(before.size(), 5u);
  for (const auto& [chunk, nodes] : before) ASSERT_EQ(nodes.size(), 2u) << chunk;

  // Readers loop over every file while node 2 dies and its stripes move.
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, mismatches{0}, rounds{0};
  std::thread reader([&] {
    auto rc = tc.connect();
    if (!rc.isOk()) {
      errors++;
      return;
    }
    auto r = client::DatasetReader::open(**rc, "rep", "v1");
    if (!r.isOk()) {
      errors++;
      return;
    }
    auto files = listFiles(src);
    while (!stop) {
      for (const auto& f : files) {
        auto info = (*r)->stat(f);
        auto data = info.isOk() ? (*r)->readAll(*info) : Result<std::vector<uint8_t>>(info.status());
        if (!data.isOk()) {
          errors++;
          continue;
        }
        std::string expected = readFile(fs::path(src) / f);
        if (std::string(data->begin(), data->end()) != expected) mismatches++;
      }
      rounds++;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(tc.kill("node2").isOk());

  // Down after 2 s of silence, repaired 3 s later: wait for the moves.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  uint64_t done = 0;
  for (;;) {
    auto m = listMoves(c);
    ASSERT_NE(m, nullptr);
    done = m->moves_done;
    if (done > 0 && m->moves.empty()) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "repair did not finish";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  int seen = rounds.load();
  while (rounds.load() < seen + 1) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  reader.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_GE(rounds.load(), 2);

  // Every chunk has two copies on the live nodes.
  auto repaired = chunkCopies(tc, 3);
  for (const auto& [chunk, nodes] : before) {
    std::set<int> live = repaired[chunk];
    live.erase(2);
    EXPECT_EQ(live.size(), 2u) << chunk;
  }
  // And the map agrees: node 2 holds none of any stripe's first two slots
  // (the ones replication 2 uses).
  ASSERT_TRUE(c.refreshMap().isOk());
  auto map = c.map();
  for (uint32_t s = 0; s < map->stripeCount(); ++s) {
    auto nodes = map->stripeNodes(s, 2);
    EXPECT_EQ(nodes.size(), 2u) << "stripe " << s;
    EXPECT_EQ(std::count(nodes.begin(), nodes.end(), client::NodeId{2}), 0) << "stripe " << s;
  }
  auto status = tc.runCli({"repair", "--status"});
  ASSERT_TRUE(status.isOk());
  EXPECT_EQ(status->exit_code, 0) << status->err;
  EXPECT_NE(status->out.find("0 moves pending"), std::string::npos) << status->out;

  // Node 2 returns: what it no longer needs is deleted; nothing has three copies.
  ASSERT_TRUE(tc.restart("node2").isOk());
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto m = listMoves(c);
    ASSERT_NE(m, nullptr);
    if (m->cleanups == 0) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "cleanups did not finish";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (const auto& [chunk, nodes] : chunkCopies(tc, 3)) EXPECT_EQ(nodes.size(), 2u) << chunk;
  // Everything still reads back.
  expectReadsBack(c, "rep", src);
}

TEST(Repair, DrainMovesEveryStripeOffANodeThenRemoveIsAllowed) {
  TestCluster::Options o;
  o.nodes = 4;
  o.replication = 2;
  auto cluster = TestCluster::start(o);
  ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
  TestCluster& tc = **cluster;
  std::string src = tc.dir() + "/src";
  for (int i = 0; i < 40; ++i) {
    writeFile(fs::path(src) / ("f" + std::to_string(i)), makeContent(80000 + static_cast<size_t>(i) * 4099, i + 7));
  }
  writeFile(fs::path(src) / "large.bin", makeContent(size_t{9} << 20, 5));
  auto r = tc.runCli({"dataset", "create", "dr", "--replication", "2"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0);
  r = tc.runCli({"put", src, "dr", "-q"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0);
  // Chunk salts are random: drain the node holding the most chunks.
  int victim = 1;
  for (int i = 2; i <= 4; ++i) {
    if (tc.chunkFiles(i).size() > tc.chunkFiles(victim).size()) victim = i;
  }
  const std::string id = std::to_string(victim);
  ASSERT_FALSE(tc.chunkFiles(victim).empty());

  // Removing a node that holds data is refused, saying what to do.
  r = tc.runCli({"node", "remove", id});
  ASSERT_TRUE(r.isOk());
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->err.find("sluice node drain " + id), std::string::npos) << r->err;

  auto conn = tc.connect();
  ASSERT_TRUE(conn.isOk());
  auto reader = client::DatasetReader::open(**conn, "dr", "v1");
  ASSERT_TRUE(reader.isOk());
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::thread loop([&] {
    auto files = listFiles(src);
    while (!stop) {
      for (const auto& f : files) {
        auto info = (*reader)->stat(f);
        auto data = info.isOk() ? (*reader)->readAll(*info) : Result<std::vector<uint8_t>>(info.status());
        if (!data.isOk() || std::string(data->begin(), data->end()) != readFile(fs::path(src) / f)) errors++;
      }
    }
  });
  r = tc.runCli({"node", "drain", id, "--timeout", "120", "-q"});
  stop = true;
  loop.join();
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err << r->out;
  EXPECT_EQ(errors.load(), 0);
  // The node left every stripe, so its copies are deleted (by the cleanups
  // that follow the drain); the others hold two of each.
  waitForCleanups(**conn);
  EXPECT_TRUE(tc.chunkFiles(victim).empty()) << tc.chunkFiles(victim).size() << " chunks left on node " << id;
  for (const auto& [chunk, nodes] : chunkCopies(tc, 4)) {
    EXPECT_EQ(nodes.size(), 2u) << chunk;
    EXPECT_EQ(nodes.count(victim), 0u) << chunk;
  }
  r = tc.runCli({"node", "remove", id});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  r = tc.runCli({"get", "dr@v1", tc.dir() + "/back", "-q"});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  for (const auto& f : listFiles(src)) EXPECT_EQ(readFile(tc.dir() + "/back/" + f), readFile(fs::path(src) / f)) << f;
}

TEST(Repair, AddedNodeIsRebalancedWhileAReaderLoopsAndUploadsGoOn) {
  TestCluster::Options o;
  o.nodes = 3;
  o.replication = 2;
  auto cluster = TestCluster::start(o);
  ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
  TestCluster& tc = **cluster;
  std::string src = tc.dir() + "/src";
  for (int i = 0; i < 60; ++i) {
    writeFile(fs::path(src) / ("f" + std::to_string(i)), makeContent(70000 + static_cast<size_t>(i) * 5003, i + 3));
  }
  writeFile(fs::path(src) / "large.bin", makeContent(size_t{10} << 20, 17));
  // 1 MiB chunks: ~15 of them, so some surely sit in the stripes that move
  // to the new node (with 4 MiB chunks, none did one run in ~3000).
  auto r = tc.runCli({"dataset", "create", "rb", "--replication", "2", "--chunk-size", "1M"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0);
  r = tc.runCli({"put", src, "rb", "-q"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0);

  auto added = tc.addNode();
  ASSERT_TRUE(added.isOk()) << added.status().toString();
  r = tc.runCli({"rebalance", "plan"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err;
  EXPECT_NE(r->out.find("plan:"), std::string::npos) << r->out;
  EXPECT_EQ(r->out.find("plan: 0 stripe moves"), std::string::npos) << r->out;
  std::printf("%s", r->out.c_str());  // the before/after report

  auto conn = tc.connect();
  ASSERT_TRUE(conn.isOk());
  auto reader = client::DatasetReader::open(**conn, "rb", "v1");
  ASSERT_TRUE(reader.isOk());
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, rounds{0};
  std::thread loop([&] {
    auto files = listFiles(src);
    while (!stop) {
      for (const auto& f : files) {
        auto info = (*reader)->stat(f);
        auto data = info.isOk() ? (*reader)->readAll(*info) : Result<std::vector<uint8_t>>(info.status());
        if (!data.isOk() || std::string(data->begin(), data->end()) != readFile(fs::path(src) / f)) errors++;
      }
      rounds++;
    }
  });
  // Uploads go on meanwhile: each version's chunks must end on the nodes the
  // map names, whichever epoch the uploader placed them with.
  std::atomic<bool> stop_uploads{false};
  std::atomic<int> upload_errors{0};
  std::vector<std::string> upload_srcs;
  std::thread uploads([&] {
    auto uc = tc.connect();
    if (!uc.isOk()) {
      upload_errors++;
      return;
    }
    for (int v = 0; !stop_uploads && v < 30; ++v) {
      std::string dir = tc.dir() + "/up" + std::to_string(v);
      for (int i = 0; i < 12; ++i) {
        writeFile(fs::path(dir) / ("g" + std::to_string(i)), makeContent(90000 + static_cast<size_t>(i) * 331, 1000 * v + i));
      }
      auto u = client::uploadDirectory(**uc, dir, "rb", client::UploadOptions{});
      if (!u.isOk()) {
        std::printf("upload %d: %s\n", v, u.status().toString().c_str());
        upload_errors++;
        continue;
      }
      upload_srcs.push_back(dir);
    }
  });
  r = tc.runCli({"rebalance", "apply", "--rate", "1M", "--timeout", "120", "-q"});
  stop_uploads = true;
  uploads.join();
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err << r->out;
  EXPECT_EQ(upload_errors.load(), 0);
  EXPECT_GE(upload_srcs.size(), 2u);
  std::printf("%zu versions uploaded during the rebalance\n", upload_srcs.size());
  // The old copies go once the map has switched.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto m = listMoves(**conn);
    ASSERT_NE(m, nullptr);
    if (m->moves.empty() && m->cleanups == 0) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "cleanups did not finish";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  int seen = rounds.load();
  while (rounds.load() < seen + 1) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  loop.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_FALSE(tc.chunkFiles(4).empty());
  auto copies = chunkCopies(tc, 4);
  std::set<std::string> v1_chunks = versionChunks(**conn, "rb", "v1", src);
  for (const auto& id : v1_chunks) EXPECT_EQ(copies[id].size(), 2u) << id;
  // Every uploaded version reads back, and each of its chunks is on every
  // node the map gives its stripe.
  ASSERT_TRUE((*conn)->refreshMap().isOk());
  auto map = (*conn)->map();
  for (size_t v = 0; v < upload_srcs.size(); ++v) {
    const std::string version = "v" + std::to_string(v + 2);
    expectReadsBack(**conn, "rb", upload_srcs[v], version);
    for (const auto& id : versionChunks(**conn, "rb", version, upload_srcs[v])) {
      auto chunk = Hash128::fromHex(id);
      ASSERT_TRUE(chunk.has_value());
      for (client::NodeId n : map->replicasOf(*chunk, 2)) {
        EXPECT_TRUE(copies[id].count(static_cast<int>(n))) << version << " chunk " << id << " missing on node " << n;
      }
    }
  }
  // Evened out: a new plan has (almost) nothing left to move.
  r = tc.runCli({"--json", "rebalance", "plan"});
  ASSERT_TRUE(r.isOk());
  EXPECT_NE(r->out.find("\"moves\":0"), std::string::npos) << r->out;
  std::printf("after: %s", r->out.c_str());
}

// Waits (up to 30 s) until meta reports node `id` in `state`.
void waitForNodeState(client::Cluster& c, client::NodeId id, meta::NodeState state) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    ASSERT_TRUE(c.refreshMap().isOk());
    const client::NodeEntry* n = c.map()->node(id);
    if (n != nullptr && n->state == state) return;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "node " << id << " never reached the state";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// Data slots (the first `replication` of each stripe) per node, from meta's map.
std::map<client::NodeId, int> dataSlotsHeld(client::Cluster& c, uint32_t replication) {
  std::map<client::NodeId, int> held;
  EXPECT_TRUE(c.refreshMap().isOk());
  auto map = c.map();
  for (uint32_t s = 0; s < map->stripeCount(); ++s) {
    for (client::NodeId n : map->stripeNodes(s, replication)) held[n]++;
  }
  return held;
}

// A node back after repair (swapped past every stripe's data slots) is an
// empty node: rebalance fills it until the data slots are even, and uploads
// reach it again. Then, with a node down and only two up for replication 2,
// draining one is refused up front; with three up, a drain can be called off.
TEST(Repair, ANodeBackFromRepairIsRebalancedAndDrainsNeedRoomAndCanBeCalledOff) {
  TestCluster::Options o;
  o.nodes = 3;
  o.replication = 2;
  o.extra_meta_args = {"--heartbeat_timeout", "2s", "--repair_grace", "1s"};
  auto cluster = TestCluster::start(o);
  ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
  TestCluster& tc = **cluster;
  auto conn = tc.connect();
  ASSERT_TRUE(conn.isOk());
  client::Cluster& c = **conn;
  std::string src = tc.dir() + "/src";
  for (int i = 0; i < 20; ++i) writeFile(fs::path(src) / ("f" + std::to_string(i)), makeContent(60000, i + 1));
  createDataset(c, "back", 2, 1 << 20);
  ASSERT_TRUE(client::uploadDirectory(c, src, "back", client::UploadOptions{}).isOk());

  ASSERT_TRUE(tc.kill("node2").isOk());
  waitForNodeState(c, 2, meta::NodeState::Down);
  auto r = tc.runCli({"repair", "--timeout", "60", "-q"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err;
  ASSERT_EQ(dataSlotsHeld(c, 2)[2], 0);
  ASSERT_TRUE(tc.restart("node2").isOk());
  waitForNodeState(c, 2, meta::NodeState::Up);
  waitForCleanups(c);
  r = tc.runCli({"status"});
  ASSERT_TRUE(r.isOk());
  std::printf("%s", r->out.c_str());

  r = tc.runCli({"rebalance", "plan"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err;
  EXPECT_EQ(r->out.find("plan: 0 stripe moves"), std::string::npos) << r->out;
  // Node 2's row estimates the bytes it will hold, not 0 B.
  const size_t row = r->out.find("\n   2 ");
  ASSERT_NE(row, std::string::npos) << r->out;
  const std::string line = r->out.substr(row + 1, r->out.find('\n', row + 1) - row - 1);
  EXPECT_NE(line.substr(line.size() - 4), " 0 B") << r->out;
  r = tc.runCli({"rebalance", "apply", "--timeout", "60"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err << r->out;
  EXPECT_EQ(r->err.find("repair"), std::string::npos) << "progress labelled as a repair: " << r->err;
  auto held = dataSlotsHeld(c, 2);
  const auto [lo, hi] = std::minmax({held[1], held[2], held[3]});
  EXPECT_LE(hi - lo, 1) << held[1] << " " << held[2] << " " << held[3];
  // STRIPES counts the stripes whose data the node holds.
  r = tc.runCli({"--json", "status"});
  ASSERT_TRUE(r.isOk());
  EXPECT_NE(r->out.find("\"id\":2,"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("\"stripes\":" + std::to_string(held[2]) + ","), std::string::npos) << r->out;
  // New uploads reach node 2 again. With 64 KiB chunks each 60 KB file of
  // random bytes is a chunk of its own; node 2 holds data slots in ~43 of
  // the 64 stripes, so the chance that none of the 40 lands there is
  // (21/64)^40, about 4e-20. With the dataset's 1 MiB chunks (two chunks)
  // it was one run in nine.
  waitForCleanups(c);
  const size_t on_node2 = tc.chunkFiles(2).size();
  std::string src2 = tc.dir() + "/src2";
  for (int i = 0; i < 40; ++i) writeFile(fs::path(src2) / ("g" + std::to_string(i)), makeContent(60000, i + 100));
  createDataset(c, "back-small-chunks", 2, 64 << 10);
  ASSERT_TRUE(client::uploadDirectory(c, src2, "back-small-chunks", client::UploadOptions{}).isOk());
  EXPECT_GT(tc.chunkFiles(2).size(), on_node2);
  expectReadsBack(c, "back", src);

  // Node 3 down: nodes 1 and 2 are all there is for replication 2.
  ASSERT_TRUE(tc.kill("node3").isOk());
  waitForNodeState(c, 3, meta::NodeState::Down);
  r = tc.runCli({"node", "drain", "2", "--no-wait"});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 4) << r->out;
  EXPECT_NE(r->err.find("cannot be drained"), std::string::npos) << r->err;
  waitForNodeState(c, 2, meta::NodeState::Up);

  // Node 3 back: a drain starts, and is called off.
  ASSERT_TRUE(tc.restart("node3").isOk());
  waitForNodeState(c, 3, meta::NodeState::Up);
  r = tc.runCli({"node", "drain", "2", "--no-wait"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err;
  waitForNodeState(c, 2, meta::NodeState::Draining);
  r = tc.runCli({"node", "--help"});
  ASSERT_TRUE(r.isOk());
  EXPECT_NE(r->out.find("undrain"), std::string::npos) << r->out;
  r = tc.runCli({"node", "undrain", "2"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err;
  waitForNodeState(c, 2, meta::NodeState::Up);
  auto m = listMoves(c);
  ASSERT_NE(m, nullptr);
  for (const auto& move : m->moves) EXPECT_NE(move->from, 2u) << "stripe " << move->stripe;
  expectReadsBack(c, "back", src);

  // A node joins; node 3 goes down again and is repaired: the cleanups it
  // owes wait for it. Node 2 is drained: the drain ends once node 2's data
  // is on nodes 1 and 4, whatever node 3 still owes, and node 2 can be
  // removed. (The test cluster adds a node only while all are up.)
  auto added = tc.addNode();
  ASSERT_TRUE(added.isOk()) << added.status().toString();
  ASSERT_TRUE(tc.kill("node3").isOk());
  waitForNodeState(c, 3, meta::NodeState::Down);
  r = tc.runCli({"repair", "--timeout", "60", "-q"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err;
  m = listMoves(c);
  ASSERT_NE(m, nullptr);
  EXPECT_GT(m->cleanups, 0u) << "node 3 owes no cleanups: the drain below proves nothing";
  r = tc.runCli({"node", "drain", "2", "--timeout", "60", "-q"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err << r->out;
  r = tc.runCli({"node", "remove", "2"});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  r = tc.runCli({"status"});
  ASSERT_TRUE(r.isOk());
  EXPECT_NE(r->out.find("nodes   2 up of 3 "), std::string::npos) << r->out;  // node 2 removed: not counted
  expectReadsBack(c, "back", src);
}

TEST(Repair, MetaKilledMidRebalanceFinishesOnRestart) {
  TestCluster::Options o;
  o.nodes = 3;
  o.replication = 2;
  auto cluster = TestCluster::start(o);
  ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
  TestCluster& tc = **cluster;
  std::string src = tc.dir() + "/src";
  for (int i = 0; i < 30; ++i) {
    writeFile(fs::path(src) / ("f" + std::to_string(i)), makeContent(90000 + static_cast<size_t>(i) * 3001, i + 11));
  }
  writeFile(fs::path(src) / "large.bin", makeContent(size_t{14} << 20, 23));
  // 1 MiB chunks: ~18 of them, so the stripes the new node takes hold some
  // (with ~5 chunks of 4 MiB, salted anywhere, now and then none did).
  auto r = tc.runCli({"dataset", "create", "mk", "--replication", "2", "--chunk-size", "1M"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0) << (r.isOk() ? r->err : r.status().toString());
  r = tc.runCli({"put", src, "mk", "-q"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0);
  ASSERT_GE(chunkCopies(tc, 3).size(), 12u);
  ASSERT_TRUE(tc.addNode().isOk());
  // Slow copies, so sluice-meta dies with moves done and moves pending.
  r = tc.runCli({"rebalance", "apply", "--rate", "2M", "--no-wait"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err;
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(tc.kill("meta").isOk());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(tc.restart("meta").isOk());
  auto conn = tc.connect();
  ASSERT_TRUE(conn.isOk()) << conn.status().toString();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    auto m = listMoves(**conn);
    ASSERT_NE(m, nullptr);
    if (m->moves.empty() && m->cleanups == 0) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the rebalance did not finish after the restart";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // Every chunk has exactly its two copies, where the map says, and reads back.
  ASSERT_TRUE((*conn)->refreshMap().isOk());
  auto map = (*conn)->map();
  for (const auto& [chunk, nodes] : chunkCopies(tc, 4)) {
    EXPECT_EQ(nodes.size(), 2u) << chunk;
    auto id = Hash128::fromHex(chunk);
    ASSERT_TRUE(id.has_value());
    for (client::NodeId n : map->replicasOf(*id, 2)) EXPECT_EQ(nodes.count(static_cast<int>(n)), 1u) << chunk;
  }
  EXPECT_FALSE(tc.chunkFiles(4).empty());
  expectReadsBack(**conn, "mk", src);
}

TEST(Repair, ScrubFindsACorruptChunkAndItIsFetchedFromTheReplica) {
  auto cluster = TestCluster::start();
  ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
  TestCluster& tc = **cluster;
  std::string src = tc.dir() + "/src";
  for (int i = 0; i < 20; ++i) writeFile(fs::path(src) / ("f" + std::to_string(i)), makeContent(200000, i + 31));
  auto r = tc.runCli({"dataset", "create", "sc", "--replication", "2"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0);
  r = tc.runCli({"put", src, "sc", "-q"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0);
  // A chunk with two copies: one is damaged, the other stays good.
  std::string victim, good_copy;
  int victim_node = 0;
  for (const auto& [id, nodes] : chunkCopies(tc, 3)) {
    if (nodes.size() != 2) continue;
    victim_node = *nodes.begin();
    int other = *nodes.rbegin();
    for (const auto& f : tc.chunkFiles(victim_node)) {
      if (fs::path(f).filename() == id) victim = f;
    }
    for (const auto& g : tc.chunkFiles(other)) {
      if (fs::path(g).filename() == id) good_copy = g;
    }
    break;
  }
  ASSERT_FALSE(victim.empty());
  const std::string good = readFile(good_copy);
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(good.size() / 2));
    f.put(static_cast<char>(good[good.size() / 2] ^ 0x01));
  }
  ASSERT_NE(readFile(victim), good);
  // Another chunk of that node loses its file altogether.
  std::string lost;
  for (const auto& [id, nodes] : chunkCopies(tc, 3)) {
    if (nodes.size() != 2 || !nodes.count(victim_node) || id == fs::path(victim).filename().string()) continue;
    for (const auto& f : tc.chunkFiles(victim_node)) {
      if (fs::path(f).filename() == id) lost = f;
    }
    break;
  }
  std::string lost_content;
  if (!lost.empty()) {
    lost_content = readFile(lost);
    ASSERT_TRUE(fs::remove(lost));
  }
  r = tc.runCli({"scrub", "--node", std::to_string(victim_node), "--timeout", "90", "-q"});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err << r->out;
  if (r->exit_code != 0) {
    // Where it stuck: the nodes' scrub state and what the mover did.
    auto where = tc.runCli({"scrub", "--no-wait"});
    if (where.isOk()) std::printf("%s%s\n", where->out.c_str(), where->err.c_str());
    auto logs = tools::runProcess("/bin/sh", {"-c", "grep -h -E 'mover|scrub|quarantin' " + tc.dir() + "/*.log | tail -40"});
    if (logs.isOk()) std::printf("%s\n", logs->out.c_str());
  }
  EXPECT_NE(r->out.find("fetched again from a good replica"), std::string::npos) << r->out;
  // The chunk is back on its node, byte for byte the replica's.
  bool back = false;
  for (const auto& f : tc.chunkFiles(victim_node)) {
    if (fs::path(f).filename() == fs::path(victim).filename()) {
      back = true;
      EXPECT_EQ(readFile(f), good);
    }
  }
  EXPECT_TRUE(back);
  if (!lost.empty()) {
    ASSERT_TRUE(fs::exists(lost)) << "the chunk whose file was deleted was not fetched again: " << lost;
    EXPECT_EQ(readFile(lost), lost_content);
  }

  // Both copies of one chunk damaged: no repair can bring it back, so scrub
  // ends (it used to wait out its timeout) and names it as lost.
  std::set<std::string> before;
  for (const auto& [id, nodes] : chunkCopies(tc, 3)) before.insert(id);
  writeFile(fs::path(src) / "g", makeContent(300000, 99));
  r = tc.runCli({"put", src, "sc", "-q"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0);
  std::string doomed;
  for (const auto& [id, nodes] : chunkCopies(tc, 3)) {
    if (nodes.size() != 2 || before.count(id)) continue;
    doomed = id;
    for (int n : nodes) {
      for (const auto& f : tc.chunkFiles(n)) {
        if (fs::path(f).filename() != id) continue;
        std::string bytes = readFile(f);
        ASSERT_GT(bytes.size(), 100u);
        std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
        io.seekp(100);
        io.put(static_cast<char>(bytes[100] ^ 0x5a));
      }
    }
    break;
  }
  ASSERT_FALSE(doomed.empty());
  r = tc.runCli({"scrub", "--timeout", "90", "-q"});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 6) << "not 5, a timeout: " << r->err << r->out;
  EXPECT_NE(r->err.find("no good copy left"), std::string::npos) << r->err;
  EXPECT_NE(r->err.find(doomed), std::string::npos) << r->err;
  // It names what is lost: the new file of v2, the one version using it.
  EXPECT_NE(r->err.find("sc@v2: g\n"), std::string::npos) << r->err;
  EXPECT_EQ(r->err.find("sc@v1"), std::string::npos) << r->err;
  // sluice status flags it too, once the mover has looked (every 5 s).
  auto statusShows = [&](bool lost) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      auto st = tc.runCli({"status"});
      auto js = tc.runCli({"--json", "status"});
      if (!st.isOk() || !js.isOk()) return false;
      const bool text = st->out.find("LOST    1 chunk(s) in use") != std::string::npos;
      const bool json = js->out.find("\"lost_chunks\":[\"" + doomed + "\"]") != std::string::npos;
      if (text == lost && json == lost) return true;
      if (std::chrono::steady_clock::now() > deadline) {
        std::printf("%s%s\n", st->out.c_str(), js->out.c_str());
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  };
  EXPECT_TRUE(statusShows(true)) << "status does not flag the lost chunk";
  // With v2 deleted no version uses the chunk: nothing is lost any more.
  r = tc.runCli({"version", "rm", "sc@v2", "--force"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err;
  r = tc.runCli({"scrub", "--timeout", "90"});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err << r->out;
  EXPECT_NE(r->out.find("used by no version any more"), std::string::npos) << r->out;
  EXPECT_TRUE(statusShows(false)) << "status still flags a chunk no version uses";
}

// Nodes out of room: the upload says they are full (not "down or not
// answering", which sent admins to repair), naming each node's answer.
TEST(Repair, UploadsToFullNodesSayTheyAreFull) {
  TestCluster::Options o;
  o.nodes = 2;
  o.replication = 1;
  o.extra_node_args = {"--capacity", "3M"};
  auto cluster = TestCluster::start(o);
  ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
  TestCluster& tc = **cluster;
  const std::string src = tc.dir() + "/src";
  for (int i = 0; i < 12; ++i) writeFile(fs::path(src) / ("f" + std::to_string(i)), makeContent(1u << 20, 70 + i));
  auto r = tc.runCli({"dataset", "create", "full", "--replication", "1", "--chunk-size", "1M"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0) << r->err;
  r = tc.runCli({"put", src, "full", "-q"});
  ASSERT_TRUE(r.isOk());
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->err.find("with room"), std::string::npos) << r->err;
  EXPECT_NE(r->err.find("capacity"), std::string::npos) << r->err;
  EXPECT_EQ(r->err.find("not answering"), std::string::npos) << r->err;
}

TEST(Repair, GcAfterDeletingAVersionFreesExactlyTheChunksOnlyItUsed) {
  TestCluster::Options o;
  o.extra_meta_args = {"--tombstone_ttl", "2s"};  // forgotten within seconds (below)
  auto cluster = TestCluster::start(o);
  ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
  TestCluster& tc = **cluster;
  std::string v1 = tc.dir() + "/v1", v2 = tc.dir() + "/v2";
  for (int i = 0; i < 10; ++i) {
    std::string only_v1 = makeContent(1500000, 100 + i);
    std::string shared = makeContent(900000, 200 + i);
    writeFile(fs::path(v1) / "a" / ("old" + std::to_string(i)), only_v1);
    writeFile(fs::path(v1) / "s" / ("shared" + std::to_string(i)), shared);
    writeFile(fs::path(v2) / "s" / ("shared" + std::to_string(i)), shared);
    writeFile(fs::path(v2) / "b" / ("new" + std::to_string(i)), makeContent(700000, 300 + i));
  }
  auto r = tc.runCli({"dataset", "create", "gcds", "--replication", "2"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0);
  r = tc.runCli({"put", v1, "gcds", "-q"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0);
  r = tc.runCli({"put", v2, "gcds", "-q"});
  ASSERT_TRUE(r.isOk() && r->exit_code == 0);
  r = tc.runCli({"version", "rm", "gcds@v1"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err;

  // What only v1 used, as meta lists it.
  r = tc.runCli({"--json", "gc", "--dry-run"});
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->exit_code, 0) << r->err;
  std::set<std::string> garbage;
  for (size_t at = 0; (at = r->out.find("\"chunk\":\"", at)) != std::string::npos; at += 10) {
    garbage.insert(r->out.substr(at + 9, 32));
  }
  ASSERT_FALSE(garbage.empty()) << r->out;
  auto before = chunkCopies(tc, 3);
  for (const auto& g : garbage) EXPECT_EQ(before[g].size(), 2u) << g;

  r = tc.runCli({"gc"});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  EXPECT_NE(r->out.find(std::to_string(garbage.size()) + " chunks collected"), std::string::npos) << r->out;
  auto after = chunkCopies(tc, 3);
  for (const auto& [chunk, nodes] : before) {
    if (garbage.count(chunk)) {
      EXPECT_EQ(after.count(chunk), 0u) << chunk << " only v1 used, still on disk";
    } else {
      EXPECT_EQ(after[chunk], nodes) << chunk << " is still used, and must stay";
    }
  }
  // v2 reads back whole; a second gc finds nothing.
  r = tc.runCli({"get", "gcds@v2", tc.dir() + "/back", "-q"});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  for (const auto& f : listFiles(v2)) EXPECT_EQ(readFile(tc.dir() + "/back/" + f), readFile(fs::path(v2) / f)) << f;
  r = tc.runCli({"gc"});
  ASSERT_TRUE(r.isOk());
  EXPECT_NE(r->out.find("gc: 0 chunks collected"), std::string::npos) << r->out;

  // The daemon forgets the tombstones once they are older than the TTL, and
  // uploads go on (a new draft is begun after the forgotten epoch).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (readFile(tc.dir() + "/meta.log").find("tombstones older than") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "meta never forgot the tombstones";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  r = tc.runCli({"put", v1, "gcds", "-q"});  // v1's bytes again, collected before
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  auto conn = tc.connect();
  ASSERT_TRUE(conn.isOk()) << conn.status().toString();
  expectReadsBack(**conn, "gcds", v1, "latest");
}

// An upload that placed chunks with a map older than a move's cleanup leaves
// copies on a node the stripe no longer lists. Meta's mover asks the nodes
// which stripes they hold (--stray_check) and cleans those up: a stray copy
// others also hold is deleted; one that is the only second copy is first
// copied to the node the map gives it. No chunk ends with fewer copies.
TEST(Repair, StrayCopiesOnNodesTheMapDoesNotListAreCleanedUp) {
  TestCluster::Options o;
  o.nodes = 4;
  o.replication = 2;
  o.extra_meta_args = {"--stray_check", "1s"};
  auto cluster = TestCluster::start(o);
  ASSERT_TRUE(cluster.isOk()) << cluster.status().toString();
  TestCluster& tc = **cluster;
  auto conn = tc.connect();
  ASSERT_TRUE(conn.isOk());
  client::Cluster& c = **conn;
  std::string src = tc.dir() + "/src";
  for (int i = 0; i < 30; ++i) {
    writeFile(fs::path(src) / ("f" + std::to_string(i)), makeContent(100000 + static_cast<size_t>(i) * 7919, i + 1));
  }
  createDataset(c, "st", 2);
  ASSERT_TRUE(client::uploadDirectory(c, src, "st", client::UploadOptions{}).isOk());

  // chunk -> (stripe, a path of one copy)
  std::map<std::string, std::pair<uint32_t, std::string>> where;
  for (int i = 1; i <= 4; ++i) {
    for (const auto& f : tc.chunkFiles(i)) {
      fs::path p(f);
      where[p.filename().string()] = {static_cast<uint32_t>(std::stoul(p.parent_path().filename().string())), f};
    }
  }
  ASSERT_GE(where.size(), 2u);
  auto map = c.map();
  auto listed = [&](uint32_t stripe) {
    auto nodes = map->stripeNodes(stripe, map->maxReplicas());
    return std::set<int>(nodes.begin(), nodes.end());
  };
  auto unlisted = [&](uint32_t stripe) {
    auto l = listed(stripe);
    for (int n = 1; n <= 4; ++n) {
      if (!l.count(n)) return n;
    }
    return 0;
  };
  // Chunk a: a stray copy besides its two. Chunk b: a stray copy, and one
  // of its two listed copies lost, so the stray is its only second copy.
  auto it = where.begin();
  const auto [a, a_at] = *it++;
  const auto [b, b_at] = *it;
  const int a_stray = unlisted(a_at.first), b_stray = unlisted(b_at.first);
  ASSERT_NE(a_stray, 0);
  ASSERT_NE(b_stray, 0);
  auto before = chunkCopies(tc, 4);
  ASSERT_EQ(before[b].size(), 2u);
  const int b_lost = *before[b].begin();
  auto nodeName = [](int n) { return "node" + std::to_string(n); };
  auto strayPath = [&](int node, const std::pair<uint32_t, std::string>& at, const std::string& chunk) {
    return fs::path(tc.nodeDataDir(node)) / "stripes" / std::to_string(at.first) / chunk;
  };
  // Nodes read their chunk files at start: change them while stopped.
  std::set<int> touched = {a_stray, b_stray, b_lost};
  for (int n : touched) ASSERT_TRUE(tc.kill(nodeName(n)).isOk());
  const fs::path a_src = strayPath(*before[a].begin(), a_at, a);
  const fs::path b_src = strayPath(*before[b].rbegin(), b_at, b);  // the copy that stays
  for (auto [node, from, chunk, at] : {std::tuple{a_stray, a_src, a, a_at}, std::tuple{b_stray, b_src, b, b_at}}) {
    fs::path to = strayPath(node, at, chunk);
    fs::create_directories(to.parent_path());
    fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  }
  ASSERT_TRUE(fs::remove(strayPath(b_lost, b_at, b)));
  auto strays = chunkCopies(tc, 4);
  ASSERT_EQ(strays[a].size(), 3u);
  ASSERT_EQ(strays[b], (std::set<int>{*before[b].rbegin(), b_stray}));
  // (The mover may clean up as soon as they are back.)
  for (int n : touched) ASSERT_TRUE(tc.restart(nodeName(n)).isOk());

  // Within a few checks, every chunk is exactly where its stripe's first two
  // slots say, and nowhere else.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::map<std::string, std::set<int>> now;
  for (;;) {
    now = chunkCopies(tc, 4);
    bool settled = true;
    for (const auto& [chunk, at] : where) {
      auto nodes = map->stripeNodes(at.first, 2);
      if (now[chunk] != std::set<int>(nodes.begin(), nodes.end())) settled = false;
    }
    auto m = listMoves(c);
    ASSERT_NE(m, nullptr);
    if (settled && m->cleanups == 0) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "stray copies not cleaned up: a on " << now[a].size() << " nodes, b on " << now[b].size()
        << ", cleanups pending " << m->cleanups;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_FALSE(now[a].count(a_stray));
  EXPECT_FALSE(now[b].count(b_stray));
  EXPECT_TRUE(now[b].count(b_lost)) << "b's only second copy was deleted, not copied over first";
  for (const auto& [chunk, nodes] : before) {
    if (chunk == a || chunk == b) continue;
    EXPECT_EQ(now[chunk], nodes) << chunk;
  }
  expectReadsBack(c, "st", src);
}

TEST(Repair, RepairCommandWithNothingDownSaysSo) {
  auto cluster = TestCluster::start();
  ASSERT_TRUE(cluster.isOk());
  auto r = (*cluster)->runCli({"repair", "--timeout", "5"});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  EXPECT_NE(r->out.find("no new repairs"), std::string::npos) << r->out;
}

}  // namespace
}  // namespace sluice::testing
