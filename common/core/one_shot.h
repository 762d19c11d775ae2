// OneShot<T>: a value handed from one thread to another exactly once, what a
// blocking call needs of std::promise and std::future and no more: two
// syscalls when the taker has to sleep (its futex wait and the setter's
// wake), none when the value is there first.
//
// std::promise publishes its value through std::call_once, and glibc's
// call_once ends with a futex wake every time, whether anyone waits or not;
// a mutex and condition variable make the same third syscall (glibc re-takes
// the mutex after a wait marked contended, so its unlock wakes); C++20's
// atomic wait in libstdc++ 12 spins through a dozen sched_yield calls first.
//
// Share it (std::shared_ptr) between the setter and the taker: set() touches
// it after the taker may have returned.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <optional>
#include <utility>

namespace sluice {

template <typename T>
class OneShot {
 public:
  // Call once.
  void set(T value) {
    value_.emplace(std::move(value));
    if (state_.exchange(kSet, std::memory_order_acq_rel) == kAsleep) {
      ::syscall(SYS_futex, &state_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    }
  }

  // Waits for set(); call once.
  T take() {
    int expected = kEmpty;
    if (state_.compare_exchange_strong(expected, kAsleep, std::memory_order_acq_rel)) {
      // Woken early (a signal, a stale wake) the loop sleeps again.
      while (state_.load(std::memory_order_acquire) != kSet) {
        ::syscall(SYS_futex, &state_, FUTEX_WAIT_PRIVATE, kAsleep, nullptr, nullptr, 0);
      }
    }
    return std::move(*value_);
  }

 private:
  static constexpr int kEmpty = 0;
  static constexpr int kAsleep = 1;  // the taker sleeps (or is about to) on state_
  static constexpr int kSet = 2;

  std::optional<T> value_;  // written by set() before state_, read by take() after
  std::atomic<int> state_{kEmpty};
  static_assert(sizeof(std::atomic<int>) == sizeof(int), "the futex word is the atomic itself");
};

// The taker's side of a OneShot, for a function that starts work and hands
// back its result to wait for (as std::future would). Dropping it unread is
// fine: the setter holds the OneShot until it has set it.
template <typename T>
class Awaited {
 public:
  Awaited() = default;
  explicit Awaited(std::shared_ptr<OneShot<T>> shot) : shot_(std::move(shot)) {}
  // Waits for the value; call once.
  T get() { return std::exchange(shot_, nullptr)->take(); }

 private:
  std::shared_ptr<OneShot<T>> shot_;
};

}  // namespace sluice
