// ErrnoFromStatus and the stable-page policy names.
#include "fs/errno_map.h"

#include <cerrno>

#include "fs/stable_policy.h"

namespace stablefs {

int ErrnoFromStatus(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk:
      return 0;
    case Status::Code::kNotFound:
      return ENOENT;
    case Status::Code::kCorruption:
    case Status::Code::kIOError:
    case Status::Code::kProtection:
      return EIO;
    case Status::Code::kNoSpace:
      return ENOSPC;
    case Status::Code::kInvalidArgument:
      return EINVAL;
    case Status::Code::kBusy:
      return EBUSY;
    case Status::Code::kNotSupported:
      return EOPNOTSUPP;
    case Status::Code::kReadOnly:
      return EROFS;
  }
  return EIO;
}

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
