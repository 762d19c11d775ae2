// MetaStore: datasets, versions (drafts, batch add, commit, abort, delete)
// and tags.
#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "metadata/encoding.h"
#include "metadata/limits.h"
#include "metadata/meta_store.h"
#include "metadata/names.h"
#include "metadata/store_internal.h"

namespace sluice::meta {

using namespace internal;

namespace {

uint32_t clampLimit(uint32_t limit) {
  if (limit == 0) return kDefaultPageLimit;
  return std::min(limit, kMaxPageLimit);
}

std::string u32Value(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

Result<DatasetInfo> toDatasetInfo(const Txn& txn, const DatasetHandle& ds) {
  DatasetInfo info;
  info.name = ds.name;
  info.id = ds.rec.id;
  info.replication = ds.rec.replication;
  info.chunk_size = ds.rec.chunk_size;
  info.compression = ds.rec.compression;
  info.created_ms = ds.rec.created_ms;
  info.next_version = ds.rec.next_version;
  std::string prefix = datasetPrefix(ds.rec.id);
  for (Db db : {Db::kVersions, Db::kTags}) {
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, db));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(prefix));
    uint32_t n = 0;
    while (ok && startsWith(c.key(), prefix)) {
      ++n;
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
    (db == Db::kVersions ? info.version_count : info.tag_count) = n;
  }
  return info;
}

// Checks what can be checked without the database: path, mode, extent
// fields and that extents tile [first offset, size) without gaps.
Status validateFile(const FileSpec& f, size_t index) {
  // Messages are built only when a check fails: most files pass, and
  // formatting "files[i]" for each one cost more than the checks.
  auto field = [&] { return "files[" + std::to_string(index) + "]"; };
  if (!validatePath(f.path, "path").isOk()) {
    return validatePath(f.path, field() + ".path");
  }
  if (f.mode > kMaxFileMode) {
    return invalidArgument(field() + ".mode: must be permission bits (<= 07777)");
  }
  if (f.type == EntryType::kDirectory || f.type == EntryType::kSymlink) {
    const char* what = f.type == EntryType::kDirectory ? "a directory" : "a symlink";
    if (!f.extents.empty()) return invalidArgument(field() + ": " + what + " has no extents");
    if (f.append) return invalidArgument(field() + ".append: " + what + " cannot be appended to");
  }
  if (f.type == EntryType::kDirectory) {
    if (f.size != 0) {
      return invalidArgument(field() + ".size: " + std::to_string(f.size) +
                             " but a directory's size is 0");
    }
    if (!f.symlink_target.empty()) {
      return invalidArgument(field() + ".symlink_target: set on a directory");
    }
    return Status::ok();
  }
  if (f.type == EntryType::kSymlink) {
    auto tf = [&] { return field() + ".symlink_target"; };
    if (f.symlink_target.empty()) return invalidArgument(tf() + ": empty");
    if (f.symlink_target.size() > kMaxSymlinkTargetLength) {
      return invalidArgument(tf() + ": longer than " + std::to_string(kMaxSymlinkTargetLength) +
                             " bytes");
    }
    if (f.symlink_target.find('\0') != std::string::npos) return invalidArgument(tf() + ": contains NUL");
    if (f.size != f.symlink_target.size()) {
      return invalidArgument(field() + ".size: " + std::to_string(f.size) +
                             " but a symlink's size is its target's length (" +
                             std::to_string(f.symlink_target.size()) + ")");
    }
    return Status::ok();
  }
  if (f.type != EntryType::kFile) {
    return invalidArgument(field() + ".type: unknown entry type " +
                           std::to_string(static_cast<unsigned>(f.type)));
  }
  if (!f.symlink_target.empty()) return invalidArgument(field() + ".symlink_target: set on a file");
  auto ff = [&] { return field() + " (file '" + f.path + "')"; };
  if (f.extents.empty()) {
    if (f.size != 0 && !f.append) {
      return invalidArgument(ff() + ": size " + std::to_string(f.size) + " but no extents");
    }
    return Status::ok();
  }
  uint64_t offset = f.extents.front().file_offset;
  if (!f.append && offset != 0) return invalidArgument(ff() + ": extents[0].file_offset must be 0");
  for (size_t i = 0; i < f.extents.size(); ++i) {
    const Extent& e = f.extents[i];
    auto ef = [&] { return ff() + " extents[" + std::to_string(i) + "]"; };
    if (e.file_offset != offset) {
      return invalidArgument(ef() + ".file_offset: " + std::to_string(e.file_offset) +
                             " leaves a gap or overlap (expected " + std::to_string(offset) + ")");
    }
    if (e.raw_length == 0 || e.raw_length > kMaxRecordBytes) {
      return invalidArgument(ef() + ".raw_length: must be 1.." + std::to_string(kMaxRecordBytes));
    }
    if (e.stored_length == 0 || e.stored_length > kMaxRecordBytes) {
      return invalidArgument(ef() + ".stored_length: must be 1.." + std::to_string(kMaxRecordBytes));
    }
    if (e.codec > static_cast<uint8_t>(Codec::kZstd)) {
      return invalidArgument(ef() + ".codec: unknown codec " + std::to_string(e.codec));
    }
    if (e.codec == static_cast<uint8_t>(Codec::kNone) && e.stored_length != e.raw_length) {
      return invalidArgument(ef() + ".stored_length: must equal raw_length for an uncompressed record");
    }
    if (uint64_t{e.chunk_offset} + e.stored_length > kMaxChunkSize) {
      return invalidArgument(ef() + ".chunk_offset: record ends past the largest chunk size");
    }
    if (e.chunk.isZero()) return invalidArgument(ef() + ".chunk: zero chunk id");
    offset += e.raw_length;
  }
  if (offset != f.size) {
    return invalidArgument(ff() + ": extents end at " + std::to_string(offset) + " but size is " +
                           std::to_string(f.size));
  }
  return Status::ok();
}

// The state of one addFiles write transaction.
class Adder {
 public:
  Adder(Txn& txn, const DatasetHandle& ds, uint32_t version, VersionRecord& rec)
      : txn_(txn), ds_(ds), version_(version), rec_(rec) {
    dirs_.emplace("", kRootDirId);
  }

