#include "fuse/sluice_fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <optional>

#include <spdlog/spdlog.h>

#include "client/tags.h"
#include "common/core/metrics.h"

namespace sluice::fuse {
namespace {

namespace meta = wire::meta;

// Meta did not answer (down, restarting, cut off), as opposed to answering
// with an error: the mount may then stand on meta's last answer.
bool metaUnreachable(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kTimeout;
}

struct Metrics {
  Counter& reads = MetricsRegistry::global().counter("sluice_fuse_reads_total", "read requests served");
  Counter& read_bytes = MetricsRegistry::global().counter("sluice_fuse_read_bytes_total", "bytes returned by reads");
  Counter& read_errors = MetricsRegistry::global().counter("sluice_fuse_read_errors_total", "reads answered with an error");
  Counter& lookups = MetricsRegistry::global().counter("sluice_fuse_lookups_total", "name lookups");
  Counter& opens = MetricsRegistry::global().counter("sluice_fuse_opens_total", "files opened");
  Counter& readahead = MetricsRegistry::global().counter("sluice_fuse_readahead_bytes_total", "bytes fetched ahead of sequential readers");
  Histogram& read_seconds = MetricsRegistry::global().histogram("sluice_fuse_read_seconds", "read request latency");
};
Metrics& metrics() {
  static Metrics m;
  return m;
}

struct timespec toTimespec(int64_t ns) {
  struct timespec ts{};
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (ts.tv_nsec < 0) {
    ts.tv_sec -= 1;
    ts.tv_nsec += 1000000000;
  }
  return ts;
}

void setTimes(struct stat& st, int64_t ns) {
  st.st_mtim = st.st_ctim = st.st_atim = toTimespec(ns);
}

bool isNotFound(const Status& s) {
  return s.code() == StatusCode::kNotFound || s.code() == StatusCode::kInvalidArgument ||
         s.code() == StatusCode::kFailedPrecondition;
}

}  // namespace

// An open file: a data file of a version, or the statistics control file.
class OpenFile {
 public:
  bool is_stats = false;
  std::string stats_text;
  std::shared_ptr<const client::FileInfo> info;
  std::shared_ptr<client::DatasetReader> reader;

  std::mutex mu;
  uint64_t last_end = 0;       // GUARDED_BY(mu): where the previous read ended
  int sequential_streak = 0;   // GUARDED_BY(mu)
  struct Readahead {
    uint64_t begin = 0, end = 0;
    std::shared_future<void> done;
  };
  std::deque<Readahead> readaheads;  // GUARDED_BY(mu): in flight, in file order
  uint64_t ra_end = 0;               // GUARDED_BY(mu): where readahead has reached
};

SluiceFs::SluiceFs(client::Cluster& cluster, FsOptions options)
    : cluster_(cluster),
      options_(std::move(options)),
      uid_(::getuid()),
      gid_(::getgid()),
      mount_time_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count()),
      inodes_(toTimespec(mount_time_ns_)),
      dirs_(cluster, options_.dir_cache_entries),
      memory_cache_(options_.memory_cache_bytes) {}

SluiceFs::~SluiceFs() = default;

Result<std::unique_ptr<SluiceFs>> SluiceFs::create(client::Cluster& cluster, FsOptions options) {
  std::unique_ptr<SluiceFs> fs(new SluiceFs(cluster, std::move(options)));
  fs->cache_ = &fs->memory_cache_;
  if (!fs->options_.cache_dir.empty()) {
    SLUICE_ASSIGN_OR_RETURN(fs->local_cache_,
                            client::LocalCache::open(fs->options_.cache_dir, fs->options_.cache_bytes));
    fs->tiered_ = std::make_unique<client::TieredCache>(fs->memory_cache_, *fs->local_cache_);
    fs->cache_ = fs->tiered_.get();
  }
  // The root's listing, kept from the start: should meta fail before anyone
  // lists the mount, `ls` of it and the datasets in it still answer. A
  // failure here is not the mount's: the first listing asks again.
  (void)fs->listDir(kRootIno);
  return fs;
}

