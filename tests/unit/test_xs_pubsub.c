/* test_xs_pubsub.c - the PubSub publisher (xmpp/xs_pubsub.c) without a
 * session: its iqs go to a capture (the xs_pubsub_iq_fn seam) and the test
 * answers them with parsed stanzas; batches come from a scripted source.
 *
 * Pure parts: node names, the configuration form and its diff, features,
 * the item payload (one <node>, the batch's points only, the readouts'
 * format).  The state machine: the login checks (disco, configuration
 * get / diff / configure, create, affiliations of a whitelist), the
 * window of publishes in flight, forbidden reported once and publishing
 * stopped until the next login, precondition-not-met answered by a
 * configure and one retry, offline and orphaned requests, the retry (with
 * backoff) of a failed service check or node setup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"
#include "gw_spool.h"
#include "gw_err.h"
#include "gw_iot.h"
#include "gw_store.h"
#include "xs_buf.h"
#include "xs_parser.h"
#include "xs_pubsub.h"

#define SERVICE "pubsub.example.org"
#define GW "gw@example.org"

static const char MAP[] = "links:\n"
                          "  - name: plant\n"
                          "    type: tcp\n"
                          "    host: 127.0.0.1\n"
                          "    units:\n"
                          "      - name: m1\n"
                          "        id: 1\n"
                          "        points:\n"
                          "          - {name: p, table: holding, address: 0,\n"
                          "             unit: kWh}\n"
                          "          - {name: q, table: holding, address: 1}\n"
                          "          - {name: r, table: holding, address: 2}\n"
                          "      - name: m2\n"
                          "        id: 2\n"
                          "        points:\n"
                          "          - {name: p, table: holding, address: 0}\n";

#define MAX_IQ 256

struct sent {
    char *xml;
    xs_iq_cb cb;
    void *ud;
    uint32_t timeout;
};

struct fx {
    struct cfg *cfg;
    struct gw_store store;
    struct gw_iot *iot;
    struct xs_pubsub *ps;
    struct gw_log log;
    char *logbuf;
    size_t loglen;
    struct sent iq[MAX_IQ];
    size_t n_iq;
    /* the scripted source: batches ready, and what was taken */
    struct {
        size_t unit;
        size_t points[4];
        size_t n;
    } ready[64];
    size_t n_ready, taken, snapshots;
    uint64_t seq;
    size_t cur_points[4];
    char *readers[3];
    int state_changes;
    int iq_rc; /* when not 0, fake_iq refuses with it */
    size_t requeued, requeued_unit, requeued_n; /* src_requeue calls */
    /* the owner's retry timer (fake_timer) */
    bool timer_armed;
    uint32_t timer_ms; /* the last arming */
    size_t timer_calls;
};

static void fake_timer(void *ud, uint32_t ms)
{
    struct fx *f = ud;
    f->timer_calls++;
    f->timer_armed = ms > 0;
    if (ms > 0)
        f->timer_ms = ms;
}

static int fake_iq(void *ud, struct xs_stanza *iq, uint32_t timeout_ms,
                   xs_iq_cb cb, void *cb_ud)
{
    struct fx *f = ud;
    if (f->iq_rc) {
        xs_stanza_free(iq);
        return f->iq_rc;
    }
    struct xs_buf b;
    xs_buf_init(&b, 1u << 20);
    assert_int_equal(xs_stanza_serialize(iq, XS_NS_CLIENT, &b), 0);
    xs_stanza_free(iq);
    assert_true(f->n_iq < MAX_IQ);
    f->iq[f->n_iq++] = (struct sent){
        .xml = strdup(b.data), .cb = cb, .ud = cb_ud, .timeout = timeout_ms};
    xs_buf_close(&b);
    return GW_OK;
}

static bool src_take(void *ud, struct gw_events_batch *out)
{
    struct fx *f = ud;
    if (f->taken >= f->n_ready)
        return false;
    size_t i = f->taken++;
    memcpy(f->cur_points, f->ready[i].points, sizeof(f->cur_points));
    *out = (struct gw_events_batch){
        .link = 0,
        .unit = f->ready[i].unit,
        .points = f->cur_points,
        .n_points = f->ready[i].n,
        .ts_ms = gw_now_ms(),
        .seq = ++f->seq,
    };
    return true;
}

static void src_requeue(void *ud, const struct gw_events_batch *b)
{
    struct fx *f = ud;
    f->requeued++;
    f->requeued_unit = b->unit;
    f->requeued_n = b->n_points;
}

static void src_snapshot(void *ud)
{
    struct fx *f = ud;
    f->snapshots++;
}

static size_t src_backlog(void *ud)
{
    struct fx *f = ud;
    return f->n_ready - f->taken;
}

static void on_state(void *ud)
{
    struct fx *f = ud;
    f->state_changes++;
}

static void add_batch(struct fx *f, size_t unit, size_t n, ...)
{
    va_list ap;
    va_start(ap, n);
    f->ready[f->n_ready].unit = unit;
    f->ready[f->n_ready].n = n;
    for (size_t i = 0; i < n; i++)
        f->ready[f->n_ready].points[i] = va_arg(ap, size_t);
    va_end(ap);
    f->n_ready++;
}

static void fill_store(struct fx *f)
{
    uint16_t raw[1] = {0};
    int64_t now = gw_now_ms();
    for (size_t u = 0; u < 2; u++)
        for (size_t p = 0; p < f->cfg->links[0].units[u].n_points; p++) {
            struct ad_value v = {.kind = AD_VALUE_DOUBLE,
                                 .v.d = 10.0 * (double)(u + 1) + (double)p};
            gw_store_set_value(&f->store, 0, u, p, raw, 1, &v, 0, now);
        }
}

static struct fx *fx_new(const char *service, enum cfg_access_model am)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    int rc = cfg_load_buffer("map.yaml", MAP, strlen(MAP), &f->cfg, &errs);
    cfg_errors_print(&errs, stderr);
    cfg_errors_close(&errs);
    assert_int_equal(rc, 0);
    /* The events section as the loader would give it. */
    struct cfg_events *ev = &f->cfg->events;
    ev->present = true;
    free(ev->service);
    free(ev->node_prefix);
    ev->service = service ? strdup(service) : NULL;
    ev->node_prefix = strdup("fg/");
    ev->access_model = am;
    ev->max_items = 1;
    ev->persist_items = false;
    ev->notification_type = CFG_NOTIFY_HEADLINE;
    ev->send_last = CFG_SEND_LAST_ON_SUB_AND_PRESENCE;
    ev->window = 2;
    ev->publish_timeout_ms = 5000;
    for (size_t u = 0; u < 2; u++)
        for (size_t p = 0; p < f->cfg->links[0].units[u].n_points; p++)
            f->cfg->links[0].units[u].points[p].events.enabled = true;
    f->readers[0] = "ops@example.org";
    f->readers[1] = "example.net"; /* a domain: never a member */
    f->readers[2] = "Viewer@Example.org";
    f->cfg->access.readers = f->readers;
    f->cfg->access.n_readers = 3;
    f->log.level = GW_LOG_DEBUG;
    f->log.out = open_memstream(&f->logbuf, &f->loglen);
    assert_non_null(f->log.out);
    assert_int_equal(gw_store_init(&f->store, f->cfg), 0);
    assert_int_equal(
        gw_iot_new(f->cfg, &f->store, NULL, &f->log, NULL, &f->iot), 0);
    fill_store(f);
    struct xs_pubsub_source src = {
        .take = src_take,
        .snapshot = src_snapshot,
        .backlog = src_backlog,
        .requeue = src_requeue,
        .ud = f,
    };
    assert_int_equal(xs_pubsub_new(f->cfg, f->iot, &src, &f->log, &f->ps), 0);
    xs_pubsub_set_iq_fn(f->ps, fake_iq, f);
    xs_pubsub_set_state_cb(f->ps, on_state, f);
    return f;
}

static void fx_free(struct fx *f)
{
    xs_pubsub_free(f->ps);
    /* Orphaned requests: their callbacks only free them. */
    for (size_t i = 0; i < f->n_iq; i++) {
        if (f->iq[i].cb)
            f->iq[i].cb(f->iq[i].ud, NULL, GW_ECANCELED);
        free(f->iq[i].xml);
    }
    gw_iot_free(f->iot);
    gw_store_close(&f->store);
    f->cfg->access.readers = NULL;
    f->cfg->access.n_readers = 0;
    cfg_free(f->cfg);
    fclose(f->log.out);
    free(f->logbuf);
    free(f);
}

/* ---- answering -------------------------------------------------------- */

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

/* Answers request i with xml (NULL: with err and no stanza). */
static void answer(struct fx *f, size_t i, const char *xml, int err)
{
    assert_true(i < f->n_iq);
    assert_non_null(f->iq[i].cb);
    xs_iq_cb cb = f->iq[i].cb;
    f->iq[i].cb = NULL;
    struct xs_stanza *st = xml ? parse(xml) : NULL;
    cb(f->iq[i].ud, st, xml ? GW_OK : err);
    xs_stanza_free(st);
}

static const char *iq_xml(struct fx *f, size_t i)
{
    assert_true(i < f->n_iq);
    return f->iq[i].xml;
}

static bool has(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

static size_t pending(struct fx *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_iq; i++)
        n += f->iq[i].cb != NULL;
    return n;
}

#define RESULT "<iq type='result' id='x' from='" SERVICE "'/>"
#define ERR(cond, extra)                                                       \
    "<iq type='error' id='x' from='" SERVICE "'><error type='cancel'><" cond   \
    " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" extra "</error></iq>"

static const char DISCO_PROSODY[] =
    "<iq type='result' id='x' from='" SERVICE "'>"
    "<query xmlns='http://jabber.org/protocol/disco#info'>"
    "<identity category='pubsub' type='service'/>"
    "<feature var='http://jabber.org/protocol/pubsub'/>"
    "<feature var='http://jabber.org/protocol/pubsub#publish-options'/>"
    "<feature var='http://jabber.org/protocol/pubsub#create-and-configure'/>"
    "<feature var='http://jabber.org/protocol/pubsub#config-node'/>"
    "<feature var='http://jabber.org/protocol/pubsub#persistent-items'/>"
    "<feature var='urn:xmpp:other#config-node'/>"
    "</query></iq>";

/* An owner configuration answer with the map's values, max_items as given. */
static char *config_answer(const char *node, const char *max_items,
                           const char *persist)
{
    char *s = NULL;
    int n = asprintf(
        &s,
        "<iq type='result' id='x' from='" SERVICE "'>"
        "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>"
        "<configure node='%s'><x xmlns='jabber:x:data' type='form'>"
        "<field var='FORM_TYPE' type='hidden'><value>"
        "http://jabber.org/protocol/pubsub#node_config</value></field>"
        "<field var='pubsub#title'><value>x</value></field>"
        "<field var='pubsub#max_items'><value>%s</value></field>"
        "<field var='pubsub#persist_items' type='boolean'><value>%s</value>"
        "</field>"
        "<field var='pubsub#access_model'><value>open</value></field>"
        "<field var='pubsub#notification_type'><value>headline</value>"
        "</field>"
        "<field var='pubsub#send_last_published_item'>"
        "<value>on_sub_and_presence</value></field>"
        "</x></configure></pubsub></iq>",
        node, max_items, persist);
    assert_true(n > 0);
    return s;
}

/* Login with Prosody's features; both nodes exist with the map's
 * configuration: publishing starts. */
static void login_ready(struct fx *f)
{
    size_t base = f->n_iq;
    xs_pubsub_online(f->ps, GW);
    assert_int_equal(f->n_iq, base + 1);
    assert_true(has(iq_xml(f, base), "to='" SERVICE "'"));
    assert_true(has(iq_xml(f, base), "disco#info"));
    answer(f, base, DISCO_PROSODY, 0);
    assert_int_equal(f->n_iq, base + 3); /* window 2: both nodes at once */
    assert_true(has(iq_xml(f, base + 1), "<configure node='fg/m1'/>"));
    assert_true(has(iq_xml(f, base + 2), "<configure node='fg/m2'/>"));
    char *a = config_answer("fg/m1", "1", "false");
    answer(f, base + 1, a, 0);
    free(a);
    a = config_answer("fg/m2", "1", "0");
    answer(f, base + 2, a, 0);
    free(a);
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_RUNNING);
    assert_int_equal(st.features, XS_PUBSUB_F_PUBLISH_OPTIONS |
                                      XS_PUBSUB_F_CREATE_AND_CONFIGURE |
                                      XS_PUBSUB_F_CONFIG_NODE |
                                      XS_PUBSUB_F_PERSISTENT_ITEMS);
}

/* ---- pure parts --------------------------------------------------------- */

static void test_names_and_form(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    char buf[16];
    assert_true(xs_pubsub_node_name(&f->cfg->events, "m1", buf, sizeof(buf)));
    assert_string_equal(buf, "fg/m1");
    assert_false(xs_pubsub_node_name(&f->cfg->events, "a-long-unit-name", buf,
                                     sizeof(buf)));
    assert_string_equal(cfg_access_model_name(CFG_AM_WHITELIST), "whitelist");
    assert_string_equal(cfg_send_last_name(CFG_SEND_LAST_ON_SUB), "on_sub");
    assert_string_equal(cfg_notification_type_name(CFG_NOTIFY_NORMAL),
                        "normal");

    struct xs_stanza *x = xs_pubsub_config_form(
        &f->cfg->events, XS_NS_PUBSUB_NODE_CONFIG, "fieldgate unit m1");
    assert_non_null(x);
    struct xs_buf b;
    xs_buf_init(&b, 1u << 16);
    assert_int_equal(xs_stanza_serialize(x, NULL, &b), 0);
    assert_string_equal(
        b.data,
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE' type='hidden'><value>"
        "http://jabber.org/protocol/pubsub#node_config</value></field>"
        "<field var='pubsub#access_model'><value>open</value></field>"
        "<field var='pubsub#max_items'><value>1</value></field>"
        "<field var='pubsub#persist_items'><value>0</value></field>"
        "<field var='pubsub#notification_type'><value>headline</value></field>"
        "<field var='pubsub#send_last_published_item'>"
        "<value>on_sub_and_presence</value></field>"
        "<field var='pubsub#title'><value>fieldgate unit m1</value></field>"
        "</x>");
    xs_buf_close(&b);
    xs_stanza_free(x);
    fx_free(f);
}

static void test_config_diff(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    /* Same values ("false" and "0" mean the same): nothing differs. */
    char *a = config_answer("fg/m1", "1", "false");
    struct xs_stanza *iq = parse(a);
    free(a);
    const struct xs_stanza *x = xs_stanza_child(
        xs_stanza_child(xs_stanza_child(iq, "pubsub", NULL), "configure", NULL),
        "x", NULL);
    assert_non_null(x);
    struct xs_stanza *submit = (struct xs_stanza *)1;
    assert_int_equal(xs_pubsub_config_diff(&f->cfg->events, x, &submit), 0);
    assert_null(submit);
    xs_stanza_free(iq);

    /* Two differ: the submit carries just those. */
    a = config_answer("fg/m1", "20", "1");
    iq = parse(a);
    free(a);
    x = xs_stanza_child(
        xs_stanza_child(xs_stanza_child(iq, "pubsub", NULL), "configure", NULL),
        "x", NULL);
    assert_int_equal(xs_pubsub_config_diff(&f->cfg->events, x, &submit), 2);
    assert_non_null(submit);
    struct xs_buf b;
    xs_buf_init(&b, 1u << 16);
    assert_int_equal(xs_stanza_serialize(submit, NULL, &b), 0);
    assert_string_equal(
        b.data,
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE' type='hidden'><value>"
        "http://jabber.org/protocol/pubsub#node_config</value></field>"
        "<field var='pubsub#max_items'><value>1</value></field>"
        "<field var='pubsub#persist_items'><value>0</value></field></x>");
    xs_buf_close(&b);
    xs_stanza_free(submit);
    xs_stanza_free(iq);

    /* No form at all: every field differs. */
    assert_int_equal(xs_pubsub_config_diff(&f->cfg->events, NULL, NULL), 5);
    fx_free(f);
}

