#!/usr/bin/python3
"""fieldgate on a `type: rtu-over-tcp` link: RTU frames (with CRC) through a
TCP socket, as a serial-to-Ethernet gateway in transparent mode passes them.

The gateway is socat: it opens a pty and listens on 127.0.0.1, forking a
child per connection that copies bytes between the TCP socket and the pty.
fieldgate-sim serves Modbus RTU on that pty.  (The pty address comes first
so that the pty exists before any connection; with TCP-LISTEN first, socat
would make a new pty for each connection, after it is accepted.)

Checks: `fieldgate read --json` values, exception 02 and a dead unit
(quality timeout); `fieldgate write --verify` of a register and a coil,
read back by fieldgate and by raw RTU frames from this script; a write
answered with exception 02; `fieldgate run`: units online/offline, then
socat and the sim are restarted on the same port and the link reconnects
and polls again; SIGTERM exits 0 without a sanitizer report.

Then a scripted device (a thread of this script speaking RTU over TCP)
answers every read of unit 7 with a byte count of 255 (a 260-byte frame
with a valid CRC, longer than any RTU frame): `fieldgate read` and
`fieldgate run` report a protocol error for that unit (quality timeout,
"offline (last error: protocol error)"), keep serving unit 8 on the same
connection, and neither crashes nor makes a sanitizer report (issue 8,
defect 2: this overflowed the 256-byte frame buffer).
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import socketserver
import tempfile
import threading
import time

BUILD = os.environ.get("FG_BUILD_DIR", ".")
FIELDGATE = os.path.join(BUILD, "fieldgate")
SIM = os.path.join(BUILD, "fieldgate-sim")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
    return cond


def wait_for(cond, timeout, step=0.02):
    """Polls cond() until it is true or timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu(unit, pdu):
    adu = bytes([unit]) + pdu
    return adu + struct.pack("<H", crc16(adu))


def children(pid):
    """PIDs whose parent is pid (socat's per-connection children)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, split after ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def gone(pid):
    """True once pid has exited (a zombie counts: it has closed its fds)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:].split()[0] in ("Z", "X")


def stop(proc, what):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        print(f"{what} ignored SIGTERM; killing it")
        proc.kill()
        proc.wait()