double SluiceFs::timeoutOf(NodeKind kind) const {
  if (kind == NodeKind::kVersion || kind == NodeKind::kEntry) {
    return static_cast<double>(options_.immutable_timeout.count());
  }
  return static_cast<double>(options_.mutable_timeout.count()) / 1000.0;
}

Node SluiceFs::controlNode(NodeKind kind) const {
  Node n;
  n.kind = kind;
  setTimes(n.attr, mount_time_ns_);
  n.attr.st_uid = uid_;
  n.attr.st_gid = gid_;
  if (kind == NodeKind::kControlDir) {
    n.name = ".sluice";
    n.attr.st_mode = S_IFDIR | 0555;
    n.attr.st_nlink = 2;
  } else {
    n.name = "stats";
    n.attr.st_mode = S_IFREG | 0444;
    n.attr.st_nlink = 1;
    // Generated at open; reads use direct I/O, so the size is a hint.
    n.attr.st_size = 0;
  }
  return n;
}

// A read-only directory of the mount's upper levels.
Node SluiceFs::directoryNode(NodeKind kind, const std::string& dataset, uint64_t dataset_id,
                             uint32_t version, int64_t mtime_ns) const {
  Node n;
  n.kind = kind;
  n.dataset = dataset;
  n.dataset_id = dataset_id;
  n.version = version;
  n.attr.st_mode = S_IFDIR | 0555;
  n.attr.st_nlink = 2;
  n.attr.st_uid = uid_;
  n.attr.st_gid = gid_;
  setTimes(n.attr, mtime_ns);
  return n;
}

Node SluiceFs::datasetNode(const meta::DatasetInfoT& info) const {
  return directoryNode(NodeKind::kDataset, info.name, info.dataset_id, 0,
                       info.created_ms * 1000000);
}

Node SluiceFs::versionNode(const meta::VersionInfoT& info) const {
  return directoryNode(NodeKind::kVersion, info.dataset, info.dataset_id, info.version,
                       info.committed_ms * 1000000);
}

Node SluiceFs::tagNode(const std::string& dataset, uint64_t dataset_id, const std::string& tag,
                       uint32_t version) const {
  Node n;
  n.kind = NodeKind::kTag;
  n.dataset = dataset;
  n.dataset_id = dataset_id;
  // The target is part of the identity: a tag that moves is a new symlink,
  // so a kernel that cached the old one sees a different inode.
  n.version = version;
  n.name = tag;
  n.symlink_target = "v" + std::to_string(version);
  n.attr.st_mode = S_IFLNK | 0777;
  n.attr.st_nlink = 1;
  setTimes(n.attr, mount_time_ns_);
  n.attr.st_size = static_cast<off_t>(n.symlink_target.size());
  n.attr.st_uid = uid_;
  n.attr.st_gid = gid_;
  return n;
}

Node SluiceFs::entryNode(const Node& parent, const DirEntry& e) const {
  Node n;
  n.kind = NodeKind::kEntry;
  n.dataset = parent.dataset;
  n.dataset_id = parent.dataset_id;
  n.version = parent.version;
  n.name = parent.kind == NodeKind::kVersion ? e.name : parent.name + "/" + e.name;
  n.symlink_target = e.symlink_target;
  mode_t type = e.type == client::FileType::kDirectory ? S_IFDIR
                : e.type == client::FileType::kSymlink ? S_IFLNK
                                                       : S_IFREG;
  n.attr.st_mode = type | (e.mode & 07777);
  n.attr.st_nlink = type == S_IFDIR ? 2 : 1;
  n.attr.st_size = static_cast<off_t>(type == S_IFLNK ? e.symlink_target.size() : e.size);
  n.attr.st_blocks = static_cast<blkcnt_t>((n.attr.st_size + 511) / 512);
  n.attr.st_blksize = 1 << 20;
  n.attr.st_uid = uid_;
  n.attr.st_gid = gid_;
  setTimes(n.attr, e.mtime_ns);
  return n;
}