static void test_features(void **state)
{
    (void)state;
    struct xs_stanza *iq = parse(DISCO_PROSODY);
    assert_int_equal(
        xs_pubsub_parse_features(iq),
        XS_PUBSUB_F_PUBLISH_OPTIONS | XS_PUBSUB_F_CREATE_AND_CONFIGURE |
            XS_PUBSUB_F_CONFIG_NODE | XS_PUBSUB_F_PERSISTENT_ITEMS);
    xs_stanza_free(iq);
    iq = parse(RESULT);
    assert_int_equal(xs_pubsub_parse_features(iq), 0);
    xs_stanza_free(iq);
}

static void test_item_payload(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    size_t pts[] = {0, 2};
    struct gw_events_batch b = {
        .link = 0, .unit = 0, .points = pts, .n_points = 2, .seq = 7};
    size_t n = 0;
    struct xs_stanza *item =
        xs_pubsub_item(f->cfg, f->iot, &b, gw_now_ms(), &n);
    assert_non_null(item);
    assert_int_equal(n, 2);
    struct xs_buf buf;
    xs_buf_init(&buf, 1u << 16);
    assert_int_equal(xs_stanza_serialize(item, XS_NS_PUBSUB, &buf), 0);
    const char *s = buf.data;
    assert_true(has(s, "<item id='m1-7'><fields xmlns='urn:xmpp:iot:sensordata'"
                       " seqnr='7' done='true'><node nodeId='m1' "
                       "sourceId='MeteringTopology'><timestamp value='"));
    assert_true(has(s, "<numeric name='p' momentary='true' "
                       "automaticReadout='true' value='10' unit='kWh'/>"));
    assert_true(has(s, "name='r'"));
    assert_false(has(s, "name='q'"));    /* not in the batch */
    assert_false(has(s, "'State'"));     /* no status fields */
    assert_false(has(s, "nodeId='m2'")); /* one node */
    xs_buf_close(&buf);
    xs_stanza_free(item);

    /* Many points: filtered by index, not by name. */
    size_t all[] = {0, 1, 2};
    b.points = all;
    b.n_points = 3;
    item = xs_pubsub_item(f->cfg, f->iot, &b, gw_now_ms(), &n);
    assert_int_equal(n, 3);
    xs_stanza_free(item);

    /* A point never read: nothing to publish. */
    size_t one[] = {0};
    gw_store_close(&f->store);
    assert_int_equal(gw_store_init(&f->store, f->cfg), 0);
    b.points = one;
    b.n_points = 1;
    item = xs_pubsub_item(f->cfg, f->iot, &b, gw_now_ms(), &n);
    assert_non_null(item);
    assert_int_equal(n, 0);
    xs_stanza_free(item);
    fx_free(f);
}

/* ---- the state machine -------------------------------------------------- */

static void test_login_create_and_reconfigure(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    xs_pubsub_online(f->ps, GW);
    answer(f, 0, DISCO_PROSODY, 0);
    assert_int_equal(f->n_iq, 3);
    /* m1 is missing: created with its configuration. */
    answer(f, 1, ERR("item-not-found", ""), 0);
    assert_int_equal(f->n_iq, 4);
    const char *c = iq_xml(f, 3);
    assert_true(has(c, "<create node='fg/m1'/><configure><x xmlns='jabber:x:"
                       "data' type='submit'>"));
    assert_true(has(c, "pubsub#max_items'><value>1<"));
    assert_true(has(c, "pubsub#title'><value>fieldgate unit m1<"));
    /* m2 exists with max_items 20: only the differing field is submitted. */
    char *a = config_answer("fg/m2", "20", "0");
    answer(f, 2, a, 0);
    free(a);
    assert_int_equal(f->n_iq, 5);
    c = iq_xml(f, 4);
    assert_true(has(c, "type='set'"));
    assert_true(has(c, "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'"
                       "><configure node='fg/m2'>"));
    assert_true(has(c, "pubsub#max_items"));
    assert_false(has(c, "pubsub#access_model"));
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_SETUP);
    answer(f, 3, RESULT, 0);
    answer(f, 4, RESULT, 0);
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_RUNNING);
    assert_int_equal(f->snapshots, 1);
    fx_free(f);
}

static void test_window_and_publish(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    /* Batches wait while offline: nothing is sent. */
    add_batch(f, 0, 1, (size_t)0);
    add_batch(f, 1, 1, (size_t)0);
    add_batch(f, 0, 2, (size_t)1, (size_t)2);
    xs_pubsub_ready(f->ps);
    assert_int_equal(f->n_iq, 0);
    assert_int_equal(f->taken, 0);
    login_ready(f);
    size_t base = 3;
    /* Window 2: two publishes in flight, the third batch waits. */
    assert_int_equal(f->n_iq, base + 2);
    assert_int_equal(f->taken, 2);
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.in_flight, 2);
    assert_int_equal(st.backlog, 1);
    const char *p = iq_xml(f, base);
    assert_true(has(p, "<iq type='set' to='" SERVICE "'"));
    assert_true(has(p, "<publish node='fg/m1'><item id='m1-1'><fields xmlns="
                       "'urn:xmpp:iot:sensordata' seqnr='1' done='true'>"));
    assert_true(has(p, "<publish-options><x xmlns='jabber:x:data' type='submit'"
                       "><field var='FORM_TYPE' type='hidden'><value>http://"
                       "jabber.org/protocol/pubsub#publish-options</value>"));
    assert_int_equal(f->iq[base].timeout, 5000);
    xs_pubsub_ready(f->ps); /* full: still nothing more */
    assert_int_equal(f->n_iq, base + 2);
    answer(f, base, RESULT, 0);
    assert_int_equal(f->n_iq, base + 3); /* the slot went to the next batch */
    assert_true(has(iq_xml(f, base + 2), "item id='m1-3'"));
    /* m1 accepted a publish with its preconditions: later ones go without
     * them (they cost the server ~40 %); m2 has not yet, so it has them. */
    assert_false(has(iq_xml(f, base + 2), "publish-options"));
    assert_true(has(iq_xml(f, base + 1), "<publish-options>"));
    answer(f, base + 1, ERR("not-acceptable", ""), 0);
    answer(f, base + 2, NULL, GW_ETIMEOUT);
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.published, 1);
    assert_int_equal(st.errors, 2);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(xs_pubsub_unit_published(f->ps, 0, 0), 1);
    assert_int_equal(xs_pubsub_unit_published(f->ps, 0, 1), 0);
    fx_free(f);
}

static void test_forbidden_once(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    add_batch(f, 0, 1, (size_t)0);
    add_batch(f, 1, 1, (size_t)0);
    add_batch(f, 0, 1, (size_t)1);
    login_ready(f);
    answer(f, 3, ERR("forbidden", ""), 0);
    answer(f, 4, ERR("forbidden", ""), 0);
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_WARNING);
    assert_string_equal(st.text, "the gateway account needs publisher rights "
                                 "on " SERVICE ", e.g. list it in Prosody's "
                                 "admins or use PEP");
    assert_int_equal(f->n_iq, 5); /* stopped: the third batch is not taken */
    assert_int_equal(f->taken, 2);
    fflush(f->log.out);
    const char *l = f->logbuf;
    const char *first = strstr(l, "refused (forbidden)");
    assert_non_null(first);
    assert_null(strstr(first + 1, "refused (forbidden)")); /* once */
    /* The next login tries again; refused at creation, still not logged
     * at error level twice. */
    xs_pubsub_offline(f->ps);
    xs_pubsub_online(f->ps, GW);
    answer(f, 5, DISCO_PROSODY, 0);
    answer(f, 6, ERR("forbidden", ""), 0); /* owner get: not an owner */
    assert_true(has(iq_xml(f, 8), "<create node='fg/m1'/>"));
    answer(f, 8, ERR("forbidden", ""), 0);
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_WARNING);
    answer(f, 7, ERR("forbidden", ""), 0); /* ignored: stopped */
    fflush(f->log.out);
    size_t at_error = 0, all = 0;
    for (const char *s = f->logbuf; (s = strstr(s, "refused (forbidden)"));
         s++) {
        const char *bol = s;
        while (bol > f->logbuf && bol[-1] != '\n')
            bol--;
        all++;
        at_error += strncmp(strstr(bol, " ") + 1, "error", 5) == 0;
    }
    assert_int_equal(all, 2);
    assert_int_equal(at_error, 1);
    fx_free(f);
}

static void test_precondition_configure_retry_once(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    add_batch(f, 0, 1, (size_t)0);
    login_ready(f);
    assert_int_equal(f->n_iq, 4);
    const char *pre = ERR("conflict", "<precondition-not-met xmlns='http://"
                                      "jabber.org/protocol/pubsub#errors'/>");
    answer(f, 3, pre, 0);
    /* An owner configure with the whole configuration... */
    assert_int_equal(f->n_iq, 5);
    assert_true(has(iq_xml(f, 4), "pubsub#owner'><configure node='fg/m1'><x"));
    assert_true(has(iq_xml(f, 4), "pubsub#send_last_published_item"));
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.in_flight, 1); /* the publish keeps its slot */
    answer(f, 4, RESULT, 0);
    /* ...then the same item again, once. */
    assert_int_equal(f->n_iq, 6);
    assert_true(has(iq_xml(f, 5), "item id='m1-1'"));
    assert_true(has(iq_xml(f, 5), "<publish-options>"));
    answer(f, 5, pre, 0);
    assert_int_equal(f->n_iq, 6); /* no second retry */
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.in_flight, 0);
    /* The node is then published to without publish-options. */
    add_batch(f, 0, 1, (size_t)1);
    xs_pubsub_ready(f->ps);
    assert_int_equal(f->n_iq, 7);
    assert_false(has(iq_xml(f, 6), "publish-options"));
    answer(f, 6, RESULT, 0);
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.published, 1);
    fx_free(f);
}

/* A node the gateway does not own (an admin created it; the gateway is a
 * publisher): its configuration cannot be read (forbidden) and create
 * answers conflict: published to without publish-options.  A forbidden
 * configure after a precondition-not-met is that node's matter too:
 * published again without options, the publisher keeps running. */
static void test_not_owner_node(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    add_batch(f, 0, 1, (size_t)0);
    add_batch(f, 1, 1, (size_t)0);
    xs_pubsub_online(f->ps, GW);
    answer(f, 0, DISCO_PROSODY, 0);
    assert_true(has(iq_xml(f, 1), "<configure node='fg/m1'/>"));
    answer(f, 1, ERR("forbidden", ""), 0);
    assert_true(has(iq_xml(f, 3), "<create node='fg/m1'/>"));
    answer(f, 3, ERR("conflict", ""), 0);
    char *a = config_answer("fg/m2", "1", "0");
    answer(f, 2, a, 0);
    free(a);
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_RUNNING);
    assert_int_equal(f->n_iq, 6);
    assert_true(has(iq_xml(f, 4), "item id='m1-1'"));
    assert_false(has(iq_xml(f, 4), "publish-options"));
    assert_true(has(iq_xml(f, 5), "item id='m2-2'"));
    assert_true(has(iq_xml(f, 5), "<publish-options>"));
    answer(f, 4, RESULT, 0);
    const char *pre = ERR("conflict", "<precondition-not-met xmlns='http://"
                                      "jabber.org/protocol/pubsub#errors'/>");
    answer(f, 5, pre, 0);
    assert_true(has(iq_xml(f, 6), "<configure node='fg/m2'><x"));
    answer(f, 6, ERR("forbidden", ""), 0);
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_RUNNING);
    assert_string_equal(st.text, "");
    assert_int_equal(f->n_iq, 8);
    assert_true(has(iq_xml(f, 7), "item id='m2-2'"));
    assert_false(has(iq_xml(f, 7), "publish-options"));
    answer(f, 7, RESULT, 0);
    /* Both units go on publishing. */
    add_batch(f, 0, 1, (size_t)1);
    add_batch(f, 1, 1, (size_t)0);
    xs_pubsub_ready(f->ps);
    assert_int_equal(f->n_iq, 10);
    assert_false(has(iq_xml(f, 8), "publish-options"));
    assert_false(has(iq_xml(f, 9), "publish-options"));
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.published, 2);
    assert_int_equal(st.state, XS_PUBSUB_RUNNING);
    fflush(f->log.out);
    assert_null(strstr(f->logbuf, "publisher rights"));
    fx_free(f);
}

/* Lines of the log holding needle, and how many of them at warn. */
static size_t log_count(struct fx *f, const char *needle, size_t *warn)
{
    fflush(f->log.out);
    size_t all = 0;
    *warn = 0;
    for (const char *s = f->logbuf; (s = strstr(s, needle)); s++) {
        const char *bol = s;
        while (bol > f->logbuf && bol[-1] != '\n')
            bol--;
        all++;
        *warn += strncmp(strstr(bol, " ") + 1, "warn", 4) == 0;
    }
    return all;
}

/* An item larger than the stanza limit fails at every cycle: logged once
 * per node and login, counted always. */
static void test_too_big_logged_once(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    login_ready(f);
    f->iq_rc = GW_ELIMIT;
    for (int i = 0; i < 3; i++)
        add_batch(f, 0, 1, (size_t)0);
    xs_pubsub_ready(f->ps);
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.errors, 3);
    assert_int_equal(st.in_flight, 0);
    size_t warn, all = log_count(f, "cannot publish to node fg/m1", &warn);
    assert_int_equal(all, 3);
    assert_int_equal(warn, 1);
    /* The next login logs it once again. */
    f->iq_rc = 0;
    xs_pubsub_offline(f->ps);
    login_ready(f);
    f->iq_rc = GW_ELIMIT;
    add_batch(f, 0, 1, (size_t)0);
    add_batch(f, 0, 1, (size_t)0);
    xs_pubsub_ready(f->ps);
    all = log_count(f, "cannot publish to node fg/m1", &warn);
    assert_int_equal(all, 5);
    assert_int_equal(warn, 2);
    f->iq_rc = 0;
    fx_free(f);
}

/* Latest values: a publish that fails (error, timeout, send failure)
 * hands its points back to the source (their newest value goes out
 * again); forbidden and a lost session do not. */
static void test_failed_publish_requeued(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    add_batch(f, 0, 2, (size_t)0, (size_t)2);
    add_batch(f, 1, 1, (size_t)0);
    login_ready(f);
    answer(f, 3, ERR("not-acceptable", ""), 0);
    assert_int_equal(f->requeued, 1);
    assert_int_equal(f->requeued_unit, 0);
    assert_int_equal(f->requeued_n, 2);
    answer(f, 4, NULL, GW_ETIMEOUT);
    assert_int_equal(f->requeued, 2);
    assert_int_equal(f->requeued_unit, 1);
    /* A send failure. */
    f->iq_rc = GW_EIO;
    add_batch(f, 0, 1, (size_t)1);
    xs_pubsub_ready(f->ps);
    assert_int_equal(f->requeued, 3);
    assert_int_equal(f->requeued_n, 1);
    f->iq_rc = 0;
    /* A lost session: the snapshot of the next login covers it. */
    add_batch(f, 0, 1, (size_t)1);
    xs_pubsub_ready(f->ps);
    size_t last = f->n_iq - 1;
    answer(f, last, NULL, GW_EDISCONNECTED);
    assert_int_equal(f->requeued, 3);
    /* Forbidden: stopped, nothing handed back. */
    xs_pubsub_offline(f->ps);
    login_ready(f);
    add_batch(f, 1, 1, (size_t)0);
    xs_pubsub_ready(f->ps);
    answer(f, f->n_iq - 1, ERR("forbidden", ""), 0);
    assert_int_equal(f->requeued, 3);
    fx_free(f);
}

static void test_item_not_found_recreates(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    add_batch(f, 1, 1, (size_t)0);
    login_ready(f);
    answer(f, 3, ERR("item-not-found", ""), 0);
    assert_true(has(iq_xml(f, 4), "<create node='fg/m2'/><configure>"));
    answer(f, 4, RESULT, 0);
    assert_true(has(iq_xml(f, 5), "item id='m2-1'"));
    answer(f, 5, RESULT, 0);
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.published, 1);
    assert_int_equal(st.errors, 0);
    fx_free(f);
}

