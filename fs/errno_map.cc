// ErrnoFromStatus: a Status as an errno (fs/errno_map.h).
#include "fs/errno_map.h"

#include <cerrno>

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

}  // namespace stablefs
