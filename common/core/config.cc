#include "common/core/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <map>
#include <sstream>
#include <variant>

#include <CLI/CLI.hpp>
#include <toml.hpp>

#include "common/core/units.h"

namespace sluice {
namespace {

// Alternatives are in OptionType order so value.index() == type.
using StringList = std::vector<std::string>;
using Value =
    std::variant<std::string, int64_t, bool, uint64_t, std::chrono::microseconds, HostPort, StringList>;
using Output = std::variant<std::string*, int64_t*, bool*, uint64_t*, std::chrono::microseconds*,
                            HostPort*, StringList*>;

enum class Source { kDefault, kFile, kFlag };

struct OptionDecl {
  std::string name;
  OptionType type;
  std::string help;
  Output out;
  Value def;
  int64_t min = 0;
  int64_t max = 0;
  // State of the current parse.
  Value value;
  Source source = Source::kDefault;
  std::string flagText;
  StringList flagList;  // kStringList only
  CLI::Option* flag = nullptr;
};

bool validName(const std::string& name) {
  int dots = 0;
  bool segmentStart = true;
  for (char c : name) {
    if (c == '.') {
      if (segmentStart) return false;
      ++dots;
      segmentStart = true;
      continue;
    }
    bool lower = c >= 'a' && c <= 'z';
    bool digitOrUnderscore = (c >= '0' && c <= '9') || c == '_';
    if (segmentStart ? !lower : !(lower || digitOrUnderscore)) return false;
    segmentStart = false;
  }
  return !segmentStart && dots <= 1;
}

std::string dashed(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" for the closest candidate, or "" if none is close.
std::string suggestion(std::string_view wrong, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t bestDistance = std::max<size_t>(2, wrong.size() / 4) + 1;
  for (const std::string& c : candidates) {
    size_t d = editDistance(wrong, c);
    if (d < bestDistance) {
      bestDistance = d;
      best = &c;
    }
  }
  return best ? " (did you mean '" + *best + "'?)" : "";
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Human form of a value, as a flag would take it.
std::string formatValue(const Value& v) {
  switch (static_cast<OptionType>(v.index())) {
    case OptionType::kString:
      return std::get<std::string>(v);
    case OptionType::kInt:
      return std::to_string(std::get<int64_t>(v));
    case OptionType::kBool:
      return std::get<bool>(v) ? "true" : "false";
    case OptionType::kSize:
      return formatSize(std::get<uint64_t>(v));
    case OptionType::kDuration:
      return formatDuration(std::get<std::chrono::microseconds>(v));
    case OptionType::kHostPort:
      return std::get<HostPort>(v).toString();
    case OptionType::kStringList: {
      std::string out;
      for (const std::string& item : std::get<StringList>(v)) out += (out.empty() ? "" : ",") + item;
      return out;
    }
  }
  return "";
}

std::string formatToml(const Value& v) {
  auto type = static_cast<OptionType>(v.index());
  if (type == OptionType::kInt || type == OptionType::kBool) return formatValue(v);
  if (type == OptionType::kStringList) {
    std::string out;
    for (const std::string& item : std::get<StringList>(v)) {
      out += (out.empty() ? "" : ", ") + quoted(item);
    }
    return "[" + out + "]";
  }
  return quoted(formatValue(v));
}

const char* typeName(OptionType t) {
  switch (t) {
    case OptionType::kString:
      return "TEXT";
    case OptionType::kInt:
      return "INT";
    case OptionType::kBool:
      return "BOOL";
    case OptionType::kSize:
      return "SIZE";
    case OptionType::kDuration:
      return "DURATION";
    case OptionType::kHostPort:
      return "HOST:PORT";
    case OptionType::kStringList:
      return "TEXT,...";
  }
  return "";
}

Status checkRange(const OptionDecl& o, int64_t n) {
  if (n < o.min || n > o.max) {
    return outOfRange(std::to_string(n) + " is outside [" + std::to_string(o.min) + ", " +
                      std::to_string(o.max) + "]");
  }
  return Status();
}

Result<bool> parseBool(const std::string& text) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  return invalidArgument("'" + text + "' is not a bool (true or false)");
}

// Converts flag text to the option's type. Errors name the value only; the
// caller adds the flag.
Result<Value> valueFromText(const OptionDecl& o, const std::string& text) {
  switch (o.type) {
    case OptionType::kString:
      return Value(text);
    case OptionType::kInt: {
      int64_t n = 0;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
        return invalidArgument("'" + text + "' is not an integer");
      }
      SLUICE_RETURN_IF_ERROR(checkRange(o, n));
      return Value(n);
    }
    case OptionType::kBool: {
      SLUICE_ASSIGN_OR_RETURN(bool b, parseBool(text));
      return Value(b);
    }
    case OptionType::kSize: {
      SLUICE_ASSIGN_OR_RETURN(uint64_t n, parseSize(text));
      return Value(n);
    }
    case OptionType::kDuration: {
      SLUICE_ASSIGN_OR_RETURN(std::chrono::microseconds d, parseDuration(text));
      return Value(d);
    }
    case OptionType::kHostPort: {
      SLUICE_ASSIGN_OR_RETURN(HostPort hp, parseHostPort(text));
      return Value(std::move(hp));
    }
    case OptionType::kStringList:
      return Value(StringList{text});
  }
  return internalError("unknown option type");
}

Result<Value> valueFromToml(const OptionDecl& o, const toml::value& v) {
  auto wrongType = [&](const char* want) {
    return invalidArgument(std::string("expected ") + want + ", got a TOML " +
                           toml::stringize(v.type()));
  };
  switch (o.type) {
    case OptionType::kString:
      if (!v.is_string()) return wrongType("a string");
      return Value(v.as_string().str);
    case OptionType::kInt:
      if (!v.is_integer()) return wrongType("an integer");
      SLUICE_RETURN_IF_ERROR(checkRange(o, v.as_integer()));
      return Value(static_cast<int64_t>(v.as_integer()));
    case OptionType::kBool:
      if (!v.is_boolean()) return wrongType("true or false");
      return Value(v.as_boolean());
    case OptionType::kSize:
      if (v.is_integer()) {
        if (v.as_integer() < 0) return invalidArgument("a size cannot be negative");
        return Value(static_cast<uint64_t>(v.as_integer()));
      }
      if (!v.is_string()) return wrongType("a size string like \"100G\"");
      return valueFromText(o, v.as_string().str);
    case OptionType::kDuration:
      if (v.is_integer()) return invalidArgument("a duration needs a unit, like \"500ms\" or \"5s\"");
      if (!v.is_string()) return wrongType("a duration string like \"5s\"");
      return valueFromText(o, v.as_string().str);
    case OptionType::kHostPort:
      if (!v.is_string()) return wrongType("a \"host:port\" string");
      return valueFromText(o, v.as_string().str);
    case OptionType::kStringList: {
      if (!v.is_array()) return wrongType("an array of strings");
      StringList items;
      for (const toml::value& item : v.as_array()) {
        if (!item.is_string()) {
          return invalidArgument("array items must be strings, got a TOML " +
                                 toml::stringize(item.type()));
        }
        items.push_back(item.as_string().str);
      }
      return Value(std::move(items));
    }
  }
  return internalError("unknown option type");
}

template <typename Map>
std::vector<std::string> sortedKeys(const Map& m) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : m) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return keys;
}

}  // namespace

