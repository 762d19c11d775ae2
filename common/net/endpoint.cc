#include "common/net/endpoint.h"

#include <future>

namespace sluice::net {

Result<std::vector<uint8_t>> Endpoint::call(PeerId peer, uint16_t opcode,
                                            std::span<const uint8_t> body) {
  return call(peer, opcode, body, defaultTimeout());
}

Result<std::vector<uint8_t>> Endpoint::call(PeerId peer, uint16_t opcode,
                                            std::span<const uint8_t> body, Duration timeout) {
  auto promise = std::make_shared<std::promise<Result<std::vector<uint8_t>>>>();
  auto future = promise->get_future();
  callAsync(peer, opcode, body, timeout, [promise](Result<std::vector<uint8_t>> result) {
    promise->set_value(std::move(result));
  });
  return future.get();
}

}  // namespace sluice::net
