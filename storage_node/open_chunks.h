// OpenChunks: chunk files held open between reads, the least recently read
// closed first once there are `capacity`. A record read then costs no path
// lookup, open and close: three syscalls on every read, and once the page
// cache has been dropped, a directory block and an inode read from disk.
//
// A chunk file never changes once in place, so a kept file is always right to
// read, until its name is taken away or given to a new file (delete,
// quarantine, a put). The store then calls forget() once the name has
// changed; a reader that opened the old file around that moment passes the
// epoch(id) it saw before opening to keep(), which refuses the file if a
// forget() of an id in the same bucket came in between. Without that, a chunk
// quarantined and then put again (repaired) could be served from its corrupt
// old file. Epochs are per bucket of ids, so deletes elsewhere (garbage
// collection) do not keep a reader's file out.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "common/codec/hash128.h"
#include "storage_node/file_io.h"

namespace sluice::storage {

class OpenChunks {
 public:
  // One open chunk file; closed when the cache and every reader holding it
  // have let go, so evicting or forgetting never closes a file mid-read.
  class File {
   public:
    File(FileIo& io, int fd) : io_(io), fd_(fd) {}
    ~File() { io_.closeFd(fd_); }
    File(const File&) = delete;
    File& operator=(const File&) = delete;
    int fd() const { return fd_; }

   private:
    FileIo& io_;
    const int fd_;
  };
  using Handle = std::shared_ptr<const File>;

  // capacity 0 keeps nothing (every read opens and closes its file).
  explicit OpenChunks(size_t capacity) : capacity_(capacity) {}

  // The kept file of `id` in `stripe` (a chunk may also sit in another
  // stripe's directory), or null.
  Handle find(const Hash128& id, uint32_t stripe);
  // Read before opening a file that may be kept.
  uint64_t epoch(const Hash128& id) const;
  // Keeps `file` for later reads, unless a forget() in id's bucket ran since
  // `epoch`.
  void keep(const Hash128& id, uint32_t stripe, Handle file, uint64_t epoch);
  // Drops the kept file of `id` (any stripe). Call after the name has changed
  // (unlinked, renamed away, or renamed over), never before.
  void forget(const Hash128& id);
  // Lets go of up to `n` kept files, the least recently read first, and
  // returns how many: room for other descriptors when the process runs out
  // (a file a reader still holds closes when it lets go).
  size_t shed(size_t n);
  size_t size() const;
  size_t capacity() const { return capacity_; }

 private:
  struct Kept {
    uint32_t stripe;
    Handle file;
    std::list<Hash128>::iterator at;  // in lru_
  };

  static constexpr size_t kBuckets = 256;
  static size_t bucket(const Hash128& id) { return id.lo % kBuckets; }

  const size_t capacity_;
  mutable std::mutex mu_;
  std::array<uint64_t, kBuckets> epochs_{};    // GUARDED_BY(mu_): forget() calls so far
  std::list<Hash128> lru_;                     // GUARDED_BY(mu_): most recent first
  std::unordered_map<Hash128, Kept> kept_;     // GUARDED_BY(mu_)
};

}  // namespace sluice::storage
