// StorageService over real libfabric endpoints (tcp;ofi_rxm on 127.0.0.1):
// every RPC, its validation, and node-to-node repair copies.
#include "storage_node/storage_service.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <mutex>
#include <future>
#include <condition_variable>
#include <thread>

#include "common/wire/body.h"
#include "common/wire/storage_generated.h"
#include "storage_node/storage_client.h"
#include "tests/storage_node/rpc_fixture.h"

namespace sluice::storage {
namespace {

using testing::clientEndpoint;
using testing::LocalNode;
using testing::randomBytes;
namespace ws = wire::storage;

class StorageServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(node_.start().isOk());
    client_ep_ = clientEndpoint();
    ASSERT_TRUE(client_ep_);
    auto c = StorageClient::connect(*client_ep_, node_.endpoint->address());
    ASSERT_TRUE(c.isOk()) << c.status().toString();
    client_ = std::make_unique<StorageClient>(std::move(c).value());
    auto src = client_ep_->allocateMemory(8u << 20, net::Access::kRemoteRead);
    auto dst = client_ep_->allocateMemory(8u << 20, net::Access::kRemoteWrite);
    ASSERT_TRUE(src.isOk() && dst.isOk());
    src_ = std::move(src).value();
    dst_ = std::move(dst).value();
  }
  void TearDown() override {
    client_.reset();
    if (client_ep_) client_ep_->shutdown();
  }
  ChunkId putBytes(const std::vector<uint8_t>& bytes, uint32_t stripe_count = 64) {
    std::memcpy(src_->data(), bytes.data(), bytes.size());
    ChunkId id = Hash128::of(bytes);
    auto r = client_->putChunk(id, stripeOf(id, stripe_count), *src_, 0, bytes.size());
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return id;
  }

  LocalNode node_;
  std::unique_ptr<net::Endpoint> client_ep_;
  std::unique_ptr<StorageClient> client_;
  std::unique_ptr<net::MemoryRegion> src_, dst_;
};

TEST_F(StorageServiceTest, PutGetRoundTripsManySizes) {
  const size_t sizes[] = {1, 100, 4095, 4096, 4097, 65536, 1000000, (1u << 20) + 1, 4u << 20,
                          (6u << 20) + 12345};
  for (size_t i = 0; i < std::size(sizes); ++i) {
    auto bytes = randomBytes(sizes[i], 500 + i);
    ChunkId id = putBytes(bytes);
    std::memset(dst_->data(), 0, bytes.size());
    auto g = client_->getChunk(id, 0, 0, *dst_, 0);
    ASSERT_TRUE(g.isOk()) << g.status().toString();
    EXPECT_EQ(g->length, bytes.size());
    EXPECT_EQ(g->chunk_length, bytes.size());
    EXPECT_TRUE(g->verified);
    EXPECT_EQ(std::memcmp(dst_->data(), bytes.data(), bytes.size()), 0) << "size " << sizes[i];
  }
  // Putting again is idempotent.
  auto bytes = randomBytes(sizes[3], 503);
  std::memcpy(src_->data(), bytes.data(), bytes.size());
  ChunkId id = Hash128::of(bytes);
  auto again = client_->putChunk(id, stripeOf(id, 64), *src_, 0, bytes.size());
  ASSERT_TRUE(again.isOk());
  EXPECT_TRUE(*again);
}

