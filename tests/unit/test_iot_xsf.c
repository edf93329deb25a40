/* test_iot_xsf.c - the XSF front end (xmpp/xs_iot_xsf) on the wire: the
 * stanzas it sends for readouts, rejects, chunking, failures, cancel,
 * control errors, getForm, XEP-0326 ops, subscriptions and presence.
 * Requests are parsed from XML text by the real stream parser; answers are
 * captured and serialized as they would go on the stream.  No engine: the
 * store is filled by hand, so readouts come from it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "gw_err.h"
#include "gw_iot.h"
#include "gw_store.h"
#include "xs_iot_xsf.h"
#include "xs_parser.h"

static const char MAP[] =
    "links:\n"
    "  - name: plant\n"
    "    type: tcp\n"
    "    host: 127.0.0.1\n"
    "    units:\n"
    "      - name: m1\n"
    "        id: 1\n"
    "        points:\n"
    "          - {name: power, table: input, address: 0, type: float32,\n"
    "             unit: W, decimals: 1}\n"
    "          - {name: relay, table: coil, address: 0, writable: true}\n"
    "          - {name: setpoint, table: holding, address: 10, type: int16,\n"
    "             scale: 0.1, decimals: 1, unit: C, writable: true,\n"
    "             min: 5, max: 30}\n"
    "      - name: m2\n"
    "        id: 2\n"
    "        points:\n"
    "          - {name: power, table: input, address: 0, type: float32}\n"
    "          - {name: setpoint, table: holding, address: 10, type: int16,\n"
    "             scale: 0.1, decimals: 1, writable: true}\n";

static char *readers[] = {"viewer@example.org"};
static char *controllers[] = {"ops@example.org"};

#define MAX_OUT 1024

struct fx {
    struct cfg *cfg;
    struct gw_store store;
    struct gw_iot *iot;
    struct xs_iot_xsf *fe;
    char *out[MAX_OUT];
    size_t n_out;
    size_t limit; /* largest stanza the "session" sends (as xs_conn_send) */
    size_t refused;
    struct gw_log log; /* refusals and control lines, into logbuf */
    char *logbuf;
    size_t loglen;
};

/* The send seam: serialize as xs_conn_send does, with its size limit. */
static int capture(void *ud, struct xs_stanza *st)
{
    struct fx *f = ud;
    struct xs_buf b;
    xs_buf_init(&b, f->limit ? f->limit : 1u << 20);
    int rc = xs_stanza_serialize(st, XS_NS_CLIENT, &b);
    xs_stanza_free(st);
    if (rc == GW_ELIMIT && f->limit) {
        xs_buf_close(&b);
        f->refused++;
        return GW_ELIMIT;
    }
    assert_int_equal(rc, 0);
    assert_true(f->n_out < MAX_OUT);
    f->out[f->n_out++] = strdup(b.data);
    xs_buf_close(&b);
    return 0;
}

static void clear_out(struct fx *f)
{
    for (size_t i = 0; i < f->n_out; i++)
        free(f->out[i]);
    f->n_out = 0;
}

static void fill_store(struct fx *f, int64_t now)
{
    uint16_t raw[2] = {0};
    for (size_t u = 0; u < 2; u++) {
        const struct cfg_unit *cu = &f->cfg->links[0].units[u];
        for (size_t p = 0; p < cu->n_points; p++) {
            struct ad_value v = {.kind = AD_VALUE_DOUBLE, .v.d = 21.5};
            if (cu->points[p].table == CFG_TABLE_COIL) {
                v.kind = AD_VALUE_BOOL;
                v.v.b = true;
            }
            gw_store_set_value(&f->store, 0, u, p, raw, 1, &v, 0, now);
        }
    }
}

static int setup_full(void **state, const char *map, size_t chunk, size_t limit,
                      uint32_t audit_window_ms)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    int rc = cfg_load_buffer("map.yaml", map, strlen(map), &f.cfg, &errs);
    cfg_errors_print(&errs, stderr);
    cfg_errors_close(&errs);
    if (rc != GW_OK)
        return -1;
    f.cfg->access.readers = readers;
    f.cfg->access.n_readers = 1;
    f.cfg->access.controllers = controllers;
    f.cfg->access.n_controllers = 1;
    f.limit = limit;
    f.log.level = GW_LOG_INFO;
    f.log.out = open_memstream(&f.logbuf, &f.loglen);
    struct gw_iot_opts io = {.audit_window_ms = audit_window_ms};
    if (!f.log.out || gw_store_init(&f.store, f.cfg) != GW_OK ||
        gw_iot_new(f.cfg, &f.store, NULL, &f.log, &io, &f.iot) != GW_OK)
        return -1;
    struct xs_iot_xsf_opts o = {.chunk_max = chunk,
                                .control_max_age_ms = 5000,
                                .stanza_max = limit,
                                .server = "example.org"};
    if (xs_iot_xsf_new(f.iot, capture, &f, &f.log, &o, &f.fe) != GW_OK)
        return -1;
    if (map == MAP)
        fill_store(&f, gw_now_ms());
    *state = &f;
    return 0;
}

