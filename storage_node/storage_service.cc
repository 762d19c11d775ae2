#include "storage_node/storage_service.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <utility>

#include "common/core/copy_rate.h"
#include "common/core/logging.h"
#include "common/core/metrics.h"
#include "common/wire/body.h"
#include "common/wire/storage_generated.h"
#include "storage_node/rate_limiter.h"
#include "storage_node/storage_client.h"

namespace sluice::storage {

namespace ws = wire::storage;

namespace {

net::RemoteBuffer fromWire(const ws::Buffer& b) { return net::RemoteBuffer{b.addr(), b.key(), b.length()}; }

template <typename T>
Result<const T*> decode(net::IncomingCall& call, const char* what) {
  return wire::decodeBody<T>(call.body(), what);
}

Status checkBatch(const flatbuffers::Vector<const ws::Hash*>* ids, const char* what) {
  if (ids != nullptr && ids->size() > kMaxBatch) {
    return invalidArgument(std::string(what) + ": " + std::to_string(ids->size()) +
                           " ids exceeds the batch limit of " + std::to_string(kMaxBatch) +
                           "; split the request");
  }
  return Status::ok();
}

template <typename Builder>
std::vector<uint8_t> finish(flatbuffers::FlatBufferBuilder& fbb, Builder offset) {
  fbb.Finish(offset);
  return wire::finishBody(fbb);
}

void waitFor(Clock::Duration d) {
  if (d > Clock::Duration::zero()) Clock::real().sleepFor(d);
}

}  // namespace

class StorageService::SlotPool {
 public:
  using Maker = std::function<Result<std::unique_ptr<Slot>>()>;
  explicit SlotPool(Maker make) : make_(std::move(make)) {}

  Status add() {
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Slot> slot, make_());
    std::lock_guard lock(mu_);
    free_.push_back(slot.get());
    slots_.push_back(std::move(slot));
    return Status::ok();
  }
  // A slot whose ring went out of service is replaced as it is taken: the
  // old one stays in slots_, never handed out again, since a transfer may
  // still land in its buffer. A few lost rings are a fluke; past
  // kMaxReplaced the broken slot is handed out and its I/O fails
  // kUnavailable (the client reads another replica) until a restart.
  Slot* acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty(); });
    Slot* s = free_.back();
    free_.pop_back();
    if (s->ctx->queue().outOfService() && replaced_ < kMaxReplaced) {
      auto fresh = make_();
      if (fresh.isOk()) {
        ++replaced_;
        spdlog::error("storage: an I/O ring went out of service; replaced ({} so far)", replaced_);
        s = fresh->get();
        slots_.push_back(std::move(fresh).value());
      } else {
        spdlog::error("storage: an I/O ring went out of service and no new one could be made: {}",
                      fresh.status().toString());
      }
    }
    return s;
  }
  void release(Slot* slot) {
    {
      std::lock_guard lock(mu_);
      free_.push_back(slot);
    }
    cv_.notify_one();
  }

 private:
  static constexpr size_t kMaxReplaced = 8;
  const Maker make_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Slot>> slots_;  // GUARDED_BY(mu_)
  std::vector<Slot*> free_;                   // GUARDED_BY(mu_)
  size_t replaced_ = 0;                       // GUARDED_BY(mu_)
};

class StorageService::Lease {
 public:
  explicit Lease(std::shared_ptr<SlotPool> pool) : pool_(std::move(pool)), slot_(pool_->acquire()) {}
  ~Lease() {
    if (slot_ != nullptr) pool_->release(slot_);
  }
  IoContext& ctx() { return *slot_->ctx; }
  const net::MemoryRegion& mr() { return *slot_->mr; }
  size_t offsetOf(const uint8_t* p) { return static_cast<size_t>(p - slot_->ctx->buffer()); }
  // Gives the slot back once `call`'s posted writes are done, not now: the
  // handler's thread goes on to the next request while the bytes travel.
  // `id` names the chunk in the log line of a failed write.
  void releaseAfterWrites(net::IncomingCall& call, const ChunkId& id) {
    call.whenWritesDone([pool = pool_, slot = std::exchange(slot_, nullptr), id](Status written) {
      if (!written.isOk()) {
        spdlog::warn("GetChunk {}: a write to the caller failed after the reply: {}", id.toHex(),
                     written.toString());
      }
      pool->release(slot);
    });
  }

