#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "common/core/config.h"
#include "common/core/logging.h"

namespace sluice {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

class LoggingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sluice_log_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    // Leave a plain stderr logger behind for the rest of the binary.
    LogOptions plain;
    EXPECT_TRUE(initLogging("core_test", plain).isOk());
    std::filesystem::remove_all(dir_);
  }
  std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::filesystem::path dir_;
};

TEST_F(LoggingTest, FileGetsLinesAtOrAboveLevelWithDaemonAndRequestId) {
  LogOptions options;
  options.level = "warn";
  options.file = (dir_ / "storage.log").string();
  options.toStderr = false;
  ASSERT_TRUE(initLogging("sluice-storage", options).isOk());
  spdlog::info("hidden info line");
  spdlog::debug("hidden debug line");
  spdlog::warn("disk {} is {}% full", "sda", 91);
  {
    RequestIdScope scope(0x2a);
    EXPECT_EQ(currentRequestId(), 0x2au);
    spdlog::error("put chunk failed");
    {
      RequestIdScope inner(0x2b);
      spdlog::error("nested");
    }
    spdlog::error("outer again");
  }
  EXPECT_EQ(currentRequestId(), 0u);
  spdlog::error("after scope");
  flushLogs();

  std::string text = readFile(options.file);
  EXPECT_THAT(text, Not(HasSubstr("hidden")));
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u) << text;
  const std::string prefix =
      R"(^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z )";
  EXPECT_THAT(lines[0],
              ContainsRegex(prefix + R"(\[warning\] sluice-storage\[[0-9]+\] disk sda is 91% full$)"));
  EXPECT_THAT(lines[1],
              ContainsRegex(prefix + R"(\[error\] sluice-storage\[[0-9]+\] \[req 0x2a\] put chunk failed$)"));
  EXPECT_THAT(lines[2], HasSubstr("] [req 0x2b] nested"));
  EXPECT_THAT(lines[3], HasSubstr("] [req 0x2a] outer again"));
  EXPECT_THAT(lines[4], ContainsRegex(R"(\[[0-9]+\] after scope$)"));
}

TEST_F(LoggingTest, RequestIdIsPerThread) {
  LogOptions options;
  options.level = "info";
  options.file = (dir_ / "d.log").string();
  options.toStderr = false;
  ASSERT_TRUE(initLogging("d", options).isOk());
  RequestIdScope scope(7);
  std::thread other([] { spdlog::info("other thread"); });
  other.join();
  spdlog::info("this thread");
  flushLogs();
  std::string text = readFile(options.file);
  EXPECT_THAT(text, ContainsRegex(R"(\[[0-9]+\] other thread)"));
  EXPECT_THAT(text, HasSubstr("[req 0x7] this thread"));
}

TEST_F(LoggingTest, AppendsToExistingFile) {
  std::string path = (dir_ / "a.log").string();
  std::ofstream(path) << "earlier line\n";
  LogOptions options;
  options.file = path;
  options.toStderr = false;
  ASSERT_TRUE(initLogging("d", options).isOk());
  spdlog::info("new line");
  flushLogs();
  std::string text = readFile(path);
  EXPECT_EQ(text.rfind("earlier line\n", 0), 0u);
  EXPECT_THAT(text, HasSubstr("new line"));
}

TEST_F(LoggingTest, BadLevelAndUnopenableFileAreErrors) {
  LogOptions options;
  options.level = "verbose";
  Status s = initLogging("d", options);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "log.level: 'verbose' is not a log level (trace, debug, info, warn, error, off)");
  std::string notADir = (dir_ / "plain").string();
  std::ofstream(notADir) << "x";
  options.level = "info";
  options.file = notADir + "/d.log";
  s = initLogging("d", options);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_THAT(s.message(), HasSubstr("log file " + options.file));
}

TEST_F(LoggingTest, OptionsComeFromConfig) {
  LogOptions options;
  ConfigSchema schema("d");
  addLogOptions(schema, &options);
  ASSERT_TRUE(schema.parseArgs({"--log.level", "debug", "--log.file", "/x.log", "--no-log.stderr"})
                  .isOk());
  EXPECT_EQ(options.level, "debug");
  EXPECT_EQ(options.file, "/x.log");
  EXPECT_FALSE(options.toStderr);
  EXPECT_EQ(formatRequestId(255), "req 0xff");
}

}  // namespace
}  // namespace sluice
