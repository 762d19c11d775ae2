// sluice dev up | down | status: a local cluster on loopback.
#include <cstdio>

#include "client/cluster_config.h"
#include "common/core/units.h"
#include "tools/cli/commands.h"
#include "tools/cli/output.h"
#include "tools/dev_cluster.h"

namespace sluice::cli {
namespace {

struct UpArgs {
  int nodes = 3;
  int stripes = 256;
  int replication = 2;
  std::string dir;
  std::string capacity = "0";
  std::string provider = "tcp;ofi_rxm";
};

void printState(const tools::DevClusterState& s, bool json) {
  if (json) {
    Json j;
    j.beginObject().field("dir", s.dir).field("client_config", s.dir + "/client.toml");
    j.beginArray("daemons");
    auto one = [&](const tools::DevDaemon& d) {
      j.beginObject()
          .field("name", d.name)
          .field("pid", int64_t{d.pid})
          .field("address", d.address)
          .field("running", d.running)
          .endObject();
    };
    one(s.meta);
    for (const auto& n : s.nodes) one(n);
    j.endArray().endObject();
    std::printf("%s\n", j.str().c_str());
    return;
  }
  Table t({"DAEMON", "PID", "ADDRESS", "STATE", "LOG"}, {false, true, false, false, false});
  auto row = [&](const tools::DevDaemon& d) {
    t.addRow({d.name, std::to_string(d.pid), d.address, d.running ? "running" : "stopped",
              s.dir + "/" + d.name + ".log"});
  };
  row(s.meta);
  for (const auto& n : s.nodes) row(n);
  std::fputs(t.render().c_str(), stdout);
  std::printf("client config: %s/client.toml\n", s.dir.c_str());
}

int up(Context& ctx, const UpArgs& a) {
  tools::DevClusterOptions o;
  o.dir = a.dir.empty() ? client::defaultDevDir() : a.dir;
  o.nodes = a.nodes;
  o.stripes = a.stripes;
  o.replication = a.replication;
  o.provider = a.provider;
  auto cap = parseSize(a.capacity);
  if (!cap.isOk()) return reportError(cap.status().withContext("--capacity"));
  o.node_capacity = *cap;
  auto state = tools::devUp(o);
  if (!state.isOk()) return reportError(state.status());
  if (!ctx.json) {
    std::printf("dev cluster up in %s: sluice-meta and %d storage nodes on 127.0.0.1\n",
                state->dir.c_str(), a.nodes);
  }
  printState(*state, ctx.json);
  if (!ctx.json && !a.dir.empty() && a.dir != client::defaultDevDir()) {
    std::printf("use it with: export SLUICE_CLUSTER=%s/client.toml\n", state->dir.c_str());
  }
  return kExitOk;
}

}  // namespace

void addDevCommands(CLI::App& app, Context& ctx, Action& action) {
  auto* dev = app.add_subcommand("dev", "a local cluster on loopback for development and tests");
  dev->require_subcommand(1);

  auto a = std::make_shared<UpArgs>();
  auto* u = dev->add_subcommand("up", "start sluice-meta and N storage nodes");
  u->add_option("--nodes", a->nodes, "storage nodes (default 3)")->check(CLI::Range(1, 64));
  u->add_option("--dir", a->dir, "where data, logs and client.toml go (default $SLUICE_DEV_DIR or /tmp/sluice-dev)");
  u->add_option("--stripes", a->stripes, "stripe count of the new cluster (default 256)")->check(CLI::Range(1, 65536));
  u->add_option("--replication", a->replication, "default replication of new datasets (default 2)")->check(CLI::Range(1, 3));
  u->add_option("--capacity", a->capacity, "capacity per node, e.g. 10G (default: the file system's size)");
  u->add_option("--provider", a->provider, "libfabric provider (default tcp;ofi_rxm)");
  u->callback([&ctx, &action, a] { action = [&ctx, a] { return up(ctx, *a); }; });

  auto dir = std::make_shared<std::string>();
  auto purge = std::make_shared<bool>(false);
  auto* d = dev->add_subcommand("down", "stop the dev cluster's daemons");
  d->add_option("--dir", *dir, "the cluster's directory");
  d->add_flag("--purge", *purge, "also delete its data and logs");
  d->callback([&ctx, &action, dir, purge] {
    action = [&ctx, dir, purge] {
      std::string where = dir->empty() ? client::defaultDevDir() : *dir;
      Status s = tools::devDown(where, *purge);
      if (!s.isOk()) return reportError(s);
      if (!ctx.json) std::printf("dev cluster in %s stopped%s\n", where.c_str(), *purge ? " and removed" : "");
      return int{kExitOk};
    };
  });

  auto* s = dev->add_subcommand("status", "the dev cluster's daemons");
  s->add_option("--dir", *dir, "the cluster's directory");
  s->callback([&ctx, &action, dir] {
    action = [&ctx, dir] {
      auto state = tools::devStatus(dir->empty() ? client::defaultDevDir() : *dir);
      if (!state.isOk()) return reportError(state.status());
      printState(*state, ctx.json);
      bool all = state->meta.running;
      for (const auto& n : state->nodes) all = all && n.running;
      return all ? int{kExitOk} : int{kExitUnavailable};
    };
  });
}

}  // namespace sluice::cli
