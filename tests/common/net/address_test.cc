// Transport address forms (common/net/address.h).
#include "common/net/address.h"

#include <gtest/gtest.h>

namespace sluice::net {
namespace {

TEST(AddressTest, SocketFormIsValidated) {
  EXPECT_TRUE(checkAddress("127.0.0.1:7400").isOk());
  EXPECT_TRUE(checkAddress("[::1]:0").isOk());
  EXPECT_TRUE(checkAddress("meta-1.cluster:65535").isOk());
  for (const char* bad : {"", "127.0.0.1", ":7", "host:", "host:65536", "host:7x", "a b:7",
                          "a/b:7", "host:-1"}) {
    Status s = checkAddress(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(bad), std::string::npos) << s.toString();
  }
}

TEST(AddressTest, LibfabricNamesAreValidated) {
  EXPECT_TRUE(isFabricName("fi_ns://meta"));
  EXPECT_FALSE(isFabricName("127.0.0.1:7400"));
  for (const char* good : {"fi_ns://meta", "fi_shm://4242:0:1", "fi_ns://127.0.0.1:7400",
                           "fi_ns://node-1.rack_2@x+y"}) {
    EXPECT_TRUE(checkAddress(good).isOk()) << good;
  }
  std::string longest = "fi_ns://" + std::string(kMaxFabricNameLength, 'a');
  EXPECT_TRUE(checkFabricName(longest).isOk());
  for (std::string bad :
       {std::string("fi_ns://"), std::string("://x"), std::string("FI_NS://x"),
        std::string("fi-ns://x"), std::string("fi_ns://a/b"), std::string("fi_ns://../etc"),
        std::string("fi_ns://a b"), std::string("fi_ns://a\nb"), std::string("x:///y"),
        std::string("averyveryverylongprefix://x"), longest + "a"}) {
    Status s = checkAddress(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("libfabric name"), std::string::npos) << s.toString();
  }
}

TEST(AddressTest, NsNamesOfHostPortDisplayAsHostPort) {
  EXPECT_EQ(displayFabricName("fi_ns://127.0.0.1:7400"), "127.0.0.1:7400");
  EXPECT_EQ(displayFabricName("fi_ns://::1:7400"), "[::1]:7400");
  EXPECT_EQ(displayFabricName("fi_ns://meta"), "fi_ns://meta");
  EXPECT_EQ(displayFabricName("fi_ns://a:b"), "fi_ns://a:b");
  EXPECT_EQ(displayFabricName("fi_shm://4242:0:1"), "fi_shm://4242:0:1");
  // What is displayed is a valid address in its own right.
  EXPECT_TRUE(checkAddress(displayFabricName("fi_ns://::1:7400")).isOk());
}

}  // namespace
}  // namespace sluice::net
