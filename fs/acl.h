// POSIX ACLs in their xattr form (system.posix_acl_access / system.posix_acl_default), and the
// rules that tie them to the mode bits, as fs/posix_acl.c has them.
//
// With FUSE_CAP_POSIX_ACL the kernel checks permissions against the ACLs it reads through
// getxattr, but leaves to the filesystem what a local filesystem's VFS helpers do: keeping the
// mode's group bits equal to the mask entry (posix_acl_update_mode, posix_acl_chmod), storing no
// ACL that the mode expresses exactly (posix_acl_equiv_mode), and giving new inodes the
// parent's default ACL masked by the create mode, or the umask when there is none
// (posix_acl_create).
//
// The xattr value: le32 version (2), then entries of le16 tag, le16 permissions (rwx), le32 id.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace stablefs {

inline constexpr std::string_view kAclAccess = "system.posix_acl_access";
inline constexpr std::string_view kAclDefault = "system.posix_acl_default";

struct AclEntry {
  enum Tag : uint16_t {
    kUserObj = 0x01,
    kUser = 0x02,
    kGroupObj = 0x04,
    kGroup = 0x08,
    kMask = 0x10,
    kOther = 0x20,
  };
  uint16_t tag = 0;
  uint16_t perm = 0;  // 4 read, 2 write, 1 execute
  uint32_t id = 0;    // for kUser and kGroup
};

struct Acl {
  std::vector<AclEntry> entries;  // in the kernel's canonical order

  // Parses and validates an xattr value (one USER_OBJ, GROUP_OBJ and OTHER; MASK required when
  // named entries exist; entries sorted by tag then id, no duplicates). False if malformed.
  bool Decode(std::string_view value);
  std::string Encode() const;

  // Sets *mode's permission bits to what the ACL implies (owner, the mask or else the group,
  // other) and returns whether the mode says all the ACL says (posix_acl_equiv_mode): an ACL
  // that does need not be stored.
  bool EquivMode(mode_t* mode) const;
  // chmod: owner, other and the mask (or group) entries take the new mode's bits.
  void Chmod(mode_t mode);
  // A new inode's access ACL from the parent's default ACL: every entry is masked by the create
  // mode's matching bits, and *mode is reduced to what the ACL allows (posix_acl_create_masq).
  void CreateMasq(mode_t* mode);
};

}  // namespace stablefs
