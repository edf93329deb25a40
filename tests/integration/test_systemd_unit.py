#!/usr/bin/python3
"""systemd/fieldgate.service: the unit is valid, its exposure score is at
most 2.0, and the daemon works inside its sandbox.

CI machines (and this test's) have no systemd as PID 1, so `systemd-run`
cannot start the unit; scripts/unit-sandbox.py applies the unit's
restrictions instead (bubblewrap namespaces and read-only mounts, setpriv
for the user and capabilities, seccomp filters built like systemd's from
SystemCallFilter= and the other settings; docs/testing.md).  Inside it:

1. a probe shows the sandbox is in force (non-root, no capabilities,
   NoNewPrivs, seccomp, read-only /, private /tmp and /proc, only the
   listed address families, no W+X memory, no namespaces; a privileged
   call kills);
2. `fieldgate run` with an xmpp: section polls fieldgate-sim and serves a
   XEP-0323 readout and a XEP-0325 write through a private Prosody,
   survives SIGHUP (reload: new threads, new connections), and stops on
   SIGTERM with exit 0; its /proc status shows the restrictions and that
   it stays under TasksMax=, MemoryMax= and LimitNOFILE=;
3. `fieldgate read` works there too;
4. the harness catches a broken sandbox: with connect() filtered out the
   daemon is killed by SIGSYS and this test would fail."""
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from iot_common import (MAP, XMPP_SECTION, USERS, SOURCE, BUILD,  # noqa: E402
                        start_sim, stop, readout, control, xc, NS_SD)
from fixtures.prosody import Prosody, ProsodyUnavailable  # noqa: E402

UNIT = os.path.join(SOURCE, "systemd", "fieldgate.service")
SANDBOX = os.path.join(SOURCE, "scripts", "unit-sandbox.py")
FIELDGATE = os.path.realpath(os.path.join(BUILD, "fieldgate"))
USER = "nobody"
SIGSYS_RC = 128 + signal.SIGSYS

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def unit_value(key, unit=UNIT):
    vals = [ln.split("=", 1)[1].strip() for ln in open(unit)
            if ln.startswith(key + "=")]
    return vals[-1] if vals else None


def size_bytes(text):
    m = re.fullmatch(r"(\d+)([KMG]?)", text)
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20,
                              "G": 1 << 30}[m.group(2)]


def sandboxed(args, unit=UNIT, ro=(), state=None, **kw):
    cmd = [sys.executable, SANDBOX, unit, "--user", USER,
           "--env", "ASAN_OPTIONS=" + ASAN_IN_SANDBOX]
    for p in ro:
        cmd += ["--ro", p]
    if state:
        cmd += ["--state", state]
    return cmd + ["--"] + args


# LeakSanitizer stops the world with ptrace, which the unit (rightly) does
# not allow; the other ASan checks stay on.
ASAN_IN_SANDBOX = "detect_leaks=0:abort_on_error=1"


# ---- 0. static checks -------------------------------------------------------

def static_checks(tmp):
    copy = os.path.join(tmp, "fieldgate.service")
    with open(UNIT) as f:
        text = f.read().replace("/usr/bin/fieldgate", FIELDGATE)
    with open(copy, "w") as f:
        f.write(text)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", copy],
                       capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip()
    check(r.returncode == 0 and out == "",
          f"systemd-analyze verify: exit {r.returncode}, no complaints: {out!r}")
    r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                        "--no-pager", UNIT], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for fieldgate\.service: "
                  r"(\d+\.\d+)", r.stdout)
    score = float(m.group(1)) if m else 99.0
    check(m is not None and score <= 2.0,
          f"systemd-analyze security: exposure {score} <= 2.0")
    # Packaging installs this very file (tests/integration/test_install.sh).
    check(unit_value("ExecStart") ==
          "/usr/bin/fieldgate run -c /etc/fieldgate/fieldgate.yaml",
          "ExecStart unchanged for packaging")


# ---- 1. the sandbox is in force --------------------------------------------

# unshare(CLONE_NEWUSER) in a child (it would change the caller's
# namespace): "ok", the errno name, or "SIGSYS" when seccomp kills it.  An
# unprivileged process may normally create a user namespace, so this is
# what RestrictNamespaces= must stop (CLONE_NEWNS needs CAP_SYS_ADMIN and
# fails for the service user anyway: it would prove nothing).
USERNS = r'''
def userns():
    import ctypes, errno, os, signal
    libc = ctypes.CDLL(None, use_errno=True)
    pid = os.fork()
    if pid == 0:
        r = libc.unshare(0x10000000)  # CLONE_NEWUSER
        os._exit(0 if r == 0 else min(ctypes.get_errno(), 255))
    _, st = os.waitpid(pid, 0)
    if os.WIFSIGNALED(st):
        return signal.Signals(os.WTERMSIG(st)).name
    code = os.WEXITSTATUS(st)
    return "ok" if code == 0 else errno.errorcode.get(code, str(code))
'''

