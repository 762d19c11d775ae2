// SluiceFs: the mounted namespace (see inode_table.h for its shape) and the
// read path, in terms of inodes and byte ranges. fuse_ops.cc adapts it to
// libfuse's low-level API; nothing here depends on libfuse.
//
// Committed versions are immutable, so their entries, attributes and
// listings are cached for a long time (in this process and, through the
// timeouts returned, in the kernel); the dataset level (datasets, versions
// and tags come and go) is re-asked after a second; while meta cannot be
// reached, its last answers there stand in (LastAnswers), so what the mount
// has resolved keeps being served. A version is immutable
// only within one incarnation of its dataset: a dataset deleted and created
// again has a new id, which is part of the identity of every inode below
// it, so nothing cached for the old one answers for the new one.
//
// Reads go through one DatasetReader per version, behind a record cache in
// memory and, optionally, the node-local disk cache shared with the prefetch
// library. A handle read sequentially gets readahead: the next records are
// fetched, from several nodes at once, before the kernel asks for them.
//
// Thread safety: all methods may be called concurrently (libfuse's
// multithreaded loop).
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "client/cluster.h"
#include "client/local_cache.h"
#include "client/memory_record_cache.h"
#include "client/reader.h"
#include "common/core/result.h"
#include "fuse/dir_cache.h"
#include "fuse/inode_table.h"
#include "fuse/last_answers.h"

namespace sluice::fuse {

struct FsOptions {
  std::chrono::seconds immutable_timeout{24 * 3600};
  std::chrono::milliseconds mutable_timeout{1000};
  uint64_t readahead_bytes = 16ull << 20;
  uint64_t memory_cache_bytes = 256ull << 20;
  size_t dir_cache_entries = 4u << 20;
  std::string cache_dir;  // empty: no disk cache
  uint64_t cache_bytes = 0;
};

struct EntryReply {
  Ino ino = 0;  // 0: the name does not exist (cache the absence for `timeout`)
  struct stat attr {};
  double timeout = 0;
};

class OpenFile;

struct FsStats {
  uint64_t reads = 0, read_bytes = 0, read_errors = 0, lookups = 0, opens = 0;
  uint64_t records_fetched = 0, bytes_fetched = 0, cache_hits = 0, failovers = 0;
  uint64_t readahead_bytes = 0;
  uint64_t memory_cache_bytes = 0;
  double read_p50_s = 0, read_p90_s = 0, read_p99_s = 0;
  std::optional<client::LocalCacheStats> local_cache;
  size_t inodes = 0;
};

class SluiceFs {
 public:
  static Result<std::unique_ptr<SluiceFs>> create(client::Cluster& cluster, FsOptions options);
  ~SluiceFs();

  Result<EntryReply> lookup(Ino parent, const std::string& name);
  void forget(Ino ino, uint64_t n) { inodes_.forget(ino, n); }
  Result<std::pair<struct stat, double>> getattr(Ino ino);
  Result<std::string> readlink(Ino ino);
  // The directory holding directory `ino`, for its ".." entry: the root for
  // the root, `ino` itself when the parent is no longer known.
  Ino parentOf(Ino ino) const;
  // True when the listing of directory `ino` never changes (a version's
  // directories), so the kernel may keep it across opens; the root and
  // dataset directories must be listed afresh.
  bool listingNeverChanges(Ino ino) const;

  // The children of a directory, not yet known to the kernel; entry()
  // turns one into a reply that holds one lookup (readdirplus).
  Result<std::vector<DirItem>> listDir(Ino ino);
  EntryReply entry(const Node& node);
  // Drops a lookup entry() took that was not handed to the kernel.
  void unref(Ino ino) { inodes_.forget(ino, 1); }

  // kPermissionDenied (EROFS) for any write access.
  Result<OpenFile*> open(Ino ino, int flags);
  Result<size_t> read(OpenFile* file, uint64_t offset, std::span<uint8_t> out);
  void release(OpenFile* file);
  // True for a file generated at open (statistics): no page cache for it.
  static bool isGenerated(const OpenFile* file);

