// sluice dataset create|list|show|rm
#include <cstdio>

#include "client/progress.h"
#include "client/tags.h"
#include "common/core/units.h"
#include "common/wire/meta_generated.h"
#include "tools/cli/commands.h"
#include "tools/cli/output.h"

namespace sluice::cli {
namespace {

namespace meta = wire::meta;
using client::ProgressMeter;

std::string compressionName(meta::CompressionPolicy p) {
  return p == meta::CompressionPolicy::None ? "none" : "auto";
}

void datasetJson(Json& j, const meta::DatasetInfoT& d) {
  j.field("name", d.name)
      .field("replication", uint32_t{d.replication})
      .field("chunk_size", d.chunk_size)
      .field("compression", compressionName(d.compression))
      .field("created_ms", d.created_ms)
      .field("versions", d.version_count)
      .field("tags", d.tag_count);
}

struct CreateArgs {
  std::string name;
  unsigned replication = 0;
  std::string chunk_size = "4M";
  std::string compression = "auto";
};

// The dataset is created either way (nodes may be on their way), but its
// first upload would fail: say so now rather than then.
void warnIfTooFewNodes(client::Cluster& cluster, const std::string& name, unsigned replication) {
  if (!cluster.refreshMap().isOk()) return;
  size_t up = 0;
  for (const auto& n : cluster.map()->nodes()) up += n.state == meta::NodeState::Up ? 1 : 0;
  if (up >= replication) return;
  std::fprintf(stderr,
               "sluice: warning: %s keeps %u replicas but only %zu storage node%s up: uploads to it "
               "fail until %u are (see 'sluice status')\n",
               name.c_str(), replication, up, up == 1 ? " is" : "s are", replication);
}

int create(Context& ctx, const CreateArgs& a) {
  meta::CreateDatasetRequestT req;
  req.name = a.name;
  req.replication = static_cast<uint8_t>(a.replication);
  auto size = parseSize(a.chunk_size);
  if (!size.isOk()) return reportError(size.status().withContext("--chunk-size"));
  if (*size > UINT32_MAX) return reportError(invalidArgument("--chunk-size: must be 64K..64M"));
  req.chunk_size = static_cast<uint32_t>(*size);
  if (a.compression == "auto") {
    req.compression = meta::CompressionPolicy::Auto;
  } else if (a.compression == "none") {
    req.compression = meta::CompressionPolicy::None;
  } else {
    return reportError(invalidArgument("--compression: '" + a.compression +
                                       "' is not one of: auto, none"));
  }
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  auto resp = (*cluster)->meta<meta::CreateDatasetRequest, meta::CreateDatasetResponse>(
      meta::MetaMethod::CreateDataset, req, "CreateDataset");
  if (!resp.isOk()) return reportError(resp.status());
  const auto& d = *(*resp)->dataset;
  if (ctx.json) {
    Json j;
    j.beginObject();
    datasetJson(j, d);
    j.endObject();
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("created dataset %s (replication %u, chunk size %s, compression %s)\n",
                d.name.c_str(), unsigned{d.replication},
                ProgressMeter::formatBytes(d.chunk_size).c_str(),
                compressionName(d.compression).c_str());
  }
  warnIfTooFewNodes(**cluster, d.name, d.replication);
  return kExitOk;
}

int list(Context& ctx) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  std::vector<std::unique_ptr<meta::DatasetInfoT>> all;
  std::string cursor;
  do {
    meta::ListDatasetsRequestT req;
    req.cursor = cursor;
    auto resp = (*cluster)->meta<meta::ListDatasetsRequest, meta::ListDatasetsResponse>(
        meta::MetaMethod::ListDatasets, req, "ListDatasets");
    if (!resp.isOk()) return reportError(resp.status());
    for (auto& d : (*resp)->datasets) all.push_back(std::move(d));
    cursor = (*resp)->next_cursor;
  } while (!cursor.empty());
  if (ctx.json) {
    Json j;
    j.beginArray();
    for (const auto& d : all) {
      j.beginObject();
      datasetJson(j, *d);
      j.endObject();
    }
    j.endArray();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  if (all.empty()) {
    std::printf("no datasets yet: create one with 'sluice dataset create NAME'\n");
    return kExitOk;
  }
  Table t({"NAME", "REPLICATION", "CHUNK", "COMPRESSION", "VERSIONS", "TAGS", "CREATED"},
          {false, true, true, false, true, true, false});
  for (const auto& d : all) {
    t.addRow({d->name, std::to_string(d->replication), ProgressMeter::formatBytes(d->chunk_size),
              compressionName(d->compression), std::to_string(d->version_count),
              std::to_string(d->tag_count), formatTimeMs(d->created_ms)});
  }
  std::fputs(t.render().c_str(), stdout);
  return kExitOk;
}

int show(Context& ctx, const std::string& name) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  meta::GetDatasetRequestT req;
  req.name = name;
  auto resp = (*cluster)->meta<meta::GetDatasetRequest, meta::GetDatasetResponse>(
      meta::MetaMethod::GetDataset, req, "GetDataset");
  if (!resp.isOk()) return reportError(resp.status());
  auto tags = client::listTags(**cluster, name);
  if (!tags.isOk()) return reportError(tags.status());
  const auto& d = *(*resp)->dataset;
  if (ctx.json) {
    Json j;
    j.beginObject();
    datasetJson(j, d);
    j.beginObject("tag_versions");
    for (const auto& t : *tags) j.field(t.name, t.version);
    j.endObject().endObject();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  std::printf("dataset      %s\nreplication  %u\nchunk size   %s\ncompression  %s\n"
              "versions     %u (next: v%u)\ncreated      %s\n",
              d.name.c_str(), unsigned{d.replication},
              ProgressMeter::formatBytes(d.chunk_size).c_str(),
              compressionName(d.compression).c_str(), d.version_count, d.next_version,
              formatTimeMs(d.created_ms).c_str());
  std::printf("tags        ");
  if (tags->empty()) std::printf(" -");
  for (const auto& t : *tags) std::printf(" %s=v%u", t.name.c_str(), t.version);
  std::printf("\n");
  return kExitOk;
}

int remove(Context& ctx, const std::string& name, bool force) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  meta::DeleteDatasetRequestT req;
  req.name = name;
  req.force = force;
  auto resp = (*cluster)->meta<meta::DeleteDatasetRequest, meta::DeleteDatasetResponse>(
      meta::MetaMethod::DeleteDataset, req, "DeleteDataset");
  if (!resp.isOk()) {
    Status s = resp.status();
    if (s.code() == StatusCode::kFailedPrecondition || s.code() == StatusCode::kConflict) {
      s = Status(s.code(), s.message() + " (use --force to delete it with its tags)");
    }
    return reportError(s);
  }
  if (ctx.json) {
    Json j;
    j.beginObject().field("deleted", name).field("versions_deleted", (*resp)->versions_deleted).endObject();
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("deleted dataset %s (%u versions); run 'sluice gc' to free their space\n",
                name.c_str(), (*resp)->versions_deleted);
  }
  return kExitOk;
}

}  // namespace

