/* gw_cmd_plan.c - `fieldgate plan`: the Modbus read requests of one poll
 * cycle, per link and poll group, with the estimated RTU bus time. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad_plan.h"
#include "cfg.h"
#include "gw_cli.h"
#include "gw_err.h"
#include "gw_json.h"

/* Plans of one map: plans[link * n_groups + group]. */
struct plan_set {
    const struct cfg *cfg;
    struct ad_plan *plans;
    size_t n;
};

static void plan_usage(FILE *out)
{
    fprintf(out,
            "usage: fieldgate plan -c FILE [--json]\n\n"
            "Prints the Modbus read requests of one poll cycle for every link "
            "and\npoll group, and for RTU links the estimated bus time of the "
            "cycle\nagainst the group's interval.\n\n"
            "  -c, --config FILE  the device map\n"
            "      --json         print one JSON object\n"
            "  -h, --help         this text\n");
}

static void set_close(struct plan_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        ad_plan_close(&s->plans[i]);
    free(s->plans);
    s->plans = NULL;
    s->n = 0;
}

static bool is_bits(enum cfg_table t)
{
    return t == CFG_TABLE_COIL || t == CFG_TABLE_DISCRETE;
}

/* Names the point a GW_ELIMIT came from. */
static void report_too_big(const struct cfg *cfg, const struct cfg_link *lk,
                           size_t group)
{
    for (size_t u = 0; u < lk->n_units; u++) {
        const struct cfg_unit *cu = &lk->units[u];
        for (size_t p = 0; p < cu->n_points; p++) {
            const struct cfg_point *cp = &cu->points[p];
            if (cp->poll_group != group)
                continue;
            bool bits = is_bits(cp->table);
            unsigned max = bits ? cu->max_bits : cu->max_registers;
            unsigned cap = bits ? CFG_MAX_READ_BITS : CFG_MAX_READ_REGISTERS;
            if (max > cap)
                max = cap;
            if (cp->count > max) {
                fprintf(stderr,
                        "fieldgate: %s: link %s unit %s point %s: %u %s, "
                        "more than %s %u: it can never be read\n",
                        cfg->path ? cfg->path : "map", lk->name, cu->name,
                        cp->name, (unsigned)cp->count,
                        bits ? "bits" : "registers",
                        bits ? "max_bits" : "max_registers", max);
                return;
            }
        }
    }
    fprintf(stderr, "fieldgate: link %s: %s\n", lk->name,
            gw_strerror(GW_ELIMIT));
}

static int set_build(struct plan_set *s, const struct cfg *cfg)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    size_t n = cfg->n_links * cfg->n_poll_groups;
    if (n == 0)
        return GW_OK;
    s->plans = calloc(n, sizeof(*s->plans));
    if (!s->plans) {
        fprintf(stderr, "fieldgate: %s\n", gw_strerror(GW_ENOMEM));
        return GW_ENOMEM;
    }
    s->n = n;
    for (size_t l = 0; l < cfg->n_links; l++) {
        const struct cfg_link *lk = &cfg->links[l];
        for (size_t g = 0; g < cfg->n_poll_groups; g++) {
            struct ad_plan *plan = &s->plans[l * cfg->n_poll_groups + g];
            int rc = ad_plan_group(lk, g, NULL, plan);
            if (rc == GW_ELIMIT) {
                report_too_big(cfg, lk, g);
                return rc;
            }
            if (rc != GW_OK) {
                fprintf(stderr, "fieldgate: link %s, poll group %s: %s\n",
                        lk->name, cfg->poll_groups[g].name, gw_strerror(rc));
                return rc;
            }
        }
    }
    return GW_OK;
}

/* Modicon form of a 0-based address: table digit, then 4 digits (or 5 when
 * the 1-based number is over 9999). */
static void modicon(uint8_t fc, uint16_t start, char *buf, size_t len)
{
    char digit = fc == 1 ? '0' : fc == 2 ? '1' : fc == 4 ? '3' : '4';
    unsigned n = (unsigned)start + 1u;
    if (n <= 9999)
        snprintf(buf, len, "%c%04u", digit, n);
    else
        snprintf(buf, len, "%c%05u", digit, n);
}

