"""Hostile stanza shapes and raw-XML helpers for test_hostile_peer.py
(issue 8): what any account can make an XMPP server forward to the gateway.

Builders return serialized XML (str) ready for slixmpp's send_raw(); the
client's stream already declares jabber:client, so stanzas carry no xmlns.
Peer-controlled text that must reach the gateway with a newline goes into
attribute values as a character reference (&#10;): a literal newline in an
attribute is normalized to a space by every XML parser on the way.

Async helpers take a connected slixmpp client (tests/fixtures/xmppclient).
"""
import asyncio
import itertools
import re
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr, escape

NS_SD = "urn:xmpp:iot:sensordata"
NS_CTL = "urn:xmpp:iot:control"
NS_CONC = "urn:xmpp:iot:concentrators"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_HOSTILE = "urn:example:fieldgate:hostile"
NS_PING = "urn:xmpp:ping"
NS_DELAY = "urn:xmpp:delay"

PROSODY_DEFAULT_STANZA_LIMIT = 256 * 1024  # mod_c2s c2s_stanza_size_limit

_ids = itertools.count(1)


def new_id(prefix="h"):
    return "%s-%d" % (prefix, next(_ids))


def attr(value):
    """A quoted attribute value; \\n, \\r and \\t become character
    references so that they survive attribute-value normalization."""
    return quoteattr(value, {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def text(value):
    """Element text; \\r becomes &#13; (a literal CR would be normalized)."""
    return escape(value, {"\r": "&#13;"})


# ---- parser-limit shapes (issue 8, defect 1) -------------------------------

def deep_message(to, depth=70):
    """A <message> with `depth` nested elements under it (stanza depth
    depth + 1; the gateway's parser allows 64)."""
    return ("<message to=%s id=%s><x xmlns='%s'>" % (attr(to), attr(new_id("deep")), NS_HOSTILE)
            + "<d>" * (depth - 1) + "</d>" * (depth - 1) + "</x></message>")


def deep_iq(to, iq_id, depth=70):
    """An iq get whose child nests `depth` elements deep."""
    return ("<iq type='get' to=%s id=%s><x xmlns='%s'>" % (attr(to), attr(iq_id), NS_HOSTILE)
            + "<d>" * (depth - 1) + "</d>" * (depth - 1) + "</x></iq>")


def many_attrs_iq(to, iq_id, count=70):
    """An <iq type='get'> carrying `count` attributes itself (type, id, to
    and count-3 others; the server adds from).  The gateway allows 64."""
    extra = " ".join("a%d='%d'" % (i, i) for i in range(count - 3))
    return ("<iq type='get' to=%s id=%s %s><query xmlns='%s'/></iq>"
            % (attr(to), attr(iq_id), extra, NS_HOSTILE))


def many_attrs_child_iq(to, iq_id, count=70):
    """An iq get whose only child has `count` attributes."""
    extra = " ".join("a%d='%d'" % (i, i) for i in range(count))
    return ("<iq type='get' to=%s id=%s><query xmlns='%s' %s/></iq>"
            % (attr(to), attr(iq_id), NS_HOSTILE, extra))


def wide_message(to, children=40000):
    """A <message> with `children` empty children: 4 bytes each on the wire
    (~160 KB for 40,000), under Prosody's 256 KiB."""
    return ("<message to=%s id=%s><x xmlns='%s'>" % (attr(to), attr(new_id("wide")), NS_HOSTILE)
            + "<a/>" * children + "</x></message>")


def wide_iq(to, iq_id, children=40000):
    return ("<iq type='get' to=%s id=%s><x xmlns='%s'>" % (attr(to), attr(iq_id), NS_HOSTILE)
            + "<a/>" * children + "</x></iq>")


def long_names_iq(to, iq_id, elements=5000, name_len=40):
    """An iq get of ~215 KB on the wire (5,000 empty elements with 40-char
    names, 43 bytes each), under Prosody's 256 KiB, few elements and one
    name: only a size counted other than as bytes on the wire (2 x name + 5
    per element would be 425 KB) could refuse it."""
    name = ("l" * name_len)
    return ("<iq type='get' to=%s id=%s><x xmlns='%s'>" % (attr(to), attr(iq_id), NS_HOSTILE)
            + ("<%s/>" % name) * elements + "</x></iq>")


def names_message(to, batch, count=1000):
    """A <message> with `count` element names never used before (batch
    makes them distinct across stanzas)."""
    body = "".join("<n%d_%d/>" % (batch, i) for i in range(count))
    return ("<message to=%s id=%s><x xmlns='%s'>%s</x></message>"
            % (attr(to), attr(new_id("names")), NS_HOSTILE, body))


def inflating_message(to, uri_len=2000, children=1100):
    """A <message> of ~9 KB on the wire that declares one prefix for a long
    namespace URI and uses it on `children` empty children.  Prosody 0.12
    re-serializes what it forwards with xmlns='URI' on every child whose
    namespace differs from its parent's, so the gateway receives
    children x (uri_len + ~16) bytes: ~2.2 MB, past 8 x the gateway's
    256 KiB stanza limit, from a stanza well under Prosody's own limit
    (issue 8 review, finding 1: no byte cap a server can inflate may end
    the stream)."""
    uri = "urn:" + "u" * uri_len
    return ("<message to=%s id=%s xmlns:p=%s>" % (attr(to), attr(new_id("infl")), attr(uri))
            + "<p:b/>" * children + "</message>")


def prosody_stanza_limit(config_file):
    """c2s_stanza_size_limit from a Prosody config (the default if unset)."""
    try:
        with open(config_file, encoding="utf-8") as f:
            m = re.search(r"^\s*c2s_stanza_size_limit\s*=\s*([0-9*\s]+)",
                          f.read(), re.M)
    except OSError:
        m = None
    if not m:
        return PROSODY_DEFAULT_STANZA_LIMIT
    value = 1
    for factor in m.group(1).split("*"):
        value *= int(factor)
    return value


# ---- IoT requests ------------------------------------------------------------

def ctl_set_iq(to, iq_id, nodes, params):
    """XEP-0325 <set> by iq.  params: (element, name, value) triples."""
    return ("<iq type='set' to=%s id=%s>%s</iq>"
            % (attr(to), attr(iq_id), ctl_set(nodes, params)))


def ctl_set(nodes, params):
    body = "".join("<node nodeId=%s/>" % attr(n) for n in nodes)
    body += "".join("<%s name=%s value=%s/>" % (el, attr(name), attr(value))
                    for el, name, value in params)
    return "<set xmlns='%s'>%s</set>" % (NS_CTL, body)


def ctl_form_set_iq(to, iq_id, nodes, fields):
    """XEP-0325 <set> with a jabber:x:data submit: fields (var, value)."""
    body = "".join("<node nodeId=%s/>" % attr(n) for n in nodes)
    body += "<x xmlns='jabber:x:data' type='submit'>"
    body += "".join("<field var=%s><value>%s</value></field>" % (attr(v), text(val))
                    for v, val in fields)
    body += "</x>"
    return ("<iq type='set' to=%s id=%s><set xmlns='%s'>%s</set></iq>"
            % (attr(to), attr(iq_id), NS_CTL, body))


def ctl_form_message(to, nodes, fields):
    """XEP-0325 <set> by message with a jabber:x:data submit."""
    body = "".join("<node nodeId=%s/>" % attr(n) for n in nodes)
    body += "<x xmlns='jabber:x:data' type='submit'>"
    body += "".join("<field var=%s><value>%s</value></field>" % (attr(v), text(val))
                    for v, val in fields)
    return "<message to=%s id=%s><set xmlns='%s'>%s</x></set></message>" % (
        attr(to), attr(new_id("cf")), NS_CTL, body)


def ctl_message(to, nodes, params, delays=()):
    """XEP-0325 <set> by message.  delays: (from, stamp) XEP-0203 elements
    appended in order."""
    d = "".join("<delay xmlns='%s' from=%s stamp=%s/>" % (NS_DELAY, attr(f), attr(s))
                for f, s in delays)
    return "<message to=%s id=%s>%s%s</message>" % (
        attr(to), attr(new_id("cm")), ctl_set(nodes, params), d)


def readout_iq(to, iq_id, seqnr, nodes=()):
    body = "".join("<node nodeId=%s/>" % attr(n) for n in nodes)
    return ("<iq type='get' to=%s id=%s><req xmlns='%s' seqnr=%s momentary='true'>%s</req></iq>"
            % (attr(to), attr(iq_id), NS_SD, attr(seqnr), body))


def cancel_iq(to, iq_id, seqnr):
    return ("<iq type='get' to=%s id=%s><cancel xmlns='%s' seqnr=%s/></iq>"
            % (attr(to), attr(iq_id), NS_SD, attr(seqnr)))


def conc_iq(to, iq_id, op="getAllNodes", attrs="sourceId='MeteringTopology'"):
    return ("<iq type='get' to=%s id=%s><%s xmlns='%s' %s/></iq>"
            % (attr(to), attr(iq_id), op, NS_CONC, attrs))


def ping_iq(to, iq_id):
    return "<iq type='get' to=%s id=%s><ping xmlns='%s'/></iq>" % (
        attr(to), attr(iq_id), NS_PING)


def stamp(offset_s):
    """An XEP-0082 dateTime offset_s seconds from now (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset_s))


# ---- answers -----------------------------------------------------------------

def expect_stanza_id(client, stanza_id):
    """A future for the next stanza with this id (the handler is registered
    now: call before sending).  Resolves to the stanza's ElementTree."""
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatcherId
    fut = asyncio.get_running_loop().create_future()
    name = "fg-hostile-" + stanza_id

    def cb(stanza):
        if not fut.done():
            fut.set_result(stanza.xml)

    client.register_handler(Callback(name, MatcherId(stanza_id), cb, once=True))
    fut.add_done_callback(lambda _: client.remove_handler(name))
    return fut


async def raw_request(client, xml, iq_id, timeout=10.0):
    """send_raw an iq and wait for the answer with its id.  Returns the
    answer's ElementTree, or None when nothing came within timeout."""
    fut = expect_stanza_id(client, iq_id)
    client.send_raw(xml)
    try:
        return await asyncio.wait_for(fut, timeout)
    except asyncio.TimeoutError:
        return None


def iq_type(x):
    return None if x is None else x.get("type")


def error_condition(x):
    """The RFC 6120 defined condition of an iq error, or None."""
    if x is None:
        return None
    err = x.find("{jabber:client}error")
    if err is None:
        return None
    for ch in err:
        if ch.tag.startswith("{%s}" % NS_STANZAS) and not ch.tag.endswith("}text"):
            return ch.tag.split("}", 1)[1]
    return None


def response_code(x):
    """XEP-0325 setResponse responseCode (0.2 form), or None."""
    if x is None:
        return None
    sr = x.find("{%s}setResponse" % NS_CTL)
    return None if sr is None else sr.get("responseCode")


def show(x, limit=600):
    if x is None:
        return "(no answer)"
    s = ET.tostring(x, encoding="unicode")
    return s if len(s) <= limit else s[:limit] + "..."
