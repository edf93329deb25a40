/* test_xs_conn.c - the XMPP client session (xmpp/xs_conn.c) against a
 * scripted server on 127.0.0.1 in the same libuv loop.
 *
 * The fake server accepts connections, records every byte the client sends
 * and, when the first bytes of a connection arrive (the client's stream
 * header), answers with a scripted reply.  It never speaks TLS: these tests
 * cover what a server (or anyone on the path) can do before TLS, and the
 * session's lifetime rules (callbacks that free it, handle counting). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "gw_err.h"
#include "gw_log.h"
#include "xs_conn.h"

#define HDR                                                                    \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "               \
    "xmlns:stream='http://etherx.jabber.org/streams' from='fieldgate.test' "   \
    "id='s1' version='1.0' xml:lang='en'>"

struct fake;

struct peer {
    uv_tcp_t tcp;
    struct fake *f;
};

struct fake {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t guard; /* stops a run that would hang (a failure) */
    int port;
    const char *script; /* sent after the first bytes of each connection;
                           "%d" is replaced by the port */
    char rx[65536];     /* everything received, all connections */
    size_t rx_len;
    unsigned accepted, closed;
    struct peer *peers[64]; /* open ones */
    unsigned stop_after;    /* stop the loop after this many closes */
    struct xs_conn *conn;
    unsigned online, offline, freed;
};

static void on_peer_closed(uv_handle_t *h)
{
    struct peer *p = h->data;
    struct fake *f = p->f;
    for (size_t i = 0; i < 64; i++)
        if (f->peers[i] == p)
            f->peers[i] = NULL;
    free(p);
    f->closed++;
    if (f->stop_after && f->closed >= f->stop_after)
        uv_stop(f->loop);
}

static void on_peer_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(n);
    buf->len = buf->base ? n : 0;
}

static void on_peer_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void peer_send(struct peer *p, const char *s)
{
    size_t len = strlen(s);
    uv_write_t *w = malloc(sizeof(*w) + len);
    assert_non_null(w);
    char *data = (char *)(w + 1);
    memcpy(data, s, len);
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    assert_int_equal(
        uv_write(w, (uv_stream_t *)&p->tcp, &b, 1, on_peer_written), 0);
}

static void on_peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct peer *p = s->data;
    struct fake *f = p->f;
    if (n < 0) {
        free(buf->base);
        uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
        return;
    }
    size_t room = sizeof(f->rx) - 1 - f->rx_len;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(f->rx + f->rx_len, buf->base, take);
    f->rx_len += take;
    f->rx[f->rx_len] = '\0';
    free(buf->base);
}

/* The script goes out on the first read of each connection. */
struct speer {
    struct peer base;
    bool answered;
};

static void on_speer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct speer *p = s->data;
    struct fake *f = p->base.f;
    on_peer_read(s, n, buf);
    if (n > 0 && !p->answered && f->script) {
        p->answered = true;
        char out[8192];
        const char *at = strstr(f->script, "%d");
        if (at)
            snprintf(out, sizeof(out), "%.*s%d%s", (int)(at - f->script),
                     f->script, f->port, at + 2);
        else
            snprintf(out, sizeof(out), "%s", f->script);
        peer_send(&p->base, out);
    }
}

static void on_conn(uv_stream_t *server, int status)
{
    struct fake *f = server->data;
    assert_int_equal(status, 0);
    struct speer *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->base.f = f;
    assert_int_equal(uv_tcp_init(f->loop, &p->base.tcp), 0);
    p->base.tcp.data = p;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&p->base.tcp), 0);
    f->accepted++;
    for (size_t i = 0; i < 64; i++) {
        if (!f->peers[i]) {
            f->peers[i] = &p->base;
            break;
        }
    }
    assert_int_equal(uv_read_start((uv_stream_t *)&p->base.tcp, on_peer_alloc,
                                   on_speer_read),
                     0);
}

