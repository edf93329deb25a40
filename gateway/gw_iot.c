/* gw_iot.c - the concentrator model (see gw_iot.h). */
#include "gw_iot.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw_err.h"

#ifndef FG_VERSION
#define FG_VERSION "0"
#endif

static const char *const AREA = "iot";

struct hsample {
    int64_t ts_ms;
    struct ad_value v;
};

struct hring {
    struct hsample *s; /* opts.history entries */
    size_t head;       /* next slot to write */
    size_t n;
};

struct read_ctx {
    struct gw_iot *iot; /* NULL once the model is gone */
    size_t gu;          /* global unit index */
};

/* Pending bus read of one unit and the readouts waiting for it. */
struct upend {
    struct read_ctx *ctx; /* in flight, or NULL */
    struct gw_iot_readout **waiters;
    size_t n_waiters, cap;
};

struct ro_node {
    size_t node;
    int err;
    bool waiting;
    char text[128];
};

struct gw_iot_readout {
    struct gw_iot *iot;
    struct gw_iot_filter flt;
    char **field_names;
    struct ro_node *nodes;
    size_t n_nodes;
    size_t waiting;
    size_t reads;
    gw_iot_readout_cb cb;
    void *ud;
    struct gw_iot_readout *prev, *next;
};

struct ctl_write {
    size_t node, param, link, unit, point;
    struct ad_value value;
};

struct gw_iot_control {
    struct gw_iot *iot; /* NULL when orphaned */
    char *jid;
    char *summary; /* "m1.sp 21.5 -> 22.0, ..." for the log line */
    struct ctl_write *w;
    size_t n_w, next;
    bool in_flight, dropped;
    gw_iot_control_cb cb;
    void *ud;
    struct gw_iot_control *prev, *next_ctl;
};

/* One sender's refusals of one kind within the audit window. */
struct audit_slot {
    char *jid;        /* bare JID, NULL for a free slot */
    const char *kind; /* the caller's fixed text */
    int64_t start_ms;
    uint32_t suppressed;
};

struct gw_iot {
    const struct cfg *cfg;
    struct gw_store *store;
    struct gw_engine *engine;
    const struct gw_log *log;
    struct gw_iot_opts opts;
    struct gw_iot_node *nodes;
    size_t n_nodes;
    size_t unit_base; /* node index of the first unit */
    size_t n_units;
    enum gw_iot_state *states; /* last reported, per node */
    struct upend *pend;        /* per global unit */
    size_t *point_base;        /* per global unit: first history ring */
    struct hring *hist;        /* per point (history > 0) */
    gw_iot_status_cb status_cb;
    void *status_ud;
    gw_iot_events_stats_fn events_fn;
    void *events_ud;
    struct gw_iot_readout *readouts;
    struct gw_iot_control *controls;
    struct gw_iot_readout **completing;
    size_t n_completing;
    int64_t start_ms;
    uint64_t reads_started;
    struct audit_slot audit[GW_IOT_AUDIT_SLOTS];
    int64_t audit_start_ms; /* window of the global line count */
    uint32_t audit_lines;   /* refusal lines logged in that window */
    uint32_t audit_dropped; /* refusals not logged for the global cap */
};

/* ---- helpers ------------------------------------------------------------ */

static size_t gunit(const struct gw_iot *iot, size_t node)
{
    return node - iot->unit_base;
}

static size_t unit_node(const struct gw_iot *iot, size_t link, size_t unit)
{
    return iot->nodes[1 + link].first_child + unit;
}

static const struct cfg_unit *node_unit(const struct gw_iot *iot,
                                        const struct gw_iot_node *n)
{
    return &iot->cfg->links[n->link].units[n->unit];
}

static bool point_writable(const struct cfg_point *p)
{
    return p->writable &&
           (p->table == CFG_TABLE_COIL || p->table == CFG_TABLE_HOLDING);
}

static bool unit_controllable(const struct cfg_unit *cu)
{
    for (size_t i = 0; i < cu->n_points; i++)
        if (point_writable(&cu->points[i]))
            return true;
    return false;
}

static enum gw_iot_state unit_state(const struct gw_unit_state *us)
{
    switch (us->status) {
    case GW_UNIT_DEGRADED:
        return GW_IOT_STATE_WARNING;
    case GW_UNIT_OFFLINE:
        return GW_IOT_STATE_ERROR;
    default:
        return GW_IOT_STATE_NONE;
    }
}

static bool events_stats(const struct gw_iot *iot, size_t link, size_t unit,
                         struct gw_iot_events_stats *st)
{
    memset(st, 0, sizeof(*st));
    return iot->events_fn && iot->events_fn(iot->events_ud, link, unit, st);
}

static enum gw_iot_state compute_state(const struct gw_iot *iot, size_t node)
{
    const struct gw_iot_node *n = &iot->nodes[node];
    const struct gw_store *s = iot->store;
    if (n->kind == GW_IOT_UNIT)
        return unit_state(&s->links[n->link].units[n->unit]);
    if (n->kind == GW_IOT_LINK) {
        const struct gw_link_state *ls = &s->links[n->link];
        enum gw_iot_state worst = GW_IOT_STATE_NONE;
        bool tried = false;
        for (size_t u = 0; u < iot->cfg->links[n->link].n_units; u++) {
            if (ls->units[u].status != GW_UNIT_UNKNOWN)
                tried = true;
            if (unit_state(&ls->units[u]) != GW_IOT_STATE_NONE)
                worst = GW_IOT_STATE_WARNING;
        }
        if (!ls->connected && tried)
            return GW_IOT_STATE_ERROR;
        return worst;
    }
    for (size_t i = 1; i < iot->n_nodes; i++)
        if (compute_state(iot, i) != GW_IOT_STATE_NONE)
            return GW_IOT_STATE_WARNING;
    struct gw_iot_events_stats es;
    if (events_stats(iot, GW_IOT_NONE, GW_IOT_NONE, &es) && es.warning)
        return GW_IOT_STATE_WARNING;
    return GW_IOT_STATE_NONE;
}

const char *gw_iot_state_name(enum gw_iot_state st)
{
    switch (st) {
    case GW_IOT_STATE_WARNING:
        return "WarningUnsigned";
    case GW_IOT_STATE_ERROR:
        return "ErrorUnsigned";
    default:
        return "None";
    }
}

/* ---- history and store events ------------------------------------------ */

static void hist_push(struct gw_iot *iot, size_t link, size_t unit,
                      size_t point)
{
    const struct gw_point_state *ps =
        gw_store_point(iot->store, link, unit, point);
    if (ps->quality != GW_Q_OK || ps->value.kind == AD_VALUE_NONE)
        return;
    struct hring *r =
        &iot->hist[iot->point_base[gunit(iot, unit_node(iot, link, unit))] +
                   point];
    size_t cap = iot->opts.history;
    size_t last = (r->head + cap - 1) % cap;
    if (r->n > 0 && r->s[last].ts_ms == ps->ts_ms &&
        ad_value_equal(&r->s[last].v, &ps->value))
        return;
    r->s[r->head].ts_ms = ps->ts_ms;
    r->s[r->head].v = ps->value;
    r->head = (r->head + 1) % cap;
    if (r->n < cap)
        r->n++;
}

static void recheck_states(struct gw_iot *iot)
{
    for (size_t i = 0; i < iot->n_nodes; i++) {
        enum gw_iot_state st = compute_state(iot, i);
        if (st == iot->states[i])
            continue;
        iot->states[i] = st;
        GW_LOG(iot->log, GW_LOG_DEBUG, AREA, "node %s: %s", iot->nodes[i].id,
               gw_iot_state_name(st));
        if (iot->status_cb)
            iot->status_cb(iot->status_ud, i, st);
    }
}

