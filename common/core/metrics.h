// Process-wide metrics: counters, gauges and latency histograms with labels,
// exported in the Prometheus text format (version 0.0.4) by MetricsServer.
//
//   static Counter& puts = MetricsRegistry::global().counter(
//       "sluice_storage_requests_total", "Requests handled.", {{"op", "put_chunk"}});
//   static Histogram& putLatency = MetricsRegistry::global().histogram(
//       "sluice_storage_request_seconds", "Request latency.", {{"op", "put_chunk"}});
//   puts.inc();
//   LatencyTimer timer(putLatency);  // observes on scope exit
//
// Naming: `sluice_<component>_<what>`, counters end in `_total`, latency
// histograms in `_seconds`.
//
// Thread safety: registration takes a lock and may be called from any thread;
// the returned references stay valid for the registry's lifetime. Updating a
// metric is lock-free (relaxed atomics) and may race with exposition; a
// scrape sees each value at some moment during the scrape.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/core/clock.h"

namespace sluice {

// Label name/value pairs, e.g. {{"op", "get_chunk"}}. Order does not matter.
using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void add(int64_t d) { value_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// One bucket of a cumulative histogram as exposed by Prometheus:
// `cumulativeCount` observations were <= `upperBound` (seconds; +inf last).
struct CumulativeBucket {
  double upperBound;
  uint64_t cumulativeCount;
};

// Estimates the q-quantile (0 <= q <= 1) the way Prometheus'
// histogram_quantile does: finds the bucket holding rank q*count and
// interpolates linearly inside it (from 0 for the first bucket). A rank in the
// +inf bucket returns the largest finite bound. Returns 0 for no observations.
// Usable on buckets parsed from another process's /metrics text.
double estimatePercentile(std::span<const CumulativeBucket> buckets, double q);

struct HistogramSnapshot {
  std::vector<CumulativeBucket> buckets;  // finite bounds ascending, then +inf
  uint64_t count = 0;
  uint64_t sumNanos = 0;

  // Seconds; see estimatePercentile.
  double percentile(double q) const { return estimatePercentile(buckets, q); }
};

// Latency histogram with fixed buckets: the 1-2-5 series from 1 µs to 100 s
// (1µs, 2µs, 5µs, 10µs, …, 50s, 100s) plus +Inf. Observing is a binary
// search over 25 bounds and two relaxed atomic adds.
class Histogram {
 public:
  static constexpr size_t kFiniteBuckets = 25;
  // Upper bounds in nanoseconds; bucket i counts observations <= bound i.
  static const std::array<uint64_t, kFiniteBuckets>& upperBoundsNanos();

  void observe(std::chrono::nanoseconds latency);
  HistogramSnapshot snapshot() const;

 private:
  std::array<std::atomic<uint64_t>, kFiniteBuckets + 1> counts_{};  // last is +Inf
  std::atomic<uint64_t> sumNanos_{0};
};

// Observes the time from construction to destruction into a histogram.
class LatencyTimer {
 public:
  explicit LatencyTimer(Histogram& histogram, Clock& clock = Clock::real())
      : histogram_(histogram), clock_(clock), start_(clock.now()) {}
  ~LatencyTimer() { histogram_.observe(clock_.now() - start_); }
  LatencyTimer(const LatencyTimer&) = delete;
  LatencyTimer& operator=(const LatencyTimer&) = delete;

 private:
  Histogram& histogram_;
  Clock& clock_;
  Clock::TimePoint start_;
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The registry every daemon exports. Never destroyed.
  static MetricsRegistry& global();

  // Returns the metric registered under name+labels, creating it on first
  // use (the first call's help text is kept).
  // REQUIRES: `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*, label names match
  // [a-zA-Z_][a-zA-Z0-9_]* and are not "le"; a name is only ever registered
  // with one type. Violations are programming errors and abort with a message
  // naming the metric, so they surface in the first test that registers it.
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, const Labels& labels = {});

  // Prometheus text exposition: families sorted by name, series by labels.
  std::string exposition() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family;
  void* getOrCreate(std::string_view name, std::string_view help, const Labels& labels, Type type);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;  // GUARDED_BY(mu_)
};

}  // namespace sluice
