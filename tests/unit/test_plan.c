/* test_plan.c - the read planner (adapters/ad_plan.c) over hand-built maps.
 *
 * Every test builds a struct cfg_link with the small builder below (no YAML
 * loader involved) and asserts the exact requests: unit, function code,
 * start, count and the point indices each request covers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ad_plan.h"
#include "gw_err.h"

/* ---- builder ------------------------------------------------------------ */

#define TB_UNITS 4
#define TB_POINTS 40

struct tb {
    struct cfg_link link;
    struct cfg_unit units[TB_UNITS];
    struct cfg_point points[TB_UNITS][TB_POINTS];
};

static void tb_init(struct tb *b, enum cfg_link_type type)
{
    memset(b, 0, sizeof(*b));
    b->link.name = "line";
    b->link.type = type;
    b->link.baud = 9600;
    b->link.parity = CFG_PARITY_EVEN;
    b->link.data_bits = 8;
    b->link.stop_bits = 1;
    b->link.units = b->units;
}

/* A unit with the loader's defaults: 125 registers, 2000 bits, no gap. */
static size_t tb_unit(struct tb *b, uint8_t id)
{
    assert_true(b->link.n_units < TB_UNITS);
    size_t u = b->link.n_units++;
    struct cfg_unit *cu = &b->units[u];
    cu->name = "unit";
    cu->id = id;
    cu->max_registers = CFG_MAX_READ_REGISTERS;
    cu->max_bits = CFG_MAX_READ_BITS;
    cu->points = b->points[u];
    return u;
}

/* A point in poll group 0; count is registers (bits for coil/discrete). */
static size_t tb_point(struct tb *b, size_t u, enum cfg_table table,
                       uint16_t address, enum cfg_type type, uint16_t count)
{
    struct cfg_unit *cu = &b->units[u];
    assert_true(cu->n_points < TB_POINTS);
    size_t p = cu->n_points++;
    struct cfg_point *cp = &cu->points[p];
    cp->name = "p";
    cp->table = table;
    cp->address = address;
    cp->type = type;
    cp->count = count;
    cp->scale = 1;
    cp->decimals = -1;
    return p;
}

static size_t tb_hr(struct tb *b, size_t u, uint16_t address, uint16_t count)
{
    enum cfg_type t = CFG_TYPE_UINT16;
    if (count == 2)
        t = CFG_TYPE_UINT32;
    else if (count == 4)
        t = CFG_TYPE_UINT64;
    else if (count > 2)
        t = CFG_TYPE_STRING;
    return tb_point(b, u, CFG_TABLE_HOLDING, address, t, count);
}

static size_t tb_bit(struct tb *b, size_t u, uint16_t address, uint8_t bit)
{
    size_t p = tb_point(b, u, CFG_TABLE_HOLDING, address, CFG_TYPE_BIT, 1);
    b->units[u].points[p].bit = bit;
    return p;
}

static size_t tb_coil(struct tb *b, size_t u, uint16_t address)
{
    return tb_point(b, u, CFG_TABLE_COIL, address, CFG_TYPE_BOOL, 1);
}

/* ---- expectations ------------------------------------------------------- */

struct exp {
    size_t unit;
    uint8_t fc;
    uint16_t start;
    uint16_t count;
    size_t n;
    size_t pts[12];
};

static void check_plan(const struct tb *b, const struct ad_plan *plan,
                       const struct exp *e, size_t n)
{
    assert_int_equal(plan->n_reqs, n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ad_request *r = &plan->reqs[i];
        print_message("request %zu: unit %zu fc %u start %u count %u n %zu\n",
                      i, r->unit, r->fc, r->start, r->count, r->n);
        assert_int_equal(r->unit, e[i].unit);
        assert_int_equal(r->unit_id, b->units[e[i].unit].id);
        assert_int_equal(r->fc, e[i].fc);
        assert_int_equal(r->start, e[i].start);
        assert_int_equal(r->count, e[i].count);
        assert_int_equal(r->n, e[i].n);
        assert_int_equal(r->first, total);
        for (size_t k = 0; k < e[i].n; k++)
            assert_int_equal(plan->points[r->first + k], e[i].pts[k]);
        total += e[i].n;
    }
    assert_int_equal(plan->n_points, total);
}

