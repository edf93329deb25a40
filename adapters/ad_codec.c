/* ad_codec.c - Modbus register/bit blocks <-> typed point values.
 *
 * The rules (byte orders, scaling, rounding, ranges, strings, parsing) are
 * written down in docs/codec.md; keep the two in step. */
#include "ad_codec.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_err.h"

/* Longest numeric text ad_value_parse accepts (after trimming). */
#define NUMBER_TEXT_MAX 128

/* The smallest magnitude that rounds to infinity as a float: FLT_MAX plus
 * half an ulp, 2^128 - 2^103 (a tie, rounded to even: infinity). */
#define FLOAT_ROUNDS_TO_INF 0x1.ffffffp127

/* Relative tolerance under which a double counts as an integer. */
#define INTEGRAL_TOLERANCE 1e-9

static void value_clear(struct ad_value *v)
{
    memset(v, 0, sizeof(*v));
    v->kind = AD_VALUE_NONE;
}

/* ---- types ------------------------------------------------------------ */

static bool is_float(enum cfg_type t)
{
    return t == CFG_TYPE_FLOAT32 || t == CFG_TYPE_FLOAT64;
}

static bool is_bcd(enum cfg_type t)
{
    return t == CFG_TYPE_BCD16 || t == CFG_TYPE_BCD32;
}

/* The raw range of an integer type (BCD included).  Signed types (and BCD,
 * which decodes to AD_VALUE_INT) use [smin, smax], unsigned [0, umax]. */
struct int_range {
    bool is_signed;
    int64_t smin, smax;
    uint64_t umax;
};

static bool int_range_of(enum cfg_type t, struct int_range *r)
{
    *r = (struct int_range){true, 0, 0, 0};
    switch (t) {
    case CFG_TYPE_INT16:
        r->smin = INT16_MIN;
        r->smax = INT16_MAX;
        return true;
    case CFG_TYPE_INT32:
        r->smin = INT32_MIN;
        r->smax = INT32_MAX;
        return true;
    case CFG_TYPE_INT64:
        r->smin = INT64_MIN;
        r->smax = INT64_MAX;
        return true;
    case CFG_TYPE_BCD16:
        r->smax = 9999;
        return true;
    case CFG_TYPE_BCD32:
        r->smax = 99999999;
        return true;
    case CFG_TYPE_UINT16:
        r->is_signed = false;
        r->umax = UINT16_MAX;
        return true;
    case CFG_TYPE_UINT32:
        r->is_signed = false;
        r->umax = UINT32_MAX;
        return true;
    case CFG_TYPE_UINT64:
        r->is_signed = false;
        r->umax = UINT64_MAX;
        return true;
    case CFG_TYPE_BOOL:
    case CFG_TYPE_BIT:
    case CFG_TYPE_FLOAT32:
    case CFG_TYPE_FLOAT64:
    case CFG_TYPE_STRING:
        break;
    }
    return false;
}

/* Characters a string point holds; 0 when its length is not usable. */
static size_t string_capacity(const struct cfg_point *p)
{
    if (p->count == 0 || p->count > CFG_MAX_READ_REGISTERS)
        return 0;
    if (p->packing == CFG_PACK_HI_ONLY || p->packing == CFG_PACK_LO_ONLY)
        return p->count;
    return (size_t)p->count * 2;
}

/* scale == 1 and offset == 0: engineering value == raw value. */
static bool unscaled(const struct cfg_point *p)
{
    return p->scale == 1.0 && p->offset == 0.0;
}

/* Integers stay exact (AD_VALUE_INT/UINT) only without scale, offset and
 * decimals. */
static bool plain(const struct cfg_point *p)
{
    return unscaled(p) && p->decimals < 0;
}

static bool scaling_ok(const struct cfg_point *p)
{
    return isfinite(p->scale) && p->scale != 0.0 && isfinite(p->offset);
}

/* ---- byte order ------------------------------------------------------- */

/* Fills sig[i] with the significance (0 = least significant byte) of wire
 * byte i.  An empty order means natural order ("AB", "ABCD", ...). */
