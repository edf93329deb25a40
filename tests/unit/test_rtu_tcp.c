/* test_rtu_tcp.c - Modbus RTU over TCP (adapters/ad_rtu_tcp.c).
 *
 * The pure frame functions against the worked examples of the Modbus
 * application protocol spec v1.1b3 (unit 0x11; their CRCs recomputed
 * independently): CRC16, request frames, quantity limits, reply lengths and
 * the checks of exception, garbled, short, wrong-unit and wrong-function
 * replies.  Then the client against a scripted peer on 127.0.0.1 (a thread
 * that reads each request and writes canned bytes back): values, errno of
 * each failure, stale input dropped, a lost connection. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <modbus.h>

#include "ad_rtu_tcp.h"

/* A frame from hex without its CRC, plus the CRC (low byte first). */
static size_t hex_frame(const char *hex, uint8_t *out, bool add_crc)
{
    size_t n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v = 0;
        for (int k = 0; k < 2; k++, p++) {
            char ch = *p;
            v = v * 16u +
                (unsigned)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
        }
        out[n++] = (uint8_t)v;
    }
    if (add_crc) {
        uint16_t crc = ad_rtu_crc16(out, n);
        out[n++] = (uint8_t)(crc & 0xFF);
        out[n++] = (uint8_t)(crc >> 8);
    }
    return n;
}

static void assert_frame(const uint8_t *got, size_t got_len, const char *hex)
{
    uint8_t want[AD_RTU_ADU_MAX];
    size_t n = hex_frame(hex, want, false);
    assert_int_equal(got_len, n);
    assert_memory_equal(got, want, n);
}

/* ---- CRC ---------------------------------------------------------------- */

static void test_crc16_vectors(void **state)
{
    (void)state;
    /* The CRC-16/MODBUS check value. */
    assert_int_equal(ad_rtu_crc16((const uint8_t *)"123456789", 9), 0x4B37);
    assert_int_equal(ad_rtu_crc16(NULL, 0), 0xFFFF);
    /* Spec examples: CRC bytes on the wire, low byte first. */
    const uint8_t rd[] = {0x11, 0x03, 0x00, 0x6B, 0x00, 0x03};
    assert_int_equal(ad_rtu_crc16(rd, sizeof(rd)), 0x8776);
    const uint8_t wr[] = {0x11, 0x06, 0x00, 0x01, 0x00, 0x03};
    assert_int_equal(ad_rtu_crc16(wr, sizeof(wr)), 0x9B9A);
    /* A whole frame with its CRC checks to 0 (the residue of the CRC). */
    const uint8_t fr[] = {0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87};
    assert_int_equal(ad_rtu_crc16(fr, sizeof(fr)), 0);
}

static void test_frame_bounds(void **state)
{
    (void)state;
    uint8_t out[AD_RTU_ADU_MAX + 8];
    uint8_t pdu[AD_RTU_ADU_MAX] = {3};
    assert_int_equal(ad_rtu_frame(out, sizeof(out), 9, pdu, 253), 256);
    assert_int_equal(out[0], 9);
    assert_int_equal(ad_rtu_crc16(out, 256), 0);
    assert_int_equal(ad_rtu_frame(out, sizeof(out), 9, pdu, 254), 0);
    assert_int_equal(ad_rtu_frame(out, 10, 9, pdu, 8), 0);
    assert_int_equal(ad_rtu_frame(out, 11, 9, pdu, 8), 11);
}

/* ---- requests ----------------------------------------------------------- */

static void test_build_requests(void **state)
{
    (void)state;
    uint8_t f[AD_RTU_ADU_MAX];
    assert_frame(f, ad_rtu_build_read(f, 0x11, 3, 0x6B, 3),
                 "11 03 006B 0003 7687");
    assert_frame(f, ad_rtu_build_write_single(f, 0x11, 5, 0xAC, 1),
                 "11 05 00AC FF00 4E8B");
    /* Any non-zero value switches a coil on; zero off. */
    size_t n = ad_rtu_build_write_single(f, 0x11, 5, 0xAC, 7);
    assert_int_equal(n, 8);
    assert_int_equal(f[4], 0xFF);
    n = ad_rtu_build_write_single(f, 0x11, 5, 0xAC, 0);
    assert_int_equal(f[4], 0);
    assert_int_equal(f[5], 0);
    assert_frame(f, ad_rtu_build_write_single(f, 0x11, 6, 1, 3),
                 "11 06 0001 0003 9A9B");
    /* Coils 20..29 = 1011 0011 10 (CD 01). */
    const uint8_t bits[10] = {1, 0, 1, 1, 0, 0, 1, 1, 1, 0};
    assert_frame(f, ad_rtu_build_write_bits(f, 0x11, 0x13, 10, bits),
                 "11 0F 0013 000A 02 CD01 BF0B");
    const uint16_t regs[2] = {0x000A, 0x0102};
    assert_frame(f, ad_rtu_build_write_registers(f, 0x11, 1, 2, regs),
                 "11 10 0001 0002 04 000A 0102 C6F0");
}

