/* gw_engine.c - poll cycles, backoff, holes, on-demand reads and writes. */
#include "gw_engine.h"

#include <stdlib.h>
#include <string.h>

#include "gw_err.h"

/* The re-probe schedule of one hole. */
struct eng_hole {
    uint32_t retry_ms; /* the current interval */
    uint64_t due;      /* uv_now() ms of the next scheduled re-probe */
    bool probing;      /* a scheduled re-probe is out */
};

struct eng_unit {
    uint32_t failed_cycles;
    uint32_t backoff_ms;
    uint64_t skip_until; /* uv_now() ms; 0 = not in backoff */
    int fail_err;        /* what failed its last failed cycle */
    /* uv_now() ms: a probe is out until its outcome arrives, or at the
     * latest until then (a safety net: every completion clears it); 0 =
     * none. */
    uint64_t probe_until;
    struct ad_hole *holes;       /* what the planner leaves out */
    struct eng_hole *hole_sched; /* parallel to holes */
    size_t n_holes, cap_holes;
};

struct eng_link;

struct eng_group {
    struct eng_link *el;
    size_t group;
    uv_timer_t timer;
    bool timer_open;
    struct ad_plan plan;
    bool plan_ok;
    bool in_flight;
    struct ad_job job;
    struct ad_io *ios;
    uint16_t *buf;
    size_t cap_ios, cap_words;
    uint64_t cycles;
};

struct eng_link {
    struct gw_engine *eng;
    size_t index;
    struct ad_link link;
    bool link_open;
    /* A shallow copy of the link whose units carry learnt limits. */
    struct cfg_link plan_cfg;
    struct cfg_unit *plan_units;
    struct eng_unit *units;
    struct eng_group *groups; /* one per poll group of the map */
    const struct ad_hole **hole_ptrs;
    size_t *hole_counts;
    bool replan;
};

struct gw_engine {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct gw_store *store;
    const struct gw_log *log;
    struct gw_engine_opts opts;
    struct eng_link *links;
    bool closing;
    size_t open_handles;
    void (*closed_cb)(void *data);
    void *closed_data;
};

/* An on-demand read or a write: one heap job with its own buffers.  A
 * read whose coalesced request was split after exception 02/03 has
 * children (the split reads); its callback runs when the last of them is
 * done, with the outcome of the split reads. */
struct eng_req {
    struct gw_engine *eng;
    struct eng_link *el;
    size_t unit;
    struct ad_job job;
    struct ad_plan plan; /* reads */
    size_t point;        /* writes */
    bool is_write;
    bool probe;          /* this read is the unit's backoff probe */
    bool hole_probe;     /* this read re-probes `hole` */
    bool hole_scheduled; /* ... on the hole's schedule (not on demand) */
    struct ad_hole hole;
    bool job_done;          /* job->done has run */
    struct eng_req *parent; /* for split reads of an on-demand read */
    size_t children;        /* split reads still running */
    int rc;                 /* outcome so far */
    uint8_t exception;
    gw_engine_cb cb;
    void *data;
    uint16_t *buf;
    struct ad_io ios[];
};

static const char *const AREA = "engine";

/* ---- outcome bookkeeping ---------------------------------------------- */

static const struct cfg_unit *cunit(const struct eng_link *el, size_t u)
{
    return &el->eng->cfg->links[el->index].units[u];
}

static void count_io(struct gw_engine *eng, size_t l, size_t u,
                     const struct ad_io *io)
{
    if (io->skipped || io->rc == GW_ECANCELED)
        return;
    struct gw_link_state *ls = &eng->store->links[l];
    struct gw_unit_state *us = &ls->units[u];
    if (io->rc == GW_EDISCONNECTED && io->rtt_us == 0)
        return; /* never reached the bus */
    us->c.requests++;
    ls->c.requests++;
    if (io->rc == GW_OK) {
        us->last_rtt_us = io->rtt_us;
        ls->last_rtt_us = io->rtt_us;
        return;
    }
    us->c.errors++;
    ls->c.errors++;
    us->last_err = io->rc;
    if (io->rc == GW_ETIMEOUT) {
        us->c.timeouts++;
        ls->c.timeouts++;
    } else if (io->rc == GW_EMBEXC) {
        us->c.exceptions++;
        ls->c.exceptions++;
        us->last_exception = io->exception;
    }
}

static enum gw_quality quality_of(int rc)
{
    switch (rc) {
    case GW_ETIMEOUT:
    case GW_EPROTO: /* no valid answer: a garbled or foreign reply */
        return GW_Q_TIMEOUT;
    case GW_EMBEXC:
        return GW_Q_EXCEPTION;
    case GW_EDISCONNECTED:
    case GW_ECANCELED:
        return GW_Q_DISCONNECTED;
    default:
        return GW_Q_DECODE;
    }
}

/* Stores the points a finished read request covered. */
static void store_request(struct gw_engine *eng, size_t l,
                          const struct ad_plan *plan,
                          const struct ad_request *req, const struct ad_io *io,
                          int64_t now)
{
    const struct cfg_unit *cu = &eng->cfg->links[l].units[req->unit];
    for (size_t k = 0; k < req->n; k++) {
        size_t pi = plan->points[req->first + k];
        const struct cfg_point *p = &cu->points[pi];
        if (io->rc != GW_OK) {
            gw_store_set_error(eng->store, l, req->unit, pi, quality_of(io->rc),
                               io->rc, io->exception, now);
            continue;
        }
        size_t off = (size_t)(p->address - req->start);
        struct ad_value v;
        int rc;
        if (p->table == CFG_TABLE_COIL || p->table == CFG_TABLE_DISCRETE)
            rc = ad_decode_bit(p, (uint8_t)io->data[off], &v);
        else
            rc = ad_decode_registers(p, io->data + off, p->count, &v);
        gw_store_set_value(eng->store, l, req->unit, pi, io->data + off,
                           p->count, &v, rc, now);
    }
}

