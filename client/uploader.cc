#include "client/uploader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "client/buffer_pool.h"
#include "client/chunk_rpc.h"
#include "client/parallel.h"
#include "client/source_tree.h"
#include "common/codec/chunk_builder.h"
#include "common/codec/codec_limits.h"
#include "common/codec/record_codec.h"
#include "metadata/names.h"

namespace sluice::client {
namespace {

namespace meta = wire::meta;

// Consecutive records of one file, read and stored together.
struct Piece {
  size_t entry = 0;         // index into SourceTree::entries
  uint64_t offset = 0;      // file offset of the first byte
  uint64_t length = 0;
  bool completes_file = false;
  std::vector<uint8_t> data;
  size_t first_record = 0;  // index into Batch::records
  size_t record_count = 0;
};

struct RecordRef {
  size_t piece = 0;
  uint64_t file_offset = 0;
  uint32_t raw_length = 0;
  const uint8_t* raw = nullptr;
  RecordHash hash;
  size_t unique = 0;  // index into Batch::unique
};

// Where one distinct record of a batch ends up.
struct UniqueRecord {
  size_t first_ref = 0;  // a RecordRef holding its bytes
  bool stored = false;   // known location (found in the index, or packed and put)
  ChunkId chunk;
  RecordLocation location;
  std::optional<EncodedRecord> encoded;
};

struct Batch {
  std::vector<Piece> pieces;
  std::vector<size_t> others;  // directories and symlinks
  std::vector<RecordRef> records;
  std::vector<UniqueRecord> unique;
  uint64_t bytes = 0;
};

meta::Hash toWire(const Hash128& h) { return meta::Hash(h.hi, h.lo); }

Status readPiece(const std::string& root, const SourceEntry& e, Piece& piece) {
  std::string path = root + "/" + e.path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errnoStatus(errno, "reading '" + e.path + "'");
  piece.data.resize(piece.length);
  uint64_t done = 0;
  while (done < piece.length) {
    ssize_t n = ::pread(fd, piece.data.data() + done, piece.length - done,
                        static_cast<off_t>(piece.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : 0;
      ::close(fd);
      if (err != 0) return errnoStatus(err, "reading '" + e.path + "'");
      return Status(StatusCode::kFailedPrecondition,
                    "'" + e.path + "' shrank while it was uploaded (expected " +
                        std::to_string(e.size) + " bytes): re-run the upload once it is stable");
    }
    done += static_cast<uint64_t>(n);
  }
  // A file written to while it is read would be stored torn, mixing old
  // and new bytes (only shrinking shows in the reads). Its size and mtime
  // must still be what the walk saw, which is also what the version
  // records; checked after its last piece, so a change at any point before
  // shows.
  if (piece.completes_file) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return errnoStatus(err, "reading '" + e.path + "'");
    }
    const int64_t mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    if (static_cast<uint64_t>(st.st_size) != e.size || mtime_ns != e.mtime_ns) {
      ::close(fd);
      return Status(StatusCode::kFailedPrecondition,
                    "'" + e.path + "' changed while it was uploaded (its size or modification time is not "
                    "what it was when the upload began), so what was read may mix old and new bytes: "
                    "re-run the upload once it is stable");
    }
  }
  ::close(fd);
  return Status();
}

class Upload {
 public:
  Upload(Cluster& cluster, const UploadOptions& options, std::string dataset)
      : cluster_(cluster), options_(options), dataset_(std::move(dataset)) {
    threads_ = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  }

