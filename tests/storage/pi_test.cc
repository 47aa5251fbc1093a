// Tests of the protection-information library (storage/pi.h): the guards' known answers in both
// CRC implementations, the PCLMULQDQ code against the tables and a bit-at-a-time reference,
// tuple layouts, Generate/Verify over every format, type and interval with each kind of damage
// and each escape, owner tags, mismatch messages, and profile parsing.
#include "storage/pi.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace stablefs::pi {
namespace {

std::vector<unsigned char> RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<unsigned char> v(n);
  for (auto& b : v) b = static_cast<unsigned char>(rng());
  return v;
}

// Bit-at-a-time definitions, independent of the tables and of the folding constants.
uint16_t ReferenceCrc16(uint16_t crc, const unsigned char* p, size_t len) {
  for (size_t i = 0; i < len; i++) {
    crc ^= static_cast<uint16_t>(p[i] << 8);
    for (int k = 0; k < 8; k++) {
      crc = static_cast<uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x8BB7 : crc << 1);
    }
  }
  return crc;
}
uint64_t ReferenceCrc64(uint64_t crc, const unsigned char* p, size_t len) {
  constexpr uint64_t kReflectedPoly = 0x9A6C9329AC4BC9B5;  // 0xAD93D23594C93659 bit-reversed
  crc = ~crc;
  for (size_t i = 0; i < len; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ kReflectedPoly : crc >> 1;
  }
  return ~crc;
}

// ---- CRC implementations: each test runs once per implementation ----

const char* CrcImplName(CrcImpl impl) {
  switch (impl) {
    case CrcImpl::kPortable:
      return "Portable";
    case CrcImpl::kClmul:
      return "Clmul";
    case CrcImpl::kVpclmul:
      return "Vpclmul";
  }
  return "?";
}

uint16_t Crc16With(CrcImpl impl, uint16_t crc, const void* data, size_t len) {
  switch (impl) {
    case CrcImpl::kVpclmul:
      return Crc16T10DifVpclmul(crc, data, len);
    case CrcImpl::kClmul:
      return Crc16T10DifClmul(crc, data, len);
    case CrcImpl::kPortable:
      break;
  }
  return Crc16T10DifPortable(crc, data, len);
}

uint64_t Crc64With(CrcImpl impl, uint64_t crc, const void* data, size_t len) {
  switch (impl) {
    case CrcImpl::kVpclmul:
      return Crc64NvmeVpclmul(crc, data, len);
    case CrcImpl::kClmul:
      return Crc64NvmeClmul(crc, data, len);
    case CrcImpl::kPortable:
      break;
  }
  return Crc64NvmePortable(crc, data, len);
}

class CrcTest : public ::testing::TestWithParam<CrcImpl> {
 protected:
  void SetUp() override {
    if (!CpuCanRun(GetParam())) GTEST_SKIP() << "CPU cannot run " << CrcImplName(GetParam());
  }
  uint16_t Crc16(uint16_t crc, const void* data, size_t len) const {
    return Crc16With(GetParam(), crc, data, len);
  }
  uint64_t Crc64(uint64_t crc, const void* data, size_t len) const {
    return Crc64With(GetParam(), crc, data, len);
  }
};

INSTANTIATE_TEST_SUITE_P(Impls, CrcTest,
                         ::testing::Values(CrcImpl::kPortable, CrcImpl::kClmul, CrcImpl::kVpclmul),
                         [](const ::testing::TestParamInfo<CrcImpl>& param) {
                           return CrcImplName(param.param);
                         });

TEST_P(CrcTest, Crc16KnownAnswers) {
  const char* s = "123456789";
  EXPECT_EQ(Crc16(0, s, 9), 0xD0DB);
  EXPECT_EQ(Crc16(Crc16(0, "1234", 4), "56789", 5), 0xD0DB);
  EXPECT_EQ(Crc16(0, s, 0), 0);
  EXPECT_EQ(Crc16(0x1234, s, 0), 0x1234);
}

