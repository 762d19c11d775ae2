// MetaStore against a real LMDB directory: nodes and map, datasets,
// versions, tags, namespace reads, diff, record index and gc.
#include "metadata/limits.h"
#include "metadata/meta_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "metadata/names.h"
#include "metadata/placement.h"
#include "metadata/store_internal.h"
#include "tests/metadata/test_util.h"

namespace sluice::meta {
namespace {

using testing::makeFile;
using testing::TempDir;

class MetaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
  void reopen() {
    store_.reset();
    MetaStoreOptions o;
    o.lmdb.dir = dir_.path();
    o.lmdb.map_size = 4ull << 30;
    o.stripe_count = 64;
    o.clock = &clock_;
    o.heartbeat_timeout_ms = 5000;
    auto s = MetaStore::open(o);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
  }
  uint32_t draft(const std::string& ds = "imgs") {
    auto v = store_->beginVersion(ds, "upload");
    EXPECT_TRUE(v.isOk()) << v.status().toString();
    return v.isOk() ? v->version : 0;
  }
  void createDataset(const std::string& name = "imgs") {
    auto d = store_->createDataset(name, DatasetOptions{});
    ASSERT_TRUE(d.isOk()) << d.status().toString();
  }
  void add(const std::string& ds, uint32_t v, std::vector<FileSpec> files) {
    auto r = store_->addFiles(ds, v, files);
    ASSERT_TRUE(r.isOk()) << r.status().toString();
  }
  void commit(const std::string& ds, uint32_t v) {
    auto r = store_->commitVersion(ds, v, "", false);
    ASSERT_TRUE(r.isOk()) << r.status().toString();
  }
  // A committed version of dataset `ds` holding the one file `f`.
  uint32_t commitOne(const std::string& ds, const FileSpec& f) {
    uint32_t v = draft(ds);
    add(ds, v, {f});
    commit(ds, v);
    return v;
  }

  TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<MetaStore> store_;
};

TEST_F(MetaStoreTest, ClusterIdSurvivesReopen) {
  Hash128 id = store_->params().cluster_id;
  EXPECT_FALSE(id.isZero());
  reopen();
  EXPECT_EQ(store_->params().cluster_id, id);
  EXPECT_EQ(store_->params().stripe_count, 64u);
}

TEST_F(MetaStoreTest, RegisterAssignsIdsAndPlacesStripesByCapacity) {
  auto e0 = store_->mapEpoch();
  ASSERT_TRUE(e0.isOk());
  Hash128 cid = store_->params().cluster_id;
  auto a = store_->registerNode(Hash128{}, 0, "127.0.0.1:1001", {100, 0, 0, 0});
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_EQ(a->cluster_id, cid);
  auto b = store_->registerNode(Hash128{}, 0, "127.0.0.1:1002", {100, 0, 0, 0});
  auto c = store_->registerNode(Hash128{}, 0, "127.0.0.1:1003", {200, 0, 0, 0});
  auto d = store_->registerNode(Hash128{}, 0, "127.0.0.1:1004", {200, 0, 0, 0});
  ASSERT_TRUE(b.isOk() && c.isOk() && d.isOk());
  EXPECT_NE(a->node_id, b->node_id);
  EXPECT_GT(d->map_epoch, *e0);

  auto map = store_->clusterMap();
  ASSERT_TRUE(map.isOk());
  ASSERT_EQ(map->replicas.size(), 64u * 3);
  std::map<uint64_t, int> held;
  for (uint32_t s = 0; s < 64; ++s) {
    std::set<uint64_t> distinct;
    for (uint32_t r = 0; r < 3; ++r) {
      uint64_t id = map->replicas[s * 3 + r];
      ASSERT_NE(id, 0u) << "stripe " << s << " slot " << r;
      distinct.insert(id);
      ++held[id];
    }
    EXPECT_EQ(distinct.size(), 3u) << "stripe " << s;
  }
  // 192 slots over capacities 1:1:2:2 -> 32, 32, 64, 64 (within rounding).
  EXPECT_NEAR(held[a->node_id], 32, 3);
  EXPECT_NEAR(held[b->node_id], 32, 3);
  EXPECT_NEAR(held[c->node_id], 64, 3);
  EXPECT_NEAR(held[d->node_id], 64, 3);

  // Re-registration keeps the id; a foreign cluster id is refused.
  auto again = store_->registerNode(cid, a->node_id, "127.0.0.1:1001", {100, 0, 0, 0});
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->node_id, a->node_id);
  auto foreign = store_->registerNode(Hash128{1, 2}, a->node_id, "127.0.0.1:1001", {100, 0, 0, 0});
  EXPECT_EQ(foreign.status().code(), StatusCode::kFailedPrecondition);
  auto unknown = store_->registerNode(cid, 999, "127.0.0.1:1001", {100, 0, 0, 0});
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  auto bad = store_->registerNode(Hash128{}, 0, "nohostport", {100, 0, 0, 0});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("address"), std::string::npos);
}

TEST_F(MetaStoreTest, NewNodesOnlyFillEmptySlotsOnceDataExists) {
  Hash128 cid = store_->params().cluster_id;
  auto a = store_->registerNode(cid, 0, "127.0.0.1:1", {100, 0, 0, 0});
  ASSERT_TRUE(a.isOk());
  createDataset();
  uint32_t v = draft();
  add("imgs", v, {makeFile("x", 1)});
  auto before = store_->clusterMap();
  auto b = store_->registerNode(cid, 0, "127.0.0.1:2", {100, 0, 0, 0});
  ASSERT_TRUE(b.isOk());
  auto after = store_->clusterMap();
  ASSERT_TRUE(before.isOk() && after.isOk());
  for (uint32_t s = 0; s < 64; ++s) {
    EXPECT_EQ(after->replicas[s * 3], a->node_id) << "stripe " << s << " moved";
    EXPECT_EQ(after->replicas[s * 3 + 1], b->node_id);
  }
}

// A draft with no files named yet may already have chunks on the nodes (an
// upload puts them before AddFiles): a node joining then fills empty slots
// only, as once data exists, and moves no stripe from under them.
// A directory holding other things and no LMDB environment is refused and
// left as it was (a mistyped --data_dir); one with only lost+found opens.
TEST(MetaStoreDirectory, ADirectoryOfSomethingElseIsNotTakenOver) {
  TempDir dir;
  { std::ofstream(dir.path() + "/notes.txt") << "not metadata"; }
  LmdbOptions lo;
  lo.dir = dir.path();
  auto refused = LmdbEnv::open(lo);
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status().toString();
  EXPECT_NE(refused.status().message().find("notes.txt"), std::string::npos)
      << refused.status().toString();
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/data.mdb"));

  TempDir fresh;
  std::filesystem::create_directories(fresh.path() + "/lost+found");
  lo.dir = fresh.path();
  auto opened = LmdbEnv::open(lo);
  EXPECT_TRUE(opened.isOk()) << opened.status().toString();
}

TEST_F(MetaStoreTest, NewNodesOnlyFillEmptySlotsOnceADraftBegan) {
  Hash128 cid = store_->params().cluster_id;
  auto a = store_->registerNode(cid, 0, "127.0.0.1:1", {100, 0, 0, 0});
  ASSERT_TRUE(a.isOk());
  createDataset();
  draft();
  auto b = store_->registerNode(cid, 0, "127.0.0.1:2", {100, 0, 0, 0});
  ASSERT_TRUE(b.isOk());
  auto after = store_->clusterMap();
  ASSERT_TRUE(after.isOk());
  for (uint32_t s = 0; s < 64; ++s) {
    EXPECT_EQ(after->replicas[s * 3], a->node_id) << "stripe " << s << " moved";
    EXPECT_EQ(after->replicas[s * 3 + 1], b->node_id);
  }
}

// Data slots (the first `replication` of each stripe) each node holds.
std::map<uint64_t, int> dataSlotsHeld(const MetaStore& store, uint32_t replication) {
  std::map<uint64_t, int> held;
  auto map = store.clusterMap();
  EXPECT_TRUE(map.isOk());
  if (!map.isOk()) return held;
  for (uint32_t s = 0; s < map->stripe_count; ++s) {
    for (uint32_t r = 0; r < replication; ++r) held[map->replicas[size_t{s} * map->max_replicas + r]]++;
  }
  return held;
}

// Every pending move done, as the mover does once a copy is verified.
void completeAllMoves(MetaStore& store) {
  auto moves = store.listMoves();
  ASSERT_TRUE(moves.isOk());
  for (const StripeMove& m : *moves) ASSERT_TRUE(store.completeMove(m).isOk());
}

// Node `dead` misses its heartbeats (the others do not) and is repaired.
void killAndRepair(MetaStore& store, ManualClock& clock, uint64_t dead, const std::vector<uint64_t>& alive) {
  const Hash128 cid = store.params().cluster_id;
  clock.advance(std::chrono::milliseconds(6000));
  for (uint64_t id : alive) ASSERT_TRUE(store.heartbeat(cid, id, {100, 0, 0, 0}).isOk());
  auto down = store.markStaleNodesDown();
  ASSERT_TRUE(down.isOk());
  ASSERT_EQ(*down, std::vector<uint64_t>{dead});
  ASSERT_TRUE(store.planRepairs({dead}).isOk());
  completeAllMoves(store);
}

// Rebalances until the plan is empty; the data slots are then even (within
// one) over `nodes`.
void rebalanceAndExpectEven(MetaStore& store, const std::vector<uint64_t>& nodes) {
  auto plan = store.planRebalance(/*apply=*/true, 0);
  ASSERT_TRUE(plan.isOk()) << plan.status().toString();
  EXPECT_GT(plan->moves.size(), 0u) << "nothing planned for the empty node";
  completeAllMoves(store);
  auto again = store.planRebalance(/*apply=*/false, 0);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->moves.size(), 0u);
  auto held = dataSlotsHeld(store, 2);
  int lo = INT32_MAX, hi = 0;
  for (uint64_t id : nodes) {
    lo = std::min(lo, held[id]);
    hi = std::max(hi, held[id]);
  }
  EXPECT_LE(hi - lo, 1) << "data slots of nodes " << ::testing::PrintToString(held);
}

// A node back after repair sits past the data slots of every stripe (repair
// swapped it there), and a node that joins after one was removed fills the
// slots it left, also past the data slots: both hold no data, and rebalance
// must fill them like any empty node.
TEST_F(MetaStoreTest, RebalanceFillsANodeBackFromRepairAndOneThatJoinedAfterARemoval) {
  Hash128 cid = store_->params().cluster_id;
  auto a = store_->registerNode(cid, 0, "127.0.0.1:1", {100, 0, 0, 0});
  auto b = store_->registerNode(cid, 0, "127.0.0.1:2", {100, 0, 0, 0});
  auto c = store_->registerNode(cid, 0, "127.0.0.1:3", {100, 0, 0, 0});
  ASSERT_TRUE(a.isOk() && b.isOk() && c.isOk());
  ASSERT_TRUE(store_->createDataset("imgs", DatasetOptions{2}).isOk());
  commitOne("imgs", makeFile("x", 1));

  killAndRepair(*store_, clock_, b->node_id, {a->node_id, c->node_id});
  EXPECT_EQ(dataSlotsHeld(*store_, 2)[b->node_id], 0);
  ASSERT_TRUE(store_->heartbeat(cid, b->node_id, {100, 0, 0, 0}).isOk());  // back, empty
  rebalanceAndExpectEven(*store_, {a->node_id, b->node_id, c->node_id});

  killAndRepair(*store_, clock_, c->node_id, {a->node_id, b->node_id});
  ASSERT_TRUE(store_->setNodeState(c->node_id, NodeState::kRemoved).isOk());
  auto d = store_->registerNode(cid, 0, "127.0.0.1:4", {100, 0, 0, 0});
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(dataSlotsHeld(*store_, 2)[d->node_id], 0);
  rebalanceAndExpectEven(*store_, {a->node_id, b->node_id, d->node_id});
}

