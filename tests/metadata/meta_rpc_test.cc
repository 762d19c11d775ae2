// Every meta RPC over the real transport (libfabric tcp;ofi_rxm on
// 127.0.0.1) against the real sluice-meta binary and a real LMDB directory.
#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include "metadata/limits.h"
#include "metadata/meta_client.h"
#include "tests/metadata/meta_daemon.h"
#include "tests/metadata/test_util.h"
#include "tools/process.h"

namespace sluice::meta {
namespace {

namespace w = wire::meta;
using w::MetaMethod;
using testing::MetaDaemon;
using testing::TempDir;

class MetaRpcTest : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }

  void start(std::vector<std::string> extra) {
    daemon_ = std::make_unique<MetaDaemon>(dir_.path() + "/db", std::move(extra));
    Status s = daemon_->start();
    ASSERT_TRUE(s.isOk()) << s.toString();
    if (!ep_) {
      net::EndpointOptions o;
      auto ep = net::Endpoint::create(o);
      ASSERT_TRUE(ep.isOk()) << ep.status().toString();
      ep_ = std::move(ep).value();
      ASSERT_TRUE(ep_->start().isOk());
    }
    auto c = MetaClient::connect(ep_.get(), daemon_->address());
    ASSERT_TRUE(c.isOk()) << c.status().toString();
    client_ = std::move(c).value();
  }

  template <typename Resp>
  Result<Reply<Resp>> call(MetaMethod m, flatbuffers::FlatBufferBuilder& fbb) {
    return client_->call<Resp>(m, fbb);
  }

  void createDataset(const char* name) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(w::CreateCreateDatasetRequestDirect(fbb, name, 1, 0, w::CompressionPolicy::Auto));
    auto r = call<w::CreateDatasetResponse>(MetaMethod::CreateDataset, fbb);
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    EXPECT_EQ((*r)->dataset()->replication(), 1);
    EXPECT_EQ((*r)->dataset()->chunk_size(), 4u << 20);
  }

  uint32_t begin(const char* ds) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(w::CreateBeginVersionRequestDirect(fbb, ds, "msg"));
    auto r = call<w::BeginVersionResponse>(MetaMethod::BeginVersion, fbb);
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return r.isOk() ? (*r)->version()->version() : 0;
  }

  Status addFiles(const char* ds, uint32_t v, const std::vector<FileSpec>& files) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<w::FileSpec>> specs;
    for (const FileSpec& f : files) {
      std::vector<w::Extent> ext;
      for (const Extent& e : f.extents) {
        ext.emplace_back(e.file_offset, w::Hash(e.record.hi, e.record.lo),
                         w::Hash(e.chunk.hi, e.chunk.lo), e.raw_length, e.chunk_offset,
                         e.stored_length, static_cast<w::Codec>(e.codec));
      }
      specs.push_back(w::CreateFileSpecDirect(
          fbb, f.path.c_str(), f.size, f.mode, f.mtime_ns, &ext, f.append,
          static_cast<w::EntryType>(f.type),
          f.symlink_target.empty() ? nullptr : f.symlink_target.c_str()));
    }
    fbb.Finish(w::CreateAddFilesRequestDirect(fbb, ds, v, &specs));
    return call<w::AddFilesResponse>(MetaMethod::AddFiles, fbb).status();
  }

  Status commit(const char* ds, uint32_t v) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(w::CreateCommitVersionRequestDirect(fbb, ds, v, "done", false));
    return call<w::CommitVersionResponse>(MetaMethod::CommitVersion, fbb).status();
  }
  void commitLongLinks();  // below, with its names

  TempDir dir_;
  std::unique_ptr<MetaDaemon> daemon_;
  std::unique_ptr<net::Endpoint> ep_;
  std::unique_ptr<MetaClient> client_;
};

