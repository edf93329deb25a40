/* ad_plan.c - plan the Modbus read requests of one poll cycle.
 *
 * Candidates (unit, point) are sorted by unit, function code, start address
 * (larger spans first on a tie, then point index) and walked once: a point
 * joins the open request when the rules of ad_plan.h allow it, otherwise it
 * opens the next request.  docs/planner.md describes the rules and the
 * bus-time formula. */
#include "ad_plan.h"

#include <stdlib.h>
#include <string.h>

#include "gw_err.h"

/* Silence before a frame above 19200 baud (Modbus over serial line v1.02,
 * 2.5.1.1: fixed 1.75 ms instead of 3.5 character times). */
#define RTU_FIXED_SILENCE_US 1750u
#define RTU_FIXED_SILENCE_BAUD 19200u
/* Read request: id, fc, start (2), count (2), crc (2). */
#define RTU_READ_REQ_BYTES 8u
/* Read response without data: id, fc, byte count, crc (2). */
#define RTU_READ_RSP_BYTES 5u

struct cand {
    size_t unit;
    size_t point;
    uint8_t fc;
    uint16_t start;
    uint16_t count;
    uint32_t end; /* last address, inclusive */
};

static uint8_t fc_of(enum cfg_table t)
{
    switch (t) {
    case CFG_TABLE_COIL:
        return 1;
    case CFG_TABLE_DISCRETE:
        return 2;
    case CFG_TABLE_HOLDING:
        return 3;
    case CFG_TABLE_INPUT:
        return 4;
    }
    return 0;
}

static bool is_bits(uint8_t fc)
{
    return fc == 1 || fc == 2;
}

/* Largest request of this unit and function code, capped at the protocol
 * limit whatever the map says. */
static uint32_t limit_of(const struct cfg_unit *u, uint8_t fc)
{
    if (is_bits(fc))
        return u->max_bits < CFG_MAX_READ_BITS ? u->max_bits
                                               : CFG_MAX_READ_BITS;
    return u->max_registers < CFG_MAX_READ_REGISTERS ? u->max_registers
                                                     : CFG_MAX_READ_REGISTERS;
}

static int cand_make(const struct cfg_link *link, size_t u, size_t p,
                     struct cand *c)
{
    const struct cfg_unit *cu = &link->units[u];
    const struct cfg_point *cp = &cu->points[p];
    uint8_t fc = fc_of(cp->table);
    if (fc == 0 || cp->count == 0)
        return GW_EINVAL;
    uint32_t end = (uint32_t)cp->address + cp->count - 1u;
    if (end > UINT16_MAX)
        return GW_EINVAL;
    if (cp->count > limit_of(cu, fc))
        return GW_ELIMIT;
    *c = (struct cand){u, p, fc, cp->address, cp->count, end};
    return GW_OK;
}

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->unit != y->unit)
        return x->unit < y->unit ? -1 : 1;
    if (x->fc != y->fc)
        return x->fc < y->fc ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1; /* the larger span first */
    if (x->point != y->point)
        return x->point < y->point ? -1 : 1;
    return 0;
}

/* Does [lo, hi] touch a hole of this unit and table? */
static bool in_hole(const struct ad_plan_holes *holes, size_t unit,
                    enum cfg_table table, uint32_t lo, uint32_t hi)
{
    if (!holes || !holes->holes || !holes->n_holes || !holes->holes[unit])
        return false;
    const struct ad_hole *h = holes->holes[unit];
    for (size_t i = 0; i < holes->n_holes[unit]; i++) {
        if (h[i].table != table || h[i].count == 0)
            continue;
        uint32_t hlo = h[i].start;
        uint32_t hhi = hlo + h[i].count - 1u;
        if (hlo <= hi && hhi >= lo)
            return true;
    }
    return false;
}

static bool can_join(const struct cfg_unit *cu, const struct ad_request *r,
                     const struct cand *c, const struct ad_plan_holes *holes,
                     enum cfg_table table)
{
    uint32_t r_end = (uint32_t)r->start + r->count - 1u;
    if (cu->single_register)
        return c->start >= r->start && c->end <= r_end;
    uint32_t next = r_end + 1u;
    if (c->start > next) {
        uint32_t gap = c->start - next;
        if (gap > cu->max_gap)
            return false;
        if (in_hole(holes, c->unit, table, next, (uint32_t)c->start - 1u))
            return false;
    }
    uint32_t end = c->end > r_end ? c->end : r_end;
    return end - r->start + 1u <= limit_of(cu, c->fc);
}

void ad_plan_close(struct ad_plan *plan)
{
    if (!plan)
        return;
    free(plan->reqs);
    free(plan->points);
    free(plan->skipped);
    memset(plan, 0, sizeof(*plan));
}

