/* cfg_load.c - loading, resolution and validation of the device map.
 *
 * cfg_yaml.c turns the text into a node tree, cfg_schema.c decodes it into
 * raw structs with the schema tables, and this file resolves those into
 * struct cfg: templates copied into units, context-dependent defaults,
 * addresses (Modicon notation, address_base), byte orders, references and
 * the checks that need more than one key. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfg_int.h"
#include "gw_err.h"

/* ---- the error list ---------------------------------------------------- */

void cfg_errors_init(struct cfg_errors *errs)
{
    memset(errs, 0, sizeof(*errs));
}

void cfg_errors_close(struct cfg_errors *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->items[i].path);
        free(errs->items[i].message);
    }
    free(errs->items);
    free(errs->file);
    memset(errs, 0, sizeof(*errs));
}

/* Prints each item as "FILE:LINE:COL: path: PREFIXmessage". */
static void print_items(const struct cfg_errors *list, const char *file,
                        const char *prefix, FILE *out)
{
    for (size_t i = 0; i < list->n; i++) {
        const struct cfg_error *e = &list->items[i];
        if (e->mark.line)
            fprintf(out, "%s:%u:%u: ", file, e->mark.line, e->mark.col);
        else
            fprintf(out, "%s: ", file);
        if (e->path && e->path[0])
            fprintf(out, "%s: ", e->path);
        fprintf(out, "%s%s\n", prefix, e->message);
    }
}

void cfg_errors_print(const struct cfg_errors *errs, FILE *out)
{
    if (errs)
        print_items(errs, errs->file ? errs->file : "(config)", "", out);
}

void cfg_warnings_print(const struct cfg *cfg, FILE *out)
{
    if (!cfg)
        return;
    const struct cfg_errors *w = &cfg->warnings;
    print_items(w,
                w->file     ? w->file
                : cfg->path ? cfg->path
                            : "(config)",
                "warning: ", out);
}

static int push_error(struct cfg_errors *errs, struct cfg_mark mark,
                      const char *path, char *message)
{
    if (errs->n == errs->cap) {
        size_t cap = errs->cap ? errs->cap * 2 : 16;
        struct cfg_error *items = realloc(errs->items, cap * sizeof(*items));
        if (!items) {
            free(message);
            return GW_ENOMEM;
        }
        errs->items = items;
        errs->cap = cap;
    }
    char *p = strdup(path ? path : "");
    if (!p) {
        free(message);
        return GW_ENOMEM;
    }
    errs->items[errs->n].mark = mark;
    errs->items[errs->n].path = p;
    errs->items[errs->n].message = message;
    errs->n++;
    return GW_OK;
}

int cfg__verror(struct cfg_errors *errs, struct cfg_mark mark, const char *path,
                const char *fmt, va_list ap)
{
    if (errs->n > CFG__MAX_ERRORS)
        return GW_OK; /* the "too many" entry is already there */
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    if (!path)
        path = "";
    for (size_t i = 0; i < errs->n; i++) {
        const struct cfg_error *e = &errs->items[i];
        if (e->mark.line == mark.line && e->mark.col == mark.col &&
            strcmp(e->path, path) == 0 && strcmp(e->message, buf) == 0)
            return GW_OK;
    }
    if (errs->n == CFG__MAX_ERRORS) {
        char *m = strdup("too many errors; stopping the report here");
        if (!m)
            return GW_ENOMEM;
        return push_error(errs, mark, "", m);
    }
    char *m = strdup(buf);
    if (!m)
        return GW_ENOMEM;
    return push_error(errs, mark, path, m);
}

int cfg__error(struct cfg_errors *errs, struct cfg_mark mark, const char *path,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cfg__verror(errs, mark, path, fmt, ap);
    va_end(ap);
    return rc;
}

struct sort_item {
    struct cfg_error e;
    size_t index;
};

static int error_cmp(const void *a, const void *b)
{
    const struct sort_item *x = a, *y = b;
    if (x->e.mark.line != y->e.mark.line)
        return x->e.mark.line < y->e.mark.line ? -1 : 1;
    if (x->e.mark.col != y->e.mark.col)
        return x->e.mark.col < y->e.mark.col ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

void cfg__errors_sort(struct cfg_errors *errs)
{
    if (errs->n < 2)
        return;
    struct sort_item *items = calloc(errs->n, sizeof(*items));
    if (!items)
        return; /* unsorted is still correct */
    for (size_t i = 0; i < errs->n; i++) {
        items[i].e = errs->items[i];
        items[i].index = i;
    }
    qsort(items, errs->n, sizeof(*items), error_cmp);
    for (size_t i = 0; i < errs->n; i++)
        errs->items[i] = items[i].e;
    free(items);
}

/* ---- names --------------------------------------------------------------- */

const char *cfg_table_name(enum cfg_table t)
{
    return (unsigned)t <= CFG_TABLE_HOLDING ? cfg__table_names[t] : "?";
}

const char *cfg_type_name(enum cfg_type t)
{
    return (unsigned)t <= CFG_TYPE_BCD32 ? cfg__type_names[t] : "?";
}

const char *cfg_link_type_name(enum cfg_link_type t)
{
    return (unsigned)t <= CFG_LINK_RTU_OVER_TCP ? cfg__link_type_names[t] : "?";
}

const char *cfg_parity_name(enum cfg_parity p)
{
    return (unsigned)p <= CFG_PARITY_ODD ? cfg__parity_names[p] : "?";
}

const char *cfg_access_model_name(enum cfg_access_model m)
{
    return (unsigned)m <= CFG_AM_WHITELIST ? cfg__access_model_names[m] : "?";
}

const char *cfg_notification_type_name(enum cfg_notification_type t)
{
    return (unsigned)t <= CFG_NOTIFY_NORMAL ? cfg__notification_type_names[t]
                                            : "?";
}

const char *cfg_send_last_name(enum cfg_send_last s)
{
    return (unsigned)s <= CFG_SEND_LAST_ON_SUB_AND_PRESENCE
               ? cfg__send_last_names[s]
               : "?";
}

int cfg_warning_add(struct cfg *cfg, struct cfg_mark mark, const char *path,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cfg__verror(&cfg->warnings, mark, path, fmt, ap);
    va_end(ap);
    return rc;
}

const char *cfg_delivery_name(enum cfg_delivery d)
{
    return (unsigned)d <= CFG_DELIVERY_EVERY ? cfg__delivery_names[d] : "?";
}

int cfg_spool_dir(const struct cfg_spool *sp, char *buf, size_t cap)
{
    int n;
    const char *state = getenv("STATE_DIRECTORY");
    if (sp && sp->dir) {
        n = snprintf(buf, cap, "%s", sp->dir);
    } else if (state && state[0] == '/') {
        /* systemd lists several directories separated by ':'. */
        size_t len = strcspn(state, ":");
        n = snprintf(buf, cap, "%.*s/spool", (int)len, state);
    } else {
        n = snprintf(buf, cap, "%s", CFG_SPOOL_DEFAULT_DIR);
    }
    return n > 0 && (size_t)n < cap ? GW_OK : GW_ELIMIT;
}

uint16_t cfg_type_count(enum cfg_type t, uint16_t string_len)
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
    case CFG_TYPE_STRING:
        return string_len;
    default:
        return 1;
    }
}

