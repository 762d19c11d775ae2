// MetaService: the wire adapter of the metadata server. Each handler decodes
// and verifies its FlatBuffers body (wire::decodeBody), checks enum and
// range values, calls MetaStore, and encodes the reply. No logic lives here.
//
// Replies are bounded to fit the endpoint's max_body: paged listings stop
// early (with a cursor) when their encoded size nears kReplyBudget.
//
// Thread safety: handlers run concurrently on the endpoint's worker pool;
// MetaStore is thread-safe. The store must outlive the endpoint's handlers.
#pragma once

#include <cstddef>

#include "common/net/endpoint.h"
#include "common/wire/meta_generated.h"
#include "metadata/meta_store.h"
#include "metadata/stripe_mover.h"

namespace sluice::meta {

inline constexpr size_t kReplyBudget = 3u << 20;

constexpr uint16_t metaOpcode(wire::meta::MetaMethod m) {
  return net::makeOpcode(net::ServiceId::kMeta, static_cast<uint8_t>(m));
}

class MetaService {
 public:
  explicit MetaService(MetaStore* store, StripeMover* mover = nullptr) : store_(store), mover_(mover) {}
  // Registers every MetaMethod handler; call before endpoint.start().
  void registerHandlers(net::Endpoint& endpoint);

 private:
  MetaStore* store_;
  StripeMover* mover_;  // null: Repair and ListMoves answer without one
};

}  // namespace sluice::meta
