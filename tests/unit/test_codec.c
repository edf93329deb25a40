/* test_codec.c - the value codec (adapters/ad_codec.c) on hand-built points.
 *
 * The register vectors are written out as literal hex, computed outside the
 * codec: IEEE-754 bit patterns of known numbers (123.456f = 0x42F6E979,
 * pi = 0x400921FB54442D18, -2.5 = 0xC004000000000000), two's complement
 * integers (-123456789 = 0xF8A432EB, -12345 = 0xCFC7) and each byte order
 * laid out by hand.  Round trips then cover every permutation of the order
 * letters. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ad_codec.h"
#include "gw_err.h"

/* ---- helpers ------------------------------------------------------------ */

static struct cfg_point point(enum cfg_type type, const char *order)
{
    struct cfg_point p;
    memset(&p, 0, sizeof(p));
    p.name = "p";
    p.table = CFG_TABLE_HOLDING;
    p.type = type;
    p.count = 1; /* what the loader derives from the type */
    switch (type) {
    case CFG_TYPE_INT32:
    case CFG_TYPE_UINT32:
    case CFG_TYPE_FLOAT32:
    case CFG_TYPE_BCD32:
        p.count = 2;
        break;
    case CFG_TYPE_INT64:
    case CFG_TYPE_UINT64:
    case CFG_TYPE_FLOAT64:
        p.count = 4;
        break;
    default:
        break;
    }
    snprintf(p.order, sizeof(p.order), "%s", order ? order : "");
    p.scale = 1.0;
    p.offset = 0.0;
    p.decimals = -1;
    return p;
}

static struct cfg_point string_point(uint16_t count, enum cfg_packing packing)
{
    struct cfg_point p = point(CFG_TYPE_STRING, "");
    p.count = count;
    p.packing = packing;
    return p;
}

static struct ad_value vint(int64_t i)
{
    struct ad_value v;
    memset(&v, 0, sizeof(v));
    v.kind = AD_VALUE_INT;
    v.v.i = i;
    return v;
}

static struct ad_value vuint(uint64_t u)
{
    struct ad_value v;
    memset(&v, 0, sizeof(v));
    v.kind = AD_VALUE_UINT;
    v.v.u = u;
    return v;
}

static struct ad_value vdouble(double d)
{
    struct ad_value v;
    memset(&v, 0, sizeof(v));
    v.kind = AD_VALUE_DOUBLE;
    v.v.d = d;
    return v;
}

static struct ad_value vbool(bool b)
{
    struct ad_value v;
    memset(&v, 0, sizeof(v));
    v.kind = AD_VALUE_BOOL;
    v.v.b = b;
    return v;
}

static struct ad_value vstring(const char *s)
{
    struct ad_value v;
    memset(&v, 0, sizeof(v));
    v.kind = AD_VALUE_STRING;
    snprintf(v.s, sizeof(v.s), "%s", s);
    return v;
}

static unsigned words_of(enum cfg_type t)
{
    switch (t) {
    case CFG_TYPE_INT32:
    case CFG_TYPE_UINT32:
    case CFG_TYPE_FLOAT32:
    case CFG_TYPE_BCD32:
        return 2;
    case CFG_TYPE_INT64:
    case CFG_TYPE_UINT64:
    case CFG_TYPE_FLOAT64:
        return 4;
    default:
        return 1;
    }
}

/* ---- decode and encode: literal vectors --------------------------------- */

struct vec {
    enum cfg_type type;
    const char *order;
    uint16_t regs[4];
    enum ad_value_kind kind;
    int64_t i;
    uint64_t u;
    double d;
};

#define VI(t, o, r, x)                                                         \
    {                                                                          \
        t, o, r, AD_VALUE_INT, (x), 0, 0                                       \
    }
#define VU(t, o, r, x)                                                         \
    {                                                                          \
        t, o, r, AD_VALUE_UINT, 0, (x), 0                                      \
    }
#define VD(t, o, r, x)                                                         \
    {                                                                          \
        t, o, r, AD_VALUE_DOUBLE, 0, 0, (x)                                    \
    }
#define R(...)                                                                 \
    {                                                                          \
        __VA_ARGS__                                                            \
    }

static const struct vec vectors[] = {
    /* int16 -12345 = 0xCFC7 */
    VI(CFG_TYPE_INT16, "AB", R(0xCFC7), -12345),
    VI(CFG_TYPE_INT16, "BA", R(0xC7CF), -12345),
    VI(CFG_TYPE_INT16, "AB", R(0x7FFF), 32767),
    VI(CFG_TYPE_INT16, "AB", R(0x8000), -32768),
    VI(CFG_TYPE_INT16, "", R(0xFFFF), -1), /* empty order = natural */
    /* uint16 43981 = 0xABCD */
    VU(CFG_TYPE_UINT16, "AB", R(0xABCD), 43981),
    VU(CFG_TYPE_UINT16, "BA", R(0xCDAB), 43981),
    VU(CFG_TYPE_UINT16, "AB", R(0xFFFF), 65535),
    /* bcd16 1234 */
    VI(CFG_TYPE_BCD16, "AB", R(0x1234), 1234),
    VI(CFG_TYPE_BCD16, "BA", R(0x3412), 1234),
    VI(CFG_TYPE_BCD16, "AB", R(0x9999), 9999),
    /* int32 -123456789 = F8 A4 32 EB */
    VI(CFG_TYPE_INT32, "ABCD", R(0xF8A4, 0x32EB), -123456789),
    VI(CFG_TYPE_INT32, "CDAB", R(0x32EB, 0xF8A4), -123456789),
    VI(CFG_TYPE_INT32, "BADC", R(0xA4F8, 0xEB32), -123456789),
    VI(CFG_TYPE_INT32, "DCBA", R(0xEB32, 0xA4F8), -123456789),
    VI(CFG_TYPE_INT32, "ACBD", R(0xF832, 0xA4EB), -123456789),
    VI(CFG_TYPE_INT32, "DBCA", R(0xEBA4, 0x32F8), -123456789),
    VI(CFG_TYPE_INT32, "ABCD", R(0x8000, 0x0000), INT32_MIN),
    /* uint32 4000000000 = EE 6B 28 00 */
    VU(CFG_TYPE_UINT32, "ABCD", R(0xEE6B, 0x2800), 4000000000u),
    VU(CFG_TYPE_UINT32, "CDAB", R(0x2800, 0xEE6B), 4000000000u),
    VU(CFG_TYPE_UINT32, "BADC", R(0x6BEE, 0x0028), 4000000000u),
    VU(CFG_TYPE_UINT32, "DCBA", R(0x0028, 0x6BEE), 4000000000u),
    /* bcd32 12345678 */
    VI(CFG_TYPE_BCD32, "ABCD", R(0x1234, 0x5678), 12345678),
    VI(CFG_TYPE_BCD32, "CDAB", R(0x5678, 0x1234), 12345678),
    VI(CFG_TYPE_BCD32, "BADC", R(0x3412, 0x7856), 12345678),
    VI(CFG_TYPE_BCD32, "DCBA", R(0x7856, 0x3412), 12345678),
    /* float32 123.456f = 42 F6 E9 79, 1.0f = 3F 80 00 00 */
    VD(CFG_TYPE_FLOAT32, "ABCD", R(0x42F6, 0xE979), (double)123.456f),
    VD(CFG_TYPE_FLOAT32, "CDAB", R(0xE979, 0x42F6), (double)123.456f),
    VD(CFG_TYPE_FLOAT32, "BADC", R(0xF642, 0x79E9), (double)123.456f),
    VD(CFG_TYPE_FLOAT32, "DCBA", R(0x79E9, 0xF642), (double)123.456f),
    VD(CFG_TYPE_FLOAT32, "BCAD", R(0xF6E9, 0x4279), (double)123.456f),
    VD(CFG_TYPE_FLOAT32, "ABCD", R(0x3F80, 0x0000), 1.0),
    VD(CFG_TYPE_FLOAT32, "CDAB", R(0x0000, 0x3F80), 1.0),
    VD(CFG_TYPE_FLOAT32, "ABCD", R(0xC020, 0x0000), -2.5),
    /* int64 -81985529216486896 = FE DC BA 98 76 54 32 10 */
    VI(CFG_TYPE_INT64, "ABCDEFGH", R(0xFEDC, 0xBA98, 0x7654, 0x3210),
       -81985529216486896),
    VI(CFG_TYPE_INT64, "GHEFCDAB", R(0x3210, 0x7654, 0xBA98, 0xFEDC),
       -81985529216486896),
    VI(CFG_TYPE_INT64, "BADCFEHG", R(0xDCFE, 0x98BA, 0x5476, 0x1032),
       -81985529216486896),
    VI(CFG_TYPE_INT64, "HGFEDCBA", R(0x1032, 0x5476, 0x98BA, 0xDCFE),
       -81985529216486896),
    VI(CFG_TYPE_INT64, "EFGHABCD", R(0x7654, 0x3210, 0xFEDC, 0xBA98),
       -81985529216486896),
    VI(CFG_TYPE_INT64, "AHBGCFDE", R(0xFE10, 0xDC32, 0xBA54, 0x9876),
       -81985529216486896),
    VI(CFG_TYPE_INT64, "ABCDEFGH", R(0x8000, 0, 0, 0), INT64_MIN),
    VI(CFG_TYPE_INT64, "ABCDEFGH", R(0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF),
       INT64_MAX),
    /* uint64 81985529216486895 = 01 23 45 67 89 AB CD EF */
    VU(CFG_TYPE_UINT64, "ABCDEFGH", R(0x0123, 0x4567, 0x89AB, 0xCDEF),
       81985529216486895u),
    VU(CFG_TYPE_UINT64, "GHEFCDAB", R(0xCDEF, 0x89AB, 0x4567, 0x0123),
       81985529216486895u),
    VU(CFG_TYPE_UINT64, "BADCFEHG", R(0x2301, 0x6745, 0xAB89, 0xEFCD),
       81985529216486895u),
    VU(CFG_TYPE_UINT64, "HGFEDCBA", R(0xEFCD, 0xAB89, 0x6745, 0x2301),
       81985529216486895u),
    /* uint64 9833440827789222417 = 88 77 66 55 44 33 22 11 (above 2^63) */
    VU(CFG_TYPE_UINT64, "ABCDEFGH", R(0x8877, 0x6655, 0x4433, 0x2211),
       9833440827789222417u),
    VU(CFG_TYPE_UINT64, "HGFEDCBA", R(0x1122, 0x3344, 0x5566, 0x7788),
       9833440827789222417u),
    VU(CFG_TYPE_UINT64, "ABCDEFGH", R(0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF),
       UINT64_MAX),
    /* float64 pi = 40 09 21 FB 54 44 2D 18, -2.5 = C0 04 00 .. 00 */
    VD(CFG_TYPE_FLOAT64, "ABCDEFGH", R(0x4009, 0x21FB, 0x5444, 0x2D18),
       3.141592653589793),
    VD(CFG_TYPE_FLOAT64, "GHEFCDAB", R(0x2D18, 0x5444, 0x21FB, 0x4009),
       3.141592653589793),
    VD(CFG_TYPE_FLOAT64, "BADCFEHG", R(0x0940, 0xFB21, 0x4454, 0x182D),
       3.141592653589793),
    VD(CFG_TYPE_FLOAT64, "HGFEDCBA", R(0x182D, 0x4454, 0xFB21, 0x0940),
       3.141592653589793),
    VD(CFG_TYPE_FLOAT64, "ABCDEFGH", R(0xC004, 0, 0, 0), -2.5),
    VD(CFG_TYPE_FLOAT64, "HGFEDCBA", R(0, 0, 0, 0x04C0), -2.5),
};

