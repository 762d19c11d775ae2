#include "storage_node/chunk_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "common/core/own_directory.h"
#include "storage_node/chunk_file.h"

namespace sluice::storage {
namespace {

constexpr size_t kAlign = 4096;
constexpr uint64_t kHardMaxChunk = 64ull << 20;
constexpr const char* kTempPrefix = ".tmp.";
constexpr size_t kScanThreads = 8;  // stripes scanned at once by rebuildInventory

uint64_t alignDown(uint64_t v) { return v & ~static_cast<uint64_t>(kAlign - 1); }
uint64_t alignUp(uint64_t v) { return alignDown(v + kAlign - 1); }

struct XxhStateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};
using XxhState = std::unique_ptr<XXH3_state_t, XxhStateDeleter>;
XxhState newHashState() {
  XxhState s(XXH3_createState());
  if (s) XXH3_128bits_reset(s.get());
  return s;
}
ChunkId digest(XXH3_state_t* s) {
  XXH128_hash_t h = XXH3_128bits_digest(s);
  return ChunkId{h.high64, h.low64};
}

struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

// Calls fn(name, d_type) for every entry but "." and "..", reading the
// directory in large getdents64 batches (no per-entry syscalls).
template <typename Fn>
Status forEachDirEntry(int dirfd, const std::string& what, Fn&& fn) {
  std::vector<char> buf(1u << 20);
  for (;;) {
    long n = ::syscall(SYS_getdents64, dirfd, buf.data(), buf.size());
    if (n < 0) return errnoStatus(errno, "reading directory " + what);
    if (n == 0) return Status::ok();
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<LinuxDirent64*>(buf.data() + pos);
      pos += d->d_reclen;
      std::string_view name(d->d_name);
      if (name == "." || name == "..") continue;
      SLUICE_RETURN_IF_ERROR(fn(name, d->d_type));
    }
  }
}

std::optional<uint32_t> parseStripeName(std::string_view name) {
  uint32_t v = 0;
  if (name.empty() || name.size() > 10) return std::nullopt;
  if (name.size() > 1 && name[0] == '0') return std::nullopt;
  auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), v);
  if (ec != std::errc() || p != name.data() + name.size()) return std::nullopt;
  return v;
}

Status mkdirIfMissing(int dirfd, const char* name, bool* created) {
  *created = false;
  if (::mkdirat(dirfd, name, 0755) == 0) {
    *created = true;
    return Status::ok();
  }
  if (errno == EEXIST) return Status::ok();
  return errnoStatus(errno, std::string("mkdir ") + name);
}

}  // namespace

IoContext::~IoContext() {
  queue_.reset();
  std::free(buf_);
}

ChunkStore::ChunkStore(ChunkStoreOptions options) : options_(std::move(options)) {}

