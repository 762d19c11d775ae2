// StorageService: the thin RPC adapter in front of a ChunkStore.
//
// Each handler decodes its body with wire::decodeBody, validates every value
// (ids present, stripe bounds, lengths, batch sizes, buffer sizes), calls the
// store and encodes the answer. Bulk bytes move by RMA between the caller's
// buffer and an IoContext buffer that is registered both with io_uring and
// with the fabric, so a put or get makes no extra copy.
//
// IoContexts are pooled: `io_contexts` for the endpoint's workers, and one
// per transfer thread in a pool of their own (so repair never waits behind
// client reads). A GetChunk hands its context back only once the bytes it
// posted to the caller have left, while its worker takes the next request,
// so there are more contexts than workers. The buffers are registered for remote write because
// FetchChunks has the source node write into them.
//
// Node-to-node copies (PushStripe, FetchChunks) run on their own transfer
// threads, not the endpoint's workers: a copy waits on another node for a
// whole stripe, and two nodes copying from each other must never hold the
// workers (and buffers) each needs to serve the other, or the clients.
//
// Thread safety: handlers run concurrently on the endpoint's workers; all
// state is internally synchronised. The store, endpoint and scrubber must
// outlive the service.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/core/result.h"
#include "common/net/endpoint.h"
#include "common/net/worker_pool.h"
#include "storage_node/chunk_store.h"
#include "storage_node/node_identity.h"
#include "storage_node/scrubber.h"

namespace sluice::storage {

struct StorageServiceOptions {
  size_t io_contexts = 8;  // twice EndpointOptions::worker_threads: half may be sending
  size_t transfer_threads = 2;  // copies to or from other nodes run at once; more queue
  // The cluster's stripe count S when known (0: not known, e.g. standalone):
  // puts must then name stripe == stripeOf(id, S).
  uint32_t stripe_count = 0;
  uint64_t repair_rate_bytes_per_sec = 256ull << 20;  // default for Push/Fetch
  net::Duration repair_call_timeout{60000};
};

inline constexpr size_t kMaxBatch = 16384;
inline constexpr uint32_t kDefaultListLimit = 4096;

class StorageService {
 public:
  static Result<std::unique_ptr<StorageService>> create(ChunkStore& store, net::Endpoint& endpoint,
                                                        Scrubber* scrubber,
                                                        StorageServiceOptions options);
  ~StorageService();

  // Registers every StorageMethod handler. Call before endpoint.start().
  void registerHandlers();

  // What NodeStats reports as this node's identity.
  void setIdentity(const NodeIdentity& identity, bool standalone);
  void setStripeCount(uint32_t stripe_count);

 private:
  struct Slot {
    std::unique_ptr<IoContext> ctx;
    std::unique_ptr<net::MemoryRegion> mr;
  };
  // Shared with the endpoint's write callbacks, which may return a slot
  // after the service is gone.
  class SlotPool;
  class Lease;
  std::function<Result<std::unique_ptr<Slot>>()> slotMaker();

  StorageService(ChunkStore& store, net::Endpoint& endpoint, Scrubber* scrubber,
                 StorageServiceOptions options);

  using Body = std::vector<uint8_t>;
  Result<Body> putChunk(net::IncomingCall& call);
  Result<Body> getChunk(net::IncomingCall& call);
  Result<Body> hasChunks(net::IncomingCall& call);
  Result<Body> deleteChunks(net::IncomingCall& call);
  Result<Body> listStripe(net::IncomingCall& call);
  Result<Body> stripeStats(net::IncomingCall& call);
  Result<Body> nodeStats(net::IncomingCall& call);
  Result<Body> scrub(net::IncomingCall& call);
  Result<Body> pushStripe(net::IncomingCall& call);
  Result<Body> fetchChunks(net::IncomingCall& call);
  Status checkStripe(uint32_t stripe, const char* what) const;

  ChunkStore& store_;
  net::Endpoint& endpoint_;
  std::unique_ptr<net::WorkerPool> transfers_;
  Scrubber* scrubber_;
  StorageServiceOptions options_;

  std::shared_ptr<SlotPool> pool_;           // for the endpoint's workers
  std::shared_ptr<SlotPool> transfer_pool_;  // one per transfer thread: copies never wait on reads

  mutable std::mutex id_mu_;
  NodeIdentity identity_;  // GUARDED_BY(id_mu_)
  bool standalone_ = true;  // GUARDED_BY(id_mu_)
  std::atomic<uint32_t> stripe_count_{0};
};

}  // namespace sluice::storage
