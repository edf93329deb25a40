#!/usr/bin/python3
"""bench_spool_replay: the store-and-forward replay rate through a private
Prosody beside the live publish rate of bench/events, in one run.

  live      bench/events' rate phase: fieldgate publishing the changes of
            --units x --points counters (changing every 10 ms, polled every
            --poll-ms) with the default delivery (latest), items/s at an
            independent raw-socket subscriber after a warm-up;
  live-every  the same with `events.delivery: every` (every change a spool
            record, acknowledged by the server);
  replay    the same map with delivery every: Prosody stopped for --fill
            seconds (the spool fills while polling goes on), then started:
            the subscriber (re-subscribed at once) counts the replayed items
            (reading time before the server was back) per second from the
            first to the last one received.  Goal (issue 10): replay >= 90 %
            of the live rate.

    FG_BUILD_DIR=build-rel /usr/bin/python3 bench/events/bench_spool_replay.py \
        [--units 50] [--points 4] [--poll-ms 20] [--seconds 10] [--fill 10] [--json]
"""
import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_events import (Sub, sim_file, map_text, start_gateway,  # noqa: E402
                          rate_window, machine, Sim, stop, Prosody, USERS)


def live(srv, tmp, pwfile, a, name, extra, prefix):
    service = srv.pubsub_domain
    nodes = [prefix + "u%d" % u for u in range(1, a.units + 1)]
    sim = Sim(["--file", os.path.join(tmp, "sim.yaml"), "--tick", "10"]).start()
    text = map_text(srv, sim.port, pwfile, a.units, a.points, a.poll_ms,
                    extra).replace("bench/gw/", prefix)
    gw, gwlog = start_gateway(tmp, name, text)
    try:
        sub = Sub(srv, service, nodes, resource=name)
        t0, t1, cpu = rate_window([gw.pid], a.warmup, a.seconds)
        times, _, _ = sub.finish()
    finally:
        rc = stop(gw)
        gwlog.close()
        sim.stop()
    n = sum(1 for t in times if t0 <= t < t1)
    return {"items": n, "seconds": t1 - t0, "items_per_s": n / (t1 - t0),
            "cpu_ms_per_item": 1000 * cpu[gw.pid] / max(n, 1), "exit": rc}


