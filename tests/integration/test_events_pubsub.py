#!/usr/bin/python3
"""Integration: value changes published over XEP-0060 PubSub by `fieldgate
run` (map section `events:`), through a private Prosody's pubsub component,
received by an independent slixmpp subscriber (its xep_0060 plugin).

Devices are fieldgate-sim units; the test writes registers with pymodbus
at known times.  Node configuration is read back by `admin`, a pubsub admin
(owner of every node on the component).  Covers:
  - nodes created with the map's configuration; a node that existed with
    another configuration is reconfigured;
  - every write of m1.cnt arrives once, in order, with its value, the
    point's unit and a timestamp between the write and the notification;
    every step of a counter wave (m6) arrives, none twice; the payload is
    XEP-0323 <fields> that slixmpp's xep_0323 stanza classes read alike;
  - deadband absolute (m2.temp) and percent (m2.rh): changes inside the
    band are suppressed, the first outside passes;
  - heartbeat: m3.hb never changes and is published every max_interval;
  - min_interval: m4.fast changes every 50 ms, published about once a
    second with the newest value (not the next one);
  - quality: unit m5 goes dead (sim fault switch) -> an event with a
    missing/error flag; back -> an event with automaticReadout;
  - a point with events disabled (m1.quiet) never appears;
  - `fieldgate status --json` (the daemon runs with --status-file) shows
    the events published and every unit online.
Exit 77 when Prosody or pymodbus is unavailable."""
import asyncio
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from events_common import (EventsEnv, Checks, Collector, log,  # noqa: E402
                           wait_nodes, subscribe_all, create_node,
                           write_registers, parse_fields_slixmpp, cfg_bool,
                           BAD_FLAGS, BUILD)

check = Checks()
PREFIX = "fgt/plant/"
UNITS = ["m1", "m2", "m3", "m4", "m5", "m6"]

SIM = """\
units:
  - id: 1
    holding:
      - {address: 0, values: [100, 7, 9]}
  - id: 2
    holding:
      - {address: 0, values: [200, 1000]}
  - id: 3
    holding:
      - {address: 0, value: 33}
  - id: 4
    holding:
      - {address: 0, type: uint16, value: 0,
         wave: {kind: counter, period: 50ms, min: 0, max: 60000}}
  - id: 5
    dead: true
    holding:
      - {address: 0, value: 55}
  - id: 6
    holding:
      - {address: 0, type: uint16, value: 0,
         wave: {kind: counter, period: 400ms, min: 0, max: 60000}}
"""

MAP_UNITS = """\
      - name: m1
        id: 1
        points:
          - {name: cnt, table: holding, address: 0, type: uint16, unit: kWh}
          - {name: s, table: holding, address: 1, type: uint16}
          - {name: quiet, table: holding, address: 2, type: uint16,
             events: {enabled: false}}
      - name: m2
        id: 2
        points:
          - {name: temp, table: holding, address: 0, type: int16, scale: 0.1,
             decimals: 1, unit: C, events: {deadband: 1.0}}
          - {name: rh, table: holding, address: 1, type: uint16,
             events: {deadband: 10%}}
      - name: m3
        id: 3
        events: {max_interval: 1s}
        points:
          - {name: hb, table: holding, address: 0, type: uint16}
      - name: m4
        id: 4
        points:
          - {name: fast, table: holding, address: 0, type: uint16,
             events: {min_interval: 1s}}
      - name: m5
        id: 5
        retries: 0
        points:
          - {name: q, table: holding, address: 0, type: uint16}
      - name: m6
        id: 6
        points:
          - {name: ctr, table: holding, address: 0, type: uint16}
"""

EVENTS = """\
events:
  service: {service}
  node_prefix: fgt/plant/
  node:
    access_model: open
    max_items: 3
    persist_items: false
    notification_type: headline
    send_last_published_item: on_sub
  window: 8
  publish_timeout: 5s
"""

WANT_CONFIG = {"pubsub#access_model": "open", "pubsub#max_items": "3",
               "pubsub#persist_items": False,
               "pubsub#notification_type": "headline",
               "pubsub#send_last_published_item": "on_sub"}

# The pre-existing node m1: Prosody's defaults, and other values besides.
OTHER_CONFIG = {"pubsub#access_model": "whitelist", "pubsub#max_items": "10",
                "pubsub#persist_items": "1",
                "pubsub#notification_type": "normal",
                "pubsub#send_last_published_item": "never"}


def config_matches(cfg):
    bad = {}
    for k, want in WANT_CONFIG.items():
        got = cfg.get(k)
        if isinstance(want, bool):
            ok = cfg_bool(got) == want
        else:
            ok = str(got) == want
        if not ok:
            bad[k] = got
    return bad


class StatusEnv(EventsEnv):
    """EventsEnv whose daemon also writes its status snapshot."""

    def start_gw(self):
        self.status_file = os.path.join(self.dir, "status.json")
        self.gw_err = open(os.path.join(self.dir, "fieldgate.log"), "w")
        cmd = [os.path.join(BUILD, "fieldgate"), "run", "--log-level",
               self.gw_log_level, "-c", self.map,
               "--status-file", self.status_file]
        self.gw = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                   stderr=self.gw_err)


