/* cfg_yaml.c - libyaml events -> a small node tree with 1-based marks.
 *
 * Bounded: the caller limits the input size, nesting stops at
 * CFG__MAX_DEPTH, the tree at CFG__MAX_NODES nodes.  Anchors and aliases
 * are rejected (no expansion ever happens, so "billion laughs" inputs cost
 * nothing), and so are tags: a device map is plain data. */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cfg_int.h"
#include "gw_err.h"

struct frame {
    struct cfg__node *node;
};

struct builder {
    struct cfg_errors *errs;
    struct frame stack[CFG__MAX_DEPTH + 1];
    int depth; /* frames in use */
    struct cfg__node *root;
    size_t nodes;
    int docs;
    bool failed; /* an error that stops the parse was reported */
    bool oom;
};

void cfg__node_free(struct cfg__node *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->n; i++)
        cfg__node_free(node->kids[i]);
    free(node->kids);
    free(node->text);
    free(node);
}

bool cfg__node_is_null(const struct cfg__node *node)
{
    if (!node)
        return true;
    if (node->kind != CFG__NODE_SCALAR || !node->plain)
        return false;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        if (strcmp(node->text, nulls[i]) == 0)
            return true;
    }
    return false;
}

static struct cfg_mark mark_of(yaml_mark_t m)
{
    struct cfg_mark mk;
    mk.line = (uint32_t)(m.line + 1 > UINT32_MAX ? UINT32_MAX : m.line + 1);
    mk.col = (uint32_t)(m.column + 1 > UINT32_MAX ? UINT32_MAX : m.column + 1);
    return mk;
}

/* Writes into buf the key path of the innermost open collection; with
 * next, of the value about to be added to it. */
static void current_path(const struct builder *b, bool next, char *buf,
                         size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < b->depth; i++) {
        const struct cfg__node *n = b->stack[i].node;
        bool last = i == b->depth - 1;
        int w = 0;
        if (last && !next)
            break;
        if (n->kind == CFG__NODE_SEQ) {
            w = snprintf(buf + len, size - len, "[%zu]",
                         last ? n->n : n->n - 1);
        } else if (last) {
            if (n->n % 2 == 1)
                w = snprintf(buf + len, size - len, "%s%.64s", len ? "." : "",
                             n->kids[n->n - 1]->text);
        } else if (n->n >= 2) {
            w = snprintf(buf + len, size - len, "%s%.64s", len ? "." : "",
                         n->kids[n->n - 2]->text);
        }
        if (w < 0 || (size_t)w >= size - len)
            return;
        len += (size_t)w;
    }
}

static void fail(struct builder *b, yaml_mark_t m, const char *msg)
{
    char path[CFG__PATH_MAX];
    current_path(b, true, path, sizeof(path));
    if (cfg__error(b->errs, mark_of(m), path, "%s", msg) != GW_OK)
        b->oom = true;
    b->failed = true;
}

static struct cfg__node *node_new(struct builder *b, enum cfg__node_kind kind,
                                  yaml_mark_t m)
{
    if (b->nodes >= CFG__MAX_NODES) {
        fail(b, m, "document too large (more than 2000000 nodes)");
        return NULL;
    }
    struct cfg__node *n = calloc(1, sizeof(*n));
    if (!n) {
        b->oom = true;
        b->failed = true;
        return NULL;
    }
    n->kind = kind;
    n->mark = mark_of(m);
    b->nodes++;
    return n;
}

/* Hangs node under the innermost open collection (or makes it the root).
 * Takes ownership of node in every case. */
static void attach(struct builder *b, struct cfg__node *node, yaml_mark_t m)
{
    if (b->depth == 0) {
        if (b->root) {
            cfg__node_free(node);
            fail(b, m, "more than one top-level value");
            return;
        }
        b->root = node;
        return;
    }
    struct cfg__node *parent = b->stack[b->depth - 1].node;
    if (parent->kind == CFG__NODE_MAP && parent->n % 2 == 0 &&
        node->kind != CFG__NODE_SCALAR) {
        cfg__node_free(node);
        fail(b, m, "a mapping key must be a plain value");
        return;
    }
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        struct cfg__node **kids =
            realloc(parent->kids, cap * sizeof(*parent->kids));
        if (!kids) {
            cfg__node_free(node);
            b->oom = true;
            b->failed = true;
            return;
        }
        parent->kids = kids;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = node;
}

struct key_ref {
    const struct cfg__node *key;
    size_t index;
};

static int key_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    size_t n = x->key->len < y->key->len ? x->key->len : y->key->len;
    int c = memcmp(x->key->text, y->key->text, n);
    if (c)
        return c;
    if (x->key->len != y->key->len)
        return x->key->len < y->key->len ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

/* Reports every key that appears twice in a finished mapping (at the
 * later occurrence).  Sorting keeps this O(n log n) for huge mappings. */
