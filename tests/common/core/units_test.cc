#include <gtest/gtest.h>

#include "common/core/host_port.h"
#include "common/core/units.h"

namespace sluice {
namespace {

using std::chrono::microseconds;

TEST(Units, ParseSize) {
  EXPECT_EQ(parseSize("0").value(), 0u);
  EXPECT_EQ(parseSize("4096").value(), 4096u);
  EXPECT_EQ(parseSize("512B").value(), 512u);
  EXPECT_EQ(parseSize("64K").value(), 64u << 10);
  EXPECT_EQ(parseSize("4M").value(), 4u << 20);
  EXPECT_EQ(parseSize("4MiB").value(), 4u << 20);
  EXPECT_EQ(parseSize("4MB").value(), 4u << 20);
  EXPECT_EQ(parseSize("100G").value(), 100ull << 30);
  EXPECT_EQ(parseSize("2T").value(), 2ull << 40);
}

TEST(Units, BadSizesAreErrorsQuotingTheText) {
  for (const char* bad : {"", "G", "12QB", "1.5G", "-1", "10 G", "10g", "10GiBB", "10iB"}) {
    Result<uint64_t> r = parseSize(bad);
    ASSERT_FALSE(r.isOk()) << bad;
    EXPECT_EQ(r.status().message(), "'" + std::string(bad) + "' is not a size like 100G");
  }
  EXPECT_EQ(parseSize("99999999999T").status().code(), StatusCode::kOutOfRange);
}

TEST(Units, FormatSize) {
  EXPECT_EQ(formatSize(0), "0");
  EXPECT_EQ(formatSize(1000), "1000");
  EXPECT_EQ(formatSize(64 << 10), "64K");
  EXPECT_EQ(formatSize(100ull << 30), "100G");
  EXPECT_EQ(formatSize(1536ull << 20), "1536M");
}

TEST(Units, ParseDuration) {
  EXPECT_EQ(parseDuration("100us").value(), microseconds(100));
  EXPECT_EQ(parseDuration("250ms").value(), microseconds(250000));
  EXPECT_EQ(parseDuration("5s").value(), microseconds(5000000));
  EXPECT_EQ(parseDuration("2m").value(), microseconds(120000000));
  EXPECT_EQ(parseDuration("1h").value(), microseconds(3600000000));
  EXPECT_EQ(parseDuration("0s").value(), microseconds(0));
}

TEST(Units, BadDurationsAreErrors) {
  for (const char* bad : {"", "5", "s", "5 s", "5sec", "1.5s", "-5s", "5S"}) {
    Result<microseconds> r = parseDuration(bad);
    ASSERT_FALSE(r.isOk()) << bad;
    EXPECT_EQ(r.status().message(),
              "'" + std::string(bad) + "' is not a duration like 500ms, 5s or 2m");
  }
  EXPECT_EQ(parseDuration("99999999999999h").status().code(), StatusCode::kOutOfRange);
}

TEST(Units, FormatDuration) {
  EXPECT_EQ(formatDuration(microseconds(0)), "0s");
  EXPECT_EQ(formatDuration(microseconds(120000000)), "2m");
  EXPECT_EQ(formatDuration(microseconds(1500000)), "1500ms");
  EXPECT_EQ(formatDuration(microseconds(7)), "7us");
  EXPECT_EQ(formatDuration(microseconds(-5000000)), "-5s");
}

TEST(HostPort, ParsesAndRoundTrips) {
  HostPort hp = parseHostPort("127.0.0.1:9100").value();
  EXPECT_EQ(hp.host, "127.0.0.1");
  EXPECT_EQ(hp.port, 9100);
  EXPECT_EQ(hp.toString(), "127.0.0.1:9100");
  EXPECT_EQ(parseHostPort("meta-1.cluster:0").value(), (HostPort{"meta-1.cluster", 0}));
  HostPort v6 = parseHostPort("[::1]:65535").value();
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 65535);
  EXPECT_EQ(v6.toString(), "[::1]:65535");
}

TEST(HostPort, RejectsMalformed) {
  struct Case {
    const char* text;
    const char* why;
  } cases[] = {
      {"localhost", "missing ':port'"},
      {":80", "empty host"},
      {"host:", "empty port"},
      {"host:http", "port is not a number"},
      {"host:65536", "port is above 65535"},
      {"host:-1", "port is not a number"},
      {"ho st:80", "bad character in host"},
      {"::1:80", "write IPv6 addresses as [addr]:port"},
      {"[::1]80", "missing ':port'"},
      {"[::1:80", "missing ']'"},
      {"[]:80", "empty host"},
      {"[zz::1]:80", "bad character in IPv6 address"},
  };
  for (const Case& c : cases) {
    Result<HostPort> r = parseHostPort(c.text);
    ASSERT_FALSE(r.isOk()) << c.text;
    EXPECT_EQ(r.status().message(),
              "'" + std::string(c.text) + "' is not host:port (" + c.why + ")");
  }
}

}  // namespace
}  // namespace sluice
