#include "storage_node/file_io.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
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

  Result<size_t> readStreaming(int fd, uint8_t* buf, size_t len, uint64_t off,
                               const Progress& progress) override {
    size_t done = 0;
    while (done < len) {
      SLUICE_ASSIGN_OR_RETURN(size_t n, readBatch(fd, buf, done, len, off, progress));
      if (n == 0) break;  // EOF
      done += n;
    }
    return done;
  }

  Status writeStreaming(int fd, uint8_t* buf, size_t len, uint64_t off, const Fill& fill) override {
    struct Seg {
      size_t pos;
      size_t len;
      int res;
    };
    std::vector<Seg> segs;
    segs.reserve((len + kSegment - 1) / kSegment);
    size_t pos = 0, inflight = 0;
    Status err;
    auto reap = [&](bool block) -> Status {
      io_uring_cqe* cqe = nullptr;
      int rc = block ? io_uring_wait_cqe(&ring_, &cqe) : io_uring_peek_cqe(&ring_, &cqe);
      if (rc == -EAGAIN || rc == -EINTR) return Status::ok();
      if (rc < 0) return errnoStatus(-rc, "io_uring_wait_cqe");
      segs[io_uring_cqe_get_data64(cqe)].res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      --inflight;
      return Status::ok();
    };
    while ((pos < len && err.isOk()) || inflight > 0) {
      if (pos < len && err.isOk() && inflight < depth_) {
        const size_t n = std::min(kSegment, len - pos);
        if (fill) err = fill(pos, n);
        if (err.isOk()) {
          io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
          if (sqe == nullptr) {
            err = internalError("io_uring: no submission slot");
          } else {
            prep(sqe, true, fd, buf + pos, n, off + pos);
            io_uring_sqe_set_data64(sqe, segs.size());
            segs.push_back(Seg{pos, n, 0});
            int rc = io_uring_submit(&ring_);
            if (rc < 0) {
              err = errnoStatus(-rc, "io_uring_submit");
            } else {
              ++inflight;
              pos += n;
            }
          }
        }
        // Collect whatever finished without waiting, then produce the next segment.
        while (inflight > 0) {
          const size_t before = inflight;
          Status r = reap(false);
          if (!r.isOk()) return r;  // the ring is unusable; nothing more can be drained
          if (inflight == before) break;
        }
        continue;
      }
      if (inflight > 0) {
        Status r = reap(true);
        if (!r.isOk()) return r;
      }
    }
    if (!err.isOk()) return err;
    for (const Seg& sg : segs) {
      if (sg.res < 0) return errnoStatus(-sg.res, "write");
    }
    // Rare short writes: finish them synchronously now that nothing is in flight.
    for (const Seg& sg : segs) {
      size_t wrote = static_cast<size_t>(sg.res);
      while (wrote < sg.len) {
        SLUICE_ASSIGN_OR_RETURN(size_t n, syncOne(true, fd, buf + sg.pos + wrote, sg.len - wrote,
                                                  off + sg.pos + wrote));
        if (n == 0) return ioError("write made no progress");
        wrote += n;
      }
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

  void prep(io_uring_sqe* sqe, bool write, int fd, uint8_t* p, size_t n, uint64_t off) {
    if (inFixed(p, n)) {
      if (write) {
        io_uring_prep_write_fixed(sqe, fd, p, static_cast<unsigned>(n), off, 0);
      } else {
        io_uring_prep_read_fixed(sqe, fd, p, static_cast<unsigned>(n), off, 0);
      }
    } else if (write) {
      io_uring_prep_write(sqe, fd, p, static_cast<unsigned>(n), off);
    } else {
      io_uring_prep_read(sqe, fd, p, static_cast<unsigned>(n), off);
    }
  }

  // One transfer, waited for; returns the byte count.
  Result<size_t> syncOne(bool write, int fd, uint8_t* p, size_t n, uint64_t off) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return internalError("io_uring: no submission slot");
    prep(sqe, write, fd, p, n, off);
    SLUICE_ASSIGN_OR_RETURN(int res, submitOne());
    if (res < 0) return errnoStatus(-res, write ? "write" : "read");
    return static_cast<size_t>(res);
  }

  // Reads [base + from, base + len) as up to `depth_` segments in flight and
  // returns the contiguous byte count completed (short at EOF or on a short
  // read; the caller loops). Reports the growing prefix to `progress`.
  Result<size_t> readBatch(int fd, uint8_t* base, size_t from, size_t len, uint64_t off,
                           const Progress& progress) {
    uint8_t* buf = base + from;
    const size_t total = len - from;
    const size_t segs = std::min<size_t>((total + kSegment - 1) / kSegment, depth_);
    // A record is one segment: no allocation on that path.
    struct SegState {
      int res = 0;
      bool finished = false;
    };
    SegState small[8];
    std::vector<SegState> large(segs > std::size(small) ? segs : 0);
    SegState* state = large.empty() ? small : large.data();
    for (size_t i = 0; i < segs; ++i) {
      const size_t pos = i * kSegment;
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) return internalError("io_uring: no submission slot");
      prep(sqe, false, fd, buf + pos, std::min(kSegment, total - pos), off + from + pos);
      io_uring_sqe_set_data64(sqe, i);
    }
    // Submit and sleep for the first completion in one system call.
    // (-EINTR means nothing was submitted: a call that submitted returns the
    // count even when its wait is interrupted.)
    int rc;
    do {
      rc = io_uring_submit_and_wait(&ring_, 1);
    } while (rc == -EINTR);
    if (rc < 0) return errnoStatus(-rc, "io_uring_submit");
    size_t next = 0;       // first segment not yet part of the prefix
    size_t prefix = 0;     // contiguous bytes complete
    bool stopped = false;  // a short or failed segment ends the prefix
    Status err;
    for (size_t got = 0; got < segs;) {
      io_uring_cqe* cqe = nullptr;
      rc = io_uring_wait_cqe(&ring_, &cqe);
      if (rc == -EINTR) continue;
      if (rc < 0) return errnoStatus(-rc, "io_uring_wait_cqe");
      const size_t i = io_uring_cqe_get_data64(cqe);
      state[i].res = cqe->res;
      state[i].finished = true;
      io_uring_cqe_seen(&ring_, cqe);
      ++got;
      const size_t before = prefix;
      while (!stopped && next < segs && state[next].finished) {
        const size_t want = std::min(kSegment, total - next * kSegment);
        const int res = state[next].res;
        if (res < 0) {
          if (err.isOk()) err = errnoStatus(-res, "read");
          stopped = true;
          break;
        }
        prefix += static_cast<size_t>(res);
        if (static_cast<size_t>(res) < want) stopped = true;
        ++next;
      }
      if (prefix > before && progress && err.isOk()) err = progress(from + prefix);
    }
    if (!err.isOk()) return err;
    return prefix;
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