EntryReply SluiceFs::entry(const Node& node) {
  auto [ino, stored] = inodes_.acquire(node, 1);
  EntryReply r;
  r.ino = ino;
  r.attr = stored->attr;
  r.timeout = timeoutOf(stored->kind);
  return r;
}

Result<std::shared_ptr<const DirListing>> SluiceFs::listingOf(const Node& dir) {
  return dirs_.get(dir.dataset, dir.dataset_id, dir.version,
                   dir.kind == NodeKind::kVersion ? "" : dir.name);
}

Result<EntryReply> SluiceFs::lookup(Ino parent, const std::string& name) {
  metrics().lookups.inc();
  auto p = inodes_.get(parent);
  if (!p) return notFound("inode " + std::to_string(parent));
  EntryReply absent;
  absent.timeout = timeoutOf(p->kind == NodeKind::kEntry ? NodeKind::kEntry : p->kind);
  switch (p->kind) {
    case NodeKind::kRoot: {
      if (name == ".sluice") return entry(controlNode(NodeKind::kControlDir));
      if (auto held = heldAnswer(*p, name)) return *held;
      meta::GetDatasetRequestT req;
      req.name = name;
      auto resp = cluster_.meta<meta::GetDatasetRequest, meta::GetDatasetResponse>(
          meta::MetaMethod::GetDataset, req, "GetDataset");
      if (!resp.isOk()) {
        if (metaUnreachable(resp.status())) return unanswered(*p, name, resp.status());
        last_.metaAnswered();
        if (isNotFound(resp.status())) return absent;
        return resp.status();
      }
      if (!(*resp)->dataset) return absent;
      return answered(*p, name, datasetNode(*(*resp)->dataset));
    }
    case NodeKind::kControlDir:
      if (name == "stats") return entry(controlNode(NodeKind::kStatsFile));
      return absent;
    case NodeKind::kDataset: {
      if (auto held = heldAnswer(*p, name)) return *held;
      meta::GetVersionRequestT req;
      req.dataset = p->dataset;
      req.version = name;
      auto resp = cluster_.meta<meta::GetVersionRequest, meta::GetVersionResponse>(
          meta::MetaMethod::GetVersion, req, "GetVersion");
      if (!resp.isOk()) {
        if (metaUnreachable(resp.status())) return unanswered(*p, name, resp.status());
        last_.metaAnswered();
        if (isNotFound(resp.status())) return absent;
        return resp.status();
      }
      const auto& v = (*resp)->version;
      if (!v || v->state != meta::VersionState::Committed) return absent;
      // The version's own dataset id, not the parent's: the parent may be
      // a dataset since deleted and created again.
      if (name == "v" + std::to_string(v->version)) return answered(*p, name, versionNode(*v));
      return answered(*p, name, tagNode(p->dataset, v->dataset_id, name, v->version));
    }
    case NodeKind::kVersion:
    case NodeKind::kEntry: {
      if (p->kind == NodeKind::kEntry && !S_ISDIR(p->attr.st_mode)) {
        return Status(StatusCode::kFailedPrecondition, p->name + " is not a directory");
      }
      SLUICE_ASSIGN_OR_RETURN(auto listing, listingOf(*p));
      const DirEntry* e = DirCache::find(*listing, name);
      if (e == nullptr) return absent;
      return entry(entryNode(*p, *e));
    }
    default:
      return absent;
  }
}

Result<EntryReply> SluiceFs::answered(const Node& parent, const std::string& name,
                                      const Node& node) {
  last_.metaAnswered();
  last_.keepName(parent, name, node);
  return entry(node);
}

Result<EntryReply> SluiceFs::unanswered(const Node& parent, const std::string& name,
                                        const Status& failure) {
  last_.metaUnreachable(failure);
  auto last = last_.name(parent, name);
  if (!last) {
    return failure.withContext("'" + name + "' in " + pathOf(parent) +
                               ", which this mount has not looked up before");
  }
  return standIn(*last);
}