static size_t find_hole(const struct eng_unit *eu, const struct ad_hole *h)
{
    for (size_t i = 0; i < eu->n_holes; i++)
        if (eu->holes[i].table == h->table && eu->holes[i].start == h->start &&
            eu->holes[i].count == h->count)
            return i;
    return SIZE_MAX;
}

/* Learns a hole (no-op when known); *added says whether it is new.  Its
 * first re-probe is due after hole_retry_min_ms. */
static int add_hole(struct gw_engine *eng, struct eng_unit *eu,
                    const struct ad_hole *h, bool *added)
{
    *added = false;
    if (find_hole(eu, h) != SIZE_MAX)
        return GW_OK;
    if (eu->n_holes == eu->cap_holes) {
        size_t cap = eu->cap_holes ? eu->cap_holes * 2 : 4;
        struct ad_hole *nh = realloc(eu->holes, cap * sizeof(*nh));
        if (!nh)
            return GW_ENOMEM;
        eu->holes = nh;
        struct eng_hole *ns = realloc(eu->hole_sched, cap * sizeof(*ns));
        if (!ns)
            return GW_ENOMEM;
        eu->hole_sched = ns;
        eu->cap_holes = cap;
    }
    uint32_t retry = eng->opts.hole_retry_min_ms;
    eu->hole_sched[eu->n_holes] =
        (struct eng_hole){retry, uv_now(eng->loop) + retry, false};
    eu->holes[eu->n_holes++] = *h;
    *added = true;
    return GW_OK;
}

static void remove_hole(struct eng_unit *eu, size_t i)
{
    size_t rest = eu->n_holes - i - 1;
    memmove(&eu->holes[i], &eu->holes[i + 1], rest * sizeof(eu->holes[0]));
    memmove(&eu->hole_sched[i], &eu->hole_sched[i + 1],
            rest * sizeof(eu->hole_sched[0]));
    eu->n_holes--;
}

/* Does point p lie (partly) in hole h? */
static bool point_in_hole(const struct cfg_point *p, const struct ad_hole *h)
{
    if (p->table != h->table || h->count == 0)
        return false;
    uint32_t lo = p->address, hi = lo + p->count - 1u;
    uint32_t hlo = h->start, hhi = hlo + h->count - 1u;
    return hlo <= hi && hhi >= lo;
}

static enum cfg_table table_of_fc(uint8_t fc)
{
    switch (fc) {
    case 1:
        return CFG_TABLE_COIL;
    case 2:
        return CFG_TABLE_DISCRETE;
    case 4:
        return CFG_TABLE_INPUT;
    default:
        return CFG_TABLE_HOLDING;
    }
}

static int submit_split(struct gw_engine *eng, struct eng_link *el,
                        const struct ad_plan *plan,
                        const struct ad_request *req, struct eng_req *parent);

/* Learns from exceptions 02/03: returns true when the request was split
 * (its points are then stored by the split read, a child of parent when
 * parent is not NULL). */
static bool handle_exception(struct gw_engine *eng, struct eng_link *el,
                             const struct ad_plan *plan,
                             const struct ad_request *req,
                             const struct ad_io *io, struct eng_req *parent)
{
    if (io->rc != GW_EMBEXC || (io->exception != 2 && io->exception != 3))
        return false;
    struct eng_unit *eu = &el->units[req->unit];
    const struct cfg_unit *cu = cunit(el, req->unit);
    /* A request whose points all start at its first address cannot be
     * split any further (e.g. a register and a bit of it). */
    bool single = true;
    for (size_t k = 0; k < req->n; k++)
        if (cu->points[plan->points[req->first + k]].address != req->start)
            single = false;
    if (single) {
        struct ad_hole h = {table_of_fc(req->fc), req->start, req->count};
        bool added = false;
        if (io->exception == 2 && add_hole(eng, eu, &h, &added) == GW_OK &&
            added) {
            GW_LOG(eng->log, GW_LOG_WARN, AREA,
                   "unit %s: address %u (%s) is illegal (exception 02); "
                   "left out of the polls, tried again in %u s",
                   cu->name, (unsigned)req->start,
                   cu->points[plan->points[req->first]].name,
                   (unsigned)(eng->opts.hole_retry_min_ms / 1000));
            el->replan = true;
        }
        return false;
    }
    if (io->exception == 3 && req->count > 1) {
        struct cfg_unit *pu = &el->plan_units[req->unit];
        uint16_t lower = (uint16_t)(req->count / 2);
        bool bits = req->fc == 1 || req->fc == 2;
        uint16_t *limit = bits ? &pu->max_bits : &pu->max_registers;
        if (lower >= 1 && lower < *limit) {
            GW_LOG(eng->log, GW_LOG_NOTICE, AREA,
                   "unit %s: refuses reads of %u items (exception 03); "
                   "using at most %u",
                   cu->name, (unsigned)req->count, (unsigned)lower);
            *limit = lower;
            el->replan = true;
        }
    }
    return submit_split(eng, el, plan, req, parent) == GW_OK;
}

/* What one job told about one unit. */
struct unit_seen {
    bool seen;      /* the job had requests for it */
    bool failed;    /* a timeout or a garbled reply */
    bool answered;  /* a reply: values or an exception */
    bool partial;   /* an exception */
    bool link_down; /* a request did not reach it: the link is down */
    int cause;      /* the gw_err of the first failure */
};

static void seen_io(struct unit_seen *s, const struct ad_io *io)
{
    s->seen = true;
    switch (io->rc) {
    case GW_OK:
        s->answered = true;
        return;
    case GW_ETIMEOUT:
    case GW_EPROTO:
        if (!s->failed)
            s->cause = io->rc;
        s->failed = true;
        return;
    case GW_EDISCONNECTED:
    case GW_ECANCELED:
        s->link_down = true;
        return;
    default: /* an exception, a refused request */
        s->answered = true;
        s->partial = true;
        return;
    }
}

/* A unit that goes offline: its points that still show a read (ok, a
 * decode error) or were never read take the quality of the cause (timeout,
 * or disconnected when the link is down), so readers and change detection
 * see the unit's failure on every point, also on the points of poll groups
 * whose cycles skip the unit while it rests in backoff.  Points in holes
 * keep their exception; the last good value and its time are kept, and so
 * is the time of the last attempt (no attempt was made). */
