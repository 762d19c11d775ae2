// writeAll: writes a buffer to a file at offset 0 through io_uring (a small
// ring per thread, created on first use), falling back to pwrite where the
// kernel refuses io_uring (seccomp, old kernels). Used by the node-local
// cache to stage records.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/core/status.h"

namespace sluice::client {

// All of `data` at offset 0 of `fd`, or an error naming `what`.
Status writeAll(int fd, std::span<const uint8_t> data, const std::string& what);

}  // namespace sluice::client
