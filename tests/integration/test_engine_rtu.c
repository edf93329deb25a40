/* test_engine_rtu.c - the polling engine over Modbus RTU: fieldgate-sim
 * serves one end of a socat pty pair, the engine's link the other (19200
 * 8E1).  Reads, exception-02 splitting, a write with verify, a dead unit
 * on the shared line (bounded cost, visible in the counters), and the
 * clear error of RS-485 mode on a port that cannot do it. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fgt_engine.h"
#include "fgt_proc.h"
#include "gw_err.h"

#define YAML_MAX 8192

struct rig {
    char dir[256];
    char a[300], b[300];
    struct fgt_proc socat;
    struct fgt_proc sim;
};

/* A pty pair and fieldgate-sim on its "a" end with extra flags. */
static void rig_open(struct rig *r, const char *sim_flags[])
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(fgt_tmpdir(r->dir, sizeof(r->dir)), 0);
    assert_int_equal(fgt_pty_pair(&r->socat, r->dir, r->a, r->b, sizeof(r->a)),
                     0);
    char rtu[400];
    snprintf(rtu, sizeof(rtu), "%s:19200:E:8:1", r->a);
    char sim[512];
    fgt_build_path("fieldgate-sim", sim, sizeof(sim));
    char *argv[32];
    size_t n = 0;
    argv[n++] = sim;
    argv[n++] = (char *)"--rtu";
    argv[n++] = rtu;
    for (size_t i = 0; sim_flags[i] && n < 30; i++)
        argv[n++] = (char *)(uintptr_t)sim_flags[i];
    argv[n] = NULL;
    assert_int_equal(fgt_proc_start(&r->sim, argv), 0);
    assert_int_equal(fgt_proc_wait_line(&r->sim, "READY", 15000), 0);
}

static void rig_close(struct rig *r)
{
    fgt_proc_stop(&r->sim, SIGTERM, 10000);
    fgt_proc_stop(&r->socat, SIGTERM, 10000);
    fgt_rmtree(r->dir);
}

static void map(char *yaml, size_t cap, const struct rig *r,
                const char *link_extra, const char *units)
{
    int n =
        snprintf(yaml, cap,
                 "poll_groups:\n"
                 "  - {name: default, interval: 200ms}\n"
                 "links:\n"
                 "  - {name: line, type: rtu, device: \"%s\", baud: 19200,\n"
                 "     parity: even, %s\n"
                 "     units: [\n%s]}\n",
                 r->b, link_extra, units);
    assert_true(n > 0 && (size_t)n < cap);
}

struct cycles_arg {
    uint64_t n;
};

static bool cycles_reached(struct fgt_engine *t, void *arg)
{
    return gw_engine_cycles(t->eng, 0) >= ((struct cycles_arg *)arg)->n;
}

static void test_rtu_reads_split_write(void **state)
{
    struct rig r;
    const char *flags[] = {"--units", "1-2", "--illegal", "2:5", NULL};
    rig_open(&r, flags);
    char yaml[YAML_MAX];
    map(yaml, sizeof(yaml), &r, "timeout: 300ms,",
        "       {name: m1, id: 1, points: [\n"
        "         {name: u16, table: holding, address: 10, type: uint16,\n"
        "          writable: true},\n"
        "         {name: u32, table: input, address: 20, type: uint32, "
        "order: ABCD},\n"
        "         {name: c1, table: coil, address: 1, type: bool}]},\n"
        "       {name: m2, id: 2, points: [\n"
        "         {name: a, table: holding, address: 4, type: uint16},\n"
        "         {name: b, table: holding, address: 5, type: uint16},\n"
        "         {name: c, table: holding, address: 6, type: uint16}]},\n");
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    struct cycles_arg c = {6};
    assert_true(fgt_engine_run_until(&t, cycles_reached, &c, 30000));
    assert_int_equal(fgt_point(&t, "m1.u16")->value.v.u, 1010);
    assert_int_equal(fgt_point(&t, "m1.u32")->value.v.u, (1020u << 16) | 1021u);
    assert_int_equal(fgt_point(&t, "m1.c1")->quality, GW_Q_OK);
    assert_int_equal(fgt_point(&t, "m1.c1")->value.v.b, false);
    assert_int_equal(fgt_point(&t, "m2.a")->value.v.u, 2004);
    assert_int_equal(fgt_point(&t, "m2.c")->value.v.u, 2006);
    assert_int_equal(fgt_point(&t, "m2.b")->quality, GW_Q_EXCEPTION);
    assert_int_equal(fgt_point(&t, "m2.b")->exception, 2);
    /* Block and point once each; the hole holds over later cycles. */
    assert_int_equal(fgt_unit(&t, "m2")->c.exceptions, 2);
    assert_int_equal(fgt_unit(&t, "m1")->c.errors, 0);

    assert_int_equal(fgt_engine_write(&t, "m1.u16", "777", true, NULL), GW_OK);
    assert_int_equal(fgt_engine_read(&t, "m1", NULL), GW_OK);
    assert_int_equal(fgt_point(&t, "m1.u16")->value.v.u, 777);
    assert_int_equal(fgt_engine_close(&t), 0);
    rig_close(&r);
}