TEST_F(MetaStoreTest, HeartbeatTimeoutMarksDownAndHeartbeatBringsBackUp) {
  Hash128 cid = store_->params().cluster_id;
  auto a = store_->registerNode(cid, 0, "127.0.0.1:1", {100, 0, 0, 0});
  auto b = store_->registerNode(cid, 0, "127.0.0.1:2", {100, 0, 0, 0});
  ASSERT_TRUE(a.isOk() && b.isOk());
  clock_.advance(std::chrono::milliseconds(3000));
  ASSERT_TRUE(store_->heartbeat(cid, b->node_id, {100, 5, 1, 0}).isOk());
  auto none = store_->markStaleNodesDown();
  ASSERT_TRUE(none.isOk());
  EXPECT_TRUE(none->empty());
  clock_.advance(std::chrono::milliseconds(3000));  // a silent for 6 s > 5 s timeout; b for 3 s
  auto epoch_before = store_->mapEpoch();
  auto down = store_->markStaleNodesDown();
  ASSERT_TRUE(down.isOk());
  ASSERT_EQ(down->size(), 1u);
  EXPECT_EQ(down->front(), a->node_id);
  auto nodes = store_->listNodes();
  ASSERT_TRUE(nodes.isOk());
  for (const NodeRecord& n : *nodes) {
    EXPECT_EQ(n.state, n.id == a->node_id ? NodeState::kDown : NodeState::kUp);
    if (n.id == b->node_id) {
      EXPECT_EQ(n.used_bytes, 5u);
    }
  }
  EXPECT_GT(*store_->mapEpoch(), *epoch_before);
  auto hb = store_->heartbeat(cid, a->node_id, {100, 0, 0, 0});
  ASSERT_TRUE(hb.isOk());
  EXPECT_EQ(hb->state, NodeState::kUp);
  EXPECT_EQ(hb->map_epoch, *store_->mapEpoch());
}

TEST_F(MetaStoreTest, ADrainingNodeThatWentDownReturnsDraining) {
  Hash128 cid = store_->params().cluster_id;
  auto a = store_->registerNode(cid, 0, "127.0.0.1:1", {100, 0, 0, 0});
  auto b = store_->registerNode(cid, 0, "127.0.0.1:2", {100, 0, 0, 0});
  ASSERT_TRUE(a.isOk() && b.isOk());
  ASSERT_TRUE(store_->setNodeState(b->node_id, NodeState::kDraining).isOk());
  clock_.advance(std::chrono::milliseconds(6000));
  ASSERT_TRUE(store_->heartbeat(cid, a->node_id, {100, 0, 0, 0}).isOk());
  auto down = store_->markStaleNodesDown();
  ASSERT_TRUE(down.isOk());
  ASSERT_EQ(*down, std::vector<uint64_t>{b->node_id});
  // Back by heartbeat, and by registering again after a restart: still draining.
  auto hb = store_->heartbeat(cid, b->node_id, {100, 0, 0, 0});
  ASSERT_TRUE(hb.isOk());
  EXPECT_EQ(hb->state, NodeState::kDraining);
  clock_.advance(std::chrono::milliseconds(6000));
  ASSERT_TRUE(store_->heartbeat(cid, a->node_id, {100, 0, 0, 0}).isOk());
  ASSERT_TRUE(store_->markStaleNodesDown().isOk());
  ASSERT_TRUE(store_->registerNode(cid, b->node_id, "127.0.0.1:2", {100, 0, 0, 0}).isOk());
  auto nodes = store_->listNodes();
  ASSERT_TRUE(nodes.isOk());
  for (const NodeRecord& n : *nodes) {
    if (n.id == b->node_id) {
      EXPECT_EQ(n.state, NodeState::kDraining);
    }
  }
  // Undone by setting it up: a later return is up.
  ASSERT_TRUE(store_->setNodeState(b->node_id, NodeState::kUp).isOk());
  clock_.advance(std::chrono::milliseconds(6000));
  ASSERT_TRUE(store_->heartbeat(cid, a->node_id, {100, 0, 0, 0}).isOk());
  ASSERT_TRUE(store_->markStaleNodesDown().isOk());
  hb = store_->heartbeat(cid, b->node_id, {100, 0, 0, 0});
  ASSERT_TRUE(hb.isOk());
  EXPECT_EQ(hb->state, NodeState::kUp);
}

TEST_F(MetaStoreTest, DrainAndRemove) {
  Hash128 cid = store_->params().cluster_id;
  auto a = store_->registerNode(cid, 0, "127.0.0.1:1", {100, 0, 0, 0});
  auto b = store_->registerNode(cid, 0, "127.0.0.1:2", {100, 0, 0, 0});
  ASSERT_TRUE(a.isOk() && b.isOk());
  auto drained = store_->setNodeState(b->node_id, NodeState::kDraining);
  ASSERT_TRUE(drained.isOk());
  EXPECT_EQ(drained->state, NodeState::kDraining);
  EXPECT_EQ(store_->setNodeState(b->node_id, NodeState::kDown).status().code(),
            StatusCode::kInvalidArgument);
  auto removed = store_->setNodeState(b->node_id, NodeState::kRemoved);
  ASSERT_TRUE(removed.isOk()) << removed.status().toString();  // no data yet
  auto map = store_->clusterMap();
  for (uint64_t id : map->replicas) EXPECT_NE(id, b->node_id);
  EXPECT_EQ(store_->heartbeat(cid, b->node_id, {}).status().code(), StatusCode::kFailedPrecondition);
}

// With replication 2 and one other node up, a drained node's stripes have
// nowhere to go and every upload would fail: the drain is refused, saying
// why. Once a node joins it is allowed, and calling it off (up again) drops
// the moves planned away from the node.
TEST_F(MetaStoreTest, DrainIsRefusedWithoutRoomElsewhereAndCanBeCalledOff) {
  Hash128 cid = store_->params().cluster_id;
  auto a = store_->registerNode(cid, 0, "127.0.0.1:1", {100, 0, 0, 0});
  auto b = store_->registerNode(cid, 0, "127.0.0.1:2", {100, 0, 0, 0});
  ASSERT_TRUE(a.isOk() && b.isOk());
  ASSERT_TRUE(store_->createDataset("imgs", DatasetOptions{2}).isOk());
  commitOne("imgs", makeFile("x", 1));

  auto refused = store_->setNodeState(b->node_id, NodeState::kDraining);
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("cannot be drained"), std::string::npos) << refused.status().toString();
  EXPECT_NE(refused.status().message().find("add a node"), std::string::npos) << refused.status().toString();
  auto nodes = store_->listNodes();
  ASSERT_TRUE(nodes.isOk());
  for (const NodeRecord& n : *nodes) EXPECT_EQ(n.state, NodeState::kUp) << "node " << n.id;

  auto c = store_->registerNode(cid, 0, "127.0.0.1:3", {100, 0, 0, 0});
  ASSERT_TRUE(c.isOk());
  ASSERT_TRUE(store_->setNodeState(b->node_id, NodeState::kDraining).isOk());
  auto planned = store_->planRepairs({b->node_id});
  ASSERT_TRUE(planned.isOk());
  ASSERT_FALSE(planned->empty());

  auto undrained = store_->setNodeState(b->node_id, NodeState::kUp);
  ASSERT_TRUE(undrained.isOk()) << undrained.status().toString();
  EXPECT_EQ(undrained->state, NodeState::kUp);
  auto moves = store_->listMoves();
  ASSERT_TRUE(moves.isOk());
  EXPECT_TRUE(moves->empty()) << moves->size() << " moves left after the drain was called off";
  // Each dropped move's target may hold part of a copy: its cleanup is queued.
  auto cleanups = store_->listCleanups();
  ASSERT_TRUE(cleanups.isOk());
  EXPECT_EQ(cleanups->size(), planned->size());
  // The mover's list of leaving nodes comes from a map read before the
  // undrain committed: no move away from the node is planned again.
  planned = store_->planRepairs({b->node_id});
  ASSERT_TRUE(planned.isOk());
  EXPECT_TRUE(planned->empty()) << planned->size() << " moves planned away from an up node";
  EXPECT_TRUE(store_->listMoves()->empty());
}

TEST_F(MetaStoreTest, DatasetLifecycle) {
  createDataset("a");
  createDataset("b");
  EXPECT_EQ(store_->createDataset("a", {}).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->createDataset("c", {9, 0, {}}).status().code(), StatusCode::kInvalidArgument);
  auto list = store_->listDatasets("", 1);
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0].name, "a");
  auto rest = store_->listDatasets(list->next_cursor, 10);
  ASSERT_TRUE(rest.isOk());
  ASSERT_EQ(rest->items.size(), 1u);
  EXPECT_EQ(rest->items[0].name, "b");
  EXPECT_TRUE(rest->next_cursor.empty());

  uint32_t v = draft("a");
  add("a", v, {makeFile("f", 1)});
  commit("a", v);  // tags latest
  auto refused = store_->deleteDataset("a", false);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  auto deleted = store_->deleteDataset("a", true);
  ASSERT_TRUE(deleted.isOk());
  EXPECT_EQ(*deleted, 1u);
  EXPECT_EQ(store_->getDataset("a").status().code(), StatusCode::kNotFound);
  // Its chunk is garbage now.
  auto g = store_->listGarbage(1, "", 100);
  ASSERT_TRUE(g.isOk());
  EXPECT_EQ(g->items.size(), 1u);
}

// An upload names its draft by dataset and number, and both come back when
// the dataset is deleted and created again: the dataset id it began under
// tells its draft from the new dataset's draft of the same number.
TEST_F(MetaStoreTest, StaleUploadCannotTouchADraftOfADatasetCreatedAgain) {
  createDataset("d");
  auto old = store_->beginVersion("d", "first upload");
  ASSERT_TRUE(old.isOk());
  const uint64_t old_id = old->dataset_id;
  EXPECT_NE(old_id, 0u);
  ASSERT_TRUE(store_->deleteDataset("d", true).isOk());
  createDataset("d");
  auto fresh = store_->beginVersion("d", "someone else's upload");
  ASSERT_TRUE(fresh.isOk());
  ASSERT_EQ(fresh->version, old->version);  // the same name and number
  EXPECT_NE(fresh->dataset_id, old_id);

  std::vector<FileSpec> files = {makeFile("stale.bin", 1)};
  auto added = store_->addFiles("d", fresh->version, files, old_id);
  EXPECT_EQ(added.status().code(), StatusCode::kConflict);
  EXPECT_NE(added.status().message().find("deleted and created again"), std::string::npos)
      << added.status().toString();
  auto committed = store_->commitVersion("d", fresh->version, "", false, old_id);
  EXPECT_EQ(committed.status().code(), StatusCode::kConflict);
  // Nor can it tag what it thinks it committed.
  EXPECT_EQ(store_->setTag("d", "stale", fresh->version, old_id).status().code(), StatusCode::kConflict);
  // Nothing of the stale upload landed; the new draft's own upload works.
  files = {makeFile("mine.bin", 2)};
  ASSERT_TRUE(store_->addFiles("d", fresh->version, files, fresh->dataset_id).isOk());
  auto mine = store_->commitVersion("d", fresh->version, "", false, fresh->dataset_id);
  ASSERT_TRUE(mine.isOk()) << mine.status().toString();
  EXPECT_EQ(mine->file_count, 1u);
  EXPECT_EQ(mine->dataset_id, fresh->dataset_id);
  EXPECT_EQ(store_->stat("d", "v1", "stale.bin").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->stat("d", "v1", "mine.bin").isOk());
}

