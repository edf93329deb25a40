#!/usr/bin/python3
"""bench_events: PubSub value events through a private Prosody, one run.

  rate     fieldgate publishing the changes of many fast-changing points
           (fieldgate-sim counter waves, every point changes every poll)
           to one node per unit with the map's DEFAULT node configuration
           on pubsub.<domain>, beside a baseline publisher with no gateway
           logic (a raw-socket client pipelining the same payload, same
           window, to nodes with the same configuration) in the same run.
           Items per second counted at an independent raw-socket subscriber
           over the same window length, after a warm-up.
  latency  one register written with pymodbus at known times (uneven
           spacing), polled every --lat-poll: from the write to the
           subscriber's notification (end to end), the same minus the poll
           period, and from the bus read (the item's XEP-0323 timestamp,
           ms resolution, same clock) to the notification.
  cpu      the gateway's user+system CPU (/proc/PID/stat) per published
           item during the rate window; Prosody's too.

    FG_BUILD_DIR=build-rel /usr/bin/python3 bench/events/bench_events.py \
        [--units 50] [--points 4] [--poll-ms 20] [--seconds 10] \
        [--lat-n 150] [--lat-poll-ms 100] [--json] [--prosody-nagle]
"""
import argparse
import json
import multiprocessing as mp
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("FG_SOURCE_DIR", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
sys.path.insert(0, HERE)
from events_common import (Sim, write_registers, parse_time, stop,  # noqa: E402
                           BUILD)
from fixtures.prosody import Prosody  # noqa: E402
import rawxmpp as rx  # noqa: E402

USERS = {"gw": "gw-pw", "sub": "sub-pw", "base": "base-pw"}
CLK = os.sysconf("SC_CLK_TCK")
NUMERIC = re.compile(rb"<numeric\b[^>]*>")
TSTAMP = re.compile(rb"<timestamp value=['\"]([^'\"]+)['\"]")
ITEMS = re.compile(rb"<items node=['\"]([^'\"]+)['\"]")
PAYLOAD = re.compile(rb"<fields\b.*?</fields>", re.S)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLK  # utime, stime


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def client(srv, user, resource):
    return rx.RawClient("127.0.0.1", srv.c2s_port, srv.domain, user,
                        USERS[user], srv.ca_file, resource).connect()


# ---- subscriber (own process) ----------------------------------------------------

def subscriber(srv, service, nodes, conn, parse_values, resource):
    """Subscribes (retrying until each node exists), says 'ready', then
    records every notification until told 'stop'; sends back the receive
    times (and, with parse_values, (recv, node, {name: value}, ts))."""
    c = client(srv, "sub", resource)
    c.send("<presence/>")
    for n in nodes:
        deadline = time.monotonic() + 30
        while True:
            t, raw = c.iq("<pubsub xmlns='%s'><subscribe node='%s' jid='%s'/>"
                          "</pubsub>" % (rx.NS_PUBSUB, n, c.jid), to=service)
            if t == "result" and b"subscription='subscribed'" in raw.replace(
                    b'"', b"'"):
                break
            if time.monotonic() > deadline:
                conn.send(("error", "subscribe %s: %r" % (n, raw[:300])))
                return
            time.sleep(0.2)
    conn.send(("ready", c.jid))
    times, values, sample = [], [], None
    c.sock.setblocking(False)
    while True:
        if conn.poll():
            if conn.recv() == "stop":
                break
        try:
            got = c._recv(0.05)
        except (BlockingIOError, rx.ssl.SSLWantReadError):
            got = False
        if not got:
            continue
        now = time.time()
        for st in c.stanzas():
            if not st.startswith(b"<message"):
                continue
            times.append(now)
            if sample is None:
                m = PAYLOAD.search(st)
                sample = m.group(0).decode() if m else None
            if parse_values:
                node = ITEMS.search(st)
                ts = TSTAMP.search(st)
                vals = {}
                for tag in NUMERIC.findall(st):
                    a = rx.attrs(tag)
                    vals[a.get("name")] = a.get("value")
                values.append((now, node.group(1).decode() if node else None,
                               vals, parse_time(ts.group(1).decode())
                               if ts else None))
    conn.send(("done", times, values, sample))
    c.close()


class Sub:
    def __init__(self, srv, service, nodes, parse_values=False, resource="sub"):
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=subscriber, args=(
            srv, service, nodes, child, parse_values, resource), daemon=True)
        self.proc.start()
        if not self.conn.poll(60):
            raise RuntimeError("subscriber: not ready in 60 s")
        msg = self.conn.recv()
        if msg[0] != "ready":
            raise RuntimeError("subscriber: %s" % (msg,))

    def finish(self):
        self.conn.send("stop")
        msg = self.conn.recv()
        self.proc.join(5)
        return msg[1], msg[2], msg[3]


