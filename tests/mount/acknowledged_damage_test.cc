// Damage to a block whose write was acknowledged is damage, never an undone write (guarantees 2
// and 3, store format version 2): a 64 KiB file is copied in and acknowledged (a clean unmount,
// or an fsync before a SIGKILL of the daemon), one bit of one of its blocks is flipped in the
// segment file that holds it (found by its bytes), and the store is mounted again. The damaged
// block must read as EIO, the other 15 exactly, the size must stay 65536, and fsck.stablefs -n
// must exit 4 naming inode and offset. Recovery must not take the damaged block for the torn
// data of an unsynced write and drop the write that acknowledged it.
//
// A WAL cut short after an fsync and a SIGKILL looks like the torn tail a power cut leaves, but
// it held acknowledged writes: the mount and fsck refuse the store in one line (the synced log
// says how far the syncs went) and change none of its files; with the WAL put back, every
// acknowledged byte is there.
//
// Also: `stablefsctl wait` waits on the store's lock alone, and leaves a store the daemon left
// as it is (no recovery runs, no file changes), so that what is inspected after it is the
// evidence.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "tests/util/files.h"
#include "tests/util/mount.h"

namespace stablefs::testing {
namespace {

constexpr size_t kBlock = 4096;
constexpr size_t kFileBytes = 64 << 10;
constexpr size_t kDamagedBlock = 3;  // offset 12288

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Flips one bit of the copy of `block` in a segment file of the store; false if none holds it.
bool FlipBitInSegment(const std::string& store, const std::string& block) {
  for (const auto& e : std::filesystem::directory_iterator(store + "/segments")) {
    if (e.path().extension() != ".seg") continue;
    std::string seg = ReadAll(e.path());
    size_t at = seg.find(block);
    if (at == std::string::npos || at % kBlock != 0) continue;
    int fd = open(e.path().c_str(), O_RDWR);
    if (fd < 0) return false;
    char c = static_cast<char>(seg[at + 100] ^ 0x10);
    bool ok = pwrite(fd, &c, 1, static_cast<off_t>(at + 100)) == 1;
    return close(fd) == 0 && ok;
  }
  return false;
}

bool WriteAndFsync(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ok = fsync(fd) == 0 && ok;
  return close(fd) == 0 && ok;
}

// Mounts again and checks the outcome the damage must have.
void ExpectDamagedBlockAloneIsEio(Mount& m, const std::string& data) {
  ASSERT_TRUE(m.Start());
  struct stat st;
  ASSERT_EQ(stat(m.Path("f").c_str(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), kFileBytes) << "the acknowledged write was undone";
  int fd = open(m.Path("f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  for (size_t b = 0; b < kFileBytes / kBlock; b++) {
    char buf[kBlock];
    ssize_t r = pread(fd, buf, kBlock, static_cast<off_t>(b * kBlock));
    if (b == kDamagedBlock) {
      EXPECT_EQ(r, -1) << "the damaged block read as data";
      EXPECT_EQ(errno, EIO);
    } else {
      ASSERT_EQ(r, static_cast<ssize_t>(kBlock)) << "block " << b << ": " << strerror(errno);
      EXPECT_EQ(std::string(buf, kBlock), data.substr(b * kBlock, kBlock)) << "block " << b;
    }
  }
  close(fd);
  ASSERT_EQ(m.Stop(), 0);
  std::string out;
  EXPECT_EQ(RunCapture(std::string(FSCK_BIN) + " -n " + m.store(), &out), 4) << out;
  EXPECT_NE(out.find("inode 2 (/f) offset 12288"), std::string::npos) << out;
}

TEST(AcknowledgedDamage, BitFlipAfterCleanUnmountIsEioNotAnUndoneWrite) {
  Mount m;
  ASSERT_TRUE(m.Start());
  const std::string data = RandomBytes(kFileBytes, 1);
  {
    std::ofstream out(m.Path("f"), std::ios::binary);
    out << data;
  }
  ASSERT_EQ(m.Stop(), 0);  // waits for the daemon to exit: the store is as it left it
  ASSERT_TRUE(FlipBitInSegment(m.store(), data.substr(kDamagedBlock * kBlock, kBlock)));
  ExpectDamagedBlockAloneIsEio(m, data);
}

TEST(AcknowledgedDamage, BitFlipAfterFsyncAndSigkillIsEioNotAnUndoneWrite) {
  Mount m;
  ASSERT_TRUE(m.Start());
  const std::string data = RandomBytes(kFileBytes, 2);
  ASSERT_TRUE(WriteAndFsync(m.Path("f"), data));
  m.Crash();
  ASSERT_TRUE(FlipBitInSegment(m.store(), data.substr(kDamagedBlock * kBlock, kBlock)));
  ExpectDamagedBlockAloneIsEio(m, data);
}

// The newest WAL file of the store that holds records.
std::string NewestWal(const std::string& store) {
  std::string newest;
  for (const auto& e : std::filesystem::directory_iterator(store)) {
    if (e.path().extension() == ".log" && std::filesystem::file_size(e.path()) > 0 &&
        e.path().string() > newest) {
      newest = e.path().string();
    }
  }
  return newest;
}

TEST(AcknowledgedDamage, AWalCutShortAfterFsyncAndSigkillIsRefusedNotUndone) {
  Mount m;
  ASSERT_TRUE(m.Start());
  const std::string a = RandomBytes(kFileBytes, 4), b = RandomBytes(100, 5);
  ASSERT_TRUE(WriteAndFsync(m.Path("a"), a));
  ASSERT_TRUE(WriteAndFsync(m.Path("b"), b));
  m.Crash();
  const std::string wal = NewestWal(m.store());
  ASSERT_FALSE(wal.empty()) << "no WAL holds the fsynced writes";
  const std::string whole = ReadAll(wal);
  ASSERT_GT(whole.size(), 64u);
  std::filesystem::resize_file(wal, whole.size() - 40);  // into the last record
  const auto before = FileStamps(m.store());
  const auto segments_before = FileStamps(m.store() + "/segments");

  EXPECT_FALSE(m.Start()) << "a store missing acknowledged WAL records was mounted";
  EXPECT_EQ(m.start_exit_status(), 1);
  std::string out;
  EXPECT_NE(RunCapture(std::string(FSCK_BIN) + " -n " + m.store(), &out), 0) << out;
  EXPECT_NE(out.find("acknowledged"), std::string::npos) << out;
  EXPECT_NE(out.find("not opened"), std::string::npos) << out;
  EXPECT_EQ(FileStamps(m.store()), before) << "a refused open changed the store";
  EXPECT_EQ(FileStamps(m.store() + "/segments"), segments_before);

  // The evidence was kept: with the WAL whole again, nothing acknowledged is missing.
  {
    std::ofstream out_wal(wal, std::ios::binary | std::ios::trunc);
    out_wal << whole;
  }
  ASSERT_TRUE(m.Start());
  EXPECT_EQ(ReadAll(m.Path("a")), a);
  EXPECT_EQ(ReadAll(m.Path("b")), b);
  ASSERT_EQ(m.Stop(), 0);
}

TEST(AcknowledgedDamage, WaitLeavesTheStoreAsTheDaemonLeftIt) {
  Mount m;
  ASSERT_TRUE(m.Start());
  ASSERT_TRUE(WriteAndFsync(m.Path("f"), RandomBytes(kFileBytes, 3)));
  // While the daemon holds the store, wait times out with an operational error.
  std::string out;
  EXPECT_EQ(RunCapture(std::string(STABLEFSCTL_BIN) + " wait " + m.store() + " 1", &out), 8) << out;
  EXPECT_NE(out.find("still in use"), std::string::npos) << out;
  m.Crash();  // a WAL that a recovery would replay, flush and replace
  const auto before = FileStamps(m.store());
  const auto segments_before = FileStamps(m.store() + "/segments");
  out.clear();
  EXPECT_EQ(RunCapture(std::string(STABLEFSCTL_BIN) + " wait " + m.store() + " 5", &out), 0) << out;
  EXPECT_EQ(FileStamps(m.store()), before) << "wait changed the store";
  EXPECT_EQ(FileStamps(m.store() + "/segments"), segments_before);
  // A missing store is nobody's: nothing to wait for.
  EXPECT_EQ(RunCapture(std::string(STABLEFSCTL_BIN) + " wait " + m.store() + "/none 1", &out), 0);
}

}  // namespace
}  // namespace stablefs::testing