static void assert_value(const struct vec *t, const struct ad_value *v)
{
    assert_int_equal(v->kind, t->kind);
    switch (t->kind) {
    case AD_VALUE_INT:
        assert_true(v->v.i == t->i);
        break;
    case AD_VALUE_UINT:
        assert_true(v->v.u == t->u);
        break;
    case AD_VALUE_DOUBLE:
        assert_true(v->v.d == t->d);
        break;
    default:
        fail();
    }
}

static void test_decode_vectors(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(vectors) / sizeof(vectors[0]); k++) {
        const struct vec *t = &vectors[k];
        struct cfg_point p = point(t->type, t->order);
        struct ad_value v;
        int rc = ad_decode_registers(&p, t->regs, words_of(t->type), &v);
        if (rc != GW_OK)
            print_error("vector %zu (%s)\n", k, t->order);
        assert_int_equal(rc, GW_OK);
        assert_value(t, &v);
        /* Input registers decode the same way. */
        p.table = CFG_TABLE_INPUT;
        assert_int_equal(
            ad_decode_registers(&p, t->regs, words_of(t->type), &v), GW_OK);
        assert_value(t, &v);
    }
}

static void test_encode_vectors(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(vectors) / sizeof(vectors[0]); k++) {
        const struct vec *t = &vectors[k];
        struct cfg_point p = point(t->type, t->order);
        struct ad_value in = t->kind == AD_VALUE_INT    ? vint(t->i)
                             : t->kind == AD_VALUE_UINT ? vuint(t->u)
                                                        : vdouble(t->d);
        uint16_t regs[4] = {0x5555, 0x5555, 0x5555, 0x5555};
        int rc = ad_encode_registers(&p, &in, 0, regs, 4);
        if (rc != GW_OK)
            print_error("vector %zu (%s)\n", k, t->order);
        assert_int_equal(rc, GW_OK);
        assert_memory_equal(regs, t->regs, words_of(t->type) * 2);
        /* Nothing written past the point. */
        for (unsigned w = words_of(t->type); w < 4; w++)
            assert_int_equal(regs[w], 0x5555);
    }
}

/* ---- round trips over every permutation --------------------------------- */

/* The wire layout of a value with distinct bytes, computed from the letters
 * directly: wire byte i is value byte order[i] ('A' = most significant). */
static void reference_layout(uint64_t raw, const char *order, unsigned nbytes,
                             uint16_t *regs)
{
    for (unsigned i = 0; i < nbytes; i++) {
        unsigned letter = (unsigned)(order[i] - 'A');
        unsigned byte = (unsigned)(raw >> (8 * (nbytes - 1 - letter))) & 0xffu;
        if (i % 2 == 0)
            regs[i / 2] = (uint16_t)(byte << 8);
        else
            regs[i / 2] = (uint16_t)(regs[i / 2] | byte);
    }
}

static void check_order(const char *order, unsigned nbytes)
{
    /* Integers with distinct bytes: the layout must match the reference. */
    static const uint64_t raws[] = {0x8877665544332211u, 0x0123456789ABCDEFu};
    for (size_t k = 0; k < 2; k++) {
        enum cfg_type t = nbytes == 2   ? CFG_TYPE_UINT16
                          : nbytes == 4 ? CFG_TYPE_UINT32
                                        : CFG_TYPE_UINT64;
        uint64_t raw = raws[k] >> (64 - 8 * nbytes);
        struct cfg_point p = point(t, order);
        struct ad_value in = vuint(raw), out;
        uint16_t regs[4] = {0}, want[4] = {0};
        assert_int_equal(ad_encode_registers(&p, &in, 0, regs, 4), GW_OK);
        reference_layout(raw, order, nbytes, want);
        assert_memory_equal(regs, want, nbytes);
        assert_int_equal(ad_decode_registers(&p, regs, 4, &out), GW_OK);
        assert_int_equal(out.kind, AD_VALUE_UINT);
        assert_true(out.v.u == raw);
    }
    /* Every type of this width round trips a few values. */
    struct {
        enum cfg_type type;
        unsigned nbytes;
        struct ad_value v;
    } cases[] = {
        {CFG_TYPE_INT16, 2, vint(-32768)},
        {CFG_TYPE_INT16, 2, vint(-2)},
        {CFG_TYPE_INT16, 2, vint(32767)},
        {CFG_TYPE_UINT16, 2, vuint(65535)},
        {CFG_TYPE_UINT16, 2, vuint(258)},
        {CFG_TYPE_BCD16, 2, vint(9876)},
        {CFG_TYPE_BCD16, 2, vint(0)},
        {CFG_TYPE_INT32, 4, vint(INT32_MIN)},
        {CFG_TYPE_INT32, 4, vint(-123456789)},
        {CFG_TYPE_INT32, 4, vint(INT32_MAX)},
        {CFG_TYPE_UINT32, 4, vuint(UINT32_MAX)},
        {CFG_TYPE_UINT32, 4, vuint(305419896)},
        {CFG_TYPE_FLOAT32, 4, vdouble((double)123.456f)},
        {CFG_TYPE_FLOAT32, 4, vdouble(-0.0)},
        {CFG_TYPE_FLOAT32, 4, vdouble((double)FLT_MAX)},
        {CFG_TYPE_FLOAT32, 4, vdouble((double)FLT_TRUE_MIN)},
        {CFG_TYPE_BCD32, 4, vint(87654321)},
        {CFG_TYPE_BCD32, 4, vint(99999999)},
        {CFG_TYPE_INT64, 8, vint(INT64_MIN)},
        {CFG_TYPE_INT64, 8, vint(-81985529216486896)},
        {CFG_TYPE_INT64, 8, vint(INT64_MAX)},
        {CFG_TYPE_UINT64, 8, vuint(UINT64_MAX)},
        {CFG_TYPE_UINT64, 8, vuint(9007199254740993u)}, /* 2^53 + 1 */
        {CFG_TYPE_FLOAT64, 8, vdouble(3.141592653589793)},
        {CFG_TYPE_FLOAT64, 8, vdouble(-DBL_MAX)},
        {CFG_TYPE_FLOAT64, 8, vdouble(DBL_TRUE_MIN)},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        if (cases[k].nbytes != nbytes)
            continue;
        struct cfg_point p = point(cases[k].type, order);
        uint16_t regs[4] = {0};
        struct ad_value out;
        assert_int_equal(ad_encode_registers(&p, &cases[k].v, 0, regs, 4),
                         GW_OK);
        assert_int_equal(ad_decode_registers(&p, regs, 4, &out), GW_OK);
        assert_true(ad_value_equal(&out, &cases[k].v));
        if (cases[k].v.kind == AD_VALUE_DOUBLE) /* -0.0 keeps its sign */
            assert_true(signbit(out.v.d) == signbit(cases[k].v.v.d));
    }
}

