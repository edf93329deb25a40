/* ad_codec.h - Modbus register/bit blocks <-> typed point values.
 *
 * Pure functions, no I/O, no allocation.  Decoding takes the raw words (or
 * bits) a point occupies and yields its engineering value (raw * scale +
 * offset, rounded to `decimals` when set); encoding goes the other way for
 * writes, with range checks that reject, never clamp.  See docs/codec.md
 * for the exact rules (byte orders, non-finite floats, BCD, strings). */
#ifndef AD_CODEC_H
#define AD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

/* Longest string value: 125 registers (one read) of two characters. */
#define AD_STRING_MAX 250

enum ad_value_kind {
    AD_VALUE_NONE,   /* no value (never read, or decode failed) */
    AD_VALUE_BOOL,   /* bool and bit points */
    AD_VALUE_INT,    /* signed integers and BCD, unscaled */
    AD_VALUE_UINT,   /* unsigned integers, unscaled */
    AD_VALUE_DOUBLE, /* floats, and any scaled or offset integer */
    AD_VALUE_STRING, /* string points */
};

struct ad_value {
    enum ad_value_kind kind;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double d;
    } v;
    char s[AD_STRING_MAX + 1]; /* AD_VALUE_STRING, NUL-terminated */
};

/* Decodes a register point (table input or holding) from regs[0..n), the
 * p->count registers starting at p->address.  Returns 0, GW_EINVAL (n too
 * small or a coil/discrete point), GW_ENONFINITE (a NaN or infinite float:
 * out->kind is AD_VALUE_DOUBLE and holds it), GW_EBADBCD (a nibble above 9;
 * out->kind is AD_VALUE_NONE). */
int ad_decode_registers(const struct cfg_point *p, const uint16_t *regs,
                        size_t n, struct ad_value *out);

/* Decodes a coil/discrete point from bits[0] (0 or non-zero). */
int ad_decode_bit(const struct cfg_point *p, uint8_t bit, struct ad_value *out);

/* Encodes an engineering value for a write to a holding register point:
 * undoes offset and scale, checks the point's min/max and the raw type's
 * range, and fills regs[0..p->count) in the point's byte order.  For bit
 * points, `current` is the register's present content (the other 15 bits
 * are kept); it is ignored for other types and may be 0.
 * Returns 0, GW_ETYPE (value kind does not fit the point), GW_ERANGE,
 * GW_ENONFINITE, GW_EINVAL (table or cap). */
int ad_encode_registers(const struct cfg_point *p, const struct ad_value *in,
                        uint16_t current, uint16_t *regs, size_t cap);

/* Encodes a value for a coil point into *bit (0 or 1). */
int ad_encode_bit(const struct cfg_point *p, const struct ad_value *in,
                  uint8_t *bit);

/* Parses text typed by a person or sent over XMPP into a value for p:
 * true/false/1/0/on/off for bool and bit, integers (decimal or 0x hex) and
 * decimals for numeric points, an enum label where the point has labels,
 * the text itself for strings.  Returns 0, GW_EPARSE or GW_ERANGE. */
int ad_value_parse(const struct cfg_point *p, const char *text,
                   struct ad_value *out);

/* Formats a value for display: decimals applied, no unit, no label.
 * Returns the length written (truncated to cap - 1). */
size_t ad_value_format(const struct cfg_point *p, const struct ad_value *v,
                       char *buf, size_t cap);

/* The enum label for the value, or NULL. */
const char *ad_value_label(const struct cfg_point *p, const struct ad_value *v);

/* Two values equal (used for write verification and change detection). */
bool ad_value_equal(const struct ad_value *a, const struct ad_value *b);

/* The value as a double (bool 0/1); false for strings and NONE. */
bool ad_value_to_double(const struct ad_value *v, double *out);

#endif
