/* xs_conn.c - the XMPP client session: transport, negotiation, stream
 * management, keepalive, routing and reconnection. */
#include "xs_conn.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw_err.h"
#include "xs_buf.h"
#include "xs_jid.h"
#include "xs_parser.h"
#include "xs_sasl.h"
#include "xs_srv.h"
#include "xs_tls.h"

#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_STREAM_ERR "urn:ietf:params:xml:ns:xmpp-streams"

#define PENDING_MAX 10000 /* stanzas queued while offline */
#define UNACKED_MAX 10000 /* stanzas awaiting a XEP-0198 ack */
#define ACK_EVERY 5       /* <r/> after this many unacked stanzas */
#define MAX_CANDIDATES 16 /* SRV targets tried per attempt */
#define MAX_REDIRECTS 5   /* see-other-host followed without a login */
#define DROP_LOG_SLOTS 32 /* senders remembered for rate-limited logging */
#define DROP_LOG_MS 60000 /* at most one line per sender per this time */
#define DROP_LOG_LINES 10 /* and at most this many lines per DROP_LOG_MS */

static const char *const AREA = "xmpp";

enum state {
    ST_IDLE,
    ST_RESOLVING,
    ST_CONNECTING,
    ST_NEGOTIATING,
    ST_ONLINE,
    ST_DOWN, /* waiting to reconnect */
    ST_CLOSING,
};

/* What a queued stanza is, for deciding what a new session resends. */
enum item_kind {
    KIND_OTHER = 0,
    KIND_MESSAGE,     /* resent on a new session */
    KIND_PRESENCE,    /* the new session sends its own */
    KIND_IQ_REQUEST,  /* its tracker fails on the drop: never resent */
    KIND_IQ_RESPONSE, /* answers a request of the old session */
};

struct item {
    char *data;
    size_t len;
    enum item_kind kind;
};

/* A FIFO of serialized stanzas with a maximum. */
struct queue {
    struct item *items;
    size_t head, count, cap, max;
};

struct iq_wait {
    struct iq_wait *next;
    char id[24];
    char *to; /* NULL: the server (no from, or our domain/bare JID) */
    xs_iq_cb cb;
    void *ud;
    uint64_t deadline;
};

struct iq_route {
    struct iq_route *next;
    char *ns;
    xs_iq_handler handler;
    void *ud;
};

/* A sender whose dropped stanzas were logged (by a hash of its bare JID,
 * case-folded: a sender rotating resources is one sender). */
struct drop_seen {
    uint64_t hash;
    uint64_t last; /* when its last line was logged; 0 = free slot */
    uint32_t suppressed;
};

struct candidate {
    char host[256];
    uint16_t port;
    bool direct;
};

struct srv_work {
    uv_work_t req;
    struct xs_conn *c;
    char domain[1024];
    struct candidate cands[MAX_CANDIDATES];
    size_t n;
};

struct xs_conn {
    uv_loop_t *loop;
    const struct gw_log *log;
    struct xs_conn_cbs cbs;
    void *ud;
    /* Configuration (owned copies). */
    char *jid, *password, *resource, *host, *ca_file, *status;
    struct xs_jid account;
    char bare[XS_JID_MAX + 1];
    uint16_t port;
    bool direct_tls, verify, allow_plain;
    unsigned sasl_allowed;
    uint32_t keepalive_ms, ping_timeout_ms, reconnect_min_ms, reconnect_max_ms;
    size_t stanza_max;
    char **features;
    size_t n_features;
    struct iq_route *routes;
    /* Connection attempt. */
    enum state state;
    unsigned gen; /* bumped on every drop: stale callbacks check it */
    struct candidate cands[MAX_CANDIDATES];
    size_t n_cands, cand;
    struct addrinfo *addrs, *addr;
    uv_getaddrinfo_t gai;
    bool gai_busy;
    struct srv_work *srv; /* in flight, or NULL */
    uv_tcp_t tcp;
    bool tcp_open;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    bool cur_direct;
    char redirect[256];
    uint16_t redirect_port;
    unsigned redirects; /* followed since the last login */
    struct xs_tls *tls;
    bool tls_handshaking;
    bool secure, authed, bound;
    struct xs_parser *parser;
    struct xs_sasl *sasl;
    bool session_required, offers_sm;
    char *full_jid;
    uint64_t attempt_start, last_rx;
    uint32_t backoff_ms;
    bool auth_failed;
    /* Stream management. */
    bool sm_enabled, sm_resumable;
    bool resuming; /* <resume/> sent, <resumed/> or <failed/> not yet */
    char *sm_id;
    uint32_t sm_in;       /* inbound handled count (h we report) */
    uint32_t sm_out_sent; /* outbound stanzas since <enable/> */
    uint32_t sm_out_acked;
    uint32_t since_r;
    struct queue unacked;
    struct queue pending; /* while offline */
    /* iq tracking. */
    struct iq_wait *waits;
    uint32_t next_id;
    bool ping_out;
    /* Timers. */
    uv_timer_t tick, retry;
    size_t open_handles;
    void (*closed_cb)(void *ud);
    void *closed_ud;
    struct xs_conn_stats stats;
    /* Stanzas dropped by the parser's limits: rate-limited logging. */
    struct drop_seen drop_seen[DROP_LOG_SLOTS];
    uint64_t drop_summary_at; /* when the suppressed count was last logged */
    uint64_t drops_suppressed;
    uint64_t drop_window_at; /* start of the window of DROP_LOG_LINES */
    unsigned drop_lines;     /* lines logged in that window */
    bool graceful;           /* the next drop closes the stream and TLS first */
};

/* ---- small helpers ---------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void queue_init(struct queue *q, size_t max)
{
    memset(q, 0, sizeof(*q));
    q->max = max;
}

static int queue_push(struct queue *q, char *data, size_t len,
                      enum item_kind kind)
{
    if (q->count >= q->max)
        return GW_ELIMIT;
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct item *items = malloc(cap * sizeof(*items));
        if (!items)
            return GW_ENOMEM;
        for (size_t i = 0; i < q->count; i++)
            items[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = items;
        q->head = 0;
        q->cap = cap;
    }
    q->items[(q->head + q->count) % q->cap] = (struct item){data, len, kind};
    q->count++;
    return GW_OK;
}

static bool queue_pop(struct queue *q, struct item *out)
{
    if (q->count == 0)
        return false;
    *out = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    return true;
}

static void queue_close(struct queue *q)
{
    struct item it;
    while (queue_pop(q, &it))
        free(it.data);
    free(q->items);
    q->items = NULL;
    q->cap = 0;
}

static uint64_t now_ms(const struct xs_conn *c)
{
    return uv_now(c->loop);
}

static uint32_t jitter(const struct xs_conn *c, uint32_t ms)
{
    /* 80%..120%, from the loop's high-resolution clock: not security. */
    uint64_t r = uv_hrtime() ^ (uint64_t)(uintptr_t)c;
    r ^= r >> 17;
    r *= 0x9E3779B97F4A7C15ull;
    uint64_t span = (uint64_t)ms * 2 / 5;
    return (uint32_t)((uint64_t)ms * 4 / 5 + (span ? (r >> 11) % span : 0));
}

/* ---- stanza helpers (public) ------------------------------------------- */

struct xs_stanza *xs_add_error(struct xs_stanza *parent, const char *type,
                               const char *condition, const char *text)
{
    struct xs_stanza *e = xs_stanza_add_new(parent, "error", NULL);
    if (!e || xs_stanza_set_attr(e, "type", type) != GW_OK ||
        !xs_stanza_add_new(e, condition, XS_NS_STANZAS))
        return NULL;
    if (text && *text) {
        struct xs_stanza *t = xs_stanza_add_new(e, "text", XS_NS_STANZAS);
        if (!t || xs_stanza_set_text(t, text, strlen(text)) != GW_OK)
            return NULL;
    }
    return e;
}

static struct xs_stanza *reply_to(const struct xs_stanza *iq, const char *type)
{
    struct xs_stanza *r = xs_stanza_new("iq", XS_NS_CLIENT);
    if (!r)
        return NULL;
    const char *from = xs_stanza_attr(iq, "from");
    const char *id = xs_stanza_attr(iq, "id");
    if (xs_stanza_set_attr(r, "type", type) != GW_OK ||
        (from && xs_stanza_set_attr(r, "to", from) != GW_OK) ||
        (id && xs_stanza_set_attr(r, "id", id) != GW_OK)) {
        xs_stanza_free(r);
        return NULL;
    }
    return r;
}

struct xs_stanza *xs_iq_result(const struct xs_stanza *iq)
{
    return reply_to(iq, "result");
}

struct xs_stanza *xs_iq_error(const struct xs_stanza *iq, const char *type,
                              const char *condition, const char *text)
{
    struct xs_stanza *r = reply_to(iq, "error");
    if (r && !xs_add_error(r, type, condition, text)) {
        xs_stanza_free(r);
        return NULL;
    }
    return r;
}

/* ---- transport -------------------------------------------------------- */

struct wreq {
    uv_write_t req;
    char data[];
};

static void drop(struct xs_conn *c, int err, const char *why);

static void on_written(uv_write_t *req, int status)
{
    free(req);
}

static int tcp_write(struct xs_conn *c, const void *data, size_t len)
{
    if (!c->tcp_open)
        return GW_EDISCONNECTED;
    struct wreq *w = malloc(sizeof(*w) + len);
    if (!w)
        return GW_ENOMEM;
    memcpy(w->data, data, len);
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
    if (rc != 0) {
        free(w);
        return GW_EIO;
    }
    return GW_OK;
}

