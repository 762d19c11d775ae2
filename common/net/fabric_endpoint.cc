#include "common/net/fabric_endpoint.h"

#include <netinet/in.h>
#include <pthread.h>
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/core/logging.h"
#include "common/core/metrics.h"
#include "common/net/address.h"
#include "common/net/frame.h"
#include "common/net/worker_pool.h"

namespace sluice::net {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kFiVersion = FI_VERSION(1, 9);
constexpr size_t kCqBatch = 16;
constexpr auto kSweepInterval = std::chrono::milliseconds(2);
constexpr int kMaxIdleWaitMs = 50;
// RMA pieces are capped even where the provider allows more, so one huge
// transfer cannot monopolise a connection for seconds.
constexpr size_t kMaxRmaPiece = size_t{64} << 20;
// libfabric 1.17's shm provider deadlocks its progress (fi_cq_read never
// returns) when a message beyond its 4 KiB inject size meets a smaller posted
// receive, where other providers report FI_ETRUNC. So over shm every frame
// body is bounded by this transport-wide constant, which every shm endpoint
// posts receives for, whatever max_body says; the receiver's own max_body is
// then enforced by parsing, never by truncation.
constexpr size_t kShmMaxBody = size_t{4} << 20;
// shm's blocking CQ read spins in sched_yield (one busy core per endpoint),
// so shm endpoints poll instead: for kHotPoll after any completion or post
// (yielding the core; a reply usually follows within that), then with timed
// waits doubling from kIdlePollMinUs to kIdlePollMaxUs. Posting work ends
// the wait at once.
//
// The back-off grows to kIdlePollMaxUs only on a quiet endpoint: while its
// own calls await replies, its transfers are in flight, or it saw traffic
// within kBusyWindow, it stops at kBusyPollMaxUs, so a reply or a busy peer's
// next request waits tens of microseconds, not a grown 1 ms sleep. (Polling
// every 20 µs instead made four clients slower on two cores: the pollers'
// wake-ups took the CPU from the disk path.)
constexpr int64_t kIdlePollMinUs = 20;
constexpr int64_t kBusyPollMaxUs = 100;
constexpr int64_t kIdlePollMaxUs = 1000;
constexpr auto kHotPoll = std::chrono::microseconds(30);
constexpr auto kBusyWindow = std::chrono::milliseconds(2);
// How long a send may be refused (FI_EAGAIN) while its peer accepts nothing
// else before its call fails as unavailable. A connecting provider refuses
// sends until the connection is up, and rxm keeps reconnecting to a peer
// that is gone (killed, port closed, unreachable), so without this bound a
// call to a dead node waited its whole timeout (seconds) instead of failing
// over to another replica. A connection comes up in well under a millisecond
// on a LAN and a live peer drains its queue, so a second of refusals with no
// send to that peer accepted means nobody is there.
constexpr auto kRefusedGrace = std::chrono::seconds(1);
// A peer with calls on the wire that has answered nothing for kProbeAfter
// gets a ping from the endpoint (one per peer at a time; peers are looked at
// every kProbeScanInterval, so no call pays for it on its own path). A
// request can be accepted onto a connection the peer's death has already
// reset (the provider completes the send and drops the connection without a
// word), and then only the ping, refused or failed on the dead connection,
// ends the calls waiting on it before their timeouts (see kRefusedGrace).
constexpr auto kProbeAfter = std::chrono::seconds(1);
constexpr auto kProbeTimeout = std::chrono::seconds(3);
constexpr auto kProbeScanInterval = std::chrono::milliseconds(100);

// Process-wide counts of dead-peer detection, on every daemon's /metrics.
Counter& peersFoundGone() {
  static Counter& c = MetricsRegistry::global().counter(
      "sluice_rpc_peers_found_gone_total",
      "times a peer was found gone (sends refused or failed) and its pending calls ended");
  return c;
}
Counter& peersForgotten() {
  static Counter& c = MetricsRegistry::global().counter(
      "sluice_rpc_peers_forgotten_total",
      "peers learned from requests and forgotten after peer_idle_timeout without traffic");
  return c;
}
Gauge& peersKnown() {
  static Gauge& g = MetricsRegistry::global().gauge(
      "sluice_rpc_peers", "peers the process's endpoints currently know (connected or learned)");
  return g;
}
Counter& livenessPings() {
  static Counter& c = MetricsRegistry::global().counter(
      "sluice_rpc_liveness_pings_total", "pings sent to peers that left calls unanswered for 1 s");
  return c;
}

Counter& requestsRefusedOverloaded() {
  static Counter& c = MetricsRegistry::global().counter(
      "sluice_rpc_requests_refused_overloaded_total",
      "requests answered kUnavailable because max_queued_requests or max_queued_bytes were "
      "already waiting for a worker");
  return c;
}

Counter& postsHandedOff() {
  static Counter& c = MetricsRegistry::global().counter(
      "sluice_rpc_writes_handed_off_total",
      "RMA writes of incoming calls (and their replies) posted by the progress thread because "
      "the endpoint had transfers in flight");
  return c;
}

std::string fiErrorText(ssize_t rc) {
  return std::string(fi_strerror(static_cast<int>(rc < 0 ? -rc : rc)));
}

std::string hexOpcode(uint16_t opcode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%04x", opcode);
  return buf;
}

size_t pageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBytes = std::unique_ptr<uint8_t, FreeDeleter>;

AlignedBytes allocatePageAligned(size_t size) {
  size_t page = pageSize();
  size_t rounded = (std::max<size_t>(size, 1) + page - 1) / page * page;
  return AlignedBytes(static_cast<uint8_t*>(std::aligned_alloc(page, rounded)));
}

enum class OpKind : uint8_t { kRecv, kSend, kRma };

struct Peer;

// Every operation posted to libfabric carries one of these as its context;
// fi_context2 comes first for providers that require FI_CONTEXT/FI_CONTEXT2.
struct OpContext {
  fi_context2 fi{};
  OpKind kind;
  explicit OpContext(OpKind k) : kind(k) {}
};

struct RecvBuffer : OpContext {
  RecvBuffer() : OpContext(OpKind::kRecv) {}
  AlignedBytes data;
  size_t size = 0;
  fid_mr* mr = nullptr;
  void* desc = nullptr;
};

struct SendOp : OpContext {
  SendOp() : OpContext(OpKind::kSend) {}
  ~SendOp() {
    if (mr != nullptr) fi_close(&mr->fid);
  }
  std::vector<uint8_t> frame;
  fid_mr* mr = nullptr;
  void* desc = nullptr;
  fi_addr_t dest = FI_ADDR_UNSPEC;
  PeerId peer = 0;
  std::shared_ptr<const Peer> keep;  // the peer is not forgotten while this may reach it
  uint64_t request_id = 0;                               // non-zero: the request of a pending call
  std::chrono::steady_clock::time_point retry_deadline;  // set on the first FI_EAGAIN
  std::chrono::steady_clock::time_point first_refused;   // the first FI_EAGAIN
};

// Names an RMA in messages. It is kept as its parts and put into words only
// when a message needs them: a record read is tens of microseconds, and
// formatting the text (allocations, and the peer's name looked up under the
// endpoint's lock) on every one was pure overhead.
struct RmaName {
  bool read = false;
  size_t length = 0;
  PeerId peer = 0;  // 0: no operation named yet
  // Keeps the peer (and its name) from being forgotten while the operation,
  // its plan or its wait lives: they all hold a copy of this name.
  std::shared_ptr<const Peer> peer_ref;
  bool empty() const { return peer == 0; }
  const char* op() const { return read ? "rmaRead" : "rmaWrite"; }
  std::string peerText() const;
  // "rmaRead of 4096 bytes from peer 127.0.0.1:7000"
  std::string text() const {
    return std::string(op()) + " of " + std::to_string(length) + " bytes " +
           (read ? "from" : "to") + " peer " + peerText();
  }
};

struct RmaWait {
  std::mutex mu;
  std::condition_variable cv;
  size_t remaining = 0;  // GUARDED_BY(mu)
  Status error;          // GUARDED_BY(mu): the first failure
  RmaName what;          // GUARDED_BY(mu): the first operation, for timeout messages
  std::chrono::steady_clock::time_point deadline{};  // GUARDED_BY(mu): set by the first post
  // GUARDED_BY(mu): run once, outside the lock, when `remaining` drops to 0
  // or the endpoint shuts down; see whenRmaDone.
  std::function<void(Status)> on_done;
  bool overdue = false;  // GUARDED_BY(mu): past the deadline, logged once
};

// Runs wait.on_done if it is set and nothing remains; `lock` holds wait.mu
// and is released either way.
void settleRmaWait(RmaWait& wait, std::unique_lock<std::mutex>& lock) {
  if (wait.remaining > 0 || !wait.on_done) {
    lock.unlock();
    return;
  }
  auto done = std::move(wait.on_done);
  wait.on_done = nullptr;
  Status error = wait.error;
  lock.unlock();
  done(std::move(error));
}

// What an operation described by `what` ends with once shutdown has begun.
Status shutDown(const std::string& what) {
  return Status(StatusCode::kShutdown, what + ": endpoint shut down");
}

// Ends `wait` as if its writes had completed, with kShutdown unless one
// failed, and runs its on_done: no completion will come for it.
void abandonRmaWait(RmaWait& wait) {
  std::unique_lock<std::mutex> lock(wait.mu);
  if (!wait.on_done) return;
  if (wait.error.isOk()) wait.error = shutDown(wait.what.text());
  wait.remaining = 0;
  settleRmaWait(wait, lock);
}

struct RmaOp : OpContext {
  RmaOp() : OpContext(OpKind::kRma) {}
  std::shared_ptr<RmaWait> wait;
  RmaName what;
};

// A checked RMA, its pieces counted into its wait, ready to post from
// `next` on; see FabricCore::planRma.
struct RmaPlan {
  std::shared_ptr<RmaWait> wait;
  RmaName what;  // also the direction and the length
  void* desc = nullptr;
  uint8_t* local = nullptr;  // the first byte
  uint64_t remote_addr = 0;  // the first byte
  uint64_t key = 0;
  fi_addr_t dest = FI_ADDR_UNSPEC;
  size_t pieces = 0;
  size_t next = 0;  // pieces posted so far
  Clock::time_point deadline;
};

// Work a handler thread leaves to the progress thread (see
// FabricCore::handOff): `run` there, in order, or `cancel` if the progress
// thread is gone. `run` returns false when it could not finish (the
// provider's queue is full): it runs again, before anything queued after it.
struct HandOff {
  PeerId peer = 0;  // whose connection it uses: a stall holds back only that peer's work
  std::function<bool()> run;
  std::function<void()> cancel;
};

// A peer the endpoint knows: one it connect()ed to by name, or one learned
// from a request's sender address. Objects that may still reach a peer (an
// incoming call, a send, an RMA, its plan or wait) hold a shared_ptr to it;
// a learned peer that nothing holds and that was idle for
// EndpointOptions::peer_idle_timeout is forgotten (see forgetIdlePeersLocked).
struct Peer {
  PeerId id = 0;
  fi_addr_t fi_addr = FI_ADDR_UNSPEC;
  std::string raw;         // fabric address bytes
  std::string name;        // "host:port" for messages; immutable
  std::string advertised;  // our address as put in requests to this peer; immutable
  size_t inflight = 0;
  std::deque<uint64_t> waiting;  // request ids queued for an in-flight slot
  Clock::time_point last_heard{};  // the last reply from it
  Clock::time_point busy_since{};  // when inflight last rose from 0
  Clock::time_point last_used{};   // the last request from it or call to it
  bool probing = false;            // a liveness ping to it is pending
  bool named = false;  // connect()ed to (callers keep its PeerId) or not removable: never forgotten
};

std::string RmaName::peerText() const {
  return peer_ref != nullptr ? peer_ref->name : "peer#" + std::to_string(peer);
}

struct PendingCall {
  PeerId peer = 0;
  uint16_t opcode = 0;
  Duration timeout{0};
  Clock::time_point deadline;
  bool probe = false;  // the endpoint's own liveness ping
  ReplyCallback done;
  std::unique_ptr<SendOp> queued;  // set while waiting for an in-flight slot
};

class FabricCore;
thread_local const FabricCore* tl_core_thread = nullptr;  // set on our own threads

class FabricMemoryRegion final : public MemoryRegion {
 public:
  FabricMemoryRegion(std::shared_ptr<FabricCore> core, uint8_t* data, size_t size, fid_mr* mr,
                     uint64_t key, uint64_t base, AlignedBytes owned)
      : core_(std::move(core)),
        data_(data),
        size_(size),
        mr_(mr),
        key_(key),
        base_(base),
        owned_(std::move(owned)) {}
  ~FabricMemoryRegion() override {
    if (mr_ != nullptr) fi_close(&mr_->fid);
  }
  uint8_t* data() const override { return data_; }
  size_t size() const override { return size_; }
  RemoteBuffer remote(size_t offset, size_t length) const override {
    offset = std::min(offset, size_);
    length = std::min(length, size_ - offset);
    return RemoteBuffer{base_ + offset, key_, length};
  }
  void* desc() const { return fi_mr_desc(mr_); }
  const FabricCore* core() const { return core_.get(); }

