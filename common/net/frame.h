// Frame: the fixed header every Sluice transport message starts with.
//
// Layout on the wire (little-endian, the byte order of every supported host):
//
//   FrameHeader (32 bytes) | sender address (address_length bytes, zero-padded
//   to a multiple of 8) | body (body_length bytes)
//
// Requests carry the sender's fabric address so a server can reply to any
// peer without a prior handshake and without relying on FI_SOURCE, whose
// support differs across providers. Replies carry no address. The header and
// the padded address are multiples of 8 bytes, so a body copied out of the
// frame into 8-byte-aligned memory stays aligned (FlatBuffers verification
// checks alignment).
//
// parseFrame validates every field before anything is used: magic, version,
// flags, status, address length and body length against both the received
// size and the receiver's max_body. An error reply's body is the Status
// message (UTF-8 text).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "common/core/result.h"
#include "common/core/status.h"

namespace sluice::net {

static_assert(std::endian::native == std::endian::little, "frames are little-endian");

inline constexpr uint32_t kFrameMagic = 0x46434c53;  // "SLCF" in memory order
inline constexpr uint16_t kProtocolVersion = 1;
// Fabric addresses are sockaddrs for tcp/verbs (16-28 bytes) and short names
// for shm; anything longer is rejected.
inline constexpr size_t kMaxAddressLength = 128;

enum FrameFlags : uint16_t {
  kFlagRequest = 1,
  kFlagReply = 2,
};

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint16_t version = kProtocolVersion;
  uint16_t opcode = 0;
  uint16_t flags = 0;           // exactly one of kFlagRequest, kFlagReply
  uint16_t address_length = 0;  // sender address bytes after the header; 0 in replies
  int32_t status = 0;           // StatusCode; 0 in requests
  uint64_t request_id = 0;
  uint64_t body_length = 0;
};
static_assert(sizeof(FrameHeader) == 32, "FrameHeader must stay 32 bytes");
static_assert(sizeof(FrameHeader) % 8 == 0, "bodies must stay 8-byte aligned");

constexpr size_t paddedAddressLength(size_t address_length) {
  return (address_length + 7) & ~size_t{7};
}
// Offset of the body inside a frame whose header says `address_length`.
constexpr size_t frameBodyOffset(size_t address_length) {
  return sizeof(FrameHeader) + paddedAddressLength(address_length);
}
constexpr size_t frameSize(size_t address_length, size_t body_length) {
  return frameBodyOffset(address_length) + body_length;
}
// The largest frame a receiver with `max_body` accepts.
constexpr size_t maxFrameSize(size_t max_body) { return frameSize(kMaxAddressLength, max_body); }

// A validated frame; spans point into the bytes given to parseFrame.
struct FrameView {
  FrameHeader header;
  std::span<const uint8_t> address;
  std::span<const uint8_t> body;

  bool isRequest() const { return header.flags == kFlagRequest; }
};

// Writes header (body_length and address_length are filled in here), the
// padded address and the body into `out`, which must hold
// frameSize(address.size(), body.size()) bytes. REQUIRES address.size() <=
// kMaxAddressLength.
void writeFrame(FrameHeader header, std::span<const uint8_t> address, std::span<const uint8_t> body,
                uint8_t* out);

// Validates header and sender address only: enough to answer a frame whose
// body was cut off (e.g. truncated by a receive buffer). `bytes` may be a
// prefix of the frame; the returned view has an empty body.
Result<FrameView> parseFrameHeader(std::span<const uint8_t> bytes);

// Validates the whole frame: header, address, body_length <= max_body and
// body_length == bytes.size() - body offset. Errors are kProtocolError
// (kTooLarge for a body over max_body) with a message naming the field.
Result<FrameView> parseFrame(std::span<const uint8_t> bytes, size_t max_body);

// The Status a reply frame stands for: OK, or its code with the body as the
// message. Unknown codes (a newer peer) become kInternal naming the number.
Status replyStatus(const FrameView& reply);

}  // namespace sluice::net