TEST_P(CrcTest, Crc64KnownAnswers) {
  EXPECT_EQ(Crc64(0, "123456789", 9), 0xAE8B14860A799888ull);
  EXPECT_EQ(Crc64(Crc64(0, "1234", 4), "56789", 5), 0xAE8B14860A799888ull);
  EXPECT_EQ(Crc64(0, "", 0), 0u);
  const std::vector<unsigned char> zeros(4096, 0x00);
  const std::vector<unsigned char> ones(4096, 0xFF);
  EXPECT_EQ(Crc64(0, zeros.data(), zeros.size()), 0x6482D367EB22B64Eull);
  EXPECT_EQ(Crc64(0, ones.data(), ones.size()), 0xC0DDBA7302ECA3ACull);
}

// The known answers above are short or uniform; check long random inputs, which take the folding
// path in the clmul code, against the bit-at-a-time definitions.
TEST_P(CrcTest, MatchesBitwiseReference) {
  const auto buf = RandomBytes(9000 + 8, 7);
  for (size_t len : {1u, 15u, 16u, 63u, 64u, 65u, 127u, 128u, 129u, 255u, 256u, 512u, 1000u, 4096u,
                     4099u, 8999u}) {
    const unsigned char* p = buf.data() + (len % 7);
    EXPECT_EQ(Crc16(0, p, len), ReferenceCrc16(0, p, len)) << "len " << len;
    EXPECT_EQ(Crc16(0xBEEF, p, len), ReferenceCrc16(0xBEEF, p, len)) << "len " << len;
    EXPECT_EQ(Crc64(0, p, len), ReferenceCrc64(0, p, len)) << "len " << len;
    EXPECT_EQ(Crc64(0x0123456789ABCDEF, p, len), ReferenceCrc64(0x0123456789ABCDEF, p, len))
        << "len " << len;
  }
}

TEST_P(CrcTest, ChainsInRandomPieces) {
  const auto buf = RandomBytes(20000, 11);
  const uint16_t want16 = Crc16T10DifPortable(0, buf.data(), buf.size());
  const uint64_t want64 = Crc64NvmePortable(0, buf.data(), buf.size());
  std::mt19937_64 rng(12);
  for (int round = 0; round < 50; round++) {
    uint16_t c16 = 0;
    uint64_t c64 = 0;
    size_t pos = 0;
    while (pos < buf.size()) {
      const size_t piece = std::min<size_t>(buf.size() - pos, rng() % 700);
      c16 = Crc16(c16, buf.data() + pos, piece);
      c64 = Crc64(c64, buf.data() + pos, piece);
      pos += piece;
    }
    ASSERT_EQ(c16, want16) << "round " << round;
    ASSERT_EQ(c64, want64) << "round " << round;
  }
}