TEST_F(MetaRpcTest, RegisterHeartbeatAndClusterMap) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(w::CreateRegisterNodeRequestDirect(fbb, nullptr, 0, "127.0.0.1:5001", 1000, 10, 1));
  auto reg = call<w::RegisterNodeResponse>(MetaMethod::RegisterNode, fbb);
  ASSERT_TRUE(reg.isOk()) << reg.status().toString();
  uint64_t node = (*reg)->node_id();
  w::Hash cid = *(*reg)->cluster_id();
  EXPECT_NE(node, 0u);
  EXPECT_GT((*reg)->heartbeat_interval_ms(), 0u);

  fbb.Clear();
  fbb.Finish(w::CreateGetClusterMapRequest(fbb, uint64_t{0}));
  auto map = call<w::GetClusterMapResponse>(MetaMethod::GetClusterMap, fbb);
  ASSERT_TRUE(map.isOk()) << map.status().toString();
  EXPECT_FALSE((*map)->unchanged());
  EXPECT_EQ((*map)->stripe_count(), 64u);
  ASSERT_EQ((*map)->replicas()->size(), 64u * (*map)->max_replicas());
  EXPECT_EQ((*map)->replicas()->Get(0), node);
  ASSERT_EQ((*map)->nodes()->size(), 1u);
  EXPECT_EQ((*map)->nodes()->Get(0)->address()->str(), "127.0.0.1:5001");
  uint64_t epoch = (*map)->epoch();

  fbb.Clear();
  fbb.Finish(w::CreateGetClusterMapRequest(fbb, epoch));
  auto same = call<w::GetClusterMapResponse>(MetaMethod::GetClusterMap, fbb);
  ASSERT_TRUE(same.isOk());
  EXPECT_TRUE((*same)->unchanged());
  EXPECT_EQ((*same)->replicas(), nullptr);

  fbb.Clear();
  fbb.Finish(w::CreateHeartbeatRequest(fbb, &cid, node, 1000, 500, 7, 0));
  auto hb = call<w::HeartbeatResponse>(MetaMethod::Heartbeat, fbb);
  ASSERT_TRUE(hb.isOk()) << hb.status().toString();
  EXPECT_EQ((*hb)->map_epoch(), epoch);
  EXPECT_EQ((*hb)->state(), w::NodeState::Up);

  // A node of another cluster is refused.
  w::Hash other(1, 2);
  fbb.Clear();
  fbb.Finish(w::CreateHeartbeatRequest(fbb, &other, node, 1000, 500, 7, 0));
  auto bad = call<w::HeartbeatResponse>(MetaMethod::Heartbeat, fbb);
  EXPECT_EQ(bad.status().code(), StatusCode::kFailedPrecondition);

  fbb.Clear();
  fbb.Finish(w::CreateListNodesRequest(fbb));
  auto nodes = call<w::ListNodesResponse>(MetaMethod::ListNodes, fbb);
  ASSERT_TRUE(nodes.isOk());
  ASSERT_EQ((*nodes)->nodes()->size(), 1u);
  EXPECT_EQ((*nodes)->nodes()->Get(0)->used_bytes(), 500u);

  fbb.Clear();
  fbb.Finish(w::CreateSetNodeStateRequest(fbb, node, w::NodeState::Draining));
  auto drain = call<w::SetNodeStateResponse>(MetaMethod::SetNodeState, fbb);
  ASSERT_TRUE(drain.isOk()) << drain.status().toString();
  EXPECT_EQ((*drain)->node()->state(), w::NodeState::Draining);
  EXPECT_GT((*drain)->map_epoch(), epoch);
}

TEST_F(MetaRpcTest, HeartbeatTimeoutTurnsNodeDownAndBackUp) {
  daemon_->kill(SIGTERM);
  start({"--heartbeat_timeout=1s"});
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(w::CreateRegisterNodeRequestDirect(fbb, nullptr, 0, "127.0.0.1:5002", 1000, 0, 0));
  auto reg = call<w::RegisterNodeResponse>(MetaMethod::RegisterNode, fbb);
  ASSERT_TRUE(reg.isOk()) << reg.status().toString();
  uint64_t node = (*reg)->node_id();
  w::Hash cid = *(*reg)->cluster_id();
  auto stateOf = [&]() {
    flatbuffers::FlatBufferBuilder b;
    b.Finish(w::CreateListNodesRequest(b));
    auto nodes = call<w::ListNodesResponse>(MetaMethod::ListNodes, b);
    return nodes.isOk() && nodes.value()->nodes()->size() == 1
               ? nodes.value()->nodes()->Get(0)->state()
               : w::NodeState::Removed;
  };
  // Silent: the sweeper marks it down (poll; no timing assertion).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (stateOf() != w::NodeState::Down && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(stateOf(), w::NodeState::Down);
  fbb.Clear();
  fbb.Finish(w::CreateHeartbeatRequest(fbb, &cid, node, 1000, 0, 0, 0));
  auto hb = call<w::HeartbeatResponse>(MetaMethod::Heartbeat, fbb);
  ASSERT_TRUE(hb.isOk()) << hb.status().toString();
  EXPECT_EQ((*hb)->state(), w::NodeState::Up);
  // The first heartbeat that arrives brings it back: the node list says so
  // too (asked within the 1 s timeout, even on a loaded machine).
  EXPECT_EQ(stateOf(), w::NodeState::Up);
}

// A second sluice-meta on a directory one is serving is refused: LMDB would
// let it share the environment, and each would mark the other's nodes down.
TEST_F(MetaRpcTest, ASecondServerOnTheSameDirectoryIsRefused) {
  auto second = tools::runProcess(MetaDaemon::binary(),
                                  {"--data_dir", dir_.path() + "/db", "--listen", "127.0.0.1:0", "--log.level", "warn"});
  ASSERT_TRUE(second.isOk());
  EXPECT_NE(second->exit_code, 0);
  EXPECT_NE((second->err + second->out).find("in use by another running sluice-meta"), std::string::npos)
      << second->err << second->out;
  // The first one still serves.
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(w::CreateListNodesRequest(fbb));
  EXPECT_TRUE(call<w::ListNodesResponse>(MetaMethod::ListNodes, fbb).isOk());
}