static void unit_points_offline(struct gw_engine *eng, size_t l, size_t u,
                                int cause)
{
    const struct cfg_unit *cu = &eng->cfg->links[l].units[u];
    enum gw_quality q = quality_of(cause);
    for (size_t p = 0; p < cu->n_points; p++) {
        const struct gw_point_state *ps = gw_store_point(eng->store, l, u, p);
        if (ps->quality != GW_Q_OK && ps->quality != GW_Q_DECODE &&
            ps->quality != GW_Q_NONE)
            continue;
        gw_store_set_error(eng->store, l, u, p, q, cause, 0, ps->attempt_ms);
    }
}

/* Per-unit outcome of a cycle (or of a read that was the unit's probe):
 * backoff and status, with the cause in the unit's last_err.  Whatever
 * the outcome, a probe of the unit is over.  A job that did not reach the
 * unit because the link is down says nothing about the unit: it shows
 * offline (cause: the link), but its backoff is left alone (the link has
 * its own), so it is polled (or probed) as soon as the link is back. */
static void unit_outcome(struct gw_engine *eng, struct eng_link *el, size_t u,
                         const struct unit_seen *s, bool connected, int64_t now)
{
    struct eng_unit *eu = &el->units[u];
    size_t l = el->index;
    struct gw_unit_state *us = &eng->store->links[l].units[u];
    eu->probe_until = 0;
    if (!s->failed && !s->answered) {
        if (s->link_down && !connected) {
            us->last_err = GW_EDISCONNECTED;
            us->last_exception = 0;
            if (us->status != GW_UNIT_OFFLINE)
                unit_points_offline(eng, l, u, GW_EDISCONNECTED);
            gw_store_set_unit_status(eng->store, l, u, GW_UNIT_OFFLINE, now);
        }
        return;
    }
    if (!s->failed) {
        if (eu->skip_until)
            GW_LOG(eng->log, GW_LOG_NOTICE, AREA, "unit %s: back online",
                   cunit(el, u)->name);
        eu->failed_cycles = 0;
        eu->backoff_ms = 0;
        eu->skip_until = 0;
        gw_store_set_unit_status(eng->store, l, u,
                                 s->partial ? GW_UNIT_DEGRADED : GW_UNIT_ONLINE,
                                 now);
        return;
    }
    us->last_err = s->cause;
    us->last_exception = 0;
    eu->fail_err = s->cause;
    eu->failed_cycles++;
    if (eu->failed_cycles < eng->opts.fail_cycles && !eu->skip_until)
        return;
    if (eu->backoff_ms == 0)
        eu->backoff_ms = eng->opts.backoff_min_ms;
    else if (eu->backoff_ms < eng->opts.backoff_max_ms / 2)
        eu->backoff_ms *= 2;
    else
        eu->backoff_ms = eng->opts.backoff_max_ms;
    eu->skip_until = uv_now(eng->loop) + eu->backoff_ms;
    if (us->status != GW_UNIT_OFFLINE) {
        GW_LOG(eng->log, GW_LOG_WARN, AREA,
               "unit %s: offline after %u failed cycles (%s); probing every "
               "%u ms or more",
               cunit(el, u)->name, eu->failed_cycles, gw_strerror(s->cause),
               eu->backoff_ms);
        unit_points_offline(eng, l, u, s->cause);
    }
    gw_store_set_unit_status(eng->store, l, u, GW_UNIT_OFFLINE, now);
}

/* How long a probe may be out before the unit may be probed again even
 * without its outcome: its own time on the bus, plus a backoff period for
 * the jobs queued ahead of it. */
static uint64_t probe_deadline_ms(const struct gw_engine *eng,
                                  const struct cfg_unit *cu)
{
    return (uint64_t)cu->timeout_ms * (cu->retries + 1u) +
           eng->opts.backoff_max_ms;
}

/* Is the unit in backoff with its probe not due (now: uv_now())? */
static bool unit_resting(const struct eng_unit *eu, uint64_t now)
{
    if (!eu->skip_until)
        return false;
    return now < eu->skip_until || (eu->probe_until && now < eu->probe_until);
}

/* ---- poll cycles ------------------------------------------------------ */

static int build_plan(struct eng_link *el, struct eng_group *g)
{
    size_t n_units = el->plan_cfg.n_units;
    for (size_t u = 0; u < n_units; u++) {
        el->hole_ptrs[u] = el->units[u].holes;
        el->hole_counts[u] = el->units[u].n_holes;
    }
    struct ad_plan_holes holes = {el->hole_ptrs, el->hole_counts};
    struct ad_plan plan;
    int rc = ad_plan_group(&el->plan_cfg, g->group, &holes, &plan);
    if (rc != GW_OK)
        return rc;
    ad_plan_close(&g->plan);
    g->plan = plan;
    g->plan_ok = true;
    /* Points left out for holes keep their exception quality. */
    int64_t now = gw_now_ms();
    for (size_t i = 0; i < plan.n_skipped; i++)
        gw_store_set_error(el->eng->store, el->index, plan.skipped[i].unit,
                           plan.skipped[i].point, GW_Q_EXCEPTION, GW_EMBEXC, 2,
                           now);
    size_t words = 0;
    for (size_t i = 0; i < plan.n_reqs; i++)
        words += plan.reqs[i].count;
    if (plan.n_reqs > g->cap_ios) {
        struct ad_io *ios = realloc(g->ios, plan.n_reqs * sizeof(*ios));
        if (!ios)
            return GW_ENOMEM;
        g->ios = ios;
        g->cap_ios = plan.n_reqs;
    }
    if (words > g->cap_words) {
        uint16_t *buf = realloc(g->buf, words * sizeof(*buf));
        if (!buf)
            return GW_ENOMEM;
        g->buf = buf;
        g->cap_words = words;
    }
    return GW_OK;
}

