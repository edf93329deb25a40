/* xs_parser.h - incremental parser for one XMPP stream (RFC 6120).
 *
 * Bytes go in with xs_parser_feed, in pieces of any size split anywhere
 * (even inside a UTF-8 character); callbacks come out:
 *   stream_start    when <stream:stream ...> is complete;
 *   stanza          when a top-level element (child of the stream) is
 *                   complete, with the whole tree.  The callee OWNS the
 *                   tree and frees it with xs_stanza_free (or keeps it);
 *   stanza_dropped  when a top-level element broke a per-stanza limit and
 *                   was skipped (see Limits); the stream goes on;
 *   stream_end      on </stream:stream>;
 *   error           once, when the stream fails (see below).
 * Callbacks run inside xs_parser_feed.  From a callback you may call
 * xs_parser_reset and xs_parser_free (both deferred until the parser is off
 * the stack, see below), but not xs_parser_feed.
 *
 * Limits are per stanza and never fatal, whatever the stanza's size.  A
 * top-level element that is deeper than max_depth, has an element with
 * more than max_attrs attributes, more than max_elements elements,
 * introduces more than max_names new names, or takes more than
 * max_stanza_bytes bytes on the wire is DROPPED: from the moment the limit
 * is hit libxml2 gets nothing more of it; a small scanner with constant
 * memory finds its end (tags, depth, quoted attribute values, CDATA), so
 * memory stays bounded however long it is (a server can inflate a small
 * stanza without bound when it re-serializes it).  Then the parser calls
 * stanza_dropped with what the element's start tag said (name, namespace,
 * id, from, to, type, also when the start tag itself broke the limit or
 * was longer than max_stanza_bytes), the limit, a reason and the size, and
 * goes on with the next stanza in a new libxml2 context.  The size is the
 * element's bytes on the wire, from its '<' to the end of its end tag, as
 * servers count it; whitespace between stanzas is not counted.  A stanza
 * of exactly max_stanza_bytes passes, one more byte is dropped.
 *
 * Distinct names.  libxml2 interns every name (elements, attributes,
 * prefixes, namespace URIs) in a dictionary that lives as long as its
 * parser context.  Besides the per-stanza limit, whenever the dictionary
 * holds more than max_names names at the end of a stanza (and after every
 * dropped stanza), the parser starts a new libxml2 context at that
 * boundary: it feeds the new context a copy of the stream header with the
 * same namespace declarations (no stream_start callback), then the bytes
 * that followed the boundary.  Input reaches libxml2 in pieces that end at
 * the end of a top-level element, so no byte it was given (not even a CR
 * it holds back at the end of a piece) lies beyond a boundary.  A stream
 * of ever-new names therefore runs forever in bounded memory.
 *
 * Errors.  A failure of the stream stops the parser: feed returns the
 * error now and on every later call until xs_parser_reset.
 * xs_parser_condition gives the RFC 6120 stream error condition to send in
 * <stream:error>:
 *   restricted-xml       DOCTYPE, entity declarations or references other
 *                        than the 5 predefined, comments, processing
 *                        instructions (GW_EFORBIDDEN);
 *   not-well-formed      malformed XML (GW_EPARSE);
 *   bad-namespace-prefix an undeclared prefix (GW_EPARSE);
 *   bad-format           the root is not a "stream" element, or text at
 *                        stream level (GW_EPARSE);
 *   invalid-namespace    the stream element is not in
 *                        http://etherx.jabber.org/streams, or its default
 *                        namespace is not opts.content_ns (GW_EPROTO);
 *   unsupported-encoding not UTF-8 (GW_EUNSUPPORTED);
 *   policy-violation     the hard cap (GW_ELIMIT): more than
 *                        XS_PARSER_HARD_FACTOR x max_stanza_bytes (at
 *                        least XS_PARSER_HARD_MIN) that libxml2 holds
 *                        unparsed, which only input no server forwards
 *                        reaches (an endless stream header, an unclosed
 *                        comment: a stanza is cut at max_stanza_bytes);
 *                        also a stream header over max_attrs;
 *   resource-constraint  out of memory (GW_ENOMEM);
 *   internal-server-error libxml2 accepted a top-level element that the
 *                        scanner ended elsewhere (GW_EIO; a bug, never
 *                        guessed around), or a new context failed.
 * Malformed or restricted XML inside a skipped stanza is found by the
 * scanner and fails the stream the same way (no server forwards it).
 * Input is handed to libxml2 in pieces of at most 16 KiB and the hard cap
 * is checked after each, so memory stays bounded however large a feed is.
 *
 * Stream restart (after STARTTLS <proceed/> and SASL <success/>).  Call
 * xs_parser_reset: the next byte fed must begin a new stream (an XML
 * declaration or <stream:stream>).  Called from a callback, the reset is
 * deferred: no more callbacks run for the rest of the current feed, and the
 * bytes of that feed that follow the element being delivered are
 * DISCARDED, not parsed into the new stream (plaintext after <proceed/>
 * would otherwise be injected into the TLS stream).  xs_parser_discarded
 * tells how many bytes that was, so the connection can treat it as an
 * attack.  A reset also clears a failed state.
 *
 * Not thread-safe; one parser per connection. */
#ifndef XS_PARSER_H
#define XS_PARSER_H

#include <stddef.h>

#include "xs_stanza.h"

