/* test_events.c - change detection (gateway/gw_events) over a real value
 * store and a real uv loop: rules (any change, deadbands, min_interval,
 * heartbeats, quality changes), one batch per unit per cycle, coalescing,
 * snapshots, stats.  The store is written as the engine writes it
 * (gw_store_set_value / gw_store_set_error / gw_store_cycle_done). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "cfg.h"
#include "gw_err.h"
#include "gw_events.h"
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
    "        points:\n"
    "          - {name: t, table: input, address: 0,\n"
    "             type: float32}\n"
    "          - {name: n, table: holding, address: 10,\n"
    "             type: int16}\n"
    "          - {name: s, table: holding, address: 20,\n"
    "             type: string, length: 4}\n"
    "          - {name: b, table: coil, address: 0}\n"
    "          - {name: off, table: holding, address: 30,\n"
    "             type: uint16}\n"
    "      - name: m2\n"
    "        id: 2\n"
    "        points:\n"
    "          - {name: x, table: holding, address: 0,\n"
    "             type: uint16}\n";

/* Point indices of MAP. */
enum { T, N, S, B, OFF };
enum { M1, M2 };

struct fx {
    uv_loop_t loop;
    struct cfg *cfg;
    struct gw_store store;
    struct gw_events *ev;
    int ready_calls;
    bool closed;
};

static void on_ready(void *ud)
{
    struct fx *f = ud;
    f->ready_calls++;
}

static struct cfg_event_rule *rule(struct fx *f, size_t unit, size_t point)
{
    return &f->cfg->links[0].units[unit].points[point].events;
}

/* The same map with the rules written in YAML (the loader resolves them):
 * the unit's absolute deadband, a point's own percent deadband, a
 * disabled point, and m2 inheriting the built-in rule. */
static const char MAP_RULES[] =
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
    "        events: {deadband: 1}\n"
    "        points:\n"
    "          - {name: t, table: input, address: 0, type: float32,\n"
    "             events: {deadband: 10%}}\n"
    "          - {name: n, table: holding, address: 10, type: int16}\n"
    "          - {name: s, table: holding, address: 20, type: string,\n"
    "             length: 4}\n"
    "          - {name: b, table: coil, address: 0}\n"
    "          - {name: off, table: holding, address: 30, type: uint16,\n"
    "             events: {enabled: false}}\n"
    "      - name: m2\n"
    "        id: 2\n"
    "        points:\n"
    "          - {name: x, table: holding, address: 0, type: uint16}\n";

static int setup_map(void **state, const char *map, bool set_rules)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    if (uv_loop_init(&f.loop) != 0)
        return -1;
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    int rc = cfg_load_buffer("map.yaml", map, strlen(map), &f.cfg, &errs);
    if (rc != GW_OK)
        cfg_errors_print(&errs, stderr);
    cfg_errors_close(&errs);
    if (rc != GW_OK)
        return -1;
    /* The rules are set on the model directly (every point: any change),
     * independent of how the loader spells the events: section; "off"
     * emits no events. */
    for (size_t u = 0; set_rules && u < f.cfg->links[0].n_units; u++)
        for (size_t p = 0; p < f.cfg->links[0].units[u].n_points; p++)
            *rule(&f, u, p) = (struct cfg_event_rule){.enabled = true};
    if (set_rules)
        rule(&f, M1, OFF)->enabled = false;
    if (gw_store_init(&f.store, f.cfg) != GW_OK)
        return -1;
    *state = &f;
    return 0;
}

static int setup(void **state)
{
    return setup_map(state, MAP, true);
}

static int setup_yaml(void **state)
{
    return setup_map(state, MAP_RULES, false);
}

/* The detector is created by each test, after it has set its rules. */
static void start(struct fx *f)
{
    assert_int_equal(
        gw_events_new(&f->loop, f->cfg, &f->store, NULL, on_ready, f, &f->ev),
        GW_OK);
}

static void on_closed(void *ud)
{
    struct fx *f = ud;
    f->closed = true;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->ev) {
        gw_events_free(f->ev, on_closed, f);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        if (!f->closed)
            return -1;
    }
    gw_store_close(&f->store);
    cfg_free(f->cfg);
    return uv_loop_close(&f->loop) == 0 ? 0 : -1;
}

/* ---- driving the store as the engine does -------------------------------- */

