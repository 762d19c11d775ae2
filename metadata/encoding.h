// Key and value layouts of the metadata databases (see Db in lmdb_env.h).
//
// Keys are big-endian so LMDB's bytewise order is numeric order; values are
// little-endian packed records. Decoders check every length and return
// kCorruption rather than read past a value.
//
//   versions        be64 dataset id | be32 version
//   tags            be64 dataset id | tag
//   dirents         be64 dataset id | be32 version | be64 parent dir id | name
//   records         be64 dataset id | record hash (be64 hi, be64 lo)
//   version_chunks  be64 dataset id | be32 version | chunk id
//   chunk_users     chunk id | be64 dataset id | be32 version
//   garbage         chunk id
//   nodes           be64 node id
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/hash128.h"
#include "common/core/result.h"
#include "metadata/types.h"

namespace sluice::meta {

inline constexpr uint64_t kRootDirId = 1;
inline constexpr size_t kPackedExtentSize = 45;
inline constexpr size_t kFileHeaderSize = 1 + 8 + 4 + 8 + 4;  // type size mode mtime count

void putBe32(std::string& out, uint32_t v);
void putBe64(std::string& out, uint64_t v);
void putBeHash(std::string& out, const Hash128& h);
uint32_t getBe32(const char* p);
uint64_t getBe64(const char* p);
Hash128 getBeHash(const char* p);

std::string versionKey(uint64_t dataset_id, uint32_t version);
std::string direntKey(uint64_t dataset_id, uint32_t version, uint64_t parent, std::string_view name);
std::string tagKey(uint64_t dataset_id, std::string_view tag);
std::string recordKey(uint64_t dataset_id, const Hash128& record);
std::string versionChunkKey(uint64_t dataset_id, uint32_t version, const Hash128& chunk);
std::string chunkUserKey(const Hash128& chunk, uint64_t dataset_id, uint32_t version);
std::string chunkKey(const Hash128& chunk);
std::string nodeKey(uint64_t id);
std::string datasetPrefix(uint64_t dataset_id);

// Little-endian value writer and bounds-checked reader.
class ValueWriter {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void i64(int64_t v) { raw(&v, 8); }
  void hash(const Hash128& h) { u64(h.hi); u64(h.lo); }
  void str(std::string_view s) { u32(static_cast<uint32_t>(s.size())); out_.append(s); }
  void raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class ValueReader {
 public:
  ValueReader(std::string_view v, const char* what) : v_(v), what_(what) {}
  bool u8(uint8_t* v) { return take(v, 1); }
  bool u32(uint32_t* v) { return take(v, 4); }
  bool u64(uint64_t* v) { return take(v, 8); }
  bool i64(int64_t* v) { return take(v, 8); }
  bool hash(Hash128* h) { return u64(&h->hi) && u64(&h->lo); }
  bool str(std::string* s);
  size_t remaining() const { return v_.size() - pos_; }
  Status error() const;  // kCorruption naming the record type

 private:
  bool take(void* p, size_t n) {
    if (v_.size() - pos_ < n) return false;
    std::memcpy(p, v_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  std::string_view v_;
  size_t pos_ = 0;
  const char* what_;
};

struct DatasetRecord {
  uint64_t id = 0;
  uint8_t replication = 0;
  uint32_t chunk_size = 0;
  CompressionPolicy compression = CompressionPolicy::kAuto;
  int64_t created_ms = 0;
  uint32_t next_version = 1;
};
std::string encodeDataset(const DatasetRecord& d);
Result<DatasetRecord> decodeDataset(std::string_view v);

struct VersionRecord {
  // Meta's gc epoch when the draft was begun (0 in records made before it
  // existed): see MetaStore::pruneTombstones.
  uint64_t gc_epoch = 0;
  VersionState state = VersionState::kDraft;
  int64_t created_ms = 0;
  int64_t modified_ms = 0;
  int64_t committed_ms = 0;
  uint64_t file_count = 0;
  uint64_t logical_bytes = 0;
  uint64_t stored_bytes = 0;
  uint64_t next_dir_id = kRootDirId + 1;
  std::string message;
};
std::string encodeVersion(const VersionRecord& v);
Result<VersionRecord> decodeVersion(std::string_view v);

std::string encodeNode(const NodeRecord& n);
Result<NodeRecord> decodeNode(uint64_t id, std::string_view v);

// A dirent value is one of:
//   file       u8 0 | u64 size | u32 mode | i64 mtime_ns | u32 count | packed extents
//              (file offsets are implied by the running sum of raw lengths)
//   directory  u8 1 | u64 dir id [| u32 mode | i64 mtime_ns]
//              without the attributes: created implicitly by a path below
//              it; with them: explicit (uploaded as a directory entry)
//   symlink    u8 2 | u32 mode | i64 mtime_ns | u32 length | target bytes
std::string encodeDirEntry(uint64_t dir_id);
std::string encodeExplicitDirEntry(uint64_t dir_id, uint32_t mode, int64_t mtime_ns);
std::string encodeSymlinkEntry(uint32_t mode, int64_t mtime_ns, std::string_view target);
std::string encodeFileEntry(uint64_t size, uint32_t mode, int64_t mtime_ns,
                            const std::vector<Extent>& extents);
// Appends `extents` to an encoded file entry, updating its attributes.
std::string appendFileExtents(std::string_view existing, uint64_t size, uint32_t mode,
                              int64_t mtime_ns, const std::vector<Extent>& extents);

struct DecodedEntry {
  EntryType type = EntryType::kFile;
  uint64_t dir_id = 0;  // directories
  bool explicit_dir = false;  // directories: mode and mtime_ns were uploaded
  uint64_t size = 0;
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  uint32_t extent_count = 0;
  std::string_view packed_extents;  // extent_count * kPackedExtentSize bytes
  std::string_view symlink_target;  // symlinks; size is its length
};
Result<DecodedEntry> decodeEntry(std::string_view v);
// Extents [first, first + count) of a decoded file; file offsets filled by
// summing the raw lengths before `first`.
std::vector<Extent> unpackExtents(const DecodedEntry& e, uint32_t first, uint32_t count);

std::string encodeLocation(const RecordLocation& loc);
Result<RecordLocation> decodeLocation(std::string_view v);

}  // namespace sluice::meta
