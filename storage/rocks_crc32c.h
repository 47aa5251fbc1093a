// RocksDB's CRC32C, computed with the CPU's CRC32 instruction.
//
// RocksDB checksums every WAL record and every blob record with CRC32C. Debian's RocksDB is
// built portable, without SSE4.2, so its rocksdb::crc32c::Extend runs a table-driven loop at
// about 1 GB/s: profiling a sequential write showed it taking a third of the daemon's CPU, more
// than copying the data. Every program that links the store is linked with
// --wrap=rocksdb::crc32c::Extend (storage/CMakeLists.txt), so each call RocksDB's objects make
// to it reaches the definition in rocks_crc32c.cc, which uses the SSE4.2 instruction, in three
// streams joined by carry-less multiplication where the CPU has PCLMULQDQ (one stream waits on
// the instruction's latency: a blob read spent 7.6% of the daemon's CPU in it, 2-3% with three).
// The values are the same CRC32C, so stores stay readable by any RocksDB. On a CPU without
// SSE4.2 the library's own definition is called.
#pragma once

#include <cstddef>
#include <cstdint>

namespace stablefs {

// Whether RocksDB has called crc32c::Extend in this process since the last reset: proves the
// wrapping took effect (only calls that reached rocks_crc32c.cc set it). A flag rather than a
// count, so that the data path's calls, from every thread, only read a shared cache line.
bool RocksCrc32cReached();
void ResetRocksCrc32cReached();

// True when the CPU has SSE4.2 and the wrapper uses it.
bool RocksCrc32cAccelerated();

// CRC32C of buf extended from crc, as RocksDB computes it, for the project's own reads of RocksDB's
// files (storage/wal_marks.cc); leaves RocksCrc32cReached() as it is.
uint32_t RocksCrc32cExtend(uint32_t crc, const char* buf, size_t size);

// The library's own crc32c::Extend, for comparison in tests.
uint32_t RocksCrc32cLibraryExtend(uint32_t crc, const char* buf, size_t size);

}  // namespace stablefs
