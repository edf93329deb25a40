/* test_xs_tls.c - the TLS client over memory (xmpp/xs_tls.c) against a real
 * GnuTLS server in the same process.
 *
 * The group setup generates, with the GnuTLS x509 API, a CA, a server
 * certificate for "xmpp.example.test" signed by it, and a second CA that
 * signed nothing; both CAs go to temporary PEM files (removed at the end).
 * A pump moves bytes between the client (xs_tls) and the server session,
 * optionally a few bytes at a time, until both sides are done. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>

#include <cmocka.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "gw_err.h"
#include "xs_sasl.h"
#include "xs_tls.h"

#define HOST "xmpp.example.test"
#define WIRE_MAX (4u * 1024u * 1024u)
#define PRIO_TLS12 "NORMAL:-VERS-ALL:+VERS-TLS1.2"
#define PRIO_TLS13 "NORMAL:-VERS-ALL:+VERS-TLS1.3"

/* ---- certificates ------------------------------------------------------- */

struct pki {
    gnutls_x509_privkey_t ca_key, ca2_key, srv_key;
    gnutls_x509_crt_t ca, ca2, srv;
    gnutls_certificate_credentials_t srv_cred;
    char ca_file[64];
    char ca2_file[64];
};

static void gen_key(gnutls_x509_privkey_t *k)
{
    assert_int_equal(gnutls_x509_privkey_init(k), 0);
    assert_int_equal(gnutls_x509_privkey_generate(
                         *k, GNUTLS_PK_ECDSA,
                         GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                     0);
}

static void crt_common(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key,
                       const char *cn, unsigned char serial)
{
    time_t now = time(NULL);
    unsigned char sn[8] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, serial};
    assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(crt, sn, sizeof(sn)), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 3600), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 30 * 86400),
                     0);
    assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt,
                                                   GNUTLS_OID_X520_COMMON_NAME,
                                                   0, cn, (unsigned)strlen(cn)),
                     0);
    assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
    unsigned char id[64];
    size_t idlen = sizeof(id);
    assert_int_equal(gnutls_x509_crt_get_key_id(crt, 0, id, &idlen), 0);
    assert_int_equal(gnutls_x509_crt_set_subject_key_id(crt, id, idlen), 0);
}

static void gen_ca(gnutls_x509_crt_t *crt, gnutls_x509_privkey_t key,
                   const char *cn, unsigned char serial)
{
    assert_int_equal(gnutls_x509_crt_init(crt), 0);
    crt_common(*crt, key, cn, serial);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(*crt, 1, -1), 0);
    assert_int_equal(gnutls_x509_crt_set_key_usage(
                         *crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN),
                     0);
    assert_int_equal(
        gnutls_x509_crt_sign2(*crt, *crt, key, GNUTLS_DIG_SHA256, 0), 0);
}