ChunkStore::~ChunkStore() {
  for (auto& [s, fd] : stripe_fds_) ::close(fd);
  for (int fd : {stripes_fd_, quarantine_fd_, root_fd_, lock_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

Result<std::unique_ptr<ChunkStore>> ChunkStore::open(ChunkStoreOptions options) {
  if (options.data_dir.empty()) return invalidArgument("chunk store: data directory not set");
  if (options.max_chunk_bytes == 0 || options.max_chunk_bytes > kHardMaxChunk) {
    options.max_chunk_bytes = kHardMaxChunk;
  }
  if (options.max_stripes == 0) return invalidArgument("chunk store: max_stripes must be > 0");
  options.io_buffer_bytes = std::max<size_t>(alignUp(options.io_buffer_bytes), 64 * 1024);
  std::unique_ptr<ChunkStore> store(new ChunkStore(std::move(options)));
  SLUICE_RETURN_IF_ERROR(store->init().withContext("opening data directory " +
                                                    store->options_.data_dir));
  return store;
}

Status ChunkStore::init() {
  auto t0 = std::chrono::steady_clock::now();
  io_ = options_.file_io ? options_.file_io : makeUringFileIo();
  syncer_ = std::make_unique<DirSyncer>(*io_);
  size_t open_files = options_.open_files;
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    open_files = std::min<size_t>(open_files, files.rlim_cur / 4);
  }
  open_chunks_ = std::make_unique<OpenChunks>(open_files);
  // Before anything is written: a mistyped --data_dir is not taken over.
  SLUICE_RETURN_IF_ERROR(checkOwnDirectory(options_.data_dir, "sluice-storage", "stripes",
                                           {"LOCK", "NODE", "NODE.tmp", "quarantine", ".direct-probe"}));
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) return ioError("create directory: " + ec.message());
  SLUICE_ASSIGN_OR_RETURN(root_fd_,
                          io_->openAt(AT_FDCWD, options_.data_dir, O_RDONLY | O_DIRECTORY, 0));
  SLUICE_ASSIGN_OR_RETURN(lock_fd_, io_->openAt(root_fd_, "LOCK", O_RDWR | O_CREAT, 0644));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return failedPrecondition(
        "the directory is locked by another running sluice-storage; stop it or use another "
        "data directory");
  }
  bool c1 = false, c2 = false;
  SLUICE_RETURN_IF_ERROR(mkdirIfMissing(root_fd_, "stripes", &c1));
  SLUICE_RETURN_IF_ERROR(mkdirIfMissing(root_fd_, "quarantine", &c2));
  if ((c1 || c2) && options_.durable) SLUICE_RETURN_IF_ERROR(io_->syncFd(root_fd_));
  SLUICE_ASSIGN_OR_RETURN(stripes_fd_, io_->openAt(root_fd_, "stripes", O_RDONLY | O_DIRECTORY, 0));
  SLUICE_ASSIGN_OR_RETURN(quarantine_fd_,
                          io_->openAt(root_fd_, "quarantine", O_RDONLY | O_DIRECTORY, 0));
  struct statvfs vfs {};
  if (::fstatvfs(root_fd_, &vfs) == 0) fs_size_ = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
  SLUICE_RETURN_IF_ERROR(probeDirectIo());
  SLUICE_RETURN_IF_ERROR(rebuildInventory());
  // A put killed between its rename and its directory's fsync leaves a name
  // the scan trusts (the entry outlives a restart without a reboot), so make
  // what was found durable before it is served or reported present.
  if (options_.durable && ::syncfs(root_fd_) != 0) {
    return errnoStatus(errno, "syncfs of the data directory");
  }
  uint64_t q = 0;
  SLUICE_RETURN_IF_ERROR(forEachDirEntry(quarantine_fd_, "quarantine", [&](std::string_view, unsigned char) {
    ++q;
    return Status::ok();
  }));
  quarantined_ = q;
  open_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return Status::ok();
}

Status ChunkStore::probeDirectIo() {
  direct_ = false;
  if (!options_.allow_direct_io) return Status::ok();
  const char* name = ".direct-probe";
  int fd = ::openat(root_fd_, name, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EINVAL) return Status::ok();  // e.g. tmpfs: buffered I/O
    return errnoStatus(errno, "O_DIRECT probe");
  }
  void* page = std::aligned_alloc(kAlign, kAlign);
  std::memset(page, 0, kAlign);
  direct_ = ::pwrite(fd, page, kAlign, 0) == static_cast<ssize_t>(kAlign) &&
            ::pread(fd, page, kAlign, 0) == static_cast<ssize_t>(kAlign);
  std::free(page);
  ::close(fd);
  ::unlinkat(root_fd_, name, 0);
  return Status::ok();
}

Status ChunkStore::rebuildInventory() {
  std::vector<std::pair<uint32_t, std::string>> dirs;
  SLUICE_RETURN_IF_ERROR(forEachDirEntry(stripes_fd_, "stripes", [&](std::string_view name, unsigned char) {
    auto s = parseStripeName(name);
    if (!s) return Status::ok();  // not ours; leave it alone
    if (*s >= options_.max_stripes) {
      return failedPrecondition("stripes/" + std::string(name) + " is beyond max_stripes " +
                                std::to_string(options_.max_stripes) +
                                "; raise max_stripes to the cluster's stripe count");
    }
    dirs.emplace_back(*s, std::string(name));
    return Status::ok();
  }));
  std::vector<std::pair<uint32_t, int>> fds;
  for (auto& [stripe, name] : dirs) {
    SLUICE_ASSIGN_OR_RETURN(int fd, io_->openAt(stripes_fd_, name, O_RDONLY | O_DIRECTORY, 0));
    {
      std::lock_guard lock(mu_);
      stripe_fds_[stripe] = fd;
    }
    fds.emplace_back(stripe, fd);
  }
  // Stripes are scanned by several threads: after a reboot each chunk's
  // inode is a disk read, and one thread leaves the disk one read deep (a
  // million chunks: 9.8 s cold on one thread).
  std::atomic<size_t> next{0};
  std::mutex error_mu;
  Status first_error;
  auto scan = [&] {
    for (size_t i; (i = next.fetch_add(1)) < fds.size();) {
      Status s = scanStripe(fds[i].first, fds[i].second);
      if (!s.isOk()) {
        std::lock_guard lock(error_mu);
        if (first_error.isOk()) first_error = s;
        next = fds.size();
      }
    }
  };
  {
    std::vector<std::jthread> threads;  // joined on the way out, also if starting one throws
    for (size_t t = 1; t < std::min(kScanThreads, fds.size()); ++t) threads.emplace_back(scan);
    scan();
  }
  return first_error;
}

