// bench_metadata: the metadata server's throughput, with named workloads.
//
//   bench_metadata [--files N] [--batch B] [--seconds S] [--depth D]
//                  [--no-write-map] [--dir D] [--provider P] [workloads...]
//
// Workloads (default: all, in this order):
//   store_add  N files into a draft straight into MetaStore (no RPC): the
//              LMDB-side ceiling for add; FindChunkUsers' walk against a
//              listing of every file; then the version's delete time.
//   add        N files into a draft over loopback RPC in batches of B, then
//              commit; reports files/s, commit time, LMDB bytes per 1M files.
//   ping       empty RPC round trips from 1 and 4 clients: the transport's
//              ceiling for any small metadata call (the physical limit here).
//   stat       Stat of random files from 1 and 4 clients, and its ratio to ping.
//   lookup     Lookup (batch of 1, with extents) from 1 and 4 clients.
//   readdir    ReadDir pages of 1000 entries from 1 and 4 clients.
//
// The server (MetaStore + MetaService on a libfabric tcp;ofi_rxm endpoint)
// runs in this process on 127.0.0.1; each client has its own endpoint.
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "metadata/meta_client.h"
#include "metadata/meta_service.h"
#include "metadata/meta_store.h"

namespace sluice::meta {
namespace {

namespace w = wire::meta;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string provider = "tcp;ofi_rxm";  // libfabric provider of server and clients
  uint32_t files = 1'000'000;
  uint32_t batch = 10'000;
  double seconds = 5;
  uint32_t depth = 16;
  bool write_map = true;
  std::string dir;
  std::set<std::string> workloads;
};

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string pathOf(uint32_t i) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "d%04u/f%07u.jpg", i % 1000, i);
  return buf;
}

uint64_t dirBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    struct stat st{};
    if (::stat(e.path().c_str(), &st) == 0) total += uint64_t(st.st_blocks) * 512;
  }
  return total;
}

std::vector<uint8_t> addBody(const std::string& ds, uint32_t v, uint32_t first, uint32_t count) {
  flatbuffers::FlatBufferBuilder fbb(count * 160);
  std::vector<flatbuffers::Offset<w::FileSpec>> specs;
  specs.reserve(count);
  for (uint32_t i = first; i < first + count; ++i) {
    // ~110 KiB samples packed 36 to a 4 MiB chunk, one record each.
    w::Extent e(0, w::Hash(i + 1, 0xabc), w::Hash(i / 36 + 1, 0x5eed), 110'000,
                (i % 36) * 110'000, 110'000, w::Codec::None);
    auto ext = fbb.CreateVectorOfStructs(&e, 1);
    specs.push_back(w::CreateFileSpec(fbb, fbb.CreateString(pathOf(i)), 110'000, 0644,
                                      1'700'000'000'000'000'000, ext));
  }
  fbb.Finish(w::CreateAddFilesRequest(fbb, fbb.CreateString(ds), v, fbb.CreateVector(specs)));
  return wire::finishBody(fbb);
}

class Bench {
 public:
  explicit Bench(Args a) : args_(std::move(a)) {}

