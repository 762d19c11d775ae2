// sluice mount | umount
//
// `sluice mount` hands over to sluice-fuse (same flags), which returns once
// the mount serves. `sluice umount` unmounts, also a mount whose daemon died.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tools/cli/commands.h"
#include "tools/cli/output.h"
#include "tools/mounts.h"
#include "tools/process.h"

namespace sluice::cli {
namespace {

struct MountArgs {
  std::string mountpoint;
  std::string cache_dir;
  std::string cache_size;
  std::string memory_cache;
  std::string readahead;
  std::string log_file;
  bool allow_other = false;
  bool foreground = false;
  bool stats = false;
};

int showStats(Context& ctx, const std::string& mountpoint) {
  std::ifstream in(mountpoint + "/.sluice/stats");
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty()) {
    return reportError(notFound(mountpoint + " is not a Sluice mount (no .sluice/stats); mount one with 'sluice mount " + mountpoint + "'"));
  }
  if (ctx.json) {
    std::printf("%s", text.str().c_str());
    return kExitOk;
  }
  // "  \"reads\": 12," -> a two-column table.
  Table table({"statistic", "value"});
  std::string line;
  while (std::getline(text, line)) {
    size_t q1 = line.find('"');
    size_t q2 = line.find('"', q1 + 1);
    size_t colon = line.find(':', q2);
    if (q1 == std::string::npos || q2 == std::string::npos || colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.back() == ',' || value.back() == ' ')) value.pop_back();
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    table.addRow({line.substr(q1 + 1, q2 - q1 - 1), value});
  }
  std::printf("%s", table.render().c_str());
  return kExitOk;
}

// A mount whose daemon died (killed, crashed) stays in the mount table and
// answers ENOTCONN to everything, the stat of its mount point too; only
// unmounting it frees the directory.
Status checkMountPoint(const std::string& mountpoint) {
  struct stat st {};
  if (::stat(mountpoint.c_str(), &st) != 0 && errno == ENOTCONN) {
    return Status(StatusCode::kUnavailable,
                  "the mount at " + mountpoint + " has lost its sluice-fuse daemon (" +
                      std::strerror(ENOTCONN) + "); clean it up with 'sluice umount " + mountpoint +
                      "'");
  }
  if (!S_ISDIR(st.st_mode)) {
    return invalidArgument("mount point " + mountpoint +
                           " is not a directory; create it first (mkdir -p " + mountpoint + ")");
  }
  return Status::ok();
}

int mount(Context& ctx, const MountArgs& a) {
  if (Status s = checkMountPoint(a.mountpoint); !s.isOk()) return reportError(s);
  if (a.stats) return showStats(ctx, a.mountpoint);
  if (Status s = tools::checkNotSluiceMount(a.mountpoint); !s.isOk()) return reportError(s);
  auto fuse = tools::findExecutable("sluice-fuse");
  if (!fuse.isOk()) return reportError(fuse.status());
  std::vector<std::string> args = {*fuse, a.mountpoint};
  auto flag = [&](const char* name, const std::string& value) {
    if (!value.empty()) {
      args.push_back(std::string("--") + name);
      args.push_back(value);
    }
  };
  flag("cluster", ctx.cluster_file);
  flag("cache_dir", a.cache_dir);
  flag("cache_size", a.cache_size);
  flag("memory_cache", a.memory_cache);
  flag("readahead", a.readahead);
  flag("log.file", a.log_file);
  if (a.allow_other) args.push_back("--allow_other");
  if (a.foreground) args.push_back("--foreground");
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  ::execv(argv[0], argv.data());
  return reportError(errnoStatus(errno, "starting " + *fuse));
}

int umount(Context& ctx, const std::string& mountpoint, bool lazy) {
  if (!tools::isSluiceMount(mountpoint)) {
    return reportError(notFound(mountpoint + " is not a Sluice mount (see /proc/self/mounts)"));
  }
  // kTimeout says the mount is gone but its daemon lives on: an error, as a
  // mount of the same directory would still be refused.
  Status s = tools::unmountSluice(mountpoint, lazy);
  if (!s.isOk()) return reportError(s);
  if (ctx.json) {
    Json j;
    j.beginObject().field("unmounted", mountpoint).endObject();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  std::printf("unmounted %s\n", mountpoint.c_str());
  return kExitOk;
}

}  // namespace

void addMountCommands(CLI::App& app, Context& ctx, Action& action) {
  auto a = std::make_shared<MountArgs>();
  auto* mount_cmd = app.add_subcommand("mount", "mount the cluster read-only: /<dataset>/<vN or tag>/<path>");
  mount_cmd->add_option("mountpoint", a->mountpoint, "an existing directory")->required();
  mount_cmd->add_option("--cache-dir", a->cache_dir, "node-local disk cache, shared with the prefetch library");
  mount_cmd->add_option("--cache-size", a->cache_size, "bytes the disk cache may hold (e.g. 200G; default 10G)");
  mount_cmd->add_option("--memory-cache", a->memory_cache, "bytes of records kept in memory (default 256M)");
  mount_cmd->add_option("--readahead", a->readahead, "bytes fetched ahead of sequential readers (default 32M)");
  mount_cmd->add_option("--log-file", a->log_file, "where the mount logs (default /tmp/sluice-fuse-<uid>.log)");
  mount_cmd->add_flag("--allow-other", a->allow_other, "let other users read the mount");
  mount_cmd->add_flag("-f,--foreground", a->foreground, "serve in the foreground until unmounted");
  mount_cmd->add_flag("--stats", a->stats, "print the statistics of an existing mount instead");
  mount_cmd->callback([&ctx, &action, a] { action = [&ctx, a] { return mount(ctx, *a); }; });

  auto umount_args = std::make_shared<std::pair<std::string, bool>>();
  auto* umount_cmd = app.add_subcommand("umount", "unmount a Sluice mount (also one whose daemon died)");
  umount_cmd->add_option("mountpoint", umount_args->first, "the mount point")->required();
  umount_cmd->add_flag("-l,--lazy", umount_args->second, "detach now even if files are open; finish when they close");
  umount_cmd->callback([&ctx, &action, umount_args] {
    action = [&ctx, umount_args] { return umount(ctx, umount_args->first, umount_args->second); };
  });
}

}  // namespace sluice::cli
