/* gw_log.c - line-oriented logging to stderr or journald. */
#include "gw_log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_err.h"

static const char *const level_names[] = {
    [GW_LOG_ERROR] = "error",   [GW_LOG_WARN] = "warn",
    [GW_LOG_NOTICE] = "notice", [GW_LOG_INFO] = "info",
    [GW_LOG_DEBUG] = "debug",
};

void gw_log_init(struct gw_log *log)
{
    log->level = GW_LOG_INFO;
    log->out = NULL;
    log->journal = getenv("JOURNAL_STREAM") != NULL;
}

int gw_log_level_parse(const char *name, enum gw_log_level *out)
{
    for (int l = GW_LOG_ERROR; l <= GW_LOG_DEBUG; l++) {
        if (strcmp(name, level_names[l]) == 0) {
            *out = (enum gw_log_level)l;
            return GW_OK;
        }
    }
    return GW_EINVAL;
}

const char *gw_log_level_name(enum gw_log_level level)
{
    if (level < GW_LOG_ERROR || level > GW_LOG_DEBUG)
        return "?";
    return level_names[level];
}

/* The length of the valid UTF-8 sequence at p (n bytes left), or 0 when the
 * byte at p does not start one (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). *cp gets the code point. */
static size_t utf8_len(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char b = p[0];
    size_t len;
    uint32_t c, min;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2, c = b & 0x1Fu, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3, c = b & 0x0Fu, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4, c = b & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

/* Escapes src[0..n) into dst while the result fits in room bytes (no NUL
 * written); a character is written whole or not at all.  Returns the bytes
 * written; *used gets the bytes of src consumed. */
static size_t esc_span(char *dst, size_t room, const char *src, size_t n,
                       size_t *used)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp = 0;
        size_t len = utf8_len(s + i, n - i, &cp);
        char e[4];
        const char *out = (const char *)s + i;
        size_t olen = len;
        if (len == 0 || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            /* One escape per byte: a control character (C1 ones are two
             * bytes in UTF-8) or a byte that is not valid UTF-8. */
            unsigned char b = s[i];
            len = 1;
            out = e;
            e[0] = '\\';
            if (b == '\n' || b == '\r' || b == '\t') {
                e[1] = b == '\n' ? 'n' : b == '\r' ? 'r' : 't';
                olen = 2;
            } else {
                e[1] = 'x';
                e[2] = hex[b >> 4];
                e[3] = hex[b & 0x0F];
                olen = 4;
            }
        }
        if (olen > room - o)
            break;
        memcpy(dst + o, out, olen);
        o += olen;
        i += len;
    }
    *used = i;
    return o;
}

size_t gw_log_esc(char *dst, size_t cap, const char *src)
{
    if (!dst || cap == 0)
        return 0;
    if (!src)
        src = "(null)";
    size_t n = strlen(src), used;
    size_t o = esc_span(dst, cap - 1, src, n, &used);
    if (used < n) {
        static const char dots[] = "...";
        size_t marker = sizeof(dots) - 1;
        if (cap - 1 > marker) {
            o = esc_span(dst, cap - 1 - marker, src, n, &used);
            memcpy(dst + o, dots, marker);
            o += marker;
        }
    }
    dst[o] = '\0';
    return o;
}

void gw_log_write(const struct gw_log *log, enum gw_log_level level,
                  const char *area, const char *fmt, ...)
{
    if (!log || level > log->level)
        return;
    /* Formatted first (at most twice the line's bound), then escaped into
     * the line's bound: a message with an embedded NUL is escaped whole. */
    char raw[2 * GW_LOG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    size_t n = len < 0 ? 0 : (size_t)len;
    bool cut = n >= sizeof(raw);
    if (cut)
        n = sizeof(raw) - 1;
    char msg[GW_LOG_MSG_MAX + 1];
    size_t used;
    size_t m = esc_span(msg, GW_LOG_MSG_MAX, raw, n, &used);
    if (cut || used < n) {
        static const char marker[] = GW_LOG_TRUNCATED;
        m = esc_span(msg, GW_LOG_MSG_MAX - (sizeof(marker) - 1), raw, n, &used);
        memcpy(msg + m, marker, sizeof(marker) - 1);
        m += sizeof(marker) - 1;
    }
    msg[m] = '\0';
    char where[64];
    gw_log_esc(where, sizeof(where), area);
    FILE *out = log->out ? log->out : stderr;
    if (log->journal) {
        fprintf(out, "<%d>%s: %s\n", (int)level, where, msg);
    } else {
        struct timespec ts;
        struct tm tm;
        char when[32];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(out, "%s.%03ldZ %-6s %s: %s\n", when, ts.tv_nsec / 1000000L,
                gw_log_level_name(level), where, msg);
    }
    fflush(out);
}
