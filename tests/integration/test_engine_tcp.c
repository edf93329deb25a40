/* test_engine_tcp.c - the polling engine against fieldgate-sim over Modbus
 * TCP: typed reads, exception-02 splitting and its memory, the
 * max-registers quirk (configured and learnt from exception 03), link drop
 * and reconnect, a dead unit beside healthy ones (same link and separate
 * links, count-based), overruns, writes with verify and refused writes
 * (checked with mbpoll, an independent client); a probe that meets a link
 * outage, reads of a unit in backoff, holes re-probed and healed (with the
 * sim's fault switches). */
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

/* ---- backoff: the stuck probe, reads of a unit in backoff ------------ */

/* m1 (healthy) and m2 (a 300 ms timeout, no retries) on one link. */
static void two_units_map(char *yaml, size_t cap, uint16_t port)
{
    fmt(yaml, cap,
        "poll_groups:\n"
        "  - {name: default, interval: 100ms}\n"
        "links:\n"
        "  - {name: plant, type: tcp, host: 127.0.0.1, port: %u, timeout: "
        "300ms,\n"
        "     units: [\n"
        "       {name: m1, id: 1, points: [\n"
        "         {name: a, table: holding, address: 4, type: uint16}]},\n"
        "       {name: m2, id: 2, timeout: 300ms, retries: 0, points: [\n"
        "         {name: a, table: holding, address: 4, type: uint16}]}]}\n",
        port);
}

struct unit_arg {
    const char *unit;
    enum gw_unit_status status;
};

static bool unit_is(struct fgt_engine *t, void *arg)
{
    const struct unit_arg *a = arg;
    return fgt_unit(t, a->unit)->status == a->status;
}

static bool m2_probe_out(struct fgt_engine *t, void *arg)
{
    (void)arg;
    return gw_engine_probe_pending(t->eng, 0, 1);
}

static bool m2_probe_over(struct fgt_engine *t, void *arg)
{
    (void)arg;
    return !gw_engine_probe_pending(t->eng, 0, 1);
}

/* The stuck probe (issue 8, defect 3): m2 is dead (sim fault switch) and
 * goes to backoff; the sim is killed while m2's probe is out, so the probe
 * meets the link outage; the sim comes back with m2 answering: m2 must be
 * back online within the backoff maximum (it used to stay offline for
 * good, its probe never cleared).  A healthy unit that went offline only
 * because the link dropped names the link as the cause. */
static void test_probe_survives_link_outage(void **state)
{
    (void)state;
    uint16_t port;
    char *dead[] = {(char *)"--units", (char *)"1-2", (char *)"--dead",
                    (char *)"2", NULL};
    struct fgt_proc sim = start_sim(0, dead, &port);
    char yaml[YAML_MAX];
    two_units_map(yaml, sizeof(yaml), port);
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true,
                                  .fail_cycles = 1,
                                  .backoff_min_ms = 200,
                                  .backoff_max_ms = 800};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    struct unit_arg m2_off = {"m2", GW_UNIT_OFFLINE};
    assert_true(fgt_engine_run_until(&t, unit_is, &m2_off, 10000));
    assert_true(gw_engine_unit_in_backoff(t.eng, 0, 1));
    assert_int_equal(fgt_unit(&t, "m2")->last_err, GW_ETIMEOUT);

    /* Kill the sim while m2's probe waits for its (never coming) answer. */
    assert_true(fgt_engine_run_until(&t, m2_probe_out, NULL, 10000));
    assert_true(fgt_proc_stop(&sim, SIGKILL, 5000) >= 0);
    /* The probe's outcome (link down) ends it. */
    assert_true(fgt_engine_run_until(&t, m2_probe_over, NULL, 5000));
    struct unit_arg m1_off = {"m1", GW_UNIT_OFFLINE};
    assert_true(fgt_engine_run_until(&t, unit_is, &m1_off, 5000));
    assert_int_equal(fgt_unit(&t, "m1")->last_err, GW_EDISCONNECTED);
    /* More probes meet the outage while the link is down. */
    fgt_engine_run_ms(&t, 600);
    assert_int_equal(fgt_unit(&t, "m2")->status, GW_UNIT_OFFLINE);

    /* Back on the same port, m2 healthy: online within the backoff
     * maximum plus the link's reconnect delay (250 ms, 500 ms, 1 s, each
     * +20%) and a cycle. */
    char *alive[] = {(char *)"--units", (char *)"1-2", NULL};
    uint16_t again;
    sim = start_sim(port, alive, &again);
    assert_int_equal(again, port);
    int64_t t0 = fgt_mono_ms();
    struct unit_arg m2_on = {"m2", GW_UNIT_ONLINE};
    assert_true(fgt_engine_run_until(&t, unit_is, &m2_on, 5000));
    print_message("m2 back online %lld ms after the sim came back\n",
                  (long long)(fgt_mono_ms() - t0));
    assert_false(gw_engine_unit_in_backoff(t.eng, 0, 1));
    assert_int_equal(fgt_point(&t, "m2.a")->quality, GW_Q_OK);
    assert_int_equal(fgt_point(&t, "m2.a")->value.v.u, 2004);
    assert_int_equal(fgt_unit(&t, "m1")->status, GW_UNIT_ONLINE);
    assert_int_equal(fgt_engine_close(&t), 0);
    fgt_proc_stop(&sim, SIGTERM, 10000);
}

