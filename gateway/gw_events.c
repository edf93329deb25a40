/* gw_events.c - change detection, batching and coalescing of value events.
 *
 * Per point: the last published reference (value, quality, exception), the
 * earliest time the next event may go out (min_interval), the time of the
 * next heartbeat (max_interval), and flags: pending (an event waits for the
 * unit's cycle end), in batch (the point is in its unit's ready batch),
 * deferred (an event waits for the end of min_interval).  Deadlines live
 * in one binary min-heap of point indices with a single uv timer armed for
 * the earliest.  Every array is allocated once in gw_events_new, sized by
 * the map: nothing is allocated per change. */
#include "gw_events.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gw_err.h"

static const char *const AREA = "events";

enum {
    EVP_PENDING = 1u << 0,   /* an event waits for the unit's cycle end */
    EVP_IN_BATCH = 1u << 1,  /* in the unit's ready (or forming) batch */
    EVP_DEFERRED = 1u << 2,  /* an event waits for next_ms (min_interval) */
    EVP_PUBLISHED = 1u << 3, /* ref holds a published state */
};

#define EV_NEVER UINT64_MAX

/* The published state of a value, compact: strings by a 64-bit hash. */
struct ev_ref {
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double d;
        uint64_t hash; /* AD_VALUE_STRING: FNV-1a of the text */
    } v;
    uint8_t kind; /* enum ad_value_kind */
    uint8_t quality;
    uint8_t exception;
};

struct ev_point {
    const struct cfg_point *cp;
    struct ev_ref ref;
    uint8_t flags;
    uint32_t unit;    /* flat unit index */
    uint64_t next_ms; /* uv_now(): no event before (min_interval); 0 = any */
    uint64_t beat_ms; /* uv_now(): heartbeat due; EV_NEVER = none */
    uint64_t key;     /* heap key: the earliest of the two that applies */
    size_t heap_pos;  /* SIZE_MAX when not in the heap */
};

struct ev_unit {
    size_t link, unit;
    size_t base; /* flat index of its first point */
    size_t n_points;
    size_t n_pending, n_batch; /* entries of pend[base..], batch[base..] */
    bool ready;                /* in the ready FIFO */
    uint64_t seq;              /* batches taken */
};

struct gw_events {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct gw_store *store;
    const struct gw_log *log;
    gw_events_ready_cb ready;
    void *ud;
    uv_timer_t timer;
    uint64_t armed; /* due time the timer is armed for; EV_NEVER = stopped */
    struct ev_unit *units;
    size_t n_units;
    size_t *link_base; /* flat index of each link's first unit */
    struct ev_point *pts;
    size_t n_pts;
    size_t *pend;  /* per unit slice: local indices of pending points */
    size_t *batch; /* per unit slice: local indices of batch points */
    size_t *heap;  /* flat point indices, min-heap on key */
    size_t n_heap;
    size_t *fifo; /* ring of ready unit indices */
    size_t fifo_head, fifo_len;
    size_t *out;     /* the batch handed out by gw_events_take */
    bool ready_owed; /* the FIFO became non-empty: call ready */
    struct gw_events_stats st;
    void (*closed_cb)(void *ud);
    void *closed_ud;
};

/* ---- references --------------------------------------------------------- */

static uint64_t str_hash(const char *s, size_t cap)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < cap && s[i]; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void ref_of(const struct gw_point_state *ps, struct ev_ref *r)
{
    memset(r, 0, sizeof(*r));
    r->kind = (uint8_t)ps->value.kind;
    r->quality = (uint8_t)ps->quality;
    r->exception = ps->exception;
    switch (ps->value.kind) {
    case AD_VALUE_NONE:
        break;
    case AD_VALUE_BOOL:
        r->v.b = ps->value.v.b;
        break;
    case AD_VALUE_INT:
        r->v.i = ps->value.v.i;
        break;
    case AD_VALUE_UINT:
        r->v.u = ps->value.v.u;
        break;
    case AD_VALUE_DOUBLE:
        r->v.d = ps->value.v.d;
        break;
    case AD_VALUE_STRING:
        r->v.hash = str_hash(ps->value.s, sizeof(ps->value.s));
        break;
    }
}

