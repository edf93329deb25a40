/* gw_xmpp.c - the XMPP session of the daemon. */
#include "gw_xmpp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_access.h"
#include "gw_err.h"
#include "gw_events.h"
#include "gw_iot.h"
#include "gw_spool.h"
#include "xs_conn.h"
#include "xs_iot_xsf.h"
#include "xs_jid.h"
#include "xs_pubsub.h"

struct gw_xmpp {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct gw_store *store;
    struct gw_engine *engine;
    const struct gw_log *log;
    struct xs_conn *conn;
    struct gw_iot *iot;
    struct xs_iot_xsf *fe;
    struct gw_events *events; /* with events: only */
    struct xs_pubsub *pubsub; /* with events: only */
    struct gw_spool *spool;   /* delivery every, while its dir is usable */
    uv_timer_t *retry;        /* xs_pubsub's retry of failed login checks */
    char spool_dir[4096];
    int64_t spool_open_ms; /* the last attempt to open it */
    int closing; /* closes still to come (session, events, spool, retry) */
    void (*closed_cb)(void *ud);
    void *closed_ud;
};

static const char *const AREA = "xmpp";

int gw_read_secret(const char *name, char *buf, size_t cap)
{
    char path[4096];
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    FILE *f = NULL;
    if (name[0] != '/' && dir) {
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "re");
    }
    if (!f)
        f = fopen(name, "re");
    if (!f)
        return GW_EIO;
    size_t n = fread(buf, 1, cap - 1, f);
    bool more = fgetc(f) != EOF;
    bool err = ferror(f) != 0;
    fclose(f);
    if (err)
        return GW_EIO;
    if (more) {
        explicit_bzero(buf, cap);
        return GW_ELIMIT;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    return GW_OK;
}

static enum xs_access on_access(void *ud, const char *bare_jid)
{
    struct gw_xmpp *x = ud;
    switch (gw_access_check(&x->cfg->access, bare_jid)) {
    case GW_ACCESS_CONTROL:
        return XS_ACCESS_CONTROL;
    case GW_ACCESS_READ:
        return XS_ACCESS_READ;
    default:
        return XS_ACCESS_NONE;
    }
}

static void on_online(void *ud, const char *full_jid, bool resumed)
{
    struct gw_xmpp *x = ud;
    (void)full_jid;
    /* A new session: subscriptions and readouts of the old one are gone
     * (XEP-0326 subscriptions last only while both sides are present). */
    if (!resumed && x->fe)
        xs_iot_xsf_reset(x->fe);
    /* Nodes are checked at every login, resumed or not (a resumption
     * failed the publishes in flight; the snapshot after the checks
     * publishes every unit's current values again). */
    if (x->pubsub) {
        char bare[XS_JID_MAX + 1];
        if (xs_jid_bare_of(full_jid, bare, sizeof(bare)) != GW_OK)
            snprintf(bare, sizeof(bare), "%s", x->cfg->xmpp.jid);
        xs_pubsub_online(x->pubsub, bare);
    }
}

static void on_offline(void *ud, int err)
{
    struct gw_xmpp *x = ud;
    (void)err;
    if (x->pubsub)
        xs_pubsub_offline(x->pubsub); /* stops the retry timer too */
    if (x->retry)
        uv_timer_stop(x->retry);
}

/* ---- events: gw_events -> xs_pubsub, stats -> gw_iot -------------------- */

static bool src_take(void *ud, struct gw_events_batch *out)
{
    return gw_events_take(ud, out);
}

static void src_snapshot(void *ud)
{
    gw_events_snapshot(ud);
}

static void src_requeue(void *ud, const struct gw_events_batch *b)
{
    gw_events_requeue(ud, b->link, b->unit, b->points, b->n_points);
}

static size_t src_backlog(void *ud)
{
    struct gw_events_stats st;
    gw_events_get_stats(ud, &st);
    return st.backlog;
}

static void on_events_ready(void *ud)
{
    struct gw_xmpp *x = ud;
    if (x->pubsub)
        xs_pubsub_ready(x->pubsub);
}

