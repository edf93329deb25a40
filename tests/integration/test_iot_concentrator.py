#!/usr/bin/python3
"""Integration: XEP-0326 concentrator operations of `fieldgate run` through
Prosody, as raw iqs from slixmpp (it has no XEP-0326 plugin); the structure
of every reply is asserted.

Covers getCapabilities, the three data-source ops, containsNode(s),
getNode(s) with parameters and messages, getAllNodes (+onlyIfDerivedFrom),
getNodeInheritance, getRootNodes, getChildNodes, getAncestors,
getNodeCommands, executeNodeCommand (readNow; resetBackoff needs control),
unknown ops (NotImplemented + feature-not-implemented), a stranger refused,
disco#info features, and subscribe: nodeStatusChanged events arrive when the
simulator stops, and stop after unsubscribe.
Exit 77 when Prosody is unavailable."""
import asyncio
import os
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iot_common import (IotEnv, Checks, raw_iq, q, stop, NS_CONC, NS_STANZAS,  # noqa: E402
                        NS_SD, NS_CTL)
from fixtures import xmppclient as xc  # noqa: E402

check = Checks()
SRC = "sourceId='MeteringTopology'"


def op(name, attrs="", body=""):
    return "<%s xmlns='%s' %s>%s</%s>" % (name, NS_CONC, attrs, body, name)


def resp(x, name):
    return x.find(q(NS_CONC, name + "Response"))


def node_ids(el):
    return [n.get("nodeId") for n in el.findall(q(NS_CONC, "node"))]


