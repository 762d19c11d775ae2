#include "storage_node/scrubber.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "storage_node/rate_limiter.h"

namespace sluice::storage {

Scrubber::Scrubber(ChunkStore& store, ScrubOptions options, Clock& clock)
    : store_(store), options_(options), clock_(clock) {}

Scrubber::~Scrubber() { stop(); }

Status Scrubber::start() {
  if (options_.bytes_per_sec == 0) return Status::ok();
  SLUICE_ASSIGN_OR_RETURN(ctx_, store_.newContext());
  thread_ = std::thread([this] { run(); });
  return Status::ok();
}

void Scrubber::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t Scrubber::kick() {
  uint64_t done_at;
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
    // A running pass may already have passed chunks damaged before the kick,
    // so only the pass after it counts.
    done_at = passes_.load() + (in_pass_ ? 2 : 1);
  }
  cv_.notify_all();
  return done_at;
}

ScrubStats Scrubber::stats() const {
  return ScrubStats{passes_.load(), bytes_.load(), chunks_.load(), corrupt_.load()};
}

bool Scrubber::waitFor(std::chrono::nanoseconds d) {
  std::unique_lock lock(mu_);
  if (d > std::chrono::nanoseconds::zero()) {
    cv_.wait_for(lock, d, [&] { return stopping_ || kicked_; });
  }
  return !stopping_;
}

void Scrubber::run() {
  RateLimiter limiter(options_.bytes_per_sec, clock_);
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      kicked_ = false;
      in_pass_ = true;
    }
    for (const ChunkId& id : store_.allIds()) {
      auto info = store_.find(id);
      if (!info) continue;  // deleted or quarantined since the list was taken
      // Wait before the read so the disk sees at most the configured rate.
      auto wait = limiter.reserve(info->length);
      {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, wait, [&] { return stopping_; });
        if (stopping_) return;
      }
      Status s = store_.verify(*ctx_, id);
      ++chunks_;
      if (s.isOk()) {
        bytes_ += info->length;
      } else if (s.code() == StatusCode::kCorruption) {
        ++corrupt_;
        spdlog::error("scrub: {}", s.toString());
      } else if (s.code() != StatusCode::kNotFound) {
        spdlog::warn("scrub: chunk {}: {}", id.toHex(), s.toString());
      }
      if (ctx_->queue().outOfService()) {
        // Kept, not freed: its transfers may still land in its buffer. A
        // few rings lost is a fluke; more is a node to restart.
        auto fresh = retired_.size() < kMaxRetiredRings ? store_.newContext()
                                                         : Result<std::unique_ptr<IoContext>>(
                                                               unavailable("too many rings lost"));
        if (!fresh.isOk()) {
          spdlog::error("scrub: stopped until the node restarts: its I/O ring is out of service ({})",
                        fresh.status().toString());
          return;
        }
        retired_.push_back(std::exchange(ctx_, std::move(fresh).value()));
      }
    }
    {
      std::lock_guard lock(mu_);
      in_pass_ = false;
      ++passes_;
    }
    if (!waitFor(options_.interval)) return;
  }
}

}  // namespace sluice::storage
