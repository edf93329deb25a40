/* sim_value.c - typed values -> registers, waves, small parsers. */
#include "sim_value.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gw_err.h"

static const struct {
    const char *name;
    enum sim_type type;
} type_names[] = {
    {"uint16", SIM_T_UINT16},   {"int16", SIM_T_INT16},
    {"uint32", SIM_T_UINT32},   {"int32", SIM_T_INT32},
    {"uint64", SIM_T_UINT64},   {"int64", SIM_T_INT64},
    {"float32", SIM_T_FLOAT32}, {"float64", SIM_T_FLOAT64},
    {"bcd16", SIM_T_BCD16},     {"bcd32", SIM_T_BCD32},
    {"string", SIM_T_STRING},   {"bool", SIM_T_BOOL},
};

int sim_type_parse(const char *name, enum sim_type *out)
{
    for (size_t k = 0; k < sizeof(type_names) / sizeof(type_names[0]); k++) {
        if (strcmp(name, type_names[k].name) == 0) {
            *out = type_names[k].type;
            return GW_OK;
        }
    }
    return GW_EINVAL;
}

unsigned sim_type_words(enum sim_type t)
{
    switch (t) {
    case SIM_T_UINT16:
    case SIM_T_INT16:
    case SIM_T_BCD16:
        return 1;
    case SIM_T_UINT32:
    case SIM_T_INT32:
    case SIM_T_FLOAT32:
    case SIM_T_BCD32:
        return 2;
    case SIM_T_UINT64:
    case SIM_T_INT64:
    case SIM_T_FLOAT64:
        return 4;
    case SIM_T_STRING:
    case SIM_T_BOOL:
        break;
    }
    return 0;
}

int sim_order_parse(enum sim_type t, const char *order, uint8_t perm[8])
{
    unsigned nbytes = 2 * sim_type_words(t);
    if (nbytes == 0)
        return GW_EINVAL;
    char widened[9];
    if (!order || !order[0]) {
        for (unsigned k = 0; k < nbytes; k++)
            perm[k] = (uint8_t)k;
        return GW_OK;
    }
    size_t len = strlen(order);
    if (nbytes == 8 && len == 4) {
        /* A standard 32-bit order says "swap words" and/or "swap bytes". */
        static const char *const std4[] = {"ABCD", "CDAB", "BADC", "DCBA"};
        static const char *const std8[] = {"ABCDEFGH", "GHEFCDAB", "BADCFEHG",
                                           "HGFEDCBA"};
        size_t k = 0;
        while (k < 4 && strcmp(order, std4[k]) != 0)
            k++;
        if (k == 4)
            return GW_EINVAL;
        memcpy(widened, std8[k], 9);
        order = widened;
        len = 8;
    }
    if (len != nbytes)
        return GW_EINVAL;
    unsigned seen = 0;
    for (unsigned k = 0; k < nbytes; k++) {
        int c = order[k];
        if (c >= 'a' && c <= 'h')
            c -= 'a' - 'A';
        if (c < 'A' || c >= 'A' + (int)nbytes)
            return GW_EINVAL;
        unsigned sig = (unsigned)(c - 'A');
        if (seen & (1u << sig))
            return GW_EINVAL;
        seen |= 1u << sig;
        perm[k] = (uint8_t)sig;
    }
    return GW_OK;
}

int sim_num_parse(const char *text, struct sim_num *out)
{
    char *end = NULL;
    if (!text || !*text)
        return GW_EPARSE;
    memset(out, 0, sizeof(*out));
    errno = 0;
    if (text[0] == '-') {
        long long v = strtoll(text, &end, 0);
        if (errno == 0 && end && *end == '\0') {
            out->kind = SIM_NUM_INT;
            out->i = v;
            out->d = (double)v;
            return GW_OK;
        }
    } else {
        unsigned long long v = strtoull(text, &end, 0);
        if (errno == 0 && end && *end == '\0') {
            out->kind = SIM_NUM_UINT;
            out->u = v;
            out->d = (double)v;
            return GW_OK;
        }
    }
    errno = 0;
    double d = strtod(text, &end);
    if (errno != 0 || !end || *end != '\0' || end == text)
        return GW_EPARSE;
    out->kind = SIM_NUM_DOUBLE;
    out->d = d;
    return GW_OK;
}

