#!/usr/bin/env bash
# `fieldgate plan` on fixture maps: the text table, the bus-time WARNING,
# the --json output request by request, and the exit codes (0 ok, 1 bad map
# or a point that can never be read, 2 usage).
set -u
: "${FG_BUILD_DIR:?}" "${FG_SOURCE_DIR:?}"
FG="$FG_BUILD_DIR/fieldgate"
DATA="$FG_SOURCE_DIR/tests/data"
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

[ -x "$FG" ] || fail "no $FG"

# --- text -------------------------------------------------------------------
"$FG" plan -c "$DATA/plan_site.yaml" >"$TMP/out" 2>"$TMP/err"
rc=$?
cat "$TMP/out"
[ $rc -eq 0 ] || fail "plan exit $rc: $(cat "$TMP/err")"
[ -s "$TMP/err" ] && fail "unexpected stderr: $(cat "$TMP/err")"

expect() { # a fixed string that must appear in the text output
    grep -qF -- "$1" "$TMP/out" || fail "text output lacks: $1"
}
expect_re() {
    grep -qE -- "$1" "$TMP/out" || fail "text output lacks /$1/"
}
expect "link plant: tcp 127.0.0.1:1502"
expect "link line1: rtu /dev/ttyUSB0 9600 8E1"
expect "poll group fast, every 100 ms"
expect_re '^ +meter1 +1 04 +0 +30001 +10  voltage, current, energy$'
expect_re '^ +meter2 +2 04 +0 +30001 +10  voltage, current, energy$'
expect_re '^ +meter2 +2 03 +100 +40101 +4  serial$'
expect_re '^ +vfd1 +3 01 +0 +00001 +1  run_cmd$'
expect_re '^ +vfd1 +3 02 +0 +10001 +1  fault$'
expect_re '^ +vfd1 +3 03 +100 +40101 +3  speed, current, status, running$'
expect_re '^ +vfd1 +3 03 +103 +40104 +2  power$'
expect_re '^ +sensor +4 04 +0 +30001 +1  temp$'
# 9600 8E1: 24063 + 24063 + 29792 + 27500 us in the fast group
expect "4 request(s), bus time 105.4 ms per cycle, interval 100 ms"
expect "1 request(s), bus time 25.2 ms per cycle, interval 1000 ms"
expect "WARNING: link line1, poll group fast: bus time 105.4 ms exceeds the interval 100 ms: cycle cannot fit its interval"
[ "$(grep -c WARNING "$TMP/out")" -eq 1 ] || fail "exactly one WARNING expected"
expect "9 request(s) on 2 link(s); skipped points: none"

# --- json -------------------------------------------------------------------
"$FG" plan -c "$DATA/plan_site.yaml" --json >"$TMP/json" 2>"$TMP/err"
rc=$?
[ $rc -eq 0 ] || fail "plan --json exit $rc: $(cat "$TMP/err")"
$PY - "$TMP/json" <<'EOF' || fail "json output"
import json, sys
doc = json.load(open(sys.argv[1]))
def req(unit, uid, fc, table, start, mod, count, points):
    return {"unit": unit, "unit_id": uid, "fc": fc, "table": table,
            "start": start, "modicon": mod, "count": count, "points": points}
meter = lambda u, i: req(u, i, 4, "input", 0, "30001", 10,
                         ["voltage", "current", "energy"])
serial = lambda u, i: req(u, i, 3, "holding", 100, "40101", 4, ["serial"])
want = {
    "links": [
        {"name": "plant", "type": "tcp", "endpoint": "127.0.0.1:1502",
         "groups": [
             {"group": "default", "interval_ms": 1000,
              "requests": [meter("meter1", 1), meter("meter2", 2)],
              "n_requests": 2, "bus_time_us": None, "fits": None,
              "warning": None, "skipped": []},
             {"group": "slow", "interval_ms": 10000,
              "requests": [serial("meter1", 1), serial("meter2", 2)],
              "n_requests": 2, "bus_time_us": None, "fits": None,
              "warning": None, "skipped": []}]},
        {"name": "line1", "type": "rtu",
         "endpoint": "/dev/ttyUSB0 9600 8E1",
         "groups": [
             {"group": "default", "interval_ms": 1000,
              "requests": [req("sensor", 4, 4, "input", 0, "30001", 1,
                               ["temp"])],
              "n_requests": 1, "bus_time_us": 25208, "fits": True,
              "warning": None, "skipped": []},
             {"group": "fast", "interval_ms": 100,
              "requests": [
                  req("vfd1", 3, 1, "coil", 0, "00001", 1, ["run_cmd"]),
                  req("vfd1", 3, 2, "discrete", 0, "10001", 1, ["fault"]),
                  req("vfd1", 3, 3, "holding", 100, "40101", 3,
                      ["speed", "current", "status", "running"]),
                  req("vfd1", 3, 3, "holding", 103, "40104", 2, ["power"])],
              "n_requests": 4, "bus_time_us": 24063 + 24063 + 29792 + 27500,
              "fits": False, "warning": "cycle cannot fit its interval",
              "skipped": []}]}],
    "n_requests": 9,
}
got = dict(doc)
assert got.pop("file").endswith("plan_site.yaml"), doc
if got != want:
    print(json.dumps(got, indent=1))
    sys.exit("json differs")
EOF

# --- errors -----------------------------------------------------------------
"$FG" plan -c "$DATA/plan_bad.yaml" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] || fail "bad map: exit $rc, want 1"
grep -qE 'plan_bad\.yaml:[0-9]+:[0-9]+: .*flaot32' "$TMP/err" ||
    fail "bad map: no FILE:LINE:COL error: $(cat "$TMP/err")"
grep -qE '^1 error\(s\)$' "$TMP/err" || fail "bad map: no error count"
[ -s "$TMP/out" ] && fail "bad map: output on stdout"

"$FG" plan -c "$DATA/plan_too_big.yaml" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] || fail "too big: exit $rc, want 1"
grep -q 'energy' "$TMP/err" || fail "too big: point not named: $(cat "$TMP/err")"

"$FG" plan -c "$TMP/missing.yaml" >/dev/null 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] || fail "missing file: exit $rc, want 1"

"$FG" plan >/dev/null 2>&1
[ $? -eq 2 ] || fail "no -c: want exit 2"
"$FG" plan -c "$DATA/plan_site.yaml" --bogus >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown option: want exit 2"
"$FG" plan -c "$DATA/plan_site.yaml" extra >/dev/null 2>&1
[ $? -eq 2 ] || fail "extra argument: want exit 2"
"$FG" plan --help | grep -q 'usage: fieldgate plan' || fail "--help"

echo "ok"
