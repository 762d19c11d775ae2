// The libfuse low-level operations table for a SluiceFs: each callback
// translates between FUSE requests and SluiceFs calls, and Status codes into
// errno values. Every operation that would change the tree answers EROFS.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "common/core/status.h"
#include "fuse/sluice_fs.h"

namespace sluice::fuse {

// The operations; the session's userdata must be the SluiceFs.
const fuse_lowlevel_ops& sluiceOperations();

// ENOENT, EIO, EROFS… for a Status from SluiceFs.
int errnoOf(const Status& status);

}  // namespace sluice::fuse