Status ChunkStore::scanStripe(uint32_t stripe, int dirfd) {
  const std::string what = "stripes/" + std::to_string(stripe);
  std::vector<std::pair<ChunkId, std::string>> bad;
  std::vector<std::pair<ChunkId, uint64_t>> found;
  SLUICE_RETURN_IF_ERROR(forEachDirEntry(dirfd, what, [&](std::string_view name, unsigned char) {
    std::string n(name);
    if (name.substr(0, std::strlen(kTempPrefix)) == kTempPrefix) {
      // A put that never finished: it was not acknowledged, so drop it.
      if (::unlinkat(dirfd, n.c_str(), 0) == 0) ++temps_removed_;
      return Status::ok();
    }
    auto id = ChunkId::fromHex(name);
    if (!id || id->toHex() != name) return Status::ok();
    struct stat st {};
    if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoStatus(errno, "stat " + what + "/" + n);
    }
    uint64_t size = static_cast<uint64_t>(st.st_size);
    // Against the format's limit, not --max_chunk: lowering the put limit
    // must not turn chunks stored under the old one into "corrupt" ones.
    if (!S_ISREG(st.st_mode) || size < kChunkHeaderSize ||
        size - kChunkHeaderSize > kHardMaxChunk) {
      bad.emplace_back(*id, n);
      return Status::ok();
    }
    found.emplace_back(*id, size - kChunkHeaderSize);
    return Status::ok();
  }));
  {
    std::lock_guard lock(mu_);  // once per stripe: the other scanning threads insert too
    for (const auto& [id, length] : found) insertLocked(id, stripe, length);
  }
  for (auto& [id, name] : bad) quarantine(id, stripe, "file size does not fit the chunk format");
  return Status::ok();
}

Result<int> ChunkStore::stripeDir(uint32_t stripe, bool create) {
  {
    std::lock_guard lock(mu_);
    auto it = stripe_fds_.find(stripe);
    if (it != stripe_fds_.end()) return it->second;
  }
  const std::string name = std::to_string(stripe);
  if (!create) return notFound("stripe " + name + " has no directory");
  // One first use at a time, from the latch check to the directory kept:
  // two concurrent ones could otherwise see the failed fsync's error only
  // once, and the other one go on as if its entry were durable.
  std::lock_guard setup(stripe_setup_mu_);
  {
    std::lock_guard lock(mu_);
    auto it = stripe_fds_.find(stripe);
    if (it != stripe_fds_.end()) return it->second;
    SLUICE_RETURN_IF_ERROR(stripes_unsynced_);
  }
  bool created = false;
  SLUICE_RETURN_IF_ERROR(mkdirIfMissing(stripes_fd_, name.c_str(), &created));
  // Whether or not this call made it: an earlier first put may have made it
  // and failed to sync stripes/. Once per stripe.
  if (options_.durable) {
    if (Status s = io_->syncFd(stripes_fd_); !s.isOk()) {
      // Linux may report a failed writeback to one fsync only: a later one
      // succeeding says nothing about the entries this one covered. This put
      // fails with the fsync's error; later first uses of a stripe fail
      // kUnavailable (the node, not the request) until a restart.
      std::lock_guard lock(mu_);
      stripes_unsynced_ = unavailable("new stripe directories are refused since an fsync of " +
                                      options_.data_dir + "/stripes failed (" + s.message() +
                                      "); check the disk, then restart the storage node");
      return s.withContext("fsync of " + options_.data_dir + "/stripes");
    }
  }
  SLUICE_ASSIGN_OR_RETURN(int fd, openMakingRoom(stripes_fd_, name, O_RDONLY | O_DIRECTORY, 0));
  std::lock_guard lock(mu_);
  auto [it, inserted] = stripe_fds_.emplace(stripe, fd);
  if (!inserted) ::close(fd);
  return it->second;
}