def replay(srv, tmp, pwfile, a):
    service = srv.pubsub_domain
    prefix = "bench/rp/"
    nodes = [prefix + "u%d" % u for u in range(1, a.units + 1)]
    spool = os.path.join(tmp, "spool-replay")
    sim = Sim(["--file", os.path.join(tmp, "sim.yaml"), "--tick", "10"]).start()
    text = map_text(srv, sim.port, pwfile, a.units, a.points, a.poll_ms,
                    "  delivery: every\n  spool: {dir: %s}\n" % spool
                    ).replace("bench/gw/", prefix)
    text = text.replace("  ca_file:", "  reconnect_min: 200ms\n"
                        "  reconnect_max: 1s\n  ca_file:")
    gw, gwlog = start_gateway(tmp, "replay", text)
    res = {}
    try:
        sub = Sub(srv, service, nodes, resource="rp0")  # nodes exist
        time.sleep(a.warmup)
        sub.finish()
        srv.stop()
        t_down = time.time()
        time.sleep(a.fill)
        spool_bytes = sum(os.path.getsize(os.path.join(r, f))
                          for r, _, fs in os.walk(spool) for f in fs)
        srv.start()
        t_ready = time.time()
        sub = Sub(srv, service, nodes, parse_values=True, resource="rp1")
        t_sub = time.time()
        # The subscriber reports at finish: give the replay ample time
        # (the fill took a.fill s; replay is expected at about the live rate).
        time.sleep(a.drain if a.drain else 3 * a.fill + 5)
        _, values, _ = sub.finish()
    finally:
        rc = stop(gw)
        gwlog.close()
        sim.stop()
    replayed = [(recv, ts) for recv, _, _, ts in values
                if ts is not None and ts < t_ready]
    livei = [(recv, ts) for recv, _, _, ts in values
             if ts is not None and ts >= t_ready]
    res.update({"fill_s": a.fill, "spool_bytes": spool_bytes,
                "outage_samples_s": (t_down, t_ready), "exit": rc,
                "sub_ready_after_s": t_sub - t_ready})
    if len(replayed) >= 2:
        r0 = min(r for r, _ in replayed)
        r1 = max(r for r, _ in replayed)
        res.update({"replayed": len(replayed), "seconds": r1 - r0,
                    "items_per_s": (len(replayed) - 1) / max(r1 - r0, 1e-9),
                    "first_after_ready_s": r0 - t_ready,
                    "drained_after_ready_s": r1 - t_ready,
                    "live_during_replay": sum(1 for r, _ in livei if r <= r1)})
    else:
        res.update({"replayed": len(replayed), "items_per_s": 0.0})
    del res["outage_samples_s"]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=50)
    ap.add_argument("--points", type=int, default=4)
    ap.add_argument("--poll-ms", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--fill", type=float, default=10.0)
    ap.add_argument("--drain", type=float, default=0.0,
                    help="seconds to record after the restart (default 3 x fill + 5)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    mp.set_start_method("fork")
    res = {"machine": machine()}
    tmp = tempfile.mkdtemp(prefix="fg-bench-replay-")
    pwfile = os.path.join(tmp, "gw.pw")
    with open(pwfile, "w") as f:
        f.write(USERS["gw"] + "\n")
    with open(os.path.join(tmp, "sim.yaml"), "w") as f:
        f.write(sim_file(a.units, a.points))
    try:
        with Prosody(users=USERS, extra_global="network_settings = { nagle = false }",
                     pubsub_admins=["gw@fieldgate.test", "base@fieldgate.test"]) as srv:
            res["live"] = live(srv, tmp, pwfile, a, "live", "", "bench/gw/")
            res["live_every"] = live(
                srv, tmp, pwfile, a, "every",
                "  delivery: every\n  spool: {dir: %s}\n"
                % os.path.join(tmp, "spool-live"), "bench/ev/")
            res["replay"] = replay(srv, tmp, pwfile, a)
    finally:
        if not os.environ.get("FG_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
    res["ratio"] = res["replay"]["items_per_s"] / max(res["live"]["items_per_s"], 1e-9)
    res["ratio_every"] = res["replay"]["items_per_s"] / max(
        res["live_every"]["items_per_s"], 1e-9)
    if a.json:
        print(json.dumps(res, indent=2))
        return
    m = res["machine"]
    print("machine: %d CPUs, %s, Linux %s" % (m["nproc"], m["cpu"], m["kernel"]))
    print("%d units x %d points, counters every 10 ms, poll %d ms; live: %.0f s "
          "after %.0f s warm-up; replay: %.0f s outage" % (
              a.units, a.points, a.poll_ms, a.seconds, a.warmup, a.fill))
    print("%-40s %10s" % ("", "items/s"))
    print("%-40s %10.1f" % ("live (delivery latest)", res["live"]["items_per_s"]))
    print("%-40s %10.1f" % ("live (delivery every)", res["live_every"]["items_per_s"]))
    r = res["replay"]
    print("%-40s %10.1f" % ("replay (spooled while the server was down)",
                            r["items_per_s"]))
    print("replay: %d items (spool %d bytes) in %.1f s; first %.2f s, drained "
          "%.1f s after Prosody ready; %d live items during the replay"
          % (r["replayed"], r["spool_bytes"], r.get("seconds", 0),
             r.get("first_after_ready_s", -1), r.get("drained_after_ready_s", -1),
             r.get("live_during_replay", 0)))
    print("replay / live: %.1f %% (latest), %.1f %% (every); goal >= 90 %%"
          % (100 * res["ratio"], 100 * res["ratio_every"]))


if __name__ == "__main__":
    main()
