// LastAnswers: sluice-meta's last answer for each name and listing of the
// mount's upper levels (datasets in the root; versions and tags in a
// dataset), which are asked of meta again every second or so. While meta
// cannot be reached (a crash, a restart, a cut network) they stand in for
// the answers it cannot give, so jobs keep opening the files of versions the
// mount has already resolved: what lies below a committed version (its
// listings, attributes and extents) never changes and is cached elsewhere.
//
// Answers are kept by what the parent directory is (kind, dataset, dataset
// id), not by its inode number: the kernel forgets inodes it no longer holds
// (memory pressure, an entry it could not revalidate) and the mount then
// gives the same directory a new number, which an answer kept by number
// would miss, exactly when meta is not there to answer again.
//
// It also tracks the outage: a mount standing on old answers says so once
// when meta stops answering and once when it answers again, rather than at
// every lookup of a job's open loop, and for a moment after each failed call
// known names are answered without asking meta again (metaJustFailed).
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/core/status.h"
#include "fuse/inode_table.h"

namespace sluice::fuse {

class LastAnswers {
 public:
  // Meta answered `answer` for `name` in directory `parent`.
  void keepName(const Node& parent, const std::string& name, const Node& answer);
  // The last answer for the name, or else the node its parent's last
  // listing gave it.
  std::optional<Node> name(const Node& parent, const std::string& name) const;

  // Meta listed directory `dir` as `items`.
  void keepListing(const Node& dir, const std::vector<DirItem>& items);
  std::optional<std::vector<DirItem>> listing(const Node& dir) const;

  // Meta answered (anything but "unreachable"): an outage, if one was
  // logged, is over.
  void metaAnswered();
  // Meta could not be reached (`failure`): logs the outage when this is the
  // first failure of it.
  void metaUnreachable(const Status& failure);
  // True while meta failed less than kRetryAfter ago: a lookup of a name
  // with a last answer then takes it without asking meta, so that the
  // threads of a job opening files do not each wait out a failing call
  // (that answer may be as stale as the dataset level's entries are anyway);
  // names without one still ask.
  bool metaJustFailed() const;

  static constexpr std::chrono::milliseconds kRetryAfter{1000};

 private:
  static constexpr size_t kMaxNames = 100000;
  static constexpr size_t kMaxListings = 10000;

  mutable std::mutex mu_;
  // (identity of the parent, name) -> the node meta named.
  std::map<std::pair<std::string, std::string>, Node> names_;        // GUARDED_BY(mu_)
  std::unordered_map<std::string, std::vector<DirItem>> listings_;  // GUARDED_BY(mu_)
  std::atomic<bool> in_outage_{false};
  std::atomic<int64_t> last_failure_ns_{0};  // steady clock
};

}  // namespace sluice::fuse
