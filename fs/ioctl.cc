// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (chattr): the attribute flags the filesystem enforces
// itself, as fs/ext4/ioctl.c.
#include <linux/fs.h>

#include <cerrno>

#include "fs/filesystem.h"
#include "fs/fs_internal.h"

namespace stablefs {

namespace {

constexpr uint32_t kSupportedFlags =
    FS_IMMUTABLE_FL | FS_APPEND_FL | FS_NODUMP_FL | FS_NOATIME_FL | FS_SYNC_FL | FS_DIRSYNC_FL;

}  // namespace

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

}  // namespace stablefs
