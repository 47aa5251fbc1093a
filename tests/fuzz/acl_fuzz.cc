// Acl::Decode on any bytes (ACL xattrs are read back from the store: a damaged one must be
// refused, never crash): no crash; what decodes re-encodes to bytes that decode to the same ACL;
// chmod and inheritance keep it valid and in step with the mode, as fs/acl.h says.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/stat.h>

#include <string>
#include <string_view>

#include "fs/acl.h"
#include "tests/fuzz/fuzz_check.h"

namespace stablefs {
namespace {

bool SameEntries(const Acl& a, const Acl& b) {
  if (a.entries.size() != b.entries.size()) return false;
  for (size_t i = 0; i < a.entries.size(); i++) {
    const AclEntry& x = a.entries[i];
    const AclEntry& y = b.entries[i];
    if (x.tag != y.tag || x.perm != y.perm || x.id != y.id) return false;
  }
  return true;
}

// The ACL encodes to bytes that decode to itself.
void CheckRoundTrip(const Acl& acl) {
  Acl back;
  FUZZ_CHECK(back.Decode(acl.Encode()));
  FUZZ_CHECK(SameEntries(back, acl));
}

// The permission bits EquivMode derives from the ACL.
mode_t ModeBits(const Acl& acl) {
  mode_t m = S_IFREG;
  acl.EquivMode(&m);
  FUZZ_CHECK((m & S_IFMT) == S_IFREG);
  return m & 0777;
}

}  // namespace
}  // namespace stablefs

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using stablefs::Acl;
  FuzzedDataProvider p(data, size);
  const mode_t mode = p.ConsumeIntegral<uint16_t>() & 07777;
  const std::string value = p.ConsumeRemainingBytesAsString();
  Acl acl;
  if (!acl.Decode(value)) return 0;
  stablefs::CheckRoundTrip(acl);

  mode_t m = S_IFDIR | 0777;
  if (acl.EquivMode(&m)) FUZZ_CHECK(acl.entries.size() == 3);

  Acl chmodded = acl;
  chmodded.Chmod(mode);
  stablefs::CheckRoundTrip(chmodded);
  FUZZ_CHECK(stablefs::ModeBits(chmodded) == (mode & 0777));

  Acl inherited = acl;
  mode_t create_mode = S_IFREG | mode;
  inherited.CreateMasq(&create_mode);
  stablefs::CheckRoundTrip(inherited);
  FUZZ_CHECK((create_mode & ~mode & 0777) == 0);  // never more than the create mode allows
  FUZZ_CHECK((create_mode & S_IFMT) == S_IFREG);
  FUZZ_CHECK(stablefs::ModeBits(inherited) == (create_mode & 0777));
  return 0;
}
