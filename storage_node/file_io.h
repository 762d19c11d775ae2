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

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/core/result.h"
#include "common/core/status.h"

namespace sluice::storage {

class IoQueue {
 public:
  virtual ~IoQueue() = default;
  // Reads up to `len` bytes at `off`; returns the count (short only at EOF).
  // `buf` inside the registered buffer uses the fixed-buffer path.
  virtual Result<size_t> readAt(int fd, uint8_t* buf, size_t len, uint64_t off) = 0;
  // Writes all `len` bytes at `off` or fails (ENOSPC maps to kNoSpace).
  virtual Status writeAt(int fd, const uint8_t* buf, size_t len, uint64_t off) = 0;
  virtual Status fsync(int fd) = 0;
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

// io_uring-backed FileIo (liburing): ring depth `queue_depth` per IoQueue.
std::shared_ptr<FileIo> makeUringFileIo(unsigned queue_depth = 8);

}  // namespace sluice::storage
