/* test_xs_sasl.c - SCRAM and PLAIN client (xmpp/xs_sasl.c).
 *
 * The RFC 5802 and RFC 7677 examples are replayed byte for byte with an
 * injected client nonce.  For everything the RFCs do not cover (channel
 * binding, authzid, normalization) a small SCRAM server written here with
 * the GnuTLS primitives (not xs_sasl's code) checks the client's proof and
 * builds the expected messages independently. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "gw_err.h"
#include "xs_sasl.h"
#include "xs_sasl_int.h"

/* ---- helpers ------------------------------------------------------------ */

static struct xs_sasl *new_scram(enum xs_sasl_mech m, const char *user,
                                 const char *pw, const char *nonce)
{
    struct xs_sasl *s = NULL;
    assert_int_equal(xs_sasl_new(m, user, pw, NULL, XS_CB_NONE, NULL, &s), 0);
    assert_non_null(s);
    if (nonce)
        assert_int_equal(xs__sasl_set_nonce(s, nonce), 0);
    return s;
}

/* Runs one step and compares the output with a string. */
static void step_expect(struct xs_sasl *s, const char *in, const char *want)
{
    const uint8_t *out = NULL;
    size_t n = 0;
    assert_int_equal(
        xs_sasl_step(s, (const uint8_t *)in, in ? strlen(in) : 0, &out, &n), 0);
    assert_non_null(out);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
}

static int step_rc(struct xs_sasl *s, const char *in)
{
    const uint8_t *out = NULL;
    size_t n = 0;
    return xs_sasl_step(s, (const uint8_t *)in, in ? strlen(in) : 0, &out, &n);
}

static int finish_str(struct xs_sasl *s, const char *in)
{
    return xs_sasl_finish(s, (const uint8_t *)in, strlen(in));
}

/* Base64 by GnuTLS, independent of xs_sasl_b64_encode. */
static void ref_b64(const void *p, size_t n, char *out, size_t cap)
{
    gnutls_datum_t in = {(unsigned char *)(uintptr_t)p, (unsigned)n};
    gnutls_datum_t r = {NULL, 0};
    assert_int_equal(gnutls_base64_encode2(&in, &r), 0);
    assert_true(r.size < cap);
    memcpy(out, r.data, r.size);
    out[r.size] = 0;
    gnutls_free(r.data);
}

static size_t ref_unb64(const char *b64, uint8_t *out, size_t cap)
{
    gnutls_datum_t in = {(unsigned char *)(uintptr_t)b64,
                         (unsigned)strlen(b64)};
    gnutls_datum_t r = {NULL, 0};
    assert_int_equal(gnutls_base64_decode2(&in, &r), 0);
    assert_true(r.size <= cap);
    memcpy(out, r.data, r.size);
    gnutls_free(r.data);
    return r.size;
}

/* ---- a SCRAM server made of GnuTLS primitives --------------------------- */

struct ref_server {
    gnutls_mac_algorithm_t mac;
    gnutls_digest_algorithm_t dig;
    size_t h;
    const char *password; /* already prepared (what the server stored) */
    const char *salt_b64;
    unsigned iter;
    char first_bare[512];
    char server_first[512];
    char expect_cbind[256]; /* the c= value the client must send */
};

static void ref_init(struct ref_server *r, bool sha1, const char *pw)
{
    memset(r, 0, sizeof(*r));
    r->mac = sha1 ? GNUTLS_MAC_SHA1 : GNUTLS_MAC_SHA256;
    r->dig = sha1 ? GNUTLS_DIG_SHA1 : GNUTLS_DIG_SHA256;
    r->h = sha1 ? 20 : 32;
    r->password = pw;
    r->salt_b64 = "c2FsdHNhbHRzYWx0"; /* "saltsaltsalt" */
    r->iter = 4096;
}

/* Takes the client-first (gs2 header expected_gs2 + bare), answers with
 * server-first. */
static const char *ref_first(struct ref_server *r, const uint8_t *cf, size_t n,
                             const char *expected_gs2)
{
    size_t g = strlen(expected_gs2);
    assert_true(n > g);
    assert_memory_equal(cf, expected_gs2, g);
    assert_true(n - g < sizeof(r->first_bare));
    memcpy(r->first_bare, cf + g, n - g);
    r->first_bare[n - g] = 0;
    const char *rn = strstr(r->first_bare, ",r=");
    assert_non_null(rn);
    snprintf(r->server_first, sizeof(r->server_first),
             "r=%sSERVERNONCE,s=%s,i=%u", rn + 3, r->salt_b64, r->iter);
    return r->server_first;
}

