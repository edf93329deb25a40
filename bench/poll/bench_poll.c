/* bench_poll.c - the polling engine against a minimal poller.
 *
 * For each unit count N (default 10, 100, 500) it starts fieldgate-sim with
 * units 1..N on 127.0.0.1, then runs, each in a child process of its own
 * (so CPU time and peak RSS are that run's alone):
 *   engine    the real engine (gw_engine + gw_store + planner + codec) with
 *             N units x M uint16 holding registers on L TCP links, one poll
 *             group at the interval, for the given seconds;
 *   baseline  L threads, each with its own libmodbus connection, reading
 *             the same registers (one FC03 of M registers per unit) at the
 *             same interval: no store, no planner, no decoding.
 * Point reads are counted from successful requests (M points each).  The
 * table shows point reads/s, CPU seconds per 1000 point reads (user+sys of
 * the child) and peak RSS (the child's ru_maxrss). */
#include <errno.h>
#include <getopt.h>
#include <modbus.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cfg.h"
#include "fgt_proc.h"
#include "gw_engine.h"
#include "gw_err.h"
#include "gw_store.h"

#define MAX_SIZES 8
#define MAX_LINKS 64
#define IDS_PER_LINK 247 /* Modbus unit ids 1..247 on one endpoint */

struct opts {
    unsigned sizes[MAX_SIZES];
    size_t n_sizes;
    unsigned points;
    unsigned links;
    unsigned seconds;
    unsigned interval_ms;
};

/* Units of link l when n units are spread over `links` links: ids
 * 1..units_of(). */
static unsigned units_of(unsigned n, unsigned links, unsigned l)
{
    return n / links + (l < n % links ? 1 : 0);
}

static unsigned links_for(const struct opts *o, unsigned n)
{
    unsigned need = (n + IDS_PER_LINK - 1) / IDS_PER_LINK;
    return o->links > need ? o->links : need;
}

struct result {
    unsigned long long reads; /* point reads */
    unsigned long long errors;
};

/* ---- engine ----------------------------------------------------------- */

static char *engine_map(const struct opts *o, unsigned units,
                        const uint16_t *ports)
{
    unsigned links = links_for(o, units);
    size_t cap = 4096 + (size_t)units * (200 + (size_t)o->points * 80);
    char *y = malloc(cap);
    if (!y)
        return NULL;
    size_t n = (size_t)snprintf(y, cap,
                                "poll_groups:\n"
                                "  - {name: default, interval: %ums}\n"
                                "links:\n",
                                o->interval_ms);
    for (unsigned l = 0; l < links; l++) {
        n += (size_t)snprintf(y + n, cap - n,
                              "  - name: link%u\n"
                              "    type: tcp\n"
                              "    host: 127.0.0.1\n"
                              "    port: %u\n"
                              "    timeout: 1s\n"
                              "    units:\n",
                              l, (unsigned)ports[l]);
        for (unsigned u = 1; u <= units_of(units, links, l); u++) {
            n += (size_t)snprintf(y + n, cap - n,
                                  "      - name: l%uu%u\n"
                                  "        id: %u\n"
                                  "        points:\n",
                                  l, u, u);
            for (unsigned p = 0; p < o->points; p++)
                n += (size_t)snprintf(y + n, cap - n,
                                      "          - {name: p%u, table: holding, "
                                      "address: %u, type: uint16}\n",
                                      p, p);
        }
    }
    return y;
}

static void on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static int run_engine(const struct opts *o, unsigned units,
                      const uint16_t *ports, struct result *res)
{
    char *yaml = engine_map(o, units, ports);
    if (!yaml)
        return 1;
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc = cfg_load_buffer("bench.yaml", yaml, strlen(yaml), &cfg, &errs);
    free(yaml);
    if (rc != GW_OK) {
        cfg_errors_print(&errs, stderr);
        cfg_errors_close(&errs);
        return 1;
    }
    cfg_errors_close(&errs);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct gw_log log;
    gw_log_init(&log);
    log.level = GW_LOG_WARN;
    struct gw_store store;
    struct gw_engine *eng = NULL;
    struct gw_engine_opts eo = {.poll = true};
    if (gw_store_init(&store, cfg) != GW_OK ||
        gw_engine_new(&loop, cfg, &store, &log, &eo, &eng) != GW_OK ||
        gw_engine_start(eng) != GW_OK)
        return 1;
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop, (uint64_t)o->seconds * 1000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (size_t l = 0; l < cfg->n_links; l++) {
        for (size_t u = 0; u < cfg->links[l].n_units; u++) {
            const struct gw_counters *c = &store.links[l].units[u].c;
            res->reads += (c->requests - c->errors) * o->points;
            res->errors += c->errors;
        }
    }
    gw_engine_free(eng, NULL, NULL);
    uv_close((uv_handle_t *)&stop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop) == 0 ? 0 : 1;
    gw_store_close(&store);
    cfg_free(cfg);
    return rc;
}

