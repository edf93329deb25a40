/* test_engine_tcp.c - the polling engine against fieldgate-sim over Modbus
 * TCP: typed reads, exception-02 splitting and its memory, the
 * max-registers quirk (configured and learnt from exception 03), link drop
 * and reconnect, a dead unit beside healthy ones (same link and separate
 * links, count-based), overruns, writes with verify and refused writes
 * (checked with mbpoll, an independent client). */
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

#define YAML_MAX 16384

/* Formats a map; the caller frees nothing (static buffer per call site). */
static void fmt(char *buf, size_t cap, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, cap, f, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < cap);
}

static struct fgt_proc start_sim(uint16_t want, char *const extra[],
                                 uint16_t *port)
{
    struct fgt_proc sim;
    assert_int_equal(fgt_sim_start(&sim, want, extra, port), 0);
    return sim;
}

/* "STATS requests=N exceptions=E ..." of a sim started with --stats. */
static long sim_stat(struct fgt_proc *sim, const char *key)
{
    int st = fgt_proc_stop(sim, SIGTERM, 10000);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    const char *line = strstr(sim->out, "STATS ");
    assert_non_null(line);
    char pat[64];
    snprintf(pat, sizeof(pat), " %s=", key);
    const char *at = strstr(line, pat);
    assert_non_null(at);
    return strtol(at + strlen(pat), NULL, 10);
}

struct cycles_arg {
    size_t link;
    uint64_t n;
};

static bool cycles_reached(struct fgt_engine *t, void *arg)
{
    struct cycles_arg *c = arg;
    return gw_engine_cycles(t->eng, c->link) >= c->n;
}

static void run_cycles(struct fgt_engine *t, size_t link, uint64_t n)
{
    struct cycles_arg c = {link, n};
    assert_true(fgt_engine_run_until(t, cycles_reached, &c, 30000));
}

