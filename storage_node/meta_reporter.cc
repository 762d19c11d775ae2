#include "storage_node/meta_reporter.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "common/net/address.h"
#include "common/wire/meta_generated.h"
#include "common/wire/typed_call.h"
#include "storage_node/file_io.h"

namespace sluice::storage {

namespace wm = wire::meta;

namespace {

uint16_t metaOpcode(wm::MetaMethod m) {
  return net::makeOpcode(net::ServiceId::kMeta, static_cast<uint8_t>(m));
}

bool isWildcardHost(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::";
}

}  // namespace

Status checkAdvertise(const std::string& listen, const std::string& advertise) {
  if (advertise.empty()) {
    if (net::isFabricName(listen)) return Status::ok();
    bool wildcard = listen.empty();
    if (!wildcard) {
      auto hp = net::parseHostPort(listen);
      if (!hp.isOk()) return hp.status().withContext("listen");
      wildcard = isWildcardHost(hp->host);
    }
    if (wildcard) {
      return invalidArgument("listen address '" + listen +
                             "' binds every interface, so it is no address to give peers: pass "
                             "--advertise host:port (the address clients and other nodes reach "
                             "this node at; port 0: the port it binds)");
    }
    return Status::ok();
  }
  SLUICE_RETURN_IF_ERROR(net::checkAddress(advertise).withContext("advertise"));
  if (net::isFabricName(advertise)) return Status::ok();
  auto hp = net::parseHostPort(advertise);
  if (!hp.isOk()) return hp.status().withContext("advertise");
  if (isWildcardHost(hp->host)) {
    return invalidArgument("advertise address '" + advertise +
                           "': give the host peers connect to, not a wildcard");
  }
  return Status::ok();
}

Result<std::string> advertisedAddress(const std::string& advertise, const std::string& bound) {
  if (advertise.empty()) return bound;
  if (net::isFabricName(advertise)) return advertise;
  SLUICE_ASSIGN_OR_RETURN(net::HostPort hp, net::parseHostPort(advertise));
  if (hp.port != "0") return advertise;
  auto bound_hp = net::parseHostPort(bound);
  if (!bound_hp.isOk()) {
    return invalidArgument("advertise address '" + advertise + "' has port 0, but the endpoint '" +
                           bound + "' has no port to take: give the port");
  }
  std::string host = hp.host.find(':') != std::string::npos ? "[" + hp.host + "]" : hp.host;
  return host + ":" + bound_hp->port;
}

MetaReporter::MetaReporter(net::Endpoint& endpoint, ChunkStore& store, MetaReporterOptions options)
    : endpoint_(endpoint), store_(store), options_(std::move(options)) {}

MetaReporter::~MetaReporter() { stop(); }

Status MetaReporter::registerOnce() {
  if (!connected_) {
    SLUICE_ASSIGN_OR_RETURN(peer_, endpoint_.connect(options_.meta_address));
    connected_ = true;
  }
  SLUICE_ASSIGN_OR_RETURN(auto stored, loadNodeIdentity(options_.data_dir));
  NodeIdentity mine = stored.value_or(NodeIdentity{});
  StoreStats st = store_.stats();
  wm::RegisterNodeRequestT req;
  if (!mine.cluster_id.isZero()) {
    req.cluster_id = std::make_unique<wm::Hash>(mine.cluster_id.hi, mine.cluster_id.lo);
  }
  req.node_id = mine.cluster_id.isZero() ? 0 : mine.node_id;
  req.address = options_.advertise_address;
  req.capacity_bytes = st.capacity_bytes;
  req.used_bytes = st.used_bytes;
  req.chunk_count = st.chunks;
  auto resp = wire::typedCall<wm::RegisterNodeRequest, wm::RegisterNodeResponse>(
      endpoint_, peer_, metaOpcode(wm::MetaMethod::RegisterNode), req,
      "RegisterNode with sluice-meta at " + options_.meta_address, options_.call_timeout);
  if (!resp.isOk()) return resp.status();
  if ((*resp)->cluster_id == nullptr || (*resp)->node_id == 0) {
    return protocolError("RegisterNode: sluice-meta at " + options_.meta_address +
                         " answered without a cluster id or node id");
  }
  NodeIdentity got{Hash128{(*resp)->cluster_id->hi(), (*resp)->cluster_id->lo()},
                   (*resp)->node_id};
  SLUICE_RETURN_IF_ERROR(checkSameCluster(options_.data_dir, mine, got.cluster_id));
  if (!(got == mine)) SLUICE_RETURN_IF_ERROR(saveNodeIdentity(options_.data_dir, got));
  identity_ = got;
  interval_ms_ = (*resp)->heartbeat_interval_ms ? (*resp)->heartbeat_interval_ms : 1000;
  map_epoch_ = (*resp)->map_epoch;
  return Status::ok();
}

Result<NodeIdentity> MetaReporter::registerNode() {
  const auto deadline = std::chrono::steady_clock::now() + options_.register_timeout;
  for (;;) {
    Status s = registerOnce();
    if (s.isOk()) {
      spdlog::info("registered with sluice-meta at {} as node {} of cluster {}",
                   options_.meta_address, identity_.node_id, identity_.cluster_id.toHex());
      return identity_;
    }
    const bool retryable = s.code() == StatusCode::kUnavailable ||
                           s.code() == StatusCode::kTimeout || s.code() == StatusCode::kFabricError;
    if (!retryable || std::chrono::steady_clock::now() >= deadline) return s;
    spdlog::warn("registering with sluice-meta at {}: {}; retrying", options_.meta_address,
                 s.toString());
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping_; })) {
      return Status(StatusCode::kShutdown, "stopped while registering");
    }
  }
}

