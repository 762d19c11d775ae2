// The FUSE mount end to end: a dev cluster, a tree uploaded with the CLI,
// mounted with `sluice mount`, and read with the programs training jobs and
// people use (ls, find, stat, sha256sum, tar, python, fio). Every test
// unmounts, also when it fails (MountGuard).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/codec/hash128.h"
#include "tests/client/tree_util.h"
#include "tests/lib/test_cluster.h"
#include "tests/lib/test_mount.h"
#include "tools/mounts.h"
#include "tools/process.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;

tools::RunOutput sh(const std::string& command) {
  auto r = tools::runProcess("/bin/sh", {"-c", command});
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return r.isOk() ? *r : tools::RunOutput{};
}

class FuseMount : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto c = TestCluster::start();
    ASSERT_TRUE(c.isOk()) << c.status().toString();
    cluster_ = c->release();
    src_ = cluster_->dir() + "/src";
    buildTree(src_);
    runOk({"dataset", "create", "ds", "--replication", "2"});
    runOk({"put", src_, "ds", "-m", "first", "-q"});
    // v2: one file changed, one added; `stable` stays on v1.
    src2_ = cluster_->dir() + "/src2";
    fs::copy(src_, src2_, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    writeFile(fs::path(src2_) / "docs/readme.txt", "changed in v2\n");
    writeFile(fs::path(src2_) / "docs/new.txt", "added in v2\n");
    runOk({"put", src2_, "ds", "-m", "second", "-q"});
    runOk({"tag", "set", "ds@v1", "stable"});
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  static void runOk(const std::vector<std::string>& args) {
    auto r = cluster_->runCli(args);
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    ASSERT_EQ(r->exit_code, 0) << args[0] << ": " << r->err << r->out;
  }

  // Sizes around the record (1 MiB) and chunk (4 MiB) boundaries, many
  // small files packed together, modes, mtimes, symlinks, empty things.
  static void buildTree(const std::string& root) {
    uint64_t seed = 1;
    for (size_t size : {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{131072},
                        (size_t{1} << 20) - 1, size_t{1} << 20, (size_t{1} << 20) + 1,
                        size_t{5} << 20, (size_t{9} << 20) + 12345}) {
      writeFile(fs::path(root) / "sizes" / ("f" + std::to_string(size)), makeContent(size, seed++));
    }
    for (int i = 0; i < 300; ++i) {
      std::string dir = "small/d" + std::to_string(i % 7);
      writeFile(fs::path(root) / dir / ("s" + std::to_string(i) + ".bin"),
                makeContent(1000 + static_cast<size_t>(i) * 397 % 120000, seed++, i % 3 == 0));
    }
    writeFile(fs::path(root) / "large.bin", makeContent(size_t{48} << 20, seed++));
    writeFile(fs::path(root) / "docs/readme.txt", "version one\n");
    writeFile(fs::path(root) / "bin/run.sh", "#!/bin/sh\necho run\n");
    fs::permissions(fs::path(root) / "bin/run.sh", fs::perms(0755));
    writeFile(fs::path(root) / "docs/private.txt", "secret\n");
    fs::permissions(fs::path(root) / "docs/private.txt", fs::perms(0600));
    fs::create_directories(fs::path(root) / "empty/nested");
    fs::permissions(fs::path(root) / "docs", fs::perms(0750));
    fs::create_symlink("docs/readme.txt", fs::path(root) / "readme");
    fs::create_symlink("../sizes", fs::path(root) / "docs/sizes-link");
    // A fixed old mtime on one file, to see it come back exactly.
    struct timespec times[2] = {{1600000000, 123456789}, {1600000000, 123456789}};
    ::utimensat(AT_FDCWD, (root + "/docs/readme.txt").c_str(), times, 0);
  }

  std::string mountpoint(const std::string& name) const { return cluster_->dir() + "/" + name; }

  static TestCluster* cluster_;
  static std::string src_;
  static std::string src2_;
};

TestCluster* FuseMount::cluster_ = nullptr;
std::string FuseMount::src_;
std::string FuseMount::src2_;