static bool num_of(uint8_t kind, int64_t i, uint64_t u, double d, double *out)
{
    switch (kind) {
    case AD_VALUE_INT:
        *out = (double)i;
        return true;
    case AD_VALUE_UINT:
        *out = (double)u;
        return true;
    case AD_VALUE_DOUBLE:
        *out = d;
        return true;
    default:
        return false;
    }
}

/* Is the point's store state an event against its published reference
 * under its rule?  A quality (or exception code) change always is. */
static bool differs(const struct ev_point *ep, const struct gw_point_state *ps)
{
    const struct ev_ref *r = &ep->ref;
    if (!(ep->flags & EVP_PUBLISHED))
        return true;
    if ((uint8_t)ps->quality != r->quality || ps->exception != r->exception)
        return true;
    struct ev_ref cur;
    ref_of(ps, &cur);
    bool numeric = false;
    bool equal;
    if (cur.kind != r->kind) {
        /* int and uint are one number (as in ad_value_equal) */
        double a, b;
        if (!num_of(cur.kind, cur.v.i, cur.v.u, cur.v.d, &a) ||
            !num_of(r->kind, r->v.i, r->v.u, r->v.d, &b) ||
            cur.kind == AD_VALUE_DOUBLE || r->kind == AD_VALUE_DOUBLE)
            return true;
        if (cur.kind == AD_VALUE_INT)
            equal = cur.v.i >= 0 && (uint64_t)cur.v.i == r->v.u;
        else
            equal = r->v.i >= 0 && (uint64_t)r->v.i == cur.v.u;
        numeric = true;
    } else {
        switch (cur.kind) {
        case AD_VALUE_NONE:
            equal = true;
            break;
        case AD_VALUE_BOOL:
            equal = cur.v.b == r->v.b;
            break;
        case AD_VALUE_INT:
            equal = cur.v.i == r->v.i;
            numeric = true;
            break;
        case AD_VALUE_UINT:
            equal = cur.v.u == r->v.u;
            numeric = true;
            break;
        case AD_VALUE_DOUBLE:
            equal = cur.v.d == r->v.d || (isnan(cur.v.d) && isnan(r->v.d));
            numeric = true;
            break;
        case AD_VALUE_STRING:
            equal = cur.v.hash == r->v.hash;
            break;
        default:
            equal = false;
            break;
        }
    }
    if (equal)
        return false;
    const struct cfg_event_rule *rule = &ep->cp->events;
    if (!numeric || !(rule->deadband > 0))
        return true;
    double a = 0, b = 0;
    num_of(cur.kind, cur.v.i, cur.v.u, cur.v.d, &a);
    num_of(r->kind, r->v.i, r->v.u, r->v.d, &b);
    if (isnan(a) || isnan(b))
        return true;
    double band = rule->deadband;
    if (rule->deadband_percent) {
        if (b == 0)
            return true; /* percent of 0: any change */
        band = rule->deadband / 100.0 * fabs(b);
    }
    return fabs(a - b) > band;
}

/* ---- the deadline heap and the timer ------------------------------------ */

static bool heap_less(const struct gw_events *ev, size_t a, size_t b)
{
    return ev->pts[ev->heap[a]].key < ev->pts[ev->heap[b]].key;
}

static void heap_swap(struct gw_events *ev, size_t a, size_t b)
{
    size_t t = ev->heap[a];
    ev->heap[a] = ev->heap[b];
    ev->heap[b] = t;
    ev->pts[ev->heap[a]].heap_pos = a;
    ev->pts[ev->heap[b]].heap_pos = b;
}

static void heap_up(struct gw_events *ev, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(ev, i, parent))
            break;
        heap_swap(ev, i, parent);
        i = parent;
    }
}

static void heap_down(struct gw_events *ev, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < ev->n_heap && heap_less(ev, l, m))
            m = l;
        if (r < ev->n_heap && heap_less(ev, r, m))
            m = r;
        if (m == i)
            return;
        heap_swap(ev, i, m);
        i = m;
    }
}

static void heap_remove(struct gw_events *ev, size_t pi)
{
    size_t i = ev->pts[pi].heap_pos;
    if (i == SIZE_MAX)
        return;
    ev->pts[pi].heap_pos = SIZE_MAX;
    size_t last = --ev->n_heap;
    if (i == last)
        return;
    ev->heap[i] = ev->heap[last];
    ev->pts[ev->heap[i]].heap_pos = i;
    heap_down(ev, i);
    heap_up(ev, i);
}

/* Recomputes the point's deadline (deferred end, heartbeat) and its place
 * in the heap. */
static void schedule(struct gw_events *ev, size_t pi)
{
    struct ev_point *ep = &ev->pts[pi];
    uint64_t key = ep->beat_ms;
    if ((ep->flags & EVP_DEFERRED) && ep->next_ms < key)
        key = ep->next_ms;
    if (key == EV_NEVER) {
        heap_remove(ev, pi);
        return;
    }
    ep->key = key;
    if (ep->heap_pos == SIZE_MAX) {
        ep->heap_pos = ev->n_heap;
        ev->heap[ev->n_heap++] = pi;
        heap_up(ev, ep->heap_pos);
        return;
    }
    heap_down(ev, ep->heap_pos);
    heap_up(ev, ep->heap_pos);
}

static void on_timer(uv_timer_t *t);

/* Arms the one timer for the earliest deadline (restarted only when that
 * changed). */
static void arm(struct gw_events *ev)
{
    if (ev->n_heap == 0) {
        if (ev->armed != EV_NEVER) {
            uv_timer_stop(&ev->timer);
            ev->armed = EV_NEVER;
        }
        return;
    }
    uint64_t due = ev->pts[ev->heap[0]].key;
    if (due == ev->armed)
        return;
    uint64_t now = uv_now(ev->loop);
    uv_timer_start(&ev->timer, on_timer, due > now ? due - now : 0, 0);
    ev->armed = due;
}

/* ---- batches ------------------------------------------------------------ */

static void fifo_push(struct gw_events *ev, size_t u)
{
    struct ev_unit *eu = &ev->units[u];
    if (eu->ready)
        return;
    eu->ready = true;
    ev->fifo[(ev->fifo_head + ev->fifo_len) % ev->n_units] = u;
    if (ev->fifo_len++ == 0)
        ev->ready_owed = true;
}

/* Puts a point into its unit's batch; true when it joined a batch that
 * was already waiting (coalescing). */
static bool batch_add(struct gw_events *ev, size_t pi)
{
    struct ev_point *ep = &ev->pts[pi];
    struct ev_unit *eu = &ev->units[ep->unit];
    bool waiting = eu->ready;
    if (!(ep->flags & EVP_IN_BATCH)) {
        ep->flags |= EVP_IN_BATCH;
        ev->batch[eu->base + eu->n_batch++] = pi - eu->base;
    }
    return waiting;
}

static void pend_add(struct gw_events *ev, size_t pi)
{
    struct ev_point *ep = &ev->pts[pi];
    if (ep->flags & EVP_PENDING)
        return;
    struct ev_unit *eu = &ev->units[ep->unit];
    ep->flags |= EVP_PENDING;
    ev->pend[eu->base + eu->n_pending++] = pi - eu->base;
}

/* Calls ready once the FIFO went from empty to non-empty, at the end of a
 * notification (never in the middle of our own bookkeeping). */
static void flush_ready(struct gw_events *ev)
{
    if (!ev->ready_owed || ev->fifo_len == 0)
        return;
    ev->ready_owed = false;
    if (ev->ready)
        ev->ready(ev->ud);
}

/* The unit's cycle ended: its pending events that still differ from what
 * was published join its batch, which becomes ready. */
