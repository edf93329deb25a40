/* test_iot.c - the concentrator model (gateway/gw_iot): node tree, ids,
 * fields, quality -> QoS, control validation, history, node parameters.
 * No engine: the store is filled by hand, as the engine would. */
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

static const char MAP[] =
    "poll_groups:\n"
    "  - {name: default, interval: 1s}\n"
    "links:\n"
    "  - name: plant\n"
    "    type: tcp\n"
    "    host: 127.0.0.1\n"
    "    port: 1502\n"
    "    units:\n"
    "      - name: m1\n"
    "        id: 1\n"
    "        description: Main meter\n"
    "        points:\n"
    "          - {name: power, table: input, address: 0, type: float32,\n"
    "             unit: W, decimals: 1}\n"
    "          - {name: relay, table: coil, address: 0, writable: true}\n"
    "          - {name: setpoint, table: holding, address: 10, type: int16,\n"
    "             scale: 0.1, decimals: 1, unit: C, writable: true,\n"
    "             min: 5, max: 30}\n"
    "          - {name: mode, table: holding, address: 11, type: uint16,\n"
    "             writable: true, enum: {0: off, 1: auto}}\n"
    "          - {name: serial, table: holding, address: 20, type: string,\n"
    "             length: 4}\n"
    "          - {name: count, table: holding, address: 30, type: uint16,\n"
    "             writable: true}\n"
    "      - name: m2\n"
    "        id: 2\n"
    "        points:\n"
    "          - {name: power, table: input, address: 0, type: float32}\n"
    "          - {name: setpoint, table: holding, address: 10, type: int16,\n"
    "             scale: 0.1, writable: true}\n"
    "  - name: m2\n"
    "    type: tcp\n"
    "    host: 127.0.0.1\n"
    "    port: 1503\n"
    "    units:\n"
    "      - name: far\n"
    "        id: 7\n"
    "        points:\n"
    "          - {name: level, table: holding, address: 0, type: uint16}\n"
    "";

/* The access: section, set on the model directly (independent of how the
 * loader spells it). */
static char *readers[] = {"viewer@example.org"};
static char *controllers[] = {"ops@example.org"};

struct fx {
    struct cfg *cfg;
    struct gw_store store;
    struct gw_iot *iot;
};

static int setup_map(void **state, const char *map,
                     const struct gw_iot_opts *opts)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    int rc = cfg_load_buffer("map.yaml", map, strlen(map), &f.cfg, &errs);
    if (rc != GW_OK)
        cfg_errors_print(&errs, stderr);
    cfg_errors_close(&errs);
    if (rc != GW_OK)
        return -1;
    f.cfg->access.readers = readers;
    f.cfg->access.n_readers = 1;
    f.cfg->access.controllers = controllers;
    f.cfg->access.n_controllers = 1;
    if (gw_store_init(&f.store, f.cfg) != GW_OK)
        return -1;
    if (gw_iot_new(f.cfg, &f.store, NULL, NULL, opts, &f.iot) != GW_OK)
        return -1;
    *state = &f;
    return 0;
}

static int setup_opts(void **state, const struct gw_iot_opts *opts)
{
    return setup_map(state, MAP, opts);
}

static int setup(void **state)
{
    return setup_opts(state, NULL);
}

static int setup_hist(void **state)
{
    struct gw_iot_opts o = {.history = 3};
    return setup_opts(state, &o);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    gw_iot_free(f->iot);
    gw_store_close(&f->store);
    memset(&f->cfg->access, 0, sizeof(f->cfg->access));
    cfg_free(f->cfg);
    return 0;
}

static size_t node_of(struct fx *f, const char *id)
{
    size_t n = gw_iot_find(f->iot, NULL, id);
    assert_int_not_equal(n, GW_IOT_NONE);
    return n;
}

static void set_double(struct fx *f, size_t l, size_t u, size_t p, double d,
                       int64_t ts)
{
    struct ad_value v = {.kind = AD_VALUE_DOUBLE, .v.d = d};
    uint16_t raw[4] = {0};
    gw_store_set_value(&f->store, l, u, p, raw, 2, &v, 0, ts);
}

static void set_uint(struct fx *f, size_t l, size_t u, size_t p, uint64_t x,
                     int64_t ts)
{
    struct ad_value v = {.kind = AD_VALUE_UINT, .v.u = x};
    uint16_t raw[4] = {(uint16_t)x};
    gw_store_set_value(&f->store, l, u, p, raw, 1, &v, 0, ts);
}

/* ---- node tree ---------------------------------------------------------- */

static void test_tree(void **state)
{
    struct fx *f = *state;
    assert_int_equal(gw_iot_node_count(f->iot), 1 + 2 + 3);
    const struct gw_iot_node *g = gw_iot_node(f->iot, 0);
    assert_int_equal(g->kind, GW_IOT_GATEWAY);
    assert_string_equal(g->id, GW_IOT_GATEWAY_ID);
    assert_int_equal(g->parent, GW_IOT_NONE);
    assert_int_equal(g->n_children, 2);
    /* Link "m2" clashes with unit "m2": it gets the link: prefix. */
    assert_string_equal(gw_iot_node(f->iot, 1)->id, "plant");
    assert_string_equal(gw_iot_node(f->iot, 2)->id, "link:m2");
    assert_int_equal(gw_iot_find(f->iot, NULL, "link:plant"), GW_IOT_NONE);
    size_t m2 = node_of(f, "m2");
    assert_int_equal(gw_iot_node(f->iot, m2)->kind, GW_IOT_UNIT);
    assert_int_equal(gw_iot_node(f->iot, m2)->parent, 1);
    size_t far = node_of(f, "far");
    assert_int_equal(gw_iot_node(f->iot, far)->parent, node_of(f, "link:m2"));
    assert_true(gw_iot_node_within(f->iot, far, 0));
    assert_true(gw_iot_node_within(f->iot, far, 2));
    assert_false(gw_iot_node_within(f->iot, far, 1));
    /* Children of plant: m1, m2 in map order. */
    const struct gw_iot_node *plant = gw_iot_node(f->iot, 1);
    assert_int_equal(plant->n_children, 2);
    assert_string_equal(gw_iot_node(f->iot, plant->first_child)->id, "m1");
    assert_string_equal(gw_iot_node(f->iot, plant->first_child + 1)->id, "m2");
    /* Source ids: ours or none. */
    assert_int_equal(gw_iot_find(f->iot, GW_IOT_SOURCE, "m1"),
                     plant->first_child);
    assert_int_equal(gw_iot_find(f->iot, "Other", "m1"), GW_IOT_NONE);
    assert_int_equal(gw_iot_find(f->iot, NULL, "nope"), GW_IOT_NONE);
}