 private:
  std::shared_ptr<FabricCore> core_;  // keeps the domain open while registered
  uint8_t* data_;
  size_t size_;
  fid_mr* mr_;
  uint64_t key_;
  uint64_t base_;  // virtual address (FI_MR_VIRT_ADDR) or 0 (offset addressing)
  AlignedBytes owned_;
};

class FabricCore : public std::enable_shared_from_this<FabricCore> {
 public:
  explicit FabricCore(const EndpointOptions& options) : options_(options) {}
  ~FabricCore();

  Status open();
  void registerHandler(uint16_t opcode, Handler handler, HandlerMode mode);
  Status start();
  void shutdown();
  const std::string& address() const { return address_; }
  const std::string& provider() const { return provider_; }
  Duration defaultTimeout() const { return options_.default_timeout; }
  size_t peerCount() {
    std::lock_guard<std::mutex> lock(mu_);
    return peers_.size();
  }
  Result<PeerId> connect(const std::string& host_port);
  // `probe`: the endpoint's own liveness ping, which takes an in-flight slot
  // even when all are busy (calls stuck on a dead peer hold them all).
  void callAsync(PeerId peer, uint16_t opcode, std::span<const uint8_t> body, Duration timeout,
                 ReplyCallback done, bool probe = false);
  Result<std::unique_ptr<MemoryRegion>> registerMemory(void* data, size_t size, Access access,
                                                       AlignedBytes owned);
  Status sendRaw(PeerId peer, std::span<const uint8_t> bytes);

  // Used by incoming calls.
  void sendReply(std::shared_ptr<const Peer> to, uint64_t request_id, uint16_t opcode,
                 const Status& status, std::span<const uint8_t> body);
  Status rma(bool read, PeerId peer, const MemoryRegion& local, size_t local_offset,
             const RemoteBuffer& remote, size_t remote_offset, size_t length);
  // rma() in two halves: postRma adds its pieces to `wait` (whose deadline
  // the first post sets); awaitRma blocks until none is outstanding.
  Status postRma(bool read, PeerId peer, const MemoryRegion& local, size_t local_offset,
                 const RemoteBuffer& remote, size_t remote_offset, size_t length,
                 const std::shared_ptr<RmaWait>& wait);
  // postRma's checks: a plan whose pieces are already counted into `wait`
  // (so nothing can look finished before they are posted), or the error.
  Result<RmaPlan> planRma(bool read, PeerId peer, const MemoryRegion& local, size_t local_offset,
                          const RemoteBuffer& remote, size_t remote_offset, size_t length,
                          const std::shared_ptr<RmaWait>& wait);
  // Posts the plan's pieces from plan.next on. With `may_wait`, a full
  // provider queue is waited out (to the deadline); without (the progress
  // thread), the call stops there and returns false with the rest unposted.
  // A failure is recorded in the wait, the unposted pieces uncounted.
  bool postRmaPieces(RmaPlan& plan, bool may_wait);
  // Ends the plan's unposted pieces with `why` (the wait settles if they
  // were all that remained).
  void dropRmaPieces(RmaPlan& plan, const Status& why);
  // kShutdown once shutdown has begun, kTimeout (saying `why`) past the
  // plan's deadline, else OK.
  Status tooLate(const RmaPlan& plan, const char* why) const {
    if (stopped_) return shutDown(plan.what.text());
    if (Clock::now() >= plan.deadline) return timeoutError(plan.what.text() + ": " + why);
    return Status::ok();
  }

  // Whether an incoming call's writes and reply should be handed off to the
  // progress thread rather than posted from the handler's: yes while the
  // endpoint has transfers in flight, when the progress thread is busy in
  // the provider and the handler would only queue up behind its lock. An
  // idle endpoint posts at once, without waking another thread.
  bool shouldHandOff() const {
    return !shm_ && live_count_.load(std::memory_order_relaxed) > 0;
  }
  // Queues `h` for the progress thread, which runs queued work first thing
  // each turn, in order, and is woken if it is waiting. Runs h.cancel at
  // once if the progress thread has ended.
  void handOff(HandOff h);
  Status awaitRma(RmaWait& wait);
  // Runs done(first failure) once nothing posted to `wait` is outstanding:
  // at once if so already, else on the progress thread; once shutdown has
  // begun with kShutdown. A write past its deadline is logged, not ended.
  void whenRmaDone(const std::shared_ptr<RmaWait>& wait, std::function<void(Status)> done);
  // The provider delivers a send after the RMA writes posted before it, so
  // a reply may follow posted writes without waiting for their completion.
  bool sendsFollowWrites() const { return sends_follow_writes_; }
  std::string peerName(PeerId peer);

 private:
  Status postReceive(RecvBuffer* buf);
  void runHandOffs();
  Status postSend(std::unique_ptr<SendOp> op);
  void postSends(std::vector<std::unique_ptr<SendOp>> ops);
  Result<std::unique_ptr<SendOp>> makeSendOp(size_t size);

  void progressLoop();
  int waitMillis();
  void handleCompletion(const fi_cq_msg_entry& entry);
  void handleCqError();
  void handleFrame(std::span<const uint8_t> bytes, bool truncated);
  void rejectFrame(std::span<const uint8_t> bytes, const Status& why);
  void handleRequest(const FrameView& frame);
  void handleReply(const FrameView& frame);
  void retrySends();
  // Ends every call pending on `peer` as unavailable.
  void failCallsTo(PeerId peer);
  void sweepDeadlines();

  // Ends call `id` with `result` unless it already ended. Runs `done` on the
  // calling thread, outside the lock. `replied`: the peer answered it.
  // `reply_opcode` (>= 0) is the opcode an arriving reply carries: one that
  // does not match the call's is not its reply (a stray or forged frame) and
  // leaves the call pending.
  void finishCall(uint64_t id, Result<std::vector<uint8_t>> result, bool replied = false,
                  int reply_opcode = -1);
  // REQUIRES mu_. Adds to `out` the peers to ping: those with calls on the
  // wire that answered nothing for kProbeAfter.
  void dueProbesLocked(Clock::time_point now, std::vector<PeerId>& out);
  // REQUIRES mu_. Takes an in-flight slot of `p`.
  static void takeSlotLocked(Peer* p) {
    if (p->inflight++ == 0) p->busy_since = Clock::now();
  }
  // REQUIRES mu_. Frees the call's in-flight slot and moves newly admitted
  // queued requests of that peer into `out`.
  void releaseSlotLocked(PeerId peer, std::vector<std::unique_ptr<SendOp>>& out);
  Peer* peerLocked(PeerId id);
  std::shared_ptr<Peer> peerRefLocked(PeerId id);
  Result<PeerId> peerForAddressLocked(const std::string& raw);
  // REQUIRES mu_. Forgets learned peers that nothing holds and that sent or
  // got nothing for peer_idle_timeout: removes them from the address vector
  // and the maps. Without this every client process that ever called (each
  // CLI run, each data loader worker) would stay in a long-running daemon.
  void forgetIdlePeersLocked(Clock::time_point now);
  // fi_endpoint + binds + fi_enable on `info`; on failure ep_ stays null and
  // the libfabric code is returned (-FI_EBUSY: an shm name held by a live
  // process).
  int openEndpoint(fi_info* info);
  // shm, listen "host:0": the endpoint is named "host:<n>" for the first
  // random n in the ephemeral range that no live endpoint holds; the
  // provider creates the name exclusively, so two processes never share one.
  Status openNamedEndpointOnFreePort(const fi_info* hints, const std::string& host);
  std::string advertisedAddressFor(const std::string& peer_raw) const;

  const EndpointOptions options_;
  std::string provider_;
  std::string address_;
  std::string self_raw_;
  bool self_wildcard_ = false;  // bound to 0.0.0.0 / ::, so requests name a routed address
  // FI_ADDR_STR provider (shm): addresses are NUL-terminated names, not sockaddrs.
  bool string_names_ = false;

  fi_info* info_ = nullptr;
  fi_info* ep_info_ = nullptr;  // the endpoint's own info where it differs from info_ (shm port 0)
  fid_fabric* fabric_ = nullptr;
  fid_domain* domain_ = nullptr;
  fid_av* av_ = nullptr;
  fid_cq* cq_ = nullptr;
  fid_ep* ep_ = nullptr;
  uint64_t mr_mode_ = 0;
  size_t rma_piece_ = kMaxRmaPiece;
  bool cq_can_wait_ = true;
  bool shm_ = false;           // provider shm: kShmMaxBody frames, polled CQ
  bool sends_follow_writes_ = false;  // FI_ORDER_SAW on the endpoint's tx and rx
  int64_t idle_poll_us_ = 0;   // progress thread only: current back-off
  Clock::time_point last_activity_;  // progress thread only: last completion or kick
  std::mutex kick_mu_;
  std::condition_variable kick_cv_;
  bool kicked_ = false;  // GUARDED_BY(kick_mu_): work was posted, poll at once
  // Ends the progress thread's idle back-off (shm); no-op elsewhere.
  void kick() {
    if (!shm_) return;
    {
      std::lock_guard<std::mutex> lock(kick_mu_);
      kicked_ = true;
    }
    kick_cv_.notify_one();
  }
  void idleBackoff(int wait_ms);
  // Largest body this endpoint sends: max_body, and kShmMaxBody over shm.
  size_t sendBodyLimit() const {
    return shm_ ? std::min(options_.max_body, kShmMaxBody) : options_.max_body;
  }
  std::atomic<uint64_t> next_key_{1};
  std::atomic<uint64_t> next_request_id_{1};

  std::vector<std::unique_ptr<RecvBuffer>> recv_buffers_;
  // A handler and the figures every daemon exports for it.
  struct RegisteredHandler {
    Handler handler;
    HandlerMode mode;
    Counter* calls;
    Histogram* latency;  // time in the handler function (synchronous part)
  };
  std::unordered_map<uint16_t, RegisteredHandler> handlers_;  // written before start() only

  std::mutex mu_;
  bool stopping_ = false;                                  // GUARDED_BY(mu_)
  std::unordered_map<PeerId, std::shared_ptr<Peer>> peers_;  // GUARDED_BY(mu_)
  PeerId next_peer_id_ = 1;                                // GUARDED_BY(mu_); ids are never reused
  Clock::time_point next_forget_scan_ = Clock::now();      // GUARDED_BY(mu_)
  std::unordered_map<std::string, PeerId> peers_by_raw_;   // GUARDED_BY(mu_)
  std::unordered_map<std::string, PeerId> peers_by_name_;  // GUARDED_BY(mu_)
  std::unordered_map<uint64_t, PendingCall> pending_;      // GUARDED_BY(mu_)
  std::set<std::pair<Clock::time_point, uint64_t>> deadlines_;  // GUARDED_BY(mu_)

  // Send and RMA contexts handed to the provider and not yet completed; freed
  // by the destructor after the endpoint is closed if no completion came.
  std::mutex live_mu_;
  std::unordered_set<OpContext*> live_ops_;  // GUARDED_BY(live_mu_)
  std::atomic<size_t> live_count_{0};        // live_ops_.size(), read without the lock
  bool calls_pending_ = false;  // progress thread only: calls await replies (waitMillis)
  void track(OpContext* op) {
    std::lock_guard<std::mutex> lock(live_mu_);
    live_ops_.insert(op);
    live_count_.store(live_ops_.size(), std::memory_order_relaxed);
  }
  void untrack(OpContext* op) {
    std::lock_guard<std::mutex> lock(live_mu_);
    live_ops_.erase(op);
    live_count_.store(live_ops_.size(), std::memory_order_relaxed);
  }

  // Waits given a whenRmaDone callback, for the overdue log and shutdown.
  std::mutex async_rma_mu_;
  std::vector<std::weak_ptr<RmaWait>> async_rma_;  // GUARDED_BY(async_rma_mu_)
  bool async_rma_closed_ = false;  // GUARDED_BY(async_rma_mu_): the progress thread ended
  Clock::time_point next_async_rma_scan_ = Clock::now();  // progress thread only
  // Logs waits past their deadline; `shutdown`: ends every callback with
  // kShutdown; `closing`: and any registered later at once.
  void expireAsyncRma(bool shutdown, bool closing);

  std::mutex retry_mu_;
  std::deque<std::unique_ptr<SendOp>> retry_;  // GUARDED_BY(retry_mu_)
  std::atomic<bool> have_retries_{false};
  // Progress thread only: when a retried send to each peer was last accepted.
  std::unordered_map<PeerId, std::chrono::steady_clock::time_point> retry_accepted_;

