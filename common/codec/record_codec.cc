#include "common/codec/record_codec.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "common/codec/codec_limits.h"

namespace sluice {
namespace {

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// One context per thread: creating a ZSTD_CCtx costs more than compressing a
// small record, and uploads compress on every core at once.
ZSTD_CCtx* threadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx(ZSTD_createCCtx());
  return cctx.get();
}

ZSTD_DCtx* threadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  return dctx.get();
}

// The name errors carry, built only when there is an error to report.
struct NameRef {
  std::string_view given;
  const RecordHash& hash;
  std::string str() const { return given.empty() ? recordName(hash) : std::string(given); }
};

// Every check that needs no decompression and no allocation: the cap, the
// codec, the size the stored form declares, and that a zstd record is
// exactly one frame.
Status checkStored(std::span<const uint8_t> stored, Codec codec, uint32_t raw_size,
                   const NameRef& name) {
  if (raw_size > kMaxRecordSizeCap) {
    return corruption(name.str() + ": raw size " + std::to_string(raw_size) + " exceeds the " +
                      std::to_string(kMaxRecordSizeCap) + "-byte record cap");
  }
  switch (codec) {
    case Codec::kRaw:
      if (stored.size() != raw_size) {
        return corruption(name.str() + ": raw record is " + std::to_string(stored.size()) +
                          " bytes stored but " + std::to_string(raw_size) + " expected");
      }
      return Status::ok();
    case Codec::kZstd: {
      unsigned long long content = ZSTD_getFrameContentSize(stored.data(), stored.size());
      if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN) {
        return corruption(name.str() + ": stored bytes (" + std::to_string(stored.size()) +
                          ") are not a zstd frame with a known content size");
      }
      if (content != raw_size) {
        return corruption(name.str() + ": zstd frame holds " + std::to_string(content) +
                          " bytes but the record is " + std::to_string(raw_size));
      }
      // Exactly one frame: trailing bytes or a second frame mean the stored
      // range is not the one that was written.
      size_t frame = ZSTD_findFrameCompressedSize(stored.data(), stored.size());
      if (ZSTD_isError(frame) || frame != stored.size()) {
        return corruption(name.str() + ": zstd frame is truncated or followed by extra bytes (" +
                          std::to_string(stored.size()) + " stored)");
      }
      return Status::ok();
    }
  }
  return corruption(name.str() + ": unknown codec " + std::to_string(static_cast<unsigned>(codec)));
}

// Fills out[0, raw_size) from a record that passed checkStored, then
// verifies the hash. REQUIRES out.size() >= raw_size.
Status decodeChecked(std::span<const uint8_t> stored, Codec codec, uint32_t raw_size,
                     const RecordHash& expected_hash, uint8_t* out, const NameRef& name) {
  if (codec == Codec::kZstd) {
    ZSTD_DCtx* dctx = threadDCtx();
    if (dctx == nullptr) return internalError(name.str() + ": cannot allocate a zstd context");
    size_t got = ZSTD_decompressDCtx(dctx, out, raw_size, stored.data(), stored.size());
    if (ZSTD_isError(got)) {
      return corruption(name.str() + ": zstd: " + ZSTD_getErrorName(got));
    }
    if (got != raw_size) {
      return corruption(name.str() + ": zstd produced " + std::to_string(got) +
                        " bytes, expected " + std::to_string(raw_size));
    }
  } else if (raw_size > 0) {
    std::memcpy(out, stored.data(), raw_size);
  }
  Hash128 got = Hash128::of(out, raw_size);
  if (got != expected_hash) {
    return checksumMismatch(name.str() + ": decoded bytes hash to " + got.toHex() +
                            "; the stored copy is damaged, read another replica");
  }
  return Status::ok();
}

}  // namespace

std::optional<Codec> codecFromByte(uint8_t raw) {
  switch (raw) {
    case static_cast<uint8_t>(Codec::kRaw):
      return Codec::kRaw;
    case static_cast<uint8_t>(Codec::kZstd):
      return Codec::kZstd;
    default:
      return std::nullopt;
  }
}

std::string_view codecName(Codec codec) {
  switch (codec) {
    case Codec::kRaw:
      return "raw";
    case Codec::kZstd:
      return "zstd";
  }
  return "unknown";
}

