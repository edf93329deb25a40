/* cfg_schema.c - the schema tables of the device map and the generic
 * walker that decodes a YAML node tree into raw structs with them.
 *
 * A section or a key is a table entry: key, kind, offsetof target, range,
 * required flag, default (as YAML text, decoded by the same code), enum
 * names, sub-schema.  The walker never stops at the first problem; every
 * error goes to the error list with its mark and key path. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cfg_int.h"
#include "gw_err.h"

/* ---- name tables --------------------------------------------------------- */

const char *const cfg__table_names[] = {"coil", "discrete", "input", "holding",
                                        NULL};
const char *const cfg__type_names[] = {
    "bool",   "bit",     "int16",   "uint16", "int32", "uint32", "int64",
    "uint64", "float32", "float64", "string", "bcd16", "bcd32",  NULL};
const char *const cfg__packing_names[] = {"hi-lo", "lo-hi", "hi-only",
                                          "lo-only", NULL};
const char *const cfg__link_type_names[] = {"tcp", "rtu", "rtu-over-tcp", NULL};
const char *const cfg__parity_names[] = {"none", "even", "odd", NULL};
const char *const cfg__byte_order_names[] = {"ABCD", "CDAB", "BADC", "DCBA",
                                             NULL};
const char *const cfg__write_fc_names[] = {"auto", "5", "6", "15", "16", NULL};
const char *const cfg__access_model_names[] = {
    "open", "presence", "roster", "authorize", "whitelist", NULL};
const char *const cfg__notification_type_names[] = {"headline", "normal", NULL};
const char *const cfg__send_last_names[] = {"never", "on_sub",
                                            "on_sub_and_presence", NULL};
const char *const cfg__delivery_names[] = {"latest", "every", NULL};

/* ---- schema tables ----------------------------------------------------- */

#define F(st, k, kind_, member)                                                \
    .key = k, .kind = kind_, .offset = offsetof(st, member)

/* An `events:` rule: no defaults, a key not written is inherited. */
#define E struct cfg__raw_event_rule
static const struct cfg__field event_rule_fields[] = {
    {F(E, "enabled", CFG__BOOL, enabled)},
    {F(E, "deadband", CFG__AMOUNT, deadband)},
    {F(E, "min_interval", CFG__DURATION, min_interval_ms), .min = 0,
     .max = 86400000},
    {F(E, "max_interval", CFG__DURATION, max_interval_ms), .min = 0,
     .max = 86400000},
};
#undef E

const struct cfg__schema cfg__schema_event_rule = {
    "an events rule", sizeof(struct cfg__raw_event_rule), event_rule_fields,
    sizeof(event_rule_fields) / sizeof(event_rule_fields[0])};

#define P struct cfg__raw_point
static const struct cfg__field point_fields[] = {
    {F(P, "name", CFG__STRING, name), .required = true, .is_name = true},
    {F(P, "table", CFG__ENUM, table), .names = cfg__table_names},
    {F(P, "address", CFG__INT, address), .required = true},
    {F(P, "type", CFG__ENUM, type), .names = cfg__type_names},
    {F(P, "bit", CFG__INT, bit), .min = 0, .max = 15},
    {F(P, "length", CFG__INT, length), .min = 1, .max = CFG_MAX_READ_REGISTERS},
    {F(P, "packing", CFG__ENUM, packing), .names = cfg__packing_names,
     .def = "hi-lo"},
    {F(P, "order", CFG__STRING, order)},
    {F(P, "scale", CFG__DOUBLE, scale), .def = "1"},
    {F(P, "offset", CFG__DOUBLE, offset), .def = "0"},
    {F(P, "decimals", CFG__INT, decimals), .min = 0, .max = 15},
    {F(P, "unit", CFG__STRING, unit)},
    {F(P, "description", CFG__STRING, description)},
    {F(P, "writable", CFG__BOOL, writable), .def = "false"},
    {F(P, "min", CFG__DOUBLE, min)},
    {F(P, "max", CFG__DOUBLE, max)},
    {F(P, "write_fc", CFG__ENUM, write_fc), .names = cfg__write_fc_names,
     .def = "auto"},
    {F(P, "verify", CFG__BOOL, verify), .def = "false"},
    {F(P, "poll", CFG__STRING, poll)},
    {F(P, "enum", CFG__INTMAP, labels)},
    {F(P, "events", CFG__OBJECT, events), .sub = &cfg__schema_event_rule},
};
#undef P

const struct cfg__schema cfg__schema_point = {
    "a point", sizeof(struct cfg__raw_point), point_fields,
    sizeof(point_fields) / sizeof(point_fields[0])};

