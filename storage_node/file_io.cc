#include "storage_node/file_io.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace sluice::storage {
namespace {

// Large transfers are split so several segments are in flight on the ring at
// once: a 4 MiB chunk read is four 1 MiB reads at queue depth 4, which is what
// the device needs to reach its throughput.
constexpr size_t kSegment = 1u << 20;

class UringQueue final : public IoQueue {
 public:
  UringQueue(unsigned depth, uint8_t* buf, size_t size) : depth_(depth), buf_(buf), size_(size) {}
  ~UringQueue() override {
    if (ready_) io_uring_queue_exit(&ring_);
  }

  Status init() {
    int rc = io_uring_queue_init(depth_, &ring_, 0);
    if (rc < 0) return errnoStatus(-rc, "io_uring_queue_init");
    ready_ = true;
    if (buf_ != nullptr && size_ > 0) {
      iovec iov{buf_, size_};
      rc = io_uring_register_buffers(&ring_, &iov, 1);
      // Registration can fail under a low RLIMIT_MEMLOCK; plain reads still work.
      registered_ = rc == 0;
    }
    return Status::ok();
  }

  Result<size_t> readAt(int fd, uint8_t* buf, size_t len, uint64_t off) override {
    size_t done = 0;
    while (done < len) {
      SLUICE_ASSIGN_OR_RETURN(size_t n, batch(false, fd, buf + done, len - done, off + done));
      if (n == 0) break;  // EOF
      done += n;
    }
    return done;
  }

  Status writeAt(int fd, const uint8_t* buf, size_t len, uint64_t off) override {
    size_t done = 0;
    while (done < len) {
      SLUICE_ASSIGN_OR_RETURN(size_t n, batch(true, fd, const_cast<uint8_t*>(buf) + done,
                                              len - done, off + done));
      if (n == 0) return ioError("write made no progress");
      done += n;
    }
    return Status::ok();
  }

  Status fsync(int fd) override {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return internalError("io_uring: no submission slot");
    io_uring_prep_fsync(sqe, fd, 0);
    SLUICE_ASSIGN_OR_RETURN(int res, submitOne());
    if (res < 0) return errnoStatus(-res, "fsync");
    return Status::ok();
  }

 private:
  bool inFixed(const uint8_t* p, size_t len) const {
    return registered_ && p >= buf_ && p + len <= buf_ + size_;
  }

  Result<int> submitOne() {
    int rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc < 0) return errnoStatus(-rc, "io_uring_submit");
    io_uring_cqe* cqe = nullptr;
    rc = io_uring_wait_cqe(&ring_, &cqe);
    if (rc < 0) return errnoStatus(-rc, "io_uring_wait_cqe");
    int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    return res;
  }

  // Submits up to `depth_` segments covering [off, off + len) and returns the
  // contiguous byte count completed from the start (short at EOF or on a short
  // transfer; the caller loops).
  Result<size_t> batch(bool write, int fd, uint8_t* buf, size_t len, uint64_t off) {
    size_t segs = std::min<size_t>((len + kSegment - 1) / kSegment, depth_);
    std::vector<int> res(segs, 0);
    std::vector<size_t> want(segs, 0);
    for (size_t i = 0; i < segs; ++i) {
      size_t pos = i * kSegment;
      size_t n = std::min(kSegment, len - pos);
      want[i] = n;
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) return internalError("io_uring: no submission slot");
      uint8_t* p = buf + pos;
      if (inFixed(p, n)) {
        if (write) {
          io_uring_prep_write_fixed(sqe, fd, p, static_cast<unsigned>(n), off + pos, 0);
        } else {
          io_uring_prep_read_fixed(sqe, fd, p, static_cast<unsigned>(n), off + pos, 0);
        }
      } else if (write) {
        io_uring_prep_write(sqe, fd, p, static_cast<unsigned>(n), off + pos);
      } else {
        io_uring_prep_read(sqe, fd, p, static_cast<unsigned>(n), off + pos);
      }
      io_uring_sqe_set_data64(sqe, i);
    }
    int rc = io_uring_submit_and_wait(&ring_, static_cast<unsigned>(segs));
    if (rc < 0) return errnoStatus(-rc, "io_uring_submit");
    for (size_t got = 0; got < segs;) {
      io_uring_cqe* cqe = nullptr;
      rc = io_uring_wait_cqe(&ring_, &cqe);
      if (rc == -EINTR) continue;
      if (rc < 0) return errnoStatus(-rc, "io_uring_wait_cqe");
      res[io_uring_cqe_get_data64(cqe)] = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      ++got;
    }
    size_t total = 0;
    for (size_t i = 0; i < segs; ++i) {
      if (res[i] < 0) return errnoStatus(-res[i], write ? "write" : "read");
      total += static_cast<size_t>(res[i]);
      if (static_cast<size_t>(res[i]) < want[i]) break;
    }
    return total;
  }

  unsigned depth_;
  uint8_t* buf_;
  size_t size_;
  io_uring ring_{};
  bool ready_ = false;
  bool registered_ = false;
};

class UringFileIo final : public FileIo {
 public:
  explicit UringFileIo(unsigned depth) : depth_(depth) {}

  Result<std::unique_ptr<IoQueue>> newQueue(uint8_t* buf, size_t size) override {
    auto q = std::make_unique<UringQueue>(depth_, buf, size);
    SLUICE_RETURN_IF_ERROR(q->init());
    return std::unique_ptr<IoQueue>(std::move(q));
  }

  Result<int> openAt(int dirfd, const std::string& name, int flags, mode_t mode) override {
    int fd = ::openat(dirfd, name.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) return errnoStatus(errno, "open " + name);
    return fd;
  }
  void closeFd(int fd) override {
    if (fd >= 0) ::close(fd);
  }
  Status truncate(int fd, uint64_t size) override {
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) return errnoStatus(errno, "ftruncate");
    return Status::ok();
  }
  Status syncFd(int fd) override {
    if (::fsync(fd) != 0) return errnoStatus(errno, "fsync");
    return Status::ok();
  }
  Status renameAt(int from_dirfd, const std::string& from, int to_dirfd,
                  const std::string& to) override {
    if (::renameat(from_dirfd, from.c_str(), to_dirfd, to.c_str()) != 0) {
      return errnoStatus(errno, "rename " + from + " -> " + to);
    }
    return Status::ok();
  }
  Status unlinkAt(int dirfd, const std::string& name) override {
    if (::unlinkat(dirfd, name.c_str(), 0) != 0) return errnoStatus(errno, "unlink " + name);
    return Status::ok();
  }

 private:
  unsigned depth_;
};

}  // namespace

std::shared_ptr<FileIo> makeUringFileIo(unsigned queue_depth) {
  return std::make_shared<UringFileIo>(queue_depth < 4 ? 4 : queue_depth);
}

}  // namespace sluice::storage
