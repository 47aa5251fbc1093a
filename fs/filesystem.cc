// Filesystem: namespace operations as single store batches, file I/O through the page cache,
// inode lifetimes (lookup counts, open handles, orphans), extended attributes, statfs.
#include "fs/filesystem.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/xattr.h>
#include <time.h>

#include <algorithm>
#include <cassert>
#include <cerrno>

#include "fs/acl.h"
#include "fs/errno_map.h"
#include "fs/log.h"

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

constexpr uint64_t kInoReserveChunk = 1024;

Timespec Now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

constexpr uint32_t kSupportedFlags =
    FS_IMMUTABLE_FL | FS_APPEND_FL | FS_NODUMP_FL | FS_NOATIME_FL | FS_SYNC_FL | FS_DIRSYNC_FL;

int CheckName(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    return EINVAL;
  }
  if (name.size() > kNameMax) return ENAMETOOLONG;
  return 0;
}

int Errno(const Status& s) { return ErrnoFromStatus(s); }

struct timespec ToTimespec(const Timespec& t) {
  struct timespec ts;
  ts.tv_sec = t.sec;
  ts.tv_nsec = t.nsec;
  return ts;
}

}  // namespace

// ---- Inode ----

// No lock here: nobody else can see the inode yet, and GetInode calls this under table_mu_,
// which is taken after meta_mu everywhere else (the lock order in filesystem.h).
Inode::Inode(uint64_t ino_arg, const InodeRecord& r, BlockStore* store)
    : ino(ino_arg),
      rec(r),
      store_(store),
      mode_(r.mode),
      disk_size_(r.size),
      disk_blocks_(r.blocks) {}

Inode::~Inode() = default;

void Inode::AddRecordTo(const InodeRecord& rec_in, WriteBatch* batch) {
  InodeRecord r = rec_in;
  if (IsReg()) {
    r.size = disk_size_;
    r.blocks = disk_blocks_;
  }
  std::string value;
  r.EncodeTo(&value);
  batch->Put(Space::kInode, InodeKey(ino), value);
}

// ---- NamespaceTxn ----

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

Status Inode::CommitWithInode(uint64_t disk_size, uint64_t blocks, WriteBatch* batch) {
  MutexLock lock(&meta_mu);
  const uint64_t old_size = disk_size_, old_blocks = disk_blocks_;
  disk_size_ = disk_size;
  disk_blocks_ = blocks;
  AddRecordTo(batch);
  Status s = store_->Write(*batch);
  if (!s.ok()) {
    disk_size_ = old_size;
    disk_blocks_ = old_blocks;
  }
  return s;
}

int Filesystem::CheckMutable(Inode* inode, bool append_ok) {
  MutexLock lock(&inode->meta_mu);
  if (inode->rec.flags & FS_IMMUTABLE_FL) return EPERM;
  if (!append_ok && (inode->rec.flags & FS_APPEND_FL)) return EPERM;
  return 0;
}

int Filesystem::GetFlags(uint64_t ino, uint32_t* flags) {
  std::shared_ptr<Inode> inode;
  if (int e = GetInode(ino, &inode)) return e;
  MutexLock lock(&inode->meta_mu);
  *flags = inode->rec.flags;
  return 0;
}

int Filesystem::SetFlags(uint64_t ino, uint32_t flags) {
  if (flags & ~kSupportedFlags) return EOPNOTSUPP;
  std::shared_ptr<Inode> inode;
  if (int e = GetInode(ino, &inode)) return e;
  MutexLock lock(&inode->meta_mu);
  NamespaceTxn txn;
  InodeRecord* r = txn.Edit(inode.get());
  r->flags = flags;
  r->ctime = Now();
  return Errno(txn.Commit(store_));
}

// ---- Opening and closing ----

Filesystem::Filesystem(BlockStore* store, const FilesystemOptions& options)
    : store_(store), options_(options) {}

