#!/usr/bin/env bash
# Sets up stablefs on a fresh Debian machine and shows it working: installs what is missing,
# builds, and creates a default store in /var/tmp/stablefs-demo/store (override with STORE=...).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

STORE=${STORE:-/var/tmp/stablefs-demo/store}
if [ -e "$STORE/CURRENT" ]; then
  echo "demo: using the existing store $STORE"
else
  build/tools/mkfs.stablefs "$STORE"
fi
echo "demo: the store is ready; remove it with: rm -r $STORE"
