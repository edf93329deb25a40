/* gw_xmpp.h - the daemon's XMPP side: the session (xmpp/xs_conn) built
 * from the xmpp: section, access decisions from the access: section, and
 * the IoT front ends over the value store and the engine. */
#ifndef GW_XMPP_H
#define GW_XMPP_H

#include <uv.h>

#include "cfg.h"
#include "gw_engine.h"
#include "gw_log.h"
#include "gw_status.h"
#include "gw_store.h"

struct gw_xmpp;

/* Reads the password (inline, password_file, or a systemd credential) and
 * prepares the session.  cfg, store and engine must outlive it.  Returns 0,
 * GW_EIO (password file unreadable: the message names the file, never the
 * content), GW_EINVAL or GW_ENOMEM. */
int gw_xmpp_new(uv_loop_t *loop, const struct cfg *cfg, struct gw_store *store,
                struct gw_engine *engine, const struct gw_log *log,
                struct gw_xmpp **out);

int gw_xmpp_start(struct gw_xmpp *x);

/* Closes the session; closed_cb runs once everything is freed. */
void gw_xmpp_free(struct gw_xmpp *x, void (*closed_cb)(void *ud), void *ud);

/* The session's counters and, with an events: section, the publisher's
 * and the change detection's (events is left alone without one), for the
 * status snapshot (gateway/gw_status). */
void gw_xmpp_get_status(const struct gw_xmpp *x, struct gw_status_xmpp *xmpp,
                        struct gw_status_events *events);

/* Items published for one unit (0 without an events: section). */
uint64_t gw_xmpp_unit_published(const struct gw_xmpp *x, size_t link,
                                size_t unit);

/* Reads a secret file into buf (trailing newlines removed).  A relative
 * name is looked up in $CREDENTIALS_DIRECTORY first.  Returns 0, GW_EIO or
 * GW_ELIMIT. */
int gw_read_secret(const char *name, char *buf, size_t cap);

#endif
