// Bounds on everything the metadata server accepts. Each is checked at the
// store's entry points (and the service's decoders), and errors name the field.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::meta {

inline constexpr size_t kMaxNameLength = 64;        // dataset and tag names
inline constexpr size_t kMaxComponentLength = 255;  // one path component
inline constexpr size_t kMaxPathLength = 4096;
inline constexpr size_t kMaxSymlinkTargetLength = 4096;
inline constexpr size_t kMaxMessageLength = 4096;   // version messages
inline constexpr size_t kMaxAddressLength = 256;    // node "host:port"
inline constexpr size_t kMaxFilesPerBatch = 100000;
inline constexpr size_t kMaxExtentsPerBatch = 1000000;
inline constexpr size_t kMaxRecordsPerLookup = 50000;
inline constexpr size_t kMaxPathsPerLookup = 10000;
inline constexpr uint32_t kMaxPageLimit = 10000;
inline constexpr uint32_t kDefaultPageLimit = 1000;
inline constexpr uint32_t kMaxRecordBytes = 64u << 20;
inline constexpr uint32_t kMinChunkSize = 64u << 10;
inline constexpr uint32_t kMaxChunkSize = 1u << 30;
inline constexpr uint32_t kDefaultChunkSize = 4u << 20;
// A dataset's chunk size: uploaders build chunks of at most 64 MiB
// (codec_limits.h's kMaxChunkSizeCap), which is also a storage node's default
// max_chunk, so a larger setting would only be clamped.
inline constexpr uint32_t kMaxDatasetChunkSize = 64u << 20;
inline constexpr uint32_t kMaxReplicas = 16;
inline constexpr uint32_t kMaxStripes = 1u << 16;
// stripe_count * max_replicas: the map's ids must fit one GetClusterMap reply.
inline constexpr uint64_t kMaxStripeSlots = 1u << 18;
inline constexpr uint32_t kMaxFileMode = 07777;
// MetaStore::chunkUsers: chunks per call, paths per version, and the bytes
// of names one answer carries (well inside a reply frame).
inline constexpr size_t kMaxChunksPerUsersCall = 1000;
inline constexpr uint32_t kMaxPathsPerChunkUser = 1000;
inline constexpr size_t kChunkUsersAnswerBytes = 2u << 20;

}  // namespace sluice::meta