static int setup_chunk(void **state, size_t chunk)
{
    return setup_full(state, MAP, chunk, 0, 0);
}

static int setup(void **state)
{
    return setup_chunk(state, 0);
}

static int setup_small(void **state)
{
    return setup_chunk(state, 2048);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    clear_out(f);
    xs_iot_xsf_free(f->fe);
    gw_iot_free(f->iot);
    gw_store_close(&f->store);
    memset(&f->cfg->access, 0, sizeof(f->cfg->access));
    cfg_free(f->cfg);
    fclose(f->log.out);
    free(f->logbuf);
    return 0;
}

/* The log so far (refusal lines, control lines). */
static const char *logged(struct fx *f)
{
    fflush(f->log.out);
    return f->logbuf ? f->logbuf : "";
}

/* Forgets the log so far. */
static void clear_log(struct fx *f)
{
    fclose(f->log.out);
    free(f->logbuf);
    f->logbuf = NULL;
    f->loglen = 0;
    f->log.out = open_memstream(&f->logbuf, &f->loglen);
    assert_non_null(f->log.out);
}

/* A refusal audit window of 1 ms: with tick() between requests, every
 * refusal is logged. */
static int setup_audit1(void **state)
{
    return setup_full(state, MAP, 0, 0, 1);
}

static void tick(void)
{
    usleep(3000);
}

/* ---- feeding stanzas ----------------------------------------------------- */

struct parsed {
    struct xs_stanza *st;
};

static void on_stanza(void *data, struct xs_stanza *st)
{
    struct parsed *p = data;
    xs_stanza_free(p->st);
    p->st = st;
}

static struct xs_stanza *parse(const char *xml)
{
    struct parsed p = {0};
    struct xs_parser_cbs cbs = {.stanza = on_stanza};
    struct xs_parser *ps = xs_parser_new(&cbs, &p, NULL);
    assert_non_null(ps);
    const char *head = "<stream:stream xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams'>";
    assert_int_equal(xs_parser_feed(ps, head, strlen(head)), 0);
    assert_int_equal(xs_parser_feed(ps, xml, strlen(xml)), 0);
    xs_parser_free(ps);
    assert_non_null(p.st);
    return p.st;
}

