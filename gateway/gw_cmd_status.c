/* gw_cmd_status.c - `fieldgate status`: the running daemon's status
 * snapshot (gateway/gw_status), as a table or as the JSON it wrote. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_cli.h"
#include "gw_err.h"
#include "gw_log.h"
#include "gw_status.h"
#include "gw_store.h"

/* Widest name column; longer names push their line out. */
#define NAME_COL_MAX 24

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fieldgate status [--file PATH] [--json]\n"
            "Shows the status snapshot the daemon (`fieldgate run`) writes "
            "every 2 s: links,\nunits with their status and last error, the "
            "XMPP session and the PubSub\nevents, and how old the snapshot "
            "is.\n"
            "  --file PATH  the snapshot (default: "
            "$RUNTIME_DIRECTORY/" GW_STATUS_FILE_NAME ", else\n"
            "               " GW_STATUS_DEFAULT_DIR "/" GW_STATUS_FILE_NAME
            ", where systemd/fieldgate.service's\n"
            "               daemon writes it; `fieldgate run --status-file "
            "PATH` elsewhere)\n"
            "  --json       print the snapshot as the daemon wrote "
            "it\n" GW_EXIT_HELP
            "status: 3 when there is no snapshot, it cannot be read, it is "
            "older than 10 s\n(the daemon is probably not running) or the "
            "daemon stopped.\n");
}

/* A string from the file, printable on one line (a name or a peer's text
 * cannot drive the terminal). */
static const char *esc(const char *s, char *buf, size_t cap)
{
    gw_log_esc(buf, cap, s ? s : "-");
    return buf;
}

static uint64_t num_u(const struct gw_status_doc *doc,
                      const struct gw_status_node *obj, const char *key)
{
    double v = gw_status_get_num(doc, obj, key, 0);
    return v > 0 && v < 1.8e19 ? (uint64_t)v : 0;
}

