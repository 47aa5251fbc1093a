// Names: lookup, create, mknod, mkdir, symlink, link, unlink, rmdir and rename, each one
// NamespaceTxn (a single store batch), as fs/ext4/namei.c.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>

#include <cerrno>
#include <string>

#include "fs/acl.h"
#include "fs/filesystem.h"
#include "fs/fs_internal.h"
#include "storage/log.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif

namespace stablefs {

namespace {

int CheckName(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    return EINVAL;
  }
  if (name.size() > kNameMax) return ENAMETOOLONG;
  return 0;
}

}  // namespace

int Filesystem::CheckNewEntry(uint64_t dir, std::string_view name, std::shared_ptr<Inode>* out) {
  if (int e = GetInode(dir, out)) return e;
  if (!(*out)->IsDir()) return ENOTDIR;
  DirentRecord existing;
  int e = FindEntry(dir, name, &existing);
  if (e == 0) return EEXIST;
  return e == ENOENT ? 0 : e;
}

int Filesystem::CheckEmptyDir(uint64_t dir) {
  bool empty = true;
  Status s = store_->Scan(Space::kDirCookie, NamePrefixBegin(dir), NamePrefixEnd(dir),
                          [&](std::string_view, std::string_view) {
                            empty = false;
                            return false;
                          });
  if (!s.ok()) return Errno(s);
  return empty ? 0 : ENOTEMPTY;
}

int Filesystem::FindEntry(uint64_t dir, std::string_view name, DirentRecord* rec) {
  std::string v;
  Status s = store_->Get(Space::kDirent, NameKey(dir, name), &v);
  if (s.IsNotFound()) return ENOENT;
  if (!s.ok()) return Errno(s);
  s = rec->DecodeFrom(v);
  if (!s.ok()) {
    Log(LogLevel::kError, "directory %llu entry '%.*s': %s", static_cast<unsigned long long>(dir),
        static_cast<int>(name.size()), name.data(), s.ToString().c_str());
    return EIO;
  }
  return 0;
}

void Filesystem::DropLink(Inode* inode, NamespaceTxn* txn, bool* free_now) {
  InodeRecord* rec = txn->Edit(inode);
  if (inode->IsDir()) {
    rec->nlink = 0;
  } else if (rec->nlink > 0) {
    rec->nlink--;
  }
  rec->ctime = Now();
  *free_now = false;
  if (rec->nlink > 0) return;
  // No name left. If the kernel or an open file still holds it, it lives on as an orphan until
  // the last of them goes (MaybeDrop); the orphan record lets the next mount reclaim it after a
  // crash.
  txn->batch()->Put(Space::kOrphan, InodeKey(inode->ino), "");
  *free_now = inode->nlookup == 0 && inode->nopen == 0;
}

int Filesystem::Lookup(uint64_t parent, std::string_view name, struct stat* st) {
  MutexLock lock(&ns_mu_);
  uint64_t ino;
  if (name == ".") {
    ino = parent;
  } else {
    if (int e = CheckName(name)) return e;
    DirentRecord d;
    if (int e = FindEntry(parent, name, &d)) {
      if (e == ENOENT && name == ".." && parent == kRootIno) {
        ino = kRootIno;
      } else {
        return e;
      }
    } else {
      ino = d.ino;
    }
  }
  std::shared_ptr<Inode> inode;
  if (int e = GetInode(ino, &inode)) return e;
  inode->nlookup++;
  FillStat(inode.get(), st);
  return 0;
}

