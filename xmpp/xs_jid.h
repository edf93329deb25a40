/* xs_jid.h - split and compare JIDs (RFC 7622), without stringprep.
 *
 * Comparison lower-cases the local part and the domain in ASCII only;
 * non-ASCII JIDs compare byte for byte.  Lengths are bounded by the RFC
 * (1023 bytes per part). */
#ifndef XS_JID_H
#define XS_JID_H

#include <stdbool.h>
#include <stddef.h>

#define XS_JID_MAX 3071 /* three parts of 1023 plus separators */

struct xs_jid {
    char local[1024]; /* "" when none */
    char domain[1024];
    char resource[1024]; /* "" when none */
};

/* Splits text.  Returns 0 or GW_EINVAL (empty domain, empty local part
 * before '@', empty resource after '/', part too long). */
int xs_jid_parse(const char *text, struct xs_jid *out);

/* Writes "local@domain" (or "domain") into buf.  Returns 0 or GW_ELIMIT. */
int xs_jid_bare(const struct xs_jid *j, char *buf, size_t cap);

/* The bare JID of text into buf; GW_EINVAL for a malformed JID. */
int xs_jid_bare_of(const char *text, char *buf, size_t cap);

/* Case-insensitive (ASCII) equality of two bare JIDs or domains. */
bool xs_jid_bare_equal(const char *a, const char *b);

#endif
