// The stable-page policy's names: StablePolicyName and ParseStablePolicy (-o stable_pages=).
#include "fs/stable_policy.h"

#include <string>

namespace stablefs {

const char* StablePolicyName(StablePolicy p) {
  switch (p) {
    case StablePolicy::kWait:
      return "wait";
    case StablePolicy::kBounce:
      return "bounce";
    case StablePolicy::kOff:
      return "off";
  }
  return "?";
}

Status ParseStablePolicy(std::string_view text, StablePolicy* out) {
  for (StablePolicy p : {StablePolicy::kWait, StablePolicy::kBounce, StablePolicy::kOff}) {
    if (text == StablePolicyName(p)) {
      *out = p;
      return Status::Ok();
    }
  }
  return Status::InvalidArgument("stable_pages must be wait, bounce or off, not '" +
                                 std::string(text) + "'");
}

}  // namespace stablefs
