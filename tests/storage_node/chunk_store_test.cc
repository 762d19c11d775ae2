// ChunkStore against real files and real io_uring, with O_DIRECT on and off.
#include "storage_node/chunk_store.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "storage_node/chunk_file.h"
#include "storage_node/scrubber.h"
#include "tests/storage_node/faulty_file_io.h"
#include "tests/storage_node/test_util.h"

namespace sluice::storage {
namespace {

using testing::FaultyFileIo;
using testing::listFiles;
using testing::randomBytes;
using testing::TempDir;

ChunkSource sourceOf(const std::vector<uint8_t>& bytes) {
  return [&bytes](uint64_t off, std::span<uint8_t> dst) {
    if (off + dst.size() > bytes.size()) return outOfRange("source overrun");
    std::memcpy(dst.data(), bytes.data() + off, dst.size());
    return Status::ok();
  };
}

class ChunkStoreTest : public ::testing::TestWithParam<bool> {
 protected:
  ChunkStoreOptions options(size_t buffer = 1u << 20) {
    ChunkStoreOptions o;
    o.data_dir = dir_.path() + "/data";
    o.allow_direct_io = GetParam();
    o.io_buffer_bytes = buffer;
    o.max_stripes = 64;
    return o;
  }
  std::unique_ptr<ChunkStore> open(ChunkStoreOptions o) {
    auto s = ChunkStore::open(std::move(o));
    EXPECT_TRUE(s.isOk()) << s.status().toString();
    return s.isOk() ? std::move(s).value() : nullptr;
  }
  // Puts `bytes` into a store of options() that is closed again, as before a
  // restart.
  ChunkId putThenClose(const std::vector<uint8_t>& bytes) {
    auto store = open(options());
    EXPECT_TRUE(store);
    if (!store) return {};
    auto ctx = store->newContext();
    EXPECT_TRUE(ctx.isOk());
    return ctx.isOk() ? put(*store, **ctx, bytes) : ChunkId{};
  }
  // A store whose file I/O goes through `faulty_`, so a test can inject errors.
  std::unique_ptr<ChunkStore> openFaulty(size_t buffer = 1u << 20) {
    faulty_ = std::make_shared<FaultyFileIo>(makeUringFileIo());
    auto o = options(buffer);
    o.file_io = faulty_;
    return open(o);
  }
  ChunkId put(ChunkStore& store, IoContext& ctx, const std::vector<uint8_t>& bytes) {
    ChunkId id = Hash128::of(bytes);
    auto r = store.put(ctx, id, stripeOf(id, 64), bytes.size(), sourceOf(bytes));
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return id;
  }
  Result<std::vector<uint8_t>> get(ChunkStore& store, IoContext& ctx, const ChunkId& id,
                                   uint64_t off = 0, uint64_t len = 0) {
    std::vector<uint8_t> out;
    auto r = store.read(ctx, id, off, len, [&](uint64_t o, std::span<const uint8_t> src) {
      EXPECT_EQ(o, off + out.size());
      out.insert(out.end(), src.begin(), src.end());
      return Status::ok();
    });
    if (!r.isOk()) return r.status();
    EXPECT_EQ(*r, out.size());
    return out;
  }
  std::string chunkPath(const ChunkId& id) {
    return dir_.path() + "/data/stripes/" + std::to_string(stripeOf(id, 64)) + "/" + id.toHex();
  }
  // Damages payload byte `at` of `id`'s file in place (bit rot: same inode).
  void flipPayloadByte(const ChunkId& id, uint64_t at, uint8_t was) {
    std::fstream f(chunkPath(id), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<long>(kChunkHeaderSize + at));
    const char c = static_cast<char>(was ^ 0x01);
    f.write(&c, 1);
    ASSERT_TRUE(f.good()) << "flipping a byte of " << chunkPath(id);
  }
  TempDir dir_;
  std::shared_ptr<FaultyFileIo> faulty_;  // set by openFaulty
};

TEST_P(ChunkStoreTest, RoundTripsManySizes) {
  // A 256 KiB buffer makes the larger chunks cross several windows.
  auto store = open(options(256 * 1024));
  ASSERT_TRUE(store);
  // O_DIRECT is used only where the file system allows it (not on tmpfs).
  if (!GetParam()) {
    EXPECT_FALSE(store->directIo());
  }
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  const size_t sizes[] = {1, 63, 64, 65, 4031, 4032, 4033, 4095, 4096, 4097, 100000,
                          262144 - 64, 262144, 262145, (1u << 20) + 3, 3u << 20};
  std::vector<std::pair<ChunkId, std::vector<uint8_t>>> stored;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    auto bytes = randomBytes(sizes[i], i + 1);
    ChunkId id = put(*store, **ctx, bytes);
    stored.emplace_back(id, bytes);
    struct stat st {};
    ASSERT_EQ(::stat(chunkPath(id).c_str(), &st), 0);
    EXPECT_EQ(static_cast<size_t>(st.st_size), kChunkHeaderSize + sizes[i]);
  }
  for (auto& [id, bytes] : stored) {
    auto got = get(*store, **ctx, id);
    ASSERT_TRUE(got.isOk()) << got.status().toString();
    EXPECT_EQ(*got, bytes) << "size " << bytes.size();
  }
  StoreStats st = store->stats();
  EXPECT_EQ(st.chunks, std::size(sizes));
  // No temp files left behind.
  for (auto& f : listFiles(dir_.path() + "/data/stripes")) {
    EXPECT_EQ(f.find(".tmp."), std::string::npos) << f;
  }
}

TEST_P(ChunkStoreTest, RangeReadsReturnSingleRecords) {
  auto store = open(options(256 * 1024));
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  auto bytes = randomBytes((2u << 20) + 777, 42);
  ChunkId id = put(*store, **ctx, bytes);
  // Records of assorted sizes at unaligned offsets, including one crossing windows.
  const std::pair<uint64_t, uint64_t> ranges[] = {
      {0, 1}, {1, 100}, {4031, 2}, {4032, 4096}, {131071, 131072}, {200000, 300000},
      {bytes.size() - 1, 1}, {bytes.size() - 5000, 5000}, {777, 0}};
  for (auto [off, len] : ranges) {
    auto got = get(*store, **ctx, id, off, len);
    ASSERT_TRUE(got.isOk()) << got.status().toString();
    uint64_t want = len ? len : bytes.size() - off;
    ASSERT_EQ(got->size(), want);
    EXPECT_TRUE(std::equal(got->begin(), got->end(), bytes.begin() + static_cast<long>(off)))
        << "range " << off << "+" << len;
  }
  auto past = get(*store, **ctx, id, bytes.size() - 10, 11);
  EXPECT_EQ(past.status().code(), StatusCode::kOutOfRange);
  auto at_end = get(*store, **ctx, id, bytes.size(), 0);
  EXPECT_EQ(at_end.status().code(), StatusCode::kOutOfRange);
  auto missing = get(*store, **ctx, Hash128::of("nope", 4));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST_P(ChunkStoreTest, RejectsBadPutsAndLeavesNothing) {
  auto o = options();
  o.max_chunk_bytes = 1u << 20;
  auto store = open(o);
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  auto bytes = randomBytes(300000, 7);
  ChunkId wrong = Hash128::of("other", 5);
  auto r = store->put(**ctx, wrong, stripeOf(wrong, 64), bytes.size(), sourceOf(bytes));
  EXPECT_EQ(r.status().code(), StatusCode::kChecksumMismatch) << r.status().toString();
  EXPECT_FALSE(store->find(wrong));
  EXPECT_TRUE(listFiles(dir_.path() + "/data/stripes").empty());

  ChunkId id = Hash128::of(bytes);
  r = store->put(**ctx, id, 64, bytes.size(), sourceOf(bytes));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  auto big = randomBytes((1u << 20) + 1, 8);
  r = store->put(**ctx, Hash128::of(big), 0, big.size(), sourceOf(big));
  EXPECT_EQ(r.status().code(), StatusCode::kTooLarge);
  r = store->put(**ctx, id, 0, 0, sourceOf(bytes));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->stats().chunks, 0u);
}

TEST_P(ChunkStoreTest, PutIsIdempotent) {
  auto store = open(options());
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  auto bytes = randomBytes(5000, 9);
  ChunkId id = put(*store, **ctx, bytes);
  int calls = 0;
  auto r = store->put(**ctx, id, stripeOf(id, 64), bytes.size(),
                      [&](uint64_t, std::span<uint8_t>) {
                        ++calls;
                        return Status::ok();
                      });
  ASSERT_TRUE(r.isOk());
  EXPECT_TRUE(r->already_present);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(store->stats().chunks, 1u);
  EXPECT_EQ(store->stats().used_bytes, bytes.size());
}

TEST_P(ChunkStoreTest, ConcurrentPutsOfTheSameChunk) {
  auto store = open(options());
  ASSERT_TRUE(store);
  auto bytes = randomBytes(700000, 11);
  ChunkId id = Hash128::of(bytes);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      auto ctx = store->newContext();
      if (!ctx.isOk()) return;
      for (int i = 0; i < 5; ++i) {
        auto r = store->put(**ctx, id, stripeOf(id, 64), bytes.size(), sourceOf(bytes));
        if (r.isOk()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 30);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  auto got = get(*store, **ctx, id);
  ASSERT_TRUE(got.isOk());
  EXPECT_EQ(*got, bytes);
  EXPECT_EQ(store->stats().chunks, 1u);
  EXPECT_EQ(store->stats().used_bytes, bytes.size());
  EXPECT_EQ(listFiles(dir_.path() + "/data/stripes").size(), 1u);
}

TEST_P(ChunkStoreTest, ConcurrentDistinctPutsShareDirectoryFsyncs) {
  auto store = open(options());
  ASSERT_TRUE(store);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto ctx = store->newContext();
      if (!ctx.isOk()) return;
      for (int i = 0; i < 25; ++i) {
        auto bytes = randomBytes(4096 + i, 1000 * t + i);
        ChunkId id = Hash128::of(bytes);
        // All into one stripe so directory fsyncs can be shared.
        if (store->put(**ctx, id, 3, bytes.size(), sourceOf(bytes)).isOk()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 100);
  StoreStats st = store->stats();
  EXPECT_EQ(st.chunks, 100u);
  EXPECT_LE(st.dir_fsyncs, 100u);
  bool more = true;
  auto page1 = store->listStripe(3, std::nullopt, 60, &more);
  EXPECT_EQ(page1.size(), 60u);
  EXPECT_TRUE(more);
  auto page2 = store->listStripe(3, page1.back().id, 60, &more);
  EXPECT_EQ(page2.size(), 40u);
  EXPECT_FALSE(more);
  EXPECT_LT(page1.back().id, page2.front().id);
  auto stripes = store->stripeStats();
  ASSERT_EQ(stripes.size(), 1u);
  EXPECT_EQ(stripes[0].stripe, 3u);
  EXPECT_EQ(stripes[0].chunks, 100u);
}

TEST_P(ChunkStoreTest, FlippedByteIsCaughtByWholeReadAndQuarantined) {
  auto store = open(options());
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  auto bytes = randomBytes(200000, 12);
  ChunkId id = put(*store, **ctx, bytes);
  auto bytes2 = randomBytes(9000, 13);
  ChunkId id2 = put(*store, **ctx, bytes2);
  flipPayloadByte(id, 123456, bytes[123456]);
  // A range read not covering the byte is still served (it is not verified)...
  auto part = get(*store, **ctx, id, 0, 1000);
  ASSERT_TRUE(part.isOk());
  // ...a whole read is verified, fails, and takes the chunk out of service.
  auto whole = get(*store, **ctx, id);
  EXPECT_EQ(whole.status().code(), StatusCode::kCorruption) << whole.status().toString();
  EXPECT_FALSE(store->find(id));
  EXPECT_EQ(get(*store, **ctx, id, 0, 1000).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->stats().corrupt_found, 1u);
  EXPECT_EQ(store->stats().quarantined, 1u);
  EXPECT_EQ(listFiles(dir_.path() + "/data/quarantine").size(), 1u);
  ASSERT_EQ(store->recentCorruptions().size(), 1u);
  EXPECT_EQ(store->recentCorruptions()[0].id, id);

  // A damaged header and a truncated file are caught by verify (scrub's check).
  {
    std::fstream f(chunkPath(id2), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x7f');
  }
  EXPECT_EQ(store->verify(**ctx, id2).code(), StatusCode::kCorruption);
  // The good copy can be put again and is served.
  put(*store, **ctx, bytes);
  auto again = get(*store, **ctx, id);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(*again, bytes);
}

// A slow whole read of a corrupt file can end after scrub has quarantined
// that file and a good copy was fetched under its name: the read fails, but
// the good copy stays served (only the file found corrupt is moved).
TEST_P(ChunkStoreTest, LateCorruptReadLeavesTheRepairedCopyAlone) {
  auto store = open(options());
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  auto other = store->newContext();
  ASSERT_TRUE(ctx.isOk() && other.isOk());
  auto bytes = randomBytes(200000, 21);
  ChunkId id = put(*store, **ctx, bytes);
  flipPayloadByte(id, 4242, bytes[4242]);
  bool repaired = false;
  auto whole = store->read(**ctx, id, 0, 0, [&](uint64_t, std::span<const uint8_t>) {
    if (!repaired) {
      repaired = true;
      // Mid-read: scrub finds the damage, and repair puts the chunk again.
      EXPECT_EQ(store->verify(**other, id).code(), StatusCode::kCorruption);
      EXPECT_FALSE(store->find(id));
      put(*store, **other, bytes);
    }
    return Status::ok();
  });
  EXPECT_EQ(whole.status().code(), StatusCode::kCorruption) << whole.status().toString();
  ASSERT_TRUE(repaired);
  EXPECT_TRUE(store->find(id));
  EXPECT_EQ(store->stats().quarantined, 1u);
  auto again = get(*store, **ctx, id);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(*again, bytes);
}

// Record reads keep chunk files open between reads. A file that leaves its
// name must leave the store's hands too: a chunk quarantined and put again is
// read from its new file, not from the corrupt one still open; a deleted
// chunk's file is closed (its blocks freed), and the kept files stay within
// open_files.
TEST_P(ChunkStoreTest, KeptOpenFilesFollowQuarantineRepairAndDelete) {
  auto o = options();
  o.open_files = 2;
  auto store = open(o);
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  auto bytes = randomBytes(200000, 41);
  ChunkId id = put(*store, **ctx, bytes);
  const std::vector<uint8_t> head(bytes.begin(), bytes.begin() + 1000);
  ASSERT_TRUE(get(*store, **ctx, id, 0, 1000).isOk());
  EXPECT_EQ(store->stats().open_files, 1u);
  flipPayloadByte(id, 500, bytes[500]);
  EXPECT_EQ(get(*store, **ctx, id).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(store->stats().open_files, 0u);
  put(*store, **ctx, bytes);  // repaired from another replica
  auto again = get(*store, **ctx, id, 0, 1000);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(*again, head) << "served from the quarantined file";

  auto fdsNaming = [](const std::string& hex) {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
      std::error_code ec;
      auto target = std::filesystem::read_symlink(e.path(), ec);
      if (!ec && target.string().find(hex) != std::string::npos) ++n;
    }
    return n;
  };
  EXPECT_EQ(fdsNaming(id.toHex()), 1u);
  auto removed = store->remove(id);
  ASSERT_TRUE(removed.isOk() && *removed);
  EXPECT_EQ(fdsNaming(id.toHex()), 0u) << "a deleted chunk's file is still open";
  EXPECT_EQ(get(*store, **ctx, id, 0, 1000).status().code(), StatusCode::kNotFound);

  for (int i = 0; i < 3; ++i) {
    ChunkId other = put(*store, **ctx, randomBytes(5000, 50 + i));
    ASSERT_TRUE(get(*store, **ctx, other, 0, 100).isOk());
  }
  EXPECT_EQ(store->stats().open_files, 2u);
}

// Kept chunk files are a cache: a process out of descriptors (EMFILE) closes
// some of them and goes on, instead of failing reads and puts.
TEST_P(ChunkStoreTest, OutOfDescriptorsClosesKeptFilesAndGoesOn) {
  auto o = options();
  o.open_files = 64;
  auto store = open(o);
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  std::vector<ChunkId> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(put(*store, **ctx, randomBytes(5000, 200 + i)));
  // Stripe directories are opened once and stay open: open them all now.
  const std::vector<uint8_t> late = randomBytes(5000, 300);
  ids.push_back(put(*store, **ctx, late));
  store->remove(ids.back()).status().ignore();
  ids.pop_back();
  for (size_t i = 0; i + 1 < ids.size(); ++i) ASSERT_TRUE(get(*store, **ctx, ids[i], 0, 100).isOk());
  ASSERT_EQ(store->stats().open_files, std::min<uint64_t>(ids.size() - 1, store->stats().open_files_max));

  // A full descriptor table: every number below the soft limit in use (the
  // holes filled with /dev/null), as when a process runs out for real, so a
  // file let go of frees a number a new open may take.
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  struct Restore {
    rlimit limit;
    std::vector<int> fillers;
    ~Restore() {
      ::setrlimit(RLIMIT_NOFILE, &limit);
      for (int fd : fillers) ::close(fd);
    }
  } restore{saved, {}};
  auto noDescriptorLeft = [&] {
    if (::setrlimit(RLIMIT_NOFILE, &saved) != 0) return false;
    int highest = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
      highest = std::max(highest, std::stoi(e.path().filename().string()));
    }
    int fd = -1;
    while ((fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0 && fd <= highest) {
      restore.fillers.push_back(fd);
    }
    if (fd < 0) return false;
    ::close(fd);  // the lowest free number, above every open one
    rlimit tight = saved;
    tight.rlim_cur = static_cast<rlim_t>(fd);
    if (::setrlimit(RLIMIT_NOFILE, &tight) != 0) return false;
    const int probe = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (probe >= 0) ::close(probe);
    return probe < 0 && errno == EMFILE;
  };

  ASSERT_TRUE(noDescriptorLeft());
  const uint64_t kept_before = store->stats().open_files;
  auto r = get(*store, **ctx, ids.back(), 0, 100);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_LT(store->stats().open_files, kept_before) << "no kept file was let go";
  EXPECT_EQ(store->stats().descriptor_shortages, 1u);

  // A put opens a temp file in its stripe's directory: room is made the same way.
  ASSERT_TRUE(noDescriptorLeft());
  const uint64_t kept_before_put = store->stats().open_files;
  const ChunkId id = Hash128::of(late);
  auto put_late = store->put(**ctx, id, stripeOf(id, 64), late.size(), sourceOf(late));
  ASSERT_TRUE(put_late.isOk()) << put_late.status().toString();
  EXPECT_LT(store->stats().open_files, kept_before_put) << "the put let go of no kept file";
  auto back = get(*store, **ctx, id);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, late);

  // Nothing kept to let go of (a store keeping no files): a node problem,
  // kUnavailable so a client reads another replica, naming what to raise.
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  for (int filler : restore.fillers) ::close(filler);
  restore.fillers.clear();
  auto bare = options();
  bare.data_dir = dir_.path() + "/bare";
  bare.open_files = 0;
  auto keeps_none = open(bare);
  ASSERT_TRUE(keeps_none);
  auto bare_ctx = keeps_none->newContext();
  ASSERT_TRUE(bare_ctx.isOk());
  const ChunkId bare_id = put(*keeps_none, **bare_ctx, late);
  ASSERT_TRUE(noDescriptorLeft());
  auto refused = get(*keeps_none, **bare_ctx, bare_id, 0, 100);
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().toString();
  EXPECT_NE(refused.status().message().find("open-file limit"), std::string::npos)
      << refused.status().toString();
}

// --max_chunk limits new puts only: chunks stored under a higher limit are
// still served after a restart with a lower one, not quarantined.
TEST_P(ChunkStoreTest, LoweringTheChunkLimitKeepsLargerStoredChunks) {
  auto big = randomBytes(3u << 20, 7);
  const ChunkId id = putThenClose(big);
  ChunkStoreOptions lower = options();
  lower.max_chunk_bytes = 1u << 20;
  auto store = open(lower);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->stats().chunks, 1u);
  EXPECT_EQ(store->stats().quarantined, 0u);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  auto got = get(*store, **ctx, id);
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_EQ(*got, big);
  // New puts from clients above the lowered limit are refused; a copy from
  // another node (repair) of such a chunk is not: it was accepted there.
  auto bigger = randomBytes((1u << 20) + 1, 8);
  const ChunkId bigger_id = Hash128::of(bigger);
  auto r = store->put(**ctx, bigger_id, stripeOf(bigger_id, 64), bigger.size(), sourceOf(bigger));
  EXPECT_EQ(r.status().code(), StatusCode::kTooLarge);
  r = store->put(**ctx, bigger_id, stripeOf(bigger_id, 64), bigger.size(), sourceOf(bigger),
                 ChunkStore::Origin::kCopy);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(store->find(bigger_id));
}

TEST_P(ChunkStoreTest, ReopenRebuildsInventoryAndDropsTempFiles) {
  std::vector<std::pair<ChunkId, std::vector<uint8_t>>> stored;
  {
    auto store = open(options());
    ASSERT_TRUE(store);
    auto ctx = store->newContext();
    ASSERT_TRUE(ctx.isOk());
    for (int i = 0; i < 20; ++i) {
      auto bytes = randomBytes(1000 + 5000 * i, 100 + i);
      stored.emplace_back(put(*store, **ctx, bytes), bytes);
    }
    // A second store on the same directory is refused while this one is open.
    auto second = ChunkStore::open(options());
    EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(second.status().message().find("locked"), std::string::npos);
  }
  // Debris of a crashed put: a temp file with partial content.
  std::string stray = dir_.path() + "/data/stripes/5/.tmp." + stored[0].first.toHex() + ".9";
  std::filesystem::create_directories(dir_.path() + "/data/stripes/5");
  { std::ofstream(stray) << "partial"; }
  auto store = open(options());
  ASSERT_TRUE(store);
  EXPECT_FALSE(std::filesystem::exists(stray));
  StoreStats st = store->stats();
  EXPECT_EQ(st.chunks, 20u);
  EXPECT_EQ(st.temp_files_removed, 1u);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  uint64_t used = 0;
  for (auto& [id, bytes] : stored) {
    auto got = get(*store, **ctx, id);
    ASSERT_TRUE(got.isOk());
    EXPECT_EQ(*got, bytes);
    used += bytes.size();
  }
  EXPECT_EQ(st.used_bytes, used);
  auto del = store->remove(stored[3].first);
  ASSERT_TRUE(del.isOk());
  EXPECT_TRUE(*del);
  EXPECT_FALSE(std::filesystem::exists(chunkPath(stored[3].first)));
  del = store->remove(stored[3].first);
  ASSERT_TRUE(del.isOk());
  EXPECT_FALSE(*del);
}

// A damaged file found at start in one stripe is quarantined without taking
// the good copy of the same chunk in another stripe out of the inventory,
// whichever stripe the (parallel) scan reaches first.
TEST_P(ChunkStoreTest, DamagedCopyInAnotherStripeLeavesTheGoodOneServed) {
  const auto bytes = randomBytes(20000, 7);
  const ChunkId id = putThenClose(bytes);
  const uint32_t good = stripeOf(id, 64);
  for (uint32_t other : {(good + 1) % 64, (good + 63) % 64}) {
    const std::string dir = dir_.path() + "/data/stripes/" + std::to_string(other);
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/" + id.toHex()) << "too short for a chunk header";
  }
  auto store = open(options());
  ASSERT_TRUE(store);
  StoreStats st = store->stats();
  EXPECT_EQ(st.quarantined, 2u);
  EXPECT_EQ(st.chunks, 1u);
  auto info = store->find(id);
  ASSERT_TRUE(info.has_value()) << "the good copy left the inventory with the damaged ones";
  EXPECT_EQ(info->stripe, good);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  auto got = get(*store, **ctx, id);
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_EQ(*got, bytes);
}

// A failed fsync of stripes/ may be reported to that one call only (Linux),
// so a later one succeeding proves nothing about the stripe directories it
// covered: the put that saw it fails, and so does every put that needs a new
// stripe directory until a restart, while stripes already in use go on.
TEST_P(ChunkStoreTest, AFailedStripesFsyncRefusesNewStripesUntilRestart) {
  auto store = openFaulty();
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  auto putInto = [&](ChunkStore& s, IoContext& c, uint32_t stripe, const std::vector<uint8_t>& b) {
    return s.put(c, Hash128::of(b), stripe, b.size(), sourceOf(b)).status();
  };
  ASSERT_TRUE(putInto(*store, **ctx, 1, randomBytes(5000, 41)).isOk());

  const auto fresh = randomBytes(5000, 42);
  faulty_->faults().dir_sync_failures = 1;
  Status first = putInto(*store, **ctx, 2, fresh);
  EXPECT_EQ(first.code(), StatusCode::kIoError) << first.toString();
  Status again = putInto(*store, **ctx, 2, fresh);  // its fsync would now pass
  EXPECT_EQ(again.code(), StatusCode::kUnavailable) << again.toString();
  EXPECT_NE(again.message().find("restart"), std::string::npos) << again.toString();
  EXPECT_FALSE(store->find(Hash128::of(fresh)));
  EXPECT_TRUE(putInto(*store, **ctx, 1, randomBytes(5000, 43)).isOk())
      << "a stripe directory synced before the failure still takes puts";
  EXPECT_EQ(store->stats().io_errors, 1u) << "the one failed fsync, not each refusal after it";

  store.reset();
  store = open(options());  // the restart's scan and syncfs make stripes/ durable again
  ASSERT_TRUE(store);
  ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  EXPECT_TRUE(putInto(*store, **ctx, 2, fresh).isOk());
}

// Two first uses of stripe directories at once cannot split one failed
// fsync of stripes/ between them (the error may be reported once): whichever
// fsync sees it, neither put succeeds.
TEST_P(ChunkStoreTest, ConcurrentFirstUsesShareAFailedStripesFsync) {
  auto store = openFaulty();
  ASSERT_TRUE(store);
  testing::Faults& f = faulty_->faults();
  {
    std::lock_guard lock(f.sync_mu);
    f.hold_syncs = true;
  }
  auto release = [&f] {
    {
      std::lock_guard lock(f.sync_mu);
      f.hold_syncs = false;
    }
    f.sync_cv.notify_all();
  };
  f.dir_sync_failures = 1;
  const auto a = randomBytes(5000, 81), b = randomBytes(5000, 82);
  Status sa, sb;
  auto putInto = [&](uint32_t stripe, const std::vector<uint8_t>& bytes, Status* out) {
    auto ctx = store->newContext();
    *out = ctx.isOk() ? store->put(**ctx, Hash128::of(bytes), stripe, bytes.size(), sourceOf(bytes)).status()
                      : ctx.status();
  };
  std::thread ta(putInto, 5, std::cref(a), &sa);
  std::thread tb(putInto, 6, std::cref(b), &sb);
  {
    std::unique_lock lock(f.sync_mu);
    f.sync_cv.wait_for(lock, std::chrono::seconds(10), [&] { return f.sync_waiters >= 1; });
  }
  // Time for the second put to reach an fsync too, if anything lets it.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  release();
  ta.join();
  tb.join();
  EXPECT_FALSE(sa.isOk()) << "stripe 5's put succeeded after the failed fsync";
  EXPECT_FALSE(sb.isOk()) << "stripe 6's put succeeded after the failed fsync";
  EXPECT_FALSE(store->find(Hash128::of(a)));
  EXPECT_FALSE(store->find(Hash128::of(b)));
}

// Scrub treats a chunk the disk cannot read back (EIO) as corrupt: it leaves
// the inventory and is reported, so repair fetches it from a replica instead
// of counting an unreadable copy.
TEST_P(ChunkStoreTest, ScrubQuarantinesAChunkTheDiskCannotRead) {
  auto store = openFaulty();
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  auto bytes = randomBytes(100000, 31);
  ChunkId id = put(*store, **ctx, bytes);
  faulty_->faults().read_errno = EIO;
  Status s = store->verify(**ctx, id);
  faulty_->faults().read_errno = 0;
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.toString();
  EXPECT_NE(s.message().find("cannot be read"), std::string::npos) << s.toString();
  EXPECT_FALSE(store->find(id));
  EXPECT_EQ(store->stats().quarantined, 1u);
  ASSERT_EQ(store->recentCorruptions().size(), 1u);
  EXPECT_EQ(store->recentCorruptions()[0].id, id);
}

TEST_P(ChunkStoreTest, NoSpaceFailsThePutCleanlyAndReadsKeepWorking) {
  auto store = openFaulty(128 * 1024);
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  auto good = randomBytes(300000, 21);
  ChunkId good_id = put(*store, **ctx, good);

  // The disk fills up after 200 KiB of the next put: a torn write, then ENOSPC.
  faulty_->faults().write_budget = 200 * 1024;
  faulty_->faults().write_errno = ENOSPC;
  auto bytes = randomBytes(600000, 22);
  ChunkId id = Hash128::of(bytes);
  auto r = store->put(**ctx, id, stripeOf(id, 64), bytes.size(), sourceOf(bytes));
  EXPECT_EQ(r.status().code(), StatusCode::kNoSpace) << r.status().toString();
  EXPECT_FALSE(store->find(id));
  auto files = listFiles(dir_.path() + "/data/stripes");
  EXPECT_EQ(files.size(), 1u);  // only the good chunk: no partial or temp file
  auto got = get(*store, **ctx, good_id);
  ASSERT_TRUE(got.isOk());
  EXPECT_EQ(*got, good);

  // Read errors are reported as I/O errors and counted.
  faulty_->faults().read_errno = EIO;
  EXPECT_EQ(get(*store, **ctx, good_id).status().code(), StatusCode::kIoError);
  EXPECT_EQ(store->stats().io_errors, 1u);
  EXPECT_TRUE(store->find(good_id));  // a client read's error takes nothing out of service
  faulty_->faults().read_errno = 0;

  // Space comes back: the same put succeeds.
  faulty_->faults().write_errno = 0;
  put(*store, **ctx, bytes);
  EXPECT_TRUE(store->find(id));

  // A failing fsync also fails the put and leaves nothing.
  faulty_->faults().fsync_errno = EIO;
  auto b3 = randomBytes(5000, 23);
  r = store->put(**ctx, Hash128::of(b3), 1, b3.size(), sourceOf(b3));
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_EQ(listFiles(dir_.path() + "/data/stripes").size(), 2u);
}

// A directory holding other things and no chunk store is refused, and left
// as it was; an empty one, one with only lost+found (a fresh file system),
// and a store's own (with files added beside it) open.
TEST_P(ChunkStoreTest, ADirectoryOfSomethingElseIsNotTakenOver) {
  auto o = options();
  std::filesystem::create_directories(o.data_dir);
  { std::ofstream(o.data_dir + "/thesis.pdf") << "years of work"; }
  auto refused = ChunkStore::open(o);
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status().toString();
  EXPECT_NE(refused.status().message().find("thesis.pdf"), std::string::npos)
      << refused.status().toString();
  EXPECT_EQ(listFiles(o.data_dir), std::vector<std::string>{"thesis.pdf"});
  EXPECT_FALSE(std::filesystem::exists(o.data_dir + "/stripes"));

  auto fresh_fs = options();
  fresh_fs.data_dir = dir_.path() + "/mnt";
  std::filesystem::create_directories(fresh_fs.data_dir + "/lost+found");
  EXPECT_TRUE(open(fresh_fs));

  std::filesystem::remove(o.data_dir + "/thesis.pdf");
  putThenClose(randomBytes(1000, 51));
  { std::ofstream(o.data_dir + "/README") << "node 7's disk"; }
  EXPECT_TRUE(open(o)) << "a store's own directory opens with other files beside it";
}

// A failure of the node's I/O ring (io_uring_enter refusing) is not the
// disk's: verify, as scrub runs it, answers kUnavailable and leaves the chunk
// in place, also once the ring is out of service.
TEST_P(ChunkStoreTest, ARingFailureQuarantinesNothing) {
  auto faults = std::make_shared<RingFaults>();
  auto o = options();
  o.file_io = makeUringFileIo(8, faults);
  auto store = open(o);
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  const ChunkId id = put(*store, **ctx, randomBytes(3u << 20, 61));
  faults->waits = 1;
  Status s = store->verify(**ctx, id);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.toString();
  faults->waits = 1000000;
  s = store->verify(**ctx, id);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.toString();
  faults->waits = 0;
  EXPECT_TRUE((*ctx)->queue().outOfService());
  s = store->verify(**ctx, id);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.toString();
  EXPECT_TRUE(store->find(id)) << "a good chunk was quarantined for the ring's failure";
  EXPECT_EQ(store->stats().quarantined, 0u);
  EXPECT_EQ(store->stats().io_errors, 0u);
  auto fresh = store->newContext();
  ASSERT_TRUE(fresh.isOk());
  EXPECT_TRUE(store->verify(**fresh, id).isOk());
}

TEST_P(ChunkStoreTest, CapacityLimitRefusesPuts) {
  auto o = options();
  o.capacity_bytes = 100000;
  auto store = open(o);
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  put(*store, **ctx, randomBytes(60000, 31));
  auto bytes = randomBytes(60000, 32);
  auto r = store->put(**ctx, Hash128::of(bytes), 0, bytes.size(), sourceOf(bytes));
  EXPECT_EQ(r.status().code(), StatusCode::kNoSpace);
  EXPECT_NE(r.status().message().find("capacity"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(DirectAndBuffered, ChunkStoreTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Direct" : "Buffered"; });

// 100k small chunks: populate without fsyncs (durability is not under test
// here), then time the reopen, which is what a restarted daemon does.
// kick() names the pass count that proves a pass began after it: one more
// when idle, two more while a pass (which may already be past the damaged
// chunk) is running. Reading stats() after kick() would race the pass.
TEST_P(ChunkStoreTest, ScrubKickNamesThePassThatCoversIt) {
  auto store = open(options());
  ASSERT_TRUE(store);
  auto ctx = store->newContext();
  ASSERT_TRUE(ctx.isOk());
  std::vector<ChunkId> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(put(*store, **ctx, randomBytes(64 * 1024, 100 + i)));
  // 256 KiB at 256 KiB/s: a pass takes about 0.75 s (a chunk per 250 ms).
  Scrubber scrubber(*store, ScrubOptions{256 * 1024, std::chrono::hours(24)});
  ASSERT_TRUE(scrubber.start().isOk());
  auto waitPasses = [&](uint64_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (scrubber.stats().passes < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return scrubber.stats().passes >= n;
  };
  // The first pass starts at once; a kick during it waits for the next.
  while (scrubber.stats().chunks == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(scrubber.kick(), 2u);
  ASSERT_TRUE(waitPasses(2));
  // Damage a chunk while idle: the kicked pass finds it.
  {
    std::fstream f(chunkPath(ids[2]), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-100, std::ios::end);
    f.put('\x5a');
  }
  uint64_t done_at = scrubber.kick();
  EXPECT_EQ(done_at, 3u);
  ASSERT_TRUE(waitPasses(done_at));
  EXPECT_EQ(scrubber.stats().corrupt, 1u);
  EXPECT_FALSE(store->find(ids[2]).has_value());
  EXPECT_TRUE(store->find(ids[1]).has_value());
  // A chunk file removed behind the store's back is lost: reported too.
  ASSERT_EQ(::unlink(chunkPath(ids[0]).c_str()), 0);
  done_at = scrubber.kick();
  ASSERT_TRUE(waitPasses(done_at));
  EXPECT_EQ(scrubber.stats().corrupt, 2u);
  EXPECT_FALSE(store->find(ids[0]).has_value());
  auto recent = store->recentCorruptions();
  ASSERT_EQ(recent.size(), 2u);
  EXPECT_EQ(recent[1].id, ids[0]);
  EXPECT_NE(recent[1].why.find("missing"), std::string::npos) << recent[1].why;
}

TEST(ChunkStoreInventory, RebuildsOneHundredThousandChunks) {
  TempDir dir;
  ChunkStoreOptions o;
  o.data_dir = dir.path() + "/data";
  o.durable = false;
  o.allow_direct_io = false;
  o.max_stripes = 256;
  o.io_buffer_bytes = 64 * 1024;
  constexpr int kChunks = 100000;
  uint64_t used = 0;
  {
    auto store = ChunkStore::open(o);
    ASSERT_TRUE(store.isOk()) << store.status().toString();
    auto ctx = (*store)->newContext();
    ASSERT_TRUE(ctx.isOk());
    std::vector<uint8_t> bytes(16);
    for (int i = 0; i < kChunks; ++i) {
      std::memcpy(bytes.data(), &i, sizeof(i));
      bytes[8] = static_cast<uint8_t>(i % 7);
      size_t len = 9 + static_cast<size_t>(i % 7);
      ChunkId id = Hash128::of(bytes.data(), len);
      auto r = (*store)->put(**ctx, id, stripeOf(id, 256), len,
                             [&](uint64_t off, std::span<uint8_t> dst) {
                               std::memcpy(dst.data(), bytes.data() + off, dst.size());
                               return Status::ok();
                             });
      ASSERT_TRUE(r.isOk()) << r.status().toString();
      used += len;
    }
  }
  auto t0 = std::chrono::steady_clock::now();
  auto store = ChunkStore::open(o);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(store.isOk());
  StoreStats st = (*store)->stats();
  EXPECT_EQ(st.chunks, static_cast<uint64_t>(kChunks));
  EXPECT_EQ(st.used_bytes, used);
  EXPECT_EQ((*store)->stripeStats().size(), 256u);
  std::printf("inventory rebuild: %d chunks in %.3f s (%.0f chunks/s; 1M extrapolates to %.1f s)\n",
              kChunks, secs, kChunks / secs, secs * 1e6 / kChunks);
}

}  // namespace
}  // namespace sluice::storage
