// POSIX ACLs: xattr encoding and the mode rules of fs/posix_acl.c.
#include "fs/acl.h"

#include <algorithm>

namespace stablefs {

namespace {
constexpr uint32_t kAclVersion = 2;
constexpr size_t kHeader = 4, kEntry = 8;

uint32_t Le32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | (uint32_t{u[1]} << 8) | (uint32_t{u[2]} << 16) | (uint32_t{u[3]} << 24);
}
uint16_t Le16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] | (u[1] << 8));
}
void PutLe32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; i++) s->push_back(static_cast<char>(v >> (8 * i)));
}
void PutLe16(std::string* s, uint16_t v) {
  s->push_back(static_cast<char>(v));
  s->push_back(static_cast<char>(v >> 8));
}
}  // namespace

bool Acl::Decode(std::string_view value) {
  entries.clear();
  if (value.size() < kHeader || (value.size() - kHeader) % kEntry != 0) return false;
  if (Le32(value.data()) != kAclVersion) return false;
  int user_obj = 0, group_obj = 0, other = 0, mask = 0, named = 0;
  for (size_t off = kHeader; off < value.size(); off += kEntry) {
    AclEntry e;
    e.tag = Le16(value.data() + off);
    e.perm = Le16(value.data() + off + 2);
    e.id = Le32(value.data() + off + 4);
    if (e.perm & ~7u) return false;
    switch (e.tag) {
      case AclEntry::kUserObj:
        user_obj++;
        break;
      case AclEntry::kGroupObj:
        group_obj++;
        break;
      case AclEntry::kOther:
        other++;
        break;
      case AclEntry::kMask:
        mask++;
        break;
      case AclEntry::kUser:
      case AclEntry::kGroup:
        named++;
        break;
      default:
        return false;
    }
    if (e.tag != AclEntry::kUser && e.tag != AclEntry::kGroup) e.id = 0;
    if (!entries.empty()) {
      const AclEntry& prev = entries.back();
      if (e.tag < prev.tag || (e.tag == prev.tag && e.id <= prev.id)) return false;
    }
    entries.push_back(e);
  }
  if (user_obj != 1 || group_obj != 1 || other != 1 || mask > 1) return false;
  if (named > 0 && mask == 0) return false;
  return true;
}

std::string Acl::Encode() const {
  std::string s;
  PutLe32(&s, kAclVersion);
  for (const AclEntry& e : entries) {
    PutLe16(&s, e.tag);
    PutLe16(&s, e.perm);
    PutLe32(&s, (e.tag == AclEntry::kUser || e.tag == AclEntry::kGroup) ? e.id : 0xFFFFFFFFu);
  }
  return s;
}

bool Acl::EquivMode(mode_t* mode) const {
  mode_t bits = 0;
  bool equiv = true;
  for (const AclEntry& e : entries) {
    switch (e.tag) {
      case AclEntry::kUserObj:
        bits |= (e.perm & 7) << 6;
        break;
      case AclEntry::kGroupObj:
        bits |= (e.perm & 7) << 3;
        break;
      case AclEntry::kOther:
        bits |= e.perm & 7;
        break;
      case AclEntry::kMask:  // the group bits of the mode show the mask
        bits = (bits & ~070u) | ((e.perm & 7) << 3);
        equiv = false;
        break;
      default:
        equiv = false;
        break;
    }
  }
  *mode = (*mode & ~0777u) | bits;
  return equiv;
}

void Acl::Chmod(mode_t mode) {
  const bool has_mask = std::any_of(entries.begin(), entries.end(),
                                    [](const AclEntry& e) { return e.tag == AclEntry::kMask; });
  for (AclEntry& e : entries) {
    switch (e.tag) {
      case AclEntry::kUserObj:
        e.perm = (mode >> 6) & 7;
        break;
      case AclEntry::kOther:
        e.perm = mode & 7;
        break;
      case AclEntry::kMask:
        e.perm = (mode >> 3) & 7;
        break;
      case AclEntry::kGroupObj:
        if (!has_mask) e.perm = (mode >> 3) & 7;
        break;
      default:
        break;
    }
  }
}

void Acl::CreateMasq(mode_t* mode) {
  AclEntry* group = nullptr;
  AclEntry* mask = nullptr;
  mode_t m = *mode;
  mode_t keep = ~0777u & m;
  for (AclEntry& e : entries) {
    switch (e.tag) {
      case AclEntry::kUserObj:
        e.perm &= (m >> 6) & 7;
        keep |= e.perm << 6;
        break;
      case AclEntry::kOther:
        e.perm &= m & 7;
        keep |= e.perm;
        break;
      case AclEntry::kGroupObj:
        group = &e;
        break;
      case AclEntry::kMask:
        mask = &e;
        break;
      default:
        break;
    }
  }
  if (mask != nullptr) {
    mask->perm &= (m >> 3) & 7;
    keep |= mask->perm << 3;
  } else if (group != nullptr) {
    group->perm &= (m >> 3) & 7;
    keep |= group->perm << 3;
  }
  *mode = keep;
}

}  // namespace stablefs
