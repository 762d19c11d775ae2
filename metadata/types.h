// Store-level types of the metadata server: what MetaStore takes and returns.
// Free of wire (FlatBuffers) types; metadata/meta_service.cc converts.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/codec/hash128.h"
#include "common/core/status.h"

namespace sluice::meta {

enum class NodeState : uint8_t { kUp = 0, kDraining = 1, kDown = 2, kRemoved = 3 };
const char* nodeStateName(NodeState s);

struct NodeRecord {
  uint64_t id = 0;
  std::string address;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t chunk_count = 0;
  uint64_t error_count = 0;
  NodeState state = NodeState::kUp;
  int64_t last_heartbeat_ms = 0;
  // `sluice node drain` was asked and not undone: a draining node that goes
  // down and returns is draining again, not up.
  bool drain_requested = false;
};

struct NodeUsage {
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t chunk_count = 0;
  uint64_t error_count = 0;
};

// A replica of one stripe changing nodes: `to` receives the stripe's chunks
// from `source` (a live replica), then takes `from`'s place in the map.
struct StripeMove {
  uint32_t stripe = 0;
  uint64_t from = 0;
  uint64_t to = 0;
  uint64_t source = 0;
  int64_t created_ms = 0;
  uint64_t rate_bytes_per_sec = 0;  // 0: the mover's default
};

struct RebalanceNode {
  uint64_t id = 0;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t slots_before = 0;  // data slots held
  uint64_t slots_after = 0;
};

struct RebalancePlan {
  std::vector<StripeMove> moves;
  std::vector<RebalanceNode> nodes;
  uint64_t bytes_to_copy = 0;  // estimated: the source's bytes per data slot
};

struct TombstonePrune {
  uint64_t pruned = 0;        // tombstones deleted
  uint64_t pruned_epoch = 0;  // drafts begun before this gc epoch are refused AddFiles
};

// A node that may hold chunks of a stripe it no longer needs (it was moved
// off or down the stripe's list).
struct StripeCleanup {
  uint64_t node = 0;
  uint32_t stripe = 0;
};

struct ClusterMap {
  Hash128 cluster_id;
  uint64_t epoch = 0;
  uint32_t stripe_count = 0;
  uint32_t max_replicas = 0;
  // stripe_count * max_replicas ids; stripe s owns [s*max_replicas, (s+1)*max_replicas),
  // 0 = empty slot, empty slots trail.
  std::vector<uint64_t> replicas;
  std::vector<NodeRecord> nodes;

  // Stripe `stripe`'s max_replicas slots in `replicas`.
  std::span<const uint64_t> slots(uint32_t stripe) const {
    return {replicas.data() + size_t{stripe} * max_replicas, max_replicas};
  }
};

enum class Codec : uint8_t { kNone = 0, kZstd = 1 };
enum class CompressionPolicy : uint8_t { kAuto = 0, kNone = 1 };
enum class VersionState : uint8_t { kDraft = 0, kCommitted = 1, kAborted = 2 };
enum class EntryType : uint8_t { kFile = 0, kDirectory = 1, kSymlink = 2 };

struct Extent {
  uint64_t file_offset = 0;
  Hash128 record;
  Hash128 chunk;
  uint32_t raw_length = 0;
  uint32_t chunk_offset = 0;
  uint32_t stored_length = 0;
  uint8_t codec = 0;
  friend bool operator==(const Extent&, const Extent&) = default;
};

// One entry of a draft. kFile: size and extents (append continues a file
// already in the draft). kDirectory: an explicit directory, kept even when
// empty, with its own mode and mtime; size 0, no extents, not append.
// kSymlink: symlink_target is kept verbatim and never resolved; size is the
// target's length, no extents, not append.
struct FileSpec {
  std::string path;
  uint64_t size = 0;
  uint32_t mode = 0644;
  int64_t mtime_ns = 0;
  std::vector<Extent> extents;
  bool append = false;
  EntryType type = EntryType::kFile;
  std::string symlink_target;
};

struct DatasetOptions {
  uint8_t replication = 0;  // 0: cluster default
  uint32_t chunk_size = 0;  // 0: kDefaultChunkSize
  CompressionPolicy compression = CompressionPolicy::kAuto;
};

struct DatasetInfo {
  std::string name;
  uint64_t id = 0;
  uint8_t replication = 0;
  uint32_t chunk_size = 0;
  CompressionPolicy compression = CompressionPolicy::kAuto;
  int64_t created_ms = 0;
  uint32_t next_version = 1;
  uint32_t version_count = 0;
  uint32_t tag_count = 0;
};

struct VersionInfo {
  std::string dataset;
  uint64_t dataset_id = 0;  // never reused (see meta.fbs VersionInfo)
  uint32_t version = 0;
  VersionState state = VersionState::kDraft;
  int64_t created_ms = 0;
  int64_t modified_ms = 0;
  int64_t committed_ms = 0;
  uint64_t file_count = 0;
  uint64_t logical_bytes = 0;
  uint64_t stored_bytes = 0;
  std::string message;
  std::vector<std::string> tags;
};

// Counts regular files only (directories and symlinks are not files).
struct AddFilesResult {
  uint64_t file_count = 0;
  uint64_t logical_bytes = 0;
  uint64_t stored_bytes = 0;
};

struct Entry {
  std::string path;  // full path, or the name in readDir results
  EntryType type = EntryType::kFile;
  uint64_t size = 0;
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  uint32_t extent_count = 0;
  std::string symlink_target;  // kSymlink only
};

struct FileExtents {
  uint64_t size = 0;
  uint32_t total = 0;            // extents of the file
  std::vector<Extent> extents;   // the requested window
};

enum class ChangeKind : uint8_t { kAdded = 0, kRemoved = 1, kChanged = 2 };
struct DiffEntry {
  std::string path;
  ChangeKind kind = ChangeKind::kAdded;
  uint64_t old_size = 0;
  uint64_t new_size = 0;
};

struct RecordLocation {
  bool found = false;
  Hash128 chunk;
  uint32_t chunk_offset = 0;
  uint32_t stored_length = 0;
  uint32_t raw_length = 0;
  uint8_t codec = 0;
};

struct GarbageChunk {
  Hash128 chunk;
  uint32_t stripe = 0;
};

// One version (draft or committed) that uses a chunk, and the paths of its
// files with records in the chunk (at most the asked number; more_paths
// when others, or possibly others, use it too). `dataset` is empty when the
// dataset was deleted while the version's data was still being released.
struct ChunkUser {
  Hash128 chunk;
  std::string dataset;
  uint64_t dataset_id = 0;
  uint32_t version = 0;
  VersionState state = VersionState::kCommitted;
  std::vector<std::string> paths;
  bool more_paths = false;
};
struct ChunkUsers {
  std::vector<ChunkUser> users;  // by chunk in the asked order, then dataset id and version
  // The asked chunks [0, answered) are answered: one of them with no user
  // here is used by no version. Ask again for the rest.
  size_t answered = 0;
  // Something was left out: paths (more_paths says where), or users of the
  // one chunk whose users alone outgrew the answer (it has some, so it is
  // in use).
  bool truncated = false;
};

struct IdleDraftSweep {
  std::vector<VersionInfo> aborted;
  std::vector<Status> failed;  // each names its draft
};

struct TagInfo {
  std::string name;
  uint32_t version = 0;
};

// One page of a paged listing; next_cursor empty = no more.
template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_cursor;
};

}  // namespace sluice::meta
