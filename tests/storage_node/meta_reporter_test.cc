// MetaReporter against a fake metadata server over the real transport
// (tcp;ofi_rxm on 127.0.0.1): heartbeats follow the interval meta tells, a
// heartbeat whose answer never comes does not hold back the next ones (so a
// live node is not marked down when one reply is lost or slow, as right
// after a link heals), and a node meta no longer knows registers again.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "common/core/metrics.h"
#include "common/net/endpoint.h"
#include "storage_node/chunk_store.h"
#include "storage_node/file_io.h"
#include "storage_node/meta_reporter.h"
#include "tests/storage_node/fake_meta.h"
#include "tests/storage_node/test_util.h"

namespace sluice::storage {
namespace {

using testing::FakeMeta;
using testing::TempDir;

// Polls `done` every 10 ms for up to 20 s (a hang fails; no timing asserted).
bool eventually(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

class MetaReporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(meta_.start().isOk());
    ChunkStoreOptions so;
    so.data_dir = dir_.path() + "/data";
    so.io_buffer_bytes = 1u << 20;
    so.max_stripes = 64;
    auto store = ChunkStore::open(so);
    ASSERT_TRUE(store.isOk()) << store.status().toString();
    store_ = std::move(store).value();
    net::EndpointOptions eo;
    eo.listen = "127.0.0.1:0";
    auto ep = net::Endpoint::create(eo);
    ASSERT_TRUE(ep.isOk()) << ep.status().toString();
    ep_ = std::move(ep).value();
    ASSERT_TRUE(ep_->start().isOk());
    MetaReporterOptions mo;
    mo.meta_address = meta_.address();
    mo.advertise_address = ep_->address();
    mo.data_dir = so.data_dir;
    // Far longer than the test waits: a reporter that waited for each answer
    // would sit on the held one all that time.
    mo.call_timeout = std::chrono::seconds(60);
    reporter_ = std::make_unique<MetaReporter>(*ep_, *store_, mo);
  }
  void TearDown() override {
    meta_.releaseHeld();  // first: stop() waits for every heartbeat's answer or timeout
    if (reporter_) reporter_->stop();
    if (ep_) ep_->shutdown();
  }

  TempDir dir_;
  FakeMeta meta_{Hash128{0xabc, 0xdef}, /*register_interval_ms=*/100,
                 /*heartbeat_interval_ms=*/150};
  std::unique_ptr<ChunkStore> store_;
  std::unique_ptr<net::Endpoint> ep_;
  std::unique_ptr<MetaReporter> reporter_;
};

TEST_F(MetaReporterTest, AnUnansweredHeartbeatDoesNotHoldBackTheNext) {
  auto id = reporter_->registerNode();
  ASSERT_TRUE(id.isOk()) << id.status().toString();
  EXPECT_EQ(id->node_id, 7u);
  EXPECT_EQ(reporter_->heartbeatIntervalMs(), 100u);  // from RegisterNode
  meta_.holdNextHeartbeat();
  ASSERT_TRUE(reporter_->start().isOk());
  ASSERT_TRUE(eventually([&] { return meta_.holding(); }));
  // Meta keeps hearing the node while the first answer is missing.
  ASSERT_TRUE(eventually([&] { return meta_.heartbeatsWhileHeld() >= 3; }))
      << "no heartbeat reached meta while one answer was outstanding ("
      << meta_.heartbeats_.load() << " in all)";
  meta_.releaseHeld();
  ASSERT_TRUE(eventually([&] { return reporter_->heartbeatsSent() >= 3; }));
  EXPECT_EQ(reporter_->heartbeatIntervalMs(), 150u);  // Heartbeat answers update it
  EXPECT_EQ(meta_.last_node_.load(), 7u);
  EXPECT_EQ(meta_.registrations_.load(), 1);
}

// A ring taken out of service shows in `sluice status` through the node's
// error count, not only on /metrics.
TEST_F(MetaReporterTest, ALostIoRingCountsAsAnErrorInHeartbeats) {
  ASSERT_TRUE(reporter_->registerNode().isOk());
  ASSERT_TRUE(reporter_->start().isOk());
  ASSERT_TRUE(eventually([&] { return meta_.heartbeats_.load() >= 1; }));
  const uint64_t before = meta_.last_errors_.load();
  EXPECT_EQ(before, ioRingsLost()) << "a fresh store has no errors of its own";
  // What settle() does when a ring cannot drain (RingRecoveryTest covers that).
  MetricsRegistry::global().counter("sluice_storage_io_rings_lost_total", "").inc();
  EXPECT_TRUE(eventually([&] { return meta_.last_errors_.load() == before + 1; }))
      << "error count in heartbeats stayed " << meta_.last_errors_.load();
}

TEST_F(MetaReporterTest, RegistersAgainWhenMetaNoLongerKnowsTheNode) {
  ASSERT_TRUE(reporter_->registerNode().isOk());
  ASSERT_TRUE(reporter_->start().isOk());
  ASSERT_TRUE(eventually([&] { return reporter_->heartbeatsSent() >= 1; }));
  meta_.answerNotFound(1);
  ASSERT_TRUE(eventually([&] { return meta_.registrations_.load() >= 2; }));
  EXPECT_GE(reporter_->heartbeatFailures(), 1u);
  // And heartbeats go on after it.
  const uint64_t before = reporter_->heartbeatsSent();
  ASSERT_TRUE(eventually([&] { return reporter_->heartbeatsSent() >= before + 2; }));
}

TEST(AdvertiseAddressTest, WildcardListenNeedsAnAdvertiseAddress) {
  for (const char* listen : {"0.0.0.0:7100", "[::]:7100", ""}) {
    Status s = checkAdvertise(listen, "");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << listen;
    EXPECT_NE(s.message().find("--advertise host:port"), std::string::npos) << s.toString();
  }
  EXPECT_TRUE(checkAdvertise("10.0.0.5:7100", "").isOk());
  EXPECT_TRUE(checkAdvertise("fi_ns://node1", "").isOk());
  EXPECT_TRUE(checkAdvertise("0.0.0.0:7100", "10.0.0.5:7100").isOk());
  EXPECT_TRUE(checkAdvertise("0.0.0.0:0", "10.0.0.5:0").isOk());
  EXPECT_EQ(checkAdvertise("0.0.0.0:7100", "0.0.0.0:7100").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(checkAdvertise("0.0.0.0:7100", "no-port").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(checkAdvertise("0.0.0.0:7100", "bad host:1").code(), StatusCode::kInvalidArgument);

  EXPECT_EQ(*advertisedAddress("", "10.0.0.5:7100"), "10.0.0.5:7100");
  EXPECT_EQ(*advertisedAddress("10.0.0.5:7200", "0.0.0.0:7100"), "10.0.0.5:7200");
  EXPECT_EQ(*advertisedAddress("10.0.0.5:0", "0.0.0.0:41234"), "10.0.0.5:41234");
  EXPECT_EQ(*advertisedAddress("[fd00::5]:0", "[::]:41234"), "[fd00::5]:41234");
}

}  // namespace
}  // namespace sluice::storage
