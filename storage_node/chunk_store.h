// ChunkStore: content-addressed chunks on local disk, through io_uring.
//
// Layout under the data directory:
//   stripes/<s>/<chunk-id-hex>   chunk files (format in chunk_file.h)
//   stripes/<s>/.tmp.*           puts in flight; removed at open
//   quarantine/<chunk-id-hex>.N  chunks found corrupt; never served
//   LOCK                         flock'ed while a store has the directory open
//
// Puts are atomic and durable: temp file, write, fsync, rename, batched fsync
// of the stripe directory (DirSyncer); put() returns only after all of that.
// The inventory (id -> stripe, length) is rebuilt at open by walking the
// stripe directories with getdents64 and one fstatat per file (no opens),
// several stripes at once.
//
// The store knows nothing of the wire: bytes come from a ChunkSource and go
// to a ChunkSink, both handed spans inside the caller's IoContext buffer.
//
// Thread safety: all ChunkStore methods are safe from any thread. An
// IoContext is used by one thread at a time.
#pragma once

#include <sys/stat.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/codec/hash128.h"
#include "common/core/result.h"
#include "storage_node/dir_syncer.h"
#include "storage_node/file_io.h"
#include "storage_node/open_chunks.h"

namespace sluice::storage {

struct ChunkStoreOptions {
  std::string data_dir;
  // Refuse puts once used bytes would exceed this; 0 means the file system's size.
  uint64_t capacity_bytes = 0;
  // New chunks from clients; clamped to the format's 64 MiB. Copies between
  // nodes (repair) and chunks already stored are held to the 64 MiB only.
  uint64_t max_chunk_bytes = 64ull << 20;
  uint32_t max_stripes = 1u << 16;         // stripe numbers must be below this
  // Per-IoContext buffer: the unit of one read, write and RMA transfer.
  size_t io_buffer_bytes = 8u << 20;
  // O_DIRECT if the file system supports it (probed at open).
  bool allow_direct_io = true;
  // Chunk files kept open between reads (OpenChunks; 0: none). At most a
  // quarter of the process's open-file limit (RLIMIT_NOFILE) is used.
  size_t open_files = 4096;
  // false skips file and directory fsyncs: only for tests that populate
  // large inventories quickly. Never in a daemon.
  bool durable = true;
  std::shared_ptr<FileIo> file_io;  // null: io_uring
};

struct ChunkInfo {
  ChunkId id;
  uint32_t stripe = 0;
  uint64_t length = 0;
  // At least this old: since its put, or since the store opened for chunks
  // found on disk (gc spares young unreferenced chunks: an upload may not
  // have told meta about them yet).
  uint64_t age_ms = 0;
};

struct StripeStat {
  uint32_t stripe = 0;
  uint64_t chunks = 0;
  uint64_t bytes = 0;
};

struct StoreStats {
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;  // payload bytes of chunks in the inventory
  uint64_t chunks = 0;
  uint64_t fs_free_bytes = 0;
  uint64_t corrupt_found = 0;  // by reads and scrub since open
  uint64_t quarantined = 0;    // files in quarantine/ (including earlier runs)
  uint64_t io_errors = 0;      // failed reads/writes other than no-space
  uint64_t puts = 0;
  uint64_t gets = 0;
  uint64_t bytes_written = 0;
  uint64_t bytes_read = 0;
  uint64_t dir_fsyncs = 0;
  uint64_t temp_files_removed = 0;  // at open
  double open_seconds = 0;          // inventory rebuild time
  bool direct_io = false;
  uint64_t open_files = 0;      // chunk files kept open between reads
  uint64_t open_files_max = 0;  // how many may be (open_files after the clamp)
  uint64_t descriptor_shortages = 0;  // opens that found the process out of descriptors
};

// Fills `dst` with the chunk's bytes [offset, offset + dst.size()).
using ChunkSource = std::function<Status(uint64_t offset, std::span<uint8_t> dst)>;
// Receives the chunk's bytes [offset, offset + src.size()), in order.
using ChunkSink = std::function<Status(uint64_t offset, std::span<const uint8_t> src)>;

// One ring and its registered, 4 KiB-aligned buffer.
class IoContext {
 public:
  ~IoContext();
  IoContext(const IoContext&) = delete;
  IoContext& operator=(const IoContext&) = delete;
  uint8_t* buffer() const { return buf_; }
  size_t bufferSize() const { return size_; }
  IoQueue& queue() { return *queue_; }