// A single flipped bit anywhere changes both CRCs.
TEST_P(CrcTest, DetectsEveryBitFlipInAnInterval) {
  auto buf = RandomBytes(512, 13);
  const uint16_t c16 = Crc16(0, buf.data(), buf.size());
  const uint64_t c64 = Crc64(0, buf.data(), buf.size());
  for (size_t bit = 0; bit < buf.size() * 8; bit++) {
    buf[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    ASSERT_NE(Crc16(0, buf.data(), buf.size()), c16) << "bit " << bit;
    ASSERT_NE(Crc64(0, buf.data(), buf.size()), c64) << "bit " << bit;
    buf[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
  }
}

// ---- The carry-less multiply code against the tables ----

class ClmulTest : public ::testing::TestWithParam<CrcImpl> {
 protected:
  void SetUp() override {
    if (!CpuCanRun(GetParam())) GTEST_SKIP() << "CPU cannot run " << CrcImplName(GetParam());
  }
  uint16_t Crc16(uint16_t crc, const void* data, size_t len) const {
    return Crc16With(GetParam(), crc, data, len);
  }
  uint64_t Crc64(uint64_t crc, const void* data, size_t len) const {
    return Crc64With(GetParam(), crc, data, len);
  }
};

INSTANTIATE_TEST_SUITE_P(Impls, ClmulTest, ::testing::Values(CrcImpl::kClmul, CrcImpl::kVpclmul),
                         [](const ::testing::TestParamInfo<CrcImpl>& param) {
                           return CrcImplName(param.param);
                         });

TEST_P(ClmulTest, MatchesPortableForEveryLengthUpTo1024) {
  const auto buf = RandomBytes(1024 + 64, 21);
  std::mt19937_64 rng(22);
  for (size_t len = 0; len <= 1024; len++) {
    const size_t off = rng() % 64;
    const unsigned char* p = buf.data() + off;
    const uint64_t seed = rng();
    ASSERT_EQ(Crc16(0, p, len), Crc16T10DifPortable(0, p, len)) << "len " << len;
    ASSERT_EQ(Crc16(static_cast<uint16_t>(seed), p, len),
              Crc16T10DifPortable(static_cast<uint16_t>(seed), p, len))
        << "len " << len;
    ASSERT_EQ(Crc64(0, p, len), Crc64NvmePortable(0, p, len)) << "len " << len;
    ASSERT_EQ(Crc64(seed, p, len), Crc64NvmePortable(seed, p, len)) << "len " << len;
  }
}

TEST_P(ClmulTest, MatchesPortableOnLargeUnalignedBuffers) {
  const auto buf = RandomBytes((1 << 20) + 64, 31);
  for (size_t len : {size_t{65536}, size_t{65537}, size_t{65536 + 127}, size_t{99999},
                     size_t{1} << 20, (size_t{1} << 20) + 15}) {
    for (size_t off : {0, 1, 3, 8, 15}) {
      const unsigned char* p = buf.data() + off;
      ASSERT_EQ(Crc16(0, p, len), Crc16T10DifPortable(0, p, len))
          << "len " << len << " off " << off;
      ASSERT_EQ(Crc64(0, p, len), Crc64NvmePortable(0, p, len)) << "len " << len << " off " << off;
    }
  }
}

TEST_P(ClmulTest, ChainedRandomPiecesMatchPortableOneShot) {
  const auto buf = RandomBytes(300000, 41);
  std::mt19937_64 rng(42);
  for (int round = 0; round < 20; round++) {
    const size_t start = rng() % 16;
    const size_t len = buf.size() - 16 - rng() % 1000;
    uint16_t c16 = 0;
    uint64_t c64 = 0;
    for (size_t pos = 0; pos < len;) {
      // Mostly short pieces, with some long enough for the 8-lane loop.
      const size_t cap = (rng() % 4 == 0) ? 20000 : 300;
      const size_t piece = std::min<size_t>(len - pos, rng() % cap);
      c16 = Crc16(c16, buf.data() + start + pos, piece);
      c64 = Crc64(c64, buf.data() + start + pos, piece);
      pos += piece;
    }
    ASSERT_EQ(c16, Crc16T10DifPortable(0, buf.data() + start, len)) << "round " << round;
    ASSERT_EQ(c64, Crc64NvmePortable(0, buf.data() + start, len)) << "round " << round;
  }
}

// ---- Dispatch ----

TEST(DispatchTest, DefaultFollowsCpuAndCanBeForced) {
  const CrcImpl best = CpuHasVpclmul() ? CrcImpl::kVpclmul
                       : CpuHasClmul() ? CrcImpl::kClmul
                                       : CrcImpl::kPortable;
  EXPECT_EQ(ActiveCrcImpl(), best);
  const auto buf = RandomBytes(4096, 51);
  const uint64_t want64 = Crc64NvmePortable(0, buf.data(), buf.size());
  const uint16_t want16 = Crc16T10DifPortable(0, buf.data(), buf.size());

  for (CrcImpl impl : {CrcImpl::kPortable, CrcImpl::kClmul, CrcImpl::kVpclmul}) {
    if (!CpuCanRun(impl)) continue;
    SetCrcImplForTesting(impl);
    EXPECT_EQ(ActiveCrcImpl(), impl) << CrcImplName(impl);
    EXPECT_EQ(Crc64Nvme(0, buf.data(), buf.size()), want64) << CrcImplName(impl);
    EXPECT_EQ(Crc16T10Dif(0, buf.data(), buf.size()), want16) << CrcImplName(impl);
    EXPECT_EQ(ComputeGuard(GuardKind::kCrc64Nvme, buf.data(), buf.size()), want64);
    EXPECT_EQ(ComputeGuard(GuardKind::kCrc16T10Dif, buf.data(), buf.size()), want16);
  }
  SetCrcImplForTesting(best);
}

TEST(GuardTest, Xxh3) {
  EXPECT_EQ(Xxh3("", 0), 0x2D06800538D394C2ull);  // XXH3_64bits of the empty input, seed 0
  const auto buf = RandomBytes(4096, 61);
  const uint64_t h = Xxh3(buf.data(), buf.size());
  EXPECT_EQ(ComputeGuard(GuardKind::kXxh3, buf.data(), buf.size()), h);
  auto flipped = buf;
  flipped[100] ^= 1;
  EXPECT_NE(Xxh3(flipped.data(), flipped.size()), h);
}

// ---- Tuples ----

TEST(TupleTest, T10Layout) {
  const Profile p{GuardKind::kCrc16T10Dif, Type::kType1, 512};
  ASSERT_EQ(p.tuple_size(), 8u);
  unsigned char out[10];
  std::memset(out, 0xEE, sizeof(out));
  const Tuple t{0x1234, 0x5678, 0x9ABCDEF0};
  EncodeTuple(p, t, out);
  const unsigned char want[10] = {0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0, 0xEE, 0xEE};
  EXPECT_EQ(0, std::memcmp(out, want, sizeof(want)));
  EXPECT_EQ(DecodeTuple(p, out), t);
}

TEST(TupleTest, SixteenByteLayouts) {
  for (GuardKind g : {GuardKind::kCrc64Nvme, GuardKind::kXxh3}) {
    const Profile p{g, Type::kType1, 4096};
    ASSERT_EQ(p.tuple_size(), 16u);
    unsigned char out[18];
    std::memset(out, 0xEE, sizeof(out));
    const Tuple t{0x0123456789ABCDEF, 0xBEEF, 0xA1B2C3D4E5F6};
    EncodeTuple(p, t, out);
    const unsigned char want[18] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xBE,
                                    0xEF, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0xEE, 0xEE};
    EXPECT_EQ(0, std::memcmp(out, want, sizeof(want))) << static_cast<int>(g);
    EXPECT_EQ(DecodeTuple(p, out), t);
  }
}

TEST(TupleTest, RoundTripsRandomTuples) {
  std::mt19937_64 rng(71);
  for (GuardKind g : {GuardKind::kCrc16T10Dif, GuardKind::kCrc64Nvme, GuardKind::kXxh3}) {
    const Profile p{g, Type::kType1, 4096};
    const uint64_t guard_mask = g == GuardKind::kCrc16T10Dif ? 0xFFFF : ~uint64_t{0};
    for (int i = 0; i < 1000; i++) {
      Tuple t{rng() & guard_mask, static_cast<uint16_t>(rng()), rng() & p.ref_tag_mask()};
      unsigned char buf[16];
      EncodeTuple(p, t, buf);
      ASSERT_EQ(DecodeTuple(p, buf), t);
    }
  }
}

TEST(TupleTest, EncodeTruncatesReferenceTagToItsWidth) {
  unsigned char buf[16];
  const Profile t10{GuardKind::kCrc16T10Dif, Type::kType1, 512};
  EncodeTuple(t10, Tuple{1, 2, 0x123456789}, buf);
  EXPECT_EQ(DecodeTuple(t10, buf).ref_tag, 0x23456789u);
  const Profile nvme{GuardKind::kCrc64Nvme, Type::kType1, 4096};
  EncodeTuple(nvme, Tuple{1, 2, 0xAB0000000000FFull}, buf);
  EXPECT_EQ(DecodeTuple(nvme, buf).ref_tag, 0x0000000000FFull);
}

// ---- Tags ----

TEST(TagTest, AppTagForOwnerNeverEscapesAndNeighboursDiffer) {
  std::vector<uint64_t> starts = {
      0,          (1ull << 16) - 100, (1ull << 31) - 100, (1ull << 32) - 100, (1ull << 48) - 100,
      ~0ull - 200};
  std::mt19937_64 rng(81);
  for (int i = 0; i < 20; i++) starts.push_back(rng());
  for (uint64_t s : starts) {
    const uint64_t count = s == 0 ? (1u << 20) : 150;
    for (uint64_t ino = s; ino < s + count; ino++) {
      ASSERT_NE(AppTagForOwner(ino), kAppTagEscape) << "ino " << ino;
      ASSERT_NE(AppTagForOwner(ino), AppTagForOwner(ino + 1)) << "ino " << ino;
    }
  }
  // Inodes across 2^22 of the 65536-aligned boundaries, where the high part changes.
  for (uint64_t ino = 0xFFFF; ino < (uint64_t{1} << 38); ino += 0x10000) {
    ASSERT_NE(AppTagForOwner(ino), AppTagForOwner(ino + 1)) << "ino " << ino;
  }
  // The tags are spread out, not a handful of values.
  std::set<uint16_t> tags;
  for (uint64_t ino = 1; ino <= 65536; ino++) tags.insert(AppTagForOwner(ino));
  EXPECT_GE(tags.size(), 65000u);
}

TEST(TagTest, RefTagFor) {
  const Profile t10_1{GuardKind::kCrc16T10Dif, Type::kType1, 512};
  const Profile nvme_1{GuardKind::kCrc64Nvme, Type::kType1, 4096};
  const Profile t10_3{GuardKind::kCrc16T10Dif, Type::kType3, 512};
  const Profile xxh_3{GuardKind::kXxh3, Type::kType3, 4096};
  EXPECT_EQ(RefTagFor(t10_1, 0x123456789), 0x23456789u);
  EXPECT_EQ(RefTagFor(nvme_1, 0xABCD123456789ABCull), 0x123456789ABCull);
  EXPECT_EQ(RefTagFor(nvme_1, 7), 7u);
  EXPECT_EQ(RefTagFor(t10_3, 7), kRefTagEscape32);
  EXPECT_EQ(RefTagFor(xxh_3, 7), kRefTagEscape48);
}

// ---- Generate and Verify over every format, type and interval ----

struct PiCase {
  GuardKind guard;
  Type type;
  uint32_t interval;
};

std::string CaseName(const ::testing::TestParamInfo<PiCase>& info) {
  const Profile p{info.param.guard, info.param.type, info.param.interval};
  std::string s = p.ToString();
  for (char& c : s) {
    if (c == '-' || c == ',') c = '_';
  }
  return s;
}

std::vector<PiCase> AllCases() {
  std::vector<PiCase> v;
  for (GuardKind g : {GuardKind::kCrc16T10Dif, GuardKind::kCrc64Nvme, GuardKind::kXxh3}) {
    for (Type t : {Type::kType1, Type::kType3}) {
      for (uint32_t i : {512u, 4096u}) v.push_back({g, t, i});
    }
  }
  return v;
}

class PiTest : public ::testing::TestWithParam<PiCase> {
 protected:
  static constexpr size_t kIntervals = 6;
  static constexpr uint64_t kSector = 1000;
  static constexpr uint64_t kIno = 42;

  PiTest()
      : p_{GetParam().guard, GetParam().type, GetParam().interval},
        app_(AppTagForOwner(kIno)),
        data_(RandomBytes(kIntervals * p_.interval, 91)),
        tuples_(kIntervals * p_.tuple_size()) {
    Generate(p_, data_.data(), data_.size(), kSector, app_, tuples_.data());
  }

  bool Check(uint64_t sector, uint16_t app, Mismatch* m) const {
    return Verify(p_, data_.data(), data_.size(), tuples_.data(), sector, app, m);
  }
  Tuple Get(size_t i) const { return DecodeTuple(p_, tuples_.data() + i * p_.tuple_size()); }
  void Put(size_t i, const Tuple& t) { EncodeTuple(p_, t, tuples_.data() + i * p_.tuple_size()); }
  uint64_t GuardOf(size_t i) const {
    return ComputeGuard(p_.guard, data_.data() + i * p_.interval, p_.interval);
  }
  bool Type1() const { return p_.type == Type::kType1; }

  Profile p_;
  uint16_t app_;
  std::vector<unsigned char> data_;
  std::vector<unsigned char> tuples_;
};

INSTANTIATE_TEST_SUITE_P(AllProfiles, PiTest, ::testing::ValuesIn(AllCases()), CaseName);

TEST_P(PiTest, GeneratesTheDocumentedTuples) {
  for (size_t i = 0; i < kIntervals; i++) {
    const Tuple t = Get(i);
    EXPECT_EQ(t.guard, GuardOf(i)) << i;
    EXPECT_EQ(t.app_tag, app_) << i;
    EXPECT_EQ(t.ref_tag, Type1() ? kSector + i : p_.ref_tag_mask()) << i;
  }
}

TEST_P(PiTest, CleanDataPasses) {
  Mismatch m;
  m.field = Field::kAppTag;
  EXPECT_TRUE(Check(kSector, app_, &m));
  EXPECT_EQ(m.field, Field::kNone);
}

TEST_P(PiTest, FlippedDataBitFailsGuard) {
  for (size_t i : {size_t{0}, size_t{3}, kIntervals - 1}) {
    const uint64_t good = GuardOf(i);
    const size_t byte = i * p_.interval + (i * 97) % p_.interval;
    data_[byte] ^= 0x10;
    Mismatch m;
    ASSERT_FALSE(Check(kSector, app_, &m)) << i;
    EXPECT_EQ(m.field, Field::kGuard);
    EXPECT_EQ(m.interval, i);
    EXPECT_EQ(m.expected, GuardOf(i));  // what the data now hashes to
    EXPECT_EQ(m.received, good);        // what the tuple holds
    data_[byte] ^= 0x10;
    ASSERT_TRUE(Check(kSector, app_, &m));
  }
}

TEST_P(PiTest, ModifiedGuardFails) {
  Tuple t = Get(2);
  const uint64_t good = t.guard;
  t.guard ^= 0x0101;
  Put(2, t);
  Mismatch m;
  ASSERT_FALSE(Check(kSector, app_, &m));
  EXPECT_EQ(m.field, Field::kGuard);
  EXPECT_EQ(m.interval, 2u);
  EXPECT_EQ(m.expected, good);
  EXPECT_EQ(m.received, good ^ 0x0101);
}

TEST_P(PiTest, WrongPlaceFailsOnlyUnderType1) {
  Mismatch m;
  if (Type1()) {
    ASSERT_FALSE(Check(kSector + 1, app_, &m));
    EXPECT_EQ(m.field, Field::kRefTag);
    EXPECT_EQ(m.interval, 0u);
    EXPECT_EQ(m.expected, kSector + 1);
    EXPECT_EQ(m.received, kSector);
  } else {
    EXPECT_TRUE(Check(kSector + 1, app_, &m));
    EXPECT_TRUE(Check(0, app_, &m));
  }
}

TEST_P(PiTest, WrongOwnerFailsOnlyUnderType1) {
  const uint16_t other = AppTagForOwner(kIno + 1);
  ASSERT_NE(other, app_);
  Mismatch m;
  if (Type1()) {
    ASSERT_FALSE(Check(kSector, other, &m));
    EXPECT_EQ(m.field, Field::kAppTag);
    EXPECT_EQ(m.interval, 0u);
    EXPECT_EQ(m.expected, other);
    EXPECT_EQ(m.received, app_);
  } else {
    EXPECT_TRUE(Check(kSector, other, &m));
  }
}

TEST_P(PiTest, ChecksRunRefThenAppThenGuard) {
  Tuple t = Get(1);
  t.guard ^= 1;
  t.app_tag ^= 1;
  t.ref_tag ^= 1;
  Put(1, t);
  Mismatch m;
  ASSERT_FALSE(Check(kSector, app_, &m));
  EXPECT_EQ(m.interval, 1u);
  if (!Type1()) {
    EXPECT_EQ(m.field, Field::kGuard);  // Type 3 checks the guard only
    return;
  }
  EXPECT_EQ(m.field, Field::kRefTag);
  t.ref_tag ^= 1;
  Put(1, t);
  ASSERT_FALSE(Check(kSector, app_, &m));
  EXPECT_EQ(m.field, Field::kAppTag);
  t.app_tag ^= 1;
  Put(1, t);
  ASSERT_FALSE(Check(kSector, app_, &m));
  EXPECT_EQ(m.field, Field::kGuard);
}

TEST_P(PiTest, EscapesSkipTheInterval) {
  Mismatch m;
  if (Type1()) {
    // Interval 2: escaped, with a bad reference tag and bad data; it must be skipped whole.
    Tuple t = Get(2);
    t.app_tag = kAppTagEscape;
    t.ref_tag ^= 0x55;
    Put(2, t);
    data_[2 * p_.interval + 5] ^= 0xFF;
    EXPECT_TRUE(Check(kSector, app_, &m));
    // The escape covers only its own interval.
    data_[3 * p_.interval + 5] ^= 0xFF;
    ASSERT_FALSE(Check(kSector, app_, &m));
    EXPECT_EQ(m.field, Field::kGuard);
    EXPECT_EQ(m.interval, 3u);
    // The reference tag escape does not disable a Type 1 interval.
    t = Get(4);
    t.ref_tag = p_.ref_tag_mask();
    Put(4, t);
    data_[3 * p_.interval + 5] ^= 0xFF;
    ASSERT_FALSE(Check(kSector, app_, &m));
    EXPECT_EQ(m.field, Field::kRefTag);
    EXPECT_EQ(m.interval, 4u);
    return;
  }
  data_[4 * p_.interval] ^= 0x01;
  ASSERT_FALSE(Check(kSector, app_, &m));
  EXPECT_EQ(m.interval, 4u);
  // The generated reference tag is already the escape; adding the application tag escape
  // disables the interval.
  Tuple t = Get(4);
  ASSERT_EQ(t.ref_tag, p_.ref_tag_mask());
  t.app_tag = kAppTagEscape;
  Put(4, t);
  EXPECT_TRUE(Check(kSector, app_, &m));
  // The application tag escape alone is not enough.
  t.ref_tag = 12345;
  Put(4, t);
  ASSERT_FALSE(Check(kSector, app_, &m));
  EXPECT_EQ(m.field, Field::kGuard);
  EXPECT_EQ(m.interval, 4u);
  // Nor is the reference tag escape of the other tuple width.
  if (p_.tuple_size() == 16) {
    t.ref_tag = kRefTagEscape32;
    Put(4, t);
    ASSERT_FALSE(Check(kSector, app_, &m));
    EXPECT_EQ(m.interval, 4u);
  }
}

TEST_P(PiTest, DescribeMismatchNamesEverything) {
  data_[3 * p_.interval + 1] ^= 0x80;
  Mismatch m;
  ASSERT_FALSE(Check(kSector, app_, &m));
  const std::string s = DescribeMismatch(p_, kIno, 1 << 20, m);
  const int digits = p_.tuple_size() == 8 ? 4 : 16;
  char expected[40], received[40];
  std::snprintf(expected, sizeof(expected), "expected 0x%0*llx", digits,
                static_cast<unsigned long long>(m.expected));
  std::snprintf(received, sizeof(received), "received 0x%0*llx", digits,
                static_cast<unsigned long long>(m.received));
  EXPECT_NE(s.find("inode 42 "), std::string::npos) << s;
  EXPECT_NE(s.find("offset " + std::to_string((1 << 20) + 3 * p_.interval)), std::string::npos)
      << s;
  EXPECT_NE(s.find("guard mismatch"), std::string::npos) << s;
  EXPECT_NE(s.find(expected), std::string::npos) << s;
  EXPECT_NE(s.find(received), std::string::npos) << s;
}

TEST(DescribeMismatchTest, ExactForms) {
  const Profile t10{GuardKind::kCrc16T10Dif, Type::kType1, 4096};
  EXPECT_EQ(DescribeMismatch(t10, 12, 0, Mismatch{2, Field::kRefTag, 2, 5}),
            "inode 12 offset 8192: reference tag mismatch: expected 0x00000002 received "
            "0x00000005");
  EXPECT_EQ(DescribeMismatch(t10, 12, 512, Mismatch{0, Field::kGuard, 0xD0DB, 0xBEEF}),
            "inode 12 offset 512: guard mismatch: expected 0xd0db received 0xbeef");
  const Profile nvme{GuardKind::kCrc64Nvme, Type::kType1, 512};
  EXPECT_EQ(DescribeMismatch(nvme, 7, 4096, Mismatch{3, Field::kGuard, 0xAE8B14860A799888, 1}),
            "inode 7 offset 5632: guard mismatch: expected 0xae8b14860a799888 received "
            "0x0000000000000001");
  EXPECT_EQ(DescribeMismatch(nvme, 7, 0, Mismatch{1, Field::kRefTag, 0x10, 0xABCDEF}),
            "inode 7 offset 512: reference tag mismatch: expected 0x000000000010 received "
            "0x000000abcdef");
  EXPECT_EQ(DescribeMismatch(nvme, 7, 0, Mismatch{0, Field::kAppTag, 0x12, 0xFFFE}),
            "inode 7 offset 0: application tag mismatch: expected 0x0012 received 0xfffe");
}

TEST(FieldNameTest, Names) {
  EXPECT_STREQ(FieldName(Field::kGuard), "guard");
  EXPECT_STREQ(FieldName(Field::kAppTag), "application tag");
  EXPECT_STREQ(FieldName(Field::kRefTag), "reference tag");
}

// ---- Profiles ----

TEST(ProfileTest, DefaultsAndValidate) {
  const Profile d;
  EXPECT_EQ(d.guard, GuardKind::kCrc64Nvme);
  EXPECT_EQ(d.type, Type::kType1);
  EXPECT_EQ(d.interval, 4096u);
  EXPECT_EQ(d.ToString(), "crc64-nvme,type1,4096");
  EXPECT_TRUE(d.Validate().ok());
  for (const PiCase& c : AllCases()) {
    EXPECT_TRUE((Profile{c.guard, c.type, c.interval}).Validate().ok());
  }
  EXPECT_TRUE((Profile{GuardKind::kXxh3, Type::kType1, 1024}).Validate().IsInvalidArgument());
  EXPECT_TRUE(
      (Profile{GuardKind::kXxh3, static_cast<Type>(2), 4096}).Validate().IsInvalidArgument());
  EXPECT_TRUE(
      (Profile{static_cast<GuardKind>(0), Type::kType1, 4096}).Validate().IsInvalidArgument());
}

TEST(ProfileTest, ParseAcceptsDocumentedForms) {
  struct {
    const char* text;
    Profile want;
  } cases[] = {
      {"crc64-nvme", Profile{}},
      {"crc16-t10dif", {GuardKind::kCrc16T10Dif, Type::kType1, 4096}},
      {"xxh3,type3", {GuardKind::kXxh3, Type::kType3, 4096}},
      {"crc16-t10dif,512", {GuardKind::kCrc16T10Dif, Type::kType1, 512}},
      {"crc16-t10dif,type3,512", {GuardKind::kCrc16T10Dif, Type::kType3, 512}},
      {"crc64-nvme,type1,4096", Profile{}},
  };
  for (const auto& c : cases) {
    Profile p{GuardKind::kXxh3, Type::kType3, 512};
    ASSERT_TRUE(Profile::Parse(c.text, &p).ok()) << c.text;
    EXPECT_EQ(p, c.want) << c.text;
  }
  for (const PiCase& c : AllCases()) {
    const Profile want{c.guard, c.type, c.interval};
    Profile got;
    ASSERT_TRUE(Profile::Parse(want.ToString(), &got).ok()) << want.ToString();
    EXPECT_EQ(got, want);
  }
}

TEST(ProfileTest, ParseRejectsBadForms) {
  for (const char* text : {"",
                           "crc32",
                           "crc64",
                           "CRC64-NVME",
                           " crc64-nvme",
                           "crc64-nvme ",
                           "crc64-nvme,1024",
                           "crc64-nvme,type2",
                           "crc64-nvme,type0",
                           "crc64-nvme,type",
                           "junk",
                           "crc64-nvme,",
                           ",crc64-nvme",
                           "crc64-nvme,,4096",
                           "crc64-nvme,4096,type1",
                           "crc64-nvme,type1,4096,x",
                           "crc64-nvme,type1,type3",
                           "crc64-nvme,4096,512",
                           "type1,4096",
                           "4096",
                           "crc64-nvme,04096",
                           "crc64-nvme,type1,4096,"}) {
    Profile p{GuardKind::kXxh3, Type::kType3, 512};
    const Status s = Profile::Parse(text, &p);
    EXPECT_TRUE(s.IsInvalidArgument()) << "\"" << text << "\": " << s.ToString();
    EXPECT_EQ(p, (Profile{GuardKind::kXxh3, Type::kType3, 512})) << text;  // left untouched
  }
}

}  // namespace
}  // namespace stablefs::pi
