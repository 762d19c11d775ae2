#include "common/net/endpoint.h"

#include <memory>

#include "common/core/one_shot.h"

namespace sluice::net {

Result<std::vector<uint8_t>> Endpoint::call(PeerId peer, uint16_t opcode,
                                            std::span<const uint8_t> body) {
  return call(peer, opcode, body, defaultTimeout());
}

Result<std::vector<uint8_t>> Endpoint::call(PeerId peer, uint16_t opcode,
                                            std::span<const uint8_t> body, Duration timeout) {
  auto reply = std::make_shared<OneShot<Result<std::vector<uint8_t>>>>();
  callAsync(peer, opcode, body, timeout,
            [reply](Result<std::vector<uint8_t>> result) { reply->set(std::move(result)); });
  return reply->take();
}

}  // namespace sluice::net
