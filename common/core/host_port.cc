#include "common/core/host_port.h"

#include <cctype>
#include <charconv>

namespace sluice {
namespace {

Status badHostPort(std::string_view text, std::string_view why) {
  return invalidArgument("'" + std::string(text) + "' is not host:port (" + std::string(why) + ")");
}

bool isHostnameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

bool isIpv6Char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

}  // namespace

std::string HostPort::toString() const {
  bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<HostPort> parseHostPort(std::string_view text) {
  HostPort out;
  std::string_view portText;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return badHostPort(text, "missing ']'");
    std::string_view host = text.substr(1, close - 1);
    if (host.empty()) return badHostPort(text, "empty host");
    for (char c : host) {
      if (!isIpv6Char(c)) return badHostPort(text, "bad character in IPv6 address");
    }
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return badHostPort(text, "missing ':port'");
    }
    out.host = std::string(host);
    portText = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return badHostPort(text, "missing ':port'");
    std::string_view host = text.substr(0, colon);
    if (host.empty()) return badHostPort(text, "empty host");
    if (host.find(':') != std::string_view::npos) {
      return badHostPort(text, "write IPv6 addresses as [addr]:port");
    }
    for (char c : host) {
      if (!isHostnameChar(c)) return badHostPort(text, "bad character in host");
    }
    out.host = std::string(host);
    portText = text.substr(colon + 1);
  }
  if (portText.empty()) return badHostPort(text, "empty port");
  uint32_t port = 0;
  auto [ptr, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (ec != std::errc() || ptr != portText.data() + portText.size()) {
    return badHostPort(text, "port is not a number");
  }
  if (port > 65535) return badHostPort(text, "port is above 65535");
  out.port = static_cast<uint16_t>(port);
  return out;
}

}  // namespace sluice
