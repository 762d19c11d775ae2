// Transport addresses: the strings an Endpoint listens on, reports as
// address(), and connect()s to; what the metadata server stores for a node.
//
// Two forms, both plain printable strings:
//
//   host:port, [v6]:port   The socket form. With tcp;ofi_rxm and
//                          verbs;ofi_rxm an IP endpoint. With shm (same host
//                          only, nothing goes over IP) it names the shm
//                          endpoint "host:port": libfabric's own mapping of
//                          node + service for shm (FI_ADDR_STR
//                          "fi_ns://host:port", see fi_shm(7)), so daemons and
//                          clients that pass host:port strings around run on
//                          shm unchanged. Port 0 in a listen address picks a
//                          free one either way (for shm: a number whose name
//                          no live endpoint holds).
//
//   <prefix>://<name>      A libfabric FI_ADDR_STR name, only for providers
//                          whose address format is FI_ADDR_STR (shm), e.g.
//                          "fi_ns://meta" or what an endpoint without a listen
//                          address reports ("fi_shm://4242:0:1"). Passed to
//                          libfabric as is. prefix: 1..16 of [a-z0-9_];
//                          name: 1..kMaxFabricNameLength of [A-Za-z0-9._:@+-]
//                          (it becomes a file name under /dev/shm, so no '/').
//
// Endpoint::address() of an shm endpoint reports the socket form when its
// name is "fi_ns://host:port" and the FI_ADDR_STR name otherwise; either
// string connect()s back to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/core/result.h"
#include "common/core/status.h"

namespace sluice::net {

struct HostPort {
  std::string host;  // without brackets for IPv6
  std::string port;  // decimal, 0-65535
};

// Splits "host:port" or "[v6]:port"; the port must be a decimal 0..65535.
Result<HostPort> parseHostPort(const std::string& host_port);

// "host:port" for a sockaddr_in / sockaddr_in6; empty for any other format.
std::string formatSockaddr(std::span<const uint8_t> raw);

inline constexpr size_t kMaxFabricNameLength = 100;  // the part after "://"

// True when `address` is in the FI_ADDR_STR form (contains "://"), valid or not.
bool isFabricName(std::string_view address);

// Validates "<prefix>://<name>" as described above; the error names the
// address and the rule it breaks.
Status checkFabricName(std::string_view address);

// Validates either form without resolving anything: what a server should
// check before storing an address a peer advertises.
Status checkAddress(const std::string& address);

// How an endpoint named by the FI_ADDR_STR `name` is shown and connected to:
// "fi_ns://host:port" (host:port valid) becomes "host:port" ("[v6]:port" for
// an IPv6 host); any other name is returned unchanged.
std::string displayFabricName(std::string_view name);

}  // namespace sluice::net