static const char *local_time(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !localtime_r(&t, &tm) ||
        strftime(buf, cap, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
        snprintf(buf, cap, "?");
    return buf;
}

static const char *duration(int64_t ms, char *buf, size_t cap)
{
    if (ms < 0)
        ms = 0;
    int64_t s = ms / 1000;
    if (s < 60)
        snprintf(buf, cap, "%.1f s", (double)ms / 1000.0);
    else if (s < 3600)
        snprintf(buf, cap, "%" PRId64 "m %02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, cap, "%" PRId64 "h %02" PRId64 "m", s / 3600,
                 s / 60 % 60);
    else
        snprintf(buf, cap, "%" PRId64 "d %02" PRId64 "h", s / 86400,
                 s / 3600 % 24);
    return buf;
}

static int name_width(const struct gw_status_doc *doc,
                      const struct gw_status_node *arr, const char *key,
                      int min)
{
    int w = min;
    for (const struct gw_status_node *e = gw_status_child(doc, arr); e;
         e = gw_status_next(doc, e)) {
        size_t n = strlen(gw_status_get_str(doc, e, key, ""));
        if ((int)n > w)
            w = n > NAME_COL_MAX ? NAME_COL_MAX : (int)n;
    }
    return w;
}

static void print_links(const struct gw_status_doc *doc)
{
    const struct gw_status_node *links = gw_status_get(doc, NULL, "links");
    char b[CFG_MAX_NAME * 4 + 1];
    int w = name_width(doc, links, "name", 4);
    printf("\n%-*s  %-9s  %9s  %7s  %8s  %10s  %8s\n", w, "LINK", "CONNECTED",
           "REQUESTS", "ERRORS", "TIMEOUTS", "EXCEPTIONS", "OVERRUNS");
    if (!gw_status_child(doc, links))
        printf("(none: the daemon is reloading or stopped)\n");
    for (const struct gw_status_node *l = gw_status_child(doc, links); l;
         l = gw_status_next(doc, l)) {
        printf("%-*s  %-9s  %9" PRIu64 "  %7" PRIu64 "  %8" PRIu64
               "  %10" PRIu64 "  %8" PRIu64 "\n",
               w, esc(gw_status_get_str(doc, l, "name", NULL), b, sizeof(b)),
               gw_status_get_bool(doc, l, "connected", false) ? "yes" : "no",
               num_u(doc, l, "requests"), num_u(doc, l, "errors"),
               num_u(doc, l, "timeouts"), num_u(doc, l, "exceptions"),
               num_u(doc, l, "overruns"));
    }
}

static void print_units(const struct gw_status_doc *doc, bool events)
{
    const struct gw_status_node *units = gw_status_get(doc, NULL, "units");
    if (!gw_status_child(doc, units))
        return;
    char b[CFG_MAX_NAME * 4 + 1], bl[CFG_MAX_NAME * 4 + 1], bs[16], be[256];
    int w = name_width(doc, units, "name", 4);
    int wl = name_width(doc, units, "link", 4);
    printf("\n%-*s  %-*s  %-8s  %9s  %7s  %8s  %s\n", w, "UNIT", wl, "LINK",
           "STATUS", "REQUESTS", "ERRORS", "EVENTS", "LAST ERROR");
    for (const struct gw_status_node *u = gw_status_child(doc, units); u;
         u = gw_status_next(doc, u)) {
        char ev[24] = "-";
        if (events)
            snprintf(ev, sizeof(ev), "%" PRIu64,
                     num_u(doc, u, "events_published"));
        printf(
            "%-*s  %-*s  %-8s  %9" PRIu64 "  %7" PRIu64 "  %8s  %s\n", w,
            esc(gw_status_get_str(doc, u, "name", NULL), b, sizeof(b)), wl,
            esc(gw_status_get_str(doc, u, "link", NULL), bl, sizeof(bl)),
            esc(gw_status_get_str(doc, u, "status", NULL), bs, sizeof(bs)),
            num_u(doc, u, "requests"), num_u(doc, u, "errors"), ev,
            esc(gw_status_get_str(doc, u, "last_error", NULL), be, sizeof(be)));
    }
    uint64_t omitted = num_u(doc, NULL, "units_omitted");
    if (omitted)
        printf("(%" PRIu64 " more units not in the snapshot)\n", omitted);
}

static void print_xmpp(const struct gw_status_doc *doc)
{
    const struct gw_status_node *x = gw_status_get(doc, NULL, "xmpp");
    if (!gw_status_get_bool(doc, x, "enabled", false)) {
        printf("xmpp:   off (the map has no xmpp: section)\n");
        return;
    }
    char jid[1024];
    esc(gw_status_get_str(doc, x, "jid", NULL), jid, sizeof(jid));
    bool online = gw_status_get_bool(doc, x, "online", false);
    printf("xmpp:   %s %s; %" PRIu64 " connect(s) (%" PRIu64
           " resumed), %" PRIu64 " drop(s), %" PRIu64
           " authentication failure(s), %" PRIu64 " dropped stanza(s)\n",
           online ? "online as" : "OFFLINE, account", jid,
           num_u(doc, x, "connects"), num_u(doc, x, "resumes"),
           num_u(doc, x, "drops"), num_u(doc, x, "auth_failures"),
           num_u(doc, x, "dropped_stanzas"));
}

static void print_events(const struct gw_status_doc *doc)
{
    const struct gw_status_node *e = gw_status_get(doc, NULL, "events");
    if (!gw_status_get_bool(doc, e, "enabled", false)) {
        printf("events: off (the map has no events: section)\n");
        return;
    }
    char svc[1024], st[32], warn[1024];
    const char *service = gw_status_get_str(doc, e, "service", NULL);
    esc(service ? service : "the account's PEP service", svc, sizeof(svc));
    esc(gw_status_get_str(doc, e, "state", NULL), st, sizeof(st));
    printf("events: %s on %s; %" PRIu64 " published, %" PRIu64
           " error(s), %" PRIu64 " in flight, %" PRIu64 " backlog, %" PRIu64
           " coalesced, %" PRIu64 " suppressed\n",
           st, svc, num_u(doc, e, "published"), num_u(doc, e, "errors"),
           num_u(doc, e, "in_flight"), num_u(doc, e, "backlog"),
           num_u(doc, e, "coalesced"), num_u(doc, e, "suppressed"));
    const struct gw_status_node *sp = gw_status_get(doc, e, "spool");
    if (sp)
        printf("spool: %" PRIu64 " bytes, oldest unsent %" PRIu64
               " s old, %" PRIu64 " dropped, %" PRIu64 " lost%s\n",
               num_u(doc, sp, "bytes"),
               num_u(doc, sp, "oldest_unsent_age_ms") / 1000,
               num_u(doc, sp, "dropped"), num_u(doc, sp, "lost"),
               gw_status_get_bool(doc, sp, "fallback", false)
                   ? " (FALLBACK: latest values)"
                   : "");
    const char *w = gw_status_get_str(doc, e, "warning", "");
    if (*w)
        printf("events: WARNING: %s\n", esc(w, warn, sizeof(warn)));
}

static void print_table(const struct gw_status_doc *doc, int64_t age_ms)
{
    char b1[64], b2[64], b3[32], map[1024], ver[64], state[32];
    int64_t start = (int64_t)gw_status_get_num(doc, NULL, "start_ms", 0);
    int64_t now = (int64_t)gw_status_get_num(doc, NULL, "time_ms", 0);
    esc(gw_status_get_str(doc, NULL, "state", NULL), state, sizeof(state));
    bool stopped = strcmp(state, "stopped") == 0;
    printf("fieldgate %s, pid %.0f: %s; started %s, %s %s\n",
           esc(gw_status_get_str(doc, NULL, "version", NULL), ver, sizeof(ver)),
           gw_status_get_num(doc, NULL, "pid", 0), state,
           local_time(start, b1, sizeof(b1)), stopped ? "ran" : "up",
           duration(now - start, b3, sizeof(b3)));
    printf("map:      %s\n",
           esc(gw_status_get_str(doc, NULL, "map", NULL), map, sizeof(map)));
    printf("snapshot: %s, %s old\n", local_time(now, b2, sizeof(b2)),
           duration(age_ms, b3, sizeof(b3)));
    print_links(doc);
    const struct gw_status_node *ev = gw_status_get(doc, NULL, "events");
    print_units(doc, gw_status_get_bool(doc, ev, "enabled", false));
    printf("\n");
    print_xmpp(doc);
    print_events(doc);
}

int gw_cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {{"file", required_argument, NULL, 'f'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    bool json = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "f:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            path = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout);
            return GW_EXIT_OK;
        default:
            usage(stderr);
            return GW_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "fieldgate status: unexpected argument '%s'\n",
                argv[optind]);
        usage(stderr);
        return GW_EXIT_USAGE;
    }
    char def[4096];
    if (!path) {
        if (gw_status_default_path(GW_STATUS_DEFAULT_DIR, def, sizeof(def)) !=
            GW_OK) {
            fprintf(stderr, "fieldgate status: RUNTIME_DIRECTORY is too "
                            "long\n");
            return GW_EXIT_USAGE;
        }
        path = def;
    }
    char *text = NULL;
    size_t len = 0;
    int sys_errno = 0;
    int rc = gw_status_read_file(path, &text, &len, &sys_errno);
    if (rc == GW_ENOTFOUND) {
        fprintf(stderr,
                "fieldgate status: no status file %s: the daemon is not "
                "running, or writes\nit elsewhere (`fieldgate run "
                "--status-file PATH`; use --file PATH)\n",
                path);
        return GW_EXIT_FAILED;
    }
    if (rc != GW_OK) {
        fprintf(stderr, "fieldgate status: cannot read %s: %s\n", path,
                rc == GW_ESYS ? strerror(sys_errno) : gw_strerror(rc));
        return GW_EXIT_FAILED;
    }
    char *copy = NULL;
    if (json) {
        copy = malloc(len + 1);
        if (!copy) {
            free(text);
            fprintf(stderr, "fieldgate status: %s\n", gw_strerror(GW_ENOMEM));
            return GW_EXIT_FAILED;
        }
        memcpy(copy, text, len + 1);
    }
    struct gw_status_doc doc;
    rc = gw_status_parse(text, len, &doc);
    double t = gw_status_get_num(&doc, NULL, "time_ms", -1);
    if (rc != GW_OK || t < 0) {
        fprintf(stderr, "fieldgate status: %s is not a status snapshot (%s)\n",
                path, rc != GW_OK ? gw_strerror(rc) : "no time_ms");
        gw_status_doc_free(&doc);
        free(copy);
        return GW_EXIT_FAILED;
    }
    int64_t age = gw_now_ms() - (int64_t)t;
    if (json)
        fwrite(copy, 1, len, stdout);
    else
        print_table(&doc, age);
    free(copy);
    int exit_code = GW_EXIT_OK;
    char b[32], state[32];
    esc(gw_status_get_str(&doc, NULL, "state", NULL), state, sizeof(state));
    if (strcmp(state, "stopped") == 0) {
        fprintf(stderr,
                "fieldgate status: the daemon stopped %s ago (the last "
                "snapshot is shown)\n",
                duration(age, b, sizeof(b)));
        exit_code = GW_EXIT_FAILED;
    } else if (age > GW_STATUS_STALE_MS) {
        fprintf(stderr,
                "fieldgate status: warning: the snapshot is %s old (more "
                "than %d s): the\ndaemon is probably not running\n",
                duration(age, b, sizeof(b)), GW_STATUS_STALE_MS / 1000);
        exit_code = GW_EXIT_FAILED;
    }
    fflush(stdout);
    if (ferror(stdout))
        exit_code = GW_EXIT_FAILED;
    gw_status_doc_free(&doc);
    return exit_code;
}
