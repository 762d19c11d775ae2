// MetaStore: reads of committed versions (stat, lookup, readdir, extents,
// listing, diff), the record index and the garbage listing.
#include <cstring>
#include <map>
#include <set>

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

int64_t dirMtime(const VersionHandle& v) { return v.rec.committed_ms * 1'000'000; }

const char* kindName(EntryType t) {
  switch (t) {
    case EntryType::kDirectory: return "a directory";
    case EntryType::kSymlink: return "a symlink";
    default: return "a file";
  }
}

// Deletes the entries of `db` for which doomed(txn, value) holds, in short
// write transactions (at most 10000 deletions or 80000 entries looked at
// each), so no long write lock is held and no transaction outgrows LMDB's
// dirty-page limit; a crash between batches leaves the rest for next time.
template <typename Doomed>
Result<uint64_t> deleteInBatches(LmdbEnv& env, Db db, Doomed doomed) {
  constexpr size_t kBatch = 10000;
  uint64_t total = 0;
  std::string after;  // the last key a batch looked at
  for (bool more = true; more;) {
    SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(env));
    size_t deleted = 0;
    {  // the cursor closes before the commit (LMDB frees write cursors there)
      SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, db));
      SLUICE_ASSIGN_OR_RETURN(bool ok, after.empty() ? c.first() : c.seek(after));
      if (ok && !after.empty() && c.key() == after) {
        SLUICE_ASSIGN_OR_RETURN(ok, c.next());
      }
      size_t seen = 0;
      while (ok && deleted < kBatch && seen < 8 * kBatch) {
        ++seen;
        after = std::string(c.key());
        SLUICE_ASSIGN_OR_RETURN(bool gone, doomed(txn, c.value()));
        if (gone) {
          // After a del, next yields the entry that followed the deleted one.
          SLUICE_RETURN_IF_ERROR(c.del());
          ++deleted;
        }
        SLUICE_ASSIGN_OR_RETURN(ok, c.next());
      }
      more = ok;
    }
    if (deleted == 0) continue;  // nothing written: the transaction aborts
    SLUICE_RETURN_IF_ERROR(txn.commit());
    total += deleted;
  }
  return total;
}

// What listFiles and diff show: files, symlinks and explicit directories.
// Implicit directories are implied by the paths below them.
bool listed(const DecodedEntry& e) { return e.type != EntryType::kDirectory || e.explicit_dir; }

// Same content: same type and mode, and for files equal size and record
// sequence (where records are stored does not matter), for symlinks the
// same target. Mtimes are not compared. An implicit directory has mode 0755.
bool sameContent(const DecodedEntry& a, const DecodedEntry& b) {
  if (a.type != b.type || a.mode != b.mode) return false;
  if (a.type == EntryType::kDirectory) return true;
  if (a.type == EntryType::kSymlink) return a.symlink_target == b.symlink_target;
  if (a.size != b.size || a.extent_count != b.extent_count) return false;
  for (uint32_t i = 0; i < a.extent_count; ++i) {
    const char* pa = a.packed_extents.data() + size_t{i} * kPackedExtentSize;
    const char* pb = b.packed_extents.data() + size_t{i} * kPackedExtentSize;
    // record hash (16 bytes) and raw length (at 32, 4 bytes)
    if (std::memcmp(pa, pb, 16) != 0 || std::memcmp(pa + 32, pb + 32, 4) != 0) return false;
  }
  return true;
}

}  // namespace

Result<Entry> MetaStore::stat(std::string_view dataset, std::string_view ref,
                              std::string_view path) const {
  SLUICE_RETURN_IF_ERROR(validatePath(path, "path", /*allow_root=*/true));
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, resolveCommitted(txn, ds, ref));
  SLUICE_ASSIGN_OR_RETURN(DecodedEntry e, walkPath(txn, ds.rec.id, v.number, path));
  return toEntry(std::string(path), e, dirMtime(v));
}

