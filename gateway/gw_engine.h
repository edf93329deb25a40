/* gw_engine.h - the polling engine: poll-group timers, plans, per-unit
 * backoff, exception handling, on-demand reads and writes.
 *
 * Runs on the loop thread.  It executes the planner's requests on each
 * link's worker (adapters/ad_link) and writes every outcome into the value
 * store (gw_store), which is the only thing northbound code reads.
 *
 * Per unit: after `fail_cycles` failed cycles (timeouts, garbled replies)
 * the unit goes offline and is skipped for a backoff that doubles from
 * backoff_min_ms to backoff_max_ms; when it expires a single request probes
 * it (a probe that meets a link outage is sent again once the link is
 * back).  While a unit is in backoff, on-demand reads are answered from the
 * store (the unit's last error) instead of the bus, unless the probe is
 * due: then the read is the probe.  A coalesced read answered with
 * exception 02 or 03 is split into its points; a point that alone gets
 * exception 02 becomes a hole the planner leaves out of the cycles (the
 * point's quality stays "exception 2"); a hole is re-probed after
 * hole_retry_min_ms, doubling up to hole_retry_max_ms, and at once by
 * gw_engine_reset_backoff and by on-demand reads of its points; once it
 * answers it is polled again.  Exception 03 on a multi-register read
 * lowers the unit's learnt max_registers. */
#ifndef GW_ENGINE_H
#define GW_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ad_codec.h"
#include "ad_link.h"
#include "ad_plan.h"
#include "cfg.h"
#include "gw_log.h"
#include "gw_store.h"

struct gw_engine_opts {
    uint32_t fail_cycles;       /* failed cycles before offline; default 3 */
    uint32_t backoff_min_ms;    /* default 2000 */
    uint32_t backoff_max_ms;    /* default 60000 */
    uint32_t hole_retry_min_ms; /* first re-probe of a hole; default 60000 */
    uint32_t hole_retry_max_ms; /* default 300000 */
    bool poll;                  /* run poll-group timers (off for CLI reads) */
};

struct gw_engine;

/* Completion of gw_engine_read / gw_engine_write: rc is 0 or a gw_err;
 * for GW_EMBEXC, exception holds the code. */
typedef void (*gw_engine_cb)(void *data, int rc, uint8_t exception);

/* Creates the engine over cfg and store (both must outlive it).  Returns 0
 * or a gw_err; *out is set on success only. */
int gw_engine_new(uv_loop_t *loop, const struct cfg *cfg,
                  struct gw_store *store, const struct gw_log *log,
                  const struct gw_engine_opts *opts, struct gw_engine **out);

/* Starts the link workers and, with opts.poll, the poll timers. */
int gw_engine_start(struct gw_engine *eng);

/* Reads points of one unit now, ahead of polling (points NULL = all of the
 * unit's points); points in learnt holes are re-probed.  The store is
 * updated before cb runs.  Returns 0 (cb will run once) or a gw_err (cb
 * will not run).  While the unit is in backoff and its probe is not due,
 * nothing goes to the bus: the return value is the unit's last error
 * (GW_ETIMEOUT, GW_EPROTO, ...), as in the store. */
int gw_engine_read(struct gw_engine *eng, size_t link, size_t unit,
                   const size_t *points, size_t n_points, gw_engine_cb cb,
                   void *data);

/* Writes a value to a point: refused before any bus traffic with
 * GW_EREADONLY (not writable) or the codec's GW_ERANGE/GW_ETYPE.  verify
 * (or the point's own verify flag) reads the value back.  After a write the
 * point is read again, before cb runs, so the store holds the device's
 * value when the writer is told (a failed re-read does not fail the
 * write).  Returns 0 (cb will run) or a gw_err (cb will not run). */
int gw_engine_write(struct gw_engine *eng, size_t link, size_t unit,
                    size_t point, const struct ad_value *value, bool verify,
                    gw_engine_cb cb, void *data);

/* Ends a unit's backoff now (the next cycle polls it fully) and re-probes
 * its holes now. */
void gw_engine_reset_backoff(struct gw_engine *eng, size_t link, size_t unit);

/* For tests and stats: is the unit in backoff; is a probe of it out; how
 * many holes has it learnt. */
bool gw_engine_unit_in_backoff(const struct gw_engine *eng, size_t link,
                               size_t unit);
bool gw_engine_probe_pending(const struct gw_engine *eng, size_t link,
                             size_t unit);
size_t gw_engine_holes(const struct gw_engine *eng, size_t link, size_t unit);

/* Completed poll cycles of a link (all groups), for tests and stats. */
uint64_t gw_engine_cycles(const struct gw_engine *eng, size_t link);

/* Stops timers and workers, cancels pending reads and writes (their cb
 * runs with GW_ECANCELED), closes every handle; closed_cb runs when the
 * engine has been freed. */
void gw_engine_free(struct gw_engine *eng, void (*closed_cb)(void *data),
                    void *data);

#endif