static void plan_group_ok(const struct tb *b, size_t group,
                          const struct ad_plan_holes *holes,
                          struct ad_plan *plan)
{
    assert_int_equal(ad_plan_group(&b->link, group, holes, plan), GW_OK);
}

/* ---- gaps ---------------------------------------------------------------- */

static void test_gap_zero(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    tb_hr(&b, u, 3, 1); /* 0 */
    tb_hr(&b, u, 0, 1); /* 1 */
    tb_hr(&b, u, 1, 1); /* 2 */
    tb_hr(&b, u, 5, 2); /* 3: 5..6 */
    tb_hr(&b, u, 7, 1); /* 4 */
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 3, 0, 2, 2, {1, 2}},
        {0, 3, 3, 1, 1, {0}},
        {0, 3, 5, 3, 2, {3, 4}},
    };
    check_plan(&b, &plan, e, 3);
    assert_int_equal(plan.n_skipped, 0);
    ad_plan_close(&plan);
}

static void test_gap_bridged_at_max_gap(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].max_gap = 3;
    tb_hr(&b, u, 10, 2); /* 0: 10..11 */
    tb_hr(&b, u, 15, 1); /* 1: gap 12..14 = 3 */
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {{0, 3, 10, 6, 2, {0, 1}}};
    check_plan(&b, &plan, e, 1);
    ad_plan_close(&plan);
}

static void test_gap_not_bridged_above_max_gap(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].max_gap = 3;
    tb_hr(&b, u, 10, 2); /* 0: 10..11 */
    tb_hr(&b, u, 16, 1); /* 1: gap 12..15 = 4 */
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 3, 10, 2, 1, {0}},
        {0, 3, 16, 1, 1, {1}},
    };
    check_plan(&b, &plan, e, 2);
    ad_plan_close(&plan);
}

static void test_gap_bits(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].max_gap = 2;
    tb_coil(&b, u, 0); /* 0 */
    tb_coil(&b, u, 3); /* 1: gap 2 */
    tb_coil(&b, u, 7); /* 2: gap 3 */
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 1, 0, 4, 2, {0, 1}},
        {0, 1, 7, 1, 1, {2}},
    };
    check_plan(&b, &plan, e, 2);
    ad_plan_close(&plan);
}

/* ---- size limits --------------------------------------------------------- */

static void test_max_registers_split(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].max_registers = 10;
    for (uint16_t a = 0; a < 12; a += 2)
        tb_hr(&b, u, a, 2); /* points 0..5 at 0, 2, ..., 10 */
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 3, 0, 10, 5, {0, 1, 2, 3, 4}},
        {0, 3, 10, 2, 1, {5}},
    };
    check_plan(&b, &plan, e, 2);
    ad_plan_close(&plan);
}

static void test_max_registers_with_gap(void **state)
{
    /* The gap would be bridged, but the merged span (10) is over 9. */
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].max_gap = 10;
    b.units[u].max_registers = 9;
    tb_hr(&b, u, 0, 1);
    tb_hr(&b, u, 9, 1);
    tb_hr(&b, u, 10, 1);
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 3, 0, 1, 1, {0}},
        {0, 3, 9, 2, 2, {1, 2}},
    };
    check_plan(&b, &plan, e, 2);
    ad_plan_close(&plan);
}

static void test_max_bits_split(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].max_bits = 4;
    b.units[u].max_registers = 1; /* must not apply to bits */
    for (uint16_t a = 0; a < 6; a++)
        tb_point(&b, u, CFG_TABLE_DISCRETE, a, CFG_TYPE_BOOL, 1);
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 2, 0, 4, 4, {0, 1, 2, 3}},
        {0, 2, 4, 2, 2, {4, 5}},
    };
    check_plan(&b, &plan, e, 2);
    ad_plan_close(&plan);
}

