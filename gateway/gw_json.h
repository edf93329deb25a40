/* gw_json.h - a tiny streaming JSON writer for --json output.
 *
 * The writer tracks nesting and commas; strings are escaped per RFC 8259.
 * Depth is bounded by GW_JSON_MAX_DEPTH; deeper calls are ignored and set
 * the error flag. */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define GW_JSON_MAX_DEPTH 32

struct gw_json {
    FILE *out;
    int depth;
    bool first[GW_JSON_MAX_DEPTH]; /* no element written yet at this depth */
    bool after_key;                /* a key was written, its value is next */
    bool error;
};

void gw_json_init(struct gw_json *j, FILE *out);
void gw_json_object_begin(struct gw_json *j);
void gw_json_object_end(struct gw_json *j);
void gw_json_array_begin(struct gw_json *j);
void gw_json_array_end(struct gw_json *j);
void gw_json_key(struct gw_json *j, const char *key);
void gw_json_string(struct gw_json *j, const char *s); /* NULL -> null */
void gw_json_int(struct gw_json *j, int64_t v);
void gw_json_uint(struct gw_json *j, uint64_t v);
void gw_json_double(struct gw_json *j, double v); /* non-finite -> null */
void gw_json_bool(struct gw_json *j, bool v);
void gw_json_null(struct gw_json *j);
/* Ends a top-level value with a newline (JSON lines). */
void gw_json_newline(struct gw_json *j);

#endif
