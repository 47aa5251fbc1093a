// A kData value (4 KiB of data followed by its tuples) as the store reads it back, on any bytes:
// every tuple decodes and re-encodes to its bytes; Verify never crashes, accepts exactly the
// tuples Generate makes (or escaped ones), and names a failing interval inside the block; the
// portable and carry-less-multiply CRCs agree on any bytes, split anywhere. The input is a header
// (seeds.h: profile, inode, block index, CRC split point) and then the value.
#include <string>

#include "storage/coding.h"
#include "storage/format.h"
#include "storage/pi.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/seeds.h"

namespace stablefs {
namespace {

bool Escaped(const pi::Profile& p, const pi::Tuple& t) {
  if (p.type == pi::Type::kType1) return t.app_tag == pi::kAppTagEscape;
  return t.app_tag == pi::kAppTagEscape && t.ref_tag == p.ref_tag_mask();
}

void CheckBlock(const pi::Profile& profile, uint64_t ino, uint64_t index, std::string value) {
  const size_t ts = profile.tuple_size();
  const size_t n = TuplesPerBlock(profile);
  value.resize(kBlockSize + TupleBytesPerBlock(profile));
  const char* data = value.data();
  const char* tuples = value.data() + kBlockSize;
  for (size_t i = 0; i < n; i++) {
    char again[16];
    pi::EncodeTuple(profile, pi::DecodeTuple(profile, tuples + i * ts), again);
    FUZZ_CHECK(std::string_view(again, ts) == std::string_view(tuples + i * ts, ts));
  }

  const uint64_t first = FirstSectorOfBlock(profile, index);
  const uint16_t app_tag = pi::AppTagForOwner(ino);
  FUZZ_CHECK(app_tag != pi::kAppTagEscape);
  std::string fresh(TupleBytesPerBlock(profile), '\0');
  pi::Generate(profile, data, kBlockSize, first, app_tag, fresh.data());
  FUZZ_CHECK(pi::Verify(profile, data, kBlockSize, fresh.data(), first, app_tag, nullptr));

  pi::Mismatch m;
  const bool ok = pi::Verify(profile, data, kBlockSize, tuples, first, app_tag, &m);
  if (std::string_view(tuples, fresh.size()) == fresh) FUZZ_CHECK(ok);
  if (!ok) {
    FUZZ_CHECK(m.interval < n && m.field != pi::Field::kNone && m.expected != m.received);
    FUZZ_CHECK(!pi::DescribeMismatch(profile, ino, index * kBlockSize, m).empty());
    return;
  }
  // Accepted: each tuple is escaped, or carries the guard (type 3) or the whole tuple (type 1)
  // that Generate computes.
  for (size_t i = 0; i < n; i++) {
    const pi::Tuple got = pi::DecodeTuple(profile, tuples + i * ts);
    const pi::Tuple want = pi::DecodeTuple(profile, fresh.data() + i * ts);
    if (Escaped(profile, got)) continue;
    FUZZ_CHECK(got.guard == want.guard);
    if (profile.type == pi::Type::kType1) FUZZ_CHECK(got == want);
  }
}

// The run-time choice of CRC implementation must not change any guard.
void CheckCrcImplementations(const std::string& bytes, size_t split) {
  split = bytes.empty() ? 0 : split % (bytes.size() + 1);
  const char* d = bytes.data();
  const size_t n = bytes.size();
  const uint16_t p16 =
      pi::Crc16T10DifPortable(pi::Crc16T10DifPortable(0, d, split), d + split, n - split);
  FUZZ_CHECK(p16 == pi::Crc16T10DifPortable(0, d, n));
  const uint64_t p64 =
      pi::Crc64NvmePortable(pi::Crc64NvmePortable(0, d, split), d + split, n - split);
  FUZZ_CHECK(p64 == pi::Crc64NvmePortable(0, d, n));
  if (pi::CpuHasClmul()) {
    FUZZ_CHECK(p16 ==
               pi::Crc16T10DifClmul(pi::Crc16T10DifClmul(0, d, split), d + split, n - split));
    FUZZ_CHECK(p64 == pi::Crc64NvmeClmul(pi::Crc64NvmeClmul(0, d, split), d + split, n - split));
  }
  if (pi::CpuHasVpclmul()) {
    FUZZ_CHECK(p16 ==
               pi::Crc16T10DifVpclmul(pi::Crc16T10DifVpclmul(0, d, split), d + split, n - split));
    FUZZ_CHECK(p64 ==
               pi::Crc64NvmeVpclmul(pi::Crc64NvmeVpclmul(0, d, split), d + split, n - split));
  }
}

}  // namespace
}  // namespace stablefs

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using stablefs::kBlockInputHeader;
  if (size < kBlockInputHeader) return 0;
  const char* in = reinterpret_cast<const char*>(data);
  const stablefs::pi::Profile profile = stablefs::ProfileNumber(data[0]);
  const uint64_t ino = stablefs::DecodeFixed64BE(in + 1);
  // Block indexes stop at 2^52 bytes / 4 KiB: the largest file offset.
  const uint64_t index = stablefs::DecodeFixed64BE(in + 9) & ((uint64_t{1} << 40) - 1);
  const size_t split = stablefs::DecodeFixed16BE(in + 17);
  const std::string rest(in + kBlockInputHeader, size - kBlockInputHeader);
  stablefs::CheckBlock(profile, ino, index, rest);
  stablefs::CheckCrcImplementations(rest, split);
  return 0;
}
