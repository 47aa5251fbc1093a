// stablefs-recorder: a recording disk. A FUSE file system with one file, `disk`, served from an
// image file; every write the kernel sends to it, every zeroed range and every fsync is appended,
// in the order it arrives, to a log. A loop device over MNT/disk is then a block device whose
// every write and cache flush is recorded, what dm-log-writes records, without device-mapper.
// A second file, `marks`, names points in the log: each write(2) to it appends a mark whose name
// is the bytes written (a workload step, "begin 3", "end 3").
//
//   stablefs-recorder [--drop-flushes] IMAGE LOG MOUNTPOINT
//
// It runs in the foreground, single-threaded: one request is read, served and logged before the
// next is read, so the log's order is the order in which the requests were answered. It exits
// when MOUNTPOINT is unmounted (fusermount3 -u), after the log is written out; exit status 0,
// or 1 when the log could not be written. --drop-flushes answers fsync without logging it: a
// disk that acknowledges a cache flush it never did, for tests that must see the crash check
// fail.
//
// ## What the kernel sends (Linux 6.x, drivers/block/loop.c and fs/fuse/)
// - `disk` is opened with FOPEN_DIRECT_IO: the kernel keeps no page cache for it, every write(2)
//   and every write of the loop driver becomes FUSE_WRITE requests right away (split at
//   max_write, in order), and the reply comes after this program has logged it.
// - The loop driver (no `--direct-io`) serves a block write with vfs_iter_write() on the backing
//   file (lo_write_simple), REQ_OP_FLUSH with vfs_fsync(file, 0) (lo_req_flush), which FUSE
//   sends as FUSE_FSYNC, and REQ_OP_DISCARD / REQ_OP_WRITE_ZEROES with vfs_fallocate() of
//   FALLOC_FL_PUNCH_HOLE or FALLOC_FL_ZERO_RANGE (lo_fallocate): FUSE_FALLOCATE here.
// - loop_configure() enables the queue's volatile write cache (BLK_FEAT_WRITE_CACHE) when the
//   backing file has an fsync method, and declares no FUA. The block layer's flush machinery
//   (block/blk-flush.c, blk_flush_policy) therefore turns REQ_PREFLUSH into a flush request
//   before the write and REQ_FUA into a flush after it: the filesystem's barriers all reach this
//   program as FUSE_FSYNC, after the writes they order.
// - One loop worker per cgroup serves the queue in order (loop_process_work), and each write is
//   answered before the next is read, so a flush in the log follows every write completed before
//   the flush was issued. A write still in flight when a flush was issued may be logged before
//   it; the crash states treat it as possibly lost, never as certainly durable.
// - The FUSE_FLUSH a close(2) sends is not a device flush and is not logged.
//
// ## The log (all integers little-endian)
//   header:  8 bytes "SFSRECv1"
//   record:  1 byte type, then by type:
//     'W' write:  u64 offset, u32 length, length bytes of data
//     'Z' zeroed: u64 offset, u64 length (a punched or zeroed range: discard, write-zeroes)
//     'F' flush:  u8 datasync (FUSE_FSYNC's flag; the loop driver sends 0)
//     'M' mark:   u32 length, length bytes of name
// The log is written through a buffer and flushed before every mark's reply, so a mark is in the
// log file before the process that wrote it goes on; a reader stops at a short record.
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr fuse_ino_t kDiskIno = 2;
constexpr fuse_ino_t kMarksIno = 3;

struct Recorder {
  int image_fd = -1;
  FILE* log = nullptr;
  bool drop_flushes = false;
  bool log_failed = false;
  uint64_t writes = 0, flushes = 0, marks = 0, dropped = 0;
};

Recorder g;

void Put(const void* p, size_t n) {
  if (std::fwrite(p, 1, n, g.log) != n) g.log_failed = true;
}
void PutU8(uint8_t v) { Put(&v, 1); }
void PutU32(uint32_t v) {
  uint8_t b[4];
  for (int i = 0; i < 4; i++) b[i] = uint8_t(v >> (8 * i));
  Put(b, 4);
}
void PutU64(uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++) b[i] = uint8_t(v >> (8 * i));
  Put(b, 8);
}

off_t ImageSize() {
  struct stat st;
  return fstat(g.image_fd, &st) == 0 ? st.st_size : 0;
}

void FillAttr(fuse_ino_t ino, struct stat* st) {
  std::memset(st, 0, sizeof(*st));
  st->st_ino = ino;
  st->st_nlink = 1;
  if (ino == FUSE_ROOT_ID) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  } else if (ino == kDiskIno) {
    st->st_mode = S_IFREG | 0600;
    st->st_size = ImageSize();
  } else {
    st->st_mode = S_IFREG | 0200;
  }
  st->st_blksize = 4096;
  st->st_blocks = (st->st_size + 511) / 512;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_entry_param e{};
  if (parent != FUSE_ROOT_ID) return (void)fuse_reply_err(req, ENOENT);
  if (std::strcmp(name, "disk") == 0) {
    e.ino = kDiskIno;
  } else if (std::strcmp(name, "marks") == 0) {
    e.ino = kMarksIno;
  } else {
    return (void)fuse_reply_err(req, ENOENT);
  }
  FillAttr(e.ino, &e.attr);
  // No attribute or entry caching: the size is asked for each time.
  fuse_reply_entry(req, &e);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  struct stat st;
  FillAttr(ino, &st);
  fuse_reply_attr(req, &st, 0);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat*, int to_set, fuse_file_info*) {
  // The disk's size is the image's; truncating it is refused. Times and modes are ignored.
  if (to_set & FUSE_SET_ATTR_SIZE) return (void)fuse_reply_err(req, EPERM);
  struct stat st;
  FillAttr(ino, &st);
  fuse_reply_attr(req, &st, 0);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino != kDiskIno && ino != kMarksIno) return (void)fuse_reply_err(req, EISDIR);
  fi->direct_io = 1;
  fi->keep_cache = 0;
  fuse_reply_open(req, fi);
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  if (ino != kDiskIno) return (void)fuse_reply_buf(req, nullptr, 0);
  std::vector<char> buf(size);
  ssize_t n = pread(g.image_fd, buf.data(), size, off);
  if (n < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_buf(req, buf.data(), size_t(n));
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info*) {
  if (ino == kMarksIno) {
    PutU8('M');
    PutU32(uint32_t(size));
    Put(buf, size);
    if (std::fflush(g.log) != 0) g.log_failed = true;
    g.marks++;
    return (void)fuse_reply_write(req, size);
  }
  if (off < 0 || off + off_t(size) > ImageSize()) return (void)fuse_reply_err(req, ENOSPC);
  size_t done = 0;
  while (done < size) {
    ssize_t n = pwrite(g.image_fd, buf + done, size - done, off + off_t(done));
    if (n < 0) return (void)fuse_reply_err(req, errno);
    done += size_t(n);
  }
  PutU8('W');
  PutU64(uint64_t(off));
  PutU32(uint32_t(size));
  Put(buf, size);
  g.writes++;
  fuse_reply_write(req, size);
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  if (ino == kDiskIno) {
    if (g.drop_flushes) {
      g.dropped++;
    } else {
      PutU8('F');
      PutU8(datasync ? 1 : 0);
      g.flushes++;
    }
  }
  fuse_reply_err(req, 0);
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info*) {
  if (ino != kDiskIno) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if (!(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))) {
    // Plain allocation changes no byte the disk returns; nothing to record.
    return (void)fuse_reply_err(req, 0);
  }
  if (off < 0 || len <= 0 || off + len > ImageSize()) return (void)fuse_reply_err(req, EINVAL);
  if (fallocate(g.image_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) != 0) {
    return (void)fuse_reply_err(req, errno);
  }
  PutU8('Z');
  PutU64(uint64_t(off));
  PutU64(uint64_t(len));
  g.writes++;
  fuse_reply_err(req, 0);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  if (ino != FUSE_ROOT_ID) return (void)fuse_reply_err(req, ENOTDIR);
  const char* names[] = {".", "..", "disk", "marks"};
  const fuse_ino_t inos[] = {FUSE_ROOT_ID, FUSE_ROOT_ID, kDiskIno, kMarksIno};
  std::vector<char> buf(size);
  size_t used = 0;
  for (off_t i = off; i < 4; i++) {
    struct stat st;
    FillAttr(inos[i], &st);
    size_t n = fuse_add_direntry(req, buf.data() + used, size - used, names[i], &st, i + 1);
    if (n > size - used) break;
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

int Usage() {
  std::fprintf(stderr, "usage: stablefs-recorder [--drop-flushes] IMAGE LOG MOUNTPOINT\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--drop-flushes") {
      g.drop_flushes = true;
    } else if (a.size() > 1 && a[0] == '-') {
      return Usage();
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() != 3) return Usage();
  g.image_fd = open(pos[0].c_str(), O_RDWR | O_CLOEXEC);
  if (g.image_fd < 0) {
    std::fprintf(stderr, "stablefs-recorder: %s: %s\n", pos[0].c_str(), std::strerror(errno));
    return 1;
  }
  g.log = std::fopen(pos[1].c_str(), "we");
  if (g.log == nullptr) {
    std::fprintf(stderr, "stablefs-recorder: %s: %s\n", pos[1].c_str(), std::strerror(errno));
    return 1;
  }
  static char logbuf[1 << 20];
  std::setvbuf(g.log, logbuf, _IOFBF, sizeof(logbuf));
  Put("SFSRECv1", 8);

  fuse_lowlevel_ops ops{};
  ops.lookup = OpLookup;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.fsync = OpFsync;
  ops.fallocate = OpFallocate;
  ops.readdir = OpReaddir;

  std::string prog = argv[0];
  std::vector<char*> fargv = {prog.data()};
  std::string fsname = "-ofsname=stablefs-recorder,subtype=recorder";
  fargv.push_back(fsname.data());
  fuse_args args = FUSE_ARGS_INIT(int(fargv.size()), fargv.data());
  fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), nullptr);
  if (se == nullptr) return 1;
  if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, pos[2].c_str()) != 0) {
    fuse_session_destroy(se);
    return 1;
  }
  int rc = fuse_session_loop(se);
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  if (std::fclose(g.log) != 0) g.log_failed = true;
  std::fprintf(stderr,
               "stablefs-recorder: %llu writes, %llu flushes, %llu marks, %llu flushes dropped\n",
               (unsigned long long)g.writes, (unsigned long long)g.flushes,
               (unsigned long long)g.marks, (unsigned long long)g.dropped);
  if (g.log_failed) {
    std::fprintf(stderr, "stablefs-recorder: the log could not be written\n");
    return 1;
  }
  return rc == 0 ? 0 : 1;
}
