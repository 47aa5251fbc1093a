// libfuse low-level handlers: decode, call the Filesystem, reply once. Errors come back from the
// Filesystem as errno values already (fs/errno_map.cc made them from Status).
//
// How the kernel's FUSE page cache is configured, and why (see also fs/mapping.h):
// - No writeback_cache: every write(2) reaches the daemon as it happens, and its data is copied
//   out of /dev/fuse into the daemon's buffer before this cache generates PI, so the bytes that
//   are checksummed are private to the daemon. Shared writable mmap of the mount still works: the
//   kernel's FUSE client writes dirty mapped pages back with FUSE_WRITE (it waits on its own
//   writeback in fuse_page_mkwrite).
// - No splice (FUSE_CAP_SPLICE_READ/WRITE/MOVE cleared): with splice the kernel could hand the
//   daemon page-cache pages by reference, and a page a process changes while stablefs computes
//   its PI would break guarantee 1. The cost is one copy, which the PI pass needs anyway.
// - keep_cache on open: every change goes through this mount, so the kernel's cached pages stay
//   valid across opens. O_DIRECT reads and writes bypass the kernel's cache (its FUSE client
//   handles O_DIRECT itself) and are served by, and coherent with, this daemon's page cache.
#include "fs/fuse_ops.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "fs/acl.h"
#include "fs/scrub_ioctl.h"
#include "fs/stats.h"
#include "storage/log.h"

namespace stablefs {

namespace {

FuseContext* Ctx(fuse_req_t req) { return static_cast<FuseContext*>(fuse_req_userdata(req)); }
Filesystem* Fs(fuse_req_t req) { return Ctx(req)->fs; }
// A transport counter, 0 under libfuse's own I/O.
template <typename T>
uint64_t Transport(fuse_req_t req, std::atomic<T> TransportCounters::*counter) {
  const TransportCounters* t = Ctx(req)->transport;
  return t == nullptr ? 0 : (t->*counter).load(std::memory_order_relaxed);
}

// The caller of a request; with_groups also reads its supplementary groups (from /proc, so
// only where a decision needs them), for an unprivileged caller.
Filesystem::Caller CallerOf(fuse_req_t req, bool with_groups = false) {
  const struct fuse_ctx* c = fuse_req_ctx(req);
  Filesystem::Caller caller;
  caller.uid = c->uid;
  caller.gid = c->gid;
  caller.umask = c->umask;
  if (with_groups && caller.uid != 0) {
    gid_t groups[256];
    int n = fuse_req_getgroups(req, 256, groups);
    for (int i = 0; i < n && i < 256; i++) caller.groups.push_back(groups[i]);
  }
  return caller;
}

OpenFile* FileOf(struct fuse_file_info* fi) { return reinterpret_cast<OpenFile*>(fi->fh); }

// The kernel keeps its cached attributes across an ioctl, a write and an open; after chattr
// the ctime and flags changed, after a write or open(O_TRUNC) that cleared suid/sgid the mode,
// so tell it before the reply, so that a stat right after the call sees them.
void InvalidateAttributes(fuse_req_t req, fuse_ino_t ino) {
  if (Ctx(req)->se != nullptr) fuse_lowlevel_notify_inval_inode(Ctx(req)->se, ino, -1, 0);
}

void ReplyEntry(fuse_req_t req, int err, const struct stat& st) {
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  struct fuse_entry_param e;
  std::memset(&e, 0, sizeof(e));
  e.ino = st.st_ino;
  e.generation = 1;
  e.attr = st;
  e.attr_timeout = Ctx(req)->attr_timeout;
  e.entry_timeout = Ctx(req)->entry_timeout;
  fuse_reply_entry(req, &e);
}

void SfsInit(void* userdata, struct fuse_conn_info* conn) {
  (void)userdata;
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  // The kernel checks permissions against POSIX ACLs and leaves the umask to us (fs/acl.h).
  if (conn->capable & FUSE_CAP_POSIX_ACL) conn->want |= FUSE_CAP_POSIX_ACL;
  // Inode numbers are never reused and lookup answers "." and "..", so file handles
  // (open_by_handle_at, NFS export) stay valid: generation 1 is enough.
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  // The kernel passes the create mode unmasked, with the umask beside it.
  if (conn->capable & FUSE_CAP_DONT_MASK) conn->want |= FUSE_CAP_DONT_MASK;
}

void SfsLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  struct stat st;
  ReplyEntry(req, Fs(req)->Lookup(parent, name, &st), st);
}

void SfsForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Fs(req)->Forget(ino, nlookup);
  fuse_reply_none(req);
}