namespace {
int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
uint64_t ageMs(int64_t stored_ms) {
  return static_cast<uint64_t>(std::max<int64_t>(0, steadyMs() - stored_ms));
}
}  // namespace

void ChunkStore::insertLocked(const ChunkId& id, uint32_t stripe, uint64_t length) {
  auto [it, inserted] = chunks_.emplace(id, Entry{stripe, length, steadyMs()});
  if (!inserted) return;
  StripeSet& s = stripes_[stripe];
  s.ids.insert(id);
  s.bytes += length;
  used_ += length;
}

bool ChunkStore::eraseLocked(const ChunkId& id) {
  auto it = chunks_.find(id);
  if (it == chunks_.end()) return false;
  auto sit = stripes_.find(it->second.stripe);
  if (sit != stripes_.end()) {
    sit->second.ids.erase(id);
    sit->second.bytes -= it->second.length;
    if (sit->second.ids.empty()) stripes_.erase(sit);
  }
  used_ -= it->second.length;
  chunks_.erase(it);
  return true;
}

void ChunkStore::quarantine(const ChunkId& id, uint32_t stripe, const std::string& why,
                            const struct stat* found) {
  std::lock_guard id_lock(idLock(id));
  auto dir = stripeDir(stripe, false);
  const std::string hex = id.toHex();
  if (found != nullptr && dir.isOk()) {
    struct stat now {};
    const bool gone = ::fstatat(*dir, hex.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT;
    if (gone || (now.st_ino != 0 && (now.st_dev != found->st_dev || now.st_ino != found->st_ino))) {
      return;  // already moved or removed, and maybe replaced by a good copy
    }
  }
  {
    std::lock_guard lock(mu_);
    // Only the entry for this stripe's file: a copy of the same chunk in
    // another stripe (found by the start-up scan) stays served.
    auto it = chunks_.find(id);
    if (it != chunks_.end() && it->second.stripe == stripe) eraseLocked(id);
    corrupt_log_.push_back(CorruptReport{id, stripe, why});
    if (corrupt_log_.size() > 64) corrupt_log_.pop_front();
  }
  if (!dir.isOk()) return;
  // The wall-clock time keeps names apart across restarts, where the pid may
  // repeat (1 in a container) and the sequence starts over: a rename onto an
  // earlier quarantined copy would silently replace it.
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const std::string dest = hex + "." + std::to_string(now_ns) + "." + std::to_string(::getpid()) +
                           "." + std::to_string(quarantine_seq_.fetch_add(1));
  Status s = io_->renameAt(*dir, hex, quarantine_fd_, dest);
  if (!s.isOk()) {
    // Could not move it aside: remove it so it is never served.
    io_->unlinkAt(*dir, hex).ignore();
  } else {
    ++quarantined_;
  }
  open_chunks_->forget(id);
  if (options_.durable) syncer_->sync(stripe, *dir).ignore();  // best effort; it is already out of the inventory
}

void ChunkStore::noteIoError(const Status& s) {
  if (s.code() == StatusCode::kIoError) ++io_errors_;
}

Result<std::unique_ptr<IoContext>> ChunkStore::newContext() {
  const size_t size = options_.io_buffer_bytes;
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(kAlign, size));
  if (buf == nullptr) return Status(StatusCode::kResourceExhausted, "I/O buffer allocation");
  std::memset(buf, 0, size);
  auto q = io_->newQueue(buf, size);
  if (!q.isOk()) {
    std::free(buf);
    return q.status();
  }
  return std::unique_ptr<IoContext>(new IoContext(buf, size, std::move(q).value()));
}

