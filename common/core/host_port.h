// HostPort: a validated "host:port" endpoint address from config or flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/core/result.h"

namespace sluice {

struct HostPort {
  std::string host;  // hostname, IPv4 literal, or IPv6 literal without brackets
  uint16_t port = 0;  // 0 means "pick a free port" for listeners

  // "127.0.0.1:9100", "[::1]:9100"; parseHostPort(toString()) round-trips.
  std::string toString() const;
  bool operator==(const HostPort&) const = default;
};

// Accepts "host:port" and "[ipv6]:port". The host must be non-empty and made
// of letters, digits, '-', '.' (or hex digits, ':' and '.' inside brackets);
// the port must be decimal 0..65535. Errors quote the text and say what is
// wrong: "'localhost' is not host:port (missing ':port')".
Result<HostPort> parseHostPort(std::string_view text);

}  // namespace sluice
