// Record formats: round trips of every record type, and rejection of malformed bytes.
#include "storage/format.h"

#include <gtest/gtest.h>

#include <random>

namespace stablefs {
namespace {

InodeRecord SampleInode() {
  InodeRecord r;
  r.mode = 0100644;
  r.uid = 1000;
  r.gid = 1001;
  r.nlink = 3;
  r.size = (uint64_t{1} << 40) + 17;
  r.blocks = 12345;
  r.rdev = 0x0803;
  r.generation = 99;
  r.flags = 0x10;
  r.next_cookie = 77;
  r.atime = {-5, 999999999};
  r.mtime = {1700000000, 1};
  r.ctime = {INT64_MAX, 0};
  r.btime = {0, 500};
  return r;
}

TEST(FormatTest, InodeRoundTrip) {
  InodeRecord r = SampleInode();
  std::string enc;
  r.EncodeTo(&enc);
  InodeRecord d;
  ASSERT_TRUE(d.DecodeFrom(enc).ok());
  EXPECT_EQ(d, r);
}

TEST(FormatTest, DirentRoundTrip) {
  DirentRecord r{.ino = 42, .type = 4, .cookie = 1234567};
  std::string enc;
  r.EncodeTo(&enc);
  DirentRecord d;
  ASSERT_TRUE(d.DecodeFrom(enc).ok());
  EXPECT_EQ(d, r);
}

TEST(FormatTest, SuperblockRoundTrip) {
  Superblock sb;
  sb.uuid[0] = 0xab;
  sb.uuid[15] = 0xcd;
  sb.pi.guard = pi::GuardKind::kCrc16T10Dif;
  sb.pi.type = pi::Type::kType3;
  sb.pi.interval = 512;
  sb.created_sec = 1234;
  sb.creation_options = "-p crc16-t10dif,type3,512";
  std::string enc;
  sb.EncodeTo(&enc);
  Superblock d;
  ASSERT_TRUE(d.DecodeFrom(enc).ok());
  EXPECT_EQ(d.uuid, sb.uuid);
  EXPECT_EQ(d.pi, sb.pi);
  EXPECT_EQ(d.created_sec, 1234);
  EXPECT_EQ(d.creation_options, sb.creation_options);
  EXPECT_EQ(d.UuidString().size(), 36u);
}

TEST(FormatTest, SuperblockDamageIsCorruption) {
  Superblock sb;
  std::string enc;
  sb.EncodeTo(&enc);
  for (size_t i = 0; i < enc.size(); i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string bad = enc;
      bad[i] ^= static_cast<char>(1 << bit);
      Superblock d;
      Status s = d.DecodeFrom(bad);
      EXPECT_TRUE(s.IsCorruption()) << "byte " << i << " bit " << bit << ": " << s.ToString();
    }
  }
  for (size_t len = 0; len < enc.size(); len++) {
    Superblock d;
    EXPECT_TRUE(d.DecodeFrom(enc.substr(0, len)).IsCorruption()) << len;
  }
}

TEST(FormatTest, SuperblockOtherVersionIsNotSupported) {
  Superblock sb;
  sb.format_version = kFormatVersion + 1;
  std::string enc;
  sb.EncodeTo(&enc);
  Superblock d;
  Status s = d.DecodeFrom(enc);
  EXPECT_TRUE(s.IsNotSupported()) << s.ToString();
  EXPECT_NE(s.message().find("version 3"), std::string::npos) << s.message();
  sb.format_version = kOldestFormatVersion - 1;
  enc.clear();
  sb.EncodeTo(&enc);
  s = d.DecodeFrom(enc);
  EXPECT_TRUE(s.IsNotSupported()) << s.ToString();
}

TEST(FormatTest, SuperblockEveryReadableVersionRoundTrips) {
  for (uint32_t v = kOldestFormatVersion; v <= kFormatVersion; v++) {
    Superblock sb;
    sb.format_version = v;
    std::string enc;
    sb.EncodeTo(&enc);
    Superblock d;
    ASSERT_TRUE(d.DecodeFrom(enc).ok()) << v;
    EXPECT_EQ(d.format_version, v);
    EXPECT_EQ(d.has_segments(), v >= 2);
  }
}

TEST(FormatTest, SuperblockBadProfileIsCorruption) {
  Superblock sb;
  sb.pi.interval = 1024;
  std::string enc;
  sb.EncodeTo(&enc);
  Superblock d;
  EXPECT_TRUE(d.DecodeFrom(enc).IsCorruption());
}

TEST(FormatTest, MalformedRecordsAreCorruption) {
  std::string inode;
  SampleInode().EncodeTo(&inode);
  for (size_t len = 0; len < inode.size(); len++) {
    InodeRecord d;
    EXPECT_TRUE(d.DecodeFrom(std::string_view(inode).substr(0, len)).IsCorruption());
  }
  InodeRecord d;
  EXPECT_TRUE(d.DecodeFrom(inode + "x").IsCorruption());
  std::string bad_version = inode;
  bad_version[0] = 9;
  EXPECT_TRUE(d.DecodeFrom(bad_version).IsCorruption());
  std::string bad_nsec = inode;
  // atime's nanoseconds follow 1 + 16 + 32 + 4 + 8 + 8 bytes.
  bad_nsec[1 + 16 + 32 + 4 + 8 + 8] = '\xff';
  EXPECT_TRUE(d.DecodeFrom(bad_nsec).IsCorruption());

  std::string dirent;
  DirentRecord{.ino = 5, .type = 8, .cookie = 3}.EncodeTo(&dirent);
  DirentRecord dd;
  EXPECT_TRUE(dd.DecodeFrom(dirent.substr(0, 10)).IsCorruption());
  std::string zero_ino = dirent;
  for (int i = 1; i <= 8; i++) zero_ino[i] = 0;
  EXPECT_TRUE(dd.DecodeFrom(zero_ino).IsCorruption());

  uint64_t v;
  EXPECT_TRUE(DecodeCounter("1234567", &v).IsCorruption());
}

TEST(FormatTest, RandomBytesNeverDecodeAsGarbage) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; i++) {
    std::string junk(rng() % 160, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    Superblock sb;
    InodeRecord ir;
    DirentRecord dr;
    // Decoding must return a status; a random superblock never passes its checksum.
    EXPECT_FALSE(sb.DecodeFrom(junk).ok());
    (void)ir.DecodeFrom(junk);
    (void)dr.DecodeFrom(junk);
  }
}