struct ConfigSchema::Impl {
  std::string program;
  std::string description;
  std::string defaultFile;
  std::vector<OptionDecl> options;
  bool helpRequested = false;
  std::string helpText;
  std::string configFile;

  void add(std::string name, OptionType type, std::string help, Output out, Value def,
           int64_t min = 0, int64_t max = 0) {
    OptionDecl o;
    o.name = std::move(name);
    o.type = type;
    o.help = std::move(help);
    o.out = out;
    o.def = std::move(def);
    o.min = min;
    o.max = max;
    options.push_back(std::move(o));
  }

  OptionDecl* find(std::string_view name) {
    for (OptionDecl& o : options) {
      if (o.name == name) return &o;
    }
    return nullptr;
  }

  bool hasSection(std::string_view section) const {
    for (const OptionDecl& o : options) {
      if (o.name.size() > section.size() && o.name.compare(0, section.size(), section) == 0 &&
          o.name[section.size()] == '.') {
        return true;
      }
    }
    return false;
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const OptionDecl& o : options) out.push_back(o.name);
    return out;
  }

  Status checkDeclarations() const {
    for (size_t i = 0; i < options.size(); ++i) {
      const OptionDecl& o = options[i];
      if (!validName(o.name)) {
        return internalError(program + ": option name '" + o.name +
                             "' must be lower_snake_case with at most one '.'");
      }
      if (o.name == "config" || o.name == "help") {
        return internalError(program + ": option name '" + o.name + "' is reserved");
      }
      for (size_t j = 0; j < i; ++j) {
        if (options[j].name == o.name) {
          return internalError(program + ": option '" + o.name + "' declared twice");
        }
      }
      if (o.type == OptionType::kInt) {
        int64_t def = std::get<int64_t>(o.def);
        if (o.min > o.max || def < o.min || def > o.max) {
          return internalError(program + ": option '" + o.name + "' default " +
                               std::to_string(def) + " is outside its range");
        }
      }
    }
    return Status();
  }

  // Builds the flag parser; flag values land in each option's flagText.
  std::unique_ptr<CLI::App> buildApp(std::string* configFlag) {
    auto app = std::make_unique<CLI::App>(description, program);
    app->allow_extras();
    app->set_help_flag("-h,--help", "Print this help message and exit");
    app->add_option("-c,--config", *configFlag, "TOML config file; flags override its values")
        ->type_name("FILE");
    for (OptionDecl& o : options) {
      std::string names = "--" + o.name;
      if (dashed(o.name) != o.name) names += ",--" + dashed(o.name);
      if (o.type == OptionType::kBool) {
        names += ",!--no-" + o.name;
        o.flag = app->add_flag(names, o.flagText, o.help);
      } else if (o.type == OptionType::kStringList) {
        o.flag = app->add_option(names, o.flagList, o.help)
                     ->delimiter(',')
                     ->type_name(typeName(o.type));
      } else {
        o.flag = app->add_option(names, o.flagText, o.help)->type_name(typeName(o.type));
      }
      std::string shown = formatValue(o.def);
      std::string extra = "[default: " + (shown.empty() ? std::string("\"\"") : shown) + "]";
      if (o.type == OptionType::kInt && (o.min != std::numeric_limits<int64_t>::min() ||
                                         o.max != std::numeric_limits<int64_t>::max())) {
        extra += " [range: " + std::to_string(o.min) + ".." + std::to_string(o.max) + "]";
      }
      o.flag->description(o.help + " " + extra);
    }
    app->footer(
        "Every option can also be set in the TOML config file under its name (a dotted "
        "name is a key in a [table]); flags override the file.\n");
    return app;
  }

  Status unknownArgument(const std::vector<std::string>& remaining) {
    for (const std::string& arg : remaining) {
      if (arg.size() < 2 || arg[0] != '-') continue;
      std::string flag = arg.substr(0, arg.find('='));
      std::vector<std::string> candidates = {"--config", "--help"};
      for (const OptionDecl& o : options) candidates.push_back("--" + o.name);
      return invalidArgument(program + ": unknown flag '" + flag + "'" +
                             suggestion(flag, candidates));
    }
    return invalidArgument(program + ": unexpected argument '" + remaining.front() +
                           "' (options are written --name value)");
  }

  Status applyTomlValue(const std::string& path, const std::string& key, const toml::value& v) {
    std::string where = path + ":" + std::to_string(v.location().line());
    OptionDecl* o = find(key);
    if (o == nullptr) {
      return invalidArgument(where + ": unknown key '" + key + "'" + suggestion(key, names()));
    }
    Result<Value> value = valueFromToml(*o, v);
    if (!value.isOk()) return value.status().withContext(where + ": key '" + key + "'");
    o->value = std::move(value).value();
    o->source = Source::kFile;
    return Status();
  }

  Status loadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return errnoStatus(errno, "config file " + path);
    toml::value root;
    try {
      root = toml::parse(in, path);
    } catch (const std::exception& e) {
      return invalidArgument("config file " + path + ": " + e.what());
    }
    if (!root.is_table()) return invalidArgument("config file " + path + ": not a TOML table");
    const toml::table& top = root.as_table();
    for (const std::string& key : sortedKeys(top)) {
      const toml::value& v = top.at(key);
      if (v.is_table() && hasSection(key)) {
        const toml::table& section = v.as_table();
        for (const std::string& inner : sortedKeys(section)) {
          SLUICE_RETURN_IF_ERROR(applyTomlValue(path, key + "." + inner, section.at(inner)));
        }
      } else {
        SLUICE_RETURN_IF_ERROR(applyTomlValue(path, key, v));
      }
    }
    return Status();
  }

  Status applyFlags() {
    for (OptionDecl& o : options) {
      if (o.flag == nullptr || o.flag->count() == 0) continue;
      if (o.type == OptionType::kStringList) {
        o.value = o.flagList;
        o.source = Source::kFlag;
        continue;
      }
      Result<Value> value = valueFromText(o, o.flagText);
      if (!value.isOk()) return value.status().withContext("--" + o.name);
      o.value = std::move(value).value();
      o.source = Source::kFlag;
    }
    return Status();
  }

  void commit() {
    for (OptionDecl& o : options) {
      std::visit(
          [&](auto* out) {
            using T = std::remove_pointer_t<decltype(out)>;
            *out = std::get<T>(o.value);
          },
          o.out);
    }
  }

  Status parse(const std::vector<std::string>& args) {
    SLUICE_RETURN_IF_ERROR(checkDeclarations());
    helpRequested = false;
    configFile.clear();
    for (OptionDecl& o : options) {
      o.value = o.def;
      o.source = Source::kDefault;
      o.flagText.clear();
      o.flagList.clear();
      o.flag = nullptr;
    }
    std::string configFlag;
    std::unique_ptr<CLI::App> app = buildApp(&configFlag);
    helpText = app->help();
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 wants them reversed
    try {
      app->parse(reversed);
    } catch (const CLI::CallForHelp&) {
      helpRequested = true;
      commit();
      return Status();
    } catch (const CLI::ParseError& e) {
      return invalidArgument(program + ": " + e.what());
    } catch (const std::exception& e) {
      return invalidArgument(program + ": " + e.what());
    }
    if (!app->remaining().empty()) return unknownArgument(app->remaining());
    if (!configFlag.empty()) {
      configFile = configFlag;
    } else if (!defaultFile.empty() && std::ifstream(defaultFile).good()) {
      configFile = defaultFile;
    }
    if (!configFile.empty()) SLUICE_RETURN_IF_ERROR(loadFile(configFile));
    SLUICE_RETURN_IF_ERROR(applyFlags());
    commit();
    return Status();
  }
};