/* ---- baseline: libmodbus in L threads ----------------------------------- */

struct worker {
    const struct opts *o;
    unsigned units; /* ids 1..units */
    uint16_t port;
    struct timespec end;
    struct result res;
};

static int ts_cmp(const struct timespec *a, const struct timespec *b)
{
    if (a->tv_sec != b->tv_sec)
        return a->tv_sec < b->tv_sec ? -1 : 1;
    return a->tv_nsec < b->tv_nsec ? -1 : a->tv_nsec > b->tv_nsec;
}

static void *baseline_worker(void *arg)
{
    struct worker *w = arg;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)w->port);
    modbus_t *mb = modbus_new_tcp_pi("127.0.0.1", port);
    if (!mb || modbus_connect(mb) != 0) {
        fprintf(stderr, "baseline: cannot connect: %s\n",
                modbus_strerror(errno));
        if (mb)
            modbus_free(mb);
        return NULL;
    }
    modbus_set_response_timeout(mb, 1, 0);
    uint16_t regs[CFG_MAX_READ_REGISTERS];
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (ts_cmp(&next, &w->end) < 0) {
        for (unsigned u = 1; u <= w->units; u++) {
            modbus_set_slave(mb, (int)u);
            if (modbus_read_registers(mb, 0, (int)w->o->points, regs) ==
                (int)w->o->points)
                w->res.reads += w->o->points;
            else
                w->res.errors++;
        }
        next.tv_nsec += (long)(w->o->interval_ms % 1000) * 1000000L;
        next.tv_sec += w->o->interval_ms / 1000 + next.tv_nsec / 1000000000L;
        next.tv_nsec %= 1000000000L;
        if (ts_cmp(&next, &w->end) >= 0)
            break;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) ==
               EINTR)
            ;
    }
    modbus_close(mb);
    modbus_free(mb);
    return NULL;
}

static int run_baseline(const struct opts *o, unsigned units,
                        const uint16_t *ports, struct result *res)
{
    struct worker w[MAX_LINKS];
    pthread_t th[MAX_LINKS];
    unsigned links = links_for(o, units);
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += o->seconds;
    for (unsigned l = 0; l < links; l++) {
        w[l] = (struct worker){.o = o,
                               .units = units_of(units, links, l),
                               .port = ports[l],
                               .end = end};
        if (pthread_create(&th[l], NULL, baseline_worker, &w[l]) != 0)
            return 1;
    }
    for (unsigned l = 0; l < links; l++) {
        pthread_join(th[l], NULL);
        res->reads += w[l].res.reads;
        res->errors += w[l].res.errors;
    }
    return 0;
}

/* ---- driver ----------------------------------------------------------- */

/* Runs one mode in a child; returns its result and rusage. */
static int measure(const struct opts *o, unsigned units, const uint16_t *ports,
                   bool engine, struct result *res, struct rusage *ru)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        struct result r = {0};
        int rc = engine ? run_engine(o, units, ports, &r)
                        : run_baseline(o, units, ports, &r);
        if (write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
            rc = 1;
        _exit(rc);
    }
    close(fds[1]);
    memset(res, 0, sizeof(*res));
    ssize_t n = read(fds[0], res, sizeof(*res));
    close(fds[0]);
    int status;
    if (wait4(pid, &status, 0, ru) != pid)
        return -1;
    if (n != (ssize_t)sizeof(*res) || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return -1;
    return 0;
}

/* fieldgate-sim with units 1..ids and one TCP listener a link (every
 * listener serves the same units). */
