/* sim_config.c - command line parsing and unit spec assembly. */
#include "sim_config.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "gw_err.h"

#define MAX_ARGS 256 /* table and fault flags on one command line */

enum fault_kind { FAULT_DEAD, FAULT_SLOW, FAULT_ILLEGAL, FAULT_MAX_REGS };

struct table_arg {
    int unit; /* -1: no --unit before it */
    enum sim_table table;
    const char *text;
};

struct fault_arg {
    enum fault_kind kind;
    const char *text;
};

struct args {
    const char *file;
    const char *units;
    struct table_arg tables[MAX_ARGS];
    size_t n_tables;
    bool unit_seen[SIM_MAX_UNIT + 1];
    struct fault_arg faults[MAX_ARGS];
    size_t n_faults;
};

void sim_config_usage(FILE *out)
{
    fputs("usage: fieldgate-sim [options]\n"
          "  --tcp HOST:PORT        listen for Modbus TCP (repeatable; port 0 "
          "= any free\n"
          "                         port; default 127.0.0.1:1502 when neither "
          "--tcp nor --rtu)\n"
          "  --rtu DEV[:BAUD[:PARITY[:DATA[:STOP]]]]\n"
          "                         serve Modbus RTU on a tty (repeatable; "
          "default 19200:E:8:1)\n"
          "  --file UNITS.yaml      units, contents and faults from a file\n"
          "  --units LIST           units with default contents, e.g. 1-10,20 "
          "(default\n"
          "                         1-10 when neither --file nor --unit)\n"
          "  --unit ID              the unit the following table flags fill\n"
          "  --holding A=V,...      holding registers (also --input, --coils, "
          "--discrete)\n"
          "  --dead LIST            units that never answer\n"
          "  --slow LIST:DELAY      units that answer after DELAY (300ms, 2s)\n"
          "  --illegal LIST:RANGES  exception 02 for requests touching RANGES "
          "(100-109,200)\n"
          "  --max-regs LIST:N      exception 03 for register reads above N\n"
          "  --tick MS              wave update interval (default 100)\n"
          "  --stats                print request counts per unit on exit\n"
          "  --verbose              log every request on stderr\n"
          "  --help                 this text\n"
          "Prints \"READY tcp=HOST:PORT ... rtu=DEV ...\" on stdout once "
          "serving.\n",
          out);
}

struct sim_unit_spec *sim__spec_get(struct sim_config *cfg, uint8_t id)
{
    if (!cfg->specs[id]) {
        cfg->specs[id] = calloc(1, sizeof(*cfg->specs[id]));
        if (cfg->specs[id])
            cfg->specs[id]->id = id;
    }
    return cfg->specs[id];
}

static int parse_ulong(const char *text, unsigned long max, char **end,
                       unsigned long *out)
{
    if (!text || *text < '0' || *text > '9')
        return GW_EPARSE;
    errno = 0;
    unsigned long v = strtoul(text, end, 0);
    if (errno != 0)
        return GW_EPARSE;
    if (v > max)
        return GW_ERANGE;
    *out = v;
    return GW_OK;
}

/* Parses "A" or "A-B" items separated by commas, each within [min, max];
 * calls fn(lo, hi, ctx) per item. */
static int parse_list(const char *text, unsigned long min, unsigned long max,
                      int (*fn)(unsigned lo, unsigned hi, void *ctx), void *ctx)
{
    const char *p = text;
    if (!p || !*p)
        return GW_EPARSE;
    for (;;) {
        char *end = NULL;
        unsigned long lo, hi;
        int rc = parse_ulong(p, max, &end, &lo);
        if (rc != GW_OK)
            return rc;
        hi = lo;
        if (*end == '-') {
            rc = parse_ulong(end + 1, max, &end, &hi);
            if (rc != GW_OK)
                return rc;
        }
        if (lo < min || hi < lo)
            return GW_ERANGE;
        rc = fn((unsigned)lo, (unsigned)hi, ctx);
        if (rc != GW_OK)
            return rc;
        if (*end == '\0')
            return GW_OK;
        if (*end != ',')
            return GW_EPARSE;
        p = end + 1;
    }
}

