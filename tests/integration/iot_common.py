"""Shared setup of the IoT integration tests (test_iot_*.py) and bench/readout:
a private Prosody, fieldgate-sim on a free port, and `fieldgate run` with an
xmpp: and access: section, plus slixmpp helpers for XEP-0323/0325 sessions
and raw XEP-0326 iqs.

    with IotEnv() as env:
        env.run(coro)            # coro(client) as the controller account
        env.run(coro, "viewer")  # another account

Accounts: gw (the gateway, resource "gw"), ops (controller), viewer
(reader), evil (no access).  Map (tests below assert these values, which
come from fieldgate-sim's default contents: register = unit*1000 + address,
coils 1 at even addresses):
  link plant: m1 (unit 1), m2 (unit 2), m3 (unit 3, dead in the simulator)
  m1: hr0 (holding 0, uint16, writable) = 1000, sp (holding 5, int16,
      scale 0.1, 1 decimal, unit C, writable, 0..500) = 100.5,
      c0 (coil 0, writable) = true, ir1 (input 1) = 1001,
      mode (holding 7, uint16, writable, enum 0 off / 1 auto / 1007 x)
  m2: hr0 = 2000, c1 (coil 1) = false
  m3: hr0 (never answers; poll group "fast", 100 ms, so its values are
      never fresh and every readout of m3 waits on a bus read: queued)
"""
import asyncio
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("FG_SOURCE_DIR", os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("FG_BUILD_DIR", os.path.join(SOURCE, "build"))
sys.path.insert(0, os.path.join(SOURCE, "tests"))

from fixtures.prosody import Prosody, ProsodyUnavailable  # noqa: E402
from fixtures import xmppclient as xc  # noqa: E402

NS_SD = "urn:xmpp:iot:sensordata"
NS_CTL = "urn:xmpp:iot:control"
NS_CONC = "urn:xmpp:iot:concentrators"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

USERS = {"gw": "gw-pw", "ops": "ops-pw", "viewer": "viewer-pw",
         "evil": "evil-pw"}

MAP = """\
poll_groups:
  - {{name: default, interval: {interval}}}
  - {{name: fast, interval: 100ms}}
links:
  - name: plant
    type: tcp
    host: 127.0.0.1
    port: {port}
    timeout: 300ms
    units:
      - name: m1
        id: 1
        points:
          - {{name: hr0, table: holding, address: 0, type: uint16, writable: true}}
          - {{name: sp, table: holding, address: 5, type: int16, scale: 0.1,
             decimals: 1, unit: C, writable: true, min: 0, max: 500}}
          - {{name: mode, table: holding, address: 7, type: uint16,
             writable: true, enum: {{0: "off", 1: auto, 1007: x}}}}
          - {{name: c0, table: coil, address: 0, writable: true}}
          - {{name: ir1, table: input, address: 1, type: uint16}}
{extra_units}
      - name: m2
        id: 2
        points:
          - {{name: hr0, table: holding, address: 0, type: uint16}}
          - {{name: c1, table: coil, address: 1}}
      - name: m3
        id: 3
        poll: fast
        retries: 0
        timeout: 500ms
        points:
          - {{name: hr0, table: holding, address: 0, type: uint16}}
"""

XMPP_SECTION = """\
xmpp:
  jid: {jid}
  password_file: {pwfile}
  resource: gw
  host: 127.0.0.1
  port: {port}
  tls: starttls
  ca_file: {ca}
access:
  readers: [{viewer}]
  controllers: [{ops}]
store:
  history: 20
"""


def log(*a):
    print(*a, flush=True)


def start_sim(args):
    proc = subprocess.Popen([os.path.join(BUILD, "fieldgate-sim")] + args,
                            stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError("fieldgate-sim: no READY line: %r" % line)
    port = int([f for f in line.split() if f.startswith("tcp=")][0]
               .rsplit(":", 1)[1])
    return proc, port


def stop(proc, timeout=10):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode if proc else None


class IotEnv:
    """Prosody + fieldgate-sim + fieldgate run.  extra_units: YAML text of
    more units on link plant (bench: 100 units); sim_units: --units list."""

    def __init__(self, extra_units="", sim_units="1-3", interval="1s",
                 gw_log_level=None, prosody_global=None):
        self.extra_units = extra_units
        self.sim_units = sim_units
        self.interval = interval
        self.gw_log_level = gw_log_level
        self.prosody_global = prosody_global or ""
        self.srv = self.sim = self.gw = None
        self.dir = None

    def __enter__(self):
        try:
            self.srv = Prosody(users=USERS, extra_global=self.prosody_global)
            self.srv.__enter__()
        except ProsodyUnavailable as e:
            log("SKIP: prosody unavailable:", e)
            sys.exit(77)
        self.dir = tempfile.mkdtemp(prefix="fg-iot-")
        self.sim, self.sim_port = start_sim(
            ["--tcp", "127.0.0.1:0", "--units", self.sim_units, "--dead", "3"])
        pwfile = os.path.join(self.dir, "gw.pw")
        with open(pwfile, "w") as f:
            f.write(USERS["gw"] + "\n")
        self.map = os.path.join(self.dir, "map.yaml")
        text = MAP.format(port=self.sim_port, interval=self.interval,
                          extra_units=self.extra_units)
        text += XMPP_SECTION.format(
            jid=self.srv.jid("gw"), pwfile=pwfile, port=self.srv.c2s_port,
            ca=self.srv.ca_file, viewer=self.srv.jid("viewer"),
            ops=self.srv.jid("ops"))
        with open(self.map, "w") as f:
            f.write(text)
        self.gw_jid = self.srv.jid("gw") + "/gw"
        cmd = [os.path.join(BUILD, "fieldgate"), "run", "-c", self.map]
        if self.gw_log_level:
            cmd[1:1] = ["--log-level", self.gw_log_level]
        self.gw_err = open(os.path.join(self.dir, "fieldgate.log"), "w")
        self.gw = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                   stderr=self.gw_err)
        self.wait_online()
        return self

    def wait_online(self, timeout=20):
        """Until the gateway answers disco#info with the IoT features."""
        async def probe(c):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.gw.poll() is not None:
                    raise RuntimeError("fieldgate exited: %s" % self.gw.returncode)
                try:
                    info = await c["xep_0030"].get_info(jid=self.gw_jid, timeout=2)
                    feats = info["disco_info"]["features"]
                    if NS_SD in feats:
                        return feats
                except Exception:  # not online yet (service-unavailable, timeout)
                    pass
                await asyncio.sleep(0.2)
            raise RuntimeError("the gateway did not come online")
        self.features = self.run(probe, "viewer")
        log("gateway online; features:", sorted(self.features))

    def run(self, coro, user="ops", timeout=60, **kw):
        plugins = kw.pop("plugins", xc.DEFAULT_PLUGINS + xc.IOT_PLUGINS)
        return xc.run_client(self.srv, self.srv.jid(user), USERS[user], coro,
                             timeout=timeout, plugins=plugins, **kw)

    def run_many(self, users, coro, timeout=60):
        return xc.run_clients(
            self.srv, [(self.srv.jid(u), USERS[u]) for u in users], coro,
            timeout=timeout, plugins=xc.DEFAULT_PLUGINS + xc.IOT_PLUGINS)

    def gw_log(self):
        if not self.gw_err.closed:
            self.gw_err.flush()
        with open(os.path.join(self.dir, "fieldgate.log")) as f:
            return f.read()

    def __exit__(self, *exc):
        rc = None
        try:
            rc = stop(self.gw)
            if self.gw_err:
                self.gw_err.close()
            stop(self.sim)
            if exc[0] is not None or rc not in (0, None):
                log("fieldgate exit status:", rc)
                log("--- fieldgate log (tail) ---")
                log(self.gw_log()[-6000:])
            elif not os.environ.get("FG_KEEP_TMP"):
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            self.gw_rc = rc
            self.srv.__exit__(*exc)
        return False


# ---- slixmpp helpers ---------------------------------------------------------

async def readout(client, gw_jid, nodes=None, fields=None, flags=None,
                  timeout=15):
    """A XEP-0323 readout through slixmpp's own xep_0323 client.  Returns
    (events, data): events are the callback results in order ('accepted',
    'queued', 'started', 'fields', 'done', 'failure', 'rejected'); data maps
    nodeId -> {field name: field dict}; failures in data['_failures'] as
    (nodeId, error_msg); a reject text in data['_rejected']."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    events, data = [], {"_failures": []}

    def cb(from_jid, result, nodeId=None, timestamp=None, fields=None,
           error_msg=None):
        events.append(result)
        if result == "fields":
            node = data.setdefault(nodeId, {})
            for f in fields:
                f = dict(f)
                f["timestamp"] = timestamp
                node[f["name"]] = f
        elif result == "failure":
            data["_failures"].append((nodeId, error_msg))
        elif result == "rejected":
            data["_rejected"] = error_msg
        if result in ("done", "failure", "rejected") and not fut.done():
            fut.set_result(None)

    session = client["xep_0323"].request_data(
        client.boundjid.full, gw_jid, cb, nodeIds=nodes, fields=fields,
        flags=flags)
    await asyncio.wait_for(fut, timeout)
    return events, data, session


async def control(client, gw_jid, fields, nodes, timeout=15):
    """XEP-0325 set through slixmpp's xep_0325: (result, error_msg)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def cb(from_jid, result, nodeIds=None, fields=None, error_msg=None):
        if not fut.done():
            fut.set_result((result, error_msg))

    client["xep_0325"].set_request(client.boundjid.full, gw_jid, cb, fields,
                                   nodeIds=nodes)
    return await asyncio.wait_for(fut, timeout)


async def raw_iq(client, gw_jid, xml, itype="get", timeout=10):
    """Sends an iq with the given child; returns (type, iq ElementTree
    element) for a result or an error."""
    from slixmpp.exceptions import IqError
    iq = client.Iq()
    iq["type"] = itype
    iq["to"] = gw_jid
    iq.append(ET.fromstring(xml))
    try:
        resp = await iq.send(timeout=timeout)
    except IqError as e:
        return "error", e.iq.xml
    return "result", resp.xml


def q(ns, name):
    return "{%s}%s" % (ns, name)


def modbus(port):
    """An independent Modbus client (pymodbus) on the simulator, or exit 77."""
    try:
        from pymodbus.client import ModbusTcpClient
    except ImportError:
        log("SKIP: pymodbus missing")
        sys.exit(77)
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    if not c.connect():
        raise RuntimeError("cannot connect to the simulator")
    return c


def holding(c, unit, address, count=1):
    r = c.read_holding_registers(address, count, slave=unit)
    if r.isError():
        raise RuntimeError("read holding %d@%d: %s" % (unit, address, r))
    return r.registers


def coil(c, unit, address):
    r = c.read_coils(address, 1, slave=unit)
    if r.isError():
        raise RuntimeError("read coil %d@%d: %s" % (unit, address, r))
    return bool(r.bits[0])


class Checks:
    def __init__(self):
        self.failures = []

    def __call__(self, name, cond, detail=""):
        if cond:
            log("ok:", name)
        else:
            log("FAIL:", name, detail)
            self.failures.append(name)

    def exit(self):
        if self.failures:
            log("FAILED:", ", ".join(self.failures))
            sys.exit(1)
        log("all passed")
        sys.exit(0)
