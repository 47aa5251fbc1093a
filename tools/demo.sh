#!/usr/bin/env bash
# Sets up stablefs on a fresh Debian machine and shows it working: installs what is missing,
# builds, creates a default store, mounts it, writes a file and reads it back, shows the file's
# block with its stored and recomputed protection information, verifies every block, and leaves
# the filesystem mounted. Override the places with STORE=... MNT=... It needs root (apt, mounts):
# run as another user it starts itself again through sudo. apt's and the build's output go to
# a log; the demo prints its own steps.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then exec sudo --preserve-env=STORE,MNT -- "$PWD/tools/demo.sh" "$@"; fi
  echo "demo.sh: needs root (it installs packages and mounts); run it as root" >&2
  exit 1
fi

DEMO=/var/tmp/stablefs-demo
STORE=${STORE:-$DEMO/store}
MNT=${MNT:-$DEMO/mnt}
LOG=$DEMO/setup.log
mkdir -p "$DEMO" "$MNT"
: >"$LOG"
# quietly CMD...: runs CMD with its output in the log; on failure shows the log's end.
quietly() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "failed: $* (the end of $LOG follows)" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
}

echo "== install what is missing (tools/install-deps.sh; output in $LOG)"
quietly tools/install-deps.sh
echo "== build (cmake, ninja: build/; output in $LOG)"
quietly cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
quietly cmake --build build -j "$(nproc)"

if mountpoint -q "$MNT"; then  # left mounted by an earlier run
  fusermount3 -u "$MNT"
  build/tools/stablefsctl wait "$STORE"
fi
if [ ! -e "$STORE/CURRENT" ]; then
  echo "== create a store: build/tools/mkfs.stablefs $STORE"
  build/tools/mkfs.stablefs "$STORE"
fi

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