std::optional<EntryReply> SluiceFs::heldAnswer(const Node& parent, const std::string& name) {
  if (!last_.metaJustFailed()) return std::nullopt;
  auto last = last_.name(parent, name);
  if (!last) return std::nullopt;
  return standIn(*last);
}

EntryReply SluiceFs::standIn(const Node& last) {
  // A version never changes under its name; a tag may have moved or a
  // dataset been deleted meanwhile. Each ask of an unreachable meta costs
  // the caller its failure time (about a second), so the kernel keeps this
  // answer a little longer than a fresh one before asking again.
  EntryReply reply = entry(last);
  reply.timeout = std::max(reply.timeout, kUnreachableEntryTimeout);
  return reply;
}

std::string SluiceFs::pathOf(const Node& dir) {
  return dir.kind == NodeKind::kDataset ? "/" + dir.dataset : "/";
}

Result<std::pair<struct stat, double>> SluiceFs::getattr(Ino ino) {
  auto n = inodes_.get(ino);
  if (!n) return notFound("inode " + std::to_string(ino));
  return std::make_pair(n->attr, timeoutOf(n->kind));
}

Result<std::string> SluiceFs::readlink(Ino ino) {
  auto n = inodes_.get(ino);
  if (!n) return notFound("inode " + std::to_string(ino));
  if (!S_ISLNK(n->attr.st_mode)) return invalidArgument("not a symlink");
  return n->symlink_target;
}

Ino SluiceFs::parentOf(Ino ino) const {
  auto n = inodes_.get(ino);
  if (!n) return ino;
  Node parent;
  parent.dataset = n->dataset;
  parent.dataset_id = n->dataset_id;
  switch (n->kind) {
    case NodeKind::kVersion:
      parent.kind = NodeKind::kDataset;
      break;
    case NodeKind::kEntry: {
      size_t slash = n->name.rfind('/');
      parent.kind = slash == std::string::npos ? NodeKind::kVersion : NodeKind::kEntry;
      parent.version = n->version;
      parent.name = slash == std::string::npos ? "" : n->name.substr(0, slash);
      break;
    }
    default:  // the root, and the directories in it
      return kRootIno;
  }
  // The kernel keeps a directory's parent while it keeps the directory, so
  // this finds it unless the parent is of a dataset since created again.
  Ino found = inodes_.find(parent);
  return found != 0 ? found : ino;
}

bool SluiceFs::listingNeverChanges(Ino ino) const {
  auto n = inodes_.get(ino);
  return n && (n->kind == NodeKind::kVersion || n->kind == NodeKind::kEntry);
}

Result<std::vector<DirItem>> SluiceFs::listDir(Ino ino) {
  auto p = inodes_.get(ino);
  if (!p) return notFound("inode " + std::to_string(ino));
  std::vector<DirItem> items;
  switch (p->kind) {
    case NodeKind::kRoot:
    case NodeKind::kDataset: {
      // Datasets and versions come from meta; while it cannot be reached, its
      // last listing of this directory stands in (as for lookups). Unlike a
      // lookup, a listing always asks first: `ls` must show what is new as
      // soon as meta is back.
      auto fresh = metaListing(*p);
      if (!fresh.isOk() && metaUnreachable(fresh.status())) return lastListing(*p, fresh.status());
      last_.metaAnswered();
      if (fresh.isOk()) last_.keepListing(*p, *fresh);
      return fresh;
    }
    case NodeKind::kControlDir:
      items.push_back({"stats", controlNode(NodeKind::kStatsFile)});
      break;
    case NodeKind::kVersion:
    case NodeKind::kEntry: {
      if (p->kind == NodeKind::kEntry && !S_ISDIR(p->attr.st_mode)) {
        return Status(StatusCode::kFailedPrecondition, p->name + " is not a directory");
      }
      SLUICE_ASSIGN_OR_RETURN(auto listing, listingOf(*p));
      items.reserve(listing->size());
      for (const auto& e : *listing) items.push_back({e.name, entryNode(*p, e)});
      break;
    }
    default:
      return Status(StatusCode::kFailedPrecondition, "not a directory");
  }
  return items;
}

