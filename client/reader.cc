#include "client/reader.h"

#include <algorithm>
#include <deque>
#include <set>
#include <thread>

#include "client/chunk_rpc.h"
#include "common/codec/codec_limits.h"
#include "common/core/metrics.h"

namespace sluice::client {
namespace {

namespace meta = wire::meta;

std::string versionRef(uint32_t v) { return "v" + std::to_string(v); }

// The same figures as ReaderStats, summed over the process's readers, for
// the /metrics endpoint of whatever embeds the client (the FUSE mount).
struct ReaderMetrics {
  Counter& records = MetricsRegistry::global().counter("sluice_client_records_fetched_total", "records fetched from storage nodes");
  Counter& bytes = MetricsRegistry::global().counter("sluice_client_fetched_bytes_total", "stored bytes fetched from storage nodes");
  Counter& cache_hits = MetricsRegistry::global().counter("sluice_client_cache_hits_total", "records served by a record cache");
  Counter& failovers = MetricsRegistry::global().counter("sluice_client_failovers_total", "records served by another replica after a failure");
};
ReaderMetrics& readerMetrics() {
  static ReaderMetrics m;
  return m;
}

// Replicas of a chunk with nodes the map calls down, or that just failed us,
// moved last: they may be back, but a healthy replica is the better first try.
std::vector<NodeId> readOrder(const Cluster& cluster, const ClusterMap& map, const ChunkId& chunk,
                              uint32_t replication) {
  std::vector<NodeId> nodes = map.replicasOf(chunk, replication);
  std::stable_partition(nodes.begin(), nodes.end(), [&](NodeId id) {
    const NodeEntry* n = map.node(id);
    return n != nullptr && n->state != meta::NodeState::Down && !cluster.isSuspect(id);
  });
  return nodes;
}

// Rounds over a record's replicas before a read fails, and the pause before
// the second (doubled before the third): together with the client timeout
// they bound how long a read waits out a stalled node.
constexpr int kFailoverRounds = 3;
constexpr std::chrono::milliseconds kFailoverBackoff{100};

// A failure another try may not repeat: the node stalled or was cut off,
// or the chunk was not where a stale map said.
bool mayPass(const Status& s) {
  return nodeFailure(s) || s.code() == StatusCode::kNotFound;
}

Result<FileExtent> extentFromWire(const meta::Extent& e) {
  auto codec = codecFromByte(static_cast<uint8_t>(e.codec()));
  if (!codec) {
    return Status(StatusCode::kProtocolError,
                  "extent with unknown codec " + std::to_string(static_cast<int>(e.codec())));
  }
  if (e.raw_length() == 0 || e.raw_length() > kMaxRecordSizeCap ||
      e.stored_length() == 0 || e.stored_length() > kMaxRecordSizeCap) {
    return Status(StatusCode::kProtocolError, "extent with record length out of bounds");
  }
  FileExtent x;
  x.file_offset = e.file_offset();
  x.raw_length = e.raw_length();
  x.record = RecordHash{e.record().hi(), e.record().lo()};
  x.chunk = ChunkId{e.chunk().hi(), e.chunk().lo()};
  x.chunk_offset = e.chunk_offset();
  x.stored_length = e.stored_length();
  x.codec = *codec;
  return x;
}

FileType typeFromWire(meta::EntryType t) {
  switch (t) {
    case meta::EntryType::Directory:
      return FileType::kDirectory;
    case meta::EntryType::Symlink:
      return FileType::kSymlink;
    default:
      return FileType::kFile;
  }
}

}  // namespace

DatasetReader::DatasetReader(Cluster& cluster, std::string dataset, uint64_t dataset_id, uint32_t version,
                             uint32_t replication, std::unique_ptr<BufferPool> pool, RecordCache* cache)
    : cluster_(cluster),
      dataset_(std::move(dataset)),
      dataset_id_(dataset_id),
      version_(version),
      replication_(replication),
      pool_(std::move(pool)),
      cache_(cache) {}

Result<std::unique_ptr<DatasetReader>> DatasetReader::open(Cluster& cluster,
                                                           const std::string& dataset,
                                                           const std::string& version,
                                                           const ReaderOptions& options) {
  meta::ResolveVersionRequestT rreq;
  rreq.dataset = dataset;
  rreq.version = version;
  SLUICE_ASSIGN_OR_RETURN(auto resolved,
                          (cluster.meta<meta::ResolveVersionRequest, meta::ResolveVersionResponse>(
                              meta::MetaMethod::ResolveVersion, rreq, "ResolveVersion")));
  if (resolved->state != meta::VersionState::Committed) {
    return failedPrecondition(dataset + "@" + versionRef(resolved->version) +
                              " is not committed (still a draft, or aborted); only committed "
                              "versions can be read");
  }
  meta::GetDatasetRequestT dreq;
  dreq.name = dataset;
  SLUICE_ASSIGN_OR_RETURN(auto info, (cluster.meta<meta::GetDatasetRequest, meta::GetDatasetResponse>(
                                         meta::MetaMethod::GetDataset, dreq, "GetDataset")));
  if (!info->dataset || info->dataset->replication == 0) {
    return Status(StatusCode::kProtocolError, "GetDataset " + dataset + ": no replication factor");
  }
  SLUICE_ASSIGN_OR_RETURN(auto pool, BufferPool::create(cluster.endpoint(), options.slot_size,
                                                        options.slots, net::Access::kRemoteWrite));
  return std::unique_ptr<DatasetReader>(new DatasetReader(
      cluster, dataset, info->dataset->dataset_id, resolved->version, info->dataset->replication,
      std::move(pool), options.cache));
}

Result<FileInfo> DatasetReader::stat(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(auto files, statMany({path}));
  return std::move(files.front());
}

Result<std::vector<FileInfo>> DatasetReader::statMany(const std::vector<std::string>& paths) {
  std::vector<FileInfo> out;
  out.reserve(paths.size());
  // Shrinks to what one reply held when meta answers part of a batch: meta
  // looks up every path it is sent, so sending far more than fits wastes its work.
  size_t batch_paths = kLookupBatchPaths;
  while (out.size() < paths.size()) {
    // As many of the paths left as fit one request; meta answers a prefix
    // of them when all the answers would not fit a reply.
    meta::LookupRequestT req;
    req.dataset = dataset_;
    req.version = versionRef(version_);
    req.with_extents = true;
    size_t bytes = 0;
    for (size_t i = out.size(); i < paths.size() && req.paths.size() < batch_paths; ++i) {
      bytes += paths[i].size() + 8;
      if (!req.paths.empty() && bytes > kLookupBatchBytes) break;
      req.paths.push_back(paths[i]);
    }
    SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster_.meta<meta::LookupRequest, meta::LookupResponse>(
                                           meta::MetaMethod::Lookup, req, "Lookup")));
    if (resp->results.empty() || resp->results.size() > req.paths.size()) {
      return Status(StatusCode::kProtocolError, "Lookup answered " +
                                                    std::to_string(resp->results.size()) +
                                                    " results for " + std::to_string(req.paths.size()));
    }
    if (resp->results.size() < req.paths.size()) {
      batch_paths = resp->results.size();
    } else {
      batch_paths = std::min(kLookupBatchPaths, 2 * batch_paths);
    }
    for (const auto& r : resp->results) {
      SLUICE_ASSIGN_OR_RETURN(FileInfo f, fileInfoOf(paths[out.size()], r.get()));
      out.push_back(std::move(f));
    }
  }
  return out;
}

