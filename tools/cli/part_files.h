// The temporary files (`*.sluice-part`) a command is writing, so that a stop
// signal's handler can delete them before the process exits: an interrupted
// `sluice get` leaves the files it finished and nothing half-written.
//
// PartFile::create opens a file and registers its path for the PartFile's
// lifetime; removePartFiles() is async-signal-safe (lock-free atomics,
// nanosleep, unlink) and may run on any thread while others go on working.
#pragma once

#include <sys/types.h>

#include <string>

namespace sluice::cli {

inline constexpr int kMaxPartFiles = 64;

class PartFile {
 public:
  explicit PartFile(std::string path) : path_(std::move(path)) {}
  ~PartFile();
  PartFile(const PartFile&) = delete;
  PartFile& operator=(const PartFile&) = delete;

  // open(2) of the path, registered first. Once a stop signal arrived it
  // does not return (the handler ends the process). Past kMaxPartFiles at
  // once, or with a path too long, the file is not tracked (an interruption
  // then leaves it; a re-run replaces it).
  int create(int flags, mode_t mode);

 private:
  std::string path_;
  int slot_ = -1;
};

// Deletes every registered file, after waiting (briefly) for files being
// created on other threads. For stop-signal handlers; later create() calls
// fail.
void removePartFiles() noexcept;

}  // namespace sluice::cli
