// Daemon configuration: one declaration per option gives a TOML key, a
// command-line flag and a --help line.
//
//   StorageOptions o;
//   ConfigSchema schema("sluice-storage", "Sluice storage node");
//   schema.addString("data_dir", &o.dataDir, "/var/lib/sluice", "chunk directory")
//       .addSize("capacity", &o.capacity, 100ull << 30, "bytes this node may use")
//       .addHostPort("metrics.listen", &o.metrics, {"127.0.0.1", 9100}, "/metrics address");
//   if (Status s = schema.parse(argc, argv); !s.isOk()) { print s.toString(); exit 2; }
//   if (schema.helpRequested()) { print schema.helpText(); exit 0; }
//
// Option names are lower_snake_case, optionally dotted into one level of
// TOML tables: "metrics.listen" is `listen` under `[metrics]` in the file and
// `--metrics.listen` on the command line. Underscores may also be written as
// dashes in flags (`--data-dir`). Bool options are flags: `--direct_io`,
// `--direct_io=false`, `--no-direct_io`. Every option takes exactly one
// value except string lists.
//
// Precedence: declared default < config file (`--config FILE`, or the
// default file if one is set and exists) < flag. Values are written to the
// bound outputs only when parse() succeeds, so on error they keep whatever
// they held before.
//
// Thread safety: none; declare and parse on one thread at startup. The bound
// output pointers must outlive parse().
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/core/host_port.h"
#include "common/core/status.h"

namespace sluice {

enum class OptionType { kString, kInt, kBool, kSize, kDuration, kHostPort, kStringList };

class ConfigSchema {
 public:
  // `program` names the daemon in --help and error messages.
  explicit ConfigSchema(std::string program, std::string description = "");
  ~ConfigSchema();
  ConfigSchema(const ConfigSchema&) = delete;
  ConfigSchema& operator=(const ConfigSchema&) = delete;

  // Each add* declares one option. Declaration mistakes (bad name, a name
  // declared twice, a default outside the range) are reported by parse().
  ConfigSchema& addString(std::string name, std::string* out, std::string def, std::string help);
  ConfigSchema& addInt(std::string name, int64_t* out, int64_t def, std::string help,
                       int64_t min = std::numeric_limits<int64_t>::min(),
                       int64_t max = std::numeric_limits<int64_t>::max());
  ConfigSchema& addBool(std::string name, bool* out, bool def, std::string help);
  // Bytes; file and flags accept "64K", "4M", "100G", "2T" or a plain byte count.
  ConfigSchema& addSize(std::string name, uint64_t* out, uint64_t def, std::string help);
  // File and flags accept "250ms", "5s", "2m", "1h", "100us"; a unit is required.
  ConfigSchema& addDuration(std::string name, std::chrono::microseconds* out,
                            std::chrono::microseconds def, std::string help);
  // "host:port" or "[ipv6]:port", validated by parseHostPort.
  ConfigSchema& addHostPort(std::string name, HostPort* out, HostPort def, std::string help);
  // A TOML array of strings; on the command line comma-separated and/or
  // repeated (`--data_dirs /a,/b` or `--data_dirs /a --data_dirs /b`). The flag
  // replaces the file's list, it does not append to it.
  ConfigSchema& addStringList(std::string name, std::vector<std::string>* out,
                              std::vector<std::string> def, std::string help);

  // File read when no --config flag is given; silently skipped if absent.
  ConfigSchema& setDefaultConfigFile(std::string path);

  // Parses flags, then the config file they select, then applies the flags
  // over it. Returns kInvalidArgument naming the key or flag for unknown
  // names and bad values, kNotFound/kIoError for an unreadable --config file.
  // Never throws.
  Status parse(int argc, const char* const* argv);
  // Same, for tests and tools: args exclude the program name.
  Status parseArgs(const std::vector<std::string>& args);

  // True if the last parse() saw -h/--help; outputs then hold the defaults
  // and the caller should print helpText() and exit 0.
  bool helpRequested() const;
  std::string helpText() const;

  // The config file actually read by the last parse(), empty if none.
  const std::string& configFile() const;

  // Every option as TOML-style "name = value  # default|file|flag" lines,
  // sorted by name, for the startup log.
  std::string effectiveConfig() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
