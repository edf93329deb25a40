/* gw_daemon.c - the fieldgate daemon: signals, reload, systemd. */
#include "gw_daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cfg.h"
#include "gw_cli.h"
#include "gw_engine.h"
#include "gw_err.h"
#include "gw_notify.h"
#include "gw_status.h"
#include "gw_store.h"
#include "gw_xmpp.h"

struct gw_daemon {
    uv_loop_t loop;
    struct gw_log *log;
    const char *cfg_path;
    struct cfg *cfg;
    struct gw_store store;
    struct gw_engine *eng;
    struct gw_xmpp *xmpp;
    struct cfg *next_cfg; /* a validated map waiting to replace cfg */
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t watchdog;
    bool stopping;
    bool store_live;   /* between gw_store_init and gw_store_close */
    bool xmpp_closing; /* gw_xmpp_free called, not closed yet */
    int exit_code;
    /* The status snapshot (gateway/gw_status); path NULL: none. */
    const char *status_path;
    uv_timer_t status_timer;
    int64_t start_ms;
    struct gw_status_xmpp st_xmpp;     /* the last counters seen: kept */
    struct gw_status_events st_events; /* while the XMPP side is down */
    bool status_failing;               /* the last write failed (logged) */
    int status_err;                    /* its error (errno or gw_err) */
    uint64_t status_logged_ms;         /* loop time it was logged */
};

static const char *const AREA = "daemon";

/* A failing status file is logged once, again when the error changes, and
 * at most every 10 minutes while it lasts. */
#define STATUS_RELOG_MS (10 * 60 * 1000)

static uint64_t unit_published(void *ud, size_t link, size_t unit)
{
    struct gw_daemon *d = ud;
    return d->xmpp && !d->xmpp_closing
               ? gw_xmpp_unit_published(d->xmpp, link, unit)
               : 0;
}

/* Writes the status snapshot (state: running, reloading, stopping,
 * stopped).  Small and on tmpfs: done on the loop thread. */
static void status_write(struct gw_daemon *d, const char *state)
{
    if (!d->status_path || !d->cfg)
        return;
    if (d->xmpp && !d->xmpp_closing) {
        gw_xmpp_get_status(d->xmpp, &d->st_xmpp, &d->st_events);
    } else {
        /* Down (a reload, a stop): the last counters, offline. */
        d->st_xmpp.online = false;
        snprintf(d->st_events.state, sizeof(d->st_events.state), "offline");
        d->st_events.in_flight = 0;
    }
    if (!d->st_xmpp.jid[0] && d->cfg->xmpp.jid)
        snprintf(d->st_xmpp.jid, sizeof(d->st_xmpp.jid), "%s",
                 d->cfg->xmpp.jid);
    if (!d->st_events.state[0])
        snprintf(d->st_events.state, sizeof(d->st_events.state), "offline");
    struct gw_status_info in = {
        .state = state,
        .pid = (long)getpid(),
        .start_ms = d->start_ms,
        .now_ms = gw_now_ms(),
        .map_path = d->cfg_path,
        .cfg = d->cfg,
        .store = d->store_live ? &d->store : NULL,
        .xmpp = d->cfg->xmpp.present ? &d->st_xmpp : NULL,
        .events = d->cfg->events.present ? &d->st_events : NULL,
        .unit_published = unit_published,
        .unit_ud = d,
    };
    int sys_errno = 0;
    int rc = gw_status_write_file(d->status_path, &in, &sys_errno);
    if (rc == GW_OK) {
        if (d->status_failing)
            GW_LOG(d->log, GW_LOG_NOTICE, AREA, "status file %s written again",
                   d->status_path);
        d->status_failing = false;
        return;
    }
    int err = rc == GW_ESYS ? sys_errno : rc;
    uint64_t now = uv_now(&d->loop);
    if (!d->status_failing || err != d->status_err ||
        now - d->status_logged_ms >= STATUS_RELOG_MS) {
        GW_LOG(d->log, GW_LOG_WARN, AREA,
               "cannot write the status file %s: %s (polling goes on)",
               d->status_path,
               rc == GW_ESYS ? strerror(sys_errno) : gw_strerror(rc));
        d->status_logged_ms = now;
    }
    d->status_failing = true;
    d->status_err = err;
}

static void on_status_timer(uv_timer_t *t)
{
    struct gw_daemon *d = t->data;
    status_write(d, d->stopping   ? "stopping"
                    : d->next_cfg ? "reloading"
                                  : "running");
}

