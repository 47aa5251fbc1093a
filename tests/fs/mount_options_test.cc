// The daemon's -o options (fs/mount_options.h): what main() parses, what it rejects with which
// message, and what it leaves for FUSE.
#include "fs/mount_options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace stablefs {
namespace {

// Parses argv (after a program name) and returns the status; *left gets what stays for FUSE.
Status Parse(std::vector<std::string> argv, MountOptions* o,
             std::vector<std::string>* left = nullptr) {
  argv.insert(argv.begin(), "stablefs");
  std::vector<char*> ptrs;
  for (std::string& a : argv) ptrs.push_back(a.data());
  ptrs.push_back(nullptr);
  struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), ptrs.data());
  Status s = ParseMountOptions(&args, o);
  if (left != nullptr) {
    left->clear();
    for (int i = 1; i < args.argc; i++) left->push_back(args.argv[i]);
  }
  fuse_opt_free_args(&args);
  return s;
}

TEST(MountOptionsTest, DefaultsWithoutOptions) {
  MountOptions o;
  std::vector<std::string> left;
  ASSERT_TRUE(Parse({"/store", "/mnt"}, &o, &left).ok());
  EXPECT_EQ(o.store, "/store");
  EXPECT_EQ(left, std::vector<std::string>{"/mnt"});
  EXPECT_EQ(o.stable_pages, StablePolicy::kWait);
  EXPECT_FALSE(o.debug_stable);
  EXPECT_FALSE(o.debug_faults);
  EXPECT_FALSE(o.debug_lose_writeback_errors);
  EXPECT_EQ(o.debug_power_cut, -1);
  EXPECT_EQ(o.cache_bytes, size_t{256} << 20);
  EXPECT_EQ(o.writeback_expire_ms, 5000u);
  EXPECT_EQ(o.attr_timeout, 1.0);
  EXPECT_FALSE(o.show_help);
}

TEST(MountOptionsTest, EachOptionIsReadAndFuseKeepsItsOwn) {
  MountOptions o;
  std::vector<std::string> left;
  ASSERT_TRUE(Parse({"-f", "-o",
                     "stable_pages=bounce,allow_other,cache_size=3M,debug_stable,"
                     "writeback_expire_ms=600000,attr_timeout=0.25,debug_faults,"
                     "debug_lose_writeback_errors,debug_power_cut=120",
                     "/store", "/mnt"},
                    &o, &left)
                  .ok());
  EXPECT_EQ(o.stable_pages, StablePolicy::kBounce);
  EXPECT_TRUE(o.debug_stable);
  EXPECT_EQ(o.cache_bytes, size_t{3} << 20);
  EXPECT_EQ(o.writeback_expire_ms, 600000u);
  EXPECT_EQ(o.attr_timeout, 0.25);
  EXPECT_TRUE(o.debug_faults);
  EXPECT_TRUE(o.debug_lose_writeback_errors);
  EXPECT_EQ(o.debug_power_cut, 120);
  EXPECT_EQ(o.store, "/store");
  // fuse_opt gathers the options left for FUSE into one -o at the front.
  EXPECT_EQ(left, (std::vector<std::string>{"-o", "allow_other", "-f", "/mnt"}));
  ASSERT_TRUE(Parse({"--help"}, &o).ok());
  EXPECT_TRUE(o.show_help);
}

TEST(MountOptionsTest, NorecoveryNeedsRoAndRoStaysWithFuse) {
  MountOptions o;
  std::vector<std::string> left;
  ASSERT_TRUE(Parse({"-o", "ro,norecovery", "/store", "/mnt"}, &o, &left).ok());
  EXPECT_TRUE(o.norecovery);
  EXPECT_TRUE(o.read_only);
  EXPECT_EQ(left, (std::vector<std::string>{"-o", "ro", "/mnt"}));  // the kernel enforces ro
  MountOptions n;
  ASSERT_TRUE(Parse({"-o", "noload,ro", "/store", "/mnt"}, &n).ok());  // ext4's name for it
  EXPECT_TRUE(n.norecovery);
  MountOptions bad;
  Status s = Parse({"-o", "norecovery", "/store", "/mnt"}, &bad);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("only with ro"), std::string::npos) << s.message();
  MountOptions last;
  EXPECT_TRUE(Parse({"-o", "ro,rw,norecovery", "/store", "/mnt"}, &last).IsInvalidArgument());
}

TEST(MountOptionsTest, AtimeOptionsTheLastOneCounts) {
  MountOptions o;
  std::vector<std::string> left;
  ASSERT_TRUE(Parse({"-o", "strictatime,nodiratime,lazytime", "/store", "/mnt"}, &o, &left).ok());
  EXPECT_EQ(o.atime, AtimePolicy::kStrict);
  EXPECT_TRUE(o.nodiratime);
  EXPECT_EQ(left, (std::vector<std::string>{"/mnt"}));  // libfuse knows none of these
  MountOptions last;
  ASSERT_TRUE(Parse({"-o", "strictatime,noatime", "/store", "/mnt"}, &last, &left).ok());
  EXPECT_EQ(last.atime, AtimePolicy::kNoatime);
  EXPECT_EQ(left, (std::vector<std::string>{"-o", "noatime", "/mnt"}));  // a mount flag too
  MountOptions r;
  ASSERT_TRUE(Parse({"-o", "noatime,relatime,diratime", "/store", "/mnt"}, &r).ok());
  EXPECT_EQ(r.atime, AtimePolicy::kRelatime);
  EXPECT_FALSE(r.nodiratime);
  MountOptions n;
  ASSERT_TRUE(Parse({"-o", "norelatime", "/store", "/mnt"}, &n).ok());
  EXPECT_EQ(n.atime, AtimePolicy::kStrict);
}