static void test_build_limits(void **state)
{
    (void)state;
    uint8_t f[AD_RTU_ADU_MAX];
    static uint16_t regs[200];
    static uint8_t bits[2000];
    assert_int_equal(ad_rtu_build_read(f, 1, 3, 0, 125), 8);
    assert_int_equal(ad_rtu_build_read(f, 1, 1, 0, 2000), 8);
    errno = 0;
    assert_int_equal(ad_rtu_build_read(f, 1, 3, 0, 126), 0);
    assert_int_equal(errno, EMBMDATA);
    errno = 0;
    assert_int_equal(ad_rtu_build_read(f, 1, 4, 0, 0), 0);
    assert_int_equal(errno, EMBMDATA);
    errno = 0;
    assert_int_equal(ad_rtu_build_read(f, 1, 2, 0, 2001), 0);
    assert_int_equal(errno, EMBMDATA);
    errno = 0;
    assert_int_equal(ad_rtu_build_read(f, 1, 5, 0, 1), 0);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(ad_rtu_build_write_single(f, 1, 16, 0, 1), 0);
    assert_int_equal(errno, EINVAL);
    /* The largest writes fill 255 of the 256 bytes. */
    assert_int_equal(ad_rtu_build_write_registers(f, 1, 0, 123, regs), 255);
    assert_int_equal(ad_rtu_crc16(f, 255), 0);
    errno = 0;
    assert_int_equal(ad_rtu_build_write_registers(f, 1, 0, 124, regs), 0);
    assert_int_equal(errno, EMBMDATA);
    assert_int_equal(ad_rtu_build_write_bits(f, 1, 0, 1968, bits), 255);
    errno = 0;
    assert_int_equal(ad_rtu_build_write_bits(f, 1, 0, 1969, bits), 0);
    assert_int_equal(errno, EMBMDATA);
    errno = 0;
    assert_int_equal(ad_rtu_build_write_bits(f, 1, 0, 0, bits), 0);
    assert_int_equal(errno, EMBMDATA);
}

/* ---- replies ------------------------------------------------------------ */

static void test_reply_len(void **state)
{
    (void)state;
    const uint8_t exc[3] = {1, 0x83, 2};
    assert_int_equal(ad_rtu_reply_len(exc), 5);
    const uint8_t exc_any[3] = {1, 0xAB, 0xFF};
    assert_int_equal(ad_rtu_reply_len(exc_any), 5);
    for (uint8_t fc = 1; fc <= 4; fc++) {
        const uint8_t h[3] = {1, fc, 6};
        assert_int_equal(ad_rtu_reply_len(h), 11);
    }
    const uint8_t big[3] = {1, 3, 250};
    assert_int_equal(ad_rtu_reply_len(big), 255);
    const uint8_t biggest[3] = {1, 4, 251};
    assert_int_equal(ad_rtu_reply_len(biggest), 256);
    /* A byte count that would take the frame past 256 bytes. */
    for (unsigned bc = 252; bc <= 255; bc++) {
        for (uint8_t fc = 1; fc <= 4; fc++) {
            const uint8_t h[3] = {1, fc, (uint8_t)bc};
            errno = 0;
            assert_int_equal(ad_rtu_reply_len(h), -1);
            assert_int_equal(errno, EMBBADDATA);
        }
    }
    const uint8_t fcs[4] = {5, 6, 15, 16};
    for (int i = 0; i < 4; i++) {
        const uint8_t h[3] = {1, fcs[i], 0};
        assert_int_equal(ad_rtu_reply_len(h), 8);
    }
    const uint8_t unknown[] = {0, 7, 8, 17, 23, 43, 0x7F};
    for (size_t i = 0; i < sizeof(unknown); i++) {
        const uint8_t h[3] = {1, unknown[i], 2};
        errno = 0;
        assert_int_equal(ad_rtu_reply_len(h), -1);
        assert_int_equal(errno, EMBBADDATA);
    }
}