  FsStats stats() const;
  std::string statsJson() const;

 private:
  SluiceFs(client::Cluster& cluster, FsOptions options);
  Result<std::shared_ptr<client::DatasetReader>> readerFor(const Node& node);
  Result<std::shared_ptr<const DirListing>> listingOf(const Node& dir);
  Node directoryNode(NodeKind kind, const std::string& dataset, uint64_t dataset_id,
                     uint32_t version, int64_t mtime_ns) const;
  Node datasetNode(const wire::meta::DatasetInfoT& info) const;
  Node versionNode(const wire::meta::VersionInfoT& info) const;
  Node tagNode(const std::string& dataset, uint64_t dataset_id, const std::string& tag,
               uint32_t version) const;
  Node entryNode(const Node& parent, const DirEntry& e) const;
  Node controlNode(NodeKind kind) const;
  double timeoutOf(NodeKind kind) const;
  void startReadahead(OpenFile* file, uint64_t begin, uint64_t end);
  // A file's extents, from the cache or fetched with its siblings'.
  Result<std::shared_ptr<const client::FileInfo>> fileInfo(const Node& file,
                                                           client::DatasetReader& reader);
  // Lookups of dataset and version names ask meta each time their short
  // entry timeout ends. `answered` keeps what meta said; `unanswered` gives
  // the last answer when meta cannot be reached, so a job keeps opening the
  // files of its version while meta is down, and fails names never seen.
  Result<EntryReply> answered(const Node& parent, const std::string& name, const Node& node);
  Result<EntryReply> unanswered(const Node& parent, const std::string& name,
                                const Status& failure);
  // Meta's last answer for `name`, without asking meta, when a call to it
  // has just failed (LastAnswers::metaJustFailed); else nothing.
  std::optional<EntryReply> heldAnswer(const Node& parent, const std::string& name);
  // A last answer as a reply, held by the kernel for a while.
  EntryReply standIn(const Node& last);
  // The root's datasets or a dataset's versions and tags, from meta.
  Result<std::vector<DirItem>> metaListing(const Node& dir);
  // Meta's last listing of `dir`, standing in when `failure` says meta
  // could not be reached; that failure when there is none.
  Result<std::vector<DirItem>> lastListing(const Node& dir, const Status& failure);
  // "/" or "/<dataset>", for messages.
  static std::string pathOf(const Node& dir);

  client::Cluster& cluster_;
  const FsOptions options_;
  const uid_t uid_;
  const gid_t gid_;
  const int64_t mount_time_ns_;  // times of the root, control files and tags
  InodeTable inodes_;
  DirCache dirs_;
  client::MemoryRecordCache memory_cache_;
  std::unique_ptr<client::LocalCache> local_cache_;
  std::unique_ptr<client::TieredCache> tiered_;
  client::RecordCache* cache_ = nullptr;

  mutable std::mutex readers_mu_;
  // (dataset, dataset id, version) -> its reader.
  std::map<std::tuple<std::string, uint64_t, uint32_t>, std::shared_ptr<client::DatasetReader>>
      readers_;

  static constexpr uint64_t kReadaheadStep = 4ull << 20;
  static constexpr size_t kFileInfoBatch = 256;
  static constexpr size_t kMaxCachedFileInfos = 1u << 20;
  std::mutex files_mu_;
  // "dataset\0dataset id\0version\0path" -> extents; immutable, dropped wholesale when full.
  std::unordered_map<std::string, std::shared_ptr<const client::FileInfo>> files_;

  static constexpr double kUnreachableEntryTimeout = 10.0;  // seconds
  LastAnswers last_;

  std::atomic<uint64_t> readahead_bytes_{0};
  std::atomic<uint64_t> opens_{0};
};

}  // namespace sluice::fuse