 private:
  std::shared_ptr<SlotPool> pool_;
  Slot* slot_;
};

StorageService::StorageService(ChunkStore& store, net::Endpoint& endpoint, Scrubber* scrubber,
                               StorageServiceOptions options)
    : store_(store),
      endpoint_(endpoint),
      scrubber_(scrubber),
      options_(options),
      pool_(std::make_shared<SlotPool>(slotMaker())),
      transfer_pool_(std::make_shared<SlotPool>(slotMaker())) {
  stripe_count_ = options.stripe_count;
}

// An I/O context and its buffer registered with the endpoint, for the pools.
// Used only by the service's own handlers (the pools outlive it only to
// take slots back).
std::function<Result<std::unique_ptr<StorageService::Slot>>()> StorageService::slotMaker() {
  return [this]() -> Result<std::unique_ptr<Slot>> {
    auto slot = std::make_unique<Slot>();
    SLUICE_ASSIGN_OR_RETURN(slot->ctx, store_.newContext());
    SLUICE_ASSIGN_OR_RETURN(slot->mr, endpoint_.registerMemory(slot->ctx->buffer(), slot->ctx->bufferSize(),
                                                               net::Access::kRemoteWrite));
    return slot;
  };
}

// Copies still queued are dropped unanswered (their callers see an error);
// running ones end soon once the endpoint is shut down.
StorageService::~StorageService() {
  if (transfers_) transfers_->stop();
}

Result<std::unique_ptr<StorageService>> StorageService::create(ChunkStore& store,
                                                               net::Endpoint& endpoint,
                                                               Scrubber* scrubber,
                                                               StorageServiceOptions options) {
  if (options.io_contexts == 0) options.io_contexts = 1;
  if (options.transfer_threads == 0) options.transfer_threads = 1;
  std::unique_ptr<StorageService> s(new StorageService(store, endpoint, scrubber, options));
  s->transfers_ = std::make_unique<net::WorkerPool>(options.transfer_threads, "transfer");
  for (size_t i = 0; i < options.io_contexts; ++i) SLUICE_RETURN_IF_ERROR(s->pool_->add());
  for (size_t i = 0; i < options.transfer_threads; ++i) {
    SLUICE_RETURN_IF_ERROR(s->transfer_pool_->add());
  }
  return s;
}

void StorageService::setIdentity(const NodeIdentity& identity, bool standalone) {
  std::lock_guard lock(id_mu_);
  identity_ = identity;
  standalone_ = standalone;
}

void StorageService::setStripeCount(uint32_t stripe_count) { stripe_count_ = stripe_count; }

Status StorageService::checkStripe(uint32_t stripe, const char* what) const {
  const uint32_t max = store_.options().max_stripes;
  if (stripe >= max) {
    return invalidArgument(std::string(what) + ": stripe " + std::to_string(stripe) +
                           " is outside this node's stripes 0.." + std::to_string(max - 1));
  }
  return Status::ok();
}

