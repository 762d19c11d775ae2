#include "client/local_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "client/uring_write.h"

namespace sluice::client {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kBlock = 4096;
uint64_t blocksOf(uint64_t bytes) { return (bytes + kBlock - 1) / kBlock * kBlock; }

enum : uint8_t { kWriting = 0, kReady = 1 };

#pragma pack(push, 1)
struct EntryValue {
  uint64_t bytes;  // accounted (block-rounded)
  uint64_t rank;
  uint32_t raw_length;
  uint32_t owner_pid;
  uint8_t state;
};
#pragma pack(pop)

struct HashKey {
  uint8_t b[16];
  explicit HashKey(const RecordHash& h) {
    for (int i = 0; i < 8; ++i) {
      b[i] = static_cast<uint8_t>(h.hi >> (56 - 8 * i));
      b[8 + i] = static_cast<uint8_t>(h.lo >> (56 - 8 * i));
    }
  }
  MDB_val val() { return MDB_val{sizeof b, b}; }
};

struct RankKey {
  uint8_t b[24];
  RankKey(uint64_t rank, const RecordHash& h) {
    for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(rank >> (56 - 8 * i));
    HashKey k(h);
    std::memcpy(b + 8, k.b, 16);
  }
  MDB_val val() { return MDB_val{sizeof b, b}; }
  static uint64_t rankOf(const MDB_val& v) {
    const auto* p = static_cast<const uint8_t*>(v.mv_data);
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r = (r << 8) | p[i];
    return r;
  }
  static RecordHash hashOf(const MDB_val& v) {
    const auto* p = static_cast<const uint8_t*>(v.mv_data) + 8;
    RecordHash h;
    for (int i = 0; i < 8; ++i) {
      h.hi = (h.hi << 8) | p[i];
      h.lo = (h.lo << 8) | p[8 + i];
    }
    return h;
  }
};

Status lmdbError(int rc, const std::string& what) {
  return Status(rc == MDB_MAP_FULL ? StatusCode::kNoSpace : StatusCode::kIoError,
                "cache index: " + what + ": " + mdb_strerror(rc));
}

bool processAlive(uint32_t pid) {
  return pid != 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

}  // namespace

struct LocalCache::Impl {
  MDB_env* env = nullptr;
  MDB_dbi entries = 0, by_rank = 0, meta = 0;
  uint32_t pid = static_cast<uint32_t>(::getpid());

  ~Impl() {
    if (env != nullptr) mdb_env_close(env);
  }

  // A write transaction aborted unless committed.
  struct WriteTxn {
    MDB_txn* txn = nullptr;
    explicit WriteTxn(MDB_env* env) {
      if (mdb_txn_begin(env, nullptr, 0, &txn) != 0) txn = nullptr;
    }
    ~WriteTxn() {
      if (txn != nullptr) mdb_txn_abort(txn);
    }
    int commit() {
      int rc = mdb_txn_commit(txn);
      txn = nullptr;
      return rc;
    }
  };

  uint64_t getCounter(MDB_txn* txn, const char* name) {
    MDB_val k{std::strlen(name), const_cast<char*>(name)}, v;
    uint64_t out = 0;
    if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == sizeof out) std::memcpy(&out, v.mv_data, sizeof out);
    return out;
  }
  int putCounter(MDB_txn* txn, const char* name, uint64_t value) {
    MDB_val k{std::strlen(name), const_cast<char*>(name)}, v{sizeof value, &value};
    return mdb_put(txn, meta, &k, &v, 0);
  }
  std::optional<EntryValue> getEntry(MDB_txn* txn, const RecordHash& record) {
    HashKey key(record);
    MDB_val k = key.val(), v;
    if (mdb_get(txn, entries, &k, &v) != 0 || v.mv_size != sizeof(EntryValue)) return std::nullopt;
    EntryValue e;
    std::memcpy(&e, v.mv_data, sizeof e);
    return e;
  }
  int putEntry(MDB_txn* txn, const RecordHash& record, const EntryValue& e) {
    HashKey key(record);
    MDB_val k = key.val(), v{sizeof e, const_cast<EntryValue*>(&e)};
    int rc = mdb_put(txn, entries, &k, &v, 0);
    if (rc != 0) return rc;
    RankKey rk(e.rank, record);
    MDB_val r = rk.val(), empty{0, nullptr};
    return mdb_put(txn, by_rank, &r, &empty, 0);
  }
  int delEntry(MDB_txn* txn, const RecordHash& record, const EntryValue& e) {
    HashKey key(record);
    MDB_val k = key.val();
    int rc = mdb_del(txn, entries, &k, nullptr);
    if (rc != 0) return rc;
    RankKey rk(e.rank, record);
    MDB_val r = rk.val();
    rc = mdb_del(txn, by_rank, &r, nullptr);
    return rc == MDB_NOTFOUND ? 0 : rc;
  }
};

