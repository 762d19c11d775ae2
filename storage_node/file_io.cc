#include "storage_node/file_io.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/core/metrics.h"

namespace sluice::storage {
namespace {

// Large transfers are split so several segments are in flight on the ring at
// once: a 4 MiB chunk read is four 1 MiB reads at queue depth 4, which is what
// the device needs to reach its throughput.
constexpr size_t kSegment = 1u << 20;

// Rings given up by settle(), on the daemon's /metrics: each is a node to
// look at (its log says why), since its operations fail from then on.
Counter& ringsLost() {
  static Counter& c = MetricsRegistry::global().counter(
      "sluice_storage_io_rings_lost_total",
      "io_uring rings taken out of service because they could not finish a failed operation's work");
  return c;
}

// Takes one injected fault from `left` if any remain.
bool takeFault(std::atomic<int>& left) {
  int n = left.load();
  while (n > 0 && !left.compare_exchange_weak(n, n - 1)) {
  }
  return n > 0;
}

// A ring whose operations never leave work behind: each one returns only
// once every entry it queued has been submitted and completed, also when it
// fails part-way (settle()). A completion left on a pooled ring would be
// taken by the next operation for one of its own, and a write queued but not
// submitted would be submitted by the next operation, into whatever file then
// has its descriptor number.
class UringQueue final : public IoQueue {
 public:
  UringQueue(unsigned depth, uint8_t* buf, size_t size, std::shared_ptr<RingFaults> faults)
      : depth_(depth), buf_(buf), size_(size), faults_(std::move(faults)) {}
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
    SLUICE_RETURN_IF_ERROR(broken_);
    size_t done = 0;
    while (done < len) {
      SLUICE_ASSIGN_OR_RETURN(size_t n, readBatch(fd, buf, done, len, off, progress));
      if (n == 0) break;  // EOF
      done += n;
    }
    return done;
  }

  Status writeStreaming(int fd, uint8_t* buf, size_t len, uint64_t off, const Fill& fill) override {
    SLUICE_RETURN_IF_ERROR(broken_);
    struct Seg {
      size_t pos;
      size_t len;
      int res;
    };
    std::vector<Seg> segs;
    segs.reserve((len + kSegment - 1) / kSegment);
    size_t pos = 0;
    Status err;
    auto record = [&](io_uring_cqe* cqe) {
      segs[io_uring_cqe_get_data64(cqe)].res = cqe->res;
      seen(cqe);
    };
    while ((pos < len && err.isOk()) || inflight_ > 0) {
      if (pos < len && err.isOk() && inflight_ < depth_) {
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
            err = submit(0);
            if (err.isOk()) pos += n;
          }
        }
        // Collect whatever finished without waiting, then produce the next segment.
        io_uring_cqe* cqe = nullptr;
        while (inflight_ > 0 && io_uring_peek_cqe(&ring_, &cqe) == 0) record(cqe);
        continue;
      }
      if (inflight_ > 0) {
        auto cqe = waitCqe();
        if (!cqe.isOk()) return settle(cqe.status());
        record(*cqe);
      }
    }
    if (!err.isOk()) return settle(err);
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

  bool outOfService() const override { return !broken_.isOk(); }

  Status fsync(int fd) override {
    SLUICE_RETURN_IF_ERROR(broken_);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return internalError("io_uring: no submission slot");
    io_uring_prep_fsync(sqe, fd, 0);
    SLUICE_ASSIGN_OR_RETURN(int res, submitOne());
    if (res < 0) return errnoStatus(-res, "fsync");
    return Status::ok();
  }

 private:
  // How often settle() tries again, a millisecond apart, before it gives the
  // ring up: io_uring_enter's EAGAIN and EBUSY pass.
  static constexpr int kSettleAttempts = 100;

  bool inFixed(const uint8_t* p, size_t len) const {
    return registered_ && p >= buf_ && p + len <= buf_ + size_;
  }

  // io_uring_enter failing is the ring's trouble, not the disk's: kUnavailable
  // (the request may go to another replica), never kIoError, which says the
  // disk could not give a chunk's bytes back and gets the chunk quarantined.
  static Status ringError(int err, const std::string& what) {
    return Status(StatusCode::kUnavailable,
                  what + ": " + std::strerror(err) + " (the node's I/O ring, not the disk)");
  }

