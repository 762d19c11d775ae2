// sluice-fuse: mounts a Sluice cluster read-only.
//
//   sluice-fuse /mnt/sluice                          # cluster from $SLUICE_CLUSTER, $SLUICE_META or the dev cluster
//   sluice-fuse /etc/sluice/client.toml /mnt/sluice -o cache_dir=/nvme/sluice,cache_size=200G
//   /etc/fstab:  /etc/sluice/client.toml  /mnt/sluice  fuse.sluice  ro,_netdev,allow_other  0 0
//
// SOURCE is a client config file, host:port of sluice-meta, or "sluice"
// (resolve as the CLI does). Options come as flags (--cache_dir D) or as
// mount options (-o cache_dir=D), which is how mount(8) passes them.
//
// Without -f it returns once the mount is serving (exit 0), or prints why it
// could not mount (exit 1; 2 for bad arguments), and keeps serving in the
// background until unmounted (`sluice umount`, `fusermount3 -u`).
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <set>
#include <thread>

#include "client/cluster.h"
#include "client/cluster_config.h"
#include "common/core/config.h"
#include "common/core/logging.h"
#include "common/core/metrics_server.h"
#include "fuse/fuse_ops.h"
#include "tools/mounts.h"

namespace sluice::fuse {
namespace {

struct MountOptions {
  std::string cluster;
  std::string cache_dir;
  uint64_t cache_size = 0;
  uint64_t memory_cache = 0;
  uint64_t readahead = 0;
  std::chrono::microseconds timeout{};
  bool foreground = false;
  bool allow_other = false;
  int64_t threads = 0;
  std::string metrics_listen;
  LogOptions log;
};

void declare(ConfigSchema& s, MountOptions& o) {
  s.addString("cluster", &o.cluster, "", "client config file, or host:port of sluice-meta (empty: $SLUICE_CLUSTER, $SLUICE_META, the dev cluster)")
      .addString("cache_dir", &o.cache_dir, "", "node-local disk cache directory, shared with the prefetch library (empty: none)")
      .addSize("cache_size", &o.cache_size, 10ull << 30, "bytes the disk cache may hold")
      .addSize("memory_cache", &o.memory_cache, 256ull << 20, "bytes of records kept in memory")
      .addSize("readahead", &o.readahead, 32ull << 20, "bytes fetched ahead of a sequential reader (0: off)")
      .addDuration("timeout", &o.timeout, std::chrono::seconds(5), "how long one storage node may take before a replica is asked (then EIO)")
      .addBool("foreground", &o.foreground, false, "stay in the foreground (-f)")
      .addBool("allow_other", &o.allow_other, false, "let users other than the mounter read the mount")
      .addInt("threads", &o.threads, 16, "FUSE worker threads", 1, 256)
      .addString("metrics.listen", &o.metrics_listen, "", "host:port of the Prometheus /metrics endpoint (empty: off)");
  addLogOptions(s, &o.log);
  s.setDefaultConfigFile("/etc/sluice/fuse.toml");
}

// mount(8) options that mean nothing to a read-only network file system.
const std::set<std::string> kIgnoredMountOptions = {
    "ro", "rw", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "auto", "noauto",
    "user", "nouser", "users", "_netdev", "nofail", "defaults", "atime", "noatime",
    "relatime", "async", "sync"};

struct Args {
  std::string source;
  std::string mountpoint;
  std::vector<std::string> flags;  // for the schema
};

// Splits argv into SOURCE/MOUNTPOINT, -o options (turned into flags) and flags.
Result<Args> splitArgs(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-f") {
      a.flags.push_back("--foreground");
    } else if (arg == "-o" || (arg.rfind("-o", 0) == 0 && arg.size() > 2 && arg[2] != '-')) {
      std::string opts = arg == "-o" ? (i + 1 < argc ? argv[++i] : "") : arg.substr(2);
      if (opts.empty()) return invalidArgument("-o needs a list of options");
      size_t start = 0;
      while (start <= opts.size()) {
        size_t comma = opts.find(',', start);
        std::string opt = opts.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? opts.size() + 1 : comma + 1;
        if (opt.empty() || kIgnoredMountOptions.count(opt) != 0 || opt.rfind("x-", 0) == 0) continue;
        size_t eq = opt.find('=');
        std::string key = opt.substr(0, eq);
        std::string flag = "--" + key;
        if (eq != std::string::npos) flag += "=" + opt.substr(eq + 1);
        a.flags.push_back(flag);
      }
    } else if (arg.rfind("-", 0) == 0) {
      a.flags.push_back(arg);
      // "--key value": keep the value with its flag.
      if (arg.rfind("--", 0) == 0 && arg.find('=') == std::string::npos && i + 1 < argc &&
          argv[i + 1][0] != '-' && arg != "--foreground" && arg != "--allow_other" &&
          arg != "--help" && arg != "--log.stderr") {
        a.flags.push_back(argv[++i]);
      }
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() == 1) {
    a.mountpoint = positional[0];
  } else if (positional.size() == 2) {
    a.source = positional[0];
    a.mountpoint = positional[1];
  } else if (!positional.empty()) {
    return invalidArgument("expected [SOURCE] MOUNTPOINT, got " + std::to_string(positional.size()) +
                           " arguments");
  }
  return a;
}

Result<client::ClusterConfig> clusterConfig(const std::string& source, const std::string& flag,
                                            std::chrono::microseconds timeout) {
  std::string where = !flag.empty() ? flag : (source == "sluice" ? "" : source);
  auto config = [&]() -> Result<client::ClusterConfig> {
    if (where.empty() || std::filesystem::exists(where) || where.find(':') == std::string::npos) {
      return client::resolveClusterConfig(where);
    }
    auto hp = parseHostPort(where);
    if (!hp.isOk()) return hp.status().withContext("cluster " + where);
    client::ClusterConfig c;
    c.meta = *hp;
    c.source = where;
    return c;
  }();
  if (config.isOk()) config->timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  return config;
}

// The kernel reads ahead of a FUSE file no further than the mount's
// backing-device window, which starts at 128 KiB whatever the file system
// asks for; that also caps each read request at 128 KiB. Raising it lets
// sequential readers get 1 MiB requests, several in flight. Found through
// mountinfo (major:minor), since stat() on the mount would wait for the
// loop that has not started yet.
void setKernelReadahead(const std::string& mountpoint, uint64_t bytes) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mp;
    fields >> id >> parent >> dev >> root >> mp;
    if (mp != mountpoint || line.find(" - fuse.sluice ") == std::string::npos) continue;
    std::string path = "/sys/class/bdi/" + dev + "/read_ahead_kb";
    std::ofstream out(path);
    out << std::max<uint64_t>(bytes >> 10, 128) << "\n";
    out.flush();
    if (!out) spdlog::warn("cannot raise the kernel readahead ({}); reads stay at 128 KiB", path);
    return;
  }
}