  Status add(const FileSpec& f) {
    size_t slash = f.path.rfind('/');
    std::string_view parent = slash == std::string::npos ? std::string_view()
                                                         : std::string_view(f.path).substr(0, slash);
    std::string_view name = slash == std::string::npos ? std::string_view(f.path)
                                                       : std::string_view(f.path).substr(slash + 1);
    SLUICE_ASSIGN_OR_RETURN(uint64_t parent_id, ensureDir(parent, f.path));
    std::string key = direntKey(ds_.rec.id, version_, parent_id, name);
    if (f.type == EntryType::kDirectory) return addDirectory(f, key);
    if (f.type == EntryType::kSymlink) return addSymlink(f, key);
    std::string value = encodeFileEntry(f.size, f.mode, f.mtime_ns, f.extents);
    bool inserted = false;
    std::string_view existing;
    SLUICE_RETURN_IF_ERROR(txn_.insert(Db::kDirents, key, value, &inserted, &existing));
    uint64_t added_bytes = f.size;
    if (!inserted) {
      SLUICE_ASSIGN_OR_RETURN(DecodedEntry old, decodeEntry(existing));
      if (old.type != EntryType::kFile) {
        return alreadyExists("file '" + f.path + "': " + kindOf(old) +
                             " of that name is in the draft");
      }
      if (f.append) {
        uint64_t start = f.extents.empty() ? f.size : f.extents.front().file_offset;
        if (start != old.size || f.size < old.size) {
          return invalidArgument("file '" + f.path + "': appended extents start at " +
                                 std::to_string(start) + " but the file has " +
                                 std::to_string(old.size) + " bytes");
        }
        std::string merged = appendFileExtents(existing, f.size, f.mode, f.mtime_ns, f.extents);
        SLUICE_RETURN_IF_ERROR(txn_.put(Db::kDirents, key, merged));
        added_bytes = f.size - old.size;
      } else if (existing == value) {
        return Status::ok();  // a retried batch: already there, count nothing
      } else {
        return alreadyExists("file '" + f.path +
                             "' is already in the draft with different attributes or content");
      }
    } else {
      // Nothing precedes an append to a new file: it must start the file at
      // 0, or be empty; else the version would hold a file whose bytes are
      // missing.
      if (f.append && (f.extents.empty() ? f.size != 0 : f.extents.front().file_offset != 0)) {
        return invalidArgument("file '" + f.path + "': append to a file not in the draft");
      }
      ++rec_.file_count;
    }
    rec_.logical_bytes += added_bytes;
    for (const Extent& e : f.extents) SLUICE_RETURN_IF_ERROR(addExtent(e));
    return Status::ok();
  }

