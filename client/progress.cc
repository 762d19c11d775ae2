#include "client/progress.h"

#include <unistd.h>

#include <cinttypes>

namespace sluice::client {
namespace {

constexpr int64_t kTtyIntervalNs = 200'000'000;
constexpr int64_t kLogIntervalNs = 5'000'000'000;

}  // namespace

ProgressMeter::ProgressMeter(std::string label, uint64_t total_files, uint64_t total_bytes,
                             FILE* out)
    : label_(std::move(label)),
      total_files_(total_files),
      total_bytes_(total_bytes),
      out_(out),
      tty_(out != nullptr && isatty(fileno(out))),
      start_(std::chrono::steady_clock::now()) {}

ProgressMeter::~ProgressMeter() {
  if (tty_ && !finished_ && enabled_ && last_render_ns_.load() != 0) {
    std::fputc('\n', out_);  // leave the terminal on a fresh line after an error
  }
}

double ProgressMeter::elapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressMeter::add(uint64_t files, uint64_t bytes) {
  files_.fetch_add(files, std::memory_order_relaxed);
  bytes_.fetch_add(bytes, std::memory_order_relaxed);
  maybeRender();
}

void ProgressMeter::maybeRender() {
  if (!enabled_ || out_ == nullptr) return;
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now() - start_)
                    .count();
  int64_t last = last_render_ns_.load(std::memory_order_relaxed);
  int64_t interval = tty_ ? kTtyIntervalNs : kLogIntervalNs;
  if (now - last < interval) return;
  std::unique_lock lock(render_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  if (!last_render_ns_.compare_exchange_strong(last, now)) return;
  std::string l = line(false);
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s", l.c_str());
  } else {
    std::fprintf(out_, "%s\n", l.c_str());
  }
  std::fflush(out_);
}

void ProgressMeter::finish() {
  if (finished_) return;
  finished_ = true;
  if (!enabled_ || out_ == nullptr) return;
  std::lock_guard lock(render_mu_);
  std::string l = line(true);
  std::fprintf(out_, tty_ ? "\r\033[K%s\n" : "%s\n", l.c_str());
  std::fflush(out_);
}

std::string ProgressMeter::line(bool final) const {
  uint64_t files = files_.load(std::memory_order_relaxed);
  uint64_t bytes = bytes_.load(std::memory_order_relaxed);
  double secs = elapsedSeconds();
  double rate = secs > 0 ? static_cast<double>(bytes) / secs : 0;
  std::string out = label_;
  out.resize(std::max<size_t>(out.size(), 5), ' ');
  out += "  " + formatCount(files);
  if (total_files_ > 0) out += "/" + formatCount(total_files_);
  out += " " + unit_ + "  " + formatBytes(bytes);
  if (total_bytes_ > 0) out += "/" + formatBytes(total_bytes_);
  out += "  " + formatBytes(static_cast<uint64_t>(rate)) + "/s";
  if (final) {
    out += "  in " + formatDuration(secs);
  } else if (total_bytes_ > bytes && rate > 0) {
    out += "  ETA " + formatDuration(static_cast<double>(total_bytes_ - bytes) / rate);
  }
  return out;
}

std::string ProgressMeter::formatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 5) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof buf, "%" PRIu64 " B", bytes);
  } else {
    std::snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : (v < 100 ? "%.1f %s" : "%.0f %s"), v,
                  kUnits[unit]);
  }
  return buf;
}

std::string ProgressMeter::formatCount(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string ProgressMeter::formatDuration(double seconds) {
  if (seconds < 0) seconds = 0;
  uint64_t s = static_cast<uint64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600,
                  (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%" PRIu64 ":%02" PRIu64, s / 60, s % 60);
  }
  return buf;
}

}  // namespace sluice::client
