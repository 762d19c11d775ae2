#include "client/prefetcher.h"

#include <algorithm>
#include <chrono>

#include "client/dataset_path.h"

namespace sluice::client {
namespace {

namespace meta = wire::meta;
using SteadyClock = std::chrono::steady_clock;

// Every regular file of dataset@version under `prefix`, sorted by path.
Result<std::vector<std::string>> listSampleFiles(Cluster& cluster, const std::string& dataset,
                                                 const std::string& version,
                                                 const std::string& prefix) {
  std::vector<std::string> out;
  std::string cursor;
  std::string want = prefix.empty() || prefix.back() == '/' ? prefix : prefix + "/";
  do {
    meta::ListFilesRequestT req;
    req.dataset = dataset;
    req.version = version;
    req.cursor = cursor;
    req.limit = 10000;
    SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster.meta<meta::ListFilesRequest, meta::ListFilesResponse>(
                                           meta::MetaMethod::ListFiles, req, "ListFiles")));
    for (const auto& f : resp->files) {
      if (f && f->type == meta::EntryType::File && f->path.compare(0, want.size(), want) == 0) {
        out.push_back(f->path);
      }
    }
    cursor = resp->files.empty() ? "" : resp->next_cursor;
  } while (!cursor.empty());
  std::sort(out.begin(), out.end());
  return out;
}

thread_local uint64_t t_insert_rank = 0;

}  // namespace

// What the reader sees as its cache: reads come from the node-local cache;
// records it fetched are stored with the rank of the sample being staged
// (set per fetch thread), so eviction follows the planned order.
class Prefetcher::PlannedCache : public RecordCache {
 public:
  explicit PlannedCache(LocalCache& local) : local_(local) {}
  bool read(const RecordHash& record, uint32_t raw_length, uint64_t offset,
            std::span<uint8_t> out) override {
    return local_.read(record, raw_length, offset, out);
  }
  void insert(const RecordHash& record, std::span<const uint8_t> raw) override {
    (void)local_.put(record, raw, t_insert_rank != 0 ? t_insert_rank : LocalCache::recencyRank());
  }

 private:
  LocalCache& local_;
};

Prefetcher::Prefetcher(Cluster& cluster, PrefetchOptions options)
    : cluster_(cluster), options_(std::move(options)) {}

Prefetcher::~Prefetcher() { stop(); }

Result<std::unique_ptr<Prefetcher>> Prefetcher::create(Cluster& cluster, PrefetchOptions options) {
  if (options.dataset.empty()) return invalidArgument("prefetch: no dataset given");
  if (options.order.world_size == 0 || options.order.rank >= options.order.world_size) {
    return invalidArgument("prefetch: rank " + std::to_string(options.order.rank) +
                           " is not below world_size " + std::to_string(options.order.world_size));
  }
  if (options.order.num_workers == 0 || options.order.worker >= options.order.num_workers) {
    return invalidArgument("prefetch: worker " + std::to_string(options.order.worker) +
                           " is not below num_workers " + std::to_string(options.order.num_workers));
  }
  if (options.fetch_threads == 0) options.fetch_threads = 1;
  // Each is a thread of this process: a million of them failed with "Resource
  // temporarily unavailable", which names nothing.
  constexpr size_t kMaxFetchThreads = 256;
  if (options.fetch_threads > kMaxFetchThreads) {
    return invalidArgument("prefetch: fetch_threads " + std::to_string(options.fetch_threads) + " is more than " +
                           std::to_string(kMaxFetchThreads) + "; 16 to 64 keep a node's network busy");
  }
  std::unique_ptr<Prefetcher> p(new Prefetcher(cluster, std::move(options)));
  const auto& o = p->options_;
  ReaderOptions ro;
  if (!o.cache_dir.empty()) {
    SLUICE_ASSIGN_OR_RETURN(p->local_, LocalCache::open(o.cache_dir, o.cache_bytes));
    if (o.eviction == Eviction::kPlanned) {
      p->planned_ = std::make_unique<PlannedCache>(*p->local_);
      ro.cache = p->planned_.get();
    } else {
      ro.cache = p->local_.get();
    }
  }
  SLUICE_ASSIGN_OR_RETURN(p->reader_, DatasetReader::open(cluster, o.dataset, o.version, ro));
  // "/a", "./a" and "a" name the same file, as in the CLI.
  std::vector<std::string> paths;
  for (const auto& f : o.files) paths.push_back(datasetPath(f));
  if (paths.empty()) {
    SLUICE_ASSIGN_OR_RETURN(paths, listSampleFiles(cluster, o.dataset, "v" + std::to_string(p->reader_->version()),
                                                   datasetPath(o.prefix)));
  }
  if (paths.empty()) {
    return notFound(o.dataset + "@v" + std::to_string(p->reader_->version()) + ": no files" +
                    (o.prefix.empty() ? "" : " under '" + o.prefix + "'"));
  }
  if (paths.size() > UINT32_MAX) return invalidArgument("prefetch: more than 2^32 samples");
  for (size_t start = 0; start < paths.size(); start += 2000) {
    std::vector<std::string> batch(paths.begin() + static_cast<ptrdiff_t>(start),
                                   paths.begin() + static_cast<ptrdiff_t>(std::min(paths.size(), start + 2000)));
    SLUICE_ASSIGN_OR_RETURN(auto infos, p->reader_->statMany(batch));
    for (auto& f : infos) {
      if (f.type != FileType::kFile) return invalidArgument("prefetch: '" + f.path + "' is not a regular file");
      p->files_.push_back(std::move(f));
    }
  }
  p->start(o.order.epoch, 0);
  return p;
}

