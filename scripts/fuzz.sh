#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time
# on a copy of its seed corpus (the seeds in git are not modified).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
scripts/deps.sh
cmake -S . -B build-fuzz -DFG_FUZZ=ON -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFG_BENCH=OFF >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
cmake --build build-fuzz -j"$(nproc)" --target $targets
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in $targets; do
  mkdir -p "$work/$t"
  cp tests/fuzz/corpus/"$t"/* "$work/$t"/ 2>/dev/null || true
  echo "== $t for ${secs}s"
  build-fuzz/tests/"$t" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="build-fuzz/$t-" "$work/$t" 2>&1 | tail -4
done