  // Applies the batch's record-index updates in key order: random record
  // hashes inserted in sorted order touch each B-tree page once, with the
  // path still in cache.
  Status finish() {
    // (hi, lo) order is the keys' byte order: they differ only in the hash.
    std::sort(pending_.begin(), pending_.end(), [](const Pending& a, const Pending& b) {
      return a.record.hi != b.record.hi ? a.record.hi < b.record.hi : a.record.lo < b.record.lo;
    });
    for (const Pending& p : pending_) {
      SLUICE_RETURN_IF_ERROR(indexRecord(recordKey(ds_.rec.id, p.record), *p.extent));
    }
    pending_.clear();
    return Status::ok();
  }

 private:
  static std::string kindOf(const DecodedEntry& e) {
    switch (e.type) {
      case EntryType::kDirectory: return "a directory";
      case EntryType::kSymlink: return "a symlink";
      default: return "a file";
    }
  }

  // An explicit directory. It may already exist implicitly (created by a
  // path below it, in this batch or an earlier one): it keeps its id and
  // takes the uploaded mode and mtime. A directory created implicitly
  // afterwards finds it and leaves it alone (ensureDir), so the order of
  // the two within a draft does not matter.
  Status addDirectory(const FileSpec& f, const std::string& key) {
    SLUICE_ASSIGN_OR_RETURN(auto existing, txn_.find(Db::kDirents, key));
    uint64_t id = 0;
    if (existing) {
      SLUICE_ASSIGN_OR_RETURN(DecodedEntry old, decodeEntry(*existing));
      if (old.type != EntryType::kDirectory) {
        return alreadyExists("directory '" + f.path + "': " + kindOf(old) +
                             " of that name is in the draft");
      }
      if (old.explicit_dir) {
        if (old.mode == f.mode && old.mtime_ns == f.mtime_ns) return Status::ok();  // a retry
        return alreadyExists("directory '" + f.path +
                             "' is already in the draft with a different mode or mtime");
      }
      id = old.dir_id;
    } else {
      id = rec_.next_dir_id++;
    }
    SLUICE_RETURN_IF_ERROR(
        txn_.put(Db::kDirents, key, encodeExplicitDirEntry(id, f.mode, f.mtime_ns)));
    dirs_.emplace(f.path, id);
    return Status::ok();
  }

  // A symlink: its target is data, stored verbatim and never resolved.
  Status addSymlink(const FileSpec& f, const std::string& key) {
    std::string value = encodeSymlinkEntry(f.mode, f.mtime_ns, f.symlink_target);
    bool inserted = false;
    std::string_view existing;
    SLUICE_RETURN_IF_ERROR(txn_.insert(Db::kDirents, key, value, &inserted, &existing));
    if (inserted || existing == value) return Status::ok();
    SLUICE_ASSIGN_OR_RETURN(DecodedEntry old, decodeEntry(existing));
    if (old.type != EntryType::kSymlink) {
      return alreadyExists("symlink '" + f.path + "': " + kindOf(old) +
                           " of that name is in the draft");
    }
    return alreadyExists("symlink '" + f.path +
                         "' is already in the draft with a different target, mode or mtime");
  }

  Result<uint64_t> ensureDir(std::string_view path, const std::string& file) {
    auto it = dirs_.find(path);
    if (it != dirs_.end()) return it->second;
    size_t slash = path.rfind('/');
    std::string_view parent = slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
    std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
    SLUICE_ASSIGN_OR_RETURN(uint64_t parent_id, ensureDir(parent, file));
    std::string key = direntKey(ds_.rec.id, version_, parent_id, name);
    bool inserted = false;
    std::string_view existing;
    SLUICE_RETURN_IF_ERROR(
        txn_.insert(Db::kDirents, key, encodeDirEntry(rec_.next_dir_id), &inserted, &existing));
    uint64_t id = 0;
    if (inserted) {
      id = rec_.next_dir_id++;
    } else {
      SLUICE_ASSIGN_OR_RETURN(DecodedEntry e, decodeEntry(existing));
      if (e.type != EntryType::kDirectory) {
        return alreadyExists("'" + file + "': parent '" + std::string(path) + "' is " +
                             kindOf(e) + " in the draft");
      }
      id = e.dir_id;
    }
    dirs_.emplace(std::string(path), id);
    return id;
  }

