/* Tests of xmpp/xs_parser: events of a realistic stream, identical results
 * for every split point, restricted XML, limits, hostile inputs, errors and
 * the deferred reset/free from callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_err.h"
#include "xs_buf.h"
#include "xs_parser.h"
#include "xs_stanza.h"

#define HDR                                                                    \
    "<stream:stream from='example.org' id='c2s_123' version='1.0' "            \
    "xml:lang='en' xmlns='jabber:client' "                                     \
    "xmlns:stream='http://etherx.jabber.org/streams'>"

/* ---- event recorder ------------------------------------------------------
 * Every callback appends one line to log: "S ..." stream start, "T xml"
 * stanza (serialized on the stream), "E" stream end, "X cond" error. */

enum { ACT_NONE, ACT_RESET, ACT_FREE, ACT_FEED, ACT_KEEP };

struct rec {
    struct xs_buf log;
    struct xs_parser *p;
    int nstart, nstanza, nend, nerror;
    int on_stanza;       /* ACT_* to do in the stanza callback */
    int on_start;        /* ACT_* to do in the stream_start callback */
    int on_error;        /* ACT_* to do in the error callback */
    const char *trigger; /* act only on stanzas with this name (NULL: all) */
    int feed_rc;         /* result of a feed from a callback */
    struct xs_stanza *kept[16];
    int nkept;
};

static void log_line(struct rec *r, const char *a, const char *b)
{
    assert_int_equal(xs_buf_append_str(&r->log, a), 0);
    if (b)
        assert_int_equal(xs_buf_append_str(&r->log, b), 0);
    assert_int_equal(xs_buf_append_str(&r->log, "\n"), 0);
}

static void act(struct rec *r, int what)
{
    if (what == ACT_RESET)
        xs_parser_reset(r->p);
    else if (what == ACT_FREE)
        xs_parser_free(r->p);
    else if (what == ACT_FEED)
        r->feed_rc = xs_parser_feed(r->p, "<a/>", 4);
}

static void cb_start(void *data, const struct xs_stream_info *i)
{
    struct rec *r = data;
    char line[512];
    snprintf(line, sizeof(line),
             "S from=%s to=%s id=%s version=%s lang=%s "
             "ns=%s attrs=%zu",
             i->from ? i->from : "-", i->to ? i->to : "-", i->id ? i->id : "-",
             i->version ? i->version : "-", i->lang ? i->lang : "-",
             i->content_ns ? i->content_ns : "-",
             xs_stanza_attr_count(i->element));
    log_line(r, line, NULL);
    r->nstart++;
    act(r, r->on_start);
}

static void cb_stanza(void *data, struct xs_stanza *s)
{
    struct rec *r = data;
    struct xs_buf b;
    xs_buf_init(&b, 1u << 24);
    assert_int_equal(xs_stanza_serialize(s, XS_NS_CLIENT, &b), 0);
    log_line(r, "T ", b.data);
    xs_buf_close(&b);
    r->nstanza++;
    bool hit = !r->trigger || strcmp(xs_stanza_name(s), r->trigger) == 0;
    if (r->on_stanza == ACT_KEEP && r->nkept < 16)
        r->kept[r->nkept++] = s;
    else
        xs_stanza_free(s);
    if (hit && r->on_stanza != ACT_KEEP)
        act(r, r->on_stanza);
}

static void cb_end(void *data)
{
    struct rec *r = data;
    log_line(r, "E", NULL);
    r->nend++;
}

static void cb_error(void *data, const char *cond, const char *text)
{
    struct rec *r = data;
    assert_non_null(text);
    log_line(r, "X ", cond);
    r->nerror++;
    act(r, r->on_error);
}

static const struct xs_parser_cbs CBS = {cb_start, cb_stanza, cb_end, cb_error};

static void rec_init(struct rec *r, const struct xs_parser_opts *o)
{
    memset(r, 0, sizeof(*r));
    xs_buf_init(&r->log, 1u << 26);
    r->p = xs_parser_new(&CBS, r, o);
    assert_non_null(r->p);
}

static void rec_close(struct rec *r)
{
    xs_parser_free(r->p);
    xs_buf_close(&r->log);
    for (int i = 0; i < r->nkept; i++)
        xs_stanza_free(r->kept[i]);
}

static const char *rec_log(const struct rec *r)
{
    return r->log.data ? r->log.data : "";
}

/* Feeds s in one piece; returns the feed result. */
static int feed_str(struct rec *r, const char *s)
{
    return xs_parser_feed(r->p, s, strlen(s));
}

/* Runs a whole input through a fresh parser and checks the condition
 * (NULL: no error) and the number of stanzas delivered. */
static void expect(const char *in, const char *cond, int want_rc, int stanzas)
{
    struct rec r;
    rec_init(&r, NULL);
    int rc = feed_str(&r, in);
    assert_int_equal(rc, want_rc);
    if (cond) {
        assert_non_null(xs_parser_condition(r.p));
        assert_string_equal(xs_parser_condition(r.p), cond);
        assert_int_equal(r.nerror, 1);
    } else {
        assert_null(xs_parser_condition(r.p));
        assert_int_equal(r.nerror, 0);
    }
    assert_int_equal(r.nstanza, stanzas);
    rec_close(&r);
}