static void test_whitelist_members(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_WHITELIST);
    xs_pubsub_online(f->ps, GW);
    answer(f, 0, DISCO_PROSODY, 0);
    /* m1: configuration differs in access_model (open vs whitelist). */
    char *a = config_answer("fg/m1", "1", "0");
    answer(f, 1, a, 0);
    free(a);
    assert_true(has(iq_xml(f, 3), "pubsub#access_model'><value>whitelist<"));
    answer(f, 3, RESULT, 0);
    assert_true(has(iq_xml(f, 4), "<affiliations node='fg/m1'/>"));
    answer(f, 4,
           "<iq type='result' id='x' from='" SERVICE "'><pubsub xmlns='http://"
           "jabber.org/protocol/pubsub#owner'><affiliations node='fg/m1'>"
           "<affiliation jid='gw@example.org' affiliation='owner'/>"
           "<affiliation jid='old@example.org' affiliation='member'/>"
           "<affiliation jid='viewer@example.org' affiliation='member'/>"
           "</affiliations></pubsub></iq>",
           0);
    const char *s = iq_xml(f, 5);
    assert_true(has(s, "type='set'"));
    assert_true(has(s, "<affiliations node='fg/m1'><affiliation jid='old@"
                       "example.org' affiliation='none'/><affiliation jid='ops@"
                       "example.org' affiliation='member'/></affiliations>"));
    assert_false(has(s, "example.net"));
    assert_false(has(s, "gw@example.org"));
    answer(f, 5, RESULT, 0);
    /* m2: the configure fails: not enforced, members still synced. */
    a = config_answer("fg/m2", "1", "0");
    answer(f, 2, a, 0);
    free(a);
    answer(f, 6, ERR("not-acceptable", ""), 0);
    assert_true(has(iq_xml(f, 7), "<affiliations node='fg/m2'/>"));
    answer(f, 7, ERR("forbidden", ""), 0);
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_RUNNING);
    fflush(f->log.out);
    assert_true(has(f->logbuf, "example.net is a domain"));
    fx_free(f);
}

static void test_pep_offline_orphans(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL, CFG_AM_PRESENCE);
    add_batch(f, 0, 1, (size_t)0);
    xs_pubsub_online(f->ps, GW);
    /* PEP: no 'to' (Prosody answers bare-JID requests without 'from'). */
    assert_false(has(iq_xml(f, 0), " to="));
    answer(f, 0, NULL, GW_EDISCONNECTED); /* the session dropped */
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_OFFLINE);
    xs_pubsub_offline(f->ps);
    /* Next login: the answers of the old one are ignored. */
    xs_pubsub_online(f->ps, GW);
    answer(f, 1,
           "<iq type='result' id='x'><query xmlns='http://jabber.org/protocol/"
           "disco#info'><feature var='http://jabber.org/protocol/pubsub#"
           "config-node'/><feature var='http://jabber.org/protocol/pubsub#"
           "create-and-configure'/></query></iq>",
           0);
    size_t n = f->n_iq;
    assert_int_equal(n, 4);
    xs_pubsub_offline(f->ps);
    answer(f, 2, RESULT, 0); /* old login: ignored */
    assert_int_equal(f->n_iq, n);
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_OFFLINE);
    assert_int_equal(pending(f), 1);
    /* Freed with a request pending: fx_free answers it after the free. */
    fx_free(f);
}

/* The gw_iot hook as gw_xmpp sets it. */
static bool stats_fn(void *ud, size_t link, size_t unit,
                     struct gw_iot_events_stats *out)
{
    struct fx *f = ud;
    if (link != GW_IOT_NONE) {
        out->published = xs_pubsub_unit_published(f->ps, link, unit);
        return true;
    }
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    out->published = st.published;
    out->errors = st.errors;
    out->in_flight = st.in_flight;
    out->backlog = st.backlog;
    out->warning = st.state == XS_PUBSUB_WARNING;
    snprintf(out->text, sizeof(out->text), "%s", st.text);
    return true;
}

struct collect {
    char buf[4096];
    size_t len;
};

static int collect_field(void *ud, const struct gw_iot_field *fl)
{
    struct collect *c = ud;
    int n = snprintf(c->buf + c->len, sizeof(c->buf) - c->len, "%s=%s;",
                     fl->name, fl->value);
    if (n > 0 && (size_t)n < sizeof(c->buf) - c->len)
        c->len += (size_t)n;
    return 0;
}

static void test_gateway_status(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    gw_iot_set_events_stats_fn(f->iot, stats_fn, f);
    add_batch(f, 0, 1, (size_t)0);
    add_batch(f, 1, 1, (size_t)0);
    add_batch(f, 0, 1, (size_t)1);
    login_ready(f);
    answer(f, 3, RESULT, 0);
    struct gw_iot_filter flt = {.types = GW_IOT_T_STATUS};
    struct collect c = {0};
    gw_iot_node_fields(f->iot, 0, &flt, gw_now_ms(), collect_field, &c);
    assert_true(has(c.buf, "Events published=1;Event errors=0;"
                           "Events in flight=2;Event backlog=0;Events=OK;"));
    struct gw_iot_node_info info;
    gw_iot_node_info(f->iot, 0, &info);
    assert_int_equal(info.state, GW_IOT_STATE_NONE);
    struct gw_iot_param prm[GW_IOT_MAX_PARAMS];
    size_t n = gw_iot_node_params(f->iot, 2, prm, GW_IOT_MAX_PARAMS);
    assert_string_equal(prm[n - 1].id, "eventsPublished");
    assert_string_equal(prm[n - 1].value, "1");
    memset(&c, 0, sizeof(c));
    gw_iot_node_fields(f->iot, 2, &flt, gw_now_ms(), collect_field, &c);
    assert_true(has(c.buf, "Events published=1;"));

    answer(f, 4, ERR("forbidden", ""), 0);
    assert_true(f->state_changes >= 3); /* setup, running, warning */
    gw_iot_node_info(f->iot, 0, &info);
    assert_int_equal(info.state, GW_IOT_STATE_WARNING);
    struct gw_iot_message m;
    assert_true(gw_iot_node_message(f->iot, 0, &m));
    assert_false(m.error);
    assert_true(has(m.text, "events: the gateway account needs publisher"));
    n = gw_iot_node_params(f->iot, 0, prm, GW_IOT_MAX_PARAMS);
    assert_string_equal(prm[n - 1].id, "events");
    assert_true(has(prm[n - 1].value, "publisher rights on " SERVICE));
    memset(&c, 0, sizeof(c));
    gw_iot_node_fields(f->iot, 0, &flt, gw_now_ms(), collect_field, &c);
    assert_true(has(c.buf, "Event errors=1;"));
    assert_true(has(c.buf, "Events=the gateway account needs publisher"));
    gw_iot_set_events_stats_fn(f->iot, NULL, NULL);
    fx_free(f);
}

/* ---- delivery every: a fake spool --------------------------------------- */

#define FS_MAX 32

struct fake_spool {
    struct {
        enum gw_spool_kind kind;
        char unit[GW_SPOOL_UNIT_MAX + 1];
        uint64_t seq;
        int64_t ts_ms;
        char *payload;
        size_t len;
        int64_t gap_from, gap_to;
        uint64_t gap_count;
        bool acked;
    } r[FS_MAX];
    size_t n, handed;
    uint64_t last_seq[2];
    int fail; /* appends fail with this (GW_EIO) */
    size_t acks, rewinds;
};

static uint64_t *fs_seq(struct fake_spool *fs, const char *unit)
{
    return &fs->last_seq[strcmp(unit, "m2") == 0];
}

static int fs_append(void *ud, const char *unit, int64_t ts_ms,
                     const void *payload, size_t len, uint64_t *seq_out)
{
    struct fake_spool *fs = ud;
    if (fs->fail)
        return fs->fail;
    assert_true(fs->n < FS_MAX);
    size_t i = fs->n++;
    fs->r[i].kind = GW_SPOOL_SAMPLE;
    snprintf(fs->r[i].unit, sizeof(fs->r[i].unit), "%s", unit);
    fs->r[i].seq = ++*fs_seq(fs, unit);
    fs->r[i].ts_ms = ts_ms;
    fs->r[i].payload = malloc(len + 1); /* NUL-terminated for the test */
    assert_non_null(fs->r[i].payload);
    memcpy(fs->r[i].payload, payload, len);
    fs->r[i].payload[len] = '\0';
    fs->r[i].len = len;
    if (seq_out)
        *seq_out = fs->r[i].seq;
    return GW_OK;
}

