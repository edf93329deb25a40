/* gw_events.h - change detection for value events (wire-neutral).
 *
 * gw_events listens to the value store and decides, per point, whether a
 * change is an event under the point's rule (struct cfg_event_rule): any
 * value change by default, or outside a deadband (absolute, or percent of
 * the last published value); at most one event per min_interval (the
 * newest value wins, published when the interval ends); a heartbeat after
 * max_interval without an event (counted from the point's last
 * publication; a point never published has none).  A quality change (good
 * -> timeout, unit offline, back online; the engine reflects a unit's
 * status in its points' qualities) is always an event, through any
 * deadband and without waiting for min_interval.
 *
 * Batching: a unit's events of one poll cycle (the store's GW_STORE_CYCLE
 * notification) become ONE batch.  Coalescing: a unit has at most one
 * pending batch; while it waits (the publisher's window is full, the
 * session is offline) newer changes join it and replace older unsent
 * values (latest-value semantics: a batch carries point indices, and the
 * values published are the store's at the time the batch is taken).
 *
 * Events deferred by min_interval and heartbeats make their unit's batch
 * ready from one timer (the earliest deadline), without waiting for a
 * cycle.  Memory is O(points), allocated in gw_events_new.  See
 * docs/events.md, "Change detection".
 *
 * The consumer (the PubSub publisher in gateway/gw_xmpp) is told through
 * `ready` that at least one batch waits, and pulls batches with
 * gw_events_take while it has room.  Everything runs on the loop thread.
 *
 * The rules are read from cfg (points' `events` and cfg->events); cfg and
 * store must outlive the gw_events. */
#ifndef GW_EVENTS_H
#define GW_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cfg.h"
#include "gw_log.h"
#include "gw_store.h"

struct gw_events;

/* One unit's batch.  points are indices into the unit's cfg points, in
 * ascending order; valid until the next gw_events_take or free. */
struct gw_events_batch {
    size_t link, unit;
    const size_t *points;
    size_t n_points;
    int64_t ts_ms; /* realtime of the newest change in the batch */
    uint64_t seq;  /* per-unit batch number, from 1, for item ids */
};

/* Called (on the loop) when a batch becomes ready and none was ready
 * before; the consumer then takes batches until gw_events_take says none
 * is left or it has no room. */
typedef void (*gw_events_ready_cb)(void *ud);

/* Registers a store listener and a timer (min_interval ends, heartbeats).
 * Returns 0, GW_ENOMEM or GW_ELIMIT (no store listener slot). */
int gw_events_new(uv_loop_t *loop, const struct cfg *cfg,
                  struct gw_store *store, const struct gw_log *log,
                  gw_events_ready_cb ready, void *ud, struct gw_events **out);

/* Removes the listener, closes the timer; closed_cb (may be NULL) runs
 * when the memory is freed.  NULL-safe. */
void gw_events_free(struct gw_events *ev, void (*closed_cb)(void *ud),
                    void *ud);

/* Takes the oldest ready batch and records its points' current values as
 * published (the reference for deadbands and intervals).  Returns false
 * when no batch is ready. */
bool gw_events_take(struct gw_events *ev, struct gw_events_batch *out);

/* A batch taken could not be published (an error, a timeout, a send
 * failure): the points (indices into the unit's cfg points) lose their
 * published reference and join the unit's next cycle as events, so their
 * newest value goes out again at the end of that cycle (coalescing as
 * usual; paced by the poll, not by the server's answers).  Out-of-range
 * arguments are ignored. */
void gw_events_requeue(struct gw_events *ev, size_t link, size_t unit,
                       const size_t *points, size_t n);

/* Makes a batch of every event-enabled point of every unit (a full
 * snapshot, e.g. after a login, so subscribers see the latest value of
 * every point). */
void gw_events_snapshot(struct gw_events *ev);

struct gw_events_stats {
    uint64_t changes;    /* point changes that were events (at once, or
                            at the end of their min_interval) */
    uint64_t suppressed; /* changes inside a deadband or min_interval */
    uint64_t coalesced;  /* events merged into a waiting batch */
    uint64_t heartbeats;
    uint64_t batches;  /* batches taken */
    uint64_t requeued; /* points handed back by gw_events_requeue */
    size_t backlog;    /* batches ready and not taken */
};
void gw_events_get_stats(const struct gw_events *ev,
                         struct gw_events_stats *out);

#endif
