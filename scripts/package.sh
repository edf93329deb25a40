#!/usr/bin/env bash
# Builds the Debian package (Release, no tests) into build-pkg/.
# Usage: scripts/package.sh   ->  build-pkg/fieldgate_<version>_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build-pkg -DCMAKE_BUILD_TYPE=Release -DFG_TESTS=OFF \
  -DFG_BENCH=OFF -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build build-pkg -j"$(nproc)"
(cd build-pkg && cpack -G DEB >/dev/null)
ls build-pkg/*.deb