TEST(FormatTest, KeysRoundTripAndOrder) {
  uint64_t ino, index;
  ASSERT_TRUE(ParseDataKey(DataKey(7, 9), &ino, &index));
  EXPECT_EQ(ino, 7u);
  EXPECT_EQ(index, 9u);
  EXPECT_LT(DataKey(7, 255), DataKey(7, 256));
  EXPECT_LT(DataKey(7, UINT64_MAX), DataKeyRangeEnd(7, UINT64_MAX));
  EXPECT_LT(DataKeyRangeEnd(7, UINT64_MAX), DataKey(8, 0) + "x");
  EXPECT_FALSE(ParseDataKey("short", &ino, &index));

  std::string_view name;
  const std::string name_key = NameKey(3, "file.txt");  // name points into it
  ASSERT_TRUE(ParseNameKey(name_key, &ino, &name));
  EXPECT_EQ(ino, 3u);
  EXPECT_EQ(name, "file.txt");
  const std::string no_name = InodeKey(3);
  EXPECT_FALSE(ParseNameKey(no_name, &ino, &name));  // empty name
  EXPECT_LT(NamePrefixBegin(3), NameKey(3, "a"));
  EXPECT_LT(NameKey(3, "\xff\xff"), NamePrefixEnd(3));

  uint64_t parent, cookie;
  ASSERT_TRUE(ParseCookieKey(CookieKey(4, 5), &parent, &cookie));
  EXPECT_EQ(parent, 4u);
  EXPECT_EQ(cookie, 5u);
}

TEST(FormatTest, SegmentPointerAndWatermarkRoundTrip) {
  char pointer[kSegmentPointerPrefix];
  const SegmentLocation loc{0x01020304, 0xa0b0c0d0};
  EncodeSegmentPointer(pointer, loc);
  EXPECT_EQ(std::string(pointer, sizeof(pointer)),
            std::string("\x01\x02\x03\x04\xa0\xb0\xc0\xd0", 8));
  EXPECT_EQ(DecodeSegmentPointer(pointer), loc);

  char value[kSegmentWatermarkSize];
  EncodeSegmentWatermark(value, SegmentWatermark{7, 0x10000});
  EXPECT_EQ(std::string(value, sizeof(value)), std::string("\0\0\0\x07\0\x01\0\0", 8));
  SegmentWatermark mark;
  ASSERT_TRUE(DecodeSegmentWatermark(std::string_view(value, sizeof(value)), &mark));
  EXPECT_EQ(mark.segment, 7u);
  EXPECT_EQ(mark.slots, 0x10000u);
}

TEST(FormatTest, SegmentValuesAreToldByLength) {
  // Any data value shorter than a block is a pointer; a whole block with its tuples never is.
  for (pi::GuardKind guard : {pi::GuardKind::kCrc16T10Dif, pi::GuardKind::kCrc64Nvme}) {
    for (uint32_t interval : {512u, 4096u}) {
      pi::Profile p;
      p.guard = guard;
      p.interval = interval;
      EXPECT_TRUE(IsSegmentPointer(SegmentPointerSize(p))) << p.ToString();
      EXPECT_FALSE(IsSegmentPointer(kBlockSize + TupleBytesPerBlock(p))) << p.ToString();
    }
  }
  EXPECT_TRUE(IsSegmentPointer(kBlockSize - 1));
  EXPECT_FALSE(IsSegmentPointer(kBlockSize));
  // A watermark of any other length than 8 bytes is not taken, and leaves *mark as it was.
  SegmentWatermark mark{3, 4};
  EXPECT_FALSE(DecodeSegmentWatermark(std::string_view("\0\0\0\x01\0\0\0", 7), &mark));
  EXPECT_FALSE(DecodeSegmentWatermark(std::string(9, '\0'), &mark));
  EXPECT_FALSE(DecodeSegmentWatermark("", &mark));
  EXPECT_EQ(mark.segment, 3u);
  EXPECT_EQ(mark.slots, 4u);
}

}  // namespace
}  // namespace stablefs
