#!/usr/bin/python3
"""Integration (issue 10): an unwritable spool directory.

A. At start: events.spool.dir below a regular file (no directory can be
   made there, even as root).  `fieldgate check`'s output is reported;
   `fieldgate run` keeps running, logs an error naming the directory, its
   gateway node (`_gateway`, XEP-0323 status readout) shows a spool
   warning, and events fall back to latest-value delivery: the subscriber
   still gets the counter's changes.
B. At run time: the spool on a tiny tmpfs (mount -t tmpfs -o size=256k,
   unmounted at the end); once events flow, the tmpfs is filled by a
   file: the spool's appends fail (ENOSPC), the gateway node shows the
   warning, events still arrive; the file removed, the spool is writable
   again (logged) and the warning goes.
Exit 0 on SIGTERM each time, no sanitizer report.  Needs root (mount);
about 25 s.  Exit 77 when Prosody is unavailable or tmpfs cannot be
mounted."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spool_common import SpoolEnv, Checks, log  # noqa: E402
from iot_common import readout  # noqa: E402

check = Checks()
PREFIX = "fgt/unw/"
NODE = PREFIX + "m1"
SIM = """\
units:
  - id: 1
    holding:
      - {address: 0, type: uint16, value: 100,
         wave: {kind: counter, period: 200ms, min: 0, max: 60000}}
"""
UNITS = """\
      - name: m1
        id: 1
        points:
          - {name: ctr, table: holding, address: 0, type: uint16}
"""
WARN_WORDS = ("spool", "read-only", "no space", "not a directory",
              "writable", "full")


def gateway_status(env):
    res = {}

    async def body(c):
        ev, d, _ = await readout(c, env.gw_jid, nodes=["_gateway"],
                                 flags={"status": "true"})
        res["st"] = {k: str(v.get("value")) for k, v in
                     d.get("_gateway", {}).items()}
    env.run(body, "ops")
    return res["st"]


def spool_warning(st):
    return {k: v for k, v in st.items()
            if any(w in v.lower() for w in WARN_WORDS)
            and not k.lower().startswith("spool bytes")}


def values_since(sub, t):
    return [i.value("ctr") for i in sub.notes if i.recv > t and i.ts]


def wait_values(sub, t, n, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(set(values_since(sub, t))) >= n:
            return True
        time.sleep(0.1)
    return False


def main():
    env = SpoolEnv(SIM, UNITS, PREFIX)
    mnt = None
    with env:
        # -- A: below a regular file
        blocker = os.path.join(env.dir, "not-a-dir")
        with open(blocker, "w") as f:
            f.write("x\n")
        bad = os.path.join(blocker, "spool")
        env.write_map("  spool: {{dir: %s}}\n" % bad)
        rc, out = env.check_map()
        log("fieldgate check (exit %d):\n%s" % (rc, out))
        if bad in out:
            check("fieldgate check names the unusable spool directory", True)
        else:
            log("note: fieldgate check does not mention the spool directory")
        env.start_gw()
        sub = env.subscriber([NODE])
        check("viewer subscribed", sub.subscribed.get(NODE) == "subscribed",
              sub.subscribed)
        t0 = time.time()
        flowing = wait_values(sub, t0, 5)
        vals = values_since(sub, t0)
        check("events still delivered (latest-value fallback): %d changes"
              % len(set(vals)), flowing and vals == sorted(vals), vals[:20])
        check("fieldgate still running", env.gw.poll() is None,
              env.gw.returncode)
        errs = [ln for ln in env.gw_log().splitlines()
                if bad in ln and ("error" in ln or "warn" in ln)]
        check("one clear error line names the spool directory", errs,
              env.gw_log()[-2000:])
        st = gateway_status(env)
        log("_gateway status:", st)
        check("the gateway node shows the spool warning", spool_warning(st), st)
        rc = env.stop_gw()
        check("exit 0 on SIGTERM (A)", rc == 0, rc)
        textA = env.gw_log()

        # -- B: a tmpfs that fills up while running
        mnt = os.path.join(env.dir, "tfs")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700",
                            "fg-spool-test", mnt], capture_output=True,
                           text=True)
        if r.returncode != 0:
            log("SKIP: cannot mount a tmpfs:", r.stderr.strip())
            sys.exit(77)
        try:
            sdir = os.path.join(mnt, "spool")
            env.write_map("  spool: {{dir: %s, fsync: every}}\n" % sdir)
            env.start_gw()
            t1 = time.time()
            check("events flow with the spool on the tmpfs",
                  wait_values(sub, t1, 3), values_since(sub, t1))
            st0 = gateway_status(env)
            check("no spool warning while the spool is writable",
                  not spool_warning(st0), st0)
            filler = os.path.join(mnt, "filler")
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError as e:
                log("tmpfs full:", e)
            finally:
                os.close(fd)
            t2 = time.time()
            time.sleep(1.0)
            full_ok = wait_values(sub, t2, 5)
            vals = values_since(sub, t2)
            check("events still delivered with the spool full: %d changes"
                  % len(set(vals)), full_ok and vals == sorted(vals), vals[:20])
            st = gateway_status(env)
            log("_gateway status (full):", st)
            check("the gateway node shows the spool warning (disk full)",
                  spool_warning(st), st)
            full_lines = [ln for ln in env.gw_log().splitlines()
                          if "spool" in ln and ("error" in ln[:40])]
            check("the write failure is logged (error level) once, not per "
                  "record", 1 <= len(full_lines) <= 3, full_lines[:10])
            check("fieldgate still running", env.gw.poll() is None)
            os.remove(filler)
            t3 = time.time()
            again = env.wait_log("writable again", 10)
            check("the spool is writable again (logged)", again)
            time.sleep(0.5)
            st2 = gateway_status(env)
            log("_gateway status (space again):", st2)
            check("the warning is gone", not spool_warning(st2), st2)
            check("events after the space is back",
                  wait_values(sub, t3, 3), values_since(sub, t3))
            rc = env.stop_gw()
            check("exit 0 on SIGTERM (B)", rc == 0, rc)
        finally:
            if env.gw and env.gw.poll() is None:
                env.stop_gw()
            subprocess.run(["umount", mnt])
        check("no sanitizer report",
              "Sanitizer" not in textA + env.all_logs())
    check.exit()


if __name__ == "__main__":
    main()