static void write_pem(gnutls_x509_crt_t crt, char *path, size_t cap)
{
    gnutls_datum_t d = {NULL, 0};
    snprintf(path, cap, "/tmp/fg-test-ca-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), 0);
    assert_int_equal(write(fd, d.data, d.size), (ssize_t)d.size);
    close(fd);
    gnutls_free(d.data);
}

static int setup_pki(void **state)
{
    struct pki *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    gen_key(&p->ca_key);
    gen_key(&p->ca2_key);
    gen_key(&p->srv_key);
    gen_ca(&p->ca, p->ca_key, "fieldgate test CA", 1);
    gen_ca(&p->ca2, p->ca2_key, "fieldgate other CA", 2);

    assert_int_equal(gnutls_x509_crt_init(&p->srv), 0);
    crt_common(p->srv, p->srv_key, HOST, 3);
    assert_int_equal(gnutls_x509_crt_set_subject_alt_name(
                         p->srv, GNUTLS_SAN_DNSNAME, HOST,
                         (unsigned)strlen(HOST), GNUTLS_FSAN_SET),
                     0);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(p->srv, 0, -1), 0);
    assert_int_equal(
        gnutls_x509_crt_set_key_usage(p->srv, GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
    assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(
                         p->srv, GNUTLS_KP_TLS_WWW_SERVER, 0),
                     0);
    unsigned char id[64];
    size_t idlen = sizeof(id);
    assert_int_equal(
        gnutls_x509_crt_get_subject_key_id(p->ca, id, &idlen, NULL), 0);
    assert_int_equal(gnutls_x509_crt_set_authority_key_id(p->srv, id, idlen),
                     0);
    assert_int_equal(
        gnutls_x509_crt_sign2(p->srv, p->ca, p->ca_key, GNUTLS_DIG_SHA256, 0),
        0);

    assert_int_equal(gnutls_certificate_allocate_credentials(&p->srv_cred), 0);
    assert_int_equal(
        gnutls_certificate_set_x509_key(p->srv_cred, &p->srv, 1, p->srv_key),
        0);
    write_pem(p->ca, p->ca_file, sizeof(p->ca_file));
    write_pem(p->ca2, p->ca2_file, sizeof(p->ca2_file));
    *state = p;
    return 0;
}

static int teardown_pki(void **state)
{
    struct pki *p = *state;
    unlink(p->ca_file);
    unlink(p->ca2_file);
    gnutls_certificate_free_credentials(p->srv_cred);
    gnutls_x509_crt_deinit(p->srv);
    gnutls_x509_crt_deinit(p->ca);
    gnutls_x509_crt_deinit(p->ca2);
    gnutls_x509_privkey_deinit(p->srv_key);
    gnutls_x509_privkey_deinit(p->ca_key);
    gnutls_x509_privkey_deinit(p->ca2_key);
    free(p);
    return 0;
}

/* ---- the pair: xs_tls client, GnuTLS server, two wires ------------------ */

struct wire {
    uint8_t *buf;
    size_t off;
    size_t len;
};

struct pair {
    struct xs_tls *c;
    gnutls_session_t s;
    struct wire c2s;  /* client output not yet given to the server */
    struct wire s_in; /* delivered to the server, not yet pulled */
    struct wire s2c;  /* server output not yet fed to the client */
    size_t chunk;     /* bytes moved per pump round; 0 = all */
    int fail_output;  /* the client output callback fails when set */
    int c_rc;         /* last xs_tls_handshake */
    int s_rc;         /* last gnutls_handshake */
    bool c_done, s_done;
};

static void wire_put(struct wire *w, const void *p, size_t n)
{
    if (!w->buf) {
        w->buf = malloc(WIRE_MAX);
        assert_non_null(w->buf);
    }
    if (w->off && w->off == w->len)
        w->off = w->len = 0;
    assert_true(w->len + n <= WIRE_MAX);
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static size_t wire_avail(const struct wire *w)
{
    return w->len - w->off;
}

static int client_output(void *ud, const uint8_t *data, size_t len)
{
    struct pair *pr = ud;
    if (pr->fail_output)
        return GW_EIO;
    wire_put(&pr->c2s, data, len);
    return 0;
}

static ssize_t srv_push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
    struct pair *pr = ptr;
    wire_put(&pr->s2c, buf, len);
    return (ssize_t)len;
}

static ssize_t srv_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    struct pair *pr = ptr;
    size_t n = wire_avail(&pr->s_in);
    if (n == 0) {
        gnutls_transport_set_errno(pr->s, EAGAIN);
        return -1;
    }
    if (n > len)
        n = len;
    memcpy(buf, pr->s_in.buf + pr->s_in.off, n);
    pr->s_in.off += n;
    return (ssize_t)n;
}

static int srv_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
    struct pair *pr = ptr;
    return wire_avail(&pr->s_in) ? 1 : 0;
}

struct opts {
    const char *hostname;
    const char *ca_file; /* NULL: the test CA; "" : system trust */
    const char *client_prio;
    const char *server_prio;
    const char *alpn;
    bool verify_off;
    size_t inbuf_max;
    size_t chunk;
};

static void pair_init(struct pair *pr, const struct pki *pki,
                      const struct opts *o)
{
    memset(pr, 0, sizeof(*pr));
    pr->chunk = o->chunk;
    pr->c_rc = pr->s_rc = GW_EAGAIN;
    struct xs_tls_config cfg = {
        .hostname = o->hostname ? o->hostname : HOST,
        .ca_file =
            o->ca_file ? (*o->ca_file ? o->ca_file : NULL) : pki->ca_file,
        .priority = o->client_prio,
        .alpn = o->alpn,
        .verify = !o->verify_off,
        .inbuf_max = o->inbuf_max,
        .output = client_output,
        .output_ud = pr,
    };
    assert_int_equal(xs_tls_new(&cfg, &pr->c), 0);

    assert_int_equal(gnutls_init(&pr->s, GNUTLS_SERVER), 0);
    assert_int_equal(gnutls_priority_set_direct(
                         pr->s,
                         o->server_prio
                             ? o->server_prio
                             : "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
                         NULL),
                     0);
    assert_int_equal(
        gnutls_credentials_set(pr->s, GNUTLS_CRD_CERTIFICATE, pki->srv_cred),
        0);
    if (o->alpn) {
        gnutls_datum_t p = {(unsigned char *)(uintptr_t)o->alpn,
                            (unsigned)strlen(o->alpn)};
        assert_int_equal(gnutls_alpn_set_protocols(pr->s, &p, 1, 0), 0);
    }
    gnutls_handshake_set_timeout(pr->s, 0);
    gnutls_transport_set_ptr(pr->s, pr);
    gnutls_transport_set_push_function(pr->s, srv_push);
    gnutls_transport_set_pull_function(pr->s, srv_pull);
    gnutls_transport_set_pull_timeout_function(pr->s, srv_pull_timeout);
}

static void pair_close(struct pair *pr)
{
    xs_tls_free(pr->c);
    gnutls_deinit(pr->s);
    free(pr->c2s.buf);
    free(pr->s_in.buf);
    free(pr->s2c.buf);
}

/* Moves up to chunk bytes each way.  Returns the bytes moved. */
static size_t pump_wires(struct pair *pr)
{
    size_t moved = 0;
    size_t n = wire_avail(&pr->c2s);
    if (pr->chunk && n > pr->chunk)
        n = pr->chunk;
    if (n) {
        wire_put(&pr->s_in, pr->c2s.buf + pr->c2s.off, n);
        pr->c2s.off += n;
        moved += n;
    }
    n = wire_avail(&pr->s2c);
    if (pr->chunk && n > pr->chunk)
        n = pr->chunk;
    if (n) {
        assert_int_equal(xs_tls_feed(pr->c, pr->s2c.buf + pr->s2c.off, n), 0);
        pr->s2c.off += n;
        moved += n;
    }
    return moved;
}

/* Runs both handshakes until both are done, one fails, or nothing moves. */
static void handshake(struct pair *pr)
{
    int idle = 0;
    for (long round = 0; round < 1000000 && idle < 3; round++) {
        if (!pr->c_done) {
            pr->c_rc = xs_tls_handshake(pr->c);
            pr->c_done = pr->c_rc == 0;
            if (pr->c_rc != 0 && pr->c_rc != GW_EAGAIN)
                break;
        }
        if (!pr->s_done) {
            pr->s_rc = gnutls_handshake(pr->s);
            pr->s_done = pr->s_rc == 0;
            if (pr->s_rc < 0 && gnutls_error_is_fatal(pr->s_rc))
                break;
        }
        /* the client fails first on a bad certificate; still deliver
         * its alert so the server sees the failure too */
        if (pump_wires(pr) == 0)
            idle = pr->c_done && pr->s_done ? 3 : idle + 1;
        else
            idle = 0;
    }
}

static void handshake_ok(struct pair *pr)
{
    handshake(pr);
    if (pr->c_rc != 0)
        fail_msg("client: %s: %s", gw_err_name(pr->c_rc), xs_tls_error(pr->c));
    assert_int_equal(pr->s_rc, 0);
    /* records that came with the last flight (TLS 1.3 tickets) */
    uint8_t b[16];
    size_t got = 9;
    assert_int_equal(xs_tls_read(pr->c, b, sizeof(b), &got), GW_EAGAIN);
    assert_int_equal(got, 0);
}

/* Client -> server: all of data arrives, in order, and the wire does not
 * carry it in clear. */
static void send_to_server(struct pair *pr, const uint8_t *data, size_t n)
{
    uint8_t *got = malloc(n);
    size_t have = 0;
    assert_non_null(got);
    assert_int_equal(xs_tls_write(pr->c, data, n), 0);
    if (n >= 16 && wire_avail(&pr->c2s) >= n)
        assert_null(
            memmem(pr->c2s.buf + pr->c2s.off, wire_avail(&pr->c2s), data, 16));
    for (long round = 0; have < n && round < 10000000; round++) {
        pump_wires(pr);
        while (have < n) {
            ssize_t r = gnutls_record_recv(pr->s, got + have, n - have);
            if (r == GNUTLS_E_AGAIN)
                break;
            if (r <= 0)
                fail_msg("server recv: %zd %s", r, gnutls_strerror((int)r));
            have += (size_t)r;
        }
    }
    assert_int_equal(have, n);
    assert_memory_equal(got, data, n);
    free(got);
}