static bool m2_resting(struct fgt_engine *t, void *arg)
{
    (void)arg;
    return gw_engine_unit_in_backoff(t->eng, 0, 1);
}

/* Reads of a unit in backoff are answered from the store: the unit's last
 * error at once, with nothing sent, so a reader cannot keep the link busy
 * with one timeout a read.  Counted at the sim: every request for unit 2
 * that reached it is one the engine counted. */
static void test_read_in_backoff_from_store(void **state)
{
    (void)state;
    uint16_t port;
    char *dead[] = {(char *)"--units", (char *)"1-2",     (char *)"--dead",
                    (char *)"2",       (char *)"--stats", NULL};
    struct fgt_proc sim = start_sim(0, dead, &port);
    char yaml[YAML_MAX];
    two_units_map(yaml, sizeof(yaml), port);
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true,
                                  .fail_cycles = 1,
                                  .backoff_min_ms = 30000,
                                  .backoff_max_ms = 30000};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    struct unit_arg m2_off = {"m2", GW_UNIT_OFFLINE};
    assert_true(fgt_engine_run_until(&t, unit_is, &m2_off, 10000));
    const struct gw_unit_state *m2 = fgt_unit(&t, "m2");
    uint64_t before = m2->c.requests;
    assert_true(before >= 1);

    int64_t t0 = fgt_mono_ms();
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fgt_engine_read(&t, "m2", NULL), GW_ETIMEOUT);
        assert_int_equal(fgt_engine_read(&t, "m2.a", NULL), GW_ETIMEOUT);
    }
    int64_t spent = fgt_mono_ms() - t0;
    print_message("10 reads of a unit in backoff: %lld ms\n", (long long)spent);
    assert_true(spent < 300); /* one timeout would be 300 ms */
    assert_int_equal(m2->c.requests, before);
    assert_int_equal(m2->last_err, GW_ETIMEOUT);
    /* The healthy unit on the same link is still read from the bus. */
    assert_int_equal(fgt_engine_read(&t, "m1", NULL), GW_OK);
    /* resetBackoff: the next read goes to the bus again (and times out). */
    gw_engine_reset_backoff(t.eng, 0, 1);
    assert_int_equal(fgt_engine_read(&t, "m2", NULL), GW_ETIMEOUT);
    assert_true(m2->c.requests > before);
    /* A cycle finds m2 dead again and puts it back in backoff; from then
     * on nothing more is sent to it. */
    assert_true(fgt_engine_run_until(&t, m2_resting, NULL, 5000));
    fgt_engine_run_ms(&t, 300);
    uint64_t counted = m2->c.requests;
    assert_int_equal(fgt_engine_close(&t), 0);
    assert_int_equal(sim_stat(&sim, "unit2"), (long)counted);
}

/* ---- holes: re-probed, healed ----------------------------------------- */

static void hole_map(char *yaml, size_t cap, uint16_t port)
{
    fmt(yaml, cap,
        "poll_groups:\n"
        "  - {name: default, interval: 100ms}\n"
        "links:\n"
        "  - {name: plant, type: tcp, host: 127.0.0.1, port: %u,\n"
        "     units: [{name: m1, id: 1, points: [\n"
        "       {name: a, table: holding, address: 4, type: uint16},\n"
        "       {name: b, table: holding, address: 5, type: uint16},\n"
        "       {name: c, table: holding, address: 6, type: uint16}]}]}\n",
        port);
}

static bool b_in_hole(struct fgt_engine *t, void *arg)
{
    (void)arg;
    const struct gw_point_state *b = fgt_point(t, "m1.b");
    return gw_engine_holes(t->eng, 0, 0) == 1 && b->quality == GW_Q_EXCEPTION &&
           b->exception == 2;
}

static bool b_good(struct fgt_engine *t, void *arg)
{
    (void)arg;
    const struct gw_point_state *b = fgt_point(t, "m1.b");
    return gw_engine_holes(t->eng, 0, 0) == 0 && b->quality == GW_Q_OK &&
           b->value.v.u == 1005;
}

static void sim_faults(struct fgt_proc *sim, bool on)
{
    assert_int_equal(kill(sim->pid, on ? SIGUSR2 : SIGUSR1), 0);
    assert_int_equal(
        fgt_proc_wait_line(sim, on ? "FAULTS on" : "FAULTS off", 5000), 0);
}

