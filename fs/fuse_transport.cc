// See fuse_transport.h.
#include "fs/fuse_transport.h"

#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "fs/fuse_ops.h"

namespace stablefs {

namespace {

// ---- The kernel's ABI past Debian's <linux/fuse.h> (protocol 7.38) ----
// From include/uapi/linux/fuse.h of Linux 6.6 (protocol 7.39), where FUSE_STATX was added.
namespace abi {

constexpr uint32_t kFuseStatx = 52;  // enum fuse_opcode: FUSE_STATX

struct SxTime {  // struct fuse_sx_time
  int64_t tv_sec;
  uint32_t tv_nsec;
  int32_t reserved;
};

struct Statx {  // struct fuse_statx
  uint32_t mask;
  uint32_t blksize;
  uint64_t attributes;
  uint32_t nlink;
  uint32_t uid;
  uint32_t gid;
  uint16_t mode;
  uint16_t spare0;
  uint64_t ino;
  uint64_t size;
  uint64_t blocks;
  uint64_t attributes_mask;
  SxTime atime;
  SxTime btime;
  SxTime ctime;
  SxTime mtime;
  uint32_t rdev_major;
  uint32_t rdev_minor;
  uint32_t dev_major;
  uint32_t dev_minor;
  uint64_t spare2[14];
};
static_assert(sizeof(Statx) == 256);

struct StatxIn {  // struct fuse_statx_in
  uint32_t getattr_flags;
  uint32_t reserved;
  uint64_t fh;
  uint32_t sx_flags;
  uint32_t sx_mask;
};
static_assert(sizeof(StatxIn) == 24);

struct StatxOut {  // struct fuse_statx_out
  uint64_t attr_valid;
  uint32_t attr_valid_nsec;
  uint32_t flags;
  uint64_t spare[2];
  Statx stat;
};
static_assert(sizeof(StatxOut) == 288);

// statx(2)'s mask bits (include/uapi/linux/stat.h), as the kernel's FUSE client reads them.
constexpr uint32_t kStatxBasicStats = 0x7ff;
constexpr uint32_t kStatxBtime = 0x800;

}  // namespace abi

// Writes one reply: the header and an optional body. A reply the kernel no longer waits for
// (the request was interrupted: ENOENT) is dropped, as libfuse drops it.
void Reply(int fd, uint64_t unique, int error, const void* body, size_t body_len) {
  struct fuse_out_header out;
  out.unique = unique;
  out.error = -error;
  out.len = static_cast<uint32_t>(sizeof(out) + (error == 0 ? body_len : 0));
  struct iovec iov[2] = {{&out, sizeof(out)}, {const_cast<void*>(body), body_len}};
  const int count = error == 0 && body_len > 0 ? 2 : 1;
  ssize_t n;
  do {
    n = ::writev(fd, iov, count);
  } while (n < 0 && errno == EINTR);
}

abi::SxTime SxTime(const struct timespec& t) {
  return abi::SxTime{t.tv_sec, static_cast<uint32_t>(t.tv_nsec), 0};
}

void AnswerStatx(int fd, const struct fuse_in_header* h, size_t arg_len, FuseContext* ctx) {
  if (arg_len < sizeof(abi::StatxIn)) {
    Reply(fd, h->unique, EINVAL, nullptr, 0);
    return;
  }
  struct stat st;
  struct timespec btime;
  if (int e = ctx->fs->GetAttr(h->nodeid, &st, &btime)) {
    Reply(fd, h->unique, e, nullptr, 0);
    return;
  }
  abi::StatxOut out{};
  double secs = 0;
  const double frac = std::modf(ctx->attr_timeout, &secs);
  out.attr_valid = static_cast<uint64_t>(secs);
  out.attr_valid_nsec = static_cast<uint32_t>(frac * 1e9);
  abi::Statx& sx = out.stat;
  sx.mask = abi::kStatxBasicStats | abi::kStatxBtime;
  sx.blksize = static_cast<uint32_t>(st.st_blksize);
  sx.nlink = static_cast<uint32_t>(st.st_nlink);
  sx.uid = st.st_uid;
  sx.gid = st.st_gid;
  sx.mode = static_cast<uint16_t>(st.st_mode);
  sx.ino = st.st_ino;
  sx.size = static_cast<uint64_t>(st.st_size);
  sx.blocks = static_cast<uint64_t>(st.st_blocks);
  sx.atime = SxTime(st.st_atim);
  sx.btime = SxTime(btime);
  sx.ctime = SxTime(st.st_ctim);
  sx.mtime = SxTime(st.st_mtim);
  sx.rdev_major = major(st.st_rdev);
  sx.rdev_minor = minor(st.st_rdev);
  ctx->transport->statx_requests.fetch_add(1, std::memory_order_relaxed);
  Reply(fd, h->unique, 0, &out, sizeof(out));
}

void RecordInit(const struct fuse_in_header* h, size_t arg_len, FuseContext* ctx) {
  (void)h;
  if (arg_len < 2 * sizeof(uint32_t)) return;  // libfuse answers a malformed INIT
  const auto* in = reinterpret_cast<const struct fuse_init_in*>(h + 1);
  ctx->transport->proto_major.store(in->major, std::memory_order_relaxed);
  ctx->transport->proto_minor.store(in->minor, std::memory_order_relaxed);
}

// libfuse's read: one request into `buf`. Requests answered here are answered and the next one
// is read; the rest (and every error, with errno as read(2) left it) go to libfuse.
ssize_t TransportRead(int fd, void* buf, size_t len, void* userdata) {
  auto* ctx = static_cast<FuseContext*>(userdata);
  for (;;) {
    const ssize_t n = ::read(fd, buf, len);
    if (n < static_cast<ssize_t>(sizeof(struct fuse_in_header))) return n;
    const auto* h = static_cast<const struct fuse_in_header*>(buf);
    if (h->len != static_cast<uint32_t>(n)) return n;  // libfuse reports the bad length
    const size_t arg_len = static_cast<size_t>(n) - sizeof(*h);
    switch (h->opcode) {
      case FUSE_INIT:
        RecordInit(h, arg_len, ctx);
        return n;
      case abi::kFuseStatx:
        AnswerStatx(fd, h, arg_len, ctx);
        continue;
      default:
        return n;
    }
  }
}

ssize_t TransportWritev(int fd, struct iovec* iov, int count, void* userdata) {
  (void)userdata;
  return ::writev(fd, iov, count);
}

}  // namespace

int AttachDevFuseTransport(struct fuse_session* se, FuseContext* ctx) {
  if (ctx->transport == nullptr) return -EINVAL;
  struct fuse_custom_io io {};
  io.read = TransportRead;
  io.writev = TransportWritev;
  // No splice: the daemon never takes page-cache pages by reference (fuse_ops.cc).
  return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

}  // namespace stablefs
