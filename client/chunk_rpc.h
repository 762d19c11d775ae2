// Storage-node RPCs as a client issues them: asynchronous, so a read or an
// upload keeps many requests in flight across nodes at once.
#pragma once

#include <cstdint>
#include <vector>

#include "client/cluster.h"
#include "common/codec/hash128.h"
#include "common/core/one_shot.h"
#include "common/core/result.h"
#include "common/net/endpoint.h"

namespace sluice::client {

// Bytes [offset, offset + length) of `chunk` on `node`, written by the node
// into `target`. Resolves to the number of bytes written.
Awaited<Result<uint64_t>> getChunkRange(Cluster& cluster, NodeId node, const ChunkId& chunk,
                                        uint64_t offset, uint64_t length,
                                        const net::RemoteBuffer& target);

// Stores `chunk` (`length` bytes the node pulls from `source`) on `node`.
Awaited<Status> putChunk(Cluster& cluster, NodeId node, const ChunkId& chunk, uint32_t stripe,
                         uint64_t length, const net::RemoteBuffer& source);

// True when `s` says the node itself failed us (dead, unreachable, hung),
// not the request: another replica may serve it, and the caller marks the
// node suspect so the next requests try it last.
bool nodeFailure(const Status& s);

// Lengths of `chunks` on `node` (0 where absent).
Result<std::vector<uint64_t>> hasChunks(Cluster& cluster, NodeId node,
                                        const std::vector<ChunkId>& chunks);

}  // namespace sluice::client