static int parse_order(const char *order, unsigned nbytes, uint8_t sig[8])
{
    size_t len = strnlen(order, 9);
    if (len == 0) {
        for (unsigned i = 0; i < nbytes; i++)
            sig[i] = (uint8_t)(nbytes - 1 - i);
        return GW_OK;
    }
    if (len != nbytes)
        return GW_EINVAL;
    unsigned seen = 0;
    for (unsigned i = 0; i < nbytes; i++) {
        char c = order[i];
        if (c < 'A' || c >= (char)('A' + nbytes))
            return GW_EINVAL;
        unsigned k = (unsigned)(c - 'A');
        if (seen & (1u << k))
            return GW_EINVAL;
        seen |= 1u << k;
        sig[i] = (uint8_t)(nbytes - 1 - k);
    }
    return GW_OK;
}

static uint64_t gather(const uint16_t *regs, unsigned nbytes,
                       const uint8_t sig[8])
{
    uint64_t raw = 0;
    for (unsigned i = 0; i < nbytes; i++) {
        uint16_t r = regs[i / 2];
        uint64_t byte =
            (i % 2 == 0) ? (uint64_t)(r >> 8) : (uint64_t)(r & 0xff);
        raw |= byte << (8 * sig[i]);
    }
    return raw;
}

static void scatter(uint64_t raw, unsigned nbytes, const uint8_t sig[8],
                    uint16_t *regs)
{
    for (unsigned i = 0; i < nbytes / 2; i++)
        regs[i] = 0;
    for (unsigned i = 0; i < nbytes; i++) {
        uint16_t byte = (uint16_t)((raw >> (8 * sig[i])) & 0xff);
        regs[i / 2] |= (uint16_t)(i % 2 == 0 ? byte << 8 : byte);
    }
}

/* ---- rounding --------------------------------------------------------- */

/* Round half away from zero, with a few ulps of tolerance so that decimal
 * halves which binary cannot hold exactly (267.49999999999997 for 2.675 *
 * 100) still round away. */
static double round_half_away(double y)
{
    double t = trunc(y);
    double f = fabs(y - t);
    double tol = fabs(y) * 4 * DBL_EPSILON;
    if (f >= 0.5 - tol)
        return t + copysign(1.0, y);
    return t;
}

static double apply_decimals(double x, int decimals)
{
    if (decimals < 0 || decimals > 15 || !isfinite(x))
        return x;
    double p = pow(10.0, decimals);
    double y = x * p;
    if (!isfinite(y) || fabs(y) >= 0x1p52)
        return x;
    double r = round_half_away(y) / p;
    return r == 0.0 ? 0.0 : r;
}

static double engineering(const struct cfg_point *p, double raw)
{
    return apply_decimals(raw * p->scale + p->offset, p->decimals);
}

static bool near_integral(double d)
{
    return fabs(d - round(d)) <= INTEGRAL_TOLERANCE * fmax(1.0, fabs(d));
}

/* ---- decoding --------------------------------------------------------- */

static int64_t sign_extend(uint64_t raw, unsigned nbytes)
{
    if (nbytes >= 8) {
        int64_t v;
        memcpy(&v, &raw, sizeof(v));
        return v;
    }
    unsigned bits = 8 * nbytes;
    if (raw >> (bits - 1))
        return (int64_t)raw - ((int64_t)1 << bits);
    return (int64_t)raw;
}

static int bcd_to_int(uint64_t raw, unsigned nbytes, int64_t *out)
{
    int64_t v = 0;
    for (int shift = (int)(8 * nbytes) - 4; shift >= 0; shift -= 4) {
        unsigned digit = (unsigned)((raw >> shift) & 0xf);
        if (digit > 9)
            return GW_EBADBCD;
        v = v * 10 + digit;
    }
    *out = v;
    return GW_OK;
}

