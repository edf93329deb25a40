/* xs_pubsub.c - the PubSub publisher of value events (see the header and
 * docs/events.md). */
#include "xs_pubsub.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "gw_err.h"
#include "xs_buf.h"
#include "xs_iot_xsf.h"
#include "xs_jid.h"

static const char *const AREA = "events";

/* Iqs of the login checks (disco, configuration, affiliations) get this
 * long; publishes get events.publish_timeout. */
#define SETUP_TIMEOUT_MS 30000u
/* Batches with at most this many points ask the model for those names
 * only; larger ones filter the unit's fields by point index. */
#define NAME_FILTER_MAX 16u
#define NODE_MAX (CFG_EVENTS_PREFIX_MAX + CFG_MAX_NAME + 1)

enum op {
    OP_DISCO,
    OP_GET_CONFIG,
    OP_CONFIGURE,
    OP_CREATE,
    OP_GET_AFF,
    OP_SET_AFF,
    OP_PUBLISH,
    OP_FIX_CONFIGURE, /* precondition-not-met: configure, then republish */
    OP_FIX_CREATE,    /* item-not-found: create, then republish */
};

/* One request in the session.  Orphaned (ps NULL) when the publisher is
 * freed first; its callback then only frees it. */
struct ps_req {
    struct xs_pubsub *ps;
    struct ps_req *prev, *next;
    enum op op;
    uint64_t gen; /* the login it belongs to */
    size_t gu;    /* global unit index (not for OP_DISCO) */
    /* publishes */
    uint64_t seq;
    int64_t ts_ms;
    size_t *points;
    size_t n_points;
    bool retried;
    bool options;       /* sent with publish-options */
    uint64_t cfg_epoch; /* the node's epoch when sent */
    /* delivery every: a spool record */
    bool spooled;
    bool delayed;           /* carries a <delay> */
    bool gap;               /* a <gap/> item */
    unsigned tries;         /* publishes sent in this session */
    uint64_t pos;           /* for the spool's ack */
    struct xs_stanza *item; /* the item, copied for each send */
};

struct ps_node {
    size_t link, unit;
    bool enabled; /* some point emits events */
    bool failed;  /* could not be made ready: batches are dropped */
    bool no_options;
    /* A publish with publish-options succeeded since the login: the
     * node's configuration holds (it was also checked at login), so later
     * publishes go without the preconditions, which cost the server ~40 %
     * more per publish (bench/events). */
    bool options_ok;
    bool logged_error; /* one publish error logged per login */
    bool logged_limit; /* one oversized item logged per login */
    uint64_t epoch;    /* bumped by each configure */
    uint64_t published;
    /* delivery every: the first sequence number appended while publishing
     * in this session (0: none); records before it are replayed */
    uint64_t live_from;
    char name[NODE_MAX];
};

struct name_ix {
    const char *name; /* the unit's */
    size_t gu;
};

struct xs_pubsub {
    const struct cfg *cfg;
    const struct cfg_events *ev;
    struct gw_iot *iot;
    struct xs_pubsub_source src;
    const struct gw_log *log;
    xs_pubsub_iq_fn iq;
    void *iq_ud;
    struct ps_node *nodes; /* per global unit */
    size_t *unit_base;     /* per link: global index of its first unit */
    size_t n_nodes;
    struct ps_req *reqs;
    enum xs_pubsub_state state;
    uint64_t gen;
    char bare[XS_JID_MAX + 1];
    char service[XS_JID_MAX + 1]; /* for messages: the service or the JID */
    bool pep; /* the service is the account's own PEP service */
    unsigned features;
    size_t setup_next, setup_busy, setup_done;
    size_t in_flight;
    bool pumping, setup_pumping;
    bool forbidden_logged;
    bool timeout_logged;
    uint64_t published, errors, retries, skipped;
    char text[256];
    void (*state_cb)(void *ud);
    void *state_ud;
    /* delivery every */
    struct xs_pubsub_spool sp;
    struct name_ix *by_name; /* units sorted by name */
    bool every;              /* delivery every with a spool */
    bool fallback;           /* the spool failed: latest values meanwhile */
    bool replaying;          /* the last record handed out was delayed */
    int64_t fallback_ms;     /* the last failed append */
    uint64_t spooled, replayed, gaps, lost;
    char spool_text[256];
    /* the retry of failed login checks (the owner's timer) */
    void (*timer)(void *ud, uint32_t ms);
    void *timer_ud;
    bool retry_armed;  /* the timer runs */
    bool disco_failed; /* the warning is the service check's: retried */
    bool resetup;      /* running, and setting up failed nodes again */
    size_t resetup_n;  /* how many had failed when it began */
    uint32_t retry_ms; /* the next delay (0: the first one) */
};

/* ---- names and forms ---------------------------------------------------- */

bool xs_pubsub_node_name(const struct cfg_events *ev, const char *unit,
                         char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s%s", ev->node_prefix ? ev->node_prefix : "",
                     unit);
    return n > 0 && (size_t)n < cap;
}

/* The configuration fields we enforce, as (var, value) pairs. */
struct cfg_field {
    const char *var;
    char value[24];
    bool boolean;
};

static size_t wanted_fields(const struct cfg_events *ev, struct cfg_field *f)
{
    size_t n = 0;
    f[n] = (struct cfg_field){.var = "pubsub#access_model"};
    snprintf(f[n++].value, sizeof(f->value), "%s",
             cfg_access_model_name(ev->access_model));
    f[n] = (struct cfg_field){.var = "pubsub#max_items"};
    snprintf(f[n++].value, sizeof(f->value), "%" PRIu32, ev->max_items);
    f[n] = (struct cfg_field){.var = "pubsub#persist_items", .boolean = true};
    snprintf(f[n++].value, sizeof(f->value), "%s",
             ev->persist_items ? "1" : "0");
    f[n] = (struct cfg_field){.var = "pubsub#notification_type"};
    snprintf(f[n++].value, sizeof(f->value), "%s",
             cfg_notification_type_name(ev->notification_type));
    f[n] = (struct cfg_field){.var = "pubsub#send_last_published_item"};
    snprintf(f[n++].value, sizeof(f->value), "%s",
             cfg_send_last_name(ev->send_last));
    return n;
}

#define N_FIELDS 5

static struct xs_stanza *form_new(const char *form_type)
{
    struct xs_stanza *x = xs_stanza_new("x", XS_NS_XDATA);
    struct xs_stanza *f = x ? xs_stanza_add_new(x, "field", NULL) : NULL;
    struct xs_stanza *v = f ? xs_stanza_add_new(f, "value", NULL) : NULL;
    if (!v || xs_stanza_set_attr(x, "type", "submit") != GW_OK ||
        xs_stanza_set_attr(f, "var", "FORM_TYPE") != GW_OK ||
        xs_stanza_set_attr(f, "type", "hidden") != GW_OK ||
        xs_stanza_set_text(v, form_type, strlen(form_type)) != GW_OK) {
        xs_stanza_free(x);
        return NULL;
    }
    return x;
}

static bool form_add(struct xs_stanza *x, const char *var, const char *value)
{
    struct xs_stanza *f = xs_stanza_add_new(x, "field", NULL);
    struct xs_stanza *v = f ? xs_stanza_add_new(f, "value", NULL) : NULL;
    return v && xs_stanza_set_attr(f, "var", var) == GW_OK &&
           xs_stanza_set_text(v, value, strlen(value)) == GW_OK;
}

struct xs_stanza *xs_pubsub_config_form(const struct cfg_events *ev,
                                        const char *form_type,
                                        const char *title)
{
    struct cfg_field f[N_FIELDS];
    size_t n = wanted_fields(ev, f);
    struct xs_stanza *x = form_new(form_type);
    bool ok = x != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = form_add(x, f[i].var, f[i].value);
    if (ok && title)
        ok = form_add(x, "pubsub#title", title);
    if (!ok) {
        xs_stanza_free(x);
        return NULL;
    }
    return x;
}

static bool bool_value(const char *v, bool *out)
{
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
        *out = false;
    else
        return false;
    return true;
}

/* The first <value> of the form's field var, or NULL. */
static const char *form_value(const struct xs_stanza *form, const char *var)
{
    for (const struct xs_stanza *f = xs_stanza_first_child(form); f;
         f = xs_stanza_next(f)) {
        if (strcmp(xs_stanza_name(f), "field") != 0)
            continue;
        const char *v = xs_stanza_attr(f, "var");
        if (!v || strcmp(v, var) != 0)
            continue;
        const struct xs_stanza *val = xs_stanza_child(f, "value", NULL);
        return val ? xs_stanza_text(val) : "";
    }
    return NULL;
}

size_t xs_pubsub_config_diff(const struct cfg_events *ev,
                             const struct xs_stanza *form,
                             struct xs_stanza **submit)
{
    struct cfg_field f[N_FIELDS];
    size_t n = wanted_fields(ev, f), diff = 0;
    struct xs_stanza *x = NULL;
    if (submit)
        *submit = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *have = form ? form_value(form, f[i].var) : NULL;
        bool same = false;
        if (have && f[i].boolean) {
            bool a, b;
            same = bool_value(have, &a) && bool_value(f[i].value, &b) && a == b;
        } else if (have) {
            same = strcmp(have, f[i].value) == 0;
        }
        if (same)
            continue;
        diff++;
        if (!submit)
            continue;
        if (!x)
            x = form_new(XS_NS_PUBSUB_NODE_CONFIG);
        if (x && !form_add(x, f[i].var, f[i].value)) {
            xs_stanza_free(x);
            x = NULL;
        }
    }
    if (submit)
        *submit = x;
    return diff;
}

