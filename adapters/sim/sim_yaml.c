/* sim_yaml.c - the unit file: libyaml document -> unit specs.
 *
 * The whole file is loaded as a libyaml document (it is small) and walked
 * node by node.  Unknown keys are errors.  Every error is printed as
 * "FILE:LINE:COL: message" and the first one ends the load. */
#include "sim_config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "gw_err.h"

#define MAX_FILE_ENTRY_WORDS 65536

struct loader {
    yaml_document_t *doc;
    const char *path;
    FILE *err;
};

__attribute__((format(printf, 3, 4))) static int
fail(const struct loader *ld, const yaml_node_t *node, const char *fmt, ...)
{
    va_list ap;
    fprintf(ld->err, "%s:%lu:%lu: ", ld->path,
            node ? (unsigned long)node->start_mark.line + 1 : 0ul,
            node ? (unsigned long)node->start_mark.column + 1 : 0ul);
    va_start(ap, fmt);
    vfprintf(ld->err, fmt, ap);
    va_end(ap);
    fputc('\n', ld->err);
    return GW_ECONFIG;
}

static const char *scalar(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return NULL;
    return (const char *)n->data.scalar.value;
}

static yaml_node_t *node_at(const struct loader *ld, yaml_node_item_t i)
{
    return yaml_document_get_node(ld->doc, i);
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1", "True"};
    static const char *const no[] = {"false", "no", "off", "0", "False"};
    for (unsigned k = 0; s && k < 5; k++) {
        if (strcmp(s, yes[k]) == 0) {
            *out = true;
            return GW_OK;
        }
        if (strcmp(s, no[k]) == 0) {
            *out = false;
            return GW_OK;
        }
    }
    return GW_EPARSE;
}

static int get_uint(const struct loader *ld, const yaml_node_t *n,
                    const char *key, unsigned long max, unsigned long *out)
{
    struct sim_num v;
    const char *s = scalar(n);
    if (!s || sim_num_parse(s, &v) != GW_OK || v.kind != SIM_NUM_UINT)
        return fail(ld, n, "%s: expected a non-negative integer", key);
    if (v.u > max)
        return fail(ld, n, "%s: %s is above %lu", key, s, max);
    *out = (unsigned long)v.u;
    return GW_OK;
}

static int get_duration(const struct loader *ld, const yaml_node_t *n,
                        const char *key, uint32_t *ms)
{
    if (sim_duration_parse(scalar(n), ms) != GW_OK)
        return fail(ld, n, "%s: expected a duration like 300ms or 10s", key);
    return GW_OK;
}

static int get_double(const struct loader *ld, const yaml_node_t *n,
                      const char *key, double *out)
{
    struct sim_num v;
    if (sim_num_parse(scalar(n), &v) != GW_OK)
        return fail(ld, n, "%s: expected a number", key);
    *out = v.d;
    return GW_OK;
}

static int parse_wave(const struct loader *ld, const yaml_node_t *n,
                      struct sim_wave *w, uint64_t seed)
{
    bool has_kind = false, has_period = false;
    int rc = GW_OK;
    if (n->type != YAML_MAPPING_NODE)
        return fail(ld, n, "wave: expected a mapping");
    memset(w, 0, sizeof(*w));
    w->max = 100;
    w->step = 1;
    w->state = seed;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         rc == GW_OK && p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node_at(ld, p->key), *vn = node_at(ld, p->value);
        const char *k = scalar(kn);
        if (!k)
            return fail(ld, kn, "wave: keys must be plain text");
        if (strcmp(k, "kind") == 0) {
            if (sim_wave_kind_parse(scalar(vn) ? scalar(vn) : "", &w->kind) !=
                GW_OK)
                return fail(ld, vn,
                            "wave.kind: expected sine, ramp, counter or "
                            "random");
            has_kind = true;
        } else if (strcmp(k, "period") == 0) {
            rc = get_duration(ld, vn, "wave.period", &w->period_ms);
            if (rc == GW_OK && w->period_ms == 0)
                return fail(ld, vn, "wave.period: must be above 0");
            has_period = true;
        } else if (strcmp(k, "min") == 0) {
            rc = get_double(ld, vn, "wave.min", &w->min);
        } else if (strcmp(k, "max") == 0) {
            rc = get_double(ld, vn, "wave.max", &w->max);
        } else if (strcmp(k, "step") == 0) {
            rc = get_double(ld, vn, "wave.step", &w->step);
            if (rc == GW_OK && !(w->step > 0))
                return fail(ld, vn, "wave.step: must be above 0");
        } else if (strcmp(k, "seed") == 0) {
            unsigned long s = 0;
            rc = get_uint(ld, vn, "wave.seed", ULONG_MAX, &s);
            w->state = s;
        } else {
            return fail(ld, kn, "wave: unknown key '%s'", k);
        }
    }
    if (rc != GW_OK)
        return rc;
    if (!has_kind || !has_period)
        return fail(ld, n, "wave: needs kind and period");
    if (w->max < w->min)
        return fail(ld, n, "wave: max is below min");
    if (w->state == 0)
        w->state = 0x9e3779b97f4a7c15ull;
    return GW_OK;
}

