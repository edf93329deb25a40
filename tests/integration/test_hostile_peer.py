#!/usr/bin/python3
"""Integration (issue 8): a hostile peer must not take fieldgate down.

`fieldgate run` against the private Prosody, fieldgate-sim and pymodbus (as
in test_iot_*.py).  Accounts without rights send, through the real server,
every stanza shape of issue 8; controllers and readers send the malformed
requests they are allowed to send.  Then the owner's readout must succeed
within 2 s and the gateway must not have reconnected.

Covers:
  parser limits, from a stranger (evil): a message nested 70 deep, an iq
    with 70 attributes (and a child with 70), an iq child nested 70 deep,
    40,000 empty children (~160 KB, under Prosody's c2s_stanza_size_limit)
    in a message and in an iq, 12 stanzas with 1,000 new element names
    each; each must drop that stanza only (iqs answered with an error) and
    keep the session, logged for the sender (a sentinel ping after each
    shape names the shape that broke the session); a ~215 KB iq of
    5,000 long-named elements, which Prosody accepts, must be served, not
    refused for a size counted other than as bytes on the wire; and a ~9 KB
    message (from eve) that Prosody re-serializes to ~2.2 MB (xmlns on each
    of 1,100 children), past 8 x the gateway's stanza limit: dropped (the
    log line shows the inflated size), the session kept;
  control amplification: a <set> naming 16 units 5 times each x 8 points
    twice: refused for a stranger (forbidden), and for the controller
    refused before any write (registers read back with pymodbus) when over
    the per-request write bound (xmpp.control_max_writes when the map
    accepts it); also by message; duplicated nodes never multiply writes;
    writes are counted on the bus in the simulator's --verbose log;
  log injection: a newline (and CR) in a form value (by iq and by
    message), a value, a parameter name, a node id and a seqnr, from
    controller, reader and stranger; no log line may start with the
    injected text.  Only element text keeps a newline through Prosody (it
    re-serializes &#10; in attributes as a raw newline, which the gateway's
    parser normalizes to a space, and a CR to a newline); a newline in a
    resource cannot pass Prosody's resourceprep;
  a readout cancel by a stranger: forbidden;
  control messages with a <delay> stamp in the future, and with a fresh
    client delay before a stale server delay: refused;
  audit: refusals of strangers (control iq, control message, XEP-0326,
    readouts) are logged, and a burst of 300 refused requests produces a
    bounded number of lines;
  afterwards: owner readout within 2 s, exactly one "online as" line (no
    reconnect, no resumption), the daemon alive and exiting 0, no sanitizer
    report.

Exit 77 only when Prosody (or pymodbus) is unavailable and CI is not set;
with CI set those are failures.
"""
import asyncio
import contextlib
import os
import re
import select
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# A journald-style prefix would change the line format this test parses.
os.environ.pop("JOURNAL_STREAM", None)

import iot_common as ic  # noqa: E402
from iot_common import (IotEnv, Checks, readout, holding, coil, log)  # noqa: E402
import hostile_shapes as hs  # noqa: E402
from hostile_shapes import iq_type, error_condition, response_code, show  # noqa: E402
from fixtures.prosody import Prosody, ProsodyUnavailable  # noqa: E402

check = Checks()

# Accounts: ic.USERS (gw, ops = controller, viewer = reader, evil = no
# rights) plus more strangers, so that each audit check is the first
# refusal of its sender (refusal logging is rate-limited per sender).
USERS = dict(ic.USERS, stranger="stranger-pw", mallory="mallory-pw",
             trudy="trudy-pw", eve="eve-pw")
CLIENTS = ("ops", "viewer", "evil", "stranger", "mallory", "trudy", "eve")

# Units 10..25, 8 writable holding registers each: the amplification target.
EXTRA_IDS = list(range(10, 26))
EXTRA_POINTS = 8
WRITE_BOUND = 8
# Candidate names of the per-request write bound (issue 8, defect 5); the
# first one `fieldgate check` accepts is configured.
BOUND_KEYS = ("control_max_writes", "control_writes_max", "max_writes_per_request")