void StorageService::registerHandlers() {
  struct Entry {
    ws::StorageMethod method;
    Result<Body> (StorageService::*fn)(net::IncomingCall&);
  };
  const Entry entries[] = {
      {ws::StorageMethod::PutChunk, &StorageService::putChunk},
      {ws::StorageMethod::GetChunk, &StorageService::getChunk},
      {ws::StorageMethod::HasChunks, &StorageService::hasChunks},
      {ws::StorageMethod::DeleteChunks, &StorageService::deleteChunks},
      {ws::StorageMethod::ListStripe, &StorageService::listStripe},
      {ws::StorageMethod::StripeStats, &StorageService::stripeStats},
      {ws::StorageMethod::NodeStats, &StorageService::nodeStats},
      {ws::StorageMethod::PushStripe, &StorageService::pushStripe},
      {ws::StorageMethod::FetchChunks, &StorageService::fetchChunks},
      {ws::StorageMethod::Scrub, &StorageService::scrub},
  };
  auto& reg = MetricsRegistry::global();
  for (const Entry& e : entries) {
    const std::string name = ws::EnumNameStorageMethod(e.method);
    Labels labels{{"method", name}};
    Counter& errors = reg.counter("sluice_storage_request_errors_total",
                                  "Storage RPCs answered with an error", labels);
    Histogram& latency =
        reg.histogram("sluice_storage_request_seconds", "Storage RPC handling time", labels);
    auto fn = e.fn;
    auto serve = [this, fn, name, &errors, &latency](std::unique_ptr<net::IncomingCall> call) {
      RequestIdScope scope(call->requestId());
      LatencyTimer timer(latency);
      Result<Body> r = (this->*fn)(*call);
      if (r.isOk()) {
        if (!call->replied()) call->reply(Status::ok(), *r);
        return;
      }
      errors.inc();
      Status s = r.status();
      if (s.code() == StatusCode::kIoError || s.code() == StatusCode::kCorruption ||
          s.code() == StatusCode::kInternal || s.code() == StatusCode::kUnavailable ||
          s.code() == StatusCode::kNoSpace) {
        spdlog::warn("{}: {}", name, s.toString());
      } else {
        spdlog::debug("{}: {}", name, s.toString());
      }
      call->reply(s);
    };
    const bool copy = e.method == ws::StorageMethod::PushStripe ||
                      e.method == ws::StorageMethod::FetchChunks;
    if (!copy) {
      endpoint_.registerHandler(storageOpcode(e.method), serve);
      continue;
    }
    endpoint_.registerHandler(storageOpcode(e.method), [this, serve, name](std::unique_ptr<net::IncomingCall> call) {
      // std::function needs a copyable task; the call is handed over whole.
      auto shared = std::make_shared<std::unique_ptr<net::IncomingCall>>(std::move(call));
      if (!transfers_->post([serve, shared] { serve(std::move(*shared)); })) {
        (*shared)->reply(Status(StatusCode::kShutdown, name + ": the storage node is shutting down"));
      }
    });
  }
}

Result<StorageService::Body> StorageService::putChunk(net::IncomingCall& call) {
  SLUICE_ASSIGN_OR_RETURN(const ws::PutChunkRequest* req, decode<ws::PutChunkRequest>(call, "PutChunk"));
  if (req->id() == nullptr) return invalidArgument("PutChunk: missing chunk id");
  if (req->source() == nullptr) return invalidArgument("PutChunk: missing source buffer");
  const ChunkId id = storage::fromWire(*req->id());
  const std::string hex = id.toHex();
  SLUICE_RETURN_IF_ERROR(checkStripe(req->stripe(), ("PutChunk " + hex).c_str()));
  const uint32_t S = stripe_count_;
  if (S != 0 && stripeOf(id, S) != req->stripe()) {
    return invalidArgument("PutChunk " + hex + ": the chunk belongs to stripe " +
                           std::to_string(stripeOf(id, S)) + " of " + std::to_string(S) +
                           ", not stripe " + std::to_string(req->stripe()));
  }
  const net::RemoteBuffer source = fromWire(*req->source());
  if (source.length < req->length()) {
    return invalidArgument("PutChunk " + hex + ": the source buffer of " +
                           std::to_string(source.length) + " bytes is shorter than the chunk's " +
                           std::to_string(req->length()));
  }
  Lease lease(pool_);
  SLUICE_ASSIGN_OR_RETURN(
      PutOutcome out,
      store_.put(lease.ctx(), id, req->stripe(), req->length(),
                 [&](uint64_t off, std::span<uint8_t> dst) {
                   return call.rmaRead(lease.mr(), lease.offsetOf(dst.data()), source, off,
                                       dst.size())
                       .withContext("pulling chunk " + hex + " from the caller");
                 }));
  flatbuffers::FlatBufferBuilder fbb(64);
  return finish(fbb, ws::CreatePutChunkResponse(fbb, out.already_present));
}

