/* xs_parser.c - libxml2 SAX2 push parser for an XMPP stream (see
 * xs_parser.h).
 *
 * One xmlParserCtxt per stream: a reset frees it and the next feed creates
 * a fresh one (xmpp-iot-reference 6.6).  Nothing in the SAX handlers may
 * longjmp or abort: a failure records the error, stops libxml2 with
 * xmlStopParser, and every handler returns at once while p->stopped.
 *
 * Every byte goes through a small constant-memory scanner (scan()) before
 * libxml2 gets it.  The scanner knows where each top-level element begins
 * and ends (tags, depth, quoted attribute values, CDATA), so input reaches
 * libxml2 in pieces that end exactly at the end of a top-level element,
 * and never more than max_stanza_bytes of one element.
 *
 * A stanza that breaks a per-stanza limit is skipped, not fatal: libxml2
 * is stopped and its context freed, the scanner alone finds the end of the
 * element (in constant memory, whatever its size), the element is reported
 * dropped, and a new libxml2 context continues from there.  A new context
 * ("recycling") is also started at the end of a stanza when libxml2's name
 * dictionary has grown past max_names.  A new context is fed a synthetic
 * copy of the stream header first; since pieces end at element ends, no
 * byte libxml2 was given is ever lost. */
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
    bool valid; /* captured from libxml2's report of the start tag */
};

/* ---- the scanner's state (see scan()) ---- */
enum sc_state {
    SC_TEXT,  /* character data, or before/between elements */
    SC_LT,    /* after '<' */
    SC_NAME,  /* the name of a start tag */
    SC_TAG,   /* in a start tag, outside attribute values */
    SC_VALUE, /* in a quoted attribute value */
    SC_ETAG,  /* in an end tag */
    SC_BANG,  /* after "<!": matching "[CDATA[" */
    SC_CDATA, /* in a CDATA section */
    SC_PI,    /* in the XML declaration (before the stream element) */
    SC_LOST,  /* input libxml2 rejects: no more events, libxml2 reports it */
};

enum sc_event {
    EV_NONE,
    EV_TOP_END,  /* a top-level element ended with the last byte scanned */
    EV_OVERSIZE, /* the next byte would take one past max_stanza_bytes */
    EV_ERROR,    /* malformed input in a skipped stanza (failed) */
};

/* Attribute values of a top-level start tag kept by the scanner. */
enum { SL_ID, SL_FROM, SL_TO, SL_TYPE, SL_XMLNS, SL_XMLNS_PFX, SL_N };
#define SC_NAME_MAX 1023u /* element name kept (longer: unknown) */
#define SC_ATTR_MAX 63u   /* attribute name compared (longer: other) */

struct sc_slot {
    size_t len;
    bool set;  /* its closing quote was seen */
    bool over; /* longer than XS_PARSER_INFO_MAX bytes on the wire */
    char v[XS_PARSER_INFO_MAX + 1];
};

struct scanner {
    enum sc_state st;
    size_t pos;          /* bytes scanned since the stream began */
    size_t depth;        /* open elements, the stream element included */
    size_t lt;           /* position of the last '<' */
    size_t st_start;     /* position of the current top-level element's '<' */
    size_t wire;         /* size of the last top-level element that ended */
    bool in_top;         /* inside a top-level element */
    bool top_tag;        /* the start tag being scanned is a top-level one */
    bool slash;          /* '/' seen in a start tag: '>' must follow */
    bool lost_forbidden; /* SC_LOST for restricted XML (else malformed) */
    char quote;          /* of the attribute value being scanned */
    unsigned k;          /* progress in "[CDATA[", "]]>" or "?>" */
    /* The top-level start tag (for stanza_dropped when libxml2 never saw
     * it complete: a start tag longer than max_stanza_bytes). */
    char name[SC_NAME_MAX + 1];
    size_t name_len;
    bool name_over;
    char an[SC_ATTR_MAX + 1]; /* the attribute name being scanned */
    size_t an_len;
    int an_state; /* 0 none, 1 reading a name, 2 the name ended */
    bool an_over;
    int slot; /* SL_* of the value being scanned, -1 none */
    struct sc_slot slots[SL_N];
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
    size_t fed;            /* bytes given to this ctxt (header included) */
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
    size_t st_elements; /* elements so far */
    size_t dict_base;   /* dictionary size when it began */
    bool skipping;      /* a limit was hit: the scanner skips to its end */
    bool top_ended;     /* libxml2 delivered one during the last piece */
    enum xs_parser_limit skip_limit;
    char skip_reason[96];
    struct capture cap;
    struct scanner sc;