/* Heap's algorithm over the first n letters. */
static size_t permute(char *s, unsigned n, unsigned nbytes)
{
    if (n == 1) {
        check_order(s, nbytes);
        return 1;
    }
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        total += permute(s, n - 1, nbytes);
        unsigned j = (n % 2 == 0) ? i : 0;
        char c = s[j];
        s[j] = s[n - 1];
        s[n - 1] = c;
    }
    return total;
}

static void test_round_trip_all_orders(void **state)
{
    (void)state;
    char o2[] = "AB", o4[] = "ABCD", o8[] = "ABCDEFGH";
    assert_int_equal(permute(o2, 2, 2), 2);
    assert_int_equal(permute(o4, 4, 4), 24);
    assert_int_equal(permute(o8, 8, 8), 40320);
}

static void test_bad_orders(void **state)
{
    (void)state;
    static const struct {
        enum cfg_type type;
        const char *order;
    } bad[] = {
        {CFG_TYPE_INT32, "ABCC"},      {CFG_TYPE_INT32, "ABC"},
        {CFG_TYPE_INT32, "AB"},        {CFG_TYPE_INT32, "ABCE"},
        {CFG_TYPE_INT32, "abcd"},      {CFG_TYPE_INT16, "ABCD"},
        {CFG_TYPE_INT16, "AA"},        {CFG_TYPE_FLOAT64, "ABCD"},
        {CFG_TYPE_UINT64, "ABCDEFGA"}, {CFG_TYPE_BCD32, "DCB"},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        struct cfg_point p = point(bad[k].type, bad[k].order);
        uint16_t regs[4] = {1, 2, 3, 4};
        struct ad_value v = vint(1);
        assert_int_equal(ad_decode_registers(&p, regs, 4, &v), GW_EINVAL);
        assert_int_equal(v.kind, AD_VALUE_NONE);
        v = vint(1);
        assert_int_equal(ad_encode_registers(&p, &v, 0, regs, 4), GW_EINVAL);
    }
}

/* ---- non-finite floats, BCD, ranges, kinds ------------------------------ */

static void test_nonfinite_decode(void **state)
{
    (void)state;
    static const struct {
        enum cfg_type type;
        const char *order;
        uint16_t regs[4];
        int sign; /* 0 = NaN */
    } cases[] = {
        {CFG_TYPE_FLOAT32, "ABCD", {0x7FC0, 0x0000}, 0},
        {CFG_TYPE_FLOAT32, "CDAB", {0x0000, 0x7F80}, 1},
        {CFG_TYPE_FLOAT32, "ABCD", {0xFF80, 0x0000}, -1},
        {CFG_TYPE_FLOAT64, "ABCDEFGH", {0x7FF8, 0, 0, 0}, 0},
        {CFG_TYPE_FLOAT64, "ABCDEFGH", {0x7FF0, 0, 0, 0}, 1},
        {CFG_TYPE_FLOAT64, "HGFEDCBA", {0, 0, 0, 0xF0FF}, -1},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct cfg_point p = point(cases[k].type, cases[k].order);
        struct ad_value v;
        assert_int_equal(ad_decode_registers(&p, cases[k].regs, 4, &v),
                         GW_ENONFINITE);
        assert_int_equal(v.kind, AD_VALUE_DOUBLE);
        if (cases[k].sign == 0)
            assert_true(isnan(v.v.d));
        else
            assert_true(isinf(v.v.d) && (v.v.d > 0) == (cases[k].sign > 0));
    }
    /* A finite raw value whose engineering value overflows. */
    struct cfg_point p = point(CFG_TYPE_FLOAT64, "ABCDEFGH");
    p.scale = 10.0;
    uint16_t max[4] = {0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF}; /* DBL_MAX */
    struct ad_value v;
    assert_int_equal(ad_decode_registers(&p, max, 4, &v), GW_ENONFINITE);
    assert_true(isinf(v.v.d));
}

static void test_nonfinite_encode(void **state)
{
    (void)state;
    enum cfg_type types[] = {CFG_TYPE_FLOAT32, CFG_TYPE_FLOAT64, CFG_TYPE_INT32,
                             CFG_TYPE_UINT16};
    double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t t = 0; t < 4; t++)
        for (size_t k = 0; k < 3; k++) {
            struct cfg_point p = point(types[t], "");
            struct ad_value in = vdouble(bad[k]);
            uint16_t regs[4];
            assert_int_equal(ad_encode_registers(&p, &in, 0, regs, 4),
                             GW_ENONFINITE);
        }
}

static void test_bcd_errors(void **state)
{
    (void)state;
    struct cfg_point p16 = point(CFG_TYPE_BCD16, "AB");
    struct cfg_point p32 = point(CFG_TYPE_BCD32, "ABCD");
    uint16_t r16[] = {0x12A4}, r32[] = {0x1234, 0x567F}, rf[] = {0xF000};
    struct ad_value v;
    assert_int_equal(ad_decode_registers(&p16, r16, 1, &v), GW_EBADBCD);
    assert_int_equal(v.kind, AD_VALUE_NONE);
    assert_int_equal(ad_decode_registers(&p16, rf, 1, &v), GW_EBADBCD);
    assert_int_equal(ad_decode_registers(&p32, r32, 2, &v), GW_EBADBCD);
    assert_int_equal(v.kind, AD_VALUE_NONE);
    /* Encoding: negative or more digits than the register holds. */
    uint16_t regs[2];
    struct ad_value in = vint(-1);
    assert_int_equal(ad_encode_registers(&p16, &in, 0, regs, 2), GW_ERANGE);
    in = vint(10000);
    assert_int_equal(ad_encode_registers(&p16, &in, 0, regs, 2), GW_ERANGE);
    in = vuint(100000000);
    assert_int_equal(ad_encode_registers(&p32, &in, 0, regs, 2), GW_ERANGE);
    in = vdouble(42.0);
    assert_int_equal(ad_encode_registers(&p16, &in, 0, regs, 2), GW_OK);
    assert_int_equal(regs[0], 0x0042);
}

struct enc_case {
    enum cfg_type type;
    double scale, offset;
    bool has_min;
    double min;
    bool has_max;
    double max;
    struct ad_value in;
    int rc;
    uint16_t regs[4]; /* checked when rc == 0 */
};

static void run_enc_cases(const struct enc_case *c, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        struct cfg_point p = point(c[k].type, "");
        p.scale = c[k].scale;
        p.offset = c[k].offset;
        p.has_min = c[k].has_min;
        p.min = c[k].min;
        p.has_max = c[k].has_max;
        p.max = c[k].max;
        uint16_t regs[4] = {0};
        int rc = ad_encode_registers(&p, &c[k].in, 0, regs, 4);
        if (rc != c[k].rc)
            print_error("case %zu: %s\n", k, gw_err_name(rc));
        assert_int_equal(rc, c[k].rc);
        if (rc == GW_OK)
            assert_memory_equal(regs, c[k].regs, words_of(c[k].type) * 2);
    }
}

