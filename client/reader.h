// DatasetReader: reads files of one committed version of a dataset.
//
// open() pins the version (a tag is resolved once, so a moving `latest`
// never changes what an open reader sees). read() fetches the records that
// overlap the range from the storage nodes in parallel, each as one byte
// range of its chunk, verifies every record after decoding, and fails over
// to the next replica on a dead node, a timeout or a checksum error. A read
// returns correct bytes or an error, never wrong bytes.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "client/buffer_pool.h"
#include "client/cluster.h"
#include "client/file_info.h"
#include "client/record_cache.h"
#include "common/core/result.h"

namespace sluice::client {

struct ReaderOptions {
  size_t slot_size = 1u << 20;  // one record's stored bytes; larger ones get their own buffer
  size_t slots = 32;            // records in flight per reader
  // Consulted before the cluster, and given every record fetched; must
  // outlive the reader. Null: no cache.
  RecordCache* cache = nullptr;
};

struct ReaderStats {
  std::atomic<uint64_t> records_fetched{0};
  std::atomic<uint64_t> bytes_fetched{0};  // stored bytes moved from nodes
  std::atomic<uint64_t> failovers{0};      // a replica failed and the next one served
  std::atomic<uint64_t> cache_hits{0};     // records served by the cache
};

class DatasetReader {
 public:
  // `version` is "v<n>" or a tag. kNotFound naming the dataset or version.
  static Result<std::unique_ptr<DatasetReader>> open(Cluster& cluster, const std::string& dataset,
                                                     const std::string& version,
                                                     const ReaderOptions& options = {});

  const std::string& dataset() const { return dataset_; }
  uint32_t version() const { return version_; }
  uint32_t replication() const { return replication_; }

  // A file's metadata with all its extents; kNotFound naming the path.
  Result<FileInfo> stat(const std::string& path);
  // Many at once; missing paths fail. Paths go to meta in batches of at
  // most kLookupBatchPaths and kLookupBatchBytes (a request must fit a
  // frame), and a batch whose answers do not fit one reply is answered in
  // parts, so any number of paths of any length can be asked.
  Result<std::vector<FileInfo>> statMany(const std::vector<std::string>& paths);
  static constexpr size_t kLookupBatchPaths = 10000;  // meta's kMaxPathsPerLookup
  static constexpr size_t kLookupBatchBytes = 1u << 20;

  // Reads [offset, offset + out.size()) of `file` into `out`; returns the
  // bytes read (fewer at the end of the file, 0 past it).
  Result<size_t> read(const FileInfo& file, uint64_t offset, std::span<uint8_t> out);
  Result<std::vector<uint8_t>> readAll(const FileInfo& file);

  const ReaderStats& stats() const { return stats_; }

 private:
  DatasetReader(Cluster& cluster, std::string dataset, uint64_t dataset_id, uint32_t version,
                uint32_t replication, std::unique_ptr<BufferPool> pool, RecordCache* cache);
  // Decodes `stored` (extent e's bytes) into the part of `out` that the read
  // range [offset, offset + out.size()) shares with the extent, and offers
  // the record to the cache.
  Status decodeExtent(const FileExtent& e, std::span<const uint8_t> stored, uint64_t offset,
                      std::span<uint8_t> out, const std::string& name);
  // `path`'s FileInfo from its Lookup result, its extents completed.
  Result<FileInfo> fileInfoOf(const std::string& path, const wire::meta::LookupResultT* r);
  Status completeExtents(FileInfo& file);
  void countFetch(uint64_t stored_bytes);
  // Fetches and decodes one extent into `out` (exactly raw_length bytes)
  // from the replicas other than `failed`, which already answered
  // `first_error`, in turn. When every replica failed in a way that may pass
  // (a timeout, an unreachable node, a chunk no longer where the map said),
  // reads the map again and makes another round, up to kFailoverRounds: a
  // node stalled for a moment or a stripe that moved costs time, not an
  // error to the training job.
  Status fetchWithFailover(const FileExtent& extent, std::span<uint8_t> out, NodeId failed,
                           Status first_error);
  // Why this reader's version is gone from meta (deleted, or its dataset
  // deleted and created again), if it is: then gc may have collected its
  // chunks, and a record no replica has is that, not lost data. Empty when
  // the version is still there or meta cannot say.
  std::string whyVersionIsGone();

  Cluster& cluster_;
  const std::string dataset_;
  const uint64_t dataset_id_;  // 0: an older meta that does not say
  const uint32_t version_;
  const uint32_t replication_;
  std::unique_ptr<BufferPool> pool_;
  RecordCache* const cache_;
  ReaderStats stats_;
};

}  // namespace sluice::client
