// CRC-16/T10-DIF and CRC-64/NVME by carry-less multiplication (PCLMULQDQ), as in Intel's "Fast
// CRC Computation for Generic Polynomials Using PCLMULQDQ" and the Linux kernel's crct10dif-pcl
// and crc64 code.
//
// A CRC is the message polynomial M(x), times x^w, modulo the generator P(x) of degree w. Any
// value congruent to M modulo P gives the same CRC, so the message can be "folded": a 128-bit
// block X followed by D more bits is replaced by X * x^D mod P, computed as two 64x64-bit
// carry-less products with the constants x^(D+64) mod P and x^D mod P, and XORed into the block D
// bits later. Eight 128-bit lanes fold independently across 1024 bits per step; the lanes then
// fold into one 128-bit value, the remaining whole blocks fold into that one at a time, and the
// portable table code (crc_portable.cc) finishes with those 16 bytes and any tail shorter than 16,
// instead of a Barrett reduction. The previous CRC is XORed into the first block, as the table
// code XORs it into its state. CRC-16/T10-DIF is not reflected, so each 16-byte load is
// byte-swapped and the register holds the polynomial in normal order. CRC-64/NVME is reflected:
// bytes are loaded as they are and bit 0 of the register is the highest-degree term, so the
// product of two reflected 64-bit values comes out multiplied by an extra x, and its constants
// are x^(D+63) and x^(D-1) mod P, bit-reversed. All constants are computed at compile time from
// the polynomials. The functions are compiled for PCLMULQDQ and SSE4.1 with a function attribute,
// so the rest of the build needs no -m flags; callers check CpuHasClmul() first. Other
// architectures get the portable code under the same names.
//
// The Vpclmul variants do the same four 128-bit lanes at a time in 512-bit registers
// (VPCLMULQDQ with AVX-512): four registers, sixteen lanes, 256 bytes per step. The registers
// fold into one across 512-bit distances, its four lanes into one 128-bit value, and the 128-bit
// code finishes. Callers check CpuHasVpclmul() first.
#include "storage/pi.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#define STABLEFS_TARGET_CLMUL __attribute__((target("pclmul,sse4.1")))
#define STABLEFS_TARGET_VPCLMUL \
  __attribute__((target("pclmul,sse4.1,avx512f,avx512bw,avx512vl,vpclmulqdq")))

