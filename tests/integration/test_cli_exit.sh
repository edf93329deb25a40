#!/usr/bin/env bash
# The exit status of `fieldgate read`, `write` and `run` against
# fieldgate-sim (README.md, "Exit status"): 0 success, 1 invalid map or a
# unit/point/value not in it, 2 usage error, 3 a device or the daemon
# failed; and `read --watch S` as a period: a read slower than S is
# followed at once, not at the next multiple of S nor S after it.
set -u
: "${FG_BUILD_DIR:?}" "${FG_SOURCE_DIR:?}"
FG="$FG_BUILD_DIR/fieldgate"
SIM="$FG_BUILD_DIR/fieldgate-sim"
TMP=$(mktemp -d)
sim_pid=
cleanup() {
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }

# rc WANT NAME -- command...: the command's exit status is WANT.
rc() {
    local want=$1 name=$2
    shift 3
    local got=0
    "$@" >"$TMP/out" 2>"$TMP/err" || got=$?
    if [ "$got" -eq "$want" ]; then
        ok "$name: exit $got"
    else
        bad "$name: exit $got, want $want; stdout: $(head -c 400 "$TMP/out"); stderr: $(head -c 400 "$TMP/err")"
    fi
}

# Unit 1 answers, unit 2 never does, unit 3 answers after 1.2 s.
"$SIM" --tcp 127.0.0.1:0 --units 1-3 --dead 2 --slow 3:1200ms >"$TMP/sim.out" &
sim_pid=$!
for _ in $(seq 100); do
    grep -q '^READY' "$TMP/sim.out" && break
    sleep 0.1
