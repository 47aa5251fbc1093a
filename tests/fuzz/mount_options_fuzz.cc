// The daemon's command line (fs/mount_options.h) on any arguments (the input split at NUL
// bytes): no crash, no leak; accepted options are in range (a finite, non-negative attribute
// timeout), and FormatMountOptions of them parses back to the same options.
#include <cmath>
#include <string>
#include <vector>

#include "fs/mount_options.h"
#include "tests/fuzz/fuzz_check.h"

namespace stablefs {
namespace {

// Runs ParseMountOptions over `argv` after a program name.
Status Parse(std::vector<std::string> argv, MountOptions* out) {
  argv.insert(argv.begin(), "stablefs");
  std::vector<char*> ptrs;
  for (std::string& a : argv) ptrs.push_back(a.data());
  ptrs.push_back(nullptr);
  struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), ptrs.data());
  Status s = ParseMountOptions(&args, out);
  fuse_opt_free_args(&args);
  return s;
}

}  // namespace
}  // namespace stablefs

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using stablefs::MountOptions;
  std::vector<std::string> argv(1);
  for (size_t i = 0; i < size; i++) {
    if (data[i] == '\0') {
      argv.emplace_back();
    } else {
      argv.back().push_back(static_cast<char>(data[i]));
    }
  }
  MountOptions o;
  if (!stablefs::Parse(argv, &o).ok()) return 0;
  FUZZ_CHECK(std::isfinite(o.attr_timeout) && o.attr_timeout >= 0);

  MountOptions back;
  FUZZ_CHECK(stablefs::Parse({"-o", stablefs::FormatMountOptions(o)}, &back).ok());
  back.store = o.store;
  back.show_help = o.show_help;
  FUZZ_CHECK(back == o);
  return 0;
}