  Status addExtent(const Extent& e) {
    if (chunks_.insert(e.chunk).second) {
      bool inserted = false;
      SLUICE_RETURN_IF_ERROR(txn_.insert(Db::kVersionChunks,
                                         versionChunkKey(ds_.rec.id, version_, e.chunk), "",
                                         &inserted));
      if (inserted) {
        SLUICE_ASSIGN_OR_RETURN(auto dead, txn_.find(Db::kTombstones, chunkKey(e.chunk)));
        if (dead) {
          return Status(StatusCode::kConflict,
                        "chunk " + e.chunk.toHex() + " was garbage collected while this upload ran; "
                        "run the upload again (it stores the data anew)");
        }
        SLUICE_RETURN_IF_ERROR(
            txn_.put(Db::kChunkUsers, chunkUserKey(e.chunk, ds_.rec.id, version_), ""));
        SLUICE_RETURN_IF_ERROR(txn_.del(Db::kGarbage, chunkKey(e.chunk)));
      }
    }
    pending_.push_back(Pending{e.record, &e});
    return Status::ok();
  }

  Status indexRecord(const std::string& rkey, const Extent& e) {
    SLUICE_ASSIGN_OR_RETURN(auto v, txn_.find(Db::kRecords, rkey));
    if (v) {
      SLUICE_ASSIGN_OR_RETURN(RecordLocation loc, decodeLocation(*v));
      if (loc.chunk == e.chunk && loc.chunk_offset == e.chunk_offset) return Status::ok();  // reuse
      SLUICE_ASSIGN_OR_RETURN(bool live, chunkIsLive(txn_, loc.chunk));
      if (live) {
        rec_.stored_bytes += e.stored_length;  // stored again elsewhere: new bytes, index kept
        return Status::ok();
      }
    }
    RecordLocation loc;
    loc.chunk = e.chunk;
    loc.chunk_offset = e.chunk_offset;
    loc.stored_length = e.stored_length;
    loc.raw_length = e.raw_length;
    loc.codec = e.codec;
    rec_.stored_bytes += e.stored_length;
    return txn_.put(Db::kRecords, rkey, encodeLocation(loc));
  }

  Txn& txn_;
  const DatasetHandle& ds_;
  uint32_t version_;
  VersionRecord& rec_;
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  struct Pending {
    Hash128 record;        // its key is the dataset prefix and the hash, big-endian
    const Extent* extent;  // points into the caller's FileSpec, alive for the call
  };
  std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>> dirs_;
  std::unordered_set<Hash128> chunks_;
  std::vector<Pending> pending_;
};

Result<VersionHandle> loadDraft(const Txn& txn, const DatasetHandle& ds, uint32_t version) {
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, loadVersion(txn, ds, version));
  if (v.rec.state == VersionState::kCommitted) {
    return failedPrecondition("dataset '" + ds.name + "' v" + std::to_string(version) + " is committed, not a draft");
  }
  if (v.rec.state == VersionState::kAborted) {
    return failedPrecondition("draft v" + std::to_string(version) + " of dataset '" + ds.name +
                              "' was aborted ('sluice version rm', or sluice-meta's draft_expiry after nothing "
                              "was added to it for that long): run the upload again");
  }
  return v;
}

}  // namespace

// ---- datasets

