// MetaReporter: registers this storage node with sluice-meta and heartbeats
// its capacity, usage, chunk count and error count (meta.fbs RegisterNode /
// Heartbeat).
//
// The first registration sends node id 0 and no cluster id; meta assigns
// both and they are kept in <data>/NODE. Later starts send them back. A data
// directory whose NODE names another cluster is refused (kFailedPrecondition
// naming both clusters), and so is one that meta refuses.
//
// Heartbeats go out on meta's cadence (heartbeat_interval_ms of its
// RegisterNode and Heartbeat answers, a quarter of its heartbeat timeout),
// each asynchronously with a timeout of two intervals: a reply that is slow
// or lost (a link just healed, meta busy) never delays the next heartbeat,
// so meta keeps hearing a live node. At most kMaxHeartbeatsInFlight are
// outstanding; a tick that finds them all pending skips its heartbeat.
//
// Thread safety: registerNode() before start(); stats getters from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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
  // RegisterNode and GetClusterMap calls; also the most a Heartbeat waits
  // (it waits two heartbeat intervals if that is shorter).
  net::Duration call_timeout{5000};
};

// What a node registers as its address. `listen` is what it binds
// (--listen), `advertise` what peers should connect to (--advertise, may be
// empty). A wildcard listen host (0.0.0.0, ::, empty) needs an advertise
// address: kInvalidArgument saying to pass --advertise host:port. An
// advertise address must be a valid address (common/net/address.h) with a
// concrete host; its port may be 0, meaning the port the endpoint bound.
Status checkAdvertise(const std::string& listen, const std::string& advertise);
// The address to register once the endpoint is bound at `bound` (its
// address()): `advertise` with a port 0 replaced by bound's port, or `bound`
// itself when `advertise` is empty.
Result<std::string> advertisedAddress(const std::string& advertise, const std::string& bound);

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
  // Stops heartbeating and waits for the heartbeats in flight to be answered
  // or time out (at most two intervals, and never past call_timeout): their
  // callbacks use this object.
  void stop();

  static constexpr int kMaxHeartbeatsInFlight = 4;

  uint64_t heartbeatsSent() const { return heartbeats_; }  // answered OK
  uint64_t heartbeatFailures() const { return failures_; }
  uint64_t mapEpoch() const { return map_epoch_; }
  // The interval meta asked for last (ms).
  uint32_t heartbeatIntervalMs() const { return interval_ms_; }

 private:
  void run();
  Status registerOnce();
  // Sends one heartbeat without waiting for its answer (onHeartbeatReply).
  void sendHeartbeat();
  void onHeartbeatReply(Result<std::vector<uint8_t>> reply);
  net::Duration heartbeatTimeout() const;

  net::Endpoint& endpoint_;
  ChunkStore& store_;
  MetaReporterOptions options_;
  net::PeerId peer_ = 0;
  bool connected_ = false;
  NodeIdentity identity_;  // written by registerOnce() on the caller's or the run() thread
  std::atomic<uint32_t> interval_ms_{1000};

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;        // GUARDED_BY(mu_)
  int in_flight_ = 0;            // GUARDED_BY(mu_) heartbeats awaiting their answer
  bool must_register_ = false;   // GUARDED_BY(mu_) meta no longer knows this node
  uint64_t failing_since_ = 0;   // GUARDED_BY(mu_) failures in a row (logged on change)
  std::atomic<uint64_t> heartbeats_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> map_epoch_{0};
};

}  // namespace sluice::storage
