// stablefsctl verify STORE
//
// Checks every data block of an unmounted store against its tuples and every block map entry
// against the data, with the store's verifier (storage/verifier.h), the same check as fsck's and
// scrub's; exit status 4 if a block is damaged or missing.
#include <cinttypes>
#include <cstdio>

#include "storage/verifier.h"
#include "tools/ctl/ctl.h"

namespace stablefs::ctl {

namespace {

int Verify(BlockStore* store) {
  // The store's verifier (storage/verifier.h), the same check as fsck's and scrub's.
  struct Sink : BlockVerifierSink {
    explicit Sink(const pi::Profile& p) : profile(p) {}
    void Checked(uint64_t, uint64_t) override { checked++; }
    void Found(const BlockFinding& f) override {
      (f.kind == BlockFindingKind::kMissing ? missing : damaged)++;
      std::printf("inode %" PRIu64 " offset %" PRIu64 ": %s\n", f.ino, f.Offset(profile),
                  f.What(profile).c_str());
    }
    const pi::Profile& profile;
    uint64_t checked = 0, damaged = 0, missing = 0;
  } sink(store->profile());
  if (Status s = VerifyAllBlocks(store, &sink); !s.ok()) return Fail(s.ToString());
  std::printf("%" PRIu64 " blocks verified against their tuples: %" PRIu64 " damaged, %" PRIu64
              " missing\n",
              sink.checked, sink.damaged, sink.missing);
  return sink.damaged + sink.missing == 0 ? kClean : kDamage;
}

}  // namespace

int VerifyMain(int, char** argv) {
  std::unique_ptr<RocksBlockStore> store;
  Status s = OpenStore(argv[2], &store);
  if (!s.ok()) return Fail(s.ToString());
  return Verify(store.get());
}

}  // namespace stablefs::ctl