Result<FileInfo> DatasetReader::fileInfoOf(const std::string& path,
                                           const meta::LookupResultT* r) {
  if (!r || !r->found || !r->entry) {
    return notFound(dataset_ + "@" + versionRef(version_) + ": no such file or directory '" +
                    path + "'");
  }
  FileInfo f;
  f.path = path;
  f.type = typeFromWire(r->entry->type);
  f.size = r->entry->size;
  f.mode = r->entry->mode;
  f.mtime_ns = r->entry->mtime_ns;
  f.symlink_target = r->entry->symlink_target;
  for (const auto& e : r->extents) {
    SLUICE_ASSIGN_OR_RETURN(FileExtent x, extentFromWire(e));
    f.extents.push_back(x);
  }
  if (f.type == FileType::kFile &&
      (!r->extents_complete || f.extents.size() < r->entry->extent_count)) {
    SLUICE_RETURN_IF_ERROR(completeExtents(f));
  }
  // The extents must tile the file exactly: reads rely on it.
  uint64_t next = 0;
  for (const auto& x : f.extents) {
    if (x.file_offset != next) {
      return Status(StatusCode::kProtocolError, "'" + f.path + "': extents do not tile the file");
    }
    next += x.raw_length;
  }
  if (f.type == FileType::kFile && next != f.size) {
    return Status(StatusCode::kProtocolError, "'" + f.path + "': extents cover " +
                                                  std::to_string(next) + " of " +
                                                  std::to_string(f.size) + " bytes");
  }
  return f;
}