int Filesystem::CreateNode(uint64_t parent_ino, std::string_view name, mode_t mode, dev_t rdev,
                           std::string_view symlink, const Caller& c, std::shared_ptr<Inode>* out,
                           bool nameless) {
  const bool named = !nameless;
  std::shared_ptr<Inode> parent;
  if (named) {
    if (int e = CheckName(name)) return e;
    if (name == "." || name == "..") return EEXIST;
    if (int e = CheckNewEntry(parent_ino, name, &parent)) return e;
  } else {
    if (!S_ISREG(mode)) return EINVAL;
    if (int e = GetInode(parent_ino, &parent)) return e;
    if (!parent->IsDir()) return ENOTDIR;
  }
  if (int me = CheckMutable(parent.get(), /*append_ok=*/true)) return me;
  if (int e = CheckSpace(kBlockSize)) return e;

  NamespaceTxn txn;
  WriteBatch& b = *txn.batch();
  // The parent's default ACL, masked by the create mode, becomes the new inode's access ACL (and
  // a directory's default ACL too); without one the umask applies (posix_acl_create).
  std::string default_acl;
  Acl inherited;
  bool has_default = false;
  if (!S_ISLNK(mode)) {
    Status ds = store_->Get(Space::kXattr, NameKey(parent_ino, kAclDefault), &default_acl);
    if (!ds.ok() && !ds.IsNotFound()) return Errno(ds);
    has_default = ds.ok() && inherited.Decode(default_acl);
  }
  if (has_default) {
    inherited.CreateMasq(&mode);
  } else if (!S_ISLNK(mode)) {
    mode &= ~(c.umask & 0777);
  }
  const uint64_t ino = AllocIno(&txn);
  const Timespec now = Now();
  InodeRecord rec;
  rec.mode = mode;
  rec.uid = c.uid;
  rec.gid = c.gid;
  rec.nlink = !named ? 0 : S_ISDIR(mode) ? 2 : 1;
  rec.rdev = rdev;
  rec.generation = 1;
  rec.atime = rec.mtime = rec.ctime = rec.btime = now;
  if (S_ISDIR(mode)) rec.next_cookie = kFirstDirCookie;
  if (S_ISLNK(mode)) rec.size = symlink.size();

  MutexLock plock(&parent->meta_mu);
  if (parent->rec.mode & S_ISGID) {  // BSD group semantics under a setgid directory
    rec.gid = parent->rec.gid;
    if (S_ISDIR(mode)) rec.mode |= S_ISGID;
  }
  std::string v;
  rec.EncodeTo(&v);
  b.Put(Space::kInode, InodeKey(ino), v);
  if (named) {
    InodeRecord* prec = txn.Edit(parent.get());
    const uint64_t cookie = prec->next_cookie++;
    prec->mtime = prec->ctime = now;
    if (S_ISDIR(mode)) prec->nlink++;
    v.clear();
    DirentRecord{.ino = ino, .type = DirentTypeOf(mode), .cookie = cookie}.EncodeTo(&v);
    b.Put(Space::kDirent, NameKey(parent_ino, name), v);
    b.Put(Space::kDirCookie, CookieKey(parent_ino, cookie), name);
  } else {
    // Nameless from birth: the next mount reclaims it if it is never linked (DropLink's rule).
    b.Put(Space::kOrphan, InodeKey(ino), "");
  }
  if (S_ISDIR(mode)) {
    v.clear();
    DirentRecord{.ino = parent_ino, .type = DT_DIR, .cookie = 2}.EncodeTo(&v);
    b.Put(Space::kDirent, NameKey(ino, ".."), v);
  }
  if (S_ISLNK(mode)) b.Put(Space::kSymlink, InodeKey(ino), symlink);
  if (has_default) {
    mode_t m = rec.mode;
    if (!inherited.EquivMode(&m))
      b.Put(Space::kXattr, NameKey(ino, kAclAccess), inherited.Encode());
    if (S_ISDIR(mode)) b.Put(Space::kXattr, NameKey(ino, kAclDefault), default_acl);
  }
  if (Status s = txn.Commit(store_); !s.ok()) return Errno(s);
  auto inode = std::make_shared<Inode>(ino, rec, store_);
  if (inode->IsReg()) {
    inode->as = std::make_unique<AddressSpace>(cache_.get(), ino, 0, 0, inode.get());
  }
  {
    MutexLock t(&table_mu_);
    inodes_[ino] = inode;
  }
  *out = std::move(inode);
  return 0;
}