/* The read io of a planned request; tag is its index in the plan. */
static void read_io(struct ad_io *io, const struct ad_request *req,
                    const struct cfg_unit *cu, size_t tag, uint16_t *data)
{
    memset(io, 0, sizeof(*io));
    io->op = AD_IO_READ;
    io->unit_id = req->unit_id;
    io->fc = req->fc;
    io->start = req->start;
    io->count = req->count;
    io->timeout_ms = cu->timeout_ms;
    io->retries = cu->retries;
    io->tag = tag;
    io->data = data;
}

static void on_cycle_done(struct ad_job *job);
static void probe_due_holes(struct gw_engine *eng, struct eng_link *el,
                            size_t unit, uint64_t now);

static void on_poll_timer(uv_timer_t *t)
{
    struct eng_group *g = t->data;
    struct eng_link *el = g->el;
    struct gw_engine *eng = el->eng;
    if (eng->closing)
        return;
    if (g->in_flight) {
        eng->store->links[el->index].overruns++;
        return;
    }
    if (el->replan || !g->plan_ok) {
        int rc = build_plan(el, g);
        if (rc != GW_OK) {
            GW_LOG(eng->log, GW_LOG_ERROR, AREA,
                   "link %s: cannot plan poll group %s: %s",
                   eng->cfg->links[el->index].name,
                   eng->cfg->poll_groups[g->group].name, gw_strerror(rc));
            return;
        }
        /* Other groups of the link replan on their next tick. */
        for (size_t i = 0; i < eng->cfg->n_poll_groups; i++)
            if (&el->groups[i] != g)
                el->groups[i].plan_ok = false;
        el->replan = false;
    }
    uint64_t now = uv_now(eng->loop);
    for (size_t u = 0; u < el->plan_cfg.n_units; u++)
        probe_due_holes(eng, el, u, now);
    size_t n = 0, word = 0;
    for (size_t i = 0; i < g->plan.n_reqs; i++) {
        const struct ad_request *req = &g->plan.reqs[i];
        struct eng_unit *eu = &el->units[req->unit];
        if (eu->skip_until) {
            if (unit_resting(eu, now))
                continue;
            /* Backoff over: one request probes the unit. */
            eu->probe_until =
                now + probe_deadline_ms(eng, cunit(el, req->unit));
        }
        read_io(&g->ios[n++], req, cunit(el, req->unit), i, g->buf + word);
        word += req->count;
    }
    if (n == 0)
        return;
    g->job = (struct ad_job){.prio = AD_PRIO_POLL,
                             .ios = g->ios,
                             .n_ios = n,
                             .skip_dead_units = true,
                             .done = on_cycle_done,
                             .data = g};
    if (ad_link_submit(&el->link, &g->job) == GW_OK) {
        g->in_flight = true;
        return;
    }
    /* Not sent: no probe is out. */
    for (size_t i = 0; i < n; i++)
        el->units[g->plan.reqs[g->ios[i].tag].unit].probe_until = 0;
}

static void on_cycle_done(struct ad_job *job)
{
    struct eng_group *g = job->data;
    struct eng_link *el = g->el;
    struct gw_engine *eng = el->eng;
    g->in_flight = false;
    if (eng->closing)
        return;
    size_t l = el->index;
    int64_t now = gw_now_ms();
    gw_store_set_link_connected(eng->store, l, job->connected);
    size_t n_units = el->plan_cfg.n_units;
    /* Per unit of this job: seen, failed hard (the unit did not answer
     * properly), partially (exceptions), or not reached (link down). */
    struct unit_seen *seen = calloc(n_units ? n_units : 1, sizeof(*seen));
    if (!seen) {
        for (size_t i = 0; i < job->n_ios; i++)
            el->units[g->plan.reqs[job->ios[i].tag].unit].probe_until = 0;
        return;
    }
    for (size_t i = 0; i < job->n_ios; i++) {
        const struct ad_io *io = &job->ios[i];
        const struct ad_request *req = &g->plan.reqs[io->tag];
        count_io(eng, l, req->unit, io);
        seen_io(&seen[req->unit], io);
        if (handle_exception(eng, el, &g->plan, req, io, NULL))
            continue;
        store_request(eng, l, &g->plan, req, io, now);
    }
    for (size_t u = 0; u < n_units; u++)
        if (seen[u].seen)
            unit_outcome(eng, el, u, &seen[u], job->connected, now);
    /* Points left out for holes still lie in them as of this cycle: their
     * quality (exception 02) is current, not stale. */
    for (size_t i = 0; i < g->plan.n_skipped; i++) {
        size_t u = g->plan.skipped[i].unit;
        if (seen[u].answered && !el->units[u].skip_until)
            gw_store_set_error(eng->store, l, u, g->plan.skipped[i].point,
                               GW_Q_EXCEPTION, GW_EMBEXC, 2, now);
    }
    g->cycles++;
    /* The cycle is over for every unit it had requests for (units resting
     * in backoff had none: nothing of theirs changed).  Split reads of
     * this cycle end later, each with a cycle end of its own. */
    for (size_t u = 0; u < n_units && !eng->closing; u++)
        if (seen[u].seen)
            gw_store_cycle_done(eng->store, l, u);
    free(seen);
}

/* ---- on-demand reads, splits and writes -------------------------------- */

static void on_req_done(struct ad_job *job);

static struct eng_req *req_new(struct gw_engine *eng, struct eng_link *el,
                               size_t unit, size_t n_ios, size_t words)
{
    struct eng_req *r = calloc(1, sizeof(*r) + n_ios * sizeof(struct ad_io));
    if (!r)
        return NULL;
    r->buf = calloc(words ? words : 1, sizeof(uint16_t));
    if (!r->buf) {
        free(r);
        return NULL;
    }
    r->eng = eng;
    r->el = el;
    r->unit = unit;
    r->job.ios = r->ios;
    r->job.n_ios = n_ios;
    r->job.done = on_req_done;
    r->job.data = r;
    return r;
}

static void req_free(struct eng_req *r)
{
    ad_plan_close(&r->plan);
    free(r->buf);
    free(r);
}

