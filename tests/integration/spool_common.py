"""Shared setup of the store-and-forward tests with real peers
(test_spool_*.py, issue 10) and bench/spool_replay.

    env = SpoolEnv(sim_yaml, units_yaml, node_prefix, spool=..., ...)
    with env:
        sub = env.subscriber(nodes)        # a reconnecting slixmpp subscriber
        ...
        env.srv.stop(); ...; env.srv.start()
        sub.fetch()                        # node items (persist_items: true)
        items = sub.union()                # {node: {item id: Item}}

Peers: a private Prosody with its pubsub component (admins gw, admin),
fieldgate-sim from a unit file (optionally with --verbose: every request is
counted with its receive time, for "polling continued" checks), and
`fieldgate run` with xmpp: (short reconnect backoff), access: (reader
viewer), events: with `delivery: every` and `spool:`.

The subscriber runs slixmpp (xep_0060) on its own thread and event loop; it
reconnects by itself (a new client each time) whenever Prosody restarts,
records every item notification with its receive time, and fetches node
items on request.  Items are identified by their id (UNIT-SEQ, persistent
per unit): the union of notifications and retrievals is a map id -> Item.
"""
import asyncio
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iot_common import SOURCE, BUILD, Checks, log, stop, NS_SD  # noqa: E402,F401
from events_common import (parse_time, parse_fields, get_items,  # noqa: E402
                           subscribe_all, NS_EVENT)
from fixtures.prosody import Prosody, ProsodyUnavailable  # noqa: E402
from fixtures import xmppclient as xc  # noqa: E402

NS_DELAY = "urn:xmpp:delay"
USERS = {"gw": "gw-pw", "viewer": "viewer-pw", "admin": "admin-pw",
         "ops": "ops-pw"}
SUB_PLUGINS = xc.DEFAULT_PLUGINS + xc.PUBSUB_PLUGINS
# Debugging the harness against a tree without delivery: every (the map
# then has neither delivery: nor spool:).  Never set in CI.
HARNESS_ONLY = os.environ.get("FG_SPOOL_HARNESS_ONLY") == "1"
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ")

MAP = """\
poll_groups:
  - {{name: default, interval: {interval}}}
links:
  - name: plant
    type: tcp
    host: 127.0.0.1
    port: {port}
    timeout: {timeout}
    units:
{units}
xmpp:
  jid: {jid}
  password_file: {pwfile}
  resource: gw
  host: 127.0.0.1
  port: {xport}
  tls: starttls
  ca_file: {ca}
  reconnect_min: {rmin}
  reconnect_max: {rmax}
access:
  readers: [{viewer}]
  controllers: [{ops}]
events:
  service: {service}
  node_prefix: {prefix}
  node: {{max_items: {max_items}, persist_items: true}}
  delivery: {delivery}
{spool}"""


class SimCounted:
    """fieldgate-sim from a unit file.  With verbose=True its --verbose
    request log (stderr) is read by a thread: self.requests holds the
    receive time of every request line."""

    def __init__(self, sim_yaml_path, verbose=False, tick=10):
        self.args = ["--file", sim_yaml_path, "--tick", str(tick)]
        self.verbose = verbose
        self.requests = []
        self.proc = None
        self.port = None

    def start(self):
        args = [os.path.join(BUILD, "fieldgate-sim"), "--tcp", "127.0.0.1:0"]
        args += self.args + (["--verbose"] if self.verbose else [])
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if self.verbose else subprocess.DEVNULL,
            text=True, bufsize=1)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError("fieldgate-sim: no READY line: %r" % line)
        self.port = int([f for f in line.split() if f.startswith("tcp=")][0]
                        .rsplit(":", 1)[1])
        if self.verbose:
            threading.Thread(target=self._reader, daemon=True).start()
        return self

    def _reader(self):
        for line in self.proc.stderr:
            if "unit" in line and ("fc" in line.lower() or "read" in line.lower()):
                self.requests.append(time.time())

    def count(self, t0, t1):
        return sum(1 for t in list(self.requests) if t0 <= t < t1)

    def stop(self):
        return stop(self.proc)


