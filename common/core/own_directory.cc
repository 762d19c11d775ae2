#include "common/core/own_directory.h"

#include <algorithm>
#include <filesystem>

namespace sluice {

Status checkOwnDirectory(const std::string& dir, std::string_view daemon, std::string_view marker,
                         std::initializer_list<std::string_view> also_ours) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return Status::ok();
  const std::string who(daemon);
  if (!fs::is_directory(dir, ec)) {
    return failedPrecondition(dir + " is not a directory; give " + who + " a directory of its own");
  }
  if (fs::exists(fs::path(dir) / marker, ec)) return Status::ok();
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name == "lost+found" || std::find(also_ours.begin(), also_ours.end(), name) != also_ours.end()) {
      continue;
    }
    return failedPrecondition(dir + " holds '" + name + "' and no " + std::string(marker) +
                              ": it is not " + who + "'s; give " + who +
                              " an empty directory or its own");
  }
  if (ec) return ioError("listing " + dir + ": " + ec.message());
  return Status::ok();
}

}  // namespace sluice
