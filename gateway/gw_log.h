/* gw_log.h - one logging call for the whole daemon.
 *
 * A struct gw_log is owned by whoever creates it (the daemon's context) and
 * passed by pointer to every module that logs; there is no global logger.
 * Lines go to stderr: under systemd (JOURNAL_STREAM set) each line carries a
 * "<N>" syslog priority prefix that journald understands, otherwise a
 * timestamp and the level name.  Writing is thread-safe (one fprintf per
 * line).  Never pass secrets (passwords, SASL data, keys) to these calls.
 *
 * One call writes exactly one line, whatever its arguments: the sink
 * escapes the formatted message (see gw_log_esc), so text that came from a
 * peer (a JID, a node id, a form value) or a device can neither end the line
 * early, forge a "<N>" priority for journald, nor drive the terminal that
 * shows the log.  A message longer than GW_LOG_MSG_MAX bytes after escaping
 * is cut on a character boundary and ends with GW_LOG_TRUNCATED. */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum gw_log_level {
    GW_LOG_ERROR = 3, /* syslog LOG_ERR */
    GW_LOG_WARN = 4,
    GW_LOG_NOTICE = 5,
    GW_LOG_INFO = 6,
    GW_LOG_DEBUG = 7,
};

/* The longest message part of a line, in bytes after escaping (the prefix,
 * area and newline come on top), and the marker that ends a cut message. */
#define GW_LOG_MSG_MAX 1024
#define GW_LOG_TRUNCATED "...[truncated]"

struct gw_log {
    enum gw_log_level level; /* lines above this level are dropped */
    FILE *out;               /* NULL means stderr */
    bool journal;            /* prefix lines with <N> instead of a time */
};

/* Sets defaults: level INFO, stderr, journal prefix when JOURNAL_STREAM is
 * in the environment. */
void gw_log_init(struct gw_log *log);

/* Parses "error", "warn", "notice", "info" or "debug".  Returns 0 or
 * GW_EINVAL. */
int gw_log_level_parse(const char *name, enum gw_log_level *out);
const char *gw_log_level_name(enum gw_log_level level);

/* Writes one line.  Use the GW_LOG macro, which skips the formatting of
 * lines the level filter drops.  log may be NULL (then nothing is written). */
void gw_log_write(const struct gw_log *log, enum gw_log_level level,
                  const char *area, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Copies src into dst (cap bytes, always NUL-terminated when cap > 0) as
 * printable text of one line: "\n", "\r", "\t" for those, "\xHH" for every
 * other control character (C0, DEL, the UTF-8 encoded C1 range) and for
 * every byte that is not part of valid UTF-8 (overlong forms, surrogates,
 * code points above U+10FFFF included).  Valid UTF-8 and backslashes are
 * copied as they are, so escaping twice changes nothing.  When the result
 * does not fit, it is cut on a character boundary (never inside an escape
 * or a UTF-8 sequence) and ends with "..." (when cap > 3).  Returns the
 * length written, without the NUL.  src NULL is copied as "(null)".  For
 * quoting a peer string into a bounded buffer; GW_LOG escapes by itself. */
size_t gw_log_esc(char *dst, size_t cap, const char *src);

#define GW_LOG(log, lvl, area, ...)                                            \
    do {                                                                       \
        const struct gw_log *gw__l = (log);                                    \
        if (gw__l && (lvl) <= gw__l->level)                                    \
            gw_log_write(gw__l, (lvl), (area), __VA_ARGS__);                   \
    } while (0)

#endif