static int set_ids(unsigned lo, unsigned hi, void *ctx)
{
    bool *set = ctx;
    for (unsigned k = lo; k <= hi; k++)
        set[k] = true;
    return GW_OK;
}

int sim__parse_ids(const char *text, bool set[SIM_MAX_UNIT + 1])
{
    return parse_list(text, 1, SIM_MAX_UNIT, set_ids, set);
}

static int add_range(unsigned lo, unsigned hi, void *ctx)
{
    return sim_unit_spec_add_illegal(ctx, (uint16_t)lo, (uint16_t)hi);
}

int sim__parse_ranges(const char *text, struct sim_unit_spec *spec)
{
    return parse_list(text, 0, 65535, add_range, spec);
}

/* "HOST:PORT", "[V6]:PORT" or "PORT" (127.0.0.1). */
static int parse_tcp(const char *text, struct sim_tcp_addr *out)
{
    const char *colon = strrchr(text, ':');
    const char *port = colon ? colon + 1 : text;
    size_t hlen = colon ? (size_t)(colon - text) : 0;
    const char *host = text;
    if (!colon) {
        host = "127.0.0.1";
        hlen = strlen(host);
    } else if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
        host = text + 1;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(out->host))
        return GW_EPARSE;
    char *end = NULL;
    unsigned long p;
    int rc = parse_ulong(port, 65535, &end, &p);
    if (rc != GW_OK || *end != '\0')
        return rc != GW_OK ? rc : GW_EPARSE;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = (uint16_t)p;
    return GW_OK;
}

/* "DEV[:BAUD[:PARITY[:DATA[:STOP]]]]" */
static int parse_rtu(const char *text, struct sim_rtu_opts *out)
{
    char buf[sizeof(out->device) + 32];
    if (strlen(text) >= sizeof(buf))
        return GW_ERANGE;
    snprintf(buf, sizeof(buf), "%s", text);
    out->baud = 19200;
    out->parity = 'E';
    out->data = 8;
    out->stop = 1;
    char *field[5] = {buf, NULL, NULL, NULL, NULL};
    size_t nf = 1;
    for (char *p = buf; *p && nf < 5; p++) {
        if (*p == ':') {
            *p = '\0';
            field[nf++] = p + 1;
        }
    }
    if (!field[0][0] || strlen(field[0]) >= sizeof(out->device))
        return GW_EPARSE;
    snprintf(out->device, sizeof(out->device), "%s", field[0]);
    unsigned long v;
    char *end = NULL;
    if (field[1]) {
        if (parse_ulong(field[1], 4000000, &end, &v) != GW_OK || *end || v == 0)
            return GW_EPARSE;
        out->baud = (int)v;
    }
    if (field[2]) {
        const char *p = field[2];
        if (strcmp(p, "N") == 0 || strcmp(p, "n") == 0 ||
            strcmp(p, "none") == 0)
            out->parity = 'N';
        else if (strcmp(p, "E") == 0 || strcmp(p, "e") == 0 ||
                 strcmp(p, "even") == 0)
            out->parity = 'E';
        else if (strcmp(p, "O") == 0 || strcmp(p, "o") == 0 ||
                 strcmp(p, "odd") == 0)
            out->parity = 'O';
        else
            return GW_EPARSE;
    }
    if (field[3]) {
        if (parse_ulong(field[3], 8, &end, &v) != GW_OK || *end || v < 5)
            return GW_EPARSE;
        out->data = (int)v;
    }
    if (field[4]) {
        if (parse_ulong(field[4], 2, &end, &v) != GW_OK || *end || v < 1)
            return GW_EPARSE;
        out->stop = (int)v;
    }
    return GW_OK;
}

