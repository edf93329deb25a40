/* test_cfg.c - the device map loader (config/cfg_*.c).
 *
 * A full map resolves to exactly the expected model; every error kind is
 * reported alone with its line, column, key path and message; one fixture
 * with every kind yields all of them in one run; the YAML layer refuses
 * aliases, anchors, duplicate keys and deep nesting; the shipped example
 * map loads without errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"
#include "cfg_int.h"
#include "gw_err.h"

/* ---- helpers ------------------------------------------------------------- */

static const struct cfg_link *find_link(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_links; i++) {
        if (strcmp(cfg->links[i].name, name) == 0)
            return &cfg->links[i];
    }
    fail_msg("no link %s", name);
    return NULL;
}

static const struct cfg_unit *find_unit(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_links; i++) {
        for (size_t j = 0; j < cfg->links[i].n_units; j++) {
            if (strcmp(cfg->links[i].units[j].name, name) == 0)
                return &cfg->links[i].units[j];
        }
    }
    fail_msg("no unit %s", name);
    return NULL;
}

static const struct cfg_point *find_point(const struct cfg_unit *u,
                                          const char *name)
{
    for (size_t i = 0; i < u->n_points; i++) {
        if (strcmp(u->points[i].name, name) == 0)
            return &u->points[i];
    }
    fail_msg("no point %s in %s", name, u->name);
    return NULL;
}

static void dump_errors(const struct cfg_errors *errs)
{
    cfg_errors_print(errs, stderr);
}

/* Loads text; expects failure and exactly one error. */
struct one {
    const char *yaml;
    unsigned line, col;
    const char *path; /* exact */
    const char *msg;  /* substring */
};

static void expect_one(const struct one *c)
{
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc = cfg_load_buffer("t.yaml", c->yaml, strlen(c->yaml), &cfg, &errs);
    if (errs.n != 1 || rc != GW_ECONFIG) {
        fprintf(stderr, "--- for:\n%s--- got rc %d:\n", c->yaml, rc);
        dump_errors(&errs);
    }
    assert_int_equal(rc, GW_ECONFIG);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    const struct cfg_error *e = &errs.items[0];
    if (e->mark.line != c->line || e->mark.col != c->col ||
        strcmp(e->path, c->path) != 0 || !strstr(e->message, c->msg)) {
        fprintf(stderr, "--- for:\n%s--- want %u:%u %s: ...%s...\n", c->yaml,
                c->line, c->col, c->path, c->msg);
        dump_errors(&errs);
    }
    assert_int_equal(e->mark.line, c->line);
    assert_int_equal(e->mark.col, c->col);
    assert_string_equal(e->path, c->path);
    assert_non_null(strstr(e->message, c->msg));
    cfg_errors_close(&errs);
}

/* A valid link and unit; point lines follow from line 9 on, indented by
 * 10 spaces ("          - name: p"). */
#define HEAD                                                                   \
    "links:\n"                                                                 \
    "  - name: l\n"                                                            \
    "    type: tcp\n"                                                          \
    "    host: h\n"                                                            \
    "    units:\n"                                                             \
    "      - name: u\n"                                                        \
    "        id: 1\n"                                                          \
    "        points:\n"
#define PT "          - name: p\n"
#define KV "            " /* a point key's indentation: values at col 13 */

/* ---- xmpp: and access: ----------------------------------------------------
 */

static void test_xmpp_access(void **state)
{
    (void)state;
    static const char yaml[] = HEAD "xmpp:\n"
                                    "  jid: gw@example.org\n"
                                    "  password_file: pw\n"
                                    "  tls: direct\n"
                                    "  host: 127.0.0.1\n"
                                    "  port: 5333\n"
                                    "  insecure_server: EXAMPLE.org\n"
                                    "  sasl_mechanisms: [SCRAM-SHA-1, PLAIN]\n"
                                    "  allow_plain: true\n"
                                    "  keepalive: 90s\n"
                                    "  status: hello\n"
                                    "access:\n"
                                    "  readers: [a@example.org, example.net]\n"
                                    "  controllers: [ops@example.org]\n";
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc = cfg_load_buffer("t.yaml", yaml, strlen(yaml), &cfg, &errs);
    if (rc != GW_OK)
        dump_errors(&errs);
    assert_int_equal(rc, GW_OK);
    const struct cfg_xmpp *x = &cfg->xmpp;
    assert_true(x->present);
    assert_string_equal(x->jid, "gw@example.org");
    assert_string_equal(x->password_file, "pw");
    assert_null(x->password);
    assert_int_equal(x->tls, CFG_TLS_DIRECT);
    assert_string_equal(x->host, "127.0.0.1");
    assert_int_equal(x->port, 5333);
    assert_string_equal(x->insecure_server, "EXAMPLE.org");
    assert_int_equal(x->sasl_mechanisms, CFG_SASL_SCRAM_SHA_1 | CFG_SASL_PLAIN);
    assert_true(x->allow_plain);
    assert_int_equal(x->keepalive_ms, 90000);
    assert_int_equal(x->ping_timeout_ms, 30000);
    assert_int_equal(x->reconnect_min_ms, 1000);
    assert_int_equal(x->reconnect_max_ms, 300000);
    assert_int_equal(x->stanza_max, 262144);
    assert_string_equal(x->status, "hello");
    assert_int_equal(x->control_max_age_ms, 60000);
    assert_int_equal(x->control_max_writes, 32);
    assert_int_equal(x->control_max_bus_ms, 2000);
    assert_int_equal(cfg->store.history, 0);
    assert_int_equal(cfg->store.fresh_ms, 0);
    assert_int_equal(cfg->access.n_readers, 2);
    assert_string_equal(cfg->access.readers[1], "example.net");
    assert_int_equal(cfg->access.n_controllers, 1);
    assert_string_equal(cfg->access.controllers[0], "ops@example.org");
    cfg_free(cfg);
    cfg_errors_close(&errs);

    /* store: */
    static const char store_yaml[] = HEAD "store:\n  history: 500\n"
                                          "  fresh: 2s\n";
    cfg_errors_init(&errs);
    assert_int_equal(
        cfg_load_buffer("t.yaml", store_yaml, strlen(store_yaml), &cfg, &errs),
        GW_OK);
    assert_int_equal(cfg->store.history, 500);
    assert_int_equal(cfg->store.fresh_ms, 2000);
    cfg_free(cfg);
    cfg_errors_close(&errs);

    /* Without the section: no session. */
    cfg = NULL;
    cfg_errors_init(&errs);
    assert_int_equal(cfg_load_buffer("t.yaml", HEAD, strlen(HEAD), &cfg, &errs),
                     GW_OK);
    assert_false(cfg->xmpp.present);
    assert_int_equal(cfg->access.n_readers, 0);
    cfg_free(cfg);
    cfg_errors_close(&errs);

#define XH HEAD "xmpp:\n  jid: gw@example.org\n"
    static const struct one cases[] = {
        {HEAD "xmpp:\n  jid: gw@example.org/r\n  password: x\n", 10, 8,
         "xmpp.jid", "is not a bare JID"},
        {XH "  password: x\n  password_file: f\n", 11, 13, "xmpp.password",
         "not both"},
        {XH, 10, 3, "xmpp", "missing key 'password_file'"},
        {XH "  password: x\n  insecure_server: other.org\n", 12, 20,
         "xmpp.insecure_server", "is not the JID's server"},
        {XH "  password: x\n  sasl_mechanisms: [SCRAM-MD5]\n", 12, 20,
         "xmpp.sasl_mechanisms", "unknown mechanism 'SCRAM-MD5'"},
        {XH "  password: x\n  sasl_mechanisms: [PLAIN]\n", 12, 20,
         "xmpp.sasl_mechanisms", "PLAIN is listed but allow_plain is false"},
        {XH "  password: x\n  reconnect_min: 10m\n  reconnect_max: 1m\n", 12,
         18, "xmpp.reconnect_min", "larger than reconnect_max"},
        {XH "  password: x\n  tls: ssl\n", 12, 8, "xmpp.tls", "ssl"},
        {XH "  password: x\n  stanza_max: 100\n", 12, 15, "xmpp.stanza_max",
         "out of range"},
        {XH "  password: x\naccess:\n  readers: [a/b]\n", 13, 12,
         "access.readers", "neither a bare JID"},
        {HEAD "access:\n  readers: [a@b.c]\n", 10, 3, "access",
         "without an xmpp section"},
        {XH "  password: x\n  control_max_age: 0s\n", 12, 20,
         "xmpp.control_max_age", "out of range"},
        {XH "  password: x\n  control_max_writes: 0\n", 12, 23,
         "xmpp.control_max_writes", "out of range"},
        {XH "  password: x\n  control_max_writes: 1025\n", 12, 23,
         "xmpp.control_max_writes", "out of range"},
        {XH "  password: x\n  control_max_writes: many\n", 12, 23,
         "xmpp.control_max_writes", "many"},
        {XH "  password: x\n  control_max_bus_time: 5ms\n", 12, 25,
         "xmpp.control_max_bus_time", "out of range"},
        {XH "  password: x\n  control_max_bus_time: 2\n", 12, 25,
         "xmpp.control_max_bus_time", "needs a unit"},
        {XH "  password: x\n  control_max_bus_time: 11m\n", 12, 25,
         "xmpp.control_max_bus_time", "out of range"},
        {HEAD "store:\n  history: -1\n", 10, 12, "store.history",
         "out of range"},
        {HEAD "store:\n  histroy: 5\n", 10, 3, "store.histroy", "unknown key"},
    };
#undef XH
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_one(&cases[i]);
}

/* ---- the full model ------------------------------------------------------ */

