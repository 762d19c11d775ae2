// A dataset's tags, read from sluice-meta whole.
//
// ListTags answers a page at a time (a reply holds at most a frame), so a
// dataset with more tags than fit one reply needs the pages followed; the CLI
// and the mount both list tags through this.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client/cluster.h"
#include "common/core/result.h"

namespace sluice::client {

struct TagEntry {
  std::string name;
  uint32_t version = 0;
};

// Every tag of `dataset`, in name order. A page whose cursor does not move
// past the last name (a faulty server) is kProtocolError, not a loop.
Result<std::vector<TagEntry>> listTags(Cluster& cluster, const std::string& dataset);

}  // namespace sluice::client