static void unit_cycle(struct gw_events *ev, size_t u)
{
    struct ev_unit *eu = &ev->units[u];
    if (eu->n_pending == 0)
        return;
    size_t added = 0;
    for (size_t k = 0; k < eu->n_pending; k++) {
        size_t pi = eu->base + ev->pend[eu->base + k];
        struct ev_point *ep = &ev->pts[pi];
        ep->flags &= (uint8_t)~EVP_PENDING;
        const struct gw_point_state *ps =
            gw_store_point(ev->store, eu->link, eu->unit, pi - eu->base);
        /* Back inside the band (or published meanwhile) by the end of the
         * cycle: nothing to send for it. */
        if (!(ep->flags & EVP_IN_BATCH) && !differs(ep, ps))
            continue;
        if (batch_add(ev, pi))
            ev->st.coalesced++;
        added++;
    }
    eu->n_pending = 0;
    if (added && eu->n_batch)
        fifo_push(ev, u);
}

static void on_point(struct gw_events *ev, size_t link, size_t unit,
                     size_t point)
{
    size_t u = ev->link_base[link] + unit;
    size_t pi = ev->units[u].base + point;
    struct ev_point *ep = &ev->pts[pi];
    if (!ep->cp->events.enabled)
        return;
    const struct gw_point_state *ps =
        gw_store_point(ev->store, link, unit, point);
    if (!differs(ep, ps)) {
        ev->st.suppressed++; /* inside the deadband */
        return;
    }
    bool quality = !(ep->flags & EVP_PUBLISHED) ||
                   (uint8_t)ps->quality != ep->ref.quality ||
                   ps->exception != ep->ref.exception;
    /* A value change inside min_interval waits for its end (the newest
     * value wins); a quality change never waits. */
    if (!quality && !(ep->flags & (EVP_PENDING | EVP_IN_BATCH)) &&
        uv_now(ev->loop) < ep->next_ms) {
        ev->st.suppressed++;
        if (!(ep->flags & EVP_DEFERRED)) {
            ep->flags |= EVP_DEFERRED;
            schedule(ev, pi);
            arm(ev);
        }
        return;
    }
    ev->st.changes++;
    pend_add(ev, pi);
}

static void on_store(void *data, enum gw_store_event sev, size_t link,
                     size_t unit, size_t point)
{
    struct gw_events *ev = data;
    switch (sev) {
    case GW_STORE_POINT:
        on_point(ev, link, unit, point);
        return;
    case GW_STORE_CYCLE:
        unit_cycle(ev, ev->link_base[link] + unit);
        flush_ready(ev);
        return;
    case GW_STORE_UNIT: /* the engine sets the points' qualities */
    case GW_STORE_LINK:
        return;
    }
}

/* Deadlines due: deferred events whose min_interval is over, heartbeats.
 * Their units' batches become ready at once (no cycle end is awaited). */
static void on_timer(uv_timer_t *t)
{
    struct gw_events *ev = t->data;
    ev->armed = EV_NEVER;
    uint64_t now = uv_now(ev->loop);
    while (ev->n_heap > 0 && ev->pts[ev->heap[0]].key <= now) {
        size_t pi = ev->heap[0];
        struct ev_point *ep = &ev->pts[pi];
        struct ev_unit *eu = &ev->units[ep->unit];
        bool sent = false;
        if ((ep->flags & EVP_DEFERRED) && ep->next_ms <= now) {
            ep->flags &= (uint8_t)~EVP_DEFERRED;
            const struct gw_point_state *ps =
                gw_store_point(ev->store, eu->link, eu->unit, pi - eu->base);
            if (!(ep->flags & EVP_IN_BATCH) && differs(ep, ps)) {
                ev->st.changes++;
                if (batch_add(ev, pi))
                    ev->st.coalesced++;
                sent = true;
            }
        }
        if (ep->beat_ms <= now) {
            /* Nothing published for max_interval: the current state
             * again (unless it is on its way already). */
            ep->beat_ms = EV_NEVER;
            if (!(ep->flags & EVP_IN_BATCH) && !sent) {
                ev->st.heartbeats++;
                if (batch_add(ev, pi))
                    ev->st.coalesced++;
                sent = true;
            }
        }
        schedule(ev, pi);
        if (eu->n_batch)
            fifo_push(ev, ep->unit);
    }
    arm(ev);
    flush_ready(ev);
}

/* ---- API ---------------------------------------------------------------- */

bool gw_events_take(struct gw_events *ev, struct gw_events_batch *out)
{
    if (!ev || ev->fifo_len == 0)
        return false;
    size_t u = ev->fifo[ev->fifo_head];
    ev->fifo_head = (ev->fifo_head + 1) % ev->n_units;
    ev->fifo_len--;
    struct ev_unit *eu = &ev->units[u];
    eu->ready = false;
    /* Ascending point order (a counting pass over the flags: O(points of
     * the unit), no sort, no allocation). */
    size_t n = 0;
    if (eu->n_batch * 8 >= eu->n_points) {
        for (size_t p = 0; p < eu->n_points; p++)
            if (ev->pts[eu->base + p].flags & EVP_IN_BATCH)
                ev->out[n++] = p;
    } else {
        /* Few points: insertion sort of the batch list. */
        for (size_t k = 0; k < eu->n_batch; k++) {
            size_t v = ev->batch[eu->base + k], j = n;
            while (j > 0 && ev->out[j - 1] > v) {
                ev->out[j] = ev->out[j - 1];
                j--;
            }
            ev->out[j] = v;
            n++;
        }
    }
    eu->n_batch = 0;
    uint64_t now = uv_now(ev->loop);
    int64_t ts = 0;
    for (size_t k = 0; k < n; k++) {
        size_t pi = eu->base + ev->out[k];
        struct ev_point *ep = &ev->pts[pi];
        const struct gw_point_state *ps =
            gw_store_point(ev->store, eu->link, eu->unit, ev->out[k]);
        const struct cfg_event_rule *rule = &ep->cp->events;
        ref_of(ps, &ep->ref);
        ep->flags = (uint8_t)((ep->flags | EVP_PUBLISHED) &
                              ~(EVP_IN_BATCH | EVP_DEFERRED));
        ep->next_ms = rule->min_interval_ms ? now + rule->min_interval_ms : 0;
        ep->beat_ms =
            rule->max_interval_ms ? now + rule->max_interval_ms : EV_NEVER;
        schedule(ev, pi);
        int64_t t = ps->attempt_ms > ps->ts_ms ? ps->attempt_ms : ps->ts_ms;
        if (t > ts)
            ts = t;
    }
    arm(ev);
    out->link = eu->link;
    out->unit = eu->unit;
    out->points = ev->out;
    out->n_points = n;
    out->ts_ms = ts ? ts : gw_now_ms();
    out->seq = ++eu->seq;
    ev->st.batches++;
    return true;
}

void gw_events_requeue(struct gw_events *ev, size_t link, size_t unit,
                       const size_t *points, size_t n)
{
    if (!ev || !points || link >= ev->cfg->n_links ||
        unit >= ev->cfg->links[link].n_units)
        return;
    struct ev_unit *eu = &ev->units[ev->link_base[link] + unit];
    for (size_t k = 0; k < n; k++) {
        if (points[k] >= eu->n_points)
            continue;
        size_t pi = eu->base + points[k];
        struct ev_point *ep = &ev->pts[pi];
        if (!ep->cp->events.enabled)
            continue;
        ep->flags &= (uint8_t)~EVP_PUBLISHED;
        ev->st.requeued++;
        pend_add(ev, pi);
    }
}

void gw_events_snapshot(struct gw_events *ev)
{
    if (!ev)
        return;
    for (size_t u = 0; u < ev->n_units; u++) {
        struct ev_unit *eu = &ev->units[u];
        for (size_t p = 0; p < eu->n_points; p++)
            if (ev->pts[eu->base + p].cp->events.enabled)
                batch_add(ev, eu->base + p);
        if (eu->n_batch)
            fifo_push(ev, u);
    }
    flush_ready(ev);
}

void gw_events_get_stats(const struct gw_events *ev,
                         struct gw_events_stats *out)
{
    *out = ev->st;
    out->backlog = ev->fifo_len;
}

