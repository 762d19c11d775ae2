// TestCluster: a real dev cluster (sluice-meta + N sluice-storage processes
// on loopback) in a temporary directory, for integration tests and
// benchmarks. Daemons are tied to the test process (they die with it), and
// the destructor stops them and removes the directory.
//
// With Options::isolated_node one storage node runs in its own network
// namespace behind a veth pair (tests/lib/veth_namespace.h), so a test can
// cut it off and heal it; meta, the other nodes and clients then listen on
// this side's veth address instead of 127.0.0.1.
#pragma once

#include <memory>
#include <string>

#include "client/cluster.h"
#include "common/core/result.h"
#include "tools/dev_cluster.h"
#include "tests/lib/veth_namespace.h"
#include "tools/process.h"

namespace sluice::testing {

class TestCluster {
 public:
  struct Options {
    int nodes = 3;
    int stripes = 64;
    int replication = 2;
    std::vector<std::string> extra_meta_args;
    std::vector<std::string> extra_node_args;
    // 1-based index of the storage node to run in its own network namespace
    // (root and `ip netns` needed: start() fails with kUnavailable, saying
    // why, where they are missing); 0: every daemon on 127.0.0.1.
    int isolated_node = 0;
  };

  // Starts the cluster; the directory is /tmp/sluice-test-<pid>-XXXXXX.
  static Result<std::unique_ptr<TestCluster>> start(const Options& options);
  static Result<std::unique_ptr<TestCluster>> start() { return start(Options{}); }
  ~TestCluster();

  const std::string& dir() const { return dir_; }
  std::string clientConfigPath() const { return dir_ + "/client.toml"; }
  const tools::DevClusterState& state() const { return state_; }

  // A fresh client connection (each caller may hold its own).
  Result<std::unique_ptr<client::Cluster>> connect() const;

  // The data directory of storage node `index` (1-based), and its chunk files.
  std::string nodeDataDir(int index) const;
  std::vector<std::string> chunkFiles(int index) const;

  // Starts one more storage node ("node<N+1>"); returns its name.
  Result<std::string> addNode();

  // kill -9 a daemon ("meta", "node2"); restart it with its original arguments.
  Status kill(const std::string& name);
  Status restart(const std::string& name);

  // The isolated node's namespace (Options::isolated_node), else null:
  // isolation()->setLinkUp(false) cuts that node off, true heals it.
  VethNamespace* isolation() const { return netns_.get(); }

  // Runs the `sluice` CLI against this cluster (--cluster added).
  Result<tools::RunOutput> runCli(const std::vector<std::string>& args) const;

 private:
  TestCluster(std::string dir, tools::DevClusterState state, Options options,
              std::unique_ptr<VethNamespace> netns)
      : netns_(std::move(netns)),
        dir_(std::move(dir)),
        state_(std::move(state)),
        options_(std::move(options)) {}
  // The daemon options that start() and addNode() share.
  static tools::DevClusterOptions devOptions(const std::string& dir, const Options& options,
                                             const VethNamespace* netns);
  // Declared first so it is destroyed last, after the destructor stopped
  // the daemons that use it.
  std::unique_ptr<VethNamespace> netns_;
  std::string dir_;
  tools::DevClusterState state_;
  Options options_;
};

// A temporary directory removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace sluice::testing