def status_check(env):
    """`fieldgate status` while the daemon runs: events published, the
    session online, every unit online (m5 is back); the snapshot is
    rewritten every 2 s."""
    fg = os.path.join(BUILD, "fieldgate")
    deadline = time.monotonic() + 8
    while True:
        r = subprocess.run([fg, "status", "--file", env.status_file,
                            "--json"], capture_output=True, text=True,
                           timeout=10)
        try:
            st = json.loads(r.stdout)
            units = {u["name"]: u for u in st["units"]}
            ev = st["events"]
            got = (r.returncode, st["xmpp"]["online"], ev["state"],
                   ev["published"], ev["errors"],
                   {n: (u["status"], u["events_published"])
                    for n, u in units.items()})
            ok = (r.returncode == 0 and st["state"] == "running"
                  and st["xmpp"]["online"] and ev["enabled"]
                  and ev["state"] == "running" and ev["published"] > 0
                  and set(units) == set(UNITS)
                  and all(u["status"] == "online" for u in units.values())
                  and units["m1"]["events_published"] > 0)
        except (ValueError, KeyError, TypeError) as e:
            got, ok = (r.returncode, r.stdout[:300], r.stderr[:300], e), False
        if ok or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    check("fieldgate status --json: events published, the session and "
          "every unit online", ok, got)
    r = subprocess.run([fg, "status", "--file", env.status_file],
                       capture_output=True, text=True, timeout=10)
    check("fieldgate status (table): exit 0, events running",
          r.returncode == 0 and "events: running on " + env.service
          in r.stdout, (r.returncode, r.stdout[-600:], r.stderr))


