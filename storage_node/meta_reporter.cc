#include "storage_node/meta_reporter.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "common/wire/meta_generated.h"
#include "common/wire/typed_call.h"

namespace sluice::storage {

namespace wm = wire::meta;

namespace {

uint16_t metaOpcode(wm::MetaMethod m) {
  return net::makeOpcode(net::ServiceId::kMeta, static_cast<uint8_t>(m));
}

}  // namespace

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

Status MetaReporter::heartbeatOnce() {
  StoreStats st = store_.stats();
  wm::HeartbeatRequestT req;
  req.cluster_id = std::make_unique<wm::Hash>(identity_.cluster_id.hi, identity_.cluster_id.lo);
  req.node_id = identity_.node_id;
  req.capacity_bytes = st.capacity_bytes;
  req.used_bytes = st.used_bytes;
  req.chunk_count = st.chunks;
  req.error_count = st.io_errors + st.corrupt_found;
  auto resp = wire::typedCall<wm::HeartbeatRequest, wm::HeartbeatResponse>(
      endpoint_, peer_, metaOpcode(wm::MetaMethod::Heartbeat), req,
      "Heartbeat to sluice-meta at " + options_.meta_address, options_.call_timeout);
  if (!resp.isOk()) return resp.status();
  map_epoch_ = (*resp)->map_epoch;
  ++heartbeats_;
  return Status::ok();
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
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [&] { return stopping_; })) {
        return;
      }
    }
    Status s = heartbeatOnce();
    if (s.isOk()) continue;
    ++failures_;
    spdlog::warn("{}", s.toString());
    if (s.code() == StatusCode::kNotFound) {
      // Meta lost track of this node (e.g. its database was restored): register again.
      Status r = registerOnce();
      if (!r.isOk()) spdlog::error("re-registering with sluice-meta: {}", r.toString());
    }
  }
}

}  // namespace sluice::storage