/* Bytes of the value that `order` describes; 0 when no order applies. */
size_t cfg_type_bytes(enum cfg_type t)
{
    switch (t) {
    case CFG_TYPE_INT16:
    case CFG_TYPE_UINT16:
    case CFG_TYPE_BCD16:
        return 2;
    case CFG_TYPE_INT32:
    case CFG_TYPE_UINT32:
    case CFG_TYPE_FLOAT32:
    case CFG_TYPE_BCD32:
        return 4;
    case CFG_TYPE_INT64:
    case CFG_TYPE_UINT64:
    case CFG_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

/* ---- freeing the model ----------------------------------------------------
 */

static void point_free(struct cfg_point *p)
{
    free(p->name);
    free(p->unit);
    free(p->description);
    for (size_t i = 0; i < p->n_labels; i++)
        free(p->labels[i].label);
    free(p->labels);
}

static void points_free(struct cfg_point *points, size_t n)
{
    for (size_t i = 0; i < n; i++)
        point_free(&points[i]);
    free(points);
}

void cfg_free(struct cfg *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_poll_groups; i++)
        free(cfg->poll_groups[i].name);
    free(cfg->poll_groups);
    for (size_t i = 0; i < cfg->n_templates; i++) {
        free(cfg->templates[i].name);
        free(cfg->templates[i].description);
        points_free(cfg->templates[i].points, cfg->templates[i].n_points);
    }
    free(cfg->templates);
    for (size_t i = 0; i < cfg->n_links; i++) {
        struct cfg_link *l = &cfg->links[i];
        for (size_t j = 0; j < l->n_units; j++) {
            struct cfg_unit *u = &l->units[j];
            free(u->name);
            free(u->template_name);
            free(u->description);
            points_free(u->points, u->n_points);
        }
        free(l->units);
        free(l->name);
        free(l->host);
        free(l->device);
    }
    free(cfg->links);
    struct cfg_xmpp *x = &cfg->xmpp;
    free(x->jid);
    if (x->password) {
        explicit_bzero(x->password, strlen(x->password));
        free(x->password);
    }
    free(x->password_file);
    free(x->resource);
    free(x->host);
    free(x->ca_file);
    free(x->insecure_server);
    free(x->status);
    for (size_t i = 0; i < cfg->access.n_readers; i++)
        free(cfg->access.readers[i]);
    free(cfg->access.readers);
    for (size_t i = 0; i < cfg->access.n_controllers; i++)
        free(cfg->access.controllers[i]);
    free(cfg->access.controllers);
    free(cfg->events.service);
    free(cfg->events.node_prefix);
    free(cfg->events.spool.dir);
    cfg_errors_close(&cfg->warnings);
    free(cfg->path);
    free(cfg);
}

/* ---- resolution ------------------------------------------------------------
 */

/* A sorted name -> object index: lookups in O(log n) and duplicate
 * detection in O(n log n), so that huge maps stay cheap to check. */
struct name_ref {
    const char *name;
    size_t index; /* order of addition (file order) */
    const void *obj;
};

struct name_index {
    struct name_ref *refs;
    size_t n, cap;
};

static int ref_cmp(const void *a, const void *b)
{
    const struct name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->index < y->index ? -1 : (x->index > y->index);
}

static void index_free(struct name_index *ix)
{
    if (!ix)
        return;
    free(ix->refs);
    free(ix);
}

static bool index_add(struct name_index *ix, const char *name, const void *obj)
{
    if (!name)
        return true;
    if (ix->n == ix->cap) {
        size_t cap = ix->cap ? ix->cap * 2 : 16;
        struct name_ref *refs = realloc(ix->refs, cap * sizeof(*refs));
        if (!refs)
            return false;
        ix->refs = refs;
        ix->cap = cap;
    }
    ix->refs[ix->n] = (struct name_ref){name, ix->n, obj};
    ix->n++;
    return true;
}

static void index_sort(struct name_index *ix)
{
    if (ix->n > 1)
        qsort(ix->refs, ix->n, sizeof(*ix->refs), ref_cmp);
}

/* The first object (in file order) with this name, or NULL. */
static const void *index_find(const struct name_index *ix, const char *name)
{
    if (!ix)
        return NULL;
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(ix->refs[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < ix->n && strcmp(ix->refs[lo].name, name) == 0)
        return ix->refs[lo].obj;
    return NULL;
}

struct res {
    struct cfg__ctx ctx;
    struct cfg *cfg;
    const struct cfg__raw_root *raw;
    /* every unit name of the map, for the map-wide uniqueness check */
    struct name_index *groups;    /* model poll groups by name */
    struct name_index *templates; /* raw templates by name */
    struct cover *cover; /* overlap check scratch, COVER_SIZE entries */
};

/* Per-unit context of point resolution. */
struct pctx {
    int address_base;
    const char *byte_order;       /* the unit's: ABCD CDAB BADC DCBA */
    size_t poll_group;            /* the unit's default */
    struct cfg_event_rule events; /* the unit's rule (defaults, template,
                                     unit), before the point's own */
};

static char *dup_or_null(struct res *r, const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        r->ctx.oom = true;
    return d;
}

static bool find_poll_group(const struct res *r, const char *name,
                            size_t *index)
{
    const struct cfg_poll_group *g = index_find(r->groups, name);
    if (!g)
        return false;
    *index = (size_t)(g - r->cfg->poll_groups);
    return true;
}

/* Sorts an index of raw objects and reports each duplicate at the later
 * object: "duplicate WHAT name 'x' (first at line N EXTRA)". */
static void report_duplicates(struct res *r, struct name_index *ix,
                              const struct cfg__schema *schema,
                              const char *what, const char *extra)
{
    index_sort(ix);
    size_t first = 0;
    for (size_t k = 1; k < ix->n; k++) {
        if (strcmp(ix->refs[k].name, ix->refs[first].name) != 0) {
            first = k;
            continue;
        }
        cfg__field_error(&r->ctx, schema, ix->refs[k].obj, "name",
                         "duplicate %s name '%s' (first at line %u%s)", what,
                         ix->refs[k].name,
                         cfg__mark(schema, ix->refs[first].obj, "name").line,
                         extra);
    }
}

#define PS (&cfg__schema_point)
#define ES (&cfg__schema_event_rule)

/* ---- events rules -------------------------------------------------------- */

/* The built-in rule: every change of every point is an event. */
static const struct cfg_event_rule rule_builtin = {
    .enabled = true,
    .deadband = 0,
    .deadband_percent = false,
    .min_interval_ms = 0,
    .max_interval_ms = 0,
};

#define HEARTBEAT_MIN_MS 1000u /* a max_interval is 0 or at least this */

/* The key is written in the rule with a valid value. */
static bool rule_key(const struct cfg__raw_event_rule *rr, const char *key)
{
    return rr && !rr->hdr.broken && cfg__has(ES, rr, key) &&
           !cfg__is_bad(ES, rr, key);
}

/* Checks a rule's own values and applies the keys it writes over the
 * inherited rule (key by key).  A rule used by many units is checked as
 * often; its errors are identical and reported once. */
static void rule_apply(struct res *r, struct cfg_event_rule *rule,
                       const struct cfg__raw_event_rule *rr)
{
    if (!rr || rr->hdr.broken)
        return;
    if (rule_key(rr, "enabled"))
        rule->enabled = rr->enabled;
    if (rule_key(rr, "deadband")) {
        if (rr->deadband.value < 0) {
            cfg__field_error(&r->ctx, ES, rr, "deadband",
                             "deadband %g%s is negative (0 makes every "
                             "change an event)",
                             rr->deadband.value,
                             rr->deadband.percent ? "%" : "");
        } else {
            rule->deadband = rr->deadband.value;
            rule->deadband_percent = rr->deadband.percent;
        }
    }
    if (rule_key(rr, "min_interval"))
        rule->min_interval_ms = rr->min_interval_ms;
    if (rule_key(rr, "max_interval")) {
        if (rr->max_interval_ms && rr->max_interval_ms < HEARTBEAT_MIN_MS)
            cfg__field_error(&r->ctx, ES, rr, "max_interval",
                             "a heartbeat (max_interval) is 0 (none) or at "
                             "least 1s");
        else
            rule->max_interval_ms = rr->max_interval_ms;
    }
    /* min_interval <= max_interval, where this rule sets one of them */
    bool wmin = rule_key(rr, "min_interval"),
         wmax = rule_key(rr, "max_interval");
    if ((wmin || wmax) && rule->min_interval_ms && rule->max_interval_ms &&
        rule->min_interval_ms > rule->max_interval_ms) {
        char lo[32], hi[32];
        cfg__format_ms(rule->min_interval_ms, lo, sizeof(lo));
        cfg__format_ms(rule->max_interval_ms, hi, sizeof(hi));
        if (wmin)
            cfg__field_error(&r->ctx, ES, rr, "min_interval",
                             "min_interval %s is longer than max_interval %s "
                             "(the heartbeat)",
                             lo, hi);
        else
            cfg__field_error(&r->ctx, ES, rr, "max_interval",
                             "max_interval %s (the heartbeat) is shorter than "
                             "min_interval %s",
                             hi, lo);
    }
}

/* Modicon notation -> table and 0-based address. */
static bool modicon(int64_t a, enum cfg_table *t, uint16_t *addr)
{
    static const struct {
        int64_t lo, hi;
        enum cfg_table t;
    } ranges[] = {
        {1, 9999, CFG_TABLE_COIL},
        {10001, 19999, CFG_TABLE_DISCRETE},
        {30001, 39999, CFG_TABLE_INPUT},
        {40001, 49999, CFG_TABLE_HOLDING},
        {100001, 165536, CFG_TABLE_DISCRETE},
        {300001, 365536, CFG_TABLE_INPUT},
        {400001, 465536, CFG_TABLE_HOLDING},
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        if (a >= ranges[i].lo && a <= ranges[i].hi) {
            *t = ranges[i].t;
            *addr = (uint16_t)(a - ranges[i].lo);
            return true;
        }
    }
    return false;
}

/* The default order of a value of `width` bytes on a unit whose 32-bit
 * order is `unit`. */
static void derive_order(size_t width, const char *unit, char order[9])
{
    static const struct {
        const char *unit, *o16, *o64;
    } map[] = {
        {"ABCD", "AB", "ABCDEFGH"},
        {"CDAB", "AB", "GHEFCDAB"},
        {"BADC", "BA", "BADCFEHG"},
        {"DCBA", "BA", "HGFEDCBA"},
    };
    size_t k = 0;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(map[i].unit, unit) == 0)
            k = i;
    }
    order[0] = '\0';
    if (width == 2)
        snprintf(order, 9, "%s", map[k].o16);
    else if (width == 4)
        snprintf(order, 9, "%s", map[k].unit);
    else if (width == 8)
        snprintf(order, 9, "%s", map[k].o64);
}