  std::atomic<bool> stopped_{false};  // set once shutdown begins; read lock-free by RMA waits
  std::atomic<bool> progress_stop_{false};
  std::mutex hand_off_mu_;
  std::deque<HandOff> hand_offs_;     // GUARDED_BY(hand_off_mu_)
  bool hand_offs_closed_ = false;     // GUARDED_BY(hand_off_mu_): the progress thread ended
  std::atomic<bool> has_hand_offs_{false};
  std::atomic<bool> progress_waiting_{false};  // in fi_cq_sread
  std::atomic<bool> shutdown_begun_{false};
  bool hand_offs_stalled_ = false;  // progress thread only: work put back after FI_EAGAIN
  bool started_ = false;
  std::once_flag shutdown_once_;
  std::unique_ptr<WorkerPool> workers_;
  // Requests posted to workers_ and not yet started, and their body bytes
  // (EndpointOptions::max_queued_*): added by the progress thread, taken
  // away by the worker that starts each.
  std::atomic<size_t> queued_requests_{0};
  std::atomic<size_t> queued_bytes_{0};
  std::thread progress_;
  Clock::time_point next_sweep_ = Clock::now();
  Clock::time_point next_probe_scan_ = Clock::now();  // progress thread only
};

class FabricIncomingCall final : public IncomingCall {
 public:
  FabricIncomingCall(std::shared_ptr<FabricCore> core, uint16_t opcode, uint64_t id,
                     std::shared_ptr<const Peer> from, std::vector<uint8_t> body)
      : core_(std::move(core)),
        opcode_(opcode),
        id_(id),
        from_(std::move(from)),
        peer_(from_->id),
        body_(std::move(body)) {}
  ~FabricIncomingCall() override {
    if (!replied_.load()) {
      // Through reply(): behind the call's handed-off writes, if any.
      reply(internalError("handler for opcode " + hexOpcode(opcode_) + " returned without replying"),
            {});
    }
  }
  uint16_t opcode() const override { return opcode_; }
  uint64_t requestId() const override { return id_; }
  PeerId peer() const override { return peer_; }
  std::span<const uint8_t> body() const override { return body_; }
  Status rmaRead(const MemoryRegion& local, size_t local_offset, const RemoteBuffer& remote,
                 size_t remote_offset, size_t length) override {
    return core_->rma(true, peer_, local, local_offset, remote, remote_offset, length);
  }
  Status rmaWrite(const MemoryRegion& local, size_t local_offset, const RemoteBuffer& remote,
                  size_t remote_offset, size_t length) override {
    return core_->rma(false, peer_, local, local_offset, remote, remote_offset, length);
  }
  Status postRmaWrite(const MemoryRegion& local, size_t local_offset, const RemoteBuffer& remote,
                      size_t remote_offset, size_t length) override {
    if (!writes_) writes_ = std::make_shared<RmaWait>();
    // Once one write is handed off, the call's later posts follow it there,
    // so they reach the provider in the order they were made.
    if (!handed_off_ && !core_->shouldHandOff()) {
      return core_->postRma(false, peer_, local, local_offset, remote, remote_offset, length, writes_);
    }
    SLUICE_ASSIGN_OR_RETURN(RmaPlan plan, core_->planRma(false, peer_, local, local_offset, remote,
                                                         remote_offset, length, writes_));
    handed_off_ = true;
    postsHandedOff().inc();
    auto core = core_;
    auto shared = std::make_shared<RmaPlan>(std::move(plan));
    core_->handOff(HandOff{peer_, [core, shared] { return core->postRmaPieces(*shared, false); },
                           [core, shared] { core->dropRmaPieces(*shared, shutDown(shared->what.text())); }});
    return Status::ok();
  }
  Status awaitWrites() override { return writes_ ? core_->awaitRma(*writes_) : Status::ok(); }
  void whenWritesDone(std::function<void(Status)> done) override {
    if (!writes_) {
      done(Status::ok());
      return;
    }
    core_->whenRmaDone(writes_, std::move(done));
  }
  void reply(const Status& status, std::span<const uint8_t> body) override {
    if (replied_.exchange(true)) {
      spdlog::warn("net: second reply to request {} (opcode {}) ignored", id_, hexOpcode(opcode_));
      return;
    }
    if (writes_ && !core_->sendsFollowWrites()) {
      // The reply must not overtake the bytes it announces.
      Status written = awaitWrites();
      if (status.isOk() && !written.isOk()) {
        core_->sendReply(from_, id_, opcode_, written, {});
        return;
      }
    }
    if (handed_off_) {
      // After the writes, from the progress thread. A write that could not
      // be posted there turns the reply into its error: the caller must not
      // take bytes that never left for an answer.
      auto core = core_;
      auto writes = writes_;
      auto send = [core, writes, from = from_, id = id_, op = opcode_, status,
                   copy = std::vector<uint8_t>(body.begin(), body.end())] {
        Status failed;
        {
          std::lock_guard<std::mutex> lock(writes->mu);
          failed = writes->error;
        }
        if (status.isOk() && !failed.isOk()) {
          core->sendReply(from, id, op, failed, {});
        } else {
          core->sendReply(from, id, op, status, copy);
        }
      };
      // Cancelled (the progress thread is gone), it still tries: sendReply
      // sends nothing once the endpoint is stopped.
      core_->handOff(HandOff{peer_,
                             [send] {
                               send();
                               return true;
                             },
                             send});
      return;
    }
    core_->sendReply(from_, id_, opcode_, status, body);
  }
  bool replied() const override { return replied_.load(); }

 private:
  std::shared_ptr<FabricCore> core_;
  uint16_t opcode_;
  uint64_t id_;
  std::shared_ptr<const Peer> from_;  // the caller, kept known until the call and its work end
  PeerId peer_;
  std::vector<uint8_t> body_;
  std::atomic<bool> replied_{false};
  std::shared_ptr<RmaWait> writes_;  // postRmaWrite's transfers, created by the first
  bool handed_off_ = false;          // a write went to the progress thread; the rest follow
};

// The object handed out by Endpoint::create: owns the core's lifetime and
// shuts it down on destruction.
class FabricEndpoint final : public Endpoint {
 public:
  explicit FabricEndpoint(std::shared_ptr<FabricCore> core) : core_(std::move(core)) {}
  ~FabricEndpoint() override { core_->shutdown(); }
  void registerHandler(uint16_t opcode, Handler handler, HandlerMode mode) override {
    core_->registerHandler(opcode, std::move(handler), mode);
  }
  Status start() override { return core_->start(); }
  void shutdown() override { core_->shutdown(); }
  std::string address() const override { return core_->address(); }
  const std::string& provider() const override { return core_->provider(); }
  Duration defaultTimeout() const override { return core_->defaultTimeout(); }
  size_t peerCount() const override { return core_->peerCount(); }
  Result<PeerId> connect(const std::string& host_port) override {
    return core_->connect(host_port);
  }
  void callAsync(PeerId peer, uint16_t opcode, std::span<const uint8_t> body, Duration timeout,
                 ReplyCallback done) override {
    core_->callAsync(peer, opcode, body, timeout, std::move(done));
  }
  Result<std::unique_ptr<MemoryRegion>> registerMemory(void* data, size_t size,
                                                       Access access) override {
    return core_->registerMemory(data, size, access, nullptr);
  }
  Result<std::unique_ptr<MemoryRegion>> allocateMemory(size_t size, Access access) override {
    if (size == 0) return invalidArgument("allocateMemory: size must be positive");
    AlignedBytes bytes = allocatePageAligned(size);
    if (!bytes)
      return Status(StatusCode::kResourceExhausted,
                    "allocateMemory: cannot allocate " + std::to_string(size) + " bytes");
    uint8_t* p = bytes.get();
    return core_->registerMemory(p, size, access, std::move(bytes));
  }
  FabricCore& core() { return *core_; }

 private:
  std::shared_ptr<FabricCore> core_;
};

// ---------------------------------------------------------------- setup

Status fabricError(const std::string& what, ssize_t rc) {
  return Status(StatusCode::kFabricError, what + ": " + fiErrorText(rc));
}

// An FI_ADDR_STR provider's address as fi_getname gives it and frames carry
// it: a valid name (common/net/address.h) and exactly one terminating NUL.
Status checkRawName(const std::string& raw) {
  if (raw.size() < 2 || raw.back() != '\0') {
    return protocolError("sender address is not a NUL-terminated libfabric name");
  }
  std::string_view text(raw.data(), raw.size() - 1);
  if (text.find('\0') != std::string_view::npos) {
    return protocolError("sender address holds a NUL inside the name");
  }
  Status s = checkFabricName(text);
  if (!s.isOk()) return protocolError("sender " + s.message());
  return Status::ok();
}

Status FabricCore::open() {
  fi_info* hints = fi_allocinfo();
  if (hints == nullptr) return internalError("fi_allocinfo failed");
  hints->ep_attr->type = FI_EP_RDM;
  hints->caps = FI_MSG | FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE;
  hints->mode = FI_CONTEXT | FI_CONTEXT2;
  hints->domain_attr->mr_mode =
      FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
  hints->domain_attr->threading = FI_THREAD_SAFE;
  hints->fabric_attr->prov_name = strdup(options_.provider.c_str());
  std::unique_ptr<fi_info, void (*)(fi_info*)> hints_owner(hints, fi_freeinfo);

  // Socket-addressed providers (tcp, verbs) take the first two branches
  // exactly as before; string-named ones (shm) are sorted out below.
  const bool listen_named = isFabricName(options_.listen);
  HostPort listen_hp;
  int rc;
  if (listen_named) {
    if (Status s = checkFabricName(options_.listen); !s.isOk()) {
      return s.withContext("endpoint listen option");
    }
    rc = fi_getinfo(kFiVersion, options_.listen.c_str(), nullptr, FI_SOURCE, hints, &info_);
  } else if (options_.listen.empty()) {
    // Bind every interface; each request then names the local address that
    // routes to its peer (see advertisedAddressFor), so replies come back on
    // loopback to loopback peers and on the right NIC to remote ones.
    rc = fi_getinfo(kFiVersion, "0.0.0.0", "0", FI_SOURCE, hints, &info_);
    if (rc != 0) rc = fi_getinfo(kFiVersion, nullptr, nullptr, 0, hints, &info_);
  } else {
    auto hp = parseHostPort(options_.listen);
    if (!hp.isOk()) {
      return hp.status().withContext("endpoint listen option");
    }
    listen_hp = *hp;
    rc = fi_getinfo(kFiVersion, hp->host.c_str(), hp->port.c_str(), FI_SOURCE, hints, &info_);
  }
  if ((rc != 0 || info_ == nullptr) && listen_named) {
    return invalidArgument("endpoint listen option \"" + options_.listen +
                           "\" is a libfabric name, which provider \"" + options_.provider +
                           "\" does not take (" + fiErrorText(rc) +
                           "); socket providers (tcp, verbs) listen on host:port, names are for "
                           "FI_ADDR_STR providers such as shm");
  }
  if (rc != 0 || info_ == nullptr) {
    return fabricError("no libfabric provider \"" + options_.provider +
                           "\" offers RDM endpoints with FI_MSG|FI_RMA for listen address \"" +
                           options_.listen + "\" (check the provider name and address)",
                       rc);
  }
  provider_ = info_->fabric_attr->prov_name ? info_->fabric_attr->prov_name : options_.provider;
  string_names_ = info_->addr_format == FI_ADDR_STR;
  shm_ = provider_ == "shm";
  // The endpoint is opened from this info, so the orders it lists hold.
  sends_follow_writes_ = info_->tx_attr != nullptr && info_->rx_attr != nullptr &&
                         (info_->tx_attr->msg_order & FI_ORDER_SAW) != 0 &&
                         (info_->rx_attr->msg_order & FI_ORDER_SAW) != 0;
  if (listen_named && !string_names_) {
    return invalidArgument("endpoint listen option \"" + options_.listen +
                           "\" is a libfabric name, but provider " + provider_ +
                           " addresses endpoints by host:port (e.g. 127.0.0.1:0)");
  }
  // A string-named provider (shm) makes the endpoint name from node and
  // service: "0.0.0.0:0" or "host:0" would give every endpoint the same
  // name, so those get one of their own.
  bool pick_name_port = false;
  if (string_names_ && !listen_named) {
    fi_freeinfo(info_);
    info_ = nullptr;
    if (options_.listen.empty()) {
      rc = fi_getinfo(kFiVersion, nullptr, nullptr, 0, hints, &info_);  // "fi_shm://<pid>:..."
    } else {
      if (listen_hp.host == "0.0.0.0" || listen_hp.host == "::") {
        listen_hp.host = "127.0.0.1";  // one host: "every interface" is reached as loopback
      }
      pick_name_port = listen_hp.port == "0";
      if (Status s = checkAddress(listen_hp.host + ":1"); !s.isOk()) {
        return s.withContext("endpoint listen option for provider " + provider_);
      }
      rc = fi_getinfo(kFiVersion, listen_hp.host.c_str(), listen_hp.port.c_str(), FI_SOURCE, hints,
                      &info_);
    }
    if (rc != 0 || info_ == nullptr) {
      return fabricError("provider " + provider_ + " refused listen address \"" +
                             options_.listen + "\"",
                         rc);
    }
  }
  mr_mode_ = info_->domain_attr->mr_mode;
  size_t max_msg = info_->ep_attr->max_msg_size;
  rma_piece_ = std::min(max_msg == 0 ? kMaxRmaPiece : max_msg, kMaxRmaPiece);
  if (maxFrameSize(options_.max_body) > max_msg && max_msg != 0) {
    return invalidArgument("endpoint max_body " + std::to_string(options_.max_body) +
                           " exceeds provider " + provider_ + " max_msg_size " +
                           std::to_string(max_msg));
  }

  if ((rc = fi_fabric(info_->fabric_attr, &fabric_, nullptr)) != 0)
    return fabricError("fi_fabric", rc);
  if ((rc = fi_domain(fabric_, info_, &domain_, nullptr)) != 0) return fabricError("fi_domain", rc);

  fi_av_attr av_attr{};
  av_attr.type = FI_AV_UNSPEC;
  if ((rc = fi_av_open(domain_, &av_attr, &av_, nullptr)) != 0)
    return fabricError("fi_av_open", rc);

  fi_cq_attr cq_attr{};
  cq_attr.format = FI_CQ_FORMAT_MSG;
  cq_attr.wait_obj = shm_ ? FI_WAIT_NONE : FI_WAIT_UNSPEC;
  cq_attr.size = 0;
  if (shm_) {
    cq_can_wait_ = false;
    if ((rc = fi_cq_open(domain_, &cq_attr, &cq_, nullptr)) != 0)
      return fabricError("fi_cq_open", rc);
  } else if (fi_cq_open(domain_, &cq_attr, &cq_, nullptr) != 0) {
    cq_attr.wait_obj = FI_WAIT_NONE;
    cq_can_wait_ = false;
    if ((rc = fi_cq_open(domain_, &cq_attr, &cq_, nullptr)) != 0)
      return fabricError("fi_cq_open", rc);
  }

  if (pick_name_port) {
    SLUICE_RETURN_IF_ERROR(openNamedEndpointOnFreePort(hints, listen_hp.host));
  } else {
    rc = openEndpoint(info_);
    if (rc == -FI_EBUSY && string_names_) {
      return Status(StatusCode::kUnavailable,
                    "provider " + provider_ + ": endpoint name for listen address \"" +
                        options_.listen +
                        "\" is held by a live process, or by an endpoint this process closed "
                        "(pick another name or port, or port 0)");
    }
    if (rc != 0) return fabricError("opening the endpoint (" + provider_ + ")", rc);
  }

  std::vector<uint8_t> name(256);
  size_t len = name.size();
  if ((rc = fi_getname(&ep_->fid, name.data(), &len)) != 0) return fabricError("fi_getname", rc);
  if (len > kMaxAddressLength) {
    return internalError("provider " + provider_ + " address of " + std::to_string(len) +
                         " bytes exceeds the frame limit " + std::to_string(kMaxAddressLength));
  }
  self_raw_.assign(reinterpret_cast<const char*>(name.data()), len);
  if (string_names_) {
    // FI_ADDR_STR: the name and its terminating NUL, checked like any
    // peer's, so every peer accepts it.
    Status s = checkRawName(self_raw_);
    if (!s.isOk()) return s.withContext("provider " + provider_ + " named this endpoint");
    address_ = displayFabricName(std::string_view(self_raw_.data(), self_raw_.size() - 1));
  } else {
    sockaddr_storage ss{};
    std::memcpy(&ss, name.data(), std::min(len, sizeof(ss)));
    if (ss.ss_family == AF_INET && len >= sizeof(sockaddr_in)) {
      self_wildcard_ = reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr == INADDR_ANY;
    } else if (ss.ss_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
      self_wildcard_ =
          IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr);
    }
    address_ = formatSockaddr(std::span<const uint8_t>(name.data(), len));
  }
  if (address_.empty()) {
    char text[256] = {};
    size_t text_len = sizeof(text);
    fi_av_straddr(av_, name.data(), text, &text_len);
    address_ = text;
  }

