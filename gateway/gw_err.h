/* gw_err.h - the one error enum of fieldgate.
 *
 * 0 is success; every error is a negative number.  Numbers are never reused:
 * a retired code stays in the list as GW_EOBSOLETE<N>.  Errors from libuv,
 * libmodbus and GnuTLS are translated at the module boundary; the module logs
 * the original number beside ours. */
#ifndef GW_ERR_H
#define GW_ERR_H

#define GW_ERR_MAP(XX)                                                         \
    XX(NOMEM, -1, "out of memory")                                             \
    XX(INVAL, -2, "invalid argument")                                          \
    XX(RANGE, -3, "value out of range")                                        \
    XX(TYPE, -4, "wrong type")                                                 \
    XX(IO, -5, "input/output error")                                           \
    XX(TIMEOUT, -6, "timed out")                                               \
    XX(CONFIG, -7, "configuration error")                                      \
    XX(PARSE, -8, "parse error")                                               \
    XX(NOTFOUND, -9, "not found")                                              \
    XX(EXISTS, -10, "already exists")                                          \
    XX(READONLY, -11, "not writable")                                          \
    XX(LIMIT, -12, "limit exceeded")                                           \
    XX(CANCELED, -13, "operation canceled")                                    \
    XX(BUSY, -14, "resource busy")                                             \
    XX(PROTO, -15, "protocol error")                                           \
    XX(TLS, -16, "TLS error")                                                  \
    XX(AUTH, -17, "authentication failed")                                     \
    XX(MBEXC, -18, "Modbus exception")                                         \
    XX(DISCONNECTED, -19, "not connected")                                     \
    XX(NONFINITE, -20, "value is not a finite number")                         \
    XX(BADBCD, -21, "invalid BCD digit")                                       \
    XX(FORBIDDEN, -22, "forbidden")                                            \
    XX(UNSUPPORTED, -23, "not supported")                                      \
    XX(AGAIN, -24, "try again")                                                \
    XX(CLOSED, -25, "closed")                                                  \
    XX(DNS, -26, "name resolution failed")                                     \
    XX(VERIFY, -27, "read-back does not match the written value")              \
    XX(STALE, -28, "value is stale")                                           \
    XX(SYS, -29, "system call failed")

enum gw_err {
    GW_OK = 0,
#define GW_ERR_ENUM(name, num, text) GW_E##name = (num),
    GW_ERR_MAP(GW_ERR_ENUM)
#undef GW_ERR_ENUM
};

/* A readable text for an error code ("unknown error" for anything else).
 * The string is static. */
const char *gw_strerror(int err);

/* The symbolic name, e.g. "GW_ETIMEOUT".  The string is static. */
const char *gw_err_name(int err);

#endif
