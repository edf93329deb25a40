/* sim_tcp.c - Modbus TCP: listeners, connections, MBAP framing.
 *
 * Bytes are read by libuv into a per-connection buffer and cut into MBAP
 * frames here (7-byte header, then length - 1 PDU bytes), so no libmodbus
 * receive call (select() on the fd, blocking for a whole frame) ever runs:
 * hundreds of clients and fds above FD_SETSIZE are fine. */
#include "sim_server.h"

#include <stdlib.h>
#include <string.h>

#include "gw_err.h"

#define MBAP_HEADER 7
#define CONN_BUF 1024             /* > 2 frames; a partial frame < 260 */
#define WRITE_QUEUE_MAX (1 << 20) /* a client that never reads is dropped */
#define EXC_GATEWAY_TARGET 0x0b

struct sim_listener {
    uv_tcp_t tcp;
    struct sim_server *srv;
    struct sim_listener *next;
    char name[64];
};

struct sim_conn {
    uv_tcp_t tcp;
    struct sim_server *srv;
    struct sim_conn *prev, *next;
    struct sim_delay_list delays;
    bool closing;
    size_t len;
    uint8_t buf[CONN_BUF];
};

struct write_req {
    uv_write_t req;
    uint8_t adu[SIM_ADU_MAX];
};

static void listener_free(uv_handle_t *h)
{
    free(h->data);
}

static void conn_free(uv_handle_t *h)
{
    struct sim_conn *c = h->data;
    free(c);
}

static void conn_close(struct sim_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    sim__delay_cancel(&c->delays);
    struct sim_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, conn_free);
}

static void on_written(uv_write_t *req, int status)
{
    free(req->data);
}

static void conn_send(void *owner, const uint8_t *adu, size_t len)
{
    struct sim_conn *c = owner;
    if (c->closing)
        return;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >
        WRITE_QUEUE_MAX) {
        GW_LOG(c->srv->log, GW_LOG_WARN, "tcp",
               "client does not read its answers: closing");
        conn_close(c);
        return;
    }
    struct write_req *w = malloc(sizeof(*w));
    if (!w) {
        conn_close(c);
        return;
    }
    memcpy(w->adu, adu, len);
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)w->adu, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc != 0) {
        free(w);
        conn_close(c);
    }
}

/* One complete MBAP frame: frame[0..6] header, then the PDU. */
static void handle_frame(struct sim_conn *c, const uint8_t *frame, size_t len)
{
    struct sim_server *srv = c->srv;
    uint8_t adu[SIM_ADU_MAX];
    uint8_t unit_id = frame[6];
    const uint8_t *pdu = frame + MBAP_HEADER;
    size_t pdu_len = len - MBAP_HEADER;
    struct sim_unit *u = srv->units[unit_id];
    size_t rsp_len;
    if (!u) {
        /* No such unit behind this "gateway". */
        rsp_len = sim_exception(pdu_len ? pdu[0] & 0x7f : 0, EXC_GATEWAY_TARGET,
                                adu + MBAP_HEADER);
    } else {
        rsp_len = sim_unit_handle(u, pdu, pdu_len, adu + MBAP_HEADER);
    }
    sim__log_request(srv, "tcp", unit_id, pdu, pdu_len, adu + MBAP_HEADER,
                     rsp_len);
    if (rsp_len == 0)
        return;
    memcpy(adu, frame, 4); /* transaction and protocol id */
    adu[4] = (uint8_t)((rsp_len + 1) >> 8);
    adu[5] = (uint8_t)(rsp_len + 1);
    adu[6] = unit_id;
    if (u && u->slow_ms) {
        if (sim__delay(srv, &c->delays, u->slow_ms, conn_send, c, adu,
                       MBAP_HEADER + rsp_len) != GW_OK)
            conn_close(c);
        return;
    }
    conn_send(c, adu, MBAP_HEADER + rsp_len);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sim_conn *c = h->data;
    buf->base = (char *)c->buf + c->len;
    buf->len = sizeof(c->buf) - c->len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct sim_conn *c = s->data;
    if (nread < 0) {
        if (nread != UV_EOF)
            GW_LOG(c->srv->log, GW_LOG_DEBUG, "tcp", "read: %s",
                   uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    size_t off = 0;
    while (!c->closing && c->len - off >= MBAP_HEADER) {
        const uint8_t *f = c->buf + off;
        unsigned proto = (unsigned)f[2] << 8 | f[3];
        unsigned length = (unsigned)f[4] << 8 | f[5];
        if (proto != 0 || length < 2 || length > 1 + SIM_PDU_MAX) {
            GW_LOG(c->srv->log, GW_LOG_WARN, "tcp",
                   "bad MBAP header (protocol %u, length %u): closing", proto,
                   length);
            conn_close(c);
            return;
        }
        size_t total = 6 + (size_t)length;
        if (c->len - off < total)
            break;
        handle_frame(c, f, total);
        off += total;
    }
    if (c->closing)
        return;
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct sim_listener *l = server->data;
    struct sim_server *srv = l->srv;
    if (status < 0) {
        GW_LOG(srv->log, GW_LOG_WARN, "tcp", "accept on %s: %s", l->name,
               uv_strerror(status));
        return;
    }
    struct sim_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    c->srv = srv;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, conn_free);
        return;
    }
    if (srv->n_conns >= SIM_MAX_CONNS) {
        GW_LOG(srv->log, GW_LOG_WARN, "tcp",
               "%zu connections open: refusing another", srv->n_conns);
        uv_close((uv_handle_t *)&c->tcp, conn_free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0)
        conn_close(c);
}

static int format_name(const struct sockaddr_storage *ss, char *name,
                       size_t cap)
{
    char host[46]; /* INET6_ADDRSTRLEN */
    int rc;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        rc = uv_ip6_name(a, host, sizeof(host));
        if (rc == 0)
            snprintf(name, cap, "[%s]:%u", host, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        rc = uv_ip4_name(a, host, sizeof(host));
        if (rc == 0)
            snprintf(name, cap, "%s:%u", host, ntohs(a->sin_port));
    }
    return rc;
}

int sim_tcp_listen(struct sim_server *srv, const char *host, uint16_t port,
                   char *name, size_t name_cap)
{
    struct sockaddr_storage ss;
    int rc;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        GW_LOG(srv->log, GW_LOG_ERROR, "tcp",
               "%s: not a numeric IPv4/IPv6 address", host);
        return GW_EINVAL;
    }
    struct sim_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return GW_ENOMEM;
    l->srv = srv;
    uv_tcp_init(srv->loop, &l->tcp);
    l->tcp.data = l;
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
    int len = (int)sizeof(ss);
    if (rc == 0)
        rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
    if (rc == 0)
        rc = format_name(&ss, l->name, sizeof(l->name));
    if (rc != 0) {
        GW_LOG(srv->log, GW_LOG_ERROR, "tcp", "listen on %s:%u: %s", host, port,
               uv_strerror(rc));
        uv_close((uv_handle_t *)&l->tcp, listener_free);
        return GW_EIO;
    }
    snprintf(name, name_cap, "%s", l->name);
    l->next = srv->listeners;
    srv->listeners = l;
    GW_LOG(srv->log, GW_LOG_INFO, "tcp", "listening on %s", l->name);
    return GW_OK;
}

void sim__tcp_stop(struct sim_server *srv)
{
    while (srv->listeners) {
        struct sim_listener *l = srv->listeners;
        srv->listeners = l->next;
        uv_close((uv_handle_t *)&l->tcp, listener_free);
    }
    while (srv->conns)
        conn_close(srv->conns);
}
