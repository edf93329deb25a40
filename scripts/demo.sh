#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: install what is missing, build
# fieldgate, start a private Prosody (loopback, its own CA) and the Modbus
# simulator, run fieldgate against both, then read every device, send a
# control command and follow value changes as PubSub events from a real XMPP
# client (slixmpp), and show the result.
#
#   scripts/demo.sh           run the demo, then stop everything it started
#   scripts/demo.sh --keep    leave it running (then: scripts/demo.sh --stop)
#   scripts/demo.sh --stop    stop a demo left running by --keep
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
DEMO=${FG_DEMO_DIR:-/tmp/fieldgate-demo}
BUILD=${BUILD_DIR:-build-demo}
PY=/usr/bin/python3

stop_all() {
  for f in "$DEMO"/fieldgate.pid "$DEMO"/sim.pid; do
    if [ -f "$f" ]; then
      pid=$(cat "$f")
      kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      rm -f "$f"
    fi
  done
  if [ -f "$DEMO/prosody/prosody.pid" ]; then
    $PY tests/fixtures/prosody.py stop --dir "$DEMO/prosody" >/dev/null || true
  fi
}

case "${1:-}" in
  --stop) stop_all; echo "demo stopped"; exit 0 ;;
  --keep|"") ;;
  *) echo "usage: scripts/demo.sh [--keep|--stop]" >&2; exit 2 ;;
esac
KEEP=${1:-}

scripts/deps.sh
echo "== building fieldgate ($BUILD)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFG_TESTS=OFF -DFG_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fieldgate fieldgate-sim >/dev/null

stop_all
rm -rf "$DEMO"
mkdir -p "$DEMO"
if [ -z "$KEEP" ]; then trap stop_all EXIT; fi

echo "== starting the Modbus simulator (3 devices on 127.0.0.1)"
"$BUILD/fieldgate-sim" --tcp 127.0.0.1:0 --file scripts/demo/plant-sim.yaml \
  >"$DEMO/sim.out" 2>"$DEMO/sim.log" &
echo $! >"$DEMO/sim.pid"
for _ in $(seq 100); do grep -q READY "$DEMO/sim.out" && break; sleep 0.05; done
SIM_PORT=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DEMO/sim.out")
[ -n "$SIM_PORT" ] || { echo "simulator did not start" >&2; cat "$DEMO/sim.log" >&2; exit 1; }

echo "== starting a private Prosody (loopback only, its own CA)"
for u in gateway operator visitor; do
  head -c 12 /dev/urandom | base64 | tr -d '/+=' >"$DEMO/$u.password"
  chmod 600 "$DEMO/$u.password"
done
$PY tests/fixtures/prosody.py start --dir "$DEMO/prosody" \
  --user "gateway:$(cat "$DEMO/gateway.password")" \
  --user "operator:$(cat "$DEMO/operator.password")" \
  --user "visitor:$(cat "$DEMO/visitor.password")" \
  --pubsub-admin "gateway@fieldgate.test" >/dev/null
# shellcheck disable=SC1091
. "$DEMO/prosody/env.sh"

sed -e "s|@SIM_PORT@|$SIM_PORT|" -e "s|@XMPP_DOMAIN@|$FG_XMPP_DOMAIN|g" \
    -e "s|@XMPP_PORT@|$FG_XMPP_PORT|" -e "s|@XMPP_CA@|$FG_XMPP_CA|" \
    -e "s|@DEMO@|$DEMO|" scripts/demo/plant.yaml.in >"$DEMO/plant.yaml"

echo "== fieldgate check"
"$BUILD/fieldgate" check -c "$DEMO/plant.yaml"
echo "== fieldgate plan"
"$BUILD/fieldgate" plan -c "$DEMO/plant.yaml"

echo "== starting fieldgate run"
"$BUILD/fieldgate" run -c "$DEMO/plant.yaml" >"$DEMO/fieldgate.log" 2>&1 &
echo $! >"$DEMO/fieldgate.pid"
for _ in $(seq 200); do grep -q "online as" "$DEMO/fieldgate.log" && break; sleep 0.05; done
grep -q "online as" "$DEMO/fieldgate.log" || { echo "fieldgate did not log in:" >&2; cat "$DEMO/fieldgate.log" >&2; exit 1; }
sed -n 's/^.*\(online as .*\)$/   \1/p' "$DEMO/fieldgate.log" | head -1

echo "== fieldgate read (commissioning view, straight from the devices)"
"$BUILD/fieldgate" read -c "$DEMO/plant.yaml"

$PY scripts/demo/client.py "$DEMO" "gateway@$FG_XMPP_DOMAIN/plant" 42.5

echo
echo "== what fieldgate logged"
grep -E "notice|warn|error|write |events:" "$DEMO/fieldgate.log" | sed 's/^/   /' | tail -12
if [ -n "$KEEP" ]; then
  echo
  echo "The demo is still running (files in $DEMO)."
  echo "Stop it with: scripts/demo.sh --stop"
fi