// Two mounts of one directory started at once would both pass the CLI's
// "already mounted" check and stack, the second hiding the first. So the
// daemon locks the directory (held until it exits) and checks under the
// lock: a rival that opens the path after the mount reaches the mount's root
// instead, gets that lock, and then sees the mount.
Result<int> claimMountPoint(const std::string& mountpoint) {
  int fd = ::open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errnoStatus(errno, "opening mount point " + mountpoint);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(fd);
    if (e != EWOULDBLOCK) return errnoStatus(e, "locking mount point " + mountpoint);
    return Status(StatusCode::kAlreadyExists,
                  "another sluice-fuse is mounting " + mountpoint + " right now; wait for it");
  }
  if (Status s = tools::checkNotSluiceMount(mountpoint); !s.isOk()) {
    ::close(fd);
    return s;
  }
  return fd;
}

// Tells the waiting parent how the start went; closes the pipe.
void report(int fd, const std::string& message) {
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, message.data(), message.size());
  (void)ignored;
  ::close(fd);
}

int run(int argc, char** argv) {
  auto args = splitArgs(argc, argv);
  if (!args.isOk()) {
    std::fprintf(stderr, "sluice-fuse: %s\n", args.status().message().c_str());
    return 2;
  }
  MountOptions o;
  ConfigSchema schema("sluice-fuse", "Mount a Sluice cluster read-only: sluice-fuse [SOURCE] MOUNTPOINT [-o opts] [flags]");
  declare(schema, o);
  if (Status s = schema.parseArgs(args->flags); !s.isOk()) {
    std::fprintf(stderr, "sluice-fuse: %s\n", s.toString().c_str());
    return 2;
  }
  if (schema.helpRequested()) {
    std::printf("%s", schema.helpText().c_str());
    return 0;
  }
  if (args->mountpoint.empty()) {
    std::fprintf(stderr, "sluice-fuse: give the mount point: sluice-fuse [SOURCE] MOUNTPOINT\n");
    return 2;
  }
  struct stat st {};
  if (::stat(args->mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::fprintf(stderr, "sluice-fuse: mount point %s: %s\n", args->mountpoint.c_str(),
                 ::stat(args->mountpoint.c_str(), &st) != 0 ? std::strerror(errno) : "not a directory");
    return 2;
  }
  const std::string mountpoint = std::filesystem::absolute(args->mountpoint).lexically_normal().string();

  // Fork before any thread exists; the parent waits for the child's word.
  int ready_fd = -1;
  if (!o.foreground) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      std::perror("sluice-fuse: pipe");
      return 1;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("sluice-fuse: fork");
      return 1;
    }
    if (pid > 0) {
      ::close(fds[1]);
      std::string message;
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fds[0], buf, sizeof buf)) > 0) message.append(buf, static_cast<size_t>(n));
      if (message.rfind("OK", 0) == 0) {
        std::printf("%s\n", message.substr(3).c_str());
        return 0;
      }
      if (message.empty()) {
        int status = 0;
        ::waitpid(pid, &status, WNOHANG);
        message = "the mount process exited during start; see its log";
      }
      std::fprintf(stderr, "sluice-fuse: %s\n", message.c_str());
      return 1;
    }
    ::close(fds[0]);
    ready_fd = fds[1];
    ::setsid();
    if (o.log.file.empty()) {
      o.log.file = "/tmp/sluice-fuse-" + std::to_string(::getuid()) + ".log";
    }
    o.log.toStderr = false;
  }
  auto fail = [&](const std::string& what, const Status& s) {
    std::string message = what + ": " + s.toString();
    spdlog::critical("{}", message);
    flushLogs();
    if (ready_fd >= 0) {
      report(ready_fd, message);
    } else {
      std::fprintf(stderr, "sluice-fuse: %s\n", message.c_str());
    }
    return 1;
  };
  if (Status s = initLogging("sluice-fuse", o.log); !s.isOk()) return fail("logging", s);
  spdlog::info("mounting {} with\n{}", mountpoint, schema.effectiveConfig());
  signal(SIGPIPE, SIG_IGN);
  auto claim = claimMountPoint(mountpoint);  // the fd stays open (locked) until exit
  if (!claim.isOk()) return fail("mounting " + mountpoint, claim.status());

  auto config = clusterConfig(args->source, o.cluster, o.timeout);
  if (!config.isOk()) return fail("finding the cluster", config.status());
  auto cluster = client::Cluster::connect(*config);
  if (!cluster.isOk()) return fail("connecting to " + config->source, cluster.status());

  FsOptions fo;
  fo.cache_dir = o.cache_dir;
  fo.cache_bytes = o.cache_size;
  fo.memory_cache_bytes = o.memory_cache;
  fo.readahead_bytes = o.readahead;
  auto fs = SluiceFs::create(**cluster, fo);
  if (!fs.isOk()) return fail("opening the cache", fs.status());

  // The source mountinfo shows carries the daemon's pid: `sluice umount`
  // waits for that process to end (tools/mounts.h).
  std::string fuse_opts = "ro,default_permissions,fsname=sluice:" + std::to_string(::getpid()) +
                          ",subtype=sluice";
  if (o.allow_other) fuse_opts += ",allow_other";
  std::vector<std::string> fargv_s = {"sluice-fuse", "-o", fuse_opts};
  std::vector<char*> fargv;
  for (auto& s : fargv_s) fargv.push_back(s.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(fargv.size()), fargv.data());
  const auto& ops = sluiceOperations();
  fuse_session* se = fuse_session_new(&fargs, &ops, sizeof ops, fs->get());
  if (se == nullptr) return fail("mounting", internalError("fuse_session_new failed (see log)"));
  if (fuse_session_mount(se, mountpoint.c_str()) != 0) {
    fuse_session_destroy(se);
    return fail("mounting " + mountpoint,
                unavailable("the kernel refused the mount (is /dev/fuse there, is it already mounted?)"));
  }
  fuse_set_signal_handlers(se);
  setKernelReadahead(mountpoint, std::max<uint64_t>(o.readahead, 1u << 20));

  MetricsServer metrics;
  if (!o.metrics_listen.empty()) {
    auto hp = parseHostPort(o.metrics_listen);
    if (!hp.isOk() || !metrics.start(*hp).isOk()) {
      fuse_session_unmount(se);
      fuse_session_destroy(se);
      return fail("metrics.listen", hp.isOk() ? unavailable("cannot listen on " + o.metrics_listen) : hp.status());
    }
  }
  spdlog::info("mounted {} from {}", mountpoint, config->source);
  if (ready_fd >= 0) {
    report(ready_fd, "OK mounted " + mountpoint + " (cluster " + config->source + ", pid " +
                         std::to_string(::getpid()) + ", log " + o.log.file + ")");
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      if (null > 2) ::close(null);
    }
  } else {
    std::printf("sluice-fuse: mounted %s (cluster %s)\n", mountpoint.c_str(), config->source.c_str());
    std::fflush(stdout);
  }

  fuse_loop_config* loop = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(loop, static_cast<unsigned>(o.threads));
  fuse_loop_cfg_set_idle_threads(loop, static_cast<unsigned>(std::max<int64_t>(o.threads / 2, 1)));
  fuse_loop_cfg_set_clone_fd(loop, 1);
  int rc = fuse_session_loop_mt(se, loop);
  fuse_loop_cfg_destroy(loop);
  spdlog::info("unmounting {} (loop ended with {})", mountpoint, rc);
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  spdlog::info("statistics at exit:\n{}", (*fs)->statsJson());
  fs->reset();
  flushLogs();
  return rc == 0 ? 0 : 1;
}

}  // namespace
}  // namespace sluice::fuse

int main(int argc, char** argv) { return sluice::fuse::run(argc, argv); }
