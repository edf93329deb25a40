/* sim_main.c - fieldgate-sim: a Modbus TCP/RTU device simulator.
 *
 * Parses the command line (sim_config.c), builds the units
 * (sim_device.c), opens the listeners and serial ports, prints the READY
 * line and runs the loop until SIGTERM/SIGINT.  Exit status: 0 after a
 * clean stop, 1 when the setup failed, 2 for usage errors. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "gw_err.h"
#include "gw_log.h"
#include "sim_config.h"
#include "sim_server.h"

#define READY_MAX 4096

/* Hundreds of clients need fds: raise the soft limit to the hard one. */
static void raise_fd_limit(const struct gw_log *log)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        GW_LOG(log, GW_LOG_WARN, "sim", "could not raise the fd limit");
}

/* Appends " key=value" to the READY line. */
static void append(char *buf, size_t cap, const char *key, const char *value)
{
    size_t used = strlen(buf);
    if (used < cap)
        snprintf(buf + used, cap - used, " %s=%s", key, value);
}

static void print_stats(const struct sim_server *srv)
{
    uint64_t total = 0, exc = 0;
    for (unsigned id = 0; id <= SIM_MAX_UNIT; id++) {
        if (srv->units[id]) {
            total += srv->units[id]->requests;
            exc += srv->units[id]->exceptions;
        }
    }
    printf("STATS requests=%llu exceptions=%llu", (unsigned long long)total,
           (unsigned long long)exc);
    for (unsigned id = 0; id <= SIM_MAX_UNIT; id++) {
        const struct sim_unit *u = srv->units[id];
        if (u && u->requests)
            printf(" unit%u=%llu/%llu", id, (unsigned long long)u->requests,
                   (unsigned long long)u->exceptions);
    }
    printf("\n");
    fflush(stdout);
}

static int run(struct sim_config *cfg, const struct gw_log *log)
{
    struct sim_unit *units[SIM_MAX_UNIT + 1] = {NULL};
    struct sim_server srv;
    uv_loop_t loop;
    char ready[READY_MAX] = "READY";
    size_t n_units = 0;
    int rc = GW_OK;
    bool loop_open = false, srv_open = false;

    for (unsigned id = 0; id <= SIM_MAX_UNIT; id++) {
        if (!cfg->specs[id])
            continue;
        rc = sim_unit_new(cfg->specs[id], &units[id]);
        if (rc != GW_OK) {
            GW_LOG(log, GW_LOG_ERROR, "sim", "unit %u: %s", id,
                   gw_strerror(rc));
            goto out;
        }
        n_units++;
    }
    if (n_units == 0) {
        GW_LOG(log, GW_LOG_ERROR, "sim", "no units defined");
        rc = GW_ECONFIG;
        goto out;
    }
    if (uv_loop_init(&loop) != 0) {
        rc = GW_ESYS;
        goto out;
    }
    loop_open = true;
    rc = sim_server_init(&srv, &loop, log, units, cfg->tick_ms);
    srv_open = true;
    for (size_t k = 0; rc == GW_OK && k < cfg->n_tcp; k++) {
        char name[80];
        rc = sim_tcp_listen(&srv, cfg->tcp[k].host, cfg->tcp[k].port, name,
                            sizeof(name));
        if (rc == GW_OK)
            append(ready, sizeof(ready), "tcp", name);
    }
    for (size_t k = 0; rc == GW_OK && k < cfg->n_rtu; k++) {
        rc = sim_rtu_open(&srv, &cfg->rtu[k]);
        if (rc == GW_OK)
            append(ready, sizeof(ready), "rtu", cfg->rtu[k].device);
    }
    if (rc != GW_OK) {
        sim_server_stop(&srv);
        uv_run(&loop, UV_RUN_DEFAULT);
        goto out;
    }
    char count[32];
    snprintf(count, sizeof(count), "%zu", n_units);
    append(ready, sizeof(ready), "units", count);
    printf("%s\n", ready);
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (cfg->stats)
        print_stats(&srv);
out:
    if (srv_open)
        sim_server_close(&srv);
    if (loop_open && uv_loop_close(&loop) != 0) {
        GW_LOG(log, GW_LOG_ERROR, "sim", "loop still has open handles");
        rc = GW_EBUSY;
    }
    for (unsigned id = 0; id <= SIM_MAX_UNIT; id++)
        sim_unit_free(units[id]);
    return rc;
}

int main(int argc, char **argv)
{
    struct gw_log log;
    struct sim_config cfg;
    int status;
    gw_log_init(&log);
    signal(SIGPIPE, SIG_IGN);
    int rc = sim_config_parse(&cfg, argc, argv, stderr);
    if (rc != GW_OK || cfg.help) {
        if (cfg.help)
            sim_config_usage(stdout);
        else
            fprintf(stderr, "try: fieldgate-sim --help\n");
        sim_config_free(&cfg);
        return rc == GW_OK ? 0 : 2;
    }
    if (cfg.verbose)
        log.level = GW_LOG_DEBUG;
    raise_fd_limit(&log);
    rc = run(&cfg, &log);
    status = rc == GW_OK ? 0 : 1;
    sim_config_free(&cfg);
    return status;
}