  // Submits every queued entry and, with `wait_nr` 1, sleeps for the first
  // completion in the same system call. -EINTR means nothing was submitted: a
  // call that submitted returns its count even when its wait is interrupted.
  // io_uring_enter may take fewer entries than were queued (a request
  // allocation failing part-way); the rest are submitted again, so no caller
  // waits for the completion of an entry still queued.
  Status submit(unsigned wait_nr) {
    if (faults_ && takeFault(faults_->submits)) {
      return ringError(faults_->error.load(), "io_uring_submit (injected)");
    }
    for (;;) {
      int rc;
      do {
        rc = io_uring_submit_and_wait(&ring_, wait_nr);
      } while (rc == -EINTR);
      if (rc < 0) return ringError(-rc, "io_uring_submit");
      inflight_ += static_cast<unsigned>(rc);
      if (io_uring_sq_ready(&ring_) == 0) return Status::ok();
      if (rc == 0) return ringError(EAGAIN, "io_uring_submit took none of the queued entries");
    }
  }

  Result<io_uring_cqe*> waitCqe() {
    if (faults_ && takeFault(faults_->waits)) {
      return ringError(faults_->error.load(), "io_uring_wait_cqe (injected)");
    }
    io_uring_cqe* cqe = nullptr;
    int rc;
    do {
      rc = io_uring_wait_cqe(&ring_, &cqe);
    } while (rc == -EINTR);
    if (rc < 0) return ringError(-rc, "io_uring_wait_cqe");
    return cqe;
  }

  void seen(io_uring_cqe* cqe) {
    io_uring_cqe_seen(&ring_, cqe);
    --inflight_;
  }

  // After an operation failed part-way: submits what it left queued and waits
  // out every completion, discarding them, then returns `why`. If the ring
  // cannot be brought back to empty it is never entered again (entries left
  // queued are then never submitted) and every later operation fails.
  Status settle(Status why) {
    for (int attempt = 0;; ++attempt) {
      // What was submitted is waited out first, whatever happens to the
      // rest: those transfers still write into the caller's buffer.
      while (inflight_ > 0) {
        auto cqe = waitCqe();
        if (!cqe.isOk()) break;
        seen(*cqe);
      }
      if (inflight_ == 0 && io_uring_sq_ready(&ring_) == 0) return why;
      if (attempt == kSettleAttempts) {
        broken_ = Status(StatusCode::kUnavailable,
                         "this I/O ring is out of service: after '" + why.message() +
                             "' it could not finish the work it had queued; restart the storage node");
        ringsLost().inc();
        spdlog::error("storage: {}", broken_.message());
        return broken_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (io_uring_sq_ready(&ring_) > 0) (void)submit(0);  // a failure is tried again
    }
  }

  Result<int> submitOne() {
    if (Status s = submit(1); !s.isOk()) return settle(s);
    auto cqe = waitCqe();
    if (!cqe.isOk()) return settle(cqe.status());
    int res = (*cqe)->res;
    seen(*cqe);
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
      if (sqe == nullptr) return settle(internalError("io_uring: no submission slot"));
      prep(sqe, false, fd, buf + pos, std::min(kSegment, total - pos), off + from + pos);
      io_uring_sqe_set_data64(sqe, i);
    }
    if (Status s = submit(1); !s.isOk()) return settle(s);
    size_t next = 0;       // first segment not yet part of the prefix
    size_t prefix = 0;     // contiguous bytes complete
    bool stopped = false;  // a short or failed segment ends the prefix
    Status err;
    for (size_t got = 0; got < segs;) {
      auto cqe = waitCqe();
      if (!cqe.isOk()) return settle(cqe.status());
      const size_t i = io_uring_cqe_get_data64(*cqe);
      state[i].res = (*cqe)->res;
      state[i].finished = true;
      seen(*cqe);
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
  std::shared_ptr<RingFaults> faults_;  // null outside tests
  io_uring ring_{};
  bool ready_ = false;
  bool registered_ = false;
  unsigned inflight_ = 0;  // submitted entries whose completion is not yet seen
  Status broken_;          // set by settle() when the ring is given up
};

class UringFileIo final : public FileIo {
 public:
  UringFileIo(unsigned depth, std::shared_ptr<RingFaults> faults)
      : depth_(depth), faults_(std::move(faults)) {}

  Result<std::unique_ptr<IoQueue>> newQueue(uint8_t* buf, size_t size) override {
    auto q = std::make_unique<UringQueue>(depth_, buf, size, faults_);
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
  std::shared_ptr<RingFaults> faults_;
};

}  // namespace

std::shared_ptr<FileIo> makeUringFileIo(unsigned queue_depth, std::shared_ptr<RingFaults> faults) {
  return std::make_shared<UringFileIo>(queue_depth < 4 ? 4 : queue_depth, std::move(faults));
}

uint64_t ioRingsLost() { return ringsLost().value(); }

}  // namespace sluice::storage
