// Extended attributes, with POSIX ACLs stored as system.posix_acl_* xattrs (fs/acl.h gives
// their format; setting an access ACL updates the mode), as fs/ext4/xattr.c and acl.c.
#include <sys/xattr.h>

#include <cerrno>
#include <string>

#include "fs/acl.h"
#include "fs/filesystem.h"
#include "fs/fs_internal.h"

namespace stablefs {

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
