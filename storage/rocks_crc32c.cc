// See rocks_crc32c.h for why this file defines the wrapper of a RocksDB function.
#include "storage/rocks_crc32c.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>

// The linker's --wrap names: calls to rocksdb::crc32c::Extend land on WrappedExtend, and
// RealExtend is the library's definition.
uint32_t WrappedExtend(uint32_t crc, const char* buf,
                       size_t size) asm("__wrap__ZN7rocksdb6crc32c6ExtendEjPKcm");
uint32_t RealExtend(uint32_t crc, const char* buf,
                    size_t size) asm("__real__ZN7rocksdb6crc32c6ExtendEjPKcm");

namespace {

const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
const bool kHaveClmul = kHaveSse42 && __builtin_cpu_supports("pclmul");
std::atomic<bool> reached{false};

uint64_t Load64(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, 8);
  return word;
}

// One stream of CRC32 instructions over p[0, size), from the inner state l (not complemented).
__attribute__((target("sse4.2"))) uint64_t Crc32Stream(uint64_t l, const char* p, size_t size) {
  const char* end = p + size;
  while (p != end && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    l = _mm_crc32_u8(static_cast<uint32_t>(l), static_cast<uint8_t>(*p++));
  }
  while (end - p >= 8) {
    l = _mm_crc32_u64(l, Load64(p));
    p += 8;
  }
  while (p != end) l = _mm_crc32_u8(static_cast<uint32_t>(l), static_cast<uint8_t>(*p++));
  return l;
}

__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc, const char* buf, size_t size) {
  return static_cast<uint32_t>(Crc32Stream(crc ^ 0xffffffffu, buf, size)) ^ 0xffffffffu;
}

// Three streams. The CRC32 instruction has a latency of three cycles and a throughput of one, so
// one stream runs at a third of its speed. Three chunks A, B, C of L bytes each are run side by
// side, B and C from state 0, and joined: the state after A||B||C is
//   state(A) * x^(16L) + state(B) * x^(8L) + state(C)   (mod P).
// The products are one carry-less multiply and one CRC32 each: for 32-bit reflected a and b,
// CLMUL gives a*b*x as a 64-bit reflected value, and CRC32 of that word from state 0 multiplies
// by x^32, so b = x^(8n-33) mod P shifts a by n bytes.
constexpr uint32_t kCrc32cPoly = 0x1EDC6F41;  // normal order, x^32 implied

constexpr uint32_t XPowModCrc32c(unsigned n) {
  uint32_t r = 1;
  for (unsigned i = 0; i < n; i++) r = (r << 1) ^ ((r >> 31) ? kCrc32cPoly : 0);
  return r;
}
constexpr uint32_t Reflect32(uint32_t v) {
  uint32_t r = 0;
  for (int i = 0; i < 32; i++) r |= ((v >> i) & 1) << (31 - i);
  return r;
}
constexpr uint32_t ShiftConst(size_t bytes) {
  return Reflect32(XPowModCrc32c(static_cast<unsigned>(8 * bytes - 33)));
}
// Spot check: x^31 is its own residue, and x^32 = P - x^32.
static_assert(XPowModCrc32c(31) == 0x80000000u && XPowModCrc32c(32) == kCrc32cPoly);

__attribute__((target("sse4.2,pclmul"))) inline uint64_t Shift(uint64_t l, uint32_t k) {
  const __m128i product = _mm_clmulepi64_si128(_mm_cvtsi32_si128(static_cast<int>(l)),
                                               _mm_cvtsi32_si128(static_cast<int>(k)), 0x00);
  return _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(product)));
}

// Rounds of three L-byte chunks while they fit. REQUIRES: p 8-byte aligned, L a multiple of 8.
template <size_t L>
__attribute__((target("sse4.2,pclmul"))) uint64_t Crc32Rounds(uint64_t l, const char** pp,
                                                              const char* end) {
  constexpr uint32_t k1 = ShiftConst(L), k2 = ShiftConst(2 * L);
  const char* p = *pp;
  while (static_cast<size_t>(end - p) >= 3 * L) {
    uint64_t a = l, b = 0, c = 0;
    for (size_t i = 0; i < L; i += 8) {
      a = _mm_crc32_u64(a, Load64(p + i));
      b = _mm_crc32_u64(b, Load64(p + L + i));
      c = _mm_crc32_u64(c, Load64(p + 2 * L + i));
    }
    l = Shift(a, k2) ^ Shift(b, k1) ^ c;
    p += 3 * L;
  }
  *pp = p;
  return l;
}

__attribute__((target("sse4.2,pclmul"))) uint32_t ExtendSse42Clmul(uint32_t crc, const char* buf,
                                                                   size_t size) {
  uint64_t l = crc ^ 0xffffffffu;
  const char* p = buf;
  const char* const end = buf + size;
  const size_t head = std::min<size_t>(size, (8 - (reinterpret_cast<uintptr_t>(p) & 7)) & 7);
  l = Crc32Stream(l, p, head);
  p += head;
  l = Crc32Rounds<1024>(l, &p, end);
  l = Crc32Rounds<128>(l, &p, end);
  l = Crc32Stream(l, p, static_cast<size_t>(end - p));
  return static_cast<uint32_t>(l) ^ 0xffffffffu;
}

}  // namespace

namespace {

uint32_t Extend(uint32_t crc, const char* buf, size_t size) {
  if (kHaveClmul) return ExtendSse42Clmul(crc, buf, size);
  if (kHaveSse42) return ExtendSse42(crc, buf, size);
  return RealExtend(crc, buf, size);
}

}  // namespace

uint32_t WrappedExtend(uint32_t crc, const char* buf, size_t size) {
  if (!reached.load(std::memory_order_relaxed)) reached.store(true, std::memory_order_relaxed);
  return Extend(crc, buf, size);
}

namespace stablefs {

bool RocksCrc32cReached() { return reached.load(std::memory_order_relaxed); }

void ResetRocksCrc32cReached() { reached.store(false, std::memory_order_relaxed); }

bool RocksCrc32cAccelerated() { return kHaveSse42; }

uint32_t RocksCrc32cExtend(uint32_t crc, const char* buf, size_t size) {
  return Extend(crc, buf, size);
}

uint32_t RocksCrc32cLibraryExtend(uint32_t crc, const char* buf, size_t size) {
  return RealExtend(crc, buf, size);
}

}  // namespace stablefs
