/* gw_cmd_check.c - `fieldgate check -c FILE [--json]`: validate a device
 * map and print a one-screen summary (or every error). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "gw_cli.h"
#include "gw_err.h"
#include "gw_json.h"

#define N_TYPES (CFG_TYPE_BCD32 + 1)

struct totals {
    size_t units, points, writable;
    size_t by_type[N_TYPES];
    size_t events; /* points whose rule is enabled */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fieldgate check -c FILE [--json]\n"
            "\n"
            "Validates a device map and prints a summary: links, units,\n"
            "points by type, poll groups, templates and events.  Warnings\n"
            "(a valid map that will not do what it seems to) go to stderr\n"
            "as FILE:LINE:COL: key.path: warning: message.\n"
            "\n"
            "  -c, --config FILE  the device map (YAML)\n"
            "  -j, --json         print the summary (or the errors) as one\n"
            "                     JSON object on stdout\n"
            "  -h, --help         this text\n"
            "\n"
            "Exit status: 0 valid, 1 errors (each printed to stderr as\n"
            "FILE:LINE:COL: key.path: message), 2 usage error.\n");
}

static void count(const struct cfg *cfg, struct totals *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < cfg->n_links; i++) {
        const struct cfg_link *l = &cfg->links[i];
        t->units += l->n_units;
        for (size_t j = 0; j < l->n_units; j++) {
            const struct cfg_unit *u = &l->units[j];
            t->points += u->n_points;
            for (size_t k = 0; k < u->n_points; k++) {
                const struct cfg_point *p = &u->points[k];
                if ((unsigned)p->type < N_TYPES)
                    t->by_type[p->type]++;
                if (p->writable)
                    t->writable++;
                if (p->events.enabled)
                    t->events++;
            }
        }
    }
}

static size_t template_uses(const struct cfg *cfg, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_links; i++) {
        for (size_t j = 0; j < cfg->links[i].n_units; j++) {
            const char *t = cfg->links[i].units[j].template_name;
            if (t && name && strcmp(t, name) == 0)
                n++;
        }
    }
    return n;
}

/* "192.168.1.5:502" or "/dev/ttyUSB0 19200 8E1". */
static void endpoint(const struct cfg_link *l, char *buf, size_t size)
{
    if (l->type == CFG_LINK_RTU) {
        static const char par[] = {'N', 'E', 'O'};
        snprintf(buf, size, "%s %" PRIu32 " %u%c%u",
                 l->device ? l->device : "?", l->baud, l->data_bits,
                 (unsigned)l->parity < 3 ? par[l->parity] : '?', l->stop_bits);
    } else {
        bool v6 = l->host && strchr(l->host, ':');
        snprintf(buf, size, "%s%s%s:%u", v6 ? "[" : "", l->host ? l->host : "?",
                 v6 ? "]" : "", l->port);
    }
}

static void interval(uint32_t ms, char *buf, size_t size)
{
    if (ms % 3600000 == 0)
        snprintf(buf, size, "%" PRIu32 "h", ms / 3600000);
    else if (ms % 60000 == 0)
        snprintf(buf, size, "%" PRIu32 "m", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(buf, size, "%" PRIu32 "s", ms / 1000);
    else
        snprintf(buf, size, "%" PRIu32 "ms", ms);
}

/* "pubsub.example.org" or "PEP (gw@example.org)". */
static void events_target(const struct cfg *cfg, char *buf, size_t size)
{
    if (cfg->events.service)
        snprintf(buf, size, "%s", cfg->events.service);
    else
        snprintf(buf, size, "PEP (%s)",
                 cfg->xmpp.jid ? cfg->xmpp.jid : "the gateway's JID");
}

static void print_text(const struct cfg *cfg, const char *path)
{
    struct totals t;
    count(cfg, &t);
    printf("%s: OK\n\nlinks (%zu):\n", path, cfg->n_links);
    for (size_t i = 0; i < cfg->n_links; i++) {
        const struct cfg_link *l = &cfg->links[i];
        char ep[300];
        endpoint(l, ep, sizeof(ep));
        printf("  %-20s %-12s %-32s %zu unit%s\n", l->name,
               cfg_link_type_name(l->type), ep, l->n_units,
               l->n_units == 1 ? "" : "s");
    }
    printf("\nunits: %zu   points: %zu   writable: %zu\n", t.units, t.points,
           t.writable);
    if (t.points) {
        printf("points by type:");
        for (int k = 0; k < N_TYPES; k++) {
            if (t.by_type[k])
                printf(" %s %zu", cfg_type_name((enum cfg_type)k),
                       t.by_type[k]);
        }
        printf("\n");
    }
    printf("poll groups:");
    for (size_t i = 0; i < cfg->n_poll_groups; i++) {
        char iv[32];
        interval(cfg->poll_groups[i].interval_ms, iv, sizeof(iv));
        printf("%s %s %s", i ? "," : "", cfg->poll_groups[i].name, iv);
    }
    printf("\n");
    if (cfg->n_templates) {
        printf("templates:");
        for (size_t i = 0; i < cfg->n_templates; i++) {
            size_t n = template_uses(cfg, cfg->templates[i].name);
            printf("%s %s (%zu point%s, used by %zu unit%s)", i ? "," : "",
                   cfg->templates[i].name, cfg->templates[i].n_points,
                   cfg->templates[i].n_points == 1 ? "" : "s", n,
                   n == 1 ? "" : "s");
        }
        printf("\n");
    }
    const struct cfg_events *ev = &cfg->events;
    if (ev->present) {
        char target[600];
        events_target(cfg, target, sizeof(target));
        printf("events: %s, %zu node%s %s<unit>, access %s, max_items %" PRIu32
               ", %s; %zu of %zu points\n",
               target, t.units, t.units == 1 ? "" : "s", ev->node_prefix,
               cfg_access_model_name(ev->access_model), ev->max_items,
               ev->persist_items ? "persisted" : "not persisted", t.events,
               t.points);
        if (ev->delivery == CFG_DELIVERY_EVERY) {
            char dir[4096];
            if (cfg_spool_dir(&ev->spool, dir, sizeof(dir)) != GW_OK)
                snprintf(dir, sizeof(dir), "?");
            char fs[32];
            if (ev->spool.fsync_ms)
                snprintf(fs, sizeof(fs), "every %" PRIu32 " ms",
                         ev->spool.fsync_ms);
            else
                snprintf(fs, sizeof(fs), "after every record");
            printf("delivery: every, spool %s (max %" PRIu64
                   " bytes, max age %" PRIu32 " ms (0 = none), fsync %s)\n",
                   dir, ev->spool.max_bytes, ev->spool.max_age_ms, fs);
        }
    }
}

static void json_warnings(struct gw_json *j, const struct cfg_errors *w)
{
    gw_json_key(j, "warnings");
    gw_json_array_begin(j);
    for (size_t i = 0; w && i < w->n; i++) {
        const struct cfg_error *e = &w->items[i];
        gw_json_object_begin(j);
        gw_json_key(j, "line");
        gw_json_uint(j, e->mark.line);
        gw_json_key(j, "col");
        gw_json_uint(j, e->mark.col);
        gw_json_key(j, "path");
        gw_json_string(j, e->path);
        gw_json_key(j, "message");
        gw_json_string(j, e->message);
        gw_json_object_end(j);
    }
    gw_json_array_end(j);
}

static void json_events(struct gw_json *j, const struct cfg *cfg,
                        const struct totals *t)
{
    const struct cfg_events *ev = &cfg->events;
    gw_json_key(j, "events");
    if (!ev->present) {
        gw_json_null(j);
        return;
    }
    gw_json_object_begin(j);
    gw_json_key(j, "service");
    if (ev->service)
        gw_json_string(j, ev->service);
    else
        gw_json_null(j);
    gw_json_key(j, "pep");
    gw_json_bool(j, ev->service == NULL);
    gw_json_key(j, "node_prefix");
    gw_json_string(j, ev->node_prefix);
    gw_json_key(j, "nodes");
    gw_json_uint(j, t->units);
    gw_json_key(j, "access_model");
    gw_json_string(j, cfg_access_model_name(ev->access_model));
    gw_json_key(j, "max_items");
    gw_json_uint(j, ev->max_items);
    gw_json_key(j, "persist_items");
    gw_json_bool(j, ev->persist_items);
    gw_json_key(j, "notification_type");
    gw_json_string(j, cfg_notification_type_name(ev->notification_type));
    gw_json_key(j, "send_last_published_item");
    gw_json_string(j, cfg_send_last_name(ev->send_last));
    gw_json_key(j, "window");
    gw_json_uint(j, ev->window);
    gw_json_key(j, "publish_timeout_ms");
    gw_json_uint(j, ev->publish_timeout_ms);
    gw_json_key(j, "points");
    gw_json_uint(j, t->events);
    gw_json_key(j, "delivery");
    gw_json_string(j, cfg_delivery_name(ev->delivery));
    if (ev->delivery == CFG_DELIVERY_EVERY) {
        char dir[4096];
        gw_json_key(j, "spool");
        gw_json_object_begin(j);
        gw_json_key(j, "dir");
        if (cfg_spool_dir(&ev->spool, dir, sizeof(dir)) == GW_OK)
            gw_json_string(j, dir);
        else
            gw_json_null(j);
        gw_json_key(j, "max_bytes");
        gw_json_uint(j, ev->spool.max_bytes);
        gw_json_key(j, "max_age_ms");
        gw_json_uint(j, ev->spool.max_age_ms);
        gw_json_key(j, "fsync_ms");
        gw_json_uint(j, ev->spool.fsync_ms);
        gw_json_object_end(j);
    }
    gw_json_object_end(j);
}

static void print_json(const struct cfg *cfg, const char *path)
{
    struct totals t;
    count(cfg, &t);
    struct gw_json j;
    gw_json_init(&j, stdout);
    gw_json_object_begin(&j);
    gw_json_key(&j, "file");
    gw_json_string(&j, path);
    gw_json_key(&j, "valid");
    gw_json_bool(&j, true);
    gw_json_key(&j, "links");
    gw_json_array_begin(&j);
    for (size_t i = 0; i < cfg->n_links; i++) {
        const struct cfg_link *l = &cfg->links[i];
        char ep[300];
        endpoint(l, ep, sizeof(ep));
        gw_json_object_begin(&j);
        gw_json_key(&j, "name");
        gw_json_string(&j, l->name);
        gw_json_key(&j, "type");
        gw_json_string(&j, cfg_link_type_name(l->type));
        gw_json_key(&j, "endpoint");
        gw_json_string(&j, ep);
        gw_json_key(&j, "units");
        gw_json_uint(&j, l->n_units);
        gw_json_object_end(&j);
    }
    gw_json_array_end(&j);
    gw_json_key(&j, "units");
    gw_json_uint(&j, t.units);
    gw_json_key(&j, "points");
    gw_json_uint(&j, t.points);
    gw_json_key(&j, "points_by_type");
    gw_json_object_begin(&j);
    for (int k = 0; k < N_TYPES; k++) {
        if (!t.by_type[k])
            continue;
        gw_json_key(&j, cfg_type_name((enum cfg_type)k));
        gw_json_uint(&j, t.by_type[k]);
    }
    gw_json_object_end(&j);
    gw_json_key(&j, "writable");
    gw_json_uint(&j, t.writable);
    gw_json_key(&j, "poll_groups");
    gw_json_array_begin(&j);
    for (size_t i = 0; i < cfg->n_poll_groups; i++) {
        gw_json_object_begin(&j);
        gw_json_key(&j, "name");
        gw_json_string(&j, cfg->poll_groups[i].name);
        gw_json_key(&j, "interval_ms");
        gw_json_uint(&j, cfg->poll_groups[i].interval_ms);
        gw_json_object_end(&j);
    }
    gw_json_array_end(&j);
    gw_json_key(&j, "templates");
    gw_json_array_begin(&j);
    for (size_t i = 0; i < cfg->n_templates; i++) {
        gw_json_object_begin(&j);
        gw_json_key(&j, "name");
        gw_json_string(&j, cfg->templates[i].name);
        gw_json_key(&j, "points");
        gw_json_uint(&j, cfg->templates[i].n_points);
        gw_json_key(&j, "used_by");
        gw_json_uint(&j, template_uses(cfg, cfg->templates[i].name));
        gw_json_object_end(&j);
    }
    gw_json_array_end(&j);
    json_events(&j, cfg, &t);
    json_warnings(&j, &cfg->warnings);
    gw_json_object_end(&j);
    gw_json_newline(&j);
}

static void print_json_errors(const struct cfg_errors *errs, const char *path,
                              int rc)
{
    struct gw_json j;
    gw_json_init(&j, stdout);
    gw_json_object_begin(&j);
    gw_json_key(&j, "file");
    gw_json_string(&j, path);
    gw_json_key(&j, "valid");
    gw_json_bool(&j, false);
    gw_json_key(&j, "error");
    gw_json_string(&j, gw_err_name(rc));
    gw_json_key(&j, "errors");
    gw_json_array_begin(&j);
    for (size_t i = 0; i < errs->n; i++) {
        const struct cfg_error *e = &errs->items[i];
        gw_json_object_begin(&j);
        gw_json_key(&j, "line");
        gw_json_uint(&j, e->mark.line);
        gw_json_key(&j, "col");
        gw_json_uint(&j, e->mark.col);
        gw_json_key(&j, "path");
        gw_json_string(&j, e->path);
        gw_json_key(&j, "message");
        gw_json_string(&j, e->message);
        gw_json_object_end(&j);
    }
    gw_json_array_end(&j);
    gw_json_object_end(&j);
    gw_json_newline(&j);
}

/* delivery every: warns when the spool directory (as the daemon would
 * resolve it now) exists and is not a writable directory, or does not
 * exist and cannot be created (its nearest existing parent is not
 * writable).  A warning only: the daemon falls back to latest values. */
static void check_spool_dir(struct cfg *cfg)
{
    const struct cfg_events *ev = &cfg->events;
    if (!ev->present || ev->delivery != CFG_DELIVERY_EVERY)
        return;
    char dir[4096];
    struct cfg_mark mark = ev->spool.mark.line ? ev->spool.mark : ev->mark;
    const char *key = ev->spool.dir ? "events.spool.dir" : "events.delivery";
    if (cfg_spool_dir(&ev->spool, dir, sizeof(dir)) != GW_OK) {
        cfg_warning_add(cfg, mark, key, "the spool directory is too long");
        return;
    }
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            cfg_warning_add(cfg, mark, key,
                            "the spool directory %.200s is not a directory; "
                            "events would fall back to latest values",
                            dir);
        else if (access(dir, W_OK | X_OK) != 0)
            cfg_warning_add(cfg, mark, key,
                            "the spool directory %.200s is not writable (%s) "
                            "for this user; events would fall back to latest "
                            "values",
                            dir, strerror(errno));
        return;
    }
    int err = errno;
    char parent[sizeof(dir)];
    snprintf(parent, sizeof(parent), "%s", dir);
    for (;;) {
        char *slash = strrchr(parent, '/');
        if (!slash)
            break;
        if (slash == parent)
            slash[1] = '\0';
        else
            *slash = '\0';
        if (stat(parent, &st) == 0) {
            if (!S_ISDIR(st.st_mode) || access(parent, W_OK | X_OK) != 0)
                cfg_warning_add(cfg, mark, key,
                                "the spool directory %.200s does not exist "
                                "(%s) and cannot be created in %.200s; events "
                                "would fall back to latest values",
                                dir, strerror(err), parent);
            return;
        }
        if (slash == parent)
            break;
    }
    cfg_warning_add(cfg, mark, key,
                    "the spool directory %.200s cannot be created", dir);
}

int gw_cmd_check(int argc, char **argv)
{
    const char *path;
    bool json;
    int st = gw_cli_map_options(argc, argv, "check", usage, &path, &json);
    if (st >= 0)
        return st;
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc = cfg_load(path, &cfg, &errs);
    int status;
    if (rc == GW_OK) {
        check_spool_dir(cfg);
        /* warnings do not fail the check */
        cfg_warnings_print(cfg, stderr);
        if (cfg->warnings.n)
            fprintf(stderr, "%zu warning(s)\n", cfg->warnings.n);
        if (json)
            print_json(cfg, path);
        else
            print_text(cfg, path);
        status = 0;
    } else {
        cfg_errors_print(&errs, stderr);
        if (errs.n)
            fprintf(stderr, "%zu error(s)\n", errs.n);
        else
            fprintf(stderr, "fieldgate: %s: %s\n", path, gw_strerror(rc));
        if (json)
            print_json_errors(&errs, path, rc);
        status = 1;
    }
    cfg_free(cfg);
    cfg_errors_close(&errs);
    return status;
}
