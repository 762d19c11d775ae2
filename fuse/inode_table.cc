#include "fuse/inode_table.h"

namespace sluice::fuse {

InodeTable::InodeTable(struct timespec root_mtime) {
  auto root = std::make_shared<Node>();
  root->kind = NodeKind::kRoot;
  root->attr.st_ino = kRootIno;
  root->attr.st_mode = S_IFDIR | 0555;
  root->attr.st_nlink = 2;
  root->attr.st_mtim = root->attr.st_ctim = root->attr.st_atim = root_mtime;
  // The root is never forgotten: one lookup that no forget can take.
  by_ino_[kRootIno] = Slot{root, 1, identityOf(*root), nullptr};
  by_key_[identityOf(*root)] = kRootIno;
}

std::string InodeTable::identityOf(const Node& node) {
  std::string key(1, static_cast<char>('0' + static_cast<int>(node.kind)));
  key += node.dataset;
  key += '\0';
  key += std::to_string(node.dataset_id);
  key += '\0';
  key += std::to_string(node.version);
  key += '\0';
  key += node.name;
  return key;
}

std::pair<Ino, std::shared_ptr<Node>> InodeTable::acquire(Node node, uint64_t lookups) {
  std::string key = identityOf(node);
  std::lock_guard lock(mu_);
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    Slot& slot = by_ino_.at(it->second);
    slot.lookups += lookups;
    return {it->second, slot.node};
  }
  Ino ino = next_++;
  node.attr.st_ino = ino;
  auto stored = std::make_shared<Node>(std::move(node));
  by_ino_[ino] = Slot{stored, lookups, key, nullptr};
  by_key_[key] = ino;
  return {ino, stored};
}

std::shared_ptr<Node> InodeTable::get(Ino ino) const {
  std::lock_guard lock(mu_);
  auto it = by_ino_.find(ino);
  return it == by_ino_.end() ? nullptr : it->second.node;
}

Ino InodeTable::find(const Node& node) const {
  std::string key = identityOf(node);
  std::lock_guard lock(mu_);
  auto it = by_key_.find(key);
  return it == by_key_.end() ? 0 : it->second;
}

void InodeTable::forget(Ino ino, uint64_t n) {
  if (ino == kRootIno) return;
  std::lock_guard lock(mu_);
  auto it = by_ino_.find(ino);
  if (it == by_ino_.end()) return;
  it->second.lookups = it->second.lookups > n ? it->second.lookups - n : 0;
  if (it->second.lookups == 0) {
    by_key_.erase(it->second.key);
    by_ino_.erase(it);
  }
}

void InodeTable::setFile(Ino ino, std::shared_ptr<const client::FileInfo> file) {
  std::lock_guard lock(mu_);
  auto it = by_ino_.find(ino);
  if (it != by_ino_.end()) it->second.file = std::move(file);
}

std::shared_ptr<const client::FileInfo> InodeTable::file(Ino ino) const {
  std::lock_guard lock(mu_);
  auto it = by_ino_.find(ino);
  return it == by_ino_.end() ? nullptr : it->second.file;
}

size_t InodeTable::size() const {
  std::lock_guard lock(mu_);
  return by_ino_.size();
}

}  // namespace sluice::fuse
