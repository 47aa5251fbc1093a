// The daemon's side of /dev/fuse, beneath libfuse. libfuse 3.14 decodes and dispatches every
// request it knows, but reads each request and writes each reply through the functions given to
// fuse_session_custom_io(); stablefs supplies them here, so that requests of protocol minors
// later than libfuse's own (7.38) are answered before libfuse sees them:
//
// - FUSE_STATX (7.39, kernel 6.6): statx with the birth time. The kernel sends it when a caller
//   asks for STATX_BTIME; without an answer libfuse says ENOSYS and the kernel never asks again
//   (fc->no_statx), so statx(2) would never report a btime.
// - FUSE_TMPFILE (7.37, kernel 6.1): open(O_TMPFILE). libfuse 3.14's ENOSYS makes the kernel
//   answer EOPNOTSUPP to every O_TMPFILE open from then on (fc->no_tmpfile).
//
// Every other request, FUSE_INIT included, goes on to libfuse unchanged; the INIT's protocol
// version and flags are recorded (`stablefsctl stats`: fuse_proto_minor). A kernel that never
// sends a request of a later minor simply never reaches its handler here: nothing needs
// probing, and there is nothing to fall back from. The structures of later minors are the
// kernel's ABI (include/uapi/linux/fuse.h), written out in fuse_transport.cc because Debian's
// <linux/fuse.h> stops at 7.38.
#pragma once

#include <atomic>
#include <cstdint>

struct fuse_session;

namespace stablefs {

struct FuseContext;

struct TransportCounters {
  std::atomic<uint32_t> proto_major{0};  // the kernel's FUSE protocol, from its INIT
  std::atomic<uint32_t> proto_minor{0};
  std::atomic<uint64_t> statx_requests{0};    // FUSE_STATX answered here
  std::atomic<uint64_t> tmpfile_requests{0};  // FUSE_TMPFILE answered here
};

// Routes the session's requests and replies through this file's read and writev, over the
// session's own /dev/fuse descriptor (and the cloned ones of -o clone_fd). Call after
// fuse_session_mount() and before the session loop. `ctx` is the session's userdata, and
// ctx->transport must outlive the loop. Returns 0 or a negative errno.
int AttachDevFuseTransport(struct fuse_session* se, FuseContext* ctx);

}  // namespace stablefs
