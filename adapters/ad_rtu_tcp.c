/* ad_rtu_tcp.c - Modbus RTU frames through a TCP socket. */
#include "ad_rtu_tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <modbus.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Quantity limits of the Modbus application protocol v1.1b3, 6.1..6.12;
 * each keeps the ADU within AD_RTU_ADU_MAX. */
#define MAX_READ_BITS 2000u
#define MAX_READ_REGISTERS 125u
#define MAX_WRITE_BITS 1968u
#define MAX_WRITE_REGISTERS 123u

/* ---- pure frame functions ---------------------------------------------- */

uint16_t ad_rtu_crc16(const uint8_t *buf, size_t len)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        crc ^= buf[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1u) ? (uint16_t)((crc >> 1) ^ 0xA001u)
                             : (uint16_t)(crc >> 1);
    }
    return crc;
}

size_t ad_rtu_frame(uint8_t *out, size_t cap, uint8_t unit, const uint8_t *pdu,
                    size_t pdu_len)
{
    size_t n = pdu_len + 3;
    if (n > cap || n > AD_RTU_ADU_MAX)
        return 0;
    out[0] = unit;
    memcpy(out + 1, pdu, pdu_len);
    uint16_t crc = ad_rtu_crc16(out, pdu_len + 1);
    out[pdu_len + 1] = (uint8_t)(crc & 0xFF);
    out[pdu_len + 2] = (uint8_t)(crc >> 8);
    return n;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)(v & 0xFF);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

size_t ad_rtu_build_read(uint8_t *out, uint8_t unit, uint8_t fc, uint16_t addr,
                         uint16_t count)
{
    if (fc < 1 || fc > 4) {
        errno = EINVAL;
        return 0;
    }
    uint16_t max = fc <= 2 ? MAX_READ_BITS : MAX_READ_REGISTERS;
    if (count < 1 || count > max) {
        errno = EMBMDATA;
        return 0;
    }
    uint8_t pdu[5] = {fc};
    put16(pdu + 1, addr);
    put16(pdu + 3, count);
    return ad_rtu_frame(out, AD_RTU_ADU_MAX, unit, pdu, sizeof(pdu));
}

size_t ad_rtu_build_write_single(uint8_t *out, uint8_t unit, uint8_t fc,
                                 uint16_t addr, uint16_t value)
{
    if (fc != 5 && fc != 6) {
        errno = EINVAL;
        return 0;
    }
    uint8_t pdu[5] = {fc};
    put16(pdu + 1, addr);
    /* FC05: ON is 0xFF00, OFF 0x0000. */
    put16(pdu + 3, fc == 5 ? (value ? 0xFF00 : 0) : value);
    return ad_rtu_frame(out, AD_RTU_ADU_MAX, unit, pdu, sizeof(pdu));
}

size_t ad_rtu_build_write_bits(uint8_t *out, uint8_t unit, uint16_t addr,
                               uint16_t count, const uint8_t *bits)
{
    if (count < 1 || count > MAX_WRITE_BITS) {
        errno = EMBMDATA;
        return 0;
    }
    uint8_t pdu[AD_RTU_ADU_MAX];
    size_t nbytes = (count + 7u) / 8u;
    pdu[0] = 15;
    put16(pdu + 1, addr);
    put16(pdu + 3, count);
    pdu[5] = (uint8_t)nbytes;
    memset(pdu + 6, 0, nbytes);
    for (uint16_t i = 0; i < count; i++)
        if (bits[i])
            pdu[6 + i / 8] |= (uint8_t)(1u << (i % 8));
    return ad_rtu_frame(out, AD_RTU_ADU_MAX, unit, pdu, 6 + nbytes);
}

size_t ad_rtu_build_write_registers(uint8_t *out, uint8_t unit, uint16_t addr,
                                    uint16_t count, const uint16_t *regs)
{
    if (count < 1 || count > MAX_WRITE_REGISTERS) {
        errno = EMBMDATA;
        return 0;
    }
    uint8_t pdu[AD_RTU_ADU_MAX];
    pdu[0] = 16;
    put16(pdu + 1, addr);
    put16(pdu + 3, count);
    pdu[5] = (uint8_t)(count * 2u);
    for (uint16_t i = 0; i < count; i++)
        put16(pdu + 6 + 2 * i, regs[i]);
    return ad_rtu_frame(out, AD_RTU_ADU_MAX, unit, pdu, 6 + 2u * count);
}

/* The largest byte count of a read reply that fits an ADU: unit, fc and
 * byte count before the data, the CRC after it. */
#define MAX_REPLY_BYTES (AD_RTU_ADU_MAX - 5)