# ---- baseline publisher (own process) ----------------------------------------------

def baseline(srv, service, nodes, config, member, payload, window, conn,
             options=False):
    """Creates nodes with config (+ member affiliation for the subscriber),
    says 'ready', publishes round robin with `window` iqs in flight from
    'go' until 'stop', sends back (accepted, errors)."""
    c = client(srv, "base", "base")
    po = ("<publish-options>%s</publish-options>" % rx.config_form(
        config, "http://jabber.org/protocol/pubsub#publish-options")
          if options else "")
    for n in nodes:
        c.iq("<pubsub xmlns='%s'><create node='%s'/><configure>%s</configure>"
             "</pubsub>" % (rx.NS_PUBSUB, n, rx.config_form(config)), to=service)
        if member:
            c.iq("<pubsub xmlns='%s'><affiliations node='%s'><affiliation "
                 "jid='%s' affiliation='member'/></affiliations></pubsub>"
                 % (rx.NS_OWNER, n, member), to=service)
    conn.send("ready")
    conn.recv()  # go
    # Pre-built stanzas: the same <fields> payload per unit, ids UNIT-SEQ.
    heads = []
    for i, n in enumerate(nodes):
        unit = n.rsplit("/", 1)[1]
        body = re.sub(r"nodeId='[^']*'", "nodeId='%s'" % unit, payload)
        heads.append(("<iq type='set' to='%s' id='p%%d'><pubsub xmlns='%s'>"
                      "<publish node='%s'><item id='%s-%%d'>%s</item></publish>"
                      "%s</pubsub></iq>" % (service, rx.NS_PUBSUB, n, unit,
                                            body.replace("%", "%%"),
                                            po.replace("%", "%%"))))
    seq, inflight, ok, err = 0, 0, 0, 0
    c.sock.setblocking(False)
    stopping = False
    while True:
        if not stopping and conn.poll():
            conn.recv()
            stopping = True
        if stopping and inflight == 0:
            break
        out = []
        while not stopping and inflight < window:
            seq += 1
            out.append(heads[seq % len(heads)] % (seq, seq))
            inflight += 1
        if out:
            c.sock.setblocking(True)
            c.send("".join(out))
            c.sock.setblocking(False)
        try:
            c._recv(0.05)
        except (BlockingIOError, rx.ssl.SSLWantReadError):
            pass
        for st in c.stanzas():
            m = rx.START_TAG.match(st)
            if m and m.group(1) == b"iq":
                a = rx.attrs(m.group(0))
                if a.get("id", "").startswith("p"):
                    inflight -= 1
                    if a.get("type") == "result":
                        ok += 1
                    else:
                        err += 1
                        if err == 1:
                            sys.stderr.write("baseline publish error: %r\n"
                                             % st[:400])
    conn.send((ok, err))
    c.close()


# ---- setup ----------------------------------------------------------------------

