#include "client/buffer_pool.h"

namespace sluice::client {

BufferSlot& BufferSlot::operator=(BufferSlot&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = other.pool_;
    index_ = other.index_;
    other.pool_ = nullptr;
  }
  return *this;
}

uint8_t* BufferSlot::data() const { return pool_->region_->data() + index_ * pool_->slot_size_; }
size_t BufferSlot::size() const { return pool_->slot_size_; }

net::RemoteBuffer BufferSlot::remote(size_t length) const {
  return pool_->region_->remote(index_ * pool_->slot_size_, length);
}

void BufferSlot::release() {
  if (pool_ != nullptr) {
    pool_->release(index_);
    pool_ = nullptr;
  }
}

Result<std::unique_ptr<BufferPool>> BufferPool::create(net::Endpoint& endpoint, size_t slot_size,
                                                       size_t slot_count, net::Access access) {
  if (slot_size == 0 || slot_count == 0) {
    return invalidArgument("buffer pool needs a positive slot size and count");
  }
  SLUICE_ASSIGN_OR_RETURN(auto region, endpoint.allocateMemory(slot_size * slot_count, access));
  return std::unique_ptr<BufferPool>(new BufferPool(std::move(region), slot_size, slot_count));
}

BufferPool::BufferPool(std::unique_ptr<net::MemoryRegion> region, size_t slot_size,
                       size_t slot_count)
    : region_(std::move(region)), slot_size_(slot_size), slot_count_(slot_count) {
  free_.reserve(slot_count);
  for (size_t i = slot_count; i-- > 0;) free_.push_back(i);
}

BufferSlot BufferPool::acquire() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !free_.empty(); });
  size_t index = free_.back();
  free_.pop_back();
  return BufferSlot(this, index);
}

std::optional<BufferSlot> BufferPool::tryAcquire() {
  std::lock_guard lock(mu_);
  if (free_.empty()) return std::nullopt;
  size_t index = free_.back();
  free_.pop_back();
  return BufferSlot(this, index);
}

void BufferPool::release(size_t index) {
  {
    std::lock_guard lock(mu_);
    free_.push_back(index);
  }
  cv_.notify_one();
}

}  // namespace sluice::client