static bool is_bit_table(enum cfg_table t)
{
    return t == CFG_TABLE_COIL || t == CFG_TABLE_DISCRETE;
}

/* Resolves one point.  Returns true when its layout (table, address,
 * count, type, order) is valid, so that it can take part in the overlap
 * check. */
static bool resolve_point(struct res *r, const struct cfg__raw_point *rp,
                          const struct pctx *pc, struct cfg_point *out)
{
    struct cfg__ctx *c = &r->ctx;
    bool layout = !rp->hdr.broken && !cfg__is_bad(PS, rp, "table") &&
                  !cfg__is_bad(PS, rp, "address") &&
                  !cfg__is_bad(PS, rp, "type") &&
                  !cfg__is_bad(PS, rp, "length") &&
                  !cfg__is_bad(PS, rp, "order") && !cfg__is_bad(PS, rp, "bit");
    out->name = dup_or_null(r, rp->name);
    out->mark = rp->hdr.mark;
    out->decimals = -1;
    out->scale = 1;

    /* table and address; later checks against the table need to know it */
    bool table_known = false;
    if (cfg__has(PS, rp, "table")) {
        out->table = (enum cfg_table)rp->table;
        table_known = !cfg__is_bad(PS, rp, "table");
        int64_t base = pc->address_base;
        if (cfg__has(PS, rp, "address") && !cfg__is_bad(PS, rp, "address")) {
            if (rp->address < base || rp->address > 65535 + base) {
                cfg__field_error(c, PS, rp, "address",
                                 "address %" PRId64 " out of range %" PRId64
                                 "..%" PRId64 " (a plain offset, as 'table' "
                                 "is given; address_base %" PRId64 ")",
                                 rp->address, base, 65535 + base, base);
                layout = false;
            } else {
                out->address = (uint16_t)(rp->address - base);
            }
        }
    } else if (cfg__has(PS, rp, "address") && !cfg__is_bad(PS, rp, "address")) {
        if (!modicon(rp->address, &out->table, &out->address)) {
            cfg__field_error(
                c, PS, rp, "address",
                "address %" PRId64 " is not a Modicon address (1-9999 coil, "
                "10001-19999 discrete, 30001-39999 input, 40001-49999 "
                "holding, or 6 digits 100001-165536, 300001-365536, "
                "400001-465536); or give 'table' and a plain offset",
                rp->address);
            layout = false;
        } else {
            table_known = true;
        }
    }

    /* type */
    enum cfg_type t =
        is_bit_table(out->table) ? CFG_TYPE_BOOL : CFG_TYPE_UINT16;
    if (cfg__has(PS, rp, "type") && !cfg__is_bad(PS, rp, "type")) {
        t = (enum cfg_type)rp->type;
        if (!table_known) {
            layout = false;
        } else if (is_bit_table(out->table) && t != CFG_TYPE_BOOL) {
            cfg__field_error(c, PS, rp, "type",
                             "type %s is not allowed on the %s table "
                             "(coils and discrete inputs are bool)",
                             cfg_type_name(t), cfg_table_name(out->table));
            layout = false;
        } else if (!is_bit_table(out->table) && t == CFG_TYPE_BOOL) {
            cfg__field_error(c, PS, rp, "type",
                             "type bool needs a coil or discrete table; use "
                             "type bit for one bit of a register");
            layout = false;
        }
    }
    out->type = t;

    if (t == CFG_TYPE_BIT) {
        if (!cfg__has(PS, rp, "bit")) {
            cfg__field_error(c, PS, rp, "bit",
                             "type bit needs 'bit' (0..15, 0 = least "
                             "significant)");
            layout = false;
        } else {
            out->bit = (uint8_t)rp->bit;
        }
    } else if (cfg__has(PS, rp, "bit")) {
        cfg__field_error(c, PS, rp, "bit", "'bit' is only for type bit");
    }

    uint16_t length = 0;
    if (t == CFG_TYPE_STRING) {
        if (!cfg__has(PS, rp, "length")) {
            cfg__field_error(c, PS, rp, "length",
                             "type string needs 'length' (registers, "
                             "1..125)");
            layout = false;
        } else {
            length = (uint16_t)rp->length;
        }
        out->packing = (enum cfg_packing)rp->packing;
    } else {
        if (cfg__has(PS, rp, "length"))
            cfg__field_error(c, PS, rp, "length",
                             "'length' is only for type string");
        if (cfg__has(PS, rp, "packing"))
            cfg__field_error(c, PS, rp, "packing",
                             "'packing' is only for type string");
    }
    out->count = cfg_type_count(t, length);

    if (layout && out->count &&
        (uint32_t)out->address + out->count - 1 > 65535) {
        cfg__field_error(c, PS, rp, "address",
                         "the point ends past address 65535 (it starts at "
                         "%u and takes %u %s)",
                         out->address, out->count,
                         is_bit_table(out->table) ? "bits" : "registers");
        layout = false;
    }

    /* byte order */
    size_t width = cfg_type_bytes(t);
    if (cfg__has(PS, rp, "order") && !cfg__is_bad(PS, rp, "order")) {
        const char *o = rp->order;
        size_t len = strlen(o);
        static const char letters[] = "ABCDEFGH";
        if (width == 0) {
            cfg__field_error(c, PS, rp, "order",
                             "'order' is not allowed on type %s",
                             cfg_type_name(t));
        } else if (len != width) {
            cfg__field_error(c, PS, rp, "order",
                             "order '%.16s' has %zu letters; a %zu-bit %s "
                             "needs %zu (a permutation of %.*s)",
                             o, len, width * 8, cfg_type_name(t), width,
                             (int)width, letters);
            layout = false;
        } else {
            bool seen[8] = {false};
            bool perm = true;
            for (size_t i = 0; i < len; i++) {
                int k = o[i] - 'A';
                if (k < 0 || (size_t)k >= width || seen[k]) {
                    perm = false;
                    break;
                }
                seen[k] = true;
            }
            if (!perm) {
                cfg__field_error(c, PS, rp, "order",
                                 "order '%.16s' is not a permutation of %.*s",
                                 o, (int)width, letters);
                layout = false;
            } else {
                snprintf(out->order, sizeof(out->order), "%s", o);
            }
        }
    } else {
        derive_order(width, pc->byte_order, out->order);
    }

    /* value conversion */
    out->scale = rp->scale;
    out->offset = rp->offset;
    if (rp->scale == 0 && !cfg__is_bad(PS, rp, "scale"))
        cfg__field_error(c, PS, rp, "scale", "scale must not be 0");
    if (cfg__has(PS, rp, "decimals") && !cfg__is_bad(PS, rp, "decimals"))
        out->decimals = (int)rp->decimals;
    out->unit = dup_or_null(r, rp->unit);
    out->description = dup_or_null(r, rp->description);

    /* writing */
    out->writable = rp->writable;
    if (rp->writable && table_known &&
        (out->table == CFG_TABLE_DISCRETE || out->table == CFG_TABLE_INPUT)) {
        cfg__field_error(c, PS, rp, "writable",
                         "the %s table is read-only; writable points are "
                         "coils or holding registers",
                         cfg_table_name(out->table));
    }
    static const char *const write_keys[] = {"min", "max", "write_fc",
                                             "verify"};
    for (size_t i = 0; i < sizeof(write_keys) / sizeof(write_keys[0]); i++) {
        if (!rp->writable && cfg__has(PS, rp, write_keys[i]))
            cfg__field_error(c, PS, rp, write_keys[i],
                             "'%s' is only allowed with writable: true",
                             write_keys[i]);
    }
    out->has_min =
        rp->writable && cfg__has(PS, rp, "min") && !cfg__is_bad(PS, rp, "min");
    out->has_max =
        rp->writable && cfg__has(PS, rp, "max") && !cfg__is_bad(PS, rp, "max");
    out->min = out->has_min ? rp->min : 0;
    out->max = out->has_max ? rp->max : 0;
    if (out->has_min && out->has_max && out->min > out->max)
        cfg__field_error(c, PS, rp, "max", "min %g is greater than max %g",
                         out->min, out->max);
    static const enum cfg_write_fc fcs[] = {CFG_WRITE_AUTO, CFG_WRITE_FC05,
                                            CFG_WRITE_FC06, CFG_WRITE_FC15,
                                            CFG_WRITE_FC16};
    out->write_fc = fcs[rp->write_fc];
    if (rp->writable && table_known && out->write_fc != CFG_WRITE_AUTO) {
        bool coil_fc =
            out->write_fc == CFG_WRITE_FC05 || out->write_fc == CFG_WRITE_FC15;
        if (coil_fc && out->table != CFG_TABLE_COIL)
            cfg__field_error(c, PS, rp, "write_fc",
                             "write_fc %d writes coils; this point is in the "
                             "%s table",
                             (int)out->write_fc, cfg_table_name(out->table));
        else if (!coil_fc && out->table != CFG_TABLE_HOLDING)
            cfg__field_error(c, PS, rp, "write_fc",
                             "write_fc %d writes holding registers; this "
                             "point is in the %s table",
                             (int)out->write_fc, cfg_table_name(out->table));
        else if (out->write_fc == CFG_WRITE_FC06 && out->count != 1)
            cfg__field_error(c, PS, rp, "write_fc",
                             "write_fc 6 writes one register; a %s takes %u "
                             "(use 16 or auto)",
                             cfg_type_name(t), out->count);
    }
    if (rp->writable &&
        out->count > (is_bit_table(out->table) ? CFG_MAX_WRITE_BITS
                                               : CFG_MAX_WRITE_REGISTERS))
        cfg__field_error(c, PS, rp, "writable",
                         "a writable point can take at most %d registers "
                         "(one FC16 request)",
                         CFG_MAX_WRITE_REGISTERS);
    out->verify = rp->writable && rp->verify;

    /* poll group */
    out->poll_group = pc->poll_group;
    if (cfg__has(PS, rp, "poll") && !cfg__is_bad(PS, rp, "poll") &&
        !find_poll_group(r, rp->poll, &out->poll_group))
        cfg__field_error(c, PS, rp, "poll", "unknown poll group '%.64s'",
                         rp->poll);

    /* events: the unit's rule, then the point's own; deadbands are only
     * for numbers (an inherited one does not apply to other points) */
    out->events = pc->events;
    rule_apply(r, &out->events, rp->events);
    if (cfg_type_bytes(t) == 0) {
        bool type_known = cfg__has(PS, rp, "type")
                              ? !cfg__is_bad(PS, rp, "type")
                              : table_known;
        if (type_known && rule_key(rp->events, "deadband"))
            cfg__field_error(c, ES, rp->events, "deadband",
                             "a deadband is only for numeric points; this "
                             "point is %s",
                             cfg_type_name(t));
        out->events.deadband = 0;
        out->events.deadband_percent = false;
    }

    /* enum labels */
    if (rp->labels.n) {
        if (t == CFG_TYPE_FLOAT32 || t == CFG_TYPE_FLOAT64 ||
            t == CFG_TYPE_STRING)
            cfg__field_error(c, PS, rp, "enum",
                             "enum labels are only for integer, bool, bit "
                             "and bcd types, not %s",
                             cfg_type_name(t));
        out->labels = calloc(rp->labels.n, sizeof(*out->labels));
        if (!out->labels) {
            c->oom = true;
        } else {
            for (size_t i = 0; i < rp->labels.n; i++) {
                out->labels[i].value = rp->labels.items[i].value;
                out->labels[i].label =
                    dup_or_null(r, rp->labels.items[i].label);
            }
            out->n_labels = rp->labels.n;
        }
    }
    return layout;
}

/* One resolved point with where it came from, for the per-unit checks. */
struct pref {
    const struct cfg__raw_point *raw;
    bool layout;
};

/* Sort helpers: the points of the unit being checked. */
struct sort_ctx {
    const struct cfg_point *pts;
    size_t index;
};

static int name_cmp(const void *a, const void *b)
{
    const struct sort_ctx *x = a, *y = b;
    int c = strcmp(x->pts[x->index].name, y->pts[y->index].name);
    if (c)
        return c;
    return x->index < y->index ? -1 : (x->index > y->index);
}

/* Orders by table, address, then layout, then file order, so that points
 * with one identical layout are neighbours, earliest first. */
static int layout_cmp(const void *a, const void *b)
{
    const struct sort_ctx *x = a, *y = b;
    const struct cfg_point *p = &x->pts[x->index], *q = &y->pts[y->index];
    if (p->table != q->table)
        return p->table < q->table ? -1 : 1;
    if (p->address != q->address)
        return p->address < q->address ? -1 : 1;
    if (p->count != q->count)
        return p->count < q->count ? -1 : 1;
    if (p->type != q->type)
        return p->type < q->type ? -1 : 1;
    int c = strcmp(p->order, q->order);
    if (c)
        return c;
    return x->index < y->index ? -1 : (x->index > y->index);
}

static bool same_layout(const struct cfg_point *p, const struct cfg_point *q)
{
    return p->table == q->table && p->address == q->address &&
           p->count == q->count && p->type == q->type &&
           strcmp(p->order, q->order) == 0;
}

/* Per address of one table: the two earliest points (file order) of two
 * different layout classes that cover it, as index + 1 (0 = none, so that
 * a fresh calloc'd array is empty). */
struct cover {
    size_t first, first_class, second;
};

#define COVER_SIZE 65536u

/* Duplicate point names, in O(n log n). */
static void check_names(struct res *r, const char *owner,
                        const struct cfg_point *pts, const struct pref *refs,
                        struct sort_ctx *s, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (pts[i].name)
            s[m++] = (struct sort_ctx){pts, i};
    }
    qsort(s, m, sizeof(*s), name_cmp);
    size_t first = 0;
    for (size_t k = 1; k < m; k++) {
        if (strcmp(pts[s[k].index].name, pts[s[first].index].name) != 0) {
            first = k;
            continue;
        }
        size_t j = s[k].index, i = s[first].index;
        cfg__field_error(&r->ctx, PS, refs[j].raw, "name",
                         "duplicate point name '%s' in %s (first at line %u)",
                         pts[j].name, owner,
                         cfg__mark(PS, refs[i].raw, "name").line);
    }
}

/* Overlapping layouts.  Points with one identical layout form a class;
 * two points conflict when their classes differ and their ranges in one
 * table intersect (bit points never conflict).  A point is reported when
 * a conflicting point comes earlier in the file, naming the earliest.
 * Linear in the registers covered: no pairwise scan. */
static void check_overlaps(struct res *r, const struct cfg_point *pts,
                           const struct pref *refs, struct sort_ctx *s,
                           size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (refs[i].layout && pts[i].type != CFG_TYPE_BIT && pts[i].count)
            s[m++] = (struct sort_ctx){pts, i};
    }
    if (m < 2)
        return;
    if (!r->cover) {
        r->cover = calloc(COVER_SIZE, sizeof(*r->cover));
        if (!r->cover) {
            r->ctx.oom = true;
            return;
        }
    }
    qsort(s, m, sizeof(*s), layout_cmp);
    struct cover *cv = r->cover;
    /* One table at a time: [t0, t1) in s. */
    for (size_t t0 = 0, t1; t0 < m; t0 = t1) {
        enum cfg_table table = pts[s[t0].index].table;
        for (t1 = t0; t1 < m && pts[s[t1].index].table == table; t1++)
            ;
        /* Fill: classes start where the layout changes; s[c0] is the
         * class's earliest point, its position identifies the class. */
        for (size_t c0 = t0, c1; c0 < t1; c0 = c1) {
            const struct cfg_point *p = &pts[s[c0].index];
            for (c1 = c0 + 1; c1 < t1 && same_layout(&pts[s[c1].index], p);
                 c1++)
                ;
            size_t key = s[c0].index + 1;
            uint32_t end = (uint32_t)p->address + p->count - 1;
            for (uint32_t a = p->address; a <= end; a++) {
                struct cover *c = &cv[a];
                if (!c->first || key < c->first) {
                    c->second = c->first;
                    c->first = key;
                    c->first_class = c0 + 1;
                } else if (!c->second || key < c->second) {
                    c->second = key;
                }
            }
        }
        /* Query and report. */
        for (size_t c0 = t0, c1; c0 < t1; c0 = c1) {
            const struct cfg_point *p = &pts[s[c0].index];
            for (c1 = c0 + 1; c1 < t1 && same_layout(&pts[s[c1].index], p);
                 c1++)
                ;
            uint32_t end = (uint32_t)p->address + p->count - 1;
            size_t other = 0; /* index + 1 of the earliest conflict */
            for (uint32_t a = p->address; a <= end; a++) {
                const struct cover *c = &cv[a];
                size_t cand = c->first_class == c0 + 1 ? c->second : c->first;
                if (cand && (!other || cand < other))
                    other = cand;
            }
            if (!other)
                continue;
            other--;
            const struct cfg_point *o = &pts[other];
            for (size_t k = c0; k < c1; k++) {
                size_t j = s[k].index;
                if (j < other)
                    continue;
                cfg__field_error(&r->ctx, PS, refs[j].raw, "address",
                                 "overlaps point '%s' (%s %u..%u %s) with a "
                                 "different layout",
                                 o->name ? o->name : "?",
                                 cfg_table_name(o->table), o->address,
                                 (unsigned)(o->address + o->count - 1),
                                 cfg_type_name(o->type));
            }
        }
        /* Reset what this table touched. */
        for (size_t k = t0; k < t1; k++) {
            const struct cfg_point *p = &pts[s[k].index];
            uint32_t end = (uint32_t)p->address + p->count - 1;
            for (uint32_t a = p->address; a <= end; a++)
                cv[a] = (struct cover){0, 0, 0};
            /* identical neighbours share the range: skip them */
            while (k + 1 < t1 && same_layout(&pts[s[k + 1].index], p))
                k++;
        }
    }
}