static void check_duplicates(struct builder *b, const struct cfg__node *map)
{
    size_t pairs = map->n / 2;
    if (pairs < 2)
        return;
    struct key_ref *refs = calloc(pairs, sizeof(*refs));
    if (!refs) {
        b->oom = true;
        return;
    }
    for (size_t i = 0; i < pairs; i++) {
        refs[i].key = map->kids[2 * i];
        refs[i].index = i;
    }
    qsort(refs, pairs, sizeof(*refs), key_cmp);
    char path[CFG__PATH_MAX];
    current_path(b, false, path, sizeof(path));
    size_t first = 0; /* the earliest key of the current run */
    for (size_t i = 1; i < pairs; i++) {
        const struct cfg__node *k = refs[i].key, *f = refs[first].key;
        if (k->len != f->len || memcmp(k->text, f->text, k->len) != 0) {
            first = i;
            continue;
        }
        char kpath[CFG__PATH_MAX + 80];
        snprintf(kpath, sizeof(kpath), "%s%s%.64s", path, path[0] ? "." : "",
                 k->text);
        if (cfg__error(b->errs, k->mark, kpath,
                       "duplicate key '%.64s' (first at line %u)", k->text,
                       f->mark.line) != GW_OK)
            b->oom = true;
    }
    free(refs);
}

static void on_scalar(struct builder *b, const yaml_event_t *ev)
{
    struct cfg__node *n = node_new(b, CFG__NODE_SCALAR, ev->start_mark);
    if (!n)
        return;
    n->len = ev->data.scalar.length;
    n->text = malloc(n->len + 1);
    if (!n->text) {
        cfg__node_free(n);
        b->oom = true;
        b->failed = true;
        return;
    }
    memcpy(n->text, ev->data.scalar.value, n->len);
    n->text[n->len] = '\0';
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    attach(b, n, ev->start_mark);
}

static void on_start(struct builder *b, const yaml_event_t *ev,
                     enum cfg__node_kind kind)
{
    if (b->depth >= CFG__MAX_DEPTH) {
        fail(b, ev->start_mark, "nesting deeper than 64 levels");
        return;
    }
    struct cfg__node *n = node_new(b, kind, ev->start_mark);
    if (!n)
        return;
    /* Attach first so that the tree owns the node even if a later event
     * fails; a collection used as a mapping key is refused here. */
    attach(b, n, ev->start_mark);
    if (b->failed)
        return;
    b->stack[b->depth++].node = n;
}

static void on_end(struct builder *b)
{
    if (b->depth == 0)
        return;
    struct cfg__node *n = b->stack[b->depth - 1].node;
    if (n->kind == CFG__NODE_MAP)
        check_duplicates(b, n); /* while the path still names n */
    b->depth--;
}

/* Returns true when the event carries an anchor or a tag (refused). */
static bool refuse_decorations(struct builder *b, const yaml_event_t *ev)
{
    const yaml_char_t *anchor = NULL, *tag = NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    default:
        return false;
    }
    if (anchor) {
        fail(b, ev->start_mark,
             "anchors (&name) are not allowed in a device map; use a "
             "template instead");
        return true;
    }
    if (tag) {
        fail(b, ev->start_mark, "tags (!name) are not allowed");
        return true;
    }
    return false;
}

int cfg__yaml_parse(const char *data, size_t len, struct cfg__node **root,
                    struct cfg_errors *errs)
{
    *root = NULL;
    struct builder b;
    memset(&b, 0, sizeof(b));
    b.errs = errs;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return GW_ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    bool done = false;
    while (!done && !b.failed) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_MEMORY_ERROR) {
                b.oom = true;
                break;
            }
            char msg[256];
            snprintf(msg, sizeof(msg), "YAML syntax error: %s%s%s",
                     parser.problem ? parser.problem : "unknown problem",
                     parser.context ? " " : "",
                     parser.context ? parser.context : "");
            fail(&b, parser.problem_mark, msg);
            break;
        }
        if (refuse_decorations(&b, &ev)) {
            yaml_event_delete(&ev);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++b.docs > 1)
                fail(&b, ev.start_mark,
                     "more than one YAML document (---) in the file");
            break;
        case YAML_ALIAS_EVENT:
            fail(&b, ev.start_mark,
                 "aliases (*name) are not allowed in a device map; use a "
                 "template instead");
            break;
        case YAML_SCALAR_EVENT:
            on_scalar(&b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            on_start(&b, &ev, CFG__NODE_SEQ);
            break;
        case YAML_MAPPING_START_EVENT:
            on_start(&b, &ev, CFG__NODE_MAP);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            on_end(&b);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (b.oom) {
        cfg__node_free(b.root);
        return GW_ENOMEM;
    }
    if (b.failed) {
        cfg__node_free(b.root);
        return GW_ECONFIG;
    }
    *root = b.root;
    return GW_OK;
}
