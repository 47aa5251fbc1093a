// Superblock::DecodeFrom on any bytes: no crash; what decodes re-encodes to the very same bytes
// (the encoding is canonical and checksummed); a superblock built from the input survives
// encode and decode unchanged; and a flipped byte of an encoding is never accepted.
#include <fuzzer/FuzzedDataProvider.h>

#include <string>
#include <string_view>

#include "storage/format.h"
#include "tests/fuzz/fuzz_check.h"

namespace stablefs {
namespace {

// The profiles a store can have: a decoded superblock must hold one of them.
pi::Profile ConsumeProfile(FuzzedDataProvider* p) {
  pi::Profile profile;
  profile.guard = p->PickValueInArray(
      {pi::GuardKind::kCrc16T10Dif, pi::GuardKind::kCrc64Nvme, pi::GuardKind::kXxh3});
  profile.type = p->PickValueInArray({pi::Type::kType1, pi::Type::kType3});
  profile.interval = p->PickValueInArray({512u, 4096u});
  return profile;
}

void DecodeAnyBytes(std::string_view in) {
  Superblock sb;
  if (!sb.DecodeFrom(in).ok()) return;
  FUZZ_CHECK(sb.pi.Validate().ok());
  FUZZ_CHECK(sb.block_size == kBlockSize);
  std::string again;
  sb.EncodeTo(&again);
  FUZZ_CHECK(again == in);
}

void RoundTrip(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  Superblock sb;
  for (uint8_t& b : sb.uuid) b = p.ConsumeIntegral<uint8_t>();
  sb.pi = ConsumeProfile(&p);
  sb.created_sec = p.ConsumeIntegral<int64_t>();
  const size_t flip = p.ConsumeIntegral<uint16_t>();
  sb.creation_options = p.ConsumeRemainingBytesAsString();
  std::string bytes;
  sb.EncodeTo(&bytes);
  // The options are recorded up to 65535 bytes.
  Superblock want = sb;
  if (want.creation_options.size() > 65535) want.creation_options.resize(65535);
  Superblock back;
  FUZZ_CHECK(back.DecodeFrom(bytes).ok());
  FUZZ_CHECK(back == want);
  // Any one damaged byte is caught (bad magic or checksum).
  bytes[flip % bytes.size()] ^= 0x01;
  FUZZ_CHECK(!back.DecodeFrom(bytes).ok());
}

}  // namespace
}  // namespace stablefs

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stablefs::DecodeAnyBytes(std::string_view(reinterpret_cast<const char*>(data), size));
  stablefs::RoundTrip(data, size);
  return 0;
}
