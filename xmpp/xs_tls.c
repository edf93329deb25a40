/* xs_tls.c - a GnuTLS client over memory buffers (see xs_tls.h).
 *
 * The pull function reads the bounded input buffer that xs_tls_feed()
 * fills, and reports an empty buffer as EAGAIN (gnutls_transport_set_errno);
 * the push function hands ciphertext straight to the output callback.
 * GnuTLS timeouts are off: the caller's timers own the clock. */
#include "xs_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "gw_err.h"

/* Non-fatal GnuTLS returns (warning alerts, a refused renegotiation) are
 * retried at most this often in one call. */
#define RETRY_MAX 16

struct xs_tls {
    gnutls_session_t sess;
    gnutls_certificate_credentials_t cred;
    uint8_t *in; /* ciphertext from xs_tls_feed(): in[in_off..in_len) */
    size_t in_off;
    size_t in_len;
    size_t in_cap;
    size_t in_max;
    xs_tls_output_cb output;
    void *output_ud;
    const struct gw_log *log;
    bool done;        /* handshake complete */
    bool peer_closed; /* close_notify received */
    char err[320];
};

const char *xs_cb_type_name(enum xs_cb_type type)
{
    switch (type) {
    case XS_CB_TLS_UNIQUE:
        return "tls-unique";
    case XS_CB_TLS_EXPORTER:
        return "tls-exporter";
    case XS_CB_NONE:
    default:
        return NULL;
    }
}

/* ---- transport --------------------------------------------------------- */

static ssize_t pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    struct xs_tls *t = ptr;
    size_t avail = t->in_len - t->in_off;
    if (avail == 0) {
        gnutls_transport_set_errno(t->sess, EAGAIN);
        return -1;
    }
    size_t n = len < avail ? len : avail;
    memcpy(buf, t->in + t->in_off, n);
    t->in_off += n;
    if (t->in_off == t->in_len)
        t->in_off = t->in_len = 0;
    return (ssize_t)n;
}

/* Only reached when GnuTLS wants to wait (TLS 1.3 paths): data is either
 * buffered or not; we never block. */
static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
    struct xs_tls *t = ptr;
    if (t->in_len > t->in_off)
        return 1;
    gnutls_transport_set_errno(t->sess, EAGAIN);
    return -1;
}

static ssize_t push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
    struct xs_tls *t = ptr;
    if (len > SSIZE_MAX || t->output(t->output_ud, buf, len) != 0) {
        gnutls_transport_set_errno(t->sess, EIO);
        return -1;
    }
    return (ssize_t)len;
}

int xs_tls_feed(struct xs_tls *t, const void *data, size_t len)
{
    if (!t || (len && !data))
        return GW_EINVAL;
    if (len == 0)
        return GW_OK;
    size_t used = t->in_len - t->in_off;
    if (len > t->in_max - used)
        return GW_ELIMIT;
    if (t->in_off && t->in_len + len > t->in_cap) {
        memmove(t->in, t->in + t->in_off, used);
        t->in_off = 0;
        t->in_len = used;
    }
    if (t->in_len + len > t->in_cap) {
        size_t cap = t->in_cap ? t->in_cap : 16384;
        while (cap < t->in_len + len)
            cap *= 2;
        if (cap > t->in_max)
            cap = t->in_max;
        uint8_t *p = realloc(t->in, cap);
        if (!p)
            return GW_ENOMEM;
        t->in = p;
        t->in_cap = cap;
    }
    memcpy(t->in + t->in_len, data, len);
    t->in_len += len;
    return GW_OK;
}

/* ---- lifecycle --------------------------------------------------------- */

static int set_error(struct xs_tls *t, int rc, const char *what, int g)
{
    snprintf(t->err, sizeof(t->err), "%s: %s (gnutls %d)", what,
             gnutls_strerror(g), g);
    GW_LOG(t->log, GW_LOG_DEBUG, "tls", "%s", t->err);
    return rc;
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 ||
           inet_pton(AF_INET6, host, buf) == 1;
}

