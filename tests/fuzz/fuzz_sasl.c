/* libFuzzer target for xmpp/xs_sasl: the client side of SCRAM-SHA-1/256
 * and their -PLUS variants reading what a server (or anyone on the path
 * before TLS is verified) sends: server-first, server-final in a
 * <challenge> or in <success>, base64 as carried in XMPP.
 *
 * Input: byte 0 selects the case:
 *   bits 0-1  mechanism: SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-1-PLUS,
 *             SCRAM-SHA-256-PLUS;
 *   bit 2     channel binding: tls-exporter instead of tls-unique for
 *             -PLUS; gs2 flag "y" for plain SCRAM;
 *   bit 3     the server-final comes in <success> (xs_sasl_finish) rather
 *             than in a <challenge> (xs_sasl_step, then an empty success);
 *   bit 4     the messages are base64 (decoded first, as xs_conn does).
 * The rest is the server-first message, then (after the first '\n') the
 * server-final message.  The user is "user", the password "pencil" and the
 * client nonce that of RFC 5802 (SHA-1) or RFC 7677 (SHA-256), so the RFC
 * exchanges succeed (seeds rfc5802_sha1, rfc7677_sha256).
 *
 * Oracle: no crash or sanitizer report; every call returns 0 or a clean
 * error (GW_EPROTO, GW_EAUTH, GW_ENOMEM, GW_ELIMIT for base64), with a
 * non-empty xs_sasl_error() after an error; output stays within
 * XS_SASL_MSG_MAX; a failed exchange stays failed; base64 that decodes
 * encodes back to the same text; success is only possible with the
 * server's correct signature, which the RFC vectors alone provide (only
 * for plain SCRAM with flag "n").
 *
 * Run: cmake -DFG_FUZZ=ON -DCMAKE_C_COMPILER=clang ...; then
 *   build/tests/fuzz_sasl -max_len=1024 tests/fuzz/corpus/fuzz_sasl */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_err.h"
#include "xs_sasl.h"
#include "xs_sasl_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_sasl: %s\n", what);
        abort();
    }
}

static void check_rc(const struct xs_sasl *s, int rc, const char *what)
{
    check(rc == 0 || rc == GW_EPROTO || rc == GW_EAUTH || rc == GW_ENOMEM,
          what);
    const char *e = xs_sasl_error(s);
    check(e != NULL, "xs_sasl_error is NULL");
    if (rc != 0)
        check(e[0] != '\0', "an error without a reason");
}

/* The raw message: as is, or base64-decoded (NULL when that fails). */
static const uint8_t *message(const uint8_t *in, size_t n, int b64,
                              uint8_t *buf, size_t cap, size_t *len)
{
    if (!b64) {
        *len = n;
        return in;
    }
    char *text = malloc(n + 1);
    if (!text)
        return NULL;
    memcpy(text, in, n);
    text[n] = '\0';
    int rc = xs_sasl_b64_decode(text, n, buf, cap, len);
    check(rc == 0 || rc == GW_EPROTO || rc == GW_ELIMIT, "b64 decode rc");
    if (rc == 0 && !(n == 1 && text[0] == '=')) {
        /* strict: decoding then encoding gives the input back */
        size_t ecap = 4 * (*len / 3 + 1) + 1;
        char *enc = malloc(ecap);
        check(enc != NULL, "no memory");
        check(xs_sasl_b64_encode(buf, *len, enc, ecap) == 0, "b64 encode");
        check(strlen(enc) == n && memcmp(enc, text, n) == 0,
              "b64 round trip differs");
        free(enc);
    }
    free(text);
    return rc == 0 ? buf : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum xs_sasl_mech mechs[4] = {
        XS_SASL_SCRAM_SHA_1, XS_SASL_SCRAM_SHA_256, XS_SASL_SCRAM_SHA_1_PLUS,
        XS_SASL_SCRAM_SHA_256_PLUS};
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    enum xs_sasl_mech mech = mechs[mode & 3];
    int plus = (mode & 3) >= 2;
    int sha1 = (mode & 1) == 0;
    int alt_cb = (mode >> 2) & 1;
    int in_success = (mode >> 3) & 1;
    int b64 = (mode >> 4) & 1;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    const uint8_t *nl = memchr(in, '\n', n);
    size_t first_len = nl ? (size_t)(nl - in) : n;
    const uint8_t *final = nl ? nl + 1 : NULL;
    size_t final_len = nl ? n - first_len - 1 : 0;

    enum xs_cb_type cb = XS_CB_NONE;
    struct xs_cb_data cbd = {.len = 32};
    for (size_t i = 0; i < cbd.len; i++)
        cbd.data[i] = (uint8_t)(0xA0 + i);
    if (plus)
        cb = alt_cb ? XS_CB_TLS_EXPORTER : XS_CB_TLS_UNIQUE;
    else if (alt_cb)
        cb = XS_CB_TLS_EXPORTER; /* flag "y" */
    struct xs_sasl *s = NULL;
    int rc = xs_sasl_new(mech, "user", "pencil", NULL, cb, &cbd, &s);
    if (rc == GW_ENOMEM)
        return 0;
    check(rc == 0 && s, "xs_sasl_new");
    check(xs__sasl_set_nonce(s, sha1 ? "fyko+d2lbbFgONRv9qkxdawL"
                                     : "rOprNGfwEbeRWgbNEkqO") == 0,
          "set nonce");
    const uint8_t *out = NULL;
    size_t out_len = 0;
    check(xs_sasl_step(s, NULL, 0, &out, &out_len) == 0, "client-first");
    check(out && out_len > 0 && out_len <= XS_SASL_MSG_MAX, "client-first");

    uint8_t buf[XS_SASL_MSG_MAX];
    size_t len = 0;
    const uint8_t *msg = message(in, first_len, b64, buf, sizeof(buf), &len);
    int failed = 0;
    if (!msg) {
        xs_sasl_free(s);
        return 0;
    }
    rc = xs_sasl_step(s, msg, len, &out, &out_len);
    check_rc(s, rc, "server-first rc");
    if (rc == 0)
        check(out && out_len <= XS_SASL_MSG_MAX, "client-final size");
    failed = rc != 0;
    if (final && !failed) {
        msg = message(final, final_len, b64, buf, sizeof(buf), &len);
        if (msg && in_success) {
            rc = xs_sasl_finish(s, msg, len);
            check_rc(s, rc, "success rc");
        } else if (msg) {
            rc = xs_sasl_step(s, msg, len, &out, &out_len);
            check_rc(s, rc, "server-final challenge rc");
            if (rc == 0) {
                check(out_len == 0, "a response after v=");
                rc = xs_sasl_finish(s, NULL, 0);
                check_rc(s, rc, "empty success rc");
            }
        }
        if (msg && rc == 0)
            check(!plus && !alt_cb, "success without a provable signature");
        failed = msg && rc != 0;
    }
    if (failed) {
        /* a failed exchange stays failed */
        check(xs_sasl_finish(s, NULL, 0) == GW_EPROTO, "not sticky (finish)");
        check(xs_sasl_step(s, (const uint8_t *)"x", 1, &out, &out_len) ==
                  GW_EPROTO,
              "not sticky (step)");
    }
    xs_sasl_free(s);
    return 0;
}