/* The value as a signed/unsigned integer within [lo, hi] (hi as uint64 for
 * the unsigned types); doubles are rounded. */
static int num_to_u64(const struct sim_num *v, uint64_t hi, uint64_t *out)
{
    switch (v->kind) {
    case SIM_NUM_UINT:
        if (v->u > hi)
            return GW_ERANGE;
        *out = v->u;
        return GW_OK;
    case SIM_NUM_INT:
        if (v->i < 0 || (uint64_t)v->i > hi)
            return GW_ERANGE;
        *out = (uint64_t)v->i;
        return GW_OK;
    case SIM_NUM_DOUBLE: {
        double r = nearbyint(v->d);
        /* 2^64 is the first double out of range. */
        if (!isfinite(r) || r < 0 || r >= 18446744073709551616.0 ||
            (hi < UINT64_MAX && r > (double)hi))
            return GW_ERANGE;
        *out = (uint64_t)r;
        return GW_OK;
    }
    }
    return GW_EINVAL;
}

static int num_to_i64(const struct sim_num *v, int64_t lo, int64_t hi,
                      int64_t *out)
{
    int64_t x;
    switch (v->kind) {
    case SIM_NUM_UINT:
        if (v->u > (uint64_t)INT64_MAX)
            return GW_ERANGE;
        x = (int64_t)v->u;
        break;
    case SIM_NUM_INT:
        x = v->i;
        break;
    case SIM_NUM_DOUBLE: {
        double r = nearbyint(v->d);
        if (!isfinite(r) || r < -9223372036854775808.0 ||
            r >= 9223372036854775808.0)
            return GW_ERANGE;
        x = (int64_t)r;
        break;
    }
    default:
        return GW_EINVAL;
    }
    if (x < lo || x > hi)
        return GW_ERANGE;
    *out = x;
    return GW_OK;
}

static uint64_t to_bcd(uint64_t v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; v > 0; shift += 4) {
        r |= (v % 10) << shift;
        v /= 10;
    }
    return r;
}

int sim_encode(enum sim_type t, const uint8_t perm[8], const struct sim_num *v,
               uint16_t *out)
{
    unsigned nwords = sim_type_words(t);
    uint64_t raw = 0;
    int64_t s = 0;
    int rc = GW_OK;
    switch (t) {
    case SIM_T_UINT16:
        rc = num_to_u64(v, UINT16_MAX, &raw);
        break;
    case SIM_T_UINT32:
        rc = num_to_u64(v, UINT32_MAX, &raw);
        break;
    case SIM_T_UINT64:
        rc = num_to_u64(v, UINT64_MAX, &raw);
        break;
    case SIM_T_INT16:
        rc = num_to_i64(v, INT16_MIN, INT16_MAX, &s);
        raw = (uint64_t)s & 0xffffu;
        break;
    case SIM_T_INT32:
        rc = num_to_i64(v, INT32_MIN, INT32_MAX, &s);
        raw = (uint64_t)s & 0xffffffffu;
        break;
    case SIM_T_INT64:
        rc = num_to_i64(v, INT64_MIN, INT64_MAX, &s);
        raw = (uint64_t)s;
        break;
    case SIM_T_BCD16:
        rc = num_to_u64(v, 9999, &raw);
        raw = to_bcd(raw);
        break;
    case SIM_T_BCD32:
        rc = num_to_u64(v, 99999999, &raw);
        raw = to_bcd(raw);
        break;
    case SIM_T_FLOAT32: {
        double d = v->kind == SIM_NUM_DOUBLE ? v->d
                   : v->kind == SIM_NUM_INT  ? (double)v->i
                                             : (double)v->u;
        if (isfinite(d) && fabs(d) > 3.4028234663852886e38)
            return GW_ERANGE;
        float f = (float)d;
        uint32_t bits;
        memcpy(&bits, &f, sizeof(bits));
        raw = bits;
        break;
    }
    case SIM_T_FLOAT64: {
        double d = v->kind == SIM_NUM_DOUBLE ? v->d
                   : v->kind == SIM_NUM_INT  ? (double)v->i
                                             : (double)v->u;
        memcpy(&raw, &d, sizeof(raw));
        break;
    }
    case SIM_T_STRING:
    case SIM_T_BOOL:
        return GW_EINVAL;
    }
    if (rc != GW_OK)
        return rc;
    unsigned nbytes = 2 * nwords;
    uint8_t wire[8];
    for (unsigned k = 0; k < nbytes; k++) {
        unsigned shift = 8 * (nbytes - 1 - perm[k]);
        wire[k] = (uint8_t)(raw >> shift);
    }
    for (unsigned w = 0; w < nwords; w++)
        out[w] = (uint16_t)((unsigned)wire[2 * w] << 8 | wire[2 * w + 1]);
    return GW_OK;
}