static void on_store(void *data, enum gw_store_event ev, size_t link,
                     size_t unit, size_t point)
{
    struct gw_iot *iot = data;
    if (!iot || ev == GW_STORE_CYCLE)
        return;
    if (ev == GW_STORE_POINT) {
        if (iot->hist)
            hist_push(iot, link, unit, point);
        return;
    }
    recheck_states(iot);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void node_id(struct gw_iot *iot, size_t l, char *out, size_t cap)
{
    const char *name = iot->cfg->links[l].name;
    size_t lk, un, pt;
    bool clash = gw_store_find(iot->cfg, name, &lk, &un, &pt) == GW_OK;
    snprintf(out, cap, "%s%s", clash ? "link:" : "", name);
}

int gw_iot_new(const struct cfg *cfg, struct gw_store *store,
               struct gw_engine *engine, const struct gw_log *log,
               const struct gw_iot_opts *opts, struct gw_iot **out)
{
    struct gw_iot *iot = calloc(1, sizeof(*iot));
    if (!iot)
        return GW_ENOMEM;
    iot->cfg = cfg;
    iot->store = store;
    iot->engine = engine;
    iot->log = log;
    if (opts)
        iot->opts = *opts;
    iot->start_ms = gw_now_ms();
    size_t n_units = 0, n_points = 0;
    for (size_t l = 0; l < cfg->n_links; l++) {
        n_units += cfg->links[l].n_units;
        for (size_t u = 0; u < cfg->links[l].n_units; u++)
            n_points += cfg->links[l].units[u].n_points;
    }
    iot->n_units = n_units;
    iot->n_nodes = 1 + cfg->n_links + n_units;
    iot->unit_base = 1 + cfg->n_links;
    iot->nodes = calloc(iot->n_nodes, sizeof(*iot->nodes));
    iot->states = calloc(iot->n_nodes, sizeof(*iot->states));
    iot->pend = calloc(n_units ? n_units : 1, sizeof(*iot->pend));
    iot->point_base = calloc(n_units ? n_units : 1, sizeof(*iot->point_base));
    if (!iot->nodes || !iot->states || !iot->pend || !iot->point_base)
        goto nomem;
    if (iot->opts.history > 0 && n_points > 0) {
        iot->hist = calloc(n_points, sizeof(*iot->hist));
        if (!iot->hist)
            goto nomem;
        for (size_t i = 0; i < n_points; i++) {
            iot->hist[i].s = calloc(iot->opts.history, sizeof(struct hsample));
            if (!iot->hist[i].s)
                goto nomem;
        }
    }
    struct gw_iot_node *g = &iot->nodes[0];
    g->kind = GW_IOT_GATEWAY;
    snprintf(g->id, sizeof(g->id), "%s", GW_IOT_GATEWAY_ID);
    g->link = g->unit = g->parent = GW_IOT_NONE;
    g->first_child = 1;
    g->n_children = cfg->n_links;
    size_t next_unit = iot->unit_base, gu = 0, pb = 0;
    for (size_t l = 0; l < cfg->n_links; l++) {
        struct gw_iot_node *ln = &iot->nodes[1 + l];
        ln->kind = GW_IOT_LINK;
        node_id(iot, l, ln->id, sizeof(ln->id));
        ln->link = l;
        ln->unit = GW_IOT_NONE;
        ln->parent = 0;
        ln->first_child = next_unit;
        ln->n_children = cfg->links[l].n_units;
        for (size_t u = 0; u < cfg->links[l].n_units; u++, gu++) {
            struct gw_iot_node *un = &iot->nodes[next_unit++];
            un->kind = GW_IOT_UNIT;
            snprintf(un->id, sizeof(un->id), "%s", cfg->links[l].units[u].name);
            un->link = l;
            un->unit = u;
            un->parent = 1 + l;
            un->first_child = GW_IOT_NONE;
            iot->point_base[gu] = pb;
            pb += cfg->links[l].units[u].n_points;
        }
    }
    for (size_t i = 0; i < iot->n_nodes; i++)
        iot->states[i] = compute_state(iot, i);
    int rc = gw_store_listen(store, on_store, iot);
    if (rc != GW_OK) {
        gw_iot_free(iot);
        return rc;
    }
    *out = iot;
    return GW_OK;
nomem:
    gw_iot_free(iot);
    return GW_ENOMEM;
}

void gw_iot_set_engine(struct gw_iot *iot, struct gw_engine *engine)
{
    iot->engine = engine;
}

static void ro_unlink(struct gw_iot_readout *ro);
static void ctl_log_dropped(const struct gw_iot_control *c,
                            const struct gw_log *log);
static void audit_flush(struct gw_iot *iot, int64_t now);

void gw_iot_free(struct gw_iot *iot)
{
    if (!iot)
        return;
    if (iot->store)
        gw_store_unlisten(iot->store, on_store, iot);
    while (iot->readouts)
        gw_iot_readout_free(iot->readouts);
    while (iot->controls) {
        struct gw_iot_control *c = iot->controls;
        iot->controls = c->next_ctl;
        ctl_log_dropped(c, iot->log);
        c->iot = NULL;
        c->prev = c->next_ctl = NULL;
        gw_iot_control_free(c);
    }
    if (iot->pend)
        for (size_t i = 0; i < iot->n_units; i++) {
            if (iot->pend[i].ctx)
                iot->pend[i].ctx->iot = NULL;
            free(iot->pend[i].waiters);
        }
    if (iot->hist) {
        size_t n_points = 0;
        for (size_t l = 0; l < iot->cfg->n_links; l++)
            for (size_t u = 0; u < iot->cfg->links[l].n_units; u++)
                n_points += iot->cfg->links[l].units[u].n_points;
        for (size_t i = 0; i < n_points; i++)
            free(iot->hist[i].s);
        free(iot->hist);
    }
    audit_flush(iot, INT64_MAX);
    free(iot->completing);
    free(iot->point_base);
    free(iot->pend);
    free(iot->states);
    free(iot->nodes);
    free(iot);
}

void gw_iot_set_events_stats_fn(struct gw_iot *iot, gw_iot_events_stats_fn fn,
                                void *ud)
{
    iot->events_fn = fn;
    iot->events_ud = ud;
}

void gw_iot_events_changed(struct gw_iot *iot)
{
    recheck_states(iot);
}

void gw_iot_set_status_cb(struct gw_iot *iot, gw_iot_status_cb cb, void *ud)
{
    iot->status_cb = cb;
    iot->status_ud = ud;
}

enum gw_access_level gw_iot_access(const struct gw_iot *iot, const char *jid)
{
    return gw_access_check(&iot->cfg->access, jid);
}

/* ---- audit of refusals -------------------------------------------------- */

static uint32_t audit_window(const struct gw_iot *iot)
{
    return iot->opts.audit_window_ms ? iot->opts.audit_window_ms
                                     : GW_IOT_DEFAULT_AUDIT_WINDOW_MS;
}

static bool window_over(int64_t start, int64_t now, uint32_t window)
{
    /* The realtime clock may step back: a window "in the future" ends. */
    return now < start || now - start >= (int64_t)window;
}

static void audit_clear(struct audit_slot *s)
{
    free(s->jid);
    memset(s, 0, sizeof(*s));
}

/* Reports and frees slots whose window is over (all with now INT64_MAX);
 * restarts the global window. */
static void audit_flush(struct gw_iot *iot, int64_t now)
{
    uint32_t window = audit_window(iot);
    for (size_t i = 0; i < GW_IOT_AUDIT_SLOTS; i++) {
        struct audit_slot *s = &iot->audit[i];
        if (!s->jid || !window_over(s->start_ms, now, window))
            continue;
        if (s->suppressed)
            GW_LOG(iot->log, GW_LOG_NOTICE, AREA,
                   "%s from %s: %" PRIu32 " more refusal(s) not logged "
                   "(at most one per %" PRIu32 " s)",
                   s->kind, s->jid, s->suppressed, window / 1000);
        audit_clear(s);
    }
    if (window_over(iot->audit_start_ms, now, window)) {
        if (iot->audit_dropped)
            GW_LOG(iot->log, GW_LOG_NOTICE, AREA,
                   "%" PRIu32 " refusal(s) not logged: more than %u refusal "
                   "lines in %" PRIu32 " s",
                   iot->audit_dropped, GW_IOT_AUDIT_LINES_MAX, window / 1000);
        iot->audit_start_ms = now;
        iot->audit_lines = iot->audit_dropped = 0;
    }
}

void gw_iot_refused(struct gw_iot *iot, const char *jid, const char *kind,
                    const char *fmt, ...)
{
    if (!iot->log || GW_LOG_NOTICE > iot->log->level)
        return;
    if (!jid || !*jid)
        jid = "?";
    int64_t now = gw_now_ms();
    audit_flush(iot, now);
    size_t bare_len = strcspn(jid, "/");
    struct audit_slot *slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < GW_IOT_AUDIT_SLOTS; i++) {
        struct audit_slot *s = &iot->audit[i];
        if (!s->jid) {
            if (!slot)
                slot = s; /* the first free one */
            continue;
        }
        if (strcmp(s->kind, kind) == 0 && strlen(s->jid) == bare_len &&
            strncasecmp(s->jid, jid, bare_len) == 0) {
            s->suppressed++;
            return;
        }
        if (!oldest || s->start_ms < oldest->start_ms)
            oldest = s;
    }
    if (iot->audit_lines >= GW_IOT_AUDIT_LINES_MAX) {
        iot->audit_dropped++;
        return;
    }
    if (!slot) {
        slot = oldest;
        if (slot->suppressed)
            GW_LOG(iot->log, GW_LOG_NOTICE, AREA,
                   "%s from %s: %" PRIu32 " more refusal(s) not logged",
                   slot->kind, slot->jid, slot->suppressed);
        audit_clear(slot);
    }
    slot->jid = strndup(jid, bare_len); /* NULL: logged, not tracked */
    slot->kind = kind;
    slot->start_ms = now;
    iot->audit_lines++;
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    GW_LOG(iot->log, GW_LOG_NOTICE, AREA, "%s from %s refused: %s", kind, jid,
           why);
}

/* ---- nodes -------------------------------------------------------------- */

size_t gw_iot_node_count(const struct gw_iot *iot)
{
    return iot->n_nodes;
}

const struct gw_iot_node *gw_iot_node(const struct gw_iot *iot, size_t node)
{
    return node < iot->n_nodes ? &iot->nodes[node] : NULL;
}

size_t gw_iot_find(const struct gw_iot *iot, const char *source, const char *id)
{
    if (!id || (source && *source && strcmp(source, GW_IOT_SOURCE) != 0))
        return GW_IOT_NONE;
    for (size_t i = 0; i < iot->n_nodes; i++)
        if (strcmp(iot->nodes[i].id, id) == 0)
            return i;
    return GW_IOT_NONE;
}

bool gw_iot_node_within(const struct gw_iot *iot, size_t node, size_t ancestor)
{
    while (node != GW_IOT_NONE) {
        if (node == ancestor)
            return true;
        node = iot->nodes[node].parent;
    }
    return false;
}

void gw_iot_node_info(const struct gw_iot *iot, size_t node,
                      struct gw_iot_node_info *out)
{
    const struct gw_iot_node *n = &iot->nodes[node];
    memset(out, 0, sizeof(*out));
    out->id = n->id;
    out->state = compute_state(iot, node);
    out->has_children = n->n_children > 0;
    out->readable = true;
    out->has_commands = true;
    out->parent_id = n->parent != GW_IOT_NONE ? iot->nodes[n->parent].id : NULL;
    switch (n->kind) {
    case GW_IOT_GATEWAY:
        out->type = "Fieldgate.Gateway";
        out->display = "fieldgate";
        out->last_changed_ms = iot->start_ms;
        break;
    case GW_IOT_LINK:
        out->type = "Modbus.Link";
        out->display = iot->cfg->links[n->link].name;
        break;
    case GW_IOT_UNIT: {
        const struct cfg_unit *cu = node_unit(iot, n);
        out->type = "Modbus.Unit";
        out->display = cu->description ? cu->description : cu->name;
        out->controllable = unit_controllable(cu);
        out->last_changed_ms =
            iot->store->links[n->link].units[n->unit].last_change_ms;
        break;
    }
    }
}

static void add_param(struct gw_iot_param *out, size_t cap, size_t *n,
                      const char *id, const char *name, enum gw_iot_ptype t,
                      const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void add_param(struct gw_iot_param *out, size_t cap, size_t *n,
                      const char *id, const char *name, enum gw_iot_ptype t,
                      const char *fmt, ...)
{
    if (*n >= cap)
        return;
    struct gw_iot_param *p = &out[(*n)++];
    p->id = id;
    p->name = name;
    p->type = t;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->value, sizeof(p->value), fmt, ap);
    va_end(ap);
}

