#include "metadata/encoding.h"

namespace sluice::meta {

void putBe32(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out.append(b, 4);
}
void putBe64(std::string& out, uint64_t v) {
  putBe32(out, static_cast<uint32_t>(v >> 32));
  putBe32(out, static_cast<uint32_t>(v));
}
void putBeHash(std::string& out, const Hash128& h) {
  putBe64(out, h.hi);
  putBe64(out, h.lo);
}
uint32_t getBe32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} << 24 | uint32_t{u[1]} << 16 | uint32_t{u[2]} << 8 | uint32_t{u[3]};
}
uint64_t getBe64(const char* p) { return uint64_t{getBe32(p)} << 32 | getBe32(p + 4); }
Hash128 getBeHash(const char* p) { return Hash128{getBe64(p), getBe64(p + 8)}; }

std::string versionKey(uint64_t dataset_id, uint32_t version) {
  std::string k;
  k.reserve(12);
  putBe64(k, dataset_id);
  putBe32(k, version);
  return k;
}
std::string direntKey(uint64_t dataset_id, uint32_t version, uint64_t parent,
                      std::string_view name) {
  std::string k;
  k.reserve(20 + name.size());
  putBe64(k, dataset_id);
  putBe32(k, version);
  putBe64(k, parent);
  k.append(name);
  return k;
}
std::string tagKey(uint64_t dataset_id, std::string_view tag) {
  std::string k = datasetPrefix(dataset_id);
  k.append(tag);
  return k;
}
std::string recordKey(uint64_t dataset_id, const Hash128& record) {
  std::string k;
  k.reserve(24);
  putBe64(k, dataset_id);
  putBeHash(k, record);
  return k;
}
std::string versionChunkKey(uint64_t dataset_id, uint32_t version, const Hash128& chunk) {
  std::string k;
  k.reserve(28);
  putBe64(k, dataset_id);
  putBe32(k, version);
  putBeHash(k, chunk);
  return k;
}
std::string chunkUserKey(const Hash128& chunk, uint64_t dataset_id, uint32_t version) {
  std::string k = chunkKey(chunk);
  putBe64(k, dataset_id);
  putBe32(k, version);
  return k;
}
std::string chunkKey(const Hash128& chunk) {
  std::string k;
  putBeHash(k, chunk);
  return k;
}
std::string nodeKey(uint64_t id) {
  std::string k;
  putBe64(k, id);
  return k;
}
std::string datasetPrefix(uint64_t dataset_id) {
  std::string k;
  putBe64(k, dataset_id);
  return k;
}

bool ValueReader::str(std::string* s) {
  uint32_t n = 0;
  if (!u32(&n) || remaining() < n) return false;
  s->assign(v_.data() + pos_, n);
  pos_ += n;
  return true;
}

Status ValueReader::error() const {
  return corruption(std::string("metadata ") + what_ + " record of " + std::to_string(v_.size()) +
                    " bytes is truncated");
}

std::string encodeDataset(const DatasetRecord& d) {
  ValueWriter w;
  w.u64(d.id);
  w.u8(d.replication);
  w.u32(d.chunk_size);
  w.u8(static_cast<uint8_t>(d.compression));
  w.i64(d.created_ms);
  w.u32(d.next_version);
  return std::move(w.out());
}

Result<DatasetRecord> decodeDataset(std::string_view v) {
  ValueReader r(v, "dataset");
  DatasetRecord d;
  uint8_t comp = 0;
  if (!(r.u64(&d.id) && r.u8(&d.replication) && r.u32(&d.chunk_size) && r.u8(&comp) &&
        r.i64(&d.created_ms) && r.u32(&d.next_version))) {
    return r.error();
  }
  d.compression = static_cast<CompressionPolicy>(comp);
  return d;
}

std::string encodeVersion(const VersionRecord& v) {
  ValueWriter w;
  w.u8(static_cast<uint8_t>(v.state));
  w.i64(v.created_ms);
  w.i64(v.modified_ms);
  w.i64(v.committed_ms);
  w.u64(v.file_count);
  w.u64(v.logical_bytes);
  w.u64(v.stored_bytes);
  w.u64(v.next_dir_id);
  w.str(v.message);
  w.u64(v.gc_epoch);
  return std::move(w.out());
}