static float f32(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* ---- typed reads of the default contents ------------------------------ */

static void test_read_values(void **state)
{
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1-2", NULL};
    struct fgt_proc sim = start_sim(0, extra, &port);
    char yaml[YAML_MAX];
    fmt(yaml, sizeof(yaml),
        "poll_groups:\n"
        "  - {name: default, interval: 100ms}\n"
        "links:\n"
        "  - name: plant\n"
        "    type: tcp\n"
        "    host: 127.0.0.1\n"
        "    port: %u\n"
        "    units:\n"
        "      - name: m1\n"
        "        id: 1\n"
        "        points:\n"
        "          - {name: u16, table: holding, address: 10, type: uint16}\n"
        "          - {name: i32, table: holding, address: 20, type: int32, "
        "order: ABCD}\n"
        "          - {name: u32, table: holding, address: 30, type: uint32, "
        "order: CDAB}\n"
        "          - {name: f32, table: holding, address: 0, type: float32, "
        "order: ABCD}\n"
        "          - {name: b4, table: holding, address: 7, type: bit, bit: "
        "4}\n"
        "          - {name: b0, table: holding, address: 7, type: bit, bit: "
        "0}\n"
        "          - {name: scaled, table: input, address: 3, type: uint16, "
        "scale: 0.1}\n"
        "          - {name: c0, table: coil, address: 0, type: bool}\n"
        "          - {name: c1, table: coil, address: 1, type: bool}\n"
        "          - {name: d1, table: discrete, address: 1, type: bool}\n"
        "      - name: m2\n"
        "        id: 2\n"
        "        points:\n"
        "          - {name: i16, table: input, address: 3, type: int16}\n",
        port);
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    run_cycles(&t, 0, 3);

    const struct gw_point_state *p = fgt_point(&t, "m1.u16");
    assert_int_equal(p->quality, GW_Q_OK);
    assert_int_equal(p->value.kind, AD_VALUE_UINT);
    assert_int_equal(p->value.v.u, 1010);
    assert_int_equal(p->raw[0], 1010);
    p = fgt_point(&t, "m1.i32");
    assert_int_equal(p->value.v.i, (int64_t)(int32_t)((1020u << 16) | 1021u));
    p = fgt_point(&t, "m1.u32"); /* CDAB: low word first */
    assert_int_equal(p->value.v.u, (1031u << 16) | 1030u);
    p = fgt_point(&t, "m1.f32");
    assert_int_equal(p->value.kind, AD_VALUE_DOUBLE);
    assert_true(p->value.v.d == (double)f32((1000u << 16) | 1001u));
    /* 1007 = 0b1111101111: bit 0 set, bit 4 clear. */
    assert_int_equal(fgt_point(&t, "m1.b0")->value.v.b, true);
    assert_int_equal(fgt_point(&t, "m1.b4")->value.v.b, false);
    p = fgt_point(&t, "m1.scaled");
    assert_int_equal(p->value.kind, AD_VALUE_DOUBLE);
    assert_true(p->value.v.d > 100.29 && p->value.v.d < 100.31);
    assert_int_equal(fgt_point(&t, "m1.c0")->value.v.b, true);
    assert_int_equal(fgt_point(&t, "m1.c1")->value.v.b, false);
    assert_int_equal(fgt_point(&t, "m1.d1")->value.v.b, true);
    p = fgt_point(&t, "m2.i16");
    assert_int_equal(p->quality, GW_Q_OK);
    assert_int_equal(p->value.v.i, 2003);

    const struct gw_unit_state *u = fgt_unit(&t, "m1");
    assert_int_equal(u->status, GW_UNIT_ONLINE);
    assert_true(u->c.requests >= 3);
    assert_int_equal(u->c.errors, 0);
    assert_true(t.store.links[0].connected);
    assert_int_equal(fgt_engine_close(&t), 0);
    fgt_proc_stop(&sim, SIGTERM, 10000);
}

/* ---- exception 02: split, hole, memory -------------------------------- */

static void test_exception02_split_and_memory(void **state)
{
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1",       (char *)"--illegal",
                     (char *)"1:5",     (char *)"--stats", NULL};
    struct fgt_proc sim = start_sim(0, extra, &port);
    char yaml[YAML_MAX];
    fmt(yaml, sizeof(yaml),
        "poll_groups:\n"
        "  - {name: default, interval: 100ms}\n"
        "links:\n"
        "  - {name: plant, type: tcp, host: 127.0.0.1, port: %u,\n"
        "     units: [{name: m1, id: 1, points: [\n"
        "       {name: a, table: holding, address: 4, type: uint16},\n"
        "       {name: b, table: holding, address: 5, type: uint16},\n"
        "       {name: c, table: holding, address: 6, type: uint16}]}]}\n",
        port);
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    run_cycles(&t, 0, 8);
    assert_int_equal(fgt_point(&t, "m1.a")->quality, GW_Q_OK);
    assert_int_equal(fgt_point(&t, "m1.a")->value.v.u, 1004);
    assert_int_equal(fgt_point(&t, "m1.c")->quality, GW_Q_OK);
    assert_int_equal(fgt_point(&t, "m1.c")->value.v.u, 1006);
    const struct gw_point_state *b = fgt_point(&t, "m1.b");
    assert_int_equal(b->quality, GW_Q_EXCEPTION);
    assert_int_equal(b->exception, 2);
    assert_int_equal(b->value.kind, AD_VALUE_NONE);
    /* One exception for the coalesced block, one for b alone; the hole is
     * remembered, so seven more cycles add none. */
    const struct gw_unit_state *u = fgt_unit(&t, "m1");
    assert_int_equal(u->c.exceptions, 2);
    assert_int_equal(u->last_exception, 2);
    assert_int_equal(u->status, GW_UNIT_ONLINE);
    /* An on-demand read of the unit plans around the hole, and re-probes
     * the hole (b alone): still exception 02, reported by the read. */
    uint8_t exc = 0;
    assert_int_equal(fgt_engine_read(&t, "m1", &exc), GW_EMBEXC);
    assert_int_equal(exc, 2);
    assert_int_equal(u->c.exceptions, 3);
    assert_int_equal(b->quality, GW_Q_EXCEPTION);
    assert_int_equal(gw_engine_holes(t.eng, 0, 0), 1);
    assert_int_equal(fgt_engine_close(&t), 0);
    assert_int_equal(sim_stat(&sim, "exceptions"), 3);
}

/* ---- the max-registers quirk ------------------------------------------ */

