#!/usr/bin/python3
"""The demo's XMPP client: slixmpp 1.8.3 with its own XEP-0323 (sensor data)
and XEP-0325 (control) plugins, talking to fieldgate through the demo's
private Prosody.  It reads every device, sets the pump's speed setpoint,
reads the pump again, and shows that a read-only account cannot write.

Usage: client.py DEMO_DIR GATEWAY_FULL_JID SETPOINT_HZ
(DEMO_DIR holds prosody/env.sh and the account passwords)."""

import asyncio
import logging
import os
import sys

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


def main():
    # slixmpp leaves the refused set's iq future unread: not our error.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    srv = xc.Endpoint.from_env(load_env())
    dom = srv.domain
    r1 = xc.run_client(srv, "operator@" + dom, password("operator"), operator,
                       timeout=40, plugins=xc.DEFAULT_PLUGINS + xc.IOT_PLUGINS)
    r2 = xc.run_client(srv, "visitor@" + dom, password("visitor"), visitor,
                       timeout=40, plugins=xc.DEFAULT_PLUGINS + xc.IOT_PLUGINS)
    ok = r1 == "OK" and r2 == "InsufficientPrivileges"
    print("\ndemo client: %s" % ("as expected" if ok else "UNEXPECTED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