static int decode_string(const struct cfg_point *p, const uint16_t *regs,
                         size_t n, struct ad_value *out)
{
    if (string_capacity(p) == 0 || n < p->count)
        return GW_EINVAL;
    size_t len = 0;
    for (size_t j = 0; j < p->count; j++) {
        uint8_t hi = (uint8_t)(regs[j] >> 8), lo = (uint8_t)(regs[j] & 0xff);
        uint8_t bytes[2];
        size_t nb = 2;
        switch (p->packing) {
        case CFG_PACK_LO_HI:
            bytes[0] = lo;
            bytes[1] = hi;
            break;
        case CFG_PACK_HI_ONLY:
            bytes[0] = hi;
            nb = 1;
            break;
        case CFG_PACK_LO_ONLY:
            bytes[0] = lo;
            nb = 1;
            break;
        case CFG_PACK_HI_LO:
        default:
            bytes[0] = hi;
            bytes[1] = lo;
            break;
        }
        for (size_t k = 0; k < nb; k++) {
            if (bytes[k] == 0)
                goto done;
            out->s[len++] = (char)bytes[k];
        }
    }
done:
    out->s[len] = '\0';
    out->kind = AD_VALUE_STRING;
    return GW_OK;
}

int ad_decode_registers(const struct cfg_point *p, const uint16_t *regs,
                        size_t n, struct ad_value *out)
{
    if (!out)
        return GW_EINVAL;
    value_clear(out);
    if (!p || !regs)
        return GW_EINVAL;
    if (p->table != CFG_TABLE_INPUT && p->table != CFG_TABLE_HOLDING)
        return GW_EINVAL;

    if (p->type == CFG_TYPE_STRING)
        return decode_string(p, regs, n, out);
    if (p->type == CFG_TYPE_BIT) {
        if (n < 1 || p->bit > 15)
            return GW_EINVAL;
        out->kind = AD_VALUE_BOOL;
        out->v.b = (regs[0] >> p->bit) & 1u;
        return GW_OK;
    }

    unsigned nbytes = (unsigned)cfg_type_bytes(p->type);
    uint8_t sig[8];
    if (nbytes == 0 || n < nbytes / 2 || !scaling_ok(p))
        return GW_EINVAL;
    int rc = parse_order(p->order, nbytes, sig);
    if (rc != GW_OK)
        return rc;
    uint64_t raw = gather(regs, nbytes, sig);

    if (is_float(p->type)) {
        double d;
        if (nbytes == 4) {
            uint32_t r32 = (uint32_t)raw;
            float f;
            memcpy(&f, &r32, sizeof(f));
            d = f;
        } else {
            memcpy(&d, &raw, sizeof(d));
        }
        out->kind = AD_VALUE_DOUBLE;
        if (!isfinite(d)) {
            out->v.d = d; /* as read, unscaled */
            return GW_ENONFINITE;
        }
        out->v.d =
            unscaled(p) ? apply_decimals(d, p->decimals) : engineering(p, d);
        return isfinite(out->v.d) ? GW_OK : GW_ENONFINITE;
    }

    int64_t iv = 0;
    bool is_unsigned = false;
    if (is_bcd(p->type)) {
        rc = bcd_to_int(raw, nbytes, &iv);
        if (rc != GW_OK)
            return rc;
    } else if (p->type == CFG_TYPE_UINT16 || p->type == CFG_TYPE_UINT32 ||
               p->type == CFG_TYPE_UINT64) {
        is_unsigned = true;
    } else {
        iv = sign_extend(raw, nbytes);
    }

    if (plain(p)) {
        if (is_unsigned) {
            out->kind = AD_VALUE_UINT;
            out->v.u = raw;
        } else {
            out->kind = AD_VALUE_INT;
            out->v.i = iv;
        }
        return GW_OK;
    }
    out->kind = AD_VALUE_DOUBLE;
    out->v.d = engineering(p, is_unsigned ? (double)raw : (double)iv);
    return isfinite(out->v.d) ? GW_OK : GW_ENONFINITE;
}

