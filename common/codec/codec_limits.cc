#include "common/codec/codec_limits.h"

#include <string>

namespace sluice {

Status validateMaxRecordSize(size_t max_record_size) {
  if (max_record_size < kMinRecordSizeLimit || max_record_size > kMaxRecordSizeCap) {
    return invalidArgument("max_record_size " + std::to_string(max_record_size) + " is outside [" +
                           std::to_string(kMinRecordSizeLimit) + ", " +
                           std::to_string(kMaxRecordSizeCap) + "] bytes; pick a value in range");
  }
  return Status::ok();
}

Status validateChunkSize(size_t chunk_size) {
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSizeCap) {
    return invalidArgument("chunk_size " + std::to_string(chunk_size) + " is outside [" +
                           std::to_string(kMinChunkSize) + ", " + std::to_string(kMaxChunkSizeCap) +
                           "] bytes; pick a value in range");
  }
  return Status::ok();
}

}  // namespace sluice
