// ProgressMeter: what a long CLI operation shows while it works.
//
// "put   1,204/5,000 files   1.2 GiB/4.0 GiB   352 MB/s   ETA 0:08". On a
// terminal the line is redrawn in place at most every 200 ms; elsewhere (a
// log, CI) a full line is printed every few seconds. Thread safety: add() may
// be called from any thread; render work is rate limited and lock-free for
// callers that lose the race.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace sluice::client {

class ProgressMeter {
 public:
  // `label` names the operation ("put", "get"); totals may be 0 if unknown.
  ProgressMeter(std::string label, uint64_t total_files, uint64_t total_bytes,
                FILE* out = stderr);
  ~ProgressMeter();

  void add(uint64_t files, uint64_t bytes);
  // Prints the final line (always), with the elapsed time and average rate.
  void finish();
  void setEnabled(bool enabled) { enabled_ = enabled; }
  // What the counted items are called ("files" unless set; "moves" for repair).
  void setUnit(std::string unit) { unit_ = std::move(unit); }

  uint64_t files() const { return files_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  double elapsedSeconds() const;

  // "1.2 GiB", "512 B" — shared by every CLI table.
  static std::string formatBytes(uint64_t bytes);
  // "4,096"
  static std::string formatCount(uint64_t n);
  // "0:08", "1:02:03"
  static std::string formatDuration(double seconds);

 private:
  std::string line(bool final) const;
  void maybeRender();

  const std::string label_;
  const uint64_t total_files_;
  const uint64_t total_bytes_;
  FILE* const out_;
  const bool tty_;
  const std::chrono::steady_clock::time_point start_;
  bool enabled_ = true;
  std::string unit_ = "files";
  bool finished_ = false;
  std::atomic<uint64_t> files_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<int64_t> last_render_ns_{0};
  std::mutex render_mu_;
};

}  // namespace sluice::client
