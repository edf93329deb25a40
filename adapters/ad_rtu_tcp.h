/* ad_rtu_tcp.h - Modbus RTU frames through a TCP socket (serial-to-Ethernet
 * gateways in transparent mode), which libmodbus 3.1.6 has no backend for.
 *
 * A tiny blocking client, used only on one link's worker thread (not
 * thread-safe).  Its calls mirror libmodbus's: they return the number of
 * items read or written, or -1 with errno set the libmodbus way:
 *   ETIMEDOUT                  no (complete) reply within the timeouts
 *   MODBUS_ENOBASE + code      Modbus exception `code` (1..11)
 *   EMBBADCRC                  a reply with a bad CRC
 *   EMBBADSLAVE                a reply from another unit
 *   EMBBADDATA                 a reply for another function, of an unknown
 *                              function, or that does not match the request
 *   EMBBADEXC                  an exception reply with code 0 or >= 12
 *   EMBMDATA / EINVAL          a count out of range / a read from unit 0
 *   ECONNRESET, EPIPE, ...     the connection is lost (peer closed: ECONNRESET)
 * After a mismatched, garbled or wrong-unit reply the client has already
 * dropped the pending input (ad_rtu_tcp_flush); after a timeout the caller
 * flushes.  Stale input is also dropped before each request is sent.
 *
 * Frame: unit id, PDU, CRC-16/MODBUS low byte first; at most 256 bytes
 * (Modbus over Serial Line v1.02, 2.5.1.1). */
#ifndef AD_RTU_TCP_H
#define AD_RTU_TCP_H

#include <stddef.h>
#include <stdint.h>

#define AD_RTU_ADU_MAX 256              /* Modbus over Serial Line 2.5.1.1 */
#define AD_RTU_TCP_BYTE_TIMEOUT_MS 500u /* between bytes of one reply */

/* ---- pure frame functions ---------------------------------------------- */

/* CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) of buf. */
uint16_t ad_rtu_crc16(const uint8_t *buf, size_t len);

/* Writes unit, pdu and the CRC (low byte first) to out.  Returns the ADU
 * length, or 0 when it would exceed cap or AD_RTU_ADU_MAX. */
size_t ad_rtu_frame(uint8_t *out, size_t cap, uint8_t unit, const uint8_t *pdu,
                    size_t pdu_len);

/* Request ADUs into out[AD_RTU_ADU_MAX].  Return the length, or 0 with errno
 * EMBMDATA (count out of range) or EINVAL (function code). */
size_t ad_rtu_build_read(uint8_t *out, uint8_t unit, uint8_t fc, uint16_t addr,
                         uint16_t count); /* fc 1..4 */
size_t ad_rtu_build_write_single(uint8_t *out, uint8_t unit, uint8_t fc,
                                 uint16_t addr, uint16_t value); /* fc 5, 6 */
size_t ad_rtu_build_write_bits(uint8_t *out, uint8_t unit, uint16_t addr,
                               uint16_t count, const uint8_t *bits); /* 15 */
size_t ad_rtu_build_write_registers(uint8_t *out, uint8_t unit, uint16_t addr,
                                    uint16_t count,
                                    const uint16_t *regs); /* 16 */

/* The full length of a reply from its first 3 bytes (unit, function, byte
 * count): an exception (fc | 0x80) 5, FC1..4 5 + byte count, FC5/6/15/16 8.
 * Returns -1 with errno EMBBADDATA for any other function code, or when
 * the byte count would take the frame past AD_RTU_ADU_MAX (above 251). */
int ad_rtu_reply_len(const uint8_t head[3]);

/* The length the reply to req must have, from its first 3 bytes: 5 for an
 * exception to req's function; for FC1..4 5 + the byte count req asks for
 * (the reply's byte count must be exactly that); 8 for FC5/6/15/16.  The
 * result is never above AD_RTU_ADU_MAX.  Returns -1 with errno EMBBADDATA
 * for any other function, a byte count that is not the one due, or a
 * request that is not a well-formed ADU. */
int ad_rtu_reply_expect(const uint8_t *req, size_t req_len,
                        const uint8_t head[3]);

/* Checks a complete reply rsp against its request req (both ADUs): CRC,
 * unit, function, exception, then the byte count (reads) or the echo of
 * address and value or quantity (writes).  Returns 0 or -1 with errno. */
