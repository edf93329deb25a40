/* test_engine_events.c - the engine's cycle ends (GW_STORE_CYCLE) and the
 * quality events of a unit that goes dead and comes back, through the real
 * engine, fieldgate-sim and change detection (gateway/gw_events).
 *
 * Unit d has a point in a fast poll group (a) and one in a slow group (b)
 * whose cycle does not come round during the test's outage: b must still
 * make a quality event when d goes offline (the engine marks the offline
 * unit's points), and its return is published after an on-demand read (a
 * cycle end of its own). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fgt_engine.h"
#include "fgt_proc.h"
#include "gw_err.h"
#include "gw_events.h"

#define MAX_SEEN 64

/* The qualities published for each point of d (in take order), and the
 * cycle ends per unit. */
struct watch {
    struct fgt_engine *t;
    struct gw_events *ev;
    size_t d, ok;                      /* unit indices */
    enum gw_quality seen[2][MAX_SEEN]; /* d.a, d.b */
    size_t n_seen[2];
    uint64_t cycles[2]; /* GW_STORE_CYCLE of unit ok, unit d */
    uint64_t ok_events;
};

static void on_cycle(void *data, enum gw_store_event ev, size_t link,
                     size_t unit, size_t point)
{
    struct watch *w = data;
    if (ev != GW_STORE_CYCLE)
        return;
    assert_int_equal(point, SIZE_MAX);
    if (unit == w->ok)
        w->cycles[0]++;
    else if (unit == w->d)
        w->cycles[1]++;
}

static void on_ready(void *ud)
{
    struct watch *w = ud;
    struct gw_events_batch b;
    while (gw_events_take(w->ev, &b)) {
        if (b.unit == w->ok) {
            w->ok_events += b.n_points;
            continue;
        }
        for (size_t i = 0; i < b.n_points; i++) {
            size_t p = b.points[i];
            if (p > 1 || w->n_seen[p] == MAX_SEEN)
                continue;
            w->seen[p][w->n_seen[p]++] =
                gw_store_point(&w->t->store, b.link, b.unit, p)->quality;
        }
    }
}

static enum gw_quality last(const struct watch *w, size_t p)
{
    return w->n_seen[p] ? w->seen[p][w->n_seen[p] - 1] : GW_Q_NONE;
}

struct want {
    struct watch *w;
    enum gw_quality a, b;
};

static bool both_are(struct fgt_engine *t, void *arg)
{
    struct want *x = arg;
    return last(x->w, 0) == x->a && last(x->w, 1) == x->b;
}

static void signal_sim(struct fgt_proc *sim, int sig, const char *line)
{
    assert_int_equal(kill(sim->pid, sig), 0);
    assert_int_equal(fgt_proc_wait_line(sim, line, 5000), 0);
}

static void test_dead_and_back(void **state)
{
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1-2", (char *)"--dead",
                     (char *)"2", NULL};
    struct fgt_proc sim;
    assert_int_equal(fgt_sim_start(&sim, 0, extra, &port), 0);
    /* Unit 2 healthy for now: faults off. */
    signal_sim(&sim, SIGUSR1, "FAULTS off");
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "poll_groups:\n"
             "  - {name: fast, interval: 100ms}\n"
             "  - {name: slow, interval: 60s}\n"
             "links:\n"
             "  - name: plant\n"
             "    type: tcp\n"
             "    host: 127.0.0.1\n"
             "    port: %u\n"
             "    units:\n"
             "      - name: ok\n"
             "        id: 1\n"
             "        poll: fast\n"
             "        points:\n"
             "          - {name: c, table: holding, address: 0, type: "
             "uint16}\n"
             "      - name: d\n"
             "        id: 2\n"
             "        timeout: 100ms\n"
             "        retries: 0\n"
             "        points:\n"
             "          - {name: a, table: holding, address: 0, type: uint16, "
             "poll: fast}\n"
             "          - {name: b, table: holding, address: 1, type: uint16, "
             "poll: slow}\n",
             (unsigned)port);
    struct gw_engine_opts opts = {
        .poll = true, .backoff_min_ms = 300, .backoff_max_ms = 600};
    static struct fgt_engine t;
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    static struct watch w;
    memset(&w, 0, sizeof(w));
    w.t = &t;
    size_t l, u, p;
    assert_int_equal(gw_store_find(t.cfg, "ok", &l, &w.ok, &p), GW_OK);
    assert_int_equal(gw_store_find(t.cfg, "d", &l, &w.d, &p), GW_OK);
    for (u = 0; u < t.cfg->links[0].n_units; u++)
        for (p = 0; p < t.cfg->links[0].units[u].n_points; p++)
            t.cfg->links[0].units[u].points[p].events =
                (struct cfg_event_rule){.enabled = true};
    assert_int_equal(gw_store_listen(&t.store, on_cycle, &w), GW_OK);
    assert_int_equal(
        gw_events_new(&t.loop, t.cfg, &t.store, &t.log, on_ready, &w, &w.ev),
        GW_OK);
    /* Both points read (the slow group's first cycle is staggered to half
     * its interval: an on-demand read reads b now). */
    assert_int_equal(fgt_engine_read(&t, "d", NULL), GW_OK);
    struct want good = {&w, GW_Q_OK, GW_Q_OK};
    assert_true(fgt_engine_run_until(&t, both_are, &good, 5000));
    /* Cycle ends: one per cycle of the fast group for each unit. */
    uint64_t c0 = w.cycles[0];
    fgt_engine_run_ms(&t, 1000);
    assert_in_range(w.cycles[0] - c0, 5, 12);
    assert_true(w.ok_events >= 1);
    /* d goes dead: a's cycle makes it timeout; once d is offline, b (whose
     * group does not run) is marked too: both are quality events. */
    signal_sim(&sim, SIGUSR2, "FAULTS on");
    struct want dead = {&w, GW_Q_TIMEOUT, GW_Q_TIMEOUT};
    assert_true(fgt_engine_run_until(&t, both_are, &dead, 5000));
    assert_int_equal(fgt_unit(&t, "d")->status, GW_UNIT_OFFLINE);
    /* In backoff, d's cycles are skipped: far fewer cycle ends than ok. */
    uint64_t d0 = w.cycles[1], o0 = w.cycles[0];
    fgt_engine_run_ms(&t, 1000);
    assert_true(w.cycles[1] - d0 < (w.cycles[0] - o0) / 2);
    /* Back: a returns with its next cycle; b with an on-demand read. */
    signal_sim(&sim, SIGUSR1, "FAULTS off");
    struct want a_back = {&w, GW_Q_OK, GW_Q_TIMEOUT};
    assert_true(fgt_engine_run_until(&t, both_are, &a_back, 5000));
    assert_int_equal(fgt_engine_read(&t, "d", NULL), GW_OK);
    assert_true(fgt_engine_run_until(&t, both_are, &good, 5000));
    /* Each change of d was published once: ok, timeout, ok. */
    assert_int_equal(w.n_seen[0], 3);
    assert_int_equal(w.n_seen[1], 3);
    struct gw_events_stats st;
    gw_events_get_stats(w.ev, &st);
    assert_int_equal(st.backlog, 0);
    gw_store_unlisten(&t.store, on_cycle, &w);
    gw_events_free(w.ev, NULL, NULL);
    assert_int_equal(fgt_engine_close(&t), 0);
    fgt_proc_stop(&sim, SIGTERM, 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_dead_and_back, fgt_teardown_procs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