/* Unit settings a template may carry (same ranges as on the unit). */
#define UNIT_SETTINGS(S)                                                       \
    {F(S, "byte_order", CFG__ENUM, byte_order),                                \
     .names = cfg__byte_order_names},                                          \
        {F(S, "max_registers", CFG__INT, max_registers), .min = 1,             \
         .max = CFG_MAX_READ_REGISTERS},                                       \
        {F(S, "max_bits", CFG__INT, max_bits), .min = 1,                       \
         .max = CFG_MAX_READ_BITS},                                            \
        {F(S, "max_gap", CFG__INT, max_gap), .min = 0,                         \
         .max = CFG_MAX_READ_REGISTERS - 1},                                   \
        {F(S, "single_register", CFG__BOOL, single_register)},                 \
        {F(S, "timeout", CFG__DURATION, timeout_ms), .min = 10, .max = 60000}, \
        {F(S, "retries", CFG__INT, retries), .min = 0, .max = 10},             \
        {F(S, "points", CFG__LIST, points), .sub = &cfg__schema_point},        \
    {                                                                          \
        F(S, "events", CFG__OBJECT, events), .sub = &cfg__schema_event_rule    \
    }

#define T struct cfg__raw_template
static const struct cfg__field template_fields[] = {
    {F(T, "name", CFG__STRING, name), .required = true, .is_name = true},
    {F(T, "description", CFG__STRING, description)},
    UNIT_SETTINGS(T),
};
#undef T

const struct cfg__schema cfg__schema_template = {
    "a template", sizeof(struct cfg__raw_template), template_fields,
    sizeof(template_fields) / sizeof(template_fields[0])};

#define U struct cfg__raw_unit
static const struct cfg__field unit_fields[] = {
    {F(U, "name", CFG__STRING, name), .required = true, .is_name = true},
    {F(U, "id", CFG__UINT, id), .required = true, .min = 0, .max = 255},
    {F(U, "template", CFG__STRING, template_name)},
    {F(U, "description", CFG__STRING, description)},
    {F(U, "poll", CFG__STRING, poll)},
    UNIT_SETTINGS(U),
};
#undef U

const struct cfg__schema cfg__schema_unit = {
    "a unit", sizeof(struct cfg__raw_unit), unit_fields,
    sizeof(unit_fields) / sizeof(unit_fields[0])};

#define L struct cfg__raw_link
static const struct cfg__field link_fields[] = {
    {F(L, "name", CFG__STRING, name), .required = true, .is_name = true},
    {F(L, "type", CFG__ENUM, type), .required = true,
     .names = cfg__link_type_names},
    {F(L, "host", CFG__STRING, host)},
    {F(L, "port", CFG__UINT, port), .min = 1, .max = 65535, .def = "502"},
    {F(L, "device", CFG__STRING, device)},
    {F(L, "baud", CFG__UINT, baud), .def = "19200"},
    {F(L, "parity", CFG__ENUM, parity), .names = cfg__parity_names,
     .def = "even"},
    {F(L, "data_bits", CFG__INT, data_bits), .min = 7, .max = 8, .def = "8"},
    {F(L, "stop_bits", CFG__INT, stop_bits), .min = 1, .max = 2, .def = "1"},
    {F(L, "rs485", CFG__BOOL, rs485), .def = "false"},
    {F(L, "timeout", CFG__DURATION, timeout_ms), .min = 10, .max = 60000,
     .def = "1s"},
    {F(L, "turnaround", CFG__DURATION, turnaround_ms), .min = 0, .max = 10000,
     .def = "0ms"},
    {F(L, "delay", CFG__DURATION, delay_ms), .min = 0, .max = 10000,
     .def = "0ms"},
    {F(L, "address_base", CFG__INT, address_base), .min = 0, .max = 1,
     .def = "0"},
    {F(L, "units", CFG__LIST, units), .sub = &cfg__schema_unit},
};
#undef L

const struct cfg__schema cfg__schema_link = {
    "a link", sizeof(struct cfg__raw_link), link_fields,
    sizeof(link_fields) / sizeof(link_fields[0])};

#define G struct cfg__raw_poll_group
static const struct cfg__field poll_group_fields[] = {
    {F(G, "name", CFG__STRING, name), .required = true, .is_name = true},
    {F(G, "interval", CFG__DURATION, interval_ms), .required = true, .min = 10,
     .max = 86400000},
};
#undef G

const struct cfg__schema cfg__schema_poll_group = {
    "a poll group", sizeof(struct cfg__raw_poll_group), poll_group_fields,
    sizeof(poll_group_fields) / sizeof(poll_group_fields[0])};

static const char *const tls_mode_names[] = {"starttls", "direct", NULL};

