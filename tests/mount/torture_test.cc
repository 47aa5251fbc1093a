// The damage campaign (stablefsctl torture-store, tools/torture/torture.h), a bounded sample of
// it on every run: stores left in each state, damaged in each kind of file, checked through real
// mounts. No case may be WRONG or LOST. The seed comes from the clock and is printed, so that a
// failure can be run again with --seed. The whole matrix is one command in GUARANTEES.md.
//
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "tests/util/mount.h"

namespace {

using stablefs::testing::RunCapture;

void ExpectNoWrongOrLost(const std::string& args) {
  if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
  std::string out;
  const int status = RunCapture(std::string(STABLEFSCTL_BIN) + " torture-store " + args, &out);
  std::printf("%s", out.c_str());
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("WRONG 0 LOST 0"), std::string::npos) << out;
}

TEST(TortureStore, ASampleOfEveryStateAndFileKindGivesRightBytesOrFoundEio) {
  ExpectNoWrongOrLost("--sample 40");
}

TEST(TortureStore, DamageInsideTheManifestIsRefusedOrHarmless) {
  ExpectNoWrongOrLost("--kinds manifest --damage bitflip,zero-sector,swap,remove --sample 8");
}

TEST(TortureStore, TheWalOfACleanlyClosedStoreHoldsNothingToLose) {
  ExpectNoWrongOrLost("--states clean,collected,trimmed --kinds wal");
}

// The cases that were WRONG and LOST before the synced log: the WAL and the MANIFEST of a store
// that crashed, cut short, removed or damaged in their last records, and the log itself.
TEST(TortureStore, TheWalAndManifestOfACrashedStoreLoseNothingAcknowledged) {
  ExpectNoWrongOrLost(
      "--states kill-after-fsync,kill-in-writeback,power-cut --kinds wal,manifest,synced "
      "--damage bitflip,zero-sector,truncate,remove");
}

// A seed that found a WRONG case in the matrix above (2026-12-07): a power cut after some
// families had flushed past the live WAL file, which still held the other families' acknowledged
// writes, then that file removed. The store opened "recovered up to the mark" and read zeros
// where acknowledged blocks had been. Now refused. (The seed's draws depend on the whole list of
// cases, so the options are the test above's.)
TEST(TortureStore, AWalRemovedAfterSomeFamiliesFlushedPastItIsRefused) {
  ExpectNoWrongOrLost(
      "--states kill-after-fsync,kill-in-writeback,power-cut --kinds wal,manifest,synced "
      "--damage bitflip,zero-sector,truncate,remove --seed 63296440725765");
}

// Guarantee 5 for the tool itself: a bad option is one line naming it and exit 8, and nothing
// is run; --help is the usage and exit 0.
TEST(TortureStore, BadOptionsAreOneClearLineAndNothingRuns) {
  const std::string bin = std::string(STABLEFSCTL_BIN) + " torture-store ";
  for (const char* args : {"--rounds 0", "--rounds x", "--seed 12a", "--sample -1",
                           "--states clean,sunny", "--kinds wal,floppy", "--bogus"}) {
    SCOPED_TRACE(args);
    std::string out;
    EXPECT_EQ(RunCapture(bin + args, &out), 8) << out;
    EXPECT_NE(out.find("stablefsctl: torture-store:"), std::string::npos) << out;
    EXPECT_EQ(out.find(", work in "), std::string::npos) << out;  // nothing was run
  }
  std::string out;
  EXPECT_EQ(RunCapture(bin + "--help", &out), 0) << out;
  EXPECT_NE(out.find("usage: stablefsctl torture-store"), std::string::npos) << out;
}

}  // namespace