/* ---- a realistic stream ---------------------------------------------------
 */

/* Several stanzas as a server sends them: features, SASL, bind result,
 * sensor data with multi-byte UTF-8 (2, 3 and 4 byte sequences), entities,
 * '>' inside attribute values, CDATA, whitespace keepalives, a prefixed
 * child, and the stream close. */
static const char STREAM[] =
    "<?xml version='1.0'?>" HDR "<stream:features><mechanisms "
    "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1"
    "</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    "\n \n"
    "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    "<jid>gw@example.org/gw</jid></bind></iq>"
    " "
    "<message from='client@example.org/x' to='gw@example.org/gw' "
    "id='m&amp;1' type='normal'>\n"
    "  <fields xmlns='urn:xmpp:iot:sensordata' seqnr='42' done='true'>\n"
    "    <node nodeId='plc-1&gt;a'>\n"
    "      <timestamp value='2024-05-01T12:00:00Z'>\n"
    "        <numeric name='temp' momentary='true' automaticReadout='true' "
    "value='21.5' unit='\xC2\xB0\x43'/>\n"
    "        <numeric name='price' momentary='true' value='0.31' "
    "unit='\xE2\x82\xAC/kWh'/>\n"
    "        <string name='state' momentary='true' "
    "value='ok \xF0\x9F\x98\x80 &#x263A; &#233;'/>\n"
    "      </timestamp>\n"
    "    </node>\n"
    "  </fields>\n"
    "  <body>a &lt; b &amp;&amp; c &gt; d, \"q\" &apos;s&apos; "
    "\xE6\x97\xA5\xE6\x9C\xAC</body>\n"
    "  <x:data xmlns:x='urn:x' x:kind='k>v'><![CDATA[<raw> & stuff]]>"
    "</x:data>\n"
    "</message>"
    "<presence from='a@example.org/r' xml:lang='de'><show>away</show>"
    "<status>  sp aced  </status></presence>"
    "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
    "</stream:error>"
    "</stream:stream>";

/* The events of STREAM, written out by hand. */
static const char STREAM_LOG[] =
    "S from=example.org to=- id=c2s_123 version=1.0 lang=en "
    "ns=jabber:client attrs=4\n"
    "T <stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    "<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism>"
    "</mechanisms></stream:features>\n"
    "T <iq type='result' id='b1'><bind "
    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>gw@example.org/gw</jid>"
    "</bind></iq>\n"
    "T <message from='client@example.org/x' to='gw@example.org/gw' "
    "id='m&amp;1' type='normal'><fields xmlns='urn:xmpp:iot:sensordata' "
    "seqnr='42' done='true'><node nodeId='plc-1&gt;a'><timestamp "
    "value='2024-05-01T12:00:00Z'><numeric name='temp' momentary='true' "
    "automaticReadout='true' value='21.5' unit='\xC2\xB0\x43'/><numeric "
    "name='price' momentary='true' value='0.31' unit='\xE2\x82\xAC/kWh'/>"
    "<string name='state' momentary='true' value='ok \xF0\x9F\x98\x80 "
    "\xE2\x98\xBA \xC3\xA9'/></timestamp></node></fields><body>a &lt; b "
    "&amp;&amp; c &gt; d, \"q\" 's' \xE6\x97\xA5\xE6\x9C\xAC</body><data "
    "xmlns='urn:x' xmlns:x='urn:x' x:kind='k&gt;v'>&lt;raw&gt; &amp; "
    "stuff</data></message>\n"
    "T <presence from='a@example.org/r' xml:lang='de'><show>away</show>"
    "<status>  sp aced  </status></presence>\n"
    "T <stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
    "</stream:error>\n"
    "E\n";

static void test_stream_events(void **state)
{
    struct rec r;
    rec_init(&r, NULL);
    assert_int_equal(xs_parser_feed(r.p, STREAM, sizeof(STREAM) - 1), 0);
    assert_string_equal(rec_log(&r), STREAM_LOG);
    assert_int_equal(r.nstart, 1);
    assert_int_equal(r.nstanza, 5);
    assert_int_equal(r.nend, 1);
    assert_null(xs_parser_condition(r.p));
    assert_string_equal(xs_parser_error_text(r.p), "");
    rec_close(&r);
}

/* For every split point k: feed [0,k) then [k,n).  Includes every split
 * inside multi-byte characters, entities, tags and the header. */
static void test_every_split(void **state)
{
    const size_t n = sizeof(STREAM) - 1;
    for (size_t k = 0; k <= n; k++) {
        struct rec r;
        rec_init(&r, NULL);
        assert_int_equal(xs_parser_feed(r.p, STREAM, k), 0);
        assert_int_equal(xs_parser_feed(r.p, STREAM + k, n - k), 0);
        if (strcmp(rec_log(&r), STREAM_LOG) != 0)
            fail_msg("split at %zu gives:\n%s", k, rec_log(&r));
        rec_close(&r);
    }
}