done
port=$(sed -n 's/^READY.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/sim.out")
[ -n "$port" ] || { echo "FAIL fieldgate-sim did not start"; exit 1; }

cat >"$TMP/map.yaml" <<EOF2
links:
  - name: plant
    type: tcp
    host: 127.0.0.1
    port: $port
    timeout: 300ms
    units:
      - name: m1
        id: 1
        points:
          - {name: hr0, table: holding, address: 0, type: uint16, writable: true}
          - {name: ir1, table: input, address: 1, type: uint16}
      - name: dead
        id: 2
        retries: 0
        points:
          - {name: hr0, table: holding, address: 0, type: uint16, writable: true}
      - name: slow
        id: 3
        timeout: 5s
        points:
          - {name: hr0, table: holding, address: 0, type: uint16}
EOF2
printf 'links:\n  - name: plant\n    type: tcp\n    port: nope\n' >"$TMP/bad.yaml"
M=$TMP/map.yaml

# --- success ---------------------------------------------------------------
rc 0 "read m1" -- "$FG" read -c "$M" m1
grep -qE '^m1\.hr0 +1000 ' "$TMP/out" && ok "read m1: hr0 = 1000" || bad "read m1 output: $(cat "$TMP/out")"
rc 0 "read m1.hr0 --json" -- "$FG" read -c "$M" m1.hr0 --json
rc 0 "write m1.hr0 77" -- "$FG" write -c "$M" m1.hr0 77
rc 0 "write m1.hr0 1000 --verify" -- "$FG" write -c "$M" m1.hr0 1000 --verify
rc 0 "fieldgate --help" -- "$FG" --help
grep -q "^Exit status: 0 success, 1 invalid map" "$TMP/out" && ok "--help documents the exit status" || bad "--help lacks the exit status"
for cmd in read write run; do
    rc 0 "$cmd --help" -- "$FG" "$cmd" --help
    grep -q "^Exit status:" "$TMP/out" && ok "$cmd --help documents the exit status" || bad "$cmd --help lacks the exit status"
done

# --- 3: a device failed ----------------------------------------------------
rc 3 "read of a dead unit" -- "$FG" read -c "$M" dead
grep -qE '^dead\.hr0 ' "$TMP/out" && ok "read of a dead unit still prints the table" || bad "read dead: no table: $(cat "$TMP/out")"
rc 3 "read of a healthy and a dead unit" -- "$FG" read -c "$M" m1 dead.hr0
rc 3 "write to a dead unit" -- "$FG" write -c "$M" dead.hr0 5

# --- 1: the map, or a name or value not in it -------------------------------
for cmd in "read -c $TMP/bad.yaml" "write -c $TMP/bad.yaml m1.hr0 1" "run -c $TMP/bad.yaml" "check -c $TMP/bad.yaml"; do
    rc 1 "${cmd%% *} with an invalid map" -- $FG $cmd
done
rc 1 "read with a missing map" -- "$FG" read -c "$TMP/none.yaml"
rc 1 "run with a missing map" -- "$FG" run -c "$TMP/none.yaml"
rc 1 "read of an unknown unit" -- "$FG" read -c "$M" nosuch
rc 1 "write of an unknown point" -- "$FG" write -c "$M" m1.nosuch 1
rc 1 "write of a read-only point" -- "$FG" write -c "$M" m1.ir1 1
rc 1 "write of a value the point cannot take" -- "$FG" write -c "$M" m1.hr0 70000
rc 1 "write of a non-number" -- "$FG" write -c "$M" m1.hr0 abc

# --- 2: usage ----------------------------------------------------------------
rc 2 "no command" -- "$FG"
rc 2 "unknown command" -- "$FG" frobnicate
for cmd in read write run; do
    rc 2 "$cmd with an unknown option" -- "$FG" "$cmd" -c "$M" --bogus
    rc 2 "$cmd without -c" -- "$FG" "$cmd"
done
rc 2 "read --watch 0" -- "$FG" read -c "$M" --watch 0
rc 2 "read --watch x" -- "$FG" read -c "$M" --watch x
rc 2 "write with one operand" -- "$FG" write -c "$M" m1.hr0
rc 2 "run with an operand" -- "$FG" run -c "$M" extra
rc 2 "run --log-level loud" -- "$FG" run -c "$M" --log-level loud

# --- run: 0 on SIGTERM -------------------------------------------------------
"$FG" run -c "$M" 2>"$TMP/run.err" &
run_pid=$!
for _ in $(seq 100); do
    grep -q "unit m1: online" "$TMP/run.err" && break
    sleep 0.1
done
kill -TERM "$run_pid"
wait "$run_pid"
got=$?
[ "$got" -eq 0 ] && ok "run stopped by SIGTERM: exit 0" || bad "run after SIGTERM: exit $got: $(tail -5 "$TMP/run.err")"

# --- status: the daemon's snapshot ------------------------------------------
mkdir -p "$TMP/rt"
rc 3 "status without a snapshot (--file)" -- "$FG" status --file "$TMP/none.json"
rc 3 "status without a snapshot (\$RUNTIME_DIRECTORY)" -- env RUNTIME_DIRECTORY="$TMP/rt" "$FG" status
grep -q "no status file $TMP/rt/status.json" "$TMP/err" && ok "status names the file it looked for" || bad "status message: $(cat "$TMP/err")"
rc 2 "status with an unknown option" -- "$FG" status --bogus
rc 2 "status with an operand" -- "$FG" status extra
rc 2 "status --file without a value" -- "$FG" status --file
rc 0 "status --help" -- "$FG" status --help
grep -q "^Exit status:" "$TMP/out" && ok "status --help documents the exit status" || bad "status --help lacks the exit status"
echo '{"state": "running", "time_ms": 1000}' >"$TMP/old.json"
rc 3 "status of a stale snapshot" -- "$FG" status --file "$TMP/old.json"
grep -q "probably not running" "$TMP/err" && ok "a stale snapshot is called so" || bad "stale message: $(cat "$TMP/err")"
echo '{"state": ' >"$TMP/broken.json"
rc 3 "status of a broken snapshot" -- "$FG" status --file "$TMP/broken.json"
RUNTIME_DIRECTORY="$TMP/rt" "$FG" run -c "$M" 2>"$TMP/srun.err" &
run_pid=$!
for _ in $(seq 100); do
    grep -q "unit dead: offline" "$TMP/srun.err" && [ -f "$TMP/rt/status.json" ] && break
    sleep 0.1
done
sleep 2.2 # the next snapshot has m1 online and dead offline
rc 0 "status of a running daemon (\$RUNTIME_DIRECTORY)" -- env RUNTIME_DIRECTORY="$TMP/rt" "$FG" status
grep -qE '^m1 +plant +online ' "$TMP/out" && ok "status table: m1 online" || bad "status table: $(cat "$TMP/out")"
grep -qE '^dead +plant +offline .*timed out' "$TMP/out" && ok "status table: dead offline, last error timed out" || bad "status table: $(cat "$TMP/out")"
rc 0 "status --json of a running daemon" -- "$FG" status --file "$TMP/rt/status.json" --json
/usr/bin/python3 - "$TMP/out" <<'PY' && ok "status --json: state, pid, units" || bad "status --json: $(head -c 600 "$TMP/out")"
import json, sys
st = json.load(open(sys.argv[1]))
units = {u["name"]: u for u in st["units"]}
sys.exit(0 if st["state"] == "running" and st["pid"] > 0
         and units["m1"]["status"] == "online"
         and units["dead"]["last_error"] == "timed out"
         and st["links"][0]["connected"] and not st["xmpp"]["enabled"] else 1)
PY
kill -TERM "$run_pid"
wait "$run_pid"
got=$?
[ "$got" -eq 0 ] && ok "run with a status file stopped by SIGTERM: exit 0" || bad "run with a status file: exit $got: $(tail -5 "$TMP/srun.err")"
rc 3 "status after the daemon stopped" -- "$FG" status --file "$TMP/rt/status.json"
grep -q "the daemon stopped" "$TMP/err" && ok "status says the daemon stopped" || bad "status after stop: $(cat "$TMP/err")"
ls "$TMP/rt" | grep -q tmp && bad "a temporary status file was left: $(ls "$TMP/rt")" || ok "no temporary status file left"

# --- read --watch: a period --------------------------------------------------
# The slow unit answers after 1.2 s and --watch is 1 s: each read must start
# as soon as the previous ends (reads ~1.2 s apart), not at the next whole
# period (2 s apart) nor 1 s after the previous ended (2.2 s apart).  The
# store's timestamps (ts_ms) of consecutive reads give the spacing.
"$FG" read -c "$M" slow.hr0 --json --watch 1 >"$TMP/watch.out" 2>"$TMP/watch.err" &
watch_pid=$!
for _ in $(seq 150); do
    [ "$(grep -c ts_ms "$TMP/watch.out")" -ge 5 ] && break
    sleep 0.1
done
kill -INT "$watch_pid"
wait "$watch_pid"
got=$?
[ "$got" -eq 0 ] && ok "read --watch stopped by SIGINT after good reads: exit 0" || bad "read --watch: exit $got $(cat "$TMP/watch.err")"
/usr/bin/python3 - "$TMP/watch.out" <<'PY' && ok "read --watch: a slow read is followed at once" || bad "read --watch spacing"
import json, sys
ts = [json.loads(l)["ts_ms"] for l in open(sys.argv[1]) if l.strip()]
gaps = [b - a for a, b in zip(ts, ts[1:])]
print("watch: ts gaps (ms):", gaps)
# Reads take >= 1200 ms; back to back they are < 1700 ms apart, where a
# pause or a fixed tick would make them >= 2000 ms apart.
sys.exit(0 if len(gaps) >= 3 and all(1150 <= g < 1700 for g in gaps) else 1)
PY
# A fast unit with --watch 0.2: reads on the period, not one per 0.2 s
# pause plus read time; counted over about 2 s of reads.
"$FG" read -c "$M" m1.hr0 --json --watch 0.2 >"$TMP/fast.out" 2>"$TMP/fast.err" &
watch_pid=$!
for _ in $(seq 150); do
    [ "$(grep -c ts_ms "$TMP/fast.out")" -ge 11 ] && break
    sleep 0.1
done
kill -INT "$watch_pid"
wait "$watch_pid"
/usr/bin/python3 - "$TMP/fast.out" <<'PY' && ok "read --watch 0.2: reads no faster than the period" || bad "read --watch 0.2 too fast"
import json, sys
ts = [json.loads(l)["ts_ms"] for l in open(sys.argv[1]) if l.strip()][:11]
span = ts[-1] - ts[0]
print("watch 0.2: 10 periods in", span, "ms")
# Ten periods of 200 ms: never faster than the period.  (Drift is not
# asserted here: an upper bound on time flakes on a loaded machine; the
# slow-unit check above tells a period from a pause with wide margins.)
sys.exit(0 if len(ts) == 11 and span >= 1900 else 1)
PY
# A watch whose reads fail exits 3.
"$FG" read -c "$M" dead --watch 0.5 >"$TMP/dw.out" 2>"$TMP/dw.err" &
watch_pid=$!
for _ in $(seq 100); do
    [ "$(grep -c '^dead.hr0' "$TMP/dw.out")" -ge 2 ] && break
    sleep 0.1
done
kill -INT "$watch_pid"
wait "$watch_pid"
got=$?
[ "$got" -eq 3 ] && ok "read --watch of a dead unit: exit 3" || bad "read --watch dead: exit $got"

echo "test_cli_exit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
