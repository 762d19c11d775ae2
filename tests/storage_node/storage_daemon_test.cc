// The real sluice-storage daemon as a child process: crash consistency under
// kill -9, scrub, a full disk, and registration with a metadata server.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/net/endpoint.h"
#include "common/wire/body.h"
#include "common/wire/meta_generated.h"
#include "storage_node/node_identity.h"
#include "storage_node/storage_client.h"
#include "tests/storage_node/daemon.h"
#include "tests/storage_node/fake_meta.h"
#include "tests/storage_node/rpc_fixture.h"
#include "tests/storage_node/test_util.h"

namespace sluice::storage {
namespace {

using testing::clientEndpoint;
using testing::FakeMeta;
using testing::listFiles;
using testing::randomBytes;
using testing::StorageDaemon;
using testing::TempDir;

struct Client {
  std::unique_ptr<net::Endpoint> ep;
  std::unique_ptr<StorageClient> c;
  std::unique_ptr<net::MemoryRegion> src, dst;

  void connect(const std::string& address) {
    ep = clientEndpoint();
    ASSERT_TRUE(ep);
    auto cl = StorageClient::connect(*ep, address);
    ASSERT_TRUE(cl.isOk()) << cl.status().toString();
    c = std::make_unique<StorageClient>(std::move(cl).value());
    auto s = ep->allocateMemory(4u << 20, net::Access::kRemoteRead);
    auto d = ep->allocateMemory(4u << 20, net::Access::kRemoteWrite);
    ASSERT_TRUE(s.isOk() && d.isOk());
    src = std::move(s).value();
    dst = std::move(d).value();
  }
  ~Client() {
    c.reset();
    src.reset();
    dst.reset();
    if (ep) ep->shutdown();
  }
  Result<ChunkId> put(const std::vector<uint8_t>& bytes) {
    std::memcpy(src->data(), bytes.data(), bytes.size());
    ChunkId id = Hash128::of(bytes);
    SLUICE_RETURN_IF_ERROR(c->putChunk(id, stripeOf(id, 16), *src, 0, bytes.size()).status());
    return id;
  }
  // The whole chunk, verified by the node.
  Result<std::vector<uint8_t>> get(const ChunkId& id) {
    SLUICE_ASSIGN_OR_RETURN(GetChunkResult g, c->getChunk(id, 0, 0, *dst, 0));
    if (!g.verified) return internalError("whole read not verified");
    return std::vector<uint8_t>(dst->data(), dst->data() + g.length);
  }
};

std::vector<std::string> tempFiles(const std::string& data) {
  std::vector<std::string> out;
  for (auto& f : listFiles(data + "/stripes")) {
    if (f.find(".tmp.") != std::string::npos) out.push_back(f);
  }
  return out;
}

TEST(StorageDaemonTest, KillNineDuringPutsKeepsEveryAcknowledgedChunk) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::vector<std::string> args = {"--standalone", "--data_dir=" + data,
                                         "--listen=127.0.0.1:0", "--scrub.rate=0", "--io_buffer=1M"};
  StorageDaemon daemon;
  ASSERT_TRUE(daemon.start(dir.path(), args).isOk()) << daemon.output(dir.path());
  EXPECT_TRUE(std::filesystem::exists(data + "/NODE"));

