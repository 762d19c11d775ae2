// Deterministic record contents for codec tests.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace sluice::testing {

// Random bytes: zstd cannot shrink them.
inline std::vector<uint8_t> randomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    for (int b = 0; b < 8; ++b) out[i + b] = static_cast<uint8_t>(v >> (8 * b));
  }
  for (; i < n; ++i) out[i] = static_cast<uint8_t>(rng());
  return out;
}

// Text-like bytes with a small vocabulary: compresses well, but not to
// nothing (a word order drawn from `seed`).
inline std::vector<uint8_t> compressibleBytes(size_t n, uint64_t seed) {
  static const char* kWords[] = {"sluice ", "chunk ", "record ", "stripe ", "tensor ",
                                 "epoch ",  "batch ", "gpu ",    "node ",   "replica\n"};
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out;
  out.reserve(n + 16);
  while (out.size() < n) {
    const char* w = kWords[rng() % 10];
    out.insert(out.end(), w, w + std::char_traits<char>::length(w));
  }
  out.resize(n);
  return out;
}

}  // namespace sluice::testing