void SfsForgetMulti(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; i++) Fs(req)->Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void SfsGetattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info*) {
  struct stat st;
  int e = Fs(req)->GetAttr(ino, &st);
  if (e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fuse_reply_attr(req, &st, Ctx(req)->attr_timeout);
}

void SfsSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                struct fuse_file_info*) {
  struct stat st;
  if (KillSuidgidRequested()) to_set |= Filesystem::kSetAttrKillSuidgid;
  int e = Fs(req)->SetAttr(ino, *attr, to_set, CallerOf(req), &st);
  if (e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fuse_reply_attr(req, &st, Ctx(req)->attr_timeout);
}

void SfsReadlink(fuse_req_t req, fuse_ino_t ino) {
  std::string target;
  int e = Fs(req)->Readlink(ino, &target);
  if (e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fuse_reply_readlink(req, target.c_str());
}

void SfsMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  struct stat st;
  ReplyEntry(req, Fs(req)->Mknod(parent, name, mode, rdev, CallerOf(req), &st), st);
}

void SfsMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  struct stat st;
  ReplyEntry(req, Fs(req)->Mkdir(parent, name, mode, CallerOf(req), &st), st);
}

void SfsSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  struct stat st;
  ReplyEntry(req, Fs(req)->Symlink(link, parent, name, CallerOf(req), &st), st);
}

void SfsLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char* name) {
  struct stat st;
  ReplyEntry(req, Fs(req)->Link(ino, parent, name, &st), st);
}

void SfsUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_reply_err(req, Fs(req)->Unlink(parent, name));
}

void SfsRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_reply_err(req, Fs(req)->Rmdir(parent, name));
}

void SfsRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
               const char* newname, unsigned int flags) {
  fuse_reply_err(req, Fs(req)->Rename(parent, name, newparent, newname, flags, CallerOf(req)));
}

}  // namespace

bool KeepKernelCache(Filesystem* fs, OpenFile* f) { return !fs->AtimeDue(f); }