  size_t count = std::max<size_t>(options_.receive_buffers, 1);
  for (size_t i = 0; i < count; ++i) {
    auto buf = std::make_unique<RecvBuffer>();
    buf->size = maxFrameSize(shm_ ? std::max(options_.max_body, kShmMaxBody) : options_.max_body);
    buf->data = allocatePageAligned(buf->size);
    if (!buf->data)
      return Status(StatusCode::kResourceExhausted, "cannot allocate receive buffers");
    if (mr_mode_ & FI_MR_LOCAL) {
      rc = fi_mr_reg(domain_, buf->data.get(), buf->size, FI_RECV, 0, next_key_++, 0, &buf->mr,
                     nullptr);
      if (rc != 0) return fabricError("registering receive buffer", rc);
      if (mr_mode_ & FI_MR_ENDPOINT) {
        if ((rc = fi_mr_bind(buf->mr, &ep_->fid, 0)) != 0) return fabricError("fi_mr_bind", rc);
        if ((rc = fi_mr_enable(buf->mr)) != 0) return fabricError("fi_mr_enable", rc);
      }
      buf->desc = fi_mr_desc(buf->mr);
    }
    SLUICE_RETURN_IF_ERROR(postReceive(buf.get()));
    recv_buffers_.push_back(std::move(buf));
  }
  spdlog::debug("net {}: provider {} mr_mode {:#x} rma piece {} bytes, cq wait {}, replies "
                "follow posted writes {}",
                address_, provider_, mr_mode_, rma_piece_, cq_can_wait_, sends_follow_writes_);
  return Status::ok();
}

int FabricCore::openEndpoint(fi_info* info) {
  int rc = fi_endpoint(domain_, info, &ep_, nullptr);
  if (rc != 0) {
    ep_ = nullptr;
    return rc;
  }
  if ((rc = fi_ep_bind(ep_, &av_->fid, 0)) == 0 &&
      (rc = fi_ep_bind(ep_, &cq_->fid, FI_TRANSMIT | FI_RECV)) == 0 && (rc = fi_enable(ep_)) == 0) {
    return 0;
  }
  fi_close(&ep_->fid);
  ep_ = nullptr;
  return rc;
}

Status FabricCore::openNamedEndpointOnFreePort(const fi_info* hints, const std::string& host) {
  std::mt19937 rng(static_cast<uint32_t>(getpid()) ^
                   static_cast<uint32_t>(Clock::now().time_since_epoch().count()) ^
                   static_cast<uint32_t>(reinterpret_cast<uintptr_t>(this)));
  std::uniform_int_distribution<int> port(32768, 60999);
  constexpr int kAttempts = 64;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    std::string service = std::to_string(port(rng));
    fi_info* candidate = nullptr;
    int rc = fi_getinfo(kFiVersion, host.c_str(), service.c_str(), FI_SOURCE, hints, &candidate);
    if (rc != 0 || candidate == nullptr) {
      return fabricError("provider " + provider_ + " refused name " + host + ":" + service, rc);
    }
    rc = openEndpoint(candidate);
    if (rc == 0) {
      ep_info_ = candidate;
      return Status::ok();
    }
    fi_freeinfo(candidate);
    if (rc != -FI_EBUSY) {
      return fabricError("opening " + provider_ + " endpoint " + host + ":" + service, rc);
    }
  }
  return Status(StatusCode::kResourceExhausted,
                "provider " + provider_ + ": " + std::to_string(kAttempts) +
                    " random names " + host + ":<port> were all held by live endpoints");
}

// What a closed shm endpoint leaves behind, kept until the process exits.
// libfabric 1.17's shm keeps a process-wide list of its endpoints' names and
// region pointers and does not drop an entry when the endpoint closes: a later
// fi_av_insert of that name in the same process, or a send from a peer that
// had it in its address vector, dereferences the unmapped region (SIGSEGV,
// reproduced with plain libfabric calls). So an shm endpoint is stopped but
// never closed: its name stays taken in this process, sends to it go
// unanswered and time out like sends to any dead peer. The provider does not
// remove the endpoint's /dev/shm region at exit, so an atexit hook does.
struct ParkedShmEndpoint {
  std::string region;  // /dev/shm/<region>: the name without its "<prefix>://"
  fid_fabric* fabric;
  fid_domain* domain;
  fid_av* av;
  fid_cq* cq;
  fid_ep* ep;
  fi_info* info;
  fi_info* ep_info;
  // The receive buffers are freed: shm copies into a posted receive only
  // during its own endpoint's progress, which a parked endpoint never makes.
  // Still referenced by the provider; never read again. (An RmaOp's name
  // points into its core's peers, which are gone once the core is.)
  std::vector<OpContext*> ops;
};
// Cores shut down from one of their own threads (FabricCore::shutdown): never
// freed. Held from a global, so leak checkers see them as reachable.
std::mutex g_kept_mu;
std::vector<std::shared_ptr<void>>* g_kept = nullptr;  // GUARDED_BY(g_kept_mu)

void keepForever(std::shared_ptr<void> object) {
  std::lock_guard<std::mutex> lock(g_kept_mu);
  if (g_kept == nullptr) g_kept = new std::vector<std::shared_ptr<void>>();
  g_kept->push_back(std::move(object));
}

std::mutex g_parked_mu;
std::vector<std::unique_ptr<ParkedShmEndpoint>>* g_parked = nullptr;  // GUARDED_BY(g_parked_mu)

void unlinkParkedShmRegions() {
  std::lock_guard<std::mutex> lock(g_parked_mu);
  if (g_parked == nullptr) return;
  for (auto& p : *g_parked) {
    if (!p->region.empty()) ::shm_unlink(p->region.c_str());
  }
}

FabricCore::~FabricCore() {
  peersKnown().add(-static_cast<int64_t>(peers_.size()));
  // Threads are stopped by shutdown(), which the owning FabricEndpoint runs.
  if (shm_ && ep_ != nullptr) {
    std::string region;
    if (size_t sep = self_raw_.find("://"); sep != std::string::npos) {
      region = self_raw_.substr(sep + 3);
      while (!region.empty() && region.back() == '\0') region.pop_back();
    }
    auto parked = std::make_unique<ParkedShmEndpoint>();
    *parked = ParkedShmEndpoint{region, fabric_,  domain_, av_, cq_, ep_, info_, ep_info_,
                                std::vector<OpContext*>(live_ops_.begin(), live_ops_.end())};
    std::lock_guard<std::mutex> lock(g_parked_mu);
    if (g_parked == nullptr) {
      g_parked = new std::vector<std::unique_ptr<ParkedShmEndpoint>>();
      std::atexit(unlinkParkedShmRegions);
    }
    g_parked->push_back(std::move(parked));
    return;
  }
  if (ep_ != nullptr) fi_close(&ep_->fid);
  for (OpContext* op : live_ops_) {
    if (op->kind == OpKind::kSend) {
      delete static_cast<SendOp*>(op);
    } else if (op->kind == OpKind::kRma) {
      delete static_cast<RmaOp*>(op);
    }
  }
  live_ops_.clear();
  for (auto& buf : recv_buffers_) {
    if (buf->mr != nullptr) fi_close(&buf->mr->fid);
  }
  recv_buffers_.clear();
  retry_.clear();
  if (av_ != nullptr) fi_close(&av_->fid);
  if (cq_ != nullptr) fi_close(&cq_->fid);
  if (domain_ != nullptr) fi_close(&domain_->fid);
  if (fabric_ != nullptr) fi_close(&fabric_->fid);
  if (ep_info_ != nullptr) fi_freeinfo(ep_info_);
  if (info_ != nullptr) fi_freeinfo(info_);
}

void FabricCore::registerHandler(uint16_t opcode, Handler handler, HandlerMode mode) {
  if (started_) {
    spdlog::error("net {}: handler for opcode {} registered after start() is ignored", address_,
                  hexOpcode(opcode));
    return;
  }
  Labels labels = {{"opcode", hexOpcode(opcode)}};
  auto& registry = MetricsRegistry::global();
  handlers_[opcode] = RegisteredHandler{
      std::move(handler), mode,
      &registry.counter("sluice_rpc_calls_total", "RPC requests handled, by opcode", labels),
      &registry.histogram("sluice_rpc_handler_seconds", "Time in RPC handlers, by opcode", labels)};
}

Status FabricCore::start() {
  if (started_) return failedPrecondition("endpoint " + address_ + " already started");
  if (stopped_) return Status(StatusCode::kShutdown, "endpoint " + address_ + " is shut down");
  started_ = true;
  workers_ = std::make_unique<WorkerPool>(options_.worker_threads, "sluice-net-work");
  progress_ = std::thread([this] {
    tl_core_thread = this;
    // shm polls with short timed waits: the default 50 us timer slack would
    // stretch each 20 us wait to ~70 us of added latency.
    if (shm_) prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
    progressLoop();
  });
  pthread_setname_np(progress_.native_handle(), "sluice-net-prog");
  return Status::ok();
}