Result<VersionRecord> decodeVersion(std::string_view v) {
  ValueReader r(v, "version");
  VersionRecord out;
  uint8_t state = 0;
  if (!(r.u8(&state) && r.i64(&out.created_ms) && r.i64(&out.modified_ms) &&
        r.i64(&out.committed_ms) && r.u64(&out.file_count) && r.u64(&out.logical_bytes) &&
        r.u64(&out.stored_bytes) && r.u64(&out.next_dir_id) && r.str(&out.message))) {
    return r.error();
  }
  if (state > static_cast<uint8_t>(VersionState::kAborted)) {
    return corruption("metadata version record: unknown state " + std::to_string(state));
  }
  out.state = static_cast<VersionState>(state);
  // Records written before the field existed end here.
  if (r.remaining() > 0 && !r.u64(&out.gc_epoch)) return r.error();
  return out;
}

std::string encodeNode(const NodeRecord& n) {
  ValueWriter w;
  w.str(n.address);
  w.u64(n.capacity_bytes);
  w.u64(n.used_bytes);
  w.u64(n.chunk_count);
  w.u64(n.error_count);
  w.u8(static_cast<uint8_t>(n.state));
  w.i64(n.last_heartbeat_ms);
  w.u8(n.drain_requested ? 1 : 0);
  return std::move(w.out());
}

Result<NodeRecord> decodeNode(uint64_t id, std::string_view v) {
  ValueReader r(v, "node");
  NodeRecord n;
  n.id = id;
  uint8_t state = 0;
  if (!(r.str(&n.address) && r.u64(&n.capacity_bytes) && r.u64(&n.used_bytes) &&
        r.u64(&n.chunk_count) && r.u64(&n.error_count) && r.u8(&state) &&
        r.i64(&n.last_heartbeat_ms))) {
    return r.error();
  }
  if (state > static_cast<uint8_t>(NodeState::kRemoved)) {
    return corruption("metadata node record: unknown state " + std::to_string(state));
  }
  n.state = static_cast<NodeState>(state);
  // Records written before the field existed end here.
  uint8_t drain = 0;
  if (r.remaining() > 0 && !r.u8(&drain)) return r.error();
  n.drain_requested = drain != 0;
  return n;
}

std::string encodeDirEntry(uint64_t dir_id) {
  ValueWriter w;
  w.u8(static_cast<uint8_t>(EntryType::kDirectory));
  w.u64(dir_id);
  return std::move(w.out());
}

std::string encodeExplicitDirEntry(uint64_t dir_id, uint32_t mode, int64_t mtime_ns) {
  ValueWriter w;
  w.u8(static_cast<uint8_t>(EntryType::kDirectory));
  w.u64(dir_id);
  w.u32(mode);
  w.i64(mtime_ns);
  return std::move(w.out());
}

std::string encodeSymlinkEntry(uint32_t mode, int64_t mtime_ns, std::string_view target) {
  ValueWriter w;
  w.u8(static_cast<uint8_t>(EntryType::kSymlink));
  w.u32(mode);
  w.i64(mtime_ns);
  w.str(target);
  return std::move(w.out());
}

namespace {
void packExtent(ValueWriter& w, const Extent& e) {
  w.hash(e.record);
  w.hash(e.chunk);
  w.u32(e.raw_length);
  w.u32(e.chunk_offset);
  w.u32(e.stored_length);
  w.u8(e.codec);
}
void writeFileHeader(ValueWriter& w, uint64_t size, uint32_t mode, int64_t mtime_ns,
                     uint32_t count) {
  w.u8(static_cast<uint8_t>(EntryType::kFile));
  w.u64(size);
  w.u32(mode);
  w.i64(mtime_ns);
  w.u32(count);
}
}  // namespace

std::string encodeFileEntry(uint64_t size, uint32_t mode, int64_t mtime_ns,
                            const std::vector<Extent>& extents) {
  ValueWriter w;
  w.out().reserve(kFileHeaderSize + extents.size() * kPackedExtentSize);
  writeFileHeader(w, size, mode, mtime_ns, static_cast<uint32_t>(extents.size()));
  for (const Extent& e : extents) packExtent(w, e);
  return std::move(w.out());
}

std::string appendFileExtents(std::string_view existing, uint64_t size, uint32_t mode,
                              int64_t mtime_ns, const std::vector<Extent>& extents) {
  uint32_t old_count = 0;
  std::memcpy(&old_count, existing.data() + 1 + 8 + 4 + 8, 4);
  ValueWriter w;
  w.out().reserve(existing.size() + extents.size() * kPackedExtentSize);
  writeFileHeader(w, size, mode, mtime_ns, old_count + static_cast<uint32_t>(extents.size()));
  w.raw(existing.data() + kFileHeaderSize, existing.size() - kFileHeaderSize);
  for (const Extent& e : extents) packExtent(w, e);
  return std::move(w.out());
}

