/* gw_cmd_run.c - `fieldgate run`: parse options, run the daemon. */
#include <getopt.h>
#include <stdio.h>

#include "cfg.h"
#include "gw_cli.h"
#include "gw_daemon.h"
#include "gw_err.h"
#include "gw_log.h"
#include "gw_status.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fieldgate run -c FILE [--log-level "
            "error|warn|notice|info|debug]\n"
            "                     [--status-file PATH]\n"
            "Runs the daemon: polls the map's devices and, with an xmpp: "
            "section, serves\nXMPP.  SIGHUP reloads the map (an invalid one "
            "is refused), SIGTERM or SIGINT\nstop it (exit 0).\n"
            "  --status-file PATH  write the status snapshot (`fieldgate "
            "status`) to PATH\n"
            "                      every 2 s; default "
            "$RUNTIME_DIRECTORY/status.json when\n"
            "                      systemd sets RUNTIME_DIRECTORY, else none; "
            "'' for none\n" GW_EXIT_HELP);
}

int gw_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'l'},
        {"status-file", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct gw_log log;
    gw_log_init(&log);
    const char *path = NULL;
    const char *status_path = NULL;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 's':
            status_path = optarg;
            break;
        case 'l':
            if (gw_log_level_parse(optarg, &log.level) != 0) {
                fprintf(stderr, "fieldgate: unknown log level '%s'\n", optarg);
                return GW_EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return GW_EXIT_OK;
        default:
            usage(stderr);
            return GW_EXIT_USAGE;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return GW_EXIT_USAGE;
    }
    /* An invalid map is the operator's to fix (exit 1, and systemd does not
     * restart); anything the daemon meets later is a failure (exit 3). */
    struct cfg *cfg = NULL;
    if (gw_cli_load_map(path, &cfg) != GW_OK)
        return GW_EXIT_MAP;
    cfg_free(cfg);
    char status_buf[4096];
    if (!status_path) {
        int rc = gw_status_default_path(NULL, status_buf, sizeof(status_buf));
        if (rc == GW_ELIMIT)
            GW_LOG(&log, GW_LOG_WARN, "daemon",
                   "RUNTIME_DIRECTORY is too long: no status file");
        if (rc == GW_OK)
            status_path = status_buf;
    }
    struct gw_daemon_opts dopts = {.status_path = status_path};
    return gw_daemon_run(path, &dopts, &log) == 0 ? GW_EXIT_OK : GW_EXIT_FAILED;
}
