"""Shared setup of the PubSub event tests (test_events_*.py) and bench/events:
a private Prosody with its pubsub component, fieldgate-sim from a unit file,
`fieldgate run` with an xmpp:, access: and events: section, and a slixmpp
subscriber (xep_0060) that parses every notification's XEP-0323 payload.

    with EventsEnv(units_yaml, map_units, events_yaml) as env:
        env.run(coro, "viewer", plugins=SUB_PLUGINS)

Accounts: gw (the gateway, resource "gw"), viewer (an access: reader, the
subscriber), admin (a pubsub admin: owner of every node on the component,
reads node configurations back), evil (no access).
"""
import asyncio
import calendar
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iot_common import (SOURCE, BUILD, Checks, log, readout, stop,  # noqa: E402,F401
                        NS_SD)
from fixtures.prosody import Prosody, ProsodyUnavailable  # noqa: E402
from fixtures import xmppclient as xc  # noqa: E402

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"

USERS = {"gw": "gw-pw", "viewer": "viewer-pw", "admin": "admin-pw",
         "evil": "evil-pw"}

SUB_PLUGINS = xc.DEFAULT_PLUGINS + xc.PUBSUB_PLUGINS
PEP_PLUGINS = xc.DEFAULT_PLUGINS + xc.PEP_PLUGINS

# The values a quality problem shows as (docs/xmpp-iot.md: QoS flags).
BAD_FLAGS = ("missing", "error", "timeout", "offline", "invalid", "failure")

MAP_HEAD = """\
poll_groups:
  - {{name: default, interval: {interval}}}
links:
  - name: plant
    type: tcp
    host: 127.0.0.1
    port: {port}
    timeout: {timeout}
    units:
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
  reconnect_min: 300ms
  reconnect_max: 2s
access:
  readers: [{viewer}]
"""


