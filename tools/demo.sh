#!/usr/bin/env bash
# Sets up stablefs on a fresh Debian machine and shows it working: installs what is missing,
# builds, creates a default store, mounts it, writes a file and reads it back, shows the file's
# block with its stored and recomputed protection information, verifies every block, and leaves
# the filesystem mounted. Override the places with STORE=... MNT=...
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

STORE=${STORE:-/var/tmp/stablefs-demo/store}
MNT=${MNT:-/var/tmp/stablefs-demo/mnt}
mkdir -p "$MNT"
if mountpoint -q "$MNT"; then fusermount3 -u "$MNT"; fi
if [ ! -e "$STORE/CURRENT" ]; then build/tools/mkfs.stablefs "$STORE"; fi

echo; echo "== mount: build/fs/stablefs $STORE $MNT"
build/fs/stablefs "$STORE" "$MNT"
echo "== write and read back"
echo "stable pages, end-to-end protection: $(date)" > "$MNT/hello.txt"
cat "$MNT/hello.txt"
ls -l "$MNT"

echo; echo "== unmount (writes back and syncs), then look at the store"
fusermount3 -u "$MNT"
build/tools/stablefsctl wait "$STORE"  # the daemon finishes after umount returns
build/tools/stablefsctl inspect "$STORE" /hello.txt
build/tools/stablefsctl verify "$STORE"

echo; echo "== mounted again at $MNT"
build/fs/stablefs "$STORE" "$MNT"
cat "$MNT/hello.txt"
echo
echo "Unmount with: fusermount3 -u $MNT    (or: umount $MNT)"