// The daemon aborts drafts nothing was added to for --draft_expiry.
TEST_F(MetaRpcTest, AnAbandonedDraftExpires) {
  daemon_->kill(SIGTERM);
  start({"--draft_grace=1s", "--draft_expiry=2s"});
  createDataset("abandoned");
  const uint32_t v = begin("abandoned");
  ASSERT_TRUE(addFiles("abandoned", v, {testing::makeFile("half", 1)}).isOk());
  auto stateOf = [&] {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(w::CreateGetVersionRequestDirect(fbb, "abandoned", ("v" + std::to_string(v)).c_str()));
    auto r = call<w::GetVersionResponse>(MetaMethod::GetVersion, fbb);
    return r.isOk() && (*r)->version() ? (*r)->version()->state() : w::VersionState::Committed;
  };
  EXPECT_EQ(stateOf(), w::VersionState::Draft);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (stateOf() == w::VersionState::Draft && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(stateOf(), w::VersionState::Aborted);
  EXPECT_FALSE(addFiles("abandoned", v, {testing::makeFile("late", 2)}).isOk());
  // An expiry shorter than the grace that counts a draft as being uploaded
  // would abort live uploads: refused.
  auto bad = tools::runProcess(MetaDaemon::binary(), {"--data_dir", dir_.path() + "/bad", "--draft_expiry=1m"});
  ASSERT_TRUE(bad.isOk());
  EXPECT_EQ(bad->exit_code, 2);
  EXPECT_NE(bad->err.find("draft_expiry"), std::string::npos) << bad->err;
}

// Meta tells nodes how often to heartbeat, in both answers: a quarter of its
// heartbeat timeout, so a node that follows it is never marked down while live.
TEST_F(MetaRpcTest, RegisterAndHeartbeatAnswersCarryTheInterval) {
  daemon_->kill(SIGTERM);
  start({"--heartbeat_timeout=2s"});
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(w::CreateRegisterNodeRequestDirect(fbb, nullptr, 0, "127.0.0.1:5003", 1000, 0, 0));
  auto reg = call<w::RegisterNodeResponse>(MetaMethod::RegisterNode, fbb);
  ASSERT_TRUE(reg.isOk()) << reg.status().toString();
  EXPECT_EQ((*reg)->heartbeat_interval_ms(), 500u);
  w::Hash cid = *(*reg)->cluster_id();
  fbb.Clear();
  fbb.Finish(w::CreateHeartbeatRequest(fbb, &cid, (*reg)->node_id(), 1000, 0, 0, 0));
  auto hb = call<w::HeartbeatResponse>(MetaMethod::Heartbeat, fbb);
  ASSERT_TRUE(hb.isOk()) << hb.status().toString();
  EXPECT_EQ((*hb)->heartbeat_interval_ms(), 500u);
}

// A node must register an address peers can connect to: malformed ones and
// the wildcard a node listens on are refused, saying what to pass.
TEST_F(MetaRpcTest, RegisterRefusesBadAndWildcardAddresses) {
  struct Case {
    const char* address;
    const char* says;
  };
  for (const Case& c : {Case{"0.0.0.0:7100", "--advertise"}, Case{"[::]:7100", "--advertise"},
                        Case{"127.0.0.1:0", "--advertise"}, Case{"nohostport", "address"},
                        Case{"bad host:1", "address"}, Case{"10.0.0.1:99999", "address"},
                        Case{"fi_ns://has/slash", "address"}}) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(w::CreateRegisterNodeRequestDirect(fbb, nullptr, 0, c.address, 1000, 0, 0));
    auto reg = call<w::RegisterNodeResponse>(MetaMethod::RegisterNode, fbb);
    EXPECT_EQ(reg.status().code(), StatusCode::kInvalidArgument) << c.address;
    EXPECT_NE(reg.status().message().find(c.says), std::string::npos)
        << c.address << ": " << reg.status().toString();
  }
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(w::CreateListNodesRequest(fbb));
  auto nodes = call<w::ListNodesResponse>(MetaMethod::ListNodes, fbb);
  ASSERT_TRUE(nodes.isOk());
  EXPECT_EQ((*nodes)->nodes()->size(), 0u);
  // A valid shm name is taken as it is.
  fbb.Clear();
  fbb.Finish(w::CreateRegisterNodeRequestDirect(fbb, nullptr, 0, "fi_ns://node-a", 1000, 0, 0));
  EXPECT_TRUE(call<w::RegisterNodeResponse>(MetaMethod::RegisterNode, fbb).isOk());
}