/* Failures are split-independent too: the same stanzas, then the same
 * condition, for every split point.  (Only the guard on unparsed bytes
 * depends on the split, and only while one tag longer than the limit is
 * pending: the limit here is above every single tag.) */
#define X50 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
static void test_every_split_errors(void **state)
{
    static const char *const inputs[] = {
        HDR "<a>1</a><b x='&amp;'/><!-- c --><d/>",
        HDR "<a/><b>&ent;</b>",
        HDR "<a/><b><c></b></c>",
        HDR "<a/><big>" X50 X50 X50 X50 X50 "</big>",
        HDR "<a/><b><c><d><e><f/></e></d></c></b>",
        "<?xml version='1.0'?><!DOCTYPE s [<!ENTITY a 'b'>]>" HDR,
        HDR "<a/><?pi?>",
        HDR "<a/><x:y/>",
    };
    struct xs_parser_opts o = {.max_stanza_bytes = 200, .max_depth = 4};
    for (size_t t = 0; t < sizeof(inputs) / sizeof(inputs[0]); t++) {
        const char *in = inputs[t];
        size_t n = strlen(in);
        struct rec whole;
        rec_init(&whole, &o);
        (void)xs_parser_feed(whole.p, in, n);
        assert_int_equal(whole.nerror, 1);
        for (size_t k = 0; k <= n; k++) {
            struct rec r;
            rec_init(&r, &o);
            int rc = xs_parser_feed(r.p, in, k);
            if (rc == 0)
                (void)xs_parser_feed(r.p, in + k, n - k);
            if (strcmp(rec_log(&r), rec_log(&whole)) != 0)
                fail_msg("input %zu split at %zu gives:\n%s\ninstead of\n%s", t,
                         k, rec_log(&r), rec_log(&whole));
            rec_close(&r);
        }
        rec_close(&whole);
    }
}

static void test_byte_by_byte(void **state)
{
    struct rec r;
    rec_init(&r, NULL);
    for (size_t i = 0; i < sizeof(STREAM) - 1; i++)
        assert_int_equal(xs_parser_feed(r.p, STREAM + i, 1), 0);
    assert_string_equal(rec_log(&r), STREAM_LOG);
    rec_close(&r);
}

/* The callee owns delivered stanzas: they outlive the parser. */
static void test_stanza_ownership(void **state)
{
    struct rec r;
    rec_init(&r, NULL);
    r.on_stanza = ACT_KEEP;
    assert_int_equal(xs_parser_feed(r.p, STREAM, sizeof(STREAM) - 1), 0);
    xs_parser_free(r.p);
    r.p = NULL;
    assert_int_equal(r.nkept, 5);
    struct xs_stanza *msg = r.kept[2];
    assert_string_equal(xs_stanza_name(msg), "message");
    assert_string_equal(xs_stanza_ns(msg), XS_NS_CLIENT);
    assert_string_equal(xs_stanza_attr(msg, "id"), "m&1");
    /* whitespace-only text of an element with children is dropped */
    assert_int_equal(xs_stanza_text_len(msg), 0);
    struct xs_stanza *f =
        xs_stanza_child(msg, "fields", "urn:xmpp:iot:sensordata");
    assert_non_null(f);
    assert_string_equal(xs_stanza_attr(f, "seqnr"), "42");
    struct xs_stanza *ts =
        xs_stanza_child(xs_stanza_child(f, "node", NULL), "timestamp", NULL);
    assert_int_equal(xs_stanza_child_count(ts), 3);
    assert_string_equal(xs_stanza_ns(ts), "urn:xmpp:iot:sensordata");
    struct xs_stanza *str = xs_stanza_child(ts, "string", NULL);
    assert_string_equal(xs_stanza_attr(str, "value"),
                        "ok \xF0\x9F\x98\x80 \xE2\x98\xBA \xC3\xA9");
    struct xs_stanza *data = xs_stanza_child(msg, "data", "urn:x");
    assert_string_equal(xs_stanza_text(data), "<raw> & stuff");
    assert_string_equal(xs_stanza_attr(data, "x:kind"), "k>v");
    assert_string_equal(
        xs_stanza_text(xs_stanza_child(r.kept[3], "status", NULL)),
        "  sp aced  ");
    assert_string_equal(xs_stanza_attr(r.kept[3], "xml:lang"), "de");
    assert_string_equal(xs_stanza_ns(r.kept[4]), XS_NS_STREAMS);
    assert_string_equal(xs_stanza_name(r.kept[4]), "error");
    rec_close(&r);
}

/* No stanza callback: the parser frees the trees (ASan checks leaks). */
static void test_no_callbacks(void **state)
{
    struct xs_parser *p = xs_parser_new(NULL, NULL, NULL);
    assert_non_null(p);
    assert_int_equal(xs_parser_feed(p, STREAM, sizeof(STREAM) - 1), 0);
    assert_int_equal(xs_parser_feed(p, "<a/>", 4), GW_EPARSE);
    assert_string_equal(xs_parser_condition(p), "not-well-formed");
    xs_parser_free(p);
    xs_parser_free(NULL);
    assert_int_equal(xs_parser_feed(NULL, "x", 1), GW_EINVAL);
    assert_null(xs_parser_condition(NULL));
    assert_int_equal(xs_parser_discarded(NULL), 0);
    xs_parser_reset(NULL);
}