    /* Context recycling. */
    struct xs_buf header; /* synthetic stream header for a new context */
    bool replaying;       /* the synthetic header is being parsed */
    bool recycle_pending; /* recycle at the end of this piece */
    char **hdr_ns;        /* the stream's declarations: prefix (NULL for
                             the default), URI, ... (decoded) */
    size_t hdr_n;         /* pairs in hdr_ns */

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

static void hdr_ns_clear(struct xs_parser *p)
{
    for (size_t i = 0; i < 2 * p->hdr_n; i++)
        free(p->hdr_ns[i]);
    free(p->hdr_ns);
    p->hdr_ns = NULL;
    p->hdr_n = 0;
}

/* Writes "<P:stream xmlns:P='...' xmlns='...' ...>" with the stream's
 * namespace declarations, for a recycled context, and keeps them (for the
 * namespace of a dropped element that libxml2 never reported). */
static int save_header(struct xs_parser *p, const xmlChar *local,
                       const xmlChar *prefix, int nb_ns, const xmlChar **nss)
{
    hdr_ns_clear(p);
    p->hdr_ns = calloc(2 * (size_t)nb_ns + 1, sizeof(char *));
    if (!p->hdr_ns)
        return GW_ENOMEM;
    for (int i = 0; i < nb_ns; i++) {
        const xmlChar *pfx = nss[2 * i], *u = nss[2 * i + 1];
        char **pair = p->hdr_ns + 2 * p->hdr_n;
        pair[0] = pfx ? strdup((const char *)pfx) : NULL;
        pair[1] = dup_decoded(u ? u : BAD_CAST "", xlen(u));
        if ((pfx && !pair[0]) || !pair[1]) {
            free(pair[0]);
            free(pair[1]);
            pair[0] = pair[1] = NULL;
            continue; /* not kept: a dropped element may get "" */
        }
        p->hdr_n++;
    }
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
    c->valid = true;
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

/* Frees the libxml2 context of a stanza being skipped (never from inside
 * libxml2). */
static void abandon_ctxt(struct xs_parser *p)
{
    if (p->ctxt) {
        xmlFreeParserCtxt(p->ctxt);
        p->ctxt = NULL;
    }
    p->stopped = false;
}

static void skip(struct xs_parser *p, enum xs_parser_limit limit,
                 const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Drops the stanza being built: libxml2 is stopped (from a SAX handler:
 * push() then frees its context) and the scanner finds the end. */
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
    halt(p);
}

/* A top-level element ended (delivered or dropped).  When the dictionary
 * is too big, push() starts a new libxml2 context at this boundary (the
 * end of the piece it handed over). */
static void stanza_done(struct xs_parser *p)
{
    capture_clear(&p->cap);
    p->skipping = false;
    if (!p->ctxt)
        return;
    if (!p->stopped && dict_size(p) > p->max_names)
        p->recycle_pending = true;
    p->dict_base = dict_size(p);
}

/* ---- the scanner -----------------------------------------------------------
 * A tokenizer with constant memory that runs over every byte before
 * libxml2 gets it: tags, depth, quoted attribute values (which may hold
 * '>'), CDATA sections (which may hold tags), self-closing tags.  While
 * libxml2 runs, the scanner only finds where pieces end, and anything it
 * does not model (comments, processing instructions, DTDs, malformed
 * tags) makes it give up (SC_LOST): libxml2 rejects all of it.  While a
 * stanza is skipped, libxml2 is not running, so the scanner fails the
 * stream on such input itself (no server forwards it). */

static bool sc_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int sc_bad(struct xs_parser *p, bool forbidden, const char *what)
{
    if (!p->skipping) {
        p->sc.st = SC_LOST;
        p->sc.lost_forbidden = forbidden;
        return EV_NONE;
    }
    if (forbidden)
        fail(p, GW_EFORBIDDEN, "restricted-xml", "%s not allowed", what);
    else
        fail(p, GW_EPARSE, "not-well-formed", "not well-formed: %s", what);
    return EV_ERROR;
}

static void sc_capture_reset(struct scanner *s)
{
    s->name_len = 0;
    s->name_over = false;
    s->an_state = 0;
    s->slot = -1;
    for (int i = 0; i < SL_N; i++) {
        s->slots[i].len = 0;
        s->slots[i].set = s->slots[i].over = false;
    }
}

static bool sc_an_is(const struct scanner *s, const char *name)
{
    size_t n = strlen(name);
    return s->an_len == n && memcmp(s->an, name, n) == 0;
}

/* The slot for the value of the attribute just named in a top-level start
 * tag, or -1. */
static int sc_slot_for(struct scanner *s)
{
    if (s->an_over || s->an_state == 0)
        return -1;
    int sl = sc_an_is(s, "id")      ? SL_ID
             : sc_an_is(s, "from")  ? SL_FROM
             : sc_an_is(s, "to")    ? SL_TO
             : sc_an_is(s, "type")  ? SL_TYPE
             : sc_an_is(s, "xmlns") ? SL_XMLNS
                                    : -1;
    const char *colon = s->name_over ? NULL : memchr(s->name, ':', s->name_len);
    if (sl < 0 && colon && s->an_len > 6 && memcmp(s->an, "xmlns:", 6) == 0 &&
        s->an_len - 6 == (size_t)(colon - s->name) &&
        memcmp(s->an + 6, s->name, s->an_len - 6) == 0)
        sl = SL_XMLNS_PFX;
    if (sl < 0 || s->slots[sl].set || s->slots[sl].len)
        return -1; /* the first one counts (a duplicate is malformed) */
    return sl;
}

static int sc_top_end(struct scanner *s)
{
    s->in_top = false;
    s->wire = s->pos - s->st_start;
    return EV_TOP_END;
}

static int sc_close(struct xs_parser *p)
{
    struct scanner *s = &p->sc;
    s->st = SC_TEXT;
    if (s->depth == 0)
        return sc_bad(p, false, "end tag outside the stream");
    s->depth--;
    if (s->depth == 1 && s->in_top)
        return sc_top_end(s);
    if (s->depth == 0)
        s->st = SC_LOST; /* </stream:stream>: libxml2 does the rest */
    return EV_NONE;
}

static int sc_tag_end(struct xs_parser *p, bool empty)
{
    struct scanner *s = &p->sc;
    s->st = SC_TEXT;
    s->slash = false;
    if (!empty) {
        s->depth++;
        return EV_NONE;
    }
    if (s->depth == 0) {
        s->st = SC_LOST; /* <stream:stream/> */
        return EV_NONE;
    }
    return s->top_tag ? sc_top_end(s) : EV_NONE;
}

/* One byte (already counted in s->pos). */
static int sc_byte(struct xs_parser *p, unsigned char c)
{
    struct scanner *s = &p->sc;
    switch (s->st) {
    case SC_TEXT:
        if (c == '<') {
            s->lt = s->pos - 1;
            s->st = SC_LT;
        }
        return EV_NONE;
    case SC_LT:
        if (c == '/') {
            s->st = SC_ETAG;
            s->k = 0;
            return EV_NONE;
        }
        if (c == '!') {
            s->st = SC_BANG;
            s->k = 0;
            return EV_NONE;
        }
        if (c == '?') {
            if (s->depth > 0)
                return sc_bad(p, true, "processing instruction");
            s->st = SC_PI;
            s->k = 0;
            return EV_NONE;
        }
        if (c < 0x20 || sc_space(c) || c == '>' || c == '<' || c == '=' ||
            c == '\'' || c == '"')
            return sc_bad(p, false, "'<' not followed by a name");
        s->st = SC_NAME;
        s->slash = false;
        s->top_tag = s->depth == 1;
        if (s->top_tag) {
            s->in_top = true;
            s->st_start = s->lt;
            sc_capture_reset(s);
            s->name[s->name_len++] = (char)c;
        }
        return EV_NONE;
    case SC_NAME:
        if (sc_space(c)) {
            s->st = SC_TAG;
            s->an_state = 0;
            return EV_NONE;
        }
        if (c == '/') {
            s->st = SC_TAG;
            s->slash = true;
            return EV_NONE;
        }
        if (c == '>')
            return sc_tag_end(p, false);
        if (c == '<' || c == '=' || c == '\'' || c == '"')
            return sc_bad(p, false, "bad element name");
        if (s->top_tag) {
            if (s->name_len < SC_NAME_MAX)
                s->name[s->name_len++] = (char)c;
            else
                s->name_over = true;
        }
        return EV_NONE;
    case SC_TAG:
        if (s->slash)
            return c == '>' ? sc_tag_end(p, true)
                            : sc_bad(p, false, "'/' not followed by '>'");
        if (c == '>')
            return sc_tag_end(p, false);
        if (c == '/') {
            s->slash = true;
            return EV_NONE;
        }
        if (c == '\'' || c == '"') {
            s->quote = (char)c;
            s->st = SC_VALUE;
            s->slot = s->top_tag ? sc_slot_for(s) : -1;
            s->an_state = 0;
            return EV_NONE;
        }
        if (c == '<')
            return sc_bad(p, false, "'<' in a tag");
        if (sc_space(c) || c == '=') {
            if (s->an_state == 1)
                s->an_state = 2;
            return EV_NONE;
        }
        if (!s->top_tag)
            return EV_NONE;
        if (s->an_state != 1) {
            s->an_state = 1;
            s->an_len = 0;
            s->an_over = false;
        }
        if (s->an_len < SC_ATTR_MAX)
            s->an[s->an_len++] = (char)c;
        else
            s->an_over = true;
        return EV_NONE;
    case SC_VALUE:
        if (c == (unsigned char)s->quote) {
            s->st = SC_TAG;
            if (s->slot >= 0)
                s->slots[s->slot].set = true;
            s->slot = -1;
            return EV_NONE;
        }
        if (c == '<')
            return sc_bad(p, false, "'<' in an attribute value");
        if (s->slot >= 0) {
            struct sc_slot *sl = &s->slots[s->slot];
            if (sl->len < XS_PARSER_INFO_MAX)
                sl->v[sl->len++] = (char)c;
            else
                sl->over = true;
        }
        return EV_NONE;
    case SC_ETAG: /* Name S? '>': k is 0 before the name, 1 in it, 2 after */
        if (c == '>' && s->k > 0)
            return sc_close(p);
        if (sc_space(c) && s->k > 0) {
            s->k = 2;
            return EV_NONE;
        }
        if (s->k == 2 || c < 0x20 || sc_space(c) || c == '>' || c == '<' ||
            c == '=' || c == '\'' || c == '"' || c == '/')
            return sc_bad(p, false, "malformed end tag");
        s->k = 1;
        return EV_NONE;
    case SC_BANG:
        if (c == (unsigned char)"[CDATA["[s->k]) {
            if (++s->k == 7) {
                s->st = SC_CDATA;
                s->k = 0;
            }
            return EV_NONE;
        }
        return s->k == 0 ? sc_bad(p, true, "comment or declaration")
                         : sc_bad(p, false, "bad CDATA section");
    case SC_CDATA:
        if (c == ']') {
            if (s->k < 2)
                s->k++;
        } else if (c == '>' && s->k == 2) {
            s->st = SC_TEXT;
            s->k = 0;
        } else {
            s->k = 0;
        }
        return EV_NONE;
    case SC_PI:
        if (c == '>' && s->k == 1)
            s->st = SC_TEXT;
        s->k = c == '?';
        return EV_NONE;
    case SC_LOST:
        return EV_NONE;
    }
    return EV_NONE;
}

/* A byte that ends a name (or is not allowed in one). */
static bool sc_name_stop(unsigned char c)
{
    return c <= ' ' || c == '/' || c == '>' || c == '<' || c == '=' ||
           c == '\'' || c == '"';
}

/* How many bytes of in[0..lim) change nothing but the position: runs of
 * text, attribute values and names (not kept), CDATA, passed over at
 * once. */
static size_t sc_run(const struct scanner *s, const char *in, size_t lim)
{
    const char *q;
    switch (s->st) {
    case SC_TEXT:
        q = memchr(in, '<', lim);
        return q ? (size_t)(q - in) : lim;
    case SC_VALUE:
        if (s->slot >= 0)
            return 0;
        for (size_t n = 0; n < lim; n++)
            if (in[n] == s->quote || in[n] == '<')
                return n;
        return lim;
    case SC_CDATA:
        if (s->k)
            return 0;
        q = memchr(in, ']', lim);
        return q ? (size_t)(q - in) : lim;
    case SC_NAME: /* names: of tags other than the top-level start tag */
        if (s->top_tag)
            return 0;
        for (size_t n = 0; n < lim; n++)
            if (sc_name_stop((unsigned char)in[n]))
                return n;
        return lim;
    case SC_ETAG:
        if (s->k != 1)
            return 0;
        for (size_t n = 0; n < lim; n++)
            if (sc_name_stop((unsigned char)in[n]))
                return n;
        return lim;
    case SC_TAG: /* attribute names, '=' and spaces of other tags */
        if (s->top_tag || s->slash)
            return 0;
        for (size_t n = 0; n < lim; n++) {
            unsigned char c = (unsigned char)in[n];
            if (c == '\'' || c == '"' || c == '/' || c == '>' || c == '<')
                return n;
        }
        return lim;
    default:
        return 0;
    }
}

/* Scans in[0..len) and stops after the byte that ends a top-level element
 * (EV_TOP_END), before the byte that would make one longer than
 * max_stanza_bytes while it is not being skipped (EV_OVERSIZE), or on an
 * error (EV_ERROR).  Returns the bytes scanned. */
static size_t scan(struct xs_parser *p, const char *in, size_t len, int *ev)
{
    struct scanner *s = &p->sc;
    *ev = EV_NONE;
    size_t i = 0;
    while (i < len) {
        if (s->st == SC_LOST) {
            s->pos += len - i;
            return len;
        }
        size_t lim = len - i;
        if (s->in_top && !p->skipping) {
            size_t used = s->pos - s->st_start;
            if (used >= p->max_bytes) {
                *ev = EV_OVERSIZE;
                return i;
            }
            if (p->max_bytes - used < lim)
                lim = p->max_bytes - used;
        }
        size_t run = sc_run(s, in + i, lim);
        s->pos += run;
        i += run;
        if (run == lim)
            continue;
        s->pos++;
        int e = sc_byte(p, (unsigned char)in[i++]);
        if (e != EV_NONE) {
            *ev = e;
            return i;
        }
    }
    return len;
}

/* Decodes an attribute value from the wire (the 5 predefined entities,
 * character references, line ends and TAB/LF/CR normalized): a new
 * string, or NULL (malformed, not valid UTF-8, too long, no memory). */
static char *sc_decode(const char *raw, size_t len)
{
    char *out = malloc(len + 1); /* decoding never makes it longer */
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '\t' || c == '\n' || c == '\r') {
            i += c == '\r' && i + 1 < len && raw[i + 1] == '\n' ? 2 : 1;
            out[o++] = ' ';
            continue;
        }
        if (c != '&') {
            out[o++] = (char)c;
            i++;
            continue;
        }
        const char *semi = memchr(raw + i, ';', len - i < 12 ? len - i : 12);
        if (!semi)
            goto bad;
        const char *nm = raw + i + 1;
        size_t n = (size_t)(semi - nm);
        i = (size_t)(semi - raw) + 1;
        static const char *const ents[] = {"lt", "<",    "gt", ">",    "amp",
                                           "&",  "quot", "\"", "apos", "'"};
        bool found = false;
        for (size_t e = 0; e < 10 && !found; e += 2)
            if (strlen(ents[e]) == n && memcmp(nm, ents[e], n) == 0) {
                out[o++] = ents[e + 1][0];
                found = true;
            }
        if (found)
            continue;
        if (n < 2 || nm[0] != '#')
            goto bad;
        unsigned long v = 0;
        bool hex = nm[1] == 'x';
        size_t d = hex ? 2 : 1;
        if (d >= n)
            goto bad;
        for (; d < n; d++) {
            int dv = nm[d] >= '0' && nm[d] <= '9'          ? nm[d] - '0'
                     : hex && nm[d] >= 'a' && nm[d] <= 'f' ? nm[d] - 'a' + 10
                     : hex && nm[d] >= 'A' && nm[d] <= 'F' ? nm[d] - 'A' + 10
                                                           : -1;
            if (dv < 0 || v > 0x10FFFF)
                goto bad;
            v = v * (hex ? 16 : 10) + (unsigned long)dv;
        }
        if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            goto bad;
        if (v < 0x80) {
            out[o++] = (char)v;
        } else if (v < 0x800) {
            out[o++] = (char)(0xC0 | (v >> 6));
            out[o++] = (char)(0x80 | (v & 0x3F));
        } else if (v < 0x10000) {
            out[o++] = (char)(0xE0 | (v >> 12));
            out[o++] = (char)(0x80 | ((v >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (v & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | (v >> 18));
            out[o++] = (char)(0x80 | ((v >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((v >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (v & 0x3F));
        }
    }
    out[o] = '\0';
    if (o <= XS_PARSER_INFO_MAX && xs__utf8_valid(out, o))
        return out;
bad:
    free(out);
    return NULL;
}

static char *sc_slot_value(const struct scanner *s, int sl)
{
    const struct sc_slot *v = &s->slots[sl];
    return v->set && !v->over ? sc_decode(v->v, v->len) : NULL;
}

/* The URI the stream header declared for prefix (NULL: the default). */
static const char *hdr_lookup(const struct xs_parser *p, const char *prefix,
                              size_t plen)
{
    for (size_t i = 0; i < p->hdr_n; i++) {
        const char *hp = p->hdr_ns[2 * i];
        if (prefix ? hp && strlen(hp) == plen && memcmp(hp, prefix, plen) == 0
                   : !hp)
            return p->hdr_ns[2 * i + 1];
    }
    return NULL;
}

/* Fills p->cap from what the scanner kept of the top-level start tag,
 * when libxml2 never reported it. */
static void sc_capture(struct xs_parser *p)
{
    struct scanner *s = &p->sc;
    struct capture *c = &p->cap;
    capture_clear(c);
    if (s->name_over || !xs__utf8_valid(s->name, s->name_len))
        return;
    const char *colon = memchr(s->name, ':', s->name_len);
    const char *local = colon ? colon + 1 : s->name;
    size_t llen = s->name_len - (size_t)(local - s->name);
    c->name = dup_decoded(BAD_CAST local, llen);
    int sl = colon ? SL_XMLNS_PFX : SL_XMLNS;
    c->ns = sc_slot_value(s, sl);
    if (!c->ns && !s->slots[sl].set) {
        size_t plen = colon ? (size_t)(colon - s->name) : 0;
        const char *u = colon && plen == 3 && memcmp(s->name, "xml", 3) == 0
                            ? XS_NS_XML
                            : hdr_lookup(p, colon ? s->name : NULL, plen);
        c->ns = u ? strdup(u) : NULL;
    }
    c->id = sc_slot_value(s, SL_ID);
    c->from = sc_slot_value(s, SL_FROM);
    c->to = sc_slot_value(s, SL_TO);
    c->type = sc_slot_value(s, SL_TYPE);
}

/* The skipped element ended: reports it. */
static void report_dropped(struct xs_parser *p)
{
    size_t wire = p->sc.wire;
    if (p->skip_limit == XS_LIMIT_SIZE)
        snprintf(p->skip_reason, sizeof(p->skip_reason),
                 "stanza of %zu bytes exceeds %zu", wire, p->max_bytes);
    if (!p->cap.valid)
        sc_capture(p);
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
        p->st_elements = 0;
        p->skipping = false;
        capture(p, local, uri, nb_attrs, attrs);
    }
    /* The stanza element opens at level 1 and gets depth 1. */
    p->level++;
    if (p->skipping)
        return;
    size_t names = dict_size(p) - p->dict_base;
    if (p->level - 1 > p->max_depth)
        skip(p, XS_LIMIT_DEPTH, "stanza deeper than %u", p->max_depth);
    else if ((size_t)nb_ns + (size_t)nb_attrs > p->max_attrs)
        skip(p, XS_LIMIT_ATTRS, "more than %u attributes on one element",
             p->max_attrs);
    else if (++p->st_elements > p->max_elements)
        skip(p, XS_LIMIT_ELEMENTS, "more than %zu elements", p->max_elements);
    else if (names > p->max_names)
        skip(p, XS_LIMIT_NAMES, "more than %zu new names", p->max_names);
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
    struct xs_stanza *e = p->cur;
    if (e->first && e->text_len && all_space(e->text, e->text_len)) {
        e->text_len = 0;
        e->text[0] = '\0';
    }
    if (p->level > 1) {
        p->cur = e->parent;
        return;
    }
    /* The scanner cut the piece before any stanza could get longer than
     * max_stanza_bytes: this one is within the limit. */
    struct xs_stanza *top = p->top;
    p->top = NULL;
    p->cur = NULL;
    p->top_ended = true;
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
    p->top_ended = false;
    p->st_elements = p->dict_base = 0;
    capture_clear(&p->cap);
    memset(&p->sc, 0, sizeof(p->sc));
    xs_buf_close(&p->header);
    hdr_ns_clear(p);
    p->replaying = false;
    p->recycle_pending = false;
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

/* Hands in[0..n) to libxml2 (a piece of at most XS_PARSER_PIECE bytes),
 * then checks what it holds unparsed against the hard cap. */
static void feed_ctxt(struct xs_parser *p, const char *in, size_t n)
{
    p->fed += n;
    int r = xmlParseChunk(p->ctxt, in, (int)n, 0);
    if (p->stopped)
        return;
    if (r != 0) {
        fail(p, GW_EPARSE, "not-well-formed",
             "not well-formed (libxml2 error %d)", r);
        return;
    }
    size_t pos = pos_now(p);
    if (pos < p->fed && p->fed - pos > p->hard_bytes)
        fail(p, GW_ELIMIT, "policy-violation",
             "unparsed input exceeds %zu bytes", p->hard_bytes);
}

/* Replaces the context at a stanza boundary: a new one that has parsed
 * the synthetic stream header.  Every byte the old one was given lies
 * before the boundary (pieces end there), so nothing is carried over. */
static void recycle(struct xs_parser *p)
{
    p->recycle_pending = false;
    abandon_ctxt(p);
    p->level = 0;
    p->fed = 0;
    if (make_ctxt(p) != 0) {
        fail(p, GW_ENOMEM, "resource-constraint", "out of memory");
        return;
    }
    p->replaying = true;
    for (size_t off = 0; off < p->header.len && !p->stopped;) {
        size_t n = p->header.len - off;
        if (n > XS_PARSER_PIECE)
            n = XS_PARSER_PIECE;
        feed_ctxt(p, p->header.data + off, n);
        off += n;
    }
    p->replaying = false;
    if (!p->stopped && p->level != 1)
        fail(p, GW_EIO, "internal-server-error", "cannot restart the parser");
    p->stats.recycles++;
}

/* The stanza being skipped ended (the scanner saw its end): reports it
 * and starts a new libxml2 context for what follows. */
static void end_skip(struct xs_parser *p)
{
    abandon_ctxt(p);
    report_dropped(p);
    if (!p->err && !p->reset_pending && !p->free_pending)
        recycle(p);
}

/* Parses in[0..len) until done or stopped (error, reset or free); returns
 * the bytes used.  The scanner cuts the input into pieces for libxml2 that
 * end at the end of a top-level element at the latest; while a stanza is
 * skipped, only the scanner runs. */
static size_t push(struct xs_parser *p, const char *in, size_t len)
{
    size_t off = 0;
    while (off < len && !p->err && !p->reset_pending && !p->free_pending) {
        int ev;
        if (p->skipping) {
            off += scan(p, in + off, len - off, &ev);
            if (ev == EV_TOP_END)
                end_skip(p);
            continue;
        }
        size_t n = len - off;
        if (n > XS_PARSER_PIECE)
            n = XS_PARSER_PIECE;
        n = scan(p, in + off, n, &ev);
        p->top_ended = false;
        if (n)
            feed_ctxt(p, in + off, n);
        off += n;
        if (p->err || p->reset_pending || p->free_pending)
            break;
        if (p->skipping) { /* a limit hit in a SAX handler */
            abandon_ctxt(p);
            if (p->sc.st == SC_LOST) {
                /* The scanner gave up on this input (libxml2 had not
                 * reached the spot yet): it cannot find the end. */
                if (p->sc.lost_forbidden)
                    fail(p, GW_EFORBIDDEN, "restricted-xml",
                         "comment, processing instruction or DTD");
                else
                    fail(p, GW_EPARSE, "not-well-formed",
                         "not well-formed (in a stanza over the limits)");
                break;
            }
            if (ev == EV_TOP_END)
                end_skip(p);
            continue;
        }
        if (ev == EV_OVERSIZE) {
            skip(p, XS_LIMIT_SIZE, "stanza exceeds %zu bytes", p->max_bytes);
            abandon_ctxt(p);
            continue;
        }
        if (ev == EV_TOP_END && !p->top_ended) {
            /* libxml2 waits for more although the element has ended: it
             * is not well-formed (with every byte of a well-formed element
             * at hand libxml2 completes it).  No more cuts: libxml2 gets
             * the rest as it comes and reports the error. */
            p->sc.st = SC_LOST;
            p->sc.lost_forbidden = false;
            continue;
        }
        if (p->top_ended) {
            /* libxml2 accepted an element: the scanner must have ended it
             * at the same byte; never go on with the two out of step. */
            if (ev != EV_TOP_END || p->level != 1 || pos_now(p) != p->fed) {
                fail(p, GW_EIO, "internal-server-error",
                     "the scanner and libxml2 disagree on a stanza's end");
                break;
            }
            if (p->recycle_pending)
                recycle(p);
        }
    }
    return off;
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
    if (!p->ctxt && !p->skipping && make_ctxt(p) != 0) {
        fail(p, GW_ENOMEM, "resource-constraint", "out of memory");
        return report(p);
    }
    p->in_feed = true;
    size_t off = push(p, data, len);
    p->in_feed = false;
    size_t unfed = len - off;
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