TEST_F(MetaStoreTest, DraftIsInvisibleUntilCommitThenComplete) {
  createDataset();
  uint32_t v1 = draft();
  uint32_t v2 = draft();
  EXPECT_EQ(v1, 1u);
  EXPECT_EQ(v2, 2u);
  add("imgs", v1, {makeFile("a/1.jpg", 1), makeFile("a/2.jpg", 2), makeFile("b/c/3.jpg", 3, 3)});
  add("imgs", v1, {makeFile("top.txt", 4)});
  EXPECT_EQ(store_->stat("imgs", "v1", "a/1.jpg").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->stat("imgs", "latest", "a/1.jpg").status().code(), StatusCode::kNotFound);
  auto info = store_->commitVersion("imgs", v1, "first", false);
  ASSERT_TRUE(info.isOk());
  EXPECT_EQ(info->file_count, 4u);
  EXPECT_EQ(info->logical_bytes, 6000u);
  EXPECT_EQ(info->stored_bytes, 6000u);
  EXPECT_EQ(info->message, "first");
  ASSERT_EQ(info->tags.size(), 1u);
  EXPECT_EQ(info->tags[0], "latest");
  // A retried commit answers the same.
  EXPECT_TRUE(store_->commitVersion("imgs", v1, "", false).isOk());

  auto st = store_->stat("imgs", "latest", "b/c/3.jpg");
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_EQ(st->size, 3000u);
  EXPECT_EQ(st->extent_count, 3u);
  auto dir = store_->stat("imgs", "v1", "b/c");
  ASSERT_TRUE(dir.isOk());
  EXPECT_EQ(dir->type, EntryType::kDirectory);
  auto root = store_->readDir("imgs", "v1", "", "", 0);
  ASSERT_TRUE(root.isOk());
  ASSERT_EQ(root->items.size(), 3u);
  EXPECT_EQ(root->items[0].path, "a");
  EXPECT_EQ(root->items[1].path, "b");
  EXPECT_EQ(root->items[2].path, "top.txt");
  auto ext = store_->getExtents("imgs", "v1", "b/c/3.jpg", 1, 5);
  ASSERT_TRUE(ext.isOk());
  EXPECT_EQ(ext->total, 3u);
  ASSERT_EQ(ext->extents.size(), 2u);
  EXPECT_EQ(ext->extents[0].file_offset, 1000u);
  EXPECT_EQ(ext->extents[1].file_offset, 2000u);
  EXPECT_EQ(ext->extents[1].record, (Hash128{3, 3}));

  std::vector<std::string_view> paths = {"a/1.jpg", "missing", "a"};
  auto lk = store_->lookup("imgs", "latest", paths, true, 100);
  ASSERT_TRUE(lk.isOk());
  EXPECT_TRUE((*lk)[0].found);
  EXPECT_EQ((*lk)[0].extents.size(), 1u);
  EXPECT_TRUE((*lk)[0].extents_complete);
  EXPECT_FALSE((*lk)[1].found);
  EXPECT_EQ((*lk)[2].entry.type, EntryType::kDirectory);

  // v2 commits later and moves latest; committing v1 again would not move it back.
  add("imgs", v2, {makeFile("only.txt", 9)});
  commit("imgs", v2);
  auto latest = store_->resolveVersion("imgs", "latest");
  ASSERT_TRUE(latest.isOk());
  EXPECT_EQ(latest->version, v2);
  auto listed = store_->listVersions("imgs", "", 0);
  ASSERT_TRUE(listed.isOk());
  ASSERT_EQ(listed->items.size(), 2u);
  EXPECT_EQ(listed->items[0].file_count, 4u);
  EXPECT_EQ(listed->items[1].file_count, 1u);
  // A cursor past the last possible version ends the listing; it must not
  // wrap around and start it again.
  auto past = store_->listVersions("imgs", "v4294967295", 0);
  ASSERT_TRUE(past.isOk()) << past.status().toString();
  EXPECT_TRUE(past->items.empty());
  EXPECT_TRUE(past->next_cursor.empty());
}