int xs_tls_new(const struct xs_tls_config *cfg, struct xs_tls **out)
{
    int rc = GW_OK, g;
    struct xs_tls *t = NULL;
    const char *errpos = NULL;
    if (!out)
        return GW_EINVAL;
    *out = NULL;
    if (!cfg || !cfg->output || (cfg->verify && !cfg->hostname) ||
        (cfg->hostname && !*cfg->hostname))
        return GW_EINVAL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return GW_ENOMEM;
    t->output = cfg->output;
    t->output_ud = cfg->output_ud;
    t->log = cfg->log;
    t->in_max = cfg->inbuf_max ? cfg->inbuf_max : XS_TLS_DEFAULT_INBUF_MAX;

    g = gnutls_certificate_allocate_credentials(&t->cred);
    if (g < 0) {
        rc = set_error(t, GW_ENOMEM, "credentials", g);
        goto out;
    }
    if (cfg->verify && cfg->ca_file) {
        g = gnutls_certificate_set_x509_trust_file(t->cred, cfg->ca_file,
                                                   GNUTLS_X509_FMT_PEM);
        if (g <= 0) {
            snprintf(t->err, sizeof(t->err),
                     "no CA certificate loaded from %s: %s", cfg->ca_file,
                     g < 0 ? gnutls_strerror(g) : "empty file");
            rc = GW_ECONFIG;
            goto out;
        }
    } else if (cfg->verify) {
        g = gnutls_certificate_set_x509_system_trust(t->cred);
        if (g <= 0) {
            snprintf(t->err, sizeof(t->err), "no system trust store: %s",
                     g < 0 ? gnutls_strerror(g) : "empty");
            rc = GW_ECONFIG;
            goto out;
        }
    }
    g = gnutls_init(&t->sess, GNUTLS_CLIENT);
    if (g < 0) {
        rc = set_error(t, GW_ENOMEM, "session", g);
        goto out;
    }
    g = gnutls_priority_set_direct(
        t->sess, cfg->priority ? cfg->priority : XS_TLS_DEFAULT_PRIORITY,
        &errpos);
    if (g < 0) {
        snprintf(t->err, sizeof(t->err), "bad TLS priority string at \"%s\"",
                 errpos ? errpos : "");
        rc = GW_ECONFIG;
        goto out;
    }
    g = gnutls_credentials_set(t->sess, GNUTLS_CRD_CERTIFICATE, t->cred);
    if (g < 0) {
        rc = set_error(t, GW_ETLS, "credentials", g);
        goto out;
    }
    if (cfg->hostname && !is_ip_literal(cfg->hostname)) {
        g = gnutls_server_name_set(t->sess, GNUTLS_NAME_DNS, cfg->hostname,
                                   strlen(cfg->hostname));
        if (g < 0) {
            rc = set_error(t, GW_EINVAL, "server name", g);
            goto out;
        }
    }
    if (cfg->verify) /* copies the name; chain + name checked in handshake */
        gnutls_session_set_verify_cert(t->sess, cfg->hostname, 0);
    if (cfg->alpn) {
        size_t n = strlen(cfg->alpn);
        gnutls_datum_t p = {(unsigned char *)(uintptr_t)cfg->alpn, (unsigned)n};
        g = n && n < 256 ? gnutls_alpn_set_protocols(t->sess, &p, 1, 0)
                         : GNUTLS_E_INVALID_REQUEST;
        if (g < 0) {
            rc = set_error(t, GW_EINVAL, "ALPN", g);
            goto out;
        }
    }
    gnutls_handshake_set_timeout(t->sess, 0);
    gnutls_transport_set_ptr(t->sess, t);
    gnutls_transport_set_push_function(t->sess, push);
    gnutls_transport_set_pull_function(t->sess, pull);
    gnutls_transport_set_pull_timeout_function(t->sess, pull_timeout);
out:
    if (rc) {
        if (t->err[0])
            GW_LOG(t->log, GW_LOG_DEBUG, "tls", "%s", t->err);
        xs_tls_free(t);
        return rc;
    }
    *out = t;
    return GW_OK;
}

