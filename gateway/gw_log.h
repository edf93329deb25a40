/* gw_log.h - one logging call for the whole daemon.
 *
 * A struct gw_log is owned by whoever creates it (the daemon's context) and
 * passed by pointer to every module that logs; there is no global logger.
 * Lines go to stderr: under systemd (JOURNAL_STREAM set) each line carries a
 * "<N>" syslog priority prefix that journald understands, otherwise a
 * timestamp and the level name.  Writing is thread-safe (one fprintf per
 * line).  Never pass secrets (passwords, SASL data, keys) to these calls. */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum gw_log_level {
    GW_LOG_ERROR = 3, /* syslog LOG_ERR */
    GW_LOG_WARN = 4,
    GW_LOG_NOTICE = 5,
    GW_LOG_INFO = 6,
    GW_LOG_DEBUG = 7,
};

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

#define GW_LOG(log, lvl, area, ...)                                            \
    do {                                                                       \
        const struct gw_log *gw__l = (log);                                    \
        if (gw__l && (lvl) <= gw__l->level)                                    \
            gw_log_write(gw__l, (lvl), (area), __VA_ARGS__);                   \
    } while (0)

#endif
