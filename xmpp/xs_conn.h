/* xs_conn.h - one XMPP client session on a libuv loop (RFC 6120/6121).
 *
 * The session finds the server (configured host, else SRV
 * _xmpps-client/_xmpp-client, else the domain), connects over TCP, secures
 * the stream (STARTTLS, or direct TLS per XEP-0368) with certificate
 * verification, authenticates (SCRAM, -PLUS with channel binding, PLAIN
 * only over TLS when allowed), binds a resource, enables stream management
 * (XEP-0198) and sends initial presence.  It then stays up: it answers
 * pings, disco#info and version requests, pings an idle server, resumes
 * or re-binds after a drop, and reconnects with exponential backoff and
 * jitter.  Incoming iq get/set are routed by the namespace of their child
 * to handlers; anything unhandled gets service-unavailable.
 *
 * Ownership: every stanza passed to xs_conn_send/xs_conn_iq is taken by the
 * session.  Stanzas given to callbacks are borrowed for the call. */
#ifndef XS_CONN_H
#define XS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gw_log.h"
#include "xs_stanza.h"

#define XS_NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define XS_NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define XS_NS_PING "urn:xmpp:ping"
#define XS_NS_VERSION "jabber:iq:version"
#define XS_NS_SM "urn:xmpp:sm:3"
#define XS_NS_DELAY "urn:xmpp:delay"

struct xs_conn_config {
    const char *jid;           /* bare JID of the account */
    const char *password;      /* copied; never logged */
    const char *resource;      /* NULL: server-assigned */
    const char *host;          /* NULL: SRV, then the JID's domain */
    uint16_t port;             /* 0: 5222 (starttls) or 5223 (direct) */
    bool direct_tls;           /* XEP-0368 instead of STARTTLS */
    const char *ca_file;       /* NULL: system trust */
    bool verify;               /* certificate verification (default on) */
    unsigned sasl_allowed;     /* XS_SASL_BIT()s; 0 = every SCRAM */
    bool allow_plain;          /* PLAIN over TLS */
    uint32_t keepalive_ms;     /* ping the server when idle; 0 = 60 s */
    uint32_t ping_timeout_ms;  /* also the negotiation timeout; 0 = 30 s */
    uint32_t reconnect_min_ms; /* 0 = 1 s */
    uint32_t reconnect_max_ms; /* 0 = 300 s */
    size_t stanza_max;         /* 0 = 256 KiB */
    const char *status;        /* initial presence <status/>, or NULL */
};

enum xs_access {
    XS_ACCESS_NONE = 0,
    XS_ACCESS_READ = 1,
    XS_ACCESS_CONTROL = 2,
};

struct xs_conn;

struct xs_conn_cbs {
    /* The session is up (bound, presence sent); resumed when XEP-0198
     * resumption kept the previous session. */
    void (*online)(void *ud, const char *full_jid, bool resumed);
    /* The session is down (err says why); it reconnects by itself. */
    void (*offline)(void *ud, int err);
    /* A message or presence (other than subscription management, which the
     * session handles with `access`). */
    void (*stanza)(void *ud, const struct xs_stanza *st);
    /* The access level of a bare JID (presence subscriptions).  NULL: no
     * one is allowed. */
    enum xs_access (*access)(void *ud, const char *bare_jid);
};

/* Handles an iq get/set whose child has the registered namespace.  The
 * handler must answer exactly once (now or later) with xs_conn_send of a
 * result or error built with xs_iq_result / xs_iq_error. */
typedef void (*xs_iq_handler)(void *ud, struct xs_conn *c,
                              const struct xs_stanza *iq);

/* The answer to xs_conn_iq: result or error stanza (borrowed), or NULL on
 * timeout/disconnect (err says which). */
typedef void (*xs_iq_cb)(void *ud, const struct xs_stanza *reply, int err);

/* Creates a session (nothing happens before xs_conn_start).  Strings in cfg
 * are copied.  Returns 0, GW_EINVAL (bad JID, missing password) or
 * GW_ENOMEM. */
int xs_conn_new(uv_loop_t *loop, const struct xs_conn_config *cfg,
                const struct xs_conn_cbs *cbs, void *ud,
                const struct gw_log *log, struct xs_conn **out);

int xs_conn_start(struct xs_conn *c);

/* Adds a disco#info feature (copied).  Returns 0 or GW_ENOMEM. */
int xs_conn_add_feature(struct xs_conn *c, const char *var);

/* Routes iq get/set with a child in ns to handler.  Returns 0, GW_EEXISTS
 * or GW_ENOMEM. */
int xs_conn_handle_iq(struct xs_conn *c, const char *ns, xs_iq_handler handler,
                      void *ud);

/* Sends a stanza (taken).  While offline it is queued (bounded) and sent
 * after the next login.  Returns 0 or GW_ELIMIT (queue full: dropped). */
int xs_conn_send(struct xs_conn *c, struct xs_stanza *st);

/* Sends an iq get/set (taken; an id is assigned) and calls cb once with the
 * reply, or with NULL after timeout_ms or a disconnect.  Returns 0 (cb will
 * run) or a gw_err (cb will not). */
int xs_conn_iq(struct xs_conn *c, struct xs_stanza *iq, uint32_t timeout_ms,
               xs_iq_cb cb, void *ud);

/* Our full JID while online, else NULL. */
const char *xs_conn_jid(const struct xs_conn *c);
bool xs_conn_online(const struct xs_conn *c);

/* Counters for tests and status. */
struct xs_conn_stats {
    uint64_t connects; /* successful logins (bind or resume) */
    uint64_t resumes;  /* of which XEP-0198 resumptions */
    uint64_t drops;    /* sessions lost */
    uint64_t auth_failures;
    uint32_t sm_in; /* handled inbound stanzas (h) */
    uint32_t sm_out_unacked;
    uint64_t dropped_stanzas; /* skipped by the parser's per-stanza limits */
};
void xs_conn_get_stats(const struct xs_conn *c, struct xs_conn_stats *out);

/* The reconnect delay before jitter: reconnect_min after the first
 * failure, doubled after each further one, at most reconnect_max.
 * *backoff_ms is the state (0 after a login) and is advanced.  The session
 * waits this ±20 % (jitter), or reconnect_max after an authentication or
 * certificate failure. */
uint32_t xs_conn_backoff(uint32_t *backoff_ms, uint32_t min_ms,
                         uint32_t max_ms);

/* Closes the stream (acks, </stream:stream>, TLS close_notify), closes
 * every handle, fails pending iqs; closed_cb runs when memory is freed. */
void xs_conn_free(struct xs_conn *c, void (*closed_cb)(void *ud), void *ud);

/* Helpers for handlers.  A result for iq (to = its from, same id), or an
 * error with type ("cancel", "modify", "auth", "wait"), condition
 * ("service-unavailable", ...) and optional text.  NULL on no memory. */
struct xs_stanza *xs_iq_result(const struct xs_stanza *iq);
struct xs_stanza *xs_iq_error(const struct xs_stanza *iq, const char *type,
                              const char *condition, const char *text);

/* A stanza error element (<error type><cond/><text/></error>) added to
 * parent; returns it or NULL. */
struct xs_stanza *xs_add_error(struct xs_stanza *parent, const char *type,
                               const char *condition, const char *text);

#endif
