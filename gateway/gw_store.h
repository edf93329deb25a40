/* gw_store.h - the latest value of every point, and the health of every
 * unit and link.
 *
 * The store is the single source for everything northbound (CLI, XMPP).
 * It lives on the loop thread: only the engine writes it (from completed
 * bus jobs), readers take pointers that stay valid until the next loop
 * pass.  Listeners are told of point changes (value or quality), of unit
 * and link state changes, and of the end of a unit's poll cycle
 * (GW_STORE_CYCLE: the point changes before it belong to that cycle). */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ad_codec.h"
#include "cfg.h"

enum gw_quality {
    GW_Q_NONE,         /* never read */
    GW_Q_OK,           /* read and decoded */
    GW_Q_TIMEOUT,      /* the unit did not answer */
    GW_Q_EXCEPTION,    /* the unit answered with a Modbus exception */
    GW_Q_DISCONNECTED, /* the link is down */
    GW_Q_DECODE,       /* the registers do not decode (NaN, bad BCD) */
    GW_Q_STALE,        /* last good value older than 3 poll intervals */
};

enum gw_unit_status {
    GW_UNIT_UNKNOWN,  /* not polled yet */
    GW_UNIT_ONLINE,   /* the last cycle answered */
    GW_UNIT_DEGRADED, /* some requests fail (exceptions), others answer */
    GW_UNIT_OFFLINE,  /* failing cycles: in backoff */
};

struct gw_point_state {
    struct ad_value value; /* last good value (kind NONE before) */
    uint16_t *raw;         /* cfg count words (bits: one word 0/1) */
    int64_t ts_ms;         /* realtime of the last good read */
    int64_t attempt_ms;    /* realtime of the last attempt */
    enum gw_quality quality;
    uint8_t exception; /* Modbus exception code for GW_Q_EXCEPTION */
    int err;           /* gw_err of the last failure, 0 after success */
    uint32_t seq;      /* bumped on each value or quality change */
};

struct gw_counters {
    uint64_t requests;
    uint64_t errors; /* failed requests (timeouts included) */
    uint64_t timeouts;
    uint64_t exceptions;
};

struct gw_unit_state {
    enum gw_unit_status status;
    struct gw_counters c;
    uint32_t last_rtt_us;
    int last_err; /* gw_err of the last failure */
    uint8_t last_exception;
    int64_t last_change_ms;        /* realtime of the last status change */
    struct gw_point_state *points; /* one per cfg point */
};

struct gw_link_state {
    bool connected;
    struct gw_counters c;
    uint64_t overruns; /* poll cycles skipped: the last still ran */
    uint32_t last_rtt_us;
    struct gw_unit_state *units;
};

enum gw_store_event {
    GW_STORE_POINT, /* a point's value or quality changed */
    GW_STORE_UNIT,  /* a unit's status changed */
    GW_STORE_LINK,  /* a link connected or disconnected */
    /* A unit's part of a poll cycle of one poll group ended: every request
     * of that cycle for the unit has completed (whatever the outcome) and
     * its results are in the store.  Also sent after an on-demand read or
     * a write (with its re-read) of the unit completed.  Not sent for a
     * unit skipped because it rests in backoff (nothing of it changed).
     * point is SIZE_MAX.  Listeners that only follow state changes ignore
     * it. */
    GW_STORE_CYCLE,
};

/* link/unit/point are indices; unit and point are SIZE_MAX where they do
 * not apply. */
typedef void (*gw_store_cb)(void *data, enum gw_store_event ev, size_t link,
                            size_t unit, size_t point);

#define GW_STORE_MAX_LISTENERS 8

struct gw_store {
    const struct cfg *cfg;
    struct gw_link_state *links;
    uint16_t *raw_words; /* backing memory of every point's raw words */
    struct {
        gw_store_cb cb;
        void *data;
    } listeners[GW_STORE_MAX_LISTENERS];
    size_t n_listeners;
};

/* Builds state for every link, unit and point of cfg (which must outlive
 * the store).  Returns 0 or GW_ENOMEM (nothing to close then). */
int gw_store_init(struct gw_store *s, const struct cfg *cfg);
void gw_store_close(struct gw_store *s);

/* Returns 0 or GW_ELIMIT when GW_STORE_MAX_LISTENERS are registered. */
int gw_store_listen(struct gw_store *s, gw_store_cb cb, void *data);

/* Removes the listener registered with this cb and data (no-op when
 * there is none).  Safe only outside a notification. */
void gw_store_unlisten(struct gw_store *s, gw_store_cb cb, void *data);

static inline struct gw_point_state *
gw_store_point(const struct gw_store *s, size_t link, size_t unit, size_t point)
{
    return &s->links[link].units[unit].points[point];
}

/* Records a good read: raw words and decoded value (decode_rc is the
 * codec's result: 0, or GW_ENONFINITE/GW_EBADBCD for a decode error). */
void gw_store_set_value(struct gw_store *s, size_t link, size_t unit,
                        size_t point, const uint16_t *raw, size_t n_raw,
                        const struct ad_value *v, int decode_rc,
                        int64_t now_ms);

/* Records a failed read of one point. */
void gw_store_set_error(struct gw_store *s, size_t link, size_t unit,
                        size_t point, enum gw_quality q, int err,
                        uint8_t exception, int64_t now_ms);

void gw_store_set_unit_status(struct gw_store *s, size_t link, size_t unit,
                              enum gw_unit_status st, int64_t now_ms);
void gw_store_set_link_connected(struct gw_store *s, size_t link,
                                 bool connected);

/* Tells listeners (GW_STORE_CYCLE) that the unit's part of a poll cycle
 * (or an on-demand read of the unit) has ended: the changes notified since
 * belong to one cycle.  Called by the engine only. */
void gw_store_cycle_done(struct gw_store *s, size_t link, size_t unit);

/* The quality a reader should see now: GW_Q_STALE for an OK value older
 * than max_age_ms (0 = never stale). */
enum gw_quality gw_store_quality(const struct gw_point_state *p, int64_t now_ms,
                                 int64_t max_age_ms);

const char *gw_quality_name(enum gw_quality q);

/* The text of a failure as the store records it (a point's err/exception,
 * a unit's last_err/last_exception) into buf: "Modbus exception 02 illegal
 * data address" for GW_EMBEXC with its code, gw_strerror(err) otherwise,
 * "none" for 0.  Returns buf. */
const char *gw_store_err_text(int err, uint8_t exception, char *buf,
                              size_t cap);
const char *gw_unit_status_name(enum gw_unit_status st);

/* Finds "unit" or "unit.point" by name.  point is SIZE_MAX for a unit.
 * Returns 0 or GW_ENOTFOUND. */
int gw_store_find(const struct cfg *cfg, const char *ref, size_t *link,
                  size_t *unit, size_t *point);

/* Realtime clock in milliseconds. */
int64_t gw_now_ms(void);

#endif
