/* gw_json.c - streaming JSON writer. */
#include "gw_json.h"

#include <inttypes.h>
#include <math.h>

void gw_json_init(struct gw_json *j, FILE *out)
{
    j->out = out;
    j->depth = 0;
    j->first[0] = true;
    j->after_key = false;
    j->error = false;
}

/* Writes the separator that goes before a new value or key. */
static void sep(struct gw_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (!j->first[j->depth])
        fputc(',', j->out);
    j->first[j->depth] = false;
}

static void open(struct gw_json *j, char c)
{
    sep(j);
    if (j->depth + 1 >= GW_JSON_MAX_DEPTH) {
        j->error = true;
        return;
    }
    fputc(c, j->out);
    j->depth++;
    j->first[j->depth] = true;
}

static void close_(struct gw_json *j, char c)
{
    if (j->depth == 0) {
        j->error = true;
        return;
    }
    fputc(c, j->out);
    j->depth--;
}

void gw_json_object_begin(struct gw_json *j)
{
    open(j, '{');
}

void gw_json_object_end(struct gw_json *j)
{
    close_(j, '}');
}

void gw_json_array_begin(struct gw_json *j)
{
    open(j, '[');
}

void gw_json_array_end(struct gw_json *j)
{
    close_(j, ']');
}

static void put_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", (unsigned)*p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

void gw_json_key(struct gw_json *j, const char *key)
{
    sep(j);
    put_string(j->out, key);
    fputc(':', j->out);
    j->after_key = true;
}

void gw_json_string(struct gw_json *j, const char *s)
{
    sep(j);
    if (s)
        put_string(j->out, s);
    else
        fputs("null", j->out);
}

void gw_json_int(struct gw_json *j, int64_t v)
{
    sep(j);
    fprintf(j->out, "%" PRId64, v);
}

void gw_json_uint(struct gw_json *j, uint64_t v)
{
    sep(j);
    fprintf(j->out, "%" PRIu64, v);
}

void gw_json_double(struct gw_json *j, double v)
{
    sep(j);
    if (isfinite(v))
        fprintf(j->out, "%.17g", v);
    else
        fputs("null", j->out);
}

void gw_json_bool(struct gw_json *j, bool v)
{
    sep(j);
    fputs(v ? "true" : "false", j->out);
}

void gw_json_null(struct gw_json *j)
{
    sep(j);
    fputs("null", j->out);
}

void gw_json_newline(struct gw_json *j)
{
    fputc('\n', j->out);
    j->first[0] = true;
}