#define X struct cfg__raw_xmpp
static const struct cfg__field xmpp_fields[] = {
    {F(X, "jid", CFG__STRING, jid), .required = true},
    {F(X, "password", CFG__STRING, password)},
    {F(X, "password_file", CFG__STRING, password_file)},
    {F(X, "resource", CFG__STRING, resource)},
    {F(X, "host", CFG__STRING, host)},
    {F(X, "port", CFG__UINT, port), .min = 1, .max = 65535},
    {F(X, "tls", CFG__ENUM, tls), .names = tls_mode_names, .def = "starttls"},
    {F(X, "ca_file", CFG__STRING, ca_file)},
    {F(X, "insecure_server", CFG__STRING, insecure_server)},
    {F(X, "sasl_mechanisms", CFG__STRLIST, sasl_mechanisms)},
    {F(X, "allow_plain", CFG__BOOL, allow_plain), .def = "false"},
    {F(X, "keepalive", CFG__DURATION, keepalive_ms), .min = 1000,
     .max = 3600000, .def = "60s"},
    {F(X, "ping_timeout", CFG__DURATION, ping_timeout_ms), .min = 1000,
     .max = 600000, .def = "30s"},
    {F(X, "reconnect_min", CFG__DURATION, reconnect_min_ms), .min = 100,
     .max = 3600000, .def = "1s"},
    {F(X, "reconnect_max", CFG__DURATION, reconnect_max_ms), .min = 1000,
     .max = 86400000, .def = "5m"},
    {F(X, "stanza_max", CFG__UINT, stanza_max), .min = 10000, .max = 16777216,
     .def = "262144"},
    {F(X, "status", CFG__STRING, status)},
    {F(X, "control_max_age", CFG__DURATION, control_max_age_ms), .min = 1000,
     .max = 86400000, .def = "60s"},
    {F(X, "control_max_writes", CFG__UINT, control_max_writes), .min = 1,
     .max = 1024, .def = "32"},
    {F(X, "control_max_bus_time", CFG__DURATION, control_max_bus_ms), .min = 10,
     .max = 600000, .def = "2s"},
};
#undef X

const struct cfg__schema cfg__schema_xmpp = {
    "the xmpp section", sizeof(struct cfg__raw_xmpp), xmpp_fields,
    sizeof(xmpp_fields) / sizeof(xmpp_fields[0])};

#define A struct cfg__raw_access
static const struct cfg__field access_fields[] = {
    {F(A, "readers", CFG__STRLIST, readers)},
    {F(A, "controllers", CFG__STRLIST, controllers)},
};
#undef A

const struct cfg__schema cfg__schema_access = {
    "the access section", sizeof(struct cfg__raw_access), access_fields,
    sizeof(access_fields) / sizeof(access_fields[0])};

#define S struct cfg__raw_store
static const struct cfg__field store_fields[] = {
    {F(S, "history", CFG__INT, history), .min = 0, .max = 100000, .def = "0"},
    {F(S, "fresh", CFG__DURATION, fresh_ms), .min = 0, .max = 86400000,
     .def = "0ms"},
};
#undef S

const struct cfg__schema cfg__schema_store = {
    "the store section", sizeof(struct cfg__raw_store), store_fields,
    sizeof(store_fields) / sizeof(store_fields[0])};

#define N struct cfg__raw_events_node
static const struct cfg__field events_node_fields[] = {
    {F(N, "access_model", CFG__ENUM, access_model),
     .names = cfg__access_model_names},
    {F(N, "max_items", CFG__UINT, max_items), .min = 1, .max = 256, .def = "1"},
    {F(N, "persist_items", CFG__BOOL, persist_items), .def = "false"},
    {F(N, "notification_type", CFG__ENUM, notification_type),
     .names = cfg__notification_type_names, .def = "headline"},
    {F(N, "send_last_published_item", CFG__ENUM, send_last),
     .names = cfg__send_last_names, .def = "on_sub_and_presence"},
};
#undef N

const struct cfg__schema cfg__schema_events_node = {
    "the events node configuration", sizeof(struct cfg__raw_events_node),
    events_node_fields,
    sizeof(events_node_fields) / sizeof(events_node_fields[0])};

#define P struct cfg__raw_spool
static const struct cfg__field spool_fields[] = {
    {F(P, "dir", CFG__STRING, dir)},
    /* 64 KiB .. 1 TiB (small spools: tiny flash, tests) */
    {F(P, "max_bytes", CFG__SIZE, max_bytes), .min = 65536,
     .max = 1099511627776, .def = "64MiB"},
    /* 0 = no age bound; at most 49 days (the largest duration) */
    {F(P, "max_age", CFG__DURATION, max_age_ms), .min = 0, .max = 4294967295,
     .def = "0ms"},
    {F(P, "fsync", CFG__STRING, fsync), .def = "1s"},
};
#undef P

const struct cfg__schema cfg__schema_spool = {
    "the events spool", sizeof(struct cfg__raw_spool), spool_fields,
    sizeof(spool_fields) / sizeof(spool_fields[0])};

#define V struct cfg__raw_events
static const struct cfg__field events_fields[] = {
    {F(V, "service", CFG__STRING, service)},
    {F(V, "node_prefix", CFG__STRING, node_prefix)},
    {F(V, "node", CFG__OBJECT, node), .sub = &cfg__schema_events_node},
    {F(V, "window", CFG__UINT, window), .min = 1, .max = 256, .def = "16"},
    {F(V, "publish_timeout", CFG__DURATION, publish_timeout_ms), .min = 1000,
     .max = 600000, .def = "10s"},
    {F(V, "defaults", CFG__OBJECT, defaults), .sub = &cfg__schema_event_rule},
    {F(V, "delivery", CFG__ENUM, delivery), .names = cfg__delivery_names,
     .def = "latest"},
    {F(V, "spool", CFG__OBJECT, spool), .sub = &cfg__schema_spool},
};
#undef V