static void test_protocol_limit_caps_map(void **state)
{
    /* A hand-built unit claiming 200 registers still gets 125 at most. */
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].max_registers = 200;
    tb_hr(&b, u, 0, 100);
    tb_hr(&b, u, 100, 100);
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 3, 0, 100, 1, {0}},
        {0, 3, 100, 100, 1, {1}},
    };
    check_plan(&b, &plan, e, 2);
    ad_plan_close(&plan);
}

static void test_point_too_big(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].max_registers = 8;
    tb_hr(&b, u, 0, 1);
    size_t big = tb_hr(&b, u, 10, 9); /* a 9-register string */
    struct ad_plan plan;
    memset(&plan, 0xa5, sizeof(plan));
    assert_int_equal(ad_plan_group(&b.link, 0, NULL, &plan), GW_ELIMIT);
    assert_null(plan.reqs);
    assert_int_equal(plan.n_reqs, 0);
    assert_int_equal(ad_plan_points(&b.link, u, &big, 1, NULL, &plan),
                     GW_ELIMIT);
    assert_int_equal(plan.n_reqs, 0);
    /* Exactly max_registers is fine. */
    b.units[u].max_registers = 9;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 3, 0, 1, 1, {0}},
        {0, 3, 10, 9, 1, {1}},
    };
    check_plan(&b, &plan, e, 2);
    ad_plan_close(&plan);
    /* max_bits 0 on a hand-built unit: no coil can be read. */
    b.units[u].max_bits = 0;
    tb_coil(&b, u, 0);
    assert_int_equal(ad_plan_group(&b.link, 0, NULL, &plan), GW_ELIMIT);
}

static void test_malformed_points(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    size_t p = tb_hr(&b, u, 65535, 2); /* runs past 65535 */
    struct ad_plan plan;
    assert_int_equal(ad_plan_group(&b.link, 0, NULL, &plan), GW_EINVAL);
    b.units[u].points[p].count = 1; /* 65535 itself is fine */
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {{0, 3, 65535, 1, 1, {0}}};
    check_plan(&b, &plan, e, 1);
    ad_plan_close(&plan);
    b.units[u].points[p].count = 0;
    assert_int_equal(ad_plan_group(&b.link, 0, NULL, &plan), GW_EINVAL);
    assert_int_equal(ad_plan_group(NULL, 0, NULL, &plan), GW_EINVAL);
    assert_int_equal(ad_plan_group(&b.link, 0, NULL, NULL), GW_EINVAL);
}

/* ---- overlaps ------------------------------------------------------------ */

static void test_overlap_bits_on_register(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    tb_bit(&b, u, 5, 3);  /* 0 */
    tb_bit(&b, u, 5, 0);  /* 1 */
    tb_hr(&b, u, 5, 1);   /* 2: the whole status word */
    tb_bit(&b, u, 6, 15); /* 3 */
    tb_hr(&b, u, 4, 2);   /* 4: 4..5 overlaps the word */
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {{0, 3, 4, 3, 5, {4, 0, 1, 2, 3}}};
    check_plan(&b, &plan, e, 1);
    ad_plan_close(&plan);
}

static void test_overlap_two_scalings(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    size_t a = tb_point(&b, u, CFG_TABLE_INPUT, 100, CFG_TYPE_FLOAT32, 2);
    size_t c = tb_point(&b, u, CFG_TABLE_INPUT, 100, CFG_TYPE_FLOAT32, 2);
    b.units[u].points[c].scale = 0.001;
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {{0, 4, 100, 2, 2, {a, c}}};
    check_plan(&b, &plan, e, 1);
    ad_plan_close(&plan);
}

/* ---- tables and units ---------------------------------------------------- */

static void test_mixed_tables(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].max_gap = 100;
    tb_point(&b, u, CFG_TABLE_INPUT, 0, CFG_TYPE_UINT16, 1);   /* 0 */
    tb_point(&b, u, CFG_TABLE_HOLDING, 1, CFG_TYPE_UINT16, 1); /* 1 */
    tb_point(&b, u, CFG_TABLE_COIL, 0, CFG_TYPE_BOOL, 1);      /* 2 */
    tb_point(&b, u, CFG_TABLE_DISCRETE, 0, CFG_TYPE_BOOL, 1);  /* 3 */
    tb_point(&b, u, CFG_TABLE_HOLDING, 0, CFG_TYPE_UINT16, 1); /* 4 */
    tb_point(&b, u, CFG_TABLE_INPUT, 1, CFG_TYPE_UINT16, 1);   /* 5 */
    tb_point(&b, u, CFG_TABLE_DISCRETE, 1, CFG_TYPE_BOOL, 1);  /* 6 */
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 1, 0, 1, 1, {2}},
        {0, 2, 0, 2, 2, {3, 6}},
        {0, 3, 0, 2, 2, {4, 1}},
        {0, 4, 0, 2, 2, {0, 5}},
    };
    check_plan(&b, &plan, e, 4);
    ad_plan_close(&plan);
}