/* Encodes one scalar as type t at out (bits: one word 0/1). */
static int encode_one(const struct loader *ld, const yaml_node_t *n,
                      enum sim_type t, const uint8_t perm[8], uint16_t *out,
                      double *as_double)
{
    const char *s = scalar(n);
    if (!s)
        return fail(ld, n, "value: expected a scalar");
    if (t == SIM_T_BOOL) {
        bool b;
        if (parse_bool(s, &b) != GW_OK)
            return fail(ld, n, "value: '%s' is not a bit (true/false/1/0)", s);
        out[0] = b;
        *as_double = b;
        return GW_OK;
    }
    struct sim_num v;
    if (sim_num_parse(s, &v) != GW_OK)
        return fail(ld, n, "value: '%s' is not a number", s);
    int rc = sim_encode(t, perm, &v, out);
    if (rc != GW_OK)
        return fail(ld, n, "value: %s does not fit the type", s);
    *as_double = v.d;
    return GW_OK;
}

/* One item of a table list. */
static int parse_entry(const struct loader *ld, const yaml_node_t *n,
                       struct sim_unit_spec *spec, enum sim_table table,
                       const char *tname)
{
    bool bits = table == SIM_COILS || table == SIM_DISCRETE;
    const yaml_node_t *addr_n = NULL, *type_n = NULL, *order_n = NULL,
                      *value_n = NULL, *values_n = NULL, *wave_n = NULL,
                      *length_n = NULL, *packing_n = NULL;
    enum sim_type t = bits ? SIM_T_BOOL : SIM_T_UINT16;
    uint8_t perm[8];
    unsigned long address = 0, length = 0;
    struct sim_entry e = {.table = table};
    int rc;

    if (n->type != YAML_MAPPING_NODE)
        return fail(ld, n, "%s: each item is a mapping with an address", tname);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node_at(ld, p->key), *vn = node_at(ld, p->value);
        const char *k = scalar(kn);
        if (!k)
            return fail(ld, kn, "%s: keys must be plain text", tname);
        if (strcmp(k, "address") == 0)
            addr_n = vn;
        else if (strcmp(k, "type") == 0)
            type_n = vn;
        else if (strcmp(k, "order") == 0)
            order_n = vn;
        else if (strcmp(k, "value") == 0)
            value_n = vn;
        else if (strcmp(k, "values") == 0)
            values_n = vn;
        else if (strcmp(k, "wave") == 0)
            wave_n = vn;
        else if (strcmp(k, "length") == 0)
            length_n = vn;
        else if (strcmp(k, "packing") == 0)
            packing_n = vn;
        else
            return fail(ld, kn, "%s: unknown key '%s'", tname, k);
    }
    if (!addr_n)
        return fail(ld, n, "%s: address is required", tname);
    rc = get_uint(ld, addr_n, "address", 65535, &address);
    if (rc != GW_OK)
        return rc;
    e.address = (uint16_t)address;
    if (type_n && sim_type_parse(scalar(type_n) ? scalar(type_n) : "", &t))
        return fail(ld, type_n, "type: unknown type");
    if (bits != (t == SIM_T_BOOL))
        return fail(ld, type_n, "type: %s holds %s", tname,
                    bits ? "bool values only" : "no bool values");
    if (!!value_n + !!values_n != 1 && !(wave_n && !values_n))
        return fail(ld, n, "%s: give exactly one of value and values", tname);
    if (t == SIM_T_STRING) {
        const char *pk = packing_n ? scalar(packing_n) : "hi-lo";
        bool lo_hi;
        if (!length_n)
            return fail(ld, n, "string: length (registers) is required");
        rc = get_uint(ld, length_n, "length", 125, &length);
        if (rc != GW_OK)
            return rc;
        if (length == 0)
            return fail(ld, length_n, "length: must be above 0");
        if (pk && strcmp(pk, "hi-lo") == 0)
            lo_hi = false;
        else if (pk && strcmp(pk, "lo-hi") == 0)
            lo_hi = true;
        else
            return fail(ld, packing_n, "packing: expected hi-lo or lo-hi");
        if (!scalar(value_n) || values_n || wave_n || order_n)
            return fail(ld, n, "string: give value (text) only");
        e.count = (uint16_t)length;
        e.data = calloc(length, sizeof(uint16_t));
        if (!e.data)
            return GW_ENOMEM;
        if (sim_encode_string(scalar(value_n), lo_hi, e.data, length)) {
            free(e.data);
            return fail(ld, value_n, "value: longer than %lu characters",
                        2 * length);
        }
        goto add;
    }
    if (length_n || packing_n)
        return fail(ld, length_n ? length_n : packing_n,
                    "length and packing are for strings");
    if (t != SIM_T_BOOL &&
        sim_order_parse(t, order_n ? scalar(order_n) : NULL, perm) != GW_OK)
        return fail(ld, order_n, "order: not a byte order for this type");
    if (t == SIM_T_BOOL && order_n)
        return fail(ld, order_n, "order: not for bits");

    unsigned words = t == SIM_T_BOOL ? 1 : sim_type_words(t);
    size_t nvalues = 1;
    if (values_n) {
        if (values_n->type != YAML_SEQUENCE_NODE ||
            values_n->data.sequence.items.top ==
                values_n->data.sequence.items.start)
            return fail(ld, values_n, "values: expected a non-empty list");
        if (wave_n)
            return fail(ld, wave_n, "wave: give one value, not values");
        nvalues = (size_t)(values_n->data.sequence.items.top -
                           values_n->data.sequence.items.start);
    }
    if (address + nvalues * words > 65536)
        return fail(ld, n, "%s: values run past address 65535", tname);
    e.count = (uint16_t)(nvalues * words);
    e.data = calloc(nvalues * words, sizeof(uint16_t));
    if (!e.data)
        return GW_ENOMEM;
    double base = 0;
    for (size_t k = 0; k < nvalues; k++) {
        const yaml_node_t *vn =
            values_n ? node_at(ld, values_n->data.sequence.items.start[k])
                     : value_n;
        if (!vn) {
            /* wave without value: starts at the wave's minimum */
            continue;
        }
        rc = encode_one(ld, vn, t, perm, e.data + k * words, &base);
        if (rc != GW_OK) {
            free(e.data);
            return rc;
        }
    }
    if (wave_n) {
        e.has_live = true;
        e.live.type = t;
        memcpy(e.live.perm, perm, sizeof(perm));
        rc = parse_wave(ld, wave_n, &e.live.wave,
                        (uint64_t)spec->id << 32 | (uint64_t)table << 16 |
                            address);
        if (rc != GW_OK) {
            free(e.data);
            return rc;
        }
        e.live.base = value_n ? base : e.live.wave.min;
    }