TEST(MountOptionsTest, SizesTakeSuffixesAndRejectOverflow) {
  size_t v = 0;
  EXPECT_TRUE(ParseSize("0", &v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(ParseSize("12", &v));
  EXPECT_EQ(v, 12u);
  EXPECT_TRUE(ParseSize("7k", &v));
  EXPECT_EQ(v, size_t{7} << 10);
  EXPECT_TRUE(ParseSize("5M", &v));
  EXPECT_EQ(v, size_t{5} << 20);
  EXPECT_TRUE(ParseSize("2g", &v));
  EXPECT_EQ(v, size_t{2} << 30);
  EXPECT_TRUE(ParseSize("18446744073709551615", &v));
  EXPECT_EQ(v, SIZE_MAX);
  v = 99;
  // strtoull took a sign, blanks and wrapping shifts: 17179869184G was 0 bytes.
  for (const char* bad : {"", "G", "-1", " 5", "5 ", "+5", "5T", "5MB", "0x10", "17179869184G",
                          "18446744073709551616", "18014398509481984K"}) {
    EXPECT_FALSE(ParseSize(bad, &v)) << bad;
  }
  EXPECT_EQ(v, 99u);
}

TEST(MountOptionsTest, BadValuesAreOneClearErrorNamingTheOption) {
  struct Case {
    const char* option;
    const char* message;
  } cases[] = {
      {"stable_pages=sometimes", "stable_pages must be wait, bounce or off"},
      {"cache_size=lots", "cache_size: not a size: lots"},
      {"cache_size=17179869184G", "cache_size: not a size"},
      // fuse_opt's %u read -1 as 4294967295 and ignored trailing bytes.
      {"writeback_expire_ms=-1", "writeback_expire_ms: not a number"},
      {"writeback_expire_ms=10s", "writeback_expire_ms: not a number"},
      {"writeback_expire_ms=4294967296", "writeback_expire_ms: not a number"},
      // fuse_opt's %lf read nan, which libfuse converts to an integer timeout (undefined).
      {"attr_timeout=nan", "attr_timeout: not a non-negative number"},
      {"attr_timeout=inf", "attr_timeout: not a non-negative number"},
      {"attr_timeout=1e999", "attr_timeout: not a non-negative number"},
      {"attr_timeout=-1", "attr_timeout: not a non-negative number"},
      {"attr_timeout= 1", "attr_timeout: not a non-negative number"},
      {"attr_timeout=1x", "attr_timeout: not a non-negative number"},
      {"attr_timeout=", "attr_timeout: not a non-negative number"},
      {"debug_power_cut=-1", "debug_power_cut: not a number"},
      {"debug_power_cut=", "debug_power_cut: not a number"},
  };
  for (const Case& c : cases) {
    MountOptions o;
    Status s = Parse({"-o", c.option, "/store", "/mnt"}, &o);
    EXPECT_TRUE(s.IsInvalidArgument()) << c.option;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << c.option << ": " << s.message();
  }
  MountOptions o;
  EXPECT_EQ(Parse({"-o"}, &o).message(), "");  // fuse_opt's own error, printed by fuse_opt
}

TEST(MountOptionsTest, FormatReadsBackToTheSameOptions) {
  MountOptions o;
  o.stable_pages = StablePolicy::kOff;
  o.debug_stable = true;
  o.cache_bytes = 123456789;
  o.writeback_expire_ms = 4294967295u;
  o.attr_timeout = 0.1;
  o.atime = AtimePolicy::kStrict;
  o.nodiratime = true;
  o.nokillpriv_v2 = true;
  o.norecovery = true;
  o.read_only = true;
  o.debug_faults = true;
  o.debug_lose_writeback_errors = true;
  o.debug_power_cut = 0;
  EXPECT_EQ(FormatMountOptions(o),
            "stable_pages=off,debug_stable,cache_size=123456789,writeback_expire_ms=4294967295,"
            "attr_timeout=0.10000000000000001,strictatime,nodiratime,nokillpriv_v2,norecovery,ro,"
            "debug_faults,"
            "debug_lose_writeback_errors,debug_power_cut=0");
  MountOptions back;
  ASSERT_TRUE(Parse({"-o", FormatMountOptions(o)}, &back).ok());
  EXPECT_EQ(back, o);
  MountOptions defaults, parsed;
  ASSERT_TRUE(Parse({"-o", FormatMountOptions(defaults)}, &parsed).ok());
  EXPECT_EQ(parsed, defaults);
}

}  // namespace
}  // namespace stablefs
