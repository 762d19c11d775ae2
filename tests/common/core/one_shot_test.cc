#include "common/core/one_shot.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace sluice {
namespace {

TEST(OneShotTest, TakesAValueSetBeforeItAsks) {
  OneShot<std::string> shot;
  shot.set("early");
  EXPECT_EQ(shot.take(), "early");
}

TEST(OneShotTest, WakesATakerThatIsAsleep) {
  auto shot = std::make_shared<OneShot<std::unique_ptr<int>>>();
  std::thread setter([shot] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the taker is asleep by then
    shot->set(std::make_unique<int>(42));
  });
  std::unique_ptr<int> got = shot->take();
  setter.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 42);
}

TEST(OneShotTest, ManyHandOffsNeverLoseAWakeUp) {
  for (int i = 0; i < 2000; ++i) {
    auto shot = std::make_shared<OneShot<int>>();
    std::thread setter([shot, i] { shot->set(i); });
    EXPECT_EQ(shot->take(), i);
    setter.join();
  }
}

}  // namespace
}  // namespace sluice