const struct cfg__schema cfg__schema_events = {
    "the events section", sizeof(struct cfg__raw_events), events_fields,
    sizeof(events_fields) / sizeof(events_fields[0])};

/* The top level: one entry a section. */
#define R struct cfg__raw_root
static const struct cfg__field root_fields[] = {
    {F(R, "poll_groups", CFG__LIST, poll_groups),
     .sub = &cfg__schema_poll_group},
    {F(R, "templates", CFG__LIST, templates), .sub = &cfg__schema_template},
    {F(R, "links", CFG__LIST, links), .sub = &cfg__schema_link},
    {F(R, "xmpp", CFG__OBJECT, xmpp), .sub = &cfg__schema_xmpp},
    {F(R, "access", CFG__OBJECT, access), .sub = &cfg__schema_access},
    {F(R, "store", CFG__OBJECT, store), .sub = &cfg__schema_store},
    {F(R, "events", CFG__OBJECT, events), .sub = &cfg__schema_events},
};
#undef R

const struct cfg__schema cfg__schema_root = {
    "the device map", sizeof(struct cfg__raw_root), root_fields,
    sizeof(root_fields) / sizeof(root_fields[0])};

#undef F

/* ---- helpers ------------------------------------------------------------ */

bool cfg__valid_name(const char *s)
{
    size_t n = 0;
    if (!s || !s[0] || s[0] == '_' || s[0] == '-')
        return false;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok || n >= CFG_MAX_NAME)
            return false;
    }
    return true;
}

int cfg__parse_duration(const char *s, uint32_t *ms, const char **why)
{
    /* <digits>[.<digits>]<unit>, computed exactly in integers. */
    const char *p = s;
    uint64_t whole = 0, frac = 0, frac_div = 1;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (whole > 1000000000000ull) {
            *why = "too large";
            return -1;
        }
        whole = whole * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (frac_div < 1000000000ull) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                frac_div *= 10;
            } else if (*p != '0') {
                *why = "is not a whole number of milliseconds";
                return -1;
            }
            p++;
            digits++;
        }
    }
    if (digits == 0) {
        *why = "is not a duration (a number and a unit: ms, s, m or h, "
               "e.g. 500ms, 1.5s, 5m)";
        return -1;
    }
    uint64_t mult;
    if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "m") == 0 || strcmp(p, "min") == 0)
        mult = 60000;
    else if (strcmp(p, "h") == 0)
        mult = 3600000;
    else if (*p == '\0') {
        *why = "needs a unit (ms, s, m or h), e.g. 500ms or 1s";
        return -1;
    } else {
        *why = "has an unknown unit (use ms, s, m or h, e.g. 500ms, 1.5s, 5m)";
        return -1;
    }
    uint64_t total = whole * mult;
    if (total > UINT32_MAX) {
        *why = "too large";
        return -1;
    }
    if ((frac * mult) % frac_div != 0) {
        *why = "is not a whole number of milliseconds";
        return -1;
    }
    total += frac * mult / frac_div;
    if (total > UINT32_MAX) {
        *why = "too large";
        return -1;
    }
    *ms = (uint32_t)total;
    return 0;
}

int cfg__parse_size(const char *s, uint64_t *bytes, const char **why)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"KiB", 1024ull},
        {"MiB", 1024ull * 1024},
        {"GiB", 1024ull * 1024 * 1024},
        {"TiB", 1024ull * 1024 * 1024 * 1024},
        {"kB", 1000ull},
        {"KB", 1000ull},
        {"MB", 1000ull * 1000},
        {"GB", 1000ull * 1000 * 1000},
        {"TB", 1000ull * 1000 * 1000 * 1000},
    };
    const char *p = s;
    uint64_t whole = 0;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (whole > 100000000000000ull) {
            *why = "is too large";
            return -1;
        }
        whole = whole * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (digits == 0) {
        *why = "is not a size (a whole number of bytes, or with a unit: "
               "KiB, MiB, GiB, TiB, e.g. 64MiB)";
        return -1;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].name) != 0)
            continue;
        if (whole > UINT64_MAX / units[i].mult) {
            *why = "is too large";
            return -1;
        }
        *bytes = whole * units[i].mult;
        return 0;
    }
    *why = "has an unknown unit (use B, KiB, MiB, GiB or TiB, e.g. 64MiB)";
    return -1;
}

