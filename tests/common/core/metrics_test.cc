#include <cmath>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/core/clock.h"
#include "common/core/metrics.h"

namespace sluice {
namespace {

using namespace std::chrono_literals;

TEST(Metrics, ExpositionExactText) {
  MetricsRegistry r;
  r.counter("sluice_test_requests_total", "Requests handled.", {{"op", "get_chunk"}}).inc(3);
  r.counter("sluice_test_requests_total", "ignored help", {{"op", "put_chunk"}}).inc();
  r.gauge("sluice_test_inflight", "Requests in flight.").set(-2);
  Histogram& h = r.histogram("sluice_test_latency_seconds", "Latency.\nSecond line \\ end",
                             {{"z", "last"}, {"op", "a\"b"}});
  h.observe(1500ns);  // -> le 0.000002
  h.observe(3ms);     // -> le 0.005
  h.observe(200s);    // -> +Inf

  std::string expected =
      "# HELP sluice_test_inflight Requests in flight.\n"
      "# TYPE sluice_test_inflight gauge\n"
      "sluice_test_inflight -2\n"
      "# HELP sluice_test_latency_seconds Latency.\\nSecond line \\\\ end\n"
      "# TYPE sluice_test_latency_seconds histogram\n";
  const char* les[] = {"0.000001", "0.000002", "0.000005", "0.00001", "0.00002", "0.00005",
                       "0.0001",   "0.0002",   "0.0005",   "0.001",   "0.002",   "0.005",
                       "0.01",     "0.02",     "0.05",     "0.1",     "0.2",     "0.5",
                       "1",        "2",        "5",        "10",      "20",      "50",
                       "100",      "+Inf"};
  for (int i = 0; i < 26; ++i) {
    int cumulative = i == 0 ? 0 : i < 11 ? 1 : i < 25 ? 2 : 3;
    expected += std::string("sluice_test_latency_seconds_bucket{op=\"a\\\"b\",z=\"last\",le=\"") +
                les[i] + "\"} " + std::to_string(cumulative) + "\n";
  }
  expected +=
      "sluice_test_latency_seconds_sum{op=\"a\\\"b\",z=\"last\"} 200.0030015\n"
      "sluice_test_latency_seconds_count{op=\"a\\\"b\",z=\"last\"} 3\n"
      "# HELP sluice_test_requests_total Requests handled.\n"
      "# TYPE sluice_test_requests_total counter\n"
      "sluice_test_requests_total{op=\"get_chunk\"} 3\n"
      "sluice_test_requests_total{op=\"put_chunk\"} 1\n";
  EXPECT_EQ(r.exposition(), expected);
}

TEST(Metrics, SameNameAndLabelsIsTheSameMetric) {
  MetricsRegistry r;
  Counter& a = r.counter("c_total", "h", {{"x", "1"}, {"y", "2"}});
  Counter& b = r.counter("c_total", "h", {{"y", "2"}, {"x", "1"}});
  Counter& c = r.counter("c_total", "h", {{"x", "2"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  EXPECT_EQ(&r.histogram("h_seconds", "h"), &r.histogram("h_seconds", "h"));
}

TEST(Metrics, ConcurrentUpdatesSumCorrectly) {
  MetricsRegistry r;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&r, t] {
      // Registration from several threads races too.
      Counter& c = r.counter("sluice_test_ops_total", "ops");
      Gauge& g = r.gauge("sluice_test_level", "level");
      Histogram& h = r.histogram("sluice_test_op_seconds", "op latency");
      for (int i = 0; i < kPerThread; ++i) {
        c.inc();
        g.add(t % 2 == 0 ? 1 : -1);
        h.observe(std::chrono::microseconds(i % 1000));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(r.counter("sluice_test_ops_total", "").value(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(r.gauge("sluice_test_level", "").value(), 0);
  HistogramSnapshot s = r.histogram("sluice_test_op_seconds", "").snapshot();
  EXPECT_EQ(s.count, uint64_t{kThreads} * kPerThread);
  // Each thread observes 0..999 µs exactly 100 times each.
  uint64_t expectedSumNanos = uint64_t{kThreads} * 100 * (999 * 1000 / 2) * 1000;
  EXPECT_EQ(s.sumNanos, expectedSumNanos);
  EXPECT_EQ(s.buckets.back().cumulativeCount, s.count);
}

TEST(Metrics, BucketBoundsAreInclusive) {
  Histogram h;
  h.observe(1us);    // exactly on the first bound
  h.observe(1001ns); // just above: second bucket
  h.observe(-5ns);   // clamped to 0: first bucket
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.buckets[0].cumulativeCount, 2u);
  EXPECT_EQ(s.buckets[1].cumulativeCount, 3u);
  EXPECT_EQ(Histogram::upperBoundsNanos().front(), 1000u);
  EXPECT_EQ(Histogram::upperBoundsNanos().back(), 100000000000u);
}

TEST(Metrics, PercentileInterpolatesInsideBucket) {
  Histogram h;
  for (int i = 0; i < 90; ++i) h.observe(150us);  // bucket (100µs, 200µs]
  for (int i = 0; i < 10; ++i) h.observe(30ms);   // bucket (20ms, 50ms]
  HistogramSnapshot s = h.snapshot();
  // Rank 50 of 90 in (100µs, 200µs]: 100µs + 100µs * 50/90.
  EXPECT_NEAR(s.percentile(0.5), 100e-6 + 100e-6 * 50.0 / 90.0, 1e-12);
  // Rank 99 is the 9th of 10 in (20ms, 50ms].
  EXPECT_NEAR(s.percentile(0.99), 0.020 + 0.030 * 9.0 / 10.0, 1e-12);
  EXPECT_NEAR(s.percentile(1.0), 0.050, 1e-12);
  EXPECT_NEAR(s.percentile(0.0), 100e-6, 1e-12);
}

TEST(Metrics, PercentileEdgeCases) {
  EXPECT_EQ(Histogram().snapshot().percentile(0.99), 0.0);
  EXPECT_EQ(estimatePercentile({}, 0.5), 0.0);
  Histogram h;
  h.observe(1000s);  // beyond the last bound: reported as the last finite bound
  EXPECT_EQ(h.snapshot().percentile(0.5), 100.0);
  // Buckets parsed from text, as the CLI will have them.
  std::vector<CumulativeBucket> parsed = {
      {0.001, 0}, {0.01, 10}, {std::numeric_limits<double>::infinity(), 10}};
  EXPECT_NEAR(estimatePercentile(parsed, 0.5), 0.001 + 0.009 * 0.5, 1e-12);
}

TEST(Metrics, LatencyTimerUsesInjectedClock) {
  ManualClock clock;
  Histogram h;
  {
    LatencyTimer t(h, clock);
    clock.advance(3ms);
  }
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count, 1u);
  EXPECT_EQ(s.sumNanos, 3000000u);
}

TEST(MetricsDeathTest, MisuseAbortsNamingTheMetric) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MetricsRegistry r;
  r.counter("dual", "h");
  EXPECT_DEATH(r.gauge("dual", "h"), "metric 'dual': registered again with a different type");
  EXPECT_DEATH(r.counter("bad-name", "h"), "metric 'bad-name': bad metric name");
  EXPECT_DEATH(r.counter("ok", "h", {{"le", "1"}}), "bad label name 'le'");
}

TEST(Metrics, GlobalRegistryIsShared) {
  Counter& a = MetricsRegistry::global().counter("sluice_test_global_total", "g");
  a.inc();
  std::string line = "sluice_test_global_total " + std::to_string(a.value()) + "\n";
  EXPECT_NE(MetricsRegistry::global().exposition().find(line), std::string::npos);
}

}  // namespace
}  // namespace sluice