Result<std::vector<DirItem>> SluiceFs::lastListing(const Node& dir, const Status& failure) {
  last_.metaUnreachable(failure);
  auto last = last_.listing(dir);
  if (!last) {
    return failure.withContext("listing " + pathOf(dir) + ", which this mount has not listed before");
  }
  return std::move(*last);
}

Result<std::vector<DirItem>> SluiceFs::metaListing(const Node& dir) {
  std::vector<DirItem> items;
  switch (dir.kind) {
    case NodeKind::kRoot: {
      items.push_back({".sluice", controlNode(NodeKind::kControlDir)});
      std::string cursor;
      do {
        meta::ListDatasetsRequestT req;
        req.cursor = cursor;
        req.limit = 1000;
        SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster_.meta<meta::ListDatasetsRequest, meta::ListDatasetsResponse>(
                                               meta::MetaMethod::ListDatasets, req, "ListDatasets")));
        for (const auto& d : resp->datasets) {
          if (d) items.push_back({d->name, datasetNode(*d)});
        }
        cursor = resp->datasets.empty() ? "" : resp->next_cursor;
      } while (!cursor.empty());
      break;
    }
    case NodeKind::kDataset: {
      std::string cursor;
      do {
        meta::ListVersionsRequestT req;
        req.dataset = dir.dataset;
        req.cursor = cursor;
        req.limit = 1000;
        SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster_.meta<meta::ListVersionsRequest, meta::ListVersionsResponse>(
                                               meta::MetaMethod::ListVersions, req, "ListVersions")));
        for (const auto& v : resp->versions) {
          if (!v || v->state != meta::VersionState::Committed) continue;
          items.push_back({"v" + std::to_string(v->version), versionNode(*v)});
        }
        cursor = resp->versions.empty() ? "" : resp->next_cursor;
      } while (!cursor.empty());
      SLUICE_ASSIGN_OR_RETURN(auto tags, client::listTags(cluster_, dir.dataset));
      for (const auto& t : tags) {
        items.push_back({t.name, tagNode(dir.dataset, dir.dataset_id, t.name, t.version)});
      }
      break;
    }
    default:
      return Status(StatusCode::kFailedPrecondition, "not listed by meta");
  }
  return items;
}

Result<std::shared_ptr<client::DatasetReader>> SluiceFs::readerFor(const Node& node) {
  auto key = std::make_tuple(node.dataset, node.dataset_id, node.version);
  {
    std::lock_guard lock(readers_mu_);
    if (auto it = readers_.find(key); it != readers_.end()) return it->second;
  }
  client::ReaderOptions ro;
  ro.cache = cache_;
  ro.slots = 64;
  const std::string version = "v" + std::to_string(node.version);
  SLUICE_ASSIGN_OR_RETURN(auto reader, client::DatasetReader::open(cluster_, node.dataset, version, ro));
  std::shared_ptr<client::DatasetReader> shared(std::move(reader));
  std::lock_guard lock(readers_mu_);
  auto [it, inserted] = readers_.emplace(key, shared);
  return it->second;
}

