#!/usr/bin/env bash
# fieldgate-sim rejects bad unit files and flags: exit status 2, no READY
# line, and a message that names the place (FILE:LINE:COL or the flag).
set -uo pipefail

BUILD=${FG_BUILD_DIR:-$(dirname "$0")/../../build}
SIM=$BUILD/fieldgate-sim
[ -x "$SIM" ] || { echo "FAIL: $SIM not built"; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
n=0

# bad_file NAME EXPECTED-STDERR-SUBSTRING <<YAML
bad_file() {
    n=$((n + 1))
    local f="$TMP/u$n.yaml"
    cat >"$f"
    # --tcp 127.0.0.1:0 so that a wrongly accepted file does not block.
    timeout 10 "$SIM" --tcp 127.0.0.1:0 --file "$f" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    local want="${2//FILE/$f}"
    if [ $rc -eq 2 ] && grep -qF -- "$want" "$TMP/err" && ! grep -q READY "$TMP/out"; then
        echo "ok: $1"
    else
        echo "FAIL: $1: rc=$rc, wanted '$want', got: $(cat "$TMP/err")"
        failures=$((failures + 1))
    fi
}

bad_args() { # NAME EXPECTED args...
    local name=$1 want=$2
    shift 2
    timeout 10 "$SIM" "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq 2 ] && grep -qF -- "$want" "$TMP/err" && ! grep -q READY "$TMP/out"; then
        echo "ok: $name"
    else
        echo "FAIL: $name: rc=$rc, wanted '$want', got: $(cat "$TMP/err")"
        failures=$((failures + 1))
    fi
}

bad_file "unknown unit key" "FILE:3:5: unit: unknown key 'colour'" <<'Y'
units:
  - id: 1
    colour: red
Y
bad_file "unknown top-level key" "FILE:1:1: unknown key 'devices'" <<'Y'
devices: []
Y
bad_file "missing id" "FILE:2:5: unit: id (or ids) is required" <<'Y'
units:
  - defaults: true
Y
bad_file "unit defined twice" "FILE:3:10: unit 2 is defined twice" <<'Y'
units:
  - {ids: 1-3, defaults: true}
  - {id: 2}
Y
bad_file "unit id out of range" "FILE:2:9: ids: expected unit ids 1..255" <<'Y'
units:
  - id: 256
Y
bad_file "bad byte order" "FILE:4:44: order: not a byte order for this type" <<'Y'
units:
  - id: 1
    holding:
      - {address: 0, type: float32, order: ABCA, value: 1}
Y
bad_file "int16 out of range" "FILE:4:42: value: 40000 does not fit the type" <<'Y'
units:
  - id: 1
    holding:
      - {address: 0, type: int16, value: 40000}
Y
bad_file "bcd16 out of range" "value: 10000 does not fit the type" <<'Y'
units:
  - id: 1
    input:
      - {address: 0, type: bcd16, value: 10000}
Y
bad_file "string too long" "value: longer than 4 characters" <<'Y'
units:
  - id: 1
    holding:
      - {address: 0, type: string, length: 2, value: "HELLO"}
Y
bad_file "bool in a register table" "type: holding holds no bool values" <<'Y'
units:
  - id: 1
    holding:
      - {address: 0, type: bool, value: true}
Y
bad_file "not a bit" "value: '2' is not a bit" <<'Y'
units:
  - id: 1
    coils:
      - {address: 0, value: 2}
Y
bad_file "values past 65535" "holding: values run past address 65535" <<'Y'
units:
  - id: 1
    holding:
      - {address: 65535, type: float32, value: 1}
Y
bad_file "wave without period" "wave: needs kind and period" <<'Y'
units:
  - id: 1
    holding:
      - {address: 0, wave: {kind: sine}}
Y
bad_file "unknown wave kind" "wave.kind: expected sine, ramp, counter or random" <<'Y'
units:
  - id: 1
    holding:
      - {address: 0, wave: {kind: square, period: 1s}}
Y
bad_file "value and values" "holding: give exactly one of value and values" <<'Y'
units:
  - id: 1
    holding:
      - {address: 0, value: 1, values: [2]}
Y
bad_file "bad slow duration" "FILE:3:11: slow: expected a duration" <<'Y'
units:
  - id: 1
    slow: soon
Y
bad_file "max_registers 0" "max_registers: must be 1..125" <<'Y'
units:
  - id: 1
    max_registers: 0
Y
bad_file "bad exception02 range" "exception02: expected addresses or ranges" <<'Y'
units:
  - id: 1
    exception02: [109-100]
Y
bad_file "YAML syntax error" "FILE:3:" <<'Y'
units:
  - id: 1
   holding: [
Y
bad_args "missing file" "cannot open" --file "$TMP/nope.yaml"
bad_args "table flag before --unit" "--holding: give --unit ID first" --holding 0=1
bad_args "bad register value" "--unit 1: 0=70000" --unit 1 --holding 0=70000
bad_args "bad coil value" "--unit 1: 0=2" --unit 1 --coils 0=2
bad_args "bad --tcp" "--tcp 127.0.0.1:99999" --tcp 127.0.0.1:99999
bad_args "bad --rtu parity" "--rtu /dev/null:9600:X" --rtu /dev/null:9600:X
bad_args "bad --units" "--units 0-3" --units 0-3
bad_args "bad --max-regs" "--max-regs 1:126" --units 1 --max-regs 1:126
bad_args "illegal on unknown unit" "unit 5 is not defined" --units 1 --illegal 5:1-2
bad_args "stray argument" "unexpected argument: extra" --units 1 extra

# Setup failures exit 1: a port that is taken.
"$SIM" --tcp 127.0.0.1:0 --units 1 >"$TMP/out" 2>"$TMP/err" &
PID=$!
for _ in $(seq 1 200); do
    grep -q '^READY ' "$TMP/out" && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
done
PORT=$(sed -n 's/^READY .*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/out")
timeout 10 "$SIM" --tcp "127.0.0.1:$PORT" --units 1 >"$TMP/out2" 2>"$TMP/err2"
rc=$?
kill -TERM "$PID"
wait "$PID"
if [ -n "$PORT" ] && [ $rc -eq 1 ] && grep -q "address already in use" "$TMP/err2"; then
    echo "ok: port in use -> exit 1"
else
    echo "FAIL: port in use: rc=$rc $(cat "$TMP/err2")"
    failures=$((failures + 1))
fi

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all passed"
