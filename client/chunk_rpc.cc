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

namespace {

// One asynchronous storage call. The reply is verified (verifiedReply)
// before `finish` turns it into the caller's result; failures get the call's
// name, which `name()` builds only then. T is Status or a Result, both built
// from a Status.
template <typename Req, typename Resp, typename T, typename Name, typename Finish>
Awaited<T> storageCallAsync(Cluster& cluster, NodeId node, st::StorageMethod method,
                             const typename Req::NativeTableType& request, Name name,
                             Finish finish) {
  auto result = std::make_shared<OneShot<T>>();
  Awaited<T> awaited(result);
  auto peer = cluster.nodePeer(node);
  if (!peer.isOk()) {
    result->set(peer.status());
    return awaited;
  }
  auto body = wire::packBody<Req>(request);
  cluster.endpoint().callAsync(
      *peer, opcode(method), body, cluster.timeout(),
      [result, name, finish](const Result<std::vector<uint8_t>>& reply) {
        auto resp = wire::verifiedReply<Resp>(reply, name);
        result->set(resp.isOk() ? finish(**resp, name) : T(resp.status()));
      });
  return awaited;
}

}  // namespace

Awaited<Result<uint64_t>> getChunkRange(Cluster& cluster, NodeId node, const ChunkId& chunk,
                                        uint64_t offset, uint64_t length,
                                        const net::RemoteBuffer& target) {
  st::GetChunkRequestT req;
  req.id = std::make_unique<st::Hash>(toWire(chunk));
  req.offset = offset;
  req.length = length;
  req.target = std::make_unique<st::Buffer>(toWire(target));
  return storageCallAsync<st::GetChunkRequest, st::GetChunkResponse, Result<uint64_t>>(
      cluster, node, st::StorageMethod::GetChunk, req,
      [chunk, node] { return "GetChunk " + chunk.toHex() + " from " + nodeName(node); },
      [length](const st::GetChunkResponse& resp, const auto& name) -> Result<uint64_t> {
        if (length != 0 && resp.length() != length) {
          return Status(StatusCode::kProtocolError, name() + ": node wrote " +
                                                        std::to_string(resp.length()) +
                                                        " bytes, asked for " + std::to_string(length));
        }
        return resp.length();
      });
}

Awaited<Status> putChunk(Cluster& cluster, NodeId node, const ChunkId& chunk, uint32_t stripe,
                         uint64_t length, const net::RemoteBuffer& source) {
  st::PutChunkRequestT req;
  req.id = std::make_unique<st::Hash>(toWire(chunk));
  req.stripe = stripe;
  req.length = length;
  req.source = std::make_unique<st::Buffer>(toWire(source));
  return storageCallAsync<st::PutChunkRequest, st::PutChunkResponse, Status>(
      cluster, node, st::StorageMethod::PutChunk, req,
      [chunk, node] { return "PutChunk " + chunk.toHex() + " to " + nodeName(node); },
      [](const st::PutChunkResponse&, const auto&) { return Status(); });
}

bool nodeFailure(const Status& s) {
  return s.code() == StatusCode::kTimeout || s.code() == StatusCode::kUnavailable ||
         s.code() == StatusCode::kFabricError;
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