int ad_decode_bit(const struct cfg_point *p, uint8_t bit, struct ad_value *out)
{
    if (!out)
        return GW_EINVAL;
    value_clear(out);
    if (!p || p->type != CFG_TYPE_BOOL ||
        (p->table != CFG_TABLE_COIL && p->table != CFG_TABLE_DISCRETE))
        return GW_EINVAL;
    out->kind = AD_VALUE_BOOL;
    out->v.b = bit != 0;
    return GW_OK;
}

/* ---- encoding --------------------------------------------------------- */

/* A bool from BOOL, or INT/UINT 0 and 1. */
static int bool_of(const struct ad_value *in, bool *b)
{
    switch (in->kind) {
    case AD_VALUE_BOOL:
        *b = in->v.b;
        return GW_OK;
    case AD_VALUE_INT:
        if (in->v.i != 0 && in->v.i != 1)
            return GW_ERANGE;
        *b = in->v.i == 1;
        return GW_OK;
    case AD_VALUE_UINT:
        if (in->v.u > 1)
            return GW_ERANGE;
        *b = in->v.u == 1;
        return GW_OK;
    case AD_VALUE_NONE:
    case AD_VALUE_DOUBLE:
    case AD_VALUE_STRING:
        break;
    }
    return GW_ETYPE;
}

static double double_of(const struct ad_value *in)
{
    if (in->kind == AD_VALUE_INT)
        return (double)in->v.i;
    if (in->kind == AD_VALUE_UINT)
        return (double)in->v.u;
    return in->v.d;
}

/* The raw integer for an integer or BCD point: *sraw for signed types and
 * BCD, *uraw for unsigned types. */
static int raw_integer(const struct cfg_point *p, const struct ad_value *in,
                       int64_t *sraw, uint64_t *uraw)
{
    struct int_range r = {false, 0, 0, 0};
    int_range_of(p->type, &r);
    if (unscaled(p) && in->kind == AD_VALUE_INT) {
        if (r.is_signed) {
            if (in->v.i < r.smin || in->v.i > r.smax)
                return GW_ERANGE;
            *sraw = in->v.i;
        } else {
            if (in->v.i < 0 || (uint64_t)in->v.i > r.umax)
                return GW_ERANGE;
            *uraw = (uint64_t)in->v.i;
        }
        return GW_OK;
    }
    if (unscaled(p) && in->kind == AD_VALUE_UINT) {
        if (r.is_signed) {
            if (in->v.u > (uint64_t)r.smax)
                return GW_ERANGE;
            *sraw = (int64_t)in->v.u;
        } else {
            if (in->v.u > r.umax)
                return GW_ERANGE;
            *uraw = in->v.u;
        }
        return GW_OK;
    }
    double d;
    if (unscaled(p)) {
        d = in->v.d; /* a DOUBLE: must hold an integer */
        if (!near_integral(d))
            return GW_ERANGE;
        d = round(d);
    } else {
        d = (double_of(in) - p->offset) / p->scale;
        if (!isfinite(d))
            return GW_ERANGE;
        d = round_half_away(d);
    }
    /* (double)max + 1 is exact for 16/32-bit types and rounds to 2^63 or
     * 2^64 for the 64-bit ones: d < that bound means d <= max. */
    if (r.is_signed) {
        if (!(d >= (double)r.smin && d < (double)r.smax + 1.0))
            return GW_ERANGE;
        *sraw = (int64_t)d;
    } else {
        if (!(d >= 0.0 && d < (double)r.umax + 1.0))
            return GW_ERANGE;
        *uraw = (uint64_t)d;
    }
    return GW_OK;
}

static uint64_t int_to_bcd(int64_t v)
{
    uint64_t bcd = 0;
    for (int shift = 0; v > 0; shift += 4, v /= 10)
        bcd |= (uint64_t)(v % 10) << shift;
    return bcd;
}