  Result<UploadReport> run(const std::string& source_dir) {
    auto start = std::chrono::steady_clock::now();
    SLUICE_RETURN_IF_ERROR(validateMaxRecordSize(options_.max_record_size));
    // Checked before anything is sent: the tag is set after the commit, and
    // a tag refused then would leave a committed version behind an error.
    if (!options_.tag.empty()) SLUICE_RETURN_IF_ERROR(sluice::meta::validateTagName(options_.tag, "--tag"));
    SLUICE_ASSIGN_OR_RETURN(tree_, walkSourceTree(source_dir));
    report_.warnings = tree_.warnings;
    report_.dataset = dataset_;
    SLUICE_RETURN_IF_ERROR(loadDataset());
    if (options_.show_progress) {
      progress_.emplace("put", tree_.file_count, tree_.total_bytes);
    }
    size_t slot_size = std::max(chunk_size_, options_.max_record_size + (64u << 10));
    SLUICE_ASSIGN_OR_RETURN(pool_, BufferPool::create(cluster_.endpoint(), slot_size,
                                                      std::max<size_t>(options_.chunks_in_flight, 1),
                                                      net::Access::kRemoteRead));
    SLUICE_RETURN_IF_ERROR(beginVersion());
    Status s = uploadAll();
    if (!s.isOk()) {
      // A re-run starts a new version; what it finds in the record index
      // (the files this draft already holds) it does not send again.
      const std::string draft = dataset_ + "@v" + std::to_string(version_);
      return s.withContext("uploading to " + dataset_ + " draft v" + std::to_string(version_) +
                           " (re-run the same command once the cause is fixed: files the draft "
                           "already holds are not sent again; the unfinished draft stays until "
                           "'sluice version rm " + draft + "', or until sluice-meta aborts it after "
                           "its draft_expiry, 7 days by default)");
    }
    SLUICE_RETURN_IF_ERROR(commit());
    report_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (progress_) progress_->finish();
    return report_;
  }

 private:
  Status loadDataset() {
    meta::GetDatasetRequestT req;
    req.name = dataset_;
    auto resp = cluster_.meta<meta::GetDatasetRequest, meta::GetDatasetResponse>(
        meta::MetaMethod::GetDataset, req, "GetDataset");
    if (!resp.isOk()) {
      if (resp.status().code() == StatusCode::kNotFound) {
        return notFound("dataset '" + dataset_ + "' does not exist: create it first with "
                        "'sluice dataset create " + dataset_ + "'");
      }
      return resp.status();
    }
    const auto& d = (*resp)->dataset;
    if (!d) return Status(StatusCode::kProtocolError, "GetDataset: empty answer");
    replication_ = d->replication;
    chunk_size_ = d->chunk_size ? d->chunk_size : kDefaultChunkSize;
    SLUICE_RETURN_IF_ERROR(validateChunkSize(chunk_size_));
    compress_ = d->compression != meta::CompressionPolicy::None;
    if (replication_ == 0) return Status(StatusCode::kProtocolError, "dataset without replication");
    return Status();
  }

