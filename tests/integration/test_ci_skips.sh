#!/bin/bash
# scripts/ctest-skips.py, the skip policy of scripts/test.sh: under CI
# (CI=true) a test that did not run fails the run; elsewhere it is listed
# loudly and allowed.  Checked on hand-written ctest JUnit reports and on a
# real one from this machine's ctest (a tiny project with a passing, a
# skipped (exit 77) and a disabled test).
set -u
src=${FG_SOURCE_DIR:?}
chk=$src/scripts/ctest-skips.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

# expect NAME WANT_RC GREP_OR_EMPTY -- command...: runs it, checks the exit
# status and (when given) that stderr has the text; "!" + text: must not.
expect() {
  local name=$1 want=$2 text=$3
  shift 4
  local rc=0
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" -ne "$want" ]; then
    fail "$name: exit $rc, want $want: $(cat "$tmp/err")"
    return
  fi
  case $text in
    "") ;;
    !*) if grep -qF -- "${text#!}" "$tmp/err"; then
          fail "$name: stderr has '${text#!}'"; return; fi ;;
    *) if ! grep -qF -- "$text" "$tmp/err"; then
         fail "$name: stderr lacks '$text': $(cat "$tmp/err")"; return; fi ;;
  esac
  pass "$name"
}

cat >"$tmp/skip.xml" <<'X'
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="(empty)" tests="3" failures="0" disabled="0" skipped="1" hostname="" time="1" timestamp="2024-01-01T00:00:00">
	<testcase name="unit.test_log" classname="unit.test_log" time="0.1" status="run">
		<system-out>[  PASSED  ] 8 test(s).</system-out>
	</testcase>
	<testcase name="integration.test_sim_pymodbus" classname="integration.test_sim_pymodbus" time="0.2" status="notrun">
		<skipped message="SKIP_RETURN_CODE=77"/>
		<system-out>SKIP: pymodbus client unavailable
</system-out>
	</testcase>
	<testcase name="integration.test_x" classname="integration.test_x" time="0.3" status="fail">
		<failure message=""/>
	</testcase>
</testsuite>
X
cat >"$tmp/clean.xml" <<'X'
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="(empty)" tests="2" failures="1" disabled="0" skipped="0" hostname="" time="1" timestamp="2024-01-01T00:00:00">
	<testcase name="unit.test_log" classname="unit.test_log" time="0.1" status="run"><system-out></system-out></testcase>
	<testcase name="integration.test_x" classname="integration.test_x" time="0.3" status="fail"><failure message=""/></testcase>
</testsuite>
X
cat >"$tmp/disabled.xml" <<'X'
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="(empty)" tests="1" failures="0" disabled="1" skipped="0" hostname="" time="0" timestamp="2024-01-01T00:00:00">
	<testcase name="integration.test_off" classname="integration.test_off" time="0" status="disabled"><system-out>Disabled</system-out></testcase>
</testsuite>
X
cat >"$tmp/empty.xml" <<'X'
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="(empty)" tests="0" failures="0" disabled="0" skipped="0" hostname="" time="0" timestamp="2024-01-01T00:00:00">
</testsuite>
X
printf '<testsuite><testcase name="a" status="run">' >"$tmp/broken.xml"
printf '<?xml version="1.0"?><html/>' >"$tmp/other.xml"

expect "CI=true, a skip: fails, names it and why" 1 \
  "integration.test_sim_pymodbus: SKIP_RETURN_CODE=77 (SKIP: pymodbus client unavailable)" \
  -- env CI=true "$chk" "$tmp/skip.xml"
expect "CI=true: the failed and the passed test are not listed" 1 "!test_x" \
  -- env CI=true "$chk" "$tmp/skip.xml"
expect "CI=1 counts as CI" 1 "did NOT run" -- env CI=1 "$chk" "$tmp/skip.xml"
expect "local run, a skip: allowed with a loud summary" 0 \
  "1 test(s) did NOT run" -- env -u CI "$chk" "$tmp/skip.xml"
expect "CI=false is a local run" 0 "did NOT run" \
  -- env CI=false "$chk" "$tmp/skip.xml"
expect "--strict without CI fails" 1 "CI forbids" \
  -- env -u CI "$chk" --strict "$tmp/skip.xml"
expect "CI=true, no skip: passes quietly" 0 "!did NOT run" \
  -- env CI=true "$chk" "$tmp/clean.xml"
[ ! -s "$tmp/err" ] && pass "no skip: nothing printed" || fail "no skip: printed $(cat "$tmp/err")"
expect "CI=true, a disabled test fails too" 1 "integration.test_off: disabled" \
  -- env CI=true "$chk" "$tmp/disabled.xml"
expect "CI=true, no test at all: fails" 1 "NO test at all" \
  -- env CI=true "$chk" "$tmp/empty.xml"
expect "--strict, no test at all: fails" 1 "CI forbids a run without tests" \
  -- env -u CI "$chk" --strict "$tmp/empty.xml"
expect "local run, no test at all: allowed, loudly" 0 "NO test at all" \
  -- env -u CI "$chk" "$tmp/empty.xml"
expect "missing report: exit 2" 2 "cannot read" \
  -- env CI=true "$chk" "$tmp/none.xml"
expect "malformed report: exit 2" 2 "cannot read" -- env -u CI "$chk" "$tmp/broken.xml"
expect "not a ctest report: exit 2" 2 "not <testsuite>" -- env -u CI "$chk" "$tmp/other.xml"

# A real report from this machine's ctest, as scripts/test.sh makes it.
mkdir -p "$tmp/proj"
cat >"$tmp/proj/CMakeLists.txt" <<'X'
cmake_minimum_required(VERSION 3.16)
project(skips NONE)
enable_testing()
add_test(NAME passes COMMAND true)
add_test(NAME skips COMMAND sh -c "echo 'SKIP: no peer'; exit 77")
set_tests_properties(skips PROPERTIES SKIP_RETURN_CODE 77)
add_test(NAME off COMMAND true)
set_tests_properties(off PROPERTIES DISABLED TRUE)
X
if cmake -S "$tmp/proj" -B "$tmp/proj/b" >/dev/null 2>&1; then
  ctest --test-dir "$tmp/proj/b" --output-junit "$tmp/real.xml" >/dev/null 2>&1
  expect "real ctest report, CI=true: skip and disabled fail the run" 1 \
    "skips: SKIP_RETURN_CODE=77 (SKIP: no peer)" \
    -- env CI=true "$chk" "$tmp/real.xml"
  grep -qF "off: disabled" "$tmp/err" && pass "real report: the disabled test listed" \
    || fail "real report: disabled test not listed: $(cat "$tmp/err")"
  grep -qF "passes" "$tmp/err" && fail "real report: a passing test listed" \
    || pass "real report: the passing test not listed"
  ctest --test-dir "$tmp/proj/b" -R passes --output-junit "$tmp/real-ok.xml" >/dev/null 2>&1
  expect "real ctest report without skips, CI=true: passes" 0 "" \
    -- env CI=true "$chk" "$tmp/real-ok.xml"
  ctest --test-dir "$tmp/proj/b" -R no_such_test --output-junit "$tmp/real-none.xml" >/dev/null 2>&1
  expect "real ctest report with zero tests, CI=true: fails" 1 "NO test at all" \
    -- env CI=true "$chk" "$tmp/real-none.xml"
else
  fail "cmake cannot configure a tiny project"
fi

echo "test_ci_skips: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