uint64_t Prefetcher::plannedRank(uint32_t sample) const {
  // After it is consumed now, a sample is next needed at its place in the
  // next epoch; absolute time = epoch * L + position.
  if (next_epoch_pos_.empty() || next_epoch_pos_[sample] < 0) return LocalCache::recencyRank();
  uint64_t when = (uint64_t{epoch_} + 1) * rank_length_ + static_cast<uint64_t>(next_epoch_pos_[sample]);
  return LocalCache::kPlannedBase - when;
}

void Prefetcher::planEpoch() {
  next_epoch_pos_.clear();
  if (!local_ || options_.eviction != Eviction::kPlanned) return;
  OrderSpec next = options_.order;
  next.epoch = epoch_ + 1;
  std::vector<uint32_t> following = rankSequence(static_cast<uint32_t>(files_.size()), next);
  next_epoch_pos_.assign(files_.size(), -1);
  for (size_t p = following.size(); p-- > 0;) next_epoch_pos_[following[p]] = static_cast<int64_t>(p);
  // Re-rank what the cache holds by when this consumer needs it next: in
  // this epoch from here on, else in the next one.
  std::vector<std::pair<RecordHash, uint64_t>> ranks;
  std::vector<bool> seen(files_.size(), false);
  auto add = [&](uint32_t sample, uint64_t when) {
    if (seen[sample]) return;
    seen[sample] = true;
    for (const auto& e : files_[sample].extents) ranks.emplace_back(e.record, LocalCache::kPlannedBase - when);
  };
  for (size_t i = next_; i < positions_.size(); ++i) {
    add(sequence_[positions_[i]], uint64_t{epoch_} * rank_length_ + positions_[i]);
  }
  for (size_t p = 0; p < following.size(); ++p) {
    add(following[p], (uint64_t{epoch_} + 1) * rank_length_ + p);
  }
  local_->setRanks(ranks);
}

void Prefetcher::start(uint32_t epoch, uint64_t position) {
  stop();
  OrderSpec spec = options_.order;
  spec.epoch = epoch;
  epoch_ = epoch;
  sequence_ = rankSequence(static_cast<uint32_t>(files_.size()), spec);
  rank_length_ = sequence_.size();
  positions_ = workerPositions(rank_length_, spec, std::min<uint64_t>(position, rank_length_));
  {
    std::lock_guard lock(mu_);
    slots_.assign(positions_.size(), Slot{});
    next_ = 0;
    dispatch_ = 0;
    staged_bytes_ = 0;
    stopping_ = false;
  }
  planEpoch();
  for (size_t t = 0; t < options_.fetch_threads; ++t) threads_.emplace_back([this] { fetchLoop(); });
}

void Prefetcher::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  space_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Prefetcher::fetchLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (dispatch_ < positions_.size()) {
      uint64_t size = files_[sequence_[positions_[dispatch_]]].size;
      // The sample the consumer waits for always goes; others wait for room.
      if (dispatch_ == next_ || staged_bytes_ + size <= options_.lookahead_bytes) {
        size_t slot = dispatch_++;
        staged_bytes_ += size;
        lock.unlock();
        fetch(slot);
        lock.lock();
        ready_cv_.notify_all();
        continue;
      }
    }
    space_cv_.wait(lock);
  }
}

