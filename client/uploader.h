// Uploading a directory as a new version of a dataset.
//
// The tree is walked once, then processed in batches of about
// UploadOptions::batch_bytes: files are read and cut into records (fixed
// max_record_size cuts, so unchanged regions keep their records across
// versions), every record is hashed, the dataset's record index is asked
// which records it already stores, and only new content is compressed, packed
// into chunks and put to every replica of each chunk's stripe, many puts in
// flight. Once a batch's chunks are acknowledged by all replicas its files are
// added to the draft; the draft is committed at the end. Readers never see a
// half-uploaded version.
//
// An interrupted upload leaves its draft behind; running it again starts a
// new draft and re-sends only the records the cluster does not already have
// (the record index includes live drafts).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "client/cluster.h"
#include "client/progress.h"
#include "common/core/result.h"

namespace sluice::client {

struct UploadOptions {
  std::string message;
  std::string tag;           // also set this tag on the new version
  bool keep_latest = false;  // do not move `latest`
  size_t max_record_size = 1u << 20;
  int zstd_level = 3;
  size_t threads = 0;          // 0: one per core
  size_t batch_bytes = 64u << 20;
  size_t batch_files = 4096;
  size_t chunks_in_flight = 16;
  bool show_progress = false;  // a ProgressMeter line on stderr
};

struct UploadReport {
  std::string dataset;
  uint32_t version = 0;
  uint64_t files = 0;
  uint64_t directories = 0;
  uint64_t symlinks = 0;
  uint64_t logical_bytes = 0;   // bytes of all files
  uint64_t records = 0;         // records of all files
  uint64_t reused_records = 0;  // already stored by the dataset (or repeated in this upload)
  uint64_t new_raw_bytes = 0;   // raw bytes of records stored anew
  uint64_t new_stored_bytes = 0;  // their stored (compressed) bytes
  uint64_t chunks = 0;          // chunks written
  uint64_t replaced_chunks = 0;  // placed off their natural stripe (a replica was down or failed)
  uint64_t bytes_sent = 0;      // chunk bytes times replicas
  double seconds = 0;
  std::vector<std::string> warnings;
};

Result<UploadReport> uploadDirectory(Cluster& cluster, const std::string& source_dir,
                                     const std::string& dataset, const UploadOptions& options);

}  // namespace sluice::client
