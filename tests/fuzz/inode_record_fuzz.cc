// InodeRecord::DecodeFrom on any bytes: no crash; what decodes re-encodes to the same bytes; a
// record built from the input survives encode and decode unchanged.
#include <fuzzer/FuzzedDataProvider.h>

#include <string>
#include <string_view>

#include "storage/format.h"
#include "tests/fuzz/fuzz_check.h"

namespace stablefs {
namespace {

void DecodeAnyBytes(std::string_view in) {
  InodeRecord r;
  if (!r.DecodeFrom(in).ok()) return;
  std::string again;
  r.EncodeTo(&again);
  FUZZ_CHECK(again == in);
}

Timespec ConsumeTimespec(FuzzedDataProvider* p) {
  Timespec t;
  t.sec = p->ConsumeIntegral<int64_t>();
  t.nsec = p->ConsumeIntegralInRange<uint32_t>(0, 999999999);
  return t;
}

void RoundTrip(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  InodeRecord r;
  r.mode = p.ConsumeIntegral<uint32_t>();
  r.uid = p.ConsumeIntegral<uint32_t>();
  r.gid = p.ConsumeIntegral<uint32_t>();
  r.nlink = p.ConsumeIntegral<uint32_t>();
  r.size = p.ConsumeIntegral<uint64_t>();
  r.blocks = p.ConsumeIntegral<uint64_t>();
  r.rdev = p.ConsumeIntegral<uint64_t>();
  r.generation = p.ConsumeIntegral<uint64_t>();
  r.flags = p.ConsumeIntegral<uint32_t>();
  r.next_cookie = p.ConsumeIntegral<uint64_t>();
  r.atime = ConsumeTimespec(&p);
  r.mtime = ConsumeTimespec(&p);
  r.ctime = ConsumeTimespec(&p);
  r.btime = ConsumeTimespec(&p);
  std::string bytes;
  r.EncodeTo(&bytes);
  InodeRecord back;
  FUZZ_CHECK(back.DecodeFrom(bytes).ok());
  FUZZ_CHECK(back == r);
}

}  // namespace
}  // namespace stablefs

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stablefs::DecodeAnyBytes(std::string_view(reinterpret_cast<const char*>(data), size));
  stablefs::RoundTrip(data, size);
  return 0;
}