TEST_F(MetaRpcTest, DatasetVersionTagNamespaceFlow) {
  createDataset("imgs");
  uint32_t v1 = begin("imgs");
  uint32_t v2 = begin("imgs");
  EXPECT_NE(v1, v2);
  ASSERT_TRUE(addFiles("imgs", v1, {testing::makeFile("a/x.jpg", 1, 2), testing::makeFile("b.txt", 2)}).isOk());
  // Draft invisible.
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(w::CreateStatRequestDirect(fbb, "imgs", "v1", "b.txt"));
  EXPECT_EQ(call<w::StatResponse>(MetaMethod::Stat, fbb).status().code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(commit("imgs", v1).isOk());

  fbb.Clear();
  fbb.Finish(w::CreateStatRequestDirect(fbb, "imgs", "latest", "a/x.jpg"));
  auto st = call<w::StatResponse>(MetaMethod::Stat, fbb);
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_EQ((*st)->entry()->size(), 2000u);
  EXPECT_EQ((*st)->entry()->extent_count(), 2u);

  fbb.Clear();
  std::vector<std::string> paths = {"a/x.jpg", "nope", "a"};
  fbb.Finish(w::CreateLookupRequestDirect(fbb, "imgs", "v1", nullptr, true));
  {
    flatbuffers::FlatBufferBuilder b;
    auto pv = b.CreateVectorOfStrings(paths);
    b.Finish(w::CreateLookupRequest(b, b.CreateString("imgs"), b.CreateString("v1"), pv, true));
    auto lk = call<w::LookupResponse>(MetaMethod::Lookup, b);
    ASSERT_TRUE(lk.isOk()) << lk.status().toString();
    ASSERT_EQ((*lk)->results()->size(), 3u);
    EXPECT_EQ((*lk)->version(), v1);
    EXPECT_TRUE((*lk)->results()->Get(0)->found());
    EXPECT_EQ((*lk)->results()->Get(0)->extents()->size(), 2u);
    EXPECT_EQ((*lk)->results()->Get(0)->extents()->Get(1)->file_offset(), 1000u);
    EXPECT_FALSE((*lk)->results()->Get(1)->found());
    EXPECT_EQ((*lk)->results()->Get(2)->entry()->type(), w::EntryType::Directory);
  }

  fbb.Clear();
  fbb.Finish(w::CreateReadDirRequestDirect(fbb, "imgs", "v1", "", "", 1));
  auto rd = call<w::ReadDirResponse>(MetaMethod::ReadDir, fbb);
  ASSERT_TRUE(rd.isOk()) << rd.status().toString();
  ASSERT_EQ((*rd)->entries()->size(), 1u);
  EXPECT_EQ((*rd)->entries()->Get(0)->path()->str(), "a");
  EXPECT_EQ((*rd)->next_cursor()->str(), "a");
  fbb.Clear();
  fbb.Finish(w::CreateReadDirRequestDirect(fbb, "imgs", "v1", "", "a", 10));
  rd = call<w::ReadDirResponse>(MetaMethod::ReadDir, fbb);
  ASSERT_TRUE(rd.isOk());
  ASSERT_EQ((*rd)->entries()->size(), 1u);
  EXPECT_EQ((*rd)->entries()->Get(0)->path()->str(), "b.txt");
  EXPECT_EQ((*rd)->next_cursor()->str(), "");

  fbb.Clear();
  fbb.Finish(w::CreateGetExtentsRequestDirect(fbb, "imgs", "v1", "a/x.jpg", 1, 10));
  auto ex = call<w::GetExtentsResponse>(MetaMethod::GetExtents, fbb);
  ASSERT_TRUE(ex.isOk());
  EXPECT_EQ((*ex)->total(), 2u);
  ASSERT_EQ((*ex)->extents()->size(), 1u);
  EXPECT_EQ((*ex)->extents()->Get(0)->record().lo(), 2u);

  fbb.Clear();
  fbb.Finish(w::CreateListFilesRequestDirect(fbb, "imgs", "v1", "", 0));
  auto lf = call<w::ListFilesResponse>(MetaMethod::ListFiles, fbb);
  ASSERT_TRUE(lf.isOk());
  ASSERT_EQ((*lf)->files()->size(), 2u);
  EXPECT_EQ((*lf)->files()->Get(0)->path()->str(), "a/x.jpg");

  // v2 changes b.txt and adds c; diff v1..v2.
  ASSERT_TRUE(addFiles("imgs", v2, {testing::makeFile("a/x.jpg", 1, 2), testing::makeFile("b.txt", 3, 2),
                                    testing::makeFile("c", 4)}).isOk());
  ASSERT_TRUE(commit("imgs", v2).isOk());
  fbb.Clear();
  fbb.Finish(w::CreateDiffRequestDirect(fbb, "imgs", "v1", "latest", "", 0));
  auto df = call<w::DiffResponse>(MetaMethod::Diff, fbb);
  ASSERT_TRUE(df.isOk()) << df.status().toString();
  ASSERT_EQ((*df)->changes()->size(), 2u);
  EXPECT_EQ((*df)->changes()->Get(0)->path()->str(), "b.txt");
  EXPECT_EQ((*df)->changes()->Get(0)->kind(), w::ChangeKind::Changed);
  EXPECT_EQ((*df)->changes()->Get(0)->new_size(), 2000u);
  EXPECT_EQ((*df)->changes()->Get(1)->kind(), w::ChangeKind::Added);

  // Tags and versions.
  fbb.Clear();
  fbb.Finish(w::CreateSetTagRequestDirect(fbb, "imgs", "clean", v1));
  auto tag = call<w::SetTagResponse>(MetaMethod::SetTag, fbb);
  ASSERT_TRUE(tag.isOk()) << tag.status().toString();
  fbb.Clear();
  fbb.Finish(w::CreateResolveVersionRequestDirect(fbb, "imgs", "clean"));
  auto res = call<w::ResolveVersionResponse>(MetaMethod::ResolveVersion, fbb);
  ASSERT_TRUE(res.isOk());
  EXPECT_EQ((*res)->version(), v1);
  fbb.Clear();
  fbb.Finish(w::CreateListTagsRequestDirect(fbb, "imgs"));
  auto tags = call<w::ListTagsResponse>(MetaMethod::ListTags, fbb);
  ASSERT_TRUE(tags.isOk());
  EXPECT_EQ((*tags)->tags()->size(), 2u);
  EXPECT_TRUE((*tags)->next_cursor()->str().empty());
  // One tag per page: the cursor carries on from the last name sent.
  std::vector<std::string> paged;
  std::string cursor;
  do {
    fbb.Clear();
    fbb.Finish(w::CreateListTagsRequestDirect(fbb, "imgs", cursor.c_str(), 1));
    auto page = call<w::ListTagsResponse>(MetaMethod::ListTags, fbb);
    ASSERT_TRUE(page.isOk()) << page.status().toString();
    ASSERT_EQ((*page)->tags()->size(), 1u);
    paged.push_back((*page)->tags()->Get(0)->name()->str());
    cursor = (*page)->next_cursor()->str();
    ASSERT_LE(paged.size(), 2u) << "paging does not end";
  } while (!cursor.empty());
  EXPECT_EQ(paged, (std::vector<std::string>{"clean", "latest"}));
  fbb.Clear();
  fbb.Finish(w::CreateListVersionsRequestDirect(fbb, "imgs", "", 0));
  auto lv = call<w::ListVersionsResponse>(MetaMethod::ListVersions, fbb);
  ASSERT_TRUE(lv.isOk());
  ASSERT_EQ((*lv)->versions()->size(), 2u);
  EXPECT_EQ((*lv)->versions()->Get(1)->file_count(), 3u);
  EXPECT_EQ((*lv)->versions()->Get(1)->message()->str(), "done");
  fbb.Clear();
  fbb.Finish(w::CreateGetVersionRequestDirect(fbb, "imgs", "latest"));
  auto gv = call<w::GetVersionResponse>(MetaMethod::GetVersion, fbb);
  ASSERT_TRUE(gv.isOk());
  EXPECT_EQ((*gv)->version()->version(), v2);

  // Deleting tagged v1 is refused unless forced.
  fbb.Clear();
  fbb.Finish(w::CreateDeleteVersionRequestDirect(fbb, "imgs", v1, false));
  EXPECT_EQ(call<w::DeleteVersionResponse>(MetaMethod::DeleteVersion, fbb).status().code(),
            StatusCode::kFailedPrecondition);
  fbb.Clear();
  fbb.Finish(w::CreateDeleteTagRequestDirect(fbb, "imgs", "clean"));
  ASSERT_TRUE(call<w::DeleteTagResponse>(MetaMethod::DeleteTag, fbb).isOk());
  fbb.Clear();
  fbb.Finish(w::CreateDeleteVersionRequestDirect(fbb, "imgs", v1, false));
  ASSERT_TRUE(call<w::DeleteVersionResponse>(MetaMethod::DeleteVersion, fbb).isOk());

  // Records: v2's b.txt records are indexed; v1-only ones (none left) are not.
  fbb.Clear();
  std::vector<w::Hash> hashes = {w::Hash(3, 1), w::Hash(9, 9)};
  fbb.Finish(w::CreateLookupRecordsRequestDirect(fbb, "imgs", &hashes));
  auto lr = call<w::LookupRecordsResponse>(MetaMethod::LookupRecords, fbb);
  ASSERT_TRUE(lr.isOk()) << lr.status().toString();
  ASSERT_EQ((*lr)->locations()->size(), 2u);
  EXPECT_TRUE((*lr)->locations()->Get(0)->found());
  EXPECT_FALSE((*lr)->locations()->Get(1)->found());

  // v1's chunk for the old b.txt is garbage now.
  fbb.Clear();
  fbb.Finish(w::CreateListGarbageRequestDirect(fbb, 1, "", 0));
  auto gc = call<w::ListGarbageResponse>(MetaMethod::ListGarbage, fbb);
  ASSERT_TRUE(gc.isOk()) << gc.status().toString();
  ASSERT_EQ((*gc)->chunks()->size(), 1u);
  EXPECT_EQ((*gc)->chunks()->Get(0)->chunk()->lo(), 2u);

  // Abort a draft; list and delete datasets.
  uint32_t v3 = begin("imgs");
  fbb.Clear();
  fbb.Finish(w::CreateAbortVersionRequestDirect(fbb, "imgs", v3));
  ASSERT_TRUE(call<w::AbortVersionResponse>(MetaMethod::AbortVersion, fbb).isOk());
  createDataset("other");
  fbb.Clear();
  fbb.Finish(w::CreateListDatasetsRequestDirect(fbb, "", 0));
  auto ld = call<w::ListDatasetsResponse>(MetaMethod::ListDatasets, fbb);
  ASSERT_TRUE(ld.isOk());
  EXPECT_EQ((*ld)->datasets()->size(), 2u);
  fbb.Clear();
  fbb.Finish(w::CreateGetDatasetRequestDirect(fbb, "imgs"));
  auto gd = call<w::GetDatasetResponse>(MetaMethod::GetDataset, fbb);
  ASSERT_TRUE(gd.isOk());
  EXPECT_EQ((*gd)->dataset()->next_version(), 4u);
  fbb.Clear();
  fbb.Finish(w::CreateDeleteDatasetRequestDirect(fbb, "imgs", false));
  EXPECT_EQ(call<w::DeleteDatasetResponse>(MetaMethod::DeleteDataset, fbb).status().code(),
            StatusCode::kFailedPrecondition);  // latest tag
  fbb.Clear();
  fbb.Finish(w::CreateDeleteDatasetRequestDirect(fbb, "imgs", true));
  auto dd = call<w::DeleteDatasetResponse>(MetaMethod::DeleteDataset, fbb);
  ASSERT_TRUE(dd.isOk());
  EXPECT_EQ((*dd)->versions_deleted(), 2u);

  // Everything survives a restart (durable commits).
  daemon_->kill(SIGKILL);
  start({});
  fbb.Clear();
  fbb.Finish(w::CreateGetDatasetRequestDirect(fbb, "other"));
  EXPECT_TRUE(call<w::GetDatasetResponse>(MetaMethod::GetDataset, fbb).isOk());
}

// DatasetInfo names the dataset's id, the one its versions carry, so a
// client (the FUSE mount) tells a dataset deleted and created again under
// its name from the one before.
TEST_F(MetaRpcTest, DatasetInfoCarriesAnIdThatARecreatedDatasetDoesNotShare) {
  auto datasetId = [&] {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(w::CreateGetDatasetRequestDirect(fbb, "again"));
    auto gd = call<w::GetDatasetResponse>(MetaMethod::GetDataset, fbb);
    EXPECT_TRUE(gd.isOk()) << gd.status().toString();
    return gd.isOk() ? (*gd)->dataset()->dataset_id() : 0;
  };
  createDataset("again");
  const uint32_t v = begin("again");
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(w::CreateGetVersionRequestDirect(fbb, "again", ("v" + std::to_string(v)).c_str()));
  auto gv = call<w::GetVersionResponse>(MetaMethod::GetVersion, fbb);
  ASSERT_TRUE(gv.isOk()) << gv.status().toString();
  const uint64_t first = datasetId();
  EXPECT_NE(first, 0u);
  EXPECT_EQ((*gv)->version()->dataset_id(), first);

  fbb.Clear();
  fbb.Finish(w::CreateDeleteDatasetRequestDirect(fbb, "again", true));
  ASSERT_TRUE(call<w::DeleteDatasetResponse>(MetaMethod::DeleteDataset, fbb).isOk());
  createDataset("again");
  const uint64_t second = datasetId();
  EXPECT_NE(second, 0u);
  EXPECT_NE(second, first);
}

FileSpec dirSpec(std::string path, uint32_t mode, int64_t mtime_ns) {
  FileSpec f;
  f.path = std::move(path);
  f.type = EntryType::kDirectory;
  f.mode = mode;
  f.mtime_ns = mtime_ns;
  return f;
}

FileSpec linkSpec(std::string path, std::string target, int64_t mtime_ns) {
  FileSpec f;
  f.path = std::move(path);
  f.type = EntryType::kSymlink;
  f.mode = 0777;
  f.mtime_ns = mtime_ns;
  f.size = target.size();
  f.symlink_target = std::move(target);
  return f;
}

TEST_F(MetaRpcTest, DirectoriesAndSymlinksOverTheWire) {
  createDataset("tree");
  const int64_t t = 1'600'000'000'000'000'001;
  uint32_t v1 = begin("tree");
  ASSERT_TRUE(addFiles("tree", v1,
                       {dirSpec("empty", 0700, t), linkSpec("sub/link", "../f", t + 1),
                        testing::makeFile("f", 1)})
                  .isOk());
  ASSERT_TRUE(commit("tree", v1).isOk());

  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(w::CreateStatRequestDirect(fbb, "tree", "v1", "sub/link"));
  auto st = call<w::StatResponse>(MetaMethod::Stat, fbb);
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_EQ((*st)->entry()->type(), w::EntryType::Symlink);
  ASSERT_NE((*st)->entry()->symlink_target(), nullptr);
  EXPECT_EQ((*st)->entry()->symlink_target()->str(), "../f");
  EXPECT_EQ((*st)->entry()->size(), 4u);
  EXPECT_EQ((*st)->entry()->mtime_ns(), t + 1);

  fbb.Clear();
  std::vector<std::string> paths = {"empty", "sub/link", "f"};
  auto path_vec = fbb.CreateVectorOfStrings(paths);
  fbb.Finish(w::CreateLookupRequest(fbb, fbb.CreateString("tree"), fbb.CreateString("v1"),
                                    path_vec, true));
  auto lk = call<w::LookupResponse>(MetaMethod::Lookup, fbb);
  ASSERT_TRUE(lk.isOk()) << lk.status().toString();
  ASSERT_EQ((*lk)->results()->size(), 3u);
  const w::Entry* dir = (*lk)->results()->Get(0)->entry();
  EXPECT_EQ(dir->type(), w::EntryType::Directory);
  EXPECT_EQ(dir->mode(), 0700u);
  EXPECT_EQ(dir->mtime_ns(), t);
  EXPECT_EQ((*lk)->results()->Get(1)->entry()->symlink_target()->str(), "../f");
  EXPECT_EQ((*lk)->results()->Get(1)->extents()->size(), 0u);
  EXPECT_EQ((*lk)->results()->Get(2)->entry()->type(), w::EntryType::File);
  EXPECT_EQ((*lk)->results()->Get(2)->entry()->symlink_target(), nullptr);

  fbb.Clear();
  fbb.Finish(w::CreateReadDirRequestDirect(fbb, "tree", "v1", ""));
  auto rd = call<w::ReadDirResponse>(MetaMethod::ReadDir, fbb);
  ASSERT_TRUE(rd.isOk()) << rd.status().toString();
  ASSERT_EQ((*rd)->entries()->size(), 3u);
  EXPECT_EQ((*rd)->entries()->Get(0)->path()->str(), "empty");
  EXPECT_EQ((*rd)->entries()->Get(0)->type(), w::EntryType::Directory);
  EXPECT_EQ((*rd)->entries()->Get(0)->mode(), 0700u);
  EXPECT_EQ((*rd)->entries()->Get(0)->mtime_ns(), t);
  fbb.Clear();
  fbb.Finish(w::CreateReadDirRequestDirect(fbb, "tree", "v1", "empty"));
  auto rd_empty = call<w::ReadDirResponse>(MetaMethod::ReadDir, fbb);
  ASSERT_TRUE(rd_empty.isOk()) << rd_empty.status().toString();
  EXPECT_EQ((*rd_empty)->entries()->size(), 0u);

  fbb.Clear();
  fbb.Finish(w::CreateListFilesRequestDirect(fbb, "tree", "v1"));
  auto lf = call<w::ListFilesResponse>(MetaMethod::ListFiles, fbb);
  ASSERT_TRUE(lf.isOk()) << lf.status().toString();
  ASSERT_EQ((*lf)->files()->size(), 3u);
  EXPECT_EQ((*lf)->files()->Get(0)->path()->str(), "empty");
  EXPECT_EQ((*lf)->files()->Get(0)->type(), w::EntryType::Directory);
  EXPECT_EQ((*lf)->files()->Get(1)->path()->str(), "f");
  EXPECT_EQ((*lf)->files()->Get(2)->path()->str(), "sub/link");
  EXPECT_EQ((*lf)->files()->Get(2)->type(), w::EntryType::Symlink);
  EXPECT_EQ((*lf)->files()->Get(2)->symlink_target()->str(), "../f");

  // v2 retargets the link: Diff reports it changed.
  uint32_t v2 = begin("tree");
  ASSERT_TRUE(addFiles("tree", v2,
                       {dirSpec("empty", 0700, t), linkSpec("sub/link", "/abs/f", t + 1),
                        testing::makeFile("f", 1)})
                  .isOk());
  ASSERT_TRUE(commit("tree", v2).isOk());
  fbb.Clear();
  fbb.Finish(w::CreateDiffRequestDirect(fbb, "tree", "v1", "v2"));
  auto diff = call<w::DiffResponse>(MetaMethod::Diff, fbb);
  ASSERT_TRUE(diff.isOk()) << diff.status().toString();
  ASSERT_EQ((*diff)->changes()->size(), 1u);
  EXPECT_EQ((*diff)->changes()->Get(0)->path()->str(), "sub/link");
  EXPECT_EQ((*diff)->changes()->Get(0)->kind(), w::ChangeKind::Changed);
  EXPECT_EQ((*diff)->changes()->Get(0)->old_size(), 4u);
  EXPECT_EQ((*diff)->changes()->Get(0)->new_size(), 6u);

  // Bad entries are refused naming the field, whatever the wire carries.
  uint32_t v3 = begin("tree");
  Status s = addFiles("tree", v3, {testing::makeFile("ok", 2), linkSpec("l", "", t)});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("files[1].symlink_target: empty"), std::string::npos) << s.toString();
  FileSpec bad_dir = dirSpec("d", 0755, t);
  bad_dir.extents = testing::makeFile("d", 3).extents;
  s = addFiles("tree", v3, {bad_dir});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("files[0]: a directory has no extents"), std::string::npos)
      << s.toString();
  FileSpec bad_type = testing::makeFile("x", 4);
  bad_type.type = static_cast<EntryType>(42);
  s = addFiles("tree", v3, {bad_type});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("files[0].type"), std::string::npos) << s.toString();
}