PROBE = USERNS + r'''
import ctypes, errno, os, socket, sys
st = dict(l.split(":", 1) for l in open("/proc/self/status"))
def g(k): return st[k].split()
out = {}
out["uid"] = g("Uid")
out["capbnd"] = g("CapBnd")[0]
out["capeff"] = g("CapEff")[0]
out["nnp"] = g("NoNewPrivs")[0]
out["seccomp"] = g("Seccomp")[0]
out["umask"] = oct(os.umask(0))
def sock(f, t):
    try:
        socket.socket(f, t).close(); return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
out["inet"] = sock(socket.AF_INET, socket.SOCK_STREAM)
out["inet6"] = sock(socket.AF_INET6, socket.SOCK_STREAM)
out["unix"] = sock(socket.AF_UNIX, socket.SOCK_DGRAM)
out["netlink"] = sock(socket.AF_NETLINK, socket.SOCK_DGRAM)
out["packet"] = sock(socket.AF_PACKET, socket.SOCK_RAW)
try:
    open("/usr/fieldgate-probe", "w"); out["usr"] = "writable"
except OSError as e:
    out["usr"] = errno.errorcode[e.errno]
open("/tmp/probe", "w").close()
out["tmp"] = sorted(os.listdir("/tmp"))
out["home"] = os.listdir("/home") if os.path.isdir("/home") else []
out["procs"] = sorted(p for p in os.listdir("/proc") if p.isdigit())
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap(None, 4096, 7, 0x22, -1, 0)
out["mmap_wx"] = errno.errorcode.get(ctypes.get_errno())
out["userns"] = userns()
out["dev"] = sorted(os.listdir("/dev"))
print(repr(out), flush=True)
if sys.argv[1:] == ["setuid"]:
    libc.setuid(0)
    print("setuid survived", flush=True)
'''


def probe_checks(tmp):
    path = os.path.join(tmp, "probe.py")
    with open(path, "w") as f:
        f.write(PROBE)
    os.chmod(path, 0o644)
    r = subprocess.run(sandboxed([sys.executable, path], ro=[path]),
                       capture_output=True, text=True, timeout=60)
    if not check(r.returncode == 0, f"probe runs: exit {r.returncode} "
                 f"{r.stderr.strip()[-800:]}"):
        return
    o = eval(r.stdout.strip().splitlines()[-1])
    check(set(o["uid"]) == {"65534"}, f"probe: runs as {USER} ({o['uid']})")
    check(int(o["capbnd"], 16) == 0 and int(o["capeff"], 16) == 0,
          "probe: no capabilities, not even in the bounding set")
    check(o["nnp"] == "1" and o["seccomp"] == "2", "probe: NoNewPrivs, seccomp")
    check(o["umask"] == "0o77", f"probe: UMask=0077 ({o['umask']})")
    check(o["inet"] == o["inet6"] == o["unix"] == "ok",
          "probe: AF_INET, AF_INET6, AF_UNIX allowed")
    check(o["netlink"] == o["packet"] == "EAFNOSUPPORT",
          f"probe: AF_NETLINK, AF_PACKET refused ({o['netlink']}, {o['packet']})")
    check(o["usr"] == "EROFS", f"probe: /usr read-only ({o['usr']})")
    # The private /tmp holds the probe's file and nothing of the host's but
    # the parents of what the sandbox binds in (the probe script's temp
    # dir, and the source and build trees when they live under /tmp, as in
    # a fresh clone there).
    allowed = {"probe"}
    for q in (tmp, SOURCE, BUILD, SANDBOX):
        rel = os.path.relpath(os.path.realpath(q), "/tmp")
        if not rel.startswith(".."):
            allowed.add(rel.split(os.sep)[0])
    check("probe" in o["tmp"] and set(o["tmp"]) <= allowed,
          f"probe: a private /tmp ({o['tmp']}, allowed {sorted(allowed)})")
    check(o["home"] == [], "probe: /home empty")
    check(len(o["procs"]) <= 3, f"probe: no other process visible ({o['procs']})")
    check(o["mmap_wx"] == "EPERM", "probe: no writable+executable memory")
    # Compared with the same call as the same user without the sandbox: a
    # refusal inside only proves RestrictNamespaces= when it works outside.
    upath = os.path.join(tmp, "userns.py")
    with open(upath, "w") as f:
        f.write(USERNS + "print(userns(), flush=True)\n")
    os.chmod(upath, 0o644)
    r = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534",
                        "--clear-groups", "--inh-caps=-all",
                        sys.executable, upath],
                       capture_output=True, text=True, timeout=60)
    outside = (r.stdout.strip().splitlines() or ["?"])[-1]
    check(o["userns"] in ("EPERM", "SIGSYS"),
          f"probe: unshare(CLONE_NEWUSER) refused in the sandbox "
          f"({o['userns']}; without the sandbox: {outside})")
    if outside == "ok":
        # The same sandbox without RestrictNamespaces= lets it through: the
        # refusal above comes from that setting, not from elsewhere.
        loose = os.path.join(tmp, "loose.service")
        with open(UNIT) as f:
            text = f.read()
        with open(loose, "w") as f:
            f.write(text.replace("RestrictNamespaces=yes",
                                 "RestrictNamespaces=no"))
        r = subprocess.run(sandboxed([sys.executable, upath], unit=loose,
                                     ro=[upath]),
                           capture_output=True, text=True, timeout=60)
        loose_out = (r.stdout.strip().splitlines() or ["?"])[-1]
        check(loose_out == "ok",
              "probe: unshare(CLONE_NEWUSER) works without the sandbox and "
              "in it with RestrictNamespaces=no "
              f"({loose_out} {r.stderr.strip()[-200:]})")
    else:
        print(f"note: unshare(CLONE_NEWUSER) fails as {USER} even without "
              f"the sandbox here ({outside} {r.stderr.strip()[-200:]}): the "
              "namespace check above proves nothing on this machine",
              flush=True)
    check(not any(d.startswith(("sd", "nvme", "mem", "kmsg", "port"))
                  for d in o["dev"]), f"probe: a closed /dev ({o['dev']})")
    r = subprocess.run(sandboxed([sys.executable, path, "setuid"], ro=[path]),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == SIGSYS_RC and "setuid survived" not in r.stdout,
          f"probe: setuid() (@privileged) kills with SIGSYS (exit {r.returncode})")


