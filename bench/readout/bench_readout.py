#!/usr/bin/python3
"""bench_readout: round-trip latency through a private Prosody, one run:

  ping       XEP-0199 ping of the gateway's full JID (answered by fieldgate)
  ping srv   XEP-0199 ping of the server itself
  readout 1  XEP-0323 readout of one node (5 points), served from the store
  readout 100  one readout of 100 nodes (2 points each), from the store
  control    XEP-0325 set of one holding register (bus write + answer)

Round trip = from sending the request to the client's last callback (done
for readouts, setResponse for control).  Clients are slixmpp 1.8.3 (its
xep_0323/xep_0325 plugins), the gateway is `fieldgate run` from
FG_BUILD_DIR, the devices fieldgate-sim.  Values are served from the store:
the poll interval is 60 s, so every readout finds fresh values.

    FG_BUILD_DIR=build-rel /usr/bin/python3 bench/readout/bench_readout.py \
        [--n 200] [--n100 50] [--json]
"""
import argparse
import asyncio
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("FG_SOURCE_DIR", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
from iot_common import IotEnv, readout, control  # noqa: E402

EXTRA = 100  # units u4..u103 on the simulator's units 4..103


def extra_units():
    lines = []
    for i in range(EXTRA):
        uid = 4 + i
        lines.append("      - name: u%d\n        id: %d\n        points:\n"
                     "          - {name: a, table: holding, address: 0, "
                     "type: uint16}\n"
                     "          - {name: b, table: input, address: 1, "
                     "type: uint16}" % (uid, uid))
    return "\n".join(lines)


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="iterations (ping, "
                    "readout 1, control)")
    ap.add_argument("--n100", type=int, default=50, help="readouts of 100 "
                    "nodes")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--prosody-nagle", action="store_true",
                    help="leave Prosody's Nagle setting at its default (on)")
    a = ap.parse_args()
    nodes100 = ["u%d" % (4 + i) for i in range(EXTRA)]
    results = {}
    with IotEnv(extra_units=extra_units(), sim_units="1-%d" % (3 + EXTRA),
                interval="60s",
                prosody_global="" if a.prosody_nagle else
                "network_settings = { nagle = false }") as env:
        gw = env.gw_jid

        async def bench(c):
            async def timed(name, n, fn):
                xs = []
                for _ in range(3):  # warm-up
                    await fn()
                for _ in range(n):
                    t0 = time.perf_counter()
                    await fn()
                    xs.append((time.perf_counter() - t0) * 1000.0)
                results[name] = xs

            async def ping_gw():
                await c["xep_0199"].ping(jid=gw, timeout=5)

            async def ping_srv():
                await c["xep_0199"].ping(jid=env.srv.domain, timeout=5)

            async def ro1():
                ev, d, _ = await readout(c, gw, nodes=["m1"],
                                         flags={"momentary": "true"})
                assert ev[-1] == "done" and len(d["m1"]) == 5, (ev, d)

            async def ro100():
                ev, d, _ = await readout(c, gw, nodes=nodes100,
                                         flags={"momentary": "true"})
                assert ev[-1] == "done" and len(d) == EXTRA + 1, ev

            k = [0]

            async def ctl():
                k[0] += 1
                r = await control(c, gw, [("hr0", "int", str(k[0] % 60000))],
                                  ["m1"])
                assert r[0] == "OK", r

            await timed("ping (gateway)", a.n, ping_gw)
            await timed("ping (server)", a.n, ping_srv)
            await timed("readout 1 node", a.n, ro1)
            await timed("readout 100 nodes", a.n100, ro100)
            await timed("control (1 write)", a.n, ctl)

        env.run(bench, "ops", timeout=600)
    rows = []
    for name, xs in results.items():
        rows.append({"op": name, "n": len(xs),
                     "p50_ms": round(statistics.median(xs), 3),
                     "p99_ms": round(pct(xs, 99), 3),
                     "mean_ms": round(statistics.fmean(xs), 3)})
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print("%-20s %6s %10s %10s %10s" % ("round trip", "n", "p50 ms", "p99 ms",
                                        "mean ms"))
    for r in rows:
        print("%-20s %6d %10.3f %10.3f %10.3f" % (r["op"], r["n"], r["p50_ms"],
                                                  r["p99_ms"], r["mean_ms"]))


if __name__ == "__main__":
    main()