int sim_encode_string(const char *text, bool lo_hi, uint16_t *out, size_t n)
{
    size_t len = strlen(text);
    if (len > 2 * n)
        return GW_ERANGE;
    for (size_t w = 0; w < n; w++) {
        unsigned a = 2 * w < len ? (unsigned char)text[2 * w] : 0;
        unsigned b = 2 * w + 1 < len ? (unsigned char)text[2 * w + 1] : 0;
        out[w] = lo_hi ? (uint16_t)(b << 8 | a) : (uint16_t)(a << 8 | b);
    }
    return GW_OK;
}

int sim_wave_kind_parse(const char *name, enum sim_wave_kind *out)
{
    static const char *const names[] = {"sine", "ramp", "counter", "random"};
    for (unsigned k = 0; k < 4; k++) {
        if (strcmp(name, names[k]) == 0) {
            *out = (enum sim_wave_kind)k;
            return GW_OK;
        }
    }
    return GW_EINVAL;
}

/* xorshift64*: small, deterministic, good enough for test data. */
static uint64_t prng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ull;
}

double sim_wave_at(struct sim_wave *w, double base, uint64_t t_ms)
{
    double span = w->max - w->min;
    uint64_t n = t_ms / w->period_ms;
    double frac = (double)(t_ms % w->period_ms) / (double)w->period_ms;
    switch (w->kind) {
    case SIM_WAVE_SINE:
        return w->min + span * (0.5 + 0.5 * sin(2.0 * M_PI * frac));
    case SIM_WAVE_RAMP:
        return w->min + span * frac;
    case SIM_WAVE_COUNTER: {
        /* Integer-like counting: the cycle is min, min+step, ... <= max. */
        double step = w->step > 0 ? w->step : 1.0;
        double cycle = floor(span / step) + 1.0;
        double start = floor((base - w->min) / step);
        if (!(start >= 0) || start >= cycle)
            start = 0;
        return w->min + step * fmod(start + (double)n, cycle);
    }
    case SIM_WAVE_RANDOM:
        if (!w->started || n != w->period_no) {
            uint64_t r = prng_next(&w->state);
            w->current = w->min + span * ((double)(r >> 11) * 0x1.0p-53);
            w->period_no = n;
            w->started = true;
        }
        return w->current;
    }
    return base;
}

int sim_duration_parse(const char *text, uint32_t *ms)
{
    char *end = NULL;
    if (!text || !*text || text[0] == '-')
        return GW_EPARSE;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || !isfinite(v) || v < 0)
        return GW_EPARSE;
    double mult;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60000;
    else
        return GW_EPARSE;
    double r = nearbyint(v * mult);
    if (r > 86400000.0)
        return GW_EPARSE;
    *ms = (uint32_t)r;
    return GW_OK;
}
