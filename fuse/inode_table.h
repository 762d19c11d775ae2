// InodeTable: the inode numbers the kernel knows, what each one names, and
// how many lookups the kernel holds on it.
//
// The mount shows   /                        the cluster (datasets)
//                   /.sluice/stats           the mount's statistics
//                   /<dataset>/              versions and tags
//                   /<dataset>/v<N>/         a committed version's root
//                   /<dataset>/<tag>         a symlink to v<N>, re-resolved
//                   /<dataset>/v<N>/<path>   files, directories, symlinks
//
// An inode lives while the kernel holds lookups on it (FUSE's lookup count:
// +1 for each entry replied, -n on forget). The same name always gets the
// same inode while it lives, so hard-link-free trees look stable to `find`
// and `tar`. A dataset deleted and created again under its old name is a
// different dataset: its id is part of every name below the root, so the
// kernel, seeing a new inode for the dataset's directory, drops what it
// cached beneath the old one.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "client/file_info.h"

namespace sluice::fuse {

using Ino = uint64_t;
inline constexpr Ino kRootIno = 1;

enum class NodeKind : uint8_t { kRoot, kControlDir, kStatsFile, kDataset, kTag, kVersion, kEntry };

struct Node {
  NodeKind kind = NodeKind::kRoot;
  std::string dataset;
  uint64_t dataset_id = 0;  // meta's id of `dataset`, never reused (0: an older meta)
  uint32_t version = 0;  // kVersion, kEntry
  std::string name;      // kTag: the tag; kEntry: the path inside the version
  struct stat attr {};   // st_ino filled in by the table
  std::string symlink_target;
};

// A directory's child: its name and what it is.
struct DirItem {
  std::string name;
  Node node;
};

class InodeTable {
 public:
  // The root directory's times are `root_mtime` (the mount's start).
  explicit InodeTable(struct timespec root_mtime = {});

  // The inode for `node` (by kind, dataset, version and name), created if
  // new; adds `lookups` to its count. Returns the inode and its node as
  // stored (attributes of an existing inode are kept).
  std::pair<Ino, std::shared_ptr<Node>> acquire(Node node, uint64_t lookups);
  std::shared_ptr<Node> get(Ino ino) const;
  // The live inode of `node` (by kind, dataset, version and name), or 0.
  Ino find(const Node& node) const;
  // The kernel dropped `n` lookups; the inode is freed when none remain.
  void forget(Ino ino, uint64_t n);
  // A file's extents, fetched on first open and kept while the inode lives.
  void setFile(Ino ino, std::shared_ptr<const client::FileInfo> file);
  std::shared_ptr<const client::FileInfo> file(Ino ino) const;
  size_t size() const;
  // What `node` is (kind, dataset, dataset id, version, name), whatever
  // inode it has or had: the key of its inode, and of what is kept about it
  // past the inode's life.
  static std::string identityOf(const Node& node);

 private:
  struct Slot {
    std::shared_ptr<Node> node;
    uint64_t lookups = 0;
    std::string key;
    std::shared_ptr<const client::FileInfo> file;
  };

  mutable std::mutex mu_;
  Ino next_ = kRootIno + 1;
  std::unordered_map<Ino, Slot> by_ino_;         // GUARDED_BY(mu_)
  std::unordered_map<std::string, Ino> by_key_;  // GUARDED_BY(mu_)
};

}  // namespace sluice::fuse
