/* gw_daemon.h - `fieldgate run`: the daemon's context and life cycle.
 *
 * Owns the loop, the configuration, the value store and the engine (and,
 * with an xmpp: section, the XMPP session).  SIGINT/SIGTERM stop it
 * cleanly: timers stop, workers drain, every handle is closed and the loop
 * closes with 0.  SIGHUP reloads the map: the new file is loaded and
 * validated first, and only a valid map replaces the running one.  Under
 * systemd it reports READY/RELOADING/STOPPING and feeds the watchdog.
 * With a status file it writes the status snapshot (gateway/gw_status)
 * there every GW_STATUS_PERIOD_MS, at start, reload and stop. */
#ifndef GW_DAEMON_H
#define GW_DAEMON_H

#include "gw_log.h"

struct gw_daemon_opts {
    const char *status_path; /* the status file, or NULL for none */
};

/* Runs until stopped.  Returns the process exit status. */
int gw_daemon_run(const char *cfg_path, const struct gw_daemon_opts *opts,
                  struct gw_log *log);

#endif