static int start_sim(struct fgt_proc *sim, unsigned ids, unsigned links,
                     uint16_t *ports)
{
    char path[512], range[32];
    fgt_build_path("fieldgate-sim", path, sizeof(path));
    snprintf(range, sizeof(range), "1-%u", ids);
    char *argv[2 * MAX_LINKS + 4];
    size_t n = 0;
    argv[n++] = path;
    for (unsigned l = 0; l < links; l++) {
        argv[n++] = (char *)"--tcp";
        argv[n++] = (char *)"127.0.0.1:0";
    }
    argv[n++] = (char *)"--units";
    argv[n++] = range;
    argv[n] = NULL;
    if (fgt_proc_start(sim, argv) != 0)
        return -1;
    if (fgt_proc_wait_line(sim, "READY", 15000) != 0) {
        fgt_proc_stop(sim, SIGKILL, 1000);
        return -1;
    }
    const char *at = sim->ready;
    for (unsigned l = 0; l < links; l++) {
        at = strstr(at, " tcp=127.0.0.1:");
        if (!at) {
            fgt_proc_stop(sim, SIGKILL, 1000);
            return -1;
        }
        at += strlen(" tcp=127.0.0.1:");
        ports[l] = (uint16_t)strtoul(at, NULL, 10);
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench_poll [--units 10,100,500] [--points 10] [--links 1]\n"
            "                  [--seconds 10] [--interval-ms 1000]\n"
            "Polls N units x M holding registers of fieldgate-sim over TCP "
            "with the\nengine, then with a minimal libmodbus poller in as "
            "many threads as links,\nand prints point reads/s, CPU s per "
            "1000 point reads and peak RSS.\nLinks are raised to what the unit "
            "count needs (247 ids a TCP endpoint).\n");
}

static int parse(struct opts *o, int argc, char **argv)
{
    static const struct option lo[] = {
        {"units", required_argument, NULL, 'u'},
        {"points", required_argument, NULL, 'p'},
        {"links", required_argument, NULL, 'l'},
        {"seconds", required_argument, NULL, 's'},
        {"interval-ms", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    *o = (struct opts){.sizes = {10, 100, 500},
                       .n_sizes = 3,
                       .points = 10,
                       .links = 1,
                       .seconds = 10,
                       .interval_ms = 1000};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end = NULL;
        unsigned long v = 0;
        if (c != 'u' && c != 'h' && c != '?') {
            v = strtoul(optarg, &end, 10);
            if (*end || v == 0) {
                usage(stderr);
                return 2;
            }
        }
        switch (c) {
        case 'u': {
            o->n_sizes = 0;
            const char *s = optarg;
            while (*s && o->n_sizes < MAX_SIZES) {
                v = strtoul(s, &end, 10);
                if (end == s || v == 0 || v > MAX_LINKS * IDS_PER_LINK) {
                    fprintf(stderr, "bench_poll: bad --units\n");
                    return 2;
                }
                o->sizes[o->n_sizes++] = (unsigned)v;
                s = *end == ',' ? end + 1 : end;
            }
            break;
        }
        case 'p':
            if (v > CFG_MAX_READ_REGISTERS)
                return 2;
            o->points = (unsigned)v;
            break;
        case 'l':
            if (v > MAX_LINKS)
                return 2;
            o->links = (unsigned)v;
            break;
        case 's':
            o->seconds = (unsigned)v;
            break;
        case 'i':
            o->interval_ms = (unsigned)v;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc = parse(&o, argc, argv);
    if (rc != 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    printf("%-6s %-6s %-5s %-9s %12s %16s %12s %8s\n", "units", "points",
           "links", "poller", "reads/s", "cpu_s/1k_reads", "peak_rss_MB",
           "errors");
    for (size_t i = 0; i < o.n_sizes; i++) {
        unsigned units = o.sizes[i];
        unsigned links = links_for(&o, units);
        uint16_t ports[MAX_LINKS];
        struct fgt_proc sim;
        if (start_sim(&sim, units_of(units, links, 0), links, ports) != 0) {
            fprintf(stderr, "bench_poll: cannot start fieldgate-sim\n");
            return 1;
        }
        for (int mode = 0; mode < 2; mode++) {
            struct result res;
            struct rusage ru;
            if (measure(&o, units, ports, mode == 0, &res, &ru) != 0) {
                fprintf(stderr, "bench_poll: %s run failed\n",
                        mode == 0 ? "engine" : "baseline");
                fgt_proc_stop(&sim, SIGTERM, 5000);
                return 1;
            }
            double cpu =
                (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
            double rate = (double)res.reads / o.seconds;
            printf("%-6u %-6u %-5u %-9s %12.1f %16.5f %12.1f %8llu\n", units,
                   o.points, links, mode == 0 ? "engine" : "baseline", rate,
                   res.reads ? cpu * 1000.0 / (double)res.reads : 0.0,
                   (double)ru.ru_maxrss / 1024.0, res.errors);
            fflush(stdout);
        }
        fgt_proc_stop(&sim, SIGTERM, 5000);
    }
    return 0;
}