  int run() {
    MetaStoreOptions o;
    o.lmdb.dir = args_.dir + "/db";
    o.lmdb.map_size = 64ull << 30;
    o.lmdb.write_map = args_.write_map;
    auto store = MetaStore::open(o);
    if (!store.isOk()) return fail("open", store.status());
    store_ = std::move(store).value();
    net::EndpointOptions so;
    so.listen = "127.0.0.1:0";
    so.provider = args_.provider;
    so.worker_threads = 4;
    auto ep = net::Endpoint::create(so);
    if (!ep.isOk()) return fail("server endpoint", ep.status());
    server_ = std::move(ep).value();
    MetaService service(store_.get());
    service.registerHandlers(*server_);
    if (Status s = server_->start(); !s.isOk()) return fail("server start", s);
    std::printf("server on %s (%s), %u files, batches of %u, LMDB write_map %s\n",
                server_->address().c_str(), server_->provider().c_str(), args_.files, args_.batch,
                args_.write_map ? "on" : "off");

    if (want("store_add")) storeAdd();
    if (want("add") || want("stat") || want("lookup") || want("readdir")) {
      if (int rc = rpcAdd(); rc != 0) return rc;
    }
    // Each read workload: a request body and a verifier of the reply.
    Workload ping{net::kOpPing, [](std::mt19937_64&) { return std::vector<uint8_t>(8, 0); },
                  [](const std::vector<uint8_t>& r) { return r.size() == 8; }};
    Workload stat{metaOpcode(w::MetaMethod::Stat),
                  [&](std::mt19937_64& rng) {
                    flatbuffers::FlatBufferBuilder fbb;
                    fbb.Finish(w::CreateStatRequestDirect(fbb, "bench", "latest",
                                                          pathOf(rng() % args_.files).c_str()));
                    return wire::finishBody(fbb);
                  },
                  [](const std::vector<uint8_t>& r) {
                    auto m = wire::decodeBody<w::StatResponse>(r, "stat");
                    return m.isOk() && (*m)->entry() != nullptr && (*m)->entry()->size() == 110'000;
                  }};
    Workload lookup{metaOpcode(w::MetaMethod::Lookup),
                    [&](std::mt19937_64& rng) {
                      flatbuffers::FlatBufferBuilder fbb;
                      auto path = fbb.CreateString(pathOf(rng() % args_.files));
                      auto paths = fbb.CreateVector(&path, 1);
                      fbb.Finish(w::CreateLookupRequest(fbb, fbb.CreateString("bench"),
                                                        fbb.CreateString("latest"), paths, true));
                      return wire::finishBody(fbb);
                    },
                    [](const std::vector<uint8_t>& r) {
                      auto m = wire::decodeBody<w::LookupResponse>(r, "lookup");
                      return m.isOk() && (*m)->results()->size() == 1 &&
                             (*m)->results()->Get(0)->extents()->size() == 1;
                    }};
    Workload readdir{metaOpcode(w::MetaMethod::ReadDir),
                     [&](std::mt19937_64& rng) {
                       char dir[16];
                       std::snprintf(dir, sizeof(dir), "d%04u", uint32_t(rng() % 1000));
                       flatbuffers::FlatBufferBuilder fbb;
                       fbb.Finish(w::CreateReadDirRequestDirect(fbb, "bench", "latest", dir, "", 1000));
                       return wire::finishBody(fbb);
                     },
                     [](const std::vector<uint8_t>& r) {
                       auto m = wire::decodeBody<w::ReadDirResponse>(r, "readdir");
                       return m.isOk() && (*m)->entries()->size() > 0;
                     }};
    if (want("stat")) {
      for (int threads : {1, 4}) storeStat(threads);
    }
    for (uint32_t depth : {1u, args_.depth}) {
      for (int clients : {1, 4}) {
        int slot = (clients == 1 ? 0 : 1) + (depth == 1 ? 0 : 2);
        if (want("ping")) ping_[slot] = rate("ping", ping, clients, depth, slot);
        if (want("stat")) rate("stat", stat, clients, depth, slot);
        if (want("lookup")) rate("lookup", lookup, clients, depth, slot);
        if (want("readdir")) rate("readdir", readdir, clients, depth, slot, args_.files / 1000);
      }
      if (args_.depth == 1) break;
    }
    server_->shutdown();
    return 0;
  }

 private:
  bool want(const std::string& w) const { return args_.workloads.empty() || args_.workloads.count(w); }
  int fail(const char* what, const Status& s) {
    std::fprintf(stderr, "bench_metadata: %s: %s\n", what, s.toString().c_str());
    return 1;
  }

