// See fuse_transport.h.
#include "fs/fuse_transport.h"

#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <memory>

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

// Writes one reply: the header and an optional body. Returns 0, or the errno of the write: ENOENT
// when the kernel no longer waits for it (the request was interrupted), as libfuse reports it.
int Reply(int fd, uint64_t unique, int error, const void* body, size_t body_len) {
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
  return n < 0 ? errno : 0;
}

void FillAttr(const struct stat& st, struct fuse_attr* a) {
  a->ino = st.st_ino;
  a->size = static_cast<uint64_t>(st.st_size);
  a->blocks = static_cast<uint64_t>(st.st_blocks);
  a->atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a->mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a->ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a->atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a->mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a->ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  a->mode = st.st_mode;
  a->nlink = static_cast<uint32_t>(st.st_nlink);
  a->uid = st.st_uid;
  a->gid = st.st_gid;
  a->rdev = static_cast<uint32_t>(st.st_rdev);
  a->blksize = static_cast<uint32_t>(st.st_blksize);
}

void SplitTimeout(double timeout, uint64_t* secs, uint32_t* nsecs) {
  double whole = 0;
  const double frac = std::modf(timeout, &whole);
  *secs = static_cast<uint64_t>(whole);
  *nsecs = static_cast<uint32_t>(frac * 1e9);
}

// FUSE_TMPFILE (7.37, kernel 6.1): fuse_create_in and a name (unused), answered as FUSE_CREATE
// is, with fuse_entry_out and fuse_open_out. The kernel marks the file linkable itself
// (I_LINKABLE, unless O_EXCL) and sends FUSE_LINK for linkat(AT_EMPTY_PATH).
void AnswerTmpfile(int fd, const struct fuse_in_header* h, size_t arg_len, FuseContext* ctx) {
  if (arg_len < sizeof(struct fuse_create_in)) {
    Reply(fd, h->unique, EINVAL, nullptr, 0);
    return;
  }
  const auto* in = reinterpret_cast<const struct fuse_create_in*>(h + 1);
  Filesystem::Caller caller;
  caller.uid = h->uid;
  caller.gid = h->gid;
  caller.umask = in->umask;
  std::unique_ptr<OpenFile> f;
  struct stat st;
  if (int e = ctx->fs->Tmpfile(h->nodeid, in->mode, static_cast<int>(in->flags), caller, &st, &f)) {
    Reply(fd, h->unique, e, nullptr, 0);
    return;
  }
  struct {
    struct fuse_entry_out entry;
    struct fuse_open_out open;
  } out{};
  out.entry.nodeid = st.st_ino;
  out.entry.generation = 1;
  SplitTimeout(ctx->entry_timeout, &out.entry.entry_valid, &out.entry.entry_valid_nsec);
  SplitTimeout(ctx->attr_timeout, &out.entry.attr_valid, &out.entry.attr_valid_nsec);
  FillAttr(st, &out.entry.attr);
  out.open.fh = reinterpret_cast<uint64_t>(f.get());
  out.open.open_flags = KeepKernelCache(ctx->fs, f.get()) ? FOPEN_KEEP_CACHE : 0;
  ctx->transport->tmpfile_requests.fetch_add(1, std::memory_order_relaxed);
  if (Reply(fd, h->unique, 0, &out, sizeof(out)) == ENOENT) {
    // The creator was interrupted: the kernel holds neither the handle nor the inode.
    (void)ctx->fs->Release(std::move(f));
    ctx->fs->Forget(st.st_ino, 1);
    return;
  }
  f.release();  // the kernel's handle now, given back at FUSE_RELEASE
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
  SplitTimeout(ctx->attr_timeout, &out.attr_valid, &out.attr_valid_nsec);
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
  if (arg_len < 2 * sizeof(uint32_t)) return;  // libfuse answers a malformed INIT
  const auto* in = reinterpret_cast<const struct fuse_init_in*>(h + 1);
  TransportCounters* t = ctx->transport;
  t->proto_major.store(in->major, std::memory_order_relaxed);
  t->proto_minor.store(in->minor, std::memory_order_relaxed);
  // Flags exist from 7.6 on; an older INIT is answered by libfuse with what it knows.
  if (in->major != 7 || in->minor < 6 || arg_len < offsetof(struct fuse_init_in, flags) + 4) return;
  t->kernel_flags.store(in->flags, std::memory_order_relaxed);
  t->init_unique.store(h->unique, std::memory_order_relaxed);
}