static int encode_string(const struct cfg_point *p, const struct ad_value *in,
                         uint16_t *regs, size_t cap)
{
    size_t capacity = string_capacity(p);
    if (capacity == 0 || cap < p->count)
        return GW_EINVAL;
    if (in->kind != AD_VALUE_STRING)
        return GW_ETYPE;
    size_t len = strnlen(in->s, sizeof(in->s));
    if (len > capacity)
        return GW_ERANGE;
    for (size_t j = 0; j < p->count; j++)
        regs[j] = 0;
    for (size_t k = 0; k < len; k++) {
        uint16_t c = (uint8_t)in->s[k];
        switch (p->packing) {
        case CFG_PACK_LO_HI:
            regs[k / 2] |= (uint16_t)(k % 2 == 0 ? c : c << 8);
            break;
        case CFG_PACK_HI_ONLY:
            regs[k] = (uint16_t)(c << 8);
            break;
        case CFG_PACK_LO_ONLY:
            regs[k] = c;
            break;
        case CFG_PACK_HI_LO:
        default:
            regs[k / 2] |= (uint16_t)(k % 2 == 0 ? c << 8 : c);
            break;
        }
    }
    return GW_OK;
}

int ad_encode_registers(const struct cfg_point *p, const struct ad_value *in,
                        uint16_t current, uint16_t *regs, size_t cap)
{
    if (!p || !in || !regs || p->table != CFG_TABLE_HOLDING)
        return GW_EINVAL;

    if (p->type == CFG_TYPE_STRING)
        return encode_string(p, in, regs, cap);
    if (p->type == CFG_TYPE_BIT) {
        if (cap < 1 || p->bit > 15)
            return GW_EINVAL;
        bool b;
        int rc = bool_of(in, &b);
        if (rc != GW_OK)
            return rc;
        uint16_t mask = (uint16_t)(1u << p->bit);
        regs[0] = b ? (uint16_t)(current | mask) : (uint16_t)(current & ~mask);
        return GW_OK;
    }

    unsigned nbytes = (unsigned)cfg_type_bytes(p->type);
    uint8_t sig[8];
    if (nbytes == 0 || cap < nbytes / 2 || !scaling_ok(p))
        return GW_EINVAL;
    int rc = parse_order(p->order, nbytes, sig);
    if (rc != GW_OK)
        return rc;
    if (in->kind != AD_VALUE_INT && in->kind != AD_VALUE_UINT &&
        in->kind != AD_VALUE_DOUBLE)
        return GW_ETYPE;
    if (in->kind == AD_VALUE_DOUBLE && !isfinite(in->v.d))
        return GW_ENONFINITE;
    double eng = double_of(in);
    if ((p->has_min && eng < p->min) || (p->has_max && eng > p->max))
        return GW_ERANGE;

    uint64_t raw;
    if (is_float(p->type)) {
        double d = unscaled(p) ? eng : (eng - p->offset) / p->scale;
        if (!isfinite(d))
            return GW_ERANGE;
        if (nbytes == 4) {
            /* Beyond FLT_MAX plus half an ulp it would round to infinity;
             * below, it rounds to at most FLT_MAX (so the text
             * "3.40282347e+38" that FLT_MAX prints as still encodes). */
            if (fabs(d) >= FLOAT_ROUNDS_TO_INF)
                return GW_ERANGE;
            float f = (float)d;
            uint32_t r32;
            memcpy(&r32, &f, sizeof(r32));
            raw = r32;
        } else {
            memcpy(&raw, &d, sizeof(raw));
        }
    } else {
        int64_t sraw = 0;
        uint64_t uraw = 0;
        rc = raw_integer(p, in, &sraw, &uraw);
        if (rc != GW_OK)
            return rc;
        if (is_bcd(p->type))
            raw = int_to_bcd(sraw);
        else if (p->type == CFG_TYPE_UINT16 || p->type == CFG_TYPE_UINT32 ||
                 p->type == CFG_TYPE_UINT64)
            raw = uraw;
        else
            raw = (uint64_t)sraw; /* two's complement; scatter keeps nbytes */
    }
    scatter(raw, nbytes, sig, regs);
    return GW_OK;
}

