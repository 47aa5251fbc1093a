// See rocks_crc32c.h for why this file defines the wrapper of a RocksDB function.
#include "storage/rocks_crc32c.h"

#include <nmmintrin.h>

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
std::atomic<uint64_t> calls{0};

__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc, const char* buf, size_t size) {
  uint64_t l = crc ^ 0xffffffffu;
  const char* p = buf;
  const char* end = buf + size;
  while (p != end && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    l = _mm_crc32_u8(static_cast<uint32_t>(l), static_cast<uint8_t>(*p++));
  }
  // Three independent streams would hide the instruction's latency; one stream already runs
  // at about 8 GB/s, far above the speed the WAL and blob files are written at.
  while (end - p >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    l = _mm_crc32_u64(l, word);
    p += 8;
  }
  while (p != end) l = _mm_crc32_u8(static_cast<uint32_t>(l), static_cast<uint8_t>(*p++));
  return static_cast<uint32_t>(l) ^ 0xffffffffu;
}

}  // namespace

uint32_t WrappedExtend(uint32_t crc, const char* buf, size_t size) {
  calls.fetch_add(1, std::memory_order_relaxed);
  if (kHaveSse42) return ExtendSse42(crc, buf, size);
  return RealExtend(crc, buf, size);
}

namespace stablefs {

uint64_t RocksCrc32cCalls() { return calls.load(std::memory_order_relaxed); }

bool RocksCrc32cAccelerated() { return kHaveSse42; }

uint32_t RocksCrc32cLibraryExtend(uint32_t crc, const char* buf, size_t size) {
  return RealExtend(crc, buf, size);
}

}  // namespace stablefs