static int tls_output(void *ud, const uint8_t *data, size_t len)
{
    return tcp_write(ud, data, len);
}

/* Sends raw bytes on the stream (through TLS once it is up). */
static int send_raw(struct xs_conn *c, const char *data, size_t len)
{
    if (c->tls && !c->tls_handshaking)
        return xs_tls_write(c->tls, data, len);
    return tcp_write(c, data, len);
}

static int send_str(struct xs_conn *c, const char *s)
{
    return send_raw(c, s, strlen(s));
}

static int serialize(const struct xs_conn *c, const struct xs_stanza *st,
                     char **out, size_t *len)
{
    struct xs_buf b;
    xs_buf_init(&b, c->stanza_max);
    int rc = xs_stanza_serialize(st, XS_NS_CLIENT, &b);
    if (rc != GW_OK) {
        xs_buf_close(&b);
        return rc;
    }
    *out = b.data;
    *len = b.len;
    return GW_OK;
}

static bool is_counted(const struct xs_stanza *st)
{
    const char *n = xs_stanza_name(st);
    return strcmp(n, "iq") == 0 || strcmp(n, "message") == 0 ||
           strcmp(n, "presence") == 0;
}

static enum item_kind kind_of(const struct xs_stanza *st)
{
    const char *n = xs_stanza_name(st);
    if (strcmp(n, "message") == 0)
        return KIND_MESSAGE;
    if (strcmp(n, "presence") == 0)
        return KIND_PRESENCE;
    if (strcmp(n, "iq") == 0) {
        const char *t = xs_stanza_attr(st, "type");
        return t && (strcmp(t, "get") == 0 || strcmp(t, "set") == 0)
                   ? KIND_IQ_REQUEST
                   : KIND_IQ_RESPONSE;
    }
    return KIND_OTHER; /* not an XEP-0198 stanza */
}

static void request_ack(struct xs_conn *c)
{
    if (c->sm_enabled && c->unacked.count) {
        send_str(c, "<r xmlns='urn:xmpp:sm:3'/>");
        c->since_r = 0;
    }
}

/* Sends a serialized stanza now; with SM, keeps it (a stanza of any kind
 * but KIND_OTHER) until acked.  Takes data. */
static int send_counted_now(struct xs_conn *c, char *data, size_t len,
                            enum item_kind kind)
{
    int rc = send_raw(c, data, len);
    if (rc == GW_OK && kind != KIND_OTHER && c->sm_enabled) {
        c->sm_out_sent++;
        /* room: see send_serialized */
        queue_push(&c->unacked, data, len, kind);
        if (++c->since_r >= ACK_EVERY)
            request_ack(c);
        return GW_OK;
    }
    free(data);
    return rc;
}

static bool sm_full(const struct xs_conn *c)
{
    return c->sm_enabled && c->unacked.count >= c->unacked.max;
}

/* Sends what waits in the pending queue while online and while the
 * unacked queue has room. */
static void flush_pending(struct xs_conn *c)
{
    struct item it;
    while (c->state == ST_ONLINE && !sm_full(c) && queue_pop(&c->pending, &it))
        send_counted_now(c, it.data, it.len, it.kind);
}

/* Sends a serialized stanza (takes data).  When the unacked queue is full,
 * stanzas wait in the pending queue (in order) until acks make room: every
 * sent stanza stays resendable and the counts stay exact. */
static int send_serialized(struct xs_conn *c, char *data, size_t len,
                           enum item_kind kind)
{
    if (kind != KIND_OTHER &&
        (sm_full(c) || (c->sm_enabled && c->pending.count))) {
        int rc = queue_push(&c->pending, data, len, kind);
        if (rc != GW_OK) {
            GW_LOG(c->log, GW_LOG_WARN, AREA,
                   "send queue full: a stanza was dropped");
            free(data);
            return rc;
        }
        request_ack(c);
        return GW_OK;
    }
    return send_counted_now(c, data, len, kind);
}

/* Sends a stanza during negotiation or when online, without queueing. */
static int send_now(struct xs_conn *c, struct xs_stanza *st)
{
    char *data = NULL;
    size_t len = 0;
    if (!st)
        return GW_ENOMEM; /* a reply that could not be built */
    int rc = serialize(c, st, &data, &len);
    enum item_kind kind = kind_of(st);
    xs_stanza_free(st);
    if (rc != GW_OK)
        return rc;
    return send_serialized(c, data, len, kind);
}

/* ---- iq tracking ------------------------------------------------------ */

static void next_id(struct xs_conn *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "fg%u", ++c->next_id);
}

static int track(struct xs_conn *c, struct xs_stanza *iq, uint32_t timeout,
                 xs_iq_cb cb, void *ud, bool now)
{
    struct iq_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        xs_stanza_free(iq);
        return GW_ENOMEM;
    }
    next_id(c, w->id, sizeof(w->id));
    const char *to = xs_stanza_attr(iq, "to");
    w->to = dup_or_null(to);
    w->cb = cb;
    w->ud = ud;
    w->deadline = now_ms(c) + timeout;
    if (xs_stanza_set_attr(iq, "id", w->id) != GW_OK || (to && !w->to)) {
        free(w->to);
        free(w);
        xs_stanza_free(iq);
        return GW_ENOMEM;
    }
    int rc = now ? send_now(c, iq) : xs_conn_send(c, iq);
    if (rc != GW_OK) {
        free(w->to);
        free(w);
        return rc;
    }
    w->next = c->waits;
    c->waits = w;
    return GW_OK;
}

/* Does the reply's sender match the request's addressee? */
static bool sender_matches(const struct xs_conn *c, const struct iq_wait *w,
                           const char *from)
{
    if (!w->to) {
        if (!from)
            return true;
        char b[XS_JID_MAX + 1];
        return strcasecmp(from, c->account.domain) == 0 ||
               (xs_jid_bare_of(from, b, sizeof(b)) == GW_OK &&
                strcasecmp(b, c->bare) == 0 && !strchr(from, '/'));
    }
    return from && strcasecmp(from, w->to) == 0;
}

static bool complete_iq(struct xs_conn *c, const struct xs_stanza *reply)
{
    const char *id = xs_stanza_attr(reply, "id");
    const char *from = xs_stanza_attr(reply, "from");
    if (!id)
        return false;
    for (struct iq_wait **pp = &c->waits; *pp; pp = &(*pp)->next) {
        struct iq_wait *w = *pp;
        if (strcmp(w->id, id) != 0 || !sender_matches(c, w, from))
            continue;
        *pp = w->next;
        if (w->cb)
            w->cb(w->ud, reply, GW_OK);
        free(w->to);
        free(w);
        return true;
    }
    return false;
}

static void fail_waits(struct xs_conn *c, int err, bool expired_only)
{
    uint64_t now = now_ms(c);
    /* Take the failing waits off the list first: a callback may add waits
     * (a retry that would fail at once again) or free the session. */
    struct iq_wait *failing = NULL, **tail = &failing;
    struct iq_wait **pp = &c->waits;
    while (*pp) {
        struct iq_wait *w = *pp;
        if (expired_only && w->deadline > now) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->next = NULL;
        *tail = w;
        tail = &w->next;
    }
    while (failing) {
        struct iq_wait *w = failing;
        failing = w->next;
        if (w->cb)
            w->cb(w->ud, NULL, err);
        free(w->to);
        free(w);
    }
}

/* ---- negotiation -------------------------------------------------------- */

static void open_stream(struct xs_conn *c)
{
    char hdr[4400];
    snprintf(hdr, sizeof(hdr),
             "<?xml version='1.0'?><stream:stream to='%s' from='%s' "
             "version='1.0' xml:lang='en' xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams'>",
             c->account.domain, c->bare);
    send_str(c, hdr);
}

static void start_tls(struct xs_conn *c, bool direct)
{
    struct xs_tls_config tc = {
        .hostname = c->account.domain,
        .ca_file = c->ca_file,
        .verify = c->verify,
        .alpn = direct ? "xmpp-client" : NULL,
        .output = tls_output,
        .output_ud = c,
        .log = c->log,
    };
    int rc = xs_tls_new(&tc, &c->tls);
    if (rc != GW_OK) {
        drop(c, rc, "cannot set up TLS");
        return;
    }
    c->tls_handshaking = true;
    rc = xs_tls_handshake(c->tls);
    if (rc != GW_OK && rc != GW_EAGAIN)
        drop(c, rc, xs_tls_error(c->tls));
}

static void send_bind(struct xs_conn *c);
static void on_bind(void *ud, const struct xs_stanza *reply, int err);

static void go_online(struct xs_conn *c, bool resumed)
{
    c->state = ST_ONLINE;
    c->backoff_ms = 0;
    c->redirects = 0;
    c->auth_failed = false;
    c->stats.connects++;
    if (resumed)
        c->stats.resumes++;
    GW_LOG(c->log, GW_LOG_NOTICE, AREA, "online as %s (%s, %s%s)", c->full_jid,
           xs_tls_version(c->tls),
           c->sm_enabled || resumed ? "stream management"
                                    : "no stream management",
           resumed ? ", resumed" : "");
    /* Stanzas queued while offline go out now. */
    flush_pending(c);
    if (c->cbs.online)
        c->cbs.online(c->ud, c->full_jid, resumed);
}

