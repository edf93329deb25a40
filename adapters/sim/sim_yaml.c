/* sim_yaml.c - the unit file (placeholder until the loader lands). */
#include "sim_config.h"

#include "gw_err.h"

int sim__yaml_load(struct sim_config *cfg, const char *path, FILE *err)
{
    fprintf(err, "%s: unit files are not supported yet\n", path);
    return GW_EUNSUPPORTED;
}
