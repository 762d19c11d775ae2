// kill -9 of sluice-meta during a large commit (and during batch adds):
// after a restart the version is either fully committed or still a complete
// draft, never partly visible; an acknowledged call is never lost.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "metadata/meta_client.h"
#include "tests/metadata/meta_daemon.h"
#include "tests/metadata/test_util.h"

namespace sluice::meta {
namespace {

namespace w = wire::meta;
using w::MetaMethod;
using testing::MetaDaemon;
using testing::TempDir;

constexpr uint32_t kFiles = 200'000;
constexpr uint32_t kBatch = 10'000;

class MetaCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net::EndpointOptions o;
    auto ep = net::Endpoint::create(o);
    ASSERT_TRUE(ep.isOk()) << ep.status().toString();
    ep_ = std::move(ep).value();
    ASSERT_TRUE(ep_->start().isOk());
  }

  void startDaemon() {
    daemon_ = std::make_unique<MetaDaemon>(dir_.path() + "/db");
    Status s = daemon_->start();
    ASSERT_TRUE(s.isOk()) << s.toString();
    auto c = MetaClient::connect(ep_.get(), daemon_->address());
    ASSERT_TRUE(c.isOk()) << c.status().toString();
    client_ = std::move(c).value();
  }

  std::vector<uint8_t> addFilesBody(const std::string& ds, uint32_t v, uint32_t first) {
    flatbuffers::FlatBufferBuilder fbb(kBatch * 200);
    std::vector<flatbuffers::Offset<w::FileSpec>> specs;
    char path[64];
    for (uint32_t i = first; i < first + kBatch; ++i) {
      std::snprintf(path, sizeof(path), "d%03u/f%07u.jpg", i % 500, i);
      w::Extent e(0, w::Hash(i + 1, 1), w::Hash(i / 36 + 1, 7), 1000, (i % 36) * 1000, 1000,
                  w::Codec::None);
      auto ext = fbb.CreateVectorOfStructs(&e, 1);
      specs.push_back(w::CreateFileSpec(fbb, fbb.CreateString(path), 1000, 0644, 1, ext));
    }
    fbb.Finish(w::CreateAddFilesRequest(fbb, fbb.CreateString(ds), v, fbb.CreateVector(specs)));
    return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  }

  // Creates `ds` and a draft holding kFiles files; returns the version.
  uint32_t bigDraft(const std::string& ds) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(w::CreateCreateDatasetRequestDirect(fbb, ds.c_str(), 1, 0));
    EXPECT_TRUE(client_->call<w::CreateDatasetResponse>(MetaMethod::CreateDataset, fbb).isOk());
    fbb.Clear();
    fbb.Finish(w::CreateBeginVersionRequestDirect(fbb, ds.c_str(), ""));
    auto v = client_->call<w::BeginVersionResponse>(MetaMethod::BeginVersion, fbb);
    EXPECT_TRUE(v.isOk()) << v.status().toString();
    if (!v.isOk()) return 0;
    uint32_t version = (*v)->version()->version();
    for (uint32_t first = 0; first < kFiles; first += kBatch) {
      auto body = addFilesBody(ds, version, first);
      auto r = ep_->call(client_->peer(), metaOpcode(MetaMethod::AddFiles), body,
                         net::Duration(60000));
      EXPECT_TRUE(r.isOk()) << r.status().toString();
    }
    return version;
  }

  Result<Reply<w::GetVersionResponse>> getVersion(const std::string& ds, uint32_t v) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(w::CreateGetVersionRequestDirect(fbb, ds.c_str(), ("v" + std::to_string(v)).c_str()));
    return client_->call<w::GetVersionResponse>(MetaMethod::GetVersion, fbb);
  }

  // Counts the files a committed version lists, page by page.
  uint64_t listAll(const std::string& ds, uint32_t v) {
    uint64_t n = 0;
    std::string cursor;
    std::string ref = "v" + std::to_string(v);
    do {
      flatbuffers::FlatBufferBuilder fbb;
      fbb.Finish(w::CreateListFilesRequestDirect(fbb, ds.c_str(), ref.c_str(), cursor.c_str(), 10000));
      auto page = client_->call<w::ListFilesResponse>(MetaMethod::ListFiles, fbb);
      EXPECT_TRUE(page.isOk()) << page.status().toString();
      if (!page.isOk()) return n;
      n += (*page)->files()->size();
      cursor = (*page)->next_cursor()->str();
    } while (!cursor.empty());
    return n;
  }

  TempDir dir_;
  std::unique_ptr<net::Endpoint> ep_;
  std::unique_ptr<MetaDaemon> daemon_;
  std::unique_ptr<MetaClient> client_;
};

