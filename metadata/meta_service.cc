#include "metadata/meta_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string_view>
#include <vector>

#include "common/core/copy_rate.h"
#include "common/core/metrics.h"
#include "common/wire/body.h"
#include "metadata/limits.h"

namespace sluice::meta {

namespace fb = flatbuffers;
namespace w = wire::meta;
using w::MetaMethod;

namespace {

std::string_view sv(const fb::String* s) {
  return s == nullptr ? std::string_view() : std::string_view(s->data(), s->size());
}

Hash128 fromWire(const w::Hash* h) { return h == nullptr ? Hash128{} : Hash128{h->hi(), h->lo()}; }
w::Hash toWire(const Hash128& h) { return w::Hash(h.hi, h.lo); }

w::Extent toWire(const Extent& e) {
  return w::Extent(e.file_offset, toWire(e.record), toWire(e.chunk), e.raw_length, e.chunk_offset,
                   e.stored_length, static_cast<w::Codec>(e.codec));
}

fb::Offset<w::NodeInfo> encodeNode(fb::FlatBufferBuilder& fbb, const NodeRecord& n) {
  return w::CreateNodeInfo(fbb, n.id, fbb.CreateString(n.address), n.capacity_bytes, n.used_bytes,
                           n.chunk_count, n.error_count, static_cast<w::NodeState>(n.state),
                           n.last_heartbeat_ms);
}

fb::Offset<w::DatasetInfo> encodeDataset(fb::FlatBufferBuilder& fbb, const DatasetInfo& d) {
  return w::CreateDatasetInfo(fbb, fbb.CreateString(d.name), d.replication, d.chunk_size,
                              static_cast<w::CompressionPolicy>(d.compression), d.created_ms,
                              d.next_version, d.version_count, d.tag_count, d.id);
}

fb::Offset<w::VersionInfo> encodeVersion(fb::FlatBufferBuilder& fbb, const VersionInfo& v) {
  std::vector<fb::Offset<fb::String>> tags;
  for (const auto& t : v.tags) tags.push_back(fbb.CreateString(t));
  return w::CreateVersionInfo(fbb, fbb.CreateString(v.dataset), v.version,
                              static_cast<w::VersionState>(v.state), v.created_ms, v.committed_ms,
                              v.file_count, v.logical_bytes, v.stored_bytes,
                              fbb.CreateString(v.message), fbb.CreateVector(tags), v.dataset_id);
}

fb::Offset<w::Entry> encodeEntry(fb::FlatBufferBuilder& fbb, const Entry& e) {
  auto path = fbb.CreateString(e.path);
  auto target = e.type == EntryType::kSymlink ? fbb.CreateString(e.symlink_target)
                                              : fb::Offset<fb::String>();
  return w::CreateEntry(fbb, path, static_cast<w::EntryType>(e.type), e.size, e.mode, e.mtime_ns,
                        e.extent_count, target);
}

NodeUsage usageOf(uint64_t cap, uint64_t used, uint64_t chunks, uint64_t errors) {
  return NodeUsage{cap, used, chunks, errors};
}

// A handler body: fills and finishes fbb from the verified request.
template <typename Req>
using Body = std::function<Status(const Req&, fb::FlatBufferBuilder&)>;

template <typename Req>
void serve(net::Endpoint& ep, MetaMethod method, Body<Req> body,
           net::HandlerMode mode = net::HandlerMode::kWorker) {
  const char* name = w::EnumNameMetaMethod(method);
  Counter& errors = MetricsRegistry::global().counter(
      "sluice_meta_rpc_errors_total", "metadata RPCs answered with an error", {{"method", name}});
  Histogram& latency = MetricsRegistry::global().histogram(
      "sluice_meta_rpc_seconds", "metadata RPC handling time", {{"method", name}});
  ep.registerHandler(metaOpcode(method), [body = std::move(body), name, &errors,
                                          &latency](std::unique_ptr<net::IncomingCall> call) {
    LatencyTimer timer(latency);
    auto req = wire::decodeBody<Req>(call->body(), std::string(name) + " request");
    if (!req.isOk()) {
      errors.inc();
      call->reply(req.status());
      return;
    }
    fb::FlatBufferBuilder fbb(1024);
    Status s = body(**req, fbb);
    if (!s.isOk()) {
      errors.inc();
      if (s.code() == StatusCode::kInternal || s.code() == StatusCode::kCorruption ||
          s.code() == StatusCode::kIoError || s.code() == StatusCode::kNoSpace) {
        spdlog::error("{}: {}", name, s.toString());
      }
      call->reply(s);
      return;
    }
    call->reply(Status::ok(), std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()));
  }, mode);
}

// How often nodes should heartbeat: a quarter of the timeout, so a node
// misses three in a row before it is marked down. Told in every
// RegisterNode and Heartbeat answer, so nodes follow a restarted meta's new
// --heartbeat_timeout without restarting themselves.
uint32_t heartbeatIntervalMs(const MetaStoreOptions& o) {
  return static_cast<uint32_t>(std::clamp<int64_t>(o.heartbeat_timeout_ms / 4, 50, 3'600'000));
}

Status checkEnum(bool ok, const char* field) {
  return ok ? Status::ok() : invalidArgument(std::string(field) + ": unknown enum value");
}

// Encodes the items, in order, while the reply stays within kReplyBudget
// (always at least one): long names and symlink targets can outgrow a frame
// well before a page's `limit`. The caller asks again for the rest.
template <typename T, typename Encode>
auto encodePrefixWithinBudget(fb::FlatBufferBuilder& fbb, const std::vector<T>& items,
                              Encode encode) {
  std::vector<decltype(encode(items.front()))> out;
  for (const T& item : items) {
    if (!out.empty() && fbb.GetSize() > kReplyBudget) break;
    out.push_back(encode(item));
  }
  return out;
}

// The same for a paged answer: a page that does not fit ends early, and
// `next` becomes the cursor after the last item sent (`cursorOf`), where the
// caller resumes.
template <typename T, typename Encode, typename CursorOf>
auto encodeWithinBudget(fb::FlatBufferBuilder& fbb, const std::vector<T>& items, std::string& next,
                        Encode encode, CursorOf cursorOf) {
  auto out = encodePrefixWithinBudget(fbb, items, encode);
  if (out.size() < items.size()) next = cursorOf(items[out.size() - 1]);
  return out;
}

}  // namespace