  struct Acked {
    ChunkId id;
    size_t size;
    uint64_t seed;
  };
  std::mutex mu;
  std::vector<Acked> acked;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      Client client;
      client.connect(daemon.address());
      if (!client.c) return;
      for (uint64_t i = 0; !stop; ++i) {
        uint64_t seed = static_cast<uint64_t>(w) << 32 | i;
        size_t size = 1000 + (i * 7919 % 2000000);
        auto bytes = randomBytes(size, seed);
        auto r = client.put(bytes);
        if (!r.isOk()) break;  // the daemon is gone
        std::lock_guard lock(mu);
        acked.push_back({*r, size, seed});
      }
    });
  }
  // Kill it while both writers are mid-stream.
  for (int i = 0; i < 3000; ++i) {
    {
      std::lock_guard lock(mu);
      if (acked.size() >= 40) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  daemon.kill9();
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_GE(acked.size(), 10u);

  StorageDaemon restarted;
  ASSERT_TRUE(restarted.start(dir.path(), args).isOk()) << restarted.output(dir.path());
  EXPECT_TRUE(tempFiles(data).empty());
  Client client;
  client.connect(restarted.address());
  ASSERT_TRUE(client.c);
  for (const Acked& a : acked) {
    auto got = client.get(a.id);
    ASSERT_TRUE(got.isOk()) << a.id.toHex() << ": " << got.status().toString();
    EXPECT_EQ(*got, randomBytes(a.size, a.seed));
  }
  // Nothing partial is visible: every chunk the node lists reads back verified,
  // and the node lists exactly the chunk files on disk.
  auto stats = client.c->stripeStats();
  ASSERT_TRUE(stats.isOk());
  uint64_t listed = 0;
  for (const auto& s : *stats) {
    auto page = client.c->listStripe(s.stripe(), std::nullopt, 16384);
    ASSERT_TRUE(page.isOk());
    for (const auto& id : page->ids) {
      EXPECT_TRUE(client.get(id).isOk()) << id.toHex();
      ++listed;
    }
  }
  EXPECT_GE(listed, acked.size());
  EXPECT_EQ(listFiles(data + "/stripes").size(), listed);
  EXPECT_EQ(restarted.stop(), 0);
}

// A client keeps one endpoint for the life of a job. A node killed with -9
// fails that client's next call within seconds, long before the call
// timeout; a node restarted at the same address serves the
// same client again at once, over a new connection, whether or not the
// client called it while it was down.
TEST(StorageDaemonTest, ClientSeesAKilledNodeFailFastAndUsesItsRestartAtOnce) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::vector<std::string> args = {"--standalone", "--data_dir=" + data, "--scrub.rate=0"};
  StorageDaemon daemon;
  ASSERT_TRUE(daemon.start(dir.path(), args).isOk()) << daemon.output(dir.path());
  const std::string address = daemon.address();
  auto with_address = args;
  with_address.push_back("--listen=" + address);
  Client client;
  client.connect(address);
  ASSERT_TRUE(client.c);
  auto bytes = randomBytes(300000, 5);
  auto id = client.put(bytes);
  ASSERT_TRUE(id.isOk()) << id.status().toString();
  ASSERT_TRUE(client.get(*id).isOk());
  auto secondsOf = [](auto fn) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (bool call_while_down : {true, false}) {
    SCOPED_TRACE(call_while_down ? "called while down" : "not called while down");
    daemon.kill9();
    if (call_while_down) {
      Result<std::vector<uint8_t>> dead = internalError("not called");
      const double after = secondsOf([&] { dead = client.get(*id); });
      EXPECT_FALSE(dead.isOk());
      // Refused sends end a call after 1 s; a request accepted onto the dead
      // connection ends when the endpoint's liveness ping is (after 2 s).
      EXPECT_LT(after, 4.0) << "a call to a killed node waited " << after << " s: "
                            << dead.status().toString();
    }
    ASSERT_TRUE(daemon.start(dir.path(), with_address).isOk()) << daemon.output(dir.path());
    Result<std::vector<uint8_t>> back = internalError("not called");
    const double after = secondsOf([&] { back = client.get(*id); });
    ASSERT_TRUE(back.isOk()) << back.status().toString();
    EXPECT_EQ(*back, bytes);
    EXPECT_LT(after, 2.0) << "the restarted node answered after " << after << " s";
  }
  EXPECT_EQ(daemon.stop(), 0);
}