static void send_to_client(struct pair *pr, const uint8_t *data, size_t n)
{
    uint8_t *got = malloc(n + 1);
    uint8_t buf[4096];
    size_t have = 0;
    assert_non_null(got);
    for (size_t off = 0; off < n;) {
        ssize_t w = gnutls_record_send(pr->s, data + off, n - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    for (long round = 0; have < n && round < 10000000; round++) {
        pump_wires(pr);
        while (have < n) {
            size_t g = 0;
            int rc = xs_tls_read(pr->c, buf, sizeof(buf), &g);
            if (rc == GW_EAGAIN)
                break;
            assert_int_equal(rc, 0);
            assert_true(g > 0 && have + g <= n);
            memcpy(got + have, buf, g);
            have += g;
        }
    }
    assert_int_equal(have, n);
    assert_memory_equal(got, data, n);
    free(got);
}

static void exchange_data(struct pair *pr)
{
    static const char hello[] = "<stream:stream to='example.org'>";
    send_to_server(pr, (const uint8_t *)hello, sizeof(hello) - 1);
    send_to_client(pr, (const uint8_t *)"<stream:features/>", 18);
    /* more than one record each way */
    size_t big = 100000;
    uint8_t *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 31 + (i >> 8));
    send_to_server(pr, data, big);
    send_to_client(pr, data, big);
    free(data);
}

/* Channel binding of type t is the same on both sides. */
static void cb_equal(struct pair *pr, enum xs_cb_type t,
                     gnutls_channel_binding_t gt, size_t want_len)
{
    struct xs_cb_data cb;
    gnutls_datum_t d = {NULL, 0};
    assert_int_equal(xs_tls_channel_binding(pr->c, t, &cb), 0);
    assert_int_equal(gnutls_session_channel_binding(pr->s, gt, &d), 0);
    assert_int_equal(cb.len, want_len);
    assert_int_equal(d.size, cb.len);
    assert_memory_equal(d.data, cb.data, cb.len);
    gnutls_free(d.data);
}

/* ---- cases -------------------------------------------------------------- */

static void test_tls13_handshake_and_data(void **state)
{
    struct pair pr;
    struct opts o = {0};
    pair_init(&pr, *state, &o);
    assert_string_equal(xs_tls_version(pr.c), "none");
    assert_int_equal(xs_tls_cb_type(pr.c), XS_CB_NONE);
    handshake_ok(&pr);
    assert_string_equal(xs_tls_version(pr.c), "TLS1.3");
    assert_int_equal(gnutls_protocol_get_version(pr.s), GNUTLS_TLS1_3);
    /* SNI went out */
    char name[256];
    size_t nl = sizeof(name);
    unsigned type;
    assert_int_equal(gnutls_server_name_get(pr.s, name, &nl, &type, 0), 0);
    assert_string_equal(name, HOST);
    /* a second call is a no-op */
    assert_int_equal(xs_tls_handshake(pr.c), 0);
    exchange_data(&pr);
    pair_close(&pr);
}

static void test_tls12_handshake_and_data(void **state)
{
    struct pair pr;
    struct opts o = {.client_prio = PRIO_TLS12};
    pair_init(&pr, *state, &o);
    handshake_ok(&pr);
    assert_string_equal(xs_tls_version(pr.c), "TLS1.2");
    assert_int_equal(gnutls_protocol_get_version(pr.s), GNUTLS_TLS1_2);
    exchange_data(&pr);
    pair_close(&pr);
}

static void test_channel_binding_tls13(void **state)
{
    struct pair pr;
    struct opts o = {.client_prio = PRIO_TLS13};
    struct xs_cb_data cb;
    pair_init(&pr, *state, &o);
    assert_int_equal(xs_tls_channel_binding(pr.c, XS_CB_TLS_EXPORTER, &cb),
                     GW_EINVAL); /* not yet */
    handshake_ok(&pr);
    assert_int_equal(xs_tls_cb_type(pr.c), XS_CB_TLS_EXPORTER);
    cb_equal(&pr, XS_CB_TLS_EXPORTER, GNUTLS_CB_TLS_EXPORTER, 32);
    /* tls-unique is undefined for TLS 1.3 (RFC 9266) */
    assert_int_equal(xs_tls_channel_binding(pr.c, XS_CB_TLS_UNIQUE, &cb),
                     GW_EUNSUPPORTED);
    assert_int_equal(xs_tls_channel_binding(pr.c, XS_CB_NONE, &cb), GW_EINVAL);
    pair_close(&pr);
}

static void test_channel_binding_tls12(void **state)
{
    struct pair pr;
    struct opts o = {.server_prio = PRIO_TLS12};
    pair_init(&pr, *state, &o);
    handshake_ok(&pr);
    assert_int_equal(xs_tls_cb_type(pr.c), XS_CB_TLS_UNIQUE);
    cb_equal(&pr, XS_CB_TLS_UNIQUE, GNUTLS_CB_TLS_UNIQUE, 12);
    /* GnuTLS negotiates the extended master secret by default, which
     * makes tls-exporter defined on TLS 1.2 as well (RFC 9266 §4) */
    assert_true(gnutls_session_ext_master_secret_status(pr.s) != 0);
    cb_equal(&pr, XS_CB_TLS_EXPORTER, GNUTLS_CB_TLS_EXPORTER, 32);
    pair_close(&pr);
}

/* Without the extended master secret, tls-exporter is refused on 1.2. */
static void test_tls12_no_ems_refuses_exporter(void **state)
{
    struct pair pr;
    struct opts o = {.server_prio = PRIO_TLS12 ":%NO_SESSION_HASH"};
    struct xs_cb_data cb;
    pair_init(&pr, *state, &o);
    handshake_ok(&pr);
    assert_int_equal(gnutls_session_ext_master_secret_status(pr.s), 0);
    assert_int_equal(xs_tls_channel_binding(pr.c, XS_CB_TLS_EXPORTER, &cb),
                     GW_EUNSUPPORTED);
    cb_equal(&pr, XS_CB_TLS_UNIQUE, GNUTLS_CB_TLS_UNIQUE, 12);
    pair_close(&pr);
}

/* The binding feeds SCRAM -PLUS: the c= value carries it. */
static void test_binding_into_scram_plus(void **state)
{
    struct pair pr;
    struct opts o = {0};
    pair_init(&pr, *state, &o);
    handshake_ok(&pr);
    const char *offered[] = {"SCRAM-SHA-1", "SCRAM-SHA-256-PLUS"};
    struct xs_sasl_offer off = {offered, 2, 0, true, xs_tls_cb_type(pr.c),
                                false};
    enum xs_sasl_mech m;
    enum xs_cb_type cbt;
    assert_int_equal(xs_sasl_select(&off, &m, &cbt), 0);
    assert_int_equal(m, XS_SASL_SCRAM_SHA_256_PLUS);
    assert_int_equal(cbt, XS_CB_TLS_EXPORTER);
    struct xs_cb_data cb;
    assert_int_equal(xs_tls_channel_binding(pr.c, cbt, &cb), 0);
    struct xs_sasl *s = NULL;
    assert_int_equal(xs_sasl_new(m, "user", "pencil", NULL, cbt, &cb, &s), 0);
    const uint8_t *out;
    size_t n;
    assert_int_equal(xs_sasl_step(s, NULL, 0, &out, &n), 0);
    char first[128];
    assert_true(n < sizeof(first));
    memcpy(first, out, n);
    first[n] = 0;
    const char *r = strstr(first, ",r=");
    assert_non_null(r);
    char sf[256];
    snprintf(sf, sizeof(sf), "r=%sXYZ,s=c2FsdA==,i=4096", r + 3);
    assert_int_equal(xs_sasl_step(s, (const uint8_t *)sf, strlen(sf), &out, &n),
                     0);
    /* c= is base64("p=tls-exporter,," + the server's own binding) */
    gnutls_datum_t d = {NULL, 0}, raw, b64 = {NULL, 0};
    assert_int_equal(
        gnutls_session_channel_binding(pr.s, GNUTLS_CB_TLS_EXPORTER, &d), 0);
    uint8_t cbind[64];
    memcpy(cbind, "p=tls-exporter,,", 16);
    memcpy(cbind + 16, d.data, d.size);
    raw.data = cbind;
    raw.size = 16 + d.size;
    assert_int_equal(gnutls_base64_encode2(&raw, &b64), 0);
    assert_true(n > 2 + b64.size);
    assert_memory_equal(out, "c=", 2);
    assert_memory_equal(out + 2, b64.data, b64.size);
    assert_int_equal(out[2 + b64.size], ',');
    gnutls_free(d.data);
    gnutls_free(b64.data);
    xs_sasl_free(s);
    pair_close(&pr);
}

static void test_hostname_mismatch(void **state)
{
    struct pair pr;
    struct opts o = {.hostname = "other.example.test"};
    pair_init(&pr, *state, &o);
    handshake(&pr);
    assert_int_equal(pr.c_rc, GW_ETLS);
    assert_false(pr.c_done);
    assert_non_null(strstr(xs_tls_error(pr.c), "certificate verification"));
    assert_non_null(strstr(xs_tls_error(pr.c), "does not match"));
    /* nothing can be sent */
    assert_int_equal(xs_tls_write(pr.c, "x", 1), GW_EINVAL);
    pair_close(&pr);
}

static void test_untrusted_ca(void **state)
{
    struct pki *pki = *state;
    struct pair pr;
    struct opts o = {.ca_file = pki->ca2_file};
    pair_init(&pr, pki, &o);
    handshake(&pr);
    assert_int_equal(pr.c_rc, GW_ETLS);
    assert_non_null(strstr(xs_tls_error(pr.c), "certificate verification"));
    assert_non_null(strstr(xs_tls_error(pr.c), "NOT trusted"));
    pair_close(&pr);
}

/* The system trust store does not know the test CA. */
static void test_system_trust_refuses_test_ca(void **state)
{
    struct pair pr;
    struct opts o = {.ca_file = ""};
    pair_init(&pr, *state, &o);
    handshake(&pr);
    assert_int_equal(pr.c_rc, GW_ETLS);
    assert_non_null(strstr(xs_tls_error(pr.c), "NOT trusted"));
    pair_close(&pr);
}

static void test_verify_off(void **state)
{
    struct pki *pki = *state;
    struct pair pr;
    /* wrong name and an untrusted CA: accepted only with verify off */
    struct opts o = {.hostname = "other.example.test",
                     .ca_file = pki->ca2_file,
                     .verify_off = true};
    pair_init(&pr, pki, &o);
    handshake_ok(&pr);
    send_to_server(&pr, (const uint8_t *)"ping", 4);
    pair_close(&pr);

    /* an IP literal as the host: no SNI is sent */
    struct opts o2 = {.hostname = "127.0.0.1", .verify_off = true};
    pair_init(&pr, pki, &o2);
    handshake_ok(&pr);
    char name[256];
    size_t nl = sizeof(name);
    unsigned type;
    assert_int_equal(gnutls_server_name_get(pr.s, name, &nl, &type, 0),
                     GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
    pair_close(&pr);
}

static void test_one_byte_chunks(void **state)
{
    static const char *const prios[] = {PRIO_TLS13, PRIO_TLS12};
    for (size_t i = 0; i < 2; i++) {
        struct pair pr;
        struct opts o = {.client_prio = prios[i], .chunk = 1};
        pair_init(&pr, *state, &o);
        handshake_ok(&pr);
        assert_string_equal(xs_tls_version(pr.c), i ? "TLS1.2" : "TLS1.3");
        static const char msg[] = "<message to='a@b'><body>1 byte at a time"
                                  "</body></message>";
        send_to_server(&pr, (const uint8_t *)msg, sizeof(msg) - 1);
        send_to_client(&pr, (const uint8_t *)msg, sizeof(msg) - 1);
        pair_close(&pr);
    }
}

static void test_close_notify(void **state)
{
    struct pair pr;
    struct opts o = {0};
    uint8_t buf[64];
    size_t got = 0;
    pair_init(&pr, *state, &o);
    handshake_ok(&pr);
    /* client closes: the server reads end of data (0), not an error */
    assert_int_equal(xs_tls_bye(pr.c), 0);
    assert_true(wire_avail(&pr.c2s) > 0);
    pump_wires(&pr);
    ssize_t r;
    do {
        r = gnutls_record_recv(pr.s, buf, sizeof(buf));
    } while (r == GNUTLS_E_AGAIN && pump_wires(&pr));
    assert_int_equal(r, 0);
    /* the server still may send; then it closes too */
    assert_true(gnutls_record_send(pr.s, "bye", 3) == 3);
    assert_int_equal(gnutls_bye(pr.s, GNUTLS_SHUT_WR), 0);
    pump_wires(&pr);
    assert_int_equal(xs_tls_read(pr.c, buf, sizeof(buf), &got), 0);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, "bye", 3);
    assert_int_equal(xs_tls_read(pr.c, buf, sizeof(buf), &got), GW_ECLOSED);
    assert_int_equal(got, 0);
    assert_int_equal(xs_tls_read(pr.c, buf, sizeof(buf), &got), GW_ECLOSED);
    pair_close(&pr);
}

/* Several records in one feed, read through a small buffer: everything
 * comes out before GW_EAGAIN, with no further input (the pending data
 * inside GnuTLS is drained). */
static void test_drain_pending(void **state)
{
    struct pair pr;
    struct opts o = {0};
    uint8_t buf[2], got_all[16];
    size_t have = 0, got;
    pair_init(&pr, *state, &o);
    handshake_ok(&pr);
    assert_int_equal(gnutls_record_send(pr.s, "aaa", 3), 3);
    assert_int_equal(gnutls_record_send(pr.s, "bbbb", 4), 4);
    assert_int_equal(gnutls_record_send(pr.s, "cc", 2), 2);
    assert_true(pump_wires(&pr) > 0);
    assert_int_equal(wire_avail(&pr.s2c), 0);
    int rc;
    while ((rc = xs_tls_read(pr.c, buf, sizeof(buf), &got)) == 0) {
        assert_true(got >= 1 && got <= 2 && have + got <= sizeof(got_all));
        memcpy(got_all + have, buf, got);
        have += got;
    }
    assert_int_equal(rc, GW_EAGAIN);
    assert_int_equal(have, 9);
    assert_memory_equal(got_all, "aaabbbbcc", 9);
    pair_close(&pr);
}

/* TLS 1.3 session tickets arriving with application data in one feed: the
 * ticket makes gnutls_record_recv return AGAIN, yet the data after it must
 * be read in the same call (Prosody sends tickets right before the stream
 * header; a client that stops at AGAIN waits forever). */
static void test_tickets_before_data(void **state)
{
    struct pair pr;
    struct opts o = {0};
    gnutls_datum_t key = {NULL, 0};
    pair_init(&pr, *state, &o);
    assert_int_equal(gnutls_session_ticket_key_generate(&key), 0);
    assert_int_equal(gnutls_session_ticket_enable_server(pr.s, &key), 0);
    handshake_ok(&pr);
    if (gnutls_protocol_get_version(pr.s) != GNUTLS_TLS1_3) {
        gnutls_free(key.data);
        pair_close(&pr);
        skip();
    }
    assert_int_equal(gnutls_session_ticket_send(pr.s, 2, 0), 0);
    assert_int_equal(gnutls_record_send(pr.s, "hello", 5), 5);
    assert_true(pump_wires(&pr) > 0);
    uint8_t buf[16];
    size_t got = 0;
    assert_int_equal(xs_tls_read(pr.c, buf, sizeof(buf), &got), 0);
    assert_int_equal(got, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(xs_tls_read(pr.c, buf, sizeof(buf), &got), GW_EAGAIN);
    gnutls_free(key.data);
    pair_close(&pr);
}

static void test_alpn(void **state)
{
    struct pair pr;
    struct opts o = {.alpn = "xmpp-client"};
    pair_init(&pr, *state, &o);
    handshake_ok(&pr);
    gnutls_datum_t sel = {NULL, 0};
    assert_int_equal(gnutls_alpn_get_selected_protocol(pr.s, &sel), 0);
    assert_int_equal(sel.size, 11);
    assert_memory_equal(sel.data, "xmpp-client", 11);
    pair_close(&pr);
}

/* The bounded input buffer and a failing output callback. */
static void test_limits_and_output_failure(void **state)
{
    struct pair pr;
    struct opts o = {.inbuf_max = 1024};
    uint8_t junk[2048] = {0};
    pair_init(&pr, *state, &o);
    assert_int_equal(xs_tls_feed(pr.c, junk, sizeof(junk)), GW_ELIMIT);
    assert_int_equal(xs_tls_feed(pr.c, junk, 1024), 0);
    assert_int_equal(xs_tls_feed(pr.c, junk, 1), GW_ELIMIT);
    pair_close(&pr);

    struct opts o2 = {0};
    pair_init(&pr, *state, &o2);
    pr.fail_output = 1;
    assert_int_equal(xs_tls_handshake(pr.c), GW_EIO);
    assert_string_not_equal(xs_tls_error(pr.c), "");
    pair_close(&pr);

    pair_init(&pr, *state, &o2);
    handshake_ok(&pr);
    pr.fail_output = 1;
    assert_int_equal(xs_tls_write(pr.c, "x", 1), GW_EIO);
    pair_close(&pr);
}

/* Garbage from the "server" is a TLS error, not a hang. */
static void test_garbage_input(void **state)
{
    struct pair pr;
    struct opts o = {0};
    pair_init(&pr, *state, &o);
    assert_int_equal(xs_tls_handshake(pr.c), GW_EAGAIN);
    static const char http[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
    assert_int_equal(xs_tls_feed(pr.c, http, sizeof(http) - 1), 0);
    assert_int_equal(xs_tls_handshake(pr.c), GW_ETLS);
    assert_string_not_equal(xs_tls_error(pr.c), "");
    pair_close(&pr);
}

static void test_config_errors(void **state)
{
    struct pki *pki = *state;
    struct xs_tls *t = (struct xs_tls *)1;
    struct pair dummy;
    struct xs_tls_config cfg = {.hostname = HOST,
                                .ca_file = pki->ca_file,
                                .verify = true,
                                .output = client_output,
                                .output_ud = &dummy};
    struct xs_tls_config c = cfg;
    c.output = NULL;
    assert_int_equal(xs_tls_new(&c, &t), GW_EINVAL);
    assert_null(t);
    c = cfg;
    c.hostname = NULL;
    assert_int_equal(xs_tls_new(&c, &t), GW_EINVAL);
    c.verify = false; /* no name is fine without verification */
    assert_int_equal(xs_tls_new(&c, &t), 0);
    xs_tls_free(t);
    c = cfg;
    c.priority = "NORMAL:+NONSENSE-9";
    assert_int_equal(xs_tls_new(&c, &t), GW_ECONFIG);
    c = cfg;
    c.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(xs_tls_new(&c, &t), GW_ECONFIG);
    c.ca_file = "/dev/null";
    assert_int_equal(xs_tls_new(&c, &t), GW_ECONFIG);
    assert_int_equal(xs_tls_new(NULL, &t), GW_EINVAL);
    assert_int_equal(xs_tls_new(&cfg, NULL), GW_EINVAL);

    /* calls before the handshake */
    assert_int_equal(xs_tls_new(&cfg, &t), 0);
    uint8_t b[8];
    size_t got = 5;
    assert_int_equal(xs_tls_read(t, b, sizeof(b), &got), GW_EINVAL);
    assert_int_equal(got, 0);
    assert_int_equal(xs_tls_write(t, "x", 1), GW_EINVAL);
    assert_int_equal(xs_tls_bye(t), 0);
    assert_string_equal(xs_tls_error(t), "");
    xs_tls_free(t);
    xs_tls_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls13_handshake_and_data),
        cmocka_unit_test(test_tls12_handshake_and_data),
        cmocka_unit_test(test_channel_binding_tls13),
        cmocka_unit_test(test_channel_binding_tls12),
        cmocka_unit_test(test_tls12_no_ems_refuses_exporter),
        cmocka_unit_test(test_binding_into_scram_plus),
        cmocka_unit_test(test_hostname_mismatch),
        cmocka_unit_test(test_untrusted_ca),
        cmocka_unit_test(test_system_trust_refuses_test_ca),
        cmocka_unit_test(test_verify_off),
        cmocka_unit_test(test_one_byte_chunks),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_tickets_before_data),
        cmocka_unit_test(test_drain_pending),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_limits_and_output_failure),
        cmocka_unit_test(test_garbage_input),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
