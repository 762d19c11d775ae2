// End to end through real daemons: upload with the client library and the
// CLI, read back through the striped reader, and the failure cases issue 5
// names (corrupt replica, killed upload, bad arguments).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <set>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "client/cluster_config.h"
#include "client/reader.h"
#include "client/uploader.h"
#include "common/wire/meta_generated.h"
#include "tests/client/tree_util.h"
#include "tests/lib/test_cluster.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;
namespace meta = wire::meta;

class ClientE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto c = TestCluster::start();
    ASSERT_TRUE(c.isOk()) << c.status().toString();
    cluster_ = c->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    auto conn = cluster_->connect();
    ASSERT_TRUE(conn.isOk()) << conn.status().toString();
    client_ = std::move(*conn);
  }

  void createDataset(const std::string& name, int replication, uint32_t chunk_size = 0) {
    meta::CreateDatasetRequestT req;
    req.name = name;
    req.replication = static_cast<uint8_t>(replication);
    req.chunk_size = chunk_size;
    auto r = client_->meta<meta::CreateDatasetRequest, meta::CreateDatasetResponse>(
        meta::MetaMethod::CreateDataset, req, "CreateDataset");
    ASSERT_TRUE(r.isOk()) << r.status().toString();
  }

  client::UploadReport upload(const std::string& dir, const std::string& dataset) {
    client::UploadOptions o;
    o.message = "test upload";
    auto r = client::uploadDirectory(*client_, dir, dataset, o);
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return r.isOk() ? *r : client::UploadReport{};
  }

  // Every file under `root` reads back byte-identical from dataset@version.
  void expectSameTree(const std::string& root, const std::string& dataset,
                      const std::string& version) {
    auto reader = client::DatasetReader::open(*client_, dataset, version);
    ASSERT_TRUE(reader.isOk()) << reader.status().toString();
    auto files = listFiles(root);
    ASSERT_FALSE(files.empty());
    for (size_t start = 0; start < files.size(); start += 500) {
      std::vector<std::string> batch(files.begin() + start,
                                     files.begin() + std::min(files.size(), start + 500));
      auto infos = (*reader)->statMany(batch);
      ASSERT_TRUE(infos.isOk()) << infos.status().toString();
      for (size_t i = 0; i < batch.size(); ++i) {
        auto data = (*reader)->readAll((*infos)[i]);
        ASSERT_TRUE(data.isOk()) << batch[i] << ": " << data.status().toString();
        std::string text = readFile(fs::path(root) / batch[i]);
        std::vector<uint8_t> expected(text.begin(), text.end());
        ASSERT_EQ(data->size(), expected.size()) << batch[i];
        auto mismatch = std::mismatch(data->begin(), data->end(), expected.begin());
        ASSERT_TRUE(mismatch.first == data->end())
            << batch[i] << ": first wrong byte at offset " << (mismatch.first - data->begin())
            << " of " << data->size();
      }
    }
  }

  static TestCluster* cluster_;
  std::unique_ptr<client::Cluster> client_;
};

TestCluster* ClientE2E::cluster_ = nullptr;

TEST_F(ClientE2E, EdgeSizesNamesAndDepthRoundTrip) {
  TempDir src;
  const size_t kChunk = 1u << 20;  // == the record size, so chunk and record edges coincide
  writeFile(fs::path(src.path()) / "empty", "");
  writeFile(fs::path(src.path()) / "one", "x");
  writeFile(fs::path(src.path()) / "chunk-minus-1", makeContent(kChunk - 1, 1));
  writeFile(fs::path(src.path()) / "chunk-exact", makeContent(kChunk, 2));
  writeFile(fs::path(src.path()) / "chunk-plus-1", makeContent(kChunk + 1, 3));
  writeFile(fs::path(src.path()) / "text.log", makeContent(3 * kChunk + 17, 4, true));
  writeFile(fs::path(src.path()) / "dír with spaces" / "ñame é 日本.txt", "unicode");
  std::string deep = "d0";
  for (int i = 1; i < 24; ++i) deep += "/d" + std::to_string(i);
  writeFile(fs::path(src.path()) / deep / "leaf.bin", makeContent(5000, 5));
  createDataset("edges", 2, kChunk);
  auto report = upload(src.path(), "edges");
  EXPECT_EQ(report.version, 1u);
  EXPECT_EQ(report.files, 8u);
  expectSameTree(src.path(), "edges", "v1");
  expectSameTree(src.path(), "edges", "latest");
}