class Item:
    """One PubSub item of the gateway: id UNIT-SEQ and its <fields> payload
    (sample: the points' values and reading time; XEP-0203 <delay> inside
    the payload when replayed) or a gap marker."""

    def __init__(self, node, item_id, payload, recv=None, source="notify"):
        self.node, self.id, self.payload = node, item_id, payload
        self.recv, self.source = recv, source
        unit, _, seq = (item_id or "").rpartition("-")
        self.unit = unit
        self.seq = int(seq) if seq.isdigit() else None
        self.values, self.ts, self.tstext = {}, None, None
        self.delay_stamp = self.delay_from = None
        self.gap = None  # {'count', 'from', 'to'} for a gap marker
        self.error = None
        if payload is None:
            self.error = "no payload"
            return
        d = payload.find(".//{%s}delay" % NS_DELAY)
        if d is None and payload.tag == "{%s}delay" % NS_DELAY:
            d = payload
        if d is not None:
            self.delay_from = d.get("from")
            try:
                self.delay_stamp = parse_time(d.get("stamp") or "")
            except ValueError:
                self.error = "bad delay stamp %r" % d.get("stamp")
        self.gap = parse_gap(payload)
        if self.gap is not None:
            return
        if payload.tag != "{%s}fields" % NS_SD:
            self.error = "payload is %s" % payload.tag
            return
        try:
            fields = parse_fields(payload)
        except Exception as e:  # noqa: BLE001
            self.error = "parse: %r" % e
            return
        stamps = set()
        for pts in fields.values():
            for name, f in pts.items():
                self.values[name] = f["value"]
                if f["ts"] is not None:
                    stamps.add(f["ts"])
                    self.tstext = f["tstext"]
        if stamps:
            self.ts = max(stamps)

    def value(self, name):
        v = self.values.get(name)
        return None if v is None else int(float(v))

    def key(self):
        """What must be equal when the same id is seen twice."""
        return (tuple(sorted(self.values.items())), self.tstext,
                None if self.gap is None else tuple(sorted(self.gap.items())))

    def __repr__(self):
        if self.gap is not None:
            return "<Item %s gap %s>" % (self.id, self.gap)
        return "<Item %s %s ts=%s delay=%s>" % (self.id, self.values,
                                               self.tstext, self.delay_stamp)


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def parse_gap(payload):
    """A gap marker (samples dropped by a spool bound) -> {'count', 'from',
    'to'} (epoch seconds), else None.  Accepts an element named gap anywhere
    in the payload (or the payload itself) with count and from/to (or
    start/end) attributes, or children of those names (docs/events.md)."""
    cand = None
    for el in payload.iter():
        if _local(el.tag).lower() == "gap":
            cand = el
            break
    if cand is None:
        return None
    attrs = {k.rsplit("}", 1)[-1].lower(): v for k, v in cand.attrib.items()}
    for child in cand:
        if child.text and child.text.strip():
            attrs.setdefault(_local(child.tag).lower(), child.text.strip())

    def pick(*names):
        for n in names:
            if n in attrs:
                return attrs[n]
        return None
    out = {"count": None, "from": None, "to": None, "raw": dict(attrs)}
    c = pick("count", "samples", "dropped", "lost", "n")
    if c is not None and str(c).isdigit():
        out["count"] = int(c)
    for key, names in (("from", ("from", "start", "first", "begin", "since")),
                       ("to", ("to", "end", "last", "until"))):
        v = pick(*names)
        if v is not None:
            try:
                out[key] = parse_time(v)
            except ValueError:
                pass
    out["raw"] = tuple(sorted(out["raw"].items()))
    return out