void FabricCore::shutdown() {
  // A second shutdown from one of our own threads returns at once: waiting in
  // call_once for the first, which may be joining this very thread, would
  // never end.
  if (shutdown_begun_.exchange(true) && tl_core_thread == this) return;
  std::call_once(shutdown_once_, [this] {
    std::unordered_map<uint64_t, PendingCall> pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      stopped_ = true;
      pending.swap(pending_);
      deadlines_.clear();
    }
    for (auto& [id, call] : pending) {
      call.done(Status(StatusCode::kShutdown, "endpoint " + address_ + " shut down with call " +
                                                  hexOpcode(call.opcode) + " pending"));
    }
    if (tl_core_thread == this) {
      // Called from a handler or callback: joining would wait for ourselves.
      // The threads exit on their own once they see the stop flags.
      spdlog::warn("net {}: shutdown() called from an endpoint thread; threads detach", address_);
      // Those threads run on after this returns, and whoever lets go of the
      // core last (the owner, or a call object on one of them) would free
      // it under them, or join a worker from itself. So the core is kept
      // for good: a leak, on a path that is already a misuse.
      keepForever(shared_from_this());
      if (workers_) workers_->close();  // queued requests are dropped; none start
      progress_stop_ = true;
      if (cq_can_wait_) fi_cq_signal(cq_);
      kick();
      if (progress_.joinable()) progress_.detach();
      return;
    }
    if (workers_) workers_->stop();
    progress_stop_ = true;
    if (cq_can_wait_) fi_cq_signal(cq_);
    kick();
    if (progress_.joinable()) progress_.join();
  });
}

// ---------------------------------------------------------------- peers

Peer* FabricCore::peerLocked(PeerId id) {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second.get();
}

std::shared_ptr<Peer> FabricCore::peerRefLocked(PeerId id) {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second;
}

void FabricCore::forgetIdlePeersLocked(Clock::time_point now) {
  // shm (libfabric 1.17) unmaps a removed peer's region but leaves the peer
  // using the id we knew it by: its next message over 4 KiB makes our
  // provider read through the stale mapping (SIGSEGV). Same-host peers are
  // few, so shm keeps them. A timeout of 0 or less also keeps every peer.
  const auto idle = options_.peer_idle_timeout;
  if (shm_ || idle <= Duration::zero() || now < next_forget_scan_) return;
  next_forget_scan_ = now + std::clamp<Clock::duration>(idle / 4, std::chrono::milliseconds(10),
                                                         std::chrono::seconds(10));
  size_t forgotten = 0;
  for (auto it = peers_.begin(); it != peers_.end();) {
    Peer& p = *it->second;
    if (p.named) {
      ++it;
      continue;
    }
    // use_count 1: only this map holds it, and new holders take it from the
    // map under mu_, so none can appear while we decide. A peer still in use
    // starts its idle time over: it is idle from when its last work ended.
    if (it->second.use_count() != 1 || p.inflight != 0 || !p.waiting.empty() || p.probing) {
      p.last_used = now;
      ++it;
      continue;
    }
    if (now - p.last_used < idle) {
      ++it;
      continue;
    }
    fi_addr_t addr = p.fi_addr;
    if (int rc = fi_av_remove(av_, &addr, 1, 0); rc != 0) {
      // Kept for good: a peer still in the address vector must stay
      // findable by its address, and one warning says why.
      spdlog::warn("net {}: cannot forget idle peer {} (kept): {}", address_, p.name, fiErrorText(rc));
      p.named = true;
      ++it;
      continue;
    }
    peers_by_raw_.erase(p.raw);
    retry_accepted_.erase(p.id);  // the progress thread's, and this runs there
    it = peers_.erase(it);
    ++forgotten;
  }
  if (forgotten > 0) {
    peersForgotten().inc(forgotten);
    peersKnown().add(-static_cast<int64_t>(forgotten));
  }
}

Result<PeerId> FabricCore::peerForAddressLocked(const std::string& raw) {
  auto it = peers_by_raw_.find(raw);
  if (it != peers_by_raw_.end()) return it->second;
  if (string_names_) {
    // Names differ in length; the provider opens /dev/shm/<name>, so only
    // well-formed names get near it.
    SLUICE_RETURN_IF_ERROR(checkRawName(raw));
  } else if (raw.size() != self_raw_.size()) {
    return protocolError("sender address of " + std::to_string(raw.size()) +
                         " bytes does not fit provider " + provider_ + " (expects " +
                         std::to_string(self_raw_.size()) + ")");
  }
  // Reject what the provider would choke on: libfabric's AV can be left in a
  // state that refuses later valid inserts after an invalid one.
  if (info_->addr_format == FI_SOCKADDR_IN || info_->addr_format == FI_SOCKADDR_IN6 ||
      info_->addr_format == FI_SOCKADDR) {
    sockaddr_storage ss{};
    std::memcpy(&ss, raw.data(), std::min(raw.size(), sizeof(ss)));
    bool ok = false;
    if (ss.ss_family == AF_INET && raw.size() == sizeof(sockaddr_in)) {
      auto* in4 = reinterpret_cast<const sockaddr_in*>(&ss);
      ok = in4->sin_port != 0 && in4->sin_addr.s_addr != INADDR_ANY;
    } else if (ss.ss_family == AF_INET6 && raw.size() == sizeof(sockaddr_in6)) {
      auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
      ok = in6->sin6_port != 0 && !IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
    }
    if (!ok) return protocolError("sender address is not a usable socket address");
  }
  auto peer = std::make_unique<Peer>();
  peer->raw = raw;
  peer->advertised = advertisedAddressFor(raw);
  peer->name = string_names_
                   ? displayFabricName(std::string_view(raw.data(), raw.size() - 1))
                   : formatSockaddr(std::span<const uint8_t>(
                         reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
  if (peer->name.empty()) {
    char text[256] = {};
    size_t text_len = sizeof(text);
    fi_av_straddr(av_, raw.data(), text, &text_len);
    peer->name = text;
  }
  if (peer->name.empty()) {
    static const char kHex[] = "0123456789abcdef";
    peer->name = "0x";
    for (unsigned char c : raw) {
      peer->name += kHex[c >> 4];
      peer->name += kHex[c & 15];
    }
  }
  int rc = fi_av_insert(av_, raw.data(), 1, &peer->fi_addr, 0, nullptr);
  if (rc != 1) {
    return Status(StatusCode::kUnavailable,
                  "cannot add peer " + peer->name + " to the address vector" +
                      (rc < 0 ? ": " + fiErrorText(rc) : std::string(" (invalid address)")));
  }
  const PeerId id = next_peer_id_++;
  peer->id = id;
  peer->last_used = Clock::now();
  peers_.emplace(id, std::move(peer));
  peers_by_raw_.emplace(raw, id);
  peersKnown().add(1);
  return id;
}

std::string FabricCore::advertisedAddressFor(const std::string& peer_raw) const {
  if (!self_wildcard_) return self_raw_;
  // Ask the kernel which local address routes to the peer: connecting a UDP
  // socket only selects a route, it sends nothing.
  sockaddr_storage peer{}, local{}, self{};
  std::memcpy(&peer, peer_raw.data(), std::min(peer_raw.size(), sizeof(peer)));
  std::memcpy(&self, self_raw_.data(), std::min(self_raw_.size(), sizeof(self)));
  int fd = ::socket(peer.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return self_raw_;
  socklen_t local_len = sizeof(local);
  bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&peer),
                      static_cast<socklen_t>(peer_raw.size())) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) == 0 &&
            local.ss_family == self.ss_family;
  ::close(fd);
  if (!ok) return self_raw_;
  if (local.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&local)->sin_port =
        reinterpret_cast<sockaddr_in*>(&self)->sin_port;
  } else {
    reinterpret_cast<sockaddr_in6*>(&local)->sin6_port =
        reinterpret_cast<sockaddr_in6*>(&self)->sin6_port;
  }
  return std::string(reinterpret_cast<const char*>(&local), self_raw_.size());
}

std::string FabricCore::peerName(PeerId peer) {
  std::lock_guard<std::mutex> lock(mu_);
  Peer* p = peerLocked(peer);
  return p ? p->name : "peer#" + std::to_string(peer);
}

Result<PeerId> FabricCore::connect(const std::string& host_port) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = peers_by_name_.find(host_port);
    if (it != peers_by_name_.end()) return it->second;
  }
  // The node and service handed to fi_getinfo: host and port, or for a
  // string-named provider (shm) a whole "<prefix>://<name>" as the node.
  std::string node, service;
  if (isFabricName(host_port)) {
    if (!string_names_) {
      return invalidArgument("address \"" + host_port + "\" is a libfabric name, but provider " +
                             provider_ + " addresses peers by host:port");
    }
    SLUICE_RETURN_IF_ERROR(checkFabricName(host_port));
    node = host_port;
  } else {
    SLUICE_ASSIGN_OR_RETURN(HostPort hp, parseHostPort(host_port));
    if (string_names_) SLUICE_RETURN_IF_ERROR(checkAddress(host_port));
    node = hp.host;
    service = hp.port;
  }
  fi_info* hints = fi_dupinfo(info_);
  if (hints == nullptr) return internalError("fi_dupinfo failed");
  std::free(hints->src_addr);
  hints->src_addr = nullptr;
  hints->src_addrlen = 0;
  std::free(hints->dest_addr);
  hints->dest_addr = nullptr;
  hints->dest_addrlen = 0;
  fi_info* found = nullptr;
  int rc = fi_getinfo(kFiVersion, node.c_str(), service.empty() ? nullptr : service.c_str(), 0,
                      hints, &found);
  fi_freeinfo(hints);
  if (rc != 0 || found == nullptr || found->dest_addr == nullptr) {
    if (found) fi_freeinfo(found);
    return Status(StatusCode::kUnavailable, "cannot resolve peer \"" + host_port +
                                                "\" with provider " + provider_ + ": " +
                                                fiErrorText(rc));
  }
  std::string raw(static_cast<const char*>(found->dest_addr), found->dest_addrlen);
  fi_freeinfo(found);
  std::lock_guard<std::mutex> lock(mu_);
  auto id = peerForAddressLocked(raw);
  if (!id.isOk()) return id.status().withContext("connecting to " + host_port);
  peers_by_name_[host_port] = *id;
  peerLocked(*id)->named = true;
  return id;
}

// ---------------------------------------------------------------- sending

Result<std::unique_ptr<SendOp>> FabricCore::makeSendOp(size_t size) {
  auto op = std::make_unique<SendOp>();
  op->frame.resize(size);
  if (mr_mode_ & FI_MR_LOCAL) {
    int rc = fi_mr_reg(domain_, op->frame.data(), op->frame.size(), FI_SEND, 0, next_key_++, 0,
                       &op->mr, nullptr);
    if (rc != 0) return fabricError("registering a send buffer", rc);
    if (mr_mode_ & FI_MR_ENDPOINT) {
      if ((rc = fi_mr_bind(op->mr, &ep_->fid, 0)) != 0) return fabricError("fi_mr_bind", rc);
      if ((rc = fi_mr_enable(op->mr)) != 0) return fabricError("fi_mr_enable", rc);
    }
    op->desc = fi_mr_desc(op->mr);
  }
  return op;
}

Status FabricCore::postSend(std::unique_ptr<SendOp> op) {
  // The provider owns the op from the moment it is posted: its completion
  // may be handled on the progress thread before fi_send even returns.
  SendOp* raw = op.release();
  track(raw);
  ssize_t rc = fi_send(ep_, raw->frame.data(), raw->frame.size(), raw->desc, raw->dest,
                       static_cast<OpContext*>(raw));
  if (rc == 0) {
    kick();
    return Status::ok();
  }
  untrack(raw);
  op.reset(raw);  // not posted: still ours
  if (rc == -FI_EAGAIN) {
    op->first_refused = Clock::now();
    op->retry_deadline = op->first_refused + options_.default_timeout;
    {
      std::lock_guard<std::mutex> lock(retry_mu_);
      retry_.push_back(std::move(op));
      have_retries_ = true;
    }
    if (cq_can_wait_) fi_cq_signal(cq_);
    kick();
    return Status::ok();
  }
  return Status(StatusCode::kUnavailable, "fi_send: " + fiErrorText(rc));
}

void FabricCore::postSends(std::vector<std::unique_ptr<SendOp>> ops) {
  for (auto& op : ops) {
    uint64_t id = op->request_id;
    PeerId peer = op->peer;
    Status s = postSend(std::move(op));
    if (!s.isOk()) finishCall(id, s.withContext("sending request to peer " + peerName(peer)));
  }
}