static bool events_stats(void *ud, size_t link, size_t unit,
                         struct gw_iot_events_stats *out)
{
    struct gw_xmpp *x = ud;
    if (!x->pubsub)
        return false;
    if (link != GW_IOT_NONE) {
        out->published = xs_pubsub_unit_published(x->pubsub, link, unit);
        return true;
    }
    struct xs_pubsub_stats st;
    xs_pubsub_get_stats(x->pubsub, &st);
    out->published = st.published;
    out->errors = st.errors;
    out->in_flight = st.in_flight;
    out->backlog = st.backlog;
    out->warning = st.state == XS_PUBSUB_WARNING || st.fallback;
    snprintf(out->text, sizeof(out->text), "%s",
             st.state == XS_PUBSUB_WARNING ? st.text : st.spool_text);
    if (st.every) {
        out->spool = true;
        out->spool_bytes = st.spool_bytes;
        out->spool_dropped = st.spool_dropped;
        int64_t age = st.spool_oldest_ms ? gw_now_ms() - st.spool_oldest_ms : 0;
        out->spool_oldest_age_ms = age > 0 ? age : 0;
    }
    return true;
}

/* ---- delivery every: gw_spool under xs_pubsub ---------------------------- */

/* An unusable directory is tried again at most this often (appends are
 * tried every XS_PUBSUB_SPOOL_RETRY_MS while the publisher falls back). */
#define SPOOL_REOPEN_MS 60000

static int spool_open(struct gw_xmpp *x)
{
    const struct cfg_spool *cs = &x->cfg->events.spool;
    struct gw_spool_opts o = {
        .dir = x->spool_dir,
        .max_bytes = cs->max_bytes,
        .max_age_ms = cs->max_age_ms,
        .fsync_ms = cs->fsync_ms,
    };
    x->spool_open_ms = gw_now_ms();
    int rc = gw_spool_open(x->loop, &o, x->log, &x->spool);
    if (rc != GW_OK)
        x->spool = NULL;
    return rc;
}

static int sp_append(void *ud, const char *unit, int64_t ts_ms,
                     const void *payload, size_t len, uint64_t *seq_out)
{
    struct gw_xmpp *x = ud;
    if (!x->spool && (gw_now_ms() - x->spool_open_ms < SPOOL_REOPEN_MS ||
                      spool_open(x) != GW_OK))
        return GW_EIO;
    return gw_spool_append(x->spool, unit, ts_ms, payload, len, seq_out);
}

static bool sp_next(void *ud, struct gw_spool_rec *out)
{
    struct gw_xmpp *x = ud;
    return x->spool && gw_spool_next(x->spool, out);
}

static void sp_ack(void *ud, uint64_t pos)
{
    struct gw_xmpp *x = ud;
    if (x->spool)
        gw_spool_ack(x->spool, pos);
}

static void sp_rewind(void *ud)
{
    struct gw_xmpp *x = ud;
    if (x->spool)
        gw_spool_rewind(x->spool);
}

static void sp_stats(void *ud, struct gw_spool_stats *out)
{
    struct gw_xmpp *x = ud;
    if (x->spool) {
        gw_spool_get_stats(x->spool, out);
        return;
    }
    memset(out, 0, sizeof(*out));
    out->error = GW_EIO;
    snprintf(out->error_text, sizeof(out->error_text),
             "the directory %.80s cannot be used (see the log)", x->spool_dir);
}

static void spool_new(struct gw_xmpp *x)
{
    if (cfg_spool_dir(&x->cfg->events.spool, x->spool_dir,
                      sizeof(x->spool_dir)) != GW_OK)
        snprintf(x->spool_dir, sizeof(x->spool_dir), "%s",
                 CFG_SPOOL_DEFAULT_DIR);
    /* A failure is logged by gw_spool_open; the publisher then starts
     * with latest values (a warning on the gateway node). */
    if (spool_open(x) == GW_OK)
        GW_LOG(x->log, GW_LOG_INFO, AREA, "events.delivery every: spool in %s",
               x->spool_dir);
    struct xs_pubsub_spool sp = {
        .append = sp_append,
        .next = sp_next,
        .ack = sp_ack,
        .rewind = sp_rewind,
        .stats = sp_stats,
        .ud = x,
    };
    xs_pubsub_set_spool(x->pubsub, &sp);
}

static void on_pubsub_state(void *ud)
{
    struct gw_xmpp *x = ud;
    if (x->iot)
        gw_iot_events_changed(x->iot);
}

static void on_retry_timer(uv_timer_t *t)
{
    struct gw_xmpp *x = t->data;
    if (x->pubsub)
        xs_pubsub_retry(x->pubsub);
}

/* xs_pubsub's timer hook: ms > 0 (re)arms the one-shot, 0 stops it. */
static void retry_timer(void *ud, uint32_t ms)
{
    struct gw_xmpp *x = ud;
    if (!x->retry)
        return;
    uv_timer_stop(x->retry);
    if (ms > 0)
        uv_timer_start(x->retry, on_retry_timer, ms, 0);
}

static int events_new(struct gw_xmpp *x)
{
    int rc = gw_events_new(x->loop, x->cfg, x->store, x->log, on_events_ready,
                           x, &x->events);
    if (rc != GW_OK)
        return rc;
    struct xs_pubsub_source src = {
        .take = src_take,
        .snapshot = src_snapshot,
        .backlog = src_backlog,
        .requeue = src_requeue,
        .ud = x->events,
    };
    rc = xs_pubsub_new(x->cfg, x->iot, &src, x->log, &x->pubsub);
    if (rc != GW_OK)
        return rc;
    xs_pubsub_attach(x->pubsub, x->conn);
    xs_pubsub_set_state_cb(x->pubsub, on_pubsub_state, x);
    if (x->cfg->events.delivery == CFG_DELIVERY_EVERY)
        spool_new(x);
    gw_iot_set_events_stats_fn(x->iot, events_stats, x);
    /* Last: nothing fails after it, so gw_xmpp_new's error path never has
     * this handle to close. */
    x->retry = malloc(sizeof(*x->retry));
    if (!x->retry)
        return GW_ENOMEM;
    if (uv_timer_init(x->loop, x->retry) != 0) {
        free(x->retry);
        x->retry = NULL;
        return GW_EIO;
    }
    x->retry->data = x;
    xs_pubsub_set_timer(x->pubsub, retry_timer, x);
    return GW_OK;
}

static void on_stanza(void *ud, const struct xs_stanza *st)
{
    struct gw_xmpp *x = ud;
    if (!x->fe)
        return;
    const char *name = xs_stanza_name(st);
    if (strcmp(name, "message") == 0)
        xs_iot_xsf_message(x->fe, st, gw_now_ms());
    else if (strcmp(name, "presence") == 0)
        xs_iot_xsf_presence(x->fe, st);
}

int gw_xmpp_new(uv_loop_t *loop, const struct cfg *cfg, struct gw_store *store,
                struct gw_engine *engine, const struct gw_log *log,
                struct gw_xmpp **out)
{
    const struct cfg_xmpp *xc = &cfg->xmpp;
    char password[1024];
    if (xc->password_file) {
        int rc = gw_read_secret(xc->password_file, password, sizeof(password));
        if (rc != GW_OK) {
            GW_LOG(log, GW_LOG_ERROR, AREA,
                   "cannot read the password file %s: %s", xc->password_file,
                   rc == GW_ELIMIT ? "too long" : strerror(errno));
            return rc;
        }
    } else if (xc->password) {
        snprintf(password, sizeof(password), "%s", xc->password);
    } else {
        GW_LOG(log, GW_LOG_ERROR, AREA, "no password for %s", xc->jid);
        return GW_EINVAL;
    }
    struct gw_xmpp *x = calloc(1, sizeof(*x));
    if (!x) {
        explicit_bzero(password, sizeof(password));
        return GW_ENOMEM;
    }
    x->loop = loop;
    x->cfg = cfg;
    x->store = store;
    x->engine = engine;
    x->log = log;
    struct xs_conn_config cc = {
        .jid = xc->jid,
        .password = password,
        .resource = xc->resource,
        .host = xc->host,
        .port = xc->port,
        .direct_tls = xc->tls == CFG_TLS_DIRECT,
        .ca_file = xc->ca_file,
        .verify = xc->insecure_server == NULL,
        .sasl_allowed = xc->sasl_mechanisms,
        .allow_plain = xc->allow_plain,
        .keepalive_ms = xc->keepalive_ms,
        .ping_timeout_ms = xc->ping_timeout_ms,
        .reconnect_min_ms = xc->reconnect_min_ms,
        .reconnect_max_ms = xc->reconnect_max_ms,
        .stanza_max = xc->stanza_max,
        .status = xc->status,
    };
    struct xs_conn_cbs cbs = {
        .online = on_online,
        .offline = on_offline,
        .stanza = on_stanza,
        .access = on_access,
    };
    int rc = xs_conn_new(loop, &cc, &cbs, x, log, &x->conn);
    explicit_bzero(password, sizeof(password));
    if (rc != GW_OK) {
        free(x);
        return rc;
    }
    struct gw_iot_opts io = {
        .history = cfg->store.history,
        .fresh_ms = cfg->store.fresh_ms,
        .control_max_writes = cfg->xmpp.control_max_writes,
        .control_max_bus_ms = cfg->xmpp.control_max_bus_ms,
    };
    /* The account's server adds the XEP-0203 delay to offline messages. */
    const char *at = strchr(xc->jid, '@');
    struct xs_iot_xsf_opts fo = {
        .control_max_age_ms = cfg->xmpp.control_max_age_ms,
        .stanza_max = cfg->xmpp.stanza_max,
        .server = at ? at + 1 : xc->jid,
    };
    rc = gw_iot_new(cfg, store, engine, log, &io, &x->iot);
    if (rc == GW_OK)
        rc = xs_iot_xsf_new(x->iot, NULL, NULL, log, &fo, &x->fe);
    if (rc == GW_OK)
        rc = xs_iot_xsf_attach(x->fe, x->conn);
    if (rc == GW_OK && cfg->events.present)
        rc = events_new(x);
    if (rc != GW_OK) {
        /* gw_events closes a timer: free the rest once it is closed. */
        xs_pubsub_free(x->pubsub);
        x->pubsub = NULL;
        xs_iot_xsf_free(x->fe);
        gw_iot_free(x->iot);
        x->fe = NULL;
        x->iot = NULL;
        xs_conn_free(x->conn, NULL, NULL);
        gw_spool_close(x->spool, NULL, NULL);
        x->spool = NULL;
        if (x->events)
            gw_events_free(x->events, free, x);
        else
            free(x);
        return rc;
    }
    *out = x;
    return GW_OK;
}

int gw_xmpp_start(struct gw_xmpp *x)
{
    return xs_conn_start(x->conn);
}

static void on_part_closed(void *ud)
{
    struct gw_xmpp *x = ud;
    if (--x->closing > 0)
        return;
    void (*cb)(void *) = x->closed_cb;
    void *cud = x->closed_ud;
    free(x);
    if (cb)
        cb(cud);
}

static void on_retry_closed(uv_handle_t *h)
{
    struct gw_xmpp *x = h->data;
    free(h);
    on_part_closed(x);
}

