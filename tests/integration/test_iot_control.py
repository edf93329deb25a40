#!/usr/bin/python3
"""Integration: XEP-0325 control of `fieldgate run` through Prosody, with
slixmpp 1.8.3's own xep_0325 client and raw stanzas; every write checked in
the simulator with pymodbus.

Covers: int, boolean, scaled double and enum-label sets; all-or-nothing
validation (a bad second parameter leaves the first unwritten); NotFound and
FormError with the RFC 6120 error + paramError + 0.2 setResponse in one
stanza; a reader and a stranger refused with the registers unchanged;
getForm (XEP-0004/0122/0336) and a partial form submit; control by message
(fire-and-forget) applied, and a stale <delay>ed one refused and logged.
Exit 77 when Prosody or pymodbus is unavailable."""
import asyncio
import os
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iot_common import (IotEnv, Checks, control, raw_iq, modbus, holding,  # noqa: E402
                        coil, q, NS_CTL, NS_STANZAS, log)

check = Checks()
NS_X = "jabber:x:data"
NS_XDV = "http://jabber.org/protocol/xdata-validate"
NS_XDD = "urn:xmpp:xdata:dynamic"


async def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


def main():
    with IotEnv() as env:
        mb = modbus(env.sim_port)
        gw = env.gw_jid

        async def ops(c):
            r = await control(c, gw, [("hr0", "int", "4321")], ["m1"])
            check("set int: OK", r == ("OK", None), r)
            check("hr0 written", holding(mb, 1, 0)[0] == 4321)
            r = await control(c, gw, [("c0", "boolean", "false")], ["m1"])
            check("set boolean: OK", r[0] == "OK", r)
            check("c0 written", coil(mb, 1, 0) is False)
            r = await control(c, gw, [("sp", "double", "42.5")], ["m1"])
            check("set scaled double: OK", r[0] == "OK", r)
            check("sp raw 425", holding(mb, 1, 5)[0] == 425)
            r = await control(c, gw, [("mode", "string", "auto")], ["m1"])
            check("set enum by label: OK", r[0] == "OK", r)
            check("mode raw 1", holding(mb, 1, 7)[0] == 1)
            # Two parameters in document order, both applied.
            r = await control(c, gw, [("hr0", "int", "7"),
                                      ("sp", "double", "1.5")], ["m1"])
            check("two parameters: OK", r[0] == "OK", r)
            check("both written", holding(mb, 1, 0)[0] == 7
                  and holding(mb, 1, 5)[0] == 15)
            # All or nothing: the second parameter is out of range.
            r = await control(c, gw, [("hr0", "int", "1"),
                                      ("sp", "double", "600")], ["m1"])
            check("range error: FormError", r[0] == "FormError", r)
            check("nothing written on FormError", holding(mb, 1, 0)[0] == 7
                  and holding(mb, 1, 5)[0] == 15)
            r = await control(c, gw, [("nope", "int", "1")], ["m1"])
            check("unknown parameter: NotFound", r[0] == "NotFound", r)
            r = await control(c, gw, [("hr0", "int", "1")], ["zz"])
            check("unknown node: NotFound", r[0] == "NotFound", r)
            r = await control(c, gw, [("ir1", "int", "1")], ["m1"])
            check("read-only point: FormError", r[0] == "FormError", r)
            r = await control(c, gw, [("hr0", "int", "1")], ["m2"])
            check("m2.hr0 not writable: FormError", r[0] == "FormError", r)
            check("m2 unchanged", holding(mb, 2, 0)[0] == 2000)

            # The same errors on the wire: RFC error + paramError + 0.2 form.
            t, x = await raw_iq(
                c, gw, "<set xmlns='%s'><node nodeId='m1'/>"
                "<double name='sp' value='600'/></set>" % NS_CTL, "set")
            err = x.find("{jabber:client}error")
            pe = err.find(q(NS_CTL, "paramError")) if err is not None else None
            sr = x.find(q(NS_CTL, "setResponse"))
            check("raw FormError: iq error with bad-request",
                  t == "error" and err is not None
                  and err.find(q(NS_STANZAS, "bad-request")) is not None,
                  ET.tostring(x))
            check("raw FormError: paramError var=sp",
                  pe is not None and pe.get("var") == "sp"
                  and "0..500" in (pe.text or ""), ET.tostring(x))
            check("raw FormError: setResponse responseCode + parameter",
                  sr is not None and sr.get("responseCode") == "FormError"
                  and sr.find(q(NS_CTL, "parameter")).get("name") == "sp")

            # getForm, then a partial form submit.
            t, x = await raw_iq(c, gw, "<getForm xmlns='%s'><node nodeId='m1'/>"
                                "</getForm>" % NS_CTL)
            form = x.find(q(NS_X, "x"))
            fields = {f.get("var"): f for f in form.findall(q(NS_X, "field"))} \
                if form is not None else {}
            check("getForm: form with the writable points",
                  t == "result" and form is not None and form.get("type") == "form"
                  and set(fields) == {"hr0", "sp", "mode", "c0"}, fields.keys())
            sp = fields.get("sp")
            val = sp.find(q(NS_X, "value")).text if sp is not None else None
            rng = sp.find(q(NS_XDV, "validate")).find(q(NS_XDV, "range")) \
                if sp is not None else None
            check("getForm: sp current value, xs:double 0..500, notSame",
                  val == "1.5" and rng is not None and rng.get("min") == "0"
                  and rng.get("max") == "500"
                  and sp.find(q(NS_XDV, "validate")).get("datatype") == "xs:double"
                  and sp.find(q(NS_XDD, "notSame")) is not None,
                  ET.tostring(sp) if sp is not None else None)
            mode = fields.get("mode")
            check("getForm: enum as list-single with options",
                  mode is not None and mode.get("type") == "list-single"
                  and [o.get("label") for o in mode.findall(q(NS_X, "option"))]
                  == ["off", "auto", "x"])
            check("getForm: coil as boolean", fields.get("c0") is not None
                  and fields["c0"].get("type") == "boolean")
            t, x = await raw_iq(
                c, gw, "<set xmlns='%s'><node nodeId='m1'/>"
                "<x xmlns='jabber:x:data' type='submit'>"
                "<field var='sp'><value>12.5</value></field></x></set>" % NS_CTL,
                "set")
            sr = x.find(q(NS_CTL, "setResponse"))
            check("form submit: OK", t == "result" and sr is not None
                  and sr.get("responseCode") == "OK", ET.tostring(x))
            check("form submit: only sp written", holding(mb, 1, 5)[0] == 125
                  and holding(mb, 1, 0)[0] == 7)

            # Control by message: applied, no answer.
            c["xep_0325"].set_command(c.boundjid.full, gw,
                                      [("hr0", "int", "555")], ["m1"])
            check("message set applied",
                  await wait_until(lambda: holding(mb, 1, 0)[0] == 555))
            # A stale one (delayed 10 minutes) is refused; a fresh one after
            # it proves it was processed.
            old = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                time.gmtime(time.time() - 600))
            m = c.Message()
            m["to"] = gw
            m.append(ET.fromstring("<set xmlns='%s'><node nodeId='m1'/>"
                                   "<int name='hr0' value='999'/></set>" % NS_CTL))
            m.append(ET.fromstring("<delay xmlns='urn:xmpp:delay' "
                                   "from='fieldgate.test' stamp='%s'>Offline "
                                   "Storage</delay>" % old))
            m.send()
            c["xep_0325"].set_command(c.boundjid.full, gw,
                                      [("c0", "boolean", "true")], ["m1"])
            check("fresh message after the stale one applied",
                  await wait_until(lambda: coil(mb, 1, 0) is True))
            check("stale delayed message refused", holding(mb, 1, 0)[0] == 555)

        env.run(ops, "ops", timeout=90)

        before = (holding(mb, 1, 0, 8), coil(mb, 1, 0))

        async def denied(c):
            r = await control(c, gw, [("hr0", "int", "1")], ["m1"])
            t, x = await raw_iq(c, gw, "<getForm xmlns='%s'><node nodeId='m1'/>"
                                "</getForm>" % NS_CTL)
            c["xep_0325"].set_command(c.boundjid.full, gw,
                                      [("c0", "boolean", "false")], ["m1"])
            await asyncio.sleep(0.5)
            return r, t, x
        for who in ("viewer", "evil"):
            r, t, x = env.run(denied, who)
            check("%s: set refused with InsufficientPrivileges" % who,
                  r[0] == "InsufficientPrivileges", r)
            err = x.find("{jabber:client}error")
            check("%s: getForm forbidden" % who, t == "error" and
                  err.find(q(NS_STANZAS, "forbidden")) is not None)
        check("registers unchanged after refused requests",
              (holding(mb, 1, 0, 8), coil(mb, 1, 0)) == before)
        mb.close()
        text = env.gw_log()
        check("writes logged with JID, point, old and new value",
              "control by ops@fieldgate.test/" in text
              and "m1.hr0 4321 -> 7" in text, text[-2000:])
        check("stale message logged", "refused: delayed" in text)
        check("refused message logged",
              "control message from viewer@fieldgate.test/" in text)
        check("no sanitizer report", "AddressSanitizer" not in text
              and "runtime error" not in text)
    check("fieldgate exited 0", env.gw_rc == 0, env.gw_rc)
    check.exit()


if __name__ == "__main__":
    main()