Result<DatasetInfo> MetaStore::createDataset(std::string_view name, const DatasetOptions& o) {
  SLUICE_RETURN_IF_ERROR(validateName(name, "dataset name"));
  uint8_t repl = o.replication == 0 ? params_.default_replication : o.replication;
  if (repl > params_.max_replicas) {
    return invalidArgument("replication: " + std::to_string(repl) + " exceeds the cluster's " +
                           std::to_string(params_.max_replicas) + " replicas");
  }
  uint32_t chunk_size = o.chunk_size == 0 ? kDefaultChunkSize : o.chunk_size;
  if (chunk_size < kMinChunkSize || chunk_size > kMaxDatasetChunkSize) {
    return invalidArgument("chunk_size: must be 64K..64M (" + std::to_string(kMinChunkSize) + ".." +
                           std::to_string(kMaxDatasetChunkSize) + " bytes)");
  }
  if (o.compression != CompressionPolicy::kAuto && o.compression != CompressionPolicy::kNone) {
    return invalidArgument("compression: unknown policy");
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(auto existing, txn.find(Db::kDatasets, name));
  if (existing) return alreadyExists("dataset '" + std::string(name) + "' already exists");
  DatasetRecord rec;
  SLUICE_ASSIGN_OR_RETURN(rec.id, getU64(txn, kKeyNextDatasetId));
  SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyNextDatasetId, rec.id + 1));
  rec.replication = repl;
  rec.chunk_size = chunk_size;
  rec.compression = o.compression;
  rec.created_ms = nowMs();
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kDatasets, name, encodeDataset(rec)));
  DatasetHandle ds{std::string(name), rec};
  SLUICE_ASSIGN_OR_RETURN(DatasetInfo info, toDatasetInfo(txn, ds));
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return info;
}

Result<Page<DatasetInfo>> MetaStore::listDatasets(std::string_view cursor, uint32_t limit) const {
  limit = clampLimit(limit);
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kDatasets));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(cursor));
  if (ok && !cursor.empty() && c.key() == cursor) {
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  Page<DatasetInfo> page;
  while (ok) {
    if (page.items.size() == limit) {
      page.next_cursor = page.items.back().name;
      break;
    }
    SLUICE_ASSIGN_OR_RETURN(DatasetRecord rec, decodeDataset(c.value()));
    SLUICE_ASSIGN_OR_RETURN(DatasetInfo info,
                            toDatasetInfo(txn, DatasetHandle{std::string(c.key()), rec}));
    page.items.push_back(std::move(info));
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return page;
}

Result<DatasetInfo> MetaStore::getDataset(std::string_view name) const {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, name));
  return toDatasetInfo(txn, ds);
}

Result<uint32_t> MetaStore::deleteDataset(std::string_view name, bool force) {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, name));
  std::string prefix = datasetPrefix(ds.rec.id);
  SLUICE_ASSIGN_OR_RETURN(DatasetInfo info, toDatasetInfo(txn, ds));
  if (info.tag_count > 0 && !force) {
    return failedPrecondition("dataset '" + ds.name + "' has " + std::to_string(info.tag_count) +
                              " tags; delete them first or force");
  }
  std::vector<uint32_t> versions;
  {
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kVersions));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(prefix));
    while (ok && startsWith(c.key(), prefix)) {
      versions.push_back(getBe32(c.key().data() + 8));
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
  }
  int64_t now = nowMs();
  for (uint32_t v : versions) SLUICE_RETURN_IF_ERROR(releaseVersionData(txn, ds.rec.id, v, now));
  for (Db db : {Db::kVersions, Db::kTags, Db::kRecords, Db::kDirents}) {
    SLUICE_ASSIGN_OR_RETURN(uint64_t n, txn.delPrefix(db, prefix));
    (void)n;
  }
  SLUICE_RETURN_IF_ERROR(txn.del(Db::kDatasets, ds.name));
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return static_cast<uint32_t>(versions.size());
}

// ---- versions

Result<VersionInfo> MetaStore::beginVersion(std::string_view dataset, std::string_view message) {
  if (message.size() > kMaxMessageLength) {
    return invalidArgument("message: longer than " + std::to_string(kMaxMessageLength) + " bytes");
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  if (ds.rec.next_version == UINT32_MAX) {
    return Status(StatusCode::kResourceExhausted, "dataset '" + ds.name + "': out of version numbers");
  }
  VersionHandle v;
  v.number = ds.rec.next_version++;
  v.rec.created_ms = v.rec.modified_ms = nowMs();
  v.rec.message = std::string(message);
  SLUICE_ASSIGN_OR_RETURN(v.rec.gc_epoch, getU64Or0(txn, kKeyGcEpoch));
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kDatasets, ds.name, encodeDataset(ds.rec)));
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kVersions, versionKey(ds.rec.id, v.number), encodeVersion(v.rec)));
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return toVersionInfo(ds, v);
}