static void test_encode_ranges(void **state)
{
    (void)state;
    const struct enc_case c[] = {
        /* raw type ranges: reject, never clamp */
        {CFG_TYPE_UINT16, 1, 0, 0, 0, 0, 0, vint(70000), GW_ERANGE, {0}},
        {CFG_TYPE_UINT16, 1, 0, 0, 0, 0, 0, vuint(65536), GW_ERANGE, {0}},
        {CFG_TYPE_UINT16, 1, 0, 0, 0, 0, 0, vint(-1), GW_ERANGE, {0}},
        {CFG_TYPE_UINT16, 1, 0, 0, 0, 0, 0, vint(65535), 0, {0xFFFF}},
        {CFG_TYPE_INT16, 1, 0, 0, 0, 0, 0, vint(-32769), GW_ERANGE, {0}},
        {CFG_TYPE_INT16, 1, 0, 0, 0, 0, 0, vint(32768), GW_ERANGE, {0}},
        {CFG_TYPE_INT16, 1, 0, 0, 0, 0, 0, vdouble(-32769.0), GW_ERANGE, {0}},
        {CFG_TYPE_INT16, 1, 0, 0, 0, 0, 0, vint(-32768), 0, {0x8000}},
        {CFG_TYPE_INT16, 1, 0, 0, 0, 0, 0, vuint(32767), 0, {0x7FFF}},
        {CFG_TYPE_INT32, 1, 0, 0, 0, 0, 0, vint(2147483648), GW_ERANGE, {0}},
        {CFG_TYPE_UINT32,
         1,
         0,
         0,
         0,
         0,
         0,
         vdouble(4294967296.0),
         GW_ERANGE,
         {0}},
        {CFG_TYPE_INT64,
         1,
         0,
         0,
         0,
         0,
         0,
         vuint(9223372036854775808u),
         GW_ERANGE,
         {0}},
        {CFG_TYPE_INT64, 1, 0, 0, 0, 0, 0, vdouble(0x1p63), GW_ERANGE, {0}},
        {CFG_TYPE_INT64,
         1,
         0,
         0,
         0,
         0,
         0,
         vdouble(-0x1p63),
         0,
         {0x8000, 0, 0, 0}},
        {CFG_TYPE_UINT64, 1, 0, 0, 0, 0, 0, vint(-1), GW_ERANGE, {0}},
        {CFG_TYPE_UINT64, 1, 0, 0, 0, 0, 0, vdouble(0x1p64), GW_ERANGE, {0}},
        {CFG_TYPE_UINT64,
         1,
         0,
         0,
         0,
         0,
         0,
         vdouble(0x1p63),
         0,
         {0x8000, 0, 0, 0}},
        /* float32 beyond FLT_MAX; float64 takes it */
        {CFG_TYPE_FLOAT32, 1, 0, 0, 0, 0, 0, vdouble(1e39), GW_ERANGE, {0}},
        {CFG_TYPE_FLOAT32, 1, 0, 0, 0, 0, 0, vdouble(-1e39), GW_ERANGE, {0}},
        {CFG_TYPE_FLOAT32, 1, 0, 0, 0, 0, 0, vint(1), 0, {0x3F80, 0}},
        /* FLT_MAX prints as 3.40282347e+38, slightly above it: still FLT_MAX;
         * 2^128 - 2^103 and above would round to infinity */
        {CFG_TYPE_FLOAT32,
         1,
         0,
         0,
         0,
         0,
         0,
         vdouble(3.40282347e+38),
         0,
         {0x7F7F, 0xFFFF}},
        {CFG_TYPE_FLOAT32,
         1,
         0,
         0,
         0,
         0,
         0,
         vdouble(0x1.fffffefffffffp127),
         0,
         {0x7F7F, 0xFFFF}},
        {CFG_TYPE_FLOAT32,
         1,
         0,
         0,
         0,
         0,
         0,
         vdouble(0x1.ffffffp127),
         GW_ERANGE,
         {0}},
        {CFG_TYPE_FLOAT32,
         1,
         0,
         0,
         0,
         0,
         0,
         vdouble(-3.4028236e38),
         GW_ERANGE,
         {0}},
        {CFG_TYPE_FLOAT64,
         1,
         0,
         0,
         0,
         0,
         0,
         vdouble(1e39),
         0,
         {0x4807, 0x8287, 0xF49C, 0x4A1D}},
        /* a raw value that overflows after undoing the scale */
        {CFG_TYPE_FLOAT64,
         1e-300,
         0,
         0,
         0,
         0,
         0,
         vdouble(1e300),
         GW_ERANGE,
         {0}},
        /* min/max are engineering values, inclusive, checked first */
        {CFG_TYPE_INT16, 1, 0, 1, -10, 1, 10, vint(10), 0, {10}},
        {CFG_TYPE_INT16, 1, 0, 1, -10, 1, 10, vint(-10), 0, {0xFFF6}},
        {CFG_TYPE_INT16, 1, 0, 1, -10, 1, 10, vint(11), GW_ERANGE, {0}},
        {CFG_TYPE_INT16, 1, 0, 1, -10, 1, 10, vint(-11), GW_ERANGE, {0}},
        {CFG_TYPE_UINT16, 1, 0, 1, 5, 0, 0, vuint(4), GW_ERANGE, {0}},
        {CFG_TYPE_FLOAT32,
         1,
         0,
         0,
         0,
         1,
         1.5,
         vdouble(1.5000001),
         GW_ERANGE,
         {0}},
        {CFG_TYPE_UINT16,
         0.1,
         -40,
         1,
         -40,
         1,
         60,
         vdouble(60.1),
         GW_ERANGE,
         {0}},
        {CFG_TYPE_UINT16, 0.1, -40, 1, -40, 1, 60, vdouble(-40.0), 0, {0}},
        /* a fraction into an unscaled integer point */
        {CFG_TYPE_INT16, 1, 0, 0, 0, 0, 0, vdouble(5.5), GW_ERANGE, {0}},
        {CFG_TYPE_UINT32, 1, 0, 0, 0, 0, 0, vdouble(0.25), GW_ERANGE, {0}},
        {CFG_TYPE_INT16, 1, 0, 0, 0, 0, 0, vdouble(-7.0), 0, {0xFFF9}},
        {CFG_TYPE_INT16, 1, 0, 0, 0, 0, 0, vdouble(7.0000000001), 0, {7}},
        /* scaled points round to the nearest raw integer, halves away */
        {CFG_TYPE_UINT16, 0.1, 0, 0, 0, 0, 0, vdouble(230.5), 0, {2305}},
        {CFG_TYPE_UINT16, 0.1, 0, 0, 0, 0, 0, vdouble(230.55), 0, {2306}},
        {CFG_TYPE_UINT16, 0.1, 0, 0, 0, 0, 0, vdouble(230.54), 0, {2305}},
        {CFG_TYPE_INT16, 0.5, 0, 0, 0, 0, 0, vdouble(-1.25), 0, {0xFFFD}},
        {CFG_TYPE_UINT16, 0.1, -40, 0, 0, 0, 0, vdouble(25.0), 0, {650}},
        {CFG_TYPE_UINT16, 0.1, -40, 0, 0, 0, 0, vdouble(-40.1), GW_ERANGE, {0}},
        {CFG_TYPE_UINT16, 0.1, -40, 0, 0, 0, 0, vint(25), 0, {650}},
        {CFG_TYPE_UINT16, 10, 0, 0, 0, 0, 0, vint(655360), GW_ERANGE, {0}},
        {CFG_TYPE_INT32, -2, 100, 0, 0, 0, 0, vint(90), 0, {0, 5}},
        {CFG_TYPE_FLOAT32, 2, 1, 0, 0, 0, 0, vdouble(3.0), 0, {0x3F80, 0}},
        /* bad scaling */
        {CFG_TYPE_INT16, 0, 0, 0, 0, 0, 0, vint(1), GW_EINVAL, {0}},
        {CFG_TYPE_INT16, NAN, 0, 0, 0, 0, 0, vint(1), GW_EINVAL, {0}},
        {CFG_TYPE_INT16, 1, INFINITY, 0, 0, 0, 0, vint(1), GW_EINVAL, {0}},
    };
    run_enc_cases(c, sizeof(c) / sizeof(c[0]));
}

static void test_encode_kinds(void **state)
{
    (void)state;
    struct ad_value none;
    memset(&none, 0, sizeof(none));
    const struct enc_case c[] = {
        {CFG_TYPE_INT16, 1, 0, 0, 0, 0, 0, vstring("1"), GW_ETYPE, {0}},
        {CFG_TYPE_INT16, 1, 0, 0, 0, 0, 0, vbool(true), GW_ETYPE, {0}},
        {CFG_TYPE_FLOAT32, 1, 0, 0, 0, 0, 0, vbool(true), GW_ETYPE, {0}},
        {CFG_TYPE_UINT64, 1, 0, 0, 0, 0, 0, none, GW_ETYPE, {0}},
        {CFG_TYPE_BCD16, 1, 0, 0, 0, 0, 0, vstring("12"), GW_ETYPE, {0}},
        {CFG_TYPE_BIT, 1, 0, 0, 0, 0, 0, vdouble(1.0), GW_ETYPE, {0}},
        {CFG_TYPE_BIT, 1, 0, 0, 0, 0, 0, vstring("true"), GW_ETYPE, {0}},
        {CFG_TYPE_BIT, 1, 0, 0, 0, 0, 0, vint(2), GW_ERANGE, {0}},
        {CFG_TYPE_BIT, 1, 0, 0, 0, 0, 0, vint(-1), GW_ERANGE, {0}},
        {CFG_TYPE_BIT, 1, 0, 0, 0, 0, 0, vuint(1), 0, {0x0001}},
        {CFG_TYPE_STRING, 1, 0, 0, 0, 0, 0, vint(1), GW_ETYPE, {0}},
        /* a bool point never lives in a register */
        {CFG_TYPE_BOOL, 1, 0, 0, 0, 0, 0, vbool(true), GW_EINVAL, {0}},
    };
    run_enc_cases(c, sizeof(c) / sizeof(c[0]));
}

