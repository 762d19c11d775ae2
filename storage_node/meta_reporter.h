// MetaReporter: registers this storage node with sluice-meta and heartbeats
// its capacity, usage, chunk count and error count (meta.fbs RegisterNode /
// Heartbeat).
//
// The first registration sends node id 0 and no cluster id; meta assigns
// both and they are kept in <data>/NODE. Later starts send them back. A data
// directory whose NODE names another cluster is refused (kFailedPrecondition
// naming both clusters), and so is one that meta refuses.
//
// Thread safety: registerNode() before start(); stats getters from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "common/core/clock.h"
#include "common/core/result.h"
#include "common/net/endpoint.h"
#include "storage_node/chunk_store.h"
#include "storage_node/node_identity.h"

namespace sluice::storage {

struct MetaReporterOptions {
  std::string meta_address;       // "host:port" of sluice-meta
  std::string advertise_address;  // this node's endpoint address, as peers reach it
  std::string data_dir;           // where NODE lives
  net::Duration register_timeout{30000};  // keep retrying an unreachable meta this long
  net::Duration call_timeout{5000};
};

class MetaReporter {
 public:
  MetaReporter(net::Endpoint& endpoint, ChunkStore& store, MetaReporterOptions options);
  ~MetaReporter();  // stops

  // Registers (retrying while meta is unreachable, up to register_timeout)
  // and stores the identity meta assigned. Returns it.
  Result<NodeIdentity> registerNode();
  // The cluster's stripe count from meta's cluster map (GetClusterMap).
  Result<uint32_t> fetchStripeCount();
  // Heartbeats on a background thread at meta's requested interval;
  // re-registers if meta no longer knows the node.
  Status start();
  void stop();

  uint64_t heartbeatsSent() const { return heartbeats_; }
  uint64_t heartbeatFailures() const { return failures_; }
  uint64_t mapEpoch() const { return map_epoch_; }

 private:
  void run();
  Status registerOnce();
  Status heartbeatOnce();

  net::Endpoint& endpoint_;
  ChunkStore& store_;
  MetaReporterOptions options_;
  net::PeerId peer_ = 0;
  bool connected_ = false;
  NodeIdentity identity_;
  uint32_t interval_ms_ = 1000;

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  std::atomic<uint64_t> heartbeats_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> map_epoch_{0};
};

}  // namespace sluice::storage
