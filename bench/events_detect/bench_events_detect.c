/* bench_events_detect.c - change detection throughput: 100 units x 100
 * float32 points (10k), every point changed each round as the engine does
 * (gw_store_set_value, then gw_store_cycle_done per unit), every ready
 * batch taken.  One line per rule: changes/s through the store and the
 * detector, events and batches per round, ns per change.  A baseline row
 * runs the same store writes with no detector listening. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cfg.h"
#include "gw_err.h"
#include "gw_events.h"
#include "gw_store.h"

#define UNITS 100
#define POINTS 100

static char *make_map(void)
{
    size_t cap = (size_t)UNITS * POINTS * 80 + 4096, n = 0;
    char *y = malloc(cap);
    if (!y)
        return NULL;
    n += (size_t)snprintf(y + n, cap - n,
                          "links:\n  - name: plant\n    type: tcp\n"
                          "    host: 127.0.0.1\n    port: 1502\n"
                          "    units:\n");
    for (int u = 0; u < UNITS; u++) {
        n += (size_t)snprintf(y + n, cap - n,
                              "      - name: u%d\n        id: %d\n"
                              "        points:\n",
                              u, u % 247 + 1);
        for (int p = 0; p < POINTS; p++)
            n += (size_t)snprintf(y + n, cap - n,
                                  "          - {name: p%d, table: input, "
                                  "address: %d, type: float32}\n",
                                  p, 2 * p);
    }
    return y;
}

struct row {
    const char *name;
    struct cfg_event_rule rule;
    bool detector;
};

static void set_rules(struct cfg *cfg, const struct cfg_event_rule *r)
{
    for (size_t u = 0; u < cfg->links[0].n_units; u++)
        for (size_t p = 0; p < cfg->links[0].units[u].n_points; p++)
            cfg->links[0].units[u].points[p].events = *r;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 200;
    if (rounds <= 0)
        rounds = 200;
    char *yaml = make_map();
    struct cfg *cfg = NULL;
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    if (!yaml || cfg_load_buffer("bench.yaml", yaml, strlen(yaml), &cfg,
                                 &errs) != GW_OK) {
        cfg_errors_print(&errs, stderr);
        return 1;
    }
    cfg_errors_close(&errs);
    free(yaml);
    const struct row rows[] = {
        {"store only (no detector)", {.enabled = true}, false},
        {"any change", {.enabled = true}, true},
        {"deadband 1.5 (every 2nd change)",
         {.enabled = true, .deadband = 1.5},
         true},
        {"deadband 1%",
         {.enabled = true, .deadband = 1, .deadband_percent = true},
         true},
        {"min_interval 1h (all deferred)",
         {.enabled = true, .min_interval_ms = 3600000},
         true},
        {"any change + heartbeat 1h",
         {.enabled = true, .max_interval_ms = 3600000},
         true},
    };
    printf("change detection: %d units x %d points, %d rounds\n", UNITS, POINTS,
           rounds);
    printf("%-34s %12s %10s %10s %10s\n", "rule", "changes/s", "ns/change",
           "events/rd", "batches/rd");
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        set_rules(cfg, &rows[r].rule);
        struct gw_store store;
        if (gw_store_init(&store, cfg) != GW_OK)
            return 1;
        struct gw_events *ev = NULL;
        if (rows[r].detector &&
            gw_events_new(&loop, cfg, &store, NULL, NULL, NULL, &ev) != GW_OK)
            return 1;
        uint16_t raw[2] = {0, 0};
        uint64_t t0 = uv_hrtime(), changes = 0, points = 0;
        for (int k = 0; k < rounds; k++) {
            int64_t now = gw_now_ms();
            uv_update_time(&loop);
            for (size_t u = 0; u < UNITS; u++) {
                for (size_t p = 0; p < POINTS; p++) {
                    struct ad_value v = {.kind = AD_VALUE_DOUBLE,
                                         .v.d = (double)(k + 1) + (double)p};
                    gw_store_set_value(&store, 0, u, p, raw, 2, &v, 0, now);
                    changes++;
                }
                gw_store_cycle_done(&store, 0, u);
            }
            struct gw_events_batch b;
            while (ev && gw_events_take(ev, &b))
                points += b.n_points;
        }
        uint64_t ns = uv_hrtime() - t0;
        struct gw_events_stats st = {0};
        if (ev)
            gw_events_get_stats(ev, &st);
        printf("%-34s %12.0f %10.1f %10.0f %10.1f\n", rows[r].name,
               (double)changes * 1e9 / (double)ns, (double)ns / (double)changes,
               (double)points / rounds, (double)st.batches / rounds);
        gw_events_free(ev, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        gw_store_close(&store);
        if (uv_loop_close(&loop) != 0)
            return 1;
    }
    cfg_free(cfg);
    return 0;
}
