#!/usr/bin/python3
"""Runs a command under the sandbox a systemd service unit describes, on a
machine where systemd is not PID 1 (containers, CI): fieldgate's CI proves
with it that the daemon works inside systemd/fieldgate.service
(tests/integration/test_systemd_unit.py; docs/testing.md).

    scripts/unit-sandbox.py [options] UNIT -- COMMAND [ARG...]

Must run as root.  What the unit says is applied with:

- bubblewrap (mount, PID, IPC, UTS and cgroup namespaces):
  ProtectSystem=strict (/ read-only), ProtectHome=yes, PrivateTmp=yes,
  DevicePolicy=closed + DeviceAllow=char-ttyX (a minimal /dev plus the
  existing /dev/ttyX* nodes), ProtectKernelTunables (/proc/sys read-only),
  ProtectProc=invisible (a private /proc: no other process is visible),
  ProtectHostname, PrivateMounts, RemoveIPC (a private IPC namespace),
  StateDirectory= (--state DIR, writable, as $STATE_DIRECTORY),
  RuntimeDirectory= with RuntimeDirectoryMode= (a fresh directory per run
  under /run/unit-sandbox-run-*/, or --runtime DIR; writable, owned by the
  service user, as $RUNTIME_DIRECTORY; a fresh one is removed at the end,
  as systemd removes it when the unit stops);
- setpriv: the service user (--user, default nobody; the unit's
  User= rarely exists on a test machine) and SupplementaryGroups=, an
  empty CapabilityBoundingSet=, NoNewPrivileges=yes;
- seccomp filters built with libseccomp (python3-seccomp) exactly as
  systemd builds them: SystemCallFilter= (groups expanded by
  `systemd-analyze syscall-filter`, @default implied by an allow list,
  later "~" lines removing calls; a call outside the list kills the
  process unless SystemCallErrorNumber= says otherwise),
  SystemCallArchitectures=native, RestrictAddressFamilies=,
  RestrictNamespaces=yes, MemoryDenyWriteExecute=yes, ProtectClock=,
  ProtectKernelModules=, ProtectKernelLogs=, RestrictRealtime=,
  RestrictSUIDSGID=;
- UMask= and LimitNOFILE= (the process's own umask and rlimit).

Not applied (cgroup or mount-option features with no equivalent here):
MemoryMax= and TasksMax= (the test checks the daemon's use against them),
ProcSubset=pid, LockPersonality=, the device cgroup itself.  A setting
this script does not know fails the run rather than being ignored.

Options: --user NAME, --state DIR, --runtime DIR, --ro PATH (bind PATH read-only at the
same place, e.g. a map under the private /tmp; repeatable), --env K=V
(repeatable; the command otherwise gets systemd's small environment plus
ASAN_OPTIONS/UBSAN_OPTIONS, with detect_leaks=0: LeakSanitizer needs
ptrace), --print (show the bwrap command line).
"""
import glob
import grp
import json
import os
import pwd
import resource
import shutil
import subprocess
import sys

# Settings this script applies (or knows it cannot, listed above).  Any
# other [Service] key that restricts the process is refused.
HANDLED = {
    "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateMounts",
    "DevicePolicy", "DeviceAllow", "ProtectKernelTunables",
    "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
    "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset",
    "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime",
    "RestrictSUIDSGID", "RemoveIPC", "LockPersonality",
    "MemoryDenyWriteExecute", "SystemCallArchitectures", "SystemCallFilter",
    "SystemCallErrorNumber", "CapabilityBoundingSet", "AmbientCapabilities",
    "NoNewPrivileges", "User", "Group", "SupplementaryGroups", "UMask",
    "StateDirectory", "StateDirectoryMode", "RuntimeDirectory",
    "RuntimeDirectoryMode", "LimitNOFILE", "MemoryMax", "TasksMax",
}
# Keys that do not restrict the process (service management).
IGNORED = {
    "Type", "ExecStartPre", "ExecStart", "ExecReload", "WatchdogSec",
    "Restart", "RestartSec", "RestartPreventExitStatus", "TimeoutStopSec",
    "LoadCredential",
}

AF = {"AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10,
      "AF_NETLINK": 16, "AF_PACKET": 17}
AF_MAX = 46
CLONE_NS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000,
            0x20000000, 0x40000000, 0x00000080]  # NEWNS..NEWNET, NEWTIME
PROT_WRITE, PROT_EXEC, SHM_EXEC = 2, 4, 0o100000
S_ISUID, S_ISGID = 0o4000, 0o2000