static void test_multiple_units(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_RTU);
    size_t u0 = tb_unit(&b, 9); /* map order, not id order */
    size_t u1 = tb_unit(&b, 2);
    size_t u2 = tb_unit(&b, 5);
    b.units[u1].max_gap = 10;
    tb_hr(&b, u1, 0, 1);
    tb_hr(&b, u1, 8, 1);
    tb_hr(&b, u0, 8, 1);
    tb_hr(&b, u0, 0, 1);
    tb_coil(&b, u2, 4);
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 3, 0, 1, 1, {1}},
        {0, 3, 8, 1, 1, {0}},
        {1, 3, 0, 9, 2, {0, 1}},
        {2, 1, 4, 1, 1, {0}},
    };
    check_plan(&b, &plan, e, 4);
    assert_int_equal(plan.reqs[0].unit_id, 9);
    assert_int_equal(plan.reqs[2].unit_id, 2);
    assert_int_equal(plan.reqs[3].unit_id, 5);
    ad_plan_close(&plan);
}

static void test_template_units(void **state)
{
    /* Units made from one template carry identical point lists. */
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    for (uint8_t id = 1; id <= 3; id++) {
        size_t u = tb_unit(&b, (uint8_t)(10 + id));
        b.units[u].max_registers = 60;
        b.units[u].max_gap = 2;
        tb_point(&b, u, CFG_TABLE_INPUT, 0, CFG_TYPE_INT32, 2);
        tb_point(&b, u, CFG_TABLE_INPUT, 2, CFG_TYPE_INT32, 2);
        tb_point(&b, u, CFG_TABLE_INPUT, 6, CFG_TYPE_INT32, 2);
        tb_point(&b, u, CFG_TABLE_INPUT, 70, CFG_TYPE_INT64, 4);
    }
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    assert_int_equal(plan.n_reqs, 6);
    for (size_t u = 0; u < 3; u++) {
        const struct exp e[] = {
            {u, 4, 0, 8, 3, {0, 1, 2}},
            {u, 4, 70, 4, 1, {3}},
        };
        const struct ad_request *r = &plan.reqs[2 * u];
        for (size_t k = 0; k < 2; k++) {
            assert_int_equal(r[k].unit, e[k].unit);
            assert_int_equal(r[k].unit_id, 11 + u);
            assert_int_equal(r[k].fc, e[k].fc);
            assert_int_equal(r[k].start, e[k].start);
            assert_int_equal(r[k].count, e[k].count);
            assert_int_equal(r[k].n, e[k].n);
            for (size_t i = 0; i < e[k].n; i++)
                assert_int_equal(plan.points[r[k].first + i], e[k].pts[i]);
        }
    }
    ad_plan_close(&plan);
}

/* ---- single_register ----------------------------------------------------- */

static void test_single_register(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].single_register = true;
    b.units[u].max_gap = 10; /* ignored in single_register mode */
    tb_hr(&b, u, 0, 1);      /* 0 */
    tb_hr(&b, u, 1, 1);      /* 1 */
    tb_hr(&b, u, 2, 1);      /* 2 */
    tb_hr(&b, u, 4, 2);      /* 3: float as one 2-register request */
    tb_hr(&b, u, 5, 1);      /* 4: inside point 3: shares it */
    tb_bit(&b, u, 6, 1);     /* 5 */
    tb_bit(&b, u, 6, 2);     /* 6 */
    tb_hr(&b, u, 6, 1);      /* 7 */
    tb_coil(&b, u, 0);       /* 8 */
    tb_coil(&b, u, 1);       /* 9 */
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 1, 0, 1, 1, {8}},       {0, 1, 1, 1, 1, {9}},
        {0, 3, 0, 1, 1, {0}},       {0, 3, 1, 1, 1, {1}},
        {0, 3, 2, 1, 1, {2}},       {0, 3, 4, 2, 2, {3, 4}},
        {0, 3, 6, 1, 3, {5, 6, 7}},
    };
    check_plan(&b, &plan, e, 7);
    ad_plan_close(&plan);
}

