/* sim_rtu.c - Modbus RTU on a serial line.
 *
 * libmodbus opens and configures the tty (modbus_new_rtu + modbus_connect:
 * speed, parity, data and stop bits); from then on the fd is watched by a
 * uv_poll_t and frames are cut by silence: a frame ends when no byte has
 * arrived for t3.5 (3.5 character times, at least 1.75 ms above 19200 baud,
 * per the Modbus serial line spec 2.5.1.1), rounded up to whole ms.  Frames
 * with a bad CRC and frames for other unit ids are ignored; broadcasts
 * (unit 0) are executed without an answer. */
#include "sim_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw_err.h"

#define RTU_ADU_MAX 256 /* address + PDU + CRC */
#define RTU_RX_MAX 512

struct sim_rtu {
    struct sim_server *srv;
    struct sim_rtu *next;
    modbus_t *ctx;
    int fd;
    uv_poll_t poll;
    uv_timer_t silence;
    int open_handles;
    bool closing;
    uint32_t t35_ms;
    struct sim_delay_list delays;
    size_t rx_len;
    bool rx_overflow;
    size_t tx_len;
    uint64_t bad_frames;
    uint8_t rx[RTU_RX_MAX];
    uint8_t tx[RTU_RX_MAX];
    char device[256];
};

static uint16_t crc16(const uint8_t *p, size_t n)
{
    unsigned crc = 0xffff;
    for (size_t k = 0; k < n; k++) {
        crc ^= p[k];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1u) ? (crc >> 1) ^ 0xa001u : crc >> 1;
    }
    return (uint16_t)crc;
}

static void on_poll(uv_poll_t *h, int status, int events);

static void rtu_free(uv_handle_t *h)
{
    struct sim_rtu *r = h->data;
    if (--r->open_handles > 0)
        return;
    GW_LOG(r->srv->log, GW_LOG_DEBUG, "rtu", "%s: closed (%llu bad frames)",
           r->device, (unsigned long long)r->bad_frames);
    modbus_close(r->ctx);
    modbus_free(r->ctx);
    free(r);
}