namespace {

// A draft is named by dataset name and number, both of which come back when
// a dataset is deleted and created again; its id does not.
Status checkSameDataset(const DatasetHandle& ds, uint32_t version, uint64_t dataset_id) {
  if (dataset_id == 0 || dataset_id == ds.rec.id) return Status::ok();
  return Status(StatusCode::kConflict,
                "dataset '" + ds.name + "' was deleted and created again since draft v" +
                    std::to_string(version) + " was begun; this upload's draft is gone: run it again");
}

}  // namespace

Result<AddFilesResult> MetaStore::addFiles(std::string_view dataset, uint32_t version,
                                           std::span<const FileSpec> files, uint64_t dataset_id) {
  if (files.size() > kMaxFilesPerBatch) {
    return invalidArgument("files: " + std::to_string(files.size()) + " in one batch; at most " +
                           std::to_string(kMaxFilesPerBatch));
  }
  size_t extents = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    SLUICE_RETURN_IF_ERROR(validateFile(files[i], i));
    extents += files[i].extents.size();
  }
  if (extents > kMaxExtentsPerBatch) {
    return invalidArgument("files: " + std::to_string(extents) + " extents in one batch; at most " +
                           std::to_string(kMaxExtentsPerBatch));
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_RETURN_IF_ERROR(checkSameDataset(ds, version, dataset_id));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, loadDraft(txn, ds, version));
  // An upload learns of the chunks it names after its draft was begun (its
  // lookups, its own puts), so the tombstones that guard it are those of
  // later gc epochs; once some of those are pruned it can no longer be told
  // a chunk was collected under it.
  SLUICE_ASSIGN_OR_RETURN(uint64_t pruned, getU64Or0(txn, kKeyPrunedEpoch));
  if (v.rec.gc_epoch < pruned) {
    return Status(StatusCode::kConflict,
                  "dataset '" + ds.name + "' draft v" + std::to_string(version) +
                      " was begun before chunks gc collected were forgotten (tombstones are kept "
                      "for --tombstone_ttl); run the upload again (it stores what is missing anew), "
                      "and 'sluice version rm " + ds.name + "@v" + std::to_string(version) +
                      "' removes this draft");
  }
  Adder adder(txn, ds, version, v.rec);
  // In path order (stable, so an append follows its file): directory entries
  // of one directory then land in neighbouring B-tree pages.
  std::vector<uint32_t> order(files.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return files[a].path < files[b].path; });
  for (uint32_t i : order) SLUICE_RETURN_IF_ERROR(adder.add(files[i]));
  SLUICE_RETURN_IF_ERROR(adder.finish());
  v.rec.modified_ms = nowMs();
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kVersions, versionKey(ds.rec.id, version), encodeVersion(v.rec)));
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return AddFilesResult{v.rec.file_count, v.rec.logical_bytes, v.rec.stored_bytes};
}

Result<VersionInfo> MetaStore::commitVersion(std::string_view dataset, uint32_t version,
                                             std::string_view message, bool keep_latest,
                                             uint64_t dataset_id) {
  if (message.size() > kMaxMessageLength) {
    return invalidArgument("message: longer than " + std::to_string(kMaxMessageLength) + " bytes");
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_RETURN_IF_ERROR(checkSameDataset(ds, version, dataset_id));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, loadVersion(txn, ds, version));
  if (v.rec.state == VersionState::kCommitted) {
    VersionInfo info = toVersionInfo(ds, v);
    SLUICE_ASSIGN_OR_RETURN(info.tags, tagsOf(txn, ds.rec.id, version));
    return info;  // a retried commit
  }
  if (v.rec.state != VersionState::kDraft) {
    return failedPrecondition("dataset '" + ds.name + "' v" + std::to_string(version) +
                              " was aborted and cannot be committed");
  }
  // The whole commit is this one record flip (plus the latest tag): the
  // namespace was written by addFiles and is invisible until the flip.
  v.rec.state = VersionState::kCommitted;
  v.rec.committed_ms = v.rec.modified_ms = nowMs();
  if (!message.empty()) v.rec.message = std::string(message);
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kVersions, versionKey(ds.rec.id, version), encodeVersion(v.rec)));
  if (!keep_latest) {
    std::string key = tagKey(ds.rec.id, "latest");
    SLUICE_ASSIGN_OR_RETURN(auto cur, txn.find(Db::kTags, key));
    uint32_t cur_version = 0;
    if (cur && cur->size() == 4) std::memcpy(&cur_version, cur->data(), 4);
    if (cur_version < version) SLUICE_RETURN_IF_ERROR(txn.put(Db::kTags, key, u32Value(version)));
  }
  VersionInfo info = toVersionInfo(ds, v);
  SLUICE_ASSIGN_OR_RETURN(info.tags, tagsOf(txn, ds.rec.id, version));
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return info;
}

