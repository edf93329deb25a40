#!/usr/bin/python3
"""fieldgate-sim checked with an independent client: pymodbus 3.0 (Debian).

Typed values from tests/data/sim_units.yaml decode right on the pymodbus
side; two listening ports serve the same units; 200 concurrent TCP clients
each read once; a slow unit does not hold up a fast one (count-based); a
counter wave moves and a client write stops it; SIGTERM exits 0 with a
STATS line.  Exit 77 when pymodbus is missing."""
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

try:
    from pymodbus.client import ModbusTcpClient
    from pymodbus.constants import Endian
    from pymodbus.payload import BinaryPayloadDecoder
except ImportError:
    print("SKIP: pymodbus is not installed for /usr/bin/python3")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("FG_SOURCE_DIR", os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("FG_BUILD_DIR", os.path.join(SOURCE, "build"))
SIM = os.path.join(BUILD, "fieldgate-sim")
UNITS = os.path.join(SOURCE, "tests", "data", "sim_units.yaml")

failures = []


def check(name, cond, detail=""):
    if cond:
        print("ok:", name)
    else:
        print("FAIL:", name, detail)
        failures.append(name)


def start_sim(args):
    proc = subprocess.Popen([SIM] + args, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        print("FAIL: no READY line:", line, proc.stderr.read())
        sys.exit(1)
    print(line.strip())
    ports = [int(f.rsplit(":", 1)[1]) for f in line.split()
             if f.startswith("tcp=")]
    return proc, ports


def client(port, timeout=3):
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=timeout, retries=0)
    if not c.connect():
        raise RuntimeError("cannot connect to port %d" % port)
    return c


def regs(c, address, count, unit, fc=3):
    if fc == 3:
        r = c.read_holding_registers(address, count, slave=unit)
    else:
        r = c.read_input_registers(address, count, slave=unit)
    if r.isError():
        raise RuntimeError("read %d@%d unit %d: %s" % (count, address, unit, r))
    return r.registers


def typed_values(port):
    c = client(port)
    h = regs(c, 0, 31, 1)
    dec = BinaryPayloadDecoder.fromRegisters(h[0:2], byteorder=Endian.Big,
                                             wordorder=Endian.Little)
    check("float32 CDAB 230.5", dec.decode_32bit_float() == 230.5, h[0:2])
    dec = BinaryPayloadDecoder.fromRegisters(h[2:4], byteorder=Endian.Big,
                                             wordorder=Endian.Big)
    check("float32 ABCD -1.25", dec.decode_32bit_float() == -1.25, h[2:4])
    # DCBA: the bytes on the wire are the little-endian encoding.
    raw = struct.pack(">2H", *h[4:6])
    check("int32 DCBA -123456789",
          struct.unpack("<i", raw)[0] == -123456789, h[4:6])
    raw = struct.pack(">2H", *h[6:8])  # BADC: bytes swapped in each word
    swapped = bytes([raw[1], raw[0], raw[3], raw[2]])
    check("uint32 BADC 0x12345678",
          struct.unpack(">I", swapped)[0] == 0x12345678, h[6:8])
    dec = BinaryPayloadDecoder.fromRegisters(h[8:12], byteorder=Endian.Big,
                                             wordorder=Endian.Big)
    check("float64 ABCD -2.5", dec.decode_64bit_float() == -2.5, h[8:12])
    raw = struct.pack(">4H", *h[12:16])
    check("int64 HGFEDCBA -2", struct.unpack("<q", raw)[0] == -2, h[12:16])
    dec = BinaryPayloadDecoder.fromRegisters(h[16:17], byteorder=Endian.Big)
    check("int16 -300", dec.decode_16bit_int() == -300, h[16])
    check("raw registers", h[17:20] == [1, 2, 0xFFFF], h[17:20])
    dec = BinaryPayloadDecoder.fromRegisters(h[20:24], byteorder=Endian.Big)
    check("string SIM-1", dec.decode_string(8) == b"SIM-1\0\0\0", h[20:24])
    check("bcd16 1234", h[24] == 0x1234, hex(h[24]))
    i = regs(c, 0, 5, 1, fc=4)  # input 0..12 (10..12 are waves)
    dec = BinaryPayloadDecoder.fromRegisters(i[0:2], byteorder=Endian.Big,
                                             wordorder=Endian.Little)
    check("input float32 CDAB 50.0", dec.decode_32bit_float() == 50.0, i)
    check("input raw", i[2:5] == [7, 8, 9], i)
    r = c.read_coils(0, 4, slave=1)
    check("coils", not r.isError() and r.bits[:4] == [True, False, True, True],
          r)
    r = c.read_discrete_inputs(10, 1, slave=1)
    check("discrete 10", not r.isError() and r.bits[0] is True, r)
    r = c.read_discrete_inputs(9, 1, slave=1)
    check("discrete 9 outside the table -> exception 02",
          r.isError() and getattr(r, "exception_code", 0) == 2, r)
    r = c.read_holding_registers(0, 32, slave=1)
    check("holding 31 outside the table -> exception 02",
          r.isError() and getattr(r, "exception_code", 0) == 2, r)
    # ids: 2-3 share the body: defaults, exception02, max_registers 10.
    for unit in (2, 3):
        check("unit %d defaults" % unit,
              regs(c, 98, 2, unit) == [unit * 1000 + 98, unit * 1000 + 99])
        r = c.read_holding_registers(105, 1, slave=unit)
        check("unit %d exception02 from file" % unit,
              r.isError() and getattr(r, "exception_code", 0) == 2, r)
        r = c.read_input_registers(0, 11, slave=unit)
        check("unit %d max_registers from file" % unit,
              r.isError() and getattr(r, "exception_code", 0) == 3, r)
    c.close()


def second_port_shares_units(ports):
    a, b = client(ports[0]), client(ports[1])
    r = a.write_register(500, 4242, slave=2)
    check("write on port 1", not r.isError(), r)
    check("read back on port 2", regs(b, 500, 1, 2) == [4242])
    a.close()
    b.close()


def wave_and_sticky_write(port):
    c = client(port)
    first = regs(c, 30, 1, 1)[0]
    deadline = time.monotonic() + 10
    moved = first
    while moved == first and time.monotonic() < deadline:
        time.sleep(0.05)
        moved = regs(c, 30, 1, 1)[0]
    check("counter wave moves", moved != first, (first, moved))
    r = c.write_register(30, 5000, slave=1)
    check("write to a wave value", not r.isError(), r)
    time.sleep(0.5)  # five wave periods: the write must still be there
    check("written value sticks", regs(c, 30, 1, 1) == [5000])
    c.close()


def waves_in_range(port):
    """sine -40..85 (int16), ramp 100..200, random 0..1000: every sample in
    range, and each wave takes more than one value over a few periods."""
    c = client(port)
    seen = {10: set(), 11: set(), 12: set()}
    bounds = {10: (-40, 85), 11: (100, 200), 12: (0, 1000)}
    bad = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = regs(c, 10, 3, 1, fc=4)
        vals = {10: struct.unpack(">h", struct.pack(">H", r[0]))[0],
                11: r[1], 12: r[2]}
        for a, v in vals.items():
            seen[a].add(v)
            if not bounds[a][0] <= v <= bounds[a][1]:
                bad.append((a, v))
        if all(len(s) >= 3 for s in seen.values()):
            break
        time.sleep(0.03)
    check("waves stay in range", not bad, bad[:5])
    check("waves move", all(len(s) >= 3 for s in seen.values()),
          {a: sorted(s)[:5] for a, s in seen.items()})
    c.close()


def many_clients(port, n=200):
    clients = [client(port, timeout=10) for _ in range(n)]
    results = [None] * n
    barrier = threading.Barrier(n)

    def work(k):
        unit = (2, 3)[k % 2]
        barrier.wait()
        try:
            results[k] = regs(clients[k], 600 + k, 2, unit)
        except Exception as e:  # noqa: BLE001 - reported below
            results[k] = e

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    bad = [(k, results[k]) for k in range(n)
           if results[k] != [(2, 3)[k % 2] * 1000 + 600 + k + d
                             for d in (0, 1)]]
    check("%d concurrent clients each read once" % n, not bad, bad[:5])
    for c in clients:
        c.close()


def slow_does_not_block_fast(port, n=50):
    """Unit 4 answers after 2 s.  While its request is pending, unit 1
    answers n requests on another connection, and a pipelined fast request
    on the slow request's own connection is answered first."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow_req = struct.pack(">HHHBBHH", 1, 0, 6, 4, 3, 7, 1)
    s.sendall(slow_req)
    c = client(port)
    answered = 0
    for k in range(n):
        if regs(c, k, 1, 2) == [2000 + k]:
            answered += 1
    pending = not select.select([s], [], [], 0)[0]
    check("%d fast answers while the slow one is pending" % n,
          answered == n and pending, (answered, pending))
    # Pipelining on the same socket: the fast answer (tid 2) comes first.
    s.sendall(struct.pack(">HHHBBHH", 2, 0, 6, 2, 3, 8, 1))
    first = s.recv(11)
    check("pipelined fast request answered before the slow one",
          first == struct.pack(">HHHBBBH", 2, 0, 5, 2, 3, 2, 2008), first)
    rest = b""
    while len(rest) < 11:
        chunk = s.recv(11 - len(rest))
        if not chunk:
            break
        rest += chunk
    check("slow answer arrives, right value",
          rest == struct.pack(">HHHBBBH", 1, 0, 5, 4, 3, 2, 4007), rest)
    s.close()
    c.close()


def dead_unit(port):
    c = client(port, timeout=1)
    try:
        r = c.read_holding_registers(0, 1, slave=5)
        ok = r.isError() and not hasattr(r, "exception_code")
    except Exception:  # noqa: BLE001 - a timeout is what we want
        ok = True
    check("dead unit 5 does not answer", ok)
    c.close()


def main():
    if not os.access(SIM, os.X_OK):
        print("FAIL: %s is not built" % SIM)
        return 1
    proc, ports = start_sim(["--tcp", "127.0.0.1:0", "--tcp", "127.0.0.1:0",
                             "--file", UNITS, "--stats"])
    try:
        check("two tcp ports", len(ports) == 2 and ports[0] != ports[1],
              ports)
        typed_values(ports[0])
        second_port_shares_units(ports)
        wave_and_sticky_write(ports[1])
        waves_in_range(ports[0])
        many_clients(ports[0])
        slow_does_not_block_fast(ports[0])
        dead_unit(ports[1])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    check("SIGTERM -> exit 0", proc.returncode == 0,
          (proc.returncode, err[-2000:]))
    stats = [ln for ln in out.splitlines() if ln.startswith("STATS ")]
    check("STATS line", len(stats) == 1 and " unit5=1/0" in stats[0], stats)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