// One 1 GiB file: it spans many upload batches (its extents reach meta in
// appended pieces) and many chunks on every node; read back in 64 MiB slices.
TEST_F(ClientE2E, OneGiBFileRoundTrip) {
  TempDir src;
  const size_t kPiece = 64u << 20;
  const size_t kPieces = 16;
  {
    std::ofstream out(fs::path(src.path()) / "huge.bin", std::ios::binary);
    for (size_t i = 0; i < kPieces; ++i) out << makeContent(kPiece, 1000 + i);
  }
  createDataset("huge", 2);
  auto report = upload(src.path(), "huge");
  ASSERT_EQ(report.logical_bytes, kPiece * kPieces);
  EXPECT_GE(report.chunks, 256u);
  auto reader = client::DatasetReader::open(*client_, "huge", "v1");
  ASSERT_TRUE(reader.isOk());
  auto info = (*reader)->stat("huge.bin");
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  ASSERT_EQ(info->size, kPiece * kPieces);
  std::vector<uint8_t> buf(kPiece);
  for (size_t i = 0; i < kPieces; ++i) {
    auto n = (*reader)->read(*info, i * kPiece, buf);
    ASSERT_TRUE(n.isOk()) << n.status().toString();
    ASSERT_EQ(*n, kPiece);
    std::string expected = makeContent(kPiece, 1000 + i);
    ASSERT_EQ(std::memcmp(buf.data(), expected.data(), kPiece), 0) << "slice " << i;
  }
  // An unaligned read across record and chunk boundaries.
  std::vector<uint8_t> small(3u << 20);
  uint64_t offset = 5 * kPiece - 12345;
  auto n = (*reader)->read(*info, offset, small);
  ASSERT_TRUE(n.isOk());
  std::string a = makeContent(kPiece, 1000 + 4), b = makeContent(kPiece, 1000 + 5);
  std::string expected = a.substr(kPiece - 12345) + b.substr(0, small.size() - 12345);
  EXPECT_EQ(std::memcmp(small.data(), expected.data(), small.size()), 0);
}

TEST_F(ClientE2E, TenThousandSmallFilesAndOnePercentChange) {
  TempDir src;
  const int kFiles = 10000;
  for (int i = 0; i < kFiles; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "shard%02d/sample%05d.bin", i % 50, i);
    writeFile(fs::path(src.path()) / name, makeContent(2000 + (i * 37) % 3000, 100 + i));
  }
  createDataset("small", 2);
  auto v1 = upload(src.path(), "small");
  EXPECT_EQ(v1.files, static_cast<uint64_t>(kFiles));
  expectSameTree(src.path(), "small", "v1");

  // Change 1% of the files in place (random ones) and upload v2.
  std::mt19937 rng(7);
  for (int k = 0; k < kFiles / 100; ++k) {
    int i = static_cast<int>(rng() % kFiles);
    char name[64];
    std::snprintf(name, sizeof name, "shard%02d/sample%05d.bin", i % 50, i);
    writeFile(fs::path(src.path()) / name, makeContent(3000, 900000 + k));
  }
  auto v2 = upload(src.path(), "small");
  EXPECT_EQ(v2.version, 2u);
  ASSERT_GT(v2.logical_bytes, 0u);
  double fraction = static_cast<double>(v2.new_stored_bytes) / static_cast<double>(v2.logical_bytes);
  EXPECT_LE(fraction, 0.03) << "v2 stored " << v2.new_stored_bytes << " new bytes of "
                            << v2.logical_bytes;
  expectSameTree(src.path(), "small", "v2");

  // meta agrees about what v2 added.
  meta::GetVersionRequestT req;
  req.dataset = "small";
  req.version = "v2";
  auto info = client_->meta<meta::GetVersionRequest, meta::GetVersionResponse>(
      meta::MetaMethod::GetVersion, req, "GetVersion");
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  EXPECT_LE((*info)->version->stored_bytes, v2.logical_bytes * 3 / 100);
}