Status ChunkStore::writeTemp(IoContext& ctx, int fd, const ChunkId& id, uint64_t length,
                             const ChunkSource& source) {
  uint8_t* buf = ctx.buffer();
  const uint64_t B = ctx.bufferSize();
  const uint64_t F = kChunkHeaderSize + length;
  XxhState hs = newHashState();
  if (!hs) return Status(StatusCode::kResourceExhausted, "hash state allocation");
  for (uint64_t cur = 0; cur < F;) {
    const uint64_t wend = std::min(cur + B, F);
    const uint64_t data_end = wend - cur;  // window bytes that belong to the file
    uint64_t pos = 0;                     // window bytes before the payload (the header)
    if (cur == 0) {
      encodeChunkHeader(ChunkHeader{length, id}, buf);
      pos = kChunkHeaderSize;
    }
    const uint64_t wlen = direct_ ? alignUp(data_end) : data_end;
    // Pull each segment just before it is queued: the pull of segment k+1
    // overlaps the disk write of segment k.
    auto fill = [&](size_t seg, size_t n) -> Status {
      const uint64_t lo = std::max<uint64_t>(seg, pos);
      const uint64_t hi = std::min<uint64_t>(seg + n, data_end);
      if (lo < hi) {
        SLUICE_RETURN_IF_ERROR(source(cur + lo - kChunkHeaderSize, std::span<uint8_t>(buf + lo, hi - lo)));
        XXH3_128bits_update(hs.get(), buf + lo, hi - lo);
      }
      if (seg + n > data_end) {
        const uint64_t z = std::max<uint64_t>(seg, data_end);
        std::memset(buf + z, 0, seg + n - z);  // O_DIRECT padding, truncated below
      }
      return Status::ok();
    };
    SLUICE_RETURN_IF_ERROR(ctx.queue().writeStreaming(fd, buf, wlen, cur, fill));
    cur = wend;
  }
  const ChunkId got = digest(hs.get());
  if (got != id) {
    return checksumMismatch("chunk " + id.toHex() + ": the " + std::to_string(length) +
                            " bytes received hash to " + got.toHex() +
                            "; a chunk id must be the XXH3-128 of its bytes");
  }
  if (direct_ && F % kAlign != 0) SLUICE_RETURN_IF_ERROR(io_->truncate(fd, F));
  if (options_.durable) SLUICE_RETURN_IF_ERROR(ctx.queue().fsync(fd));
  return Status::ok();
}

Result<PutOutcome> ChunkStore::put(IoContext& ctx, const ChunkId& id, uint32_t stripe,
                                   uint64_t length, const ChunkSource& source, Origin origin) {
  const std::string hex = id.toHex();
  if (stripe >= options_.max_stripes) {
    return invalidArgument("chunk " + hex + ": stripe " + std::to_string(stripe) +
                           " is outside this node's stripes 0.." +
                           std::to_string(options_.max_stripes - 1));
  }
  if (length == 0) return invalidArgument("chunk " + hex + ": empty chunks are not stored");
  const uint64_t limit = origin == Origin::kCopy ? kHardMaxChunk : options_.max_chunk_bytes;
  if (length > limit) {
    return Status(StatusCode::kTooLarge, "chunk " + hex + ": " + std::to_string(length) +
                                             " bytes exceeds the node's maximum chunk size of " +
                                             std::to_string(limit));
  }
  const uint64_t capacity = options_.capacity_bytes ? options_.capacity_bytes : fs_size_;
  // Held for the whole put: a concurrent put of the same id waits and then
  // finds it present; a concurrent remove runs entirely before or after.
  std::lock_guard id_lock(idLock(id));
  {
    std::lock_guard lock(mu_);
    if (chunks_.count(id) != 0) return PutOutcome{true};
    if (used_ + reserved_ + length > capacity) {
      return Status(StatusCode::kNoSpace,
                    "chunk " + hex + ": node capacity of " + std::to_string(capacity) +
                        " bytes reached (" + std::to_string(used_) +
                        " used); put it on another node or raise the capacity");
    }
    reserved_ += length;
  }
  auto release = [&] {
    std::lock_guard lock(mu_);
    reserved_ -= length;
  };
  auto dir = stripeDir(stripe, true);
  if (!dir.isOk()) {
    release();
    noteIoError(dir.status());
    return dir.status().withContext("chunk " + hex);
  }
  const std::string tmp = kTempPrefix + hex + "." + std::to_string(temp_seq_.fetch_add(1));
  auto fd = openMakingRoom(*dir, tmp, O_WRONLY | O_CREAT | O_EXCL | (direct_ ? O_DIRECT : 0), 0644);
  if (!fd.isOk()) {
    release();
    noteIoError(fd.status());
    return fd.status().withContext("chunk " + hex);
  }
  Status s = writeTemp(ctx, *fd, id, length, source);
  io_->closeFd(*fd);
  if (s.isOk()) {
    s = io_->renameAt(*dir, tmp, *dir, hex);
    // A file still kept under this name (its delete or quarantine failed to
    // take the name away) is not this one.
    if (s.isOk()) open_chunks_->forget(id);
  }
  if (!s.isOk()) {
    io_->unlinkAt(*dir, tmp).ignore();  // nothing partial may remain; ENOENT if never created
    release();
    noteIoError(s);
    return s.withContext("put of chunk " + hex);
  }
  if (options_.durable) {
    s = syncer_->sync(stripe, *dir);
    if (!s.isOk()) {
      io_->unlinkAt(*dir, hex).ignore();  // not durable, so not acknowledged: take it back
      open_chunks_->forget(id);
      release();
      noteIoError(s);
      return s.withContext("put of chunk " + hex);
    }
  }
  {
    std::lock_guard lock(mu_);
    reserved_ -= length;
    insertLocked(id, stripe, length);
  }
  ++puts_;
  bytes_written_ += length;
  return PutOutcome{false};
}