class Gateway:
    """socat (pty <-> TCP 127.0.0.1:port) and fieldgate-sim on the pty."""

    def __init__(self, tmp, port, n):
        self.tmp, self.port = tmp, port
        self.pty = os.path.join(tmp, f"pty{n}")
        self.socat_log = os.path.join(tmp, f"socat{n}.log")
        self.socat = self.sim = None
        # -t 0.05: a child whose TCP side closed stops reading the pty
        # 50 ms later, so it cannot take the answer meant for the next one.
        with open(self.socat_log, "w") as log:
            self.socat = subprocess.Popen(
                ["socat", "-d", "-d", "-t", "0.05",
                 f"PTY,link={self.pty},raw,echo=0",
                 f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"],
                stdout=subprocess.DEVNULL, stderr=log)
        if not wait_for(lambda: self.socat.poll() is not None or
                        "listening on" in self.log(), 10):
            self.close()
            sys.exit(f"socat did not listen:\n{self.log()}")
        if self.socat.poll() is not None:
            sys.exit(f"socat exited {self.socat.returncode}:\n{self.log()}")
        self.sim = subprocess.Popen(
            [SIM, "--rtu", f"{self.pty}:19200:E", "--units", "1-3", "--dead", "3",
             "--illegal", "2:5,105"],
            stdout=subprocess.PIPE, text=True)
        line = self.sim.stdout.readline()
        if not line.startswith("READY"):
            self.close()
            sys.exit(f"fieldgate-sim did not start: {line!r}")

    def log(self):
        with open(self.socat_log) as f:
            return f.read()

    def idle(self):
        """Waits until no connection child is left (the last client's
        bytes are through), so the next client has the pty to itself."""
        check(wait_for(lambda: not children(self.socat.pid), 10),
              "socat children did not exit")

    def close(self):
        # A child of socat serving a connection outlives a SIGTERM to its
        # parent.  Freeze the parent (no new children: a client that
        # reconnects at once must find no listener), note its children,
        # stop the parent (the listening socket closes), then the children
        # by PID.
        if self.socat and self.socat.poll() is None:
            os.kill(self.socat.pid, signal.SIGSTOP)
            kids = children(self.socat.pid)
            os.kill(self.socat.pid, signal.SIGTERM)
            os.kill(self.socat.pid, signal.SIGCONT)
            stop(self.socat, "socat")
            for k in kids:
                try:
                    os.kill(k, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                if not wait_for(lambda: gone(k), 10):
                    print(f"socat child {k} ignored SIGTERM; killing it")
                    os.kill(k, signal.SIGKILL)
        stop(self.socat, "socat")
        stop(self.sim, "fieldgate-sim")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fg(args, timeout=30):
    r = subprocess.run([FIELDGATE] + args, capture_output=True, text=True,
                       timeout=timeout)
    check("Sanitizer" not in r.stderr, f"fieldgate {args}: sanitizer report:\n{r.stderr}")
    return r


def read_json(path, *sel):
    r = fg(["read", "-c", path, "--json", *sel])
    got = {}
    for line in r.stdout.splitlines():
        o = json.loads(line)
        got[f"{o['unit']}.{o['point']}"] = o
    return r, got


def raw_request(port, unit, pdu, reply_len):
    """One RTU transaction from this script, for an independent check."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(rtu(unit, pdu))
        buf = b""
        while len(buf) < reply_len:
            chunk = s.recv(reply_len - len(buf))
            if not chunk:
                break
            buf += chunk
    check(len(buf) == reply_len and crc16(buf) == 0, f"raw reply {buf.hex()}")
    return buf


MAP = """poll_groups:
  - {{name: default, interval: 200ms}}
links:
  - name: gw
    type: rtu-over-tcp
    host: 127.0.0.1
    port: {port}
    timeout: 300ms
    units:
      - name: m1
        id: 1
        points:
          - {{name: u16, table: holding, address: 10, type: uint16, writable: true}}
          - {{name: u32, table: input, address: 20, type: uint32, order: ABCD}}
          - {{name: c1, table: coil, address: 1, type: bool, writable: true}}
      - name: m2
        id: 2
        points:
          - {{name: a, table: holding, address: 4, type: uint16}}
          - {{name: b, table: holding, address: 5, type: uint16}}
          - {{name: c, table: holding, address: 6, type: uint16}}
          - {{name: w, table: holding, address: 105, type: uint16, writable: true}}
      - name: m3
        id: 3
        timeout: 100ms
        retries: 0
        points:
          - {{name: a, table: holding, address: 0, type: uint16}}
"""


def commands(gw, path):
    # Reads: values, exception 02 (alone after the split), a dead unit.
    r, got = read_json(path)
    print(r.stdout, r.stderr, sep="")
    want = {"m1.u16": 1010, "m1.u32": (1020 << 16) | 1021, "m1.c1": False,
            "m2.a": 2004, "m2.c": 2006}
    for name, value in want.items():
        o = got.get(name, {})
        check(o.get("quality") == "ok" and o.get("value") == value,
              f"read {name}: {o}, want {value}")
    b = got.get("m2.b", {})
    check(b.get("quality") == "exception" and b.get("exception") == 2,
          f"read m2.b: {b}, want exception 2")
    check(got.get("m3.a", {}).get("quality") == "timeout",
          f"read m3.a: {got.get('m3.a')}, want timeout")
    check(r.returncode != 0, "read with failed points exits 0")

    # Writes with verify (FC06 and FC05), then read back twice.
    gw.idle()
    r = fg(["write", "-c", path, "m1.u16", "777", "--verify"])
    check(r.returncode == 0 and "verified" in r.stdout,
          f"write m1.u16: exit {r.returncode} {r.stdout} {r.stderr}")
    gw.idle()
    r = fg(["write", "-c", path, "m1.c1", "true", "--verify"])
    check(r.returncode == 0 and "verified" in r.stdout,
          f"write m1.c1: exit {r.returncode} {r.stdout} {r.stderr}")
    gw.idle()
    r, got = read_json(path, "m1")
    check(r.returncode == 0, f"read m1: exit {r.returncode} {r.stderr}")
    check(got.get("m1.u16", {}).get("value") == 777, f"m1.u16 after write: {got.get('m1.u16')}")
    check(got.get("m1.c1", {}).get("value") is True, f"m1.c1 after write: {got.get('m1.c1')}")
    gw.idle()
    rsp = raw_request(gw.port, 1, struct.pack(">BHH", 3, 10, 1), 7)
    check(rsp[:5] == bytes([1, 3, 2]) + struct.pack(">H", 777), f"raw FC03 10: {rsp.hex()}")
    gw.idle()
    rsp = raw_request(gw.port, 1, struct.pack(">BHH", 1, 1, 1), 6)
    check(rsp[:4] == bytes([1, 1, 1, 1]), f"raw FC01 1: {rsp.hex()}")

    # A write the unit refuses with exception 02.
    gw.idle()
    r = fg(["write", "-c", path, "m2.w", "5"])
    check(r.returncode != 0 and "exception" in r.stderr.lower(),
          f"write m2.w: exit {r.returncode} {r.stdout} {r.stderr}")
    print(r.stderr.strip())


def log_since(path, offset):
    with open(path, errors="replace") as f:
        f.seek(offset)
        return f.read()


def run_and_reconnect(gw, tmp, path):
    """Returns the gateway running at the end (a new one after restart)."""
    log = os.path.join(tmp, "run.log")
    with open(log, "w") as f:
        proc = subprocess.Popen([FIELDGATE, "run", "-c", path, "--log-level", "debug"],
                                stderr=f)
    try:
        def seen(offset, *needles):
            return wait_for(lambda: all(n in log_since(log, offset) for n in needles)
                            or proc.poll() is not None, 20) and \
                all(n in log_since(log, offset) for n in needles)

        check(seen(0, "link gw: connected", "unit m1: online", "unit m2: online",
                   "unit m3: offline", "m1.u16 = 777", "m2.a = 2004"),
              f"run: first connection:\n{log_since(log, 0)}")
        mark = os.path.getsize(log)
        gw.close()
        check(seen(mark, "link gw: disconnected", "m1.u16: disconnected"),
              f"run: no disconnect after socat stopped:\n{log_since(log, mark)}")
        gw = Gateway(tmp, gw.port, 2)
        # The new sim starts from its defaults (1010); the link comes back
        # within its backoff and polls again.
        check(seen(mark, "link gw: connected", "unit m1: online", "m1.u16 = 1010"),
              f"run: no reconnect after socat restarted:\n{log_since(log, mark)}")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            check(False, "run did not stop on SIGTERM")
        text = log_since(log, 0)
        print("".join(line for line in text.splitlines(True) if " store: " not in line))
        check(proc.returncode == 0, f"run exit status {proc.returncode}")
        check("Sanitizer" not in text, f"run: sanitizer report:\n{text}")
        print(f"run: exit {proc.returncode}, reconnected after a socat restart")
    finally:
        stop(proc, "fieldgate run")
    return gw


class OversizedDevice(socketserver.BaseRequestHandler):
    """RTU over TCP: unit 7 answers reads with byte count 255 (260 bytes,
    valid CRC); unit 8 answers FC03 properly (register i = 0x1200 + i)."""

    def handle(self):
        buf = b""
        while True:
            try:
                chunk = self.request.recv(256)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 8:
                req, buf = buf[:8], buf[8:]
                unit, fc, addr, count = struct.unpack(">BBHH", req[:6])
                self.server.requests.append((unit, fc, addr, count))
                if unit == 7:
                    reply = rtu(7, bytes([fc, 255]) + bytes(range(255)))
                elif unit == 8 and fc == 3:
                    regs = b"".join(struct.pack(">H", 0x1200 + addr + i)
                                    for i in range(count))
                    reply = rtu(8, bytes([3, 2 * count]) + regs)
                else:
                    reply = rtu(unit, bytes([fc | 0x80, 1]))
                try:
                    self.request.sendall(reply)
                except OSError:
                    return


class DeviceServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), OversizedDevice)
        self.requests = []


OVERSIZED_MAP = """poll_groups:
  - {{name: default, interval: 200ms}}
links:
  - name: gw
    type: rtu-over-tcp
    host: 127.0.0.1
    port: {port}
    timeout: 300ms
    units:
      - name: bad
        id: 7
        retries: 0
        points:
          - {{name: one, table: holding, address: 0, type: uint16}}
          - {{name: many, table: input, address: 200, type: uint16}}
          - {{name: bits, table: coil, address: 0, type: bool}}
      - name: good
        id: 8
        points:
          - {{name: a, table: holding, address: 4, type: uint16}}
"""


def oversized_replies(tmp):
    srv = DeviceServer()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        path = os.path.join(tmp, "oversized.yaml")
        with open(path, "w") as f:
            f.write(OVERSIZED_MAP.format(port=srv.server_address[1]))
        r, got = read_json(path)
        print(r.stdout, r.stderr, sep="")
        check(0 < r.returncode < 128, f"read oversized: exit {r.returncode}")
        for name in ("bad.one", "bad.many", "bad.bits"):
            o = got.get(name, {})
            check(o.get("quality") == "timeout",
                  f"read {name}: {o}, want quality timeout (protocol error)")
        o = got.get("good.a", {})
        check(o.get("quality") == "ok" and o.get("value") == 0x1204,
              f"read good.a after the oversized replies: {o}")
        check(any(q[0] == 7 for q in srv.requests), "unit 7 was never asked")

        log = os.path.join(tmp, "oversized-run.log")
        with open(log, "w") as f:
            proc = subprocess.Popen([FIELDGATE, "run", "-c", path], stderr=f)
        try:
            ok = wait_for(lambda: proc.poll() is not None or all(
                n in log_since(log, 0) for n in
                ("unit good: online", "unit bad: offline (last error: protocol error)")), 20)
            text = log_since(log, 0)
            check(ok and proc.poll() is None,
                  f"run oversized: exit {proc.returncode}:\n{text}")
            check("last error: none" not in text, f"run: 'last error: none':\n{text}")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            text = log_since(log, 0)
            check(proc.returncode == 0, f"run oversized: exit {proc.returncode}:\n{text}")
            check("Sanitizer" not in text, f"run oversized: sanitizer report:\n{text}")
            print(f"oversized replies: {len(srv.requests)} requests answered, "
                  f"run exit {proc.returncode}")
        finally:
            stop(proc, "fieldgate run")
    finally:
        srv.shutdown()
        srv.server_close()


def main():
    if not shutil.which("socat"):
        print("SKIP: no socat")
        return 77
    for exe in (FIELDGATE, SIM):
        if not os.access(exe, os.X_OK):
            print(f"FAIL: {exe} not built")
            return 1
    with tempfile.TemporaryDirectory() as tmp:
        gw = Gateway(tmp, free_port(), 1)
        try:
            path = os.path.join(tmp, "map.yaml")
            with open(path, "w") as f:
                f.write(MAP.format(port=gw.port))
            commands(gw, path)
            gw.idle()
            gw = run_and_reconnect(gw, tmp, path)
        finally:
            gw.close()
        oversized_replies(tmp)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