int Filesystem::Mknod(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                      const Caller& c, struct stat* st) {
  const mode_t type = mode & S_IFMT;
  if (type == 0) mode |= S_IFREG;
  if (type == S_IFDIR || type == S_IFLNK) return EINVAL;
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode;
  if (int e = CreateNode(parent, name, mode, rdev, "", c, &inode)) return e;
  inode->nlookup++;
  FillStat(inode.get(), st);
  return 0;
}

int Filesystem::Mkdir(uint64_t parent, std::string_view name, mode_t mode, const Caller& c,
                      struct stat* st) {
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode;
  if (int e = CreateNode(parent, name, S_IFDIR | (mode & 07777), 0, "", c, &inode)) return e;
  inode->nlookup++;
  FillStat(inode.get(), st);
  return 0;
}

int Filesystem::Symlink(std::string_view target, uint64_t parent, std::string_view name,
                        const Caller& c, struct stat* st) {
  if (target.empty()) return ENOENT;
  if (target.size() >= kBlockSize) return ENAMETOOLONG;
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode;
  if (int e = CreateNode(parent, name, S_IFLNK | 0777, 0, target, c, &inode)) return e;
  inode->nlookup++;
  FillStat(inode.get(), st);
  return 0;
}

int Filesystem::Readlink(uint64_t ino, std::string* target) {
  Status s = store_->Get(Space::kSymlink, InodeKey(ino), target);
  if (s.IsNotFound()) return EINVAL;
  return Errno(s);
}

int Filesystem::Link(uint64_t ino, uint64_t new_parent, std::string_view new_name,
                     struct stat* st) {
  if (int e = CheckName(new_name)) return e;
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode, parent;
  if (int e = GetInode(ino, &inode)) return e;
  if (inode->IsDir()) return EPERM;
  if (int e = CheckNewEntry(new_parent, new_name, &parent)) return e;
  if (int me = CheckMutable(inode.get(), /*append_ok=*/false)) return me;
  if (int me = CheckMutable(parent.get(), /*append_ok=*/true)) return me;
  if (int e = CheckSpace(kBlockSize)) return e;
  {
    const Timespec now = Now();
    NamespaceTxn txn;
    WriteBatch& b = *txn.batch();
    MutexLock plock(&parent->meta_mu);
    MutexLock ilock(&inode->meta_mu);
    // An unlinked open file has no name to link to; an O_TMPFILE inode gets its first one
    // (vfs_link's I_LINKABLE rule) and stops being an orphan.
    const bool first_name = inode->rec.nlink == 0;
    if (first_name && !inode->linkable) return ENOENT;
    if (inode->rec.nlink >= 65000) return EMLINK;
    if (first_name) {
      b.Delete(Space::kOrphan, InodeKey(ino));
      txn.OnCommit([this, inode] {
        ns_mu_.AssertHeld();  // commits run under ns_mu_
        inode->linkable = false;
      });
    }
    InodeRecord* prec = txn.Edit(parent.get());
    InodeRecord* irec = txn.Edit(inode.get());
    const uint64_t cookie = prec->next_cookie++;
    prec->mtime = prec->ctime = now;
    irec->nlink++;
    irec->ctime = now;
    std::string v;
    DirentRecord{.ino = ino, .type = DirentTypeOf(inode->rec.mode), .cookie = cookie}.EncodeTo(&v);
    b.Put(Space::kDirent, NameKey(new_parent, new_name), v);
    b.Put(Space::kDirCookie, CookieKey(new_parent, cookie), new_name);
    if (Status s = txn.Commit(store_); !s.ok()) return Errno(s);
  }
  inode->nlookup++;
  FillStat(inode.get(), st);
  return 0;
}