/* Turns a plan into a read job (ios tagged by request index). */
static struct eng_req *read_req(struct gw_engine *eng, struct eng_link *el,
                                size_t unit, struct ad_plan *plan)
{
    size_t words = 0;
    for (size_t i = 0; i < plan->n_reqs; i++)
        words += plan->reqs[i].count;
    struct eng_req *r = req_new(eng, el, unit, plan->n_reqs, words);
    if (!r)
        return NULL;
    r->plan = *plan;
    memset(plan, 0, sizeof(*plan));
    const struct cfg_unit *cu = cunit(el, unit);
    size_t word = 0;
    for (size_t i = 0; i < r->plan.n_reqs; i++) {
        const struct ad_request *req = &r->plan.reqs[i];
        read_io(&r->ios[i], req, cu, i, r->buf + word);
        word += req->count;
    }
    r->job.prio = AD_PRIO_READ_NOW;
    return r;
}

static void current_holes(struct eng_link *el, struct ad_plan_holes *h)
{
    for (size_t u = 0; u < el->plan_cfg.n_units; u++) {
        el->hole_ptrs[u] = el->units[u].holes;
        el->hole_counts[u] = el->units[u].n_holes;
    }
    h->holes = el->hole_ptrs;
    h->n_holes = el->hole_counts;
}

/* Plans each of the points alone (single_register planning of exactly
 * these points, holes ignored). */
static int plan_alone(struct eng_link *el, size_t unit, const size_t *points,
                      size_t n_points, struct ad_plan *out)
{
    struct cfg_unit one = el->plan_units[unit];
    struct cfg_link lk = el->plan_cfg;
    struct cfg_unit *units = malloc(lk.n_units * sizeof(*units));
    if (!units)
        return GW_ENOMEM;
    memcpy(units, el->plan_units, lk.n_units * sizeof(*units));
    one.max_gap = 0;
    one.single_register = true;
    units[unit] = one;
    lk.units = units;
    int rc = ad_plan_points(&lk, unit, points, n_points, NULL, out);
    free(units);
    return rc;
}

/* Submits a read of plan (which it takes), a child of parent when parent
 * is not NULL; *out (may be NULL) is the request. */
static int submit_plan(struct gw_engine *eng, struct eng_link *el, size_t unit,
                       struct ad_plan *plan, struct eng_req *parent,
                       struct eng_req **out)
{
    struct eng_req *r = read_req(eng, el, unit, plan);
    if (!r) {
        ad_plan_close(plan);
        return GW_ENOMEM;
    }
    int rc = ad_link_submit(&el->link, &r->job);
    if (rc != GW_OK) {
        req_free(r);
        return rc;
    }
    if (parent) {
        r->parent = parent;
        parent->children++;
    }
    if (out)
        *out = r;
    return GW_OK;
}

static int submit_split(struct gw_engine *eng, struct eng_link *el,
                        const struct ad_plan *plan,
                        const struct ad_request *req, struct eng_req *parent)
{
    /* Each point of the failed request alone. */
    struct ad_plan sub;
    int rc = plan_alone(el, req->unit, plan->points + req->first, req->n, &sub);
    if (rc != GW_OK)
        return rc;
    return submit_plan(eng, el, req->unit, &sub, parent, NULL);
}

/* Re-probes hole h of a unit: each of the points in it read alone.
 * scheduled: on the hole's schedule (else on demand, which leaves the
 * schedule alone unless the hole answers). */
static int submit_hole_probe(struct gw_engine *eng, struct eng_link *el,
                             size_t unit, const struct ad_hole *h,
                             bool scheduled, struct eng_req *parent)
{
    const struct cfg_unit *cu = cunit(el, unit);
    size_t *pts = malloc((cu->n_points ? cu->n_points : 1) * sizeof(*pts));
    if (!pts)
        return GW_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < cu->n_points; i++)
        if (point_in_hole(&cu->points[i], h))
            pts[n++] = i;
    int rc = GW_ENOTFOUND;
    struct ad_plan plan;
    if (n > 0)
        rc = plan_alone(el, unit, pts, n, &plan);
    free(pts);
    if (rc != GW_OK)
        return rc;
    struct eng_req *r = NULL;
    rc = submit_plan(eng, el, unit, &plan, parent, &r);
    if (rc != GW_OK)
        return rc;
    r->hole_probe = true;
    r->hole_scheduled = scheduled;
    r->hole = *h;
    return GW_OK;
}

/* Submits the scheduled re-probes of a unit's holes that are due (none
 * while the unit is in backoff: its own probe comes first). */
static void probe_due_holes(struct gw_engine *eng, struct eng_link *el,
                            size_t unit, uint64_t now)
{
    struct eng_unit *eu = &el->units[unit];
    if (eu->skip_until || eng->closing || !el->link_open)
        return;
    for (size_t i = 0; i < eu->n_holes; i++) {
        struct eng_hole *hs = &eu->hole_sched[i];
        if (hs->probing || now < hs->due)
            continue;
        struct ad_hole h = eu->holes[i];
        if (submit_hole_probe(eng, el, unit, &h, true, NULL) == GW_OK)
            hs->probing = true;
        else
            hs->due = now + hs->retry_ms;
    }
}

/* A re-probe of a hole is done: a hole that answers is polled again; one
 * that still gets exception 02 is tried again later, at a doubled interval
 * when the probe was a scheduled one. */
static void hole_probe_done(struct gw_engine *eng, struct eng_req *r)
{
    struct eng_link *el = r->el;
    struct eng_unit *eu = &el->units[r->unit];
    size_t i = find_hole(eu, &r->hole);
    if (i == SIZE_MAX)
        return; /* another probe found it healed */
    struct eng_hole *hs = &eu->hole_sched[i];
    if (r->hole_scheduled)
        hs->probing = false;
    bool ok = r->job.n_ios > 0, exc02 = false;
    for (size_t k = 0; k < r->job.n_ios; k++) {
        const struct ad_io *io = &r->job.ios[k];
        if (io->rc != GW_OK)
            ok = false;
        if (io->rc == GW_EMBEXC && io->exception == 2)
            exc02 = true;
    }
    const struct cfg_unit *cu = cunit(el, r->unit);
    if (ok) {
        GW_LOG(eng->log, GW_LOG_NOTICE, AREA,
               "unit %s: address %u answers again; polled again", cu->name,
               (unsigned)r->hole.start);
        remove_hole(eu, i);
        el->replan = true;
        return;
    }
    if (!r->hole_scheduled)
        return;
    if (exc02) {
        uint32_t max = eng->opts.hole_retry_max_ms;
        hs->retry_ms = hs->retry_ms < max / 2 ? hs->retry_ms * 2 : max;
    }
    hs->due = uv_now(eng->loop) + hs->retry_ms;
}