Result<DecodedEntry> decodeEntry(std::string_view v) {
  ValueReader r(v, "directory entry");
  DecodedEntry e;
  uint8_t type = 0;
  if (!r.u8(&type)) return r.error();
  if (type == static_cast<uint8_t>(EntryType::kDirectory)) {
    e.type = EntryType::kDirectory;
    if (!r.u64(&e.dir_id)) return r.error();
    e.mode = 0755;
    if (r.remaining() == 0) return e;
    if (!(r.u32(&e.mode) && r.i64(&e.mtime_ns)) || r.remaining() != 0) {
      return corruption("metadata directory entry of " + std::to_string(v.size()) +
                        " bytes: bad size");
    }
    e.explicit_dir = true;
    return e;
  }
  if (type == static_cast<uint8_t>(EntryType::kSymlink)) {
    e.type = EntryType::kSymlink;
    uint32_t length = 0;
    if (!(r.u32(&e.mode) && r.i64(&e.mtime_ns) && r.u32(&length))) return r.error();
    if (r.remaining() != length) {
      return corruption("metadata symlink entry: target of " + std::to_string(length) +
                        " bytes but " + std::to_string(r.remaining()) + " bytes left");
    }
    e.symlink_target = v.substr(v.size() - length);
    e.size = length;
    return e;
  }
  if (type != static_cast<uint8_t>(EntryType::kFile)) {
    return corruption("metadata directory entry: unknown type " + std::to_string(type));
  }
  if (!(r.u64(&e.size) && r.u32(&e.mode) && r.i64(&e.mtime_ns) && r.u32(&e.extent_count))) {
    return r.error();
  }
  if (r.remaining() != uint64_t{e.extent_count} * kPackedExtentSize) {
    return corruption("metadata file entry: " + std::to_string(e.extent_count) +
                      " extents but " + std::to_string(r.remaining()) + " bytes");
  }
  e.packed_extents = v.substr(kFileHeaderSize);
  return e;
}

namespace {
Extent unpackOne(const char* p) {
  Extent x;
  std::memcpy(&x.record.hi, p, 8);
  std::memcpy(&x.record.lo, p + 8, 8);
  std::memcpy(&x.chunk.hi, p + 16, 8);
  std::memcpy(&x.chunk.lo, p + 24, 8);
  std::memcpy(&x.raw_length, p + 32, 4);
  std::memcpy(&x.chunk_offset, p + 36, 4);
  std::memcpy(&x.stored_length, p + 40, 4);
  x.codec = static_cast<uint8_t>(p[44]);
  return x;
}
}  // namespace

std::vector<Extent> unpackExtents(const DecodedEntry& e, uint32_t first, uint32_t count) {
  std::vector<Extent> out;
  if (first >= e.extent_count) return out;
  count = std::min(count, e.extent_count - first);
  const char* base = e.packed_extents.data();
  uint64_t offset = 0;
  for (uint32_t i = 0; i < first; ++i) {
    uint32_t raw = 0;
    std::memcpy(&raw, base + i * kPackedExtentSize + 32, 4);
    offset += raw;
  }
  out.reserve(count);
  for (uint32_t i = first; i < first + count; ++i) {
    Extent x = unpackOne(base + size_t{i} * kPackedExtentSize);
    x.file_offset = offset;
    offset += x.raw_length;
    out.push_back(x);
  }
  return out;
}

std::string encodeLocation(const RecordLocation& loc) {
  ValueWriter w;
  w.hash(loc.chunk);
  w.u32(loc.chunk_offset);
  w.u32(loc.stored_length);
  w.u32(loc.raw_length);
  w.u8(loc.codec);
  return std::move(w.out());
}

Result<RecordLocation> decodeLocation(std::string_view v) {
  ValueReader r(v, "record location");
  RecordLocation loc;
  loc.found = true;
  if (!(r.hash(&loc.chunk) && r.u32(&loc.chunk_offset) && r.u32(&loc.stored_length) &&
        r.u32(&loc.raw_length) && r.u8(&loc.codec))) {
    return r.error();
  }
  return loc;
}

}  // namespace sluice::meta