unsigned xs_pubsub_parse_features(const struct xs_stanza *reply)
{
    static const struct {
        const char *name;
        unsigned bit;
    } known[] = {
        {"publish-options", XS_PUBSUB_F_PUBLISH_OPTIONS},
        {"auto-create", XS_PUBSUB_F_AUTO_CREATE},
        {"create-and-configure", XS_PUBSUB_F_CREATE_AND_CONFIGURE},
        {"config-node", XS_PUBSUB_F_CONFIG_NODE},
        {"persistent-items", XS_PUBSUB_F_PERSISTENT_ITEMS},
    };
    const struct xs_stanza *q =
        reply ? xs_stanza_child(reply, "query", XS_NS_DISCO_INFO) : NULL;
    unsigned bits = 0;
    size_t plen = strlen(XS_NS_PUBSUB);
    for (const struct xs_stanza *f = q ? xs_stanza_first_child(q) : NULL; f;
         f = xs_stanza_next(f)) {
        const char *var = xs_stanza_attr(f, "var");
        if (strcmp(xs_stanza_name(f), "feature") != 0 || !var ||
            strncmp(var, XS_NS_PUBSUB, plen) != 0 || var[plen] != '#')
            continue;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strcmp(var + plen + 1, known[i].name) == 0)
                bits |= known[i].bit;
    }
    return bits;
}

/* ---- the payload -------------------------------------------------------- */

struct item_ctx {
    const struct gw_events_batch *b;
    struct xs_iot_sd_node sd;
    size_t n;
    int rc;
};

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int item_field(void *ud, const struct gw_iot_field *f)
{
    struct item_ctx *c = ud;
    if (f->point == GW_IOT_NONE ||
        !bsearch(&f->point, c->b->points, c->b->n_points, sizeof(size_t),
                 cmp_size))
        return GW_OK;
    struct xs_stanza *e = xs_iot_sd_field(f);
    if (!e)
        return GW_ENOMEM;
    int rc = xs_iot_sd_add(&c->sd, e, f->ts_ms, NULL);
    if (rc == GW_OK)
        c->n++;
    return rc;
}

struct xs_stanza *xs_pubsub_item(const struct cfg *cfg,
                                 const struct gw_iot *iot,
                                 const struct gw_events_batch *b,
                                 int64_t now_ms, size_t *n_fields)
{
    *n_fields = 0;
    if (b->link >= cfg->n_links || b->unit >= cfg->links[b->link].n_units)
        return NULL;
    const struct cfg_unit *cu = &cfg->links[b->link].units[b->unit];
    size_t node = gw_iot_node(iot, 1 + b->link)->first_child + b->unit;
    char id[CFG_MAX_NAME + 24];
    snprintf(id, sizeof(id), "%s-%" PRIu64, cu->name, b->seq);
    char seq[24];
    snprintf(seq, sizeof(seq), "%" PRIu64, b->seq);
    struct xs_stanza *item = xs_stanza_new("item", NULL);
    struct xs_stanza *fields =
        item ? xs_stanza_add_new(item, "fields", XS_NS_IOT_SD) : NULL;
    if (!fields || xs_stanza_set_attr(item, "id", id) != GW_OK ||
        xs_stanza_set_attr(fields, "seqnr", seq) != GW_OK ||
        xs_stanza_set_attr(fields, "done", "true") != GW_OK) {
        xs_stanza_free(item);
        return NULL;
    }
    const char *names[NAME_FILTER_MAX];
    struct gw_iot_filter flt = {.types = GW_IOT_T_MOMENTARY};
    if (b->n_points <= NAME_FILTER_MAX) {
        for (size_t i = 0; i < b->n_points; i++)
            names[i] = b->points[i] < cu->n_points
                           ? cu->points[b->points[i]].name
                           : "";
        flt.fields = names;
        flt.n_fields = b->n_points;
    }
    struct item_ctx c = {.b = b};
    c.sd.fields = fields;
    c.sd.node_id = gw_iot_node(iot, node)->id;
    if (b->n_points > 0 &&
        gw_iot_node_fields(iot, node, &flt, now_ms, item_field, &c) != GW_OK) {
        xs_stanza_free(item);
        return NULL;
    }
    *n_fields = c.n;
    return item;
}

/* ---- requests ----------------------------------------------------------- */

static void on_reply(void *ud, const struct xs_stanza *reply, int err);

static struct ps_req *req_new(struct xs_pubsub *ps, enum op op, size_t gu)
{
    struct ps_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->ps = ps;
    r->op = op;
    r->gen = ps->gen;
    r->gu = gu;
    r->next = ps->reqs;
    if (ps->reqs)
        ps->reqs->prev = r;
    ps->reqs = r;
    return r;
}

static void req_free(struct ps_req *r)
{
    if (r->ps) {
        if (r->prev)
            r->prev->next = r->next;
        else
            r->ps->reqs = r->next;
        if (r->next)
            r->next->prev = r->prev;
    }
    free(r->points);
    xs_stanza_free(r->item);
    free(r);
}

/* <iq type> to the service (no 'to' for PEP: the account's own service;
 * Prosody answers PEP requests addressed to the bare JID without a
 * 'from'), with a <pubsub xmlns=ns> child in *pubsub. */
static struct xs_stanza *iq_new(const struct xs_pubsub *ps, const char *type,
                                const char *ns, struct xs_stanza **pubsub)
{
    struct xs_stanza *iq = xs_stanza_new("iq", XS_NS_CLIENT);
    *pubsub = iq ? xs_stanza_add_new(iq, "pubsub", ns) : NULL;
    if (!*pubsub || xs_stanza_set_attr(iq, "type", type) != GW_OK ||
        (!ps->pep && xs_stanza_set_attr(iq, "to", ps->service) != GW_OK)) {
        xs_stanza_free(iq);
        *pubsub = NULL;
        return NULL;
    }
    return iq;
}

/* Sends iq for r (both taken).  On failure r is freed and the error
 * returned; on success on_reply runs once. */
static int send_req(struct xs_pubsub *ps, struct ps_req *r,
                    struct xs_stanza *iq, uint32_t timeout_ms)
{
    if (!r || !iq) {
        xs_stanza_free(iq);
        if (r)
            req_free(r);
        return GW_ENOMEM;
    }
    if (!ps->iq) {
        xs_stanza_free(iq);
        req_free(r);
        return GW_EDISCONNECTED;
    }
    int rc = ps->iq(ps->iq_ud, iq, timeout_ms, on_reply, r);
    if (rc != GW_OK)
        req_free(r);
    return rc;
}

/* What an error answer says. */
struct perr {
    char cond[48]; /* RFC 6120 condition, "timeout", or "no answer" */
    bool precondition;
};

static void reply_error(const struct xs_stanza *reply, int err, struct perr *e)
{
    memset(e, 0, sizeof(*e));
    if (!reply) {
        snprintf(e->cond, sizeof(e->cond), "%s",
                 err == GW_ETIMEOUT ? "timeout" : gw_strerror(err));
        return;
    }
    snprintf(e->cond, sizeof(e->cond), "undefined-condition");
    const struct xs_stanza *er = xs_stanza_child(reply, "error", NULL);
    for (const struct xs_stanza *c = er ? xs_stanza_first_child(er) : NULL; c;
         c = xs_stanza_next(c)) {
        const char *ns = xs_stanza_ns(c);
        if (!ns)
            continue;
        if (strcmp(ns, XS_NS_STANZAS) == 0 &&
            strcmp(xs_stanza_name(c), "text") != 0)
            snprintf(e->cond, sizeof(e->cond), "%s", xs_stanza_name(c));
        else if (strcmp(ns, XS_NS_PUBSUB_ERRORS) == 0 &&
                 strcmp(xs_stanza_name(c), "precondition-not-met") == 0)
            e->precondition = true;
    }
}

static bool is_result(const struct xs_stanza *reply)
{
    const char *t = reply ? xs_stanza_attr(reply, "type") : NULL;
    return t && strcmp(t, "result") == 0;
}

static bool is_cond(const struct perr *e, const char *cond)
{
    return strcmp(e->cond, cond) == 0;
}

static uint32_t window_of(const struct xs_pubsub *ps)
{
    return ps->ev->window ? ps->ev->window : 16u;
}

static uint32_t publish_timeout(const struct xs_pubsub *ps)
{
    return ps->ev->publish_timeout_ms ? ps->ev->publish_timeout_ms : 10000u;
}

static void notify_state(struct xs_pubsub *ps)
{
    if (ps->state_cb)
        ps->state_cb(ps->state_ud);
}

/* Delivery every: what was handed out is handed out again, and records
 * appended from now on are replayed ones until publishing starts. */
static void spool_restart(struct xs_pubsub *ps)
{
    if (!ps->every)
        return;
    ps->sp.rewind(ps->sp.ud);
    ps->replaying = true;
    for (size_t i = 0; i < ps->n_nodes; i++)
        ps->nodes[i].live_from = 0;
}

/* ---- the retry of failed login checks ----------------------------------- */

static void retry_cancel(struct xs_pubsub *ps)
{
    if (ps->retry_armed && ps->timer)
        ps->timer(ps->timer_ud, 0);
    ps->retry_armed = false;
}

/* Arms the owner's timer for the next attempt (what: for the log). */
static void retry_schedule(struct xs_pubsub *ps, const char *what)
{
    if (!ps->timer || ps->retry_armed)
        return;
    uint32_t ms = ps->retry_ms ? ps->retry_ms : XS_PUBSUB_RETRY_MIN_MS;
    ps->retry_ms =
        ms >= XS_PUBSUB_RETRY_MAX_MS / 2 ? XS_PUBSUB_RETRY_MAX_MS : ms * 2;
    ps->retry_armed = true;
    GW_LOG(ps->log, GW_LOG_INFO, AREA, "retrying %s in %" PRIu32 " s", what,
           ms / 1000);
    ps->timer(ps->timer_ud, ms);
}

