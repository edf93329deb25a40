/* sim_rtu.c - Modbus RTU on a serial line (placeholder). */
#include "sim_server.h"

#include "gw_err.h"

int sim_rtu_open(struct sim_server *srv, const struct sim_rtu_opts *opts)
{
    GW_LOG(srv->log, GW_LOG_ERROR, "rtu", "%s: RTU not supported yet",
           opts->device);
    return GW_EUNSUPPORTED;
}

void sim__rtu_stop(struct sim_server *srv)
{
}