/* Attribute values: libxml2 hands '&' over as "&#38;"; only that is
 * decoded, so a literal "&#38;" in the data survives. */
static void test_attr_entities(void **state)
{
    struct rec r;
    rec_init(&r, NULL);
    r.on_stanza = ACT_KEEP;
    assert_int_equal(feed_str(&r,
                              HDR "<a v1='&amp;#38;' v2='x&#38;y&#x26;z' "
                                  "v3='&lt;&gt;&quot;&apos;' v4='a&#9;b&#10;c' "
                                  "v5='lit\ttab'/>"),
                     0);
    assert_int_equal(r.nkept, 1);
    struct xs_stanza *a = r.kept[0];
    assert_string_equal(xs_stanza_attr(a, "v1"), "&#38;");
    assert_string_equal(xs_stanza_attr(a, "v2"), "x&y&z");
    assert_string_equal(xs_stanza_attr(a, "v3"), "<>\"'");
    assert_string_equal(xs_stanza_attr(a, "v4"), "a\tb\nc");
    assert_string_equal(xs_stanza_attr(a, "v5"), "lit tab"); /* XML norm. */
    rec_close(&r);

    /* Namespace names come the same way; URI syntax is not checked. */
    rec_init(&r, NULL);
    r.on_stanza = ACT_KEEP;
    assert_int_equal(feed_str(&r, HDR "<a xmlns='urn:a&amp;b' "
                                      "xmlns:p='urn:p&#38;q#x#y'><p:c/>"
                                      "<d xmlns='not a uri'/></a>"),
                     0);
    assert_int_equal(r.nkept, 1);
    a = r.kept[0];
    assert_string_equal(xs_stanza_ns(a), "urn:a&b");
    assert_string_equal(xs_stanza_attr(a, "xmlns:p"), "urn:p&q#x#y");
    assert_string_equal(xs_stanza_ns(xs_stanza_child(a, "c", NULL)),
                        "urn:p&q#x#y");
    assert_string_equal(xs_stanza_ns(xs_stanza_child(a, "d", NULL)),
                        "not a uri");
    assert_string_equal(rec_log(&r),
                        "S from=example.org to=- id=c2s_123 version=1.0 "
                        "lang=en ns=jabber:client attrs=4\n"
                        "T <a xmlns='urn:a&amp;b' xmlns:p='urn:p&amp;q#x#y'>"
                        "<c xmlns='urn:p&amp;q#x#y'/><d xmlns='not a uri'/>"
                        "</a>\n");
    rec_close(&r);
}

/* ---- restricted XML -------------------------------------------------------
 */

static void test_restricted(void **state)
{
    /* allowed: XML declaration, predefined and numeric references */
    expect("<?xml version='1.0' encoding='UTF-8'?>" HDR
           "<a>&lt;&#65;&#x42;</a>",
           NULL, 0, 1);
    expect(HDR "<a><!-- c --></a>", "restricted-xml", GW_EFORBIDDEN, 0);
    expect("<!-- c -->" HDR, "restricted-xml", GW_EFORBIDDEN, 0);
    expect(HDR "<a/><!-- between -->", "restricted-xml", GW_EFORBIDDEN, 1);
    expect(HDR "<a><?pi data?></a>", "restricted-xml", GW_EFORBIDDEN, 0);
    expect("<?xml version='1.0'?><?xml-stylesheet href='x'?>" HDR,
           "restricted-xml", GW_EFORBIDDEN, 0);
    expect("<!DOCTYPE stream>" HDR, "restricted-xml", GW_EFORBIDDEN, 0);
    expect("<!DOCTYPE stream:stream [<!ELEMENT a ANY>]>" HDR, "restricted-xml",
           GW_EFORBIDDEN, 0);
    expect(HDR "<a>&nbsp;</a>", "restricted-xml", GW_EFORBIDDEN, 0);
    expect(HDR "<a b='&foo;'/>", "restricted-xml", GW_EFORBIDDEN, 0);
    /* a DOCTYPE inside the stream is simply malformed */
    expect(HDR "<!DOCTYPE x>", "not-well-formed", GW_EPARSE, 0);
}

/* Billion laughs: rejected at the DOCTYPE, nothing expanded, no stream
 * start, and the error text holds no input bytes. */