# ---- 2. the daemon ----------------------------------------------------------

def descendants(pid):
    kids = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def find_daemon(pid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in descendants(pid):
            try:
                if os.readlink(f"/proc/{d}/exe") == FIELDGATE:
                    return d
            except OSError:
                pass
        time.sleep(0.1)
    return None


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return {k: v.split() for k, v in
                (ln.split(":", 1) for ln in f if ":" in ln)}


def wait_log(path, needle, count=1, timeout=20, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            if f.read().count(needle) >= count:
                return True
        if proc and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def gw_works(srv, gw_jid):
    """A XEP-0323 readout of m1 and a XEP-0325 write of m1.sp."""
    async def body(c):
        deadline = time.monotonic() + 20
        while True:
            try:
                info = await c["xep_0030"].get_info(jid=gw_jid, timeout=2)
                if NS_SD in info["disco_info"]["features"]:
                    break
            except Exception:  # not online yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not come online")
            await asyncio.sleep(0.2)
        events, data, _ = await readout(c, gw_jid, nodes=["m1"])
        res = await control(c, gw_jid, [("sp", "double", "42.5")], ["m1"])
        events2, data2, _ = await readout(c, gw_jid, nodes=["m1"],
                                          fields=["sp"])
        return events, data, res, data2
    events, data, res, data2 = xc.run_client(
        srv, srv.jid("ops"), USERS["ops"], body, timeout=60,
        plugins=xc.DEFAULT_PLUGINS + xc.IOT_PLUGINS)
    hr0 = data.get("m1", {}).get("hr0", {}).get("value")
    sp = data2.get("m1", {}).get("sp", {}).get("value")
    return events, hr0, res, sp


def daemon_checks(tmp, srv, sim_port):
    pw = os.path.join(tmp, "gw.pw")
    with open(pw, "w") as f:
        f.write(USERS["gw"] + "\n")
    ca = os.path.join(tmp, "ca.pem")
    shutil.copy(srv.ca_file, ca)
    path = os.path.join(tmp, "map.yaml")
    with open(path, "w") as f:
        f.write(MAP.format(port=sim_port, interval="500ms", extra_units=""))
        f.write(XMPP_SECTION.format(
            jid=srv.jid("gw"), pwfile=pw, port=srv.c2s_port, ca=ca,
            viewer=srv.jid("viewer"), ops=srv.jid("ops")))
    for p in (pw, ca, path):
        os.chmod(p, 0o644)
    state = os.path.join(tmp, "state")
    logf = os.path.join(tmp, "fieldgate.log")
    gw_jid = srv.jid("gw") + "/gw"
    with open(logf, "w") as err:
        proc = subprocess.Popen(
            sandboxed([FIELDGATE, "run", "-c", path], ro=[pw, ca, path],
                      state=state),
            stdout=subprocess.DEVNULL, stderr=err)
    try:
        pid = find_daemon(proc.pid)
        if not check(pid is not None, "the daemon runs in the sandbox"):
            return
        check(wait_log(logf, "unit m1: online", proc=proc),
              "the daemon polls: unit m1 online")
        check(wait_log(logf, "unit m3: offline", proc=proc),
              "the daemon polls: unit m3 (dead) offline")
        events, hr0, res, sp = gw_works(srv, gw_jid)
        check("done" in events and hr0 == "1000",
              f"XEP-0323 readout through Prosody: m1.hr0 = {hr0} ({events})")
        check(res[0] == "OK" and sp == "42.5",
              f"XEP-0325 write through Prosody: {res}, then sp = {sp}")
        st = proc_status(pid)
        check(set(st["Uid"]) == {"65534"}, f"daemon uid {st['Uid']}")
        check(all(int(st[k][0], 16) == 0 for k in ("CapEff", "CapPrm", "CapBnd")),
              "daemon has no capabilities")
        check(st["NoNewPrivs"][0] == "1" and st["Seccomp"][0] == "2"
              and int(st.get("Seccomp_filters", ["2"])[0]) >= 2,
              "daemon: NoNewPrivs and seccomp filters")
        check(os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"),
              "daemon: own mount namespace")
        threads = int(st["Threads"][0])
        check(threads <= int(unit_value("TasksMax")),
              f"daemon threads {threads} <= TasksMax={unit_value('TasksMax')}")
        rss = int(st["VmRSS"][0]) * 1024
        check(rss <= size_bytes(unit_value("MemoryMax")),
              f"daemon RSS {rss >> 20} MiB <= MemoryMax={unit_value('MemoryMax')}"
              " (ASan build)")
        with open(f"/proc/{pid}/limits") as f:
            nofile = [ln for ln in f if ln.startswith("Max open files")][0]
        check(nofile.split()[3] == unit_value("LimitNOFILE"),
              f"daemon: LimitNOFILE ({nofile.strip()})")
        # Reload: the engine's threads and the XMPP session are recreated.
        os.kill(pid, signal.SIGHUP)
        check(wait_log(logf, "unit m1: online", count=2, proc=proc),
              "SIGHUP reload inside the sandbox: m1 online again")
        events, hr0, res, sp = gw_works(srv, gw_jid)
        check("done" in events and hr0 == "1000" and res[0] == "OK",
              f"after reload: readout {hr0} {events}, write {res}")
        os.kill(pid, signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, f"SIGTERM: the daemon exits 0 (exit {rc})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with open(logf, errors="replace") as f:
            text = f.read()
        check("Sanitizer" not in text and "loop not closed" not in text,
              "no sanitizer report, loop closed")
        if failures:
            print("--- fieldgate log (tail) ---\n" + text[-4000:])
    # `fieldgate read` under the same unit.
    r = subprocess.run(sandboxed([FIELDGATE, "read", "-c", path, "m1.hr0"],
                                 ro=[pw, ca, path]),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and re.search(r"m1\.hr0\s+1000\b", r.stdout),
          f"fieldgate read in the sandbox: exit {r.returncode} "
          f"{r.stdout.strip()} {r.stderr.strip()[-300:]}")
    # 4. A unit that breaks the daemon is caught: the harness is sensitive.
    broken = os.path.join(tmp, "broken.service")
    with open(UNIT) as f:
        text = f.read()
    with open(broken, "w") as f:
        f.write(text.replace("SystemCallFilter=~@privileged @resources",
                             "SystemCallFilter=~@privileged @resources connect"))
    r = subprocess.run(sandboxed([FIELDGATE, "read", "-c", path, "m1.hr0"],
                                 unit=broken, ro=[pw, ca, path]),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == SIGSYS_RC,
          f"a unit that filters connect() kills fieldgate (exit {r.returncode})")


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (the sandbox switches to the service user)")
        sys.exit(77)
    missing = [t for t in ("systemd-analyze", "bwrap", "setpriv")
               if not shutil.which(t)]
    try:
        import seccomp  # noqa: F401
    except ImportError:
        missing.append("python3-seccomp")
    if missing:
        print("SKIP: missing", " ".join(missing), "(scripts/deps.sh)")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="fg-unit-")
    os.chmod(tmp, 0o755)
    sim = None
    try:
        static_checks(tmp)
        probe_checks(tmp)
        try:
            srv = Prosody(users=USERS)
            srv.__enter__()
        except ProsodyUnavailable as e:
            print("SKIP: prosody unavailable:", e)
            sys.exit(77)
        try:
            sim, port = start_sim(["--tcp", "127.0.0.1:0", "--units", "1-3",
                                   "--dead", "3"])
            daemon_checks(tmp, srv, port)
        finally:
            stop(sim)
            srv.__exit__(None, None, None)
    finally:
        if not failures and not os.environ.get("FG_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"test_systemd_unit: {len(failures)} failed")
        sys.exit(1)
    print("test_systemd_unit: all passed")


if __name__ == "__main__":
    main()
