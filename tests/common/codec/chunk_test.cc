#include <gtest/gtest.h>

#include "common/codec/chunk_builder.h"
#include "common/codec/chunk_format.h"
#include "common/codec/chunk_view.h"
#include "common/codec/codec_limits.h"
#include "common/codec/record_codec.h"
#include "tests/common/codec/test_data.h"

namespace sluice {
namespace {

namespace cf = chunk_format;
using testing::compressibleBytes;
using testing::randomBytes;

EncodedRecord encode(const std::vector<uint8_t>& raw) {
  auto enc = encodeRecord(raw);
  EXPECT_TRUE(enc.isOk()) << enc.status().toString();
  return std::move(enc).value();
}

TEST(Chunk, BuildAndParseManyRecords) {
  ChunkBuilder builder(kDefaultChunkSize);
  std::vector<std::vector<uint8_t>> raws;
  std::vector<uint32_t> sizes = {0, 1, 17, 4096, 100000, 300000};
  for (uint32_t i = 0; builder.recordCount() < 200; ++i) {
    size_t n = sizes[i % sizes.size()] / (1 + i % 7);
    auto raw = (i % 2) ? randomBytes(n, i) : compressibleBytes(n, i);
    auto enc = encode(raw);
    if (!builder.fits(enc.stored.size())) break;
    auto idx = builder.add(enc);
    ASSERT_TRUE(idx.isOk()) << idx.status().toString();
    EXPECT_EQ(*idx, raws.size());
    raws.push_back(std::move(raw));
  }
  ASSERT_GE(raws.size(), 50u);
  size_t predicted = builder.size();
  auto built = builder.finish();
  ASSERT_TRUE(built.isOk()) << built.status().toString();
  EXPECT_TRUE(builder.empty());
  EXPECT_EQ(built->bytes.size(), predicted);
  EXPECT_LE(built->bytes.size(), kDefaultChunkSize);
  EXPECT_EQ(built->id, Hash128::of(built->bytes));
  ASSERT_EQ(built->records.size(), raws.size());

  auto view = ChunkView::parse(built->bytes, built->id);
  ASSERT_TRUE(view.isOk()) << view.status().toString();
  ASSERT_EQ(view->recordCount(), raws.size());
  for (uint32_t i = 0; i < view->recordCount(); ++i) {
    EXPECT_EQ(view->record(i), built->records[i]);
    auto raw = view->readRecord(i);
    ASSERT_TRUE(raw.isOk()) << raw.status().toString();
    EXPECT_EQ(*raw, raws[i]);
    // A reader holding only the location fetches exactly that byte range and
    // decodes it without the chunk header.
    const RecordLocation& loc = built->records[i];
    std::vector<uint8_t> range(built->bytes.begin() + loc.offset,
                               built->bytes.begin() + loc.offset + loc.stored_size);
    auto lone = decodeRecord(range, loc.codec, loc.raw_size, loc.hash);
    ASSERT_TRUE(lone.isOk()) << lone.status().toString();
    EXPECT_EQ(*lone, raws[i]);
  }
  EXPECT_TRUE(view->verifyRecords().isOk());
  EXPECT_EQ(view->readRecord(view->recordCount()).status().code(), StatusCode::kOutOfRange);
}

TEST(Chunk, BuilderStopsAtTargetSizeButTakesOneOversizedRecord) {
  ChunkBuilder builder(64 << 10);
  auto big = encode(randomBytes(100 << 10, 1));
  EXPECT_TRUE(builder.fits(big.stored.size()));
  ASSERT_TRUE(builder.add(big).isOk());
  auto small = encode(randomBytes(10, 2));
  EXPECT_FALSE(builder.fits(small.stored.size()));
  EXPECT_EQ(builder.add(small).status().code(), StatusCode::kResourceExhausted);
  auto built = builder.finish();
  ASSERT_TRUE(built.isOk());
  EXPECT_EQ(built->records.size(), 1u);

  ChunkBuilder packer(64 << 10);
  size_t added = 0;
  while (true) {
    auto rec = encode(randomBytes(1000, added + 10));
    if (!packer.fits(rec.stored.size())) break;
    ASSERT_TRUE(packer.add(rec).isOk());
    ++added;
  }
  EXPECT_EQ(added, (65536 - cf::kHeaderSize) / (1000 + cf::kEntrySize));
  EXPECT_LE(packer.size(), size_t{64} << 10);
}

TEST(Chunk, BuilderRefusesInconsistentRecordsAndEmptyFinish) {
  ChunkBuilder builder;
  EXPECT_EQ(builder.finish().status().code(), StatusCode::kFailedPrecondition);
  EncodedRecord bad;
  bad.codec = Codec::kRaw;
  bad.stored = {1, 2, 3};
  bad.raw_size = 4;
  EXPECT_EQ(builder.add(bad).status().code(), StatusCode::kInvalidArgument);
  bad.codec = Codec::kZstd;
  bad.raw_size = 2;
  EXPECT_EQ(builder.add(bad).status().code(), StatusCode::kInvalidArgument);
  bad.codec = static_cast<Codec>(9);
  EXPECT_EQ(builder.add(bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(builder.empty());
}

TEST(Chunk, BuilderIsReusableAfterFinish) {
  ChunkBuilder builder(kMinChunkSize);
  auto a = encode(compressibleBytes(3000, 1));
  ASSERT_TRUE(builder.add(a).isOk());
  auto first = builder.finish();
  ASSERT_TRUE(first.isOk());
  auto b = encode(compressibleBytes(3000, 2));
  ASSERT_TRUE(builder.add(b).isOk());
  auto second = builder.finish();
  ASSERT_TRUE(second.isOk());
  EXPECT_NE(first->id, second->id);
  ASSERT_EQ(second->records.size(), 1u);
  EXPECT_EQ(second->records[0].offset, cf::kHeaderSize + cf::kEntrySize);
}

// A small valid chunk to damage in the tests below.
BuiltChunk sampleChunk() {
  ChunkBuilder builder(64 << 10);
  EXPECT_TRUE(builder.add(encode(compressibleBytes(5000, 1))).isOk());
  EXPECT_TRUE(builder.add(encode(randomBytes(700, 2))).isOk());
  EXPECT_TRUE(builder.add(encode({})).isOk());
  auto built = builder.finish();
  EXPECT_TRUE(built.isOk());
  return std::move(built).value();
}

// Rewrites the size and table checksum so the parser's later checks run.
void resealHeader(std::vector<uint8_t>& bytes) {
  uint32_t count = cf::load32(bytes.data() + cf::kCountAt);
  size_t table_end = cf::kHeaderSize + size_t{count} * cf::kEntrySize;
  cf::store64(bytes.data() + cf::kChunkSizeAt, bytes.size());
  if (table_end <= bytes.size()) {
    cf::store64(bytes.data() + cf::kTableChecksumAt,
                cf::tableChecksum(std::span<const uint8_t>(bytes.data(), table_end)));
  }
}

Status parseStatus(const std::vector<uint8_t>& bytes) {
  return ChunkView::parse(bytes, Hash128{1, 1}).status();
}

TEST(Chunk, ResaltGivesANewIdAndKeepsEveryRecord) {
  BuiltChunk c = sampleChunk();
  std::vector<uint8_t> b = c.bytes;
  ChunkId salted = resaltChunk(b, 7);
  EXPECT_NE(salted, c.id);
  EXPECT_EQ(salted, Hash128::of(b));
  auto view = ChunkView::parse(b, salted);
  ASSERT_TRUE(view.isOk()) << view.status().toString();
  ASSERT_EQ(view->recordCount(), c.records.size());
  for (uint32_t i = 0; i < view->recordCount(); ++i) {
    EXPECT_EQ(view->record(i).offset, c.records[i].offset);
    auto raw = view->readRecord(i);
    ASSERT_TRUE(raw.isOk()) << raw.status().toString();
    EXPECT_EQ(Hash128::of(*raw), c.records[i].hash);
  }
  // Salt 0 is the builder's own: the original bytes and id come back.
  EXPECT_EQ(resaltChunk(b, 0), c.id);
  EXPECT_EQ(b, c.bytes);
}

TEST(Chunk, ParseRejectsDamagedHeaders) {
  BuiltChunk c = sampleChunk();
  ASSERT_TRUE(parseStatus(c.bytes).isOk());
  auto damaged = [&](auto edit) {
    auto b = c.bytes;
    edit(b);
    return parseStatus(b);
  };
  // Truncated below the header, truncated by one, extended by one.
  EXPECT_EQ(damaged([](auto& b) { b.resize(10); }).code(), StatusCode::kCorruption);
  EXPECT_EQ(damaged([](auto& b) { b.pop_back(); }).code(), StatusCode::kCorruption);
  EXPECT_EQ(damaged([](auto& b) { b.push_back(0); }).code(), StatusCode::kCorruption);
  EXPECT_EQ(damaged([](auto& b) { b[0] ^= 1; }).code(), StatusCode::kCorruption);
  EXPECT_EQ(damaged([](auto& b) { cf::store16(b.data() + cf::kVersionAt, 2); }).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(damaged([](auto& b) { cf::store16(b.data() + cf::kFlagsAt, 1); }).code(),
            StatusCode::kFailedPrecondition);
  // A table byte changed without resealing: the checksum catches it.
  Status s = damaged([](auto& b) { b[cf::kHeaderSize + 5] ^= 0x40; });
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("checksum"), std::string::npos);
  EXPECT_NE(s.message().find("chunk " + Hash128{1, 1}.toHex()), std::string::npos) << s.message();
  // Record counts that are zero, huge, or larger than the table fits.
  for (uint32_t count : {0u, 4u, 1000u, kMaxRecordsPerChunk + 1, 0xFFFFFFFFu}) {
    EXPECT_EQ(damaged([&](auto& b) {
                cf::store32(b.data() + cf::kCountAt, count);
                resealHeader(b);
              }).code(),
              StatusCode::kCorruption)
        << count;
  }
  // Declared size lies, in both directions.
  EXPECT_EQ(damaged([](auto& b) { cf::store64(b.data() + cf::kChunkSizeAt, 1ull << 40); }).code(),
            StatusCode::kCorruption);
}

TEST(Chunk, ParseRejectsBadTableEntries) {
  BuiltChunk c = sampleChunk();
  auto entry = [](std::vector<uint8_t>& b, uint32_t i) {
    return b.data() + cf::kHeaderSize + size_t{i} * cf::kEntrySize;
  };
  auto damaged = [&](auto edit) {
    auto b = c.bytes;
    edit(b);
    resealHeader(b);
    return parseStatus(b);
  };
  ASSERT_TRUE(damaged([](auto&) {}).isOk());
  // Offsets pointing into the header or table, overlapping, or past the end.
  for (uint32_t off : {0u, 31u, 32u, 64u, 95u, 97u, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
    EXPECT_EQ(damaged([&](auto& b) { cf::store32(entry(b, 1) + cf::kOffsetAt, off); }).code(),
              StatusCode::kCorruption)
        << off;
  }
  // Stored sizes running past the end or overlapping the next record.
  for (uint32_t len : {0xFFFFFFFFu, 0x7FFFFFFFu, 100000u}) {
    EXPECT_EQ(damaged([&](auto& b) { cf::store32(entry(b, 0) + cf::kStoredSizeAt, len); }).code(),
              StatusCode::kCorruption)
        << len;
  }
  EXPECT_EQ(damaged([&](auto& b) { entry(b, 0)[cf::kCodecAt] = 2; }).code(),
            StatusCode::kCorruption);
  EXPECT_EQ(damaged([&](auto& b) { entry(b, 0)[cf::kEntryReservedAt] = 1; }).code(),
            StatusCode::kCorruption);
  // Raw size over the cap; a raw record whose sizes disagree.
  EXPECT_EQ(damaged([&](auto& b) {
              cf::store32(entry(b, 0) + cf::kRawSizeAt, uint32_t{kMaxRecordSizeCap} + 1);
            }).code(),
            StatusCode::kCorruption);
  EXPECT_EQ(damaged([&](auto& b) { cf::store32(entry(b, 1) + cf::kRawSizeAt, 699); }).code(),
            StatusCode::kCorruption);
  // The error names the entry.
  Status s = damaged([&](auto& b) { entry(b, 2)[cf::kCodecAt] = 200; });
  EXPECT_NE(s.message().find("record table entry 2"), std::string::npos) << s.message();
}

TEST(Chunk, DamagedRecordDataIsFoundOnReadAndNamed) {
  BuiltChunk c = sampleChunk();
  auto b = c.bytes;
  const RecordLocation& loc = c.records[1];  // the raw one
  b[loc.offset + 3] ^= 0xFF;
  auto view = ChunkView::parse(b, c.id);
  ASSERT_TRUE(view.isOk());  // the table is intact
  EXPECT_TRUE(view->readRecord(0).isOk());
  auto bad = view->readRecord(1);
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), StatusCode::kChecksumMismatch);
  EXPECT_EQ(bad.status().message().rfind(recordName(loc.hash, c.id) + ": ", 0), 0u)
      << bad.status().message();
  EXPECT_FALSE(view->verifyRecords().isOk());
  EXPECT_TRUE(view->readRecord(2).isOk());
}

TEST(Chunk, SizeValidators) {
  EXPECT_TRUE(validateChunkSize(kDefaultChunkSize).isOk());
  EXPECT_TRUE(validateChunkSize(kMaxChunkSizeCap).isOk());
  EXPECT_EQ(validateChunkSize(kMaxChunkSizeCap + 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(validateChunkSize(0).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(validateMaxRecordSize(kDefaultMaxRecordSize).isOk());
  EXPECT_EQ(validateMaxRecordSize(kMaxRecordSizeCap + 1).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice
