/* xs_sasl.c - client-side SCRAM (RFC 5802, RFC 7677) and PLAIN (RFC 4616).
 *
 * Strings are prepared as follows (see docs/xmpp-security.md): ASCII
 * passes through unchanged; ASCII control characters are refused;
 * authcid and password with non-ASCII characters go through
 * gnutls_utf8_password_normalize (PRECIS OpaqueString, RFC 8265, the
 * successor of SASLprep: NFC and non-ASCII spaces to U+0020), which agrees
 * with SASLprep for everything but compatibility characters.  In SCRAM the
 * authcid and authzid are saslnames: ',' -> "=2C", '=' -> "=3D". */
#include "xs_sasl.h"
#include "xs_sasl_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "gw_err.h"

#define NONCE_RAW 18 /* 24 base64 characters, as in the RFC examples */
#define NONCE_MAX 128
#define HASH_MAX 32

enum state {
    ST_START,      /* nothing sent */
    ST_PLAIN_SENT, /* PLAIN: waiting for <success> */
    ST_FIRST_SENT, /* SCRAM: client-first sent, waiting for server-first */
    ST_FINAL_SENT, /* SCRAM: client-final sent, waiting for server-final */
    ST_VERIFIED,   /* SCRAM: v= checked in a challenge, waiting <success> */
    ST_DONE,       /* authenticated */
    ST_FAILED,
};

/* A growable byte string that wipes what it drops. */
struct sb {
    uint8_t *p;
    size_t len;
    size_t cap;
};

struct xs_sasl {
    enum xs_sasl_mech mech;
    enum state st;
    gnutls_mac_algorithm_t mac;
    gnutls_digest_algorithm_t dig;
    size_t hlen;
    char *authcid; /* prepared */
    char *authzid; /* NULL or raw */
    char *pw;      /* prepared; wiped and freed after the key derivation */
    size_t pw_len;
    enum xs_cb_type cb_type;
    struct xs_cb_data cb;
    char nonce[NONCE_MAX + 1];
    struct sb gs2;        /* gs2-header */
    struct sb first_bare; /* client-first-message-bare */
    uint8_t server_sig[HASH_MAX];
    struct sb out;
    char err[160];
};

static const char *const mech_names[XS_SASL_MECH_COUNT] = {
    [XS_SASL_SCRAM_SHA_256_PLUS] = "SCRAM-SHA-256-PLUS",
    [XS_SASL_SCRAM_SHA_1_PLUS] = "SCRAM-SHA-1-PLUS",
    [XS_SASL_SCRAM_SHA_256] = "SCRAM-SHA-256",
    [XS_SASL_SCRAM_SHA_1] = "SCRAM-SHA-1",
    [XS_SASL_PLAIN] = "PLAIN",
};

#define PLUS_MASK                                                              \
    (XS_SASL_BIT(XS_SASL_SCRAM_SHA_256_PLUS) |                                 \
     XS_SASL_BIT(XS_SASL_SCRAM_SHA_1_PLUS))

static bool is_plus(enum xs_sasl_mech m)
{
    return m == XS_SASL_SCRAM_SHA_256_PLUS || m == XS_SASL_SCRAM_SHA_1_PLUS;
}

/* ---- byte strings ------------------------------------------------------ */

static void sb_wipe(struct sb *b)
{
    if (b->p) {
        gnutls_memset(b->p, 0, b->cap);
        free(b->p);
    }
    b->p = NULL;
    b->len = b->cap = 0;
}

static void sb_clear(struct sb *b)
{
    if (b->p)
        gnutls_memset(b->p, 0, b->cap);
    b->len = 0;
}

/* Appends n bytes (NUL-terminated).  Growing copies and wipes the old
 * block, so no stale copy of a secret is left in freed memory. */
static int sb_append(struct sb *b, const void *p, size_t n)
{
    if (n > 8 * XS_SASL_MSG_MAX || b->len + n > 8 * XS_SASL_MSG_MAX)
        return GW_ELIMIT;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        uint8_t *q = malloc(cap);
        if (!q)
            return GW_ENOMEM;
        size_t len = b->len;
        if (len)
            memcpy(q, b->p, len);
        sb_wipe(b);
        b->p = q;
        b->cap = cap;
        b->len = len;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return GW_OK;
}

static int sb_str(struct sb *b, const char *s)
{
    return sb_append(b, s, strlen(s));
}

/* saslname: ',' -> "=2C", '=' -> "=3D" (RFC 5802 §5.1). */
static int sb_saslname(struct sb *b, const char *s)
{
    int rc = GW_OK;
    for (; *s && !rc; s++) {
        if (*s == ',')
            rc = sb_str(b, "=2C");
        else if (*s == '=')
            rc = sb_str(b, "=3D");
        else
            rc = sb_append(b, s, 1);
    }
    return rc;
}

/* ---- base64 ------------------------------------------------------------ */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int xs_sasl_b64_encode(const void *in, size_t n, char *out, size_t cap)
{
    const uint8_t *p = in;
    if (!out || (n && !in))
        return GW_EINVAL;
    if (n / 3 >= (SIZE_MAX - 5) / 4 || cap < (n + 2) / 3 * 4 + 1)
        return GW_ELIMIT;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    out[o] = 0;
    return GW_OK;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int xs_sasl_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap,
                       size_t *out_len)
{
    if (!out_len || (n && !in))
        return GW_EINVAL;
    *out_len = 0;
    if (n == 0 || (n == 1 && in[0] == '='))
        return GW_OK;
    if (n % 4)
        return GW_EPROTO;
    size_t pad = 0;
    if (in[n - 1] == '=')
        pad = in[n - 2] == '=' ? 2 : 1;
    size_t len = n / 4 * 3 - pad;
    if (!out || len > cap)
        return GW_ELIMIT;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        bool last = i + 4 == n;
        for (size_t k = 0; k < 4; k++) {
            char c = in[i + k];
            int d;
            if (c == '=' && last && k >= 4 - pad)
                d = 0;
            else
                d = b64_value(c);
            if (d < 0)
                return GW_EPROTO;
            v = v << 6 | (uint32_t)d;
        }
        /* canonical only: the bits under the padding are zero */
        if (last && ((pad == 2 && (v & 0xffff)) || (pad == 1 && (v & 0xff))))
            return GW_EPROTO;
        out[o++] = (uint8_t)(v >> 16);
        if (!last || pad < 2)
            out[o++] = (uint8_t)(v >> 8);
        if (!last || pad < 1)
            out[o++] = (uint8_t)v;
    }
    *out_len = o;
    return GW_OK;
}

static int sb_b64(struct sb *b, const void *p, size_t n)
{
    char tmp[4 * XS_SASL_MSG_MAX / 3 + 8];
    int rc = xs_sasl_b64_encode(p, n, tmp, sizeof(tmp));
    if (!rc)
        rc = sb_str(b, tmp);
    gnutls_memset(tmp, 0, sizeof(tmp));
    return rc;
}

/* ---- names and selection ----------------------------------------------- */

const char *xs_sasl_mech_name(enum xs_sasl_mech mech)
{
    if ((unsigned)mech >= XS_SASL_MECH_COUNT)
        return NULL;
    return mech_names[mech];
}

int xs_sasl_mech_parse(const char *name, enum xs_sasl_mech *out)
{
    if (!name || !out)
        return GW_EINVAL;
    for (unsigned m = 0; m < XS_SASL_MECH_COUNT; m++) {
        if (strcmp(name, mech_names[m]) == 0) {
            *out = (enum xs_sasl_mech)m;
            return GW_OK;
        }
    }
    return GW_ENOTFOUND;
}

static bool offer_has(const struct xs_sasl_offer *o, const char *name)
{
    for (size_t i = 0; i < o->n_offered; i++)
        if (o->offered[i] && strcmp(o->offered[i], name) == 0)
            return true;
    return false;
}

/* Any -PLUS name at all, ours or not (SCRAM-SHA-512-PLUS counts): a server
 * that offers one rejects gs2 flag "y" as a downgrade. */
static bool offer_has_plus(const struct xs_sasl_offer *o)
{
    for (size_t i = 0; i < o->n_offered; i++) {
        const char *s = o->offered[i];
        size_t n = s ? strlen(s) : 0;
        if (n > 5 && strcmp(s + n - 5, "-PLUS") == 0)
            return true;
    }
    return false;
}

int xs_sasl_select(const struct xs_sasl_offer *o, enum xs_sasl_mech *mech,
                   enum xs_cb_type *cb)
{
    if (!o || !mech || !cb || (o->n_offered && !o->offered))
        return GW_EINVAL;
    unsigned allowed = o->allowed ? o->allowed : XS_SASL_ALL;
    bool can_bind = o->tls && o->cb != XS_CB_NONE;
    for (unsigned i = 0; i < XS_SASL_MECH_COUNT; i++) {
        enum xs_sasl_mech m = (enum xs_sasl_mech)i;
        if (!(allowed & XS_SASL_BIT(m)) || !offer_has(o, mech_names[m]))
            continue;
        if (is_plus(m)) {
            if (!can_bind)
                continue;
            *cb = o->cb;
        } else if (m == XS_SASL_PLAIN) {
            if (!o->tls || !o->allow_plain)
                continue;
            *cb = XS_CB_NONE;
        } else {
            bool y = can_bind && (allowed & PLUS_MASK) && !offer_has_plus(o);
            *cb = y ? o->cb : XS_CB_NONE;
        }
        *mech = m;
        return GW_OK;
    }
    return GW_ENOTFOUND;
}

/* ---- preparation ------------------------------------------------------- */

/* Well-formed UTF-8: no overlongs, surrogates or code points > U+10FFFF. */
static bool utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1fu, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0fu, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* Checks s (1..XS_SASL_NAME_MAX bytes, no ASCII control characters) and
 * returns a prepared heap copy in *out and *out_len (NUL-terminated).  With
 * normalize, non-ASCII input goes through the OpaqueString profile. */
static int prepare(const char *s, bool normalize, char **out, size_t *out_len)
{
    size_t n = s ? strlen(s) : 0;
    bool ascii = true;
    if (n == 0 || n > XS_SASL_NAME_MAX)
        return GW_EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return GW_EINVAL;
        if (c >= 0x80)
            ascii = false;
    }
    if (!ascii && !utf8_valid((const uint8_t *)s, n))
        return GW_EINVAL;
    if (ascii || !normalize) {
        char *p = malloc(n + 1);
        if (!p)
            return GW_ENOMEM;
        memcpy(p, s, n + 1);
        *out = p;
        *out_len = n;
        return GW_OK;
    }
    gnutls_datum_t d = {NULL, 0};
    int g = gnutls_utf8_password_normalize((const unsigned char *)s,
                                           (unsigned)n, &d, 0);
    if (g < 0)
        return GW_EINVAL;
    int rc = GW_OK;
    char *p = NULL;
    if (d.size == 0 || d.size > XS_SASL_NAME_MAX || memchr(d.data, 0, d.size))
        rc = GW_EINVAL;
    else if (!(p = malloc((size_t)d.size + 1)))
        rc = GW_ENOMEM;
    if (!rc) {
        memcpy(p, d.data, d.size);
        p[d.size] = 0;
        *out = p;
        *out_len = d.size;
    }
    gnutls_memset(d.data, 0, d.size);
    gnutls_free(d.data);
    return rc;
}

/* ---- object ------------------------------------------------------------ */

static int fail(struct xs_sasl *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void wipe_secrets(struct xs_sasl *s)
{
    if (s->pw) {
        gnutls_memset(s->pw, 0, s->pw_len);
        free(s->pw);
        s->pw = NULL;
        s->pw_len = 0;
    }
    gnutls_memset(s->server_sig, 0, sizeof(s->server_sig));
}

static int fail(struct xs_sasl *s, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    s->st = ST_FAILED;
    wipe_secrets(s);
    sb_wipe(&s->out);
    return rc;
}

int xs_sasl_new(enum xs_sasl_mech mech, const char *authcid,
                const char *password, const char *authzid,
                enum xs_cb_type cb_type, const struct xs_cb_data *cb_data,
                struct xs_sasl **out)
{
    int rc = GW_OK;
    struct xs_sasl *s = NULL;
    size_t len = 0;
    if (!out)
        return GW_EINVAL;
    *out = NULL;
    if ((unsigned)mech >= XS_SASL_MECH_COUNT)
        return GW_EINVAL;
    if (is_plus(mech) &&
        ((cb_type != XS_CB_TLS_UNIQUE && cb_type != XS_CB_TLS_EXPORTER) ||
         !cb_data || cb_data->len == 0 || cb_data->len > XS_CB_DATA_MAX))
        return GW_EINVAL;
    if (!is_plus(mech) && mech != XS_SASL_PLAIN && cb_type != XS_CB_NONE &&
        cb_type != XS_CB_TLS_UNIQUE && cb_type != XS_CB_TLS_EXPORTER)
        return GW_EINVAL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return GW_ENOMEM;
    s->mech = mech;
    s->st = ST_START;
    if (mech == XS_SASL_SCRAM_SHA_1 || mech == XS_SASL_SCRAM_SHA_1_PLUS) {
        s->mac = GNUTLS_MAC_SHA1;
        s->dig = GNUTLS_DIG_SHA1;
        s->hlen = 20;
    } else {
        s->mac = GNUTLS_MAC_SHA256;
        s->dig = GNUTLS_DIG_SHA256;
        s->hlen = 32;
    }
    rc = prepare(authcid, true, &s->authcid, &len);
    if (rc)
        goto out;
    rc = prepare(password, true, &s->pw, &s->pw_len);
    if (rc)
        goto out;
    if (authzid && *authzid) {
        rc = prepare(authzid, false, &s->authzid, &len);
        if (rc)
            goto out;
    }
    if (mech != XS_SASL_PLAIN) {
        s->cb_type = cb_type;
        if (is_plus(mech))
            s->cb = *cb_data;
    }
    uint8_t raw[NONCE_RAW];
    if (gnutls_rnd(GNUTLS_RND_NONCE, raw, sizeof(raw)) < 0) {
        rc = GW_ESYS;
        goto out;
    }
    rc = xs_sasl_b64_encode(raw, sizeof(raw), s->nonce, sizeof(s->nonce));
out:
    if (rc) {
        xs_sasl_free(s);
        return rc;
    }
    *out = s;
    return GW_OK;
}

void xs_sasl_free(struct xs_sasl *s)
{
    if (!s)
        return;
    wipe_secrets(s);
    sb_wipe(&s->out);
    sb_wipe(&s->gs2);
    sb_wipe(&s->first_bare);
    if (s->authcid) {
        gnutls_memset(s->authcid, 0, strlen(s->authcid));
        free(s->authcid);
    }
    if (s->authzid) {
        gnutls_memset(s->authzid, 0, strlen(s->authzid));
        free(s->authzid);
    }
    gnutls_memset(s, 0, sizeof(*s));
    free(s);
}

int xs__sasl_set_nonce(struct xs_sasl *s, const char *nonce)
{
    size_t n = nonce ? strlen(nonce) : 0;
    if (!s || s->st != ST_START || s->mech == XS_SASL_PLAIN || n == 0 ||
        n > NONCE_MAX)
        return GW_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (nonce[i] < 0x21 || nonce[i] > 0x7e || nonce[i] == ',')
            return GW_EINVAL;
    memcpy(s->nonce, nonce, n + 1);
    return GW_OK;
}

const char *xs_sasl_error(const struct xs_sasl *s)
{
    return s ? s->err : "";
}

/* ---- steps ------------------------------------------------------------- */

static int initial_response(struct xs_sasl *s)
{
    int rc = GW_OK;
    if (s->mech == XS_SASL_PLAIN) {
        /* [authzid] NUL authcid NUL password (RFC 4616) */
        if (s->authzid)
            rc = sb_str(&s->out, s->authzid);
        if (!rc)
            rc = sb_append(&s->out, "", 1);
        if (!rc)
            rc = sb_str(&s->out, s->authcid);
        if (!rc)
            rc = sb_append(&s->out, "", 1);
        if (!rc)
            rc = sb_append(&s->out, s->pw, s->pw_len);
        if (rc)
            return fail(s, rc, "PLAIN message too long");
        s->st = ST_PLAIN_SENT;
        /* the password now lives only in the output buffer */
        wipe_secrets(s);
        return GW_OK;
    }
    /* gs2-header = cbind-flag "," [authzid] "," */
    if (is_plus(s->mech)) {
        rc = sb_str(&s->gs2, "p=");
        if (!rc)
            rc = sb_str(&s->gs2, xs_cb_type_name(s->cb_type));
    } else {
        rc = sb_str(&s->gs2, s->cb_type != XS_CB_NONE ? "y" : "n");
    }
    if (!rc)
        rc = sb_str(&s->gs2, ",");
    if (!rc && s->authzid) {
        rc = sb_str(&s->gs2, "a=");
        if (!rc)
            rc = sb_saslname(&s->gs2, s->authzid);
    }
    if (!rc)
        rc = sb_str(&s->gs2, ",");
    /* client-first-message-bare = "n=" saslname ",r=" c-nonce */
    if (!rc)
        rc = sb_str(&s->first_bare, "n=");
    if (!rc)
        rc = sb_saslname(&s->first_bare, s->authcid);
    if (!rc)
        rc = sb_str(&s->first_bare, ",r=");
    if (!rc)
        rc = sb_str(&s->first_bare, s->nonce);
    if (!rc)
        rc = sb_append(&s->out, s->gs2.p, s->gs2.len);
    if (!rc)
        rc = sb_append(&s->out, s->first_bare.p, s->first_bare.len);
    if (rc)
        return fail(s, rc, "client-first message: %s", gw_strerror(rc));
    s->st = ST_FIRST_SENT;
    return GW_OK;
}

/* One "k=value" attribute of a SCRAM message at *p (before end); moves *p
 * past it and the following ','.  Returns false at the end or when the
 * text is not an attribute. */
struct attr {
    char key;
    const char *val;
    size_t len;
};

static bool next_attr(const char **p, const char *end, struct attr *a)
{
    const char *q = *p;
    if (q >= end || end - q < 2 || q[1] != '=')
        return false;
    if (!((q[0] >= 'a' && q[0] <= 'z') || (q[0] >= 'A' && q[0] <= 'Z')))
        return false;
    a->key = q[0];
    a->val = q + 2;
    const char *c = memchr(a->val, ',', (size_t)(end - a->val));
    a->len = (size_t)((c ? c : end) - a->val);
    *p = c ? c + 1 : end;
    return true;
}

/* The server's error value, made printable for the log. */
static int server_error(struct xs_sasl *s, const struct attr *a)
{
    char v[64];
    size_t n = a->len < sizeof(v) - 1 ? a->len : sizeof(v) - 1;
    for (size_t i = 0; i < n; i++)
        v[i] = a->val[i] >= 0x20 && a->val[i] < 0x7f ? a->val[i] : '?';
    v[n] = 0;
    return fail(s, GW_EAUTH, "server error: %s", v);
}

static bool printable_nonce(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
            return false;
    return n > 0;
}

/* Checks the raw input: bounded, no NUL (SCRAM messages are text). */
static int check_text(struct xs_sasl *s, const uint8_t *in, size_t n,
                      const char *what)
{
    if (n > XS_SASL_MSG_MAX)
        return fail(s, GW_EPROTO, "%s longer than %u bytes", what,
                    XS_SASL_MSG_MAX);
    if (n == 0 || memchr(in, 0, n))
        return fail(s, GW_EPROTO, "%s is empty or binary", what);
    return GW_OK;
}

static int client_final(struct xs_sasl *s, const uint8_t *in, size_t n)
{
    int rc = check_text(s, in, n, "server-first message");
    if (rc)
        return rc;
    const char *p = (const char *)in, *end = p + n;
    struct attr a, r, salt_a, it;
    uint8_t salt[XS_SASL_MSG_MAX];
    size_t salt_len = 0;
    uint8_t sp[HASH_MAX], ck[HASH_MAX], sk[HASH_MAX], stored[HASH_MAX],
        csig[HASH_MAX], proof[HASH_MAX], svk[HASH_MAX];
    struct sb am = {NULL, 0, 0};
    uint64_t iter = 0; /* 10 digits fit; unsigned long may be 32 bits */

    if (!next_attr(&p, end, &a))
        return fail(s, GW_EPROTO, "server-first message is malformed");
    if (a.key == 'e')
        return server_error(s, &a);
    if (a.key == 'm')
        return fail(s, GW_EAUTH, "server requires an unknown extension");
    r = a;
    if (r.key != 'r')
        return fail(s, GW_EPROTO, "server-first message: no nonce (r=)");
    if (!next_attr(&p, end, &salt_a) || salt_a.key != 's')
        return fail(s, GW_EPROTO, "server-first message: no salt (s=)");
    if (!next_attr(&p, end, &it) || it.key != 'i')
        return fail(s, GW_EPROTO,
                    "server-first message: no iteration count (i=)");
    /* the rest are extensions, ignored */

    size_t cn = strlen(s->nonce);
    if (!printable_nonce(r.val, r.len))
        return fail(s, GW_EPROTO, "server nonce has invalid characters");
    if (r.len <= cn || memcmp(r.val, s->nonce, cn) != 0)
        return fail(s, GW_EAUTH, "server nonce does not extend ours");
    if (xs_sasl_b64_decode(salt_a.val, salt_a.len, salt, sizeof(salt),
                           &salt_len) ||
        salt_len == 0)
        return fail(s, GW_EPROTO, "server salt is not valid base64");
    if (it.len == 0 || it.len > 10)
        return fail(s, GW_EPROTO, "iteration count is malformed");
    for (size_t i = 0; i < it.len; i++) {
        if (it.val[i] < '0' || it.val[i] > '9')
            return fail(s, GW_EPROTO, "iteration count is malformed");
        iter = iter * 10 + (uint64_t)(it.val[i] - '0');
    }
    if (iter == 0)
        return fail(s, GW_EPROTO, "iteration count is 0");
    if (iter < XS_SASL_SCRAM_MIN_ITER || iter > XS_SASL_SCRAM_MAX_ITER)
        return fail(s, GW_EAUTH,
                    "iteration count %llu refused (allowed %u..%u)",
                    (unsigned long long)iter, XS_SASL_SCRAM_MIN_ITER,
                    XS_SASL_SCRAM_MAX_ITER);

    /* client-final-message-without-proof = "c=" b64(gs2 [cb]) ",r=" nonce */
    struct sb cbind = {NULL, 0, 0};
    sb_clear(&s->out);
    rc = sb_append(&cbind, s->gs2.p, s->gs2.len);
    if (!rc && is_plus(s->mech))
        rc = sb_append(&cbind, s->cb.data, s->cb.len);
    if (!rc)
        rc = sb_str(&s->out, "c=");
    if (!rc)
        rc = sb_b64(&s->out, cbind.p, cbind.len);
    sb_wipe(&cbind);
    if (!rc)
        rc = sb_str(&s->out, ",r=");
    if (!rc)
        rc = sb_append(&s->out, r.val, r.len);
    /* AuthMessage = client-first-bare "," server-first "," without-proof */
    if (!rc)
        rc = sb_append(&am, s->first_bare.p, s->first_bare.len);
    if (!rc)
        rc = sb_str(&am, ",");
    if (!rc)
        rc = sb_append(&am, in, n);
    if (!rc)
        rc = sb_str(&am, ",");
    if (!rc)
        rc = sb_append(&am, s->out.p, s->out.len);
    if (rc) {
        rc = fail(s, rc, "client-final message: %s", gw_strerror(rc));
        goto out;
    }

    gnutls_datum_t key = {(unsigned char *)s->pw, (unsigned)s->pw_len};
    gnutls_datum_t sd = {salt, (unsigned)salt_len};
    size_t h = s->hlen;
    if (gnutls_pbkdf2(s->mac, &key, &sd, (unsigned)iter, sp, h) < 0 ||
        gnutls_hmac_fast(s->mac, sp, h, "Client Key", 10, ck) < 0 ||
        gnutls_hash_fast(s->dig, ck, h, stored) < 0 ||
        gnutls_hmac_fast(s->mac, stored, h, am.p, am.len, csig) < 0 ||
        gnutls_hmac_fast(s->mac, sp, h, "Server Key", 10, svk) < 0 ||
        gnutls_hmac_fast(s->mac, svk, h, am.p, am.len, sk) < 0) {
        rc = fail(s, GW_ESYS, "SCRAM key derivation failed");
        goto out;
    }
    /* the password is not needed any more */
    gnutls_memset(s->pw, 0, s->pw_len);
    free(s->pw);
    s->pw = NULL;
    s->pw_len = 0;
    memcpy(s->server_sig, sk, h);
    for (size_t i = 0; i < h; i++)
        proof[i] = ck[i] ^ csig[i];
    rc = sb_str(&s->out, ",p=");
    if (!rc)
        rc = sb_b64(&s->out, proof, h);
    if (rc) {
        rc = fail(s, rc, "client-final message: %s", gw_strerror(rc));
        goto out;
    }
    s->st = ST_FINAL_SENT;
out:
    sb_wipe(&am);
    gnutls_memset(salt, 0, sizeof(salt));
    gnutls_memset(sp, 0, sizeof(sp));
    gnutls_memset(ck, 0, sizeof(ck));
    gnutls_memset(sk, 0, sizeof(sk));
    gnutls_memset(stored, 0, sizeof(stored));
    gnutls_memset(csig, 0, sizeof(csig));
    gnutls_memset(proof, 0, sizeof(proof));
    gnutls_memset(svk, 0, sizeof(svk));
    return rc;
}

/* server-final-message = (e=... / v=...) ["," extensions] */
static int server_final(struct xs_sasl *s, const uint8_t *in, size_t n)
{
    int rc = check_text(s, in, n, "server-final message");
    if (rc)
        return rc;
    const char *p = (const char *)in, *end = p + n;
    struct attr a;
    uint8_t v[XS_SASL_MSG_MAX];
    size_t vlen = 0;
    if (!next_attr(&p, end, &a))
        return fail(s, GW_EPROTO, "server-final message is malformed");
    if (a.key == 'e')
        return server_error(s, &a);
    if (a.key != 'v')
        return fail(s, GW_EPROTO, "server-final message: no verifier (v=)");
    if (xs_sasl_b64_decode(a.val, a.len, v, sizeof(v), &vlen))
        return fail(s, GW_EPROTO, "server signature is not valid base64");
    if (vlen != s->hlen || gnutls_memcmp(v, s->server_sig, s->hlen) != 0)
        return fail(s, GW_EAUTH, "wrong server signature");
    s->st = ST_VERIFIED;
    wipe_secrets(s);
    return GW_OK;
}

int xs_sasl_step(struct xs_sasl *s, const uint8_t *in, size_t in_len,
                 const uint8_t **out, size_t *out_len)
{
    int rc;
    if (!s || !out || !out_len || (in_len && !in))
        return GW_EINVAL;
    *out = NULL;
    *out_len = 0;
    s->err[0] = 0;
    sb_clear(&s->out);
    switch (s->st) {
    case ST_START:
        if (in || in_len)
            return GW_EINVAL;
        rc = initial_response(s);
        break;
    case ST_FIRST_SENT:
        rc = client_final(s, in, in_len);
        break;
    case ST_FINAL_SENT:
        rc = server_final(s, in, in_len);
        break;
    case ST_PLAIN_SENT:
        return fail(s, GW_EPROTO, "PLAIN expects no challenge");
    case ST_VERIFIED:
    case ST_DONE:
        return fail(s, GW_EPROTO, "challenge after the exchange ended");
    case ST_FAILED:
    default:
        snprintf(s->err, sizeof(s->err), "the exchange already failed");
        return GW_EPROTO;
    }
    if (rc)
        return rc;
    /* an empty response (after v= in a challenge) has no buffer yet */
    *out = s->out.p ? s->out.p : (const uint8_t *)"";
    *out_len = s->out.len;
    return GW_OK;
}

int xs_sasl_finish(struct xs_sasl *s, const uint8_t *in, size_t in_len)
{
    int rc = GW_OK;
    if (!s || (in_len && !in))
        return GW_EINVAL;
    s->err[0] = 0;
    sb_wipe(&s->out);
    switch (s->st) {
    case ST_PLAIN_SENT:
        break; /* PLAIN has nothing to verify */
    case ST_FINAL_SENT:
        if (in_len == 0)
            return fail(s, GW_EAUTH, "success without a server signature");
        rc = server_final(s, in, in_len);
        break;
    case ST_VERIFIED:
        if (in_len)
            return fail(s, GW_EPROTO, "unexpected data in success");
        break;
    case ST_START:
    case ST_FIRST_SENT:
        return fail(s, GW_EPROTO, "success before the exchange completed");
    case ST_DONE:
    case ST_FAILED:
    default:
        snprintf(s->err, sizeof(s->err), "the exchange already ended");
        return GW_EPROTO;
    }
    if (rc)
        return rc;
    s->st = ST_DONE;
    wipe_secrets(s);
    return GW_OK;
}