Status Filesystem::Open(BlockStore* store, const FilesystemOptions& options,
                        std::unique_ptr<Filesystem>* out) {
  std::unique_ptr<Filesystem> fs(new Filesystem(store, options));
  STABLEFS_RETURN_IF_ERROR(PageCache::Create(store, options.cache, &fs->cache_));
  std::string v;
  STABLEFS_RETURN_IF_ERROR(store->Get(Space::kMeta, kNextInoKey, &v).WithContext("next_ino"));
  uint64_t next;
  STABLEFS_RETURN_IF_ERROR(DecodeCounter(v, &next));
  {
    MutexLock lock(&fs->ns_mu_);
    fs->next_ino_ = fs->ino_reserved_ = std::max(next, kFirstFreeIno);
  }
  // A read-only store keeps its orphans for the next read-write mount.
  if (!store->read_only()) STABLEFS_RETURN_IF_ERROR(fs->ReclaimOrphans());
  *out = std::move(fs);
  return Status::Ok();
}

Status Filesystem::ReclaimOrphans() {
  std::vector<uint64_t> orphans;
  STABLEFS_RETURN_IF_ERROR(
      store_->Scan(Space::kOrphan, "", "", [&](std::string_view k, std::string_view) {
        uint64_t ino;
        if (ParseInodeKey(k, &ino)) orphans.push_back(ino);
        return true;
      }));
  for (uint64_t ino : orphans) {
    Log(LogLevel::kInfo, "reclaiming inode %llu, unlinked while open before a crash",
        static_cast<unsigned long long>(ino));
    STABLEFS_RETURN_IF_ERROR(FreeInode(ino));
  }
  return Status::Ok();
}

Status Filesystem::Shutdown() {
  if (!cache_) return Status::Ok();
  // After the shutdown ioctl nothing more may reach the store: dirty pages are dropped.
  const bool write_back = !is_shut_down();
  Status s = write_back ? cache_->SyncAll() : Status::Ok();
  std::map<uint64_t, std::shared_ptr<Inode>> inodes;
  {
    MutexLock lock(&table_mu_);
    inodes.swap(inodes_);
  }
  for (auto& [ino, inode] : inodes) {
    if (!inode->as) continue;
    Status e = cache_->Evict(inode->as.get(), write_back);
    if (s.ok() && !e.ok()) s = e;
  }
  if (write_back) {
    Status sync = store_->Sync();
    if (s.ok() && !sync.ok()) s = sync;
  }
  inodes.clear();
  cache_.reset();
  return s;
}

Filesystem::~Filesystem() {
  Status s = Shutdown();
  if (!s.ok()) Log(LogLevel::kError, "shutdown: %s", s.ToString().c_str());
}

// ---- Inodes ----

int Filesystem::GetInode(uint64_t ino, std::shared_ptr<Inode>* out) {
  MutexLock lock(&table_mu_);
  auto it = inodes_.find(ino);
  if (it != inodes_.end()) {
    *out = it->second;
    return 0;
  }
  std::string v;
  Status s = store_->Get(Space::kInode, InodeKey(ino), &v);
  if (s.IsNotFound()) return ENOENT;
  if (!s.ok()) return Errno(s);
  InodeRecord rec;
  s = rec.DecodeFrom(v);
  if (!s.ok()) {
    Log(LogLevel::kError, "inode %llu: %s", static_cast<unsigned long long>(ino),
        s.ToString().c_str());
    return EIO;
  }
  auto inode = std::make_shared<Inode>(ino, rec, store_);
  if (inode->IsReg()) {
    inode->as =
        std::make_unique<AddressSpace>(cache_.get(), ino, rec.size, rec.blocks, inode.get());
  }
  inodes_[ino] = inode;
  *out = std::move(inode);
  return 0;
}

void Filesystem::FillStat(Inode* inode, struct stat* st) {
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
}

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