Status MetaStore::abortVersion(std::string_view dataset, uint32_t version) {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, loadVersion(txn, ds, version));
  if (v.rec.state == VersionState::kAborted) return Status::ok();
  if (v.rec.state == VersionState::kCommitted) {
    return failedPrecondition("dataset '" + ds.name + "' v" + std::to_string(version) +
                              " is committed; delete it instead");
  }
  SLUICE_RETURN_IF_ERROR(abortDraft(txn, ds, v));
  return txn.commit();
}

Status MetaStore::abortDraft(Txn& txn, const internal::DatasetHandle& ds, internal::VersionHandle& v) {
  SLUICE_RETURN_IF_ERROR(releaseVersionData(txn, ds.rec.id, v.number, nowMs()));
  v.rec.state = VersionState::kAborted;
  v.rec.modified_ms = nowMs();
  return txn.put(Db::kVersions, versionKey(ds.rec.id, v.number), encodeVersion(v.rec));
}

Result<IdleDraftSweep> MetaStore::abortIdleDrafts(int64_t idle_ms) {
  if (idle_ms <= 0) return invalidArgument("idle_ms: must be positive");
  const int64_t cutoff = nowMs() - idle_ms;
  // Candidates from a snapshot; each is checked again in its own write
  // transaction, since an upload may have added to it meanwhile.
  std::vector<std::pair<std::string, uint32_t>> idle;
  {
    SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
    SLUICE_ASSIGN_OR_RETURN(auto names, datasetNamesById(txn));
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kVersions));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
    while (ok) {
      if (c.key().size() != 12) return corruption("version key: bad size");
      SLUICE_ASSIGN_OR_RETURN(VersionRecord rec, decodeVersion(c.value()));
      auto name = names.find(getBe64(c.key().data()));
      if (rec.state == VersionState::kDraft && rec.modified_ms < cutoff && name != names.end()) {
        idle.emplace_back(name->second, getBe32(c.key().data() + 8));
      }
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
  }
  // One draft that cannot be aborted (a write failing) does not hold up
  // the others.
  IdleDraftSweep sweep;
  for (const auto& [dataset, number] : idle) {
    Status s = [&, &dataset = dataset, number = number]() -> Status {
      SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
      auto ds = loadDataset(txn, dataset);
      if (!ds.isOk()) return Status::ok();  // deleted meanwhile
      auto v = loadVersion(txn, *ds, number);
      if (!v.isOk() || v->rec.state != VersionState::kDraft || v->rec.modified_ms >= cutoff) return Status::ok();
      SLUICE_RETURN_IF_ERROR(abortDraft(txn, *ds, *v));
      SLUICE_RETURN_IF_ERROR(txn.commit());
      sweep.aborted.push_back(toVersionInfo(*ds, *v));
      return Status::ok();
    }();
    if (!s.isOk()) sweep.failed.push_back(s.withContext(dataset + "@v" + std::to_string(number)));
  }
  return sweep;
}

Result<Page<VersionInfo>> MetaStore::listVersions(std::string_view dataset,
                                                  std::string_view cursor, uint32_t limit) const {
  limit = clampLimit(limit);
  uint32_t after = 0;
  if (!cursor.empty()) {
    after = parseVersionNumber(cursor);
    if (after == 0) return invalidArgument("cursor: expected v<n>");
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  // No version follows the last number (after + 1 would wrap to the start).
  if (after == UINT32_MAX) return Page<VersionInfo>{};
  std::string prefix = datasetPrefix(ds.rec.id);
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kVersions));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(versionKey(ds.rec.id, after + 1)));
  Page<VersionInfo> page;
  while (ok && startsWith(c.key(), prefix)) {
    if (page.items.size() == limit) {
      page.next_cursor = "v" + std::to_string(page.items.back().version);
      break;
    }
    VersionHandle v;
    v.number = getBe32(c.key().data() + 8);
    SLUICE_ASSIGN_OR_RETURN(v.rec, decodeVersion(c.value()));
    VersionInfo info = toVersionInfo(ds, v);
    SLUICE_ASSIGN_OR_RETURN(info.tags, tagsOf(txn, ds.rec.id, v.number));
    page.items.push_back(std::move(info));
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return page;
}

