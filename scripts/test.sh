#!/usr/bin/env bash
# The whole test suite: install what is missing, check formatting, build
# with ASan+UBSan and warnings as errors, run every ctest test; then run the
# threaded code (the polling engine's tests) again under ThreadSanitizer.
# Usage: scripts/test.sh [ctest args...]   (BUILD_DIR overrides build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/check-format.sh

BUILD_DIR=${BUILD_DIR:-build-asan}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Debug -DFG_ASAN=ON -DFG_WERROR=ON >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 "$@"
if [ $# -eq 0 ]; then
  scripts/test-tsan.sh
fi
