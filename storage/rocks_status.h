// The one translation of RocksDB's status codes (rocksdb::Status and its IOStatus) into the
// store's Status. Used by every file of storage/ that calls RocksDB or its FileSystem.
#ifndef STABLEFS_STORAGE_ROCKS_STATUS_H_
#define STABLEFS_STORAGE_ROCKS_STATUS_H_

#include <rocksdb/status.h>

#include <string>
#include <type_traits>

#include "storage/status.h"

namespace stablefs {

// `context` says what was being done; it is built only on failure: a string, or a callable
// returning one. The message is "<context>: <RocksDB's message>".
template <class Context>
Status FromRocks(const rocksdb::Status& s, const Context& context) {
  if (s.ok()) return Status::Ok();
  std::string msg;
  if constexpr (std::is_invocable_v<Context>) {
    msg = context();
  } else {
    msg = std::string(context);
  }
  msg += ": ";
  msg += s.ToString();
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsNoSpace()) return Status::NoSpace(msg);
  if (s.IsNotSupported()) return Status::NotSupported(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  return Status::IOError(msg);
}

}  // namespace stablefs

#endif  // STABLEFS_STORAGE_ROCKS_STATUS_H_
