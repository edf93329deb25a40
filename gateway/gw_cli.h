/* gw_cli.h - the fieldgate command line: one function per subcommand.
 *
 * Each gw_cmd_* takes the arguments after the subcommand name (argv[0] is
 * the subcommand) and returns the process exit status, one of enum
 * gw_exit (README.md, "Exit status"; `fieldgate --help`). */
#ifndef GW_CLI_H
#define GW_CLI_H

#include <stdbool.h>
#include <stdio.h>

struct cfg;

/* Exit status of every command.  1 and 2 mean "fix what you gave" (a
 * restart cannot help: systemd/fieldgate.service's RestartPreventExitStatus),
 * 3 "the field or the daemon failed" (a retry may help). */
enum gw_exit {
    GW_EXIT_OK = 0,
    /* The map cannot be read or is invalid, or what the command names does
     * not fit it: an unknown unit or point, a value the point cannot take,
     * a point that is not writable.  For `check`: the map has errors. */
    GW_EXIT_MAP = 1,
    GW_EXIT_USAGE = 2, /* an unknown command or option, a missing argument */
    /* The command ran and failed at run time: a read or write a device did
     * not complete (timeout, exception, link down), the engine could not
     * start, the daemon stopped on an error, or a one-shot read was
     * interrupted before it completed.  For `status`: no snapshot, or one
     * of a daemon that is not running. */
    GW_EXIT_FAILED = 3,
};

/* The exit status paragraph of the --help texts. */
#define GW_EXIT_HELP                                                           \
    "Exit status: 0 success, 1 invalid map (or a unit, point or value not\n"   \
    "in it), 2 usage error, 3 a device or the daemon failed.\n"

int gw_cli_main(int argc, char **argv);

/* Loads a map for a command; on failure prints every error to stderr
 * ("FILE:LINE:COL: path: message", then "N error(s)") and returns the
 * cfg_load error.  *out as cfg_load. */
int gw_cli_load_map(const char *path, struct cfg **out);

/* The options of commands that take just a map: -c FILE, --json, --help
 * and no operands.  Returns -1 when the command should go on, else the
 * exit status (0 after --help, 2 for a usage error). */
int gw_cli_map_options(int argc, char **argv, const char *cmd,
                       void (*usage)(FILE *out), const char **path, bool *json);

int gw_cmd_check(int argc, char **argv);  /* gw_cmd_check.c */
int gw_cmd_plan(int argc, char **argv);   /* gw_cmd_plan.c */
int gw_cmd_read(int argc, char **argv);   /* gw_cmd_read.c */
int gw_cmd_write(int argc, char **argv);  /* gw_cmd_read.c */
int gw_cmd_run(int argc, char **argv);    /* gw_cmd_run.c */
int gw_cmd_status(int argc, char **argv); /* gw_cmd_status.c */

#endif
