// sluice-storage: the storage node daemon.
//
//   sluice-storage --data_dir /var/lib/sluice/storage --listen 10.0.0.5:7100 --meta 10.0.0.1:7400
//   sluice-storage --data_dir /var/lib/sluice/storage --listen 0.0.0.0:7100
//       --advertise 10.0.0.5:7100 --meta 10.0.0.1:7400   (a wildcard listen needs --advertise)
//   sluice-storage --data_dir /var/lib/sluice/storage --config /etc/sluice/storage.toml
//   sluice-storage --standalone --data_dir /tmp/s1 --listen 127.0.0.1:0 --ready_file /tmp/s1.addr
//
// Exit codes: 0 after SIGTERM/SIGINT, 1 when it cannot start (the message
// says why), 2 for a bad configuration.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <thread>

#include "common/core/config.h"
#include "common/core/copy_rate.h"
#include "common/core/logging.h"
#include "common/core/metrics.h"
#include "common/core/metrics_server.h"
#include "common/net/endpoint.h"
#include "storage_node/chunk_store.h"
#include "storage_node/meta_reporter.h"
#include "storage_node/node_identity.h"
#include "storage_node/scrubber.h"
#include "storage_node/storage_service.h"

namespace sluice::storage {
namespace {

struct DaemonOptions {
  std::string data_dir;
  std::string listen;
  std::string advertise;
  std::string provider;
  bool busy_poll = false;
  std::string meta;
  bool standalone = false;
  uint64_t capacity = 0;
  uint64_t max_chunk = 0;
  int64_t max_stripes = 0;
  int64_t stripe_count = 0;
  uint64_t io_buffer = 0;
  int64_t workers = 0;
  int64_t open_files = 0;
  bool direct_io = true;
  uint64_t scrub_rate = 0;
  std::chrono::microseconds scrub_interval{};
  uint64_t repair_rate = 0;
  std::string metrics_listen;
  std::string ready_file;
  LogOptions log;
};

void declare(ConfigSchema& s, DaemonOptions& o) {
  s.addString("data_dir", &o.data_dir, "", "directory holding chunks (required)")
      .addString("listen", &o.listen, "127.0.0.1:0", "fabric address to serve on (port 0: any)")
      .addString("advertise", &o.advertise, "",
                 "address clients and peers reach this node at, registered with sluice-meta "
                 "(required when listen is a wildcard such as 0.0.0.0; port 0: the bound port)")
      .addString("provider", &o.provider, "tcp;ofi_rxm", "libfabric provider")
      .addBool("busy_poll", &o.busy_poll, false,
               "the fabric progress thread spins instead of sleeping between completions: "
               "lower latency per request, one core always busy")
      .addString("meta", &o.meta, "", "sluice-meta address host:port (required unless --standalone)")
      .addBool("standalone", &o.standalone, false, "run without sluice-meta (tests, benches)")
      .addSize("capacity", &o.capacity, 0, "bytes of chunks this node may hold (0: the file system's size)")
      .addSize("max_chunk", &o.max_chunk, 64ull << 20, "largest chunk accepted from clients (at most 64M; copies from other nodes and chunks already stored may be larger)")
      .addInt("max_stripes", &o.max_stripes, 1 << 16, "stripe numbers must be below this", 1,
              1ll << 24)
      .addInt("stripe_count", &o.stripe_count, 0,
              "the cluster's stripe count; puts must match stripeOf(id) (0: unchecked)", 0,
              1ll << 24)
      .addSize("io_buffer", &o.io_buffer, 8u << 20, "bytes of each I/O context's buffer (registered with io_uring and the fabric)")
      .addInt("workers", &o.workers, 8, "RPC worker threads; each keeps one read on the disk at a time, so this is the node's disk queue depth for client reads; the node keeps twice as many I/O contexts (io_uring ring + io_buffer, pinned in memory)", 1, 64)
      .addInt("open_files", &o.open_files, 4096,
              "chunk files kept open between reads, so a record read costs no open and close "
              "(0: none; at most a quarter of the open-file limit, which the node raises to its hard limit)",
              0, 1 << 20)
      .addBool("direct_io", &o.direct_io, true, "use O_DIRECT where the file system supports it")
      .addSize("scrub.rate", &o.scrub_rate, 64ull << 20, "scrub read rate in bytes/s (0: off)")
      .addDuration("scrub.interval", &o.scrub_interval, std::chrono::hours(24),
                   "pause between scrub passes")
      .addSize("repair.rate", &o.repair_rate, 256ull << 20,
               "default rate of PushStripe/FetchChunks copies in bytes/s")
      .addString("metrics.listen", &o.metrics_listen, "",
                 "host:port of the Prometheus /metrics endpoint (empty: off)")
      .addString("ready_file", &o.ready_file, "",
                 "once serving, write the fabric address into this file (for scripts and tests)");
  addLogOptions(s, &o.log);
  s.setDefaultConfigFile("/etc/sluice/storage.toml");
}

Status writeReadyFile(const std::string& path, const std::string& address) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << address << "\n";
    if (!out) return ioError("writing " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errnoStatus(errno, "renaming " + tmp);
  return Status::ok();
}

// The soft limit on open files up to the hard one: kept chunk files and
// client connections are descriptors, and a soft limit of 1024 is common.
void raiseOpenFileLimit() {
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur >= files.rlim_max) return;
  files.rlim_cur = files.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &files) != 0) {
    spdlog::warn("cannot raise the open-file limit: {}", std::strerror(errno));
  }
}

