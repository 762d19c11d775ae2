// sluice put | versions | version rm | tag set|rm|list | diff
#include <algorithm>
#include <cstdio>
#include <thread>

#include "client/progress.h"
#include "client/tags.h"
#include "client/uploader.h"
#include "common/core/units.h"
#include "common/wire/meta_generated.h"
#include "tools/cli/commands.h"
#include "tools/cli/output.h"

namespace sluice::cli {
namespace {

namespace meta = wire::meta;
using client::ProgressMeter;

struct PutArgs {
  std::string dir;
  std::string dataset;
  std::string tag;
  std::string message;
  bool keep_latest = false;
  unsigned threads = 0;
  std::string batch = "64M";
};

double ratio(uint64_t a, uint64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / b; }

// Share of the version's bytes that were already stored: a ratio of logical
// to new bytes grows without bound as the new part shrinks (17096305.33x for
// one changed record), and means nothing when nothing was new.
double reusedPercent(uint64_t logical, uint64_t new_raw) {
  if (logical == 0) return 0.0;
  return 100.0 * static_cast<double>(logical - std::min(logical, new_raw)) / static_cast<double>(logical);
}

int put(Context& ctx, const PutArgs& a) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  client::UploadOptions options;
  options.message = a.message;
  options.tag = a.tag;
  options.keep_latest = a.keep_latest;
  options.threads = a.threads;
  auto batch = parseSize(a.batch);
  if (!batch.isOk()) return reportError(batch.status().withContext("--batch"));
  if (*batch < (1u << 20)) return reportError(invalidArgument("--batch: at least 1M"));
  options.batch_bytes = *batch;
  options.show_progress = !ctx.quiet && !ctx.json;
  auto report = client::uploadDirectory(**cluster, a.dir, a.dataset, options);
  if (!report.isOk()) return reportError(report.status());
  const auto& r = *report;
  for (const auto& w : r.warnings) std::fprintf(stderr, "sluice: warning: %s\n", w.c_str());
  double dedup = ratio(r.logical_bytes, r.new_raw_bytes);
  double compression = ratio(r.new_raw_bytes, r.new_stored_bytes);
  if (ctx.json) {
    Json j;
    j.beginObject()
        .field("dataset", r.dataset)
        .field("version", r.version)
        .field("files", r.files)
        .field("logical_bytes", r.logical_bytes)
        .field("records", r.records)
        .field("reused_records", r.reused_records)
        .field("new_raw_bytes", r.new_raw_bytes)
        .field("new_stored_bytes", r.new_stored_bytes)
        .field("chunks", r.chunks)
        .field("replaced_chunks", r.replaced_chunks)
        .field("bytes_sent", r.bytes_sent)
        .field("dedup_ratio", dedup)
        .field("reused_bytes_percent", reusedPercent(r.logical_bytes, r.new_raw_bytes))
        .field("compression_ratio", compression)
        .field("seconds", r.seconds)
        .endObject();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  std::printf("committed %s@v%u: %s files, %s\n", r.dataset.c_str(), r.version,
              ProgressMeter::formatCount(r.files).c_str(),
              ProgressMeter::formatBytes(r.logical_bytes).c_str());
  std::printf("  new data   %s raw -> %s stored in %s chunks (%.1f%% of the version)\n",
              ProgressMeter::formatBytes(r.new_raw_bytes).c_str(),
              ProgressMeter::formatBytes(r.new_stored_bytes).c_str(),
              ProgressMeter::formatCount(r.chunks).c_str(),
              r.logical_bytes ? 100.0 * static_cast<double>(r.new_raw_bytes) / r.logical_bytes : 0.0);
  std::printf("  dedup      %s of %s records already stored (%.1f%% of the bytes)\n",
              ProgressMeter::formatCount(r.reused_records).c_str(),
              ProgressMeter::formatCount(r.records).c_str(), reusedPercent(r.logical_bytes, r.new_raw_bytes));
  char compressed[32] = "- (nothing new)";
  if (r.new_stored_bytes > 0) std::snprintf(compressed, sizeof compressed, "%.2fx", compression);
  std::printf("  compression %s;  %s sent to storage nodes in %s (%s/s)\n", compressed,
              ProgressMeter::formatBytes(r.bytes_sent).c_str(),
              ProgressMeter::formatDuration(r.seconds).c_str(),
              ProgressMeter::formatBytes(r.seconds > 0 ? static_cast<uint64_t>(r.logical_bytes / r.seconds) : 0).c_str());
  if (r.replaced_chunks > 0) {
    std::printf("  placement  %s chunks went to another stripe: a replica of theirs was down or failed "
                "(see 'sluice status')\n", ProgressMeter::formatCount(r.replaced_chunks).c_str());
  }
  if (!a.tag.empty()) std::printf("  tagged     %s\n", a.tag.c_str());
  return kExitOk;
}

std::string stateName(meta::VersionState s) {
  switch (s) {
    case meta::VersionState::Draft: return "draft";
    case meta::VersionState::Committed: return "committed";
    case meta::VersionState::Aborted: return "aborted";
  }
  return "unknown";
}

int versions(Context& ctx, const std::string& dataset) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  std::vector<std::unique_ptr<meta::VersionInfoT>> all;
  std::string cursor;
  do {
    meta::ListVersionsRequestT req;
    req.dataset = dataset;
    req.cursor = cursor;
    auto resp = (*cluster)->meta<meta::ListVersionsRequest, meta::ListVersionsResponse>(
        meta::MetaMethod::ListVersions, req, "ListVersions");
    if (!resp.isOk()) return reportError(resp.status());
    for (auto& v : (*resp)->versions) all.push_back(std::move(v));
    cursor = (*resp)->next_cursor;
  } while (!cursor.empty());
  if (ctx.json) {
    Json j;
    j.beginArray();
    for (const auto& v : all) {
      j.beginObject()
          .field("version", v->version)
          .field("state", stateName(v->state))
          .field("files", v->file_count)
          .field("logical_bytes", v->logical_bytes)
          .field("stored_bytes", v->stored_bytes)
          .field("created_ms", v->created_ms)
          .field("committed_ms", v->committed_ms)
          .field("message", v->message);
      j.beginArray("tags");
      for (const auto& t : v->tags) j.value(t);
      j.endArray().endObject();
    }
    j.endArray();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  Table t({"VERSION", "STATE", "FILES", "SIZE", "NEW STORED", "COMMITTED", "TAGS", "MESSAGE"},
          {false, false, true, true, true, false, false, false});
  for (const auto& v : all) {
    std::string tags;
    for (const auto& tag : v->tags) tags += (tags.empty() ? "" : ",") + tag;
    t.addRow({"v" + std::to_string(v->version), stateName(v->state),
              ProgressMeter::formatCount(v->file_count),
              ProgressMeter::formatBytes(v->logical_bytes),
              ProgressMeter::formatBytes(v->stored_bytes), formatTimeMs(v->committed_ms),
              tags.empty() ? "-" : tags, v->message});
  }
  std::fputs(t.render().c_str(), stdout);
  return kExitOk;
}

Result<uint32_t> resolve(client::Cluster& cluster, const VersionRef& ref) {
  meta::ResolveVersionRequestT req;
  req.dataset = ref.dataset;
  req.version = ref.version;
  SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster.meta<meta::ResolveVersionRequest, meta::ResolveVersionResponse>(
                                         meta::MetaMethod::ResolveVersion, req, "ResolveVersion")));
  return resp->version;
}

