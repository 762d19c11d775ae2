// sluice ls | stat | cat | get
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <mutex>

#include <xxhash.h>

#include "client/dataset_path.h"
#include "client/parallel.h"
#include "client/progress.h"
#include "client/reader.h"
#include "common/wire/meta_generated.h"
#include "tools/cli/commands.h"
#include "tools/cli/output.h"
#include "tools/cli/part_files.h"

namespace sluice::cli {
namespace {

namespace meta = wire::meta;
namespace fs = std::filesystem;
using client::ProgressMeter;

// A path the server sent, checked before it is joined onto a local folder:
// relative, no empty, "." or ".." components, no NUL. Keeps `get` inside DEST
// whatever the server says.
Status checkServerPath(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.find('\0') != std::string::npos) {
    return Status(StatusCode::kProtocolError, "unsafe path from sluice-meta: '" + path + "'");
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view c(path.data() + start, end - start);
    if (c.empty() || c == "." || c == "..") {
      return Status(StatusCode::kProtocolError, "unsafe path from sluice-meta: '" + path + "'");
    }
    start = end + 1;
  }
  return Status();
}

std::string typeChar(meta::EntryType t) {
  switch (t) {
    case meta::EntryType::Directory: return "d";
    case meta::EntryType::Symlink: return "l";
    default: return "-";
  }
}

std::string typeName(meta::EntryType t) {
  switch (t) {
    case meta::EntryType::Directory: return "directory";
    case meta::EntryType::Symlink: return "symlink";
    default: return "file";
  }
}

struct LsArgs {
  std::string ref;
  std::string path;
  bool long_format = false;
  bool recursive = false;
};

// One line of ls: `full` is the entry's path in the version, `shown` its name
// as listed.
template <typename Entry>
void addListing(const Entry& e, const std::string& full, std::string shown, const LsArgs& a, Table& table,
                Json& json) {
  if (e.type == meta::EntryType::Symlink && a.long_format) shown += " -> " + e.symlink_target;
  json.beginObject()
      .field("path", full)
      .field("type", typeName(e.type))
      .field("symlink_target", e.symlink_target)
      .field("size", e.size)
      .field("mode", e.mode)
      .field("mtime_ns", e.mtime_ns)
      .endObject();
  if (a.long_format) {
    table.addRow({typeChar(e.type) + formatMode(e.mode), ProgressMeter::formatCount(e.size),
                  formatTimeMs(e.mtime_ns / 1'000'000), shown});
  } else {
    table.addRow({shown});
  }
}

Status listDir(client::Cluster& cluster, const VersionRef& ref, const std::string& dir,
               const LsArgs& a, Table& table, Json& json) {
  std::vector<std::string> subdirs;
  std::string cursor;
  do {
    meta::ReadDirRequestT req;
    req.dataset = ref.dataset;
    req.version = ref.version;
    req.path = dir;
    req.cursor = cursor;
    SLUICE_ASSIGN_OR_RETURN(auto resp, (cluster.meta<meta::ReadDirRequest, meta::ReadDirResponse>(
                                           meta::MetaMethod::ReadDir, req, "ReadDir")));
    for (const auto& e : resp->entries) {
      std::string full = dir.empty() ? e->path : dir + "/" + e->path;
      bool is_dir = e->type == meta::EntryType::Directory;
      if (is_dir && a.recursive) subdirs.push_back(full);
      addListing(*e, full, (a.recursive ? full : e->path) + (is_dir ? "/" : ""), a, table, json);
    }
    cursor = resp->next_cursor;
  } while (!cursor.empty());
  for (const auto& d : subdirs) SLUICE_RETURN_IF_ERROR(listDir(cluster, ref, d, a, table, json));
  return Status();
}

int ls(Context& ctx, const LsArgs& a) {
  auto ref = parseVersionRef(a.ref);
  if (!ref.isOk()) return reportError(ref.status());
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  Table table = a.long_format ? Table({"MODE", "SIZE", "MODIFIED", "NAME"}, {false, true, false, false})
                              : Table({"NAME"});
  Json json;
  json.beginArray();
  const std::string path = client::datasetPath(a.path);
  Status s = listDir(**cluster, *ref, path, a, table, json);
  if (s.code() == StatusCode::kFailedPrecondition && !path.empty()) {
    // Not a directory: a file or a symlink is listed as itself, as ls(1)
    // does (asked only then, so listing a directory costs no extra call).
    meta::StatRequestT st;
    st.dataset = ref->dataset;
    st.version = ref->version;
    st.path = path;
    auto entry = (*cluster)->meta<meta::StatRequest, meta::StatResponse>(meta::MetaMethod::Stat, st, "Stat");
    if (entry.isOk() && (*entry)->entry->type != meta::EntryType::Directory) {
      addListing(*(*entry)->entry, path, path, a, table, json);
      s = Status::ok();
    }
  }
  if (!s.isOk()) return reportError(s);
  json.endArray();
  if (ctx.json) {
    std::printf("%s\n", json.str().c_str());
  } else {
    std::string out = table.render();
    // The one-column form needs no header.
    if (!a.long_format) out = out.substr(out.find('\n') + 1);
    std::fputs(out.c_str(), stdout);
  }
  return kExitOk;
}

int statCmd(Context& ctx, const std::string& ref_text, const std::string& path) {
  auto ref = parseVersionRef(ref_text);
  if (!ref.isOk()) return reportError(ref.status());
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  meta::StatRequestT req;
  req.dataset = ref->dataset;
  req.version = ref->version;
  req.path = client::datasetPath(path);
  auto resp = (*cluster)->meta<meta::StatRequest, meta::StatResponse>(meta::MetaMethod::Stat, req,
                                                                      "Stat");
  if (!resp.isOk()) return reportError(resp.status());
  const auto& e = *(*resp)->entry;
  if (ctx.json) {
    Json j;
    j.beginObject()
        .field("path", req.path)
        .field("type", typeName(e.type))
        .field("symlink_target", e.symlink_target)
        .field("size", e.size)
        .field("mode", e.mode)
        .field("mtime_ns", e.mtime_ns)
        .field("records", e.extent_count)
        .endObject();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  std::printf("  path  %s\n  type  %s\n  size  %s (%s)\n  mode  %s\n  mtime %s.%09lld UTC\n"
              "  records %u\n",
              req.path.empty() ? "/" : req.path.c_str(),
              (typeName(e.type) + (e.type == meta::EntryType::Symlink ? " -> " + e.symlink_target : "")).c_str(),
              ProgressMeter::formatCount(e.size).c_str(), ProgressMeter::formatBytes(e.size).c_str(),
              formatMode(e.mode).c_str(), formatTimeMs(e.mtime_ns / 1'000'000).c_str(),
              static_cast<long long>(e.mtime_ns % 1'000'000'000), e.extent_count);
  return kExitOk;
}

int cat(Context& ctx, const std::string& ref_text, const std::string& path) {
  auto ref = parseVersionRef(ref_text);
  if (!ref.isOk()) return reportError(ref.status());
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  auto reader = client::DatasetReader::open(**cluster, ref->dataset, ref->version);
  if (!reader.isOk()) return reportError(reader.status());
  auto file = (*reader)->stat(client::datasetPath(path));
  if (!file.isOk()) return reportError(file.status());
  if (file->type == client::FileType::kSymlink) {
    return reportError(invalidArgument("'" + file->path + "' is a symlink to '" +
                                       file->symlink_target + "': cat its target instead"));
  }
  if (file->type == client::FileType::kDirectory) {
    return reportError(invalidArgument("'" + (file->path.empty() ? "/" : file->path) +
                                       "' is a directory: use 'sluice ls'"));
  }
  std::vector<uint8_t> buf(8u << 20);
  for (uint64_t off = 0; off < file->size;) {
    auto n = (*reader)->read(*file, off, buf);
    if (!n.isOk()) return reportError(n.status());
    if (*n == 0) break;
    if (std::fwrite(buf.data(), 1, *n, stdout) != *n) {
      return reportError(errnoStatus(errno, "writing '" + file->path + "' to standard output"));
    }
    off += *n;
  }
  // The last bytes leave the buffer here: a full disk or a closed output
  // shows only now, and must not end in exit 0 with the file cut short.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    return reportError(errnoStatus(errno, "writing '" + file->path + "' to standard output"));
  }
  return kExitOk;
}

// Both timestamps set to the uploaded mtime, for futimens/utimensat.
std::array<struct timespec, 2> atimeAndMtime(int64_t mtime_ns) {
  struct timespec t;
  t.tv_sec = mtime_ns / 1'000'000'000;
  t.tv_nsec = mtime_ns % 1'000'000'000;
  return {t, t};
}

// Where writeLocal puts a file's bytes before renaming it into `target`:
// beside it, named after it so a re-run truncates the same file. A name near
// the 255-byte limit leaves no room for the suffix, so it gets a short name
// derived from its own.
fs::path tempPathFor(const fs::path& target) {
  constexpr size_t kNameMax = 255;
  const std::string name = target.filename().string();
  const std::string suffix = ".sluice-part";
  if (name.size() + suffix.size() <= kNameMax) return fs::path(target.string() + suffix);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(name.data(), name.size())));
  return target.parent_path() / (".long-name-" + std::string(hex) + suffix);
}

// Writes one file atomically under dest: temp file, then rename; mode and
// mtime as uploaded.
Status writeLocal(client::DatasetReader& reader, const client::FileInfo& file,
                  const fs::path& target, ProgressMeter* progress, bool replace_symlink) {
  // The file goes in by rename, which would replace whatever has the name:
  // a device, a FIFO or a socket (as root, `get ... /dev/null` would have
  // replaced /dev/null) is refused; so is a symlink named as the target.
  struct stat existing {};
  if (::lstat(target.c_str(), &existing) == 0 && !S_ISREG(existing.st_mode) &&
      !(S_ISLNK(existing.st_mode) && replace_symlink)) {
    const char* what = S_ISDIR(existing.st_mode)   ? "a directory"
                       : S_ISLNK(existing.st_mode) ? "a symlink"
                       : S_ISFIFO(existing.st_mode) ? "a FIFO"
                       : S_ISSOCK(existing.st_mode) ? "a socket"
                                                    : "a device";
    return invalidArgument("'" + target.string() + "' exists and is " + what + ", not a regular file: get " +
                           "writes a file there by replacing it, so give a new path (or use 'sluice cat' to " +
                           "write into it)");
  }
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) return ioError("creating '" + target.parent_path().string() + "': " + ec.message());
  const std::string tmp = tempPathFor(target).string();
  PartFile part(tmp);  // a stop signal's handler deletes it until it is renamed or removed
  int fd = part.create(O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errnoStatus(errno, "creating '" + tmp + "'");
  std::vector<uint8_t> buf(std::min<uint64_t>(file.size, 8u << 20));
  Status status;
  for (uint64_t off = 0; off < file.size && status.isOk();) {
    auto n = reader.read(file, off, buf);
    if (!n.isOk()) {
      status = n.status().withContext("'" + file.path + "'");
      break;
    }
    if (*n == 0) {
      status = ioError("'" + file.path + "': ended early at byte " + std::to_string(off));
      break;
    }
    size_t done = 0;
    while (done < *n) {
      ssize_t w = ::write(fd, buf.data() + done, *n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        status = errnoStatus(errno, "writing '" + tmp + "'");
        break;
      }
      done += static_cast<size_t>(w);
    }
    off += *n;
    if (progress) progress->add(0, *n);
  }
  if (status.isOk()) {
    fchmod(fd, file.mode & 07777);
    auto times = atimeAndMtime(file.mtime_ns);
    futimens(fd, times.data());
  }
  ::close(fd);
  if (status.isOk() && ::rename(tmp.c_str(), target.c_str()) != 0) {
    status = errnoStatus(errno, "renaming into '" + target.string() + "'");
  }
  if (!status.isOk()) ::unlink(tmp.c_str());
  if (status.isOk() && progress) progress->add(1, 0);
  return status;
}

int get(Context& ctx, const std::string& ref_text, const std::string& path_arg,
        const std::string& dest) {
  auto ref = parseVersionRef(ref_text);
  if (!ref.isOk()) return reportError(ref.status());
  auto cluster = ctx.cluster();
  if (!cluster.isOk()) return reportError(cluster.status());
  auto reader = client::DatasetReader::open(**cluster, ref->dataset, ref->version);
  if (!reader.isOk()) return reportError(reader.status());
  std::string prefix = client::datasetPath(path_arg);

  // A single file: DEST is the file, or a directory to put it in.
  if (!prefix.empty()) {
    meta::StatRequestT sreq;
    sreq.dataset = ref->dataset;
    sreq.version = "v" + std::to_string((*reader)->version());
    sreq.path = prefix;
    auto st = (*cluster)->meta<meta::StatRequest, meta::StatResponse>(meta::MetaMethod::Stat, sreq, "Stat");
    if (!st.isOk()) return reportError(st.status());
    if ((*st)->entry->type != meta::EntryType::Directory) {
      auto file = (*reader)->stat(prefix);
      if (!file.isOk()) return reportError(file.status());
      // DEST names a directory if it is one, or ends in '/' (made if missing).
      const bool into_dir = fs::is_directory(dest) || (!dest.empty() && dest.back() == '/');
      fs::path target = into_dir ? fs::path(dest) / fs::path(prefix).filename() : fs::path(dest);
      Status s = writeLocal(**reader, *file, target, nullptr, /*replace_symlink=*/false);
      if (!s.isOk()) return reportError(s);
      if (!ctx.json) std::printf("wrote %s (%s)\n", target.c_str(), ProgressMeter::formatBytes(file->size).c_str());
      return kExitOk;
    }
  }

  // A directory (or the whole version): every entry under it, below DEST.
  struct Special {
    std::string rel;
    meta::EntryType type;
    uint32_t mode;
    int64_t mtime_ns;
    std::string target;
  };
  std::vector<std::string> paths;
  std::vector<Special> dirs, links;
  uint64_t total = 0;
  std::string cursor;
  do {
    meta::ListFilesRequestT req;
    req.dataset = ref->dataset;
    req.version = "v" + std::to_string((*reader)->version());
    req.cursor = cursor;
    auto resp = (*cluster)->meta<meta::ListFilesRequest, meta::ListFilesResponse>(
        meta::MetaMethod::ListFiles, req, "ListFiles");
    if (!resp.isOk()) return reportError(resp.status());
    for (const auto& f : (*resp)->files) {
      Status s = checkServerPath(f->path);
      if (!s.isOk()) return reportError(s);
      if (!prefix.empty() && f->path.compare(0, prefix.size() + 1, prefix + "/") != 0) continue;
      std::string rel = prefix.empty() ? f->path : f->path.substr(prefix.size() + 1);
      if (f->type == meta::EntryType::Directory) {
        dirs.push_back({rel, f->type, f->mode, f->mtime_ns, ""});
      } else if (f->type == meta::EntryType::Symlink) {
        links.push_back({rel, f->type, f->mode, f->mtime_ns, f->symlink_target});
      } else {
        paths.push_back(f->path);
        total += f->size;
      }
    }
    cursor = (*resp)->next_cursor;
  } while (!cursor.empty());

  std::error_code ec;
  fs::create_directories(dest, ec);
  if (ec) return reportError(ioError("creating '" + dest + "': " + ec.message()));
  for (const auto& d : dirs) {
    fs::create_directories(fs::path(dest) / d.rel, ec);
    if (ec) return reportError(ioError("creating '" + (fs::path(dest) / d.rel).string() + "': " + ec.message()));
  }
  std::optional<ProgressMeter> progress;
  if (!ctx.quiet && !ctx.json) progress.emplace("get", paths.size(), total);
  constexpr size_t kBatch = 1024;
  constexpr size_t kGetThreads = 16;
  Status status;
  for (size_t start = 0; start < paths.size() && status.isOk(); start += kBatch) {
    std::vector<std::string> batch(paths.begin() + static_cast<ptrdiff_t>(start),
                                   paths.begin() + static_cast<ptrdiff_t>(std::min(paths.size(), start + kBatch)));
    auto files = (*reader)->statMany(batch);
    if (!files.isOk()) return reportError(files.status());
    // Small files cost one record each: many in flight hide the round trips.
    status = client::parallelFor(files->size(), kGetThreads, [&](size_t i) {
      const auto& f = (*files)[i];
      std::string rel = prefix.empty() ? f.path : f.path.substr(prefix.size() + 1);
      // A symlink where the version has a file is replaced, as a mirror does.
      return writeLocal(**reader, f, fs::path(dest) / rel, progress ? &*progress : nullptr, /*replace_symlink=*/true);
    });
  }
  // Symlinks last, so no file above was written through a link this command
  // made; their targets are restored verbatim, as uploaded.
  for (const auto& l : links) {
    if (!status.isOk()) break;
    fs::path at = fs::path(dest) / l.rel;
    fs::create_directories(at.parent_path(), ec);
    fs::remove(at, ec);
    if (::symlink(l.target.c_str(), at.c_str()) != 0) {
      status = errnoStatus(errno, "creating symlink '" + at.string() + "'");
      break;
    }
    auto times = atimeAndMtime(l.mtime_ns);
    utimensat(AT_FDCWD, at.c_str(), times.data(), AT_SYMLINK_NOFOLLOW);
  }
  // Directory modes and times last of all, deepest first: writing into a
  // directory changes its mtime.
  for (auto it = dirs.rbegin(); it != dirs.rend() && status.isOk(); ++it) {
    fs::path at = fs::path(dest) / it->rel;
    ::chmod(at.c_str(), it->mode & 07777);
    auto times = atimeAndMtime(it->mtime_ns);
    utimensat(AT_FDCWD, at.c_str(), times.data(), 0);
  }
  if (!status.isOk()) return reportError(status);
  if (progress) progress->finish();
  if (ctx.json) {
    Json j;
    j.beginObject().field("files", uint64_t{paths.size()}).field("bytes", total).field("dest", dest).endObject();
    std::printf("%s\n", j.str().c_str());
  }
  return kExitOk;
}

}  // namespace