void publishGauges(const ChunkStore& store, const Scrubber& scrubber) {
  auto& reg = MetricsRegistry::global();
  StoreStats st = store.stats();
  ScrubStats sc = scrubber.stats();
  reg.gauge("sluice_storage_capacity_bytes", "Bytes this node may hold").set(static_cast<int64_t>(st.capacity_bytes));
  reg.gauge("sluice_storage_used_bytes", "Bytes of chunks held").set(static_cast<int64_t>(st.used_bytes));
  reg.gauge("sluice_storage_chunks", "Chunks held").set(static_cast<int64_t>(st.chunks));
  reg.gauge("sluice_storage_fs_free_bytes", "Free bytes on the data file system").set(static_cast<int64_t>(st.fs_free_bytes));
  reg.gauge("sluice_storage_corrupt_chunks_found", "Corrupt chunks found since start").set(static_cast<int64_t>(st.corrupt_found));
  reg.gauge("sluice_storage_quarantined_chunks", "Files in quarantine/").set(static_cast<int64_t>(st.quarantined));
  reg.gauge("sluice_storage_io_errors", "Failed disk reads and writes since start").set(static_cast<int64_t>(st.io_errors));
  reg.gauge("sluice_storage_bytes_written", "Chunk bytes written since start").set(static_cast<int64_t>(st.bytes_written));
  reg.gauge("sluice_storage_bytes_read", "Chunk bytes read since start").set(static_cast<int64_t>(st.bytes_read));
  reg.gauge("sluice_storage_open_chunk_files", "Chunk files kept open between reads").set(static_cast<int64_t>(st.open_files));
  reg.gauge("sluice_storage_descriptor_shortages", "Times an open found the node out of file descriptors (kept chunk files were let go of) since start").set(static_cast<int64_t>(st.descriptor_shortages));
  reg.gauge("sluice_storage_scrub_passes", "Complete scrub passes since start").set(static_cast<int64_t>(sc.passes));
  reg.gauge("sluice_storage_scrub_bytes", "Bytes verified by scrub since start").set(static_cast<int64_t>(sc.bytes));
}

int fail(const std::string& what, const Status& s) {
  spdlog::critical("{}: {}", what, s.toString());
  flushLogs();
  std::fprintf(stderr, "sluice-storage: %s: %s\n", what.c_str(), s.toString().c_str());
  return 1;
}

