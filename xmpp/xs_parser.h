/* xs_parser.h - incremental parser for one XMPP stream (RFC 6120).
 *
 * Bytes go in with xs_parser_feed, in pieces of any size split anywhere
 * (even inside a UTF-8 character); callbacks come out:
 *   stream_start  when <stream:stream ...> is complete;
 *   stanza        when a top-level element (child of the stream) is
 *                 complete, with the whole tree.  The callee OWNS the tree
 *                 and frees it with xs_stanza_free (or keeps it);
 *   stream_end    on </stream:stream>;
 *   error         once, when the stream fails (see below).
 * Callbacks run inside xs_parser_feed.  From a callback you may call
 * xs_parser_reset and xs_parser_free (both deferred until the parser is off
 * the stack, see below), but not xs_parser_feed.
 *
 * Errors.  A failure stops the parser: feed returns the error now and on
 * every later call until xs_parser_reset.  xs_parser_condition gives the
 * RFC 6120 stream error condition to send in <stream:error>:
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
 *   policy-violation     a limit of struct xs_parser_opts (GW_ELIMIT);
 *   resource-constraint  out of memory (GW_ENOMEM).
 *
 * Limits.  A stanza's size is counted as the bytes it would take
 * serialized (names twice, attributes, text after entity decoding, plus a
 * few bytes of markup per element and attribute), independent of how the
 * input is split.  In addition, bytes that libxml2 holds without having
 * parsed them yet (one huge start tag) may not exceed max_stanza_bytes
 * (this guard alone depends on the split: it can fire only while one tag
 * longer than the limit is incomplete);
 * input is handed to libxml2 in pieces of at most 16 KiB so that memory
 * stays bounded however large a feed is.  Depth counts the stanza element
 * as 1.  Whitespace between stanzas (keepalives) is not counted.
 * libxml2 interns every distinct name for the life of the stream; a stream
 * of ever-new names would grow that without end, so their number is
 * bounded too (max_names).
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
#define XS_PARSER_MAX_DEPTH_LIMIT 200u /* libxml2 stops at 256 */
#define XS_PARSER_MAX_ATTRS_DEFAULT 64u
#define XS_PARSER_MAX_NAMES_DEFAULT 10000u

struct xs_parser_opts {
    size_t max_stanza_bytes; /* 0 = default; RFC 6120 13.12: >= 10000 */
    unsigned max_depth;      /* 0 = default; capped at ..._DEPTH_LIMIT */
    unsigned max_attrs;      /* attributes + xmlns declarations, per
                                element; 0 = default */
    size_t max_names;        /* distinct names (elements, attributes,
                                prefixes, namespaces) per stream, which
                                libxml2 keeps until the reset; 0 = default */
    const char *content_ns;  /* e.g. "jabber:client"; NULL = any (copied) */
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

#endif
