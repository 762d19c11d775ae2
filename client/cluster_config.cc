#include "client/cluster_config.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "common/core/config.h"

namespace sluice::client {
namespace {

bool fileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace

std::string defaultDevDir() {
  const char* dir = std::getenv("SLUICE_DEV_DIR");
  return (dir != nullptr && *dir != '\0') ? dir : "/tmp/sluice-dev";
}

Result<ClusterConfig> readClusterConfig(const std::string& path) {
  ClusterConfig config;
  std::chrono::microseconds timeout{};
  ConfigSchema schema("cluster config");
  schema.addHostPort("meta", &config.meta, HostPort{"127.0.0.1", 0}, "metadata server address")
      .addString("provider", &config.provider, "tcp;ofi_rxm", "libfabric provider")
      .addDuration("timeout", &timeout, std::chrono::seconds(10), "per-call timeout");
  SLUICE_RETURN_IF_ERROR(schema.parseArgs({"--config", path}));
  if (config.meta.port == 0) {
    return invalidArgument(path + ": key 'meta' must name the metadata server as host:port");
  }
  config.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  config.source = path;
  return config;
}

Result<ClusterConfig> resolveClusterConfig(const std::string& explicit_path) {
  if (!explicit_path.empty()) return readClusterConfig(explicit_path);
  if (const char* file = std::getenv("SLUICE_CLUSTER"); file != nullptr && *file != '\0') {
    return readClusterConfig(file);
  }
  if (const char* meta = std::getenv("SLUICE_META"); meta != nullptr && *meta != '\0') {
    auto hp = parseHostPort(meta);
    if (!hp.isOk()) return hp.status().withContext("$SLUICE_META");
    ClusterConfig config;
    config.meta = *hp;
    if (const char* p = std::getenv("SLUICE_PROVIDER"); p != nullptr && *p != '\0') {
      config.provider = p;
    }
    config.source = "$SLUICE_META";
    return config;
  }
  std::string dev = defaultDevDir() + "/client.toml";
  if (fileExists(dev)) return readClusterConfig(dev);
  return notFound(
      "no cluster configured: pass --cluster FILE, set SLUICE_CLUSTER or SLUICE_META=host:port, "
      "or start a local cluster with 'sluice dev up'");
}

Status writeClusterConfig(const std::string& path, const ClusterConfig& config) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return ioError("writing cluster config '" + tmp + "'");
    out << "# Sluice client configuration\n"
        << "meta = \"" << config.meta.toString() << "\"\n"
        << "provider = \"" << config.provider << "\"\n"
        << "timeout = \"" << config.timeout.count() << "ms\"\n";
    if (!out.flush()) return ioError("writing cluster config '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return errnoStatus(errno, "renaming cluster config into '" + path + "'");
  }
  return Status();
}

}  // namespace sluice::client
