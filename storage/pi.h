// Protection information (PI): tuple formats, guards, and Generate/Verify over fixed intervals.
//
// This is the pure library behind guarantees 1 and 2: it knows nothing of files or stores. Data is
// cut into protection intervals of 512 or 4096 bytes; each interval gets one tuple:
//
//   T10 DIF (8 bytes):        be16 guard (CRC-16/T10-DIF), be16 application tag, be32 reference tag
//   NVMe 64b guard (16 bytes): be64 guard (CRC-64/NVME), be16 application tag, be48 reference tag
//   XXH3 (16 bytes):          be64 guard (XXH3-64, seed 0), be16 application tag, be48 reference
//   tag
//
// Type 1: the reference tag is the interval's logical sector number (truncated to the tag's
// width) and is checked, as is the application tag; an application tag of 0xFFFF (the escape)
// disables checking of that interval, as block/t10-pi.c does.
// Type 3: the reference tag is the escape value (all ones) and only the guard is checked; an
// interval whose application tag and reference tag are both escapes is not checked at all.
//
// Checks run in the kernel's order: reference tag, application tag, guard. A failure names the
// interval, the field, and the expected and received values; the caller adds the inode and the
// file offset (DescribeMismatch).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "storage/status.h"

namespace stablefs::pi {

enum class GuardKind : uint8_t {
  kCrc16T10Dif = 1,  // 8-byte T10 tuple
  kCrc64Nvme = 2,    // 16-byte NVMe tuple
  kXxh3 = 3,         // 16-byte tuple, XXH3-64 guard
};

enum class Type : uint8_t {
  kType1 = 1,  // guard, application tag and reference tag checked
  kType3 = 3,  // guard only
};

inline constexpr uint16_t kAppTagEscape = 0xFFFF;
inline constexpr uint64_t kRefTagEscape32 = 0xFFFFFFFFull;
inline constexpr uint64_t kRefTagEscape48 = 0xFFFFFFFFFFFFull;

// How a store protects its data. Chosen at mkfs time and recorded in the superblock.
struct Profile {
  // Default: kCrc64Nvme. A 64-bit guard over 4 KiB intervals, as NVMe's 64b Guard format; the
  // 16-bit CRC of classic DIF was sized for 512-byte sectors.
  GuardKind guard = GuardKind::kCrc64Nvme;
  // Default: kType1, so a block in the wrong place or the wrong file fails verification.
  Type type = Type::kType1;
  // Bytes per protection interval, 512 or 4096. Default: 4096.
  uint32_t interval = 4096;

  // 8 for kCrc16T10Dif, 16 for the others.
  size_t tuple_size() const { return guard == GuardKind::kCrc16T10Dif ? 8 : 16; }
  // All-ones mask of the reference tag's width: 32 bits (T10) or 48 bits (16-byte tuples).
  uint64_t ref_tag_mask() const {
    return guard == GuardKind::kCrc16T10Dif ? kRefTagEscape32 : kRefTagEscape48;
  }
  // Ok if every field holds a value listed above.
  Status Validate() const;
  // "crc64-nvme,type1,4096": the form Parse() reads and mkfs prints.
  std::string ToString() const;
  // Parses "GUARD[,typeN][,INTERVAL]" with GUARD one of crc16-t10dif, crc64-nvme, xxh3; fields
  // left out keep their defaults. Rejects anything else with InvalidArgument.
  static Status Parse(std::string_view text, Profile* out);

