#!/usr/bin/python3
"""fieldgate against an independent Modbus device: a pymodbus server
(pymodbus_server.py, pymodbus's own server API).  Values of every numeric
type and byte order are written THROUGH PYMODBUS (BinaryPayloadBuilder and
its client) and read back with `fieldgate read --json`; values written with
`fieldgate write` are read back with pymodbus's decoder; refused writes
leave the registers unchanged.  Exit 77 (skip) when pymodbus is missing."""
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    from pymodbus.client import ModbusTcpClient
    from pymodbus.constants import Endian
    from pymodbus.payload import BinaryPayloadBuilder, BinaryPayloadDecoder
except ImportError:
    print("SKIP: python3-pymodbus is not installed")
    sys.exit(77)

BUILD = os.environ.get("FG_BUILD_DIR", ".")
HERE = os.path.dirname(os.path.abspath(__file__))
FIELDGATE = os.path.join(BUILD, "fieldgate")

# Byte order letters -> pymodbus (byteorder, wordorder).
ORDERS16 = {"AB": Endian.Big, "BA": Endian.Little}
ORDERS32 = {"ABCD": (Endian.Big, Endian.Big), "CDAB": (Endian.Big, Endian.Little),
            "BADC": (Endian.Little, Endian.Big), "DCBA": (Endian.Little, Endian.Little)}
ORDERS64 = {"ABCDEFGH": (Endian.Big, Endian.Big),
            "GHEFCDAB": (Endian.Big, Endian.Little),
            "BADCFEHG": (Endian.Little, Endian.Big),
            "HGFEDCBA": (Endian.Little, Endian.Little)}

# type -> (builder method, words, sample values, one per order)
TYPES32 = {"int32": ("add_32bit_int", [-123456789, 2147483647, -2, 305419896]),
           "uint32": ("add_32bit_uint", [4000000000, 1, 305419896, 2882400001]),
           "float32": ("add_32bit_float", [230.5, -1.25, 1048576.5, -0.0078125])}
TYPES64 = {"int64": ("add_64bit_int", [-9007199254740993, -2, 81985529216486895,
                                       9223372036854775807]),
           "uint64": ("add_64bit_uint", [18446744073709551615, 1,
                                         81985529216486895, 1 << 63]),
           "float64": ("add_64bit_float", [-2.5e10 + 0.125, 3.141592653589793,
                                           1e-300, -7.0])}
TYPES16 = {"int16": ("add_16bit_int", [-300, 12345]),
           "uint16": ("add_16bit_uint", [65535, 4660])}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def start_server():
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "pymodbus_server.py"), "1"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("READY"):
        p.kill()
        p.wait()
        print("SKIP: pymodbus server did not start")
        sys.exit(77)
    port = int(line.split("tcp=127.0.0.1:")[1].split()[0])
    # Readiness by connecting.
    deadline = time.monotonic() + 10
    client = ModbusTcpClient("127.0.0.1", port=port)
    while not client.connect():
        if time.monotonic() > deadline:
            p.kill()
            p.wait()
            sys.exit("pymodbus server does not accept connections")
        time.sleep(0.05)
    return p, port, client


def run(args, timeout=30):
    return subprocess.run([FIELDGATE] + args, capture_output=True, text=True,
                          timeout=timeout)


