#include "client/source_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <memory>

namespace sluice::client {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};

std::string joinPath(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

int64_t mtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

class Walker {
 public:
  explicit Walker(SourceTree& tree) : tree_(tree) {}

  // Walks the directory open as `dir_fd` whose relative path is `rel`.
  // Takes ownership of dir_fd.
  Status walk(int dir_fd, const std::string& rel) {
    std::unique_ptr<DIR, DirCloser> dir(fdopendir(dir_fd));
    if (!dir) {
      int err = errno;
      close(dir_fd);
      return errnoStatus(err, "reading directory '" + display(rel) + "'");
    }
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* de = readdir(dir.get())) {
      std::string name = de->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
      errno = 0;
    }
    if (errno != 0) return errnoStatus(errno, "reading directory '" + display(rel) + "'");
    std::sort(names.begin(), names.end());

    for (const std::string& name : names) {
      std::string path = joinPath(rel, name);
      if (path.size() > kMaxPathBytes) {
        return invalidArgument("path '" + path.substr(0, 80) + "…' is longer than " +
                               std::to_string(kMaxPathBytes) + " bytes");
      }
      struct stat st;
      if (fstatat(dirfd(dir.get()), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return errnoStatus(errno, "stat '" + path + "'");
      }
      SourceEntry e;
      e.path = path;
      e.mode = st.st_mode & 07777;
      e.mtime_ns = mtimeNs(st);
      if (S_ISREG(st.st_mode)) {
        e.type = EntryType::kFile;
        e.size = static_cast<uint64_t>(st.st_size);
        tree_.file_count++;
        tree_.total_bytes += e.size;
        tree_.entries.push_back(std::move(e));
      } else if (S_ISLNK(st.st_mode)) {
        e.type = EntryType::kSymlink;
        SLUICE_RETURN_IF_ERROR(readLink(dirfd(dir.get()), name, path, st, e.symlink_target));
        tree_.entries.push_back(std::move(e));
      } else if (S_ISDIR(st.st_mode)) {
        e.type = EntryType::kDirectory;
        tree_.entries.push_back(std::move(e));
        int child = openat(dirfd(dir.get()), name.c_str(),
                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0) return errnoStatus(errno, "opening directory '" + path + "'");
        SLUICE_RETURN_IF_ERROR(walk(child, path));
      } else {
        tree_.warnings.push_back("skipping " + kindOf(st.st_mode) + " '" + path +
                                 "' (only files, directories and symlinks are uploaded)");
      }
    }
    return Status();
  }

 private:
  static std::string display(const std::string& rel) { return rel.empty() ? "." : rel; }

  static std::string kindOf(mode_t mode) {
    if (S_ISFIFO(mode)) return "FIFO";
    if (S_ISSOCK(mode)) return "socket";
    if (S_ISCHR(mode)) return "character device";
    if (S_ISBLK(mode)) return "block device";
    return "special file";
  }

  static Status readLink(int dir_fd, const std::string& name, const std::string& path,
                         const struct stat& st, std::string& out) {
    size_t cap = st.st_size > 0 ? static_cast<size_t>(st.st_size) + 1 : PATH_MAX;
    out.resize(cap);
    ssize_t n = readlinkat(dir_fd, name.c_str(), out.data(), out.size());
    if (n < 0) return errnoStatus(errno, "readlink '" + path + "'");
    if (static_cast<size_t>(n) >= cap) {
      return ioError("readlink '" + path + "': target changed while reading");
    }
    out.resize(static_cast<size_t>(n));
    return Status();
  }

  SourceTree& tree_;
};

}  // namespace

Result<SourceTree> walkSourceTree(const std::string& root) {
  if (root.empty()) return invalidArgument("source directory: empty path");
  char resolved[PATH_MAX];
  if (realpath(root.c_str(), resolved) == nullptr) {
    return errnoStatus(errno, "source directory '" + root + "'");
  }
  int fd = open(resolved, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOTDIR) return invalidArgument("source '" + root + "' is not a directory");
    return errnoStatus(errno, "source directory '" + root + "'");
  }
  SourceTree tree;
  tree.root = resolved;
  Walker walker(tree);
  SLUICE_RETURN_IF_ERROR(walker.walk(fd, ""));
  return tree;
}

}  // namespace sluice::client