static void set_d(struct fx *f, size_t u, size_t p, double d)
{
    uv_update_time(&f->loop);
    struct ad_value v = {.kind = AD_VALUE_DOUBLE, .v.d = d};
    uint16_t raw[2] = {0, 0};
    gw_store_set_value(&f->store, 0, u, p, raw, 2, &v, 0, gw_now_ms());
}

static void set_i(struct fx *f, size_t u, size_t p, int64_t i)
{
    uv_update_time(&f->loop);
    struct ad_value v = {.kind = AD_VALUE_INT, .v.i = i};
    uint16_t raw[1] = {(uint16_t)i};
    gw_store_set_value(&f->store, 0, u, p, raw, 1, &v, 0, gw_now_ms());
}

static void set_u(struct fx *f, size_t u, size_t p, uint64_t x)
{
    uv_update_time(&f->loop);
    struct ad_value v = {.kind = AD_VALUE_UINT, .v.u = x};
    uint16_t raw[1] = {(uint16_t)x};
    gw_store_set_value(&f->store, 0, u, p, raw, 1, &v, 0, gw_now_ms());
}

static void set_s(struct fx *f, size_t u, size_t p, const char *s)
{
    uv_update_time(&f->loop);
    struct ad_value v = {.kind = AD_VALUE_STRING};
    snprintf(v.s, sizeof(v.s), "%s", s);
    uint16_t raw[4] = {0};
    gw_store_set_value(&f->store, 0, u, p, raw, 4, &v, 0, gw_now_ms());
}

static void set_b(struct fx *f, size_t u, size_t p, bool b)
{
    uv_update_time(&f->loop);
    struct ad_value v = {.kind = AD_VALUE_BOOL, .v.b = b};
    uint16_t raw[1] = {b};
    gw_store_set_value(&f->store, 0, u, p, raw, 1, &v, 0, gw_now_ms());
}

static void set_err(struct fx *f, size_t u, size_t p, enum gw_quality q)
{
    uv_update_time(&f->loop);
    gw_store_set_error(&f->store, 0, u, p, q,
                       q == GW_Q_DISCONNECTED ? GW_EDISCONNECTED : GW_ETIMEOUT,
                       0, gw_now_ms());
}

static void cycle(struct fx *f, size_t u)
{
    gw_store_cycle_done(&f->store, 0, u);
}

/* Takes one batch: its unit and point count, -1 when none is ready. */
static int take(struct fx *f, size_t *unit, size_t *points, size_t cap)
{
    struct gw_events_batch b;
    if (!gw_events_take(f->ev, &b))
        return -1;
    if (unit)
        *unit = b.unit;
    for (size_t i = 0; points && i < b.n_points && i < cap; i++)
        points[i] = b.points[i];
    return (int)b.n_points;
}

/* One cycle of unit u, then exactly one batch of one point p (or, with p
 * SIZE_MAX, no batch at all). */
static void expect_one(struct fx *f, size_t u, size_t p)
{
    cycle(f, u);
    size_t unit = SIZE_MAX, pts[8];
    int n = take(f, &unit, pts, 8);
    if (p == SIZE_MAX) {
        assert_int_equal(n, -1);
        return;
    }
    assert_int_equal(n, 1);
    assert_int_equal(unit, u);
    assert_int_equal(pts[0], p);
    assert_int_equal(take(f, NULL, NULL, 0), -1);
}

