/* libFuzzer target for IoT request parsing: stanza tree -> model request.
 *
 * Input: stanzas (after a fixed stream header) parsed by xmpp/xs_parser;
 * each one is routed as the session routes it (gateway/gw_xmpp.c and
 * xs_conn's route_iq): an iq get/set with exactly one child in one of the
 * three urn:xmpp:iot namespaces to xs_iot_xsf_iq, a message to
 * xs_iot_xsf_message, a presence to xs_iot_xsf_presence.  The front end
 * runs over a gw_iot model of a small fixed map (a TCP link and a 1200-baud
 * RTU link, every point type, writable, verify and enum points), with an
 * access: section, no engine and no session: its send function is the
 * seam (xs_iot_send_fn), which refuses stanzas larger than the stanza
 * limit with GW_ELIMIT as xs_conn_send does.
 *
 * Oracle: no crash or sanitizer report; every stanza sent serializes and
 * parses back equal (well-formed, one stanza); every routed iq is answered
 * exactly once, with an iq result or error to the requester (there is no
 * engine, so nothing is left pending).  Anything else aborts.
 *
 * Run: cmake -DFG_FUZZ=ON -DCMAKE_C_COMPILER=clang ...; then
 *   build/tests/fuzz_iot -max_len=8192 tests/fuzz/corpus/fuzz_iot */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "gw_err.h"
#include "gw_iot.h"
#include "gw_log.h"
#include "gw_store.h"
#include "xs_buf.h"
#include "xs_iot_xsf.h"
#include "xs_parser.h"
#include "xs_stanza.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR                                                                    \
    "<stream:stream from='example.org' id='f' version='1.0' "                  \
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

#define STANZA_MAX 16384u
/* 2023-11-14T22:13:20Z: the clock of control messages (their delays). */
#define NOW_MS 1700000000000

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
    "          - {name: mode, table: holding, address: 11, writable: true,\n"
    "             enum: {0: off, 1: auto}}\n"
    "          - {name: serial, table: holding, address: 20, type: string,\n"
    "             length: 4, writable: true}\n"
    "          - {name: flag, table: holding, address: 30, type: bit,\n"
    "             bit: 3, writable: true}\n"
    "          - {name: big, table: holding, address: 40, type: uint64,\n"
    "             writable: true, verify: true}\n"
    "      - name: m2\n"
    "        id: 2\n"
    "        points:\n"
    "          - {name: setpoint, table: holding, address: 10, type: int16,\n"
    "             scale: 0.1, writable: true}\n"
    "  - name: m3\n"
    "    type: rtu\n"
    "    device: /dev/null\n"
    "    baud: 1200\n"
    "    units:\n"
    "      - name: s1\n"
    "        id: 1\n"
    "        points:\n"
    "          - {name: setpoint, table: holding, address: 10, type: int16,\n"
    "             scale: 0.1, writable: true}\n"
    "          - {name: c0, table: coil, address: 0, writable: true,\n"
    "             write_fc: 15}\n"
    "          - {name: wide, table: holding, address: 50, type: float64,\n"
    "             writable: true}\n";

static char *readers[] = {"viewer@example.org", "partner.example.net"};
static char *controllers[] = {"ops@example.org"};

struct fz {
    const char *requester; /* from of the iq being handled, or NULL */
    int iq_answers;        /* iq stanzas sent while handling it */
};

static void die(const char *what, const struct xs_buf *b)
{
    fprintf(stderr, "fuzz_iot: %s\n%.*s\n", what, b ? (int)b->len : 0,
            b ? b->data : "");
    abort();
}

struct rt {
    struct xs_stanza *got;
    int n;
};

static void rt_stanza(void *data, struct xs_stanza *s)
{
    struct rt *r = data;
    r->n++;
    if (r->got)
        xs_stanza_free(s);
    else
        r->got = s;
}

/* The send seam: what xs_conn_send would put on the wire, checked. */
static int on_send(void *ud, struct xs_stanza *st)
{
    struct fz *f = ud;
    struct xs_buf b;
    xs_buf_init(&b, STANZA_MAX);
    int rc = xs_stanza_serialize(st, XS_NS_CLIENT, &b);
    if (rc == GW_ELIMIT) {
        xs_buf_close(&b);
        xs_stanza_free(st);
        return GW_ELIMIT;
    }
    if (rc != GW_OK)
        die("an answer does not serialize", NULL);
    /* Well-formed: one stanza that parses back equal. */
    struct xs_buf w;
    xs_buf_init(&w, 1u << 22);
    if (xs_buf_append_str(&w, HDR) != 0 || xs_buf_append(&w, b.data, b.len))
        abort();
    struct xs_parser_opts o = {
        .max_stanza_bytes = 1u << 22, .max_depth = 64, .max_attrs = 64};
    struct xs_parser_cbs cbs = {.stanza = rt_stanza};
    struct rt r = {NULL, 0};
    struct xs_parser *q = xs_parser_new(&cbs, &r, &o);
    if (!q)
        abort();
    if (xs_parser_feed(q, w.data, w.len) != 0 || r.n != 1 ||
        !xs_stanza_equal(st, r.got))
        die("an answer is not well-formed", &b);
    const char *name = xs_stanza_name(st);
    if (strcmp(name, "iq") == 0) {
        const char *type = xs_stanza_attr(st, "type");
        const char *to = xs_stanza_attr(st, "to");
        if (!type || (strcmp(type, "result") && strcmp(type, "error")))
            die("an iq answer is neither result nor error", &b);
        /* An iq without from came from the account's server: the answer
         * has no to either. */
        if (!f->requester || strcmp(to ? to : "", f->requester) != 0)
            die("an iq answer to someone else", &b);
        f->iq_answers++;
    } else if (strcmp(name, "message") != 0) {
        die("neither iq nor message sent", &b);
    }
    xs_stanza_free(r.got);
    xs_parser_free(q);
    xs_buf_close(&w);
    xs_buf_close(&b);
    xs_stanza_free(st);
    return GW_OK;
}