ConfigSchema::ConfigSchema(std::string program, std::string description)
    : impl_(std::make_unique<Impl>()) {
  impl_->program = std::move(program);
  impl_->description = std::move(description);
}

ConfigSchema::~ConfigSchema() = default;

ConfigSchema& ConfigSchema::addString(std::string name, std::string* out, std::string def,
                                      std::string help) {
  impl_->add(std::move(name), OptionType::kString, std::move(help), out, std::move(def));
  return *this;
}

ConfigSchema& ConfigSchema::addInt(std::string name, int64_t* out, int64_t def, std::string help,
                                   int64_t min, int64_t max) {
  impl_->add(std::move(name), OptionType::kInt, std::move(help), out, def, min, max);
  return *this;
}

ConfigSchema& ConfigSchema::addBool(std::string name, bool* out, bool def, std::string help) {
  impl_->add(std::move(name), OptionType::kBool, std::move(help), out, def);
  return *this;
}

ConfigSchema& ConfigSchema::addSize(std::string name, uint64_t* out, uint64_t def,
                                    std::string help) {
  impl_->add(std::move(name), OptionType::kSize, std::move(help), out, def);
  return *this;
}

ConfigSchema& ConfigSchema::addDuration(std::string name, std::chrono::microseconds* out,
                                        std::chrono::microseconds def, std::string help) {
  impl_->add(std::move(name), OptionType::kDuration, std::move(help), out, def);
  return *this;
}