static void rtu_close(struct sim_rtu *r)
{
    if (r->closing)
        return;
    r->closing = true;
    for (struct sim_rtu **p = &r->srv->rtus; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    sim__delay_cancel(&r->delays);
    uv_close((uv_handle_t *)&r->poll, rtu_free);
    uv_close((uv_handle_t *)&r->silence, rtu_free);
}

/* Writes as much of the transmit buffer as the tty takes; the rest waits
 * for a writable event. */
static void flush_tx(struct sim_rtu *r)
{
    while (r->tx_len > 0) {
        ssize_t n = write(r->fd, r->tx, r->tx_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            GW_LOG(r->srv->log, GW_LOG_ERROR, "rtu", "%s: write: %s", r->device,
                   strerror(errno));
            r->tx_len = 0;
            break;
        }
        memmove(r->tx, r->tx + n, r->tx_len - (size_t)n);
        r->tx_len -= (size_t)n;
    }
    int events = UV_READABLE | (r->tx_len ? UV_WRITABLE : 0);
    uv_poll_start(&r->poll, events, on_poll);
}

static void rtu_send(void *owner, const uint8_t *adu, size_t len)
{
    struct sim_rtu *r = owner;
    if (r->closing)
        return;
    if (len > sizeof(r->tx) - r->tx_len) {
        GW_LOG(r->srv->log, GW_LOG_WARN, "rtu", "%s: transmit buffer full",
               r->device);
        return;
    }
    memcpy(r->tx + r->tx_len, adu, len);
    r->tx_len += len;
    flush_tx(r);
}

static void handle_frame(struct sim_rtu *r, const uint8_t *f, size_t len)
{
    uint8_t adu[RTU_ADU_MAX];
    if (len < 4 || len > RTU_ADU_MAX) {
        r->bad_frames++;
        return;
    }
    uint16_t crc = crc16(f, len - 2);
    if (f[len - 2] != (uint8_t)crc || f[len - 1] != (uint8_t)(crc >> 8)) {
        r->bad_frames++;
        GW_LOG(r->srv->log, GW_LOG_DEBUG, "rtu", "%s: bad CRC, ignored",
               r->device);
        return;
    }
    uint8_t unit_id = f[0];
    const uint8_t *pdu = f + 1;
    size_t pdu_len = len - 3;
    if (unit_id == 0) { /* broadcast: every unit executes, none answers */
        for (unsigned id = 1; id <= SIM_MAX_UNIT; id++) {
            if (r->srv->units[id])
                sim_unit_handle(r->srv->units[id], pdu, pdu_len, adu + 1);
        }
        return;
    }
    struct sim_unit *u = r->srv->units[unit_id];
    if (!u)
        return; /* another device's frame */
    size_t rsp_len = sim_unit_handle(u, pdu, pdu_len, adu + 1);
    sim__log_request(r->srv, "rtu", unit_id, pdu, pdu_len, adu + 1, rsp_len);
    if (rsp_len == 0)
        return;
    adu[0] = unit_id;
    crc = crc16(adu, 1 + rsp_len);
    adu[1 + rsp_len] = (uint8_t)crc;
    adu[2 + rsp_len] = (uint8_t)(crc >> 8);
    if (u->slow_ms) {
        if (sim__delay(r->srv, &r->delays, u->slow_ms, rtu_send, r, adu,
                       rsp_len + 3) != GW_OK)
            GW_LOG(r->srv->log, GW_LOG_WARN, "rtu", "out of memory");
        return;
    }
    rtu_send(r, adu, rsp_len + 3);
}

static void on_silence(uv_timer_t *t)
{
    struct sim_rtu *r = t->data;
    if (r->rx_overflow)
        r->bad_frames++;
    else
        handle_frame(r, r->rx, r->rx_len);
    r->rx_len = 0;
    r->rx_overflow = false;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sim_rtu *r = h->data;
    if (status < 0) {
        GW_LOG(r->srv->log, GW_LOG_ERROR, "rtu", "%s: %s", r->device,
               uv_strerror(status));
        rtu_close(r);
        return;
    }
    if (events & UV_WRITABLE)
        flush_tx(r);
    if (!(events & UV_READABLE))
        return;
    bool got = false;
    for (;;) {
        uint8_t buf[256];
        ssize_t n = read(r->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        /* libmodbus sets VMIN = VTIME = 0: read() returns 0, not EAGAIN,
         * when nothing is waiting. */
        if (n == 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
            break;
        if (n < 0) {
            /* EIO: the master side of a pty went away.  Stop serving this
             * port; other transports carry on. */
            GW_LOG(r->srv->log, GW_LOG_WARN, "rtu", "%s: %s", r->device,
                   strerror(errno));
            rtu_close(r);
            return;
        }
        got = true;
        if (r->rx_len + (size_t)n > sizeof(r->rx)) {
            r->rx_overflow = true;
            r->rx_len = 0;
        } else {
            memcpy(r->rx + r->rx_len, buf, (size_t)n);
            r->rx_len += (size_t)n;
        }
    }
    if (got)
        uv_timer_start(&r->silence, on_silence, r->t35_ms, 0);
}

int sim_rtu_open(struct sim_server *srv, const struct sim_rtu_opts *opts)
{
    struct sim_rtu *r = calloc(1, sizeof(*r));
    if (!r)
        return GW_ENOMEM;
    r->srv = srv;
    snprintf(r->device, sizeof(r->device), "%s", opts->device);
    r->ctx = modbus_new_rtu(opts->device, opts->baud, opts->parity, opts->data,
                            opts->stop);
    if (!r->ctx || modbus_connect(r->ctx) != 0) {
        GW_LOG(srv->log, GW_LOG_ERROR, "rtu", "%s: %s", opts->device,
               modbus_strerror(errno));
        if (r->ctx)
            modbus_free(r->ctx);
        free(r);
        return GW_EIO;
    }
    r->fd = modbus_get_socket(r->ctx);
    int fl = fcntl(r->fd, F_GETFL);
    if (fl < 0 || fcntl(r->fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        uv_poll_init(srv->loop, &r->poll, r->fd) != 0) {
        GW_LOG(srv->log, GW_LOG_ERROR, "rtu", "%s: cannot watch the fd",
               opts->device);
        modbus_close(r->ctx);
        modbus_free(r->ctx);
        free(r);
        return GW_EIO;
    }
    /* 11 bits a character (start, 8 data, parity or 2nd stop, stop). */
    uint32_t us = opts->baud > 19200 ? 1750u : 38500000u / (uint32_t)opts->baud;
    r->t35_ms = (us + 999) / 1000 + 1; /* + 1: libuv's clock is ms-coarse */
    r->poll.data = r;
    uv_timer_init(srv->loop, &r->silence);
    r->silence.data = r;
    r->open_handles = 2;
    uv_poll_start(&r->poll, UV_READABLE, on_poll);
    r->next = srv->rtus;
    srv->rtus = r;
    GW_LOG(srv->log, GW_LOG_INFO, "rtu", "serving %s at %d %c%d%d (t3.5 %u ms)",
           r->device, opts->baud, opts->parity, opts->data, opts->stop,
           r->t35_ms);
    return GW_OK;
}

void sim__rtu_stop(struct sim_server *srv)
{
    while (srv->rtus)
        rtu_close(srv->rtus); /* unlinks it */
}
