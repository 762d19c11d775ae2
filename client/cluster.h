// Cluster: a client's connection to a Sluice cluster.
//
// Owns the client's libfabric endpoint, the metadata server's peer handle,
// the cached cluster map and connections to storage nodes. Everything else in
// libsluice (reads, uploads, prefetch) is built on it.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string_view>

#include "client/cluster_config.h"
#include "client/cluster_map.h"
#include "common/core/result.h"
#include "common/net/endpoint.h"
#include "common/wire/meta_generated.h"
#include "common/wire/typed_call.h"

namespace sluice::client {

class Cluster {
 public:
  // Connects to meta and fetches the cluster map. kUnavailable/kTimeout with
  // the address when meta does not answer.
  static Result<std::unique_ptr<Cluster>> connect(const ClusterConfig& config);
  ~Cluster();

  net::Endpoint& endpoint() { return *endpoint_; }
  const ClusterConfig& config() const { return config_; }
  net::Duration timeout() const { return config_.timeout; }

  // One metadata RPC. `what` names it in transport errors.
  template <typename Req, typename Resp>
  Result<std::unique_ptr<typename Resp::NativeTableType>> meta(
      wire::meta::MetaMethod method, const typename Req::NativeTableType& request,
      std::string_view what) {
    return wire::typedCall<Req, Resp>(*endpoint_, meta_peer_, metaOpcode(method), request, what,
                                      config_.timeout);
  }

  static uint16_t metaOpcode(wire::meta::MetaMethod m) {
    return net::makeOpcode(net::ServiceId::kMeta, static_cast<uint8_t>(m));
  }

  // The cached map; never null after connect().
  std::shared_ptr<const ClusterMap> map() const;
  // Fetches the map if meta's epoch moved past `seen_epoch` (0: always ask).
  Status refreshMap(uint64_t seen_epoch = 0);

  // The endpoint peer for a storage node of the current map.
  Result<net::PeerId> nodePeer(NodeId node);

  // A node that just timed out or refused is tried last by readers for a
  // while, so one dead node costs one timeout, not one per request. A node
  // that answers is trusted again at once: when every replica of a chunk is
  // suspect (one restarted, another just died), the one that answered must
  // come first, or each read waits out the dead one again.
  void markSuspect(NodeId node);
  void markAnswered(NodeId node);
  bool isSuspect(NodeId node) const;

 private:
  Cluster(ClusterConfig config, std::unique_ptr<net::Endpoint> endpoint, net::PeerId meta_peer);

  const ClusterConfig config_;
  std::unique_ptr<net::Endpoint> endpoint_;
  const net::PeerId meta_peer_;
  mutable std::mutex mu_;
  std::shared_ptr<const ClusterMap> map_;  // GUARDED_BY(mu_)
  std::unordered_map<NodeId, std::chrono::steady_clock::time_point> suspect_until_;  // GUARDED_BY(mu_)
  std::atomic<bool> any_suspect_{false};  // suspect_until_ may be non-empty
};

}  // namespace sluice::client