/* Plans cands[0..n) (sorted here); out is zeroed first. */
static int build(const struct cfg_link *link, struct cand *cands, size_t n,
                 const struct ad_plan_holes *holes, struct ad_plan *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return GW_OK;
    qsort(cands, n, sizeof(*cands), cand_cmp);
    int rc = GW_ENOMEM;
    out->reqs = malloc(n * sizeof(*out->reqs));
    out->points = malloc(n * sizeof(*out->points));
    out->skipped = malloc(n * sizeof(*out->skipped));
    if (!out->reqs || !out->points || !out->skipped)
        goto out;
    struct ad_request *cur = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct cand *c = &cands[i];
        if (i > 0 && cand_cmp(c, &cands[i - 1]) == 0)
            continue; /* the same point listed twice */
        const struct cfg_unit *cu = &link->units[c->unit];
        enum cfg_table table = cu->points[c->point].table;
        if (in_hole(holes, c->unit, table, c->start, c->end)) {
            out->skipped[out->n_skipped++] =
                (struct ad_plan_ref){c->unit, c->point};
            continue;
        }
        if (cur && cur->unit == c->unit && cur->fc == c->fc &&
            can_join(cu, cur, c, holes, table)) {
            uint32_t r_end = (uint32_t)cur->start + cur->count - 1u;
            if (c->end > r_end)
                cur->count = (uint16_t)(c->end - cur->start + 1u);
        } else {
            cur = &out->reqs[out->n_reqs++];
            *cur = (struct ad_request){.unit = c->unit,
                                       .unit_id = cu->id,
                                       .fc = c->fc,
                                       .start = c->start,
                                       .count = c->count,
                                       .first = out->n_points,
                                       .n = 0};
        }
        out->points[out->n_points++] = c->point;
        cur->n++;
    }
    rc = GW_OK;
out:
    if (rc != GW_OK)
        ad_plan_close(out);
    return rc;
}

int ad_plan_group(const struct cfg_link *link, size_t group,
                  const struct ad_plan_holes *holes, struct ad_plan *out)
{
    if (!out)
        return GW_EINVAL;
    memset(out, 0, sizeof(*out));
    if (!link)
        return GW_EINVAL;
    size_t n = 0;
    for (size_t u = 0; u < link->n_units; u++)
        for (size_t p = 0; p < link->units[u].n_points; p++)
            if (link->units[u].points[p].poll_group == group)
                n++;
    if (n == 0)
        return GW_OK;
    struct cand *cands = malloc(n * sizeof(*cands));
    if (!cands)
        return GW_ENOMEM;
    int rc = GW_OK;
    size_t k = 0;
    for (size_t u = 0; u < link->n_units && rc == GW_OK; u++) {
        const struct cfg_unit *cu = &link->units[u];
        for (size_t p = 0; p < cu->n_points && rc == GW_OK; p++)
            if (cu->points[p].poll_group == group)
                rc = cand_make(link, u, p, &cands[k++]);
    }
    if (rc == GW_OK)
        rc = build(link, cands, n, holes, out);
    free(cands);
    return rc;
}

int ad_plan_points(const struct cfg_link *link, size_t unit,
                   const size_t *points, size_t n_points,
                   const struct ad_plan_holes *holes, struct ad_plan *out)
{
    if (!out)
        return GW_EINVAL;
    memset(out, 0, sizeof(*out));
    if (!link || unit >= link->n_units || (n_points && !points))
        return GW_EINVAL;
    if (n_points == 0)
        return GW_OK;
    struct cand *cands = malloc(n_points * sizeof(*cands));
    if (!cands)
        return GW_ENOMEM;
    int rc = GW_OK;
    for (size_t i = 0; i < n_points && rc == GW_OK; i++) {
        if (points[i] >= link->units[unit].n_points)
            rc = GW_EINVAL;
        else
            rc = cand_make(link, unit, points[i], &cands[i]);
    }
    if (rc == GW_OK)
        rc = build(link, cands, n_points, holes, out);
    free(cands);
    return rc;
}

uint64_t ad_request_bus_time_us(const struct cfg_link *link,
                                const struct ad_request *req)
{
    if (!link || !req || link->type != CFG_LINK_RTU || link->baud == 0)
        return 0;
    uint64_t bits = 1u + link->data_bits +
                    (link->parity != CFG_PARITY_NONE ? 1u : 0u) +
                    link->stop_bits;
    uint64_t data = is_bits(req->fc) ? ((uint64_t)req->count + 7u) / 8u
                                     : (uint64_t)req->count * 2u;
    uint64_t chars = RTU_READ_REQ_BYTES + RTU_READ_RSP_BYTES + data;
    uint64_t silence_us = 0;
    if (link->baud > RTU_FIXED_SILENCE_BAUD)
        silence_us = 2u * RTU_FIXED_SILENCE_US;
    else
        chars += 7u; /* 3.5 characters before each of the two frames */
    uint64_t num = chars * bits * 1000000u;
    uint64_t us = (num + link->baud / 2u) / link->baud; /* rounded */
    return us + silence_us + (uint64_t)link->delay_ms * 1000u;
}

uint64_t ad_plan_bus_time_us(const struct cfg_link *link,
                             const struct ad_plan *plan)
{
    uint64_t sum = 0;
    if (!plan)
        return 0;
    for (size_t i = 0; i < plan->n_reqs; i++)
        sum += ad_request_bus_time_us(link, &plan->reqs[i]);
    return sum;
}
