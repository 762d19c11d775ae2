#include "common/core/units.h"

#include <array>
#include <charconv>
#include <limits>
#include <utility>

namespace sluice {
namespace {

// Splits "123abc" into 123 and "abc"; nullopt-like false if no leading digits
// or the number overflows.
bool splitNumber(std::string_view text, uint64_t* number, std::string_view* suffix) {
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, *number);
  if (ec != std::errc() || ptr == begin) return false;
  *suffix = std::string_view(ptr, static_cast<size_t>(end - ptr));
  return true;
}

bool mulOverflows(uint64_t a, uint64_t b) {
  return b != 0 && a > std::numeric_limits<uint64_t>::max() / b;
}

struct Unit {
  std::string_view name;
  uint64_t factor;
};

}  // namespace

Result<uint64_t> parseSize(std::string_view text) {
  auto bad = [&] {
    return invalidArgument("'" + std::string(text) + "' is not a size like 100G");
  };
  uint64_t n = 0;
  std::string_view suffix;
  if (!splitNumber(text, &n, &suffix)) return bad();
  static constexpr std::array<Unit, 5> kUnits = {{
      {"", 1}, {"K", 1ull << 10}, {"M", 1ull << 20}, {"G", 1ull << 30}, {"T", 1ull << 40}}};
  std::string_view letter = suffix.substr(0, suffix.empty() ? 0 : 1);
  std::string_view rest = suffix.substr(letter.size());
  if (letter == "B" && rest.empty()) {
    return n;
  }
  for (const Unit& u : kUnits) {
    if (u.name != letter) continue;
    if (!(rest.empty() || rest == "B" || (!letter.empty() && rest == "iB"))) return bad();
    if (mulOverflows(n, u.factor)) {
      return outOfRange("'" + std::string(text) + "' is larger than 16E bytes");
    }
    return n * u.factor;
  }
  return bad();
}

std::string formatSize(uint64_t bytes) {
  static constexpr std::array<Unit, 4> kUnits = {
      {{"T", 1ull << 40}, {"G", 1ull << 30}, {"M", 1ull << 20}, {"K", 1ull << 10}}};
  if (bytes != 0) {
    for (const Unit& u : kUnits) {
      if (bytes % u.factor == 0) return std::to_string(bytes / u.factor) + std::string(u.name);
    }
  }
  return std::to_string(bytes);
}

Result<std::chrono::microseconds> parseDuration(std::string_view text) {
  auto bad = [&] {
    return invalidArgument("'" + std::string(text) + "' is not a duration like 500ms, 5s or 2m");
  };
  uint64_t n = 0;
  std::string_view suffix;
  if (!splitNumber(text, &n, &suffix)) return bad();
  static constexpr std::array<Unit, 5> kUnits = {{{"us", 1},
                                                  {"ms", 1000},
                                                  {"s", 1000 * 1000},
                                                  {"m", 60ull * 1000 * 1000},
                                                  {"h", 3600ull * 1000 * 1000}}};
  for (const Unit& u : kUnits) {
    if (u.name != suffix) continue;
    // Keep the result representable as int64 microseconds.
    if (mulOverflows(n, u.factor) ||
        n * u.factor > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return outOfRange("'" + std::string(text) + "' is too long a duration");
    }
    return std::chrono::microseconds(static_cast<int64_t>(n * u.factor));
  }
  return bad();
}

std::string formatDuration(std::chrono::microseconds d) {
  static constexpr std::array<Unit, 4> kUnits = {{{"h", 3600ull * 1000 * 1000},
                                                  {"m", 60ull * 1000 * 1000},
                                                  {"s", 1000 * 1000},
                                                  {"ms", 1000}}};
  int64_t us = d.count();
  if (us == 0) return "0s";
  std::string sign = us < 0 ? "-" : "";
  uint64_t mag = us < 0 ? static_cast<uint64_t>(-(us + 1)) + 1 : static_cast<uint64_t>(us);
  for (const Unit& u : kUnits) {
    if (mag % u.factor == 0) return sign + std::to_string(mag / u.factor) + std::string(u.name);
  }
  return sign + std::to_string(mag) + "us";
}

}  // namespace sluice