static void test_full_model(void **state)
{
    (void)state;
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc = cfg_load(FG_TEST_DATA "/cfg_full.yaml", &cfg, &errs);
    if (rc != GW_OK)
        dump_errors(&errs);
    assert_int_equal(rc, GW_OK);
    assert_int_equal(errs.n, 0);
    assert_non_null(cfg);
    assert_string_equal(cfg->path, FG_TEST_DATA "/cfg_full.yaml");

    /* poll groups: "default" first (redefined to 2s), then file order */
    assert_int_equal(cfg->n_poll_groups, 3);
    assert_string_equal(cfg->poll_groups[0].name, "default");
    assert_int_equal(cfg->poll_groups[0].interval_ms, 2000);
    assert_string_equal(cfg->poll_groups[1].name, "fast");
    assert_int_equal(cfg->poll_groups[1].interval_ms, 250);
    assert_string_equal(cfg->poll_groups[2].name, "slow");
    assert_int_equal(cfg->poll_groups[2].interval_ms, 90000);
    assert_int_equal(cfg->poll_groups[1].mark.line, 3);

    /* the template, as written (address_base not applied) */
    assert_int_equal(cfg->n_templates, 1);
    const struct cfg_template *t = &cfg->templates[0];
    assert_string_equal(t->name, "meter");
    assert_string_equal(t->description, "A meter");
    assert_int_equal(t->n_points, 4);
    assert_int_equal(t->points[0].address, 10);
    assert_string_equal(t->points[0].order, "CDAB");
    assert_int_equal(t->points[3].table, CFG_TABLE_DISCRETE);
    assert_int_equal(t->points[3].address, 4);

    /* links */
    assert_int_equal(cfg->n_links, 3);
    const struct cfg_link *net = find_link(cfg, "net");
    assert_int_equal(net->type, CFG_LINK_TCP);
    assert_string_equal(net->host, "127.0.0.1");
    assert_int_equal(net->port, 1502);
    assert_null(net->device);
    assert_int_equal(net->timeout_ms, 2000);
    assert_int_equal(net->turnaround_ms, 50);
    assert_int_equal(net->delay_ms, 5);
    assert_int_equal(net->address_base, 1);
    assert_int_equal(net->n_units, 2);
    assert_int_equal(net->mark.line, 36);
    assert_int_equal(net->mark.col, 5);

    const struct cfg_link *serial = find_link(cfg, "serial");
    assert_int_equal(serial->type, CFG_LINK_RTU);
    assert_null(serial->host);
    assert_string_equal(serial->device, "/dev/ttyS1");
    assert_int_equal(serial->baud, 9600);
    assert_int_equal(serial->parity, CFG_PARITY_NONE);
    assert_int_equal(serial->data_bits, 7);
    assert_int_equal(serial->stop_bits, 2);
    assert_true(serial->rs485);
    assert_int_equal(serial->timeout_ms, 1000); /* default */
    assert_int_equal(serial->turnaround_ms, 0);
    assert_int_equal(serial->delay_ms, 0);
    assert_int_equal(serial->address_base, 0);

    const struct cfg_link *gw = find_link(cfg, "gw");
    assert_int_equal(gw->type, CFG_LINK_RTU_OVER_TCP);
    assert_string_equal(gw->host, "gw.local");
    assert_int_equal(gw->port, 502); /* default */
    assert_false(gw->rs485);

    /* xmpp: the control bounds */
    assert_true(cfg->xmpp.present);
    assert_int_equal(cfg->xmpp.control_max_age_ms, 90000);
    assert_int_equal(cfg->xmpp.control_max_writes, 8);
    assert_int_equal(cfg->xmpp.control_max_bus_ms, 1500);

    /* m1: every setting from the template */
    const struct cfg_unit *m1 = find_unit(cfg, "m1");
    assert_int_equal(m1->id, 0);
    assert_string_equal(m1->template_name, "meter");
    assert_string_equal(m1->description, "First meter");
    assert_int_equal(m1->timeout_ms, 400);
    assert_int_equal(m1->retries, 2);
    assert_int_equal(m1->max_registers, 60);
    assert_int_equal(m1->max_bits, 100);
    assert_int_equal(m1->max_gap, 3);
    assert_true(m1->single_register);
    assert_string_equal(m1->byte_order, "CDAB");
    assert_int_equal(m1->poll_group, 1); /* fast */
    assert_int_equal(m1->n_points, 4);
    /* template points with the link's address_base 1 */
    const struct cfg_point *p = find_point(m1, "volts");
    assert_int_equal(p->table, CFG_TABLE_HOLDING);
    assert_int_equal(p->address, 9);
    assert_int_equal(p->type, CFG_TYPE_FLOAT32);
    assert_int_equal(p->count, 2);
    assert_string_equal(p->order, "CDAB");
    assert_int_equal(p->poll_group, 1); /* the unit's group */
    assert_int_equal(p->decimals, -1);
    assert_true(p->scale == 1.0);
    assert_true(p->offset == 0.0);
    assert_false(p->writable);
    assert_int_equal(p->write_fc, CFG_WRITE_AUTO);
    assert_int_equal(p->mark.line, 20);
    p = find_point(m1, "total");
    assert_int_equal(p->address, 19);
    assert_int_equal(p->count, 4);
    assert_string_equal(p->order, "GHEFCDAB"); /* 64-bit from CDAB */
    p = find_point(m1, "temp");
    assert_string_equal(p->order, "AB"); /* 16-bit from CDAB */
    p = find_point(m1, "alarm");
    assert_int_equal(p->table, CFG_TABLE_DISCRETE); /* Modicon 10005 */
    assert_int_equal(p->address, 4); /* Modicon ignores address_base */
    assert_int_equal(p->type, CFG_TYPE_BOOL);
    assert_string_equal(p->order, "");

    /* m2: unit settings override the template */
    const struct cfg_unit *m2 = find_unit(cfg, "m2");
    assert_int_equal(m2->id, 255);
    assert_null(m2->description);
    assert_int_equal(m2->timeout_ms, 100);
    assert_int_equal(m2->retries, 0);
    assert_int_equal(m2->max_registers, 125);
    assert_int_equal(m2->max_bits, 2000);
    assert_int_equal(m2->max_gap, 0);
    assert_false(m2->single_register);
    assert_string_equal(m2->byte_order, "DCBA");
    assert_int_equal(m2->poll_group, 0);
    assert_int_equal(m2->n_points, 12); /* 4 from the template first */
    assert_string_equal(m2->points[0].name, "volts");
    assert_string_equal(m2->points[4].name, "mode");
    assert_string_equal(find_point(m2, "volts")->order, "DCBA");
    assert_string_equal(find_point(m2, "total")->order, "HGFEDCBA");
    assert_string_equal(find_point(m2, "temp")->order, "BA");

    p = find_point(m2, "mode");
    assert_int_equal(p->table, CFG_TABLE_HOLDING);
    assert_int_equal(p->address, 0); /* written 1, address_base 1 */
    assert_int_equal(p->type, CFG_TYPE_UINT16);
    assert_string_equal(p->order, "BA");
    assert_true(p->scale == 2.0);
    assert_true(p->offset == -1.0);
    assert_int_equal(p->decimals, 2);
    assert_string_equal(p->unit, "Hz");
    assert_string_equal(p->description, "Mode word");
    assert_true(p->writable);
    assert_true(p->has_min);
    assert_true(p->has_max);
    assert_true(p->min == -1.0);
    assert_true(p->max == 9.0);
    assert_int_equal(p->write_fc, CFG_WRITE_FC06);
    assert_true(p->verify);
    assert_int_equal(p->poll_group, 2); /* slow */
    assert_int_equal(p->n_labels, 2);
    assert_int_equal(p->labels[0].value, 1); /* sorted */
    assert_string_equal(p->labels[0].label, "one");
    assert_int_equal(p->labels[1].value, 3);
    assert_string_equal(p->labels[1].label, "three");

    p = find_point(m2, "mode_bit");
    assert_int_equal(p->type, CFG_TYPE_BIT);
    assert_int_equal(p->bit, 15);
    assert_int_equal(p->count, 1);
    assert_string_equal(p->order, "");
    assert_null(p->unit);
    assert_false(p->has_min);

    p = find_point(m2, "label");
    assert_int_equal(p->table, CFG_TABLE_INPUT);
    assert_int_equal(p->address, 99);
    assert_int_equal(p->type, CFG_TYPE_STRING);
    assert_int_equal(p->count, 10);
    assert_int_equal(p->packing, CFG_PACK_LO_ONLY);

    p = find_point(m2, "big");
    assert_int_equal(p->table, CFG_TABLE_HOLDING); /* 465536 */
    assert_int_equal(p->address, 65535);
    p = find_point(m2, "relay");
    assert_int_equal(p->table, CFG_TABLE_COIL); /* 9999 */
    assert_int_equal(p->address, 9998);
    assert_int_equal(p->type, CFG_TYPE_BOOL);
    assert_int_equal(p->write_fc, CFG_WRITE_FC15);
    p = find_point(m2, "wide");
    assert_int_equal(p->address, 65532);
    assert_int_equal(p->count, 4);
    assert_string_equal(p->order, "HGFEDCBA");
    p = find_point(m2, "bcd");
    assert_int_equal(p->table, CFG_TABLE_INPUT);
    assert_int_equal(p->address, 0);
    assert_int_equal(p->type, CFG_TYPE_BCD32);
    assert_string_equal(p->order, "BADC");

    /* vfd: link defaults, BADC derivations */
    const struct cfg_unit *vfd = find_unit(cfg, "vfd");
    assert_int_equal(vfd->id, 247);
    assert_null(vfd->template_name);
    assert_int_equal(vfd->timeout_ms, 1000); /* from the link */
    assert_int_equal(vfd->retries, 0);
    assert_int_equal(vfd->max_registers, 125);
    assert_int_equal(vfd->max_bits, 2000);
    assert_int_equal(vfd->max_gap, 0);
    assert_false(vfd->single_register);
    assert_string_equal(find_point(vfd, "speed")->order, "BA");
    assert_int_equal(find_point(vfd, "speed")->address, 0);
    assert_string_equal(find_point(vfd, "hours")->order, "BADCFEHG");

    /* events: the section, then the rules, key by key: point > unit >
     * template > events.defaults */
    const struct cfg_events *ev = &cfg->events;
    assert_true(ev->present);
    assert_string_equal(ev->service, "pubsub.example.org");
    assert_string_equal(ev->node_prefix, "site-1/");
    assert_int_equal(ev->access_model, CFG_AM_AUTHORIZE);
    assert_int_equal(ev->max_items, 5);
    assert_true(ev->persist_items);
    assert_int_equal(ev->notification_type, CFG_NOTIFY_NORMAL);
    assert_int_equal(ev->send_last, CFG_SEND_LAST_ON_SUB);
    assert_int_equal(ev->window, 64);
    assert_int_equal(ev->publish_timeout_ms, 30000);
    assert_int_equal(ev->delivery, CFG_DELIVERY_EVERY);
    assert_string_equal(ev->spool.dir, "/srv/fieldgate/spool");
    assert_int_equal(ev->spool.max_bytes, 256ull * 1024 * 1024);
    assert_int_equal(ev->spool.max_age_ms, 72u * 3600000u);
    assert_int_equal(ev->spool.fsync_ms, 0);
    assert_true(ev->defaults.enabled);
    assert_true(ev->defaults.deadband == 0);
    assert_int_equal(ev->defaults.min_interval_ms, 100);
    assert_int_equal(ev->defaults.max_interval_ms, 900000);
    assert_int_equal(cfg->warnings.n, 0);
    const struct cfg_event_rule *er = &find_point(m1, "volts")->events;
    assert_true(er->enabled);
    assert_true(er->deadband == 1 && er->deadband_percent);
    assert_int_equal(er->min_interval_ms, 2000);
    assert_int_equal(er->max_interval_ms, 900000);
    er = &find_point(m1, "alarm")->events; /* bool: no deadband */
    assert_true(er->deadband == 0 && !er->deadband_percent);
    assert_int_equal(er->min_interval_ms, 2000);
    er = &find_point(m2, "volts")->events;
    assert_false(er->enabled);
    assert_true(er->deadband == 1 && er->deadband_percent);
    assert_int_equal(er->min_interval_ms, 2000);
    assert_int_equal(er->max_interval_ms, 3600000);
    er = &find_point(m2, "mode")->events;
    assert_true(er->enabled);
    assert_true(er->deadband == 0.5 && !er->deadband_percent);
    assert_int_equal(er->min_interval_ms, 500);
    assert_int_equal(er->max_interval_ms, 600000);
    er = &find_point(m2, "mode_scaled")->events;
    assert_false(er->enabled);
    assert_true(er->deadband == 1 && er->deadband_percent);
    assert_true(find_point(m2, "label")->events.deadband == 0);
    assert_true(find_point(m2, "mode_bit")->events.deadband == 0);
    er = &find_point(vfd, "speed")->events;
    assert_true(er->enabled && er->deadband == 0);
    assert_int_equal(er->min_interval_ms, 100);
    assert_int_equal(er->max_interval_ms, 900000);
    /* the template as written: defaults + template + its point */
    assert_true(t->points[0].events.deadband_percent);
    assert_int_equal(t->points[0].events.min_interval_ms, 2000);

    /* heat: template points against a 0-based link */
    const struct cfg_unit *heat = find_unit(cfg, "heat");
    assert_int_equal(find_point(heat, "volts")->address, 10);
    assert_int_equal(find_point(heat, "alarm")->address, 4);
    assert_int_equal(heat->timeout_ms, 400); /* template > link */

    cfg_free(cfg);
    cfg_errors_close(&errs);
}

static void test_example_loads(void **state)
{
    (void)state;
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc =
        cfg_load(FG_SOURCE_DIR "/config/fieldgate.example.yaml", &cfg, &errs);
    if (rc != GW_OK)
        dump_errors(&errs);
    assert_int_equal(rc, GW_OK);
    assert_int_equal(errs.n, 0);
    assert_int_equal(cfg->n_links, 3);
    assert_int_equal(cfg->links[0].type, CFG_LINK_TCP);
    assert_int_equal(cfg->links[1].type, CFG_LINK_RTU);
    assert_int_equal(cfg->links[2].type, CFG_LINK_RTU_OVER_TCP);
    const struct cfg_unit *vfd = find_unit(cfg, "vfd-pump1");
    const struct cfg_point *sp = find_point(vfd, "speed_setpoint");
    assert_true(sp->writable);
    assert_int_equal(sp->table, CFG_TABLE_HOLDING);
    assert_int_equal(sp->address, 0);
    assert_true(find_point(vfd, "run")->writable);
    assert_int_equal(find_point(vfd, "run")->table, CFG_TABLE_COIL);
    assert_int_equal(find_unit(cfg, "meter-hvac")->n_points, 5);
    assert_int_equal(cfg->xmpp.control_max_writes, 32);
    assert_int_equal(cfg->xmpp.control_max_bus_ms, 2000);
    /* events: the shipped map checks without warnings */
    assert_true(cfg->events.present);
    assert_string_equal(cfg->events.service, "pubsub.xmpp.example.org");
    assert_int_equal(cfg->events.access_model, CFG_AM_WHITELIST);
    assert_int_equal(cfg->warnings.n, 0);
    const struct cfg_point *ei =
        find_point(find_unit(cfg, "meter-main"), "energy_import");
    assert_true(ei->events.deadband == 0.1 && !ei->events.deadband_percent);
    assert_int_equal(ei->events.min_interval_ms, 1000);
    assert_int_equal(ei->events.max_interval_ms, 900000);
    const struct cfg_point *v1 =
        find_point(find_unit(cfg, "meter-main"), "voltage_l1");
    assert_true(v1->events.deadband == 0.5 && v1->events.deadband_percent);
    assert_false(find_point(vfd, "firmware")->events.enabled);
    assert_int_equal(find_point(vfd, "state")->events.max_interval_ms, 600000);
    cfg_free(cfg);
    cfg_errors_close(&errs);
}

/* ---- the all-errors fixture ---------------------------------------------- */

static void test_all_errors(void **state)
{
    (void)state;
    static const struct {
        unsigned line, col;
        const char *path, *msg;
    } want[] = {
        {5, 15, "poll_groups[0].interval", "needs a unit"},
        {6, 11, "poll_groups[1].name", "duplicate poll group name 'fast'"},
        {9, 15, "poll_groups[2].interval", "duration '5x' has an unknown"},
        {12, 5, "templates[0].colour", "unknown key 'colour'"},
        {17, 11, "templates[1].name", "duplicate template name 'em24'"},
        {22, 11, "links[0].port", "expected an integer, got 'http'"},
        {23, 13, "links[0].device", "'device' is only for rtu links"},
        {27, 19, "links[0].units[0].template", "unknown template 'em99'"},
        {28, 15, "links[0].units[0].poll", "unknown poll group 'medium'"},
        {29, 24, "links[0].units[0].max_registers",
         "value 300 out of range 1..125"},
        {33, 19, "links[0].units[0].points[0].type",
         "unknown type 'flaot32' (expected one of bool, bit, int16"},
        {37, 23, "links[0].units[0].points[1].writable",
         "the input table is read-only"},
        {40, 22, "links[0].units[0].points[2].address",
         "ends past address 65535"},
        {46, 21, "links[0].units[0].points[3].length",
         "value 0 out of range 1..125"},
        {51, 20, "links[0].units[0].points[4].order",
         "order 'CDAB' has 4 letters; a 64-bit uint64 needs 8"},
        {56, 20, "links[0].units[0].points[5].order",
         "order 'ABCC' is not a permutation of ABCD"},
        {57, 19, "links[0].units[0].points[6].name",
         "duplicate point name 'b' in unit 'm1' (first at line 34)"},
        {66, 22, "links[0].units[0].points[8].address",
         "overlaps point 'g' (holding 300..301 float32) with a different "
         "layout"},
        {69, 22, "links[0].units[0].points[9].address",
         "address 25000 is not a Modicon address"},
        {72, 22, "links[0].units[0].points[10].address",
         "expected an integer, got a list"},
        {76, 19, "links[0].units[0].points[11].poll",
         "unknown poll group 'nope'"},
        {77, 11, "links[1].name", "duplicate link name 'plant'"},
        {79, 11, "links[1].host", "'host' is not allowed on an rtu link"},
        {82, 15, "links[1].units[0].name",
         "duplicate unit name 'm1' (first at line 25"},
        {83, 13, "links[1].units[0].id", "unit id 0 out of range 1..247"},
        {85, 13, "links[1].units[1].id", "value 300 out of range 0..255"},
        {86, 9, "links[1].units[2].id", "missing required key 'id'"},
        {87, 17, "links[1].units[2].points", "expected a list, got a mapping"},
        {88, 9, "links[1].units[3]", "expected a unit (a mapping), got a list"},
        {89, 5, "links[2].name", "missing required key 'name'"},
        {89, 5, "links[2].host", "a tcp link needs 'host'"},
        {91, 5, "links[2].port", "duplicate key 'port' (first at line 90)"},
        {93, 3, "events", "an events section needs an xmpp section"},
        {93, 12, "events.service", "leave 'service' out to publish to"},
        {94, 24, "events.node.access_model", "unknown access_model 'private'"},
        {95, 28, "events.defaults.min_interval",
         "min_interval 10s is longer than max_interval 5s"},
        {95, 61, "events.defaults.deadband", "deadband -1 is negative"},
    };
    size_t n = sizeof(want) / sizeof(want[0]);
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc = cfg_load(FG_TEST_DATA "/cfg_all_errors.yaml", &cfg, &errs);
    assert_int_equal(rc, GW_ECONFIG);
    assert_null(cfg);
    if (errs.n != n)
        dump_errors(&errs);
    assert_int_equal(errs.n, n);
    assert_string_equal(errs.file, FG_TEST_DATA "/cfg_all_errors.yaml");
    for (size_t i = 0; i < n; i++) {
        const struct cfg_error *e = &errs.items[i];
        if (e->mark.line != want[i].line || e->mark.col != want[i].col ||
            strcmp(e->path, want[i].path) != 0 ||
            !strstr(e->message, want[i].msg)) {
            fprintf(stderr, "error %zu: want %u:%u %s: ...%s...\n", i,
                    want[i].line, want[i].col, want[i].path, want[i].msg);
            dump_errors(&errs);
        }
        assert_int_equal(e->mark.line, want[i].line);
        assert_int_equal(e->mark.col, want[i].col);
        assert_string_equal(e->path, want[i].path);
        assert_non_null(strstr(e->message, want[i].msg));
    }
    cfg_errors_close(&errs);
}

/* ---- each error kind alone ------------------------------------------------
 */