static void test_tables_and_sizes(void **state)
{
    (void)state;
    struct cfg_point p = point(CFG_TYPE_INT32, "ABCD");
    uint16_t regs[4] = {0};
    struct ad_value v = vint(1);
    /* n / cap too small */
    assert_int_equal(ad_decode_registers(&p, regs, 1, &v), GW_EINVAL);
    assert_int_equal(v.kind, AD_VALUE_NONE);
    v = vint(1);
    assert_int_equal(ad_encode_registers(&p, &v, 0, regs, 1), GW_EINVAL);
    /* writes only to holding registers */
    p.table = CFG_TABLE_INPUT;
    assert_int_equal(ad_encode_registers(&p, &v, 0, regs, 4), GW_EINVAL);
    /* coil/discrete points are not decoded from registers */
    struct cfg_point c = point(CFG_TYPE_BOOL, "");
    c.table = CFG_TABLE_COIL;
    assert_int_equal(ad_decode_registers(&c, regs, 1, &v), GW_EINVAL);
    c.table = CFG_TABLE_DISCRETE;
    assert_int_equal(ad_decode_registers(&c, regs, 1, &v), GW_EINVAL);
    /* NULLs */
    assert_int_equal(ad_decode_registers(NULL, regs, 1, &v), GW_EINVAL);
    assert_int_equal(ad_decode_registers(&p, NULL, 1, &v), GW_EINVAL);
    assert_int_equal(ad_decode_registers(&p, regs, 1, NULL), GW_EINVAL);
    assert_int_equal(ad_encode_registers(NULL, &v, 0, regs, 4), GW_EINVAL);
    p.table = CFG_TABLE_HOLDING;
    assert_int_equal(ad_encode_registers(&p, NULL, 0, regs, 4), GW_EINVAL);
    assert_int_equal(ad_encode_registers(&p, &v, 0, NULL, 4), GW_EINVAL);
}

/* ---- bits and coils ----------------------------------------------------- */

static void test_bit_points(void **state)
{
    (void)state;
    struct cfg_point p = point(CFG_TYPE_BIT, "");
    uint16_t reg = 0xA5A5; /* 1010 0101 1010 0101 */
    static const bool want[16] = {1, 0, 1, 0, 0, 1, 0, 1,
                                  1, 0, 1, 0, 0, 1, 0, 1};
    for (uint8_t b = 0; b < 16; b++) {
        p.bit = b;
        struct ad_value v;
        assert_int_equal(ad_decode_registers(&p, &reg, 1, &v), GW_OK);
        assert_int_equal(v.kind, AD_VALUE_BOOL);
        assert_int_equal(v.v.b, want[b]);
    }
    /* Writing one bit keeps the other fifteen. */
    const struct {
        uint8_t bit;
        struct ad_value in;
        uint16_t current, want;
    } w[] = {
        {1, vbool(true), 0xA5A5, 0xA5A7},   {0, vbool(false), 0xA5A5, 0xA5A4},
        {15, vbool(false), 0xA5A5, 0x25A5}, {14, vint(1), 0xA5A5, 0xE5A5},
        {0, vbool(true), 0xA5A5, 0xA5A5},   {3, vuint(0), 0xFFFF, 0xFFF7},
    };
    for (size_t k = 0; k < sizeof(w) / sizeof(w[0]); k++) {
        p.bit = w[k].bit;
        uint16_t out = 0x1234;
        assert_int_equal(
            ad_encode_registers(&p, &w[k].in, w[k].current, &out, 1), GW_OK);
        assert_int_equal(out, w[k].want);
    }
    /* Scale and offset do not apply to bits. */
    p.bit = 2;
    p.scale = 10;
    struct ad_value v;
    assert_int_equal(ad_decode_registers(&p, &reg, 1, &v), GW_OK);
    assert_int_equal(v.kind, AD_VALUE_BOOL);
    assert_true(v.v.b);
    /* Bit 16 does not exist. */
    p.bit = 16;
    assert_int_equal(ad_decode_registers(&p, &reg, 1, &v), GW_EINVAL);
    v = vbool(true);
    assert_int_equal(ad_encode_registers(&p, &v, 0, &reg, 1), GW_EINVAL);
}

static void test_coils(void **state)
{
    (void)state;
    struct cfg_point p = point(CFG_TYPE_BOOL, "");
    p.table = CFG_TABLE_COIL;
    struct ad_value v;
    assert_int_equal(ad_decode_bit(&p, 0, &v), GW_OK);
    assert_int_equal(v.kind, AD_VALUE_BOOL);
    assert_false(v.v.b);
    assert_int_equal(ad_decode_bit(&p, 0x80, &v), GW_OK);
    assert_true(v.v.b);
    p.table = CFG_TABLE_DISCRETE;
    assert_int_equal(ad_decode_bit(&p, 1, &v), GW_OK);
    assert_true(v.v.b);

    uint8_t bit = 7;
    p.table = CFG_TABLE_COIL;
    v = vbool(true);
    assert_int_equal(ad_encode_bit(&p, &v, &bit), GW_OK);
    assert_int_equal(bit, 1);
    v = vint(0);
    assert_int_equal(ad_encode_bit(&p, &v, &bit), GW_OK);
    assert_int_equal(bit, 0);
    v = vuint(1);
    assert_int_equal(ad_encode_bit(&p, &v, &bit), GW_OK);
    assert_int_equal(bit, 1);
    v = vint(2);
    assert_int_equal(ad_encode_bit(&p, &v, &bit), GW_ERANGE);
    v = vdouble(1.0);
    assert_int_equal(ad_encode_bit(&p, &v, &bit), GW_ETYPE);
    v = vstring("on");
    assert_int_equal(ad_encode_bit(&p, &v, &bit), GW_ETYPE);
    /* Discrete inputs and register points are not coils. */
    v = vbool(true);
    p.table = CFG_TABLE_DISCRETE;
    assert_int_equal(ad_encode_bit(&p, &v, &bit), GW_EINVAL);
    p.table = CFG_TABLE_HOLDING;
    assert_int_equal(ad_encode_bit(&p, &v, &bit), GW_EINVAL);
    assert_int_equal(ad_decode_bit(&p, 1, &v), GW_EINVAL);
    assert_int_equal(v.kind, AD_VALUE_NONE);
    struct cfg_point q = point(CFG_TYPE_INT16, "AB");
    q.table = CFG_TABLE_COIL;
    assert_int_equal(ad_decode_bit(&q, 1, &v), GW_EINVAL);
}

/* ---- scale, offset, decimals -------------------------------------------- */

struct eng_case {
    enum cfg_type type;
    uint16_t regs[2];
    double scale, offset;
    int decimals;
    enum ad_value_kind kind;
    double d;
    int64_t i;
};

static void test_engineering(void **state)
{
    (void)state;
    static const struct eng_case c[] = {
        {CFG_TYPE_UINT16, {2305}, 0.1, 0, 1, AD_VALUE_DOUBLE, 230.5, 0},
        {CFG_TYPE_UINT16, {2305}, 0.1, 0, 0, AD_VALUE_DOUBLE, 231.0, 0},
        {CFG_TYPE_UINT16, {650}, 0.1, -40, 1, AD_VALUE_DOUBLE, 25.0, 0},
        {CFG_TYPE_UINT16, {0}, 0.1, -40, 1, AD_VALUE_DOUBLE, -40.0, 0},
        {CFG_TYPE_UINT16,
         {395},
         0.1,
         -40,
         -1,
         AD_VALUE_DOUBLE,
         395 * 0.1 - 40,
         0},
        {CFG_TYPE_INT16, {0xFFE7}, 0.1, 0, 0, AD_VALUE_DOUBLE, -3.0, 0},
        {CFG_TYPE_INT16, {0xFFE7}, 0.1, 0, 1, AD_VALUE_DOUBLE, -2.5, 0},
        {CFG_TYPE_INT16, {0x0019}, 0.1, 0, 0, AD_VALUE_DOUBLE, 3.0, 0},
        {CFG_TYPE_UINT16, {2675}, 0.001, 0, 2, AD_VALUE_DOUBLE, 2.68, 0},
        {CFG_TYPE_UINT16, {2665}, 0.001, 0, 2, AD_VALUE_DOUBLE, 2.67, 0},
        {CFG_TYPE_INT16, {0xFFFC}, 0.1, 0, 0, AD_VALUE_DOUBLE, 0.0, 0},
        /* decimals alone make it a double */
        {CFG_TYPE_INT16, {7}, 1, 0, 2, AD_VALUE_DOUBLE, 7.0, 0},
        {CFG_TYPE_UINT16, {7}, 1, 0, -1, AD_VALUE_UINT, 0, 7},
        {CFG_TYPE_INT32,
         {0x0001, 0x0000},
         1,
         5,
         -1,
         AD_VALUE_DOUBLE,
         65541.0,
         0},
        {CFG_TYPE_BCD16, {0x1234}, 0.01, 0, 2, AD_VALUE_DOUBLE, 12.34, 0},
        {CFG_TYPE_BCD16, {0x1234}, 1, 0, -1, AD_VALUE_INT, 0, 1234},
        /* floats: scaled and rounded too */
        {CFG_TYPE_FLOAT32,
         {0x42F6, 0xE979},
         1,
         0,
         2,
         AD_VALUE_DOUBLE,
         123.46,
         0},
        {CFG_TYPE_FLOAT32,
         {0x42F6, 0xE979},
         10,
         0,
         1,
         AD_VALUE_DOUBLE,
         1234.6,
         0},
        {CFG_TYPE_FLOAT32, {0x3F80, 0}, 2, -1, -1, AD_VALUE_DOUBLE, 1.0, 0},
    };
    for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
        struct cfg_point p = point(c[k].type, "");
        p.scale = c[k].scale;
        p.offset = c[k].offset;
        p.decimals = c[k].decimals;
        struct ad_value v;
        assert_int_equal(ad_decode_registers(&p, c[k].regs, 2, &v), GW_OK);
        if (v.kind != c[k].kind)
            print_error("case %zu\n", k);
        assert_int_equal(v.kind, c[k].kind);
        if (c[k].kind == AD_VALUE_DOUBLE) {
            if (v.v.d != c[k].d)
                print_error("case %zu: %.17g != %.17g\n", k, v.v.d, c[k].d);
            assert_true(v.v.d == c[k].d);
            assert_false(signbit(v.v.d) && v.v.d == 0.0);
        } else if (c[k].kind == AD_VALUE_INT) {
            assert_true(v.v.i == c[k].i);
        } else {
            assert_true(v.v.u == (uint64_t)c[k].i);
        }
    }
}