Result<uint64_t> ChunkStore::readFile(IoContext& ctx, const ChunkId& id, const Entry& entry,
                                      uint64_t offset, uint64_t length, bool verify,
                                      const ChunkSink& sink) {
  // The id's hex is built only for messages and opens: a kept file needs neither.
  SLUICE_ASSIGN_OR_RETURN(OpenChunks::Handle file, openChunk(id, entry.stripe, verify));
  const int fd = file->fd();
  auto corrupt = [&](const std::string& why) -> Status {
    ++corrupt_found_;
    struct stat st {};
    quarantine(id, entry.stripe, why, ::fstat(fd, &st) == 0 ? &st : nullptr);
    return corruption("chunk " + id.toHex() + " in stripe " + std::to_string(entry.stripe) + ": " +
                      why + "; moved to quarantine, read another replica");
  };
  XxhState hs;
  if (verify) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return errnoStatus(errno, "stat chunk " + id.toHex());
    if (static_cast<uint64_t>(st.st_size) != kChunkHeaderSize + entry.length) {
      return corrupt("file size " + std::to_string(st.st_size) + " does not match its length");
    }
    hs = newHashState();
    if (!hs) return Status(StatusCode::kResourceExhausted, "hash state allocation");
  }
  uint8_t* buf = ctx.buffer();
  const uint64_t B = ctx.bufferSize();
  uint64_t cur = kChunkHeaderSize + offset;
  const uint64_t end = cur + length;
  bool bad_header = false;
  while (cur < end) {
    const uint64_t a = alignDown(cur);
    const uint64_t b = std::min(end, a + B);
    const uint64_t rlen = alignUp(b) - a;
    // Hand each completed prefix to the sink while later segments are still
    // being read: the RMA of segment k overlaps the disk read of segment k+1.
    uint64_t delivered = cur - a;
    auto progress = [&](size_t done) -> Status {
      if (verify && a == 0 && delivered == kChunkHeaderSize && done >= kChunkHeaderSize) {
        auto h = decodeChunkHeader(buf);
        if (!h || h->id != id || h->length != entry.length) {
          bad_header = true;
          return corruption("damaged file header");
        }
      }
      const uint64_t upto = std::min<uint64_t>(done, b - a);
      if (upto <= delivered) return Status::ok();
      std::span<const uint8_t> data(buf + delivered, upto - delivered);
      if (verify) XXH3_128bits_update(hs.get(), data.data(), data.size());
      SLUICE_RETURN_IF_ERROR(sink(a + delivered - kChunkHeaderSize, data));
      delivered = upto;
      return Status::ok();
    };
    auto got = ctx.queue().readStreaming(fd, buf, rlen, a, progress);
    if (bad_header) return corrupt("damaged file header");
    if (!got.isOk()) {
      noteIoError(got.status());
      return got.status().withContext("reading chunk " + id.toHex());
    }
    if (a + *got < b || delivered < b - a) return corrupt("file is shorter than its length");
    cur = b;
  }
  if (verify) {
    const ChunkId got = digest(hs.get());
    if (got != id) return corrupt("stored bytes hash to " + got.toHex());
  }
  bytes_read_ += length;
  return length;
}

