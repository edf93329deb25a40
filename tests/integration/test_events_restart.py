#!/usr/bin/python3
"""Integration: Prosody restarted while values change.

The map's node configuration is the default access model (on a service:
whitelist, so the access: reader `viewer` must have been made a member to
subscribe) with max_items 50 and persist_items true, so that a subscriber
can fetch what was published while it was not subscribed (Prosody 0.12
answers item retrieval on non-persistent nodes with
feature-not-implemented); only values read after the restart count.  Counter waves change m1.ctr and m2.ctr;
m1.s, m2.s and m3.hr never change.

1. viewer subscribes to the three nodes (whitelist: as a member) and sees
   events.
2. Prosody stops; node m2 is dropped from its storage (as if the server had
   lost it); 1.5 s later Prosody starts again on the same ports and data.
3. After the gateway's re-login: node m2 exists again with the map's
   configuration (nodes re-checked after login); viewer (reconnected,
   re-subscribed to m2) sees, from notifications and the items published
   since the restart, the latest value of EVERY point, the unchanging
   ones included (a full snapshot after login), counters beyond their
   pre-restart values.
4. The counters are frozen by writes (pymodbus); the subscriber's latest
   value of every point equals the simulator's.
Exit 77 when Prosody or pymodbus is unavailable."""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from events_common import (EventsEnv, Checks, Collector, log,  # noqa: E402
                           subscribe_all, wait_nodes, get_items,
                           parse_fields, write_registers)

check = Checks()
PREFIX = "fgt/rst/"
UNITS = ["m1", "m2", "m3"]

SIM = """\
units:
  - id: 1
    holding:
      - {address: 0, type: uint16, value: 0,
         wave: {kind: counter, period: 300ms, min: 0, max: 60000}}
      - {address: 1, value: 11}
  - id: 2
    holding:
      - {address: 0, type: uint16, value: 100,
         wave: {kind: counter, period: 400ms, min: 100, max: 60000}}
      - {address: 1, value: 22}
  - id: 3
    holding:
      - {address: 0, value: 33}
"""

MAP_UNITS = """\
      - name: m1
        id: 1
        points:
          - {name: ctr, table: holding, address: 0, type: uint16}
          - {name: s, table: holding, address: 1, type: uint16}
      - name: m2
        id: 2
        points:
          - {name: ctr, table: holding, address: 0, type: uint16}
          - {name: s, table: holding, address: 1, type: uint16}
      - name: m3
        id: 3
        points:
          - {name: hr, table: holding, address: 0, type: uint16}
"""

EVENTS = """\
events:
  service: {service}
  node_prefix: fgt/rst/
  node: {{max_items: 50, persist_items: true}}
"""


class View:
    """The latest value of every point: per (node, point) the field with
    the newest timestamp, from notifications and fetched items; only fields
    read at or after `since` (the restart) count."""

    def __init__(self, since=0.0):
        self.latest = {}
        self.since = since

    def add(self, node, fields):
        for nid, pts in fields.items():
            for name, f in pts.items():
                if f["ts"] is None or f["ts"] < self.since:
                    continue
                key = (node, name)
                old = self.latest.get(key)
                if old is None or (f["ts"] or 0) >= (old["ts"] or 0):
                    self.latest[key] = f

    def value(self, node, name):
        f = self.latest.get((node, name))
        return f and f["value"]