/* Scaled round trip: every raw value of a uint16 with scale 0.1 and offset
 * -40 survives decode (1 decimal) then encode. */
static void test_scaled_round_trip(void **state)
{
    (void)state;
    struct cfg_point p = point(CFG_TYPE_UINT16, "BA");
    p.scale = 0.1;
    p.offset = -40;
    p.decimals = 1;
    for (uint32_t raw = 0; raw <= 0xFFFF; raw++) {
        uint16_t in = (uint16_t)(((raw & 0xff) << 8) | (raw >> 8)), out = 0;
        struct ad_value v;
        assert_int_equal(ad_decode_registers(&p, &in, 1, &v), GW_OK);
        assert_int_equal(ad_encode_registers(&p, &v, 0, &out, 1), GW_OK);
        assert_int_equal(out, in);
    }
}

/* ---- strings ------------------------------------------------------------ */

struct str_case {
    uint16_t count;
    enum cfg_packing packing;
    uint16_t regs[6];
    const char *text;
};

static const struct str_case strings[] = {
    {3, CFG_PACK_HI_LO, {0x4865, 0x6C6C, 0x6F00}, "Hello"},
    {3, CFG_PACK_LO_HI, {0x6548, 0x6C6C, 0x006F}, "Hello"},
    {5, CFG_PACK_HI_ONLY, {0x4800, 0x6500, 0x6C00, 0x6C00, 0x6F00}, "Hello"},
    {5, CFG_PACK_LO_ONLY, {0x0048, 0x0065, 0x006C, 0x006C, 0x006F}, "Hello"},
    {2, CFG_PACK_HI_LO, {0x4142, 0x4344}, "ABCD"}, /* full, no NUL */
    {2, CFG_PACK_LO_HI, {0x4241, 0x4443}, "ABCD"},
    {3, CFG_PACK_HI_LO, {0x4120, 0x2000, 0x0000}, "A  "}, /* spaces kept */
    {2, CFG_PACK_HI_LO, {0x0000, 0x0000}, ""},
    {1, CFG_PACK_HI_LO, {0x01FF}, "\x01\xFF"}, /* bytes kept as they are */
};

static void test_strings(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++) {
        const struct str_case *c = &strings[k];
        struct cfg_point p = string_point(c->count, c->packing);
        struct ad_value v;
        assert_int_equal(ad_decode_registers(&p, c->regs, c->count, &v), GW_OK);
        assert_int_equal(v.kind, AD_VALUE_STRING);
        assert_string_equal(v.s, c->text);
        uint16_t regs[6];
        memset(regs, 0xAA, sizeof(regs));
        struct ad_value in = vstring(c->text);
        assert_int_equal(ad_encode_registers(&p, &in, 0, regs, 6), GW_OK);
        assert_memory_equal(regs, c->regs, c->count * 2u);
    }
}

static void test_string_edges(void **state)
{
    (void)state;
    struct cfg_point p = string_point(3, CFG_PACK_HI_LO);
    struct ad_value v;
    /* A NUL in the middle ends the string; what follows is ignored. */
    uint16_t mid[] = {0x4100, 0x4243, 0x4445};
    assert_int_equal(ad_decode_registers(&p, mid, 3, &v), GW_OK);
    assert_string_equal(v.s, "A");
    uint16_t lead[] = {0x0041, 0x4243, 0x4445};
    assert_int_equal(ad_decode_registers(&p, lead, 3, &v), GW_OK);
    assert_string_equal(v.s, "");
    struct cfg_point lh = string_point(2, CFG_PACK_LO_HI);
    uint16_t lhmid[] = {0x0041, 0x4243};
    assert_int_equal(ad_decode_registers(&lh, lhmid, 2, &v), GW_OK);
    assert_string_equal(v.s, "A");
    /* Too long for the registers. */
    uint16_t regs[3];
    struct ad_value in = vstring("Hello!!");
    assert_int_equal(ad_encode_registers(&p, &in, 0, regs, 3), GW_ERANGE);
    in = vstring("Hello!");
    assert_int_equal(ad_encode_registers(&p, &in, 0, regs, 3), GW_OK);
    struct cfg_point ho = string_point(3, CFG_PACK_HI_ONLY);
    in = vstring("abcd");
    assert_int_equal(ad_encode_registers(&ho, &in, 0, regs, 3), GW_ERANGE);
    /* Registers missing, cap too small, length unusable. */
    assert_int_equal(ad_decode_registers(&p, mid, 2, &v), GW_EINVAL);
    in = vstring("Hi");
    assert_int_equal(ad_encode_registers(&p, &in, 0, regs, 2), GW_EINVAL);
    struct cfg_point zero = string_point(0, CFG_PACK_HI_LO);
    assert_int_equal(ad_decode_registers(&zero, mid, 3, &v), GW_EINVAL);
    struct cfg_point big = string_point(126, CFG_PACK_HI_LO);
    uint16_t many[126] = {0};
    assert_int_equal(ad_decode_registers(&big, many, 126, &v), GW_EINVAL);
    /* The longest string: 125 registers, 250 characters. */
    struct cfg_point max = string_point(125, CFG_PACK_HI_LO);
    for (size_t k = 0; k < 125; k++)
        many[k] = 0x7A7A;
    assert_int_equal(ad_decode_registers(&max, many, 125, &v), GW_OK);
    assert_int_equal(strlen(v.s), AD_STRING_MAX);
    assert_int_equal(ad_encode_registers(&max, &v, 0, many, 125), GW_OK);
    assert_int_equal(many[124], 0x7A7A);
}

/* ---- parse -------------------------------------------------------------- */

struct parse_case {
    enum cfg_type type;
    double scale;
    int decimals;
    const char *text;
    int rc;
    struct ad_value want; /* when rc == 0 */
};

/* Enum labels, sorted by value as the loader leaves them. */
#define MODE_LABELS                                                            \
    {                                                                          \
        {-1, "Fault"}, {0, "Off"}, {1, "Heating"}, {2, "Cooling"}, {7, "7"},   \
    }

