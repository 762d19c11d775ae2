// The sample order (unit) and the prefetcher over a real dev cluster:
// every sample exactly once with the right bytes, epochs that differ, a
// resume mid-epoch, a shared node-local cache that serves a second consumer
// without the cluster and never serves a corrupt entry, and a budget that
// holds.
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include <gtest/gtest.h>

#include "client/local_cache.h"
#include "client/prefetcher.h"
#include "client/sample_order.h"
#include "tests/client/tree_util.h"
#include "tests/lib/test_cluster.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
using client::OrderSpec;

TEST(SampleOrder, FourRanksTimesTwoWorkersSeeEverySampleExactlyOnce) {
  const uint32_t n = 1000;
  std::map<uint32_t, int> seen;
  std::vector<size_t> per_rank;
  for (uint32_t rank = 0; rank < 4; ++rank) {
    size_t rank_count = 0;
    for (uint32_t worker = 0; worker < 2; ++worker) {
      OrderSpec s;
      s.seed = 9;
      s.epoch = 3;
      s.world_size = 4;
      s.rank = rank;
      s.num_workers = 2;
      s.worker = worker;
      s.worker_batch = 16;
      auto seq = client::rankSequence(n, s);
      for (uint64_t p : client::workerPositions(seq.size(), s, 0)) {
        seen[seq[p]]++;
        rank_count++;
      }
    }
    per_rank.push_back(rank_count);
  }
  EXPECT_EQ(seen.size(), n);
  for (const auto& [sample, count] : seen) EXPECT_EQ(count, 1) << sample;
  for (size_t c : per_rank) EXPECT_EQ(c, 250u);
}

TEST(SampleOrder, UnevenCountsArePaddedOrDroppedToEqualShares) {
  const uint32_t n = 1003;
  for (bool drop : {false, true}) {
    std::set<uint32_t> seen;
    for (uint32_t rank = 0; rank < 4; ++rank) {
      OrderSpec s;
      s.seed = 1;
      s.world_size = 4;
      s.rank = rank;
      s.drop_last = drop;
      auto seq = client::rankSequence(n, s);
      EXPECT_EQ(seq.size(), drop ? 250u : 251u);
      seen.insert(seq.begin(), seq.end());
    }
    EXPECT_EQ(seen.size(), drop ? 1000u : 1003u);
  }
}

TEST(SampleOrder, EpochsAndSeedsGiveDifferentOrdersAndBlocksStayTogether) {
  OrderSpec a;
  a.seed = 5;
  OrderSpec b = a;
  b.epoch = 1;
  OrderSpec c = a;
  c.seed = 6;
  auto oa = client::epochOrder(500, a);
  EXPECT_EQ(oa, client::epochOrder(500, a));  // deterministic
  // A shuffle block past the file count is one block: every file once (a
  // block near 2^32 wrapped the block count to zero, and the order was empty).
  for (uint32_t block : {213u, 214u, 4294967295u}) {
    client::OrderSpec big = a;
    big.shuffle_block = block;
    auto order = client::epochOrder(213, big);
    std::sort(order.begin(), order.end());
    std::vector<uint32_t> all(213);
    std::iota(all.begin(), all.end(), 0u);
    EXPECT_EQ(order, all) << "shuffle_block " << block;
  }
  EXPECT_NE(oa, client::epochOrder(500, b));
  EXPECT_NE(oa, client::epochOrder(500, c));
  OrderSpec blocks = a;
  blocks.shuffle_block = 10;
  auto ob = client::epochOrder(500, blocks);
  for (size_t i = 0; i < ob.size(); i += 10) {
    std::set<uint32_t> group(ob.begin() + static_cast<ptrdiff_t>(i), ob.begin() + static_cast<ptrdiff_t>(i + 10));
    EXPECT_EQ(*group.rbegin() - *group.begin(), 9u) << "block at " << i;
  }
}

TEST(SampleOrder, WorkersResumeWithTheRestOfTheSequence) {
  OrderSpec s;
  s.num_workers = 3;
  s.worker_batch = 4;
  std::set<uint64_t> rest;
  for (uint32_t w = 0; w < 3; ++w) {
    s.worker = w;
    for (uint64_t p : client::workerPositions(100, s, 37)) EXPECT_TRUE(rest.insert(p).second);
  }
  EXPECT_EQ(rest.size(), 63u);
  EXPECT_EQ(*rest.begin(), 37u);
}