static void send_presence(struct xs_conn *c)
{
    struct xs_stanza *p = xs_stanza_new("presence", XS_NS_CLIENT);
    if (!p)
        return;
    if (c->status) {
        struct xs_stanza *s = xs_stanza_add_new(p, "status", NULL);
        if (s)
            xs_stanza_set_text(s, c->status, strlen(c->status));
    }
    send_now(c, p);
}

static void after_bind(struct xs_conn *c)
{
    c->bound = true;
    /* Unacked messages of a session that could not be resumed are sent
     * again, ahead of anything queued since.  The rest meant something
     * only to the old session: its presence (the new session sends its
     * own), answers to its requests, and iq requests, whose callers were
     * told "disconnected" when it dropped. */
    struct queue old = c->unacked;
    queue_init(&c->unacked, UNACKED_MAX);
    struct queue fresh;
    queue_init(&fresh, PENDING_MAX + UNACKED_MAX);
    struct item it;
    size_t resent = 0, forgotten = 0;
    while (queue_pop(&old, &it)) {
        if (it.kind == KIND_MESSAGE) {
            queue_push(&fresh, it.data, it.len, it.kind);
            resent++;
        } else {
            free(it.data);
            forgotten++;
        }
    }
    while (queue_pop(&c->pending, &it))
        if (queue_push(&fresh, it.data, it.len, it.kind) != GW_OK)
            free(it.data);
    queue_close(&old);
    queue_close(&c->pending);
    c->pending = fresh;
    if (resent || forgotten)
        GW_LOG(c->log, GW_LOG_NOTICE, AREA,
               "resending %zu unacknowledged message(s); %zu stanza(s) of "
               "the old session not resent",
               resent, forgotten);
    c->sm_enabled = false;
    free(c->sm_id);
    c->sm_id = NULL;
    if (c->offers_sm) {
        send_str(c, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
        c->sm_enabled = true; /* count from the moment <enable/> is sent */
        c->sm_out_sent = 0;
        c->sm_out_acked = 0;
        c->since_r = 0;
    }
    send_presence(c);
    go_online(c, false);
}

static void on_session(void *ud, const struct xs_stanza *reply, int err)
{
    struct xs_conn *c = ud;
    if (!reply || strcmp(xs_stanza_attr(reply, "type"), "result") != 0) {
        drop(c, err ? err : GW_EPROTO, "session establishment failed");
        return;
    }
    after_bind(c);
}

static void on_bind(void *ud, const struct xs_stanza *reply, int err)
{
    struct xs_conn *c = ud;
    const char *type = reply ? xs_stanza_attr(reply, "type") : NULL;
    struct xs_stanza *bind =
        reply ? xs_stanza_child(reply, "bind", NS_BIND) : NULL;
    struct xs_stanza *jid = bind ? xs_stanza_child(bind, "jid", NULL) : NULL;
    if (!type || strcmp(type, "result") != 0 || !jid) {
        drop(c, err ? err : GW_EPROTO, "resource binding failed");
        return;
    }
    free(c->full_jid);
    c->full_jid = strdup(xs_stanza_text(jid));
    if (!c->full_jid) {
        drop(c, GW_ENOMEM, "out of memory");
        return;
    }
    if (c->session_required) {
        struct xs_stanza *iq = xs_stanza_new("iq", XS_NS_CLIENT);
        if (!iq || xs_stanza_set_attr(iq, "type", "set") != GW_OK ||
            !xs_stanza_add_new(iq, "session", NS_SESSION)) {
            xs_stanza_free(iq);
            drop(c, GW_ENOMEM, "out of memory");
            return;
        }
        track(c, iq, c->ping_timeout_ms, on_session, c, true);
        return;
    }
    after_bind(c);
}

static void send_bind(struct xs_conn *c)
{
    struct xs_stanza *iq = xs_stanza_new("iq", XS_NS_CLIENT);
    struct xs_stanza *bind = iq ? xs_stanza_add_new(iq, "bind", NS_BIND) : NULL;
    if (!bind || xs_stanza_set_attr(iq, "type", "set") != GW_OK) {
        xs_stanza_free(iq);
        drop(c, GW_ENOMEM, "out of memory");
        return;
    }
    if (c->resource) {
        struct xs_stanza *r = xs_stanza_add_new(bind, "resource", NULL);
        if (r)
            xs_stanza_set_text(r, c->resource, strlen(c->resource));
    }
    /* Counting has not started yet: bind is never an SM stanza. */
    bool sm = c->sm_enabled;
    c->sm_enabled = false;
    track(c, iq, c->ping_timeout_ms, on_bind, c, true);
    c->sm_enabled = sm;
}

static void on_features(struct xs_conn *c, const struct xs_stanza *f)
{
    if (!c->secure) {
        if (!xs_stanza_child(f, "starttls", NS_TLS)) {
            drop(c, GW_ETLS, "the server does not offer STARTTLS");
            return;
        }
        send_str(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        return;
    }
    if (!c->authed) {
        const struct xs_stanza *mechs =
            xs_stanza_child(f, "mechanisms", NS_SASL);
        const char *names[16];
        size_t n = 0;
        for (const struct xs_stanza *m = mechs ? xs_stanza_first_child(mechs)
                                               : NULL;
             m && n < 16; m = xs_stanza_next(m))
            if (strcmp(xs_stanza_name(m), "mechanism") == 0)
                names[n++] = xs_stanza_text(m);
        struct xs_sasl_offer offer = {
            .offered = names,
            .n_offered = n,
            .allowed = c->sasl_allowed,
            .tls = true,
            .cb = xs_tls_cb_type(c->tls),
            .allow_plain = c->allow_plain,
        };
        enum xs_sasl_mech mech;
        enum xs_cb_type cb;
        if (xs_sasl_select(&offer, &mech, &cb) != GW_OK) {
            c->auth_failed = true;
            drop(c, GW_EAUTH, "no acceptable SASL mechanism offered");
            return;
        }
        struct xs_cb_data cbd = {0};
        if (cb != XS_CB_NONE &&
            (mech == XS_SASL_SCRAM_SHA_256_PLUS ||
             mech == XS_SASL_SCRAM_SHA_1_PLUS) &&
            xs_tls_channel_binding(c->tls, cb, &cbd) != GW_OK) {
            drop(c, GW_ETLS, "no channel binding data");
            return;
        }
        xs_sasl_free(c->sasl);
        c->sasl = NULL;
        int rc = xs_sasl_new(mech, c->account.local, c->password, NULL, cb,
                             &cbd, &c->sasl);
        const uint8_t *out;
        size_t out_len;
        if (rc == GW_OK)
            rc = xs_sasl_step(c->sasl, NULL, 0, &out, &out_len);
        if (rc != GW_OK) {
            drop(c, rc, "SASL setup failed");
            return;
        }
        GW_LOG(c->log, GW_LOG_INFO, AREA, "authenticating with %s",
               xs_sasl_mech_name(mech));
        size_t cap = 4 * (out_len / 3 + 1) + 1;
        char *b64 = malloc(cap);
        struct xs_buf msg;
        xs_buf_init(&msg, cap + 128);
        if (!b64 || xs_sasl_b64_encode(out, out_len, b64, cap) != GW_OK ||
            xs_buf_append_str(&msg, "<auth xmlns='" NS_SASL "' mechanism='") !=
                GW_OK ||
            xs_buf_append_str(&msg, xs_sasl_mech_name(mech)) != GW_OK ||
            xs_buf_append_str(&msg, "'>") != GW_OK ||
            xs_buf_append_str(&msg, out_len ? b64 : "=") != GW_OK ||
            xs_buf_append_str(&msg, "</auth>") != GW_OK) {
            free(b64);
            xs_buf_close(&msg);
            drop(c, GW_ENOMEM, "out of memory");
            return;
        }
        send_raw(c, msg.data, msg.len);
        explicit_bzero(msg.data, msg.len);
        explicit_bzero(b64, cap);
        free(b64);
        xs_buf_close(&msg);
        return;
    }
    const struct xs_stanza *bind = xs_stanza_child(f, "bind", NS_BIND);
    const struct xs_stanza *sess = xs_stanza_child(f, "session", NS_SESSION);
    c->offers_sm = xs_stanza_child(f, "sm", XS_NS_SM) != NULL;
    c->session_required =
        sess && !xs_stanza_child(sess, "optional", NS_SESSION);
    if (c->sm_id && c->sm_resumable && c->offers_sm) {
        char buf[1200];
        snprintf(buf, sizeof(buf),
                 "<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%u'/>", c->sm_id,
                 c->sm_in);
        c->resuming = true;
        send_str(c, buf);
        return;
    }
    if (!bind) {
        drop(c, GW_EPROTO, "the server offers no resource binding");
        return;
    }
    /* A new session: nothing counts before the next <enable/> (an RFC 3921
     * session iq must not land in the unacked queue of the old one). */
    c->sm_enabled = false;
    send_bind(c);
}

/* Ends our stream before a drop that is our decision (authentication
 * failed): </stream:stream>, TLS close_notify, and the drop shuts the
 * socket down after them instead of closing it at once. */
static void close_stream(struct xs_conn *c)
{
    send_str(c, "</stream:stream>");
    if (c->tls && !c->tls_handshaking)
        xs_tls_bye(c->tls);
    c->graceful = true;
}

static void sasl_reply(struct xs_conn *c, const struct xs_stanza *st)
{
    const char *name = xs_stanza_name(st);
    const char *text = xs_stanza_text(st);
    uint8_t in[XS_SASL_MSG_MAX];
    size_t in_len = 0;
    if (strcmp(name, "failure") == 0) {
        const struct xs_stanza *cond = xs_stanza_first_child(st);
        const struct xs_stanza *t = xs_stanza_child(st, "text", NULL);
        c->auth_failed = true;
        c->stats.auth_failures++;
        GW_LOG(c->log, GW_LOG_ERROR, AREA,
               "authentication of %s failed: %s%s%s", c->bare,
               cond ? xs_stanza_name(cond) : "unknown", t ? ": " : "",
               t ? xs_stanza_text(t) : "");
        close_stream(c);
        drop(c, GW_EAUTH, NULL);
        return;
    }
    if (!c->sasl || xs_sasl_b64_decode(text, strlen(text), in, sizeof(in),
                                       &in_len) != GW_OK) {
        drop(c, GW_EPROTO, "malformed SASL data");
        return;
    }
    if (strcmp(name, "success") == 0) {
        int rc = xs_sasl_finish(c->sasl, in, in_len);
        if (rc != GW_OK) {
            c->auth_failed = true;
            GW_LOG(c->log, GW_LOG_ERROR, AREA,
                   "the server failed to prove the password: %s",
                   xs_sasl_error(c->sasl));
            close_stream(c);
            drop(c, rc, NULL);
            return;
        }
        xs_sasl_free(c->sasl);
        c->sasl = NULL;
        c->authed = true;
        xs_parser_reset(c->parser);
        open_stream(c);
        return;
    }
    if (strcmp(name, "challenge") != 0) {
        drop(c, GW_EPROTO, "unexpected SASL element");
        return;
    }
    const uint8_t *out;
    size_t out_len;
    int rc = xs_sasl_step(c->sasl, in, in_len, &out, &out_len);
    if (rc != GW_OK) {
        c->auth_failed = rc == GW_EAUTH;
        GW_LOG(c->log, GW_LOG_ERROR, AREA, "SASL: %s", xs_sasl_error(c->sasl));
        close_stream(c);
        drop(c, rc, NULL);
        return;
    }
    size_t cap = 4 * (out_len / 3 + 1) + 1;
    char *b64 = malloc(cap);
    struct xs_buf msg;
    xs_buf_init(&msg, cap + 64);
    if (b64 && xs_sasl_b64_encode(out, out_len, b64, cap) == GW_OK &&
        xs_buf_append_str(&msg, "<response xmlns='" NS_SASL "'>") == GW_OK &&
        xs_buf_append_str(&msg, b64) == GW_OK &&
        xs_buf_append_str(&msg, "</response>") == GW_OK)
        send_raw(c, msg.data, msg.len);
    if (msg.data)
        explicit_bzero(msg.data, msg.len);
    if (b64)
        explicit_bzero(b64, cap);
    free(b64);
    xs_buf_close(&msg);
}

static bool parse_h(const char *h_text, uint32_t *out)
{
    char *end;
    if (!h_text || !*h_text || *h_text == '-')
        return false;
    unsigned long h = strtoul(h_text, &end, 10);
    if (*end || h > UINT32_MAX)
        return false;
    *out = (uint32_t)h;
    return true;
}

/* Forgets the unacked stanzas the server says it handled (h counts mod
 * 2^32).  Returns the number forgotten, or -1 when h is more than was
 * sent. */
static long sm_trim(struct xs_conn *c, uint32_t h)
{
    uint32_t newly = h - c->sm_out_acked; /* mod 2^32 */
    if (newly > c->unacked.count)
        return -1;
    struct item it;
    for (uint32_t i = 0; i < newly && queue_pop(&c->unacked, &it); i++)
        free(it.data);
    c->sm_out_acked = h;
    return (long)newly;
}

static void sm_acked(struct xs_conn *c, const char *h_text)
{
    uint32_t h;
    if (!parse_h(h_text, &h))
        return;
    if (sm_trim(c, h) < 0) {
        char buf[256];
        snprintf(buf, sizeof(buf),
                 "<stream:error><undefined-condition xmlns='" NS_STREAM_ERR
                 "'/><handled-count-too-high xmlns='urn:xmpp:sm:3' h='%lu' "
                 "send-count='%u'/></stream:error></stream:stream>",
                 (unsigned long)h, c->sm_out_sent);
        send_str(c, buf);
        drop(c, GW_EPROTO, "the server acked more stanzas than were sent");
        return;
    }
    flush_pending(c); /* acks made room */
}

static void sm_element(struct xs_conn *c, const struct xs_stanza *st)
{
    const char *name = xs_stanza_name(st);
    if (strcmp(name, "r") == 0) {
        char buf[64];
        snprintf(buf, sizeof(buf), "<a xmlns='urn:xmpp:sm:3' h='%u'/>",
                 c->sm_in);
        send_str(c, buf);
    } else if (strcmp(name, "a") == 0) {
        sm_acked(c, xs_stanza_attr(st, "h"));
    } else if (strcmp(name, "enabled") == 0) {
        const char *id = xs_stanza_attr(st, "id");
        const char *resume = xs_stanza_attr(st, "resume");
        free(c->sm_id);
        c->sm_id = dup_or_null(id);
        c->sm_resumable =
            id && resume &&
            (strcmp(resume, "true") == 0 || strcmp(resume, "1") == 0);
        c->sm_in = 0;
    } else if (strcmp(name, "resumed") == 0) {
        if (!c->resuming) {
            drop(c, GW_EPROTO, "<resumed/> without <resume/>");
            return;
        }
        c->resuming = false;
        c->sm_enabled = true;
        c->bound = true;
        sm_acked(c, xs_stanza_attr(st, "h"));
        if (c->state == ST_CLOSING || c->state == ST_DOWN)
            return;
        /* Resend what the server did not get, in order. */
        struct queue again = c->unacked;
        queue_init(&c->unacked, UNACKED_MAX);
        struct item it;
        c->sm_out_sent = c->sm_out_acked;
        while (queue_pop(&again, &it))
            send_counted_now(c, it.data, it.len, it.kind);
        queue_close(&again);
        go_online(c, true);
    } else if (strcmp(name, "failed") == 0) {
        if (c->resuming) {
            /* Resumption failed: bind a new session (no re-auth).  The h of
             * an expired session (Prosody keeps it) tells which unacked
             * stanzas it did handle: they are not sent again. */
            c->resuming = false;
            GW_LOG(c->log, GW_LOG_NOTICE, AREA,
                   "stream resumption refused; binding a new session");
            uint32_t h;
            size_t before = c->unacked.count;
            long handled;
            if (parse_h(xs_stanza_attr(st, "h"), &h) &&
                (handled = sm_trim(c, h)) >= 0)
                GW_LOG(c->log, GW_LOG_INFO, AREA,
                       "the server had handled %ld of %zu unacknowledged "
                       "stanza(s)",
                       handled, before);
            free(c->sm_id);
            c->sm_id = NULL;
            c->sm_enabled = false;
            send_bind(c);
        } else {
            /* <enable/> refused: what was sent went over a live stream
             * without SM; there is nothing to resend later. */
            c->sm_enabled = false;
            queue_close(&c->unacked);
            GW_LOG(c->log, GW_LOG_WARN, AREA,
                   "stream management refused by the server");
        }
    }
}

static void stream_error(struct xs_conn *c, const struct xs_stanza *st)
{
    const char *cond = "undefined-condition";
    const char *text = "";
    for (const struct xs_stanza *ch = xs_stanza_first_child(st); ch;
         ch = xs_stanza_next(ch)) {
        if (strcmp(xs_stanza_name(ch), "text") == 0)
            text = xs_stanza_text(ch);
        else if (xs_stanza_ns(ch) &&
                 strcmp(xs_stanza_ns(ch), NS_STREAM_ERR) == 0)
            cond = xs_stanza_name(ch);
    }
    GW_LOG(c->log, GW_LOG_ERROR, AREA, "stream error from server: %s%s%s", cond,
           *text ? ": " : "", text);
    if (strcmp(cond, "see-other-host") == 0) {
        const struct xs_stanza *e =
            xs_stanza_child(st, "see-other-host", NS_STREAM_ERR);
        const char *where = e ? xs_stanza_text(e) : "";
        char host[256] = "";
        unsigned port = 0;
        if (where[0] == '[') {
            sscanf(where, "[%255[^]]]:%u", host, &port);
        } else {
            const char *colon = strrchr(where, ':');
            size_t len = colon ? (size_t)(colon - where) : strlen(where);
            if (len < sizeof(host)) {
                memcpy(host, where, len);
                host[len] = '\0';
            }
            if (colon)
                port = (unsigned)strtoul(colon + 1, NULL, 10);
        }
        if (host[0] && port <= 65535 && c->redirects >= MAX_REDIRECTS) {
            GW_LOG(c->log, GW_LOG_WARN, AREA,
                   "not following more than %d redirects without a login",
                   MAX_REDIRECTS);
        } else if (host[0] && port <= 65535) {
            c->redirects++;
            GW_LOG(c->log, GW_LOG_NOTICE, AREA, "redirected to %s:%u", host,
                   port ? port : 5222);
            memcpy(c->redirect, host, sizeof(c->redirect));
            c->redirect_port = (uint16_t)(port ? port : 5222);
            c->backoff_ms = 0;
        }
    }
    drop(c, GW_EPROTO, NULL);
}

/* ---- routing of stanzas when online ------------------------------------ */

static void answer_disco(struct xs_conn *c, const struct xs_stanza *iq)
{
    const struct xs_stanza *q = xs_stanza_first_child(iq);
    if (xs_stanza_attr(q, "node")) {
        send_now(c, xs_iq_error(iq, "cancel", "item-not-found", NULL));
        return;
    }
    struct xs_stanza *r = xs_iq_result(iq);
    struct xs_stanza *query =
        r ? xs_stanza_add_new(r, "query", XS_NS_DISCO_INFO) : NULL;
    struct xs_stanza *id =
        query ? xs_stanza_add_new(query, "identity", NULL) : NULL;
    if (!id) {
        xs_stanza_free(r);
        return;
    }
    xs_stanza_set_attr(id, "category", "client");
    xs_stanza_set_attr(id, "type", "bot");
    xs_stanza_set_attr(id, "name", "fieldgate");
    for (size_t i = 0; i < c->n_features; i++) {
        struct xs_stanza *f = xs_stanza_add_new(query, "feature", NULL);
        if (f)
            xs_stanza_set_attr(f, "var", c->features[i]);
    }
    send_now(c, r);
}

static void answer_version(struct xs_conn *c, const struct xs_stanza *iq)
{
    struct xs_stanza *r = xs_iq_result(iq);
    struct xs_stanza *q =
        r ? xs_stanza_add_new(r, "query", XS_NS_VERSION) : NULL;
    struct xs_stanza *n = q ? xs_stanza_add_new(q, "name", NULL) : NULL;
    struct xs_stanza *v = q ? xs_stanza_add_new(q, "version", NULL) : NULL;
    if (!n || !v) {
        xs_stanza_free(r);
        return;
    }
    xs_stanza_set_text(n, "fieldgate", 9);
    xs_stanza_set_text(v, FG_VERSION, strlen(FG_VERSION));
    send_now(c, r);
}

static void route_iq(struct xs_conn *c, const struct xs_stanza *iq)
{
    const char *type = xs_stanza_attr(iq, "type");
    if (!type) {
        send_now(c,
                 xs_iq_error(iq, "modify", "bad-request", "iq without type"));
        return;
    }
    if (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) {
        complete_iq(c, iq); /* never answered */
        return;
    }
    if (strcmp(type, "get") != 0 && strcmp(type, "set") != 0) {
        send_now(c,
                 xs_iq_error(iq, "modify", "bad-request", "unknown iq type"));
        return;
    }
    const struct xs_stanza *child = xs_stanza_first_child(iq);
    if (!child || xs_stanza_next(child)) {
        send_now(c, xs_iq_error(iq, "modify", "bad-request",
                                "an iq get/set has exactly one child"));
        return;
    }
    const char *ns = xs_stanza_ns(child);
    if (ns && strcmp(type, "get") == 0) {
        if (strcmp(ns, XS_NS_PING) == 0) {
            send_now(c, xs_iq_result(iq));
            return;
        }
        if (strcmp(ns, XS_NS_DISCO_INFO) == 0) {
            answer_disco(c, iq);
            return;
        }
        if (strcmp(ns, XS_NS_VERSION) == 0) {
            answer_version(c, iq);
            return;
        }
    }
    for (struct iq_route *r = c->routes; ns && r; r = r->next) {
        if (strcmp(r->ns, ns) == 0) {
            r->handler(r->ud, c, iq);
            return;
        }
    }
    send_now(c, xs_iq_error(iq, "cancel", "service-unavailable", NULL));
}

static void send_presence_type(struct xs_conn *c, const char *to,
                               const char *type)
{
    struct xs_stanza *p = xs_stanza_new("presence", XS_NS_CLIENT);
    if (!p || xs_stanza_set_attr(p, "to", to) != GW_OK ||
        xs_stanza_set_attr(p, "type", type) != GW_OK) {
        xs_stanza_free(p);
        return;
    }
    send_now(c, p);
}

static void route_presence(struct xs_conn *c, const struct xs_stanza *p)
{
    const char *type = xs_stanza_attr(p, "type");
    const char *from = xs_stanza_attr(p, "from");
    char bare[XS_JID_MAX + 1];
    if (!type || !from || xs_jid_bare_of(from, bare, sizeof(bare)) != GW_OK) {
        if (c->cbs.stanza)
            c->cbs.stanza(c->ud, p);
        return;
    }
    if (strcmp(type, "subscribe") == 0) {
        enum xs_access a =
            c->cbs.access ? c->cbs.access(c->ud, bare) : XS_ACCESS_NONE;
        if (a == XS_ACCESS_NONE) {
            GW_LOG(c->log, GW_LOG_NOTICE, AREA,
                   "presence subscription from %s refused (not in access)",
                   bare);
            send_presence_type(c, bare, "unsubscribed");
            return;
        }
        GW_LOG(c->log, GW_LOG_INFO, AREA,
               "presence subscription from %s approved (%s)", bare,
               a == XS_ACCESS_CONTROL ? "control" : "read");
        send_presence_type(c, bare, "subscribed");
        send_presence_type(c, bare, "subscribe");
        return;
    }
    if (strcmp(type, "unsubscribe") == 0) {
        send_presence_type(c, bare, "unsubscribed");
        return;
    }
    if (strcmp(type, "subscribed") == 0 || strcmp(type, "unsubscribed") == 0)
        return;
    if (c->cbs.stanza)
        c->cbs.stanza(c->ud, p);
}

/* ---- parser callbacks -------------------------------------------------- */

static void on_stream_start(void *data, const struct xs_stream_info *info)
{
    struct xs_conn *c = data;
    (void)info;
    c->last_rx = now_ms(c);
}

/* A first-level element the server may not send yet: SASL before TLS, SM
 * elements and stanzas before authentication (they would make the session
 * bind, answer or go online in the clear). */
static bool too_early(const struct xs_conn *c, const char *ns)
{
    if (strcmp(ns, NS_SASL) == 0)
        return !c->secure;
    if (strcmp(ns, XS_NS_SM) == 0 || strcmp(ns, XS_NS_CLIENT) == 0)
        return !c->authed;
    return false;
}

static void on_stanza(void *data, struct xs_stanza *st)
{
    struct xs_conn *c = data;
    c->last_rx = now_ms(c);
    const char *name = xs_stanza_name(st);
    const char *ns = xs_stanza_ns(st);
    if (!ns)
        ns = "";
    if (c->state != ST_NEGOTIATING && c->state != ST_ONLINE) {
        /* Dropped or closing earlier in this feed: the rest is stale. */
    } else if (too_early(c, ns)) {
        send_str(c,
                 "<stream:error><unsupported-stanza-type xmlns='" NS_STREAM_ERR
                 "'/></stream:error></stream:stream>");
        drop(c, GW_EPROTO,
             c->secure ? "the server sent a stanza before "
                         "authentication"
                       : "the server sent a stanza before TLS");
    } else if (strcmp(ns, XS_NS_STREAMS) == 0) {
        if (strcmp(name, "features") == 0)
            on_features(c, st);
        else if (strcmp(name, "error") == 0)
            stream_error(c, st);
    } else if (strcmp(ns, NS_TLS) == 0) {
        if (strcmp(name, "proceed") == 0 && !c->tls) {
            xs_parser_reset(c->parser);
            start_tls(c, false);
        } else {
            drop(c, GW_ETLS, "the server refused STARTTLS");
        }
    } else if (strcmp(ns, NS_SASL) == 0) {
        sasl_reply(c, st);
    } else if (strcmp(ns, XS_NS_SM) == 0) {
        sm_element(c, st);
    } else if (strcmp(ns, XS_NS_CLIENT) == 0 && is_counted(st)) {
        if (c->sm_enabled && c->sm_id)
            c->sm_in++;
        if (strcmp(name, "iq") == 0)
            route_iq(c, st);
        else if (c->state != ST_ONLINE)
            ; /* not yet ours to deliver */
        else if (strcmp(name, "presence") == 0)
            route_presence(c, st);
        else if (c->cbs.stanza)
            c->cbs.stanza(c->ud, st);
    }
    xs_stanza_free(st);
}

/* Logs a dropped stanza at most once per sender (bare JID: rotating
 * resources do not help) per DROP_LOG_MS, from a bounded table of senders
 * (the least recently logged one replaced), and at most DROP_LOG_LINES
 * lines per DROP_LOG_MS in all (rotating bare JIDs do not help either).
 * The rest is counted and summed up by log_drop_summary (on_tick). */
static void log_dropped(struct xs_conn *c, const struct xs_dropped_info *d)
{
    const char *from = d->from ? d->from : "(the server)";
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the bare JID */
    for (const char *p = from; *p && *p != '/'; p++) {
        uint8_t ch = (uint8_t)*p;
        if (ch >= 'A' && ch <= 'Z')
            ch = (uint8_t)(ch - 'A' + 'a');
        h = (h ^ ch) * 1099511628211ull;
    }
    uint64_t now = now_ms(c) + 1; /* 0 marks a free slot */
    struct drop_seen *slot = NULL, *oldest = &c->drop_seen[0];
    for (size_t i = 0; i < DROP_LOG_SLOTS; i++) {
        struct drop_seen *e = &c->drop_seen[i];
        if (e->last && e->hash == h) {
            slot = e;
            break;
        }
        if (e->last < oldest->last)
            oldest = e;
    }
    if (slot && now - slot->last < DROP_LOG_MS) {
        slot->suppressed++;
        c->drops_suppressed++;
        return;
    }
    if (!c->drop_window_at || now - c->drop_window_at >= DROP_LOG_MS) {
        c->drop_window_at = now;
        c->drop_lines = 0;
    }
    if (c->drop_lines >= DROP_LOG_LINES) {
        c->drops_suppressed++;
        return;
    }
    uint32_t before = slot ? slot->suppressed : 0;
    if (!slot) {
        slot = oldest;
        slot->hash = h;
    }
    slot->last = now;
    slot->suppressed = 0;
    char more[64] = "";
    if (before)
        snprintf(more, sizeof(more), " (%u more since the last line)", before);
    GW_LOG(c->log, GW_LOG_WARN, AREA,
           "dropped a <%.32s/> from %.200s: %s (%zu bytes)%s", d->name, from,
           d->reason, d->wire_bytes, more);
    if (++c->drop_lines == DROP_LOG_LINES)
        GW_LOG(c->log, GW_LOG_WARN, AREA,
               "%d lines about dropped stanzas in %d s: further drops are "
               "counted, and summed up within %d s",
               DROP_LOG_LINES, DROP_LOG_MS / 1000, DROP_LOG_MS / 1000);
}

/* Logs how many dropped stanzas went unlogged (called every tick). */
static void log_drop_summary(struct xs_conn *c)
{
    uint64_t now = now_ms(c);
    if (now - c->drop_summary_at < DROP_LOG_MS)
        return;
    c->drop_summary_at = now;
    if (!c->drops_suppressed)
        return;
    GW_LOG(c->log, GW_LOG_WARN, AREA,
           "%llu more stanza(s) dropped by the parser's limits were not "
           "logged (suppressed) in the last %d s",
           (unsigned long long)c->drops_suppressed, DROP_LOG_MS / 1000);
    c->drops_suppressed = 0;
}

/* The parser skipped a top-level element that broke a per-stanza limit
 * (xs_parser.h): the stream goes on.  A stanza counts as handled for
 * XEP-0198 (so the server does not redeliver it at every login), and an iq
 * get/set gets an error: policy-violation (modify) for every limit, since
 * the sender must change the stanza (resource-constraint would say "wait"
 * and invite the same stanza again).  Errors, results, messages and
 * presences are never answered (no error loops).  Anything else (stream
 * features, SASL, SM elements) comes from the server itself and cannot be
 * skipped without stalling the stream: it ends the stream as before. */
static void on_stanza_dropped(void *data, const struct xs_dropped_info *d)
{
    struct xs_conn *c = data;
    c->last_rx = now_ms(c);
    if (c->state != ST_NEGOTIATING && c->state != ST_ONLINE)
        return;
    bool stanza =
        strcmp(d->ns, XS_NS_CLIENT) == 0 &&
        (strcmp(d->name, "iq") == 0 || strcmp(d->name, "message") == 0 ||
         strcmp(d->name, "presence") == 0);
    if (!stanza || !c->authed) {
        send_str(c, "<stream:error><policy-violation xmlns='" NS_STREAM_ERR
                    "'/></stream:error></stream:stream>");
        GW_LOG(c->log, GW_LOG_ERROR, AREA,
               "the server sent an element over the limits: %s", d->reason);
        drop(c, GW_ELIMIT, NULL);
        return;
    }
    c->stats.dropped_stanzas++;
    if (c->sm_enabled && c->sm_id)
        c->sm_in++;
    log_dropped(c, d);
    if (strcmp(d->name, "iq") != 0 || !d->type || !d->id ||
        (strcmp(d->type, "get") != 0 && strcmp(d->type, "set") != 0))
        return;
    struct xs_stanza *r = xs_stanza_new("iq", XS_NS_CLIENT);
    if (!r || xs_stanza_set_attr(r, "type", "error") != GW_OK ||
        xs_stanza_set_attr(r, "id", d->id) != GW_OK ||
        (d->from && xs_stanza_set_attr(r, "to", d->from) != GW_OK) ||
        !xs_add_error(r, "modify", "policy-violation", d->reason)) {
        xs_stanza_free(r);
        return;
    }
    send_now(c, r);
}

static void on_stream_end(void *data)
{
    struct xs_conn *c = data;
    drop(c, GW_ECLOSED, "the server closed the stream");
}

static void on_parse_error(void *data, const char *condition, const char *text)
{
    struct xs_conn *c = data;
    if (c->state != ST_NEGOTIATING && c->state != ST_ONLINE)
        return;
    char buf[512];
    snprintf(buf, sizeof(buf),
             "<stream:error><%s xmlns='" NS_STREAM_ERR
             "'/></stream:error></stream:stream>",
             condition);
    send_str(c, buf);
    GW_LOG(c->log, GW_LOG_ERROR, AREA, "bad XML from server (%s): %s",
           condition, text);
    drop(c, GW_EPROTO, NULL);
}

/* ---- reading ------------------------------------------------------------ */

static void feed(struct xs_conn *c, const char *data, size_t len)
{
    if (!c->parser || len == 0)
        return;
    xs_parser_feed(c->parser, data, len);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    buf->base = malloc(16384);
    buf->len = buf->base ? 16384 : 0;
}

static void on_tls_up(struct xs_conn *c)
{
    c->tls_handshaking = false;
    c->secure = true;
    GW_LOG(c->log, GW_LOG_INFO, AREA, "TLS up (%s)%s", xs_tls_version(c->tls),
           c->verify ? "" : ", certificate NOT verified");
    open_stream(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct xs_conn *c = s->data;
    unsigned gen = c->gen;
    if (nread < 0) {
        free(buf->base);
        drop(c, nread == UV_EOF ? GW_ECLOSED : GW_EIO,
             nread == UV_EOF ? "the server closed the connection"
                             : uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || c->state == ST_CLOSING) {
        free(buf->base);
        return;
    }
    c->last_rx = now_ms(c);
    if (!c->tls) {
        feed(c, buf->base, (size_t)nread);
        free(buf->base);
        return;
    }
    int rc = xs_tls_feed(c->tls, buf->base, (size_t)nread);
    free(buf->base);
    if (rc != GW_OK) {
        drop(c, rc, "TLS input overflow");
        return;
    }
    if (c->tls_handshaking) {
        rc = xs_tls_handshake(c->tls);
        if (rc == GW_EAGAIN)
            return;
        if (rc != GW_OK) {
            GW_LOG(c->log, GW_LOG_ERROR, AREA, "TLS handshake failed: %s",
                   xs_tls_error(c->tls));
            if (c->verify)
                c->auth_failed = true; /* retry slowly: it will not heal */
            drop(c, rc, NULL);
            return;
        }
        on_tls_up(c);
        if (gen != c->gen)
            return;
    }
    char plain[16384];
    for (;;) {
        size_t got = 0;
        rc = xs_tls_read(c->tls, plain, sizeof(plain), &got);
        if (rc == GW_EAGAIN)
            break;
        if (rc != GW_OK) {
            drop(c, rc == GW_ECLOSED ? GW_ECLOSED : rc,
                 rc == GW_ECLOSED ? "the server closed TLS"
                                  : xs_tls_error(c->tls));
            return;
        }
        feed(c, plain, got);
        if (gen != c->gen || c->state == ST_CLOSING)
            return;
    }
}

/* ---- connecting ------------------------------------------------------- */

static void try_next_address(struct xs_conn *c);
static void try_candidate(struct xs_conn *c);
static void schedule_retry(struct xs_conn *c);

static void on_connected(uv_connect_t *req, int status)
{
    struct xs_conn *c = req->data;
    if (c->state == ST_CLOSING || status == UV_ECANCELED)
        return; /* the socket is already being closed (timeout, free) */
    if (status != 0) {
        GW_LOG(c->log, GW_LOG_DEBUG, AREA, "connect: %s", uv_strerror(status));
        /* Close this socket and try the next address. */
        drop(c, GW_EDISCONNECTED, NULL);
        return;
    }
    c->state = ST_NEGOTIATING;
    /* Stanzas are small and often sent back to back (an iq result, then a
     * message): without TCP_NODELAY, Nagle + the peer's delayed ACK hold
     * the second one ~40 ms. */
    uv_tcp_nodelay(&c->tcp, 1);
    c->attempt_start = now_ms(c);
    c->last_rx = c->attempt_start;
    struct xs_parser_opts po = {.max_stanza_bytes = c->stanza_max,
                                .content_ns = XS_NS_CLIENT};
    struct xs_parser_cbs pc = {.stream_start = on_stream_start,
                               .stanza = on_stanza,
                               .stream_end = on_stream_end,
                               .error = on_parse_error,
                               .stanza_dropped = on_stanza_dropped};
    c->parser = xs_parser_new(&pc, c, &po);
    if (!c->parser) {
        drop(c, GW_ENOMEM, "out of memory");
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (c->cur_direct)
        start_tls(c, true);
    else
        open_stream(c);
}

static void free_addrs(struct xs_conn *c)
{
    if (c->addrs)
        uv_freeaddrinfo(c->addrs);
    c->addrs = c->addr = NULL;
}

static void try_next_address(struct xs_conn *c)
{
    while (c->addr) {
        struct addrinfo *ai = c->addr;
        c->addr = ai->ai_next;
        if (uv_tcp_init(c->loop, &c->tcp) != 0)
            continue;
        c->tcp.data = c;
        c->tcp_open = true;
        c->open_handles++;
        c->state = ST_CONNECTING;
        c->attempt_start = now_ms(c); /* on_tick bounds the connect too */
        c->connect_req.data = c;
        if (uv_tcp_connect(&c->connect_req, &c->tcp, ai->ai_addr,
                           on_connected) == 0)
            return;
        drop(c, GW_EDISCONNECTED, NULL);
        return;
    }
    free_addrs(c);
    c->cand++;
    try_candidate(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct xs_conn *c = req->data;
    c->gai_busy = false;
    c->open_handles--;
    if (c->state == ST_CLOSING) {
        if (res)
            uv_freeaddrinfo(res);
        if (c->open_handles == 0)
            xs_conn_free(c, c->closed_cb, c->closed_ud);
        return;
    }
    if (status != 0) {
        GW_LOG(c->log, GW_LOG_WARN, AREA, "cannot resolve %s: %s",
               c->cands[c->cand].host, uv_strerror(status));
        c->cand++;
        try_candidate(c);
        return;
    }
    c->addrs = c->addr = res;
    try_next_address(c);
}

static void try_candidate(struct xs_conn *c)
{
    if (c->cand >= c->n_cands) {
        GW_LOG(c->log, GW_LOG_WARN, AREA, "cannot reach any server for %s",
               c->account.domain);
        schedule_retry(c);
        return;
    }
    const struct candidate *k = &c->cands[c->cand];
    c->cur_direct = k->direct;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)k->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    c->state = ST_RESOLVING;
    c->gai.data = c;
    if (uv_getaddrinfo(c->loop, &c->gai, on_resolved, k->host, port, &hints) !=
        0) {
        c->cand++;
        try_candidate(c);
        return;
    }
    c->gai_busy = true;
    c->open_handles++;
}

/* SRV lookup (RFC 6120 3.2.1, XEP-0368), on the thread pool. */
static void srv_work(uv_work_t *req)
{
    struct srv_work *w = req->data;
    struct xs_srv_target t[MAX_CANDIDATES];
    size_t n = 0;
    xs_srv_lookup(w->domain, t, MAX_CANDIDATES, &n);
    for (size_t i = 0; i < n; i++) {
        memcpy(w->cands[i].host, t[i].host, sizeof(w->cands[i].host));
        w->cands[i].port = t[i].port;
        w->cands[i].direct = t[i].direct_tls;
    }
    w->n = n;
}

static void srv_done(uv_work_t *req, int status)
{
    struct srv_work *w = req->data;
    struct xs_conn *c = w->c;
    c->srv = NULL;
    c->open_handles--;
    if (c->state == ST_CLOSING) {
        free(w);
        if (c->open_handles == 0)
            xs_conn_free(c, c->closed_cb, c->closed_ud);
        return;
    }
    c->n_cands = 0;
    for (size_t i = 0; i < w->n; i++)
        c->cands[c->n_cands++] = w->cands[i];
    if (c->n_cands == 0) {
        /* No SRV records: the domain itself (RFC 6120 3.2.2). */
        struct candidate *k = &c->cands[c->n_cands++];
        size_t dl = strnlen(c->account.domain, sizeof(k->host) - 1);
        memcpy(k->host, c->account.domain, dl);
        k->host[dl] = '\0';
        k->port = c->port ? c->port : (c->direct_tls ? 5223 : 5222);
        k->direct = c->direct_tls;
    }
    free(w);
    c->cand = 0;
    try_candidate(c);
}

static void start_attempt(struct xs_conn *c)
{
    c->secure = c->authed = c->bound = false;
    c->resuming = false;
    c->tls_handshaking = false;
    c->cand = 0;
    c->n_cands = 0;
    if (c->redirect[0]) {
        struct candidate *k = &c->cands[c->n_cands++];
        memcpy(k->host, c->redirect, sizeof(k->host));
        k->port = c->redirect_port;
        k->direct = false;
        c->redirect[0] = '\0';
    } else if (c->host) {
        struct candidate *k = &c->cands[c->n_cands++];
        snprintf(k->host, sizeof(k->host), "%s", c->host);
        k->port = c->port ? c->port : (c->direct_tls ? 5223 : 5222);
        k->direct = c->direct_tls;
    } else {
        struct srv_work *w = calloc(1, sizeof(*w));
        if (!w) {
            schedule_retry(c);
            return;
        }
        w->c = c;
        w->req.data = w;
        snprintf(w->domain, sizeof(w->domain), "%s", c->account.domain);
        c->state = ST_RESOLVING;
        if (uv_queue_work(c->loop, &w->req, srv_work, srv_done) != 0) {
            free(w);
            schedule_retry(c);
            return;
        }
        c->srv = w;
        c->open_handles++;
        return;
    }
    try_candidate(c);
}

static void on_retry(uv_timer_t *t)
{
    struct xs_conn *c = t->data;
    if (c->state == ST_DOWN)
        start_attempt(c);
}

uint32_t xs_conn_backoff(uint32_t *backoff_ms, uint32_t min_ms, uint32_t max_ms)
{
    uint32_t wait = *backoff_ms ? *backoff_ms : min_ms;
    if (wait > max_ms)
        wait = max_ms;
    *backoff_ms = wait >= max_ms / 2 ? max_ms : wait * 2;
    return wait;
}

static void schedule_retry(struct xs_conn *c)
{
    c->state = ST_DOWN;
    uint32_t wait;
    if (c->auth_failed) {
        wait = c->reconnect_max_ms; /* it will not heal by itself */
        (void)xs_conn_backoff(&c->backoff_ms, c->reconnect_min_ms,
                              c->reconnect_max_ms);
    } else if (c->backoff_ms == 0 && c->redirect[0]) {
        wait = 0; /* see-other-host: at once, the backoff starts after */
    } else {
        wait = xs_conn_backoff(&c->backoff_ms, c->reconnect_min_ms,
                               c->reconnect_max_ms);
    }
    if (wait)
        wait = jitter(c, wait);
    GW_LOG(c->log, GW_LOG_INFO, AREA, "reconnecting in %u ms", wait);
    uv_timer_start(&c->retry, on_retry, wait, 0);
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct xs_conn *c = h->data;
    c->tcp_open = false;
    c->open_handles--;
    xs_tls_free(c->tls);
    c->tls = NULL;
    xs_parser_free(c->parser);
    c->parser = NULL;
    xs_sasl_free(c->sasl);
    c->sasl = NULL;
    if (c->state == ST_CLOSING) {
        if (c->open_handles == 0)
            xs_conn_free(c, c->closed_cb, c->closed_ud);
        return;
    }
    /* Another address of this attempt, or a new attempt later. */
    if (c->state == ST_CONNECTING && c->addr) {
        try_next_address(c);
        return;
    }
    if (c->state == ST_CONNECTING) {
        free_addrs(c);
        c->cand++;
        try_candidate(c);
        return;
    }
    free_addrs(c);
    schedule_retry(c);
}

static void on_shutdown(uv_shutdown_t *req, int status);

static void drop(struct xs_conn *c, int err, const char *why)
{
    if (c->state == ST_CLOSING || c->state == ST_DOWN || c->state == ST_IDLE)
        return;
    c->gen++;
    bool was_online = c->state == ST_ONLINE;
    if (why)
        GW_LOG(c->log, was_online ? GW_LOG_WARN : GW_LOG_INFO, AREA,
               "connection lost: %s", why);
    if (was_online) {
        c->stats.drops++;
        GW_LOG(c->log, GW_LOG_WARN, AREA, "offline (%s)", gw_strerror(err));
    }
    c->ping_out = false;
    bool connecting = c->state == ST_CONNECTING;
    if (!connecting)
        c->state = ST_DOWN;
    /* The callbacks may free the session (then it is CLOSING and xs_conn_free
     * closed everything) or send (queued: we are not online any more). */
    fail_waits(c, GW_EDISCONNECTED, false);
    if (c->state == ST_CLOSING)
        return;
    bool graceful = c->graceful;
    c->graceful = false;
    if (c->tcp_open) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->shutdown_req.data = c;
            /* After close_stream: FIN once our last bytes are written (the
             * shutdown callback closes the socket). */
            if (!graceful ||
                uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp,
                            on_shutdown) != 0)
                uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
        }
    } else if (!connecting) {
        schedule_retry(c);
    }
    if (was_online && c->cbs.offline)
        c->cbs.offline(c->ud, err);
}

/* ---- periodic work ------------------------------------------------------ */

static void on_ping_reply(void *ud, const struct xs_stanza *reply, int err)
{
    struct xs_conn *c = ud;
    c->ping_out = false;
    if (!reply && err == GW_ETIMEOUT)
        drop(c, GW_ETIMEOUT, "the server did not answer a ping");
}

static void on_tick(uv_timer_t *t)
{
    struct xs_conn *c = t->data;
    uint64_t now = now_ms(c);
    log_drop_summary(c);
    fail_waits(c, GW_ETIMEOUT, true);
    if (c->state == ST_NEGOTIATING || c->state == ST_CONNECTING) {
        /* A blackholed address would otherwise wait for the kernel's SYN
         * timeout (minutes); the next address is tried instead. */
        if (now - c->attempt_start > c->ping_timeout_ms)
            drop(c, GW_ETIMEOUT,
                 c->state == ST_CONNECTING ? "TCP connect timed out"
                                           : "stream negotiation timed out");
        return;
    }
    if (c->state != ST_ONLINE)
        return;
    if (!c->ping_out && now - c->last_rx >= c->keepalive_ms) {
        struct xs_stanza *iq = xs_stanza_new("iq", XS_NS_CLIENT);
        if (!iq || xs_stanza_set_attr(iq, "type", "get") != GW_OK ||
            xs_stanza_set_attr(iq, "to", c->account.domain) != GW_OK ||
            !xs_stanza_add_new(iq, "ping", XS_NS_PING)) {
            xs_stanza_free(iq);
            return;
        }
        if (track(c, iq, c->ping_timeout_ms, on_ping_reply, c, true) == GW_OK)
            c->ping_out = true;
        request_ack(c);
    }
}

/* ---- public API -------------------------------------------------------- */

int xs_conn_new(uv_loop_t *loop, const struct xs_conn_config *cfg,
                const struct xs_conn_cbs *cbs, void *ud,
                const struct gw_log *log, struct xs_conn **out)
{
    if (!cfg->jid || !cfg->password || !*cfg->password)
        return GW_EINVAL;
    struct xs_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return GW_ENOMEM;
    if (xs_jid_parse(cfg->jid, &c->account) != GW_OK || !c->account.local[0] ||
        xs_jid_bare(&c->account, c->bare, sizeof(c->bare)) != GW_OK) {
        free(c);
        return GW_EINVAL;
    }
    c->loop = loop;
    c->log = log;
    if (cbs)
        c->cbs = *cbs;
    c->ud = ud;
    c->jid = strdup(cfg->jid);
    c->password = strdup(cfg->password);
    c->resource = dup_or_null(cfg->resource);
    c->host = dup_or_null(cfg->host);
    c->ca_file = dup_or_null(cfg->ca_file);
    c->status = dup_or_null(cfg->status);
    c->port = cfg->port;
    c->direct_tls = cfg->direct_tls;
    c->verify = cfg->verify;
    c->allow_plain = cfg->allow_plain;
    c->sasl_allowed = cfg->sasl_allowed
                          ? cfg->sasl_allowed
                          : XS_SASL_ALL & ~XS_SASL_BIT(XS_SASL_PLAIN);
    if (c->allow_plain)
        c->sasl_allowed |= XS_SASL_BIT(XS_SASL_PLAIN);
    c->keepalive_ms = cfg->keepalive_ms ? cfg->keepalive_ms : 60000;
    c->ping_timeout_ms = cfg->ping_timeout_ms ? cfg->ping_timeout_ms : 30000;
    c->reconnect_min_ms = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : 1000;
    c->reconnect_max_ms =
        cfg->reconnect_max_ms ? cfg->reconnect_max_ms : 300000;
    if (c->reconnect_max_ms < c->reconnect_min_ms)
        c->reconnect_max_ms = c->reconnect_min_ms;
    c->stanza_max = cfg->stanza_max ? cfg->stanza_max : 256u * 1024u;
    queue_init(&c->unacked, UNACKED_MAX);
    queue_init(&c->pending, PENDING_MAX);
    if (!c->jid || !c->password || (cfg->resource && !c->resource) ||
        (cfg->host && !c->host) || (cfg->ca_file && !c->ca_file) ||
        (cfg->status && !c->status) ||
        xs_conn_add_feature(c, XS_NS_DISCO_INFO) != GW_OK ||
        xs_conn_add_feature(c, XS_NS_PING) != GW_OK ||
        xs_conn_add_feature(c, XS_NS_VERSION) != GW_OK) {
        c->state = ST_IDLE;
        uv_timer_init(loop, &c->tick);
        uv_timer_init(loop, &c->retry);
        c->tick.data = c->retry.data = c;
        c->open_handles = 2; /* else the count wraps and c is never freed */
        xs_conn_free(c, NULL, NULL);
        return GW_ENOMEM;
    }
    uv_timer_init(loop, &c->tick);
    uv_timer_init(loop, &c->retry);
    c->tick.data = c->retry.data = c;
    c->open_handles = 2;
    c->state = ST_IDLE;
    if (!c->verify)
        GW_LOG(log, GW_LOG_WARN, AREA,
               "TLS certificate verification is OFF for %s",
               c->host ? c->host : c->account.domain);
    *out = c;
    return GW_OK;
}

int xs_conn_start(struct xs_conn *c)
{
    if (c->state != ST_IDLE)
        return GW_EBUSY;
    uv_timer_start(&c->tick, on_tick, 1000, 1000);
    start_attempt(c);
    return GW_OK;
}

int xs_conn_add_feature(struct xs_conn *c, const char *var)
{
    char **f = realloc(c->features, (c->n_features + 1) * sizeof(*f));
    if (!f)
        return GW_ENOMEM;
    c->features = f;
    f[c->n_features] = strdup(var);
    if (!f[c->n_features])
        return GW_ENOMEM;
    c->n_features++;
    return GW_OK;
}

int xs_conn_handle_iq(struct xs_conn *c, const char *ns, xs_iq_handler handler,
                      void *ud)
{
    for (struct iq_route *r = c->routes; r; r = r->next)
        if (strcmp(r->ns, ns) == 0)
            return GW_EEXISTS;
    struct iq_route *r = calloc(1, sizeof(*r));
    if (!r || !(r->ns = strdup(ns))) {
        free(r);
        return GW_ENOMEM;
    }
    r->handler = handler;
    r->ud = ud;
    r->next = c->routes;
    c->routes = r;
    return GW_OK;
}

int xs_conn_send(struct xs_conn *c, struct xs_stanza *st)
{
    if (!st)
        return GW_ENOMEM;
    if (c->state == ST_ONLINE)
        return send_now(c, st);
    char *data = NULL;
    size_t len = 0;
    int rc = serialize(c, st, &data, &len);
    enum item_kind kind = kind_of(st);
    xs_stanza_free(st);
    if (rc != GW_OK)
        return rc;
    rc = queue_push(&c->pending, data, len, kind);
    if (rc != GW_OK) {
        GW_LOG(c->log, GW_LOG_WARN, AREA,
               "offline queue full: a stanza was dropped");
        free(data);
    }
    return rc;
}

int xs_conn_iq(struct xs_conn *c, struct xs_stanza *iq, uint32_t timeout_ms,
               xs_iq_cb cb, void *ud)
{
    if (!iq)
        return GW_ENOMEM;
    if (c->state == ST_CLOSING) {
        xs_stanza_free(iq);
        return GW_ECLOSED;
    }
    return track(c, iq, timeout_ms, cb, ud, false);
}

const char *xs_conn_jid(const struct xs_conn *c)
{
    return c->state == ST_ONLINE ? c->full_jid : NULL;
}

bool xs_conn_online(const struct xs_conn *c)
{
    return c->state == ST_ONLINE;
}

void xs_conn_get_stats(const struct xs_conn *c, struct xs_conn_stats *out)
{
    *out = c->stats;
    out->sm_in = c->sm_in;
    out->sm_out_unacked = (uint32_t)c->unacked.count;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct xs_conn *c = h->data;
    c->open_handles--;
    if (c->open_handles == 0)
        xs_conn_free(c, c->closed_cb, c->closed_ud);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct xs_conn *c = req->data;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
}

static void free_memory(struct xs_conn *c)
{
    void (*cb)(void *) = c->closed_cb;
    void *ud = c->closed_ud;
    free_addrs(c);
    queue_close(&c->unacked);
    queue_close(&c->pending);
    for (size_t i = 0; i < c->n_features; i++)
        free(c->features[i]);
    free(c->features);
    while (c->routes) {
        struct iq_route *r = c->routes;
        c->routes = r->next;
        free(r->ns);
        free(r);
    }
    if (c->password) {
        explicit_bzero(c->password, strlen(c->password));
        free(c->password);
    }
    free(c->jid);
    free(c->resource);
    free(c->host);
    free(c->ca_file);
    free(c->status);
    free(c->full_jid);
    free(c->sm_id);
    free(c);
    if (cb)
        cb(ud);
}

void xs_conn_free(struct xs_conn *c, void (*closed_cb)(void *ud), void *ud)
{
    if (!c)
        return;
    if (c->state == ST_CLOSING) {
        /* Re-entered from a close callback: free once all is closed. */
        if (c->open_handles == 0)
            free_memory(c);
        return;
    }
    bool online = c->state == ST_ONLINE;
    c->closed_cb = closed_cb;
    c->closed_ud = ud;
    if (online) {
        if (c->sm_enabled && c->sm_id) {
            char buf[64];
            snprintf(buf, sizeof(buf), "<a xmlns='urn:xmpp:sm:3' h='%u'/>",
                     c->sm_in);
            send_str(c, buf);
        }
        send_str(c, "<presence type='unavailable'/>");
        send_str(c, "</stream:stream>");
        if (c->tls)
            xs_tls_bye(c->tls);
        GW_LOG(c->log, GW_LOG_NOTICE, AREA, "closing the session");
    }
    c->state = ST_CLOSING;
    c->gen++;
    fail_waits(c, GW_ECANCELED, false);
    if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->shutdown_req.data = c;
        /* A graceful FIN only when everything was written: a server that
         * stopped reading must not keep the daemon from exiting. */
        if (!online ||
            uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0 ||
            uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp,
                        on_shutdown) != 0)
            uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    }
    if (c->gai_busy)
        uv_cancel((uv_req_t *)&c->gai);
    if (c->srv)
        uv_cancel((uv_req_t *)&c->srv->req);
    uv_close((uv_handle_t *)&c->tick, on_timer_closed);
    uv_close((uv_handle_t *)&c->retry, on_timer_closed);
}