/* Checks the client-final (its c= and proof), returns "v=..." in vbuf. */
static void ref_final(struct ref_server *r, const uint8_t *cfin, size_t n,
                      char *vbuf, size_t vcap)
{
    char msg[1024];
    assert_true(n < sizeof(msg));
    memcpy(msg, cfin, n);
    msg[n] = 0;
    char *p = strstr(msg, ",p=");
    assert_non_null(p);
    *p = 0;
    const char *proof_b64 = p + 3;
    /* c= must be what we computed independently */
    assert_true(strncmp(msg, "c=", 2) == 0);
    char *comma = strchr(msg, ',');
    assert_non_null(comma);
    assert_int_equal((size_t)(comma - msg - 2), strlen(r->expect_cbind));
    assert_memory_equal(msg + 2, r->expect_cbind, strlen(r->expect_cbind));
    /* the nonce is the combined one */
    const char *rn = strstr(r->server_first, "r=");
    const char *rn_end = strchr(rn, ',');
    assert_memory_equal(comma + 1, rn, (size_t)(rn_end - rn));

    char am[2048];
    snprintf(am, sizeof(am), "%s,%s,%s", r->first_bare, r->server_first, msg);
    uint8_t salt[64], sp[32], ck[32], stored[32], csig[32], proof[32], sk[32],
        ssig[32];
    size_t salt_len = ref_unb64(r->salt_b64, salt, sizeof(salt));
    gnutls_datum_t key = {(unsigned char *)(uintptr_t)r->password,
                          (unsigned)strlen(r->password)};
    gnutls_datum_t sd = {salt, (unsigned)salt_len};
    assert_int_equal(gnutls_pbkdf2(r->mac, &key, &sd, r->iter, sp, r->h), 0);
    assert_int_equal(gnutls_hmac_fast(r->mac, sp, r->h, "Client Key", 10, ck),
                     0);
    assert_int_equal(gnutls_hash_fast(r->dig, ck, r->h, stored), 0);
    assert_int_equal(
        gnutls_hmac_fast(r->mac, stored, r->h, am, strlen(am), csig), 0);
    assert_int_equal(ref_unb64(proof_b64, proof, sizeof(proof)), r->h);
    /* server side check: H(proof XOR ClientSignature) == StoredKey */
    uint8_t ck2[32], stored2[32];
    for (size_t i = 0; i < r->h; i++)
        ck2[i] = proof[i] ^ csig[i];
    assert_int_equal(gnutls_hash_fast(r->dig, ck2, r->h, stored2), 0);
    assert_memory_equal(stored2, stored, r->h);
    assert_int_equal(gnutls_hmac_fast(r->mac, sp, r->h, "Server Key", 10, sk),
                     0);
    assert_int_equal(gnutls_hmac_fast(r->mac, sk, r->h, am, strlen(am), ssig),
                     0);
    char b64[64];
    ref_b64(ssig, r->h, b64, sizeof(b64));
    snprintf(vbuf, vcap, "v=%s", b64);
}

/* Runs a whole exchange of s against the reference server. */
static void run_against_ref(struct xs_sasl *s, struct ref_server *r,
                            const char *gs2)
{
    const uint8_t *out = NULL;
    size_t n = 0;
    char v[128];
    assert_int_equal(xs_sasl_step(s, NULL, 0, &out, &n), 0);
    const char *sf = ref_first(r, out, n, gs2);
    assert_int_equal(xs_sasl_step(s, (const uint8_t *)sf, strlen(sf), &out, &n),
                     0);
    ref_final(r, out, n, v, sizeof(v));
    assert_int_equal(finish_str(s, v), 0);
    assert_string_equal(xs_sasl_error(s), "");
}

/* ---- RFC examples ------------------------------------------------------- */

