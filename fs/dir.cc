// Directories: opendir, readdir (plain and plus, resumable at each entry's cookie) and fsyncdir,
// as fs/ext4/dir.c.
#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "fs/filesystem.h"
#include "fs/fs_internal.h"

namespace stablefs {

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

}  // namespace stablefs
