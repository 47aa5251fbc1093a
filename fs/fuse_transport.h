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
// - FUSE_HANDLE_KILLPRIV_V2 (7.33, kernel 5.11): added to libfuse's INIT reply when the kernel
//   offers it (libfuse 3.14 knows only the first version). The kernel then marks the mount
//   SB_NOSEC and stops asking for security.capability (a GETXATTR) before every write, and
//   leaves clearing the set-user-ID and set-group-ID bits to the filesystem: it flags the write
//   (FUSE_WRITE_KILL_SUIDGID), truncate or chown (FATTR_KILL_SUIDGID) and open(O_TRUNC)
//   (FUSE_OPEN_KILL_SUIDGID) that must clear them. libfuse 3.14 drops those flags while it
//   decodes the request, so the read here keeps them for the thread that dispatches it:
//   KillSuidgidRequested(). Capabilities (security.capability) are still removed by the
//   kernel, with a REMOVEXATTR, before the write, truncate or chown that needs it.
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

// What the transport negotiated and counted; `offer_killpriv_v2` is set before the session runs.
struct TransportCounters {
  bool offer_killpriv_v2 = true;         // -o nokillpriv_v2 clears it
  std::atomic<uint32_t> proto_major{0};  // the kernel's FUSE protocol, from its INIT
  std::atomic<uint32_t> proto_minor{0};
  std::atomic<uint64_t> init_unique{0};       // the INIT request whose reply is still to be written
  std::atomic<uint32_t> kernel_flags{0};      // the INIT request's flags (the first 32)
  std::atomic<uint32_t> reply_flags{0};       // the INIT reply's flags as written (the first 32)
  std::atomic<uint32_t> killpriv_v2{0};       // 1 once FUSE_HANDLE_KILLPRIV_V2 is in the INIT reply
  std::atomic<uint64_t> statx_requests{0};    // FUSE_STATX answered here
  std::atomic<uint64_t> tmpfile_requests{0};  // FUSE_TMPFILE answered here
  std::atomic<uint64_t> kill_suidgid_requests{0};  // requests flagged to clear suid/sgid
};

// True if the request this thread read last, which it is dispatching now, asks the filesystem
// to clear the set-user-ID bit and the set-group-ID bit of a group-executable file (the
// *_KILL_SUIDGID flags of FUSE_WRITE, FUSE_SETATTR and FUSE_OPEN, sent only under
// FUSE_HANDLE_KILLPRIV_V2 and only for a caller without CAP_FSETID, or for any chown). libfuse
// reads and dispatches each request on one thread, so the flag is the request's own.
bool KillSuidgidRequested();

// Routes the session's requests and replies through this file's read and writev, over the
// session's own /dev/fuse descriptor (and the cloned ones of -o clone_fd). Call after
// fuse_session_mount() and before the session loop. `ctx` is the session's userdata, and
// ctx->transport must outlive the loop. Returns 0 or a negative errno.
int AttachDevFuseTransport(struct fuse_session* se, FuseContext* ctx);

}  // namespace stablefs
