/* xs_srv.h - DNS SRV records for XMPP clients (RFC 6120 3.2, XEP-0368).
 *
 * xs_srv_lookup blocks (res_nquery): call it off the loop thread.  The
 * targets of _xmpps-client._tcp (direct TLS) and _xmpp-client._tcp
 * (STARTTLS) are mixed into one list, ordered by priority (stable), as
 * XEP-0368 asks.  A target of "." ("no service") is dropped. */
#ifndef XS_SRV_H
#define XS_SRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xs_srv_target {
    char host[256];
    uint16_t port;
    uint16_t priority;
    uint16_t weight;
    bool direct_tls; /* from _xmpps-client */
};

/* Parses one DNS answer message; appends SRV targets to out[*n..cap).
 * Returns 0 or GW_EPROTO (malformed message; nothing appended). */
int xs_srv_parse(const unsigned char *msg, size_t len, bool direct_tls,
                 struct xs_srv_target *out, size_t cap, size_t *n);

/* Stable sort by priority, then weight descending. */
void xs_srv_sort(struct xs_srv_target *t, size_t n);

/* Queries both records for domain.  *n is 0 when there are none (then the
 * caller falls back to the domain itself). */
void xs_srv_lookup(const char *domain, struct xs_srv_target *out, size_t cap,
                   size_t *n);

#endif