TEST(StorageDaemonTest, ScrubFindsAFlippedByteAndQuarantinesIt) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  StorageDaemon daemon;
  ASSERT_TRUE(daemon
                  .start(dir.path(), {"--standalone", "--data_dir=" + data, "--scrub.rate=1G",
                                      "--scrub.interval=100ms", "--io_buffer=1M"})
                  .isOk())
      << daemon.output(dir.path());
  Client client;
  client.connect(daemon.address());
  ASSERT_TRUE(client.c);
  std::vector<std::pair<ChunkId, std::vector<uint8_t>>> chunks;
  for (int i = 0; i < 5; ++i) {
    auto bytes = randomBytes(100000 + i, 50 + i);
    auto id = client.put(bytes);
    ASSERT_TRUE(id.isOk()) << id.status().toString();
    chunks.emplace_back(*id, bytes);
  }
  const ChunkId bad = chunks[2].first;
  const std::string path = data + "/stripes/" + std::to_string(stripeOf(bad, 16)) + "/" + bad.toHex();
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good());
    f.seekp(64 + 99999);
    f.put(static_cast<char>(chunks[2].second[99999] ^ 0x10));
  }
  std::unique_ptr<NodeStats> ns;
  for (int i = 0; i < 300; ++i) {
    auto r = client.c->nodeStats();
    ASSERT_TRUE(r.isOk());
    ns = std::move(r).value();
    if (ns->corrupt_found >= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(ns->corrupt_found, 1u);
  ASSERT_EQ(ns->recent_corrupt.size(), 1u);
  EXPECT_EQ(fromWire(*ns->recent_corrupt[0]->id), bad);
  EXPECT_EQ(ns->chunk_count, 4u);
  EXPECT_EQ(listFiles(data + "/quarantine").size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(client.get(bad).status().code(), StatusCode::kNotFound);
  for (auto& [id, bytes] : chunks) {
    if (id == bad) continue;
    auto got = client.get(id);
    ASSERT_TRUE(got.isOk());
    EXPECT_EQ(*got, bytes);
  }
  EXPECT_EQ(daemon.stop(), 0);
}

// A real full disk: the data dir on an 8 MiB tmpfs.
class TmpfsMount {
 public:
  explicit TmpfsMount(const std::string& path) : path_(path) {
    std::filesystem::create_directories(path);
    mounted_ = ::mount("tmpfs", path.c_str(), "tmpfs", 0, "size=8m") == 0;
    err_ = errno;
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  int error() const { return err_; }

 private:
  std::string path_;
  bool mounted_ = false;
  int err_ = 0;
};

TEST(StorageDaemonTest, FullDiskFailsThePutCleanlyAndReadsKeepWorking) {
  TempDir dir;
  TmpfsMount mnt(dir.path() + "/mnt");
  if (!mnt.mounted()) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(mnt.error())
                 << "); the injected-ENOSPC store test covers this path";
  }
  const std::string data = dir.path() + "/mnt/data";
  StorageDaemon daemon;
  // --capacity above the disk so the file system, not the capacity check, says no.
  ASSERT_TRUE(daemon
                  .start(dir.path(), {"--standalone", "--data_dir=" + data, "--capacity=1G",
                                      "--scrub.rate=0", "--io_buffer=1M"})
                  .isOk())
      << daemon.output(dir.path());
  Client client;
  client.connect(daemon.address());
  ASSERT_TRUE(client.c);
  std::vector<std::pair<ChunkId, std::vector<uint8_t>>> stored;
  Status failure;
  for (int i = 0; i < 20; ++i) {
    auto bytes = randomBytes(1u << 20, 300 + i);
    auto id = client.put(bytes);
    if (!id.isOk()) {
      failure = id.status();
      break;
    }
    stored.emplace_back(*id, bytes);
  }
  ASSERT_FALSE(failure.isOk()) << "8 MiB tmpfs took 20 MiB";
  EXPECT_EQ(failure.code(), StatusCode::kNoSpace) << failure.toString();
  EXPECT_GE(stored.size(), 3u);
  EXPECT_TRUE(tempFiles(data).empty());
  EXPECT_EQ(listFiles(data + "/stripes").size(), stored.size());
  for (auto& [id, bytes] : stored) {
    auto got = client.get(id);
    ASSERT_TRUE(got.isOk()) << got.status().toString();
    EXPECT_EQ(*got, bytes);
  }
  // Freeing space lets puts succeed again.
  std::vector<ChunkId> del = {stored[0].first, stored[1].first};
  ASSERT_TRUE(client.c->deleteChunks(del).isOk());
  auto again = client.put(randomBytes(1u << 20, 999));
  EXPECT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(daemon.stop(), 0);
}

TEST(StorageDaemonTest, RegistersHeartbeatsAndRefusesAnotherClustersDataDir) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const Hash128 cluster{0x1234, 0x5678};
  FakeMeta meta(cluster);
  ASSERT_TRUE(meta.start().isOk());
  {
    StorageDaemon daemon;
    ASSERT_TRUE(daemon.start(dir.path(), {"--data_dir=" + data, "--meta=" + meta.address(),
                                          "--scrub.rate=0"})
                    .isOk())
        << daemon.output(dir.path());
    auto id = loadNodeIdentity(data);
    ASSERT_TRUE(id.isOk() && id->has_value());
    EXPECT_EQ((*id)->cluster_id, cluster);
    EXPECT_EQ((*id)->node_id, 7u);
    Client client;
    client.connect(daemon.address());
    ASSERT_TRUE(client.c);
    ASSERT_TRUE(client.put(randomBytes(5000, 1)).isOk());
    for (int i = 0; i < 200 && meta.last_chunks_ < 1; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(meta.last_chunks_.load(), 1u);
    EXPECT_EQ(meta.last_node_.load(), 7u);
    auto ns = client.c->nodeStats();
    ASSERT_TRUE(ns.isOk());
    EXPECT_EQ((*ns)->node_id, 7u);
    EXPECT_FALSE((*ns)->standalone);
    EXPECT_EQ(daemon.stop(), 0);
  }
  // The same data dir, now claimed by another cluster: refused with a clear error.
  ASSERT_TRUE(saveNodeIdentity(data, NodeIdentity{Hash128{0x9999, 0x1}, 3}).isOk());
  StorageDaemon daemon;
  Status s = daemon.start(dir.path(), {"--data_dir=" + data, "--meta=" + meta.address(),
                                       "--scrub.rate=0"});
  EXPECT_FALSE(s.isOk());
  EXPECT_EQ(daemon.exitCode(), 1);
  std::string out = daemon.output(dir.path());
  EXPECT_NE(out.find("registering with sluice-meta"), std::string::npos) << out;
  EXPECT_NE(out.find("not this cluster"), std::string::npos) << out;
}

// SIGTERM while the node still waits for meta (registration retries) ends it
// cleanly: it used to abort, the signal taken by the logger's flush thread.
TEST(StorageDaemonTest, StopsCleanlyWhileStillRegistering) {
  TempDir dir;
  StorageDaemon daemon;
  ASSERT_TRUE(daemon.launch(dir.path(), {"--data_dir=" + dir.path() + "/d", "--listen=127.0.0.1:0",
                                         "--meta=127.0.0.1:1"})
                  .isOk());
  bool retrying = false;
  for (int i = 0; i < 1000 && !retrying; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(daemon.logFile());
    std::string log((std::istreambuf_iterator<char>(in)), {});
    retrying = log.find("retrying") != std::string::npos;
  }
  ASSERT_TRUE(retrying) << "the node never tried to register";
  EXPECT_EQ(daemon.stop(), 0) << daemon.output(dir.path());
  EXPECT_EQ(daemon.output(dir.path()).find("terminate called"), std::string::npos)
      << daemon.output(dir.path());
}

TEST(StorageDaemonTest, BadConfigurationExitsWithCodeTwo) {
  TempDir dir;
  StorageDaemon daemon;
  EXPECT_FALSE(daemon.start(dir.path(), {"--data_dir=" + dir.path() + "/d"}).isOk());
  EXPECT_EQ(daemon.exitCode(), 2);  // neither --meta nor --standalone
  StorageDaemon daemon2;
  EXPECT_FALSE(daemon2.start(dir.path(), {"--standalone", "--data_dir=" + dir.path() + "/d",
                                          "--capacity=lots"}).isOk());
  EXPECT_EQ(daemon2.exitCode(), 2);
}

// A node listening on every interface must be told the address to register:
// without --advertise it refuses to start and says what to pass; with it,
// that address (port 0: the port it bound) is what meta is given.
TEST(StorageDaemonTest, WildcardListenNeedsAdvertiseAndRegistersIt) {
  TempDir dir;
  FakeMeta meta(Hash128{0x1234, 0x5678});
  ASSERT_TRUE(meta.start().isOk());
  const std::string data = dir.path() + "/data";
  {
    StorageDaemon daemon;
    EXPECT_FALSE(daemon.start(dir.path(), {"--data_dir=" + data, "--meta=" + meta.address(),
                                           "--listen=0.0.0.0:0", "--scrub.rate=0"})
                     .isOk());
    EXPECT_EQ(daemon.exitCode(), 2);
    std::string out = daemon.output(dir.path());
    EXPECT_NE(out.find("--advertise host:port"), std::string::npos) << out;
    EXPECT_EQ(meta.registrations_.load(), 0);
  }
  {
    StorageDaemon daemon;
    EXPECT_FALSE(daemon.start(dir.path(), {"--data_dir=" + data, "--meta=" + meta.address(),
                                           "--listen=0.0.0.0:0", "--advertise=0.0.0.0:0",
                                           "--scrub.rate=0"})
                     .isOk());
    EXPECT_EQ(daemon.exitCode(), 2);
    EXPECT_NE(daemon.output(dir.path()).find("not a wildcard"), std::string::npos)
        << daemon.output(dir.path());
  }
  StorageDaemon daemon;
  ASSERT_TRUE(daemon.start(dir.path(), {"--data_dir=" + data, "--meta=" + meta.address(),
                                        "--listen=0.0.0.0:0", "--advertise=127.0.0.1:0",
                                        "--scrub.rate=0"})
                  .isOk())
      << daemon.output(dir.path());
  // The ready file and meta both have the advertised host with the bound port.
  const std::string advertised = daemon.address();
  ASSERT_EQ(advertised.rfind("127.0.0.1:", 0), 0u) << advertised;
  EXPECT_NE(advertised, "127.0.0.1:0");
  EXPECT_EQ(meta.registeredAddress(), advertised);
  // Clients reach the node there.
  Client client;
  client.connect(advertised);
  ASSERT_TRUE(client.c);
  auto id = client.put(randomBytes(5000, 2));
  ASSERT_TRUE(id.isOk()) << id.status().toString();
  EXPECT_EQ(daemon.stop(), 0);
}

}  // namespace
}  // namespace sluice::storage