int ad_rtu_reply_len(const uint8_t head[3])
{
    uint8_t fc = head[1];
    if (fc & 0x80)
        return 5; /* unit, fc | 0x80, code, CRC */
    switch (fc) {
    case 1:
    case 2:
    case 3:
    case 4:
        if (head[2] > MAX_REPLY_BYTES)
            break;          /* would not fit a frame */
        return 5 + head[2]; /* unit, fc, byte count, data, CRC */
    case 5:
    case 6:
    case 15:
    case 16:
        return 8; /* unit, fc, address, value or quantity, CRC */
    default:
        break;
    }
    errno = EMBBADDATA;
    return -1;
}

int ad_rtu_reply_expect(const uint8_t *req, size_t req_len,
                        const uint8_t head[3])
{
    if (req_len < 8 || req_len > AD_RTU_ADU_MAX) {
        errno = EMBBADDATA;
        return -1;
    }
    uint8_t fc = req[1];
    if (head[1] == (fc | 0x80))
        return 5;
    if (head[1] != fc) {
        errno = EMBBADDATA;
        return -1;
    }
    uint32_t count = get16(req + 4), want;
    switch (fc) {
    case 1:
    case 2:
        want = (count + 7u) / 8u;
        break;
    case 3:
    case 4:
        want = count * 2u;
        break;
    case 5:
    case 6:
    case 15:
    case 16:
        return 8;
    default:
        errno = EMBBADDATA;
        return -1;
    }
    /* Only the byte count the request asks for is read: a longer (or
     * shorter) one is refused before any more input is taken. */
    if (want == 0 || want > MAX_REPLY_BYTES || head[2] != want) {
        errno = EMBBADDATA;
        return -1;
    }
    return 5 + (int)want;
}

int ad_rtu_check_reply(const uint8_t *req, size_t req_len, const uint8_t *rsp,
                       size_t rsp_len)
{
    if (req_len < 8 || rsp_len < 5) {
        errno = EMBBADDATA;
        return -1;
    }
    uint16_t crc = ad_rtu_crc16(rsp, rsp_len - 2);
    if (rsp[rsp_len - 2] != (crc & 0xFF) || rsp[rsp_len - 1] != (crc >> 8)) {
        errno = EMBBADCRC;
        return -1;
    }
    if (rsp[0] != req[0]) {
        errno = EMBBADSLAVE;
        return -1;
    }
    uint8_t fc = req[1];
    if (rsp[1] == (fc | 0x80)) {
        uint8_t code = rsp[2];
        if (rsp_len != 5 || code == 0 || code >= MODBUS_EXCEPTION_MAX) {
            errno = EMBBADEXC;
            return -1;
        }
        errno = MODBUS_ENOBASE + code;
        return -1;
    }
    if (rsp[1] != fc) {
        errno = EMBBADDATA;
        return -1;
    }
    uint16_t count = get16(req + 4);
    bool ok = false;
    switch (fc) {
    case 1:
    case 2:
        ok = rsp[2] == (count + 7u) / 8u && rsp_len == 5u + rsp[2];
        break;
    case 3:
    case 4:
        ok = rsp[2] == count * 2u && rsp_len == 5u + rsp[2];
        break;
    case 5:
    case 6:
        /* The reply echoes the request. */
        ok = rsp_len == 8 && memcmp(rsp + 2, req + 2, 4) == 0;
        break;
    case 15:
    case 16:
        /* The reply echoes the address and quantity. */
        ok = rsp_len == 8 && memcmp(rsp + 2, req + 2, 4) == 0;
        break;
    default:
        break;
    }
    if (!ok) {
        errno = EMBBADDATA;
        return -1;
    }
    return 0;
}

/* ---- the client -------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd for at most timeout_ms (through EINTR).  Returns
 * 1 ready, 0 timed out, -1 with errno. */
static int wait_fd(int fd, short events, uint32_t timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left < 0)
            left = 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 1; /* errors and hang-ups show in the recv or send */
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

void ad_rtu_tcp_init(struct ad_rtu_tcp *c)
{
    c->fd = -1;
    c->unit = 1;
    c->timeout_ms = 1000;
    c->byte_timeout_ms = AD_RTU_TCP_BYTE_TIMEOUT_MS;
}

void ad_rtu_tcp_close(struct ad_rtu_tcp *c)
{
    if (!c || c->fd < 0)
        return;
    close(c->fd);
    c->fd = -1;
}

/* One address: a non-blocking connect bounded by timeout_ms.  Returns the
 * connected fd (still non-blocking) or -1 with errno. */
