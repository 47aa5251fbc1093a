// POSIX ACL encoding and mode rules, checked against what fs/posix_acl.c does.
#include "fs/acl.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

namespace stablefs {
namespace {

Acl Make(std::initializer_list<AclEntry> entries) {
  Acl a;
  a.entries = entries;
  return a;
}

TEST(AclTest, EncodeDecodeRoundTripAndLayout) {
  Acl a = Make({{AclEntry::kUserObj, 6, 0},
                {AclEntry::kUser, 7, 1001},
                {AclEntry::kGroupObj, 4, 0},
                {AclEntry::kMask, 7, 0},
                {AclEntry::kOther, 4, 0}});
  std::string v = a.Encode();
  ASSERT_EQ(v.size(), 4u + 5 * 8);
  EXPECT_EQ(v.substr(0, 4), std::string("\x02\x00\x00\x00", 4));
  EXPECT_EQ(v.substr(12, 8), std::string("\x02\x00\x07\x00\xe9\x03\x00\x00", 8));  // user 1001
  Acl b;
  ASSERT_TRUE(b.Decode(v));
  ASSERT_EQ(b.entries.size(), 5u);
  EXPECT_EQ(b.entries[1].id, 1001u);
  EXPECT_EQ(b.entries[1].perm, 7u);
}

TEST(AclTest, RejectsMalformedAcls) {
  Acl a;
  EXPECT_FALSE(a.Decode(""));
  EXPECT_FALSE(a.Decode(std::string("\x01\x00\x00\x00", 4)));  // version 1
  Acl no_mask = Make({{AclEntry::kUserObj, 6, 0},
                      {AclEntry::kUser, 7, 5},
                      {AclEntry::kGroupObj, 4, 0},
                      {AclEntry::kOther, 4, 0}});
  EXPECT_FALSE(a.Decode(no_mask.Encode()));  // named entry without a mask
  Acl unsorted =
      Make({{AclEntry::kGroupObj, 4, 0}, {AclEntry::kUserObj, 6, 0}, {AclEntry::kOther, 4, 0}});
  EXPECT_FALSE(a.Decode(unsorted.Encode()));
  Acl no_other = Make({{AclEntry::kUserObj, 6, 0}, {AclEntry::kGroupObj, 4, 0}});
  EXPECT_FALSE(a.Decode(no_other.Encode()));
  std::string bad_perm =
      Make({{AclEntry::kUserObj, 6, 0}, {AclEntry::kGroupObj, 4, 0}, {AclEntry::kOther, 4, 0}})
          .Encode();
  bad_perm[6] = 9;
  EXPECT_FALSE(a.Decode(bad_perm));
  EXPECT_FALSE(a.Decode(bad_perm.substr(0, 10)));
}

TEST(AclTest, EquivModeAsTheKernel) {
  mode_t m = S_IFREG | 0777;
  EXPECT_TRUE(
      Make({{AclEntry::kUserObj, 6, 0}, {AclEntry::kGroupObj, 4, 0}, {AclEntry::kOther, 0, 0}})
          .EquivMode(&m));
  EXPECT_EQ(m, S_IFREG | 0640u);
  m = S_IFREG | 0777;
  EXPECT_FALSE(Make({{AclEntry::kUserObj, 7, 0},
                     {AclEntry::kUser, 7, 9},
                     {AclEntry::kGroupObj, 4, 0},
                     {AclEntry::kMask, 5, 0},
                     {AclEntry::kOther, 1, 0}})
                   .EquivMode(&m));
  EXPECT_EQ(m, S_IFREG | 0751u);  // the group bits show the mask
}

TEST(AclTest, ChmodRewritesOwnerMaskAndOther) {
  Acl a = Make({{AclEntry::kUserObj, 7, 0},
                {AclEntry::kUser, 7, 9},
                {AclEntry::kGroupObj, 7, 0},
                {AclEntry::kMask, 7, 0},
                {AclEntry::kOther, 7, 0}});
  a.Chmod(0640);
  EXPECT_EQ(a.entries[0].perm, 6u);
  EXPECT_EQ(a.entries[1].perm, 7u);  // named entries keep their bits
  EXPECT_EQ(a.entries[2].perm, 7u);  // the group entry too, when there is a mask
  EXPECT_EQ(a.entries[3].perm, 4u);
  EXPECT_EQ(a.entries[4].perm, 0u);
  Acl minimal =
      Make({{AclEntry::kUserObj, 7, 0}, {AclEntry::kGroupObj, 7, 0}, {AclEntry::kOther, 7, 0}});
  minimal.Chmod(0754);
  EXPECT_EQ(minimal.entries[1].perm, 5u);
}

TEST(AclTest, CreateMasqAsTheKernel) {
  // default:user::rwx group::r-x group:fsgqa:rw- mask::rwx other::r-x, created with 0666.
  Acl a = Make({{AclEntry::kUserObj, 7, 0},
                {AclEntry::kGroupObj, 5, 0},
                {AclEntry::kGroup, 6, 1001},
                {AclEntry::kMask, 7, 0},
                {AclEntry::kOther, 5, 0}});
  mode_t m = S_IFREG | 0666;
  a.CreateMasq(&m);
  EXPECT_EQ(m, S_IFREG | 0664u);
  EXPECT_EQ(a.entries[0].perm, 6u);
  EXPECT_EQ(a.entries[1].perm, 5u);  // group entry untouched when a mask exists
  EXPECT_EQ(a.entries[3].perm, 6u);
  EXPECT_EQ(a.entries[4].perm, 4u);
}

}  // namespace
}  // namespace stablefs
