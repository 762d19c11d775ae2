#include "fuse/fuse_ops.h"

#include <errno.h>
#include <sys/statvfs.h>

#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

namespace sluice::fuse {
namespace {

SluiceFs& fsOf(fuse_req_t req) { return *static_cast<SluiceFs*>(fuse_req_userdata(req)); }

// A directory handle: the listing taken at opendir, so paging through it
// with offsets is consistent and costs no further round trips.
struct DirHandle {
  std::vector<DirItem> items;
  Ino parent = 0;  // for ".."
};

void replyError(fuse_req_t req, const Status& s, const char* op) {
  int err = errnoOf(s);
  if (err == EIO) spdlog::warn("{}: {}", op, s.toString());
  fuse_reply_err(req, err);
}

void fillEntry(const EntryReply& r, fuse_entry_param& e) {
  std::memset(&e, 0, sizeof e);
  e.ino = r.ino;
  e.attr = r.attr;
  e.attr_timeout = r.timeout;
  e.entry_timeout = r.timeout;
  e.generation = 1;
}

void opInit(void*, fuse_conn_info* conn) {
  conn->max_readahead = 8u << 20;
  // libfuse derives max_pages from max_write: 1 MiB lets reads be 1 MiB.
  conn->max_write = 1u << 20;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  conn->time_gran = 1;
}

void opLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto r = fsOf(req).lookup(parent, name);
  if (!r.isOk()) return replyError(req, r.status(), "lookup");
  fuse_entry_param e;
  fillEntry(*r, e);
  if (fuse_reply_entry(req, &e) != 0 && r->ino != 0) fsOf(req).unref(r->ino);
}

void opForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  fsOf(req).forget(ino, nlookup);
  fuse_reply_none(req);
}

void opForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) fsOf(req).forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void opGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  auto r = fsOf(req).getattr(ino);
  if (!r.isOk()) return replyError(req, r.status(), "getattr");
  fuse_reply_attr(req, &r->first, r->second);
}

void opReadlink(fuse_req_t req, fuse_ino_t ino) {
  auto r = fsOf(req).readlink(ino);
  if (!r.isOk()) return replyError(req, r.status(), "readlink");
  fuse_reply_readlink(req, r->c_str());
}

void opOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto r = fsOf(req).open(ino, fi->flags);
  if (!r.isOk()) return replyError(req, r.status(), "open");
  OpenFile* f = *r;
  fi->fh = reinterpret_cast<uint64_t>(f);
  bool control = SluiceFs::isGenerated(f);
  // Versions never change: keep the page cache across opens. The control
  // file is generated per open and has no fixed size: bypass the cache.
  fi->keep_cache = control ? 0 : 1;
  fi->direct_io = control ? 1 : 0;
  if (fuse_reply_open(req, fi) != 0) fsOf(req).release(f);
}

void opRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < size) buffer.resize(size);
  auto r = fsOf(req).read(reinterpret_cast<OpenFile*>(fi->fh), static_cast<uint64_t>(off),
                          std::span<uint8_t>(buffer.data(), size));
  if (!r.isOk()) return replyError(req, r.status(), "read");
  fuse_reply_buf(req, reinterpret_cast<const char*>(buffer.data()), *r);
}

void opRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  fsOf(req).release(reinterpret_cast<OpenFile*>(fi->fh));
  fuse_reply_err(req, 0);
}

void opOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto r = fsOf(req).listDir(ino);
  if (!r.isOk()) return replyError(req, r.status(), "opendir");
  auto* h = new DirHandle{std::move(*r), fsOf(req).parentOf(ino)};
  fi->fh = reinterpret_cast<uint64_t>(h);
  // Listings of committed versions never change; those of the root and of
  // datasets do (datasets, versions and tags come and go), and a listing the
  // kernel kept would hide the new ones from `ls` for as long as it kept it.
  const bool immutable = fsOf(req).listingNeverChanges(ino);
  fi->cache_readdir = immutable ? 1 : 0;
  fi->keep_cache = immutable ? 1 : 0;
  if (fuse_reply_open(req, fi) != 0) delete h;
}

void readdirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
                   bool plus) {
  auto* h = reinterpret_cast<DirHandle*>(fi->fh);
  std::vector<char> buf(size);
  size_t used = 0;
  // Entry `next` is "." (0), ".." (1) or items[next - 2]; each names the
  // offset after it.
  for (off_t next = off; ; ++next) {
    std::string name;
    struct stat st {};
    fuse_entry_param e{};
    Ino taken = 0;
    if (next == 0 || next == 1) {
      name = next == 0 ? "." : "..";
      // readdir(3) skips entries with inode 0.
      st.st_ino = next == 0 ? ino : h->parent;
      st.st_mode = S_IFDIR;
      e.attr = st;
    } else {
      size_t i = static_cast<size_t>(next - 2);
      if (i >= h->items.size()) break;
      name = h->items[i].name;
      if (plus) {
        EntryReply r = fsOf(req).entry(h->items[i].node);
        fillEntry(r, e);
        taken = r.ino;
      } else {
        st = h->items[i].node.attr;
      }
    }
    size_t need = plus ? fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e, next + 1)
                       : fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st, next + 1);
    if (need > size - used) {
      if (taken != 0) fsOf(req).unref(taken);
      break;
    }
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void opReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  readdirCommon(req, ino, size, off, fi, false);
}

void opReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  readdirCommon(req, ino, size, off, fi, true);
}

void opReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void opStatfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs st {};
  st.f_bsize = st.f_frsize = 1 << 20;
  st.f_namemax = 255;
  st.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &st);
}

void opAccess(fuse_req_t req, fuse_ino_t, int mask) {
  fuse_reply_err(req, (mask & W_OK) != 0 ? EROFS : 0);
}

// Everything that would change the tree.
void rofsSetattr(fuse_req_t req, fuse_ino_t, struct stat*, int, fuse_file_info*) { fuse_reply_err(req, EROFS); }
void rofsMknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) { fuse_reply_err(req, EROFS); }
void rofsMkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) { fuse_reply_err(req, EROFS); }
void rofsUnlink(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void rofsSymlink(fuse_req_t req, const char*, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void rofsRename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) { fuse_reply_err(req, EROFS); }
void rofsLink(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void rofsWrite(fuse_req_t req, fuse_ino_t, const char*, size_t, off_t, fuse_file_info*) { fuse_reply_err(req, EROFS); }
void rofsCreate(fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) { fuse_reply_err(req, EROFS); }
void rofsSetxattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) { fuse_reply_err(req, EROFS); }
void rofsRemovexattr(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void rofsFallocate(fuse_req_t req, fuse_ino_t, int, off_t, off_t, fuse_file_info*) { fuse_reply_err(req, EROFS); }

fuse_lowlevel_ops makeOps() {
  fuse_lowlevel_ops ops{};
  ops.init = opInit;
  ops.lookup = opLookup;
  ops.forget = opForget;
  ops.forget_multi = opForgetMulti;
  ops.getattr = opGetattr;
  ops.readlink = opReadlink;
  ops.open = opOpen;
  ops.read = opRead;
  ops.release = opRelease;
  ops.opendir = opOpendir;
  ops.readdir = opReaddir;
  ops.readdirplus = opReaddirplus;
  ops.releasedir = opReleasedir;
  ops.statfs = opStatfs;
  ops.access = opAccess;
  ops.setattr = rofsSetattr;
  ops.mknod = rofsMknod;
  ops.mkdir = rofsMkdir;
  ops.unlink = rofsUnlink;
  ops.rmdir = rofsUnlink;
  ops.symlink = rofsSymlink;
  ops.rename = rofsRename;
  ops.link = rofsLink;
  ops.write = rofsWrite;
  ops.create = rofsCreate;
  ops.setxattr = rofsSetxattr;
  ops.removexattr = rofsRemovexattr;
  ops.fallocate = rofsFallocate;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& sluiceOperations() {
  static const fuse_lowlevel_ops ops = makeOps();
  return ops;
}

int errnoOf(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 0;
    case StatusCode::kNotFound:
      return ENOENT;
    case StatusCode::kPermissionDenied:
      return EROFS;
    case StatusCode::kFailedPrecondition:
      return ENOTDIR;
    case StatusCode::kInvalidArgument:
      return EINVAL;
    case StatusCode::kNoSpace:
      return ENOSPC;
    case StatusCode::kResourceExhausted:
    case StatusCode::kBusy:
      return EAGAIN;
    default:
      // Timeouts, dead nodes, checksum failures on every replica: the read
      // cannot be served correctly.
      return EIO;
  }
}

}  // namespace sluice::fuse