int ad_encode_bit(const struct cfg_point *p, const struct ad_value *in,
                  uint8_t *bit)
{
    if (!p || !in || !bit || p->table != CFG_TABLE_COIL ||
        p->type != CFG_TYPE_BOOL)
        return GW_EINVAL;
    bool b;
    int rc = bool_of(in, &b);
    if (rc != GW_OK)
        return rc;
    *bit = b ? 1 : 0;
    return GW_OK;
}

/* ---- parsing ---------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static bool word_is(const char *s, size_t len, const char *word)
{
    if (strlen(word) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (lower((unsigned char)s[i]) != word[i])
            return false;
    return true;
}

/* A value of p's kind from an integer (an enum label's value). */
static int value_of_int(const struct cfg_point *p, int64_t v,
                        struct ad_value *out)
{
    struct int_range r = {false, 0, 0, 0};
    if (p->type == CFG_TYPE_BOOL || p->type == CFG_TYPE_BIT) {
        if (v != 0 && v != 1)
            return GW_ERANGE;
        out->kind = AD_VALUE_BOOL;
        out->v.b = v == 1;
    } else if (plain(p) && int_range_of(p->type, &r)) {
        if (r.is_signed) {
            if (v < r.smin || v > r.smax)
                return GW_ERANGE;
            out->kind = AD_VALUE_INT;
            out->v.i = v;
        } else {
            if (v < 0 || (uint64_t)v > r.umax)
                return GW_ERANGE;
            out->kind = AD_VALUE_UINT;
            out->v.u = (uint64_t)v;
        }
    } else {
        out->kind = AD_VALUE_DOUBLE;
        out->v.d = (double)v;
    }
    return GW_OK;
}

/* Integer syntax: [+-] digits, or [+-] 0x hexdigits.  Sets the magnitude
 * (GW_ERANGE beyond 64 bits).  Returns GW_EPARSE when s is not that. */
static int scan_integer(const char *s, bool *neg, uint64_t *mag)
{
    *neg = false;
    *mag = 0;
    if (*s == '+' || *s == '-')
        *neg = *s++ == '-';
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (*s == '\0')
        return GW_EPARSE;
    bool overflow = false;
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && lower((unsigned char)*s) >= 'a' &&
                 lower((unsigned char)*s) <= 'f')
            d = (unsigned)(lower((unsigned char)*s) - 'a' + 10);
        else
            return GW_EPARSE;
        if (*mag > (UINT64_MAX - d) / base)
            overflow = true;
        else
            *mag = *mag * base + d;
    }
    return overflow ? GW_ERANGE : GW_OK;
}

/* Decimal syntax: [+-] digits [. digits] [e [+-] digits], at least one
 * digit before the exponent.  No inf, nan, hex floats. */
