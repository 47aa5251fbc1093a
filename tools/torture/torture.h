// stablefsctl torture-store: a black-box damage campaign through real mounts (guarantees 2, 3
// and 5).
//
// For every state a store can be left in (a clean unmount; SIGKILL of the daemon after fsync;
// SIGKILL during writeback; a power cut at a write or sync of the store's files; after a
// collection of segments; after fstrim) a fresh store is made and a fixed workload run on it
// through a mount, with a model of what was acknowledged. Then each kind of damage (one bit
// flipped, a sector zeroed, two blocks swapped, the file cut short, the file removed) is done to
// a copy of that store, in each kind of file the store holds (segments, WAL, SST tables, blob
// files, MANIFEST, CURRENT, IDENTITY, OPTIONS), and the copy is checked as a user would meet it:
// fsck.stablefs -n, a mount, every file read, an online scrub, an unmount. Each case ends in
// one outcome:
//   exact     every acknowledged byte read back right (damage where no live data was)
//   eio       some reads were EIO (never wrong bytes), and fsck and the scrub found the damage
//   refused   the store cannot be opened: fsck and the daemon say so in one line, exit nonzero
//   n/a       the state has no file of that kind
//   WRONG     a read returned bytes no write put there, a program crashed or hung, or an EIO
//             that fsck or the scrub did not find
//   LOST      acknowledged data (a file, its size) is gone and fsck says the store is clean
// The matrix of outcomes and their counts is printed; the exit status is 0 if no case was WRONG
// or LOST, 4 if one was, 8 on an operational error.
#pragma once

namespace stablefs::torture {

// `stablefsctl torture-store ...`: argv[1] is "torture-store". Returns the exit status.
int TortureMain(int argc, char** argv);

}  // namespace stablefs::torture