void cfg__format_ms(uint64_t ms, char *buf, size_t size)
{
    if (ms && ms % 3600000 == 0)
        snprintf(buf, size, "%" PRIu64 "h", ms / 3600000);
    else if (ms && ms % 60000 == 0)
        snprintf(buf, size, "%" PRIu64 "m", ms / 60000);
    else if (ms && ms % 1000 == 0)
        snprintf(buf, size, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(buf, size, "%" PRIu64 "ms", ms);
}

int cfg__field_index(const struct cfg__schema *schema, const char *key)
{
    for (size_t i = 0; i < schema->n_fields; i++) {
        if (strcmp(schema->fields[i].key, key) == 0)
            return (int)i;
    }
    return -1;
}

bool cfg__has(const struct cfg__schema *schema, const void *obj,
              const char *key)
{
    int i = cfg__field_index(schema, key);
    const struct cfg__obj *o = obj;
    return i >= 0 && (o->set & (1u << i));
}

bool cfg__is_bad(const struct cfg__schema *schema, const void *obj,
                 const char *key)
{
    int i = cfg__field_index(schema, key);
    const struct cfg__obj *o = obj;
    return i >= 0 && (o->bad & (1u << i));
}

struct cfg_mark cfg__mark(const struct cfg__schema *schema, const void *obj,
                          const char *key)
{
    const struct cfg__obj *o = obj;
    int i = key ? cfg__field_index(schema, key) : -1;
    if (i >= 0 && (o->set & (1u << i)))
        return o->vmark[i];
    return o->mark;
}

static void add_error(struct cfg__ctx *ctx, struct cfg_mark mark,
                      const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_error(struct cfg__ctx *ctx, struct cfg_mark mark,
                      const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (cfg__verror(ctx->errs, mark, path, fmt, ap) != GW_OK)
        ctx->oom = true;
    va_end(ap);
}

void cfg__field_error(struct cfg__ctx *ctx, const struct cfg__schema *schema,
                      const void *obj, const char *key, const char *fmt, ...)
{
    const struct cfg__obj *o = obj;
    char path[CFG__PATH_MAX + 80];
    if (key)
        snprintf(path, sizeof(path), "%s%s%s", o->path ? o->path : "",
                 o->path && o->path[0] ? "." : "", key);
    else
        snprintf(path, sizeof(path), "%s", o->path ? o->path : "");
    va_list ap;
    va_start(ap, fmt);
    if (cfg__verror(ctx->errs, cfg__mark(schema, obj, key), path, fmt, ap) !=
        GW_OK)
        ctx->oom = true;
    va_end(ap);
}

/* How a node that is not what we wanted looks, for messages. */
static void describe(const struct cfg__node *n, char *buf, size_t size)
{
    if (n->kind == CFG__NODE_MAP)
        snprintf(buf, size, "a mapping");
    else if (n->kind == CFG__NODE_SEQ)
        snprintf(buf, size, "a list");
    else if (cfg__node_is_null(n))
        snprintf(buf, size, "no value");
    else if (!n->plain)
        snprintf(buf, size, "a quoted string \"%.40s\"", n->text);
    else
        snprintf(buf, size, "'%.40s'", n->text);
}

static const char *a_kind(enum cfg__kind k)
{
    switch (k) {
    case CFG__STRING:
        return "a text value";
    case CFG__INT:
    case CFG__UINT:
        return "an integer";
    case CFG__BOOL:
        return "true or false";
    case CFG__DOUBLE:
        return "a number";
    case CFG__DURATION:
        return "a duration (e.g. 500ms, 1s)";
    case CFG__ENUM:
        return "one of the names listed below";
    case CFG__LIST:
        return "a list";
    case CFG__OBJECT:
    case CFG__INTMAP:
        return "a mapping";
    case CFG__STRLIST:
        return "a list of text values";
    case CFG__AMOUNT:
        return "a number or a percentage (e.g. 0.5 or 2%)";
    case CFG__SIZE:
        return "a size (bytes, or with a unit: 512KiB, 64MiB, 1GiB)";
    }
    return "?";
}

static void wrong_type(struct cfg__ctx *ctx, const struct cfg__field *f,
                       const struct cfg__node *n, const char *path)
{
    char got[80];
    describe(n, got, sizeof(got));
    if (f->kind == CFG__ENUM) {
        char list[256];
        size_t len = 0;
        list[0] = '\0';
        for (size_t i = 0; f->names[i] && len < sizeof(list); i++) {
            int w = snprintf(list + len, sizeof(list) - len, "%s%s",
                             i ? ", " : "", f->names[i]);
            if (w < 0)
                break;
            len += (size_t)w;
        }
        add_error(ctx, n->mark, path, "expected one of %s, got %s", list, got);
        return;
    }
    add_error(ctx, n->mark, path, "expected %s, got %s", a_kind(f->kind), got);
}

/* Integer text: optional sign, decimal or 0x hex, nothing else. */
static bool parse_i64(const char *s, int64_t *v, bool *range)
{
    const char *p = s + (s[0] == '-' || s[0] == '+');
    int base = (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) ? 16 : 10;
    if (!(p[0] >= '0' && p[0] <= '9'))
        return false;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, base);
    if (*end)
        return false;
    *range = errno == ERANGE;
    *v = x;
    return true;
}

static bool parse_u64(const char *s, uint64_t *v, bool *range)
{
    const char *p = s + (s[0] == '+');
    int base = (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) ? 16 : 10;
    if (!(p[0] >= '0' && p[0] <= '9'))
        return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, base);
    if (*end)
        return false;
    *range = errno == ERANGE;
    *v = x;
    return true;
}

