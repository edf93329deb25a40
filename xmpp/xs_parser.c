/* xs_parser.c - libxml2 SAX2 push parser for an XMPP stream (see
 * xs_parser.h).
 *
 * One xmlParserCtxt per stream: a reset frees it and the next feed creates
 * a fresh one (xmpp-iot-reference 6.6).  Nothing in the SAX handlers may
 * longjmp or abort: a failure records the error, stops libxml2 with
 * xmlStopParser, and every handler returns at once while p->stopped.
 *
 * A stanza that breaks a per-stanza limit is skipped, not fatal: the
 * handlers only count levels until its end tag, then report it dropped.
 * When libxml2's name dictionary has grown past max_names at the end of a
 * stanza, the context is replaced ("recycled") at that boundary: the bytes
 * libxml2 had not parsed yet are copied out before it is stopped, and fed,
 * after a synthetic copy of the stream header, to the new context. */
#include "xs_parser.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw_err.h"
#include "xs_buf.h"
#include "xs_stanza_int.h"

/* Input goes to libxml2 in pieces of at most this size, so that the
 * unparsed backlog can be checked often enough to bound memory. */
#define XS_PARSER_PIECE 16384u

/* What the start tag of the current top-level element said (for
 * stanza_dropped). */
struct capture {
    char *name, *ns, *id, *from, *to, *type;
};

struct xs_parser {
    xmlSAXHandler sax;
    xmlParserCtxtPtr ctxt; /* NULL until the first feed after a reset */
    struct xs_parser_cbs cbs;
    void *data;
    size_t max_bytes;
    unsigned max_depth;
    unsigned max_attrs;
    size_t max_elements;
    size_t max_names;
    size_t hard_bytes; /* XS_PARSER_HARD_FACTOR * max_bytes */
    char *content_ns;

    unsigned level;        /* open elements, the stream included */
    struct xs_stanza *top; /* the stanza being built */
    struct xs_stanza *cur; /* its innermost open element */
    size_t fed;            /* bytes given to this ctxt */
    size_t stop_pos;       /* ctxt position when a reset was requested */
    bool stopped;          /* no more SAX work for this ctxt */
    bool in_feed;          /* xs_parser_feed is on the stack */
    bool in_start;         /* the stream_start callback is running */
    bool reset_pending;    /* xs_parser_reset called from a callback */
    bool free_pending;     /* xs_parser_free called from a callback */
    bool err_reported;     /* the error callback ran */
    int err;               /* gw_err, 0 while healthy */
    const char *cond;      /* stream error condition */
    char errtext[128];
    size_t discarded;

    /* The current top-level element. */
    size_t st_start;    /* ctxt position of its '<' */
    size_t st_elements; /* elements so far */
    size_t dict_base;   /* dictionary size when it began */
    size_t boundary;    /* ctxt position where the last one ended */
    bool skipping;      /* a limit was hit: skip to its end */
    enum xs_parser_limit skip_limit;
    char skip_reason[96];
    struct capture cap;

    /* Context recycling. */
    struct xs_buf header; /* synthetic stream header for a new context */
    bool replaying;       /* the synthetic header is being parsed */
    bool recycle_pending; /* stopped at a boundary to recycle */
    char *carry;          /* unparsed bytes copied out at that boundary */
    size_t carry_len;

    struct xs_parser_stats stats;
};

/* ---- errors --------------------------------------------------------------
 */

/* Stops the current ctxt from within a SAX handler (or does nothing when
 * no parse is running). */
static void halt(struct xs_parser *p)
{
    p->stopped = true;
    if (p->ctxt && p->in_feed)
        xmlStopParser(p->ctxt);
}

static void fail(struct xs_parser *p, int err, const char *cond,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void fail(struct xs_parser *p, int err, const char *cond,
                 const char *fmt, ...)
{
    if (p->err || p->reset_pending || p->free_pending)
        return;
    p->err = err;
    p->cond = cond;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errtext, sizeof(p->errtext), fmt, ap);
    va_end(ap);
    halt(p);
}

static void on_xml_error(void *ctx, xmlErrorPtr e)
{
    struct xs_parser *p = ctx;
    if (!e || p->stopped)
        return;
    int code = e->code;
    if (code == XML_ERR_USER_STOP)
        return;
    if (e->level == XML_ERR_WARNING && code != XML_WAR_UNDECLARED_ENTITY)
        return;
    /* A namespace name that is not a valid URI reference: libxml2 reports
     * it at error level but it is not a well-formedness problem. */
    if (code == XML_WAR_NS_URI || code == XML_WAR_NS_URI_RELATIVE)
        return;
    switch (code) {
    case XML_ERR_UNDECLARED_ENTITY:
    case XML_WAR_UNDECLARED_ENTITY:
    case XML_ERR_ENTITY_LOOP:
        fail(p, GW_EFORBIDDEN, "restricted-xml",
             "entity reference (libxml2 error %d, line %d)", code, e->line);
        return;
    case XML_ERR_UNKNOWN_ENCODING:
    case XML_ERR_UNSUPPORTED_ENCODING:
        fail(p, GW_EUNSUPPORTED, "unsupported-encoding",
             "encoding not supported (libxml2 error %d)", code);
        return;
    case XML_ERR_NO_MEMORY:
        fail(p, GW_ENOMEM, "resource-constraint", "libxml2: out of memory");
        return;
    case XML_NS_ERR_UNDEFINED_NAMESPACE:
        fail(p, GW_EPARSE, "bad-namespace-prefix",
             "undeclared namespace prefix (line %d)", e->line);
        return;
    default:
        fail(p, GW_EPARSE, "not-well-formed",
             "not well-formed (libxml2 error %d, line %d, column %d)", code,
             e->line, e->int2);
        return;
    }
}

