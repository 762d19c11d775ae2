// A minimal Sluice endpoint for tests that need a peer in another process
// (e.g. to kill it with SIGKILL while a call is pending).
//
// Usage: net_test_server <listen address> [provider, default tcp;ofi_rxm]
// Prints "ADDR <host:port>" on stdout once serving. Opcode kOpSlow (0x0010)
// replies only after 60 s; kOpPing echoes. Runs until killed.
#include <chrono>
#include <cstdio>
#include <thread>

#include "common/net/endpoint.h"

int main(int argc, char** argv) {
  using namespace sluice::net;
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: %s <listen address> [provider]\n", argv[0]);
    return 2;
  }
  EndpointOptions options;
  options.listen = argv[1];
  if (argc == 3) options.provider = argv[2];
  auto ep = Endpoint::create(options);
  if (!ep.isOk()) {
    std::fprintf(stderr, "net_test_server: %s\n", ep.status().toString().c_str());
    return 1;
  }
  (*ep)->registerHandler(makeOpcode(ServiceId::kTransport, 0x10),
                         [](std::unique_ptr<IncomingCall> call) {
                           std::this_thread::sleep_for(std::chrono::seconds(60));
                           call->reply(sluice::Status::ok());
                         });
  sluice::Status s = (*ep)->start();
  if (!s.isOk()) {
    std::fprintf(stderr, "net_test_server: %s\n", s.toString().c_str());
    return 1;
  }
  std::printf("ADDR %s\n", (*ep)->address().c_str());
  std::fflush(stdout);
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}
