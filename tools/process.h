// Starting and stopping the daemons this process owns (dev cluster, tests).
//
// Only processes we started are ever signalled, by PID, and only after
// checking that the PID still runs the executable we started (PIDs recycle).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/core/result.h"

namespace sluice::tools {

struct ProcessSpec {
  std::string executable;          // absolute path
  std::vector<std::string> args;   // without argv[0]
  std::string log_path;            // stdout and stderr are appended here
  bool new_session = true;         // detach from the terminal (daemons outlive the CLI)
  // Tests: the kernel kills the process when the spawning thread exits, so a
  // crashed test run never leaves daemons behind. Spawn from a long-lived
  // thread (the test's main thread), since the signal follows the thread.
  bool die_with_parent = false;
};

// Starts the process; returns its PID. stdin is /dev/null.
Result<pid_t> spawnProcess(const ProcessSpec& spec);

// Runs a program to completion with stdin from /dev/null and returns its
// exit code (128 + signal number if killed), with stdout and stderr captured.
struct RunOutput {
  int exit_code = -1;
  std::string out;
  std::string err;
};
Result<RunOutput> runProcess(const std::string& executable, const std::vector<std::string>& args);

// True while our child `pid` has not exited (whatever it runs: a freshly
// forked child runs our own image until it execs).
bool childAlive(pid_t pid);

// True if `pid` is alive and runs `executable` (compared by /proc/<pid>/exe).
bool isRunning(pid_t pid, const std::string& executable);

// SIGTERM, wait up to `grace`, then SIGKILL; waits until the process is gone.
// OK if it was not running. Never signals a PID that runs another program.
Status stopProcess(pid_t pid, const std::string& executable,
                   std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

// Reaps `pid` if it is our child and has exited (no-op otherwise).
void reapIfChild(pid_t pid);

// The directory holding this executable (from /proc/self/exe).
std::string selfDirectory();

// Finds a sibling executable: `name` next to this executable, then in the
// build tree layout (../metadata, ../storage_node, ../fuse, ../tools), then PATH.
Result<std::string> findExecutable(const std::string& name);

}  // namespace sluice::tools
