/* fgt_engine.c - the real engine in a test's loop. */
#include "fgt_engine.h"

#include <string.h>

#include "gw_err.h"

int fgt_engine_open(struct fgt_engine *t, const char *yaml,
                    const struct gw_engine_opts *opts, FILE *log_out)
{
    memset(t, 0, sizeof(*t));
    gw_log_init(&t->log);
    t->log.level = GW_LOG_NOTICE;
    t->log.out = log_out;
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    int rc = cfg_load_buffer("test.yaml", yaml, strlen(yaml), &t->cfg, &errs);
    if (rc != GW_OK) {
        cfg_errors_print(&errs, stderr);
        cfg_errors_close(&errs);
        return -1;
    }
    cfg_errors_close(&errs);
    if (uv_loop_init(&t->loop) != 0)
        return -1;
    if (gw_store_init(&t->store, t->cfg) != GW_OK)
        return -1;
    rc = gw_engine_new(&t->loop, t->cfg, &t->store, &t->log, opts, &t->eng);
    if (rc != GW_OK) {
        fprintf(stderr, "gw_engine_new: %s\n", gw_strerror(rc));
        return -1;
    }
    rc = gw_engine_start(t->eng);
    if (rc != GW_OK) {
        fprintf(stderr, "gw_engine_start: %s\n", gw_strerror(rc));
        return -1;
    }
    return 0;
}

static void on_closed(void *data)
{
    struct fgt_engine *t = data;
    t->engine_closed = true;
}

int fgt_engine_close(struct fgt_engine *t)
{
    int rc = 0;
    if (t->eng) {
        gw_engine_free(t->eng, on_closed, t);
        t->eng = NULL;
        uv_run(&t->loop, UV_RUN_DEFAULT);
        if (!t->engine_closed)
            rc = -1;
    }
    if (t->cfg) {
        int lrc = uv_loop_close(&t->loop);
        if (rc == 0)
            rc = lrc;
    }
    gw_store_close(&t->store);
    cfg_free(t->cfg);
    t->cfg = NULL;
    return rc;
}

struct waiter {
    uv_timer_t timer;
    struct fgt_engine *t;
    bool (*pred)(struct fgt_engine *t, void *arg);
    void *arg;
    uint64_t deadline;
    bool held;
};

static void on_tick(uv_timer_t *h)
{
    struct waiter *w = h->data;
    if (w->pred && w->pred(w->t, w->arg)) {
        w->held = true;
        uv_stop(&w->t->loop);
        return;
    }
    if (uv_now(&w->t->loop) >= w->deadline)
        uv_stop(&w->t->loop);
}

static bool run_waiter(struct fgt_engine *t,
                       bool (*pred)(struct fgt_engine *t, void *arg), void *arg,
                       uint64_t timeout_ms, uint64_t period)
{
    struct waiter w = {.t = t, .pred = pred, .arg = arg};
    uv_update_time(&t->loop);
    w.deadline = uv_now(&t->loop) + timeout_ms;
    uv_timer_init(&t->loop, &w.timer);
    w.timer.data = &w;
    uv_timer_start(&w.timer, on_tick, period, period);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&w.timer, NULL);
    /* Let the close callback run without running anything long. */
    uv_run(&t->loop, UV_RUN_NOWAIT);
    return w.held;
}

void fgt_engine_run_ms(struct fgt_engine *t, uint64_t ms)
{
    run_waiter(t, NULL, NULL, ms, ms ? ms : 1);
}

bool fgt_engine_run_until(struct fgt_engine *t,
                          bool (*pred)(struct fgt_engine *t, void *arg),
                          void *arg, uint64_t timeout_ms)
{
    if (pred(t, arg))
        return true;
    return run_waiter(t, pred, arg, timeout_ms, 20);
}

struct op {
    bool done;
    int rc;
    uint8_t exc;
};

static void on_op(void *data, int rc, uint8_t exc)
{
    struct op *op = data;
    op->done = true;
    op->rc = rc;
    op->exc = exc;
}

static bool op_done(struct fgt_engine *t, void *arg)
{
    return ((struct op *)arg)->done;
}

int fgt_engine_read(struct fgt_engine *t, const char *unit, uint8_t *exc)
{
    size_t l, u, p;
    if (gw_store_find(t->cfg, unit, &l, &u, &p) != GW_OK)
        return GW_ENOTFOUND;
    struct op op = {0};
    const size_t *pts = p == SIZE_MAX ? NULL : &p;
    int rc = gw_engine_read(t->eng, l, u, pts, pts ? 1 : 0, on_op, &op);
    if (rc != GW_OK)
        return rc;
    if (!fgt_engine_run_until(t, op_done, &op, 20000))
        return GW_ETIMEOUT;
    if (exc)
        *exc = op.exc;
    return op.rc;
}

int fgt_engine_write(struct fgt_engine *t, const char *ref, const char *text,
                     bool verify, uint8_t *exc)
{
    size_t l, u, p;
    if (gw_store_find(t->cfg, ref, &l, &u, &p) != GW_OK || p == SIZE_MAX)
        return GW_ENOTFOUND;
    struct ad_value v;
    int rc = ad_value_parse(&t->cfg->links[l].units[u].points[p], text, &v);
    if (rc != GW_OK)
        return rc;
    struct op op = {0};
    rc = gw_engine_write(t->eng, l, u, p, &v, verify, on_op, &op);
    if (rc != GW_OK)
        return rc;
    if (!fgt_engine_run_until(t, op_done, &op, 20000))
        return GW_ETIMEOUT;
    if (exc)
        *exc = op.exc;
    return op.rc;
}

const struct gw_point_state *fgt_point(struct fgt_engine *t, const char *ref)
{
    size_t l, u, p;
    if (gw_store_find(t->cfg, ref, &l, &u, &p) != GW_OK || p == SIZE_MAX)
        return NULL;
    return gw_store_point(&t->store, l, u, p);
}

const struct gw_unit_state *fgt_unit(struct fgt_engine *t, const char *name)
{
    size_t l, u, p;
    if (gw_store_find(t->cfg, name, &l, &u, &p) != GW_OK || p != SIZE_MAX)
        return NULL;
    return &t->store.links[l].units[u];
}
