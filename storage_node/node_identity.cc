#include "storage_node/node_identity.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>

namespace sluice::storage {

Result<std::optional<NodeIdentity>> loadNodeIdentity(const std::string& data_dir) {
  const std::string path = data_dir + "/NODE";
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::optional<NodeIdentity>();
    return errnoStatus(errno, "reading " + path);
  }
  NodeIdentity id;
  bool have_cluster = false, have_node = false;
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 3);
    if (key == "cluster_id") {
      auto h = Hash128::fromHex(value);
      if (!h) return corruption(path + ": cluster_id '" + value + "' is not 32 hex digits");
      id.cluster_id = *h;
      have_cluster = true;
    } else if (key == "node_id") {
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), id.node_id);
      if (ec != std::errc() || p != value.data() + value.size()) {
        return corruption(path + ": node_id '" + value + "' is not a number");
      }
      have_node = true;
    }
  }
  if (!have_cluster || !have_node) {
    return corruption(path + " lacks cluster_id or node_id; restore it or use an empty data dir");
  }
  return std::optional<NodeIdentity>(id);
}

Status saveNodeIdentity(const std::string& data_dir, const NodeIdentity& identity) {
  const std::string tmp = data_dir + "/NODE.tmp";
  const std::string path = data_dir + "/NODE";
  std::ostringstream text;
  text << "cluster_id = " << identity.cluster_id.toHex() << "\n"
       << "node_id = " << identity.node_id << "\n";
  const std::string s = text.str();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errnoStatus(errno, "creating " + tmp);
  bool ok = ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()) && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) return errnoStatus(err, "writing " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errnoStatus(errno, "renaming " + tmp);
  int dfd = ::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return errnoStatus(errno, "opening " + data_dir);
  ok = ::fsync(dfd) == 0;
  err = errno;
  ::close(dfd);
  if (!ok) return errnoStatus(err, "fsync of " + data_dir);
  return Status::ok();
}

Status checkSameCluster(const std::string& data_dir, const NodeIdentity& stored,
                        const Hash128& cluster_id) {
  if (stored.cluster_id.isZero() || stored.cluster_id == cluster_id) return Status::ok();
  return failedPrecondition("data directory " + data_dir + " belongs to cluster " +
                            stored.cluster_id.toHex() + " (node " +
                            std::to_string(stored.node_id) + "), not to cluster " +
                            cluster_id.toHex() +
                            "; start this node with its own cluster's metadata server or give "
                            "it an empty data directory");
}

}  // namespace sluice::storage
