// MetaClient: a thin typed caller of the meta service, for tools, tests,
// benchmarks and other daemons.
//
//   auto client = MetaClient::connect(endpoint, "127.0.0.1:7400");
//   flatbuffers::FlatBufferBuilder fbb;
//   fbb.Finish(wire::meta::CreateStatRequestDirect(fbb, "imgs", "latest", "a/b.jpg"));
//   auto reply = client->call<wire::meta::StatResponse>(wire::meta::MetaMethod::Stat, fbb);
//   if (reply.isOk()) use((*reply)->entry()->size());
//
// Every reply is verified (wire::decodeBody) before it is returned.
// Thread safety: call() is safe from any thread (the Endpoint is).
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <memory>
#include <string>
#include <vector>

#include "common/net/endpoint.h"
#include "common/wire/body.h"
#include "common/wire/meta_generated.h"
#include "metadata/meta_service.h"

namespace sluice::meta {

// A verified reply and the bytes it points into.
template <typename T>
class Reply {
 public:
  Reply(std::vector<uint8_t> bytes, const T* root) : bytes_(std::move(bytes)), root_(root) {}
  const T* operator->() const { return root_; }
  const T& operator*() const { return *root_; }

 private:
  std::vector<uint8_t> bytes_;
  const T* root_;
};

class MetaClient {
 public:
  // `endpoint` must be started and outlive the client.
  static Result<std::unique_ptr<MetaClient>> connect(net::Endpoint* endpoint,
                                                     const std::string& address) {
    SLUICE_ASSIGN_OR_RETURN(net::PeerId peer, endpoint->connect(address));
    return std::unique_ptr<MetaClient>(new MetaClient(endpoint, peer));
  }

  template <typename Resp>
  Result<Reply<Resp>> call(wire::meta::MetaMethod method, flatbuffers::FlatBufferBuilder& fbb,
                           net::Duration timeout = net::Duration(30000)) {
    SLUICE_ASSIGN_OR_RETURN(
        std::vector<uint8_t> bytes,
        endpoint_->call(peer_, metaOpcode(method),
                        std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()), timeout));
    SLUICE_ASSIGN_OR_RETURN(const Resp* root,
                            wire::decodeBody<Resp>(bytes, wire::meta::EnumNameMetaMethod(method)));
    return Reply<Resp>(std::move(bytes), root);
  }

  net::PeerId peer() const { return peer_; }

 private:
  MetaClient(net::Endpoint* endpoint, net::PeerId peer) : endpoint_(endpoint), peer_(peer) {}
  net::Endpoint* endpoint_;
  net::PeerId peer_;
};

}  // namespace sluice::meta