int run(int argc, char** argv) {
  DaemonOptions o;
  ConfigSchema schema("sluice-storage", "Sluice storage node: chunks on local disk over libfabric");
  declare(schema, o);
  if (Status s = schema.parse(argc, argv); !s.isOk()) {
    std::fprintf(stderr, "sluice-storage: %s\n", s.toString().c_str());
    return 2;
  }
  if (schema.helpRequested()) {
    std::printf("%s", schema.helpText().c_str());
    return 0;
  }
  if (o.data_dir.empty()) {
    std::fprintf(stderr, "sluice-storage: --data_dir is required\n");
    return 2;
  }
  if (Status s = checkCopyRate(o.repair_rate, "repair.rate"); !s.isOk()) {
    std::fprintf(stderr, "sluice-storage: %s\n", s.message().c_str());
    return 2;
  }
  if (!o.standalone && o.meta.empty()) {
    std::fprintf(stderr, "sluice-storage: give --meta host:port, or --standalone to run without sluice-meta\n");
    return 2;
  }
  // Standalone nodes register nowhere: a wildcard listen needs no advertise address there.
  if (Status s = checkAdvertise(o.listen, o.advertise);
      !s.isOk() && (!o.standalone || !o.advertise.empty())) {
    std::fprintf(stderr, "sluice-storage: %s\n", s.toString().c_str());
    return 2;
  }
  // SIGTERM/SIGINT are taken synchronously by the main thread; block them
  // before any thread starts (logging starts one to flush) so every thread
  // inherits the mask. A thread without it took a SIGTERM sent while the
  // node was still registering and aborted the process from there.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  if (Status s = initLogging("sluice-storage", o.log); !s.isOk()) {
    std::fprintf(stderr, "sluice-storage: %s\n", s.toString().c_str());
    return 2;
  }
  spdlog::info("starting with\n{}", schema.effectiveConfig());


  ChunkStoreOptions so;
  so.data_dir = o.data_dir;
  so.capacity_bytes = o.capacity;
  so.max_chunk_bytes = o.max_chunk;
  so.max_stripes = static_cast<uint32_t>(o.max_stripes);
  so.io_buffer_bytes = o.io_buffer;
  so.allow_direct_io = o.direct_io;
  so.open_files = static_cast<size_t>(o.open_files);
  raiseOpenFileLimit();
  auto store = ChunkStore::open(so);
  if (!store.isOk()) return fail("opening the chunk store", store.status());
  StoreStats st = (*store)->stats();
  spdlog::info("data dir {}: {} chunks, {} bytes, inventory rebuilt in {:.3f} s, {} temp files removed, {} I/O, "
               "up to {} chunk files kept open",
               o.data_dir, st.chunks, st.used_bytes, st.open_seconds, st.temp_files_removed,
               st.direct_io ? "O_DIRECT" : "buffered", st.open_files_max);

  auto stored_identity = loadNodeIdentity(o.data_dir);
  if (!stored_identity.isOk()) return fail("reading the node identity", stored_identity.status());
  NodeIdentity identity = stored_identity->value_or(NodeIdentity{});
  if (o.standalone && identity.node_id == 0) {
    std::random_device rd;
    identity.node_id = (static_cast<uint64_t>(rd()) << 32 | rd()) | 1;
    if (Status s = saveNodeIdentity(o.data_dir, identity); !s.isOk()) {
      return fail("writing the node identity", s);
    }
  }

  net::EndpointOptions eo;
  eo.provider = o.provider;
  eo.listen = o.listen;
  eo.worker_threads = static_cast<size_t>(o.workers);
  eo.busy_poll = o.busy_poll;
  auto endpoint = net::Endpoint::create(eo);
  if (!endpoint.isOk()) return fail("creating the fabric endpoint", endpoint.status());

  Scrubber scrubber(**store, ScrubOptions{o.scrub_rate, o.scrub_interval});
  StorageServiceOptions svc_opts;
  // As many again as workers: a GetChunk's context stays with its bytes
  // until they have left, while the worker serves the next request.
  svc_opts.io_contexts = 2 * static_cast<size_t>(o.workers);
  svc_opts.stripe_count = static_cast<uint32_t>(o.stripe_count);
  svc_opts.repair_rate_bytes_per_sec = o.repair_rate;
  auto service = StorageService::create(**store, **endpoint, &scrubber, svc_opts);
  if (!service.isOk()) return fail("creating the storage service", service.status());
  (*service)->setIdentity(identity, o.standalone);
  (*service)->registerHandlers();
  if (Status s = (*endpoint)->start(); !s.isOk()) return fail("starting the fabric endpoint", s);
  auto advertised = advertisedAddress(o.advertise, (*endpoint)->address());
  if (!advertised.isOk()) return fail("advertise", advertised.status());
  const std::string address = *advertised;

  std::unique_ptr<MetaReporter> reporter;
  if (!o.standalone) {
    MetaReporterOptions mo;
    mo.meta_address = o.meta;
    mo.advertise_address = address;
    mo.data_dir = o.data_dir;
    reporter = std::make_unique<MetaReporter>(**endpoint, **store, mo);
    // Registration retries while meta is unreachable; a stop signal then
    // ends it (the main thread is busy registering, so another one waits).
    std::atomic<bool> registering{true}, stop_requested{false};
    std::thread signal_watch([&] {
      while (registering.load()) {
        timespec tick{0, 100'000'000};
        int sig = sigtimedwait(&sigs, nullptr, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
          stop_requested = true;
          reporter->stop();
          return;
        }
      }
    });
    auto id = reporter->registerNode();
    registering = false;
    signal_watch.join();
    if (stop_requested.load()) {
      spdlog::info("stopped while registering with sluice-meta at {}", o.meta);
      (*endpoint)->shutdown();
      return 0;
    }
    if (!id.isOk()) return fail("registering with sluice-meta at " + o.meta, id.status());
    identity = *id;
    (*service)->setIdentity(identity, false);
    // Knowing S lets the node refuse a put into the wrong stripe.
    auto stripes = reporter->fetchStripeCount();
    if (!stripes.isOk()) {
      spdlog::warn("cluster map: {}; stripe numbers are checked against max_stripes only",
                   stripes.status().toString());
    } else if (*stripes > static_cast<uint32_t>(o.max_stripes)) {
      return fail("cluster map", failedPrecondition("the cluster has " + std::to_string(*stripes) +
                                                    " stripes but max_stripes is " +
                                                    std::to_string(o.max_stripes) + "; raise it"));
    } else if (*stripes > 0) {
      (*service)->setStripeCount(*stripes);
    }
    if (Status s = reporter->start(); !s.isOk()) return fail("starting heartbeats", s);
  }
  if (Status s = scrubber.start(); !s.isOk()) return fail("starting the scrubber", s);

  MetricsServer metrics;
  if (!o.metrics_listen.empty()) {
    auto hp = parseHostPort(o.metrics_listen);
    if (!hp.isOk()) return fail("metrics.listen", hp.status());
    if (Status s = metrics.start(*hp); !s.isOk()) return fail("starting /metrics", s);
    spdlog::info("metrics on {}:{}", hp->host, metrics.port());
  }
  publishGauges(**store, scrubber);
  if (!o.ready_file.empty()) {
    if (Status s = writeReadyFile(o.ready_file, address); !s.isOk()) return fail("ready file", s);
  }
  spdlog::info("serving on {}{} ({}) as node {}{}", (*endpoint)->address(),
               address == (*endpoint)->address() ? "" : ", advertised as " + address,
               (*endpoint)->provider(), identity.node_id, o.standalone ? " (standalone)" : "");
  std::printf("sluice-storage: serving on %s\n", address.c_str());
  std::fflush(stdout);

  for (;;) {
    timespec tick{1, 0};
    int sig = sigtimedwait(&sigs, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) break;
    publishGauges(**store, scrubber);
  }
  spdlog::info("shutting down");
  if (reporter) reporter->stop();
  (*endpoint)->shutdown();
  scrubber.stop();
  flushLogs();
  return 0;
}

}  // namespace
}  // namespace sluice::storage

int main(int argc, char** argv) { return sluice::storage::run(argc, argv); }