void Filesystem::MaybeDrop(std::shared_ptr<Inode> inode) {
  if (inode->nlookup > 0 || inode->nopen > 0 || inode->ino == kRootIno) return;
  bool unlinked;
  {
    MutexLock lock(&inode->meta_mu);
    unlinked = inode->rec.nlink == 0;
  }
  // Eviction writes back dirty pages; it runs under ns_mu_ so that nobody loads a second copy of
  // this inode while the first one is still writing its record.
  if (inode->as) {
    Status s = cache_->Evict(inode->as.get(), /*write_back=*/!unlinked);
    if (!s.ok()) {
      Log(LogLevel::kError, "evicting inode %llu: %s", static_cast<unsigned long long>(inode->ino),
          s.ToString().c_str());
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
  inodes_.erase(inode->ino);
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

bool Filesystem::StoreSpace(struct statvfs* host, uint64_t* usable) {
  if (options_.store_path.empty() || statvfs(options_.store_path.c_str(), host) != 0) {
    return false;
  }
  const uint64_t avail = uint64_t{host->f_bavail} * host->f_frsize;
  const uint64_t held = store_->reserved_bytes() + uint64_t{cache_->nr_dirty()} * kBlockSize;
  *usable = avail > held ? avail - held : 0;
  return true;
}

int Filesystem::CheckSpace(uint64_t bytes, bool accept) {
  // A statvfs of the store's disk per write is a system call per write. While the disk has room
  // to spare, the last answer (at most 100 ms old), less what was accepted since, decides; within
  // kSpaceSlack of the limit every call asks the disk again.
  constexpr int64_t kSpaceMaxAgeNs = 100'000'000;
  constexpr uint64_t kSpaceSlack = uint64_t{256} << 20;
  const int64_t now = MonotonicNs();
  {
    MutexLock lock(&space_mu_);
    if (now - space_checked_ns_ < kSpaceMaxAgeNs &&
        space_usable_ >= space_accepted_ + bytes + kSpaceSlack) {
      if (accept) space_accepted_ += bytes;
      return 0;
    }
  }
  struct statvfs host;
  uint64_t usable;
  if (!StoreSpace(&host, &usable)) return 0;
  MutexLock lock(&space_mu_);
  space_checked_ns_ = now;
  space_usable_ = usable;
  space_accepted_ = 0;
  return bytes > usable ? ENOSPC : 0;
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

// ---- Namespace ----

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

void Filesystem::Forget(uint64_t ino, uint64_t n) {
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode;
  {
    MutexLock t(&table_mu_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return;
    inode = it->second;
  }
  inode->nlookup -= std::min(n, inode->nlookup);
  MaybeDrop(std::move(inode));
}

int Filesystem::GetAttr(uint64_t ino, struct stat* st) {
  std::shared_ptr<Inode> inode;
  if (int e = GetInode(ino, &inode)) return e;
  FillStat(inode.get(), st);
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

int Filesystem::CreateNode(uint64_t parent_ino, std::string_view name, mode_t mode, dev_t rdev,
                           std::string_view symlink, const Caller& c, std::shared_ptr<Inode>* out) {
  if (int e = CheckName(name)) return e;
  if (name == "." || name == "..") return EEXIST;
  std::shared_ptr<Inode> parent;
  if (int e = CheckNewEntry(parent_ino, name, &parent)) return e;
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
  rec.nlink = S_ISDIR(mode) ? 2 : 1;
  rec.rdev = rdev;
  rec.generation = 1;
  rec.atime = rec.mtime = rec.ctime = rec.btime = now;
  if (S_ISDIR(mode)) rec.next_cookie = kFirstDirCookie;
  if (S_ISLNK(mode)) rec.size = symlink.size();

  MutexLock plock(&parent->meta_mu);
  InodeRecord* prec = txn.Edit(parent.get());
  if (prec->mode & S_ISGID) {  // BSD group semantics under a setgid directory
    rec.gid = prec->gid;
    if (S_ISDIR(mode)) rec.mode |= S_ISGID;
  }
  const uint64_t cookie = prec->next_cookie++;
  prec->mtime = prec->ctime = now;
  if (S_ISDIR(mode)) prec->nlink++;

  std::string v;
  rec.EncodeTo(&v);
  b.Put(Space::kInode, InodeKey(ino), v);
  v.clear();
  DirentRecord{.ino = ino, .type = DirentTypeOf(mode), .cookie = cookie}.EncodeTo(&v);
  b.Put(Space::kDirent, NameKey(parent_ino, name), v);
  b.Put(Space::kDirCookie, CookieKey(parent_ino, cookie), name);
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
    if (inode->rec.nlink == 0) return ENOENT;  // an unlinked open file has no name to link to
    if (inode->rec.nlink >= 65000) return EMLINK;
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

int Filesystem::RemoveEntry(uint64_t parent_ino, std::string_view name, bool want_dir) {
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
    ReclaimFreed(d.ino);
    MaybeDrop(child);
  }
  return 0;
}

int Filesystem::Unlink(uint64_t parent, std::string_view name) {
  MutexLock lock(&ns_mu_);
  return RemoveEntry(parent, name, /*want_dir=*/false);
}

int Filesystem::Rmdir(uint64_t parent, std::string_view name) {
  MutexLock lock(&ns_mu_);
  return RemoveEntry(parent, name, /*want_dir=*/true);
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
    ReclaimFreed(dd.ino);
    MaybeDrop(dst);
  }
  return 0;
}

// ---- Files ----

int Filesystem::Open(uint64_t ino, int flags, std::unique_ptr<OpenFile>* file) {
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
    if (inode->as->size() != 0) {
      Status s = cache_->Truncate(inode->as.get(), 0);
      if (!s.ok()) return Errno(s);
      // The times are staged and published after the store took them, as SetAttr's.
      MutexLock meta(&inode->meta_mu);
      NamespaceTxn txn;
      InodeRecord* r = txn.Edit(inode.get());
      r->mtime = r->ctime = Now();
      if (Status ts = txn.Commit(store_); !ts.ok()) return Errno(ts);
    }
  }
  auto f = std::make_unique<OpenFile>();
  f->inode = inode;
  f->flags = flags;
  if (inode->as) f->wb_err = cache_->OpenCursor(inode->as.get());
  inode->nopen++;
  *file = std::move(f);
  return 0;
}

int Filesystem::Create(uint64_t parent, std::string_view name, mode_t mode, int flags,
                       const Caller& c, struct stat* st, std::unique_ptr<OpenFile>* file) {
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode;
  if (int e = CreateNode(parent, name, S_IFREG | (mode & 07777), 0, "", c, &inode)) return e;
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

int Filesystem::Write(OpenFile* f, uint64_t off, const char* buf, size_t size, size_t* done) {
  *done = 0;
  Inode* inode = f->inode.get();
  if (!inode->as) return inode->IsDir() ? EISDIR : EINVAL;
  if (off >= kMaxFileSize) return EFBIG;
  if (size > kMaxFileSize - off) size = kMaxFileSize - off;
  if (int e = CheckSpace(size)) return e;
  MutexLock rw(&inode->rwsem);
  if (int e = CheckMutable(inode, /*append_ok=*/off >= inode->as->size())) return e;
  Status s = cache_->Write(inode->as.get(), off, buf, size, done);
  if (*done > 0) {
    MutexLock lock(&inode->meta_mu);
    inode->rec.mtime = inode->rec.ctime = Now();
  }
  if (!s.ok() && *done == 0) return Errno(s);
  if (f->flags & (O_SYNC | O_DSYNC)) {
    // O_SYNC: the write is durable before it is acknowledged (guarantee 3).
    int e = cache_->Fsync(inode->as.get(), &f->wb_err, off, off + *done);
    if (e != 0) return e;
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
  if (inode->as) return cache_->Fsync(inode->as.get(), &f->wb_err);
  return Errno(store_->Sync());
}

int Filesystem::Release(std::unique_ptr<OpenFile> f) {
  MutexLock lock(&ns_mu_);
  std::shared_ptr<Inode> inode = std::move(f->inode);
  if (inode->nopen > 0) inode->nopen--;
  MaybeDrop(std::move(inode));
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

// ---- Directories ----

int Filesystem::OpenDir(uint64_t ino) {
  std::shared_ptr<Inode> inode;
  if (int e = GetInode(ino, &inode)) return e;
  return inode->IsDir() ? 0 : ENOTDIR;
}

int Filesystem::ReadDir(uint64_t ino, uint64_t off, bool plus,
                        const std::function<bool(const DirEntry&, const struct stat*)>& fn) {
  std::shared_ptr<Inode> dir;
  if (int e = GetInode(ino, &dir)) return e;
  if (!dir->IsDir()) return ENOTDIR;
  TouchAtime(dir.get(), 0);  // as iterate_dir's file_accessed, once per call
  struct stat st;
  if (off == 0) {
    FillStat(dir.get(), &st);
    if (!fn(DirEntry{".", ino, DT_DIR, 1}, &st)) return 0;
    off = 1;
  }
  if (off == 1) {
    uint64_t up = ino;
    DirentRecord d;
    if (int e = FindEntry(ino, "..", &d); e == 0) {
      up = d.ino;
    } else if (e != ENOENT) {
      return e;  // the root has no ".." entry; a failed read is not the root's answer
    }
    std::shared_ptr<Inode> upi;
    const int ge = GetInode(up, &upi);
    if (ge != 0 && ge != ENOENT) return ge;
    if (ge == 0) {
      FillStat(upi.get(), &st);
    } else {
      st = {};
      st.st_ino = up;
      st.st_mode = S_IFDIR;
    }
    if (!fn(DirEntry{"..", up, DT_DIR, 2}, &st)) return 0;
    off = 2;
  }
  const uint64_t start = std::max<uint64_t>(off, kFirstDirCookie);
  int err = 0;
  Status s = store_->Scan(Space::kDirCookie, CookieKey(ino, start), NamePrefixEnd(ino),
                          [&](std::string_view key, std::string_view name) {
                            uint64_t parent, cookie;
                            if (!ParseCookieKey(key, &parent, &cookie)) return true;
                            DirentRecord d;
                            if (int fe = FindEntry(ino, name, &d); fe != 0) {
                              if (fe == ENOENT) return true;  // removed since: skip
                              err = fe;  // a failed read: never a listing short of a name
                              return false;
                            }
                            DirEntry e{std::string(name), d.ino, d.type, cookie + 1};
                            if (!plus) return fn(e, nullptr);
                            MutexLock lock(&ns_mu_);
                            std::shared_ptr<Inode> child;
                            if (int ge = GetInode(d.ino, &child)) {
                              err = ge;
                              return false;
                            }
                            FillStat(child.get(), &st);
                            if (!fn(e, &st)) return false;
                            child->nlookup++;  // the entry was handed out with its attributes
                            return true;
                          });
  if (!s.ok()) return Errno(s);
  return err;
}

int Filesystem::FsyncDir(uint64_t ino) {
  (void)ino;
  // Namespace changes are in the store's WAL in order; a WAL sync makes them all durable.
  return Errno(store_->Sync());
}

// ---- Whole filesystem ----

int Filesystem::Statfs(struct statvfs* out) {
  *out = {};
  struct statvfs host;
  uint64_t usable;
  if (StoreSpace(&host, &usable)) {
    // What new data can still take: the reserve and the dirty pages are not free.
    out->f_blocks = uint64_t{host.f_blocks} * host.f_frsize / kBlockSize;
    out->f_bfree = usable / kBlockSize;
    out->f_bavail = usable / kBlockSize;
    out->f_files = host.f_files;
    out->f_ffree = host.f_ffree;
    out->f_favail = host.f_favail;
  }
  out->f_bsize = kBlockSize;
  out->f_frsize = kBlockSize;
  out->f_namemax = kNameMax;
  return 0;
}

int Filesystem::SyncFs() { return Errno(cache_->SyncAll()); }

int Filesystem::Trim(uint64_t start, uint64_t len, uint64_t minlen, uint64_t* trimmed) {
  *trimmed = 0;
  struct statvfs st;
  Statfs(&st);
  const uint64_t size = uint64_t{st.f_blocks} * kBlockSize;
  if (size == 0) return EOPNOTSUPP;
  if (start >= size || len < kBlockSize || minlen > size) return EINVAL;
  if (Status s = store_->Trim(); !s.ok()) return Errno(s);
  Statfs(&st);  // the compaction gave space back
  const uint64_t free_bytes = std::min<uint64_t>(uint64_t{st.f_bfree} * kBlockSize, size);
  const uint64_t end = len > size - start ? size : start + len;
  const uint64_t begin = std::max(start, size - free_bytes);
  if (end > begin && end - begin >= minlen) *trimmed = end - begin;
  return 0;
}

int Filesystem::GoingDown(uint32_t how) {
  if (how > kGoingDownNoLogFlush) return EINVAL;
  if (is_shut_down()) return 0;
  Status s;
  if (how == kGoingDownDefault) {
    s = cache_->SyncAll();
  } else if (how == kGoingDownLogFlush) {
    s = store_->Sync();
  }
  store_->ShutDown();
  static const char* const kHow[] = {"default", "logflush", "nologflush"};
  Log(LogLevel::kError,
      "filesystem shut down (%s)%s%s: every request fails with EIO until it is mounted again",
      kHow[how], s.ok() ? "" : "; the sync before it failed: ", s.ok() ? "" : s.ToString().c_str());
  return 0;
}

std::vector<uint64_t> Filesystem::CachedInodes() {
  MutexLock lock(&table_mu_);
  std::vector<uint64_t> out;
  out.reserve(inodes_.size());
  for (const auto& [ino, inode] : inodes_) out.push_back(ino);
  return out;
}

// ---- Extended attributes ----

int Filesystem::SetXattr(uint64_t ino, std::string_view name, std::string_view value, int flags,
                         const Caller& caller) {
  if (name.empty()) return EINVAL;
  if (name.size() > kXattrNameMax) return ERANGE;
  if (value.size() > kXattrSizeMax) return E2BIG;
  std::shared_ptr<Inode> inode;
  if (int e = GetInode(ino, &inode)) return e;
  if (int e = CheckMutable(inode.get(), /*append_ok=*/false)) return e;
  if (int e = CheckSpace(name.size() + value.size())) return e;
  MutexLock lock(&inode->meta_mu);
  std::string old;
  Status s = store_->Get(Space::kXattr, NameKey(ino, name), &old);
  if (!s.ok() && !s.IsNotFound()) return Errno(s);
  if ((flags & XATTR_CREATE) && s.ok()) return EEXIST;
  if ((flags & XATTR_REPLACE) && s.IsNotFound()) return ENODATA;
  NamespaceTxn txn;
  InodeRecord* r = txn.Edit(inode.get());
  WriteBatch& b = *txn.batch();
  if (name == kAclAccess || name == kAclDefault) {
    Acl acl;
    if (!acl.Decode(value)) return EINVAL;
    if (name == kAclDefault && !inode->IsDir()) return EACCES;
    if (name == kAclAccess) {
      // The mode shows the ACL; an ACL the mode says in full is not stored.
      mode_t m = r->mode;
      const bool equiv = acl.EquivMode(&m);
      if (caller.uid != 0 && !caller.InGroup(r->gid)) m &= ~S_ISGID;
      r->mode = m;
      if (equiv) {
        b.Delete(Space::kXattr, NameKey(ino, name));
      } else {
        b.Put(Space::kXattr, NameKey(ino, name), acl.Encode());
      }
    } else {
      b.Put(Space::kXattr, NameKey(ino, name), acl.Encode());
    }
  } else {
    b.Put(Space::kXattr, NameKey(ino, name), value);
  }
  r->ctime = Now();
  return Errno(txn.Commit(store_));
}

int Filesystem::GetXattr(uint64_t ino, std::string_view name, std::string* value) {
  if (name.size() > kXattrNameMax) return ERANGE;
  Status s = store_->Get(Space::kXattr, NameKey(ino, name), value);
  if (s.IsNotFound()) return ENODATA;
  return Errno(s);
}

int Filesystem::ListXattr(uint64_t ino, std::string* names) {
  names->clear();
  Status s = store_->Scan(Space::kXattr, NamePrefixBegin(ino), NamePrefixEnd(ino),
                          [&](std::string_view key, std::string_view) {
                            uint64_t owner;
                            std::string_view name;
                            if (ParseNameKey(key, &owner, &name)) {
                              names->append(name);
                              names->push_back('\0');
                            }
                            return true;
                          });
  return Errno(s);
}

int Filesystem::RemoveXattr(uint64_t ino, std::string_view name) {
  std::shared_ptr<Inode> inode;
  if (int e = GetInode(ino, &inode)) return e;
  if (int e = CheckMutable(inode.get(), /*append_ok=*/false)) return e;
  MutexLock lock(&inode->meta_mu);
  std::string old;
  Status s = store_->Get(Space::kXattr, NameKey(ino, name), &old);
  if (s.IsNotFound()) return ENODATA;
  if (!s.ok()) return Errno(s);
  NamespaceTxn txn;
  txn.batch()->Delete(Space::kXattr, NameKey(ino, name));
  txn.Edit(inode.get())->ctime = Now();
  return Errno(txn.Commit(store_));
}

}  // namespace stablefs
