/* sim_config.h - the simulator's command line and unit file.
 *
 * sim_config_parse() reads argv into a struct sim_config: endpoints, flags
 * and one struct sim_unit_spec per unit id, built in this order: the file
 * (--file, see docs/simulator.md), --units (default contents), --unit with
 * its table flags, then the fault flags (which must name existing units).
 * Errors are printed to `err` as one line each, naming the flag or the
 * file position. */
#ifndef SIM_CONFIG_H
#define SIM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sim_device.h"
#include "sim_server.h"

struct sim_tcp_addr {
    char host[64];
    uint16_t port;
};

struct sim_config {
    struct sim_tcp_addr *tcp;
    size_t n_tcp;
    struct sim_rtu_opts *rtu;
    size_t n_rtu;
    struct sim_unit_spec *specs[SIM_MAX_UNIT + 1]; /* NULL = no such unit */
    uint32_t tick_ms;
    bool verbose;
    bool stats;
    bool help;
};

/* Fills cfg (zeroed first) from argv.  Returns 0 (cfg->help set for
 * --help), GW_EINVAL/GW_ERANGE/GW_EPARSE/GW_ECONFIG for bad input (already
 * printed), or GW_ENOMEM.  Free with sim_config_free() in every case. */
int sim_config_parse(struct sim_config *cfg, int argc, char **argv, FILE *err);
void sim_config_free(struct sim_config *cfg);

/* Prints the usage text. */
void sim_config_usage(FILE *out);

/* Loads a unit file into cfg->specs (internal: sim_yaml.c).  Returns 0 or
 * a gw_err after printing "FILE:LINE:COL: message" lines to err. */
int sim__yaml_load(struct sim_config *cfg, const char *path, FILE *err);

/* Returns cfg->specs[id], creating an empty spec first.  NULL on ENOMEM. */
struct sim_unit_spec *sim__spec_get(struct sim_config *cfg, uint8_t id);

/* Parses "1-10,12" (each id 1..255) into set[].  0 or GW_EPARSE. */
int sim__parse_ids(const char *text, bool set[SIM_MAX_UNIT + 1]);

/* Parses "100-109,200" into spec's illegal ranges.  0 or a gw_err. */
int sim__parse_ranges(const char *text, struct sim_unit_spec *spec);

#endif