  Status beginVersion() {
    meta::BeginVersionRequestT req;
    req.dataset = dataset_;
    req.message = options_.message;
    SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster_.meta<meta::BeginVersionRequest, meta::BeginVersionResponse>(
                                           meta::MetaMethod::BeginVersion, req, "BeginVersion")));
    if (!resp->version) return Status(StatusCode::kProtocolError, "BeginVersion: empty answer");
    version_ = resp->version->version;
    dataset_id_ = resp->version->dataset_id;
    report_.version = version_;
    return Status();
  }

  Status uploadAll() {
    size_t entry = 0;
    uint64_t offset = 0;
    while (entry < tree_.entries.size()) {
      Batch batch;
      while (entry < tree_.entries.size() && batch.bytes < options_.batch_bytes &&
             batch.pieces.size() < options_.batch_files) {
        const SourceEntry& e = tree_.entries[entry];
        if (e.type != EntryType::kFile) {
          batch.others.push_back(entry++);
          continue;
        }
        Piece p;
        p.entry = entry;
        p.offset = offset;
        uint64_t remaining = e.size - offset;
        uint64_t room = options_.batch_bytes - batch.bytes;
        uint64_t take = remaining;
        if (remaining > room) {
          take = std::max<uint64_t>(room / options_.max_record_size, 1) * options_.max_record_size;
          take = std::min(take, remaining);
        }
        p.length = take;
        offset += take;
        if (offset == e.size) {
          p.completes_file = true;
          offset = 0;
          ++entry;
        }
        batch.bytes += take;
        batch.pieces.push_back(std::move(p));
      }
      SLUICE_RETURN_IF_ERROR(runBatch(batch));
    }
    return Status();
  }

  Status runBatch(Batch& batch) {
    // 1. Read and hash, on all cores.
    SLUICE_RETURN_IF_ERROR(parallelFor(batch.pieces.size(), threads_, [&](size_t i) {
      Piece& p = batch.pieces[i];
      return readPiece(tree_.root, tree_.entries[p.entry], p);
    }));
    for (size_t i = 0; i < batch.pieces.size(); ++i) {
      Piece& p = batch.pieces[i];
      p.first_record = batch.records.size();
      for (uint64_t off = 0; off < p.length; off += options_.max_record_size) {
        RecordRef r;
        r.piece = i;
        r.file_offset = p.offset + off;
        r.raw_length = static_cast<uint32_t>(std::min<uint64_t>(options_.max_record_size, p.length - off));
        r.raw = p.data.data() + off;
        batch.records.push_back(r);
      }
      p.record_count = batch.records.size() - p.first_record;
    }
    SLUICE_RETURN_IF_ERROR(parallelFor(batch.records.size(), threads_, [&](size_t i) {
      RecordRef& r = batch.records[i];
      r.hash = Hash128::of(r.raw, r.raw_length);
      return Status();
    }));
    std::unordered_map<RecordHash, size_t> index;
    for (size_t i = 0; i < batch.records.size(); ++i) {
      RecordRef& r = batch.records[i];
      auto [it, inserted] = index.emplace(r.hash, batch.unique.size());
      if (inserted) {
        UniqueRecord u;
        u.first_ref = i;
        batch.unique.push_back(std::move(u));
      }
      r.unique = it->second;
    }
    report_.records += batch.records.size();

    // 2. Which records does the dataset already store?
    SLUICE_RETURN_IF_ERROR(lookupRecords(batch));

    // 3. Compress what is new, on all cores.
    std::vector<size_t> fresh;
    for (size_t u = 0; u < batch.unique.size(); ++u) {
      if (!batch.unique[u].stored) fresh.push_back(u);
    }
    EncodeOptions enc;
    enc.zstd_level = options_.zstd_level;
    enc.compress = compress_;
    SLUICE_RETURN_IF_ERROR(parallelFor(fresh.size(), threads_, [&](size_t i) {
      UniqueRecord& u = batch.unique[fresh[i]];
      const RecordRef& r = batch.records[u.first_ref];
      SLUICE_ASSIGN_OR_RETURN(EncodedRecord e, encodeRecord({r.raw, r.raw_length}, enc));
      u.encoded = std::move(e);
      return Status();
    }));

    report_.reused_records += batch.records.size() - fresh.size();

    // 4. Pack into chunks and put each to all its replicas.
    SLUICE_RETURN_IF_ERROR(packAndPut(batch, fresh));

    // 5. The batch's files join the draft.
    SLUICE_RETURN_IF_ERROR(addFiles(batch));
    uint64_t files = 0;
    for (const Piece& p : batch.pieces) files += p.completes_file ? 1 : 0;
    if (progress_) progress_->add(files, batch.bytes);
    return Status();
  }

  Status lookupRecords(Batch& batch) {
    constexpr size_t kPage = 4096;
    for (size_t start = 0; start < batch.unique.size(); start += kPage) {
      size_t end = std::min(batch.unique.size(), start + kPage);
      meta::LookupRecordsRequestT req;
      req.dataset = dataset_;
      for (size_t u = start; u < end; ++u) {
        req.records.push_back(toWire(batch.records[batch.unique[u].first_ref].hash));
      }
      SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster_.meta<meta::LookupRecordsRequest, meta::LookupRecordsResponse>(
                                             meta::MetaMethod::LookupRecords, req, "LookupRecords")));
      if (resp->locations.size() != end - start) {
        return Status(StatusCode::kProtocolError, "LookupRecords answered " +
                                                      std::to_string(resp->locations.size()) +
                                                      " of " + std::to_string(end - start));
      }
      for (size_t u = start; u < end; ++u) {
        const auto& loc = resp->locations[u - start];
        if (!loc || !loc->found || !loc->chunk) continue;
        UniqueRecord& rec = batch.unique[u];
        const RecordRef& r = batch.records[rec.first_ref];
        auto codec = codecFromByte(static_cast<uint8_t>(loc->codec));
        if (!codec || loc->raw_length != r.raw_length || loc->stored_length == 0) continue;
        rec.stored = true;
        rec.chunk = ChunkId{loc->chunk->hi(), loc->chunk->lo()};
        rec.location = RecordLocation{loc->chunk_offset, loc->stored_length, loc->raw_length,
                                      *codec, r.hash};
      }
    }
    return Status();
  }

  struct PendingChunk {
    ChunkId id;
    uint32_t salt = 0;
    std::vector<size_t> members;  // unique indices of the records it holds
    std::vector<NodeId> nodes;      // every node it was put to
    std::vector<NodeId> put_nodes;  // the node of each of `puts`
    BufferSlot slot;
    std::unique_ptr<net::MemoryRegion> large;
    std::span<uint8_t> bytes;  // in slot or large: registered, read by the nodes
    std::vector<Awaited<Status>> puts;
    int attempts = 1;
  };

  // A chunk whose put fails on a node (dead, unreachable, full) is given
  // another salt and so another stripe, up to this many times in all.
  static constexpr int kMaxPutAttempts = 4;
  // Salts tried to find a stripe whose replicas are all usable.
  static constexpr uint32_t kMaxSalts = 1024;

  // A put also fails over from a full node: another stripe has room.
  static bool putNodeFailure(const Status& s) {
    return nodeFailure(s) || s.code() == StatusCode::kNoSpace;
  }

  bool usable(const ClusterMap& map, NodeId id) const {
    const NodeEntry* n = map.node(id);
    return n && n->state == meta::NodeState::Up && !cluster_.isSuspect(id);
  }

  // Places the chunk on a stripe whose replicas are all up and answering.
  // A stripe is a function of the ChunkId, so when a replica of the natural
  // stripe is down, unreachable or full, the chunk takes the next salt (a new
  // id) until one is found: uploads keep working while nodes fail, are
  // drained or repaired. Updates p.id, p.salt, p.nodes and the records' ids.
  Status place(PendingChunk& p, Batch& batch, bool resalt_first) {
    auto map = cluster_.map();
    std::vector<NodeId> unusable;
    for (uint32_t tries = 0; tries < kMaxSalts; ++tries) {
      if (resalt_first || tries > 0) p.id = resaltChunk(p.bytes, ++p.salt);
      std::vector<NodeId> nodes = map->replicasOf(p.id, replication_);
      if (nodes.size() < replication_) {
        return unavailable("stripe " + std::to_string(stripeOf(p.id, map->stripeCount())) + " has " +
                           std::to_string(nodes.size()) + " storage nodes but dataset '" + dataset_ +
                           "' needs " + std::to_string(replication_) +
                           " replicas: add storage nodes or lower the replication factor");
      }
      bool ok = true;
      for (NodeId n : nodes) {
        if (usable(*map, n)) continue;
        ok = false;
        if (std::find(unusable.begin(), unusable.end(), n) == unusable.end()) unusable.push_back(n);
      }
      if (!ok) continue;
      p.nodes = std::move(nodes);
      for (size_t u : p.members) batch.unique[u].chunk = p.id;
      if (resalt_first || tries > 0) report_.replaced_chunks++;
      return Status();
    }
    // Each node left out, with why when one of its puts failed (a full
    // disk says so; "not answering" would send the admin the wrong way).
    std::string names;
    bool full = !unusable.empty();
    for (NodeId n : unusable) {
      names += (names.empty() ? "node " : "; node ") + std::to_string(n);
      auto why = put_failures_.find(n);
      if (why != put_failures_.end()) names += ": " + why->second.toString();
      full = full && why != put_failures_.end() && why->second.code() == StatusCode::kNoSpace;
    }
    if (full) {
      return Status(StatusCode::kNoSpace, "no stripe with " + std::to_string(replication_) +
                                              " replicas with room for a chunk of dataset '" + dataset_ + "' (" +
                                              names + "); free space on those nodes or add nodes");
    }
    return unavailable("no stripe with " + std::to_string(replication_) +
                       " usable replicas for a chunk of dataset '" + dataset_ + "' (down, draining, full or not "
                       "answering: " + names + "); wait for the nodes to return, or run 'sluice repair' to move "
                       "their stripes");
  }

  void startPuts(PendingChunk& p) {
    auto map = cluster_.map();
    const uint32_t stripe = stripeOf(p.id, map->stripeCount());
    net::RemoteBuffer source = p.large ? p.large->remote(0, p.bytes.size()) : p.slot.remote(p.bytes.size());
    p.puts.clear();
    p.put_nodes = p.nodes;
    for (NodeId node : p.nodes) {
      p.puts.push_back(putChunk(cluster_, node, p.id, stripe, p.bytes.size(), source));
    }
    report_.bytes_sent += p.bytes.size() * p.nodes.size();
  }

  // Waits for every replica's put; on node failures re-places the chunk on
  // another stripe and puts it again. The copies that did land under the old
  // id are referenced by nothing, so gc collects them.
  Status finishPuts(PendingChunk& p, Batch& batch) {
    for (;;) {
      Status first_failure;
      bool all_node_failures = true;
      for (size_t i = 0; i < p.puts.size(); ++i) {
        Status s = p.puts[i].get();
        if (s.isOk()) {
          cluster_.markAnswered(p.put_nodes[i]);
          put_failures_.erase(p.put_nodes[i]);
          continue;
        }
        if (first_failure.isOk()) first_failure = s;
        if (putNodeFailure(s)) {
          cluster_.markSuspect(p.put_nodes[i]);
          put_failures_.insert_or_assign(p.put_nodes[i], s);
        } else {
          all_node_failures = false;
        }
      }
      if (first_failure.isOk()) {
        // A stripe may have moved (repair, drain, rebalance) while the puts
        // ran, and a move that listed its source before our put landed does
        // not carry our chunk: the nodes the map names now must hold it
        // before meta may reference it. Checked after the puts, so either
        // the move's switch is seen here or its cleanup (which copies what
        // only the old node has) runs after our put.
        SLUICE_ASSIGN_OR_RETURN(bool moved, putToNewReplicas(p));
        if (!moved) return Status();
        continue;  // wait for the extra puts (and check again)
      }
      if (!all_node_failures || p.attempts >= kMaxPutAttempts) return first_failure;
      ++p.attempts;
      // The node may be down for good: the map says so once meta notices.
      (void)cluster_.refreshMap();
      if (Status s = place(p, batch, /*resalt_first=*/true); !s.isOk()) {
        return Status(s.code(), s.message() + " (after: " + first_failure.message() + ")");
      }
      startPuts(p);
    }
  }

  // After a successful round of puts: if the map now gives the chunk's
  // stripe nodes it was not put to, starts puts to those and returns true.
  Result<bool> putToNewReplicas(PendingChunk& p) {
    const uint64_t seen = cluster_.map()->epoch();
    SLUICE_RETURN_IF_ERROR(cluster_.refreshMap());
    auto map = cluster_.map();
    if (map->epoch() == seen) return false;
    std::vector<NodeId> extra;
    for (NodeId n : map->replicasOf(p.id, replication_)) {
      if (std::find(p.nodes.begin(), p.nodes.end(), n) == p.nodes.end()) extra.push_back(n);
    }
    if (extra.empty()) return false;
    if (++p.attempts > kMaxPutAttempts) {
      return unavailable("chunk " + p.id.toHex() + " of dataset '" + dataset_ +
                         "': its stripe kept moving while it was stored; run the upload again");
    }
    const uint32_t stripe = stripeOf(p.id, map->stripeCount());
    net::RemoteBuffer source = p.large ? p.large->remote(0, p.bytes.size()) : p.slot.remote(p.bytes.size());
    p.puts.clear();
    p.put_nodes = extra;
    for (NodeId node : extra) {
      p.puts.push_back(putChunk(cluster_, node, p.id, stripe, p.bytes.size(), source));
      p.nodes.push_back(node);
    }
    report_.bytes_sent += p.bytes.size() * extra.size();
    return true;
  }

  Status packAndPut(Batch& batch, const std::vector<size_t>& fresh) {
    ChunkBuilder builder(chunk_size_);
    std::vector<size_t> members;  // unique indices in the current builder
    std::deque<PendingChunk> pending;
    Status failure;
    // Node states (down, draining) as meta sees them now.
    (void)cluster_.refreshMap();

    auto waitOne = [&]() {
      Status s = finishPuts(pending.front(), batch);
      if (!s.isOk() && failure.isOk()) failure = s;
      pending.pop_front();
    };

    auto flush = [&]() -> Status {
      if (builder.empty()) return Status();
      const uint32_t salt = static_cast<uint32_t>(salts_());
      SLUICE_ASSIGN_OR_RETURN(BuiltChunk chunk, builder.finish(salt));
      for (size_t i = 0; i < members.size(); ++i) {
        UniqueRecord& u = batch.unique[members[i]];
        u.stored = true;
        u.chunk = chunk.id;
        u.location = chunk.records[i];
        report_.new_raw_bytes += u.location.raw_size;
        report_.new_stored_bytes += u.location.stored_size;
        u.encoded.reset();
      }
      Status s = submit(chunk, salt, std::move(members), batch, pending, waitOne);
      members.clear();
      SLUICE_RETURN_IF_ERROR(s);
      return failure;
    };

    for (size_t u : fresh) {
      UniqueRecord& rec = batch.unique[u];
      if (!builder.fits(rec.encoded->stored.size())) SLUICE_RETURN_IF_ERROR(flush());
      auto added = builder.add(*rec.encoded);
      if (!added.isOk()) return added.status();
      members.push_back(u);
    }
    SLUICE_RETURN_IF_ERROR(flush());
    while (!pending.empty()) waitOne();
    return failure;
  }

  template <typename WaitOne>
  Status submit(const BuiltChunk& chunk, uint32_t salt, std::vector<size_t> members, Batch& batch,
                std::deque<PendingChunk>& pending, WaitOne&& waitOne) {
    PendingChunk p;
    p.id = chunk.id;
    p.salt = salt;
    p.members = std::move(members);
    if (chunk.bytes.size() > pool_->slotSize()) {
      SLUICE_ASSIGN_OR_RETURN(p.large, cluster_.endpoint().allocateMemory(chunk.bytes.size(),
                                                                          net::Access::kRemoteRead));
      p.bytes = std::span<uint8_t>(p.large->data(), chunk.bytes.size());
    } else {
      std::optional<BufferSlot> slot = pool_->tryAcquire();
      while (!slot && !pending.empty()) {
        waitOne();
        slot = pool_->tryAcquire();
      }
      p.slot = slot ? std::move(*slot) : pool_->acquire();
      p.bytes = std::span<uint8_t>(p.slot.data(), chunk.bytes.size());
    }
    std::memcpy(p.bytes.data(), chunk.bytes.data(), chunk.bytes.size());
    SLUICE_RETURN_IF_ERROR(place(p, batch, /*resalt_first=*/false));
    startPuts(p);
    report_.chunks++;
    pending.push_back(std::move(p));
    return Status();
  }

  Status addFiles(const Batch& batch) {
    constexpr size_t kMaxFilesPerCall = 1024;
    constexpr size_t kMaxExtentsPerCall = 16384;
    // Long paths and 4 KiB symlink targets fill a frame well before 1024
    // files: 1000 such symlinks made a 4.4 MB request (max_body 4 MiB).
    constexpr size_t kMaxBytesPerCall = 2u << 20;
    meta::AddFilesRequestT req;
    size_t extents = 0;
    size_t bytes = 0;
    auto send = [&]() -> Status {
      if (req.files.empty()) return Status();
      req.dataset = dataset_;
      req.version = version_;
      req.dataset_id = dataset_id_;
      SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster_.meta<meta::AddFilesRequest, meta::AddFilesResponse>(
                                             meta::MetaMethod::AddFiles, req, "AddFiles")));
      (void)resp;
      req.files.clear();
      extents = 0;
      bytes = 0;
      return Status();
    };
    // Sends what is queued first when `spec` would take the call past its
    // byte budget (a wire extent is 56 bytes; 64 per spec for the rest).
    auto queue = [&](std::unique_ptr<meta::FileSpecT> spec) -> Status {
      const size_t size = 64 + spec->path.size() + spec->symlink_target.size() + 56 * spec->extents.size();
      if (!req.files.empty() && bytes + size > kMaxBytesPerCall) SLUICE_RETURN_IF_ERROR(send());
      bytes += size;
      extents += spec->extents.size();
      req.files.push_back(std::move(spec));
      if (req.files.size() >= kMaxFilesPerCall || extents >= kMaxExtentsPerCall) return send();
      return Status();
    };
    // Directories (kept even when empty) and symlinks (targets verbatim).
    for (size_t index : batch.others) {
      const SourceEntry& e = tree_.entries[index];
      auto spec = std::make_unique<meta::FileSpecT>();
      spec->path = e.path;
      spec->mode = e.mode;
      spec->mtime_ns = e.mtime_ns;
      if (e.type == EntryType::kDirectory) {
        spec->type = meta::EntryType::Directory;
        report_.directories++;
      } else {
        spec->type = meta::EntryType::Symlink;
        spec->symlink_target = e.symlink_target;
        spec->size = e.symlink_target.size();
        report_.symlinks++;
      }
      SLUICE_RETURN_IF_ERROR(queue(std::move(spec)));
    }
    for (const Piece& p : batch.pieces) {
      const SourceEntry& e = tree_.entries[p.entry];
      auto spec = std::make_unique<meta::FileSpecT>();
      spec->path = e.path;
      // A file split over batches grows piece by piece: each AddFiles names
      // the size its extents reach so far (meta checks they tile it).
      spec->size = p.offset + p.length;
      spec->mode = e.mode;
      spec->mtime_ns = e.mtime_ns;
      spec->append = p.offset > 0;
      for (size_t i = 0; i < p.record_count; ++i) {
        const RecordRef& r = batch.records[p.first_record + i];
        const UniqueRecord& u = batch.unique[r.unique];
        if (!u.stored) return internalError("record of '" + e.path + "' was never stored");
        spec->extents.emplace_back(r.file_offset, toWire(r.hash), toWire(u.chunk), r.raw_length,
                                   u.location.offset, u.location.stored_size,
                                   static_cast<meta::Codec>(u.location.codec));
      }
      if (p.completes_file) {
        report_.files++;
        report_.logical_bytes += e.size;
      }
      SLUICE_RETURN_IF_ERROR(queue(std::move(spec)));
    }
    return send();
  }

  Status commit() {
    meta::CommitVersionRequestT req;
    req.dataset = dataset_;
    req.version = version_;
    req.message = options_.message;
    req.keep_latest = options_.keep_latest;
    req.dataset_id = dataset_id_;
    SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster_.meta<meta::CommitVersionRequest, meta::CommitVersionResponse>(
                                           meta::MetaMethod::CommitVersion, req, "CommitVersion")));
    (void)resp;
    if (!options_.tag.empty()) {
      meta::SetTagRequestT t;
      t.dataset = dataset_;
      t.tag = options_.tag;
      t.version = version_;
      t.dataset_id = dataset_id_;
      auto tagged = cluster_.meta<meta::SetTagRequest, meta::SetTagResponse>(meta::MetaMethod::SetTag, t,
                                                                               "SetTag");
      if (!tagged.isOk()) {
        return tagged.status().withContext(dataset_ + "@v" + std::to_string(version_) +
                                           " was committed, but tagging it '" + options_.tag +
                                           "' failed (tag it with 'sluice tag set " + dataset_ + "@v" +
                                           std::to_string(version_) + " " + options_.tag + "')");
      }
    }
    return Status();
  }

  Cluster& cluster_;
  const UploadOptions& options_;
  const std::string dataset_;
  size_t threads_ = 1;
  SourceTree tree_;
  uint32_t replication_ = 1;
  size_t chunk_size_ = kDefaultChunkSize;
  bool compress_ = true;
  uint32_t version_ = 0;
  uint64_t dataset_id_ = 0;  // the draft's dataset, checked by meta on each AddFiles and the commit
  std::map<NodeId, Status> put_failures_;  // each node's last failed put, while it has not succeeded since
  std::unique_ptr<BufferPool> pool_;
  std::optional<ProgressMeter> progress_;
  UploadReport report_;
  // Chunk salts: random, so a chunk id never repeats one gc deleted.
  std::mt19937 salts_{std::random_device{}()};
};

}  // namespace

Result<UploadReport> uploadDirectory(Cluster& cluster, const std::string& source_dir,
                                     const std::string& dataset, const UploadOptions& options) {
  Upload upload(cluster, options, dataset);
  return upload.run(source_dir);
}

}  // namespace sluice::client