// A page of `limit` entries can be larger than a frame (255-byte names with
// 4 KiB symlink targets): ReadDir stops early with a cursor instead of
// failing, and paging still returns every entry once, in order.
// Commits dataset "links" v1: kLongLinks symlinks with the longest names
// and targets, ~4.3 MB of entries, more than one reply can carry.
constexpr int kLongLinks = 1000;
const std::string kLongTarget(kMaxSymlinkTargetLength, 't');
std::string longLinkName(int i) {
  char prefix[16];
  std::snprintf(prefix, sizeof(prefix), "%05d-", i);
  return std::string(prefix) + std::string(kMaxComponentLength - 6, 'n');
}

void MetaRpcTest::commitLongLinks() {
  createDataset("links");
  const int64_t t = 1'600'000'000'000'000'001;
  uint32_t v1 = begin("links");
  for (int batch = 0; batch < kLongLinks; batch += 250) {
    std::vector<FileSpec> specs;
    for (int i = batch; i < batch + 250; ++i) specs.push_back(linkSpec(longLinkName(i), kLongTarget, t));
    ASSERT_TRUE(addFiles("links", v1, specs).isOk());
  }
  ASSERT_TRUE(commit("links", v1).isOk());
}

TEST_F(MetaRpcTest, ReadDirPagesStayWithinAFrame) {
  ASSERT_NO_FATAL_FAILURE(commitLongLinks());
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  for (;;) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(w::CreateReadDirRequestDirect(fbb, "links", "v1", "", cursor.c_str(), kLongLinks));
    auto rd = call<w::ReadDirResponse>(MetaMethod::ReadDir, fbb);
    ASSERT_TRUE(rd.isOk()) << "page " << pages << ": " << rd.status().toString();
    ++pages;
    ASSERT_GT((*rd)->entries()->size(), 0u);
    for (const w::Entry* e : *(*rd)->entries()) {
      EXPECT_EQ(e->symlink_target()->size(), kLongTarget.size());
      seen.push_back(e->path()->str());
    }
    cursor = (*rd)->next_cursor()->str();
    if (cursor.empty()) break;
    ASSERT_LT(pages, 10) << "paging does not end";
  }
  EXPECT_GE(pages, 2);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kLongLinks));
  for (int i = 0; i < kLongLinks; ++i) EXPECT_EQ(seen[i], longLinkName(i));
}