TEST_F(StorageServiceTest, RangeReadsOfSingleRecords) {
  auto bytes = randomBytes(4u << 20, 600);
  ChunkId id = putBytes(bytes);
  // 128 KiB records at record boundaries, and odd ranges, each into the
  // middle of the client's buffer.
  for (uint64_t off : {uint64_t{0}, uint64_t{131072}, uint64_t{3} << 20, uint64_t{4194304 - 131072}}) {
    auto g = client_->getChunk(id, off, 131072, *dst_, 4096);
    ASSERT_TRUE(g.isOk()) << g.status().toString();
    EXPECT_EQ(g->length, 131072u);
    EXPECT_FALSE(g->verified);
    EXPECT_EQ(std::memcmp(dst_->data() + 4096, bytes.data() + off, 131072), 0);
  }
  auto g = client_->getChunk(id, 12345, 777, *dst_, 1);
  ASSERT_TRUE(g.isOk());
  EXPECT_EQ(std::memcmp(dst_->data() + 1, bytes.data() + 12345, 777), 0);
  g = client_->getChunk(id, 4194300, 0, *dst_, 0);  // to the end
  ASSERT_TRUE(g.isOk());
  EXPECT_EQ(g->length, 4u);

  auto past = client_->getChunk(id, 4194300, 5, *dst_, 0);
  EXPECT_EQ(past.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(past.status().message().find("past its end"), std::string::npos);
  auto missing = client_->getChunk(Hash128::of("x", 1), 0, 0, *dst_, 0);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// getChunkAsync as a reader keeps records in flight: each callback starts
// the next read, many at once into distinct parts of one buffer; a request
// that is wrong before it leaves answers at once, on the caller's thread.
TEST_F(StorageServiceTest, AsyncRecordReadsKeepManyInFlight) {
  constexpr uint64_t kRecord = 64u << 10;
  constexpr size_t kSlots = 16;
  constexpr size_t kReads = 200;
  auto bytes = randomBytes(4u << 20, 650);
  ChunkId id = putBytes(bytes);
  auto offsetOf = [&](size_t i) { return (i * 7919 % 64) * kRecord; };

  std::mutex mu;
  std::condition_variable cv;
  size_t next = 0, done = 0, wrong = 0;
  Status first_error;
  std::function<void(size_t)> start = [&](size_t slot) {
    size_t i;
    {
      std::lock_guard lock(mu);
      if (next == kReads) return;
      i = next++;
    }
    client_->getChunkAsync(
        id, offsetOf(i), kRecord, *dst_, slot * kRecord, [&, i, slot](Result<GetChunkResult> r) {
          const bool right = r.isOk() && r->length == kRecord &&
                             std::memcmp(dst_->data() + slot * kRecord, bytes.data() + offsetOf(i),
                                         kRecord) == 0;
          start(slot);  // the slot's part of the buffer is free again
          // Counted last, notified under the lock: once the waiter can see
          // the last read, this thread touches nothing of the test's.
          std::lock_guard lock(mu);
          if (!r.isOk() && first_error.isOk()) first_error = r.status();
          if (r.isOk() && !right) ++wrong;
          ++done;
          cv.notify_all();
        });
  };
  for (size_t slot = 0; slot < kSlots; ++slot) start(slot);
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return done == kReads; }))
      << done << " of " << kReads << " reads answered";
  EXPECT_TRUE(first_error.isOk()) << first_error.toString();
  EXPECT_EQ(wrong, 0u);
  lock.unlock();

  std::thread::id ran_on;
  Status refused;
  client_->getChunkAsync(id, 0, 1024, *dst_, dst_->size() - 10, [&](Result<GetChunkResult> r) {
    ran_on = std::this_thread::get_id();
    refused = r.status();
  });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find(id.toHex()), std::string::npos) << refused.toString();
}

