// typedCall: one RPC of a FlatBuffers service, from an object-API request to
// a verified, unpacked object-API response.
//
//   wire::meta::GetDatasetRequestT req;
//   req.name = "imagenet";
//   auto r = wire::typedCall<wire::meta::GetDatasetRequest, wire::meta::GetDatasetResponse>(
//       endpoint, peer, opcode, req, "GetDataset imagenet");
//
// Every client-side caller of a service (meta, storage) is built on this, so verification of
// replies happens in exactly one place. `what` names the call in errors.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/core/result.h"
#include "common/net/endpoint.h"
#include "common/wire/body.h"

namespace sluice::wire {

template <typename Req>
std::vector<uint8_t> packBody(const typename Req::NativeTableType& request) {
  flatbuffers::FlatBufferBuilder fbb(256);
  fbb.Finish(Req::Pack(fbb, &request));
  return finishBody(fbb);
}

// Decodes and unpacks a reply body of type Resp.
template <typename Resp>
Result<std::unique_ptr<typename Resp::NativeTableType>> unpackBody(std::span<const uint8_t> body,
                                                                   std::string_view what) {
  SLUICE_ASSIGN_OR_RETURN(const Resp* resp, decodeBody<Resp>(body, what));
  return std::unique_ptr<typename Resp::NativeTableType>(resp->UnPack());
}

// Transport failures get the call's name ("GetDataset imagenet: timed out
// after 10 s"); errors the server answered already name their object and are
// passed through as they are.
inline Status withCallContext(const Status& status, std::string_view what) {
  switch (status.code()) {
    case StatusCode::kTimeout:
    case StatusCode::kUnavailable:
    case StatusCode::kShutdown:
    case StatusCode::kFabricError:
    case StatusCode::kProtocolError:
      return status.withContext(what);
    default:
      return status;
  }
}

// An asynchronous call's reply (as callAsync hands it over), verified as
// typedCall verifies one, for callers on the data path: `name()` builds the
// call's name only for an error, not on every record.
template <typename Resp, typename Name>
Result<const Resp*> verifiedReply(const Result<std::vector<uint8_t>>& reply, const Name& name) {
  if (!reply.isOk()) return withCallContext(reply.status(), name());
  auto resp = decodeBody<Resp>(*reply, "its reply");
  if (!resp.isOk()) return Status(resp.status().code(), name() + ": " + resp.status().message());
  return resp;
}

template <typename Req, typename Resp>
Result<std::unique_ptr<typename Resp::NativeTableType>> typedCall(
    net::Endpoint& endpoint, net::PeerId peer, uint16_t opcode,
    const typename Req::NativeTableType& request, std::string_view what,
    net::Duration timeout) {
  std::vector<uint8_t> body = packBody<Req>(request);
  auto reply = endpoint.call(peer, opcode, body, timeout);
  if (!reply.isOk()) return withCallContext(reply.status(), what);
  return unpackBody<Resp>(*reply, what);
}

template <typename Req, typename Resp>
Result<std::unique_ptr<typename Resp::NativeTableType>> typedCall(
    net::Endpoint& endpoint, net::PeerId peer, uint16_t opcode,
    const typename Req::NativeTableType& request, std::string_view what) {
  return typedCall<Req, Resp>(endpoint, peer, opcode, request, what, endpoint.defaultTimeout());
}

}  // namespace sluice::wire
