// FabricEndpoint: the libfabric implementation behind Endpoint::create.
//
// Internal to common/net. Services use only common/net/endpoint.h; tests may
// use the test hooks declared at the bottom.
//
// Structure: one RDM endpoint with one completion queue shared by sends,
// receives and RMA. A progress thread waits on the CQ (fi_cq_sread with a
// short timeout, so an idle endpoint sleeps), copies each received frame out
// of its pre-posted buffer and reposts it, completes pending calls, retries
// sends the provider pushed back (FI_EAGAIN) and sweeps call deadlines. A
// worker pool runs handlers. Every libfabric object is closed when the last
// reference (the Endpoint, a MemoryRegion, an IncomingCall) is gone, so a
// region may outlive the Endpoint safely; after shutdown() it only frees.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "common/core/status.h"
#include "common/net/endpoint.h"

namespace sluice::net {

// Test hook: sends `bytes` to `peer` as one message, bypassing framing, so a
// test can deliver garbage or truncated frames. `endpoint` must come from
// Endpoint::create. Completion is asynchronous; errors surface in the log.
Status sendRawForTest(Endpoint& endpoint, PeerId peer, std::span<const uint8_t> bytes);

}  // namespace sluice::net