  void storeAdd() {
    auto ds = store_->createDataset("store-only", {1, 0, CompressionPolicy::kAuto});
    auto v = store_->beginVersion("store-only", "");
    if (!ds.isOk() || !v.isOk()) return;
    auto t0 = Clock::now();
    std::vector<FileSpec> batch;
    for (uint32_t first = 0; first < args_.files; first += args_.batch) {
      batch.clear();
      for (uint32_t i = first; i < std::min(first + args_.batch, args_.files); ++i) {
        FileSpec f;
        f.path = pathOf(i);
        f.size = 110'000;
        f.extents.push_back(Extent{0, Hash128{i + 1u, 0xabc}, Hash128{i / 36 + 1u, 0x5eed}, 110'000,
                                   (i % 36) * 110'000, 110'000, 0});
        batch.push_back(std::move(f));
      }
      auto r = store_->addFiles("store-only", v->version, batch);
      if (!r.isOk()) {
        fail("store add", r.status());
        return;
      }
    }
    double add_s = since(t0);
    auto t1 = Clock::now();
    auto c = store_->commitVersion("store-only", v->version, "", false);
    double commit_s = since(t1);
    store_add_rate_ = args_.files / add_s;
    std::printf("store_add: %u files in %.2f s = %.0f files/s (MetaStore, no RPC); commit %.3f s\n",
                args_.files, add_s, store_add_rate_, commit_s);
    if (!c.isOk()) return;
    chunkUsers(v->version);
    // Deleting the version: how long its one write transaction holds off
    // every other writer.
    auto t2 = Clock::now();
    auto d = store_->deleteVersion("store-only", v->version, true);
    if (!d.isOk()) {
      fail("store delete", d.status());
      return;
    }
    std::printf("store_delete: %u-file version deleted in %.2f s (one write transaction)\n",
                args_.files, since(t2));
  }

  // What scrub pays to name the files of lost chunks: one walk of the
  // version per call, against listing every file of it (the same walk,
  // paged, decoding each entry for the caller).
  void chunkUsers(uint32_t version) {
    const uint32_t last_chunk = (args_.files - 1) / 36 + 1;
    const std::vector<Hash128> lost = {Hash128{1, 0x5eed}, Hash128{last_chunk / 2 + 1, 0x5eed},
                                       Hash128{last_chunk, 0x5eed}};
    auto t0 = Clock::now();
    auto users = store_->chunkUsers(lost, 5);
    const double users_s = since(t0);
    if (!users.isOk()) {
      fail("chunk users", users.status());
      return;
    }
    size_t paths = 0;
    for (const auto& u : users->users) paths += u.paths.size();
    auto t1 = Clock::now();
    uint64_t listed = 0;
    std::string cursor;
    const std::string ref = "v" + std::to_string(version);
    do {
      auto page = store_->listFiles("store-only", ref, cursor, 10000);
      if (!page.isOk()) {
        fail("list files", page.status());
        return;
      }
      listed += page->items.size();
      cursor = page->next_cursor;
    } while (!cursor.empty());
    const double list_s = since(t1);
    std::printf("chunk_users: %zu chunks -> %zu users, %zu paths in %.2f s; listing all %llu files %.2f s "
                "(%.0f %% of the listing's time)\n",
                lost.size(), users->users.size(), paths, users_s, static_cast<unsigned long long>(listed), list_s,
                100.0 * users_s / list_s);
  }