TEST_F(StorageServiceTest, BadPutsGetClearErrors) {
  auto bytes = randomBytes(10000, 700);
  std::memcpy(src_->data(), bytes.data(), bytes.size());
  ChunkId wrong = Hash128::of("not these bytes", 15);
  auto r = client_->putChunk(wrong, 0, *src_, 0, bytes.size());
  EXPECT_EQ(r.status().code(), StatusCode::kChecksumMismatch);
  EXPECT_NE(r.status().message().find(wrong.toHex()), std::string::npos);
  ChunkId id = Hash128::of(bytes);
  r = client_->putChunk(id, 1u << 20, *src_, 0, bytes.size());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  // A chunk larger than the node's maximum is refused before any transfer.
  ws::PutChunkRequestT req;
  req.id = std::make_unique<ws::Hash>(toWire(id));
  req.stripe = 0;
  req.length = 65ull << 20;
  req.source = std::make_unique<ws::Buffer>(0, 0, 65ull << 20);
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(ws::PutChunkRequest::Pack(fbb, &req));
  auto peer = client_ep_->connect(node_.endpoint->address());
  ASSERT_TRUE(peer.isOk());
  auto raw = client_ep_->call(*peer, storageOpcode(ws::StorageMethod::PutChunk), wire::finishBody(fbb));
  EXPECT_EQ(raw.status().code(), StatusCode::kTooLarge);
  // A source buffer shorter than the chunk.
  req.length = 1000;
  req.source = std::make_unique<ws::Buffer>(0, 0, 999);
  flatbuffers::FlatBufferBuilder fbb2;
  fbb2.Finish(ws::PutChunkRequest::Pack(fbb2, &req));
  raw = client_ep_->call(*peer, storageOpcode(ws::StorageMethod::PutChunk), wire::finishBody(fbb2));
  EXPECT_EQ(raw.status().code(), StatusCode::kInvalidArgument);
  // Garbage bodies fail verification for every method.
  std::vector<uint8_t> junk = randomBytes(37, 1);
  for (uint8_t m = 1; m <= 9; ++m) {
    raw = client_ep_->call(*peer, net::makeOpcode(net::ServiceId::kStorage, m), junk);
    EXPECT_EQ(raw.status().code(), StatusCode::kProtocolError) << int(m);
  }
  EXPECT_EQ(node_.store->stats().chunks, 0u);
}

TEST_F(StorageServiceTest, StripeCountIsEnforcedWhenKnown) {
  node_.service->setStripeCount(64);
  auto bytes = randomBytes(5000, 800);
  std::memcpy(src_->data(), bytes.data(), bytes.size());
  ChunkId id = Hash128::of(bytes);
  auto r = client_->putChunk(id, (stripeOf(id, 64) + 1) % 64, *src_, 0, bytes.size());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("belongs to stripe"), std::string::npos);
  r = client_->putChunk(id, stripeOf(id, 64), *src_, 0, bytes.size());
  EXPECT_TRUE(r.isOk());
}

TEST_F(StorageServiceTest, ConcurrentPutsOfTheSameChunkFromManyClients) {
  auto bytes = randomBytes(3u << 20, 900);
  std::memcpy(src_->data(), bytes.data(), bytes.size());
  ChunkId id = Hash128::of(bytes);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3; ++i) {
        if (client_->putChunk(id, stripeOf(id, 64), *src_, 0, bytes.size()).isOk()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 12);
  auto g = client_->getChunk(id, 0, 0, *dst_, 0);
  ASSERT_TRUE(g.isOk());
  EXPECT_EQ(std::memcmp(dst_->data(), bytes.data(), bytes.size()), 0);
  EXPECT_EQ(node_.store->stats().chunks, 1u);
}