Result<int> ChunkStore::openMakingRoom(int dirfd, const std::string& name, int flags,
                                       mode_t mode) {
  const uint64_t sheds_before = sheds_.load();
  auto fd = io_->openAt(dirfd, name, flags, mode);
  if (fd.isOk() || fd.status().code() != StatusCode::kResourceExhausted) return fd;
  // Opens that failed together shed once: a later one finds another thread
  // already let go of files since it tried, and only tries again.
  if (sheds_.load() == sheds_before) {
    // A quarter of the kept files, at least 16: one shortage frees room for
    // many opens, and the cache refills as records are read again. Files a
    // reader still holds close when it lets go.
    const size_t let_go = open_chunks_->shed(std::max<size_t>(16, open_chunks_->size() / 4));
    ++sheds_;
    const int64_t now = steadyMs();
    int64_t last = last_shed_warning_ms_.load();
    if (let_go > 0 && now - last >= 10000 &&
        last_shed_warning_ms_.compare_exchange_strong(last, now)) {
      spdlog::warn("storage: out of file descriptors ({}); let go of {} kept chunk files",
                   fd.status().message(), let_go);
    }
  }
  fd = io_->openAt(dirfd, name, flags, mode);
  if (fd.isOk() || fd.status().code() != StatusCode::kResourceExhausted) return fd;
  // Still none: a node problem, not the request's; kUnavailable lets a
  // client read another replica.
  return unavailable("storage node out of file descriptors (" + fd.status().message() +
                     "): raise its open-file limit (LimitNOFILE, ulimit -n) or lower --open_files");
}

Result<OpenChunks::Handle> ChunkStore::openChunk(const ChunkId& id, uint32_t stripe, bool fresh) {
  if (!fresh) {
    if (OpenChunks::Handle kept = open_chunks_->find(id, stripe)) return kept;
  }
  const uint64_t epoch = open_chunks_->epoch(id);  // before the open: see OpenChunks
  const std::string hex = id.toHex();
  SLUICE_ASSIGN_OR_RETURN(int dirfd, stripeDir(stripe, false));
  auto fd = openMakingRoom(dirfd, hex, O_RDONLY | (direct_ ? O_DIRECT : 0), 0);
  if (!fd.isOk()) {
    if (fd.status().code() == StatusCode::kNotFound) {
      return notFound("chunk " + hex + " is not on this node (deleted meanwhile)");
    }
    noteIoError(fd.status());
    return fd.status().withContext("chunk " + hex);
  }
  OpenChunks::Handle file;
  try {
    file = std::make_shared<const OpenChunks::File>(*io_, *fd);
  } catch (...) {
    io_->closeFd(*fd);
    throw;
  }
  if (!fresh) open_chunks_->keep(id, stripe, file, epoch);
  return file;
}

bool ChunkStore::readsInOnePass(const IoContext& ctx, uint64_t offset, uint64_t length) {
  const uint64_t cur = kChunkHeaderSize + offset;  // as readFile's first segment
  return cur + length - alignDown(cur) <= ctx.bufferSize();
}

Result<uint64_t> ChunkStore::read(IoContext& ctx, const ChunkId& id, uint64_t offset,
                                  uint64_t length, const ChunkSink& sink) {
  std::optional<ChunkInfo> info = find(id);
  if (!info) return notFound("chunk " + id.toHex() + " is not on this node");
  if (offset > info->length || (length != 0 && length > info->length - offset) ||
      (length == 0 && offset == info->length)) {
    return outOfRange("chunk " + id.toHex() + ": range [" + std::to_string(offset) + ", +" +
                      std::to_string(length) + ") is past its end at " +
                      std::to_string(info->length));
  }
  if (length == 0) length = info->length - offset;
  const bool whole = offset == 0 && length == info->length;
  ++gets_;
  return readFile(ctx, id, Entry{info->stripe, info->length}, offset, length, whole, sink);
}

Status ChunkStore::verify(IoContext& ctx, const ChunkId& id) {
  std::optional<ChunkInfo> info = find(id);
  if (!info) return notFound("chunk " + id.toHex() + " is not on this node");
  auto r = readFile(ctx, id, Entry{info->stripe, info->length}, 0, info->length, true,
                    [](uint64_t, std::span<const uint8_t>) { return Status::ok(); });
  if (r.status().code() == StatusCode::kNotFound && find(id)) {
    // Still in the inventory (not deleted meanwhile) but gone from disk: lost,
    // like a corrupt chunk, so it is reported and fetched again from a replica.
    const std::string why = "chunk " + id.toHex() + " in stripe " + std::to_string(info->stripe) +
                            " is missing from the disk; read another replica";
    quarantine(id, info->stripe, why);
    return corruption(why);
  }
  if (r.status().code() == StatusCode::kIoError && find(id)) {
    // The disk cannot give the bytes back (EIO: a bad sector). Kept, the
    // chunk would count as a copy that no read can serve, and repair would
    // never replace it: treat it as corrupt.
    const std::string why = "chunk " + id.toHex() + " in stripe " + std::to_string(info->stripe) +
                            " cannot be read (" + r.status().message() + "); read another replica";
    quarantine(id, info->stripe, why);
    return corruption(why);
  }
  return r.status();
}