static void test_node_info_and_state(void **state)
{
    struct fx *f = *state;
    size_t m1 = node_of(f, "m1"), m2 = node_of(f, "m2"),
           far = node_of(f, "far");
    struct gw_iot_node_info in;
    gw_iot_node_info(f->iot, m1, &in);
    assert_string_equal(in.type, "Modbus.Unit");
    assert_string_equal(in.display, "Main meter");
    assert_string_equal(in.parent_id, "plant");
    assert_true(in.controllable);
    assert_false(in.has_children);
    assert_int_equal(in.state, GW_IOT_STATE_NONE);
    gw_iot_node_info(f->iot, far, &in);
    assert_false(in.controllable); /* no writable point */
    gw_iot_node_info(f->iot, 0, &in);
    assert_true(in.has_children);
    assert_null(in.parent_id);
    /* Store status -> state; the gateway follows. */
    gw_store_set_unit_status(&f->store, 0, 1, GW_UNIT_OFFLINE, 1000);
    gw_iot_node_info(f->iot, m2, &in);
    assert_int_equal(in.state, GW_IOT_STATE_ERROR);
    assert_string_equal(gw_iot_state_name(in.state), "ErrorUnsigned");
    assert_int_equal(in.last_changed_ms, 1000);
    gw_iot_node_info(f->iot, 1, &in);
    assert_int_equal(in.state, GW_IOT_STATE_ERROR); /* tried, not connected */
    gw_store_set_link_connected(&f->store, 0, true);
    gw_iot_node_info(f->iot, 1, &in);
    assert_int_equal(in.state, GW_IOT_STATE_WARNING);
    gw_iot_node_info(f->iot, 0, &in);
    assert_int_equal(in.state, GW_IOT_STATE_WARNING);
    gw_store_set_unit_status(&f->store, 0, 1, GW_UNIT_DEGRADED, 2000);
    gw_iot_node_info(f->iot, m2, &in);
    assert_string_equal(gw_iot_state_name(in.state), "WarningUnsigned");
    gw_store_set_unit_status(&f->store, 0, 1, GW_UNIT_ONLINE, 3000);
    gw_iot_node_info(f->iot, 0, &in);
    assert_int_equal(in.state, GW_IOT_STATE_NONE);
}

struct events {
    size_t node[16];
    enum gw_iot_state st[16];
    size_t n;
};

static void on_status(void *ud, size_t node, enum gw_iot_state st)
{
    struct events *e = ud;
    if (e->n < 16) {
        e->node[e->n] = node;
        e->st[e->n++] = st;
    }
}

static void test_status_events(void **state)
{
    struct fx *f = *state;
    struct events ev = {0};
    gw_iot_set_status_cb(f->iot, on_status, &ev);
    size_t m1 = node_of(f, "m1");
    gw_store_set_unit_status(&f->store, 0, 0, GW_UNIT_OFFLINE, 10);
    /* m1 -> Error, plant -> Error (not connected, tried), gateway -> Warning */
    assert_int_equal(ev.n, 3);
    assert_int_equal(ev.node[0], 0);
    assert_int_equal(ev.st[0], GW_IOT_STATE_WARNING);
    assert_int_equal(ev.node[1], 1);
    assert_int_equal(ev.st[1], GW_IOT_STATE_ERROR);
    assert_int_equal(ev.node[2], m1);
    assert_int_equal(ev.st[2], GW_IOT_STATE_ERROR);
    /* The same status again: nothing. A point change: nothing. */
    gw_store_set_unit_status(&f->store, 0, 0, GW_UNIT_OFFLINE, 20);
    set_double(f, 0, 0, 0, 1.0, 30);
    assert_int_equal(ev.n, 3);
    gw_iot_set_status_cb(f->iot, NULL, NULL);
}

/* ---- fields ------------------------------------------------------------- */

struct fields {
    struct gw_iot_field f[64];
    size_t n;
};

static int collect(void *ud, const struct gw_iot_field *fl)
{
    struct fields *c = ud;
    if (c->n < 64)
        c->f[c->n++] = *fl;
    return 0;
}

static const struct gw_iot_field *find_field(const struct fields *c,
                                             const char *name, unsigned type)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->f[i].name, name) == 0 && (c->f[i].types & type))
            return &c->f[i];
    return NULL;
}