static bool is_decimal(const char *s)
{
    size_t digits = 0;
    if (*s == '+' || *s == '-')
        s++;
    for (; *s >= '0' && *s <= '9'; s++)
        digits++;
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++)
            digits++;
    if (digits == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

static int parse_number(const struct cfg_point *p, const char *s,
                        struct ad_value *out)
{
    struct int_range r = {false, 0, 0, 0};
    bool exact = plain(p) && int_range_of(p->type, &r);
    bool neg;
    uint64_t mag;
    int rc = scan_integer(s, &neg, &mag);
    if (rc == GW_OK && exact) {
        if (r.is_signed) {
            int64_t v;
            if (neg && mag > (uint64_t)INT64_MAX + 1)
                return GW_ERANGE;
            if (!neg && mag > (uint64_t)INT64_MAX)
                return GW_ERANGE;
            if (neg)
                v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
            else
                v = (int64_t)mag;
            if (v < r.smin || v > r.smax)
                return GW_ERANGE;
            out->kind = AD_VALUE_INT;
            out->v.i = v;
        } else {
            if ((neg && mag != 0) || mag > r.umax)
                return GW_ERANGE;
            out->kind = AD_VALUE_UINT;
            out->v.u = mag;
        }
        return GW_OK;
    }
    if (rc == GW_ERANGE)
        return GW_ERANGE;

    double d;
    if (rc == GW_OK) {
        d = neg ? -(double)mag : (double)mag;
    } else {
        if (!is_decimal(s))
            return GW_EPARSE;
        errno = 0;
        d = strtod(s, NULL);
        if (!isfinite(d))
            return GW_ERANGE;
    }
    if (!exact) {
        out->kind = AD_VALUE_DOUBLE;
        out->v.d = d;
        return GW_OK;
    }
    /* A decimal for an exact integer point, e.g. "1e3" or "5.0". */
    if (!near_integral(d))
        return GW_ERANGE;
    d = round(d);
    if (r.is_signed) {
        if (!(d >= (double)r.smin && d < (double)r.smax + 1.0))
            return GW_ERANGE;
        out->kind = AD_VALUE_INT;
        out->v.i = (int64_t)d;
    } else {
        if (!(d >= 0.0 && d < (double)r.umax + 1.0))
            return GW_ERANGE;
        out->kind = AD_VALUE_UINT;
        out->v.u = (uint64_t)d;
    }
    return GW_OK;
}

int ad_value_parse(const struct cfg_point *p, const char *text,
                   struct ad_value *out)
{
    if (!out)
        return GW_EINVAL;
    value_clear(out);
    if (!p || !text)
        return GW_EINVAL;

    if (p->type == CFG_TYPE_STRING) {
        size_t len = strlen(text);
        size_t capacity = string_capacity(p);
        if (len > AD_STRING_MAX || (capacity != 0 && len > capacity))
            return GW_ERANGE;
        memcpy(out->s, text, len + 1);
        out->kind = AD_VALUE_STRING;
        return GW_OK;
    }

    const char *s = text, *e = text + strlen(text);
    while (s < e && is_space(*s))
        s++;
    while (e > s && is_space(e[-1]))
        e--;
    size_t len = (size_t)(e - s);
    if (len == 0)
        return GW_EPARSE;

    for (size_t i = 0; i < p->n_labels; i++) {
        const char *l = p->labels[i].label;
        if (l && strlen(l) == len && memcmp(l, s, len) == 0)
            return value_of_int(p, p->labels[i].value, out);
    }

    if (p->type == CFG_TYPE_BOOL || p->type == CFG_TYPE_BIT) {
        bool yes = word_is(s, len, "true") || word_is(s, len, "on") ||
                   word_is(s, len, "1");
        bool no = word_is(s, len, "false") || word_is(s, len, "off") ||
                  word_is(s, len, "0");
        if (!yes && !no)
            return GW_EPARSE;
        out->kind = AD_VALUE_BOOL;
        out->v.b = yes;
        return GW_OK;
    }
    if (cfg_type_bytes(p->type) == 0)
        return GW_EPARSE;

    char buf[NUMBER_TEXT_MAX];
    if (len >= sizeof(buf))
        return GW_EPARSE;
    memcpy(buf, s, len);
    buf[len] = '\0';
    int rc = parse_number(p, buf, out);
    if (rc != GW_OK)
        value_clear(out);
    return rc;
}

/* ---- formatting ------------------------------------------------------- */

/* The shortest %g text that reads back as the same double (or float). */
static int format_shortest(double d, bool as_float, char *buf, size_t cap)
{
    char tmp[64];
    int lo = as_float ? 6 : 15, hi = as_float ? 9 : 17;
    for (int prec = lo; prec <= hi; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        /* Read back as ad_value_parse and a float32 encode would: strtod,
         * then a conversion to float. */
        double back = strtod(tmp, NULL);
        bool same = as_float ? (float)back == (float)d : back == d;
        if (same || prec == hi)
            break;
    }
    return snprintf(buf, cap, "%s", tmp);
}

size_t ad_value_format(const struct cfg_point *p, const struct ad_value *v,
                       char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return 0;
    buf[0] = '\0';
    if (!v)
        return 0;
    int n = 0;
    switch (v->kind) {
    case AD_VALUE_NONE:
        break;
    case AD_VALUE_BOOL:
        n = snprintf(buf, cap, "%s", v->v.b ? "true" : "false");
        break;
    case AD_VALUE_INT:
        n = snprintf(buf, cap, "%" PRId64, v->v.i);
        break;
    case AD_VALUE_UINT:
        n = snprintf(buf, cap, "%" PRIu64, v->v.u);
        break;
    case AD_VALUE_STRING:
        n = snprintf(buf, cap, "%s", v->s);
        break;
    case AD_VALUE_DOUBLE: {
        double d = v->v.d;
        if (isnan(d)) {
            n = snprintf(buf, cap, "%s", "nan");
        } else if (isinf(d)) {
            n = snprintf(buf, cap, "%s", d < 0 ? "-inf" : "inf");
        } else if (p && p->decimals >= 0) {
            d = apply_decimals(d, p->decimals);
            n = snprintf(buf, cap, "%.*f", p->decimals, d == 0.0 ? 0.0 : d);
        } else {
            bool as_float = p && p->type == CFG_TYPE_FLOAT32 && unscaled(p) &&
                            fabs(d) <= FLT_MAX && (double)(float)d == d;
            n = format_shortest(d, as_float, buf, cap);
        }
        break;
    }
    }
    if (n < 0) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* ---- comparisons ------------------------------------------------------ */

const char *ad_value_label(const struct cfg_point *p, const struct ad_value *v)
{
    if (!p || !v || p->n_labels == 0)
        return NULL;
    int64_t key;
    switch (v->kind) {
    case AD_VALUE_BOOL:
        key = v->v.b ? 1 : 0;
        break;
    case AD_VALUE_INT:
        key = v->v.i;
        break;
    case AD_VALUE_UINT:
        if (v->v.u > (uint64_t)INT64_MAX)
            return NULL;
        key = (int64_t)v->v.u;
        break;
    case AD_VALUE_DOUBLE:
        if (!(v->v.d >= -0x1p63 && v->v.d < 0x1p63) || v->v.d != trunc(v->v.d))
            return NULL;
        key = (int64_t)v->v.d;
        break;
    case AD_VALUE_NONE:
    case AD_VALUE_STRING:
    default:
        return NULL;
    }
    for (size_t i = 0; i < p->n_labels; i++)
        if (p->labels[i].value == key)
            return p->labels[i].label;
    return NULL;
}

bool ad_value_equal(const struct ad_value *a, const struct ad_value *b)
{
    if (!a || !b)
        return a == b;
    if (a->kind == AD_VALUE_INT && b->kind == AD_VALUE_UINT)
        return a->v.i >= 0 && (uint64_t)a->v.i == b->v.u;
    if (a->kind == AD_VALUE_UINT && b->kind == AD_VALUE_INT)
        return b->v.i >= 0 && (uint64_t)b->v.i == a->v.u;
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case AD_VALUE_NONE:
        return true;
    case AD_VALUE_BOOL:
        return a->v.b == b->v.b;
    case AD_VALUE_INT:
        return a->v.i == b->v.i;
    case AD_VALUE_UINT:
        return a->v.u == b->v.u;
    case AD_VALUE_DOUBLE:
        return a->v.d == b->v.d || (isnan(a->v.d) && isnan(b->v.d));
    case AD_VALUE_STRING:
        return strncmp(a->s, b->s, sizeof(a->s)) == 0;
    }
    return false;
}

bool ad_value_to_double(const struct ad_value *v, double *out)
{
    if (!v || !out)
        return false;
    switch (v->kind) {
    case AD_VALUE_BOOL:
        *out = v->v.b ? 1.0 : 0.0;
        return true;
    case AD_VALUE_INT:
    case AD_VALUE_UINT:
    case AD_VALUE_DOUBLE:
        *out = double_of(v);
        return true;
    case AD_VALUE_NONE:
    case AD_VALUE_STRING:
        break;
    }
    return false;
}
