#include "common/codec/record_splitter.h"

#include <algorithm>

#include "common/codec/codec_limits.h"

namespace sluice {

Result<std::vector<std::span<const uint8_t>>> splitIntoRecords(std::span<const uint8_t> file,
                                                               size_t max_record_size) {
  SLUICE_RETURN_IF_ERROR(validateMaxRecordSize(max_record_size));
  std::vector<std::span<const uint8_t>> records;
  records.reserve(recordCountFor(file.size(), max_record_size));
  for (size_t at = 0; at < file.size(); at += max_record_size) {
    records.push_back(file.subspan(at, std::min(max_record_size, file.size() - at)));
  }
  return records;
}

}  // namespace sluice