add:
    rc = sim_unit_spec_add(spec, &e);
    return rc;
}

static int parse_table(const struct loader *ld, const yaml_node_t *n,
                       struct sim_unit_spec *spec, enum sim_table t,
                       const char *tname)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(ld, n, "%s: expected a list", tname);
    for (yaml_node_item_t *i = n->data.sequence.items.start;
         i < n->data.sequence.items.top; i++) {
        int rc = parse_entry(ld, node_at(ld, *i), spec, t, tname);
        if (rc != GW_OK)
            return rc;
    }
    return GW_OK;
}

static int parse_illegal(const struct loader *ld, const yaml_node_t *n,
                         struct sim_unit_spec *spec)
{
    if (n->type == YAML_SCALAR_NODE) {
        if (sim__parse_ranges(scalar(n), spec) != GW_OK)
            return fail(ld, n,
                        "exception02: expected addresses or ranges "
                        "like 100-109");
        return GW_OK;
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(ld, n, "exception02: expected a list");
    for (yaml_node_item_t *i = n->data.sequence.items.start;
         i < n->data.sequence.items.top; i++) {
        int rc = parse_illegal(ld, node_at(ld, *i), spec);
        if (rc != GW_OK)
            return rc;
    }
    return GW_OK;
}

static int parse_ids(const struct loader *ld, const yaml_node_t *n,
                     bool ids[SIM_MAX_UNIT + 1])
{
    if (n->type == YAML_SCALAR_NODE) {
        if (sim__parse_ids(scalar(n), ids) != GW_OK)
            return fail(ld, n, "ids: expected unit ids 1..255 like 1-10,12");
        return GW_OK;
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(ld, n, "ids: expected a list or a range");
    for (yaml_node_item_t *i = n->data.sequence.items.start;
         i < n->data.sequence.items.top; i++) {
        int rc = parse_ids(ld, node_at(ld, *i), ids);
        if (rc != GW_OK)
            return rc;
    }
    return GW_OK;
}

static const char *const table_keys[SIM_N_TABLES] = {
    [SIM_COILS] = "coils",
    [SIM_DISCRETE] = "discrete",
    [SIM_INPUT] = "input",
    [SIM_HOLDING] = "holding",
};

/* Fills spec (whose id is set) from a unit mapping. */
static int parse_unit_body(const struct loader *ld, const yaml_node_t *n,
                           struct sim_unit_spec *spec)
{
    int rc = GW_OK;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         rc == GW_OK && p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node_at(ld, p->key), *vn = node_at(ld, p->value);
        const char *k = scalar(kn);
        unsigned long v = 0;
        bool b;
        int t = -1;
        for (int j = 0; j < SIM_N_TABLES; j++) {
            if (k && strcmp(k, table_keys[j]) == 0)
                t = j;
        }
        if (!k)
            return fail(ld, kn, "unit: keys must be plain text");
        if (strcmp(k, "id") == 0 || strcmp(k, "ids") == 0)
            continue;
        if (t >= 0) {
            rc = parse_table(ld, vn, spec, (enum sim_table)t, k);
        } else if (strcmp(k, "defaults") == 0 || strcmp(k, "dead") == 0) {
            if (parse_bool(scalar(vn), &b) != GW_OK)
                return fail(ld, vn, "%s: expected true or false", k);
            if (k[1] == 'e' && k[2] == 'f')
                spec->defaults = b;
            else
                spec->dead = b;
        } else if (strcmp(k, "slow") == 0) {
            rc = get_duration(ld, vn, "slow", &spec->slow_ms);
        } else if (strcmp(k, "exception02") == 0) {
            rc = parse_illegal(ld, vn, spec);
        } else if (strcmp(k, "max_registers") == 0) {
            rc = get_uint(ld, vn, "max_registers", 125, &v);
            if (rc == GW_OK && v == 0)
                return fail(ld, vn, "max_registers: must be 1..125");
            spec->max_registers = (uint16_t)v;
        } else {
            return fail(ld, kn, "unit: unknown key '%s'", k);
        }
    }
    return rc;
}

/* Copies the body of `from` into a fresh spec for another id. */
static int spec_copy(const struct sim_unit_spec *from, struct sim_unit_spec *to)
{
    to->defaults = from->defaults;
    to->dead = from->dead;
    to->slow_ms = from->slow_ms;
    to->max_registers = from->max_registers;
    for (size_t k = 0; k < from->n_illegal; k++) {
        int rc = sim_unit_spec_add_illegal(to, from->illegal[k].lo,
                                           from->illegal[k].hi);
        if (rc != GW_OK)
            return rc;
    }
    for (size_t k = 0; k < from->n_entries; k++) {
        struct sim_entry e = from->entries[k];
        e.data = malloc(e.count * sizeof(uint16_t));
        if (!e.data)
            return GW_ENOMEM;
        memcpy(e.data, from->entries[k].data, e.count * sizeof(uint16_t));
        if (e.has_live) /* each unit gets its own random sequence */
            e.live.wave.state ^= (uint64_t)to->id << 40;
        int rc = sim_unit_spec_add(to, &e);
        if (rc != GW_OK)
            return rc;
    }
    return GW_OK;
}

static int parse_unit(const struct loader *ld, const yaml_node_t *n,
                      struct sim_config *cfg)
{
    bool ids[SIM_MAX_UNIT + 1] = {false};
    const yaml_node_t *id_n = NULL;
    struct sim_unit_spec tmpl = {0};
    int rc = GW_OK;
    if (n->type != YAML_MAPPING_NODE)
        return fail(ld, n, "units: each item is a mapping");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         p < n->data.mapping.pairs.top; p++) {
        const char *k = scalar(node_at(ld, p->key));
        if (k && (strcmp(k, "id") == 0 || strcmp(k, "ids") == 0)) {
            if (id_n)
                return fail(ld, node_at(ld, p->key),
                            "unit: give id or ids once");
            id_n = node_at(ld, p->value);
        }
    }
    if (!id_n)
        return fail(ld, n, "unit: id (or ids) is required");
    rc = parse_ids(ld, id_n, ids);
    if (rc != GW_OK)
        return rc;
    unsigned first = 0;
    for (unsigned id = 1; id <= SIM_MAX_UNIT; id++) {
        if (ids[id] && cfg->specs[id])
            return fail(ld, id_n, "unit %u is defined twice", id);
        if (ids[id] && !first)
            first = id;
    }
    tmpl.id = (uint8_t)first;
    rc = parse_unit_body(ld, n, &tmpl);
    for (unsigned id = 1; rc == GW_OK && id <= SIM_MAX_UNIT; id++) {
        if (!ids[id])
            continue;
        struct sim_unit_spec *s = sim__spec_get(cfg, (uint8_t)id);
        rc = s ? spec_copy(&tmpl, s) : GW_ENOMEM;
    }
    sim_unit_spec_clear(&tmpl);
    return rc;
}