Result<StorageService::Body> StorageService::getChunk(net::IncomingCall& call) {
  SLUICE_ASSIGN_OR_RETURN(const ws::GetChunkRequest* req, decode<ws::GetChunkRequest>(call, "GetChunk"));
  if (req->id() == nullptr) return invalidArgument("GetChunk: missing chunk id");
  if (req->target() == nullptr) return invalidArgument("GetChunk: missing target buffer");
  // The id's hex is built only for messages: a record read is tens of
  // microseconds, and the string's allocation would be paid on each.
  const ChunkId id = storage::fromWire(*req->id());
  auto info = store_.find(id);
  if (!info) return notFound("chunk " + id.toHex() + " is not on this node");
  const uint64_t offset = req->offset();
  if (offset >= info->length || (req->length() != 0 && req->length() > info->length - offset)) {
    return outOfRange("chunk " + id.toHex() + ": range [" + std::to_string(offset) + ", +" +
                      std::to_string(req->length()) + ") is past its end at " +
                      std::to_string(info->length));
  }
  const uint64_t length = req->length() != 0 ? req->length() : info->length - offset;
  const net::RemoteBuffer target = fromWire(*req->target());
  if (target.length < length) {
    return invalidArgument("GetChunk " + id.toHex() + ": the target buffer of " +
                           std::to_string(target.length) + " bytes is shorter than the " +
                           std::to_string(length) + " bytes requested");
  }
  Lease lease(pool_);
  // When the whole range passes through the buffer once, each segment's
  // write is only posted and the reply follows it at once (the transport
  // orders it after the bytes); the buffer goes back to the pool after the
  // writes complete. Longer reads reuse the buffer, so each write must land
  // before the next segment is read into it.
  const bool posted = ChunkStore::readsInOnePass(lease.ctx(), offset, length);
  Result<uint64_t> n = store_.read(
      lease.ctx(), id, offset, length, [&](uint64_t off, std::span<const uint8_t> src) {
        const size_t at = lease.offsetOf(src.data());
        Status s = posted ? call.postRmaWrite(lease.mr(), at, target, off - offset, src.size())
                          : call.rmaWrite(lease.mr(), at, target, off - offset, src.size());
        if (s.isOk()) return s;
        return s.withContext("writing chunk " + id.toHex() + " to the caller");
      });
  if (!n.isOk()) {
    (void)call.awaitWrites();  // before the buffer is reused; the read's error is the answer
    return n.status();
  }
  flatbuffers::FlatBufferBuilder fbb(64);
  Body body = finish(fbb, ws::CreateGetChunkResponse(fbb, *n, info->length,
                                                     offset == 0 && length == info->length));
  if (!posted) return body;
  call.reply(Status::ok(), body);
  lease.releaseAfterWrites(call, id);
  return body;
}

Result<StorageService::Body> StorageService::hasChunks(net::IncomingCall& call) {
  SLUICE_ASSIGN_OR_RETURN(const ws::HasChunksRequest* req, decode<ws::HasChunksRequest>(call, "HasChunks"));
  SLUICE_RETURN_IF_ERROR(checkBatch(req->ids(), "HasChunks"));
  std::vector<uint64_t> lengths;
  if (req->ids() != nullptr) {
    lengths.reserve(req->ids()->size());
    for (const ws::Hash* h : *req->ids()) {
      auto info = store_.find(storage::fromWire(*h));
      lengths.push_back(info ? info->length : 0);
    }
  }
  flatbuffers::FlatBufferBuilder fbb(64 + lengths.size() * 8);
  return finish(fbb, ws::CreateHasChunksResponseDirect(fbb, &lengths));
}

Result<StorageService::Body> StorageService::deleteChunks(net::IncomingCall& call) {
  SLUICE_ASSIGN_OR_RETURN(const ws::DeleteChunksRequest* req,
                          decode<ws::DeleteChunksRequest>(call, "DeleteChunks"));
  SLUICE_RETURN_IF_ERROR(checkBatch(req->ids(), "DeleteChunks"));
  std::vector<uint8_t> deleted;
  uint32_t count = 0;
  if (req->ids() != nullptr) {
    for (const ws::Hash* h : *req->ids()) {
      const ChunkId id = storage::fromWire(*h);
      auto r = store_.remove(id);
      if (!r.isOk()) return r.status().withContext("DeleteChunks " + id.toHex());
      deleted.push_back(*r ? 1 : 0);
      count += *r ? 1 : 0;
    }
  }
  flatbuffers::FlatBufferBuilder fbb(64 + deleted.size());
  auto vec = fbb.CreateVector(deleted);
  return finish(fbb, ws::CreateDeleteChunksResponse(fbb, vec, count));
}