static void test_parse(void **state)
{
    (void)state;
    const struct parse_case c[] = {
        {CFG_TYPE_BIT, 1, -1, "true", 0, vbool(true)},
        {CFG_TYPE_BIT, 1, -1, "FALSE", 0, vbool(false)},
        {CFG_TYPE_BIT, 1, -1, "on", 0, vbool(true)},
        {CFG_TYPE_BIT, 1, -1, "Off", 0, vbool(false)},
        {CFG_TYPE_BIT, 1, -1, "1", 0, vbool(true)},
        {CFG_TYPE_BIT, 1, -1, " 0\n", 0, vbool(false)},
        {CFG_TYPE_BIT, 1, -1, "2", GW_EPARSE, vbool(false)},
        {CFG_TYPE_BIT, 1, -1, "yes", GW_EPARSE, vbool(false)},
        {CFG_TYPE_BIT, 1, -1, "", GW_EPARSE, vbool(false)},
        {CFG_TYPE_INT16, 1, -1, "-12345", 0, vint(-12345)},
        {CFG_TYPE_INT16, 1, -1, "+17", 0, vint(17)},
        {CFG_TYPE_INT16, 1, -1, "  42  ", 0, vint(42)},
        {CFG_TYPE_INT16, 1, -1, "0x10", 0, vint(16)},
        {CFG_TYPE_INT16, 1, -1, "-0x8000", 0, vint(-32768)},
        {CFG_TYPE_INT16, 1, -1, "0xFFFF", GW_ERANGE, vint(0)},
        {CFG_TYPE_INT16, 1, -1, "32768", GW_ERANGE, vint(0)},
        {CFG_TYPE_INT16, 1, -1, "-32769", GW_ERANGE, vint(0)},
        {CFG_TYPE_INT16, 1, -1, "1e3", 0, vint(1000)},
        {CFG_TYPE_INT16, 1, -1, "5.0", 0, vint(5)},
        {CFG_TYPE_INT16, 1, -1, "5.5", GW_ERANGE, vint(0)},
        {CFG_TYPE_INT16, 1, -1, "1e5", GW_ERANGE, vint(0)},
        {CFG_TYPE_INT16, 1, -1, "abc", GW_EPARSE, vint(0)},
        {CFG_TYPE_INT16, 1, -1, "12abc", GW_EPARSE, vint(0)},
        {CFG_TYPE_INT16, 1, -1, "0x", GW_EPARSE, vint(0)},
        {CFG_TYPE_INT16, 1, -1, "-", GW_EPARSE, vint(0)},
        {CFG_TYPE_INT16, 1, -1, "1 2", GW_EPARSE, vint(0)},
        {CFG_TYPE_INT16, 1, -1, "", GW_EPARSE, vint(0)},
        {CFG_TYPE_INT16, 1, -1, "true", GW_EPARSE, vint(0)},
        {CFG_TYPE_UINT16, 1, -1, "65535", 0, vuint(65535)},
        {CFG_TYPE_UINT16, 1, -1, "70000", GW_ERANGE, vuint(0)},
        {CFG_TYPE_UINT16, 1, -1, "-1", GW_ERANGE, vuint(0)},
        {CFG_TYPE_UINT16, 1, -1, "-0", 0, vuint(0)},
        {CFG_TYPE_INT64, 1, -1, "9223372036854775807", 0, vint(INT64_MAX)},
        {CFG_TYPE_INT64, 1, -1, "-9223372036854775808", 0, vint(INT64_MIN)},
        {CFG_TYPE_INT64, 1, -1, "9223372036854775808", GW_ERANGE, vint(0)},
        {CFG_TYPE_INT64, 1, -1, "9007199254740993", 0, vint(9007199254740993)},
        {CFG_TYPE_UINT64, 1, -1, "18446744073709551615", 0, vuint(UINT64_MAX)},
        {CFG_TYPE_UINT64, 1, -1, "0xFFFFFFFFFFFFFFFF", 0, vuint(UINT64_MAX)},
        {CFG_TYPE_UINT64, 1, -1, "18446744073709551616", GW_ERANGE, vuint(0)},
        {CFG_TYPE_UINT64, 1, -1, "0x10000000000000000", GW_ERANGE, vuint(0)},
        {CFG_TYPE_BCD16, 1, -1, "9999", 0, vint(9999)},
        {CFG_TYPE_BCD16, 1, -1, "10000", GW_ERANGE, vint(0)},
        {CFG_TYPE_BCD32, 1, -1, "-1", GW_ERANGE, vint(0)},
        {CFG_TYPE_FLOAT32, 1, -1, "123.456", 0, vdouble(123.456)},
        {CFG_TYPE_FLOAT32, 1, -1, "-2.5e-3", 0, vdouble(-2.5e-3)},
        {CFG_TYPE_FLOAT32, 1, -1, ".5", 0, vdouble(0.5)},
        {CFG_TYPE_FLOAT32, 1, -1, "5.", 0, vdouble(5.0)},
        {CFG_TYPE_FLOAT32, 1, -1, "42", 0, vdouble(42.0)},
        {CFG_TYPE_FLOAT32, 1, -1, "0x20", 0, vdouble(32.0)},
        {CFG_TYPE_FLOAT64, 1, -1, "1e39", 0, vdouble(1e39)},
        {CFG_TYPE_FLOAT64, 1, -1, "1e999", GW_ERANGE, vdouble(0)},
        {CFG_TYPE_FLOAT64, 1, -1, "nan", GW_EPARSE, vdouble(0)},
        {CFG_TYPE_FLOAT64, 1, -1, "inf", GW_EPARSE, vdouble(0)},
        {CFG_TYPE_FLOAT64, 1, -1, "-infinity", GW_EPARSE, vdouble(0)},
        {CFG_TYPE_FLOAT64, 1, -1, "0x1p3", GW_EPARSE, vdouble(0)},
        {CFG_TYPE_FLOAT64, 1, -1, "1e", GW_EPARSE, vdouble(0)},
        {CFG_TYPE_FLOAT64, 1, -1, ".", GW_EPARSE, vdouble(0)},
        {CFG_TYPE_FLOAT64, 1, -1, "1,5", GW_EPARSE, vdouble(0)},
        /* scaled or with decimals: a double */
        {CFG_TYPE_UINT16, 0.1, 1, "230.5", 0, vdouble(230.5)},
        {CFG_TYPE_UINT16, 0.1, -1, "231", 0, vdouble(231.0)},
        {CFG_TYPE_INT16, 1, 2, "7", 0, vdouble(7.0)},
        {CFG_TYPE_INT64, 0.5, -1, "-0x10", 0, vdouble(-16.0)},
    };
    for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
        struct cfg_point p = point(c[k].type, "");
        p.scale = c[k].scale;
        p.decimals = c[k].decimals;
        struct ad_value v;
        int rc = ad_value_parse(&p, c[k].text, &v);
        if (rc != c[k].rc)
            print_error("case %zu '%s': %s\n", k, c[k].text, gw_err_name(rc));
        assert_int_equal(rc, c[k].rc);
        if (rc == GW_OK) {
            assert_int_equal(v.kind, c[k].want.kind);
            assert_true(ad_value_equal(&v, &c[k].want));
        } else {
            assert_int_equal(v.kind, AD_VALUE_NONE);
        }
    }
}

static void test_parse_labels_and_strings(void **state)
{
    (void)state;
    struct cfg_point p = point(CFG_TYPE_INT16, "AB");
    struct cfg_enum_label labels[] = MODE_LABELS;
    p.labels = labels;
    p.n_labels = sizeof(labels) / sizeof(labels[0]);
    struct ad_value v;
    assert_int_equal(ad_value_parse(&p, "Cooling", &v), GW_OK);
    assert_int_equal(v.kind, AD_VALUE_INT);
    assert_true(v.v.i == 2);
    assert_int_equal(ad_value_parse(&p, "Fault", &v), GW_OK);
    assert_true(v.v.i == -1);
    assert_int_equal(ad_value_parse(&p, "cooling", &v), GW_EPARSE);
    assert_int_equal(ad_value_parse(&p, "3", &v), GW_OK); /* numbers too */
    assert_true(v.v.i == 3);
    assert_int_equal(ad_value_parse(&p, "7", &v), GW_OK); /* label "7" */
    assert_true(v.v.i == 7);
    /* A label on an unsigned point: its value must fit. */
    p.type = CFG_TYPE_UINT16;
    assert_int_equal(ad_value_parse(&p, "Heating", &v), GW_OK);
    assert_int_equal(v.kind, AD_VALUE_UINT);
    assert_true(v.v.u == 1);
    assert_int_equal(ad_value_parse(&p, "Fault", &v), GW_ERANGE);
    /* On a scaled point the label's value is the engineering value. */
    p.scale = 0.5;
    assert_int_equal(ad_value_parse(&p, "Cooling", &v), GW_OK);
    assert_int_equal(v.kind, AD_VALUE_DOUBLE);
    assert_true(v.v.d == 2.0);
    /* A bool point with labels. */
    struct cfg_point b = point(CFG_TYPE_BOOL, "");
    b.table = CFG_TABLE_COIL;
    b.labels = labels + 1; /* Off, Heating */
    b.n_labels = 2;
    assert_int_equal(ad_value_parse(&b, "Heating", &v), GW_OK);
    assert_int_equal(v.kind, AD_VALUE_BOOL);
    assert_true(v.v.b);
    assert_int_equal(ad_value_parse(&b, "off", &v), GW_OK);
    assert_false(v.v.b);

    /* Strings: the text as is, spaces included; capacity checked. */
    struct cfg_point s = string_point(3, CFG_PACK_HI_LO);
    assert_int_equal(ad_value_parse(&s, " ab ", &v), GW_OK);
    assert_int_equal(v.kind, AD_VALUE_STRING);
    assert_string_equal(v.s, " ab ");
    assert_int_equal(ad_value_parse(&s, "", &v), GW_OK);
    assert_string_equal(v.s, "");
    assert_int_equal(ad_value_parse(&s, "1234567", &v), GW_ERANGE);
    char longtext[AD_STRING_MAX + 2];
    memset(longtext, 'x', sizeof(longtext) - 1);
    longtext[AD_STRING_MAX + 1] = '\0';
    struct cfg_point s125 = string_point(125, CFG_PACK_HI_LO);
    assert_int_equal(ad_value_parse(&s125, longtext, &v), GW_ERANGE);
    longtext[AD_STRING_MAX] = '\0';
    assert_int_equal(ad_value_parse(&s125, longtext, &v), GW_OK);
    /* NULL arguments. */
    assert_int_equal(ad_value_parse(NULL, "1", &v), GW_EINVAL);
    assert_int_equal(ad_value_parse(&p, NULL, &v), GW_EINVAL);
    assert_int_equal(ad_value_parse(&p, "1", NULL), GW_EINVAL);
}

