#include "client/uring_write.h"

#include <errno.h>
#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <string>

namespace sluice::client {
namespace {

class ThreadRing {
 public:
  ThreadRing() { ok_ = io_uring_queue_init(4, &ring_, 0) == 0; }
  ~ThreadRing() {
    if (ok_) io_uring_queue_exit(&ring_);
  }
  bool ok() const { return ok_; }

  // One write; the byte count or -errno.
  int write(int fd, const uint8_t* data, size_t size, uint64_t offset) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return -EBUSY;
    io_uring_prep_write(sqe, fd, data, static_cast<unsigned>(size), offset);
    int rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc < 0) return rc;
    io_uring_cqe* cqe = nullptr;
    rc = io_uring_wait_cqe(&ring_, &cqe);
    if (rc < 0) return rc;
    int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    return res;
  }

 private:
  io_uring ring_{};
  bool ok_ = false;
};

}  // namespace

Status writeAll(int fd, std::span<const uint8_t> data, const std::string& what) {
  thread_local ThreadRing ring;
  size_t done = 0;
  while (done < data.size()) {
    size_t piece = std::min<size_t>(data.size() - done, 1u << 30);
    int n;
    if (ring.ok()) {
      n = ring.write(fd, data.data() + done, piece, done);
    } else {
      ssize_t w = ::pwrite(fd, data.data() + done, piece, static_cast<off_t>(done));
      n = w < 0 ? -errno : static_cast<int>(w);
    }
    if (n == -EINTR || n == -EAGAIN) continue;
    if (n < 0) return errnoStatus(-n, "writing " + what);
    if (n == 0) return ioError("writing " + what + ": no progress");
    done += static_cast<size_t>(n);
  }
  return Status::ok();
}

}  // namespace sluice::client