namespace {

void SetOpenFlags(fuse_req_t req, OpenFile* f, struct fuse_file_info* fi) {
  // O_DIRECT needs no direct_io here: the kernel's FUSE client sends O_DIRECT reads and writes
  // straight to the daemon (its ->direct_IO), after writing back and invalidating its own cached
  // pages, and such a file can still be mmapped (direct_io files cannot).
  // The kernel updates no atime of a FUSE inode, and reads its own cached pages without asking
  // the daemon: when a read would update the atime now, the cache is dropped at this open so
  // that the first read comes to the daemon, which updates it. Otherwise the cache is kept.
  fi->keep_cache = KeepKernelCache(Fs(req), f) ? 1 : 0;
  fi->noflush = 0;
}

void SfsOpen(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  std::unique_ptr<OpenFile> f;
  // Without FUSE_HANDLE_KILLPRIV_V2 the kernel computes the mode an open(O_TRUNC) leaves but
  // never sends it (with atomic O_TRUNC the truncation is the open's): the open clears the bits
  // for a caller other than root, as Fallocate does.
  const bool kill = Transport(req, &TransportCounters::killpriv_v2) != 0
                        ? KillSuidgidRequested()
                        : (fi->flags & O_TRUNC) && CallerOf(req).uid != 0;
  bool killed = false;
  int e = Fs(req)->Open(ino, fi->flags, &f, kill, &killed);
  if (killed) InvalidateAttributes(req, ino);
  if (e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fi->fh = reinterpret_cast<uint64_t>(f.get());
  SetOpenFlags(req, f.get(), fi);
  if (fuse_reply_open(req, fi) == -ENOENT) {  // the opener was interrupted
    (void)Fs(req)->Release(std::move(f));
    return;
  }
  f.release();
}

void SfsCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               struct fuse_file_info* fi) {
  std::unique_ptr<OpenFile> f;
  struct stat st;
  int e = Fs(req)->Create(parent, name, mode, fi->flags, CallerOf(req), &st, &f);
  if (e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fi->fh = reinterpret_cast<uint64_t>(f.get());
  SetOpenFlags(req, f.get(), fi);
  struct fuse_entry_param ep;
  std::memset(&ep, 0, sizeof(ep));
  ep.ino = st.st_ino;
  ep.generation = 1;
  ep.attr = st;
  ep.attr_timeout = Ctx(req)->attr_timeout;
  ep.entry_timeout = Ctx(req)->entry_timeout;
  if (fuse_reply_create(req, &ep, fi) == -ENOENT) {
    (void)Fs(req)->Release(std::move(f));
    return;
  }
  f.release();
}

void SfsRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, struct fuse_file_info* fi) {
  std::vector<char> buf(size);
  size_t done = 0;
  int e = Fs(req)->Read(FileOf(fi), static_cast<uint64_t>(off), size, buf.data(), &done);
  if (e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fuse_reply_buf(req, buf.data(), done);
}

void SfsWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
              struct fuse_file_info* fi) {
  size_t done = 0;
  bool killed = false;
  int e = Fs(req)->Write(FileOf(fi), static_cast<uint64_t>(off), buf, size, &done,
                         KillSuidgidRequested(), &killed);
  if (killed) InvalidateAttributes(req, ino);
  if (e != 0 && done == 0) {
    fuse_reply_err(req, e);
    return;
  }
  // An O_DIRECT write bypasses the kernel's cache of the file, and a buffered reader may have
  // filled that cache with the old bytes while the write was on its way here; the kernel does
  // not drop those pages when an asynchronous (AIO) direct write completes. Drop them before the
  // reply, so that no read after the write's completion sees the old data (generic/451). A read
  // still in flight holds its page locked; the invalidation waits for it and then drops it.
  if ((fi->flags & O_DIRECT) && done > 0 && Ctx(req)->se != nullptr) {
    fuse_lowlevel_notify_inval_inode(Ctx(req)->se, ino, off, static_cast<off_t>(done));
  }
  fuse_reply_write(req, done);
}

void SfsFlush(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  fuse_reply_err(req, Fs(req)->Flush(FileOf(fi)));
}

void SfsRelease(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  std::unique_ptr<OpenFile> f(FileOf(fi));
  fuse_reply_err(req, Fs(req)->Release(std::move(f)));
}

void SfsFsync(fuse_req_t req, fuse_ino_t, int datasync, struct fuse_file_info* fi) {
  fuse_reply_err(req, Fs(req)->Fsync(FileOf(fi), datasync != 0));
}

void SfsOpendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  int e = Fs(req)->OpenDir(ino);
  if (e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fi->fh = 0;
  fi->cache_readdir = 0;
  fuse_reply_open(req, fi);
}

void DoReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  std::vector<char> buf(size);
  size_t used = 0;
  int e = Fs(req)->ReadDir(
      ino, static_cast<uint64_t>(off), plus,
      [&](const Filesystem::DirEntry& d, const struct stat* st) {
        size_t n;
        if (plus) {
          struct fuse_entry_param ep;
          std::memset(&ep, 0, sizeof(ep));
          ep.attr = *st;
          ep.attr.st_ino = d.ino;
          // "." and ".." carry no lookup reference: ino 0 tells the kernel not to take one.
          if (d.name != "." && d.name != "..") {
            ep.ino = d.ino;
            ep.generation = 1;
            ep.attr_timeout = Ctx(req)->attr_timeout;
            ep.entry_timeout = Ctx(req)->entry_timeout;
          }
          n = fuse_add_direntry_plus(req, buf.data() + used, size - used, d.name.c_str(), &ep,
                                     static_cast<off_t>(d.next));
        } else {
          struct stat s;
          std::memset(&s, 0, sizeof(s));
          s.st_ino = d.ino;
          s.st_mode = d.type << 12;
          n = fuse_add_direntry(req, buf.data() + used, size - used, d.name.c_str(), &s,
                                static_cast<off_t>(d.next));
        }
        if (n > size - used) return false;
        used += n;
        return true;
      });
  if (e != 0 && used == 0) {
    fuse_reply_err(req, e);
    return;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void SfsReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info*) {
  DoReaddir(req, ino, size, off, false);
}

void SfsReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info*) {
  DoReaddir(req, ino, size, off, true);
}

