// Valid inputs for the fuzz targets, one or more per target: make_fuzz_corpus writes them to
// tests/fuzz/corpus/<target>/ (small files, committed), and the fuzzers start from them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "storage/pi.h"

namespace stablefs {

// pi_block_fuzz's input: u8 profile number (ProfileNumber), be64 inode, be64 block index, be16
// CRC split point, then a kData value.
inline constexpr size_t kBlockInputHeader = 1 + 8 + 8 + 2;

// The profile numbered n % 12: every guard, type and interval.
inline pi::Profile ProfileNumber(uint8_t n) {
  static constexpr pi::GuardKind kGuards[] = {pi::GuardKind::kCrc16T10Dif,
                                              pi::GuardKind::kCrc64Nvme, pi::GuardKind::kXxh3};
  pi::Profile p;
  n %= 12;
  p.guard = kGuards[n % 3];
  p.type = (n / 3) % 2 == 0 ? pi::Type::kType1 : pi::Type::kType3;
  p.interval = n / 6 == 0 ? 4096 : 512;
  return p;
}

// (file name, contents) of each seed of `target`; empty for an unknown target.
std::vector<std::pair<std::string, std::string>> SeedsFor(const std::string& target);
// The names of every fuzz target.
std::vector<std::string> FuzzTargets();

}  // namespace stablefs
