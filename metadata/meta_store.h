// MetaStore: the metadata server's logic on LMDB: nodes and the stripe map,
// datasets, versions, tags, namespaces of committed versions, the record
// index and chunk references. Knows nothing of the wire (MetaService adapts).
//
// Durability and atomicity: every mutation is exactly one LMDB write
// transaction, durable when the call returns OK; on any error the
// transaction is aborted and nothing of the call is visible. Commit of a
// version is a single-record state flip, so a crash at any point leaves the
// version either fully committed or still a draft.
//
// Thread safety: all methods may be called concurrently from any thread.
// Writers serialize on LMDB's writer lock; readers run on snapshots and never
// wait for a writer.
//
// Errors: kInvalidArgument naming the field for bad input; kNotFound for a
// missing dataset/version/tag/path/node; kFailedPrecondition for an operation
// the object's state refuses (commit of an aborted draft, reading a draft,
// deleting a tagged version without force); kAlreadyExists for duplicates.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/core/result.h"
#include "common/core/clock.h"
#include "metadata/lmdb_env.h"
#include "metadata/types.h"

namespace sluice::meta {

namespace internal {
struct DatasetHandle;
struct VersionHandle;
}  // namespace internal

struct MetaStoreOptions {
  LmdbOptions lmdb;
  // Used only when the directory holds no cluster yet; afterwards the stored
  // values win (stripe count is fixed at creation).
  uint32_t stripe_count = 256;
  uint32_t max_replicas = 3;
  uint8_t default_replication = 3;
  int64_t heartbeat_timeout_ms = 10'000;
  int64_t draft_grace_ms = 24 * 3600 * 1000;  // gc default: drafts idle longer are garbage
  Clock* clock = nullptr;  // null: Clock::real(); must outlive the store
};

struct ClusterParams {
  Hash128 cluster_id;
  uint32_t stripe_count = 0;
  uint32_t max_replicas = 0;
  uint8_t default_replication = 0;
};

struct HeartbeatResult {
  uint64_t map_epoch = 0;
  NodeState state = NodeState::kUp;
};

struct RegisterResult {
  Hash128 cluster_id;
  uint64_t node_id = 0;
  uint64_t map_epoch = 0;
};

struct LookupResult {
  bool found = false;
  Entry entry;
  std::vector<Extent> extents;
  bool extents_complete = false;
};

class MetaStore {
 public:
  // Opens (creating if needed) the cluster in options.lmdb.dir.
  static Result<std::unique_ptr<MetaStore>> open(const MetaStoreOptions& options);
  ~MetaStore();

  const ClusterParams& params() const { return params_; }
  const MetaStoreOptions& options() const { return options_; }

  // ---- nodes and the cluster map
  // New node: node_id 0 (cluster_id zero or ours). Known node: both as
  // assigned. Marks the node up unless draining or removed (refused).
  Result<RegisterResult> registerNode(const Hash128& cluster_id, uint64_t node_id,
                                      std::string_view address, const NodeUsage& usage);
  Result<HeartbeatResult> heartbeat(const Hash128& cluster_id, uint64_t node_id,
                                    const NodeUsage& usage);
  Result<ClusterMap> clusterMap() const;
  Result<uint64_t> mapEpoch() const;
  Result<std::vector<NodeRecord>> listNodes() const;
  // Admin transitions: up, draining, removed (down is set by timeouts only).
  // Draining is refused (kFailedPrecondition) while fewer other nodes are up
  // than the largest replication: its stripes would have nowhere to go. Up
  // calls a drain off: pending moves away from the node are dropped.
  // Removed is refused while the node holds data slots.
  Result<NodeRecord> setNodeState(uint64_t node_id, NodeState state);
  // Marks up/draining nodes silent for longer than the heartbeat timeout
  // down; returns their ids. The daemon calls this periodically.
  Result<std::vector<uint64_t>> markStaleNodesDown();
  // Milliseconds since this process last heard from `node_id` (heartbeat or
  // registration); nullopt if never. For logs: why a node was marked down.
  std::optional<int64_t> silentForMs(uint64_t node_id) const;