/* "A=V,A=V": raw register values (-32768..65535) or bits (0/1). */
static int apply_table(struct sim_unit_spec *spec, enum sim_table t,
                       const char *text)
{
    const char *p = text;
    bool bits = t == SIM_COILS || t == SIM_DISCRETE;
    for (;;) {
        char *end = NULL;
        unsigned long a;
        int rc = parse_ulong(p, 65535, &end, &a);
        if (rc != GW_OK || *end != '=')
            return rc != GW_OK ? rc : GW_EPARSE;
        p = end + 1;
        errno = 0;
        long v = strtol(p, &end, 0);
        if (errno != 0 || end == p)
            return GW_EPARSE;
        if (bits ? (v != 0 && v != 1) : (v < -32768 || v > 65535))
            return GW_ERANGE;
        struct sim_entry e = {.table = t, .address = (uint16_t)a, .count = 1};
        e.data = malloc(sizeof(uint16_t));
        if (!e.data)
            return GW_ENOMEM;
        e.data[0] = (uint16_t)((unsigned long)v & 0xffffu);
        rc = sim_unit_spec_add(spec, &e);
        if (rc != GW_OK)
            return rc;
        if (*end == '\0')
            return GW_OK;
        if (*end != ',')
            return GW_EPARSE;
        p = end + 1;
    }
}

/* "LIST" or "LIST:ARG" -> ids and the argument (NULL when absent). */
static int split_fault(const char *text, bool ids[SIM_MAX_UNIT + 1], char *arg,
                       size_t cap, bool need_arg)
{
    char list[256];
    const char *colon = strchr(text, ':');
    size_t n = colon ? (size_t)(colon - text) : strlen(text);
    if (n >= sizeof(list) || (need_arg && !colon) || (!need_arg && colon))
        return GW_EPARSE;
    memcpy(list, text, n);
    list[n] = '\0';
    if (colon) {
        if (strlen(colon + 1) >= cap)
            return GW_ERANGE;
        snprintf(arg, cap, "%s", colon + 1);
    }
    return sim__parse_ids(list, ids);
}

static const char *const fault_flag[] = {"--dead", "--slow", "--illegal",
                                         "--max-regs"};

static int apply_fault(struct sim_config *cfg, const struct fault_arg *f,
                       FILE *err)
{
    bool ids[SIM_MAX_UNIT + 1] = {false};
    char arg[1024] = "";
    uint32_t ms = 0;
    unsigned long maxr = 0;
    int rc = split_fault(f->text, ids, arg, sizeof(arg), f->kind != FAULT_DEAD);
    if (rc == GW_OK && f->kind == FAULT_SLOW)
        rc = sim_duration_parse(arg, &ms);
    if (rc == GW_OK && f->kind == FAULT_MAX_REGS) {
        char *end = NULL;
        rc = parse_ulong(arg, 125, &end, &maxr);
        if (rc == GW_OK && (*end || maxr == 0))
            rc = GW_ERANGE;
    }
    for (unsigned id = 1; rc == GW_OK && id <= SIM_MAX_UNIT; id++) {
        if (!ids[id])
            continue;
        struct sim_unit_spec *s = cfg->specs[id];
        if (!s) {
            fprintf(err, "%s %s: unit %u is not defined\n", fault_flag[f->kind],
                    f->text, id);
            return GW_ECONFIG;
        }
        switch (f->kind) {
        case FAULT_DEAD:
            s->dead = true;
            break;
        case FAULT_SLOW:
            s->slow_ms = ms;
            break;
        case FAULT_ILLEGAL:
            rc = sim__parse_ranges(arg, s);
            break;
        case FAULT_MAX_REGS:
            s->max_registers = (uint16_t)maxr;
            break;
        }
    }
    if (rc != GW_OK)
        fprintf(err, "%s %s: %s\n", fault_flag[f->kind], f->text,
                gw_strerror(rc));
    return rc;
}