int ad_rtu_check_reply(const uint8_t *req, size_t req_len, const uint8_t *rsp,
                       size_t rsp_len);

/* Reads exactly n bytes into buf (n >= 1); first is true for the first
 * bytes of a reply (waited for up to the response timeout), false for the
 * rest (the byte timeout).  Returns 0 or -1 with errno (ETIMEDOUT, ...). */
typedef int (*ad_rtu_recv_fn)(void *ctx, uint8_t *buf, size_t n, int first);

/* Receives the reply to req through recv_fn and checks it: 3 bytes, then the
 * rest of the length ad_rtu_reply_expect allows, then ad_rtu_check_reply.
 * Never writes past rsp[AD_RTU_ADU_MAX - 1] and never asks recv_fn for more
 * than the frame can hold.  Returns the reply length (>= 5) or -1 with
 * errno: recv_fn's, EMBBADDATA (a length the request does not allow),
 * EMBBADCRC, EMBBADSLAVE, EMBBADEXC, or MODBUS_ENOBASE + code for a
 * well-formed exception.  Pure apart from recv_fn: the client's transactions
 * and the fuzz target (tests/fuzz/fuzz_rtu_tcp.c) share it. */
int ad_rtu_recv_reply(const uint8_t *req, size_t req_len,
                      uint8_t rsp[AD_RTU_ADU_MAX], ad_rtu_recv_fn recv_fn,
                      void *ctx);

/* The items of a checked read reply (rsp from ad_rtu_recv_reply to a read
 * of n items): bits one byte each (0/1), registers in host order.  n must
 * be the request's count. */
void ad_rtu_reply_bits(const uint8_t *rsp, uint16_t n, uint8_t *dest);
void ad_rtu_reply_registers(const uint8_t *rsp, uint16_t n, uint16_t *dest);

/* ---- the client -------------------------------------------------------- */

struct ad_rtu_tcp {
    int fd;              /* -1 when not connected */
    uint8_t unit;        /* unit id of the next requests */
    uint32_t timeout_ms; /* response timeout: until the first byte */
    uint32_t byte_timeout_ms;
};

/* Not connected, unit 1, timeout 1 s, byte timeout 500 ms. */
void ad_rtu_tcp_init(struct ad_rtu_tcp *c);

/* Resolves host and connects to the first address that answers within
 * timeout_ms (non-blocking connect + poll).  Returns 0 or -1 with errno
 * (ETIMEDOUT, ECONNREFUSED, ...; EHOSTUNREACH when host does not resolve). */
int ad_rtu_tcp_connect(struct ad_rtu_tcp *c, const char *host, uint16_t port,
                       uint32_t timeout_ms);

/* Closes the socket; NULL-safe and idempotent. */
void ad_rtu_tcp_close(struct ad_rtu_tcp *c);

/* Drops input already received, without blocking.  Returns the number of
 * bytes dropped, or -1 with errno when the connection is lost. */
int ad_rtu_tcp_flush(struct ad_rtu_tcp *c);

/* Transactions on unit c->unit; bits are one byte each (0/1).  A write to
 * unit 0 (broadcast) waits for no reply and returns at once. */
int ad_rtu_tcp_read_bits(struct ad_rtu_tcp *c, uint16_t addr, uint16_t n,
                         uint8_t *dest);
int ad_rtu_tcp_read_input_bits(struct ad_rtu_tcp *c, uint16_t addr, uint16_t n,
                               uint8_t *dest);
int ad_rtu_tcp_read_registers(struct ad_rtu_tcp *c, uint16_t addr, uint16_t n,
                              uint16_t *dest);
int ad_rtu_tcp_read_input_registers(struct ad_rtu_tcp *c, uint16_t addr,
                                    uint16_t n, uint16_t *dest);
int ad_rtu_tcp_write_bit(struct ad_rtu_tcp *c, uint16_t addr, int on);
int ad_rtu_tcp_write_bits(struct ad_rtu_tcp *c, uint16_t addr, uint16_t n,
                          const uint8_t *bits);
int ad_rtu_tcp_write_register(struct ad_rtu_tcp *c, uint16_t addr,
                              uint16_t value);
int ad_rtu_tcp_write_registers(struct ad_rtu_tcp *c, uint16_t addr, uint16_t n,
                               const uint16_t *regs);

#endif