  int rpcAdd() {
    net::EndpointOptions co;
    co.provider = args_.provider;
    auto ep = net::Endpoint::create(co);
    if (!ep.isOk() || !(*ep)->start().isOk()) return fail("client endpoint", ep.status());
    auto client = MetaClient::connect(ep->get(), server_->address());
    if (!client.isOk()) return fail("connect", client.status());
    uint64_t before = dirBytes(args_.dir + "/db");
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(w::CreateCreateDatasetRequestDirect(fbb, "bench", 1, 0));
    auto ds = (*client)->call<w::CreateDatasetResponse>(w::MetaMethod::CreateDataset, fbb);
    if (!ds.isOk()) return fail("create dataset", ds.status());
    fbb.Clear();
    fbb.Finish(w::CreateBeginVersionRequestDirect(fbb, "bench", ""));
    auto v = (*client)->call<w::BeginVersionResponse>(w::MetaMethod::BeginVersion, fbb);
    if (!v.isOk()) return fail("begin", v.status());
    uint32_t version = (*v)->version()->version();
    // Encode on this thread while the previous batch is in flight: the
    // uploader's real pattern (one outstanding AddFiles per draft).
    auto t0 = Clock::now();
    double encode_s = 0;
    std::vector<uint8_t> next = addBody("bench", version, 0, std::min(args_.batch, args_.files));
    for (uint32_t first = 0; first < args_.files; first += args_.batch) {
      std::vector<uint8_t> body = std::move(next);
      std::atomic<bool> done{false};
      Status status;
      (*ep)->callAsync((*client)->peer(), metaOpcode(w::MetaMethod::AddFiles), body,
                       net::Duration(120000), [&](Result<std::vector<uint8_t>> r) {
                         status = r.status();
                         done = true;
                       });
      uint32_t nf = first + args_.batch;
      auto te = Clock::now();
      if (nf < args_.files) next = addBody("bench", version, nf, std::min(args_.batch, args_.files - nf));
      encode_s += since(te);
      while (!done) std::this_thread::sleep_for(std::chrono::microseconds(50));
      if (!status.isOk()) return fail("add files", status);
    }
    double add_s = since(t0);
    fbb.Clear();
    fbb.Finish(w::CreateCommitVersionRequestDirect(fbb, "bench", version, "bench", false));
    auto t1 = Clock::now();
    auto c = (*client)->call<w::CommitVersionResponse>(w::MetaMethod::CommitVersion, fbb);
    double commit_s = since(t1);
    if (!c.isOk()) return fail("commit", c.status());
    uint64_t after = dirBytes(args_.dir + "/db");
    double per_m = double(after - before) * 1e6 / args_.files;
    std::printf("add: %u files in %.2f s = %.0f files/s over RPC (batches of %u; client encode %.2f s)%s\n",
                args_.files, add_s, args_.files / add_s, args_.batch, encode_s,
                store_add_rate_ > 0
                    ? (" = " + std::to_string(int(100 * args_.files / add_s / store_add_rate_)) +
                       "% of MetaStore-only").c_str()
                    : "");
    std::printf("commit: %u-file version in %.4f s\n", args_.files, commit_s);
    std::printf("lmdb: %.1f MiB on disk per 1M files (namespace + record index + chunk refs)\n",
                per_m / (1 << 20));
    return 0;
  }

