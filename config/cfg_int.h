/* cfg_int.h - internals shared by the config loader's files.
 *
 * Three stages, one file each:
 *   cfg_yaml.c    YAML text -> a small node tree with 1-based marks
 *                 (bounded; aliases, anchors and tags rejected);
 *   cfg_schema.c  node tree -> "raw" structs, driven by tables of field
 *                 descriptors (kind, offsetof target, range, default, ...);
 *                 the tables themselves live there too;
 *   cfg_load.c    raw structs -> the resolved struct cfg (templates,
 *                 defaults that depend on context, references, overlaps).
 *
 * Adding a top-level section (say `store:`) is adding table entries, not a
 * parser: a raw struct below, its field table in cfg_schema.c, one field in
 * struct cfg__raw_root plus one entry in the root table, one resolve hook in
 * cfg_load.c's hook table, and the model fields in cfg.h. */
#ifndef CFG_INT_H
#define CFG_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define CFG__MAX_FILE (16u * 1024u * 1024u) /* bytes */
#define CFG__MAX_DEPTH 64                   /* nested collections */
#define CFG__MAX_NODES 2000000u             /* nodes in one document */
#define CFG__MAX_FIELDS 32                  /* fields in one schema */
#define CFG__PATH_MAX 256                   /* key path in messages */
#define CFG__MAX_ERRORS 1000                /* kept; then one "too many" */

/* ---- errors ------------------------------------------------------------ */

/* Appends one error (message printf-style).  Exact duplicates (same mark,
 * path and message) are dropped, so checks that run once per unit using a
 * template report a template problem once.  Returns GW_OK or GW_ENOMEM. */