static void on_guard(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void fake_listen(struct fake *f, uv_loop_t *loop)
{
    memset(f, 0, sizeof(*f));
    f->loop = loop;
    struct sockaddr_in a;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &a), 0);
    assert_int_equal(uv_tcp_init(loop, &f->listener), 0);
    f->listener.data = f;
    assert_int_equal(uv_tcp_bind(&f->listener, (const struct sockaddr *)&a, 0),
                     0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->listener, 16, on_conn), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    assert_int_equal(
        uv_tcp_getsockname(&f->listener, (struct sockaddr *)&ss, &len), 0);
    f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    assert_int_equal(uv_timer_init(loop, &f->guard), 0);
    assert_int_equal(uv_timer_start(&f->guard, on_guard, 10000, 10000), 0);
    uv_unref((uv_handle_t *)&f->guard);
}

/* ---- session callbacks --------------------------------------------------- */

static void cb_online(void *ud, const char *jid, bool resumed)
{
    (void)jid;
    (void)resumed;
    ((struct fake *)ud)->online++;
}

static void cb_offline(void *ud, int err)
{
    (void)err;
    ((struct fake *)ud)->offline++;
}

static void cb_freed(void *ud)
{
    ((struct fake *)ud)->freed++;
}

static struct gw_log quiet_log;

static struct xs_conn *new_conn(uv_loop_t *loop, struct fake *f, int port)
{
    gw_log_init(&quiet_log);
    quiet_log.level = GW_LOG_DEBUG;
    struct xs_conn_config cfg = {
        .jid = "gw@fieldgate.test",
        .password = "secret-pw",
        .host = "127.0.0.1",
        .port = (uint16_t)port,
        .verify = true,
        .reconnect_min_ms = 3600000, /* one attempt per test */
        .reconnect_max_ms = 3600000,
    };
    struct xs_conn_cbs cbs = {.online = cb_online, .offline = cb_offline};
    struct xs_conn *c = NULL;
    assert_int_equal(xs_conn_new(loop, &cfg, &cbs, f, &quiet_log, &c), GW_OK);
    f->conn = c;
    return c;
}

/* Frees the session, closes the fake server, and checks that every handle
 * of the loop is gone. */
static void finish(uv_loop_t *loop, struct fake *f, bool free_conn)
{
    if (free_conn)
        xs_conn_free(f->conn, cb_freed, f);
    if (!uv_is_closing((uv_handle_t *)&f->listener))
        uv_close((uv_handle_t *)&f->listener, NULL);
    uv_close((uv_handle_t *)&f->guard, NULL);
    for (size_t i = 0; i < 64; i++)
        if (f->peers[i] && !uv_is_closing((uv_handle_t *)&f->peers[i]->tcp))
            uv_close((uv_handle_t *)&f->peers[i]->tcp, on_peer_closed);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(f->freed, 1);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- before TLS, nothing but the stream header and STARTTLS ------------- */

static struct xs_stanza *message(const char *body)
{
    struct xs_stanza *m = xs_stanza_new("message", XS_NS_CLIENT);
    assert_non_null(m);
    assert_int_equal(xs_stanza_set_attr(m, "to", "op@fieldgate.test"), GW_OK);
    struct xs_stanza *b = xs_stanza_add_new(m, "body", NULL);
    assert_non_null(b);
    assert_int_equal(xs_stanza_set_text(b, body, strlen(body)), GW_OK);
    return m;
}

static void run_pre_tls(const char *script)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct fake f;
    fake_listen(&f, &loop);
    f.script = script;
    f.stop_after = 1; /* the client hangs up */
    struct xs_conn *c = new_conn(&loop, &f, f.port);
    assert_int_equal(xs_conn_send(c, message("queued-while-offline")), GW_OK);
    assert_int_equal(xs_conn_start(c), GW_OK);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(f.accepted, 1);
    assert_int_equal(f.closed, 1);
    /* Nothing but the stream header (and maybe a stream error) went out in
     * plaintext: no stanza, no SM element, no queued message. */
    assert_int_equal(f.online, 0);
    assert_null(strstr(f.rx, "<iq"));
    assert_null(strstr(f.rx, "<presence"));
    assert_null(strstr(f.rx, "<message"));
    assert_null(strstr(f.rx, "queued-while-offline"));
    assert_null(strstr(f.rx, "urn:xmpp:sm:3"));
    assert_false(xs_conn_online(c));
    finish(&loop, &f, true);
}

/* <resumed/> in plaintext must not bring the session online (it would flush
 * the offline queue without TLS). */
static void test_resumed_before_tls(void **state)
{
    (void)state;
    run_pre_tls(HDR "<resumed xmlns='urn:xmpp:sm:3' previd='x' h='0'/>"
                    "<iq type='get' id='p1' from='fieldgate.test'>"
                    "<ping xmlns='urn:xmpp:ping'/></iq>");
}

/* <failed/> in plaintext must not make the session bind (an iq in the
 * clear), nor may a bind result then bring it online. */
static void test_failed_before_tls(void **state)
{
    (void)state;
    run_pre_tls(HDR "<failed xmlns='urn:xmpp:sm:3'/>"
                    "<iq type='result' id='fg2'><bind "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>gw@"
                    "fieldgate.test/x</jid></bind></iq>");
}

/* An iq get before TLS is not answered (ping, disco#info, version would
 * leak in the clear). */
static void test_iq_before_tls(void **state)
{
    (void)state;
    run_pre_tls(HDR "<iq type='get' id='v1' from='x@y/z'>"
                    "<query xmlns='jabber:iq:version'/></iq>"
                    "<iq type='get' id='p1' from='fieldgate.test'>"
                    "<ping xmlns='urn:xmpp:ping'/></iq>"
                    "<r xmlns='urn:xmpp:sm:3'/>");
}

/* Garbage instead of a stream: a stream error, then a clean drop. */
static void test_garbage(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct fake f;
    fake_listen(&f, &loop);
    f.script = "HTTP/1.1 400 Bad Request\r\n\r\n";
    f.stop_after = 1;
    struct xs_conn *c = new_conn(&loop, &f, f.port);
    assert_int_equal(xs_conn_start(c), GW_OK);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_non_null(strstr(f.rx, "<stream:error>"));
    assert_int_equal(f.online, 0);
    finish(&loop, &f, true);
}

/* A server that redirects to itself: followed at once a few times, then
 * the session backs off (reconnect_min is an hour here) instead of
 * reconnecting in a tight loop. */
static void test_redirect_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct fake f;
    fake_listen(&f, &loop);
    f.script = HDR "<stream:error><see-other-host "
                   "xmlns='urn:ietf:params:xml:ns:xmpp-streams'>127.0.0.1:%d"
                   "</see-other-host></stream:error></stream:stream>";
    f.stop_after = 50; /* far more than allowed: the loop is not broken */
    struct xs_conn *c = new_conn(&loop, &f, f.port);
    assert_int_equal(xs_conn_start(c), GW_OK);
    /* Ends when the guard fires (the session waits for an hour). */
    uv_timer_start(&f.guard, on_guard, 1500, 1500);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(f.accepted, 6); /* the first, then 5 redirects */
    finish(&loop, &f, true);
}

/* ---- lifetime ------------------------------------------------------------ */

static void iq_cb_frees(void *ud, const struct xs_stanza *reply, int err)
{
    struct fake *f = ud;
    assert_null(reply);
    assert_int_equal(err, GW_EDISCONNECTED);
    xs_conn_free(f->conn, cb_freed, f);
}

static struct xs_stanza *ping_iq(void)
{
    struct xs_stanza *iq = xs_stanza_new("iq", XS_NS_CLIENT);
    assert_non_null(iq);
    assert_int_equal(xs_stanza_set_attr(iq, "type", "get"), GW_OK);
    assert_int_equal(xs_stanza_set_attr(iq, "to", "fieldgate.test"), GW_OK);
    assert_non_null(xs_stanza_add_new(iq, "ping", XS_NS_PING));
    return iq;
}

/* An iq callback that frees the session when a connection attempt fails
 * (refused): the session is freed exactly once and every handle is
 * closed. */
