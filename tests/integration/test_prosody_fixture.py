#!/usr/bin/python3
"""Integration: the private Prosody fixture and the slixmpp test client.

Starts Prosody on loopback, logs two accounts in over STARTTLS with real
chain verification, exchanges messages, pings, reads the server version,
checks that a wrong CA, an untrusted server chain and a wrong password are
refused, restarts with password_hash SHA-256, pauses/resumes, drives the
CLI, and checks that every prosody it started is gone.  Exit 77 only when
prosody is missing and cannot be installed.
"""

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS_DIR)

from fixtures import xmppclient as xc  # noqa: E402
from fixtures.prosody import Prosody, ProsodyUnavailable, ensure_installed  # noqa: E402
from slixmpp.exceptions import IqError  # noqa: E402

CLI = os.path.join(TESTS_DIR, "fixtures", "prosody.py")


def step(text):
    print("-- %s" % text, flush=True)


def proc_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def listening_sockets(pid):
    """(address, port) of every TCP socket in LISTEN state that pid holds."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            next(f)
            for line in f:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if state == "0A" and inode in inodes:  # 0A = LISTEN
                    addr, port = local.split(":")
                    found.add((addr, int(port, 16)))
    return found


LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


async def exchange(srv, alice, bob):
    """alice -> bob to full and bare JID; returns what bob received plus facts."""
    token = secrets.token_hex(8)
    got = []
    for target in (bob.boundjid.full, bob.boundjid.bare):
        body = "%s to %s" % (token, target)
        fut = xc.expect_event(bob, "message", lambda m: m["from"].bare == alice.boundjid.bare)
        alice.send_message(mto=target, mbody=body, mtype="chat")
        msg = await asyncio.wait_for(fut, 5)
        got.append((body, msg["body"], msg["to"].bare))
    rtt = await alice["xep_0199"].ping(jid=srv.domain, timeout=5)
    version = await alice["xep_0092"].get_version(srv.domain, timeout=5)
    return {"messages": got, "rtt": rtt, "software": version["software_version"]["name"],
            "tls": xc.tls_version(alice), "sasl": xc.sasl_mechanism(alice),
            "bob_sasl": xc.sasl_mechanism(bob)}


def check_session(srv, info, hash_name):
    for sent, received, to in info["messages"]:
        assert received == sent, "bob received %r, alice sent %r" % (received, sent)
        assert to == srv.jid("bob"), to
    assert isinstance(info["rtt"], float) and info["rtt"] >= 0, info["rtt"]
    assert info["software"] == "Prosody", info["software"]
    assert info["tls"] in ("TLSv1.2", "TLSv1.3"), info["tls"]
    for used, offered in (info["sasl"], info["bob_sasl"]):
        assert used in ("SCRAM-%s" % hash_name, "SCRAM-%s-PLUS" % hash_name), used
        assert "SCRAM-%s" % hash_name in offered, offered
        other = "SCRAM-SHA-256" if hash_name == "SHA-1" else "SCRAM-SHA-1"
        assert other not in offered, offered


async def pubsub_rights(srv, admin, other):
    """Create/publish on the component as admin and non-admin; PEP as non-admin."""
    item = ET.Element("{urn:example:fieldgate}value")
    item.text = "42"
    out = {}
    for who, client in (("admin", admin), ("other", other)):
        for op, call in (("create", lambda c: c["xep_0060"].create_node(srv.pubsub_domain, "fg-" + who)),
                         ("publish", lambda c: c["xep_0060"].publish(srv.pubsub_domain, "fg-admin", payload=item))):
            try:
                await call(client)
                out[who + "_" + op] = "ok"
            except IqError as e:
                out[who + "_" + op] = e.condition
    await other["xep_0060"].publish(other.boundjid.bare, "urn:example:fieldgate", payload=item)
    out["other_pep"] = "ok"
    return out


def expect_error(cls, fn):
    try:
        fn()
    except cls as e:
        return e
    raise AssertionError("expected %s" % cls.__name__)


async def noop(client):
    return client.boundjid.full


async def ping_server(client):
    return await client["xep_0199"].ping(jid=client.boundjid.domain, timeout=5)


def test_fixture():
    users = {"alice": "alice-" + secrets.token_hex(4), "bob": "bob pw with spaces"}
    srv = Prosody(users=users, pubsub_admins=["alice@fieldgate.test"])
    pids = []
    with srv:
        pids.append(srv.pid)
        alice, bob = (srv.jid("alice"), users["alice"]), (srv.jid("bob"), users["bob"])
        step("prosody pid %d, c2s %d, direct tls %d, dir %s" % (srv.pid, srv.c2s_port, srv.tls_port, srv.dir))

        with open(srv.ca_file, encoding="ascii") as f:
            ca_pem = f.read()

        step("listeners: only the two c2s ports, only on loopback")
        socks = listening_sockets(srv.pid)
        assert {port for _, port in socks} == {srv.c2s_port, srv.tls_port}, socks
        assert all(addr in LOOPBACK_HEX for addr, _ in socks), socks

        step("STARTTLS + SCRAM-SHA-1: messages, ping, version")
        info = xc.run_clients(srv, [alice, bob], lambda a, b: exchange(srv, a, b), timeout=20)
        check_session(srv, info, "SHA-1")

        step("direct TLS (XEP-0368)")
        rtt = xc.run_client(srv, *alice, ping_server, timeout=10, direct_tls=True)
        assert rtt >= 0

        step("pubsub component: only pubsub_admins create/publish; PEP for all; IoT plugins load")
        rights = xc.run_clients(srv, [alice, bob], lambda a, b: pubsub_rights(srv, a, b), timeout=20,
                                plugins=xc.DEFAULT_PLUGINS + ("xep_0060",) + xc.IOT_PLUGINS)
        assert rights == {"admin_create": "ok", "admin_publish": "ok", "other_create": "forbidden",
                          "other_publish": "forbidden", "other_pep": "ok"}, rights

        step("wrong CA, wrong password, unknown account are refused")
        for direct in (False, True):
            err = expect_error(xc.TlsVerifyError, lambda: xc.run_client(
                srv, *alice, noop, timeout=10, ca_file=srv.wrong_ca_file, direct_tls=direct))
            assert "certificate verify failed" in str(err) or "CERTIFICATE_VERIFY_FAILED" in str(err), err
        expect_error(xc.AuthError, lambda: xc.run_client(srv, alice[0], "wrong", noop, timeout=10))
        expect_error(xc.AuthError, lambda: xc.run_client(srv, srv.jid("nobody"), "x", noop, timeout=10))

        step("add_user while running")
        srv.add_user("carol", "carol-pw")
        assert xc.run_client(srv, srv.jid("carol"), "carol-pw", noop, timeout=10).startswith(srv.jid("carol") + "/")

        step("restart with an untrusted server chain")
        ports = (srv.c2s_port, srv.tls_port)
        srv.restart(untrusted_cert=True)
        pids.append(srv.pid)
        assert (srv.c2s_port, srv.tls_port) == ports
        expect_error(xc.TlsVerifyError, lambda: xc.run_client(srv, *alice, noop, timeout=10))
        # The chain really is checked: the CA that signed it makes it pass.
        xc.run_client(srv, *alice, noop, timeout=10, ca_file=srv.wrong_ca_file)

        step("restart with password_hash SHA-256")
        srv.restart(untrusted_cert=False, password_hash="SHA-256")
        pids.append(srv.pid)
        assert not proc_alive(pids[-2]), "previous prosody still alive"
        with open(srv.ca_file, encoding="ascii") as f:
            assert f.read() == ca_pem, "ca_file changed across restarts"
        info = xc.run_clients(srv, [alice, bob], lambda a, b: exchange(srv, a, b), timeout=20)
        check_session(srv, info, "SHA-256")

        step("pause: no session; resume: session")
        srv.pause()
        try:
            expect_error(TimeoutError, lambda: xc.run_client(srv, *alice, noop, timeout=1.5))
        finally:
            srv.resume()
        assert xc.run_client(srv, *alice, ping_server, timeout=10) >= 0

        fixture_dir = srv.dir
    step("stopped: pids %s gone, directory removed" % pids)
    assert srv.pid is None
    for pid in pids:
        assert not proc_alive(pid), "prosody pid %d still running" % pid
    assert not os.path.exists(fixture_dir), fixture_dir


def test_cli():
    with tempfile.TemporaryDirectory(prefix="fg-prosody-cli-") as d:
        step("CLI start --hash SHA-256 in %s" % d)
        res = subprocess.run([sys.executable, CLI, "start", "--dir", d, "--user", "dave:dave:pw",
                              "--hash", "SHA-256"], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        env = {}
        with open(os.path.join(d, "env.sh"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("export "):
                    key, _, value = line[7:].strip().partition("=")
                    env[key] = value.strip("'")
        with open(os.path.join(d, "prosody.pid"), encoding="ascii") as f:
            pid = int(f.read())
        assert env["FG_PROSODY_PID"] == str(pid) and proc_alive(pid)
        assert env["FG_XMPP_USERS"] == "dave"
        ep = xc.Endpoint.from_env(env)

        async def check(client):
            return xc.sasl_mechanism(client)[0], await ping_server(client)

        mech, rtt = xc.run_client(ep, "dave@" + ep.domain, "dave:pw", check, timeout=10)
        assert mech.startswith("SCRAM-SHA-256") and rtt >= 0, mech
        st = subprocess.run([sys.executable, CLI, "status", "--dir", d], capture_output=True, text=True)
        assert st.returncode == 0 and ("pid %d" % pid) in st.stdout, st.stdout

        step("CLI stop")
        res = subprocess.run([sys.executable, CLI, "stop", "--dir", d], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 5  # pid 1 reaps the detached server
        while proc_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not proc_alive(pid), "CLI-started prosody %d still running" % pid
        st = subprocess.run([sys.executable, CLI, "status", "--dir", d], capture_output=True, text=True)
        assert st.returncode == 1 and "stopped" in st.stdout, st.stdout


def main():
    try:
        ensure_installed()
    except ProsodyUnavailable as e:
        print("SKIP: %s" % e)
        return 77
    started = time.monotonic()
    test_fixture()
    test_cli()
    print("ok (%.1f s)" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
