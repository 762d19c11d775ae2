// BufferPool: fixed-size slots of one registered arena, for RMA.
//
// Registering memory per request is slow on real RDMA hardware, so a client
// registers one arena up front and hands out slots. acquire() blocks while
// all slots are in use, which is also what bounds a client's bytes in flight.
//
// Thread safety: acquire/release from any thread. Slots must not outlive the
// pool.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "common/core/result.h"
#include "common/net/endpoint.h"

namespace sluice::client {

class BufferPool;

// A slot on loan; returns to its pool when destroyed.
class BufferSlot {
 public:
  BufferSlot() = default;
  BufferSlot(BufferSlot&& other) noexcept { *this = std::move(other); }
  BufferSlot& operator=(BufferSlot&& other) noexcept;
  ~BufferSlot() { release(); }

  bool valid() const { return pool_ != nullptr; }
  uint8_t* data() const;
  size_t size() const;
  // What a peer needs to read or write [0, length) of this slot.
  net::RemoteBuffer remote(size_t length) const;
  void release();

 private:
  friend class BufferPool;
  BufferSlot(BufferPool* pool, size_t index) : pool_(pool), index_(index) {}
  BufferPool* pool_ = nullptr;
  size_t index_ = 0;
};

class BufferPool {
 public:
  static Result<std::unique_ptr<BufferPool>> create(net::Endpoint& endpoint, size_t slot_size,
                                                    size_t slot_count, net::Access access);

  BufferSlot acquire();
  std::optional<BufferSlot> tryAcquire();
  size_t slotSize() const { return slot_size_; }
  size_t slotCount() const { return slot_count_; }

 private:
  friend class BufferSlot;
  BufferPool(std::unique_ptr<net::MemoryRegion> region, size_t slot_size, size_t slot_count);
  void release(size_t index);

  std::unique_ptr<net::MemoryRegion> region_;
  const size_t slot_size_;
  const size_t slot_count_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<size_t> free_;  // GUARDED_BY(mu_)
};

}  // namespace sluice::client
