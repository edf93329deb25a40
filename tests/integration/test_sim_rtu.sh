#!/usr/bin/env bash
# fieldgate-sim over Modbus RTU on a socat pty pair, checked with mbpoll
# (-m rtu -b 19200 -P even): default contents, a write read back, exception
# 02, a unit id nobody answers, a slow unit, a dead unit, clean exit.
set -uo pipefail

BUILD=${FG_BUILD_DIR:-$(dirname "$0")/../../build}
SIM=$BUILD/fieldgate-sim
[ -x "$SIM" ] || { echo "FAIL: $SIM not built"; exit 1; }
for tool in mbpoll socat; do
    if ! command -v $tool >/dev/null; then
        apt-get install -y $tool >/dev/null 2>&1 || { echo "SKIP: no $tool"; exit 77; }
    fi
done

TMP=$(mktemp -d)
PID=
SOCAT=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    [ -n "$SOCAT" ] && kill "$SOCAT" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
expect() { # name expected actual
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

socat -d -d "pty,raw,echo=0,link=$TMP/sim" "pty,raw,echo=0,link=$TMP/master" \
    2>"$TMP/socat.log" &
SOCAT=$!
for _ in $(seq 1 200); do
    [ -e "$TMP/sim" ] && [ -e "$TMP/master" ] && break
    kill -0 "$SOCAT" 2>/dev/null || break
    sleep 0.05
done
[ -e "$TMP/sim" ] && [ -e "$TMP/master" ] || { echo "SKIP: socat made no pty pair"; exit 77; }

"$SIM" --rtu "$TMP/sim:19200:even:8:1" --units 1-3 --dead 2 --slow 3:300ms \
    --illegal 1:100-109 --stats --verbose >"$TMP/out" 2>"$TMP/err" &
PID=$!
for _ in $(seq 1 200); do
    grep -q '^READY ' "$TMP/out" && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
done
grep -q "^READY rtu=$TMP/sim units=3" "$TMP/out" ||
    { echo "FAIL: no READY line"; cat "$TMP/out" "$TMP/err"; exit 1; }
cat "$TMP/out"

poll() {
    mbpoll -m rtu -b 19200 -P even -d 8 -s 1 -1 -o 1 "$@" "$TMP/master" 2>"$TMP/mb.err" |
        sed -n 's/^\[[0-9]*\]:[[:space:]]*\(-\{0,1\}[0-9]*\).*/\1/p' | tr '\n' ' ' |
        sed 's/ $//'
    return "${PIPESTATUS[0]}"
}

expect "unit 1 holding 0..4" "1000 1001 1002 1003 1004" "$(poll -a 1 -t 4 -r 1 -c 5)"
expect "unit 1 input 10..11" "1010 1011" "$(poll -a 1 -t 3 -r 11 -c 2)"
expect "unit 1 coils 0..3" "1 0 1 0" "$(poll -a 1 -t 0 -r 1 -c 4)"
mbpoll -m rtu -b 19200 -P even -a 1 -t 4 -r 4 "$TMP/master" 4321 >/dev/null 2>&1 ||
    fail "FC06 write"
mbpoll -m rtu -b 19200 -P even -a 1 -t 4 -r 6 "$TMP/master" 7 8 >/dev/null 2>&1 ||
    fail "FC16 write"
expect "read back writes" "1002 4321 1004 7 8 1007" "$(poll -a 1 -t 4 -r 3 -c 6)"

out=$(poll -a 1 -t 4 -r 101 -c 1); rc=$?
[ $rc -ne 0 ] && grep -q "Illegal data address" "$TMP/mb.err" &&
    pass "exception 02 over RTU" || fail "exception 02: rc=$rc out='$out' $(cat "$TMP/mb.err")"

# Slow unit 3 answers (after 300 ms, inside mbpoll's 1 s timeout).
expect "slow unit 3" "3000 3001" "$(poll -a 3 -t 4 -r 1 -c 2)"

# Dead unit 2 and absent unit 9: silence on the bus, mbpoll times out.
for a in 2 9; do
    out=$(poll -a $a -t 4 -r 1 -c 1); rc=$?
    [ $rc -ne 0 ] && grep -qi "timed out" "$TMP/mb.err" &&
        pass "unit $a silent" || fail "unit $a: rc=$rc out='$out' $(cat "$TMP/mb.err")"
done

# The bus still works after the timeouts.
expect "unit 1 after timeouts" "1000" "$(poll -a 1 -t 4 -r 1 -c 1)"

# Inter-frame silence, with raw frames: a frame written in two parts back to
# back is one frame and is answered; a long pause (300 ms >> t3.5 = 4 ms)
# splits it into two fragments that are ignored (too short, bad CRC); two
# frames with no silence between them are one bad frame, also ignored.
/usr/bin/python3 - "$TMP/master" <<'PY'
import os, select, sys, termios, time, tty

def crc16(b):
    crc = 0xFFFF
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes([crc & 0xFF, crc >> 8])

fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
req = bytes([1, 3, 0, 9, 0, 1])
req += crc16(req)
want = bytes([1, 3, 2, 1009 >> 8, 1009 & 0xFF])
want += crc16(want)

def answer(timeout):
    got = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], max(0, end - time.monotonic()))
        if not r:
            break
        got += os.read(fd, 256)
        if len(got) >= len(want):
            break
    return got

fails = 0
def check(name, ok, detail=""):
    global fails
    print(("ok: " if ok else "FAIL: ") + name, "" if ok else detail)
    fails += 0 if ok else 1

os.write(fd, req)
check("raw RTU request answered", answer(1.0) == want)
os.write(fd, req[:3]); os.write(fd, req[3:])
check("frame written in two parts is one frame", answer(1.0) == want)
os.write(fd, req[:3]); time.sleep(0.3); os.write(fd, req[3:])
got = answer(0.3)
check("frame with a 300 ms gap is ignored", got == b"", got)
os.write(fd, req + req)
got = answer(0.3)
check("two frames without silence are ignored", got == b"", got)
os.write(fd, req)
check("answered again after silence", answer(1.0) == want)
os.close(fd)
sys.exit(1 if fails else 0)
PY
[ $? -eq 0 ] || fail "inter-frame silence"

kill -TERM "$PID"
wait "$PID"; rc=$?
PID=
[ $rc -eq 0 ] && pass "SIGTERM -> exit 0" || { fail "exit status $rc"; cat "$TMP/err"; }
stats=$(grep '^STATS ' "$TMP/out")
echo "$stats"
echo "$stats" | grep -q ' unit2=1/0' && pass "dead unit counted" || fail "stats: $stats"
grep -q "(3 bad frames)" "$TMP/err" && pass "3 bad frames counted" ||
    fail "bad frames: $(grep 'bad frames' "$TMP/err")"

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all passed"