/* Handlers for everything RFC 6120 11.1 forbids. */
static void restricted(struct xs_parser *p, const char *what)
{
    fail(p, GW_EFORBIDDEN, "restricted-xml", "%s not allowed", what);
}

static void on_internal_subset(void *ctx, const xmlChar *name,
                               const xmlChar *ext_id, const xmlChar *sys_id)
{
    restricted(ctx, "DOCTYPE");
}

static void on_external_subset(void *ctx, const xmlChar *name,
                               const xmlChar *ext_id, const xmlChar *sys_id)
{
    restricted(ctx, "external subset");
}

static void on_entity_decl(void *ctx, const xmlChar *name, int type,
                           const xmlChar *public_id, const xmlChar *system_id,
                           xmlChar *content)
{
    restricted(ctx, "entity declaration");
}

static void on_notation_decl(void *ctx, const xmlChar *name,
                             const xmlChar *public_id, const xmlChar *system_id)
{
    restricted(ctx, "notation declaration");
}

static void on_attribute_decl(void *ctx, const xmlChar *elem,
                              const xmlChar *fullname, int type, int def,
                              const xmlChar *default_value,
                              xmlEnumerationPtr tree)
{
    xmlFreeEnumeration(tree); /* the handler owns it */
    restricted(ctx, "attribute declaration");
}

static void on_element_decl(void *ctx, const xmlChar *name, int type,
                            xmlElementContentPtr content)
{
    restricted(ctx, "element declaration");
}

static void on_unparsed_entity_decl(void *ctx, const xmlChar *name,
                                    const xmlChar *public_id,
                                    const xmlChar *system_id,
                                    const xmlChar *notation_name)
{
    restricted(ctx, "entity declaration");
}

static void on_reference(void *ctx, const xmlChar *name)
{
    restricted(ctx, "entity reference");
}

static void on_comment(void *ctx, const xmlChar *value)
{
    restricted(ctx, "comment");
}

static void on_pi(void *ctx, const xmlChar *target, const xmlChar *data)
{
    restricted(ctx, "processing instruction");
}

static xmlEntityPtr on_get_entity(void *ctx, const xmlChar *name)
{
    return NULL; /* the 5 predefined ones never get here */
}

static xmlParserInputPtr on_resolve_entity(void *ctx, const xmlChar *public_id,
                                           const xmlChar *system_id)
{
    restricted(ctx, "external entity");
    return NULL;
}

/* ---- positions -----------------------------------------------------------
 */

/* The ctxt position (bytes of input consumed by libxml2). */
static size_t pos_now(const struct xs_parser *p)
{
    long v = p->ctxt ? xmlByteConsumed(p->ctxt) : -1;
    return v > 0 ? (size_t)v : 0;
}

/* The position of the '<' of the start tag being reported.  libxml2 reports
 * a start tag with the input at its '>' (or "/>"), and no '<' can occur
 * inside a start tag, so it is the last '<' before that.  (libxml2 never
 * shrinks its buffer past the '<' of a tag it is parsing; if it ever did,
 * the end of the previous element is used: the whitespace between them is
 * then counted too.) */
static size_t tag_start(const struct xs_parser *p)
{
    size_t pos = pos_now(p);
    xmlParserInputPtr in = p->ctxt->input;
    if (in && in->base && in->cur && in->cur >= in->base) {
        for (const xmlChar *c = in->cur; c > in->base;) {
            c--;
            if (*c == '<') {
                size_t back = (size_t)(in->cur - c);
                return back <= pos ? pos - back : 0;
            }
        }
    }
    return p->boundary;
}

static size_t dict_size(const struct xs_parser *p)
{
    int n = p->ctxt && p->ctxt->dict ? xmlDictSize(p->ctxt->dict) : 0;
    return n > 0 ? (size_t)n : 0;
}

/* ---- tree building -------------------------------------------------------
 */

static bool all_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

static size_t xlen(const xmlChar *s)
{
    return s ? strlen((const char *)s) : 0;
}

/* With replaceEntities off, libxml2 hands attribute values and namespace
 * names over with each escaped '&' as the five bytes "&#38;" (for the DOM
 * builder to re-parse); no other '&' can be in them.  Decodes s[0..*len)
 * into a new allocation in *dec when it has any (else *dec is NULL), and
 * updates *len.  Returns 0 or GW_ENOMEM. */
