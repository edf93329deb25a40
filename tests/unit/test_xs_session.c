/* test_xs_session.c - the XMPP client session (xmpp/xs_conn.c) logged in
 * to a scripted server that speaks STARTTLS, SASL PLAIN, bind and XEP-0198.
 *
 * The group setup makes a CA and a server certificate for HOST with the
 * GnuTLS x509 API (the CA goes to a temporary PEM file for the session's
 * ca_file).  Each test runs the session on the main thread's libuv loop and
 * the server on a thread with blocking sockets: the server reads until it
 * sees what it expects, then writes its next lines.  A server failure is
 * recorded (no cmocka call on that thread) and checked by the test.  When
 * its script ends, the server wakes the loop with uv_async_send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <uv.h>

#include "gw_err.h"
#include "gw_log.h"
#include "xs_conn.h"
#include "xs_sasl.h"

#define HOST "xmpp.example.test"
#define JID "gw@" HOST
#define STRANGER "stranger@example.org/x"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"

#define SHDR                                                                   \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "               \
    "xmlns:stream='http://etherx.jabber.org/streams' from='" HOST "' "         \
    "id='s1' version='1.0' xml:lang='en'>"

/* ---- certificates ------------------------------------------------------- */

struct pki {
    gnutls_x509_privkey_t ca_key, srv_key;
    gnutls_x509_crt_t ca, srv;
    gnutls_certificate_credentials_t cred;
    char ca_file[64];
};

static struct pki *g_pki;

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

static int setup_pki(void **state)
{
    (void)state;
    struct pki *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    gen_key(&p->ca_key);
    gen_key(&p->srv_key);
    assert_int_equal(gnutls_x509_crt_init(&p->ca), 0);
    crt_common(p->ca, p->ca_key, "fieldgate session test CA", 1);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(p->ca, 1, -1), 0);
    assert_int_equal(gnutls_x509_crt_set_key_usage(
                         p->ca, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN),
                     0);
    assert_int_equal(
        gnutls_x509_crt_sign2(p->ca, p->ca, p->ca_key, GNUTLS_DIG_SHA256, 0),
        0);
    assert_int_equal(gnutls_x509_crt_init(&p->srv), 0);
    crt_common(p->srv, p->srv_key, HOST, 2);
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
    assert_int_equal(
        gnutls_x509_crt_sign2(p->srv, p->ca, p->ca_key, GNUTLS_DIG_SHA256, 0),
        0);
    assert_int_equal(gnutls_certificate_allocate_credentials(&p->cred), 0);
    assert_int_equal(
        gnutls_certificate_set_x509_key(p->cred, &p->srv, 1, p->srv_key), 0);
    gnutls_datum_t d = {NULL, 0};
    snprintf(p->ca_file, sizeof(p->ca_file), "/tmp/fg-test-ca-XXXXXX");
    int fd = mkstemp(p->ca_file);
    assert_true(fd >= 0);
    assert_int_equal(gnutls_x509_crt_export2(p->ca, GNUTLS_X509_FMT_PEM, &d),
                     0);
    assert_int_equal(write(fd, d.data, d.size), (ssize_t)d.size);
    close(fd);
    gnutls_free(d.data);
    g_pki = p;
    return 0;
}

static int teardown_pki(void **state)
{
    (void)state;
    struct pki *p = g_pki;
    unlink(p->ca_file);
    gnutls_certificate_free_credentials(p->cred);
    gnutls_x509_crt_deinit(p->srv);
    gnutls_x509_crt_deinit(p->ca);
    gnutls_x509_privkey_deinit(p->srv_key);
    gnutls_x509_privkey_deinit(p->ca_key);
    free(p);
    return 0;
}

/* ---- the scripted server (its own thread) ------------------------------- */

struct srv;
typedef void (*script_fn)(struct srv *s);

struct srv {
    int lfd, fd;
    int port;
    gnutls_session_t tls; /* NULL before STARTTLS */
    char rx[1 << 20];     /* what the client sent on this connection */
    size_t rx_len, mark;  /* mark: end of the last expected text */
    bool eof;             /* the client closed (or TLS close_notify) */
    bool bye;             /* ... with a TLS close_notify */
    char err[256];        /* the first failure, "" if none */
    unsigned conns;
    script_fn script;
    pthread_t thread;
    uv_async_t done;
    atomic_int finished;
    /* Filled by scripts for the test to check. */
    char session2[1 << 20];
    char note[256];
};