static void go_offline(struct xs_pubsub *ps)
{
    bool changed = ps->state != XS_PUBSUB_OFFLINE;
    retry_cancel(ps);
    ps->disco_failed = ps->resetup = false;
    ps->gen++;
    ps->state = XS_PUBSUB_OFFLINE;
    ps->in_flight = ps->setup_busy = 0;
    spool_restart(ps);
    if (changed)
        notify_state(ps);
}

#define FORBIDDEN_TEXT                                                         \
    "the gateway account needs publisher rights on %s, e.g. list it in "       \
    "Prosody's admins or use PEP"

static void set_warning(struct xs_pubsub *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_warning(struct xs_pubsub *ps, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->text, sizeof(ps->text), fmt, ap);
    va_end(ap);
    ps->state = XS_PUBSUB_WARNING;
    ps->resetup = false;
    notify_state(ps);
}

static void forbidden(struct xs_pubsub *ps, const char *what, const char *node)
{
    if (ps->state == XS_PUBSUB_WARNING)
        return;
    set_warning(ps, FORBIDDEN_TEXT, ps->service);
    GW_LOG(ps->log, ps->forbidden_logged ? GW_LOG_DEBUG : GW_LOG_ERROR, AREA,
           "%s of node %s refused (forbidden): %s; events are not published "
           "until the next login or reload (polling and readouts go on)",
           what, node, ps->text);
    ps->forbidden_logged = true;
}

/* ---- publishing --------------------------------------------------------- */

static void pump(struct xs_pubsub *ps);

enum sent { SENT, SKIPPED, FAILED };

/* What became of a request after its answer was handled. */
enum fate {
    DONE,  /* finished: the caller frees it */
    KEEP,  /* sent again (a retry, or the fix before one) */
    FREED, /* finished and already freed */
};

/* Sends r's publish (r is taken: kept by the session, or freed).  *rc_out
 * (may be NULL) gets send_req's result. */
static enum sent send_publish(struct xs_pubsub *ps, struct ps_req *r,
                              int *rc_out)
{
    struct ps_node *n = &ps->nodes[r->gu];
    struct xs_stanza *item = NULL;
    if (rc_out)
        *rc_out = GW_OK;
    if (r->spooled) {
        item = xs_stanza_copy(r->item);
    } else {
        struct gw_events_batch b = {
            .link = n->link,
            .unit = n->unit,
            .points = r->points,
            .n_points = r->n_points,
            .ts_ms = r->ts_ms,
            .seq = r->seq,
        };
        size_t n_fields = 0;
        item = xs_pubsub_item(ps->cfg, ps->iot, &b, gw_now_ms(), &n_fields);
        if (item && n_fields == 0) {
            /* Nothing to show (points never read): no item. */
            xs_stanza_free(item);
            req_free(r);
            ps->skipped++;
            return SKIPPED;
        }
        if (item && ps->every) {
            /* Latest values while the spool fails: ids of their own, so
             * that they never replace a spooled item (UNIT-SEQ). */
            const struct cfg_unit *cu = &ps->cfg->links[n->link].units[n->unit];
            char id[CFG_MAX_NAME + 32];
            snprintf(id, sizeof(id), "%s-latest-%" PRIu64, cu->name, r->seq);
            if (xs_stanza_set_attr(item, "id", id) != GW_OK) {
                xs_stanza_free(item);
                item = NULL;
            }
        }
    }
    struct xs_stanza *pubsub, *iq = iq_new(ps, "set", XS_NS_PUBSUB, &pubsub);
    struct xs_stanza *pub =
        pubsub ? xs_stanza_add_new(pubsub, "publish", NULL) : NULL;
    bool ok = item && pub && xs_stanza_set_attr(pub, "node", n->name) == GW_OK;
    if (ok && xs_stanza_add_child(pub, item) == GW_OK)
        item = NULL;
    else
        ok = false;
    r->options = (ps->features & XS_PUBSUB_F_PUBLISH_OPTIONS) != 0 &&
                 !n->no_options && !n->options_ok;
    r->cfg_epoch = n->epoch;
    if (ok && r->options) {
        struct xs_stanza *po =
            xs_stanza_add_new(pubsub, "publish-options", NULL);
        struct xs_stanza *x =
            po ? xs_pubsub_config_form(ps->ev, XS_NS_PUBSUB_PUBLISH_OPTIONS,
                                       NULL)
               : NULL;
        ok = x && xs_stanza_add_child(po, x) == GW_OK;
        if (!ok)
            xs_stanza_free(x);
    }
    xs_stanza_free(item);
    if (!ok) {
        xs_stanza_free(iq);
        iq = NULL;
    }
    r->tries++;
    int rc = send_req(ps, r, iq, publish_timeout(ps));
    if (rc_out)
        *rc_out = rc;
    if (rc == GW_OK)
        return SENT;
    ps->errors++;
    /* An oversized item comes back every cycle: logged once per node and
     * login, then counted. */
    bool first = rc != GW_ELIMIT || !n->logged_limit;
    if (rc == GW_ELIMIT)
        n->logged_limit = true;
    GW_LOG(ps->log, first ? GW_LOG_WARN : GW_LOG_DEBUG, AREA,
           "cannot publish to node %s: %s%s", n->name, gw_strerror(rc),
           rc == GW_ELIMIT ? " (the item is larger than xmpp.stanza_max; "
                             "further ones are counted, not logged, until "
                             "the next login)"
                           : "");
    return FAILED;
}

/* A latest-value publish failed: its points go out again with the
 * unit's next cycle (their newest values). */
static void requeue_points(struct xs_pubsub *ps, size_t gu, const size_t *pts,
                           size_t n)
{
    if (!ps->src.requeue || gu >= ps->n_nodes || n == 0)
        return;
    struct gw_events_batch b = {
        .link = ps->nodes[gu].link,
        .unit = ps->nodes[gu].unit,
        .points = pts,
        .n_points = n,
    };
    ps->src.requeue(ps->src.ud, &b);
}

static void publish_batch(struct xs_pubsub *ps, const struct gw_events_batch *b)
{
    size_t gu = SIZE_MAX;
    if (b->link < ps->cfg->n_links && b->unit < ps->cfg->links[b->link].n_units)
        gu = ps->unit_base[b->link] + b->unit;
    if (gu == SIZE_MAX || !ps->nodes[gu].enabled || ps->nodes[gu].failed) {
        ps->skipped++;
        return;
    }
    struct ps_req *r = req_new(ps, OP_PUBLISH, gu);
    if (r && b->n_points) {
        r->points = malloc(b->n_points * sizeof(*r->points));
        if (r->points)
            memcpy(r->points, b->points, b->n_points * sizeof(*r->points));
    }
    if (!r || (b->n_points && !r->points)) {
        if (r)
            req_free(r);
        ps->errors++;
        return;
    }
    r->n_points = b->n_points;
    r->seq = b->seq;
    r->ts_ms = b->ts_ms;
    int rc;
    enum sent sent = send_publish(ps, r, &rc);
    if (sent == SENT)
        ps->in_flight++;
    else if (sent == FAILED && rc != GW_ELIMIT && rc != GW_EDISCONNECTED &&
             rc != GW_ECLOSED)
        requeue_points(ps, gu, b->points, b->n_points);
}

/* ---- delivery every: the spool ------------------------------------------ */

static int cmp_name_ix(const void *a, const void *b)
{
    return strcmp(((const struct name_ix *)a)->name,
                  ((const struct name_ix *)b)->name);
}

/* The global unit index of a unit name, or SIZE_MAX. */
static size_t find_unit(const struct xs_pubsub *ps, const char *unit)
{
    struct name_ix key = {.name = unit};
    const struct name_ix *hit = ps->by_name
                                    ? bsearch(&key, ps->by_name, ps->n_nodes,
                                              sizeof(*ps->by_name), cmp_name_ix)
                                    : NULL;
    return hit ? hit->gu : SIZE_MAX;
}

static void notify_state(struct xs_pubsub *ps);

static void enter_fallback(struct xs_pubsub *ps, int rc)
{
    ps->fallback_ms = gw_now_ms();
    if (ps->fallback)
        return;
    struct gw_spool_stats st;
    memset(&st, 0, sizeof(st));
    if (ps->sp.stats)
        ps->sp.stats(ps->sp.ud, &st);
    snprintf(ps->spool_text, sizeof(ps->spool_text),
             "spool: %s; events fall back to latest values",
             st.error_text[0] ? st.error_text : gw_strerror(rc));
    ps->fallback = true;
    GW_LOG(ps->log, GW_LOG_ERROR, AREA,
           "%s (an append is tried again every %d s; polling goes on)",
           ps->spool_text, XS_PUBSUB_SPOOL_RETRY_MS / 1000);
    notify_state(ps);
}

static void leave_fallback(struct xs_pubsub *ps)
{
    if (!ps->fallback)
        return;
    ps->fallback = false;
    ps->spool_text[0] = '\0';
    GW_LOG(ps->log, GW_LOG_NOTICE, AREA,
           "the spool works again: every batch is spooled and delivered");
    notify_state(ps);
}

/* Appends a batch to the spool: its <fields> payload as a live publish
 * would carry it (seqnr is set when it is published).  Returns 0 (also
 * when the batch is skipped or refused for its size), or the spool's
 * error (the spool failed). */
static int spool_batch(struct xs_pubsub *ps, const struct gw_events_batch *b)
{
    size_t gu = SIZE_MAX;
    if (b->link < ps->cfg->n_links && b->unit < ps->cfg->links[b->link].n_units)
        gu = ps->unit_base[b->link] + b->unit;
    if (gu == SIZE_MAX || !ps->nodes[gu].enabled) {
        ps->skipped++;
        return GW_OK;
    }
    struct ps_node *n = &ps->nodes[gu];
    size_t n_fields = 0;
    struct xs_stanza *item =
        xs_pubsub_item(ps->cfg, ps->iot, b, gw_now_ms(), &n_fields);
    if (item && n_fields == 0) {
        xs_stanza_free(item);
        ps->skipped++;
        return GW_OK;
    }
    struct xs_stanza *fields =
        item ? xs_stanza_child(item, "fields", XS_NS_IOT_SD) : NULL;
    struct xs_buf buf;
    xs_buf_init(&buf, GW_SPOOL_PAYLOAD_MAX);
    int rc = fields ? xs_stanza_set_attr(fields, "seqnr", "0") : GW_ENOMEM;
    if (rc == GW_OK)
        rc = xs_stanza_serialize(fields, NULL, &buf);
    xs_stanza_free(item);
    const char *unit = ps->cfg->links[n->link].units[n->unit].name;
    if (rc == GW_OK) {
        uint64_t seq = 0;
        rc = ps->sp.append(ps->sp.ud, unit, b->ts_ms, buf.data, buf.len, &seq);
        if (rc == GW_OK) {
            ps->spooled++;
            if (ps->state == XS_PUBSUB_RUNNING && n->live_from == 0)
                n->live_from = seq;
        }
    }
    xs_buf_close(&buf);
    if (rc == GW_ELIMIT || rc == GW_ENOMEM) {
        /* This batch only: not a failure of the spool. */
        ps->errors++;
        ps->lost++;
        GW_LOG(ps->log, GW_LOG_WARN, AREA,
               "unit %s: a batch of %zu point(s) cannot be spooled: %s%s", unit,
               b->n_points, gw_strerror(rc),
               rc == GW_ELIMIT ? " (larger than a spool record)" : "");
        return GW_OK;
    }
    return rc;
}

/* Takes every ready batch into the spool (delivery every). */
static void drain_source(struct xs_pubsub *ps)
{
    struct gw_events_batch b;
    while (!ps->fallback && ps->src.take && ps->src.take(ps->src.ud, &b)) {
        int rc = spool_batch(ps, &b);
        if (rc == GW_OK)
            continue;
        enter_fallback(ps, rc);
        /* This batch is taken: publish it now (latest values from here
         * on; when not publishing, the snapshot of the next login covers
         * it). */
        if (ps->state == XS_PUBSUB_RUNNING)
            publish_batch(ps, &b);
    }
}

/* An item of a spool record; NULL on a payload that does not parse. */
static struct xs_stanza *dom_copy(const xmlNode *n, unsigned depth)
{
    if (depth > 32)
        return NULL;
    const char *ns = n->ns && n->ns->href ? (const char *)n->ns->href : NULL;
    struct xs_stanza *s = xs_stanza_new((const char *)n->name, ns);
    if (!s)
        return NULL;
    for (const xmlAttr *a = n->properties; a; a = a->next) {
        xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
        int rc = xs_stanza_set_attr(s, (const char *)a->name,
                                    v ? (const char *)v : "");
        xmlFree(v);
        if (rc != GW_OK)
            goto fail;
    }
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            struct xs_stanza *k = dom_copy(c, depth + 1);
            if (!k || xs_stanza_add_child(s, k) != GW_OK) {
                xs_stanza_free(k);
                goto fail;
            }
        } else if ((c->type == XML_TEXT_NODE ||
                    c->type == XML_CDATA_SECTION_NODE) &&
                   c->content) {
            const char *t = (const char *)c->content;
            if (xs_stanza_append_text(s, t, strlen(t)) != GW_OK)
                goto fail;
        }
    }
    return s;
fail:
    xs_stanza_free(s);
    return NULL;
}