size_t gw_iot_node_params(const struct gw_iot *iot, size_t node,
                          struct gw_iot_param *out, size_t cap)
{
    const struct gw_iot_node *n = &iot->nodes[node];
    size_t k = 0;
    if (n->kind == GW_IOT_GATEWAY) {
        add_param(out, cap, &k, "links", "Links", GW_IOT_P_INT, "%zu",
                  iot->cfg->n_links);
        add_param(out, cap, &k, "units", "Units", GW_IOT_P_INT, "%zu",
                  iot->n_units);
        add_param(out, cap, &k, "version", "Version", GW_IOT_P_STRING, "%s",
                  FG_VERSION);
        struct gw_iot_events_stats es;
        if (events_stats(iot, GW_IOT_NONE, GW_IOT_NONE, &es)) {
            add_param(out, cap, &k, "eventsPublished", "Events published",
                      GW_IOT_P_LONG, "%" PRIu64, es.published);
            add_param(out, cap, &k, "eventErrors", "Event errors",
                      GW_IOT_P_LONG, "%" PRIu64, es.errors);
            add_param(out, cap, &k, "eventBacklog", "Event backlog",
                      GW_IOT_P_LONG, "%" PRIu64, es.backlog);
            add_param(out, cap, &k, "events", "Events", GW_IOT_P_STRING, "%s",
                      es.warning ? es.text : "OK");
            if (es.spool) {
                add_param(out, cap, &k, "spoolBytes", "Spool bytes",
                          GW_IOT_P_LONG, "%" PRIu64, es.spool_bytes);
                add_param(out, cap, &k, "spoolOldestAge",
                          "Spool oldest unsent age", GW_IOT_P_LONG, "%" PRId64,
                          es.spool_oldest_age_ms / 1000);
                add_param(out, cap, &k, "spoolDropped", "Spool dropped",
                          GW_IOT_P_LONG, "%" PRIu64, es.spool_dropped);
            }
        }
        return k;
    }
    const struct cfg_link *cl = &iot->cfg->links[n->link];
    const struct gw_link_state *ls = &iot->store->links[n->link];
    if (n->kind == GW_IOT_LINK) {
        add_param(out, cap, &k, "type", "Type", GW_IOT_P_STRING, "%s",
                  cfg_link_type_name(cl->type));
        if (cl->type == CFG_LINK_RTU) {
            add_param(out, cap, &k, "device", "Device", GW_IOT_P_STRING, "%s",
                      cl->device ? cl->device : "");
            add_param(out, cap, &k, "baud", "Baud rate", GW_IOT_P_INT, "%u",
                      cl->baud);
            add_param(out, cap, &k, "parity", "Parity", GW_IOT_P_STRING, "%s",
                      cfg_parity_name(cl->parity));
        } else {
            add_param(out, cap, &k, "host", "Host", GW_IOT_P_STRING, "%s",
                      cl->host ? cl->host : "");
            add_param(out, cap, &k, "port", "Port", GW_IOT_P_INT, "%u",
                      cl->port);
        }
        add_param(out, cap, &k, "timeout", "Timeout (ms)", GW_IOT_P_INT, "%u",
                  cl->timeout_ms);
        add_param(out, cap, &k, "connected", "Connected", GW_IOT_P_BOOLEAN,
                  "%s", ls->connected ? "true" : "false");
        add_param(out, cap, &k, "requests", "Requests", GW_IOT_P_LONG,
                  "%" PRIu64, ls->c.requests);
        add_param(out, cap, &k, "errors", "Errors", GW_IOT_P_LONG, "%" PRIu64,
                  ls->c.errors);
        add_param(out, cap, &k, "rtt", "Last RTT (ms)", GW_IOT_P_DOUBLE, "%.3f",
                  ls->last_rtt_us / 1000.0);
        return k;
    }
    const struct cfg_unit *cu = node_unit(iot, n);
    const struct gw_unit_state *us = &ls->units[n->unit];
    add_param(out, cap, &k, "link", "Link", GW_IOT_P_STRING, "%s", cl->name);
    add_param(out, cap, &k, "unitId", "Unit id", GW_IOT_P_INT, "%u", cu->id);
    if (cu->template_name)
        add_param(out, cap, &k, "template", "Template", GW_IOT_P_STRING, "%s",
                  cu->template_name);
    add_param(out, cap, &k, "state", "State", GW_IOT_P_STRING, "%s",
              gw_unit_status_name(us->status));
    add_param(out, cap, &k, "lastError", "Last error", GW_IOT_P_STRING, "%s",
              us->last_err ? gw_strerror(us->last_err) : "");
    add_param(out, cap, &k, "rtt", "Last RTT (ms)", GW_IOT_P_DOUBLE, "%.3f",
              us->last_rtt_us / 1000.0);
    add_param(out, cap, &k, "requests", "Requests", GW_IOT_P_LONG, "%" PRIu64,
              us->c.requests);
    add_param(out, cap, &k, "errors", "Errors", GW_IOT_P_LONG, "%" PRIu64,
              us->c.errors);
    add_param(out, cap, &k, "timeouts", "Timeouts", GW_IOT_P_LONG, "%" PRIu64,
              us->c.timeouts);
    add_param(out, cap, &k, "exceptions", "Exceptions", GW_IOT_P_LONG,
              "%" PRIu64, us->c.exceptions);
    struct gw_iot_events_stats es;
    if (events_stats(iot, n->link, n->unit, &es))
        add_param(out, cap, &k, "eventsPublished", "Events published",
                  GW_IOT_P_LONG, "%" PRIu64, es.published);
    return k;
}

bool gw_iot_node_message(const struct gw_iot *iot, size_t node,
                         struct gw_iot_message *out)
{
    const struct gw_iot_node *n = &iot->nodes[node];
    memset(out, 0, sizeof(*out));
    if (n->kind == GW_IOT_LINK) {
        const struct gw_link_state *ls = &iot->store->links[n->link];
        if (ls->connected || compute_state(iot, node) != GW_IOT_STATE_ERROR)
            return false;
        out->error = true;
        out->ts_ms = gw_now_ms();
        snprintf(out->text, sizeof(out->text), "link %s is not connected",
                 iot->cfg->links[n->link].name);
        return true;
    }
    if (n->kind == GW_IOT_GATEWAY) {
        struct gw_iot_events_stats es;
        if (!events_stats(iot, GW_IOT_NONE, GW_IOT_NONE, &es) || !es.warning)
            return false;
        out->ts_ms = gw_now_ms();
        snprintf(out->text, sizeof(out->text), "events: %.140s", es.text);
        return true;
    }
    if (n->kind != GW_IOT_UNIT)
        return false;
    const struct gw_unit_state *us = &iot->store->links[n->link].units[n->unit];
    if (us->status == GW_UNIT_ONLINE || us->status == GW_UNIT_UNKNOWN)
        return false;
    out->error = us->status == GW_UNIT_OFFLINE;
    out->ts_ms = us->last_change_ms;
    const struct cfg_unit *cu = node_unit(iot, n);
    if (!us->last_err && !iot->store->links[n->link].connected)
        snprintf(out->text, sizeof(out->text),
                 "unit %s (id %u): link %s is not connected", cu->name, cu->id,
                 iot->cfg->links[n->link].name);
    else if (us->last_err == GW_EMBEXC)
        snprintf(out->text, sizeof(out->text),
                 "unit %s (id %u): Modbus exception %u", cu->name, cu->id,
                 us->last_exception);
    else if (us->last_err)
        snprintf(out->text, sizeof(out->text), "unit %s (id %u): %s", cu->name,
                 cu->id, gw_strerror(us->last_err));
    else
        snprintf(out->text, sizeof(out->text), "unit %s (id %u): %s", cu->name,
                 cu->id, gw_unit_status_name(us->status));
    return true;
}

/* ---- fields ------------------------------------------------------------- */

static bool want_type(const struct gw_iot_filter *flt, unsigned t)
{
    unsigned types =
        flt && flt->types ? flt->types : (GW_IOT_T_ALL & ~GW_IOT_T_HISTORICAL);
    return (types & t) != 0;
}

static bool want_name(const struct gw_iot_filter *flt, const char *name)
{
    if (!flt || !flt->fields || flt->n_fields == 0)
        return true;
    for (size_t i = 0; i < flt->n_fields; i++)
        if (flt->fields[i] && strcmp(flt->fields[i], name) == 0)
            return true;
    return false;
}

static uint32_t point_fresh_ms(const struct gw_iot *iot,
                               const struct cfg_point *p)
{
    if (iot->opts.fresh_ms)
        return iot->opts.fresh_ms;
    return iot->cfg->poll_groups[p->poll_group].interval_ms;
}

unsigned gw_iot_point_qos(const struct gw_iot *iot, size_t link, size_t unit,
                          size_t point, int64_t now_ms)
{
    const struct cfg_point *p =
        &iot->cfg->links[link].units[unit].points[point];
    const struct gw_point_state *ps =
        gw_store_point(iot->store, link, unit, point);
    /* Stale: no good value within three poll intervals. */
    int64_t max_age = 3 * (int64_t)point_fresh_ms(iot, p);
    switch (gw_store_quality(ps, now_ms, max_age)) {
    case GW_Q_OK:
        return GW_IOT_Q_AUTOMATIC_READOUT;
    case GW_Q_STALE:
        return GW_IOT_Q_AUTOMATIC_READOUT | GW_IOT_Q_TIME_OFFSET;
    case GW_Q_TIMEOUT:
    case GW_Q_DISCONNECTED:
        return GW_IOT_Q_MISSING;
    case GW_Q_EXCEPTION:
    case GW_Q_DECODE:
        return GW_IOT_Q_ERROR;
    case GW_Q_NONE:
        break;
    }
    return GW_IOT_Q_MISSING;
}

static void field_init(struct gw_iot_field *f, const char *name, unsigned types,
                       int64_t ts)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->types = types;
    f->qos = GW_IOT_Q_AUTOMATIC_READOUT;
    f->decimals = -1;
    f->unit = "";
    f->ts_ms = ts;
    f->point = GW_IOT_NONE;
}

static void value_text(const struct cfg_point *p, const struct ad_value *v,
                       char *buf, size_t cap)
{
    if (v->kind == AD_VALUE_DOUBLE && !isfinite(v->v.d)) {
        snprintf(buf, cap, "%s",
                 isnan(v->v.d) ? "NaN" : (v->v.d < 0 ? "-INF" : "INF"));
        return;
    }
    ad_value_format(p, v, buf, cap);
}

/* A point's value as a field. */
static void point_field(const struct gw_iot *iot, const struct cfg_unit *cu,
                        size_t pt, const struct ad_value *v, int64_t ts,
                        unsigned types, struct gw_iot_field *f)
{
    const struct cfg_point *p = &cu->points[pt];
    field_init(f, p->name, types, ts);
    f->point = pt;
    f->writable = point_writable(p);
    const char *label = ad_value_label(p, v);
    if (label) {
        f->vtype = GW_IOT_V_ENUM;
        snprintf(f->value, sizeof(f->value), "%s", label);
        snprintf(f->data_type, sizeof(f->data_type), "fieldgate.%s.%s",
                 cu->template_name ? cu->template_name : cu->name, p->name);
        return;
    }
    switch (v->kind) {
    case AD_VALUE_BOOL:
        f->vtype = GW_IOT_V_BOOLEAN;
        break;
    case AD_VALUE_STRING:
        f->vtype = GW_IOT_V_STRING;
        break;
    default:
        f->vtype = GW_IOT_V_NUMERIC;
        f->unit = p->unit ? p->unit : "";
        f->decimals = p->decimals;
        if (f->decimals < 0 && v->kind != AD_VALUE_DOUBLE)
            f->decimals = 0;
        break;
    }
    value_text(p, v, f->value, sizeof(f->value));
    (void)iot;
}

struct fctx {
    gw_iot_field_fn fn;
    void *ud;
    const struct gw_iot_filter *flt;
    int rc;
};

static bool emit(struct fctx *c, const struct gw_iot_field *f)
{
    if (c->rc)
        return false;
    if (!want_name(c->flt, f->name))
        return true;
    c->rc = c->fn(c->ud, f);
    return c->rc == 0;
}

static void emit_num(struct fctx *c, const char *name, unsigned types,
                     int64_t ts, const char *unit, int decimals,
                     const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void emit_num(struct fctx *c, const char *name, unsigned types,
                     int64_t ts, const char *unit, int decimals,
                     const char *fmt, ...)
{
    struct gw_iot_field f;
    field_init(&f, name, types, ts);
    f.vtype = GW_IOT_V_NUMERIC;
    f.unit = unit;
    f.decimals = decimals;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f.value, sizeof(f.value), fmt, ap);
    va_end(ap);
    emit(c, &f);
}

static void emit_str(struct fctx *c, const char *name, unsigned types,
                     int64_t ts, enum gw_iot_vtype vt, const char *value)
{
    struct gw_iot_field f;
    field_init(&f, name, types, ts);
    f.vtype = vt;
    snprintf(f.value, sizeof(f.value), "%s", value);
    emit(c, &f);
}

static void counters(struct fctx *c, const struct gw_counters *k, int64_t now)
{
    emit_num(c, "Requests", GW_IOT_T_STATUS, now, "", 0, "%" PRIu64,
             k->requests);
    emit_num(c, "Errors", GW_IOT_T_STATUS, now, "", 0, "%" PRIu64, k->errors);
    emit_num(c, "Timeouts", GW_IOT_T_STATUS, now, "", 0, "%" PRIu64,
             k->timeouts);
}

static void gateway_fields(const struct gw_iot *iot, struct fctx *c,
                           int64_t now)
{
    if (want_type(c->flt, GW_IOT_T_IDENTITY))
        emit_str(c, "Version", GW_IOT_T_IDENTITY, now, GW_IOT_V_STRING,
                 FG_VERSION);
    if (!want_type(c->flt, GW_IOT_T_STATUS))
        return;
    struct gw_iot_field f;
    field_init(&f, "Uptime", GW_IOT_T_STATUS, now);
    f.vtype = GW_IOT_V_TIMESPAN;
    snprintf(f.value, sizeof(f.value), "%" PRId64,
             (now - iot->start_ms) / 1000);
    emit(c, &f);
    size_t online = 0, units_online = 0;
    struct gw_counters sum = {0};
    for (size_t l = 0; l < iot->cfg->n_links; l++) {
        const struct gw_link_state *ls = &iot->store->links[l];
        online += ls->connected;
        sum.requests += ls->c.requests;
        sum.errors += ls->c.errors;
        sum.timeouts += ls->c.timeouts;
        for (size_t u = 0; u < iot->cfg->links[l].n_units; u++)
            units_online += ls->units[u].status == GW_UNIT_ONLINE;
    }
    emit_num(c, "Links online", GW_IOT_T_STATUS, now, "", 0, "%zu", online);
    emit_num(c, "Units online", GW_IOT_T_STATUS, now, "", 0, "%zu",
             units_online);
    counters(c, &sum, now);
    emit_str(c, "State", GW_IOT_T_STATUS, now, GW_IOT_V_STRING,
             gw_iot_state_name(compute_state(iot, 0)));
    struct gw_iot_events_stats es;
    if (events_stats(iot, GW_IOT_NONE, GW_IOT_NONE, &es)) {
        emit_num(c, "Events published", GW_IOT_T_STATUS, now, "", 0, "%" PRIu64,
                 es.published);
        emit_num(c, "Event errors", GW_IOT_T_STATUS, now, "", 0, "%" PRIu64,
                 es.errors);
        emit_num(c, "Events in flight", GW_IOT_T_STATUS, now, "", 0, "%" PRIu64,
                 es.in_flight);
        emit_num(c, "Event backlog", GW_IOT_T_STATUS, now, "", 0, "%" PRIu64,
                 es.backlog);
        emit_str(c, "Events", GW_IOT_T_STATUS, now, GW_IOT_V_STRING,
                 es.warning ? es.text : "OK");
        if (es.spool) {
            emit_num(c, "Spool bytes", GW_IOT_T_STATUS, now, "B", 0, "%" PRIu64,
                     es.spool_bytes);
            emit_num(c, "Spool oldest unsent age", GW_IOT_T_STATUS, now, "s", 0,
                     "%" PRId64, es.spool_oldest_age_ms / 1000);
            emit_num(c, "Spool dropped", GW_IOT_T_STATUS, now, "", 0,
                     "%" PRIu64, es.spool_dropped);
        }
    }
}

static void link_fields(const struct gw_iot *iot, const struct gw_iot_node *n,
                        struct fctx *c, int64_t now)
{
    const struct cfg_link *cl = &iot->cfg->links[n->link];
    const struct gw_link_state *ls = &iot->store->links[n->link];
    if (want_type(c->flt, GW_IOT_T_IDENTITY)) {
        char addr[300];
        if (cl->type == CFG_LINK_RTU)
            snprintf(addr, sizeof(addr), "%s", cl->device ? cl->device : "");
        else
            snprintf(addr, sizeof(addr), "%s:%u", cl->host ? cl->host : "",
                     cl->port);
        emit_str(c, "Type", GW_IOT_T_IDENTITY, now, GW_IOT_V_STRING,
                 cfg_link_type_name(cl->type));
        emit_str(c, "Address", GW_IOT_T_IDENTITY, now, GW_IOT_V_STRING, addr);
    }
    if (!want_type(c->flt, GW_IOT_T_STATUS))
        return;
    emit_str(c, "Connected", GW_IOT_T_STATUS, now, GW_IOT_V_BOOLEAN,
             ls->connected ? "true" : "false");
    counters(c, &ls->c, now);
    emit_num(c, "Overruns", GW_IOT_T_STATUS, now, "", 0, "%" PRIu64,
             ls->overruns);
    emit_num(c, "RTT", GW_IOT_T_STATUS, now, "ms", 3, "%.3f",
             ls->last_rtt_us / 1000.0);
}

/* A point without a good value whose last read failed with a Modbus
 * exception (a learnt hole, say) or a decode error: a string field with
 * the error and QoS error, rather than no field at all.  A point never
 * tried, or whose read timed out or found the link down, has none. */
static void error_field(struct fctx *c, const struct cfg_unit *cu, size_t pt,
                        const struct gw_point_state *ps)
{
    if (ps->quality != GW_Q_EXCEPTION && ps->quality != GW_Q_DECODE)
        return;
    struct gw_iot_field f;
    field_init(&f, cu->points[pt].name, GW_IOT_T_MOMENTARY, ps->attempt_ms);
    f.point = pt;
    f.writable = point_writable(&cu->points[pt]);
    f.vtype = GW_IOT_V_STRING;
    f.qos = GW_IOT_Q_ERROR;
    int err = ps->err                         ? ps->err
              : ps->quality == GW_Q_EXCEPTION ? GW_EMBEXC
                                              : GW_EPARSE;
    gw_store_err_text(err, ps->exception, f.value, sizeof(f.value));
    emit(c, &f);
}

static void unit_fields(const struct gw_iot *iot, const struct gw_iot_node *n,
                        struct fctx *c, int64_t now)
{
    const struct cfg_unit *cu = node_unit(iot, n);
    const struct gw_unit_state *us = &iot->store->links[n->link].units[n->unit];
    if (want_type(c->flt, GW_IOT_T_MOMENTARY)) {
        for (size_t i = 0; i < cu->n_points && !c->rc; i++) {
            const struct gw_point_state *ps = &us->points[i];
            if (!want_name(c->flt, cu->points[i].name))
                continue;
            if (ps->value.kind == AD_VALUE_NONE) {
                error_field(c, cu, i, ps);
                continue;
            }
            struct gw_iot_field f;
            point_field(iot, cu, i, &ps->value, ps->ts_ms, GW_IOT_T_MOMENTARY,
                        &f);
            f.qos = gw_iot_point_qos(iot, n->link, n->unit, i, now);
            emit(c, &f);
        }
    }
    if (want_type(c->flt, GW_IOT_T_HISTORICAL) && iot->hist) {
        const struct hring *rings = &iot->hist[iot->point_base[gunit(
            iot, unit_node(iot, n->link, n->unit))]];
        size_t cap = iot->opts.history;
        for (size_t i = 0; i < cu->n_points && !c->rc; i++) {
            const struct hring *r = &rings[i];
            if (!want_name(c->flt, cu->points[i].name))
                continue;
            for (size_t k = 0; k < r->n && !c->rc; k++) {
                const struct hsample *s =
                    &r->s[(r->head + cap - r->n + k) % cap];
                if (c->flt && c->flt->from_ms && s->ts_ms < c->flt->from_ms)
                    continue;
                if (c->flt && c->flt->to_ms && s->ts_ms > c->flt->to_ms)
                    continue;
                struct gw_iot_field f;
                point_field(iot, cu, i, &s->v, s->ts_ms, GW_IOT_T_HISTORICAL,
                            &f);
                emit(c, &f);
            }
        }
    }
    if (want_type(c->flt, GW_IOT_T_IDENTITY)) {
        emit_str(c, "Link", GW_IOT_T_IDENTITY, now, GW_IOT_V_STRING,
                 iot->cfg->links[n->link].name);
        emit_num(c, "Unit id", GW_IOT_T_IDENTITY, now, "", 0, "%u", cu->id);
        if (cu->template_name)
            emit_str(c, "Template", GW_IOT_T_IDENTITY, now, GW_IOT_V_STRING,
                     cu->template_name);
    }
    if (want_type(c->flt, GW_IOT_T_STATUS)) {
        emit_str(c, "State", GW_IOT_T_STATUS, now, GW_IOT_V_STRING,
                 gw_unit_status_name(us->status));
        if (us->last_err)
            emit_str(c, "Last error", GW_IOT_T_STATUS, now, GW_IOT_V_STRING,
                     gw_strerror(us->last_err));
        counters(c, &us->c, now);
        emit_num(c, "RTT", GW_IOT_T_STATUS, now, "ms", 3, "%.3f",
                 us->last_rtt_us / 1000.0);
        struct gw_iot_events_stats es;
        if (events_stats(iot, n->link, n->unit, &es))
            emit_num(c, "Events published", GW_IOT_T_STATUS, now, "", 0,
                     "%" PRIu64, es.published);
    }
}

int gw_iot_node_fields(const struct gw_iot *iot, size_t node,
                       const struct gw_iot_filter *flt, int64_t now_ms,
                       gw_iot_field_fn fn, void *ud)
{
    if (node >= iot->n_nodes)
        return GW_EINVAL;
    struct fctx c = {.fn = fn, .ud = ud, .flt = flt};
    const struct gw_iot_node *n = &iot->nodes[node];
    switch (n->kind) {
    case GW_IOT_GATEWAY:
        gateway_fields(iot, &c, now_ms);
        break;
    case GW_IOT_LINK:
        link_fields(iot, n, &c, now_ms);
        break;
    case GW_IOT_UNIT:
        unit_fields(iot, n, &c, now_ms);
        break;
    }
    return c.rc;
}

size_t gw_iot_history_count(const struct gw_iot *iot, size_t link, size_t unit,
                            size_t point)
{
    if (!iot->hist)
        return 0;
    return iot
        ->hist[iot->point_base[gunit(iot, unit_node(iot, link, unit))] + point]
        .n;
}

/* ---- readouts ----------------------------------------------------------- */

static void ro_unlink(struct gw_iot_readout *ro)
{
    struct gw_iot *iot = ro->iot;
    if (ro->prev)
        ro->prev->next = ro->next;
    else if (iot && iot->readouts == ro)
        iot->readouts = ro->next;
    if (ro->next)
        ro->next->prev = ro->prev;
    ro->prev = ro->next = NULL;
}

/* Does this unit need a bus read to serve the filter? */
static bool unit_needs_read(const struct gw_iot *iot,
                            const struct gw_iot_node *n,
                            const struct gw_iot_filter *flt, int64_t now)
{
    if (!want_type(flt, GW_IOT_T_MOMENTARY))
        return false;
    const struct cfg_unit *cu = node_unit(iot, n);
    const struct gw_unit_state *us = &iot->store->links[n->link].units[n->unit];
    for (size_t i = 0; i < cu->n_points; i++) {
        if (!want_name(flt, cu->points[i].name))
            continue;
        const struct gw_point_state *ps = &us->points[i];
        int64_t last = ps->attempt_ms > ps->ts_ms ? ps->attempt_ms : ps->ts_ms;
        if (ps->quality == GW_Q_NONE ||
            now - last > (int64_t)point_fresh_ms(iot, &cu->points[i]))
            return true;
    }
    return false;
}

/* Served from the store: the unit's communication failure (offline, or
 * every wanted point's last attempt timed out or found the link down), or
 * 0. */
static int unit_comm_error(const struct gw_iot *iot,
                           const struct gw_iot_node *n,
                           const struct gw_iot_filter *flt)
{
    if (!want_type(flt, GW_IOT_T_MOMENTARY))
        return 0;
    const struct cfg_unit *cu = node_unit(iot, n);
    const struct gw_unit_state *us = &iot->store->links[n->link].units[n->unit];
    if (us->status == GW_UNIT_OFFLINE)
        return us->last_err ? us->last_err : GW_ETIMEOUT;
    int err = 0;
    for (size_t i = 0; i < cu->n_points; i++) {
        if (!want_name(flt, cu->points[i].name))
            continue;
        const struct gw_point_state *ps = &us->points[i];
        if (ps->quality != GW_Q_TIMEOUT && ps->quality != GW_Q_DISCONNECTED)
            return 0;
        err = ps->err ? ps->err : GW_ETIMEOUT;
    }
    return err;
}

static void fail_text(const struct gw_iot *iot, const struct gw_iot_node *n,
                      int rc, char *buf, size_t cap)
{
    const struct cfg_unit *cu = node_unit(iot, n);
    snprintf(buf, cap, "unit %s (id %u): %s", cu->name, cu->id,
             rc == GW_ETIMEOUT ? "no response" : gw_strerror(rc));
}

static void on_unit_read(void *data, int rc, uint8_t exception);

static int start_unit_read(struct gw_iot *iot, size_t gu)
{
    struct upend *up = &iot->pend[gu];
    if (up->ctx)
        return GW_OK;
    if (!iot->engine)
        return GW_EUNSUPPORTED;
    struct read_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return GW_ENOMEM;
    ctx->iot = iot;
    ctx->gu = gu;
    const struct gw_iot_node *n = &iot->nodes[iot->unit_base + gu];
    int rc = gw_engine_read(iot->engine, n->link, n->unit, NULL, 0,
                            on_unit_read, ctx);
    if (rc != GW_OK) {
        free(ctx);
        return rc;
    }
    up->ctx = ctx;
    iot->reads_started++;
    return GW_OK;
}

static int add_waiter(struct upend *up, struct gw_iot_readout *ro)
{
    if (up->n_waiters == up->cap) {
        size_t cap = up->cap ? up->cap * 2 : 4;
        struct gw_iot_readout **w = realloc(up->waiters, cap * sizeof(*w));
        if (!w)
            return GW_ENOMEM;
        up->waiters = w;
        up->cap = cap;
    }
    up->waiters[up->n_waiters++] = ro;
    return GW_OK;
}

static void remove_waiter(struct upend *up, const struct gw_iot_readout *ro)
{
    for (size_t i = 0; i < up->n_waiters; i++)
        if (up->waiters[i] == ro)
            up->waiters[i] = NULL;
}

int gw_iot_readout_start(struct gw_iot *iot, const size_t *nodes,
                         size_t n_nodes, const struct gw_iot_filter *flt,
                         gw_iot_readout_cb cb, void *ud,
                         struct gw_iot_readout **out, bool *pending)
{
    *pending = false;
    *out = NULL;
    bool *sel = calloc(iot->n_nodes, sizeof(*sel));
    if (!sel)
        return GW_ENOMEM;
    size_t count = 0;
    for (size_t i = 0; i < iot->n_nodes; i++) {
        bool on = n_nodes == 0;
        for (size_t k = 0; !on && k < n_nodes; k++)
            on =
                nodes[k] < iot->n_nodes && gw_iot_node_within(iot, i, nodes[k]);
        sel[i] = on;
        count += on;
    }
    if (iot->opts.max_readout_nodes && count > iot->opts.max_readout_nodes) {
        free(sel);
        return GW_ELIMIT;
    }
    struct gw_iot_readout *ro = calloc(1, sizeof(*ro));
    if (!ro) {
        free(sel);
        return GW_ENOMEM;
    }
    ro->iot = iot;
    ro->cb = cb;
    ro->ud = ud;
    ro->nodes = calloc(count ? count : 1, sizeof(*ro->nodes));
    if (!ro->nodes)
        goto nomem;
    if (flt) {
        ro->flt = *flt;
        ro->flt.fields = NULL;
        ro->flt.n_fields = 0;
        if (flt->fields && flt->n_fields) {
            ro->field_names = calloc(flt->n_fields, sizeof(char *));
            if (!ro->field_names)
                goto nomem;
            for (size_t i = 0; i < flt->n_fields; i++) {
                ro->field_names[i] =
                    strdup(flt->fields[i] ? flt->fields[i] : "");
                if (!ro->field_names[i]) {
                    ro->flt.n_fields = i;
                    goto nomem;
                }
            }
            ro->flt.fields = (const char *const *)ro->field_names;
            ro->flt.n_fields = flt->n_fields;
        }
    }
    ro->next = iot->readouts;
    if (ro->next)
        ro->next->prev = ro;
    iot->readouts = ro;
    int64_t now = gw_now_ms();
    for (size_t i = 0; i < iot->n_nodes; i++) {
        if (!sel[i])
            continue;
        struct ro_node *rn = &ro->nodes[ro->n_nodes++];
        rn->node = i;
        const struct gw_iot_node *n = &iot->nodes[i];
        if (n->kind != GW_IOT_UNIT)
            continue;
        if (!unit_needs_read(iot, n, &ro->flt, now)) {
            int err = unit_comm_error(iot, n, &ro->flt);
            if (err) {
                rn->err = err;
                fail_text(iot, n, err, rn->text, sizeof(rn->text));
            }
            continue;
        }
        size_t gu = gunit(iot, i);
        int rc = start_unit_read(iot, gu);
        if (rc == GW_OK)
            rc = add_waiter(&iot->pend[gu], ro);
        if (rc == GW_ENOMEM)
            goto nomem_linked;
        if (rc != GW_OK) {
            rn->err = rc;
            fail_text(iot, n, rc, rn->text, sizeof(rn->text));
            continue;
        }
        rn->waiting = true;
        ro->waiting++;
        ro->reads++;
    }
    free(sel);
    *pending = ro->waiting > 0;
    *out = ro;
    return GW_OK;
nomem_linked:
    free(sel);
    gw_iot_readout_free(ro);
    return GW_ENOMEM;
nomem:
    free(sel);
    ro->iot = NULL;
    gw_iot_readout_free(ro);
    return GW_ENOMEM;
}

