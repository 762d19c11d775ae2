#include "metadata/store_internal.h"

#include <cstring>

#include "metadata/names.h"

namespace sluice::meta::internal {

Result<uint64_t> getU64(const Txn& txn, std::string_view key) {
  SLUICE_ASSIGN_OR_RETURN(std::string_view v, txn.get(Db::kMeta, key));
  if (v.size() != 8) return corruption("metadata key " + std::string(key) + ": bad size");
  uint64_t out = 0;
  std::memcpy(&out, v.data(), 8);
  return out;
}

Status putU64(Txn& txn, std::string_view key, uint64_t v) {
  return txn.put(Db::kMeta, key, std::string_view(reinterpret_cast<const char*>(&v), 8));
}

Result<uint64_t> getU64Or0(const Txn& txn, std::string_view key) {
  SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kMeta, key));
  if (!v) return uint64_t{0};
  return getU64(txn, key);
}

Result<std::string> nextTombstoneStamp(Txn& txn, int64_t now_ms) {
  SLUICE_ASSIGN_OR_RETURN(uint64_t epoch, getU64Or0(txn, kKeyGcEpoch));
  SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyGcEpoch, ++epoch));
  std::string out;
  putBe64(out, static_cast<uint64_t>(now_ms));
  putBe64(out, epoch);
  return out;
}

Tombstone decodeTombstone(std::string_view v) {
  Tombstone t;
  if (v.size() >= 8) t.ms = static_cast<int64_t>(getBe64(v.data()));
  if (v.size() >= 16) t.epoch = getBe64(v.data() + 8);
  return t;
}

Result<DatasetHandle> loadDataset(const Txn& txn, std::string_view name) {
  SLUICE_RETURN_IF_ERROR(validateName(name, "dataset name"));
  SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kDatasets, name));
  if (!v) return notFound("dataset '" + std::string(name) + "' does not exist");
  SLUICE_ASSIGN_OR_RETURN(DatasetRecord rec, decodeDataset(*v));
  return DatasetHandle{std::string(name), rec};
}

Result<std::map<uint64_t, std::string>> datasetNamesById(const Txn& txn) {
  std::map<uint64_t, std::string> names;
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kDatasets));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
  while (ok) {
    SLUICE_ASSIGN_OR_RETURN(DatasetRecord rec, decodeDataset(c.value()));
    names[rec.id] = std::string(c.key());
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return names;
}

Result<VersionHandle> loadVersion(const Txn& txn, const DatasetHandle& ds, uint32_t version) {
  if (version == 0) return invalidArgument("version: must be >= 1");
  SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kVersions, versionKey(ds.rec.id, version)));
  if (!v) {
    return notFound("dataset '" + ds.name + "' has no version v" + std::to_string(version));
  }
  SLUICE_ASSIGN_OR_RETURN(VersionRecord rec, decodeVersion(*v));
  return VersionHandle{version, std::move(rec)};
}

Result<VersionHandle> resolveRef(const Txn& txn, const DatasetHandle& ds, std::string_view ref) {
  if (uint32_t n = parseVersionNumber(ref); n != 0) return loadVersion(txn, ds, n);
  SLUICE_RETURN_IF_ERROR(validateTagName(ref, "version (v<n> or a tag)"));
  SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kTags, tagKey(ds.rec.id, ref)));
  if (!v) {
    return notFound("dataset '" + ds.name + "' has no tag '" + std::string(ref) + "'");
  }
  if (v->size() != 4) return corruption("tag record: bad size");
  uint32_t n = 0;
  std::memcpy(&n, v->data(), 4);
  return loadVersion(txn, ds, n);
}

