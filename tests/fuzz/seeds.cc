// The seed inputs of the fuzz targets: valid encodings, so each fuzzer starts on the paths that
// accept a record and not only on the ones that reject garbage.
#include "tests/fuzz/seeds.h"

#include <dirent.h>
#include <sys/stat.h>

#include "fs/acl.h"
#include "storage/coding.h"
#include "storage/format.h"

namespace stablefs {

namespace {

using Seeds = std::vector<std::pair<std::string, std::string>>;

Seeds SuperblockSeeds() {
  Superblock sb;
  for (size_t i = 0; i < sb.uuid.size(); i++) sb.uuid[i] = static_cast<uint8_t>(i * 17);
  sb.created_sec = 1700000000;
  std::string a;
  sb.EncodeTo(&a);
  sb.pi = ProfileNumber(11);
  sb.creation_options = "-p xxh3,type3,512";
  std::string b;
  sb.EncodeTo(&b);
  return {{"default", a}, {"xxh3_type3_512", b}};
}

Seeds InodeSeeds() {
  InodeRecord dir;
  dir.mode = S_IFDIR | 0755;
  dir.nlink = 2;
  dir.next_cookie = kFirstDirCookie;
  dir.mtime = dir.ctime = dir.atime = dir.btime = {1700000000, 123456789};
  InodeRecord file = dir;
  file.mode = S_IFREG | 0644;
  file.uid = file.gid = 1000;
  file.nlink = 1;
  file.size = 5000;
  file.blocks = 2;
  file.generation = 7;
  file.next_cookie = 0;
  std::string a, b;
  dir.EncodeTo(&a);
  file.EncodeTo(&b);
  return {{"directory", a}, {"file", b}};
}

Seeds DirentSeeds() {
  DirentRecord d;
  d.ino = 42;
  d.type = DT_REG;
  d.cookie = kFirstDirCookie;
  std::string a;
  d.EncodeTo(&a);
  return {{"file", a}};
}

Seeds KeySeeds() {
  std::string counter;
  EncodeCounter(&counter, kFirstFreeIno);
  return {{"inode", InodeKey(kRootIno)},
          {"name", NameKey(kRootIno, "file.txt")},
          {"cookie", CookieKey(kRootIno, kFirstDirCookie)},
          {"data", DataKey(42, 3)},
          {"counter", counter}};
}

// A block of data at index 1 of inode 42 under profile n, with the tuples Generate makes.
std::string BlockInput(uint8_t n) {
  const pi::Profile p = ProfileNumber(n);
  std::string s(1, static_cast<char>(n));
  PutFixed64BE(&s, 42);
  PutFixed64BE(&s, 1);
  PutFixed16BE(&s, 1000);
  std::string data(kBlockSize, '\0');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(i * 7 + i / 512);
  std::string tuples(TupleBytesPerBlock(p), '\0');
  pi::Generate(p, data.data(), data.size(), FirstSectorOfBlock(p, 1), pi::AppTagForOwner(42),
               tuples.data());
  return s + data + tuples;
}

// Each guard, and type 3 with 512-byte intervals; the fuzzer reaches the other profiles by
// changing the first byte.
Seeds BlockSeeds() {
  Seeds seeds;
  for (uint8_t n : {0, 1, 2, 10}) {
    std::string name = ProfileNumber(n).ToString();
    for (char& c : name) c = c == ',' ? '_' : c;
    seeds.push_back({name, BlockInput(n)});
  }
  return seeds;
}

Seeds ProfileSeeds() {
  return {
      {"default", "crc64-nvme,type1,4096"}, {"t10", "crc16-t10dif,type3,512"}, {"xxh3", "xxh3"}};
}

// An ACL value followed by the be16 mode acl_fuzz takes from the end.
Seeds AclSeeds() {
  Acl minimal;
  minimal.entries = {
      {AclEntry::kUserObj, 6, 0}, {AclEntry::kGroupObj, 4, 0}, {AclEntry::kOther, 4, 0}};
  Acl named;
  named.entries = {{AclEntry::kUserObj, 7, 0},  {AclEntry::kUser, 6, 1000},
                   {AclEntry::kGroupObj, 5, 0}, {AclEntry::kGroup, 4, 100},
                   {AclEntry::kMask, 7, 0},     {AclEntry::kOther, 0, 0}};
  const std::string mode = "\x01\xed";  // 0755
  return {{"minimal", minimal.Encode() + mode}, {"named", named.Encode() + mode}};
}

// Arguments separated by NUL bytes.
Seeds MountOptionSeeds() {
  using namespace std::string_literals;
  return {{"all",
           "-f\0-o\0stable_pages=bounce,cache_size=64M,writeback_expire_ms=100,attr_timeout=0.5,"
           "debug_stable\0/store\0/mnt"s},
          {"fuse_options", "-o\0allow_other,cache_size=1g\0-d\0store\0mnt"s},
          {"help", "--help"s}};
}

}  // namespace

std::vector<std::string> FuzzTargets() {
  return {"superblock_fuzz", "inode_record_fuzz", "dirent_record_fuzz", "keys_fuzz",
          "pi_block_fuzz",   "pi_profile_fuzz",   "acl_fuzz",           "mount_options_fuzz"};
}

std::vector<std::pair<std::string, std::string>> SeedsFor(const std::string& target) {
  if (target == "superblock_fuzz") return SuperblockSeeds();
  if (target == "inode_record_fuzz") return InodeSeeds();
  if (target == "dirent_record_fuzz") return DirentSeeds();
  if (target == "keys_fuzz") return KeySeeds();
  if (target == "pi_block_fuzz") return BlockSeeds();
  if (target == "pi_profile_fuzz") return ProfileSeeds();
  if (target == "acl_fuzz") return AclSeeds();
  if (target == "mount_options_fuzz") return MountOptionSeeds();
  return {};
}

}  // namespace stablefs