static void test_schema_errors(void **state)
{
    (void)state;
    static const struct one cases[] = {
        /* unknown key, with a suggestion */
        {HEAD PT KV "address: 40001\n" KV "scael: 2\n", 11, 13,
         "links[0].units[0].points[0].scael",
         "unknown key 'scael' in a point (did you mean 'scale'?)"},
        /* unknown top-level section */
        {"links:\n  - {name: l, type: tcp, host: h}\nlinkz: []\n", 3, 1,
         "linkz", "unknown key 'linkz' in the device map (did you mean "},
        /* wrong types */
        {HEAD PT KV "address: forty\n", 10, 22,
         "links[0].units[0].points[0].address",
         "expected an integer, got 'forty'"},
        {HEAD PT KV "address: \"40001\"\n", 10, 22,
         "links[0].units[0].points[0].address",
         "expected an integer, got a quoted string"},
        {HEAD PT KV "address: 40001\n" KV "scale: {a: 1}\n", 11, 20,
         "links[0].units[0].points[0].scale",
         "expected a number, got a mapping"},
        {HEAD PT KV "address: 40001\n" KV "writable: yes\n", 11, 23,
         "links[0].units[0].points[0].writable",
         "expected true or false, got 'yes'"},
        {"links:\n  name: l\n", 2, 3, "links",
         "expected a list, got a mapping"},
        {"links:\n  - name: l\n    type: tcp\n    host: h\n    units: 5\n", 5,
         12, "links[0].units", "expected a list, got '5'"},
        {HEAD PT KV "address: 40001\n" KV "description:\n", 11, 25,
         "links[0].units[0].points[0].description",
         "expected a text value, got no value"},
        {HEAD PT KV "address: 40001\n" KV "unit: \"\"\n", 11, 19,
         "links[0].units[0].points[0].unit", "empty value"},
        /* out of range */
        {HEAD PT KV "address: 40001\n" KV "decimals: 16\n", 11, 23,
         "links[0].units[0].points[0].decimals", "value 16 out of range 0..15"},
        {HEAD PT KV "address: 40001\n" KV "type: bit\n" KV "bit: 16\n", 12, 18,
         "links[0].units[0].points[0].bit", "value 16 out of range 0..15"},
        {"links:\n  - name: l\n    type: tcp\n    host: h\n    port: 0\n", 5,
         11, "links[0].port", "value 0 out of range 1..65535"},
        {"links:\n  - name: l\n    type: tcp\n    host: h\n    port: -1\n", 5,
         11, "links[0].port", "value -1 out of range 1..65535"},
        {"links:\n  - name: l\n    type: tcp\n    host: h\n"
         "    timeout: 5ms\n",
         5, 14, "links[0].timeout", "duration 5ms out of range 10ms..1m"},
        {"links:\n  - name: l\n    type: tcp\n    host: h\n"
         "    address_base: 2\n",
         5, 19, "links[0].address_base", "value 2 out of range 0..1"},
        /* missing required keys */
        {HEAD PT KV "type: int16\n", 9, 13,
         "links[0].units[0].points[0].address",
         "missing required key 'address' in a point"},
        {"links:\n  - name: l\n    host: h\n", 2, 5, "links[0].type",
         "missing required key 'type' in a link"},
        /* bad names */
        {"links:\n  - name: bad name\n    type: tcp\n    host: h\n", 2, 11,
         "links[0].name", "invalid name 'bad name'"},
        {"links:\n  - name: _x\n    type: tcp\n    host: h\n", 2, 11,
         "links[0].name", "invalid name '_x'"},
        /* bad durations */
        {"poll_groups:\n  - name: g\n    interval: 1.5\n"
         "links:\n  - name: l\n    type: tcp\n    host: h\n",
         3, 15, "poll_groups[0].interval", "needs a unit"},
        {"poll_groups:\n  - name: g\n    interval: 0.5ms\n"
         "links:\n  - name: l\n    type: tcp\n    host: h\n",
         3, 15, "poll_groups[0].interval",
         "is not a whole number of milliseconds"},
        {"poll_groups:\n  - name: g\n    interval: fast\n"
         "links:\n  - name: l\n    type: tcp\n    host: h\n",
         3, 15, "poll_groups[0].interval", "is not a duration"},
        /* enum labels */
        {HEAD PT KV "address: 40001\n" KV "enum:\n" KV "  x: on\n", 12, 15,
         "links[0].units[0].points[0].enum.x", "enum keys must be integers"},
        {HEAD PT KV "address: 40001\n" KV "enum:\n" KV "  1: on\n" KV
                    "  0x1: one\n",
         13, 15, "links[0].units[0].points[0].enum.0x1",
         "enum value 1 is labelled twice"},
        /* empty or non-mapping document, no links */
        {"", 1, 1, "", "the device map is empty"},
        {"# only a comment\n", 1, 1, "", "the device map is empty"},
        {"- a\n- b\n", 1, 1, "", "the device map is a list"},
        {"42\n", 1, 1, "", "the device map is a single value"},
        {"poll_groups: []\n", 1, 1, "links", "no links: nothing to poll"},
        {"links: []\n", 1, 8, "links", "no links: nothing to poll"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_one(&cases[i]);
}

static void test_resolve_errors(void **state)
{
    (void)state;
    static const struct one cases[] = {
        /* address forms */
        {HEAD PT KV "address: 20000\n", 10, 22,
         "links[0].units[0].points[0].address",
         "address 20000 is not a Modicon address (1-9999 coil"},
        {HEAD PT KV "address: 0\n", 10, 22,
         "links[0].units[0].points[0].address",
         "or give 'table' and a plain offset"},
        {HEAD PT KV "table: holding\n" KV "address: 65536\n", 11, 22,
         "links[0].units[0].points[0].address",
         "address 65536 out of range 0..65535"},
        {HEAD PT KV "table: holding\n" KV "address: 65535\n" KV
                    "type: float64\n",
         11, 22, "links[0].units[0].points[0].address",
         "ends past address 65535 (it starts at 65535 and takes 4 "
         "registers)"},
        {HEAD PT KV "table: coil\n" KV "address: 65535\n", 0, 0, NULL, NULL},
        {HEAD PT KV "address: 465536\n" KV "type: int32\n", 10, 22,
         "links[0].units[0].points[0].address", "ends past address 65535"},
        /* types and tables */
        {HEAD PT KV "address: 1\n" KV "type: int16\n", 11, 19,
         "links[0].units[0].points[0].type",
         "type int16 is not allowed on the coil table"},
        {HEAD PT KV "address: 40001\n" KV "type: bool\n", 11, 19,
         "links[0].units[0].points[0].type",
         "type bool needs a coil or discrete table"},
        {HEAD PT KV "address: 40001\n" KV "type: bit\n", 9, 13,
         "links[0].units[0].points[0].bit", "type bit needs 'bit'"},
        {HEAD PT KV "address: 40001\n" KV "bit: 3\n", 11, 18,
         "links[0].units[0].points[0].bit", "'bit' is only for type bit"},
        {HEAD PT KV "address: 40001\n" KV "type: string\n", 9, 13,
         "links[0].units[0].points[0].length", "type string needs 'length'"},
        {HEAD PT KV "address: 40001\n" KV "length: 2\n", 11, 21,
         "links[0].units[0].points[0].length",
         "'length' is only for type string"},
        {HEAD PT KV "address: 40001\n" KV "packing: lo-hi\n", 11, 22,
         "links[0].units[0].points[0].packing",
         "'packing' is only for type string"},
        /* byte orders */
        {HEAD PT KV "address: 40001\n" KV "type: float64\n" KV "order: ABCD\n",
         12, 20, "links[0].units[0].points[0].order",
         "order 'ABCD' has 4 letters; a 64-bit float64 needs 8"},
        {HEAD PT KV "address: 40001\n" KV "type: int16\n" KV "order: ABCD\n",
         12, 20, "links[0].units[0].points[0].order",
         "a 16-bit int16 needs 2 (a permutation of AB)"},
        {HEAD PT KV "address: 40001\n" KV "type: int64\n" KV
                    "order: ABCDEFGG\n",
         12, 20, "links[0].units[0].points[0].order",
         "order 'ABCDEFGG' is not a permutation of ABCDEFGH"},
        {HEAD PT KV "address: 40001\n" KV "type: int32\n" KV "order: abcd\n",
         12, 20, "links[0].units[0].points[0].order",
         "is not a permutation of ABCD"},
        {HEAD PT KV "address: 40001\n" KV "type: bit\n" KV "bit: 1\n" KV
                    "order: AB\n",
         13, 20, "links[0].units[0].points[0].order",
         "'order' is not allowed on type bit"},
        /* scale */
        {HEAD PT KV "address: 40001\n" KV "scale: 0\n", 11, 20,
         "links[0].units[0].points[0].scale", "scale must not be 0"},
        {HEAD PT KV "address: 40001\n" KV "scale: .inf\n", 11, 20,
         "links[0].units[0].points[0].scale", "expected a number"},
        {HEAD PT KV "address: 40001\n" KV "scale: 1e999\n", 11, 20,
         "links[0].units[0].points[0].scale", "is not a finite number"},
        /* writing */
        {HEAD PT KV "address: 10001\n" KV "writable: true\n", 11, 23,
         "links[0].units[0].points[0].writable",
         "the discrete table is read-only"},
        {HEAD PT KV "address: 40001\n" KV "min: 3\n", 11, 18,
         "links[0].units[0].points[0].min",
         "'min' is only allowed with writable: true"},
        {HEAD PT KV "address: 40001\n" KV "verify: true\n", 11, 21,
         "links[0].units[0].points[0].verify",
         "'verify' is only allowed with writable: true"},
        {HEAD PT KV "address: 40001\n" KV "writable: true\n" KV "min: 5\n" KV
                    "max: 4\n",
         13, 18, "links[0].units[0].points[0].max",
         "min 5 is greater than max 4"},
        {HEAD PT KV "address: 40001\n" KV "writable: true\n" KV "write_fc: 5\n",
         12, 23, "links[0].units[0].points[0].write_fc",
         "write_fc 5 writes coils; this point is in the holding table"},
        {HEAD PT KV "address: 1\n" KV "writable: true\n" KV "write_fc: 16\n",
         12, 23, "links[0].units[0].points[0].write_fc",
         "write_fc 16 writes holding registers; this point is in the coil"},
        {HEAD PT KV "address: 40001\n" KV "type: uint32\n" KV
                    "writable: true\n" KV "write_fc: 6\n",
         13, 23, "links[0].units[0].points[0].write_fc",
         "write_fc 6 writes one register; a uint32 takes 2"},
        {HEAD PT KV "address: 40001\n" KV "writable: true\n" KV "write_fc: 3\n",
         12, 23, "links[0].units[0].points[0].write_fc",
         "unknown write_fc '3' (expected one of auto, 5, 6, 15, 16)"},
        {HEAD PT KV "address: 40001\n" KV "type: string\n" KV "length: 124\n" KV
                    "writable: true\n",
         13, 23, "links[0].units[0].points[0].writable",
         "at most 123 registers"},
        /* enum labels on the wrong type */
        {HEAD PT KV "address: 40001\n" KV "type: float32\n" KV "enum: {1: a}\n",
         12, 19, "links[0].units[0].points[0].enum",
         "enum labels are only for integer, bool, bit and bcd types"},
        /* references */
        {HEAD PT KV "address: 40001\n" KV "poll: nope\n", 11, 19,
         "links[0].units[0].points[0].poll", "unknown poll group 'nope'"},
        /* overlaps */
        {HEAD PT KV "address: 40001\n" KV "type: uint32\n"
                    "          - name: q\n" KV "address: 40002\n",
         13, 22, "links[0].units[0].points[1].address",
         "overlaps point 'p' (holding 0..1 uint32) with a different layout"},
        {HEAD PT KV "address: 40001\n" KV "type: uint32\n"
                    "          - name: q\n" KV "address: 40001\n" KV
                    "type: uint32\n" KV "order: CDAB\n",
         13, 22, "links[0].units[0].points[1].address", "overlaps point 'p'"},
        {HEAD PT KV "address: 40001\n" KV "type: string\n" KV "length: 2\n"
                    "          - name: q\n" KV "address: 40001\n" KV
                    "type: string\n" KV "length: 3\n",
         14, 22, "links[0].units[0].points[1].address", "overlaps point 'p'"},
        /* duplicates */
        {HEAD PT KV "address: 40001\n" PT KV "address: 40002\n", 11, 19,
         "links[0].units[0].points[1].name",
         "duplicate point name 'p' in unit 'u' (first at line 9)"},
        {"poll_groups:\n  - {name: default, interval: 1s}\n"
         "  - {name: default, interval: 2s}\n"
         "links:\n  - name: l\n    type: tcp\n    host: h\n",
         3, 12, "poll_groups[1].name", "duplicate poll group name 'default'"},
        /* links */
        {"links:\n  - name: l\n    type: rtu\n", 2, 5, "links[0].device",
         "an rtu link needs 'device'"},
        {"links:\n  - name: l\n    type: rtu-over-tcp\n", 2, 5, "links[0].host",
         "an rtu-over-tcp link needs 'host'"},
        {"links:\n  - name: l\n    type: rtu\n    device: /dev/x\n"
         "    port: 502\n",
         5, 11, "links[0].port", "'port' is not allowed on an rtu link"},
        {"links:\n  - name: l\n    type: tcp\n    host: h\n    baud: 9600\n", 5,
         11, "links[0].baud", "'baud' is only for rtu links"},
        {"links:\n  - name: l\n    type: rtu\n    device: /dev/x\n"
         "    baud: 12345\n",
         5, 11, "links[0].baud", "baud 12345 is not a standard rate"},
        {"links:\n  - name: l\n    type: udp\n", 3, 11, "links[0].type",
         "unknown type 'udp' (expected one of tcp, rtu, rtu-over-tcp)"},
        {"links:\n  - name: l\n    type: rtu-over-tcp\n    host: h\n"
         "    units:\n      - name: u\n        id: 248\n",
         7, 13, "links[0].units[0].id",
         "unit id 248 out of range 1..247 on an rtu-over-tcp link"},
        /* more duplicates and references */
        {"links:\n  - {name: l, type: tcp, host: h}\n"
         "  - {name: l, type: tcp, host: g}\n",
         3, 12, "links[1].name", "duplicate link name 'l' (first at line 2)"},
        {"links:\n  - {name: a, type: tcp, host: h, units: [{name: u, id: "
         "1}]}\n"
         "  - {name: b, type: tcp, host: g, units: [{name: u, id: 2}]}\n",
         3, 50, "links[1].units[0].name",
         "duplicate unit name 'u' (first at line 2; unit names are unique in "
         "the whole map)"},
        {"templates:\n  - {name: t}\n  - {name: t}\n"
         "links:\n  - {name: l, type: tcp, host: h}\n",
         3, 12, "templates[1].name",
         "duplicate template name 't' (first at line 2)"},
        {"links:\n  - {name: l, type: tcp, host: h, units: [{name: u, id: 1, "
         "template: nope}]}\n",
         2, 70, "links[0].units[0].template", "unknown template 'nope'"},
        {"links:\n  - {name: l, type: tcp, host: h, units: [{name: u, id: 1, "
         "poll: nope}]}\n",
         2, 66, "links[0].units[0].poll", "unknown poll group 'nope'"},
        {"links:\n  - {name: l, type: tcp, host: h, device: /dev/x}\n", 2, 43,
         "links[0].device", "'device' is only for rtu links"},
        {"links:\n  - {name: l, type: rtu, device: /dev/x, host: h}\n", 2, 48,
         "links[0].host", "'host' is not allowed on an rtu link"},
        {HEAD PT KV "address: 40001\n" KV "type: string\n" KV "length: 0\n", 12,
         21, "links[0].units[0].points[0].length",
         "value 0 out of range 1..125"},
        /* address_base 1 */
        {"links:\n  - name: l\n    type: tcp\n    host: h\n"
         "    address_base: 1\n    units:\n      - name: u\n        id: 1\n"
         "        points:\n          - name: p\n            table: coil\n"
         "            address: 0\n",
         12, 22, "links[0].units[0].points[0].address",
         "address 0 out of range 1..65536"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!cases[i].path) {
            /* a valid boundary case: coil 65535 is the last address */
            struct cfg_errors errs;
            cfg_errors_init(&errs);
            struct cfg *cfg = NULL;
            int rc = cfg_load_buffer("t.yaml", cases[i].yaml,
                                     strlen(cases[i].yaml), &cfg, &errs);
            if (rc != GW_OK)
                dump_errors(&errs);
            assert_int_equal(rc, GW_OK);
            assert_int_equal(cfg->links[0].units[0].points[0].address, 65535);
            cfg_free(cfg);
            cfg_errors_close(&errs);
            continue;
        }
        expect_one(&cases[i]);
    }
}

/* Overlaps that are allowed: bit views and identical layouts. */
static void test_allowed_overlaps(void **state)
{
    (void)state;
    const char *yaml =
        HEAD PT KV "address: 40001\n" KV "type: uint32\n"
                   "          - name: q\n" KV "address: 40002\n" KV
                   "type: bit\n" KV "bit: 4\n"
                   "          - name: r\n" KV "address: 40001\n" KV
                   "type: uint32\n" KV "scale: 0.5\n"
                   "          - name: s\n" KV "address: 40003\n";
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc = cfg_load_buffer("t.yaml", yaml, strlen(yaml), &cfg, &errs);
    if (rc != GW_OK)
        dump_errors(&errs);
    assert_int_equal(rc, GW_OK);
    assert_int_equal(cfg->links[0].units[0].n_points, 4);
    cfg_free(cfg);
    cfg_errors_close(&errs);
}

/* Identical layouts form one class; every point that conflicts with an
 * earlier point is reported, naming the earliest conflicting one. */
static void test_overlap_classes(void **state)
{
    (void)state;
    const char *yaml =
        HEAD "          - {name: p, address: 40001, type: uint32}\n"
             "          - {name: q, address: 40001, type: uint32, order: "
             "CDAB}\n"
             "          - {name: r, address: 40001, type: uint32, scale: 2}\n"
             "          - {name: s, address: 40003, type: int16}\n"
             "          - {name: t, address: 40001, type: bit, bit: 1}\n"
             "          - {name: u, address: 40002}\n"
             "          - {name: v, table: input, address: 0, type: "
             "uint32}\n";
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc = cfg_load_buffer("t.yaml", yaml, strlen(yaml), &cfg, &errs);
    assert_int_equal(rc, GW_ECONFIG);
    if (errs.n != 3)
        dump_errors(&errs);
    assert_int_equal(errs.n, 3);
    static const struct {
        unsigned line;
        const char *path, *msg;
    } want[] = {
        {10, "links[0].units[0].points[1].address",
         "overlaps point 'p' (holding 0..1 uint32)"},
        {11, "links[0].units[0].points[2].address",
         "overlaps point 'q' (holding 0..1 uint32)"},
        {14, "links[0].units[0].points[5].address",
         "overlaps point 'p' (holding 0..1 uint32)"},
    };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(errs.items[i].mark.line, want[i].line);
        assert_string_equal(errs.items[i].path, want[i].path);
        assert_non_null(strstr(errs.items[i].message, want[i].msg));
    }
    cfg_errors_close(&errs);
}

/* A problem in a template point is reported once, however many units use
 * the template; a name clash with a template point is found in the unit. */
static void test_template_errors(void **state)
{
    (void)state;
    const char *yaml = "templates:\n"
                       "  - name: t\n"
                       "    points:\n"
                       "      - name: a\n"
                       "        address: 40001\n"
                       "        type: int32\n"
                       "        order: ABC\n"
                       "links:\n"
                       "  - name: l\n"
                       "    type: tcp\n"
                       "    host: h\n"
                       "    units:\n"
                       "      - {name: u1, id: 1, template: t}\n"
                       "      - {name: u2, id: 2, template: t}\n"
                       "      - name: u3\n"
                       "        id: 3\n"
                       "        template: t\n"
                       "        points:\n"
                       "          - name: a\n"
                       "            address: 40010\n";
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc = cfg_load_buffer("t.yaml", yaml, strlen(yaml), &cfg, &errs);
    assert_int_equal(rc, GW_ECONFIG);
    if (errs.n != 2)
        dump_errors(&errs);
    assert_int_equal(errs.n, 2);
    assert_int_equal(errs.items[0].mark.line, 7);
    assert_string_equal(errs.items[0].path, "templates[0].points[0].order");
    assert_int_equal(errs.items[1].mark.line, 19);
    assert_string_equal(errs.items[1].path, "links[0].units[2].points[0].name");
    assert_non_null(strstr(errs.items[1].message,
                           "duplicate point name 'a' in unit 'u3' (first at "
                           "line 4)"));
    cfg_errors_close(&errs);
}

/* ---- the walker on its own: a new section is a table ------------------- */

struct t_inner {
    struct cfg__obj hdr;
    char *jid;
    uint64_t port;
    double ratio;
};

struct t_outer {
    struct cfg__obj hdr;
    void *inner; /* struct t_inner */
    struct cfg__strlist readers;
    int mode;
    uint32_t keepalive_ms;
    bool flag;
};

static const struct cfg__field t_inner_fields[] = {
    {.key = "jid",
     .kind = CFG__STRING,
     .offset = offsetof(struct t_inner, jid),
     .required = true},
    {.key = "port",
     .kind = CFG__UINT,
     .offset = offsetof(struct t_inner, port),
     .min = 1,
     .max = 65535,
     .def = "5222"},
    {.key = "ratio",
     .kind = CFG__DOUBLE,
     .offset = offsetof(struct t_inner, ratio)},
};
static const struct cfg__schema t_inner_schema = {
    "an account", sizeof(struct t_inner), t_inner_fields,
    sizeof(t_inner_fields) / sizeof(t_inner_fields[0])};

static const char *const t_modes[] = {"starttls", "direct", NULL};
static const struct cfg__field t_outer_fields[] = {
    {.key = "account",
     .kind = CFG__OBJECT,
     .offset = offsetof(struct t_outer, inner),
     .sub = &t_inner_schema},
    {.key = "readers",
     .kind = CFG__STRLIST,
     .offset = offsetof(struct t_outer, readers)},
    {.key = "mode",
     .kind = CFG__ENUM,
     .offset = offsetof(struct t_outer, mode),
     .names = t_modes,
     .def = "direct"},
    {.key = "keepalive",
     .kind = CFG__DURATION,
     .offset = offsetof(struct t_outer, keepalive_ms),
     .min = 1000,
     .max = 3600000,
     .def = "1m"},
    {.key = "flag",
     .kind = CFG__BOOL,
     .offset = offsetof(struct t_outer, flag)},
};
static const struct cfg__schema t_outer_schema = {
    "the section", sizeof(struct t_outer), t_outer_fields,
    sizeof(t_outer_fields) / sizeof(t_outer_fields[0])};

static void decode_text(const char *yaml, struct t_outer *out,
                        struct cfg_errors *errs)
{
    struct cfg__node *root = NULL;
    assert_int_equal(cfg__yaml_parse(yaml, strlen(yaml), &root, errs), GW_OK);
    assert_non_null(root);
    struct cfg__ctx ctx = {.errs = errs, .oom = false};
    memset(out, 0, sizeof(*out));
    cfg__decode(&ctx, &t_outer_schema, root, "sec", out);
    assert_false(ctx.oom);
    cfg__node_free(root);
}

static void test_walker_new_section(void **state)
{
    (void)state;
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct t_outer o;
    decode_text("account: {jid: gw@example.org, ratio: 0.5}\n"
                "readers: [ops@example.org, example.net]\n"
                "flag: true\n",
                &o, &errs);
    if (errs.n)
        dump_errors(&errs);
    assert_int_equal(errs.n, 0);
    const struct t_inner *in = o.inner;
    assert_non_null(in);
    assert_string_equal(in->jid, "gw@example.org");
    assert_int_equal(in->port, 5222); /* default */
    assert_true(in->ratio == 0.5);
    assert_string_equal(in->hdr.path, "sec.account");
    assert_int_equal(o.readers.n, 2);
    assert_string_equal(o.readers.items[1], "example.net");
    assert_int_equal(o.mode, 1);             /* default "direct" */
    assert_int_equal(o.keepalive_ms, 60000); /* default "1m" */
    assert_true(o.flag);
    assert_true(cfg__has(&t_outer_schema, &o, "flag"));
    assert_false(cfg__has(&t_outer_schema, &o, "mode")); /* defaulted */
    cfg__obj_free(&t_outer_schema, &o);
    assert_null(o.inner);

    /* every problem at once */
    decode_text("account: {port: 0}\n"
                "readers: [a, [b], \"\"]\n"
                "mode: tls\n"
                "keepalive: 10ms\n"
                "extra: 1\n",
                &o, &errs);
    static const struct {
        unsigned line, col;
        const char *path, *msg;
    } want[] = {
        {1, 10, "sec.account.jid", "missing required key 'jid' in an account"},
        {1, 17, "sec.account.port", "value 0 out of range 1..65535"},
        {2, 14, "sec.readers[1]", "expected a text value, got a list"},
        {2, 19, "sec.readers[2]", "expected a text value"},
        {3, 7, "sec.mode",
         "unknown mode 'tls' (expected one of starttls, "
         "direct)"},
        {4, 12, "sec.keepalive", "duration 10ms out of range 1s..1h"},
        {5, 1, "sec.extra",
         "unknown key 'extra' in the section (expected one "
         "of account, readers, mode, keepalive, flag)"},
    };
    cfg__errors_sort(&errs);
    if (errs.n != 7)
        dump_errors(&errs);
    assert_int_equal(errs.n, 7);
    for (size_t i = 0; i < 7; i++) {
        if (errs.items[i].mark.line != want[i].line ||
            errs.items[i].mark.col != want[i].col ||
            strcmp(errs.items[i].path, want[i].path) != 0 ||
            !strstr(errs.items[i].message, want[i].msg)) {
            fprintf(stderr, "error %zu: want %u:%u %s: %s\n", i, want[i].line,
                    want[i].col, want[i].path, want[i].msg);
            dump_errors(&errs);
        }
        assert_int_equal(errs.items[i].mark.line, want[i].line);
        assert_int_equal(errs.items[i].mark.col, want[i].col);
        assert_string_equal(errs.items[i].path, want[i].path);
        assert_non_null(strstr(errs.items[i].message, want[i].msg));
    }
    assert_true(cfg__is_bad(&t_outer_schema, &o, "mode"));
    assert_true(cfg__is_bad(&t_outer_schema, &o, "readers"));
    assert_int_equal(o.readers.n, 1); /* the valid one is kept */
    assert_true(((struct t_inner *)o.inner)->hdr.broken);
    cfg__obj_free(&t_outer_schema, &o);
    cfg_errors_close(&errs);
}

/* ---- the YAML layer ---------------------------------------------------- */

static void test_aliases_rejected(void **state)
{
    (void)state;
    static const struct one cases[] = {
        {"links:\n  - &l1\n    name: l\n    type: tcp\n    host: h\n"
         "  - *l1\n",
         2, 5, "links[0]", "anchors (&name) are not allowed"},
        {"a: &x 1\n", 1, 4, "a", "anchors (&name) are not allowed"},
        {"links: *x\n", 1, 8, "links", "aliases (*name) are not allowed"},
        {"links: !!seq []\n", 1, 8, "links", "tags (!name) are not allowed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_one(&cases[i]);

    /* A "billion laughs" document is refused at its first anchor. */
    const char *laughs = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                         "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                         "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                         "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n";
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    assert_int_equal(
        cfg_load_buffer("l.yaml", laughs, strlen(laughs), &cfg, &errs),
        GW_ECONFIG);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].mark.line, 1);
    cfg_errors_close(&errs);
}

static void test_yaml_errors(void **state)
{
    (void)state;
    static const struct one cases[] = {
        /* duplicate keys, at any level; the first value is used */
        {"poll_groups: []\nlinks:\n  - {name: l, type: tcp, host: h}\n"
         "poll_groups: []\n",
         4, 1, "poll_groups", "duplicate key 'poll_groups' (first at line 1)"},
        {"links:\n  - name: l\n    type: tcp\n    host: h\n    host: g\n", 5, 5,
         "links[0].host", "duplicate key 'host' (first at line 4)"},
        /* syntax */
        {"links: [\n", 2, 1, "links[0]", "YAML syntax error"},
        {"links:\n  - name: l\n   type: tcp\n", 3, 4, "links[1]",
         "YAML syntax error"},
        /* more than one document */
        {"links: []\n---\nlinks: []\n", 2, 1, "",
         "more than one YAML document"},
        /* complex keys */
        {"? [a]\n: 1\n", 1, 3, "", "a mapping key must be a plain value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_one(&cases[i]);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    /* 200 nested lists: refused at level 65, not by the stack. */
    char doc[512];
    size_t n = 0;
    n += (size_t)snprintf(doc, sizeof(doc), "links: ");
    for (int i = 0; i < 200; i++)
        doc[n++] = '[';
    for (int i = 0; i < 200; i++)
        doc[n++] = ']';
    doc[n++] = '\n';
    doc[n] = '\0';
    /* the top-level mapping is level 1, so the 64th '[' is refused */
    char path[CFG__PATH_MAX];
    size_t pn = (size_t)snprintf(path, sizeof(path), "links");
    for (int i = 0; i < 63; i++)
        pn += (size_t)snprintf(path + pn, sizeof(path) - pn, "[0]");
    struct one c = {doc, 1, 8 + 63, path, "nesting deeper than 64 levels"};
    expect_one(&c);

    /* 63 levels is allowed by the YAML layer (the schema then complains). */
    n = (size_t)snprintf(doc, sizeof(doc), "links: ");
    for (int i = 0; i < 62; i++)
        doc[n++] = '[';
    for (int i = 0; i < 62; i++)
        doc[n++] = ']';
    doc[n++] = '\n';
    doc[n] = '\0';
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    assert_int_equal(cfg_load_buffer("d.yaml", doc, n, &cfg, &errs),
                     GW_ECONFIG);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.items[0].message, "expected a link"));
    cfg_errors_close(&errs);
}

/* ---- files, limits and printing ------------------------------------------ */

static void test_files_and_limits(void **state)
{
    (void)state;
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    assert_int_equal(
        cfg_load(FG_TEST_DATA "/cfg_no_such_file.yaml", &cfg, &errs), GW_EIO);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].mark.line, 0);
    assert_non_null(strstr(errs.items[0].message, "cannot open"));
    cfg_errors_close(&errs);

    cfg_errors_init(&errs);
    assert_int_equal(cfg_load(FG_TEST_DATA, &cfg, &errs), GW_EIO);
    assert_non_null(strstr(errs.items[0].message, "is a directory"));
    cfg_errors_close(&errs);

    /* more than 16 MiB is refused before parsing */
    size_t big = CFG__MAX_FILE + 1;
    char *buf = malloc(big);
    assert_non_null(buf);
    memset(buf, '#', big);
    cfg_errors_init(&errs);
    assert_int_equal(cfg_load_buffer("big.yaml", buf, big, &cfg, &errs),
                     GW_ECONFIG);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.items[0].message, "larger than 16 MiB"));
    cfg_errors_close(&errs);
    free(buf);

    /* the error list stops growing after CFG__MAX_ERRORS */
    size_t cap = 64 + 1200 * 24;
    char *many = malloc(cap);
    assert_non_null(many);
    size_t n = (size_t)snprintf(many, cap, "links:\n");
    for (int i = 0; i < 1200; i++)
        n += (size_t)snprintf(many + n, cap - n, "  - {name: l, type: x}\n");
    cfg_errors_init(&errs);
    assert_int_equal(cfg_load_buffer("m.yaml", many, n, &cfg, &errs),
                     GW_ECONFIG);
    assert_int_equal(errs.n, CFG__MAX_ERRORS + 1);
    cfg_errors_close(&errs);
    free(many);
}

