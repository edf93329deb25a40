/* gw_log.c - line-oriented logging to stderr or journald. */
#include "gw_log.h"

#include <stdarg.h>
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

void gw_log_write(const struct gw_log *log, enum gw_log_level level,
                  const char *area, const char *fmt, ...)
{
    if (!log || level > log->level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    FILE *out = log->out ? log->out : stderr;
    if (log->journal) {
        fprintf(out, "<%d>%s: %s\n", (int)level, area, msg);
    } else {
        struct timespec ts;
        struct tm tm;
        char when[32];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(out, "%s.%03ldZ %-6s %s: %s\n", when, ts.tv_nsec / 1000000L,
                gw_log_level_name(level), area, msg);
    }
    fflush(out);
}