def main():
    with IotEnv() as env:
        gw = env.gw_jid
        check("disco#info: exactly the served IoT features",
              {f for f in env.features if "iot" in f or "xdata" in f
               or f == "jabber:x:data"} ==
              {NS_SD, NS_CTL, NS_CONC, "jabber:x:data",
               "http://jabber.org/protocol/xdata-validate",
               "urn:xmpp:xdata:dynamic"}, sorted(env.features))

        async def browse(c):
            t, x = await raw_iq(c, gw, op("getCapabilities"))
            r = resp(x, "getCapabilities")
            caps = [v.text for v in r.findall(q(NS_CONC, "value"))]
            check("getCapabilities", t == "result" and r.get("result") == "OK"
                  and {"getNode", "getAncestors", "subscribe",
                       "executeNodeCommand"} <= set(caps)
                  and "moveNodeUp" not in caps, caps)
            for name in ("getAllDataSources", "getRootDataSources"):
                t, x = await raw_iq(c, gw, op(name))
                ds = resp(x, name).findall(q(NS_CONC, "dataSource"))
                check(name, t == "result" and len(ds) == 1
                      and ds[0].get("sourceId") == "MeteringTopology"
                      and ds[0].get("hasChildren") == "false", ET.tostring(x))
            t, x = await raw_iq(c, gw, op("getChildDataSources", SRC))
            check("getChildDataSources: OK, none", t == "result" and
                  len(list(resp(x, "getChildDataSources"))) == 0)
            t, x = await raw_iq(c, gw, op("getChildDataSources",
                                          "sourceId='Nope'"))
            check("getChildDataSources unknown: NotFound", t == "error" and
                  resp(x, "getChildDataSources").get("result") == "NotFound")
            t, x = await raw_iq(c, gw, op("containsNode", SRC + " nodeId='m2'"))
            check("containsNode true", resp(x, "containsNode").text == "true")
            t, x = await raw_iq(c, gw, op("containsNode", SRC + " nodeId='q'"))
            check("containsNode false", resp(x, "containsNode").text == "false")
            t, x = await raw_iq(c, gw, op(
                "containsNodes", "", "<node %s nodeId='m1'/><node %s "
                "nodeId='q'/><node %s nodeId='plant'/>" % (SRC, SRC, SRC)))
            check("containsNodes in order", [
                v.text for v in resp(x, "containsNodes").findall(
                    q(NS_CONC, "value"))] == ["true", "false", "true"])
            t, x = await raw_iq(c, gw, op(
                "getNode", SRC + " nodeId='m1' parameters='true'"))
            r = resp(x, "getNode")
            params = {p.get("id"): (p.tag.split("}")[1], p.get("value"))
                      for p in r}
            check("getNode m1: node info attributes", t == "result"
                  and r.get("result") == "OK" and r.get("nodeId") == "m1"
                  and r.get("nodeType") == "Modbus.Unit"
                  and r.get("state") == "None" and r.get("hasChildren") == "false"
                  and r.get("isReadable") == "true"
                  and r.get("isControllable") == "true"
                  and r.get("hasCommands") == "true"
                  and r.get("parentId") == "plant", r.attrib)
            check("getNode m1: parameters", params.get("unitId") == ("int", "1")
                  and params.get("link") == ("string", "plant")
                  and params.get("state") == ("string", "online"), params)
            for _ in range(100):  # until m3 is offline (3 failed polls)
                t, x = await raw_iq(c, gw, op(
                    "getNode", SRC + " nodeId='m3' messages='true'"))
                r = resp(x, "getNode")
                if r.get("state") == "ErrorUnsigned":
                    break
                await asyncio.sleep(0.1)
            msgs = r.findall(q(NS_CONC, "message"))
            check("getNode m3: ErrorUnsigned with an Error message",
                  r.get("state") == "ErrorUnsigned" and len(msgs) == 1
                  and msgs[0].get("type") == "Error"
                  and "m3" in msgs[0].text and msgs[0].get("timestamp"),
                  ET.tostring(r))
            check("getNode m2: isControllable false (no writable point)",
                  resp((await raw_iq(c, gw, op(
                      "getNode", SRC + " nodeId='m2'")))[1],
                      "getNode").get("isControllable") == "false")
            t, x = await raw_iq(c, gw, op("getNode", SRC + " nodeId='zz'"))
            err = x.find("{jabber:client}error")
            check("getNode unknown: iq error NotFound + item-not-found",
                  t == "error" and resp(x, "getNode").get("result") == "NotFound"
                  and err.find(q(NS_STANZAS, "item-not-found")) is not None)
            t, x = await raw_iq(c, gw, op(
                "getNodes", "", "<node %s nodeId='m2'/><node %s nodeId='plant'/>"
                % (SRC, SRC)))
            check("getNodes", node_ids(resp(x, "getNodes")) == ["m2", "plant"])
            t, x = await raw_iq(c, gw, op("getAllNodes", SRC))
            check("getAllNodes", node_ids(resp(x, "getAllNodes")) ==
                  ["_gateway", "plant", "m1", "m2", "m3"])
            t, x = await raw_iq(c, gw, op(
                "getAllNodes", SRC,
                "<onlyIfDerivedFrom>Modbus.Unit</onlyIfDerivedFrom>"))
            check("getAllNodes onlyIfDerivedFrom Modbus.Unit",
                  node_ids(resp(x, "getAllNodes")) == ["m1", "m2", "m3"])
            t, x = await raw_iq(c, gw, op("getNodeInheritance",
                                          SRC + " nodeId='m1'"))
            b = resp(x, "getNodeInheritance").find(q(NS_CONC, "baseClasses"))
            check("getNodeInheritance", b is not None and [
                v.text for v in b] == ["Modbus.Node", "Fieldgate.Node"])
            t, x = await raw_iq(c, gw, op("getRootNodes", SRC))
            r = resp(x, "getRootNodes")
            check("getRootNodes: the gateway", node_ids(r) == ["_gateway"]
                  and r.find(q(NS_CONC, "node")).get("hasChildren") == "true")
            t, x = await raw_iq(c, gw, op("getChildNodes",
                                          SRC + " nodeId='plant'"))
            check("getChildNodes plant", node_ids(resp(x, "getChildNodes"))
                  == ["m1", "m2", "m3"])
            t, x = await raw_iq(c, gw, op("getChildNodes",
                                          SRC + " nodeId='m1'"))
            check("getChildNodes leaf: none",
                  node_ids(resp(x, "getChildNodes")) == [])
            t, x = await raw_iq(c, gw, op("getAncestors",
                                          SRC + " nodeId='m2'"))
            check("getAncestors: node first, up to the root",
                  node_ids(resp(x, "getAncestors")) == ["m2", "plant",
                                                        "_gateway"])
            t, x = await raw_iq(c, gw, op("getNodeCommands",
                                          SRC + " nodeId='m3'"))
            cmds = {cm.get("command"): cm.get("type") for cm in
                    resp(x, "getNodeCommands").findall(q(NS_CONC, "command"))}
            check("getNodeCommands", cmds == {"readNow": "Simple",
                                              "resetBackoff": "Simple"}, cmds)
            t, x = await raw_iq(c, gw, op(
                "executeNodeCommand", SRC + " nodeId='m1' command='readNow'"),
                "set")
            check("executeNodeCommand readNow (reader)", t == "result" and
                  resp(x, "executeNodeCommand").get("result") == "OK")
            t, x = await raw_iq(c, gw, op(
                "executeNodeCommand", SRC + " nodeId='m3' command='resetBackoff'"),
                "set")
            check("executeNodeCommand resetBackoff needs control",
                  t == "error" and resp(x, "executeNodeCommand").get("result")
                  == "InsufficientPrivileges")
            t, x = await raw_iq(c, gw, op(
                "executeNodeCommand", SRC + " nodeId='m3' command='fly'"), "set")
            check("executeNodeCommand unknown: NotFound", t == "error" and
                  resp(x, "executeNodeCommand").get("result") == "NotFound")
            for name, typ in (("moveNodeUp", "set"), ("getIndices", "get"),
                              ("getNodeParametersForEdit", "get")):
                t, x = await raw_iq(c, gw, op(name, SRC + " nodeId='m1'"), typ)
                err = x.find("{jabber:client}error")
                check("%s: NotImplemented" % name, t == "error"
                      and resp(x, name).get("result") == "NotImplemented"
                      and err.find(q(NS_STANZAS, "feature-not-implemented"))
                      is not None)

        env.run(browse, "viewer")

        async def ops_cmd(c):
            t, x = await raw_iq(c, gw, op(
                "executeNodeCommand", SRC + " nodeId='m3' command='resetBackoff'"),
                "set")
            return t, resp(x, "executeNodeCommand").get("result")
        check("resetBackoff by a controller", env.run(ops_cmd) == ("result", "OK"))

        async def stranger(c):
            t, x = await raw_iq(c, gw, op("getAllNodes", SRC))
            return t, resp(x, "getAllNodes").get("result")
        check("stranger refused", env.run(stranger, "evil") ==
              ("error", "InsufficientPrivileges"))

        # Subscriptions: events while subscribed; none after unsubscribe.
        async def subscribe(c):
            events = []
            c.register_handler(xc_callback(events))
            t, x = await raw_iq(c, gw, op("subscribe", SRC + " messages='true'"),
                                "set")
            check("subscribe OK", t == "result" and
                  resp(x, "subscribe").get("result") == "OK")
            t, x = await raw_iq(c, gw, op(
                "subscribe", SRC + " getEventsSince='2020-01-01T00:00:00Z'"),
                "set")
            check("subscribe getEventsSince: NotImplemented", t == "error" and
                  resp(x, "subscribe").get("result") == "NotImplemented")
            stop(env.sim)  # the link drops: m1, m2 and plant change state
            for _ in range(100):
                if any(e.get("nodeId") == "m1" for e in events):
                    break
                await asyncio.sleep(0.1)
            m1 = [e for e in events if e.get("nodeId") == "m1"]
            check("nodeStatusChanged for m1", len(m1) >= 1
                  and m1[0].get("sourceId") == "MeteringTopology"
                  and m1[0].get("state") in ("ErrorUnsigned", "WarningUnsigned"),
                  [ET.tostring(e) for e in events])
            check("event carries the message (messages='true')",
                  any(e.find(q(NS_CONC, "message")) is not None for e in m1))
            t, x = await raw_iq(c, gw, op("unsubscribe", SRC), "set")
            check("unsubscribe OK", t == "result" and
                  resp(x, "unsubscribe").get("result") == "OK")

        env.run(subscribe, "viewer", timeout=60)
        text = env.gw_log()
        check("subscription logged", "subscribed (status events on)" in text)
        check("no sanitizer report", "AddressSanitizer" not in text
              and "runtime error" not in text)
    check("fieldgate exited 0", env.gw_rc == 0, env.gw_rc)
    check.exit()


def xc_callback(events):
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    def on_msg(msg):
        ev = msg.xml.find(q(NS_CONC, "nodeStatusChanged"))
        if ev is not None:
            events.append(ev)
    return Callback("nodeStatusChanged",
                    MatchXPath("{jabber:client}message/{%s}nodeStatusChanged"
                               % NS_CONC), on_msg)


if __name__ == "__main__":
    main()