/* An on-demand read; with a parent, the parent completes only after it. */
static int submit_read(struct gw_engine *eng, size_t link, size_t unit,
                       const size_t *points, size_t n_points, gw_engine_cb cb,
                       void *data, struct eng_req *parent)
{
    if (eng->closing)
        return GW_ECLOSED;
    if (link >= eng->cfg->n_links || unit >= eng->cfg->links[link].n_units)
        return GW_EINVAL;
    struct eng_link *el = &eng->links[link];
    if (!el->link_open)
        return GW_EDISCONNECTED;
    struct eng_unit *eu = &el->units[unit];
    uint64_t uv_ms = uv_now(eng->loop);
    bool probe = false;
    if (!parent && eu->skip_until) {
        /* In backoff: the store's answer, unless the probe is due (then
         * this read is the probe). */
        if (unit_resting(eu, uv_ms))
            return eu->fail_err ? eu->fail_err : GW_ETIMEOUT;
        probe = true;
    }
    const struct cfg_unit *cu = cunit(el, unit);
    size_t *all = NULL;
    if (!points) {
        all = malloc((cu->n_points ? cu->n_points : 1) * sizeof(*all));
        if (!all)
            return GW_ENOMEM;
        for (size_t i = 0; i < cu->n_points; i++)
            all[i] = i;
        points = all;
        n_points = cu->n_points;
    }
    struct ad_plan_holes holes;
    current_holes(el, &holes);
    struct ad_plan plan;
    int rc =
        ad_plan_points(&el->plan_cfg, unit, points, n_points, &holes, &plan);
    free(all);
    if (rc != GW_OK)
        return rc;
    int64_t now = gw_now_ms();
    for (size_t i = 0; i < plan.n_skipped; i++)
        gw_store_set_error(eng->store, link, plan.skipped[i].unit,
                           plan.skipped[i].point, GW_Q_EXCEPTION, GW_EMBEXC, 2,
                           now);
    /* The holes these points lie in, re-probed by this read (its children
     * finish before its callback runs). */
    size_t n_holes = 0;
    size_t *hole_ix = calloc(eu->n_holes ? eu->n_holes : 1, sizeof(*hole_ix));
    if (!hole_ix) {
        ad_plan_close(&plan);
        return GW_ENOMEM;
    }
    for (size_t h = 0; h < eu->n_holes; h++) {
        for (size_t i = 0; i < plan.n_skipped; i++) {
            if (point_in_hole(&cu->points[plan.skipped[i].point],
                              &eu->holes[h])) {
                hole_ix[n_holes++] = h;
                break;
            }
        }
    }
    struct eng_req *r = read_req(eng, el, unit, &plan);
    if (!r) {
        free(hole_ix);
        ad_plan_close(&plan);
        return GW_ENOMEM;
    }
    r->cb = cb;
    r->data = data;
    r->probe = probe;
    rc = ad_link_submit(&el->link, &r->job);
    if (rc != GW_OK) {
        free(hole_ix);
        req_free(r);
        return rc;
    }
    if (probe)
        eu->probe_until = uv_ms + probe_deadline_ms(eng, cu);
    for (size_t k = 0; k < n_holes; k++) {
        struct ad_hole h = eu->holes[hole_ix[k]];
        submit_hole_probe(eng, el, unit, &h, false, r);
    }
    free(hole_ix);
    if (parent) {
        r->parent = parent;
        parent->children++;
    }
    return GW_OK;
}

int gw_engine_read(struct gw_engine *eng, size_t link, size_t unit,
                   const size_t *points, size_t n_points, gw_engine_cb cb,
                   void *data)
{
    return submit_read(eng, link, unit, points, n_points, cb, data, NULL);
}

static int write_fc(const struct cfg_point *p)
{
    if (p->write_fc != CFG_WRITE_AUTO)
        return (int)p->write_fc;
    if (p->table == CFG_TABLE_COIL)
        return 5;
    return p->count == 1 ? 6 : 16;
}

int gw_engine_write(struct gw_engine *eng, size_t link, size_t unit,
                    size_t point, const struct ad_value *value, bool verify,
                    gw_engine_cb cb, void *data)
{
    if (eng->closing)
        return GW_ECLOSED;
    if (link >= eng->cfg->n_links || unit >= eng->cfg->links[link].n_units ||
        point >= eng->cfg->links[link].units[unit].n_points)
        return GW_EINVAL;
    struct eng_link *el = &eng->links[link];
    const struct cfg_point *p = &cunit(el, unit)->points[point];
    if (!p->writable ||
        (p->table != CFG_TABLE_COIL && p->table != CFG_TABLE_HOLDING))
        return GW_EREADONLY;
    if (!el->link_open)
        return GW_EDISCONNECTED;
    uint16_t regs[CFG_MAX_WRITE_REGISTERS];
    int rc;
    if (p->table == CFG_TABLE_COIL) {
        uint8_t bit;
        rc = ad_encode_bit(p, value, &bit);
        regs[0] = bit;
    } else {
        if (p->count > CFG_MAX_WRITE_REGISTERS)
            return GW_ELIMIT;
        rc = ad_encode_registers(p, value, 0, regs, CFG_MAX_WRITE_REGISTERS);
    }
    if (rc != GW_OK)
        return rc;
    struct eng_req *r = req_new(eng, el, unit, 1, p->count);
    if (!r)
        return GW_ENOMEM;
    const struct cfg_unit *cu = cunit(el, unit);
    struct ad_io *io = &r->ios[0];
    memcpy(r->buf, regs, p->count * sizeof(uint16_t));
    io->op = p->type == CFG_TYPE_BIT ? AD_IO_WRITE_BIT : AD_IO_WRITE;
    io->unit_id = cu->id;
    io->fc = (uint8_t)write_fc(p);
    io->start = p->address;
    io->count = p->count;
    io->bit = p->bit;
    if (p->type == CFG_TYPE_BIT) {
        io->fc = 6;
        r->buf[0] = value->kind == AD_VALUE_BOOL  ? value->v.b
                    : value->kind == AD_VALUE_INT ? value->v.i != 0
                                                  : value->v.u != 0;
    }
    io->verify = verify || p->verify;
    io->timeout_ms = cu->timeout_ms;
    io->retries = 0; /* a write is never repeated blindly */
    io->data = r->buf;
    r->is_write = true;
    r->point = point;
    r->cb = cb;
    r->data = data;
    r->job.prio = AD_PRIO_WRITE;
    rc = ad_link_submit(&el->link, &r->job);
    if (rc != GW_OK)
        req_free(r);
    return rc;
}