static void on_store_event(void *data, enum gw_store_event ev, size_t link,
                           size_t unit, size_t point)
{
    struct gw_daemon *d = data;
    if (ev == GW_STORE_CYCLE)
        return;
    if (ev == GW_STORE_LINK) {
        GW_LOG(d->log, GW_LOG_NOTICE, "state", "link %s: %s",
               d->cfg->links[link].name,
               d->store.links[link].connected ? "connected" : "disconnected");
        return;
    }
    if (ev == GW_STORE_UNIT) {
        const struct gw_unit_state *us = &d->store.links[link].units[unit];
        char why[96];
        if (us->status == GW_UNIT_ONLINE)
            GW_LOG(d->log, GW_LOG_NOTICE, "state", "unit %s: online",
                   d->cfg->links[link].units[unit].name);
        else
            GW_LOG(d->log, GW_LOG_WARN, "state", "unit %s: %s (last error: %s)",
                   d->cfg->links[link].units[unit].name,
                   gw_unit_status_name(us->status),
                   gw_store_err_text(us->last_err, us->last_exception, why,
                                     sizeof(why)));
        return;
    }
    const struct cfg_unit *cu = &d->cfg->links[link].units[unit];
    const struct gw_point_state *ps =
        gw_store_point(&d->store, link, unit, point);
    if (ps->quality == GW_Q_OK) {
        char buf[AD_STRING_MAX + 1];
        ad_value_format(&cu->points[point], &ps->value, buf, sizeof(buf));
        GW_LOG(d->log, GW_LOG_DEBUG, "store", "%s.%s = %s", cu->name,
               cu->points[point].name, buf);
    } else {
        GW_LOG(d->log, GW_LOG_DEBUG, "store", "%s.%s: %s", cu->name,
               cu->points[point].name, gw_quality_name(ps->quality));
    }
}

static int start_engine(struct gw_daemon *d)
{
    int rc = gw_store_init(&d->store, d->cfg);
    if (rc != GW_OK)
        return rc;
    d->store_live = true;
    gw_store_listen(&d->store, on_store_event, d);
    struct gw_engine_opts opts = {.poll = true};
    rc = gw_engine_new(&d->loop, d->cfg, &d->store, d->log, &opts, &d->eng);
    if (rc != GW_OK)
        return rc;
    rc = gw_engine_start(d->eng);
    if (rc != GW_OK)
        return rc;
    size_t units = 0, points = 0;
    for (size_t l = 0; l < d->cfg->n_links; l++) {
        units += d->cfg->links[l].n_units;
        for (size_t u = 0; u < d->cfg->links[l].n_units; u++)
            points += d->cfg->links[l].units[u].n_points;
    }
    if (d->cfg->xmpp.present) {
        rc = gw_xmpp_new(&d->loop, d->cfg, &d->store, d->eng, d->log, &d->xmpp);
        if (rc == GW_OK)
            rc = gw_xmpp_start(d->xmpp);
        if (rc != GW_OK)
            return rc;
    }
    GW_LOG(d->log, GW_LOG_NOTICE, AREA,
           "polling %zu link(s), %zu unit(s), %zu point(s) from %s",
           d->cfg->n_links, units, points, d->cfg_path);
    char status[128];
    snprintf(status, sizeof(status), "STATUS=polling %zu units", units);
    gw_notify(status);
    status_write(d, "running");
    return GW_OK;
}

static void close_all(struct gw_daemon *d);
static void on_engine_closed(void *data);

/* Takes the services down in reverse order of dependency: the XMPP side
 * (it reads the store and drives the engine), then the engine. */
static void services_down(struct gw_daemon *d);

static void on_xmpp_closed(void *data)
{
    struct gw_daemon *d = data;
    d->xmpp = NULL;
    d->xmpp_closing = false;
    services_down(d);
}

static void services_down(struct gw_daemon *d)
{
    if (d->xmpp) {
        if (d->xmpp_closing)
            return;
        /* Its last counters, for the snapshots while it is down. */
        gw_xmpp_get_status(d->xmpp, &d->st_xmpp, &d->st_events);
        d->xmpp_closing = true;
        gw_xmpp_free(d->xmpp, on_xmpp_closed, d);
        return;
    }
    if (d->eng) {
        gw_engine_free(d->eng, on_engine_closed, d);
        return;
    }
    on_engine_closed(d);
}