Status DatasetReader::completeExtents(FileInfo& file) {
  for (;;) {
    meta::GetExtentsRequestT req;
    req.dataset = dataset_;
    req.version = versionRef(version_);
    req.path = file.path;
    req.first_index = static_cast<uint32_t>(file.extents.size());
    SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster_.meta<meta::GetExtentsRequest, meta::GetExtentsResponse>(
                                           meta::MetaMethod::GetExtents, req, "GetExtents")));
    // Each page must continue the file's bytes and stay within its size, so
    // a server's `total` can never make this loop grow without bound.
    uint64_t end = file.extents.empty() ? 0
                                        : file.extents.back().file_offset + file.extents.back().raw_length;
    for (const auto& e : resp->extents) {
      SLUICE_ASSIGN_OR_RETURN(FileExtent x, extentFromWire(e));
      if (x.file_offset != end || x.raw_length > file.size - std::min(end, file.size)) {
        return Status(StatusCode::kProtocolError,
                      "GetExtents '" + file.path + "': an extent at " + std::to_string(x.file_offset) +
                          " does not continue the file at " + std::to_string(end) +
                          " within its " + std::to_string(file.size) + " bytes");
      }
      end += x.raw_length;
      file.extents.push_back(x);
    }
    if (file.extents.size() >= resp->total) return Status();
    if (resp->extents.empty()) {
      return Status(StatusCode::kProtocolError,
                    "GetExtents '" + file.path + "': empty page before the last extent");
    }
  }
}

Result<std::vector<uint8_t>> DatasetReader::readAll(const FileInfo& file) {
  std::vector<uint8_t> out(file.size);
  SLUICE_ASSIGN_OR_RETURN(size_t n, read(file, 0, out));
  out.resize(n);
  return out;
}

void DatasetReader::countFetch(uint64_t stored_bytes) {
  stats_.records_fetched++;
  stats_.bytes_fetched += stored_bytes;
  readerMetrics().records.inc();
  readerMetrics().bytes.inc(stored_bytes);
}

Status DatasetReader::decodeExtent(const FileExtent& e, std::span<const uint8_t> stored,
                                   uint64_t offset, std::span<uint8_t> out,
                                   const std::string& name) {
  uint64_t begin = std::max(e.file_offset, offset);
  uint64_t end = std::min<uint64_t>(e.file_offset + e.raw_length, offset + out.size());
  if (begin == e.file_offset && end == e.file_offset + e.raw_length) {
    std::span<uint8_t> whole = out.subspan(begin - offset, e.raw_length);
    SLUICE_RETURN_IF_ERROR(decodeRecordInto(stored, e.codec, e.raw_length, e.record, whole, name));
    if (cache_ != nullptr) cache_->insert(e.record, whole);
    return Status();
  }
  SLUICE_ASSIGN_OR_RETURN(auto raw, decodeRecord(stored, e.codec, e.raw_length, e.record, name));
  if (cache_ != nullptr) cache_->insert(e.record, raw);
  std::copy(raw.begin() + static_cast<ptrdiff_t>(begin - e.file_offset),
            raw.begin() + static_cast<ptrdiff_t>(end - e.file_offset),
            out.begin() + static_cast<ptrdiff_t>(begin - offset));
  return Status();
}