/* Levenshtein distance, capped; for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32)
        return 99;
    size_t row[33];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static void unknown_key(struct cfg__ctx *ctx, const struct cfg__schema *s,
                        const struct cfg__node *key, const char *path)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < s->n_fields; i++) {
        size_t d = edit_distance(key->text, s->fields[i].key);
        if (d < best_d) {
            best_d = d;
            best = s->fields[i].key;
        }
    }
    if (best) {
        add_error(ctx, key->mark, path,
                  "unknown key '%.64s' in %s (did you mean '%s'?)", key->text,
                  s->what, best);
        return;
    }
    char list[512];
    size_t len = 0;
    list[0] = '\0';
    for (size_t i = 0; i < s->n_fields && len < sizeof(list); i++) {
        int w = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
                         s->fields[i].key);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    add_error(ctx, key->mark, path,
              "unknown key '%.64s' in %s (expected one of %s)", key->text,
              s->what, list);
}

static void *alloc_zero(struct cfg__ctx *ctx, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        ctx->oom = true;
    return p;
}

static char *dup_text(struct cfg__ctx *ctx, const char *s)
{
    char *d = strdup(s);
    if (!d)
        ctx->oom = true;
    return d;
}

static int label_cmp(const void *a, const void *b)
{
    const struct cfg_enum_label *x = a, *y = b;
    return x->value < y->value ? -1 : (x->value > y->value);
}

static bool decode_intmap(struct cfg__ctx *ctx, const struct cfg__node *n,
                          const char *path, struct cfg__intmap *out)
{
    size_t pairs = n->n / 2;
    out->items = alloc_zero(ctx, pairs, sizeof(*out->items));
    if (!out->items)
        return false;
    bool ok = true;
    for (size_t i = 0; i < pairs; i++) {
        const struct cfg__node *k = n->kids[2 * i], *v = n->kids[2 * i + 1];
        char kpath[CFG__PATH_MAX + 80];
        snprintf(kpath, sizeof(kpath), "%s.%.64s", path, k->text);
        int64_t value;
        bool range = false;
        if (!k->plain || !parse_i64(k->text, &value, &range) || range) {
            add_error(ctx, k->mark, kpath,
                      "enum keys must be integers, got '%.40s'", k->text);
            ok = false;
            continue;
        }
        if (v->kind != CFG__NODE_SCALAR || cfg__node_is_null(v) ||
            v->len == 0 || strlen(v->text) != v->len) {
            char got[80];
            describe(v, got, sizeof(got));
            add_error(ctx, v->mark, kpath, "expected a label text, got %s",
                      got);
            ok = false;
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < out->n; j++) {
            if (out->items[j].value == value) {
                add_error(ctx, k->mark, kpath,
                          "enum value %" PRId64 " is labelled twice", value);
                dup = true;
                ok = false;
                break;
            }
        }
        if (dup)
            continue;
        char *label = dup_text(ctx, v->text);
        if (!label)
            return false;
        out->items[out->n].value = value;
        out->items[out->n].label = label;
        out->n++;
    }
    qsort(out->items, out->n, sizeof(*out->items), label_cmp);
    return ok;
}

/* Decodes one value into its target.  Returns false when the value is
 * invalid (the error is reported). */
