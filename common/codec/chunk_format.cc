#include "common/codec/chunk_format.h"

#include <xxhash.h>

namespace sluice::chunk_format {

uint64_t tableChecksum(std::span<const uint8_t> header_and_table) {
  uint64_t seed = XXH3_64bits(header_and_table.data(), kTableChecksumAt);
  return XXH3_64bits_withSeed(header_and_table.data() + kHeaderSize,
                              header_and_table.size() - kHeaderSize, seed);
}

}  // namespace sluice::chunk_format