/* Duplicate names and overlapping layouts among a unit's points. */
static void check_points(struct res *r, const char *owner,
                         const struct cfg_point *pts, const struct pref *refs,
                         size_t n)
{
    if (n < 2)
        return;
    struct sort_ctx *s = calloc(n, sizeof(*s));
    if (!s) {
        r->ctx.oom = true;
        return;
    }
    check_names(r, owner, pts, refs, s, n);
    check_overlaps(r, pts, refs, s, n);
    free(s);
}

static void resolve_poll_groups(struct res *r)
{
    const struct cfg__list *l = &r->raw->poll_groups;
    struct cfg *cfg = r->cfg;
    const struct cfg__schema *s = &cfg__schema_poll_group;
    struct name_index *raw = calloc(1, sizeof(*raw));
    r->groups = calloc(1, sizeof(*r->groups));
    cfg->poll_groups = calloc(l->n + 1, sizeof(*cfg->poll_groups));
    if (!raw || !r->groups || !cfg->poll_groups)
        goto oom;
    for (size_t i = 0; i < l->n; i++) {
        const struct cfg__raw_poll_group *g =
            (const struct cfg__raw_poll_group *)l->items + i;
        if (!cfg__is_bad(s, g, "name") && !index_add(raw, g->name, g))
            goto oom;
    }
    report_duplicates(r, raw, s, "poll group", "");
    /* "default" is always group 0; the others follow in file order. */
    cfg->poll_groups[0].name = dup_or_null(r, "default");
    cfg->poll_groups[0].interval_ms = 1000;
    cfg->n_poll_groups = 1;
    for (size_t i = 0; i < l->n; i++) {
        const struct cfg__raw_poll_group *g =
            (const struct cfg__raw_poll_group *)l->items + i;
        if (!g->name || cfg__is_bad(s, g, "name") ||
            index_find(raw, g->name) != g)
            continue; /* unnamed, or a duplicate (reported) */
        struct cfg_poll_group *pg = &cfg->poll_groups[0];
        if (strcmp(g->name, "default") != 0) {
            pg = &cfg->poll_groups[cfg->n_poll_groups++];
            pg->name = dup_or_null(r, g->name);
        }
        pg->interval_ms =
            cfg__has(s, g, "interval") && !cfg__is_bad(s, g, "interval")
                ? g->interval_ms
                : 1000;
        pg->mark = g->hdr.mark;
    }
    for (size_t i = 0; i < cfg->n_poll_groups; i++) {
        if (!index_add(r->groups, cfg->poll_groups[i].name,
                       &cfg->poll_groups[i]))
            goto oom;
    }
    index_sort(r->groups);
    index_free(raw);
    return;
oom:
    index_free(raw);
    r->ctx.oom = true;
}

static const struct cfg__raw_template *raw_template(const struct res *r,
                                                    const char *name)
{
    return index_find(r->templates, name);
}

/* Resolves a list of raw point lists (template's, then unit's) into one
 * array and runs the per-unit checks on it. */
static void resolve_point_lists(struct res *r,
                                const struct cfg__list *const *lists,
                                size_t n_lists, const struct pctx *pc,
                                const char *owner, struct cfg_point **out,
                                size_t *n_out)
{
    size_t total = 0;
    for (size_t i = 0; i < n_lists; i++)
        total += lists[i] ? lists[i]->n : 0;
    *out = NULL;
    *n_out = 0;
    if (total == 0)
        return;
    struct cfg_point *pts = calloc(total, sizeof(*pts));
    struct pref *refs = calloc(total, sizeof(*refs));
    if (!pts || !refs) {
        free(pts);
        free(refs);
        r->ctx.oom = true;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < n_lists; i++) {
        if (!lists[i])
            continue;
        for (size_t k = 0; k < lists[i]->n; k++) {
            const struct cfg__raw_point *rp =
                (const struct cfg__raw_point *)lists[i]->items + k;
            refs[n].raw = rp;
            refs[n].layout = resolve_point(r, rp, pc, &pts[n]);
            n++;
        }
    }
    check_points(r, owner, pts, refs, n);
    free(refs);
    *out = pts;
    *n_out = n;
}

static void resolve_templates(struct res *r)
{
    const struct cfg__list *l = &r->raw->templates;
    struct cfg *cfg = r->cfg;
    const struct cfg__schema *s = &cfg__schema_template;
    if (l->n == 0)
        return;
    cfg->templates = calloc(l->n, sizeof(*cfg->templates));
    if (!cfg->templates) {
        r->ctx.oom = true;
        return;
    }
    r->templates = calloc(1, sizeof(*r->templates));
    if (!r->templates) {
        r->ctx.oom = true;
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        const struct cfg__raw_template *t =
            (const struct cfg__raw_template *)l->items + i;
        if (!cfg__is_bad(s, t, "name") &&
            !index_add(r->templates, t->name, t)) {
            r->ctx.oom = true;
            return;
        }
    }
    report_duplicates(r, r->templates, s, "template", "");
    for (size_t i = 0; i < l->n; i++) {
        const struct cfg__raw_template *t =
            (const struct cfg__raw_template *)l->items + i;
        struct cfg_template *ct = &cfg->templates[cfg->n_templates++];
        ct->name = dup_or_null(r, t->name);
        ct->description = dup_or_null(r, t->description);
        ct->mark = t->hdr.mark;
        /* As written: address_base 0, the template's own byte order. */
        struct pctx pc = {
            .address_base = 0,
            .byte_order =
                cfg__has(s, t, "byte_order") && !cfg__is_bad(s, t, "byte_order")
                    ? cfg__byte_order_names[t->byte_order]
                    : "ABCD",
            .poll_group = 0,
            .events = r->cfg->events.defaults,
        };
        rule_apply(r, &pc.events, t->events);
        char owner[CFG_MAX_NAME + 16];
        snprintf(owner, sizeof(owner), "template '%s'",
                 t->name ? t->name : "?");
        const struct cfg__list *lists[] = {&t->points};
        resolve_point_lists(r, lists, 1, &pc, owner, &ct->points,
                            &ct->n_points);
    }
}

/* A unit setting: the unit's when written, else the template's, else
 * fallback. */
#define SETTING(field, key, fallback)                                          \
    (cfg__has(us, u, key) && !cfg__is_bad(us, u, key)        ? u->field        \
     : t && cfg__has(ts, t, key) && !cfg__is_bad(ts, t, key) ? t->field        \
                                                             : (fallback))

static void resolve_unit(struct res *r, const struct cfg__raw_link *rl,
                         const struct cfg_link *cl,
                         const struct cfg__raw_unit *u, struct cfg_unit *cu)
{
    const struct cfg__schema *us = &cfg__schema_unit;
    const struct cfg__schema *ts = &cfg__schema_template;
    const struct cfg__schema *ls = &cfg__schema_link;
    struct cfg__ctx *c = &r->ctx;

    cu->name = dup_or_null(r, u->name);
    cu->description = dup_or_null(r, u->description);
    cu->mark = u->hdr.mark;
    cu->id = (uint8_t)u->id;

    bool type_ok = !cfg__is_bad(ls, rl, "type") && !rl->hdr.broken;
    if (type_ok && cl->type != CFG_LINK_TCP && cfg__has(us, u, "id") &&
        !cfg__is_bad(us, u, "id") && (u->id < 1 || u->id > 247))
        cfg__field_error(c, us, u, "id",
                         "unit id %" PRIu64 " out of range 1..247 on an %s "
                         "link (0 is broadcast)",
                         u->id, cfg_link_type_name(cl->type));

    const struct cfg__raw_template *t = NULL;
    if (cfg__has(us, u, "template") && !cfg__is_bad(us, u, "template")) {
        t = raw_template(r, u->template_name);
        if (!t)
            cfg__field_error(c, us, u, "template", "unknown template '%.64s'",
                             u->template_name);
        else
            cu->template_name = dup_or_null(r, u->template_name);
    }

    cu->poll_group = 0;
    if (cfg__has(us, u, "poll") && !cfg__is_bad(us, u, "poll") &&
        !find_poll_group(r, u->poll, &cu->poll_group))
        cfg__field_error(c, us, u, "poll", "unknown poll group '%.64s'",
                         u->poll);

    cu->timeout_ms = SETTING(timeout_ms, "timeout", cl->timeout_ms);
    cu->retries = (uint32_t)SETTING(retries, "retries", 0);
    cu->max_registers = (uint16_t)SETTING(max_registers, "max_registers",
                                          CFG_MAX_READ_REGISTERS);
    cu->max_bits = (uint16_t)SETTING(max_bits, "max_bits", CFG_MAX_READ_BITS);
    cu->max_gap = (uint16_t)SETTING(max_gap, "max_gap", 0);
    cu->single_register = SETTING(single_register, "single_register", false);
    int bo = SETTING(byte_order, "byte_order", 0);
    snprintf(cu->byte_order, sizeof(cu->byte_order), "%s",
             cfg__byte_order_names[bo]);

    struct pctx pc = {
        .address_base = (int)cl->address_base,
        .byte_order = cu->byte_order,
        .poll_group = cu->poll_group,
        .events = r->cfg->events.defaults,
    };
    /* events: a unit setting, key by key: unit > template > defaults */
    if (t)
        rule_apply(r, &pc.events, t->events);
    rule_apply(r, &pc.events, u->events);
    char owner[CFG_MAX_NAME + 16];
    snprintf(owner, sizeof(owner), "unit '%s'", u->name ? u->name : "?");
    const struct cfg__list *lists[] = {t ? &t->points : NULL, &u->points};
    resolve_point_lists(r, lists, 2, &pc, owner, &cu->points, &cu->n_points);
}