static void fs_gap(struct fake_spool *fs, const char *unit, uint64_t count)
{
    size_t i = fs->n++;
    fs->r[i].kind = GW_SPOOL_GAP;
    snprintf(fs->r[i].unit, sizeof(fs->r[i].unit), "%s", unit);
    fs->r[i].seq = ++*fs_seq(fs, unit);
    fs->r[i].gap_from = 1796323351250; /* 2026-12-03T18:42:31.250Z */
    fs->r[i].gap_to = fs->r[i].gap_from + 60000;
    fs->r[i].ts_ms = fs->r[i].gap_to;
    fs->r[i].gap_count = count;
}

static bool fs_next(void *ud, struct gw_spool_rec *out)
{
    struct fake_spool *fs = ud;
    while (fs->handed < fs->n && fs->r[fs->handed].acked)
        fs->handed++;
    if (fs->handed >= fs->n)
        return false;
    size_t i = fs->handed++;
    *out = (struct gw_spool_rec){
        .kind = fs->r[i].kind,
        .unit = fs->r[i].unit,
        .seq = fs->r[i].seq,
        .ts_ms = fs->r[i].ts_ms,
        .payload = (const uint8_t *)fs->r[i].payload,
        .len = fs->r[i].len,
        .gap_from_ms = fs->r[i].gap_from,
        .gap_to_ms = fs->r[i].gap_to,
        .gap_count = fs->r[i].gap_count,
        .pos = i,
    };
    return true;
}

static void fs_ack(void *ud, uint64_t pos)
{
    struct fake_spool *fs = ud;
    assert_true(pos < fs->n);
    assert_false(fs->r[pos].acked);
    fs->r[pos].acked = true;
    fs->acks++;
}

static void fs_rewind(void *ud)
{
    struct fake_spool *fs = ud;
    fs->handed = 0;
    fs->rewinds++;
}

static void fs_stats(void *ud, struct gw_spool_stats *out)
{
    struct fake_spool *fs = ud;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < fs->n; i++) {
        if (fs->r[i].acked)
            continue;
        out->records++;
        if (!out->oldest_ms)
            out->oldest_ms = fs->r[i].ts_ms;
    }
    out->bytes = 4096;
    out->dropped = 7;
    out->error = fs->fail;
    if (fs->fail)
        snprintf(out->error_text, sizeof(out->error_text),
                 "write to /x/spool failed: No space left on device");
}

static void fs_free(struct fake_spool *fs)
{
    for (size_t i = 0; i < fs->n; i++)
        free(fs->r[i].payload);
}

static struct fx *fx_every(struct fake_spool *fs)
{
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    f->cfg->events.delivery = CFG_DELIVERY_EVERY;
    struct xs_pubsub_spool sp = {.append = fs_append,
                                 .next = fs_next,
                                 .ack = fs_ack,
                                 .rewind = fs_rewind,
                                 .stats = fs_stats,
                                 .ud = fs};
    xs_pubsub_set_spool(f->ps, &sp);
    return f;
}

/* Every batch is spooled when ready (offline too), published from the
 * spool in order with a <delay> when replayed, acked on results only,
 * handed out again after a disconnect; no snapshot; live records after the
 * backlog have no <delay>. */
static void test_every_spool_replay(void **state)
{
    (void)state;
    struct fake_spool fs = {0};
    struct fx *f = fx_every(&fs);
    add_batch(f, 0, 1, (size_t)0);
    add_batch(f, 1, 1, (size_t)0);
    add_batch(f, 0, 2, (size_t)1, (size_t)2);
    xs_pubsub_ready(f->ps);
    assert_int_equal(f->taken, 3); /* at once, offline: no coalescing */
    assert_int_equal(fs.n, 3);
    assert_int_equal(f->n_iq, 0);
    assert_true(has(fs.r[0].payload,
                    "<fields xmlns='urn:xmpp:iot:sensordata'"
                    " seqnr='0' done='true'><node nodeId='m1'"));
    assert_false(has(fs.r[0].payload, "name='q'"));
    assert_true(has(fs.r[2].payload, "name='q'"));
    login_ready(f);
    assert_int_equal(f->snapshots, 0);
    size_t base = 3;
    /* Replaying: half the window (2 -> 1) in flight. */
    assert_int_equal(f->n_iq, base + 1);
    const char *p = iq_xml(f, base);
    assert_true(has(p, "<publish node='fg/m1'><item id='m1-1'><fields xmlns="
                       "'urn:xmpp:iot:sensordata' seqnr='1' done='true'>"));
    assert_true(has(p, "<delay xmlns='urn:xmpp:delay' stamp='"));
    assert_true(has(p, "from='" GW "'/></fields></item></publish>"));
    answer(f, base, RESULT, 0);
    assert_int_equal(fs.acks, 1);
    assert_int_equal(f->n_iq, base + 2);
    assert_true(has(iq_xml(f, base + 1), "<item id='m2-1'>"));
    /* The session drops before m2-1 is answered: handed out again. */
    xs_pubsub_offline(f->ps);
    answer(f, base + 1, NULL, GW_EDISCONNECTED);
    assert_int_equal(fs.acks, 1);
    assert_true(fs.rewinds >= 1);
    base = f->n_iq;
    login_ready(f);
    base += 3;
    assert_true(has(iq_xml(f, base), "<item id='m2-1'>"));
    answer(f, base, RESULT, 0);
    assert_true(has(iq_xml(f, base + 1), "<item id='m1-2'>"));
    assert_true(has(iq_xml(f, base + 1), "name='q'"));
    answer(f, base + 1, RESULT, 0);
    assert_int_equal(fs.acks, 3);
    /* Live: published at once, no <delay>, the whole window. */
    add_batch(f, 1, 1, (size_t)0);
    add_batch(f, 0, 1, (size_t)0);
    xs_pubsub_ready(f->ps);
    assert_int_equal(fs.n, 5);
    assert_int_equal(f->n_iq, base + 4);
    assert_true(has(iq_xml(f, base + 2), "<item id='m2-2'>"));
    assert_false(has(iq_xml(f, base + 2), "urn:xmpp:delay"));
    assert_true(has(iq_xml(f, base + 3), "<item id='m1-3'>"));
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_true(st.every);
    assert_false(st.fallback);
    assert_int_equal(st.spooled, 5);
    assert_int_equal(st.replayed, 3);
    assert_int_equal(st.backlog, 2); /* the two live ones, unacked */
    assert_int_equal(st.spool_bytes, 4096);
    assert_int_equal(st.spool_dropped, 7);
    answer(f, base + 2, RESULT, 0);
    answer(f, base + 3, RESULT, 0);
    assert_int_equal(fs.acks, 5);
    fx_free(f);
    fs_free(&fs);
}

/* Gap records become <gap/> items; a record whose publish keeps failing
 * is sent XS_PUBSUB_SPOOL_TRIES times, then given up (acked, lost); the
 * spool failing makes the publisher fall back to latest values (a warning,
 * ids of their own). */
static void test_every_gap_retry_fallback(void **state)
{
    (void)state;
    struct fake_spool fs = {0};
    struct fx *f = fx_every(&fs);
    fs_gap(&fs, "m1", 5);
    add_batch(f, 0, 1, (size_t)0);
    xs_pubsub_ready(f->ps);
    login_ready(f);
    size_t base = 3;
    assert_true(has(iq_xml(f, base),
                    "<item id='m1-1'><gap xmlns='urn:fieldgate:spool:0' "
                    "node='m1' from='2026-12-03T18:42:31.250Z' "
                    "to='2026-12-03T18:43:31.250Z' samples='5'/></item>"));
    answer(f, base, RESULT, 0);
    /* m1-2 fails three times, then is given up. */
    for (size_t k = 0; k < XS_PUBSUB_SPOOL_TRIES; k++) {
        assert_int_equal(f->n_iq, base + 2 + k);
        assert_true(has(iq_xml(f, base + 1 + k), "<item id='m1-2'>"));
        answer(f, base + 1 + k, ERR("not-acceptable", ""), 0);
    }
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.lost, 1);
    assert_int_equal(st.gaps, 1);
    assert_int_equal(fs.acks, 2);
    assert_true(has(f->logbuf ? f->logbuf : "", "given up"));
    /* The disk fills: latest values, a warning, polling unaffected. */
    fs.fail = GW_EIO;
    int changes = f->state_changes;
    add_batch(f, 0, 1, (size_t)1);
    xs_pubsub_ready(f->ps);
    xs_pubsub_get_stats(f->ps, &st);
    assert_true(st.fallback);
    assert_true(has(st.spool_text, "No space left on device"));
    assert_true(f->state_changes > changes);
    size_t n = f->n_iq;
    assert_true(has(iq_xml(f, n - 1), "<item id='m1-latest-"));
    assert_false(has(iq_xml(f, n - 1), "urn:xmpp:delay"));
    assert_int_equal(fs.n, 2);
    /* The gateway node shows the warning through the stats hook. */
    fflush(f->log.out);
    assert_true(has(f->logbuf, "events fall back to latest values"));
    answer(f, n - 1, RESULT, 0);
    fx_free(f);
    fs_free(&fs);
}

