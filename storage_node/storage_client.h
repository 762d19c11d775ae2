// StorageClient: typed calls to one sluice-storage node (storage.fbs).
//
// Used by the client library, by storage nodes for repair (FetchChunks /
// PushStripe) and by tests and benches. Bulk bytes move by RMA between the
// node and the caller's registered MemoryRegion; bodies carry descriptors.
//
// Thread safety: a StorageClient is immutable after connect(); calls may be
// made from any number of threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/codec/hash128.h"
#include "common/core/result.h"
#include "common/net/endpoint.h"
#include "common/wire/storage_generated.h"

namespace sluice::storage {

struct GetChunkResult {
  uint64_t length = 0;        // bytes written into the region
  uint64_t chunk_length = 0;  // the whole chunk's length
  bool verified = false;      // the node checked the chunk's hash (whole reads)
};

struct ListStripePage {
  std::vector<ChunkId> ids;
  std::vector<uint64_t> lengths;
  bool more = false;
};

struct TransferResult {
  uint64_t copied = 0;
  uint64_t already_present = 0;
  uint64_t bytes = 0;
  uint64_t failed = 0;
  std::string first_error;
};

using NodeStats = wire::storage::NodeStatsResponseT;

uint16_t storageOpcode(wire::storage::StorageMethod method);

class StorageClient {
 public:
  // `endpoint` must outlive the client.
  static Result<StorageClient> connect(net::Endpoint& endpoint, const std::string& address);

  const std::string& address() const { return *address_; }  // not after a move

  // The node pulls `length` bytes at `offset` of `region` (registered for
  // remote read). Returns whether the node already had the chunk.
  Result<bool> putChunk(const ChunkId& id, uint32_t stripe, const net::MemoryRegion& region,
                        size_t offset, uint64_t length) const;
  // The node writes chunk bytes [chunk_offset, +length) (length 0: to the end)
  // into `region` at `offset` (registered for remote write); at most
  // region.size() - offset bytes.
  Result<GetChunkResult> getChunk(const ChunkId& id, uint64_t chunk_offset, uint64_t length,
                                  const net::MemoryRegion& region, size_t offset) const;
  // getChunk without waiting, for callers that keep many reads in flight from
  // one thread: `done` runs exactly once, on a transport thread (keep it
  // short and never block in it; it may issue the next read), or on the
  // caller's thread for errors known at once (a bad range, shutdown).
  using GetChunkDone = std::function<void(Result<GetChunkResult>)>;
  void getChunkAsync(const ChunkId& id, uint64_t chunk_offset, uint64_t length,
                     const net::MemoryRegion& region, size_t offset, GetChunkDone done) const;
  // lengths[i] is ids[i]'s length on the node, 0 if absent.
  Result<std::vector<uint64_t>> hasChunks(std::span<const ChunkId> ids) const;
  Result<std::vector<bool>> deleteChunks(std::span<const ChunkId> ids) const;
  Result<ListStripePage> listStripe(uint32_t stripe, const std::optional<ChunkId>& after,
                                    uint32_t limit = 0) const;
  // Every stripe with data when `stripes` is empty.
  Result<std::vector<wire::storage::StripeStat>> stripeStats(
      std::span<const uint32_t> stripes = {}) const;
  Result<std::unique_ptr<NodeStats>> nodeStats() const;
  Result<TransferResult> pushStripe(uint32_t stripe, const std::string& target,
                                    std::span<const ChunkId> ids, uint64_t rate_bytes_per_sec,
                                    net::Duration timeout) const;
  Result<TransferResult> fetchChunks(uint32_t stripe, const std::string& source,
                                     std::span<const ChunkId> ids, uint64_t rate_bytes_per_sec,
                                     net::Duration timeout) const;

 private:
  StorageClient(net::Endpoint& endpoint, net::PeerId peer, std::shared_ptr<const std::string> address)
      : endpoint_(&endpoint), peer_(peer), address_(std::move(address)) {}
  net::Endpoint* endpoint_;
  net::PeerId peer_;
  // Shared with the callbacks of calls in flight, which name it in errors.
  std::shared_ptr<const std::string> address_;
};

// Conversions between Hash128 and the wire struct.
inline wire::storage::Hash toWire(const Hash128& h) { return wire::storage::Hash(h.hi, h.lo); }
inline Hash128 fromWire(const wire::storage::Hash& h) { return Hash128{h.hi(), h.lo()}; }

}  // namespace sluice::storage
