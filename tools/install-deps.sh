#!/usr/bin/env bash
# Installs what stablefs needs to build, test and run, from Debian's packages. Safe to run again:
# it asks apt only for what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  clang clang-format libclang-rt-14-dev   # thread-safety analysis, sanitizers, format check
  libfuse3-dev fuse3                      # the FUSE low-level API, fusermount3, mount.fuse3
  librocksdb-dev                          # the block store
  libxxhash-dev                           # the XXH3 guard
  libboost-dev                            # Boost.Intrusive lists of the page cache
  libgtest-dev libgmock-dev               # tests
  acl                                     # setfacl/getfacl in the mount tests
  libbenchmark-dev fio python3            # benchmarks (tools/bench/)
  mount e2fsprogs xfsprogs btrfs-progs    # stablefsctl compare: losetup, mkfs.ext4/xfs/btrfs
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