TEST_F(MetaStoreTest, ConcurrentDraftsGetDistinctVersions) {
  createDataset();
  std::vector<uint32_t> got(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto v = store_->beginVersion("imgs", "");
      got[i] = v.isOk() ? v->version : 0;
      if (v.isOk()) {
        auto r = store_->addFiles("imgs", v->version, std::vector<FileSpec>{makeFile("f", 100 + i)});
        if (!r.isOk()) got[i] = 0;
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<uint32_t> distinct(got.begin(), got.end());
  EXPECT_EQ(distinct.size(), 8u);
  EXPECT_EQ(distinct.count(0), 0u);
}

TEST_F(MetaStoreTest, AddFilesIsIdempotentAndSupportsAppend) {
  createDataset();
  uint32_t v = draft();
  FileSpec f = makeFile("big.bin", 7, 4);
  add("imgs", v, {f});
  add("imgs", v, {f});  // retry: no-op
  FileSpec changed = makeFile("big.bin", 8, 4);
  EXPECT_EQ(store_->addFiles("imgs", v, std::vector<FileSpec>{changed}).status().code(),
            StatusCode::kAlreadyExists);
  FileSpec more = makeFile("big.bin", 7, 2);
  more.append = true;
  for (auto& e : more.extents) e.file_offset += 4000;
  more.extents[0].record = Hash128{77, 1};
  more.extents[1].record = Hash128{77, 2};
  more.size = 6000;
  add("imgs", v, {more});
  commit("imgs", v);
  auto ext = store_->getExtents("imgs", "v1", "big.bin", 0, 100);
  ASSERT_TRUE(ext.isOk());
  EXPECT_EQ(ext->size, 6000u);
  EXPECT_EQ(ext->total, 6u);
  EXPECT_EQ(ext->extents[5].file_offset, 5000u);
  auto info = store_->resolveVersion("imgs", "v1");
  EXPECT_EQ(info->file_count, 1u);
  EXPECT_EQ(info->logical_bytes, 6000u);

  // An append naming a size but no bytes, to a file not in the draft, would
  // commit a file no reader can read: refused.
  uint32_t v2 = draft();
  FileSpec hollow;
  hollow.path = "hollow.bin";
  hollow.append = true;
  hollow.size = 4096;
  auto r = store_->addFiles("imgs", v2, std::vector<FileSpec>{hollow});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().toString();
  EXPECT_NE(r.status().message().find("hollow.bin"), std::string::npos) << r.status().toString();
}

TEST_F(MetaStoreTest, InvalidNamesAndPathsAreRefusedNamingTheField) {
  auto expectInvalid = [](const Status& s, const std::string& field) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.toString();
    EXPECT_NE(s.message().find(field), std::string::npos) << s.toString();
  };
  expectInvalid(store_->createDataset("", {}).status(), "dataset name");
  expectInvalid(store_->createDataset("-x", {}).status(), "dataset name");
  expectInvalid(store_->createDataset("a b", {}).status(), "dataset name");
  expectInvalid(store_->createDataset(std::string(65, 'a'), {}).status(), "dataset name");
  createDataset();
  uint32_t v = draft();
  commit("imgs", v);
  expectInvalid(store_->setTag("imgs", "v3", v).status(), "tag");
  expectInvalid(store_->setTag("imgs", "a/b", v).status(), "tag");
  uint32_t d = draft();
  for (std::string bad : std::vector<std::string>{"/abs", "a//b", "a/../b", "./a", "a/", std::string("a\0b", 3),
                          std::string(256, 'x'), std::string(4097, 'y')}) {
    expectInvalid(store_->addFiles("imgs", d, std::vector<FileSpec>{makeFile(bad, 1)}).status(),
                  "files[0].path");
  }
  FileSpec gap = makeFile("g", 1, 2);
  gap.extents[1].file_offset += 1;
  expectInvalid(store_->addFiles("imgs", d, std::vector<FileSpec>{gap}).status(), "file_offset");
  FileSpec codec = makeFile("c", 1);
  codec.extents[0].codec = 9;
  expectInvalid(store_->addFiles("imgs", d, std::vector<FileSpec>{codec}).status(), "codec");
  FileSpec size = makeFile("s", 1);
  size.size = 5;
  expectInvalid(store_->addFiles("imgs", d, std::vector<FileSpec>{size}).status(), "size");
  expectInvalid(store_->stat("imgs", "v1", "../x").status(), "path");
  // A file cannot also be a directory.
  add("imgs", d, {makeFile("p", 1)});
  EXPECT_EQ(store_->addFiles("imgs", d, std::vector<FileSpec>{makeFile("p/q", 2)}).status().code(),
            StatusCode::kAlreadyExists);
}

TEST_F(MetaStoreTest, ReadDirPagesOver100kEntries) {
  createDataset();
  uint32_t v = draft();
  const int kFiles = 100'000;
  std::vector<FileSpec> batch;
  for (int i = 0; i < kFiles; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "d/f%06d", i);
    batch.push_back(makeFile(name, i + 1, 1, 100, Hash128{1, uint64_t(i / 40) + 1}));
    if (batch.size() == 10'000) {
      add("imgs", v, batch);
      batch.clear();
    }
  }
  commit("imgs", v);
  std::string cursor;
  int seen = 0, pages = 0;
  std::string last;
  do {
    auto page = store_->readDir("imgs", "v1", "d", cursor, 7777);
    ASSERT_TRUE(page.isOk()) << page.status().toString();
    for (const Entry& e : page->items) {
      ASSERT_GT(e.path, last);
      last = e.path;
      ++seen;
    }
    cursor = page->next_cursor;
    ++pages;
  } while (!cursor.empty());
  EXPECT_EQ(seen, kFiles);
  EXPECT_EQ(pages, (kFiles + 7776) / 7777);
  auto all = store_->listFiles("imgs", "v1", "", 10'000);
  ASSERT_TRUE(all.isOk());
  EXPECT_EQ(all->items.size(), 10'000u);
  EXPECT_EQ(all->next_cursor, "d/f009999");
}

TEST_F(MetaStoreTest, DiffReportsAddedRemovedChanged) {
  createDataset();
  uint32_t a = draft();
  add("imgs", a,
      {makeFile("keep", 1), makeFile("gone", 2), makeFile("edit", 3, 2), makeFile("dir/x", 4),
       makeFile("a.txt", 5), makeFile("mode", 6)});
  commit("imgs", a);
  uint32_t b = draft();
  FileSpec moved = makeFile("keep", 1, 1, 1000, Hash128{999, 999});  // same records, new chunk
  FileSpec edit = makeFile("edit", 33, 3);
  FileSpec mode = makeFile("mode", 6);
  mode.mode = 0600;
  add("imgs", b,
      {moved, edit, makeFile("dir/x", 4), makeFile("dir/y", 8), makeFile("a.txt", 5), mode,
       makeFile("a/b", 9)});
  commit("imgs", b);
  std::vector<DiffEntry> all;
  std::string cursor;
  do {
    auto page = store_->diff("imgs", "v1", "v2", cursor, 2);
    ASSERT_TRUE(page.isOk()) << page.status().toString();
    all.insert(all.end(), page->items.begin(), page->items.end());
    cursor = page->next_cursor;
  } while (!cursor.empty());
  std::map<std::string, DiffEntry> by_path;
  for (auto& d : all) by_path[d.path] = d;
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(by_path["gone"].kind, ChangeKind::kRemoved);
  EXPECT_EQ(by_path["gone"].old_size, 1000u);
  EXPECT_EQ(by_path["edit"].kind, ChangeKind::kChanged);
  EXPECT_EQ(by_path["edit"].old_size, 2000u);
  EXPECT_EQ(by_path["edit"].new_size, 3000u);
  EXPECT_EQ(by_path["dir/y"].kind, ChangeKind::kAdded);
  EXPECT_EQ(by_path["a/b"].kind, ChangeKind::kAdded);
  EXPECT_EQ(by_path["mode"].kind, ChangeKind::kChanged);
  EXPECT_EQ(by_path.count("keep"), 0u);
  // Diff order is the walk order, and reverse diff swaps added/removed.
  auto rev = store_->diff("imgs", "v2", "v1", "", 100);
  ASSERT_TRUE(rev.isOk());
  for (auto& d : rev->items) {
    if (d.path == "gone") {
      EXPECT_EQ(d.kind, ChangeKind::kAdded);
    }
    if (d.path == "dir/y") {
      EXPECT_EQ(d.kind, ChangeKind::kRemoved);
    }
  }
}

TEST_F(MetaStoreTest, RecordIndexDedupAndExactGc) {
  createDataset();
  uint32_t v1 = draft();
  Hash128 c1{10, 1}, c2{10, 2};
  add("imgs", v1, {makeFile("a", 1, 2, 1000, c1)});
  commit("imgs", v1);
  std::vector<Hash128> q = {Hash128{1, 1}, Hash128{1, 2}, Hash128{5, 5}};
  auto locs = store_->lookupRecords("imgs", q);
  ASSERT_TRUE(locs.isOk());
  EXPECT_TRUE((*locs)[0].found);
  EXPECT_EQ((*locs)[1].chunk, c1);
  EXPECT_EQ((*locs)[1].chunk_offset, 1000u);
  EXPECT_FALSE((*locs)[2].found);

  // v2 reuses a's records in c1 and adds new ones in c2: stored bytes count only new.
  uint32_t v2 = draft();
  add("imgs", v2, {makeFile("a", 1, 2, 1000, c1), makeFile("b", 2, 1, 1000, c2)});
  auto info = store_->commitVersion("imgs", v2, "", false);
  ASSERT_TRUE(info.isOk());
  EXPECT_EQ(info->stored_bytes, 1000u);
  EXPECT_EQ(info->logical_bytes, 3000u);

  // Nothing is garbage while versions use the chunks.
  auto g = store_->listGarbage(1, "", 100);
  ASSERT_TRUE(g.isOk());
  EXPECT_TRUE(g->items.empty());
  // Deleting v1 keeps c1 (v2 uses it); deleting v2 too frees both.
  EXPECT_EQ(store_->deleteVersion("imgs", v2, false).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store_->deleteVersion("imgs", v1, false).isOk());
  EXPECT_TRUE(store_->listGarbage(1, "", 100)->items.empty());
  ASSERT_TRUE(store_->deleteVersion("imgs", v2, true).isOk());
  g = store_->listGarbage(1, "", 1);
  ASSERT_TRUE(g.isOk());
  ASSERT_EQ(g->items.size(), 1u);
  auto g2 = store_->listGarbage(1, g->next_cursor, 10);
  ASSERT_TRUE(g2.isOk());
  ASSERT_EQ(g2->items.size(), 1u);
  std::set<Hash128> chunks = {g->items[0].chunk, g2->items[0].chunk};
  EXPECT_EQ(chunks, (std::set<Hash128>{c1, c2}));
  EXPECT_EQ(g->items[0].stripe, stripeOf(g->items[0].chunk, 64));
  // A record whose chunk is garbage is no longer offered for reuse, and the
  // prune drops such entries for good: a's two records and b's one.
  locs = store_->lookupRecords("imgs", q);
  EXPECT_FALSE((*locs)[0].found);
  auto pruned = store_->pruneRecordIndex();
  ASSERT_TRUE(pruned.isOk()) << pruned.status().toString();
  EXPECT_EQ(*pruned, 3u);
  EXPECT_EQ(*store_->pruneRecordIndex(), 0u);
  locs = store_->lookupRecords("imgs", q);
  EXPECT_FALSE((*locs)[0].found);

  // A draft's chunks are kept during the grace period, listed after it.
  uint32_t v3 = draft();
  Hash128 c3{10, 3};
  add("imgs", v3, {makeFile("c", 3, 1, 1000, c3)});
  g = store_->listGarbage(60'000, "", 100);
  EXPECT_EQ(g->items.size(), 2u);
  clock_.advance(std::chrono::milliseconds(120'000));
  g = store_->listGarbage(60'000, "", 100);
  EXPECT_EQ(g->items.size(), 3u);
  // Referencing a garbage chunk again revives it.
  add("imgs", v3, {makeFile("again", 1, 1, 1000, c1)});
  g = store_->listGarbage(60'000, "", 100);
  EXPECT_EQ(g->items.size(), 1u);  // c2 only
  // Entries of live chunks (a draft's too) stay.
  EXPECT_EQ(*store_->pruneRecordIndex(), 0u);
  locs = store_->lookupRecords("imgs", q);
  EXPECT_TRUE((*locs)[0].found);
  EXPECT_EQ((*locs)[0].chunk, c1);
}

// What a lost chunk takes with it: the versions (a draft too) that use it
// and their files with records in it, named once per version, capped, and
// nothing for a chunk no version uses.
TEST_F(MetaStoreTest, ChunkUsersNameTheVersionsAndFilesThatUseAChunk) {
  createDataset();
  createDataset("other");
  const Hash128 shared{20, 1}, only_v2{20, 2}, unused{20, 3};
  uint32_t v1 = draft();
  add("imgs", v1, {makeFile("a/x", 1, 2, 1000, shared), makeFile("a/y", 2, 1, 1000, Hash128{20, 9})});
  commit("imgs", v1);
  uint32_t v2 = draft();
  FileSpec mixed = makeFile("m", 3, 2, 1000, shared);
  mixed.extents[1].chunk = only_v2;  // one record in each chunk
  add("imgs", v2, {makeFile("a/x", 1, 2, 1000, shared), mixed, makeFile("z", 4, 1, 1000, only_v2)});
  commit("imgs", v2);
  uint32_t d = draft("other");
  std::vector<FileSpec> many;
  for (int i = 0; i < 12; ++i) many.push_back(makeFile("f" + std::to_string(i), 100 + i, 1, 1000, shared));
  add("other", d, many);

  std::vector<Hash128> ask = {shared, only_v2, unused, shared};
  auto r = store_->chunkUsers(ask, 10);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_FALSE(r->truncated);
  std::map<std::pair<Hash128, std::string>, ChunkUser> by;
  for (const auto& u : r->users) {
    EXPECT_TRUE(by.emplace(std::pair{u.chunk, u.dataset + "@v" + std::to_string(u.version)}, u).second)
        << "listed twice: " << u.dataset << "@v" << u.version;
  }
  ASSERT_EQ(by.size(), 4u);
  const ChunkUser& s1 = by.at({shared, "imgs@v1"});
  EXPECT_EQ(s1.paths, (std::vector<std::string>{"a/x"}));
  EXPECT_EQ(s1.state, VersionState::kCommitted);
  EXPECT_FALSE(s1.more_paths);
  EXPECT_EQ(by.at({shared, "imgs@v2"}).paths, (std::vector<std::string>{"a/x", "m"}));
  const ChunkUser& draft_user = by.at({shared, "other@v1"});
  EXPECT_EQ(draft_user.state, VersionState::kDraft);
  EXPECT_EQ(draft_user.paths.size(), 10u);
  EXPECT_TRUE(draft_user.more_paths);
  EXPECT_EQ(by.at({only_v2, "imgs@v2"}).paths, (std::vector<std::string>{"m", "z"}));

  // Versions only: no paths, no walk.
  r = store_->chunkUsers(std::vector<Hash128>{only_v2}, 0);
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->users.size(), 1u);
  EXPECT_TRUE(r->users[0].paths.empty());
  // Bad requests name the field.
  std::vector<Hash128> too_many(1001, shared);
  EXPECT_EQ(store_->chunkUsers(too_many, 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->chunkUsers(ask, 1001).status().code(), StatusCode::kInvalidArgument);
  // Once its versions are gone, the chunk has no users.
  ASSERT_TRUE(store_->deleteVersion("imgs", v1, false).isOk());
  ASSERT_TRUE(store_->deleteVersion("imgs", v2, true).isOk());
  r = store_->chunkUsers(std::vector<Hash128>{only_v2}, 10);
  ASSERT_TRUE(r.isOk());
  EXPECT_TRUE(r->users.empty());
}

// Answers stay within their budget: chunks whose users do not fit are left
// for the next call (answered says where to go on), and paths past the
// budget are cut, with more_paths saying so.
TEST_F(MetaStoreTest, ChunkUsersAnswersInPartsWithinABudget) {
  createDataset();
  std::vector<Hash128> chunks;
  for (uint64_t c = 0; c < 100; ++c) chunks.push_back(Hash128{30, c});
  // 170 versions of one file with a record in each of the 100 chunks.
  FileSpec f = makeFile("all", 1, 100);
  for (size_t i = 0; i < f.extents.size(); ++i) f.extents[i].chunk = chunks[i];
  for (int v = 0; v < 170; ++v) commitOne("imgs", f);
  std::map<Hash128, size_t> users_of;
  size_t calls = 0;
  for (size_t first = 0; first < chunks.size(); ++calls) {
    auto r = store_->chunkUsers(std::span(chunks).subspan(first), 5);
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    ASSERT_GT(r->answered, 0u);
    EXPECT_FALSE(r->truncated);
    size_t bytes = 0;
    for (const auto& u : r->users) {
      users_of[u.chunk]++;
      EXPECT_EQ(u.paths, std::vector<std::string>{"all"});
      bytes += 96 + u.dataset.size();
    }
    EXPECT_LE(bytes, kChunkUsersAnswerBytes);
    first += r->answered;
  }
  EXPECT_GT(calls, 1u) << "17,000 users fit one answer: the test proves nothing";
  ASSERT_EQ(users_of.size(), 100u);
  for (const auto& [chunk, n] : users_of) EXPECT_EQ(n, 170u);

  // 20,000 files with 200-byte names over 20 chunks: ~4 MB of paths.
  createDataset("long");
  const uint32_t v = draft("long");
  std::vector<FileSpec> files;
  for (int i = 0; i < 20000; ++i) {
    files.push_back(makeFile("d/" + std::string(200, 'n') + std::to_string(i), 1000 + i, 1, 1000, Hash128{40, uint64_t(i % 20)}));
  }
  add("long", v, files);
  commit("long", v);
  std::vector<Hash128> twenty;
  for (uint64_t c = 0; c < 20; ++c) twenty.push_back(Hash128{40, c});
  auto r = store_->chunkUsers(twenty, 1000);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->answered, 20u);
  EXPECT_TRUE(r->truncated);
  size_t bytes = 0, cut = 0;
  for (const auto& u : r->users) {
    bytes += 96 + u.dataset.size();
    for (const auto& p : u.paths) bytes += 16 + p.size();
    cut += u.more_paths;
  }
  EXPECT_LE(bytes, kChunkUsersAnswerBytes);
  EXPECT_GT(cut, 0u);
  EXPECT_EQ(r->users.size(), 20u);
}

// Drafts nothing was added to for the expiry are aborted (their chunks
// become garbage); a draft still being added to, and committed versions,
// stay.
TEST_F(MetaStoreTest, IdleDraftsExpireAndTheirChunksBecomeGarbage) {
  createDataset();
  const uint32_t committed = commitOne("imgs", makeFile("kept", 1));
  const uint32_t dead = draft();
  add("imgs", dead, {makeFile("half", 2)});
  const uint32_t live = draft();
  add("imgs", live, {makeFile("a", 3)});
  clock_.advance(std::chrono::hours(5));
  add("imgs", live, {makeFile("b", 4)});  // still being uploaded
  clock_.advance(std::chrono::hours(2));
  EXPECT_EQ(store_->abortIdleDrafts(0).status().code(), StatusCode::kInvalidArgument);

  auto sweep = store_->abortIdleDrafts(6 * 3600 * 1000);
  ASSERT_TRUE(sweep.isOk()) << sweep.status().toString();
  EXPECT_TRUE(sweep->failed.empty());
  ASSERT_EQ(sweep->aborted.size(), 1u);
  EXPECT_EQ(sweep->aborted[0].dataset, "imgs");
  EXPECT_EQ(sweep->aborted[0].version, dead);
  EXPECT_EQ(sweep->aborted[0].state, VersionState::kAborted);
  EXPECT_EQ(store_->getVersion("imgs", "v" + std::to_string(dead))->state, VersionState::kAborted);
  EXPECT_EQ(store_->getVersion("imgs", "v" + std::to_string(live))->state, VersionState::kDraft);
  EXPECT_EQ(store_->getVersion("imgs", "v" + std::to_string(committed))->state, VersionState::kCommitted);
  // The aborted draft's chunk is garbage now, for gc to collect (a stale
  // draft's chunks are not collected while the draft exists); the live
  // draft's is not.
  auto g = store_->collectGarbage(100);
  ASSERT_TRUE(g.isOk());
  ASSERT_EQ(g->size(), 1u);
  EXPECT_EQ((*g)[0].chunk, makeFile("half", 2).extents[0].chunk);
  // The upload that died cannot add to it any more; nothing else expires.
  auto late = store_->addFiles("imgs", dead, std::vector<FileSpec>{makeFile("late", 5)});
  EXPECT_EQ(late.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(late.status().message().find("run the upload again"), std::string::npos) << late.status().toString();
  EXPECT_TRUE(store_->abortIdleDrafts(6 * 3600 * 1000)->aborted.empty());
}

TEST_F(MetaStoreTest, AbortReleasesChunksAndRefusesCommit) {
  createDataset();
  uint32_t v = draft();
  add("imgs", v, {makeFile("a", 1)});
  ASSERT_TRUE(store_->abortVersion("imgs", v).isOk());
  EXPECT_EQ(store_->commitVersion("imgs", v, "", false).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->addFiles("imgs", v, std::vector<FileSpec>{makeFile("b", 2)}).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->listGarbage(1, "", 10)->items.size(), 1u);
}

TEST_F(MetaStoreTest, TagsSetMoveDeleteResolve) {
  createDataset();
  uint32_t v1 = draft();
  commit("imgs", v1);
  uint32_t v2 = draft();
  EXPECT_EQ(store_->setTag("imgs", "clean", v2).status().code(), StatusCode::kFailedPrecondition);
  commit("imgs", v2);
  auto prev = store_->setTag("imgs", "clean", v1);
  ASSERT_TRUE(prev.isOk());
  EXPECT_EQ(*prev, 0u);
  prev = store_->setTag("imgs", "clean", v2);
  EXPECT_EQ(*prev, v1);
  EXPECT_EQ(store_->resolveVersion("imgs", "clean")->version, v2);
  auto tags = store_->listTags("imgs", "", 0);
  ASSERT_TRUE(tags.isOk()) << tags.status().toString();
  ASSERT_EQ(tags->items.size(), 2u);
  EXPECT_TRUE(tags->next_cursor.empty());
  // A page at a time, in name order, each starting after the cursor.
  for (int i = 0; i < 20; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "t%02d", i);
    ASSERT_TRUE(store_->setTag("imgs", name, v1).isOk());
  }
  std::vector<std::string> names;
  std::string cursor;
  int pages = 0;
  do {
    auto page = store_->listTags("imgs", cursor, 7);
    ASSERT_TRUE(page.isOk()) << page.status().toString();
    ASSERT_LE(page->items.size(), 7u);
    for (const auto& t : page->items) names.push_back(t.name);
    cursor = page->next_cursor;
    ASSERT_LT(++pages, 10) << "paging does not end";
  } while (!cursor.empty());
  EXPECT_EQ(pages, 4);  // 22 tags
  ASSERT_EQ(names.size(), 22u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(names.front(), "clean");
  EXPECT_EQ(names[2], "t00");
  auto from_gap = store_->listTags("imgs", "t05x", 2);  // a cursor that names no tag
  ASSERT_TRUE(from_gap.isOk());
  ASSERT_EQ(from_gap->items.size(), 2u);
  EXPECT_EQ(from_gap->items[0].name, "t06");
  for (int i = 0; i < 20; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "t%02d", i);
    ASSERT_TRUE(store_->deleteTag("imgs", name).isOk());
  }
  ASSERT_TRUE(store_->deleteTag("imgs", "clean").isOk());
  EXPECT_EQ(store_->deleteTag("imgs", "clean").code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->resolveVersion("imgs", "clean").status().code(), StatusCode::kNotFound);
  // keep_latest leaves latest alone.
  uint32_t v3 = draft();
  ASSERT_TRUE(store_->commitVersion("imgs", v3, "", true).isOk());
  EXPECT_EQ(store_->resolveVersion("imgs", "latest")->version, v2);
}

// Paged listing and paged diff of random nested trees match a model built
// with std::map (the walk order is component-wise path order).
TEST_F(MetaStoreTest, PagedListingAndDiffMatchAModel) {
  createDataset();
  std::mt19937 rng(42);
  const char* names[] = {"a", "a.b", "a-", "b", "ab", "z", "a0"};
  auto randomPath = [&] {
    std::string p;
    int depth = 1 + rng() % 4;
    for (int d = 0; d < depth; ++d) {
      if (d) p += '/';
      p += names[rng() % 7];
      if (d + 1 == depth) p += "_" + std::to_string(rng() % 50);  // files never collide with dirs
    }
    return p;
  };
  auto less = [](const std::string& x, const std::string& y) {
    return internal::comparePaths(x, y) < 0;
  };
  using Model = std::map<std::string, uint64_t, decltype(less)>;
  Model m1(less), m2(less);
  std::vector<FileSpec> f1, f2;
  for (int i = 0; i < 1500; ++i) {
    std::string p = randomPath();
    if (m1.count(p)) continue;
    m1[p] = i + 1;
    f1.push_back(makeFile(p, i + 1));
    int r = rng() % 10;
    if (r == 0) continue;  // removed in v2
    uint64_t seed = r == 1 ? i + 100000 : i + 1;  // changed in v2
    m2[p] = seed;
    f2.push_back(makeFile(p, seed));
  }
  for (int i = 0; i < 200; ++i) {  // added in v2
    std::string p = randomPath();
    if (m1.count(p) || m2.count(p)) continue;
    m2[p] = i + 200000;
    f2.push_back(makeFile(p, i + 200000));
  }
  uint32_t a = draft();
  add("imgs", a, f1);
  commit("imgs", a);
  uint32_t b = draft();
  add("imgs", b, f2);
  commit("imgs", b);

  std::vector<std::string> listed;
  std::string cursor;
  do {
    auto page = store_->listFiles("imgs", "v1", cursor, 7);
    ASSERT_TRUE(page.isOk()) << page.status().toString();
    for (auto& e : page->items) listed.push_back(e.path);
    cursor = page->next_cursor;
  } while (!cursor.empty());
  std::vector<std::string> expected;
  for (auto& [p, seed] : m1) expected.push_back(p);
  EXPECT_EQ(listed, expected);

  std::vector<std::pair<std::string, ChangeKind>> want, got;
  for (auto& [p, seed] : m1) {
    auto it = m2.find(p);
    if (it == m2.end()) want.emplace_back(p, ChangeKind::kRemoved);
    else if (it->second != seed) want.emplace_back(p, ChangeKind::kChanged);
  }
  for (auto& [p, seed] : m2) {
    if (!m1.count(p)) want.emplace_back(p, ChangeKind::kAdded);
  }
  std::sort(want.begin(), want.end(), [&](auto& x, auto& y) { return less(x.first, y.first); });
  cursor.clear();
  do {
    auto page = store_->diff("imgs", "v1", "v2", cursor, 5);
    ASSERT_TRUE(page.isOk()) << page.status().toString();
    for (auto& d : page->items) got.emplace_back(d.path, d.kind);
    cursor = page->next_cursor;
  } while (!cursor.empty());
  EXPECT_EQ(got, want);
}

FileSpec makeDir(std::string path, uint32_t mode, int64_t mtime_ns = 1'600'000'000'000'000'000) {
  FileSpec f;
  f.path = std::move(path);
  f.type = EntryType::kDirectory;
  f.mode = mode;
  f.mtime_ns = mtime_ns;
  return f;
}

FileSpec makeLink(std::string path, std::string target,
                  int64_t mtime_ns = 1'650'000'000'000'000'000) {
  FileSpec f;
  f.path = std::move(path);
  f.type = EntryType::kSymlink;
  f.mode = 0777;
  f.mtime_ns = mtime_ns;
  f.size = target.size();
  f.symlink_target = std::move(target);
  return f;
}

std::vector<Entry> listAll(MetaStore& store, const std::string& ref, uint32_t page_size) {
  std::vector<Entry> out;
  std::string cursor;
  do {
    auto page = store.listFiles("imgs", ref, cursor, page_size);
    EXPECT_TRUE(page.isOk()) << page.status().toString();
    if (!page.isOk()) break;
    out.insert(out.end(), page->items.begin(), page->items.end());
    cursor = page->next_cursor;
  } while (!cursor.empty());
  return out;
}

TEST_F(MetaStoreTest, EmptyExplicitDirectorySurvivesCommitWithItsModeAndMtime) {
  createDataset();
  uint32_t v = draft();
  const int64_t t = 1'600'000'000'123'456'789;
  add("imgs", v, {makeDir("empty", 0700, t), makeDir("x/y/deep", 0750, t + 1), makeFile("f", 1)});
  add("imgs", v, {makeDir("empty", 0700, t)});  // retry: no-op
  EXPECT_EQ(store_->addFiles("imgs", v, std::vector<FileSpec>{makeDir("empty", 0755, t)})
                .status().code(),
            StatusCode::kAlreadyExists);
  auto info = store_->commitVersion("imgs", v, "", false);
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  EXPECT_EQ(info->file_count, 1u);  // directories are not files
  EXPECT_EQ(info->logical_bytes, 1000u);
  reopen();  // durable

  auto root = store_->readDir("imgs", "v1", "", "", 0);
  ASSERT_TRUE(root.isOk()) << root.status().toString();
  ASSERT_EQ(root->items.size(), 3u);
  EXPECT_EQ(root->items[0].path, "empty");
  EXPECT_EQ(root->items[0].type, EntryType::kDirectory);
  EXPECT_EQ(root->items[0].mode, 0700u);
  EXPECT_EQ(root->items[0].mtime_ns, t);
  EXPECT_EQ(root->items[0].size, 0u);
  EXPECT_EQ(root->items[1].path, "f");
  // An implicit directory keeps today's attributes: 0755, the commit time.
  EXPECT_EQ(root->items[2].path, "x");
  EXPECT_EQ(root->items[2].type, EntryType::kDirectory);
  EXPECT_EQ(root->items[2].mode, 0755u);
  EXPECT_EQ(root->items[2].mtime_ns, info->committed_ms * 1'000'000);

  auto inside = store_->readDir("imgs", "v1", "empty", "", 0);
  ASSERT_TRUE(inside.isOk()) << inside.status().toString();
  EXPECT_TRUE(inside->items.empty());
  auto st = store_->stat("imgs", "v1", "x/y/deep");
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_EQ(st->type, EntryType::kDirectory);
  EXPECT_EQ(st->mode, 0750u);
  EXPECT_EQ(st->mtime_ns, t + 1);
  std::vector<std::string_view> paths = {"empty", "x/y"};
  auto lk = store_->lookup("imgs", "v1", paths, true, 10);
  ASSERT_TRUE(lk.isOk());
  ASSERT_TRUE((*lk)[0].found);
  EXPECT_EQ((*lk)[0].entry.mode, 0700u);
  EXPECT_EQ((*lk)[0].entry.mtime_ns, t);
  EXPECT_TRUE((*lk)[0].extents.empty());
  ASSERT_TRUE((*lk)[1].found);
  EXPECT_EQ((*lk)[1].entry.mode, 0755u);
  EXPECT_EQ(store_->getExtents("imgs", "v1", "empty", 0, 10).status().code(),
            StatusCode::kFailedPrecondition);

  // ListFiles: files, symlinks and explicit directories; implicit ones
  // ("x", "x/y") are implied by the paths below them.
  auto all = listAll(*store_, "v1", 1);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].path, "empty");
  EXPECT_EQ(all[0].type, EntryType::kDirectory);
  EXPECT_EQ(all[0].mode, 0700u);
  EXPECT_EQ(all[0].mtime_ns, t);
  EXPECT_EQ(all[1].path, "f");
  EXPECT_EQ(all[1].type, EntryType::kFile);
  EXPECT_EQ(all[2].path, "x/y/deep");
  EXPECT_EQ(all[2].mode, 0750u);
}

TEST_F(MetaStoreTest, ExplicitAndImplicitDirectoriesMixInEitherOrder) {
  createDataset();
  uint32_t v = draft();
  const int64_t t = 1'600'000'000'000'000'007;
  // Implicit first (an earlier batch), explicit later.
  add("imgs", v, {makeFile("late/f", 1), makeFile("late/sub/g", 2)});
  add("imgs", v, {makeDir("late", 0710, t), makeDir("late/sub", 0711, t)});
  // Explicit first, implicit later.
  add("imgs", v, {makeDir("early", 0700, t), makeDir("early/a/b", 0701, t)});
  add("imgs", v, {makeFile("early/h", 3), makeFile("early/a/b/i", 4), makeFile("early/a/j", 5)});
  // Both in one batch, in either order within the batch.
  add("imgs", v, {makeFile("same/k", 6), makeDir("same", 0702, t), makeDir("same2", 0703, t),
                  makeFile("same2/l", 7)});
  // Re-adding an explicit directory after files went under it is still a no-op.
  add("imgs", v, {makeDir("late", 0710, t)});
  commit("imgs", v);

  auto expectDir = [&](const std::string& path, uint32_t mode, size_t children) {
    auto st = store_->stat("imgs", "v1", path);
    ASSERT_TRUE(st.isOk()) << path << ": " << st.status().toString();
    EXPECT_EQ(st->type, EntryType::kDirectory) << path;
    EXPECT_EQ(st->mode, mode) << path;
    auto rd = store_->readDir("imgs", "v1", path, "", 0);
    ASSERT_TRUE(rd.isOk()) << rd.status().toString();
    EXPECT_EQ(rd->items.size(), children) << path;
  };
  expectDir("late", 0710, 2);
  expectDir("late/sub", 0711, 1);
  expectDir("early", 0700, 2);
  expectDir("early/a", 0755, 2);  // implicit between explicit ones
  expectDir("early/a/b", 0701, 1);
  expectDir("same", 0702, 1);
  expectDir("same2", 0703, 1);
  for (const char* f : {"late/f", "late/sub/g", "early/h", "early/a/b/i", "early/a/j", "same/k",
                        "same2/l"}) {
    auto st = store_->stat("imgs", "v1", f);
    ASSERT_TRUE(st.isOk()) << f << ": " << st.status().toString();
    EXPECT_EQ(st->type, EntryType::kFile);
  }
  auto root = store_->readDir("imgs", "v1", "", "", 0);
  ASSERT_TRUE(root.isOk());
  EXPECT_EQ(root->items.size(), 4u);  // no duplicate directory entries

  std::vector<std::string> listed;
  for (const Entry& e : listAll(*store_, "v1", 1)) listed.push_back(e.path);
  std::vector<std::string> want = {"early",    "early/a/b", "early/a/b/i", "early/a/j",
                                   "early/h",  "late",      "late/f",      "late/sub",
                                   "late/sub/g", "same",    "same/k",      "same2",
                                   "same2/l"};
  EXPECT_EQ(listed, want);
}

TEST_F(MetaStoreTest, FileDirectoryAndSymlinkOfOnePathConflict) {
  createDataset();
  uint32_t v = draft();
  add("imgs", v, {makeFile("file", 1), makeDir("dir", 0755), makeLink("link", "file")});
  auto refused = [&](std::vector<FileSpec> files, const std::string& what) {
    Status s = store_->addFiles("imgs", v, files).status();
    EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.toString();
    EXPECT_NE(s.message().find(what), std::string::npos) << s.toString();
  };
  refused({makeDir("file", 0755)}, "a file of that name");
  refused({makeFile("dir", 2)}, "a directory of that name");
  refused({makeFile("link", 2)}, "a symlink of that name");
  refused({makeDir("link", 0755)}, "a symlink of that name");
  refused({makeLink("dir", "x")}, "a directory of that name");
  refused({makeFile("link/under", 2)}, "is a symlink");
  refused({makeDir("file/under", 0755)}, "is a file");
  refused({makeLink("link", "other")}, "different target");
  // Within one batch, in either order; the batch is all or nothing.
  refused({makeFile("both", 3), makeDir("both", 0755)}, "both");
  refused({makeDir("both2", 0755), makeFile("both2", 3), makeFile("fresh", 4)}, "both2");
  commit("imgs", v);
  EXPECT_EQ(store_->stat("imgs", "v1", "fresh").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->stat("imgs", "v1", "both").status().code(), StatusCode::kNotFound);
  auto all = listAll(*store_, "v1", 100);
  EXPECT_EQ(all.size(), 3u);
}

TEST_F(MetaStoreTest, SymlinkRoundTripsWithItsTargetNeverResolved) {
  createDataset();
  uint32_t v = draft();
  const int64_t t = 1'650'000'000'000'000'042;
  add("imgs", v, {makeLink("links/up", "../data/x", t), makeLink("abs", "/etc/passwd", t),
                  makeFile("data/x", 1)});
  add("imgs", v, {makeLink("abs", "/etc/passwd", t)});  // retry: no-op
  auto info = store_->commitVersion("imgs", v, "", false);
  ASSERT_TRUE(info.isOk());
  EXPECT_EQ(info->file_count, 1u);  // symlinks are not files
  EXPECT_EQ(info->logical_bytes, 1000u);

  auto st = store_->stat("imgs", "v1", "links/up");
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_EQ(st->type, EntryType::kSymlink);
  EXPECT_EQ(st->symlink_target, "../data/x");
  EXPECT_EQ(st->size, 9u);
  EXPECT_EQ(st->mode, 0777u);
  EXPECT_EQ(st->mtime_ns, t);
  EXPECT_EQ(st->extent_count, 0u);

  std::vector<std::string_view> paths = {"abs", "links/up", "data/x"};
  auto lk = store_->lookup("imgs", "v1", paths, true, 10);
  ASSERT_TRUE(lk.isOk());
  ASSERT_TRUE((*lk)[0].found);
  EXPECT_EQ((*lk)[0].entry.type, EntryType::kSymlink);
  EXPECT_EQ((*lk)[0].entry.symlink_target, "/etc/passwd");
  EXPECT_TRUE((*lk)[0].extents.empty());
  EXPECT_EQ((*lk)[1].entry.symlink_target, "../data/x");
  EXPECT_EQ((*lk)[2].entry.type, EntryType::kFile);
  EXPECT_TRUE((*lk)[2].entry.symlink_target.empty());

  auto rd = store_->readDir("imgs", "v1", "links", "", 0);
  ASSERT_TRUE(rd.isOk());
  ASSERT_EQ(rd->items.size(), 1u);
  EXPECT_EQ(rd->items[0].path, "up");
  EXPECT_EQ(rd->items[0].type, EntryType::kSymlink);
  EXPECT_EQ(rd->items[0].symlink_target, "../data/x");
  EXPECT_EQ(rd->items[0].mtime_ns, t);

  auto all = listAll(*store_, "v1", 1);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].path, "abs");
  EXPECT_EQ(all[0].type, EntryType::kSymlink);
  EXPECT_EQ(all[0].symlink_target, "/etc/passwd");
  EXPECT_EQ(all[0].size, 11u);
  EXPECT_EQ(all[1].path, "data/x");
  EXPECT_EQ(all[2].path, "links/up");
  EXPECT_EQ(all[2].symlink_target, "../data/x");

  // Never followed: not a directory, no extents, nothing below it.
  EXPECT_EQ(store_->readDir("imgs", "v1", "abs", "", 0).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->getExtents("imgs", "v1", "abs", 0, 10).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->stat("imgs", "v1", "links/up/x").status().code(), StatusCode::kNotFound);
}

TEST_F(MetaStoreTest, InvalidDirectoryAndSymlinkEntriesAreRefusedNamingTheField) {
  createDataset();
  uint32_t v = draft();
  auto expectInvalid = [&](FileSpec bad, const std::string& field) {
    std::vector<FileSpec> files = {makeFile("ok", 1), std::move(bad)};
    Status s = store_->addFiles("imgs", v, files).status();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.toString();
    EXPECT_NE(s.message().find(field), std::string::npos) << s.toString();
  };
  FileSpec d = makeDir("d", 0755);
  d.extents = makeFile("d", 2).extents;
  expectInvalid(d, "files[1]: a directory has no extents");
  d = makeDir("d", 0755);
  d.size = 5;
  expectInvalid(d, "files[1].size");
  d = makeDir("d", 0755);
  d.append = true;
  expectInvalid(d, "files[1].append");
  d = makeDir("d", 010000);
  expectInvalid(d, "files[1].mode");
  d = makeDir("d", 0755);
  d.symlink_target = "x";
  expectInvalid(d, "files[1].symlink_target");
  expectInvalid(makeDir("", 0755), "files[1].path");

  FileSpec l = makeLink("l", "");
  expectInvalid(l, "files[1].symlink_target: empty");
  l = makeLink("l", std::string(4097, 'a'));
  expectInvalid(l, "files[1].symlink_target: longer than 4096");
  l = makeLink("l", std::string("a\0b", 3));
  expectInvalid(l, "files[1].symlink_target: contains NUL");
  l = makeLink("l", "target");
  l.size = 0;
  expectInvalid(l, "files[1].size");
  l = makeLink("l", "target");
  l.extents = makeFile("l", 3).extents;
  expectInvalid(l, "files[1]: a symlink has no extents");
  l = makeLink("l", "target");
  l.append = true;
  expectInvalid(l, "files[1].append");
  FileSpec f = makeFile("f", 4);
  f.symlink_target = "x";
  expectInvalid(f, "files[1].symlink_target");
  f = makeFile("f", 4);
  f.type = static_cast<EntryType>(9);
  expectInvalid(f, "files[1].type");
  // A target of exactly 4096 bytes with ".." and a leading '/' is data.
  std::string longest = "/../" + std::string(4092, 'b');
  add("imgs", v, {makeLink("long", longest)});
  commit("imgs", v);
  auto st = store_->stat("imgs", "v1", "long");
  ASSERT_TRUE(st.isOk());
  EXPECT_EQ(st->symlink_target, longest);
  EXPECT_EQ(store_->stat("imgs", "v1", "ok").status().code(), StatusCode::kNotFound);
}

TEST_F(MetaStoreTest, DiffReportsSymlinkTargetsAndExplicitDirectories) {
  createDataset();
  uint32_t a = draft();
  add("imgs", a,
      {makeLink("link", "old"), makeLink("same", "s"), makeDir("keep", 0755, 1),
       makeDir("gone", 0700), makeDir("mode", 0700), makeFile("f", 1), makeFile("impl/x", 2),
       makeFile("was_impl/x", 3)});
  commit("imgs", a);
  uint32_t b = draft();
  add("imgs", b,
      {makeLink("link", "newer"), makeLink("same", "s", 5), makeDir("keep", 0755, 2),
       makeDir("mode", 0750), makeLink("f", "target"), makeFile("impl/x", 2),
       makeDir("new/empty", 0755), makeDir("was_impl", 0755), makeFile("was_impl/x", 3)});
  commit("imgs", b);
  std::vector<DiffEntry> all;
  std::string cursor;
  do {
    auto page = store_->diff("imgs", "v1", "v2", cursor, 1);
    ASSERT_TRUE(page.isOk()) << page.status().toString();
    all.insert(all.end(), page->items.begin(), page->items.end());
    cursor = page->next_cursor;
  } while (!cursor.empty());
  std::vector<std::string> paths;
  for (auto& d : all) paths.push_back(d.path);
  // Unchanged: "same" and "keep" (only the mtime moved), "impl" (implicit on
  // both sides), "was_impl" (implicit 0755 against explicit 0755).
  EXPECT_EQ(paths, (std::vector<std::string>{"f", "gone", "link", "mode", "new/empty"}));
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0].kind, ChangeKind::kChanged);  // a file became a symlink
  EXPECT_EQ(all[0].old_size, 1000u);
  EXPECT_EQ(all[0].new_size, 6u);
  EXPECT_EQ(all[1].kind, ChangeKind::kRemoved);
  EXPECT_EQ(all[1].old_size, 0u);
  EXPECT_EQ(all[2].kind, ChangeKind::kChanged);
  EXPECT_EQ(all[2].old_size, 3u);
  EXPECT_EQ(all[2].new_size, 5u);
  EXPECT_EQ(all[3].kind, ChangeKind::kChanged);
  EXPECT_EQ(all[4].kind, ChangeKind::kAdded);
  EXPECT_EQ(all[4].new_size, 0u);
}

