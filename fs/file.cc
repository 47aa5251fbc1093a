// Open files: open, read (with the atime update), write, fsync, release, fallocate and
// SEEK_DATA/SEEK_HOLE, through the page cache, as fs/ext4/file.c.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "fs/filesystem.h"
#include "fs/fs_internal.h"
#include "storage/log.h"

namespace stablefs {

bool Filesystem::KillSuidgid(InodeRecord* r) {
  const uint32_t before = r->mode;
  r->mode &= ~S_ISUID;
  if (r->mode & S_IXGRP) r->mode &= ~S_ISGID;
  return r->mode != before;
}

int Filesystem::Open(uint64_t ino, int flags, std::unique_ptr<OpenFile>* file, bool kill_suidgid,
                     bool* killed_out) {
  if (killed_out != nullptr) *killed_out = false;
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode;
  if (int e = GetInode(ino, &inode)) return e;
  if (inode->IsDir() && (flags & O_ACCMODE) != O_RDONLY) return EISDIR;
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) {
    // Immutable: no writer. Append-only: only O_APPEND writers, and no O_TRUNC.
    if (int e = CheckMutable(inode.get(), (flags & O_APPEND) && !(flags & O_TRUNC))) return e;
  }
  if ((flags & O_TRUNC) && inode->as && (flags & O_ACCMODE) != O_RDONLY) {
    // libfuse asks for FUSE_CAP_ATOMIC_O_TRUNC: the kernel leaves O_TRUNC to the open.
    MutexLock rw(&inode->rwsem);
    const bool truncate = inode->as->size() != 0;
    if (truncate) {
      Status s = cache_->Truncate(inode->as.get(), 0);
      if (!s.ok()) return Errno(s);
    }
    // The times (and the mode) are staged and published after the store took them, as
    // SetAttr's.
    MutexLock meta(&inode->meta_mu);
    NamespaceTxn txn;
    InodeRecord* r = txn.Edit(inode.get());
    const bool killed = kill_suidgid && KillSuidgid(r);
    if (truncate || killed) {
      if (truncate) r->mtime = Now();
      r->ctime = Now();
      if (Status ts = txn.Commit(store_); !ts.ok()) return Errno(ts);
    }
    if (killed_out != nullptr) *killed_out = killed;
  }
  auto f = std::make_unique<OpenFile>();
  f->inode = inode;
  f->flags = flags;
  if (inode->as) f->wb_err = cache_->OpenCursor(inode->as.get());
  inode->nopen++;
  *file = std::move(f);
  return 0;
}

int Filesystem::Read(OpenFile* f, uint64_t off, size_t size, char* buf, size_t* done) {
  *done = 0;
  Inode* inode = f->inode.get();
  if (!inode->as) return inode->IsDir() ? EISDIR : EINVAL;
  // A request that reaches a block failing verification fails whole, even if blocks before it
  // were fine: for FUSE a short read means end of file, and the kernel would show zeros for the
  // rest. So a healthy block in the same kernel read-ahead window as a damaged one can read as
  // EIO too; never as wrong bytes.
  Status s = cache_->Read(inode->as.get(), off, size, buf, done);
  if (s.ok()) TouchAtime(inode, f->flags);
  return Errno(s);
}

bool Filesystem::AtimeNeedsUpdate(Inode* inode, const Timespec& now) {
  if (options_.atime == AtimePolicy::kNoatime || store_->read_only()) return false;
  if (inode->rec.flags & FS_NOATIME_FL) return false;
  if (options_.nodiratime && inode->IsDir()) return false;
  if (options_.atime == AtimePolicy::kStrict) return true;
  auto not_after = [](const Timespec& a, const Timespec& b) {
    return a.sec < b.sec || (a.sec == b.sec && a.nsec <= b.nsec);
  };
  const Timespec& atime = inode->rec.atime;
  if (not_after(atime, inode->rec.mtime) || not_after(atime, inode->rec.ctime)) return true;
  return now.sec - atime.sec >= 24 * 60 * 60;
}

bool Filesystem::AtimeDue(OpenFile* f) {
  if (f->flags & O_NOATIME) return false;
  Inode* inode = f->inode.get();
  MutexLock lock(&inode->meta_mu);
  return AtimeNeedsUpdate(inode, Now());
}