static int decode_amp(const char *s, size_t *len, char **dec)
{
    size_t n = *len;
    *dec = NULL;
    if (!memchr(s, '&', n))
        return 0;
    char *d = malloc(n + 1);
    if (!d)
        return GW_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (n - i >= 5 && memcmp(s + i, "&#38;", 5) == 0) {
            d[o++] = '&';
            i += 5;
        } else {
            d[o++] = s[i++];
        }
    }
    d[o] = '\0';
    *dec = d;
    *len = o;
    return 0;
}

/* A decoded, NUL-terminated copy of s[0..len), or NULL (no memory, not
 * valid UTF-8, or longer than XS_PARSER_INFO_MAX once decoded). */
static char *dup_decoded(const xmlChar *s, size_t len)
{
    if (!s)
        return NULL;
    char *dec;
    if (decode_amp((const char *)s, &len, &dec) != 0)
        return NULL;
    const char *src = dec ? dec : (const char *)s;
    char *out = NULL;
    if (len <= XS_PARSER_INFO_MAX && xs__utf8_valid(src, len)) {
        out = malloc(len + 1);
        if (out) {
            memcpy(out, src, len);
            out[len] = '\0';
        }
    }
    free(dec);
    return out;
}

/* Adds one attribute (or xmlns:prefix declaration), value decoded. */
static int add_attr(struct xs_stanza *e, const xmlChar *prefix,
                    const xmlChar *local, const xmlChar *v, size_t vlen)
{
    const char *val = (const char *)v;
    char *dec = NULL;
    char *name = NULL;
    char nbuf[128];
    int rc = decode_amp(val, &vlen, &dec);
    if (rc != 0)
        return rc;
    if (dec)
        val = dec;
    size_t llen = xlen(local);
    const char *n = (const char *)local;
    size_t nlen = llen;
    if (prefix) {
        size_t plen = xlen(prefix);
        nlen = plen + 1 + llen;
        name = nlen < sizeof(nbuf) ? nbuf : malloc(nlen + 1);
        if (!name) {
            rc = GW_ENOMEM;
            goto out;
        }
        memcpy(name, prefix, plen);
        name[plen] = ':';
        memcpy(name + plen + 1, local, llen);
        n = name;
    }
    rc = xs__stanza_add_attr_raw(e, n, nlen, val, vlen);
out:
    if (name != nbuf)
        free(name);
    free(dec);
    return rc;
}

/* libxml2 checks characters, but 2.9.14 lets some invalid UTF-8 through
 * (an overlong sequence in a CDATA section, found by fuzz_xml).  Trees must
 * always be serializable, so everything stored is checked again; true (and
 * failed) when s[0..len) is not valid UTF-8 of XML characters. */
static bool bad_chars(struct xs_parser *p, const xmlChar *s, size_t len)
{
    if (!s || xs__utf8_valid((const char *)s, len))
        return false;
    fail(p, GW_EPARSE, "not-well-formed", "invalid UTF-8 or character");
    return true;
}

/* Builds an element from a SAX2 start tag, with its xmlns:prefix
 * declarations (but not xmlns:stream, which the serializer owns) and
 * attributes.  The caller has checked the limits.  NULL after fail(). */
static struct xs_stanza *build_element(struct xs_parser *p,
                                       const xmlChar *local, const xmlChar *uri,
                                       int nb_ns, const xmlChar **nss,
                                       int nb_attrs, const xmlChar **attrs)
{
    size_t nlen = xlen(local);
    if (bad_chars(p, local, nlen) || bad_chars(p, uri, xlen(uri)))
        return NULL;
    for (int i = 0; i < nb_ns; i++)
        if (bad_chars(p, nss[2 * i], xlen(nss[2 * i])) ||
            bad_chars(p, nss[2 * i + 1], xlen(nss[2 * i + 1])))
            return NULL;
    for (int i = 0; i < nb_attrs; i++) {
        const xmlChar **a = attrs + 5 * i;
        if (bad_chars(p, a[0], xlen(a[0])) || bad_chars(p, a[1], xlen(a[1])) ||
            bad_chars(p, a[3], (size_t)(a[4] - a[3])))
            return NULL;
    }
    const char *ns = uri ? (const char *)uri : "";
    size_t nslen = strlen(ns);
    char *nsdec;
    if (decode_amp(ns, &nslen, &nsdec) != 0) {
        fail(p, GW_ENOMEM, "resource-constraint", "out of memory");
        return NULL;
    }
    struct xs_stanza *e = xs__stanza_new_raw((const char *)local, nlen,
                                             nsdec ? nsdec : ns, nslen);
    free(nsdec);
    if (!e)
        goto nomem;
    for (int i = 0; i < nb_ns; i++) {
        const xmlChar *pfx = nss[2 * i], *u = nss[2 * i + 1];
        if (!pfx || strcmp((const char *)pfx, "stream") == 0)
            continue;
        if (add_attr(e, BAD_CAST "xmlns", pfx, u ? u : BAD_CAST "", xlen(u)))
            goto nomem;
    }
    for (int i = 0; i < nb_attrs; i++) {
        const xmlChar **a = attrs + 5 * i; /* local, prefix, URI, v, end */
        if (add_attr(e, a[1], a[0], a[3], (size_t)(a[4] - a[3])))
            goto nomem;
    }
    return e;
nomem:
    fail(p, GW_ENOMEM, "resource-constraint", "out of memory");
    xs_stanza_free(e);
    return NULL;
}

