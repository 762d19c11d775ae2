#include "client/progress.h"

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::client {
namespace {

TEST(ProgressMeter, Formats) {
  EXPECT_EQ(ProgressMeter::formatBytes(0), "0 B");
  EXPECT_EQ(ProgressMeter::formatBytes(1023), "1023 B");
  EXPECT_EQ(ProgressMeter::formatBytes(1536), "1.50 KiB");
  EXPECT_EQ(ProgressMeter::formatBytes(200ull << 20), "200 MiB");
  EXPECT_EQ(ProgressMeter::formatCount(1234567), "1,234,567");
  EXPECT_EQ(ProgressMeter::formatCount(12), "12");
  EXPECT_EQ(ProgressMeter::formatDuration(8), "0:08");
  EXPECT_EQ(ProgressMeter::formatDuration(3723), "1:02:03");
}

TEST(ProgressMeter, CountsFromManyThreadsAndPrintsFinalLine) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* out = open_memstream(&buf, &len);
  ASSERT_NE(out, nullptr);
  {
    ProgressMeter meter("put", 4000, 4000 * 100, out);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 1000; ++i) meter.add(1, 100);
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(meter.files(), 4000u);
    EXPECT_EQ(meter.bytes(), 400000u);
    meter.finish();
  }
  std::fclose(out);
  std::string text(buf, len);
  free(buf);
  EXPECT_NE(text.find("4,000/4,000 files"), std::string::npos) << text;
  EXPECT_NE(text.find("391 KiB/391 KiB"), std::string::npos) << text;
  EXPECT_NE(text.find(" in 0:0"), std::string::npos) << text;
}

}  // namespace
}  // namespace sluice::client