void Filesystem::TouchAtime(Inode* inode, int open_flags) {
  // Every read comes here: where no atime can change, no lock is taken.
  if ((open_flags & O_NOATIME) || options_.atime == AtimePolicy::kNoatime || store_->read_only()) {
    return;
  }
  MutexLock lock(&inode->meta_mu);
  const Timespec now = Now();
  if (!AtimeNeedsUpdate(inode, now)) return;
  NamespaceTxn txn;
  txn.Edit(inode)->atime = now;
  // As touch_atime, best effort: a failed update costs the caller nothing, and memory keeps the
  // time the store has.
  Status s = txn.Commit(store_);
  if (!s.ok() && !store_->is_shut_down()) {
    Log(LogLevel::kWarning, "atime of inode %llu: %s", static_cast<unsigned long long>(inode->ino),
        s.ToString().c_str());
  }
}

int Filesystem::Write(OpenFile* f, uint64_t off, const char* buf, size_t size, size_t* done,
                      bool kill_suidgid, bool* killed) {
  *done = 0;
  if (killed != nullptr) *killed = false;
  Inode* inode = f->inode.get();
  if (!inode->as) return inode->IsDir() ? EISDIR : EINVAL;
  if (off >= kMaxFileSize) return EFBIG;
  if (size > kMaxFileSize - off) size = kMaxFileSize - off;
  if (int e = CheckSpace(size)) return e;
  MutexLock rw(&inode->rwsem);
  if (int e = CheckMutable(inode, /*append_ok=*/off >= inode->as->size())) return e;
  if (kill_suidgid) {
    // Before the data, as file_remove_privs() runs before a local filesystem's write; the mode
    // is committed at once (a write's times travel with its data later).
    MutexLock meta(&inode->meta_mu);
    NamespaceTxn txn;
    InodeRecord* r = txn.Edit(inode);
    if (KillSuidgid(r)) {
      r->ctime = Now();
      if (Status ts = txn.Commit(store_); !ts.ok()) return Errno(ts);
      if (killed != nullptr) *killed = true;
    }
  }
  Status s = cache_->Write(inode->as.get(), off, buf, size, done);
  if (*done > 0) {
    MutexLock lock(&inode->meta_mu);
    inode->rec.mtime = inode->rec.ctime = Now();
  }
  if (!s.ok() && *done == 0) return Errno(s);
  if (f->flags & (O_SYNC | O_DSYNC)) {
    // O_SYNC: the write is durable before it is acknowledged (guarantee 3).
    if (Status fs = cache_->Fsync(inode->as.get(), &f->wb_err, off, off + *done); !fs.ok()) {
      return Errno(fs);
    }
  }
  return 0;
}

int Filesystem::Flush(OpenFile* f) {
  (void)f;
  return 0;
}

int Filesystem::Fsync(OpenFile* f, bool datasync) {
  (void)datasync;  // the inode record always travels with the data
  Inode* inode = f->inode.get();
  if (inode->as) return Errno(cache_->Fsync(inode->as.get(), &f->wb_err));
  return Errno(store_->Sync());
}

int Filesystem::Release(std::unique_ptr<OpenFile> f) {
  DisposeList dispose(this);
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode = std::move(f->inode);
  if (inode->nopen > 0) inode->nopen--;
  MaybeDrop(std::move(inode), &dispose);
  return 0;
}

