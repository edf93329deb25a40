/* xs_tls.h - a GnuTLS client session that runs over memory, not a socket.
 *
 * The caller owns the transport.  Ciphertext read from the network goes in
 * with xs_tls_feed(); ciphertext to send comes out through the output
 * callback, which GnuTLS calls from inside xs_tls_handshake(), xs_tls_read(),
 * xs_tls_write() and xs_tls_bye() (a read can produce output too: alerts, a
 * TLS 1.3 key update).  The callback must copy the bytes (or write them) and
 * must not free the session.
 *
 * Typical use on a libuv stream:
 *   read callback:  xs_tls_feed(buf); while handshaking, call
 *                   xs_tls_handshake() (GW_EAGAIN: wait for more input);
 *                   once it returned 0, call xs_tls_read() until GW_EAGAIN.
 *                   Reading until GW_EAGAIN also drains what GnuTLS already
 *                   decrypted (gnutls_record_check_pending), which no socket
 *                   event would report.
 *   to send:        xs_tls_write() (all or nothing).
 *   closing:        xs_tls_bye() sends close_notify.
 *
 * Certificates: with verify on, the chain is checked against the system
 * trust store or ca_file, and the certificate against hostname
 * (gnutls_session_set_verify_cert).  Verify off accepts any certificate; the
 * caller logs that warning.  Errors are gw_err codes; xs_tls_error() gives a
 * readable reason (e.g. the certificate verification status) that includes
 * the GnuTLS error number; the module itself logs only at debug level. */
#ifndef XS_TLS_H
#define XS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_log.h"

/* TLS 1.2 and 1.3 only. */
#define XS_TLS_DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* Ciphertext xs_tls_feed() buffers before GnuTLS consumes it. */
#define XS_TLS_DEFAULT_INBUF_MAX (256u * 1024u)

/* Channel binding types (RFC 5929, RFC 9266) for SCRAM -PLUS. */
enum xs_cb_type {
    XS_CB_NONE = 0,
    XS_CB_TLS_UNIQUE,   /* "tls-unique": TLS 1.2 only */
    XS_CB_TLS_EXPORTER, /* "tls-exporter": TLS 1.3 (32 bytes) */
};

#define XS_CB_DATA_MAX 64

struct xs_cb_data {
    size_t len;
    uint8_t data[XS_CB_DATA_MAX];
};

/* The gs2 cb-name ("tls-unique", "tls-exporter"), or NULL for XS_CB_NONE
 * and unknown values. */
const char *xs_cb_type_name(enum xs_cb_type type);

/* Ciphertext to send.  Return 0, or a negative gw_err to fail the TLS call
 * in progress (it then returns GW_EIO). */
typedef int (*xs_tls_output_cb)(void *ud, const uint8_t *data, size_t len);

struct xs_tls_config {
    const char *hostname; /* checked name and SNI (not sent for IP literals);
                             required when verify is on */
    const char *ca_file;  /* PEM trust anchors; NULL: the system trust */
    const char *priority; /* NULL: XS_TLS_DEFAULT_PRIORITY */
    const char *alpn;     /* NULL, or e.g. "xmpp-client" (XEP-0368) */
    bool verify;          /* false: accept any certificate */
    size_t inbuf_max;     /* 0: XS_TLS_DEFAULT_INBUF_MAX */
    xs_tls_output_cb output;
    void *output_ud;
    const struct gw_log *log; /* may be NULL */
};

struct xs_tls;

/* Creates a client session; nothing is sent until xs_tls_handshake().  The
 * strings in cfg are copied.  Returns 0 and *out, or GW_EINVAL (no output
 * callback, verify without hostname), GW_ENOMEM, GW_ECONFIG (bad priority
 * string, unreadable ca_file, no system trust).  Free with xs_tls_free(). */
int xs_tls_new(const struct xs_tls_config *cfg, struct xs_tls **out);

/* Frees the session (sends nothing; call xs_tls_bye() first for a clean
 * close).  NULL-safe. */
void xs_tls_free(struct xs_tls *t);

/* Appends ciphertext received from the network.  Returns 0, or GW_ELIMIT
 * when the input buffer would pass inbuf_max (nothing is taken then; the
 * caller did not drain with xs_tls_handshake()/xs_tls_read()). */
int xs_tls_feed(struct xs_tls *t, const void *data, size_t len);

/* Drives the handshake.  Returns 0 once it is complete (also on later
 * calls), GW_EAGAIN when it needs more input, or GW_ETLS (see
 * xs_tls_error(): certificate verification failures say why) or GW_EIO
 * (output callback failed).  After the first 0, call xs_tls_read() until
 * GW_EAGAIN: records that came with the last flight are already buffered. */
int xs_tls_handshake(struct xs_tls *t);

/* Reads decrypted data.  Returns 0 with *got > 0, GW_EAGAIN (no complete
 * record buffered: feed more), GW_ECLOSED (the peer sent close_notify;
 * *got is 0), GW_EINVAL (handshake not done) or GW_ETLS.  Call until
 * GW_EAGAIN after every xs_tls_feed(). */
int xs_tls_read(struct xs_tls *t, void *buf, size_t cap, size_t *got);

/* Encrypts all of data and hands it to the output callback.  Returns 0,
 * GW_EINVAL (handshake not done), GW_EIO (output callback failed) or
 * GW_ETLS. */
int xs_tls_write(struct xs_tls *t, const void *data, size_t len);

/* Sends close_notify (no further writes).  Returns 0, GW_EIO or GW_ETLS.
 * Reading may go on until the peer's close_notify (GW_ECLOSED). */
int xs_tls_bye(struct xs_tls *t);

/* After the handshake: the negotiated protocol ("TLS1.3"), static string,
 * or "none". */
const char *xs_tls_version(const struct xs_tls *t);

/* After the handshake: the channel binding type SCRAM -PLUS should use,
 * tls-exporter on TLS 1.3, tls-unique on TLS 1.2; XS_CB_NONE before. */
enum xs_cb_type xs_tls_cb_type(const struct xs_tls *t);

/* Channel binding data of the given type.  Returns 0, GW_EINVAL (handshake
 * not done, type NONE), GW_EUNSUPPORTED (the type is not defined for the
 * negotiated version: tls-unique on TLS 1.3, tls-exporter on TLS 1.2
 * without extended master secret) or GW_ETLS. */
int xs_tls_channel_binding(struct xs_tls *t, enum xs_cb_type type,
                           struct xs_cb_data *out);

/* A readable reason for the last failure ("" if none).  Valid until the
 * next call on t. */
const char *xs_tls_error(const struct xs_tls *t);

#endif