static void test_errors_print(void **state)
{
    (void)state;
    const char *yaml = "links:\n  - name: l\n    type: tcp\n    hots: h\n";
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    assert_int_equal(
        cfg_load_buffer("site.yaml", yaml, strlen(yaml), &cfg, &errs),
        GW_ECONFIG);
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    assert_non_null(f);
    cfg_errors_print(&errs, f);
    fclose(f);
    assert_string_equal(text,
                        "site.yaml:2:5: links[0].host: a tcp link needs "
                        "'host' (name or address)\n"
                        "site.yaml:4:5: links[0].hots: unknown key 'hots' in "
                        "a link (did you mean 'host'?)\n");
    free(text);
    cfg_errors_close(&errs);
    cfg_errors_close(&errs); /* safe twice */
    cfg_errors_close(NULL);
    cfg_free(NULL);
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        uint32_t ms;
    } cases[] = {
        {"250ms", 0, 250},
        {"1s", 0, 1000},
        {"1.5s", 0, 1500},
        {"5m", 0, 300000},
        {"2h", 0, 7200000},
        {"0ms", 0, 0},
        {"0.001s", 0, 1},
        {"1.25m", 0, 75000},
        {"10min", 0, 600000},
        {"500", -1, 0},
        {"1.0001s", -1, 0},
        {"0.5ms", -1, 0},
        {"ms", -1, 0},
        {"-1s", -1, 0},
        {"1 s", -1, 0},
        {"5d", -1, 0},
        {"2000h", -1, 0},
        {"", -1, 0},
        {"99999999999999s", -1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t ms = 12345;
        const char *why = NULL;
        int rc = cfg__parse_duration(cases[i].text, &ms, &why);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d", cases[i].text, rc);
        if (rc == 0)
            assert_int_equal(ms, cases[i].ms);
        else
            assert_non_null(why);
    }
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(cfg_table_name(CFG_TABLE_COIL), "coil");
    assert_string_equal(cfg_table_name(CFG_TABLE_HOLDING), "holding");
    assert_string_equal(cfg_type_name(CFG_TYPE_FLOAT32), "float32");
    assert_string_equal(cfg_type_name(CFG_TYPE_BCD32), "bcd32");
    assert_string_equal(cfg_link_type_name(CFG_LINK_RTU_OVER_TCP),
                        "rtu-over-tcp");
    assert_string_equal(cfg_parity_name(CFG_PARITY_ODD), "odd");
    assert_string_equal(cfg_type_name((enum cfg_type)99), "?");
    assert_int_equal(cfg_type_count(CFG_TYPE_BOOL, 0), 1);
    assert_int_equal(cfg_type_count(CFG_TYPE_BIT, 0), 1);
    assert_int_equal(cfg_type_count(CFG_TYPE_BCD16, 0), 1);
    assert_int_equal(cfg_type_count(CFG_TYPE_UINT32, 0), 2);
    assert_int_equal(cfg_type_count(CFG_TYPE_BCD32, 0), 2);
    assert_int_equal(cfg_type_count(CFG_TYPE_FLOAT64, 0), 4);
    assert_int_equal(cfg_type_count(CFG_TYPE_STRING, 7), 7);
    assert_true(cfg__valid_name("a"));
    assert_true(cfg__valid_name("9-x_Y"));
    assert_false(cfg__valid_name(""));
    assert_false(cfg__valid_name("-a"));
    assert_false(cfg__valid_name("a.b"));
    char n64[66];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    assert_true(cfg__valid_name(n64));
    n64[64] = 'a';
    n64[65] = '\0';
    assert_false(cfg__valid_name(n64));
}

/* ---- events: ---------------------------------------------------------------
 */

static struct cfg *load_ok(const char *yaml, struct cfg_errors *errs)
{
    struct cfg *cfg = NULL;
    cfg_errors_init(errs);
    int rc = cfg_load_buffer("t.yaml", yaml, strlen(yaml), &cfg, errs);
    if (rc != GW_OK) {
        fprintf(stderr, "--- for:\n%s", yaml);
        dump_errors(errs);
    }
    assert_int_equal(rc, GW_OK);
    assert_non_null(cfg);
    return cfg;
}

#define EV_XMPP "xmpp:\n  jid: gw@example.org\n  password: x\n"

/* Without a section every point still has its rule: enabled, every
 * change, no intervals; the section's keys hold their defaults. */
static void test_events_defaults(void **state)
{
    (void)state;
    static const char yaml[] =
        HEAD PT KV "address: 40001\n" KV "type: float32\n"
                   "          - name: c\n" KV "address: 1\n"
                   "          - name: s\n" KV "address: 40011\n" KV
                   "type: string\n" KV "length: 2\n";
    struct cfg_errors errs;
    struct cfg *cfg = load_ok(yaml, &errs);
    const struct cfg_events *ev = &cfg->events;
    assert_false(ev->present);
    assert_null(ev->service);
    assert_string_equal(ev->node_prefix, "fieldgate/");
    assert_int_equal(ev->access_model, CFG_AM_PRESENCE);
    assert_int_equal(ev->max_items, 1);
    assert_false(ev->persist_items);
    assert_int_equal(ev->notification_type, CFG_NOTIFY_HEADLINE);
    assert_int_equal(ev->send_last, CFG_SEND_LAST_ON_SUB_AND_PRESENCE);
    assert_int_equal(ev->window, 16);
    assert_int_equal(ev->publish_timeout_ms, 10000);
    assert_int_equal(ev->delivery, CFG_DELIVERY_LATEST);
    assert_null(ev->spool.dir);
    assert_int_equal(ev->spool.max_bytes, 64ull * 1024 * 1024);
    assert_int_equal(ev->spool.max_age_ms, 0);
    assert_int_equal(ev->spool.fsync_ms, 1000);
    assert_true(ev->defaults.enabled);
    const struct cfg_unit *u = find_unit(cfg, "u");
    assert_int_equal(u->n_points, 3);
    for (size_t i = 0; i < u->n_points; i++) {
        const struct cfg_event_rule *r = &u->points[i].events;
        assert_true(r->enabled);
        assert_true(r->deadband == 0);
        assert_false(r->deadband_percent);
        assert_int_equal(r->min_interval_ms, 0);
        assert_int_equal(r->max_interval_ms, 0);
    }
    assert_int_equal(cfg->warnings.n, 0);
    cfg_free(cfg);
    cfg_errors_close(&errs);

    /* An empty section: PEP with the defaults; the prefix from the JID. */
    static const char pep[] =
        HEAD PT KV "address: 40001\n" EV_XMPP "events: {}\n";
    cfg = load_ok(pep, &errs);
    ev = &cfg->events;
    assert_true(ev->present);
    assert_null(ev->service);
    assert_string_equal(ev->node_prefix, "fieldgate/gw/");
    assert_int_equal(ev->access_model, CFG_AM_PRESENCE);
    assert_int_equal(ev->mark.line, 14);
    assert_true(find_unit(cfg, "u")->points[0].events.enabled);
    cfg_free(cfg);
    cfg_errors_close(&errs);

    /* A service: whitelist by default; xmpp without events: the prefix
     * is still derived. */
    static const char svc[] = HEAD PT KV "address: 40001\n" EV_XMPP "events:\n"
                                         "  service: pubsub.example.org\n";
    cfg = load_ok(svc, &errs);
    assert_string_equal(cfg->events.service, "pubsub.example.org");
    assert_int_equal(cfg->events.access_model, CFG_AM_WHITELIST);
    cfg_free(cfg);
    cfg_errors_close(&errs);
    static const char nosec[] = HEAD PT KV "address: 40001\n" EV_XMPP;
    cfg = load_ok(nosec, &errs);
    assert_false(cfg->events.present);
    assert_string_equal(cfg->events.node_prefix, "fieldgate/gw/");
    assert_true(find_unit(cfg, "u")->points[0].events.enabled);
    cfg_free(cfg);
    cfg_errors_close(&errs);

    /* The XEP-0060 names. */
    assert_string_equal(cfg_access_model_name(CFG_AM_WHITELIST), "whitelist");
    assert_string_equal(cfg_access_model_name(CFG_AM_OPEN), "open");
    assert_string_equal(cfg_notification_type_name(CFG_NOTIFY_HEADLINE),
                        "headline");
    assert_string_equal(cfg_send_last_name(CFG_SEND_LAST_ON_SUB_AND_PRESENCE),
                        "on_sub_and_presence");
    assert_string_equal(cfg_send_last_name((enum cfg_send_last)9), "?");
}