class Subscriber:
    """A reconnecting slixmpp subscriber (account `viewer`) on its own
    thread: notifications -> self.notes (Items with recv time), connect
    times -> self.connects."""

    def __init__(self, srv, service, nodes, user="viewer"):
        self.srv, self.service, self.nodes = srv, service, list(nodes)
        self.user = user
        self.notes = []
        self.fetched = []
        self.connects = []   # (time connected)
        self.subscribed = {}
        self.errors = []
        self.client = None
        self.loop = None
        self._stop = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)

    def start(self, timeout=30):
        self.thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("subscriber: not subscribed within %d s: %s"
                               % (timeout, self.errors[-3:]))
        return self

    def _main(self):
        asyncio.run(self._run())

    def _on_publish(self, msg):
        now = time.time()
        items = msg.xml.find("{%s}event/{%s}items" % (NS_EVENT, NS_EVENT))
        if items is None:
            return
        for item in items.findall("{%s}item" % NS_EVENT):
            self.notes.append(Item(items.get("node"), item.get("id"),
                                   next(iter(item), None), now, "notify"))

    async def _run(self):
        self.loop = asyncio.get_running_loop()
        self._stop = self.loop.create_future()
        first = True
        while not self._stop.done():
            if not await self._port_open():
                await asyncio.sleep(0.05)
                continue
            c = xc.make_client(self.srv, self.srv.jid(self.user),
                               USERS[self.user], plugins=SUB_PLUGINS)
            gone = self.loop.create_future()
            c.add_event_handler("pubsub_publish", self._on_publish)
            c.add_event_handler("disconnected",
                                lambda *_a, g=gone: g.done() or g.set_result(1))
            try:
                await xc.connect(c, timeout=5)
            except Exception as e:  # noqa: BLE001 - server down: retry
                self.errors.append(repr(e))
                await asyncio.sleep(0.05)
                continue
            self.client = c
            self.connects.append(time.time())
            if first:
                self.subscribed = await subscribe_all(c, self.service,
                                                      self.nodes, 20)
                first = False
                self._ready.set()
            await asyncio.wait([gone, self._stop],
                               return_when=asyncio.FIRST_COMPLETED)
            self.client = None
            if self._stop.done():
                await xc.disconnect(c)
                return

    async def _port_open(self):
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", self.srv.c2s_port), 1)
        except (OSError, asyncio.TimeoutError):
            return False
        w.close()
        return True

    async def _fetch(self, nodes):
        c = self.client
        n = 0
        for node in nodes:
            if c is None:
                raise RuntimeError("subscriber offline")
            items, err = await get_items(c, self.service, node)
            if err:
                raise RuntimeError("items of %s: %s" % (node, err))
            now = time.time()
            for iid, payload in items:
                self.fetched.append(Item(node, iid, payload, now, "fetch"))
                n += 1
        return n

    def fetch(self, nodes=None, timeout=20):
        """Fetches every item of nodes (default all), retrying while the
        subscriber is offline.  Returns the number of items read."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client is None:
                    raise RuntimeError("subscriber offline")
                fut = asyncio.run_coroutine_threadsafe(
                    self._fetch(nodes or self.nodes), self.loop)
                return fut.result(timeout)
            except Exception as e:  # noqa: BLE001
                if time.monotonic() > deadline:
                    raise RuntimeError("fetch failed: %r" % e)
                time.sleep(0.1)

    def stop(self):
        if self.loop and self._stop:
            self.loop.call_soon_threadsafe(
                lambda: self._stop.done() or self._stop.set_result(1))
        self.thread.join(10)

    def union(self):
        """{node: {item id: [Item, ...]}} of notifications and retrievals."""
        out = {}
        for it in list(self.notes) + list(self.fetched):
            out.setdefault(it.node, {}).setdefault(it.id, []).append(it)
        return out


class SpoolEnv:
    """Prosody (+ pubsub component) + fieldgate-sim + `fieldgate run` with
    events: delivery every and a spool directory under the test's temp dir
    (spool_yaml: the `spool:` lines, indented 2, formatted with {dir})."""

    def __init__(self, sim_yaml, units_yaml, prefix, interval="50ms",
                 timeout="250ms", spool_yaml="  spool: {{dir: {dir}}}\n",
                 delivery="every", max_items=256, sim_verbose=False,
                 rmin="200ms", rmax="1s", gw_log_level="info",
                 prosody_global="network_settings = { nagle = false }"):
        self.sim_yaml, self.units_yaml, self.prefix = sim_yaml, units_yaml, prefix
        self.interval, self.timeout = interval, timeout
        self.spool_yaml, self.delivery = spool_yaml, delivery
        self.max_items, self.sim_verbose = max_items, sim_verbose
        self.rmin, self.rmax = rmin, rmax
        self.gw_log_level = gw_log_level
        self.prosody_global = prosody_global
        self.srv = self.sim = self.gw = None
        self.gw_err = None
        self.gw_rc = None
        self.dir = None
        self.subs = []
        self.logs = []

    def __enter__(self):
        try:
            self.srv = Prosody(users=USERS, extra_global=self.prosody_global,
                               pubsub_admins=["gw@fieldgate.test",
                                              "admin@fieldgate.test"])
            self.srv.__enter__()
        except ProsodyUnavailable as e:
            log("SKIP: prosody unavailable:", e)
            sys.exit(77)
        self.dir = tempfile.mkdtemp(prefix="fg-spool-")
        self.spool_dir = os.path.join(self.dir, "spool")
        simfile = os.path.join(self.dir, "sim.yaml")
        with open(simfile, "w") as f:
            f.write(self.sim_yaml)
        self.sim = SimCounted(simfile, verbose=self.sim_verbose).start()
        self.service = self.srv.pubsub_domain
        self.gw_bare = self.srv.jid("gw")
        self.gw_jid = self.gw_bare + "/gw"
        self.map = os.path.join(self.dir, "map.yaml")
        self.write_map()
        return self

    def map_text(self, spool_yaml=None):
        pwfile = os.path.join(self.dir, "gw.pw")
        with open(pwfile, "w") as f:
            f.write(USERS["gw"] + "\n")
        spool = (self.spool_yaml if spool_yaml is None else spool_yaml)
        return MAP.format(
            interval=self.interval, port=self.sim.port, timeout=self.timeout,
            units=self.units_yaml.rstrip("\n"), jid=self.gw_bare, pwfile=pwfile,
            xport=self.srv.c2s_port, ca=self.srv.ca_file, rmin=self.rmin,
            rmax=self.rmax, viewer=self.srv.jid("viewer"),
            ops=self.srv.jid("ops"), service=self.service, prefix=self.prefix,
            max_items=self.max_items, delivery=self.delivery,
            spool=spool.format(dir=self.spool_dir)) if not HARNESS_ONLY else \
            re.sub(r"(?m)^  (delivery|spool):.*\n", "", MAP.format(
                interval=self.interval, port=self.sim.port,
                timeout=self.timeout, units=self.units_yaml.rstrip("\n"),
                jid=self.gw_bare, pwfile=pwfile, xport=self.srv.c2s_port,
                ca=self.srv.ca_file, rmin=self.rmin, rmax=self.rmax,
                viewer=self.srv.jid("viewer"), ops=self.srv.jid("ops"),
                service=self.service, prefix=self.prefix,
                max_items=self.max_items, delivery="", spool="  spool: x\n"))

    def write_map(self, spool_yaml=None):
        with open(self.map, "w") as f:
            f.write(self.map_text(spool_yaml))

    def check_map(self):
        r = subprocess.run([os.path.join(BUILD, "fieldgate"), "check", "-c",
                            self.map], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        return r.returncode, r.stdout

    def start_gw(self):
        """Starts `fieldgate run` (a new log file per start)."""
        path = os.path.join(self.dir, "fieldgate-%d.log" % len(self.logs))
        self.logs.append(path)
        self.gw_err = open(path, "w")
        self.gw = subprocess.Popen(
            [os.path.join(BUILD, "fieldgate"), "run", "--log-level",
             self.gw_log_level, "-c", self.map],
            stdout=subprocess.DEVNULL, stderr=self.gw_err)
        time.sleep(0.3)
        if self.gw.poll() is not None:
            raise RuntimeError("fieldgate exited at start (%s): %s"
                               % (self.gw.returncode, self.gw_log()[-2000:]))
        return self.gw

    def kill_gw(self):
        """SIGKILL (no clean stop: the crash case)."""
        self.gw.send_signal(signal.SIGKILL)
        self.gw.wait()
        self.gw_err.close()
        return self.gw.returncode

    def stop_gw(self):
        rc = stop(self.gw)
        self.gw_err.close()
        return rc

    def gw_log(self, which=-1):
        if self.gw_err and not self.gw_err.closed:
            self.gw_err.flush()
        try:
            with open(self.logs[which]) as f:
                return f.read()
        except (OSError, IndexError):
            return ""

    def all_logs(self):
        return "".join(self.gw_log(i) for i in range(len(self.logs)))

    def wait_log(self, needle, timeout=15, which=-1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.gw_log(which).splitlines():
                if needle in line:
                    return line
            if self.gw.poll() is not None:
                return None
            time.sleep(0.1)
        return None

    def log_times(self, needle, which=-1):
        """Epoch times of the gateway's log lines containing needle."""
        out = []
        for line in self.gw_log(which).splitlines():
            m = LOG_TIME.match(line)
            if m and needle in line:
                out.append(parse_time(m.group(1)))
        return out

    def subscriber(self, nodes, user="viewer"):
        s = Subscriber(self.srv, self.service, nodes, user).start()
        self.subs.append(s)
        return s

    def spool_files(self):
        out = []
        for root, _, files in os.walk(self.spool_dir):
            for f in files:
                out.append(os.path.join(root, f))
        return sorted(out)

    def spool_bytes(self):
        n = 0
        for p in self.spool_files():
            try:
                n += os.path.getsize(p)
            except OSError:
                pass
        return n

    def run(self, coro, user="admin", timeout=30, **kw):
        kw.setdefault("plugins", SUB_PLUGINS + xc.IOT_PLUGINS)
        return xc.run_client(self.srv, self.srv.jid(user), USERS[user], coro,
                             timeout=timeout, **kw)

    def __exit__(self, *exc):
        try:
            for s in self.subs:
                try:
                    s.stop()
                except Exception:  # noqa: BLE001
                    pass
            if self.gw and self.gw.poll() is None:
                self.gw_rc = self.stop_gw()
            elif self.gw:
                self.gw_rc = self.gw.returncode
            if self.sim:
                self.sim.stop()
            if exc[0] is not None or os.environ.get("FG_EVENTS_LOG"):
                log("--- fieldgate logs (tail) ---")
                log(self.all_logs()[-8000:])
            if exc[0] is None and not os.environ.get("FG_KEEP_TMP"):
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            self.srv.__exit__(*exc)
        return False


def by_unit(union):
    """{unit: [Item sorted by seq]} (one Item per id: the first seen), plus
    [(id, [distinct keys])] for ids seen with different contents."""
    units, conflicts = {}, []
    for node, ids in union.items():
        for iid, its in ids.items():
            keys = {it.key() for it in its}
            if len(keys) > 1:
                conflicts.append((iid, sorted(str(k)[:200] for k in keys)))
            it = its[0]
            units.setdefault(it.unit, []).append(it)
    for u in units:
        units[u].sort(key=lambda i: (i.seq is None, i.seq or 0))
    return units, conflicts


def first_recv(union):
    """{item id: earliest notification receive time}."""
    out = {}
    for ids in union.values():
        for iid, its in ids.items():
            ts = [i.recv for i in its if i.source == "notify"]
            if ts:
                out[iid] = min(ts)
    return out
