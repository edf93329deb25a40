/* sim_value.h - typed values -> Modbus registers, and time-varying waves.
 *
 * Pure functions, no I/O, no allocation.  Byte orders follow the project's
 * rule (docs/codec.md): one letter a byte, 'A' the most significant byte of
 * the value, the letters listed in wire order (register 0 high, register 0
 * low, register 1 high, ...).  2 letters for 16-bit types, 4 for 32-bit, 8
 * for 64-bit; a 4-letter standard order (ABCD CDAB BADC DCBA) given for a
 * 64-bit type is widened (ABCDEFGH GHEFCDAB BADCFEHG HGFEDCBA). */
#ifndef SIM_VALUE_H
#define SIM_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sim_type {
    SIM_T_UINT16,
    SIM_T_INT16,
    SIM_T_UINT32,
    SIM_T_INT32,
    SIM_T_UINT64,
    SIM_T_INT64,
    SIM_T_FLOAT32,
    SIM_T_FLOAT64,
    SIM_T_BCD16,
    SIM_T_BCD32,
    SIM_T_STRING, /* `length` registers, two characters a register */
    SIM_T_BOOL,   /* one coil or discrete input */
};

/* A number as written in a file: exact integers stay exact. */
struct sim_num {
    enum { SIM_NUM_INT, SIM_NUM_UINT, SIM_NUM_DOUBLE } kind;
    int64_t i;
    uint64_t u;
    double d;
};

enum sim_wave_kind {
    SIM_WAVE_SINE,    /* min..max and back once a period */
    SIM_WAVE_RAMP,    /* sawtooth: min rising to max over a period */
    SIM_WAVE_COUNTER, /* +step once a period, wraps from above max to min */
    SIM_WAVE_RANDOM,  /* a new value in [min, max] once a period */
};

struct sim_wave {
    enum sim_wave_kind kind;
    uint32_t period_ms; /* > 0 */
    double min, max;
    double step;    /* counter only; default 1 */
    uint64_t state; /* random: PRNG state (non-zero) */
    /* Internal: random's current value and the period it belongs to. */
    uint64_t period_no;
    double current;
    bool started;
};

/* Parses "uint16", "int16", "uint32", "int32", "uint64", "int64",
 * "float32", "float64", "bcd16", "bcd32", "string", "bool".  Returns 0 or
 * GW_EINVAL. */
int sim_type_parse(const char *name, enum sim_type *out);

/* Registers a numeric type occupies (1, 2 or 4); 0 for string and bool. */
unsigned sim_type_words(enum sim_type t);

/* Parses an order string for type t into perm: perm[k] is the significance
 * of wire byte k (0 = most significant).  NULL or "" means big-endian.
 * Returns 0 or GW_EINVAL (wrong length, not a permutation). */
int sim_order_parse(enum sim_type t, const char *order, uint8_t perm[8]);

/* Parses a number: decimal or 0x hex integers exactly, else a double.
 * Returns 0 or GW_EPARSE. */
int sim_num_parse(const char *text, struct sim_num *out);

/* Encodes v as type t (numeric types only) into out[0..sim_type_words(t))
 * in byte order perm.  Integers must fit the type (floats are rounded);
 * a float32 must be finite within float range; BCD must be 0..9999 or
 * 0..99999999.  Returns 0, GW_ERANGE or GW_EINVAL (not numeric). */
int sim_encode(enum sim_type t, const uint8_t perm[8], const struct sim_num *v,
               uint16_t *out);

/* Packs text into n registers, two characters a register: high byte first,
 * or low byte first when lo_hi; padded with NULs.  Returns 0 or GW_ERANGE
 * (text longer than 2 * n). */
int sim_encode_string(const char *text, bool lo_hi, uint16_t *out, size_t n);

/* Parses "kind" names: sine, ramp, counter, random.  0 or GW_EINVAL. */
int sim_wave_kind_parse(const char *name, enum sim_wave_kind *out);

/* The wave's value t_ms after start.  `base` is the value's static value
 * (where a counter starts).  Counter and random values change only at
 * period boundaries; random draws one new value per period seen, so call
 * it with non-decreasing times. */
double sim_wave_at(struct sim_wave *w, double base, uint64_t t_ms);

/* Parses a duration: "300ms", "10s", "2m", or a bare number of ms.
 * Returns 0 or GW_EPARSE (also for values above one day). */
int sim_duration_parse(const char *text, uint32_t *ms);

#endif
