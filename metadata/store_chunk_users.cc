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

// What an answer costs on the wire besides names and paths: a user's table
// (ids, state, vectors' headers), and each path's string header and offset.
constexpr size_t kUserBytes = 96;
constexpr size_t kPathBytes = 16;
// Entries walked per call, over all versions: about a second of one core.
constexpr uint64_t kMaxWalkEntries = 4'000'000;

}  // namespace

Result<ChunkUsers> MetaStore::chunkUsers(std::span<const Hash128> chunks, uint32_t max_paths) const {
  if (chunks.size() > kMaxChunksPerUsersCall) {
    return invalidArgument("chunks: at most " + std::to_string(kMaxChunksPerUsersCall) + " per call");
  }
  if (max_paths > kMaxPathsPerChunkUser) {
    return invalidArgument("max_paths: at most " + std::to_string(kMaxPathsPerChunkUser));
  }
  SLUICE_ASSIGN_OR_RETURN(Txn txn, Txn::beginRead(*env_));
  SLUICE_ASSIGN_OR_RETURN(auto names, datasetNamesById(txn));
  ChunkUsers out;
  // The users take at most half the budget, so that paths get the rest.
  size_t budget = kChunkUsersAnswerBytes;
  size_t users_budget = kChunkUsersAnswerBytes / 2;
  // (dataset id, version) -> the asked chunks it uses, each with its index
  // in out.users.
  std::map<std::pair<uint64_t, uint32_t>, std::map<Hash128, size_t>> by_version;
  std::set<Hash128> seen;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Hash128& chunk = chunks[i];
    if (!seen.insert(chunk).second) {
      out.answered = i + 1;
      continue;
    }
    // All of the chunk's users, or (when they alone outgrow the budget and
    // nothing else was answered) as many as fit; else it waits for the
    // next call.
    std::vector<ChunkUser> users;
    size_t cost = 0;
    bool all = true;
    const std::string prefix = chunkKey(chunk);
    SLUICE_ASSIGN_OR_RETURN(Cursor c, Cursor::open(txn, Db::kChunkUsers));
    SLUICE_ASSIGN_OR_RETURN(bool ok, c.seek(prefix));
    while (ok && startsWith(c.key(), prefix)) {
      if (c.key().size() != prefix.size() + 12) return corruption("chunk user key: bad size");
      ChunkUser u;
      u.chunk = chunk;
      u.dataset_id = getBe64(c.key().data() + prefix.size());
      u.version = getBe32(c.key().data() + prefix.size() + 8);
      if (auto name = names.find(u.dataset_id); name != names.end()) u.dataset = name->second;
      const size_t one = kUserBytes + u.dataset.size();
      if (cost + one > users_budget) {
        all = false;
        break;
      }
      cost += one;
      users.push_back(std::move(u));
      SLUICE_ASSIGN_OR_RETURN(ok, c.next());
    }
    if (!all && out.answered > 0) break;  // the next call starts at this chunk
    out.truncated |= !all;
    users_budget -= cost;
    budget -= cost;
    for (auto& u : users) {
      by_version[{u.dataset_id, u.version}][chunk] = out.users.size();
      out.users.push_back(std::move(u));
    }
    out.answered = i + 1;
    if (!all) break;
  }

  uint64_t walked = 0;
  bool room = true;  // for paths; once out, the other versions are not walked
  for (auto& [key, of_chunk] : by_version) {
    const auto [dataset_id, version] = key;
    SLUICE_ASSIGN_OR_RETURN(auto v, txn.find(Db::kVersions, versionKey(dataset_id, version)));
    if (v) {
      SLUICE_ASSIGN_OR_RETURN(VersionRecord rec, decodeVersion(*v));
      for (const auto& [chunk, i] : of_chunk) out.users[i].state = rec.state;
    }
    if (max_paths == 0) continue;
    // One walk of the version's tree serves every asked chunk it uses; it
    // ends once each has its paths and one more (so more_paths is known).
    size_t open = of_chunk.size();
    TreeWalker walker(txn, dataset_id, version);
    SLUICE_RETURN_IF_ERROR(walker.seekAfter(""));
    std::string path;
    DecodedEntry e;
    bool complete = false;
    while (open > 0 && room && walked < kMaxWalkEntries) {
      SLUICE_ASSIGN_OR_RETURN(bool more, walker.next(&path, &e));
      if (!more) {
        complete = true;
        break;
      }
      ++walked;
      if (e.type != EntryType::kFile || e.extent_count == 0) continue;
      std::set<size_t> hit;
      for (const Extent& x : unpackExtents(e, 0, e.extent_count)) {
        auto it = of_chunk.find(x.chunk);
        if (it != of_chunk.end()) hit.insert(it->second);
      }
      for (size_t i : hit) {
        ChunkUser& u = out.users[i];
        if (u.more_paths) continue;
        if (u.paths.size() == max_paths) {
          u.more_paths = true;
          --open;
          continue;
        }
        if (budget < kPathBytes + path.size()) {
          room = false;
          break;
        }
        budget -= kPathBytes + path.size();
        u.paths.push_back(path);
      }
    }
    if (open == 0 || complete) continue;
    // Cut short (budget or walk limit): other files may use the chunks too.
    out.truncated = true;
    for (const auto& [chunk, i] : of_chunk) out.users[i].more_paths = true;
  }
  return out;
}

}  // namespace sluice::meta