def main():
    nodes = [PREFIX + u for u in UNITS]
    with EventsEnv(SIM, MAP_UNITS, EVENTS) as env:
        env.wait_gw_online()
        res = {}

        async def before(viewer):
            col = Collector(viewer)
            res["subs1"] = await subscribe_all(viewer, env.service, nodes, 15)
            t0 = time.time()
            await col.wait(lambda c: len(c.values(nodes[0], "ctr", t0)) >= 2
                           and len(c.values(nodes[1], "ctr", t0)) >= 2, 10)
            res["before"] = {n: [int(v) for v in col.values(n, "ctr")]
                             for n in nodes[:2]}
        env.run(before, "viewer")
        check("viewer (access: reader) subscribed to every node of the "
              "whitelist model", all(v == "subscribed"
                                     for v in res["subs1"].values()),
              res["subs1"])
        check("events before the restart", all(
            len(v) >= 2 for v in res["before"].values()), res["before"])

        t_stop = time.time()
        env.srv.stop()
        dropped = env.srv.drop_pubsub_node(nodes[1])
        log("prosody stopped; node", nodes[1], "dropped:", dropped)
        time.sleep(1.5)
        t_restart = time.time()
        env.srv.start()
        log("prosody started again")

        async def after(admin, viewer):
            view = View(t_stop)
            col = Collector(viewer)
            # m2's subscription went with the node: subscribe again once the
            # gateway has created it (m1, m3 subscriptions were kept).
            ok, last = await wait_nodes(admin, env.service, [nodes[1]], 20)
            res["m2_recreated"], res["m2_config"] = ok[nodes[1]], last[nodes[1]]
            res["subs2"] = await subscribe_all(viewer, env.service, [nodes[1]], 10)
            await asyncio.sleep(2.0)  # the snapshot and a few changes
            for n in nodes:
                items, err = await get_items(viewer, env.service, n)
                res.setdefault("items", {})[n] = (len(items or []), err)
                for _, payload in items or []:
                    if payload is not None:
                        view.add(n, parse_fields(payload))
            for e in col.events:
                view.add(e.node, e.fields)
            res["after"] = {(n, p): view.value(n, p) for n in nodes
                            for p in ("ctr", "s", "hr")}
            # Freeze the counters; every point's latest value must follow.
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, write_registers, env.sim.port,
                                       [(1, 0, 5000), (2, 0, 6000)])
            want = {(nodes[0], "ctr"): "5000", (nodes[1], "ctr"): "6000",
                    (nodes[0], "s"): "11", (nodes[1], "s"): "22",
                    (nodes[2], "hr"): "33"}

            def settled(c):
                v = View(t_stop)
                v.latest = dict(view.latest)
                for e in c.events:
                    v.add(e.node, e.fields)
                res["final"] = {k: v.value(*k) for k in want}
                return res["final"] == want
            res["settled"] = await col.wait(settled, 10)
            res["want"] = want
            res["n_after"] = len(col.events)
        env.run_many(["admin", "viewer"], after, timeout=60)

        log("after restart:", res["after"], "items:", res["items"])
        check("node m2, lost by the server, re-created after the gateway's "
              "login with the map's configuration (max_items 50)",
              res["m2_recreated"] and res["m2_config"]
              and str(res["m2_config"].get("pubsub#max_items")) == "50"
              and res["m2_config"].get("pubsub#access_model") == "whitelist",
              res["m2_config"])
        check("viewer subscribed again to m2 (still a member)",
              res["subs2"].get(nodes[1]) == "subscribed", res["subs2"])
        a = res["after"]
        check("after the restart the subscriber has every point, the "
              "unchanging ones included (snapshot): m1.s 11, m2.s 22, m3.hr 33",
              a[(nodes[0], "s")] == "11" and a[(nodes[1], "s")] == "22"
              and a[(nodes[2], "hr")] == "33", a)
        for i, n in enumerate(nodes[:2]):
            prev = max(res["before"][n] or [0])
            cur = a[(n, "ctr")]
            check("%s.ctr published again, beyond its pre-restart value %d"
                  % (UNITS[i], prev), cur is not None and int(cur) > prev, cur)
        check("after freezing the counters, the subscriber's latest value of "
              "every point equals the simulator's", res["settled"],
              (res.get("final"), res["want"]))
        check("no sanitizer report", "Sanitizer" not in env.gw_log())
        log("restart at %.3f; %d notifications after" % (t_restart, res["n_after"]))
    check("fieldgate exit 0 on SIGTERM", env.gw_rc == 0, env.gw_rc)
    check.exit()


if __name__ == "__main__":
    main()