LocalCache::LocalCache(std::string dir, std::unique_ptr<Impl> impl)
    : dir_(std::move(dir)), impl_(std::move(impl)) {}

LocalCache::~LocalCache() = default;

uint64_t LocalCache::recencyRank() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Result<std::unique_ptr<LocalCache>> LocalCache::open(const std::string& dir, uint64_t budget_bytes) {
  if (dir.empty()) return invalidArgument("cache directory: empty path");
  std::error_code ec;
  for (const char* sub : {"index", "records", "tmp"}) {
    fs::create_directories(fs::path(dir) / sub, ec);
    if (ec) return ioError("cache directory " + dir + ": cannot create " + sub + ": " + ec.message());
  }
  // LMDB maps its lock file (the reader table) and writes through the map: on
  // a full file system the first touch of a page it could not get is a
  // SIGBUS, not an error. So its pages are allocated here first, where a
  // full disk is an error to report.
  constexpr unsigned kMaxReaders = 1024;
  {
    const std::string lock = dir + "/index/lock.mdb";
    int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return errnoStatus(errno, "cache directory " + dir + ": opening " + lock);
    int err = ::posix_fallocate(fd, 0, off_t{kMaxReaders} * 64 + (64 << 10));
    ::close(fd);
    if (err != 0) {
      return Status(err == ENOSPC ? StatusCode::kNoSpace : StatusCode::kIoError,
                    "cache directory " + dir + ": cannot set up its index (" + std::strerror(err) +
                        "): free space there, or give another --cache-dir");
    }
  }
  auto impl = std::make_unique<Impl>();
  int rc = mdb_env_create(&impl->env);
  if (rc != 0) return lmdbError(rc, "create");
  mdb_env_set_maxdbs(impl->env, 4);
  mdb_env_set_maxreaders(impl->env, kMaxReaders);
  mdb_env_set_mapsize(impl->env, 4ull << 30);
  // MDB_NOSYNC: the index must survive a process crash (it does: commits are
  // in the page cache), not a power cut; after one the files are verified
  // on every read anyway.
  rc = mdb_env_open(impl->env, (dir + "/index").c_str(), MDB_NOTLS | MDB_NOSYNC, 0644);
  if (rc != 0) return lmdbError(rc, "open " + dir + "/index");
  int dead = 0;
  mdb_reader_check(impl->env, &dead);
  {
    Impl::WriteTxn txn(impl->env);
    if (txn.txn == nullptr) return lmdbError(EIO, "begin");
    if ((rc = mdb_dbi_open(txn.txn, "entries", MDB_CREATE, &impl->entries)) != 0 ||
        (rc = mdb_dbi_open(txn.txn, "by_rank", MDB_CREATE, &impl->by_rank)) != 0 ||
        (rc = mdb_dbi_open(txn.txn, "meta", MDB_CREATE, &impl->meta)) != 0 ||
        (rc = impl->putCounter(txn.txn, "budget", budget_bytes)) != 0 ||
        (rc = txn.commit()) != 0) {
      return lmdbError(rc, "open databases");
    }
  }
  // Half-written records of processes that died.
  for (const auto& f : fs::directory_iterator(fs::path(dir) / "tmp", ec)) {
    std::string name = f.path().filename().string();
    size_t dot = name.find('.');
    uint32_t pid = dot == std::string::npos ? 0 : static_cast<uint32_t>(std::atoi(name.c_str() + dot + 1));
    if (!processAlive(pid)) fs::remove(f.path(), ec);
  }
  return std::unique_ptr<LocalCache>(new LocalCache(dir, std::move(impl)));
}

std::string LocalCache::recordPath(const RecordHash& record) const {
  std::string hex = record.toHex();
  return dir_ + "/records/" + hex.substr(0, 2) + "/" + hex;
}

