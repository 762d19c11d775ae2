#include "tools/dev_cluster.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "client/cluster.h"
#include "client/cluster_config.h"
#include "common/wire/meta_generated.h"
#include "tools/process.h"

namespace sluice::tools {
namespace {

namespace fs = std::filesystem;
namespace meta = wire::meta;

constexpr auto kStartTimeout = std::chrono::seconds(20);

struct Recorded {
  DevDaemon daemon;
  std::vector<std::string> args;
};

std::string statePath(const std::string& dir) { return dir + "/cluster.state"; }

// One line per daemon: name, pid, executable, then its arguments, tab-separated.
Status writeState(const std::string& dir, const std::vector<Recorded>& daemons) {
  std::string tmp = statePath(dir) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& r : daemons) {
      out << r.daemon.name << '\t' << r.daemon.pid << '\t' << r.daemon.executable;
      for (const auto& a : r.args) out << '\t' << a;
      out << '\n';
    }
    if (!out.flush()) return ioError("writing '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), statePath(dir).c_str()) != 0) {
    return errnoStatus(errno, "writing '" + statePath(dir) + "'");
  }
  return Status();
}

Result<std::vector<Recorded>> readState(const std::string& dir) {
  std::ifstream in(statePath(dir));
  if (!in) return notFound("no dev cluster in '" + dir + "' (start one with 'sluice dev up')");
  std::vector<Recorded> out;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::stringstream ss(line);
    std::string f;
    while (std::getline(ss, f, '\t')) fields.push_back(f);
    if (fields.size() < 3) return corruption("'" + statePath(dir) + "': malformed line '" + line + "'");
    Recorded r;
    r.daemon.name = fields[0];
    r.daemon.pid = static_cast<pid_t>(std::stol(fields[1]));
    r.daemon.executable = fields[2];
    r.args.assign(fields.begin() + 3, fields.end());
    out.push_back(std::move(r));
  }
  return out;
}

std::string readAddress(const std::string& path) {
  std::ifstream in(path);
  std::string addr;
  std::getline(in, addr);
  return addr;
}

// The last few lines of a daemon's log, for errors about it (the log itself
// may be deleted with a test's directory).
std::string logTail(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
    if (lines.size() > 8) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) out += "  " + l + "\n";
  return out;
}

// Waits until the daemon wrote its ready file; fails early if it exited.
Result<std::string> waitReady(const DevDaemon& d, const std::string& ready_file,
                              const std::string& log) {
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string addr = readAddress(ready_file);
    if (!addr.empty()) return addr;
    if (!childAlive(d.pid)) {
      return unavailable(d.name + " exited during startup; see " + log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return timeoutError(d.name + " did not become ready within 20 s; see " + log);
}

std::string netnsPath(const std::string& dir, const std::string& name) {
  return dir + "/" + name + ".netns";
}

// The network namespace a daemon runs in ("": this process's).
std::string readNetns(const std::string& dir, const std::string& name) {
  std::ifstream in(netnsPath(dir, name));
  std::string netns;
  std::getline(in, netns);
  return netns;
}

// `ip` lives in sbin, which a test's PATH may lack.
Result<std::string> ipExecutable() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(p, X_OK) == 0) return std::string(p);
  }
  return findExecutable("ip");
}

Status checkNetnsName(const std::string& netns) {
  if (netns.empty() || netns.size() > 64 ||
      netns.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789_.-") != std::string::npos ||
      netns[0] == '.') {
    return invalidArgument(
        "network namespace name '" + netns +
        "': use 1 to 64 letters, digits, '_', '.' or '-', not starting with '.'");
  }
  return Status();
}

// `netns` non-empty: the daemon runs in that network namespace, started
// through `ip netns exec`, which execs in place, so the PID and
// /proc/<pid>/exe are the daemon's own once it is ready.
Result<Recorded> startDaemon(const std::string& dir, const std::string& name,
                             const std::string& executable, std::vector<std::string> args,
                             bool die_with_parent, const std::string& netns = "") {
  std::string ready = dir + "/" + name + ".address";
  std::string log = dir + "/" + name + ".log";
  fs::remove(ready);
  ProcessSpec spec{executable, {}, log, true, die_with_parent};
  std::error_code ec;
  if (netns.empty()) {
    fs::remove(netnsPath(dir, name), ec);
  } else {
    SLUICE_RETURN_IF_ERROR(checkNetnsName(netns));
    SLUICE_ASSIGN_OR_RETURN(spec.executable, ipExecutable());
    spec.args = {"netns", "exec", netns, executable};
    std::ofstream out(netnsPath(dir, name), std::ios::trunc);
    out << netns << '\n';
    if (!out.flush()) return ioError("writing '" + netnsPath(dir, name) + "'");
  }
  // Both daemons write their bound address to this file once they serve.
  args.push_back("--ready_file");
  args.push_back(ready);
  Recorded r;
  r.daemon.name = name;
  r.daemon.executable = executable;
  r.args = args;
  // The recorded arguments exclude the ready file flag pair: restart adds it.
  r.args.resize(r.args.size() - 2);
  spec.args.insert(spec.args.end(), args.begin(), args.end());
  SLUICE_ASSIGN_OR_RETURN(r.daemon.pid, spawnProcess(spec));
  auto addr = waitReady(r.daemon, ready, log);
  if (!addr.isOk()) {
    stopProcess(r.daemon.pid, executable).ignore();  // it failed to start; its log says why
    return Status(addr.status().code(), addr.status().message() + "; its last lines:\n" + logTail(log));
  }
  r.daemon.address = *addr;
  r.daemon.running = true;
  // A restart must come back on the same address: peers and client.toml know it.
  for (size_t i = 0; i + 1 < r.args.size(); ++i) {
    if (r.args[i] == "--listen") r.args[i + 1] = *addr;
  }
  return r;
}