Result<std::shared_ptr<const client::FileInfo>> SluiceFs::fileInfo(const Node& file,
                                                                    client::DatasetReader& reader) {
  const std::string& path = file.name;
  std::string prefix = file.dataset + '\0' + std::to_string(file.dataset_id) + '\0' +
                       std::to_string(file.version) + '\0';
  {
    std::lock_guard lock(files_mu_);
    if (auto it = files_.find(prefix + path); it != files_.end()) return it->second;
  }
  // A job that opens one file of a directory usually opens its siblings
  // next (shuffled small files): fetch their extents in the same round trip.
  std::vector<std::string> batch = {path};
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : path.substr(0, slash);
  auto listing = dirs_.get(file.dataset, file.dataset_id, file.version, dir);
  if (listing.isOk()) {
    std::lock_guard lock(files_mu_);
    for (const auto& e : **listing) {
      if (batch.size() >= kFileInfoBatch) break;
      std::string sibling = dir.empty() ? e.name : dir + "/" + e.name;
      if (e.type == client::FileType::kFile && sibling != path && files_.count(prefix + sibling) == 0) {
        batch.push_back(std::move(sibling));
      }
    }
  }
  auto infos = reader.statMany(batch);
  if (!infos.isOk()) {
    // A sibling that cannot be described must not fail this open.
    SLUICE_ASSIGN_OR_RETURN(auto one, reader.stat(path));
    return std::make_shared<const client::FileInfo>(std::move(one));
  }
  std::shared_ptr<const client::FileInfo> wanted;
  std::lock_guard lock(files_mu_);
  if (files_.size() + infos->size() > kMaxCachedFileInfos) files_.clear();
  for (auto& info : *infos) {
    auto shared = std::make_shared<const client::FileInfo>(std::move(info));
    if (!wanted) wanted = shared;
    files_[prefix + shared->path] = shared;
  }
  return wanted;
}

Result<OpenFile*> SluiceFs::open(Ino ino, int flags) {
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0) {
    return Status(StatusCode::kPermissionDenied, "the mount is read-only");
  }
  auto n = inodes_.get(ino);
  if (!n) return notFound("inode " + std::to_string(ino));
  auto file = std::make_unique<OpenFile>();
  if (n->kind == NodeKind::kStatsFile) {
    file->is_stats = true;
    file->stats_text = statsJson();
    return file.release();
  }
  if (n->kind != NodeKind::kEntry || !S_ISREG(n->attr.st_mode)) {
    return Status(StatusCode::kFailedPrecondition, "not a regular file");
  }
  SLUICE_ASSIGN_OR_RETURN(file->reader, readerFor(*n));
  file->info = inodes_.file(ino);
  if (!file->info) {
    SLUICE_ASSIGN_OR_RETURN(file->info, fileInfo(*n, *file->reader));
    inodes_.setFile(ino, file->info);
  }
  opens_++;
  metrics().opens.inc();
  return file.release();
}

void SluiceFs::release(OpenFile* file) { delete file; }

bool SluiceFs::isGenerated(const OpenFile* file) { return file->is_stats; }

void SluiceFs::startReadahead(OpenFile* f, uint64_t begin, uint64_t end) {
  f->ra_end = end;
  auto reader = f->reader;
  auto info = f->info;
  f->readaheads.push_back({begin, end, {}});
  f->readaheads.back().done = std::async(std::launch::async, [this, reader, info, begin, end] {
            std::vector<uint8_t> scratch(end - begin);
            auto got = reader->read(*info, begin, scratch);
            if (got.isOk()) {
              readahead_bytes_ += *got;
              metrics().readahead.inc(*got);
            }
          }).share();
}