TEST(LocalCacheTest, BudgetHoldsAndPlannedEntriesAreNotEvictedByLaterOnes) {
  TempDir dir;
  auto cache = client::LocalCache::open(dir.path() + "/c", 10 * 4096);
  ASSERT_TRUE(cache.isOk()) << cache.status().toString();
  std::vector<RecordHash> ids;
  for (int i = 0; i < 20; ++i) {
    std::string raw = makeContent(4000, static_cast<uint64_t>(i) + 1);
    RecordHash id = Hash128::of(raw.data(), raw.size());
    ids.push_back(id);
    auto put = (*cache)->put(id, {reinterpret_cast<const uint8_t*>(raw.data()), raw.size()},
                             client::LocalCache::kPlannedBase - static_cast<uint64_t>(i));
    ASSERT_TRUE(put.isOk());
    EXPECT_EQ(*put, i < 10) << i;  // later-needed records do not displace earlier ones
    EXPECT_LE((*cache)->stats().used_bytes, 10u * 4096);
  }
  // A record needed sooner than the latest cached one displaces it.
  std::string urgent = makeContent(4000, 999);
  RecordHash uid = Hash128::of(urgent.data(), urgent.size());
  auto put = (*cache)->put(uid, {reinterpret_cast<const uint8_t*>(urgent.data()), urgent.size()},
                           client::LocalCache::kPlannedBase + 1);
  ASSERT_TRUE(put.isOk());
  EXPECT_TRUE(*put);
  EXPECT_FALSE((*cache)->contains(ids[9]));
  EXPECT_TRUE((*cache)->contains(ids[0]));
  std::vector<uint8_t> out(4000);
  EXPECT_TRUE((*cache)->read(uid, 4000, 0, out));
  EXPECT_EQ(std::string(out.begin(), out.end()), urgent);
}

// Bytes of the cache's record files, in 4 KiB blocks as the budget counts.
uint64_t recordBytesOnDisk(const std::string& cache) {
  uint64_t total = 0;
  for (auto& e : fs::recursive_directory_iterator(cache + "/records")) {
    if (e.is_regular_file()) total += (e.file_size() + 4095) / 4096 * 4096;
  }
  return total;
}

// A cache directory on a full file system is an error to report, not a
// SIGBUS inside LMDB's mapped lock file.
TEST(LocalCacheTest, AFullFileSystemIsAnErrorNotACrash) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  TempDir dir;
  const std::string mnt = dir.path() + "/small";
  fs::create_directories(mnt);
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=512k"), 0) << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  fs::create_directories(mnt + "/cache/index");
  {
    // Fill it up.
    std::ofstream fill(mnt + "/fill", std::ios::binary);
    std::string block(4096, 'x');
    while (fill.write(block.data(), block.size())) {
    }
  }
  auto cache = client::LocalCache::open(mnt + "/cache", 64u << 20);
  ASSERT_FALSE(cache.isOk());
  EXPECT_EQ(cache.status().code(), StatusCode::kNoSpace) << cache.status().toString();
  EXPECT_NE(cache.status().message().find(mnt + "/cache"), std::string::npos) << cache.status().toString();
  // With room again it opens.
  fs::remove(mnt + "/fill");
  auto again = client::LocalCache::open(mnt + "/cache", 64u << 20);
  EXPECT_TRUE(again.isOk()) << again.status().toString();
}

class PrefetchE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto c = TestCluster::start();
    ASSERT_TRUE(c.isOk()) << c.status().toString();
    cluster_ = c->release();
    src_ = cluster_->dir() + "/samples";
    for (int i = 0; i < 240; ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "train/s%03d/sample%04d.bin", i % 12, i);
      writeFile(fs::path(src_) / name, makeContent(2000 + static_cast<size_t>(i) * 997 % 150000, i + 1, i % 4 == 0));
    }
    writeFile(fs::path(src_) / "train/big.bin", makeContent(size_t{3} << 20, 7777));
    writeFile(fs::path(src_) / "val/v0.bin", makeContent(5000, 4242));
    auto r = cluster_->runCli({"dataset", "create", "pf"});
    ASSERT_TRUE(r.isOk() && r->exit_code == 0);
    r = cluster_->runCli({"put", src_, "pf", "-q"});
    ASSERT_TRUE(r.isOk() && r->exit_code == 0) << (r.isOk() ? r->err : r.status().toString());
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    auto conn = cluster_->connect();
    ASSERT_TRUE(conn.isOk());
    client_ = std::move(*conn);
  }
  client::PrefetchOptions options(const std::string& cache = "") {
    client::PrefetchOptions o;
    o.dataset = "pf";
    o.version = "v1";
    o.prefix = "train";
    o.order.seed = 11;
    o.cache_dir = cache;
    o.cache_bytes = 64ull << 20;
    o.lookahead_bytes = 4ull << 20;
    return o;
  }
  // Drains the prefetcher: path -> times seen; every sample's bytes checked.
  std::vector<std::string> drain(client::Prefetcher& p, size_t limit = SIZE_MAX) {
    std::vector<std::string> out;
    while (out.size() < limit) {
      auto s = p.next();
      EXPECT_TRUE(s.isOk()) << s.status().toString();
      if (!s.isOk() || !*s) break;
      auto view = (*s)->view();
      std::string expected = readFile(fs::path(src_) / *(*s)->path);
      EXPECT_EQ(std::string(view.begin(), view.end()), expected) << *(*s)->path;
      out.push_back(*(*s)->path);
    }
    return out;
  }

  static TestCluster* cluster_;
  static std::string src_;
  std::unique_ptr<client::Cluster> client_;
};
TestCluster* PrefetchE2E::cluster_ = nullptr;
std::string PrefetchE2E::src_;