// Flip a byte in the middle of one stored copy of every chunk of a file:
// replication 2 reads stay correct (the reader fails over to the other
// copy); replication 1 gives a checksum error naming the record, never
// wrong bytes.
TEST_F(ClientE2E, CorruptReplicaFailsOverOrFailsClearly) {
  for (int replication : {2, 1}) {
    SCOPED_TRACE("replication " + std::to_string(replication));
    std::string dataset = "corrupt" + std::to_string(replication);
    TempDir src;
    writeFile(fs::path(src.path()) / "a.bin", makeContent(3u << 20, 10 + replication));
    createDataset(dataset, replication);
    upload(src.path(), dataset);

    auto reader = client::DatasetReader::open(*client_, dataset, "v1");
    ASSERT_TRUE(reader.isOk());
    auto info = (*reader)->stat("a.bin");
    ASSERT_TRUE(info.isOk());
    std::set<ChunkId> chunks;
    for (const auto& e : info->extents) chunks.insert(e.chunk);
    int corrupted = 0;
    auto map = client_->map();
    for (const ChunkId& chunk : chunks) {
      // The copy on the stripe's first replica: the one a reader tries first.
      const client::NodeEntry* first = map->node(map->replicasOf(chunk, replication).at(0));
      ASSERT_NE(first, nullptr);
      for (int node = 1; node <= 3; ++node) {
        if (cluster_->state().nodes[node - 1].address != first->address) continue;
        bool done = false;
        for (const auto& f : cluster_->chunkFiles(node)) {
          if (fs::path(f).filename() != chunk.toHex()) continue;
          std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
          io.seekg(0, std::ios::end);
          std::streamoff middle = io.tellg() / 2;
          io.seekg(middle);
          char c;
          io.get(c);
          io.seekp(middle);
          io.put(static_cast<char>(c ^ 0x5a));
          done = true;
          ++corrupted;
        }
        if (done) break;  // one copy per chunk only
      }
    }
    ASSERT_EQ(corrupted, static_cast<int>(chunks.size()));

    auto data = (*reader)->readAll(*info);
    if (replication == 2) {
      ASSERT_TRUE(data.isOk()) << data.status().toString();
      std::string expected = readFile(fs::path(src.path()) / "a.bin");
      EXPECT_TRUE(std::equal(data->begin(), data->end(), expected.begin(), expected.end(),
                             [](uint8_t a, char b) { return a == static_cast<uint8_t>(b); }));
      EXPECT_GT((*reader)->stats().failovers.load(), 0u);
    } else {
      ASSERT_FALSE(data.isOk());
      EXPECT_TRUE(data.status().code() == StatusCode::kChecksumMismatch ||
                  data.status().code() == StatusCode::kCorruption)
          << data.status().toString();
      EXPECT_NE(data.status().message().find("record"), std::string::npos)
          << data.status().toString();
    }
  }
}