void xs_tls_free(struct xs_tls *t)
{
    if (!t)
        return;
    if (t->sess)
        gnutls_deinit(t->sess);
    if (t->cred)
        gnutls_certificate_free_credentials(t->cred);
    if (t->in) {
        gnutls_memset(t->in, 0, t->in_cap);
        free(t->in);
    }
    free(t);
}

/* ---- handshake and records --------------------------------------------- */

static int verify_failure(struct xs_tls *t, int g)
{
    unsigned status = gnutls_session_get_verify_cert_status(t->sess);
    gnutls_datum_t txt = {NULL, 0};
    int p = gnutls_certificate_verification_status_print(
        status, gnutls_certificate_type_get(t->sess), &txt, 0);
    snprintf(t->err, sizeof(t->err),
             "certificate verification failed: %s (gnutls %d, status 0x%x)",
             p >= 0 && txt.data ? (const char *)txt.data : "unknown reason", g,
             status);
    gnutls_free(txt.data);
    GW_LOG(t->log, GW_LOG_DEBUG, "tls", "%s", t->err);
    return GW_ETLS;
}

/* A failed push shows as GNUTLS_E_PUSH_ERROR: the transport, not TLS. */
static int tls_failure(struct xs_tls *t, const char *what, int g)
{
    if (g == GNUTLS_E_PUSH_ERROR)
        return set_error(t, GW_EIO, what, g);
    return set_error(t, GW_ETLS, what, g);
}

int xs_tls_handshake(struct xs_tls *t)
{
    if (!t)
        return GW_EINVAL;
    if (t->done)
        return GW_OK;
    t->err[0] = 0;
    for (int i = 0; i < RETRY_MAX; i++) {
        int g = gnutls_handshake(t->sess);
        if (g == GNUTLS_E_SUCCESS) {
            t->done = true;
            GW_LOG(t->log, GW_LOG_DEBUG, "tls", "handshake done: %s %s",
                   xs_tls_version(t),
                   gnutls_cipher_get_name(gnutls_cipher_get(t->sess)));
            return GW_OK;
        }
        if (g == GNUTLS_E_AGAIN || g == GNUTLS_E_INTERRUPTED)
            return GW_EAGAIN;
        if (g == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR)
            return verify_failure(t, g);
        if (gnutls_error_is_fatal(g))
            return tls_failure(t, "TLS handshake failed", g);
    }
    snprintf(t->err, sizeof(t->err), "TLS handshake: too many warnings");
    return GW_ETLS;
}

int xs_tls_read(struct xs_tls *t, void *buf, size_t cap, size_t *got)
{
    if (!got)
        return GW_EINVAL;
    *got = 0;
    if (!t || !buf || cap == 0 || !t->done)
        return GW_EINVAL;
    if (t->peer_closed)
        return GW_ECLOSED;
    t->err[0] = 0;
    for (int i = 0; i < RETRY_MAX; i++) {
        ssize_t n = gnutls_record_recv(t->sess, buf, cap);
        if (n > 0) {
            *got = (size_t)n;
            return GW_OK;
        }
        if (n == 0) {
            t->peer_closed = true;
            return GW_ECLOSED;
        }
        int g = (int)n;
        if (g == GNUTLS_E_AGAIN || g == GNUTLS_E_INTERRUPTED) {
            /* A post-handshake message (a TLS 1.3 session ticket) also
             * ends in AGAIN while more records wait in our buffer. */
            if (t->in_len > t->in_off ||
                gnutls_record_check_pending(t->sess) > 0)
                continue;
            return GW_EAGAIN;
        }
        /* GNUTLS_E_REHANDSHAKE (TLS 1.2 HelloRequest) is not fatal: we
         * ignore it and the server decides; warning alerts likewise. */
        if (gnutls_error_is_fatal(g))
            return tls_failure(t, "TLS read failed", g);
    }
    snprintf(t->err, sizeof(t->err), "TLS read: too many warnings");
    return GW_ETLS;
}