struct ctx {
    struct fz fz;
    struct xs_iot_xsf *fe;
};

static bool iot_ns(const char *ns)
{
    return ns &&
           (strcmp(ns, XS_NS_IOT_SD) == 0 || strcmp(ns, XS_NS_IOT_CTL) == 0 ||
            strcmp(ns, XS_NS_IOT_CONC) == 0);
}

static void on_stanza(void *data, struct xs_stanza *s)
{
    struct ctx *c = data;
    const char *name = xs_stanza_name(s);
    if (strcmp(name, "iq") == 0) {
        const char *type = xs_stanza_attr(s, "type");
        const struct xs_stanza *ch = xs_stanza_first_child(s);
        if (type && (!strcmp(type, "get") || !strcmp(type, "set")) && ch &&
            !xs_stanza_next(ch) && iot_ns(xs_stanza_ns(ch))) {
            const char *from = xs_stanza_attr(s, "from");
            c->fz.requester = from ? from : "";
            c->fz.iq_answers = 0;
            xs_iot_xsf_iq(c->fe, s);
            if (c->fz.iq_answers != 1) {
                fprintf(stderr, "fuzz_iot: %d answers to one iq\n",
                        c->fz.iq_answers);
                abort();
            }
            c->fz.requester = NULL;
        }
    } else if (strcmp(name, "message") == 0) {
        xs_iot_xsf_message(c->fe, s, NOW_MS);
    } else if (strcmp(name, "presence") == 0) {
        xs_iot_xsf_presence(c->fe, s);
    }
    xs_stanza_free(s);
}

/* The map, loaded once per process. */
static struct cfg *the_map(void)
{
    static struct cfg *cfg;
    if (cfg)
        return cfg;
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    if (cfg_load_buffer("fuzz_iot.yaml", MAP, strlen(MAP), &cfg, &errs) !=
        GW_OK) {
        cfg_errors_print(&errs, stderr);
        abort();
    }
    cfg_errors_close(&errs);
    cfg->access.readers = readers;
    cfg->access.n_readers = 2;
    cfg->access.controllers = controllers;
    cfg->access.n_controllers = 1;
    return cfg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (!devnull && !(devnull = fopen("/dev/null", "we")))
        abort();
    struct gw_log log = {.level = GW_LOG_DEBUG, .out = devnull};
    struct cfg *cfg = the_map();
    struct gw_store store;
    struct gw_iot *iot = NULL;
    struct ctx c = {0};
    if (gw_store_init(&store, cfg) != GW_OK)
        abort();
    /* A few values, so readouts and forms have fields. */
    uint16_t raw[4] = {0};
    struct ad_value v = {.kind = AD_VALUE_DOUBLE, .v.d = 21.5};
    gw_store_set_value(&store, 0, 0, 2, raw, 1, &v, 0, NOW_MS);
    gw_store_set_error(&store, 0, 0, 5, GW_Q_EXCEPTION, GW_EMBEXC, 2, NOW_MS);
    struct gw_iot_opts io = {.history = 2, .control_max_writes = 8};
    struct xs_iot_xsf_opts fo = {.control_max_age_ms = 60000,
                                 .chunk_max = 2048,
                                 .stanza_max = STANZA_MAX,
                                 .server = "example.org"};
    if (gw_iot_new(cfg, &store, NULL, &log, &io, &iot) != GW_OK ||
        xs_iot_xsf_new(iot, on_send, &c.fz, &log, &fo, &c.fe) != GW_OK)
        abort();
    struct xs_parser_opts po = {
        .max_stanza_bytes = 65536, .max_depth = 16, .max_attrs = 32};
    struct xs_parser_cbs cbs = {.stanza = on_stanza};
    struct xs_parser *p = xs_parser_new(&cbs, &c, &po);
    if (!p)
        abort();
    if (xs_parser_feed(p, HDR, strlen(HDR)) != 0)
        abort();
    (void)xs_parser_feed(p, data, size);
    xs_parser_free(p);
    xs_iot_xsf_free(c.fe);
    gw_iot_free(iot);
    gw_store_close(&store);
    return 0;
}
