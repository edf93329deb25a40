#!/usr/bin/python3
"""Integration: the gateway's account has no publisher rights on the pubsub
component (Prosody lets only admins create and publish there), then gets
them.

1. Prosody's pubsub admins are `admin` only; `fieldgate run` with an
   events: section on pubsub.<domain>, a counter wave changing m1.ctr
   every 300 ms.  The gateway logs ONE clear error naming the service and
   the cure ("publisher rights"), not one per change; it keeps polling
   and answering XEP-0323 readouts; the gateway node shows the problem in
   its status fields; no node exists on the service.
2. The operator grants the rights the real way: Prosody restarted with the
   gateway in the component's admins (same data dir and ports); the
   gateway logs in again; the map is reloaded (SIGHUP).  Then the nodes
   exist and a subscriber receives events with increasing values.
Exit 77 when Prosody is unavailable."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from events_common import (EventsEnv, Checks, Collector, log,  # noqa: E402
                           readout, subscribe_all, node_exists, wait_nodes)

check = Checks()
PREFIX = "fgt/rights/"

SIM = """\
units:
  - id: 1
    holding:
      - {address: 0, type: uint16, value: 0,
         wave: {kind: counter, period: 300ms, min: 0, max: 60000}}
      - {address: 1, value: 42}
"""

MAP_UNITS = """\
      - name: m1
        id: 1
        points:
          - {name: ctr, table: holding, address: 0, type: uint16}
          - {name: s, table: holding, address: 1, type: uint16}
"""

EVENTS = """\
events:
  service: {service}
  node_prefix: fgt/rights/
  node: {{access_model: open}}
"""

RIGHTS_WORDS = ("publisher rights",)


def rights_lines(text):
    return [ln for ln in text.splitlines()
            if any(w in ln for w in RIGHTS_WORDS)]


def main():
    with EventsEnv(SIM, MAP_UNITS, EVENTS, pubsub_admins=["admin"]) as env:
        env.wait_gw_online()
        node = PREFIX + "m1"
        # Changes for a few seconds: every poll cycle has an event to publish.
        line = env.wait_log("publisher rights", timeout=10)
        check("the gateway logs a clear error naming the service and the "
              "cure ('publisher rights')",
              line is not None and env.service in line, line)
        time.sleep(3)
        lines = rights_lines(env.gw_log())
        check("the error is logged once, not per change (%d lines)"
              % len(lines), len(lines) == 1, lines[:5])

        res = {}

        async def no_rights(c):
            ev, d, _ = await readout(c, env.gw_jid, nodes=["m1"],
                                     flags={"momentary": "true"})
            res["readout"] = (ev, d)
            ev, d, _ = await readout(c, env.gw_jid, nodes=["_gateway"],
                                     flags={"status": "true"})
            res["gwstatus"] = d.get("_gateway", {})
            res["exists"] = await node_exists(c, env.service, node)
        env.run(no_rights, "viewer")
        ev, d = res["readout"]
        check("readouts still answered (m1.s = 42)",
              ev[-1] == "done" and d.get("m1", {}).get("s", {})
              .get("value") == "42", (ev, d.get("m1")))
        st = res["gwstatus"]
        log("gateway status fields:", {k: v.get("value") for k, v in st.items()})
        shown = [k for k, v in st.items()
                 if ("ublish" in k or "vent" in k or "rror" in k
                     or k == "State")
                 and any(w in str(v.get("value", "")).lower()
                         for w in ("forbidden", "rights", "warning", "error"))]
        check("the gateway node shows the publishing problem in its status "
              "fields", shown, {k: v.get("value") for k, v in st.items()})
        check("no node was created on the service", not res["exists"])

        # Grant the rights: the gateway becomes a pubsub admin.
        mark = len(env.gw_log())
        env.srv.restart(pubsub_admins=["admin@fieldgate.test",
                                       env.gw_bare])
        log("prosody restarted with the gateway as pubsub admin")
        env.wait_gw_online(timeout=20)
        env.sighup()
        reloaded = env.wait_log("reload", timeout=10, start=mark)
        log("reload line:", reloaded)

        async def with_rights(admin, viewer):
            ok, last = await wait_nodes(admin, env.service, [node], timeout=15)
            res["created"] = ok[node]
            col = Collector(viewer)
            res["subs"] = await subscribe_all(viewer, env.service, [node], 10)
            t0 = time.time()
            await col.wait(lambda c: len(c.values(node, "ctr", t0)) >= 4, 10)
            res["vals"] = [int(v) for v in col.values(node, "ctr", t0)]
        env.run_many(["admin", "viewer"], with_rights, timeout=60)
        check("after the rights and the reload, the node exists",
              res["created"])
        check("subscribed", res["subs"].get(node) == "subscribed", res["subs"])
        vals = res["vals"]
        check("events arrive, values increasing", len(vals) >= 4 and all(
            b > a for a, b in zip(vals, vals[1:])), vals)
        check("no sanitizer report", "Sanitizer" not in env.gw_log())
    check("fieldgate exit 0 on SIGTERM", env.gw_rc == 0, env.gw_rc)
    check.exit()


if __name__ == "__main__":
    main()