void FabricCore::retrySends() {
  if (!have_retries_) return;
  std::deque<std::unique_ptr<SendOp>> ops;
  {
    std::lock_guard<std::mutex> lock(retry_mu_);
    ops.swap(retry_);
    have_retries_ = false;
  }
  // Every op gets one attempt: a peer whose connection is stuck must not hold
  // back sends to others.
  std::deque<std::unique_ptr<SendOp>> still;
  std::vector<PeerId> gone;  // peers found silent this round
  auto now = Clock::now();
  for (auto& owned : ops) {
    SendOp* op = owned.release();  // the provider's once posted (see postSend)
    track(op);
    const PeerId peer = op->peer;
    ssize_t rc = fi_send(ep_, op->frame.data(), op->frame.size(), op->desc, op->dest,
                         static_cast<OpContext*>(op));
    if (rc == 0) {
      retry_accepted_[peer] = now;
      continue;
    }
    untrack(op);
    owned.reset(op);
    bool peer_silent = false;
    if (rc == -FI_EAGAIN && now - op->first_refused >= kRefusedGrace) {
      auto it = retry_accepted_.find(peer);
      peer_silent = it == retry_accepted_.end() || it->second < op->first_refused;
    }
    if (rc == -FI_EAGAIN && now < op->retry_deadline && !peer_silent) {
      still.push_back(std::move(owned));
      continue;
    }
    if (peer_silent && std::find(gone.begin(), gone.end(), peer) == gone.end()) {
      gone.push_back(peer);
    }
    std::string why;
    if (rc != -FI_EAGAIN) {
      why = fiErrorText(rc);
    } else if (peer_silent) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - op->first_refused);
      why = "the provider accepted nothing for it for " + std::to_string(ms.count()) +
            " ms (is the peer running and reachable?)";
    } else {
      why = "the provider did not accept it within " +
            std::to_string(options_.default_timeout.count()) + " ms";
    }
    if (op->request_id != 0) {
      finishCall(op->request_id,
                 unavailable("sending request to peer " + peerName(op->peer) + ": " + why));
    } else {
      spdlog::warn("net {}: dropping reply to {}: {}", address_, peerName(op->peer), why);
    }
  }
  if (!still.empty()) {
    std::lock_guard<std::mutex> lock(retry_mu_);
    for (auto& op : still) retry_.push_back(std::move(op));
    have_retries_ = true;
  }
  for (PeerId peer : gone) failCallsTo(peer);
}

void FabricCore::failCallsTo(PeerId peer) {
  // The connection that carried these requests is gone (the provider accepts
  // nothing for this peer), and a reply can only come back on it: waiting
  // for their timeouts would only delay the caller's failover.
  std::vector<uint64_t> ids;
  std::string name;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, call] : pending_) {
      if (call.peer == peer) ids.push_back(id);
    }
    Peer* p = peerLocked(peer);
    name = p ? p->name : "?";
  }
  peersFoundGone().inc();
  if (!ids.empty()) {
    spdlog::warn("net {}: peer {} is gone (sends to it are refused or fail); ending its {} "
                 "pending call(s)",
                 address_, name, ids.size());
  }
  for (uint64_t id : ids) {
    finishCall(id, unavailable("peer " + name +
                               " is gone (it accepts no connection): the call cannot be answered"));
  }
}

void FabricCore::callAsync(PeerId peer, uint16_t opcode, std::span<const uint8_t> body,
                           Duration timeout, ReplyCallback done, bool probe) {
  // A probe that never becomes a pending call must not leave its peer marked
  // as being probed: it would never be probed, nor forgotten, again.
  auto refuse = [&](Status s) {
    if (probe) {
      std::lock_guard<std::mutex> lock(mu_);
      if (Peer* p = peerLocked(peer)) p->probing = false;
    }
    done(std::move(s));
  };
  if (body.size() > options_.max_body) {
    refuse(Status(StatusCode::kTooLarge,
                  "request body of " + std::to_string(body.size()) + " bytes for opcode " +
                      hexOpcode(opcode) + " exceeds max_body " + std::to_string(options_.max_body)));
    return;
  }
  if (body.size() > sendBodyLimit()) {
    refuse(Status(StatusCode::kTooLarge,
                  "request body of " + std::to_string(body.size()) + " bytes for opcode " +
                      hexOpcode(opcode) + " exceeds the " + std::to_string(kShmMaxBody) +
                      "-byte frame limit of provider shm (move bulk data by RMA)"));
    return;
  }
  std::shared_ptr<const Peer> target;  // holds `advertised` until the frame is written
  {
    std::lock_guard<std::mutex> lock(mu_);
    target = peerRefLocked(peer);
  }
  const std::string* advertised = target ? &target->advertised : nullptr;
  if (advertised == nullptr) {
    refuse(invalidArgument("call to unknown peer id " + std::to_string(peer) + " (use connect() first)"));
    return;
  }
  auto op_or = makeSendOp(frameSize(advertised->size(), body.size()));
  if (!op_or.isOk()) {
    refuse(op_or.status());
    return;
  }
  std::unique_ptr<SendOp> op = std::move(op_or).value();
  uint64_t id = next_request_id_++;
  FrameHeader header;
  header.opcode = opcode;
  header.flags = kFlagRequest;
  header.request_id = id;
  writeFrame(header,
             std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(advertised->data()),
                                      advertised->size()),
             body, op->frame.data());
  op->request_id = id;
  op->peer = peer;

  std::unique_ptr<SendOp> to_send;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) {
      lock.unlock();
      refuse(Status(StatusCode::kShutdown, "endpoint " + address_ + " is shut down"));
      return;
    }
    auto p = peerRefLocked(peer);
    if (p == nullptr) {
      lock.unlock();
      refuse(invalidArgument("call to unknown peer id " + std::to_string(peer) + " (use connect() first)"));
      return;
    }
    op->dest = p->fi_addr;
    p->last_used = Clock::now();
    PendingCall call;
    call.peer = peer;
    call.opcode = opcode;
    call.timeout = timeout;
    call.deadline = Clock::now() + timeout;
    call.probe = probe;
    call.done = std::move(done);
    op->keep = p;
    if (probe || p->inflight < std::max<size_t>(options_.max_inflight_per_peer, 1)) {
      takeSlotLocked(p.get());
      to_send = std::move(op);
    } else {
      call.queued = std::move(op);
      p->waiting.push_back(id);
    }
    deadlines_.emplace(call.deadline, id);
    pending_.emplace(id, std::move(call));
  }
  if (to_send) {
    Status s = postSend(std::move(to_send));
    if (!s.isOk()) finishCall(id, s.withContext("sending request to peer " + peerName(peer)));
  }
}

void FabricCore::releaseSlotLocked(PeerId peer, std::vector<std::unique_ptr<SendOp>>& out) {
  Peer* p = peerLocked(peer);
  if (p == nullptr) return;
  if (p->inflight > 0) --p->inflight;
  size_t limit = std::max<size_t>(options_.max_inflight_per_peer, 1);
  while (!p->waiting.empty() && p->inflight < limit) {
    uint64_t id = p->waiting.front();
    p->waiting.pop_front();
    auto it = pending_.find(id);
    if (it == pending_.end() || !it->second.queued) continue;  // already timed out
    out.push_back(std::move(it->second.queued));
    takeSlotLocked(p);
  }
}

void FabricCore::finishCall(uint64_t id, Result<std::vector<uint8_t>> result, bool replied,
                            int reply_opcode) {
  ReplyCallback done;
  std::vector<std::unique_ptr<SendOp>> admitted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    PendingCall& call = it->second;
    if (reply_opcode >= 0 && reply_opcode != call.opcode) {
      spdlog::debug("net {}: dropped a reply to request {} with opcode {}, not the call's {}",
                    address_, id, hexOpcode(static_cast<uint16_t>(reply_opcode)), hexOpcode(call.opcode));
      return;
    }
    deadlines_.erase({call.deadline, id});
    if (Peer* p = peerLocked(call.peer)) {
      if (replied) p->last_heard = Clock::now();
      if (call.probe) p->probing = false;
    }
    if (!call.queued) releaseSlotLocked(call.peer, admitted);
    done = std::move(call.done);
    pending_.erase(it);
  }
  done(std::move(result));
  if (!admitted.empty()) postSends(std::move(admitted));
}

void FabricCore::dueProbesLocked(Clock::time_point now, std::vector<PeerId>& out) {
  for (auto& [id, peer] : peers_) {
    Peer& p = *peer;
    if (p.inflight == 0 || p.probing) continue;
    // Silent since its calls went out and since its last answer: ping it.
    if (now - std::max(p.last_heard, p.busy_since) < kProbeAfter) continue;
    p.probing = true;
    out.push_back(id);
  }
}

void FabricCore::sweepDeadlines() {
  std::vector<std::pair<ReplyCallback, Status>> expired;
  std::vector<std::unique_ptr<SendOp>> admitted;
  std::vector<PeerId> probe;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto now = Clock::now();
    if (now >= next_probe_scan_) {
      next_probe_scan_ = now + kProbeScanInterval;
      dueProbesLocked(now, probe);
    }
    forgetIdlePeersLocked(now);
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      uint64_t id = deadlines_.begin()->second;
      deadlines_.erase(deadlines_.begin());
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      PendingCall& call = it->second;
      Peer* p = peerLocked(call.peer);
      std::string peer_name = p ? p->name : "?";
      std::string why = call.queued ? "still waiting for one of " +
                                          std::to_string(options_.max_inflight_per_peer) +
                                          " in-flight slots"
                                    : "no reply (peer dead, hung or overloaded)";
      expired.emplace_back(
          std::move(call.done),
          timeoutError("call " + hexOpcode(call.opcode) + " to peer " + peer_name +
                       " timed out after " + std::to_string(call.timeout.count()) + " ms: " + why));
      if (!call.queued) releaseSlotLocked(call.peer, admitted);
      if (call.probe) {
        if (Peer* peer = peerLocked(call.peer)) peer->probing = false;
      }
      pending_.erase(it);
    }
  }
  for (auto& [done, status] : expired) done(status);
  if (!admitted.empty()) postSends(std::move(admitted));
  // The ping's outcome needs no handling: an answer updates last_heard, and a
  // dead peer's refusal or failed send ends its calls (failCallsTo).
  for (PeerId peer : probe) {
    livenessPings().inc();
    callAsync(peer, kOpPing, {}, kProbeTimeout, [](Result<std::vector<uint8_t>>) {}, true);
  }
}

void FabricCore::sendReply(std::shared_ptr<const Peer> to, uint64_t request_id, uint16_t opcode,
                           const Status& status, std::span<const uint8_t> body) {
  if (stopped_) return;
  Status st = status;
  std::string message;
  if (st.isOk() && body.size() > options_.max_body) {
    st = Status(StatusCode::kTooLarge,
                "reply body of " + std::to_string(body.size()) + " bytes for opcode " +
                    hexOpcode(opcode) + " exceeds max_body " + std::to_string(options_.max_body));
  }
  if (st.isOk() && body.size() > sendBodyLimit()) {
    st = Status(StatusCode::kTooLarge,
                "reply body of " + std::to_string(body.size()) + " bytes for opcode " +
                    hexOpcode(opcode) + " exceeds the " + std::to_string(kShmMaxBody) +
                    "-byte frame limit of provider shm");
  }
  if (!st.isOk()) {
    message = st.message();
    if (message.size() > sendBodyLimit()) message.resize(sendBodyLimit());
    body =
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(message.data()), message.size());
  }
  auto op_or = makeSendOp(frameSize(0, body.size()));
  if (!op_or.isOk()) {
    spdlog::warn("net {}: cannot reply to request {}: {}", address_, request_id,
                 op_or.status().toString());
    return;
  }
  std::unique_ptr<SendOp> op = std::move(op_or).value();
  FrameHeader header;
  header.opcode = opcode;
  header.flags = kFlagReply;
  header.request_id = request_id;
  header.status = static_cast<int32_t>(st.code());
  writeFrame(header, {}, body, op->frame.data());
  op->dest = to->fi_addr;
  op->peer = to->id;
  const std::string name = to->name;
  op->keep = std::move(to);
  Status s = postSend(std::move(op));
  if (!s.isOk()) {
    spdlog::warn("net {}: reply to request {} from {} not sent: {}", address_, request_id, name,
                 s.toString());
  }
}

Status FabricCore::sendRaw(PeerId peer, std::span<const uint8_t> bytes) {
  if (shm_ && bytes.size() > maxFrameSize(kShmMaxBody)) {
    return Status(StatusCode::kTooLarge, "raw message of " + std::to_string(bytes.size()) +
                                             " bytes exceeds the frame limit of provider shm");
  }
  auto op_or = makeSendOp(bytes.size());
  if (!op_or.isOk()) return op_or.status();
  std::unique_ptr<SendOp> op = std::move(op_or).value();
  if (!bytes.empty()) std::memcpy(op->frame.data(), bytes.data(), bytes.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto p = peerRefLocked(peer);
    if (p == nullptr) return invalidArgument("unknown peer id " + std::to_string(peer));
    op->dest = p->fi_addr;
    op->keep = std::move(p);
  }
  op->peer = peer;
  return postSend(std::move(op));
}

// ---------------------------------------------------------------- RMA

