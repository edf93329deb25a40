/* fuzz_rtu_tcp.c - libFuzzer target for the replies of an RTU-over-TCP
 * device (adapters/ad_rtu_tcp.c).
 *
 * The input is what a device (or anything else on the serial server's
 * port) sends back.  Its first HEADER bytes choose the request:
 *
 *   [0] kind (% 8): read coils, read discrete inputs, read holding, read
 *       input registers, write coil, write register, write coils, write
 *       registers
 *   [1] unit id (1..247)
 *   [2..3] address      [4..5] quantity (wrapped into the kind's limits)
 *
 * and the rest is the reply stream.  The reply goes through
 * ad_rtu_recv_reply, the code path of the client's transactions, into a
 * buffer of exactly AD_RTU_ADU_MAX bytes, with a reader that hands out the
 * stream in the chunks the client asks for (ETIMEDOUT when it runs out, as
 * a silent device).  Oracle: no crash or sanitizer report; every outcome is
 * a reply length that fits the frame and matches the request (whose items
 * then decode), or -1 with one of the errno values the client documents,
 * never a read beyond the frame.  Any broken property aborts. */
#include <errno.h>
#include <modbus.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad_rtu_tcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER 6

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_rtu_tcp: %s:%d: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

struct stream {
    const uint8_t *data;
    size_t size, off;
    size_t asked; /* bytes asked for so far */
    int calls;
};

static int stream_recv(void *ctx, uint8_t *buf, size_t n, int first)
{
    struct stream *s = ctx;
    CHECK(n >= 1);
    CHECK(first == (s->calls == 0));
    s->calls++;
    s->asked += n;
    CHECK(s->asked <= AD_RTU_ADU_MAX);
    if (s->size - s->off < n) {
        s->off = s->size;
        errno = ETIMEDOUT;
        return -1;
    }
    memcpy(buf, s->data + s->off, n);
    s->off += n;
    return 0;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static bool documented_errno(int e)
{
    if (e > MODBUS_ENOBASE && e < MODBUS_ENOBASE + MODBUS_EXCEPTION_MAX)
        return true; /* a well-formed exception 1..11 */
    return e == ETIMEDOUT || e == EMBBADDATA || e == EMBBADCRC ||
           e == EMBBADSLAVE || e == EMBBADEXC;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER)
        return 0;
    unsigned kind = data[0] % 8u;
    uint8_t unit = (uint8_t)(1u + data[1] % 247u);
    uint16_t addr = get16(data + 2);
    uint16_t q = get16(data + 4);
    uint8_t req[AD_RTU_ADU_MAX];
    size_t req_len = 0;
    uint16_t count = 1;
    static uint8_t bits[2000];
    static uint16_t regs[125];
    switch (kind) {
    case 0:
    case 1:
        count = (uint16_t)(1u + q % 2000u);
        req_len =
            ad_rtu_build_read(req, unit, (uint8_t)(kind + 1), addr, count);
        break;
    case 2:
    case 3:
        count = (uint16_t)(1u + q % 125u);
        req_len =
            ad_rtu_build_read(req, unit, (uint8_t)(kind + 1), addr, count);
        break;
    case 4:
        req_len = ad_rtu_build_write_single(req, unit, 5, addr, q & 1u);
        break;
    case 5:
        req_len = ad_rtu_build_write_single(req, unit, 6, addr, q);
        break;
    case 6:
        count = (uint16_t)(1u + q % 1968u);
        for (uint16_t i = 0; i < count; i++)
            bits[i] = (uint8_t)((q >> (i % 16)) & 1u);
        req_len = ad_rtu_build_write_bits(req, unit, addr, count, bits);
        break;
    default:
        count = (uint16_t)(1u + q % 123u);
        for (uint16_t i = 0; i < count; i++)
            regs[i] = (uint16_t)(q + i);
        req_len = ad_rtu_build_write_registers(req, unit, addr, count, regs);
        break;
    }
    CHECK(req_len >= 8 && req_len <= AD_RTU_ADU_MAX);
    CHECK(ad_rtu_crc16(req, req_len) == 0);

    /* Exactly the client's frame buffer: ASan sees any byte past it. */
    uint8_t *rsp = malloc(AD_RTU_ADU_MAX);
    CHECK(rsp != NULL);
    struct stream s = {.data = data + HEADER, .size = size - HEADER};
    errno = 0;
    int len = ad_rtu_recv_reply(req, req_len, rsp, stream_recv, &s);
    if (len < 0) {
        CHECK(len == -1);
        CHECK(documented_errno(errno));
        free(rsp);
        return 0;
    }
    /* A valid reply: it fits, matches the request, and decodes. */
    CHECK(len >= 5 && len <= AD_RTU_ADU_MAX);
    CHECK((size_t)len == s.asked);
    CHECK(ad_rtu_crc16(rsp, (size_t)len) == 0);
    CHECK(rsp[0] == req[0] && rsp[1] == req[1]);
    if (kind <= 1) {
        CHECK((size_t)len == 5u + (count + 7u) / 8u);
        ad_rtu_reply_bits(rsp, count, bits);
        for (uint16_t i = 0; i < count; i++)
            CHECK(bits[i] <= 1);
    } else if (kind <= 3) {
        CHECK((size_t)len == 5u + 2u * count);
        ad_rtu_reply_registers(rsp, count, regs);
        for (uint16_t i = 0; i < count; i++)
            CHECK(regs[i] == get16(rsp + 3 + 2 * i));
    } else {
        CHECK(len == 8);
        CHECK(memcmp(rsp + 2, req + 2, 4) == 0);
    }
    free(rsp);
    return 0;
}