static void test_single_register_same_start(void **state)
{
    /* A one-register view of the first word of a float: the larger span is
     * planned first so the smaller one shares it. */
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].single_register = true;
    tb_hr(&b, u, 10, 1); /* 0 */
    tb_hr(&b, u, 10, 2); /* 1 */
    tb_hr(&b, u, 11, 2); /* 2: 11..12, not inside 10..11 */
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 3, 10, 2, 2, {1, 0}},
        {0, 3, 11, 2, 1, {2}},
    };
    check_plan(&b, &plan, e, 2);
    ad_plan_close(&plan);
}

/* ---- multi-register points ----------------------------------------------- */

static void test_wide_points(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    tb_point(&b, u, CFG_TABLE_HOLDING, 0, CFG_TYPE_UINT64, 4);   /* 0 */
    tb_point(&b, u, CFG_TABLE_HOLDING, 4, CFG_TYPE_STRING, 10);  /* 1 */
    tb_point(&b, u, CFG_TABLE_HOLDING, 20, CFG_TYPE_FLOAT64, 4); /* 2 */
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 3, 0, 14, 2, {0, 1}},
        {0, 3, 20, 4, 1, {2}},
    };
    check_plan(&b, &plan, e, 2);
    ad_plan_close(&plan);
    /* With 12 registers a request the string goes alone. */
    b.units[u].max_registers = 12;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e2[] = {
        {0, 3, 0, 4, 1, {0}},
        {0, 3, 4, 10, 1, {1}},
        {0, 3, 20, 4, 1, {2}},
    };
    check_plan(&b, &plan, e2, 3);
    ad_plan_close(&plan);
}

/* ---- holes --------------------------------------------------------------- */

static void test_holes_skip_and_split(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u0 = tb_unit(&b, 1);
    size_t u1 = tb_unit(&b, 2);
    b.units[u0].max_gap = 5;
    b.units[u1].max_gap = 5;
    tb_hr(&b, u0, 0, 1);  /* 0 */
    tb_hr(&b, u0, 1, 1);  /* 1 */
    tb_hr(&b, u0, 2, 1);  /* 2: in the hole */
    tb_hr(&b, u0, 3, 1);  /* 3 */
    tb_hr(&b, u0, 10, 2); /* 4: 10..11, 11 in a hole */
    tb_hr(&b, u0, 12, 1); /* 5 */
    tb_hr(&b, u0, 20, 1); /* 6 */
    tb_hr(&b, u0, 24, 1); /* 7: gap 21..23 holds a hole */
    tb_point(&b, u0, CFG_TABLE_INPUT, 2, CFG_TYPE_UINT16, 1); /* 8 */
    tb_hr(&b, u1, 0, 1); /* unit 1, same addresses, no holes */
    tb_hr(&b, u1, 2, 1);
    const struct ad_hole h0[] = {
        {CFG_TABLE_HOLDING, 2, 1},  {CFG_TABLE_HOLDING, 11, 1},
        {CFG_TABLE_HOLDING, 22, 1}, {CFG_TABLE_COIL, 0, 100},
        {CFG_TABLE_HOLDING, 1, 0}, /* empty: ignored */
    };
    const struct ad_hole *per_unit[] = {h0, NULL};
    const size_t counts[] = {5, 0};
    struct ad_plan_holes holes = {per_unit, counts};
    struct ad_plan plan;
    plan_group_ok(&b, 0, &holes, &plan);
    const struct exp e[] = {
        {0, 3, 0, 2, 2, {0, 1}}, {0, 3, 3, 1, 1, {3}},  {0, 3, 12, 1, 1, {5}},
        {0, 3, 20, 1, 1, {6}},   {0, 3, 24, 1, 1, {7}}, {0, 4, 2, 1, 1, {8}},
        {1, 3, 0, 3, 2, {0, 1}},
    };
    check_plan(&b, &plan, e, 7);
    assert_int_equal(plan.n_skipped, 2);
    assert_int_equal(plan.skipped[0].unit, 0);
    assert_int_equal(plan.skipped[0].point, 2);
    assert_int_equal(plan.skipped[1].unit, 0);
    assert_int_equal(plan.skipped[1].point, 4);
    ad_plan_close(&plan);

    /* Holes with NULL members mean no holes. */
    struct ad_plan_holes none = {NULL, NULL};
    plan_group_ok(&b, 0, &none, &plan);
    assert_int_equal(plan.n_skipped, 0);
    /* 0..3, 10..12, 20..24, input 2, unit 1 */
    assert_int_equal(plan.n_reqs, 5);
    assert_int_equal(plan.reqs[2].start, 20);
    assert_int_equal(plan.reqs[2].count, 5);
    ad_plan_close(&plan);
}