static int build(struct sim_config *cfg, struct args *a, FILE *err)
{
    int rc = GW_OK;
    if (a->file) {
        rc = sim__yaml_load(cfg, a->file, err);
        if (rc != GW_OK)
            return rc;
    }
    const char *units = a->units;
    bool any_unit = false;
    for (unsigned id = 0; id <= SIM_MAX_UNIT; id++)
        any_unit = any_unit || a->unit_seen[id];
    if (!units && !a->file && !any_unit)
        units = "1-10";
    if (units) {
        bool ids[SIM_MAX_UNIT + 1] = {false};
        rc = sim__parse_ids(units, ids);
        if (rc != GW_OK) {
            fprintf(err, "--units %s: %s\n", units, gw_strerror(rc));
            return rc;
        }
        for (unsigned id = 1; id <= SIM_MAX_UNIT; id++) {
            if (!ids[id])
                continue;
            struct sim_unit_spec *s = sim__spec_get(cfg, (uint8_t)id);
            if (!s)
                return GW_ENOMEM;
            s->defaults = true;
        }
    }
    for (unsigned id = 1; id <= SIM_MAX_UNIT; id++) {
        if (a->unit_seen[id] && !sim__spec_get(cfg, (uint8_t)id))
            return GW_ENOMEM;
    }
    for (size_t k = 0; k < a->n_tables; k++) {
        const struct table_arg *t = &a->tables[k];
        rc = apply_table(cfg->specs[t->unit], t->table, t->text);
        if (rc != GW_OK) {
            fprintf(err, "--unit %d: %s: %s\n", t->unit, t->text,
                    gw_strerror(rc));
            return rc;
        }
    }
    for (size_t k = 0; k < a->n_faults; k++) {
        rc = apply_fault(cfg, &a->faults[k], err);
        if (rc != GW_OK)
            return rc;
    }
    return GW_OK;
}

enum {
    OPT_TCP = 256,
    OPT_RTU,
    OPT_FILE,
    OPT_UNITS,
    OPT_UNIT,
    OPT_HOLDING,
    OPT_INPUT,
    OPT_COILS,
    OPT_DISCRETE,
    OPT_DEAD,
    OPT_SLOW,
    OPT_ILLEGAL,
    OPT_MAX_REGS,
    OPT_TICK,
    OPT_STATS,
    OPT_VERBOSE,
    OPT_HELP,
};

