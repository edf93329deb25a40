#!/usr/bin/python3
"""`fieldgate run` against fieldgate-sim: it polls, logs unit state changes
(a healthy unit online, a dead one offline), and SIGTERM (then, in a second
run, SIGINT) stops it cleanly: exit 0, every handle closed, and in the ASan
build no leak report."""
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("FG_BUILD_DIR", ".")
FIELDGATE = os.path.join(BUILD, "fieldgate")
SIM = os.path.join(BUILD, "fieldgate-sim")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def start_sim():
    p = subprocess.Popen([SIM, "--tcp", "127.0.0.1:0", "--units", "1-2", "--dead", "2"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("READY"):
        p.kill()
        p.wait()
        sys.exit("fieldgate-sim did not start")
    return p, int(line.split("tcp=127.0.0.1:")[1].split()[0])


def read_until(proc, needles, timeout):
    """Collects stderr lines until every needle was seen; returns the text."""
    text = ""
    deadline = time.monotonic() + timeout
    fd = proc.stderr.fileno()
    while time.monotonic() < deadline and not all(n in text for n in needles):
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        chunk = os.read(fd, 65536).decode(errors="replace")
        if not chunk:
            break
        text += chunk
    return text


def one_run(path, sig):
    proc = subprocess.Popen([FIELDGATE, "run", "-c", path], stderr=subprocess.PIPE)
    text = read_until(proc, ["unit m1: online", "unit m2: offline"], 20)
    check("unit m1: online" in text, f"{sig.name}: no 'unit m1: online' in:\n{text}")
    check("unit m2: offline" in text, f"{sig.name}: no 'unit m2: offline' in:\n{text}")
    proc.send_signal(sig)
    try:
        _, rest = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, rest = proc.communicate()
        check(False, f"{sig.name}: fieldgate run did not stop")
    text += rest.decode(errors="replace")
    check(proc.returncode == 0, f"{sig.name}: exit status {proc.returncode}\n{text}")
    check("stopped" in text, f"{sig.name}: no 'stopped' line")
    # The state line names the cause (it used to say "last error: none").
    check("unit m2: offline (last error: timed out)" in text,
          f"{sig.name}: no cause in the offline line:\n{text}")
    check("last error: none" not in text, f"{sig.name}: 'last error: none':\n{text}")
    check("loop not closed" not in text, f"{sig.name}: loop not closed cleanly")
    check("Sanitizer" not in text, f"{sig.name}: sanitizer report:\n{text}")
    print(f"{sig.name}: exit {proc.returncode}")


def main():
    sim, port = start_sim()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "map.yaml")
            with open(path, "w") as f:
                f.write(f"""poll_groups:
  - {{name: default, interval: 200ms}}
links:
  - name: plant
    type: tcp
    host: 127.0.0.1
    port: {port}
    timeout: 100ms
    units:
      - name: m1
        id: 1
        points: [{{name: a, table: holding, address: 0, type: uint16}}]
      - name: m2
        id: 2
        retries: 0
        points: [{{name: a, table: holding, address: 0, type: uint16}}]
""")
            one_run(path, signal.SIGTERM)
            one_run(path, signal.SIGINT)
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
