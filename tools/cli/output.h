// What the `sluice` CLI prints: tables for people, JSON for scripts, and
// errors that say what went wrong and what to do, with stable exit codes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/core/status.h"

namespace sluice::cli {

// Exit codes, stable for scripts (documented in the README).
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,          // anything not below
  kExitUsage = 2,          // bad command line
  kExitNotFound = 3,       // no such dataset, version, path, node
  kExitConflict = 4,       // already exists, tagged, not empty, conflicting state
  kExitUnavailable = 5,    // cluster unreachable, timed out, not enough nodes
  kExitDataError = 6,      // checksum mismatch or corruption
};

int exitCodeFor(const Status& status);
// Prints "sluice: error: <status>" to stderr and returns its exit code.
int reportError(const Status& status);

// A left-aligned text table; numeric columns can be right-aligned.
class Table {
 public:
  explicit Table(std::vector<std::string> headers, std::vector<bool> right_align = {});
  void addRow(std::vector<std::string> cells);
  std::string render() const;
  bool empty() const { return rows_.empty(); }

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// A minimal JSON writer: objects and arrays built in order, strings escaped.
class Json {
 public:
  Json& beginObject();
  Json& endObject();
  Json& beginArray(const std::string& key = "");
  Json& endArray();
  Json& beginObject(const std::string& key);
  Json& field(const std::string& key, const std::string& value);
  Json& field(const std::string& key, const char* value) { return field(key, std::string(value)); }
  Json& field(const std::string& key, uint64_t value);
  Json& field(const std::string& key, int64_t value);
  Json& field(const std::string& key, uint32_t value) { return field(key, uint64_t{value}); }
  Json& field(const std::string& key, int value) { return field(key, int64_t{value}); }
  Json& field(const std::string& key, double value);
  Json& field(const std::string& key, bool value);
  Json& value(const std::string& v);
  std::string str() const { return out_; }

 private:
  void comma();
  void key(const std::string& k);
  std::string out_;
  std::vector<bool> first_{true};
};

std::string jsonEscape(const std::string& s);
// "2026-11-28 02:18:26" (UTC) from milliseconds since the epoch; "-" for 0.
std::string formatTimeMs(int64_t ms);
// "0644"
std::string formatMode(uint32_t mode);

}  // namespace sluice::cli
