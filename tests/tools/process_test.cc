#include "tools/process.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace sluice::tools {
namespace {

TEST(Process, SpawnLogAndStop) {
  std::string log = "/tmp/sluice-process-test-" + std::to_string(getpid()) + ".log";
  ProcessSpec spec{"/bin/sh", {"-c", "echo started; exec sleep 30"}, log, true};
  auto pid = spawnProcess(spec);
  ASSERT_TRUE(pid.isOk()) << pid.status().toString();
  // /bin/sh execs sleep, so the process image changes; wait for it.
  std::string sleep_exe = std::filesystem::canonical("/bin/sleep").string();
  for (int i = 0; i < 200 && !isRunning(*pid, sleep_exe); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(isRunning(*pid, sleep_exe));
  // A different executable name never matches, so it is never signalled.
  EXPECT_FALSE(isRunning(*pid, "/bin/true"));
  EXPECT_TRUE(stopProcess(*pid, "/bin/true").isOk());
  EXPECT_TRUE(isRunning(*pid, sleep_exe));

  ASSERT_TRUE(stopProcess(*pid, sleep_exe, std::chrono::milliseconds(2000)).isOk());
  EXPECT_FALSE(isRunning(*pid, sleep_exe));
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "started\n");
  std::filesystem::remove(log);
}

TEST(Process, MissingExecutableIsAClearError) {
  auto r = findExecutable("sluice-no-such-binary");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("sluice-no-such-binary"), std::string::npos);
}

}  // namespace
}  // namespace sluice::tools