/* ---- the synthetic stream header ---------------------------------------- */

/* Appends v (raw from libxml2, '&' as "&#38;") escaped for a '...'
 * attribute value. */
static int header_value(struct xs_buf *b, const xmlChar *v)
{
    size_t len = xlen(v);
    char *dec;
    if (decode_amp((const char *)v, &len, &dec) != 0)
        return GW_ENOMEM;
    const char *s = dec ? dec : (const char *)v;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        switch (s[i]) {
        case '&':
            rc = xs_buf_append_str(b, "&amp;");
            break;
        case '<':
            rc = xs_buf_append_str(b, "&lt;");
            break;
        case '\'':
            rc = xs_buf_append_str(b, "&apos;");
            break;
        case '\t':
            rc = xs_buf_append_str(b, "&#9;");
            break;
        case '\n':
            rc = xs_buf_append_str(b, "&#10;");
            break;
        case '\r':
            rc = xs_buf_append_str(b, "&#13;");
            break;
        default:
            rc = xs_buf_append(b, s + i, 1);
        }
    }
    free(dec);
    return rc;
}

/* Writes "<P:stream xmlns:P='...' xmlns='...' ...>" with the stream's
 * namespace declarations, for a recycled context. */
static int save_header(struct xs_parser *p, const xmlChar *local,
                       const xmlChar *prefix, int nb_ns, const xmlChar **nss)
{
    struct xs_buf *b = &p->header;
    xs_buf_close(b);
    xs_buf_init(b, p->hard_bytes + 4 * XS_PARSER_PIECE);
    int rc = xs_buf_append_str(b, "<");
    if (!rc && prefix) {
        rc = xs_buf_append_str(b, (const char *)prefix);
        if (!rc)
            rc = xs_buf_append_str(b, ":");
    }
    if (!rc)
        rc = xs_buf_append_str(b, (const char *)local);
    for (int i = 0; i < nb_ns && !rc; i++) {
        rc = xs_buf_append_str(b, nss[2 * i] ? " xmlns:" : " xmlns");
        if (!rc && nss[2 * i])
            rc = xs_buf_append_str(b, (const char *)nss[2 * i]);
        if (!rc)
            rc = xs_buf_append_str(b, "='");
        if (!rc)
            rc = header_value(b, nss[2 * i + 1]);
        if (!rc)
            rc = xs_buf_append_str(b, "'");
    }
    if (!rc)
        rc = xs_buf_append_str(b, ">");
    return rc;
}

/* ---- the current top-level element -------------------------------------- */

static void capture_clear(struct capture *c)
{
    free(c->name);
    free(c->ns);
    free(c->id);
    free(c->from);
    free(c->to);
    free(c->type);
    memset(c, 0, sizeof(*c));
}

/* Keeps name, namespace, id, from, to and type of a top-level start tag,
 * whatever limit it breaks. */
static void capture(struct xs_parser *p, const xmlChar *local,
                    const xmlChar *uri, int nb_attrs, const xmlChar **attrs)
{
    struct capture *c = &p->cap;
    capture_clear(c);
    c->name = dup_decoded(local, xlen(local));
    c->ns = dup_decoded(uri ? uri : BAD_CAST "", xlen(uri));
    for (int i = 0; i < nb_attrs; i++) {
        const xmlChar **a = attrs + 5 * i;
        if (a[1])
            continue; /* prefixed */
        const char *n = (const char *)a[0];
        char **slot = strcmp(n, "id") == 0     ? &c->id
                      : strcmp(n, "from") == 0 ? &c->from
                      : strcmp(n, "to") == 0   ? &c->to
                      : strcmp(n, "type") == 0 ? &c->type
                                               : NULL;
        if (slot && !*slot)
            *slot = dup_decoded(a[3], (size_t)(a[4] - a[3]));
    }
}

static void skip(struct xs_parser *p, enum xs_parser_limit limit,
                 const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Drops the stanza being built: the rest of it is only counted. */
static void skip(struct xs_parser *p, enum xs_parser_limit limit,
                 const char *fmt, ...)
{
    p->skipping = true;
    p->skip_limit = limit;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->skip_reason, sizeof(p->skip_reason), fmt, ap);
    va_end(ap);
    xs_stanza_free(p->top);
    p->top = NULL;
    p->cur = NULL;
}

