#include "metadata/names.h"

#include <cstdint>
#include <string>

#include "metadata/limits.h"

namespace sluice::meta {

namespace {
bool isNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}
bool isAlnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
// Quotes user text in messages without letting control bytes through.
std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 80)) {
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  if (s.size() > 80) out += "...";
  return out + "'";
}
}  // namespace

Status validateName(std::string_view name, std::string_view field) {
  std::string f(field);
  if (name.empty()) return invalidArgument(f + ": empty");
  if (name.size() > kMaxNameLength) {
    return invalidArgument(f + " " + quoted(name) + ": longer than " +
                           std::to_string(kMaxNameLength) + " characters");
  }
  if (!isAlnum(name[0])) {
    return invalidArgument(f + " " + quoted(name) + ": must start with a letter or digit");
  }
  for (char c : name) {
    if (!isNameChar(c)) {
      return invalidArgument(f + " " + quoted(name) + ": only A-Z a-z 0-9 . _ - allowed");
    }
  }
  return Status::ok();
}

Status validateTagName(std::string_view tag, std::string_view field) {
  SLUICE_RETURN_IF_ERROR(validateName(tag, field));
  if (tag.size() >= 2 && tag[0] == 'v' &&
      tag.find_first_not_of("0123456789", 1) == std::string_view::npos) {
    return invalidArgument(std::string(field) + " " + quoted(tag) +
                           ": v<number> names a version and cannot be a tag");
  }
  return Status::ok();
}

Status validatePath(std::string_view path, std::string_view field, bool allow_root) {
  std::string f(field);
  if (path.empty()) {
    return allow_root ? Status::ok() : invalidArgument(f + ": empty path");
  }
  if (path.size() > kMaxPathLength) {
    return invalidArgument(f + ": path of " + std::to_string(path.size()) +
                           " bytes is longer than " + std::to_string(kMaxPathLength));
  }
  if (path.find('\0') != std::string_view::npos) {
    return invalidArgument(f + " " + quoted(path) + ": contains a NUL byte");
  }
  if (path.front() == '/') {
    return invalidArgument(f + " " + quoted(path) + ": must be relative (no leading '/')");
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view comp = path.substr(start, end - start);
    if (comp.empty()) return invalidArgument(f + " " + quoted(path) + ": empty component");
    if (comp == "." || comp == "..") {
      return invalidArgument(f + " " + quoted(path) + ": '.' and '..' components are not allowed");
    }
    if (comp.size() > kMaxComponentLength) {
      return invalidArgument(f + " " + quoted(path) + ": component longer than " +
                             std::to_string(kMaxComponentLength) + " bytes");
    }
    start = end + 1;
  }
  return Status::ok();
}

uint32_t parseVersionNumber(std::string_view ref) {
  if (ref.size() < 2 || ref.size() > 11 || ref[0] != 'v') return 0;
  uint64_t n = 0;
  for (char c : ref.substr(1)) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n == 0 || n > UINT32_MAX || ref[1] == '0') return 0;
  return static_cast<uint32_t>(n);
}

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) {
      out.push_back(path.substr(start));
      return out;
    }
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
}

}  // namespace sluice::meta