TEST_F(MetaStoreTest, PagedListingResumesInsideExplicitDirectories) {
  createDataset();
  uint32_t a = draft();
  commit("imgs", a);  // empty
  uint32_t b = draft();
  add("imgs", b,
      {makeDir("a", 0755), makeDir("a/b", 0755), makeFile("a/b/c", 1), makeFile("a/d", 2),
       makeLink("a/l", "d"), makeDir("a0", 0755), makeDir("e", 0700), makeFile("z/y", 3)});
  commit("imgs", b);
  const std::vector<std::string> want = {"a", "a/b", "a/b/c", "a/d", "a/l", "a0", "e", "z/y"};
  for (uint32_t page : {1u, 2u, 3u, 100u}) {
    std::vector<std::string> listed;
    for (const Entry& e : listAll(*store_, "v2", page)) listed.push_back(e.path);
    EXPECT_EQ(listed, want) << "page " << page;
    std::vector<std::string> added;
    std::string cursor;
    do {
      auto p = store_->diff("imgs", "v1", "v2", cursor, page);
      ASSERT_TRUE(p.isOk()) << p.status().toString();
      for (auto& d : p->items) {
        EXPECT_EQ(d.kind, ChangeKind::kAdded);
        added.push_back(d.path);
      }
      cursor = p->next_cursor;
    } while (!cursor.empty());
    EXPECT_EQ(added, want) << "page " << page;
  }
}