/* A point in a hole is reported as such (exception 02 in the store, kept
 * current by the cycles, never silently dropped); once the device is
 * fixed the hole's scheduled re-probe finds it and it is polled again. */
static void test_hole_healed_by_reprobe(void **state)
{
    (void)state;
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1", (char *)"--illegal",
                     (char *)"1:5", NULL};
    struct fgt_proc sim = start_sim(0, extra, &port);
    char yaml[YAML_MAX];
    hole_map(yaml, sizeof(yaml), port);
    struct fgt_engine t;
    struct gw_engine_opts opts = {
        .poll = true, .hole_retry_min_ms = 400, .hole_retry_max_ms = 1600};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    assert_true(fgt_engine_run_until(&t, b_in_hole, NULL, 10000));
    const struct gw_point_state *b = fgt_point(&t, "m1.b");
    assert_int_equal(b->err, GW_EMBEXC);
    char text[96];
    assert_string_equal(
        gw_store_err_text(b->err, b->exception, text, sizeof(text)),
        "Modbus exception 02 illegal data address");
    /* Re-probes while the fault lasts: still a hole, at 0.4, 0.8, 1.6,
     * 1.6 s intervals (a handful of exceptions, not one a cycle), and the
     * point's state stays current. */
    const struct gw_unit_state *u = fgt_unit(&t, "m1");
    uint64_t exc0 = u->c.exceptions;
    fgt_engine_run_ms(&t, 3000);
    assert_true(b_in_hole(&t, NULL));
    uint64_t reprobes = u->c.exceptions - exc0;
    print_message("re-probes in 3 s: %llu\n", (unsigned long long)reprobes);
    assert_true(reprobes >= 2 && reprobes <= 4);
    assert_true(gw_now_ms() - b->attempt_ms < 1000);
    assert_int_equal(fgt_point(&t, "m1.a")->quality, GW_Q_OK);
    assert_int_equal(fgt_point(&t, "m1.c")->quality, GW_Q_OK);

    /* The device is fixed: within the longest interval the hole is
     * re-probed, found healed and polled again. */
    sim_faults(&sim, false);
    assert_true(fgt_engine_run_until(&t, b_good, NULL, 1600 + 1000));
    fgt_engine_run_ms(&t, 300);
    assert_true(b_good(&t, NULL));
    assert_int_equal(fgt_engine_close(&t), 0);
    fgt_proc_stop(&sim, SIGTERM, 10000);
}

/* With the default schedule (first re-probe after a minute), an on-demand
 * read (readNow) and resetBackoff re-probe a hole at once. */
static void test_hole_healed_on_demand(void **state)
{
    (void)state;
    uint16_t port;
    char *extra[] = {(char *)"--units", (char *)"1", (char *)"--illegal",
                     (char *)"1:5", NULL};
    struct fgt_proc sim = start_sim(0, extra, &port);
    char yaml[YAML_MAX];
    hole_map(yaml, sizeof(yaml), port);
    struct fgt_engine t;
    struct gw_engine_opts opts = {.poll = true};
    assert_int_equal(fgt_engine_open(&t, yaml, &opts, NULL), 0);
    assert_true(fgt_engine_run_until(&t, b_in_hole, NULL, 10000));
    /* While the fault lasts, a read reports the hole's exception. */
    uint8_t exc = 0;
    assert_int_equal(fgt_engine_read(&t, "m1", &exc), GW_EMBEXC);
    assert_int_equal(exc, 2);
    assert_true(b_in_hole(&t, NULL));

    /* Fixed: the next read of the unit re-probes the hole and sees b. */
    sim_faults(&sim, false);
    assert_int_equal(fgt_engine_read(&t, "m1", NULL), GW_OK);
    assert_true(b_good(&t, NULL));
    fgt_engine_run_ms(&t, 300); /* polled again, no new hole */
    assert_true(b_good(&t, NULL));

    /* Broken again: learnt again.  Fixed again: resetBackoff re-probes. */
    sim_faults(&sim, true);
    assert_true(fgt_engine_run_until(&t, b_in_hole, NULL, 5000));
    sim_faults(&sim, false);
    gw_engine_reset_backoff(t.eng, 0, 0);
    assert_true(fgt_engine_run_until(&t, b_good, NULL, 2000));
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
        cmocka_unit_test_teardown(test_probe_survives_link_outage,
                                  fgt_teardown_procs),
        cmocka_unit_test_teardown(test_read_in_backoff_from_store,
                                  fgt_teardown_procs),
        cmocka_unit_test_teardown(test_hole_healed_by_reprobe,
                                  fgt_teardown_procs),
        cmocka_unit_test_teardown(test_hole_healed_on_demand,
                                  fgt_teardown_procs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