static void test_hole_single_register(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    b.units[u].single_register = true;
    tb_coil(&b, u, 0);
    tb_coil(&b, u, 1);
    tb_coil(&b, u, 2);
    const struct ad_hole h[] = {{CFG_TABLE_COIL, 1, 1}};
    const struct ad_hole *per_unit[] = {h};
    const size_t counts[] = {1};
    struct ad_plan_holes holes = {per_unit, counts};
    struct ad_plan plan;
    plan_group_ok(&b, 0, &holes, &plan);
    const struct exp e[] = {
        {0, 1, 0, 1, 1, {0}},
        {0, 1, 2, 1, 1, {2}},
    };
    check_plan(&b, &plan, e, 2);
    assert_int_equal(plan.n_skipped, 1);
    assert_int_equal(plan.skipped[0].point, 1);
    ad_plan_close(&plan);
}

/* ---- poll groups and subsets --------------------------------------------- */

static void test_poll_groups(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u0 = tb_unit(&b, 1);
    size_t u1 = tb_unit(&b, 2);
    tb_hr(&b, u0, 0, 1);                              /* g0 */
    b.points[u0][tb_hr(&b, u0, 1, 1)].poll_group = 1; /* g1 */
    tb_hr(&b, u0, 2, 1);                              /* g0 */
    b.points[u0][tb_hr(&b, u0, 3, 1)].poll_group = 1; /* g1 */
    b.points[u1][tb_coil(&b, u1, 7)].poll_group = 1;  /* g1 */
    tb_coil(&b, u1, 8);                               /* g0 */
    struct ad_plan plan;
    plan_group_ok(&b, 1, NULL, &plan);
    const struct exp e1[] = {
        {0, 3, 1, 1, 1, {1}},
        {0, 3, 3, 1, 1, {3}},
        {1, 1, 7, 1, 1, {0}},
    };
    check_plan(&b, &plan, e1, 3);
    ad_plan_close(&plan);
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e0[] = {
        {0, 3, 0, 1, 1, {0}},
        {0, 3, 2, 1, 1, {2}},
        {1, 1, 8, 1, 1, {1}},
    };
    check_plan(&b, &plan, e0, 3);
    ad_plan_close(&plan);
}

static void test_empty_group(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    size_t u = tb_unit(&b, 1);
    tb_hr(&b, u, 0, 1);
    struct ad_plan plan;
    memset(&plan, 0xa5, sizeof(plan));
    plan_group_ok(&b, 2, NULL, &plan);
    assert_int_equal(plan.n_reqs, 0);
    assert_int_equal(plan.n_points, 0);
    assert_int_equal(plan.n_skipped, 0);
    assert_null(plan.reqs);
    assert_int_equal(ad_plan_bus_time_us(&b.link, &plan), 0);
    ad_plan_close(&plan);
    /* A link without units. */
    struct tb e;
    tb_init(&e, CFG_LINK_RTU);
    plan_group_ok(&e, 0, NULL, &plan);
    assert_int_equal(plan.n_reqs, 0);
    ad_plan_close(&plan);
}

