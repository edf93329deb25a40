/* gw_cli.h - the fieldgate command line: one function per subcommand.
 *
 * Each gw_cmd_* takes the arguments after the subcommand name (argv[0] is
 * the subcommand) and returns the process exit status: 0 success, 1 the
 * command ran and found a problem (bad map, failed read), 2 usage error. */
#ifndef GW_CLI_H
#define GW_CLI_H

#include <stdbool.h>
#include <stdio.h>

struct cfg;

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

int gw_cmd_check(int argc, char **argv); /* gw_cmd_check.c */
int gw_cmd_plan(int argc, char **argv);  /* gw_cmd_plan.c */
int gw_cmd_read(int argc, char **argv);  /* gw_cmd_read.c */
int gw_cmd_write(int argc, char **argv); /* gw_cmd_read.c */
int gw_cmd_run(int argc, char **argv);   /* gw_cmd_run.c */

#endif