/* point > unit > template > events.defaults > built-in, key by key. */
static void test_events_inheritance(void **state)
{
    (void)state;
    static const char yaml[] =
        "templates:\n"
        "  - name: t\n"
        "    events: {deadband: 2, min_interval: 2s}\n"
        "    points:\n"
        "      - {name: tp, address: 40001}\n"
        "      - {name: tq, address: 40002, events: {deadband: 5%}}\n"
        "      - {name: tb, address: 1}\n"
        "links:\n"
        "  - name: l\n"
        "    type: tcp\n"
        "    host: h\n"
        "    units:\n"
        "      - name: u1\n"
        "        id: 1\n"
        "        template: t\n"
        "        events: {enabled: false, min_interval: 3s}\n"
        "        points:\n"
        "          - {name: up, address: 40010, events: {enabled: true}}\n"
        "          - {name: uq, address: 40011}\n"
        "      - name: u2\n"
        "        id: 2\n"
        "        template: t\n"
        "      - name: u3\n"
        "        id: 3\n"
        "        points:\n"
        "          - {name: p, address: 40001}\n"
        "          - {name: q, address: 40002, events: {max_interval: "
        "0s}}\n" EV_XMPP "events:\n"
        "  defaults: {deadband: 1, min_interval: 1s, max_interval: 1h}\n";
    struct cfg_errors errs;
    struct cfg *cfg = load_ok(yaml, &errs);
    const struct cfg_unit *u1 = find_unit(cfg, "u1"),
                          *u2 = find_unit(cfg, "u2"),
                          *u3 = find_unit(cfg, "u3");
    const struct cfg_event_rule *r;

    /* u1: unit over template over defaults */
    r = &find_point(u1, "tp")->events;
    assert_false(r->enabled);      /* unit */
    assert_true(r->deadband == 2); /* template */
    assert_false(r->deadband_percent);
    assert_int_equal(r->min_interval_ms, 3000);    /* unit over template */
    assert_int_equal(r->max_interval_ms, 3600000); /* defaults */
    r = &find_point(u1, "tq")->events;             /* template's point */
    assert_false(r->enabled);
    assert_true(r->deadband == 5 && r->deadband_percent);
    assert_int_equal(r->min_interval_ms, 3000);
    r = &find_point(u1, "tb")->events; /* a coil: no deadband */
    assert_true(r->deadband == 0 && !r->deadband_percent);
    assert_false(r->enabled);
    r = &find_point(u1, "up")->events; /* point over unit */
    assert_true(r->enabled);
    assert_true(r->deadband == 2); /* template, own point */
    assert_int_equal(r->min_interval_ms, 3000);
    assert_false(find_point(u1, "uq")->events.enabled);

    /* u2: the template over defaults */
    r = &find_point(u2, "tp")->events;
    assert_true(r->enabled);
    assert_true(r->deadband == 2);
    assert_int_equal(r->min_interval_ms, 2000);
    assert_int_equal(r->max_interval_ms, 3600000);
    assert_true(find_point(u2, "tq")->events.deadband_percent);

    /* u3: defaults; a point turns the heartbeat off */
    r = &find_point(u3, "p")->events;
    assert_true(r->enabled && r->deadband == 1 && !r->deadband_percent);
    assert_int_equal(r->min_interval_ms, 1000);
    assert_int_equal(r->max_interval_ms, 3600000);
    assert_int_equal(find_point(u3, "q")->events.max_interval_ms, 0);

    /* the template as written: defaults, template, point */
    const struct cfg_template *t = &cfg->templates[0];
    assert_true(t->points[0].events.enabled);
    assert_true(t->points[0].events.deadband == 2);
    assert_int_equal(t->points[0].events.min_interval_ms, 2000);
    assert_true(t->points[2].events.deadband == 0);
    cfg_free(cfg);
    cfg_errors_close(&errs);
}

/* deadband: a plain number (absolute, engineering units) or a percentage
 * of the last published value ("2%", quotes optional). */
static void test_events_deadband(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        double value;
        bool percent;
    } ok[] = {
        {"0.5", 0.5, false}, {"0", 0, false},         {"1e-3", 0.001, false},
        {"0.5%", 0.5, true}, {"\"0.5%\"", 0.5, true}, {"'10%'", 10, true},
        {"0%", 0, true},     {"150%", 150, true},     {".25%", 0.25, true},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml),
                 HEAD PT KV "address: 40001\n" KV "events: {deadband: %s}\n",
                 ok[i].text);
        struct cfg_errors errs;
        struct cfg *cfg = load_ok(yaml, &errs);
        const struct cfg_event_rule *r =
            &cfg->links[0].units[0].points[0].events;
        assert_true(r->deadband == ok[i].value);
        assert_int_equal(r->deadband_percent, ok[i].percent);
        cfg_free(cfg);
        cfg_errors_close(&errs);
    }
    /* deadband values start at column 32: KV "events: {deadband: " */
#define DB(v) HEAD PT KV "address: 40001\n" KV "events: {deadband: " v "}\n"
#define DBP "links[0].units[0].points[0].events.deadband"
    static const struct one bad[] = {
        {DB("\"0.5\""), 11, 32, DBP,
         "expected a number or a percentage (e.g. 0.5 or 2%), got a quoted"},
        {DB("high"), 11, 32, DBP, "expected a number or a percentage"},
        {DB("2 %"), 11, 32, DBP, "expected a number or a percentage"},
        {DB("\"%\""), 11, 32, DBP, "expected a number or a percentage"},
        {DB("x%"), 11, 32, DBP, "expected a number or a percentage"},
        {DB("1%%"), 11, 32, DBP, "expected a number or a percentage"},
        {DB("-1"), 11, 32, DBP, "deadband -1 is negative"},
        {DB("-0.5%"), 11, 32, DBP, "deadband -0.5% is negative"},
        {DB(".inf"), 11, 32, DBP, "expected a number or a percentage"},
        {DB("1e999"), 11, 32, DBP, "is not a finite number"},
        {DB("[1]"), 11, 32, DBP, "got a list"},
    };
#undef DB
#undef DBP
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_one(&bad[i]);
}

static void test_events_errors(void **state)
{
    (void)state;
    /* The section at line 10 (no xmpp) or 13 (after EV_XMPP). */
#define EH HEAD PT KV "address: 40001\n" EV_XMPP "events:\n"
    static const struct one cases[] = {
        /* the section itself */
        {HEAD PT KV "address: 40001\nevents: {}\n", 11, 9, "events",
         "an events section needs an xmpp section"},
        {EH "  servce: p.example.org\n", 15, 3, "events.servce",
         "unknown key 'servce' in the events section (did you mean "
         "'service'?)"},
        {HEAD PT KV "address: 40001\n" EV_XMPP "events: [a]\n", 14, 9, "events",
         "expected a mapping, got a list"},
        /* service */
        {EH "  service: pep\n", 15, 12, "events.service",
         "leave 'service' out to publish to the gateway's own PEP"},
        {EH "  service: pubsub.example.org/r\n", 15, 12, "events.service",
         "is not a PubSub service JID"},
        {EH "  service: a@b@c\n", 15, 12, "events.service",
         "is not a PubSub service JID"},
        {EH "  service: \"pub sub.org\"\n", 15, 12, "events.service",
         "is not a PubSub service JID"},
        {EH "  service: pubsub..org\n", 15, 12, "events.service",
         "is not a PubSub service JID"},
        {EH "  service: \"@example.org\"\n", 15, 12, "events.service",
         "is not a PubSub service JID"},
        {EH "  service: GW@example.org\n", 15, 12, "events.service",
         "is the gateway's own JID"},
        {EH "  service:\n", 15, 11, "events.service",
         "expected a text value, got no value"},
        /* node_prefix */
        {EH "  node_prefix: \"a\\tb/\"\n", 15, 16, "events.node_prefix",
         "contains a control character"},
        {EH "  node_prefix: "
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "\n",
         15, 16, "events.node_prefix",
         "node_prefix is 193 bytes long; at most 192"},
        /* node */
        {EH "  node: {access_model: private}\n", 15, 24,
         "events.node.access_model",
         "unknown access_model 'private' (expected one of open, presence, "
         "roster, authorize, whitelist)"},
        {EH "  node: {max_items: 0}\n", 15, 21, "events.node.max_items",
         "value 0 out of range 1..256"},
        {EH "  node: {max_items: 257}\n", 15, 21, "events.node.max_items",
         "value 257 out of range 1..256"},
        {EH "  node: {persist_items: no}\n", 15, 25,
         "events.node.persist_items", "expected true or false, got 'no'"},
        {EH "  node: {notification_type: chat}\n", 15, 29,
         "events.node.notification_type", "unknown notification_type 'chat'"},
        {EH "  node: {send_last_published_item: always}\n", 15, 36,
         "events.node.send_last_published_item",
         "(expected one of never, on_sub, on_sub_and_presence)"},
        {EH "  node: whitelist\n", 15, 9, "events.node",
         "expected a mapping, got 'whitelist'"},
        /* window, publish_timeout */
        {EH "  window: 0\n", 15, 11, "events.window",
         "value 0 out of range 1..256"},
        {EH "  window: 257\n", 15, 11, "events.window",
         "value 257 out of range 1..256"},
        {EH "  publish_timeout: 500ms\n", 15, 20, "events.publish_timeout",
         "duration 500ms out of range 1s..10m"},
        {EH "  publish_timeout: 10\n", 15, 20, "events.publish_timeout",
         "needs a unit"},
        /* delivery, spool */
        {EH "  delivery: all\n", 15, 13, "events.delivery",
         "unknown delivery 'all' (expected one of latest, every)"},
        {EH "  spool: {dir: spool}\n", 15, 16, "events.spool.dir",
         "'spool' is not an absolute path"},
        {EH "  spool: {max_bytes: 64M}\n", 15, 22, "events.spool.max_bytes",
         "size '64M' has an unknown unit (use B, KiB, MiB, GiB or TiB"},
        {EH "  spool: {max_bytes: MiB}\n", 15, 22, "events.spool.max_bytes",
         "size 'MiB' is not a size"},
        {EH "  spool: {max_bytes: 32KiB}\n", 15, 22, "events.spool.max_bytes",
         "size 32KiB out of range 65536..1099511627776 bytes"},
        {EH "  spool: {max_age: 30s}\n", 15, 20, "events.spool.max_age",
         "max_age must be 0 (no age bound) or at least 1m"},
        {EH "  spool: {fsync: always}\n", 15, 18, "events.spool.fsync",
         "'always' is neither 'every' nor a duration"},
        {EH "  spool: {fsync: 0ms}\n", 15, 18, "events.spool.fsync",
         "fsync 0ms out of range 1ms..1h (use 'every'"},
        {EH "  spool: {fsync: 2h}\n", 15, 18, "events.spool.fsync",
         "out of range 1ms..1h"},
        {EH "  spool: {dri: /x}\n", 15, 11, "events.spool.dri",
         "unknown key 'dri' in the events spool (did you mean 'dir'?)"},
        /* defaults: a rule */
        {EH "  defaults: {enabled: yes}\n", 15, 23, "events.defaults.enabled",
         "expected true or false, got 'yes'"},
        {EH "  defaults: {min_interval: 10s, max_interval: 5s}\n", 15, 28,
         "events.defaults.min_interval",
         "min_interval 10s is longer than max_interval 5s (the heartbeat)"},
        {EH "  defaults: {max_interval: 500ms}\n", 15, 28,
         "events.defaults.max_interval",
         "a heartbeat (max_interval) is 0 (none) or at least 1s"},
        {EH "  defaults: {max_interval: 25h}\n", 15, 28,
         "events.defaults.max_interval", "out of range 0ms..24h"},
        {EH "  defaults: {deadbnad: 1}\n", 15, 14, "events.defaults.deadbnad",
         "unknown key 'deadbnad' in an events rule (did you mean "
         "'deadband'?)"},
        /* a point's rule */
        {HEAD PT KV "address: 1\n" KV "events: {deadband: 1}\n", 11, 32,
         "links[0].units[0].points[0].events.deadband",
         "a deadband is only for numeric points; this point is bool"},
        {HEAD PT KV "address: 40001\n" KV "type: bit\n" KV "bit: 2\n" KV
                    "events: {deadband: 0}\n",
         13, 32, "links[0].units[0].points[0].events.deadband",
         "this point is bit"},
        {HEAD PT KV "address: 40001\n" KV "type: string\n" KV "length: 4\n" KV
                    "events: {deadband: 1%}\n",
         13, 32, "links[0].units[0].points[0].events.deadband",
         "this point is string"},
        {HEAD PT KV "address: 40001\n" KV "events: true\n", 11, 21,
         "links[0].units[0].points[0].events",
         "expected a mapping, got 'true'"},
        {HEAD PT KV "address: 40001\n" KV "events: {enabled: 1}\n", 11, 31,
         "links[0].units[0].points[0].events.enabled",
         "expected true or false, got '1'"},
        {HEAD PT KV "address: 40001\n" KV "events: {min_interval: 5}\n", 11, 36,
         "links[0].units[0].points[0].events.min_interval", "needs a unit"},
    };
#undef EH
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_one(&cases[i]);

    /* unit min_interval over a defaults heartbeat: at the unit */
    static const struct one cross[] = {
        {"links:\n"
         "  - name: l\n"
         "    type: tcp\n"
         "    host: h\n"
         "    units:\n"
         "      - name: u\n"
         "        id: 1\n"
         "        events: {min_interval: 10s}\n"
         "        points: [{name: p, address: 40001}]\n" EV_XMPP
         "events: {defaults: {max_interval: 5s}}\n",
         8, 32, "links[0].units[0].events.min_interval",
         "min_interval 10s is longer than max_interval 5s"},
        /* a point's heartbeat under its template's min_interval */
        {"templates:\n"
         "  - name: t\n"
         "    events: {min_interval: 1m}\n"
         "    points: [{name: p, address: 40001, events: {max_interval: "
         "30s}}]\n"
         "links:\n"
         "  - name: l\n"
         "    type: tcp\n"
         "    host: h\n"
         "    units: [{name: u, id: 1, template: t}]\n",
         4, 63, "templates[0].points[0].events.max_interval",
         "max_interval 30s (the heartbeat) is shorter than min_interval 1m"},
        /* a unit's deadband does not reach its bool points (no error),
         * but a template point's own deadband on a bool is reported once */
        {"templates:\n"
         "  - name: t\n"
         "    points: [{name: c, address: 1, events: {deadband: 1}}]\n"
         "links:\n"
         "  - name: l\n"
         "    type: tcp\n"
         "    host: h\n"
         "    units:\n"
         "      - {name: u1, id: 1, template: t, events: {deadband: 3}}\n"
         "      - {name: u2, id: 2, template: t}\n",
         3, 55, "templates[0].points[0].events.deadband",
         "a deadband is only for numeric points; this point is bool"},
    };
    for (size_t i = 0; i < sizeof(cross) / sizeof(cross[0]); i++)
        expect_one(&cross[i]);

    /* equal intervals are fine; a unit deadband on a coil unit is too */
    static const char fine[] =
        "links:\n"
        "  - name: l\n"
        "    type: tcp\n"
        "    host: h\n"
        "    units:\n"
        "      - name: u\n"
        "        id: 1\n"
        "        events: {min_interval: 5s, max_interval: 5s, deadband: 2}\n"
        "        points: [{name: c, address: 1}]\n";
    struct cfg_errors errs;
    struct cfg *cfg = load_ok(fine, &errs);
    assert_true(cfg->links[0].units[0].points[0].events.deadband == 0);
    assert_int_equal(cfg->links[0].units[0].points[0].events.min_interval_ms,
                     5000);
    cfg_free(cfg);
    cfg_errors_close(&errs);
}

