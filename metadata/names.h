// Validation of names and paths that reach the metadata server. Each returns
// kInvalidArgument naming `field` and the rule broken, e.g.
// "dataset name 'a b': only A-Z a-z 0-9 . _ - allowed".
#pragma once

#include <string_view>
#include <vector>

#include "common/core/status.h"

namespace sluice::meta {

// [A-Za-z0-9][A-Za-z0-9._-]{0,63}
Status validateName(std::string_view name, std::string_view field);
// A name, and not of the form v<digits> (which names versions).
Status validateTagName(std::string_view tag, std::string_view field);
// Relative path: components separated by single '/', none empty, "." or "..",
// no NUL, component <= 255 bytes, whole <= 4096 bytes. `allow_root`: "" is
// accepted and means the root directory.
Status validatePath(std::string_view path, std::string_view field, bool allow_root = false);
// "v<n>" with 1 <= n < 2^32 -> n; 0 if `ref` is not of that form.
uint32_t parseVersionNumber(std::string_view ref);
// Splits a valid path into its components (views into `path`).
std::vector<std::string_view> splitPath(std::string_view path);

}  // namespace sluice::meta
