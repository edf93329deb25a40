/* xs_stanza.c - element tree, checks and serializer (see xs_stanza.h). */
#include "xs_stanza.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_err.h"
#include "xs_stanza_int.h"

/* ---- character checks ---------------------------------------------------
 */

/* Decodes one UTF-8 sequence at s[0..len) into *cp; returns its length or 0
 * when it is not a valid, shortest-form, non-surrogate sequence. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1Fu;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0Fu;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07u;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0u) != 0x80u)
            return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

static bool xml_char(uint32_t cp)
{
    if (cp < 0x20)
        return cp == 0x9 || cp == 0xA || cp == 0xD;
    return cp != 0xFFFE && cp != 0xFFFF;
}

bool xs__utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] >= 0x20 && p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0 || !xml_char(cp))
            return false;
        i += n;
    }
    return true;
}

static bool name_char(unsigned char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
        c >= 0x80)
        return true;
    return !first && ((c >= '0' && c <= '9') || c == '.' || c == '-');
}

/* An NCName (no colon), checked loosely for non-ASCII: any valid UTF-8
 * character at or above U+0080 counts as a name character. */
static bool ncname_valid(const char *s, size_t len)
{
    if (len == 0 || !xs__utf8_valid(s, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char((unsigned char)s[i], i == 0))
            return false;
    return true;
}

static bool elem_name_valid(const char *s)
{
    return s && ncname_valid(s, strlen(s));
}

static bool attr_name_valid(const char *s)
{
    if (!s || strcmp(s, "xmlns") == 0)
        return false;
    const char *colon = strchr(s, ':');
    if (!colon)
        return ncname_valid(s, strlen(s));
    return ncname_valid(s, (size_t)(colon - s)) &&
           ncname_valid(colon + 1, strlen(colon + 1));
}

/* ---- life cycle ----------------------------------------------------------
 */

struct xs_stanza *xs__stanza_new_raw(const char *name, size_t name_len,
                                     const char *ns, size_t ns_len)
{
    size_t extra = name_len + 1 + (ns ? ns_len + 1 : 0);
    struct xs_stanza *s = calloc(1, sizeof(*s) + extra);
    if (!s)
        return NULL;
    s->name = (char *)(s + 1);
    memcpy(s->name, name, name_len);
    s->name[name_len] = '\0';
    if (ns) {
        s->ns = s->name + name_len + 1;
        memcpy(s->ns, ns, ns_len);
        s->ns[ns_len] = '\0';
    }
    return s;
}

struct xs_stanza *xs_stanza_new(const char *name, const char *ns)
{
    if (!elem_name_valid(name))
        return NULL;
    if (ns && (!xs__utf8_valid(ns, strlen(ns)) || strcmp(ns, XS_NS_XMLNS) == 0))
        return NULL;
    return xs__stanza_new_raw(name, strlen(name), ns, ns ? strlen(ns) : 0);
}

static void free_one(struct xs_stanza *s)
{
    for (size_t i = 0; i < s->nattrs; i++)
        free(s->attrs[i].name);
    free(s->attrs);
    free(s->text);
    if (s->ns_owned)
        free(s->ns);
    free(s);
}

static void unlink_child(struct xs_stanza *s)
{
    struct xs_stanza *p = s->parent;
    struct xs_stanza *prev = NULL;
    for (struct xs_stanza *c = p->first; c != s; c = c->next)
        prev = c;
    if (prev)
        prev->next = s->next;
    else
        p->first = s->next;
    if (p->last == s)
        p->last = prev;
    p->nchildren--;
    s->parent = NULL;
    s->next = NULL;
}

void xs_stanza_free(struct xs_stanza *s)
{
    if (!s)
        return;
    if (s->parent)
        unlink_child(s);
    /* Iterative post-order walk: no recursion on deep trees. */
    struct xs_stanza *top = s, *cur = s;
    for (;;) {
        while (cur->first)
            cur = cur->first;
        if (cur == top) {
            free_one(cur);
            return;
        }
        struct xs_stanza *parent = cur->parent;
        parent->first = cur->next;
        free_one(cur);
        cur = parent->first ? parent->first : parent;
    }
}

const char *xs_stanza_name(const struct xs_stanza *s)
{
    return s ? s->name : NULL;
}

/* The effective namespace as stored ("" possible), NULL when none is set on
 * the element or any ancestor. */
static const char *eff_ns(const struct xs_stanza *s)
{
    for (; s; s = s->parent)
        if (s->ns)
            return s->ns;
    return NULL;
}

const char *xs_stanza_ns(const struct xs_stanza *s)
{
    const char *ns = eff_ns(s);
    return (ns && ns[0]) ? ns : NULL;
}

static bool ns_equal(const char *a, const char *b)
{
    if (!a)
        a = "";
    if (!b)
        b = "";
    return strcmp(a, b) == 0;
}

/* ---- attributes ----------------------------------------------------------
 */

static char *attr_alloc(const char *name, size_t name_len, const char *value,
                        size_t value_len, char **value_out)
{
    char *m = malloc(name_len + value_len + 2);
    if (!m)
        return NULL;
    memcpy(m, name, name_len);
    m[name_len] = '\0';
    memcpy(m + name_len + 1, value, value_len);
    m[name_len + 1 + value_len] = '\0';
    *value_out = m + name_len + 1;
    return m;
}

int xs__stanza_add_attr_raw(struct xs_stanza *s, const char *name,
                            size_t name_len, const char *value,
                            size_t value_len)
{
    if (s->nattrs == s->attrs_cap) {
        size_t cap = s->attrs_cap ? s->attrs_cap * 2 : 4;
        struct xs_attr *na = realloc(s->attrs, cap * sizeof(*na));
        if (!na)
            return GW_ENOMEM;
        s->attrs = na;
        s->attrs_cap = cap;
    }
    struct xs_attr *a = &s->attrs[s->nattrs];
    a->name = attr_alloc(name, name_len, value, value_len, &a->value);
    if (!a->name)
        return GW_ENOMEM;
    s->nattrs++;
    return 0;
}

static struct xs_attr *attr_find(const struct xs_stanza *s, const char *name)
{
    for (size_t i = 0; i < s->nattrs; i++)
        if (strcmp(s->attrs[i].name, name) == 0)
            return &s->attrs[i];
    return NULL;
}

int xs_stanza_set_attr(struct xs_stanza *s, const char *name, const char *value)
{
    if (!s || !attr_name_valid(name))
        return GW_EINVAL;
    struct xs_attr *a = attr_find(s, name);
    if (!value) {
        if (a) {
            free(a->name);
            size_t i = (size_t)(a - s->attrs);
            memmove(a, a + 1, (s->nattrs - i - 1) * sizeof(*a));
            s->nattrs--;
        }
        return 0;
    }
    size_t vlen = strlen(value);
    if (!xs__utf8_valid(value, vlen))
        return GW_EINVAL;
    if (!a)
        return xs__stanza_add_attr_raw(s, name, strlen(name), value, vlen);
    char *nv;
    char *m = attr_alloc(name, strlen(name), value, vlen, &nv);
    if (!m)
        return GW_ENOMEM;
    free(a->name);
    a->name = m;
    a->value = nv;
    return 0;
}

const char *xs_stanza_attr(const struct xs_stanza *s, const char *name)
{
    if (!s || !name)
        return NULL;
    const struct xs_attr *a = attr_find(s, name);
    return a ? a->value : NULL;
}

size_t xs_stanza_attr_count(const struct xs_stanza *s)
{
    return s ? s->nattrs : 0;
}

bool xs_stanza_attr_at(const struct xs_stanza *s, size_t i, const char **name,
                       const char **value)
{
    if (!s || i >= s->nattrs)
        return false;
    if (name)
        *name = s->attrs[i].name;
    if (value)
        *value = s->attrs[i].value;
    return true;
}

/* ---- text ----------------------------------------------------------------
 */

int xs__stanza_append_text_raw(struct xs_stanza *s, const char *text,
                               size_t len)
{
    if (len == 0)
        return 0;
    if (len > SIZE_MAX / 2 - s->text_len)
        return GW_ENOMEM;
    size_t need = s->text_len + len + 1;
    if (need > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 32;
        while (cap < need)
            cap *= 2;
        char *nt = realloc(s->text, cap);
        if (!nt)
            return GW_ENOMEM;
        s->text = nt;
        s->text_cap = cap;
    }
    memcpy(s->text + s->text_len, text, len);
    s->text_len += len;
    s->text[s->text_len] = '\0';
    return 0;
}

int xs_stanza_append_text(struct xs_stanza *s, const char *text, size_t len)
{
    if (!s || (len && !text) || !xs__utf8_valid(text, len))
        return GW_EINVAL;
    return xs__stanza_append_text_raw(s, text, len);
}

int xs_stanza_set_text(struct xs_stanza *s, const char *text, size_t len)
{
    if (!s || (len && !text) || !xs__utf8_valid(text, len))
        return GW_EINVAL;
    size_t old = s->text_len;
    s->text_len = 0;
    int rc = xs__stanza_append_text_raw(s, text, len);
    if (rc != 0) {
        s->text_len = old;
        return rc;
    }
    if (len == 0 && s->text)
        s->text[0] = '\0';
    return 0;
}

const char *xs_stanza_text(const struct xs_stanza *s)
{
    return (s && s->text) ? s->text : "";
}

size_t xs_stanza_text_len(const struct xs_stanza *s)
{
    return s ? s->text_len : 0;
}

/* ---- structure -----------------------------------------------------------
 */

void xs__stanza_link(struct xs_stanza *parent, struct xs_stanza *child)
{
    child->parent = parent;
    child->next = NULL;
    if (parent->last)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->nchildren++;
}

int xs_stanza_add_child(struct xs_stanza *parent, struct xs_stanza *child)
{
    if (!parent || !child || child->parent)
        return GW_EINVAL;
    for (const struct xs_stanza *a = parent; a; a = a->parent)
        if (a == child)
            return GW_EINVAL;
    xs__stanza_link(parent, child);
    return 0;
}

struct xs_stanza *xs_stanza_add_new(struct xs_stanza *parent, const char *name,
                                    const char *ns)
{
    if (!parent)
        return NULL;
    struct xs_stanza *c = xs_stanza_new(name, ns);
    if (c)
        xs__stanza_link(parent, c);
    return c;
}

/* Gives s an explicit ns (its effective one) so that it stands alone. */
static int pin_ns(struct xs_stanza *s)
{
    if (s->ns)
        return 0;
    const char *ns = eff_ns(s);
    if (!ns)
        return 0;
    char *copy = strdup(ns);
    if (!copy)
        return GW_ENOMEM;
    s->ns = copy;
    s->ns_owned = true;
    return 0;
}

int xs_stanza_detach(struct xs_stanza *s)
{
    if (!s || !s->parent)
        return 0;
    int rc = pin_ns(s);
    if (rc != 0)
        return rc;
    unlink_child(s);
    return 0;
}

struct xs_stanza *xs_stanza_parent(const struct xs_stanza *s)
{
    return s ? s->parent : NULL;
}

struct xs_stanza *xs_stanza_first_child(const struct xs_stanza *s)
{
    return s ? s->first : NULL;
}

struct xs_stanza *xs_stanza_next(const struct xs_stanza *s)
{
    return s ? s->next : NULL;
}

size_t xs_stanza_child_count(const struct xs_stanza *s)
{
    return s ? s->nchildren : 0;
}

struct xs_stanza *xs_stanza_child(const struct xs_stanza *s, const char *name,
                                  const char *ns)
{
    if (!s)
        return NULL;
    for (struct xs_stanza *c = s->first; c; c = c->next) {
        if (name && strcmp(c->name, name) != 0)
            continue;
        if (ns && !ns_equal(eff_ns(c), ns))
            continue;
        return c;
    }
    return NULL;
}

/* Copies one element without children; ns is given explicitly. */
static struct xs_stanza *copy_one(const struct xs_stanza *s, const char *ns)
{
    struct xs_stanza *c =
        xs__stanza_new_raw(s->name, strlen(s->name), ns, ns ? strlen(ns) : 0);
    if (!c)
        return NULL;
    for (size_t i = 0; i < s->nattrs; i++) {
        const struct xs_attr *a = &s->attrs[i];
        if (xs__stanza_add_attr_raw(c, a->name, strlen(a->name), a->value,
                                    strlen(a->value)) != 0)
            goto fail;
    }
    if (xs__stanza_append_text_raw(c, s->text, s->text_len) != 0)
        goto fail;
    return c;
fail:
    xs_stanza_free(c);
    return NULL;
}

struct xs_stanza *xs_stanza_copy(const struct xs_stanza *s)
{
    if (!s)
        return NULL;
    struct xs_stanza *top = copy_one(s, eff_ns(s));
    if (!top)
        return NULL;
    /* Walk the source and the copy in step, without recursion. */
    const struct xs_stanza *src = s->first;
    struct xs_stanza *dst_parent = top;
    while (src) {
        struct xs_stanza *c = copy_one(src, src->ns);
        if (!c) {
            xs_stanza_free(top);
            return NULL;
        }
        xs__stanza_link(dst_parent, c);
        if (src->first) {
            src = src->first;
            dst_parent = c;
            continue;
        }
        while (src != s && !src->next) {
            src = src->parent;
            dst_parent = dst_parent->parent;
        }
        if (src == s)
            break;
        src = src->next;
    }
    return top;
}

/* ---- comparison ----------------------------------------------------------
 */

/* Compares one element without children; ea/eb are their effective
 * namespaces. */
static bool one_equal(const struct xs_stanza *a, const struct xs_stanza *b,
                      const char *ea, const char *eb)
{
    if (strcmp(a->name, b->name) != 0 || !ns_equal(ea, eb))
        return false;
    if (a->text_len != b->text_len ||
        (a->text_len && memcmp(a->text, b->text, a->text_len) != 0))
        return false;
    if (a->nattrs != b->nattrs || a->nchildren != b->nchildren)
        return false;
    for (size_t i = 0; i < a->nattrs; i++) {
        const struct xs_attr *o = attr_find(b, a->attrs[i].name);
        if (!o || strcmp(o->value, a->attrs[i].value) != 0)
            return false;
    }
    return true;
}

bool xs_stanza_equal(const struct xs_stanza *a, const struct xs_stanza *b)
{
    if (!a || !b)
        return a == b;
    /* Walk both trees in step without recursion.  effs[d] is the effective
     * ns at level d; once a level compared equal it holds for both. */
    const char *fixed[32];
    const char **effs = fixed;
    size_t cap = sizeof(fixed) / sizeof(fixed[0]);
    size_t d = 0;
    bool eq = true;
    const struct xs_stanza *x = a, *y = b;
    for (;;) {
        const char *ex = d ? (x->ns ? x->ns : effs[d - 1]) : eff_ns(x);
        const char *ey = d ? (y->ns ? y->ns : effs[d - 1]) : eff_ns(y);
        if (!one_equal(x, y, ex, ey)) {
            eq = false;
            break;
        }
        if (d == cap) {
            const char **n = effs == fixed
                                 ? malloc(2 * cap * sizeof(*n))
                                 : realloc(effs, 2 * cap * sizeof(*n));
            if (!n) {
                eq = false; /* cannot tell: say "different" */
                break;
            }
            if (effs == fixed)
                memcpy(n, fixed, sizeof(fixed));
            effs = n;
            cap *= 2;
        }
        effs[d] = ex;
        if (x->first) {
            x = x->first;
            y = y->first;
            d++;
            continue;
        }
        while (d > 0 && !x->next) {
            x = x->parent;
            y = y->parent;
            d--;
        }
        if (d == 0)
            break;
        x = x->next;
        y = y->next;
    }
    if (effs != fixed)
        free(effs);
    return eq;
}

/* ---- serializer ----------------------------------------------------------
 */

static int put(struct xs_buf *out, const char *s, size_t n)
{
    return xs_buf_append(out, s, n);
}

static int puts_(struct xs_buf *out, const char *s)
{
    return xs_buf_append(out, s, strlen(s));
}

/* Writes s[0..len) escaped; attr selects the attribute-value rules. */
static int put_escaped(struct xs_buf *out, const char *s, size_t len, bool attr)
{
    if (len == 0)
        return 0;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '\r':
            rep = "&#13;";
            break;
        case '"':
            rep = attr ? "&quot;" : NULL;
            break;
        case '\'':
            rep = attr ? "&apos;" : NULL;
            break;
        case '\t':
            rep = attr ? "&#9;" : NULL;
            break;
        case '\n':
            rep = attr ? "&#10;" : NULL;
            break;
        default:
            rep = NULL;
            break;
        }
        if (!rep)
            continue;
        int rc = put(out, s + run, i - run);
        if (rc == 0)
            rc = puts_(out, rep);
        if (rc != 0)
            return rc;
        run = i + 1;
    }
    return put(out, s + run, len - run);
}

