// The committed seed corpus (tests/fuzz/corpus) is what make_fuzz_corpus writes, and every seed
// is a valid input: its decoder accepts it, so each fuzzer starts from records that decode.
#include "tests/fuzz/seeds.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "fs/acl.h"
#include "fs/mount_options.h"
#include "storage/coding.h"
#include "storage/format.h"

namespace stablefs {
namespace {

std::map<std::string, std::string> ReadDir(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  if (!std::filesystem::is_directory(dir)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    files[entry.path().filename()] = ss.str();
  }
  return files;
}

TEST(FuzzSeedsTest, TheCommittedCorpusIsMakeFuzzCorpusOutput) {
  for (const std::string& target : FuzzTargets()) {
    const auto seeds = SeedsFor(target);
    ASSERT_FALSE(seeds.empty()) << target;
    const std::map<std::string, std::string> want(seeds.begin(), seeds.end());
    EXPECT_TRUE(ReadDir(std::filesystem::path(FUZZ_CORPUS_DIR) / target) == want)
        << target << ": regenerate with build/tests/make_fuzz_corpus tests/fuzz/corpus";
  }
}

// Each seed is accepted by the decoder its target runs.
bool Accepted(const std::string& target, const std::string& in) {
  if (target == "superblock_fuzz") return Superblock().DecodeFrom(in).ok();
  if (target == "inode_record_fuzz") return InodeRecord().DecodeFrom(in).ok();
  if (target == "dirent_record_fuzz") return DirentRecord().DecodeFrom(in).ok();
  if (target == "keys_fuzz") {
    uint64_t a, b;
    std::string_view n;
    return ParseInodeKey(in, &a) || ParseNameKey(in, &a, &n) || ParseCookieKey(in, &a, &b) ||
           ParseDataKey(in, &a, &b) || DecodeCounter(in, &a).ok();
  }
  if (target == "pi_block_fuzz") {
    if (in.size() < kBlockInputHeader) return false;
    const pi::Profile p = ProfileNumber(static_cast<uint8_t>(in[0]));
    const uint64_t ino = DecodeFixed64BE(in.data() + 1);
    const uint64_t index = DecodeFixed64BE(in.data() + 9);
    const std::string_view value = std::string_view(in).substr(kBlockInputHeader);
    return value.size() == kBlockSize + TupleBytesPerBlock(p) &&
           pi::Verify(p, value.data(), kBlockSize, value.data() + kBlockSize,
                      FirstSectorOfBlock(p, index), pi::AppTagForOwner(ino), nullptr);
  }
  if (target == "pi_profile_fuzz") {
    pi::Profile p;
    return pi::Profile::Parse(in, &p).ok();
  }
  if (target == "acl_fuzz") return in.size() >= 2 && Acl().Decode(in.substr(0, in.size() - 2));
  if (target == "mount_options_fuzz") {
    std::vector<std::string> argv = {"stablefs"};
    std::stringstream ss(in);
    for (std::string arg; std::getline(ss, arg, '\0');) argv.push_back(arg);
    std::vector<char*> ptrs;
    for (std::string& a : argv) ptrs.push_back(a.data());
    struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(ptrs.size()), ptrs.data());
    MountOptions o;
    const bool ok = ParseMountOptions(&args, &o).ok();
    fuse_opt_free_args(&args);
    return ok;
  }
  return false;
}

TEST(FuzzSeedsTest, EverySeedDecodes) {
  for (const std::string& target : FuzzTargets()) {
    for (const auto& [name, bytes] : SeedsFor(target)) {
      EXPECT_TRUE(Accepted(target, bytes)) << target << "/" << name;
    }
  }
}

}  // namespace
}  // namespace stablefs
