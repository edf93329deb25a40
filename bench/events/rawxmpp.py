"""A minimal raw XMPP client for bench/events: STARTTLS, SASL PLAIN, bind,
then plain socket I/O with byte-level stanza splitting, so that neither the
baseline publisher nor the counting subscriber is slowed down by a full
XMPP library (slixmpp parses every stanza into objects in Python).

Only for the private test Prosody: loopback, its CA, PLAIN over TLS.
"""
import base64
import re
import select
import socket
import ssl
import time

STREAM = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='%s' "
          "version='1.0'>")

START_TAG = re.compile(rb"<(iq|message|presence)\b[^>]*>")
ATTR = re.compile(rb"""(\w[\w:.-]*)=(?:'([^']*)'|"([^"]*)")""")


def attrs(tag):
    return {m.group(1).decode(): (m.group(2) if m.group(2) is not None
                                  else m.group(3)).decode()
            for m in ATTR.finditer(tag)}


def xml_escape(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace("'", "&apos;").replace('"', "&quot;"))


class RawClient:
    def __init__(self, host, port, domain, user, password, ca_file,
                 resource="raw"):
        self.host, self.port, self.domain = host, port, domain
        self.user, self.password, self.ca_file = user, password, ca_file
        self.resource = resource
        self.sock = None
        self.buf = b""
        self.jid = None

    # -- low level
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _recv(self, timeout):
        ready = select.select([self.sock], [], [], timeout)[0]
        if not ready and not (isinstance(self.sock, ssl.SSLSocket)
                              and self.sock.pending()):
            return False
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("stream closed by the server")
        self.buf += data
        return True

    def read_until(self, pattern, timeout=10.0):
        """Reads until pattern (bytes regex) matches the buffer; returns the
        match and drops the buffer up to its end."""
        rx = re.compile(pattern, re.S)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %r in %r" % (pattern, self.buf[-300:]))
            self._recv(left)

    # -- session
    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send(STREAM % self.domain)
        self.read_until(rb"</stream:features>")
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.read_until(rb"<proceed[^>]*/>")
        ctx = ssl.create_default_context(cafile=self.ca_file)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.domain)
        self.buf = b""
        self.send(STREAM % self.domain)
        self.read_until(rb"</stream:features>")
        token = base64.b64encode(("\0%s\0%s" % (self.user, self.password)).encode())
        self.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                  "mechanism='PLAIN'>%s</auth>" % token.decode())
        m = self.read_until(rb"<(success|failure)\b[^>]*?(/>|>.*?</\1>)")
        if m.group(1) != b"success":
            raise ConnectionError("SASL PLAIN failed for %s" % self.user)
        self.buf = b""
        self.send(STREAM % self.domain)
        self.read_until(rb"</stream:features>")
        self.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:"
                  "ns:xmpp-bind'><resource>%s</resource></bind></iq>"
                  % self.resource)
        m = self.read_until(rb"<jid>([^<]+)</jid>")
        self.jid = m.group(1).decode()
        self.read_until(rb"</iq>")
        self.sock.settimeout(None)
        return self

    def iq(self, xml, to=None, itype="set", timeout=10.0):
        """Sends one iq and waits for its answer: (type, raw stanza bytes).
        Other stanzas that arrive meanwhile are dropped."""
        self._n = getattr(self, "_n", 0) + 1
        iid = "q%d" % self._n
        self.send("<iq type='%s' id='%s'%s>%s</iq>" % (
            itype, iid, " to='%s'" % to if to else "", xml))
        deadline = time.monotonic() + timeout
        while True:
            for stanza in self.stanzas():
                m = START_TAG.match(stanza)
                if m and m.group(1) == b"iq":
                    a = attrs(m.group(0))
                    if a.get("id") == iid:
                        return a.get("type"), stanza
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer to iq %s" % iid)
            self._recv(left)

    def stanzas(self):
        """Complete top-level stanzas in the buffer (removed from it)."""
        out = []
        while True:
            m = START_TAG.search(self.buf)
            if not m:
                return out
            name = m.group(1)
            if m.group(0).endswith(b"/>"):
                end = m.end()
            else:
                close = self.buf.find(b"</" + name + b">", m.end())
                if close < 0:
                    return out
                end = close + len(name) + 3
            out.append(self.buf[m.start():end])
            self.buf = self.buf[end:]

    def close(self):
        try:
            self.send("</stream:stream>")
            self.sock.close()
        except OSError:
            pass


NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = NS_PUBSUB + "#owner"


def config_form(config, form_type="http://jabber.org/protocol/pubsub#node_config"):
    fields = "".join("<field var='%s'><value>%s</value></field>"
                     % (k, xml_escape(str(v))) for k, v in config.items())
    return ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
            "type='hidden'><value>%s</value></field>%s</x>" % (form_type, fields))


def read_config(raw):
    """{var: first value} of an owner configure answer (bytes)."""
    out = {}
    for m in re.finditer(rb"<field\b([^>]*?)(/>|>(.*?)</field>)", raw, re.S):
        a = attrs(m.group(1))
        if "var" not in a:
            continue
        body = re.sub(rb"<option\b.*?</option>", b"", m.group(3) or b"", flags=re.S)
        v = re.search(rb"<value>(.*?)</value>", body, re.S)
        out[a["var"]] = v.group(1).decode() if v else ""
    return out
