// Builders for local source trees used by client tests: deterministic
// content, and helpers to compare a tree with what a version holds.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace sluice::testing {

// Deterministic bytes: incompressible when `compressible` is false,
// otherwise text-like with a ratio around 3-5x.
inline std::string makeContent(size_t size, uint64_t seed, bool compressible = false) {
  std::string out(size, '\0');
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + 1);
  if (!compressible) {
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      uint64_t v = rng();
      std::memcpy(out.data() + i, &v, 8);
    }
    for (; i < size; ++i) out[i] = static_cast<char>(rng());
    return out;
  }
  static const char* kWords[] = {"sample", "label", "tensor", "batch", "epoch", "shard",
                                 "image", "token", "weight", "loss", "0.125", "cat", "dog"};
  size_t i = 0;
  while (i < size) {
    const char* w = kWords[rng() % 13];
    for (const char* p = w; *p && i < size; ++p) out[i++] = *p;
    if (i < size) out[i++] = (rng() % 8 == 0) ? '\n' : ' ';
  }
  return out;
}

inline void writeFile(const std::filesystem::path& path, const std::string& content) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

inline std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every regular file below root, as paths relative to it, sorted.
inline std::vector<std::string> listFiles(const std::filesystem::path& root) {
  std::vector<std::string> out;
  for (auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && !e.is_symlink()) {
      out.push_back(std::filesystem::relative(e.path(), root).string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace sluice::testing
