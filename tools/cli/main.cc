// sluice: the command line for data stewards and admins.
//
//   sluice dev up --nodes 3             a local cluster on loopback
//   sluice dataset create imagenet      then: sluice put ./imagenet imagenet -m "first"
//   sluice versions imagenet            sluice diff imagenet@v1 imagenet@v2
//   sluice status                       the cluster at a glance
//
// Exit codes: see tools/cli/output.h (0 ok, 2 usage, 3 not found, 4 conflict,
// 5 cluster unavailable, 6 data error, 1 anything else).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "tools/cli/commands.h"
#include "tools/cli/output.h"
#include "tools/cli/part_files.h"
#include "tools/process.h"

namespace {

// Ctrl-C (or SIGTERM) ends the command with 128 + the signal, as a shell
// expects, deletes the files a get was writing, and says what an unfinished
// command leaves. Installed over the handlers libfabric's psm provider
// (libinfinipath) puts in place when it loads, which ended the command with
// exit code 1 and no word. Only async-signal-safe calls here.
void onStopSignal(int sig) {
  sluice::cli::removePartFiles();
  static const char kMessage[] =
      "\nsluice: interrupted (an unfinished get keeps the files it finished, complete; an "
      "unfinished put leaves a draft version, see 'sluice versions')\n";
  ssize_t ignored = ::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
  (void)ignored;
  ::_exit(128 + sig);
}

void installStopSignalHandlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = onStopSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old;
    // A signal the caller ignores (nohup, a background job) stays ignored.
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    ::sigaction(sig, &sa, nullptr);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sluice::cli;
  installStopSignalHandlers();
  spdlog::set_level(spdlog::level::warn);  // the library's info logs are for daemons
  CLI::App app{"sluice: versioned datasets for GPU training clusters"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand: `sluice put -q ...`
  Context ctx;
  app.add_option("--cluster", ctx.cluster_file,
                 "client config file (default: $SLUICE_CLUSTER, $SLUICE_META, or the dev cluster)");
  app.add_flag("--json", ctx.json, "print JSON for scripts instead of tables");
  app.add_flag("-q,--quiet", ctx.quiet, "no progress lines");

  Action action;
  addDatasetCommands(app, ctx, action);
  addVersionCommands(app, ctx, action);
  addReadCommands(app, ctx, action);
  addAdminCommands(app, ctx, action);
  addDevCommands(app, ctx, action);
  addMountCommands(app, ctx, action);

  // mount(8) runs the helper of a `fuse.sluice` fstab entry as
  // `sluice SOURCE MOUNTPOINT -o OPTIONS`: hand that to sluice-fuse.
  struct stat st {};
  if (argc >= 3 && argv[1][0] != '-' && ::stat(argv[2], &st) == 0 && S_ISDIR(st.st_mode)) {
    bool subcommand = true;
    try {
      app.get_subcommand(argv[1]);
    } catch (const CLI::OptionNotFound&) {
      subcommand = false;
    }
    if (!subcommand) {
      auto fuse = sluice::tools::findExecutable("sluice-fuse");
      if (!fuse.isOk()) return reportError(fuse.status());
      argv[0] = fuse->data();
      ::execv(fuse->c_str(), argv);
      return reportError(sluice::errnoStatus(errno, "starting " + *fuse));
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (!action) {
    std::fputs(app.help().c_str(), stderr);
    return kExitUsage;
  }
  return action();
}
