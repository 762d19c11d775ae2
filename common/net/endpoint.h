// Endpoint: Sluice's RPC and RMA transport over libfabric.
//
// One Endpoint is one libfabric RDM endpoint (FI_EP_RDM, FI_MSG | FI_RMA) on a
// provider chosen by configuration ("tcp;ofi_rxm" by default; "verbs;ofi_rxm"
// and "shm" unchanged). An Endpoint can serve (handlers registered before
// start()) and call (connect() to a peer's address, then call()) at once:
// storage nodes serve clients and call the metadata server and each other.
// Addresses are "host:port" strings with every provider (with shm they name
// a same-host endpoint, not an IP one) or, for shm, libfabric names such as
// "fi_ns://meta": see common/net/address.h.
//
// shm (libfabric 1.17) differs in three ways callers can see: frame bodies
// are capped at 4 MiB whatever max_body says (bulk data goes by RMA anyway);
// the provider does not check RMA keys on its process_vm_readv/writev path,
// so any same-user process holding a RemoteBuffer can reach the memory; and a
// closed endpoint's name stays taken until the process exits.
//
// Frames: every message is a FrameHeader (common/net/frame.h) followed by a
// body of at most EndpointOptions::max_body bytes. Bodies are opaque here;
// services encode them with FlatBuffers and verify them (common/wire/).
//
// Bulk data moves by RMA: the caller registers a buffer (registerMemory), puts
// its RemoteBuffer descriptor into the request body, and the handler pulls
// (rmaRead) or pushes (rmaWrite) the bytes before replying.
//
// Thread safety: all public methods are safe to call from any thread after
// start(). Handlers run on the endpoint's worker pool and may block (disk I/O,
// RMA); replies may be sent from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/core/result.h"
#include "common/core/status.h"

namespace sluice::net {

using Duration = std::chrono::milliseconds;

// Opcode = service id << 8 | method number. Service ids are fixed here; method
// numbers are declared in each service's schema (common/wire/*.fbs).
enum class ServiceId : uint8_t {
  kTransport = 0,  // built-in: ping
  kStorage = 1,
  kMeta = 2,
};
constexpr uint16_t makeOpcode(ServiceId s, uint8_t method) {
  return static_cast<uint16_t>(static_cast<uint16_t>(s) << 8 | method);
}
constexpr uint16_t kOpPing = makeOpcode(ServiceId::kTransport, 1);  // echoes its body

struct EndpointOptions {
  std::string provider = "tcp;ofi_rxm";  // libfabric provider string
  // "host:port" to bind; port 0 picks a free one (address() reports it).
  // shm: "host:port" names the endpoint (port 0: a free name), a libfabric
  // name ("fi_ns://meta") is used as is, empty takes the provider's default.
  // Requests carry the sender's address so the peer can reply. Empty, or a
  // wildcard host (0.0.0.0, ::): bind all interfaces on an ephemeral (or the
  // given) port, and name to each peer the local address that routes to it
  // (127.0.0.1 for a loopback peer). address() then shows the wildcard.
  std::string listen = "";
  size_t max_body = 4u << 20;         // largest frame body accepted or sent
  size_t worker_threads = 4;          // handler pool size
  size_t max_inflight_per_peer = 64;  // calls beyond this wait for a slot (within their timeout)
  Duration default_timeout{10000};    // blocking call() and each handler RMA
  size_t receive_buffers = 16;        // pre-posted receives of maxFrameSize(max_body) each
  // Requests waiting for a worker, and the bytes of their bodies, at most.
  // Beyond either, a request is answered kUnavailable at once (the caller
  // may retry or go to a replica) instead of queuing: each waiting request
  // holds its body, so a flood of them would otherwise exhaust memory.
  size_t max_queued_requests = 65536;
  size_t max_queued_bytes = size_t{1} << 30;
  // A peer learned from requests (not connect()ed to) that nothing was
  // exchanged with for this long, with no call, transfer or handler still
  // holding it, is forgotten: its address-vector entry and bookkeeping are
  // freed. It comes back with its next request. Without this a long-running
  // daemon would keep every client process that ever called it. 0 or less:
  // never forget. shm endpoints never forget (see forgetIdlePeersLocked).
  Duration peer_idle_timeout{10 * 60 * 1000};
  // Progress thread spins on the completion queue instead of sleeping in
  // fi_cq_sread: lower latency, but one core stays busy even when idle.
  bool busy_poll = false;
};

// Names a registered buffer of a remote process, as carried in request bodies.
// Built by MemoryRegion::remote(); addr is already in the form the provider's
// MR mode needs (virtual address with FI_MR_VIRT_ADDR, else offset 0-based).
struct RemoteBuffer {
  uint64_t addr = 0;    // address or offset, as the provider's MR mode requires
  uint64_t key = 0;     // the registration's remote key
  uint64_t length = 0;  // bytes the peer may access starting at addr
};

enum class Access : uint8_t {
  kLocalOnly = 0,    // source/target of this process's own rmaRead/rmaWrite
  kRemoteRead = 1,   // peers may rmaRead from it (e.g. a put's payload)
  kRemoteWrite = 2,  // peers may rmaWrite into it (e.g. a get's target)
  kRemoteReadWrite = 3,
};

// A buffer registered with the fabric. Deregistered on destruction; the
// memory is owned by the caller unless created by Endpoint::allocateMemory.
// A region keeps its endpoint's fabric domain open, so it may outlive the
// Endpoint object. remote(offset, length) clamps to the region.
class MemoryRegion {
 public:
  virtual ~MemoryRegion() = default;
  virtual uint8_t* data() const = 0;
  virtual size_t size() const = 0;
  // Descriptor a peer needs to reach [offset, offset + length) of this buffer.
  virtual RemoteBuffer remote(size_t offset, size_t length) const = 0;
  RemoteBuffer remote() const { return remote(0, size()); }
};

// An endpoint-local handle for a peer: one connect()ed to, valid for the
// endpoint's life; or one an incoming call came from, valid while that call
// and its work last (a learned peer may be forgotten once idle). Never reused.
using PeerId = uint64_t;

// What a handler receives. The handler, or whoever it hands the call to, must
// call reply() exactly once; a call destroyed without a reply answers
// kInternal to the caller so it never waits for its timeout.
class IncomingCall {
 public:
  virtual ~IncomingCall() = default;
  virtual uint16_t opcode() const = 0;
  virtual uint64_t requestId() const = 0;
  virtual PeerId peer() const = 0;
  virtual std::span<const uint8_t> body() const = 0;