// A read outlasts a node that stalls for longer than the client's timeout
// (a long GC pause, a saturated disk): with one copy there is no other
// replica, and the reader tries the node again after reading the map.
TEST_F(ClientE2E, ReadOutlastsAStorageNodeStallLongerThanTheTimeout) {
  TempDir src;
  const std::string content = makeContent(1u << 20, 4242);
  writeFile(fs::path(src.path()) / "stall.bin", content);
  createDataset("stall", 1);
  upload(src.path(), "stall");
  auto config = client::readClusterConfig(cluster_->clientConfigPath());
  ASSERT_TRUE(config.isOk()) << config.status().toString();
  config->timeout = std::chrono::milliseconds(1000);
  auto conn = client::Cluster::connect(*config);
  ASSERT_TRUE(conn.isOk()) << conn.status().toString();
  auto reader = client::DatasetReader::open(**conn, "stall", "v1");
  ASSERT_TRUE(reader.isOk()) << reader.status().toString();
  auto info = (*reader)->stat("stall.bin");
  ASSERT_TRUE(info.isOk()) << info.status().toString();

  std::vector<pid_t> nodes;
  for (const auto& n : cluster_->state().nodes) nodes.push_back(n.pid);
  struct Resume {
    std::vector<pid_t> pids;
    ~Resume() {
      for (pid_t p : pids) ::kill(p, SIGCONT);
    }
  } resume{nodes};
  for (pid_t p : nodes) ASSERT_EQ(::kill(p, SIGSTOP), 0);
  std::thread wake([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    for (pid_t p : nodes) ::kill(p, SIGCONT);
  });
  auto data = (*reader)->readAll(*info);
  wake.join();
  ASSERT_TRUE(data.isOk()) << data.status().toString();
  EXPECT_TRUE(std::equal(data->begin(), data->end(), content.begin(), content.end(),
                         [](uint8_t a, char b) { return a == static_cast<uint8_t>(b); }));
}

