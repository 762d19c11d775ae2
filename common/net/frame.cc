#include "common/net/frame.h"

#include <cstring>

namespace sluice::net {

void writeFrame(FrameHeader header, std::span<const uint8_t> address, std::span<const uint8_t> body,
                uint8_t* out) {
  header.address_length = static_cast<uint16_t>(address.size());
  header.body_length = body.size();
  std::memcpy(out, &header, sizeof(header));
  uint8_t* p = out + sizeof(header);
  if (!address.empty()) std::memcpy(p, address.data(), address.size());
  size_t pad = paddedAddressLength(address.size()) - address.size();
  if (pad != 0) std::memset(p + address.size(), 0, pad);
  p += paddedAddressLength(address.size());
  if (!body.empty()) std::memcpy(p, body.data(), body.size());
}

Result<FrameView> parseFrameHeader(std::span<const uint8_t> bytes) {
  if (bytes.size() < sizeof(FrameHeader)) {
    return protocolError("frame of " + std::to_string(bytes.size()) +
                         " bytes is shorter than the " + std::to_string(sizeof(FrameHeader)) +
                         "-byte header");
  }
  FrameView view;
  std::memcpy(&view.header, bytes.data(), sizeof(FrameHeader));
  const FrameHeader& h = view.header;
  if (h.magic != kFrameMagic) {
    return protocolError("frame magic " + std::to_string(h.magic) + " is not Sluice's");
  }
  if (h.version != kProtocolVersion) {
    return protocolError("frame protocol version " + std::to_string(h.version) +
                         " is not supported (this build speaks " +
                         std::to_string(kProtocolVersion) + ")");
  }
  if (h.flags != kFlagRequest && h.flags != kFlagReply) {
    return protocolError("frame flags " + std::to_string(h.flags) +
                         " are neither request nor reply");
  }
  if (h.address_length > kMaxAddressLength) {
    return protocolError("frame sender address of " + std::to_string(h.address_length) +
                         " bytes exceeds " + std::to_string(kMaxAddressLength));
  }
  if (h.flags == kFlagRequest) {
    if (h.address_length == 0) return protocolError("request frame carries no sender address");
    if (h.status != 0) {
      return protocolError("request frame carries status " + std::to_string(h.status));
    }
  }
  size_t body_offset = frameBodyOffset(h.address_length);
  if (bytes.size() < body_offset) {
    return protocolError("frame of " + std::to_string(bytes.size()) +
                         " bytes is cut off inside its sender address");
  }
  view.address = bytes.subspan(sizeof(FrameHeader), h.address_length);
  return view;
}

Result<FrameView> parseFrame(std::span<const uint8_t> bytes, size_t max_body) {
  SLUICE_ASSIGN_OR_RETURN(FrameView view, parseFrameHeader(bytes));
  const FrameHeader& h = view.header;
  if (h.body_length > max_body) {
    return Status(StatusCode::kTooLarge, "frame body of " + std::to_string(h.body_length) +
                                             " bytes exceeds max_body " + std::to_string(max_body));
  }
  size_t body_offset = frameBodyOffset(h.address_length);
  if (h.body_length != bytes.size() - body_offset) {
    return protocolError("frame body_length " + std::to_string(h.body_length) +
                         " does not match the " + std::to_string(bytes.size() - body_offset) +
                         " body bytes received");
  }
  view.body = bytes.subspan(body_offset, h.body_length);
  return view;
}

Status replyStatus(const FrameView& reply) {
  int32_t raw = reply.header.status;
  if (raw == 0) return Status::ok();
  std::string message(reinterpret_cast<const char*>(reply.body.data()), reply.body.size());
  if (!isKnownStatusCode(raw)) {
    return internalError("peer answered unknown status code " + std::to_string(raw) + ": " +
                         message);
  }
  return Status(static_cast<StatusCode>(raw), std::move(message));
}

}  // namespace sluice::net
