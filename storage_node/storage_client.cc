#include "storage_node/storage_client.h"

#include "common/core/one_shot.h"
#include "common/wire/typed_call.h"

namespace sluice::storage {

namespace ws = wire::storage;

uint16_t storageOpcode(ws::StorageMethod method) {
  return net::makeOpcode(net::ServiceId::kStorage, static_cast<uint8_t>(method));
}

namespace {

ws::Buffer toWire(const net::RemoteBuffer& b) { return ws::Buffer(b.addr, b.key, b.length); }

std::vector<ws::Hash> idsToWire(std::span<const ChunkId> ids) {
  std::vector<ws::Hash> out;
  out.reserve(ids.size());
  for (const auto& id : ids) out.push_back(storage::toWire(id));
  return out;
}

TransferResult fromWire(const ws::TransferResponseT* t) {
  TransferResult r;
  if (t == nullptr) return r;
  r.copied = t->copied;
  r.already_present = t->already_present;
  r.bytes = t->bytes;
  r.failed = t->failed;
  r.first_error = t->first_error;
  return r;
}

}  // namespace

Result<StorageClient> StorageClient::connect(net::Endpoint& endpoint, const std::string& address) {
  SLUICE_ASSIGN_OR_RETURN(net::PeerId peer, endpoint.connect(address));
  return StorageClient(endpoint, peer, std::make_shared<const std::string>(address));
}

Result<bool> StorageClient::putChunk(const ChunkId& id, uint32_t stripe,
                                     const net::MemoryRegion& region, size_t offset,
                                     uint64_t length) const {
  if (offset > region.size() || length > region.size() - offset) {
    return invalidArgument("put of chunk " + id.toHex() + ": range exceeds the local region");
  }
  ws::PutChunkRequestT req;
  req.id = std::make_unique<ws::Hash>(storage::toWire(id));
  req.stripe = stripe;
  req.length = length;
  req.source = std::make_unique<ws::Buffer>(toWire(region.remote(offset, length)));
  SLUICE_ASSIGN_OR_RETURN(
      auto resp, (wire::typedCall<ws::PutChunkRequest, ws::PutChunkResponse>(
                     *endpoint_, peer_, storageOpcode(ws::StorageMethod::PutChunk), req,
                     "PutChunk " + id.toHex() + " to " + *address_)));
  return resp->already_present;
}

Result<GetChunkResult> StorageClient::getChunk(const ChunkId& id, uint64_t chunk_offset,
                                               uint64_t length, const net::MemoryRegion& region,
                                               size_t offset) const {
  auto result = std::make_shared<OneShot<Result<GetChunkResult>>>();
  getChunkAsync(id, chunk_offset, length, region, offset,
                [result](Result<GetChunkResult> r) { result->set(std::move(r)); });
  return result->take();
}

void StorageClient::getChunkAsync(const ChunkId& id, uint64_t chunk_offset, uint64_t length,
                                  const net::MemoryRegion& region, size_t offset,
                                  GetChunkDone done) const {
  if (offset > region.size() || length > region.size() - offset) {
    done(invalidArgument("get of chunk " + id.toHex() + ": range exceeds the local region"));
    return;
  }
  ws::GetChunkRequestT req;
  req.id = std::make_unique<ws::Hash>(storage::toWire(id));
  req.offset = chunk_offset;
  req.length = length;
  req.target = std::make_unique<ws::Buffer>(toWire(region.remote(offset, region.size() - offset)));
  endpoint_->callAsync(
      peer_, storageOpcode(ws::StorageMethod::GetChunk), wire::packBody<ws::GetChunkRequest>(req),
      endpoint_->defaultTimeout(),
      [id, address = address_, done = std::move(done)](const Result<std::vector<uint8_t>>& reply) {
        auto resp = wire::verifiedReply<ws::GetChunkResponse>(
            reply, [&] { return "GetChunk " + id.toHex() + " from " + *address; });
        if (!resp.isOk()) {
          done(resp.status());
          return;
        }
        done(GetChunkResult{(*resp)->length(), (*resp)->chunk_length(), (*resp)->verified()});
      });
}

Result<std::vector<uint64_t>> StorageClient::hasChunks(std::span<const ChunkId> ids) const {
  ws::HasChunksRequestT req;
  req.ids = idsToWire(ids);
  SLUICE_ASSIGN_OR_RETURN(auto resp, (wire::typedCall<ws::HasChunksRequest, ws::HasChunksResponse>(
                                         *endpoint_, peer_, storageOpcode(ws::StorageMethod::HasChunks),
                                         req, "HasChunks on " + *address_)));
  if (resp->lengths.size() != ids.size()) {
    return protocolError("HasChunks on " + *address_ + ": answered " +
                         std::to_string(resp->lengths.size()) + " lengths for " +
                         std::to_string(ids.size()) + " ids");
  }
  return std::move(resp->lengths);
}

Result<std::vector<bool>> StorageClient::deleteChunks(std::span<const ChunkId> ids) const {
  ws::DeleteChunksRequestT req;
  req.ids = idsToWire(ids);
  SLUICE_ASSIGN_OR_RETURN(
      auto resp, (wire::typedCall<ws::DeleteChunksRequest, ws::DeleteChunksResponse>(
                     *endpoint_, peer_, storageOpcode(ws::StorageMethod::DeleteChunks), req,
                     "DeleteChunks on " + *address_)));
  if (resp->deleted.size() != ids.size()) {
    return protocolError("DeleteChunks on " + *address_ + ": answer does not match the request");
  }
  return std::move(resp->deleted);
}

Result<ListStripePage> StorageClient::listStripe(uint32_t stripe, const std::optional<ChunkId>& after,
                                                 uint32_t limit) const {
  ws::ListStripeRequestT req;
  req.stripe = stripe;
  req.has_after = after.has_value();
  if (after) req.after = std::make_unique<ws::Hash>(storage::toWire(*after));
  req.limit = limit;
  SLUICE_ASSIGN_OR_RETURN(
      auto resp, (wire::typedCall<ws::ListStripeRequest, ws::ListStripeResponse>(
                     *endpoint_, peer_, storageOpcode(ws::StorageMethod::ListStripe), req,
                     "ListStripe " + std::to_string(stripe) + " on " + *address_)));
  if (resp->ids.size() != resp->lengths.size()) {
    return protocolError("ListStripe on " + *address_ + ": ids and lengths differ in count");
  }
  if (limit != 0 && resp->ids.size() > limit) {
    return protocolError("ListStripe on " + *address_ + ": " + std::to_string(resp->ids.size()) +
                         " ids for a page of " + std::to_string(limit));
  }
  ListStripePage page;
  for (const auto& h : resp->ids) {
    // Pages must move forward (ids rising past `after`), or a caller paging
    // through a faulty node's stripe would never reach the end.
    const ChunkId id = storage::fromWire(h);
    const std::optional<ChunkId> prev = page.ids.empty() ? after : page.ids.back();
    if (prev && !(*prev < id)) {
      return protocolError("ListStripe " + std::to_string(stripe) + " on " + *address_ +
                           ": ids not in rising order");
    }
    page.ids.push_back(id);
  }
  page.lengths = std::move(resp->lengths);
  page.more = resp->more;
  return page;
}

Result<std::vector<ws::StripeStat>> StorageClient::stripeStats(
    std::span<const uint32_t> stripes) const {
  ws::StripeStatsRequestT req;
  req.stripes.assign(stripes.begin(), stripes.end());
  SLUICE_ASSIGN_OR_RETURN(
      auto resp, (wire::typedCall<ws::StripeStatsRequest, ws::StripeStatsResponse>(
                     *endpoint_, peer_, storageOpcode(ws::StorageMethod::StripeStats), req,
                     "StripeStats on " + *address_)));
  return std::move(resp->stats);
}

Result<std::unique_ptr<NodeStats>> StorageClient::nodeStats() const {
  ws::NodeStatsRequestT req;
  return wire::typedCall<ws::NodeStatsRequest, ws::NodeStatsResponse>(
      *endpoint_, peer_, storageOpcode(ws::StorageMethod::NodeStats), req,
      "NodeStats on " + *address_);
}

Result<TransferResult> StorageClient::pushStripe(uint32_t stripe, const std::string& target,
                                                 std::span<const ChunkId> ids,
                                                 uint64_t rate_bytes_per_sec,
                                                 net::Duration timeout) const {
  ws::PushStripeRequestT req;
  req.stripe = stripe;
  req.target = target;
  req.ids = idsToWire(ids);
  req.rate_bytes_per_sec = rate_bytes_per_sec;
  SLUICE_ASSIGN_OR_RETURN(
      auto resp, (wire::typedCall<ws::PushStripeRequest, ws::PushStripeResponse>(
                     *endpoint_, peer_, storageOpcode(ws::StorageMethod::PushStripe), req,
                     "PushStripe " + std::to_string(stripe) + " from " + *address_, timeout)));
  return fromWire(resp->result.get());
}

Result<TransferResult> StorageClient::fetchChunks(uint32_t stripe, const std::string& source,
                                                  std::span<const ChunkId> ids,
                                                  uint64_t rate_bytes_per_sec,
                                                  net::Duration timeout) const {
  ws::FetchChunksRequestT req;
  req.stripe = stripe;
  req.source = source;
  req.ids = idsToWire(ids);
  req.rate_bytes_per_sec = rate_bytes_per_sec;
  SLUICE_ASSIGN_OR_RETURN(
      auto resp, (wire::typedCall<ws::FetchChunksRequest, ws::FetchChunksResponse>(
                     *endpoint_, peer_, storageOpcode(ws::StorageMethod::FetchChunks), req,
                     "FetchChunks " + std::to_string(stripe) + " into " + *address_, timeout)));
  return fromWire(resp->result.get());
}

}  // namespace sluice::storage