def die(msg):
    print(f"unit-sandbox: {msg}", file=sys.stderr)
    sys.exit(125)


def parse_unit(path):
    """[(key, value)] of the [Service] section, in order."""
    out, section = [], None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section != "Service" or "=" not in line:
                continue
            k, v = line.split("=", 1)
            out.append((k.strip(), v.strip()))
    return out


def settings(pairs):
    s = {}
    for k, v in pairs:
        if k not in HANDLED and k not in IGNORED:
            die(f"unit setting {k}= is not supported by this sandbox")
        s.setdefault(k, []).append(v)
    return s


def last(s, key, default=None):
    return s[key][-1] if key in s else default


def yes(s, key):
    return last(s, key, "no").lower() in ("yes", "true", "1", "on",
                                           "strict", "invisible")


def expand(name, seen=None):
    """A SystemCallFilter= token to the set of system call names."""
    if not name.startswith("@"):
        return {name}
    seen = seen if seen is not None else set()
    if name in seen:
        return set()
    seen.add(name)
    r = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager",
                        name], capture_output=True, text=True)
    if r.returncode != 0:
        die(f"systemd-analyze syscall-filter {name}: {r.stderr.strip()}")
    calls = set()
    for line in r.stdout.splitlines()[1:]:
        tok = line.strip()
        if not tok or tok.startswith("#"):
            continue
        calls |= expand(tok, seen)
    return calls


def syscall_policy(s):
    """What systemd's seccomp filters for this unit contain, as JSON."""
    pol = {"allow": None, "errno": [], "kill_errno": None}
    lines = s.get("SystemCallFilter", [])
    allow = None
    for v in lines:
        if v == "":
            allow = None
            continue
        deny = v.startswith("~")
        toks = v[1:].split() if deny else v.split()
        calls = set()
        for t in toks:
            calls |= expand(t.split(":")[0])
        if allow is None:
            if deny:
                die("a deny-list SystemCallFilter= is not supported")
            allow = expand("@default") | calls
        elif deny:
            allow -= calls
        else:
            allow |= calls
    if allow is not None:
        pol["allow"] = sorted(allow)
    err = last(s, "SystemCallErrorNumber")
    if err:
        import errno
        pol["kill_errno"] = getattr(errno, err.split(":")[0])
    rules = pol["errno"]
    deny_eperm = set()
    if yes(s, "ProtectClock"):
        deny_eperm |= expand("@clock")
    if yes(s, "ProtectKernelModules"):
        deny_eperm |= expand("@module")
    if yes(s, "ProtectKernelLogs"):
        deny_eperm.add("syslog")
    for c in sorted(deny_eperm):
        rules.append([c, 1, []])
    fams = last(s, "RestrictAddressFamilies")
    if fams:
        if fams.startswith("~"):
            die("a deny-list RestrictAddressFamilies= is not supported")
        allowed = {AF[f] for f in fams.split()}
        for af in range(AF_MAX):
            if af not in allowed:
                rules.append(["socket", 97, [[0, "EQ", af]]])
        rules.append(["socket", 97, [[0, "GE", AF_MAX]]])
    if yes(s, "RestrictNamespaces"):
        rules.append(["unshare", 1, []])
        rules.append(["setns", 1, []])
        for fl in CLONE_NS:
            rules.append(["clone", 1, [[0, "MASKED_EQ", fl, fl]]])
        rules.append(["clone3", 38, []])  # ENOSYS: libc falls back to clone
    if yes(s, "MemoryDenyWriteExecute"):
        wx = PROT_WRITE | PROT_EXEC
        rules.append(["mmap", 1, [[2, "MASKED_EQ", wx, wx]]])
        rules.append(["mprotect", 1, [[2, "MASKED_EQ", PROT_EXEC, PROT_EXEC]]])
        rules.append(["pkey_mprotect", 1,
                      [[2, "MASKED_EQ", PROT_EXEC, PROT_EXEC]]])
        rules.append(["shmat", 1, [[2, "MASKED_EQ", SHM_EXEC, SHM_EXEC]]])
    if yes(s, "RestrictRealtime"):
        for pol_ in (1, 2, 6):  # SCHED_FIFO, SCHED_RR, SCHED_DEADLINE
            rules.append(["sched_setscheduler", 1, [[1, "EQ", pol_]]])
    if yes(s, "RestrictSUIDSGID"):
        for bit in (S_ISUID, S_ISGID):
            rules.append(["chmod", 1, [[1, "MASKED_EQ", bit, bit]]])
            rules.append(["fchmod", 1, [[1, "MASKED_EQ", bit, bit]]])
            rules.append(["fchmodat", 1, [[2, "MASKED_EQ", bit, bit]]])
    pol["native_only"] = last(s, "SystemCallArchitectures") == "native"
    return pol


