// MetaStore::chunkUsers: which versions, and which of their files, a chunk
// carries data of. Scrub asks it for chunks no repair can bring back, so an
// admin learns what was lost, not only a chunk id.
#include <map>
#include <set>

#include "metadata/encoding.h"
#include "metadata/limits.h"
#include "metadata/meta_store.h"
#include "metadata/store_internal.h"

namespace sluice::meta {

using namespace internal;

namespace {

// Per-user cost of an answer besides its paths (names, ids, framing).
constexpr size_t kUserOverheadBytes = 128;

}  // namespace

Result<ChunkUsers> MetaStore::chunkUsers(std::span<const Hash128> chunks, uint32_t max_paths) const {
  if (chunks.size() > kMaxChunksPerUsersCall) {
    return invalidArgument("chunks: at most " + std::to_string(kMaxChunksPerUsersCall) + " per call");
  }
  if (max_paths > kMaxPathsPerChunkUser) {
    return invalidArgument("max_paths: at most " + std::to_string(kMaxPathsPerChunkUser));
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  ChunkUsers out;
  // (dataset id, version) -> the asked chunks it uses, each with its index
  // in out.users.
  std::map<std::pair<uint64_t, uint32_t>, std::map<Hash128, size_t>> by_version;
  size_t budget = kChunkUsersAnswerBytes;
  std::set<Hash128> asked;
  for (const Hash128& chunk : chunks) {
    if (!asked.insert(chunk).second) continue;
    const std::string prefix = chunkKey(chunk);
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kChunkUsers));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(prefix));
    while (ok && startsWith(c.key(), prefix)) {
      if (c.key().size() != prefix.size() + 12) return corruption("chunk user key: bad size");
      if (budget < kUserOverheadBytes) {
        out.truncated = true;
        break;
      }
      budget -= kUserOverheadBytes;
      ChunkUser u;
      u.chunk = chunk;
      u.dataset_id = getBe64(c.key().data() + prefix.size());
      u.version = getBe32(c.key().data() + prefix.size() + 8);
      by_version[{u.dataset_id, u.version}][chunk] = out.users.size();
      out.users.push_back(std::move(u));
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
  }
  if (out.users.empty()) return out;

  SLUICE_ASSIGN_OR_RETURN(auto names, datasetNamesById(txn));
  for (auto& [key, of_chunk] : by_version) {
    const auto [dataset_id, version] = key;
    auto name = names.find(dataset_id);
    VersionState state = VersionState::kCommitted;
    SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kVersions, versionKey(dataset_id, version)));
    if (v) {
      SLUICE_ASSIGN_OR_RETURN(VersionRecord rec, decodeVersion(*v));
      state = rec.state;
    }
    for (const auto& [chunk, i] : of_chunk) {
      out.users[i].state = state;
      if (name != names.end()) out.users[i].dataset = name->second;
    }
    if (max_paths == 0) continue;
    // One walk of the version's tree serves every asked chunk it uses.
    TreeWalker walker(txn, dataset_id, version);
    SLUICE_RETURN_IF_ERROR(walker.seekAfter(""));
    std::string path;
    DecodedEntry e;
    for (;;) {
      SLUICE_ASSIGN_OR_RETURN(bool more, walker.next(&path, &e));
      if (!more) break;
      if (e.type != EntryType::kFile || e.extent_count == 0) continue;
      std::set<size_t> hit;
      for (const Extent& x : unpackExtents(e, 0, e.extent_count)) {
        auto it = of_chunk.find(x.chunk);
        if (it != of_chunk.end()) hit.insert(it->second);
      }
      for (size_t i : hit) {
        ChunkUser& u = out.users[i];
        if (u.paths.size() >= max_paths || budget < path.size()) {
          u.more_paths = true;
          out.truncated |= budget < path.size();
          continue;
        }
        budget -= path.size();
        u.paths.push_back(path);
      }
    }
  }
  return out;
}

}  // namespace sluice::meta