static void on_engine_closed(void *data)
{
    struct gw_daemon *d = data;
    d->eng = NULL;
    if (d->stopping)
        status_write(d, "stopped");
    gw_store_close(&d->store);
    d->store_live = false;
    if (d->stopping) {
        close_all(d);
        return;
    }
    /* A reload: swap in the new map. */
    cfg_free(d->cfg);
    d->cfg = d->next_cfg;
    d->next_cfg = NULL;
    int rc = start_engine(d);
    if (rc != GW_OK) {
        GW_LOG(d->log, GW_LOG_ERROR, AREA, "cannot restart: %s",
               gw_strerror(rc));
        d->exit_code = 1;
        d->stopping = true;
        services_down(d);
        return;
    }
    gw_notify("READY=1");
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void close_all(struct gw_daemon *d)
{
    uv_walk(&d->loop, walk_close, NULL);
}

static void stop(struct gw_daemon *d, const char *why)
{
    if (d->stopping)
        return;
    d->stopping = true;
    GW_LOG(d->log, GW_LOG_NOTICE, AREA, "stopping (%s)", why);
    gw_notify("STOPPING=1");
    status_write(d, "stopping");
    /* During a reload the services are already going down: the engine's
     * close sees stopping and ends the loop (the new map is not used). */
    if (!d->next_cfg)
        services_down(d);
}

/* The map's warnings (valid, but probably not what was meant), one log
 * line each, as `fieldgate check` prints them. */
/* Logs each item of a map's errors or warnings as `fieldgate check`
 * prints them: "FILE:LINE:COL: key: PREFIXmessage". */
static void log_map_items(const struct gw_daemon *d,
                          const struct cfg_errors *list,
                          enum gw_log_level level, const char *prefix)
{
    for (size_t i = 0; i < list->n; i++)
        GW_LOG(d->log, level, "config", "%s:%u:%u: %s: %s%s",
               list->file ? list->file : d->cfg_path, list->items[i].mark.line,
               list->items[i].mark.col, list->items[i].path, prefix,
               list->items[i].message);
}

static void log_map_warnings(const struct gw_daemon *d, const struct cfg *cfg)
{
    log_map_items(d, &cfg->warnings, GW_LOG_WARN, "warning: ");
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct gw_daemon *d = h->data;
    if (signum != SIGHUP) {
        stop(d, signum == SIGINT ? "SIGINT" : "SIGTERM");
        return;
    }
    if (d->stopping || d->next_cfg)
        return;
    gw_notify("RELOADING=1");
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc = cfg_load(d->cfg_path, &cfg, &errs);
    if (rc != GW_OK) {
        log_map_items(d, &errs, GW_LOG_ERROR, "");
        GW_LOG(d->log, GW_LOG_ERROR, AREA,
               "reload refused (%s); still running the previous map",
               gw_strerror(rc));
        cfg_errors_close(&errs);
        gw_notify("READY=1");
        return;
    }
    cfg_errors_close(&errs);
    GW_LOG(d->log, GW_LOG_NOTICE, AREA, "reloading %s", d->cfg_path);
    log_map_warnings(d, cfg);
    d->next_cfg = cfg;
    status_write(d, "reloading");
    services_down(d);
}

static void on_watchdog(uv_timer_t *t)
{
    gw_notify("WATCHDOG=1");
}

int gw_daemon_run(const char *cfg_path, const struct gw_daemon_opts *opts,
                  struct gw_log *log)
{
    struct gw_daemon d;
    memset(&d, 0, sizeof(d));
    d.log = log;
    d.cfg_path = cfg_path;
    d.start_ms = gw_now_ms();
    d.status_path = opts && opts->status_path && *opts->status_path
                        ? opts->status_path
                        : NULL;
    int rc = gw_cli_load_map(cfg_path, &d.cfg);
    if (rc != GW_OK)
        return 1;
    log_map_warnings(&d, d.cfg);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&d.loop);
    uv_signal_init(&d.loop, &d.sig_int);
    uv_signal_init(&d.loop, &d.sig_term);
    uv_signal_init(&d.loop, &d.sig_hup);
    d.sig_int.data = d.sig_term.data = d.sig_hup.data = &d;
    uv_signal_start(&d.sig_int, on_signal, SIGINT);
    uv_signal_start(&d.sig_term, on_signal, SIGTERM);
    uv_signal_start(&d.sig_hup, on_signal, SIGHUP);
    uint64_t wd = gw_notify_watchdog_ms();
    if (wd) {
        uv_timer_init(&d.loop, &d.watchdog);
        uv_timer_start(&d.watchdog, on_watchdog, wd / 2, wd / 2);
    }
    if (d.status_path) {
        uv_timer_init(&d.loop, &d.status_timer);
        d.status_timer.data = &d;
        uv_timer_start(&d.status_timer, on_status_timer, GW_STATUS_PERIOD_MS,
                       GW_STATUS_PERIOD_MS);
        GW_LOG(log, GW_LOG_INFO, AREA, "status file %s", d.status_path);
    }
    rc = start_engine(&d);
    if (rc != GW_OK) {
        GW_LOG(log, GW_LOG_ERROR, AREA, "cannot start: %s", gw_strerror(rc));
        d.exit_code = 1;
        stop(&d, "start failed");
    } else {
        gw_notify("READY=1");
    }
    uv_run(&d.loop, UV_RUN_DEFAULT);
    int lrc = uv_loop_close(&d.loop);
    if (lrc != 0) {
        GW_LOG(log, GW_LOG_ERROR, AREA, "loop not closed cleanly: %s",
               uv_strerror(lrc));
        d.exit_code = 1;
    }
    cfg_free(d.next_cfg);
    cfg_free(d.cfg);
    GW_LOG(log, GW_LOG_NOTICE, AREA, "stopped");
    return d.exit_code;
}