void LocalCache::drop(const RecordHash& record) {
  Impl::WriteTxn txn(impl_->env);
  if (txn.txn == nullptr) return;
  auto e = impl_->getEntry(txn.txn, record);
  if (!e || e->state != kReady) return;
  if (impl_->delEntry(txn.txn, record, *e) != 0) return;
  uint64_t used = impl_->getCounter(txn.txn, "used");
  impl_->putCounter(txn.txn, "used", used >= e->bytes ? used - e->bytes : 0);
  if (txn.commit() != 0) return;
  ::unlink(recordPath(record).c_str());
}

bool LocalCache::read(const RecordHash& record, uint32_t raw_length, uint64_t offset,
                      std::span<uint8_t> out) {
  if (offset > raw_length || out.size() > raw_length - offset) return false;
  std::optional<EntryValue> e;
  {
    MDB_txn* txn = nullptr;
    if (mdb_txn_begin(impl_->env, nullptr, MDB_RDONLY, &txn) != 0) return false;
    e = impl_->getEntry(txn, record);
    mdb_txn_abort(txn);
  }
  if (!e || e->state != kReady || e->raw_length != raw_length) {
    misses_++;
    return false;
  }
  // Read the whole record: it is verified before any of it is served.
  std::vector<uint8_t> whole;
  std::span<uint8_t> buf = out;
  if (offset != 0 || out.size() != raw_length) {
    whole.resize(raw_length);
    buf = whole;
  }
  int fd = ::open(recordPath(record).c_str(), O_RDONLY | O_CLOEXEC);
  bool ok = false;
  if (fd >= 0) {
    size_t got = 0;
    while (got < raw_length) {
      ssize_t n = ::pread(fd, buf.data() + got, raw_length - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    uint8_t extra;
    ok = got == raw_length && ::pread(fd, &extra, 1, raw_length) == 0 &&
         Hash128::of(buf.data(), raw_length) == record;
    ::close(fd);
  }
  if (!ok) {
    dropped_++;
    misses_++;
    drop(record);
    return false;
  }
  if (!whole.empty()) std::memcpy(out.data(), whole.data() + offset, out.size());
  hits_++;
  // Recency is coarse (a second) so hot records do not cost a write each.
  uint64_t now = recencyRank();
  if (now > e->rank + 1000000000ull) setRank(record, now);
  return true;
}

void LocalCache::insert(const RecordHash& record, std::span<const uint8_t> raw) {
  (void)put(record, raw, recencyRank());
}

Result<bool> LocalCache::put(const RecordHash& record, std::span<const uint8_t> raw, uint64_t rank) {
  const uint64_t need = blocksOf(raw.size());
  std::vector<RecordHash> evicted;
  {
    Impl::WriteTxn txn(impl_->env);
    if (txn.txn == nullptr) return lmdbError(EIO, "begin");
    const uint64_t budget = impl_->getCounter(txn.txn, "budget");
    if (need > budget || raw.empty()) return false;
    if (auto existing = impl_->getEntry(txn.txn, record)) {
      if (existing->state == kReady || processAlive(existing->owner_pid)) return false;
      // Left "writing" by a process that died: take it over.
      int rc = impl_->delEntry(txn.txn, record, *existing);
      if (rc != 0) return lmdbError(rc, "reclaim");
      uint64_t used = impl_->getCounter(txn.txn, "used");
      impl_->putCounter(txn.txn, "used", used >= existing->bytes ? used - existing->bytes : 0);
    }
    uint64_t used = impl_->getCounter(txn.txn, "used");
    if (used + need > budget) {
      MDB_cursor* cur = nullptr;
      int rc = mdb_cursor_open(txn.txn, impl_->by_rank, &cur);
      if (rc != 0) return lmdbError(rc, "cursor");
      MDB_val k, v;
      for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && used + need > budget;
           rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 24) continue;
        // Only what is wanted less than the newcomer makes room for it: a
        // record needed later than everything cached is not cached at all
        // (what an optimal, future-knowing cache does).
        if (RankKey::rankOf(k) >= rank) break;
        RecordHash victim = RankKey::hashOf(k);
        auto e = impl_->getEntry(txn.txn, victim);
        if (!e) {
          mdb_cursor_del(cur, 0);
          continue;
        }
        if (e->state != kReady && processAlive(e->owner_pid)) continue;
        HashKey hk(victim);
        MDB_val ek = hk.val();
        if (mdb_del(txn.txn, impl_->entries, &ek, nullptr) != 0 || mdb_cursor_del(cur, 0) != 0) break;
        used = used >= e->bytes ? used - e->bytes : 0;
        if (e->state == kReady) evicted.push_back(victim);
      }
      mdb_cursor_close(cur);
      if (used + need > budget) return false;
    }
    EntryValue e{need, rank, static_cast<uint32_t>(raw.size()), impl_->pid, kWriting};
    int rc = impl_->putEntry(txn.txn, record, e);
    if (rc == 0) rc = impl_->putCounter(txn.txn, "used", used + need);
    // Victims leave the disk before their bytes are handed to this record,
    // so the files never add up to more than the budget. Should the commit
    // fail, their entries point at missing files: reads drop them.
    for (const auto& victim : evicted) ::unlink(recordPath(victim).c_str());
    if (rc == 0) rc = txn.commit();
    if (rc != 0) return lmdbError(rc, "reserve");
  }
  evictions_ += evicted.size();

  // Write to tmp/, then rename into place: a reader never sees a partial file.
  std::string hex = record.toHex();
  std::string tmp = dir_ + "/tmp/" + hex + "." + std::to_string(impl_->pid) + "." +
                    std::to_string(tmp_seq_.fetch_add(1));
  std::string final_path = recordPath(record);
  bool written = false;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    written = writeAll(fd, raw, tmp).isOk();
    written = ::close(fd) == 0 && written;
  }
  if (written) {
    ::mkdir((dir_ + "/records/" + hex.substr(0, 2)).c_str(), 0755);
    written = ::rename(tmp.c_str(), final_path.c_str()) == 0;
  }
  if (!written) ::unlink(tmp.c_str());

  Impl::WriteTxn txn(impl_->env);
  if (txn.txn == nullptr) return lmdbError(EIO, "begin");
  auto e = impl_->getEntry(txn.txn, record);
  if (!e || e->owner_pid != impl_->pid || e->state != kWriting) return written;
  int rc = 0;
  if (written) {
    e->state = kReady;
    rc = impl_->putEntry(txn.txn, record, *e);
  } else {
    rc = impl_->delEntry(txn.txn, record, *e);
    uint64_t used = impl_->getCounter(txn.txn, "used");
    if (rc == 0) rc = impl_->putCounter(txn.txn, "used", used >= e->bytes ? used - e->bytes : 0);
  }
  if (rc == 0) rc = txn.commit();
  if (rc != 0) return lmdbError(rc, "finish");
  if (!written) return ioError("cache " + dir_ + ": cannot write record " + hex + ": " + std::strerror(errno));
  inserts_++;
  return true;
}