TEST_F(ClientE2E, KilledUploadResumesSendingOnlyWhatIsMissing) {
  TempDir src;
  for (int i = 0; i < 48; ++i) {
    writeFile(fs::path(src.path()) / ("part" + std::to_string(i)), makeContent(2u << 20, 500 + i));
  }
  createDataset("resume", 1);
  auto exe = tools::findExecutable("sluice");
  ASSERT_TRUE(exe.isOk());
  // Start the CLI upload with small batches, and kill -9 it once the draft
  // holds some files.
  auto pid = tools::spawnProcess(tools::ProcessSpec{
      *exe, {"--cluster", cluster_->clientConfigPath(), "-q", "put", src.path(), "resume", "--batch", "4M"},
      cluster_->dir() + "/put1.log", false, true});
  ASSERT_TRUE(pid.isOk());
  bool killed = false;
  for (int i = 0; i < 2000 && !killed; ++i) {
    meta::ListVersionsRequestT req;
    req.dataset = "resume";
    auto list = client_->meta<meta::ListVersionsRequest, meta::ListVersionsResponse>(
        meta::MetaMethod::ListVersions, req, "ListVersions");
    if (list.isOk() && !list->get()->versions.empty() &&
        list->get()->versions[0]->file_count >= 8) {
      ::kill(*pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(killed) << "the upload finished before it could be interrupted";
  tools::reapIfChild(*pid);

  auto second = cluster_->runCli({"--json", "put", src.path(), "resume"});
  ASSERT_TRUE(second.isOk());
  ASSERT_EQ(second->exit_code, 0) << second->err;
  // The re-run stored less than the whole tree: what the killed run had
  // added to its draft was found in the record index and not sent again.
  auto pos = second->out.find("\"new_raw_bytes\":");
  ASSERT_NE(pos, std::string::npos) << second->out;
  uint64_t fresh = std::stoull(second->out.substr(pos + 16));
  EXPECT_LE(fresh, (48ull - 8) * (2u << 20)) << second->out;
  expectSameTree(src.path(), "resume", "latest");
}

TEST_F(ClientE2E, BadArgumentsGiveClearErrorsAndExitCodes) {
  auto r = cluster_->runCli({"versions", "no-such-dataset"});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_NE(r->err.find("no-such-dataset"), std::string::npos) << r->err;

  TempDir src;
  writeFile(fs::path(src.path()) / "f", "x");
  r = cluster_->runCli({"put", src.path(), "no-such-dataset"});
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_NE(r->err.find("sluice dataset create"), std::string::npos) << r->err;

  r = cluster_->runCli({"put", src.path() + "/missing", "x"});
  EXPECT_NE(r->exit_code, 0);

  createDataset("args", 1);
  r = cluster_->runCli({"-q", "put", src.path(), "args"});
  EXPECT_EQ(r->exit_code, 0) << r->err;
  r = cluster_->runCli({"cat", "args@v9", "f"});
  EXPECT_EQ(r->exit_code, 3) << r->err;
  r = cluster_->runCli({"cat", "args@v1", "../../etc/passwd"});
  EXPECT_EQ(r->exit_code, 2) << r->err;
  EXPECT_NE(r->err.find(".."), std::string::npos) << r->err;
  r = cluster_->runCli({"get", "args@v1", "a/../../x", src.path() + "/out"});
  EXPECT_EQ(r->exit_code, 2) << r->err;
  r = cluster_->runCli({"dataset", "create", "bad name"});
  EXPECT_EQ(r->exit_code, 2) << r->err;
  // A tag that cannot be set fails the put before anything is committed.
  for (const char* tag : {"bad tag", "v9"}) {
    r = cluster_->runCli({"-q", "put", src.path(), "args", "--tag", tag});
    EXPECT_EQ(r->exit_code, 2) << tag << ": " << r->err;
    EXPECT_NE(r->err.find("--tag"), std::string::npos) << r->err;
  }
  r = cluster_->runCli({"gc", "--grace", "5"});
  EXPECT_EQ(r->exit_code, 2) << "--grace means nothing without --dry-run: " << r->err;
  r = cluster_->runCli({"gc", "--dry-run", "--grace", "-1"});
  EXPECT_EQ(r->exit_code, 2) << r->err;
  r = cluster_->runCli({"--json", "versions", "args"});
  EXPECT_EQ(r->exit_code, 0) << r->err;
  EXPECT_EQ(r->out.find("\"version\":2"), std::string::npos) << "no version was added: " << r->out;
  r = cluster_->runCli({"cat", "args@v1", "f"});
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out, "x");
}

// More tags than one ListTags page (1000): `sluice tag list` follows the
// pages and shows every tag once, in name order; `dataset show` shows them all.
TEST_F(ClientE2E, TagListShowsEveryPage) {
  TempDir src;
  writeFile(fs::path(src.path()) / "a.txt", makeContent(1000, 5, true));
  createDataset("manytags", 1);
  upload(src.path(), "manytags");
  constexpr int kTags = 1203;
  for (int i = 0; i < kTags; ++i) {
    meta::SetTagRequestT req;
    req.dataset = "manytags";
    char name[16];
    std::snprintf(name, sizeof(name), "t%04d", i);
    req.tag = name;
    req.version = 1;
    auto r = client_->meta<meta::SetTagRequest, meta::SetTagResponse>(meta::MetaMethod::SetTag,
                                                                      req, "SetTag");
    ASSERT_TRUE(r.isOk()) << name << ": " << r.status().toString();
  }
  auto list = cluster_->runCli({"--json", "tag", "list", "manytags"});
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->exit_code, 0) << list->err;
  for (int i = 0; i < kTags; i += 97) {
    char name[16];
    std::snprintf(name, sizeof(name), "\"t%04d\"", i);
    EXPECT_NE(list->out.find(name), std::string::npos) << name;
  }
  // Each tag once: count the names' quotes ("latest" and kTags of ours).
  size_t names = 0;
  for (size_t at = 0; (at = list->out.find("\":", at)) != std::string::npos; ++at) ++names;
  EXPECT_EQ(names, static_cast<size_t>(kTags) + 1) << list->out.substr(0, 200);
  EXPECT_LT(list->out.find("\"t0999\""), list->out.find("\"t1000\"")) << "name order";
  auto show = cluster_->runCli({"--json", "dataset", "show", "manytags"});
  ASSERT_TRUE(show.isOk());
  ASSERT_EQ(show->exit_code, 0) << show->err;
  EXPECT_NE(show->out.find("\"t1202\""), std::string::npos) << "dataset show lists every page too";
}

// More answers than one Lookup reply holds (1000 symlinks with the longest
// names and 4 KiB targets, ~4.3 MB): statMany gets them all.
TEST_F(ClientE2E, StatManyOfLongSymlinksOutgrowingAReply) {
  TempDir src;
  const std::string target(4095, 't');  // the longest Linux keeps
  std::vector<std::string> names;
  for (int i = 0; i < 1000; ++i) {
    char prefix[16];
    std::snprintf(prefix, sizeof(prefix), "%04d-", i);
    names.push_back(std::string(prefix) + std::string(250, 'n'));
    fs::create_symlink(target, fs::path(src.path()) / names.back());
  }
  createDataset("longlinks", 1);
  upload(src.path(), "longlinks");
  auto reader = client::DatasetReader::open(*client_, "longlinks", "latest");
  ASSERT_TRUE(reader.isOk()) << reader.status().toString();
  auto infos = (*reader)->statMany(names);
  ASSERT_TRUE(infos.isOk()) << infos.status().toString();
  ASSERT_EQ(infos->size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ((*infos)[i].path, names[i]);
    EXPECT_EQ((*infos)[i].symlink_target, target) << names[i];
  }
}

TEST_F(ClientE2E, CliGetReproducesTheTree) {
  TempDir src, dest;
  writeFile(fs::path(src.path()) / "x/y/z.bin", makeContent(1500000, 77));
  writeFile(fs::path(src.path()) / "top.txt", makeContent(4000, 78, true));
  fs::create_directories(fs::path(src.path()) / "empty-dir");
  fs::permissions(fs::path(src.path()) / "empty-dir", fs::perms(0750));
  fs::create_symlink("x/y/z.bin", fs::path(src.path()) / "link");
  fs::create_symlink("../../outside", fs::path(src.path()) / "x" / "escape");
  // A name at the file system's limit: the temporary file of a get needs a
  // shorter name than "<name>.sluice-part".
  const std::string long_name(250, 'n');
  writeFile(fs::path(src.path()) / "x" / long_name, "long");
  createDataset("cliget", 2);
  auto put = cluster_->runCli({"-q", "put", src.path(), "cliget", "-m", "first", "--tag", "gold"});
  ASSERT_TRUE(put.isOk());
  ASSERT_EQ(put->exit_code, 0) << put->err;
  auto get = cluster_->runCli({"-q", "get", "cliget@gold", dest.path() + "/copy"});
  ASSERT_EQ(get->exit_code, 0) << get->err;
  EXPECT_EQ(listFiles(src.path()), listFiles(dest.path() + "/copy"));
  for (const auto& f : listFiles(src.path())) {
    EXPECT_EQ(readFile(fs::path(src.path()) / f), readFile(fs::path(dest.path()) / "copy" / f)) << f;
    EXPECT_EQ(fs::status(fs::path(src.path()) / f).permissions(),
              fs::status(fs::path(dest.path()) / "copy" / f).permissions());
  }
  // Empty directories and symlinks come back as they were uploaded; a link's
  // target is data, restored verbatim and never followed.
  fs::path copy = fs::path(dest.path()) / "copy";
  EXPECT_TRUE(fs::is_directory(copy / "empty-dir"));
  EXPECT_EQ(fs::status(copy / "empty-dir").permissions(), fs::perms(0750));
  EXPECT_TRUE(fs::is_symlink(copy / "link"));
  EXPECT_EQ(fs::read_symlink(copy / "link"), "x/y/z.bin");
  EXPECT_EQ(fs::read_symlink(copy / "x" / "escape"), "../../outside");
  // One file into a directory that does not exist yet, named with a '/'.
  get = cluster_->runCli({"-q", "get", "cliget@v1", "top.txt", dest.path() + "/new-dir/"});
  ASSERT_EQ(get->exit_code, 0) << get->err;
  EXPECT_EQ(readFile(fs::path(dest.path()) / "new-dir" / "top.txt"), readFile(fs::path(src.path()) / "top.txt"));
  // Tag and version commands answer --json with JSON.
  auto tagged = cluster_->runCli({"--json", "tag", "set", "cliget@v1", "extra"});
  ASSERT_EQ(tagged->exit_code, 0) << tagged->err;
  EXPECT_EQ(tagged->out, "{\"dataset\":\"cliget\",\"tag\":\"extra\",\"version\":1,\"previous_version\":0}\n");
  tagged = cluster_->runCli({"tag", "set", "cliget@v1", "extra"});
  EXPECT_NE(tagged->out.find("already names v1"), std::string::npos) << tagged->out;
  tagged = cluster_->runCli({"--json", "tag", "rm", "cliget", "extra"});
  ASSERT_EQ(tagged->exit_code, 0) << tagged->err;
  EXPECT_EQ(tagged->out, "{\"dataset\":\"cliget\",\"tag\":\"extra\",\"deleted\":true}\n");
  // A target that is not a regular file is refused, not replaced.
  const std::string fifo = dest.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  get = cluster_->runCli({"-q", "get", "cliget@v1", "top.txt", fifo});
  EXPECT_EQ(get->exit_code, 2) << get->err;
  EXPECT_NE(get->err.find("is a FIFO"), std::string::npos) << get->err;
  EXPECT_TRUE(fs::is_fifo(fifo));
  // cat whose output cannot take the last bytes fails instead of exiting 0.
  auto exe = tools::findExecutable("sluice");
  ASSERT_TRUE(exe.isOk());
  auto full = tools::runProcess("/bin/sh", {"-c", *exe + " --cluster " + cluster_->clientConfigPath() +
                                                      " cat cliget@v1 top.txt > /dev/full"});
  ASSERT_TRUE(full.isOk());
  EXPECT_NE(full->exit_code, 0);
  EXPECT_NE(full->err.find("No space left"), std::string::npos) << full->err;
  auto cat_link = cluster_->runCli({"cat", "cliget@v1", "link"});
  EXPECT_EQ(cat_link->exit_code, 2);
  EXPECT_NE(cat_link->err.find("symlink"), std::string::npos) << cat_link->err;

  auto ls = cluster_->runCli({"ls", "-R", "cliget@v1"});
  EXPECT_NE(ls->out.find("x/y/z.bin"), std::string::npos) << ls->out;
  // A file is listed as itself, as ls(1) does.
  ls = cluster_->runCli({"ls", "-l", "cliget@v1", "x/y/z.bin"});
  EXPECT_EQ(ls->exit_code, 0) << ls->err;
  EXPECT_NE(ls->out.find("x/y/z.bin"), std::string::npos) << ls->out;
  EXPECT_NE(ls->out.find("1,500,000"), std::string::npos) << ls->out;
  auto status = cluster_->runCli({"status"});
  EXPECT_EQ(status->exit_code, 0);
  EXPECT_NE(status->out.find("up"), std::string::npos) << status->out;
}

// A file rewritten while it is uploaded is not stored torn: the upload
// fails, naming it, and nothing is committed.
TEST_F(ClientE2E, AFileChangingDuringUploadFailsItInsteadOfStoringItTorn) {
  TempDir src;
  const std::string big = src.path() + "/changing.bin";
  writeFile(big, makeContent(24u << 20, 31));
  createDataset("torn", 1);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    // Rewrites 1 MiB pieces in place, size unchanged, until told to stop.
    int fd = ::open(big.c_str(), O_WRONLY);
    std::string piece(1u << 20, 'w');
    for (uint64_t i = 0; fd >= 0 && !stop; ++i) {
      piece[0] = static_cast<char>(i);
      if (::pwrite(fd, piece.data(), piece.size(), static_cast<off_t>((i % 24) << 20)) < 0) break;
    }
    if (fd >= 0) ::close(fd);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto put = cluster_->runCli({"-q", "put", src.path(), "torn", "--batch", "1M", "--threads", "1"});
  stop = true;
  writer.join();
  ASSERT_TRUE(put.isOk());
  EXPECT_NE(put->exit_code, 0) << "a file rewritten during the upload was committed";
  EXPECT_NE(put->err.find("'changing.bin' changed while it was uploaded"), std::string::npos) << put->err;
  meta::ListVersionsRequestT req;
  req.dataset = "torn";
  auto list = client_->meta<meta::ListVersionsRequest, meta::ListVersionsResponse>(meta::MetaMethod::ListVersions,
                                                                                  req, "ListVersions");
  ASSERT_TRUE(list.isOk());
  for (const auto& v : list->get()->versions) EXPECT_NE(v->state, meta::VersionState::Committed);
}

// A version deleted (and collected by gc) under a reader: its reads say the
// version was deleted, not that data was lost.
TEST_F(ClientE2E, ReadingADeletedVersionSaysSoNotCorruption) {
  TempDir src;
  writeFile(fs::path(src.path()) / "a.bin", makeContent(300000, 4242));
  createDataset("gone", 2);
  upload(src.path(), "gone");
  auto reader = client::DatasetReader::open(*client_, "gone", "v1");
  ASSERT_TRUE(reader.isOk()) << reader.status().toString();
  auto file = (*reader)->stat("a.bin");
  ASSERT_TRUE(file.isOk()) << file.status().toString();
  for (const std::vector<std::string>& args : {std::vector<std::string>{"version", "rm", "gone@v1", "--force"},
                                               std::vector<std::string>{"gc"}}) {
    auto r = cluster_->runCli(args);
    ASSERT_TRUE(r.isOk());
    ASSERT_EQ(r->exit_code, 0) << r->err;
  }
  auto data = (*reader)->readAll(*file);
  ASSERT_FALSE(data.isOk());
  EXPECT_EQ(data.status().code(), StatusCode::kNotFound) << data.status().toString();
  EXPECT_NE(data.status().message().find("gone@v1 was deleted"), std::string::npos) << data.status().toString();
}

// Ctrl-C during a get: exit 130, the files written so far are complete,
// and no half-written *.sluice-part file is left behind.
TEST_F(ClientE2E, InterruptedGetLeavesOnlyCompleteFiles) {
  TempDir src, dest;
  for (int i = 0; i < 40; ++i) {
    writeFile(fs::path(src.path()) / ("p" + std::to_string(i)), makeContent(6u << 20, 900 + i));
  }
  createDataset("interrupt", 1);
  upload(src.path(), "interrupt");
  auto exe = tools::findExecutable("sluice");
  ASSERT_TRUE(exe.isOk());
  const fs::path copy = fs::path(dest.path()) / "copy";
  auto partFiles = [&](size_t* finished = nullptr) {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(copy, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".sluice-part") {
        out.push_back(it->path().string());
      } else if (finished != nullptr) {
        ++*finished;
      }
    }
    return out;
  };
  auto pid = tools::spawnProcess(tools::ProcessSpec{
      *exe, {"--cluster", cluster_->clientConfigPath(), "-q", "get", "interrupt@v1", copy.string()},
      cluster_->dir() + "/interrupted-get.log", false, true});
  ASSERT_TRUE(pid.isOk());
  bool sent = false;
  for (int i = 0; i < 20000 && !sent; ++i) {
    size_t finished = 0;  // interrupted mid-file, with some files done
    if (!partFiles(&finished).empty() && finished >= 2) {
      ::kill(*pid, SIGINT);
      sent = true;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  int status = 0;
  ASSERT_EQ(::waitpid(*pid, &status, 0), *pid);
  ASSERT_TRUE(sent) << "the get finished before it could be interrupted";
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_EQ(partFiles(), std::vector<std::string>{});
  size_t complete = 0;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(copy, ec)) {
    EXPECT_EQ(readFile(f.path()), readFile(fs::path(src.path()) / f.path().filename())) << f.path();
    ++complete;
  }
  EXPECT_LT(complete, 40u) << "nothing was left to interrupt";
  std::printf("interrupted with %zu of 40 files written\n", complete);
}

}  // namespace
}  // namespace sluice::testing
