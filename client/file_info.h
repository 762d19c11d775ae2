// What a client knows about one file of a committed version.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/codec/hash128.h"
#include "common/codec/record_codec.h"

namespace sluice::client {

// Bytes [file_offset, file_offset + raw_length) of the file are the record
// `record`, stored as [chunk_offset, chunk_offset + stored_length) of `chunk`.
struct FileExtent {
  uint64_t file_offset = 0;
  uint32_t raw_length = 0;
  RecordHash record;
  ChunkId chunk;
  uint32_t chunk_offset = 0;
  uint32_t stored_length = 0;
  Codec codec = Codec::kRaw;
};

enum class FileType : uint8_t { kFile = 0, kDirectory = 1, kSymlink = 2 };

struct FileInfo {
  std::string path;
  FileType type = FileType::kFile;
  uint64_t size = 0;
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  std::string symlink_target;
  std::vector<FileExtent> extents;  // ordered by file_offset, contiguous
};

}  // namespace sluice::client
