/* fgt_engine.h - drive the real polling engine from a test: a loop, a map
 * loaded from text, the value store and the engine, plus helpers that run
 * the loop for a span or until a condition holds.
 *
 * Nothing is mocked: the engine's link workers talk to whatever peer the
 * map names.  fgt_engine_close() frees everything and returns the result
 * of uv_loop_close() (0 when every handle was closed). */
#ifndef FGT_ENGINE_H
#define FGT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "cfg.h"
#include "gw_engine.h"
#include "gw_log.h"
#include "gw_store.h"

struct fgt_engine {
    uv_loop_t loop;
    struct gw_log log;
    struct cfg *cfg;
    struct gw_store store;
    struct gw_engine *eng;
    bool engine_closed;
};

/* Loads yaml (printing the loader's errors), builds store and engine and
 * starts it.  log_out may be NULL (stderr).  0 or -1. */
int fgt_engine_open(struct fgt_engine *t, const char *yaml,
                    const struct gw_engine_opts *opts, FILE *log_out);

/* Frees the engine and everything else.  Returns uv_loop_close()'s result
 * (or -1 when the engine never reported closed). */
int fgt_engine_close(struct fgt_engine *t);

/* Runs the loop for ms milliseconds of loop time. */
void fgt_engine_run_ms(struct fgt_engine *t, uint64_t ms);

/* Runs the loop until pred(t, arg) holds (checked every 20 ms) or
 * timeout_ms passes.  Returns true when pred held. */
bool fgt_engine_run_until(struct fgt_engine *t,
                          bool (*pred)(struct fgt_engine *t, void *arg),
                          void *arg, uint64_t timeout_ms);

/* gw_engine_read of a unit (by name; points NULL = all) and wait for its
 * callback.  Returns the callback's rc (GW_ETIMEOUT when it did not run in
 * 20 s), exception in *exc when not NULL. */
int fgt_engine_read(struct fgt_engine *t, const char *unit, uint8_t *exc);

/* gw_engine_write of "unit.point" = text (parsed by the codec) and wait.
 * Returns the synchronous refusal or the callback's rc. */
int fgt_engine_write(struct fgt_engine *t, const char *ref, const char *text,
                     bool verify, uint8_t *exc);

/* The store state of "unit.point", or NULL. */
const struct gw_point_state *fgt_point(struct fgt_engine *t, const char *ref);

/* The store state of a unit by name, or NULL. */
const struct gw_unit_state *fgt_unit(struct fgt_engine *t, const char *name);

#endif
