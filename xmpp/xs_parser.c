/* xs_parser.c - libxml2 SAX2 push parser for an XMPP stream (see
 * xs_parser.h).
 *
 * One xmlParserCtxt per stream: a reset frees it and the next feed creates
 * a fresh one (xmpp-iot-reference 6.6).  Nothing in the SAX handlers may
 * longjmp or abort: a failure records the error, stops libxml2 with
 * xmlStopParser, and every handler returns at once while p->stopped. */
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
#include "xs_stanza_int.h"

/* Input goes to libxml2 in pieces of at most this size, so that the
 * unparsed backlog can be checked often enough to bound memory. */
#define XS_PARSER_PIECE 16384u

/* Markup bytes counted per element (<a></a> minus the names) and per
 * attribute ( ='' ). */
#define XS_ELEM_OVERHEAD 5u
#define XS_ATTR_OVERHEAD 4u

struct xs_parser {
    xmlSAXHandler sax;
    xmlParserCtxtPtr ctxt; /* NULL until the first feed after a reset */
    struct xs_parser_cbs cbs;
    void *data;
    size_t max_bytes;
    unsigned max_depth;
    unsigned max_attrs;
    size_t max_names;
    char *content_ns;

    unsigned level;        /* open elements, the stream included */
    struct xs_stanza *top; /* the stanza being built */
    struct xs_stanza *cur; /* its innermost open element */
    size_t stanza_size;    /* counted size of the stanza so far */
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

/* Adds to the stanza's counted size; false (and failed) when over. */
static bool count(struct xs_parser *p, size_t n)
{
    if (n > p->max_bytes - p->stanza_size) {
        fail(p, GW_ELIMIT, "policy-violation", "stanza exceeds %zu bytes",
             p->max_bytes);
        return false;
    }
    p->stanza_size += n;
    return true;
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
 * attributes.  Also adds their counted size when counting.  NULL after
 * fail(). */
static struct xs_stanza *build_element(struct xs_parser *p,
                                       const xmlChar *local, const xmlChar *uri,
                                       int nb_ns, const xmlChar **nss,
                                       int nb_attrs, const xmlChar **attrs,
                                       bool counting)
{
    size_t nlen = xlen(local);
    if ((size_t)nb_ns + (size_t)nb_attrs > p->max_attrs) {
        fail(p, GW_ELIMIT, "policy-violation",
             "more than %u attributes on one element", p->max_attrs);
        return NULL;
    }
    if (counting && !count(p, 2 * nlen + XS_ELEM_OVERHEAD))
        return NULL;
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
        size_t ulen = xlen(u);
        if (counting && !count(p, 6 + xlen(pfx) + ulen + XS_ATTR_OVERHEAD))
            goto failed;
        if (add_attr(e, BAD_CAST "xmlns", pfx, u ? u : BAD_CAST "", ulen))
            goto nomem;
    }
    for (int i = 0; i < nb_attrs; i++) {
        const xmlChar **a = attrs + 5 * i; /* local, prefix, URI, v, end */
        size_t vlen = (size_t)(a[4] - a[3]);
        if (counting &&
            !count(p, xlen(a[1]) + xlen(a[0]) + vlen + XS_ATTR_OVERHEAD))
            goto failed;
        if (add_attr(e, a[1], a[0], a[3], vlen))
            goto nomem;
    }
    return e;
nomem:
    fail(p, GW_ENOMEM, "resource-constraint", "out of memory");
failed:
    xs_stanza_free(e);
    return NULL;
}

static void stream_start(struct xs_parser *p, const xmlChar *local,
                         const xmlChar *uri, int nb_ns, const xmlChar **nss,
                         int nb_attrs, const xmlChar **attrs)
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
    struct xs_stanza *e =
        build_element(p, local, uri, nb_ns, nss, nb_attrs, attrs, false);
    if (!e)
        return;
    p->level = 1;
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
    if (p->ctxt->dict && (size_t)xmlDictSize(p->ctxt->dict) > p->max_names) {
        fail(p, GW_ELIMIT, "policy-violation",
             "more than %zu distinct names in the stream", p->max_names);
        return;
    }
    if (p->level == 0) {
        stream_start(p, local, uri, nb_ns, nss, nb_attrs, attrs);
        return;
    }
    /* The stanza element opens at level 1 and gets depth 1. */
    if (p->level > p->max_depth) {
        fail(p, GW_ELIMIT, "policy-violation", "stanza deeper than %u",
             p->max_depth);
        return;
    }
    if (p->level == 1)
        p->stanza_size = 0;
    struct xs_stanza *e =
        build_element(p, local, uri, nb_ns, nss, nb_attrs, attrs, true);
    if (!e)
        return;
    if (p->cur)
        xs__stanza_link(p->cur, e);
    else
        p->top = e;
    p->cur = e;
    p->level++;
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
    struct xs_stanza *e = p->cur;
    if (e->first && e->text_len && all_space(e->text, e->text_len)) {
        e->text_len = 0;
        e->text[0] = '\0';
    }
    p->level--;
    if (p->level > 1) {
        p->cur = e->parent;
        return;
    }
    struct xs_stanza *top = p->top;
    p->top = NULL;
    p->cur = NULL;
    if (p->cbs.stanza)
        p->cbs.stanza(p->data, top);
    else
        xs_stanza_free(top);
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
    if (!count(p, n) || bad_chars(p, ch, n))
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
    p->stanza_size = 0;
    p->fed = 0;
    p->stopped = false;
    p->reset_pending = false;
    p->err = 0;
    p->cond = NULL;
    p->errtext[0] = '\0';
    p->err_reported = false;
}

static int make_ctxt(struct xs_parser *p)
{
    p->ctxt = xmlCreatePushParserCtxt(&p->sax, p, NULL, 0, NULL);
    if (!p->ctxt)
        return GW_ENOMEM;
    /* NONET; never NOENT, DTDLOAD or HUGE. */
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
    p->max_names = XS_PARSER_MAX_NAMES_DEFAULT;
    if (opts) {
        if (opts->max_stanza_bytes)
            p->max_bytes = opts->max_stanza_bytes;
        if (opts->max_depth)
            p->max_depth = opts->max_depth;
        if (opts->max_attrs)
            p->max_attrs = opts->max_attrs;
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
            long pos = xmlByteConsumed(p->ctxt);
            p->stop_pos = pos > 0 ? (size_t)pos : 0;
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
    size_t off = 0;
    p->in_feed = true;
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
        long pos = xmlByteConsumed(p->ctxt);
        if (pos >= 0 && p->fed - (size_t)pos > p->max_bytes)
            fail(p, GW_ELIMIT, "policy-violation",
                 "unparsed input exceeds %zu bytes", p->max_bytes);
    }
    p->in_feed = false;
    if (p->free_pending) {
        destroy(p);
        return GW_ECANCELED;
    }
    if (p->reset_pending) {
        size_t dropped = p->fed > p->stop_pos ? p->fed - p->stop_pos : 0;
        drop_ctxt(p);
        p->discarded = dropped + (len - off);
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