Result<size_t> DatasetReader::read(const FileInfo& file, uint64_t offset, std::span<uint8_t> out) {
  if (file.type != FileType::kFile) {
    return invalidArgument("'" + file.path + "' is not a regular file");
  }
  if (offset >= file.size || out.empty()) return size_t{0};
  uint64_t end = std::min<uint64_t>(file.size, offset + out.size());
  std::span<uint8_t> dest = out.first(static_cast<size_t>(end - offset));

  auto first = std::upper_bound(file.extents.begin(), file.extents.end(), offset,
                                [](uint64_t off, const FileExtent& e) { return off < e.file_offset; });
  if (first != file.extents.begin()) --first;

  struct Pending {
    const FileExtent* extent;
    std::vector<NodeId> replicas;
    BufferSlot slot;
    std::unique_ptr<net::MemoryRegion> large;
    Awaited<Result<uint64_t>> done;
  };
  std::deque<Pending> pending;
  Status failure;
  auto map = cluster_.map();

  auto drain = [&](Pending& p) {
    Result<uint64_t> got = p.done.get();
    Status s = got.status();
    if (nodeFailure(s)) cluster_.markSuspect(p.replicas[0]);
    if (s.isOk()) cluster_.markAnswered(p.replicas[0]);
    std::string name = "record " + p.extent->record.toHex() + " of '" + file.path + "' (chunk " +
                       p.extent->chunk.toHex() + ")";
    if (s.isOk()) {
      const uint8_t* data = p.large ? p.large->data() : p.slot.data();
      countFetch(p.extent->stored_length);
      s = decodeExtent(*p.extent, {data, p.extent->stored_length}, offset, dest, name);
    }
    p.slot.release();
    p.large.reset();
    if (!s.isOk()) {
      // Retry on the remaining replicas, synchronously: failures are rare.
      uint64_t begin = std::max(p.extent->file_offset, offset);
      uint64_t stop = std::min<uint64_t>(p.extent->file_offset + p.extent->raw_length, end);
      std::vector<uint8_t> tmp(p.extent->raw_length);
      s = fetchWithFailover(*p.extent, tmp, p.replicas[0], s);
      if (s.isOk()) {
        std::copy(tmp.begin() + static_cast<ptrdiff_t>(begin - p.extent->file_offset),
                  tmp.begin() + static_cast<ptrdiff_t>(stop - p.extent->file_offset),
                  dest.begin() + static_cast<ptrdiff_t>(begin - offset));
      }
    }
    if (!s.isOk() && failure.isOk()) failure = s;
  };

  for (auto it = first; it != file.extents.end() && it->file_offset < end; ++it) {
    if (cache_ != nullptr) {
      uint64_t begin = std::max(it->file_offset, offset);
      uint64_t stop = std::min<uint64_t>(it->file_offset + it->raw_length, end);
      if (cache_->read(it->record, it->raw_length, begin - it->file_offset,
                       dest.subspan(begin - offset, stop - begin))) {
        stats_.cache_hits++;
        readerMetrics().cache_hits.inc();
        continue;
      }
    }
    Pending p;
    p.extent = &*it;
    p.replicas = readOrder(cluster_, *map, it->chunk, replication_);
    if (p.replicas.empty()) {
      if (failure.isOk()) {
        failure = unavailable("chunk " + it->chunk.toHex() + " of '" + file.path +
                              "': its stripe has no storage nodes in map epoch " +
                              std::to_string(map->epoch()));
      }
      break;
    }
    net::RemoteBuffer target;
    if (it->stored_length > pool_->slotSize()) {
      auto region = cluster_.endpoint().allocateMemory(it->stored_length, net::Access::kRemoteWrite);
      if (!region.isOk()) {
        failure = region.status();
        break;
      }
      p.large = std::move(*region);
      target = p.large->remote(0, it->stored_length);
    } else {
      std::optional<BufferSlot> slot = pool_->tryAcquire();
      while (!slot && !pending.empty()) {
        drain(pending.front());
        pending.pop_front();
        slot = pool_->tryAcquire();
      }
      p.slot = slot ? std::move(*slot) : pool_->acquire();
      target = p.slot.remote(it->stored_length);
    }
    p.done = getChunkRange(cluster_, p.replicas[0], it->chunk, it->chunk_offset,
                           it->stored_length, target);
    pending.push_back(std::move(p));
  }
  while (!pending.empty()) {
    drain(pending.front());
    pending.pop_front();
  }
  if (!failure.isOk()) return failure;
  return dest.size();
}