static struct xs_stanza *parse_payload(const uint8_t *p, size_t len)
{
    if (!p || len == 0 || len > GW_SPOOL_PAYLOAD_MAX)
        return NULL;
    xmlDocPtr doc = xmlReadMemory((const char *)p, (int)len, "spool", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR |
                                      XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
    if (!doc)
        return NULL;
    const xmlNode *root = xmlDocGetRootElement(doc);
    struct xs_stanza *f = NULL;
    if (root && strcmp((const char *)root->name, "fields") == 0 && root->ns &&
        root->ns->href &&
        strcmp((const char *)root->ns->href, XS_NS_IOT_SD) == 0)
        f = dom_copy(root, 0);
    xmlFreeDoc(doc);
    return f;
}

struct xs_stanza *xs_pubsub_spool_item(const struct gw_spool_rec *rec,
                                       const char *delay_from)
{
    char id[GW_SPOOL_UNIT_MAX + 24], num[24], t[40];
    snprintf(id, sizeof(id), "%s-%" PRIu64, rec->unit, rec->seq);
    struct xs_stanza *item = xs_stanza_new("item", NULL);
    if (!item || xs_stanza_set_attr(item, "id", id) != GW_OK)
        goto fail;
    if (rec->kind == GW_SPOOL_GAP) {
        struct xs_stanza *g = xs_stanza_add_new(item, "gap", XS_NS_FG_SPOOL);
        if (!g || xs_stanza_set_attr(g, "node", rec->unit) != GW_OK)
            goto fail;
        xs_iot_format_time(rec->gap_from_ms, t, sizeof(t));
        if (xs_stanza_set_attr(g, "from", t) != GW_OK)
            goto fail;
        xs_iot_format_time(rec->gap_to_ms, t, sizeof(t));
        if (xs_stanza_set_attr(g, "to", t) != GW_OK)
            goto fail;
        snprintf(num, sizeof(num), "%" PRIu64, rec->gap_count);
        if (xs_stanza_set_attr(g, "samples", num) != GW_OK)
            goto fail;
        return item;
    }
    struct xs_stanza *f = parse_payload(rec->payload, rec->len);
    if (!f || xs_stanza_add_child(item, f) != GW_OK) {
        xs_stanza_free(f);
        goto fail;
    }
    snprintf(num, sizeof(num), "%" PRIu64, rec->seq);
    if (xs_stanza_set_attr(f, "seqnr", num) != GW_OK)
        goto fail;
    if (delay_from) {
        /* XEP-0203 inside the payload (after the <node>: XEP-0323
         * readers such as slixmpp's xep_0323 skip what they do not
         * know). */
        struct xs_stanza *d = xs_stanza_add_new(f, "delay", XS_NS_DELAY);
        xs_iot_format_time(rec->ts_ms, t, sizeof(t));
        if (!d || xs_stanza_set_attr(d, "stamp", t) != GW_OK ||
            (delay_from[0] &&
             xs_stanza_set_attr(d, "from", delay_from) != GW_OK))
            goto fail;
    }
    return item;
fail:
    xs_stanza_free(item);
    return NULL;
}

/* A record given up (acknowledged without a publication). */
static void give_up(struct xs_pubsub *ps, size_t gu, uint64_t pos,
                    const char *unit, uint64_t seq, const char *why)
{
    ps->sp.ack(ps->sp.ud, pos);
    ps->lost++;
    struct ps_node *n = gu == SIZE_MAX ? NULL : &ps->nodes[gu];
    bool first = n ? !n->logged_error : true;
    if (n)
        n->logged_error = true;
    GW_LOG(ps->log, first ? GW_LOG_WARN : GW_LOG_DEBUG, AREA,
           "spooled item %s-%" PRIu64 " given up (%s); counted as lost", unit,
           seq, why);
}

/* Publishes one record handed out by the spool.  Returns false when
 * nothing more should be sent now (the session is going). */
static bool publish_record(struct xs_pubsub *ps, const struct gw_spool_rec *rec)
{
    size_t gu = find_unit(ps, rec->unit);
    if (gu == SIZE_MAX || !ps->nodes[gu].enabled) {
        give_up(ps, gu, rec->pos, rec->unit, rec->seq,
                "the unit has no events node in this map");
        return true;
    }
    struct ps_node *n = &ps->nodes[gu];
    if (n->failed) {
        give_up(ps, gu, rec->pos, rec->unit, rec->seq,
                "its node could not be set up at this login");
        return true;
    }
    bool delayed = false;
    if (rec->kind == GW_SPOOL_SAMPLE) {
        delayed = n->live_from == 0 || rec->seq < n->live_from ||
                  gw_now_ms() - rec->ts_ms > XS_PUBSUB_DELAY_AFTER_MS;
        ps->replaying = delayed;
    }
    struct xs_stanza *item =
        xs_pubsub_spool_item(rec, delayed ? ps->bare : NULL);
    if (!item) {
        give_up(ps, gu, rec->pos, rec->unit, rec->seq,
                "its payload cannot be read");
        return true;
    }
    struct ps_req *r = req_new(ps, OP_PUBLISH, gu);
    if (!r) {
        xs_stanza_free(item);
        ps->errors++;
        return false; /* sent again after the next rewind */
    }
    r->spooled = true;
    r->delayed = delayed;
    r->gap = rec->kind == GW_SPOOL_GAP;
    r->pos = rec->pos;
    r->seq = rec->seq;
    r->ts_ms = rec->ts_ms;
    r->item = item;
    uint64_t pos = rec->pos, seq = rec->seq;
    int rc;
    if (send_publish(ps, r, &rc) == SENT) {
        ps->in_flight++;
        return true;
    }
    if (rc == GW_ELIMIT) {
        give_up(ps, gu, pos, n->name, seq, "larger than xmpp.stanza_max");
        return true;
    }
    return false;
}

/* Publishes a failed spooled publish again, up to XS_PUBSUB_SPOOL_TRIES
 * sends in a session; then gives it up. */
static enum fate spool_retry(struct xs_pubsub *ps, struct ps_req *r,
                             const char *cond);

static void pump(struct xs_pubsub *ps)
{
    if (ps->pumping)
        return;
    ps->pumping = true;
    while (ps->state == XS_PUBSUB_RUNNING) {
        uint32_t limit = window_of(ps);
        if (ps->every && ps->replaying && limit > 1)
            limit /= 2; /* pacing: replay leaves half the window */
        if (ps->in_flight >= limit)
            break;
        if (ps->every) {
            struct gw_spool_rec rec;
            if (ps->sp.next(ps->sp.ud, &rec)) {
                if (!publish_record(ps, &rec))
                    break;
                continue;
            }
            ps->replaying = false;
            if (!ps->fallback)
                break;
        }
        struct gw_events_batch b;
        if (!ps->src.take || !ps->src.take(ps->src.ud, &b))
            break;
        if (ps->every &&
            gw_now_ms() - ps->fallback_ms >= XS_PUBSUB_SPOOL_RETRY_MS) {
            int rc = spool_batch(ps, &b);
            if (rc == GW_OK) {
                leave_fallback(ps);
                drain_source(ps);
                continue;
            }
            ps->fallback_ms = gw_now_ms();
        }
        publish_batch(ps, &b);
    }
    ps->pumping = false;
}

/* A publish ended (result, error, or given up): its window slot is free. */
static void publish_done(struct xs_pubsub *ps)
{
    if (ps->in_flight > 0)
        ps->in_flight--;
    pump(ps);
}

/* Retries r's publish once (after a configure or create). */
static enum fate republish(struct xs_pubsub *ps, struct ps_req *r)
{
    r->op = OP_PUBLISH;
    r->retried = true;
    ps->retries++;
    return send_publish(ps, r, NULL) == SENT ? KEEP : FREED;
}

static enum fate spool_retry(struct xs_pubsub *ps, struct ps_req *r,
                             const char *cond)
{
    if (r->tries < XS_PUBSUB_SPOOL_TRIES) {
        ps->retries++;
        int rc;
        if (send_publish(ps, r, &rc) == SENT)
            return KEEP;
        /* r is freed: an oversized item is given up, otherwise it is
         * sent again after the next rewind. */
        return FREED;
    }
    char why[96];
    snprintf(why, sizeof(why), "%u publishes failed, the last with %s",
             r->tries, cond);
    give_up(ps, r->gu, r->pos, ps->nodes[r->gu].name, r->seq, why);
    return DONE;
}

static void log_publish_error(struct xs_pubsub *ps, struct ps_node *n,
                              const struct perr *e)
{
    bool first = !n->logged_error;
    n->logged_error = true;
    GW_LOG(ps->log, first ? GW_LOG_WARN : GW_LOG_DEBUG, AREA,
           "publish to node %s failed: %s%s", n->name, e->cond,
           first ? " (further failures of this node are counted, not logged, "
                   "until the next login)"
                 : "");
}

/* Handles a publish answer. */
static enum fate on_publish(struct xs_pubsub *ps, struct ps_req *r,
                            const struct xs_stanza *reply, int err)
{
    struct ps_node *n = &ps->nodes[r->gu];
    if (is_result(reply)) {
        ps->published++;
        n->published++;
        if (r->options && r->cfg_epoch == n->epoch)
            n->options_ok = true;
        if (r->spooled) {
            ps->sp.ack(ps->sp.ud, r->pos);
            ps->replayed += r->delayed;
            ps->gaps += r->gap;
        }
        return DONE;
    }
    if (ps->state != XS_PUBSUB_RUNNING) {
        ps->errors++;
        return DONE; /* stopped meanwhile (forbidden): no retries */
    }
    struct perr e;
    reply_error(reply, err, &e);
    if (is_cond(&e, "forbidden")) {
        ps->errors++;
        forbidden(ps, "publish", n->name);
        return DONE;
    }
    if (!r->retried && e.precondition) {
        if (n->epoch != r->cfg_epoch)
            return republish(ps, r); /* configured since it was sent */
        struct xs_stanza *pubsub,
            *iq = iq_new(ps, "set", XS_NS_PUBSUB_OWNER, &pubsub);
        struct xs_stanza *conf =
            pubsub ? xs_stanza_add_new(pubsub, "configure", NULL) : NULL;
        struct xs_stanza *x =
            conf ? xs_pubsub_config_form(ps->ev, XS_NS_PUBSUB_NODE_CONFIG, NULL)
                 : NULL;
        if (!x || xs_stanza_set_attr(conf, "node", n->name) != GW_OK ||
            xs_stanza_add_child(conf, x) != GW_OK) {
            xs_stanza_free(x);
            xs_stanza_free(iq);
            iq = NULL;
        }
        GW_LOG(ps->log, GW_LOG_INFO, AREA,
               "node %s: publish-options precondition not met; configuring "
               "the node, then publishing again",
               n->name);
        r->op = OP_FIX_CONFIGURE;
        if (send_req(ps, r, iq, SETUP_TIMEOUT_MS) == GW_OK)
            return KEEP;
        ps->errors++;
        return FREED;
    }
    if (!r->retried && is_cond(&e, "item-not-found")) {
        struct xs_stanza *pubsub,
            *iq = iq_new(ps, "set", XS_NS_PUBSUB, &pubsub);
        struct xs_stanza *cr =
            pubsub ? xs_stanza_add_new(pubsub, "create", NULL) : NULL;
        if (!cr || xs_stanza_set_attr(cr, "node", n->name) != GW_OK) {
            xs_stanza_free(iq);
            iq = NULL;
        } else if (ps->features & XS_PUBSUB_F_CREATE_AND_CONFIGURE) {
            struct xs_stanza *conf =
                xs_stanza_add_new(pubsub, "configure", NULL);
            struct xs_stanza *x =
                conf ? xs_pubsub_config_form(ps->ev, XS_NS_PUBSUB_NODE_CONFIG,
                                             NULL)
                     : NULL;
            if (!x || xs_stanza_add_child(conf, x) != GW_OK) {
                xs_stanza_free(x);
                xs_stanza_free(iq);
                iq = NULL;
            }
        }
        GW_LOG(ps->log, GW_LOG_INFO, AREA,
               "node %s is gone; creating it, then publishing again", n->name);
        r->op = OP_FIX_CREATE;
        if (send_req(ps, r, iq, SETUP_TIMEOUT_MS) == GW_OK)
            return KEEP;
        ps->errors++;
        return FREED;
    }
    ps->errors++;
    if (e.precondition && !n->no_options) {
        n->no_options = true;
        GW_LOG(ps->log, GW_LOG_WARN, AREA,
               "node %s still fails the publish-options preconditions after "
               "a configure; publishing to it without publish-options",
               n->name);
    } else if (!reply && err == GW_ETIMEOUT) {
        GW_LOG(ps->log, ps->timeout_logged ? GW_LOG_DEBUG : GW_LOG_WARN, AREA,
               "a publish to node %s was not answered within %" PRIu32
               " ms (counted as an error)",
               n->name, publish_timeout(ps));
        ps->timeout_logged = true;
    } else {
        log_publish_error(ps, n, &e);
    }
    /* A spooled record is acked only on a result: sent again, then given
     * up.  Latest values: the points go out again with the next cycle. */
    if (r->spooled)
        return spool_retry(ps, r, e.cond);
    requeue_points(ps, r->gu, r->points, r->n_points);
    return DONE;
}

/* ---- login checks ------------------------------------------------------- */

static void setup_pump(struct xs_pubsub *ps);

static void start_running(struct xs_pubsub *ps)
{
    size_t ready = 0, failed = 0;
    for (size_t i = 0; i < ps->n_nodes; i++) {
        ready += ps->nodes[i].enabled && !ps->nodes[i].failed;
        failed += ps->nodes[i].enabled && ps->nodes[i].failed;
    }
    ps->state = XS_PUBSUB_RUNNING;
    ps->text[0] = '\0';
    GW_LOG(ps->log, GW_LOG_NOTICE, AREA,
           "publishing to %zu node(s) on %s%s (%s publish-options)%s", ready,
           ps->service, ps->pep ? " (PEP)" : "",
           (ps->features & XS_PUBSUB_F_PUBLISH_OPTIONS) ? "with" : "without",
           failed ? "; some nodes could not be set up (see above)" : "");
    notify_state(ps);
    spool_restart(ps);
    /* Subscribers see the latest value of every point after a login (a
     * server restart loses non-persistent items).  Delivery every sends
     * what the spool holds instead: a snapshot would repeat samples. */
    if (ps->src.snapshot && (!ps->every || ps->fallback))
        ps->src.snapshot(ps->src.ud);
    if (failed)
        retry_schedule(ps, "the setup of the failed node(s)");
    pump(ps);
}

/* The failed nodes were set up again (xs_pubsub_retry). */
static void end_resetup(struct xs_pubsub *ps)
{
    size_t ready = 0, failed = 0;
    for (size_t i = 0; i < ps->n_nodes; i++) {
        ready += ps->nodes[i].enabled && !ps->nodes[i].failed;
        failed += ps->nodes[i].enabled && ps->nodes[i].failed;
    }
    ps->resetup = false;
    GW_LOG(ps->log, GW_LOG_NOTICE, AREA,
           "publishing to %zu node(s) on %s; %zu still cannot be set up", ready,
           ps->service, failed);
    notify_state(ps);
    /* The recovered nodes get the current values (their batches were
     * dropped meanwhile). */
    if (failed < ps->resetup_n && ps->src.snapshot &&
        (!ps->every || ps->fallback))
        ps->src.snapshot(ps->src.ud);
    if (failed)
        retry_schedule(ps, "the setup of the failed node(s)");
    pump(ps);
}

static bool setup_active(const struct xs_pubsub *ps)
{
    return ps->state == XS_PUBSUB_SETUP ||
           (ps->state == XS_PUBSUB_RUNNING && ps->resetup);
}

static void node_done(struct xs_pubsub *ps, size_t gu, bool failed)
{
    ps->nodes[gu].failed = failed;
    if (ps->setup_busy > 0)
        ps->setup_busy--;
    ps->setup_done++;
    setup_pump(ps);
}

/* Sends an owner request <OP node='...'>[child] for node gu.  Returns 0 or
 * the error (then r is freed). */
static int send_owner(struct xs_pubsub *ps, enum op op, size_t gu,
                      const char *type, const char *el, struct xs_stanza *child)
{
    struct xs_stanza *pubsub,
        *iq = iq_new(ps, type, XS_NS_PUBSUB_OWNER, &pubsub);
    struct xs_stanza *e = pubsub ? xs_stanza_add_new(pubsub, el, NULL) : NULL;
    if (!e || xs_stanza_set_attr(e, "node", ps->nodes[gu].name) != GW_OK ||
        (child && xs_stanza_add_child(e, child) != GW_OK)) {
        xs_stanza_free(child);
        xs_stanza_free(iq);
        iq = NULL;
    }
    return send_req(ps, req_new(ps, op, gu), iq, SETUP_TIMEOUT_MS);
}

static int send_create(struct xs_pubsub *ps, size_t gu)
{
    struct ps_node *n = &ps->nodes[gu];
    const struct cfg_unit *cu = &ps->cfg->links[n->link].units[n->unit];
    struct xs_stanza *pubsub, *iq = iq_new(ps, "set", XS_NS_PUBSUB, &pubsub);
    struct xs_stanza *cr =
        pubsub ? xs_stanza_add_new(pubsub, "create", NULL) : NULL;
    bool ok = cr && xs_stanza_set_attr(cr, "node", n->name) == GW_OK;
    if (ok && (ps->features & XS_PUBSUB_F_CREATE_AND_CONFIGURE)) {
        /* Prosody refuses an empty <configure/>: a form or nothing. */
        char title[CFG_MAX_NAME + 32];
        snprintf(title, sizeof(title), "fieldgate unit %s", cu->name);
        struct xs_stanza *conf = xs_stanza_add_new(pubsub, "configure", NULL);
        struct xs_stanza *x =
            conf
                ? xs_pubsub_config_form(ps->ev, XS_NS_PUBSUB_NODE_CONFIG, title)
                : NULL;
        ok = x && xs_stanza_add_child(conf, x) == GW_OK;
        if (!ok)
            xs_stanza_free(x);
    }
    if (!ok) {
        xs_stanza_free(iq);
        iq = NULL;
    }
    return send_req(ps, req_new(ps, OP_CREATE, gu), iq, SETUP_TIMEOUT_MS);
}

static bool desired_member(const struct xs_pubsub *ps, const char *jid)
{
    const struct cfg_access *a = &ps->cfg->access;
    for (size_t i = 0; i < a->n_readers; i++)
        if (strchr(a->readers[i], '@') && strcasecmp(a->readers[i], jid) == 0)
            return true;
    for (size_t i = 0; i < a->n_controllers; i++)
        if (strchr(a->controllers[i], '@') &&
            strcasecmp(a->controllers[i], jid) == 0)
            return true;
    return false;
}

/* The member affiliations of a whitelisted node (after its configuration
 * step); other nodes are done. */
static void aff_step(struct xs_pubsub *ps, size_t gu)
{
    if (ps->ev->access_model != CFG_AM_WHITELIST) {
        node_done(ps, gu, false);
        return;
    }
    if (send_owner(ps, OP_GET_AFF, gu, "get", "affiliations", NULL) != GW_OK)
        node_done(ps, gu, false);
}

static bool aff_add(struct xs_stanza *affs, const char *jid, const char *aff)
{
    struct xs_stanza *a = xs_stanza_add_new(affs, "affiliation", NULL);
    return a && xs_stanza_set_attr(a, "jid", jid) == GW_OK &&
           xs_stanza_set_attr(a, "affiliation", aff) == GW_OK;
}

/* Compares the node's affiliations with the access: section's bare JIDs
 * and sends the changes; false when there are none (or on no memory). */
static bool aff_sync(struct xs_pubsub *ps, size_t gu,
                     const struct xs_stanza *reply)
{
    const struct xs_stanza *p =
        xs_stanza_child(reply, "pubsub", XS_NS_PUBSUB_OWNER);
    const struct xs_stanza *cur =
        p ? xs_stanza_child(p, "affiliations", NULL) : NULL;
    struct xs_stanza *affs = xs_stanza_new("affiliations", NULL);
    if (!affs)
        return false;
    size_t added = 0, removed = 0;
    bool ok = true;
    /* Members no longer listed go (owners and publishers are left). */
    for (const struct xs_stanza *a = cur ? xs_stanza_first_child(cur) : NULL;
         a && ok; a = xs_stanza_next(a)) {
        const char *jid = xs_stanza_attr(a, "jid");
        const char *aff = xs_stanza_attr(a, "affiliation");
        if (!jid || !aff || strcmp(aff, "member") != 0 ||
            desired_member(ps, jid) || strcasecmp(jid, ps->bare) == 0)
            continue;
        ok = aff_add(affs, jid, "none");
        removed++;
    }
    const struct cfg_access *acc = &ps->cfg->access;
    for (size_t k = 0; k < acc->n_readers + acc->n_controllers && ok; k++) {
        const char *jid = k < acc->n_readers
                              ? acc->readers[k]
                              : acc->controllers[k - acc->n_readers];
        if (!strchr(jid, '@') || strcasecmp(jid, ps->bare) == 0)
            continue;
        bool have = false;
        for (const struct xs_stanza *a = cur ? xs_stanza_first_child(cur)
                                             : NULL;
             a && !have; a = xs_stanza_next(a)) {
            const char *j = xs_stanza_attr(a, "jid");
            const char *aff = xs_stanza_attr(a, "affiliation");
            have = j && aff && strcasecmp(j, jid) == 0 &&
                   (strcmp(aff, "member") == 0 ||
                    strcmp(aff, "publisher") == 0 || strcmp(aff, "owner") == 0);
        }
        /* A JID listed twice (reader and controller) is added once. */
        for (const struct xs_stanza *a = xs_stanza_first_child(affs);
             a && !have; a = xs_stanza_next(a))
            have = strcasecmp(xs_stanza_attr(a, "jid"), jid) == 0 &&
                   strcmp(xs_stanza_attr(a, "affiliation"), "member") == 0;
        if (have)
            continue;
        ok = aff_add(affs, jid, "member");
        added++;
    }
    if (!ok || added + removed == 0) {
        xs_stanza_free(affs);
        return false;
    }
    GW_LOG(ps->log, GW_LOG_INFO, AREA,
           "node %s: %zu member(s) added, %zu removed (whitelist from access:)",
           ps->nodes[gu].name, added, removed);
    /* send_owner adds <affiliations node>; move our children into it. */
    struct xs_stanza *pubsub,
        *iq = iq_new(ps, "set", XS_NS_PUBSUB_OWNER, &pubsub);
    struct xs_stanza *e =
        pubsub ? xs_stanza_add_new(pubsub, "affiliations", NULL) : NULL;
    if (!e || xs_stanza_set_attr(e, "node", ps->nodes[gu].name) != GW_OK) {
        xs_stanza_free(iq);
        iq = NULL;
    }
    while (iq && xs_stanza_first_child(affs)) {
        struct xs_stanza *a = xs_stanza_first_child(affs);
        if (xs_stanza_detach(a) != GW_OK ||
            xs_stanza_add_child(e, a) != GW_OK) {
            xs_stanza_free(iq);
            iq = NULL;
        }
    }
    xs_stanza_free(affs);
    return send_req(ps, req_new(ps, OP_SET_AFF, gu), iq, SETUP_TIMEOUT_MS) ==
           GW_OK;
}

static void start_node(struct xs_pubsub *ps, size_t gu)
{
    int rc = (ps->features & XS_PUBSUB_F_CONFIG_NODE)
                 ? send_owner(ps, OP_GET_CONFIG, gu, "get", "configure", NULL)
                 : send_create(ps, gu);
    if (rc == GW_OK) {
        ps->setup_busy++;
        return;
    }
    GW_LOG(ps->log, GW_LOG_WARN, AREA, "node %s: cannot check it: %s",
           ps->nodes[gu].name, gw_strerror(rc));
    ps->setup_busy++;
    node_done(ps, gu, true);
}

static void setup_pump(struct xs_pubsub *ps)
{
    if (ps->setup_pumping)
        return;
    ps->setup_pumping = true;
    while (setup_active(ps) && ps->setup_busy < window_of(ps) &&
           ps->setup_next < ps->n_nodes) {
        size_t gu = ps->setup_next++;
        /* Set up again: only the nodes that failed. */
        if (!ps->nodes[gu].enabled || (ps->resetup && !ps->nodes[gu].failed)) {
            ps->setup_done++;
            continue;
        }
        start_node(ps, gu);
    }
    ps->setup_pumping = false;
    if (setup_active(ps) && ps->setup_done >= ps->n_nodes) {
        if (ps->resetup)
            end_resetup(ps);
        else
            start_running(ps);
    }
}

/* A login check's answer for node gu.  Returns what became of r. */
static enum fate on_setup(struct xs_pubsub *ps, struct ps_req *r,
                          const struct xs_stanza *reply, int err)
{
    size_t gu = r->gu;
    struct ps_node *n = &ps->nodes[gu];
    bool ok = is_result(reply);
    struct perr e;
    if (!ok)
        reply_error(reply, err, &e);
    switch (r->op) {
    case OP_GET_CONFIG: {
        if (!ok) {
            if (is_cond(&e, "timeout")) {
                GW_LOG(ps->log, GW_LOG_WARN, AREA,
                       "node %s: no answer to its configuration request",
                       n->name);
                node_done(ps, gu, false);
                return DONE;
            }
            if (is_cond(&e, "forbidden")) {
                /* Not its owner: the configuration cannot be enforced, so
                 * publish-options preconditions would only fail. */
                n->no_options = true;
            }
            if (send_create(ps, gu) != GW_OK) {
                /* item-not-found (or not an owner): create it. */
                node_done(ps, gu, true);
            }
            return DONE;
        }
        const struct xs_stanza *p =
            xs_stanza_child(reply, "pubsub", XS_NS_PUBSUB_OWNER);
        const struct xs_stanza *c =
            p ? xs_stanza_child(p, "configure", NULL) : NULL;
        const struct xs_stanza *x =
            c ? xs_stanza_child(c, "x", XS_NS_XDATA) : NULL;
        struct xs_stanza *submit = NULL;
        size_t diff = xs_pubsub_config_diff(ps->ev, x, &submit);
        if (diff == 0 || !submit) {
            xs_stanza_free(submit);
            aff_step(ps, gu);
            return DONE;
        }
        GW_LOG(ps->log, GW_LOG_NOTICE, AREA,
               "node %s: %zu configuration field(s) differ from the map; "
               "configuring it",
               n->name, diff);
        if (send_owner(ps, OP_CONFIGURE, gu, "set", "configure", submit) !=
            GW_OK)
            aff_step(ps, gu);
        return DONE;
    }
    case OP_CREATE:
        if (ok) {
            GW_LOG(ps->log, GW_LOG_INFO, AREA, "node %s created", n->name);
            n->epoch++;
            if (!(ps->features & XS_PUBSUB_F_CREATE_AND_CONFIGURE) &&
                (ps->features & XS_PUBSUB_F_CONFIG_NODE)) {
                struct xs_stanza *x = xs_pubsub_config_form(
                    ps->ev, XS_NS_PUBSUB_NODE_CONFIG, NULL);
                if (send_owner(ps, OP_CONFIGURE, gu, "set", "configure", x) ==
                    GW_OK)
                    return DONE;
            }
            aff_step(ps, gu);
        } else if (is_cond(&e, "forbidden")) {
            forbidden(ps, "creation", n->name);
        } else if (is_cond(&e, "conflict")) {
            GW_LOG(ps->log, GW_LOG_NOTICE, AREA,
                   "node %s exists but its configuration cannot be read (the "
                   "account is not its owner): the map's configuration is "
                   "not enforced (publishing without publish-options)",
                   n->name);
            n->no_options = true;
            node_done(ps, gu, false);
        } else {
            GW_LOG(ps->log, GW_LOG_WARN, AREA,
                   "node %s cannot be created: %s; its events are dropped "
                   "until it is set up (retried)",
                   n->name, e.cond);
            node_done(ps, gu, true);
        }
        return DONE;
    case OP_CONFIGURE:
        if (ok)
            n->epoch++;
        else
            GW_LOG(ps->log, GW_LOG_WARN, AREA,
                   "node %s cannot be configured: %s; its configuration is "
                   "not enforced",
                   n->name, e.cond);
        aff_step(ps, gu);
        return DONE;
    case OP_GET_AFF:
        if (!ok) {
            GW_LOG(ps->log, GW_LOG_WARN, AREA,
                   "node %s: its affiliations cannot be read: %s; members "
                   "are not synchronized",
                   n->name, e.cond);
            node_done(ps, gu, false);
        } else if (!aff_sync(ps, gu, reply)) {
            node_done(ps, gu, false);
        }
        return DONE;
    case OP_SET_AFF:
        if (!ok)
            GW_LOG(ps->log, GW_LOG_WARN, AREA,
                   "node %s: its members cannot be set: %s", n->name, e.cond);
        node_done(ps, gu, false);
        return DONE;
    default:
        return DONE;
    }
}

static void on_disco(struct xs_pubsub *ps, const struct xs_stanza *reply,
                     int err)
{
    bool ok = is_result(reply);
    if (!ok) {
        struct perr e;
        reply_error(reply, err, &e);
        if (is_cond(&e, "timeout") || is_cond(&e, "remote-server-not-found") ||
            is_cond(&e, "service-unavailable") ||
            is_cond(&e, "item-not-found")) {
            set_warning(ps, "the PubSub service %s is not available (%s)",
                        ps->service, e.cond);
            GW_LOG(ps->log, GW_LOG_ERROR, AREA,
                   "%s; events are not published until it answers (retried)",
                   ps->text);
            ps->disco_failed = true;
            retry_schedule(ps, "the check of the PubSub service");
            return;
        }
        /* Assume what XEP-0060 services usually have. */
        ps->features =
            XS_PUBSUB_F_CREATE_AND_CONFIGURE | XS_PUBSUB_F_CONFIG_NODE;
        GW_LOG(ps->log, GW_LOG_WARN, AREA,
               "disco#info of %s failed (%s); assuming create-and-configure "
               "and config-node",
               ps->service, e.cond);
    } else {
        ps->features = xs_pubsub_parse_features(reply);
    }
    GW_LOG(ps->log, GW_LOG_DEBUG, AREA,
           "%s: publish-options %s, auto-create %s, create-and-configure %s, "
           "config-node %s, persistent-items %s",
           ps->service,
           (ps->features & XS_PUBSUB_F_PUBLISH_OPTIONS) ? "yes" : "no",
           (ps->features & XS_PUBSUB_F_AUTO_CREATE) ? "yes" : "no",
           (ps->features & XS_PUBSUB_F_CREATE_AND_CONFIGURE) ? "yes" : "no",
           (ps->features & XS_PUBSUB_F_CONFIG_NODE) ? "yes" : "no",
           (ps->features & XS_PUBSUB_F_PERSISTENT_ITEMS) ? "yes" : "no");
    if (ps->ev->persist_items && !(ps->features & XS_PUBSUB_F_PERSISTENT_ITEMS))
        GW_LOG(ps->log, GW_LOG_WARN, AREA,
               "%s does not announce persistent-items; events.persist_items "
               "may not be honoured",
               ps->service);
    setup_pump(ps);
}

static void on_reply(void *ud, const struct xs_stanza *reply, int err)
{
    struct ps_req *r = ud;
    struct xs_pubsub *ps = r->ps;
    if (!ps || r->gen != ps->gen) {
        req_free(r); /* orphaned, or from an earlier login */
        return;
    }
    if (!reply && (err == GW_EDISCONNECTED || err == GW_ECANCELED)) {
        /* The session went down (xs_pubsub_offline follows): the snapshot
         * after the next login publishes what was lost here. */
        req_free(r);
        go_offline(ps);
        return;
    }
    enum fate f = DONE;
    switch (r->op) {
    case OP_DISCO:
        req_free(r);
        if (ps->state == XS_PUBSUB_SETUP)
            on_disco(ps, reply, err);
        return;
    case OP_PUBLISH:
        f = on_publish(ps, r, reply, err);
        break;
    case OP_FIX_CONFIGURE:
    case OP_FIX_CREATE: {
        struct ps_node *n = &ps->nodes[r->gu];
        bool ok = is_result(reply);
        struct perr e;
        if (!ok)
            reply_error(reply, err, &e);
        if (!ok && is_cond(&e, "forbidden") && r->op == OP_FIX_CREATE) {
            forbidden(ps, "creation", n->name);
            ps->errors++;
            break;
        }
        if (r->op == OP_FIX_CONFIGURE) {
            /* A forbidden configure is this node's matter (not its owner:
             * an admin created it); the gateway may still publish to it,
             * without publish-options. */
            if (ok) {
                n->epoch++;
            } else {
                n->no_options = true;
                GW_LOG(ps->log, GW_LOG_WARN, AREA,
                       "node %s cannot be configured: %s; publishing to it "
                       "without publish-options",
                       n->name, e.cond);
            }
        } else if (ok || is_cond(&e, "conflict")) {
            n->epoch++;
        } else {
            GW_LOG(ps->log, GW_LOG_WARN, AREA,
                   "node %s cannot be created again: %s", n->name, e.cond);
            ps->errors++;
            if (!r->spooled)
                requeue_points(ps, r->gu, r->points, r->n_points);
            break;
        }
        f = ps->state == XS_PUBSUB_RUNNING ? republish(ps, r) : DONE;
        break;
    }
    default:
        if (setup_active(ps))
            on_setup(ps, r, reply, err);
        req_free(r);
        return;
    }
    if (f == KEEP)
        return;
    if (f == DONE)
        req_free(r);
    publish_done(ps);
}

/* ---- lifecycle ---------------------------------------------------------- */

static int conn_iq(void *ud, struct xs_stanza *iq, uint32_t timeout_ms,
                   xs_iq_cb cb, void *cb_ud)
{
    return xs_conn_iq(ud, iq, timeout_ms, cb, cb_ud);
}

int xs_pubsub_new(const struct cfg *cfg, struct gw_iot *iot,
                  const struct xs_pubsub_source *src, const struct gw_log *log,
                  struct xs_pubsub **out)
{
    if (!cfg->events.present)
        return GW_EINVAL;
    struct xs_pubsub *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return GW_ENOMEM;
    ps->cfg = cfg;
    ps->ev = &cfg->events;
    ps->iot = iot;
    if (src)
        ps->src = *src;
    ps->log = log;
    for (size_t l = 0; l < cfg->n_links; l++)
        ps->n_nodes += cfg->links[l].n_units;
    ps->nodes = calloc(ps->n_nodes ? ps->n_nodes : 1, sizeof(*ps->nodes));
    ps->unit_base = calloc(cfg->n_links ? cfg->n_links : 1, sizeof(size_t));
    if (!ps->nodes || !ps->unit_base) {
        xs_pubsub_free(ps);
        return GW_ENOMEM;
    }
    size_t gu = 0;
    for (size_t l = 0; l < cfg->n_links; l++) {
        ps->unit_base[l] = gu;
        for (size_t u = 0; u < cfg->links[l].n_units; u++, gu++) {
            const struct cfg_unit *cu = &cfg->links[l].units[u];
            struct ps_node *n = &ps->nodes[gu];
            n->link = l;
            n->unit = u;
            for (size_t p = 0; p < cu->n_points && !n->enabled; p++)
                n->enabled = cu->points[p].events.enabled;
            if (n->enabled && !xs_pubsub_node_name(ps->ev, cu->name, n->name,
                                                   sizeof(n->name))) {
                GW_LOG(log, GW_LOG_WARN, AREA,
                       "unit %s: the node name is too long; no events",
                       cu->name);
                n->enabled = false;
            }
        }
    }
    ps->by_name = calloc(ps->n_nodes ? ps->n_nodes : 1, sizeof(*ps->by_name));
    if (!ps->by_name) {
        xs_pubsub_free(ps);
        return GW_ENOMEM;
    }
    for (size_t i = 0; i < ps->n_nodes; i++) {
        ps->by_name[i].name =
            cfg->links[ps->nodes[i].link].units[ps->nodes[i].unit].name;
        ps->by_name[i].gu = i;
    }
    qsort(ps->by_name, ps->n_nodes, sizeof(*ps->by_name), cmp_name_ix);
    if (ps->ev->access_model == CFG_AM_WHITELIST) {
        const struct cfg_access *a = &cfg->access;
        for (size_t k = 0; k < a->n_readers + a->n_controllers; k++) {
            const char *jid = k < a->n_readers
                                  ? a->readers[k]
                                  : a->controllers[k - a->n_readers];
            if (!strchr(jid, '@'))
                GW_LOG(log, GW_LOG_WARN, AREA,
                       "access: %s is a domain: a whitelisted node cannot "
                       "list a domain, its accounts receive no events",
                       jid);
        }
    }
    ps->state = XS_PUBSUB_OFFLINE;
    *out = ps;
    return GW_OK;
}

void xs_pubsub_attach(struct xs_pubsub *ps, struct xs_conn *c)
{
    ps->iq = conn_iq;
    ps->iq_ud = c;
}

void xs_pubsub_set_iq_fn(struct xs_pubsub *ps, xs_pubsub_iq_fn fn, void *ud)
{
    ps->iq = fn;
    ps->iq_ud = ud;
}

void xs_pubsub_set_state_cb(struct xs_pubsub *ps, void (*cb)(void *ud),
                            void *ud)
{
    ps->state_cb = cb;
    ps->state_ud = ud;
}

/* Asks the service for its features (OP_DISCO); a failure to send puts
 * the publisher in the (retried) warning. */
static void send_disco(struct xs_pubsub *ps)
{
    struct xs_stanza *iq = xs_stanza_new("iq", XS_NS_CLIENT);
    if (iq &&
        (xs_stanza_set_attr(iq, "type", "get") != GW_OK ||
         (!ps->pep && xs_stanza_set_attr(iq, "to", ps->service) != GW_OK) ||
         !xs_stanza_add_new(iq, "query", XS_NS_DISCO_INFO))) {
        xs_stanza_free(iq);
        iq = NULL;
    }
    int rc =
        send_req(ps, req_new(ps, OP_DISCO, SIZE_MAX), iq, SETUP_TIMEOUT_MS);
    if (rc != GW_OK) {
        set_warning(ps, "cannot ask %s for its features: %s", ps->service,
                    gw_strerror(rc));
        ps->disco_failed = true;
        retry_schedule(ps, "the check of the PubSub service");
    }
}

void xs_pubsub_online(struct xs_pubsub *ps, const char *bare_jid)
{
    retry_cancel(ps);
    ps->retry_ms = 0;
    ps->disco_failed = ps->resetup = false;
    ps->gen++;
    ps->state = XS_PUBSUB_SETUP;
    ps->text[0] = '\0';
    ps->in_flight = ps->setup_busy = ps->setup_next = ps->setup_done = 0;
    ps->features = 0;
    ps->timeout_logged = false;
    snprintf(ps->bare, sizeof(ps->bare), "%s", bare_jid ? bare_jid : "");
    snprintf(ps->service, sizeof(ps->service), "%s",
             ps->ev->service ? ps->ev->service : ps->bare);
    /* PEP requests go without 'to' (Prosody answers those addressed to
     * the bare JID without a 'from', which would not match). */
    ps->pep = strcasecmp(ps->service, ps->bare) == 0;
    for (size_t i = 0; i < ps->n_nodes; i++) {
        ps->nodes[i].failed = false;
        ps->nodes[i].no_options = false;
        ps->nodes[i].options_ok = false;
        ps->nodes[i].logged_error = false;
        ps->nodes[i].logged_limit = false;
    }
    notify_state(ps);
    send_disco(ps);
}

void xs_pubsub_offline(struct xs_pubsub *ps)
{
    go_offline(ps);
}

void xs_pubsub_set_timer(struct xs_pubsub *ps,
                         void (*timer)(void *ud, uint32_t ms), void *ud)
{
    retry_cancel(ps);
    ps->timer = timer;
    ps->timer_ud = ud;
}

void xs_pubsub_retry(struct xs_pubsub *ps)
{
    ps->retry_armed = false;
    if (ps->state == XS_PUBSUB_WARNING && ps->disco_failed) {
        ps->disco_failed = false;
        ps->state = XS_PUBSUB_SETUP; /* the warning stays until it answers */
        ps->setup_busy = ps->setup_next = ps->setup_done = 0;
        ps->features = 0;
        for (size_t i = 0; i < ps->n_nodes; i++)
            ps->nodes[i].failed = false;
        GW_LOG(ps->log, GW_LOG_INFO, AREA, "checking %s again", ps->service);
        notify_state(ps);
        send_disco(ps);
        return;
    }
    if (ps->state != XS_PUBSUB_RUNNING || ps->resetup)
        return;
    size_t failed = 0;
    for (size_t i = 0; i < ps->n_nodes; i++)
        failed += ps->nodes[i].enabled && ps->nodes[i].failed;
    if (failed == 0)
        return;
    GW_LOG(ps->log, GW_LOG_INFO, AREA, "setting up %zu node(s) again", failed);
    ps->resetup = true;
    ps->resetup_n = failed;
    ps->setup_busy = ps->setup_next = ps->setup_done = 0;
    setup_pump(ps);
}

void xs_pubsub_set_spool(struct xs_pubsub *ps, const struct xs_pubsub_spool *sp)
{
    memset(&ps->sp, 0, sizeof(ps->sp));
    ps->every = false;
    ps->fallback = false;
    ps->spool_text[0] = '\0';
    if (!sp || ps->ev->delivery != CFG_DELIVERY_EVERY || !sp->append ||
        !sp->next || !sp->ack || !sp->rewind)
        return;
    ps->sp = *sp;
    ps->every = true;
    ps->replaying = true;
    if (sp->stats) {
        struct gw_spool_stats st;
        memset(&st, 0, sizeof(st));
        sp->stats(sp->ud, &st);
        if (st.error)
            enter_fallback(ps, st.error);
    }
}

void xs_pubsub_ready(struct xs_pubsub *ps)
{
    if (ps->every && !ps->fallback) {
        drain_source(ps);
    } else if (ps->every && ps->state != XS_PUBSUB_RUNNING &&
               gw_now_ms() - ps->fallback_ms >= XS_PUBSUB_SPOOL_RETRY_MS) {
        /* Not publishing and the spool failed: try it again with this
         * batch (if it fails too, the batch is left to the snapshot of
         * the next login, as with latest values). */
        struct gw_events_batch b;
        if (ps->src.take && ps->src.take(ps->src.ud, &b)) {
            if (spool_batch(ps, &b) == GW_OK) {
                leave_fallback(ps);
                drain_source(ps);
            } else {
                ps->fallback_ms = gw_now_ms();
            }
        }
    }
    pump(ps);
}

void xs_pubsub_free(struct xs_pubsub *ps)
{
    if (!ps)
        return;
    retry_cancel(ps);
    for (struct ps_req *r = ps->reqs; r; r = r->next)
        r->ps = NULL;
    free(ps->nodes);
    free(ps->unit_base);
    free(ps->by_name);
    free(ps);
}

void xs_pubsub_get_stats(const struct xs_pubsub *ps,
                         struct xs_pubsub_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->state = ps->state;
    out->published = ps->published;
    out->errors = ps->errors;
    out->retries = ps->retries;
    out->skipped = ps->skipped;
    out->in_flight = ps->in_flight;
    out->backlog = ps->src.backlog ? ps->src.backlog(ps->src.ud) : 0;
    out->features = ps->features;
    snprintf(out->text, sizeof(out->text), "%s", ps->text);
    out->every = ps->every;
    out->fallback = ps->fallback;
    out->spooled = ps->spooled;
    out->replayed = ps->replayed;
    out->gaps = ps->gaps;
    out->lost = ps->lost;
    snprintf(out->spool_text, sizeof(out->spool_text), "%s", ps->spool_text);
    if (ps->every && ps->sp.stats) {
        struct gw_spool_stats st;
        memset(&st, 0, sizeof(st));
        ps->sp.stats(ps->sp.ud, &st);
        out->backlog += st.records;
        out->spool_bytes = st.bytes;
        out->spool_oldest_ms = st.oldest_ms;
        out->spool_dropped = st.dropped;
    }
}

uint64_t xs_pubsub_unit_published(const struct xs_pubsub *ps, size_t link,
                                  size_t unit)
{
    if (link >= ps->cfg->n_links || unit >= ps->cfg->links[link].n_units)
        return 0;
    return ps->nodes[ps->unit_base[link] + unit].published;
}