std::string recordName(const RecordHash& hash, const std::optional<ChunkId>& chunk) {
  std::string name = "record " + hash.toHex();
  if (chunk) name += " in chunk " + chunk->toHex();
  return name;
}

Result<EncodedRecord> encodeRecord(std::span<const uint8_t> raw, const EncodeOptions& options) {
  if (raw.size() > kMaxRecordSizeCap) {
    return Status(StatusCode::kTooLarge,
                  "record of " + std::to_string(raw.size()) + " bytes exceeds the " +
                      std::to_string(kMaxRecordSizeCap) + "-byte record cap; split it first");
  }
  if (options.zstd_level < 1 || options.zstd_level > ZSTD_maxCLevel()) {
    return invalidArgument("zstd level " + std::to_string(options.zstd_level) + " is outside [1, " +
                           std::to_string(ZSTD_maxCLevel()) + "]");
  }
  if (!(options.min_saving >= 0.0 && options.min_saving < 1.0)) {
    return invalidArgument("min_saving " + std::to_string(options.min_saving) +
                           " is outside [0, 1)");
  }

  EncodedRecord rec;
  rec.raw_size = static_cast<uint32_t>(raw.size());
  rec.hash = Hash128::of(raw);

  // The largest zstd output worth keeping; anything that does not fit is
  // stored raw, so compress straight into a buffer of that size and let zstd
  // stop early when it overflows.
  size_t saving =
      static_cast<size_t>(std::ceil(static_cast<double>(raw.size()) * options.min_saving));
  size_t limit = options.compress ? raw.size() - std::min(saving, raw.size()) : 0;
  if (limit > 0) {
    ZSTD_CCtx* cctx = threadCCtx();
    if (cctx == nullptr) return internalError("cannot allocate a zstd compression context");
    // Compress into a per-thread scratch buffer (no zero-fill, reused) and
    // copy out only what is kept, so a kept record owns no slack capacity.
    // The scratch grows to the largest record this thread has encoded.
    thread_local std::unique_ptr<uint8_t[]> scratch;
    thread_local size_t scratch_size = 0;
    if (scratch_size < limit) {
      scratch.reset(new uint8_t[limit]);
      scratch_size = limit;
    }
    // A previous record that overflowed its limit leaves the session open.
    size_t r = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only);
    if (!ZSTD_isError(r))
      r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, options.zstd_level);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(r)) r = ZSTD_compress2(cctx, scratch.get(), limit, raw.data(), raw.size());
    if (!ZSTD_isError(r)) {
      rec.codec = Codec::kZstd;
      rec.stored.assign(scratch.get(), scratch.get() + r);
      return rec;
    }
    if (ZSTD_getErrorCode(r) != ZSTD_error_dstSize_tooSmall) {
      return internalError(recordName(rec.hash) +
                           ": zstd compression failed: " + ZSTD_getErrorName(r));
    }
  }
  rec.codec = Codec::kRaw;
  rec.stored.assign(raw.begin(), raw.end());
  return rec;
}

Status decodeRecordInto(std::span<const uint8_t> stored, Codec codec, uint32_t raw_size,
                        const RecordHash& expected_hash, std::span<uint8_t> out,
                        std::string_view record_name) {
  NameRef name{record_name, expected_hash};
  SLUICE_RETURN_IF_ERROR(checkStored(stored, codec, raw_size, name));
  if (out.size() < raw_size) {
    return invalidArgument(name.str() + ": output buffer of " + std::to_string(out.size()) +
                           " bytes is smaller than the record (" + std::to_string(raw_size) + ")");
  }
  return decodeChecked(stored, codec, raw_size, expected_hash, out.data(), name);
}

Result<std::vector<uint8_t>> decodeRecord(std::span<const uint8_t> stored, Codec codec,
                                          uint32_t raw_size, const RecordHash& expected_hash,
                                          std::string_view record_name) {
  NameRef name{record_name, expected_hash};
  // Allocates only once the stored form has declared exactly raw_size bytes,
  // and raw_size is within the cap.
  SLUICE_RETURN_IF_ERROR(checkStored(stored, codec, raw_size, name));
  std::vector<uint8_t> out(raw_size);
  SLUICE_RETURN_IF_ERROR(decodeChecked(stored, codec, raw_size, expected_hash, out.data(), name));
  return out;
}

}  // namespace sluice
