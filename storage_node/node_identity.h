// NodeIdentity: which cluster a data directory belongs to and which node it
// is, kept in <data>/NODE:
//
//   cluster_id = <32 hex digits>   (all zeros: not yet registered / standalone)
//   node_id = <decimal>
//
// Written atomically (temp file, fsync, rename, directory fsync).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/codec/hash128.h"
#include "common/core/result.h"

namespace sluice::storage {

struct NodeIdentity {
  Hash128 cluster_id;  // zero: none yet
  uint64_t node_id = 0;

  bool operator==(const NodeIdentity&) const = default;
};

// nullopt if <data_dir>/NODE does not exist; kCorruption if it is malformed.
Result<std::optional<NodeIdentity>> loadNodeIdentity(const std::string& data_dir);
Status saveNodeIdentity(const std::string& data_dir, const NodeIdentity& identity);

// Checks that a data directory that already names a cluster is used for that
// cluster. kFailedPrecondition with a message naming both ids otherwise.
Status checkSameCluster(const std::string& data_dir, const NodeIdentity& stored,
                        const Hash128& cluster_id);

}  // namespace sluice::storage