void Prefetcher::fetch(size_t slot) {
  uint32_t sample = sequence_[positions_[slot]];
  const FileInfo& info = files_[sample];
  t_insert_rank = planned_ ? plannedRank(sample) : 0;
  auto bytes = std::make_shared<SampleBytes>();
  bytes->data.reset(new uint8_t[std::max<uint64_t>(info.size, 1)]);
  bytes->size = info.size;
  auto got = reader_->read(info, 0, {bytes->data.get(), bytes->size});
  Status error;
  if (!got.isOk()) {
    error = got.status().withContext(options_.dataset + "@v" + std::to_string(reader_->version()) + "/" + info.path);
  } else if (*got != info.size) {
    error = Status(StatusCode::kProtocolError, info.path + ": read " + std::to_string(*got) + " of " +
                                                   std::to_string(info.size) + " bytes");
  }
  // Records served from the cache keep their old rank: move them to the
  // next time this consumer needs them.
  if (planned_ && error.isOk()) {
    std::vector<std::pair<RecordHash, uint64_t>> ranks;
    for (const auto& e : info.extents) ranks.emplace_back(e.record, t_insert_rank);
    local_->setRanks(ranks);
  }
  std::lock_guard lock(mu_);
  Slot& s = slots_[slot];
  if (error.isOk()) {
    s.state = Slot::State::kReady;
    s.bytes = std::move(bytes);
  } else {
    s.state = Slot::State::kFailed;
    s.error = error;
  }
}

Result<std::optional<Sample>> Prefetcher::next() {
  auto t0 = SteadyClock::now();
  std::unique_lock lock(mu_);
  if (next_ >= positions_.size()) return std::optional<Sample>();
  space_cv_.notify_all();  // the consumer's sample may be waiting for room
  ready_cv_.wait(lock, [&] { return slots_[next_].state != Slot::State::kPending; });
  auto waited = SteadyClock::now() - t0;
  stall_.observe(std::chrono::duration_cast<std::chrono::nanoseconds>(waited));
  stall_nanos_ += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count());
  Slot slot = std::move(slots_[next_]);
  size_t index = next_++;
  uint32_t sample = sequence_[positions_[index]];
  staged_bytes_ -= files_[sample].size;
  lock.unlock();
  space_cv_.notify_all();
  if (slot.state == Slot::State::kFailed) return slot.error;
  samples_++;
  bytes_ += slot.bytes->size;
  Sample s;
  s.path = &files_[sample].path;
  s.index = sample;
  s.position = positions_[index];
  s.bytes = std::move(slot.bytes);
  return std::optional<Sample>(std::move(s));
}

PrefetchState Prefetcher::state() const {
  std::lock_guard lock(mu_);
  PrefetchState s;
  s.epoch = epoch_;
  s.position = next_ < positions_.size() ? positions_[next_] : rank_length_;
  s.seed = options_.order.seed;
  s.world_size = options_.order.world_size;
  s.rank = options_.order.rank;
  return s;
}

Status Prefetcher::resume(const PrefetchState& state) {
  if (state.seed != options_.order.seed || state.world_size != options_.order.world_size ||
      state.rank != options_.order.rank) {
    return invalidArgument("prefetch: the state was saved with seed " + std::to_string(state.seed) +
                           ", world_size " + std::to_string(state.world_size) + ", rank " +
                           std::to_string(state.rank) + "; this prefetcher has seed " +
                           std::to_string(options_.order.seed) + ", world_size " +
                           std::to_string(options_.order.world_size) + ", rank " +
                           std::to_string(options_.order.rank));
  }
  if (state.position > rank_length_) {
    return invalidArgument("prefetch: position " + std::to_string(state.position) +
                           " is past the rank's " + std::to_string(rank_length_) + " samples");
  }
  start(state.epoch, state.position);
  return Status::ok();
}

void Prefetcher::setEpoch(uint32_t epoch) { start(epoch, 0); }

uint64_t Prefetcher::samplesPerEpoch() const {
  return workerPositions(rank_length_, options_.order, 0).size();
}

PrefetchStats Prefetcher::stats() const {
  PrefetchStats s;
  s.samples = samples_;
  s.bytes = bytes_;
  const ReaderStats& rs = reader_->stats();
  s.cache_hits = rs.cache_hits;
  s.cache_misses = rs.records_fetched;
  s.fetched_bytes = rs.bytes_fetched;
  s.stall_seconds = static_cast<double>(stall_nanos_.load()) / 1e9;
  auto snap = stall_.snapshot();
  s.stall_p50_s = snap.percentile(0.5);
  s.stall_p90_s = snap.percentile(0.9);
  s.stall_p99_s = snap.percentile(0.99);
  return s;
}

}  // namespace sluice::client