static void test_unit_fields(void **state)
{
    struct fx *f = *state;
    int64_t now = gw_now_ms();
    size_t m1 = node_of(f, "m1");
    set_double(f, 0, 0, 0, 1234.56, now); /* power, decimals 1 */
    struct ad_value b = {.kind = AD_VALUE_BOOL, .v.b = true};
    uint16_t raw[4] = {1};
    gw_store_set_value(&f->store, 0, 0, 1, raw, 1, &b, 0, now); /* relay */
    set_double(f, 0, 0, 2, 21.5, now);                          /* setpoint */
    set_uint(f, 0, 0, 3, 1, now);                               /* mode */
    struct ad_value s = {.kind = AD_VALUE_STRING};
    memcpy(s.s, "SN-1", 5);
    gw_store_set_value(&f->store, 0, 0, 4, raw, 4, &s, 0, now); /* serial */
    /* count (point 5) never read: no field. */
    struct fields c = {0};
    assert_int_equal(gw_iot_node_fields(f->iot, m1, NULL, now, collect, &c), 0);
    const struct gw_iot_field *p = find_field(&c, "power", GW_IOT_T_MOMENTARY);
    assert_non_null(p);
    assert_int_equal(p->vtype, GW_IOT_V_NUMERIC);
    assert_string_equal(p->value, "1234.6");
    assert_string_equal(p->unit, "W");
    assert_int_equal(p->decimals, 1);
    assert_int_equal(p->qos, GW_IOT_Q_AUTOMATIC_READOUT);
    assert_int_equal(p->ts_ms, now);
    assert_false(p->writable);
    p = find_field(&c, "relay", GW_IOT_T_MOMENTARY);
    assert_int_equal(p->vtype, GW_IOT_V_BOOLEAN);
    assert_string_equal(p->value, "true");
    assert_true(p->writable);
    p = find_field(&c, "setpoint", GW_IOT_T_MOMENTARY);
    assert_string_equal(p->value, "21.5");
    assert_string_equal(p->unit, "C");
    p = find_field(&c, "mode", GW_IOT_T_MOMENTARY);
    assert_int_equal(p->vtype, GW_IOT_V_ENUM);
    assert_string_equal(p->value, "auto");
    assert_string_equal(p->data_type, "fieldgate.m1.mode");
    p = find_field(&c, "serial", GW_IOT_T_MOMENTARY);
    assert_int_equal(p->vtype, GW_IOT_V_STRING);
    assert_string_equal(p->value, "SN-1");
    assert_null(find_field(&c, "count", GW_IOT_T_ALL));
    /* Identity and status fields. */
    p = find_field(&c, "Link", GW_IOT_T_IDENTITY);
    assert_string_equal(p->value, "plant");
    p = find_field(&c, "Unit id", GW_IOT_T_IDENTITY);
    assert_string_equal(p->value, "1");
    assert_null(find_field(&c, "Template", GW_IOT_T_ALL));
    p = find_field(&c, "State", GW_IOT_T_STATUS);
    assert_string_equal(p->value, "unknown");
    assert_non_null(find_field(&c, "Requests", GW_IOT_T_STATUS));
    /* No historical fields unless asked (and history is off here). */
    for (size_t i = 0; i < c.n; i++)
        assert_int_equal(c.f[i].types & GW_IOT_T_HISTORICAL, 0);

    /* Filters: a type and a field name. */
    struct fields c2 = {0};
    const char *names[] = {"power", "Link"};
    struct gw_iot_filter flt = {
        .types = GW_IOT_T_MOMENTARY, .fields = names, .n_fields = 2};
    gw_iot_node_fields(f->iot, m1, &flt, now, collect, &c2);
    assert_int_equal(c2.n, 1);
    assert_string_equal(c2.f[0].name, "power");
    struct fields c3 = {0};
    flt.types = GW_IOT_T_IDENTITY | GW_IOT_T_MOMENTARY;
    gw_iot_node_fields(f->iot, m1, &flt, now, collect, &c3);
    assert_int_equal(c3.n, 2);
}

static void test_gateway_and_link_fields(void **state)
{
    struct fx *f = *state;
    int64_t now = gw_now_ms();
    gw_store_set_link_connected(&f->store, 1, true);
    f->store.links[1].c.requests = 7;
    f->store.links[0].c.requests = 5;
    f->store.links[0].c.errors = 2;
    struct fields c = {0};
    gw_iot_node_fields(f->iot, 0, NULL, now, collect, &c);
    const struct gw_iot_field *p = find_field(&c, "Links online", ~0u);
    assert_string_equal(p->value, "1");
    p = find_field(&c, "Requests", ~0u);
    assert_string_equal(p->value, "12");
    p = find_field(&c, "Errors", ~0u);
    assert_string_equal(p->value, "2");
    p = find_field(&c, "Uptime", ~0u);
    assert_int_equal(p->vtype, GW_IOT_V_TIMESPAN);
    struct fields l = {0};
    gw_iot_node_fields(f->iot, 2, NULL, now, collect, &l);
    p = find_field(&l, "Connected", GW_IOT_T_STATUS);
    assert_int_equal(p->vtype, GW_IOT_V_BOOLEAN);
    assert_string_equal(p->value, "true");
    p = find_field(&l, "Address", GW_IOT_T_IDENTITY);
    assert_string_equal(p->value, "127.0.0.1:1503");
}

static void test_quality_to_qos(void **state)
{
    struct fx *f = *state;
    int64_t now = 1000000;
    set_double(f, 0, 0, 0, 1.0, now);
    assert_int_equal(gw_iot_point_qos(f->iot, 0, 0, 0, now),
                     GW_IOT_Q_AUTOMATIC_READOUT);
    /* Older than three poll intervals (3 s): stale -> timeOffset. */
    assert_int_equal(gw_iot_point_qos(f->iot, 0, 0, 0, now + 3001),
                     GW_IOT_Q_AUTOMATIC_READOUT | GW_IOT_Q_TIME_OFFSET);
    assert_int_equal(gw_iot_point_qos(f->iot, 0, 0, 0, now + 3000),
                     GW_IOT_Q_AUTOMATIC_READOUT);
    gw_store_set_error(&f->store, 0, 0, 0, GW_Q_TIMEOUT, GW_ETIMEOUT, 0, now);
    assert_int_equal(gw_iot_point_qos(f->iot, 0, 0, 0, now), GW_IOT_Q_MISSING);
    gw_store_set_error(&f->store, 0, 0, 0, GW_Q_DISCONNECTED, GW_EDISCONNECTED,
                       0, now);
    assert_int_equal(gw_iot_point_qos(f->iot, 0, 0, 0, now), GW_IOT_Q_MISSING);
    gw_store_set_error(&f->store, 0, 0, 0, GW_Q_EXCEPTION, GW_EMBEXC, 2, now);
    assert_int_equal(gw_iot_point_qos(f->iot, 0, 0, 0, now), GW_IOT_Q_ERROR);
    /* The field keeps the last good value, flagged error. */
    struct fields c = {0};
    const char *names[] = {"power"};
    struct gw_iot_filter flt = {
        .types = GW_IOT_T_MOMENTARY, .fields = names, .n_fields = 1};
    gw_iot_node_fields(f->iot, node_of(f, "m1"), &flt, now, collect, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.f[0].qos, GW_IOT_Q_ERROR);
    assert_string_equal(c.f[0].value, "1.0");
    /* A decode error (NaN). */
    struct ad_value nan = {.kind = AD_VALUE_DOUBLE, .v.d = 0.0 / 0.0};
    uint16_t raw[2] = {0x7fc0, 0};
    gw_store_set_value(&f->store, 0, 0, 0, raw, 2, &nan, GW_ENONFINITE, now);
    assert_int_equal(gw_iot_point_qos(f->iot, 0, 0, 0, now), GW_IOT_Q_ERROR);
    /* Never read. */
    assert_int_equal(gw_iot_point_qos(f->iot, 0, 1, 0, now), GW_IOT_Q_MISSING);
}

