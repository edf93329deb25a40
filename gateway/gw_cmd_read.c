/* gw_cmd_read.c - the commissioning commands `fieldgate read` and
 * `fieldgate write`: read or write now through the polling engine. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cfg.h"
#include "gw_cli.h"
#include "gw_engine.h"
#include "gw_err.h"
#include "gw_json.h"
#include "gw_log.h"
#include "gw_store.h"

struct sel {
    size_t link, unit, point; /* point SIZE_MAX = the whole unit */
};

struct session {
    uv_loop_t loop;
    struct gw_log log;
    struct cfg *cfg;
    struct gw_store store;
    struct gw_engine *eng;
    uv_signal_t sigint;
    uv_timer_t watch;
    struct sel *sels;
    size_t n_sels;
    size_t pending;
    int failures;
    bool json;
    double watch_s;
    int rc;
};

static int session_open(struct session *s, const char *path)
{
    memset(s, 0, sizeof(*s));
    gw_log_init(&s->log);
    s->log.level = GW_LOG_WARN;
    if (gw_cli_load_map(path, &s->cfg) != GW_OK)
        return 1;
    uv_loop_init(&s->loop);
    if (gw_store_init(&s->store, s->cfg) != GW_OK)
        return 1;
    struct gw_engine_opts opts = {.poll = false};
    int rc =
        gw_engine_new(&s->loop, s->cfg, &s->store, &s->log, &opts, &s->eng);
    if (rc == GW_OK)
        rc = gw_engine_start(s->eng);
    if (rc != GW_OK) {
        fprintf(stderr, "fieldgate: cannot start: %s\n", gw_strerror(rc));
        return 1;
    }
    return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void session_close(struct session *s)
{
    if (s->eng)
        gw_engine_free(s->eng, NULL, NULL);
    s->eng = NULL;
    if (s->cfg) {
        uv_walk(&s->loop, walk_close, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&s->loop) != 0)
            fprintf(stderr, "fieldgate: loop still busy at exit\n");
    }
    gw_store_close(&s->store);
    cfg_free(s->cfg);
    free(s->sels);
}

static int select_refs(struct session *s, int argc, char **argv)
{
    const struct cfg *cfg = s->cfg;
    size_t total = 0;
    for (size_t l = 0; l < cfg->n_links; l++)
        total += cfg->links[l].n_units;
    size_t cap = (size_t)argc > total ? (size_t)argc : total;
    s->sels = calloc(cap ? cap : 1, sizeof(*s->sels));
    if (!s->sels)
        return GW_ENOMEM;
    if (argc == 0) {
        for (size_t l = 0; l < cfg->n_links; l++)
            for (size_t u = 0; u < cfg->links[l].n_units; u++)
                s->sels[s->n_sels++] = (struct sel){l, u, SIZE_MAX};
        return GW_OK;
    }
    for (int i = 0; i < argc; i++) {
        struct sel sel;
        if (gw_store_find(cfg, argv[i], &sel.link, &sel.unit, &sel.point) !=
            GW_OK) {
            fprintf(stderr, "fieldgate: no unit or point '%s' in %s\n", argv[i],
                    cfg->path);
            return GW_ENOTFOUND;
        }
        s->sels[s->n_sels++] = sel;
    }
    return GW_OK;
}

static void print_point(struct session *s, size_t l, size_t u, size_t p,
                        int64_t now, struct gw_json *j)
{
    const struct cfg_unit *cu = &s->cfg->links[l].units[u];
    const struct cfg_point *cp = &cu->points[p];
    const struct gw_point_state *ps = gw_store_point(&s->store, l, u, p);
    char value[AD_STRING_MAX + 64] = "-";
    bool have = ps->value.kind != AD_VALUE_NONE;
    if (have)
        ad_value_format(cp, &ps->value, value, sizeof(value));
    const char *label = have ? ad_value_label(cp, &ps->value) : NULL;
    char quality[48];
    if (ps->quality == GW_Q_EXCEPTION)
        snprintf(quality, sizeof(quality), "exception %02u",
                 (unsigned)ps->exception);
    else
        snprintf(quality, sizeof(quality), "%s", gw_quality_name(ps->quality));
    if (j) {
        gw_json_object_begin(j);
        gw_json_key(j, "unit");
        gw_json_string(j, cu->name);
        gw_json_key(j, "point");
        gw_json_string(j, cp->name);
        gw_json_key(j, "value");
        if (!have)
            gw_json_null(j);
        else if (ps->value.kind == AD_VALUE_BOOL)
            gw_json_bool(j, ps->value.v.b);
        else if (ps->value.kind == AD_VALUE_INT)
            gw_json_int(j, ps->value.v.i);
        else if (ps->value.kind == AD_VALUE_UINT)
            gw_json_uint(j, ps->value.v.u);
        else if (ps->value.kind == AD_VALUE_DOUBLE)
            gw_json_double(j, ps->value.v.d);
        else
            gw_json_string(j, ps->value.s);
        gw_json_key(j, "label");
        gw_json_string(j, label);
        gw_json_key(j, "uom");
        gw_json_string(j, cp->unit);
        gw_json_key(j, "quality");
        gw_json_string(j, gw_quality_name(ps->quality));
        if (ps->quality == GW_Q_EXCEPTION) {
            gw_json_key(j, "exception");
            gw_json_int(j, ps->exception);
        }
        gw_json_key(j, "ts_ms");
        if (ps->ts_ms)
            gw_json_int(j, ps->ts_ms);
        else
            gw_json_null(j);
        gw_json_object_end(j);
        gw_json_newline(j);
        return;
    }
    char shown[AD_STRING_MAX + 128];
    if (label)
        snprintf(shown, sizeof(shown), "%s (%s)", value, label);
    else
        snprintf(shown, sizeof(shown), "%s", value);
    char age[32] = "-";
    if (ps->ts_ms)
        snprintf(age, sizeof(age), "%.1fs", (double)(now - ps->ts_ms) / 1000.0);
    char name[2 * CFG_MAX_NAME + 2];
    snprintf(name, sizeof(name), "%s.%s", cu->name, cp->name);
    printf("%-32s %20s %-8s %-14s %s\n", name, shown, cp->unit ? cp->unit : "",
           quality, age);
}

static void print_all(struct session *s)
{
    int64_t now = gw_now_ms();
    struct gw_json j;
    gw_json_init(&j, stdout);
    if (!s->json)
        printf("%-32s %20s %-8s %-14s %s\n", "POINT", "VALUE", "UNIT",
               "QUALITY", "AGE");
    for (size_t i = 0; i < s->n_sels; i++) {
        const struct sel *sel = &s->sels[i];
        const struct cfg_unit *cu = &s->cfg->links[sel->link].units[sel->unit];
        if (sel->point != SIZE_MAX) {
            print_point(s, sel->link, sel->unit, sel->point, now,
                        s->json ? &j : NULL);
            continue;
        }
        for (size_t p = 0; p < cu->n_points; p++)
            print_point(s, sel->link, sel->unit, p, now, s->json ? &j : NULL);
    }
    fflush(stdout);
}

static void start_round(struct session *s);

static void on_read(void *data, int rc, uint8_t exception)
{
    struct session *s = data;
    if (rc != GW_OK && rc != GW_ECANCELED)
        s->failures++;
    if (--s->pending > 0)
        return;
    print_all(s);
    if (s->watch_s <= 0)
        uv_stop(&s->loop);
}

static void on_watch(uv_timer_t *t)
{
    struct session *s = t->data;
    if (s->pending == 0)
        start_round(s);
}

static void on_sigint(uv_signal_t *h, int signum)
{
    struct session *s = h->data;
    uv_stop(&s->loop);
}

static void start_round(struct session *s)
{
    s->failures = 0;
    for (size_t i = 0; i < s->n_sels; i++) {
        const struct sel *sel = &s->sels[i];
        const size_t *pts = sel->point == SIZE_MAX ? NULL : &sel->point;
        size_t n = sel->point == SIZE_MAX ? 0 : 1;
        s->pending++;
        int rc =
            gw_engine_read(s->eng, sel->link, sel->unit, pts, n, on_read, s);
        if (rc != GW_OK) {
            s->pending--;
            s->failures++;
            fprintf(stderr, "fieldgate: read %s: %s\n",
                    s->cfg->links[sel->link].units[sel->unit].name,
                    gw_strerror(rc));
        }
    }
    if (s->pending == 0) {
        print_all(s);
        if (s->watch_s <= 0)
            uv_stop(&s->loop);
    }
}

static void read_usage(FILE *out)
{
    fprintf(out, "usage: fieldgate read -c FILE [UNIT[.POINT] ...] [--json] "
                 "[--watch SECONDS] [-v]\n"
                 "Reads now (all units when none is named) and prints point, "
                 "value, unit,\nquality and age; --json prints one JSON object "
                 "per point; --watch repeats.\n");
}