static void max_regs_map(char *yaml, size_t cap, uint16_t port,
                         const char *unit_extra)
{
    char points[8192] = "";
    size_t used = 0;
    for (unsigned a = 0; a < 30; a++)
        used += (size_t)snprintf(points + used, sizeof(points) - used,
                                 "       {name: r%u, table: holding, address: "
                                 "%u, type: uint16},\n",
                                 a, a);
    fmt(yaml, cap,
        "poll_groups:\n"
        "  - {name: default, interval: 100ms}\n"
        "links:\n"
        "  - {name: plant, type: tcp, host: 127.0.0.1, port: %u,\n"
        "     units: [{name: m1, id: 1, %s points: [\n%s]}]}\n",
        port, unit_extra, points);
}

static void assert_all_regs(struct fgt_engine *t)
{
    for (unsigned a = 0; a < 30; a++) {
        char ref[32];
        snprintf(ref, sizeof(ref), "m1.r%u", a);
        const struct gw_point_state *p = fgt_point(t, ref);
        assert_int_equal(p->quality, GW_Q_OK);
        assert_int_equal(p->value.v.u, 1000 + a);
    }
}

static void test_max_regs_configured(void **state)
{
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1",       (char *)"--max-regs",
                     (char *)"1:10",    (char *)"--stats", NULL};
    struct fgt_proc sim = start_sim(0, extra, &port);
    char yaml[YAML_MAX];
    max_regs_map(yaml, sizeof(yaml), port, "max_registers: 10,");
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    run_cycles(&t, 0, 4);
    assert_all_regs(&t);
    const struct gw_unit_state *u = fgt_unit(&t, "m1");
    assert_int_equal(u->c.exceptions, 0);
    /* Three requests of 10 a cycle. */
    uint64_t cycles = gw_engine_cycles(t.eng, 0);
    assert_true(u->c.requests >= 3 * cycles && u->c.requests <= 3 * cycles + 3);
    assert_int_equal(fgt_engine_close(&t), 0);
    assert_int_equal(sim_stat(&sim, "exceptions"), 0);
}

static void test_max_regs_learned(void **state)
{
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1",       (char *)"--max-regs",
                     (char *)"1:10",    (char *)"--stats", NULL};
    struct fgt_proc sim = start_sim(0, extra, &port);
    char yaml[YAML_MAX];
    max_regs_map(yaml, sizeof(yaml), port, "");
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    run_cycles(&t, 0, 4);
    const struct gw_unit_state *u = fgt_unit(&t, "m1");
    uint64_t learnt = u->c.exceptions;
    /* 30 -> 15 -> 7 registers: at most a few refusals while learning. */
    assert_true(learnt >= 1 && learnt <= 3);
    assert_int_equal(u->last_exception, 3);
    run_cycles(&t, 0, 10);
    assert_int_equal(u->c.exceptions, learnt); /* learnt: no more 03 */
    assert_all_regs(&t);
    assert_int_equal(u->status, GW_UNIT_ONLINE);
    assert_int_equal(fgt_engine_close(&t), 0);
    assert_int_equal(sim_stat(&sim, "exceptions"), (long)learnt);
}

/* ---- link drop and reconnect ------------------------------------------ */

static bool point_is(struct fgt_engine *t, void *arg)
{
    const struct gw_point_state *p = fgt_point(t, "m1.a");
    return p->quality == *(enum gw_quality *)arg;
}

static void test_reconnect(void **state)
{
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1", NULL};
    struct fgt_proc sim = start_sim(0, extra, &port);
    char yaml[YAML_MAX];
    fmt(yaml, sizeof(yaml),
        "poll_groups:\n"
        "  - {name: default, interval: 100ms}\n"
        "links:\n"
        "  - {name: plant, type: tcp, host: 127.0.0.1, port: %u, timeout: "
        "300ms,\n"
        "     units: [{name: m1, id: 1, points: [\n"
        "       {name: a, table: holding, address: 4, type: uint16}]}]}\n",
        port);
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    enum gw_quality want = GW_Q_OK;
    assert_true(fgt_engine_run_until(&t, point_is, &want, 10000));
    uint64_t before = t.store.links[0].c.requests;

    /* The device vanishes: the link goes down, the point says so and the
     * unit shows offline. */
    fgt_proc_stop(&sim, SIGKILL, 5000);
    want = GW_Q_DISCONNECTED;
    assert_true(fgt_engine_run_until(&t, point_is, &want, 10000));
    assert_false(t.store.links[0].connected);
    assert_int_equal(fgt_unit(&t, "m1")->status, GW_UNIT_OFFLINE);
    assert_int_equal(fgt_point(&t, "m1.a")->value.v.u, 1004); /* kept */
    fgt_engine_run_ms(&t, 1500); /* a few reconnect attempts fail */

    /* It comes back on the same port: polling resumes by itself. */
    uint16_t again;
    sim = start_sim(port, extra, &again);
    assert_int_equal(again, port);
    want = GW_Q_OK;
    assert_true(fgt_engine_run_until(&t, point_is, &want, 20000));
    assert_true(t.store.links[0].connected);
    assert_true(t.store.links[0].c.requests > before);
    fgt_engine_run_ms(&t, 300);
    assert_int_equal(fgt_unit(&t, "m1")->status, GW_UNIT_ONLINE);
    assert_int_equal(fgt_engine_close(&t), 0);
    fgt_proc_stop(&sim, SIGTERM, 10000);
}