/* ad_rtu_reply_expect of a 3-byte head; returns the length or -errno. */
static int expect(const uint8_t *req, size_t req_len, uint8_t unit, uint8_t fc,
                  uint8_t bc)
{
    const uint8_t h[3] = {unit, fc, bc};
    errno = 0;
    int n = ad_rtu_reply_expect(req, req_len, h);
    return n >= 0 ? n : -errno;
}

static void test_reply_expect(void **state)
{
    (void)state;
    uint8_t r[AD_RTU_ADU_MAX];
    /* Reads: only the byte count the request asks for. */
    size_t n = ad_rtu_build_read(r, 1, 3, 0, 125);
    assert_int_equal(expect(r, n, 1, 3, 250), 255);
    assert_int_equal(expect(r, n, 1, 3, 248), -EMBBADDATA);
    assert_int_equal(expect(r, n, 1, 3, 255), -EMBBADDATA);
    assert_int_equal(expect(r, n, 1, 0x83, 2), 5);
    assert_int_equal(expect(r, n, 1, 0x84, 2), -EMBBADDATA);
    assert_int_equal(expect(r, n, 1, 4, 250), -EMBBADDATA);
    assert_int_equal(expect(r, n, 1, 6, 0), -EMBBADDATA);
    /* The unit is checked with the CRC, once the frame is in. */
    assert_int_equal(expect(r, n, 9, 3, 250), 255);
    n = ad_rtu_build_read(r, 1, 4, 7, 1);
    assert_int_equal(expect(r, n, 1, 4, 2), 7);
    assert_int_equal(expect(r, n, 1, 4, 255), -EMBBADDATA);
    assert_int_equal(expect(r, n, 1, 4, 0), -EMBBADDATA);
    n = ad_rtu_build_read(r, 1, 1, 0, 2000);
    assert_int_equal(expect(r, n, 1, 1, 250), 255);
    n = ad_rtu_build_read(r, 1, 2, 0, 9);
    assert_int_equal(expect(r, n, 1, 2, 2), 7);
    assert_int_equal(expect(r, n, 1, 2, 1), -EMBBADDATA);
    /* Writes: an 8-byte echo, whatever the third byte. */
    n = ad_rtu_build_write_single(r, 1, 6, 0, 1);
    assert_int_equal(expect(r, n, 1, 6, 0xFF), 8);
    const uint16_t regs[123] = {0};
    n = ad_rtu_build_write_registers(r, 1, 0, 123, regs);
    assert_int_equal(expect(r, n, 1, 16, 0), 8);
    assert_int_equal(expect(r, n, 1, 0x90, 4), 5);
    /* Not a request ADU. */
    assert_int_equal(expect(r, 4, 1, 16, 0), -EMBBADDATA);
}

/* check_reply of `rsp_hex` (CRC appended) to the request; returns errno
 * or 0. */
static int check(const uint8_t *req, size_t req_len, const char *rsp_hex)
{
    uint8_t rsp[AD_RTU_ADU_MAX];
    size_t n = hex_frame(rsp_hex, rsp, true);
    errno = 0;
    int r = ad_rtu_check_reply(req, req_len, rsp, n);
    assert_true(r == 0 || r == -1);
    return r == 0 ? 0 : errno;
}

