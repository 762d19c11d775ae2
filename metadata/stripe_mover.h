// StripeMover: sluice-meta's repair loop.
//
// Every tick it (1) plans moves for stripes that list a node down for longer
// than the grace period (MetaStore::planRepairs), (2) carries out pending
// moves: the new home fetches the stripe's chunks from a live replica
// (FetchChunks, verified on arrival, node to node), then the map switches to
// a new epoch (MetaStore::completeMove), and (3) carries out cleanups: a node
// that is up again and left a stripe deletes the chunks it no longer needs
// (ListStripe, MetaStore::chunkReplication, DeleteChunks), and (4) every few
// ticks re-fetches chunks the nodes' scrubbers quarantined from a replica.
//
// Moves and cleanups are persisted before any work, so a meta killed at any
// point resumes them on restart; FetchChunks skips what the target already
// has, so a repeated copy costs only the rest. Readers keep working: the map
// points at the old replicas until the copy is verified, and old copies are
// deleted only after the switch.
//
// Thread safety: start/stop from one thread; repairNow and progress from any.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "common/net/endpoint.h"
#include "metadata/meta_store.h"

namespace sluice::meta {

struct MoverOptions {
  // A down node's stripes are repaired this long after it was first seen down.
  std::chrono::milliseconds repair_grace{std::chrono::minutes(10)};
  std::chrono::milliseconds tick{1000};
  uint64_t rate_bytes_per_sec = 0;  // per copy; 0: the storage node's default
  net::Duration transfer_timeout = std::chrono::minutes(30);
  net::Duration call_timeout = std::chrono::seconds(10);
};

struct MoverProgress {
  uint64_t moves_done = 0;
  uint64_t chunks_copied = 0;
  uint64_t bytes_copied = 0;
  uint64_t cleanups_done = 0;
  uint64_t chunks_deleted = 0;
  uint64_t corrupt_repaired = 0;
};

class StripeMover {
 public:
  StripeMover(MetaStore& store, net::Endpoint& endpoint, MoverOptions options);
  ~StripeMover();
  void start();
  void stop();

  // Plans repairs of every down node now (no grace period) and wakes the loop.
  Result<std::vector<StripeMove>> repairNow();
  MoverProgress progress() const;

 private:
  void loop();
  void tick();
  Status execute(const StripeMove& move, const ClusterMap& map);
  Status cleanup(const StripeCleanup& cleanup, const ClusterMap& map);
  // Chunks a node's scrub found corrupt (and quarantined) are fetched again
  // from a replica that has them.
  void repairCorrupt(const ClusterMap& map);
  Result<net::PeerId> peerOf(uint64_t node, const ClusterMap& map);

  MetaStore& store_;
  net::Endpoint& endpoint_;
  const MoverOptions options_;
  std::map<uint64_t, std::chrono::steady_clock::time_point> down_since_;  // loop thread only

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  bool wake_ = false;      // GUARDED_BY(mu_)
  std::thread thread_;

  std::atomic<uint64_t> moves_done_{0}, chunks_copied_{0}, bytes_copied_{0};
  std::atomic<uint64_t> cleanups_done_{0}, chunks_deleted_{0};
  std::atomic<uint64_t> corrupt_repaired_{0};
  uint64_t ticks_ = 0;  // loop thread only
};

}  // namespace sluice::meta
