#include "metadata/lmdb_env.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/core/own_directory.h"

namespace sluice::meta {

Status lmdbStatus(int rc, std::string_view what) {
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  switch (rc) {
    case MDB_SUCCESS:
      return Status::ok();
    case MDB_NOTFOUND:
      return notFound(std::move(msg));
    case MDB_KEYEXIST:
      return alreadyExists(std::move(msg));
    case MDB_MAP_FULL:
      return Status(StatusCode::kNoSpace,
                    std::move(msg) + " (raise the metadata map size, --map-size)");
    case ENOSPC:
      return Status(StatusCode::kNoSpace, std::move(msg));
    case MDB_READERS_FULL:
      return Status(StatusCode::kBusy, std::move(msg));
    case EIO:
      return ioError(std::move(msg));
    case EACCES:
    case EPERM:
      return Status(StatusCode::kPermissionDenied, std::move(msg));
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
      return corruption(std::move(msg));
    default:
      return internalError(std::move(msg));
  }
}

namespace {
constexpr const char* kDbNames[] = {"meta",     "nodes",          "datasets",    "versions",
                                    "tags",     "dirents",        "records",     "version_chunks",
                                    "chunk_users", "garbage", "moves", "cleanups", "tombstones"};
static_assert(std::size(kDbNames) == static_cast<size_t>(Db::kCount));
}  // namespace

Result<std::unique_ptr<LmdbEnv>> LmdbEnv::open(const LmdbOptions& options) {
  if (options.dir.empty()) return invalidArgument("metadata directory: empty path");
  SLUICE_RETURN_IF_ERROR(
      checkOwnDirectory(options.dir, "sluice-meta", "data.mdb", {"lock.mdb", kOwnerLockFile}));
  if (::mkdir(options.dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return errnoStatus(errno, "creating metadata directory " + options.dir);
  }
  std::unique_ptr<LmdbEnv> env(new LmdbEnv());
  env->dir_ = options.dir;
  // LMDB lets many processes share an environment; two metadata servers on
  // one directory would each mark the other's nodes down and plan repairs.
  // The lock is held for the environment's life (the kernel drops it when
  // the process dies).
  const std::string lock_path = options.dir + "/" + kOwnerLockFile;
  env->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (env->lock_fd_ < 0) return errnoStatus(errno, "opening " + lock_path);
  if (::flock(env->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return failedPrecondition("metadata directory " + options.dir +
                              " is in use by another running sluice-meta; stop it, or give this one "
                              "another --data_dir");
  }
  int rc = mdb_env_create(&env->env_);
  if (rc != 0) return lmdbStatus(rc, "mdb_env_create");
  rc = mdb_env_set_maxdbs(env->env_, static_cast<MDB_dbi>(Db::kCount) + 2);
  if (rc == 0) rc = mdb_env_set_mapsize(env->env_, options.map_size);
  if (rc == 0) rc = mdb_env_set_maxreaders(env->env_, options.max_readers);
  if (rc != 0) return lmdbStatus(rc, "configuring LMDB environment");
  // MDB_NOTLS: read transactions may be opened on handler pool threads and
  // are not pinned to thread-local reader slots. Durable commits (no NOSYNC).
  unsigned flags = MDB_NOTLS | (options.write_map ? MDB_WRITEMAP : 0u);
  rc = mdb_env_open(env->env_, options.dir.c_str(), flags, 0640);
  if (rc != 0) return lmdbStatus(rc, "opening LMDB environment in " + options.dir);
  // Clear reader slots left by a process that died holding a read txn.
  int dead = 0;
  mdb_reader_check(env->env_, &dead);

  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env->env_, nullptr, 0, &txn);
  if (rc != 0) return lmdbStatus(rc, "opening databases");
  for (int i = 0; i < static_cast<int>(Db::kCount); ++i) {
    rc = mdb_dbi_open(txn, kDbNames[i], MDB_CREATE, &env->dbis_[i]);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return lmdbStatus(rc, std::string("opening database ") + kDbNames[i]);
    }
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) return lmdbStatus(rc, "creating databases");
  return env;
}

LmdbEnv::~LmdbEnv() {
  for (MDB_txn* txn : read_pool_) mdb_txn_abort(txn);
  if (env_ != nullptr) mdb_env_close(env_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

namespace {
constexpr size_t kMaxPooledReaders = 64;
}  // namespace

Result<MDB_txn*> LmdbEnv::acquireRead() const {
  MDB_txn* txn = nullptr;
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!read_pool_.empty()) {
      txn = read_pool_.back();
      read_pool_.pop_back();
    }
  }
  if (txn != nullptr) {
    int rc = mdb_txn_renew(txn);
    if (rc == 0) return txn;
    mdb_txn_abort(txn);
    txn = nullptr;
  }
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return lmdbStatus(rc, "beginning read transaction");
  return txn;
}

void LmdbEnv::releaseRead(MDB_txn* txn) const {
  mdb_txn_reset(txn);
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (read_pool_.size() < kMaxPooledReaders) {
      read_pool_.push_back(txn);
      return;
    }
  }
  mdb_txn_abort(txn);
}