Result<size_t> SluiceFs::read(OpenFile* f, uint64_t offset, std::span<uint8_t> out) {
  if (f->is_stats) {
    if (offset >= f->stats_text.size()) return size_t{0};
    size_t n = std::min(out.size(), f->stats_text.size() - static_cast<size_t>(offset));
    std::memcpy(out.data(), f->stats_text.data() + offset, n);
    return n;
  }
  LatencyTimer timer(metrics().read_seconds);
  metrics().reads.inc();
  const uint64_t size = f->info->size;
  const uint64_t end = std::min<uint64_t>(size, offset + out.size());
  std::vector<std::shared_future<void>> wait_for;
  if (options_.readahead_bytes > 0 && end < size) {
    std::lock_guard lock(f->mu);
    // The kernel's own readahead arrives out of order from several threads,
    // so "sequential" means near where the last read ended.
    const uint64_t slack = 4ull << 20;
    bool near = offset + slack >= f->last_end && offset <= f->last_end + slack;
    f->sequential_streak = near ? f->sequential_streak + 1 : 0;
    f->last_end = std::max(near ? f->last_end : 0, end);
    auto finished = [](const OpenFile::Readahead& r) {
      return r.done.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    };
    while (!f->readaheads.empty() && finished(f->readaheads.front())) f->readaheads.pop_front();
    for (const auto& r : f->readaheads) {
      if (offset < r.end && end > r.begin) wait_for.push_back(r.done);
    }
    // Keep the window ahead of the reader full with steps of a few records,
    // each fetched in parallel, several steps in flight: the pipeline never
    // drains the way one large readahead at a time would.
    if (f->sequential_streak >= 2) {
      const uint64_t step = std::min<uint64_t>(kReadaheadStep, options_.readahead_bytes);
      const size_t max_jobs = std::max<uint64_t>(options_.readahead_bytes / step, 1);
      uint64_t from = std::max(f->ra_end, end);
      const uint64_t want = std::min<uint64_t>(size, end + options_.readahead_bytes);
      while (from < want && f->readaheads.size() < max_jobs) {
        uint64_t stop = std::min(want, from + step);
        startReadahead(f, from, stop);
        from = stop;
      }
    }
  }
  // A readahead already fetching this range finishes sooner than a second fetch.
  for (auto& w : wait_for) w.wait();
  auto got = f->reader->read(*f->info, offset, out);
  if (!got.isOk()) {
    metrics().read_errors.inc();
    return got.status().withContext(f->reader->dataset() + "@v" +
                                    std::to_string(f->reader->version()) + "/" + f->info->path);
  }
  metrics().read_bytes.inc(*got);
  return got;
}

FsStats SluiceFs::stats() const {
  FsStats s;
  auto& m = metrics();
  s.reads = m.reads.value();
  s.read_bytes = m.read_bytes.value();
  s.read_errors = m.read_errors.value();
  s.lookups = m.lookups.value();
  s.opens = opens_;
  s.readahead_bytes = readahead_bytes_;
  auto snap = m.read_seconds.snapshot();
  s.read_p50_s = snap.percentile(0.50);
  s.read_p90_s = snap.percentile(0.90);
  s.read_p99_s = snap.percentile(0.99);
  {
    std::lock_guard lock(readers_mu_);
    for (const auto& [key, r] : readers_) {
      const auto& rs = r->stats();
      s.records_fetched += rs.records_fetched;
      s.bytes_fetched += rs.bytes_fetched;
      s.cache_hits += rs.cache_hits;
      s.failovers += rs.failovers;
    }
  }
  s.memory_cache_bytes = memory_cache_.bytes();
  if (local_cache_) s.local_cache = local_cache_->stats();
  s.inodes = inodes_.size();
  return s;
}

std::string SluiceFs::statsJson() const {
  FsStats s = stats();
  std::string out = "{\n";
  auto field = [&](const char* name, auto value, bool last = false) {
    out += "  \"" + std::string(name) + "\": " + std::to_string(value) + (last ? "\n" : ",\n");
  };
  field("reads", s.reads);
  field("read_bytes", s.read_bytes);
  field("read_errors", s.read_errors);
  field("read_latency_p50_s", s.read_p50_s);
  field("read_latency_p90_s", s.read_p90_s);
  field("read_latency_p99_s", s.read_p99_s);
  field("lookups", s.lookups);
  field("opens", s.opens);
  field("records_fetched", s.records_fetched);
  field("bytes_fetched", s.bytes_fetched);
  field("cache_hits", s.cache_hits);
  field("failovers", s.failovers);
  field("readahead_bytes", s.readahead_bytes);
  field("memory_cache_bytes", s.memory_cache_bytes);
  if (s.local_cache) {
    field("disk_cache_budget_bytes", s.local_cache->budget_bytes);
    field("disk_cache_used_bytes", s.local_cache->used_bytes);
    field("disk_cache_entries", s.local_cache->entries);
    field("disk_cache_hits", s.local_cache->hits);
    field("disk_cache_misses", s.local_cache->misses);
    field("disk_cache_dropped_corrupt", s.local_cache->dropped_corrupt);
  }
  field("inodes", s.inodes, true);
  out += "}\n";
  return out;
}

}  // namespace sluice::fuse