static bool decode_value(struct cfg__ctx *ctx, const struct cfg__field *f,
                         const struct cfg__node *n, const char *path,
                         void *target)
{
    if (f->kind == CFG__LIST) {
        struct cfg__list *list = target;
        if (cfg__node_is_null(n))
            return true; /* "points:" with nothing under it: empty */
        if (n->kind != CFG__NODE_SEQ) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        list->items = alloc_zero(ctx, n->n, f->sub->size);
        if (!list->items)
            return false;
        list->n = n->n;
        for (size_t i = 0; i < n->n; i++) {
            char ipath[CFG__PATH_MAX];
            snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
            cfg__decode(ctx, f->sub, n->kids[i], ipath,
                        (char *)list->items + i * f->sub->size);
        }
        return true;
    }
    if (f->kind == CFG__OBJECT) {
        if (n->kind != CFG__NODE_MAP) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        void *obj = alloc_zero(ctx, 1, f->sub->size);
        if (!obj)
            return false;
        cfg__decode(ctx, f->sub, n, path, obj);
        *(void **)target = obj;
        return true;
    }
    if (f->kind == CFG__STRLIST) {
        struct cfg__strlist *list = target;
        if (cfg__node_is_null(n))
            return true;
        if (n->kind != CFG__NODE_SEQ) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        list->items = alloc_zero(ctx, n->n, sizeof(*list->items));
        list->marks = alloc_zero(ctx, n->n, sizeof(*list->marks));
        if (!list->items || !list->marks)
            return false;
        bool ok = true;
        for (size_t i = 0; i < n->n; i++) {
            const struct cfg__node *item = n->kids[i];
            char ipath[CFG__PATH_MAX];
            snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
            if (item->kind != CFG__NODE_SCALAR || cfg__node_is_null(item) ||
                item->len == 0 || strlen(item->text) != item->len) {
                char got[80];
                describe(item, got, sizeof(got));
                add_error(ctx, item->mark, ipath,
                          "expected a text value, got %s", got);
                ok = false;
                continue;
            }
            char *d = dup_text(ctx, item->text);
            if (!d)
                return false;
            list->marks[list->n] = item->mark;
            list->items[list->n++] = d;
        }
        return ok;
    }
    if (f->kind == CFG__INTMAP) {
        if (n->kind != CFG__NODE_MAP) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        return decode_intmap(ctx, n, path, target);
    }
    if (n->kind != CFG__NODE_SCALAR || cfg__node_is_null(n)) {
        wrong_type(ctx, f, n, path);
        return false;
    }
    const char *s = n->text;
    switch (f->kind) {
    case CFG__STRING: {
        if (n->len == 0) {
            add_error(ctx, n->mark, path, "empty value");
            return false;
        }
        if (strlen(s) != n->len) {
            add_error(ctx, n->mark, path, "value contains a NUL character");
            return false;
        }
        if (f->is_name && !cfg__valid_name(s)) {
            add_error(ctx, n->mark, path,
                      "invalid name '%.64s' (use 1 to 64 letters, digits, "
                      "'_' or '-', starting with a letter or a digit)",
                      s);
            return false;
        }
        char *d = dup_text(ctx, s);
        if (!d)
            return false;
        free(*(char **)target);
        *(char **)target = d;
        return true;
    }
    case CFG__INT: {
        int64_t v;
        bool range = false;
        if (!n->plain || !parse_i64(s, &v, &range)) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        if (range || (f->min < f->max && (v < f->min || v > f->max))) {
            add_error(ctx, n->mark, path,
                      "value %.40s out of range %" PRId64 "..%" PRId64, s,
                      f->min, f->max);
            return false;
        }
        *(int64_t *)target = v;
        return true;
    }
    case CFG__UINT: {
        uint64_t v;
        bool range = false;
        if (!n->plain || !parse_u64(s, &v, &range)) {
            if (n->plain && s[0] == '-' && f->min < f->max) {
                add_error(ctx, n->mark, path,
                          "value %.40s out of range %" PRId64 "..%" PRId64, s,
                          f->min, f->max);
                return false;
            }
            wrong_type(ctx, f, n, path);
            return false;
        }
        if (range || (f->min < f->max &&
                      (v < (uint64_t)f->min || v > (uint64_t)f->max))) {
            add_error(ctx, n->mark, path,
                      "value %.40s out of range %" PRId64 "..%" PRId64, s,
                      f->min, f->max);
            return false;
        }
        *(uint64_t *)target = v;
        return true;
    }
    case CFG__BOOL:
        if (n->plain && (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 ||
                         strcmp(s, "TRUE") == 0)) {
            *(bool *)target = true;
            return true;
        }
        if (n->plain && (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 ||
                         strcmp(s, "FALSE") == 0)) {
            *(bool *)target = false;
            return true;
        }
        wrong_type(ctx, f, n, path);
        return false;
    case CFG__DOUBLE: {
        char *end;
        const char *p = s + (s[0] == '-' || s[0] == '+');
        if (!n->plain || !((p[0] >= '0' && p[0] <= '9') || p[0] == '.')) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        errno = 0;
        double v = strtod(s, &end);
        if (*end || end == s) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        if (!isfinite(v)) {
            add_error(ctx, n->mark, path, "%.40s is not a finite number", s);
            return false;
        }
        *(double *)target = v;
        return true;
    }
    case CFG__AMOUNT: {
        /* "0.5" (plain) or "2%" (plain or quoted) */
        struct cfg__amount *a = target;
        size_t len = strlen(s);
        bool percent = len > 0 && s[len - 1] == '%';
        char num[64];
        const char *p;
        if ((!percent && !n->plain) || len != n->len) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        if (len >= sizeof(num)) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        memcpy(num, s, len + 1);
        if (percent)
            num[len - 1] = '\0';
        p = num + (num[0] == '-' || num[0] == '+');
        if (!((p[0] >= '0' && p[0] <= '9') || p[0] == '.')) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        char *end;
        double v = strtod(num, &end);
        if (*end || end == num) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        if (!isfinite(v)) {
            add_error(ctx, n->mark, path, "%.40s is not a finite number", s);
            return false;
        }
        a->value = v;
        a->percent = percent;
        return true;
    }
    case CFG__DURATION: {
        uint32_t ms;
        const char *why = NULL;
        if (!n->plain) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        if (cfg__parse_duration(s, &ms, &why) != 0) {
            add_error(ctx, n->mark, path, "duration '%.40s' %s", s, why);
            return false;
        }
        if (f->min < f->max && (ms < f->min || ms > f->max)) {
            char lo[32], hi[32];
            cfg__format_ms((uint64_t)f->min, lo, sizeof(lo));
            cfg__format_ms((uint64_t)f->max, hi, sizeof(hi));
            add_error(ctx, n->mark, path, "duration %.40s out of range %s..%s",
                      s, lo, hi);
            return false;
        }
        *(uint32_t *)target = ms;
        return true;
    }
    case CFG__SIZE: {
        uint64_t v;
        const char *why = NULL;
        if (!n->plain) {
            wrong_type(ctx, f, n, path);
            return false;
        }
        if (cfg__parse_size(s, &v, &why) != 0) {
            add_error(ctx, n->mark, path, "size '%.40s' %s", s, why);
            return false;
        }
        if (f->min < f->max && (v < (uint64_t)f->min || v > (uint64_t)f->max)) {
            add_error(ctx, n->mark, path,
                      "size %.40s out of range %" PRId64 "..%" PRId64 " bytes",
                      s, f->min, f->max);
            return false;
        }
        *(uint64_t *)target = v;
        return true;
    }
    case CFG__ENUM:
        for (int i = 0; f->names[i]; i++) {
            if (strcmp(s, f->names[i]) == 0) {
                *(int *)target = i;
                return true;
            }
        }
        {
            char list[256];
            size_t len = 0;
            list[0] = '\0';
            for (size_t i = 0; f->names[i] && len < sizeof(list); i++) {
                int w = snprintf(list + len, sizeof(list) - len, "%s%s",
                                 i ? ", " : "", f->names[i]);
                if (w < 0)
                    break;
                len += (size_t)w;
            }
            add_error(ctx, n->mark, path,
                      "unknown %s '%.40s' (expected one of %s)", f->key, s,
                      list);
        }
        return false;
    default:
        break;
    }
    return false;
}

