#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/core/config.h"

namespace sluice {
namespace {

using std::chrono::microseconds;
using ::testing::HasSubstr;

// Mirrors how a daemon declares its options.
struct StorageOptions {
  std::string dataDir;
  uint64_t capacity = 0;
  int64_t threads = 0;
  bool directIo = false;
  microseconds heartbeat{0};
  HostPort metrics;
};

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sluice_config_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    schema_.addString("data_dir", &o_.dataDir, "/var/lib/sluice", "chunk directory")
        .addSize("capacity", &o_.capacity, 100ull << 30, "bytes this node may use")
        .addInt("io.threads", &o_.threads, 4, "I/O threads", 1, 64)
        .addBool("io.direct", &o_.directIo, true, "use O_DIRECT")
        .addDuration("heartbeat", &o_.heartbeat, microseconds(1000000), "heartbeat period")
        .addHostPort("metrics.listen", &o_.metrics, {"127.0.0.1", 9100}, "metrics address");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string writeFile(const std::string& text) {
    std::string path = (dir_ / "storage.toml").string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
  StorageOptions o_;
  ConfigSchema schema_{"sluice-storage", "Sluice storage node"};
};

TEST_F(ConfigTest, Defaults) {
  ASSERT_TRUE(schema_.parseArgs({}).isOk());
  EXPECT_EQ(o_.dataDir, "/var/lib/sluice");
  EXPECT_EQ(o_.capacity, 100ull << 30);
  EXPECT_EQ(o_.threads, 4);
  EXPECT_TRUE(o_.directIo);
  EXPECT_EQ(o_.heartbeat, microseconds(1000000));
  EXPECT_EQ(o_.metrics, (HostPort{"127.0.0.1", 9100}));
  EXPECT_EQ(schema_.configFile(), "");
  EXPECT_FALSE(schema_.helpRequested());
}

TEST_F(ConfigTest, FileOverridesDefault) {
  std::string path = writeFile(R"(
data_dir = "/data/sluice"
capacity = "2T"
heartbeat = "250ms"
[io]
threads = 16
direct = false
[metrics]
listen = "0.0.0.0:9200"
)");
  Status s = schema_.parseArgs({"--config", path});
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(o_.dataDir, "/data/sluice");
  EXPECT_EQ(o_.capacity, 2ull << 40);
  EXPECT_EQ(o_.threads, 16);
  EXPECT_FALSE(o_.directIo);
  EXPECT_EQ(o_.heartbeat, microseconds(250000));
  EXPECT_EQ(o_.metrics, (HostPort{"0.0.0.0", 9200}));
  EXPECT_EQ(schema_.configFile(), path);
}

TEST_F(ConfigTest, DottedKeysAndByteCountsInFile) {
  std::string path = writeFile("io.threads = 8\ncapacity = 4096\n");
  Status s = schema_.parseArgs({"-c", path});
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(o_.threads, 8);
  EXPECT_EQ(o_.capacity, 4096u);
}

TEST_F(ConfigTest, FlagOverridesFile) {
  std::string path = writeFile("capacity = \"2T\"\ndata_dir = \"/from/file\"\n[io]\ndirect = true\n");
  Status s = schema_.parseArgs({"--config=" + path, "--capacity", "512G", "--no-io.direct",
                                "--io.threads=2", "--heartbeat", "2m", "--metrics.listen",
                                "[::1]:0"});
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(o_.capacity, 512ull << 30);
  EXPECT_EQ(o_.dataDir, "/from/file");
  EXPECT_FALSE(o_.directIo);
  EXPECT_EQ(o_.threads, 2);
  EXPECT_EQ(o_.heartbeat, microseconds(120000000));
  EXPECT_EQ(o_.metrics, (HostPort{"::1", 0}));
  EXPECT_EQ(schema_.effectiveConfig(),
            "capacity = \"512G\"  # flag\n"
            "data_dir = \"/from/file\"  # file\n"
            "heartbeat = \"2m\"  # flag\n"
            "io.direct = false  # flag\n"
            "io.threads = 2  # flag\n"
            "metrics.listen = \"[::1]:0\"  # flag\n");
}

TEST_F(ConfigTest, DashedFlagSpellingAndBoolValues) {
  ASSERT_TRUE(schema_.parseArgs({"--data-dir", "/x", "--io.direct=false"}).isOk());
  EXPECT_EQ(o_.dataDir, "/x");
  EXPECT_FALSE(o_.directIo);
  ASSERT_TRUE(schema_.parseArgs({"--io.direct"}).isOk());
  EXPECT_TRUE(o_.directIo);
  EXPECT_EQ(o_.dataDir, "/var/lib/sluice");  // a new parse starts from defaults
}

TEST_F(ConfigTest, UnknownKeyNamesTheKeyAndSuggests) {
  std::string path = writeFile("capacity = \"1G\"\ndata_dirr = \"/x\"\n");
  Status s = schema_.parseArgs({"--config", path});
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), path + ":2: unknown key 'data_dirr' (did you mean 'data_dir'?)");
}