void SfsReleasedir(fuse_req_t req, fuse_ino_t, struct fuse_file_info*) { fuse_reply_err(req, 0); }

void SfsFsyncdir(fuse_req_t req, fuse_ino_t ino, int, struct fuse_file_info*) {
  fuse_reply_err(req, Fs(req)->FsyncDir(ino));
}

void SfsStatfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs st;
  int e = Fs(req)->Statfs(&st);
  if (e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fuse_reply_statfs(req, &st);
}

void SfsSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                 int flags) {
  Filesystem::Caller caller = CallerOf(req, std::string_view(name) == kAclAccess);
  fuse_reply_err(req, Fs(req)->SetXattr(ino, name, std::string_view(value, size), flags, caller));
}

// The reply to getxattr and listxattr: the size alone when the caller asked with size 0, ERANGE
// when its buffer is too small, else the bytes.
void ReplyXattr(fuse_req_t req, int err, const std::string& value, size_t size) {
  if (err != 0) {
    fuse_reply_err(req, err);
  } else if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (value.size() > size) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
}

void SfsGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  std::string value;
  int e = Fs(req)->GetXattr(ino, name, &value);
  ReplyXattr(req, e, value, size);
}

void SfsListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::string names;
  int e = Fs(req)->ListXattr(ino, &names);
  ReplyXattr(req, e, names, size);
}

void SfsRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  fuse_reply_err(req, Fs(req)->RemoveXattr(ino, name));
}

void SfsFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                  struct fuse_file_info* fi) {
  if (off < 0 || len <= 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  Filesystem::Caller caller = CallerOf(req, /*with_groups=*/true);
  int e = Fs(req)->Fallocate(FileOf(fi), mode, static_cast<uint64_t>(off),
                             static_cast<uint64_t>(len), caller);
  // An unprivileged fallocate may have cleared set-id bits the kernel has cached.
  if (e == 0 && caller.uid != 0) InvalidateAttributes(req, ino);
  fuse_reply_err(req, e);
}

void SfsLseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, struct fuse_file_info* fi) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) {
    // The kernel handles SEEK_SET, SEEK_CUR and SEEK_END itself.
    fuse_reply_err(req, EINVAL);
    return;
  }
  if (off < 0) {
    fuse_reply_err(req, ENXIO);
    return;
  }
  uint64_t result = 0;
  int e = Fs(req)->SeekDataHole(FileOf(fi), static_cast<uint64_t>(off), whence, &result);
  if (e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  fuse_reply_lseek(req, static_cast<off_t>(result));
}

