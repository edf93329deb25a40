#!/bin/sh
# Builds build-tsan (ThreadSanitizer) and runs the polling engine's
# integration tests there: the link workers, the uv_async hand-over and the
# engine's shutdown under a race detector.  Usage: scripts/test-tsan.sh
# Env: FG_TSAN_BUILD (build dir, default build-tsan), JOBS (default 2).
# Skipped tests follow scripts/ctest-skips.py's policy (fail under CI=true).
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${FG_TSAN_BUILD:-$src/build-tsan}
case $build in /*) ;; *) build=$PWD/$build ;; esac
cmake -S "$src" -B "$build" -DFG_TSAN=ON -DFG_WERROR=ON \
    -DCMAKE_BUILD_TYPE=Debug -DFG_BENCH=OFF >/dev/null
# Every C engine test (tests/integration/test_engine_*.c) is built: the
# ctest selection below runs them all, and one not built would not run.
engine_tests=$(cd "$src/tests/integration" && ls test_engine_*.c | sed 's/\.c$//')
# shellcheck disable=SC2086
cmake --build "$build" -j"${JOBS:-2}" --target fieldgate fieldgate-sim \
    $engine_tests
# Any report fails the test (TSan exits 66 after reporting).
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export TSAN_OPTIONS
junit=$build/ctest-junit.xml
rm -f "$junit"
rc=0
ctest --test-dir "$build" -L integration -R 'integration\.test_engine_' \
    --output-on-failure --output-junit "$junit" || rc=$?
"$src/scripts/ctest-skips.py" "$junit" || { [ "$rc" -ne 0 ] || rc=1; }
exit "$rc"