  // MetaStore::stat without RPC: the server-side ceiling for stat.
  void storeStat(int threads) {
    std::atomic<uint64_t> calls{0}, errors{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        std::mt19937_64 rng(t + 17);
        while (!stop) {
          auto e = store_->stat("bench", "latest", pathOf(rng() % args_.files));
          if (!e.isOk()) ++errors;
          ++calls;
        }
      });
    }
    auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(args_.seconds));
    double r = calls.load() / since(t0);
    stop = true;
    for (auto& th : pool) th.join();
    std::printf("store_stat %d thread%s (MetaStore, no RPC): %8.0f stats/s%s\n", threads,
                threads == 1 ? " " : "s", r, errors ? "  [errors]" : "");
  }

  struct Workload {
    uint16_t opcode;
    std::function<std::vector<uint8_t>(std::mt19937_64&)> make;
    std::function<bool(const std::vector<uint8_t>&)> verify;
  };

  // Calls/s of `wl` from `clients` client endpoints, each keeping `depth`
  // calls in flight, for args_.seconds.
  double rate(const char* name, const Workload& wl, int clients, uint32_t depth, int slot,
              uint32_t per_call = 1) {
    std::atomic<uint64_t> calls{0}, errors{0};
    std::atomic<bool> stop{false};
    std::mutex err_mu;
    std::string first_error;
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
      threads.emplace_back([&, t] {
        net::EndpointOptions co;
        co.provider = args_.provider;
        co.max_inflight_per_peer = std::max<size_t>(64, depth);
        auto ep = net::Endpoint::create(co);
        if (!ep.isOk() || !(*ep)->start().isOk()) {
          ++errors;
          return;
        }
        auto peer = (*ep)->connect(server_->address());
        if (!peer.isOk()) {
          ++errors;
          return;
        }
        // `depth` lanes, each issuing its next call from the previous one's
        // reply callback: the load generator itself adds no thread wake-ups,
        // so the figure is the server's and the transport's.
        std::vector<std::mt19937_64> rngs;
        for (uint32_t lane = 0; lane < depth; ++lane) rngs.emplace_back(t * 7919 + lane * 31 + 1);
        std::mutex mu;
        std::condition_variable cv;
        uint32_t running = depth;
        std::function<void(uint32_t)> issue = [&](uint32_t lane) {
          if (stop) {
            std::lock_guard<std::mutex> l(mu);
            if (--running == 0) cv.notify_one();
            return;
          }
          std::vector<uint8_t> body = wl.make(rngs[lane]);
          (*ep)->callAsync(*peer, wl.opcode, body, net::Duration(10000),
                           [&, lane](Result<std::vector<uint8_t>> r) {
                             ++calls;
                             if (r.isOk() && wl.verify(*r)) return issue(lane);
                             if (errors++ == 0) {
                               std::lock_guard<std::mutex> l(err_mu);
                               first_error = r.isOk() ? "reply failed verification"
                                                      : r.status().toString();
                             }
                             std::lock_guard<std::mutex> l(mu);  // a failed lane stops
                             if (--running == 0) cv.notify_one();
                           });
        };
        for (uint32_t lane = 0; lane < depth; ++lane) issue(lane);
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return running == 0; });
      });
    }
    auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(args_.seconds));
    uint64_t done = calls.load();
    double r = done / since(t0);
    stop = true;
    for (auto& th : threads) th.join();
    std::printf("%-7s %d client%s x %2u in flight: %8.0f calls/s", name, clients,
                clients == 1 ? " " : "s", depth, r);
    if (per_call > 1) std::printf(" (%.0f entries/s)", r * per_call);
    if (std::strcmp(name, "ping") != 0 && ping_[slot] > 0) {
      std::printf("  = %3.0f%% of ping", 100 * r / ping_[slot]);
    }
    if (errors) std::printf("  [%lu errors, first: %s]", (unsigned long)errors.load(), first_error.c_str());
    std::printf("\n");
    std::fflush(stdout);
    return r;
  }

  Args args_;
  std::unique_ptr<MetaStore> store_;
  std::unique_ptr<net::Endpoint> server_;
  double store_add_rate_ = 0;
  double ping_[4] = {0, 0, 0, 0};
};

}  // namespace
}  // namespace sluice::meta

int main(int argc, char** argv) {
  sluice::meta::Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--files") args.files = static_cast<uint32_t>(std::stoul(value()));
    else if (a == "--batch") args.batch = static_cast<uint32_t>(std::stoul(value()));
    else if (a == "--seconds") args.seconds = std::stod(value());
    else if (a == "--no-write-map") args.write_map = false;
    else if (a == "--depth") args.depth = static_cast<uint32_t>(std::stoul(value()));
    else if (a == "--dir") args.dir = value();
    else if (a == "--provider") args.provider = value();
    else if (a == "-h" || a == "--help") {
      std::printf("bench_metadata [--files N] [--batch B] [--seconds S] [--depth D] [--no-write-map] [--dir D] [--provider P] "
                  "[store_add add ping stat lookup readdir]\n");
      return 0;
    } else args.workloads.insert(a);
  }
  if (args.files == 0 || args.batch == 0) {
    std::fprintf(stderr, "bench_metadata: --files and --batch must be positive\n");
    return 2;
  }
  bool own_dir = args.dir.empty();
  if (own_dir) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bench-meta-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return 1;
    args.dir = tmpl;
  }
  int rc = sluice::meta::Bench(args).run();
  if (own_dir) std::filesystem::remove_all(args.dir);
  return rc;
}