/* The spool unusable at start: fallback at once (a snapshot at login). */
static void test_every_spool_unusable_at_start(void **state)
{
    (void)state;
    struct fake_spool fs = {.fail = GW_EIO};
    struct fx *f = fx_every(&fs);
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_true(st.every);
    assert_true(st.fallback);
    login_ready(f);
    assert_int_equal(f->snapshots, 1);
    add_batch(f, 0, 1, (size_t)0);
    xs_pubsub_ready(f->ps);
    assert_true(has(iq_xml(f, f->n_iq - 1), "<item id='m1-latest-1'>"));
    answer(f, f->n_iq - 1, RESULT, 0);
    fx_free(f);
    fs_free(&fs);
}

/* A spooled payload read back: seqnr and <delay> set, the rest as
 * stored; a payload that is not <fields> is refused. */
static void test_spool_item(void **state)
{
    (void)state;
    const char pl[] = "<fields xmlns='urn:xmpp:iot:sensordata' seqnr='0' "
                      "done='true'><node nodeId='m1'><timestamp value='2026-"
                      "12-03T18:42:31.250Z'><string name='s' momentary='true'"
                      " value='a&amp;b &lt;c&gt;'/></timestamp></node>"
                      "</fields>";
    struct gw_spool_rec rec = {.kind = GW_SPOOL_SAMPLE,
                               .unit = "m1",
                               .seq = 42,
                               .ts_ms = 1796323351250,
                               .payload = (const uint8_t *)pl,
                               .len = strlen(pl)};
    struct xs_stanza *it = xs_pubsub_spool_item(&rec, GW);
    assert_non_null(it);
    struct xs_buf b;
    xs_buf_init(&b, 1u << 16);
    assert_int_equal(xs_stanza_serialize(it, NULL, &b), 0);
    assert_string_equal(
        b.data, "<item id='m1-42'><fields xmlns='urn:xmpp:iot:sensordata' "
                "seqnr='42' done='true'><node nodeId='m1'><timestamp value='"
                "2026-12-03T18:42:31.250Z'><string name='s' momentary='true'"
                " value='a&amp;b &lt;c&gt;'/></timestamp></node><delay xmlns="
                "'urn:xmpp:delay' stamp='2026-12-03T18:42:31.250Z' from='" GW
                "'/></fields></item>");
    xs_buf_close(&b);
    xs_stanza_free(it);
    rec.payload = (const uint8_t *)"<x xmlns='y'/>";
    rec.len = strlen((const char *)rec.payload);
    assert_null(xs_pubsub_spool_item(&rec, NULL));
    rec.payload = (const uint8_t *)"<fields xmlns='urn:xmpp:iot:sensordata'";
    rec.len = strlen((const char *)rec.payload);
    assert_null(xs_pubsub_spool_item(&rec, NULL));
}

/* ---- delivery every with the real spool (gateway/gw_spool) -------------- */

struct real {
    uv_loop_t loop;
    char dir[64];
    struct gw_spool *sp;
    bool closed;
};

static int rs_append(void *ud, const char *unit, int64_t ts_ms,
                     const void *payload, size_t len, uint64_t *seq_out)
{
    return gw_spool_append(((struct real *)ud)->sp, unit, ts_ms, payload, len,
                           seq_out);
}
static bool rs_next(void *ud, struct gw_spool_rec *out)
{
    return gw_spool_next(((struct real *)ud)->sp, out);
}
static void rs_ack(void *ud, uint64_t pos)
{
    gw_spool_ack(((struct real *)ud)->sp, pos);
}
static void rs_rewind(void *ud)
{
    gw_spool_rewind(((struct real *)ud)->sp);
}
static void rs_stats(void *ud, struct gw_spool_stats *out)
{
    gw_spool_get_stats(((struct real *)ud)->sp, out);
}

static void rs_closed(void *ud)
{
    ((struct real *)ud)->closed = true;
}

static void rs_open(struct real *r, struct fx *f)
{
    struct gw_spool_opts o = {.dir = r->dir, .fsync_ms = 0};
    assert_int_equal(gw_spool_open(&r->loop, &o, &f->log, &r->sp), 0);
    struct xs_pubsub_spool sp = {.append = rs_append,
                                 .next = rs_next,
                                 .ack = rs_ack,
                                 .rewind = rs_rewind,
                                 .stats = rs_stats,
                                 .ud = r};
    xs_pubsub_set_spool(f->ps, &sp);
}

static void rs_close(struct real *r)
{
    r->closed = false;
    gw_spool_close(r->sp, rs_closed, r);
    r->sp = NULL;
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_true(r->closed);
}

/* Spooled offline, one published and acked, a "restart" (a new publisher,
 * the spool closed and opened again): only the unacked record is sent,
 * with its id, its payload and a <delay>; then the spool is empty. */