#define XS_PARSER_MAX_STANZA_DEFAULT (256u * 1024u) /* Prosody's c2s limit */
#define XS_PARSER_MAX_DEPTH_DEFAULT 64u
#define XS_PARSER_MAX_DEPTH_LIMIT 200u /* our cap on opts.max_depth */
#define XS_PARSER_MAX_ATTRS_DEFAULT 64u
#define XS_PARSER_MAX_ELEMENTS_DEFAULT 10000u
#define XS_PARSER_MAX_NAMES_DEFAULT 10000u
/* The hard cap (stream-fatal) on what libxml2 holds unparsed is this many
 * times max_stanza_bytes.  It applies to no stanza (a stanza's size has no
 * fatal cap: a server may inflate one without bound, e.g. an xmlns on
 * every child), only to input no server forwards. */
#define XS_PARSER_HARD_FACTOR 8u
#define XS_PARSER_HARD_MIN (64u * 1024u) /* the hard cap is never less */

struct xs_parser_opts {
    size_t max_stanza_bytes; /* bytes on the wire per stanza; 0 = default;
                                RFC 6120 13.12: >= 10000 */
    unsigned max_depth;      /* 0 = default; capped at ..._DEPTH_LIMIT */
    unsigned max_attrs;      /* attributes + xmlns declarations, per
                                element; 0 = default */
    size_t max_elements;     /* elements per stanza; 0 = default */
    size_t max_names;        /* new distinct names (elements, attributes,
                                prefixes, namespaces) per stanza, and the
                                dictionary size that makes the parser start
                                a new libxml2 context; 0 = default */
    const char *content_ns;  /* e.g. "jabber:client"; NULL = any (copied) */
};

/* Which per-stanza limit made the parser drop a stanza. */
enum xs_parser_limit {
    XS_LIMIT_SIZE = 0, /* max_stanza_bytes */
    XS_LIMIT_DEPTH,    /* max_depth */
    XS_LIMIT_ATTRS,    /* max_attrs */
    XS_LIMIT_ELEMENTS, /* max_elements */
    XS_LIMIT_NAMES,    /* max_names */
};

/* A dropped top-level element.  The strings come from its start tag
 * (decoded, valid UTF-8) and are NULL when absent (or longer than
 * XS_PARSER_INFO_MAX bytes); name and ns are never NULL ("" when unknown).
 * Everything is borrowed for the duration of the callback. */
#define XS_PARSER_INFO_MAX 3071u
struct xs_dropped_info {
    const char *name, *ns;
    const char *id, *from, *to, *type;
    enum xs_parser_limit limit;
    const char *reason; /* readable, holds no input bytes */
    size_t wire_bytes;  /* the element's bytes on the wire */
};

/* What the stream header said.  Strings are NULL when absent; everything
 * is borrowed for the duration of the callback. */
struct xs_stream_info {
    const char *from, *to, *id, *version, *lang; /* lang is xml:lang */
    const char *content_ns; /* the default namespace, e.g. jabber:client */
    const struct xs_stanza *element; /* the stream element, no children */
};

struct xs_parser_cbs {
    void (*stream_start)(void *data, const struct xs_stream_info *info);
    void (*stanza)(void *data, struct xs_stanza *stanza); /* callee owns */
    void (*stream_end)(void *data);
    void (*error)(void *data, const char *condition, const char *text);
    void (*stanza_dropped)(void *data, const struct xs_dropped_info *info);
};

struct xs_parser;

/* A parser ready for a stream, or NULL on no memory.  Any callback may be
 * NULL (a NULL stanza callback frees the stanzas).  opts may be NULL for
 * the defaults.  cbs is copied; data is passed to every callback. */
struct xs_parser *xs_parser_new(const struct xs_parser_cbs *cbs, void *data,
                                const struct xs_parser_opts *opts);

/* Frees the parser and any stanza being built.  NULL-safe.  From a
 * callback, the free happens when xs_parser_feed returns (GW_ECANCELED). */
void xs_parser_free(struct xs_parser *p);

/* Parses len bytes.  Returns 0, the parser's error (see above; sticky),
 * GW_ECANCELED when a callback freed the parser (do not touch it again),
 * GW_EBUSY when called from a callback, or GW_EINVAL. */
int xs_parser_feed(struct xs_parser *p, const void *data, size_t len);

/* Starts over for a new stream; deferred when called from a callback (see
 * above).  Never fails. */
void xs_parser_reset(struct xs_parser *p);

/* The stream error condition ("restricted-xml", ...) or NULL when the
 * parser has not failed.  Static string. */
const char *xs_parser_condition(const struct xs_parser *p);

/* A readable detail for the log ("" when none); valid until the next
 * feed or reset.  Safe to send as <text/>: it holds no input bytes. */
const char *xs_parser_error_text(const struct xs_parser *p);

/* Bytes dropped by a deferred reset during the last xs_parser_feed (0 if
 * none). */
size_t xs_parser_discarded(const struct xs_parser *p);

/* "size", "depth", "attributes", "elements", "names" ("?" otherwise). */
const char *xs_parser_limit_name(enum xs_parser_limit limit);

/* Counters since xs_parser_new (not cleared by a reset). */
struct xs_parser_stats {
    unsigned long long stanzas;  /* delivered */
    unsigned long long dropped;  /* skipped by a per-stanza limit */
    unsigned long long recycles; /* new libxml2 contexts at a boundary */
};
void xs_parser_get_stats(const struct xs_parser *p,
                         struct xs_parser_stats *out);

#endif