  bool operator==(const Profile&) const = default;
};

// One decoded tuple. guard holds 16 or 64 significant bits; ref_tag 32 or 48.
struct Tuple {
  uint64_t guard = 0;
  uint16_t app_tag = 0;
  uint64_t ref_tag = 0;
  bool operator==(const Tuple&) const = default;
};

// Writes/reads p.tuple_size() bytes, big-endian, in the layouts above.
void EncodeTuple(const Profile& p, const Tuple& t, void* dst);
Tuple DecodeTuple(const Profile& p, const void* src);

// ---- Guards ----
// CRC-16/T10-DIF: poly 0x8BB7, init 0, not reflected, no final xor. Chains: pass the previous
// result as `crc` (0 to start), so Crc16T10Dif(Crc16T10Dif(0, a), b) == Crc16T10Dif(0, a||b).
uint16_t Crc16T10Dif(uint16_t crc, const void* data, size_t len);
// CRC-64/NVME: poly 0xAD93D23594C93659, reflected, init and final xor all ones. Chains the same
// way (the complement is applied inside), as zlib's crc32() does.
uint64_t Crc64Nvme(uint64_t crc, const void* data, size_t len);
// XXH3-64 with seed 0 (xxHash). Does not chain.
uint64_t Xxh3(const void* data, size_t len);
// The guard of one interval under kind `g`.
uint64_t ComputeGuard(GuardKind g, const void* data, size_t len);

// The CRCs have three implementations: a portable table-driven one, one using carry-less
// multiply on 128-bit registers (PCLMULQDQ), and one on 512-bit registers (VPCLMULQDQ with
// AVX-512), the best the CPU has chosen at run time. All are always compiled and the tests run
// each the CPU can.
enum class CrcImpl : uint8_t { kPortable, kClmul, kVpclmul };
bool CpuHasClmul();
// VPCLMULQDQ, AVX-512 F/BW/VL with the OS saving their registers, and CpuHasClmul().
bool CpuHasVpclmul();
// Whether this CPU can run `impl`.
bool CpuCanRun(CrcImpl impl);
// The implementation Crc16T10Dif/Crc64Nvme use now.
CrcImpl ActiveCrcImpl();
// Forces one implementation (one CpuCanRun; otherwise the portable one); for tests and
// benchmarks.
void SetCrcImplForTesting(CrcImpl impl);
uint16_t Crc16T10DifPortable(uint16_t crc, const void* data, size_t len);
uint64_t Crc64NvmePortable(uint64_t crc, const void* data, size_t len);
// REQUIRE: CpuHasClmul().
uint16_t Crc16T10DifClmul(uint16_t crc, const void* data, size_t len);
uint64_t Crc64NvmeClmul(uint64_t crc, const void* data, size_t len);
// REQUIRE: CpuHasVpclmul().
uint16_t Crc16T10DifVpclmul(uint16_t crc, const void* data, size_t len);
uint64_t Crc64NvmeVpclmul(uint64_t crc, const void* data, size_t len);

// ---- Binding to a place and an owner ----
// The application tag of blocks owned by inode `ino`: a 16-bit mix of the inode number, never
// the escape value.
uint16_t AppTagForOwner(uint64_t ino);
// The reference tag under p of the interval whose logical sector number is `sector`: the sector
// truncated to the tag's width (Type 1) or the escape (Type 3).
uint64_t RefTagFor(const Profile& p, uint64_t sector);

// ---- Generate and verify ----
// Writes len / p.interval tuples to `tuples` for `data`, whose first interval has logical sector
// number `first_sector` and whose owner tag is `app_tag`.
// REQUIRES: len is a multiple of p.interval.
void Generate(const Profile& p, const void* data, size_t len, uint64_t first_sector,
              uint16_t app_tag, void* tuples);

enum class Field : uint8_t { kNone, kGuard, kAppTag, kRefTag };
const char* FieldName(Field f);  // "guard", "application tag", "reference tag"

struct Mismatch {
  size_t interval = 0;  // index of the failing interval within the buffer
  Field field = Field::kNone;
  uint64_t expected = 0;
  uint64_t received = 0;
};

// Checks every interval of `data` against its tuple. Returns true if all pass; otherwise false,
// with *m describing the first failing interval. REQUIRES: len is a multiple of p.interval.
bool Verify(const Profile& p, const void* data, size_t len, const void* tuples,
            uint64_t first_sector, uint16_t app_tag, Mismatch* m);

// "inode 12 offset 8192: reference tag mismatch: expected 0x00000002 received 0x00000005"
// where offset = data_offset + m.interval * p.interval.
std::string DescribeMismatch(const Profile& p, uint64_t ino, uint64_t data_offset,
                             const Mismatch& m);

}  // namespace stablefs::pi
