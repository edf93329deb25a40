/* gw_store.c - latest values, qualities and health counters. */
#include "gw_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_err.h"

int64_t gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gw_store_init(struct gw_store *s, const struct cfg *cfg)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    size_t words = 0;
    for (size_t l = 0; l < cfg->n_links; l++)
        for (size_t u = 0; u < cfg->links[l].n_units; u++)
            for (size_t p = 0; p < cfg->links[l].units[u].n_points; p++)
                words += cfg->links[l].units[u].points[p].count;
    s->links = calloc(cfg->n_links ? cfg->n_links : 1, sizeof(*s->links));
    s->raw_words = calloc(words ? words : 1, sizeof(uint16_t));
    if (!s->links || !s->raw_words)
        goto fail;
    uint16_t *next = s->raw_words;
    for (size_t l = 0; l < cfg->n_links; l++) {
        const struct cfg_link *cl = &cfg->links[l];
        struct gw_link_state *ls = &s->links[l];
        ls->units = calloc(cl->n_units ? cl->n_units : 1, sizeof(*ls->units));
        if (!ls->units)
            goto fail;
        for (size_t u = 0; u < cl->n_units; u++) {
            const struct cfg_unit *cu = &cl->units[u];
            struct gw_unit_state *us = &ls->units[u];
            us->points =
                calloc(cu->n_points ? cu->n_points : 1, sizeof(*us->points));
            if (!us->points)
                goto fail;
            for (size_t p = 0; p < cu->n_points; p++) {
                us->points[p].raw = next;
                next += cu->points[p].count;
            }
        }
    }
    return GW_OK;
fail:
    gw_store_close(s);
    return GW_ENOMEM;
}

void gw_store_close(struct gw_store *s)
{
    if (!s || !s->cfg)
        return;
    if (s->links) {
        for (size_t l = 0; l < s->cfg->n_links; l++) {
            struct gw_link_state *ls = &s->links[l];
            if (!ls->units)
                continue;
            for (size_t u = 0; u < s->cfg->links[l].n_units; u++)
                free(ls->units[u].points);
            free(ls->units);
        }
    }
    free(s->links);
    free(s->raw_words);
    memset(s, 0, sizeof(*s));
}

int gw_store_listen(struct gw_store *s, gw_store_cb cb, void *data)
{
    if (s->n_listeners >= GW_STORE_MAX_LISTENERS)
        return GW_ELIMIT;
    s->listeners[s->n_listeners].cb = cb;
    s->listeners[s->n_listeners].data = data;
    s->n_listeners++;
    return GW_OK;
}

void gw_store_unlisten(struct gw_store *s, gw_store_cb cb, void *data)
{
    for (size_t i = 0; i < s->n_listeners; i++) {
        if (s->listeners[i].cb != cb || s->listeners[i].data != data)
            continue;
        memmove(&s->listeners[i], &s->listeners[i + 1],
                (s->n_listeners - i - 1) * sizeof(s->listeners[0]));
        s->n_listeners--;
        return;
    }
}

static void notify(struct gw_store *s, enum gw_store_event ev, size_t link,
                   size_t unit, size_t point)
{
    for (size_t i = 0; i < s->n_listeners; i++)
        s->listeners[i].cb(s->listeners[i].data, ev, link, unit, point);
}

void gw_store_set_value(struct gw_store *s, size_t link, size_t unit,
                        size_t point, const uint16_t *raw, size_t n_raw,
                        const struct ad_value *v, int decode_rc, int64_t now_ms)
{
    struct gw_point_state *ps = gw_store_point(s, link, unit, point);
    size_t count = s->cfg->links[link].units[unit].points[point].count;
    if (n_raw > count)
        n_raw = count;
    memcpy(ps->raw, raw, n_raw * sizeof(uint16_t));
    ps->attempt_ms = now_ms;
    if (decode_rc != 0) {
        bool changed = ps->quality != GW_Q_DECODE;
        ps->quality = GW_Q_DECODE;
        ps->err = decode_rc;
        ps->exception = 0;
        if (changed) {
            ps->seq++;
            notify(s, GW_STORE_POINT, link, unit, point);
        }
        return;
    }
    bool changed = ps->quality != GW_Q_OK || !ad_value_equal(&ps->value, v);
    ps->value = *v;
    ps->ts_ms = now_ms;
    ps->quality = GW_Q_OK;
    ps->err = 0;
    ps->exception = 0;
    if (changed) {
        ps->seq++;
        notify(s, GW_STORE_POINT, link, unit, point);
    }
}

