/* gw_cmd_run.c - `fieldgate run`: parse options, run the daemon. */
#include <getopt.h>
#include <stdio.h>

#include "gw_cli.h"
#include "gw_daemon.h"
#include "gw_log.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: fieldgate run -c FILE [--log-level "
                 "error|warn|notice|info|debug]\n");
}

int gw_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct gw_log log;
    gw_log_init(&log);
    const char *path = NULL;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'l':
            if (gw_log_level_parse(optarg, &log.level) != 0) {
                fprintf(stderr, "fieldgate: unknown log level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    return gw_daemon_run(path, &log);
}
