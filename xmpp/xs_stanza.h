/* xs_stanza.h - an XML element tree for XMPP stanzas.
 *
 * A struct xs_stanza is one element: a local name, a namespace, attributes
 * in insertion order, character data, and child elements.  A parent owns its
 * children: xs_stanza_free on the top frees the whole tree, and a child may
 * not be freed on its own (take it out with xs_stanza_detach first).  There
 * is no reference counting; use xs_stanza_copy to keep a tree beyond its
 * owner.
 *
 * Namespaces.  ns NULL means "inherit the parent's" (the usual case for
 * children built by hand); "" means "no namespace".  xs_stanza_ns gives the
 * effective one.  Trees from xs_parser carry an explicit ns on every
 * element.
 *
 * Text.  Each element has one text: all of its own character data joined,
 * in document order, written before the children on output (XMPP has no
 * mixed content that matters to us; the parser drops whitespace-only text
 * of elements that have children).
 *
 * Checking.  Names must be XML names (element names without a colon;
 * attribute names may have one prefix such as xml:lang or xmlns:x, but not
 * "xmlns" itself, which the ns field drives).  Text and values must be
 * valid UTF-8 without C0 controls other than TAB, LF, CR, and without
 * U+FFFE/U+FFFF.  Setters return GW_EINVAL for anything else, so a tree is
 * always serializable.  Strings are copied; the caller keeps its own.
 *
 * Errors are enum gw_err values (gw_err.h): 0 or negative. */
#ifndef XS_STANZA_H
#define XS_STANZA_H

#include <stdbool.h>
#include <stddef.h>

#include "xs_buf.h"

#define XS_NS_STREAMS "http://etherx.jabber.org/streams"
#define XS_NS_CLIENT "jabber:client"
#define XS_NS_XML "http://www.w3.org/XML/1998/namespace"
#define XS_NS_XMLNS "http://www.w3.org/2000/xmlns/" /* refused as an ns */

struct xs_stanza;

/* A new element without attributes, text or children, or NULL (invalid
 * name or ns, or no memory).  ns may be NULL (inherit).  Free with
 * xs_stanza_free unless it was handed to xs_stanza_add_child. */
struct xs_stanza *xs_stanza_new(const char *name, const char *ns);

/* Frees s and everything under it.  NULL-safe.  A child is first taken
 * out of its parent (whose other children stay). */
void xs_stanza_free(struct xs_stanza *s);

/* A deep copy, a top element whose ns is the effective ns of s, or NULL. */
struct xs_stanza *xs_stanza_copy(const struct xs_stanza *s);

/* Borrowed strings, valid until the element changes or is freed.
 * xs_stanza_ns returns the effective namespace, NULL when there is none. */
const char *xs_stanza_name(const struct xs_stanza *s);
const char *xs_stanza_ns(const struct xs_stanza *s);

/* Sets (replacing) or, with value NULL, removes an attribute.  Returns 0,
 * GW_EINVAL or GW_ENOMEM (then nothing changed). */
int xs_stanza_set_attr(struct xs_stanza *s, const char *name,
                       const char *value);

/* The value (borrowed, until the attribute changes) or NULL. */
const char *xs_stanza_attr(const struct xs_stanza *s, const char *name);

/* Attribute access by index, in insertion order: returns false when i is
 * out of range.  The strings are borrowed. */
size_t xs_stanza_attr_count(const struct xs_stanza *s);
bool xs_stanza_attr_at(const struct xs_stanza *s, size_t i, const char **name,
                       const char **value);

/* Replaces the text with len bytes of text (not NUL-terminated; len 0
 * clears it), or appends to it.  Escaping is done on output; give raw text.
 * Returns 0, GW_EINVAL or GW_ENOMEM (then nothing changed). */
int xs_stanza_set_text(struct xs_stanza *s, const char *text, size_t len);
int xs_stanza_append_text(struct xs_stanza *s, const char *text, size_t len);

/* The text ("" when none; borrowed) and its length. */
const char *xs_stanza_text(const struct xs_stanza *s);
size_t xs_stanza_text_len(const struct xs_stanza *s);

/* Appends child (a top element) as the last child of parent, which takes
 * ownership.  Returns 0 or GW_EINVAL (child has a parent, or is an ancestor
 * of parent). */
int xs_stanza_add_child(struct xs_stanza *parent, struct xs_stanza *child);

/* xs_stanza_new + xs_stanza_add_child: the new child (owned by parent) or
 * NULL. */
struct xs_stanza *xs_stanza_add_new(struct xs_stanza *parent, const char *name,
                                    const char *ns);

/* Takes s out of its parent; s becomes a top element the caller owns (its
 * ns is set to its effective one first).  Returns 0 or GW_ENOMEM. */
int xs_stanza_detach(struct xs_stanza *s);

/* Navigation.  Borrowed pointers (NULL at the end); owned by the tree. */
struct xs_stanza *xs_stanza_parent(const struct xs_stanza *s);
struct xs_stanza *xs_stanza_first_child(const struct xs_stanza *s);
struct xs_stanza *xs_stanza_next(const struct xs_stanza *s);
size_t xs_stanza_child_count(const struct xs_stanza *s);

/* The first child with this local name (NULL = any) and effective
 * namespace (NULL = any), or NULL. */
struct xs_stanza *xs_stanza_child(const struct xs_stanza *s, const char *name,
                                  const char *ns);

/* Same tree: names, effective namespaces, attribute sets (order ignored),
 * texts and children in order.  Two NULLs are equal.  Trees deeper than
 * 32 levels need a small allocation; if it fails the answer is false. */
bool xs_stanza_equal(const struct xs_stanza *a, const struct xs_stanza *b);

/* Appends s as XML to out.  scope_ns is the default namespace already in
 * force where the output goes ("jabber:client" on a client stream, NULL
 * for a standalone document): elements whose effective ns equals the one in
 * force get no xmlns, others get xmlns='...'.  Elements in the streams
 * namespace are written with the "stream:" prefix, declared on the top
 * element only when scope_ns is NULL; elements in the xml namespace with
 * the (always bound) "xml:" prefix.  Attribute values are quoted with '
 * and escape & < > " ' (and TAB LF CR as character references); text
 * escapes & < > (and CR).  Empty elements are written as <x/>.
 * Returns 0, GW_ELIMIT (out->max reached) or GW_ENOMEM; on error out is
 * left as it was. */
int xs_stanza_serialize(const struct xs_stanza *s, const char *scope_ns,
                        struct xs_buf *out);

#endif