std::vector<std::string> nodeArgs(const std::string& dir, int index, const std::string& meta_addr,
                                  const DevClusterOptions& o) {
  std::string data = dir + "/node" + std::to_string(index) + "/data";
  fs::create_directories(data);
  auto net = o.node_networks.find(index);
  std::string host = net == o.node_networks.end() ? o.listen_host : net->second.listen_host;
  std::vector<std::string> args = {"--data_dir", data, "--listen", host + ":0",
                                   "--meta", meta_addr, "--provider", o.provider};
  if (o.node_capacity) {
    args.push_back("--capacity");
    args.push_back(std::to_string(o.node_capacity));
  }
  args.insert(args.end(), o.extra_node_args.begin(), o.extra_node_args.end());
  return args;
}

// Polls meta until `expected` nodes are up.
Status waitForNodes(const std::string& dir, size_t expected) {
  SLUICE_ASSIGN_OR_RETURN(auto config, client::readClusterConfig(dir + "/client.toml"));
  SLUICE_ASSIGN_OR_RETURN(auto cluster, client::Cluster::connect(config));
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  size_t up = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    meta::ListNodesRequestT req;
    auto resp = cluster->meta<meta::ListNodesRequest, meta::ListNodesResponse>(
        meta::MetaMethod::ListNodes, req, "ListNodes");
    if (!resp.isOk()) return resp.status();
    up = 0;
    for (const auto& n : (*resp)->nodes) up += n->state == meta::NodeState::Up;
    if (up >= expected) return Status();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return timeoutError(std::to_string(up) + " of " + std::to_string(expected) +
                      " storage nodes registered within 20 s; see the node logs in " + dir);
}

// Where nodes listen ends up in the state file and in --listen host:port.
Status checkNetworks(const DevClusterOptions& o) {
  auto bad_host = [](const std::string& h) {
    return h.empty() || h.find_first_of("\t\n :[]") != std::string::npos;
  };
  if (bad_host(o.listen_host)) {
    return invalidArgument("listen host '" + o.listen_host +
                           "': give an IPv4 address or host name");
  }
  if (!o.node_networks.empty() && o.provider.find("shm") != std::string::npos) {
    return invalidArgument(
        "provider '" + o.provider + "' cannot run nodes in their own network namespaces: shm "
        "goes through /dev/shm, which a network namespace does not isolate, so cutting the "
        "link would not cut the node off; use the tcp;ofi_rxm provider with node networks");
  }
  for (const auto& [index, net] : o.node_networks) {
    std::string what = "node" + std::to_string(index);
    if (index < 1) return invalidArgument(what + ": node indexes start at 1");
    SLUICE_RETURN_IF_ERROR(checkNetnsName(net.netns).withContext(what));
    if (bad_host(net.listen_host)) {
      return invalidArgument(what + ": listen host '" + net.listen_host +
                             "': give the IPv4 address it has inside " + net.netns);
    }
  }
  return Status();
}

// The namespace node `index` runs in under these options ("": ours).
std::string nodeNetns(const DevClusterOptions& o, int index) {
  auto net = o.node_networks.find(index);
  return net == o.node_networks.end() ? "" : net->second.netns;
}

}  // namespace