static void test_check_reply(void **state)
{
    (void)state;
    uint8_t rd[AD_RTU_ADU_MAX], co[AD_RTU_ADU_MAX], ws[AD_RTU_ADU_MAX],
        wm[AD_RTU_ADU_MAX];
    size_t rd_n = ad_rtu_build_read(rd, 0x11, 3, 0x6B, 3);
    size_t co_n = ad_rtu_build_read(co, 0x11, 1, 0x13, 10);
    size_t ws_n = ad_rtu_build_write_single(ws, 0x11, 6, 1, 3);
    const uint16_t regs[2] = {0x000A, 0x0102};
    size_t wm_n = ad_rtu_build_write_registers(wm, 0x11, 1, 2, regs);

    /* Spec replies. */
    assert_int_equal(check(rd, rd_n, "11 03 06 AE41 5652 4340"), 0);
    assert_int_equal(check(co, co_n, "11 01 02 CD01"), 0);
    assert_int_equal(check(ws, ws_n, "11 06 0001 0003"), 0);
    assert_int_equal(check(wm, wm_n, "11 10 0001 0002"), 0);
    /* Exceptions: codes 1..11 map to MODBUS_ENOBASE + code. */
    assert_int_equal(check(rd, rd_n, "11 83 02"), MODBUS_ENOBASE + 2);
    assert_int_equal(check(rd, rd_n, "11 83 02"), EMBXILADD);
    assert_int_equal(check(ws, ws_n, "11 86 0B"), EMBXGTAR);
    assert_int_equal(check(rd, rd_n, "11 83 00"), EMBBADEXC);
    assert_int_equal(check(rd, rd_n, "11 83 0C"), EMBBADEXC);
    /* An exception for another function is the wrong function. */
    assert_int_equal(check(rd, rd_n, "11 84 02"), EMBBADDATA);
    /* Wrong unit, wrong function. */
    assert_int_equal(check(rd, rd_n, "12 03 06 AE41 5652 4340"), EMBBADSLAVE);
    assert_int_equal(check(rd, rd_n, "11 04 06 AE41 5652 4340"), EMBBADDATA);
    /* Short: fewer registers (or bits) than asked, or a truncated frame. */
    assert_int_equal(check(rd, rd_n, "11 03 04 AE41 5652"), EMBBADDATA);
    assert_int_equal(check(co, co_n, "11 01 01 CD"), EMBBADDATA);
    assert_int_equal(check(rd, rd_n, "11 03 06 AE41 5652"), EMBBADDATA);
    uint8_t tiny[4] = {0x11, 0x03, 0, 0};
    errno = 0;
    assert_int_equal(ad_rtu_check_reply(rd, rd_n, tiny, sizeof(tiny)), -1);
    assert_int_equal(errno, EMBBADDATA);
    /* A write echo that does not match. */
    assert_int_equal(check(ws, ws_n, "11 06 0001 0004"), EMBBADDATA);
    assert_int_equal(check(ws, ws_n, "11 06 0002 0003"), EMBBADDATA);
    assert_int_equal(check(wm, wm_n, "11 10 0001 0001"), EMBBADDATA);

    /* Garbled: any flipped bit fails the CRC (before unit or function). */
    uint8_t good[AD_RTU_ADU_MAX];
    size_t n = hex_frame("11 03 06 AE41 5652 4340", good, true);
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b++) {
            uint8_t bad[AD_RTU_ADU_MAX];
            memcpy(bad, good, n);
            bad[i] ^= (uint8_t)(1u << b);
            errno = 0;
            assert_int_equal(ad_rtu_check_reply(rd, rd_n, bad, n), -1);
            assert_int_equal(errno, EMBBADCRC);
        }
    }
}

/* ---- the client against a scripted peer --------------------------------- */

#define MAX_STEPS 8

/* For each request the peer receives: `reply` bytes to send back (none:
 * stay silent), then whether to close the connection. */
struct step {
    uint8_t reply[2 * AD_RTU_ADU_MAX]; /* room for oversized replies */
    size_t reply_len;
    bool close_after;
};

struct peer {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    struct step steps[MAX_STEPS];
    size_t n_steps;
    uint8_t got[MAX_STEPS][AD_RTU_ADU_MAX]; /* the requests received */
    size_t got_len[MAX_STEPS];
};

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    int fd = accept(p->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    for (size_t i = 0; i < p->n_steps; i++) {
        /* Requests here are 8 bytes (reads, single writes). */
        size_t have = 0;
        while (have < 8) {
            ssize_t k = read(fd, p->got[i] + have, 8 - have);
            if (k <= 0)
                goto out;
            have += (size_t)k;
        }
        p->got_len[i] = have;
        const struct step *s = &p->steps[i];
        if (s->reply_len &&
            write(fd, s->reply, s->reply_len) != (ssize_t)s->reply_len)
            goto out;
        if (s->close_after)
            goto out;
    }
    /* Wait for the client to close. */
    uint8_t sink[64];
    while (read(fd, sink, sizeof(sink)) > 0)
        ;
out:
    close(fd);
    return NULL;
}

