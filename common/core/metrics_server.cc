#include "common/core/metrics_server.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include <sys/socket.h>

#include <httplib.h>


namespace sluice {
namespace {

constexpr const char* kContentType = "text/plain; version=0.0.4";
constexpr size_t kHttpThreads = 2;  // scrapes are rare; keep the daemon's thread count small

}  // namespace

struct MetricsServer::Impl {
  const MetricsRegistry& registry;
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  uint16_t port = 0;
};

MetricsServer::MetricsServer(const MetricsRegistry& registry)
    : impl_(new Impl{registry, nullptr, {}, 0}) {}

MetricsServer::~MetricsServer() { stop(); }

Status MetricsServer::start(const HostPort& listen) {
  if (impl_->server) {
    return failedPrecondition("metrics server already serving on port " +
                              std::to_string(impl_->port));
  }
  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  // httplib's default sets SO_REUSEPORT, which would let a second daemon
  // silently share a configured port; SO_REUSEADDR alone still allows a quick
  // restart while old connections sit in TIME_WAIT.
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server->set_keep_alive_timeout(2);
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  const MetricsRegistry& registry = impl_->registry;
  server->Get("/metrics", [&registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry.exposition(), kContentType);
  });
  errno = 0;
  int port = 0;
  if (listen.port == 0) {
    port = server->bind_to_any_port(listen.host);
  } else {
    port = server->bind_to_port(listen.host, listen.port) ? listen.port : -1;
  }
  if (port <= 0) {
    int err = errno;
    return unavailable("metrics server: cannot listen on " + listen.toString() +
                       (err != 0 ? std::string(": ") + std::strerror(err) : std::string()));
  }
  httplib::Server* raw = server.get();
  auto exited = std::make_shared<std::atomic<bool>>(false);
  impl_->thread = std::thread([raw, exited] {
    raw->listen_after_bind();
    exited->store(true);
  });
  // httplib's stop() is a no-op until the accept loop runs; wait for it so a
  // stop() right after start() cannot be lost.
  while (!raw->is_running() && !exited->load()) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  if (!raw->is_running()) {
    impl_->thread.join();
    return unavailable("metrics server: accept loop on " + listen.toString() + " exited at start");
  }
  impl_->server = std::move(server);
  impl_->port = static_cast<uint16_t>(port);
  return Status();
}

uint16_t MetricsServer::port() const { return impl_->port; }

void MetricsServer::stop() {
  if (!impl_->server) return;
  impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->server.reset();
  impl_->port = 0;
}

}  // namespace sluice