// Sets chattr flags and answers the ioctl; the kernel's cached attributes are made stale first.
void ReplySetFlags(fuse_req_t req, fuse_ino_t ino, uint32_t flags) {
  int e = Fs(req)->SetFlags(ino, flags);
  if (e != 0) {
    fuse_reply_err(req, e);
    return;
  }
  InvalidateAttributes(req, ino);
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

// Copies at most n - 1 bytes of s and a NUL.
void CopyCString(char* dst, size_t n, const std::string& s) {
  const size_t len = std::min(s.size(), n - 1);
  std::memcpy(dst, s.data(), len);
  dst[len] = '\0';
}

void ReplyScrubStart(fuse_req_t req, const void* in_buf) {
  StablefsScrubStart start;
  std::memcpy(&start, in_buf, sizeof(start));
  Status s =
      Ctx(req)->scrubber->Start(ScrubOptions{.rate_bytes_per_sec = start.rate_bytes_per_sec});
  if (!s.ok()) {
    fuse_reply_err(req, s.IsBusy() ? EBUSY : EIO);
    return;
  }
  start.generation = Ctx(req)->scrubber->progress().generation;
  fuse_reply_ioctl(req, 0, &start, sizeof(start));
}

void ReplyScrubStatus(fuse_req_t req, const void* in_buf) {
  auto st = std::make_unique<StablefsScrubStatus>();
  std::memcpy(st.get(), in_buf, sizeof(*st));
  Scrubber* scrubber = Ctx(req)->scrubber;
  const ScrubProgress p = scrubber->progress();
  if (st->generation != p.generation) {
    fuse_reply_err(req, ESTALE);
    return;
  }
  const uint64_t first = st->first_problem;
  std::memset(st.get(), 0, sizeof(*st));
  st->generation = p.generation;
  st->first_problem = first;
  st->state = static_cast<uint32_t>(p.state);
  st->blocks_total = p.blocks_total;
  st->blocks_checked = p.blocks_checked;
  st->bytes_checked = p.bytes_checked;
  st->problems = p.problems;
  st->elapsed_ns = p.elapsed_ns;
  CopyCString(st->error, sizeof(st->error), p.error);
  // The report is complete (paths found) only once the scrub has ended.
  if (p.state != ScrubState::kRunning) {
    const std::vector<ScrubProblem> page = scrubber->problems(first, kScrubRecordsPerCall);
    st->nrecords = static_cast<uint32_t>(page.size());
    for (size_t i = 0; i < page.size(); i++) {
      StablefsScrubRecord& r = st->records[i];
      r.ino = page[i].ino;
      r.offset = page[i].offset;
      r.has_values = page[i].has_values;
      r.expected = page[i].expected;
      r.found = page[i].found;
      CopyCString(r.field, sizeof(r.field), page[i].field);
      CopyCString(r.what, sizeof(r.what), page[i].what);
      if (page[i].path.size() < sizeof(r.path)) CopyCString(r.path, sizeof(r.path), page[i].path);
    }
  }
  fuse_reply_ioctl(req, 0, st.get(), sizeof(*st));
}

// The shutdown ioctl: XFS_IOC_GOINGDOWN, which ext4 (EXT4_IOC_SHUTDOWN) and f2fs share, with
// a 32-bit flag (Filesystem::kGoingDown*). It is declared _IOR, so the kernel's FUSE client
// sends no input for it: the flag is read from the caller's memory at `arg`, as the kernel's own
// get_user() would (process_vm_readv; the daemon runs as root for the mounts that allow it).
constexpr unsigned int kIocGoingDown = _IOR('X', 125, uint32_t);

void ReplyGoingDown(fuse_req_t req, void* arg) {
  const struct fuse_ctx* c = fuse_req_ctx(req);
  if (c->uid != 0) {  // CAP_SYS_ADMIN, as xfs and ext4 require
    fuse_reply_err(req, EPERM);
    return;
  }
  uint32_t how = 0;
  struct iovec local = {&how, sizeof(how)};
  struct iovec remote = {arg, sizeof(how)};
  if (process_vm_readv(c->pid, &local, 1, &remote, 1, 0) != sizeof(how)) {
    fuse_reply_err(req, EFAULT);
    return;
  }
  Filesystem* fs = Fs(req);
  if (int e = fs->GoingDown(how)) {
    fuse_reply_err(req, e);
    return;
  }
  // The kernel's cached pages would still answer reads: drop them, so that reads come here and
  // fail as every other request now does.
  if (Ctx(req)->se != nullptr) {
    for (uint64_t ino : fs->CachedInodes())
      fuse_lowlevel_notify_inval_inode(Ctx(req)->se, ino, 0, 0);
  }
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

// FITRIM (fstrim), with CAP_SYS_ADMIN as ext4 and xfs require: range.len comes back as the
// bytes trimmed.
void ReplyTrim(fuse_req_t req, const void* in_buf) {
  if (fuse_req_ctx(req)->uid != 0) {
    fuse_reply_err(req, EPERM);
    return;
  }
  struct fstrim_range range;
  std::memcpy(&range, in_buf, sizeof(range));
  uint64_t trimmed = 0;
  if (int e = Fs(req)->Trim(range.start, range.len, range.minlen, &trimmed)) {
    fuse_reply_err(req, e);
    return;
  }
  range.len = trimmed;
  fuse_reply_ioctl(req, 0, &range, sizeof(range));
}

void ReplyInjectFault(fuse_req_t req, const void* in_buf) {
  if (fuse_req_ctx(req)->uid != 0) {
    fuse_reply_err(req, EPERM);
    return;
  }
  StablefsFault f;
  std::memcpy(&f, in_buf, sizeof(f));
  FaultBlockStore* faults = Ctx(req)->faults;
  const Status injected = Status::IOError("injected fault (stablefsctl inject)");
  switch (f.kind) {
    case kFaultClear:
      faults->ClearFaults();
      break;
    case kFaultWriteErrors:
      faults->InjectWriteError(FaultBlockStore::kAnyIno, injected, f.count);
      break;
    case kFaultSyncErrors:
      faults->InjectSyncError(injected, f.count);
      break;
    case kFaultReadErrors:
      faults->InjectReadError(FaultBlockStore::kAnyIno, injected, f.count);
      break;
    default:
      fuse_reply_err(req, EINVAL);
      return;
  }
  if (f.kind != kFaultClear) {
    const char* what = f.kind == kFaultWriteErrors  ? "writes"
                       : f.kind == kFaultSyncErrors ? "syncs"
                                                    : "block reads";
    if (f.count < 0) {
      Log(LogLevel::kWarning, "fault injected: the store's %s fail until cleared", what);
    } else {
      Log(LogLevel::kWarning, "fault injected: the store's next %d %s fail", f.count, what);
    }
  }
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

void SfsIoctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void* arg, struct fuse_file_info*,
              unsigned flags, const void* in_buf, size_t in_bufsz, size_t out_bufsz) {
  if (flags & FUSE_IOCTL_COMPAT) {
    fuse_reply_err(req, ENOSYS);
    return;
  }
  if (cmd == kIocGoingDown) {
    ReplyGoingDown(req, arg);
    return;
  }
  if (Ctx(req)->scrubber != nullptr) {
    if (cmd == STABLEFS_IOC_SCRUB_START && in_bufsz >= sizeof(StablefsScrubStart) &&
        out_bufsz >= sizeof(StablefsScrubStart)) {
      ReplyScrubStart(req, in_buf);
      return;
    }
    if (cmd == STABLEFS_IOC_SCRUB_STATUS && in_bufsz >= sizeof(StablefsScrubStatus) &&
        out_bufsz >= sizeof(StablefsScrubStatus)) {
      ReplyScrubStatus(req, in_buf);
      return;
    }
    if (cmd == STABLEFS_IOC_SCRUB_CANCEL) {
      Ctx(req)->scrubber->Cancel();
      fuse_reply_ioctl(req, 0, nullptr, 0);
      return;
    }
  }
  if (cmd == STABLEFS_IOC_INJECT_FAULT && Ctx(req)->faults != nullptr &&
      in_bufsz >= sizeof(StablefsFault)) {
    ReplyInjectFault(req, in_buf);
    return;
  }
  if (cmd == STABLEFS_IOC_STATS && out_bufsz >= sizeof(StablefsStats)) {
    Filesystem* fs = Fs(req);
    PageCacheCounters c = fs->cache()->counters();
    StoreCounters sc = fs->store()->counters();
    const uint64_t v[] = {c.pages_written_back,
                          c.writeback_batches,
                          c.waits_on_writeback,
                          c.wait_on_writeback_ns,
                          c.bounce_copies,
                          sc.protection_errors_write,
                          sc.protection_errors_read,
                          c.protection_errors_read,
                          c.writeback_errors,
                          c.pages_read,
                          c.pages_evicted,
                          c.dirty_throttle_waits,
                          c.mkwrite_faults,
                          sc.blocks_written,
                          sc.blocks_read,
                          sc.syncs,
                          fs->cache()->nr_dirty(),
                          fs->cache()->nr_writeback(),
                          fs->cache()->nr_pages_total(),
                          Transport(req, &TransportCounters::proto_minor),
                          Transport(req, &TransportCounters::statx_requests),
                          Transport(req, &TransportCounters::tmpfile_requests),
                          Transport(req, &TransportCounters::killpriv_v2),
                          Transport(req, &TransportCounters::kill_suidgid_requests)};
    static_assert(sizeof(v) / sizeof(v[0]) == kNumStats, "one value per name");
    StablefsStats stats{};
    for (size_t i = 0; i < kNumStats; i++) stats.values[i] = v[i];
    fuse_reply_ioctl(req, 0, &stats, sizeof(stats));
    return;
  }
  if (Fs(req)->is_shut_down()) {
    fuse_reply_err(req, EIO);
    return;
  }
  if (cmd == FITRIM && in_bufsz >= sizeof(struct fstrim_range) &&
      out_bufsz >= sizeof(struct fstrim_range)) {
    ReplyTrim(req, in_buf);
    return;
  }
  // chattr and lsattr: the kernel's fileattr code sends these with a 4-byte flags word, or a
  // struct fsxattr (xfs_io chattr).
  if (cmd == FS_IOC_GETFLAGS || cmd == FS_IOC_FSGETXATTR) {
    uint32_t attr_flags = 0;
    int e = Fs(req)->GetFlags(ino, &attr_flags);
    if (e != 0) {
      fuse_reply_err(req, e);
    } else if (cmd == FS_IOC_GETFLAGS && out_bufsz >= sizeof(uint32_t)) {
      fuse_reply_ioctl(req, 0, &attr_flags, sizeof(attr_flags));
    } else if (cmd == FS_IOC_FSGETXATTR && out_bufsz >= sizeof(struct fsxattr)) {
      struct fsxattr fa;
      std::memset(&fa, 0, sizeof(fa));
      if (attr_flags & FS_IMMUTABLE_FL) fa.fsx_xflags |= FS_XFLAG_IMMUTABLE;
      if (attr_flags & FS_APPEND_FL) fa.fsx_xflags |= FS_XFLAG_APPEND;
      if (attr_flags & FS_NODUMP_FL) fa.fsx_xflags |= FS_XFLAG_NODUMP;
      if (attr_flags & FS_NOATIME_FL) fa.fsx_xflags |= FS_XFLAG_NOATIME;
      if (attr_flags & FS_SYNC_FL) fa.fsx_xflags |= FS_XFLAG_SYNC;
      fuse_reply_ioctl(req, 0, &fa, sizeof(fa));
    } else {
      fuse_reply_err(req, EINVAL);
    }
    return;
  }
  if (cmd == FS_IOC_SETFLAGS && in_bufsz >= sizeof(uint32_t)) {
    uint32_t attr_flags;
    std::memcpy(&attr_flags, in_buf, sizeof(attr_flags));
    ReplySetFlags(req, ino, attr_flags);
    return;
  }
  if (cmd == FS_IOC_FSSETXATTR && in_bufsz >= sizeof(struct fsxattr)) {
    struct fsxattr fa;
    std::memcpy(&fa, in_buf, sizeof(fa));
    const uint32_t known =
        FS_XFLAG_IMMUTABLE | FS_XFLAG_APPEND | FS_XFLAG_NODUMP | FS_XFLAG_NOATIME | FS_XFLAG_SYNC;
    if ((fa.fsx_xflags & ~known) || fa.fsx_extsize || fa.fsx_projid || fa.fsx_cowextsize) {
      fuse_reply_err(req, EOPNOTSUPP);
      return;
    }
    uint32_t old = 0;
    if (int e = Fs(req)->GetFlags(ino, &old)) {
      fuse_reply_err(req, e);
      return;
    }
    uint32_t attr_flags =
        old & ~(FS_IMMUTABLE_FL | FS_APPEND_FL | FS_NODUMP_FL | FS_NOATIME_FL | FS_SYNC_FL);
    if (fa.fsx_xflags & FS_XFLAG_IMMUTABLE) attr_flags |= FS_IMMUTABLE_FL;
    if (fa.fsx_xflags & FS_XFLAG_APPEND) attr_flags |= FS_APPEND_FL;
    if (fa.fsx_xflags & FS_XFLAG_NODUMP) attr_flags |= FS_NODUMP_FL;
    if (fa.fsx_xflags & FS_XFLAG_NOATIME) attr_flags |= FS_NOATIME_FL;
    if (fa.fsx_xflags & FS_XFLAG_SYNC) attr_flags |= FS_SYNC_FL;
    ReplySetFlags(req, ino, attr_flags);
    return;
  }
  if (cmd == STABLEFS_IOC_SYNC) {
    int e = Fs(req)->SyncFs();
    if (e != 0) {
      fuse_reply_err(req, e);
    } else {
      fuse_reply_ioctl(req, 0, nullptr, 0);
    }
    return;
  }
  fuse_reply_err(req, ENOTTY);
}

// After the shutdown ioctl (Filesystem::GoingDown) every request fails with EIO, as on a kernel
// filesystem that was shut down. Exceptions: forget and release only drop references and must
// still free what they hold; flush has nothing left to write; statfs and the stats ioctl keep
// answering (xfs and ext4 answer statfs too).
template <auto Op>
struct EioWhenShutDown;
template <typename... Args, void (*Op)(fuse_req_t, Args...)>
struct EioWhenShutDown<Op> {
  static void Call(fuse_req_t req, Args... args) {
    if (Fs(req)->is_shut_down()) {
      fuse_reply_err(req, EIO);
      return;
    }
    Op(req, args...);
  }
};

void SfsFlushOrNothing(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  if (Fs(req)->is_shut_down()) {
    fuse_reply_err(req, 0);
    return;
  }
  SfsFlush(req, ino, fi);
}

}  // namespace

const struct fuse_lowlevel_ops* StablefsLowlevelOps() {
  static const struct fuse_lowlevel_ops ops = [] {
    struct fuse_lowlevel_ops o;
    std::memset(&o, 0, sizeof(o));
    o.init = SfsInit;
    o.lookup = EioWhenShutDown<SfsLookup>::Call;
    o.forget = SfsForget;
    o.forget_multi = SfsForgetMulti;
    o.getattr = EioWhenShutDown<SfsGetattr>::Call;
    o.setattr = EioWhenShutDown<SfsSetattr>::Call;
    o.readlink = EioWhenShutDown<SfsReadlink>::Call;
    o.mknod = EioWhenShutDown<SfsMknod>::Call;
    o.mkdir = EioWhenShutDown<SfsMkdir>::Call;
    o.symlink = EioWhenShutDown<SfsSymlink>::Call;
    o.link = EioWhenShutDown<SfsLink>::Call;
    o.unlink = EioWhenShutDown<SfsUnlink>::Call;
    o.rmdir = EioWhenShutDown<SfsRmdir>::Call;
    o.rename = EioWhenShutDown<SfsRename>::Call;
    o.open = EioWhenShutDown<SfsOpen>::Call;
    o.create = EioWhenShutDown<SfsCreate>::Call;
    o.read = EioWhenShutDown<SfsRead>::Call;
    o.write = EioWhenShutDown<SfsWrite>::Call;
    o.flush = SfsFlushOrNothing;
    o.release = SfsRelease;
    o.fsync = EioWhenShutDown<SfsFsync>::Call;
    o.opendir = EioWhenShutDown<SfsOpendir>::Call;
    o.readdir = EioWhenShutDown<SfsReaddir>::Call;
    o.readdirplus = EioWhenShutDown<SfsReaddirplus>::Call;
    o.releasedir = SfsReleasedir;
    o.fsyncdir = EioWhenShutDown<SfsFsyncdir>::Call;
    o.statfs = SfsStatfs;
    o.setxattr = EioWhenShutDown<SfsSetxattr>::Call;
    o.getxattr = EioWhenShutDown<SfsGetxattr>::Call;
    o.listxattr = EioWhenShutDown<SfsListxattr>::Call;
    o.removexattr = EioWhenShutDown<SfsRemovexattr>::Call;
    o.fallocate = EioWhenShutDown<SfsFallocate>::Call;
    o.ioctl = SfsIoctl;
    o.lseek = EioWhenShutDown<SfsLseek>::Call;
    return o;
  }();
  return &ops;
}

}  // namespace stablefs