class Sim:
    """fieldgate-sim with its stdout kept (READY, FAULTS lines)."""

    def __init__(self, args, port=0):
        self.args = args
        self.proc = None
        self.port = port

    def start(self):
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "fieldgate-sim"), "--tcp",
             "127.0.0.1:%d" % self.port] + self.args,
            stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.wait_line("READY ", 10)
        self.port = int([f for f in line.split() if f.startswith("tcp=")][0]
                        .rsplit(":", 1)[1])
        return self

    def wait_line(self, prefix, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                if line.startswith(prefix):
                    return line
        raise RuntimeError("fieldgate-sim: no %r line" % prefix)

    def faults(self, on):
        """SIGUSR2 (faults on: dead units dead) / SIGUSR1 (faults off)."""
        self.proc.send_signal(signal.SIGUSR2 if on else signal.SIGUSR1)
        self.wait_line("FAULTS %s" % ("on" if on else "off"))

    def stop(self):
        return stop(self.proc)


def write_registers(port, writes):
    """[(unit, address, value)] written with pymodbus (FC06); exit 77 if
    pymodbus is missing.  Returns the time after the last write."""
    try:
        from pymodbus.client import ModbusTcpClient
    except ImportError:
        log("SKIP: pymodbus missing")
        sys.exit(77)
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    if not c.connect():
        raise RuntimeError("cannot connect to the simulator")
    try:
        for unit, address, value in writes:
            r = c.write_register(address, value & 0xffff, slave=unit)
            if r.isError():
                raise RuntimeError("write %d@%d: %s" % (unit, address, r))
        return time.time()
    finally:
        c.close()


def read_holding(port, unit, address, count=1):
    from pymodbus.client import ModbusTcpClient
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    if not c.connect():
        raise RuntimeError("cannot connect to the simulator")
    try:
        r = c.read_holding_registers(address, count, slave=unit)
        if r.isError():
            raise RuntimeError("read %d@%d: %s" % (unit, address, r))
        return r.registers
    finally:
        c.close()


class EventsEnv:
    """Prosody (+ pubsub component) + fieldgate-sim + `fieldgate run` with an
    events: section.  units_yaml: the simulator's unit file; units: the
    map's unit list (YAML, indented 6); events: the events: section text
    (None: no section); pubsub_admins: user names."""

    def __init__(self, sim_file, units, events, interval="100ms",
                 timeout="250ms", pubsub_admins=("gw", "admin"),
                 prosody_global="", sim_args=(), gw_log_level="info",
                 start_gateway=True):
        self.sim_file, self.units, self.events = sim_file, units, events
        self.interval, self.timeout = interval, timeout
        self.pubsub_admin_users = list(pubsub_admins)
        self.prosody_global = prosody_global
        self.sim_args = list(sim_args)
        self.gw_log_level = gw_log_level
        self.start_gateway = start_gateway
        self.srv = self.sim = self.gw = None
        self.gw_err = None
        self.dir = None

    def __enter__(self):
        try:
            self.srv = Prosody(users=USERS, extra_global=self.prosody_global,
                               pubsub_admins=["%s@fieldgate.test" % u
                                              for u in self.pubsub_admin_users])
            self.srv.__enter__()
        except ProsodyUnavailable as e:
            log("SKIP: prosody unavailable:", e)
            sys.exit(77)
        self.dir = tempfile.mkdtemp(prefix="fg-events-")
        simfile = os.path.join(self.dir, "sim.yaml")
        with open(simfile, "w") as f:
            f.write(self.sim_file)
        self.sim = Sim(["--file", simfile] + self.sim_args).start()
        self.service = self.srv.pubsub_domain
        self.gw_bare = self.srv.jid("gw")
        self.gw_jid = self.gw_bare + "/gw"
        self.map = os.path.join(self.dir, "map.yaml")
        self.write_map(self.events)
        if self.start_gateway:
            self.start_gw()
        return self

    def map_text(self, events):
        pwfile = os.path.join(self.dir, "gw.pw")
        with open(pwfile, "w") as f:
            f.write(USERS["gw"] + "\n")
        text = MAP_HEAD.format(port=self.sim.port, interval=self.interval,
                               timeout=self.timeout) + self.units
        if not text.endswith("\n"):
            text += "\n"
        text += XMPP_SECTION.format(
            jid=self.gw_bare, pwfile=pwfile, port=self.srv.c2s_port,
            ca=self.srv.ca_file, viewer=self.srv.jid("viewer"))
        if events:
            text += events.format(service=self.service)
        return text

    def write_map(self, events):
        with open(self.map, "w") as f:
            f.write(self.map_text(events))

    def check_map(self):
        """`fieldgate check` of the map: (exit status, output)."""
        r = subprocess.run([os.path.join(BUILD, "fieldgate"), "check", "-c",
                            self.map], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        return r.returncode, r.stdout

    def start_gw(self):
        self.gw_err = open(os.path.join(self.dir, "fieldgate.log"), "w")
        cmd = [os.path.join(BUILD, "fieldgate"), "run", "--log-level",
               self.gw_log_level, "-c", self.map]
        self.gw = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                   stderr=self.gw_err)

    def sighup(self):
        self.gw.send_signal(signal.SIGHUP)

    def wait_log(self, needle, timeout=15, start=0):
        """Until the gateway's log (from offset start) contains needle;
        returns the line or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.gw_log()[start:]
            for line in text.splitlines():
                if needle in line:
                    return line
            if self.gw.poll() is not None:
                return None
            time.sleep(0.1)
        return None

    def wait_gw_online(self, timeout=20):
        """Until the gateway answers disco#info (as viewer)."""
        async def probe(c):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.gw.poll() is not None:
                    raise RuntimeError("fieldgate exited: %s" % self.gw.returncode)
                try:
                    await c["xep_0030"].get_info(jid=self.gw_jid, timeout=2)
                    return True
                except Exception:
                    await asyncio.sleep(0.2)
            raise RuntimeError("the gateway did not come online")
        return self.run(probe, "viewer")

    def node(self, unit, prefix):
        return prefix + unit

    def run(self, coro, user="viewer", timeout=60, **kw):
        kw.setdefault("plugins", SUB_PLUGINS + xc.IOT_PLUGINS)
        return xc.run_client(self.srv, self.srv.jid(user), USERS[user], coro,
                             timeout=timeout, **kw)

    def run_many(self, users, coro, timeout=60, **kw):
        kw.setdefault("plugins", SUB_PLUGINS + xc.IOT_PLUGINS)
        return xc.run_clients(
            self.srv, [(self.srv.jid(u), USERS[u]) for u in users], coro,
            timeout=timeout, **kw)

    def gw_log(self):
        if self.gw_err and not self.gw_err.closed:
            self.gw_err.flush()
        try:
            with open(os.path.join(self.dir, "fieldgate.log")) as f:
                return f.read()
        except OSError:
            return ""

    def __exit__(self, *exc):
        rc = None
        try:
            if self.gw:
                rc = stop(self.gw)
            if self.gw_err:
                self.gw_err.close()
            if self.sim:
                self.sim.stop()
            bad_exit = self.gw is not None and rc not in (0, None)
            if exc[0] is not None or bad_exit or os.environ.get("FG_EVENTS_LOG"):
                log("fieldgate exit status:", rc)
                log("--- fieldgate log (tail) ---")
                log(self.gw_log()[-8000:])
            if exc[0] is None and not bad_exit and not os.environ.get("FG_KEEP_TMP"):
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            self.gw_rc = rc
            self.srv.__exit__(*exc)
        return False


# ---- payload parsing ----------------------------------------------------------

def parse_time(text):
    """XEP-0082 dateTime ('2026-12-03T18:33:54.123Z', or an offset) -> epoch s."""
    t = text.strip()
    off = 0
    if t.endswith("Z"):
        t = t[:-1]
    elif len(t) > 6 and t[-6] in "+-" and t[-3] == ":":
        sign = 1 if t[-6] == "+" else -1
        off = sign * (int(t[-5:-3]) * 3600 + int(t[-2:]) * 60)
        t = t[:-6]
    frac = 0.0
    if "." in t:
        t, f = t.split(".", 1)
        frac = float("0." + f)
    return calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%S")) + frac - off


def parse_fields(elem):
    """A <fields xmlns='urn:xmpp:iot:sensordata'> element ->
    {nodeId: {field name: {'type', 'value', 'unit', 'flags', 'ts', 'tstext'}}}
    (ElementTree only).  The last timestamp wins for a name seen twice."""
    out = {}
    for node in elem.findall("{%s}node" % NS_SD):
        fields = out.setdefault(node.get("nodeId"), {})
        for ts in node.findall("{%s}timestamp" % NS_SD):
            stamp = ts.get("value")
            for f in ts:
                typ = f.tag.split("}", 1)[1]
                flags = {k for k, v in f.attrib.items() if v == "true"}
                fields[f.get("name")] = {
                    "type": typ, "value": f.get("value"),
                    "unit": f.get("unit"), "flags": flags,
                    "ts": parse_time(stamp) if stamp else None,
                    "tstext": stamp}
    return out


def parse_fields_slixmpp(elem):
    """The same through slixmpp 1.8.3's own xep_0323 stanza classes (its
    readout parser): {nodeId: {name: (typename, value, unit, flags)}}."""
    from slixmpp.plugins.xep_0323.stanza.sensordata import Fields
    out = {}
    st = Fields(xml=elem)
    for node in st["nodes"]:
        fields = out.setdefault(node["nodeId"], {})
        for ts in node["timestamps"]:
            for d in ts["datas"]:
                flags = {k for k, v in d._get_flags().items() if v == "true"}
                fields[d["name"]] = (d._get_typename(), d["value"],
                                     d["unit"] or None, flags)
    return out


class Event:
    """One item notification: node, item id, receive time, payload."""

    def __init__(self, node, item_id, recv, payload, source):
        self.node, self.item_id, self.recv = node, item_id, recv
        self.payload, self.source = payload, source
        self.fields = {}
        self.parse_error = None
        if payload is None or payload.tag != "{%s}fields" % NS_SD:
            self.parse_error = "payload is %s" % (
                None if payload is None else payload.tag)
            return
        try:
            self.fields = parse_fields(payload)
        except Exception as e:  # noqa: BLE001 - reported by the tests
            self.parse_error = "parse: %r" % e

    def points(self):
        """{name: field} of every node in the payload (one unit per node)."""
        out = {}
        for fields in self.fields.values():
            out.update(fields)
        return out

    def __repr__(self):
        return "<Event %s %s %.3f %s>" % (
            self.node, self.item_id, self.recv,
            {k: (v["value"], sorted(v["flags"])) for k, v in self.points().items()})


class Collector:
    """Records every PubSub item notification a client receives."""

    def __init__(self, client):
        self.client = client
        self.events = []
        self.waiters = []
        self._last = None
        client.add_event_handler("pubsub_publish", self._on_publish)

    def _on_publish(self, msg):
        if msg is self._last:  # slixmpp raises it once per item with msg
            return
        self._last = msg
        now = time.time()
        items = msg.xml.find("{%s}event/{%s}items" % (NS_EVENT, NS_EVENT))
        if items is None:
            return
        for item in items.findall("{%s}item" % NS_EVENT):
            payload = next(iter(item), None)
            ev = Event(items.get("node"), item.get("id"), now, payload,
                       msg["from"].bare)
            ev.to = str(msg["to"])
            self.events.append(ev)
        for w in list(self.waiters):
            w()

    def of(self, node, since=0.0):
        return [e for e in self.events if e.node == node and e.recv >= since]

    def unique(self):
        """The events once per (node, item id): Prosody's PEP sends a
        notification to the reader's bare JID (its presence subscription)
        and to its full JID (its +notify caps), both delivered to the one
        resource."""
        seen, out = set(), []
        for e in self.events:
            if (e.node, e.item_id) not in seen:
                seen.add((e.node, e.item_id))
                out.append(e)
        return out

    async def wait(self, pred, timeout=10.0):
        """Until pred(self) is true (checked on every notification)."""
        fut = asyncio.get_running_loop().create_future()

        def check():
            if not fut.done() and pred(self):
                fut.set_result(True)
        self.waiters.append(check)
        check()
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self.waiters.remove(check)

    def values(self, node, point, since=0.0):
        return [e.points()[point]["value"] for e in self.of(node, since)
                if point in e.points()]


# ---- pubsub helpers -------------------------------------------------------------

def form_values(iq_or_form):
    """{var: value} of the node configuration form in an owner configure answer."""
    form = iq_or_form["pubsub_owner"]["configure"]["form"]
    return {k: v for k, v in form.get_values().items()}


async def node_config(c, service, node, timeout=5):
    """The node's configuration (owner request), or None when it fails."""
    from slixmpp.exceptions import IqError, IqTimeout
    try:
        iq = await c["xep_0060"].get_node_config(service, node, timeout=timeout)
    except (IqError, IqTimeout):
        return None
    return form_values(iq)


async def wait_nodes(c, service, nodes, timeout=15, pred=None):
    """Until every node exists (owner config readable) and pred(node, config)
    holds.  Returns (ok, last): ok {node: True/False}, last {node: the last
    configuration read, or None}."""
    deadline = time.monotonic() + timeout
    ok = {n: False for n in nodes}
    last = {n: None for n in nodes}
    while True:
        for n in nodes:
            if ok[n]:
                continue
            cfg = await node_config(c, service, n)
            last[n] = cfg
            ok[n] = cfg is not None and (pred is None or pred(n, cfg))
        if all(ok.values()) or time.monotonic() > deadline:
            return ok, last
        await asyncio.sleep(0.2)


async def node_exists(c, service, node):
    """disco#items of the service lists the node (any account)."""
    from slixmpp.exceptions import IqError, IqTimeout
    try:
        r = await c["xep_0030"].get_items(jid=service, timeout=5)
    except (IqError, IqTimeout):
        return False
    return any(i[1] == node for i in r["disco_items"]["items"])


async def subscribe_all(c, service, nodes, timeout=15):
    """Subscribes c to every node, retrying while a node does not exist yet.
    Returns {node: subscription state or error condition}."""
    from slixmpp.exceptions import IqError, IqTimeout
    out = {}
    deadline = time.monotonic() + timeout
    for n in nodes:
        while True:
            try:
                r = await c["xep_0060"].subscribe(service, n, timeout=5)
                out[n] = r["pubsub"]["subscription"]["subscription"] or "subscribed"
                break
            except IqError as e:
                out[n] = e.condition
            except IqTimeout:
                out[n] = "timeout"
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    return out


async def create_node(c, service, node, config):
    """Creates a node with a node_config form from {var: value}."""
    form = c["xep_0004"].make_form(ftype="submit")
    for var, value in config.items():
        form.add_field(var=var, value=value)
    return await c["xep_0060"].create_node(service, node, config=form, timeout=5)


async def get_items(c, service, node, max_items=None):
    """[(item id, payload element)] of a node, oldest first as served."""
    from slixmpp.exceptions import IqError, IqTimeout
    try:
        r = await c["xep_0060"].get_items(service, node, max_items=max_items,
                                          timeout=5)
    except (IqError, IqTimeout) as e:
        return None, getattr(e, "condition", "timeout")
    out = []
    items = r.xml.find("{%s}pubsub/{%s}items" % (NS_PUBSUB, NS_PUBSUB))
    for item in ([] if items is None else items.findall("{%s}item" % NS_PUBSUB)):
        out.append((item.get("id"), next(iter(item), None)))
    return out, None


def cfg_bool(v):
    return str(v).lower() in ("1", "true")
