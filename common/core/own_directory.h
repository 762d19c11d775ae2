// Whether a directory may become a daemon's data directory.
//
// A mistyped --data_dir (a home directory, another service's mount) must not
// get a daemon's files written into it. A directory qualifies if it is
// absent, empty, or already the daemon's own. lost+found is allowed, since
// a data directory is often a file system of its own.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "common/core/status.h"

namespace sluice {

// OK if `dir` does not exist, holds `marker` (the daemon's own), or holds
// nothing but lost+found and the names in `also_ours` (what the daemon
// writes before `marker` exists). Otherwise kFailedPrecondition naming an
// entry found and `daemon`.
Status checkOwnDirectory(const std::string& dir, std::string_view daemon, std::string_view marker,
                         std::initializer_list<std::string_view> also_ours);

}  // namespace sluice