static void test_every_real_spool_restart(void **state)
{
    (void)state;
    struct real r = {0};
    assert_int_equal(uv_loop_init(&r.loop), 0);
    snprintf(r.dir, sizeof(r.dir), "/tmp/fg-pubsub-XXXXXX");
    assert_non_null(mkdtemp(r.dir));
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    f->cfg->events.delivery = CFG_DELIVERY_EVERY;
    rs_open(&r, f);
    add_batch(f, 0, 1, (size_t)0);
    add_batch(f, 0, 2, (size_t)1, (size_t)2);
    xs_pubsub_ready(f->ps);
    assert_int_equal(f->taken, 2);
    login_ready(f);
    size_t base = 3;
    assert_true(has(iq_xml(f, base), "<item id='m1-1'>"));
    answer(f, base, RESULT, 0);
    assert_true(has(iq_xml(f, base + 1), "<item id='m1-2'>"));
    /* Crash-like stop: m1-2 in flight, never answered. */
    struct gw_spool_stats st;
    gw_spool_get_stats(r.sp, &st);
    assert_int_equal(st.records, 1);
    fx_free(f);
    rs_close(&r);

    f = fx_new(SERVICE, CFG_AM_OPEN);
    f->cfg->events.delivery = CFG_DELIVERY_EVERY;
    rs_open(&r, f);
    login_ready(f);
    assert_int_equal(f->n_iq, 4);
    const char *p = iq_xml(f, 3);
    assert_true(has(p, "<item id='m1-2'><fields xmlns='urn:xmpp:iot:"
                       "sensordata' seqnr='2' done='true'>"));
    assert_true(has(p, "name='q'"));
    assert_true(has(p, "name='r'"));
    assert_true(has(p, "<delay xmlns='urn:xmpp:delay'"));
    answer(f, 3, RESULT, 0);
    gw_spool_get_stats(r.sp, &st);
    assert_int_equal(st.records, 0);
    /* A new batch continues the unit's sequence. */
    add_batch(f, 0, 1, (size_t)0);
    xs_pubsub_ready(f->ps);
    assert_true(has(iq_xml(f, 4), "<item id='m1-3'>"));
    assert_false(has(iq_xml(f, 4), "urn:xmpp:delay")); /* live */
    answer(f, 4, RESULT, 0);
    fx_free(f);
    rs_close(&r);
    assert_int_equal(uv_loop_close(&r.loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", r.dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- the retry of failed login checks ------------------------------------ */

/* The owner's one-shot timer fires. */
static void fire(struct fx *f)
{
    f->timer_armed = false;
    xs_pubsub_retry(f->ps);
}

static bool log_has(struct fx *f, const char *needle)
{
    fflush(f->log.out);
    return f->logbuf && strstr(f->logbuf, needle) != NULL;
}

/* The service does not answer its check: a warning, a retry after 5 s that
 * asks again; its answer clears the warning and publishing starts. */
static void test_retry_disco(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    xs_pubsub_set_timer(f->ps, fake_timer, f);
    add_batch(f, 0, 1, (size_t)0);
    xs_pubsub_online(f->ps, GW);
    assert_int_equal(f->n_iq, 1);
    assert_false(f->timer_armed);
    answer(f, 0, NULL, GW_ETIMEOUT);
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_WARNING);
    assert_string_equal(st.text, "the PubSub service " SERVICE
                                 " is not available (timeout)");
    assert_true(f->timer_armed);
    assert_int_equal(f->timer_ms, XS_PUBSUB_RETRY_MIN_MS);
    assert_int_equal(f->timer_ms, 5000);
    assert_true(log_has(f, "retrying the check of the PubSub service in 5 s"));
    assert_int_equal(f->n_iq, 1);
    /* The timer fires: disco#info again. */
    fire(f);
    assert_false(f->timer_armed);
    assert_int_equal(f->n_iq, 2);
    assert_true(has(iq_xml(f, 1), "disco#info"));
    assert_true(has(iq_xml(f, 1), "to='" SERVICE "'"));
    answer(f, 1, DISCO_PROSODY, 0);
    assert_int_equal(f->n_iq, 4);
    assert_true(has(iq_xml(f, 2), "<configure node='fg/m1'/>"));
    assert_true(has(iq_xml(f, 3), "<configure node='fg/m2'/>"));
    char *a = config_answer("fg/m1", "1", "false");
    answer(f, 2, a, 0);
    free(a);
    a = config_answer("fg/m2", "1", "0");
    answer(f, 3, a, 0);
    free(a);
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_RUNNING);
    assert_string_equal(st.text, "");
    assert_int_equal(f->snapshots, 1);
    assert_int_equal(f->n_iq, 5);
    assert_true(has(iq_xml(f, 4), "<publish node='fg/m1'>"));
    assert_false(f->timer_armed); /* nothing more to retry */
    fx_free(f);
}

/* A node creation fails once (internal-server-error): the other node is
 * published to, the failed one is set up again by the retry (after 5 s,
 * then 10 s) and published to. */
static void test_retry_node_create(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    xs_pubsub_set_timer(f->ps, fake_timer, f);
    xs_pubsub_online(f->ps, GW);
    answer(f, 0, DISCO_PROSODY, 0);
    assert_int_equal(f->n_iq, 3);
    answer(f, 1, ERR("item-not-found", ""), 0);
    assert_true(has(iq_xml(f, 3), "<create node='fg/m1'/>"));
    char *a = config_answer("fg/m2", "1", "0");
    answer(f, 2, a, 0);
    free(a);
    assert_false(f->timer_armed);
    answer(f, 3, ERR("internal-server-error", ""), 0);
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_RUNNING);
    assert_true(f->timer_armed);
    assert_int_equal(f->timer_ms, 5000);
    assert_true(log_has(f, "retrying the setup of the failed node(s) in 5 s"));
    /* m1's batch is dropped meanwhile, m2's published. */
    add_batch(f, 0, 1, (size_t)0);
    add_batch(f, 1, 1, (size_t)0);
    xs_pubsub_ready(f->ps);
    assert_int_equal(f->n_iq, 5);
    assert_true(has(iq_xml(f, 4), "<publish node='fg/m2'>"));
    answer(f, 4, RESULT, 0);
    /* First retry: m1 only, fails again: the delay doubles. */
    fire(f);
    assert_int_equal(f->n_iq, 6);
    assert_true(has(iq_xml(f, 5), "<configure node='fg/m1'/>"));
    answer(f, 5, ERR("item-not-found", ""), 0);
    assert_true(has(iq_xml(f, 6), "<create node='fg/m1'/>"));
    answer(f, 6, ERR("internal-server-error", ""), 0);
    assert_true(f->timer_armed);
    assert_int_equal(f->timer_ms, 10000);
    assert_true(log_has(f, "in 10 s"));
    /* Second retry: created; publishing to it resumes. */
    fire(f);
    assert_int_equal(f->n_iq, 8);
    answer(f, 7, ERR("item-not-found", ""), 0);
    assert_true(has(iq_xml(f, 8), "<create node='fg/m1'/>"));
    answer(f, 8, RESULT, 0);
    assert_false(f->timer_armed);
    assert_int_equal(f->snapshots, 2); /* current values for the node */
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_RUNNING);
    add_batch(f, 0, 1, (size_t)1);
    xs_pubsub_ready(f->ps);
    assert_int_equal(f->n_iq, 10);
    assert_true(has(iq_xml(f, 9), "<publish node='fg/m1'>"));
    answer(f, 9, RESULT, 0);
    assert_int_equal(xs_pubsub_unit_published(f->ps, 0, 0), 1);
    fx_free(f);
}

/* The delay doubles up to 5 min, is back to 5 s at the next login; going
 * offline stops the timer and a late firing sends nothing. */
static void test_retry_backoff_offline(void **state)
{
    (void)state;
    struct fx *f = fx_new(SERVICE, CFG_AM_OPEN);
    xs_pubsub_set_timer(f->ps, fake_timer, f);
    xs_pubsub_online(f->ps, GW);
    static const uint32_t want[] = {5000,  10000,  20000,  40000,
                                    80000, 160000, 300000, 300000};
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        assert_int_equal(f->n_iq, k + 1);
        assert_true(has(iq_xml(f, k), "disco#info"));
        answer(f, k, ERR("service-unavailable", ""), 0);
        assert_true(f->timer_armed);
        assert_int_equal(f->timer_ms, want[k]);
        if (k + 1 < sizeof(want) / sizeof(want[0]))
            fire(f);
    }
    assert_true(log_has(f, "in 300 s"));
    xs_pubsub_offline(f->ps);
    assert_false(f->timer_armed);
    size_t n = f->n_iq;
    fire(f); /* a late firing: nothing */
    assert_int_equal(f->n_iq, n);
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(f->ps, &st);
    assert_int_equal(st.state, XS_PUBSUB_OFFLINE);
    /* The next login starts at 5 s again. */
    xs_pubsub_online(f->ps, GW);
    assert_int_equal(f->n_iq, n + 1);
    answer(f, n, NULL, GW_ETIMEOUT);
    assert_true(f->timer_armed);
    assert_int_equal(f->timer_ms, 5000);
    /* A login while armed stops it. */
    xs_pubsub_online(f->ps, GW);
    assert_false(f->timer_armed);
    answer(f, n + 1, NULL, GW_ETIMEOUT);
    assert_int_equal(f->timer_ms, 5000);
    /* Freeing stops it too. */
    size_t calls = f->timer_calls;
    xs_pubsub_free(f->ps);
    f->ps = NULL;
    assert_false(f->timer_armed);
    assert_int_equal(f->timer_calls, calls + 1);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_form),
        cmocka_unit_test(test_config_diff),
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_item_payload),
        cmocka_unit_test(test_login_create_and_reconfigure),
        cmocka_unit_test(test_window_and_publish),
        cmocka_unit_test(test_forbidden_once),
        cmocka_unit_test(test_precondition_configure_retry_once),
        cmocka_unit_test(test_item_not_found_recreates),
        cmocka_unit_test(test_not_owner_node),
        cmocka_unit_test(test_too_big_logged_once),
        cmocka_unit_test(test_failed_publish_requeued),
        cmocka_unit_test(test_whitelist_members),
        cmocka_unit_test(test_pep_offline_orphans),
        cmocka_unit_test(test_gateway_status),
        cmocka_unit_test(test_every_spool_replay),
        cmocka_unit_test(test_every_gap_retry_fallback),
        cmocka_unit_test(test_every_spool_unusable_at_start),
        cmocka_unit_test(test_spool_item),
        cmocka_unit_test(test_every_real_spool_restart),
        cmocka_unit_test(test_retry_disco),
        cmocka_unit_test(test_retry_node_create),
        cmocka_unit_test(test_retry_backoff_offline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