/* Runs once a request and all its split reads are done: the callback,
 * then the parent's bookkeeping. */
static void req_finish(struct eng_req *r)
{
    struct gw_engine *eng = r->eng;
    struct eng_req *parent = r->parent;
    /* An on-demand read, a write with its re-read, a split read or a hole
     * re-probe is over, with its split reads: its changes are one cycle of
     * the unit. */
    if (!parent && !eng->closing)
        gw_store_cycle_done(eng->store, r->el->index, r->unit);
    if (r->cb)
        r->cb(r->data, eng->closing ? GW_ECANCELED : r->rc, r->exception);
    if (parent) {
        if (r->rc != GW_OK && parent->rc == GW_OK && !parent->is_write) {
            parent->rc = r->rc;
            parent->exception = r->exception;
        }
        if (--parent->children == 0 && parent->job_done)
            req_finish(parent);
    }
    req_free(r);
}

static void on_req_done(struct ad_job *job)
{
    struct eng_req *r = job->data;
    struct gw_engine *eng = r->eng;
    struct eng_link *el = r->el;
    size_t l = el->index;
    if (!eng->closing)
        gw_store_set_link_connected(eng->store, l, job->connected);
    int64_t now = gw_now_ms();
    for (size_t i = 0; i < job->n_ios; i++) {
        const struct ad_io *io = &job->ios[i];
        if (!eng->closing)
            count_io(eng, l, r->unit, io);
        if (!r->is_write && !eng->closing) {
            const struct ad_request *req = &r->plan.reqs[io->tag];
            /* A split request's outcome is its split reads'. */
            if (handle_exception(eng, el, &r->plan, req, io, r))
                continue;
            store_request(eng, l, &r->plan, req, io, now);
        }
        if (io->rc != GW_OK && r->rc == GW_OK) {
            r->rc = io->rc;
            r->exception = io->exception;
        }
    }
    r->job_done = true;
    if (r->probe && !eng->closing) {
        struct unit_seen seen = {0};
        for (size_t i = 0; i < job->n_ios; i++)
            seen_io(&seen, &job->ios[i]);
        unit_outcome(eng, el, r->unit, &seen, job->connected, now);
    }
    if (r->hole_probe && !eng->closing)
        hole_probe_done(eng, r);
    if (r->is_write && !eng->closing) {
        const struct cfg_point *p = &cunit(el, r->unit)->points[r->point];
        GW_LOG(eng->log, r->rc ? GW_LOG_WARN : GW_LOG_INFO, AREA,
               "write %s.%s: %s", cunit(el, r->unit)->name, p->name,
               r->rc ? gw_strerror(r->rc) : "ok");
        /* Refresh the store from the device before the writer hears of
         * the result, so a readout right after a write sees the new value
         * (a failed refresh does not fail the write). */
        size_t pt = r->point;
        submit_read(eng, l, r->unit, &pt, 1, NULL, NULL, r);
    }
    if (r->children == 0)
        req_finish(r);
}

void gw_engine_reset_backoff(struct gw_engine *eng, size_t link, size_t unit)
{
    if (link >= eng->cfg->n_links || unit >= eng->cfg->links[link].n_units)
        return;
    struct eng_link *el = &eng->links[link];
    struct eng_unit *eu = &el->units[unit];
    eu->failed_cycles = 0;
    eu->backoff_ms = 0;
    eu->skip_until = 0;
    eu->probe_until = 0;
    /* Its holes are tried again now, on a fresh schedule. */
    uint64_t now = uv_now(eng->loop);
    for (size_t i = 0; i < eu->n_holes; i++) {
        eu->hole_sched[i].retry_ms = eng->opts.hole_retry_min_ms;
        eu->hole_sched[i].due = now;
    }
    probe_due_holes(eng, el, unit, now);
}

bool gw_engine_unit_in_backoff(const struct gw_engine *eng, size_t link,
                               size_t unit)
{
    return eng->links[link].units[unit].skip_until != 0;
}

bool gw_engine_probe_pending(const struct gw_engine *eng, size_t link,
                             size_t unit)
{
    return eng->links[link].units[unit].probe_until != 0;
}

size_t gw_engine_holes(const struct gw_engine *eng, size_t link, size_t unit)
{
    return eng->links[link].units[unit].n_holes;
}

uint64_t gw_engine_cycles(const struct gw_engine *eng, size_t link)
{
    uint64_t n = 0;
    for (size_t g = 0; g < eng->cfg->n_poll_groups; g++)
        n += eng->links[link].groups[g].cycles;
    return n;
}

/* ---- lifecycle -------------------------------------------------------- */

