#include "tools/cli/output.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>

namespace sluice::cli {

int exitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return kExitUsage;
    case StatusCode::kNotFound:
      return kExitNotFound;
    case StatusCode::kAlreadyExists:
    case StatusCode::kConflict:
    case StatusCode::kNotEmpty:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kBusy:  // e.g. a mount in use
      return kExitConflict;
    case StatusCode::kUnavailable:
    case StatusCode::kTimeout:
    case StatusCode::kShutdown:
    case StatusCode::kFabricError:
      return kExitUnavailable;
    case StatusCode::kChecksumMismatch:
    case StatusCode::kCorruption:
      return kExitDataError;
    default:
      return kExitError;
  }
}

int reportError(const Status& status) {
  std::fprintf(stderr, "sluice: error: %s\n", status.toString().c_str());
  return exitCodeFor(status);
}

Table::Table(std::vector<std::string> headers, std::vector<bool> right_align)
    : headers_(std::move(headers)), right_(std::move(right_align)) {
  right_.resize(headers_.size(), false);
}

void Table::addRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

namespace {
// Display width in code points, so non-ASCII names keep columns aligned.
size_t displayWidth(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}
}  // namespace

std::string Table::render() const {
  std::vector<size_t> width(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) width[c] = displayWidth(headers_[c]);
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], displayWidth(row[c]));
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t c = 0; c < cells.size(); ++c) {
      size_t pad = width[c] - displayWidth(cells[c]);
      bool last = c + 1 == cells.size();
      if (right_[c]) l += std::string(pad, ' ') + cells[c];
      else l += cells[c] + (last ? "" : std::string(pad, ' '));
      if (!last) l += "  ";
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(headers_);
  for (const auto& row : rows_) line(row);
  return out;
}

namespace {

// Bytes in the well-formed UTF-8 sequence at s[i], or 0 if none starts there
// (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
size_t utf8SequenceAt(const std::string& s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

std::string jsonEscape(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    char buf[8];
    switch (c) {
      case '"': out += "\\\""; ++i; continue;
      case '\\': out += "\\\\"; ++i; continue;
      case '\n': out += "\\n"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      default: break;
    }
    if (c < 0x20) {
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      ++i;
      continue;
    }
    if (size_t n = utf8SequenceAt(s, i); n > 0) {
      out.append(s, i, n);
      i += n;
      continue;
    }
    // A file name need not be UTF-8, and JSON text must be. A byte that is
    // not part of a well-formed sequence goes as U+DC00 + byte, as Python's
    // surrogateescape does: os.fsencode() of the decoded string gives the
    // original name back.
    std::snprintf(buf, sizeof buf, "\\udc%02x", c);
    out += buf;
    ++i;
  }
  return out + "\"";
}

void Json::comma() {
  if (!first_.back()) out_ += ",";
  first_.back() = false;
}
void Json::key(const std::string& k) {
  comma();
  if (!k.empty()) out_ += jsonEscape(k) + ":";
}
Json& Json::beginObject() {
  comma();
  out_ += "{";
  first_.push_back(true);
  return *this;
}
Json& Json::beginObject(const std::string& k) {
  key(k);
  out_ += "{";
  first_.push_back(true);
  return *this;
}
Json& Json::endObject() {
  out_ += "}";
  first_.pop_back();
  return *this;
}
Json& Json::beginArray(const std::string& k) {
  key(k);
  out_ += "[";
  first_.push_back(true);
  return *this;
}
Json& Json::endArray() {
  out_ += "]";
  first_.pop_back();
  return *this;
}
Json& Json::field(const std::string& k, const std::string& v) {
  key(k);
  out_ += jsonEscape(v);
  return *this;
}
Json& Json::field(const std::string& k, uint64_t v) {
  key(k);
  out_ += std::to_string(v);
  return *this;
}
Json& Json::field(const std::string& k, int64_t v) {
  key(k);
  out_ += std::to_string(v);
  return *this;
}
Json& Json::field(const std::string& k, double v) {
  key(k);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  out_ += buf;
  return *this;
}
Json& Json::field(const std::string& k, bool v) {
  key(k);
  out_ += v ? "true" : "false";
  return *this;
}
Json& Json::value(const std::string& v) {
  comma();
  out_ += jsonEscape(v);
  return *this;
}

std::string formatTimeMs(int64_t ms) {
  if (ms <= 0) return "-";
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string formatMode(uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

}  // namespace sluice::cli
