// ErrnoFromStatus: the one place a Status becomes an errno (positive), at the FUSE edge and for
// the writeback error cursors.
#pragma once

#include "storage/status.h"

namespace stablefs {

// Ok -> 0, NotFound -> ENOENT, Corruption/IOError/Protection -> EIO, NoSpace -> ENOSPC,
// InvalidArgument -> EINVAL, Busy -> EBUSY, NotSupported -> EOPNOTSUPP.
int ErrnoFromStatus(const Status& s);

}  // namespace stablefs