static void test_billion_laughs(void **state)
{
    static const char in[] =
        "<?xml version='1.0'?>"
        "<!DOCTYPE lolz ["
        " <!ENTITY lol 'lol'>"
        " <!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
        " <!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
        " <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>"
        " <!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>"
        " <!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>"
        " <!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>"
        " <!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>"
        " <!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>"
        " <!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>"
        "]>" HDR "<message><body>&lol9;</body></message>";
    /* Whole, and byte by byte (the DOCTYPE must fail before the subset is
     * even complete). */
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct rec r;
        rec_init(&r, NULL);
        int rc = 0;
        size_t at = 0;
        if (!bytewise) {
            rc = feed_str(&r, in);
        } else {
            for (at = 0; at < sizeof(in) - 1 && rc == 0; at++)
                rc = xs_parser_feed(r.p, in + at, 1);
            /* stopped at the first '>' (libxml2 waits for one before it
             * parses a DOCTYPE), before any entity is declared */
            assert_int_equal(at, strlen("<?xml version='1.0'?><!DOCTYPE lolz "
                                        "[ <!ENTITY lol 'lol'>"));
        }
        assert_int_equal(rc, GW_EFORBIDDEN);
        assert_string_equal(xs_parser_condition(r.p), "restricted-xml");
        assert_null(strstr(xs_parser_error_text(r.p), "lol"));
        assert_int_equal(r.nstart, 0);
        assert_int_equal(r.nstanza, 0);
        assert_string_equal(rec_log(&r), "X restricted-xml\n");
        /* sticky: later input is refused with the same error */
        assert_int_equal(feed_str(&r, "<a/>"), GW_EFORBIDDEN);
        assert_int_equal(r.nerror, 1);
        rec_close(&r);
    }
}

static void test_external_entity(void **state)
{
    struct rec r;
    rec_init(&r, NULL);
    r.on_stanza = ACT_KEEP;
    int rc = feed_str(&r, "<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe "
                          "SYSTEM 'file:///etc/passwd'>]>" HDR
                          "<message><body>&xxe;</body></message>");
    assert_int_equal(rc, GW_EFORBIDDEN);
    assert_string_equal(xs_parser_condition(r.p), "restricted-xml");
    assert_int_equal(r.nkept, 0);
    assert_null(strstr(rec_log(&r), "root:"));
    rec_close(&r);

    /* an external DTD is never fetched */
    expect("<!DOCTYPE stream SYSTEM 'http://127.0.0.1:9/x.dtd'>" HDR,
           "restricted-xml", GW_EFORBIDDEN, 0);
    expect("<!DOCTYPE stream PUBLIC '-//x//EN' 'file:///etc/passwd'>" HDR,
           "restricted-xml", GW_EFORBIDDEN, 0);
    /* an undeclared entity in the stream (no DTD to declare it) */
    expect(HDR "<message><body>&xxe;</body></message>", "restricted-xml",
           GW_EFORBIDDEN, 0);
}

/* ---- malformed, namespaces, encoding --------------------------------------
 */

static void test_malformed(void **state)
{
    expect(HDR "<a><b></a>", "not-well-formed", GW_EPARSE, 0);
    expect(HDR "<a x='1' x='2'/>", "not-well-formed", GW_EPARSE, 0);
    expect(HDR "<a>\x01</a>", "not-well-formed", GW_EPARSE, 0);
    expect(HDR "<a>\xC3\x28</a>", "not-well-formed", GW_EPARSE, 0);
    expect(HDR "<1a/>", "not-well-formed", GW_EPARSE, 0);
    expect(HDR "<a>&#0;</a>", "not-well-formed", GW_EPARSE, 0);
    expect(HDR "<a/></stream:stream><b/>", "not-well-formed", GW_EPARSE, 1);
    /* invalid UTF-8 that libxml2 2.9.14 lets through in CDATA (fuzz) */
    expect(HDR "<a><![CDATA[x\xC1\xA4]]></a>", "not-well-formed", GW_EPARSE, 0);
    expect(HDR "<a><xml:b/></a>", NULL, 0, 1); /* legal: xml is bound */
    expect(HDR "<a><p:b/></a>", "bad-namespace-prefix", GW_EPARSE, 0);
    expect(HDR "<a/>text<b/>", "bad-format", GW_EPARSE, 1);
    expect("<stream:foo xmlns:stream='http://etherx.jabber.org/streams'>",
           "bad-format", GW_EPARSE, 0);
    expect("<stream:stream xmlns:stream='http://etherx.jabber.org/wrong' "
           "xmlns='jabber:client'>",
           "invalid-namespace", GW_EPROTO, 0);
    expect("<stream xmlns='jabber:client'>", "invalid-namespace", GW_EPROTO, 0);
    expect("<?xml version='1.0' encoding='ISO-8859-1'?>" HDR,
           "unsupported-encoding", GW_EUNSUPPORTED, 0);
    /* a stream with no content namespace is fine when none is required */
    expect("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
           "<a/>",
           NULL, 0, 1);
}

static void test_content_ns(void **state)
{
    struct xs_parser_opts o = {.content_ns = "jabber:client"};
    struct rec r;
    rec_init(&r, &o);
    assert_int_equal(feed_str(&r, HDR "<a/>"), 0);
    assert_int_equal(r.nstanza, 1);
    rec_close(&r);

    o.content_ns = "jabber:server";
    rec_init(&r, &o);
    assert_int_equal(feed_str(&r, HDR), GW_EPROTO);
    assert_string_equal(xs_parser_condition(r.p), "invalid-namespace");
    assert_int_equal(r.nstart, 0);
    rec_close(&r);

    rec_init(&r, &o);
    assert_int_equal(
        feed_str(&r, "<stream:stream "
                     "xmlns:stream='http://etherx.jabber.org/streams'>"),
        GW_EPROTO);
    rec_close(&r);
}