Result<std::vector<LookupResult>> MetaStore::lookup(std::string_view dataset,
                                                    std::string_view ref,
                                                    std::span<const std::string_view> paths,
                                                    bool with_extents, uint32_t max_extents,
                                                    uint32_t* resolved_version) const {
  if (paths.size() > kMaxPathsPerLookup) {
    return invalidArgument("paths: at most " + std::to_string(kMaxPathsPerLookup) + " per lookup");
  }
  for (size_t i = 0; i < paths.size(); ++i) {
    SLUICE_RETURN_IF_ERROR(validatePath(paths[i], "path", true));  // the path itself names which
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, resolveCommitted(txn, ds, ref));
  if (resolved_version != nullptr) *resolved_version = v.number;
  std::vector<LookupResult> out(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    auto e = walkPath(txn, ds.rec.id, v.number, paths[i]);
    if (!e.isOk()) {
      if (e.status().code() == StatusCode::kNotFound) continue;
      return e.status();
    }
    out[i].found = true;
    out[i].entry = toEntry(std::string(paths[i]), *e, dirMtime(v));
    if (with_extents && e->type == EntryType::kFile) {
      out[i].extents = unpackExtents(*e, 0, max_extents);
      out[i].extents_complete = out[i].extents.size() == e->extent_count;
    }
  }
  return out;
}

Result<Page<Entry>> MetaStore::readDir(std::string_view dataset, std::string_view ref,
                                       std::string_view path, std::string_view cursor,
                                       uint32_t limit) const {
  SLUICE_RETURN_IF_ERROR(validatePath(path, "path", /*allow_root=*/true));
  if (cursor.size() > kMaxComponentLength) return invalidArgument("cursor: too long");
  limit = clampLimit(limit);
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, resolveCommitted(txn, ds, ref));
  SLUICE_ASSIGN_OR_RETURN(DecodedEntry dir, walkPath(txn, ds.rec.id, v.number, path));
  if (dir.type != EntryType::kDirectory) {
    return failedPrecondition("path '" + std::string(path) + "' is " + kindName(dir.type) +
                              ", not a directory");
  }
  std::string prefix = direntKey(ds.rec.id, v.number, dir.dir_id, "");
  std::string start = prefix + std::string(cursor);
  SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kDirents));
  SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(start));
  if (ok && !cursor.empty() && c.key() == start) {
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  Page<Entry> page;
  while (ok && startsWith(c.key(), prefix)) {
    if (page.items.size() == limit) {
      page.next_cursor = page.items.back().path;
      break;
    }
    SLUICE_ASSIGN_OR_RETURN(DecodedEntry e, decodeEntry(c.value()));
    page.items.push_back(toEntry(std::string(c.key().substr(prefix.size())), e, dirMtime(v)));
    SLUICE_ASSIGN_OR_RETURN(ok, c.next());
  }
  return page;
}

Result<FileExtents> MetaStore::getExtents(std::string_view dataset, std::string_view ref,
                                          std::string_view path, uint32_t first,
                                          uint32_t limit) const {
  SLUICE_RETURN_IF_ERROR(validatePath(path, "path"));
  limit = clampLimit(limit);
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, resolveCommitted(txn, ds, ref));
  SLUICE_ASSIGN_OR_RETURN(DecodedEntry e, walkPath(txn, ds.rec.id, v.number, path));
  if (e.type != EntryType::kFile) {
    return failedPrecondition("path '" + std::string(path) + "' is " + kindName(e.type) +
                              " and has no extents");
  }
  FileExtents out;
  out.size = e.size;
  out.total = e.extent_count;
  out.extents = unpackExtents(e, first, limit);
  return out;
}