def bwrap_args(s, state, ro_paths, rw_paths=()):
    a = ["bwrap", "--die-with-parent", "--new-session",
         "--unshare-pid", "--unshare-ipc", "--unshare-uts",
         "--unshare-cgroup-try", "--share-net"]
    ps = last(s, "ProtectSystem", "no")
    if ps != "strict":
        die(f"ProtectSystem={ps}: only strict is supported")
    a += ["--ro-bind", "/", "/"]
    if last(s, "DevicePolicy") == "closed":
        a += ["--dev", "/dev"]
        for d in s.get("DeviceAllow", []):
            spec = d.split()[0]
            if spec.startswith("char-"):
                for node in sorted(glob.glob(f"/dev/{spec[5:]}[0-9]*")):
                    a += ["--dev-bind", node, node]
    a += ["--proc", "/proc"]
    if yes(s, "ProtectKernelTunables"):
        a += ["--ro-bind", "/proc/sys", "/proc/sys"]
    hidden = []  # file systems replaced by an empty tmpfs
    if yes(s, "ProtectHome"):
        for d in ("/home", "/root", "/run/user"):
            if os.path.isdir(d):
                a += ["--tmpfs", d]
                hidden.append(d)
    if yes(s, "PrivateTmp"):
        a += ["--perms", "1777", "--tmpfs", "/tmp",
              "--perms", "1777", "--tmpfs", "/var/tmp"]
        hidden += ["/tmp", "/var/tmp"]
    binds = [("--ro-bind", p) for p in ro_paths]
    if state:
        binds.append(("--bind", state))
    binds += [("--bind", p) for p in rw_paths]
    # Paths under a hidden tree (a private /tmp, an empty /home or /root)
    # need their parent directories there, with the host's modes (bwrap
    # would make them 0700 root).
    made = set()
    for _, p in binds:
        parts = p.split("/")[1:-1]
        for n in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:n])
            if d in made or not any(d.startswith(h + "/") for h in hidden):
                continue
            made.add(d)
            a += ["--perms", "%o" % (os.stat(d).st_mode & 0o7777), "--dir", d]
    for how, p in binds:
        a += [how, p, p]
    return a


def runtime_dirs(s, runtime, pw):
    """RuntimeDirectory=: ([directories], the fresh base to remove or
    None).  Each is owned by the service user with RuntimeDirectoryMode=
    (systemd's default 0755)."""
    import tempfile
    names = [n for v in s.get("RuntimeDirectory", []) for n in v.split()]
    if not names:
        return [], None
    base = None
    if runtime:
        if len(names) > 1:
            die("--runtime with several RuntimeDirectory= names")
        dirs = [runtime]
    else:
        # Under /run, which the sandbox does not hide (/tmp is private).
        base = tempfile.mkdtemp(prefix="unit-sandbox-run-", dir="/run")
        os.chmod(base, 0o755)
        dirs = [os.path.join(base, n) for n in names]
    mode = int(last(s, "RuntimeDirectoryMode", "0755"), 8)
    for d in dirs:
        os.makedirs(d, exist_ok=True)
        os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(d, mode)
    return dirs, base


def setpriv_args(s, user):
    pw = pwd.getpwnam(user)
    groups = [grp.getgrnam(g).gr_gid
              for v in s.get("SupplementaryGroups", []) for g in v.split()]
    a = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}"]
    a += [f"--groups={','.join(map(str, groups))}"] if groups else \
        ["--clear-groups"]
    if "CapabilityBoundingSet" in s and last(s, "CapabilityBoundingSet") == "":
        a += ["--bounding-set=-all", "--inh-caps=-all"]
    if yes(s, "NoNewPrivileges"):
        a += ["--no-new-privs"]
    return a, pw


