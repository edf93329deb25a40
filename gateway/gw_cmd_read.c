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
    uv_signal_t sigint, sigterm;
    uv_timer_t watch;
    struct sel *sels;
    size_t n_sels;
    size_t pending;
    int failures;      /* of the round in progress */
    int last_failures; /* of the last completed round */
    size_t rounds;     /* completed */
    bool json;
    bool stopping; /* SIGINT/SIGTERM: reads cancelled at close are not shown */
    uint64_t period_ms; /* --watch: a round starts every period_ms; 0 once */
    uint64_t next_ms;   /* loop time the next round is due */
};

/* Returns GW_EXIT_OK, or the exit status of the failure (reported). */
static int session_open(struct session *s, const char *path)
{
    memset(s, 0, sizeof(*s));
    gw_log_init(&s->log);
    s->log.level = GW_LOG_WARN;
    if (gw_cli_load_map(path, &s->cfg) != GW_OK)
        return GW_EXIT_MAP;
    uv_loop_init(&s->loop);
    int rc = gw_store_init(&s->store, s->cfg);
    if (rc != GW_OK) {
        fprintf(stderr, "fieldgate: cannot start: %s\n", gw_strerror(rc));
        return GW_EXIT_FAILED;
    }
    struct gw_engine_opts opts = {.poll = false};
    rc = gw_engine_new(&s->loop, s->cfg, &s->store, &s->log, &opts, &s->eng);
    if (rc == GW_OK)
        rc = gw_engine_start(s->eng);
    if (rc != GW_OK) {
        fprintf(stderr, "fieldgate: cannot start: %s\n", gw_strerror(rc));
        return GW_EXIT_FAILED;
    }
    return GW_EXIT_OK;
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

static void on_watch(uv_timer_t *t)
{
    start_round(t->data);
}

/* --watch S is a period: round k is due at t0 + k*S.  A round that ends
 * before the next is due waits for it; one that ends late starts the next
 * at once, and the schedule skips the slots it missed (the next round after
 * that is due on the same grid), so lateness never accumulates. */
static void round_done(struct session *s)
{
    s->rounds++;
    s->last_failures = s->failures;
    print_all(s);
    if (s->period_ms == 0) {
        uv_stop(&s->loop);
        return;
    }
    uv_update_time(&s->loop);
    uint64_t now = uv_now(&s->loop), delay = 0;
    if (now < s->next_ms) {
        delay = s->next_ms - now;
        s->next_ms += s->period_ms;
    } else {
        s->next_ms += ((now - s->next_ms) / s->period_ms + 1) * s->period_ms;
    }
    uv_timer_start(&s->watch, on_watch, delay, 0);
}

static void on_read(void *data, int rc, uint8_t exception)
{
    struct session *s = data;
    if (rc != GW_OK && rc != GW_ECANCELED)
        s->failures++;
    if (--s->pending > 0 || s->stopping)
        return;
    round_done(s);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct session *s = h->data;
    s->stopping = true;
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
    if (s->pending == 0)
        round_done(s);
}

static void read_usage(FILE *out)
{
    fprintf(out, "usage: fieldgate read -c FILE [UNIT[.POINT] ...] [--json] "
                 "[--watch SECONDS] [-v]\n"
                 "Reads now (all units when none is named) and prints point, "
                 "value, unit,\nquality and age; --json prints one JSON object "
                 "per point.  --watch S reads\nevery S seconds (a read "
                 "starts every S seconds; one that takes longer is\n"
                 "followed at once) until SIGINT or SIGTERM; the exit status "
                 "is then that of\nthe last completed read.\n" GW_EXIT_HELP);
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
                return GW_EXIT_USAGE;
            }
            break;
        }
        case 'v':
            verbose = true;
            break;
        case 'h':
            read_usage(stdout);
            return GW_EXIT_OK;
        default:
            read_usage(stderr);
            return GW_EXIT_USAGE;
        }
    }
    if (!path) {
        read_usage(stderr);
        return GW_EXIT_USAGE;
    }
    struct session s;
    int rc = session_open(&s, path);
    if (rc != GW_EXIT_OK)
        goto out;
    if (verbose)
        s.log.level = GW_LOG_DEBUG;
    s.json = json;
    if (select_refs(&s, argc - optind, argv + optind) != GW_OK) {
        rc = GW_EXIT_MAP;
        goto out;
    }
    uv_signal_init(&s.loop, &s.sigint);
    uv_signal_init(&s.loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_stop_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_stop_signal, SIGTERM);
    uv_unref((uv_handle_t *)&s.sigint);
    uv_unref((uv_handle_t *)&s.sigterm);
    if (watch > 0) {
        uv_timer_init(&s.loop, &s.watch);
        s.watch.data = &s;
        s.period_ms = (uint64_t)(watch * 1000 + 0.5);
        if (s.period_ms == 0)
            s.period_ms = 1;
        uv_update_time(&s.loop);
        s.next_ms = uv_now(&s.loop) + s.period_ms;
    }
    start_round(&s);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    rc = s.rounds == 0 || s.last_failures ? GW_EXIT_FAILED : GW_EXIT_OK;
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
    fprintf(out,
            "usage: fieldgate write -c FILE UNIT.POINT VALUE "
            "[--verify]\n"
            "Writes VALUE (checked against the point first) and, with "
            "--verify or the\npoint's verify:, reads it back.\n" GW_EXIT_HELP);
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
            return GW_EXIT_OK;
        default:
            write_usage(stderr);
            return GW_EXIT_USAGE;
        }
    }
    if (!path || argc - optind != 2) {
        write_usage(stderr);
        return GW_EXIT_USAGE;
    }
    const char *ref = argv[optind], *text = argv[optind + 1];
    struct session s;
    int rc = session_open(&s, path);
    if (rc != GW_EXIT_OK)
        goto out;
    rc = GW_EXIT_MAP;
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
        /* Refused by the map (not writable, a value it cannot encode)
         * unless the link or the engine is what failed. */
        if (wrc == GW_EDISCONNECTED || wrc == GW_ECLOSED || wrc == GW_ENOMEM ||
            wrc == GW_EBUSY || wrc == GW_EAGAIN)
            rc = GW_EXIT_FAILED;
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
    rc = w.rc == GW_OK ? GW_EXIT_OK : GW_EXIT_FAILED;
out:
    session_close(&s);
    return rc;
}
