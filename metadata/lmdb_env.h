// LmdbEnv: the metadata server's LMDB environment, its named databases and
// RAII transactions.
//
// Contracts:
// - Every LMDB return code becomes a Status in one place (lmdbStatus).
// - A WriteTxn that is not committed is aborted by its destructor, so an
//   error return anywhere inside a mutation leaves nothing half-written.
// - Readers never wait: a ReadTxn sees the last committed snapshot while one
//   writer works (MVCC). The env is opened with MDB_NOTLS so read
//   transactions are not tied to a thread slot, and never with MDB_NOSYNC:
//   a committed write transaction is on disk.
//
// Thread safety: LmdbEnv is shared by all threads. A transaction (and its
// cursors) belongs to the thread that created it for its whole life.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>
#include <string>
#include <string_view>

#include "common/core/result.h"
#include "common/core/status.h"

namespace sluice::meta {

// Translates an LMDB/errno return code: MDB_NOTFOUND -> kNotFound,
// MDB_MAP_FULL / ENOSPC -> kNoSpace, MDB_KEYEXIST -> kAlreadyExists,
// MDB_READERS_FULL -> kBusy, EIO -> kIoError, others -> kInternal.
Status lmdbStatus(int rc, std::string_view what);

// The named databases. Key and value layouts are in metadata/codec.h.
enum class Db : int {
  kMeta = 0,      // cluster-wide singletons (cluster id, epoch, stripe map, counters)
  kNodes,         // node id -> node record
  kDatasets,      // dataset name -> dataset record
  kVersions,      // (dataset id, version) -> version record
  kTags,          // (dataset id, tag) -> version
  kDirents,       // (dataset id, version, parent dir id, name) -> file or dir entry
  kRecords,       // (dataset id, record hash) -> record location
  kVersionChunks, // (dataset id, version, chunk id) -> ""
  kChunkUsers,    // (chunk id, dataset id, version) -> ""
  kGarbage,       // chunk id -> time it lost its last user (ms)
  kMoves,         // stripe -> the pending move of one of its replicas (repair)
  kCleanups,      // (node id, stripe) -> "": chunks the node may no longer need there
  kTombstones,    // chunk id -> time gc collected it (ms): never referenced again
  kCount,
};

inline MDB_val toVal(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
inline std::string_view fromVal(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

struct LmdbOptions {
  std::string dir;
  uint64_t map_size = 64ull << 30;  // sparse; the file grows with use
  unsigned max_readers = 512;
  // MDB_WRITEMAP: dirty pages are written in place through the map instead
  // of copied with pwrite (~15-20% faster batch adds). Still durable (msync
  // at commit) and crash-safe, but the data file is extended sparsely to
  // map_size, and a full disk then kills the process with SIGBUS instead
  // of failing the transaction with kNoSpace. Off by default.
  bool write_map = false;
};

class Txn;

class LmdbEnv {
 public:
  static Result<std::unique_ptr<LmdbEnv>> open(const LmdbOptions& options);
  ~LmdbEnv();
  LmdbEnv(const LmdbEnv&) = delete;
  LmdbEnv& operator=(const LmdbEnv&) = delete;

  MDB_env* env() const { return env_; }

  // Read transactions are pooled: a finished reader is reset (releasing its
  // snapshot) and renewed by the next beginRead on any thread, which skips
  // taking a reader slot under LMDB's mutex each time.
  Result<MDB_txn*> acquireRead() const;
  void releaseRead(MDB_txn* txn) const;
  MDB_dbi dbi(Db db) const { return dbis_[static_cast<int>(db)]; }
  const std::string& dir() const { return dir_; }

 private:
  LmdbEnv() = default;
  static constexpr const char* kOwnerLockFile = "sluice-meta.lock";
  MDB_env* env_ = nullptr;
  int lock_fd_ = -1;  // flock'ed: one sluice-meta per directory
  MDB_dbi dbis_[static_cast<int>(Db::kCount)] = {};
  std::string dir_;
  mutable std::mutex pool_mu_;
  mutable std::vector<MDB_txn*> read_pool_;  // GUARDED_BY(pool_mu_); reset txns
};

// A read or write transaction. get/put/del translate codes to Status;
// kNotFound from get() is an ordinary answer, check it with isNotFound().
class Txn {
 public:
  static Result<Txn> beginRead(const LmdbEnv& env);
  static Result<Txn> beginWrite(const LmdbEnv& env);
  Txn(Txn&& other) noexcept;
  Txn& operator=(Txn&&) = delete;
  ~Txn();  // aborts if still open

  // Makes a write transaction durable; the Txn is closed either way.
  Status commit();
  void abort();

  // The value for `key`, valid until the transaction ends or the key is
  // written. kNotFound if absent.
  Result<std::string_view> get(Db db, std::string_view key) const;
  // Like get, but absent is an empty optional rather than an error.
  Result<std::optional<std::string_view>> find(Db db, std::string_view key) const;
  Status put(Db db, std::string_view key, std::string_view value, unsigned flags = 0);
  // put with MDB_NOOVERWRITE: *inserted=false (and *existing set) if present.
  Status insert(Db db, std::string_view key, std::string_view value, bool* inserted,
                std::string_view* existing = nullptr);
  // Removes `key`; absent is not an error (*removed says which).
  Status del(Db db, std::string_view key, bool* removed = nullptr);
  // Removes every key starting with `prefix`; returns how many.
  Result<uint64_t> delPrefix(Db db, std::string_view prefix);
  // Entries in db.
  Result<uint64_t> count(Db db) const;

  MDB_txn* raw() const { return txn_; }
  const LmdbEnv& env() const { return *env_; }

 private:
  Txn(const LmdbEnv* env, MDB_txn* txn, bool read_only)
      : env_(env), txn_(txn), read_only_(read_only) {}
  const LmdbEnv* env_;
  MDB_txn* txn_;
  bool read_only_;
};

// A cursor over one database of a transaction, for prefix and range scans.
class Cursor {
 public:
  static Result<Cursor> open(const Txn& txn, Db db);
  Cursor(Cursor&& other) noexcept : c_(other.c_) { other.c_ = nullptr; }
  Cursor& operator=(Cursor&&) = delete;
  ~Cursor();

  // Positions at the first key >= `key`; false at the end.
  Result<bool> seek(std::string_view key);
  // Positions at the first key; false if empty.
  Result<bool> first();
  Result<bool> next();
  // Deletes the current entry (write transactions).
  Status del();
  std::string_view key() const { return fromVal(k_); }
  std::string_view value() const { return fromVal(v_); }

 private:
  explicit Cursor(MDB_cursor* c) : c_(c) {}
  Result<bool> step(MDB_cursor_op op);
  MDB_cursor* c_;
  MDB_val k_{}, v_{};
};

inline bool startsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && std::memcmp(s.data(), prefix.data(), prefix.size()) == 0;
}

}  // namespace sluice::meta