TEST_F(StorageServiceTest, BatchesListingsAndStats) {
  std::vector<ChunkId> ids;
  for (int i = 0; i < 30; ++i) ids.push_back(putBytes(randomBytes(1000 + i, 1000 + i), 4));
  ChunkId absent = Hash128::of("absent", 6);
  std::vector<ChunkId> query = {ids[0], absent, ids[29]};
  auto has = client_->hasChunks(query);
  ASSERT_TRUE(has.isOk());
  EXPECT_EQ((*has)[0], 1000u);
  EXPECT_EQ((*has)[1], 0u);
  EXPECT_EQ((*has)[2], 1029u);

  auto stats = client_->stripeStats();
  ASSERT_TRUE(stats.isOk());
  uint64_t chunks = 0;
  for (const auto& s : *stats) chunks += s.chunks();
  EXPECT_EQ(chunks, 30u);
  EXPECT_LE(stats->size(), 4u);

  // Page through stripe of ids[0] two at a time.
  uint32_t stripe = stripeOf(ids[0], 4);
  std::vector<ChunkId> listed;
  std::optional<ChunkId> after;
  for (;;) {
    auto page = client_->listStripe(stripe, after, 2);
    ASSERT_TRUE(page.isOk());
    listed.insert(listed.end(), page->ids.begin(), page->ids.end());
    if (!page->more) break;
    after = page->ids.back();
  }
  size_t expected = 0;
  for (const auto& id : ids) expected += stripeOf(id, 4) == stripe ? 1 : 0;
  EXPECT_EQ(listed.size(), expected);
  EXPECT_TRUE(std::is_sorted(listed.begin(), listed.end()));

  std::vector<ChunkId> del = {ids[0], absent};
  auto d = client_->deleteChunks(del);
  ASSERT_TRUE(d.isOk());
  EXPECT_TRUE((*d)[0]);
  EXPECT_FALSE((*d)[1]);
  EXPECT_EQ(client_->getChunk(ids[0], 0, 0, *dst_, 0).status().code(), StatusCode::kNotFound);

  auto ns = client_->nodeStats();
  ASSERT_TRUE(ns.isOk()) << ns.status().toString();
  EXPECT_EQ((*ns)->chunk_count, 29u);
  EXPECT_EQ((*ns)->puts, 30u);
  EXPECT_EQ((*ns)->address, node_.endpoint->address());
  EXPECT_EQ((*ns)->direct_io, node_.store->directIo());

  // Batches over the limit are refused.
  std::vector<ChunkId> huge(kMaxBatch + 1, absent);
  EXPECT_EQ(client_->hasChunks(huge).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->listStripe(0, std::nullopt, kMaxBatch + 1).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(StorageServiceTest, CorruptChunkIsNotServed) {
  auto bytes = randomBytes(300000, 1100);
  ChunkId id = putBytes(bytes);
  std::string path = node_.dir.path() + "/data/stripes/" + std::to_string(stripeOf(id, 64)) + "/" +
                     id.toHex();
  {
    FILE* f = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, 64 + 1000, SEEK_SET);
    std::fputc(bytes[1000] ^ 0x80, f);
    std::fclose(f);
  }
  auto g = client_->getChunk(id, 0, 0, *dst_, 0);
  EXPECT_EQ(g.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(client_->getChunk(id, 0, 10, *dst_, 0).status().code(), StatusCode::kNotFound);
  auto ns = client_->nodeStats();
  ASSERT_TRUE(ns.isOk());
  EXPECT_EQ((*ns)->corrupt_found, 1u);
  ASSERT_EQ((*ns)->recent_corrupt.size(), 1u);
  EXPECT_EQ(fromWire(*(*ns)->recent_corrupt[0]->id), id);
}

// A read whose I/O ring goes out of service answers kUnavailable (the client
// reads another replica) and quarantines nothing; the pooled slot is
// replaced as it is next taken, so later reads are served.
TEST(StorageRingTest, ASlotWhoseRingWentOutOfServiceIsReplaced) {
  auto faults = std::make_shared<RingFaults>();
  LocalNode node;
  ChunkStoreOptions so;
  so.file_io = makeUringFileIo(8, faults);
  ASSERT_TRUE(node.start({}, so).isOk());
  auto ep = clientEndpoint();
  ASSERT_TRUE(ep);
  auto c = StorageClient::connect(*ep, node.endpoint->address());
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  auto src = ep->allocateMemory(1u << 20, net::Access::kRemoteRead);
  auto dst = ep->allocateMemory(1u << 20, net::Access::kRemoteWrite);
  ASSERT_TRUE(src.isOk() && dst.isOk());
  const auto bytes = randomBytes(300000, 71);
  std::memcpy((*src)->data(), bytes.data(), bytes.size());
  const ChunkId id = Hash128::of(bytes);
  ASSERT_TRUE(c->putChunk(id, stripeOf(id, 64), **src, 0, bytes.size()).isOk());

  faults->waits = 1000000;  // the next read's ring never gives its completion back
  auto broken = c->getChunk(id, 0, 0, **dst, 0);
  EXPECT_EQ(broken.status().code(), StatusCode::kUnavailable) << broken.status().toString();
  faults->waits = 0;
  for (int i = 0; i < 12; ++i) {  // more reads than the pool's slots, one at a time
    std::memset((*dst)->data(), 0, bytes.size());
    auto g = c->getChunk(id, 0, 0, **dst, 0);
    ASSERT_TRUE(g.isOk()) << "read " << i << ": " << g.status().toString();
    EXPECT_EQ(std::memcmp((*dst)->data(), bytes.data(), bytes.size()), 0);
  }
  EXPECT_EQ(node.store->stats().quarantined, 0u);
  ep->shutdown();
}

TEST(StorageRepairTest, FetchAndPushCopyVerifiedStripesBetweenNodes) {
  LocalNode a, b, c;
  ASSERT_TRUE(a.start().isOk());
  ASSERT_TRUE(b.start().isOk());
  ASSERT_TRUE(c.start().isOk());
  auto ep = clientEndpoint();
  ASSERT_TRUE(ep);
  auto src = ep->allocateMemory(4u << 20, net::Access::kRemoteRead);
  ASSERT_TRUE(src.isOk());
  auto ca = StorageClient::connect(*ep, a.endpoint->address());
  auto cb = StorageClient::connect(*ep, b.endpoint->address());
  auto cc = StorageClient::connect(*ep, c.endpoint->address());
  ASSERT_TRUE(ca.isOk() && cb.isOk() && cc.isOk());
  // Stripe 5 on node a: chunks of several sizes, one larger than the 1 MiB I/O buffer.
  std::vector<std::pair<ChunkId, std::vector<uint8_t>>> chunks;
  for (size_t n : {size_t{1}, size_t{5000}, size_t{300000}, size_t{3u << 20}}) {
    auto bytes = randomBytes(n, n);
    std::memcpy((*src)->data(), bytes.data(), n);
    ChunkId id = Hash128::of(bytes);
    ASSERT_TRUE(ca->putChunk(id, 5, **src, 0, n).isOk());
    chunks.emplace_back(id, bytes);
  }
  // b fetches the whole stripe from a.
  auto fetched = cb->fetchChunks(5, a.endpoint->address(), {}, 0, net::Duration(60000));
  ASSERT_TRUE(fetched.isOk()) << fetched.status().toString();
  EXPECT_EQ(fetched->copied, 4u);
  EXPECT_EQ(fetched->failed, 0u) << fetched->first_error;
  // Again: nothing left to copy.
  fetched = cb->fetchChunks(5, a.endpoint->address(), {}, 0, net::Duration(60000));
  ASSERT_TRUE(fetched.isOk());
  EXPECT_EQ(fetched->already_present, 4u);
  // a pushes the stripe to c, throttled to 8 MiB/s.
  auto pushed = ca->pushStripe(5, c.endpoint->address(), {}, 8u << 20, net::Duration(60000));
  ASSERT_TRUE(pushed.isOk()) << pushed.status().toString();
  EXPECT_EQ(pushed->copied, 4u);
  EXPECT_EQ(pushed->failed, 0u) << pushed->first_error;
  auto dst = ep->allocateMemory(4u << 20, net::Access::kRemoteWrite);
  ASSERT_TRUE(dst.isOk());
  for (auto* client : {&*cb, &*cc}) {
    for (auto& [id, bytes] : chunks) {
      auto g = client->getChunk(id, 0, 0, **dst, 0);
      ASSERT_TRUE(g.isOk()) << g.status().toString();
      EXPECT_TRUE(g->verified);
      EXPECT_EQ(std::memcmp((*dst)->data(), bytes.data(), bytes.size()), 0);
    }
  }
  // Naming a chunk the source lacks is a counted failure, not a crash.
  std::vector<ChunkId> lacking = {Hash128::of("none", 4)};
  fetched = cb->fetchChunks(5, a.endpoint->address(), lacking, 0, net::Duration(60000));
  ASSERT_TRUE(fetched.isOk());
  EXPECT_EQ(fetched->failed, 1u);
  EXPECT_NE(fetched->first_error.find("not on"), std::string::npos);
  // A rate too slow to finish (1 byte/s: a typo for 1M) is refused up front
  // rather than holding a copy thread for months.
  fetched = cb->fetchChunks(5, a.endpoint->address(), {}, 1, net::Duration(60000));
  EXPECT_EQ(fetched.status().code(), StatusCode::kInvalidArgument) << fetched.status().toString();
  EXPECT_NE(fetched.status().message().find("rate_bytes_per_sec"), std::string::npos);
  pushed = ca->pushStripe(5, c.endpoint->address(), {}, 1000, net::Duration(60000));
  EXPECT_EQ(pushed.status().code(), StatusCode::kInvalidArgument) << pushed.status().toString();
  ep->shutdown();
}

// Copies wait on another node for as long as it takes to answer; they run on
// their own threads, so a node copying from a hung source still serves reads
// at once, however many copies it was asked for.
TEST(StorageRepairTest, CopiesFromAHungSourceDoNotHoldUpReads) {
  LocalNode a;
  ASSERT_TRUE(a.start().isOk());
  // The "source": answers ListStripe only when the test lets it.
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  int listing = 0;
  net::EndpointOptions eo;
  eo.listen = "127.0.0.1:0";
  eo.worker_threads = 16;
  auto hung = net::Endpoint::create(eo);
  ASSERT_TRUE(hung.isOk());
  (*hung)->registerHandler(storageOpcode(ws::StorageMethod::ListStripe),
                           [&](std::unique_ptr<net::IncomingCall> call) {
                             std::unique_lock lock(mu);
                             ++listing;
                             cv.notify_all();
                             cv.wait(lock, [&] { return release; });
                             call->reply(unavailable("the test's hung source"));
                           });
  ASSERT_TRUE((*hung)->start().isOk());

  auto ep = clientEndpoint();
  ASSERT_TRUE(ep);
  auto ca = StorageClient::connect(*ep, a.endpoint->address());
  ASSERT_TRUE(ca.isOk());
  auto src = ep->allocateMemory(1u << 20, net::Access::kRemoteRead);
  ASSERT_TRUE(src.isOk());
  auto bytes = randomBytes(200000, 77);
  std::memcpy((*src)->data(), bytes.data(), bytes.size());
  ChunkId id = Hash128::of(bytes);
  ASSERT_TRUE(ca->putChunk(id, 3, **src, 0, bytes.size()).isOk());

  // More copies than the node has RPC workers.
  constexpr int kCopies = 6;
  std::vector<std::future<Result<TransferResult>>> copies;
  for (int i = 0; i < kCopies; ++i) {
    copies.push_back(std::async(std::launch::async, [&, i] {
      return ca->fetchChunks(10 + static_cast<uint32_t>(i), (*hung)->address(), {}, 0,
                             net::Duration(60000));
    }));
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return listing >= 2; }));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the other copies arrive
  // Reads go on meanwhile, each answered within a short timeout (the copies'
  // listings wait 10 s, the node's call timeout).
  net::EndpointOptions ro;
  ro.listen = "127.0.0.1:0";
  ro.default_timeout = net::Duration(2000);
  auto reader_ep = net::Endpoint::create(ro);
  ASSERT_TRUE(reader_ep.isOk());
  ASSERT_TRUE((*reader_ep)->start().isOk());
  auto reader = StorageClient::connect(**reader_ep, a.endpoint->address());
  ASSERT_TRUE(reader.isOk());
  auto rdst = (*reader_ep)->allocateMemory(1u << 20, net::Access::kRemoteWrite);
  ASSERT_TRUE(rdst.isOk());
  for (int i = 0; i < 20; ++i) {
    auto g = reader->getChunk(id, 0, 0, **rdst, 0);
    ASSERT_TRUE(g.isOk()) << "read " << i << " while copies wait on a hung source: "
                          << g.status().toString();
    EXPECT_EQ(std::memcmp((*rdst)->data(), bytes.data(), bytes.size()), 0);
  }
  {
    std::lock_guard lock(mu);
    EXPECT_LE(listing, 2) << "more copies ran at once than the node's transfer threads";
    release = true;
  }
  cv.notify_all();
  for (auto& c : copies) {
    auto r = c.get();
    EXPECT_FALSE(r.isOk());  // the source answered every listing with an error
  }
  (*reader_ep)->shutdown();
  ep->shutdown();
  (*hung)->shutdown();
}

}  // namespace
}  // namespace sluice::storage