void gw_xmpp_free(struct gw_xmpp *x, void (*closed_cb)(void *ud), void *ud)
{
    if (!x)
        return;
    x->closed_cb = closed_cb;
    x->closed_ud = ud;
    /* The session delivers nothing more once xs_conn_free is called; the
     * front end and the model go at once (pending bus callbacks are
     * orphaned safely). */
    struct xs_iot_xsf *fe = x->fe;
    struct gw_iot *iot = x->iot;
    struct xs_pubsub *ps = x->pubsub;
    struct gw_events *ev = x->events;
    struct gw_spool *sp = x->spool;
    uv_timer_t *rt = x->retry;
    x->fe = NULL;
    x->iot = NULL;
    x->pubsub = NULL;
    x->events = NULL;
    x->spool = NULL;
    x->retry = NULL;
    x->closing = 1 + (ev != NULL) + (sp != NULL) + (rt != NULL);
    /* The publisher first (its requests in the session are orphaned and
     * fail harmlessly when the session closes), then the spool (synced:
     * a clean stop loses nothing; unacknowledged records are sent again
     * at the next start), then the change detection (its store listener
     * and timer), then the session. */
    xs_pubsub_free(ps);
    if (rt) {
        uv_timer_stop(rt);
        uv_close((uv_handle_t *)rt, on_retry_closed);
    }
    if (sp)
        gw_spool_close(sp, on_part_closed, x);
    if (ev)
        gw_events_free(ev, on_part_closed, x);
    xs_conn_free(x->conn, on_part_closed, x);
    xs_iot_xsf_free(fe);
    gw_iot_free(iot);
}

/* ---- status ------------------------------------------------------------- */

static const char *pubsub_state_name(enum xs_pubsub_state st)
{
    switch (st) {
    case XS_PUBSUB_SETUP:
        return "setup";
    case XS_PUBSUB_RUNNING:
        return "running";
    case XS_PUBSUB_WARNING:
        return "warning";
    default:
        return "offline";
    }
}

void gw_xmpp_get_status(const struct gw_xmpp *x, struct gw_status_xmpp *xmpp,
                        struct gw_status_events *events)
{
    struct xs_conn_stats cs;
    xs_conn_get_stats(x->conn, &cs);
    const char *jid = xs_conn_jid(x->conn);
    memset(xmpp, 0, sizeof(*xmpp));
    xmpp->online = xs_conn_online(x->conn);
    snprintf(xmpp->jid, sizeof(xmpp->jid), "%s", jid ? jid : x->cfg->xmpp.jid);
    xmpp->connects = cs.connects;
    xmpp->resumes = cs.resumes;
    xmpp->drops = cs.drops;
    xmpp->auth_failures = cs.auth_failures;
    xmpp->dropped_stanzas = cs.dropped_stanzas;
    if (!x->pubsub || !x->events)
        return;
    struct xs_pubsub_stats ps;
    struct gw_events_stats es;
    xs_pubsub_get_stats(x->pubsub, &ps);
    gw_events_get_stats(x->events, &es);
    memset(events, 0, sizeof(*events));
    snprintf(events->state, sizeof(events->state), "%s",
             pubsub_state_name(ps.state));
    /* The publisher's warning, else the spool's fallback (as the gateway
     * node shows them). */
    snprintf(events->warning, sizeof(events->warning), "%s",
             ps.state == XS_PUBSUB_WARNING ? ps.text
             : ps.fallback                 ? ps.spool_text
                                           : "");
    events->published = ps.published;
    events->errors = ps.errors;
    events->retries = ps.retries;
    events->in_flight = ps.in_flight;
    events->backlog = ps.backlog;
    events->changes = es.changes;
    events->suppressed = es.suppressed;
    events->coalesced = es.coalesced;
    events->heartbeats = es.heartbeats;
    if (ps.every) {
        events->spool = true;
        events->spool_bytes = ps.spool_bytes;
        int64_t age = ps.spool_oldest_ms ? gw_now_ms() - ps.spool_oldest_ms : 0;
        events->spool_oldest_age_ms = age > 0 ? age : 0;
        events->spool_dropped = ps.spool_dropped;
        events->spool_lost = ps.lost;
        events->spool_fallback = ps.fallback;
    }
}

uint64_t gw_xmpp_unit_published(const struct gw_xmpp *x, size_t link,
                                size_t unit)
{
    return x->pubsub ? xs_pubsub_unit_published(x->pubsub, link, unit) : 0;
}