static void peer_start(struct peer *p)
{
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(p->listen_fd, 1), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&a, &len), 0);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static void peer_join(struct peer *p)
{
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
}

static void step_reply(struct peer *p, const char *hex, bool add_crc)
{
    struct step *s = &p->steps[p->n_steps++];
    s->reply_len = hex ? hex_frame(hex, s->reply, add_crc) : 0;
}

static void test_client_transactions(void **state)
{
    (void)state;
    struct peer p = {0};
    step_reply(&p, "11 03 06 AE41 5652 4340", true); /* 1: registers */
    step_reply(&p, "11 01 02 CD01", true);           /* 2: coils */
    step_reply(&p, "11 83 02", true);                /* 3: exception 02 */
    step_reply(&p, "12 03 02 0001", true);           /* 4: wrong unit */
    step_reply(&p, "11 03 02 0001", false);          /* 5: no CRC: short */
    step_reply(&p, "11 06 0001 0003", true);         /* 6: write echo */
    step_reply(&p, "11 04 02 0001", true);           /* 7: wrong function */
    step_reply(&p, NULL, false);                     /* 8: silence */
    p.steps[7].close_after = true;
    peer_start(&p);

    struct ad_rtu_tcp c;
    ad_rtu_tcp_init(&c);
    assert_int_equal(ad_rtu_tcp_connect(&c, "127.0.0.1", p.port, 2000), 0);
    c.unit = 0x11;
    c.timeout_ms = 2000;

    uint16_t regs[3];
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0x6B, 3, regs), 3);
    assert_int_equal(regs[0], 0xAE41);
    assert_int_equal(regs[1], 0x5652);
    assert_int_equal(regs[2], 0x4340);

    uint8_t bits[10];
    assert_int_equal(ad_rtu_tcp_read_bits(&c, 0x13, 10, bits), 10);
    const uint8_t want_bits[10] = {1, 0, 1, 1, 0, 0, 1, 1, 1, 0};
    assert_memory_equal(bits, want_bits, 10);

    errno = 0;
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0x6B, 3, regs), -1);
    assert_int_equal(errno, EMBXILADD);

    /* A reply from unit 0x12 (its length is known): dropped, reported. */
    errno = 0;
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0, 1, regs), -1);
    assert_int_equal(errno, EMBBADSLAVE);

    /* Five bytes where seven are due: the short frame times out. */
    c.timeout_ms = 100;
    c.byte_timeout_ms = 100;
    errno = 0;
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0, 1, regs), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(ad_rtu_tcp_flush(&c) >= 0);
    c.timeout_ms = 2000;

    assert_int_equal(ad_rtu_tcp_write_register(&c, 1, 3), 1);

    errno = 0;
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0, 1, regs), -1);
    assert_int_equal(errno, EMBBADDATA);

    /* Silence, then the peer closes: the link is lost. */
    errno = 0;
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0, 1, regs), -1);
    assert_int_equal(errno, ECONNRESET);

    ad_rtu_tcp_close(&c);
    ad_rtu_tcp_close(&c); /* idempotent */
    ad_rtu_tcp_close(NULL);
    peer_join(&p);

    /* What went on the wire. */
    assert_frame(p.got[0], p.got_len[0], "11 03 006B 0003 7687");
    assert_frame(p.got[5], p.got_len[5], "11 06 0001 0003 9A9B");
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(ad_rtu_crc16(p.got[i], p.got_len[i]), 0);
}

static void test_client_stale_input_dropped(void **state)
{
    (void)state;
    /* The first reply arrives twice (a late duplicate): the second request
     * must not take the stale copy for its own answer. */
    struct peer p = {0};
    step_reply(&p, NULL, false);
    struct step *s = &p.steps[0];
    s->reply_len = hex_frame("01 03 02 1111", s->reply, true);
    memcpy(s->reply + s->reply_len, s->reply, s->reply_len);
    s->reply_len *= 2;
    step_reply(&p, "01 03 02 2222", true);
    peer_start(&p);

    struct ad_rtu_tcp c;
    ad_rtu_tcp_init(&c);
    assert_int_equal(ad_rtu_tcp_connect(&c, "127.0.0.1", p.port, 2000), 0);
    c.unit = 1;
    c.timeout_ms = 2000;
    uint16_t reg = 0;
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0, 1, &reg), 1);
    assert_int_equal(reg, 0x1111);
    /* Both copies went out in one write, so the duplicate is already in
     * the client's buffer: it is dropped before the next request is sent,
     * and the next reply is the peer's new one. */
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0, 1, &reg), 1);
    assert_int_equal(reg, 0x2222);
    ad_rtu_tcp_close(&c);
    peer_join(&p);
}