/* ---- a dead unit beside healthy units --------------------------------- */

#define WINDOW_MS 4000

/* Polls h1 and h2 (unit 1 and 2, ten registers each) for WINDOW_MS of loop
 * time, with the dead unit 5 placed as `dead` says, and returns their
 * request counts. */
enum dead_place { DEAD_NONE, DEAD_SAME_LINK, DEAD_OTHER_LINK };

static void healthy_counts(uint16_t port, enum dead_place dead,
                           uint32_t dead_timeout_ms, uint64_t out[2],
                           uint64_t *dead_timeouts)
{
    char healthy[2048] = "";
    size_t used = 0;
    for (unsigned id = 1; id <= 2; id++)
        used += (size_t)snprintf(
            healthy + used, sizeof(healthy) - used,
            "       {name: h%u, id: %u, points: [\n"
            "         {name: a, table: holding, address: 0, type: uint16},\n"
            "         {name: b, table: holding, address: 9, type: uint16}]},\n",
            id, id);
    char dead_unit[512];
    snprintf(dead_unit, sizeof(dead_unit),
             "       {name: dead, id: 5, timeout: %ums, retries: 0, "
             "points: [\n"
             "         {name: a, table: holding, address: 0, type: "
             "uint16}]},\n",
             (unsigned)dead_timeout_ms);
    char yaml[YAML_MAX];
    char other[1024] = "";
    if (dead == DEAD_OTHER_LINK)
        snprintf(other, sizeof(other),
                 "  - {name: other, type: tcp, host: 127.0.0.1, port: %u,\n"
                 "     units: [\n%s]}\n",
                 port, dead_unit);
    fmt(yaml, sizeof(yaml),
        "poll_groups:\n"
        "  - {name: default, interval: 100ms}\n"
        "links:\n"
        "  - {name: plant, type: tcp, host: 127.0.0.1, port: %u,\n"
        "     units: [\n%s%s]}\n%s",
        port, healthy, dead == DEAD_SAME_LINK ? dead_unit : "", other);
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    fgt_engine_run_ms(&t, WINDOW_MS);
    out[0] = fgt_unit(&t, "h1")->c.requests;
    out[1] = fgt_unit(&t, "h2")->c.requests;
    assert_int_equal(fgt_unit(&t, "h1")->c.errors, 0);
    assert_int_equal(fgt_unit(&t, "h2")->c.errors, 0);
    if (dead != DEAD_NONE) {
        const struct gw_unit_state *d = fgt_unit(&t, "dead");
        *dead_timeouts = d->c.timeouts;
        assert_int_equal(d->status, GW_UNIT_OFFLINE);
        assert_int_equal(fgt_point(&t, "dead.a")->quality, GW_Q_TIMEOUT);
    }
    assert_int_equal(fgt_engine_close(&t), 0);
}

static void assert_within_10pct(uint64_t got, uint64_t base)
{
    print_message("healthy requests: %llu (baseline %llu)\n",
                  (unsigned long long)got, (unsigned long long)base);
    assert_true(base >= 10);
    assert_true(got * 10 >= base * 9 && got * 10 <= base * 11);
}

static void test_dead_unit(void **state)
{
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1-5", (char *)"--dead",
                     (char *)"5", NULL};
    struct fgt_proc sim = start_sim(0, extra, &port);
    uint64_t base[2], same[2], other[2], dead_to = 0;
    healthy_counts(port, DEAD_NONE, 0, base, NULL);

    /* Same link: a 40 ms timeout a cycle (of a 100 ms interval) until the
     * unit is offline after 3 failed cycles, then one probe per backoff
     * (2 s, then 4 s). */
    healthy_counts(port, DEAD_SAME_LINK, 40, same, &dead_to);
    assert_within_10pct(same[0], base[0]);
    assert_within_10pct(same[1], base[1]);
    print_message("dead unit timeouts, same link: %llu\n",
                  (unsigned long long)dead_to);
    assert_true(dead_to >= 3 && dead_to <= 3 + WINDOW_MS / 2000);

    /* Separate link: even a timeout far above the interval costs the
     * healthy link nothing. */
    healthy_counts(port, DEAD_OTHER_LINK, 1000, other, &dead_to);
    assert_within_10pct(other[0], base[0]);
    assert_within_10pct(other[1], base[1]);
    assert_true(dead_to >= 1 && dead_to <= 4);
    fgt_proc_stop(&sim, SIGTERM, 10000);
}

/* ---- overruns --------------------------------------------------------- */

static void test_overrun_counted(void **state)
{
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1", (char *)"--slow",
                     (char *)"1:250ms", NULL};
    struct fgt_proc sim = start_sim(0, extra, &port);
    char yaml[YAML_MAX];
    fmt(yaml, sizeof(yaml),
        "poll_groups:\n"
        "  - {name: default, interval: 100ms}\n"
        "links:\n"
        "  - {name: plant, type: tcp, host: 127.0.0.1, port: %u, timeout: 2s,\n"
        "     units: [{name: m1, id: 1, points: [\n"
        "       {name: a, table: holding, address: 4, type: uint16}]}]}\n",
        port);
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    run_cycles(&t, 0, 3);
    /* A cycle takes 250 ms of a 100 ms interval: ticks are skipped (and
     * counted), never stacked: one request a cycle. */
    assert_true(t.store.links[0].overruns >= 2);
    const struct gw_unit_state *u = fgt_unit(&t, "m1");
    assert_true(u->c.requests <= gw_engine_cycles(t.eng, 0) + 1);
    assert_int_equal(u->c.errors, 0);
    assert_int_equal(fgt_point(&t, "m1.a")->value.v.u, 1004);
    assert_int_equal(fgt_engine_close(&t), 0);
    fgt_proc_stop(&sim, SIGTERM, 10000);
}

/* ---- writes ----------------------------------------------------------- */

