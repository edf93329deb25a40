/* gw_notify.h - the systemd notification protocol (sd_notify), without
 * libsystemd: one datagram to $NOTIFY_SOCKET per state.  Without
 * NOTIFY_SOCKET every call is a no-op returning 0. */
#ifndef GW_NOTIFY_H
#define GW_NOTIFY_H

#include <stdint.h>

/* Sends state text such as "READY=1" or "STATUS=polling 3 links".
 * Returns 0, or GW_ESYS when the socket cannot be reached. */
int gw_notify(const char *state);

/* The watchdog period systemd asked for (WATCHDOG_USEC, honouring
 * WATCHDOG_PID), in milliseconds; 0 when no watchdog is configured. */
uint64_t gw_notify_watchdog_ms(void);

#endif
