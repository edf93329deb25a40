#!/usr/bin/python3
"""Integration: events published to the gateway's own PEP service (the
map's `events:` section without `service`), through a private Prosody's
mod_pep, to a slixmpp reader that has a presence subscription with the
gateway (approved by fieldgate because the reader is in access: readers)
and announces `NODE+notify` in its XEP-0115 caps (XEP-0163 add_interest).

Checks: the reader receives events of both units from the gateway's bare
JID, counter values increasing, as XEP-0323 <fields>; an account outside
access: that also announces +notify and sends its presence receives none
(its subscription is refused, and the PEP nodes' access model is
presence).  Exit 77 when Prosody is unavailable."""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from events_common import (EventsEnv, Checks, Collector, log,  # noqa: E402
                           PEP_PLUGINS)
from fixtures import xmppclient as xc  # noqa: E402

check = Checks()
PREFIX = "fgt/pep/"

SIM = """\
units:
  - id: 1
    holding:
      - {address: 0, type: uint16, value: 0,
         wave: {kind: counter, period: 300ms, min: 0, max: 60000}}
  - id: 2
    holding:
      - {address: 0, type: uint16, value: 500,
         wave: {kind: counter, period: 500ms, min: 500, max: 60000}}
"""

MAP_UNITS = """\
      - name: m1
        id: 1
        points:
          - {name: ctr, table: holding, address: 0, type: uint16, unit: pcs}
      - name: m2
        id: 2
        points:
          - {name: ctr, table: holding, address: 0, type: uint16}
"""

EVENTS = """\
events:
  node_prefix: fgt/pep/
"""


async def reader_setup(c, gw_bare, nodes):
    """Interest (+notify in caps), a presence subscription with the gateway
    (which subscribes back; slixmpp approves), then available presence
    (with the caps) that reaches the gateway's account."""
    await c.get_roster()  # Prosody tells roster-interested resources only
    c["xep_0163"].add_interest(nodes)
    await asyncio.sleep(0.3)  # update_caps runs as a task
    subscribed = xc.expect_event(c, "presence_subscribed",
                                 lambda p: p["from"].bare == gw_bare)
    refused = xc.expect_event(c, "presence_unsubscribed",
                              lambda p: p["from"].bare == gw_bare)
    c.send_presence_subscription(pto=gw_bare)
    done, _ = await asyncio.wait([subscribed, refused], timeout=5,
                                 return_when=asyncio.FIRST_COMPLETED)
    ok = subscribed in done
    for f in (subscribed, refused):
        f.cancel()
    await asyncio.sleep(0.5)  # the gateway's own subscribe, auto-approved
    c.send_presence()  # to the gateway too: it is subscribed to us now
    return ok


def main():
    with EventsEnv(SIM, MAP_UNITS, EVENTS, pubsub_admins=["admin"]) as env:
        env.wait_gw_online()
        nodes = [PREFIX + "m1", PREFIX + "m2"]
        res = {}

        async def body(viewer, evil):
            col = Collector(viewer)
            col_evil = Collector(evil)
            res["sub"] = await reader_setup(viewer, env.gw_bare, nodes)
            res["evil_sub"] = await reader_setup(evil, env.gw_bare, nodes)
            t0 = time.time()
            await col.wait(lambda c: all(
                len({e.item_id for e in c.of(n, t0)}) >= 4 for n in nodes), 12)
            res.update(col=col, evil=col_evil, t0=t0)

        xc.run_clients(env.srv, [(env.srv.jid("viewer"), "viewer-pw"),
                                 (env.srv.jid("evil"), "evil-pw")], body,
                       timeout=40, plugins=PEP_PLUGINS, presence=False)
        col, t0 = res["col"], res["t0"]
        log("events:", len(col.events), col.events[:4])
        check("reader's presence subscription approved by the gateway",
              res["sub"])
        check("events come from the gateway's bare JID (PEP)",
              col.events and all(e.source == env.gw_bare for e in col.events),
              {e.source for e in col.events})
        uniq = col.unique()
        log("notifications %d, distinct items %d, addressed to %s"
            % (len(col.events), len(uniq), sorted({e.to for e in col.events})))
        for n in nodes:
            vals = [int(e.points()["ctr"]["value"]) for e in uniq
                    if e.node == n and e.recv >= t0 and "ctr" in e.points()]
            check("%s: >= 4 events after the subscription, increasing" % n,
                  len(vals) >= 4 and all(b > a for a, b in zip(vals, vals[1:])),
                  vals)
        check("payloads are sensordata <fields>",
              col.events and not any(e.parse_error for e in col.events))
        check("m1.ctr carries its unit",
              any(e.points().get("ctr", {}).get("unit") == "pcs"
                  for e in col.of(nodes[0])))
        check("a stranger (not in access:) gets no subscription",
              not res["evil_sub"])
        check("a stranger with +notify receives no events",
              not res["evil"].events, res["evil"].events[:2])
        check("no sanitizer report", "Sanitizer" not in env.gw_log())
    check("fieldgate exit 0 on SIGTERM", env.gw_rc == 0, env.gw_rc)
    check.exit()


if __name__ == "__main__":
    main()
