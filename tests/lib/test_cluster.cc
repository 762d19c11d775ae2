#include "tests/lib/test_cluster.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tools/process.h"

namespace sluice::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string tmpl = "/tmp/sluice-test-" + std::to_string(getpid()) + "-XXXXXX";
  char* p = mkdtemp(tmpl.data());
  path_ = p ? p : "";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) fs::remove_all(path_, ec);
}

tools::DevClusterOptions TestCluster::devOptions(const std::string& dir, const Options& options,
                                                 const VethNamespace* netns) {
  tools::DevClusterOptions o;
  o.dir = dir;
  o.nodes = options.nodes;
  o.stripes = options.stripes;
  o.replication = options.replication;
  o.die_with_parent = true;
  o.extra_meta_args = options.extra_meta_args;
  o.extra_node_args = options.extra_node_args;
  if (netns != nullptr) {
    // 127.0.0.1 inside the namespace is its own loopback: everyone meets on the veth.
    o.listen_host = netns->hostAddress();
    o.node_networks[options.isolated_node] =
        tools::NodeNetwork{netns->name(), netns->innerAddress()};
  }
  return o;
}

Result<std::unique_ptr<TestCluster>> TestCluster::start(const Options& options) {
  std::unique_ptr<VethNamespace> netns;
  if (options.isolated_node != 0) {
    if (options.isolated_node < 1 || options.isolated_node > options.nodes) {
      return invalidArgument("isolated_node " + std::to_string(options.isolated_node) +
                             ": give 1 to " + std::to_string(options.nodes));
    }
    SLUICE_ASSIGN_OR_RETURN(netns, VethNamespace::create());
  }
  std::string tmpl = "/tmp/sluice-test-" + std::to_string(getpid()) + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return errnoStatus(errno, "mkdtemp");
  auto state = tools::devUp(devOptions(tmpl, options, netns.get()));
  if (!state.isOk()) {
    std::error_code ec;
    fs::remove_all(tmpl, ec);
    return state.status();
  }
  return std::unique_ptr<TestCluster>(
      new TestCluster(state->dir, *state, options, std::move(netns)));
}

TestCluster::~TestCluster() {
  tools::devDown(dir_, /*remove_data=*/true).ignore();  // best effort; daemons die with us anyway
}

Result<std::unique_ptr<client::Cluster>> TestCluster::connect() const {
  SLUICE_ASSIGN_OR_RETURN(auto config, client::readClusterConfig(clientConfigPath()));
  return client::Cluster::connect(config);
}

std::string TestCluster::nodeDataDir(int index) const {
  return dir_ + "/node" + std::to_string(index) + "/data";
}

std::vector<std::string> TestCluster::chunkFiles(int index) const {
  std::vector<std::string> out;
  std::error_code ec;
  fs::path stripes = fs::path(nodeDataDir(index)) / "stripes";
  for (auto it = fs::recursive_directory_iterator(stripes, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file() && it->path().filename().string().size() == 32) {
      out.push_back(it->path().string());
    }
  }
  return out;
}

Status TestCluster::kill(const std::string& name) {
  SLUICE_ASSIGN_OR_RETURN(auto state, tools::devStatus(dir_));
  const tools::DevDaemon* d = name == "meta" ? &state.meta : nullptr;
  for (const auto& n : state.nodes) {
    if (n.name == name) d = &n;
  }
  if (d == nullptr || !d->running) return notFound("no running daemon '" + name + "'");
  if (::kill(d->pid, SIGKILL) != 0) return errnoStatus(errno, "kill " + name);
  for (int i = 0; i < 500 && tools::isRunning(d->pid, d->executable); ++i) usleep(10000);
  return Status();
}

Result<std::string> TestCluster::addNode() {
  SLUICE_ASSIGN_OR_RETURN(tools::DevDaemon d,
                          tools::devAddNode(dir_, devOptions(dir_, options_, netns_.get())));
  return d.name;
}

Status TestCluster::restart(const std::string& name) {
  return tools::devRestart(dir_, name, /*die_with_parent=*/true);
}

Result<tools::RunOutput> TestCluster::runCli(const std::vector<std::string>& args) const {
  SLUICE_ASSIGN_OR_RETURN(std::string exe, tools::findExecutable("sluice"));
  std::vector<std::string> full = {"--cluster", clientConfigPath()};
  full.insert(full.end(), args.begin(), args.end());
  return tools::runProcess(exe, full);
}

}  // namespace sluice::testing