def sim_file(units, points):
    lines = ["units:"]
    for u in range(1, units + 1):
        lines.append("  - id: %d\n    holding:" % u)
        for p in range(points):
            lines.append("      - {address: %d, type: uint16, value: %d, "
                         "wave: {kind: counter, period: 10ms, min: 0, "
                         "max: 60000}}" % (p, p * 1000))
    return "\n".join(lines) + "\n"


def map_text(srv, sim_port, pwfile, units, points, poll_ms, events_extra=""):
    out = ["poll_groups:", "  - {name: default, interval: %dms}" % poll_ms,
           "links:", "  - name: plant", "    type: tcp",
           "    host: 127.0.0.1", "    port: %d" % sim_port,
           "    timeout: 500ms", "    units:"]
    for u in range(1, units + 1):
        out.append("      - name: u%d\n        id: %d\n        points:" % (u, u))
        for p in range(points):
            out.append("          - {name: p%d, table: holding, address: %d, "
                       "type: uint16, unit: kWh}" % (p, p))
    out += ["xmpp:", "  jid: %s" % srv.jid("gw"), "  password_file: %s" % pwfile,
            "  resource: gw", "  host: 127.0.0.1", "  port: %d" % srv.c2s_port,
            "  ca_file: %s" % srv.ca_file,
            "access:", "  readers: [%s]" % srv.jid("sub"),
            "events:", "  service: %s" % srv.pubsub_domain,
            "  node_prefix: bench/gw/"]
    return "\n".join(out) + "\n" + events_extra


def start_gateway(tmp, name, text):
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    log = open(os.path.join(tmp, name + ".log"), "w")
    gw = subprocess.Popen([os.path.join(BUILD, "fieldgate"), "run", "-c", path],
                          stdout=subprocess.DEVNULL, stderr=log)
    return gw, log


def rate_window(pids, warmup, seconds):
    """Sleeps warmup, then measures CPU of pids over seconds: (t0, t1, cpu)."""
    time.sleep(warmup)
    c0 = {p: cpu_s(p) for p in pids}
    t0 = time.time()
    time.sleep(seconds)
    t1 = time.time()
    c1 = {p: cpu_s(p) for p in pids}
    return t0, t1, {p: c1[p] - c0[p] for p in pids}


def owner_config(srv, service, node):
    c = client(srv, "base", "cfg")
    try:
        t, raw = c.iq("<pubsub xmlns='%s'><configure node='%s'/></pubsub>"
                      % (rx.NS_OWNER, node), to=service, itype="get")
        return rx.read_config(raw) if t == "result" else None
    finally:
        c.close()