void addDatasetCommands(CLI::App& app, Context& ctx, Action& action) {
  auto* ds = app.add_subcommand("dataset", "create, list, show and delete datasets");
  ds->require_subcommand(1);

  auto args = std::make_shared<CreateArgs>();
  auto* c = ds->add_subcommand("create", "create a dataset");
  c->add_option("name", args->name, "dataset name: [A-Za-z0-9][A-Za-z0-9._-]{0,63}")->required();
  c->add_option("-r,--replication", args->replication, "copies of every chunk (1-3; default: the cluster's)")
      ->check(CLI::Range(0, 3));
  c->add_option("--chunk-size", args->chunk_size, "chunk size, e.g. 4M (default 4M)");
  c->add_option("--compression", args->compression, "auto (zstd where it helps) or none");
  c->callback([&ctx, &action, args] { action = [&ctx, args] { return create(ctx, *args); }; });

  auto* l = ds->add_subcommand("list", "list datasets");
  l->callback([&ctx, &action] { action = [&ctx] { return list(ctx); }; });

  auto name = std::make_shared<std::string>();
  auto* s = ds->add_subcommand("show", "show one dataset");
  s->add_option("name", *name, "dataset name")->required();
  s->callback([&ctx, &action, name] { action = [&ctx, name] { return show(ctx, *name); }; });

  auto rm_name = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  auto* r = ds->add_subcommand("rm", "delete a dataset and all its versions");
  r->add_option("name", *rm_name, "dataset name")->required();
  r->add_flag("--force", *force, "delete even if it has tags");
  r->callback([&ctx, &action, rm_name, force] {
    action = [&ctx, rm_name, force] { return remove(ctx, *rm_name, *force); };
  });
}

}  // namespace sluice::cli