// The request's *_KILL_SUIDGID flag (see KillSuidgidRequested), 0 for other requests or a
// request too short to carry it (libfuse answers those).
bool KillSuidgidOf(const struct fuse_in_header* h, size_t arg_len) {
  switch (h->opcode) {
    case FUSE_WRITE:
      if (arg_len < sizeof(struct fuse_write_in)) return false;
      return reinterpret_cast<const struct fuse_write_in*>(h + 1)->write_flags &
             FUSE_WRITE_KILL_SUIDGID;
    case FUSE_SETATTR:
      if (arg_len < sizeof(struct fuse_setattr_in)) return false;
      return reinterpret_cast<const struct fuse_setattr_in*>(h + 1)->valid & FATTR_KILL_SUIDGID;
    case FUSE_OPEN:
      if (arg_len < sizeof(struct fuse_open_in)) return false;
      return reinterpret_cast<const struct fuse_open_in*>(h + 1)->open_flags &
             FUSE_OPEN_KILL_SUIDGID;
    default:
      return false;
  }
}

thread_local bool tls_kill_suidgid = false;

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
    tls_kill_suidgid = KillSuidgidOf(h, arg_len);
    if (tls_kill_suidgid) {
      ctx->transport->kill_suidgid_requests.fetch_add(1, std::memory_order_relaxed);
    }
    switch (h->opcode) {
      case FUSE_INIT:
        RecordInit(h, arg_len, ctx);
        return n;
      case abi::kFuseStatx:
        AnswerStatx(fd, h, arg_len, ctx);
        continue;
      case FUSE_TMPFILE:
        AnswerTmpfile(fd, h, arg_len, ctx);
        continue;
      default:
        return n;
    }
  }
}

// The INIT reply as libfuse wrote it (fuse_send_reply_iov_nofree: the header, then
// fuse_init_out), with FUSE_HANDLE_KILLPRIV_V2 added if the kernel offered it.
void PatchInitReply(struct iovec* iov, int count, TransportCounters* t) {
  const uint64_t unique = t->init_unique.load(std::memory_order_relaxed);
  if (unique == 0 || count < 2 || iov[0].iov_len < sizeof(struct fuse_out_header)) return;
  const auto* out = static_cast<const struct fuse_out_header*>(iov[0].iov_base);
  if (out->unique != unique) return;
  t->init_unique.store(0, std::memory_order_relaxed);
  if (out->error != 0 || iov[1].iov_len < offsetof(struct fuse_init_out, flags) + 4) return;
  auto* init = static_cast<struct fuse_init_out*>(iov[1].iov_base);
  if (t->offer_killpriv_v2 &&
      (t->kernel_flags.load(std::memory_order_relaxed) & FUSE_HANDLE_KILLPRIV_V2)) {
    init->flags |= FUSE_HANDLE_KILLPRIV_V2;
    t->killpriv_v2.store(1, std::memory_order_relaxed);
  }
  t->reply_flags.store(init->flags, std::memory_order_relaxed);
}

ssize_t TransportWritev(int fd, struct iovec* iov, int count, void* userdata) {
  PatchInitReply(iov, count, static_cast<FuseContext*>(userdata)->transport);
  return ::writev(fd, iov, count);
}

}  // namespace

bool KillSuidgidRequested() { return tls_kill_suidgid; }

int AttachDevFuseTransport(struct fuse_session* se, FuseContext* ctx) {
  if (ctx->transport == nullptr) return -EINVAL;
  struct fuse_custom_io io {};
  io.read = TransportRead;
  io.writev = TransportWritev;
  // No splice: the daemon never takes page-cache pages by reference (fuse_ops.cc).
  return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

}  // namespace stablefs