void gw_store_set_error(struct gw_store *s, size_t link, size_t unit,
                        size_t point, enum gw_quality q, int err,
                        uint8_t exception, int64_t now_ms)
{
    struct gw_point_state *ps = gw_store_point(s, link, unit, point);
    bool changed = ps->quality != q || ps->exception != exception;
    ps->quality = q;
    ps->err = err;
    ps->exception = exception;
    ps->attempt_ms = now_ms;
    if (changed) {
        ps->seq++;
        notify(s, GW_STORE_POINT, link, unit, point);
    }
}

void gw_store_set_unit_status(struct gw_store *s, size_t link, size_t unit,
                              enum gw_unit_status st, int64_t now_ms)
{
    struct gw_unit_state *us = &s->links[link].units[unit];
    if (us->status == st)
        return;
    us->status = st;
    us->last_change_ms = now_ms;
    notify(s, GW_STORE_UNIT, link, unit, SIZE_MAX);
}

void gw_store_set_link_connected(struct gw_store *s, size_t link,
                                 bool connected)
{
    struct gw_link_state *ls = &s->links[link];
    if (ls->connected == connected)
        return;
    ls->connected = connected;
    notify(s, GW_STORE_LINK, link, SIZE_MAX, SIZE_MAX);
}

void gw_store_cycle_done(struct gw_store *s, size_t link, size_t unit)
{
    notify(s, GW_STORE_CYCLE, link, unit, SIZE_MAX);
}

enum gw_quality gw_store_quality(const struct gw_point_state *p, int64_t now_ms,
                                 int64_t max_age_ms)
{
    if (p->quality == GW_Q_OK && max_age_ms > 0 &&
        now_ms - p->ts_ms > max_age_ms)
        return GW_Q_STALE;
    return p->quality;
}

const char *gw_quality_name(enum gw_quality q)
{
    switch (q) {
    case GW_Q_NONE:
        return "none";
    case GW_Q_OK:
        return "ok";
    case GW_Q_TIMEOUT:
        return "timeout";
    case GW_Q_EXCEPTION:
        return "exception";
    case GW_Q_DISCONNECTED:
        return "disconnected";
    case GW_Q_DECODE:
        return "decode-error";
    case GW_Q_STALE:
        return "stale";
    }
    return "?";
}

/* Modbus application protocol v1.1b3, 7. */
static const char *exception_name(uint8_t code)
{
    switch (code) {
    case 1:
        return "illegal function";
    case 2:
        return "illegal data address";
    case 3:
        return "illegal data value";
    case 4:
        return "server device failure";
    case 5:
        return "acknowledge";
    case 6:
        return "server device busy";
    case 8:
        return "memory parity error";
    case 10:
        return "gateway path unavailable";
    case 11:
        return "gateway target device failed to respond";
    default:
        return "unknown code";
    }
}

const char *gw_store_err_text(int err, uint8_t exception, char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    if (err == 0)
        snprintf(buf, cap, "none");
    else if (err == GW_EMBEXC && exception)
        snprintf(buf, cap, "Modbus exception %02u %s", (unsigned)exception,
                 exception_name(exception));
    else
        snprintf(buf, cap, "%s", gw_strerror(err));
    return buf;
}

const char *gw_unit_status_name(enum gw_unit_status st)
{
    switch (st) {
    case GW_UNIT_UNKNOWN:
        return "unknown";
    case GW_UNIT_ONLINE:
        return "online";
    case GW_UNIT_DEGRADED:
        return "degraded";
    case GW_UNIT_OFFLINE:
        return "offline";
    }
    return "?";
}

int gw_store_find(const struct cfg *cfg, const char *ref, size_t *link,
                  size_t *unit, size_t *point)
{
    const char *dot = strchr(ref, '.');
    size_t ulen = dot ? (size_t)(dot - ref) : strlen(ref);
    for (size_t l = 0; l < cfg->n_links; l++) {
        for (size_t u = 0; u < cfg->links[l].n_units; u++) {
            const struct cfg_unit *cu = &cfg->links[l].units[u];
            if (strlen(cu->name) != ulen || strncmp(cu->name, ref, ulen) != 0)
                continue;
            *link = l;
            *unit = u;
            *point = SIZE_MAX;
            if (!dot)
                return GW_OK;
            for (size_t p = 0; p < cu->n_points; p++) {
                if (strcmp(cu->points[p].name, dot + 1) == 0) {
                    *point = p;
                    return GW_OK;
                }
            }
            return GW_ENOTFOUND;
        }
    }
    return GW_ENOTFOUND;
}
