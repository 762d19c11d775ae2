// What every `sluice` command shares: global flags and the (lazily opened)
// connection to the cluster.
#pragma once

#include <memory>
#include <string>

#include "client/cluster.h"
#include "common/core/result.h"

namespace sluice::cli {

struct Context {
  std::string cluster_file;  // --cluster
  bool json = false;         // --json
  bool quiet = false;        // --quiet: no progress lines

  // Connects on first use; errors say how to reach a cluster.
  Result<client::Cluster*> cluster();

 private:
  std::unique_ptr<client::Cluster> cluster_;
};

// "imagenet@v3" -> {"imagenet", "v3"}; "imagenet" -> {"imagenet", "latest"}.
struct VersionRef {
  std::string dataset;
  std::string version;
  std::string str() const { return dataset + "@" + version; }
};
Result<VersionRef> parseVersionRef(const std::string& text, bool version_required = false);

}  // namespace sluice::cli
