#!/usr/bin/env bash
# `fieldgate check`: the summary of the shipped example, --json, every
# error of the all-errors fixture on stderr with the count, warnings (on
# stderr, exit 0), and the exit codes (0 valid, 1 errors, 2 usage).
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
expect_re '^events: pubsub\.xmpp\.example\.org, 7 nodes fieldgate/gateway/<unit>, access whitelist, max_items 1, not persisted; 27 of 29 points$'

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
e = d["events"]
assert e["service"] == "pubsub.xmpp.example.org" and e["pep"] is False
assert e["nodes"] == 7 and e["points"] == 27
assert e["node_prefix"] == "fieldgate/gateway/"
assert e["access_model"] == "whitelist" and e["max_items"] == 1
assert e["persist_items"] is False and e["notification_type"] == "headline"
assert e["send_last_published_item"] == "on_sub_and_presence"
assert e["window"] == 16 and e["publish_timeout_ms"] == 10000
assert d["warnings"] == []
PYEOF

# --- warnings: printed, the check still passes ---------------------------------
WARN="$DATA/cfg_events_warn.yaml"
"$FG" check -c "$WARN" >"$TMP/out" 2>"$TMP/err"
rc=$?
cat "$TMP/err"
[ $rc -eq 0 ] || fail "warnings: exit $rc"
expect_re ': OK$'
expect_re '^events: pubsub\.example\.org, 1 node fieldgate/gw/<unit>, access whitelist'
grep -qF "cfg_events_warn.yaml:16:33: access.readers[1]: warning: domains cannot be whitelisted: readers from partner.example.net will not be able to subscribe to the event nodes (access_model whitelist); list bare JIDs" "$TMP/err" ||
    fail "readers domain warning missing"
grep -qF "cfg_events_warn.yaml:17:17: access.controllers[0]: warning: domains cannot be whitelisted: controllers from ops.example.org" "$TMP/err" ||
    fail "controllers domain warning missing"
tail -n 1 "$TMP/err" | grep -qx '2 warning(s)' || fail "no '2 warning(s)' line"
grep -q 'viewer@example.org' "$TMP/err" && fail "a bare JID was warned about"
"$FG" check -c "$WARN" --json >"$TMP/json" 2>/dev/null || fail "warnings --json: exit not 0"
$PY - "$TMP/json" <<'PYEOF' || fail "bad --json warnings"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["valid"] is True
w = d["warnings"]
assert [(x["line"], x["col"], x["path"]) for x in w] == \
    [(16, 33, "access.readers[1]"), (17, 17, "access.controllers[0]")], w
assert "domains cannot be whitelisted" in w[0]["message"]
assert d["events"]["pep"] is False and d["events"]["nodes"] == 1
PYEOF

# PEP (no service): presence access model, domains are fine, no warning
sed -e '/^events:/,$d' "$WARN" >"$TMP/pep.yaml"
printf 'events:\n  window: 4\n' >>"$TMP/pep.yaml"
"$FG" check -c "$TMP/pep.yaml" >"$TMP/out" 2>"$TMP/err" || fail "pep: exit $?"
[ -s "$TMP/err" ] && fail "pep: unexpected stderr: $(cat "$TMP/err")"
expect_re '^events: PEP \(gw@example\.org\), 1 node fieldgate/gw/<unit>, access presence'

# --- errors -------------------------------------------------------------------
"$FG" check -c "$DATA/cfg_all_errors.yaml" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] || fail "all-errors exit $rc"
[ -s "$TMP/out" ] && fail "unexpected stdout on errors"
n=$(grep -c '^.*cfg_all_errors\.yaml:[0-9]*:[0-9]*: ' "$TMP/err")
[ "$n" -eq 37 ] || fail "want 37 error lines, got $n"
tail -n 1 "$TMP/err" | grep -qx '37 error(s)' || fail "no '37 error(s)' line"
grep -qF 'cfg_all_errors.yaml:33:19: links[0].units[0].points[0].type: unknown type '"'"'flaot32'"'"' (expected one of bool, bit, int16' "$TMP/err" ||
    fail "flaot32 error missing"

"$FG" check -c "$DATA/cfg_all_errors.yaml" --json >"$TMP/json" 2>/dev/null
[ $? -eq 1 ] || fail "--json on errors: exit not 1"
$PY - "$TMP/json" <<'PYEOF' || fail "bad --json error output"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["valid"] is False and d["error"] == "GW_ECONFIG"
assert len(d["errors"]) == 37
e = d["errors"][0]
assert (e["line"], e["col"], e["path"]) == (5, 15, "poll_groups[0].interval")
PYEOF

# --- delivery every: the spool directory is checked (a warning, exit 0) --------
mkspool() {
    cat >"$TMP/spool.yaml" <<YEOF
links:
  - {name: l, type: tcp, host: 127.0.0.1, units: [{name: u, id: 1, points: [{name: p, address: 40001}]}]}
xmpp: {jid: gw@example.org, password: x}
events:
  delivery: every
  spool: {dir: $1}
YEOF
}
: >"$TMP/afile"
mkspool "$TMP/afile/spool"
"$FG" check -c "$TMP/spool.yaml" >/dev/null 2>"$TMP/err"
rc=$?
[ $rc -eq 0 ] || fail "spool below a file: exit $rc"
grep -qF "spool.yaml:6:10: events.spool.dir: warning: the spool directory $TMP/afile/spool does not exist" "$TMP/err" ||
    fail "spool below a file: no warning ($(cat "$TMP/err"))"
mkdir -p "$TMP/okspool"
mkspool "$TMP/okspool/sub"
"$FG" check -c "$TMP/spool.yaml" >"$TMP/out" 2>"$TMP/err" || fail "creatable spool: exit not 0"
[ ! -s "$TMP/err" ] || fail "creatable spool: unexpected output: $(cat "$TMP/err")"
grep -qF "delivery: every, spool $TMP/okspool/sub" "$TMP/out" || fail "delivery line missing"

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