Result<VersionHandle> resolveCommitted(const Txn& txn, const DatasetHandle& ds,
                                       std::string_view ref) {
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, resolveRef(txn, ds, ref));
  if (v.rec.state != VersionState::kCommitted) {
    return failedPrecondition("dataset '" + ds.name + "' v" + std::to_string(v.number) + " is " +
                              (v.rec.state == VersionState::kDraft
                                   ? "a draft: an upload that has not finished (re-run its put, or "
                                     "delete it with 'sluice version rm " + ds.name + "@v" +
                                         std::to_string(v.number) + "')"
                                   : "aborted"));
  }
  return v;
}

VersionInfo toVersionInfo(const DatasetHandle& ds, const VersionHandle& v) {
  VersionInfo info;
  info.dataset = ds.name;
  info.dataset_id = ds.rec.id;
  info.version = v.number;
  info.state = v.rec.state;
  info.created_ms = v.rec.created_ms;
  info.modified_ms = v.rec.modified_ms;
  info.committed_ms = v.rec.committed_ms;
  info.file_count = v.rec.file_count;
  info.logical_bytes = v.rec.logical_bytes;
  info.stored_bytes = v.rec.stored_bytes;
  info.message = v.rec.message;
  return info;
}

Result<std::vector<std::string>> tagsOf(const Txn& txn, uint64_t dataset_id, uint32_t version) {
  std::vector<std::string> out;
  std::string prefix = datasetPrefix(dataset_id);
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kTags));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(prefix));
  while (ok && startsWith(c.key(), prefix)) {
    uint32_t n = 0;
    if (c.value().size() == 4) std::memcpy(&n, c.value().data(), 4);
    if (n == version) out.emplace_back(c.key().substr(prefix.size()));
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return out;
}

Result<bool> chunkIsLive(const Txn& txn, const Hash128& chunk) {
  std::string prefix = chunkKey(chunk);
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kChunkUsers));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(prefix));
  return ok && startsWith(c.key(), prefix);
}

Status releaseVersionData(Txn& txn, uint64_t dataset_id, uint32_t version, int64_t now_ms) {
  std::string vkey = versionKey(dataset_id, version);
  SLUICE_ASSIGN_OR_RETURN(uint64_t removed, txn.delPrefix(Db::kDirents, vkey));
  (void)removed;
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kVersionChunks));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(vkey));
  while (ok && startsWith(c.key(), vkey)) {
    if (c.key().size() != vkey.size() + 16) return corruption("version chunk key: bad size");
    Hash128 chunk = getBeHash(c.key().data() + vkey.size());
    SLUICE_RETURN_IF_ERROR(txn.del(Db::kChunkUsers, chunkUserKey(chunk, dataset_id, version)));
    SLUICE_ASSIGN_OR_RETURN(bool live, chunkIsLive(txn, chunk));
    if (!live) {
      SLUICE_RETURN_IF_ERROR(txn.put(Db::kGarbage, chunkKey(chunk),
                                     std::string_view(reinterpret_cast<const char*>(&now_ms), 8)));
    }
    SLUICE_RETURN_IF_ERROR(c.del());
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return Status::ok();
}

Result<DecodedEntry> walkPath(const Txn& txn, uint64_t dataset_id, uint32_t version,
                              std::string_view path) {
  DecodedEntry e;
  e.type = EntryType::kDirectory;
  e.dir_id = kRootDirId;
  e.mode = 0755;
  size_t consumed = 0;
  for (std::string_view comp : splitPath(path)) {
    if (e.type != EntryType::kDirectory) {
      return notFound("path '" + std::string(path) + "': '" +
                      std::string(path.substr(0, consumed - 1)) + "' is a " +
                      (e.type == EntryType::kSymlink ? "symlink (never followed)" : "file"));
    }
    SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kDirents,
                                             direntKey(dataset_id, version, e.dir_id, comp)));
    consumed += comp.size() + 1;
    if (!v) return notFound("path '" + std::string(path) + "' does not exist");
    SLUICE_ASSIGN_OR_RETURN(e, decodeEntry(*v));
  }
  return e;
}