void cfg__decode(struct cfg__ctx *ctx, const struct cfg__schema *schema,
                 const struct cfg__node *node, const char *path, void *out)
{
    struct cfg__obj *obj = out;
    obj->mark = node->mark;
    obj->path = dup_text(ctx, path);
    if (schema->n_fields > CFG__MAX_FIELDS)
        abort(); /* a programming error in the tables */
    if (node->kind != CFG__NODE_MAP) {
        char got[80];
        describe(node, got, sizeof(got));
        add_error(ctx, node->mark, path, "expected %s (a mapping), got %s",
                  schema->what, got);
        obj->broken = true;
        return;
    }
    for (size_t i = 0; i + 1 < node->n; i += 2) {
        const struct cfg__node *key = node->kids[i], *val = node->kids[i + 1];
        char kpath[CFG__PATH_MAX + 80];
        snprintf(kpath, sizeof(kpath), "%s%s%.64s", path, path[0] ? "." : "",
                 key->text);
        int fi = strlen(key->text) == key->len
                     ? cfg__field_index(schema, key->text)
                     : -1;
        if (fi < 0) {
            unknown_key(ctx, schema, key, kpath);
            continue;
        }
        if (obj->set & (1u << fi))
            continue; /* duplicate key: already reported by the parser */
        const struct cfg__field *f = &schema->fields[fi];
        obj->set |= 1u << fi;
        obj->vmark[fi] = val->mark;
        if (!decode_value(ctx, f, val, kpath, (char *)out + f->offset))
            obj->bad |= 1u << fi;
    }
    for (size_t i = 0; i < schema->n_fields; i++) {
        const struct cfg__field *f = &schema->fields[i];
        if (obj->set & (1u << i))
            continue;
        if (f->required) {
            char kpath[CFG__PATH_MAX + 80];
            snprintf(kpath, sizeof(kpath), "%s%s%s", path, path[0] ? "." : "",
                     f->key);
            add_error(ctx, node->mark, kpath, "missing required key '%s' in %s",
                      f->key, schema->what);
            obj->broken = true;
            continue;
        }
        if (f->def) {
            struct cfg__node d;
            memset(&d, 0, sizeof(d));
            d.kind = CFG__NODE_SCALAR;
            d.mark = node->mark;
            d.text = (char *)(uintptr_t)f->def;
            d.len = strlen(f->def);
            d.plain = true;
            (void)decode_value(ctx, f, &d, path, (char *)out + f->offset);
        }
    }
}

void cfg__obj_free(const struct cfg__schema *schema, void *obj)
{
    if (!obj)
        return;
    struct cfg__obj *o = obj;
    free(o->path);
    o->path = NULL;
    for (size_t i = 0; i < schema->n_fields; i++) {
        const struct cfg__field *f = &schema->fields[i];
        void *t = (char *)obj + f->offset;
        switch (f->kind) {
        case CFG__STRING:
            free(*(char **)t);
            *(char **)t = NULL;
            break;
        case CFG__LIST: {
            struct cfg__list *l = t;
            for (size_t j = 0; j < l->n; j++)
                cfg__obj_free(f->sub, (char *)l->items + j * f->sub->size);
            free(l->items);
            l->items = NULL;
            l->n = 0;
            break;
        }
        case CFG__OBJECT:
            cfg__obj_free(f->sub, *(void **)t);
            free(*(void **)t);
            *(void **)t = NULL;
            break;
        case CFG__STRLIST: {
            struct cfg__strlist *l = t;
            for (size_t j = 0; j < l->n; j++)
                free(l->items[j]);
            free(l->items);
            free(l->marks);
            l->items = NULL;
            l->marks = NULL;
            l->n = 0;
            break;
        }
        case CFG__INTMAP: {
            struct cfg__intmap *m = t;
            for (size_t j = 0; j < m->n; j++)
                free(m->items[j].label);
            free(m->items);
            m->items = NULL;
            m->n = 0;
            break;
        }
        default:
            break;
        }
    }
}