static const char *fc_table(uint8_t fc)
{
    switch (fc) {
    case 1:
        return cfg_table_name(CFG_TABLE_COIL);
    case 2:
        return cfg_table_name(CFG_TABLE_DISCRETE);
    case 4:
        return cfg_table_name(CFG_TABLE_INPUT);
    default:
        return cfg_table_name(CFG_TABLE_HOLDING);
    }
}

static char parity_letter(enum cfg_parity p)
{
    return p == CFG_PARITY_EVEN ? 'E' : p == CFG_PARITY_ODD ? 'O' : 'N';
}

static void endpoint(const struct cfg_link *lk, char *buf, size_t len)
{
    if (lk->type == CFG_LINK_RTU)
        snprintf(buf, len, "%s %" PRIu32 " %u%c%u",
                 lk->device ? lk->device : "-", lk->baud,
                 (unsigned)lk->data_bits, parity_letter(lk->parity),
                 (unsigned)lk->stop_bits);
    else
        snprintf(buf, len, "%s:%u", lk->host ? lk->host : "-",
                 (unsigned)lk->port);
}

static bool fits(uint64_t bus_us, uint32_t interval_ms)
{
    return bus_us <= (uint64_t)interval_ms * 1000u;
}

static void print_text(const struct plan_set *s)
{
    const struct cfg *cfg = s->cfg;
    size_t total = 0;
    for (size_t l = 0; l < cfg->n_links; l++) {
        const struct cfg_link *lk = &cfg->links[l];
        char ep[320];
        endpoint(lk, ep, sizeof(ep));
        printf("link %s: %s %s\n", lk->name, cfg_link_type_name(lk->type), ep);
        size_t link_reqs = 0;
        for (size_t g = 0; g < cfg->n_poll_groups; g++) {
            const struct ad_plan *plan = &s->plans[l * cfg->n_poll_groups + g];
            const struct cfg_poll_group *pg = &cfg->poll_groups[g];
            if (plan->n_reqs == 0)
                continue;
            link_reqs += plan->n_reqs;
            printf("  poll group %s, every %" PRIu32 " ms\n", pg->name,
                   pg->interval_ms);
            int w = 4;
            for (size_t i = 0; i < plan->n_reqs; i++) {
                size_t len = strlen(lk->units[plan->reqs[i].unit].name);
                if (len > (size_t)w)
                    w = (int)len;
            }
            printf("    %-*s %3s %2s %5s %7s %5s  %s\n", w, "unit", "id", "fc",
                   "start", "modicon", "count", "points");
            for (size_t i = 0; i < plan->n_reqs; i++) {
                const struct ad_request *r = &plan->reqs[i];
                const struct cfg_unit *cu = &lk->units[r->unit];
                char mod[8];
                modicon(r->fc, r->start, mod, sizeof(mod));
                printf("    %-*s %3u %02u %5u %7s %5u  ", w, cu->name,
                       (unsigned)r->unit_id, (unsigned)r->fc,
                       (unsigned)r->start, mod, (unsigned)r->count);
                for (size_t k = 0; k < r->n; k++)
                    printf("%s%s", k ? ", " : "",
                           cu->points[plan->points[r->first + k]].name);
                printf("\n");
            }
            printf("    %zu request(s)", plan->n_reqs);
            if (lk->type == CFG_LINK_RTU) {
                uint64_t us = ad_plan_bus_time_us(lk, plan);
                printf(", bus time %.1f ms per cycle, interval %" PRIu32
                       " ms\n",
                       (double)us / 1000.0, pg->interval_ms);
                if (!fits(us, pg->interval_ms))
                    printf("    WARNING: link %s, poll group %s: bus time "
                           "%.1f ms exceeds the interval %" PRIu32
                           " ms: cycle cannot fit its interval\n",
                           lk->name, pg->name, (double)us / 1000.0,
                           pg->interval_ms);
            } else {
                printf("\n");
            }
        }
        if (link_reqs == 0)
            printf("  no points to poll\n");
        total += link_reqs;
    }
    printf("%zu request(s) on %zu link(s); skipped points: none (holes are "
           "learnt at run time)\n",
           total, cfg->n_links);
}

