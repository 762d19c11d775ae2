// Runs the chunk parser and the record decoder over >= 10,000 random
// mutations of valid chunks: bit flips, byte overwrites, truncations,
// extensions, header/table field overwrites and record-data splices, each
// tried both as is and "resealed" (chunk size and table checksum rewritten
// to match) so the structural checks behind the checksum are exercised too.
//
// Asserts: nothing crashes or over-reads (run it under ASan); whatever the
// parser accepts is internally consistent; every record that decodes
// verifies against its hash, and if that hash is an original record's, the
// bytes are that record's; damage to the header or table is always caught
// by parse() unless resealed; records whose bytes were not touched still
// decode. The seed is fixed; SLUICE_MUTATION_SEED overrides it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>

#include "common/codec/chunk_builder.h"
#include "common/codec/chunk_format.h"
#include "common/codec/chunk_view.h"
#include "common/codec/record_codec.h"
#include "tests/common/codec/test_data.h"

namespace sluice {
namespace {

namespace cf = chunk_format;

constexpr int kMutations = 12000;

struct Sample {
  BuiltChunk chunk;
  std::vector<std::vector<uint8_t>> raws;
};

// Small chunks of mixed records: empty, tiny, raw, zstd.
std::vector<Sample> makeSamples(std::map<Hash128, std::vector<uint8_t>>& originals) {
  std::vector<Sample> samples;
  std::mt19937_64 rng(42);
  for (int c = 0; c < 6; ++c) {
    Sample s;
    ChunkBuilder builder(8 << 10);
    for (int r = 0;; ++r) {
      size_t n = (r % 5 == 0) ? rng() % 4 : rng() % 1500;
      auto raw =
          (rng() % 2) ? testing::randomBytes(n, rng()) : testing::compressibleBytes(n, rng());
      auto enc = encodeRecord(raw);
      EXPECT_TRUE(enc.isOk());
      if (!builder.fits(enc->stored.size())) break;
      EXPECT_TRUE(builder.add(*enc).isOk());
      originals[enc->hash] = raw;
      s.raws.push_back(std::move(raw));
    }
    auto built = builder.finish();
    EXPECT_TRUE(built.isOk());
    s.chunk = std::move(built).value();
    samples.push_back(std::move(s));
  }
  return samples;
}

void reseal(std::vector<uint8_t>& b) {
  if (b.size() < cf::kHeaderSize) return;
  cf::store64(b.data() + cf::kChunkSizeAt, b.size());
  uint64_t table_end =
      cf::kHeaderSize + uint64_t{cf::load32(b.data() + cf::kCountAt)} * cf::kEntrySize;
  if (table_end <= b.size()) {
    cf::store64(b.data() + cf::kTableChecksumAt,
                cf::tableChecksum(std::span<const uint8_t>(b.data(), table_end)));
  }
}

uint64_t interestingValue(std::mt19937_64& rng, const std::vector<uint8_t>& b) {
  const uint64_t values[] = {0,
                             1,
                             b.size(),
                             b.size() - 1,
                             b.size() + 1,
                             0x7FFFFFFF,
                             0xFFFFFFFF,
                             0xFFFFFFFFFFFFFFFFull,
                             16u << 20,
                             (16u << 20) + 1,
                             cf::kHeaderSize,
                             rng() % (b.size() + 1)};
  return values[rng() % std::size(values)];
}

void overwriteField(std::vector<uint8_t>& b, std::mt19937_64& rng) {
  struct Field {
    size_t at;
    int width;
  };
  std::vector<Field> fields = {
      {cf::kMagicAt, 4},    {cf::kVersionAt, 2},   {cf::kFlagsAt, 2},        {cf::kCountAt, 4},
      {cf::kSaltAt, 4}, {cf::kChunkSizeAt, 8}, {cf::kTableChecksumAt, 8}};
  uint32_t count = cf::load32(b.data() + cf::kCountAt);
  size_t entry = cf::kHeaderSize + (rng() % count) * cf::kEntrySize;
  for (Field f : {Field{cf::kOffsetAt, 4}, Field{cf::kStoredSizeAt, 4}, Field{cf::kRawSizeAt, 4},
                  Field{cf::kCodecAt, 1}, Field{cf::kEntryReservedAt, 1}, Field{cf::kHashHiAt, 8},
                  Field{cf::kHashLoAt, 8}}) {
    // Entry fields are listed several times so they are picked more often.
    for (int k = 0; k < 3; ++k) fields.push_back({entry + f.at, f.width});
  }
  Field f = fields[rng() % fields.size()];
  uint64_t v = interestingValue(rng, b);
  if (f.width == 1) b[f.at] = static_cast<uint8_t>(rng() % 4);
  if (f.width == 2) cf::store16(b.data() + f.at, static_cast<uint16_t>(v));
  if (f.width == 4) cf::store32(b.data() + f.at, static_cast<uint32_t>(v));
  if (f.width == 8) cf::store64(b.data() + f.at, v);
}

void mutate(std::vector<uint8_t>& b, const BuiltChunk& chunk, std::mt19937_64& rng) {
  switch (rng() % 6) {
    case 0:  // bit flips
      for (int k = 1 + rng() % 4; k > 0; --k) b[rng() % b.size()] ^= uint8_t(1u << (rng() % 8));
      break;
    case 1:  // byte overwrites
      for (int k = 1 + rng() % 4; k > 0; --k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
      break;
    case 2:  // truncation, sometimes into the header
      b.resize((rng() % 4 == 0) ? rng() % (cf::kHeaderSize * 2) : rng() % b.size());
      break;
    case 3:  // extension
      for (int k = 1 + rng() % 64; k > 0; --k) b.push_back(static_cast<uint8_t>(rng()));
      break;
    case 4:
      overwriteField(b, rng);
      break;
    case 5: {  // copy one record's bytes over another's
      const auto& recs = chunk.records;
      const RecordLocation& from = recs[rng() % recs.size()];
      const RecordLocation& to = recs[rng() % recs.size()];
      size_t n = std::min(from.stored_size, to.stored_size);
      std::copy_n(chunk.bytes.begin() + from.offset, n, b.begin() + to.offset);
      break;
    }
  }
}

uint64_t seedFromEnv() {
  const char* s = std::getenv("SLUICE_MUTATION_SEED");
  return s ? std::strtoull(s, nullptr, 10) : 20261128;
}

TEST(ChunkMutation, ParserAndDecoderSurviveRandomMutations) {
  std::map<Hash128, std::vector<uint8_t>> originals;
  std::vector<Sample> samples = makeSamples(originals);
  const uint64_t seed = seedFromEnv();
  SCOPED_TRACE("SLUICE_MUTATION_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);

  int parsed = 0, rejected = 0, records_ok = 0, records_bad = 0, resealed_parsed = 0;
  for (int iter = 0; iter < kMutations; ++iter) {
    const Sample& sample = samples[rng() % samples.size()];
    const BuiltChunk& chunk = sample.chunk;
    std::vector<uint8_t> b = chunk.bytes;
    mutate(b, chunk, rng);
    const bool resealed = rng() % 2 == 0;
    if (resealed) reseal(b);
    // Exact-size heap copy: ASan flags any read past its end.
    std::unique_ptr<uint8_t[]> heap(new uint8_t[b.size()]);
    std::copy(b.begin(), b.end(), heap.get());
    std::span<const uint8_t> bytes(heap.get(), b.size());

    const size_t table_end = cf::kHeaderSize + chunk.records.size() * cf::kEntrySize;
    const bool header_intact = b.size() == chunk.bytes.size() &&
                               std::equal(b.begin(), b.begin() + table_end, chunk.bytes.begin());

    auto view = ChunkView::parse(bytes, chunk.id);
    if (!view.isOk()) {
      ++rejected;
      StatusCode code = view.status().code();
      ASSERT_TRUE(code == StatusCode::kCorruption || code == StatusCode::kFailedPrecondition)
          << view.status().toString();
      ASSERT_FALSE(header_intact) << "valid header and table rejected: "
                                  << view.status().toString();
    } else {
      ++parsed;
      if (resealed) ++resealed_parsed;
      if (!resealed) {
        ASSERT_TRUE(header_intact) << "damaged header or table accepted at iteration " << iter;
      }
      uint64_t end = cf::kHeaderSize + uint64_t{view->recordCount()} * cf::kEntrySize;
      for (uint32_t i = 0; i < view->recordCount(); ++i) {
        RecordLocation loc = view->record(i);
        ASSERT_GE(loc.offset, end);
        ASSERT_LE(uint64_t{loc.offset} + loc.stored_size, bytes.size());
        end = uint64_t{loc.offset} + loc.stored_size;
        auto raw = view->readRecord(i);
        if (!raw.isOk()) {
          ++records_bad;
          StatusCode code = raw.status().code();
          ASSERT_TRUE(code == StatusCode::kCorruption || code == StatusCode::kChecksumMismatch)
              << raw.status().toString();
          continue;
        }
        ++records_ok;
        ASSERT_EQ(raw->size(), loc.raw_size);
        ASSERT_EQ(Hash128::of(*raw), loc.hash);
        auto it = originals.find(loc.hash);
        if (it != originals.end()) {
          ASSERT_EQ(*raw, it->second);
        }
        std::vector<uint8_t> into(loc.raw_size);
        ASSERT_TRUE(view->readRecordInto(i, into).isOk());
        ASSERT_EQ(into, *raw);
      }
    }

    // A client holding the original extents reads each record's range from
    // the damaged bytes, clipped to what exists, without any chunk header.
    for (size_t i = 0; i < chunk.records.size(); ++i) {
      const RecordLocation& loc = chunk.records[i];
      if (loc.offset > bytes.size()) continue;
      size_t n = std::min<size_t>(loc.stored_size, bytes.size() - loc.offset);
      auto range = bytes.subspan(loc.offset, n);
      auto raw = decodeRecord(range, loc.codec, loc.raw_size, loc.hash);
      const bool untouched = n == loc.stored_size && std::equal(range.begin(), range.end(),
                                                                chunk.bytes.begin() + loc.offset);
      if (raw.isOk()) {
        ASSERT_EQ(*raw, sample.raws[i]);
      } else {
        ASSERT_FALSE(untouched) << raw.status().toString();
      }
    }
  }
  EXPECT_GE(parsed + rejected, 10000);
  // The mutations reached both sides of every check.
  EXPECT_GT(parsed, 1000);
  EXPECT_GT(rejected, 1000);
  EXPECT_GT(resealed_parsed, 100);
  EXPECT_GT(records_ok, 1000);
  EXPECT_GT(records_bad, 100);
  std::printf("mutations %d: parsed %d (resealed %d), rejected %d; records ok %d, bad %d\n",
              kMutations, parsed, resealed_parsed, rejected, records_ok, records_bad);
}

}  // namespace
}  // namespace sluice