# ---- main -----------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=50)
    ap.add_argument("--points", type=int, default=4)
    ap.add_argument("--poll-ms", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--window", type=int, default=16,
                    help="baseline iqs in flight (the map's default window)")
    ap.add_argument("--lat-n", type=int, default=150)
    ap.add_argument("--lat-poll-ms", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--prosody-nagle", action="store_true",
                    help="leave Prosody's Nagle setting at its default (on)")
    a = ap.parse_args()
    mp.set_start_method("fork")
    res = {"machine": machine()}
    nagle = "" if a.prosody_nagle else "network_settings = { nagle = false }"
    tmp = tempfile.mkdtemp(prefix="fg-bench-events-")
    pwfile = os.path.join(tmp, "gw.pw")
    with open(pwfile, "w") as f:
        f.write(USERS["gw"] + "\n")
    with Prosody(users=USERS, extra_global=nagle,
                 pubsub_admins=["gw@fieldgate.test", "base@fieldgate.test"]) as srv:
        service = srv.pubsub_domain
        gnodes = ["bench/gw/u%d" % u for u in range(1, a.units + 1)]

        # -- rate: fieldgate
        with open(os.path.join(tmp, "sim.yaml"), "w") as f:
            f.write(sim_file(a.units, a.points))
        sim = Sim(["--file", os.path.join(tmp, "sim.yaml"), "--tick", "10"]).start()
        gw, gwlog = start_gateway(tmp, "rate", map_text(
            srv, sim.port, pwfile, a.units, a.points, a.poll_ms))
        try:
            sub = Sub(srv, service, gnodes, resource="g")
            t0, t1, cpu = rate_window([gw.pid, srv.pid, sim.proc.pid],
                                      a.warmup, a.seconds)
            times, _, sample = sub.finish()
            config = owner_config(srv, service, gnodes[0])
        finally:
            stop(gw)
            gwlog.close()
            sim.stop()
        n = sum(1 for t in times if t0 <= t < t1)
        res["gateway"] = {"items": n, "seconds": t1 - t0,
                          "items_per_s": n / (t1 - t0),
                          "cpu_ms_per_item": 1000 * cpu[gw.pid] / max(n, 1),
                          "prosody_cpu_ms_per_item": 1000 * cpu[srv.pid] / max(n, 1),
                          "gw_cpu_s": cpu[gw.pid], "exit": gw.returncode}
        res["node_config"] = {k: v for k, v in (config or {}).items()
                              if k.startswith("pubsub#") and v}
        res["payload_bytes"] = len(sample or "")
        if not sample:
            raise SystemExit("no notification from the gateway (log: %s)"
                             % os.path.join(tmp, "rate.log"))

        # -- rate: the gateway polling alone (no events: section), for the
        # CPU of polling that the per-item figure above includes
        sim = Sim(["--file", os.path.join(tmp, "sim.yaml"), "--tick", "10"]).start()
        text = map_text(srv, sim.port, pwfile, a.units, a.points, a.poll_ms)
        gw, gwlog = start_gateway(tmp, "poll", text[:text.index("events:")])
        try:
            t0, t1, cpu = rate_window([gw.pid], a.warmup, a.seconds)
        finally:
            stop(gw)
            gwlog.close()
            sim.stop()
        g = res["gateway"]
        g["poll_only_cpu_s"] = cpu[gw.pid] * g["seconds"] / (t1 - t0)
        g["net_cpu_ms_per_item"] = 1000 * (g["gw_cpu_s"] - g["poll_only_cpu_s"]) / max(g["items"], 1)

        # -- rate: baseline (same payload, same configuration, same window),
        # plain, then with the same publish-options on every publish
        form = {k: v for k, v in config.items()
                if k in ("pubsub#access_model", "pubsub#max_items",
                         "pubsub#persist_items", "pubsub#notification_type",
                         "pubsub#send_last_published_item")}
        member = srv.jid("sub") if form.get("pubsub#access_model") == "whitelist" else None
        for key, options in (("baseline", False), ("baseline_po", True)):
            prefix = "bench/base/" if not options else "bench/bpo/"
            bnodes = [prefix + "u%d" % u for u in range(1, a.units + 1)]
            bconn, child = mp.Pipe()
            bproc = mp.Process(target=baseline, args=(
                srv, service, bnodes, form, member, sample, a.window, child,
                options), daemon=True)
            bproc.start()
            if not bconn.poll(60):
                raise SystemExit("baseline: not ready")
            bconn.recv()
            sub = Sub(srv, service, bnodes, resource=key)
            bconn.send("go")
            t0, t1, cpu = rate_window([bproc.pid, srv.pid], a.warmup, a.seconds)
            bconn.send("stop")
            ok, err = bconn.recv()
            bproc.join(5)
            times, _, _ = sub.finish()
            n = sum(1 for t in times if t0 <= t < t1)
            res[key] = {"items": n, "seconds": t1 - t0,
                        "items_per_s": n / (t1 - t0),
                        "cpu_ms_per_item": 1000 * cpu[bproc.pid] / max(n, 1),
                        "prosody_cpu_ms_per_item": 1000 * cpu[srv.pid] / max(n, 1),
                        "accepted": ok, "errors": err}
        res["ratio"] = res["gateway"]["items_per_s"] / max(
            res["baseline"]["items_per_s"], 1e-9)
        res["ratio_po"] = res["gateway"]["items_per_s"] / max(
            res["baseline_po"]["items_per_s"], 1e-9)

        # -- latency
        sim = Sim(["--units", "1"]).start()
        lat_map = map_text(srv, sim.port, pwfile, 1, 1, a.lat_poll_ms).replace(
            "bench/gw/", "bench/lat/")
        gw, gwlog = start_gateway(tmp, "lat", lat_map)
        try:
            sub = Sub(srv, service, ["bench/lat/u1"], parse_values=True,
                      resource="l")
            time.sleep(1.0)
            writes = {}
            rnd = random.Random(7)
            for i in range(a.lat_n):
                v = 20000 + i
                writes[str(v)] = time.time()
                write_registers(sim.port, [(1, 0, v)])
                writes[str(v)] = (writes[str(v)] + time.time()) / 2
                time.sleep(rnd.uniform(1.5, 2.5) * a.lat_poll_ms / 1000.0)
            time.sleep(0.5)
            _, values, _ = sub.finish()
        finally:
            stop(gw)
            gwlog.close()
            sim.stop()
        e2e, from_read = [], []
        for recv, node, vals, ts in values:
            v = vals.get("p0")
            if v in writes:
                e2e.append(1000 * (recv - writes[v]))
                if ts:
                    from_read.append(1000 * (recv - ts))
        poll = a.lat_poll_ms
        res["latency"] = {
            "n": len(e2e), "writes": a.lat_n, "poll_ms": poll,
            "e2e_p50": statistics.median(e2e), "e2e_p99": pct(e2e, 99),
            "from_read_p50": statistics.median(from_read),
            "from_read_p99": pct(from_read, 99),
            "from_read_mean": statistics.fmean(from_read)}
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        report(res, a)


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model,
            "kernel": os.uname().release}


