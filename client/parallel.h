// parallelFor: run fn(i) for i in [0, n) on up to `threads` threads and
// return the first error. Workers take indices in order from a shared
// counter, so uneven items balance themselves.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/core/status.h"

namespace sluice::client {

inline Status parallelFor(size_t n, size_t threads, const std::function<Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first;
  auto work = [&] {
    for (size_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < n;) {
      Status s = fn(i);
      if (!s.isOk()) {
        std::lock_guard lock(mu);
        if (first.isOk()) first = s;
        failed = true;
      }
    }
  };
  size_t count = std::min(std::max<size_t>(threads, 1), n);
  std::vector<std::thread> pool;
  for (size_t t = 1; t < count; ++t) pool.emplace_back(work);
  if (count > 0) work();
  for (auto& t : pool) t.join();
  return first;
}

}  // namespace sluice::client