Result<Txn> Txn::beginRead(const LmdbEnv& env) {
  SLUICE_ASSIGN_OR_RETURN(MDB_txn * txn, env.acquireRead());
  return Txn(&env, txn, true);
}

Result<Txn> Txn::beginWrite(const LmdbEnv& env) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env.env(), nullptr, 0, &txn);
  if (rc != 0) return lmdbStatus(rc, "beginning write transaction");
  return Txn(&env, txn, false);
}

Txn::Txn(Txn&& other) noexcept : env_(other.env_), txn_(other.txn_), read_only_(other.read_only_) {
  other.txn_ = nullptr;
}

Txn::~Txn() { abort(); }

void Txn::abort() {
  if (txn_ == nullptr) return;
  if (read_only_) {
    env_->releaseRead(txn_);
  } else {
    mdb_txn_abort(txn_);
  }
  txn_ = nullptr;
}

Status Txn::commit() {
  if (txn_ == nullptr) return internalError("commit of a closed transaction");
  int rc = mdb_txn_commit(txn_);
  txn_ = nullptr;  // mdb_txn_commit frees the txn even on failure
  return lmdbStatus(rc, "committing metadata transaction");
}

Result<std::string_view> Txn::get(Db db, std::string_view key) const {
  MDB_val k = toVal(key), v{};
  int rc = mdb_get(txn_, env_->dbi(db), &k, &v);
  if (rc != 0) return lmdbStatus(rc, "get");
  return fromVal(v);
}

Result<std::optional<std::string_view>> Txn::find(Db db, std::string_view key) const {
  MDB_val k = toVal(key), v{};
  int rc = mdb_get(txn_, env_->dbi(db), &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string_view>();
  if (rc != 0) return lmdbStatus(rc, "get");
  return std::optional<std::string_view>(fromVal(v));
}

Status Txn::put(Db db, std::string_view key, std::string_view value, unsigned flags) {
  MDB_val k = toVal(key), v = toVal(value);
  int rc = mdb_put(txn_, env_->dbi(db), &k, &v, flags);
  return rc == 0 ? Status::ok() : lmdbStatus(rc, "put");
}

Status Txn::insert(Db db, std::string_view key, std::string_view value, bool* inserted,
                   std::string_view* existing) {
  MDB_val k = toVal(key), v = toVal(value);
  int rc = mdb_put(txn_, env_->dbi(db), &k, &v, MDB_NOOVERWRITE);
  if (rc == MDB_KEYEXIST) {
    *inserted = false;
    if (existing != nullptr) *existing = fromVal(v);  // LMDB returns the existing value
    return Status::ok();
  }
  if (rc != 0) return lmdbStatus(rc, "insert");
  *inserted = true;
  return Status::ok();
}

Status Txn::del(Db db, std::string_view key, bool* removed) {
  MDB_val k = toVal(key);
  int rc = mdb_del(txn_, env_->dbi(db), &k, nullptr);
  if (removed != nullptr) *removed = (rc == 0);
  if (rc == 0 || rc == MDB_NOTFOUND) return Status::ok();
  return lmdbStatus(rc, "delete");
}

Result<uint64_t> Txn::delPrefix(Db db, std::string_view prefix) {
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(*this, db));
  uint64_t n = 0;
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(prefix));
  while (ok && startsWith(c.key(), prefix)) {
    SLUICE_RETURN_IF_ERROR(c.del());
    ++n;
    // After mdb_cursor_del the cursor is flagged deleted and MDB_NEXT
    // yields the entry that followed the deleted one.
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return n;
}

Result<uint64_t> Txn::count(Db db) const {
  MDB_stat st{};
  int rc = mdb_stat(txn_, env_->dbi(db), &st);
  if (rc != 0) return lmdbStatus(rc, "mdb_stat");
  return static_cast<uint64_t>(st.ms_entries);
}

Result<Cursor> Cursor::open(const Txn& txn, Db db) {
  MDB_cursor* c = nullptr;
  int rc = mdb_cursor_open(txn.raw(), txn.env().dbi(db), &c);
  if (rc != 0) return lmdbStatus(rc, "opening cursor");
  return Cursor(c);
}

Cursor::~Cursor() {
  if (c_ != nullptr) mdb_cursor_close(c_);
}

Result<bool> Cursor::step(MDB_cursor_op op) {
  int rc = mdb_cursor_get(c_, &k_, &v_, op);
  if (rc == MDB_NOTFOUND) {
    k_ = v_ = MDB_val{};
    return false;
  }
  if (rc != 0) return lmdbStatus(rc, "cursor");
  return true;
}

Result<bool> Cursor::seek(std::string_view key) {
  if (key.empty()) return first();
  k_ = toVal(key);
  return step(MDB_SET_RANGE);
}

Result<bool> Cursor::first() { return step(MDB_FIRST); }
Result<bool> Cursor::next() { return step(MDB_NEXT); }

Status Cursor::del() {
  int rc = mdb_cursor_del(c_, 0);
  return rc == 0 ? Status::ok() : lmdbStatus(rc, "cursor delete");
}

}  // namespace sluice::meta