  // Pull `length` bytes from the caller's `remote` (at remote_offset) into
  // `local` (at local_offset); blocks until complete or failed. Offsets and
  // length are checked against both regions first (kOutOfRange). Transfers
  // larger than the provider's message limit are split. Errors are
  // kFabricError naming the operation and the peer, kShutdown, or kTimeout
  // after EndpointOptions::default_timeout; after kTimeout the provider may
  // still complete the transfer later, so keep `local` registered until the
  // endpoint shuts down. `local` must come from this endpoint.
  virtual Status rmaRead(const MemoryRegion& local, size_t local_offset, const RemoteBuffer& remote,
                         size_t remote_offset, size_t length) = 0;
  // Push `length` bytes from `local` into the caller's `remote` buffer.
  virtual Status rmaWrite(const MemoryRegion& local, size_t local_offset,
                          const RemoteBuffer& remote, size_t remote_offset, size_t length) = 0;

  // Starts pushing `length` bytes from `local` into the caller's `remote`
  // buffer and returns once the transfer is posted (checks and errors as
  // rmaWrite). `local` must stay untouched until awaitWrites() returns. A
  // reply sent meanwhile reaches the caller after the bytes: at once where the
  // provider orders sends after writes (tcp, shm, verbs with rxm), else reply()
  // first waits for the writes. This saves the caller the round trip in which
  // the node waits to hear that its write landed before it answers.
  virtual Status postRmaWrite(const MemoryRegion& local, size_t local_offset,
                              const RemoteBuffer& remote, size_t remote_offset, size_t length) = 0;
  // Waits until every postRmaWrite of this call has completed; the first
  // failure, or kTimeout after EndpointOptions::default_timeout.
  virtual Status awaitWrites() = 0;
  // awaitWrites() without the wait: runs done(the first failure) once every
  // postRmaWrite of this call has completed, so a handler can return its
  // thread and leave `local` to be recycled by `done`. Runs at once when
  // nothing is outstanding, else on the endpoint's progress thread (done must
  // be quick and must not block). No timeout: `local` may be read by the
  // provider until the completion comes (a write past default_timeout is
  // logged); once the endpoint shuts down, done runs with kShutdown. Call at
  // most once, after the last postRmaWrite; the call object may be gone by then.
  virtual void whenWritesDone(std::function<void(Status)> done) = 0;

