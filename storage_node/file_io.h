// FileIo: the only way the chunk store touches the file system.
//
// Data-path I/O (read, write, fsync of a chunk file) goes through an IoQueue:
// one io_uring ring with one registered (fixed) buffer, used by one thread at
// a time. Namespace operations (open, rename, unlink, directory fsync) are
// plain syscalls on the FileIo itself. Tests wrap a FileIo to inject ENOSPC,
// EIO or torn writes (see tests/storage_node/faulty_file_io.h).
//
// Thread safety: FileIo methods are safe from any thread; an IoQueue belongs
// to one thread at a time.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/core/result.h"
#include "common/core/status.h"

namespace sluice::storage {

class IoQueue {
 public:
  // Told, in order, each time the completed prefix of a read grows: bytes
  // [0, done) of the buffer are valid. An error stops the read (in-flight
  // I/O is drained first) and is returned by readStreaming.
  using Progress = std::function<Status(size_t done)>;
  // Asked to produce bytes [pos, pos + len) of the buffer just before they
  // are written, in order, while earlier parts are already being written.
  using Fill = std::function<Status(size_t pos, size_t len)>;

  virtual ~IoQueue() = default;
  // Reads up to `len` bytes at `off` with several segments in flight; returns
  // the count (short only at EOF). `progress` may be empty. `buf` inside the
  // registered buffer uses the fixed-buffer path.
  virtual Result<size_t> readStreaming(int fd, uint8_t* buf, size_t len, uint64_t off,
                                       const Progress& progress) = 0;
  // Writes all `len` bytes at `off` or fails (ENOSPC maps to kNoSpace);
  // `fill` (may be empty) produces each segment just before it is queued, so
  // producing segment k+1 overlaps the write of segment k.
  virtual Status writeStreaming(int fd, uint8_t* buf, size_t len, uint64_t off,
                                const Fill& fill) = 0;
  virtual Status fsync(int fd) = 0;
  // True once the ring could not finish the work of a failed operation:
  // every later operation fails kUnavailable. Its owner may take a new queue
  // but must keep this one (and its buffer) alive: transfers may still land.
  virtual bool outOfService() const { return false; }

  Result<size_t> readAt(int fd, uint8_t* buf, size_t len, uint64_t off) {
    return readStreaming(fd, buf, len, off, nullptr);
  }
  Status writeAt(int fd, const uint8_t* buf, size_t len, uint64_t off) {
    return writeStreaming(fd, const_cast<uint8_t*>(buf), len, off, nullptr);
  }
};

class FileIo {
 public:
  virtual ~FileIo() = default;
  // A new ring whose fixed buffer is [buf, buf + size). `buf` must outlive it.
  virtual Result<std::unique_ptr<IoQueue>> newQueue(uint8_t* buf, size_t size) = 0;

  // Paths relative to `dirfd` (AT_FDCWD for absolute ones); `what` names the
  // object in error messages.
  virtual Result<int> openAt(int dirfd, const std::string& name, int flags, mode_t mode) = 0;
  virtual void closeFd(int fd) = 0;
  virtual Status truncate(int fd, uint64_t size) = 0;
  // fsync of a file or a directory, as a plain syscall.
  virtual Status syncFd(int fd) = 0;
  virtual Status renameAt(int from_dirfd, const std::string& from, int to_dirfd,
                          const std::string& to) = 0;
  virtual Status unlinkAt(int dirfd, const std::string& name) = 0;
};

// Faults injected into the rings themselves, for tests: each of the next
// `submits` submissions and `waits` completion waits fails with `error`
// without entering the kernel, as io_uring_enter can fail (EAGAIN, EBUSY).
struct RingFaults {
  std::atomic<int> submits{0};
  std::atomic<int> waits{0};
  std::atomic<int> error{EIO};
};

// io_uring-backed FileIo (liburing): ring depth `queue_depth` per IoQueue.
// An operation that fails part-way still waits out all it queued, so no
// completion or queued write outlives it; a ring that cannot do that is
// taken out of service and fails every later operation.
std::shared_ptr<FileIo> makeUringFileIo(unsigned queue_depth = 8,
                                        std::shared_ptr<RingFaults> faults = nullptr);

// Rings this process has taken out of service so far
// (sluice_storage_io_rings_lost_total).
uint64_t ioRingsLost();

}  // namespace sluice::storage