int Filesystem::RemoveEntry(uint64_t parent_ino, std::string_view name, bool want_dir,
                            DisposeList* dispose) {
  if (int e = CheckName(name)) return e;
  if (name == ".") return EINVAL;
  if (name == "..") return ENOTEMPTY;
  std::shared_ptr<Inode> parent, child;
  if (int e = GetInode(parent_ino, &parent)) return e;
  if (!parent->IsDir()) return ENOTDIR;
  DirentRecord d;
  if (int e = FindEntry(parent_ino, name, &d)) return e;
  if (int e = GetInode(d.ino, &child)) return e;
  if (int e = CheckMutable(parent.get(), /*append_ok=*/false)) return e;
  if (int e = CheckMutable(child.get(), /*append_ok=*/false)) return e;
  if (want_dir) {
    if (!child->IsDir()) return ENOTDIR;
    if (int e = CheckEmptyDir(d.ino)) return e;
  } else if (child->IsDir()) {
    return EISDIR;
  }
  NamespaceTxn txn;
  txn.batch()->Delete(Space::kDirent, NameKey(parent_ino, name));
  txn.batch()->Delete(Space::kDirCookie, CookieKey(parent_ino, d.cookie));
  bool free_now = false;
  {
    MutexLock plock(&parent->meta_mu);
    MutexLock child_lock(&child->meta_mu);
    InodeRecord* prec = txn.Edit(parent.get());
    const Timespec now = Now();
    prec->mtime = prec->ctime = now;
    if (want_dir && prec->nlink > 2) prec->nlink--;
    DropLink(child.get(), &txn, &free_now);
    if (free_now) {
      // Nobody holds it: everything it owns goes in the same batch (after its record, so the
      // deletion wins).
      if (Status fs = StageFreeInode(d.ino, txn.batch()); !fs.ok()) return Errno(fs);
    }
    if (Status s = txn.Commit(store_); !s.ok()) return Errno(s);
  }
  if (free_now) {
    dispose->reclaim_.push_back(d.ino);
    MaybeDrop(child, dispose);
  }
  return 0;
}

int Filesystem::Unlink(uint64_t parent, std::string_view name) {
  DisposeList dispose(this);
  MutexLock lock(&ns_mu_);
  return RemoveEntry(parent, name, /*want_dir=*/false, &dispose);
}

int Filesystem::Rmdir(uint64_t parent, std::string_view name) {
  DisposeList dispose(this);
  MutexLock lock(&ns_mu_);
  return RemoveEntry(parent, name, /*want_dir=*/true, &dispose);
}