TEST_F(MetaCrashTest, KillDuringCommitLeavesAllOrNothing) {
  const int delays_us[] = {0, 300, 2000, 20000};
  int committed = 0, drafts = 0;
  for (int round = 0; round < 4; ++round) {
    std::string ds = "crash" + std::to_string(round);
    startDaemon();
    uint32_t v = bigDraft(ds);
    ASSERT_NE(v, 0u);
    std::atomic<bool> acked{false};
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(w::CreateCommitVersionRequestDirect(fbb, ds.c_str(), v, "", false));
    ep_->callAsync(client_->peer(), metaOpcode(MetaMethod::CommitVersion),
                   std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()),
                   net::Duration(5000), [&acked](Result<std::vector<uint8_t>> r) {
                     if (r.isOk()) acked = true;
                   });
    std::this_thread::sleep_for(std::chrono::microseconds(delays_us[round]));
    daemon_->kill(SIGKILL);
    bool was_acked = acked.load();

    startDaemon();
    auto info = getVersion(ds, v);
    ASSERT_TRUE(info.isOk()) << info.status().toString();
    EXPECT_EQ((*info)->version()->file_count(), kFiles);
    auto state = (*info)->version()->state();
    ASSERT_TRUE(state == w::VersionState::Committed || state == w::VersionState::Draft);
    if (was_acked) {
      EXPECT_EQ(state, w::VersionState::Committed) << "acknowledged commit lost";
    }
    if (state == w::VersionState::Draft) {
      ++drafts;
      // Still a complete draft: invisible to readers, and it commits now.
      flatbuffers::FlatBufferBuilder st;
      st.Finish(w::CreateStatRequestDirect(st, ds.c_str(), ("v" + std::to_string(v)).c_str(),
                                           "d000/f0000000.jpg"));
      EXPECT_EQ(client_->call<w::StatResponse>(MetaMethod::Stat, st).status().code(),
                StatusCode::kFailedPrecondition);
      auto c = client_->call<w::CommitVersionResponse>(MetaMethod::CommitVersion, fbb);
      ASSERT_TRUE(c.isOk()) << c.status().toString();
    } else {
      ++committed;
    }
    // Either way every file is now visible, through the latest tag too.
    EXPECT_EQ(listAll(ds, v), kFiles);
    flatbuffers::FlatBufferBuilder st;
    st.Finish(w::CreateStatRequestDirect(st, ds.c_str(), "latest", "d499/f0199999.jpg"));
    auto last = client_->call<w::StatResponse>(MetaMethod::Stat, st);
    ASSERT_TRUE(last.isOk()) << last.status().toString();
    EXPECT_EQ((*last)->entry()->size(), 1000u);
    daemon_->kill(SIGKILL);
  }
  std::printf("kill -9 during commit: %d rounds found committed, %d still draft\n", committed, drafts);
}

TEST_F(MetaCrashTest, KillDuringAddFilesKeepsWholeBatches) {
  startDaemon();
  const std::string ds = "adds";
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(w::CreateCreateDatasetRequestDirect(fbb, ds.c_str(), 1, 0));
  ASSERT_TRUE(client_->call<w::CreateDatasetResponse>(MetaMethod::CreateDataset, fbb).isOk());
  fbb.Clear();
  fbb.Finish(w::CreateBeginVersionRequestDirect(fbb, ds.c_str(), ""));
  auto v = client_->call<w::BeginVersionResponse>(MetaMethod::BeginVersion, fbb);
  ASSERT_TRUE(v.isOk());
  uint32_t version = (*v)->version()->version();
  // Fire batches back to back from another thread and kill mid-stream.
  std::atomic<uint32_t> acked{0};
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    for (uint32_t first = 0; first < kFiles && !stop; first += kBatch) {
      auto body = addFilesBody(ds, version, first);
      auto r = ep_->call(client_->peer(), metaOpcode(MetaMethod::AddFiles), body, net::Duration(5000));
      if (!r.isOk()) break;
      acked += 1;
    }
  });
  while (acked.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  daemon_->kill(SIGKILL);
  stop = true;
  sender.join();
  uint32_t acked_batches = acked.load();
  startDaemon();
  auto info = getVersion(ds, version);
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  uint64_t files = (*info)->version()->file_count();
  EXPECT_EQ(files % kBatch, 0u) << "a batch was partly applied";
  EXPECT_GE(files, uint64_t{acked_batches} * kBatch) << "an acknowledged batch was lost";
  EXPECT_LE(files, uint64_t{acked_batches + 1} * kBatch);
  fbb.Clear();
  fbb.Finish(w::CreateCommitVersionRequestDirect(fbb, ds.c_str(), version, "", false));
  ASSERT_TRUE(client_->call<w::CommitVersionResponse>(MetaMethod::CommitVersion, fbb).isOk());
  EXPECT_EQ(listAll(ds, version), files);
}

}  // namespace
}  // namespace sluice::meta