TEST_F(PrefetchE2E, EverySampleOnceWithItsBytesAndEpochsDiffer) {
  auto p = client::Prefetcher::create(*client_, options());
  ASSERT_TRUE(p.isOk()) << p.status().toString();
  EXPECT_EQ((*p)->files().size(), 241u);  // train/ only
  auto epoch0 = drain(**p);
  EXPECT_EQ(epoch0.size(), 241u);
  EXPECT_EQ(std::set<std::string>(epoch0.begin(), epoch0.end()).size(), 241u);
  (*p)->setEpoch(1);
  auto epoch1 = drain(**p);
  EXPECT_EQ(epoch1.size(), 241u);
  EXPECT_NE(epoch0, epoch1);
  EXPECT_EQ(std::set<std::string>(epoch1.begin(), epoch1.end()),
            std::set<std::string>(epoch0.begin(), epoch0.end()));
  auto st = (*p)->stats();
  EXPECT_EQ(st.samples, 482u);
  EXPECT_GT(st.fetched_bytes, 0u);
}

TEST_F(PrefetchE2E, ResumeMidEpochYieldsExactlyTheRest) {
  auto o = options();
  o.order.epoch = 2;
  auto full = client::Prefetcher::create(*client_, o);
  ASSERT_TRUE(full.isOk());
  auto all = drain(**full);
  auto first = client::Prefetcher::create(*client_, o);
  ASSERT_TRUE(first.isOk());
  auto head = drain(**first, 97);
  client::PrefetchState saved = (*first)->state();
  EXPECT_EQ(saved.position, 97u);
  EXPECT_EQ(saved.epoch, 2u);
  first->reset();
  auto second = client::Prefetcher::create(*client_, o);
  ASSERT_TRUE(second.isOk());
  ASSERT_TRUE((*second)->resume(saved).isOk());
  auto tail = drain(**second);
  head.insert(head.end(), tail.begin(), tail.end());
  EXPECT_EQ(head, all);
  client::PrefetchState wrong = saved;
  wrong.seed = 12;
  EXPECT_EQ((*second)->resume(wrong).code(), StatusCode::kInvalidArgument);
}

TEST_F(PrefetchE2E, SharedCacheServesASecondConsumerAndDropsCorruptEntries) {
  TempDir dir;
  std::string cache = dir.path() + "/cache";
  {
    auto p = client::Prefetcher::create(*client_, options(cache));
    ASSERT_TRUE(p.isOk()) << p.status().toString();
    drain(**p);
    EXPECT_GT((*p)->stats().fetched_bytes, 0u);
  }
  {
    auto p = client::Prefetcher::create(*client_, options(cache));
    ASSERT_TRUE(p.isOk());
    drain(**p);
    EXPECT_EQ((*p)->stats().fetched_bytes, 0u);
    EXPECT_EQ((*p)->stats().cache_misses, 0u);
  }
  // Flip a byte in three cached records: each is refetched, never served.
  int corrupted = 0;
  for (auto& e : fs::recursive_directory_iterator(cache + "/records")) {
    if (!e.is_regular_file() || corrupted == 3) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    char c;
    f.seekg(10);
    f.get(c);
    f.seekp(10);
    f.put(static_cast<char>(c ^ 0x40));
    corrupted++;
  }
  auto p = client::Prefetcher::create(*client_, options(cache));
  ASSERT_TRUE(p.isOk());
  drain(**p);  // checks every byte
  EXPECT_EQ((*p)->stats().cache_misses, 3u);
  uint64_t on_disk = recordBytesOnDisk(cache);
  EXPECT_LE(on_disk, 64ull << 20);
}

TEST_F(PrefetchE2E, SmallCacheNeverExceedsItsBudget) {
  TempDir dir;
  std::string cache = dir.path() + "/small";
  auto o = options(cache);
  o.cache_bytes = 2ull << 20;  // far smaller than the data (~18 MiB)
  auto p = client::Prefetcher::create(*client_, o);
  ASSERT_TRUE(p.isOk());
  auto got = drain(**p);
  EXPECT_EQ(got.size(), 241u);
  uint64_t on_disk = recordBytesOnDisk(cache);
  EXPECT_LE(on_disk, 2ull << 20);
  EXPECT_GT(on_disk, 0u);
}

TEST_F(PrefetchE2E, BadArgumentsAreClearErrors) {
  auto o = options();
  o.order.rank = 4;
  o.order.world_size = 4;
  auto p = client::Prefetcher::create(*client_, o);
  ASSERT_FALSE(p.isOk());
  EXPECT_NE(p.status().message().find("rank 4"), std::string::npos);
  o = options();
  o.prefix = "nosuchdir";
  p = client::Prefetcher::create(*client_, o);
  ASSERT_FALSE(p.isOk());
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
  o = options();
  o.files = {"train/s000/sample0000.bin", "train/missing.bin"};
  p = client::Prefetcher::create(*client_, o);
  ASSERT_FALSE(p.isOk());
  EXPECT_NE(p.status().message().find("train/missing.bin"), std::string::npos);
}

}  // namespace
}  // namespace sluice::testing