int gw_engine_new(uv_loop_t *loop, const struct cfg *cfg,
                  struct gw_store *store, const struct gw_log *log,
                  const struct gw_engine_opts *opts, struct gw_engine **out)
{
    struct gw_engine *eng = calloc(1, sizeof(*eng));
    if (!eng)
        return GW_ENOMEM;
    eng->loop = loop;
    eng->cfg = cfg;
    eng->store = store;
    eng->log = log;
    if (opts)
        eng->opts = *opts;
    if (!eng->opts.fail_cycles)
        eng->opts.fail_cycles = 3;
    if (!eng->opts.backoff_min_ms)
        eng->opts.backoff_min_ms = 2000;
    if (!eng->opts.backoff_max_ms)
        eng->opts.backoff_max_ms = 60000;
    if (!eng->opts.hole_retry_min_ms)
        eng->opts.hole_retry_min_ms = 60000;
    if (!eng->opts.hole_retry_max_ms)
        eng->opts.hole_retry_max_ms = 300000;
    eng->links = calloc(cfg->n_links ? cfg->n_links : 1, sizeof(*eng->links));
    if (!eng->links) {
        free(eng);
        return GW_ENOMEM;
    }
    int rc = GW_OK;
    for (size_t l = 0; l < cfg->n_links; l++) {
        struct eng_link *el = &eng->links[l];
        const struct cfg_link *cl = &cfg->links[l];
        size_t nu = cl->n_units ? cl->n_units : 1;
        el->eng = eng;
        el->index = l;
        el->plan_cfg = *cl;
        el->plan_units = malloc(nu * sizeof(*el->plan_units));
        el->units = calloc(nu, sizeof(*el->units));
        el->groups = calloc(cfg->n_poll_groups, sizeof(*el->groups));
        el->hole_ptrs = calloc(nu, sizeof(*el->hole_ptrs));
        el->hole_counts = calloc(nu, sizeof(*el->hole_counts));
        if (!el->plan_units || !el->units || !el->groups || !el->hole_ptrs ||
            !el->hole_counts) {
            rc = GW_ENOMEM;
            break;
        }
        memcpy(el->plan_units, cl->units,
               cl->n_units * sizeof(struct cfg_unit));
        el->plan_cfg.units = el->plan_units;
        for (size_t g = 0; g < cfg->n_poll_groups; g++) {
            el->groups[g].el = el;
            el->groups[g].group = g;
        }
        if (ad_link_init(&el->link, loop, cl, log) == GW_OK)
            el->link_open = true;
    }
    if (rc != GW_OK) {
        gw_engine_free(eng, NULL, NULL);
        return rc;
    }
    *out = eng;
    return GW_OK;
}

int gw_engine_start(struct gw_engine *eng)
{
    const struct cfg *cfg = eng->cfg;
    size_t pairs = cfg->n_links * cfg->n_poll_groups, k = 0;
    for (size_t l = 0; l < cfg->n_links; l++) {
        struct eng_link *el = &eng->links[l];
        if (!el->link_open)
            continue;
        int rc = ad_link_start(&el->link);
        if (rc != GW_OK)
            return rc;
        if (!eng->opts.poll)
            continue;
        for (size_t g = 0; g < cfg->n_poll_groups; g++) {
            struct eng_group *grp = &el->groups[g];
            rc = build_plan(el, grp);
            if (rc != GW_OK) {
                GW_LOG(eng->log, GW_LOG_ERROR, AREA,
                       "link %s: cannot plan poll group %s: %s",
                       cfg->links[l].name, cfg->poll_groups[g].name,
                       gw_strerror(rc));
                return rc;
            }
            if (grp->plan.n_reqs == 0 && grp->plan.n_skipped == 0)
                continue;
            uint64_t interval = cfg->poll_groups[g].interval_ms;
            /* Stagger the groups' phases over the interval. */
            uint64_t phase = pairs ? (interval * k) / pairs : 0;
            k++;
            uv_timer_init(eng->loop, &grp->timer);
            grp->timer.data = grp;
            grp->timer_open = true;
            uv_timer_start(&grp->timer, on_poll_timer, phase, interval);
        }
    }
    return GW_OK;
}

static void free_now(struct gw_engine *eng)
{
    for (size_t l = 0; l < eng->cfg->n_links; l++) {
        struct eng_link *el = &eng->links[l];
        if (el->groups) {
            for (size_t g = 0; g < eng->cfg->n_poll_groups; g++) {
                ad_plan_close(&el->groups[g].plan);
                free(el->groups[g].ios);
                free(el->groups[g].buf);
            }
        }
        if (el->units)
            for (size_t u = 0; u < eng->cfg->links[l].n_units; u++) {
                free(el->units[u].holes);
                free(el->units[u].hole_sched);
            }
        free(el->groups);
        free(el->units);
        free(el->plan_units);
        free(el->hole_ptrs);
        free(el->hole_counts);
    }
    free(eng->links);
    void (*cb)(void *) = eng->closed_cb;
    void *data = eng->closed_data;
    free(eng);
    if (cb)
        cb(data);
}

static void release(struct gw_engine *eng)
{
    if (--eng->open_handles == 0)
        free_now(eng);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct eng_group *g = h->data;
    release(g->el->eng);
}

static void on_link_closed(struct ad_link *link)
{
    struct eng_link *el =
        (struct eng_link *)((char *)link - offsetof(struct eng_link, link));
    release(el->eng);
}

void gw_engine_free(struct gw_engine *eng, void (*closed_cb)(void *data),
                    void *data)
{
    if (!eng)
        return;
    eng->closing = true;
    eng->closed_cb = closed_cb;
    eng->closed_data = data;
    eng->open_handles = 1; /* held until every close is issued */
    for (size_t l = 0; l < eng->cfg->n_links; l++) {
        struct eng_link *el = &eng->links[l];
        if (el->groups) {
            for (size_t g = 0; g < eng->cfg->n_poll_groups; g++) {
                if (!el->groups[g].timer_open)
                    continue;
                el->groups[g].timer_open = false;
                eng->open_handles++;
                uv_close((uv_handle_t *)&el->groups[g].timer, on_timer_closed);
            }
        }
        if (el->link_open) {
            el->link_open = false;
            eng->open_handles++;
            ad_link_close(&el->link, on_link_closed);
        }
    }
    release(eng);
}