// A Lookup whose answers would outgrow a frame is answered for the first
// paths only; asking again from there answers the rest.
TEST_F(MetaRpcTest, LookupAnswersWhatFitsAFrameAndTheRestOnRequest) {
  ASSERT_NO_FATAL_FAILURE(commitLongLinks());
  std::vector<std::string> paths;
  for (int i = 0; i < kLongLinks; ++i) paths.push_back(longLinkName(i));
  size_t answered = 0;
  int calls = 0;
  while (answered < paths.size()) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<std::string> rest(paths.begin() + static_cast<long>(answered), paths.end());
    fbb.Finish(w::CreateLookupRequest(fbb, fbb.CreateString("links"), fbb.CreateString("v1"),
                                      fbb.CreateVectorOfStrings(rest), true));
    auto lk = call<w::LookupResponse>(MetaMethod::Lookup, fbb);
    ASSERT_TRUE(lk.isOk()) << "call " << calls << ": " << lk.status().toString();
    ASSERT_GT((*lk)->results()->size(), 0u);
    ASSERT_LE((*lk)->results()->size(), rest.size());
    for (const w::LookupResult* r : *(*lk)->results()) {
      ASSERT_TRUE(r->found());
      EXPECT_EQ(r->entry()->path()->str(), paths[answered]);
      EXPECT_EQ(r->entry()->symlink_target()->str(), kLongTarget);
      ++answered;
    }
    ASSERT_LT(++calls, 10) << "answers do not end";
  }
  EXPECT_GE(calls, 2);
}