static void print_json(const struct plan_set *s)
{
    const struct cfg *cfg = s->cfg;
    struct gw_json j;
    gw_json_init(&j, stdout);
    gw_json_object_begin(&j);
    gw_json_key(&j, "file");
    gw_json_string(&j, cfg->path);
    gw_json_key(&j, "links");
    gw_json_array_begin(&j);
    size_t total = 0;
    for (size_t l = 0; l < cfg->n_links; l++) {
        const struct cfg_link *lk = &cfg->links[l];
        gw_json_object_begin(&j);
        gw_json_key(&j, "name");
        gw_json_string(&j, lk->name);
        gw_json_key(&j, "type");
        gw_json_string(&j, cfg_link_type_name(lk->type));
        char ep[320];
        endpoint(lk, ep, sizeof(ep));
        gw_json_key(&j, "endpoint");
        gw_json_string(&j, ep);
        gw_json_key(&j, "groups");
        gw_json_array_begin(&j);
        for (size_t g = 0; g < cfg->n_poll_groups; g++) {
            const struct ad_plan *plan = &s->plans[l * cfg->n_poll_groups + g];
            const struct cfg_poll_group *pg = &cfg->poll_groups[g];
            if (plan->n_reqs == 0)
                continue;
            total += plan->n_reqs;
            gw_json_object_begin(&j);
            gw_json_key(&j, "group");
            gw_json_string(&j, pg->name);
            gw_json_key(&j, "interval_ms");
            gw_json_uint(&j, pg->interval_ms);
            gw_json_key(&j, "requests");
            gw_json_array_begin(&j);
            for (size_t i = 0; i < plan->n_reqs; i++) {
                const struct ad_request *r = &plan->reqs[i];
                const struct cfg_unit *cu = &lk->units[r->unit];
                char mod[8];
                modicon(r->fc, r->start, mod, sizeof(mod));
                gw_json_object_begin(&j);
                gw_json_key(&j, "unit");
                gw_json_string(&j, cu->name);
                gw_json_key(&j, "unit_id");
                gw_json_uint(&j, r->unit_id);
                gw_json_key(&j, "fc");
                gw_json_uint(&j, r->fc);
                gw_json_key(&j, "table");
                gw_json_string(&j, fc_table(r->fc));
                gw_json_key(&j, "start");
                gw_json_uint(&j, r->start);
                gw_json_key(&j, "modicon");
                gw_json_string(&j, mod);
                gw_json_key(&j, "count");
                gw_json_uint(&j, r->count);
                gw_json_key(&j, "points");
                gw_json_array_begin(&j);
                for (size_t k = 0; k < r->n; k++)
                    gw_json_string(&j,
                                   cu->points[plan->points[r->first + k]].name);
                gw_json_array_end(&j);
                gw_json_object_end(&j);
            }
            gw_json_array_end(&j);
            gw_json_key(&j, "n_requests");
            gw_json_uint(&j, plan->n_reqs);
            gw_json_key(&j, "bus_time_us");
            bool rtu = lk->type == CFG_LINK_RTU;
            uint64_t us = rtu ? ad_plan_bus_time_us(lk, plan) : 0;
            if (rtu)
                gw_json_uint(&j, us);
            else
                gw_json_null(&j);
            gw_json_key(&j, "fits");
            if (rtu)
                gw_json_bool(&j, fits(us, pg->interval_ms));
            else
                gw_json_null(&j);
            gw_json_key(&j, "warning");
            if (rtu && !fits(us, pg->interval_ms))
                gw_json_string(&j, "cycle cannot fit its interval");
            else
                gw_json_null(&j);
            gw_json_key(&j, "skipped");
            gw_json_array_begin(&j);
            gw_json_array_end(&j);
            gw_json_object_end(&j);
        }
        gw_json_array_end(&j);
        gw_json_object_end(&j);
    }
    gw_json_array_end(&j);
    gw_json_key(&j, "n_requests");
    gw_json_uint(&j, total);
    gw_json_object_end(&j);
    gw_json_newline(&j);
}

int gw_cmd_plan(int argc, char **argv)
{
    const char *path;
    bool json;
    int st = gw_cli_map_options(argc, argv, "plan", plan_usage, &path, &json);
    if (st >= 0)
        return st;
    struct cfg *cfg = NULL;
    struct plan_set set = {0};
    int rc = 1;
    if (gw_cli_load_map(path, &cfg) != GW_OK)
        goto out;
    if (set_build(&set, cfg) != GW_OK)
        goto out;
    if (json)
        print_json(&set);
    else
        print_text(&set);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    set_close(&set);
    cfg_free(cfg);
    return rc;
}
