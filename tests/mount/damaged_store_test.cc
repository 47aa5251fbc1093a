// A store whose records are damaged at random (guarantee 5, issue 8's bad input): random bytes
// in random values, values cut short, a flipped byte, records deleted, in every space but the
// data (whose damage the PI checks cover, mount_test and scrub_test). Each damaged copy of a
// populated store must be reported by fsck or found clean, never crash it; the daemon must
// mount it or refuse with one line, never crash; mounted, a walk reading every file, link and
// xattr must get answers (data or errors), and the daemon must unmount without a signal.
#include <fcntl.h>
#include <ftw.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "storage/rocks_block_store.h"
#include "tests/util/mount.h"

namespace stablefs::testing {
namespace {

// Runs cmd; returns its exit status, or 128 + the signal that ended it.
int ExitStatus(const std::string& cmd) {
  int status = std::system((cmd + " >/dev/null 2>&1").c_str());
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return close(fd) == 0 && ok;
}

// A store with a bit of everything: directories, files of several sizes, a hole, links,
// symlinks, xattrs, an ACL-free mode mix.
void Populate(Mount& m) {
  ASSERT_EQ(mkdir(m.Path("d").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(m.Path("d/e").c_str(), 0700), 0);
  for (int i = 0; i < 6; i++) {
    const std::string name = m.Path("d/f" + std::to_string(i));
    ASSERT_TRUE(WriteFile(name, std::string(1000 * i * i + 1, static_cast<char>('a' + i))));
    ASSERT_EQ(setxattr(name.c_str(), "user.k", "value", 5, 0), 0);
  }
  ASSERT_TRUE(WriteFile(m.Path("d/e/big"), std::string(300000, 'b')));
  int fd = open(m.Path("sparse").c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "end", 3, 1 << 20), 3);
  close(fd);
  ASSERT_EQ(link(m.Path("d/f1").c_str(), m.Path("d/e/hard").c_str()), 0);
  ASSERT_EQ(symlink("d/f2", m.Path("sym").c_str()), 0);
  ASSERT_EQ(mkfifo(m.Path("fifo").c_str(), 0644), 0);
}

struct Record {
  Space space;
  std::string key, value;
};

// Damages `count` random records of every space but the data; returns what it did.
std::string Damage(const std::string& store_path, std::mt19937_64& rng, int count) {
  std::unique_ptr<RocksBlockStore> store;
  Status s = RocksBlockStore::Open(store_path, RocksOptions(), &store);
  if (!s.ok()) return "cannot open: " + s.ToString();
  std::vector<Record> records;
  for (int i = 0; i < kNumSpaces; i++) {
    Space sp = static_cast<Space>(i);
    if (sp == Space::kData) continue;
    EXPECT_TRUE(store
                    ->Scan(sp, "", "",
                           [&](std::string_view k, std::string_view v) {
                             records.push_back({sp, std::string(k), std::string(v)});
                             return true;
                           })
                    .ok());
  }
  std::string what;
  WriteBatch b;
  for (int n = 0; n < count && !records.empty(); n++) {
    const Record& r = records[rng() % records.size()];
    std::string v = r.value;
    switch (rng() % 4) {
      case 0:  // random bytes of a random length
        v.resize(rng() % 64);
        for (char& c : v) c = static_cast<char>(rng());
        what += " random";
        break;
      case 1:  // cut short
        v.resize(v.empty() ? 0 : rng() % v.size());
        what += " short";
        break;
      case 2:  // one byte flipped
        if (!v.empty()) v[rng() % v.size()] ^= static_cast<char>(1 + rng() % 255);
        what += " flip";
        break;
      default:
        b.Delete(r.space, r.key);
        what += " delete";
        what += std::string("(") + SpaceName(r.space) + ")";
        continue;
    }
    what += std::string("(") + SpaceName(r.space) + ")";
    b.Put(r.space, r.key, v);
  }
  s = store->Write(b, WriteOptions{.sync = true, .verify_pi = false});
  if (!s.ok()) what += " write failed: " + s.ToString();
  return what;
}

// Reads everything under the mount; the answers do not matter, getting them does.
int Visit(const char* path, const struct stat*, int type, struct FTW*) {
  char buf[65536];
  if (type == FTW_F) {
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd >= 0) {
      while (read(fd, buf, sizeof(buf)) > 0) {
      }
      close(fd);
    }
  } else if (type == FTW_SL) {
    (void)!readlink(path, buf, sizeof(buf));
  }
  (void)listxattr(path, buf, sizeof(buf));
  (void)lgetxattr(path, "user.k", buf, sizeof(buf));
  return 0;
}

TEST(DamagedStore, RandomRecordDamageIsReportedOrRefusedNeverACrash) {
  std::string template_store;
  TempDir keep;
  {
    Mount m;
    ASSERT_TRUE(m.Start());
    Populate(m);
    ASSERT_EQ(m.Stop(), 0);
    template_store = keep.Sub("template");
    std::filesystem::copy(m.store(), template_store, std::filesystem::copy_options::recursive);
  }
  const int rounds =
      std::getenv("STABLEFS_DAMAGE_ROUNDS") ? std::atoi(std::getenv("STABLEFS_DAMAGE_ROUNDS")) : 12;
  const uint64_t seed = std::random_device{}();
  std::printf("damaged store: seed %llu, %d rounds\n", static_cast<unsigned long long>(seed),
              rounds);
  std::mt19937_64 rng(seed);
  int found = 0, clean = 0, refused = 0, mounted = 0;
  for (int round = 0; round < rounds; round++) {
    Mount m;
    std::filesystem::remove_all(m.store());
    std::filesystem::copy(template_store, m.store(), std::filesystem::copy_options::recursive);
    const std::string what = Damage(m.store(), rng, 1 + round % 4);
    SCOPED_TRACE("round " + std::to_string(round) + ":" + what);

    const int fsck = ExitStatus(std::string(FSCK_BIN) + " -n " + m.store());
    EXPECT_TRUE(fsck == 0 || fsck == 4 || fsck == 8) << "fsck exit " << fsck;
    (fsck == 0 ? clean : found)++;

    if (!m.Start()) {
      // Refused: the daemon must have said why and exited 1, not died of a signal.
      EXPECT_EQ(m.start_exit_status(), 1);
      refused++;
      continue;
    }
    mounted++;
    nftw(m.Path("").c_str(), Visit, 16, FTW_PHYS);
    EXPECT_TRUE(IsMounted(m.mnt())) << "the daemon died while the damaged tree was read";
    const int stop = m.Stop();
    EXPECT_TRUE(stop == 0 || stop == 1) << "daemon exit " << stop;
  }
  std::printf(
      "damaged store: %d rounds: fsck found damage in %d, clean %d; mounted %d, refused %d\n",
      rounds, found, clean, mounted, refused);
}

}  // namespace
}  // namespace stablefs::testing