/* ---- limits ---------------------------------------------------------------
 */

/* The counted size is independent of the input bytes: <a>TEXT</a> counts
 * 2*1 + 5 + len(TEXT); with max 100 a text of 93 passes, 94 fails. */
static void test_size_boundary(void **state)
{
    struct xs_parser_opts o = {.max_stanza_bytes = 100};
    char in[512];
    for (int extra = 0; extra < 2; extra++) {
        struct rec r;
        rec_init(&r, &o);
        char text[128];
        memset(text, 'x', sizeof(text));
        text[93 + extra] = '\0';
        snprintf(in, sizeof(in), HDR "<a>%s</a>", text);
        int rc = feed_str(&r, in);
        assert_int_equal(rc, extra ? GW_ELIMIT : 0);
        assert_int_equal(r.nstanza, extra ? 0 : 1);
        if (extra)
            assert_string_equal(xs_parser_condition(r.p), "policy-violation");
        rec_close(&r);
    }
    /* attributes count name + value + 4: <a b='V'/> = 7 + 1 + len + 4 */
    for (int extra = 0; extra < 2; extra++) {
        struct rec r;
        rec_init(&r, &o);
        char v[128];
        memset(v, 'v', sizeof(v));
        v[88 + extra] = '\0';
        snprintf(in, sizeof(in), HDR "<a b='%s'/>", v);
        assert_int_equal(feed_str(&r, in), extra ? GW_ELIMIT : 0);
        rec_close(&r);
    }
    /* the count restarts with each stanza; keepalives are not counted */
    struct rec r;
    rec_init(&r, &o);
    assert_int_equal(feed_str(&r, HDR), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(in, sizeof(in), "<a>%093d</a>          \n", i);
        assert_int_equal(feed_str(&r, in), 0);
    }
    assert_int_equal(r.nstanza, 50);
    rec_close(&r);
}

/* A 10 MB stanza fed in 64 KiB chunks fails once the default limit
 * (256 KiB) is passed, long before the end; nothing is delivered. */
static void test_huge_stanza(void **state)
{
    enum { CHUNK = 65536, TOTAL = 10 * 1024 * 1024 };
    char *chunk = malloc(CHUNK);
    assert_non_null(chunk);

    /* 1: huge text. 2: huge attribute value (one unfinished start tag,
     * held by libxml2). 3: huge run of whitespace inside a start tag. */
    const char *opens[] = {"<message><body>", "<message to='", "<message "};
    const char fills[] = {'a', 'b', ' '};
    for (int kind = 0; kind < 3; kind++) {
        struct rec r;
        rec_init(&r, NULL);
        assert_int_equal(feed_str(&r, HDR), 0);
        assert_int_equal(feed_str(&r, opens[kind]), 0);
        memset(chunk, fills[kind], CHUNK);
        size_t sent = 0;
        int rc = 0;
        while (sent < TOTAL && rc == 0) {
            rc = xs_parser_feed(r.p, chunk, CHUNK);
            sent += CHUNK;
        }
        assert_int_equal(rc, GW_ELIMIT);
        assert_string_equal(xs_parser_condition(r.p), "policy-violation");
        assert_true(sent <= XS_PARSER_MAX_STANZA_DEFAULT + 2 * CHUNK);
        assert_int_equal(r.nstanza, 0);
        assert_int_equal(r.nerror, 1);
        rec_close(&r);
    }
    free(chunk);
}

static void feed_nested(struct rec *r, unsigned depth)
{
    assert_int_equal(feed_str(r, HDR), 0);
    for (unsigned i = 0; i < depth && !xs_parser_condition(r->p); i++)
        (void)feed_str(r, "<a>");
    for (unsigned i = 0; i < depth && !xs_parser_condition(r->p); i++)
        (void)feed_str(r, "</a>");
}

static void test_depth(void **state)
{
    /* default 64: the stanza element is depth 1 */
    struct rec r;
    rec_init(&r, NULL);
    feed_nested(&r, 64);
    assert_null(xs_parser_condition(r.p));
    assert_int_equal(r.nstanza, 1);
    rec_close(&r);

    rec_init(&r, NULL);
    feed_nested(&r, 65);
    assert_string_equal(xs_parser_condition(r.p), "policy-violation");
    assert_int_equal(r.nstanza, 0);
    rec_close(&r);

    /* 10,000 levels in one feed */
    size_t n = 10000;
    char *in = malloc(strlen(HDR) + 3 * n + 1);
    assert_non_null(in);
    memcpy(in, HDR, strlen(HDR));
    for (size_t i = 0; i < n; i++)
        memcpy(in + strlen(HDR) + 3 * i, "<a>", 3);
    in[strlen(HDR) + 3 * n] = '\0';
    expect(in, "policy-violation", GW_ELIMIT, 0);
    free(in);

    /* a configured depth is capped at the libxml2-safe limit */
    struct xs_parser_opts o = {.max_depth = 5};
    rec_init(&r, &o);
    feed_nested(&r, 6);
    assert_string_equal(xs_parser_condition(r.p), "policy-violation");
    rec_close(&r);
    o.max_depth = 100000;
    rec_init(&r, &o);
    feed_nested(&r, XS_PARSER_MAX_DEPTH_LIMIT + 1);
    assert_string_equal(xs_parser_condition(r.p), "policy-violation");
    rec_close(&r);
}