static int connect_one(const struct addrinfo *ai, uint32_t timeout_ms)
{
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0)
        return -1;
    int e = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        e = errno;
        if (e == EINPROGRESS || e == EINTR) {
            int r = wait_fd(fd, POLLOUT, timeout_ms);
            if (r == 0) {
                e = ETIMEDOUT;
            } else if (r < 0) {
                e = errno;
            } else {
                socklen_t len = sizeof(e);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
                    e = errno;
            }
        }
    }
    if (e != 0) {
        close(fd);
        errno = e;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int ad_rtu_tcp_connect(struct ad_rtu_tcp *c, const char *host, uint16_t port,
                       uint32_t timeout_ms)
{
    ad_rtu_tcp_close(c);
    char service[8];
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, service, &hints, &res) != 0 || !res) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int e = ECONNREFUSED;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = connect_one(ai, timeout_ms);
        if (fd >= 0) {
            c->fd = fd;
            break;
        }
        e = errno;
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        errno = e;
        return -1;
    }
    return 0;
}

int ad_rtu_tcp_flush(struct ad_rtu_tcp *c)
{
    if (c->fd < 0) {
        errno = EBADF;
        return -1;
    }
    uint8_t buf[AD_RTU_ADU_MAX];
    int dropped = 0;
    for (;;) {
        ssize_t k = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (k > 0) {
            dropped += (int)k;
            continue;
        }
        if (k == 0) {
            errno = ECONNRESET;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return dropped;
        return -1;
    }
}

static int send_all(struct ad_rtu_tcp *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t k = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (k >= 0) {
            off += (size_t)k;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        int r = wait_fd(c->fd, POLLOUT, c->timeout_ms);
        if (r < 0)
            return -1;
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

/* Reads exactly n bytes: the first wait is bounded by first_ms, each later
 * one by the byte timeout.  Never asks recv for more than n bytes. */
static int recv_exact(struct ad_rtu_tcp *c, uint8_t *buf, size_t n,
                      uint32_t first_ms)
{
    size_t got = 0;
    uint32_t wait_ms = first_ms;
    while (got < n) {
        int r = wait_fd(c->fd, POLLIN, wait_ms);
        if (r < 0)
            return -1;
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        ssize_t k = recv(c->fd, buf + got, n - got, MSG_DONTWAIT);
        if (k == 0) {
            errno = ECONNRESET;
            return -1;
        }
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return -1;
        }
        got += (size_t)k;
        wait_ms = c->byte_timeout_ms;
    }
    return 0;
}

/* ad_rtu_recv_fn over the client's socket. */
static int sock_recv(void *ctx, uint8_t *buf, size_t n, int first)
{
    struct ad_rtu_tcp *c = ctx;
    return recv_exact(c, buf, n, first ? c->timeout_ms : c->byte_timeout_ms);
}

int ad_rtu_recv_reply(const uint8_t *req, size_t req_len,
                      uint8_t rsp[AD_RTU_ADU_MAX], ad_rtu_recv_fn recv_fn,
                      void *ctx)
{
    if (recv_fn(ctx, rsp, 3, 1) != 0)
        return -1;
    int len = ad_rtu_reply_expect(req, req_len, rsp);
    if (len < 0)
        return -1;
    if (len < 5 || len > AD_RTU_ADU_MAX) {
        /* ad_rtu_reply_expect never allows this; the buffer's bound is
         * checked here as well, next to the read it protects. */
        errno = EMBBADDATA;
        return -1;
    }
    if (recv_fn(ctx, rsp + 3, (size_t)len - 3, 0) != 0)
        return -1;
    if (ad_rtu_check_reply(req, req_len, rsp, (size_t)len) != 0)
        return -1;
    return len;
}

void ad_rtu_reply_bits(const uint8_t *rsp, uint16_t n, uint8_t *dest)
{
    for (uint16_t i = 0; i < n; i++)
        dest[i] = (uint8_t)((unsigned)(rsp[3 + i / 8] >> (i % 8)) & 1u);
}

void ad_rtu_reply_registers(const uint8_t *rsp, uint16_t n, uint16_t *dest)
{
    for (uint16_t i = 0; i < n; i++)
        dest[i] = get16(rsp + 3 + 2 * i);
}

/* Drops the rest of a bad reply; keeps errno unless the link is lost. */
static int drop_bad(struct ad_rtu_tcp *c)
{
    int e = errno;
    if (ad_rtu_tcp_flush(c) >= 0)
        errno = e;
    return -1;
}

/* Sends req and receives its checked reply into rsp.  Returns the reply
 * length, 0 for a broadcast write (no reply), or -1 with errno. */
static int transact(struct ad_rtu_tcp *c, const uint8_t *req, size_t req_len,
                    uint8_t rsp[AD_RTU_ADU_MAX])
{
    if (c->fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (req_len == 0)
        return -1; /* the builder set errno */
    /* A late reply to an earlier request must not pass for this one. */
    if (ad_rtu_tcp_flush(c) < 0)
        return -1;
    if (send_all(c, req, req_len) != 0)
        return -1;
    if (req[0] == 0)
        return 0; /* broadcast: nobody answers */
    int len = ad_rtu_recv_reply(req, req_len, rsp, sock_recv, c);
    if (len >= 0)
        return len;
    switch (errno) {
    case EMBBADDATA:
    case EMBBADCRC:
    case EMBBADSLAVE:
    case EMBBADEXC:
        /* A bad reply: drop the rest of it. */
        return drop_bad(c);
    default:
        /* A well-formed exception (nothing to drop), a timeout (the
         * caller flushes) or a lost connection. */
        return -1;
    }
}

static int read_bits(struct ad_rtu_tcp *c, uint8_t fc, uint16_t addr,
                     uint16_t n, uint8_t *dest)
{
    if (c->unit == 0) {
        errno = EINVAL;
        return -1;
    }
    uint8_t req[AD_RTU_ADU_MAX], rsp[AD_RTU_ADU_MAX];
    size_t req_len = ad_rtu_build_read(req, c->unit, fc, addr, n);
    if (transact(c, req, req_len, rsp) < 0)
        return -1;
    ad_rtu_reply_bits(rsp, n, dest);
    return (int)n;
}

static int read_regs(struct ad_rtu_tcp *c, uint8_t fc, uint16_t addr,
                     uint16_t n, uint16_t *dest)
{
    if (c->unit == 0) {
        errno = EINVAL;
        return -1;
    }
    uint8_t req[AD_RTU_ADU_MAX], rsp[AD_RTU_ADU_MAX];
    size_t req_len = ad_rtu_build_read(req, c->unit, fc, addr, n);
    if (transact(c, req, req_len, rsp) < 0)
        return -1;
    ad_rtu_reply_registers(rsp, n, dest);
    return (int)n;
}

int ad_rtu_tcp_read_bits(struct ad_rtu_tcp *c, uint16_t addr, uint16_t n,
                         uint8_t *dest)
{
    return read_bits(c, 1, addr, n, dest);
}

int ad_rtu_tcp_read_input_bits(struct ad_rtu_tcp *c, uint16_t addr, uint16_t n,
                               uint8_t *dest)
{
    return read_bits(c, 2, addr, n, dest);
}

int ad_rtu_tcp_read_registers(struct ad_rtu_tcp *c, uint16_t addr, uint16_t n,
                              uint16_t *dest)
{
    return read_regs(c, 3, addr, n, dest);
}

int ad_rtu_tcp_read_input_registers(struct ad_rtu_tcp *c, uint16_t addr,
                                    uint16_t n, uint16_t *dest)
{
    return read_regs(c, 4, addr, n, dest);
}

int ad_rtu_tcp_write_bit(struct ad_rtu_tcp *c, uint16_t addr, int on)
{
    uint8_t req[AD_RTU_ADU_MAX], rsp[AD_RTU_ADU_MAX];
    size_t req_len =
        ad_rtu_build_write_single(req, c->unit, 5, addr, on ? 1 : 0);
    return transact(c, req, req_len, rsp) < 0 ? -1 : 1;
}

int ad_rtu_tcp_write_bits(struct ad_rtu_tcp *c, uint16_t addr, uint16_t n,
                          const uint8_t *bits)
{
    uint8_t req[AD_RTU_ADU_MAX], rsp[AD_RTU_ADU_MAX];
    size_t req_len = ad_rtu_build_write_bits(req, c->unit, addr, n, bits);
    return transact(c, req, req_len, rsp) < 0 ? -1 : (int)n;
}

int ad_rtu_tcp_write_register(struct ad_rtu_tcp *c, uint16_t addr,
                              uint16_t value)
{
    uint8_t req[AD_RTU_ADU_MAX], rsp[AD_RTU_ADU_MAX];
    size_t req_len = ad_rtu_build_write_single(req, c->unit, 6, addr, value);
    return transact(c, req, req_len, rsp) < 0 ? -1 : 1;
}

int ad_rtu_tcp_write_registers(struct ad_rtu_tcp *c, uint16_t addr, uint16_t n,
                               const uint16_t *regs)
{
    uint8_t req[AD_RTU_ADU_MAX], rsp[AD_RTU_ADU_MAX];
    size_t req_len = ad_rtu_build_write_registers(req, c->unit, addr, n, regs);
    return transact(c, req, req_len, rsp) < 0 ? -1 : (int)n;
}
