// Encoding and verified decoding of FlatBuffers frame bodies.
//
// Every inbound body goes through decodeBody<T>() before any field is read:
// the FlatBuffers Verifier checks every offset, vector length and nesting
// against the body's bounds, so a hostile or truncated body is a kProtocolError,
// never an out-of-bounds read. Services then validate values (enums, ranges,
// names) themselves.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/core/result.h"

namespace sluice::wire {

// Bounds on what a verified body may contain; generous for metadata batches.
inline constexpr flatbuffers::uoffset_t kMaxDepth = 16;
inline constexpr flatbuffers::uoffset_t kMaxTables = 1u << 20;

template <typename T>
Result<const T*> decodeBody(std::span<const uint8_t> body, std::string_view what) {
  if (body.empty()) {
    return Status(StatusCode::kProtocolError, std::string(what) + ": empty body");
  }
  flatbuffers::Verifier verifier(body.data(), body.size(), kMaxDepth, kMaxTables);
  if (!verifier.VerifyBuffer<T>(nullptr)) {
    return Status(StatusCode::kProtocolError,
                  std::string(what) + ": body of " + std::to_string(body.size()) +
                      " bytes failed schema verification");
  }
  return flatbuffers::GetRoot<T>(body.data());
}

// The finished builder's bytes, ready to send.
inline std::vector<uint8_t> finishBody(flatbuffers::FlatBufferBuilder& fbb) {
  return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

}  // namespace sluice::wire