static void on_unit_read(void *data, int rc, uint8_t exception)
{
    (void)exception;
    struct read_ctx *ctx = data;
    struct gw_iot *iot = ctx->iot;
    size_t gu = ctx->gu;
    free(ctx);
    if (!iot)
        return;
    struct upend *up = &iot->pend[gu];
    up->ctx = NULL;
    size_t n = up->n_waiters;
    struct gw_iot_readout **w = up->waiters;
    up->waiters = NULL;
    up->n_waiters = up->cap = 0;
    size_t node = iot->unit_base + gu;
    bool failed = rc != GW_OK && rc != GW_EMBEXC;
    /* Phase 1: record the outcome; collect completed readouts. */
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        struct gw_iot_readout *ro = w[i];
        if (!ro)
            continue;
        for (size_t k = 0; k < ro->n_nodes; k++) {
            struct ro_node *rn = &ro->nodes[k];
            if (rn->node != node || !rn->waiting)
                continue;
            rn->waiting = false;
            ro->waiting--;
            if (failed) {
                rn->err = rc;
                fail_text(iot, &iot->nodes[node], rc, rn->text,
                          sizeof(rn->text));
            }
        }
        if (ro->waiting == 0)
            w[done++] = ro;
    }
    /* Phase 2: callbacks (which may free any readout). */
    iot->completing = w;
    iot->n_completing = done;
    for (size_t i = 0; i < done; i++) {
        struct gw_iot_readout *ro = w[i];
        if (ro && ro->cb)
            ro->cb(ro->ud, ro);
    }
    iot->completing = NULL;
    iot->n_completing = 0;
    free(w);
}

size_t gw_iot_readout_count(const struct gw_iot_readout *ro)
{
    return ro->n_nodes;
}

size_t gw_iot_readout_node(const struct gw_iot_readout *ro, size_t i, int *err,
                           const char **text)
{
    if (err)
        *err = ro->nodes[i].err;
    if (text)
        *text = ro->nodes[i].text;
    return ro->nodes[i].node;
}

int gw_iot_readout_fields(const struct gw_iot *iot,
                          const struct gw_iot_readout *ro, size_t i,
                          int64_t now_ms, gw_iot_field_fn fn, void *ud)
{
    if (ro->nodes[i].err)
        return GW_OK;
    return gw_iot_node_fields(iot, ro->nodes[i].node, &ro->flt, now_ms, fn, ud);
}

size_t gw_iot_readout_reads(const struct gw_iot_readout *ro)
{
    return ro->reads;
}

uint64_t gw_iot_reads_started(const struct gw_iot *iot)
{
    return iot->reads_started;
}

void gw_iot_readout_free(struct gw_iot_readout *ro)
{
    if (!ro)
        return;
    struct gw_iot *iot = ro->iot;
    if (iot) {
        for (size_t k = 0; k < ro->n_nodes; k++)
            if (ro->nodes[k].waiting)
                remove_waiter(&iot->pend[gunit(iot, ro->nodes[k].node)], ro);
        for (size_t i = 0; i < iot->n_completing; i++)
            if (iot->completing[i] == ro)
                iot->completing[i] = NULL;
        ro_unlink(ro);
    }
    if (ro->field_names)
        for (size_t i = 0; i < ro->flt.n_fields; i++)
            free(ro->field_names[i]);
    free(ro->field_names);
    free(ro->nodes);
    free(ro);
}

/* ---- control ------------------------------------------------------------ */

static void ctl_res(struct gw_iot_ctl_result *res, enum gw_iot_ctl_code code,
                    size_t node, size_t param, int err, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void ctl_res(struct gw_iot_ctl_result *res, enum gw_iot_ctl_code code,
                    size_t node, size_t param, int err, const char *fmt, ...)
{
    res->code = code;
    res->node = node;
    res->param = param;
    res->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->text, sizeof(res->text), fmt, ap);
    va_end(ap);
}

static bool hint_fits(const struct cfg_point *p, enum gw_iot_hint h)
{
    bool is_bool = p->type == CFG_TYPE_BOOL || p->type == CFG_TYPE_BIT;
    bool is_str = p->type == CFG_TYPE_STRING;
    switch (h) {
    case GW_IOT_H_ANY:
    case GW_IOT_H_STRING:
        return true;
    case GW_IOT_H_BOOLEAN:
        return is_bool;
    case GW_IOT_H_INT:
        return !is_str;
    case GW_IOT_H_DOUBLE:
        return !is_str && !is_bool;
    case GW_IOT_H_OTHER:
        break;
    }
    return false;
}

/* Validates one parameter for one unit: the parsed value into *v. */
static bool check_one(const struct gw_iot *iot, const struct gw_iot_node *n,
                      size_t ni, const struct gw_iot_set *sp, size_t pi,
                      size_t *point, struct ad_value *v,
                      struct gw_iot_ctl_result *res)
{
    if (n->kind != GW_IOT_UNIT) {
        ctl_res(res, GW_IOT_CTL_NOT_FOUND, ni, pi, GW_ENOTFOUND,
                "node %s has no parameter %s", n->id, sp->name);
        return false;
    }
    const struct cfg_unit *cu = node_unit(iot, n);
    size_t pt = GW_IOT_NONE;
    for (size_t i = 0; i < cu->n_points; i++)
        if (strcmp(cu->points[i].name, sp->name) == 0)
            pt = i;
    if (pt == GW_IOT_NONE) {
        ctl_res(res, GW_IOT_CTL_NOT_FOUND, ni, pi, GW_ENOTFOUND,
                "node %s has no parameter %s", n->id, sp->name);
        return false;
    }
    const struct cfg_point *p = &cu->points[pt];
    if (!point_writable(p)) {
        ctl_res(res, GW_IOT_CTL_FORM_ERROR, ni, pi, GW_EREADONLY,
                "%s.%s is not writable", n->id, sp->name);
        return false;
    }
    if (!hint_fits(p, sp->hint)) {
        ctl_res(res, GW_IOT_CTL_FORM_ERROR, ni, pi, GW_ETYPE,
                "%s.%s is a %s point: wrong parameter type", n->id, sp->name,
                cfg_type_name(p->type));
        return false;
    }
    int rc = ad_value_parse(p, sp->value ? sp->value : "", v);
    if (rc != GW_OK) {
        ctl_res(res, GW_IOT_CTL_FORM_ERROR, ni, pi, rc, "%s.%s: %s '%s'", n->id,
                sp->name,
                rc == GW_ERANGE ? "value out of range" : "not a valid value",
                sp->value ? sp->value : "");
        return false;
    }
    double d;
    if (ad_value_to_double(v, &d) &&
        ((p->has_min && d < p->min) || (p->has_max && d > p->max))) {
        char lo[32] = "", hi[32] = "";
        if (p->has_min)
            snprintf(lo, sizeof(lo), "%g", p->min);
        if (p->has_max)
            snprintf(hi, sizeof(hi), "%g", p->max);
        ctl_res(res, GW_IOT_CTL_FORM_ERROR, ni, pi, GW_ERANGE,
                "%s.%s: value out of range %s..%s", n->id, sp->name, lo, hi);
        return false;
    }
    /* The codec's own checks (raw type range, scale) without writing. */
    if (p->table == CFG_TABLE_COIL) {
        uint8_t bit;
        rc = ad_encode_bit(p, v, &bit);
    } else {
        uint16_t regs[CFG_MAX_WRITE_REGISTERS];
        rc = p->count > CFG_MAX_WRITE_REGISTERS
                 ? GW_ELIMIT
                 : ad_encode_registers(p, v, 0, regs, CFG_MAX_WRITE_REGISTERS);
    }
    if (rc != GW_OK) {
        ctl_res(res, GW_IOT_CTL_FORM_ERROR, ni, pi, rc, "%s.%s: %s", n->id,
                sp->name, gw_strerror(rc));
        return false;
    }
    *point = pt;
    return true;
}

/* ---- control: bounds and bus time -------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Is params[k] an exact repeat (name, type, value) of an earlier one? */
static bool param_repeat(const struct gw_iot_set *params, size_t k)
{
    for (size_t j = 0; j < k; j++)
        if (params[j].hint == params[k].hint &&
            str_eq(params[j].name, params[k].name) &&
            str_eq(params[j].value, params[k].value))
            return true;
    return false;
}

/* The engine's function code for a write (gw_engine.c: write_fc). */
static int write_fc_of(const struct cfg_point *p)
{
    if (p->write_fc != CFG_WRITE_AUTO)
        return (int)p->write_fc;
    if (p->table == CFG_TABLE_COIL)
        return 5;
    return p->count == 1 ? 6 : 16;
}

/* A link as the bus-time formula sees it: an rtu-over-tcp link is the
 * serial line behind its gateway, at GW_IOT_RTU_OVER_TCP_BAUD 8E1.
 * *serial is false for Modbus TCP (no shared line, no estimate). */
static struct cfg_link serial_view(const struct cfg_link *cl, bool *serial)
{
    struct cfg_link l = *cl;
    *serial = cl->type != CFG_LINK_TCP;
    if (cl->type == CFG_LINK_RTU_OVER_TCP) {
        l.type = CFG_LINK_RTU;
        l.baud = GW_IOT_RTU_OVER_TCP_BAUD;
        l.parity = CFG_PARITY_EVEN;
        l.data_bits = 8;
        l.stop_bits = 1;
    }
    return l;
}

/* Estimated bus time of one write on an RTU line, in microseconds, by the
 * planner's formula (ad_request_bus_time_us: frames at the line's
 * character time, the 3.5-character silences, the link's delay).  A
 * write's request and response are costed as a read request whose frames
 * have the same size or one byte more: FC05/FC06 (8 + 8 bytes) as an FC03
 * read of 2 registers (8 + 9), FC16 of n registers (9 + 2n + 8) as an FC03
 * read of n + 2, FC15 of n bits (9 + ceil(n/8) + 8) as an FC01 read of
 * n + 32.  A bit point is read first (FC03, 1 register).  The engine then
 * re-reads the point, and reads it back before that with verify. */
static uint64_t write_bus_us(const struct cfg_link *l, size_t unit, size_t pt)
{
    const struct cfg_unit *cu = &l->units[unit];
    const struct cfg_point *p = &cu->points[pt];
    struct ad_request rq = {
        .unit = unit, .unit_id = cu->id, .start = p->address};
    uint64_t us = 0;
    int fc = write_fc_of(p);
    if (p->type == CFG_TYPE_BIT) {
        rq.fc = 3;
        rq.count = 1;
        us += ad_request_bus_time_us(l, &rq);
        fc = 6;
    }
    switch (fc) {
    case 5:
    case 6:
        rq.fc = 3;
        rq.count = 2;
        break;
    case 15:
        rq.fc = 1;
        rq.count = (uint16_t)(p->count + 32u);
        break;
    default:
        rq.fc = 3;
        rq.count = (uint16_t)(p->count + 2u);
        break;
    }
    us += ad_request_bus_time_us(l, &rq);
    struct ad_plan plan;
    if (ad_plan_points(l, unit, &pt, 1, NULL, &plan) == GW_OK) {
        uint64_t rd = ad_plan_bus_time_us(l, &plan);
        us += p->verify ? 2 * rd : rd;
        ad_plan_close(&plan);
    }
    return us;
}