int cfg__error(struct cfg_errors *errs, struct cfg_mark mark, const char *path,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int cfg__verror(struct cfg_errors *errs, struct cfg_mark mark, const char *path,
                const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* Sorts errors by line and column, keeping the order of equal marks. */
void cfg__errors_sort(struct cfg_errors *errs);

/* ---- YAML node tree (cfg_yaml.c) --------------------------------------- */

enum cfg__node_kind {
    CFG__NODE_SCALAR,
    CFG__NODE_MAP,
    CFG__NODE_SEQ,
};

struct cfg__node {
    enum cfg__node_kind kind;
    struct cfg_mark mark; /* where the node starts */
    char *text;           /* scalar: NUL-terminated value (may hold NULs) */
    size_t len;           /* scalar: bytes in text */
    bool plain;           /* scalar: written without quotes or block style */
    /* seq: the items; map: key, value, key, value, ... (keys are scalars) */
    struct cfg__node **kids;
    size_t n;
    size_t cap;
};

/* Parses one YAML document.  On success *root is the document's top node
 * (NULL for an empty document) and the caller frees it with
 * cfg__node_free.  Duplicate keys are reported into errs but are not fatal
 * (the tree keeps both; the walker uses the first).  Syntax errors,
 * aliases, anchors, tags, non-scalar keys, more than one document, nesting
 * deeper than CFG__MAX_DEPTH and more than CFG__MAX_NODES nodes are
 * reported into errs and return GW_ECONFIG with *root NULL; GW_ENOMEM on
 * allocation failure. */
int cfg__yaml_parse(const char *data, size_t len, struct cfg__node **root,
                    struct cfg_errors *errs);
void cfg__node_free(struct cfg__node *node);

/* True when a plain scalar means "no value" (empty, ~, null, Null, NULL). */
bool cfg__node_is_null(const struct cfg__node *node);

/* ---- schema walker (cfg_schema.c) --------------------------------------- */

enum cfg__kind {
    CFG__STRING,   /* char * (strdup'd), non-empty, no NUL bytes */
    CFG__INT,      /* int64_t, decimal or 0x hex, range [min, max] */
    CFG__UINT,     /* uint64_t, decimal or 0x hex, range [min, max] */
    CFG__BOOL,     /* bool: true | false */
    CFG__DOUBLE,   /* double, finite */
    CFG__DURATION, /* uint32_t milliseconds, "<number><ms|s|m|h>" */
    CFG__ENUM,     /* int: index into names */
    CFG__LIST,     /* struct cfg__list of sub objects */
    CFG__OBJECT,   /* void *: one sub object (allocated) */
    CFG__INTMAP,   /* struct cfg__intmap: integer -> text */
    CFG__STRLIST,  /* struct cfg__strlist: a list of text values */
    CFG__AMOUNT,   /* struct cfg__amount: a number, or a percentage "2%" */
    CFG__SIZE,     /* uint64_t bytes: "65536", "512KiB", "64MiB", "1GiB" */
};

struct cfg__schema;

struct cfg__field {
    const char *key;
    enum cfg__kind kind;
    size_t offset; /* of the target inside the raw struct */
    int64_t min, max;
    bool required;
    const char *def;               /* default as YAML text, or NULL */
    const char *const *names;      /* CFG__ENUM: NULL-terminated */
    const struct cfg__schema *sub; /* CFG__LIST, CFG__OBJECT */
    bool is_name;                  /* CFG__STRING: [A-Za-z0-9_-]{1,64} */
};

struct cfg__schema {
    const char *what; /* "a point", "an account", ... for messages */
    size_t size;      /* of the raw struct; it starts with struct cfg__obj */
    const struct cfg__field *fields;
    size_t n_fields;
};

/* Every raw struct starts with this header. */
struct cfg__obj {
    char *path;                             /* e.g. "links[0].units[2]" */
    struct cfg_mark mark;                   /* of the mapping */
    uint32_t set;                           /* bit i: field i was written */
    uint32_t bad;                           /* bit i: written but invalid */
    struct cfg_mark vmark[CFG__MAX_FIELDS]; /* value marks of set fields */
    bool broken; /* not a mapping, or a required key is missing */
};

struct cfg__list {
    void *items; /* n raw structs of sub->size bytes */
    size_t n;
};

struct cfg__strlist {
    char **items;
    struct cfg_mark *marks; /* of each item */
    size_t n;
};

/* A number (plain, like CFG__DOUBLE) or a percentage: "2%", "0.5%",
 * quoted or not; value holds the number before the '%'. */
struct cfg__amount {
    double value;
    bool percent;
};

struct cfg__intmap {
    struct cfg_enum_label *items; /* sorted by value */
    size_t n;
};

/* The walker's state: where errors go and the current key path. */
struct cfg__ctx {
    struct cfg_errors *errs;
    bool oom;
};

/* Decodes node (a mapping) into out (schema->size bytes, zeroed by the
 * caller) under the key path `path`.  Problems go to ctx->errs; the
 * decode always completes so that every error of a file is reported.
 * Fields not written get their default.  Free with cfg__obj_free. */
void cfg__decode(struct cfg__ctx *ctx, const struct cfg__schema *schema,
                 const struct cfg__node *node, const char *path, void *out);
/* Frees what cfg__decode allocated inside obj (not obj itself). */
void cfg__obj_free(const struct cfg__schema *schema, void *obj);

/* Field lookup by key for the resolve stage. */
int cfg__field_index(const struct cfg__schema *schema, const char *key);
/* True when the key was written (validly or not). */
bool cfg__has(const struct cfg__schema *schema, const void *obj,
              const char *key);
/* True when the key was written and its value was invalid. */
bool cfg__is_bad(const struct cfg__schema *schema, const void *obj,
                 const char *key);
/* Mark of the key's value when written, else the object's mark. */
struct cfg_mark cfg__mark(const struct cfg__schema *schema, const void *obj,
                          const char *key);

/* Error at obj's key: path "<obj path>.<key>" (or the object path for key
 * NULL), mark as cfg__mark. */
void cfg__field_error(struct cfg__ctx *ctx, const struct cfg__schema *schema,
                      const void *obj, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Names: [A-Za-z0-9_-]{1,64}, starting with a letter or a digit. */
bool cfg__valid_name(const char *s);

/* Duration text -> milliseconds.  Returns 0, or -1 with a reason in why. */
int cfg__parse_duration(const char *s, uint32_t *ms, const char **why);
/* A size: a whole number of bytes, optionally with a unit (B, KiB, MiB,
 * GiB, TiB; kB, MB, GB, TB are powers of 1000).  Returns 0, or -1 with
 * *why set. */
int cfg__parse_size(const char *s, uint64_t *bytes, const char **why);
/* Milliseconds -> "1500ms", "2s", "5m", "1h": the shortest exact form. */
void cfg__format_ms(uint64_t ms, char *buf, size_t size);

/* ---- raw structs (what the YAML says, before resolution) --------------- */

/* An `events:` rule (of a point, a template, a unit, or events.defaults).
 * No schema defaults: a key not written is inherited (cfg__has). */
struct cfg__raw_event_rule {
    struct cfg__obj hdr;
    bool enabled;
    struct cfg__amount deadband;
    uint32_t min_interval_ms, max_interval_ms;
};

struct cfg__raw_point {
    struct cfg__obj hdr;
    char *name;
    int table; /* use cfg__has(): 0 is also "coil" */
    int64_t address;
    int type;
    int64_t bit;
    int64_t length;
    int packing;
    char *order;
    double scale;
    double offset;
    int64_t decimals;
    char *unit;
    char *description;
    bool writable;
    double min, max;
    int write_fc; /* index into the write_fc names: auto, 5, 6, 15, 16 */
    bool verify;
    char *poll;
    struct cfg__intmap labels;
    struct cfg__raw_event_rule *events; /* NULL when not written */
};

/* Unit settings a template may carry, shared layout with the unit. */
struct cfg__raw_template {
    struct cfg__obj hdr;
    char *name;
    char *description;
    int byte_order;
    int64_t max_registers, max_bits, max_gap;
    bool single_register;
    uint32_t timeout_ms;
    int64_t retries;
    struct cfg__list points;
    struct cfg__raw_event_rule *events;
};

struct cfg__raw_unit {
    struct cfg__obj hdr;
    char *name;
    uint64_t id;
    char *template_name;
    char *description;
    char *poll;
    uint32_t timeout_ms;
    int64_t retries;
    int64_t max_registers, max_bits, max_gap;
    bool single_register;
    int byte_order;
    struct cfg__list points;
    struct cfg__raw_event_rule *events;
};

struct cfg__raw_link {
    struct cfg__obj hdr;
    char *name;
    int type;
    char *host;
    uint64_t port;
    char *device;
    uint64_t baud;
    int parity;
    int64_t data_bits, stop_bits;
    bool rs485;
    uint32_t timeout_ms, turnaround_ms, delay_ms;
    int64_t address_base;
    struct cfg__list units;
};

struct cfg__raw_poll_group {
    struct cfg__obj hdr;
    char *name;
    uint32_t interval_ms;
};

struct cfg__raw_xmpp {
    struct cfg__obj hdr;
    char *jid;
    char *password;
    char *password_file;
    char *resource;
    char *host;
    uint64_t port;
    int tls;
    char *ca_file;
    char *insecure_server;
    struct cfg__strlist sasl_mechanisms;
    bool allow_plain;
    uint32_t keepalive_ms, ping_timeout_ms;
    uint32_t reconnect_min_ms, reconnect_max_ms;
    uint64_t stanza_max;
    char *status;
    uint32_t control_max_age_ms;
    uint64_t control_max_writes;
    uint32_t control_max_bus_ms;
};

struct cfg__raw_store {
    struct cfg__obj hdr;
    int64_t history;
    uint32_t fresh_ms;
};

struct cfg__raw_access {
    struct cfg__obj hdr;
    struct cfg__strlist readers;
    struct cfg__strlist controllers;
};

/* events.node: the PubSub node configuration.  No schema defaults for
 * access_model (it depends on the service); the others have theirs. */
struct cfg__raw_events_node {
    struct cfg__obj hdr;
    int access_model;
    uint64_t max_items;
    bool persist_items;
    int notification_type;
    int send_last;
};

/* events.spool: where `delivery: every` keeps its records. */
struct cfg__raw_spool {
    struct cfg__obj hdr;
    char *dir;
    uint64_t max_bytes;
    uint32_t max_age_ms;
    char *fsync; /* "every" or a duration */
};

struct cfg__raw_events {
    struct cfg__obj hdr;
    char *service;
    char *node_prefix;
    struct cfg__raw_events_node *node; /* NULL without `node:` */
    uint64_t window;
    uint32_t publish_timeout_ms;
    struct cfg__raw_event_rule *defaults; /* NULL without `defaults:` */
    int delivery;                         /* enum cfg_delivery */
    struct cfg__raw_spool *spool;         /* NULL without `spool:` */
};

struct cfg__raw_root {
    struct cfg__obj hdr;
    struct cfg__list poll_groups;
    struct cfg__list templates;
    struct cfg__list links;
    struct cfg__raw_xmpp *xmpp;     /* NULL without the section */
    struct cfg__raw_access *access; /* NULL without the section */
    struct cfg__raw_store *store;   /* NULL without the section */
    struct cfg__raw_events *events; /* NULL without the section */
};

extern const struct cfg__schema cfg__schema_root;
extern const struct cfg__schema cfg__schema_xmpp;
extern const struct cfg__schema cfg__schema_access;
extern const struct cfg__schema cfg__schema_store;
extern const struct cfg__schema cfg__schema_events;
extern const struct cfg__schema cfg__schema_events_node;
extern const struct cfg__schema cfg__schema_spool;
extern const struct cfg__schema cfg__schema_event_rule;
extern const struct cfg__schema cfg__schema_poll_group;
extern const struct cfg__schema cfg__schema_template;
extern const struct cfg__schema cfg__schema_link;
extern const struct cfg__schema cfg__schema_unit;
extern const struct cfg__schema cfg__schema_point;

/* Name tables; the index is the enum value in cfg.h unless noted. */
extern const char *const cfg__table_names[];        /* enum cfg_table */
extern const char *const cfg__type_names[];         /* enum cfg_type */
extern const char *const cfg__packing_names[];      /* enum cfg_packing */
extern const char *const cfg__link_type_names[];    /* enum cfg_link_type */
extern const char *const cfg__parity_names[];       /* enum cfg_parity */
extern const char *const cfg__byte_order_names[];   /* ABCD CDAB BADC DCBA */
extern const char *const cfg__write_fc_names[];     /* auto 5 6 15 16 */
extern const char *const cfg__access_model_names[]; /* cfg_access_model */
extern const char *const cfg__notification_type_names[];
extern const char *const cfg__send_last_names[]; /* enum cfg_send_last */
extern const char *const cfg__delivery_names[];  /* enum cfg_delivery */

#endif