static void test_attr_count(void **state)
{
    char in[4096];
    for (int extra = 0; extra < 2; extra++) {
        size_t o = (size_t)snprintf(in, sizeof(in), "%s<a", HDR);
        for (int i = 0; i < 64 + extra; i++)
            o += (size_t)snprintf(in + o, sizeof(in) - o, " a%d='%d'", i, i);
        snprintf(in + o, sizeof(in) - o, "/>");
        expect(in, extra ? "policy-violation" : NULL, extra ? GW_ELIMIT : 0,
               extra ? 0 : 1);
    }
    /* namespace declarations count too (the stream header is checked with
     * the same limit: 4 attributes + 2 declarations) */
    struct xs_parser_opts op = {.max_attrs = 6};
    struct rec r;
    rec_init(&r, &op);
    assert_int_equal(feed_str(&r, HDR "<a xmlns:p='urn:p' xmlns:q='urn:q' "
                                      "p:x='1' q:y='2' b='3' c='4'/>"),
                     0);
    assert_int_equal(feed_str(&r, "<a xmlns:p='urn:p' xmlns:q='urn:q' "
                                  "p:x='1' q:y='2' b='3' c='4' d='5'/>"),
                     GW_ELIMIT);
    assert_int_equal(r.nstanza, 1);
    rec_close(&r);
    op.max_attrs = 5;
    rec_init(&r, &op);
    assert_int_equal(feed_str(&r, HDR), GW_ELIMIT);
    assert_int_equal(r.nstart, 0);
    rec_close(&r);
}

/* Ever-new names would grow libxml2's dictionary for the whole stream. */
static void test_distinct_names(void **state)
{
    struct xs_parser_opts o = {.max_names = 1000};
    struct rec r;
    rec_init(&r, &o);
    assert_int_equal(feed_str(&r, HDR), 0);
    char in[128];
    int rc = 0, i;
    for (i = 0; i < 2000 && rc == 0; i++) {
        snprintf(in, sizeof(in), "<e%d a%d='1'/>", i, i);
        rc = feed_str(&r, in);
    }
    assert_int_equal(rc, GW_ELIMIT);
    assert_string_equal(xs_parser_condition(r.p), "policy-violation");
    assert_true(i > 450 && i <= 501); /* two names per stanza */
    rec_close(&r);

    /* The same names over and over are fine, and a reset starts afresh. */
    rec_init(&r, &o);
    assert_int_equal(feed_str(&r, HDR), 0);
    for (i = 0; i < 5000; i++) {
        snprintf(in, sizeof(in), "<e%d a%d='%d'/>", i % 300, i % 100, i);
        assert_int_equal(feed_str(&r, in), 0);
    }
    xs_parser_reset(r.p);
    assert_int_equal(feed_str(&r, HDR), 0);
    for (i = 0; i < 400; i++) {
        snprintf(in, sizeof(in), "<n%d/>", i);
        assert_int_equal(feed_str(&r, in), 0);
    }
    assert_int_equal(r.nstanza, 5400);
    rec_close(&r);
}

/* ---- reset, free and feed from callbacks ----------------------------------
 */

#define PROCEED "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"

static void test_reset_in_callback(void **state)
{
    struct rec r;
    rec_init(&r, NULL);
    r.on_stanza = ACT_RESET;
    r.trigger = "proceed";
    /* Plaintext after <proceed/> in the same read is discarded. */
    assert_int_equal(feed_str(&r, HDR "<a/>" PROCEED "<evil/>"), 0);
    assert_int_equal(r.nstanza, 2);
    assert_int_equal(xs_parser_discarded(r.p), strlen("<evil/>"));
    /* The next bytes start a new stream (with an XML declaration). */
    assert_int_equal(feed_str(&r, "<?xml version='1.0'?>" HDR "<b/>"), 0);
    assert_int_equal(r.nstart, 2);
    assert_int_equal(r.nstanza, 3);
    assert_int_equal(xs_parser_discarded(r.p), 0);
    assert_non_null(strstr(rec_log(&r), "T <b/>\n"));
    assert_null(strstr(rec_log(&r), "evil"));
    rec_close(&r);

    /* The same with an end tag, and split before the trailing bytes. */
    rec_init(&r, NULL);
    r.on_stanza = ACT_RESET;
    r.trigger = "success";
    assert_int_equal(feed_str(&r, HDR "<success xmlns='urn:x'>dj0=</success>"),
                     0);
    assert_int_equal(xs_parser_discarded(r.p), 0);
    assert_int_equal(feed_str(&r, HDR "<c/>"), 0);
    assert_int_equal(r.nstart, 2);
    assert_int_equal(r.nstanza, 2);
    rec_close(&r);

    /* Discarded bytes beyond a 16 KiB piece are counted too. */
    rec_init(&r, NULL);
    r.on_stanza = ACT_RESET;
    size_t big = 40000;
    char *in = malloc(strlen(HDR PROCEED) + big + 1);
    assert_non_null(in);
    memcpy(in, HDR PROCEED, strlen(HDR PROCEED));
    memset(in + strlen(HDR PROCEED), 'z', big);
    in[strlen(HDR PROCEED) + big] = '\0';
    assert_int_equal(feed_str(&r, in), 0);
    assert_int_equal(xs_parser_discarded(r.p), big);
    free(in);
    rec_close(&r);
}

