#include "common/codec/record_splitter.h"

#include <gtest/gtest.h>

#include "common/codec/codec_limits.h"

namespace sluice {
namespace {

TEST(RecordSplitter, CutsIntoFixedSizeRecordsWithAShortTail) {
  std::vector<uint8_t> file(10000);
  for (size_t i = 0; i < file.size(); ++i) file[i] = static_cast<uint8_t>(i);
  auto records = splitIntoRecords(file, 4096);
  ASSERT_TRUE(records.isOk());
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ((*records)[0].size(), 4096u);
  EXPECT_EQ((*records)[1].size(), 4096u);
  EXPECT_EQ((*records)[2].size(), 10000u - 8192u);
  EXPECT_EQ((*records)[1].data(), file.data() + 4096);
  EXPECT_EQ(recordCountFor(file.size(), 4096), 3u);
}

TEST(RecordSplitter, ExactMultipleAndEmptyFile) {
  std::vector<uint8_t> file(8192);
  auto records = splitIntoRecords(file, 4096);
  ASSERT_TRUE(records.isOk());
  EXPECT_EQ(records->size(), 2u);
  EXPECT_EQ(recordCountFor(8192, 4096), 2u);
  auto none = splitIntoRecords({}, kDefaultMaxRecordSize);
  ASSERT_TRUE(none.isOk());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(recordCountFor(0, 4096), 0u);
}

TEST(RecordSplitter, RefusesRecordSizesOutOfRange) {
  std::vector<uint8_t> file(100);
  EXPECT_EQ(splitIntoRecords(file, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(splitIntoRecords(file, kMaxRecordSizeCap + 1).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice
