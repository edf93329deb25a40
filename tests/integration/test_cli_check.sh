#!/usr/bin/env bash
# `fieldgate check`: the summary of the shipped example, --json, every
# error of the all-errors fixture on stderr with the count, and the exit
# codes (0 valid, 1 errors, 2 usage).
set -u
: "${FG_BUILD_DIR:?}" "${FG_SOURCE_DIR:?}"
FG="$FG_BUILD_DIR/fieldgate"
DATA="$FG_SOURCE_DIR/tests/data"
EXAMPLE="$FG_SOURCE_DIR/config/fieldgate.example.yaml"
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

[ -x "$FG" ] || fail "no $FG"

# --- a valid map --------------------------------------------------------------
"$FG" check -c "$EXAMPLE" >"$TMP/out" 2>"$TMP/err"
rc=$?
cat "$TMP/out"
[ $rc -eq 0 ] || fail "check exit $rc: $(cat "$TMP/err")"
[ -s "$TMP/err" ] && fail "unexpected stderr: $(cat "$TMP/err")"
expect_re() {
    grep -qE -- "$1" "$TMP/out" || fail "output lacks /$1/"
}
expect_re ': OK$'
expect_re '^ +plant-meters +tcp +192\.168\.10\.21:502 +3 units$'
expect_re '^ +pump-line +rtu +/dev/ttyUSB0 19200 8E1 +2 units$'
expect_re '^ +heat-gateway +rtu-over-tcp +192\.168\.10\.40:4001 +2 units$'
expect_re '^units: 7 +points: 29 +writable: 3$'
expect_re '^points by type: .*float32 2'
expect_re '^poll groups: default 1s, fast 500ms, slow 1m$'
expect_re '^templates: em24 \(5 points, used by 3 units\)$'

# --- --json -----------------------------------------------------------------
"$FG" check -c "$EXAMPLE" --json >"$TMP/json" || fail "check --json failed"
$PY - "$TMP/json" <<'PYEOF' || fail "bad --json output"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["valid"] is True
assert [l["name"] for l in d["links"]] == ["plant-meters", "pump-line", "heat-gateway"]
assert d["links"][1]["endpoint"] == "/dev/ttyUSB0 19200 8E1"
assert d["units"] == 7 and d["points"] == 29 and d["writable"] == 3
assert sum(d["points_by_type"].values()) == 29
assert d["points_by_type"]["int32"] == 12
assert [(g["name"], g["interval_ms"]) for g in d["poll_groups"]] == \
    [("default", 1000), ("fast", 500), ("slow", 60000)]
assert d["templates"] == [{"name": "em24", "points": 5, "used_by": 3}]
PYEOF

# --- errors -------------------------------------------------------------------
"$FG" check -c "$DATA/cfg_all_errors.yaml" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] || fail "all-errors exit $rc"
[ -s "$TMP/out" ] && fail "unexpected stdout on errors"
n=$(grep -c '^.*cfg_all_errors\.yaml:[0-9]*:[0-9]*: ' "$TMP/err")
[ "$n" -eq 32 ] || fail "want 32 error lines, got $n"
tail -n 1 "$TMP/err" | grep -qx '32 error(s)' || fail "no '32 error(s)' line"
grep -qF 'cfg_all_errors.yaml:33:19: links[0].units[0].points[0].type: unknown type '"'"'flaot32'"'"' (expected one of bool, bit, int16' "$TMP/err" ||
    fail "flaot32 error missing"

"$FG" check -c "$DATA/cfg_all_errors.yaml" --json >"$TMP/json" 2>/dev/null
[ $? -eq 1 ] || fail "--json on errors: exit not 1"
$PY - "$TMP/json" <<'PYEOF' || fail "bad --json error output"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["valid"] is False and d["error"] == "GW_ECONFIG"
assert len(d["errors"]) == 32
e = d["errors"][0]
assert (e["line"], e["col"], e["path"]) == (5, 15, "poll_groups[0].interval")
PYEOF

"$FG" check -c "$TMP/missing.yaml" 2>"$TMP/err"
[ $? -eq 1 ] || fail "missing file: exit not 1"
grep -q 'missing.yaml: cannot open: No such file' "$TMP/err" || fail "missing file message"

# --- usage --------------------------------------------------------------------
"$FG" check >/dev/null 2>&1
[ $? -eq 2 ] || fail "no -c: exit not 2"
"$FG" check -c "$EXAMPLE" extra >/dev/null 2>&1
[ $? -eq 2 ] || fail "extra argument: exit not 2"
"$FG" check --bogus >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown option: exit not 2"
"$FG" check --help | grep -q 'usage: fieldgate check' || fail "--help"
echo "OK"
