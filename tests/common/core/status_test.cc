#include <cerrno>

#include <gtest/gtest.h>

#include "common/core/result.h"
#include "common/core/status.h"

namespace sluice {
namespace {

Result<int> half(int x) {
  if (x % 2 != 0) return invalidArgument("half: " + std::to_string(x) + " is odd");
  return x / 2;
}

Result<int> quarter(int x) {
  SLUICE_ASSIGN_OR_RETURN(int h, half(x));
  return half(h);
}

TEST(Status, OkHasNoMessage) {
  Status s;
  EXPECT_TRUE(s.isOk());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.toString(), "ok");
}

TEST(Status, ErrorNamesCodeAndObject) {
  Status s = checksumMismatch("chunk ab12: stored hash differs");
  EXPECT_FALSE(s.isOk());
  EXPECT_EQ(s.toString(), "checksum mismatch: chunk ab12: stored hash differs");
  EXPECT_EQ(s.withContext("reading v1/a").message(), "reading v1/a: chunk ab12: stored hash differs");
}

TEST(Status, ErrnoMapping) {
  EXPECT_EQ(errnoStatus(ENOSPC, "write x").code(), StatusCode::kNoSpace);
  EXPECT_EQ(errnoStatus(ENOENT, "open x").code(), StatusCode::kNotFound);
  EXPECT_EQ(errnoStatus(EIO, "read x").code(), StatusCode::kIoError);
  EXPECT_EQ(errnoStatus(EMFILE, "open x").code(), StatusCode::kResourceExhausted);
}

TEST(Status, KnownCodes) {
  EXPECT_TRUE(isKnownStatusCode(0));
  EXPECT_TRUE(isKnownStatusCode(103));
  EXPECT_FALSE(isKnownStatusCode(99999));
}

TEST(Result, ValueAndErrorPropagate) {
  EXPECT_EQ(quarter(8).value(), 2);
  Result<int> r = quarter(6);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.valueOr(-1), -1);
}

TEST(Result, OkStatusWithoutValueIsInternal) {
  Result<int> r{Status()};
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace sluice