int xs_tls_write(struct xs_tls *t, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (!t || (len && !data) || !t->done)
        return GW_EINVAL;
    t->err[0] = 0;
    while (len) {
        ssize_t n = gnutls_record_send(t->sess, p, len);
        if (n < 0) {
            /* push never reports EAGAIN, so there is nothing to resume */
            return tls_failure(t, "TLS write failed", (int)n);
        }
        p += n;
        len -= (size_t)n;
    }
    return GW_OK;
}

int xs_tls_bye(struct xs_tls *t)
{
    if (!t)
        return GW_EINVAL;
    if (!t->done)
        return GW_OK; /* nothing to close at the TLS level */
    t->err[0] = 0;
    int g = gnutls_bye(t->sess, GNUTLS_SHUT_WR);
    if (g < 0)
        return tls_failure(t, "TLS close failed", g);
    return GW_OK;
}

/* ---- session properties ------------------------------------------------ */

const char *xs_tls_version(const struct xs_tls *t)
{
    if (!t || !t->done)
        return "none";
    const char *n =
        gnutls_protocol_get_name(gnutls_protocol_get_version(t->sess));
    return n ? n : "unknown";
}

enum xs_cb_type xs_tls_cb_type(const struct xs_tls *t)
{
    if (!t || !t->done)
        return XS_CB_NONE;
    switch (gnutls_protocol_get_version(t->sess)) {
    case GNUTLS_TLS1_3:
        return XS_CB_TLS_EXPORTER;
    case GNUTLS_TLS1_2:
        return XS_CB_TLS_UNIQUE;
    default:
        return XS_CB_NONE;
    }
}

int xs_tls_channel_binding(struct xs_tls *t, enum xs_cb_type type,
                           struct xs_cb_data *out)
{
    gnutls_channel_binding_t gt;
    if (!t || !out || !t->done)
        return GW_EINVAL;
    out->len = 0;
    gnutls_protocol_t v = gnutls_protocol_get_version(t->sess);
    switch (type) {
    case XS_CB_TLS_UNIQUE:
        /* RFC 9266 §3: tls-unique is undefined for TLS 1.3 */
        if (v != GNUTLS_TLS1_2)
            return GW_EUNSUPPORTED;
        gt = GNUTLS_CB_TLS_UNIQUE;
        break;
    case XS_CB_TLS_EXPORTER:
        /* RFC 9266 §4: TLS 1.2 only with the extended master secret */
        if (v != GNUTLS_TLS1_3 &&
            !(v == GNUTLS_TLS1_2 &&
              gnutls_session_ext_master_secret_status(t->sess)))
            return GW_EUNSUPPORTED;
        gt = GNUTLS_CB_TLS_EXPORTER;
        break;
    case XS_CB_NONE:
    default:
        return GW_EINVAL;
    }
    gnutls_datum_t d = {NULL, 0};
    int g = gnutls_session_channel_binding(t->sess, gt, &d);
    if (g < 0)
        return set_error(t, GW_ETLS, "channel binding", g);
    int rc = GW_OK;
    if (d.size == 0 || d.size > XS_CB_DATA_MAX) {
        snprintf(t->err, sizeof(t->err), "channel binding: %u bytes", d.size);
        rc = GW_ETLS;
    } else {
        memcpy(out->data, d.data, d.size);
        out->len = d.size;
    }
    gnutls_free(d.data);
    return rc;
}

const char *xs_tls_error(const struct xs_tls *t)
{
    return t ? t->err : "";
}
