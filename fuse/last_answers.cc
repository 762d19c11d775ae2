#include "fuse/last_answers.h"

#include <spdlog/spdlog.h>

namespace sluice::fuse {
namespace {

int64_t steadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void LastAnswers::keepName(const Node& parent, const std::string& name, const Node& answer) {
  std::lock_guard lock(mu_);
  if (names_.size() >= kMaxNames) names_.clear();
  names_[{InodeTable::identityOf(parent), name}] = answer;
}

std::optional<Node> LastAnswers::name(const Node& parent, const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = names_.find({InodeTable::identityOf(parent), name});
  if (it != names_.end()) return it->second;
  // A name listed but never looked up: `ls` then `cat` across an outage.
  auto listed = listings_.find(InodeTable::identityOf(parent));
  if (listed == listings_.end()) return std::nullopt;
  for (const DirItem& item : listed->second) {
    if (item.name == name) return item.node;
  }
  return std::nullopt;
}

void LastAnswers::keepListing(const Node& dir, const std::vector<DirItem>& items) {
  std::lock_guard lock(mu_);
  if (listings_.size() >= kMaxListings) listings_.clear();
  listings_[InodeTable::identityOf(dir)] = items;
}

std::optional<std::vector<DirItem>> LastAnswers::listing(const Node& dir) const {
  std::lock_guard lock(mu_);
  auto it = listings_.find(InodeTable::identityOf(dir));
  if (it == listings_.end()) return std::nullopt;
  return it->second;
}

void LastAnswers::metaAnswered() {
  // The common case, meta up and no outage logged, costs one load.
  if (!in_outage_.load(std::memory_order_relaxed)) return;
  if (in_outage_.exchange(false)) {
    spdlog::info("the metadata server answers again; names and listings come from it again");
  }
}

void LastAnswers::metaUnreachable(const Status& failure) {
  last_failure_ns_.store(steadyNowNs(), std::memory_order_relaxed);
  if (!in_outage_.exchange(true)) {
    spdlog::warn(
        "the metadata server is unreachable ({}); until it answers again, names and listings "
        "this mount has seen are served from its last answers and versions' files from the "
        "storage nodes; names it never saw fail (EIO)",
        failure.toString());
  }
}

bool LastAnswers::metaJustFailed() const {
  if (!in_outage_.load(std::memory_order_relaxed)) return false;
  const int64_t since = steadyNowNs() - last_failure_ns_.load(std::memory_order_relaxed);
  return since < std::chrono::nanoseconds(kRetryAfter).count();
}

}  // namespace sluice::fuse
