// The portable, table-driven CRC-16/T10-DIF and CRC-64/NVME guards.
//
// Both use slicing-by-8: eight 256-entry tables, built at compile time, let one step consume
// eight bytes with eight independent lookups instead of eight dependent ones. Table k maps a byte
// to the CRC contribution of that byte followed by k zero bytes, so the eight lookups of one step
// XOR together into the state after all eight bytes. CRC-16/T10-DIF is not reflected (the most
// significant bit of each byte is the highest-degree term) and keeps its state in the low 16 bits;
// CRC-64/NVME is reflected and keeps the bit-reversed polynomial. These functions are the
// reference the PCLMULQDQ versions (crc_clmul.cc) are tested against, and those versions call
// them for short inputs and for the last bytes of long ones.
#include <array>
#include <bit>
#include <cstring>

#include "storage/pi.h"

namespace stablefs::pi {

namespace {

constexpr uint16_t kCrc16Poly = 0x8BB7;              // x^16 implied
constexpr uint64_t kCrc64Poly = 0xAD93D23594C93659;  // x^64 implied
constexpr uint64_t kCrc64PolyReflected = 0x9A6C9329AC4BC9B5;
static_assert(std::popcount(kCrc64Poly) == std::popcount(kCrc64PolyReflected));

constexpr uint64_t Reflect64(uint64_t v) {
  uint64_t r = 0;
  for (int i = 0; i < 64; i++) r |= ((v >> i) & 1) << (63 - i);
  return r;
}
static_assert(Reflect64(kCrc64Poly) == kCrc64PolyReflected);

using Crc16Tables = std::array<std::array<uint16_t, 256>, 8>;
using Crc64Tables = std::array<std::array<uint64_t, 256>, 8>;

constexpr Crc16Tables MakeCrc16Tables() {
  Crc16Tables t{};
  for (int b = 0; b < 256; b++) {
    uint16_t r = static_cast<uint16_t>(b << 8);
    for (int i = 0; i < 8; i++) {
      r = static_cast<uint16_t>((r & 0x8000) ? (r << 1) ^ kCrc16Poly : r << 1);
    }
    t[0][b] = r;
  }
  for (int k = 1; k < 8; k++) {
    for (int b = 0; b < 256; b++) {
      const uint16_t prev = t[k - 1][b];
      t[k][b] = static_cast<uint16_t>((prev << 8) ^ t[0][prev >> 8]);
    }
  }
  return t;
}

constexpr Crc64Tables MakeCrc64Tables() {
  Crc64Tables t{};
  for (int b = 0; b < 256; b++) {
    uint64_t r = static_cast<uint64_t>(b);
    for (int i = 0; i < 8; i++) r = (r & 1) ? (r >> 1) ^ kCrc64PolyReflected : r >> 1;
    t[0][b] = r;
  }
  for (int k = 1; k < 8; k++) {
    for (int b = 0; b < 256; b++) {
      const uint64_t prev = t[k - 1][b];
      t[k][b] = (prev >> 8) ^ t[0][prev & 0xFF];
    }
  }
  return t;
}

alignas(64) constexpr Crc16Tables kCrc16Tables = MakeCrc16Tables();
alignas(64) constexpr Crc64Tables kCrc64Tables = MakeCrc64Tables();

// Eight bytes as a little-endian integer, whatever the host's byte order.
inline uint64_t LoadLE64(const unsigned char* p) {
  uint64_t v;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&v, p, sizeof(v));
  } else {
    v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  }
  return v;
}

}  // namespace

uint16_t Crc16T10DifPortable(uint16_t crc, const void* data, size_t len) {
  const auto& t = kCrc16Tables;
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = crc;
  while (len >= 8) {
    c = t[7][p[0] ^ (c >> 8)] ^ t[6][p[1] ^ (c & 0xFF)] ^ t[5][p[2]] ^ t[4][p[3]] ^ t[3][p[4]] ^
        t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    p += 8;
    len -= 8;
  }
  while (len-- > 0) c = ((c << 8) & 0xFFFF) ^ t[0][(c >> 8) ^ *p++];
  return static_cast<uint16_t>(c);
}

uint64_t Crc64NvmePortable(uint64_t crc, const void* data, size_t len) {
  const auto& t = kCrc64Tables;
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t c = ~crc;
  while (len >= 8) {
    c ^= LoadLE64(p);
    c = t[7][c & 0xFF] ^ t[6][(c >> 8) & 0xFF] ^ t[5][(c >> 16) & 0xFF] ^ t[4][(c >> 24) & 0xFF] ^
        t[3][(c >> 32) & 0xFF] ^ t[2][(c >> 40) & 0xFF] ^ t[1][(c >> 48) & 0xFF] ^ t[0][c >> 56];
    p += 8;
    len -= 8;
  }
  while (len-- > 0) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return ~c;
}

}  // namespace stablefs::pi