 private:
  friend class ChunkStore;
  IoContext(uint8_t* buf, size_t size, std::unique_ptr<IoQueue> queue)
      : buf_(buf), size_(size), queue_(std::move(queue)) {}
  uint8_t* buf_;
  size_t size_;
  std::unique_ptr<IoQueue> queue_;
};

// A chunk found corrupt (by a whole read or scrub) and moved to quarantine/.
struct CorruptReport {
  ChunkId id;
  uint32_t stripe = 0;
  std::string why;
};

struct PutOutcome {
  bool already_present = false;
};

class ChunkStore {
 public:
  // Opens (creating if needed) the data directory, takes its lock, probes
  // O_DIRECT, removes leftover temp files and rebuilds the inventory.
  static Result<std::unique_ptr<ChunkStore>> open(ChunkStoreOptions options);
  ~ChunkStore();

  Result<std::unique_ptr<IoContext>> newContext();

  // Stores `length` bytes pulled from `source` as chunk `id` in `stripe`.
  // Verifies Hash128 of the bytes == id (kChecksumMismatch otherwise; nothing
  // is stored). Idempotent: a chunk already present returns already_present
  // without calling `source`. Errors: kInvalidArgument (stripe), kTooLarge,
  // kNoSpace (capacity or ENOSPC; no file remains), kIoError.
  // A kCopy (repair, rebalance) may exceed max_chunk_bytes: the chunk was
  // accepted elsewhere, perhaps before this node's limit was lowered.
  enum class Origin : uint8_t { kClient, kCopy };
  Result<PutOutcome> put(IoContext& ctx, const ChunkId& id, uint32_t stripe, uint64_t length,
                         const ChunkSource& source, Origin origin = Origin::kClient);

  // Streams bytes [offset, offset + length) of chunk `id` to `sink`; length 0
  // means "to the end". A read of the whole chunk verifies its hash; on a
  // mismatch the chunk is quarantined and kCorruption returned (the sink may
  // have seen bytes: the caller must discard them). Returns the byte count.
  // Errors: kNotFound, kOutOfRange, kCorruption, kIoError.
  Result<uint64_t> read(IoContext& ctx, const ChunkId& id, uint64_t offset, uint64_t length,
                        const ChunkSink& sink);
  // True when read() of [offset, offset + length) fills ctx's buffer once:
  // the spans it hands the sink then stay untouched until ctx is used again,
  // so the sink may start asynchronous transfers from them.
  static bool readsInOnePass(const IoContext& ctx, uint64_t offset, uint64_t length);

  // Re-reads and verifies one chunk (scrub). A corrupt chunk is quarantined
  // and kCorruption returned, as is one whose file vanished from the disk
  // (it leaves the inventory and is reported like a corrupt one). kNotFound
  // if it was deleted meanwhile.
  Status verify(IoContext& ctx, const ChunkId& id);

  // Removes a chunk. Returns false if it was not present.
  Result<bool> remove(const ChunkId& id);

  std::optional<ChunkInfo> find(const ChunkId& id) const;
  // Ids of `stripe` in ascending order, strictly after `after` if given, at
  // most `limit`; `more` says whether further ids exist.
  std::vector<ChunkInfo> listStripe(uint32_t stripe, const std::optional<ChunkId>& after,
                                    size_t limit, bool* more) const;
  std::vector<StripeStat> stripeStats() const;
  // Every chunk id, ascending (scrub's work list).
  std::vector<ChunkId> allIds() const;
  StoreStats stats() const;
  // The most recent corruptions (at most 64), oldest first.
  std::vector<CorruptReport> recentCorruptions() const;
  const ChunkStoreOptions& options() const { return options_; }
  bool directIo() const { return direct_; }

 private:
  struct Entry {
    uint32_t stripe;
    uint64_t length;
    int64_t stored_ms = 0;  // steadyMs() when put or found at open
  };
  struct StripeSet {
    std::set<ChunkId> ids;
    uint64_t bytes = 0;
  };

