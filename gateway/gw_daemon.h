/* gw_daemon.h - `fieldgate run`: the daemon's context and life cycle.
 *
 * Owns the loop, the configuration, the value store and the engine (and,
 * with an xmpp: section, the XMPP session).  SIGINT/SIGTERM stop it
 * cleanly: timers stop, workers drain, every handle is closed and the loop
 * closes with 0.  SIGHUP reloads the map: the new file is loaded and
 * validated first, and only a valid map replaces the running one.  Under
 * systemd it reports READY/RELOADING/STOPPING and feeds the watchdog. */
#ifndef GW_DAEMON_H
#define GW_DAEMON_H

#include "gw_log.h"

/* Runs until stopped.  Returns the process exit status. */
int gw_daemon_run(const char *cfg_path, struct gw_log *log);

#endif