TEST_F(ConfigTest, UnknownKeyInSectionAndUnknownSection) {
  Status s = schema_.parseArgs({"--config", writeFile("[io]\nthreadz = 3\n")});
  EXPECT_THAT(s.message(), HasSubstr("unknown key 'io.threadz' (did you mean 'io.threads'?)"));
  s = schema_.parseArgs({"--config", writeFile("[zzz]\nq = 3\n")});
  EXPECT_THAT(s.message(), HasSubstr("unknown key 'zzz'"));
}

TEST_F(ConfigTest, UnknownFlagNamesTheFlag) {
  Status s = schema_.parseArgs({"--capacty", "1G"});
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "sluice-storage: unknown flag '--capacty' (did you mean '--capacity'?)");
  s = schema_.parseArgs({"stray"});
  EXPECT_THAT(s.message(), HasSubstr("unexpected argument 'stray'"));
}

TEST_F(ConfigTest, BadFlagValueNamesTheFlag) {
  Status s = schema_.parseArgs({"--capacity", "12QB"});
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "--capacity: '12QB' is not a size like 100G");
  EXPECT_EQ(schema_.parseArgs({"--heartbeat", "5"}).message(),
            "--heartbeat: '5' is not a duration like 500ms, 5s or 2m");
  EXPECT_EQ(schema_.parseArgs({"--io.threads", "many"}).message(),
            "--io.threads: 'many' is not an integer");
  EXPECT_EQ(schema_.parseArgs({"--io.threads", "65"}).message(),
            "--io.threads: 65 is outside [1, 64]");
  EXPECT_EQ(schema_.parseArgs({"--io.direct=maybe"}).message(),
            "--io.direct: 'maybe' is not a bool (true or false)");
  EXPECT_THAT(schema_.parseArgs({"--metrics.listen", "nohost"}).message(),
              HasSubstr("--metrics.listen: 'nohost' is not host:port"));
  EXPECT_THAT(schema_.parseArgs({"--capacity"}).message(), HasSubstr("--capacity"));
}

TEST_F(ConfigTest, BadFileValueNamesTheKey) {
  std::string path = writeFile("capacity = \"12QB\"\n");
  EXPECT_EQ(schema_.parseArgs({"--config", path}).message(),
            path + ":1: key 'capacity': '12QB' is not a size like 100G");
  path = writeFile("[io]\nthreads = \"8\"\n");
  EXPECT_EQ(schema_.parseArgs({"--config", path}).message(),
            path + ":2: key 'io.threads': expected an integer, got a TOML string");
  path = writeFile("heartbeat = 5\n");
  EXPECT_THAT(schema_.parseArgs({"--config", path}).message(),
              HasSubstr("key 'heartbeat': a duration needs a unit"));
}

TEST_F(ConfigTest, ErrorLeavesOutputsUntouched) {
  o_.dataDir = "before";
  EXPECT_FALSE(schema_.parseArgs({"--data-dir", "/x", "--capacity", "bad"}).isOk());
  EXPECT_EQ(o_.dataDir, "before");
}

TEST_F(ConfigTest, MissingFileIsNotFound) {
  std::string path = (dir_ / "absent.toml").string();
  Status s = schema_.parseArgs({"--config", path});
  ASSERT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "config file " + path + ": No such file or directory");
}

