#include "client/cluster_config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

namespace sluice::client {
namespace {

class ClusterConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-cfg-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    unsetenv("SLUICE_CLUSTER");
    unsetenv("SLUICE_META");
    setenv("SLUICE_DEV_DIR", dir_.c_str(), 1);
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    unsetenv("SLUICE_DEV_DIR");
    unsetenv("SLUICE_META");
  }
  std::string dir_;
};

TEST_F(ClusterConfigTest, WriteThenReadRoundTrips) {
  ClusterConfig c;
  c.meta = HostPort{"127.0.0.1", 7400};
  c.provider = "tcp;ofi_rxm";
  c.timeout = std::chrono::milliseconds(2500);
  ASSERT_TRUE(writeClusterConfig(dir_ + "/client.toml", c).isOk());
  auto r = resolveClusterConfig();  // finds the dev dir's file
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->meta, c.meta);
  EXPECT_EQ(r->timeout, c.timeout);
  EXPECT_EQ(r->source, dir_ + "/client.toml");
}

TEST_F(ClusterConfigTest, EnvironmentWinsOverDevDir) {
  setenv("SLUICE_META", "127.0.0.1:9999", 1);
  auto r = resolveClusterConfig();
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->meta.port, 9999);
  setenv("SLUICE_META", "nonsense", 1);
  auto bad = resolveClusterConfig();
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("SLUICE_META"), std::string::npos);
}

TEST_F(ClusterConfigTest, NothingConfiguredSaysWhatToDo) {
  auto r = resolveClusterConfig();
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("sluice dev up"), std::string::npos);
}

TEST_F(ClusterConfigTest, BadKeyIsNamed) {
  std::string path = dir_ + "/bad.toml";
  FILE* f = fopen(path.c_str(), "w");
  fputs("meta = \"127.0.0.1:7400\"\nmetta = 1\n", f);
  fclose(f);
  auto r = resolveClusterConfig(path);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("metta"), std::string::npos) << r.status().toString();
}

}  // namespace
}  // namespace sluice::client
