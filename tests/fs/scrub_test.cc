// The scrubber over a store built through the real Filesystem: a clean store is clean with every
// block counted across chunk boundaries; damage below the filesystem is found with inode, path,
// offset, field, expected and found; a block written while a chunk is checked is no false
// alarm; a cancelled scrub stops. Also fsck's progress callback.
#include "fs/scrub.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "storage/fault_block_store.h"
#include "storage/mem_block_store.h"
#include "storage/verifier.h"

namespace stablefs {
namespace {

// More blocks than one chunk holds, so that chunk boundaries are crossed.
constexpr uint64_t kFileBlocks = Scrubber::kChunkBlocks * 2 + 40;

class ScrubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(MemBlockStore::Create(CreateOptions(), &store_).ok());
    std::unique_ptr<Filesystem> fs;
    ASSERT_TRUE(Filesystem::Open(store_.get(), FilesystemOptions(), &fs).ok());
    Filesystem::Caller c;
    struct stat st;
    ASSERT_EQ(fs->Mkdir(kRootIno, "dir", 0755, c, &st), 0);
    std::unique_ptr<OpenFile> f;
    ASSERT_EQ(fs->Create(st.st_ino, "f", 0644, O_RDWR, c, &st, &f), 0);
    ino_ = st.st_ino;
    std::string data(kFileBlocks * kBlockSize, '\0');
    for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(i * 7 + i / 4096);
    size_t done;
    ASSERT_EQ(fs->Write(f.get(), 0, data.data(), data.size(), &done), 0);
    ASSERT_EQ(fs->Release(std::move(f)), 0);
    ASSERT_TRUE(fs->Shutdown().ok());
  }

  ScrubProgress RunScrub(std::vector<ScrubProblem>* problems) {
    Scrubber scrubber(store_.get());
    EXPECT_TRUE(scrubber.Start(ScrubOptions()).ok());
    scrubber.Wait();
    *problems = scrubber.problems(0, SIZE_MAX);
    return scrubber.progress();
  }

  // Rewrites block `index` of the file with `tuples` altered by `damage`, below every check.
  void Damage(uint64_t index, const std::function<void(std::string*, std::string*)>& damage) {
    std::string d, t;
    ASSERT_TRUE(store_->ReadBlockRaw(ino_, index, &d, &t).ok());
    damage(&d, &t);
    WriteBatch b;
    b.PutBlock(ino_, index, d.data(), t.data());
    ASSERT_TRUE(store_->Write(b, WriteOptions{.verify_pi = false}).ok());
  }

  std::unique_ptr<MemBlockStore> store_;
  uint64_t ino_ = 0;
};

TEST_F(ScrubTest, ACleanStoreIsCleanAndEveryBlockIsCounted) {
  std::vector<ScrubProblem> problems;
  ScrubProgress p = RunScrub(&problems);
  EXPECT_EQ(p.state, ScrubState::kDone) << p.error;
  EXPECT_EQ(p.blocks_checked, kFileBlocks);
  EXPECT_EQ(p.blocks_total, kFileBlocks);
  EXPECT_EQ(p.bytes_checked, kFileBlocks * kBlockSize);
  EXPECT_EQ(p.problems, 0u);
  EXPECT_TRUE(problems.empty());
}