Status FabricCore::rma(bool read, PeerId peer, const MemoryRegion& local, size_t local_offset,
                       const RemoteBuffer& remote, size_t remote_offset, size_t length) {
  auto wait = std::make_shared<RmaWait>();
  Status posted = postRma(read, peer, local, local_offset, remote, remote_offset, length, wait);
  Status done = awaitRma(*wait);
  return posted.isOk() ? done : posted;
}

Status FabricCore::postRma(bool read, PeerId peer, const MemoryRegion& local, size_t local_offset,
                           const RemoteBuffer& remote, size_t remote_offset, size_t length,
                           const std::shared_ptr<RmaWait>& wait) {
  SLUICE_ASSIGN_OR_RETURN(RmaPlan plan,
                          planRma(read, peer, local, local_offset, remote, remote_offset, length, wait));
  postRmaPieces(plan, true);
  std::lock_guard<std::mutex> lock(wait->mu);
  return wait->error;
}

Result<RmaPlan> FabricCore::planRma(bool read, PeerId peer, const MemoryRegion& local,
                                    size_t local_offset, const RemoteBuffer& remote,
                                    size_t remote_offset, size_t length,
                                    const std::shared_ptr<RmaWait>& wait) {
  RmaName name{read, length, peer, nullptr};
  const char* op_name = name.op();
  auto* region = dynamic_cast<const FabricMemoryRegion*>(&local);
  if (region == nullptr || region->core() != this) {
    return invalidArgument(std::string(op_name) +
                           ": local region was not registered with this endpoint");
  }
  if (local_offset > local.size() || length > local.size() - local_offset) {
    return outOfRange(std::string(op_name) + " of " + std::to_string(length) + " bytes at " +
                      std::to_string(local_offset) + " overruns the local region of " +
                      std::to_string(local.size()) + " bytes");
  }
  // The peer's name is read without the lock later: it never changes once
  // the peer is added, and the name's reference keeps the peer.
  fi_addr_t dest = FI_ADDR_UNSPEC;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto p = peerRefLocked(peer); p != nullptr) {
      dest = p->fi_addr;
      name.peer_ref = std::move(p);
    }
  }
  if (remote_offset > remote.length || length > remote.length - remote_offset ||
      remote.addr + remote_offset < remote.addr) {
    return outOfRange(std::string(op_name) + " of " + std::to_string(length) + " bytes at " +
                      std::to_string(remote_offset) + " overruns the " +
                      std::to_string(remote.length) + "-byte buffer peer " + name.peerText() +
                      " advertised");
  }
  RmaPlan plan;
  plan.wait = wait;
  plan.what = name;
  if (length == 0) return plan;
  if (stopped_) return Status(StatusCode::kShutdown, "endpoint " + address_ + " is shut down");
  if (name.peer_ref == nullptr) return invalidArgument(std::string(op_name) + ": unknown peer");
  plan.dest = dest;
  plan.pieces = (length + rma_piece_ - 1) / rma_piece_;
  plan.desc = region->desc();
  plan.local = local.data() + local_offset;
  plan.remote_addr = remote.addr + remote_offset;
  plan.key = remote.key;
  std::lock_guard<std::mutex> lock(wait->mu);
  if (wait->what.empty()) {
    wait->what = plan.what;
    wait->deadline = Clock::now() + options_.default_timeout;
  }
  wait->remaining += plan.pieces;
  plan.deadline = wait->deadline;
  return plan;
}

void FabricCore::dropRmaPieces(RmaPlan& plan, const Status& why) {
  std::unique_lock<std::mutex> lock(plan.wait->mu);
  // The wait may have been abandoned (remaining set to 0) meanwhile.
  plan.wait->remaining -= std::min(plan.wait->remaining, plan.pieces - plan.next);
  plan.next = plan.pieces;
  if (plan.wait->error.isOk()) plan.wait->error = why;
  plan.wait->cv.notify_all();
  settleRmaWait(*plan.wait, lock);
}