/* Warnings: the map loads, cfg->warnings says what will not work. */
/* events.spool: sizes, fsync, the run-time directory, the warning with
 * delivery latest. */
static void test_events_spool(void **state)
{
    (void)state;
    uint64_t b = 0;
    const char *why = NULL;
    assert_int_equal(cfg__parse_size("65536", &b, &why), 0);
    assert_int_equal(b, 65536);
    assert_int_equal(cfg__parse_size("64MiB", &b, &why), 0);
    assert_int_equal(b, 64ull << 20);
    assert_int_equal(cfg__parse_size("2GB", &b, &why), 0);
    assert_int_equal(b, 2000000000ull);
    assert_int_equal(cfg__parse_size("1TiB", &b, &why), 0);
    assert_int_equal(b, 1ull << 40);
    assert_int_equal(cfg__parse_size("1.5GiB", &b, &why), -1);
    assert_int_equal(cfg__parse_size("99999999999999999999", &b, &why), -1);

    static const char yaml[] =
        HEAD PT KV "address: 40001\n" EV_XMPP "events:\n"
                   "  delivery: every\n"
                   "  spool: {max_bytes: 1048576, fsync: 250ms, "
                   "max_age: 1h}\n";
    struct cfg_errors errs;
    struct cfg *cfg = load_ok(yaml, &errs);
    const struct cfg_events *ev = &cfg->events;
    assert_int_equal(ev->delivery, CFG_DELIVERY_EVERY);
    assert_null(ev->spool.dir);
    assert_int_equal(ev->spool.max_bytes, 1048576);
    assert_int_equal(ev->spool.fsync_ms, 250);
    assert_int_equal(ev->spool.max_age_ms, 3600000);
    assert_int_equal(cfg->warnings.n, 0);
    assert_string_equal(cfg_delivery_name(ev->delivery), "every");
    /* The directory is chosen at run time: STATE_DIRECTORY (the first of
     * several), else the built-in one. */
    char dir[256];
    char *old =
        getenv("STATE_DIRECTORY") ? strdup(getenv("STATE_DIRECTORY")) : NULL;
    unsetenv("STATE_DIRECTORY");
    assert_int_equal(cfg_spool_dir(&ev->spool, dir, sizeof(dir)), 0);
    assert_string_equal(dir, "/var/lib/fieldgate/spool");
    setenv("STATE_DIRECTORY", "/var/lib/fg:/var/lib/other", 1);
    assert_int_equal(cfg_spool_dir(&ev->spool, dir, sizeof(dir)), 0);
    assert_string_equal(dir, "/var/lib/fg/spool");
    assert_int_equal(cfg_spool_dir(&ev->spool, dir, 8), GW_ELIMIT);
    if (old)
        setenv("STATE_DIRECTORY", old, 1);
    else
        unsetenv("STATE_DIRECTORY");
    free(old);
    cfg_free(cfg);
    cfg_errors_close(&errs);

    /* A spool with delivery latest: a warning, the map loads. */
    static const char latest[] =
        HEAD PT KV "address: 40001\n" EV_XMPP "events:\n  spool: {dir: /x}\n";
    cfg = load_ok(latest, &errs);
    assert_int_equal(cfg->warnings.n, 1);
    assert_string_equal(cfg->warnings.items[0].path, "events.spool");
    assert_int_equal(cfg->warnings.items[0].mark.line, 15);
    assert_non_null(strstr(cfg->warnings.items[0].message,
                           "only with events.delivery: every"));
    assert_string_equal(cfg->events.spool.dir, "/x");
    cfg_free(cfg);
    cfg_errors_close(&errs);
}

static void test_events_warnings(void **state)
{
    (void)state;
    static const char yaml[] =
        HEAD PT KV "address: 40001\n" EV_XMPP "access:\n"
                   "  readers: [a@example.org, example.net]\n"   /* line 15 */
                   "  controllers: [ops.example.org, o@x.org]\n" /* line 16 */
                   "events:\n"
                   "  service: pubsub.example.org\n";
    struct cfg_errors errs;
    struct cfg *cfg = load_ok(yaml, &errs);
    assert_int_equal(cfg->warnings.n, 2);
    const struct cfg_error *w = &cfg->warnings.items[0];
    assert_int_equal(w->mark.line, 15);
    assert_int_equal(w->mark.col, 28);
    assert_string_equal(w->path, "access.readers[1]");
    assert_non_null(strstr(w->message,
                           "domains cannot be whitelisted: readers from "
                           "example.net will not be able to subscribe"));
    assert_non_null(strstr(w->message, "list bare JIDs"));
    w = &cfg->warnings.items[1];
    assert_int_equal(w->mark.line, 16);
    assert_int_equal(w->mark.col, 17);
    assert_string_equal(w->path, "access.controllers[0]");
    assert_non_null(strstr(w->message, "controllers from ops.example.org"));
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    assert_non_null(f);
    cfg_warnings_print(cfg, f);
    fclose(f);
    assert_non_null(strstr(text, "t.yaml:15:28: access.readers[1]: warning: "
                                 "domains cannot be whitelisted"));
    assert_non_null(strstr(text, "\nt.yaml:16:17: access.controllers[0]: "
                                 "warning: "));
    free(text);
    cfg_free(cfg);
    cfg_errors_close(&errs);

    /* PEP (presence): domains work, no warning; explicit whitelist with
     * PEP: the warning again; open: one warning at the access model. */
    static const char pep[] =
        HEAD PT KV "address: 40001\n" EV_XMPP
                   "access:\n  readers: [example.net]\nevents: {}\n";
    cfg = load_ok(pep, &errs);
    assert_int_equal(cfg->warnings.n, 0);
    cfg_free(cfg);
    cfg_errors_close(&errs);
    static const char pepwl[] = HEAD PT KV
        "address: 40001\n" EV_XMPP "access:\n  readers: [example.net]\n"
        "events: {node: {access_model: whitelist}}\n";
    cfg = load_ok(pepwl, &errs);
    assert_int_equal(cfg->warnings.n, 1);
    assert_string_equal(cfg->warnings.items[0].path, "access.readers[0]");
    cfg_free(cfg);
    cfg_errors_close(&errs);
    static const char open_am[] = HEAD PT KV
        "address: 40001\n" EV_XMPP "access:\n  readers: [a@example.net]\n"
        "events: {node: {access_model: open}}\n";
    cfg = load_ok(open_am, &errs);
    assert_int_equal(cfg->warnings.n, 1);
    assert_string_equal(cfg->warnings.items[0].path,
                        "events.node.access_model");
    assert_int_equal(cfg->warnings.items[0].mark.line, 16);
    assert_non_null(strstr(cfg->warnings.items[0].message,
                           "anyone who can reach the service"));
    cfg_free(cfg);
    cfg_errors_close(&errs);
    /* no events section: no warning */
    static const char none[] = HEAD PT KV "address: 40001\n" EV_XMPP
                                          "access:\n  readers: [example.net]\n";
    cfg = load_ok(none, &errs);
    assert_int_equal(cfg->warnings.n, 0);
    cfg_free(cfg);
    cfg_errors_close(&errs);
}
#undef EV_XMPP

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_model),
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_all_errors),
        cmocka_unit_test(test_schema_errors),
        cmocka_unit_test(test_resolve_errors),
        cmocka_unit_test(test_allowed_overlaps),
        cmocka_unit_test(test_overlap_classes),
        cmocka_unit_test(test_template_errors),
        cmocka_unit_test(test_walker_new_section),
        cmocka_unit_test(test_aliases_rejected),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_files_and_limits),
        cmocka_unit_test(test_errors_print),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_xmpp_access),
        cmocka_unit_test(test_events_defaults),
        cmocka_unit_test(test_events_inheritance),
        cmocka_unit_test(test_events_deadband),
        cmocka_unit_test(test_events_errors),
        cmocka_unit_test(test_events_warnings),
        cmocka_unit_test(test_events_spool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