  // ---- repair (see store_repair.cc)
  // Plans a move for every stripe that lists one of `nodes` (down past the
  // grace period) and has no pending move: a live node outside the stripe
  // takes its place, else the last live node of the list swaps with it;
  // the chunks come from a live replica. Persists and returns the new moves.
  // Of `nodes`, only those down or draining when it runs count.
  Result<std::vector<StripeMove>> planRepairs(const std::vector<uint64_t>& nodes);
  Result<std::vector<StripeMove>> listMoves() const;
  // Moves that even out the data slots (the first R of each stripe, R the
  // largest replication) over the up nodes in proportion to capacity,
  // moving as few as possible. Persisted when `apply`; stripes with a
  // pending move are left alone.
  Result<RebalancePlan> planRebalance(bool apply, uint64_t rate_bytes_per_sec);
  // The copy of `move` is verified on `to`: switch the map (new epoch), drop
  // the move, and queue a cleanup of the stripe on `from`.
  Status completeMove(const StripeMove& move);
  // Forgets a move that cannot proceed (its nodes changed); planned anew.
  // Its target may hold part of the copy: a cleanup of the stripe on the
  // target is queued in the same transaction (it deletes only what the map
  // does not give the target, once the map's nodes hold it).
  Status dropMove(uint32_t stripe);
  Result<std::vector<StripeCleanup>> listCleanups() const;
  Status finishCleanup(const StripeCleanup& cleanup);
  // Queues cleanups (in one transaction; one already queued stays one).
  Status queueCleanups(const std::vector<StripeCleanup>& cleanups);
  // For each chunk, the largest replication of the datasets using it (0: no
  // version uses it, e.g. an upload in flight or garbage).
  Result<std::vector<uint32_t>> chunkReplication(const std::vector<Hash128>& chunks) const;

  // ---- datasets
  Result<DatasetInfo> createDataset(std::string_view name, const DatasetOptions& options);
  Result<Page<DatasetInfo>> listDatasets(std::string_view cursor, uint32_t limit) const;
  Result<DatasetInfo> getDataset(std::string_view name) const;
  // Deletes every version, tag and record entry; refused while tagged unless
  // force. Returns the number of versions deleted.
  Result<uint32_t> deleteDataset(std::string_view name, bool force);

  // ---- versions
  Result<VersionInfo> beginVersion(std::string_view dataset, std::string_view message);
  // Adds files, explicit directories and symlinks (FileSpec::type) to a
  // draft; the batch is all or nothing. Adding an identical entry again is a
  // no-op. A path holds one kind of entry per draft: a file, directory or
  // symlink of a path already holding another kind is kAlreadyExists, as is
  // a path below a file or symlink. Directories are created implicitly
  // (mode 0755, the commit time as mtime) by the paths below them; an
  // explicit entry gives a directory its uploaded mode and mtime whether it
  // comes before or after the paths below it. file_count and logical_bytes
  // count regular files only.
  // `dataset_id` (0: not checked) must be the id the draft was begun under:
  // kConflict if the dataset was deleted and created again since.
  Result<AddFilesResult> addFiles(std::string_view dataset, uint32_t version,
                                  std::span<const FileSpec> files, uint64_t dataset_id = 0);
  // Idempotent: committing a committed version answers its info.
  // `dataset_id` as in addFiles.
  Result<VersionInfo> commitVersion(std::string_view dataset, uint32_t version,
                                    std::string_view message, bool keep_latest,
                                    uint64_t dataset_id = 0);
  Status abortVersion(std::string_view dataset, uint32_t version);
  // Aborts every draft nothing was added to for `idle_ms` (an upload that
  // died or was given up): its chunks become garbage for gc. Each in its
  // own write transaction; one that fails is reported and the rest go on.
  Result<IdleDraftSweep> abortIdleDrafts(int64_t idle_ms);
  Result<Page<VersionInfo>> listVersions(std::string_view dataset, std::string_view cursor,
                                         uint32_t limit) const;
  Result<VersionInfo> getVersion(std::string_view dataset, std::string_view ref) const;
  // Returns the number of tags deleted with it (force).
  Result<uint32_t> deleteVersion(std::string_view dataset, uint32_t version, bool force);

  // ---- tags
  // Returns the version the tag named before (0: new tag).
  // `dataset_id` as in addFiles.
  Result<uint32_t> setTag(std::string_view dataset, std::string_view tag, uint32_t version,
                          uint64_t dataset_id = 0);
  Status deleteTag(std::string_view dataset, std::string_view tag);
  Result<VersionInfo> resolveVersion(std::string_view dataset, std::string_view ref) const;
  // Tags in name order after `after` (empty: from the first), at most
  // `limit` (0: the default page); next_cursor is the last name when more follow.
  Result<Page<TagInfo>> listTags(std::string_view dataset, std::string_view after,
                                 uint32_t limit) const;