void addReadCommands(CLI::App& app, Context& ctx, Action& action) {
  auto la = std::make_shared<LsArgs>();
  auto* l = app.add_subcommand("ls", "list a directory of a version");
  l->add_option("version", la->ref, "DATASET[@VERSION] (default: latest)")->required();
  l->add_option("path", la->path, "directory inside the version (default: the root)");
  l->add_flag("-l", la->long_format, "mode, size and time of each entry");
  l->add_flag("-R", la->recursive, "list subdirectories too");
  l->callback([&ctx, &action, la] { action = [&ctx, la] { return ls(ctx, *la); }; });

  auto ref = std::make_shared<std::string>();
  auto path = std::make_shared<std::string>();
  auto* s = app.add_subcommand("stat", "show one file or directory of a version");
  s->add_option("version", *ref, "DATASET[@VERSION]")->required();
  s->add_option("path", *path, "path inside the version")->required();
  s->callback([&ctx, &action, ref, path] { action = [&ctx, ref, path] { return statCmd(ctx, *ref, *path); }; });

  auto* c = app.add_subcommand("cat", "write a file of a version to stdout");
  c->add_option("version", *ref, "DATASET[@VERSION]")->required();
  c->add_option("path", *path, "file inside the version")->required();
  c->callback([&ctx, &action, ref, path] { action = [&ctx, ref, path] { return cat(ctx, *ref, *path); }; });

  auto args = std::make_shared<std::vector<std::string>>();
  auto* g = app.add_subcommand("get", "download a version, a directory or a file: get DATASET@V [PATH] DEST");
  g->add_option("args", *args, "DATASET[@VERSION] [PATH] DEST")->required()->expected(2, 3);
  g->callback([&ctx, &action, args] {
    action = [&ctx, args] {
      const auto& v = *args;
      return v.size() == 2 ? get(ctx, v[0], "", v[1]) : get(ctx, v[0], v[1], v[2]);
    };
  });
}

}  // namespace sluice::cli