static void test_writes(void **state)
{
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1", NULL};
    struct fgt_proc sim = start_sim(0, extra, &port);
    char yaml[YAML_MAX];
    fmt(yaml, sizeof(yaml),
        "poll_groups:\n"
        "  - {name: default, interval: 1s}\n"
        "links:\n"
        "  - {name: plant, type: tcp, host: 127.0.0.1, port: %u,\n"
        "     units: [{name: m1, id: 1, points: [\n"
        "       {name: sp, table: holding, address: 10, type: uint16, "
        "writable: true, max: 5000},\n"
        "       {name: f, table: holding, address: 20, type: float32, "
        "order: ABCD, writable: true},\n"
        "       {name: i, table: holding, address: 24, type: int32, "
        "order: CDAB, writable: true, write_fc: 16},\n"
        "       {name: ro, table: holding, address: 30, type: uint16},\n"
        "       {name: inp, table: input, address: 30, type: uint16},\n"
        "       {name: flag, table: holding, address: 40, type: bit, bit: 3, "
        "writable: true},\n"
        "       {name: c0, table: coil, address: 0, type: bool, writable: "
        "true}]}]}\n",
        port);
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = false};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    long v[2];

    assert_int_equal(fgt_engine_write(&t, "m1.sp", "4321", true, NULL), GW_OK);
    assert_int_equal(fgt_mbpoll_read(port, 1, '4', 10, 1, v), 0);
    assert_int_equal(v[0], 4321);
    /* The store was refreshed from the device after the write. */
    fgt_engine_run_ms(&t, 100);
    assert_int_equal(fgt_point(&t, "m1.sp")->value.v.u, 4321);

    assert_int_equal(fgt_engine_write(&t, "m1.f", "12.5", true, NULL), GW_OK);
    assert_int_equal(fgt_mbpoll_read(port, 1, '4', 20, 2, v), 0);
    assert_int_equal(v[0], 0x4148); /* 12.5f = 0x41480000 */
    assert_int_equal(v[1], 0x0000);

    assert_int_equal(fgt_engine_write(&t, "m1.i", "-2", false, NULL), GW_OK);
    assert_int_equal(fgt_mbpoll_read(port, 1, '4', 24, 2, v), 0);
    assert_int_equal(v[0], 0xfffe); /* CDAB: low word first */
    assert_int_equal(v[1], 0xffff);

    /* Bit 3 of 1040 (0b10000010000) is clear: setting it gives 1048 and
     * keeps the other bits. */
    assert_int_equal(fgt_engine_write(&t, "m1.flag", "true", true, NULL),
                     GW_OK);
    assert_int_equal(fgt_mbpoll_read(port, 1, '4', 40, 1, v), 0);
    assert_int_equal(v[0], 1048);

    assert_int_equal(fgt_engine_write(&t, "m1.c0", "off", true, NULL), GW_OK);
    assert_int_equal(fgt_mbpoll_read(port, 1, '0', 0, 1, v), 0);
    assert_int_equal(v[0], 0);

    /* Refusals happen before any bus traffic. */
    uint64_t requests = t.store.links[0].c.requests;
    assert_int_equal(fgt_engine_write(&t, "m1.ro", "1", false, NULL),
                     GW_EREADONLY);
    assert_int_equal(fgt_engine_write(&t, "m1.inp", "1", false, NULL),
                     GW_EREADONLY);
    assert_int_equal(fgt_engine_write(&t, "m1.sp", "6000", false, NULL),
                     GW_ERANGE);
    assert_int_equal(fgt_engine_write(&t, "m1.sp", "-1", false, NULL),
                     GW_ERANGE);
    assert_int_equal(fgt_engine_write(&t, "m1.sp", "many", false, NULL),
                     GW_EPARSE);
    fgt_engine_run_ms(&t, 100);
    assert_int_equal(t.store.links[0].c.requests, requests);
    assert_int_equal(fgt_mbpoll_read(port, 1, '4', 10, 1, v), 0);
    assert_int_equal(v[0], 4321);
    assert_int_equal(fgt_mbpoll_read(port, 1, '4', 30, 1, v), 0);
    assert_int_equal(v[0], 1030);
    assert_int_equal(fgt_engine_close(&t), 0);
    fgt_proc_stop(&sim, SIGTERM, 10000);
}

/* A write of a register the device refuses (exception 02) reports the
 * exception; nothing else changes. */
static void test_write_exception(void **state)
{
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1", (char *)"--illegal",
                     (char *)"1:50", NULL};
    struct fgt_proc sim = start_sim(0, extra, &port);
    char yaml[YAML_MAX];
    fmt(yaml, sizeof(yaml),
        "links:\n"
        "  - {name: plant, type: tcp, host: 127.0.0.1, port: %u,\n"
        "     units: [{name: m1, id: 1, points: [\n"
        "       {name: x, table: holding, address: 50, type: uint16, "
        "writable: true}]}]}\n",
        port);
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = false};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    uint8_t exc = 0;
    assert_int_equal(fgt_engine_write(&t, "m1.x", "7", false, &exc), GW_EMBEXC);
    assert_int_equal(exc, 2);
    assert_int_equal(fgt_engine_close(&t), 0);
    fgt_proc_stop(&sim, SIGTERM, 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_read_values, fgt_teardown_procs),
        cmocka_unit_test_teardown(test_exception02_split_and_memory,
                                  fgt_teardown_procs),
        cmocka_unit_test_teardown(test_max_regs_configured, fgt_teardown_procs),
        cmocka_unit_test_teardown(test_max_regs_learned, fgt_teardown_procs),
        cmocka_unit_test_teardown(test_reconnect, fgt_teardown_procs),
        cmocka_unit_test_teardown(test_dead_unit, fgt_teardown_procs),
        cmocka_unit_test_teardown(test_overrun_counted, fgt_teardown_procs),
        cmocka_unit_test_teardown(test_writes, fgt_teardown_procs),
        cmocka_unit_test_teardown(test_write_exception, fgt_teardown_procs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
