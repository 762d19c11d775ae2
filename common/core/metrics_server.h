// MetricsServer: serves a MetricsRegistry as Prometheus text on
// GET /metrics (content type "text/plain; version=0.0.4"); other paths get
// 404. One small HTTP server thread pool per daemon, off the data path.
#pragma once

#include <cstdint>
#include <memory>

#include "common/core/host_port.h"
#include "common/core/metrics.h"
#include "common/core/status.h"

namespace sluice {

class MetricsServer {
 public:
  // `registry` must outlive the server.
  explicit MetricsServer(const MetricsRegistry& registry = MetricsRegistry::global());
  ~MetricsServer();  // stops
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds `listen` (port 0 picks a free port; see port()) and serves on
  // background threads until stop(). Returns kUnavailable naming the address
  // if it cannot be bound, kFailedPrecondition if already started.
  Status start(const HostPort& listen);
  // The bound port; 0 before start().
  uint16_t port() const;
  // Stops accepting, finishes in-flight requests and joins the threads.
  // Idempotent; start() may be called again afterwards.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