static uint32_t max_writes(const struct gw_iot *iot)
{
    return iot->opts.control_max_writes ? iot->opts.control_max_writes
                                        : GW_IOT_DEFAULT_MAX_WRITES;
}

static uint32_t max_bus_ms(const struct gw_iot *iot)
{
    return iot->opts.control_max_bus_ms ? iot->opts.control_max_bus_ms
                                        : GW_IOT_DEFAULT_MAX_BUS_MS;
}

/* Refuses writes that would hold one serial line longer than allowed. */
static bool check_bus_time(const struct gw_iot *iot, const struct ctl_write *w,
                           size_t n_w, struct gw_iot_ctl_result *res)
{
    uint64_t *per_link = calloc(iot->cfg->n_links, sizeof(*per_link));
    if (!per_link) {
        ctl_res(res, GW_IOT_CTL_OTHER, GW_IOT_NONE, GW_IOT_NONE, GW_ENOMEM,
                "out of memory");
        return false;
    }
    for (size_t i = 0; i < n_w; i++) {
        bool serial;
        struct cfg_link l = serial_view(&iot->cfg->links[w[i].link], &serial);
        if (serial)
            per_link[w[i].link] += write_bus_us(&l, w[i].unit, w[i].point);
    }
    uint64_t limit_us = (uint64_t)max_bus_ms(iot) * 1000u;
    bool ok = true;
    for (size_t l = 0; l < iot->cfg->n_links && ok; l++) {
        if (per_link[l] <= limit_us)
            continue;
        ctl_res(res, GW_IOT_CTL_LIMIT, GW_IOT_NONE, GW_IOT_NONE, GW_ELIMIT,
                "set refused: its writes would occupy serial link %s for "
                "about %.2f s (limit %.2f s per request)",
                iot->cfg->links[l].name, (double)per_link[l] / 1e6,
                (double)limit_us / 1e6);
        ok = false;
    }
    free(per_link);
    return ok;
}

/* Validates a request; with w_out, the writes (distinct nodes in the given
 * order x distinct parameters in document order) into a new array. */
static bool validate(const struct gw_iot *iot, const char *jid,
                     const size_t *nodes, size_t n_nodes,
                     const struct gw_iot_set *params, size_t n_params,
                     struct ctl_write **w_out, size_t *n_w_out,
                     struct gw_iot_ctl_result *res)
{
    memset(res, 0, sizeof(*res));
    res->node = res->param = GW_IOT_NONE;
    if (w_out) {
        *w_out = NULL;
        *n_w_out = 0;
    }
    if (gw_iot_access(iot, jid) < GW_ACCESS_CONTROL) {
        ctl_res(res, GW_IOT_CTL_FORBIDDEN, GW_IOT_NONE, GW_IOT_NONE,
                GW_EFORBIDDEN, "%s may not control this gateway",
                jid ? jid : "?");
        return false;
    }
    if (n_nodes == 0) {
        ctl_res(res, GW_IOT_CTL_NOT_FOUND, GW_IOT_NONE, GW_IOT_NONE,
                GW_ENOTFOUND, "no node given: name the unit to control");
        return false;
    }
    if (n_params == 0) {
        ctl_res(res, GW_IOT_CTL_FORM_ERROR, GW_IOT_NONE, GW_IOT_NONE, GW_EINVAL,
                "no parameter to set");
        return false;
    }
    for (size_t i = 0; i < n_nodes; i++)
        if (nodes[i] >= iot->n_nodes) {
            ctl_res(res, GW_IOT_CTL_NOT_FOUND, i, GW_IOT_NONE, GW_ENOTFOUND,
                    "unknown node");
            return false;
        }
    /* Distinct nodes and parameters, counted before any per-point work. */
    bool *seen = calloc(iot->n_nodes, sizeof(*seen));
    bool *node_rep = calloc(n_nodes, sizeof(*node_rep));
    bool *param_rep = calloc(n_params, sizeof(*param_rep));
    struct ctl_write *w = NULL;
    bool ok = false;
    if (!seen || !node_rep || !param_rep) {
        ctl_res(res, GW_IOT_CTL_OTHER, GW_IOT_NONE, GW_IOT_NONE, GW_ENOMEM,
                "out of memory");
        goto out;
    }
    size_t un = 0, up = 0;
    for (size_t i = 0; i < n_nodes; i++) {
        node_rep[i] = seen[nodes[i]];
        seen[nodes[i]] = true;
        un += !node_rep[i];
    }
    for (size_t k = 0; k < n_params; k++) {
        param_rep[k] = param_repeat(params, k);
        up += !param_rep[k];
    }
    uint32_t limit = max_writes(iot);
    if (un > limit / up) {
        ctl_res(res, GW_IOT_CTL_LIMIT, GW_IOT_NONE, GW_IOT_NONE, GW_ELIMIT,
                "set refused: %zu node(s) x %zu parameter(s) = %zu writes, "
                "more than the %u allowed per request",
                un, up, un * up, limit);
        goto out;
    }
    w = calloc(un * up, sizeof(*w));
    if (!w) {
        ctl_res(res, GW_IOT_CTL_OTHER, GW_IOT_NONE, GW_IOT_NONE, GW_ENOMEM,
                "out of memory");
        goto out;
    }
    size_t n_w = 0;
    for (size_t i = 0; i < n_nodes; i++) {
        if (node_rep[i])
            continue;
        for (size_t k = 0; k < n_params; k++) {
            if (param_rep[k])
                continue;
            struct ctl_write *cw = &w[n_w++];
            if (!check_one(iot, &iot->nodes[nodes[i]], i, &params[k], k,
                           &cw->point, &cw->value, res))
                goto out;
            cw->node = i;
            cw->param = k;
            cw->link = iot->nodes[nodes[i]].link;
            cw->unit = iot->nodes[nodes[i]].unit;
        }
    }
    if (!check_bus_time(iot, w, n_w, res))
        goto out;
    if (!iot->engine) {
        ctl_res(res, GW_IOT_CTL_NOT_IMPLEMENTED, GW_IOT_NONE, GW_IOT_NONE,
                GW_EUNSUPPORTED, "no bus engine");
        goto out;
    }
    ok = true;
    if (w_out) {
        *w_out = w;
        *n_w_out = n_w;
        w = NULL;
    }
out:
    free(w);
    free(seen);
    free(node_rep);
    free(param_rep);
    return ok;
}

bool gw_iot_control_check(const struct gw_iot *iot, const char *jid,
                          const size_t *nodes, size_t n_nodes,
                          const struct gw_iot_set *params, size_t n_params,
                          struct gw_iot_ctl_result *res)
{
    return validate(iot, jid, nodes, n_nodes, params, n_params, NULL, NULL,
                    res);
}

static void ctl_unlink(struct gw_iot_control *c)
{
    if (c->prev)
        c->prev->next_ctl = c->next_ctl;
    else if (c->iot && c->iot->controls == c)
        c->iot->controls = c->next_ctl;
    if (c->next_ctl)
        c->next_ctl->prev = c->prev;
    c->prev = c->next_ctl = NULL;
}

static void ctl_destroy(struct gw_iot_control *c)
{
    ctl_unlink(c);
    free(c->jid);
    free(c->summary);
    free(c->w);
    free(c);
}

/* The request's one log line: every point old -> new, then the outcome. */
static void ctl_log(const struct gw_iot_control *c, const struct gw_log *log,
                    enum gw_log_level level, const char *outcome)
{
    GW_LOG(log, level, AREA, "control by %s: %s: %s", c->jid, c->summary,
           outcome);
}

static void ctl_finish(struct gw_iot_control *c,
                       const struct gw_iot_ctl_result *res)
{
    gw_iot_control_cb cb = c->cb;
    void *ud = c->ud;
    ctl_destroy(c);
    if (cb)
        cb(ud, res);
}

/* A write failed (rc, with the exception code for GW_EMBEXC): log the
 * request's line, report, stop. */
static void ctl_failed(struct gw_iot_control *c, int rc, uint8_t exception)
{
    struct gw_iot *iot = c->iot;
    struct ctl_write *w = &c->w[c->next];
    const struct cfg_unit *cu = &iot->cfg->links[w->link].units[w->unit];
    const struct cfg_point *p = &cu->points[w->point];
    char nv[AD_STRING_MAX + 1], why[96], outcome[AD_STRING_MAX + 300];
    ad_value_format(p, &w->value, nv, sizeof(nv));
    if (rc == GW_EMBEXC)
        snprintf(why, sizeof(why), "Modbus exception %u", exception);
    else
        snprintf(why, sizeof(why), "%s", gw_strerror(rc));
    snprintf(outcome, sizeof(outcome),
             "%s.%s := %s failed: %s (%zu of %zu "
             "writes done)",
             cu->name, p->name, nv, why, c->next, c->n_w);
    ctl_log(c, iot->log, GW_LOG_WARN, outcome);
    struct gw_iot_ctl_result res;
    ctl_res(&res, GW_IOT_CTL_OTHER, w->node, w->param, rc, "%s.%s: %s",
            cu->name, p->name, why);
    ctl_finish(c, &res);
}

static void on_write(void *data, int rc, uint8_t exception);

static void ctl_next(struct gw_iot_control *c)
{
    struct gw_iot *iot = c->iot;
    struct gw_iot_ctl_result res = {
        .code = GW_IOT_CTL_OK, .node = GW_IOT_NONE, .param = GW_IOT_NONE};
    if (c->next >= c->n_w) {
        char outcome[64];
        snprintf(outcome, sizeof(outcome), "ok (%zu write%s)", c->n_w,
                 c->n_w == 1 ? "" : "s");
        ctl_log(c, iot->log, GW_LOG_NOTICE, outcome);
        ctl_finish(c, &res);
        return;
    }
    struct ctl_write *w = &c->w[c->next];
    int rc = iot->engine
                 ? gw_engine_write(iot->engine, w->link, w->unit, w->point,
                                   &w->value, false, on_write, c)
                 : GW_EUNSUPPORTED;
    if (rc == GW_OK) {
        c->in_flight = true;
        return;
    }
    ctl_failed(c, rc, 0);
}