static bool standard_baud(uint64_t b)
{
    static const uint64_t rates[] = {1200,  2400,  4800,   9600,  19200,
                                     38400, 57600, 115200, 230400};
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        if (b == rates[i])
            return true;
    }
    return false;
}

static void resolve_link(struct res *r, const struct cfg__raw_link *rl,
                         struct cfg_link *cl)
{
    const struct cfg__schema *s = &cfg__schema_link;
    struct cfg__ctx *c = &r->ctx;
    cl->name = dup_or_null(r, rl->name);
    cl->mark = rl->hdr.mark;
    cl->type = (enum cfg_link_type)rl->type;
    cl->host = dup_or_null(r, rl->host);
    cl->port = (uint16_t)rl->port;
    cl->device = dup_or_null(r, rl->device);
    cl->baud = (uint32_t)rl->baud;
    cl->parity = (enum cfg_parity)rl->parity;
    cl->data_bits = (uint8_t)rl->data_bits;
    cl->stop_bits = (uint8_t)rl->stop_bits;
    cl->rs485 = rl->rs485;
    cl->timeout_ms = rl->timeout_ms;
    cl->turnaround_ms = rl->turnaround_ms;
    cl->delay_ms = rl->delay_ms;
    cl->address_base = (uint8_t)rl->address_base;

    if (cfg__has(s, rl, "type") && !cfg__is_bad(s, rl, "type")) {
        const char *tn = cfg_link_type_name(cl->type);
        const char *an = cl->type == CFG_LINK_TCP ? "a" : "an";
        if (cl->type == CFG_LINK_RTU) {
            if (!cfg__has(s, rl, "device"))
                cfg__field_error(c, s, rl, "device",
                                 "an rtu link needs 'device' (the serial "
                                 "port, e.g. /dev/ttyUSB0)");
            static const char *const net[] = {"host", "port"};
            for (size_t i = 0; i < 2; i++) {
                if (cfg__has(s, rl, net[i]))
                    cfg__field_error(c, s, rl, net[i],
                                     "'%s' is not allowed on an rtu link "
                                     "(it uses 'device')",
                                     net[i]);
            }
            if (cfg__has(s, rl, "baud") && !cfg__is_bad(s, rl, "baud") &&
                !standard_baud(rl->baud))
                cfg__field_error(c, s, rl, "baud",
                                 "baud %" PRIu64 " is not a standard rate "
                                 "(1200, 2400, 4800, 9600, 19200, 38400, "
                                 "57600, 115200, 230400)",
                                 rl->baud);
        } else {
            if (!cfg__has(s, rl, "host"))
                cfg__field_error(c, s, rl, "host",
                                 "%s %s link needs 'host' (name or address)",
                                 an, tn);
            if (cfg__has(s, rl, "device"))
                cfg__field_error(c, s, rl, "device",
                                 "'device' is only for rtu links; %s %s link "
                                 "uses 'host' and 'port'",
                                 an, tn);
            static const char *const serial[] = {"baud", "parity", "data_bits",
                                                 "stop_bits", "rs485"};
            for (size_t i = 0; i < sizeof(serial) / sizeof(serial[0]); i++) {
                if (cfg__has(s, rl, serial[i]))
                    cfg__field_error(c, s, rl, serial[i],
                                     "'%s' is only for rtu links (set it on "
                                     "the device or gateway of %s %s link)",
                                     serial[i], an, tn);
            }
        }
    }

    if (rl->units.n == 0)
        return;
    cl->units = calloc(rl->units.n, sizeof(*cl->units));
    if (!cl->units) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < rl->units.n; i++) {
        const struct cfg__raw_unit *u =
            (const struct cfg__raw_unit *)rl->units.items + i;
        resolve_unit(r, rl, cl, u, &cl->units[cl->n_units++]);
    }
}

static void resolve_links(struct res *r)
{
    const struct cfg__list *l = &r->raw->links;
    struct cfg *cfg = r->cfg;
    const struct cfg__schema *s = &cfg__schema_link;
    if (l->n == 0 && cfg__is_bad(&cfg__schema_root, r->raw, "links"))
        return; /* "links" is there but not a list: already reported */
    if (l->n == 0) {
        struct cfg_mark m = cfg__mark(&cfg__schema_root, r->raw, "links");
        if (cfg__error(r->ctx.errs, m, "links", "no links: nothing to poll") !=
            GW_OK)
            r->ctx.oom = true;
        return;
    }
    cfg->links = calloc(l->n, sizeof(*cfg->links));
    struct name_index *links = calloc(1, sizeof(*links));
    struct name_index *units = calloc(1, sizeof(*units));
    if (!cfg->links || !links || !units)
        goto oom;
    for (size_t i = 0; i < l->n; i++) {
        const struct cfg__raw_link *rl =
            (const struct cfg__raw_link *)l->items + i;
        if (!cfg__is_bad(s, rl, "name") && !index_add(links, rl->name, rl))
            goto oom;
        for (size_t k = 0; k < rl->units.n; k++) {
            const struct cfg__raw_unit *u =
                (const struct cfg__raw_unit *)rl->units.items + k;
            if (!cfg__is_bad(&cfg__schema_unit, u, "name") &&
                !index_add(units, u->name, u))
                goto oom;
        }
    }
    report_duplicates(r, links, s, "link", "");
    report_duplicates(r, units, &cfg__schema_unit, "unit",
                      "; unit names are unique in the whole map");
    for (size_t i = 0; i < l->n; i++) {
        const struct cfg__raw_link *rl =
            (const struct cfg__raw_link *)l->items + i;
        resolve_link(r, rl, &cfg->links[cfg->n_links++]);
    }
    index_free(links);
    index_free(units);
    return;
oom:
    index_free(links);
    index_free(units);
    r->ctx.oom = true;
}

/* ---- xmpp: and access: ------------------------------------------------ */

/* Moves a decoded string into the model (the raw side keeps NULL). */
static char *take(char **s)
{
    char *v = *s;
    *s = NULL;
    return v;
}

/* "local@domain" with both parts non-empty, no resource, no spaces. */
static bool bare_jid_ok(const char *s, bool domain_allowed)
{
    const char *at = strchr(s, '@');
    if (strchr(s, '/') || strpbrk(s, " \t\r\n\"'<>&"))
        return false;
    if (!at)
        return domain_allowed && s[0] != '\0';
    return at != s && at[1] != '\0' && !strchr(at + 1, '@');
}

