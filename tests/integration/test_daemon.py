#!/usr/bin/python3
"""Integration: `fieldgate run` under a systemd-like supervisor.

A unix datagram socket stands in for systemd's NOTIFY_SOCKET: the daemon
must report READY=1 once polling, feed the watchdog (WATCHDOG_USEC) from its
event loop, report RELOADING=1 and READY=1 around a SIGHUP, refuse an
invalid map on reload and keep polling with the old one, take a valid new
map (a new unit starts polling), and report STOPPING=1 and exit 0 on
SIGTERM.  Peer: fieldgate-sim on loopback."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SOURCE = os.environ.get("FG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("FG_BUILD_DIR", os.path.join(SOURCE, "build"))
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok: %s" % name, flush=True)
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail), flush=True)


def map_text(port, units):
    lines = ["links:", "  - name: plant", "    type: tcp",
             "    host: 127.0.0.1", "    port: %d" % port, "    units:"]
    for name, uid in units:
        lines += ["      - name: %s" % name, "        id: %d" % uid,
                  "        points:",
                  "          - {name: hr0, table: holding, address: 0, type: uint16}"]
    return "\n".join(lines) + "\n"


def map_warnings(work, port):
    """A valid map with a warning (a domain among the readers of whitelisted
    event nodes): the daemon logs it at start, as `fieldgate check` prints
    it.  The XMPP server is a closed loopback port: nothing else matters."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()
    path = os.path.join(work, "warn.yaml")
    with open(path, "w") as f:
        f.write(map_text(port, [("m1", 1)]) + (
            "xmpp:\n  jid: gw@fieldgate.test\n  password: x\n"
            "  host: 127.0.0.1\n  port: %d\n"
            "access:\n  readers: [viewer@fieldgate.test, fieldgate.test]\n"
            "events:\n  service: pubsub.fieldgate.test\n" % closed))
    log_path = os.path.join(work, "warn.log")
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    with open(log_path, "w") as logf:
        gw = subprocess.Popen([os.path.join(BUILD, "fieldgate"), "run", "-c",
                               path], stdout=logf, stderr=subprocess.STDOUT,
                              env=env)
    seen = ""
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with open(log_path) as f:
                seen = f.read()
            if "warning:" in seen or gw.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(20)
        except subprocess.TimeoutExpired:
            gw.kill()
            gw.wait()
    line = next((ln for ln in seen.splitlines() if "warning:" in ln), "")
    check("map warning logged at start, with file:line:col and key",
          "domains cannot be whitelisted" in line and
          re.search(r"warn\.yaml:\d+:\d+: access\.readers\[1\]", line),
          seen[-1500:])


def main():
    work = tempfile.mkdtemp(prefix="fg-daemon-")
    sim = subprocess.Popen([os.path.join(BUILD, "fieldgate-sim"), "--tcp",
                            "127.0.0.1:0", "--units", "1-2"],
                           stdout=subprocess.PIPE, text=True)
    line = sim.stdout.readline()
    m = re.search(r"tcp=127\.0\.0\.1:(\d+)", line)
    if not m:
        print("fieldgate-sim did not start: %r" % line)
        return 1
    port = int(m.group(1))
    notify_path = os.path.join(work, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    sock.settimeout(0.2)
    path = os.path.join(work, "map.yaml")
    with open(path, "w") as f:
        f.write(map_text(port, [("m1", 1)]))
    log_path = os.path.join(work, "run.log")
    logf = open(log_path, "w")
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="400000")
    gw = subprocess.Popen([os.path.join(BUILD, "fieldgate"), "run", "-c",
                           path], stdout=logf, stderr=subprocess.STDOUT,
                          env=env)
    got = []

    def wait_msg(pred, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.append(sock.recv(4096).decode())
                if pred(got[-1]):
                    return True
            except socket.timeout:
                if gw.poll() is not None:
                    return False
        return False

    def log_has(pattern, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(log_path) as f:
                if re.search(pattern, f.read()):
                    return True
            time.sleep(0.05)
        return False

    try:
        check("READY=1 once started", wait_msg(lambda s: "READY=1" in s), got)
        check("unit m1 online", log_has(r"unit m1: online"))
        got.clear()
        wait_msg(lambda s: False, timeout=1.0)
        check("watchdog fed from the loop (>= 3 in 1 s at 400 ms)",
              sum("WATCHDOG=1" in s for s in got) >= 3, got)

        with open(path, "w") as f:
            f.write(map_text(port, [("m1", 1)]) + "bogus: 1\n")
        got.clear()
        gw.send_signal(signal.SIGHUP)
        check("RELOADING=1 then READY=1 on an invalid map",
              wait_msg(lambda s: "READY=1" in s)
              and any("RELOADING=1" in s for s in got), got)
        check("invalid map refused with file:line:col",
              log_has(r"map\.yaml:\d+:\d+: bogus: unknown key")
              and log_has(r"reload refused"))
        check("still running", gw.poll() is None)

        with open(path, "w") as f:
            f.write(map_text(port, [("m1", 1), ("m2", 2)]))
        got.clear()
        gw.send_signal(signal.SIGHUP)
        check("READY=1 after a valid reload",
              wait_msg(lambda s: "READY=1" in s), got)
        check("the new unit polls", log_has(r"unit m2: online"))

        got.clear()
        gw.send_signal(signal.SIGTERM)
        rc = gw.wait(20)
        try:
            while True:
                got.append(sock.recv(4096).decode())
        except (socket.timeout, OSError):
            pass
        check("STOPPING=1 on SIGTERM", any("STOPPING=1" in s for s in got),
              got)
        check("exit 0", rc == 0, rc)
        with open(log_path) as f:
            text = f.read()
        check("no sanitizer report", "Sanitizer" not in text
              and "runtime error" not in text, text[-2000:])
        map_warnings(work, port)
    finally:
        if gw.poll() is None:
            gw.kill()
            gw.wait()
        sim.terminate()
        sim.wait(10)
        logf.close()
        sock.close()
        shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
