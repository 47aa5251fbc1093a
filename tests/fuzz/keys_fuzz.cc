// The key parsers (inode, name, cookie and data keys) and the counter decoder on any bytes: no
// crash; a parsed key rebuilds to the same bytes. Keys built from the input parse back to their
// fields, and sort as their fields do, which range deletes and scans rely on: a file's blocks in
// index order and before DataKeyRangeEnd, an inode's names inside [NamePrefixBegin, NamePrefixEnd).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>

#include "storage/format.h"
#include "tests/fuzz/fuzz_check.h"

namespace stablefs {
namespace {

void ParseAnyBytes(std::string_view in) {
  uint64_t a, b;
  std::string_view name;
  if (ParseInodeKey(in, &a)) FUZZ_CHECK(InodeKey(a) == in);
  if (ParseNameKey(in, &a, &name)) {
    FUZZ_CHECK(!name.empty());
    FUZZ_CHECK(NameKey(a, name) == in);
  }
  if (ParseCookieKey(in, &a, &b)) FUZZ_CHECK(CookieKey(a, b) == in);
  if (ParseDataKey(in, &a, &b)) FUZZ_CHECK(DataKey(a, b) == in);
  if (DecodeCounter(in, &a).ok()) {
    std::string again;
    EncodeCounter(&again, a);
    FUZZ_CHECK(again == in);
  }
}

// Bytewise order, as RocksDB's default comparator.
int Compare(std::string_view x, std::string_view y) { return x.compare(y); }
int Sign(int v) { return (v > 0) - (v < 0); }
template <typename T>
int Order(const T& x, const T& y) {
  return (x > y) - (x < y);
}

void BuiltKeys(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  // Inode numbers are never UINT64_MAX (NamePrefixEnd and DataKeyRangeEnd say so).
  const uint64_t ino1 = p.ConsumeIntegralInRange<uint64_t>(0, UINT64_MAX - 1);
  const uint64_t ino2 =
      p.ConsumeBool() ? ino1 : p.ConsumeIntegralInRange<uint64_t>(0, UINT64_MAX - 1);
  const uint64_t i1 = p.ConsumeIntegral<uint64_t>();
  const uint64_t i2 = p.ConsumeIntegral<uint64_t>();
  const uint64_t end = p.ConsumeIntegral<uint64_t>();
  const std::string name = p.ConsumeRandomLengthString(300);

  uint64_t a, b;
  std::string_view n;
  FUZZ_CHECK(ParseInodeKey(InodeKey(ino1), &a) && a == ino1);
  FUZZ_CHECK(ParseCookieKey(CookieKey(ino1, i1), &a, &b) && a == ino1 && b == i1);
  FUZZ_CHECK(ParseDataKey(DataKey(ino1, i1), &a, &b) && a == ino1 && b == i1);
  const std::string nk = NameKey(ino1, name);
  FUZZ_CHECK(ParseNameKey(nk, &a, &n) == !name.empty());
  if (!name.empty()) FUZZ_CHECK(a == ino1 && n == name);

  // Keys sort by their fields.
  FUZZ_CHECK(Sign(Compare(DataKey(ino1, i1), DataKey(ino2, i2))) ==
             Order(std::tie(ino1, i1), std::tie(ino2, i2)));
  FUZZ_CHECK(Sign(Compare(CookieKey(ino1, i1), CookieKey(ino2, i2))) ==
             Order(std::tie(ino1, i1), std::tie(ino2, i2)));
  FUZZ_CHECK(Sign(Compare(InodeKey(ino1), InodeKey(ino2))) == Order(ino1, ino2));
  // Ranges hold exactly their keys.
  const std::string range_end = DataKeyRangeEnd(ino1, end);
  FUZZ_CHECK((DataKey(ino1, i1) < range_end) == (end == UINT64_MAX || i1 < end));
  FUZZ_CHECK((DataKey(ino2, i2) < range_end) ==
             (ino2 < ino1 || (ino2 == ino1 && (end == UINT64_MAX || i2 < end))));
  FUZZ_CHECK(NamePrefixBegin(ino1) <= nk && nk < NamePrefixEnd(ino1));
  const std::string nk2 = NameKey(ino2, name);
  const bool in_range = NamePrefixBegin(ino1) <= nk2 && nk2 < NamePrefixEnd(ino1);
  FUZZ_CHECK(in_range == (ino2 == ino1));
}

}  // namespace
}  // namespace stablefs

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stablefs::ParseAnyBytes(std::string_view(reinterpret_cast<const char*>(data), size));
  stablefs::BuiltKeys(data, size);
  return 0;
}
