#!/usr/bin/python3
"""Integration: fieldgate's XMPP client session against a private Prosody.

`fieldgate run` with an xmpp: section logs in to the fixture Prosody
(STARTTLS + SCRAM-SHA-1 with real certificate verification), answers
disco#info, version and ping to an independent client (slixmpp), refuses
unknown iqs with service-unavailable, approves presence subscriptions from
the access list only, reconnects when Prosody restarts, detects a silent
(SIGSTOPped) server with its keepalive, refuses an untrusted certificate and
a wrong password, logs in with SCRAM-SHA-256, with SCRAM-SHA-1-PLUS
(tls-unique on TLS 1.2) and over direct TLS, and stops cleanly on SIGTERM.
Exit 77 only when Prosody is unavailable.
"""

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS_DIR)

from fixtures import xmppclient as xc  # noqa: E402
from fixtures.prosody import Prosody, ProsodyUnavailable  # noqa: E402
from slixmpp.exceptions import IqError  # noqa: E402

BUILD = os.environ.get("FG_BUILD_DIR", os.path.join(TESTS_DIR, "..", "build"))
FIELDGATE = os.path.join(BUILD, "fieldgate")
SIM = os.path.join(BUILD, "fieldgate-sim")
GW_PW = "gw-secret-Pw1"
USERS = {"gateway": GW_PW, "alice": "alice-pw", "mallory": "mallory-pw"}


def step(text):
    print("-- %s" % text, flush=True)