/* ---- readouts without an engine ---------------------------------------- */

static void test_readout_cache(void **state)
{
    struct fx *f = *state;
    int64_t now = gw_now_ms();
    set_double(f, 0, 0, 0, 5.0, now);
    for (size_t p = 1; p < 6; p++)
        gw_store_set_error(&f->store, 0, 0, p, GW_Q_EXCEPTION, GW_EMBEXC, 2,
                           now);
    size_t m1 = node_of(f, "m1");
    struct gw_iot_readout *ro;
    bool pending = true;
    struct gw_iot_filter flt = {.types = GW_IOT_T_MOMENTARY};
    assert_int_equal(
        gw_iot_readout_start(f->iot, &m1, 1, &flt, NULL, NULL, &ro, &pending),
        0);
    assert_false(pending); /* all fresh: served from the store */
    assert_int_equal(gw_iot_readout_count(ro), 1);
    int err = -1;
    assert_int_equal(gw_iot_readout_node(ro, 0, &err, NULL), m1);
    assert_int_equal(err, 0);
    assert_int_equal(gw_iot_readout_reads(ro), 0);
    gw_iot_readout_free(ro);

    /* m2 never read and no engine: the node fails, the others serve. */
    size_t plant = 1;
    assert_int_equal(gw_iot_readout_start(f->iot, &plant, 1, &flt, NULL, NULL,
                                          &ro, &pending),
                     0);
    assert_false(pending);
    assert_int_equal(gw_iot_readout_count(ro), 3); /* plant, m1, m2 */
    const char *text;
    assert_int_equal(gw_iot_readout_node(ro, 2, &err, &text), node_of(f, "m2"));
    assert_int_equal(err, GW_EUNSUPPORTED);
    assert_non_null(strstr(text, "m2"));
    gw_iot_readout_free(ro);

    /* m2's last poll timed out just now: fresh, but a failure. */
    size_t m2 = node_of(f, "m2");
    for (size_t p = 0; p < 2; p++)
        gw_store_set_error(&f->store, 0, 1, p, GW_Q_TIMEOUT, GW_ETIMEOUT, 0,
                           now);
    assert_int_equal(
        gw_iot_readout_start(f->iot, &m2, 1, &flt, NULL, NULL, &ro, &pending),
        0);
    assert_false(pending);
    gw_iot_readout_node(ro, 0, &err, &text);
    assert_int_equal(err, GW_ETIMEOUT);
    gw_iot_readout_free(ro);
    /* One point answering is enough: no failure. */
    set_double(f, 0, 1, 0, 3.0, now);
    assert_int_equal(
        gw_iot_readout_start(f->iot, &m2, 1, &flt, NULL, NULL, &ro, &pending),
        0);
    gw_iot_readout_node(ro, 0, &err, &text);
    assert_int_equal(err, 0);
    gw_iot_readout_free(ro);

    /* All nodes. */
    assert_int_equal(
        gw_iot_readout_start(f->iot, NULL, 0, NULL, NULL, NULL, &ro, &pending),
        0);
    assert_int_equal(gw_iot_readout_count(ro), gw_iot_node_count(f->iot));
    gw_iot_readout_free(ro);

    /* An offline unit served from cache fails. */
    gw_store_set_unit_status(&f->store, 0, 0, GW_UNIT_OFFLINE, now);
    f->store.links[0].units[0].last_err = GW_ETIMEOUT;
    assert_int_equal(
        gw_iot_readout_start(f->iot, &m1, 1, &flt, NULL, NULL, &ro, &pending),
        0);
    gw_iot_readout_node(ro, 0, &err, &text);
    assert_int_equal(err, GW_ETIMEOUT);
    assert_string_equal(text, "unit m1 (id 1): no response");
    gw_iot_readout_free(ro);
}

static void test_readout_limit(void **state)
{
    struct fx *f = *state;
    gw_iot_free(f->iot);
    struct gw_iot_opts o = {.max_readout_nodes = 2};
    assert_int_equal(gw_iot_new(f->cfg, &f->store, NULL, NULL, &o, &f->iot), 0);
    struct gw_iot_readout *ro;
    bool pending;
    assert_int_equal(
        gw_iot_readout_start(f->iot, NULL, 0, NULL, NULL, NULL, &ro, &pending),
        GW_ELIMIT);
    size_t m1 = node_of(f, "m1");
    struct gw_iot_filter flt = {.types = GW_IOT_T_IDENTITY};
    assert_int_equal(
        gw_iot_readout_start(f->iot, &m1, 1, &flt, NULL, NULL, &ro, &pending),
        0);
    assert_false(pending); /* identity only: no bus read needed */
    gw_iot_readout_free(ro);
}

/* ---- control validation ------------------------------------------------ */