def stage2(argv):
    """Inside the sandbox, as the service user: umask, limits, seccomp,
    exec."""
    import seccomp
    pol_file, umask, nofile = argv[0], argv[1], argv[2]
    cmd = argv[argv.index("--") + 1:]
    with open(pol_file) as f:
        pol = json.load(f)
    os.umask(int(umask, 8))
    if nofile:
        n = int(nofile)
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    ops = {"EQ": seccomp.EQ, "GE": seccomp.GE, "MASKED_EQ": seccomp.MASKED_EQ}
    filters = []
    if pol["errno"]:
        f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        for name, err, args in pol["errno"]:
            conds = [seccomp.Arg(x[0], ops[x[1]], *x[2:]) for x in args]
            try:
                f.add_rule(seccomp.ERRNO(err), name, *conds)
            except (ValueError, RuntimeError):
                pass
        filters.append(f)
    # The allow list last: loading a filter is itself a system call.
    if pol["allow"] is not None:
        act = seccomp.ERRNO(pol["kill_errno"]) if pol["kill_errno"] else \
            seccomp.KILL_PROCESS
        f = seccomp.SyscallFilter(defaction=act)
        for c in pol["allow"]:
            try:
                f.add_rule(seccomp.ALLOW, c)
            except (ValueError, RuntimeError):
                pass  # not a system call on this architecture
        filters.append(f)
    # Native only: libseccomp's filters match the native architecture and
    # kill on any other (its default bad-architecture action).
    for f in filters:
        f.load()
    os.execv(cmd[0], cmd)


def main(argv):
    if argv and argv[0] == "--stage2":
        return stage2(argv[1:])
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[argv.index("--") + 1:]
    opts = argv[:argv.index("--")]
    user, state, ro, env_extra, show, unit = "nobody", None, [], {}, False, None
    runtime = None
    i = 0
    while i < len(opts):
        o = opts[i]
        if o in ("--user", "--state", "--runtime", "--ro", "--env"):
            if i + 1 >= len(opts):
                die(f"{o} wants a value")
            v = opts[i + 1]
            i += 2
            if o == "--user":
                user = v
            elif o == "--state":
                state = os.path.abspath(v)
            elif o == "--runtime":
                runtime = os.path.abspath(v)
            elif o == "--ro":
                ro.append(os.path.abspath(v))
            else:
                k, _, val = v.partition("=")
                env_extra[k] = val
            continue
        if o == "--print":
            show = True
        elif unit is None:
            unit = o
        else:
            die(f"unexpected argument {o}")
        i += 1
    if not unit or not cmd:
        die("usage: unit-sandbox.py [options] UNIT -- COMMAND [ARG...]")
    if os.geteuid() != 0:
        die("must run as root (it switches to the service user)")
    for tool in ("bwrap", "setpriv", "systemd-analyze"):
        if not shutil.which(tool):
            die(f"{tool} is missing (scripts/deps.sh installs it)")
    s = settings(parse_unit(unit))
    sp, pw = setpriv_args(s, user)
    if state:
        os.makedirs(state, exist_ok=True)
        os.chown(state, pw.pw_uid, pw.pw_gid)
        os.chmod(state, int(last(s, "StateDirectoryMode", "0755"), 8))
    import tempfile
    run_dirs, run_base = runtime_dirs(s, runtime, pw)
    pol = syscall_policy(s)
    # The policy goes where the sandbox sees it read-only: not under /tmp.
    fd, polfile = tempfile.mkstemp(prefix="unit-sandbox-", suffix=".json",
                                   dir="/run")
    with os.fdopen(fd, "w") as f:
        json.dump(pol, f)
    os.chmod(polfile, 0o644)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                   "/sbin:/bin",
           "LANG": os.environ.get("LANG", "C.UTF-8"),
           "USER": pw.pw_name, "LOGNAME": pw.pw_name, "HOME": pw.pw_dir,
           "SHELL": pw.pw_shell}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    # LeakSanitizer stops the world with ptrace, which a hardened unit does
    # not allow: its tracer is killed and the process would spin at exit.
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0") \
        .lstrip(":")
    if state:
        env["STATE_DIRECTORY"] = state
    if run_dirs:
        env["RUNTIME_DIRECTORY"] = ":".join(run_dirs)
    env.update(env_extra)
    nofile = last(s, "LimitNOFILE", "")
    # This script and the command stay visible wherever they are (a
    # checkout under /root or /home is hidden by ProtectHome=).
    exe = shutil.which(cmd[0]) or cmd[0]
    ro += [os.path.abspath(__file__), os.path.abspath(exe), polfile]
    args = bwrap_args(s, state, ro, run_dirs) \
        + sp + ["/usr/bin/python3", os.path.abspath(__file__), "--stage2",
                polfile, last(s, "UMask", "0022"), nofile, "--"] + cmd
    if show:
        print(" ".join(args), file=sys.stderr)
    try:
        p = subprocess.Popen(args, env=env)
        # Forward the signals a service manager sends.
        import signal
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda n, _f: p.send_signal(n))
        rc = p.wait()
    finally:
        try:
            os.unlink(polfile)
        except OSError:
            pass
        if run_base:
            shutil.rmtree(run_base, ignore_errors=True)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