/* A reply of 255 data bytes (a 260-byte frame with a valid CRC) to reads
 * of one register, of 125 registers and of 2000 coils: refused as a
 * protocol error after its first 3 bytes, the rest dropped; nothing is
 * written past the 256-byte frame buffer (ASan would report it), and the
 * connection serves the next request. */
static void test_client_oversized_reply(void **state)
{
    (void)state;
    struct peer p = {0};
    for (int i = 0; i < 3; i++) {
        struct step *s = &p.steps[p.n_steps++];
        uint8_t fc = i == 2 ? 1 : 3;
        s->reply[0] = 1;
        s->reply[1] = fc;
        s->reply[2] = 255;
        for (size_t k = 0; k < 255; k++)
            s->reply[3 + k] = (uint8_t)(0xA5 ^ k);
        uint16_t crc = ad_rtu_crc16(s->reply, 258);
        s->reply[258] = (uint8_t)(crc & 0xFF);
        s->reply[259] = (uint8_t)(crc >> 8);
        s->reply_len = 260;
    }
    step_reply(&p, "01 03 02 1234", true);
    peer_start(&p);

    struct ad_rtu_tcp c;
    ad_rtu_tcp_init(&c);
    assert_int_equal(ad_rtu_tcp_connect(&c, "127.0.0.1", p.port, 2000), 0);
    c.unit = 1;
    c.timeout_ms = 2000;
    uint16_t regs[125];
    errno = 0;
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0, 1, regs), -1);
    assert_int_equal(errno, EMBBADDATA);
    errno = 0;
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0, 125, regs), -1);
    assert_int_equal(errno, EMBBADDATA);
    static uint8_t bits[2000];
    errno = 0;
    assert_int_equal(ad_rtu_tcp_read_bits(&c, 0, 2000, bits), -1);
    assert_int_equal(errno, EMBBADDATA);
    /* The rest of the bad frames is gone: the next reply is the right one. */
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0, 1, regs), 1);
    assert_int_equal(regs[0], 0x1234);
    ad_rtu_tcp_close(&c);
    peer_join(&p);
}

static void test_client_connect_errors(void **state)
{
    (void)state;
    /* A port nobody listens on: refused. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    uint16_t port = ntohs(a.sin_port);
    close(fd); /* bound, never listened: the port refuses */

    struct ad_rtu_tcp c;
    ad_rtu_tcp_init(&c);
    errno = 0;
    assert_int_equal(ad_rtu_tcp_connect(&c, "127.0.0.1", port, 1000), -1);
    assert_int_equal(errno, ECONNREFUSED);
    assert_int_equal(c.fd, -1);
    errno = 0;
    assert_int_equal(ad_rtu_tcp_connect(&c, "no-such-host.invalid", 502, 1000),
                     -1);
    assert_int_equal(errno, EHOSTUNREACH);
    /* Not connected: every call fails like a lost link. */
    uint16_t reg;
    errno = 0;
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0, 1, &reg), -1);
    assert_int_equal(errno, EBADF);
    /* A read from unit 0 (broadcast) is refused before anything is
     * sent. */
    c.fd = 0; /* never used */
    c.unit = 0;
    errno = 0;
    assert_int_equal(ad_rtu_tcp_read_registers(&c, 0, 1, &reg), -1);
    assert_int_equal(errno, EINVAL);
    c.fd = -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_vectors),
        cmocka_unit_test(test_frame_bounds),
        cmocka_unit_test(test_build_requests),
        cmocka_unit_test(test_build_limits),
        cmocka_unit_test(test_reply_len),
        cmocka_unit_test(test_reply_expect),
        cmocka_unit_test(test_check_reply),
        cmocka_unit_test(test_client_transactions),
        cmocka_unit_test(test_client_stale_input_dropped),
        cmocka_unit_test(test_client_oversized_reply),
        cmocka_unit_test(test_client_connect_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