TEST_F(ScrubTest, EachDamageIsReportedWithInodePathOffsetExpectedAndFound) {
  const pi::Profile& prof = store_->profile();
  const size_t app_at = prof.guard == pi::GuardKind::kCrc16T10Dif ? 2 : 8;
  pi::Tuple stored_app;
  Damage(3, [&](std::string* d, std::string*) { (*d)[100] ^= 1; });  // data: the guard fails
  Damage(Scrubber::kChunkBlocks, [&](std::string*, std::string* t) {
    (*t)[app_at] ^= 1;
    stored_app = pi::DecodeTuple(prof, t->data());
  });
  // A lost block: gone from the data, still in the block map. At the first key of the last chunk.
  WriteBatch b;
  b.Delete(Space::kData, DataKey(ino_, 2 * Scrubber::kChunkBlocks));
  ASSERT_TRUE(store_->Write(b, WriteOptions{.verify_pi = false}).ok());

  std::vector<ScrubProblem> problems;
  ScrubProgress p = RunScrub(&problems);
  ASSERT_EQ(p.state, ScrubState::kDone) << p.error;
  EXPECT_EQ(p.blocks_checked, kFileBlocks - 1);
  ASSERT_EQ(problems.size(), 3u) << ScrubReportJson(p, problems, 4);
  EXPECT_EQ(p.problems, 3u);
  for (const ScrubProblem& q : problems) {
    EXPECT_EQ(q.ino, ino_);
    EXPECT_EQ(q.path, "/dir/f");
  }
  EXPECT_EQ(problems[0].offset, 3 * kBlockSize);
  EXPECT_EQ(problems[0].field, "guard");
  EXPECT_TRUE(problems[0].has_values);
  EXPECT_NE(problems[0].expected, problems[0].found);
  EXPECT_EQ(problems[1].offset, Scrubber::kChunkBlocks * kBlockSize);
  EXPECT_EQ(problems[1].field, "application tag");
  EXPECT_EQ(problems[1].expected, pi::AppTagForOwner(ino_));
  EXPECT_EQ(problems[1].found, stored_app.app_tag);
  EXPECT_EQ(problems[2].offset, 2 * Scrubber::kChunkBlocks * kBlockSize);
  EXPECT_EQ(problems[2].field, "missing");
  EXPECT_FALSE(problems[2].has_values);
  const std::string json = ScrubReportJson(p, problems, 4);
  EXPECT_NE(json.find("\"path\": \"/dir/f\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"field\": \"application tag\""), std::string::npos) << json;
}

// A store that writes block `index` back (valid, fresh tuples) just before the first scan of the
// block map: a write that lands between a chunk's data scan and its block-map scan.
class WriteBetweenScansStore : public FaultBlockStore {
 public:
  WriteBetweenScansStore(std::unique_ptr<BlockStore> base, uint64_t ino, uint64_t index)
      : FaultBlockStore(std::move(base)), ino_(ino), index_(index) {}
  bool wrote() const { return wrote_; }

 protected:
  Status DoScan(Space s, std::string_view begin, std::string_view end,
                const std::function<bool(std::string_view, std::string_view)>& fn) override {
    if (s == Space::kBlockMap && !wrote_) {
      wrote_ = true;
      std::string data(kBlockSize, 'w'), tuples(tuple_bytes_per_block(), '\0');
      GenerateBlockPi(ino_, index_, data.data(), tuples.data());
      WriteBatch b;
      b.PutBlock(ino_, index_, data.data(), tuples.data());
      STABLEFS_RETURN_IF_ERROR(Write(b));
    }
    return FaultBlockStore::DoScan(s, begin, end, fn);
  }

 private:
  const uint64_t ino_, index_;
  bool wrote_ = false;
};

// A block written after a chunk's data was read is in the block map but not in what the chunk
// saw: it must be looked at again, not called lost.
TEST_F(ScrubTest, ABlockWrittenBetweenTheDataAndBlockMapScansIsNoFalseAlarm) {
  WriteBatch hole;
  hole.DeleteBlocks(ino_, 10, 11);
  ASSERT_TRUE(store_->Write(hole).ok());
  WriteBetweenScansStore store(std::move(store_), ino_, 10);
  Scrubber scrubber(&store);
  ASSERT_TRUE(scrubber.Start(ScrubOptions()).ok());
  scrubber.Wait();
  ScrubProgress p = scrubber.progress();
  std::vector<ScrubProblem> problems = scrubber.problems(0, SIZE_MAX);
  ASSERT_TRUE(store.wrote());
  EXPECT_EQ(p.state, ScrubState::kDone) << p.error;
  EXPECT_EQ(p.problems, 0u) << ScrubReportJson(p, problems, 4);
  EXPECT_EQ(p.blocks_checked, kFileBlocks - 1);  // block 10 came back after its chunk was read
}

TEST_F(ScrubTest, ACancelledScrubStops) {
  Scrubber scrubber(store_.get());
  // One block a second: only cancellation can end it within the test.
  ASSERT_TRUE(scrubber.Start(ScrubOptions{.rate_bytes_per_sec = kBlockSize}).ok());
  EXPECT_TRUE(scrubber.Start(ScrubOptions()).IsBusy());
  scrubber.Cancel();
  scrubber.Wait();
  ScrubProgress p = scrubber.progress();
  EXPECT_EQ(p.state, ScrubState::kCancelled);
  EXPECT_LT(p.blocks_checked, kFileBlocks);
  // A new scrub may start once the last one has ended.
  ASSERT_TRUE(scrubber.Start(ScrubOptions()).ok());
  scrubber.Wait();
  EXPECT_EQ(scrubber.progress().state, ScrubState::kDone);
  EXPECT_EQ(scrubber.progress().blocks_checked, kFileBlocks);
  EXPECT_EQ(scrubber.progress().generation, p.generation + 1);
}