/* A top-level element ended (delivered or dropped): starts a new libxml2
 * context at this boundary when the dictionary is too big.  The unparsed
 * bytes are copied out first (xmlStopParser discards them). */
static void stanza_done(struct xs_parser *p)
{
    capture_clear(&p->cap);
    p->skipping = false;
    p->boundary = pos_now(p);
    if (p->stopped || !p->ctxt || dict_size(p) <= p->max_names) {
        p->dict_base = dict_size(p);
        return;
    }
    xmlParserInputPtr in = p->ctxt->input;
    size_t rest =
        in && in->cur && in->end > in->cur ? (size_t)(in->end - in->cur) : 0;
    if (rest != p->fed - p->boundary) {
        /* Not what libxml2 2.9.14 does; never guess which bytes follow. */
        fail(p, GW_EIO, "internal-server-error",
             "cannot restart the parser (%zu of %zu bytes)", rest,
             p->fed - p->boundary);
        return;
    }
    free(p->carry);
    p->carry = rest ? malloc(rest) : NULL;
    if (rest && !p->carry) {
        fail(p, GW_ENOMEM, "resource-constraint", "out of memory");
        return;
    }
    if (rest)
        memcpy(p->carry, in->cur, rest);
    p->carry_len = rest;
    p->recycle_pending = true;
    halt(p);
}

/* The skipped element ended: reports it. */
static void report_dropped(struct xs_parser *p)
{
    size_t wire = pos_now(p) - p->st_start;
    if (p->skip_limit == XS_LIMIT_SIZE)
        snprintf(p->skip_reason, sizeof(p->skip_reason),
                 "stanza of %zu bytes exceeds %zu", wire, p->max_bytes);
    p->stats.dropped++;
    if (p->cbs.stanza_dropped) {
        struct xs_dropped_info info = {
            .name = p->cap.name ? p->cap.name : "",
            .ns = p->cap.ns ? p->cap.ns : "",
            .id = p->cap.id,
            .from = p->cap.from,
            .to = p->cap.to,
            .type = p->cap.type,
            .limit = p->skip_limit,
            .reason = p->skip_reason,
            .wire_bytes = wire,
        };
        p->cbs.stanza_dropped(p->data, &info);
    }
    stanza_done(p);
}

/* ---- SAX handlers --------------------------------------------------------
 */

static void stream_start(struct xs_parser *p, const xmlChar *local,
                         const xmlChar *prefix, const xmlChar *uri, int nb_ns,
                         const xmlChar **nss, int nb_attrs,
                         const xmlChar **attrs)
{
    xmlParserInputPtr in = p->ctxt->input;
    if (in && in->buf && in->buf->encoder) {
        fail(p, GW_EUNSUPPORTED, "unsupported-encoding", "stream is not UTF-8");
        return;
    }
    if (!uri || strcmp((const char *)uri, XS_NS_STREAMS) != 0) {
        fail(p, GW_EPROTO, "invalid-namespace",
             "stream element not in the streams namespace");
        return;
    }
    if (strcmp((const char *)local, "stream") != 0) {
        fail(p, GW_EPARSE, "bad-format", "root element is not <stream>");
        return;
    }
    const char *content_ns = NULL;
    for (int i = 0; i < nb_ns; i++)
        if (!nss[2 * i])
            content_ns = (const char *)nss[2 * i + 1];
    if (p->content_ns &&
        (!content_ns || strcmp(content_ns, p->content_ns) != 0)) {
        fail(p, GW_EPROTO, "invalid-namespace",
             "stream content namespace is not %s", p->content_ns);
        return;
    }
    if ((size_t)nb_ns + (size_t)nb_attrs > p->max_attrs) {
        fail(p, GW_ELIMIT, "policy-violation",
             "more than %u attributes on the stream header", p->max_attrs);
        return;
    }
    p->level = 1;
    p->boundary = pos_now(p);
    p->dict_base = dict_size(p);
    if (p->replaying)
        return; /* a recycled context: the stream goes on */
    if (save_header(p, local, prefix, nb_ns, nss) != 0) {
        fail(p, GW_ENOMEM, "resource-constraint", "out of memory");
        return;
    }
    struct xs_stanza *e =
        build_element(p, local, uri, nb_ns, nss, nb_attrs, attrs);
    if (!e)
        return;
    if (p->cbs.stream_start) {
        struct xs_stream_info info = {
            .from = xs_stanza_attr(e, "from"),
            .to = xs_stanza_attr(e, "to"),
            .id = xs_stanza_attr(e, "id"),
            .version = xs_stanza_attr(e, "version"),
            .lang = xs_stanza_attr(e, "xml:lang"),
            .content_ns = content_ns,
            .element = e,
        };
        p->in_start = true;
        p->cbs.stream_start(p->data, &info);
        p->in_start = false;
    }
    xs_stanza_free(e);
}

