/* gw_engine.c - poll cycles, backoff, holes, on-demand reads and writes. */
#include "gw_engine.h"

#include <stdlib.h>
#include <string.h>

#include "gw_err.h"

struct eng_unit {
    uint32_t failed_cycles;
    uint32_t backoff_ms;
    uint64_t skip_until; /* uv_now() ms; 0 = not in backoff */
    bool probe_sent;
    struct ad_hole *holes;
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

static int add_hole(struct eng_unit *eu, enum cfg_table t, uint16_t start,
                    uint16_t count)
{
    for (size_t i = 0; i < eu->n_holes; i++)
        if (eu->holes[i].table == t && eu->holes[i].start == start &&
            eu->holes[i].count == count)
            return GW_OK;
    if (eu->n_holes == eu->cap_holes) {
        size_t cap = eu->cap_holes ? eu->cap_holes * 2 : 4;
        struct ad_hole *h = realloc(eu->holes, cap * sizeof(*h));
        if (!h)
            return GW_ENOMEM;
        eu->holes = h;
        eu->cap_holes = cap;
    }
    eu->holes[eu->n_holes++] = (struct ad_hole){t, start, count};
    return GW_OK;
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
        if (io->exception == 2) {
            GW_LOG(eng->log, GW_LOG_WARN, AREA,
                   "unit %s: address %u (%s) is illegal (exception 02); "
                   "no longer polled",
                   cu->name, (unsigned)req->start,
                   cu->points[plan->points[req->first]].name);
            add_hole(eu, table_of_fc(req->fc), req->start, req->count);
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

/* Per-unit cycle outcome: backoff and status.  A cycle that failed only
 * because the link is down says nothing about the unit: it shows offline,
 * but its backoff is left alone (the link has its own), so it is polled
 * fully as soon as the link is back. */
static void unit_outcome(struct gw_engine *eng, struct eng_link *el, size_t u,
                         bool failed, bool partial, bool link_down, int64_t now)
{
    struct eng_unit *eu = &el->units[u];
    size_t l = el->index;
    if (link_down && !failed) {
        gw_store_set_unit_status(eng->store, l, u, GW_UNIT_OFFLINE, now);
        return;
    }
    if (!failed) {
        if (eu->skip_until)
            GW_LOG(eng->log, GW_LOG_NOTICE, AREA, "unit %s: back online",
                   cunit(el, u)->name);
        eu->failed_cycles = 0;
        eu->backoff_ms = 0;
        eu->skip_until = 0;
        eu->probe_sent = false;
        gw_store_set_unit_status(
            eng->store, l, u, partial ? GW_UNIT_DEGRADED : GW_UNIT_ONLINE, now);
        return;
    }
    eu->failed_cycles++;
    eu->probe_sent = false;
    if (eu->failed_cycles < eng->opts.fail_cycles && !eu->skip_until)
        return;
    if (eu->backoff_ms == 0)
        eu->backoff_ms = eng->opts.backoff_min_ms;
    else if (eu->backoff_ms < eng->opts.backoff_max_ms / 2)
        eu->backoff_ms *= 2;
    else
        eu->backoff_ms = eng->opts.backoff_max_ms;
    eu->skip_until = uv_now(eng->loop) + eu->backoff_ms;
    if (eng->store->links[l].units[u].status != GW_UNIT_OFFLINE)
        GW_LOG(eng->log, GW_LOG_WARN, AREA,
               "unit %s: offline after %u failed cycles (%s); probing every "
               "%u ms or more",
               cunit(el, u)->name, eu->failed_cycles,
               gw_strerror(eng->store->links[l].units[u].last_err),
               eu->backoff_ms);
    gw_store_set_unit_status(eng->store, l, u, GW_UNIT_OFFLINE, now);
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
    size_t n = 0, word = 0;
    for (size_t i = 0; i < g->plan.n_reqs; i++) {
        const struct ad_request *req = &g->plan.reqs[i];
        struct eng_unit *eu = &el->units[req->unit];
        if (eu->skip_until) {
            if (now < eu->skip_until || eu->probe_sent)
                continue;
            /* Backoff over: one request probes the unit. */
            eu->probe_sent = true;
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
    if (ad_link_submit(&el->link, &g->job) == GW_OK)
        g->in_flight = true;
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
    enum { SEEN = 1, FAILED = 2, PARTIAL = 4, LINK_DOWN = 8 };
    uint8_t *flags = calloc(n_units ? n_units : 1, 1);
    if (!flags)
        return;
    for (size_t i = 0; i < job->n_ios; i++) {
        const struct ad_io *io = &job->ios[i];
        const struct ad_request *req = &g->plan.reqs[io->tag];
        count_io(eng, l, req->unit, io);
        uint8_t f = SEEN;
        if (io->rc == GW_ETIMEOUT || io->rc == GW_EPROTO)
            f |= FAILED;
        else if (io->rc == GW_EDISCONNECTED || io->rc == GW_ECANCELED)
            f |= LINK_DOWN;
        else if (io->rc != GW_OK)
            f |= PARTIAL;
        flags[req->unit] |= f;
        if (handle_exception(eng, el, &g->plan, req, io, NULL))
            continue;
        store_request(eng, l, &g->plan, req, io, now);
    }
    for (size_t u = 0; u < n_units; u++)
        if (flags[u] & SEEN)
            unit_outcome(eng, el, u, flags[u] & FAILED, flags[u] & PARTIAL,
                         (flags[u] & LINK_DOWN) && !job->connected, now);
    free(flags);
    g->cycles++;
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

static int submit_split(struct gw_engine *eng, struct eng_link *el,
                        const struct ad_plan *plan,
                        const struct ad_request *req, struct eng_req *parent)
{
    /* Each point of the failed request alone: single_register planning
     * of exactly these points. */
    struct cfg_unit one = el->plan_units[req->unit];
    struct cfg_link lk = el->plan_cfg;
    struct cfg_unit *saved = el->plan_units;
    struct cfg_unit *units = malloc(lk.n_units * sizeof(*units));
    if (!units)
        return GW_ENOMEM;
    memcpy(units, saved, lk.n_units * sizeof(*units));
    one.max_gap = 0;
    one.single_register = true;
    units[req->unit] = one;
    lk.units = units;
    struct ad_plan sub;
    int rc = ad_plan_points(&lk, req->unit, plan->points + req->first, req->n,
                            NULL, &sub);
    free(units);
    if (rc != GW_OK)
        return rc;
    struct eng_req *r = read_req(eng, el, req->unit, &sub);
    if (!r) {
        ad_plan_close(&sub);
        return GW_ENOMEM;
    }
    rc = ad_link_submit(&el->link, &r->job);
    if (rc != GW_OK) {
        req_free(r);
        return rc;
    }
    if (parent) {
        r->parent = parent;
        parent->children++;
    }
    return GW_OK;
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
    struct eng_req *r = read_req(eng, el, unit, &plan);
    if (!r) {
        ad_plan_close(&plan);
        return GW_ENOMEM;
    }
    r->cb = cb;
    r->data = data;
    rc = ad_link_submit(&el->link, &r->job);
    if (rc != GW_OK) {
        req_free(r);
        return rc;
    }
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
    struct eng_unit *eu = &eng->links[link].units[unit];
    eu->failed_cycles = 0;
    eu->backoff_ms = 0;
    eu->skip_until = 0;
    eu->probe_sent = false;
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
            for (size_t u = 0; u < eng->cfg->links[l].n_units; u++)
                free(el->units[u].holes);
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