static void test_rtu_dead_unit_bounded(void **state)
{
    struct rig r;
    const char *flags[] = {"--units", "1,3", "--dead", "3", NULL};
    rig_open(&r, flags);
    char yaml[YAML_MAX];
    map(yaml, sizeof(yaml), &r, "",
        "       {name: ok, id: 1, points: [\n"
        "         {name: a, table: holding, address: 0, type: uint16}]},\n"
        "       {name: dead, id: 3, timeout: 80ms, retries: 1, points: [\n"
        "         {name: a, table: holding, address: 0, type: uint16}]},\n");
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    fgt_engine_run_ms(&t, 4000);
    const struct gw_unit_state *ok = fgt_unit(&t, "ok");
    const struct gw_unit_state *dead = fgt_unit(&t, "dead");
    uint64_t cycles = gw_engine_cycles(t.eng, 0);
    print_message("cycles %llu, healthy requests %llu, dead timeouts %llu, "
                  "overruns %llu\n",
                  (unsigned long long)cycles,
                  (unsigned long long)ok->c.requests,
                  (unsigned long long)dead->c.timeouts,
                  (unsigned long long)t.store.links[0].overruns);
    /* The healthy unit answered every cycle. */
    assert_int_equal(ok->c.errors, 0);
    assert_int_equal(ok->c.requests, cycles);
    assert_int_equal(ok->status, GW_UNIT_ONLINE);
    /* The dead one: 3 failed cycles, then one probe per backoff (2 s, 4 s)
     * within 4 s; each failed request is a timeout plus one retry. */
    assert_int_equal(dead->status, GW_UNIT_OFFLINE);
    assert_true(dead->c.timeouts >= 3 && dead->c.timeouts <= 3 + 2);
    assert_int_equal(dead->c.errors, dead->c.timeouts);
    assert_int_equal(fgt_point(&t, "dead.a")->quality, GW_Q_TIMEOUT);
    /* Its cost (2 x 80 ms a failed cycle) stays below the interval: no
     * cycle of the line overran. */
    assert_int_equal(t.store.links[0].overruns, 0);
    assert_int_equal(fgt_engine_close(&t), 0);
    rig_close(&r);
}

static void test_rtu_rs485_refused(void **state)
{
    struct rig r;
    const char *flags[] = {"--units", "1", NULL};
    rig_open(&r, flags);
    char yaml[YAML_MAX];
    map(yaml, sizeof(yaml), &r, "rs485: true,",
        "       {name: m1, id: 1, points: [\n"
        "         {name: a, table: holding, address: 0, type: uint16}]},\n");
    char logpath[400];
    snprintf(logpath, sizeof(logpath), "%s/log", r.dir);
    FILE *log = fopen(logpath, "w+");
    assert_non_null(log);
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = false};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, log), 0);
    /* A pty has no RS-485 mode: the link never comes up, with a clear
     * error naming the port. */
    assert_int_equal(fgt_engine_read(&t, "m1", NULL), GW_EDISCONNECTED);
    assert_int_equal(fgt_point(&t, "m1.a")->quality, GW_Q_DISCONNECTED);
    assert_int_equal(fgt_engine_close(&t), 0);
    fflush(log);
    rewind(log);
    char text[4096];
    size_t n = fread(text, 1, sizeof(text) - 1, log);
    text[n] = '\0';
    fclose(log);
    print_message("%s", text);
    assert_non_null(strstr(text, "cannot switch to RS-485 mode"));
    assert_non_null(strstr(text, r.b));
    rig_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_rtu_reads_split_write,
                                  fgt_teardown_procs),
        cmocka_unit_test_teardown(test_rtu_dead_unit_bounded,
                                  fgt_teardown_procs),
        cmocka_unit_test_teardown(test_rtu_rs485_refused, fgt_teardown_procs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
