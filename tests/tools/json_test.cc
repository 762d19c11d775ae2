// The CLI's JSON strings: always valid UTF-8 text, whatever bytes a file
// name holds.
#include <gtest/gtest.h>

#include "tools/cli/output.h"

namespace sluice::cli {
namespace {

TEST(JsonEscape, WellFormedUtf8PassesThroughAndControlsAreEscaped) {
  EXPECT_EQ(jsonEscape("plain"), "\"plain\"");
  EXPECT_EQ(jsonEscape("a\"b\\c\n\t\x01"), "\"a\\\"b\\\\c\\n\\t\\u0001\"");
  const std::string utf8 = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";  // é € 😀
  EXPECT_EQ(jsonEscape(utf8), "\"" + utf8 + "\"");
}

TEST(JsonEscape, BytesThatAreNotUtf8GoAsSurrogateEscapes) {
  EXPECT_EQ(jsonEscape("bad\xffutf8"), "\"bad\\udcffutf8\"");
  // A lone continuation byte, a truncated sequence, an overlong form and an
  // encoded surrogate are each not UTF-8.
  EXPECT_EQ(jsonEscape("\x80"), "\"\\udc80\"");
  EXPECT_EQ(jsonEscape("x\xe2\x82"), "\"x\\udce2\\udc82\"");
  EXPECT_EQ(jsonEscape("\xc0\xaf"), "\"\\udcc0\\udcaf\"");
  EXPECT_EQ(jsonEscape("\xed\xa0\x80"), "\"\\udced\\udca0\\udc80\"");
}

}  // namespace
}  // namespace sluice::cli