Status DatasetReader::fetchWithFailover(const FileExtent& extent, std::span<uint8_t> out,
                                        NodeId failed, Status first_error) {
  const std::string name = "record " + extent.record.toHex() + " (chunk " + extent.chunk.toHex() + ")";
  // Each node's answer once, in the order first heard, with how often it
  // came: rounds retry the same nodes, and a list naming each three times
  // hid which nodes there were.
  std::vector<std::pair<std::string, int>> answers;
  auto note = [&](NodeId node, const Status& s) {
    std::string a = "node " + std::to_string(node) + ": " + s.toString();
    for (auto& [text, times] : answers) {
      if (text == a) {
        ++times;
        return;
      }
    }
    answers.emplace_back(std::move(a), 1);
  };
  note(failed, first_error);
  std::set<NodeId> bad_copy;  // answered with a corrupt or unreadable copy: never again
  if (!mayPass(first_error)) bad_copy.insert(failed);
  for (int round = 0; round < kFailoverRounds; ++round) {
    auto map = cluster_.map();
    if (round > 0) {
      std::this_thread::sleep_for(kFailoverBackoff * round);
      // A stripe that moved (repair, rebalance) is on other nodes now.
      (void)cluster_.refreshMap(map->epoch());
      map = cluster_.map();
    }
    std::vector<NodeId> replicas = readOrder(cluster_, *map, extent.chunk, replication_);
    std::erase_if(replicas, [&](NodeId id) {
      return bad_copy.count(id) != 0 || (round == 0 && id == failed);
    });
    // After a first round, a node meta calls down is not waited for again
    // while another replica may answer.
    auto is_down = [&](NodeId id) {
      const NodeEntry* n = map->node(id);
      return n != nullptr && n->state == meta::NodeState::Down;
    };
    if (round > 0 && !std::all_of(replicas.begin(), replicas.end(), is_down)) {
      std::erase_if(replicas, is_down);
    }
    // With one replica, the node that failed first is the only one to retry.
    bool worth_another_round = round == 0 && mayPass(first_error);
    for (NodeId node : replicas) {
      auto region =
          cluster_.endpoint().allocateMemory(extent.stored_length, net::Access::kRemoteWrite);
      if (!region.isOk()) return region.status();
      auto got = getChunkRange(cluster_, node, extent.chunk, extent.chunk_offset,
                               extent.stored_length, (*region)->remote(0, extent.stored_length))
                     .get();
      Status s = got.status();
      if (nodeFailure(s)) cluster_.markSuspect(node);
      if (s.isOk()) {
        cluster_.markAnswered(node);
        s = decodeRecordInto({(*region)->data(), extent.stored_length}, extent.codec,
                             extent.raw_length, extent.record, out, name);
      }
      if (s.isOk()) {
        if (cache_ != nullptr) cache_->insert(extent.record, out);
        stats_.failovers++;
        readerMetrics().failovers.inc();
        countFetch(extent.stored_length);
        return s;
      }
      note(node, s);
      if (mayPass(s)) {
        worth_another_round = true;
      } else {
        bad_copy.insert(node);
      }
    }
    if (!worth_another_round) break;
  }
  std::string errors;
  for (const auto& [text, times] : answers) {
    errors += (errors.empty() ? "" : "; ") + text + (times > 1 ? " (" + std::to_string(times) + " times)" : "");
  }
  StatusCode code = first_error.code();
  if (code == StatusCode::kCorruption) code = StatusCode::kChecksumMismatch;
  // The version names this record, so "not found" on every replica left is
  // lost data, not a wrong name: a data error (EIO through the mount, exit
  // code 6), not ENOENT or "not found".
  if (code == StatusCode::kNotFound) {
    if (std::string gone = whyVersionIsGone(); !gone.empty()) {
      return notFound(dataset_ + "@v" + std::to_string(version_) + " " + gone + " while it was being read: " + name +
                      " is gone from every replica (gc collected it)");
    }
    code = StatusCode::kCorruption;
  }
  return Status(code, name + ": no replica could serve it (" + errors + ")");
}

std::string DatasetReader::whyVersionIsGone() {
  meta::GetVersionRequestT req;
  req.dataset = dataset_;
  req.version = "v" + std::to_string(version_);
  auto r = cluster_.meta<meta::GetVersionRequest, meta::GetVersionResponse>(meta::MetaMethod::GetVersion, req,
                                                                            "GetVersion");
  if (!r.isOk()) return r.status().code() == StatusCode::kNotFound ? "was deleted" : "";
  const auto& v = (*r)->version;
  if (!v) return "";
  if (dataset_id_ != 0 && v->dataset_id != 0 && v->dataset_id != dataset_id_) {
    return "was deleted (its dataset was deleted and created again)";
  }
  return v->state == meta::VersionState::Committed ? "" : "was deleted";
}

}  // namespace sluice::client