int gw_cmd_read(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"watch", required_argument, NULL, 'w'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *path = NULL;
    bool json = false, verbose = false;
    double watch = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:jw:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'w': {
            char *end;
            watch = strtod(optarg, &end);
            if (*end || !(watch > 0) || watch > 86400) {
                fprintf(stderr, "fieldgate: --watch wants seconds > 0\n");
                return 2;
            }
            break;
        }
        case 'v':
            verbose = true;
            break;
        case 'h':
            read_usage(stdout);
            return 0;
        default:
            read_usage(stderr);
            return 2;
        }
    }
    if (!path) {
        read_usage(stderr);
        return 2;
    }
    struct session s;
    int rc = 1;
    if (session_open(&s, path) != 0)
        goto out;
    if (verbose)
        s.log.level = GW_LOG_DEBUG;
    s.json = json;
    s.watch_s = watch;
    if (select_refs(&s, argc - optind, argv + optind) != GW_OK)
        goto out;
    uv_signal_init(&s.loop, &s.sigint);
    s.sigint.data = &s;
    uv_signal_start(&s.sigint, on_sigint, SIGINT);
    uv_unref((uv_handle_t *)&s.sigint);
    start_round(&s);
    if (watch > 0) {
        uv_timer_init(&s.loop, &s.watch);
        s.watch.data = &s;
        uint64_t ms = (uint64_t)(watch * 1000);
        uv_timer_start(&s.watch, on_watch, ms, ms);
    }
    uv_run(&s.loop, UV_RUN_DEFAULT);
    rc = s.failures ? 1 : 0;
out:
    session_close(&s);
    return rc;
}

/* ---- write ------------------------------------------------------------ */

struct write_ctx {
    struct session *s;
    int rc;
    uint8_t exception;
    bool done;
};

static void on_written(void *data, int rc, uint8_t exception)
{
    struct write_ctx *w = data;
    w->rc = rc;
    w->exception = exception;
    w->done = true;
    uv_stop(&w->s->loop);
}

static void write_usage(FILE *out)
{
    fprintf(out, "usage: fieldgate write -c FILE UNIT.POINT VALUE "
                 "[--verify]\n");
}

/* A negative number ("-5", "-0.5", "-.5", "-1e3") is a VALUE, not an
 * option. */
static bool is_negative_number(const char *arg)
{
    if (arg[0] != '-')
        return false;
    char c = arg[1] == '.' ? arg[2] : arg[1];
    return c >= '0' && c <= '9';
}

int gw_cmd_write(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"verify", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *path = NULL;
    bool verify = false;
    /* getopt would take a negative VALUE for options: move such arguments
     * behind a "--" (their order among the operands is kept, and the point
     * name never starts with '-'). */
    char *args[argc + 2];
    int n = 0, negatives = 0;
    for (int i = 0; i < argc; i++) {
        bool neg = i > 0 && is_negative_number(argv[i]) &&
                   !(strcmp(argv[i - 1], "-c") == 0 ||
                     strcmp(argv[i - 1], "--config") == 0);
        if (!neg)
            args[n++] = argv[i];
        else
            negatives++;
    }
    if (negatives) {
        args[n++] = (char *)"--";
        for (int i = 1; i < argc; i++)
            if (is_negative_number(argv[i]) &&
                !(strcmp(argv[i - 1], "-c") == 0 ||
                  strcmp(argv[i - 1], "--config") == 0))
                args[n++] = argv[i];
    }
    args[n] = NULL;
    argc = n;
    argv = args;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'V':
            verify = true;
            break;
        case 'h':
            write_usage(stdout);
            return 0;
        default:
            write_usage(stderr);
            return 2;
        }
    }
    if (!path || argc - optind != 2) {
        write_usage(stderr);
        return 2;
    }
    const char *ref = argv[optind], *text = argv[optind + 1];
    struct session s;
    int rc = 1;
    if (session_open(&s, path) != 0)
        goto out;
    size_t l, u, p;
    if (gw_store_find(s.cfg, ref, &l, &u, &p) != GW_OK || p == SIZE_MAX) {
        fprintf(stderr, "fieldgate: no point '%s' in %s\n", ref, path);
        goto out;
    }
    const struct cfg_point *cp = &s.cfg->links[l].units[u].points[p];
    struct ad_value v;
    int prc = ad_value_parse(cp, text, &v);
    if (prc != GW_OK) {
        fprintf(stderr, "fieldgate: '%s' is not a value for %s (%s): %s\n",
                text, ref, cfg_type_name(cp->type), gw_strerror(prc));
        goto out;
    }
    struct write_ctx w = {.s = &s};
    int wrc = gw_engine_write(s.eng, l, u, p, &v, verify, on_written, &w);
    if (wrc != GW_OK) {
        fprintf(stderr, "fieldgate: write %s refused: %s\n", ref,
                wrc == GW_EREADONLY ? "the point is not writable"
                                    : gw_strerror(wrc));
        goto out;
    }
    uv_run(&s.loop, UV_RUN_DEFAULT);
    if (w.rc == GW_EMBEXC)
        fprintf(stderr, "fieldgate: write %s failed: Modbus exception %02u\n",
                ref, (unsigned)w.exception);
    else if (w.rc != GW_OK)
        fprintf(stderr, "fieldgate: write %s failed: %s\n", ref,
                gw_strerror(w.rc));
    else
        printf("%s = %s: ok%s\n", ref, text,
               verify || cp->verify ? " (verified)" : "");
    rc = w.rc == GW_OK ? 0 : 1;
out:
    session_close(&s);
    return rc;
}
