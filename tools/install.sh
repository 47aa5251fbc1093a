#!/usr/bin/env bash
# Builds stablefs and installs its programs so that mount(8), /etc/fstab and xfstests can use
# them: stablefs, stablefsctl and mkfs.stablefs in PREFIX/bin and PREFIX/sbin, and
# mount.fuse.stablefs in /sbin, where mount(8) looks for helpers. PREFIX defaults to /usr/local.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
install -m 0755 build/fs/stablefs build/tools/stablefsctl "$PREFIX/bin/"
install -m 0755 build/tools/mkfs.stablefs build/tools/fsck.stablefs "$PREFIX/sbin/"
# mount(8) runs /sbin/mount.fuse.stablefs; it finds the daemon beside it, so link it there too.
install -m 0755 tools/mount.fuse.stablefs /sbin/mount.fuse.stablefs
ln -sf "$PREFIX/bin/stablefs" /sbin/stablefs
echo "installed: $PREFIX/bin/stablefs $PREFIX/bin/stablefsctl $PREFIX/sbin/mkfs.stablefs $PREFIX/sbin/fsck.stablefs /sbin/mount.fuse.stablefs"