// The analysis cannot follow the second parent's lock, taken only when the parents differ (as
// lock_two_nondirectories does), nor the replaced inode's, taken only when there is one; the
// locking is checked by hand: parent, then new parent if it is another inode, then the source,
// then the replaced or exchanged inode, all held until the change commits.
int Filesystem::Rename(uint64_t parent_ino, std::string_view name, uint64_t new_parent_ino,
                       std::string_view new_name, unsigned flags, const Caller& caller) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) return EINVAL;
  if ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT))) return EINVAL;
  if (int e = CheckName(name)) return e;
  if (int e = CheckName(new_name)) return e;
  if (name == "." || name == ".." || new_name == "." || new_name == "..") return EBUSY;
  DisposeList dispose(this);
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> parent, new_parent, src, dst;
  if (int e = GetInode(parent_ino, &parent)) return e;
  if (int e = GetInode(new_parent_ino, &new_parent)) return e;
  if (!parent->IsDir() || !new_parent->IsDir()) return ENOTDIR;
  DirentRecord sd, dd;
  if (int e = FindEntry(parent_ino, name, &sd)) return e;
  if (int e = GetInode(sd.ino, &src)) return e;
  int de = FindEntry(new_parent_ino, new_name, &dd);
  if (de != 0 && de != ENOENT) return de;
  const bool dst_exists = de == 0;
  if (dst_exists) {
    if (int e = GetInode(dd.ino, &dst)) return e;
  }
  if (int e = CheckMutable(parent.get(), false)) return e;
  if (int e = CheckMutable(new_parent.get(), !dst_exists)) return e;
  if (int e = CheckMutable(src.get(), false)) return e;
  if (dst_exists) {
    if (int e = CheckMutable(dst.get(), false)) return e;
  }
  if (flags & RENAME_NOREPLACE && dst_exists) return EEXIST;
  if (flags & RENAME_EXCHANGE && !dst_exists) return ENOENT;
  if (dst_exists && dd.ino == sd.ino) return 0;  // two names of one inode: nothing to do
  // A directory cannot move into its own subtree.
  auto is_ancestor = [&](uint64_t dir_ino, uint64_t of) -> int {
    uint64_t cur = of;
    for (int depth = 0; depth < 4096 && cur != kRootIno; depth++) {
      if (cur == dir_ino) return EINVAL;
      DirentRecord up;
      if (int e = FindEntry(cur, "..", &up)) return e == ENOENT ? 0 : e;
      cur = up.ino;
    }
    return cur == dir_ino ? EINVAL : 0;
  };
  if (src->IsDir() && parent_ino != new_parent_ino) {
    if (int e = is_ancestor(sd.ino, new_parent_ino)) return e;
  }
  if ((flags & RENAME_EXCHANGE) && dst->IsDir() && parent_ino != new_parent_ino) {
    if (int e = is_ancestor(dd.ino, parent_ino)) return e;
  }
  if (dst_exists && !(flags & RENAME_EXCHANGE)) {
    if (src->IsDir() && !dst->IsDir()) return ENOTDIR;
    if (!src->IsDir() && dst->IsDir()) return EISDIR;
    if (dst->IsDir()) {
      if (int e = CheckEmptyDir(dd.ino)) return e;
    }
  }

  const Timespec now = Now();
  NamespaceTxn txn;
  WriteBatch& b = *txn.batch();
  std::string v;
  auto put_dirent = [&](uint64_t dir, std::string_view n, uint64_t ino, uint32_t mode,
                        uint64_t cookie) {
    v.clear();
    DirentRecord{.ino = ino, .type = DirentTypeOf(mode), .cookie = cookie}.EncodeTo(&v);
    b.Put(Space::kDirent, NameKey(dir, n), v);
  };
  auto set_dotdot = [&](uint64_t dir, uint64_t up) {
    v.clear();
    DirentRecord{.ino = up, .type = DT_DIR, .cookie = 2}.EncodeTo(&v);
    b.Put(Space::kDirent, NameKey(dir, ".."), v);
  };
  bool free_dst = false;
  {
    // Every inode whose record changes is locked until the commit: the parents (one lock if they
    // are one directory), then the source and the replaced or exchanged inode (distinct from
    // each other and from the parents: checked above).
    MutexLockTwo plock(&parent->meta_mu, &new_parent->meta_mu);
    MutexLock slock(&src->meta_mu);
    MutexLockIf dlock(dst ? &dst->meta_mu : nullptr);
    InodeRecord* prec = txn.Edit(parent.get());
    InodeRecord* nprec = txn.Edit(new_parent.get());  // prec itself if one directory
    InodeRecord* srec = txn.Edit(src.get());
    const uint32_t src_mode = srec->mode;
    srec->ctime = now;
    if (flags & RENAME_EXCHANGE) {
      dst->meta_mu.AssertHeld();  // dlock: dst exists for an exchange
      InodeRecord* drec = txn.Edit(dst.get());
      const uint32_t dst_mode = drec->mode;
      drec->ctime = now;
      put_dirent(parent_ino, name, dd.ino, dst_mode, sd.cookie);
      put_dirent(new_parent_ino, new_name, sd.ino, src_mode, dd.cookie);
      if (parent_ino != new_parent_ino) {
        if (S_ISDIR(src_mode)) set_dotdot(sd.ino, new_parent_ino);
        if (S_ISDIR(dst_mode)) set_dotdot(dd.ino, parent_ino);
        if (S_ISDIR(src_mode) != S_ISDIR(dst_mode)) {
          if (S_ISDIR(src_mode)) {
            prec->nlink--;
            nprec->nlink++;
          } else {
            prec->nlink++;
            nprec->nlink--;
          }
        }
      }
    } else {
      uint64_t cookie;
      if (dst_exists) {
        cookie = dd.cookie;  // the new name takes the replaced entry's place in readdir order
        if (dst->IsDir() && nprec->nlink > 2) nprec->nlink--;
        dst->meta_mu.AssertHeld();  // dlock
        DropLink(dst.get(), &txn, &free_dst);
        if (free_dst) {
          if (Status fs = StageFreeInode(dd.ino, &b); !fs.ok()) return Errno(fs);
        }
      } else if (parent_ino == new_parent_ino) {
        // Renamed within its directory, the entry keeps its place in readdir order; a new
        // cookie would let a reader meet it again after every rename (generic/736).
        cookie = sd.cookie;
      } else {
        cookie = nprec->next_cookie++;
      }
      b.Delete(Space::kDirent, NameKey(parent_ino, name));
      if (cookie != sd.cookie || parent_ino != new_parent_ino) {
        b.Delete(Space::kDirCookie, CookieKey(parent_ino, sd.cookie));
      }
      put_dirent(new_parent_ino, new_name, sd.ino, src_mode, cookie);
      b.Put(Space::kDirCookie, CookieKey(new_parent_ino, cookie), new_name);
      if (S_ISDIR(src_mode) && parent_ino != new_parent_ino) {
        set_dotdot(sd.ino, new_parent_ino);
        prec->nlink--;
        nprec->nlink++;
      }
    }
    if (flags & RENAME_WHITEOUT) {
      // The old name becomes a whiteout, a 0:0 character device, in the same batch (overlayfs
      // uses it to hide a lower file).
      InodeRecord w;
      w.mode = S_IFCHR;
      w.uid = caller.uid;
      w.gid = caller.gid;
      w.nlink = 1;
      w.generation = 1;
      w.atime = w.mtime = w.ctime = w.btime = now;
      const uint64_t wino = AllocIno(&txn);
      const uint64_t wcookie = prec->next_cookie++;
      std::string wv;
      w.EncodeTo(&wv);
      b.Put(Space::kInode, InodeKey(wino), wv);
      put_dirent(parent_ino, name, wino, S_IFCHR, wcookie);
      b.Put(Space::kDirCookie, CookieKey(parent_ino, wcookie), name);
    }
    prec->mtime = prec->ctime = now;
    nprec->mtime = nprec->ctime = now;
    if (Status s = txn.Commit(store_); !s.ok()) return Errno(s);
  }
  if (free_dst) {
    dispose.reclaim_.push_back(dd.ino);
    MaybeDrop(dst, &dispose);
  }
  return 0;
}