Result<Page<Entry>> MetaStore::listFiles(std::string_view dataset, std::string_view ref,
                                         std::string_view cursor, uint32_t limit) const {
  if (!cursor.empty()) SLUICE_RETURN_IF_ERROR(validatePath(cursor, "cursor"));
  limit = clampLimit(limit);
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle v, resolveCommitted(txn, ds, ref));
  TreeWalker walker(txn, ds.rec.id, v.number);
  SLUICE_RETURN_IF_ERROR(walker.seekAfter(cursor));
  Page<Entry> page;
  std::string path;
  DecodedEntry e;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(bool ok, walker.next(&path, &e));
    if (!ok) break;
    if (!listed(e)) continue;
    if (page.items.size() == limit) {
      page.next_cursor = page.items.back().path;
      break;
    }
    page.items.push_back(toEntry(path, e, dirMtime(v)));
  }
  return page;
}

Result<Page<DiffEntry>> MetaStore::diff(std::string_view dataset, std::string_view from,
                                        std::string_view to, std::string_view cursor,
                                        uint32_t limit) const {
  if (!cursor.empty()) SLUICE_RETURN_IF_ERROR(validatePath(cursor, "cursor"));
  limit = clampLimit(limit);
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle va, resolveCommitted(txn, ds, from));
  SLUICE_ASSIGN_OR_RETURN(VersionHandle vb, resolveCommitted(txn, ds, to));
  TreeWalker wa(txn, ds.rec.id, va.number), wb(txn, ds.rec.id, vb.number);
  SLUICE_RETURN_IF_ERROR(wa.seekAfter(cursor));
  SLUICE_RETURN_IF_ERROR(wb.seekAfter(cursor));
  std::string pa, pb;
  DecodedEntry ea, eb;
  SLUICE_ASSIGN_OR_RETURN(bool oka, wa.next(&pa, &ea));
  SLUICE_ASSIGN_OR_RETURN(bool okb, wb.next(&pb, &eb));
  // Both walks return every entry, implicit directories included, in the
  // same order. A path is reported when either side lists it (a file, a
  // symlink or an explicit directory; see listed()):
  // - listed in `to`, absent from `from`: Added;
  // - listed in `from`, absent from `to`: Removed;
  // - present on both sides and listed on at least one (so an implicit
  //   directory against an explicit one, or against a file): Changed when
  //   type, mode, file content or symlink target differ (sameContent; an
  //   implicit directory counts as mode 0755, mtimes are ignored).
  // An implicit directory against nothing, or against another implicit
  // directory, is not reported: the entries below it are. Sizes: files
  // their size, symlinks their target's length, directories 0.
  Page<DiffEntry> page;
  while (oka || okb) {
    int c = !oka ? 1 : !okb ? -1 : comparePaths(pa, pb);
    DiffEntry d;
    bool emit = true;
    if (c < 0) {
      emit = listed(ea);
      d = DiffEntry{pa, ChangeKind::kRemoved, ea.size, 0};
    } else if (c > 0) {
      emit = listed(eb);
      d = DiffEntry{pb, ChangeKind::kAdded, 0, eb.size};
    } else {
      emit = (listed(ea) || listed(eb)) && !sameContent(ea, eb);
      d = DiffEntry{pa, ChangeKind::kChanged, ea.size, eb.size};
    }
    if (emit) {
      if (page.items.size() == limit) {
        page.next_cursor = page.items.back().path;
        break;
      }
      page.items.push_back(std::move(d));
    }
    if (c <= 0) {
      SLUICE_ASSIGN_OR_RETURN(oka, wa.next(&pa, &ea));
    }
    if (c >= 0) {
      SLUICE_ASSIGN_OR_RETURN(okb, wb.next(&pb, &eb));
    }
  }
  return page;
}

Result<std::vector<RecordLocation>> MetaStore::lookupRecords(
    std::string_view dataset, std::span<const Hash128> records) const {
  if (records.size() > kMaxRecordsPerLookup) {
    return invalidArgument("records: at most " + std::to_string(kMaxRecordsPerLookup) +
                           " per lookup");
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(DatasetHandle ds, loadDataset(txn, dataset));
  std::vector<RecordLocation> out(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kRecords, recordKey(ds.rec.id, records[i])));
    if (!v) continue;
    SLUICE_ASSIGN_OR_RETURN(RecordLocation loc, decodeLocation(*v));
    // An index entry whose chunk lost all its users points at garbage.
    SLUICE_ASSIGN_OR_RETURN(bool live, chunkIsLive(txn, loc.chunk));
    if (live) out[i] = loc;
  }
  return out;
}

