// stablefsctl: look into a stablefs store. This file holds the usage text and the dispatch to the
// subcommands, each in its own file (tools/ctl/ctl.h lists them), and to the two that live apart:
//
//   stablefsctl compare [--fs LIST] [--checks LIST] [--seconds N] [--json]
//                                                 the guarantee checks on stablefs and kernel
//                                                 filesystems side by side (tools/compare/)
//   stablefsctl torture-store [--states L] [--damage L] [--kinds L] [--rounds N] [--sample N]
//                             [--every-cut] [--seed N] [--dir DIR] [--keep]
//                                                 the damage campaign: stores left in each
//                                                 state, damaged in each kind of file, checked
//                                                 through mounts (tools/torture/torture.h)
#include <cstdio>
#include <cstring>
#include <string>

#include "tools/compare/compare.h"
#include "tools/ctl/ctl.h"
#include "tools/torture/torture.h"

namespace stablefs::ctl {

void Usage() {
  std::fprintf(
      stderr,
      "usage: stablefsctl inspect STORE PATH [--offset N] [--json]\n"
      "       stablefsctl verify STORE\n"
      "       stablefsctl scrub [--rate MB/s] [--json] STORE-or-MOUNTPOINT\n"
      "       stablefsctl stats MOUNTPOINT [--json]\n"
      "       stablefsctl sync MOUNTPOINT\n"
      "       stablefsctl inject MOUNTPOINT write|sync|read|clear [COUNT]\n"
      "       stablefsctl corrupt STORE PATH --offset N --what "
      "data|guard|app|ref|swap|move|drop|torn [--to PATH2] [--to-offset M] [--above-pi]\n"
      "       stablefsctl torture-store [--states L] [--damage L] [--kinds L] [--rounds N]\n"
      "                 [--sample N] [--every-cut] [--seed N] [--dir DIR] [--keep]\n"
      "       stablefsctl wait STORE [SECONDS]\n"
      "       stablefsctl compare [--fs LIST] [--checks LIST] [--seconds N] [--json]\n");
}

namespace {

struct Command {
  const char* name;
  int (*main)(int argc, char** argv);
  // Without an operand (argv[2]) the usage is printed and the command not run.
  bool needs_operand;
};

constexpr Command kCommands[] = {
    {"compare", compare::CompareMain, false},
    {"torture-store", torture::TortureMain, false},
    {"scrub", ScrubMain, true},
    {"wait", WaitMain, true},
    {"sync", SyncMain, true},
    {"inject", InjectMain, true},
    {"stats", StatsMain, true},
    {"inspect", InspectMain, true},
    {"verify", VerifyMain, true},
    {"corrupt", CorruptMain, true},
};

const Command* FindCommand(const char* name) {
  for (const Command& c : kCommands) {
    if (std::strcmp(c.name, name) == 0) return &c;
  }
  return nullptr;
}

}  // namespace

}  // namespace stablefs::ctl

int main(int argc, char** argv) {
  using namespace stablefs::ctl;
  const Command* cmd = argc >= 2 ? FindCommand(argv[1]) : nullptr;
  if (cmd != nullptr && !cmd->needs_operand) return cmd->main(argc, argv);
  if (argc < 3) {
    Usage();
    return kError;
  }
  if (cmd == nullptr) {
    Usage();
    return Fail(std::string("unknown command ") + argv[1]);
  }
  return cmd->main(argc, argv);
}