  // A non-OK status travels as the frame status plus its message.
  virtual void reply(const Status& status, std::span<const uint8_t> body = {}) = 0;
  virtual bool replied() const = 0;
};

using Handler = std::function<void(std::unique_ptr<IncomingCall>)>;

// Where a handler runs. kWorker: on the endpoint's worker pool, where it may
// block. kInline: on the progress thread as the request arrives, for handlers
// that answer in microseconds from memory (the metadata server's Stat): the hop
// to a worker, a wake-up on each side, costs more than such a handler's work.
// An inline handler must not block — no RMA, no calls, no waiting on locks
// held across I/O — since every message of the endpoint waits while it runs.
// kWorkerUnlimited: as kWorker, but never refused for a full queue
// (EndpointOptions::max_queued_*): for calls few enough by nature and costly
// to lose, such as storage nodes' heartbeats, which a flood of client
// requests must not turn into nodes marked down.
enum class HandlerMode : uint8_t { kWorker, kInline, kWorkerUnlimited };
using ReplyCallback = std::function<void(Result<std::vector<uint8_t>>)>;

class Endpoint {
 public:
  static Result<std::unique_ptr<Endpoint>> create(const EndpointOptions& options);
  virtual ~Endpoint() = default;

  // Register before start(). Unknown opcodes answer kUnimplemented.
  virtual void registerHandler(uint16_t opcode, Handler handler,
                               HandlerMode mode = HandlerMode::kWorker) = 0;
  virtual Status start() = 0;
  // Fails pending calls with kShutdown, stops threads, closes the endpoint.
  // Idempotent; also run by the destructor.
  virtual void shutdown() = 0;

  // The address peers use to reach this endpoint (valid after start()):
  // "host:port", or for shm possibly a libfabric name (common/net/address.h).
  virtual std::string address() const = 0;
  virtual const std::string& provider() const = 0;

  // Resolve and remember a peer ("host:port", or a libfabric name for shm;
  // malformed addresses are kInvalidArgument). Cheap to call again for the
  // same address. Does not contact the peer: a dead one fails the calls.
  virtual Result<PeerId> connect(const std::string& host_port) = 0;

  // Asynchronous call: `done` runs exactly once, on a transport thread, with
  // the reply body or an error (kTimeout after `timeout`, the remote status,
  // kShutdown, kUnavailable for an unreachable peer). Keep `done` short and
  // never block in it (no blocking call()): it runs on the progress thread.
  // Errors known at once (kTooLarge body, unknown peer, kShutdown) run `done`
  // inline on the caller's thread. At most max_inflight_per_peer calls per
  // peer are on the wire; later ones queue, and their timeout includes the
  // wait for a slot.
  virtual void callAsync(PeerId peer, uint16_t opcode, std::span<const uint8_t> body,
                         Duration timeout, ReplyCallback done) = 0;
  // EndpointOptions::default_timeout of this endpoint.
  virtual Duration defaultTimeout() const { return Duration{10000}; }
  // Peers this endpoint knows now: those connect()ed to, and those heard
  // from within EndpointOptions::peer_idle_timeout (or still being served).
  virtual size_t peerCount() const = 0;

  // Blocking call with the default timeout. Never call from a `done`
  // callback (it would wait on the thread that delivers its own reply).
  Result<std::vector<uint8_t>> call(PeerId peer, uint16_t opcode, std::span<const uint8_t> body);
  Result<std::vector<uint8_t>> call(PeerId peer, uint16_t opcode, std::span<const uint8_t> body,
                                    Duration timeout);

  // Register caller-owned memory for RMA.
  virtual Result<std::unique_ptr<MemoryRegion>> registerMemory(void* data, size_t size,
                                                               Access access) = 0;
  // Allocate page-aligned memory and register it; freed with the region.
  virtual Result<std::unique_ptr<MemoryRegion>> allocateMemory(size_t size, Access access) = 0;
};

}  // namespace sluice::net