  // ---- namespace of a committed version (ref: "v<n>" or a tag)
  Result<Entry> stat(std::string_view dataset, std::string_view ref, std::string_view path) const;
  // Entries: files (size, mode, mtime, extent count), symlinks (size = the
  // target's length, symlink_target verbatim; never followed, so a path
  // through a symlink is kNotFound) and directories (explicit: uploaded mode
  // and mtime; implicit: 0755 and the version's commit time; size 0).
  //
  // Per-path results; a missing path is found = false. Files carry up to
  // max_extents extents when with_extents.
  Result<std::vector<LookupResult>> lookup(std::string_view dataset, std::string_view ref,
                                           std::span<const std::string_view> paths,
                                           bool with_extents, uint32_t max_extents,
                                           uint32_t* resolved_version = nullptr) const;
  Result<Page<Entry>> readDir(std::string_view dataset, std::string_view ref,
                              std::string_view path, std::string_view cursor,
                              uint32_t limit) const;
  Result<FileExtents> getExtents(std::string_view dataset, std::string_view ref,
                                 std::string_view path, uint32_t first, uint32_t limit) const;
  // Files, symlinks and explicit directories (each directory before what it
  // holds) in depth-first, by-name order (the order diff uses). Implicit
  // directories are not listed: the paths below them imply them. Cursor:
  // the last path returned.
  Result<Page<Entry>> listFiles(std::string_view dataset, std::string_view ref,
                                std::string_view cursor, uint32_t limit) const;
  // Entries of `to` added, removed or changed relative to `from`, over what
  // listFiles lists: Added/Removed when listed on one side and absent on
  // the other; Changed when present on both (listed on at least one) with a
  // different type, mode, file size or record sequence, or symlink target.
  // Mtimes are ignored; an implicit directory counts as mode 0755. Sizes:
  // file size, symlink target length, 0 for directories.
  Result<Page<DiffEntry>> diff(std::string_view dataset, std::string_view from,
                               std::string_view to, std::string_view cursor,
                               uint32_t limit) const;

  // ---- record index and gc
  Result<std::vector<RecordLocation>> lookupRecords(std::string_view dataset,
                                                    std::span<const Hash128> records) const;
  // Chunks no committed version and no draft modified within grace_ms
  // (0: options().draft_grace_ms) references. Cursor: last chunk id in hex.
  Result<Page<GarbageChunk>> listGarbage(int64_t grace_ms, std::string_view cursor,
                                         uint32_t limit) const;
  // Takes up to `limit` chunks that no version references any more out of
  // the garbage list and tombstones them, in one transaction: from then on
  // an upload that names one (it looked it up before) is refused, so the
  // caller may delete them from the nodes. (Chunks held only by stale
  // drafts are collected once those drafts are removed.)
  Result<std::vector<GarbageChunk>> collectGarbage(uint32_t limit);
  // Of `chunks` (found on storage nodes), tombstones and returns those no
  // version or draft uses and the garbage list does not hold (already
  // tombstoned ones are returned too), in one transaction: an upload that
  // names one later is refused, so the caller may delete them. `dry_run`:
  // which would be claimed, nothing written.
  Result<std::vector<Hash128>> claimOrphans(std::span<const Hash128> chunks, bool dry_run = false);
  // The versions (drafts too) that use each of `chunks`, each with up to
  // `max_paths` paths of its files that have records in the chunk: what a
  // lost chunk takes with it. A chunk no version uses has no entry. Walks
  // each such version's namespace once, so it costs a listing of those
  // versions; meant for admin tools (scrub), not the data path.
  Result<ChunkUsers> chunkUsers(std::span<const Hash128> chunks, uint32_t max_paths) const;
  // Forgets tombstones older than `older_than_ms` (by whole gc epochs: all
  // of an epoch's go together, and only when all are old enough), so meta
  // does not grow by one entry per chunk ever collected. From then on
  // AddFiles refuses drafts begun in an epoch before the pruned one
  // (kConflict: run the upload again): their chunks were learned of before
  // gc collections no tombstone records any more. Run it with an age well
  // above how long a gc run takes to delete what it collected.
  Result<TombstonePrune> pruneTombstones(int64_t older_than_ms);
  // Deletes record-index entries whose chunk has no users left (its versions
  // were deleted or aborted). Lookups already skip them; without this they
  // would stay forever, one per distinct record ever indexed. Short write
  // transactions of at most 10000 deletions; returns how many went.
  Result<uint64_t> pruneRecordIndex();

 private:
  MetaStore(MetaStoreOptions options, std::unique_ptr<LmdbEnv> env);
  Status initCluster();
  Status replaceMap(Txn& txn, bool node_states_changed);
  // Releases a draft's data and marks it aborted, in `txn`.
  Status abortDraft(Txn& txn, const internal::DatasetHandle& ds, internal::VersionHandle& v);

  MetaStoreOptions options_;
  std::unique_ptr<LmdbEnv> env_;
  // Wall-clock ms (timestamps users see) and monotonic ms (liveness).
  int64_t nowMs() const;
  int64_t steadyMs() const;

  Clock* clock_;
  ClusterParams params_;

  // Monotonic time of each node's last registration/heartbeat. In memory
  // only: after a restart every node gets a full timeout to check in.
  mutable std::mutex liveness_mu_;
  std::unordered_map<uint64_t, int64_t> last_seen_;  // GUARDED_BY(liveness_mu_)
};

}  // namespace sluice::meta
