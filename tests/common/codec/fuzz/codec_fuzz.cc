// libFuzzer target for the chunk parser and the record decoder.
//
// The first input byte picks a mode:
//   0  the rest is a chunk: parse it, decode every record it accepts;
//   1  the same, after rewriting the chunk size and table checksum to match,
//      so the fuzzer reaches the checks behind the checksum;
//   2  the rest is one stored record (codec byte, raw size, hash, bytes) for
//      decodeRecord / decodeRecordInto, as a client fetching one range would;
//   3  the rest describes records to build into a valid chunk, then bytes to
//      damage it with; every record that still decodes must equal its
//      original.
// Any crash, sanitizer report or broken invariant (__builtin_trap) is a bug.
//
// Build: CC=clang CXX=clang++ cmake -S . -B build-fuzz -DSLUICE_FUZZ=ON
//        cmake --build build-fuzz --target codec_fuzz
// Run:   build-fuzz/tests/common/codec/fuzz/codec_fuzz -max_total_time=60 -rss_limit_mb=512
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include "common/codec/chunk_builder.h"
#include "common/codec/chunk_format.h"
#include "common/codec/chunk_view.h"
#include "common/codec/record_codec.h"

namespace {

using namespace sluice;
namespace cf = chunk_format;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// Parses `bytes` and decodes every record; checks what is accepted.
void parseAndDecode(std::span<const uint8_t> bytes,
                    const std::map<Hash128, std::vector<uint8_t>>* originals) {
  auto view = ChunkView::parse(bytes, Hash128{1, 2});
  if (!view.isOk()) return;
  uint64_t end = cf::kHeaderSize + uint64_t{view->recordCount()} * cf::kEntrySize;
  check(end <= bytes.size());
  for (uint32_t i = 0; i < view->recordCount(); ++i) {
    RecordLocation loc = view->record(i);
    check(loc.offset >= end && uint64_t{loc.offset} + loc.stored_size <= bytes.size());
    end = uint64_t{loc.offset} + loc.stored_size;
    auto raw = view->readRecord(i);
    if (!raw.isOk()) continue;
    check(raw->size() == loc.raw_size && Hash128::of(*raw) == loc.hash);
    if (originals) {
      auto it = originals->find(loc.hash);
      if (it != originals->end()) check(*raw == it->second);
    }
  }
  check(end == bytes.size());
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

void fuzzLoneRecord(const uint8_t* data, size_t size) {
  if (size < 21) return;
  Codec codec = static_cast<Codec>(data[0] % 3);  // includes one unknown codec
  // Keep raw sizes modest so each run is fast; the cap itself is unit-tested.
  uint32_t raw_size = cf::load32(data + 1) % (2u << 20);
  Hash128 hash{cf::load64(data + 5), cf::load64(data + 13)};
  // Exact-size heap copy so ASan sees any over-read.
  std::vector<uint8_t> stored(data + 21, data + size);
  stored.shrink_to_fit();
  auto raw = decodeRecord(stored, codec, raw_size, hash);
  if (raw.isOk()) check(raw->size() == raw_size && Hash128::of(*raw) == hash);
  std::vector<uint8_t> out(raw_size);
  Status s = decodeRecordInto(stored, codec, raw_size, hash, out);
  check(s.isOk() == raw.isOk());
  // The decoder is also the verifier: feed it the hash of whatever the
  // stored bytes decode to, when they decode at all.
  if (codec == Codec::kRaw && stored.size() == raw_size) {
    check(decodeRecord(stored, codec, raw_size, Hash128::of(stored)).isOk());
  }
}

void fuzzBuiltChunk(const uint8_t* data, size_t size) {
  if (size < 2) return;
  size_t records = 1 + data[0] % 8;
  size_t at = 1;
  ChunkBuilder builder(kMinChunkSize * 4);
  std::map<Hash128, std::vector<uint8_t>> originals;
  for (size_t r = 0; r < records && at < size; ++r) {
    size_t n = std::min<size_t>(data[at] * 16u, size - at - 1);
    std::vector<uint8_t> raw(data + at + 1, data + at + 1 + n);
    at += 1 + n;
    if (r % 2 == 1) {  // stretch some records so zstd keeps them
      std::vector<uint8_t> rep;
      for (int k = 0; k < 8; ++k) rep.insert(rep.end(), raw.begin(), raw.end());
      raw = std::move(rep);
    }
    auto enc = encodeRecord(raw, {.zstd_level = 1 + static_cast<int>(r % 4)});
    check(enc.isOk());
    if (!builder.fits(enc->stored.size())) break;
    check(builder.add(*enc).isOk());
    originals[enc->hash] = std::move(raw);
  }
  if (builder.empty()) return;
  auto built = builder.finish();
  check(built.isOk());
  std::vector<uint8_t> b = built->bytes;
  // Round trip first: every record of the untouched chunk decodes.
  {
    auto view = ChunkView::parse(b);
    check(view.isOk() && view->verifyRecords().isOk());
  }
  // Then damage: each remaining 3-byte group (position, position, value)
  // overwrites one byte; a last odd byte truncates or reseals.
  bool do_reseal = false;
  for (; at + 3 <= size; at += 3) {
    size_t pos = (size_t{data[at]} << 8 | data[at + 1]) % b.size();
    b[pos] = data[at + 2];
  }
  if (at < size) {
    if (data[at] & 1) b.resize(b.size() - std::min<size_t>(b.size(), data[at] >> 1));
    do_reseal = data[at] & 2;
  }
  if (do_reseal) reseal(b);
  b.shrink_to_fit();
  parseAndDecode(b, &originals);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 4;
  ++data;
  --size;
  switch (mode) {
    case 0: {
      std::vector<uint8_t> b(data, data + size);
      parseAndDecode(b, nullptr);
      break;
    }
    case 1: {
      std::vector<uint8_t> b(data, data + size);
      reseal(b);
      parseAndDecode(b, nullptr);
      break;
    }
    case 2:
      fuzzLoneRecord(data, size);
      break;
    case 3:
      fuzzBuiltChunk(data, size);
      break;
  }
  return 0;
}