class Daemon:
    """fieldgate run with a generated map; its log is collected in a file."""

    def __init__(self, workdir, srv, sim_port, name="gw", env=None, **xmpp):
        self.path = os.path.join(workdir, "%s.yaml" % name)
        self.log_path = os.path.join(workdir, "%s.log" % name)
        pwfile = os.path.join(workdir, "%s.pw" % name)
        with open(pwfile, "w") as f:
            f.write(xmpp.pop("password", GW_PW) + "\n")
        if env and "CREDENTIALS_DIRECTORY" in env:
            # systemd's LoadCredential: a relative name in that directory.
            os.rename(pwfile, os.path.join(env["CREDENTIALS_DIRECTORY"],
                                           "xmpp-password"))
            pwfile = "xmpp-password"
        x = {
            "jid": "gateway@%s" % srv.domain,
            "password_file": pwfile,
            "resource": "gw",
            "host": "127.0.0.1",
            "port": srv.c2s_port,
            "ca_file": srv.ca_file,
            "keepalive": "2s",
            "ping_timeout": "2s",
            "reconnect_min": "200ms",
            "reconnect_max": "2s",
            "status": "fieldgate test",
        }
        x.update(xmpp)
        lines = ["links:", "  - name: plant", "    type: tcp",
                 "    host: 127.0.0.1", "    port: %d" % sim_port,
                 "    units:", "      - name: m1", "        id: 1",
                 "        points:",
                 "          - {name: a, table: holding, address: 0, type: uint16}",
                 "xmpp:"]
        for k, v in x.items():
            if isinstance(v, list):
                lines.append("  %s: [%s]" % (k, ", ".join(v)))
            else:
                lines.append("  %s: %s" % (k, v))
        lines += ["access:", "  controllers: [alice@%s]" % srv.domain]
        with open(self.path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(
            [FIELDGATE, "run", "-c", self.path, "--log-level", "info"],
            stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, **(env or {})))

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_for(self, pattern, count=1, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.text())) >= count:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("no %r (x%d) in the log:\n%s" %
                             (pattern, count, self.text()[-3000:]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(20)
        self.log.close()
        return rc


def start_sim(workdir):
    out = open(os.path.join(workdir, "sim.out"), "w+")
    p = subprocess.Popen([SIM, "--tcp", "127.0.0.1:0", "--units", "1"],
                         stdout=out, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out.seek(0)
        m = re.search(r"READY tcp=127\.0\.0\.1:(\d+)", out.read())
        if m:
            return p, int(m.group(1))
        time.sleep(0.02)
    p.kill()
    raise AssertionError("fieldgate-sim did not start")


async def probe(c, gw):
    info = await c["xep_0030"].get_info(jid=gw, timeout=5)
    ver = await c["xep_0092"].get_version(gw, timeout=5)
    await c["xep_0199"].ping(jid=gw, timeout=5)
    iq = c.make_iq_get(ito=gw)
    iq.append(ET.Element("{urn:example:nothing}query"))
    try:
        await iq.send(timeout=5)
        unknown = "answered with a result"
    except IqError as e:
        unknown = e.iq["error"]["condition"]
    return info["disco_info"]["features"], ver["software_version"]["name"], unknown


async def subscribe(c, gw_bare):
    # Subscription states go to "interested" resources only: those that
    # have fetched their roster (RFC 6121 8.5.2.1.1).
    await c.get_roster()
    got = xc.expect_event(c, "presence_subscribed")
    refused = xc.expect_event(c, "presence_unsubscribed")
    c.send_presence(pto=gw_bare, ptype="subscribe")
    done, _ = await asyncio.wait([got, refused], timeout=8,
                                 return_when=asyncio.FIRST_COMPLETED)
    for f in (got, refused):
        if f not in done:
            f.cancel()
    if got in done:
        return "subscribed"
    if refused in done:
        return "unsubscribed"
    return "no answer"


def redirect_once(lsock, port):
    """A minimal server: answers the first stream with see-other-host."""
    conn, _ = lsock.accept()
    with conn:
        conn.settimeout(5)
        data = b""
        while b"<stream:stream" not in data or not data.rstrip().endswith(b">"):
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        conn.sendall(
            b"<?xml version='1.0'?><stream:stream from='fieldgate.test' "
            b"id='r1' version='1.0' xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams'>"
            b"<stream:error><see-other-host "
            b"xmlns='urn:ietf:params:xml:ns:xmpp-streams'>127.0.0.1:%d"
            b"</see-other-host></stream:error></stream:stream>" % port)
        time.sleep(0.5)


def main():
    if not os.path.exists(FIELDGATE):
        print("fieldgate not built at %s" % FIELDGATE)
        return 1
    with tempfile.TemporaryDirectory(prefix="fg-xmpp-") as work:
        try:
            srv = Prosody(dir=os.path.join(work, "prosody"), users=USERS)
            srv.start()
        except ProsodyUnavailable as e:
            print("SKIP: %s" % e)
            return 77
        sim, sim_port = start_sim(work)
        try:
            run(srv, work, sim_port)
        finally:
            srv.stop()
            sim.terminate()
            sim.wait(10)
    print("test_xmpp_session: all checks passed")
    return 0


def run(srv, work, sim_port):
    gw = "gateway@%s/gw" % srv.domain
    step("STARTTLS + SCRAM-SHA-1 with certificate verification")
    d = Daemon(work, srv, sim_port)
    try:
        d.wait_for(r"authenticating with SCRAM-SHA-1\b")
        d.wait_for(r"online as gateway@%s/gw \(TLS1\.[23], stream management\)"
                   % re.escape(srv.domain))
        assert GW_PW not in d.text(), "the password reached the log"

        step("disco#info, version, ping and an unknown iq from slixmpp")
        features, name, unknown = xc.run_client(
            srv, "alice@%s" % srv.domain, USERS["alice"],
            lambda c: probe(c, gw), timeout=20)
        for f in ("http://jabber.org/protocol/disco#info", "urn:xmpp:ping",
                  "jabber:iq:version"):
            assert f in features, (f, features)
        assert name == "fieldgate", name
        assert unknown == "service-unavailable", unknown

        step("presence subscriptions: access list approved, others refused")
        bare = "gateway@%s" % srv.domain
        r = xc.run_client(srv, "alice@%s" % srv.domain, USERS["alice"],
                          lambda c: subscribe(c, bare), timeout=20)
        assert r == "subscribed", r
        r = xc.run_client(srv, "mallory@%s" % srv.domain, USERS["mallory"],
                          lambda c: subscribe(c, bare), timeout=20)
        assert r == "unsubscribed", r
        d.wait_for(r"subscription from mallory@%s refused" % re.escape(srv.domain))

        step("Prosody restarted: fieldgate reconnects")
        # An answer the gateway sends just before the restart stays unacked
        # (<r/> goes out every 5 stanzas or with the keepalive ping).
        xc.run_client(srv, "alice@%s" % srv.domain, USERS["alice"],
                      lambda c: c["xep_0199"].ping(jid=gw, timeout=5),
                      timeout=20)
        srv.stop()
        d.wait_for(r"offline \(")
        srv.start()
        d.wait_for(r"online as gateway@", count=2, timeout=30)
        # The new server does not know the old session: XEP-0198 resume is
        # refused and a new session is bound (no re-authentication loop).
        d.wait_for(r"stream resumption refused; binding a new session")
        # Prosody saved h at shutdown and sends it in <failed/>: what it had
        # handled is not sent again.
        d.wait_for(r"the server had handled ([1-9]\d*) of \1 unacknowledged")
        assert "resending" not in d.text(), d.text()[-3000:]

        step("silent server (SIGSTOP): the keepalive ping detects it")
        srv.pause()
        try:
            d.wait_for(r"did not answer a ping|stream negotiation timed out",
                       timeout=20)
        finally:
            srv.resume()
        d.wait_for(r"online as gateway@", count=3, timeout=30)
        # The same Prosody kept the session: it is resumed (XEP-0198).
        d.wait_for(r"online as gateway@.*, resumed\)")

        step("SIGHUP: the map is reloaded and the session comes back")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for(r"reloading ")
        d.wait_for(r"online as gateway@", count=4, timeout=30)
        assert d.stop() == 0, "fieldgate run did not exit 0 on SIGTERM"
        assert "closing the session" in d.text()
    finally:
        if d.proc.poll() is None:
            d.stop()

    step("untrusted server certificate is refused")
    d = Daemon(work, srv, sim_port, name="badca", ca_file=srv.wrong_ca_file)
    try:
        d.wait_for(r"TLS handshake failed")
        assert "online as" not in d.text()
    finally:
        assert d.stop() == 0

    step("wrong password is reported clearly and retried")
    d = Daemon(work, srv, sim_port, name="badpw", password="not-the-password")
    try:
        d.wait_for(r"authentication of gateway@%s failed: not-authorized"
                   % re.escape(srv.domain))
        d.wait_for(r"reconnecting in \d+ ms")
        assert "not-the-password" not in d.text()
    finally:
        assert d.stop() == 0

    step("see-other-host: a redirecting server sends fieldgate to Prosody")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    redirector = threading.Thread(target=redirect_once,
                                  args=(lsock, srv.c2s_port), daemon=True)
    redirector.start()
    d = Daemon(work, srv, sim_port, name="redirect",
               port=lsock.getsockname()[1])
    try:
        d.wait_for(r"redirected to 127\.0\.0\.1:%d" % srv.c2s_port)
        d.wait_for(r"online as gateway@")
    finally:
        assert d.stop() == 0
        lsock.close()

    step("direct TLS (XEP-0368), password from $CREDENTIALS_DIRECTORY")
    creds = os.path.join(work, "creds")
    os.mkdir(creds)
    d = Daemon(work, srv, sim_port, name="direct", tls="direct",
               port=srv.tls_port, env={"CREDENTIALS_DIRECTORY": creds})
    try:
        d.wait_for(r"online as gateway@")
    finally:
        assert d.stop() == 0

    step("SCRAM-SHA-1-PLUS with tls-unique when Prosody speaks TLS 1.2")
    srv.restart(extra_host='ssl = { protocol = "tlsv1_2" }')
    d = Daemon(work, srv, sim_port, name="plus")
    try:
        d.wait_for(r"authenticating with SCRAM-SHA-1-PLUS")
        d.wait_for(r"online as gateway@.*TLS1\.2")
    finally:
        assert d.stop() == 0

    step("SCRAM-SHA-256 (password_hash = SHA-256)")
    srv.restart(extra_host="", password_hash="SHA-256")
    d = Daemon(work, srv, sim_port, name="sha256",
               sasl_mechanisms=["SCRAM-SHA-256"])
    try:
        d.wait_for(r"authenticating with SCRAM-SHA-256\b")
        d.wait_for(r"online as gateway@")
    finally:
        assert d.stop() == 0


if __name__ == "__main__":
    sys.exit(main())