Result<DevClusterState> devUp(const DevClusterOptions& o) {
  if (o.dir.empty()) return invalidArgument("--dir: empty");
  if (o.dir.find_first_of("\t\n") != std::string::npos) {
    return invalidArgument("--dir: tabs and newlines are not allowed in the path");
  }
  if (o.nodes < 1 || o.nodes > 64) return invalidArgument("--nodes: 1 to 64");
  SLUICE_RETURN_IF_ERROR(checkNetworks(o));
  if (auto existing = devStatus(o.dir); existing.isOk() && existing->meta.running) {
    return alreadyExists("a dev cluster is already running in '" + o.dir +
                         "' (stop it with 'sluice dev down')");
  }
  std::error_code ec;
  fs::create_directories(o.dir + "/meta", ec);
  if (ec) return ioError("creating '" + o.dir + "': " + ec.message());
  std::string dir = fs::canonical(o.dir).string();

  SLUICE_ASSIGN_OR_RETURN(std::string meta_exe, findExecutable("sluice-meta"));
  SLUICE_ASSIGN_OR_RETURN(std::string node_exe, findExecutable("sluice-storage"));

  std::vector<Recorded> started;
  auto fail = [&](const Status& s) -> Status {
    for (auto it = started.rbegin(); it != started.rend(); ++it) {
      stopProcess(it->daemon.pid, it->daemon.executable).ignore();  // best effort on the error path
    }
    fs::remove(statePath(dir));
    return s;
  };

  std::vector<std::string> meta_args = {"--data_dir", dir + "/meta",
                                        "--listen", o.listen_host + ":0",
                                        "--provider", o.provider,
                                        "--stripe_count", std::to_string(o.stripes),
                                        "--default_replication", std::to_string(o.replication)};
  meta_args.insert(meta_args.end(), o.extra_meta_args.begin(), o.extra_meta_args.end());
  auto meta = startDaemon(dir, "meta", meta_exe, meta_args, o.die_with_parent);
  if (!meta.isOk()) return fail(meta.status());
  started.push_back(*meta);
  SLUICE_RETURN_IF_ERROR(writeState(dir, started));

  client::ClusterConfig config;
  auto hp = parseHostPort(meta->daemon.address);
  if (!hp.isOk()) return fail(hp.status().withContext("meta's ready file"));
  config.meta = *hp;
  config.provider = o.provider;
  Status s = client::writeClusterConfig(dir + "/client.toml", config);
  if (!s.isOk()) return fail(s);

  for (int i = 1; i <= o.nodes; ++i) {
    auto node = startDaemon(dir, "node" + std::to_string(i), node_exe,
                            nodeArgs(dir, i, meta->daemon.address, o), o.die_with_parent,
                            nodeNetns(o, i));
    if (!node.isOk()) return fail(node.status());
    started.push_back(*node);
    s = writeState(dir, started);
    if (!s.isOk()) return fail(s);
  }
  s = waitForNodes(dir, static_cast<size_t>(o.nodes));
  if (!s.isOk()) return fail(s);
  return devStatus(dir);
}

Status devDown(const std::string& dir, bool remove_data) {
  SLUICE_ASSIGN_OR_RETURN(auto daemons, readState(dir));
  Status first;
  // Nodes first, then meta, so nodes do not log a missing meta on the way out.
  for (auto it = daemons.rbegin(); it != daemons.rend(); ++it) {
    Status s = stopProcess(it->daemon.pid, it->daemon.executable);
    if (!s.isOk() && first.isOk()) first = s.withContext(it->daemon.name);
  }
  if (!first.isOk()) return first;
  fs::remove(statePath(dir));
  if (remove_data) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) return ioError("removing '" + dir + "': " + ec.message());
  }
  return Status();
}

Result<DevClusterState> devStatus(const std::string& dir) {
  SLUICE_ASSIGN_OR_RETURN(auto daemons, readState(dir));
  DevClusterState state;
  state.dir = dir;
  for (auto& r : daemons) {
    r.daemon.running = isRunning(r.daemon.pid, r.daemon.executable);
    r.daemon.address = readAddress(dir + "/" + r.daemon.name + ".address");
    if (r.daemon.name == "meta") {
      state.meta = r.daemon;
    } else {
      state.nodes.push_back(r.daemon);
    }
  }
  return state;
}

Result<DevDaemon> devAddNode(const std::string& dir, const DevClusterOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(auto daemons, readState(dir));
  SLUICE_ASSIGN_OR_RETURN(auto state, devStatus(dir));
  if (!state.meta.running) return unavailable("the dev cluster's meta is not running");
  SLUICE_RETURN_IF_ERROR(checkNetworks(o));
  SLUICE_ASSIGN_OR_RETURN(std::string node_exe, findExecutable("sluice-storage"));
  int index = static_cast<int>(state.nodes.size()) + 1;
  SLUICE_ASSIGN_OR_RETURN(auto node, startDaemon(dir, "node" + std::to_string(index), node_exe,
                                                 nodeArgs(dir, index, state.meta.address, o),
                                                 o.die_with_parent, nodeNetns(o, index)));
  daemons.push_back(node);
  SLUICE_RETURN_IF_ERROR(writeState(dir, daemons));
  SLUICE_RETURN_IF_ERROR(waitForNodes(dir, state.nodes.size() + 1));
  return node.daemon;
}

Status devRestart(const std::string& dir, const std::string& name, bool die_with_parent) {
  SLUICE_ASSIGN_OR_RETURN(auto daemons, readState(dir));
  for (auto& r : daemons) {
    if (r.daemon.name != name) continue;
    if (isRunning(r.daemon.pid, r.daemon.executable)) {
      return alreadyExists(name + " is still running (pid " + std::to_string(r.daemon.pid) + ")");
    }
    SLUICE_ASSIGN_OR_RETURN(auto fresh, startDaemon(dir, name, r.daemon.executable, r.args,
                                                    die_with_parent, readNetns(dir, name)));
    r = fresh;
    return writeState(dir, daemons);
  }
  return notFound("no daemon named '" + name + "' in the dev cluster in '" + dir + "'");
}

}  // namespace sluice::tools