TEST_F(ConfigTest, SyntaxErrorIsInvalidArgumentNamingTheFile) {
  std::string path = writeFile("capacity = = 3\n");
  Status s = schema_.parseArgs({"--config", path});
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("config file " + path));
}

TEST_F(ConfigTest, DefaultConfigFileUsedOnlyWhenPresent) {
  std::string path = (dir_ / "storage.toml").string();
  schema_.setDefaultConfigFile(path);
  ASSERT_TRUE(schema_.parseArgs({}).isOk());
  EXPECT_EQ(schema_.configFile(), "");
  writeFile("data_dir = \"/default/file\"\n");
  ASSERT_TRUE(schema_.parseArgs({}).isOk());
  EXPECT_EQ(o_.dataDir, "/default/file");
  EXPECT_EQ(schema_.configFile(), path);
}

TEST_F(ConfigTest, HelpListsEveryOptionWithDefault) {
  o_.capacity = 7;
  ASSERT_TRUE(schema_.parseArgs({"--help"}).isOk());
  EXPECT_TRUE(schema_.helpRequested());
  EXPECT_EQ(o_.capacity, 100ull << 30);
  std::string help = schema_.helpText();
  EXPECT_THAT(help, HasSubstr("--config"));
  EXPECT_THAT(help, HasSubstr("--capacity"));
  EXPECT_THAT(help, HasSubstr("[default: 100G]"));
  EXPECT_THAT(help, HasSubstr("--metrics.listen"));
  EXPECT_THAT(help, HasSubstr("[range: 1..64]"));
}

TEST(ConfigSchemaDeclaration, MistakesAreReportedByParse) {
  std::string a, b;
  ConfigSchema dup("d");
  dup.addString("name", &a, "", "").addString("name", &b, "", "");
  EXPECT_THAT(dup.parseArgs({}).message(), HasSubstr("option 'name' declared twice"));
  ConfigSchema badName("d");
  badName.addString("Bad-Name", &a, "", "");
  EXPECT_THAT(badName.parseArgs({}).message(), HasSubstr("'Bad-Name' must be lower_snake_case"));
  int64_t n = 0;
  ConfigSchema badDefault("d");
  badDefault.addInt("n", &n, 100, "", 1, 10);
  EXPECT_THAT(badDefault.parseArgs({}).message(), HasSubstr("default 100 is outside its range"));
}

TEST_F(ConfigTest, StringLists) {
  std::vector<std::string> dirs;
  ConfigSchema schema("d");
  schema.addStringList("data_dirs", &dirs, {"/a"}, "one directory per disk");
  ASSERT_TRUE(schema.parseArgs({}).isOk());
  EXPECT_EQ(dirs, (std::vector<std::string>{"/a"}));
  std::string path = writeFile("data_dirs = [\"/nvme0\", \"/nvme1\"]\n");
  ASSERT_TRUE(schema.parseArgs({"--config", path}).isOk());
  EXPECT_EQ(dirs, (std::vector<std::string>{"/nvme0", "/nvme1"}));
  EXPECT_EQ(schema.effectiveConfig(), "data_dirs = [\"/nvme0\", \"/nvme1\"]  # file\n");
  ASSERT_TRUE(schema.parseArgs({"--config", path, "--data-dirs", "/x,/y", "--data_dirs", "/z"})
                  .isOk());
  EXPECT_EQ(dirs, (std::vector<std::string>{"/x", "/y", "/z"}));
  path = writeFile("data_dirs = [\"/a\", 3]\n");
  EXPECT_EQ(schema.parseArgs({"--config", path}).message(),
            path + ":1: key 'data_dirs': array items must be strings, got a TOML integer");
  path = writeFile("data_dirs = \"/a\"\n");
  EXPECT_EQ(schema.parseArgs({"--config", path}).message(),
            path + ":1: key 'data_dirs': expected an array of strings, got a TOML string");
}

TEST(ConfigSchemaArgv, ParsesArgcArgv) {
  std::string dir;
  ConfigSchema schema("d");
  schema.addString("data_dir", &dir, "a", "");
  const char* argv[] = {"prog", "--data_dir", "/z"};
  ASSERT_TRUE(schema.parse(3, argv).isOk());
  EXPECT_EQ(dir, "/z");
}

}  // namespace
}  // namespace sluice