int sim__yaml_load(struct sim_config *cfg, const char *path, FILE *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    struct loader ld = {.doc = &doc, .path = path, .err = err};
    bool parser_open = false, doc_open = false;
    int rc = GW_OK;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(err, "%s: cannot open: %s\n", path, strerror(errno));
        return GW_EIO;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = GW_ENOMEM;
        goto out;
    }
    parser_open = true;
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        fprintf(err, "%s:%lu:%lu: %s\n", path,
                (unsigned long)parser.problem_mark.line + 1,
                (unsigned long)parser.problem_mark.column + 1,
                parser.problem ? parser.problem : "YAML error");
        rc = GW_EPARSE;
        goto out;
    }
    doc_open = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        fprintf(err, "%s: empty file\n", path);
        rc = GW_ECONFIG;
        goto out;
    }
    if (root->type != YAML_MAPPING_NODE) {
        rc = fail(&ld, root, "expected a mapping with a 'units' list");
        goto out;
    }
    const yaml_node_t *units = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top; p++) {
        const char *k = scalar(node_at(&ld, p->key));
        if (k && strcmp(k, "units") == 0) {
            units = node_at(&ld, p->value);
        } else {
            rc = fail(&ld, node_at(&ld, p->key), "unknown key '%s'",
                      k ? k : "?");
            goto out;
        }
    }
    if (!units || units->type != YAML_SEQUENCE_NODE) {
        rc = fail(&ld, units ? units : root, "units: expected a list");
        goto out;
    }
    for (yaml_node_item_t *i = units->data.sequence.items.start;
         rc == GW_OK && i < units->data.sequence.items.top; i++)
        rc = parse_unit(&ld, node_at(&ld, *i), cfg);
out:
    if (doc_open)
        yaml_document_delete(&doc);
    if (parser_open)
        yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}