static void test_rfc5802_sha1(void **state)
{
    struct xs_sasl *s = new_scram(XS_SASL_SCRAM_SHA_1, "user", "pencil",
                                  "fyko+d2lbbFgONRv9qkxdawL");
    step_expect(s, NULL, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    step_expect(s,
                "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                "s=QSXCR+Q6sek8bf92,i=4096",
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    assert_int_equal(finish_str(s, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="), 0);
    /* nothing more after success */
    assert_int_equal(finish_str(s, ""), GW_EPROTO);
    xs_sasl_free(s);
}

static const char rfc7677_first[] =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
static const char rfc7677_final[] =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
static const char rfc7677_v[] =
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

static struct xs_sasl *rfc7677_to_final(void)
{
    struct xs_sasl *s = new_scram(XS_SASL_SCRAM_SHA_256, "user", "pencil",
                                  "rOprNGfwEbeRWgbNEkqO");
    step_expect(s, NULL, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    step_expect(s, rfc7677_first, rfc7677_final);
    return s;
}

static void test_rfc7677_sha256(void **state)
{
    struct xs_sasl *s = rfc7677_to_final();
    assert_int_equal(finish_str(s, rfc7677_v), 0);
    xs_sasl_free(s);
}

/* v= may come in a challenge; the response is empty and success empty. */
static void test_verifier_in_challenge(void **state)
{
    struct xs_sasl *s = rfc7677_to_final();
    step_expect(s, rfc7677_v, "");
    assert_int_equal(xs_sasl_finish(s, NULL, 0), 0);
    xs_sasl_free(s);

    /* but not twice */
    s = rfc7677_to_final();
    step_expect(s, rfc7677_v, "");
    assert_int_equal(finish_str(s, rfc7677_v), GW_EPROTO);
    xs_sasl_free(s);
}

/* Server extensions after v= are ignored. */
static void test_verifier_with_extension(void **state)
{
    struct xs_sasl *s = rfc7677_to_final();
    char v[128];
    snprintf(v, sizeof(v), "%s,x=ext", rfc7677_v);
    assert_int_equal(finish_str(s, v), 0);
    xs_sasl_free(s);
}

/* ---- server-final failures --------------------------------------------- */

static void test_wrong_server_signature(void **state)
{
    /* one bit flipped in the last full byte */
    struct xs_sasl *s = rfc7677_to_final();
    assert_int_equal(
        finish_str(s, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95H4="),
        GW_EAUTH);
    assert_string_equal(xs_sasl_error(s), "wrong server signature");
    /* a failed object stays failed */
    assert_int_equal(finish_str(s, rfc7677_v), GW_EPROTO);
    xs_sasl_free(s);

    /* the right value with non-zero bits under the padding */
    s = rfc7677_to_final();
    assert_int_equal(
        finish_str(s, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5="),
        GW_EPROTO);
    xs_sasl_free(s);

    /* the SHA-1 signature of RFC 5802 (wrong length) */
    s = rfc7677_to_final();
    assert_int_equal(finish_str(s, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="), GW_EAUTH);
    xs_sasl_free(s);

    /* the same wrong value in a challenge */
    s = rfc7677_to_final();
    assert_int_equal(
        step_rc(s, "v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), GW_EAUTH);
    xs_sasl_free(s);
}

static void test_server_final_errors(void **state)
{
    struct xs_sasl *s = rfc7677_to_final();
    assert_int_equal(finish_str(s, "e=invalid-proof"), GW_EAUTH);
    assert_string_equal(xs_sasl_error(s), "server error: invalid-proof");
    xs_sasl_free(s);

    /* success without additional data: the server proved nothing */
    s = rfc7677_to_final();
    assert_int_equal(xs_sasl_finish(s, NULL, 0), GW_EAUTH);
    xs_sasl_free(s);

    static const char *const bad[] = {
        "v=***", "x=abc", "v", "garbage", "v=6rriTRBi23WpRR",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = rfc7677_to_final();
        int rc = finish_str(s, bad[i]);
        assert_true(rc == GW_EPROTO || rc == GW_EAUTH);
        assert_int_not_equal(rc, 0);
        xs_sasl_free(s);
    }
    /* a server error in a challenge too */
    s = rfc7677_to_final();
    assert_int_equal(step_rc(s, "e=other-error"), GW_EAUTH);
    xs_sasl_free(s);
}

static void test_success_too_early(void **state)
{
    struct xs_sasl *s = new_scram(XS_SASL_SCRAM_SHA_256, "user", "pencil",
                                  "rOprNGfwEbeRWgbNEkqO");
    assert_int_equal(finish_str(s, rfc7677_v), GW_EPROTO); /* nothing sent */
    xs_sasl_free(s);
    s = new_scram(XS_SASL_SCRAM_SHA_256, "user", "pencil",
                  "rOprNGfwEbeRWgbNEkqO");
    step_expect(s, NULL, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    assert_int_equal(xs_sasl_finish(s, NULL, 0), GW_EPROTO);
    xs_sasl_free(s);
}

/* ---- malformed server-first -------------------------------------------- */

struct bad_first {
    const char *msg;
    int rc;
};

static void test_malformed_server_first(void **state)
{
    static const struct bad_first cases[] = {
        /* missing attributes */
        {"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", GW_EPROTO},
        {"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096", GW_EPROTO},
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==", GW_EPROTO},
        {"r=rOprNGfwEbeRWgbNEkqOxyz", GW_EPROTO},
        {"", GW_EPROTO},
        {"garbage", GW_EPROTO},
        /* wrong order */
        {"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOxyz,i=4096",
         GW_EPROTO},
        /* nonce not extending ours */
        {"r=XOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
         GW_EAUTH},
        {"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", GW_EAUTH},
        {"r=rOprNGfw,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", GW_EAUTH},
        {"r=,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", GW_EPROTO},
        /* iteration counts */
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", GW_EPROTO},
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=", GW_EPROTO},
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
         GW_EPROTO},
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4k",
         GW_EPROTO},
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
         "i=99999999999",
         GW_EPROTO},
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", GW_EAUTH},
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",
         GW_EAUTH},
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001",
         GW_EAUTH},
        /* salt */
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096", GW_EPROTO},
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22Z*J0S,i=4096", GW_EPROTO},
        {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096",
         GW_EPROTO},
        /* mandatory extension, server error */
        {"m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
         GW_EAUTH},
        {"e=unknown-user", GW_EAUTH},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct xs_sasl *s = new_scram(XS_SASL_SCRAM_SHA_256, "user", "pencil",
                                      "rOprNGfwEbeRWgbNEkqO");
        step_expect(s, NULL, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        int rc = step_rc(s, cases[i].msg);
        if (rc != cases[i].rc)
            fail_msg("case %zu \"%s\": %d, want %d", i, cases[i].msg, rc,
                     cases[i].rc);
        assert_string_not_equal(xs_sasl_error(s), "");
        /* after a failure every call is refused */
        assert_int_equal(step_rc(s, rfc7677_first), GW_EPROTO);
        xs_sasl_free(s);
    }
}

/* A NUL inside the message and an oversized message. */
static void test_binary_and_long_server_first(void **state)
{
    static const char msg[] = "r=rOprNGfwEbeRWgbNEkqOxyz\0,s=W22ZaJ0SNY7soEsUE"
                              "jb6gQ==,i=4096";
    struct xs_sasl *s = new_scram(XS_SASL_SCRAM_SHA_256, "user", "pencil",
                                  "rOprNGfwEbeRWgbNEkqO");
    const uint8_t *out;
    size_t n;
    step_expect(s, NULL, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    assert_int_equal(
        xs_sasl_step(s, (const uint8_t *)msg, sizeof(msg) - 1, &out, &n),
        GW_EPROTO);
    xs_sasl_free(s);

    static char big[XS_SASL_MSG_MAX + 64];
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "r=rOprNGfwEbeRWgbNEkqO", 22);
    big[sizeof(big) - 1] = 0;
    s = new_scram(XS_SASL_SCRAM_SHA_256, "user", "pencil",
                  "rOprNGfwEbeRWgbNEkqO");
    step_expect(s, NULL, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    assert_int_equal(step_rc(s, big), GW_EPROTO);
    xs_sasl_free(s);
}

/* ---- names, authzid, channel binding ----------------------------------- */

static void test_saslname_escaping(void **state)
{
    struct xs_sasl *s = NULL;
    assert_int_equal(xs_sasl_new(XS_SASL_SCRAM_SHA_1, "a,b=c", "pw", "adm=in,x",
                                 XS_CB_NONE, NULL, &s),
                     0);
    assert_int_equal(xs__sasl_set_nonce(s, "abc"), 0);
    step_expect(s, NULL, "n,a=adm=3Din=2Cx,n=a=2Cb=3Dc,r=abc");
    xs_sasl_free(s);
}

/* authzid goes into the gs2 header and so into c= too. */
static void test_authzid_against_ref(void **state)
{
    struct ref_server r;
    struct xs_sasl *s = NULL;
    ref_init(&r, false, "secret");
    ref_b64("n,a=boss@example.org,", 21, r.expect_cbind,
            sizeof(r.expect_cbind));
    assert_int_equal(xs_sasl_new(XS_SASL_SCRAM_SHA_256, "gw", "secret",
                                 "boss@example.org", XS_CB_NONE, NULL, &s),
                     0);
    run_against_ref(s, &r, "n,a=boss@example.org,");
    xs_sasl_free(s);
}

static void make_cb(struct xs_cb_data *cb, size_t n, uint8_t seed)
{
    memset(cb, 0, sizeof(*cb));
    cb->len = n;
    for (size_t i = 0; i < n; i++)
        cb->data[i] = (uint8_t)(seed + i * 7);
}

static void test_plus_exporter(void **state)
{
    struct ref_server r;
    struct xs_cb_data cb;
    struct xs_sasl *s = NULL;
    uint8_t cbind[64];
    make_cb(&cb, 32, 0x41);
    memcpy(cbind, "p=tls-exporter,,", 16);
    memcpy(cbind + 16, cb.data, 32);
    ref_init(&r, false, "pencil");
    ref_b64(cbind, 48, r.expect_cbind, sizeof(r.expect_cbind));
    assert_int_equal(xs_sasl_new(XS_SASL_SCRAM_SHA_256_PLUS, "user", "pencil",
                                 NULL, XS_CB_TLS_EXPORTER, &cb, &s),
                     0);
    run_against_ref(s, &r, "p=tls-exporter,,");
    xs_sasl_free(s);
}

static void test_plus_unique_authzid(void **state)
{
    struct ref_server r;
    struct xs_cb_data cb;
    struct xs_sasl *s = NULL;
    uint8_t cbind[64];
    static const char gs2[] = "p=tls-unique,a=x=2Cy,";
    make_cb(&cb, 12, 0xf0);
    memcpy(cbind, gs2, sizeof(gs2) - 1);
    memcpy(cbind + sizeof(gs2) - 1, cb.data, 12);
    ref_init(&r, true, "pencil");
    ref_b64(cbind, sizeof(gs2) - 1 + 12, r.expect_cbind,
            sizeof(r.expect_cbind));
    assert_int_equal(xs_sasl_new(XS_SASL_SCRAM_SHA_1_PLUS, "user", "pencil",
                                 "x,y", XS_CB_TLS_UNIQUE, &cb, &s),
                     0);
    run_against_ref(s, &r, gs2);
    xs_sasl_free(s);
}

/* Different binding data must change the proof: the server that sees other
 * data (a man in the middle's TLS) rejects it. */
static void test_plus_wrong_binding_detected(void **state)
{
    struct ref_server r;
    struct xs_cb_data cb, other;
    struct xs_sasl *s = NULL;
    uint8_t cbind[64];
    const uint8_t *out;
    size_t n;
    make_cb(&cb, 32, 1);
    make_cb(&other, 32, 2);
    memcpy(cbind, "p=tls-exporter,,", 16);
    memcpy(cbind + 16, other.data, 32);
    ref_init(&r, false, "pencil");
    ref_b64(cbind, 48, r.expect_cbind, sizeof(r.expect_cbind));
    assert_int_equal(xs_sasl_new(XS_SASL_SCRAM_SHA_256_PLUS, "user", "pencil",
                                 NULL, XS_CB_TLS_EXPORTER, &cb, &s),
                     0);
    assert_int_equal(xs_sasl_step(s, NULL, 0, &out, &n), 0);
    const char *sf = ref_first(&r, out, n, "p=tls-exporter,,");
    assert_int_equal(xs_sasl_step(s, (const uint8_t *)sf, strlen(sf), &out, &n),
                     0);
    char c_expected[8 + sizeof(r.expect_cbind)];
    snprintf(c_expected, sizeof(c_expected), "c=%s,", r.expect_cbind);
    assert_true(n > strlen(c_expected));
    assert_memory_not_equal(out, c_expected, strlen(c_expected));
    xs_sasl_free(s);
}

/* gs2 flag "y": c= is base64("y,,") = "eSws". */
static void test_flag_y(void **state)
{
    struct ref_server r;
    struct xs_sasl *s = NULL;
    ref_init(&r, true, "pencil");
    memcpy(r.expect_cbind, "eSws", 5);
    assert_int_equal(xs_sasl_new(XS_SASL_SCRAM_SHA_1, "user", "pencil", NULL,
                                 XS_CB_TLS_EXPORTER, NULL, &s),
                     0);
    run_against_ref(s, &r, "y,,");
    xs_sasl_free(s);
    /* and "n,," is "biws" */
    ref_init(&r, true, "pencil");
    memcpy(r.expect_cbind, "biws", 5);
    s = new_scram(XS_SASL_SCRAM_SHA_1, "user", "pencil", NULL);
    run_against_ref(s, &r, "n,,");
    xs_sasl_free(s);
}

/* Non-ASCII: NFD and NFC spellings and a no-break space give the same
 * SaltedPassword as the prepared form the server stored. */
static void test_password_normalization(void **state)
{
    struct ref_server r;
    struct xs_sasl *s = NULL;
    /* "pässwörd" decomposed (a + U+0308) -> composed U+00E4 */
    ref_init(&r, false, "p\xc3\xa4ssw\xc3\xb6rd");
    memcpy(r.expect_cbind, "biws", 5);
    assert_int_equal(xs_sasl_new(XS_SASL_SCRAM_SHA_256, "user",
                                 "pa\xcc\x88ssw\xc3\xb6rd", NULL, XS_CB_NONE,
                                 NULL, &s),
                     0);
    run_against_ref(s, &r, "n,,");
    xs_sasl_free(s);
    /* U+00A0 no-break space -> U+0020 */
    ref_init(&r, false, "two words \xc3\xa9");
    memcpy(r.expect_cbind, "biws", 5);
    assert_int_equal(xs_sasl_new(XS_SASL_SCRAM_SHA_256, "user",
                                 "two\xc2\xa0words \xc3\xa9", NULL, XS_CB_NONE,
                                 NULL, &s),
                     0);
    run_against_ref(s, &r, "n,,");
    xs_sasl_free(s);
    /* ASCII passes through unchanged, spaces included */
    ref_init(&r, false, " a  b ");
    memcpy(r.expect_cbind, "biws", 5);
    s = new_scram(XS_SASL_SCRAM_SHA_256, "user", " a  b ", NULL);
    run_against_ref(s, &r, "n,,");
    xs_sasl_free(s);
}

static void test_new_rejects(void **state)
{
    struct xs_sasl *s = (struct xs_sasl *)1;
    struct xs_cb_data cb;
    make_cb(&cb, 32, 0);
    enum xs_sasl_mech m = XS_SASL_SCRAM_SHA_256;
    assert_int_equal(xs_sasl_new(m, "", "pw", NULL, XS_CB_NONE, NULL, &s),
                     GW_EINVAL);
    assert_null(s);
    assert_int_equal(xs_sasl_new(m, NULL, "pw", NULL, XS_CB_NONE, NULL, &s),
                     GW_EINVAL);
    assert_int_equal(xs_sasl_new(m, "u", "", NULL, XS_CB_NONE, NULL, &s),
                     GW_EINVAL);
    assert_int_equal(xs_sasl_new(m, "u", NULL, NULL, XS_CB_NONE, NULL, &s),
                     GW_EINVAL);
    assert_int_equal(xs_sasl_new(m, "u", "p\tw", NULL, XS_CB_NONE, NULL, &s),
                     GW_EINVAL);
    assert_int_equal(xs_sasl_new(m, "u\n", "pw", NULL, XS_CB_NONE, NULL, &s),
                     GW_EINVAL);
    assert_int_equal(xs_sasl_new(m, "u", "p\x7fw", NULL, XS_CB_NONE, NULL, &s),
                     GW_EINVAL);
    /* invalid UTF-8: lone continuation, overlong, surrogate, truncated */
    static const char *const bad_utf8[] = {"p\x80w", "\xc0\xaf", "\xed\xa0\x80",
                                           "ab\xe2\x82"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(
            xs_sasl_new(m, "u", bad_utf8[i], NULL, XS_CB_NONE, NULL, &s),
            GW_EINVAL);
        assert_int_equal(
            xs_sasl_new(m, bad_utf8[i], "pw", NULL, XS_CB_NONE, NULL, &s),
            GW_EINVAL);
    }
    char longname[XS_SASL_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(xs_sasl_new(m, longname, "pw", NULL, XS_CB_NONE, NULL, &s),
                     GW_EINVAL);
    /* -PLUS needs a binding type and data */
    m = XS_SASL_SCRAM_SHA_256_PLUS;
    assert_int_equal(xs_sasl_new(m, "u", "pw", NULL, XS_CB_NONE, &cb, &s),
                     GW_EINVAL);
    assert_int_equal(
        xs_sasl_new(m, "u", "pw", NULL, XS_CB_TLS_EXPORTER, NULL, &s),
        GW_EINVAL);
    cb.len = 0;
    assert_int_equal(
        xs_sasl_new(m, "u", "pw", NULL, XS_CB_TLS_EXPORTER, &cb, &s),
        GW_EINVAL);
    assert_int_equal(
        xs_sasl_new(XS_SASL_MECH_COUNT, "u", "pw", NULL, XS_CB_NONE, NULL, &s),
        GW_EINVAL);
    assert_int_equal(xs_sasl_new((enum xs_sasl_mech) - 1, "u", "pw", NULL,
                                 XS_CB_NONE, NULL, &s),
                     GW_EINVAL);
    assert_null(s);
    /* the nonce hook: only before the first step, only SCRAM, sane text */
    s = new_scram(XS_SASL_SCRAM_SHA_1, "u", "pw", NULL);
    assert_int_equal(xs__sasl_set_nonce(s, "a,b"), GW_EINVAL);
    assert_int_equal(xs__sasl_set_nonce(s, ""), GW_EINVAL);
    assert_int_equal(xs__sasl_set_nonce(s, "a b"), GW_EINVAL);
    assert_int_equal(step_rc(s, NULL), 0);
    assert_int_equal(xs__sasl_set_nonce(s, "abc"), GW_EINVAL);
    xs_sasl_free(s);
    xs_sasl_free(NULL);
}

/* Random nonces: 24 printable characters without ',', not repeated. */
static void test_random_nonce(void **state)
{
    char prev[64] = "";
    for (int k = 0; k < 4; k++) {
        struct xs_sasl *s = new_scram(XS_SASL_SCRAM_SHA_256, "u", "p", NULL);
        const uint8_t *out;
        size_t n;
        assert_int_equal(xs_sasl_step(s, NULL, 0, &out, &n), 0);
        assert_true(n == strlen("n,,n=u,r=") + 24);
        assert_memory_equal(out, "n,,n=u,r=", 9);
        for (size_t i = 9; i < n; i++)
            assert_true(out[i] > 0x20 && out[i] < 0x7f && out[i] != ',');
        assert_memory_not_equal(out + 9, prev, 24);
        memcpy(prev, out + 9, 24);
        xs_sasl_free(s);
    }
}

static void test_step_misuse(void **state)
{
    struct xs_sasl *s = new_scram(XS_SASL_SCRAM_SHA_256, "u", "p", "abc");
    const uint8_t *out;
    size_t n;
    /* the first step takes no input */
    assert_int_equal(xs_sasl_step(s, (const uint8_t *)"x", 1, &out, &n),
                     GW_EINVAL);
    assert_int_equal(xs_sasl_step(s, NULL, 0, NULL, &n), GW_EINVAL);
    assert_int_equal(xs_sasl_step(NULL, NULL, 0, &out, &n), GW_EINVAL);
    assert_int_equal(xs_sasl_finish(NULL, NULL, 0), GW_EINVAL);
    assert_string_equal(xs_sasl_error(NULL), "");
    xs_sasl_free(s);
}

/* ---- PLAIN -------------------------------------------------------------- */

static void test_plain(void **state)
{
    struct xs_sasl *s = NULL;
    const uint8_t *out;
    size_t n;
    assert_int_equal(xs_sasl_new(XS_SASL_PLAIN, "user", "pencil", NULL,
                                 XS_CB_TLS_EXPORTER, NULL, &s),
                     0);
    assert_int_equal(xs_sasl_step(s, NULL, 0, &out, &n), 0);
    assert_int_equal(n, 12);
    assert_memory_equal(out, "\0user\0pencil", 12);
    /* RFC 6120 carries it as base64 */
    char b64[64], ref[64];
    assert_int_equal(xs_sasl_b64_encode(out, n, b64, sizeof(b64)), 0);
    ref_b64("\0user\0pencil", 12, ref, sizeof(ref));
    assert_string_equal(b64, ref);
    assert_string_equal(b64, "AHVzZXIAcGVuY2ls");
    assert_int_equal(xs_sasl_finish(s, NULL, 0), 0);
    xs_sasl_free(s);

    assert_int_equal(xs_sasl_new(XS_SASL_PLAIN, "user", "pencil",
                                 "admin@example.org", XS_CB_NONE, NULL, &s),
                     0);
    assert_int_equal(xs_sasl_step(s, NULL, 0, &out, &n), 0);
    assert_int_equal(n, 29);
    assert_memory_equal(out, "admin@example.org\0user\0pencil", 29);
    /* PLAIN has no challenges */
    assert_int_equal(step_rc(s, "x"), GW_EPROTO);
    assert_int_equal(xs_sasl_finish(s, NULL, 0), GW_EPROTO);
    xs_sasl_free(s);

    /* no nonce hook for PLAIN */
    assert_int_equal(
        xs_sasl_new(XS_SASL_PLAIN, "u", "p", NULL, XS_CB_NONE, NULL, &s), 0);
    assert_int_equal(xs__sasl_set_nonce(s, "abc"), GW_EINVAL);
    xs_sasl_free(s);
}

/* ---- selection ---------------------------------------------------------- */

#define S256P XS_SASL_SCRAM_SHA_256_PLUS
#define S1P XS_SASL_SCRAM_SHA_1_PLUS
#define S256 XS_SASL_SCRAM_SHA_256
#define S1 XS_SASL_SCRAM_SHA_1
#define PL XS_SASL_PLAIN
#define NONE_FOUND (-1)

struct sel_case {
    const char *offered; /* space-separated */
    unsigned allowed;
    bool tls;
    enum xs_cb_type cb;
    bool allow_plain;
    int want;                /* mechanism, or NONE_FOUND */
    enum xs_cb_type want_cb; /* the cb argument for xs_sasl_new */
};

static void test_select_table(void **state)
{
    const unsigned all = 0, no_plus = XS_SASL_ALL &
                                      ~(XS_SASL_BIT(S256P) | XS_SASL_BIT(S1P));
    const enum xs_cb_type EX = XS_CB_TLS_EXPORTER, UN = XS_CB_TLS_UNIQUE,
                          NO = XS_CB_NONE;
    const struct sel_case cases[] = {
        /* strongest first */
        {"PLAIN SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-256-PLUS",
         all, true, EX, true, S256P, EX},
        {"PLAIN SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-1-PLUS", all, true, UN,
         true, S1P, UN},
        {"SCRAM-SHA-1-PLUS SCRAM-SHA-256", all, true, UN, false, S1P, UN},
        /* no binding data: plain SCRAM, flag n */
        {"SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-256-PLUS", all, true, NO, false,
         S256, NO},
        /* Prosody 0.12 on TLS 1.3: no -PLUS offered -> y */
        {"SCRAM-SHA-1 PLAIN", all, true, EX, true, S1, EX},
        {"SCRAM-SHA-256 SCRAM-SHA-1", all, true, EX, false, S256, EX},
        /* -PLUS offered but not allowed by us -> n, never y */
        {"SCRAM-SHA-1 SCRAM-SHA-1-PLUS", no_plus, true, UN, false, S1, NO},
        {"SCRAM-SHA-256 SCRAM-SHA-256-PLUS",
         XS_SASL_BIT(S256) | XS_SASL_BIT(S1P), true, EX, false, S256, NO},
        /* -PLUS we do not know still means the server binds -> n */
        {"SCRAM-SHA-256 SCRAM-SHA-512-PLUS", all, true, EX, false, S256, NO},
        /* no -PLUS allowed at all: we do not support binding -> n */
        {"SCRAM-SHA-256", no_plus, true, EX, false, S256, NO},
        /* no TLS: no -PLUS, no y, no PLAIN */
        {"SCRAM-SHA-1-PLUS SCRAM-SHA-1 PLAIN", all, false, EX, true, S1, NO},
        {"PLAIN", all, false, NO, true, NONE_FOUND, NO},
        /* PLAIN: over TLS, allowed, and its bit */
        {"PLAIN", all, true, EX, true, PL, NO},
        {"PLAIN", all, true, EX, false, NONE_FOUND, NO},
        {"PLAIN", XS_SASL_BIT(S256), true, EX, true, NONE_FOUND, NO},
        {"PLAIN SCRAM-SHA-1", XS_SASL_BIT(PL), true, NO, true, PL, NO},
        /* config allowed list */
        {"SCRAM-SHA-256 SCRAM-SHA-1", XS_SASL_BIT(S1), true, NO, false, S1, NO},
        {"SCRAM-SHA-256", XS_SASL_BIT(S1), true, NO, false, NONE_FOUND, NO},
        /* names are exact */
        {"scram-sha-1 DIGEST-MD5 X-OAUTH2", all, true, NO, false, NONE_FOUND,
         NO},
        {"", all, true, EX, true, NONE_FOUND, NO},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct sel_case *c = &cases[i];
        char buf[256];
        const char *names[16];
        size_t n = 0;
        snprintf(buf, sizeof(buf), "%s", c->offered);
        for (char *p = buf; *p && n < 16;) {
            names[n++] = p;
            char *sp = strchr(p, ' ');
            if (!sp)
                break;
            *sp = 0;
            p = sp + 1;
        }
        struct xs_sasl_offer o = {names,  n,     c->allowed,
                                  c->tls, c->cb, c->allow_plain};
        enum xs_sasl_mech m = XS_SASL_MECH_COUNT;
        enum xs_cb_type cb = (enum xs_cb_type)99;
        int rc = xs_sasl_select(&o, &m, &cb);
        if (c->want == NONE_FOUND) {
            if (rc != GW_ENOTFOUND)
                fail_msg("case %zu: rc %d, mech %d", i, rc, (int)m);
            continue;
        }
        if (rc != 0 || (int)m != c->want || cb != c->want_cb)
            fail_msg("case %zu: rc %d mech %d cb %d, want %d %d", i, rc, (int)m,
                     (int)cb, c->want, (int)c->want_cb);
    }
    enum xs_sasl_mech m;
    enum xs_cb_type cb;
    /* names are compared exactly: the caller trims the element text */
    const char *spaced[] = {" SCRAM-SHA-1", "SCRAM-SHA-1 ", "PLAIN\n"};
    struct xs_sasl_offer o = {spaced, 3, 0, true, XS_CB_NONE, true};
    assert_int_equal(xs_sasl_select(&o, &m, &cb), GW_ENOTFOUND);
    o.n_offered = 0;
    assert_int_equal(xs_sasl_select(&o, &m, &cb), GW_ENOTFOUND);
    assert_int_equal(xs_sasl_select(NULL, &m, &cb), GW_EINVAL);
}

static void test_mech_names(void **state)
{
    for (unsigned i = 0; i < XS_SASL_MECH_COUNT; i++) {
        enum xs_sasl_mech m;
        const char *n = xs_sasl_mech_name((enum xs_sasl_mech)i);
        assert_non_null(n);
        assert_int_equal(xs_sasl_mech_parse(n, &m), 0);
        assert_int_equal(m, i);
    }
    enum xs_sasl_mech m;
    assert_string_equal(xs_sasl_mech_name(XS_SASL_SCRAM_SHA_1_PLUS),
                        "SCRAM-SHA-1-PLUS");
    assert_null(xs_sasl_mech_name(XS_SASL_MECH_COUNT));
    assert_int_equal(xs_sasl_mech_parse("scram-sha-1", &m), GW_ENOTFOUND);
    assert_int_equal(xs_sasl_mech_parse("DIGEST-MD5", &m), GW_ENOTFOUND);
    assert_string_equal(xs_cb_type_name(XS_CB_TLS_UNIQUE), "tls-unique");
    assert_string_equal(xs_cb_type_name(XS_CB_TLS_EXPORTER), "tls-exporter");
    assert_null(xs_cb_type_name(XS_CB_NONE));
}

/* ---- base64 ------------------------------------------------------------- */

static void test_base64(void **state)
{
    uint8_t data[64], back[64];
    char enc[128], ref[128];
    size_t n;
    assert_int_equal(gnutls_rnd(GNUTLS_RND_NONCE, data, sizeof(data)), 0);
    for (size_t len = 0; len <= sizeof(data); len++) {
        assert_int_equal(xs_sasl_b64_encode(data, len, enc, sizeof(enc)), 0);
        if (len) {
            ref_b64(data, len, ref, sizeof(ref));
            assert_string_equal(enc, ref);
        } else {
            assert_string_equal(enc, "");
        }
        assert_int_equal(
            xs_sasl_b64_decode(enc, strlen(enc), back, sizeof(back), &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(back, data, len);
    }
    /* exact capacity: 4 chars + NUL */
    assert_int_equal(xs_sasl_b64_encode("abc", 3, enc, 5), 0);
    assert_string_equal(enc, "YWJj");
    assert_int_equal(xs_sasl_b64_encode("abc", 3, enc, 4), GW_ELIMIT);
    /* decoding: XMPP's "=" is empty; strict otherwise */
    assert_int_equal(xs_sasl_b64_decode("=", 1, back, sizeof(back), &n), 0);
    assert_int_equal(n, 0);
    static const char *const bad[] = {"abc",   "ab=c", "a===",  "ab!d",
                                      "YW Jj", "====", "YW\nJ", "=YWJ"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(
            xs_sasl_b64_decode(bad[i], strlen(bad[i]), back, sizeof(back), &n),
            GW_EPROTO);
    assert_int_equal(xs_sasl_b64_decode("YWJj", 4, back, 2, &n), GW_ELIMIT);
    assert_int_equal(xs_sasl_b64_decode("YQ==", 4, back, 2, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(back[0], 'a');
    assert_int_equal(xs_sasl_b64_decode("YWI=", 4, back, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(back, "ab", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5802_sha1),
        cmocka_unit_test(test_rfc7677_sha256),
        cmocka_unit_test(test_verifier_in_challenge),
        cmocka_unit_test(test_verifier_with_extension),
        cmocka_unit_test(test_wrong_server_signature),
        cmocka_unit_test(test_server_final_errors),
        cmocka_unit_test(test_success_too_early),
        cmocka_unit_test(test_malformed_server_first),
        cmocka_unit_test(test_binary_and_long_server_first),
        cmocka_unit_test(test_saslname_escaping),
        cmocka_unit_test(test_authzid_against_ref),
        cmocka_unit_test(test_plus_exporter),
        cmocka_unit_test(test_plus_unique_authzid),
        cmocka_unit_test(test_plus_wrong_binding_detected),
        cmocka_unit_test(test_flag_y),
        cmocka_unit_test(test_password_normalization),
        cmocka_unit_test(test_new_rejects),
        cmocka_unit_test(test_random_nonce),
        cmocka_unit_test(test_step_misuse),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_select_table),
        cmocka_unit_test(test_mech_names),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
