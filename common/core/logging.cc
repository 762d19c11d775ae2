#include "common/core/logging.h"

#include <chrono>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/core/config.h"

namespace sluice {
namespace {

thread_local uint64_t tlsRequestId = 0;

// %R: "[req 0x2a] " inside a RequestIdScope, nothing outside.
class RequestIdFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    uint64_t id = tlsRequestId;
    if (id == 0) return;
    fmt::format_to(std::back_inserter(dest), "[req {:#x}] ", id);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<RequestIdFlag>();
  }
};

constexpr const char* kPattern = "%Y-%m-%dT%H:%M:%S.%fZ [%l] %n[%t] %R%v";

}  // namespace

void addLogOptions(ConfigSchema& schema, LogOptions* out) {
  schema.addString("log.level", &out->level, "info", "trace, debug, info, warn, error or off")
      .addString("log.file", &out->file, "", "append log lines to this file (empty: none)")
      .addBool("log.stderr", &out->toStderr, true, "also log to stderr");
}

Result<spdlog::level::level_enum> parseLogLevel(std::string_view text) {
  using spdlog::level::level_enum;
  static constexpr std::pair<std::string_view, level_enum> kLevels[] = {
      {"trace", level_enum::trace}, {"debug", level_enum::debug}, {"info", level_enum::info},
      {"warn", level_enum::warn},   {"error", level_enum::err},   {"off", level_enum::off}};
  for (const auto& [name, level] : kLevels) {
    if (name == text) return level;
  }
  return invalidArgument("'" + std::string(text) +
                         "' is not a log level (trace, debug, info, warn, error, off)");
}

Status initLogging(std::string_view daemon, const LogOptions& options) {
  Result<spdlog::level::level_enum> level = parseLogLevel(options.level);
  if (!level.isOk()) return level.status().withContext("log.level");
  std::vector<spdlog::sink_ptr> sinks;
  try {
    if (options.toStderr) sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    if (!options.file.empty()) {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file, false));
    }
  } catch (const std::exception& e) {
    return ioError("log file " + options.file + ": " + e.what());
  }
  auto logger = std::make_shared<spdlog::logger>(std::string(daemon), sinks.begin(), sinks.end());
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<RequestIdFlag>('R').set_pattern(kPattern);
  logger->set_formatter(std::move(formatter));
  logger->set_level(*level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  spdlog::flush_every(std::chrono::seconds(1));
  return Status();
}

void flushLogs() { spdlog::default_logger()->flush(); }

std::string formatRequestId(uint64_t requestId) { return fmt::format("req {:#x}", requestId); }

uint64_t currentRequestId() { return tlsRequestId; }

RequestIdScope::RequestIdScope(uint64_t requestId) : previous_(tlsRequestId) {
  tlsRequestId = requestId;
}

RequestIdScope::~RequestIdScope() { tlsRequestId = previous_; }

}  // namespace sluice
