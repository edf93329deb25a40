#!/usr/bin/python3
"""The demo's XMPP client: slixmpp 1.8.3 with its own XEP-0323 (sensor data)
and XEP-0325 (control) plugins, talking to fieldgate through the demo's
private Prosody.  It reads every device, sets the pump's speed setpoint,
reads the pump again, shows that a read-only account cannot write, then
subscribes (XEP-0060, slixmpp's xep_0060) to the gateway's event nodes on
the pubsub component and prints value-change notifications as the
simulated devices change.

Usage: client.py DEMO_DIR GATEWAY_FULL_JID SETPOINT_HZ
(DEMO_DIR holds prosody/env.sh and the account passwords)."""

import asyncio
import logging
import os
import sys
import time

DEMO, GATEWAY, SETPOINT = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests"))
from fixtures import xmppclient as xc  # noqa: E402


def load_env():
    env = {}
    with open(os.path.join(DEMO, "prosody", "env.sh")) as f:
        for line in f:
            if line.startswith("export "):
                k, v = line[7:].strip().split("=", 1)
                env[k] = v.strip("'")
    return env


def password(user):
    with open(os.path.join(DEMO, user + ".password")) as f:
        return f.read().strip()


async def readout(c, nodes=None):
    """One XEP-0323 momentary readout; returns {node: [(field, value, unit)]}."""
    done = asyncio.get_running_loop().create_future()
    rows, failures = {}, {}

    def cb(from_jid, result, nodeId=None, timestamp=None, fields=None,
           error_msg=None):
        if result == "fields":
            for f in fields:
                rows.setdefault(nodeId, []).append(
                    (f["name"], f["value"], f.get("unit", "")))
        elif result == "failure":
            failures[nodeId] = error_msg
            if not done.done():
                done.set_result(None)
        elif result in ("done", "rejected") and not done.done():
            done.set_result(result)

    c["xep_0323"].request_data(c.boundjid.full, GATEWAY, cb, nodeIds=nodes,
                               flags={"momentary": "true"})
    await asyncio.wait_for(done, 15)
    return rows, failures


async def control(c, node, name, typename, value):
    done = asyncio.get_running_loop().create_future()

    def cb(from_jid, result, nodeIds=None, fields=None, error_msg=None):
        if not done.done():
            done.set_result((result, error_msg))

    c["xep_0325"].set_request(c.boundjid.full, GATEWAY, cb,
                              fields=[(name, typename, value)],
                              nodeIds=[node])
    return await asyncio.wait_for(done, 15)


def show(title, rows, failures):
    print("\n== %s" % title)
    print("%-8s %-10s %16s  %s" % ("NODE", "FIELD", "VALUE", "UNIT"))
    for node in sorted(rows):
        for name, value, unit in rows[node]:
            print("%-8s %-10s %16s  %s" % (node, name, value, unit))
    for node, why in failures.items():
        print("%-8s FAILED: %s" % (node, why))


async def operator(c):
    rows, failures = await readout(c, ["meter", "pump", "tank"])
    show("readout of every device (XEP-0323, as operator)", rows, failures)
    print("\n== control (XEP-0325): pump.setpoint := %s Hz" % SETPOINT)
    result, err = await control(c, "pump", "setpoint", "double", SETPOINT)
    print("   response: %s%s" % (result, " (%s)" % err if err else ""))
    rows, failures = await readout(c, ["pump"])
    show("pump after the command", rows, failures)
    return result


async def visitor(c):
    print("\n== control as visitor (a reader, not a controller)")
    result, err = await control(c, "pump", "setpoint", "double", "0")
    print("   response: %s%s" % (result, " (%s)" % err if err else ""))
    return result


NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_SD = "urn:xmpp:iot:sensordata"
EVENT_NODES = ["fieldgate/gateway/meter", "fieldgate/gateway/pump",
               "fieldgate/gateway/tank"]
EVENTS_TO_SHOW = 8


async def events(c):
    """Subscribes to the event nodes and prints the first notifications."""
    service = "pubsub." + c.boundjid.domain
    got = asyncio.get_running_loop().create_future()
    shown = [0]
    t0 = time.monotonic()

    def on_publish(msg):
        items = msg.xml.find("{%s}event/{%s}items" % (NS_EVENT, NS_EVENT))
        if items is None or got.done():
            return
        for fields in items.iter("{%s}fields" % NS_SD):
            for node in fields.findall("{%s}node" % NS_SD):
                for ts in node.findall("{%s}timestamp" % NS_SD):
                    for f in ts:
                        flags = [k for k, v in f.attrib.items() if v == "true"]
                        print("   +%5.1fs %-6s %-9s %14s %-4s %s  %s" % (
                            time.monotonic() - t0, node.get("nodeId"),
                            f.get("name"), f.get("value"), f.get("unit", ""),
                            ts.get("value"), ",".join(flags)))
        shown[0] += 1
        if shown[0] >= EVENTS_TO_SHOW:
            got.set_result(None)

    print("\n== events (XEP-0060 PubSub on %s, as visitor): value changes as "
          "they happen" % service)
    c.add_event_handler("pubsub_publish", on_publish)
    for node in EVENT_NODES:
        for _ in range(50):  # the gateway creates the nodes at its login
            try:
                await c["xep_0060"].subscribe(service, node, timeout=5)
                break
            except Exception:  # item-not-found until it exists
                await asyncio.sleep(0.2)
        print("   subscribed to %s" % node)
    print("   %-7s %-6s %-9s %14s %-4s %-24s  %s" % (
        "after", "NODE", "FIELD", "VALUE", "UNIT", "TIMESTAMP", "QOS"))
    try:
        await asyncio.wait_for(got, 20)
    except asyncio.TimeoutError:
        pass
    for node in EVENT_NODES:
        try:
            await c["xep_0060"].unsubscribe(service, node, timeout=5)
        except Exception:
            pass
    return shown[0]


def main():
    # slixmpp leaves the refused set's iq future unread: not our error.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    srv = xc.Endpoint.from_env(load_env())
    dom = srv.domain
    r1 = xc.run_client(srv, "operator@" + dom, password("operator"), operator,
                       timeout=40, plugins=xc.DEFAULT_PLUGINS + xc.IOT_PLUGINS)
    r2 = xc.run_client(srv, "visitor@" + dom, password("visitor"), visitor,
                       timeout=40, plugins=xc.DEFAULT_PLUGINS + xc.IOT_PLUGINS)
    r3 = xc.run_client(srv, "visitor@" + dom, password("visitor"), events,
                       timeout=60,
                       plugins=xc.DEFAULT_PLUGINS + xc.PUBSUB_PLUGINS)
    ok = r1 == "OK" and r2 == "InsufficientPrivileges" and r3 >= EVENTS_TO_SHOW
    print("\ndemo client: %s" % ("as expected" if ok else "UNEXPECTED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