void MetaService::registerHandlers(net::Endpoint& ep) {
  MetaStore* st = store_;

  // ---- nodes and the cluster map
  serve<w::RegisterNodeRequest>(ep, MetaMethod::RegisterNode, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(
        RegisterResult res,
        st->registerNode(fromWire(r.cluster_id()), r.node_id(), sv(r.address()),
                         usageOf(r.capacity_bytes(), r.used_bytes(), r.chunk_count(), 0)));
    w::Hash cid = toWire(res.cluster_id);
    fbb.Finish(w::CreateRegisterNodeResponse(
        fbb, &cid, res.node_id, res.map_epoch, heartbeatIntervalMs(st->options())));
    return Status::ok();
  }, net::HandlerMode::kWorkerUnlimited);
  serve<w::HeartbeatRequest>(ep, MetaMethod::Heartbeat, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(
        HeartbeatResult res,
        st->heartbeat(fromWire(r.cluster_id()), r.node_id(),
                      usageOf(r.capacity_bytes(), r.used_bytes(), r.chunk_count(), r.error_count())));
    fbb.Finish(w::CreateHeartbeatResponse(fbb, res.map_epoch, static_cast<w::NodeState>(res.state),
                                          heartbeatIntervalMs(st->options())));
    return Status::ok();
  }, net::HandlerMode::kWorkerUnlimited);
  serve<w::GetClusterMapRequest>(ep, MetaMethod::GetClusterMap, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(ClusterMap m, st->clusterMap());
    w::Hash cid = toWire(m.cluster_id);
    if (r.known_epoch() == m.epoch) {
      w::GetClusterMapResponseBuilder b(fbb);
      b.add_cluster_id(&cid);
      b.add_epoch(m.epoch);
      b.add_unchanged(true);
      b.add_stripe_count(m.stripe_count);
      b.add_max_replicas(m.max_replicas);
      fbb.Finish(b.Finish());
      return Status::ok();
    }
    std::vector<fb::Offset<w::NodeInfo>> nodes;
    for (const auto& n : m.nodes) nodes.push_back(encodeNode(fbb, n));
    fbb.Finish(w::CreateGetClusterMapResponse(fbb, &cid, m.epoch, false, m.stripe_count,
                                              m.max_replicas, fbb.CreateVector(m.replicas),
                                              fbb.CreateVector(nodes)));
    return Status::ok();
  });
  serve<w::ListNodesRequest>(ep, MetaMethod::ListNodes, [st](const auto&, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<NodeRecord> list, st->listNodes());
    std::vector<fb::Offset<w::NodeInfo>> nodes;
    for (const auto& n : list) nodes.push_back(encodeNode(fbb, n));
    fbb.Finish(w::CreateListNodesResponse(fbb, fbb.CreateVector(nodes)));
    return Status::ok();
  });
  serve<w::SetNodeStateRequest>(ep, MetaMethod::SetNodeState, [st](const auto& r, auto& fbb) {
    SLUICE_RETURN_IF_ERROR(checkEnum(r.state() <= w::NodeState::MAX, "state"));
    SLUICE_ASSIGN_OR_RETURN(NodeRecord n,
                            st->setNodeState(r.node_id(), static_cast<NodeState>(r.state())));
    SLUICE_ASSIGN_OR_RETURN(uint64_t epoch, st->mapEpoch());
    fbb.Finish(w::CreateSetNodeStateResponse(fbb, encodeNode(fbb, n), epoch));
    return Status::ok();
  });

  // ---- datasets
  serve<w::CreateDatasetRequest>(ep, MetaMethod::CreateDataset, [st](const auto& r, auto& fbb) {
    SLUICE_RETURN_IF_ERROR(checkEnum(r.compression() <= w::CompressionPolicy::MAX, "compression"));
    DatasetOptions o{r.replication(), r.chunk_size(), static_cast<CompressionPolicy>(r.compression())};
    SLUICE_ASSIGN_OR_RETURN(DatasetInfo d, st->createDataset(sv(r.name()), o));
    fbb.Finish(w::CreateCreateDatasetResponse(fbb, encodeDataset(fbb, d)));
    return Status::ok();
  });
  serve<w::ListDatasetsRequest>(ep, MetaMethod::ListDatasets, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(Page<DatasetInfo> p, st->listDatasets(sv(r.cursor()), r.limit()));
    std::string next = p.next_cursor;
    auto items = encodeWithinBudget(
        fbb, p.items, next, [&](const DatasetInfo& d) { return encodeDataset(fbb, d); },
        [](const DatasetInfo& d) { return d.name; });
    fbb.Finish(w::CreateListDatasetsResponse(fbb, fbb.CreateVector(items), fbb.CreateString(next)));
    return Status::ok();
  });
  serve<w::GetDatasetRequest>(ep, MetaMethod::GetDataset, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(DatasetInfo d, st->getDataset(sv(r.name())));
    fbb.Finish(w::CreateGetDatasetResponse(fbb, encodeDataset(fbb, d)));
    return Status::ok();
  });
  serve<w::DeleteDatasetRequest>(ep, MetaMethod::DeleteDataset, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(uint32_t n, st->deleteDataset(sv(r.name()), r.force()));
    fbb.Finish(w::CreateDeleteDatasetResponse(fbb, n));
    return Status::ok();
  });

  // ---- versions
  serve<w::BeginVersionRequest>(ep, MetaMethod::BeginVersion, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(VersionInfo v, st->beginVersion(sv(r.dataset()), sv(r.message())));
    fbb.Finish(w::CreateBeginVersionResponse(fbb, encodeVersion(fbb, v)));
    return Status::ok();
  });
  serve<w::AddFilesRequest>(ep, MetaMethod::AddFiles, [st](const auto& r, auto& fbb) {
    const auto* files = r.files();
    size_t n = files == nullptr ? 0 : files->size();
    if (n > kMaxFilesPerBatch) {
      return invalidArgument("files: at most " + std::to_string(kMaxFilesPerBatch) + " per batch");
    }
    std::vector<FileSpec> specs(n);
    for (size_t i = 0; i < n; ++i) {
      const w::FileSpec* f = files->Get(i);
      FileSpec& s = specs[i];
      s.path = std::string(sv(f->path()));
      s.size = f->size();
      s.mode = f->mode();
      s.mtime_ns = f->mtime_ns();
      s.append = f->append();
      // Unknown types are refused by the store, naming files[i].type.
      s.type = static_cast<EntryType>(f->type());
      s.symlink_target = std::string(sv(f->symlink_target()));
      if (const auto* ex = f->extents(); ex != nullptr) {
        s.extents.reserve(ex->size());
        for (const w::Extent* e : *ex) {
          Extent x;
          x.file_offset = e->file_offset();
          x.record = Hash128{e->record().hi(), e->record().lo()};
          x.chunk = Hash128{e->chunk().hi(), e->chunk().lo()};
          x.raw_length = e->raw_length();
          x.chunk_offset = e->chunk_offset();
          x.stored_length = e->stored_length();
          x.codec = static_cast<uint8_t>(e->codec());  // range-checked by the store
          s.extents.push_back(x);
        }
      }
    }
    SLUICE_ASSIGN_OR_RETURN(AddFilesResult res, st->addFiles(sv(r.dataset()), r.version(), specs, r.dataset_id()));
    fbb.Finish(w::CreateAddFilesResponse(fbb, res.file_count, res.logical_bytes, res.stored_bytes));
    return Status::ok();
  });
  serve<w::CommitVersionRequest>(ep, MetaMethod::CommitVersion, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(VersionInfo v, st->commitVersion(sv(r.dataset()), r.version(),
                                                             sv(r.message()), r.keep_latest(),
                                                             r.dataset_id()));
    fbb.Finish(w::CreateCommitVersionResponse(fbb, encodeVersion(fbb, v)));
    return Status::ok();
  });
  serve<w::AbortVersionRequest>(ep, MetaMethod::AbortVersion, [st](const auto& r, auto& fbb) {
    SLUICE_RETURN_IF_ERROR(st->abortVersion(sv(r.dataset()), r.version()));
    fbb.Finish(w::CreateAbortVersionResponse(fbb));
    return Status::ok();
  });
  serve<w::ListVersionsRequest>(ep, MetaMethod::ListVersions, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(Page<VersionInfo> p,
                            st->listVersions(sv(r.dataset()), sv(r.cursor()), r.limit()));
    std::string next = p.next_cursor;
    auto items = encodeWithinBudget(
        fbb, p.items, next, [&](const VersionInfo& v) { return encodeVersion(fbb, v); },
        [](const VersionInfo& v) { return "v" + std::to_string(v.version); });
    fbb.Finish(w::CreateListVersionsResponse(fbb, fbb.CreateVector(items), fbb.CreateString(next)));
    return Status::ok();
  });
  serve<w::GetVersionRequest>(ep, MetaMethod::GetVersion, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(VersionInfo v, st->getVersion(sv(r.dataset()), sv(r.version())));
    fbb.Finish(w::CreateGetVersionResponse(fbb, encodeVersion(fbb, v)));
    return Status::ok();
  });
  serve<w::DeleteVersionRequest>(ep, MetaMethod::DeleteVersion, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(uint32_t n, st->deleteVersion(sv(r.dataset()), r.version(), r.force()));
    fbb.Finish(w::CreateDeleteVersionResponse(fbb, n));
    return Status::ok();
  });

  // ---- tags
  serve<w::SetTagRequest>(ep, MetaMethod::SetTag, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(uint32_t prev, st->setTag(sv(r.dataset()), sv(r.tag()), r.version(), r.dataset_id()));
    fbb.Finish(w::CreateSetTagResponse(fbb, prev));
    return Status::ok();
  });
  serve<w::DeleteTagRequest>(ep, MetaMethod::DeleteTag, [st](const auto& r, auto& fbb) {
    SLUICE_RETURN_IF_ERROR(st->deleteTag(sv(r.dataset()), sv(r.tag())));
    fbb.Finish(w::CreateDeleteTagResponse(fbb));
    return Status::ok();
  });
  serve<w::ResolveVersionRequest>(ep, MetaMethod::ResolveVersion, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(VersionInfo v, st->resolveVersion(sv(r.dataset()), sv(r.version())));
    fbb.Finish(w::CreateResolveVersionResponse(fbb, v.version, static_cast<w::VersionState>(v.state)));
    return Status::ok();
  });
  serve<w::ListTagsRequest>(ep, MetaMethod::ListTags, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(Page<TagInfo> p, st->listTags(sv(r.dataset()), sv(r.cursor()), r.limit()));
    std::string next = p.next_cursor;
    auto items = encodeWithinBudget(
        fbb, p.items, next,
        [&](const TagInfo& t) { return w::CreateTagInfo(fbb, fbb.CreateString(t.name), t.version); },
        [](const TagInfo& t) { return t.name; });
    fbb.Finish(w::CreateListTagsResponse(fbb, fbb.CreateVector(items), fbb.CreateString(next)));
    return Status::ok();
  });

  // ---- namespace
  // Stat is answered on the progress thread: LMDB serves it from its map in
  // microseconds, less than the hop to a worker (docs/performance.md).
  serve<w::StatRequest>(ep, MetaMethod::Stat, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(Entry e, st->stat(sv(r.dataset()), sv(r.version()), sv(r.path())));
    fbb.Finish(w::CreateStatResponse(fbb, encodeEntry(fbb, e)));
    return Status::ok();
  }, net::HandlerMode::kInline);
  serve<w::LookupRequest>(ep, MetaMethod::Lookup, [st](const auto& r, auto& fbb) {
    std::vector<std::string_view> paths;
    if (r.paths() != nullptr) {
      if (r.paths()->size() > kMaxPathsPerLookup) {
        return invalidArgument("paths: at most " + std::to_string(kMaxPathsPerLookup) + " per lookup");
      }
      for (const fb::String* p : *r.paths()) paths.push_back(sv(p));
    }
    // Keep the reply within budget: split extents evenly across paths.
    uint32_t max_extents = static_cast<uint32_t>(
        std::min<size_t>(kMaxPageLimit, kReplyBudget / 64 / std::max<size_t>(paths.size(), 1)));
    uint32_t resolved = 0;
    SLUICE_ASSIGN_OR_RETURN(std::vector<LookupResult> res,
                            st->lookup(sv(r.dataset()), sv(r.version()), paths, r.with_extents(),
                                       max_extents, &resolved));
    // Results for the first paths only when all would not fit (long paths
    // and symlink targets): the caller asks again for the rest.
    std::vector<w::Extent> ext;
    auto items = encodePrefixWithinBudget(fbb, res, [&](const LookupResult& x) {
      ext.clear();
      for (const auto& e : x.extents) ext.push_back(toWire(e));
      auto entry = x.found ? encodeEntry(fbb, x.entry) : fb::Offset<w::Entry>();
      auto extv = fbb.CreateVectorOfStructs(ext);
      return w::CreateLookupResult(fbb, x.found, entry, extv, x.extents_complete);
    });
    fbb.Finish(w::CreateLookupResponse(fbb, fbb.CreateVector(items), resolved));
    return Status::ok();
  });
  serve<w::ReadDirRequest>(ep, MetaMethod::ReadDir, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(Page<Entry> p, st->readDir(sv(r.dataset()), sv(r.version()),
                                                       sv(r.path()), sv(r.cursor()), r.limit()));
    std::string next = p.next_cursor;
    auto items = encodeWithinBudget(
        fbb, p.items, next, [&](const Entry& e) { return encodeEntry(fbb, e); },
        [](const Entry& e) { return e.path; });  // the entry's name
    fbb.Finish(w::CreateReadDirResponse(fbb, fbb.CreateVector(items), fbb.CreateString(next)));
    return Status::ok();
  });
  serve<w::GetExtentsRequest>(ep, MetaMethod::GetExtents, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(FileExtents fe, st->getExtents(sv(r.dataset()), sv(r.version()),
                                                           sv(r.path()), r.first_index(), r.limit()));
    std::vector<w::Extent> ext;
    for (const auto& e : fe.extents) ext.push_back(toWire(e));
    fbb.Finish(w::CreateGetExtentsResponse(fbb, fbb.CreateVectorOfStructs(ext), fe.total, fe.size));
    return Status::ok();
  });
  serve<w::ListFilesRequest>(ep, MetaMethod::ListFiles, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(Page<Entry> p, st->listFiles(sv(r.dataset()), sv(r.version()),
                                                         sv(r.cursor()), r.limit()));
    std::string next = p.next_cursor;
    auto items = encodeWithinBudget(
        fbb, p.items, next, [&](const Entry& e) { return encodeEntry(fbb, e); },
        [](const Entry& e) { return e.path; });
    fbb.Finish(w::CreateListFilesResponse(fbb, fbb.CreateVector(items), fbb.CreateString(next)));
    return Status::ok();
  });
  serve<w::DiffRequest>(ep, MetaMethod::Diff, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(Page<DiffEntry> p, st->diff(sv(r.dataset()), sv(r.from()), sv(r.to()),
                                                        sv(r.cursor()), r.limit()));
    std::string next = p.next_cursor;
    auto items = encodeWithinBudget(
        fbb, p.items, next,
        [&](const DiffEntry& d) {
          return w::CreateDiffEntry(fbb, fbb.CreateString(d.path), static_cast<w::ChangeKind>(d.kind),
                                    d.old_size, d.new_size);
        },
        [](const DiffEntry& d) { return d.path; });
    fbb.Finish(w::CreateDiffResponse(fbb, fbb.CreateVector(items), fbb.CreateString(next)));
    return Status::ok();
  });

  // ---- record index and gc
  serve<w::LookupRecordsRequest>(ep, MetaMethod::LookupRecords, [st](const auto& r, auto& fbb) {
    std::vector<Hash128> hashes;
    if (r.records() != nullptr) {
      if (r.records()->size() > kMaxRecordsPerLookup) {
        return invalidArgument("records: at most " + std::to_string(kMaxRecordsPerLookup) +
                               " per lookup");
      }
      hashes.reserve(r.records()->size());
      for (const w::Hash* h : *r.records()) hashes.push_back(Hash128{h->hi(), h->lo()});
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<RecordLocation> locs,
                            st->lookupRecords(sv(r.dataset()), hashes));
    std::vector<fb::Offset<w::RecordLocation>> items;
    items.reserve(locs.size());
    for (const auto& l : locs) {
      w::Hash chunk = toWire(l.chunk);
      items.push_back(w::CreateRecordLocation(fbb, l.found, l.found ? &chunk : nullptr,
                                              l.chunk_offset, l.stored_length, l.raw_length,
                                              static_cast<w::Codec>(l.codec)));
    }
    fbb.Finish(w::CreateLookupRecordsResponse(fbb, fbb.CreateVector(items)));
    return Status::ok();
  });
  serve<w::ListGarbageRequest>(ep, MetaMethod::ListGarbage, [st](const auto& r, auto& fbb) {
    if (r.grace_ms() > static_cast<uint64_t>(INT64_MAX)) return invalidArgument("grace_ms: too large");
    SLUICE_ASSIGN_OR_RETURN(Page<GarbageChunk> p,
                            st->listGarbage(static_cast<int64_t>(r.grace_ms()), sv(r.cursor()), r.limit()));
    std::vector<fb::Offset<w::GarbageChunk>> items;
    for (const auto& g : p.items) {
      w::Hash chunk = toWire(g.chunk);
      items.push_back(w::CreateGarbageChunk(fbb, &chunk, g.stripe));
    }
    fbb.Finish(w::CreateListGarbageResponse(fbb, fbb.CreateVector(items), fbb.CreateString(p.next_cursor)));
    return Status::ok();
  });

  serve<w::CollectGarbageRequest>(ep, MetaMethod::CollectGarbage, [st](const auto& r, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<GarbageChunk> taken, st->collectGarbage(r.limit()));
    std::vector<fb::Offset<w::GarbageChunk>> items;
    for (const auto& g : taken) {
      w::Hash chunk = toWire(g.chunk);
      items.push_back(w::CreateGarbageChunk(fbb, &chunk, g.stripe));
    }
    fbb.Finish(w::CreateCollectGarbageResponse(fbb, fbb.CreateVector(items)));
    return Status::ok();
  });

  serve<w::ClaimOrphansRequest>(ep, MetaMethod::ClaimOrphans, [st](const auto& r, auto& fbb) {
    std::vector<Hash128> chunks;
    if (r.chunks() != nullptr) {
      if (r.chunks()->size() > kMaxPageLimit) {
        return invalidArgument("ClaimOrphans: more than " + std::to_string(kMaxPageLimit) + " chunks");
      }
      for (const w::Hash* h : *r.chunks()) chunks.push_back(fromWire(h));
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<Hash128> claimed, st->claimOrphans(chunks, r.dry_run()));
    std::vector<w::Hash> out;
    for (const auto& c : claimed) out.push_back(toWire(c));
    fbb.Finish(w::CreateClaimOrphansResponseDirect(fbb, &out));
    return Status::ok();
  });

  serve<w::FindChunkUsersRequest>(ep, MetaMethod::FindChunkUsers, [st](const auto& r, auto& fbb) {
    std::vector<Hash128> chunks;
    if (r.chunks() != nullptr) {
      if (r.chunks()->size() > kMaxChunksPerUsersCall) {
        return invalidArgument("FindChunkUsers: more than " + std::to_string(kMaxChunksPerUsersCall) + " chunks");
      }
      for (const w::Hash* h : *r.chunks()) chunks.push_back(fromWire(h));
    }
    SLUICE_ASSIGN_OR_RETURN(ChunkUsers found, st->chunkUsers(chunks, r.max_paths()));
    std::vector<fb::Offset<w::ChunkUserInfo>> items;
    for (const auto& u : found.users) {
      w::Hash chunk = toWire(u.chunk);
      std::vector<fb::Offset<fb::String>> paths;
      for (const auto& p : u.paths) paths.push_back(fbb.CreateString(p));
      items.push_back(w::CreateChunkUserInfoDirect(fbb, &chunk, u.dataset.c_str(), u.dataset_id, u.version,
                                                   static_cast<w::VersionState>(u.state), &paths, u.more_paths));
    }
    fbb.Finish(w::CreateFindChunkUsersResponseDirect(fbb, &items, found.truncated,
                                                     static_cast<uint32_t>(found.answered)));
    return Status::ok();
  });

  // ---- repair
  StripeMover* mover = mover_;
  auto moveInfos = [](fb::FlatBufferBuilder& fbb, const std::vector<StripeMove>& moves) {
    std::vector<fb::Offset<w::StripeMoveInfo>> items;
    for (const auto& m : moves) {
      items.push_back(w::CreateStripeMoveInfo(fbb, m.stripe, m.from, m.to, m.source, m.created_ms));
    }
    return fbb.CreateVector(items);
  };
  serve<w::RepairRequest>(ep, MetaMethod::Repair, [mover, moveInfos](const auto&, auto& fbb) {
    if (mover == nullptr) return failedPrecondition("this sluice-meta runs no repair loop");
    SLUICE_ASSIGN_OR_RETURN(auto planned, mover->repairNow());
    fbb.Finish(w::CreateRepairResponse(fbb, moveInfos(fbb, planned)));
    return Status::ok();
  });
  serve<w::RebalanceRequest>(ep, MetaMethod::Rebalance, [st, moveInfos](const auto& r, auto& fbb) {
    SLUICE_RETURN_IF_ERROR(checkCopyRate(r.rate_bytes_per_sec(), "Rebalance: rate_bytes_per_sec"));
    SLUICE_ASSIGN_OR_RETURN(RebalancePlan plan, st->planRebalance(r.apply(), r.rate_bytes_per_sec()));
    std::vector<fb::Offset<w::RebalanceNodeInfo>> nodes;
    for (const auto& n : plan.nodes) {
      nodes.push_back(w::CreateRebalanceNodeInfo(fbb, n.id, n.capacity_bytes, n.used_bytes, n.slots_before, n.slots_after));
    }
    auto moves = moveInfos(fbb, plan.moves);
    fbb.Finish(w::CreateRebalanceResponse(fbb, moves, fbb.CreateVector(nodes), plan.bytes_to_copy));
    return Status::ok();
  });
  serve<w::ListMovesRequest>(ep, MetaMethod::ListMoves, [st, mover, moveInfos](const auto&, auto& fbb) {
    SLUICE_ASSIGN_OR_RETURN(auto moves, st->listMoves());
    SLUICE_ASSIGN_OR_RETURN(auto cleanups, st->listCleanups());
    MoverProgress p = mover ? mover->progress() : MoverProgress{};
    std::vector<w::Hash> lost;
    const auto all_lost = mover ? mover->lostChunks() : std::vector<StripeMover::LostChunk>{};
    for (const auto& l : all_lost) {
      if (lost.size() == kMaxChunksPerUsersCall) break;  // each can be asked FindChunkUsers
      lost.push_back(toWire(l.chunk));
    }
    auto moves_offset = moveInfos(fbb, moves);
    fbb.Finish(w::CreateListMovesResponse(fbb, moves_offset, cleanups.size(), p.moves_done, p.chunks_copied,
                                          p.bytes_copied, p.chunks_deleted, p.corrupt_repaired,
                                          fbb.CreateVectorOfStructs(lost), all_lost.size()));
    return Status::ok();
  });
}

}  // namespace sluice::meta