namespace stablefs::pi {

namespace {

constexpr uint16_t kCrc16Poly = 0x8BB7;              // x^16 implied
constexpr uint64_t kCrc64Poly = 0xAD93D23594C93659;  // x^64 implied

// Inputs shorter than this go to the table code: folding saves nothing on them.
constexpr size_t kMinClmulLen = 64;

// x^n mod P, in normal order (bit i is the coefficient of x^i).
constexpr uint64_t XPowModCrc16(unsigned n) {
  uint32_t r = 1;
  for (unsigned i = 0; i < n; i++) {
    r <<= 1;
    if (r & 0x10000) r ^= 0x10000 | kCrc16Poly;
  }
  return r;
}
constexpr uint64_t XPowModCrc64(unsigned n) {
  uint64_t r = 1;
  for (unsigned i = 0; i < n; i++) r = (r << 1) ^ ((r >> 63) ? kCrc64Poly : 0);
  return r;
}
constexpr uint64_t Reflect64(uint64_t v) {
  uint64_t r = 0;
  for (int i = 0; i < 64; i++) r |= ((v >> i) & 1) << (63 - i);
  return r;
}

// The multipliers for the low and the high 64-bit half of a register folded across D bits.
struct FoldConsts {
  uint64_t lo;
  uint64_t hi;
};

// Normal order: the high half holds the higher-degree terms, X = X.hi * x^64 + X.lo.
constexpr FoldConsts Crc16Fold(unsigned d) { return {XPowModCrc16(d), XPowModCrc16(d + 64)}; }
// Reflected: the low half holds the higher-degree terms, and each product carries an extra x.
constexpr FoldConsts Crc64Fold(unsigned d) {
  return {Reflect64(XPowModCrc64(d + 63)), Reflect64(XPowModCrc64(d - 1))};
}

// Constants for the 8-lane loop (1024 bits) and for folding lane i of 8 into the last lane
// (128 * (7 - i) bits; lane[6] is the single-block fold across 128 bits).
struct FoldTable {
  FoldConsts by1024;
  FoldConsts lane[7];
};
constexpr FoldTable MakeFoldTable(FoldConsts (*fold)(unsigned)) {
  FoldTable t{};
  t.by1024 = fold(1024);
  for (unsigned i = 0; i < 7; i++) t.lane[i] = fold(128 * (7 - i));
  return t;
}
constexpr FoldTable kCrc16FoldTable = MakeFoldTable(Crc16Fold);
constexpr FoldTable kCrc64FoldTable = MakeFoldTable(Crc64Fold);

// Constants for the 512-bit code: across 2048 bits (the 4-register loop), across 1536, 1024 and
// 512 bits (register i of 4 into the last; 512 is also the one-register loop), and lane i of a
// register into its last lane (384, 256, 128 bits).
struct WideFoldTable {
  FoldConsts by2048;
  FoldConsts reg[3];
  FoldConsts lane[3];
};
constexpr WideFoldTable MakeWideFoldTable(FoldConsts (*fold)(unsigned)) {
  WideFoldTable t{};
  t.by2048 = fold(2048);
  for (unsigned i = 0; i < 3; i++) t.reg[i] = fold(512 * (3 - i));
  for (unsigned i = 0; i < 3; i++) t.lane[i] = fold(128 * (3 - i));
  return t;
}
constexpr WideFoldTable kCrc16WideFoldTable = MakeWideFoldTable(Crc16Fold);
constexpr WideFoldTable kCrc64WideFoldTable = MakeWideFoldTable(Crc64Fold);

// Spot checks: below the polynomial's degree a power is its own residue, and x^w = P - x^w.
static_assert(XPowModCrc16(15) == 0x8000 && XPowModCrc16(16) == kCrc16Poly);
static_assert(XPowModCrc64(63) == (uint64_t{1} << 63) && XPowModCrc64(64) == kCrc64Poly);

STABLEFS_TARGET_CLMUL inline __m128i Consts(const FoldConsts& k) {
  return _mm_set_epi64x(static_cast<long long>(k.hi), static_cast<long long>(k.lo));
}

// x * x^D mod P, up to congruence: x.lo * k.lo + x.hi * k.hi.
STABLEFS_TARGET_CLMUL inline __m128i Fold(__m128i x, __m128i k) {
  return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

STABLEFS_TARGET_CLMUL inline __m128i ByteSwapMask() {
  return _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

template <bool kSwap>
STABLEFS_TARGET_CLMUL inline __m128i Load(const unsigned char* p) {
  __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (kSwap) v = _mm_shuffle_epi8(v, ByteSwapMask());
  return v;
}

// Folds the whole 16-byte blocks of p[0, len) into one 128-bit value congruent to them modulo P,
// after XORing `init` into the first block. kSwap byte-swaps each block (normal-order CRCs).
// REQUIRES: len >= 16.
template <bool kSwap>
STABLEFS_TARGET_CLMUL __m128i FoldBlocks(const unsigned char* p, size_t len, __m128i init,
                                         const FoldTable& t) {
  const unsigned char* const end = p + (len & ~size_t{15});
  __m128i r;
  if (len >= 128) {
    __m128i x0 = _mm_xor_si128(Load<kSwap>(p), init);
    __m128i x1 = Load<kSwap>(p + 16);
    __m128i x2 = Load<kSwap>(p + 32);
    __m128i x3 = Load<kSwap>(p + 48);
    __m128i x4 = Load<kSwap>(p + 64);
    __m128i x5 = Load<kSwap>(p + 80);
    __m128i x6 = Load<kSwap>(p + 96);
    __m128i x7 = Load<kSwap>(p + 112);
    p += 128;
    const __m128i k = Consts(t.by1024);
    while (end - p >= 128) {
      x0 = _mm_xor_si128(Fold(x0, k), Load<kSwap>(p));
      x1 = _mm_xor_si128(Fold(x1, k), Load<kSwap>(p + 16));
      x2 = _mm_xor_si128(Fold(x2, k), Load<kSwap>(p + 32));
      x3 = _mm_xor_si128(Fold(x3, k), Load<kSwap>(p + 48));
      x4 = _mm_xor_si128(Fold(x4, k), Load<kSwap>(p + 64));
      x5 = _mm_xor_si128(Fold(x5, k), Load<kSwap>(p + 80));
      x6 = _mm_xor_si128(Fold(x6, k), Load<kSwap>(p + 96));
      x7 = _mm_xor_si128(Fold(x7, k), Load<kSwap>(p + 112));
      p += 128;
    }
    // Each lane straight into the last one: independent multiplies, then an XOR tree.
    const __m128i a = _mm_xor_si128(Fold(x0, Consts(t.lane[0])), Fold(x1, Consts(t.lane[1])));
    const __m128i b = _mm_xor_si128(Fold(x2, Consts(t.lane[2])), Fold(x3, Consts(t.lane[3])));
    const __m128i c = _mm_xor_si128(Fold(x4, Consts(t.lane[4])), Fold(x5, Consts(t.lane[5])));
    const __m128i d = _mm_xor_si128(Fold(x6, Consts(t.lane[6])), x7);
    r = _mm_xor_si128(_mm_xor_si128(a, b), _mm_xor_si128(c, d));
  } else {
    r = _mm_xor_si128(Load<kSwap>(p), init);
    p += 16;
  }
  const __m128i k128 = Consts(t.lane[6]);
  while (p < end) {
    r = _mm_xor_si128(Fold(r, k128), Load<kSwap>(p));
    p += 16;
  }
  return r;
}

// (The masked forms of broadcast and extract below start from zeros: GCC 12 warns about the
// unmasked ones' undefined start values.)
STABLEFS_TARGET_VPCLMUL inline __m512i WideConsts(const FoldConsts& k) {
  const auto lo = static_cast<long long>(k.lo), hi = static_cast<long long>(k.hi);
  return _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
}

// Each 128-bit lane of x times x^D mod P, XORed with y: x.lo * k.lo ^ x.hi * k.hi ^ y, per lane.
STABLEFS_TARGET_VPCLMUL inline __m512i WideFold(__m512i x, __m512i k, __m512i y) {
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                   _mm512_clmulepi64_epi128(x, k, 0x11), y, 0x96);
}

template <bool kSwap>
STABLEFS_TARGET_VPCLMUL inline __m512i WideLoad(const unsigned char* p) {
  __m512i v = _mm512_loadu_si512(p);
  if constexpr (kSwap) {
    const __m128i mask = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    v = _mm512_shuffle_epi8(v, _mm512_maskz_broadcast_i32x4(0xFFFF, mask));
  }
  return v;
}

// As FoldBlocks, 64 bytes per register. REQUIRES: len >= 256.
template <bool kSwap>
STABLEFS_TARGET_VPCLMUL __m128i WideFoldBlocks(const unsigned char* p, size_t len, __m128i init,
                                               const WideFoldTable& w, const FoldTable& t) {
  const unsigned char* const end = p + (len & ~size_t{15});
  __m512i x0 = _mm512_xor_si512(WideLoad<kSwap>(p), _mm512_zextsi128_si512(init));
  __m512i x1 = WideLoad<kSwap>(p + 64);
  __m512i x2 = WideLoad<kSwap>(p + 128);
  __m512i x3 = WideLoad<kSwap>(p + 192);
  p += 256;
  const __m512i k2048 = WideConsts(w.by2048);
  while (end - p >= 256) {
    x0 = WideFold(x0, k2048, WideLoad<kSwap>(p));
    x1 = WideFold(x1, k2048, WideLoad<kSwap>(p + 64));
    x2 = WideFold(x2, k2048, WideLoad<kSwap>(p + 128));
    x3 = WideFold(x3, k2048, WideLoad<kSwap>(p + 192));
    p += 256;
  }
  // The registers into the last one, then any remaining 64-byte blocks into it.
  __m512i r = WideFold(x0, WideConsts(w.reg[0]),
                       WideFold(x1, WideConsts(w.reg[1]), WideFold(x2, WideConsts(w.reg[2]), x3)));
  const __m512i k512 = WideConsts(w.reg[2]);
  while (end - p >= 64) {
    r = WideFold(r, k512, WideLoad<kSwap>(p));
    p += 64;
  }
  // The four lanes into the last one.
  const __m128i l0 = _mm512_maskz_extracti32x4_epi32(0xF, r, 0);
  const __m128i l1 = _mm512_maskz_extracti32x4_epi32(0xF, r, 1);
  const __m128i l2 = _mm512_maskz_extracti32x4_epi32(0xF, r, 2);
  const __m128i l3 = _mm512_maskz_extracti32x4_epi32(0xF, r, 3);
  __m128i x = _mm_xor_si128(_mm_xor_si128(Fold(l0, Consts(w.lane[0])), Fold(l1, Consts(w.lane[1]))),
                            _mm_xor_si128(Fold(l2, Consts(w.lane[2])), l3));
  const __m128i k128 = Consts(t.lane[6]);
  while (p < end) {
    x = _mm_xor_si128(Fold(x, k128), Load<kSwap>(p));
    p += 16;
  }
  return x;
}

}  // namespace

namespace {

// The CRC-16 state is the first two message bytes' worth of polynomial: the top of the first
// block.
STABLEFS_TARGET_CLMUL inline __m128i Crc16Init(uint16_t crc) {
  return _mm_set_epi64x(static_cast<long long>(uint64_t{crc} << 48), 0);
}

// The CRC-64 inner state (the complement of the previous result) covers the first eight bytes.
STABLEFS_TARGET_CLMUL inline __m128i Crc64Init(uint64_t crc) {
  return _mm_set_epi64x(0, static_cast<long long>(~crc));
}

// From r, congruent to the whole 16-byte blocks of p[0, len), to the CRC of p[0, len): the tables
// finish with r's 16 bytes and the tail shorter than 16.
STABLEFS_TARGET_CLMUL uint16_t Crc16Finish(__m128i r, const unsigned char* p, size_t len) {
  alignas(16) unsigned char last[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(last), _mm_shuffle_epi8(r, ByteSwapMask()));
  const size_t tail = len & 15;
  const uint16_t c = Crc16T10DifPortable(0, last, sizeof(last));
  return Crc16T10DifPortable(c, p + len - tail, tail);
}

STABLEFS_TARGET_CLMUL uint64_t Crc64Finish(__m128i r, const unsigned char* p, size_t len) {
  alignas(16) unsigned char last[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(last), r);
  const size_t tail = len & 15;
  // Crc64NvmePortable complements on entry and exit: ~0 starts it from an inner state of 0, and
  // its result chains into the tail.
  const uint64_t c = Crc64NvmePortable(~uint64_t{0}, last, sizeof(last));
  return Crc64NvmePortable(c, p + len - tail, tail);
}

// The 512-bit code pays for itself from a few hundred bytes on; shorter inputs take the 128-bit
// path (which sends the shortest on to the tables).
constexpr size_t kMinVpclmulLen = 256;

}  // namespace

STABLEFS_TARGET_CLMUL uint16_t Crc16T10DifClmul(uint16_t crc, const void* data, size_t len) {
  if (len < kMinClmulLen) return Crc16T10DifPortable(crc, data, len);
  const auto* p = static_cast<const unsigned char*>(data);
  return Crc16Finish(FoldBlocks<true>(p, len, Crc16Init(crc), kCrc16FoldTable), p, len);
}

STABLEFS_TARGET_CLMUL uint64_t Crc64NvmeClmul(uint64_t crc, const void* data, size_t len) {
  if (len < kMinClmulLen) return Crc64NvmePortable(crc, data, len);
  const auto* p = static_cast<const unsigned char*>(data);
  return Crc64Finish(FoldBlocks<false>(p, len, Crc64Init(crc), kCrc64FoldTable), p, len);
}

STABLEFS_TARGET_VPCLMUL uint16_t Crc16T10DifVpclmul(uint16_t crc, const void* data, size_t len) {
  if (len < kMinVpclmulLen) return Crc16T10DifClmul(crc, data, len);
  const auto* p = static_cast<const unsigned char*>(data);
  return Crc16Finish(
      WideFoldBlocks<true>(p, len, Crc16Init(crc), kCrc16WideFoldTable, kCrc16FoldTable), p, len);
}

STABLEFS_TARGET_VPCLMUL uint64_t Crc64NvmeVpclmul(uint64_t crc, const void* data, size_t len) {
  if (len < kMinVpclmulLen) return Crc64NvmeClmul(crc, data, len);
  const auto* p = static_cast<const unsigned char*>(data);
  return Crc64Finish(
      WideFoldBlocks<false>(p, len, Crc64Init(crc), kCrc64WideFoldTable, kCrc64FoldTable), p, len);
}

}  // namespace stablefs::pi

#else  // !x86

namespace stablefs::pi {

uint16_t Crc16T10DifClmul(uint16_t crc, const void* data, size_t len) {
  return Crc16T10DifPortable(crc, data, len);
}
uint64_t Crc64NvmeClmul(uint64_t crc, const void* data, size_t len) {
  return Crc64NvmePortable(crc, data, len);
}
uint16_t Crc16T10DifVpclmul(uint16_t crc, const void* data, size_t len) {
  return Crc16T10DifPortable(crc, data, len);
}
uint64_t Crc64NvmeVpclmul(uint64_t crc, const void* data, size_t len) {
  return Crc64NvmePortable(crc, data, len);
}

}  // namespace stablefs::pi

#endif