Result<StorageService::Body> StorageService::listStripe(net::IncomingCall& call) {
  SLUICE_ASSIGN_OR_RETURN(const ws::ListStripeRequest* req, decode<ws::ListStripeRequest>(call, "ListStripe"));
  SLUICE_RETURN_IF_ERROR(checkStripe(req->stripe(), "ListStripe"));
  uint32_t limit = req->limit() == 0 ? kDefaultListLimit : req->limit();
  if (limit > kMaxBatch) {
    return invalidArgument("ListStripe: limit " + std::to_string(limit) + " exceeds " +
                           std::to_string(kMaxBatch));
  }
  std::optional<ChunkId> after;
  if (req->has_after()) {
    if (req->after() == nullptr) return invalidArgument("ListStripe: has_after set without after");
    after = storage::fromWire(*req->after());
  }
  bool more = false;
  auto page = store_.listStripe(req->stripe(), after, limit, &more);
  std::vector<ws::Hash> ids;
  std::vector<uint64_t> lengths, ages;
  for (const auto& c : page) {
    ids.push_back(storage::toWire(c.id));
    lengths.push_back(c.length);
    ages.push_back(c.age_ms);
  }
  flatbuffers::FlatBufferBuilder fbb(64 + page.size() * 32);
  return finish(fbb, ws::CreateListStripeResponseDirect(fbb, &ids, &lengths, more, &ages));
}

Result<StorageService::Body> StorageService::stripeStats(net::IncomingCall& call) {
  SLUICE_ASSIGN_OR_RETURN(const ws::StripeStatsRequest* req,
                          decode<ws::StripeStatsRequest>(call, "StripeStats"));
  if (req->stripes() != nullptr && req->stripes()->size() > kMaxBatch) {
    return invalidArgument("StripeStats: more than " + std::to_string(kMaxBatch) + " stripes");
  }
  auto all = store_.stripeStats();
  std::vector<ws::StripeStat> out;
  if (req->stripes() == nullptr || req->stripes()->size() == 0) {
    for (const auto& s : all) out.emplace_back(s.stripe, s.chunks, s.bytes);
  } else {
    for (uint32_t want : *req->stripes()) {
      auto it = std::lower_bound(all.begin(), all.end(), want,
                                 [](const StripeStat& s, uint32_t v) { return s.stripe < v; });
      if (it != all.end() && it->stripe == want) {
        out.emplace_back(it->stripe, it->chunks, it->bytes);
      } else {
        out.emplace_back(want, 0, 0);
      }
    }
  }
  flatbuffers::FlatBufferBuilder fbb(64 + out.size() * 24);
  return finish(fbb, ws::CreateStripeStatsResponseDirect(fbb, &out));
}

Result<StorageService::Body> StorageService::nodeStats(net::IncomingCall& call) {
  SLUICE_RETURN_IF_ERROR(decode<ws::NodeStatsRequest>(call, "NodeStats").status());
  StoreStats st = store_.stats();
  ScrubStats sc = scrubber_ ? scrubber_->stats() : ScrubStats{};
  ws::NodeStatsResponseT r;
  {
    std::lock_guard lock(id_mu_);
    r.node_id = identity_.node_id;
    r.cluster_id = std::make_unique<ws::Hash>(storage::toWire(identity_.cluster_id));
    r.standalone = standalone_;
  }
  r.address = endpoint_.address();
  r.capacity_bytes = st.capacity_bytes;
  r.used_bytes = st.used_bytes;
  r.chunk_count = st.chunks;
  r.fs_free_bytes = st.fs_free_bytes;
  r.corrupt_found = st.corrupt_found;
  r.quarantined = st.quarantined;
  r.io_errors = st.io_errors;
  r.puts = st.puts;
  r.gets = st.gets;
  r.bytes_written = st.bytes_written;
  r.bytes_read = st.bytes_read;
  r.scrub_passes = sc.passes;
  r.scrub_bytes = sc.bytes;
  r.direct_io = st.direct_io;
  r.inventory_load_seconds = st.open_seconds;
  for (const auto& c : store_.recentCorruptions()) {
    auto cc = std::make_unique<ws::CorruptChunkT>();
    cc->id = std::make_unique<ws::Hash>(storage::toWire(c.id));
    cc->stripe = c.stripe;
    cc->reason = c.why;
    r.recent_corrupt.push_back(std::move(cc));
  }
  flatbuffers::FlatBufferBuilder fbb(1024);
  return finish(fbb, ws::NodeStatsResponse::Pack(fbb, &r));
}

