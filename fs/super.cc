// The mounted filesystem as a whole: opening it on a store (reclaiming orphans), shutdown and
// the shutdown ioctl, space accounting, statfs, syncfs and FITRIM, as fs/ext4/super.c.
#include <algorithm>
#include <cerrno>
#include <map>
#include <string>
#include <vector>

#include "fs/filesystem.h"
#include "fs/fs_internal.h"
#include "storage/log.h"

namespace stablefs {

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

}  // namespace stablefs