Result<uint32_t> MetaReporter::fetchStripeCount() {
  if (!connected_) return failedPrecondition("MetaReporter: fetchStripeCount() before registerNode()");
  wm::GetClusterMapRequestT req;
  auto resp = wire::typedCall<wm::GetClusterMapRequest, wm::GetClusterMapResponse>(
      endpoint_, peer_, metaOpcode(wm::MetaMethod::GetClusterMap), req,
      "GetClusterMap from sluice-meta at " + options_.meta_address, options_.call_timeout);
  if (!resp.isOk()) return resp.status();
  return (*resp)->stripe_count;
}

net::Duration MetaReporter::heartbeatTimeout() const {
  const net::Duration two_intervals{2 * int64_t{interval_ms_.load()}};
  return std::min(options_.call_timeout, std::max(two_intervals, net::Duration{100}));
}

void MetaReporter::sendHeartbeat() {
  StoreStats st = store_.stats();
  wm::HeartbeatRequestT req;
  req.cluster_id = std::make_unique<wm::Hash>(identity_.cluster_id.hi, identity_.cluster_id.lo);
  req.node_id = identity_.node_id;
  req.capacity_bytes = st.capacity_bytes;
  req.used_bytes = st.used_bytes;
  req.chunk_count = st.chunks;
  // A lost I/O ring counts as an error too, so `sluice status` shows the
  // node needs a look (its log says why) and not only /metrics.
  req.error_count = st.io_errors + st.corrupt_found + ioRingsLost();
  std::vector<uint8_t> body = wire::packBody<wm::HeartbeatRequest>(req);
  {
    std::lock_guard lock(mu_);
    ++in_flight_;
  }
  // The callback may run inline (errors known at once): mu_ is not held here.
  endpoint_.callAsync(peer_, metaOpcode(wm::MetaMethod::Heartbeat), body, heartbeatTimeout(),
                      [this](Result<std::vector<uint8_t>> reply) {
                        onHeartbeatReply(std::move(reply));
                      });
}

// Runs on the transport's progress thread: short, never blocks on a call.
void MetaReporter::onHeartbeatReply(Result<std::vector<uint8_t>> reply) {
  const std::string what = "Heartbeat to sluice-meta at " + options_.meta_address;
  Status s;
  if (reply.isOk()) {
    auto resp = wire::unpackBody<wm::HeartbeatResponse>(*reply, what);
    if (resp.isOk()) {
      map_epoch_ = (*resp)->map_epoch;
      if ((*resp)->heartbeat_interval_ms != 0) interval_ms_ = (*resp)->heartbeat_interval_ms;
      ++heartbeats_;
    } else {
      s = resp.status();
    }
  } else {
    s = wire::withCallContext(reply.status(), what);
  }
  if (!s.isOk()) ++failures_;
  uint64_t failed_before = 0;
  bool first_failure = false;
  {
    std::lock_guard lock(mu_);
    --in_flight_;
    if (s.isOk()) {
      failed_before = failing_since_;
      failing_since_ = 0;
    } else {
      first_failure = failing_since_++ == 0;
      // Meta lost track of this node (e.g. its database was restored): run() registers again.
      if (s.code() == StatusCode::kNotFound) must_register_ = true;
    }
  }
  cv_.notify_all();
  if (failed_before > 0) {
    spdlog::info("heartbeats to sluice-meta at {} answered again after {} failed",
                 options_.meta_address, failed_before);
  } else if (first_failure) {
    spdlog::warn("{}; heartbeats go on every {} ms", s.toString(), interval_ms_.load());
  } else if (!s.isOk()) {
    spdlog::debug("{}", s.toString());
  }
}

Status MetaReporter::start() {
  if (identity_.node_id == 0) return failedPrecondition("MetaReporter: start() before registerNode()");
  thread_ = std::thread([this] { run(); });
  return Status::ok();
}

void MetaReporter::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MetaReporter::run() {
  using Clock = std::chrono::steady_clock;
  auto next = Clock::now();
  for (;;) {
    const auto interval = std::chrono::milliseconds(interval_ms_.load());
    next += interval;
    // After a stall (a slow re-registration) resume the cadence from now
    // rather than sending the missed ticks in a burst.
    if (next + interval < Clock::now()) next = Clock::now();
    bool must_register = false;
    bool all_pending = false;
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_until(lock, next, [&] { return stopping_; })) break;
      must_register = std::exchange(must_register_, false);
      all_pending = in_flight_ >= kMaxHeartbeatsInFlight;
    }
    if (must_register) {
      Status r = registerOnce();
      if (!r.isOk()) {
        spdlog::error("re-registering with sluice-meta: {}", r.toString());
        std::lock_guard lock(mu_);
        must_register_ = true;
      }
      continue;
    }
    if (!all_pending) sendHeartbeat();
    // A heartbeat that leaves late looks to meta like a dead node: say so
    // here, or a node marked down would have nothing in its own log.
    const auto late = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - next);
    if (late > interval) {
      spdlog::warn("heartbeat sent {} ms after its time (every {} ms); this thread was held up",
                   late.count(), interval.count());
    }
  }
  // Every callback runs once, within its timeout or at endpoint shutdown.
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return in_flight_ == 0; });
}

}  // namespace sluice::storage