Result<StorageService::Body> StorageService::scrub(net::IncomingCall& call) {
  SLUICE_RETURN_IF_ERROR(decode<ws::ScrubRequest>(call, "Scrub").status());
  const bool scrubbing = scrubber_ && scrubber_->enabled();
  uint64_t done_at = scrubbing ? scrubber_->kick() : 0;
  ScrubStats sc = scrubber_ ? scrubber_->stats() : ScrubStats{};
  flatbuffers::FlatBufferBuilder fbb(64);
  return finish(fbb, ws::CreateScrubResponse(fbb, sc.passes, sc.bytes, scrubbing, done_at));
}

namespace {

void noteFailure(TransferResult& t, const Status& s) {
  ++t.failed;
  if (t.first_error.empty()) t.first_error = s.toString();
}

std::vector<uint8_t> encodeTransfer(const TransferResult& t, bool push) {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto result = ws::CreateTransferResponseDirect(fbb, t.copied, t.already_present, t.bytes,
                                                 t.failed, t.first_error.c_str());
  if (push) {
    fbb.Finish(ws::CreatePushStripeResponse(fbb, result));
  } else {
    fbb.Finish(ws::CreateFetchChunksResponse(fbb, result));
  }
  return wire::finishBody(fbb);
}

}  // namespace

Result<StorageService::Body> StorageService::pushStripe(net::IncomingCall& call) {
  SLUICE_ASSIGN_OR_RETURN(const ws::PushStripeRequest* req, decode<ws::PushStripeRequest>(call, "PushStripe"));
  SLUICE_RETURN_IF_ERROR(checkStripe(req->stripe(), "PushStripe"));
  SLUICE_RETURN_IF_ERROR(checkBatch(req->ids(), "PushStripe"));
  if (req->target() == nullptr || req->target()->size() == 0) {
    return invalidArgument("PushStripe: missing target address");
  }
  const std::string target = req->target()->str();
  if (target == endpoint_.address()) return invalidArgument("PushStripe: target is this node");
  SLUICE_RETURN_IF_ERROR(checkCopyRate(req->rate_bytes_per_sec(), "PushStripe: rate_bytes_per_sec"));
  const uint32_t stripe = req->stripe();
  std::vector<ChunkInfo> chunks;
  TransferResult t;
  if (req->ids() == nullptr || req->ids()->size() == 0) {
    bool more = false;
    chunks = store_.listStripe(stripe, std::nullopt, SIZE_MAX, &more);
  } else {
    for (const ws::Hash* h : *req->ids()) {
      auto info = store_.find(storage::fromWire(*h));
      if (!info || info->stripe != stripe) {
        noteFailure(t, notFound("chunk " + storage::fromWire(*h).toHex() + " of stripe " +
                                std::to_string(stripe) + " is not on this node"));
        continue;
      }
      chunks.push_back(*info);
    }
  }
  SLUICE_ASSIGN_OR_RETURN(StorageClient client, StorageClient::connect(endpoint_, target));
  uint64_t max_len = 0;
  for (const auto& c : chunks) max_len = std::max(max_len, c.length);
  std::unique_ptr<net::MemoryRegion> staging;
  if (max_len > 0) {
    SLUICE_ASSIGN_OR_RETURN(staging, endpoint_.allocateMemory(max_len, net::Access::kRemoteRead));
  }
  RateLimiter limiter(req->rate_bytes_per_sec() ? req->rate_bytes_per_sec()
                                                : options_.repair_rate_bytes_per_sec);
  Lease lease(transfer_pool_);
  for (size_t i = 0; i < chunks.size(); i += kMaxBatch) {
    std::vector<ChunkId> ids;
    for (size_t j = i; j < std::min(chunks.size(), i + kMaxBatch); ++j) ids.push_back(chunks[j].id);
    auto have = client.hasChunks(ids);
    if (!have.isOk()) return have.status().withContext("PushStripe to " + target);
    for (size_t j = 0; j < ids.size(); ++j) {
      const ChunkInfo& c = chunks[i + j];
      if ((*have)[j] != 0) {
        ++t.already_present;
        continue;
      }
      waitFor(limiter.reserve(c.length));
      // A whole read verifies the chunk: never propagate a corrupt copy.
      auto n = store_.read(lease.ctx(), c.id, 0, 0, [&](uint64_t off, std::span<const uint8_t> src) {
        std::memcpy(staging->data() + off, src.data(), src.size());
        return Status::ok();
      });
      if (!n.isOk()) {
        noteFailure(t, n.status());
        continue;
      }
      auto put = client.putChunk(c.id, stripe, *staging, 0, c.length);
      if (!put.isOk()) {
        noteFailure(t, put.status());
      } else if (*put) {
        ++t.already_present;
      } else {
        ++t.copied;
        t.bytes += c.length;
      }
    }
  }
  spdlog::info("PushStripe {} to {}: {} copied, {} present, {} failed", stripe, target, t.copied,
               t.already_present, t.failed);
  return encodeTransfer(t, true);
}