Result<std::vector<GarbageChunk>> MetaStore::collectGarbage(uint32_t limit) {
  limit = clampLimit(limit);
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  std::vector<GarbageChunk> out;
  {
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kGarbage));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
    while (ok && out.size() < limit) {
      if (c.key().size() == 16) {
        Hash128 chunk = getBeHash(c.key().data());
        out.push_back(GarbageChunk{chunk, stripeOf(chunk, params_.stripe_count)});
      }
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
  }
  std::string stamp;
  if (!out.empty()) {
    SLUICE_ASSIGN_OR_RETURN(stamp, nextTombstoneStamp(txn, nowMs()));
  }
  for (const auto& g : out) {
    SLUICE_RETURN_IF_ERROR(txn.del(Db::kGarbage, chunkKey(g.chunk)));
    SLUICE_RETURN_IF_ERROR(txn.put(Db::kTombstones, chunkKey(g.chunk), stamp));
  }
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return out;
}

Result<std::vector<Hash128>> MetaStore::claimOrphans(std::span<const Hash128> chunks, bool dry_run) {
  if (chunks.size() > kMaxPageLimit) {
    return invalidArgument("chunks: at most " + std::to_string(kMaxPageLimit) + " per call");
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
  std::string stamp;  // made with the first tombstone: a claim of none keeps the epoch
  std::vector<Hash128> claimed;
  for (const Hash128& chunk : chunks) {
    SLUICE_ASSIGN_OR_RETURN(bool live, chunkIsLive(txn, chunk));
    if (live) continue;
    SLUICE_ASSIGN_OR_RETURN(auto garbage, txn.find(Db::kGarbage, chunkKey(chunk)));
    if (garbage) continue;  // collectGarbage's to take
    SLUICE_ASSIGN_OR_RETURN(auto dead, txn.find(Db::kTombstones, chunkKey(chunk)));
    if (!dead && !dry_run) {
      if (stamp.empty()) {
        SLUICE_ASSIGN_OR_RETURN(stamp, nextTombstoneStamp(txn, nowMs()));
      }
      SLUICE_RETURN_IF_ERROR(txn.put(Db::kTombstones, chunkKey(chunk), stamp));
    }
    claimed.push_back(chunk);
  }
  if (dry_run) return claimed;  // the transaction aborts unwritten
  SLUICE_RETURN_IF_ERROR(txn.commit());
  return claimed;
}

Result<TombstonePrune> MetaStore::pruneTombstones(int64_t older_than_ms) {
  if (older_than_ms <= 0) return invalidArgument("older_than_ms: must be positive");
  const int64_t cutoff = nowMs() - older_than_ms;
  // The horizon H, from a read transaction (writers go on meanwhile): the
  // epochs all of whose tombstones are old enough. Tombstones made after
  // this snapshot belong to later epochs and are untouched.
  uint64_t horizon = 0, pruned = 0;
  {
    SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
    SLUICE_ASSIGN_OR_RETURN(horizon, getU64Or0(txn, kKeyGcEpoch));
    SLUICE_ASSIGN_OR_RETURN(pruned, getU64Or0(txn, kKeyPrunedEpoch));
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kTombstones));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
    while (ok) {
      const Tombstone t = decodeTombstone(c.value());
      if (t.ms > cutoff) horizon = std::min(horizon, t.epoch == 0 ? 0 : t.epoch - 1);
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
  }
  // Refusals first, in their own transaction: from its commit on, AddFiles
  // turns away every draft a tombstone about to go could have guarded, so
  // the deletions may then run in short batches (no long write lock, no
  // transaction outgrowing LMDB's dirty-page limit), and a crash between
  // batches leaves the rest for the next prune.
  TombstonePrune out{0, std::max(pruned, horizon)};
  if (out.pruned_epoch > pruned) {
    SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginWrite(*env_));
    SLUICE_ASSIGN_OR_RETURN(uint64_t now_pruned, getU64Or0(txn, kKeyPrunedEpoch));
    out.pruned_epoch = std::max(out.pruned_epoch, now_pruned);
    SLUICE_RETURN_IF_ERROR(putU64(txn, kKeyPrunedEpoch, out.pruned_epoch));
    SLUICE_RETURN_IF_ERROR(txn.commit());
  }
  SLUICE_ASSIGN_OR_RETURN(out.pruned,
                          deleteInBatches(*env_, Db::kTombstones, [&](const Txn&, std::string_view v) -> Result<bool> {
                            return decodeTombstone(v).epoch <= out.pruned_epoch;
                          }));
  return out;
}

