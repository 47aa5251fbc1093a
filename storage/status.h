// Status: the outcome of every operation in storage/ and the page cache.
//
// As in LevelDB, errors are values, never exceptions. A Status is either Ok or carries a code and
// a message that says what failed and where (the store path, the inode and offset, the field and
// the expected and received values). errno appears only at the FUSE edge (fs/errno_map.cc), which
// maps each code below to exactly one errno.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace stablefs {

class [[nodiscard]] Status {
 public:
  enum class Code : unsigned char {
    kOk = 0,
    kNotFound,         // the record or file does not exist
    kCorruption,       // bytes that do not decode, or a store that is damaged
    kIOError,          // the layer below failed (RocksDB, the OS)
    kProtection,       // protection information did not match its data
    kNoSpace,          // the store's file system is full
    kInvalidArgument,  // a caller passed something malformed
    kBusy,             // held by someone else (a locked store)
    kNotSupported,     // a valid request this build or format cannot do
    kReadOnly,         // a write to a store opened read-only
  };

  Status() = default;

  static Status Ok() { return Status(); }
  static Status NotFound(std::string_view msg) { return Status(Code::kNotFound, msg); }
  static Status Corruption(std::string_view msg) { return Status(Code::kCorruption, msg); }
  static Status IOError(std::string_view msg) { return Status(Code::kIOError, msg); }
  static Status Protection(std::string_view msg) { return Status(Code::kProtection, msg); }
  static Status NoSpace(std::string_view msg) { return Status(Code::kNoSpace, msg); }
  static Status InvalidArgument(std::string_view msg) {
    return Status(Code::kInvalidArgument, msg);
  }
  static Status Busy(std::string_view msg) { return Status(Code::kBusy, msg); }
  static Status NotSupported(std::string_view msg) { return Status(Code::kNotSupported, msg); }
  static Status ReadOnly(std::string_view msg) { return Status(Code::kReadOnly, msg); }
  // A status of a code kept apart from its message (an ErrSeq holds only codes).
  static Status FromCode(Code code, std::string_view msg) { return Status(code, msg); }

  bool ok() const { return code_ == Code::kOk; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsProtection() const { return code_ == Code::kProtection; }
  bool IsNoSpace() const { return code_ == Code::kNoSpace; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsBusy() const { return code_ == Code::kBusy; }
  bool IsNotSupported() const { return code_ == Code::kNotSupported; }
  bool IsReadOnly() const { return code_ == Code::kReadOnly; }

  Code code() const { return code_; }
  const std::string& message() const { return msg_; }

  // "Corruption: <message>", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>"; Ok stays Ok.
  Status WithContext(std::string_view context) const;

 private:
  Status(Code code, std::string_view msg) : code_(code), msg_(msg) {}

  Code code_ = Code::kOk;
  std::string msg_;
};

// Returns from the enclosing function if `expr` is not Ok.
#define STABLEFS_RETURN_IF_ERROR(expr) \
  do {                                 \
    ::stablefs::Status _st = (expr);   \
    if (!_st.ok()) return _st;         \
  } while (0)

}  // namespace stablefs