static void test_control_validation(void **state)
{
    struct fx *f = *state;
    size_t m1 = node_of(f, "m1"), m2 = node_of(f, "m2");
    struct gw_iot_ctl_result r;
    struct gw_iot_set ok[] = {{"setpoint", GW_IOT_H_DOUBLE, "21.5"},
                              {"relay", GW_IOT_H_BOOLEAN, "true"}};
    /* Access first. */
    assert_false(gw_iot_control_check(f->iot, "viewer@example.org/x", &m1, 1,
                                      ok, 2, &r));
    assert_int_equal(r.code, GW_IOT_CTL_FORBIDDEN);
    assert_false(
        gw_iot_control_check(f->iot, "evil@example.com/x", &m1, 1, ok, 2, &r));
    assert_int_equal(r.code, GW_IOT_CTL_FORBIDDEN);
    /* Valid, but no engine: NotImplemented (only after every check). */
    const char *ops = "ops@example.org/console";
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, ok, 2, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_IMPLEMENTED);
    /* Unknown parameter. */
    struct gw_iot_set unknown[] = {{"nope", GW_IOT_H_ANY, "1"}};
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, unknown, 1, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_FOUND);
    assert_int_equal(r.param, 0);
    /* Read-only point. */
    struct gw_iot_set ro[] = {{"power", GW_IOT_H_DOUBLE, "1"}};
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, ro, 1, &r));
    assert_int_equal(r.code, GW_IOT_CTL_FORM_ERROR);
    assert_int_equal(r.err, GW_EREADONLY);
    /* Range from the map (5..30), checked for every parameter even when an
     * earlier one is valid. */
    struct gw_iot_set range[] = {{"relay", GW_IOT_H_BOOLEAN, "false"},
                                 {"setpoint", GW_IOT_H_DOUBLE, "31"}};
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, range, 2, &r));
    assert_int_equal(r.code, GW_IOT_CTL_FORM_ERROR);
    assert_int_equal(r.param, 1);
    assert_int_equal(r.err, GW_ERANGE);
    assert_non_null(strstr(r.text, "5..30"));
    /* Raw type range (uint16). */
    struct gw_iot_set big[] = {{"count", GW_IOT_H_INT, "70000"}};
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, big, 1, &r));
    assert_int_equal(r.code, GW_IOT_CTL_FORM_ERROR);
    /* Type hints: boolean for a number, double for a coil, date. */
    struct gw_iot_set h1[] = {{"setpoint", GW_IOT_H_BOOLEAN, "true"}};
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, h1, 1, &r));
    assert_int_equal(r.err, GW_ETYPE);
    struct gw_iot_set h2[] = {{"relay", GW_IOT_H_DOUBLE, "1.0"}};
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, h2, 1, &r));
    assert_int_equal(r.err, GW_ETYPE);
    struct gw_iot_set h3[] = {{"setpoint", GW_IOT_H_OTHER, "2024-01-01"}};
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, h3, 1, &r));
    assert_int_equal(r.code, GW_IOT_CTL_FORM_ERROR);
    /* Not a number. */
    struct gw_iot_set bad[] = {{"setpoint", GW_IOT_H_ANY, "warm"}};
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, bad, 1, &r));
    assert_int_equal(r.code, GW_IOT_CTL_FORM_ERROR);
    /* Enum by label, and a wrong label. */
    struct gw_iot_set en[] = {{"mode", GW_IOT_H_STRING, "auto"}};
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, en, 1, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_IMPLEMENTED); /* i.e. valid */
    struct gw_iot_set en2[] = {{"mode", GW_IOT_H_STRING, "turbo"}};
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, en2, 1, &r));
    assert_int_equal(r.code, GW_IOT_CTL_FORM_ERROR);
    /* All nodes: m2 has setpoint but no relay. */
    size_t both[] = {m1, m2};
    assert_false(gw_iot_control_check(f->iot, ops, both, 2, ok, 2, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_FOUND);
    assert_int_equal(r.node, 1);
    assert_int_equal(r.param, 1);
    /* A link node has no parameters; no node at all; no parameter. */
    size_t link = 1;
    assert_false(gw_iot_control_check(f->iot, ops, &link, 1, ok, 1, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_FOUND);
    assert_false(gw_iot_control_check(f->iot, ops, NULL, 0, ok, 1, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_FOUND);
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, ok, 0, &r));
    assert_int_equal(r.code, GW_IOT_CTL_FORM_ERROR);
    /* control_start refuses the same way and writes nothing. */
    struct gw_iot_control *ctl = (void *)1;
    assert_false(gw_iot_control_start(f->iot, ops, &m1, 1, range, 2, NULL, NULL,
                                      &ctl, &r));
    assert_null(ctl);
    assert_int_equal(r.code, GW_IOT_CTL_FORM_ERROR);
}

/* ---- control bounds ----------------------------------------------------- */

