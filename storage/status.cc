// Status: names of the codes and message formatting.
#include "storage/status.h"

namespace stablefs {

namespace {
const char* CodeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk:
      return "OK";
    case Status::Code::kNotFound:
      return "Not found";
    case Status::Code::kCorruption:
      return "Corruption";
    case Status::Code::kIOError:
      return "IO error";
    case Status::Code::kProtection:
      return "Protection error";
    case Status::Code::kNoSpace:
      return "No space";
    case Status::Code::kInvalidArgument:
      return "Invalid argument";
    case Status::Code::kBusy:
      return "Busy";
    case Status::Code::kNotSupported:
      return "Not supported";
    case Status::Code::kReadOnly:
      return "Read-only";
  }
  return "Unknown";
}
}  // namespace

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = CodeName(code_);
  if (!msg_.empty()) {
    s += ": ";
    s += msg_;
  }
  return s;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += msg_;
  return Status(code_, msg);
}

}  // namespace stablefs