def report(res, a):
    m = res["machine"]
    print("machine: %d CPUs, %s, Linux %s" % (m["nproc"], m["cpu"], m["kernel"]))
    print("node configuration (the map's default, read back): %s"
          % res["node_config"])
    print("rate: %d units x %d points, counters changing every 10 ms, poll "
          "%d ms; payload %d bytes; %.0f s after %.0f s warm-up"
          % (a.units, a.points, a.poll_ms, res["payload_bytes"], a.seconds,
             a.warmup))
    print("%-34s %10s %12s %14s" % ("publisher", "items/s", "CPU ms/item",
                                     "Prosody ms/item"))
    for name, key in (("fieldgate", "gateway"),
                      ("baseline (raw client)", "baseline"),
                      ("baseline + publish-options", "baseline_po")):
        r = res[key]
        print("%-34s %10.1f %12.4f %14.4f" % (name, r["items_per_s"],
                                              r["cpu_ms_per_item"],
                                              r["prosody_cpu_ms_per_item"]))
    g = res["gateway"]
    print("fieldgate / baseline: %.1f %%; / baseline + publish-options: %.1f %%"
          % (100 * res["ratio"], 100 * res["ratio_po"]))
    print("fieldgate CPU: %.2f s in the window, %.2f s polling alone (no "
          "events) -> %.4f ms per item net of polling"
          % (g["gw_cpu_s"], g["poll_only_cpu_s"], g["net_cpu_ms_per_item"]))
    lat = res["latency"]
    print("latency (%d of %d changes seen; poll %d ms), ms:" % (
        lat["n"], lat["writes"], lat["poll_ms"]))
    print("%-44s %8s %8s" % ("", "p50", "p99"))
    print("%-44s %8.2f %8.2f" % ("write -> notification (incl. 0..poll wait)",
                                 lat["e2e_p50"], lat["e2e_p99"]))
    print("%-44s %8.2f %8.2f" % ("bus read (item timestamp) -> notification",
                                 lat["from_read_p50"], lat["from_read_p99"]))


if __name__ == "__main__":
    main()
