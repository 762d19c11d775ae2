// sluice-meta: the metadata server daemon.
//
//   sluice-meta --data_dir /var/lib/sluice-meta --listen 0.0.0.0:7400
//
// Opens (or creates) the cluster in data_dir, serves the meta service on a
// libfabric endpoint, marks silent nodes down, and exposes /metrics. Stops
// cleanly on SIGTERM/SIGINT. With --ready_file it writes the endpoint's
// "host:port" there once serving (tests and `sluice dev up` read it).
// Meta registers itself nowhere: nodes and clients are given its address
// (--meta, client.toml), so a wildcard --listen needs no advertise address;
// the ready file then holds the wildcard, which scripts must not dial.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/core/config.h"
#include "common/core/copy_rate.h"
#include "common/core/logging.h"
#include "common/core/metrics.h"
#include "common/core/metrics_server.h"
#include "common/net/endpoint.h"
#include "metadata/meta_service.h"
#include "metadata/meta_store.h"

namespace {

struct Flags {
  std::string data_dir;
  uint64_t map_size = 0;
  bool write_map = false;
  sluice::HostPort listen;
  std::string provider;
  int64_t worker_threads = 0;
  int64_t stripe_count = 0;
  int64_t max_replicas = 0;
  int64_t default_replication = 0;
  std::chrono::microseconds heartbeat_timeout{};
  std::chrono::microseconds draft_grace{};
  std::chrono::microseconds draft_expiry{};
  std::chrono::microseconds repair_grace{};
  std::chrono::microseconds stray_check{};
  std::chrono::microseconds tombstone_ttl{};
  uint64_t repair_rate = 0;
  std::string metrics_listen;
  std::string ready_file;
  sluice::LogOptions log;
};

int run(int argc, char** argv) {
  Flags f;
  sluice::ConfigSchema schema("sluice-meta", "Sluice metadata server");
  schema.setDefaultConfigFile("/etc/sluice/meta.toml");
  schema.addString("data_dir", &f.data_dir, "/var/lib/sluice-meta", "LMDB directory")
      .addSize("map_size", &f.map_size, 64ull << 30, "LMDB map size (sparse; the most metadata kept)")
      .addBool("write_map", &f.write_map, false,
               "LMDB MDB_WRITEMAP: faster adds, but a full disk crashes the daemon (SIGBUS)")
      .addHostPort("listen", &f.listen, {"127.0.0.1", 7400}, "endpoint address (port 0: any free)")
      .addString("provider", &f.provider, "tcp;ofi_rxm", "libfabric provider")
      .addInt("worker_threads", &f.worker_threads, 4, "RPC handler threads", 1, 256)
      .addInt("stripe_count", &f.stripe_count, 256, "stripes, fixed at cluster creation", 1, 65536)
      .addInt("max_replicas", &f.max_replicas, 3, "replicas per stripe, fixed at cluster creation", 1, 16)
      .addInt("default_replication", &f.default_replication, 3,
              "dataset replication when unspecified, fixed at cluster creation", 1, 16)
      .addDuration("heartbeat_timeout", &f.heartbeat_timeout, std::chrono::seconds(10),
                   "silence after which a node is marked down")
      .addDuration("draft_grace", &f.draft_grace, std::chrono::hours(24),
                   "gc keeps chunks of drafts modified within this period")
      .addDuration("draft_expiry", &f.draft_expiry, std::chrono::hours(24 * 7),
                   "a draft nothing was added to for this long (its upload died or was given up) "
                   "is aborted, and gc frees its chunks (0s: keep drafts until 'sluice version rm'; else at "
                   "least draft_grace)")
      .addDuration("repair_grace", &f.repair_grace, std::chrono::minutes(10),
                   "a node down this long has its stripes copied to other nodes ('sluice repair': at once)")
      .addDuration("stray_check", &f.stray_check, std::chrono::minutes(5),
                   "how often nodes are asked for copies of stripes the map no longer lists them for "
                   "(left by uploads with an older map), which are then cleaned up (0s: never)")
      .addDuration("tombstone_ttl", &f.tombstone_ttl, std::chrono::hours(24 * 7),
                   "gc's tombstones older than this are forgotten; an upload whose draft is older "
                   "than the newest forgotten one is refused and must run again (0s: keep forever)")
      .addSize("repair_rate", &f.repair_rate, 0,
               "bytes/s of each repair copy (0: the storage nodes' repair.rate)")
      .addString("metrics.listen", &f.metrics_listen, "",
                 "host:port of the Prometheus /metrics endpoint (empty: off)")
      .addString("ready_file", &f.ready_file, "", "write the endpoint address here once serving");
  sluice::addLogOptions(schema, &f.log);
  if (sluice::Status s = schema.parse(argc, argv); !s.isOk()) {
    std::fprintf(stderr, "sluice-meta: %s\n", s.toString().c_str());
    return 2;
  }
  if (f.draft_expiry.count() > 0 && f.draft_expiry < f.draft_grace) {
    std::fprintf(stderr,
                 "sluice-meta: draft_expiry (%lld s) is shorter than draft_grace (%lld s), the time a draft "
                 "counts as being uploaded: set it to 0s (never) or at least draft_grace\n",
                 static_cast<long long>(f.draft_expiry.count() / 1000000),
                 static_cast<long long>(f.draft_grace.count() / 1000000));
    return 2;
  }
  if (sluice::Status s = sluice::checkCopyRate(f.repair_rate, "repair_rate"); !s.isOk()) {
    std::fprintf(stderr, "sluice-meta: %s\n", s.message().c_str());
    return 2;
  }
  if (schema.helpRequested()) {
    std::printf("%s", schema.helpText().c_str());
    return 0;
  }
  // Block the stop signals before any thread starts (logging starts one to
  // flush) so only sigwait sees them: a thread that left them unblocked got
  // a SIGTERM and ran the process's exit from inside the logger's own flush
  // thread, which then aborted joining itself.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  if (sluice::Status s = sluice::initLogging("sluice-meta", f.log); !s.isOk()) {
    std::fprintf(stderr, "sluice-meta: %s\n", s.toString().c_str());
    return 2;
  }
  spdlog::info("starting with\n{}", schema.effectiveConfig());


