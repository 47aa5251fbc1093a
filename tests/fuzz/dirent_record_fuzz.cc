// DirentRecord::DecodeFrom on any bytes: no crash; what decodes names an inode (never 0) and
// re-encodes to the same bytes; a record built from the input survives encode and decode.
#include <fuzzer/FuzzedDataProvider.h>

#include <string>
#include <string_view>

#include "storage/format.h"
#include "tests/fuzz/fuzz_check.h"

namespace stablefs {
namespace {

void DecodeAnyBytes(std::string_view in) {
  DirentRecord d;
  if (!d.DecodeFrom(in).ok()) return;
  FUZZ_CHECK(d.ino != 0);
  std::string again;
  d.EncodeTo(&again);
  FUZZ_CHECK(again == in);
}

void RoundTrip(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  DirentRecord d;
  d.ino = p.ConsumeIntegralInRange<uint64_t>(1, UINT64_MAX);
  d.type = p.ConsumeIntegral<uint8_t>();
  d.cookie = p.ConsumeIntegral<uint64_t>();
  std::string bytes;
  d.EncodeTo(&bytes);
  DirentRecord back;
  FUZZ_CHECK(back.DecodeFrom(bytes).ok());
  FUZZ_CHECK(back == d);
}

}  // namespace
}  // namespace stablefs

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stablefs::DecodeAnyBytes(std::string_view(reinterpret_cast<const char*>(data), size));
  stablefs::RoundTrip(data, size);
  return 0;
}