Result<bool> ChunkStore::remove(const ChunkId& id) {
  std::lock_guard id_lock(idLock(id));
  uint32_t stripe = 0;
  {
    std::lock_guard lock(mu_);
    auto it = chunks_.find(id);
    if (it == chunks_.end()) return false;
    stripe = it->second.stripe;
    eraseLocked(id);
  }
  SLUICE_ASSIGN_OR_RETURN(int dirfd, stripeDir(stripe, false));
  Status s = io_->unlinkAt(dirfd, id.toHex());
  open_chunks_->forget(id);  // also frees the file's blocks, held while it is open
  if (!s.isOk() && s.code() != StatusCode::kNotFound) return s.withContext("delete");
  if (options_.durable) SLUICE_RETURN_IF_ERROR(syncer_->sync(stripe, dirfd));
  return true;
}

std::optional<ChunkInfo> ChunkStore::find(const ChunkId& id) const {
  std::lock_guard lock(mu_);
  auto it = chunks_.find(id);
  if (it == chunks_.end()) return std::nullopt;
  return ChunkInfo{id, it->second.stripe, it->second.length, ageMs(it->second.stored_ms)};
}

std::vector<ChunkInfo> ChunkStore::listStripe(uint32_t stripe, const std::optional<ChunkId>& after,
                                              size_t limit, bool* more) const {
  std::vector<ChunkInfo> out;
  *more = false;
  std::lock_guard lock(mu_);
  auto sit = stripes_.find(stripe);
  if (sit == stripes_.end()) return out;
  const auto& ids = sit->second.ids;
  auto it = after ? ids.upper_bound(*after) : ids.begin();
  for (; it != ids.end(); ++it) {
    if (out.size() == limit) {
      *more = true;
      break;
    }
    const Entry& e = chunks_.at(*it);
    out.push_back(ChunkInfo{*it, stripe, e.length, ageMs(e.stored_ms)});
  }
  return out;
}

std::vector<StripeStat> ChunkStore::stripeStats() const {
  std::vector<StripeStat> out;
  std::lock_guard lock(mu_);
  out.reserve(stripes_.size());
  for (const auto& [s, set] : stripes_) out.push_back(StripeStat{s, set.ids.size(), set.bytes});
  return out;
}

std::vector<CorruptReport> ChunkStore::recentCorruptions() const {
  std::lock_guard lock(mu_);
  return {corrupt_log_.begin(), corrupt_log_.end()};
}

std::vector<ChunkId> ChunkStore::allIds() const {
  std::vector<ChunkId> out;
  {
    std::lock_guard lock(mu_);
    out.reserve(chunks_.size());
    for (const auto& [id, e] : chunks_) out.push_back(id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

StoreStats ChunkStore::stats() const {
  StoreStats s;
  {
    std::lock_guard lock(mu_);
    s.used_bytes = used_;
    s.chunks = chunks_.size();
  }
  s.capacity_bytes = options_.capacity_bytes ? options_.capacity_bytes : fs_size_;
  struct statvfs vfs {};
  if (::fstatvfs(root_fd_, &vfs) == 0) {
    s.fs_free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  }
  s.corrupt_found = corrupt_found_;
  s.quarantined = quarantined_;
  s.io_errors = io_errors_;
  s.puts = puts_;
  s.gets = gets_;
  s.bytes_written = bytes_written_;
  s.bytes_read = bytes_read_;
  s.dir_fsyncs = syncer_->fsyncCount();
  s.temp_files_removed = temps_removed_;
  s.open_seconds = open_seconds_;
  s.direct_io = direct_;
  s.open_files = open_chunks_->size();
  s.open_files_max = open_chunks_->capacity();
  s.descriptor_shortages = sheds_.load();
  return s;
}

}  // namespace sluice::storage
