// StripeMover: sluice-meta's repair loop.
//
// Every tick it (1) plans moves for stripes that list a node down for longer
// than the grace period (MetaStore::planRepairs), (2) carries out pending
// moves: the new home fetches the stripe's chunks from a live replica
// (FetchChunks, verified on arrival, node to node), then the map switches to
// a new epoch (MetaStore::completeMove). Copies run asynchronously, up to
// max_moves_per_target per target node and max_parallel_moves in all; a copy whose
// target or source goes down or away is abandoned and its move planned anew
// (a cut-off node must not hold repair up until its call times out). (3) It
// carries out cleanups: a node
// that is up again and left a stripe deletes the chunks it no longer needs
// (ListStripe, MetaStore::chunkReplication, DeleteChunks), and (4) every few
// ticks re-fetches chunks the nodes' scrubbers quarantined from a replica.
// (5) Every stray_check it asks each up node which stripes it holds chunks
// of, and queues a cleanup where the map does not list the node for the
// stripe: copies an upload put there with a map older than a move's cleanup
// would otherwise stay forever (the cleanup copies over what only it has).
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
#include <memory>
#include <mutex>
#include <thread>

#include "common/net/endpoint.h"
#include "common/wire/storage_generated.h"
#include "metadata/meta_store.h"

namespace sluice::meta {

struct MoverOptions {
  // A down node's stripes are repaired this long after it was first seen down.
  std::chrono::milliseconds repair_grace{std::chrono::minutes(10)};
  std::chrono::milliseconds tick{1000};
  uint64_t rate_bytes_per_sec = 0;  // per copy; 0: the storage node's default
  net::Duration transfer_timeout = std::chrono::minutes(30);
  // Copies in flight at once, and at once to one target node (a rebalance
  // onto a new node sends it every move).
  size_t max_parallel_moves = 4;
  size_t max_moves_per_target = 2;
  net::Duration call_timeout = std::chrono::seconds(10);
  // How often the nodes are asked for stripes they hold but are not listed
  // for (see (5) above); 0: never.
  std::chrono::milliseconds stray_check{std::chrono::minutes(5)};
};

struct MoverProgress {
  uint64_t moves_done = 0;
  uint64_t chunks_copied = 0;
  uint64_t bytes_copied = 0;
  uint64_t cleanups_done = 0;
  uint64_t chunks_deleted = 0;
  uint64_t corrupt_repaired = 0;
  uint64_t stray_cleanups_queued = 0;
};

class StripeMover {
 public:
  StripeMover(MetaStore& store, net::Endpoint& endpoint, MoverOptions options);
  ~StripeMover();
  void start();
  // Asks the loop to end and returns at once. A daemon calls it, then shuts
  // its endpoint down (which ends the mover's calls in flight: a copy may
  // wait up to transfer_timeout), then stop().
  void requestStop();
  // requestStop(), then waits for the loop to end.
  void stop();

  // Plans repairs of every down node now (no grace period) and wakes the loop.
  Result<std::vector<StripeMove>> repairNow();
  MoverProgress progress() const;
  // Chunks a scrubber quarantined that no up node of their stripe holds a
  // good copy of and that a version still uses: data lost unless a down node
  // comes back with a copy. As of the last corrupt check (every 5 s), from
  // the nodes' recent corruption reports (their last 64 each).
  struct LostChunk {
    Hash128 chunk;
    uint32_t stripe = 0;
    uint64_t found_on = 0;  // the node whose scrub found it corrupt
  };
  std::vector<LostChunk> lostChunks() const;

 private:
  void loop();
  void tick();
  // What one asynchronous copy reports; shared with its reply callback, which
  // may run after the mover is gone.
  struct Copy {
    StripeMove move;
    std::mutex mu;
    bool done = false;  // GUARDED_BY(mu)
    Result<std::unique_ptr<wire::storage::FetchChunksResponseT>> reply{Status(StatusCode::kInternal, "")};
  };
  // Starts the copy of `move` to its target.
  Status startCopy(const StripeMove& move, const ClusterMap& map);
  // Switches the map for a finished copy, or says why it did not.
  Status finishCopy(Copy& copy);
  // Drops copies whose nodes went away, finishes the ones that replied and
  // starts pending moves on idle targets.
  void runMoves();
  Status cleanup(const StripeCleanup& cleanup, const ClusterMap& map);
  // Chunks a node's scrub found corrupt (and quarantined) are fetched again
  // from a replica that has them.
  void repairCorrupt(const ClusterMap& map);
  // Queues cleanups of stripes nodes hold chunks of without being listed
  // for them; skips stripes a pending move copies to the node.
  void findStrays();
  Result<net::PeerId> peerOf(uint64_t node, const ClusterMap& map);

  MetaStore& store_;
  net::Endpoint& endpoint_;
  const MoverOptions options_;
  std::map<uint64_t, std::chrono::steady_clock::time_point> down_since_;  // loop thread only

  // Shared with copies' reply callbacks, which wake the loop when a copy
  // finishes and may run after the mover is gone.
  struct Signal {
    std::mutex mu;
    std::condition_variable cv;
    bool stopping = false;  // GUARDED_BY(mu)
    bool wake = false;      // GUARDED_BY(mu)
    void notify() {
      {
        std::lock_guard lock(mu);
        wake = true;
      }
      cv.notify_all();
    }
  };
  std::shared_ptr<Signal> signal_ = std::make_shared<Signal>();
  bool stopping() const {
    std::lock_guard lock(signal_->mu);
    return signal_->stopping;
  }
  std::thread thread_;

  std::atomic<uint64_t> moves_done_{0}, chunks_copied_{0}, bytes_copied_{0};
  std::atomic<uint64_t> cleanups_done_{0}, chunks_deleted_{0};
  std::atomic<uint64_t> corrupt_repaired_{0}, stray_cleanups_queued_{0};
  std::chrono::steady_clock::time_point last_corrupt_check_{};  // loop thread only
  mutable std::mutex lost_mu_;
  std::vector<LostChunk> lost_;  // GUARDED_BY(lost_mu_)
  std::chrono::steady_clock::time_point last_stray_check_{};    // loop thread only
  // (node, stripe) -> chunks it held at the last stray check; loop thread only
  std::map<std::pair<uint64_t, uint32_t>, uint64_t> stray_chunks_seen_;
  std::map<uint32_t, std::shared_ptr<Copy>> copies_;  // by stripe; loop thread only
};

}  // namespace sluice::meta