Result<StorageService::Body> StorageService::fetchChunks(net::IncomingCall& call) {
  SLUICE_ASSIGN_OR_RETURN(const ws::FetchChunksRequest* req,
                          decode<ws::FetchChunksRequest>(call, "FetchChunks"));
  SLUICE_RETURN_IF_ERROR(checkStripe(req->stripe(), "FetchChunks"));
  SLUICE_RETURN_IF_ERROR(checkBatch(req->ids(), "FetchChunks"));
  if (req->source() == nullptr || req->source()->size() == 0) {
    return invalidArgument("FetchChunks: missing source address");
  }
  const std::string source = req->source()->str();
  if (source == endpoint_.address()) return invalidArgument("FetchChunks: source is this node");
  SLUICE_RETURN_IF_ERROR(checkCopyRate(req->rate_bytes_per_sec(), "FetchChunks: rate_bytes_per_sec"));
  const uint32_t stripe = req->stripe();
  SLUICE_ASSIGN_OR_RETURN(StorageClient client, StorageClient::connect(endpoint_, source));
  std::vector<std::pair<ChunkId, uint64_t>> to_copy;
  TransferResult t;
  if (req->ids() == nullptr || req->ids()->size() == 0) {
    std::optional<ChunkId> after;
    for (;;) {
      auto page = client.listStripe(stripe, after, kMaxBatch);
      if (!page.isOk()) return page.status().withContext("FetchChunks from " + source);
      // listStripe refuses pages that do not move forward: this ends.
      for (size_t i = 0; i < page->ids.size(); ++i) to_copy.emplace_back(page->ids[i], page->lengths[i]);
      if (!page->more || page->ids.empty()) break;
      after = page->ids.back();
    }
  } else {
    std::vector<ChunkId> ids;
    for (const ws::Hash* h : *req->ids()) ids.push_back(storage::fromWire(*h));
    auto lengths = client.hasChunks(ids);
    if (!lengths.isOk()) return lengths.status().withContext("FetchChunks from " + source);
    for (size_t i = 0; i < ids.size(); ++i) {
      if ((*lengths)[i] == 0) {
        noteFailure(t, notFound("chunk " + ids[i].toHex() + " is not on " + source));
      } else {
        to_copy.emplace_back(ids[i], (*lengths)[i]);
      }
    }
  }
  RateLimiter limiter(req->rate_bytes_per_sec() ? req->rate_bytes_per_sec()
                                                : options_.repair_rate_bytes_per_sec);
  Lease lease(transfer_pool_);
  for (const auto& [id, length] : to_copy) {
    if (store_.find(id)) {
      ++t.already_present;
      continue;
    }
    waitFor(limiter.reserve(length));
    // Pulled window by window straight into the registered buffer; put()
    // verifies the whole chunk's hash before anything becomes visible.
    auto r = store_.put(lease.ctx(), id, stripe, length,
                        [&](uint64_t off, std::span<uint8_t> dst) -> Status {
                          auto g = client.getChunk(id, off, dst.size(), lease.mr(),
                                                   lease.offsetOf(dst.data()));
                          if (!g.isOk()) return g.status();
                          if (g->length != dst.size() || g->chunk_length != length) {
                            return protocolError("chunk " + id.toHex() + " on " + source +
                                                 " changed length during the copy");
                          }
                          return Status::ok();
                        },
                        ChunkStore::Origin::kCopy);
    if (!r.isOk()) {
      noteFailure(t, r.status());
    } else if (r->already_present) {
      ++t.already_present;
    } else {
      ++t.copied;
      t.bytes += length;
    }
  }
  spdlog::info("FetchChunks {} from {}: {} copied, {} present, {} failed", stripe, source, t.copied,
               t.already_present, t.failed);
  return encodeTransfer(t, false);
}

}  // namespace sluice::storage
