#include "client/cluster.h"

namespace sluice::client {

namespace meta = wire::meta;

Cluster::Cluster(ClusterConfig config, std::unique_ptr<net::Endpoint> endpoint,
                 net::PeerId meta_peer)
    : config_(std::move(config)), endpoint_(std::move(endpoint)), meta_peer_(meta_peer) {}

Cluster::~Cluster() {
  if (endpoint_) endpoint_->shutdown();
}

Result<std::unique_ptr<Cluster>> Cluster::connect(const ClusterConfig& config) {
  net::EndpointOptions options;
  options.provider = config.provider;
  options.default_timeout = config.timeout;
  options.worker_threads = 1;  // a client serves nothing but pings
  SLUICE_ASSIGN_OR_RETURN(auto endpoint, net::Endpoint::create(options));
  SLUICE_RETURN_IF_ERROR(endpoint->start());
  auto peer = endpoint->connect(config.meta.toString());
  if (!peer.isOk()) {
    return peer.status().withContext("connecting to sluice-meta at " + config.meta.toString() +
                                     " (from " + config.source + ")");
  }
  std::unique_ptr<Cluster> cluster(new Cluster(config, std::move(endpoint), *peer));
  Status s = cluster->refreshMap(0);
  if (!s.isOk()) {
    return Status(s.code(), "sluice-meta at " + config.meta.toString() + " (from " +
                                config.source + "): " + s.message() +
                                (s.code() == StatusCode::kTimeout ||
                                         s.code() == StatusCode::kUnavailable
                                     ? " — is the cluster running? ('sluice dev status')"
                                     : ""));
  }
  return cluster;
}

std::shared_ptr<const ClusterMap> Cluster::map() const {
  std::lock_guard lock(mu_);
  return map_;
}

Status Cluster::refreshMap(uint64_t seen_epoch) {
  meta::GetClusterMapRequestT req;
  {
    std::lock_guard lock(mu_);
    if (map_ && seen_epoch != 0 && map_->epoch() > seen_epoch) return Status();
    req.known_epoch = map_ ? map_->epoch() : 0;
  }
  auto resp = meta<meta::GetClusterMapRequest, meta::GetClusterMapResponse>(
      meta::MetaMethod::GetClusterMap, req, "GetClusterMap");
  if (!resp.isOk()) return resp.status();
  if ((*resp)->unchanged) {
    // "Unchanged" answers a map we hold; with none held it leaves us mapless.
    if (req.known_epoch == 0) {
      return Status(StatusCode::kProtocolError,
                    "GetClusterMap: the metadata server answered 'unchanged' to a client that "
                    "holds no map; check that it runs a matching sluice-meta");
    }
    return Status();
  }
  SLUICE_ASSIGN_OR_RETURN(ClusterMap fresh, ClusterMap::fromResponse(**resp));
  std::lock_guard lock(mu_);
  if (!map_ || fresh.epoch() >= map_->epoch()) {
    map_ = std::make_shared<const ClusterMap>(std::move(fresh));
  }
  return Status();
}

void Cluster::markSuspect(NodeId node) {
  std::lock_guard lock(mu_);
  // Long enough to skip it for the rest of a read burst, short enough that a
  // restarted node is used again soon; the map's down state covers longer.
  suspect_until_[node] = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  any_suspect_.store(true, std::memory_order_relaxed);
}

void Cluster::markAnswered(NodeId node) {
  if (!any_suspect_.load(std::memory_order_relaxed)) return;  // the common case: no lock
  std::lock_guard lock(mu_);
  suspect_until_.erase(node);
  if (suspect_until_.empty()) any_suspect_.store(false, std::memory_order_relaxed);
}

bool Cluster::isSuspect(NodeId node) const {
  std::lock_guard lock(mu_);
  auto it = suspect_until_.find(node);
  return it != suspect_until_.end() && std::chrono::steady_clock::now() < it->second;
}

Result<net::PeerId> Cluster::nodePeer(NodeId node) {
  auto m = map();
  const NodeEntry* entry = m->node(node);
  if (entry == nullptr) {
    return notFound("storage node " + std::to_string(node) + " is not in cluster map epoch " +
                    std::to_string(m->epoch()));
  }
  auto peer = endpoint_->connect(entry->address);
  if (!peer.isOk()) {
    return peer.status().withContext("storage node " + std::to_string(node) + " at " +
                                     entry->address);
  }
  return *peer;
}

}  // namespace sluice::client