bool LocalCache::setRank(const RecordHash& record, uint64_t rank) {
  const std::pair<RecordHash, uint64_t> one{record, rank};
  return setRanks({&one, 1}) == 1;
}

size_t LocalCache::setRanks(std::span<const std::pair<RecordHash, uint64_t>> ranks) {
  Impl::WriteTxn txn(impl_->env);
  if (txn.txn == nullptr) return 0;
  size_t changed = 0;
  for (const auto& [record, rank] : ranks) {
    auto e = impl_->getEntry(txn.txn, record);
    if (!e) continue;
    changed++;
    if (e->rank == rank) continue;
    RankKey old(e->rank, record);
    MDB_val ok = old.val();
    mdb_del(txn.txn, impl_->by_rank, &ok, nullptr);
    e->rank = rank;
    if (impl_->putEntry(txn.txn, record, *e) != 0) return 0;
  }
  return txn.commit() == 0 ? changed : 0;
}

bool LocalCache::contains(const RecordHash& record) {
  MDB_txn* txn = nullptr;
  if (mdb_txn_begin(impl_->env, nullptr, MDB_RDONLY, &txn) != 0) return false;
  auto e = impl_->getEntry(txn, record);
  mdb_txn_abort(txn);
  return e && e->state == kReady;
}

LocalCacheStats LocalCache::stats() const {
  LocalCacheStats s;
  MDB_txn* txn = nullptr;
  if (mdb_txn_begin(impl_->env, nullptr, MDB_RDONLY, &txn) == 0) {
    s.budget_bytes = impl_->getCounter(txn, "budget");
    s.used_bytes = impl_->getCounter(txn, "used");
    MDB_stat st{};
    if (mdb_stat(txn, impl_->entries, &st) == 0) s.entries = st.ms_entries;
    mdb_txn_abort(txn);
  }
  s.hits = hits_;
  s.misses = misses_;
  s.inserts = inserts_;
  s.evictions = evictions_;
  s.dropped_corrupt = dropped_;
  return s;
}

}  // namespace sluice::client
