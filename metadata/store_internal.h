// Helpers shared by the MetaStore translation units. Not part of the API.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/core/result.h"
#include "metadata/encoding.h"
#include "metadata/lmdb_env.h"
#include "metadata/types.h"

namespace sluice::meta {
struct ClusterParams;
}  // namespace sluice::meta

namespace sluice::meta::internal {

// Keys of the meta database.
inline constexpr std::string_view kKeyClusterId = "cluster_id";
inline constexpr std::string_view kKeyEpoch = "epoch";
inline constexpr std::string_view kKeyStripeCount = "stripe_count";
inline constexpr std::string_view kKeyMaxReplicas = "max_replicas";
inline constexpr std::string_view kKeyDefaultReplication = "default_replication";
inline constexpr std::string_view kKeyNextNodeId = "next_node_id";
inline constexpr std::string_view kKeyNextDatasetId = "next_dataset_id";
inline constexpr std::string_view kKeyStripeMap = "stripe_map";
inline constexpr std::string_view kKeyFormat = "format";
// gc epoch: advanced by each collect or claim that tombstones chunks; each
// tombstone and each draft records the epoch it was made in. Tombstones of
// epochs up to the pruned epoch are gone (see MetaStore::pruneTombstones).
// The gc epoch starts at 1 (set on open where absent); drafts made before
// it existed read as epoch 0, tombstones as epoch 1. pruned_epoch absent: 0.
inline constexpr std::string_view kKeyGcEpoch = "gc_epoch";
inline constexpr std::string_view kKeyPrunedEpoch = "pruned_epoch";

Result<uint64_t> getU64(const Txn& txn, std::string_view key);

// The stripe map (stripe_count * max_replicas node ids) and the nodes.
std::string encodeMap(const std::vector<uint64_t>& replicas);
Result<std::vector<uint64_t>> loadMap(const Txn& txn, const ClusterParams& p);
Result<std::vector<NodeRecord>> loadNodes(const Txn& txn);
// How many leading slots of a stripe hold data: the largest replication of
// any dataset.
Result<uint32_t> dataSlots(const Txn& txn);
// Forgets the pending moves away from `node` (a drain called off), queueing
// a cleanup of each one's partial copy on its target, as dropMove does.
// Returns how many were dropped.
Result<uint64_t> dropMovesFrom(Txn& txn, uint64_t node);
Status putU64(Txn& txn, std::string_view key, uint64_t v);
// getU64 for a key that may be absent (0 then).
Result<uint64_t> getU64Or0(const Txn& txn, std::string_view key);
// Advances the stored gc epoch and returns the value for the tombstones made
// in it (when, in wall ms, and the new epoch). Call once per transaction
// that tombstones chunks, and only if it does.
Result<std::string> nextTombstoneStamp(Txn& txn, int64_t now_ms);
struct Tombstone {
  int64_t ms = 0;
  uint64_t epoch = 1;  // 1 for tombstones made before epochs existed (8-byte values)
};
Tombstone decodeTombstone(std::string_view v);

struct DatasetHandle {
  std::string name;
  DatasetRecord rec;
};
Result<DatasetHandle> loadDataset(const Txn& txn, std::string_view name);
// Every dataset's name by its id (one pass over the datasets: there are few).
Result<std::map<uint64_t, std::string>> datasetNamesById(const Txn& txn);

struct VersionHandle {
  uint32_t number = 0;
  VersionRecord rec;
};
// Resolves "v<n>" or a tag. kNotFound naming what is missing.
Result<VersionHandle> resolveRef(const Txn& txn, const DatasetHandle& ds, std::string_view ref);
Result<VersionHandle> loadVersion(const Txn& txn, const DatasetHandle& ds, uint32_t version);
// Like resolveRef but refuses drafts and aborted versions.
Result<VersionHandle> resolveCommitted(const Txn& txn, const DatasetHandle& ds,
                                       std::string_view ref);

VersionInfo toVersionInfo(const DatasetHandle& ds, const VersionHandle& v);
Result<std::vector<std::string>> tagsOf(const Txn& txn, uint64_t dataset_id, uint32_t version);

// True if any version (draft or committed) references the chunk.
Result<bool> chunkIsLive(const Txn& txn, const Hash128& chunk);
// Deletes a version's namespace and chunk references; chunks left without
// users move to the garbage db stamped `now_ms`.
Status releaseVersionData(Txn& txn, uint64_t dataset_id, uint32_t version, int64_t now_ms);

// Walks the path's directories. Found entries fill *out; kNotFound names the
// path; the root ("") is a directory with kRootDirId.
Result<DecodedEntry> walkPath(const Txn& txn, uint64_t dataset_id, uint32_t version,
                              std::string_view path);

Entry toEntry(std::string path, const DecodedEntry& e, int64_t dir_mtime_ns);

// Every entry of one version (files, symlinks, and directories, each
// directory before what it holds) in depth-first, by-name order, which is
// comparePaths order. Implicit directories are returned too (explicit_dir
// false); callers filter. Uses one cursor per open directory level.
class TreeWalker {
 public:
  TreeWalker(const Txn& txn, uint64_t dataset_id, uint32_t version)
      : txn_(txn), dataset_id_(dataset_id), version_(version) {}
  // Positions so next() returns the first entry ordered after `path`
  // (empty: the first entry).
  Status seekAfter(std::string_view path);
  // The next entry; false at the end. `entry` views point into the
  // transaction's snapshot and stay valid while it is open.
  Result<bool> next(std::string* path, DecodedEntry* entry);

 private:
  struct Frame {
    uint64_t dir_id;
    std::string path;  // "" or "a/b/" (with trailing slash)
    std::string prefix;
    std::string resume_after;
    bool positioned = false;
    std::unique_ptr<Cursor> cursor;
  };
  Status push(uint64_t dir_id, std::string path, std::string resume_after);
  const Txn& txn_;
  uint64_t dataset_id_;
  uint32_t version_;
  std::vector<Frame> stack_;
};

// Component-wise path order (the walker's order): negative, 0, positive.
int comparePaths(std::string_view a, std::string_view b);

}  // namespace sluice::meta::internal
