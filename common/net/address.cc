#include "common/net/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace sluice::net {

Result<HostPort> parseHostPort(const std::string& host_port) {
  HostPort hp;
  size_t colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == host_port.size()) {
    return invalidArgument("address \"" + host_port + "\" is not host:port (e.g. 127.0.0.1:7000)");
  }
  hp.host = host_port.substr(0, colon);
  hp.port = host_port.substr(colon + 1);
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') {
    hp.host = hp.host.substr(1, hp.host.size() - 2);
  }
  if (hp.port.size() > 5 || hp.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(hp.port) > 65535) {
    return invalidArgument("address \"" + host_port + "\": port \"" + hp.port +
                           "\" is not a number in 0..65535");
  }
  return hp;
}

bool isFabricName(std::string_view address) {
  return address.find("://") != std::string_view::npos;
}

Status checkFabricName(std::string_view address) {
  auto bad = [&](const std::string& why) {
    return invalidArgument("address \"" + std::string(address) + "\" is not a libfabric name " +
                           "<prefix>://<name> (e.g. fi_ns://meta): " + why);
  };
  size_t sep = address.find("://");
  if (sep == std::string_view::npos) return bad("no \"://\"");
  std::string_view prefix = address.substr(0, sep);
  std::string_view name = address.substr(sep + 3);
  if (prefix.empty() || prefix.size() > 16 ||
      prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string_view::npos) {
    return bad("the prefix must be 1 to 16 of a-z, 0-9, _");
  }
  if (name.empty() || name.size() > kMaxFabricNameLength) {
    return bad("the name must be 1 to " + std::to_string(kMaxFabricNameLength) + " characters");
  }
  if (name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@+-") !=
      std::string_view::npos) {
    return bad("the name may hold only letters, digits and . _ : @ + -");
  }
  return Status::ok();
}

Status checkAddress(const std::string& address) {
  if (isFabricName(address)) return checkFabricName(address);
  auto hp = parseHostPort(address);
  if (!hp.isOk()) return hp.status();
  if (hp->host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") !=
      std::string::npos) {
    return invalidArgument("address \"" + address + "\": host \"" + hp->host +
                           "\" may hold only letters, digits and . _ : -");
  }
  return Status::ok();
}

std::string displayFabricName(std::string_view name) {
  constexpr std::string_view kNs = "fi_ns://";
  if (name.substr(0, kNs.size()) != kNs) return std::string(name);
  std::string rest(name.substr(kNs.size()));
  if (!checkAddress(rest).isOk()) return std::string(name);
  auto hp = parseHostPort(rest);
  if (hp->host.find(':') != std::string::npos) return "[" + hp->host + "]:" + hp->port;
  return hp->host + ":" + hp->port;
}

std::string formatSockaddr(std::span<const uint8_t> raw) {
  char text[INET6_ADDRSTRLEN] = {};
  if (raw.size() >= sizeof(sockaddr_in)) {
    sockaddr_in in4;
    std::memcpy(&in4, raw.data(), sizeof(in4));
    if (in4.sin_family == AF_INET) {
      if (inet_ntop(AF_INET, &in4.sin_addr, text, sizeof(text)) == nullptr) return "";
      return std::string(text) + ":" + std::to_string(ntohs(in4.sin_port));
    }
  }
  if (raw.size() >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6;
    std::memcpy(&in6, raw.data(), sizeof(in6));
    if (in6.sin6_family == AF_INET6) {
      if (inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text)) == nullptr) return "";
      return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6.sin6_port));
    }
  }
  return "";
}

}  // namespace sluice::net
