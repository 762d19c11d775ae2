#include "tools/cli/context.h"

namespace sluice::cli {

Result<client::Cluster*> Context::cluster() {
  if (!cluster_) {
    SLUICE_ASSIGN_OR_RETURN(auto config, client::resolveClusterConfig(cluster_file));
    SLUICE_ASSIGN_OR_RETURN(cluster_, client::Cluster::connect(config));
  }
  return cluster_.get();
}

Result<VersionRef> parseVersionRef(const std::string& text, bool version_required) {
  size_t at = text.find('@');
  VersionRef ref;
  if (at == std::string::npos) {
    if (version_required) {
      return invalidArgument("'" + text + "': name a version as DATASET@VERSION (e.g. " + text +
                             "@v2 or " + text + "@latest)");
    }
    ref.dataset = text;
    ref.version = "latest";
  } else {
    ref.dataset = text.substr(0, at);
    ref.version = text.substr(at + 1);
  }
  if (ref.dataset.empty()) return invalidArgument("'" + text + "': missing dataset name before '@'");
  if (ref.version.empty()) return invalidArgument("'" + text + "': missing version after '@'");
  return ref;
}

}  // namespace sluice::cli
