/* xs_sasl.h - client-side SASL: SCRAM-SHA-256(-PLUS), SCRAM-SHA-1(-PLUS)
 * (RFC 5802, RFC 7677) and PLAIN (RFC 4616).
 *
 * The object works on raw SASL messages; XMPP carries them base64-encoded
 * in <auth>, <challenge>, <response> and <success> (xs_sasl_b64_*).  Flow:
 *   xs_sasl_select()      pick the mechanism from the server's offer
 *   xs_sasl_new()         with the channel binding data from xs_tls
 *   xs_sasl_step(NULL)    initial response -> <auth mechanism=NAME>
 *   xs_sasl_step(chal)    for each <challenge> -> <response> (may be empty)
 *   xs_sasl_finish(data)  on <success>: 0 only if the server proved that it
 *                         knows the password (SCRAM v=); PLAIN has no proof
 *   <failure/>            is the caller's: it has the condition element.
 * Any error leaves the object failed; later calls return GW_EPROTO.
 *
 * Secrets: the password is copied at xs_sasl_new() and zeroed as soon as the
 * salted password is derived; keys and the expected server signature are
 * zeroed on free.  The output of PLAIN and SCRAM client-final must not be
 * logged; xs_sasl_error() never contains secrets. */
#ifndef XS_SASL_H
#define XS_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xs_tls.h"

/* In order of preference, strongest first. */
enum xs_sasl_mech {
    XS_SASL_SCRAM_SHA_256_PLUS = 0,
    XS_SASL_SCRAM_SHA_1_PLUS,
    XS_SASL_SCRAM_SHA_256,
    XS_SASL_SCRAM_SHA_1,
    XS_SASL_PLAIN,
    XS_SASL_MECH_COUNT
};

#define XS_SASL_BIT(m) (1u << (unsigned)(m))
#define XS_SASL_ALL ((1u << XS_SASL_MECH_COUNT) - 1u)

/* SCRAM iteration counts outside [MIN, MAX] are refused (GW_EAUTH): below
 * the RFC 7677 floor a server (or a man in the middle) makes the proof
 * cheap to brute-force; above the cap one PBKDF2 blocks the loop too long. */
#define XS_SASL_SCRAM_MIN_ITER 4096u
#define XS_SASL_SCRAM_MAX_ITER 1000000u
/* Largest raw SASL message accepted or produced. */
#define XS_SASL_MSG_MAX 4096u
/* authcid, authzid and password lengths (bytes). */
#define XS_SASL_NAME_MAX 1023u

/* "SCRAM-SHA-256-PLUS" ... "PLAIN"; NULL for an unknown value. */
const char *xs_sasl_mech_name(enum xs_sasl_mech mech);

/* Exact, case-sensitive name -> mechanism.  Returns 0 or GW_ENOTFOUND. */
int xs_sasl_mech_parse(const char *name, enum xs_sasl_mech *out);

struct xs_sasl_offer {
    const char *const *offered; /* the server's <mechanism> texts */
    size_t n_offered;
    unsigned allowed;   /* XS_SASL_BIT()s from the config; 0 = XS_SASL_ALL */
    bool tls;           /* the stream is encrypted */
    enum xs_cb_type cb; /* xs_tls_cb_type() when data is available */
    bool allow_plain;   /* PLAIN also needs tls and its allowed bit */
};

/* Picks the strongest mechanism that the server offers and we allow:
 * SCRAM-SHA-256-PLUS > SCRAM-SHA-1-PLUS > SCRAM-SHA-256 > SCRAM-SHA-1 >
 * PLAIN.  -PLUS needs tls and cb != NONE.  Sets *mech and *cb, the
 * channel binding argument for xs_sasl_new(): for -PLUS the type; for plain
 * SCRAM o->cb when we could bind (tls, cb, a -PLUS allowed) but the server
 * offers no -PLUS at all (gs2 flag "y", RFC 5802 §6), else XS_CB_NONE; for
 * PLAIN XS_CB_NONE.  Returns 0 or GW_ENOTFOUND (nothing acceptable). */
int xs_sasl_select(const struct xs_sasl_offer *o, enum xs_sasl_mech *mech,
                   enum xs_cb_type *cb);

struct xs_sasl;

/* A client mechanism object.  authcid and password are required (UTF-8,
 * non-empty, no ASCII control characters); authzid may be NULL or "".
 * cb_type/cb_data: for -PLUS the binding type and data from
 * xs_tls_channel_binding() (required); for plain SCRAM cb_type != NONE
 * means gs2 flag "y" and cb_data is ignored (may be NULL); PLAIN ignores
 * both.  Non-ASCII authcid and password are normalized (PRECIS
 * OpaqueString, see docs/xmpp-security.md).  Strings are copied.  Returns 0
 * and *out, GW_EINVAL (also for invalid UTF-8 or a string the profile
 * refuses) or GW_ENOMEM.  Free with xs_sasl_free(). */
int xs_sasl_new(enum xs_sasl_mech mech, const char *authcid,
                const char *password, const char *authzid,
                enum xs_cb_type cb_type, const struct xs_cb_data *cb_data,
                struct xs_sasl **out);

/* Zeroes every secret and frees.  NULL-safe. */
void xs_sasl_free(struct xs_sasl *s);

/* One client step.  First call: in = NULL, in_len = 0, gives the initial
 * response.  Then once per server challenge.  On 0, *out and *out_len is the
 * message to send (owned by s, valid until the next call or free; an empty
 * initial response is sent as "=" in XMPP).  Errors: GW_EPROTO (malformed
 * or unexpected challenge), GW_EAUTH (nonce does not extend ours, iteration
 * count refused, server error "e=", wrong server signature), GW_ENOMEM. */
int xs_sasl_step(struct xs_sasl *s, const uint8_t *in, size_t in_len,
                 const uint8_t **out, size_t *out_len);

/* The server's <success> with its additional data (in_len 0 when none).
 * Returns 0 if authentication is complete and, for SCRAM, the server
 * signature has been verified (here or in an earlier challenge); GW_EAUTH
 * (wrong or missing signature, "e="), GW_EPROTO (too early, malformed). */
int xs_sasl_finish(struct xs_sasl *s, const uint8_t *in, size_t in_len);

/* Why the last call failed ("" if it did not); for the log.  Static or owned
 * by s; valid until the next call. */
const char *xs_sasl_error(const struct xs_sasl *s);

/* Base64 (RFC 4648, with padding, no whitespace).  encode writes a
 * NUL-terminated string: returns 0 or GW_ELIMIT when cap < 4*ceil(n/3)+1.
 * decode is strict and treats the single "=" that XMPP uses for empty data
 * (RFC 6120 §6.4.2) as empty; it refuses non-zero bits under the padding.
 * Returns 0 and *out_len, GW_EPROTO (bad character, padding or length) or
 * GW_ELIMIT (cap too small). */
int xs_sasl_b64_encode(const void *in, size_t n, char *out, size_t cap);
int xs_sasl_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap,
                       size_t *out_len);

#endif