// Fsck, scrub and the verifier stablefsctl verify prints make one check: the same findings, at
// the same places, in a store that also holds preallocated blocks, which none of them may call
// missing (they have no data record by design).
TEST_F(ScrubTest, FsckScrubAndVerifyFindTheSameDamageAndNoPreallocatedBlockIsMissing) {
  {
    std::unique_ptr<Filesystem> fs;
    ASSERT_TRUE(Filesystem::Open(store_.get(), FilesystemOptions(), &fs).ok());
    Filesystem::Caller c;
    struct stat st;
    std::unique_ptr<OpenFile> f;
    ASSERT_EQ(fs->Create(kRootIno, "prealloc", 0644, O_RDWR, c, &st, &f), 0);
    ASSERT_EQ(fs->Fallocate(f.get(), 0, 0, 8 * kBlockSize, c), 0);
    const std::string block(kBlockSize, 'p');
    size_t done;
    ASSERT_EQ(fs->Write(f.get(), 2 * kBlockSize, block.data(), block.size(), &done), 0);
    ASSERT_EQ(fs->Release(std::move(f)), 0);
    ASSERT_TRUE(fs->Shutdown().ok());
  }
  Damage(3, [&](std::string* d, std::string*) { (*d)[100] ^= 1; });  // guard
  Damage(9, [&](std::string*, std::string* t) { (*t)[4] ^= 1; });    // a tag
  WriteBatch b;
  b.Delete(Space::kData, DataKey(ino_, 7));                            // lost
  b.Put(Space::kBlockMap, DataKey(ino_, 11), std::string("\x02", 1));  // malformed map value
  Status w = store_->Write(b, WriteOptions{.verify_pi = false});
  ASSERT_TRUE(w.ok()) << w.ToString();

  using Findings = std::set<std::tuple<uint64_t, uint64_t, std::string>>;  // inode, offset, what
  Findings by_fsck, by_scrub, by_verifier;
  FsckReport r;
  ASSERT_TRUE(Fsck(store_.get(), false, &r).ok());
  for (const FsckProblem& q : r.problems) by_fsck.insert({q.ino, q.offset, q.what});
  std::vector<ScrubProblem> problems;
  ScrubProgress p = RunScrub(&problems);
  ASSERT_EQ(p.state, ScrubState::kDone) << p.error;
  for (const ScrubProblem& q : problems) by_scrub.insert({q.ino, q.offset, q.what});
  struct Sink : BlockVerifierSink {
    Sink(const pi::Profile& p, Findings* found) : p(p), found(found) {}
    void Found(const BlockFinding& f) override { found->insert({f.ino, f.Offset(p), f.What(p)}); }
    const pi::Profile& p;
    Findings* found;
  } sink(store_->profile(), &by_verifier);
  ASSERT_TRUE(VerifyAllBlocks(store_.get(), &sink).ok());

  EXPECT_EQ(by_verifier.size(), 4u);
  EXPECT_EQ(by_scrub, by_verifier);
  EXPECT_EQ(by_fsck, by_verifier);
  std::set<uint64_t> offsets;
  for (const auto& [ino, offset, what] : by_verifier) {
    EXPECT_EQ(ino, ino_) << what;
    offsets.insert(offset / kBlockSize);
  }
  EXPECT_EQ(offsets, (std::set<uint64_t>{3, 7, 9, 11}));
  EXPECT_EQ(r.ExitCode(), 4);
}

TEST_F(ScrubTest, FsckReportsProgressWithTheExpectedTotal) {
  uint64_t last_done = 0, last_total = 0;
  FsckReport r;
  ASSERT_TRUE(Fsck(store_.get(), false, &r, [&](const char* phase, uint64_t done, uint64_t total) {
                if (std::string(phase) != "blocks") return;
                EXPECT_GT(done, last_done);
                last_done = done;
                last_total = total;
              }).ok());
  EXPECT_EQ(r.ExitCode(), 0);
  EXPECT_GT(last_done, 0u);
  EXPECT_LE(last_done, kFileBlocks);
  EXPECT_EQ(last_total, kFileBlocks);
}

}  // namespace
}  // namespace stablefs