static void on_start(void *ctx, const xmlChar *local, const xmlChar *prefix,
                     const xmlChar *uri, int nb_ns, const xmlChar **nss,
                     int nb_attrs, int nb_defaulted, const xmlChar **attrs)
{
    struct xs_parser *p = ctx;
    if (p->stopped)
        return;
    if (p->level == 0) {
        stream_start(p, local, prefix, uri, nb_ns, nss, nb_attrs, attrs);
        return;
    }
    if (p->level == 1) {
        p->st_start = tag_start(p);
        p->st_elements = 0;
        p->skipping = false;
        capture(p, local, uri, nb_attrs, attrs);
    }
    /* The stanza element opens at level 1 and gets depth 1. */
    p->level++;
    if (p->skipping)
        return;
    size_t names = dict_size(p) - p->dict_base;
    size_t wire = pos_now(p) - p->st_start;
    if (p->level - 1 > p->max_depth)
        skip(p, XS_LIMIT_DEPTH, "stanza deeper than %u", p->max_depth);
    else if ((size_t)nb_ns + (size_t)nb_attrs > p->max_attrs)
        skip(p, XS_LIMIT_ATTRS, "more than %u attributes on one element",
             p->max_attrs);
    else if (++p->st_elements > p->max_elements)
        skip(p, XS_LIMIT_ELEMENTS, "more than %zu elements", p->max_elements);
    else if (names > p->max_names)
        skip(p, XS_LIMIT_NAMES, "more than %zu new names", p->max_names);
    else if (wire > p->max_bytes)
        skip(p, XS_LIMIT_SIZE, "stanza exceeds %zu bytes", p->max_bytes);
    if (p->skipping)
        return;
    struct xs_stanza *e =
        build_element(p, local, uri, nb_ns, nss, nb_attrs, attrs);
    if (!e)
        return;
    if (p->cur)
        xs__stanza_link(p->cur, e);
    else
        p->top = e;
    p->cur = e;
}

static void on_end(void *ctx, const xmlChar *local, const xmlChar *prefix,
                   const xmlChar *uri)
{
    struct xs_parser *p = ctx;
    if (p->stopped)
        return;
    if (p->level <= 1) {
        p->level = 0;
        if (p->cbs.stream_end)
            p->cbs.stream_end(p->data);
        return;
    }
    p->level--;
    if (p->skipping) {
        if (p->level == 1)
            report_dropped(p);
        return;
    }
    struct xs_stanza *e = p->cur;
    if (e->first && e->text_len && all_space(e->text, e->text_len)) {
        e->text_len = 0;
        e->text[0] = '\0';
    }
    if (p->level > 1) {
        p->cur = e->parent;
        return;
    }
    struct xs_stanza *top = p->top;
    p->top = NULL;
    p->cur = NULL;
    size_t wire = pos_now(p) - p->st_start;
    if (wire > p->max_bytes) {
        xs_stanza_free(top);
        p->skip_limit = XS_LIMIT_SIZE;
        report_dropped(p);
        return;
    }
    p->stats.stanzas++;
    if (p->cbs.stanza)
        p->cbs.stanza(p->data, top);
    else
        xs_stanza_free(top);
    stanza_done(p);
}

static void on_chars(void *ctx, const xmlChar *ch, int len)
{
    struct xs_parser *p = ctx;
    if (p->stopped || len <= 0)
        return;
    size_t n = (size_t)len;
    if (p->level <= 1) {
        if (!all_space((const char *)ch, n))
            fail(p, GW_EPARSE, "bad-format", "text at stream level");
        return;
    }
    if (p->skipping)
        return;
    if (pos_now(p) - p->st_start > p->max_bytes) {
        skip(p, XS_LIMIT_SIZE, "stanza exceeds %zu bytes", p->max_bytes);
        return;
    }
    if (bad_chars(p, ch, n))
        return;
    if (xs__stanza_append_text_raw(p->cur, (const char *)ch, n) != 0)
        fail(p, GW_ENOMEM, "resource-constraint", "out of memory");
}

/* ---- life cycle ----------------------------------------------------------
 */

static void drop_ctxt(struct xs_parser *p)
{
    if (p->ctxt) {
        xmlFreeParserCtxt(p->ctxt);
        p->ctxt = NULL;
    }
    xs_stanza_free(p->top);
    p->top = NULL;
    p->cur = NULL;
    p->level = 0;
    p->fed = 0;
    p->stopped = false;
    p->reset_pending = false;
    p->err = 0;
    p->cond = NULL;
    p->errtext[0] = '\0';
    p->err_reported = false;
    p->skipping = false;
    p->st_start = p->st_elements = p->dict_base = p->boundary = 0;
    capture_clear(&p->cap);
    xs_buf_close(&p->header);
    p->replaying = false;
    p->recycle_pending = false;
    free(p->carry);
    p->carry = NULL;
    p->carry_len = 0;
}

static int make_ctxt(struct xs_parser *p)
{
    p->ctxt = xmlCreatePushParserCtxt(&p->sax, p, NULL, 0, NULL);
    if (!p->ctxt)
        return GW_ENOMEM;
    /* NONET; never NOENT, DTDLOAD or HUGE.  (libxml2 2.9.14 applies no
     * depth limit of its own to a push parser: see docs/xmpp-parser.md.) */
    xmlCtxtUseOptions(p->ctxt, XML_PARSE_NONET);
    return 0;
}