static void iq(struct fx *f, const char *xml)
{
    struct xs_stanza *st = parse(xml);
    xs_iot_xsf_iq(f->fe, st);
    xs_stanza_free(st);
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

#define HAS(i, text) assert_non_null(strstr(f->out[i], text))
#define HASNT(i, text) assert_null(strstr(f->out[i], text))

/* ---- XEP-0323 ------------------------------------------------------------ */

static void test_readout_one_node(void **state)
{
    struct fx *f = *state;
    iq(f, "<iq type='get' id='1' from='viewer@example.org/c'>"
          "<req xmlns='urn:xmpp:iot:sensordata' seqnr='1' momentary='true'>"
          "<node nodeId='m1'/></req></iq>");
    assert_int_equal(f->n_out, 2);
    HAS(0, "<iq type='result' to='viewer@example.org/c' id='1'>");
    HAS(0, "<accepted xmlns='urn:xmpp:iot:sensordata' seqnr='1'/>");
    HASNT(0, "queued");
    HAS(1, "<message to='viewer@example.org/c'>");
    HAS(1, "<fields xmlns='urn:xmpp:iot:sensordata' seqnr='1' done='true'>");
    HAS(1, "<node nodeId='m1' sourceId='MeteringTopology'>");
    HAS(1, "<timestamp value='");
    HAS(1, "<numeric name='power' momentary='true' automaticReadout='true' "
           "value='21.5' unit='W'/>");
    HAS(1, "<boolean name='relay' momentary='true' automaticReadout='true' "
           "value='true' writable='true'/>");
    HASNT(1, "status='true'"); /* only momentary was asked */
    HASNT(1, "nodeId='m2'");
    assert_int_equal(xs_iot_xsf_readouts(f->fe), 0);
}

static void test_readout_all_and_field(void **state)
{
    struct fx *f = *state;
    /* No node: every node; field filter. */
    iq(f, "<iq type='get' id='7' from='ops@example.org/c'>"
          "<req xmlns='urn:xmpp:iot:sensordata' seqnr='07' all='true'>"
          "<field name='setpoint'/></req></iq>");
    assert_int_equal(f->n_out, 2);
    HAS(0, "seqnr='07'"); /* echoed byte for byte */
    HAS(1, "seqnr='07' done='true'");
    assert_int_equal(count(f->out[1], "<numeric name='setpoint'"), 2);
    assert_int_equal(count(f->out[1], "name='power'"), 0);
    /* nodes with no matching field are not listed */
    HASNT(1, "nodeId='plant'");
    HAS(1, "nodeId='m2'");
}

static void test_reject_forms(void **state)
{
    struct fx *f = *state;
    iq(f, "<iq type='get' id='2' from='evil@example.com/x'>"
          "<req xmlns='urn:xmpp:iot:sensordata' seqnr='2' momentary='true'/>"
          "</iq>");
    assert_int_equal(f->n_out, 1);
    HAS(0, "<iq type='error' to='evil@example.com/x' id='2'>");
    HAS(0, "<error type='cancel'><forbidden "
           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    HAS(0, "<rejected xmlns='urn:xmpp:iot:sensordata' seqnr='2'><error>Access "
           "denied</error></rejected>");
    clear_out(f);
    iq(f, "<iq type='get' id='3' from='viewer@example.org/c'>"
          "<req xmlns='urn:xmpp:iot:sensordata' seqnr='3'>"
          "<node nodeId='m9'/></req></iq>");
    HAS(0, "<item-not-found");
    HAS(0, "<error>Unknown node m9</error></rejected>");
    clear_out(f);
    iq(f, "<iq type='get' id='4' from='viewer@example.org/c'>"
          "<req xmlns='urn:xmpp:iot:sensordata' seqnr='4'>"
          "<node nodeId='m1' sourceId='Other'/></req></iq>");
    HAS(0, "<item-not-found");
    clear_out(f);
    iq(f, "<iq type='get' id='5' from='viewer@example.org/c'>"
          "<req xmlns='urn:xmpp:iot:sensordata' momentary='true'/></iq>");
    HAS(0, "<bad-request");
    HASNT(0, "rejected"); /* no seqnr to echo */
    clear_out(f);
    iq(f, "<iq type='get' id='6' from='viewer@example.org/c'>"
          "<cancel xmlns='urn:xmpp:iot:sensordata' seqnr='99'/></iq>");
    HAS(0, "<item-not-found");
    HAS(0, "<rejected xmlns='urn:xmpp:iot:sensordata' seqnr='99'>");
}

static void test_failure_last(void **state)
{
    struct fx *f = *state;
    /* m2 offline in the store: served from cache as a failure. */
    gw_store_set_unit_status(&f->store, 0, 1, GW_UNIT_OFFLINE, gw_now_ms());
    f->store.links[0].units[1].last_err = GW_ETIMEOUT;
    iq(f, "<iq type='get' id='1' from='viewer@example.org/c'>"
          "<req xmlns='urn:xmpp:iot:sensordata' seqnr='1' momentary='true'/>"
          "</iq>");
    assert_int_equal(f->n_out, 3);
    HAS(1, "<fields xmlns='urn:xmpp:iot:sensordata' seqnr='1'>");
    HASNT(1, "done=");
    HAS(1, "nodeId='m1'");
    HASNT(1, "nodeId='m2'");
    HAS(2, "<failure xmlns='urn:xmpp:iot:sensordata' seqnr='1' done='true'>");
    HAS(2, "<error nodeId='m2' sourceId='MeteringTopology' timestamp='");
    HAS(2, "unit m2 (id 2): no response</error>");
}

static void test_chunks(void **state)
{
    struct fx *f = *state;
    /* 2 KiB chunks: the status+identity+momentary fields of 4 nodes do not
     * fit one message. */
    iq(f, "<iq type='get' id='1' from='viewer@example.org/c'>"
          "<req xmlns='urn:xmpp:iot:sensordata' seqnr='1' all='true'/></iq>");
    assert_true(f->n_out >= 3);
    size_t done = 0;
    for (size_t i = 1; i < f->n_out; i++) {
        assert_true(strlen(f->out[i]) <= 2048);
        HAS(i, "<fields xmlns='urn:xmpp:iot:sensordata' seqnr='1'");
        done += strstr(f->out[i], "done='true'") != NULL;
    }
    assert_int_equal(done, 1);
    HAS(f->n_out - 1, "done='true'");
}

/* ---- XEP-0325 ------------------------------------------------------------ */

static void test_control_errors(void **state)
{
    struct fx *f = *state;
    iq(f, "<iq type='set' id='c1' from='viewer@example.org/c'>"
          "<set xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
          "<boolean name='relay' value='false'/></set></iq>");
    assert_int_equal(f->n_out, 1);
    HAS(0, "<iq type='error' to='viewer@example.org/c' id='c1'>");
    HAS(0, "<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    HAS(0, "<setResponse xmlns='urn:xmpp:iot:control' "
           "responseCode='InsufficientPrivileges'>");
    clear_out(f);
    iq(f, "<iq type='set' id='c2' from='ops@example.org/c'>"
          "<set xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
          "<boolean name='relay' value='false'/>"
          "<double name='setpoint' value='99'/></set></iq>");
    HAS(0, "<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    HAS(0, "<paramError xmlns='urn:xmpp:iot:control' var='setpoint'>");
    HAS(0, "responseCode='FormError'><parameter name='setpoint'/>"
           "<error var='setpoint'>");
    HAS(0, "5..30");
    clear_out(f);
    iq(f, "<iq type='set' id='c3' from='ops@example.org/c'>"
          "<set xmlns='urn:xmpp:iot:control'><node nodeId='m7'/>"
          "<boolean name='relay' value='false'/></set></iq>");
    HAS(0, "<item-not-found");
    HAS(0, "responseCode='NotFound'><node nodeId='m7'/>");
    clear_out(f);
    iq(f, "<iq type='set' id='c4' from='ops@example.org/c'>"
          "<set xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
          "<int name='nope' value='1'/></set></iq>");
    HAS(0, "responseCode='NotFound'><parameter name='nope'/>");
    clear_out(f);
    /* Valid, but this test has no engine: NotImplemented. */
    iq(f, "<iq type='set' id='c5' from='ops@example.org/c'>"
          "<set xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
          "<x xmlns='jabber:x:data' type='submit'>"
          "<field var='setpoint'><value>22</value></field></x></set></iq>");
    HAS(0, "responseCode='NotImplemented'");
    HAS(0, "<feature-not-implemented");
}

static void test_get_form(void **state)
{
    struct fx *f = *state;
    iq(f, "<iq type='get' id='f1' from='ops@example.org/c'>"
          "<getForm xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
          "</getForm></iq>");
    assert_int_equal(f->n_out, 1);
    HAS(0, "<iq type='result' to='ops@example.org/c' id='f1'>");
    HAS(0, "<x xmlns='jabber:x:data' type='form'><title>m1</title>");
    HAS(0, "<field var='relay' label='relay' type='boolean'><value>true</value>"
           "<validate xmlns='http://jabber.org/protocol/xdata-validate' "
           "datatype='xs:boolean'><basic/></validate>"
           "<notSame xmlns='urn:xmpp:xdata:dynamic'/></field>");
    HAS(0, "<field var='setpoint' label='setpoint (C)' type='text-single'>"
           "<value>21.5</value><validate "
           "xmlns='http://jabber.org/protocol/xdata-validate' "
           "datatype='xs:double'><range min='5' max='30'/></validate>");
    HASNT(0, "var='power'"); /* read-only */
    clear_out(f);
    /* Two nodes: the common parameters only. */
    iq(f, "<iq type='get' id='f2' from='ops@example.org/c'>"
          "<getForm xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
          "<node nodeId='m2'/></getForm></iq>");
    HAS(0, "var='setpoint'");
    HASNT(0, "var='relay'");
    clear_out(f);
    iq(f, "<iq type='get' id='f3' from='viewer@example.org/c'>"
          "<getForm xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
          "</getForm></iq>");
    HAS(0, "<forbidden");
}

static void test_control_message_delay(void **state)
{
    struct fx *f = *state;
    int64_t now = 1700000000000;
    struct xs_stanza *m =
        parse("<message from='ops@example.org/c'>"
              "<set xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
              "<boolean name='relay' value='false'/></set>"
              "<delay xmlns='urn:xmpp:delay' stamp='2023-11-14T22:13:00Z'/>"
              "</message>");
    assert_true(xs_iot_xsf_message(f->fe, m, now)); /* 20 s old: refused */
    xs_stanza_free(m);
    assert_int_equal(f->n_out, 0); /* messages are never answered */
    m = parse("<message from='ops@example.org/c'><body>hi</body></message>");
    assert_false(xs_iot_xsf_message(f->fe, m, now));
    xs_stanza_free(m);
}

/* ---- XEP-0326 ------------------------------------------------------------ */

static void test_concentrator_ops(void **state)
{
    struct fx *f = *state;
    const char *ns = "xmlns='urn:xmpp:iot:concentrators'";
    char buf[512];
#define OP(type, body)                                                         \
    do {                                                                       \
        clear_out(f);                                                          \
        snprintf(buf, sizeof(buf),                                             \
                 "<iq type='" type "' id='n' from='viewer@example.org/c'>%s"   \
                 "</iq>",                                                      \
                 body);                                                        \
        iq(f, buf);                                                            \
        assert_int_equal(f->n_out, 1);                                         \
    } while (0)
    (void)ns;
    OP("get", "<getCapabilities xmlns='urn:xmpp:iot:concentrators'/>");
    HAS(0, "<getCapabilitiesResponse xmlns='urn:xmpp:iot:concentrators' "
           "result='OK'><value>getCapabilities</value>");
    HAS(0, "<value>subscribe</value>");
    HASNT(0, "moveNodeUp");
    OP("get", "<getAllDataSources xmlns='urn:xmpp:iot:concentrators'/>");
    HAS(0, "<dataSource sourceId='MeteringTopology' name='Modbus devices' "
           "hasChildren='false'/>");
    OP("get", "<getChildDataSources xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology'/>");
    HAS(0, "<getChildDataSourcesResponse xmlns='urn:xmpp:iot:concentrators' "
           "result='OK'/>");
    OP("get", "<containsNode xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology' nodeId='m2'/>");
    HAS(0, "result='OK'>true</containsNodeResponse>");
    OP("get",
       "<containsNodes xmlns='urn:xmpp:iot:concentrators'>"
       "<node sourceId='MeteringTopology' nodeId='m2'/>"
       "<node sourceId='MeteringTopology' nodeId='zz'/></containsNodes>");
    HAS(0, "<value>true</value><value>false</value>");
    OP("get", "<getNode xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology' nodeId='m1' parameters='true'/>");
    HAS(0, "<getNodeResponse xmlns='urn:xmpp:iot:concentrators' result='OK' "
           "nodeId='m1' displayName='m1' nodeType='Modbus.Unit' state='None' "
           "hasChildren='false' isReadable='true' isControllable='true' "
           "hasCommands='true' parentId='plant'");
    HAS(0, "<int id='unitId' name='Unit id' value='1'/>");
    OP("get", "<getNode xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology' nodeId='zz'/>");
    HAS(0, "<iq type='error'");
    HAS(0, "<item-not-found");
    HAS(0, "<getNodeResponse xmlns='urn:xmpp:iot:concentrators' "
           "result='NotFound'/>");
    OP("get", "<getAncestors xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology' nodeId='m2'/>");
    const char *a = strstr(f->out[0], "nodeId='m2'");
    const char *b = strstr(f->out[0], "nodeId='plant'");
    const char *c = strstr(f->out[0], "nodeId='_gateway'");
    assert_true(a && b && c && a < b && b < c);
    OP("get", "<getRootNodes xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology'/>");
    assert_int_equal(count(f->out[0], "<node "), 1);
    HAS(0, "nodeId='_gateway'");
    OP("get", "<getChildNodes xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology' nodeId='plant'/>");
    assert_int_equal(count(f->out[0], "<node "), 2);
    OP("get", "<getAllNodes xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology'><onlyIfDerivedFrom>Modbus.Unit"
              "</onlyIfDerivedFrom></getAllNodes>");
    assert_int_equal(count(f->out[0], "<node "), 2);
    OP("get", "<getNodeInheritance xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology' nodeId='m1'/>");
    HAS(0, "<baseClasses><value>Modbus.Node</value>");
    OP("get", "<getNodeCommands xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology' nodeId='m1'/>");
    HAS(0, "<command command='readNow' name='Read now' type='Simple'");
    OP("set",
       "<executeNodeCommand xmlns='urn:xmpp:iot:concentrators' "
       "sourceId='MeteringTopology' nodeId='m1' command='resetBackoff'/>");
    HAS(0, "result='InsufficientPrivileges'");
    HAS(0, "<forbidden");
    OP("set", "<executeNodeCommand xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology' nodeId='m1' command='bogus'/>");
    HAS(0, "result='NotFound'");
    OP("set", "<moveNodeUp xmlns='urn:xmpp:iot:concentrators' "
              "sourceId='MeteringTopology' nodeId='m2'/>");
    HAS(0, "<moveNodeUpResponse xmlns='urn:xmpp:iot:concentrators' "
           "result='NotImplemented'/>");
    HAS(0, "<feature-not-implemented");
    OP("set",
       "<subscribe xmlns='urn:xmpp:iot:concentrators' "
       "sourceId='MeteringTopology' getEventsSince='2020-01-01T00:00:00Z'"
       "/>");
    HAS(0, "result='NotImplemented'");
    assert_int_equal(xs_iot_xsf_subscriptions(f->fe), 0);
#undef OP
    /* Forbidden for strangers. */
    clear_out(f);
    iq(f, "<iq type='get' id='z' from='evil@example.com/x'>"
          "<getCapabilities xmlns='urn:xmpp:iot:concentrators'/></iq>");
    HAS(0, "result='InsufficientPrivileges'");
}

static void test_subscribe_events_presence(void **state)
{
    struct fx *f = *state;
    iq(f, "<iq type='set' id='s' from='viewer@example.org/c'>"
          "<subscribe xmlns='urn:xmpp:iot:concentrators' "
          "sourceId='MeteringTopology' messages='true'/></iq>");
    HAS(0, "<subscribeResponse xmlns='urn:xmpp:iot:concentrators' "
           "result='OK'/>");
    assert_int_equal(xs_iot_xsf_subscriptions(f->fe), 1);
    clear_out(f);
    f->store.links[0].units[0].last_err = GW_ETIMEOUT;
    gw_store_set_unit_status(&f->store, 0, 0, GW_UNIT_OFFLINE, 1000);
    /* gateway, plant, m1 change state */
    assert_int_equal(f->n_out, 3);
    HAS(2, "<message to='viewer@example.org/c'><nodeStatusChanged "
           "xmlns='urn:xmpp:iot:concentrators' sourceId='MeteringTopology' "
           "nodeId='m1' state='ErrorUnsigned'");
    HAS(2, "type='Error'>unit m1 (id 1): timed out</message>");
    clear_out(f);
    /* Another resource going away does not end it; this one does. */
    struct xs_stanza *p =
        parse("<presence from='viewer@example.org/other' type='unavailable'/>");
    xs_iot_xsf_presence(f->fe, p);
    xs_stanza_free(p);
    assert_int_equal(xs_iot_xsf_subscriptions(f->fe), 1);
    p = parse("<presence from='viewer@example.org/c' type='unavailable'/>");
    xs_iot_xsf_presence(f->fe, p);
    xs_stanza_free(p);
    assert_int_equal(xs_iot_xsf_subscriptions(f->fe), 0);
    gw_store_set_unit_status(&f->store, 0, 0, GW_UNIT_ONLINE, 2000);
    assert_int_equal(f->n_out, 0);
}

/* ---- bounds, delays, refusals, oversized answers ------------------------- */

/* A <set> (iq or message) from ops naming n_nodes nodes (m1, m2, m1, ...,
 * or m1 only) and the given parameter elements; malloc'd. */
static char *big_set(bool is_iq, size_t n_nodes, bool only_m1,
                     const char *params)
{
    size_t cap = n_nodes * 32 + strlen(params) + 512;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t len = (size_t)snprintf(
        s, cap, "%s<set xmlns='urn:xmpp:iot:control'>",
        is_iq ? "<iq type='set' id='big' from='ops@example.org/c'>"
              : "<message from='ops@example.org/c'>");
    for (size_t i = 0; i < n_nodes; i++)
        len += (size_t)snprintf(s + len, cap - len, "<node nodeId='%s'/>",
                                only_m1 || i % 2 == 0 ? "m1" : "m2");
    snprintf(s + len, cap - len, "%s</set>%s", params,
             is_iq ? "</iq>" : "</message>");
    return s;
}

/* n copies of a parameter element, numbered names when numbered. */
static char *params_of(size_t n, bool numbered)
{
    size_t cap = n * 64 + 1;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t len = 0;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += numbered ? (size_t)snprintf(s + len, cap - len,
                                           "<int name='p%zu' value='1'/>", i)
                        : (size_t)snprintf(s + len, cap - len,
                                           "<boolean name='relay' "
                                           "value='false'/>");
    return s;
}

static void test_control_amplification(void **state)
{
    struct fx *f = *state;
    /* 1,024 nodes (two distinct) x 17 distinct parameters = 34 writes >
     * 32: refused before any check of the points, in the XEP-0325 error
     * shape. */
    char *p17 = params_of(17, true);
    char *xml = big_set(true, 1024, false, p17);
    iq(f, xml);
    free(xml);
    assert_int_equal(f->n_out, 1);
    HAS(0, "<iq type='error' to='ops@example.org/c' id='big'>");
    HAS(0, "<error type='modify'><not-acceptable "
           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    HAS(0, "2 node(s) x 17 parameter(s) = 34 writes, more than the 32 "
           "allowed per request");
    HAS(0, "<setResponse xmlns='urn:xmpp:iot:control' "
           "responseCode='OtherError'>");
    assert_non_null(strstr(logged(f), "control from ops@example.org/c "
                                      "refused: set refused: 2 node(s) x 17"));
    clear_out(f);
    /* The same 1,024 nodes (m1 only) x 256 identical parameters: one write
     * after de-duplication (valid; no engine here: NotImplemented). */
    char *p256 = params_of(256, false);
    xml = big_set(true, 1024, true, p256);
    iq(f, xml);
    free(xml);
    HAS(0, "responseCode='NotImplemented'");
    clear_out(f);
    /* More parameters than a request may hold: refused, not truncated. */
    char *p300 = params_of(300, false);
    xml = big_set(true, 1, true, p300);
    iq(f, xml);
    free(xml);
    HAS(0, "<not-acceptable");
    HAS(0, "more than 1024 nodes or 256 parameters");
    clear_out(f);
    /* By message: no answer, one log line. */
    clear_log(f);
    xml = big_set(false, 40, false, p17);
    struct xs_stanza *m = parse(xml);
    free(xml);
    assert_true(xs_iot_xsf_message(f->fe, m, gw_now_ms()));
    xs_stanza_free(m);
    assert_int_equal(f->n_out, 0);
    assert_non_null(strstr(logged(f), "control message from ops@example.org/c "
                                      "refused: set refused: 2 node(s) x 17"));
    free(p17);
    free(p256);
    free(p300);
}

/* A control message from ops (valid for m1) with the given delays; returns
 * what the log says about it. */
static const char *delayed(struct fx *f, const char *delays, int64_t now)
{
    char xml[1024];
    snprintf(xml, sizeof(xml),
             "<message from='ops@example.org/c'>"
             "<set xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
             "<boolean name='relay' value='false'/></set>%s</message>",
             delays);
    tick();
    clear_log(f);
    struct xs_stanza *m = parse(xml);
    assert_true(xs_iot_xsf_message(f->fe, m, now));
    xs_stanza_free(m);
    assert_int_equal(f->n_out, 0);
    return logged(f);
}

#define D(from, stamp)                                                         \
    "<delay xmlns='urn:xmpp:delay' " from " stamp='" stamp "'/>"
/* 2023-11-14T22:13:20Z */
#define NOW 1700000000000

static void test_control_delay_rules(void **state)
{
    struct fx *f = *state;
    /* Accepted by the delay check: then "no bus engine" (no engine). */
    const char *ok = "refused: no bus engine (NotImplemented)";
    assert_non_null(strstr(delayed(f, "", NOW), ok));
    assert_non_null(strstr(
        delayed(f, D("from='example.org'", "2023-11-14T22:13:18Z"), NOW), ok));
    /* A stamp in the future: refused beyond 30 s of skew. */
    assert_non_null(
        strstr(delayed(f, D("from='example.org'", "2023-11-14T22:14:30Z"), NOW),
               "refused: delay stamp 70000 ms in the future"));
    assert_non_null(strstr(
        delayed(f, D("from='example.org'", "2023-11-14T22:13:40Z"), NOW), ok));
    /* The server's stamp decides, not the first one found: a fresh stamp
     * the sender put first does not hide the server's old one ... */
    assert_non_null(
        strstr(delayed(f,
                       D("from='ops@example.org/c'", "2023-11-14T22:13:19Z")
                           D("from='example.org'", "2023-11-14T22:00:00Z"),
                       NOW),
               "refused: delayed 800000 ms (max 5000 ms)"));
    /* ... and an old foreign stamp does not matter when the server's is
     * fresh. */
    assert_non_null(
        strstr(delayed(f,
                       D("from='other.example.com'", "2023-11-14T22:00:00Z")
                           D("from='EXAMPLE.org'", "2023-11-14T22:13:19Z"),
                       NOW),
               ok));
    /* Two claiming the server: the last (outermost, added by it) counts. */
    assert_non_null(
        strstr(delayed(f,
                       D("from='example.org'", "2023-11-14T22:13:19Z")
                           D("from='example.org'", "2023-11-14T22:00:00Z"),
                       NOW),
               "refused: delayed 800000 ms"));
    /* Legacy jabber:x:delay from the server. */
    assert_non_null(strstr(delayed(f,
                                   "<x xmlns='jabber:x:delay' "
                                   "from='example.org' "
                                   "stamp='20231114T22:00:00'/>",
                                   NOW),
                           "refused: delayed"));
    /* No server stamp: every stamp must pass. */
    assert_non_null(
        strstr(delayed(f,
                       D("from='a.example.com'", "2023-11-14T22:13:19Z")
                           D("", "2023-11-14T22:00:00Z"),
                       NOW),
               "refused: delayed 800000 ms"));
    assert_non_null(strstr(delayed(f, D("", "not a time"), NOW),
                           "refused: unreadable delay"));
}

static void test_cancel_access(void **state)
{
    struct fx *f = *state;
    /* A stranger: forbidden (with <rejected>), whatever the seqnr. */
    iq(f, "<iq type='get' id='k' from='evil@example.com/x'>"
          "<cancel xmlns='urn:xmpp:iot:sensordata' seqnr='1'/></iq>");
    assert_int_equal(f->n_out, 1);
    HAS(0, "<error type='cancel'><forbidden "
           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    HAS(0, "<rejected xmlns='urn:xmpp:iot:sensordata' seqnr='1'><error>Access "
           "denied</error></rejected>");
    HASNT(0, "item-not-found");
    assert_non_null(strstr(logged(f),
                           "cancel from evil@example.com/x "
                           "refused: seqnr 1 rejected: Access denied"));
    clear_out(f);
    /* A reader: no such readout. */
    iq(f, "<iq type='get' id='k' from='viewer@example.org/c'>"
          "<cancel xmlns='urn:xmpp:iot:sensordata' seqnr='1'/></iq>");
    HAS(0, "<item-not-found");
}

static void test_refusals_logged(void **state)
{
    struct fx *f = *state;
    const char *ev = "from='evil@example.com/x'";
    char buf[512];
#define EVIL(type, body)                                                       \
    do {                                                                       \
        snprintf(buf, sizeof(buf), "<iq type='" type "' id='e' %s>%s</iq>",    \
                 ev, body);                                                    \
        iq(f, buf);                                                            \
    } while (0)
    EVIL("set", "<set xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
                "<boolean name='relay' value='true'/></set>");
    EVIL("get", "<getForm xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
                "</getForm>");
    EVIL("get", "<req xmlns='urn:xmpp:iot:sensordata' seqnr='9'/>");
    EVIL("get", "<getCapabilities xmlns='urn:xmpp:iot:concentrators'/>");
    EVIL("get", "<getNodes xmlns='urn:xmpp:iot:concentrators'>"
                "<node sourceId='MeteringTopology' nodeId='m1'/></getNodes>");
    /* An operation that does not exist: a stranger learns only "no". */
    EVIL("set", "<moveNodeUp xmlns='urn:xmpp:iot:concentrators' "
                "sourceId='MeteringTopology' nodeId='m2'/>");
#undef EVIL
    struct xs_stanza *m =
        parse("<message from='evil@example.com/x'>"
              "<set xmlns='urn:xmpp:iot:control'><node nodeId='m1'/>"
              "<boolean name='relay' value='true'/></set></message>");
    assert_true(xs_iot_xsf_message(f->fe, m, gw_now_ms()));
    xs_stanza_free(m);
    HAS(5, "<moveNodeUpResponse xmlns='urn:xmpp:iot:concentrators' "
           "result='InsufficientPrivileges'/>");
    const char *log = logged(f);
    assert_non_null(strstr(log, "control from evil@example.com/x refused: "
                                "evil@example.com/x may not control this "
                                "gateway (InsufficientPrivileges)"));
    assert_non_null(strstr(log, "getForm from evil@example.com/x refused: "
                                "Control access required"));
    assert_non_null(strstr(log, "readout from evil@example.com/x refused: "
                                "seqnr 9 rejected: Access denied"));
    assert_non_null(strstr(log, "concentrator from evil@example.com/x refused: "
                                "getCapabilities: InsufficientPrivileges"));
    assert_non_null(strstr(log, "control message from evil@example.com/x "
                                "refused: "));
    /* One line per kind and sender in the window: getNodes and moveNodeUp
     * were counted, not logged. */
    assert_int_equal(count(log, " refused: "), 5);
    assert_null(strstr(log, "getNodes"));
}

/* 4 links x 100 units: node lists far beyond a 10,000-byte stanza. */
static char *large_map(void)
{
    size_t cap = 400 * 120 + 4 * 100;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t len = (size_t)snprintf(s, cap, "links:\n");
    for (int l = 0; l < 4; l++) {
        len += (size_t)snprintf(s + len, cap - len,
                                "  - name: link%d\n    type: tcp\n"
                                "    host: 127.0.0.1\n    units:\n",
                                l);
        for (int u = 0; u < 100; u++)
            len += (size_t)snprintf(
                s + len, cap - len,
                "      - name: unit%d-%d\n        id: %d\n        points:\n"
                "          - {name: p, table: holding, address: 0}\n",
                l, u, u + 1);
    }
    return s;
}

static int setup_large(void **state)
{
    static char *map;
    free(map);
    map = large_map();
    return setup_full(state, map, 0, 10000, 0);
}

static void test_oversized_answers(void **state)
{
    struct fx *f = *state;
    /* 405 nodes do not fit one iq result: an error, not silence. */
    iq(f, "<iq type='get' id='a' from='viewer@example.org/c'>"
          "<getAllNodes xmlns='urn:xmpp:iot:concentrators' "
          "sourceId='MeteringTopology'/></iq>");
    assert_int_equal(f->refused, 1);
    assert_int_equal(f->n_out, 1);
    HAS(0, "<iq type='error' to='viewer@example.org/c' id='a'>");
    HAS(0, "<error type='wait'><resource-constraint "
           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    HAS(0, "exceed the largest stanza (10000 bytes)");
    HAS(0, "<getAllNodesResponse xmlns='urn:xmpp:iot:concentrators' "
           "result='OtherError'/>");
    assert_non_null(strstr(logged(f), "concentrator from viewer@example.org/c "
                                      "refused: getAllNodes: the answer is "
                                      "larger than the stanza limit"));
    clear_out(f);
    /* A link's 100 units with their parameters: too large as well. */
    iq(f, "<iq type='get' id='b' from='viewer@example.org/c'>"
          "<getChildNodes xmlns='urn:xmpp:iot:concentrators' "
          "sourceId='MeteringTopology' nodeId='link1' parameters='true'/>"
          "</iq>");
    assert_int_equal(f->n_out, 1);
    HAS(0, "<getChildNodesResponse xmlns='urn:xmpp:iot:concentrators' "
           "result='OtherError'/>");
    clear_out(f);
    /* A small question still gets its answer. */
    iq(f, "<iq type='get' id='c' from='viewer@example.org/c'>"
          "<getNodes xmlns='urn:xmpp:iot:concentrators'>"
          "<node sourceId='MeteringTopology' nodeId='unit3-7'/></getNodes>"
          "</iq>");
    HAS(0, "<iq type='result'");
    HAS(0, "nodeId='unit3-7'");
    clear_out(f);
    /* A readout of everything is split into messages that fit. */
    f->refused = 0;
    iq(f, "<iq type='get' id='d' from='viewer@example.org/c'>"
          "<req xmlns='urn:xmpp:iot:sensordata' seqnr='1' all='true'/></iq>");
    assert_int_equal(f->refused, 0);
    assert_true(f->n_out > 10);
    for (size_t i = 1; i < f->n_out; i++) {
        assert_true(strlen(f->out[i]) <= 10000);
        assert_true((strstr(f->out[i], "done='true'") != NULL) ==
                    (i == f->n_out - 1));
    }
}

static void test_time(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(xs_iot_parse_time("2024-05-01T10:15:00Z", &ms), 0);
    assert_true(ms == 1714558500000);
    assert_int_equal(xs_iot_parse_time("2024-05-01T12:15:00.25+02:00", &ms), 0);
    assert_true(ms == 1714558500250);
    assert_int_equal(xs_iot_parse_time("20240501T10:15:00", &ms), 0);
    assert_int_equal(xs_iot_parse_time("2024-13-01T10:15:00Z", &ms), GW_EPARSE);
    assert_int_equal(xs_iot_parse_time("yesterday", &ms), GW_EPARSE);
    assert_int_equal(xs_iot_parse_time("2024-05-01T10:15:00Q", &ms), GW_EPARSE);
    char buf[40];
    xs_iot_format_time(1714558500000, buf, sizeof(buf));
    assert_string_equal(buf, "2024-05-01T10:15:00Z");
    xs_iot_format_time(1714558500007, buf, sizeof(buf));
    assert_string_equal(buf, "2024-05-01T10:15:00.007Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_readout_one_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readout_all_and_field, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reject_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_control_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_message_delay, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_concentrator_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_events_presence, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_control_amplification, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_control_delay_rules, setup_audit1,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_answers, setup_large,
                                        teardown),
        cmocka_unit_test(test_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