def main():
    with StatusEnv(SIM, MAP_UNITS, EVENTS, sim_args=["--tick", "25"],
                   start_gateway=False) as env:
        env.sim.faults(False)  # m5 answers until the quality phase
        service = env.service
        nodes = [PREFIX + u for u in UNITS]

        async def precreate(c):
            await create_node(c, service, PREFIX + "m1", OTHER_CONFIG)
        env.run(precreate, "admin")
        log("pre-created", PREFIX + "m1", "with", OTHER_CONFIG)
        env.start_gw()
        env.wait_gw_online()

        results = {}

        async def admin_side(c):
            ok, last = await wait_nodes(
                c, service, nodes, timeout=15,
                pred=lambda n, cfg: not config_matches(cfg))
            results["configs"], results["last"] = ok, last

        async def body(admin, viewer):
            await admin_side(admin)
            ok, last = results["configs"], results["last"]
            for n in nodes[1:]:
                check("node %s created with the map's configuration" % n,
                      ok[n], last[n] and config_matches(last[n]) or "missing")
            check("pre-existing node %s reconfigured to the map's "
                  "configuration" % nodes[0], ok[nodes[0]],
                  last[nodes[0]] and config_matches(last[nodes[0]]))
            col = Collector(viewer)
            subs = await subscribe_all(viewer, service, nodes)
            check("viewer subscribed to every node",
                  all(v == "subscribed" for v in subs.values()), subs)
            await asyncio.sleep(0.5)  # the on_sub last items, the snapshot

            # Phase A: writes at known times, the waves run meanwhile.
            t0 = time.time()
            writes = []  # (time, value) of m1.cnt
            temps = [205, 209, 212, 215, 190, 195]        # 0.1 C; from 200
            rhs = [1050, 1080, 1150, 1200, 1000, 1010]    # from 1000, 10 %
            loop = asyncio.get_running_loop()
            for i in range(8):
                w = [(1, 0, 101 + i)]
                if i < len(temps):
                    w += [(2, 0, temps[i]), (2, 1, rhs[i])]
                tw0 = time.time()
                await loop.run_in_executor(None, write_registers,
                                           env.sim.port, w)
                writes.append((tw0, 101 + i))
                await asyncio.sleep(0.4)
            await col.wait(lambda c: "108" in c.values(nodes[0], "cnt", t0), 5)
            t1 = time.time()

            # Phase B: quality.
            tq = time.time()
            await loop.run_in_executor(None, env.sim.faults, True)
            bad = await col.wait(lambda c: any(
                "q" in e.points() and e.points()["q"]["flags"] & set(BAD_FLAGS)
                for e in c.of(nodes[4], tq)) or any(
                e.points() and not any("automaticReadout" in f["flags"]
                                       for f in e.points().values())
                for e in c.of(nodes[4], tq)), 10)
            th = time.time()
            await loop.run_in_executor(None, env.sim.faults, False)
            good = await col.wait(lambda c: any(
                "q" in e.points()
                and "automaticReadout" in e.points()["q"]["flags"]
                for e in c.of(nodes[4], th)), 15)
            results.update(col=col, t0=t0, t1=t1, tq=tq, th=th,
                           writes=writes, bad=bad, good=good)

        env.run_many(["admin", "viewer"], body, timeout=80)
        col, t0, t1 = results["col"], results["t0"], results["t1"]
        for e in col.events[:3] + col.events[-3:]:
            log("  event", e)
        log("events received:", len(col.events))

        # ---- payload
        perr = [e for e in col.events if e.parse_error]
        check("every payload is <fields xmlns='urn:xmpp:iot:sensordata'>",
              not perr and col.events, perr[:3])
        same = True
        for e in col.events[:50]:
            if e.payload is None:
                continue
            sl = parse_fields_slixmpp(e.payload)
            mine = {n: {k: (v["type"], v["value"], v["unit"] or None, v["flags"])
                        for k, v in f.items()} for n, f in e.fields.items()}
            if sl != mine:
                same = False
                log("slixmpp reads", sl, "ET reads", mine)
                break
        check("slixmpp's xep_0323 stanza classes read the payload alike", same)
        check("a notification's nodeId is the unit",
              all(set(e.fields) <= {e.node[len(PREFIX):]} for e in col.events
                  if e.node.startswith(PREFIX)),
              [(e.node, list(e.fields)) for e in col.events[:5]])

        # ---- every change of m1.cnt, in order, value, unit, timestamp
        ev1 = [e for e in col.of(nodes[0], t0) if "cnt" in e.points()]
        vals = [e.points()["cnt"]["value"] for e in ev1]
        check("m1.cnt: every write arrives once, in order",
              vals == [str(101 + i) for i in range(8)], vals)
        check("m1.cnt: unit kWh, numeric, automaticReadout",
              ev1 and all(e.points()["cnt"]["unit"] == "kWh"
                          and e.points()["cnt"]["type"] == "numeric"
                          and "automaticReadout" in e.points()["cnt"]["flags"]
                          for e in ev1), ev1[:2])
        ts_ok, detail = bool(ev1), []
        for (tw, v), e in zip(results["writes"], ev1):
            f = e.points()["cnt"]
            # the read that saw the write is after it (ms resolution) and
            # before the notification
            if not (f["ts"] is not None and tw - 0.002 <= f["ts"] <= e.recv + 0.002):
                ts_ok = False
                detail.append((v, tw, f["tstext"], e.recv))
        check("m1.cnt: timestamp between the write and the notification",
              ts_ok, detail[:3])
        check("m1.quiet (events disabled) never published",
              not any("quiet" in e.points() for e in col.of(nodes[0])))
        check("m1.s unchanged: not in the change events",
              not any("s" in e.points() for e in ev1[1:]),
              [e for e in ev1 if "s" in e.points()][:2])

        # ---- counter wave: every step
        ctr = [int(v) for v in col.values(nodes[5], "ctr", t0)]
        steps = [b - a for a, b in zip(ctr, ctr[1:])]
        check("m6.ctr (counter wave): every step arrives, none twice",
              len(ctr) >= 5 and all(s == 1 for s in steps), ctr)

        # ---- deadbands
        temp = col.values(nodes[1], "temp", t0)
        check("m2.temp deadband 1.0: 20.5, 20.9 suppressed, 21.2 passes, "
              "21.5 suppressed, 19.0 passes, 19.5 suppressed",
              temp == ["21.2", "19.0"], temp)
        rh = col.values(nodes[1], "rh", t0)
        check("m2.rh deadband 10%: 1050, 1080 suppressed, 1150 passes, "
              "1200 suppressed (of 1150), 1000 passes, 1010 suppressed",
              rh == ["1150", "1000"], rh)

        # ---- heartbeat
        hb = col.of(nodes[2], t0)
        hb = [e for e in hb if e.recv <= t1]
        span = t1 - t0
        hv = [e.points().get("hb", {}).get("value") for e in hb]
        check("m3.hb heartbeat (max_interval 1s, no change): %d in %.1f s, "
              "value 33" % (len(hb), span),
              int(span) - 1 <= len(hb) <= int(span) + 2
              and all(v == "33" for v in hv), hv)

        # ---- min_interval
        fast = [e for e in col.of(nodes[3], t0) if e.recv <= t1]
        fv = [int(e.points()["fast"]["value"]) for e in fast
              if "fast" in e.points()]
        gaps = [b - a for a, b in zip(fv, fv[1:])]
        check("m4.fast min_interval 1s caps the rate: %d events in %.1f s "
              "of changes every 50 ms" % (len(fv), span),
              int(span) - 2 <= len(fv) <= int(span) + 2, fv)
        check("m4.fast min_interval: the newest value wins (steps ~20)",
              gaps and sum(gaps) / len(gaps) >= 8, gaps)

        # ---- quality
        q = [e for e in col.of(nodes[4], results["tq"])]
        log("m5 events after the fault:", q)
        check("m5 dead: a quality event (missing/error, not "
              "automaticReadout)", results["bad"])
        check("m5 back: an event with automaticReadout, value 55",
              results["good"] and any(
                  e.points().get("q", {}).get("value") == "55"
                  for e in col.of(nodes[4], results["th"])))
        status_check(env)
        log_text = env.gw_log()
        check("no sanitizer report", "Sanitizer" not in log_text)
    check("fieldgate exit 0 on SIGTERM", env.gw_rc == 0, env.gw_rc)
    check.exit()


if __name__ == "__main__":
    main()