struct xs_parser *xs_parser_new(const struct xs_parser_cbs *cbs, void *data,
                                const struct xs_parser_opts *opts)
{
    struct xs_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (cbs)
        p->cbs = *cbs;
    p->data = data;
    p->max_bytes = XS_PARSER_MAX_STANZA_DEFAULT;
    p->max_depth = XS_PARSER_MAX_DEPTH_DEFAULT;
    p->max_attrs = XS_PARSER_MAX_ATTRS_DEFAULT;
    p->max_elements = XS_PARSER_MAX_ELEMENTS_DEFAULT;
    p->max_names = XS_PARSER_MAX_NAMES_DEFAULT;
    if (opts) {
        if (opts->max_stanza_bytes)
            p->max_bytes = opts->max_stanza_bytes;
        if (opts->max_depth)
            p->max_depth = opts->max_depth;
        if (opts->max_attrs)
            p->max_attrs = opts->max_attrs;
        if (opts->max_elements)
            p->max_elements = opts->max_elements;
        if (opts->max_names)
            p->max_names = opts->max_names;
        if (opts->content_ns) {
            p->content_ns = strdup(opts->content_ns);
            if (!p->content_ns) {
                free(p);
                return NULL;
            }
        }
    }
    if (p->max_depth > XS_PARSER_MAX_DEPTH_LIMIT)
        p->max_depth = XS_PARSER_MAX_DEPTH_LIMIT;
    p->hard_bytes = p->max_bytes > SIZE_MAX / XS_PARSER_HARD_FACTOR
                        ? SIZE_MAX
                        : p->max_bytes * XS_PARSER_HARD_FACTOR;
    if (p->hard_bytes < XS_PARSER_HARD_MIN)
        p->hard_bytes = XS_PARSER_HARD_MIN;
    xs_buf_init(&p->header, p->hard_bytes + 4 * XS_PARSER_PIECE);

    xmlSAXHandler *s = &p->sax;
    s->initialized = XML_SAX2_MAGIC;
    s->startElementNs = on_start;
    s->endElementNs = on_end;
    s->characters = on_chars;
    s->cdataBlock = on_chars;
    s->ignorableWhitespace = on_chars;
    s->serror = on_xml_error;
    s->internalSubset = on_internal_subset;
    s->externalSubset = on_external_subset;
    s->entityDecl = on_entity_decl;
    s->notationDecl = on_notation_decl;
    s->attributeDecl = on_attribute_decl;
    s->elementDecl = on_element_decl;
    s->unparsedEntityDecl = on_unparsed_entity_decl;
    s->reference = on_reference;
    s->comment = on_comment;
    s->processingInstruction = on_pi;
    s->getEntity = on_get_entity;
    s->getParameterEntity = on_get_entity;
    s->resolveEntity = on_resolve_entity;
    return p;
}

static void destroy(struct xs_parser *p)
{
    drop_ctxt(p);
    free(p->content_ns);
    free(p);
}

void xs_parser_free(struct xs_parser *p)
{
    if (!p)
        return;
    if (p->in_feed) {
        p->free_pending = true;
        halt(p);
        return;
    }
    destroy(p);
}

void xs_parser_reset(struct xs_parser *p)
{
    if (!p || p->free_pending)
        return;
    if (p->in_feed) {
        if (!p->reset_pending && p->ctxt && !p->stopped) {
            p->stop_pos = pos_now(p);
            /* libxml2 reports a start tag before it consumes its '>' or
             * '/>', which the tag parser has already seen. */
            const xmlChar *c = p->ctxt->input ? p->ctxt->input->cur : NULL;
            if (p->in_start && c && c[0] == '>')
                p->stop_pos += 1;
            else if (p->in_start && c && c[0] == '/' && c[1] == '>')
                p->stop_pos += 2;
        } else if (!p->reset_pending) {
            p->stop_pos = p->fed;
        }
        p->reset_pending = true;
        halt(p);
        return;
    }
    drop_ctxt(p);
    p->discarded = 0;
}

/* Runs the error callback once; it may reset or free the parser. */
static int report(struct xs_parser *p)
{
    int rc = p->err;
    if (!rc || p->err_reported)
        return rc;
    p->err_reported = true;
    if (p->cbs.error) {
        p->in_feed = true;
        p->cbs.error(p->data, p->cond, p->errtext);
        p->in_feed = false;
        if (p->free_pending) {
            destroy(p);
            return GW_ECANCELED;
        }
        if (p->reset_pending) {
            drop_ctxt(p);
            p->discarded = 0;
        }
    }
    return rc;
}

/* Hands in[0..len) to libxml2 in pieces until done or stopped, checking
 * the hard cap after each piece.  Returns the bytes handed over. */
