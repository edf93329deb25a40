/* ad_plan.h - plan the Modbus read requests of one poll cycle.
 *
 * Pure: from the resolved device map to a list of requests.  Rules:
 *  - registers (FC03 holding, FC04 input) and bits (FC01 coil, FC02
 *    discrete) are planned separately, per unit and per table;
 *  - neighbouring points are coalesced into one request while the gap
 *    between them is at most the unit's max_gap and the request stays within
 *    max_registers (max_bits); with single_register every request reads one
 *    register (bit) and a multi-register point is read as one request of
 *    its own count;
 *  - a point larger than max_registers can never be read: planning fails;
 *  - addresses in a unit's holes (illegal addresses learnt from exception 02)
 *    are never covered; a point that overlaps a hole is left out of the plan
 *    and listed in plan->skipped.
 * The polling engine executes exactly these plans. */
#ifndef AD_PLAN_H
#define AD_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

/* A range of addresses of one table that a unit rejects. */
struct ad_hole {
    enum cfg_table table;
    uint16_t start;
    uint16_t count;
};

/* Holes per unit: holes[u] / n_holes[u] for unit index u of the link.
 * Either pointer may be NULL for "no holes anywhere". */
struct ad_plan_holes {
    const struct ad_hole *const *holes;
    const size_t *n_holes;
};

struct ad_request {
    size_t unit;     /* index into link->units */
    uint8_t unit_id; /* Modbus unit id */
    uint8_t fc;      /* 1, 2, 3 or 4 */
    uint16_t start;  /* 0-based protocol address */
    uint16_t count;  /* registers or bits */
    size_t first;    /* this request's points: plan->points[first..+n) */
    size_t n;
};

struct ad_plan {
    struct ad_request *reqs; /* in execution order: unit, table, address */
    size_t n_reqs;
    size_t *points; /* point indices (into the unit's points), by request */
    size_t n_points;
    struct ad_plan_ref {
        size_t unit, point;
    } * skipped; /* points left out because of holes */
    size_t n_skipped;
};

/* Plans every point of poll group `group` on `link`.  holes may be NULL.
 * Returns 0 (out owns arrays: ad_plan_close), GW_ENOMEM, or GW_ELIMIT when a
 * point is larger than its unit's max_registers (max_bits), GW_EINVAL for a
 * malformed model (count 0, span past 65535, bad index).  An empty group
 * gives an empty plan.  On failure *out is empty. */
int ad_plan_group(const struct cfg_link *link, size_t group,
                  const struct ad_plan_holes *holes, struct ad_plan *out);

/* Plans the listed points of one unit (an on-demand read), under the same
 * rules.  points are indices into link->units[unit].points. */
int ad_plan_points(const struct cfg_link *link, size_t unit,
                   const size_t *points, size_t n_points,
                   const struct ad_plan_holes *holes, struct ad_plan *out);

void ad_plan_close(struct ad_plan *plan);

/* Estimated bus time of one request on an RTU link, in microseconds: the
 * request and response frames at the link's character time (start + data +
 * parity + stop bits) plus the 3.5-character silence before each frame
 * (1750 us above 19200 baud), plus the link's delay_ms.  Turnaround follows
 * broadcasts only and is not counted.  For TCP and rtu-over-tcp links 0. */
uint64_t ad_request_bus_time_us(const struct cfg_link *link,
                                const struct ad_request *req);

/* Sum over the plan. */
uint64_t ad_plan_bus_time_us(const struct cfg_link *link,
                             const struct ad_plan *plan);

#endif