  sluice::meta::MetaStoreOptions o;
  o.lmdb.dir = f.data_dir;
  o.lmdb.map_size = f.map_size;
  o.lmdb.write_map = f.write_map;
  o.stripe_count = static_cast<uint32_t>(f.stripe_count);
  o.max_replicas = static_cast<uint32_t>(f.max_replicas);
  o.default_replication = static_cast<uint8_t>(f.default_replication);
  o.heartbeat_timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(f.heartbeat_timeout).count();
  o.draft_grace_ms = std::chrono::duration_cast<std::chrono::milliseconds>(f.draft_grace).count();
  auto store = sluice::meta::MetaStore::open(o);
  if (!store.isOk()) {
    spdlog::critical("opening {}: {}", f.data_dir, store.status().toString());
    sluice::flushLogs();
    return 1;
  }
  const auto& params = (*store)->params();
  spdlog::info("cluster {}: {} stripes x {} replicas", params.cluster_id.toHex(),
               params.stripe_count, params.max_replicas);

  sluice::net::EndpointOptions eo;
  eo.provider = f.provider;
  eo.listen = f.listen.toString();
  eo.worker_threads = static_cast<size_t>(f.worker_threads);
  auto ep = sluice::net::Endpoint::create(eo);
  if (!ep.isOk()) {
    spdlog::critical("creating endpoint on {}: {}", eo.listen, ep.status().toString());
    sluice::flushLogs();
    return 1;
  }
  sluice::meta::MoverOptions mo;
  mo.repair_grace = std::chrono::duration_cast<std::chrono::milliseconds>(f.repair_grace);
  mo.rate_bytes_per_sec = f.repair_rate;
  mo.stray_check = std::chrono::duration_cast<std::chrono::milliseconds>(f.stray_check);
  sluice::meta::StripeMover mover(**store, **ep, mo);
  sluice::meta::MetaService service(store->get(), &mover);
  service.registerHandlers(**ep);
  if (sluice::Status s = (*ep)->start(); !s.isOk()) {
    spdlog::critical("starting endpoint on {}: {}", eo.listen, s.toString());
    sluice::flushLogs();
    return 1;
  }
  std::unique_ptr<sluice::MetricsServer> metrics;
  if (!f.metrics_listen.empty()) {
    auto hp = sluice::parseHostPort(f.metrics_listen);
    if (!hp.isOk()) {
      spdlog::critical("metrics.listen: {}", hp.status().toString());
      sluice::flushLogs();
      return 2;
    }
    metrics = std::make_unique<sluice::MetricsServer>();
    if (sluice::Status s = metrics->start(*hp); !s.isOk()) {
      spdlog::critical("metrics on {}: {}", f.metrics_listen, s.toString());
      sluice::flushLogs();
      return 1;
    }
  }
  std::string address = (*ep)->address();
  spdlog::info("serving on {}", address);
  mover.start();
  if (!f.ready_file.empty()) {
    std::string tmp = f.ready_file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << address << "\n";
    }
    std::rename(tmp.c_str(), f.ready_file.c_str());
  }

  // Liveness sweeper: marks nodes down a fraction of the timeout after they go silent.
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  // It also forgets old tombstones, and drops index entries of records whose
  // chunks lost every user, every quarter of the tombstone TTL (1 s to 1 h).
  const int64_t ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(f.tombstone_ttl).count();
  const auto prune_every = std::chrono::milliseconds(std::clamp<int64_t>(ttl_ms / 4, 1000, 3600 * 1000));
  auto next_prune = std::chrono::steady_clock::now() + prune_every;
  // Idle drafts are looked for every quarter of their expiry (1 s to 1 h).
  const int64_t expiry_ms = std::chrono::duration_cast<std::chrono::milliseconds>(f.draft_expiry).count();
  const auto expire_every = std::chrono::milliseconds(std::clamp<int64_t>(expiry_ms / 4, 1000, 3600 * 1000));
  auto next_expiry = std::chrono::steady_clock::now() + expire_every;
  std::thread sweeper([&] {
    auto period = std::chrono::milliseconds(std::max<int64_t>(o.heartbeat_timeout_ms / 4, 50));
    std::unique_lock<std::mutex> lock(mu);
    while (!cv.wait_for(lock, period, [&] { return stopping; })) {
      lock.unlock();
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_prune) {
        next_prune = now + prune_every;
        if (ttl_ms > 0) {
          auto pruned = (*store)->pruneTombstones(ttl_ms);
          if (!pruned.isOk()) {
            spdlog::error("tombstone prune: {}", pruned.status().toString());
          } else if (pruned->pruned > 0) {
            static sluice::Counter& forgotten = sluice::MetricsRegistry::global().counter(
                "sluice_meta_tombstones_pruned_total", "gc tombstones forgotten after --tombstone_ttl");
            forgotten.inc(pruned->pruned);
            spdlog::info("gc: forgot {} tombstones older than {} s (gc epochs up to {}; drafts begun "
                         "before that must upload again)",
                         pruned->pruned, ttl_ms / 1000, pruned->pruned_epoch);
          }
        }
        // Index entries of records whose chunks lost every user, at the same pace.
        auto records = (*store)->pruneRecordIndex();
        if (!records.isOk()) {
          spdlog::error("record index prune: {}", records.status().toString());
        } else if (*records > 0) {
          static sluice::Counter& dropped = sluice::MetricsRegistry::global().counter(
              "sluice_meta_record_index_pruned_total",
              "record index entries dropped because their chunk has no users left");
          dropped.inc(*records);
          spdlog::info("gc: dropped {} record index entries whose chunks have no users", *records);
        }
      }
      auto down = (*store)->markStaleNodesDown();
      if (!down.isOk()) {
        spdlog::error("liveness sweep: {}", down.status().toString());
      } else {
        for (uint64_t id : *down) {
          spdlog::warn("node {} missed heartbeats; marked down (last heard {} ms ago, timeout {} ms)",
                       id, (*store)->silentForMs(id).value_or(-1), o.heartbeat_timeout_ms);
        }
      }
      // Draft expiry after the liveness sweep: releasing a large draft
      // takes a while.
      if (expiry_ms > 0 && now >= next_expiry) {
        next_expiry = now + expire_every;
        auto sweep = (*store)->abortIdleDrafts(expiry_ms);
        if (!sweep.isOk()) {
          spdlog::error("draft expiry: {}", sweep.status().toString());
        } else {
          static sluice::Counter& expired = sluice::MetricsRegistry::global().counter(
              "sluice_meta_drafts_expired_total", "drafts aborted after --draft_expiry without additions");
          expired.inc(sweep->aborted.size());
          for (const auto& v : sweep->aborted) {
            spdlog::warn("draft {}@v{} ({} files) had nothing added for {} s (--draft_expiry): aborted; "
                         "'sluice gc' frees its chunks",
                         v.dataset, v.version, v.file_count, expiry_ms / 1000);
          }
          for (const auto& failure : sweep->failed) spdlog::error("draft expiry: {}", failure.toString());
        }
      }
      lock.lock();
    }
  });

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  cv.notify_all();
  sweeper.join();
  // The endpoint goes down before the mover is joined: that ends the calls
  // it may be waiting on (a copy can take up to its 30-minute timeout).
  mover.requestStop();
  (*ep)->shutdown();
  mover.stop();
  if (metrics) metrics->stop();
  sluice::flushLogs();
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