Result<uint64_t> MetaStore::pruneRecordIndex() {
  return deleteInBatches(*env_, Db::kRecords, [](const Txn& txn, std::string_view v) -> Result<bool> {
    SLUICE_ASSIGN_OR_RETURN(RecordLocation loc, decodeLocation(v));
    SLUICE_ASSIGN_OR_RETURN(bool live, chunkIsLive(txn, loc.chunk));
    return !live;
  });
}

Result<Page<GarbageChunk>> MetaStore::listGarbage(int64_t grace_ms, std::string_view cursor,
                                                  uint32_t limit) const {
  if (grace_ms < 0) return invalidArgument("grace_ms: must not be negative");
  if (grace_ms == 0) grace_ms = options_.draft_grace_ms;
  Hash128 after;
  bool has_cursor = !cursor.empty();
  if (has_cursor) {
    auto h = Hash128::fromHex(cursor);
    if (!h) return invalidArgument("cursor: expected 32 hex digits");
    after = *h;
  }
  limit = clampLimit(limit);
  const int64_t horizon = nowMs() - grace_ms;
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  std::set<Hash128> found;
  // Chunks with no users at all.
  {
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kGarbage));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
    while (ok) {
      if (c.key().size() == 16) found.insert(getBeHash(c.key().data()));
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
  }
  // Chunks whose every user is a draft idle since before the horizon.
  std::map<std::string, bool> stale;  // version key -> is a stale draft
  {
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kVersions));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.first());
    while (ok) {
      SLUICE_ASSIGN_OR_RETURN(VersionRecord rec, decodeVersion(c.value()));
      stale[std::string(c.key())] = rec.state == VersionState::kDraft && rec.modified_ms < horizon;
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
  }
  for (const auto& [vkey, is_stale] : stale) {
    if (!is_stale) continue;
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kVersionChunks));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(vkey));
    while (ok && startsWith(c.key(), vkey)) {
      Hash128 chunk = getBeHash(c.key().data() + vkey.size());
      std::string prefix = chunkKey(chunk);
      SLUICE_ASSIGN_OR_RETURN(Cursor u, Cursor::open(txn, Db::kChunkUsers));
      SLUICE_ASSIGN_OR_RETURN(bool uok, u.seek(prefix));
      bool all_stale = true;
      while (uok && startsWith(u.key(), prefix)) {
        auto it = stale.find(std::string(u.key().substr(16)));
        all_stale &= it != stale.end() && it->second;
        SLUICE_ASSIGN_OR_RETURN(uok, u.next());
      }
      if (all_stale) found.insert(chunk);
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
  }
  Page<GarbageChunk> page;
  auto it = has_cursor ? found.upper_bound(after) : found.begin();
  for (; it != found.end(); ++it) {
    if (page.items.size() == limit) {
      page.next_cursor = page.items.back().chunk.toHex();
      break;
    }
    page.items.push_back(GarbageChunk{*it, stripeOf(*it, params_.stripe_count)});
  }
  return page;
}

}  // namespace sluice::meta