int versionRm(Context& ctx, const std::string& text, bool force) {
  auto ref = parseVersionRef(text, true);
  if (!ref.isOk()) return reportError(ref.status());
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  auto v = resolve(**cluster, *ref);
  if (!v.isOk()) return reportError(v.status());
  meta::DeleteVersionRequestT req;
  req.dataset = ref->dataset;
  req.version = *v;
  req.force = force;
  auto resp = (*cluster)->meta<meta::DeleteVersionRequest, meta::DeleteVersionResponse>(
      meta::MetaMethod::DeleteVersion, req, "DeleteVersion");
  if (!resp.isOk()) {
    Status s = resp.status();
    if (s.code() == StatusCode::kFailedPrecondition || s.code() == StatusCode::kConflict) {
      s = Status(s.code(), s.message() + " (use --force to delete it and its tags)");
    }
    return reportError(s);
  }
  if (ctx.json) {
    Json j;
    j.beginObject().field("dataset", ref->dataset).field("version", uint64_t{*v}).field("deleted", true)
        .field("tags_deleted", uint64_t{(*resp)->tags_deleted}).endObject();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  std::printf("deleted %s@v%u%s; run 'sluice gc' to free the space only it used\n",
              ref->dataset.c_str(), *v,
              (*resp)->tags_deleted ? (" and " + std::to_string((*resp)->tags_deleted) + " tags").c_str() : "");
  return kExitOk;
}

int tagSet(Context& ctx, const std::string& text, const std::string& tag) {
  auto ref = parseVersionRef(text, true);
  if (!ref.isOk()) return reportError(ref.status());
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  auto v = resolve(**cluster, *ref);
  if (!v.isOk()) return reportError(v.status());
  meta::SetTagRequestT req;
  req.dataset = ref->dataset;
  req.tag = tag;
  req.version = *v;
  auto resp = (*cluster)->meta<meta::SetTagRequest, meta::SetTagResponse>(
      meta::MetaMethod::SetTag, req, "SetTag");
  if (!resp.isOk()) return reportError(resp.status());
  const uint32_t previous = (*resp)->previous_version;
  if (ctx.json) {
    Json j;
    j.beginObject().field("dataset", ref->dataset).field("tag", tag).field("version", uint64_t{*v})
        .field("previous_version", uint64_t{previous}).endObject();
    std::printf("%s\n", j.str().c_str());
  } else if (previous == *v) {
    std::printf("tag %s of %s already names v%u\n", tag.c_str(), ref->dataset.c_str(), *v);
  } else if (previous) {
    std::printf("moved tag %s of %s from v%u to v%u\n", tag.c_str(), ref->dataset.c_str(), previous, *v);
  } else {
    std::printf("tagged %s@v%u as %s\n", ref->dataset.c_str(), *v, tag.c_str());
  }
  return kExitOk;
}

int tagRm(Context& ctx, const std::string& dataset, const std::string& tag) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  meta::DeleteTagRequestT req;
  req.dataset = dataset;
  req.tag = tag;
  auto resp = (*cluster)->meta<meta::DeleteTagRequest, meta::DeleteTagResponse>(
      meta::MetaMethod::DeleteTag, req, "DeleteTag");
  if (!resp.isOk()) return reportError(resp.status());
  if (ctx.json) {
    Json j;
    j.beginObject().field("dataset", dataset).field("tag", tag).field("deleted", true).endObject();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  std::printf("deleted tag %s of %s\n", tag.c_str(), dataset.c_str());
  return kExitOk;
}

int tagList(Context& ctx, const std::string& dataset) {
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  auto tags = client::listTags(**cluster, dataset);
  if (!tags.isOk()) return reportError(tags.status());
  if (ctx.json) {
    Json j;
    j.beginObject();
    for (const auto& t : *tags) j.field(t.name, t.version);
    j.endObject();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  Table t({"TAG", "VERSION"});
  for (const auto& tag : *tags) t.addRow({tag.name, "v" + std::to_string(tag.version)});
  std::fputs(t.render().c_str(), stdout);
  return kExitOk;
}

std::string changeName(meta::ChangeKind k) {
  switch (k) {
    case meta::ChangeKind::Added: return "added";
    case meta::ChangeKind::Removed: return "removed";
    case meta::ChangeKind::Changed: return "changed";
  }
  return "?";
}

int diff(Context& ctx, const std::string& from_text, const std::string& to_text) {
  auto from = parseVersionRef(from_text, true);
  if (!from.isOk()) return reportError(from.status());
  auto to = parseVersionRef(to_text, true);
  if (!to.isOk()) return reportError(to.status());
  if (from->dataset != to->dataset) {
    return reportError(invalidArgument("diff compares two versions of one dataset: '" +
                                       from->dataset + "' and '" + to->dataset + "' differ"));
  }
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  uint64_t counts[3] = {0, 0, 0};
  Json j;
  j.beginObject().beginArray("changes");
  std::string cursor;
  do {
    meta::DiffRequestT req;
    req.dataset = from->dataset;
    req.from = from->version;
    req.to = to->version;
    req.cursor = cursor;
    auto resp = (*cluster)->meta<meta::DiffRequest, meta::DiffResponse>(meta::MetaMethod::Diff,
                                                                        req, "Diff");
    if (!resp.isOk()) return reportError(resp.status());
    for (const auto& c : (*resp)->changes) {
      counts[static_cast<int>(c->kind)]++;
      if (ctx.json) {
        j.beginObject()
            .field("path", c->path)
            .field("change", changeName(c->kind))
            .field("old_size", c->old_size)
            .field("new_size", c->new_size)
            .endObject();
      } else {
        char mark = c->kind == meta::ChangeKind::Added ? '+' : (c->kind == meta::ChangeKind::Removed ? '-' : '~');
        std::string sizes = c->kind == meta::ChangeKind::Added ? ProgressMeter::formatBytes(c->new_size)
                            : c->kind == meta::ChangeKind::Removed ? ProgressMeter::formatBytes(c->old_size)
                            : ProgressMeter::formatBytes(c->old_size) + " -> " + ProgressMeter::formatBytes(c->new_size);
        std::printf("%c %s  (%s)\n", mark, c->path.c_str(), sizes.c_str());
      }
    }
    cursor = (*resp)->next_cursor;
  } while (!cursor.empty());
  if (ctx.json) {
    j.endArray().field("added", counts[0]).field("removed", counts[1]).field("changed", counts[2]).endObject();
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("%s -> %s: %s added, %s removed, %s changed\n", from->str().c_str(), to->str().c_str(),
                ProgressMeter::formatCount(counts[0]).c_str(), ProgressMeter::formatCount(counts[1]).c_str(),
                ProgressMeter::formatCount(counts[2]).c_str());
  }
  return kExitOk;
}

}  // namespace

void addVersionCommands(CLI::App& app, Context& ctx, Action& action) {
  auto pa = std::make_shared<PutArgs>();
  auto* p = app.add_subcommand("put", "upload a directory as a new version of a dataset");
  p->add_option("dir", pa->dir, "local directory to upload")->required();
  p->add_option("dataset", pa->dataset, "dataset to add the version to")->required();
  p->add_option("--tag", pa->tag, "also tag the new version");
  p->add_option("-m,--message", pa->message, "what changed in this version");
  p->add_flag("--keep-latest", pa->keep_latest, "do not move the 'latest' tag");
  p->add_option("--threads", pa->threads, "threads for reading and compressing (default: all cores)");
  p->add_option("--batch", pa->batch, "bytes read, stored and added to the draft per step (default 64M)");
  p->callback([&ctx, &action, pa] { action = [&ctx, pa] { return put(ctx, *pa); }; });

  auto vds = std::make_shared<std::string>();
  auto* v = app.add_subcommand("versions", "list the versions of a dataset");
  v->add_option("dataset", *vds, "dataset name")->required();
  v->callback([&ctx, &action, vds] { action = [&ctx, vds] { return versions(ctx, *vds); }; });

  auto* ver = app.add_subcommand("version", "manage versions");
  ver->require_subcommand(1);
  auto vref = std::make_shared<std::string>();
  auto vforce = std::make_shared<bool>(false);
  auto* vrm = ver->add_subcommand("rm", "delete a version (its space is freed by 'sluice gc')");
  vrm->add_option("version", *vref, "DATASET@VERSION")->required();
  vrm->add_flag("--force", *vforce, "delete even if tagged (deletes its tags)");
  vrm->callback([&ctx, &action, vref, vforce] {
    action = [&ctx, vref, vforce] { return versionRm(ctx, *vref, *vforce); };
  });

  auto* tag = app.add_subcommand("tag", "set, move, delete and list tags");
  tag->require_subcommand(1);
  auto tref = std::make_shared<std::string>();
  auto tname = std::make_shared<std::string>();
  auto* ts = tag->add_subcommand("set", "point TAG at DATASET@VERSION (moves it if it exists)");
  ts->add_option("version", *tref, "DATASET@VERSION")->required();
  ts->add_option("tag", *tname, "tag name")->required();
  ts->callback([&ctx, &action, tref, tname] {
    action = [&ctx, tref, tname] { return tagSet(ctx, *tref, *tname); };
  });
  auto tds = std::make_shared<std::string>();
  auto* tr = tag->add_subcommand("rm", "delete a tag");
  tr->add_option("dataset", *tds, "dataset name")->required();
  tr->add_option("tag", *tname, "tag name")->required();
  tr->callback([&ctx, &action, tds, tname] {
    action = [&ctx, tds, tname] { return tagRm(ctx, *tds, *tname); };
  });
  auto* tl = tag->add_subcommand("list", "list a dataset's tags");
  tl->add_option("dataset", *tds, "dataset name")->required();
  tl->callback([&ctx, &action, tds] { action = [&ctx, tds] { return tagList(ctx, *tds); }; });

  auto dfrom = std::make_shared<std::string>();
  auto dto = std::make_shared<std::string>();
  auto* d = app.add_subcommand("diff", "files added, removed and changed between two versions");
  d->add_option("from", *dfrom, "DATASET@VERSION")->required();
  d->add_option("to", *dto, "DATASET@VERSION")->required();
  d->callback([&ctx, &action, dfrom, dto] {
    action = [&ctx, dfrom, dto] { return diff(ctx, *dfrom, *dto); };
  });
}

}  // namespace sluice::cli