def main():
    server, port, client = start_server()
    try:
        points = []   # (name, type, order, address, expected)
        addr = 0
        for typ, (method, values) in TYPES16.items():
            for (order, bo), value in zip(ORDERS16.items(), values):
                b = BinaryPayloadBuilder(byteorder=bo, wordorder=Endian.Big)
                getattr(b, method)(value)
                points.append((f"{typ}_{order}", typ, order, addr, value, b.to_registers()))
                addr += 1
        for types, orders, words in ((TYPES32, ORDERS32, 2), (TYPES64, ORDERS64, 4)):
            for typ, (method, values) in types.items():
                for (order, (bo, wo)), value in zip(orders.items(), values):
                    b = BinaryPayloadBuilder(byteorder=bo, wordorder=wo)
                    getattr(b, method)(value)
                    points.append((f"{typ}_{order}", typ, order, addr, value, b.to_registers()))
                    addr += words
        for name, typ, order, a, value, regs in points:
            rr = client.write_registers(a, regs, slave=1)
            check(not rr.isError(), f"pymodbus write {name}")
        # A string (two characters a register, high byte first) and a coil.
        sb = BinaryPayloadBuilder(byteorder=Endian.Big, wordorder=Endian.Big)
        sb.add_string("PUMP-7")
        client.write_registers(300, sb.to_registers(), slave=1)
        client.write_coil(5, True, slave=1)
        client.write_register(400, 4321, slave=1)  # the write target

        lines = ["links:",
                 f"  - {{name: dev, type: tcp, host: 127.0.0.1, port: {port}, timeout: 1s,",
                 "     units: [{name: d, id: 1, points: ["]
        for name, typ, order, a, value, regs in points:
            lines.append(f"       {{name: {name}, table: holding, address: {a}, "
                         f"type: {typ}, order: {order}, writable: true}},")
        lines.append("       {name: label, table: holding, address: 300, type: string, length: 3},")
        lines.append("       {name: run, table: coil, address: 5, type: bool},")
        lines.append("       {name: sp, table: holding, address: 400, type: uint16, "
                     "writable: true, min: 0, max: 5000},")
        lines.append("       {name: ro, table: holding, address: 401, type: uint16}]}]}")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "map.yaml")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")

            # Read everything back through fieldgate.
            r = run(["read", "-c", path, "--json"])
            check(r.returncode == 0, f"fieldgate read exit {r.returncode}: {r.stderr}")
            got = {}
            for line in r.stdout.splitlines():
                obj = json.loads(line)
                got[obj["point"]] = obj
            for name, typ, order, a, value, regs in points:
                o = got.get(name)
                check(o is not None and o["quality"] == "ok", f"{name}: quality {o}")
                if o is not None:
                    check(o["value"] == value, f"{name}: fieldgate read {o['value']!r}, "
                          f"pymodbus wrote {value!r} as {regs}")
            check(got.get("label", {}).get("value") == "PUMP-7", f"label: {got.get('label')}")
            check(got.get("run", {}).get("value") is True, f"run: {got.get('run')}")
            check(got.get("sp", {}).get("value") == 4321, f"sp: {got.get('sp')}")

            # Write through fieldgate, decode through pymodbus.
            for name, typ, order, a, value, regs in points:
                if typ.startswith("float"):
                    new = -value * 2 if value else 1.5
                elif typ.startswith("u"):
                    new = (value // 3) + 1
                else:
                    new = -(abs(value) // 3) - 1
                r = run(["write", "-c", path, f"d.{name}", repr(new), "--verify"])
                check(r.returncode == 0, f"fieldgate write {name}={new}: {r.stderr.strip()}")
                n = len(regs)
                rr = client.read_holding_registers(a, n, slave=1)
                if typ.endswith("16"):
                    bo, wo = ORDERS16[order], Endian.Big
                else:
                    bo, wo = (ORDERS32 if n == 2 else ORDERS64)[order]
                dec = BinaryPayloadDecoder.fromRegisters(rr.registers, byteorder=bo,
                                                         wordorder=wo)
                bits = {1: "16", 2: "32", 4: "64"}[n]
                kind = "float" if typ.startswith("float") else ("uint" if typ.startswith("u") else "int")
                back = getattr(dec, f"decode_{bits}bit_{kind}")()
                check(back == new, f"{name}: fieldgate wrote {new!r}, pymodbus decoded {back!r}")

            # Refused writes: no bus traffic, registers unchanged.
            before = client.read_holding_registers(400, 2, slave=1).registers
            for args, why in (([f"d.sp", "6000"], "above max"),
                              ([f"d.sp", "-1"], "below min"),
                              ([f"d.ro", "1"], "read-only"),
                              ([f"d.sp", "lots"], "not a number")):
                r = run(["write", "-c", path] + args)
                check(r.returncode != 0, f"write {args} ({why}) was accepted")
                check("refused" in r.stderr or "not a value" in r.stderr,
                      f"write {args}: message {r.stderr.strip()!r}")
            after = client.read_holding_registers(400, 2, slave=1).registers
            check(before == after == [4321, 0], f"registers changed: {before} -> {after}")
    finally:
        client.close()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print(f"ok: {len(points)} typed points read and written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
