// Daemon logging on spdlog.
//
// initLogging() installs the spdlog default logger, so every component just
// calls spdlog::info(...) / SPDLOG_DEBUG(...). Lines look like
//
//   2026-11-28T02:31:07.123456Z [info] sluice-storage[48213] [req 0x2a] put chunk 3f2a…
//
// (UTC time, level, daemon name, thread id, request id when set, message).
// The request id comes from a thread-local set by RequestIdScope, which the
// RPC layer opens around each handler; code below it logs normally and gets
// the tag for free. Cost when no scope is open: one thread-local read per
// line actually emitted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <spdlog/common.h>

#include "common/core/result.h"

namespace sluice {

class ConfigSchema;

struct LogOptions {
  std::string level = "info";  // trace, debug, info, warn, error, off
  std::string file;            // appended to; empty = no file
  bool toStderr = true;
};

// Declares log.level, log.file and log.stderr in a daemon's schema.
void addLogOptions(ConfigSchema& schema, LogOptions* out);

// "warn" -> spdlog::level::warn. Errors list the accepted names.
Result<spdlog::level::level_enum> parseLogLevel(std::string_view text);

// Replaces the default logger with one named `daemon`. Errors: a bad level
// (kInvalidArgument naming log.level), an unopenable file (kIoError naming
// it). Lines at warn and above are flushed at once, the rest every second.
// Thread safety: call at startup, before other threads log.
Status initLogging(std::string_view daemon, const LogOptions& options);

// Flushes the default logger's sinks (before exit, or in tests).
void flushLogs();

// "req 0x2a".
std::string formatRequestId(uint64_t requestId);

// The request id of the enclosing RequestIdScope on this thread; 0 if none.
uint64_t currentRequestId();

// Tags log lines from this thread with a request id for its lifetime; nests
// (restores the outer id on destruction). Not movable: strictly scoped.
class RequestIdScope {
 public:
  explicit RequestIdScope(uint64_t requestId);
  ~RequestIdScope();
  RequestIdScope(const RequestIdScope&) = delete;
  RequestIdScope& operator=(const RequestIdScope&) = delete;

 private:
  uint64_t previous_;
};

}  // namespace sluice