static bool is_streams(const char *ns)
{
    return ns && strcmp(ns, XS_NS_STREAMS) == 0;
}

static bool is_xml(const char *ns)
{
    return ns && strcmp(ns, XS_NS_XML) == 0;
}

/* Elements in these namespaces are written with a prefix, never as the
 * default namespace (which XML forbids for the xml namespace). */
static int put_tag_name(struct xs_buf *out, const char *ns, const char *name)
{
    int rc = 0;
    if (is_streams(ns))
        rc = puts_(out, "stream:");
    else if (is_xml(ns))
        rc = puts_(out, "xml:");
    if (rc == 0)
        rc = puts_(out, name);
    return rc;
}

/* Writes "<name xmlns.. attrs" and returns the default ns in force for the
 * children through *child_scope. */
static int open_tag(struct xs_buf *out, const struct xs_stanza *e,
                    const char *ens, const char *scope, bool top,
                    const char *top_scope, const char **child_scope)
{
    int rc = put(out, "<", 1);
    if (rc == 0)
        rc = put_tag_name(out, ens, e->name);
    *child_scope = scope;
    if (rc == 0 && is_streams(ens)) {
        if (top && !top_scope)
            rc = puts_(out, " xmlns:stream='" XS_NS_STREAMS "'");
    } else if (is_xml(ens)) {
        /* the xml prefix is always bound */
    } else if (rc == 0 && ens && !ns_equal(ens, scope)) {
        rc = puts_(out, " xmlns='");
        if (rc == 0)
            rc = put_escaped(out, ens, strlen(ens), true);
        if (rc == 0)
            rc = put(out, "'", 1);
        *child_scope = ens;
    }
    for (size_t i = 0; rc == 0 && i < e->nattrs; i++) {
        const struct xs_attr *a = &e->attrs[i];
        if (strcmp(a->name, "xmlns:stream") == 0)
            continue; /* the stream prefix is ours to declare */
        rc = put(out, " ", 1);
        if (rc == 0)
            rc = puts_(out, a->name);
        if (rc == 0)
            rc = put(out, "='", 2);
        if (rc == 0)
            rc = put_escaped(out, a->value, strlen(a->value), true);
        if (rc == 0)
            rc = put(out, "'", 1);
    }
    return rc;
}

