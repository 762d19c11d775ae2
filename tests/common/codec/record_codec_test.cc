#include "common/codec/record_codec.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/codec/codec_limits.h"
#include "tests/common/codec/test_data.h"

namespace sluice {
namespace {

using testing::compressibleBytes;
using testing::randomBytes;

std::vector<uint8_t> roundTrip(const std::vector<uint8_t>& raw, Codec expected_codec) {
  auto enc = encodeRecord(raw);
  EXPECT_TRUE(enc.isOk()) << enc.status().toString();
  if (!enc.isOk()) return {};
  EXPECT_EQ(enc->codec, expected_codec);
  EXPECT_EQ(enc->raw_size, raw.size());
  EXPECT_EQ(enc->hash, Hash128::of(raw));
  auto dec = decodeRecord(enc->stored, enc->codec, enc->raw_size, enc->hash);
  EXPECT_TRUE(dec.isOk()) << dec.status().toString();
  if (!dec.isOk()) return {};
  // The zero-copy variant writes the same bytes into a caller's buffer and
  // nothing past raw_size.
  std::vector<uint8_t> into(raw.size() + 8, 0xAB);
  Status s = decodeRecordInto(enc->stored, enc->codec, enc->raw_size, enc->hash, into);
  EXPECT_TRUE(s.isOk()) << s.toString();
  EXPECT_TRUE(std::equal(raw.begin(), raw.end(), into.begin()));
  for (size_t i = raw.size(); i < into.size(); ++i) EXPECT_EQ(into[i], 0xAB);
  return std::move(dec).value();
}

TEST(RecordCodec, EmptyRecordRoundTripsRaw) {
  std::vector<uint8_t> raw;
  EXPECT_EQ(roundTrip(raw, Codec::kRaw), raw);
}

TEST(RecordCodec, OneByteRecordRoundTripsRaw) {
  std::vector<uint8_t> raw{0x42};
  EXPECT_EQ(roundTrip(raw, Codec::kRaw), raw);
}

TEST(RecordCodec, CompressibleRecordIsStoredZstdAndSmaller) {
  auto raw = compressibleBytes(kDefaultMaxRecordSize, 1);
  auto enc = encodeRecord(raw);
  ASSERT_TRUE(enc.isOk());
  EXPECT_EQ(enc->codec, Codec::kZstd);
  EXPECT_LT(enc->stored.size(), raw.size() / 2);
  EXPECT_EQ(roundTrip(raw, Codec::kZstd), raw);
}

// A dataset created with compression none stores every record raw, even
// one zstd would shrink 1000-fold.
TEST(RecordCodec, CompressionOffKeepsEvenACompressibleRecordRaw) {
  auto raw = compressibleBytes(kDefaultMaxRecordSize, 1);
  EncodeOptions off;
  off.compress = false;
  auto enc = encodeRecord(raw, off);
  ASSERT_TRUE(enc.isOk());
  EXPECT_EQ(enc->codec, Codec::kRaw);
  EXPECT_EQ(enc->stored, raw);
}

TEST(RecordCodec, IncompressibleRecordIsKeptRaw) {
  auto raw = randomBytes(kDefaultMaxRecordSize, 2);
  auto enc = encodeRecord(raw);
  ASSERT_TRUE(enc.isOk());
  EXPECT_EQ(enc->codec, Codec::kRaw);
  EXPECT_EQ(enc->stored, raw);
  EXPECT_EQ(roundTrip(raw, Codec::kRaw), raw);
}

TEST(RecordCodec, SmallSavingIsNotWorthKeeping) {
  // Half random, half a repeated byte: zstd saves roughly half.
  auto raw = randomBytes(64 << 10, 3);
  std::fill(raw.begin() + raw.size() / 2, raw.end(), 0);
  EncodeOptions keep_if_half{.zstd_level = 3, .min_saving = 0.6};
  auto enc = encodeRecord(raw, keep_if_half);
  ASSERT_TRUE(enc.isOk());
  EXPECT_EQ(enc->codec, Codec::kRaw);
  auto enc2 = encodeRecord(raw, EncodeOptions{.zstd_level = 3, .min_saving = 0.4});
  ASSERT_TRUE(enc2.isOk());
  EXPECT_EQ(enc2->codec, Codec::kZstd);
  EXPECT_LE(enc2->stored.size(), raw.size() * 6 / 10);
}

TEST(RecordCodec, MaximumSizeRecordsRoundTrip) {
  auto compressible = compressibleBytes(kMaxRecordSizeCap, 4);
  EXPECT_EQ(roundTrip(compressible, Codec::kZstd), compressible);
  auto incompressible = randomBytes(kMaxRecordSizeCap, 5);
  EXPECT_EQ(roundTrip(incompressible, Codec::kRaw), incompressible);
}

TEST(RecordCodec, RecordOverTheCapIsRefused) {
  std::vector<uint8_t> raw(kMaxRecordSizeCap + 1, 7);
  auto enc = encodeRecord(raw);
  ASSERT_FALSE(enc.isOk());
  EXPECT_EQ(enc.status().code(), StatusCode::kTooLarge);
}

TEST(RecordCodec, DecodeRefusesRawSizeOverTheCapBeforeAllocating) {
  std::vector<uint8_t> stored(16);
  auto dec = decodeRecord(stored, Codec::kZstd, kMaxRecordSizeCap + 1, Hash128{1, 2});
  ASSERT_FALSE(dec.isOk());
  EXPECT_EQ(dec.status().code(), StatusCode::kCorruption);
  auto dec2 = decodeRecord(stored, Codec::kRaw, 0xFFFFFFFFu, Hash128{1, 2});
  EXPECT_EQ(dec2.status().code(), StatusCode::kCorruption);
}

TEST(RecordCodec, BadOptionsAreRefused) {
  std::vector<uint8_t> raw(100, 1);
  EXPECT_EQ(encodeRecord(raw, {.zstd_level = 0}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(encodeRecord(raw, {.zstd_level = 99}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(encodeRecord(raw, {.zstd_level = 3, .min_saving = 1.0}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(encodeRecord(raw, {.zstd_level = 3, .min_saving = -0.1}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(RecordCodec, LevelChangesOutputButNotContent) {
  auto raw = compressibleBytes(256 << 10, 6);
  auto fast = encodeRecord(raw, {.zstd_level = 1});
  auto small = encodeRecord(raw, {.zstd_level = 19});
  ASSERT_TRUE(fast.isOk() && small.isOk());
  EXPECT_EQ(fast->hash, small->hash);
  EXPECT_LE(small->stored.size(), fast->stored.size());
  auto dec = decodeRecord(small->stored, Codec::kZstd, small->raw_size, small->hash);
  ASSERT_TRUE(dec.isOk());
  EXPECT_EQ(*dec, raw);
}

TEST(RecordCodec, FlippedByteInZstdDataIsAnErrorNamingTheRecord) {
  auto raw = compressibleBytes(128 << 10, 7);
  auto enc = encodeRecord(raw);
  ASSERT_TRUE(enc.isOk());
  ASSERT_EQ(enc->codec, Codec::kZstd);
  ChunkId chunk{0x1234, 0x5678};
  std::string name = recordName(enc->hash, chunk);
  EXPECT_EQ(name, "record " + enc->hash.toHex() + " in chunk " + chunk.toHex());
  size_t detected = 0;
  // Flip one byte at a spread of positions: each must be caught, as a zstd
  // format error or a checksum mismatch of the decoded bytes.
  for (size_t pos = 0; pos < enc->stored.size(); pos += 1 + enc->stored.size() / 64) {
    auto stored = enc->stored;
    stored[pos] ^= 0x10;
    auto dec = decodeRecord(stored, enc->codec, enc->raw_size, enc->hash, name);
    if (dec.isOk()) {
      EXPECT_EQ(*dec, raw) << "accepted a changed record at byte " << pos;
      continue;
    }
    ++detected;
    StatusCode code = dec.status().code();
    EXPECT_TRUE(code == StatusCode::kCorruption || code == StatusCode::kChecksumMismatch)
        << dec.status().toString();
    EXPECT_EQ(dec.status().message().rfind(name + ": ", 0), 0u) << dec.status().message();
  }
  EXPECT_GT(detected, 0u);
}

TEST(RecordCodec, FlippedByteInRawDataIsAChecksumMismatch) {
  auto raw = randomBytes(4096, 8);
  auto enc = encodeRecord(raw);
  ASSERT_TRUE(enc.isOk());
  ASSERT_EQ(enc->codec, Codec::kRaw);
  enc->stored[100] ^= 1;
  auto dec = decodeRecord(enc->stored, enc->codec, enc->raw_size, enc->hash);
  ASSERT_FALSE(dec.isOk());
  EXPECT_EQ(dec.status().code(), StatusCode::kChecksumMismatch);
  EXPECT_NE(dec.status().message().find("record " + enc->hash.toHex()), std::string::npos);
}

TEST(RecordCodec, WrongSizesAndTrailingBytesAreCorruption) {
  auto raw = compressibleBytes(64 << 10, 9);
  auto enc = encodeRecord(raw);
  ASSERT_TRUE(enc.isOk());
  ASSERT_EQ(enc->codec, Codec::kZstd);
  // Declared raw size differs from the frame's content size.
  EXPECT_EQ(decodeRecord(enc->stored, Codec::kZstd, enc->raw_size - 1, enc->hash).status().code(),
            StatusCode::kCorruption);
  // Truncated frame.
  std::span<const uint8_t> cut(enc->stored.data(), enc->stored.size() - 1);
  EXPECT_EQ(decodeRecord(cut, Codec::kZstd, enc->raw_size, enc->hash).status().code(),
            StatusCode::kCorruption);
  // A frame followed by extra bytes (an over-long range).
  auto longer = enc->stored;
  longer.push_back(0);
  EXPECT_EQ(decodeRecord(longer, Codec::kZstd, enc->raw_size, enc->hash).status().code(),
            StatusCode::kCorruption);
  // Two frames back to back.
  auto twice = enc->stored;
  twice.insert(twice.end(), enc->stored.begin(), enc->stored.end());
  EXPECT_EQ(decodeRecord(twice, Codec::kZstd, enc->raw_size, enc->hash).status().code(),
            StatusCode::kCorruption);
  // Raw codec with a size that does not match.
  EXPECT_EQ(decodeRecord(raw, Codec::kRaw, enc->raw_size + 1, enc->hash).status().code(),
            StatusCode::kCorruption);
  // Unknown codec number.
  EXPECT_EQ(decodeRecord(raw, static_cast<Codec>(7), enc->raw_size, enc->hash).status().code(),
            StatusCode::kCorruption);
  // Raw bytes labelled zstd, and zstd bytes labelled raw.
  EXPECT_EQ(decodeRecord(raw, Codec::kZstd, enc->raw_size, enc->hash).status().code(),
            StatusCode::kCorruption);
  EXPECT_FALSE(decodeRecord(enc->stored, Codec::kRaw, enc->raw_size, enc->hash).isOk());
  // Empty input for a zstd record.
  EXPECT_EQ(decodeRecord({}, Codec::kZstd, 0, Hash128::of(nullptr, 0)).status().code(),
            StatusCode::kCorruption);
}

TEST(RecordCodec, DecodeIntoTooSmallBufferIsInvalidArgument) {
  auto raw = compressibleBytes(10000, 10);
  auto enc = encodeRecord(raw);
  ASSERT_TRUE(enc.isOk());
  std::vector<uint8_t> out(raw.size() - 1);
  Status s = decodeRecordInto(enc->stored, enc->codec, enc->raw_size, enc->hash, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(RecordCodec, CodecBytesAreChecked) {
  EXPECT_EQ(codecFromByte(0), Codec::kRaw);
  EXPECT_EQ(codecFromByte(1), Codec::kZstd);
  EXPECT_FALSE(codecFromByte(2).has_value());
  EXPECT_FALSE(codecFromByte(255).has_value());
  EXPECT_EQ(codecName(Codec::kZstd), "zstd");
}

TEST(RecordCodec, ThreadsEncodeAndDecodeConcurrently) {
  // Each thread has its own zstd contexts; results must not mix.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      for (int i = 0; i < 20; ++i) {
        auto raw = compressibleBytes(32 << 10, static_cast<uint64_t>(t * 100 + i));
        auto enc = encodeRecord(raw, {.zstd_level = 1 + (i % 5)});
        if (!enc.isOk()) {
          ++failures;
          continue;
        }
        auto dec = decodeRecord(enc->stored, enc->codec, enc->raw_size, enc->hash);
        if (!dec.isOk() || *dec != raw) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace sluice