// Random trees of files, symlinks and explicit directories: ListFiles and
// Diff, paged at several sizes, match a model of the documented rules.
TEST_F(MetaStoreTest, PagedListingAndDiffWithDirectoriesAndSymlinksMatchAModel) {
  createDataset();
  std::mt19937 rng(7);
  const char* names[] = {"a", "a.b", "a-", "b", "ab", "a0"};
  auto dirPath = [&] {
    std::string p;
    int depth = 1 + rng() % 3;
    for (int d = 0; d < depth; ++d) p += (d ? "/" : "") + std::string(names[rng() % 6]);
    return p;
  };
  // type 0 file (content = seed), 1 explicit dir, 2 symlink (content = target)
  struct Spec {
    int type;
    uint32_t mode;
    uint64_t content;
  };
  auto less = [](const std::string& x, const std::string& y) {
    return internal::comparePaths(x, y) < 0;
  };
  using Model = std::map<std::string, Spec, decltype(less)>;
  auto randomSpec = [&](uint64_t i) {
    int r = rng() % 10;
    if (r < 2) return std::make_pair(dirPath(), Spec{1, r == 0 ? 0700u : 0755u, 0});
    std::string p = dirPath() + "_" + std::to_string(rng() % 40);  // never a directory name
    return std::make_pair(p, r < 4 ? Spec{2, 0777, i % 5} : Spec{0, 0644, i});
  };
  Model m1(less), m2(less);
  for (uint64_t i = 1; i <= 600; ++i) {
    auto [p, spec] = randomSpec(i);
    m1.emplace(p, spec);
  }
  for (auto& [p, spec] : m1) {
    int r = rng() % 8;
    if (r == 0) continue;  // removed
    Spec s2 = spec;
    if (r == 1 && s2.type != 1) s2.content += 1000;  // new content or target
    if (r == 2) s2.mode = s2.mode == 0700 ? 0755 : 0700;
    m2.emplace(p, s2);
  }
  for (uint64_t i = 2000; i < 2100; ++i) {
    auto [p, spec] = randomSpec(i);
    m2.emplace(p, spec);
  }
  auto specsOf = [&](const Model& m) {
    std::vector<FileSpec> out;
    for (auto& [p, s] : m) {
      if (s.type == 0) {
        out.push_back(makeFile(p, s.content));
      } else if (s.type == 1) {
        out.push_back(makeDir(p, s.mode));
      } else {
        out.push_back(makeLink(p, "t" + std::to_string(s.content)));
      }
      out.back().mode = s.mode;
    }
    std::shuffle(out.begin(), out.end(), rng);  // explicit and implicit in any order
    return out;
  };
  for (const Model* m : {&m1, &m2}) {
    uint32_t v = draft();
    std::vector<FileSpec> all = specsOf(*m);
    size_t half = all.size() / 2;
    add("imgs", v, std::vector<FileSpec>(all.begin(), all.begin() + half));
    add("imgs", v, std::vector<FileSpec>(all.begin() + half, all.end()));
    commit("imgs", v);
  }
  // Everything present: listed entries plus implicit ancestors (0755).
  auto present = [&](const Model& m) {
    Model out(less);
    for (auto& [p, s] : m) {
      out[p] = s;
      for (size_t k = p.find('/'); k != std::string::npos; k = p.find('/', k + 1)) {
        out.emplace(p.substr(0, k), Spec{3, 0755, 0});  // 3: implicit directory
      }
    }
    return out;
  };
  Model p1 = present(m1), p2 = present(m2);
  for (uint32_t page : {1u, 3u, 1000u}) {
    std::vector<std::string> listed, want_listed;
    for (const Entry& e : listAll(*store_, "v1", page)) listed.push_back(e.path);
    for (auto& [p, s] : m1) want_listed.push_back(p);
    EXPECT_EQ(listed, want_listed) << "page " << page;

    std::vector<std::pair<std::string, ChangeKind>> want, got;
    Model both(less);
    for (auto& x : p1) both.insert(x);
    for (auto& x : p2) both.insert(x);
    for (auto& [p, unused] : both) {
      auto a = p1.find(p), b = p2.find(p);
      bool la = a != p1.end() && a->second.type != 3, lb = b != p2.end() && b->second.type != 3;
      if (!la && !lb) continue;
      if (a == p1.end()) {
        want.emplace_back(p, ChangeKind::kAdded);
      } else if (b == p2.end()) {
        want.emplace_back(p, ChangeKind::kRemoved);
      } else {
        auto kind = [](int t) { return t == 3 ? 1 : t; };
        const Spec &x = a->second, &y = b->second;
        if (kind(x.type) != kind(y.type) || x.mode != y.mode || x.content != y.content) {
          want.emplace_back(p, ChangeKind::kChanged);
        }
      }
    }
    std::string cursor;
    do {
      auto d = store_->diff("imgs", "v1", "v2", cursor, page);
      ASSERT_TRUE(d.isOk()) << d.status().toString();
      for (auto& e : d->items) got.emplace_back(e.path, e.kind);
      cursor = d->next_cursor;
    } while (!cursor.empty());
    EXPECT_EQ(got, want) << "page " << page;
    std::set<ChangeKind> kinds;
    for (auto& [path, kind] : want) kinds.insert(kind);
    EXPECT_EQ(kinds.size(), 3u);
  }
}

TEST(PlacementTest, FewerNodesThanReplicas) {
  std::vector<PlacementNode> nodes = {{1, 100, true}, {2, 100, true}};
  auto map = placeStripes({}, 8, 3, nodes, true);
  for (uint32_t s = 0; s < 8; ++s) {
    EXPECT_NE(map[s * 3], map[s * 3 + 1]);
    EXPECT_NE(map[s * 3], 0u);
    EXPECT_EQ(map[s * 3 + 2], 0u);
  }
}

TEST(NamesTest, VersionNumbers) {
  EXPECT_EQ(parseVersionNumber("v1"), 1u);
  EXPECT_EQ(parseVersionNumber("v4294967295"), 4294967295u);
  EXPECT_EQ(parseVersionNumber("v4294967296"), 0u);
  EXPECT_EQ(parseVersionNumber("v01"), 0u);
  EXPECT_EQ(parseVersionNumber("latest"), 0u);
  EXPECT_EQ(parseVersionNumber("v"), 0u);
}

// gc's race with an upload: a chunk collected (tombstoned) after an upload
// looked it up must not be referenced by that upload's AddFiles, or the new
// version would point at deleted data.
TEST_F(MetaStoreTest, CollectedChunksCannotBeReferencedAgain) {
  createDataset("imgs");
  uint32_t v1 = draft("imgs");
  add("imgs", v1, {makeFile("a", 1), makeFile("b", 2)});
  commit("imgs", v1);
  uint32_t v2 = draft("imgs");
  add("imgs", v2, {makeFile("b", 2)});
  commit("imgs", v2);
  ASSERT_TRUE(store_->deleteVersion("imgs", v1, /*force=*/true).isOk());
  // Only file a's chunk lost its last user.
  auto taken = store_->collectGarbage(100);
  ASSERT_TRUE(taken.isOk()) << taken.status().toString();
  ASSERT_EQ(taken->size(), 1u);
  const Hash128 a_chunk = makeFile("a", 1).extents[0].chunk;
  EXPECT_EQ((*taken)[0].chunk, a_chunk);
  // Collected once: a second collect finds nothing.
  auto again = store_->collectGarbage(100);
  ASSERT_TRUE(again.isOk());
  EXPECT_TRUE(again->empty());
  // An upload that still names the collected chunk is refused, and says what to do.
  uint32_t v3 = draft("imgs");
  auto r = store_->addFiles("imgs", v3, std::vector<FileSpec>{makeFile("a", 1)});
  ASSERT_EQ(r.status().code(), StatusCode::kConflict);
  EXPECT_NE(r.status().message().find("run the upload again"), std::string::npos);
  // The dedup index no longer offers records of that chunk.
  auto loc = store_->lookupRecords("imgs", std::vector<Hash128>{makeFile("a", 1).extents[0].record});
  ASSERT_TRUE(loc.isOk());
  EXPECT_FALSE((*loc)[0].found);
}

// Chunks found on nodes: those a version or draft names, or that wait on the
// garbage list, are not orphans; unknown ones are tombstoned, so a late
// upload naming one is refused.
TEST_F(MetaStoreTest, ClaimOrphansTakesOnlyChunksNothingNames) {
  createDataset("imgs");
  uint32_t v1 = draft("imgs");
  add("imgs", v1, {makeFile("a", 1)});
  commit("imgs", v1);
  uint32_t v2 = draft("imgs");
  add("imgs", v2, {makeFile("b", 2)});  // a draft's chunk
  uint32_t v3 = draft("imgs");
  add("imgs", v3, {makeFile("c", 3)});
  commit("imgs", v3);
  ASSERT_TRUE(store_->deleteVersion("imgs", v3, /*force=*/true).isOk());  // c: on the garbage list
  const Hash128 a = makeFile("a", 1).extents[0].chunk, b = makeFile("b", 2).extents[0].chunk,
                c = makeFile("c", 3).extents[0].chunk, orphan = makeFile("d", 4).extents[0].chunk;
  const std::vector<Hash128> found = {a, b, c, orphan};
  auto dry = store_->claimOrphans(found, /*dry_run=*/true);
  ASSERT_TRUE(dry.isOk()) << dry.status().toString();
  EXPECT_EQ(*dry, std::vector<Hash128>{orphan});
  // A dry run wrote nothing: the orphan can still be named.
  uint32_t v4 = draft("imgs");
  ASSERT_TRUE(store_->addFiles("imgs", v4, std::vector<FileSpec>{makeFile("d", 4)}).isOk());
  ASSERT_TRUE(store_->abortVersion("imgs", v4).isOk());
  const Hash128 e = makeFile("e", 5).extents[0].chunk;
  auto claimed = store_->claimOrphans(std::vector<Hash128>{a, e});
  ASSERT_TRUE(claimed.isOk()) << claimed.status().toString();
  EXPECT_EQ(*claimed, std::vector<Hash128>{e});
  // Claimed again (another node's copy): still returned.
  auto twice = store_->claimOrphans(std::vector<Hash128>{e});
  ASSERT_TRUE(twice.isOk());
  EXPECT_EQ(*twice, std::vector<Hash128>{e});
  uint32_t v5 = draft("imgs");
  auto r = store_->addFiles("imgs", v5, std::vector<FileSpec>{makeFile("e", 5)});
  EXPECT_EQ(r.status().code(), StatusCode::kConflict);
  EXPECT_EQ(store_->claimOrphans(std::vector<Hash128>(20000)).status().code(), StatusCode::kInvalidArgument);
}

constexpr int64_t kTtl = 7 * 24 * 3600 * 1000ll;  // --tombstone_ttl's default

// Tombstones are forgotten by whole gc epochs once all of an epoch's are
// older than the TTL; an upload whose draft was begun before a forgotten
// epoch is refused (it may hold a lookup of a collected chunk), a later one
// is not, and the forgotten epoch survives a restart.
TEST_F(MetaStoreTest, OldTombstonesAreForgottenAndOlderDraftsRefused) {
  createDataset("imgs");
  const uint32_t v1 = commitOne("imgs", makeFile("a", 1));
  const uint32_t before_gc = draft("imgs");  // begun in epoch 1; looks "a" up, say
  ASSERT_TRUE(store_->deleteVersion("imgs", v1, /*force=*/true).isOk());
  auto collected = store_->collectGarbage(100);  // epoch 2: a
  ASSERT_TRUE(collected.isOk());
  ASSERT_EQ(collected->size(), 1u);
  const uint32_t after_gc = draft("imgs");  // begun in epoch 2
  // Within the TTL the tombstone refuses "a" to both drafts, and nothing goes.
  EXPECT_EQ(store_->addFiles("imgs", before_gc, std::vector<FileSpec>{makeFile("a", 1)}).status().code(),
            StatusCode::kConflict);
  auto early = store_->pruneTombstones(kTtl);
  ASSERT_TRUE(early.isOk()) << early.status().toString();
  EXPECT_EQ(early->pruned, 0u);
  EXPECT_LT(early->pruned_epoch, 2u);
  EXPECT_TRUE(store_->addFiles("imgs", before_gc, std::vector<FileSpec>{makeFile("b", 2)}).isOk());

  clock_.advance(std::chrono::hours(24 * 6));
  auto orphan = store_->claimOrphans(std::vector<Hash128>{makeFile("z", 9).extents[0].chunk});  // epoch 3
  ASSERT_TRUE(orphan.isOk());
  ASSERT_EQ(orphan->size(), 1u);
  clock_.advance(std::chrono::hours(24 * 2));
  // Epoch 2 is 8 days old, epoch 3 two days: only epoch 2's goes.
  auto pruned = store_->pruneTombstones(kTtl);
  ASSERT_TRUE(pruned.isOk()) << pruned.status().toString();
  EXPECT_EQ(pruned->pruned, 1u);
  EXPECT_EQ(pruned->pruned_epoch, 2u);

  reopen();  // durable
  // The draft begun before epoch 2 can no longer be protected: refused, saying why.
  auto refused = store_->addFiles("imgs", before_gc, std::vector<FileSpec>{makeFile("c", 3)});
  EXPECT_EQ(refused.status().code(), StatusCode::kConflict);
  EXPECT_NE(refused.status().message().find("run the upload again"), std::string::npos)
      << refused.status().toString();
  // The one begun after it could not have learned of "a" before it was
  // collected (a lookup then finds nothing live); naming it again (its
  // bytes put anew) is allowed now the tombstone is gone.
  ASSERT_TRUE(store_->addFiles("imgs", after_gc, std::vector<FileSpec>{makeFile("a", 1)}).isOk());
  // Epoch 3's tombstone is still there.
  EXPECT_EQ(store_->addFiles("imgs", after_gc, std::vector<FileSpec>{makeFile("z", 9)}).status().code(),
            StatusCode::kConflict);
  // A new draft works, and a prune with nothing old enough changes nothing.
  const uint32_t fresh = draft("imgs");
  EXPECT_TRUE(store_->addFiles("imgs", fresh, std::vector<FileSpec>{makeFile("d", 4)}).isOk());
  auto again = store_->pruneTombstones(kTtl);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->pruned, 0u);
  EXPECT_EQ(again->pruned_epoch, 2u);
  EXPECT_EQ(store_->pruneTombstones(0).status().code(), StatusCode::kInvalidArgument);
}

// A store from before gc epochs: its tombstones are 8-byte times, its drafts
// have no epoch, and there is no gc_epoch key. Forgetting those tombstones
// must refuse those drafts (they may have looked a collected chunk up), and
// not drafts begun after the upgrade.
TEST_F(MetaStoreTest, TombstonesAndDraftsFromBeforeEpochsArePrunedSafely) {
  createDataset("imgs");
  const uint32_t v1 = commitOne("imgs", makeFile("a", 1));
  auto legacy = store_->beginVersion("imgs", "from before the upgrade");
  ASSERT_TRUE(legacy.isOk());
  const Hash128 a = makeFile("a", 1).extents[0].chunk;
  ASSERT_TRUE(store_->deleteVersion("imgs", v1, /*force=*/true).isOk());
  store_.reset();
  {
    // Rewrite what the old format wrote.
    LmdbOptions lo;
    lo.dir = dir_.path();
    lo.map_size = 4ull << 30;
    auto env = LmdbEnv::open(lo);
    ASSERT_TRUE(env.isOk()) << env.status().toString();
    auto txn = Txn::beginWrite(**env);
    ASSERT_TRUE(txn.isOk());
    ASSERT_TRUE(txn->del(Db::kGarbage, chunkKey(a)).isOk());
    std::string stamp;
    putBe64(stamp, static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              clock_.wallNow().time_since_epoch())
                                              .count()));
    ASSERT_TRUE(txn->put(Db::kTombstones, chunkKey(a), stamp).isOk());  // 8 bytes
    const std::string key = versionKey(legacy->dataset_id, legacy->version);
    auto rec = txn->get(Db::kVersions, key);
    ASSERT_TRUE(rec.isOk());
    std::string old_record(rec->substr(0, rec->size() - 8));  // no trailing epoch
    ASSERT_TRUE(txn->put(Db::kVersions, key, old_record).isOk());
    ASSERT_TRUE(txn->del(Db::kMeta, internal::kKeyGcEpoch).isOk());
    ASSERT_TRUE(txn->commit().isOk());
  }
  reopen();
  const uint32_t upgraded = draft("imgs");
  // Within the TTL the old tombstone still guards the old draft.
  EXPECT_EQ(store_->addFiles("imgs", legacy->version, std::vector<FileSpec>{makeFile("a", 1)}).status().code(),
            StatusCode::kConflict);
  clock_.advance(std::chrono::hours(24 * 8));
  auto pruned = store_->pruneTombstones(kTtl);
  ASSERT_TRUE(pruned.isOk()) << pruned.status().toString();
  EXPECT_EQ(pruned->pruned, 1u);
  EXPECT_GE(pruned->pruned_epoch, 1u);
  EXPECT_EQ(store_->addFiles("imgs", legacy->version, std::vector<FileSpec>{makeFile("a", 1)}).status().code(),
            StatusCode::kConflict)
      << "a draft from before the upgrade named a chunk whose tombstone was forgotten";
  EXPECT_TRUE(store_->addFiles("imgs", upgraded, std::vector<FileSpec>{makeFile("b", 2)}).isOk());
}

}  // namespace
}  // namespace sluice::meta