static void test_plan_points_subset(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_TCP);
    tb_unit(&b, 1);
    size_t u = tb_unit(&b, 7);
    tb_hr(&b, 0, 0, 1);
    tb_hr(&b, u, 0, 1);            /* 0 */
    tb_hr(&b, u, 1, 1);            /* 1 */
    tb_hr(&b, u, 2, 1);            /* 2 */
    tb_coil(&b, u, 5);             /* 3 */
    tb_hr(&b, u, 30, 2);           /* 4 */
    b.points[u][4].poll_group = 3; /* groups do not matter here */
    const size_t pick[] = {4, 2, 0, 3, 2};
    struct ad_plan plan;
    assert_int_equal(ad_plan_points(&b.link, u, pick, 5, NULL, &plan), GW_OK);
    const struct exp e[] = {
        {1, 1, 5, 1, 1, {3}},
        {1, 3, 0, 1, 1, {0}},
        {1, 3, 2, 1, 1, {2}},
        {1, 3, 30, 2, 1, {4}},
    };
    check_plan(&b, &plan, e, 4);
    ad_plan_close(&plan);

    /* The same rules apply: max_gap 1 bridges register 1. */
    b.units[u].max_gap = 1;
    assert_int_equal(ad_plan_points(&b.link, u, pick, 3, NULL, &plan), GW_OK);
    const struct exp e2[] = {
        {1, 3, 0, 3, 2, {0, 2}},
        {1, 3, 30, 2, 1, {4}},
    };
    check_plan(&b, &plan, e2, 2);
    ad_plan_close(&plan);

    /* Holes are honoured. */
    const struct ad_hole h[] = {{CFG_TABLE_HOLDING, 31, 1}};
    const struct ad_hole *per_unit[] = {NULL, h};
    const size_t counts[] = {0, 1};
    struct ad_plan_holes holes = {per_unit, counts};
    assert_int_equal(ad_plan_points(&b.link, u, pick, 3, &holes, &plan), GW_OK);
    check_plan(&b, &plan, e2, 1);
    assert_int_equal(plan.n_skipped, 1);
    assert_int_equal(plan.skipped[0].unit, 1);
    assert_int_equal(plan.skipped[0].point, 4);
    ad_plan_close(&plan);

    /* Nothing asked: an empty plan.  Bad indices: GW_EINVAL. */
    assert_int_equal(ad_plan_points(&b.link, u, NULL, 0, NULL, &plan), GW_OK);
    assert_int_equal(plan.n_reqs, 0);
    const size_t bad[] = {0, 5};
    assert_int_equal(ad_plan_points(&b.link, u, bad, 2, NULL, &plan),
                     GW_EINVAL);
    assert_int_equal(ad_plan_points(&b.link, 2, pick, 1, NULL, &plan),
                     GW_EINVAL);
    assert_int_equal(ad_plan_points(&b.link, u, NULL, 1, NULL, &plan),
                     GW_EINVAL);
    ad_plan_close(&plan);
    ad_plan_close(&plan); /* idempotent */
    ad_plan_close(NULL);
}

/* ---- bus time ------------------------------------------------------------ */