bool FabricCore::postRmaPieces(RmaPlan& plan, bool may_wait) {
  while (plan.next < plan.pieces) {
    if (!may_wait) {
      // Handed off and not posted by now: whoever waits on it may have been
      // told it ended (shutdown, or the timeout) and reused the buffer, so
      // it must not leave now.
      if (Status late = tooLate(plan, "not posted before its deadline"); !late.isOk()) {
        dropRmaPieces(plan, late);
        return true;
      }
    }
    const size_t off = plan.next * rma_piece_;
    const size_t n = std::min(rma_piece_, plan.what.length - off);
    auto op = std::make_unique<RmaOp>();
    op->wait = plan.wait;
    op->what = plan.what;
    RmaOp* raw = op.get();
    track(raw);
    op.release();  // the provider's once posted: it may complete at once
    ssize_t rc = plan.what.read ? fi_read(ep_, plan.local + off, n, plan.desc, plan.dest,
                                     plan.remote_addr + off, plan.key, static_cast<OpContext*>(raw))
                           : fi_write(ep_, plan.local + off, n, plan.desc, plan.dest,
                                      plan.remote_addr + off, plan.key, static_cast<OpContext*>(raw));
    if (rc == 0) {
      kick();
      ++plan.next;
      continue;
    }
    op.reset(raw);  // not posted: still ours
    untrack(raw);
    Status failed = rc != -FI_EAGAIN ? fabricError(plan.what.text(), rc)
                                     : tooLate(plan, "provider queue stayed full");
    if (!failed.isOk()) {
      dropRmaPieces(plan, failed);
      return true;
    }
    if (!may_wait) return false;  // the queue is full: the caller comes back
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  return true;
}

void FabricCore::handOff(HandOff h) {
  {
    std::lock_guard<std::mutex> lock(hand_off_mu_);
    if (!hand_offs_closed_) {
      hand_offs_.push_back(std::move(h));
      has_hand_offs_.store(true);
      h.cancel = nullptr;
    }
  }
  if (h.cancel) {
    h.cancel();
    return;
  }
  // Paired with the progress thread's store of progress_waiting_ and load
  // of has_hand_offs_ (both seq_cst): one of the two sees the other.
  if (cq_can_wait_ && progress_waiting_.load()) fi_cq_signal(cq_);
}

void FabricCore::runHandOffs() {
  hand_offs_stalled_ = false;
  if (!has_hand_offs_.load()) return;
  std::deque<HandOff> work;
  {
    std::lock_guard<std::mutex> lock(hand_off_mu_);
    work.swap(hand_offs_);
    has_hand_offs_.store(false);
  }
  // A peer whose connection refuses more (FI_EAGAIN: a client not reading,
  // or a connection still being set up) keeps its work, in order, for the
  // next turn; the others' work goes on. The progress thread never waits it
  // out: its own completions are what make room.
  std::deque<HandOff> stalled;
  std::vector<PeerId> stalled_peers;
  for (auto& h : work) {
    const bool behind = std::find(stalled_peers.begin(), stalled_peers.end(), h.peer) !=
                        stalled_peers.end();
    if (!behind && h.run()) continue;
    if (!behind) stalled_peers.push_back(h.peer);
    stalled.push_back(std::move(h));
  }
  if (stalled.empty()) return;
  std::lock_guard<std::mutex> lock(hand_off_mu_);
  while (!stalled.empty()) {
    hand_offs_.push_front(std::move(stalled.back()));
    stalled.pop_back();
  }
  has_hand_offs_.store(true);
  hand_offs_stalled_ = true;
}

void FabricCore::whenRmaDone(const std::shared_ptr<RmaWait>& wait,
                             std::function<void(Status)> done) {
  {
    std::unique_lock<std::mutex> lock(wait->mu);
    wait->on_done = std::move(done);
    if (wait->remaining == 0) {
      settleRmaWait(*wait, lock);
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(async_rma_mu_);
    if (!async_rma_closed_) {
      async_rma_.push_back(wait);
      return;
    }
  }
  abandonRmaWait(*wait);  // the progress thread is gone
}

void FabricCore::expireAsyncRma(bool shutdown, bool closing) {
  std::vector<std::shared_ptr<RmaWait>> due;
  {
    std::lock_guard<std::mutex> lock(async_rma_mu_);
    if (closing) async_rma_closed_ = true;
    const auto now = Clock::now();
    std::erase_if(async_rma_, [&](const std::weak_ptr<RmaWait>& w) {
      auto wait = w.lock();
      if (!wait) return true;
      std::lock_guard<std::mutex> wl(wait->mu);
      if (!wait->on_done) return true;  // settled by its completions
      if (shutdown) {
        due.push_back(std::move(wait));
        return true;
      }
      if (now >= wait->deadline && !wait->overdue) {
        // Not ended: the provider may still be reading the buffer, so it
        // stays out of use until the completion (or shutdown) comes.
        wait->overdue = true;
        spdlog::warn("net {}: {} has not completed after {} ms; its buffer stays reserved until it does",
                     address_, wait->what.text(), options_.default_timeout.count());
      }
      return false;
    });
  }
  for (auto& wait : due) abandonRmaWait(*wait);
}

Status FabricCore::awaitRma(RmaWait& wait) {
  std::unique_lock<std::mutex> lock(wait.mu);
  while (wait.remaining > 0) {
    if (stopped_) return shutDown(wait.what.text());
    auto now = Clock::now();
    if (now >= wait.deadline) {
      return timeoutError(wait.what.text() + " did not complete within " +
                          std::to_string(options_.default_timeout.count()) + " ms");
    }
    wait.cv.wait_until(lock, std::min(wait.deadline, now + std::chrono::milliseconds(50)));
  }
  return wait.error;
}

Result<std::unique_ptr<MemoryRegion>> FabricCore::registerMemory(void* data, size_t size,
                                                                 Access access,
                                                                 AlignedBytes owned) {
  if (data == nullptr || size == 0) {
    return invalidArgument("registerMemory: need a non-null buffer of positive size");
  }
  uint64_t flags = FI_SEND | FI_RECV | FI_READ | FI_WRITE;
  if (access == Access::kRemoteRead || access == Access::kRemoteReadWrite) flags |= FI_REMOTE_READ;
  if (access == Access::kRemoteWrite || access == Access::kRemoteReadWrite)
    flags |= FI_REMOTE_WRITE;
  uint64_t requested_key = next_key_++;
  fid_mr* mr = nullptr;
  int rc = fi_mr_reg(domain_, data, size, flags, 0, requested_key, 0, &mr, nullptr);
  if (rc != 0) {
    return fabricError("registering " + std::to_string(size) + " bytes with provider " + provider_,
                       rc);
  }
  if (mr_mode_ & FI_MR_ENDPOINT) {
    if ((rc = fi_mr_bind(mr, &ep_->fid, 0)) != 0 || (rc = fi_mr_enable(mr)) != 0) {
      fi_close(&mr->fid);
      return fabricError("binding a memory region to endpoint " + address_, rc);
    }
  }
  uint64_t key = (mr_mode_ & FI_MR_PROV_KEY) ? fi_mr_key(mr) : requested_key;
  uint64_t base = (mr_mode_ & FI_MR_VIRT_ADDR) ? reinterpret_cast<uint64_t>(data) : 0;
  return std::unique_ptr<MemoryRegion>(new FabricMemoryRegion(
      shared_from_this(), static_cast<uint8_t*>(data), size, mr, key, base, std::move(owned)));
}

// ---------------------------------------------------------------- progress

Status FabricCore::postReceive(RecvBuffer* buf) {
  for (int attempt = 0;; ++attempt) {
    ssize_t rc = fi_recv(ep_, buf->data.get(), buf->size, buf->desc, FI_ADDR_UNSPEC,
                         static_cast<OpContext*>(buf));
    if (rc == 0) return Status::ok();
    if (rc != -FI_EAGAIN || attempt > 100000) return fabricError("fi_recv", rc);
    fi_cq_msg_entry entries[1];
    (void)fi_cq_read(cq_, entries, 0);  // drive progress so the queue drains
    std::this_thread::yield();
  }
}

int FabricCore::waitMillis() {
  if (have_retries_ || options_.busy_poll) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  calls_pending_ = !deadlines_.empty();
  if (deadlines_.empty()) return kMaxIdleWaitMs;
  auto until = deadlines_.begin()->first - Clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until).count() + 1;
  return static_cast<int>(std::clamp<int64_t>(ms, 1, kMaxIdleWaitMs));
}

void FabricCore::progressLoop() {
  fi_cq_msg_entry entries[kCqBatch];
  while (!progress_stop_) {
    runHandOffs();
    int wait_ms = waitMillis();
    ssize_t n;
    bool wait = cq_can_wait_ && wait_ms > 0;
    if (wait) {
      progress_waiting_.store(true);
      wait = !has_hand_offs_.load();  // one arrived meanwhile: no sleep
    }
    if (wait) {
      n = fi_cq_sread(cq_, entries, kCqBatch, nullptr, wait_ms);
    } else {
      n = fi_cq_read(cq_, entries, kCqBatch);
    }
    progress_waiting_.store(false);
    if (n > 0) {
      idle_poll_us_ = 0;
      if (shm_) last_activity_ = Clock::now();
      for (ssize_t i = 0; i < n; ++i) handleCompletion(entries[i]);
    } else if (n == -FI_EAVAIL) {
      handleCqError();
    } else if (n == -FI_EAGAIN || n == -FI_ETIMEDOUT || n == -FI_EINTR || n == -FI_ECANCELED) {
      if (options_.busy_poll) {
        std::this_thread::yield();
      } else if (shm_) {
        idleBackoff(wait_ms);
      } else if (!cq_can_wait_ || have_retries_ || hand_offs_stalled_) {
        std::this_thread::sleep_for(std::chrono::microseconds(20));
      }
    } else {
      spdlog::warn("net {}: reading the completion queue failed: {}", address_, fiErrorText(n));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    retrySends();
    auto now = Clock::now();
    if (now >= next_sweep_) {
      next_sweep_ = now + kSweepInterval;
      sweepDeadlines();
    }
    if (now >= next_async_rma_scan_) {
      next_async_rma_scan_ = now + kProbeScanInterval;
      // Once shutdown has begun, buffers waiting on writes are handed back
      // so handlers waiting for one can finish and the workers can be joined.
      expireAsyncRma(stopped_, false);
    }
  }
  std::deque<HandOff> left;
  {
    // Work handed off from now on is cancelled at once; what is queued, now.
    std::lock_guard<std::mutex> lock(hand_off_mu_);
    hand_offs_closed_ = true;
    left.swap(hand_offs_);
  }
  for (auto& h : left) h.cancel();
  expireAsyncRma(true, true);  // no completion can come any more
}

void FabricCore::idleBackoff(int wait_ms) {
  const auto quiet = Clock::now() - last_activity_;
  if (quiet < kHotPoll) {
    std::this_thread::yield();
    return;
  }
  if (have_retries_) {
    idle_poll_us_ = kIdlePollMinUs;
  } else {
    const bool busy = calls_pending_ || live_count_.load(std::memory_order_relaxed) > 0 ||
                      quiet < kBusyWindow;
    const int64_t cap = std::min<int64_t>(busy ? kBusyPollMaxUs : kIdlePollMaxUs,
                                          std::max(wait_ms, 1) * int64_t{1000});
    idle_poll_us_ = std::min(idle_poll_us_ == 0 ? kIdlePollMinUs : idle_poll_us_ * 2, cap);
  }
  std::unique_lock<std::mutex> lock(kick_mu_);
  kick_cv_.wait_for(lock, std::chrono::microseconds(idle_poll_us_),
                    [this] { return kicked_ || progress_stop_.load(); });
  if (kicked_) {
    idle_poll_us_ = 0;
    last_activity_ = Clock::now();
  }
  kicked_ = false;
}

void FabricCore::handleCompletion(const fi_cq_msg_entry& entry) {
  auto* ctx = static_cast<OpContext*>(entry.op_context);
  if (ctx == nullptr) return;
  switch (ctx->kind) {
    case OpKind::kRecv: {
      auto* buf = static_cast<RecvBuffer*>(ctx);
      size_t len = std::min(entry.len, buf->size);
      handleFrame(std::span<const uint8_t>(buf->data.get(), len), false);
      Status s = postReceive(buf);
      if (!s.isOk())
        spdlog::error("net {}: reposting a receive buffer: {}", address_, s.toString());
      break;
    }
    case OpKind::kSend:
      untrack(ctx);
      delete static_cast<SendOp*>(ctx);
      break;
    case OpKind::kRma: {
      untrack(ctx);
      std::unique_ptr<RmaOp> op(static_cast<RmaOp*>(ctx));
      std::unique_lock<std::mutex> lock(op->wait->mu);
      if (op->wait->remaining > 0) --op->wait->remaining;
      op->wait->cv.notify_all();
      settleRmaWait(*op->wait, lock);
      break;
    }
  }
}

void FabricCore::handleCqError() {
  fi_cq_err_entry err{};
  ssize_t rc = fi_cq_readerr(cq_, &err, 0);
  if (rc < 0) return;
  char text[256] = {};
  const char* prov_text = fi_cq_strerror(cq_, err.prov_errno, err.err_data, text, sizeof(text));
  std::string why =
      fiErrorText(err.err) + (prov_text && *prov_text ? std::string(" (") + prov_text + ")" : "");
  auto* ctx = static_cast<OpContext*>(err.op_context);
  if (ctx == nullptr) {
    // shm (1.17) reports a failed process_vm_readv/writev RMA this way: the
    // operation cannot be told apart, so its waiter ends by its timeout.
    spdlog::warn("net {}: completion error without context: {}{}", address_, why,
                 shm_ ? " (a failed shm RMA: it will end by its timeout)" : "");
    return;
  }
  switch (ctx->kind) {
    case OpKind::kRecv: {
      auto* buf = static_cast<RecvBuffer*>(ctx);
      if (err.err == FI_ETRUNC) {
        // The frame did not fit: answer from its header if it names a call.
        handleFrame(std::span<const uint8_t>(buf->data.get(), buf->size), true);
      } else if (err.err != FI_ECANCELED) {
        spdlog::warn("net {}: receive failed: {}", address_, why);
      }
      if (!progress_stop_ && err.err != FI_ECANCELED) {
        Status s = postReceive(buf);
        if (!s.isOk())
          spdlog::error("net {}: reposting a receive buffer: {}", address_, s.toString());
      }
      break;
    }
    case OpKind::kSend: {
      untrack(ctx);
      std::unique_ptr<SendOp> op(static_cast<SendOp*>(ctx));
      std::string peer = peerName(op->peer);
      if (op->request_id != 0) {
        finishCall(op->request_id, Status(StatusCode::kUnavailable,
                                          "sending request to peer " + peer + " failed: " + why));
      } else {
        spdlog::warn("net {}: sending a reply to peer {} failed: {}", address_, peer, why);
      }
      // A send fails when its connection broke, and the replies of the
      // peer's other calls would have come back on that connection.
      if (err.err != FI_ECANCELED && !progress_stop_) failCallsTo(op->peer);
      break;
    }
    case OpKind::kRma: {
      untrack(ctx);
      std::unique_ptr<RmaOp> op(static_cast<RmaOp*>(ctx));
      std::unique_lock<std::mutex> lock(op->wait->mu);
      if (op->wait->error.isOk()) {
        op->wait->error = Status(StatusCode::kFabricError, op->what.text() + " failed: " + why);
      }
      if (op->wait->remaining > 0) --op->wait->remaining;
      op->wait->cv.notify_all();
      settleRmaWait(*op->wait, lock);
      break;
    }
  }
}

void FabricCore::handleFrame(std::span<const uint8_t> bytes, bool truncated) {
  Result<FrameView> parsed = parseFrame(bytes, options_.max_body);
  if (truncated) {
    // The frame did not fit the receive buffer: its body is over max_body.
    auto header = parseFrameHeader(bytes);
    parsed = header.isOk()
                 ? Status(StatusCode::kTooLarge,
                          "frame body of " + std::to_string(header->header.body_length) +
                              " bytes exceeds max_body " + std::to_string(options_.max_body) +
                              " of endpoint " + address_)
                 : header.status();
  }
  if (parsed.isOk()) {
    if (parsed->isRequest()) {
      handleRequest(*parsed);
    } else {
      handleReply(*parsed);
    }
    return;
  }
  rejectFrame(bytes, parsed.status());
}

void FabricCore::rejectFrame(std::span<const uint8_t> bytes, const Status& why) {
  // With an intact header the sender can be told (a request gets an error
  // reply, a reply ends its call); otherwise nobody can be named and the
  // frame is only logged and dropped.
  auto header = parseFrameHeader(bytes);
  if (header.isOk() && !header->isRequest()) {
    spdlog::warn("net {}: rejected reply to request {}: {}", address_, header->header.request_id,
                 why.toString());
    finishCall(header->header.request_id, why.withContext("reply rejected"), false,
               header->header.opcode);
    return;
  }
  if (header.isOk()) {
    const FrameView& f = *header;
    std::string raw(reinterpret_cast<const char*>(f.address.data()), f.address.size());
    std::unique_lock<std::mutex> lock(mu_);
    auto peer = peerForAddressLocked(raw);
    if (peer.isOk()) {
      std::shared_ptr<Peer> from = peerRefLocked(*peer);
      from->last_used = Clock::now();
      lock.unlock();
      spdlog::warn("net {}: rejected request {} from {}: {}", address_, f.header.request_id,
                   from->name, why.toString());
      sendReply(std::move(from), f.header.request_id, f.header.opcode, why, {});
      return;
    }
  }
  spdlog::warn("net {}: dropped malformed frame of {} bytes: {}", address_, bytes.size(),
               why.toString());
}

void FabricCore::handleRequest(const FrameView& frame) {
  std::string raw(reinterpret_cast<const char*>(frame.address.data()), frame.address.size());
  std::shared_ptr<Peer> from;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto id = peerForAddressLocked(raw);
    if (!id.isOk()) {
      spdlog::warn("net {}: dropped request {}: {}", address_, frame.header.request_id,
                   id.status().toString());
      return;
    }
    from = peerRefLocked(*id);
    from->last_used = Clock::now();
  }
  const FrameHeader& h = frame.header;
  if (h.opcode == kOpPing) {
    sendReply(from, h.request_id, h.opcode, Status::ok(), frame.body);
    return;
  }
  auto it = handlers_.find(h.opcode);
  if (it == handlers_.end()) {
    sendReply(from, h.request_id, h.opcode,
              Status(StatusCode::kUnimplemented,
                     "endpoint " + address_ + " has no handler for opcode " + hexOpcode(h.opcode)),
              {});
    return;
  }
  const RegisteredHandler* handler = &it->second;
  const size_t bytes = frame.body.size();
  if (handler->mode == HandlerMode::kWorker &&
      (queued_requests_.load() >= options_.max_queued_requests ||
       queued_bytes_.load() + bytes > options_.max_queued_bytes)) {
    requestsRefusedOverloaded().inc();
    sendReply(from, h.request_id, h.opcode,
              Status(StatusCode::kUnavailable,
                     "endpoint " + address_ + " is overloaded: " +
                         std::to_string(queued_requests_.load()) + " requests (" +
                         std::to_string(queued_bytes_.load()) +
                         " bytes) already wait for a worker; try again later or elsewhere"),
              {});
    return;
  }
  std::unique_ptr<IncomingCall> incoming = std::make_unique<FabricIncomingCall>(
      shared_from_this(), h.opcode, h.request_id, std::move(from),
      std::vector<uint8_t>(frame.body.begin(), frame.body.end()));
  uint64_t request_id = h.request_id;
  if (handler->mode == HandlerMode::kInline) {
    RequestIdScope scope(request_id);
    handler->calls->inc();
    LatencyTimer timer(*handler->latency);
    handler->handler(std::move(incoming));
    return;
  }
  auto call = std::make_shared<std::unique_ptr<IncomingCall>>(std::move(incoming));
  queued_requests_ += 1;
  queued_bytes_ += bytes;
  const bool posted = workers_->post([this, handler, call, request_id, bytes] {
    queued_requests_ -= 1;
    queued_bytes_ -= bytes;
    tl_core_thread = this;
    RequestIdScope scope(request_id);  // every log line of the handler names its request
    handler->calls->inc();
    LatencyTimer timer(*handler->latency);
    handler->handler(std::move(*call));
    tl_core_thread = nullptr;
  });
  if (!posted) {  // shutting down: the task (and its call) went unrun
    queued_requests_ -= 1;
    queued_bytes_ -= bytes;
  }
}

void FabricCore::handleReply(const FrameView& frame) {
  Status status = replyStatus(frame);
  if (status.isOk()) {
    finishCall(frame.header.request_id, std::vector<uint8_t>(frame.body.begin(), frame.body.end()),
               true, frame.header.opcode);
  } else {
    finishCall(frame.header.request_id, status, true, frame.header.opcode);
  }
}

}  // namespace

Result<std::unique_ptr<Endpoint>> Endpoint::create(const EndpointOptions& options) {
  if (options.max_body == 0) return invalidArgument("endpoint max_body must be positive");
  if (options.max_queued_requests == 0 || options.max_queued_bytes < options.max_body) {
    return invalidArgument("endpoint max_queued_requests must be positive and max_queued_bytes (" +
                           std::to_string(options.max_queued_bytes) + ") at least max_body (" +
                           std::to_string(options.max_body) + ")");
  }
  auto core = std::make_shared<FabricCore>(options);
  Status s = core->open();
  if (!s.isOk()) return s;
  return std::unique_ptr<Endpoint>(new FabricEndpoint(std::move(core)));
}

Status sendRawForTest(Endpoint& endpoint, PeerId peer, std::span<const uint8_t> bytes) {
  auto* fabric = dynamic_cast<FabricEndpoint*>(&endpoint);
  if (fabric == nullptr) return invalidArgument("sendRawForTest: not a libfabric endpoint");
  return fabric->core().sendRaw(peer, bytes);
}

}  // namespace sluice::net