static size_t push(struct xs_parser *p, const char *in, size_t len)
{
    size_t off = 0;
    while (off < len && !p->stopped) {
        size_t n = len - off;
        if (n > XS_PARSER_PIECE)
            n = XS_PARSER_PIECE;
        p->fed += n;
        int r = xmlParseChunk(p->ctxt, in + off, (int)n, 0);
        off += n;
        if (p->stopped)
            break;
        if (r != 0) {
            fail(p, GW_EPARSE, "not-well-formed",
                 "not well-formed (libxml2 error %d)", r);
            break;
        }
        size_t pos = pos_now(p);
        if (p->fed - pos > p->hard_bytes)
            fail(p, GW_ELIMIT, "policy-violation",
                 "unparsed input exceeds %zu bytes", p->hard_bytes);
        else if (p->level >= 2 && pos - p->st_start > p->hard_bytes)
            fail(p, GW_ELIMIT, "policy-violation",
                 "one element exceeds %zu bytes", p->hard_bytes);
    }
    return off;
}

/* Replaces the context at a stanza boundary (see stanza_done): a new one
 * that has parsed the synthetic stream header. */
static void recycle(struct xs_parser *p)
{
    p->recycle_pending = false;
    if (p->ctxt)
        xmlFreeParserCtxt(p->ctxt);
    p->ctxt = NULL;
    p->stopped = false;
    p->level = 0;
    p->fed = 0;
    if (make_ctxt(p) != 0) {
        fail(p, GW_ENOMEM, "resource-constraint", "out of memory");
        return;
    }
    p->replaying = true;
    push(p, p->header.data, p->header.len);
    p->replaying = false;
    if (!p->stopped && p->level != 1)
        fail(p, GW_EIO, "internal-server-error", "cannot restart the parser");
    p->stats.recycles++;
}

int xs_parser_feed(struct xs_parser *p, const void *data, size_t len)
{
    if (!p || (len && !data))
        return GW_EINVAL;
    if (p->in_feed)
        return GW_EBUSY;
    if (p->err)
        return p->err;
    p->discarded = 0;
    if (len == 0)
        return 0;
    if (!p->ctxt && make_ctxt(p) != 0) {
        fail(p, GW_ENOMEM, "resource-constraint", "out of memory");
        return report(p);
    }
    const char *in = data;
    size_t off = 0;     /* bytes of data handed to libxml2 */
    char *carry = NULL; /* bytes to parse before data[off..] */
    size_t clen = 0, cused = 0;
    p->in_feed = true;
    for (;;) {
        if (carry)
            cused = push(p, carry, clen);
        else
            off += push(p, in + off, len - off);
        if (p->recycle_pending && !p->err && !p->reset_pending &&
            !p->free_pending) {
            /* What libxml2 had not parsed, then the rest of the carry. */
            size_t rest = carry ? clen - cused : 0;
            char *next = p->carry;
            size_t nlen = p->carry_len;
            if (rest) {
                next = realloc(p->carry, nlen + rest);
                if (!next) {
                    fail(p, GW_ENOMEM, "resource-constraint", "out of memory");
                    break;
                }
                memcpy(next + nlen, carry + cused, rest);
                nlen += rest;
            }
            p->carry = NULL;
            p->carry_len = 0;
            free(carry);
            carry = next;
            clen = nlen;
            cused = 0;
            recycle(p);
            if (!carry) /* nothing followed the boundary */
                clen = 0;
            continue;
        }
        if (p->stopped)
            break;
        if (carry) {
            free(carry);
            carry = NULL;
            clen = cused = 0;
        }
        if (off >= len)
            break;
    }
    p->in_feed = false;
    size_t unfed = (len - off) + (carry ? clen - cused : 0);
    free(carry);
    if (p->free_pending) {
        destroy(p);
        return GW_ECANCELED;
    }
    if (p->reset_pending) {
        size_t dropped = p->fed > p->stop_pos ? p->fed - p->stop_pos : 0;
        drop_ctxt(p);
        p->discarded = dropped + unfed;
        return 0;
    }
    return report(p);
}

const char *xs_parser_condition(const struct xs_parser *p)
{
    return (p && p->err) ? p->cond : NULL;
}

const char *xs_parser_error_text(const struct xs_parser *p)
{
    return (p && p->err) ? p->errtext : "";
}

size_t xs_parser_discarded(const struct xs_parser *p)
{
    return p ? p->discarded : 0;
}

const char *xs_parser_limit_name(enum xs_parser_limit limit)
{
    switch (limit) {
    case XS_LIMIT_SIZE:
        return "size";
    case XS_LIMIT_DEPTH:
        return "depth";
    case XS_LIMIT_ATTRS:
        return "attributes";
    case XS_LIMIT_ELEMENTS:
        return "elements";
    case XS_LIMIT_NAMES:
        return "names";
    }
    return "?";
}

void xs_parser_get_stats(const struct xs_parser *p, struct xs_parser_stats *out)
{
    if (!p) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = p->stats;
}