// Entries as `find -printf` shows them: path, type, size (not for
// directories: their sizes mean nothing), mode, mtime, symlink target.
std::string describeTree(const std::string& root) {
  auto r = sh("cd '" + root + "' && find . -mindepth 1 \\( -type d -printf '%p %y - %m %T@\\n' \\) -o " +
              "-printf '%p %y %s %m %T@ %l\\n' | LC_ALL=C sort");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

// Compares line by line and reports only the first difference (trees are long).
void expectSameLines(const std::string& got, const std::string& expected, const std::string& what) {
  std::istringstream g(got), e(expected);
  std::string gl, el;
  for (int line = 1;; ++line) {
    bool more_g = static_cast<bool>(std::getline(g, gl));
    bool more_e = static_cast<bool>(std::getline(e, el));
    if (!more_g && !more_e) return;
    if (!more_g || !more_e || gl != el) {
      ADD_FAILURE() << what << ": first difference at line " << line << "\n  got:      "
                    << (more_g ? gl : "<end>") << "\n  expected: " << (more_e ? el : "<end>");
      return;
    }
  }
}

TEST_F(FuseMount, TreeSizesModesAndMtimesMatchTheSource) {
  MountGuard m(*cluster_, mountpoint("m-tree"));
  ASSERT_TRUE(m.ok()) << m.error();
  std::string v1 = m.path() + "/ds/v1";
  std::string expected = describeTree(src_);
  ASSERT_GT(expected.size(), 1000u);
  expectSameLines(describeTree(v1), expected, "v1");
  expectSameLines(describeTree(m.path() + "/ds/v2"), describeTree(src2_), "v2");

  auto ls = sh("ls -lR '" + v1 + "' | grep -c '^-'");
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(std::stoul(ls.out), listFiles(src_).size());

  struct stat st {};
  ASSERT_EQ(::stat((v1 + "/docs/readme.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  ASSERT_EQ(::stat((v1 + "/bin/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(sh("'" + v1 + "/bin/run.sh'").out, "run\n");
}

TEST_F(FuseMount, VersionsAndTagsAreDirectoriesAndSymlinks) {
  MountGuard m(*cluster_, mountpoint("m-tags"));
  ASSERT_TRUE(m.ok()) << m.error();
  std::error_code ec;
  EXPECT_EQ(fs::read_symlink(m.path() + "/ds/latest", ec), "v2");
  EXPECT_EQ(fs::read_symlink(m.path() + "/ds/stable", ec), "v1");
  EXPECT_EQ(readFile(m.path() + "/ds/latest/docs/readme.txt"), "changed in v2\n");
  EXPECT_EQ(readFile(m.path() + "/ds/stable/docs/readme.txt"), "version one\n");
  EXPECT_TRUE(fs::exists(m.path() + "/ds/v2/docs/new.txt"));
  EXPECT_FALSE(fs::exists(m.path() + "/ds/v1/docs/new.txt"));
  auto ls = sh("ls -1 '" + m.path() + "/ds'");
  EXPECT_EQ(ls.out, "latest\nstable\nv1\nv2\n");
  auto root = sh("ls -1 '" + m.path() + "'");
  EXPECT_EQ(root.out, "ds\n");

  // A tag that moves is seen once the short dataset-level timeout passes.
  runOk({"tag", "set", "ds@v2", "stable"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(fs::read_symlink(m.path() + "/ds/stable", ec), "v2");
  runOk({"tag", "set", "ds@v1", "stable"});
}

TEST_F(FuseMount, UnknownNamesAreEnoentAndWritesAreErofs) {
  MountGuard m(*cluster_, mountpoint("m-ro"));
  ASSERT_TRUE(m.ok()) << m.error();
  struct stat st {};
  for (std::string p : {"/nosuch", "/ds/v99", "/ds/notatag", "/ds/v1/nosuch", "/ds/v1/docs/nosuch",
                        "/ds/v1/large.bin/x", "/bad name"}) {
    errno = 0;
    EXPECT_NE(::stat((m.path() + p).c_str(), &st), 0) << p;
    EXPECT_TRUE(errno == ENOENT || errno == ENOTDIR) << p << ": " << std::strerror(errno);
  }
  std::string v1 = m.path() + "/ds/v1";
  auto expectErofs = [](int rc, const char* what) {
    EXPECT_EQ(rc, -1) << what;
    EXPECT_EQ(errno, EROFS) << what << ": " << std::strerror(errno);
  };
  expectErofs(::open((v1 + "/new").c_str(), O_CREAT | O_WRONLY, 0644), "create");
  expectErofs(::open((v1 + "/large.bin").c_str(), O_WRONLY), "open for write");
  expectErofs(::open((v1 + "/large.bin").c_str(), O_RDONLY | O_TRUNC), "truncate at open");
  expectErofs(::truncate((v1 + "/large.bin").c_str(), 0), "truncate");
  expectErofs(::unlink((v1 + "/large.bin").c_str()), "unlink");
  expectErofs(::rename((v1 + "/large.bin").c_str(), (v1 + "/x").c_str()), "rename");
  expectErofs(::mkdir((v1 + "/dir").c_str(), 0755), "mkdir");
  expectErofs(::rmdir((v1 + "/empty/nested").c_str()), "rmdir");
  expectErofs(::chmod((v1 + "/large.bin").c_str(), 0777), "chmod");
  expectErofs(::symlink("x", (v1 + "/sym").c_str()), "symlink");
  expectErofs(::mkdir((m.path() + "/newdataset").c_str(), 0755), "mkdir at the root");
  // The data is untouched.
  EXPECT_EQ(readFile(v1 + "/docs/readme.txt"), "version one\n");
}

TEST_F(FuseMount, Sha256OfEveryFileAndTarMatchTheSource) {
  MountGuard m(*cluster_, mountpoint("m-sha"));
  ASSERT_TRUE(m.ok()) << m.error();
  auto sums = [](const std::string& root) {
    auto r = sh("cd '" + root + "' && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  std::string expected = sums(src_);
  expectSameLines(sums(m.path() + "/ds/v1"), expected, "sha256sum");

  std::string out = cluster_->dir() + "/untarred";
  fs::create_directories(out);
  // pax format: it keeps nanosecond mtimes.
  auto tar = sh("tar --format=posix -C '" + m.path() + "/ds/v1' -cf - . | tar -C '" + out + "' -xf - && diff -r --no-dereference '" +
                src_ + "' '" + out + "' && echo SAME");
  EXPECT_EQ(tar.exit_code, 0) << tar.err << tar.out;
  EXPECT_EQ(tar.out, "SAME\n");
  expectSameLines(describeTree(out), describeTree(src_), "untarred");
  fs::remove_all(out);
}

TEST_F(FuseMount, PythonRandomOffsetsMatch) {
  MountGuard m(*cluster_, mountpoint("m-py"));
  ASSERT_TRUE(m.ok()) << m.error();
  std::string script = cluster_->dir() + "/random_reads.py";
  std::ofstream(script) << R"(
import os, random, sys
src, mnt = sys.argv[1], sys.argv[2]
rng = random.Random(7)
checked = 0
for rel in ["large.bin", "sizes/f5242880", "sizes/f1048577", "sizes/f9449529", "small/d3/s10.bin"]:
    a, b = open(os.path.join(src, rel), "rb"), open(os.path.join(mnt, rel), "rb")
    size = os.path.getsize(os.path.join(src, rel))
    for _ in range(150):
        off = rng.randrange(0, size + 10)
        n = rng.choice([1, 100, 4096, 131072, 1 << 20, 3 << 20])
        a.seek(off); b.seek(off)
        if a.read(n) != b.read(n):
            print("MISMATCH", rel, off, n); sys.exit(1)
        checked += 1
    # pread too: no shared file position
    fd = os.open(os.path.join(mnt, rel), os.O_RDONLY)
    for _ in range(50):
        off = rng.randrange(0, size + 1)
        a.seek(off)
        if os.pread(fd, 65536, off) != a.read(65536):
            print("PREAD MISMATCH", rel, off); sys.exit(1)
        checked += 1
    os.close(fd)
print("OK", checked)
)";
  auto r = sh("/usr/bin/python3 '" + script + "' '" + src_ + "' '" + m.path() + "/ds/v1'");
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_EQ(r.out, "OK 1000\n");
}

// Reads every regular file below `mnt` and compares it with `src`; counts
// errors and mismatches.
struct ReadCheck {
  std::atomic<int> errors{0};
  std::atomic<int> mismatches{0};
  std::atomic<int> files{0};
};
void readAndCompare(const std::string& src, const std::string& mnt,
                    const std::vector<std::string>& files, uint64_t seed, ReadCheck& check) {
  std::vector<std::string> order = files;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(seed));
  std::vector<char> buf(1 << 20);
  for (const auto& rel : order) {
    std::string expected = readFile(fs::path(src) / rel);
    int fd = ::open((mnt + "/" + rel).c_str(), O_RDONLY);
    if (fd < 0) {
      check.errors++;
      continue;
    }
    std::string got;
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) got.append(buf.data(), static_cast<size_t>(n));
    if (n < 0) check.errors++;
    ::close(fd);
    if (n == 0 && got != expected) check.mismatches++;
    check.files++;
  }
}

TEST_F(FuseMount, EightConcurrentReaders) {
  MountGuard m(*cluster_, mountpoint("m-8"));
  ASSERT_TRUE(m.ok()) << m.error();
  auto files = listFiles(src_);
  ReadCheck check;
  std::vector<std::thread> readers;
  for (int i = 0; i < 8; ++i) {
    readers.emplace_back([&, i] { readAndCompare(src_, m.path() + "/ds/v1", files, i, check); });
  }
  for (auto& t : readers) t.join();
  EXPECT_EQ(check.errors, 0);
  EXPECT_EQ(check.mismatches, 0);
  EXPECT_EQ(check.files, static_cast<int>(files.size() * 8));
}

TEST_F(FuseMount, FioReadJobCompletes) {
  MountGuard m(*cluster_, mountpoint("m-fio"));
  ASSERT_TRUE(m.ok()) << m.error();
  std::string file = m.path() + "/ds/v1/large.bin";
  auto seq = sh("fio --name=seq --filename='" + file + "' --readonly --rw=read --bs=1M --size=48M "
                "--ioengine=psync --output-format=terse");
  EXPECT_EQ(seq.exit_code, 0) << seq.err << seq.out;
  auto rnd = sh("fio --name=rnd --filename='" + file + "' --readonly --rw=randread --bs=128k --size=48M "
                "--io_size=16M --ioengine=psync --numjobs=2 --output-format=terse");
  EXPECT_EQ(rnd.exit_code, 0) << rnd.err << rnd.out;
  // terse v3 field 6 is the read KiB count of the job.
  EXPECT_NE(seq.out.find(";49152;"), std::string::npos) << seq.out;
}

TEST_F(FuseMount, StatsFileAndCommand) {
  MountGuard m(*cluster_, mountpoint("m-stats"));
  ASSERT_TRUE(m.ok()) << m.error();
  EXPECT_EQ(readFile(m.path() + "/ds/v1/docs/readme.txt"), "version one\n");
  std::string stats = readFile(m.path() + "/.sluice/stats");
  EXPECT_NE(stats.find("\"reads\": "), std::string::npos) << stats;
  EXPECT_EQ(stats.find("\"reads\": 0,"), std::string::npos) << stats;
  auto r = cluster_->runCli({"mount", "--stats", m.path()});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  EXPECT_NE(r->out.find("read_latency_p99_s"), std::string::npos) << r->out;
  // Mounting twice on one mount point is refused with a clear error.
  auto again = cluster_->runCli({"mount", m.path()});
  ASSERT_TRUE(again.isOk());
  EXPECT_NE(again->exit_code, 0);
  EXPECT_NE(again->err.find("already a Sluice mount"), std::string::npos) << again->err;
}

TEST_F(FuseMount, BadMountArgumentsAreClearErrors) {
  auto missing = cluster_->runCli({"mount", cluster_->dir() + "/does-not-exist"});
  ASSERT_TRUE(missing.isOk());
  EXPECT_EQ(missing->exit_code, 2) << missing->err;
  EXPECT_NE(missing->err.find("not a directory"), std::string::npos) << missing->err;
  auto notmounted = cluster_->runCli({"umount", cluster_->dir()});
  ASSERT_TRUE(notmounted.isOk());
  EXPECT_NE(notmounted->exit_code, 0);
  EXPECT_NE(notmounted->err.find("not a Sluice mount"), std::string::npos) << notmounted->err;
  // No cluster at that address: the mount fails at once and says why.
  fs::create_directories(mountpoint("m-bad"));
  auto fuse = tools::findExecutable("sluice-fuse");
  ASSERT_TRUE(fuse.isOk());
  auto nocluster = tools::runProcess(*fuse, {"127.0.0.1:1", mountpoint("m-bad"), "--timeout", "1s"});
  ASSERT_TRUE(nocluster.isOk());
  EXPECT_EQ(nocluster->exit_code, 1) << nocluster->err;
  EXPECT_NE(nocluster->err.find("connecting to 127.0.0.1:1"), std::string::npos) << nocluster->err;
  EXPECT_FALSE(tools::isSluiceMount(mountpoint("m-bad")));
  auto badopt = tools::runProcess(*fuse, {mountpoint("m-bad"), "-o", "cache_size=lots"});
  ASSERT_TRUE(badopt.isOk());
  EXPECT_EQ(badopt->exit_code, 2);
  EXPECT_NE(badopt->err.find("cache_size"), std::string::npos) << badopt->err;
}

TEST_F(FuseMount, DiskCacheServesASecondMountWithoutTheCluster) {
  std::string cache = cluster_->dir() + "/cache";
  std::vector<std::string> files = {"large.bin", "sizes/f5242880", "small/d1/s1.bin"};
  {
    MountGuard m(*cluster_, mountpoint("m-cache1"), {"--cache-dir", cache, "--cache-size", "256M"});
    ASSERT_TRUE(m.ok()) << m.error();
    for (const auto& f : files) EXPECT_EQ(readFile(m.path() + "/ds/v1/" + f), readFile(src_ + "/" + f)) << f;
  }
  // Corrupt one cached record on disk: it must be dropped and refetched, not
  // served. It is the small file's only record (cache files are named by
  // record hash): one FUSE read asks for it and no readahead covers it, so
  // it is fetched exactly once. (A record of large.bin may be asked for by
  // the kernel's reads and the mount's readaheads at once.)
  size_t cached = 0;
  for (auto& e : fs::recursive_directory_iterator(cache + "/records")) cached += e.is_regular_file();
  ASSERT_GT(cached, 10u);
  const std::string small = readFile(src_ + "/small/d1/s1.bin");
  ASSERT_LT(small.size(), 64u << 10);
  const std::string hex = Hash128::of(small.data(), small.size()).toHex();
  const fs::path record = fs::path(cache) / "records" / hex.substr(0, 2) / hex;
  ASSERT_TRUE(fs::exists(record)) << record;
  {
    std::fstream f(record, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f.put('\x5a').put('\x5a');
  }
  MountGuard m(*cluster_, mountpoint("m-cache2"), {"--cache-dir", cache, "--cache-size", "256M"});
  ASSERT_TRUE(m.ok()) << m.error();
  for (const auto& f : files) EXPECT_EQ(readFile(m.path() + "/ds/v1/" + f), readFile(src_ + "/" + f)) << f;
  std::string stats = readFile(m.path() + "/.sluice/stats");
  auto value = [&](const std::string& key) {
    size_t at = stats.find("\"" + key + "\": ");
    return at == std::string::npos ? -1 : std::stoll(stats.substr(at + key.size() + 4));
  };
  // Everything came from the disk cache but the one corrupt record.
  EXPECT_EQ(value("disk_cache_dropped_corrupt"), 1) << stats;
  EXPECT_EQ(value("records_fetched"), 1) << stats;
  EXPECT_LE(value("disk_cache_used_bytes"), 256ll << 20) << stats;
}

TEST_F(FuseMount, StorageNodeKilledDuringReadLoopGivesNoErrors) {
  MountGuard m(*cluster_, mountpoint("m-kill"));
  ASSERT_TRUE(m.ok()) << m.error();
  auto files = listFiles(src_);
  ReadCheck check;
  std::atomic<bool> stop{false};
  std::thread loop([&] {
    for (int round = 0; !stop; ++round) {
      // Fresh content each round: drop the mount's page cache.
      sh("echo 1 > /proc/sys/vm/drop_caches");
      readAndCompare(src_, m.path() + "/ds/v1", files, 100 + round, check);
      if (round >= 2) break;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(cluster_->kill("node2").isOk());
  loop.join();
  stop = true;
  EXPECT_EQ(check.errors, 0);
  EXPECT_EQ(check.mismatches, 0);
  EXPECT_GE(check.files, static_cast<int>(files.size()));
  ASSERT_TRUE(cluster_->restart("node2").isOk());
}

// A long-running mount outlives restarts of every storage node: each node is
// killed and restarted in turn, and while the next one is down the chunks it
// shares with the restarted node can only come from that node's new process
// (same address, new connection). Nothing is cached in the mount, so every
// pass reads from the nodes.
TEST_F(FuseMount, ReadsThroughRestartsOfEveryStorageNode) {
  MountGuard m(*cluster_, mountpoint("m-restart"), {"--memory-cache", "0"});
  ASSERT_TRUE(m.ok()) << m.error();
  auto files = listFiles(src_);
  ReadCheck check;
  readAndCompare(src_, m.path() + "/ds/v1", files, 7, check);  // connections to every node
  const int nodes = static_cast<int>(cluster_->state().nodes.size());
  for (int i = 1; i <= nodes; ++i) {
    const std::string restarted = "node" + std::to_string(i);
    const std::string down = "node" + std::to_string(i % nodes + 1);
    ASSERT_TRUE(cluster_->kill(restarted).isOk());
    ASSERT_TRUE(cluster_->restart(restarted).isOk());
    ASSERT_TRUE(cluster_->kill(down).isOk());
    sh("echo 1 > /proc/sys/vm/drop_caches");
    const auto t0 = std::chrono::steady_clock::now();
    readAndCompare(src_, m.path() + "/ds/v1", files, 10 + i, check);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(check.errors, 0) << "reading with " << restarted << " restarted and " << down << " down";
    // The dead node costs the first read that meets it, not every read: 330
    // files through two suspect replicas took 25 s before a node that answers
    // was trusted again (the mount's call timeout is 5 s).
    EXPECT_LT(secs, 15.0) << "a pass with " << down << " down took " << secs << " s";
    ASSERT_TRUE(cluster_->restart(down).isOk());
  }
  EXPECT_EQ(check.mismatches, 0);
  EXPECT_EQ(check.files, static_cast<int>(files.size()) * (nodes + 1));
}

// The metadata server restarts (a crash, an upgrade) under a mount that
// lives for the whole job: the mount keeps working afterwards, with lookups
// of names it never saw before going to the new process.
TEST_F(FuseMount, MountOutlivesAMetadataServerRestart) {
  MountGuard m(*cluster_, mountpoint("m-meta"), {"--memory-cache", "0"});
  ASSERT_TRUE(m.ok()) << m.error();
  auto files = listFiles(src_);
  ReadCheck check;
  readAndCompare(src_, m.path() + "/ds/v1", files, 3, check);
  auto names = [](const std::string& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  };
  const std::vector<std::string> versions = names(m.path() + "/ds");  // v1, v2 and tags
  ASSERT_TRUE(std::count(versions.begin(), versions.end(), "v2") == 1);
  ASSERT_TRUE(cluster_->kill("meta").isOk());
  EXPECT_EQ(names(m.path() + "/ds"), versions) << "listing a dataset with meta down";
  // While meta is down, files the mount already knows read from the nodes.
  sh("echo 1 > /proc/sys/vm/drop_caches");
  readAndCompare(src_, m.path() + "/ds/v1", files, 5, check);
  EXPECT_EQ(check.errors, 0) << "reading known files with meta down";
  ASSERT_TRUE(cluster_->restart("meta").isOk());
  // v2 was never looked up through this mount: every name goes to meta.
  expectSameLines(describeTree(m.path() + "/ds/v2"), describeTree(src2_), "v2 after restart");
  readAndCompare(src2_, m.path() + "/ds/v2", listFiles(src2_), 4, check);
  EXPECT_EQ(check.errors, 0);
  EXPECT_EQ(check.mismatches, 0);
  EXPECT_EQ(readFile(m.path() + "/ds/stable/docs/readme.txt"), "version one\n");
}

TEST_F(FuseMount, KilledDaemonLeavesAMountThatUmountCleansUp) {
  std::string mp = mountpoint("m-dead");
  MountGuard m(*cluster_, mp);
  ASSERT_TRUE(m.ok()) << m.error();
  EXPECT_EQ(readFile(mp + "/ds/v1/docs/readme.txt"), "version one\n");
  ASSERT_EQ(::kill(m.pid(), SIGKILL), 0);
  for (int i = 0; i < 100 && ::kill(m.pid(), 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  struct stat st {};
  EXPECT_NE(::stat((mp + "/ds").c_str(), &st), 0);
  EXPECT_EQ(errno, ENOTCONN) << std::strerror(errno);
  EXPECT_TRUE(tools::isSluiceMount(mp));
  auto r = cluster_->runCli({"umount", mp});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exit_code, 0) << r->err;
  EXPECT_FALSE(tools::isSluiceMount(mp));
  EXPECT_EQ(::stat(mp.c_str(), &st), 0);
  EXPECT_TRUE(fs::is_empty(mp));
}

// Mounts of one directory started at the same instant: one wins, the others
// fail saying why, and exactly one mount is there (none stacked on another).
TEST_F(FuseMount, SimultaneousMountsOfOneDirectoryGiveOneMount) {
  const std::string mp = mountpoint("m-race");
  fs::create_directories(mp);
  struct Unmounter {  // even when an assertion fails, however many stacked
    std::string mp;
    ~Unmounter() {
      for (int i = 0; i < 8 && tools::isSluiceMount(mp); ++i) (void)tools::unmountSluice(mp);
    }
  } unmounter{mp};
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    constexpr int kRivals = 3;
    std::vector<tools::RunOutput> out(kRivals);
    std::vector<std::thread> rivals;
    for (int i = 0; i < kRivals; ++i) {
      rivals.emplace_back([&, i] {
        auto r = cluster_->runCli({"mount", mp});
        out[i] = r.isOk() ? *r : tools::RunOutput{-1, "", r.status().toString()};
      });
    }
    for (auto& t : rivals) t.join();
    int mounted = 0;
    pid_t daemon = 0;
    for (const auto& o : out) {
      if (o.exit_code == 0) {
        ++mounted;
        const size_t at = o.out.find("pid ");  // "mounted /x (cluster ..., pid 123, log ...)"
        if (at != std::string::npos) daemon = static_cast<pid_t>(std::atoi(o.out.c_str() + at + 4));
        continue;
      }
      EXPECT_TRUE(o.err.find("already a Sluice mount") != std::string::npos ||
                  o.err.find("another sluice-fuse is mounting") != std::string::npos)
          << o.err;
    }
    EXPECT_EQ(mounted, 1);
    EXPECT_GT(daemon, 0);
    auto listed = tools::parseSluiceMounts(readFile("/proc/self/mountinfo"));
    EXPECT_TRUE(std::any_of(listed.begin(), listed.end(),
                            [&](const tools::SluiceMount& m) { return m.mountpoint == mp && m.daemon == daemon; }))
        << "the mount's source does not name its daemon";
    auto all = tools::sluiceMounts();
    EXPECT_EQ(std::count(all.begin(), all.end(), mp), 1) << "mounts stacked on " << mp;
    EXPECT_EQ(readFile(mp + "/ds/v1/docs/readme.txt"), "version one\n");
    std::error_code ec;
    const std::string daemon_exe = fs::read_symlink("/proc/" + std::to_string(daemon) + "/exe", ec).string();
    EXPECT_TRUE(tools::isRunning(daemon, daemon_exe)) << daemon_exe;
    if (round == 0) {
      // Busy (a file open in it): refused as a conflict, exit code 4, saying what to do.
      std::ifstream held(mp + "/ds/v1/docs/readme.txt");
      ASSERT_TRUE(held.good());
      auto busy = cluster_->runCli({"umount", mp});
      ASSERT_TRUE(busy.isOk());
      EXPECT_EQ(busy->exit_code, 4) << busy->err;
      EXPECT_NE(busy->err.find("busy"), std::string::npos) << busy->err;
      EXPECT_TRUE(tools::isSluiceMount(mp));
    }
    auto u = cluster_->runCli({"umount", mp});
    ASSERT_TRUE(u.isOk());
    EXPECT_EQ(u->exit_code, 0) << u->err;
    EXPECT_FALSE(tools::isSluiceMount(mp)) << "a second mount was hidden under the first";
    // umount returns once the daemon has exited, so the next round's mounts
    // are not refused as rivals of a daemon still closing.
    EXPECT_FALSE(tools::isRunning(daemon, daemon_exe)) << "the daemon (pid " << daemon << ") outlived umount";
  }
}

// Deletes a dataset a test created, also when the test fails, so the
// datasets other tests list stay as SetUpTestSuite made them.
struct DatasetRemover {
  const TestCluster& cluster;
  std::string name;
  ~DatasetRemover() { (void)cluster.runCli({"dataset", "rm", "--force", name}); }
};

std::string lsOf(const std::string& dir, const std::string& flags = "-1") {
  return sh("ls " + flags + " '" + dir + "'").out;
}

// A dataset deleted and created again under its old name is another
// dataset: its v1 is not the v1 the mount read before, whose entries, pages,
// listing and missing names the kernel and the mount would otherwise keep
// for a day.
TEST_F(FuseMount, ADatasetCreatedAgainUnderItsNameServesItsNewVersions) {
  const std::string old_src = cluster_->dir() + "/reborn-old";
  const std::string new_src = cluster_->dir() + "/reborn-new";
  writeFile(fs::path(old_src) / "f.txt", "OLDCONTENT\n");
  writeFile(fs::path(new_src) / "f.txt", "NEW-CONTENT-DIFFERENT\n");
  writeFile(fs::path(new_src) / "g.txt", "extra\n");
  DatasetRemover remover{*cluster_, "reborn"};
  runOk({"dataset", "create", "reborn"});
  runOk({"put", old_src, "reborn", "-q"});
  MountGuard m(*cluster_, mountpoint("m-reborn"));
  ASSERT_TRUE(m.ok()) << m.error();
  const std::string v1 = m.path() + "/reborn/v1";
  EXPECT_EQ(readFile(v1 + "/f.txt"), "OLDCONTENT\n");
  EXPECT_FALSE(fs::exists(v1 + "/g.txt"));
  EXPECT_EQ(lsOf(v1), "f.txt\n");
  // A reader of the old file keeps it open (and its pages cached) throughout.
  const int old_fd = ::open((v1 + "/f.txt").c_str(), O_RDONLY);
  ASSERT_GE(old_fd, 0) << std::strerror(errno);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{old_fd};

  runOk({"dataset", "rm", "--force", "reborn"});
  runOk({"gc"});
  runOk({"dataset", "create", "reborn"});
  runOk({"put", new_src, "reborn", "-q"});
  // The dataset level is asked again once its one-second timeout passes.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(readFile(v1 + "/f.txt"), "NEW-CONTENT-DIFFERENT\n");
  EXPECT_EQ(readFile(v1 + "/g.txt"), "extra\n");
  EXPECT_EQ(lsOf(v1), "f.txt\ng.txt\n");
  EXPECT_EQ(sh("cat '" + v1 + "/f.txt'").out, "NEW-CONTENT-DIFFERENT\n");
}

// `ls` of the root and of a dataset shows datasets and versions made after
// the mount listed them, within the dataset level's second; a version's own
// listings are the kernel's to keep.
TEST_F(FuseMount, NewDatasetsAndVersionsAppearInListingsWithinASecond) {
  const std::string src = cluster_->dir() + "/listed-src";
  writeFile(fs::path(src) / "a.txt", "one\n");
  MountGuard m(*cluster_, mountpoint("m-listed"));
  ASSERT_TRUE(m.ok()) << m.error();
  DatasetRemover remover{*cluster_, "listed"};
  EXPECT_EQ(lsOf(m.path()), "ds\n");
  runOk({"dataset", "create", "listed"});
  runOk({"put", src, "listed", "-q"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(lsOf(m.path()), "ds\nlisted\n");
  EXPECT_EQ(lsOf(m.path() + "/listed"), "latest\nv1\n");
  writeFile(fs::path(src) / "b.txt", "two\n");
  runOk({"put", src, "listed", "-q"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(lsOf(m.path() + "/listed"), "latest\nv1\nv2\n");
  EXPECT_EQ(lsOf(m.path() + "/listed/v2"), "a.txt\nb.txt\n");
}

// Every directory lists "." and "..", the latter with its parent's inode.
TEST_F(FuseMount, ListingsHaveDotAndDotDot) {
  MountGuard m(*cluster_, mountpoint("m-dots"));
  ASSERT_TRUE(m.ok()) << m.error();
  for (const std::string dir : {"", "/ds", "/ds/v1", "/ds/v1/docs", "/.sluice"}) {
    EXPECT_EQ(sh("LC_ALL=C ls -a '" + m.path() + dir + "' | head -2").out, ".\n..\n") << dir;
  }
  auto dotDotIno = [](const std::string& dir) -> ino_t {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return 0;
    ino_t ino = 0;
    while (const dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, "..") == 0) ino = e->d_ino;
    }
    ::closedir(d);
    return ino;
  };
  for (const std::string dir : {"/ds", "/ds/v1", "/ds/v1/docs", "/ds/v1/empty/nested"}) {
    struct stat parent {};
    const std::string path = m.path() + dir;
    ASSERT_EQ(::stat((path + "/..").c_str(), &parent), 0) << dir;
    EXPECT_EQ(dotDotIno(path), parent.st_ino) << dir;
  }
}

// Restarts meta at the end of a test that killed it, also when the test
// fails, so the tests after it find the cluster whole.
struct MetaRestarter {
  TestCluster& cluster;
  bool down = false;
  ~MetaRestarter() {
    if (down) (void)cluster.restart("meta");
  }
};

// The metadata server stays down under a mount (a crash, a long outage):
// what the mount has already resolved keeps being served from its caches,
// also once the kernel has forgotten the inodes it held (as memory pressure
// makes it do) and the dataset level's short timeouts have passed; reads go
// to the storage nodes. Once meta is back, its fresh answers are used again.
TEST_F(FuseMount, WhatTheMountHasSeenIsServedWhileMetaIsDown) {
  const std::string src = cluster_->dir() + "/outage-src";
  writeFile(fs::path(src) / "a.txt", "alpha\n");
  writeFile(fs::path(src) / "sub/b.bin", makeContent(300000, 77));
  writeFile(fs::path(src) / "sub/deeper/c.txt", "gamma\n");
  DatasetRemover remover{*cluster_, "outage"};
  runOk({"dataset", "create", "outage"});
  runOk({"put", src, "outage", "-q"});
  // No memory cache: with the kernel's pages dropped, reads reach the nodes.
  MountGuard m(*cluster_, mountpoint("m-outage"), {"--memory-cache", "0"});
  ASSERT_TRUE(m.ok()) << m.error();
  const std::string v1 = m.path() + "/outage/v1";
  const std::string tree = describeTree(src);
  const auto files = listFiles(src);
  ASSERT_EQ(files.size(), 3u);
  expectSameLines(describeTree(v1), tree, "v1 with meta up");
  for (const auto& f : files) EXPECT_EQ(readFile(v1 + "/" + f), readFile(src + "/" + f)) << f;
  const std::string root = lsOf(m.path());
  const std::string versions = lsOf(m.path() + "/outage");
  ASSERT_NE(root.find("outage\n"), std::string::npos) << root;
  ASSERT_EQ(versions, "latest\nv1\n");
  // A second mount nobody has used yet.
  MountGuard idle(*cluster_, mountpoint("m-outage-idle"), {"--memory-cache", "0"});
  ASSERT_TRUE(idle.ok()) << idle.error();

  MetaRestarter restarter{*cluster_};
  ASSERT_TRUE(cluster_->kill("meta").isOk());
  restarter.down = true;
  // Every name is looked up again: the kernel drops what it does not hold
  // and the dataset level's one-second entries end.
  sh("echo 3 > /proc/sys/vm/drop_caches");
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  const auto t0 = std::chrono::steady_clock::now();
  expectSameLines(describeTree(v1), tree, "v1 with meta down");
  for (const auto& f : files) EXPECT_EQ(readFile(v1 + "/" + f), readFile(src + "/" + f)) << f;
  EXPECT_EQ(lsOf(m.path()), root) << "listing the root with meta down";
  EXPECT_EQ(lsOf(m.path() + "/outage"), versions) << "listing the dataset with meta down";
  for (const std::string p : {"", "/outage", "/outage/v1", "/outage/v1/sub", "/outage/v1/sub/b.bin"}) {
    struct stat st {};
    EXPECT_EQ(::stat((m.path() + p).c_str(), &st), 0) << p << ": " << std::strerror(errno);
  }
  // The idle mount listed its root when it started: the root and the names
  // in it answer; a dataset it never listed does not.
  EXPECT_EQ(lsOf(idle.path()), root) << "listing an unused mount's root with meta down";
  {
    struct stat st {};
    EXPECT_EQ(::stat((idle.path() + "/outage").c_str(), &st), 0) << std::strerror(errno);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
  }
  // A name the mount never saw cannot be answered without meta.
  struct stat st {};
  errno = 0;
  EXPECT_NE(::stat((m.path() + "/never-seen").c_str(), &st), 0);
  EXPECT_EQ(errno, EIO) << std::strerror(errno);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 10.0) << "serving known names with meta down took " << secs << " s";

  ASSERT_TRUE(cluster_->restart("meta").isOk());
  restarter.down = false;
  writeFile(fs::path(src) / "d.txt", "delta\n");
  runOk({"put", src, "outage", "-q"});
  EXPECT_EQ(lsOf(m.path() + "/outage"), "latest\nv1\nv2\n");
  EXPECT_EQ(readFile(m.path() + "/outage/v2/d.txt"), "delta\n");
}

// A mount whose daemon was killed answers ENOTCONN to everything; the CLI
// says so and how to clean it up rather than blaming the directory.
TEST_F(FuseMount, ADeadMountIsReportedAsSuchWithTheWayToCleanUp) {
  const std::string mp = mountpoint("m-gone");
  MountGuard m(*cluster_, mp);
  ASSERT_TRUE(m.ok()) << m.error();
  ASSERT_EQ(::kill(m.pid(), SIGKILL), 0);
  for (int i = 0; i < 100 && ::kill(m.pid(), 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (const std::vector<std::string>& args : {std::vector<std::string>{"mount", "--stats", mp},
                                               std::vector<std::string>{"mount", mp}}) {
    auto r = cluster_->runCli(args);
    ASSERT_TRUE(r.isOk());
    EXPECT_EQ(r->exit_code, 5) << r->err;
    EXPECT_NE(r->err.find("ransport endpoint is not connected"), std::string::npos) << r->err;
    EXPECT_NE(r->err.find("sluice umount " + mp), std::string::npos) << r->err;
    EXPECT_EQ(r->err.find("not a directory"), std::string::npos) << r->err;
  }
  auto u = cluster_->runCli({"umount", mp});
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->exit_code, 0) << u->err;
}

}  // namespace
}  // namespace sluice::testing