int Filesystem::Create(uint64_t parent, std::string_view name, mode_t mode, int flags,
                       const Caller& c, struct stat* st, std::unique_ptr<OpenFile>* file) {
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode;
  if (int e = CreateNode(parent, name, S_IFREG | (mode & 07777), 0, "", c, &inode)) return e;
  return OpenNew(std::move(inode), flags, st, file);
}

int Filesystem::Tmpfile(uint64_t parent, mode_t mode, int flags, const Caller& c, struct stat* st,
                        std::unique_ptr<OpenFile>* file) {
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode;
  if (int e = CreateNode(parent, "", S_IFREG | (mode & 07777), 0, "", c, &inode,
                         /*nameless=*/true))
    return e;
  inode->linkable = !(flags & O_EXCL);
  return OpenNew(std::move(inode), flags, st, file);
}

int Filesystem::OpenNew(std::shared_ptr<Inode> inode, int flags, struct stat* st,
                        std::unique_ptr<OpenFile>* file) {
  inode->nlookup++;
  inode->nopen++;
  auto f = std::make_unique<OpenFile>();
  f->inode = inode;
  f->flags = flags;
  f->wb_err = cache_->OpenCursor(inode->as.get());
  FillStat(inode.get(), st);
  *file = std::move(f);
  return 0;
}

}  // namespace stablefs
