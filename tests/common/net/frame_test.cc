#include "common/net/frame.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

namespace sluice::net {
namespace {

std::vector<uint8_t> makeFrame(uint16_t flags, std::vector<uint8_t> addr, std::vector<uint8_t> body,
                               int32_t status = 0) {
  FrameHeader h;
  h.opcode = 0x0102;
  h.flags = flags;
  h.request_id = 77;
  h.status = status;
  std::vector<uint8_t> out(frameSize(addr.size(), body.size()));
  writeFrame(h, addr, body, out.data());
  return out;
}

TEST(FrameTest, RoundTripRequestKeepsBodyAligned) {
  std::vector<uint8_t> addr(13, 0xab), body = {1, 2, 3, 4, 5};
  auto bytes = makeFrame(kFlagRequest, addr, body);
  EXPECT_EQ(bytes.size(), sizeof(FrameHeader) + 16 + 5);
  auto f = parseFrame(bytes, 100);
  ASSERT_TRUE(f.isOk()) << f.status().toString();
  EXPECT_TRUE(f->isRequest());
  EXPECT_EQ(f->header.opcode, 0x0102);
  EXPECT_EQ(f->header.request_id, 77u);
  EXPECT_EQ(std::vector<uint8_t>(f->address.begin(), f->address.end()), addr);
  EXPECT_EQ(std::vector<uint8_t>(f->body.begin(), f->body.end()), body);
  EXPECT_EQ((f->body.data() - bytes.data()) % 8, 0);
}

TEST(FrameTest, ErrorReplyCarriesStatusMessage) {
  std::string msg = "chunk 3f: not found";
  auto bytes = makeFrame(kFlagReply, {}, std::vector<uint8_t>(msg.begin(), msg.end()),
                         static_cast<int32_t>(StatusCode::kNotFound));
  auto f = parseFrame(bytes, 100);
  ASSERT_TRUE(f.isOk());
  Status s = replyStatus(*f);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), msg);
  auto unknown = makeFrame(kFlagReply, {}, {}, 9999);
  EXPECT_EQ(replyStatus(*parseFrame(unknown, 100)).code(), StatusCode::kInternal);
}

TEST(FrameTest, RejectsEveryBadField) {
  std::vector<uint8_t> addr(16, 1), body(10, 2);
  auto good = makeFrame(kFlagRequest, addr, body);
  ASSERT_TRUE(parseFrame(good, 100).isOk());

  auto mutate = [&](size_t offset, auto value) {
    auto b = good;
    std::memcpy(b.data() + offset, &value, sizeof(value));
    return parseFrame(b, 100).status().code();
  };
  EXPECT_EQ(mutate(offsetof(FrameHeader, magic), uint32_t{1}), StatusCode::kProtocolError);
  EXPECT_EQ(mutate(offsetof(FrameHeader, version), uint16_t{2}), StatusCode::kProtocolError);
  EXPECT_EQ(mutate(offsetof(FrameHeader, flags), uint16_t{3}), StatusCode::kProtocolError);
  EXPECT_EQ(mutate(offsetof(FrameHeader, flags), uint16_t{0}), StatusCode::kProtocolError);
  EXPECT_EQ(mutate(offsetof(FrameHeader, status), int32_t{5}), StatusCode::kProtocolError);
  EXPECT_EQ(mutate(offsetof(FrameHeader, address_length), uint16_t{0}), StatusCode::kProtocolError);
  EXPECT_EQ(mutate(offsetof(FrameHeader, address_length), uint16_t{200}),
            StatusCode::kProtocolError);
  EXPECT_EQ(mutate(offsetof(FrameHeader, address_length), uint16_t{60000}),
            StatusCode::kProtocolError);
  EXPECT_EQ(mutate(offsetof(FrameHeader, body_length), uint64_t{11}), StatusCode::kProtocolError);
  EXPECT_EQ(mutate(offsetof(FrameHeader, body_length), uint64_t{9}), StatusCode::kProtocolError);
  EXPECT_EQ(mutate(offsetof(FrameHeader, body_length), uint64_t{1} << 40), StatusCode::kTooLarge);
  EXPECT_EQ(parseFrame(good, 9).status().code(), StatusCode::kTooLarge);
}

TEST(FrameTest, TruncatedAndRandomInputNeverParsesOutOfBounds) {
  std::vector<uint8_t> addr(16, 1), body(40, 2);
  auto good = makeFrame(kFlagRequest, addr, body);
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> prefix(good.begin(), good.begin() + n);
    EXPECT_FALSE(parseFrame(prefix, 1000).isOk()) << "prefix of " << n << " bytes";
  }
  std::mt19937_64 rng(42);
  size_t accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    auto b = good;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    auto f = parseFrame(b, 1000);
    if (f.isOk()) {
      ++accepted;
      // Whatever is accepted must lie inside the input.
      EXPECT_LE(f->body.data() + f->body.size(), b.data() + b.size());
      EXPECT_EQ(f->body.size(), f->header.body_length);
    }
  }
  EXPECT_LT(accepted, 20000u);
}

}  // namespace
}  // namespace sluice::net