int Filesystem::Fallocate(OpenFile* f, int mode, uint64_t off, uint64_t len, const Caller& caller) {
  Inode* inode = f->inode.get();
  if (!inode->as) return inode->IsDir() ? EISDIR : ENODEV;
  if (len == 0) return EINVAL;
  if (off > kMaxFileSize || len > kMaxFileSize - off) return EFBIG;
  const int supported = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if (mode & ~supported) return EOPNOTSUPP;
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) return EOPNOTSUPP;
  MutexLock rw(&inode->rwsem);
  if (int e = CheckMutable(inode, /*append_ok=*/!(mode & ~FALLOC_FL_KEEP_SIZE))) return e;
  AddressSpace* as = inode->as.get();
  const uint64_t first = off / kBlockSize, end = (off + len + kBlockSize - 1) / kBlockSize;
  if (!(mode & FALLOC_FL_PUNCH_HOLE)) {
    // A request for more than the store's file system has free fails now, as it would on a
    // local filesystem.
    uint64_t present = 0;
    Status s = store_->CountBlocks(inode->ino, first, end, &present);
    if (!s.ok()) return Errno(s);
    if (int e = CheckSpace((end - first - present) * kBlockSize)) return e;
  }
  // Allocation makes the blocks preallocated block-map entries, counted in st_blocks, reading as
  // zeros; ZERO_RANGE zeroes the range and leaves it allocated so, as ext4 and xfs do, in one
  // commit per chunk. The store's space is taken when data is written over them (an LSM store
  // writes a block anew each time, so no space can be set aside for it in advance).
  Status s;
  if (mode & FALLOC_FL_PUNCH_HOLE) {
    s = cache_->PunchHole(as, off, len);
  } else if (mode & FALLOC_FL_ZERO_RANGE) {
    s = cache_->ZeroRangeAllocated(as, off, len);
  } else {
    s = cache_->Preallocate(as, first, end);
  }
  if (!s.ok()) return Errno(s);
  if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > as->size()) {
    s = cache_->Truncate(as, off + len);
    if (!s.ok()) return Errno(s);
  }
  MutexLock lock(&inode->meta_mu);
  NamespaceTxn txn;
  InodeRecord* r = txn.Edit(inode);
  r->mtime = r->ctime = Now();
  if (caller.uid != 0) {
    r->mode &= ~S_ISUID;
    if ((r->mode & S_ISGID) && ((r->mode & S_IXGRP) || !caller.InGroup(r->gid))) {
      r->mode &= ~S_ISGID;
    }
  }
  return Errno(txn.Commit(store_));
}

int Filesystem::SeekDataHole(OpenFile* f, uint64_t off, int whence, uint64_t* result) {
  Inode* inode = f->inode.get();
  if (!inode->as) return EINVAL;
  AddressSpace* as = inode->as.get();
  const uint64_t size = as->size();
  if (off >= size) return ENXIO;
  const uint64_t end = (size + kBlockSize - 1) / kBlockSize;
  const uint64_t first = off / kBlockSize;
  // Data blocks from off on, in order: the store's, merged with the pages it may not have yet
  // (dirty or under writeback), collected first so that a page finishing writeback in between
  // is found in the store (generic/286).
  std::vector<uint64_t> dirty = cache_->UnstoredIndexes(as, first, end);
  std::vector<uint64_t> stored;
  uint64_t expect = first;  // for SEEK_HOLE: the next index that would continue the data run
  size_t di = 0;
  // Preallocated, unwritten blocks are holes here, as unwritten extents are on ext4 and xfs.
  Status s = store_->ScanBlockMap(
      inode->ino, first, end,
      [&](uint64_t index) {
        stored.push_back(index);
        return whence == SEEK_DATA ? false : stored.size() < 4096;
      },
      /*written_only=*/true);
  if (!s.ok()) return Errno(s);
  if (whence == SEEK_DATA) {
    uint64_t best = end;
    if (!stored.empty()) best = stored.front();
    if (!dirty.empty()) best = std::min(best, dirty.front());
    if (best >= end) return ENXIO;
    *result = std::max(off, best * kBlockSize);
    return 0;
  }
  // SEEK_HOLE: walk the merged runs until an index is missing from both.
  size_t si = 0;
  for (;;) {
    while (si < stored.size() && stored[si] < expect) si++;
    while (di < dirty.size() && dirty[di] < expect) di++;
    const bool in_stored = si < stored.size() && stored[si] == expect;
    const bool in_dirty = di < dirty.size() && dirty[di] == expect;
    if (!in_stored && !in_dirty) break;
    if (in_stored && si + 1 == stored.size() && stored.size() >= 4096) {
      // The scan was cut short: continue it from here.
      stored.clear();
      si = 0;
      s = store_->ScanBlockMap(
          inode->ino, expect, end,
          [&](uint64_t index) {
            stored.push_back(index);
            return stored.size() < 4096;
          },
          /*written_only=*/true);
      if (!s.ok()) return Errno(s);
    }
    expect++;
  }
  *result = std::min(size, std::max(off, expect * kBlockSize));
  return 0;
}

}  // namespace stablefs