static const struct option long_opts[] = {
    {"tcp", required_argument, NULL, OPT_TCP},
    {"rtu", required_argument, NULL, OPT_RTU},
    {"file", required_argument, NULL, OPT_FILE},
    {"units", required_argument, NULL, OPT_UNITS},
    {"unit", required_argument, NULL, OPT_UNIT},
    {"holding", required_argument, NULL, OPT_HOLDING},
    {"input", required_argument, NULL, OPT_INPUT},
    {"coils", required_argument, NULL, OPT_COILS},
    {"discrete", required_argument, NULL, OPT_DISCRETE},
    {"dead", required_argument, NULL, OPT_DEAD},
    {"slow", required_argument, NULL, OPT_SLOW},
    {"illegal", required_argument, NULL, OPT_ILLEGAL},
    {"max-regs", required_argument, NULL, OPT_MAX_REGS},
    {"tick", required_argument, NULL, OPT_TICK},
    {"stats", no_argument, NULL, OPT_STATS},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char *opt_name(int c)
{
    for (const struct option *o = long_opts; o->name; o++) {
        if (o->val == c)
            return o->name;
    }
    return "?";
}

static int grow(void **arr, size_t n, size_t size)
{
    void *p = realloc(*arr, (n + 1) * size);
    if (!p)
        return GW_ENOMEM;
    *arr = p;
    return GW_OK;
}

int sim_config_parse(struct sim_config *cfg, int argc, char **argv, FILE *err)
{
    struct args *a = calloc(1, sizeof(*a));
    int unit = -1;
    int rc = GW_OK;
    memset(cfg, 0, sizeof(*cfg));
    cfg->tick_ms = 100;
    if (!a)
        return GW_ENOMEM;
    optind = 1;
    opterr = 1;
    for (;;) {
        int c = getopt_long(argc, argv, "", long_opts, NULL);
        if (c == -1)
            break;
        char *end = NULL;
        unsigned long v;
        switch (c) {
        case OPT_TCP:
            rc = grow((void **)&cfg->tcp, cfg->n_tcp, sizeof(*cfg->tcp));
            if (rc == GW_OK) {
                memset(&cfg->tcp[cfg->n_tcp], 0, sizeof(*cfg->tcp));
                rc = parse_tcp(optarg, &cfg->tcp[cfg->n_tcp]);
                if (rc == GW_OK)
                    cfg->n_tcp++;
            }
            break;
        case OPT_RTU:
            rc = grow((void **)&cfg->rtu, cfg->n_rtu, sizeof(*cfg->rtu));
            if (rc == GW_OK) {
                memset(&cfg->rtu[cfg->n_rtu], 0, sizeof(*cfg->rtu));
                rc = parse_rtu(optarg, &cfg->rtu[cfg->n_rtu]);
                if (rc == GW_OK)
                    cfg->n_rtu++;
            }
            break;
        case OPT_FILE:
            a->file = optarg;
            break;
        case OPT_UNITS:
            a->units = optarg;
            break;
        case OPT_UNIT:
            rc = parse_ulong(optarg, SIM_MAX_UNIT, &end, &v);
            if (rc == GW_OK && (*end || v == 0))
                rc = GW_ERANGE;
            if (rc == GW_OK) {
                unit = (int)v;
                a->unit_seen[v] = true;
            }
            break;
        case OPT_HOLDING:
        case OPT_INPUT:
        case OPT_COILS:
        case OPT_DISCRETE:
            if (unit < 0) {
                fprintf(err, "--%s: give --unit ID first\n", opt_name(c));
                rc = GW_EINVAL;
                goto out;
            } else if (a->n_tables == MAX_ARGS) {
                rc = GW_ELIMIT;
            } else {
                static const enum sim_table tab[] = {SIM_HOLDING, SIM_INPUT,
                                                     SIM_COILS, SIM_DISCRETE};
                a->tables[a->n_tables++] =
                    (struct table_arg){unit, tab[c - OPT_HOLDING], optarg};
            }
            break;
        case OPT_DEAD:
        case OPT_SLOW:
        case OPT_ILLEGAL:
        case OPT_MAX_REGS:
            if (a->n_faults == MAX_ARGS)
                rc = GW_ELIMIT;
            else
                a->faults[a->n_faults++] =
                    (struct fault_arg){(enum fault_kind)(c - OPT_DEAD), optarg};
            break;
        case OPT_TICK:
            rc = parse_ulong(optarg, 60000, &end, &v);
            if (rc == GW_OK && (*end || v == 0))
                rc = GW_ERANGE;
            if (rc == GW_OK)
                cfg->tick_ms = (uint32_t)v;
            break;
        case OPT_STATS:
            cfg->stats = true;
            break;
        case OPT_VERBOSE:
            cfg->verbose = true;
            break;
        case OPT_HELP:
            cfg->help = true;
            goto out;
        default: /* getopt printed the problem */
            rc = GW_EINVAL;
            goto out;
        }
        if (rc != GW_OK) {
            fprintf(err, "--%s %s: %s\n", opt_name(c), optarg ? optarg : "",
                    gw_strerror(rc));
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(err, "unexpected argument: %s\n", argv[optind]);
        rc = GW_EINVAL;
        goto out;
    }
    if (cfg->n_tcp == 0 && cfg->n_rtu == 0) {
        cfg->tcp = calloc(1, sizeof(*cfg->tcp));
        if (!cfg->tcp) {
            rc = GW_ENOMEM;
            goto out;
        }
        snprintf(cfg->tcp[0].host, sizeof(cfg->tcp[0].host), "127.0.0.1");
        cfg->tcp[0].port = 1502;
        cfg->n_tcp = 1;
    }
    rc = build(cfg, a, err);
out:
    free(a);
    return rc;
}

void sim_config_free(struct sim_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->tcp);
    free(cfg->rtu);
    cfg->tcp = NULL;
    cfg->rtu = NULL;
    cfg->n_tcp = cfg->n_rtu = 0;
    for (unsigned id = 0; id <= SIM_MAX_UNIT; id++) {
        sim_unit_spec_clear(cfg->specs[id]);
        free(cfg->specs[id]);
        cfg->specs[id] = NULL;
    }
}