static void test_bus_time(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_RTU); /* 9600 8E1: 11 bits, 1145.83 us a char */
    struct ad_request r = {.fc = 3, .count = 10};
    /* 8 + (5 + 20) bytes + 2 x 3.5 chars = 40 chars = 45833.3 us */
    assert_int_equal(ad_request_bus_time_us(&b.link, &r), 45833);
    /* FC01, 20 coils: 3 data bytes: 8 + 8 + 7 = 23 chars = 26354.2 us */
    r = (struct ad_request){.fc = 1, .count = 20};
    assert_int_equal(ad_request_bus_time_us(&b.link, &r), 26354);
    /* 2000 discrete inputs: 250 bytes: 8 + 255 + 7 = 270 chars */
    r = (struct ad_request){.fc = 2, .count = 2000};
    assert_int_equal(ad_request_bus_time_us(&b.link, &r), 309375);
    /* 19200 8N1 (10 bits, 3.5 chars still): FC04 x1: 8 + 7 + 7 = 22 chars
     * = 11458.3 us */
    b.link.baud = 19200;
    b.link.parity = CFG_PARITY_NONE;
    r = (struct ad_request){.fc = 4, .count = 1};
    assert_int_equal(ad_request_bus_time_us(&b.link, &r), 11458);
    /* 7O1 is 10 bits too */
    b.link.data_bits = 7;
    b.link.parity = CFG_PARITY_ODD;
    assert_int_equal(ad_request_bus_time_us(&b.link, &r), 11458);
    /* 38400 8N2 (11 bits): FC03 x2: 17 chars = 4869.8 us, + 2 x 1750 */
    b.link.baud = 38400;
    b.link.data_bits = 8;
    b.link.parity = CFG_PARITY_NONE;
    b.link.stop_bits = 2;
    r = (struct ad_request){.fc = 3, .count = 2};
    assert_int_equal(ad_request_bus_time_us(&b.link, &r), 4870 + 3500);
    /* delay counts per request, turnaround does not */
    b.link.delay_ms = 5;
    b.link.turnaround_ms = 100;
    assert_int_equal(ad_request_bus_time_us(&b.link, &r), 4870 + 3500 + 5000);
    /* TCP and rtu-over-tcp: 0 */
    b.link.type = CFG_LINK_TCP;
    assert_int_equal(ad_request_bus_time_us(&b.link, &r), 0);
    b.link.type = CFG_LINK_RTU_OVER_TCP;
    assert_int_equal(ad_request_bus_time_us(&b.link, &r), 0);
    assert_int_equal(ad_request_bus_time_us(NULL, &r), 0);
    assert_int_equal(ad_request_bus_time_us(&b.link, NULL), 0);
}

static void test_plan_bus_time(void **state)
{
    struct tb b;
    tb_init(&b, CFG_LINK_RTU); /* 9600 8E1 */
    size_t u = tb_unit(&b, 1);
    for (uint16_t a = 0; a < 10; a++)
        tb_hr(&b, u, a, 1);
    tb_coil(&b, u, 0);
    tb_coil(&b, u, 19);
    b.units[u].max_gap = 18;
    struct ad_plan plan;
    plan_group_ok(&b, 0, NULL, &plan);
    const struct exp e[] = {
        {0, 1, 0, 20, 2, {10, 11}},
        {0, 3, 0, 10, 10, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
    };
    check_plan(&b, &plan, e, 2);
    assert_int_equal(ad_plan_bus_time_us(&b.link, &plan), 26354 + 45833);
    b.link.type = CFG_LINK_TCP;
    assert_int_equal(ad_plan_bus_time_us(&b.link, &plan), 0);
    assert_int_equal(ad_plan_bus_time_us(&b.link, NULL), 0);
    ad_plan_close(&plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gap_zero),
        cmocka_unit_test(test_gap_bridged_at_max_gap),
        cmocka_unit_test(test_gap_not_bridged_above_max_gap),
        cmocka_unit_test(test_gap_bits),
        cmocka_unit_test(test_max_registers_split),
        cmocka_unit_test(test_max_registers_with_gap),
        cmocka_unit_test(test_max_bits_split),
        cmocka_unit_test(test_protocol_limit_caps_map),
        cmocka_unit_test(test_point_too_big),
        cmocka_unit_test(test_malformed_points),
        cmocka_unit_test(test_overlap_bits_on_register),
        cmocka_unit_test(test_overlap_two_scalings),
        cmocka_unit_test(test_mixed_tables),
        cmocka_unit_test(test_multiple_units),
        cmocka_unit_test(test_template_units),
        cmocka_unit_test(test_single_register),
        cmocka_unit_test(test_single_register_same_start),
        cmocka_unit_test(test_wide_points),
        cmocka_unit_test(test_holes_skip_and_split),
        cmocka_unit_test(test_hole_single_register),
        cmocka_unit_test(test_poll_groups),
        cmocka_unit_test(test_empty_group),
        cmocka_unit_test(test_plan_points_subset),
        cmocka_unit_test(test_bus_time),
        cmocka_unit_test(test_plan_bus_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
