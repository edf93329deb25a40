/* xs_stanza_int.h - xs_stanza internals shared with xs_parser.c only.
 *
 * The _raw functions skip the name and UTF-8 checks: the parser only passes
 * what libxml2 has already checked.  Lengths are byte counts without NUL. */
#ifndef XS_STANZA_INT_H
#define XS_STANZA_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "xs_stanza.h"

struct xs_attr {
    char *name;  /* one allocation: "name\0value\0" */
    char *value; /* points into the same allocation */
};

struct xs_stanza {
    struct xs_stanza *parent, *first, *last, *next;
    char *name; /* inline after the struct */
    char *ns;   /* NULL = inherit; inline unless ns_owned */
    bool ns_owned;
    struct xs_attr *attrs;
    size_t nattrs, attrs_cap;
    char *text; /* NULL or text_len bytes plus NUL */
    size_t text_len, text_cap;
    size_t nchildren;
};

/* A new top element (ns may be NULL), or NULL on no memory. */
struct xs_stanza *xs__stanza_new_raw(const char *name, size_t name_len,
                                     const char *ns, size_t ns_len);

/* Appends an attribute without looking for an existing one.  Returns 0 or
 * GW_ENOMEM. */
int xs__stanza_add_attr_raw(struct xs_stanza *s, const char *name,
                            size_t name_len, const char *value,
                            size_t value_len);

/* Appends text.  Returns 0 or GW_ENOMEM. */
int xs__stanza_append_text_raw(struct xs_stanza *s, const char *text,
                               size_t len);

/* Links child (a top element) as the last child.  Cannot fail. */
void xs__stanza_link(struct xs_stanza *parent, struct xs_stanza *child);

/* True when len bytes are valid UTF-8 made only of XML 1.0 characters
 * (no C0 controls but TAB LF CR, no U+FFFE/U+FFFF, no surrogates). */
bool xs__utf8_valid(const char *s, size_t len);

#endif