TEST_F(MetaRpcTest, BadInputIsRefusedNamingTheField) {
  // A body that is not a FlatBuffer.
  std::vector<uint8_t> junk = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto raw = ep_->call(client_->peer(), metaOpcode(MetaMethod::AddFiles), junk);
  EXPECT_EQ(raw.status().code(), StatusCode::kProtocolError);
  auto empty = ep_->call(client_->peer(), metaOpcode(MetaMethod::Stat), {});
  EXPECT_EQ(empty.status().code(), StatusCode::kProtocolError);

  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(w::CreateCreateDatasetRequestDirect(fbb, "bad name", 1, 0));
  auto r = call<w::CreateDatasetResponse>(MetaMethod::CreateDataset, fbb);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("dataset name"), std::string::npos) << r.status().toString();

  fbb.Clear();
  fbb.Finish(w::CreateCreateDatasetRequestDirect(fbb, "ok", 1, 0, static_cast<w::CompressionPolicy>(42)));
  r = call<w::CreateDatasetResponse>(MetaMethod::CreateDataset, fbb);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("compression"), std::string::npos);

  createDataset("ds");
  uint32_t v = begin("ds");
  Status s = addFiles("ds", v, {testing::makeFile("a/../etc/passwd", 1)});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("files[0].path"), std::string::npos) << s.toString();

  fbb.Clear();
  fbb.Finish(w::CreateSetTagRequestDirect(fbb, "ds", "v7", v));
  auto t = call<w::SetTagResponse>(MetaMethod::SetTag, fbb);
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("tag"), std::string::npos);

  fbb.Clear();
  fbb.Finish(w::CreateSetNodeStateRequest(fbb, 1, static_cast<w::NodeState>(77)));
  auto ns = call<w::SetNodeStateResponse>(MetaMethod::SetNodeState, fbb);
  EXPECT_EQ(ns.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ns.status().message().find("state"), std::string::npos);

  std::vector<w::Hash> chunks(1001, w::Hash(1, 2));
  fbb.Clear();
  fbb.Finish(w::CreateFindChunkUsersRequestDirect(fbb, &chunks, 5));
  auto users = call<w::FindChunkUsersResponse>(MetaMethod::FindChunkUsers, fbb);
  EXPECT_EQ(users.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(users.status().message().find("chunks"), std::string::npos) << users.status().toString();
  chunks.resize(3);
  fbb.Clear();
  fbb.Finish(w::CreateFindChunkUsersRequestDirect(fbb, &chunks, 5000));
  users = call<w::FindChunkUsersResponse>(MetaMethod::FindChunkUsers, fbb);
  EXPECT_EQ(users.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(users.status().message().find("max_paths"), std::string::npos) << users.status().toString();

  // An unknown method number.
  auto unknown = ep_->call(client_->peer(), net::makeOpcode(net::ServiceId::kMeta, 200), junk);
  EXPECT_EQ(unknown.status().code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace sluice::meta