static void test_reset_other_places(void **state)
{
    /* From stream_start: the stanza after the header is dropped. */
    struct rec r;
    rec_init(&r, NULL);
    r.on_start = ACT_RESET;
    assert_int_equal(feed_str(&r, HDR "<a/>"), 0);
    assert_int_equal(r.nstanza, 0);
    assert_int_equal(xs_parser_discarded(r.p), 4);
    r.on_start = ACT_NONE;
    assert_int_equal(feed_str(&r, HDR "<a/>"), 0);
    assert_int_equal(r.nstanza, 1);
    rec_close(&r);

    /* Outside callbacks, mid-stanza: the partial tree is freed. */
    rec_init(&r, NULL);
    assert_int_equal(feed_str(&r, HDR "<message><body>half"), 0);
    xs_parser_reset(r.p);
    assert_int_equal(xs_parser_discarded(r.p), 0);
    assert_int_equal(feed_str(&r, HDR "<a/>"), 0);
    assert_int_equal(r.nstart, 2);
    assert_int_equal(r.nstanza, 1);
    rec_close(&r);

    /* Reset clears an error; from the error callback too. */
    rec_init(&r, NULL);
    assert_int_equal(feed_str(&r, HDR "<!-- x -->"), GW_EFORBIDDEN);
    assert_int_equal(feed_str(&r, "<a/>"), GW_EFORBIDDEN);
    xs_parser_reset(r.p);
    assert_null(xs_parser_condition(r.p));
    assert_int_equal(feed_str(&r, HDR "<a/>"), 0);
    assert_int_equal(r.nstanza, 1);
    rec_close(&r);

    rec_init(&r, NULL);
    r.on_error = ACT_RESET;
    assert_int_equal(feed_str(&r, HDR "<a></b>"), GW_EPARSE);
    assert_null(xs_parser_condition(r.p));
    assert_int_equal(feed_str(&r, HDR "<a/>"), 0);
    assert_int_equal(r.nstanza, 1);
    assert_int_equal(r.nerror, 1);
    rec_close(&r);
}

static void test_free_and_feed_in_callback(void **state)
{
    struct rec r;
    rec_init(&r, NULL);
    r.on_stanza = ACT_FREE;
    assert_int_equal(feed_str(&r, HDR "<a/><b/>"), GW_ECANCELED);
    assert_int_equal(r.nstanza, 1);
    r.p = NULL; /* freed by the parser */
    rec_close(&r);

    rec_init(&r, NULL);
    r.on_error = ACT_FREE;
    assert_int_equal(feed_str(&r, HDR "<a></b>"), GW_ECANCELED);
    r.p = NULL;
    rec_close(&r);

    rec_init(&r, NULL);
    r.on_start = ACT_FREE;
    assert_int_equal(feed_str(&r, HDR "<a/>"), GW_ECANCELED);
    assert_int_equal(r.nstanza, 0);
    r.p = NULL;
    rec_close(&r);

    rec_init(&r, NULL);
    r.on_stanza = ACT_FEED;
    assert_int_equal(feed_str(&r, HDR "<a/><b/>"), 0);
    assert_int_equal(r.feed_rc, GW_EBUSY);
    assert_int_equal(r.nstanza, 2);
    rec_close(&r);
}

static void test_stream_end_and_header(void **state)
{
    struct rec r;
    rec_init(&r, NULL);
    assert_int_equal(
        feed_str(&r, "<stream:stream to='gw' xmlns:stream='"
                     "http://etherx.jabber.org/streams' xmlns='jabber:client' "
                     "xmlns:db='jabber:server:dialback'/>"),
        0);
    assert_string_equal(rec_log(&r), "S from=- to=gw id=- version=- lang=- "
                                     "ns=jabber:client attrs=2\nE\n");
    rec_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_events),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_every_split_errors),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_stanza_ownership),
        cmocka_unit_test(test_no_callbacks),
        cmocka_unit_test(test_attr_entities),
        cmocka_unit_test(test_restricted),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_external_entity),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_content_ns),
        cmocka_unit_test(test_size_boundary),
        cmocka_unit_test(test_huge_stanza),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_attr_count),
        cmocka_unit_test(test_distinct_names),
        cmocka_unit_test(test_reset_in_callback),
        cmocka_unit_test(test_reset_other_places),
        cmocka_unit_test(test_free_and_feed_in_callback),
        cmocka_unit_test(test_stream_end_and_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
