#!/usr/bin/python3
"""Integration: XEP-0323 readouts from `fieldgate run` through Prosody with
slixmpp 1.8.3's own xep_0323 client.

Values are checked against the simulator read independently with pymodbus.
Covers: one node, one field, every node (all types), momentary only, the
dead unit failing while the others answer (failure last, no KeyError in
slixmpp), a queued readout (accepted queued -> started -> ...), 20
concurrent readouts, a reader from another account, a stranger refused
(<rejected> reaches slixmpp), an unknown node, and cancel.
Exit 77 when Prosody or pymodbus is unavailable."""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iot_common import (IotEnv, Checks, readout, control, modbus,  # noqa: E402
                        holding, coil, log, raw_iq, NS_CONC)

check = Checks()


async def reset_backoff(c, gw, node):
    """Ends the unit's backoff (XEP-0326 resetBackoff, as a controller):
    while a unit is in backoff, readouts answer from the store at once
    without going to the bus, so a test of a readout that waits on the bus
    first ends the backoff."""
    t, x = await raw_iq(c, gw, "<executeNodeCommand xmlns='%s' "
                        "sourceId='MeteringTopology' nodeId='%s' "
                        "command='resetBackoff'/>" % (NS_CONC, node), "set")
    if t != "result":
        log("resetBackoff", node, "answered", t)


