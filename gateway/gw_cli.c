/* gw_cli.c - subcommand dispatch for the fieldgate binary. */
#include "gw_cli.h"

#include "cfg.h"
#include "gw_err.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

struct gw_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct gw_command commands[] = {
    {"check", gw_cmd_check, "validate a device map and summarise it"},
    {"plan", gw_cmd_plan, "print the Modbus requests of one poll cycle"},
    {"read", gw_cmd_read, "read points now and print them"},
    {"write", gw_cmd_write, "write a value to a point"},
    {"run", gw_cmd_run, "run the gateway daemon"},
    {"status", gw_cmd_status, "show the running daemon's status snapshot"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: fieldgate COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'fieldgate COMMAND --help' describes a command's "
                 "options.\n\n" GW_EXIT_HELP
                 "read --watch: that of the last completed read.  status: 3 "
                 "when there is\nno snapshot or the daemon is not running.\n");
}

int gw_cli_map_options(int argc, char **argv, const char *cmd,
                       void (*print_usage)(FILE *out), const char **path,
                       bool *json)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    *path = NULL;
    *json = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            *path = optarg;
            break;
        case 'j':
            *json = true;
            break;
        case 'h':
            print_usage(stdout);
            return GW_EXIT_OK;
        default:
            print_usage(stderr);
            return GW_EXIT_USAGE;
        }
    }
    if (!*path || optind != argc) {
        if (optind != argc)
            fprintf(stderr, "fieldgate %s: unexpected argument '%s'\n", cmd,
                    argv[optind]);
        print_usage(stderr);
        return GW_EXIT_USAGE;
    }
    return -1;
}

int gw_cli_load_map(const char *path, struct cfg **out)
{
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    int rc = cfg_load(path, out, &errs);
    if (rc != GW_OK) {
        cfg_errors_print(&errs, stderr);
        if (errs.n)
            fprintf(stderr, "%zu error(s)\n", errs.n);
        else
            fprintf(stderr, "fieldgate: %s: %s\n", path, gw_strerror(rc));
    }
    cfg_errors_close(&errs);
    return rc;
}

int gw_cli_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return GW_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
        strcmp(name, "help") == 0) {
        usage(stdout);
        return GW_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("fieldgate %s\n", FG_VERSION);
        return GW_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "fieldgate: unknown command '%s'\n", name);
    usage(stderr);
    return GW_EXIT_USAGE;
}