/* Runs the loop's due timers after ms milliseconds. */
static void wait_ms(struct fx *f, unsigned ms)
{
    usleep(ms * 1000u);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static struct gw_events_stats stats(struct fx *f)
{
    struct gw_events_stats s;
    gw_events_get_stats(f->ev, &s);
    return s;
}

/* ---- tests ----------------------------------------------------------------
 */

/* Default rule: every change of any type is an event; the same value (the
 * store does not even notify) is none; a disabled point never is. */
static void test_any_change(void **state)
{
    struct fx *f = *state;
    start(f);
    set_i(f, M1, N, 5);
    expect_one(f, M1, N);
    set_i(f, M1, N, 5);
    expect_one(f, M1, SIZE_MAX);
    set_i(f, M1, N, 6);
    expect_one(f, M1, N);
    set_d(f, M1, T, 1.5);
    expect_one(f, M1, T);
    set_d(f, M1, T, 1.5000001);
    expect_one(f, M1, T);
    set_s(f, M1, S, "ab");
    expect_one(f, M1, S);
    set_s(f, M1, S, "ac");
    expect_one(f, M1, S);
    set_b(f, M1, B, true);
    expect_one(f, M1, B);
    set_b(f, M1, B, false);
    expect_one(f, M1, B);
    set_u(f, M1, OFF, 1);
    set_u(f, M1, OFF, 2);
    expect_one(f, M1, SIZE_MAX);
    struct gw_events_stats s = stats(f);
    assert_int_equal(s.changes, 8);
    assert_int_equal(s.batches, 8);
    assert_int_equal(s.suppressed, 0);
    assert_int_equal(s.backlog, 0);
}

/* Absolute deadband: changes inside are suppressed, the first outside
 * passes, measured from the last PUBLISHED value (not the last seen). */
static void test_deadband_absolute(void **state)
{
    struct fx *f = *state;
    rule(f, M1, T)->deadband = 1.0;
    rule(f, M1, N)->deadband = 2;
    start(f);
    set_d(f, M1, T, 10.0);
    expect_one(f, M1, T); /* the first value: a quality change */
    set_d(f, M1, T, 10.5);
    expect_one(f, M1, SIZE_MAX);
    set_d(f, M1, T, 10.9);
    expect_one(f, M1, SIZE_MAX);
    set_d(f, M1, T, 11.0); /* exactly the band: not outside it */
    expect_one(f, M1, SIZE_MAX);
    set_d(f, M1, T, 11.5); /* 0.6 from the last seen, 1.5 from 10.0 */
    expect_one(f, M1, T);
    set_d(f, M1, T, 12.0); /* 0.5 from 11.5 (2.0 from 10.0) */
    expect_one(f, M1, SIZE_MAX);
    set_d(f, M1, T, 10.4); /* 1.1 below 11.5 */
    expect_one(f, M1, T);
    /* integers */
    set_i(f, M1, N, 100);
    expect_one(f, M1, N);
    set_i(f, M1, N, 102);
    expect_one(f, M1, SIZE_MAX);
    set_i(f, M1, N, 97);
    expect_one(f, M1, N);
    assert_int_equal(stats(f).suppressed, 5);
}

/* Percent deadband: of the last published value's magnitude; of 0, any
 * change passes. */
static void test_deadband_percent(void **state)
{
    struct fx *f = *state;
    rule(f, M1, T)->deadband = 10;
    rule(f, M1, T)->deadband_percent = true;
    start(f);
    set_d(f, M1, T, -100.0);
    expect_one(f, M1, T);
    set_d(f, M1, T, -105.0);
    expect_one(f, M1, SIZE_MAX);
    set_d(f, M1, T, -91.0);
    expect_one(f, M1, SIZE_MAX);
    set_d(f, M1, T, -111.0);
    expect_one(f, M1, T);
    set_d(f, M1, T, -120.0); /* 8.1 % of 111 */
    expect_one(f, M1, SIZE_MAX);
    set_d(f, M1, T, -122.2); /* 10.09 % */
    expect_one(f, M1, T);
    set_d(f, M1, T, 0.0);
    expect_one(f, M1, T);
    set_d(f, M1, T, 0.001); /* percent of 0: any change */
    expect_one(f, M1, T);
    set_d(f, M1, T, 0.00105); /* 5 % of 0.001 */
    expect_one(f, M1, SIZE_MAX);
}

/* min_interval: a change inside the interval is deferred to its end and
 * becomes ready from the timer (no cycle end needed); the newest value
 * wins; the rate is capped. */
static void test_min_interval(void **state)
{
    struct fx *f = *state;
    rule(f, M1, T)->min_interval_ms = 100;
    rule(f, M1, T)->deadband = 0.5;
    start(f);
    set_d(f, M1, T, 10.0);
    expect_one(f, M1, T);
    /* Deferred: 12 then 13 inside the interval, published once at its
     * end, from the timer. */
    set_d(f, M1, T, 12.0);
    expect_one(f, M1, SIZE_MAX);
    set_d(f, M1, T, 13.0);
    expect_one(f, M1, SIZE_MAX);
    int calls = f->ready_calls;
    wait_ms(f, 130);
    assert_int_equal(f->ready_calls, calls + 1);
    size_t pts[4];
    assert_int_equal(take(f, NULL, pts, 4), 1);
    assert_int_equal(pts[0], T);
    assert_int_equal(take(f, NULL, NULL, 0), -1);
    /* The published value is 13 (the newest): 13.3 is inside the band
     * (it would not be against 12). */
    wait_ms(f, 130);
    set_d(f, M1, T, 13.3);
    expect_one(f, M1, SIZE_MAX);
    /* Newest wins even when it falls back into the band: 25 then 20.2
     * inside the interval (published: 20) publishes nothing. */
    set_d(f, M1, T, 20.0);
    expect_one(f, M1, T);
    set_d(f, M1, T, 25.0);
    expect_one(f, M1, SIZE_MAX);
    set_d(f, M1, T, 20.2);
    expect_one(f, M1, SIZE_MAX);
    wait_ms(f, 130);
    assert_int_equal(take(f, NULL, NULL, 0), -1);
    /* The rate: a change every 10 ms for 600 ms, each with a cycle end,
     * taken as soon as ready: about one event per 100 ms. */
    struct gw_events_stats before = stats(f);
    uint64_t t0 = uv_hrtime();
    int batches = 0;
    for (int i = 0; i < 60; i++) {
        set_d(f, M1, T, 100.0 + i);
        cycle(f, M1);
        while (take(f, NULL, NULL, 0) >= 0)
            batches++;
        wait_ms(f, 10);
        while (take(f, NULL, NULL, 0) >= 0)
            batches++;
    }
    uint64_t elapsed_ms = (uv_hrtime() - t0) / 1000000u;
    assert_in_range((uint64_t)batches, 3, elapsed_ms / 100 + 2);
    struct gw_events_stats after = stats(f);
    assert_true(after.suppressed - before.suppressed >= 50);
}

/* max_interval: the current value is published again after that long
 * without an event, with no change at all; only points with the rule. */
static void test_heartbeat(void **state)
{
    struct fx *f = *state;
    *rule(f, M2, 0) =
        (struct cfg_event_rule){.enabled = true, .max_interval_ms = 200};
    start(f);
    set_u(f, M2, 0, 7);
    set_i(f, M1, N, 1);
    expect_one(f, M2, 0);
    expect_one(f, M1, N);
    int calls = f->ready_calls;
    wait_ms(f, 100);
    assert_int_equal(take(f, NULL, NULL, 0), -1);
    wait_ms(f, 150);
    assert_int_equal(f->ready_calls, calls + 1);
    size_t unit = SIZE_MAX, pts[4];
    assert_int_equal(take(f, &unit, pts, 4), 1);
    assert_int_equal(unit, M2);
    assert_int_equal(pts[0], 0);
    assert_int_equal(stats(f).heartbeats, 1);
    assert_int_equal(stats(f).changes, 2);
    /* An event resets the heartbeat's clock: a change 100 ms after the
     * heartbeat; 150 ms later (250 after the heartbeat) nothing yet. */
    wait_ms(f, 100);
    set_u(f, M2, 0, 8);
    expect_one(f, M2, 0);
    wait_ms(f, 150);
    assert_int_equal(take(f, NULL, NULL, 0), -1);
    wait_ms(f, 100);
    assert_int_equal(take(f, NULL, NULL, 0), 1);
    assert_int_equal(stats(f).heartbeats, 2);
    assert_int_equal(take(f, NULL, NULL, 0), -1);
}

/* A quality change is always an event: through a deadband and without
 * waiting for min_interval; the return to good is another. */
static void test_quality_always(void **state)
{
    struct fx *f = *state;
    rule(f, M1, T)->deadband = 1000;
    rule(f, M1, T)->min_interval_ms = 60000;
    start(f);
    set_d(f, M1, T, 10.0);
    expect_one(f, M1, T);
    set_err(f, M1, T, GW_Q_TIMEOUT);
    expect_one(f, M1, T);
    set_err(f, M1, T, GW_Q_DISCONNECTED);
    expect_one(f, M1, T);
    set_d(f, M1, T, 10.0); /* back, same value */
    expect_one(f, M1, T);
    set_d(f, M1, T, 11.0); /* a value change: inside the band */
    expect_one(f, M1, SIZE_MAX);
    uv_update_time(&f->loop);
    gw_store_set_error(&f->store, 0, M1, T, GW_Q_EXCEPTION, GW_EMBEXC, 2,
                       gw_now_ms());
    expect_one(f, M1, T);
    uv_update_time(&f->loop);
    gw_store_set_error(&f->store, 0, M1, T, GW_Q_EXCEPTION, GW_EMBEXC, 4,
                       gw_now_ms());
    expect_one(f, M1, T); /* another exception code */
}

/* All changes of a unit's cycle are one batch, in point order, ready at
 * the cycle end (not before); another unit's cycle is another batch. */
static void test_batch_per_cycle(void **state)
{
    struct fx *f = *state;
    start(f);
    set_b(f, M1, B, true);
    set_d(f, M1, T, 1.0);
    set_s(f, M1, S, "x");
    set_i(f, M1, N, 3);
    set_u(f, M2, 0, 9);
    assert_int_equal(take(f, NULL, NULL, 0), -1);
    assert_int_equal(f->ready_calls, 0);
    cycle(f, M1);
    assert_int_equal(f->ready_calls, 1);
    cycle(f, M2);
    assert_int_equal(f->ready_calls, 1); /* one was ready already */
    assert_int_equal(stats(f).backlog, 2);
    struct gw_events_batch b;
    assert_true(gw_events_take(f->ev, &b));
    assert_int_equal(b.link, 0);
    assert_int_equal(b.unit, M1);
    assert_int_equal(b.n_points, 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(b.points[i], i); /* T, N, S, B */
    assert_int_equal(b.seq, 1);
    assert_true(b.ts_ms > 0);
    assert_true(gw_events_take(f->ev, &b));
    assert_int_equal(b.unit, M2);
    assert_int_equal(b.n_points, 1);
    assert_int_equal(b.seq, 1);
    assert_false(gw_events_take(f->ev, &b));
    /* An empty cycle makes no batch; the next one of m1 is seq 2. */
    cycle(f, M1);
    assert_false(gw_events_take(f->ev, &b));
    set_i(f, M1, N, 4);
    cycle(f, M1);
    assert_true(gw_events_take(f->ev, &b));
    assert_int_equal(b.seq, 2);
    assert_int_equal(f->ready_calls, 2);
}

/* While a unit's batch waits, later cycles' changes join it: one batch,
 * the newest state, counted as coalesced. */
static void test_coalescing(void **state)
{
    struct fx *f = *state;
    start(f);
    set_d(f, M1, T, 1.0);
    cycle(f, M1);
    set_i(f, M1, N, 1);
    cycle(f, M1);
    set_d(f, M1, T, 2.0);
    cycle(f, M1);
    set_d(f, M1, T, 3.0);
    cycle(f, M1);
    struct gw_events_stats s = stats(f);
    assert_int_equal(s.coalesced, 3);
    assert_int_equal(s.backlog, 1);
    assert_int_equal(f->ready_calls, 1);
    size_t pts[4];
    assert_int_equal(take(f, NULL, pts, 4), 2);
    assert_int_equal(pts[0], T);
    assert_int_equal(pts[1], N);
    assert_int_equal(take(f, NULL, NULL, 0), -1);
    /* What was taken is the reference: the same value again is nothing. */
    set_d(f, M1, T, 3.0);
    expect_one(f, M1, SIZE_MAX);
    assert_int_equal(stats(f).batches, 1);
}

/* A change inside a cycle that is back to the published value by the
 * cycle end is no event. */
static void test_back_within_cycle(void **state)
{
    struct fx *f = *state;
    start(f);
    set_i(f, M1, N, 1);
    expect_one(f, M1, N);
    set_i(f, M1, N, 2);
    set_i(f, M1, N, 1);
    expect_one(f, M1, SIZE_MAX);
}

/* A snapshot: every enabled point of every unit, one batch per unit,
 * whatever was published; pending changes stay for their cycle. */
static void test_snapshot(void **state)
{
    struct fx *f = *state;
    start(f);
    set_d(f, M1, T, 1.0);
    expect_one(f, M1, T);
    gw_events_snapshot(f->ev);
    assert_int_equal(f->ready_calls, 2);
    assert_int_equal(stats(f).backlog, 2);
    size_t unit = SIZE_MAX, pts[8];
    assert_int_equal(take(f, &unit, pts, 8), 4); /* "off" is disabled */
    assert_int_equal(unit, M1);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pts[i], i);
    assert_int_equal(take(f, &unit, pts, 8), 1);
    assert_int_equal(unit, M2);
    assert_int_equal(take(f, NULL, NULL, 0), -1);
    /* A snapshot joins a waiting batch (one batch per unit). */
    set_i(f, M1, N, 5);
    cycle(f, M1);
    gw_events_snapshot(f->ev);
    assert_int_equal(stats(f).backlog, 2);
    assert_int_equal(take(f, &unit, pts, 8), 4);
    assert_int_equal(unit, M1);
    assert_int_equal(take(f, &unit, pts, 8), 1);
    assert_int_equal(take(f, NULL, NULL, 0), -1);
    /* Taken: the snapshot's values are the reference. */
    set_i(f, M1, N, 5);
    expect_one(f, M1, SIZE_MAX);
}

/* A batch that could not be published is handed back: its points go out
 * again at the unit's next cycle even though the value did not change
 * since (it was lost, not published), once, and coalesce with a change
 * meanwhile; nothing is ready before that cycle (no retry storm). */
static void test_requeue(void **state)
{
    struct fx *f = *state;
    start(f);
    set_i(f, M1, N, 5);
    expect_one(f, M1, N);
    size_t pts[1] = {N};
    gw_events_requeue(f->ev, 0, M1, pts, 1);
    assert_int_equal(take(f, NULL, NULL, 0), -1); /* not before the cycle */
    expect_one(f, M1, N);                         /* the same value again */
    expect_one(f, M1, SIZE_MAX);                  /* once */
    /* Handed back, then changed in the same cycle: one batch. */
    gw_events_requeue(f->ev, 0, M1, pts, 1);
    set_i(f, M1, N, 6);
    expect_one(f, M1, N);
    /* Out-of-range arguments are ignored. */
    size_t bad[1] = {999};
    gw_events_requeue(f->ev, 0, M1, bad, 1);
    gw_events_requeue(f->ev, 7, 0, pts, 1);
    gw_events_requeue(f->ev, 0, 99, pts, 1);
    gw_events_requeue(NULL, 0, M1, pts, 1);
    expect_one(f, M1, SIZE_MAX);
    assert_int_equal(stats(f).requeued, 2);
}

/* Many points, many cycles: nothing grows, the free runs cleanly while
 * deadlines are armed (ASan/LSan check the memory). */
static void test_free_armed(void **state)
{
    struct fx *f = *state;
    *rule(f, M2, 0) = (struct cfg_event_rule){
        .enabled = true, .min_interval_ms = 50, .max_interval_ms = 1000};
    start(f);
    for (int i = 0; i < 1000; i++) {
        set_u(f, M2, 0, (uint64_t)i);
        cycle(f, M2);
        while (take(f, NULL, NULL, 0) >= 0)
            ;
    }
    set_u(f, M2, 0, 5000); /* deferred: the timer is armed */
    assert_int_equal(take(f, NULL, NULL, 0), -1);
}

/* The rules as the loader resolves them from the map's events: keys. */
static void test_yaml_rules(void **state)
{
    struct fx *f = *state;
    start(f);
    /* t: its own 10 % (not the unit's absolute 1) */
    set_d(f, M1, T, 100.0);
    expect_one(f, M1, T);
    set_d(f, M1, T, 105.0);
    expect_one(f, M1, SIZE_MAX);
    set_d(f, M1, T, 111.0);
    expect_one(f, M1, T);
    /* n: the unit's deadband 1 */
    set_i(f, M1, N, 10);
    expect_one(f, M1, N);
    set_i(f, M1, N, 11);
    expect_one(f, M1, SIZE_MAX);
    set_i(f, M1, N, 12);
    expect_one(f, M1, N);
    /* off: disabled; m2.x: the built-in rule (any change) */
    set_u(f, M1, OFF, 1);
    expect_one(f, M1, SIZE_MAX);
    set_u(f, M2, 0, 1);
    expect_one(f, M2, 0);
    set_u(f, M2, 0, 2);
    expect_one(f, M2, 0);
}

/* A store has at most GW_STORE_MAX_LISTENERS: gw_events_new says so. */
static void noop_cb(void *d, enum gw_store_event e, size_t l, size_t u,
                    size_t p)
{
}

static void test_no_listener_slot(void **state)
{
    struct fx *f = *state;
    int k = 0;
    while (gw_store_listen(&f->store, noop_cb, &k) == GW_OK)
        ;
    struct gw_events *ev = NULL;
    assert_int_equal(
        gw_events_new(&f->loop, f->cfg, &f->store, NULL, on_ready, f, &ev),
        GW_ELIMIT);
    assert_null(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_any_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadband_absolute, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deadband_percent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quality_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_per_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_back_within_cycle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requeue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_armed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_rules, setup_yaml, teardown),
        cmocka_unit_test_setup_teardown(test_no_listener_slot, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
