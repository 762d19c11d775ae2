// "host:port" strings and fabric addresses.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/core/result.h"

namespace sluice::net {

struct HostPort {
  std::string host;  // without brackets for IPv6
  std::string port;  // decimal, 0-65535
};

// Splits "host:port" or "[v6]:port"; the port must be a decimal 0..65535.
Result<HostPort> parseHostPort(const std::string& host_port);

// "host:port" for a sockaddr_in / sockaddr_in6; empty for any other format.
std::string formatSockaddr(std::span<const uint8_t> raw);

}  // namespace sluice::net