  explicit ChunkStore(ChunkStoreOptions options);
  Status init();
  Status probeDirectIo();
  Status rebuildInventory();
  Status scanStripe(uint32_t stripe, int dirfd);
  Result<int> stripeDir(uint32_t stripe, bool create);
  void insertLocked(const ChunkId& id, uint32_t stripe, uint64_t length);
  bool eraseLocked(const ChunkId& id);
  // Moves the chunk's file to quarantine/ and drops it from the inventory.
  // `found` (the corrupt file's fstat) makes it move only that file: one that
  // took its name since (the chunk fetched again from a replica) is good.
  void quarantine(const ChunkId& id, uint32_t stripe, const std::string& why,
                  const struct stat* found = nullptr);
  // `verify` (scrub, whole reads) also opens the file afresh: it checks what
  // is on disk under the chunk's name, not a file kept open.
  Result<uint64_t> readFile(IoContext& ctx, const ChunkId& id, const Entry& entry,
                            uint64_t offset, uint64_t length, bool verify, const ChunkSink& sink);
  // The kept file of `id` in `stripe`, else opens it (and keeps it unless
  // `fresh`).
  Result<OpenChunks::Handle> openChunk(const ChunkId& id, uint32_t stripe, bool fresh);
  // io_->openAt, and when the process is out of descriptors (EMFILE,
  // ENFILE: kResourceExhausted), once more after letting go of a share of
  // the kept chunk files: they are a cache, and the open is what must
  // succeed. Still out: kUnavailable, naming the limit to raise.
  Result<int> openMakingRoom(int dirfd, const std::string& name, int flags, mode_t mode);
  Status writeTemp(IoContext& ctx, int fd, const ChunkId& id, uint64_t length,
                   const ChunkSource& source);
  void noteIoError(const Status& s);

  ChunkStoreOptions options_;
  std::shared_ptr<FileIo> io_;
  std::unique_ptr<DirSyncer> syncer_;
  std::unique_ptr<OpenChunks> open_chunks_;  // after io_: its files close through it
  int root_fd_ = -1;
  int stripes_fd_ = -1;
  int quarantine_fd_ = -1;
  int lock_fd_ = -1;
  bool direct_ = false;
  uint64_t fs_size_ = 0;
  double open_seconds_ = 0;
  std::atomic<uint64_t> temps_removed_{0};  // rebuildInventory scans stripes in parallel

  mutable std::mutex mu_;
  std::unordered_map<ChunkId, Entry> chunks_;  // GUARDED_BY(mu_)
  std::map<uint32_t, StripeSet> stripes_;      // GUARDED_BY(mu_)
  std::map<uint32_t, int> stripe_fds_;         // GUARDED_BY(mu_)
  // Set when an fsync of stripes/ failed: which stripe directories it lost
  // is unknown and a later fsync may not report it again, so no new stripe
  // directory is trusted until a restart's scan and syncfs.
  Status stripes_unsynced_;                    // GUARDED_BY(mu_)
  std::mutex stripe_setup_mu_;                 // serialises first uses of stripe directories
  uint64_t used_ = 0;                          // GUARDED_BY(mu_)
  uint64_t reserved_ = 0;                      // GUARDED_BY(mu_): puts in flight
  std::deque<CorruptReport> corrupt_log_;      // GUARDED_BY(mu_)

  // Serialises put, remove and quarantine of one id (hashed into buckets), so
  // a delete racing a re-put of the same bytes cannot unlink the new file
  // while the inventory says it is present. Reads take no lock.
  std::mutex& idLock(const ChunkId& id) { return id_locks_[id.hi % id_locks_.size()]; }
  std::array<std::mutex, 256> id_locks_;

  std::atomic<uint64_t> sheds_{0};                 // openMakingRoom's, so far
  std::atomic<int64_t> last_shed_warning_ms_{-1000000};  // steadyMs(); one warning per 10 s
  std::atomic<uint64_t> temp_seq_{0};
  std::atomic<uint64_t> quarantine_seq_{0};
  std::atomic<uint64_t> corrupt_found_{0};
  std::atomic<uint64_t> quarantined_{0};
  std::atomic<uint64_t> io_errors_{0};
  std::atomic<uint64_t> puts_{0};
  std::atomic<uint64_t> gets_{0};
  std::atomic<uint64_t> bytes_written_{0};
  std::atomic<uint64_t> bytes_read_{0};
};

}  // namespace sluice::storage
