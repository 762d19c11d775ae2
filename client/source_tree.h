// SourceTree: the local directory a steward uploads, walked once.
//
// The walk never follows symlinks (a link is uploaded as a link, its target
// kept verbatim), keeps empty directories, and skips special files (devices,
// sockets, FIFOs) with a warning. Paths are relative to the root, '/'-joined,
// built only from directory entry names, so none can contain "..", "." or an
// empty component. Entries come in pre-order (a directory before its
// contents, siblings by name), so the same tree always uploads in the same
// order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/core/result.h"

namespace sluice::client {

enum class EntryType : uint8_t { kFile = 0, kDirectory = 1, kSymlink = 2 };

struct SourceEntry {
  std::string path;            // relative to the root, e.g. "images/0001.jpg"
  EntryType type = EntryType::kFile;
  uint64_t size = 0;           // bytes, for files; 0 otherwise
  uint32_t mode = 0;           // permission bits (07777)
  int64_t mtime_ns = 0;        // modification time, ns since the epoch
  std::string symlink_target;  // for symlinks
};

struct SourceTree {
  std::string root;                   // absolute path of the walked directory
  std::vector<SourceEntry> entries;   // pre-order, siblings by name
  std::vector<std::string> warnings;  // e.g. "skipping FIFO 'a/pipe'"
  uint64_t file_count = 0;
  uint64_t total_bytes = 0;           // sum of file sizes
};

// Walks `root`. Errors: kNotFound / kInvalidArgument when root is missing or
// not a directory; kIoError (naming the path) when a directory or entry
// cannot be read. Paths longer than kMaxPathBytes are refused by name.
Result<SourceTree> walkSourceTree(const std::string& root);

inline constexpr size_t kMaxPathBytes = 4096;

}  // namespace sluice::client
