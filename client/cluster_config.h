// ClusterConfig: how a client finds a Sluice cluster.
//
// Resolution order (first that applies wins):
//   1. an explicit file (the CLI's --cluster FILE, a mount's --cluster),
//   2. $SLUICE_CLUSTER naming a file,
//   3. $SLUICE_META=host:port (provider from $SLUICE_PROVIDER or the default),
//   4. the dev cluster's file: $SLUICE_DEV_DIR/client.toml, where
//      $SLUICE_DEV_DIR defaults to /tmp/sluice-dev (`sluice dev up` writes it).
//
// The file is TOML:
//   meta = "127.0.0.1:7400"
//   provider = "tcp;ofi_rxm"
//   timeout = "10s"
#pragma once

#include <chrono>
#include <string>

#include "common/core/host_port.h"
#include "common/core/result.h"

namespace sluice::client {

struct ClusterConfig {
  HostPort meta;
  std::string provider = "tcp;ofi_rxm";
  std::chrono::milliseconds timeout{10000};
  std::string source;  // where this came from, for messages ("/tmp/sluice-dev/client.toml")
};

std::string defaultDevDir();

// kNotFound with advice ("start one with 'sluice dev up' or pass --cluster")
// when nothing applies; kInvalidArgument naming the key for a bad file.
Result<ClusterConfig> resolveClusterConfig(const std::string& explicit_path = "");

Result<ClusterConfig> readClusterConfig(const std::string& path);
Status writeClusterConfig(const std::string& path, const ClusterConfig& config);

}  // namespace sluice::client
