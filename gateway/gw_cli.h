/* gw_cli.h - the fieldgate command line: one function per subcommand.
 *
 * Each gw_cmd_* takes the arguments after the subcommand name (argv[0] is
 * the subcommand) and returns the process exit status: 0 success, 1 the
 * command ran and found a problem (bad map, failed read), 2 usage error. */
#ifndef GW_CLI_H
#define GW_CLI_H

int gw_cli_main(int argc, char **argv);

int gw_cmd_check(int argc, char **argv); /* gw_cmd_check.c */
int gw_cmd_plan(int argc, char **argv);  /* gw_cmd_plan.c */
int gw_cmd_read(int argc, char **argv);  /* gw_cmd_read.c */
int gw_cmd_write(int argc, char **argv); /* gw_cmd_read.c */
int gw_cmd_run(int argc, char **argv);   /* gw_cmd_run.c */

#endif
