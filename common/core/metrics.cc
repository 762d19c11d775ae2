#include "common/core/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace sluice {
namespace {

constexpr std::array<uint64_t, Histogram::kFiniteBuckets> makeBounds() {
  std::array<uint64_t, Histogram::kFiniteBuckets> bounds{};
  uint64_t decade = 1000;  // 1 µs in ns
  size_t i = 0;
  while (i < bounds.size()) {
    for (uint64_t step : {1, 2, 5}) {
      if (i < bounds.size()) bounds[i++] = step * decade;
    }
    decade *= 10;
  }
  return bounds;
}

constexpr std::array<uint64_t, Histogram::kFiniteBuckets> kBounds = makeBounds();
static_assert(kBounds.back() == 100ull * 1000 * 1000 * 1000, "buckets must end at 100 s");

[[noreturn]] void misuse(std::string_view name, const std::string& what) {
  std::fprintf(stderr, "sluice metrics: metric '%.*s': %s\n", static_cast<int>(name.size()),
               name.data(), what.c_str());
  std::abort();
}

bool validName(std::string_view s, bool allowColon) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (allowColon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string escapeLabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escapeHelp(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Canonical `a="x",b="y"` text, sorted by label name.
std::string renderLabels(std::string_view metric, Labels labels) {
  std::sort(labels.begin(), labels.end());
  std::string out;
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto& [name, value] = labels[i];
    if (!validName(name, false) || name == "le" || name.rfind("__", 0) == 0) {
      misuse(metric, "bad label name '" + name + "'");
    }
    if (i > 0 && labels[i - 1].first == name) misuse(metric, "label '" + name + "' given twice");
    if (i > 0) out += ',';
    out += name + "=\"" + escapeLabelValue(value) + "\"";
  }
  return out;
}

// Exact decimal seconds from integer nanoseconds: 1000 -> "0.000001".
std::string nanosAsSeconds(uint64_t nanos) {
  std::string out = std::to_string(nanos / 1000000000);
  uint64_t frac = nanos % 1000000000;
  if (frac != 0) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), ".%09llu", static_cast<unsigned long long>(frac));
    std::string f(buf);
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out;
}

std::string braced(const std::string& labels) { return labels.empty() ? "" : "{" + labels + "}"; }

}  // namespace

double estimatePercentile(std::span<const CumulativeBucket> buckets, double q) {
  if (buckets.empty()) return 0;
  uint64_t total = buckets.back().cumulativeCount;
  if (total == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  double rank = q * static_cast<double>(total);
  double lower = 0;
  uint64_t below = 0;
  for (const CumulativeBucket& b : buckets) {
    if (static_cast<double>(b.cumulativeCount) >= rank && b.cumulativeCount > below) {
      if (std::isinf(b.upperBound)) return lower;
      double inBucket = static_cast<double>(b.cumulativeCount - below);
      return lower + (b.upperBound - lower) * (rank - static_cast<double>(below)) / inBucket;
    }
    if (!std::isinf(b.upperBound)) lower = b.upperBound;
    below = b.cumulativeCount;
  }
  return lower;
}

const std::array<uint64_t, Histogram::kFiniteBuckets>& Histogram::upperBoundsNanos() {
  return kBounds;
}

void Histogram::observe(std::chrono::nanoseconds latency) {
  uint64_t ns = latency.count() > 0 ? static_cast<uint64_t>(latency.count()) : 0;
  size_t index = static_cast<size_t>(std::lower_bound(kBounds.begin(), kBounds.end(), ns) -
                                     kBounds.begin());
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  sumNanos_.fetch_add(ns, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot s;
  s.buckets.reserve(kFiniteBuckets + 1);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kFiniteBuckets; ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    double bound = i < kFiniteBuckets ? static_cast<double>(kBounds[i]) / 1e9
                                      : std::numeric_limits<double>::infinity();
    s.buckets.push_back({bound, cumulative});
  }
  s.count = cumulative;
  s.sumNanos = sumNanos_.load(std::memory_order_relaxed);
  return s;
}

struct MetricsRegistry::Family {
  Type type;
  std::string help;
  struct Series {
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  std::map<std::string, Series> series;  // by rendered labels
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry& MetricsRegistry::global() {
  static MetricsRegistry* registry = new MetricsRegistry();  // outlives static destructors
  return *registry;
}

void* MetricsRegistry::getOrCreate(std::string_view name, std::string_view help,
                                   const Labels& labels, Type type) {
  if (!validName(name, true)) misuse(name, "bad metric name");
  std::string rendered = renderLabels(name, labels);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto family = std::make_unique<Family>();
    family->type = type;
    family->help = std::string(help);
    it = families_.emplace(std::string(name), std::move(family)).first;
  }
  Family& family = *it->second;
  if (family.type != type) misuse(name, "registered again with a different type");
  Family::Series& s = family.series[rendered];
  switch (type) {
    case Type::kCounter:
      if (!s.counter) s.counter = std::make_unique<Counter>();
      return s.counter.get();
    case Type::kGauge:
      if (!s.gauge) s.gauge = std::make_unique<Gauge>();
      return s.gauge.get();
    case Type::kHistogram:
      if (!s.histogram) s.histogram = std::make_unique<Histogram>();
      return s.histogram.get();
  }
  misuse(name, "unknown metric type");
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help,
                                  const Labels& labels) {
  return *static_cast<Counter*>(getOrCreate(name, help, labels, Type::kCounter));
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  return *static_cast<Gauge*>(getOrCreate(name, help, labels, Type::kGauge));
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                      const Labels& labels) {
  return *static_cast<Histogram*>(getOrCreate(name, help, labels, Type::kHistogram));
}

std::string MetricsRegistry::exposition() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    const char* type = family->type == Type::kCounter ? "counter"
                       : family->type == Type::kGauge ? "gauge"
                                                      : "histogram";
    out += "# HELP " + name + " " + escapeHelp(family->help) + "\n";
    out += "# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, s] : family->series) {
      switch (family->type) {
        case Type::kCounter:
          out += name + braced(labels) + " " + std::to_string(s.counter->value()) + "\n";
          break;
        case Type::kGauge:
          out += name + braced(labels) + " " + std::to_string(s.gauge->value()) + "\n";
          break;
        case Type::kHistogram: {
          HistogramSnapshot snap = s.histogram->snapshot();
          std::string prefix = labels.empty() ? "" : labels + ",";
          for (size_t i = 0; i < snap.buckets.size(); ++i) {
            std::string le = i < Histogram::kFiniteBuckets ? nanosAsSeconds(kBounds[i]) : "+Inf";
            out += name + "_bucket{" + prefix + "le=\"" + le + "\"} " +
                   std::to_string(snap.buckets[i].cumulativeCount) + "\n";
          }
          out += name + "_sum" + braced(labels) + " " + nanosAsSeconds(snap.sumNanos) + "\n";
          out += name + "_count" + braced(labels) + " " + std::to_string(snap.count) + "\n";
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace sluice