XMPP_SECTION = """\
xmpp:
  jid: {jid}
  password_file: {pwfile}
  resource: gw
  host: 127.0.0.1
  port: {port}
  tls: starttls
  ca_file: {ca}
{bound}access:
  readers: [{viewer}]
  controllers: [{ops}]
store:
  history: 20
"""

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                      r"(error|warn|notice|info|debug)\s+[\w.-]+: ")
# Injected after a newline: a journald priority prefix and a marker.
FORGED = "FORGED"


def ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what):
    if ci():
        log("FAIL: %s unavailable and CI is set: no skipping" % what)
        sys.exit(1)
    log("SKIP: %s unavailable" % what)
    sys.exit(77)


def extra_units_yaml():
    lines = []
    for uid in EXTRA_IDS:
        lines += ["      - name: u%d" % uid, "        id: %d" % uid,
                  "        points:"]
        lines += ["          - {name: w%d, table: holding, address: %d, "
                  "type: uint16, writable: true}" % (a, a)
                  for a in range(EXTRA_POINTS)]
    return "\n".join(lines)


class HostileEnv(IotEnv):
    """IotEnv with more stranger accounts, 16 more writable units and, when
    the map schema has it, a small per-request control write bound."""

    def __init__(self):
        super().__init__(extra_units=extra_units_yaml(),
                         sim_units="1-3,%d-%d" % (EXTRA_IDS[0], EXTRA_IDS[-1]))
        self.bound_key = None

    def _map_text(self, pwfile, bound_line):
        text = ic.MAP.format(port=self.sim_port, interval=self.interval,
                             extra_units=self.extra_units)
        return text + XMPP_SECTION.format(
            jid=self.srv.jid("gw"), pwfile=pwfile, port=self.srv.c2s_port,
            ca=self.srv.ca_file, viewer=self.srv.jid("viewer"),
            ops=self.srv.jid("ops"), bound=bound_line)

    def _probe_bound(self, pwfile):
        """The first BOUND_KEYS name the map schema accepts, or None."""
        probe = os.path.join(self.dir, "probe.yaml")
        for key in BOUND_KEYS:
            with open(probe, "w") as f:
                f.write(self._map_text(pwfile, "  %s: %d\n" % (key, WRITE_BOUND)))
            r = subprocess.run([os.path.join(ic.BUILD, "fieldgate"), "check",
                                "-c", probe], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            if r.returncode == 0:
                return key
        return None

    def _start_sim(self, args):
        """iot_common.start_sim with the simulator's log (--verbose: one
        line per request) in sim.log, to count the writes on the bus."""
        self.sim_log = os.path.join(self.dir, "sim.log")
        err = open(self.sim_log, "w")
        proc = subprocess.Popen([os.path.join(ic.BUILD, "fieldgate-sim")] + args,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            proc.kill()
            proc.wait()
            raise RuntimeError("fieldgate-sim: no READY line: %r" % line)
        port = int([f for f in line.split() if f.startswith("tcp=")][0]
                   .rsplit(":", 1)[1])
        return proc, port

    def sim_text(self):
        with open(self.sim_log) as f:
            return f.read()

    def __enter__(self):
        try:
            self.srv = Prosody(users=USERS)
            self.srv.__enter__()
        except ProsodyUnavailable as e:
            unavailable("prosody (%s)" % e)
        try:
            self.dir = tempfile.mkdtemp(prefix="fg-hostile-")
            self.sim, self.sim_port = self._start_sim(
                ["--tcp", "127.0.0.1:0", "--units", self.sim_units,
                 "--dead", "3", "--verbose"])
            pwfile = os.path.join(self.dir, "gw.pw")
            with open(pwfile, "w") as f:
                f.write(USERS["gw"] + "\n")
            self.bound_key = self._probe_bound(pwfile)
            bound = ("  %s: %d\n" % (self.bound_key, WRITE_BOUND)
                     if self.bound_key else "")
            self.map = os.path.join(self.dir, "map.yaml")
            with open(self.map, "w") as f:
                f.write(self._map_text(pwfile, bound))
            self.gw_jid = self.srv.jid("gw") + "/gw"
            self.gw_err = open(os.path.join(self.dir, "fieldgate.log"), "w")
            self.gw = subprocess.Popen(
                [os.path.join(ic.BUILD, "fieldgate"), "run", "-c", self.map],
                stdout=subprocess.DEVNULL, stderr=self.gw_err)
            self.wait_online()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def run_all(self, coro, timeout):
        """Connects every CLIENTS account and awaits coro(*clients).  Only
        ops gets slixmpp's xep_0323 (for the owner readout): the IoT plugins
        would choke on answers to the raw requests of the others."""
        xc = ic.xc

        async def main():
            async with contextlib.AsyncExitStack() as stack:
                clients = []
                for u in CLIENTS:
                    plugins = xc.DEFAULT_PLUGINS + (("xep_0323",) if u == "ops" else ())
                    clients.append(await stack.enter_async_context(xc.connected(
                        self.srv, self.srv.jid(u), USERS[u], plugins=plugins)))
                return await coro(*clients)

        async def bounded():
            try:
                return await asyncio.wait_for(main(), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError("the client run did not finish within %d s"
                                   % timeout) from None

        return asyncio.run(bounded())


def modbus(port):
    try:
        from pymodbus.client import ModbusTcpClient
    except ImportError as e:
        unavailable("pymodbus (%s)" % e)
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    if not c.connect():
        raise RuntimeError("cannot connect to the simulator")
    return c


def registers(mb):
    """Every register the control cases may touch: m1 0..7, units 10..25."""
    regs = {1: tuple(holding(mb, 1, 0, 8))}
    for uid in EXTRA_IDS:
        regs[uid] = tuple(holding(mb, uid, 0, EXTRA_POINTS))
    return regs


async def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


WRITE_FCS = (5, 6, 15, 16)


def sim_writes(text):
    """(unit, function code, address) of every write request the simulator
    logged (--verbose) in text."""
    return [(int(u), int(fc), int(a)) for u, fc, a in re.findall(
        r"sim: \S+ unit (\d+) fc (\d+) addr (\d+)", text) if int(fc) in WRITE_FCS]


def lines_with(text, needle):
    return [ln for ln in text.split("\n") if needle in ln]


def session_events(text):
    """(logins, drops, bad XML) counted in fieldgate's log, area "xmpp"
    (xmpp/xs_conn.c): "online as" is logged by go_online for every login
    and every resumption, "connection lost"/"offline (" by drop()."""
    return (len(re.findall(r" xmpp: online as \S+", text)),
            len(re.findall(r" xmpp: (connection lost|offline \()", text)),
            len(re.findall(r" xmpp: bad XML from server", text)))


def main():
    with HostileEnv() as env:
        mb = modbus(env.sim_port)
        gw = env.gw_jid
        dom = env.srv.domain
        log("write bound key:", env.bound_key or
            "(none accepted by the map schema: relying on the default bound)")
        st = {}

        async def ping(c, timeout=5.0):
            iid = hs.new_id("ping")
            return await hs.raw_request(c, hs.ping_iq(gw, iid), iid, timeout)

        async def request(c, build, timeout=10.0, **kw):
            iid = hs.new_id("rq")
            return await hs.raw_request(c, build(gw, iid, **kw), iid, timeout)

        async def logged(needle, since=0, timeout=3.0):
            return await wait_until(
                lambda: needle in env.gw_log()[since:], timeout)

        async def body(ops, viewer, evil, stranger, mallory, trudy, eve):
            # ---- 6. log injection (first requests of their senders) ---------
            x = await request(ops, hs.ctl_form_set_iq, nodes=["m1"], fields=[
                ("hr0", "2\n<3>%s-form line\r<0>%s-cr line" % (FORGED, FORGED))])
            check("injection: form value with a newline refused (FormError)",
                  iq_type(x) == "error" and response_code(x) == "FormError",
                  show(x))
            x = await request(ops, hs.ctl_set_iq, nodes=["m1"], params=[
                ("int", "hr0", "1\n<0>%s-value line" % FORGED)])
            check("injection: value with &#10; refused", iq_type(x) == "error",
                  show(x))
            x = await request(ops, hs.ctl_set_iq, nodes=["m1"], params=[
                ("int", "hr0\n<0>%s-param line" % FORGED, "1")])
            check("injection: parameter name with &#10; refused (NotFound)",
                  iq_type(x) == "error" and response_code(x) == "NotFound",
                  show(x))
            ops.send_raw(hs.ctl_form_message(gw, ["m1"], [
                ("hr0", "3\n<0>%s-msgform line" % FORGED)]))
            ops.send_raw(hs.ctl_message(gw, ["m1\n<0>%s-node line" % FORGED],
                                        [("int", "hr0", "3")]))
            await ping(ops)
            x = await request(viewer, hs.readout_iq, seqnr="5",
                              nodes=["m1\n<0>%s-rnode line" % FORGED])
            check("injection: readout of a node id with &#10; refused "
                  "(item-not-found)", error_condition(x) == "item-not-found",
                  show(x))
            x = await request(eve, hs.readout_iq,
                              seqnr="7\n<0>%s-seqnr line" % FORGED)
            check("injection: stranger's seqnr with &#10; refused (forbidden)",
                  error_condition(x) == "forbidden", show(x))
            check("audit: a stranger's refused readout is logged",
                  await logged("eve@" + dom), "no line naming eve@")

            # ---- audit: first refusal of each kind, each its own sender ----
            x = await request(mallory, hs.ctl_set_iq, nodes=["m1"],
                              params=[("int", "hr0", "1")])
            check("stranger control iq: forbidden / InsufficientPrivileges",
                  error_condition(x) == "forbidden"
                  and response_code(x) == "InsufficientPrivileges", show(x))
            check("audit: a stranger's refused control iq is logged",
                  await logged("mallory@" + dom), "no line naming mallory@")
            x = await request(trudy, hs.conc_iq)
            check("stranger XEP-0326 getAllNodes: forbidden",
                  error_condition(x) == "forbidden", show(x))
            check("audit: a stranger's refused XEP-0326 query is logged",
                  await logged("trudy@" + dom), "no line naming trudy@")
            stranger.send_raw(hs.ctl_message(gw, ["m1"], [("int", "hr0", "1")]))
            await ping(stranger)
            check("audit: a stranger's refused control message is logged",
                  await logged("stranger@" + dom), "no line naming stranger@")

            # ---- 7. cancel by a stranger -----------------------------------
            x = await request(stranger, hs.cancel_iq, seqnr="1")
            check("7. stranger's readout cancel: forbidden",
                  error_condition(x) == "forbidden", show(x))

            # ---- 8. control messages with a <delay> -------------------------
            hr0_0, sp_0 = holding(mb, 1, 0)[0], holding(mb, 1, 5)[0]
            ops.send_raw(hs.ctl_message(gw, ["m1"], [("int", "hr0", "4242")],
                                        delays=[(dom, hs.stamp(3600))]))
            ops.send_raw(hs.ctl_message(
                gw, ["m1"], [("double", "sp", "43.4")],
                delays=[(ops.boundjid.full, hs.stamp(0)), (dom, hs.stamp(-600))]))
            c0 = coil(mb, 1, 0)
            ops.send_raw(hs.ctl_message(gw, ["m1"], [
                ("boolean", "c0", "false" if c0 else "true")]))
            marker = await wait_until(lambda: coil(mb, 1, 0) != c0, 10)
            check("8. a control message after the delayed ones applied", marker)
            await asyncio.sleep(0.2)
            hr0_1, sp_1 = holding(mb, 1, 0)[0], holding(mb, 1, 5)[0]
            check("8. control message with a <delay> stamp in the future "
                  "refused", hr0_1 == hr0_0, "hr0 %d -> %d" % (hr0_0, hr0_1))
            check("8b. fresh client <delay> before a stale server <delay>: "
                  "refused (the server's stamp counts)", sp_1 == sp_0,
                  "sp raw %d -> %d" % (sp_0, sp_1))

            # ---- 5. control amplification ----------------------------------
            nodes = ["u%d" % u for u in EXTRA_IDS] * 5
            params = [("int", "w%d" % a, "7") for a in range(EXTRA_POINTS)] * 2
            before = registers(mb)
            sim_mark = len(env.sim_text())
            x = await request(stranger, hs.ctl_set_iq, nodes=nodes,
                              params=params)
            check("5. amplification set by a stranger: forbidden",
                  error_condition(x) == "forbidden"
                  and response_code(x) == "InsufficientPrivileges", show(x))
            check("5. nothing written for the stranger",
                  registers(mb) == before
                  and not sim_writes(env.sim_text()[sim_mark:]))
            mark, sim_mark = len(env.gw_log()), len(env.sim_text())
            t0 = time.monotonic()
            x = await request(ops, hs.ctl_set_iq, nodes=nodes, params=params,
                              timeout=40)
            log("amplification answer after %.1f s: %s"
                % (time.monotonic() - t0, show(x, 300)))
            check("5. amplification set (80 nodes x 16 params, 128 distinct "
                  "writes) by the controller: refused", iq_type(x) == "error",
                  show(x))
            after = registers(mb)
            check("5. nothing written for the controller (pymodbus)",
                  after == before,
                  {u: (before[u], after[u]) for u in before if before[u] != after[u]})
            writes = len(re.findall(r"control by ops@\S+: u\d+\.w\d+ ",
                                    env.gw_log()[mark:]))
            bus = sim_writes(env.sim_text()[sim_mark:])
            check("5. no write request reached the bus (simulator's log) "
                  "and none was logged", writes == 0 and not bus,
                  "%d write requests on the bus, %d write log lines"
                  % (len(bus), writes))
            # The same by message: never answered; a marker write after it.
            before2 = registers(mb)
            sim_mark = len(env.sim_text())
            ops.send_raw(hs.ctl_message(gw, nodes, [
                ("int", "w%d" % a, "9") for a in range(EXTRA_POINTS)] * 2))
            c0 = coil(mb, 1, 0)
            ops.send_raw(hs.ctl_message(gw, ["m1"], [
                ("boolean", "c0", "false" if c0 else "true")]))
            await wait_until(lambda: coil(mb, 1, 0) != c0, 40)
            await asyncio.sleep(0.2)
            bus = [w for w in sim_writes(env.sim_text()[sim_mark:]) if w[0] != 1]
            check("5. amplification by message: nothing written",
                  registers(mb) == before2 and not bus,
                  "%d write requests on the bus" % len(bus))
            # Duplicated nodes never multiply writes (refused or de-duplicated).
            sim_mark = len(env.sim_text())
            x = await request(ops, hs.ctl_set_iq, nodes=["m1"] * 100,
                              params=[("int", "hr0", "777")], timeout=20)
            await asyncio.sleep(0.2)
            bus = [w for w in sim_writes(env.sim_text()[sim_mark:])
                   if w[0] == 1 and w[2] == 0]
            check("5. m1 named 100 times: at most one write on the bus",
                  len(bus) <= 1, "%d write requests to m1 address 0; answer %s"
                  % (len(bus), show(x, 200)))
            check("5. m1 named 100 times: hr0 is 777 (written once) or "
                  "unchanged (refused)", holding(mb, 1, 0)[0] == 777
                  if iq_type(x) == "result" else holding(mb, 1, 0)[0] != 777,
                  show(x, 200))
            # Within the bound: still served.
            sim_mark = len(env.sim_text())
            x = await request(ops, hs.ctl_set_iq, nodes=["u10"], params=[
                ("int", "w0", "11"), ("int", "w1", "12")])
            check("5. a set within the bound: OK and written",
                  response_code(x) == "OK"
                  and tuple(holding(mb, 10, 0, 2)) == (11, 12), show(x))
            await asyncio.sleep(0.2)
            bus = [w for w in sim_writes(env.sim_text()[sim_mark:]) if w[0] == 10]
            check("the simulator's log shows that set's 2 writes (the counts "
                  "above are not vacuous)", len(bus) == 2, bus)

            # ---- audit: a burst of refused requests from one stranger ------
            futs, sent = [], 0
            for i in range(100):
                iid = hs.new_id("b")
                futs.append(hs.expect_stanza_id(stranger, iid))
                stranger.send_raw(hs.ctl_set_iq(gw, iid, ["m1"],
                                                [("int", "hr0", str(i))]))
                stranger.send_raw(hs.ctl_message(gw, ["m1"],
                                                 [("int", "hr0", str(i))]))
                sent += 2
            for i in range(50):
                iid = hs.new_id("b")
                futs.append(hs.expect_stanza_id(stranger, iid))
                stranger.send_raw(hs.conc_iq(gw, iid))
                iid = hs.new_id("b")
                futs.append(hs.expect_stanza_id(stranger, iid))
                stranger.send_raw(hs.readout_iq(gw, iid, seqnr=str(100 + i)))
                sent += 2
            done, pending = await asyncio.wait(futs, timeout=30)
            for f in pending:
                f.cancel()
            errors = sum(1 for f in done if iq_type(f.result()) == "error")
            check("burst: %d refused requests, every iq answered with an error"
                  % sent, errors == len(futs),
                  "%d of %d" % (errors, len(futs)))
            st["burst_sent"] = sent

            # ---- 1-4. parser limits, from evil ------------------------------
            limit = hs.prosody_stanza_limit(env.srv.config_file)
            wide = hs.wide_message(gw)
            log("Prosody c2s_stanza_size_limit %d; 40,000 children: %d bytes"
                % (limit, len(wide.encode())))
            check("the 40,000-children and the 5,000-long-names stanzas fit "
                  "Prosody's limit",
                  len(hs.wide_iq(gw, "x" * 12).encode()) < limit - 4096
                  and len(hs.long_names_iq(gw, "x" * 12).encode()) < limit - 4096)
            st["parse_mark"] = len(env.gw_log())
            shapes = [
                ("1. message nested 70 deep", lambda i: hs.deep_message(gw), False),
                ("2. iq get with 70 attributes", lambda i: hs.many_attrs_iq(gw, i), True),
                ("2b. iq get whose child has 70 attributes",
                 lambda i: hs.many_attrs_child_iq(gw, i), True),
                ("2c. iq get whose child nests 70 deep",
                 lambda i: hs.deep_iq(gw, i), True),
                ("3. message with 40,000 empty children",
                 lambda i: wide, False),
                ("3b. iq get with 40,000 empty children",
                 lambda i: hs.wide_iq(gw, i), True),
                ("3c. iq get of ~215 KB on the wire (5,000 elements with "
                 "40-char names)", lambda i: hs.long_names_iq(gw, i), True),
                ("4. 12 messages with 1,000 new element names each",
                 lambda i: "".join(hs.names_message(gw, b) for b in range(12)),
                 False),
            ]
            for name, build, is_iq in shapes:
                before_ev = session_events(env.gw_log())
                iid = hs.new_id("shape")
                if is_iq:
                    x = await hs.raw_request(evil, build(iid), iid, 10)
                else:
                    evil.send_raw(build(iid))
                p = await ping(evil)
                after_ev = session_events(env.gw_log())
                kept = after_ev[1:] == before_ev[1:] and after_ev[0] == 1
                if is_iq:
                    log("  %s: answer %s/%s" % (name, iq_type(x), error_condition(x)))
                    # Prosody answers for an offline gateway too: only an
                    # error while the session stayed up is the gateway's.
                    check("%s: answered with an iq error by the gateway" % name,
                          iq_type(x) == "error" and kept
                          and iq_type(p) == "result", show(x, 300))
                if name.startswith("3c."):
                    check("3c. the server accepted it, so the gateway does not "
                          "refuse it for its size (counted as bytes on the wire): "
                          "served (service-unavailable), not policy-violation",
                          iq_type(x) == "error"
                          and error_condition(x) != "policy-violation",
                          show(x, 300))
                check("%s: the gateway still answers (ping result)" % name,
                      iq_type(p) == "result", show(p, 300))
                check("%s: session kept (no drop, no stream error)" % name,
                      kept, "logins/drops/bad XML %s -> %s" % (before_ev, after_ev))

            # ---- 1e. a small stanza that Prosody inflates ------------------
            # From eve, whose drops were not logged yet (one line per sender
            # per minute), so that the drop line shows the size received.
            infl = hs.inflating_message(gw)
            check("1e. the inflating message is small as sent (%d bytes, "
                  "Prosody's limit %d)" % (len(infl.encode()), limit),
                  len(infl.encode()) < 16384 < limit)
            mark = len(env.gw_log())
            before_ev = session_events(env.gw_log())
            eve.send_raw(infl)
            p = await ping(eve, timeout=15)
            await logged("dropped a <message/> from eve@", since=mark)
            after_ev = session_events(env.gw_log())
            kept = after_ev[1:] == before_ev[1:] and after_ev[0] == 1
            m = re.search(r"dropped a <message/> from eve@[^:]*: stanza of "
                          r"(\d+) bytes exceeds (\d+)", env.gw_log()[mark:])
            got = int(m.group(1)) if m else 0
            check("1e. Prosody forwarded it inflated past 8 x the gateway's "
                  "stanza limit, and the gateway dropped it (logged)",
                  m is not None and got > 8 * int(m.group(2)),
                  "received %d bytes" % got)
            check("1e. inflated message: the gateway still answers (ping "
                  "result)", iq_type(p) == "result", show(p, 300))
            check("1e. inflated message: session kept (no drop, no stream "
                  "error)", kept,
                  "logins/drops/bad XML %s -> %s" % (before_ev, after_ev))

            # ---- after the hostile shapes: the owner's readout --------------
            await asyncio.sleep(1.0)  # a drop and a reconnect would show now
            t0 = time.monotonic()
            try:
                ev, data, _ = await readout(ops, gw, nodes=["m1"],
                                            flags={"momentary": "true"},
                                            timeout=5)
            except asyncio.TimeoutError:
                ev, data = ["timeout"], {}
            dt = time.monotonic() - t0
            check("owner readout after the hostile shapes: done with m1's "
                  "fields within 2 s",
                  "done" in ev and "hr0" in data.get("m1", {}) and dt <= 2.0,
                  "%.2f s, events %s, failures %s" % (dt, ev, data.get("_failures")))
            st["readout_s"] = dt

        try:
            env.run_all(body, timeout=240)
        except Exception as e:  # a hung or broken client run: report, go on
            check("client run completed", False, "%s: %s" % (type(e).__name__, e))
        mb.close()

        text = env.gw_log()
        logins, drops, bad = session_events(text)
        check("the gateway did not reconnect: one \"online as\" line, no drop",
              logins == 1 and drops == 0 and bad == 0,
              "logins %d, drops %d, bad XML %d" % (logins, drops, bad))
        check("the gateway is still running", env.gw.poll() is None,
              env.gw.returncode)

        # Audit lines: present and bounded.
        if "parse_mark" in st:
            evil_lines = lines_with(text[st["parse_mark"]:], "evil@" + dom)
            check("audit: stanzas dropped at the parser limits are logged for "
                  "their sender", len(evil_lines) >= 1, "no line naming evil@")
            check("audit: parser-limit drops logged with rate limiting "
                  "(<= 5 lines for 18 stanzas)", len(evil_lines) <= 5,
                  "%d lines" % len(evil_lines))
        strg = lines_with(text, "stranger@" + dom)
        check("audit: %s refused requests of one stranger give a bounded "
              "number of log lines (1..30)" % st.get("burst_sent", "?"),
              1 <= len(strg) <= 30, "%d lines" % len(strg))

        # Log injection.
        lines = text.split("\n")
        forged = [ln for ln in lines if ln and not LOG_LINE.match(ln)
                  and (FORGED in ln or re.match(r"<\d>", ln))]
        check("injection: no log line starts with injected text", not forged,
              forged[:5])
        check("injection: no raw CR in the log", "\r" not in text)
        reached = [ln for ln in lines if FORGED + "-form" in ln]
        check("injection: the injected form value reached the log, escaped "
              "on one line", reached and all(LOG_LINE.match(ln) for ln in reached),
              reached[:2])
        for ln in [ln for ln in lines if FORGED in ln][:8]:
            log("  injected text as logged:", ln[:200])

        check("no sanitizer report", "AddressSanitizer" not in text
              and "runtime error" not in text
              and "LeakSanitizer" not in text)
        if check.failures:
            log("--- fieldgate log (tail) ---")
            log(text[-8000:])
            log("--- prosody log (tail) ---")
            log(env.srv.log_tail(30))
    check("fieldgate exited 0", env.gw_rc == 0, env.gw_rc)
    check.exit()


if __name__ == "__main__":
    main()
