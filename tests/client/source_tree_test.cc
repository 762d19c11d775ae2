#include "client/source_tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace sluice::client {
namespace {

namespace fs = std::filesystem;

class SourceTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-source-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const std::string& rel, const std::string& content) {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel, std::ios::binary) << content;
  }

  fs::path root_;
};

TEST_F(SourceTreeTest, WalksFilesDirsAndSymlinksInPreOrder) {
  write("b.txt", "hello");
  write("a/z.bin", std::string(1000, 'x'));
  write("a/y/deep.txt", "");
  fs::create_directories(root_ / "empty");
  fs::create_symlink("../b.txt", root_ / "a/link");
  chmod((root_ / "b.txt").c_str(), 0640);

  auto tree = walkSourceTree(root_.string());
  ASSERT_TRUE(tree.isOk()) << tree.status().toString();
  std::vector<std::string> paths;
  for (const auto& e : tree->entries) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"a", "a/link", "a/y", "a/y/deep.txt", "a/z.bin",
                                             "b.txt", "empty"}));
  EXPECT_EQ(tree->file_count, 3u);
  EXPECT_EQ(tree->total_bytes, 1005u);
  const SourceEntry& link = tree->entries[1];
  EXPECT_EQ(link.type, EntryType::kSymlink);
  EXPECT_EQ(link.symlink_target, "../b.txt");
  const SourceEntry& b = tree->entries[5];
  EXPECT_EQ(b.type, EntryType::kFile);
  EXPECT_EQ(b.mode, 0640u);
  EXPECT_EQ(b.size, 5u);
  EXPECT_GT(b.mtime_ns, 0);
  EXPECT_EQ(tree->entries[6].type, EntryType::kDirectory);
}

TEST_F(SourceTreeTest, SkipsSpecialFilesWithWarning) {
  write("ok.txt", "x");
  ASSERT_EQ(mkfifo((root_ / "pipe").c_str(), 0600), 0);
  auto tree = walkSourceTree(root_.string());
  ASSERT_TRUE(tree.isOk());
  ASSERT_EQ(tree->entries.size(), 1u);
  ASSERT_EQ(tree->warnings.size(), 1u);
  EXPECT_NE(tree->warnings[0].find("FIFO 'pipe'"), std::string::npos);
}

TEST_F(SourceTreeTest, UnicodeAndSpacesKept) {
  write("dír with spaces/ñame é.txt", "u");
  auto tree = walkSourceTree(root_.string());
  ASSERT_TRUE(tree.isOk());
  ASSERT_EQ(tree->entries.size(), 2u);
  EXPECT_EQ(tree->entries[1].path, "dír with spaces/ñame é.txt");
}

TEST_F(SourceTreeTest, MissingOrNonDirectoryRootIsAClearError) {
  auto missing = walkSourceTree((root_ / "nope").string());
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);

  write("file", "x");
  auto file = walkSourceTree((root_ / "file").string());
  ASSERT_FALSE(file.isOk());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(file.status().message().find("not a directory"), std::string::npos);
}

}  // namespace
}  // namespace sluice::client