static void test_control_bounds(void **state)
{
    struct fx *f = *state;
    gw_iot_free(f->iot);
    struct gw_iot_opts o = {.control_max_writes = 3};
    assert_int_equal(gw_iot_new(f->cfg, &f->store, NULL, NULL, &o, &f->iot), 0);
    const char *ops = "ops@example.org/console";
    size_t m1 = node_of(f, "m1"), m2 = node_of(f, "m2");
    struct gw_iot_ctl_result r;
    /* 4 distinct writes > 3: refused before any per-point check (the
     * unknown parameter is not even looked at). */
    struct gw_iot_set four[] = {{"relay", GW_IOT_H_BOOLEAN, "true"},
                                {"setpoint", GW_IOT_H_DOUBLE, "21"},
                                {"mode", GW_IOT_H_STRING, "auto"},
                                {"nope", GW_IOT_H_INT, "1"}};
    assert_false(gw_iot_control_check(f->iot, ops, &m1, 1, four, 4, &r));
    assert_int_equal(r.code, GW_IOT_CTL_LIMIT);
    assert_int_equal(r.err, GW_ELIMIT);
    assert_non_null(strstr(r.text, "4 writes"));
    assert_non_null(strstr(r.text, "3 allowed"));
    /* The same through control_start: nothing started. */
    struct gw_iot_control *ctl = (void *)1;
    assert_false(gw_iot_control_start(f->iot, ops, &m1, 1, four, 4, NULL, NULL,
                                      &ctl, &r));
    assert_null(ctl);
    assert_int_equal(r.code, GW_IOT_CTL_LIMIT);
    /* 2 nodes x 2 parameters = 4 > 3. */
    size_t both[] = {m1, m2};
    assert_false(gw_iot_control_check(f->iot, ops, both, 2, four, 2, &r));
    assert_int_equal(r.code, GW_IOT_CTL_LIMIT);
    /* Duplicates collapse: m1 named 1024 times, one parameter repeated 256
     * times = 1 write (valid; NotImplemented for want of an engine). */
    size_t *many = calloc(1024, sizeof(*many));
    struct gw_iot_set *same = calloc(256, sizeof(*same));
    assert_non_null(many);
    assert_non_null(same);
    for (size_t i = 0; i < 1024; i++)
        many[i] = m1;
    for (size_t i = 0; i < 256; i++)
        same[i] = (struct gw_iot_set){"relay", GW_IOT_H_BOOLEAN, "false"};
    assert_false(gw_iot_control_check(f->iot, ops, many, 1024, same, 256, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_IMPLEMENTED);
    /* A repeat with another value is another write (a pulse): 3 fit. */
    same[1].value = "true";
    same[2].value = "1";
    assert_false(gw_iot_control_check(f->iot, ops, many, 1024, same, 256, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_IMPLEMENTED);
    same[3].value = "0";
    assert_false(gw_iot_control_check(f->iot, ops, many, 1024, same, 256, &r));
    assert_int_equal(r.code, GW_IOT_CTL_LIMIT);
    /* The default bound is 32: 2 nodes x 17 parameters. */
    gw_iot_free(f->iot);
    assert_int_equal(gw_iot_new(f->cfg, &f->store, NULL, NULL, NULL, &f->iot),
                     0);
    char names[17][8];
    for (size_t i = 0; i < 17; i++) {
        snprintf(names[i], sizeof(names[i]), "p%zu", i);
        same[i] = (struct gw_iot_set){names[i], GW_IOT_H_INT, "1"};
    }
    assert_false(gw_iot_control_check(f->iot, ops, both, 2, same, 16, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_FOUND); /* 32: checked further */
    assert_false(gw_iot_control_check(f->iot, ops, both, 2, same, 17, &r));
    assert_int_equal(r.code, GW_IOT_CTL_LIMIT);
    assert_non_null(strstr(r.text, "34 writes"));
    free(many);
    free(same);
}

/* Serial links: 1200 baud 8E1 (9.17 ms a character); rtu-over-tcp costed at
 * 19200 8E1 plus the link's delay before every request. */
static const char BUS_MAP[] =
    "links:\n"
    "  - name: slow\n"
    "    type: rtu\n"
    "    device: /dev/null\n"
    "    baud: 1200\n"
    "    units:\n"
    "      - name: s1\n"
    "        id: 1\n"
    "        points:\n"
    "          - {name: a, table: holding, address: 0, writable: true}\n"
    "          - {name: b, table: holding, address: 1, writable: true}\n"
    "          - {name: c, table: holding, address: 2, writable: true}\n"
    "          - {name: d, table: holding, address: 3, writable: true}\n"
    "          - {name: e, table: holding, address: 4, writable: true}\n"
    "          - {name: v, table: holding, address: 5, writable: true,\n"
    "             verify: true}\n"
    "  - name: gwy\n"
    "    type: rtu-over-tcp\n"
    "    host: 127.0.0.1\n"
    "    delay: 500ms\n"
    "    units:\n"
    "      - name: r1\n"
    "        id: 1\n"
    "        points:\n"
    "          - {name: a, table: holding, address: 0, writable: true}\n"
    "          - {name: b, table: holding, address: 1, writable: true}\n"
    "  - name: net\n"
    "    type: tcp\n"
    "    host: 127.0.0.1\n"
    "    delay: 500ms\n"
    "    units:\n"
    "      - name: t1\n"
    "        id: 1\n"
    "        points:\n"
    "          - {name: a, table: holding, address: 0, writable: true}\n"
    "          - {name: b, table: holding, address: 1, writable: true}\n"
    "          - {name: c, table: holding, address: 2, writable: true}\n"
    "          - {name: d, table: holding, address: 3, writable: true}\n"
    "          - {name: e, table: holding, address: 4, writable: true}\n";

static int setup_bus(void **state)
{
    return setup_map(state, BUS_MAP, NULL);
}

static void test_control_bus_time(void **state)
{
    struct fx *f = *state;
    const char *ops = "ops@example.org/console";
    size_t s1 = node_of(f, "s1"), r1 = node_of(f, "r1"), t1 = node_of(f, "t1");
    struct gw_iot_ctl_result r;
    struct gw_iot_set p[] = {
        {"a", GW_IOT_H_INT, "1"}, {"b", GW_IOT_H_INT, "1"},
        {"c", GW_IOT_H_INT, "1"}, {"d", GW_IOT_H_INT, "1"},
        {"e", GW_IOT_H_INT, "1"}, {"v", GW_IOT_H_INT, "1"}};
    /* A write at 1200 baud: FC06 (costed as 24 characters with the
     * silence) and the re-read (22): about 0.42 s.  4 fit in 2 s, 5 not. */
    assert_false(gw_iot_control_check(f->iot, ops, &s1, 1, p, 4, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_IMPLEMENTED);
    assert_false(gw_iot_control_check(f->iot, ops, &s1, 1, p, 5, &r));
    assert_int_equal(r.code, GW_IOT_CTL_LIMIT);
    assert_non_null(strstr(r.text, "serial link slow"));
    assert_non_null(strstr(r.text, "about 2.1"));
    assert_non_null(strstr(r.text, "limit 2.00 s"));
    /* rtu-over-tcp: the link's delay before the write and the re-read. */
    assert_false(gw_iot_control_check(f->iot, ops, &r1, 1, p, 1, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_IMPLEMENTED);
    assert_false(gw_iot_control_check(f->iot, ops, &r1, 1, p, 2, &r));
    assert_int_equal(r.code, GW_IOT_CTL_LIMIT);
    assert_non_null(strstr(r.text, "serial link gwy"));
    /* Modbus TCP has no shared line: no estimate. */
    assert_false(gw_iot_control_check(f->iot, ops, &t1, 1, p, 5, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_IMPLEMENTED);
    /* Other bounds from the options.  A verify point costs one read more:
     * a b c d = 4 x 0.42 s fit in 1.8 s, a b c v (0.42 x 3 + 0.62) not. */
    gw_iot_free(f->iot);
    struct gw_iot_opts o = {.control_max_bus_ms = 1800};
    assert_int_equal(gw_iot_new(f->cfg, &f->store, NULL, NULL, &o, &f->iot), 0);
    assert_false(gw_iot_control_check(f->iot, ops, &s1, 1, p, 4, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_IMPLEMENTED);
    struct gw_iot_set pv[] = {p[0], p[1], p[2], p[5]};
    assert_false(gw_iot_control_check(f->iot, ops, &s1, 1, pv, 4, &r));
    assert_int_equal(r.code, GW_IOT_CTL_LIMIT);
    gw_iot_free(f->iot);
    o.control_max_bus_ms = 500;
    assert_int_equal(gw_iot_new(f->cfg, &f->store, NULL, NULL, &o, &f->iot), 0);
    assert_false(gw_iot_control_check(f->iot, ops, &s1, 1, p, 1, &r));
    assert_int_equal(r.code, GW_IOT_CTL_NOT_IMPLEMENTED);
    assert_false(gw_iot_control_check(f->iot, ops, &s1, 1, p, 2, &r));
    assert_int_equal(r.code, GW_IOT_CTL_LIMIT);
    assert_non_null(strstr(r.text, "limit 0.50 s"));
}

/* ---- refusals as audit events ------------------------------------------- */

static size_t lines_with(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_refusal_audit(void **state)
{
    struct fx *f = *state;
    gw_iot_free(f->iot);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    struct gw_log log = {.level = GW_LOG_INFO, .out = out};
    struct gw_iot_opts o = {.audit_window_ms = 200};
    assert_int_equal(gw_iot_new(f->cfg, &f->store, NULL, &log, &o, &f->iot), 0);
    /* Five refusals of one kind from one sender (any resource): one line. */
    for (int i = 0; i < 5; i++)
        gw_iot_refused(f->iot,
                       i % 2 ? "evil@example.com/a" : "EVIL@example.com/b",
                       "control", "try %d", i);
    /* Another kind, another sender: lines of their own. */
    gw_iot_refused(f->iot, "evil@example.com/a", "readout", "seqnr 1: no");
    gw_iot_refused(f->iot, "other@example.com/a", "control", "no");
    fflush(out);
    assert_int_equal(lines_with(buf, " refused: "), 3);
    assert_non_null(
        strstr(buf, "control from EVIL@example.com/b refused: try 0"));
    assert_non_null(strstr(buf, "readout from evil@example.com/a refused: "));
    assert_null(strstr(buf, "try 1"));
    /* After the window: the count of the suppressed ones, then the new
     * refusal. */
    usleep(250 * 1000);
    gw_iot_refused(f->iot, "evil@example.com/a", "control", "try 5");
    fflush(out);
    assert_non_null(strstr(buf, "control from EVIL@example.com: 4 more "
                                "refusal(s) not logged"));
    assert_non_null(strstr(buf, "refused: try 5"));
    /* A flood of distinct senders: GW_IOT_AUDIT_LINES_MAX lines per window
     * in all, then one line with the count. */
    usleep(250 * 1000);
    gw_iot_refused(f->iot, "x@example.com", "control", "flush");
    fclose(out);
    free(buf);
    out = open_memstream(&buf, &len);
    log.out = out;
    usleep(250 * 1000);
    for (int i = 0; i < 100; i++) {
        char jid[64];
        snprintf(jid, sizeof(jid), "bot%d@example.net/r", i);
        gw_iot_refused(f->iot, jid, "concentrator", "getNodes: no");
    }
    fflush(out);
    assert_int_equal(lines_with(buf, " refused: "), GW_IOT_AUDIT_LINES_MAX);
    usleep(250 * 1000);
    gw_iot_free(f->iot); /* flushes the counts */
    f->iot = NULL;
    fflush(out);
    assert_non_null(strstr(buf, "68 refusal(s) not logged: more than 32"));
    fclose(out);
    free(buf);
    assert_int_equal(gw_iot_new(f->cfg, &f->store, NULL, NULL, NULL, &f->iot),
                     0);
}

/* A point that never had a good value but answers with an exception (a
 * learnt hole) is a field with QoS error, not left out. */
static void test_hole_field(void **state)
{
    struct fx *f = *state;
    int64_t now = gw_now_ms();
    size_t m1 = node_of(f, "m1");
    gw_store_set_error(&f->store, 0, 0, 5, GW_Q_EXCEPTION, GW_EMBEXC, 2, now);
    gw_store_set_error(&f->store, 0, 0, 0, GW_Q_TIMEOUT, GW_ETIMEOUT, 0, now);
    struct fields c = {0};
    assert_int_equal(gw_iot_node_fields(f->iot, m1, NULL, now, collect, &c), 0);
    const struct gw_iot_field *p = find_field(&c, "count", GW_IOT_T_MOMENTARY);
    assert_non_null(p);
    assert_int_equal(p->qos, GW_IOT_Q_ERROR);
    assert_int_equal(p->vtype, GW_IOT_V_STRING);
    assert_string_equal(p->value, "Modbus exception 02 illegal data address");
    assert_int_equal(p->ts_ms, now);
    assert_true(p->writable);
    /* A timeout without a good value still gives no field. */
    assert_null(find_field(&c, "power", GW_IOT_T_ALL));
}

static void test_control_params(void **state)
{
    struct fx *f = *state;
    size_t m1 = node_of(f, "m1");
    struct gw_iot_ctl_param p;
    assert_true(gw_iot_node_control(f->iot, m1, "setpoint", &p));
    assert_int_equal(p.kind, GW_IOT_H_DOUBLE);
    assert_true(p.has_min && p.has_max);
    assert_true(p.min == 5.0 && p.max == 30.0);
    assert_false(p.has_value);
    assert_true(gw_iot_node_control(f->iot, m1, "count", &p));
    assert_int_equal(p.kind, GW_IOT_H_INT);
    assert_true(p.min == 0.0 && p.max == 65535.0);
    assert_true(gw_iot_node_control(f->iot, m1, "mode", &p));
    assert_int_equal(p.kind, GW_IOT_H_STRING);
    assert_int_equal(p.n_labels, 2);
    set_uint(f, 0, 0, 3, 0, gw_now_ms());
    assert_true(gw_iot_node_control(f->iot, m1, "mode", &p));
    assert_true(p.has_value);
    assert_string_equal(p.value, "off");
    assert_true(gw_iot_node_control(f->iot, m1, "relay", &p));
    assert_int_equal(p.kind, GW_IOT_H_BOOLEAN);
    assert_false(gw_iot_node_control(f->iot, m1, "power", &p)); /* read-only */
    assert_false(gw_iot_node_control(f->iot, 1, "setpoint", &p)); /* link */
}

/* ---- parameters, messages, commands ------------------------------------ */

static const struct gw_iot_param *param(const struct gw_iot_param *ps, size_t n,
                                        const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ps[i].id, id) == 0)
            return &ps[i];
    return NULL;
}

static void test_params_messages_commands(void **state)
{
    struct fx *f = *state;
    size_t m2 = node_of(f, "m2");
    struct gw_iot_param ps[GW_IOT_MAX_PARAMS];
    f->store.links[0].units[1].c.requests = 9;
    size_t n = gw_iot_node_params(f->iot, m2, ps, GW_IOT_MAX_PARAMS);
    assert_string_equal(param(ps, n, "link")->value, "plant");
    assert_string_equal(param(ps, n, "unitId")->value, "2");
    assert_int_equal(param(ps, n, "unitId")->type, GW_IOT_P_INT);
    assert_string_equal(param(ps, n, "requests")->value, "9");
    assert_null(param(ps, n, "template"));
    n = gw_iot_node_params(f->iot, 1, ps, GW_IOT_MAX_PARAMS);
    assert_string_equal(param(ps, n, "host")->value, "127.0.0.1");
    assert_string_equal(param(ps, n, "port")->value, "1502");
    assert_int_equal(gw_iot_node_params(f->iot, m2, ps, 2), 2);
    struct gw_iot_message m;
    assert_false(gw_iot_node_message(f->iot, m2, &m));
    /* Offline with no error of its own: the link is down. */
    gw_store_set_unit_status(&f->store, 0, 1, GW_UNIT_OFFLINE, 4);
    assert_true(gw_iot_node_message(f->iot, m2, &m));
    assert_string_equal(m.text, "unit m2 (id 2): link plant is not connected");
    gw_store_set_unit_status(&f->store, 0, 1, GW_UNIT_ONLINE, 4);
    assert_false(gw_iot_node_message(f->iot, m2, &m));
    f->store.links[0].units[1].last_err = GW_ETIMEOUT;
    gw_store_set_unit_status(&f->store, 0, 1, GW_UNIT_OFFLINE, 5);
    assert_true(gw_iot_node_message(f->iot, m2, &m));
    assert_true(m.error);
    assert_string_equal(m.text, "unit m2 (id 2): timed out");
    const struct gw_iot_command *cmds;
    assert_int_equal(gw_iot_node_commands(f->iot, m2, &cmds), 2);
    assert_string_equal(cmds[0].id, "readNow");
    assert_int_equal(gw_iot_node_command(f->iot, "ops@example.org", m2, "x"),
                     GW_ENOTFOUND);
    assert_int_equal(
        gw_iot_node_command(f->iot, "viewer@example.org", m2, "resetBackoff"),
        GW_EFORBIDDEN);
    assert_int_equal(
        gw_iot_node_command(f->iot, "nobody@example.org", m2, "readNow"),
        GW_EFORBIDDEN);
    assert_int_equal(
        gw_iot_node_command(f->iot, "viewer@example.org", m2, "readNow"),
        GW_EUNSUPPORTED); /* no engine here */
}

/* ---- history ------------------------------------------------------------ */

static void test_history(void **state)
{
    struct fx *f = *state;
    size_t m1 = node_of(f, "m1");
    for (int i = 0; i < 5; i++)
        set_double(f, 0, 0, 0, 10.0 + i, 1000 * (i + 1));
    assert_int_equal(gw_iot_history_count(f->iot, 0, 0, 0), 3); /* ring of 3 */
    assert_int_equal(gw_iot_history_count(f->iot, 0, 0, 2), 0);
    /* The same value again adds nothing (the store reports no change). */
    set_double(f, 0, 0, 0, 14.0, 6000);
    assert_int_equal(gw_iot_history_count(f->iot, 0, 0, 0), 3);
    const char *names[] = {"power"};
    struct gw_iot_filter flt = {
        .types = GW_IOT_T_HISTORICAL, .fields = names, .n_fields = 1};
    struct fields c = {0};
    gw_iot_node_fields(f->iot, m1, &flt, 10000, collect, &c);
    assert_int_equal(c.n, 3); /* oldest first: 12, 13, 14 */
    assert_string_equal(c.f[0].value, "12.0");
    assert_int_equal(c.f[0].ts_ms, 3000);
    assert_string_equal(c.f[2].value, "14.0");
    assert_int_equal(c.f[2].types, GW_IOT_T_HISTORICAL);
    struct fields w = {0};
    flt.from_ms = 3500;
    flt.to_ms = 4500;
    gw_iot_node_fields(f->iot, m1, &flt, 10000, collect, &w);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.f[0].value, "13.0");
    /* Not asked for: none. */
    struct fields d = {0};
    gw_iot_node_fields(f->iot, m1, NULL, 10000, collect, &d);
    for (size_t i = 0; i < d.n; i++)
        assert_int_equal(d.f[i].types & GW_IOT_T_HISTORICAL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_info_and_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_status_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_and_link_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quality_to_qos, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readout_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readout_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_validation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_control_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_bus_time, setup_bus,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refusal_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hole_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_messages_commands, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_history, setup_hist, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
