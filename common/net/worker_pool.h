// WorkerPool: a fixed set of threads running queued tasks in FIFO order.
//
// Thread safety: post(), close() and stop() may be called from any thread.
// stop() drops tasks not yet started (destroying them on the caller's thread)
// and joins the workers, so it must not be called from a worker; close()
// drops them too but lets the workers end on their own.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sluice::net {

class WorkerPool {
 public:
  WorkerPool(size_t threads, std::string name);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False (and `task` is destroyed) once close() or stop() has begun.
  bool post(std::function<void()> task);
  // Drops queued tasks; each worker exits once its current task returns.
  // Does not wait: callable from a worker.
  void close();
  // close(), then waits for the workers to exit.
  void stop();

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;
  std::string name_;
};

}  // namespace sluice::net
