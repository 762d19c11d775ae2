#include "tools/cli/part_files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace sluice::cli {
namespace {

// A seqlock per slot: `seq` is odd while the owner changes `path`, so the
// signal handler uses a path only when it saw the same even `seq` before
// and after copying it.
struct Slot {
  std::atomic<bool> taken{false};
  std::atomic<uint32_t> seq{0};
  char path[PATH_MAX] = {};
};
static_assert(std::atomic<uint32_t>::is_always_lock_free && std::atomic<bool>::is_always_lock_free &&
                  std::atomic<int>::is_always_lock_free,
              "the signal handler needs lock-free atomics");

Slot g_slots[kMaxPartFiles];
// Threads between registering a path and having created its file: the
// handler waits for them, or it could delete a file before it exists and
// exit just after another thread created it.
std::atomic<int> g_creating{0};
std::atomic<bool> g_stopping{false};

void setPath(Slot& s, const char* path, size_t length) {
  s.seq.fetch_add(1, std::memory_order_acq_rel);
  std::memcpy(s.path, path, length);
  s.path[length] = '\0';
  s.seq.fetch_add(1, std::memory_order_release);
}

}  // namespace

int PartFile::create(int flags, mode_t mode) {
  g_creating.fetch_add(1);
  if (g_stopping.load()) {
    // The handler is deleting part files and about to end the process:
    // wait for it, rather than fail and let the command exit first with
    // another code.
    g_creating.fetch_sub(1);
    for (;;) ::pause();
  }
  if (slot_ < 0 && path_.size() < PATH_MAX) {
    for (int i = 0; i < kMaxPartFiles; ++i) {
      bool free = false;
      if (!g_slots[i].taken.compare_exchange_strong(free, true, std::memory_order_acq_rel)) continue;
      setPath(g_slots[i], path_.c_str(), path_.size());
      slot_ = i;
      break;
    }
  }
  int fd = ::open(path_.c_str(), flags, mode);
  const int err = errno;
  g_creating.fetch_sub(1);
  errno = err;
  return fd;
}

PartFile::~PartFile() {
  if (slot_ < 0) return;
  setPath(g_slots[slot_], "", 0);
  g_slots[slot_].taken.store(false, std::memory_order_release);
}

void removePartFiles() noexcept {
  g_stopping.store(true);
  // Up to half a second; a create() interrupted by this very handler on its
  // own thread never finishes, and its file does not exist yet.
  for (int i = 0; i < 500 && g_creating.load() > 0; ++i) {
    struct timespec ms = {0, 1000000};
    ::nanosleep(&ms, nullptr);
  }
  char copy[PATH_MAX];
  for (Slot& s : g_slots) {
    const uint32_t before = s.seq.load(std::memory_order_acquire);
    if (before % 2 != 0) continue;  // being cleared: its file is renamed or gone
    std::memcpy(copy, s.path, sizeof copy);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(std::memory_order_relaxed) != before) continue;
    copy[PATH_MAX - 1] = '\0';
    if (copy[0] != '\0') ::unlink(copy);
  }
}

}  // namespace sluice::cli