Entry toEntry(std::string path, const DecodedEntry& e, int64_t dir_mtime_ns) {
  Entry out;
  out.path = std::move(path);
  out.type = e.type;
  out.size = e.size;
  out.mode = e.mode;
  out.mtime_ns = e.type == EntryType::kDirectory && !e.explicit_dir ? dir_mtime_ns : e.mtime_ns;
  out.extent_count = e.extent_count;
  out.symlink_target = std::string(e.symlink_target);
  return out;
}

Status TreeWalker::push(uint64_t dir_id, std::string path, std::string resume_after) {
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn_, Db::kDirents));
  Frame f;
  f.dir_id = dir_id;
  f.path = std::move(path);
  f.prefix = direntKey(dataset_id_, version_, dir_id, "");
  f.resume_after = std::move(resume_after);
  f.cursor = std::make_unique<Cursor>(std::move(c));
  stack_.push_back(std::move(f));
  return Status::ok();
}

Status TreeWalker::seekAfter(std::string_view path) {
  stack_.clear();
  std::vector<std::string_view> comps = splitPath(path);
  if (comps.empty()) return push(kRootDirId, "", "");
  uint64_t dir = kRootDirId;
  std::string prefix;
  // Every level resumes after its component. When `path` itself is a
  // directory (directories are returned before what they hold) its
  // contents still follow, so its level is opened from its start.
  for (size_t i = 0; i < comps.size(); ++i) {
    SLUICE_RETURN_IF_ERROR(push(dir, prefix, std::string(comps[i])));
    SLUICE_ASSIGN_OR_RETURN(auto v, txn_.find(Db::kDirents,
                                              direntKey(dataset_id_, version_, dir, comps[i])));
    if (!v) break;
    SLUICE_ASSIGN_OR_RETURN(DecodedEntry e, decodeEntry(*v));
    if (e.type != EntryType::kDirectory) break;
    dir = e.dir_id;
    prefix.append(comps[i]);
    prefix.push_back('/');
    if (i + 1 == comps.size()) SLUICE_RETURN_IF_ERROR(push(dir, prefix, ""));
  }
  return Status::ok();
}

Result<bool> TreeWalker::next(std::string* path, DecodedEntry* entry) {
  while (!stack_.empty()) {
    Frame& f = stack_.back();
    bool ok = false;
    if (!f.positioned) {
      f.positioned = true;
      std::string start = f.prefix + f.resume_after;
      SLUICE_ASSIGN_OR_RETURN(ok, f.cursor->seek(start));
      if (ok && !f.resume_after.empty() && f.cursor->key() == start) {
        SLUICE_ASSIGN_OR_RETURN(ok, f.cursor->next());
      }
    } else {
      SLUICE_ASSIGN_OR_RETURN(ok, f.cursor->next());
    }
    if (!ok || !startsWith(f.cursor->key(), f.prefix)) {
      stack_.pop_back();
      continue;
    }
    std::string_view name = f.cursor->key().substr(f.prefix.size());
    SLUICE_ASSIGN_OR_RETURN(DecodedEntry e, decodeEntry(f.cursor->value()));
    std::string full = f.path;
    full.append(name);
    if (e.type == EntryType::kDirectory) {
      SLUICE_RETURN_IF_ERROR(push(e.dir_id, full + "/", ""));
    }
    *path = std::move(full);
    *entry = e;
    return true;
  }
  return false;
}

int comparePaths(std::string_view a, std::string_view b) {
  while (true) {
    size_t ea = a.find('/'), eb = b.find('/');
    std::string_view ca = a.substr(0, ea), cb = b.substr(0, eb);
    int c = ca.compare(cb);
    if (c != 0) return c < 0 ? -1 : 1;
    bool enda = ea == std::string_view::npos, endb = eb == std::string_view::npos;
    if (enda && endb) return 0;
    if (enda) return -1;
    if (endb) return 1;
    a = a.substr(ea + 1);
    b = b.substr(eb + 1);
  }
}

}  // namespace sluice::meta::internal