static void test_free_from_iq_cb_on_refused(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct fake f;
    fake_listen(&f, &loop);
    int port = f.port;
    /* Nobody listens on that port any more. */
    uv_close((uv_handle_t *)&f.listener, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    struct xs_conn *c = new_conn(&loop, &f, port);
    assert_int_equal(xs_conn_iq(c, ping_iq(), 600000, iq_cb_frees, &f), GW_OK);
    assert_int_equal(xs_conn_start(c), GW_OK);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(f.freed, 1);
    uv_close((uv_handle_t *)&f.guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The same while negotiating: the server sends garbage, the drop fails the
 * iq, its callback frees the session. */
static void test_free_from_iq_cb_on_drop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct fake f;
    fake_listen(&f, &loop);
    f.script = "<<<>>>";
    struct xs_conn *c = new_conn(&loop, &f, f.port);
    assert_int_equal(xs_conn_iq(c, ping_iq(), 600000, iq_cb_frees, &f), GW_OK);
    assert_int_equal(xs_conn_start(c), GW_OK);
    finish(&loop, &f, false);
    assert_int_equal(f.offline, 0);
}

/* Freed before the loop ever ran: nothing leaks, the loop closes. */
static void test_free_unstarted(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct fake f;
    fake_listen(&f, &loop);
    struct xs_conn *c = new_conn(&loop, &f, f.port);
    (void)c;
    finish(&loop, &f, true);
}

/* Freed while the TCP connect is in flight. */
static void test_free_while_connecting(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct fake f;
    fake_listen(&f, &loop);
    struct xs_conn *c = new_conn(&loop, &f, f.port);
    assert_int_equal(xs_conn_iq(c, ping_iq(), 600000, NULL, NULL), GW_OK);
    assert_int_equal(xs_conn_start(c), GW_OK);
    /* getaddrinfo of a literal is on the thread pool: run until connected
     * or a little further, then free. */
    uv_run(&loop, UV_RUN_NOWAIT);
    finish(&loop, &f, true);
}

/* A server whose accept queue is full never answers the SYN: the connect
 * is bounded by ping_timeout instead of the kernel's SYN timeout. */
static void on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 0), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a)); /* EINPROGRESS */
    }
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct fake f;
    fake_listen(&f, &loop);
    struct xs_conn_config cfg = {
        .jid = "gw@fieldgate.test",
        .password = "secret-pw",
        .host = "127.0.0.1",
        .port = ntohs(a.sin_port),
        .verify = true,
        .ping_timeout_ms = 1000,
        .reconnect_min_ms = 3600000,
        .reconnect_max_ms = 3600000,
    };
    FILE *logf = tmpfile();
    assert_non_null(logf);
    gw_log_init(&quiet_log);
    quiet_log.level = GW_LOG_DEBUG;
    quiet_log.out = logf;
    struct xs_conn_cbs cbs = {.online = cb_online, .offline = cb_offline};
    assert_int_equal(xs_conn_new(&loop, &cfg, &cbs, &f, &quiet_log, &f.conn),
                     GW_OK);
    assert_int_equal(xs_conn_start(f.conn), GW_OK);
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop, 3500, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&stop, NULL);
    char text[8192] = "";
    fflush(logf);
    rewind(logf);
    size_t n = fread(text, 1, sizeof(text) - 1, logf);
    text[n] = '\0';
    assert_non_null(strstr(text, "TCP connect timed out"));
    assert_non_null(strstr(text, "cannot reach any server"));
    assert_int_equal(f.online, 0);
    finish(&loop, &f, true);
    fclose(logf);
    quiet_log.out = NULL;
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resumed_before_tls),
        cmocka_unit_test(test_failed_before_tls),
        cmocka_unit_test(test_iq_before_tls),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_redirect_loop),
        cmocka_unit_test(test_free_from_iq_cb_on_refused),
        cmocka_unit_test(test_free_from_iq_cb_on_drop),
        cmocka_unit_test(test_free_unstarted),
        cmocka_unit_test(test_free_while_connecting),
        cmocka_unit_test(test_connect_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