/* Parsed text encodes to the registers a device would hold. */
static void test_parse_then_encode(void **state)
{
    (void)state;
    static const struct {
        enum cfg_type type;
        const char *order;
        double scale, offset;
        const char *text;
        uint16_t regs[4];
    } c[] = {
        {CFG_TYPE_FLOAT32, "ABCD", 1, 0, "123.456", {0x42F6, 0xE979}},
        {CFG_TYPE_FLOAT32, "CDAB", 1, 0, "1", {0x0000, 0x3F80}},
        {CFG_TYPE_FLOAT64, "ABCDEFGH", 1, 0, "-2.5", {0xC004, 0, 0, 0}},
        {CFG_TYPE_INT32, "ABCD", 1, 0, "-123456789", {0xF8A4, 0x32EB}},
        {CFG_TYPE_UINT64,
         "HGFEDCBA",
         1,
         0,
         "0x0123456789ABCDEF",
         {0xEFCD, 0xAB89, 0x6745, 0x2301}},
        {CFG_TYPE_UINT16, "AB", 0.1, -40, "25", {650}},
        {CFG_TYPE_BCD32, "CDAB", 1, 0, "12345678", {0x5678, 0x1234}},
    };
    for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
        struct cfg_point p = point(c[k].type, c[k].order);
        p.scale = c[k].scale;
        p.offset = c[k].offset;
        struct ad_value v;
        uint16_t regs[4] = {0};
        assert_int_equal(ad_value_parse(&p, c[k].text, &v), GW_OK);
        assert_int_equal(ad_encode_registers(&p, &v, 0, regs, 4), GW_OK);
        assert_memory_equal(regs, c[k].regs, words_of(c[k].type) * 2);
    }
}

/* ---- format, label, equal, to_double ------------------------------------ */

static void test_format(void **state)
{
    (void)state;
    struct ad_value none;
    memset(&none, 0, sizeof(none));
    const struct {
        enum cfg_type type;
        double scale;
        int decimals;
        struct ad_value v;
        const char *want;
    } c[] = {
        {CFG_TYPE_UINT16, 0.1, 1, vdouble(230.5), "230.5"},
        {CFG_TYPE_UINT16, 0.1, 2, vdouble(230.5), "230.50"},
        {CFG_TYPE_UINT16, 0.1, 0, vdouble(230.5), "231"},
        {CFG_TYPE_UINT16, 0.001, 2, vdouble(2.675), "2.68"},
        {CFG_TYPE_INT16, 0.1, 1, vdouble(-0.04), "0.0"},
        {CFG_TYPE_UINT16, 0.1, -1, vdouble(3 * 0.1), "0.30000000000000004"},
        {CFG_TYPE_FLOAT64, 1, 2, vdouble(1.005),
         "1.01"}, /* 100.49999999999999 */
        {CFG_TYPE_FLOAT64, 1, 2, vdouble(-1.005), "-1.01"},
        {CFG_TYPE_FLOAT64, 1, -1, vdouble(0.1), "0.1"},
        {CFG_TYPE_FLOAT64, 1, -1, vdouble(1e300), "1e+300"},
        {CFG_TYPE_FLOAT64, 1, -1, vdouble(-2.5), "-2.5"},
        {CFG_TYPE_FLOAT32, 1, -1, vdouble((double)123.456f), "123.456"},
        {CFG_TYPE_FLOAT32, 1, -1, vdouble((double)0.1f), "0.1"},
        {CFG_TYPE_FLOAT32, 1, 4, vdouble((double)123.456f), "123.4560"},
        {CFG_TYPE_FLOAT64, 1, -1, vdouble((double)123.456f),
         "123.45600128173828"},
        {CFG_TYPE_FLOAT64, 1, -1, vdouble(NAN), "nan"},
        {CFG_TYPE_FLOAT64, 1, -1, vdouble(-INFINITY), "-inf"},
        {CFG_TYPE_INT64, 1, -1, vint(INT64_MIN), "-9223372036854775808"},
        {CFG_TYPE_UINT64, 1, -1, vuint(UINT64_MAX), "18446744073709551615"},
        {CFG_TYPE_BIT, 1, -1, vbool(true), "true"},
        {CFG_TYPE_BOOL, 1, -1, vbool(false), "false"},
        {CFG_TYPE_STRING, 1, -1, vstring(" a b "), " a b "},
        {CFG_TYPE_INT16, 1, -1, none, ""},
    };
    for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
        struct cfg_point p = point(c[k].type, "");
        p.scale = c[k].scale;
        p.decimals = c[k].decimals;
        char buf[64];
        size_t n = ad_value_format(&p, &c[k].v, buf, sizeof(buf));
        assert_string_equal(buf, c[k].want);
        assert_int_equal(n, strlen(c[k].want));
    }
    /* Truncation: the length written, NUL-terminated. */
    struct cfg_point p = point(CFG_TYPE_INT64, "");
    struct ad_value v = vint(-123456);
    char small[4];
    assert_int_equal(ad_value_format(&p, &v, small, sizeof(small)), 3);
    assert_string_equal(small, "-12");
    assert_int_equal(ad_value_format(&p, &v, small, 0), 0);
    assert_int_equal(ad_value_format(&p, NULL, small, sizeof(small)), 0);
    assert_string_equal(small, "");
    /* Without a point: no decimals, shortest double. */
    v = vdouble(0.25);
    assert_int_equal(ad_value_format(NULL, &v, small, sizeof(small)), 3);
    assert_string_equal(small, "0.2");
}

static void test_label(void **state)
{
    (void)state;
    struct cfg_point p = point(CFG_TYPE_INT16, "AB");
    struct cfg_enum_label labels[] = MODE_LABELS;
    p.labels = labels;
    p.n_labels = sizeof(labels) / sizeof(labels[0]);
    struct ad_value v = vint(2);
    assert_string_equal(ad_value_label(&p, &v), "Cooling");
    v = vint(-1);
    assert_string_equal(ad_value_label(&p, &v), "Fault");
    v = vuint(1);
    assert_string_equal(ad_value_label(&p, &v), "Heating");
    v = vdouble(2.0);
    assert_string_equal(ad_value_label(&p, &v), "Cooling");
    v = vbool(false);
    assert_string_equal(ad_value_label(&p, &v), "Off");
    v = vdouble(2.5);
    assert_null(ad_value_label(&p, &v));
    v = vint(3);
    assert_null(ad_value_label(&p, &v));
    v = vuint(UINT64_MAX);
    assert_null(ad_value_label(&p, &v));
    v = vdouble(NAN);
    assert_null(ad_value_label(&p, &v));
    v = vstring("Off");
    assert_null(ad_value_label(&p, &v));
    p.n_labels = 0;
    v = vint(2);
    assert_null(ad_value_label(&p, &v));
    assert_null(ad_value_label(NULL, &v));
}

static void test_equal_and_to_double(void **state)
{
    (void)state;
    struct ad_value none, a, b;
    memset(&none, 0, sizeof(none));
    assert_true(ad_value_equal(&none, &none));
    a = vint(5);
    b = vuint(5);
    assert_true(ad_value_equal(&a, &b));
    assert_true(ad_value_equal(&b, &a));
    a = vint(-1);
    b = vuint(UINT64_MAX);
    assert_false(ad_value_equal(&a, &b));
    assert_false(ad_value_equal(&b, &a));
    a = vint(5);
    b = vdouble(5.0);
    assert_false(ad_value_equal(&a, &b)); /* kinds differ */
    a = vdouble(NAN);
    b = vdouble(NAN);
    assert_true(ad_value_equal(&a, &b)); /* no change event for NaN -> NaN */
    b = vdouble(1.0);
    assert_false(ad_value_equal(&a, &b));
    a = vstring("abc");
    b = vstring("abc");
    assert_true(ad_value_equal(&a, &b));
    b = vstring("abd");
    assert_false(ad_value_equal(&a, &b));
    a = vbool(true);
    b = vbool(false);
    assert_false(ad_value_equal(&a, &b));
    assert_false(ad_value_equal(&a, NULL));
    assert_true(ad_value_equal(NULL, NULL));

    double d = 0;
    a = vbool(true);
    assert_true(ad_value_to_double(&a, &d));
    assert_true(d == 1.0);
    a = vint(-7);
    assert_true(ad_value_to_double(&a, &d));
    assert_true(d == -7.0);
    a = vuint(UINT64_MAX);
    assert_true(ad_value_to_double(&a, &d));
    assert_true(d == 0x1p64);
    a = vdouble(2.5);
    assert_true(ad_value_to_double(&a, &d));
    assert_true(d == 2.5);
    a = vstring("1");
    assert_false(ad_value_to_double(&a, &d));
    assert_false(ad_value_to_double(&none, &d));
    assert_false(ad_value_to_double(NULL, &d));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_vectors),
        cmocka_unit_test(test_encode_vectors),
        cmocka_unit_test(test_round_trip_all_orders),
        cmocka_unit_test(test_bad_orders),
        cmocka_unit_test(test_nonfinite_decode),
        cmocka_unit_test(test_nonfinite_encode),
        cmocka_unit_test(test_bcd_errors),
        cmocka_unit_test(test_encode_ranges),
        cmocka_unit_test(test_encode_kinds),
        cmocka_unit_test(test_tables_and_sizes),
        cmocka_unit_test(test_bit_points),
        cmocka_unit_test(test_coils),
        cmocka_unit_test(test_engineering),
        cmocka_unit_test(test_scaled_round_trip),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_string_edges),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_labels_and_strings),
        cmocka_unit_test(test_parse_then_encode),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_label),
        cmocka_unit_test(test_equal_and_to_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
