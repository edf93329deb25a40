#!/usr/bin/env bash
# fieldgate-sim over Modbus TCP, checked with an independent master: mbpoll.
# Default contents, writes that stick, exception 02 (illegal ranges),
# exception 03 (max_registers), a dead unit, an unknown unit, the STATS line
# and a clean SIGTERM exit (ASan/LSan would make it non-zero).
set -uo pipefail

BUILD=${FG_BUILD_DIR:-$(dirname "$0")/../../build}
SIM=$BUILD/fieldgate-sim
[ -x "$SIM" ] || { echo "FAIL: $SIM not built"; exit 1; }
if ! command -v mbpoll >/dev/null; then
    apt-get install -y mbpoll >/dev/null 2>&1 || { echo "SKIP: no mbpoll"; exit 77; }
fi

TMP=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# Starts the simulator with "$@" and waits for its READY line; sets PID and
# PORT.
start_sim() {
    "$SIM" "$@" >"$TMP/out" 2>"$TMP/err" &
    PID=$!
    for _ in $(seq 1 200); do
        grep -q '^READY ' "$TMP/out" && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    PORT=$(sed -n 's/^READY .*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/out")
    [ -n "$PORT" ] || { echo "FAIL: no READY line"; cat "$TMP/err"; exit 1; }
}

# mbpoll over TCP, one poll; prints "v1 v2 ..." of the [n]: lines.
poll() {
    mbpoll -m tcp -p "$PORT" -1 -o 1 "$@" 127.0.0.1 2>"$TMP/mb.err" |
        sed -n 's/^\[[0-9]*\]:[[:space:]]*\(-\{0,1\}[0-9]*\).*/\1/p' | tr '\n' ' ' |
        sed 's/ $//'
    return "${PIPESTATUS[0]}"
}

expect() { # name expected actual
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

start_sim --tcp 127.0.0.1:0 --units 1-4 --dead 3 --illegal 2:100-109,200 \
    --max-regs 4:10 --stats
echo "$(cat "$TMP/out")"

# Defaults: registers (unit * 1000 + address) & 0xffff; mbpoll -r is 1-based.
expect "unit 1 holding 0..4" "1000 1001 1002 1003 1004" "$(poll -a 1 -t 4 -r 1 -c 5)"
expect "unit 2 holding 995..999" "2995 2996 2997 2998 2999" "$(poll -a 2 -t 4 -r 996 -c 5)"
expect "unit 4 input 7..9" "4007 4008 4009" "$(poll -a 4 -t 3 -r 8 -c 3)"
expect "unit 1 coils 0..3 (even = 1)" "1 0 1 0" "$(poll -a 1 -t 0 -r 1 -c 4)"
expect "unit 1 discretes 0..3 (odd = 1)" "0 1 0 1" "$(poll -a 1 -t 1 -r 1 -c 4)"
out=$(poll -a 1 -t 4 -r 1000 -c 2); rc=$?
[ $rc -ne 0 ] && grep -q "Illegal data address" "$TMP/mb.err" &&
    pass "read past address 999 -> exception 02" ||
    fail "read past 999: rc=$rc out='$out' $(cat "$TMP/mb.err")"

# Writes stick (FC06, FC16, FC05, FC15), other units untouched.
mbpoll -m tcp -p "$PORT" -a 1 -t 4 -r 3 127.0.0.1 777 >/dev/null 2>&1 || fail "FC06 write"
mbpoll -m tcp -p "$PORT" -a 1 -t 4 -r 6 127.0.0.1 11 12 13 >/dev/null 2>&1 || fail "FC16 write"
expect "read back writes" "1000 1001 777 1003 1004 11 12 13 1008" "$(poll -a 1 -t 4 -r 1 -c 9)"
expect "unit 2 unchanged" "2002" "$(poll -a 2 -t 4 -r 3 -c 1)"
mbpoll -m tcp -p "$PORT" -a 1 -t 0 -r 2 127.0.0.1 1 >/dev/null 2>&1 || fail "FC05 write"
mbpoll -m tcp -p "$PORT" -a 1 -t 0 -r 5 127.0.0.1 0 1 1 >/dev/null 2>&1 || fail "FC15 write"
expect "read back coils" "1 1 1 0 0 1 1 0" "$(poll -a 1 -t 0 -r 1 -c 8)"

# exception02: 100-109 and 200 on unit 2, any request touching them.
expect "unit 2 holding 98..99 (next to the range)" "2098 2099" "$(poll -a 2 -t 4 -r 99 -c 2)"
for ref in "100 -c 2" "110 -c 1" "201 -c 1" "105 -c 1 -t 3"; do
    # shellcheck disable=SC2086
    out=$(poll -a 2 -t 4 -r $ref); rc=$?
    [ $rc -ne 0 ] && grep -q "Illegal data address" "$TMP/mb.err" &&
        pass "unit 2 -r $ref -> exception 02" ||
        fail "unit 2 -r $ref: rc=$rc out='$out' $(cat "$TMP/mb.err")"
done
expect "unit 2 holding 110 (after the range)" "2110" "$(poll -a 2 -t 4 -r 111 -c 1)"

# max_registers 10 on unit 4: 10 is fine, 11 is exception 03.
expect "unit 4 reads 10 registers" "4000 4001 4002 4003 4004 4005 4006 4007 4008 4009" \
    "$(poll -a 4 -t 4 -r 1 -c 10)"
out=$(poll -a 4 -t 4 -r 1 -c 11); rc=$?
[ $rc -ne 0 ] && grep -q "Illegal data value" "$TMP/mb.err" &&
    pass "unit 4 reads 11 registers -> exception 03" ||
    fail "unit 4 -c 11: rc=$rc out='$out' $(cat "$TMP/mb.err")"

# Dead unit 3: no answer at all (mbpoll times out).
out=$(poll -a 3 -t 4 -r 1 -c 1); rc=$?
[ $rc -ne 0 ] && grep -qi "timed out" "$TMP/mb.err" &&
    pass "dead unit 3 -> timeout" || fail "dead unit: rc=$rc out='$out' $(cat "$TMP/mb.err")"

# Unknown unit 9: exception 0B (gateway target failed to respond).
out=$(poll -a 9 -t 4 -r 1 -c 1); rc=$?
[ $rc -ne 0 ] && grep -qi "failed to respond" "$TMP/mb.err" &&
    pass "unknown unit 9 -> exception 0B" || fail "unknown unit: rc=$rc $(cat "$TMP/mb.err")"

# Stop by PID: clean exit and a STATS line (unit 3 counted one request).
kill -TERM "$PID"
wait "$PID"; rc=$?
PID=
[ $rc -eq 0 ] && pass "SIGTERM -> exit 0" || { fail "exit status $rc"; cat "$TMP/err"; }
stats=$(grep '^STATS ' "$TMP/out")
echo "$stats"
echo "$stats" | grep -q ' unit3=1/0' && pass "stats count the dead unit" || fail "stats: $stats"
echo "$stats" | grep -q ' unit4=3/1' && pass "stats count exceptions" || fail "stats: $stats"

# Usage errors exit 2 without serving.
"$SIM" --tcp 127.0.0.1:0 --units 1-2 --dead 7 >/dev/null 2>"$TMP/e"; rc=$?
[ $rc -eq 2 ] && grep -q "unit 7 is not defined" "$TMP/e" && pass "fault on unknown unit -> 2" ||
    fail "bad --dead: rc=$rc $(cat "$TMP/e")"
"$SIM" --tcp 127.0.0.1:0 --slow 1:fast >/dev/null 2>"$TMP/e"; rc=$?
[ $rc -eq 2 ] && pass "bad duration -> 2" || fail "bad --slow: rc=$rc $(cat "$TMP/e")"

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all passed"