def main():
    with IotEnv() as env:
        mb = modbus(env.sim_port)
        sim_m1 = holding(mb, 1, 0, 8)  # hr0 .. mode
        sim_ir1 = mb.read_input_registers(1, 1, slave=1).registers[0]
        sim_c0 = coil(mb, 1, 0)
        sim_m2 = holding(mb, 2, 0)[0]
        sim_c1 = coil(mb, 2, 1)
        mb.close()
        log("simulator: m1 holding", sim_m1, "ir1", sim_ir1, "c0", sim_c0,
            "m2 hr0", sim_m2, "c1", sim_c1)

        async def body(c):
            gw = env.gw_jid
            # One node, momentary.
            ev, d, _ = await readout(c, gw, nodes=["m1"],
                                     flags={"momentary": "true"})
            check("one node: accepted, fields, done",
                  ev[0] in ("accepted", "queued") and ev[-1] == "done"
                  and "fields" in ev, ev)
            m1 = d.get("m1", {})
            check("m1.hr0 = simulator", m1.get("hr0", {}).get("value")
                  == str(sim_m1[0]), m1.get("hr0"))
            check("m1.sp scaled, 1 decimal, unit C",
                  m1.get("sp", {}).get("value") == "%.1f" % (sim_m1[5] * 0.1)
                  and m1["sp"].get("unit") == "C", m1.get("sp"))
            check("m1.mode enum label x for 1007",
                  m1.get("mode", {}).get("typename") == "enum"
                  and m1["mode"]["value"] == "x"
                  and m1["mode"].get("dataType"), m1.get("mode"))
            check("m1.c0 boolean", m1.get("c0", {}).get("value")
                  == ("true" if sim_c0 else "false")
                  and m1["c0"]["typename"] == "boolean", m1.get("c0"))
            check("m1.ir1 = simulator", m1.get("ir1", {}).get("value")
                  == str(sim_ir1), m1.get("ir1"))
            check("momentary only: no status/identity fields",
                  all("momentary" in f.get("flags", {}) for f in m1.values()),
                  list(m1))
            check("QoS automaticReadout", all(
                f.get("flags", {}).get("automaticReadout") == "true"
                for f in m1.values()))
            check("only m1 answered", set(d) == {"_failures", "m1"}, list(d))

            # One field.
            ev, d, _ = await readout(c, gw, nodes=["m2"], fields=["hr0"],
                                     flags={"momentary": "true"})
            check("one field", list(d.get("m2", {})) == ["hr0"]
                  and d["m2"]["hr0"]["value"] == str(sim_m2), d.get("m2"))

            # Every node, every type: the dead unit fails, the rest answers.
            ev, d, _ = await readout(c, gw, flags={"all": "true"})
            check("all: ends with the failure (failure last)",
                  ev[-1] == "failure" and ev.count("failure") == 1, ev)
            check("all: dead unit m3 failed",
                  [n for n, _ in d["_failures"]] == ["m3"], d["_failures"])
            check("all: failure text", "m3" in (d["_failures"][0][1] or ""),
                  d["_failures"])
            check("all: gateway, link and live units have fields",
                  {"_gateway", "plant", "m1", "m2"} <= set(d), list(d))
            check("all: m2.c1 = simulator", d.get("m2", {}).get("c1", {})
                  .get("value") == ("true" if sim_c1 else "false"))
            check("all: identity fields", d.get("m2", {}).get("Unit id", {})
                  .get("value") == "2" and d["m2"]["Link"]["value"] == "plant")
            check("all: status fields", d.get("m1", {}).get("State", {})
                  .get("value") == "online", d.get("m1", {}).get("State"))
            check("all: link connected", d.get("plant", {}).get("Connected",
                  {}).get("value") == "true")

            # A readout that waits on the bus: queued, started, then data.
            # m3's values are fresh for 100 ms after any attempt (its poll
            # interval); an offline probe can land in that window, so try
            # a few times.
            for _ in range(5):
                await asyncio.sleep(0.3)
                await reset_backoff(c, gw, "m3")
                ev, d, _ = await readout(c, gw, nodes=["m3"],
                                         flags={"momentary": "true"})
                if ev[0] == "queued":
                    break
            check("dead unit alone: queued, started, failure",
                  ev == ["queued", "started", "failure"], ev)

            # 20 concurrent readouts of every node (they share m3's read).
            res = await asyncio.gather(*[
                readout(c, gw, flags={"momentary": "true"}, timeout=20)
                for _ in range(20)])
            ok = all(r[0][-1] == "failure" and
                     r[1].get("m1", {}).get("hr0", {}).get("value")
                     == str(sim_m1[0]) and
                     [n for n, _ in r[1]["_failures"]] == ["m3"]
                     for r in res)
            check("20 concurrent readouts complete with data and m3 failure",
                  ok, [r[0] for r in res][:3])

            # Unknown node: rejected, with the text.
            ev, d, _ = await readout(c, gw, nodes=["nope"])
            check("unknown node rejected", ev == ["rejected"]
                  and "nope" in (d.get("_rejected") or ""), (ev, d))

            # Cancel a readout waiting on the dead unit.
            loop = asyncio.get_running_loop()
            events = []
            started = loop.create_future()
            cancelled = loop.create_future()

            def cb(from_jid, result, **kw):
                events.append(result)
                if result == "started" and not started.done():
                    started.set_result(result)
                if result in ("cancelled", "rejected") and not cancelled.done():
                    cancelled.set_result(result)

            for _ in range(5):
                await asyncio.sleep(0.3)
                await reset_backoff(c, gw, "m3")
                events.clear()
                s = c["xep_0323"].request_data(c.boundjid.full, gw, cb,
                                               nodeIds=["m3"],
                                               flags={"momentary": "true"})
                # slixmpp reuses the request's iq id for the cancel: wait
                # until that iq was answered (accepted queued, started).
                while not started.done() and "failure" not in events:
                    await asyncio.sleep(0.01)
                if started.done():
                    break
            check("cancel: a readout of m3 reached started", started.done(),
                  events)
            if started.done():
                c["xep_0323"].cancel_request(s)
                await asyncio.wait_for(cancelled, 10)
                await asyncio.sleep(1.0)  # longer than m3's 500 ms timeout
                check("cancel: cancelled, nothing after it",
                      events[-1] == "cancelled" and "failure" not in events,
                      events)

        env.run(body, "ops", timeout=90)

        # History (store.history in the map): a value change, then a
        # historical readout returns both samples, oldest first.
        async def history(c):
            r = await control(c, env.gw_jid, [("hr0", "int", "4321")], ["m1"])
            samples = []
            fut = asyncio.get_running_loop().create_future()

            def cb(from_jid, result, nodeId=None, timestamp=None, fields=None,
                   error_msg=None):
                for f in fields or []:
                    if "historicalOther" in f.get("flags", {}):
                        samples.append((f["name"], f["value"], timestamp))
                if result in ("done", "failure", "rejected") and not fut.done():
                    fut.set_result(result)
            c["xep_0323"].request_data(c.boundjid.full, env.gw_jid, cb,
                                       nodeIds=["m1"], fields=["hr0"],
                                       flags={"historical": "true"})
            end = await asyncio.wait_for(fut, 15)
            back = await control(c, env.gw_jid, [("hr0", "int", "1000")],
                                 ["m1"])
            return r, end, samples, back
        r, end, samples, back = env.run(history, "ops")
        values = [v for n, v, _ in samples if n == "hr0"]
        check("history: control applied", r[0] == "OK" and back[0] == "OK",
              (r, back))
        check("history: both samples, oldest first",
              end == "done" and values[-2:] == [str(sim_m1[0]), "4321"]
              and len(values) >= 2, samples)

        # A reader account may read; a stranger is refused.
        async def reader(c):
            ev, d, _ = await readout(c, env.gw_jid, nodes=["m2"],
                                     fields=["hr0"])
            return ev, d
        ev, d = env.run(reader, "viewer")
        check("reader may read", ev[-1] == "done"
              and d.get("m2", {}).get("hr0", {}).get("value") == str(sim_m2),
              (ev, d))
        ev, d = env.run(reader, "evil")
        check("stranger rejected (slixmpp sees <rejected>)",
              ev == ["rejected"] and d.get("_rejected") == "Access denied",
              (ev, d))
        log_text = env.gw_log()
        check("reject logged", "rejected: Access denied" in log_text)
        check("no sanitizer report", "ERROR: AddressSanitizer" not in log_text
              and "runtime error" not in log_text)
    check("fieldgate exited 0", env.gw_rc == 0, env.gw_rc)
    check.exit()


if __name__ == "__main__":
    main()
