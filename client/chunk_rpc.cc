#include "client/chunk_rpc.h"

#include <memory>

#include "common/wire/storage_generated.h"
#include "common/wire/typed_call.h"

namespace sluice::client {
namespace {

namespace st = wire::storage;

uint16_t opcode(st::StorageMethod m) {
  return net::makeOpcode(net::ServiceId::kStorage, static_cast<uint8_t>(m));
}

st::Buffer toWire(const net::RemoteBuffer& b) { return st::Buffer(b.addr, b.key, b.length); }
st::Hash toWire(const ChunkId& id) { return st::Hash(id.hi, id.lo); }

std::string nodeName(NodeId node) { return "storage node " + std::to_string(node); }

}  // namespace

std::future<Result<uint64_t>> getChunkRange(Cluster& cluster, NodeId node, const ChunkId& chunk,
                                            uint64_t offset, uint64_t length,
                                            const net::RemoteBuffer& target) {
  auto promise = std::make_shared<std::promise<Result<uint64_t>>>();
  auto future = promise->get_future();
  auto peer = cluster.nodePeer(node);
  if (!peer.isOk()) {
    promise->set_value(peer.status());
    return future;
  }
  st::GetChunkRequestT req;
  req.id = std::make_unique<st::Hash>(toWire(chunk));
  req.offset = offset;
  req.length = length;
  req.target = std::make_unique<st::Buffer>(toWire(target));
  auto body = wire::packBody<st::GetChunkRequest>(req);
  std::string what = "GetChunk " + chunk.toHex() + " from " + nodeName(node);
  cluster.endpoint().callAsync(
      *peer, opcode(st::StorageMethod::GetChunk), body, cluster.timeout(),
      [promise, what, length](Result<std::vector<uint8_t>> reply) {
        if (!reply.isOk()) {
          promise->set_value(wire::withCallContext(reply.status(), what));
          return;
        }
        auto resp = wire::decodeBody<st::GetChunkResponse>(*reply, what);
        if (!resp.isOk()) {
          promise->set_value(resp.status());
          return;
        }
        uint64_t got = (*resp)->length();
        if (length != 0 && got != length) {
          promise->set_value(Status(StatusCode::kProtocolError,
                                    what + ": node wrote " + std::to_string(got) +
                                        " bytes, asked for " + std::to_string(length)));
          return;
        }
        promise->set_value(got);
      });
  return future;
}

std::future<Status> putChunk(Cluster& cluster, NodeId node, const ChunkId& chunk, uint32_t stripe,
                             uint64_t length, const net::RemoteBuffer& source) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  auto peer = cluster.nodePeer(node);
  if (!peer.isOk()) {
    promise->set_value(peer.status());
    return future;
  }
  st::PutChunkRequestT req;
  req.id = std::make_unique<st::Hash>(toWire(chunk));
  req.stripe = stripe;
  req.length = length;
  req.source = std::make_unique<st::Buffer>(toWire(source));
  auto body = wire::packBody<st::PutChunkRequest>(req);
  std::string what = "PutChunk " + chunk.toHex() + " to " + nodeName(node);
  cluster.endpoint().callAsync(*peer, opcode(st::StorageMethod::PutChunk), body, cluster.timeout(),
                               [promise, what](Result<std::vector<uint8_t>> reply) {
                                 if (!reply.isOk()) {
                                   promise->set_value(wire::withCallContext(reply.status(), what));
                                   return;
                                 }
                                 auto resp = wire::decodeBody<st::PutChunkResponse>(*reply, what);
                                 promise->set_value(resp.status());
                               });
  return future;
}

Result<std::vector<uint64_t>> hasChunks(Cluster& cluster, NodeId node,
                                        const std::vector<ChunkId>& chunks) {
  SLUICE_ASSIGN_OR_RETURN(net::PeerId peer, cluster.nodePeer(node));
  st::HasChunksRequestT req;
  for (const auto& c : chunks) req.ids.push_back(toWire(c));
  std::string what = "HasChunks on " + nodeName(node);
  SLUICE_ASSIGN_OR_RETURN(auto resp, (wire::typedCall<st::HasChunksRequest, st::HasChunksResponse>(
                                         cluster.endpoint(), peer, opcode(st::StorageMethod::HasChunks),
                                         req, what, cluster.timeout())));
  if (resp->lengths.size() != chunks.size()) {
    return Status(StatusCode::kProtocolError, what + ": answered " +
                                                  std::to_string(resp->lengths.size()) +
                                                  " lengths for " + std::to_string(chunks.size()) +
                                                  " chunks");
  }
  return std::move(resp->lengths);
}

}  // namespace sluice::client
