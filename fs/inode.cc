// Inodes: loading and caching them (GetInode), their lifetimes (lookup counts, open handles,
// freeing, orphans), attributes (getattr, setattr) and the staged record changes every other
// file commits through (NamespaceTxn), as fs/ext4/inode.c holds the inode's life and setattr.
#include <linux/fs.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "fs/acl.h"
#include "fs/filesystem.h"
#include "fs/fs_internal.h"
#include "storage/log.h"

namespace stablefs {

namespace {

constexpr uint64_t kInoReserveChunk = 1024;

struct timespec ToTimespec(const Timespec& t) {
  struct timespec ts;
  ts.tv_sec = t.sec;
  ts.tv_nsec = t.nsec;
  return ts;
}

}  // namespace

// No lock here: nobody else can see the inode yet (GetInode holds its number busy).
Inode::Inode(uint64_t ino_arg, const InodeRecord& r, BlockStore* store)
    : ino(ino_arg), rec(r), store_(store), mode_(r.mode) {}

Inode::~Inode() = default;

void Inode::EncodeRecord(const InodeRecord& rec_in, uint64_t disk_size, uint64_t blocks,
                         WriteBatch* batch) {
  InodeRecord r = rec_in;
  if (IsReg()) {
    r.size = disk_size;
    r.blocks = blocks;
  }
  std::string value;
  r.EncodeTo(&value);
  batch->Put(Space::kInode, InodeKey(ino), value);
}

// Lock order meta_mu, then the page cache's mu_ (as->disk_size() takes it). Only regular files
// have an AddressSpace; every other file's size (a symlink's length) is its record's.
void Inode::AddRecordTo(const InodeRecord& r, WriteBatch* batch) {
  if (as == nullptr) return EncodeRecord(r, r.size, r.blocks, batch);
  EncodeRecord(r, as->disk_size(), as->blocks(), batch);
}

InodeRecord* NamespaceTxn::Edit(Inode* inode) {
  for (Staged& s : staged_) {
    if (s.inode == inode) return &s.rec;
  }
  staged_.push_back(Staged{inode, inode->rec});
  return &staged_.back().rec;
}

// The analysis cannot follow the contract that the caller holds each staged inode's meta_mu
// from its Edit on (the inodes are in a deque); AssertHeld states it where it is relied on.
Status NamespaceTxn::Commit(BlockStore* store) {
  WriteBatch b;
  for (Staged& s : staged_) {
    s.inode->meta_mu.AssertHeld();
    s.inode->AddRecordTo(s.rec, &b);
  }
  b.Append(batch_);  // batch_ outlives the write
  STABLEFS_RETURN_IF_ERROR(store->Write(b));
  for (Staged& s : staged_) {
    s.inode->meta_mu.AssertHeld();
    s.inode->rec = s.rec;
  }
  for (const auto& publish : publish_) publish();
  return Status::Ok();
}

// meta_mu is held from the record's encoding until the new size is published, so no other
// write of the record (a namespace or attribute change) can write the size the store had
// before this one.
Status Inode::CommitWithInode(uint64_t disk_size, uint64_t blocks, WriteBatch* batch,
                              const std::function<void()>& publish) {
  MutexLock lock(&meta_mu);
  EncodeRecord(rec, disk_size, blocks, batch);
  STABLEFS_RETURN_IF_ERROR(store_->Write(*batch));
  publish();
  return Status::Ok();
}

int Filesystem::CheckMutable(Inode* inode, bool append_ok) {
  MutexLock lock(&inode->meta_mu);
  if (inode->rec.flags & FS_IMMUTABLE_FL) return EPERM;
  if (!append_ok && (inode->rec.flags & FS_APPEND_FL)) return EPERM;
  return 0;
}

int Filesystem::GetInode(uint64_t ino, std::shared_ptr<Inode>* out) {
  {
    MutexLock lock(&table_mu_);
    for (;;) {
      if (busy_.count(ino) > 0) {  // being read or evicted by another thread
        if (busy_wait_hook_) busy_wait_hook_(ino);
        busy_cv_.Wait();
        continue;
      }
      auto it = inodes_.find(ino);
      if (it != inodes_.end()) {
        *out = it->second;
        return 0;
      }
      break;
    }
    busy_.insert(ino);  // I_NEW: the store is read without table_mu_
  }
  std::shared_ptr<Inode> inode;
  int err = 0;
  std::string v;
  Status s = store_->Get(Space::kInode, InodeKey(ino), &v);
  InodeRecord rec;
  if (s.IsNotFound()) {
    err = ENOENT;
  } else if (!s.ok()) {
    err = Errno(s);
  } else if (Status d = rec.DecodeFrom(v); !d.ok()) {
    Log(LogLevel::kError, "inode %llu: %s", static_cast<unsigned long long>(ino),
        d.ToString().c_str());
    err = EIO;
  } else {
    inode = std::make_shared<Inode>(ino, rec, store_);
    if (inode->IsReg()) {
      inode->as =
          std::make_unique<AddressSpace>(cache_.get(), ino, rec.size, rec.blocks, inode.get());
    }
  }
  MutexLock lock(&table_mu_);
  busy_.erase(ino);
  busy_cv_.SignalAll();
  if (err != 0) return err;
  // A create of this very number may have installed its inode meanwhile: there is one copy.
  auto [it, inserted] = inodes_.emplace(ino, inode);
  *out = it->second;
  return 0;
}

void Filesystem::TEST_SetBusyWaitHook(std::function<void(uint64_t)> hook) {
  MutexLock lock(&table_mu_);
  busy_wait_hook_ = std::move(hook);
}

void Filesystem::FillStat(Inode* inode, struct stat* st, struct timespec* btime) {
  *st = {};
  uint64_t size = 0, blocks = 0;
  if (inode->as) {
    size = inode->as->size();
    const uint64_t stored = inode->as->blocks();
    // Dirty pages not yet written back may or may not add blocks; count them, up to the size.
    const uint64_t estimate =
        std::min<uint64_t>(stored + inode->as->nrdirty(), (size + kBlockSize - 1) / kBlockSize);
    blocks = std::max(stored, estimate);
  }
  MutexLock lock(&inode->meta_mu);
  const InodeRecord r = inode->rec;
  st->st_ino = inode->ino;
  st->st_mode = r.mode;
  st->st_nlink = r.nlink;
  st->st_uid = r.uid;
  st->st_gid = r.gid;
  st->st_rdev = r.rdev;
  st->st_size = static_cast<off_t>(inode->as ? size : r.size);
  st->st_blocks = static_cast<blkcnt_t>(blocks * (kBlockSize / 512));
  st->st_blksize = kBlockSize;
  st->st_atim = ToTimespec(r.atime);
  st->st_mtim = ToTimespec(r.mtime);
  st->st_ctim = ToTimespec(r.ctime);
  if (btime != nullptr) *btime = ToTimespec(r.btime);
}

uint64_t Filesystem::AllocIno(NamespaceTxn* txn) {
  // A number handed out by a change that then failed is skipped, never reused: next_ino_ moves
  // on at once. Numbers at or past ino_reserved_ need a reservation in the store first: a chunk,
  // in the batch that uses the first number of it, so that no number is handed out twice even
  // across a crash; ino_reserved_ moves only when that batch has committed.
  const uint64_t ino = next_ino_++;
  if (ino >= ino_reserved_) {
    const uint64_t reserved = ino + kInoReserveChunk;
    std::string v;
    EncodeCounter(&v, reserved);
    txn->batch()->Put(Space::kMeta, kNextInoKey, v);
    txn->OnCommit([this, reserved] {
      ns_mu_.AssertHeld();  // commits run under ns_mu_
      ino_reserved_ = std::max(ino_reserved_, reserved);
    });
  }
  return ino;
}

void Filesystem::MaybeDrop(std::shared_ptr<Inode> inode, DisposeList* dispose) {
  if (inode->nlookup > 0 || inode->nopen > 0 || inode->ino == kRootIno || inode->dropped) return;
  inode->dropped = true;
  {
    MutexLock lock(&table_mu_);
    inodes_.erase(inode->ino);
    busy_.insert(inode->ino);  // I_FREEING
  }
  dispose->inodes_.push_back(std::move(inode));
}

void Filesystem::Dispose(DisposeList* dispose) {
  for (uint64_t ino : dispose->reclaim_) ReclaimFreed(ino);
  for (std::shared_ptr<Inode>& inode : dispose->inodes_) {
    bool unlinked;
    {
      MutexLock lock(&inode->meta_mu);
      unlinked = inode->rec.nlink == 0;
    }
    if (inode->as) {
      Status s = cache_->Evict(inode->as.get(), /*write_back=*/!unlinked);
      if (!s.ok()) {
        Log(LogLevel::kError, "evicting inode %llu: %s",
            static_cast<unsigned long long>(inode->ino), s.ToString().c_str());
      }
    }
    if (unlinked) {
      Status s = FreeInode(inode->ino);
      if (!s.ok()) {
        Log(LogLevel::kError, "freeing inode %llu: %s (its orphan record stays for the next mount)",
            static_cast<unsigned long long>(inode->ino), s.ToString().c_str());
      }
    }
    MutexLock lock(&table_mu_);
    busy_.erase(inode->ino);
    busy_cv_.SignalAll();
  }
}

Status Filesystem::StageFreeInode(uint64_t ino, WriteBatch* b) {
  uint64_t removed;
  STABLEFS_RETURN_IF_ERROR(store_->StageDeleteBlocks(ino, 0, UINT64_MAX, b, &removed));
  b->Delete(Space::kInode, InodeKey(ino));
  b->Delete(Space::kSymlink, InodeKey(ino));
  b->Delete(Space::kOrphan, InodeKey(ino));
  STABLEFS_RETURN_IF_ERROR(
      store_->StageDeleteRange(Space::kXattr, NamePrefixBegin(ino), NamePrefixEnd(ino), b));
  // A directory's ".." entry and cookies (an empty directory has no others).
  STABLEFS_RETURN_IF_ERROR(
      store_->StageDeleteRange(Space::kDirent, NamePrefixBegin(ino), NamePrefixEnd(ino), b));
  return store_->StageDeleteRange(Space::kDirCookie, NamePrefixBegin(ino), NamePrefixEnd(ino), b);
}

Status Filesystem::FreeInode(uint64_t ino) {
  WriteBatch b;
  STABLEFS_RETURN_IF_ERROR(StageFreeInode(ino, &b));
  STABLEFS_RETURN_IF_ERROR(store_->Write(b));
  ReclaimFreed(ino);
  return Status::Ok();
}

void Filesystem::ReclaimFreed(uint64_t ino) {
  // Short of space: less than the reserve again is usable.
  if (CheckSpace(store_->reserved_bytes(), /*accept=*/false) == 0) return;
  Status s = store_->ReclaimBlocks(ino);
  if (!s.ok()) {
    Log(LogLevel::kWarning, "reclaiming the space of inode %llu: %s",
        static_cast<unsigned long long>(ino), s.ToString().c_str());
  }
}

void Filesystem::Forget(uint64_t ino, uint64_t n) {
  DisposeList dispose(this);
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode;
  {
    MutexLock t(&table_mu_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return;
    inode = it->second;
  }
  inode->nlookup -= std::min(n, inode->nlookup);
  MaybeDrop(std::move(inode), &dispose);
}

int Filesystem::GetAttr(uint64_t ino, struct stat* st, struct timespec* btime) {
  std::shared_ptr<Inode> inode;
  if (int e = GetInode(ino, &inode)) return e;
  FillStat(inode.get(), st, btime);
  return 0;
}

int Filesystem::SetAttr(uint64_t ino, const struct stat& attr, int to_set, const Caller& c,
                        struct stat* out) {
  // The FUSE_SET_ATTR_* bits, spelled here to keep FUSE headers out of this file.
  constexpr int kMode = 1 << 0, kUid = 1 << 1, kGid = 1 << 2, kSize = 1 << 3, kAtime = 1 << 4,
                kMtime = 1 << 5, kAtimeNow = 1 << 7, kMtimeNow = 1 << 8, kCtime = 1 << 10;
  std::shared_ptr<Inode> inode;
  if (int e = GetInode(ino, &inode)) return e;
  // An append-only file keeps its size, owner, mode and explicit times, as notify_change()
  // enforces for local filesystems; setting its times to now is allowed.
  const bool explicit_times =
      ((to_set & kAtime) && !(to_set & kAtimeNow)) || ((to_set & kMtime) && !(to_set & kMtimeNow));
  const bool append_ok = !(to_set & (kSize | kMode | kUid | kGid)) && !explicit_times;
  if (int e = CheckMutable(inode.get(), append_ok)) return e;
  const Timespec now = Now();
  if (to_set & kSize) {
    if (inode->IsDir()) return EISDIR;
    if (!inode->IsReg()) return EINVAL;
    if (static_cast<uint64_t>(attr.st_size) > kMaxFileSize) return EFBIG;
    // The size commits first, with the record as it is; the times follow with the other
    // attributes below, so that neither is in memory before the store has it.
    MutexLock rw(&inode->rwsem);
    Status s = cache_->Truncate(inode->as.get(), static_cast<uint64_t>(attr.st_size));
    if (!s.ok()) return Errno(s);
  }
  (void)c;
  {
    MutexLock lock(&inode->meta_mu);
    NamespaceTxn txn;
    InodeRecord& r = *txn.Edit(inode.get());
    if (to_set & kMode) r.mode = (r.mode & S_IFMT) | (attr.st_mode & 07777);
    if (to_set & kUid) r.uid = attr.st_uid;
    if (to_set & kGid) r.gid = attr.st_gid;
    if ((to_set & kSetAttrKillSuidgid) && !inode->IsDir() && (to_set & (kUid | kGid | kSize))) {
      KillSuidgid(&r);
    }
    if (to_set & kAtimeNow) {
      r.atime = now;
    } else if (to_set & kAtime) {
      r.atime = Timespec{attr.st_atim.tv_sec, static_cast<uint32_t>(attr.st_atim.tv_nsec)};
    }
    if (to_set & kMtimeNow) {
      r.mtime = now;
    } else if (to_set & kMtime) {
      r.mtime = Timespec{attr.st_mtim.tv_sec, static_cast<uint32_t>(attr.st_mtim.tv_nsec)};
    } else if (to_set & kSize) {
      r.mtime = now;
    }
    if (to_set & kCtime) {
      r.ctime = Timespec{attr.st_ctim.tv_sec, static_cast<uint32_t>(attr.st_ctim.tv_nsec)};
    } else {
      r.ctime = now;
    }
    if (to_set & kMode) {
      // chmod also rewrites the access ACL's owner, mask (or group) and other entries.
      std::string v;
      Status gs = store_->Get(Space::kXattr, NameKey(ino, kAclAccess), &v);
      if (!gs.ok() && !gs.IsNotFound()) return Errno(gs);
      Acl acl;
      if (gs.ok() && acl.Decode(v)) {
        acl.Chmod(r.mode);
        txn.batch()->Put(Space::kXattr, NameKey(ino, kAclAccess), acl.Encode());
      }
    }
    if (Status ws = txn.Commit(store_); !ws.ok()) return Errno(ws);
  }
  FillStat(inode.get(), out);
  return 0;
}

}  // namespace stablefs