Result<VersionInfo> MetaStore::getVersion(std::string_view dataset, std::string_view ref) const {
  return resolveVersion(dataset, ref);
}

Result<uint32_t> MetaStore::deleteVersion(std::string_view dataset, uint32_t version, bool force) {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, loadVersion(txn, ds, version));
  SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> tags, tagsOf(txn, ds.rec.id, version));
  if (!tags.empty() && !force) {
    return failedPrecondition("dataset '" + ds.name + "' v" + std::to_string(version) +
                              " is tagged '" + tags.front() + "'; move the tag or force");
  }
  for (const std::string& t : tags) SLUICE_RETURN_IF_ERROR(txn.del(Db::kTags, tagKey(ds.rec.id, t)));
  SLUICE_RETURN_IF_ERROR(releaseVersionData(txn, ds.rec.id, version, nowMs()));
  SLUICE_RETURN_IF_ERROR(txn.del(Db::kVersions, versionKey(ds.rec.id, version)));
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return static_cast<uint32_t>(tags.size());
}

// ---- tags

Result<uint32_t> MetaStore::setTag(std::string_view dataset, std::string_view tag,
                                   uint32_t version, uint64_t dataset_id) {
  SLUICE_RETURN_IF_ERROR(validateTagName(tag, "tag"));
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_RETURN_IF_ERROR(checkSameDataset(ds, version, dataset_id));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, loadVersion(txn, ds, version));
  if (v.rec.state != VersionState::kCommitted) {
    return failedPrecondition("tag '" + std::string(tag) + "': v" + std::to_string(version) +
                              " is not committed; only committed versions can be tagged");
  }
  std::string key = tagKey(ds.rec.id, tag);
  SLUICE_ASSIGN_OR_RETURN(auto cur, txn.find(Db::kTags, key));
  uint32_t previous = 0;
  if (cur && cur->size() == 4) std::memcpy(&previous, cur->data(), 4);
  SLUICE_RETURN_IF_ERROR(txn.put(Db::kTags, key, u32Value(version)));
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return previous;
}

Status MetaStore::deleteTag(std::string_view dataset, std::string_view tag) {
  SLUICE_RETURN_IF_ERROR(validateTagName(tag, "tag"));
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  bool removed = false;
  SLUICE_RETURN_IF_ERROR(txn.del(Db::kTags, tagKey(ds.rec.id, tag), &removed));
  if (!removed) return notFound("dataset '" + ds.name + "' has no tag '" + std::string(tag) + "'");
  return txn.commit();
}

Result<VersionInfo> MetaStore::resolveVersion(std::string_view dataset,
                                              std::string_view ref) const {
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, resolveRef(txn, ds, ref));
  VersionInfo info = toVersionInfo(ds, v);
  SLUICE_ASSIGN_OR_RETURN(info.tags, tagsOf(txn, ds.rec.id, v.number));
  return info;
}

Result<Page<TagInfo>> MetaStore::listTags(std::string_view dataset, std::string_view after,
                                          uint32_t limit) const {
  limit = clampLimit(limit);
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  std::string prefix = datasetPrefix(ds.rec.id);
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kTags));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(prefix + std::string(after)));
  // The cursor names the last tag sent; the page starts after it.
  if (ok && !after.empty() && c.key() == prefix + std::string(after)) {
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  Page<TagInfo> page;
  while (ok && startsWith(c.key(), prefix)) {
    if (page.items.size() == limit) {
      page.next_cursor = page.items.back().name;
      break;
    }
    TagInfo t;
    t.name = std::string(c.key().substr(prefix.size()));
    if (c.value().size() == 4) std::memcpy(&t.version, c.value().data(), 4);
    page.items.push_back(std::move(t));
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return page;
}

}  // namespace sluice::meta