static void srv_fail(struct srv *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void srv_fail(struct srv *s, const char *fmt, ...)
{
    if (s->err[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
}

/* Reads once (5 s at most); false at EOF, timeout or error. */
static bool srv_read(struct srv *s)
{
    if (s->eof || s->rx_len + 1 >= sizeof(s->rx))
        return false;
    struct pollfd pf = {.fd = s->fd, .events = POLLIN};
    if (!(s->tls && gnutls_record_check_pending(s->tls)) &&
        poll(&pf, 1, 5000) <= 0)
        return false;
    ssize_t n;
    size_t room = sizeof(s->rx) - 1 - s->rx_len;
    if (s->tls) {
        do
            n = gnutls_record_recv(s->tls, s->rx + s->rx_len, room);
        while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
        if (n == 0)
            s->bye = true;
    } else {
        n = recv(s->fd, s->rx + s->rx_len, room, 0);
    }
    if (n <= 0) {
        s->eof = true;
        return false;
    }
    s->rx_len += (size_t)n;
    s->rx[s->rx_len] = '\0';
    return true;
}

/* Waits until what follows the mark contains needle; moves the mark past
 * it. */
static bool srv_expect(struct srv *s, const char *needle)
{
    if (s->err[0])
        return false;
    for (;;) {
        char *at = strstr(s->rx + s->mark, needle);
        if (at) {
            s->mark = (size_t)(at - s->rx) + strlen(needle);
            return true;
        }
        if (!srv_read(s)) {
            srv_fail(s, "connection %u: no \"%s\" in \"%s\"", s->conns, needle,
                     s->rx + s->mark);
            return false;
        }
    }
}

static void srv_send(struct srv *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void srv_send(struct srv *s, const char *fmt, ...)
{
    char buf[65536];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (s->err[0] || n < 0 || (size_t)n >= sizeof(buf))
        return;
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = s->tls
                        ? gnutls_record_send(s->tls, buf + off, (size_t)n - off)
                        : send(s->fd, buf + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
            continue;
        if (w <= 0) {
            srv_fail(s, "send failed (%zd)", w);
            return;
        }
        off += (size_t)w;
    }
}

static void srv_close(struct srv *s)
{
    if (s->tls) {
        gnutls_deinit(s->tls);
        s->tls = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

static bool srv_accept(struct srv *s)
{
    srv_close(s);
    struct pollfd pf = {.fd = s->lfd, .events = POLLIN};
    if (poll(&pf, 1, 10000) <= 0) {
        srv_fail(s, "no connection %u", s->conns + 1);
        return false;
    }
    s->fd = accept(s->lfd, NULL, NULL);
    if (s->fd < 0) {
        srv_fail(s, "accept failed");
        return false;
    }
    s->conns++;
    s->rx_len = s->mark = 0;
    s->rx[0] = '\0';
    s->eof = s->bye = false;
    return true;
}

/* The client's stream header: everything up to its '>'. */
static bool expect_header(struct srv *s)
{
    return srv_expect(s, "<stream:stream") &&
           srv_expect(s, "xmlns:stream='http://etherx.jabber.org/streams'>");
}

/* STARTTLS, then SASL PLAIN; ok: <success/>, else <failure/>.  Returns true
 * after <success/> and the restarted stream's header. */
static bool srv_login_tls_auth(struct srv *s, bool ok)
{
    if (!srv_accept(s) || !expect_header(s))
        return false;
    srv_send(s, SHDR "<stream:features><starttls "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
                     "</starttls></stream:features>");
    if (!srv_expect(s, "<starttls"))
        return false;
    srv_send(s, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    if (gnutls_init(&s->tls, GNUTLS_SERVER) != 0 ||
        gnutls_set_default_priority(s->tls) != 0 ||
        gnutls_credentials_set(s->tls, GNUTLS_CRD_CERTIFICATE, g_pki->cred) !=
            0) {
        srv_fail(s, "gnutls setup");
        return false;
    }
    gnutls_transport_set_int(s->tls, s->fd);
    gnutls_handshake_set_timeout(s->tls, 5000);
    int rc;
    do
        rc = gnutls_handshake(s->tls);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0) {
        srv_fail(s, "TLS handshake: %s", gnutls_strerror(rc));
        return false;
    }
    s->mark = s->rx_len; /* the plaintext part is done */
    if (!expect_header(s))
        return false;
    srv_send(s, SHDR "<stream:features><mechanisms xmlns='" NS_SASL
                     "'><mechanism>PLAIN</mechanism></mechanisms>"
                     "</stream:features>");
    if (!srv_expect(s, "</auth>"))
        return false;
    if (!ok) {
        srv_send(s, "<failure xmlns='" NS_SASL "'><not-authorized/>"
                    "</failure>");
        return false;
    }
    srv_send(s, "<success xmlns='" NS_SASL "'/>");
    return expect_header(s);
}

/* After the restarted stream: features with bind and SM, the bind result,
 * <enabled/>, then the initial presence.  resume_ok: NULL for a fresh
 * session; else a <resume/> is expected and refused (<failed/>). */
static bool srv_bind(struct srv *s, bool expect_resume)
{
    srv_send(s, SHDR "<stream:features><bind "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm "
                     "xmlns='urn:xmpp:sm:3'/></stream:features>");
    if (expect_resume) {
        if (!srv_expect(s, "<resume"))
            return false;
        srv_send(s, "<failed xmlns='urn:xmpp:sm:3'><item-not-found "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                    "</failed>");
    }
    if (!srv_expect(s, "<iq") || !srv_expect(s, "id='"))
        return false;
    char id[32] = "";
    sscanf(s->rx + s->mark, "%31[^']", id);
    if (!srv_expect(s, "</iq>"))
        return false;
    srv_send(s,
             "<iq type='result' id='%s'><bind "
             "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>" JID
             "/gw</jid></bind></iq>",
             id);
    if (!srv_expect(s, "<enable"))
        return false;
    srv_send(s, "<enabled xmlns='urn:xmpp:sm:3' id='sm-%u' resume='true'/>",
             s->conns);
    return srv_expect(s, "<presence");
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    s->script(s);
    atomic_store(&s->finished, 1);
    uv_async_send(&s->done);
    /* Until the test has freed the session: a close from our side would
     * be a drop the test did not ask for. */
    s->eof = false;
    while (s->fd >= 0 && srv_read(s))
        ;
    srv_close(s);
    return NULL;
}

/* ---- the client side ---------------------------------------------------- */

struct env {
    uv_loop_t loop;
    struct srv *s;
    struct xs_conn *c;
    struct gw_log log;
    FILE *logf;
    unsigned online, offline, freed;
    bool send_marker; /* send a message after each login */
};

static void on_done(uv_async_t *a)
{
    struct env *e = a->data;
    uv_stop(&e->loop);
}

static void cb_online(void *ud, const char *jid, bool resumed)
{
    (void)jid;
    (void)resumed;
    struct env *e = ud;
    e->online++;
    if (e->send_marker) {
        char body[32];
        snprintf(body, sizeof(body), "marker-%u", e->online);
        struct xs_stanza *m = xs_stanza_new("message", XS_NS_CLIENT);
        assert_non_null(m);
        assert_int_equal(xs_stanza_set_attr(m, "to", "op@" HOST), GW_OK);
        struct xs_stanza *b = xs_stanza_add_new(m, "body", NULL);
        assert_non_null(b);
        assert_int_equal(xs_stanza_set_text(b, body, strlen(body)), GW_OK);
        assert_int_equal(xs_conn_send(e->c, m), GW_OK);
    }
}

static void cb_offline(void *ud, int err)
{
    (void)err;
    ((struct env *)ud)->offline++;
}

static void cb_freed(void *ud)
{
    ((struct env *)ud)->freed++;
}

static void env_start(struct env *e, script_fn script, uint32_t reconnect_ms)
{
    memset(e, 0, sizeof(*e));
    assert_int_equal(uv_loop_init(&e->loop), 0);
    struct srv *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    e->s = s;
    s->fd = -1;
    s->script = script;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 8), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(uv_async_init(&e->loop, &s->done, on_done), 0);
    s->done.data = e;

    gw_log_init(&e->log);
    e->log.level = GW_LOG_DEBUG;
    e->logf = tmpfile();
    assert_non_null(e->logf);
    e->log.out = e->logf;
    struct xs_conn_config cfg = {
        .jid = JID,
        .password = "secret-pw",
        .resource = "gw",
        .host = "127.0.0.1",
        .port = (uint16_t)s->port,
        .ca_file = g_pki->ca_file,
        .verify = true,
        .sasl_allowed = XS_SASL_BIT(XS_SASL_PLAIN),
        .allow_plain = true,
        .reconnect_min_ms = reconnect_ms,
        .reconnect_max_ms = reconnect_ms,
    };
    struct xs_conn_cbs cbs = {.online = cb_online, .offline = cb_offline};
    assert_int_equal(xs_conn_new(&e->loop, &cfg, &cbs, e, &e->log, &e->c),
                     GW_OK);
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
    assert_int_equal(xs_conn_start(e->c), GW_OK);
}

/* Runs the loop until the server's script ends, then frees everything;
 * returns the log text (caller frees). */
static char *env_finish(struct env *e)
{
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(atomic_load(&e->s->finished), 1);
    xs_conn_free(e->c, cb_freed, e);
    uv_close((uv_handle_t *)&e->s->done, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    pthread_join(e->s->thread, NULL);
    assert_int_equal(e->freed, 1);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    close(e->s->lfd);
    fflush(e->logf);
    long n = ftell(e->logf);
    char *text = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    assert_non_null(text);
    rewind(e->logf);
    if (n > 0)
        assert_int_equal(fread(text, 1, (size_t)n, e->logf), (size_t)n);
    fclose(e->logf);
    return text;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---- stanzas over the limits (issue 8, defect 1) ------------------------ */

static void script_dropped(struct srv *s)
{
    if (!srv_login_tls_auth(s, true) || !srv_bind(s, false))
        return;
    char big[4096];
    size_t o = (size_t)snprintf(big, sizeof(big),
                                "<iq type='get' id='a70' from='" STRANGER
                                "' to='" JID "/gw'");
    for (int i = 0; i < 66; i++)
        o += (size_t)snprintf(big + o, sizeof(big) - o, " a%d='%d'", i, i);
    snprintf(big + o, sizeof(big) - o, "><ping xmlns='urn:xmpp:ping'/></iq>");
    char deep[1024];
    o = (size_t)snprintf(deep, sizeof(deep),
                         "<message from='" STRANGER "' id='d70'>");
    for (int i = 0; i < 69; i++)
        o += (size_t)snprintf(deep + o, sizeof(deep) - o, "<a>");
    for (int i = 0; i < 69; i++)
        o += (size_t)snprintf(deep + o, sizeof(deep) - o, "</a>");
    snprintf(deep + o, sizeof(deep) - o, "</message>");
    /* An iq get over the limits, a message over the limits, an iq error
     * over the limits (never answered), then an ack request. */
    srv_send(s, "%s", big);
    srv_send(s, "%s", deep);
    srv_send(s, "<iq type='error' id='e70' from='" STRANGER "'><x");
    for (int i = 0; i < 70; i++)
        srv_send(s, " a%d='1'", i);
    srv_send(s, "/></iq><r xmlns='urn:xmpp:sm:3'/>");
    if (!srv_expect(s, "<a xmlns='urn:xmpp:sm:3' h='3'/>"))
        return;
    /* The stream lives on: a ping is answered. */
    srv_send(s, "<iq type='get' id='p1' from='" HOST "'><ping "
                "xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>");
    if (!srv_expect(s, "id='p1'") ||
        !srv_expect(s, "<a xmlns='urn:xmpp:sm:3' h='4'/>"))
        return;
    snprintf(s->session2, sizeof(s->session2), "%s", s->rx);
}

/* A dropped iq get gets an iq error (policy-violation, modify) addressed to
 * its sender; a dropped message or iq error gets nothing; every dropped
 * stanza counts for XEP-0198; the session stays up (no reconnect). */
static void test_dropped_stanzas(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, script_dropped, 3600000);
    char *log = env_finish(&e);
    if (e.s->err[0])
        fail_msg("server: %s\nlog:\n%s", e.s->err, log);
    const char *rx = e.s->session2;
    /* Exactly one error reply, to the iq get ... */
    assert_int_equal(count_of(rx, "policy-violation"), 1);
    assert_non_null(strstr(rx,
                           "<iq type='error' id='a70' to='" STRANGER
                           "'><error type='modify'><policy-violation "
                           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"));
    assert_null(strstr(rx, "id='d70'"));
    assert_null(strstr(rx, "id='e70'"));
    assert_int_equal(e.online, 1);
    assert_int_equal(e.offline, 0);
    assert_int_equal(e.s->conns, 1);
    /* ... and one log line for the sender (rate-limited), no content. */
    assert_int_equal(count_of(log, "dropped a <"), 1);
    assert_null(strstr(log, "a65="));
    free(log);
    free(e.s);
}

/* A message over the depth limit from `from`. */
static void send_deep(struct srv *s, const char *from, int i)
{
    char deep[1024];
    size_t o = (size_t)snprintf(deep, sizeof(deep),
                                "<message from='%s' id='r%d'>", from, i);
    for (int k = 0; k < 69; k++)
        o += (size_t)snprintf(deep + o, sizeof(deep) - o, "<a>");
    for (int k = 0; k < 69; k++)
        o += (size_t)snprintf(deep + o, sizeof(deep) - o, "</a>");
    snprintf(deep + o, sizeof(deep) - o, "</message>");
    srv_send(s, "%s", deep);
}

static void script_rotating(struct srv *s)
{
    if (!srv_login_tls_auth(s, true) || !srv_bind(s, false))
        return;
    char from[128];
    /* 20 resources of one bare JID (its case varying), then 20 bare JIDs. */
    for (int i = 0; i < 20; i++) {
        snprintf(from, sizeof(from), "%s@example.org/r%d",
                 i % 2 ? "Stranger" : "stranger", i);
        send_deep(s, from, i);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(from, sizeof(from), "rot%d@example.org/x", i);
        send_deep(s, from, 100 + i);
    }
    srv_send(s, "<r xmlns='urn:xmpp:sm:3'/>");
    if (!srv_expect(s, "<a xmlns='urn:xmpp:sm:3' h='40'/>"))
        return;
    snprintf(s->session2, sizeof(s->session2), "%s", s->rx);
}

/* Rotating senders do not defeat the rate limit of the drop log: one line
 * per bare JID, at most 10 lines per minute in all, then one line saying
 * the rest is counted (summed up every minute by the tick). */
static void test_dropped_rotating_senders(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, script_rotating, 3600000);
    char *log = env_finish(&e);
    if (e.s->err[0])
        fail_msg("server: %s\nlog:\n%s", e.s->err, log);
    assert_int_equal(e.online, 1);
    assert_int_equal(e.s->conns, 1);
    if (count_of(log, "dropped a <") != 10 ||
        count_of(log, "tranger@example.org/") != 1 ||
        count_of(log, "further drops are counted") != 1)
        fail_msg("log:\n%s", log);
    free(log);
    free(e.s);
}

/* ---- SASL failure ----------------------------------------------------- */

static void script_auth_fails(struct srv *s)
{
    srv_login_tls_auth(s, false);
    if (s->err[0])
        return;
    /* The client ends its stream and TLS before the TCP close. */
    if (!srv_expect(s, "</stream:stream>"))
        return;
    while (srv_read(s))
        ;
    if (!s->bye)
        srv_fail(s, "no TLS close_notify after </stream:stream>");
}

static void test_sasl_failure_closes_stream(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, script_auth_fails, 3600000);
    char *log = env_finish(&e);
    if (e.s->err[0])
        fail_msg("server: %s\nlog:\n%s", e.s->err, log);
    assert_non_null(strstr(log, "not-authorized"));
    assert_int_equal(e.online, 0);
    free(log);
    free(e.s);
}

/* ---- resending after a failed resumption (issue 8, defect 8) ----------- */

static void on_iq_reply(void *ud, const struct xs_stanza *reply, int err)
{
    (void)reply;
    int *calls = ud;
    assert_int_equal(err, GW_EDISCONNECTED);
    (*calls)++;
}

static int g_iq_calls;

static void script_resume_fails(struct srv *s)
{
    if (!srv_login_tls_auth(s, true) || !srv_bind(s, false))
        return;
    /* Session 1: the client answers a ping and sends a message (marker-1)
     * and, from the test, an iq; nothing is acked. */
    srv_send(s, "<iq type='get' id='old-ping' from='" HOST "'><ping "
                "xmlns='urn:xmpp:ping'/></iq>");
    if (!srv_expect(s, "marker-1") || !srv_expect(s, "id='old-ping'"))
        return;
    snprintf(s->note, sizeof(s->note), "session 1 ok");
    srv_close(s); /* the server goes away */
    /* Session 2: resumption refused, a new session is bound. */
    if (!srv_login_tls_auth(s, true) || !srv_bind(s, true) ||
        !srv_expect(s, "marker-2"))
        return;
    snprintf(s->session2, sizeof(s->session2), "%s", s->rx);
}

static void test_resend_after_failed_resume(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, script_resume_fails, 100);
    e.send_marker = true;
    g_iq_calls = 0;
    /* An iq of the first session: queued now, sent at login, failed on
     * the drop. */
    struct xs_stanza *iq = xs_stanza_new("iq", XS_NS_CLIENT);
    assert_non_null(iq);
    assert_int_equal(xs_stanza_set_attr(iq, "type", "get"), GW_OK);
    assert_int_equal(xs_stanza_set_attr(iq, "to", "pubsub." HOST), GW_OK);
    assert_non_null(xs_stanza_add_new(iq, "query", "urn:x:old-request"));
    assert_int_equal(xs_conn_iq(e.c, iq, 600000, on_iq_reply, &g_iq_calls),
                     GW_OK);
    char *log = env_finish(&e);
    if (e.s->err[0])
        fail_msg("server: %s (%s)\nlog:\n%s", e.s->err, e.s->note, log);
    const char *rx = e.s->session2;
    /* Resent: the unacked message.  Not resent: the old presence (one
     * presence only, the new one), the answer to the old ping, the old
     * iq request (its caller was told "disconnected"). */
    assert_int_equal(count_of(rx, "marker-1"), 1);
    assert_int_equal(count_of(rx, "<presence"), 1);
    assert_null(strstr(rx, "old-ping"));
    assert_null(strstr(rx, "urn:x:old-request"));
    assert_int_equal(g_iq_calls, 1);
    assert_int_equal(e.online, 2);
    assert_int_equal(e.offline, 1);
    free(log);
    free(e.s);
}

/* ---- reconnect delays -------------------------------------------------- */

/* Doubled from the first failure: min, 2 min, 4 min, ... max. */
static void test_backoff_sequence(void **state)
{
    (void)state;
    uint32_t b = 0;
    const uint32_t want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_int_equal(xs_conn_backoff(&b, 1000, 30000), want[i]);
    b = 0; /* after a login */
    assert_int_equal(xs_conn_backoff(&b, 1000, 30000), 1000);
    b = 0;
    assert_int_equal(xs_conn_backoff(&b, 500, 500), 500);
    assert_int_equal(xs_conn_backoff(&b, 500, 500), 500);
    b = 0; /* huge values do not overflow */
    assert_int_equal(xs_conn_backoff(&b, 3000000000u, 4000000000u),
                     3000000000u);
    assert_int_equal(xs_conn_backoff(&b, 3000000000u, 4000000000u),
                     4000000000u);
}

/* The session's own waits follow it (with ±20 % jitter): a refused port,
 * min 60 ms, max 480 ms. */
static void on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void test_reconnect_delays(void **state)
{
    (void)state;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    /* bound, never listening: connections are refused */
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct gw_log log;
    gw_log_init(&log);
    log.level = GW_LOG_DEBUG;
    log.out = tmpfile();
    assert_non_null(log.out);
    struct xs_conn_config cfg = {
        .jid = JID,
        .password = "secret-pw",
        .host = "127.0.0.1",
        .port = ntohs(a.sin_port),
        .verify = true,
        .reconnect_min_ms = 60,
        .reconnect_max_ms = 480,
    };
    struct env e;
    memset(&e, 0, sizeof(e));
    struct xs_conn *c = NULL;
    assert_int_equal(xs_conn_new(&loop, &cfg, NULL, &e, &log, &c), GW_OK);
    assert_int_equal(xs_conn_start(c), GW_OK);
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop, 1700, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    xs_conn_free(c, cb_freed, &e);
    uv_close((uv_handle_t *)&stop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(l);
    char text[16384] = "";
    fflush(log.out);
    rewind(log.out);
    size_t n = fread(text, 1, sizeof(text) - 1, log.out);
    text[n] = '\0';
    fclose(log.out);
    const unsigned want[] = {60, 120, 240, 480, 480};
    const char *p = text;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        p = strstr(p, "reconnecting in ");
        if (!p)
            fail_msg("only %zu delays in:\n%s", i, text);
        unsigned ms = (unsigned)strtoul(p + 16, NULL, 10);
        if (ms * 5 < want[i] * 4 || ms * 5 > want[i] * 6)
            fail_msg("delay %zu is %u ms, want %u ms +-20%%:\n%s", i, ms,
                     want[i], text);
        p += 16;
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropped_stanzas),
        cmocka_unit_test(test_dropped_rotating_senders),
        cmocka_unit_test(test_sasl_failure_closes_stream),
        cmocka_unit_test(test_resend_after_failed_resume),
        cmocka_unit_test(test_backoff_sequence),
        cmocka_unit_test(test_reconnect_delays),
    };
    return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