static int close_tag(struct xs_buf *out, const struct xs_stanza *e,
                     const char *ens)
{
    int rc = put(out, "</", 2);
    if (rc == 0)
        rc = put_tag_name(out, ens, e->name);
    if (rc == 0)
        rc = put(out, ">", 1);
    return rc;
}

/* Per-level state of the walk: effective ns of the element and the default
 * ns in force for its children. */
struct ser_level {
    const char *ens;
    const char *child_scope;
};

int xs_stanza_serialize(const struct xs_stanza *s, const char *scope_ns,
                        struct xs_buf *out)
{
    if (!s || !out)
        return GW_EINVAL;
    size_t mark = out->len;
    struct ser_level fixed[32];
    struct ser_level *lv = fixed;
    size_t lv_cap = sizeof(fixed) / sizeof(fixed[0]);
    size_t d = 0;
    int rc = 0;
    const struct xs_stanza *e = s;
    const char *scope = scope_ns;

    for (;;) {
        /* Open e at level d, with scope in force. */
        if (d == lv_cap) {
            size_t ncap = lv_cap * 2;
            struct ser_level *n = lv == fixed ? malloc(ncap * sizeof(*n))
                                              : realloc(lv, ncap * sizeof(*n));
            if (!n) {
                rc = GW_ENOMEM;
                goto out;
            }
            if (lv == fixed)
                memcpy(n, fixed, sizeof(fixed));
            lv = n;
            lv_cap = ncap;
        }
        const char *ens = e->ns ? e->ns : (d ? lv[d - 1].ens : eff_ns(e));
        lv[d].ens = ens;
        rc = open_tag(out, e, ens, scope, d == 0, scope_ns, &lv[d].child_scope);
        if (rc != 0)
            goto out;
        if (!e->first && e->text_len == 0) {
            rc = put(out, "/>", 2);
        } else {
            rc = put(out, ">", 1);
            if (rc == 0)
                rc = put_escaped(out, e->text, e->text_len, false);
            if (rc == 0 && e->first) {
                scope = lv[d].child_scope;
                e = e->first;
                d++;
                continue;
            }
            if (rc == 0)
                rc = close_tag(out, e, ens);
        }
        if (rc != 0)
            goto out;
        /* e is closed: climb until a sibling exists, closing parents. */
        while (d > 0 && !e->next) {
            e = e->parent;
            d--;
            rc = close_tag(out, e, lv[d].ens);
            if (rc != 0)
                goto out;
        }
        if (d == 0)
            break;
        e = e->next;
        scope = lv[d - 1].child_scope;
    }
out:
    if (lv != fixed)
        free(lv);
    if (rc != 0)
        xs_buf_truncate(out, mark);
    return rc;
}