ConfigSchema& ConfigSchema::addHostPort(std::string name, HostPort* out, HostPort def,
                                        std::string help) {
  impl_->add(std::move(name), OptionType::kHostPort, std::move(help), out, std::move(def));
  return *this;
}

ConfigSchema& ConfigSchema::addStringList(std::string name, std::vector<std::string>* out,
                                          std::vector<std::string> def, std::string help) {
  impl_->add(std::move(name), OptionType::kStringList, std::move(help), out, std::move(def));
  return *this;
}

ConfigSchema& ConfigSchema::setDefaultConfigFile(std::string path) {
  impl_->defaultFile = std::move(path);
  return *this;
}

Status ConfigSchema::parse(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parseArgs(args);
}

Status ConfigSchema::parseArgs(const std::vector<std::string>& args) {
  try {
    return impl_->parse(args);
  } catch (const std::exception& e) {
    // toml11 and CLI11 throw from places beyond the guarded calls (e.g. value
    // accessors); nothing may escape to the daemon's main.
    return invalidArgument(impl_->program + ": " + e.what());
  }
}

bool ConfigSchema::helpRequested() const { return impl_->helpRequested; }

std::string ConfigSchema::helpText() const {
  if (!impl_->helpText.empty()) return impl_->helpText;
  std::string dummy;
  try {
    return impl_->buildApp(&dummy)->help();
  } catch (const std::exception& e) {
    return impl_->program + ": " + e.what();
  }
}

const std::string& ConfigSchema::configFile() const { return impl_->configFile; }

std::string ConfigSchema::effectiveConfig() const {
  std::map<std::string, const OptionDecl*> sorted;
  for (const OptionDecl& o : impl_->options) sorted[o.name] = &o;
  std::ostringstream out;
  for (const auto& [name, o] : sorted) {
    const char* source = o->source == Source::kFlag   ? "flag"
                         : o->source == Source::kFile ? "file"
                                                      : "default";
    out << name << " = " << formatToml(o->value) << "  # " << source << "\n";
  }
  return out.str();
}

}  // namespace sluice