static void on_write(void *data, int rc, uint8_t exception)
{
    struct gw_iot_control *c = data;
    c->in_flight = false;
    struct gw_iot *iot = c->iot;
    if (!iot || c->dropped) {
        /* Dropped by the caller or the model: no further writes. */
        ctl_destroy(c);
        return;
    }
    if (rc != GW_OK) {
        ctl_failed(c, rc, exception);
        return;
    }
    c->next++;
    ctl_next(c);
}

/* "m1.sp 21.5 -> 22.0, m1.relay false -> true", bounded; the rest
 * counted. */
static char *ctl_summary(const struct gw_iot *iot, const struct ctl_write *w,
                         size_t n_w)
{
    enum { CAP = 640 };
    char *s = malloc(CAP);
    if (!s)
        return NULL;
    size_t len = 0;
    s[0] = '\0';
    for (size_t i = 0; i < n_w; i++) {
        const struct cfg_unit *cu =
            &iot->cfg->links[w[i].link].units[w[i].unit];
        const struct cfg_point *p = &cu->points[w[i].point];
        const struct gw_point_state *ps =
            gw_store_point(iot->store, w[i].link, w[i].unit, w[i].point);
        char ov[AD_STRING_MAX + 1] = "?", nv[AD_STRING_MAX + 1];
        if (ps->value.kind != AD_VALUE_NONE)
            ad_value_format(p, &ps->value, ov, sizeof(ov));
        ad_value_format(p, &w[i].value, nv, sizeof(nv));
        char one[2 * AD_STRING_MAX + 2 * CFG_MAX_NAME + 16];
        int n = snprintf(one, sizeof(one), "%s%s.%s %s -> %s", i ? ", " : "",
                         cu->name, p->name, ov, nv);
        if (n < 0 || len + (size_t)n + 24 >= CAP) {
            snprintf(s + len, CAP - len, "%s(+%zu more)", i ? ", " : "",
                     n_w - i);
            break;
        }
        memcpy(s + len, one, (size_t)n + 1);
        len += (size_t)n;
    }
    return s;
}

bool gw_iot_control_start(struct gw_iot *iot, const char *jid,
                          const size_t *nodes, size_t n_nodes,
                          const struct gw_iot_set *params, size_t n_params,
                          gw_iot_control_cb cb, void *ud,
                          struct gw_iot_control **out,
                          struct gw_iot_ctl_result *res)
{
    *out = NULL;
    struct ctl_write *w;
    size_t n_w;
    if (!validate(iot, jid, nodes, n_nodes, params, n_params, &w, &n_w, res))
        return false;
    struct gw_iot_control *c = calloc(1, sizeof(*c));
    char *j = strdup(jid ? jid : "?");
    char *summary = ctl_summary(iot, w, n_w);
    if (!c || !j || !summary) {
        free(w);
        free(c);
        free(j);
        free(summary);
        memset(res, 0, sizeof(*res));
        ctl_res(res, GW_IOT_CTL_OTHER, GW_IOT_NONE, GW_IOT_NONE, GW_ENOMEM,
                "out of memory");
        return false;
    }
    c->iot = iot;
    c->jid = j;
    c->summary = summary;
    c->w = w;
    c->n_w = n_w;
    c->cb = cb;
    c->ud = ud;
    c->next_ctl = iot->controls;
    if (c->next_ctl)
        c->next_ctl->prev = c;
    iot->controls = c;
    *out = c;
    ctl_next(c);
    return true;
}

/* A control ends without its result: log the request's line. */
static void ctl_log_dropped(const struct gw_iot_control *c,
                            const struct gw_log *log)
{
    char outcome[96];
    snprintf(outcome, sizeof(outcome), "dropped after %zu of %zu writes%s",
             c->next, c->n_w, c->in_flight ? " (one in flight)" : "");
    ctl_log(c, log, GW_LOG_INFO, outcome);
}

void gw_iot_control_free(struct gw_iot_control *ctl)
{
    if (!ctl)
        return;
    if (ctl->iot && !ctl->dropped)
        ctl_log_dropped(ctl, ctl->iot->log);
    if (ctl->in_flight) {
        ctl->dropped = true;
        ctl->cb = NULL;
        ctl_unlink(ctl);
        return;
    }
    ctl_destroy(ctl);
}

/* ---- control parameters (forms) ---------------------------------------- */

static void ctl_param(const struct gw_iot *iot, const struct gw_iot_node *n,
                      size_t pt, struct gw_iot_ctl_param *out)
{
    const struct cfg_unit *cu = node_unit(iot, n);
    const struct cfg_point *p = &cu->points[pt];
    const struct gw_point_state *ps =
        gw_store_point(iot->store, n->link, n->unit, pt);
    memset(out, 0, sizeof(*out));
    out->name = p->name;
    out->description = p->description;
    out->unit = p->unit;
    out->labels = p->labels;
    out->n_labels = p->n_labels;
    bool scaled = p->scale != 1.0 || p->offset != 0.0;
    double rlo = 0, rhi = 0;
    bool raw_range = true;
    switch (p->type) {
    case CFG_TYPE_BOOL:
    case CFG_TYPE_BIT:
        out->kind = GW_IOT_H_BOOLEAN;
        raw_range = false;
        break;
    case CFG_TYPE_STRING:
        out->kind = GW_IOT_H_STRING;
        raw_range = false;
        break;
    case CFG_TYPE_FLOAT32:
    case CFG_TYPE_FLOAT64:
        out->kind = GW_IOT_H_DOUBLE;
        raw_range = false;
        break;
    case CFG_TYPE_INT16:
        rlo = -32768.0;
        rhi = 32767.0;
        break;
    case CFG_TYPE_UINT16:
        rhi = 65535.0;
        break;
    case CFG_TYPE_INT32:
        rlo = -2147483648.0;
        rhi = 2147483647.0;
        break;
    case CFG_TYPE_UINT32:
        rhi = 4294967295.0;
        out->is_long = true;
        break;
    case CFG_TYPE_INT64:
    case CFG_TYPE_UINT64:
        out->is_long = true;
        raw_range = false;
        break;
    case CFG_TYPE_BCD16:
        rhi = 9999.0;
        break;
    case CFG_TYPE_BCD32:
        rhi = 99999999.0;
        out->is_long = true;
        break;
    }
    if (out->kind == GW_IOT_H_ANY)
        out->kind = scaled ? GW_IOT_H_DOUBLE : GW_IOT_H_INT;
    if (p->n_labels)
        out->kind = GW_IOT_H_STRING;
    if (raw_range && out->kind != GW_IOT_H_STRING) {
        double a = rlo * p->scale + p->offset, b = rhi * p->scale + p->offset;
        out->min = a < b ? a : b;
        out->max = a < b ? b : a;
        out->has_min = out->has_max = true;
    }
    if (p->has_min) {
        out->min = p->min;
        out->has_min = true;
    }
    if (p->has_max) {
        out->max = p->max;
        out->has_max = true;
    }
    if (ps->value.kind != AD_VALUE_NONE) {
        out->has_value = true;
        const char *l = ad_value_label(p, &ps->value);
        if (l)
            snprintf(out->value, sizeof(out->value), "%s", l);
        else
            ad_value_format(p, &ps->value, out->value, sizeof(out->value));
    }
}

int gw_iot_node_controls(const struct gw_iot *iot, size_t node,
                         gw_iot_ctl_param_fn fn, void *ud)
{
    if (node >= iot->n_nodes || iot->nodes[node].kind != GW_IOT_UNIT)
        return GW_OK;
    const struct gw_iot_node *n = &iot->nodes[node];
    const struct cfg_unit *cu = node_unit(iot, n);
    for (size_t i = 0; i < cu->n_points; i++) {
        if (!point_writable(&cu->points[i]))
            continue;
        struct gw_iot_ctl_param p;
        ctl_param(iot, n, i, &p);
        int rc = fn(ud, &p);
        if (rc)
            return rc;
    }
    return GW_OK;
}

bool gw_iot_node_control(const struct gw_iot *iot, size_t node,
                         const char *name, struct gw_iot_ctl_param *out)
{
    if (node >= iot->n_nodes || iot->nodes[node].kind != GW_IOT_UNIT || !name)
        return false;
    const struct gw_iot_node *n = &iot->nodes[node];
    const struct cfg_unit *cu = node_unit(iot, n);
    for (size_t i = 0; i < cu->n_points; i++) {
        if (point_writable(&cu->points[i]) &&
            strcmp(cu->points[i].name, name) == 0) {
            ctl_param(iot, n, i, out);
            return true;
        }
    }
    return false;
}

/* ---- commands ----------------------------------------------------------- */

static const struct gw_iot_command COMMANDS[] = {
    {"readNow", "Read now", GW_ACCESS_READ},
    {"resetBackoff", "Reset backoff (retry now)", GW_ACCESS_CONTROL},
};

size_t gw_iot_node_commands(const struct gw_iot *iot, size_t node,
                            const struct gw_iot_command **out)
{
    (void)iot;
    (void)node;
    *out = COMMANDS;
    return sizeof(COMMANDS) / sizeof(COMMANDS[0]);
}

int gw_iot_node_command(struct gw_iot *iot, const char *jid, size_t node,
                        const char *command)
{
    const struct gw_iot_command *cmd = NULL;
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++)
        if (command && strcmp(COMMANDS[i].id, command) == 0)
            cmd = &COMMANDS[i];
    if (!cmd || node >= iot->n_nodes)
        return GW_ENOTFOUND;
    if (gw_iot_access(iot, jid) < cmd->needs)
        return GW_EFORBIDDEN;
    if (!iot->engine)
        return GW_EUNSUPPORTED;
    int first = GW_OK;
    for (size_t i = iot->unit_base; i < iot->n_nodes; i++) {
        if (!gw_iot_node_within(iot, i, node))
            continue;
        const struct gw_iot_node *n = &iot->nodes[i];
        if (cmd == &COMMANDS[0]) {
            int rc = start_unit_read(iot, gunit(iot, i));
            if (rc != GW_OK && first == GW_OK)
                first = rc;
        } else {
            gw_engine_reset_backoff(iot->engine, n->link, n->unit);
        }
    }
    GW_LOG(iot->log, GW_LOG_INFO, AREA, "command %s on %s by %s: %s", cmd->id,
           iot->nodes[node].id, jid ? jid : "?",
           first ? gw_strerror(first) : "ok");
    return first;
}
