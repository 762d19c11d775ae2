#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "common/core/clock.h"

namespace sluice {
namespace {

using namespace std::chrono_literals;

TEST(RealClock, MonotonicAndSleeps) {
  Clock& clock = Clock::real();
  Clock::TimePoint a = clock.now();
  clock.sleepFor(1ms);
  EXPECT_GE(clock.now() - a, Clock::Duration(1ms));
  clock.sleepFor(-5ms);  // negative durations return at once
}

TEST(ManualClock, TimeMovesOnlyOnAdvance) {
  ManualClock clock;
  Clock::TimePoint t0 = clock.now();
  auto w0 = clock.wallNow();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(5s);
  EXPECT_EQ(clock.now() - t0, Clock::Duration(5s));
  EXPECT_EQ(clock.wallNow() - w0, std::chrono::system_clock::duration(5s));
  clock.sleepFor(0s);  // zero sleeps do not block
}

TEST(ManualClock, SleeperWakesOnlyWhenDeadlinePasses) {
  ManualClock clock;
  std::atomic<int> woke{0};
  std::thread sleeper([&] {
    clock.sleepFor(10s);
    woke = 1;
  });
  ASSERT_TRUE(clock.waitForSleepers(1));
  clock.advance(9s);
  // Still asleep: the sleeper count stays 1 until the deadline is reached.
  EXPECT_EQ(clock.sleepers(), 1u);
  EXPECT_EQ(woke.load(), 0);
  clock.advance(1s);
  sleeper.join();
  EXPECT_EQ(woke.load(), 1);
  EXPECT_EQ(clock.sleepers(), 0u);
}

TEST(ManualClock, SleepUntilUsesDeadline) {
  ManualClock clock;
  Clock::TimePoint deadline = clock.now() + 3s;
  std::thread t([&] { clock.sleepUntil(deadline); });
  ASSERT_TRUE(clock.waitForSleepers(1));
  clock.advance(3s);
  t.join();
  EXPECT_EQ(clock.now(), deadline);
  clock.sleepUntil(deadline - 1s);  // past deadlines return at once
}

TEST(ManualClock, WaitForSleepersTimesOut) {
  ManualClock clock;
  EXPECT_FALSE(clock.waitForSleepers(1, 1ms));
}

}  // namespace
}  // namespace sluice
