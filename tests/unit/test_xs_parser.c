/* Tests of xmpp/xs_parser: events of a realistic stream, identical results
 * for every split point, restricted XML, limits, hostile inputs, errors and
 * the deferred reset/free from callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libxml/xmlmemory.h>

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
 * stanza (serialized on the stream), "E" stream end, "X cond" error,
 * "D name ns limit=L id= from= to= type=" a dropped stanza. */

enum { ACT_NONE, ACT_RESET, ACT_FREE, ACT_FEED, ACT_KEEP };

struct rec {
    struct xs_buf log;
    struct xs_parser *p;
    int nstart, nstanza, nend, nerror, ndrop;
    size_t last_wire;    /* wire_bytes of the last drop */
    int on_drop;         /* ACT_* to do in the stanza_dropped callback */
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

static void cb_dropped(void *data, const struct xs_dropped_info *d)
{
    struct rec *r = data;
    char line[512];
    snprintf(line, sizeof(line), "D %s %s limit=%s id=%s from=%s to=%s type=%s",
             d->name, d->ns, xs_parser_limit_name(d->limit),
             d->id ? d->id : "-", d->from ? d->from : "-", d->to ? d->to : "-",
             d->type ? d->type : "-");
    log_line(r, line, NULL);
    assert_non_null(d->reason);
    assert_true(d->reason[0] != '\0');
    r->ndrop++;
    r->last_wire = d->wire_bytes;
    act(r, r->on_drop);
}

static const struct xs_parser_cbs CBS = {.stream_start = cb_start,
                                         .stanza = cb_stanza,
                                         .stream_end = cb_end,
                                         .error = cb_error,
                                         .stanza_dropped = cb_dropped};

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

/* Failures and drops are split-independent too: the same stanzas, then the
 * same condition (or drop), for every split point.  (Only the hard cap on
 * unparsed bytes depends on the split: the limit here is far above every
 * single tag.) */
#define X50 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
static void test_every_split_errors(void **state)
{
    static const char *const inputs[] = {
        HDR "<a>1</a><b x='&amp;'/><!-- c --><d/>",
        HDR "<a/><b>&ent;</b>",
        HDR "<a/><b><c></b></c>",
        HDR "<a/><big>" X50 X50 X50 X50 X50 "</big><c/>",
        HDR "<a/><b><c><d><e><f/></e></d></c></b><c/>",
        HDR "<a/><big id='1'>&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;"
            "&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;"
            "&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;"
            "&amp;&amp;&amp;&amp;</big><c/>",
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
        assert_int_equal(whole.nerror + whole.ndrop, 1);
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

#define PROCEED_ "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"

/* ---- limits ---------------------------------------------------------------
 */

/* A growable input for the big hostile shapes. */
struct in {
    char *p;
    size_t len, cap;
};

static void in_add(struct in *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void in_add(struct in *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL,
                          b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
        b->p[b->len] = '\0';
    }
}

/* Feeds in[0..n) in pieces: mode 0 whole, 1 byte by byte, else random
 * pieces of 1..4096 bytes from seed mode.  Returns the last feed result. */
static int feed_split(struct rec *r, const char *in, size_t n, unsigned mode)
{
    if (mode == 0)
        return xs_parser_feed(r->p, in, n);
    uint32_t x = mode * 2654435761u;
    size_t off = 0;
    int rc = 0;
    while (off < n && rc == 0) {
        size_t k = 1;
        if (mode > 1) {
            x = x * 1103515245u + 12345u;
            k = 1 + (x >> 8) % ((x >> 4) % 3 == 0 ? 16 : 4096);
        }
        if (k > n - off)
            k = n - off;
        rc = xs_parser_feed(r->p, in + off, k);
        off += k;
    }
    return rc;
}

/* Runs in through a fresh parser whole, byte by byte and in 6 random
 * splits: every run must give want (the event log) and no error. */
static void expect_log(const struct xs_parser_opts *o, const char *in, size_t n,
                       const char *want)
{
    for (unsigned mode = 0; mode < 8; mode++) {
        struct rec r;
        rec_init(&r, o);
        int rc = feed_split(&r, in, n, mode);
        if (rc != 0 || strcmp(rec_log(&r), want) != 0)
            fail_msg("mode %u (rc %d, %s) gives:\n%s\ninstead of\n%s", mode, rc,
                     xs_parser_error_text(r.p), rec_log(&r), want);
        rec_close(&r);
    }
}

#define HDR_LOG                                                                \
    "S from=example.org to=- id=c2s_123 version=1.0 lang=en "                  \
    "ns=jabber:client attrs=4\n"
#define STRANGER "stranger@example.org/x"
#define NORMAL                                                                 \
    "<message from='owner@example.org/o' id='ok'><body>hi</body></message>"
#define NORMAL_LOG                                                             \
    "T <message from='owner@example.org/o' id='ok'><body>hi</body>"            \
    "</message>\n"

/* The four shapes that any JID could send through a server and that used
 * to end the stream (issue 8, defect 1), each followed by a normal stanza:
 * the shape is dropped and reported, the stream survives, the normal
 * stanza is delivered, for every way of splitting the input. */
static void test_hostile_deep_message(void **state)
{
    struct in b = {0};
    in_add(&b, HDR "<message from='" STRANGER "' to='gw@example.org/gw' "
                   "id='deep1' type='chat'>");
    for (int i = 0; i < 69; i++)
        in_add(&b, "<a>");
    for (int i = 0; i < 69; i++)
        in_add(&b, "</a>");
    in_add(&b, "</message>\n" NORMAL);
    expect_log(NULL, b.p, b.len,
               HDR_LOG "D message jabber:client limit=depth id=deep1 "
                       "from=" STRANGER
                       " to=gw@example.org/gw type=chat\n" NORMAL_LOG);
    /* Far beyond libxml2's own 256 (not applied by its push parser) and
     * our depth cap, within the size limit. */
    b.len = 0;
    in_add(&b, HDR "<message id='deep2'>");
    for (int i = 0; i < 20000; i++)
        in_add(&b, "<a>");
    for (int i = 0; i < 20000; i++)
        in_add(&b, "</a>");
    in_add(&b, "</message>" NORMAL);
    expect_log(NULL, b.p, b.len,
               HDR_LOG "D message jabber:client limit=depth id=deep2 "
                       "from=- to=- type=-\n" NORMAL_LOG);
    free(b.p);
}

static void test_hostile_many_attrs(void **state)
{
    /* The limit is hit on the stanza's own start tag: what it said is
     * still captured. */
    struct in b = {0};
    in_add(&b, HDR "<iq type='get' id='a70' from='" STRANGER "' "
                   "to='gw@example.org/gw'");
    for (int i = 0; i < 66; i++)
        in_add(&b, " a%d='%d'", i, i);
    in_add(&b, "><ping xmlns='urn:xmpp:ping'/></iq>" NORMAL);
    expect_log(NULL, b.p, b.len,
               HDR_LOG "D iq jabber:client limit=attributes id=a70 "
                       "from=" STRANGER
                       " to=gw@example.org/gw type=get\n" NORMAL_LOG);
    /* On a child: the same. */
    b.len = 0;
    in_add(&b, HDR "<iq type='set' id='c70' from='" STRANGER "'><q "
                   "xmlns='urn:x'");
    for (int i = 0; i < 70; i++)
        in_add(&b, " a%d='%d'", i, i);
    in_add(&b, "/></iq>" NORMAL);
    expect_log(NULL, b.p, b.len,
               HDR_LOG "D iq jabber:client limit=attributes id=c70 "
                       "from=" STRANGER " to=- type=set\n" NORMAL_LOG);
    free(b.p);
}

static void test_hostile_many_children(void **state)
{
    /* 40,000 empty children, 160 KB: within the size limit, but a tree of
     * 40,000 elements costs far more memory than its wire bytes. */
    struct in b = {0};
    in_add(&b, HDR "<message from='" STRANGER "' id='many'>");
    for (int i = 0; i < 40000; i++)
        in_add(&b, "<x/>");
    in_add(&b, "</message>" NORMAL);
    assert_true(b.len > 160000 && b.len < XS_PARSER_MAX_STANZA_DEFAULT);
    expect_log(NULL, b.p, b.len,
               HDR_LOG "D message jabber:client limit=elements id=many "
                       "from=" STRANGER " to=- type=-\n" NORMAL_LOG);
    free(b.p);
}

/* 12 stanzas of 1,000 new element names each: all delivered; the name
 * dictionary is bounded by starting new libxml2 contexts between stanzas,
 * and the bytes after each boundary (here in the same feed) are parsed. */
static void test_hostile_new_names(void **state)
{
    struct in b = {0}, want = {0};
    in_add(&b, HDR);
    in_add(&want, HDR_LOG);
    for (int s = 0; s < 12; s++) {
        in_add(&b, "<message id='n%d'>", s);
        in_add(&want, "T <message id='n%d'>", s);
        for (int i = 0; i < 1000; i++) {
            in_add(&b, "<e%d_%d/>", s, i);
            in_add(&want, "<e%d_%d/>", s, i);
        }
        in_add(&b, "</message> ");
        in_add(&want, "</message>\n");
    }
    in_add(&b, NORMAL "</stream:stream>");
    in_add(&want, NORMAL_LOG "E\n");
    expect_log(NULL, b.p, b.len, want.p);

    struct rec r;
    rec_init(&r, NULL);
    assert_int_equal(feed_str(&r, b.p), 0);
    struct xs_parser_stats st;
    xs_parser_get_stats(r.p, &st);
    assert_int_equal(st.stanzas, 13);
    assert_int_equal(st.dropped, 0);
    assert_true(st.recycles >= 1);
    rec_close(&r);

    /* A stream of ever-new names runs on in bounded memory, with a small
     * limit: many recycles, never an error. */
    struct xs_parser_opts o = {.max_names = 100};
    rec_init(&r, &o);
    assert_int_equal(feed_str(&r, HDR), 0);
    char in[128];
    for (int i = 0; i < 20000; i++) {
        snprintf(in, sizeof(in), "<e%d a%d='1'/>", i, i);
        assert_int_equal(feed_str(&r, in), 0);
    }
    xs_parser_get_stats(r.p, &st);
    assert_int_equal(st.stanzas, 20000);
    assert_true(st.recycles >= 300);
    rec_close(&r);
    free(b.p);
    free(want.p);
}

/* One stanza that brings more new names than allowed is dropped; the
 * stream goes on (and is recycled before the next stanza). */
static void test_names_per_stanza(void **state)
{
    struct xs_parser_opts o = {.max_names = 1000};
    struct in b = {0};
    in_add(&b, HDR "<message id='n'>");
    for (int i = 0; i < 1001; i++)
        in_add(&b, "<e%d/>", i);
    in_add(&b, "</message>" NORMAL);
    expect_log(&o, b.p, b.len,
               HDR_LOG "D message jabber:client limit=names id=n from=- "
                       "to=- type=-\n" NORMAL_LOG);
    free(b.p);
}

/* CRs at and around the boundaries where the libxml2 context is recycled.
 * libxml2 2.9.14 holds a chunk's trailing '\r' back until the next chunk
 * (a server sends a raw CR for "&#13;", and every TLS record is a feed):
 * every split in two, byte by byte and random splits must give the events
 * of the whole feed, with no error. */
static void test_cr_at_recycle(void **state)
{
    struct xs_parser_opts o = {.max_names = 20};
    struct in b = {0};
    in_add(&b, HDR "\r\n");
    for (int s = 0; s < 6; s++) {
        in_add(&b, "<message id='c%d' type='x\r\ny\r'>\r", s);
        for (int i = 0; i < 8; i++)
            in_add(&b, "<e%d_%d>\r\n%d\r</e%d_%d>\r", s, i, i, s, i);
        in_add(&b, "</message>%s", s % 2 ? "\r" : "\r\n\r");
    }
    in_add(&b, NORMAL "\r");

    struct rec r;
    rec_init(&r, &o);
    assert_int_equal(feed_str(&r, b.p), 0);
    struct xs_parser_stats st;
    xs_parser_get_stats(r.p, &st);
    assert_int_equal(st.stanzas, 7);
    assert_int_equal(st.dropped, 0);
    assert_true(st.recycles >= 2);
    /* Line ends normalized: CR LF and a lone CR become LF in text, a space
     * in attribute values. */
    assert_non_null(strstr(rec_log(&r), "T <message id='c5' type='x y '>"
                                        "<e5_0>\n0\n</e5_0>"));
    char *want = strdup(rec_log(&r));
    assert_non_null(want);
    rec_close(&r);

    expect_log(&o, b.p, b.len, want);
    for (size_t k = 1; k < b.len; k++) {
        rec_init(&r, &o);
        int rc = xs_parser_feed(r.p, b.p, k);
        if (rc == 0)
            rc = xs_parser_feed(r.p, b.p + k, b.len - k);
        if (rc != 0 || strcmp(rec_log(&r), want) != 0)
            fail_msg("split at %zu (rc %d, %s) gives:\n%s", k, rc,
                     xs_parser_error_text(r.p), rec_log(&r));
        rec_close(&r);
    }
    /* Three pieces, the first ending in a CR after a boundary. */
    for (size_t k = 1; k < b.len; k++) {
        if (b.p[k - 1] != '\r')
            continue;
        for (size_t j = k + 1; j < b.len && j < k + 40; j++) {
            rec_init(&r, &o);
            int rc = xs_parser_feed(r.p, b.p, k);
            if (rc == 0)
                rc = xs_parser_feed(r.p, b.p + k, j - k);
            if (rc == 0)
                rc = xs_parser_feed(r.p, b.p + j, b.len - j);
            if (rc != 0 || strcmp(rec_log(&r), want) != 0)
                fail_msg("split at %zu, %zu (rc %d, %s) gives:\n%s", k, j, rc,
                         xs_parser_error_text(r.p), rec_log(&r));
            rec_close(&r);
        }
    }
    free(want);
    free(b.p);
}

/* The size is the stanza's bytes on the wire, as the server counts them:
 * many entities (5 bytes on the wire, 1 in the tree) do not make a stanza
 * over the limit pass, and exactly the limit passes.  Whitespace around
 * the stanza is not counted. */
static void test_wire_size(void **state)
{
    enum { LIMIT = 10000, ENTS = 1500 };
    struct xs_parser_opts o = {.max_stanza_bytes = LIMIT};
    for (int over = 0; over < 2; over++) {
        struct in b = {0}, want = {0};
        const char *open = "<message id='w'><body>";
        const char *close = "</body></message>";
        size_t fill = (size_t)LIMIT - strlen(open) - strlen(close) -
                      5 * (size_t)ENTS + (size_t)over;
        in_add(&b, HDR "  \n\t");
        in_add(&b, "%s", open);
        in_add(&want, HDR_LOG);
        if (!over)
            in_add(&want, "T %s", open);
        for (int i = 0; i < ENTS; i++) {
            in_add(&b, "&amp;");
            if (!over)
                in_add(&want, "&amp;");
        }
        for (size_t i = 0; i < fill; i++) {
            in_add(&b, "x");
            if (!over)
                in_add(&want, "x");
        }
        in_add(&b, "%s   \n" NORMAL, close);
        if (over)
            in_add(&want, "D message jabber:client limit=size id=w from=- "
                          "to=- type=-\n" NORMAL_LOG);
        else
            in_add(&want, "%s\n" NORMAL_LOG, close);
        expect_log(&o, b.p, b.len, want.p);
        struct rec r;
        rec_init(&r, &o);
        assert_int_equal(feed_str(&r, b.p), 0);
        if (over)
            assert_int_equal(r.last_wire, LIMIT + 1);
        rec_close(&r);
        free(b.p);
        free(want.p);
    }
    /* An empty element and an attribute: exact too. */
    struct xs_parser_opts o2 = {.max_stanza_bytes = 10};
    expect_log(&o2, HDR "<abcdefg/> <abcdefgh/><a b='&lt;'/>",
               strlen(HDR "<abcdefg/> <abcdefgh/><a b='&lt;'/>"),
               HDR_LOG "T <abcdefg/>\nD abcdefgh jabber:client limit=size "
                       "id=- from=- to=- type=-\nD a jabber:client "
                       "limit=size id=- from=- to=- type=-\n");
}

/* A stanza larger than the limit but below the hard cap is dropped,
 * however it arrives; the memory it uses is bounded meanwhile. */
static void test_oversized_dropped(void **state)
{
    size_t n = 600 * 1024;
    for (int kind = 0; kind < 3; kind++) {
        struct in b = {0};
        in_add(&b, HDR);
        in_add(&b, kind == 1 ? "<message id='big' to='" : "<message id='big'>");
        if (kind == 2)
            in_add(&b, "<body>");
        char *fill = malloc(n + 1);
        assert_non_null(fill);
        memset(fill, kind == 2 ? '<' : 'a', n);
        if (kind == 2) /* many tiny elements */
            for (size_t i = 0; i + 4 <= n; i += 4)
                memcpy(fill + i, "<b/>", 4);
        fill[n] = '\0';
        in_add(&b, "%s", fill);
        free(fill);
        in_add(&b, kind == 1   ? "'/>"
                   : kind == 2 ? "</body></message>"
                               : "</message>");
        in_add(&b, NORMAL);
        struct xs_parser_opts o = {.max_elements = 1000000};
        struct rec r;
        rec_init(&r, &o);
        assert_int_equal(feed_split(&r, b.p, b.len, 3), 0);
        assert_int_equal(r.ndrop, 1);
        assert_int_equal(r.nstanza, 1);
        assert_non_null(strstr(rec_log(&r), "limit=size id=big"));
        rec_close(&r);
        free(b.p);
    }
}

/* ---- memory held by libxml2 ----------------------------------------------
 * main() installs counting allocators with xmlMemSetup before libxml2 is
 * used, so a test can see the most libxml2 held at once. */

struct mhdr {
    size_t n;
    size_t pad; /* keeps the block 16-byte aligned */
};

static size_t g_xml_live, g_xml_peak;

static void *cnt_malloc(size_t n)
{
    struct mhdr *h = malloc(sizeof(*h) + n);
    if (!h)
        return NULL;
    h->n = n;
    g_xml_live += n;
    if (g_xml_live > g_xml_peak)
        g_xml_peak = g_xml_live;
    return h + 1;
}

static void cnt_free(void *ptr)
{
    if (!ptr)
        return;
    struct mhdr *h = (struct mhdr *)ptr - 1;
    g_xml_live -= h->n;
    free(h);
}

static void *cnt_realloc(void *ptr, size_t n)
{
    if (!ptr)
        return cnt_malloc(n);
    struct mhdr *h = (struct mhdr *)ptr - 1;
    size_t old = h->n;
    struct mhdr *q = realloc(h, sizeof(*q) + n);
    if (!q)
        return NULL;
    q->n = n;
    g_xml_live = g_xml_live - old + n;
    if (g_xml_live > g_xml_peak)
        g_xml_peak = g_xml_live;
    return q + 1;
}

static char *cnt_strdup(const char *str)
{
    size_t n = strlen(str) + 1;
    char *d = cnt_malloc(n);
    if (d)
        memcpy(d, str, n);
    return d;
}

/* Feeds in[0..n) in pieces of at most piece bytes (0: whole). */
static int feed_pieces(struct rec *r, const char *in, size_t n, size_t piece)
{
    if (!piece)
        piece = n;
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += piece)
        rc = xs_parser_feed(r->p, in + off, n - off < piece ? n - off : piece);
    return rc;
}

/* The stanza Prosody 0.12 forwards when a stranger sends, in 8,717 bytes,
 * <message to=... xmlns:p='urn:uuu...'> with 1,100 <p:b/> children: its
 * serializer writes xmlns='...' on every child whose namespace differs
 * from its parent's, so the stanza grows to 2.2 MB, past any fixed factor
 * of max_stanza_bytes (issue 8 review, finding 1). */
#define INFLATED_CHILDREN 1100
#define INFLATED_URI 2000
#define INFLATED_OPEN                                                          \
    "<message from='stranger@evil/r' to='gw@example.org' type='chat' "         \
    "xml:lang='en' id='x1'>"
#define INFLATED_LOG                                                           \
    "D message jabber:client limit=size id=x1 from=stranger@evil/r "           \
    "to=gw@example.org type=chat\n"

static size_t inflated(struct in *b)
{
    in_add(b, HDR);
    size_t start = b->len;
    in_add(b, INFLATED_OPEN);
    char *uri = malloc(INFLATED_URI + 1);
    assert_non_null(uri);
    memset(uri, 'u', INFLATED_URI);
    uri[INFLATED_URI] = '\0';
    for (int i = 0; i < INFLATED_CHILDREN; i++)
        in_add(b, "<b xmlns='urn:%s'/>", uri);
    free(uri);
    in_add(b, "</message>");
    size_t wire = b->len - start;
    in_add(b, NORMAL);
    return wire;
}

/* The inflated stanza is dropped (not fatal: no byte cap a server can
 * reach by re-serializing may end the stream), with what its start tag
 * said and its exact size; the next stanza is delivered.  Fed whole, in
 * 16 KiB pieces (TLS records) and byte by byte. */
static void test_inflated_stanza(void **state)
{
    struct in b = {0};
    size_t wire = inflated(&b);
    assert_true(wire > 2200000);
    assert_true(wire >
                (size_t)XS_PARSER_HARD_FACTOR * XS_PARSER_MAX_STANZA_DEFAULT);
    const size_t pieces[] = {0, 16384, 1};
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        struct rec r;
        rec_init(&r, NULL);
        int rc = feed_pieces(&r, b.p, b.len, pieces[i]);
        if (rc != 0 || strcmp(rec_log(&r), HDR_LOG INFLATED_LOG NORMAL_LOG))
            fail_msg("pieces of %zu: rc %d (%s), log:\n%s", pieces[i], rc,
                     xs_parser_error_text(r.p), rec_log(&r));
        assert_int_equal(r.last_wire, wire);
        struct xs_parser_stats st;
        xs_parser_get_stats(r.p, &st);
        assert_int_equal(st.dropped, 1);
        assert_int_equal(st.stanzas, 1);
        rec_close(&r);
    }
    free(b.p);
}

/* A 10 MB stanza of every kind is skipped with libxml2's memory bounded
 * (it gets at most max_stanza_bytes of it, then the scanner alone finds
 * the end), and the stream goes on: text, an attribute value (a start tag
 * longer than the limit: what it said comes from the scanner), whitespace
 * in a start tag, many children, deep nesting, the inflated shape. */
static void test_huge_stanza(void **state)
{
    enum { CHUNK = 65536, TOTAL = 10 * 1024 * 1024, KINDS = 6 };
    static const char *const opens[KINDS] = {
        "<message id='big' from='a@b/c'><body>",
        "<message id='big' from='a@b/c' to='",
        "<message id='big' from='a@b/c' ",
        "<message id='big' from='a@b/c'>",
        "<message id='big' from='a@b/c'>",
        "<message id='big' from='a@b/c'>",
    };
    static const char *const unit[KINDS] = {
        "a",
        "b",
        " ",
        "<b/>",
        "<a>",
        "<b xmlns='urn:uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu'/>"};
    static const char *const closes[KINDS] = {
        "</body></message>", "'/>", "/>", "</message>", "", "</message>"};
    static const char *const limits[KINDS] = {"size",     "size",  "size",
                                              "elements", "depth", "size"};
    char *chunk = malloc(CHUNK);
    assert_non_null(chunk);
    for (int kind = 0; kind < KINDS; kind++) {
        size_t ul = strlen(unit[kind]);
        size_t per = CHUNK / ul;
        for (size_t i = 0; i < per; i++)
            memcpy(chunk + i * ul, unit[kind], ul);
        struct rec r;
        rec_init(&r, NULL);
        assert_int_equal(feed_str(&r, HDR), 0);
        size_t base = g_xml_live;
        g_xml_peak = g_xml_live;
        assert_int_equal(feed_str(&r, opens[kind]), 0);
        size_t sent = 0, units = 0;
        int rc = 0;
        while (sent < TOTAL && rc == 0) {
            rc = xs_parser_feed(r.p, chunk, per * ul);
            sent += per * ul;
            units += per;
        }
        if (kind == 4) /* close what was opened */
            for (size_t i = 0; i < units && rc == 0; i += per) {
                size_t n = units - i < per ? units - i : per;
                struct in c = {0};
                for (size_t k = 0; k < n; k++)
                    in_add(&c, "</a>");
                rc = xs_parser_feed(r.p, c.p, c.len);
                free(c.p);
            }
        size_t peak = g_xml_peak - base;
        if (rc == 0)
            rc = feed_str(&r, kind == 4 ? "</message>" NORMAL : closes[kind]);
        if (rc == 0 && kind != 4)
            rc = feed_str(&r, NORMAL);
        char want[256];
        snprintf(want, sizeof(want),
                 HDR_LOG "D message jabber:client limit=%s id=big from=a@b/c "
                         "to=- type=-\n" NORMAL_LOG,
                 limits[kind]);
        if (rc != 0 || strcmp(rec_log(&r), want) != 0)
            fail_msg("kind %d: rc %d (%s), log:\n%s", kind, rc,
                     xs_parser_error_text(r.p), rec_log(&r));
        /* libxml2 never held more than about the stanza limit (its input
         * buffer grows by doubling), however long the stanza. */
        if (peak > 4 * (size_t)XS_PARSER_MAX_STANZA_DEFAULT)
            fail_msg("kind %d: libxml2 held %zu bytes", kind, peak);
        assert_true(r.last_wire > (size_t)TOTAL);
        rec_close(&r);
    }
    free(chunk);

    /* Only what no server forwards stays fatal: a stream header (or other
     * input libxml2 holds unparsed) beyond the hard cap. */
    struct rec r;
    rec_init(&r, NULL);
    assert_int_equal(feed_str(&r, "<stream:stream xmlns='jabber:client' "
                                  "xmlns:stream='http://etherx.jabber.org/"
                                  "streams' to='"),
                     0);
    char *fill = malloc(CHUNK);
    assert_non_null(fill);
    memset(fill, 'c', CHUNK);
    size_t sent = 0;
    int rc = 0;
    while (sent < TOTAL && rc == 0) {
        rc = xs_parser_feed(r.p, fill, CHUNK);
        sent += CHUNK;
    }
    assert_int_equal(rc, GW_ELIMIT);
    assert_string_equal(xs_parser_condition(r.p), "policy-violation");
    const size_t hard =
        (size_t)XS_PARSER_HARD_FACTOR * XS_PARSER_MAX_STANZA_DEFAULT;
    assert_true(sent >= hard && sent <= hard + 2 * CHUNK);
    free(fill);
    rec_close(&r);
}

/* While a stanza is skipped only the scanner reads it: '>' and quotes in
 * attribute values, CDATA holding end tags, nested elements of the same
 * name, self-closing top-level elements, comments and malformed tags. */
static void test_skip_scanner(void **state)
{
    struct xs_parser_opts o = {.max_stanza_bytes = 100};
    struct in b = {0};
    char pad[121];
    memset(pad, 'p', 120);
    pad[120] = '\0';
    in_add(&b,
           HDR "<message id='s1' from='" STRANGER "'><pad>%s</pad>"
               "<x a='>' b=\"'>'\" c='&lt;/message>'/>"
               "<![CDATA[</message><x>]]]]><![CDATA[>]]>"
               "<message><message x='1'><message/></message></message>"
               "<y\n/><z></z ></message>\n" NORMAL,
           pad);
    /* Self-closing top-level elements whose start tag alone is over the
     * limit: what they said comes from the scanner (entities decoded, a
     * prefixed name resolved), as with libxml2. */
    in_add(&b,
           "<presence id='p&amp;1' from='a@b/&#x41;&#66;' type='x\ty' "
           "pad='%s'/>",
           pad);
    in_add(&b,
           "<cl:message xmlns:cl='jabber:client' to='c@d' id=\"q'>\" "
           "pad='%s'/>",
           pad);
    in_add(&b, "<iq xmlns='urn:other' id='o' pad='%s' type='get'/>", pad);
    in_add(&b, "<stream:features pad='%s'/>" NORMAL "</stream:stream>", pad);
    expect_log(&o, b.p, b.len,
               HDR_LOG "D message jabber:client limit=size id=s1 "
                       "from=" STRANGER " to=- type=-\n" NORMAL_LOG
                       "D presence jabber:client limit=size id=p&1 "
                       "from=a@b/AB to=- type=x y\n"
                       "D message jabber:client limit=size id=q'> from=- "
                       "to=c@d type=-\n"
                       "D iq urn:other limit=size id=o from=- to=- "
                       "type=get\n"
                       "D features http://etherx.jabber.org/streams "
                       "limit=size id=- from=- to=- type=-\n" NORMAL_LOG "E\n");
    free(b.p);

    /* What no server forwards, in a skipped stanza: fatal. */
    static const struct {
        const char *in, *cond;
    } bad[] = {
        {"<!-- c -->", "restricted-xml"},   {"<?pi x?>", "restricted-xml"},
        {"<!DOCTYPE x>", "restricted-xml"}, {"<x a='1' / >", "not-well-formed"},
        {"<x a='<'/>", "not-well-formed"},  {"< x/>", "not-well-formed"},
        {"<![CDAT x", "not-well-formed"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rec r;
        rec_init(&r, &o);
        struct in c = {0};
        in_add(&c, HDR "<message><pad>%s</pad>%s</message>" NORMAL, pad,
               bad[i].in);
        int rc = feed_str(&r, c.p);
        if (rc == 0 || !xs_parser_condition(r.p) ||
            strcmp(xs_parser_condition(r.p), bad[i].cond) != 0)
            fail_msg("%s: rc %d, %s", bad[i].in, rc,
                     xs_parser_condition(r.p) ? xs_parser_condition(r.p)
                                              : "no error");
        assert_int_equal(r.nstanza, 0);
        free(c.p);
        rec_close(&r);
    }
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
    assert_int_equal(r.ndrop, 0);
    rec_close(&r);

    rec_init(&r, NULL);
    feed_nested(&r, 65);
    assert_null(xs_parser_condition(r.p));
    assert_int_equal(r.nstanza, 0);
    assert_int_equal(r.ndrop, 1);
    assert_non_null(strstr(rec_log(&r), "D a jabber:client limit=depth"));
    rec_close(&r);

    /* a configured depth is capped */
    struct xs_parser_opts o = {.max_depth = 5};
    rec_init(&r, &o);
    feed_nested(&r, 6);
    assert_int_equal(r.ndrop, 1);
    rec_close(&r);
    o.max_depth = 100000;
    rec_init(&r, &o);
    feed_nested(&r, XS_PARSER_MAX_DEPTH_LIMIT);
    assert_int_equal(r.nstanza, 1);
    rec_close(&r);
    rec_init(&r, &o);
    feed_nested(&r, XS_PARSER_MAX_DEPTH_LIMIT + 1);
    assert_int_equal(r.ndrop, 1);
    rec_close(&r);
}

static void test_attr_count(void **state)
{
    char in[4096];
    for (int extra = 0; extra < 2; extra++) {
        struct rec r;
        rec_init(&r, NULL);
        size_t o = (size_t)snprintf(in, sizeof(in), "%s<a", HDR);
        for (int i = 0; i < 64 + extra; i++)
            o += (size_t)snprintf(in + o, sizeof(in) - o, " a%d='%d'", i, i);
        snprintf(in + o, sizeof(in) - o, "/>");
        assert_int_equal(feed_str(&r, in), 0);
        assert_int_equal(r.nstanza, extra ? 0 : 1);
        assert_int_equal(r.ndrop, extra ? 1 : 0);
        rec_close(&r);
    }
    /* namespace declarations count too (the stream header is checked with
     * the same limit: 4 attributes + 2 declarations, and is fatal) */
    struct xs_parser_opts op = {.max_attrs = 6};
    struct rec r;
    rec_init(&r, &op);
    assert_int_equal(feed_str(&r, HDR "<a xmlns:p='urn:p' xmlns:q='urn:q' "
                                      "p:x='1' q:y='2' b='3' c='4'/>"),
                     0);
    assert_int_equal(feed_str(&r, "<a xmlns:p='urn:p' xmlns:q='urn:q' "
                                  "p:x='1' q:y='2' b='3' c='4' d='5'/>"),
                     0);
    assert_int_equal(r.nstanza, 1);
    assert_int_equal(r.ndrop, 1);
    rec_close(&r);
    op.max_attrs = 5;
    rec_init(&r, &op);
    assert_int_equal(feed_str(&r, HDR), GW_ELIMIT);
    assert_string_equal(xs_parser_condition(r.p), "policy-violation");
    assert_int_equal(r.nstart, 0);
    rec_close(&r);
}

/* The drop callback may reset or free the parser, like the others. */
static void test_drop_callback_actions(void **state)
{
    struct xs_parser_opts o = {.max_depth = 2};
    struct rec r;
    rec_init(&r, &o);
    r.on_drop = ACT_FREE;
    assert_int_equal(feed_str(&r, HDR "<a><b><c/></b></a><d/>"), GW_ECANCELED);
    assert_int_equal(r.ndrop, 1);
    assert_int_equal(r.nstanza, 0);
    r.p = NULL;
    rec_close(&r);

    rec_init(&r, &o);
    r.on_drop = ACT_RESET;
    assert_int_equal(feed_str(&r, HDR "<a><b><c/></b></a><d/>"), 0);
    assert_int_equal(xs_parser_discarded(r.p), 4);
    assert_int_equal(feed_str(&r, HDR "<d/>"), 0);
    assert_int_equal(r.nstanza, 1);
    rec_close(&r);

    rec_init(&r, &o);
    r.on_drop = ACT_FEED;
    assert_int_equal(feed_str(&r, HDR "<a><b><c/></b></a><d/>"), 0);
    assert_int_equal(r.feed_rc, GW_EBUSY);
    assert_int_equal(r.nstanza, 1);
    rec_close(&r);

    /* a reset from a stanza callback right after a recycle boundary */
    struct xs_parser_opts o2 = {.max_names = 20};
    rec_init(&r, &o2);
    r.on_stanza = ACT_RESET;
    r.trigger = "proceed";
    struct in b = {0};
    in_add(&b, HDR);
    for (int i = 0; i < 50; i++)
        in_add(&b, "<n%d/>", i);
    in_add(&b, PROCEED_ "<evil/>");
    assert_int_equal(feed_split(&r, b.p, b.len, 0), 0);
    assert_int_equal(r.nstanza, 51);
    assert_int_equal(xs_parser_discarded(r.p), strlen("<evil/>"));
    free(b.p);
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
    /* Before libxml2 allocates anything (see test_huge_stanza). */
    if (xmlMemSetup(cnt_free, cnt_malloc, cnt_realloc, cnt_strdup) != 0)
        return 1;
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
        cmocka_unit_test(test_hostile_deep_message),
        cmocka_unit_test(test_hostile_many_attrs),
        cmocka_unit_test(test_hostile_many_children),
        cmocka_unit_test(test_hostile_new_names),
        cmocka_unit_test(test_names_per_stanza),
        cmocka_unit_test(test_cr_at_recycle),
        cmocka_unit_test(test_wire_size),
        cmocka_unit_test(test_oversized_dropped),
        cmocka_unit_test(test_huge_stanza),
        cmocka_unit_test(test_inflated_stanza),
        cmocka_unit_test(test_skip_scanner),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_attr_count),
        cmocka_unit_test(test_drop_callback_actions),
        cmocka_unit_test(test_reset_in_callback),
        cmocka_unit_test(test_reset_other_places),
        cmocka_unit_test(test_free_and_feed_in_callback),
        cmocka_unit_test(test_stream_end_and_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