static void free_arrays(struct gw_events *ev)
{
    free(ev->units);
    free(ev->link_base);
    free(ev->pts);
    free(ev->pend);
    free(ev->batch);
    free(ev->heap);
    free(ev->fifo);
    free(ev->out);
    free(ev);
}

int gw_events_new(uv_loop_t *loop, const struct cfg *cfg,
                  struct gw_store *store, const struct gw_log *log,
                  gw_events_ready_cb ready, void *ud, struct gw_events **out)
{
    struct gw_events *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return GW_ENOMEM;
    ev->loop = loop;
    ev->cfg = cfg;
    ev->store = store;
    ev->log = log;
    ev->ready = ready;
    ev->ud = ud;
    ev->armed = EV_NEVER;
    size_t n_units = 0, n_pts = 0, max_pts = 1;
    for (size_t l = 0; l < cfg->n_links; l++) {
        n_units += cfg->links[l].n_units;
        for (size_t u = 0; u < cfg->links[l].n_units; u++) {
            size_t n = cfg->links[l].units[u].n_points;
            n_pts += n;
            if (n > max_pts)
                max_pts = n;
        }
    }
    ev->n_units = n_units;
    ev->n_pts = n_pts;
    size_t nu = n_units ? n_units : 1, np = n_pts ? n_pts : 1;
    ev->units = calloc(nu, sizeof(*ev->units));
    ev->link_base = calloc(cfg->n_links ? cfg->n_links : 1, sizeof(size_t));
    ev->pts = calloc(np, sizeof(*ev->pts));
    ev->pend = calloc(np, sizeof(size_t));
    ev->batch = calloc(np, sizeof(size_t));
    ev->heap = calloc(np, sizeof(size_t));
    ev->fifo = calloc(nu, sizeof(size_t));
    ev->out = calloc(max_pts, sizeof(size_t));
    if (!ev->units || !ev->link_base || !ev->pts || !ev->pend || !ev->batch ||
        !ev->heap || !ev->fifo || !ev->out) {
        free_arrays(ev);
        return GW_ENOMEM;
    }
    size_t gu = 0, gp = 0;
    for (size_t l = 0; l < cfg->n_links; l++) {
        ev->link_base[l] = gu;
        for (size_t u = 0; u < cfg->links[l].n_units; u++, gu++) {
            const struct cfg_unit *cu = &cfg->links[l].units[u];
            struct ev_unit *eu = &ev->units[gu];
            eu->link = l;
            eu->unit = u;
            eu->base = gp;
            eu->n_points = cu->n_points;
            for (size_t p = 0; p < cu->n_points; p++, gp++) {
                struct ev_point *ep = &ev->pts[gp];
                ep->cp = &cu->points[p];
                ep->unit = (uint32_t)gu;
                ep->beat_ms = EV_NEVER;
                ep->heap_pos = SIZE_MAX;
            }
        }
    }
    int rc = gw_store_listen(store, on_store, ev);
    if (rc != GW_OK) {
        free_arrays(ev);
        return rc;
    }
    uv_timer_init(loop, &ev->timer);
    ev->timer.data = ev;
    GW_LOG(log, GW_LOG_DEBUG, AREA,
           "change detection over %zu unit(s), %zu "
           "point(s)",
           n_units, n_pts);
    *out = ev;
    return GW_OK;
}

static void on_closed(uv_handle_t *h)
{
    struct gw_events *ev = h->data;
    void (*cb)(void *) = ev->closed_cb;
    void *ud = ev->closed_ud;
    free_arrays(ev);
    if (cb)
        cb(ud);
}

void gw_events_free(struct gw_events *ev, void (*closed_cb)(void *ud), void *ud)
{
    if (!ev)
        return;
    gw_store_unlisten(ev->store, on_store, ev);
    ev->closed_cb = closed_cb;
    ev->closed_ud = ud;
    uv_timer_stop(&ev->timer);
    uv_close((uv_handle_t *)&ev->timer, on_closed);
}
