// pi::Profile::Parse (mkfs's -p option) on any text: no crash; what parses is a valid profile
// whose ToString parses back to the same profile and prints the same again.
#include <string>
#include <string_view>

#include "storage/pi.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using stablefs::pi::Profile;
  Profile p;
  if (!Profile::Parse(std::string_view(reinterpret_cast<const char*>(data), size), &p).ok()) {
    return 0;
  }
  FUZZ_CHECK(p.Validate().ok());
  const std::string text = p.ToString();
  Profile back;
  FUZZ_CHECK(Profile::Parse(text, &back).ok());
  FUZZ_CHECK(back == p);
  FUZZ_CHECK(back.ToString() == text);
  return 0;
}
