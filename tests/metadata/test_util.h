// Helpers for metadata tests: temp dirs and synthetic files.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "metadata/types.h"

namespace sluice::meta::testing {

// A fresh directory under $TMPDIR, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-meta-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A file of `records` records of `record_size` bytes each. Record hashes
// derive from (seed, index); all records live in chunk `chunk` back to back.
inline FileSpec makeFile(std::string path, uint64_t seed, uint32_t records = 1,
                         uint32_t record_size = 1000, Hash128 chunk = Hash128{0, 0}) {
  FileSpec f;
  f.path = std::move(path);
  f.mode = 0644;
  f.mtime_ns = 1'700'000'000'000'000'000;
  if (chunk.isZero()) chunk = Hash128{seed * 7919 + 1, seed};
  for (uint32_t i = 0; i < records; ++i) {
    Extent e;
    e.file_offset = uint64_t{i} * record_size;
    e.record = Hash128{seed, i + 1};
    e.chunk = chunk;
    e.raw_length = record_size;
    e.stored_length = record_size;
    e.chunk_offset = i * record_size;
    e.codec = 0;
    f.extents.push_back(e);
  }
  f.size = uint64_t{records} * record_size;
  return f;
}

}  // namespace sluice::meta::testing
