// A local Sluice cluster on loopback: one sluice-meta and N sluice-storage
// processes under one directory, with a client config for everything else.
// `sluice dev up|down|status`, the demo, tests and benchmarks use it.
//
// Layout of the directory:
//   meta/             LMDB files            meta.log, meta.address
//   node<i>/data/     chunk store of node i node<i>.log, node<i>.address
//   client.toml       what clients read (see client/cluster_config.h)
//   cluster.state     PIDs of the daemons this cluster started
//   node<i>.netns     the network namespace node i runs in, if not ours
//
// Daemons listen on 127.0.0.1 with ports the kernel picks, so several dev
// clusters (parallel tests) never collide. Tests that cut a node off the
// network run it in another network namespace (DevClusterOptions::
// node_networks); everything else then listens on an address that namespace
// can route to (listen_host), since 127.0.0.1 there is its own loopback.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "common/core/result.h"

namespace sluice::tools {

// A storage node that runs in its own network namespace.
struct NodeNetwork {
  // Needs a provider that goes over IP (tcp;ofi_rxm): shm ignores namespaces.
  std::string netns;        // started as `ip netns exec <netns> sluice-storage ...` (needs root)
  std::string listen_host;  // the address it binds and so advertises to meta and peers
};

struct DevClusterOptions {
  std::string dir;                // required
  int nodes = 3;
  int stripes = 256;
  int replication = 2;            // the cluster's default for new datasets
  std::string provider = "tcp;ofi_rxm";
  uint64_t node_capacity = 0;     // bytes per node; 0: the file system's size
  bool die_with_parent = false;   // tests: daemons die with the test process
  std::vector<std::string> extra_meta_args;
  std::vector<std::string> extra_node_args;
  // The address meta and the storage nodes bind (port chosen by the kernel).
  // Every node, wherever it runs, and every client must be able to reach it.
  std::string listen_host = "127.0.0.1";
  // Node index (1-based) -> where it runs instead; restarts keep it there.
  std::map<int, NodeNetwork> node_networks;
};

struct DevDaemon {
  std::string name;        // "meta", "node1", ...
  pid_t pid = 0;
  std::string executable;
  std::string address;     // fabric address, from its ready file
  bool running = false;
};

struct DevClusterState {
  std::string dir;
  DevDaemon meta;
  std::vector<DevDaemon> nodes;
};

// Starts the cluster and waits until every node has registered with meta.
// kAlreadyExists if `dir` already holds a running cluster. On failure every
// daemon it started is stopped again and the error names the daemon and its
// log file.
Result<DevClusterState> devUp(const DevClusterOptions& options);
// Stops the daemons recorded in dir/cluster.state (by PID, checked against
// their executable). Data stays unless `remove_data`.
Status devDown(const std::string& dir, bool remove_data = false);
Result<DevClusterState> devStatus(const std::string& dir);

// Starts one more storage node in an existing dev cluster (admin tests).
Result<DevDaemon> devAddNode(const std::string& dir, const DevClusterOptions& options);
// Restarts a stopped daemon of the cluster with its original arguments.
Status devRestart(const std::string& dir, const std::string& name, bool die_with_parent = false);

}  // namespace sluice::tools