static const char *const sasl_names[] = {"SCRAM-SHA-256-PLUS",
                                         "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                                         "SCRAM-SHA-1", "PLAIN"};

static void resolve_xmpp(struct res *r)
{
    struct cfg__raw_xmpp *rx = r->raw->xmpp;
    const struct cfg__schema *s = &cfg__schema_xmpp;
    if (!rx || rx->hdr.broken)
        return;
    struct cfg_xmpp *x = &r->cfg->xmpp;
    x->present = true;
    x->mark = rx->hdr.mark;
    if (rx->jid && !bare_jid_ok(rx->jid, false))
        cfg__field_error(&r->ctx, s, rx, "jid",
                         "'%.80s' is not a bare JID (user@domain, no "
                         "resource)",
                         rx->jid);
    bool pw = cfg__has(s, rx, "password"),
         pf = cfg__has(s, rx, "password_file");
    if (pw && pf)
        cfg__field_error(&r->ctx, s, rx, "password",
                         "give password or password_file, not both");
    else if (!pw && !pf)
        cfg__field_error(&r->ctx, s, rx, NULL,
                         "missing key 'password_file' (or 'password')");
    const char *domain = rx->jid ? strchr(rx->jid, '@') : NULL;
    if (rx->insecure_server && domain &&
        strcasecmp(rx->insecure_server, domain + 1) != 0)
        cfg__field_error(&r->ctx, s, rx, "insecure_server",
                         "'%.80s' is not the JID's server '%.80s': "
                         "verification can only be turned off for the "
                         "server the gateway logs in to",
                         rx->insecure_server, domain + 1);
    unsigned mechs = 0;
    for (size_t i = 0; i < rx->sasl_mechanisms.n; i++) {
        const char *m = rx->sasl_mechanisms.items[i];
        size_t k = 0;
        while (k < 5 && strcmp(m, sasl_names[k]) != 0)
            k++;
        if (k == 5) {
            cfg__field_error(&r->ctx, s, rx, "sasl_mechanisms",
                             "unknown mechanism '%.40s' (expected "
                             "SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS, "
                             "SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN)",
                             m);
            continue;
        }
        if (k == 4 && !rx->allow_plain)
            cfg__field_error(&r->ctx, s, rx, "sasl_mechanisms",
                             "PLAIN is listed but allow_plain is false");
        mechs |= 1u << k;
    }
    if (cfg__has(s, rx, "sasl_mechanisms") && rx->sasl_mechanisms.n == 0 &&
        !cfg__is_bad(s, rx, "sasl_mechanisms"))
        cfg__field_error(&r->ctx, s, rx, "sasl_mechanisms",
                         "empty list: no way to log in");
    if (rx->reconnect_min_ms > rx->reconnect_max_ms)
        cfg__field_error(&r->ctx, s, rx, "reconnect_min",
                         "larger than reconnect_max");
    x->jid = take(&rx->jid);
    x->password = take(&rx->password);
    x->password_file = take(&rx->password_file);
    x->resource = take(&rx->resource);
    x->host = take(&rx->host);
    x->port = (uint16_t)rx->port;
    x->tls = rx->tls == 1 ? CFG_TLS_DIRECT : CFG_TLS_STARTTLS;
    x->ca_file = take(&rx->ca_file);
    x->insecure_server = take(&rx->insecure_server);
    x->sasl_mechanisms = mechs;
    x->allow_plain = rx->allow_plain;
    x->keepalive_ms = rx->keepalive_ms;
    x->ping_timeout_ms = rx->ping_timeout_ms;
    x->reconnect_min_ms = rx->reconnect_min_ms;
    x->reconnect_max_ms = rx->reconnect_max_ms;
    x->stanza_max = (uint32_t)rx->stanza_max;
    x->status = take(&rx->status);
    x->control_max_age_ms = rx->control_max_age_ms;
    x->control_max_writes = (uint32_t)rx->control_max_writes;
    x->control_max_bus_ms = rx->control_max_bus_ms;
}

static void resolve_store(struct res *r)
{
    const struct cfg__raw_store *rs = r->raw->store;
    if (!rs || rs->hdr.broken)
        return;
    r->cfg->store.history = (uint32_t)rs->history;
    r->cfg->store.fresh_ms = rs->fresh_ms;
}

static void access_list(struct res *r, struct cfg__raw_access *ra,
                        const char *key, struct cfg__strlist *in, char ***out,
                        size_t *n_out)
{
    const struct cfg__schema *s = &cfg__schema_access;
    for (size_t i = 0; i < in->n; i++)
        if (!bare_jid_ok(in->items[i], true))
            cfg__field_error(&r->ctx, s, ra, key,
                             "'%.80s' is neither a bare JID (user@domain) "
                             "nor a domain",
                             in->items[i]);
    *out = in->items;
    *n_out = in->n;
    in->items = NULL;
    in->n = 0;
}

static void resolve_access(struct res *r)
{
    struct cfg__raw_access *ra = r->raw->access;
    if (!ra || ra->hdr.broken)
        return;
    struct cfg_access *a = &r->cfg->access;
    a->mark = ra->hdr.mark;
    access_list(r, ra, "readers", &ra->readers, &a->readers, &a->n_readers);
    access_list(r, ra, "controllers", &ra->controllers, &a->controllers,
                &a->n_controllers);
    if (!r->raw->xmpp)
        cfg__field_error(&r->ctx, &cfg__schema_root, r->raw, "access",
                         "an access section without an xmpp section has no "
                         "effect");
}

/* ---- events: ------------------------------------------------------------ */

static void warn(struct res *r, struct cfg_mark mark, const char *path,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A warning (the map still loads): into cfg->warnings. */
static void warn(struct res *r, struct cfg_mark mark, const char *path,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (cfg__verror(&r->cfg->warnings, mark, path, fmt, ap) != GW_OK)
        r->ctx.oom = true;
    va_end(ap);
}

/* A PubSub service address: a domain (pubsub.example.org) or a bare JID
 * (user@domain); no resource, no empty labels, parts of at most 1023
 * bytes (RFC 7622). */
static bool service_jid_ok(const char *s)
{
    if (!bare_jid_ok(s, true))
        return false;
    const char *at = strchr(s, '@');
    const char *domain = at ? at + 1 : s;
    size_t dlen = strlen(domain);
    if ((at && (size_t)(at - s) > 1023) || dlen == 0 || dlen > 1023)
        return false;
    if (domain[0] == '.' || domain[dlen - 1] == '.' || strstr(domain, ".."))
        return false;
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

/* Domain entries of access: cannot be on a node's whitelist (XEP-0060
 * affiliations are per bare JID). */
static void warn_domains(struct res *r, const struct cfg__strlist *list,
                         const char *key)
{
    for (size_t i = 0; i < list->n; i++) {
        const char *e = list->items[i];
        if (!e || strchr(e, '@') || !bare_jid_ok(e, true))
            continue;
        char path[64];
        snprintf(path, sizeof(path), "access.%s[%zu]", key, i);
        warn(r, list->marks ? list->marks[i] : r->raw->access->hdr.mark, path,
             "domains cannot be whitelisted: %s from %.80s will not be able "
             "to subscribe to the event nodes (access_model whitelist); list "
             "bare JIDs",
             key, e);
    }
}

static void resolve_spool(struct res *r, struct cfg_events *ev,
                          const struct cfg__raw_events *re);

/* Runs before the templates and links, whose points inherit
 * events.defaults; reads the raw xmpp: and access: sections. */
static void resolve_events(struct res *r)
{
    struct cfg_events *ev = &r->cfg->events;
    const struct cfg__raw_events *re = r->raw->events;
    const struct cfg__raw_xmpp *rx = r->raw->xmpp;
    const struct cfg__schema *s = &cfg__schema_events;
    const struct cfg__schema *ns = &cfg__schema_events_node;
    struct cfg__ctx *c = &r->ctx;

    /* Defaults, with or without the section. */
    ev->defaults = rule_builtin;
    ev->access_model = CFG_AM_PRESENCE;
    ev->max_items = 1;
    ev->persist_items = false;
    ev->notification_type = CFG_NOTIFY_HEADLINE;
    ev->send_last = CFG_SEND_LAST_ON_SUB_AND_PRESENCE;
    ev->window = 16;
    ev->publish_timeout_ms = 10000;
    ev->delivery = CFG_DELIVERY_LATEST;
    ev->spool.max_bytes = CFG_SPOOL_DEFAULT_BYTES;
    ev->spool.fsync_ms = CFG_SPOOL_DEFAULT_FSYNC_MS;

    /* Default prefix: "fieldgate/" + the local part of xmpp.jid + "/". */
    char prefix[CFG_EVENTS_PREFIX_MAX + 16];
    snprintf(prefix, sizeof(prefix), "fieldgate/");
    if (rx && rx->jid && bare_jid_ok(rx->jid, false)) {
        const char *at = strchr(rx->jid, '@');
        int local = (int)(at - rx->jid);
        if (local > 0 && local <= 64)
            snprintf(prefix, sizeof(prefix), "fieldgate/%.*s/", local, rx->jid);
    }

    if (!re || re->hdr.broken) {
        ev->node_prefix = dup_or_null(r, prefix);
        return;
    }
    ev->present = true;
    ev->mark = re->hdr.mark;
    if (!rx)
        cfg__field_error(c, &cfg__schema_root, r->raw, "events",
                         "an events section needs an xmpp section (events "
                         "are published by the gateway's XMPP account)");

    if (cfg__has(s, re, "service") && !cfg__is_bad(s, re, "service")) {
        if (strcasecmp(re->service, "pep") == 0)
            cfg__field_error(c, s, re, "service",
                             "'%.40s' is not a service JID: leave 'service' "
                             "out to publish to the gateway's own PEP "
                             "service",
                             re->service);
        else if (!service_jid_ok(re->service))
            cfg__field_error(c, s, re, "service",
                             "'%.80s' is not a PubSub service JID (a domain "
                             "like pubsub.example.org, or user@domain; no "
                             "resource)",
                             re->service);
        else if (rx && rx->jid && strcasecmp(rx->jid, re->service) == 0)
            cfg__field_error(c, s, re, "service",
                             "'%.80s' is the gateway's own JID: leave "
                             "'service' out to publish to its PEP service",
                             re->service);
        else
            ev->service = dup_or_null(r, re->service);
    }

    if (cfg__has(s, re, "node_prefix") && !cfg__is_bad(s, re, "node_prefix")) {
        const char *np = re->node_prefix;
        size_t len = strlen(np);
        bool ctl = false;
        for (size_t i = 0; i < len; i++)
            ctl |= (unsigned char)np[i] < 0x20 || np[i] == 0x7f;
        if (len > CFG_EVENTS_PREFIX_MAX)
            cfg__field_error(c, s, re, "node_prefix",
                             "node_prefix is %zu bytes long; at most %d", len,
                             CFG_EVENTS_PREFIX_MAX);
        else if (ctl)
            cfg__field_error(c, s, re, "node_prefix",
                             "node_prefix contains a control character");
        else
            snprintf(prefix, sizeof(prefix), "%s", np);
    }
    ev->node_prefix = dup_or_null(r, prefix);

    const struct cfg__raw_events_node *rn = re->node;
    bool node_ok = rn && !rn->hdr.broken;
    bool explicit_am = node_ok && cfg__has(ns, rn, "access_model") &&
                       !cfg__is_bad(ns, rn, "access_model");
    if (explicit_am)
        ev->access_model = (enum cfg_access_model)rn->access_model;
    else
        ev->access_model = re->service ? CFG_AM_WHITELIST : CFG_AM_PRESENCE;
    if (node_ok) {
        ev->max_items = (uint32_t)rn->max_items;
        ev->persist_items = rn->persist_items;
        ev->notification_type =
            (enum cfg_notification_type)rn->notification_type;
        ev->send_last = (enum cfg_send_last)rn->send_last;
    }
    ev->window = (uint32_t)re->window;
    ev->publish_timeout_ms = re->publish_timeout_ms;
    rule_apply(r, &ev->defaults, re->defaults);
    ev->delivery = (enum cfg_delivery)re->delivery;
    resolve_spool(r, ev, re);

    /* Warnings: access: entries the node access model cannot honour. */
    const struct cfg__raw_access *ra = r->raw->access;
    if (ra && !ra->hdr.broken) {
        if (ev->access_model == CFG_AM_WHITELIST) {
            warn_domains(r, &ra->readers, "readers");
            warn_domains(r, &ra->controllers, "controllers");
        } else if (ev->access_model == CFG_AM_OPEN &&
                   ra->readers.n + ra->controllers.n > 0) {
            warn(r,
                 explicit_am ? cfg__mark(ns, rn, "access_model") : re->hdr.mark,
                 explicit_am ? "events.node.access_model" : "events",
                 "access_model open: anyone who can reach the service may "
                 "subscribe to the events; access: only restricts readouts "
                 "and control");
        }
    }
}

/* events.spool (its defaults are already in ev->spool). */
static void resolve_spool(struct res *r, struct cfg_events *ev,
                          const struct cfg__raw_events *re)
{
    const struct cfg__raw_spool *rs = re->spool;
    const struct cfg__schema *s = &cfg__schema_spool;
    struct cfg__ctx *c = &r->ctx;
    if (!rs || rs->hdr.broken)
        return;
    ev->spool.mark = rs->hdr.mark;
    if (ev->delivery != CFG_DELIVERY_EVERY)
        warn(r, rs->hdr.mark, "events.spool",
             "the spool is used only with events.delivery: every (delivery "
             "is latest here)");
    if (cfg__has(s, rs, "dir") && !cfg__is_bad(s, rs, "dir")) {
        const char *d = rs->dir;
        bool ctl = false;
        for (const char *p = d; *p; p++)
            ctl |= (unsigned char)*p < 0x20 || *p == 0x7f;
        if (d[0] != '/')
            cfg__field_error(c, s, rs, "dir",
                             "'%.80s' is not an absolute path (the daemon "
                             "runs in /)",
                             d);
        else if (ctl)
            cfg__field_error(c, s, rs, "dir",
                             "the path contains a control character");
        else if (strlen(d) > 3000)
            cfg__field_error(c, s, rs, "dir", "the path is too long");
        else
            ev->spool.dir = dup_or_null(r, d);
    }
    ev->spool.max_bytes = rs->max_bytes;
    ev->spool.max_age_ms = rs->max_age_ms;
    if (cfg__has(s, rs, "max_age") && !cfg__is_bad(s, rs, "max_age") &&
        rs->max_age_ms > 0 && rs->max_age_ms < 60000)
        cfg__field_error(c, s, rs, "max_age",
                         "max_age must be 0 (no age bound) or at least 1m");
    if (rs->fsync && !cfg__is_bad(s, rs, "fsync")) {
        uint32_t ms = 0;
        const char *why = NULL;
        if (strcmp(rs->fsync, "every") == 0)
            ev->spool.fsync_ms = 0;
        else if (cfg__parse_duration(rs->fsync, &ms, &why) != 0)
            cfg__field_error(c, s, rs, "fsync",
                             "'%.40s' is neither 'every' nor a duration: it "
                             "%s",
                             rs->fsync, why);
        else if (ms < 1 || ms > 3600000)
            cfg__field_error(c, s, rs, "fsync",
                             "fsync %.40s out of range 1ms..1h (use 'every' "
                             "to sync after each record)",
                             rs->fsync);
        else
            ev->spool.fsync_ms = ms;
    }
}

/* The sections' resolve hooks, run in this order after decoding (poll
 * groups, events (defaults of every point's rule) and templates before the
 * links that use them; events before xmpp and access, whose raw sections
 * it reads). */
static void (*const resolve_hooks[])(struct res *r) = {
    resolve_poll_groups, resolve_events, resolve_templates, resolve_links,
    resolve_xmpp,        resolve_access, resolve_store,
};

/* ---- entry points ---------------------------------------------------------
 */

static int set_file(struct cfg_errors *errs, const char *name)
{
    free(errs->file);
    errs->file = strdup(name ? name : "(config)");
    return errs->file ? GW_OK : GW_ENOMEM;
}

int cfg_load_buffer(const char *name, const char *data, size_t len,
                    struct cfg **out, struct cfg_errors *errs)
{
    *out = NULL;
    if (set_file(errs, name) != GW_OK)
        return GW_ENOMEM;
    size_t errors_before = errs->n;
    struct cfg_mark top = {1, 1};
    if (len > CFG__MAX_FILE) {
        if (cfg__error(errs, (struct cfg_mark){0, 0}, "",
                       "the file is larger than 16 MiB") != GW_OK)
            return GW_ENOMEM;
        return GW_ECONFIG;
    }
    struct cfg__node *root = NULL;
    int rc = cfg__yaml_parse(data ? data : "", data ? len : 0, &root, errs);
    if (rc != GW_OK)
        goto sort;
    if (!root || cfg__node_is_null(root) || root->kind != CFG__NODE_MAP) {
        const char *what = !root || cfg__node_is_null(root) ? "empty"
                           : root->kind == CFG__NODE_SEQ    ? "a list"
                                                            : "a single value";
        if (cfg__error(errs, root ? root->mark : top, "",
                       "the device map is %s; expected a mapping with at "
                       "least 'links'",
                       what) != GW_OK)
            rc = GW_ENOMEM;
        else
            rc = GW_ECONFIG;
        cfg__node_free(root);
        goto sort;
    }

    struct res r;
    memset(&r, 0, sizeof(r));
    r.ctx.errs = errs;
    struct cfg__raw_root *raw = calloc(1, sizeof(*raw));
    r.cfg = calloc(1, sizeof(*r.cfg));
    if (!raw || !r.cfg) {
        free(raw);
        free(r.cfg);
        cfg__node_free(root);
        rc = GW_ENOMEM;
        goto sort;
    }
    r.raw = raw;
    cfg__decode(&r.ctx, &cfg__schema_root, root, "", raw);
    cfg__node_free(root);
    r.cfg->path = strdup(name ? name : "(config)");
    r.cfg->warnings.file = strdup(name ? name : "(config)");
    if (!r.cfg->path || !r.cfg->warnings.file)
        r.ctx.oom = true;
    for (size_t i = 0;
         i < sizeof(resolve_hooks) / sizeof(resolve_hooks[0]) && !r.ctx.oom;
         i++)
        resolve_hooks[i](&r);
    index_free(r.groups);
    index_free(r.templates);
    free(r.cover);
    cfg__obj_free(&cfg__schema_root, raw);
    free(raw);
    if (r.ctx.oom) {
        cfg_free(r.cfg);
        rc = GW_ENOMEM;
    } else if (errs->n > errors_before) {
        cfg_free(r.cfg);
        rc = GW_ECONFIG;
    } else {
        cfg__errors_sort(&r.cfg->warnings);
        *out = r.cfg;
        rc = GW_OK;
    }
sort:
    cfg__errors_sort(errs);
    return rc;
}

int cfg_load(const char *path, struct cfg **out, struct cfg_errors *errs)
{
    *out = NULL;
    if (set_file(errs, path) != GW_OK)
        return GW_ENOMEM;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (cfg__error(errs, (struct cfg_mark){0, 0}, "", "cannot open: %s",
                       strerror(e)) != GW_OK)
            return GW_ENOMEM;
        return GW_EIO;
    }
    int rc = GW_OK;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = cfg__error(errs, (struct cfg_mark){0, 0}, "",
                        "is a directory, not a device map");
        rc = rc == GW_OK ? GW_EIO : rc;
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > CFG__MAX_FILE) {
                rc = cfg__error(errs, (struct cfg_mark){0, 0}, "",
                                "the file is larger than 16 MiB");
                rc = rc == GW_OK ? GW_ECONFIG : rc;
                goto out;
            }
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                rc = GW_ENOMEM;
                goto out;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                int e = errno;
                rc = cfg__error(errs, (struct cfg_mark){0, 0}, "",
                                "read error: %s", strerror(e));
                rc = rc == GW_OK ? GW_EIO : rc;
                goto out;
            }
            break;
        }
    }
    rc = cfg_load_buffer(path, buf ? buf : "", len, out, errs);
out:
    free(buf);
    fclose(f);
    return rc;
}
