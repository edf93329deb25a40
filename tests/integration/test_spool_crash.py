#!/usr/bin/python3
"""Integration (issue 10): fieldgate SIGKILLed while offline with spooled
samples, a torn last record, restart with the server up.

1. m1.v (a holding register, written with pymodbus) is published live
   (value 0); Prosody is stopped.
2. Values 1..K are written 200 ms apart (polled every 50 ms: one sample
   each, all spooled: the server is down); 1 s later fieldgate gets
   SIGKILL (no clean stop).
3. The last spool segment (DIR/seg-*.log, docs/spool.md) is truncated by
   5 bytes: the last record (value K) is torn mid-record.
4. Prosody starts, then fieldgate again with the same map and spool.
Checks: one log line reporting the torn record (and only one); values
1..K-1 delivered exactly once each (union of the subscriber's
notifications and node items), with their original reading times (before
the kill) in XEP-0203 <delay> stamps, in sequence order; the torn sample
(K read before the kill) is not delivered; K read again after the restart
is published with a sequence number beyond the spooled ones (the per-unit
sequence persists across the crash); exit 0 on SIGTERM, no sanitizer
report.  About 20 s.  Exit 77 when Prosody or pymodbus is unavailable."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spool_common import SpoolEnv, Checks, log, by_unit  # noqa: E402
from events_common import write_registers  # noqa: E402

check = Checks()
K = 12
PREFIX = "fgt/crash/"
NODE = PREFIX + "m1"

SIM = """\
units:
  - id: 1
    holding:
      - {address: 0, value: 0}
"""

UNITS = """\
      - name: m1
        id: 1
        points:
          - {name: v, table: holding, address: 0, type: uint16}
"""

SEG = re.compile(r"^seg-[0-9a-f]+\.log$")


def wait_until(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def main():
    env = SpoolEnv(SIM, UNITS, PREFIX,
                   spool_yaml="  spool: {{dir: {dir}, fsync: 1s}}\n")
    with env:
        env.start_gw()
        sub = env.subscriber([NODE])
        check("viewer subscribed", sub.subscribed.get(NODE) == "subscribed",
              sub.subscribed)
        live = wait_until(lambda: any(i.value("v") == 0 for i in sub.notes), 10)
        check("value 0 published live", live, sub.notes[:3])

        env.srv.stop()
        t_down = time.time()
        for v in range(1, K + 1):
            write_registers(env.sim.port, [(1, 0, v)])
            time.sleep(0.2)
        time.sleep(1.0)
        files = [f for f in os.listdir(env.spool_dir) if SEG.match(f)] \
            if os.path.isdir(env.spool_dir) else []
        log("spool files before the kill:", sorted(os.listdir(env.spool_dir))
            if os.path.isdir(env.spool_dir) else None)
        t_kill = time.time()
        rc_kill = env.kill_gw()
        check("fieldgate SIGKILLed", rc_kill == -9, rc_kill)
        check("spool segment files exist (DIR/seg-*.log)", files, files)
        torn_file = None
        if files:
            torn_file = os.path.join(env.spool_dir, sorted(files)[-1])
            size = os.path.getsize(torn_file)
            os.truncate(torn_file, max(0, size - 5))
            log("truncated %s from %d to %d bytes" % (torn_file, size, size - 5))

        env.srv.start()
        t_restart = time.time()
        env.start_gw()

        def done():
            vals = {i.value("v") for i in sub.notes
                    if i.ts and i.ts > t_restart}
            return K in vals
        wait_until(done, 15)
        time.sleep(1.0)
        sub.fetch()
        log2 = env.gw_log()
        rc = env.stop_gw()
        union = sub.union()

    torn_lines = [ln for ln in log2.splitlines()
                  if "torn" in ln.lower()]
    check("one log line reports the torn record", len(torn_lines) == 1,
          torn_lines)
    units, conflicts = by_unit(union)
    check("an id seen twice has the same content", not conflicts, conflicts)
    its = [i for i in units.get("m1", []) if i.gap is None and i.ts]
    gaps = [i for i in units.get("m1", []) if i.gap is not None]
    check("no gap marker", not gaps, gaps)
    spooled = [i for i in its if t_down < i.ts < t_kill]
    vals = [i.value("v") for i in spooled]
    log("delivered samples read while offline:", [(i.id, i.value("v"))
                                                   for i in spooled])
    check("values 1..%d (spooled before the kill) delivered exactly once "
          "each, in sequence order" % (K - 1), vals == list(range(1, K)), vals)
    seqs = [i.seq for i in spooled]
    check("their sequence numbers are contiguous",
          seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False,
          seqs)
    check("each carries a <delay> stamp equal to its reading time",
          spooled and all(i.delay_stamp is not None
                          and abs(i.delay_stamp - i.ts) <= 0.0015
                          for i in spooled),
          [(i.id, i.tstext, i.delay_stamp) for i in spooled])
    torn = [i for i in its if i.value("v") == K and i.ts < t_kill]
    check("the torn sample (%d read before the kill) is not delivered" % K,
          not torn, torn)
    again = [i for i in its if i.value("v") == K and i.ts > t_restart]
    check("%d read again after the restart is published" % K, len(again) == 1,
          again)
    if again and seqs:
        check("its sequence number continues the spooled ones (%d > %d): "
              "the per-unit sequence persists" % (again[0].seq, seqs[-1]),
              again[0].seq > seqs[-1], (again[0].seq, seqs[-1]))
    before = [i for i in its if i.ts < t_down]
    if before and seqs:
        check("the spooled samples' sequence numbers continue the live ones",
              seqs[0] > max(i.seq for i in before),
              (seqs[0], [i.id for i in before]))
    check("no sanitizer report", "Sanitizer" not in env.all_logs())
    check("fieldgate exit 0 on SIGTERM", rc == 0, rc)
    check.exit()


if __name__ == "__main__":
    main()
