/* xs_iot_xsf.c - XEP-0323/0325/0326 front end over gw_iot (see the header
 * and docs/xmpp-iot.md). */
#include "xs_iot_xsf.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_err.h"
#include "xs_jid.h"

static const char *const AREA = "iot-xsf";

#define CHUNK_DEFAULT (16u * 1024u)
#define CHUNK_MIN 2048u
#define CHUNK_SLACK 400u /* message, node and timestamp markup */
#define MAX_NODES_IN_REQ 1024u
#define MAX_PARAMS 256u
#define STANZA_MAX_DEFAULT (256u * 1024u)

struct fe_readout {
    struct xs_iot_xsf *fe;
    char *to;    /* requester's full JID */
    char *seqnr; /* echoed byte for byte */
    struct gw_iot_readout *ro;
    struct fe_readout *prev, *next;
};

struct fe_ctl {
    struct xs_iot_xsf *fe;
    struct xs_stanza *iq; /* copy of the request (NULL for a message set) */
    char *from;
    char **names; /* parameter names, for setResponse */
    size_t n_names;
    char **node_ids;
    size_t n_node_ids;
    struct gw_iot_control *ctl;
    struct fe_ctl *prev, *next;
};

struct fe_sub {
    char *jid;
    bool status_events;
    bool messages;
    struct fe_sub *next;
};

struct xs_iot_xsf {
    struct gw_iot *iot;
    xs_iot_send_fn send;
    void *send_ud;
    const struct gw_log *log;
    struct xs_iot_xsf_opts opts;
    char server[1024]; /* opts.server copied; "" when none */
    struct fe_readout *readouts;
    struct fe_ctl *ctls;
    struct fe_sub *subs;
};

static const char *const FEATURES[] = {
    XS_NS_IOT_SD,         XS_NS_IOT_CTL,       XS_NS_IOT_CONC, XS_NS_XDATA,
    XS_NS_XDATA_VALIDATE, XS_NS_XDATA_DYNAMIC, NULL,
};

const char *const *xs_iot_xsf_features(void)
{
    return FEATURES;
}

/* ---- small helpers ------------------------------------------------------ */

static int send_st(struct xs_iot_xsf *fe, struct xs_stanza *st)
{
    if (!st)
        return GW_ENOMEM;
    int rc = fe->send(fe->send_ud, st);
    if (rc != GW_OK && rc != GW_ELIMIT)
        GW_LOG(fe->log, GW_LOG_DEBUG, AREA, "a stanza was not sent: %s",
               gw_strerror(rc));
    return rc;
}

static struct xs_stanza *add(struct xs_stanza *parent, const char *name,
                             const char *ns);
static void set_attr(struct xs_stanza *el, const char *name, const char *value);

/* "<op>Response" into buf; false when op is too long to echo. */
static bool response_name(const char *op, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%sResponse", op);
    return n > 0 && (size_t)n < cap;
}

/* Sends the answer to iq.  One too large for a stanza (GW_ELIMIT: a
 * concentrator result cannot be split) is replaced by a resource-constraint
 * error, with <opResponse result='OtherError'/> for an XEP-0326 op
 * (conc_op), and logged as a refusal. */
static void answer(struct xs_iot_xsf *fe, const struct xs_stanza *iq,
                   struct xs_stanza *st, const char *kind, const char *op,
                   const char *conc_op)
{
    if (send_st(fe, st) != GW_ELIMIT)
        return;
    char text[160];
    snprintf(text, sizeof(text),
             "The answer would exceed the largest stanza (%zu bytes): ask for "
             "fewer nodes or less data",
             fe->opts.stanza_max);
    struct xs_stanza *e = xs_iq_error(iq, "wait", "resource-constraint", text);
    char name[96];
    if (e && conc_op && response_name(conc_op, name, sizeof(name)))
        set_attr(add(e, name, XS_NS_IOT_CONC), "result", "OtherError");
    const char *from = xs_stanza_attr(iq, "from");
    gw_iot_refused(fe->iot, from, kind,
                   "%s: the answer is larger than the stanza limit of %zu "
                   "bytes",
                   op, fe->opts.stanza_max);
    send_st(fe, e);
}

static bool truthy(const char *v)
{
    return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* Text from a device made XML-safe: invalid UTF-8 and C0 controls (other
 * than TAB LF CR) become '?'. */
static void xml_safe(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)in;
    while (*s && o + 5 < cap) {
        unsigned char c = *s;
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        bool ok = len > 0;
        for (size_t i = 1; ok && i < len; i++)
            ok = (s[i] & 0xc0) == 0x80;
        if (ok && len == 1 && c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            ok = false;
        if (ok && len == 2 && c < 0xc2)
            ok = false;
        if (ok && len == 3) {
            unsigned cp =
                ((c & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
            ok = cp >= 0x800 && !(cp >= 0xd800 && cp <= 0xdfff) &&
                 cp != 0xfffe && cp != 0xffff;
        }
        if (ok && len == 4) {
            unsigned cp = ((c & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) |
                          ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu);
            ok = cp >= 0x10000 && cp <= 0x10ffff;
        }
        if (!ok) {
            out[o++] = '?';
            s++;
            continue;
        }
        memcpy(out + o, s, len);
        o += len;
        s += len;
    }
    out[o] = '\0';
}

static void set_attr(struct xs_stanza *el, const char *name, const char *value)
{
    if (!el || !value)
        return;
    if (xs_stanza_set_attr(el, name, value) != GW_OK) {
        char safe[AD_STRING_MAX * 2 + 8];
        xml_safe(value, safe, sizeof(safe));
        xs_stanza_set_attr(el, name, safe);
    }
}

static void set_text(struct xs_stanza *el, const char *text)
{
    if (!el || !text)
        return;
    if (xs_stanza_set_text(el, text, strlen(text)) != GW_OK) {
        char safe[512];
        xml_safe(text, safe, sizeof(safe));
        xs_stanza_set_text(el, safe, strlen(safe));
    }
}

static struct xs_stanza *add(struct xs_stanza *parent, const char *name,
                             const char *ns)
{
    return parent ? xs_stanza_add_new(parent, name, ns) : NULL;
}

static struct xs_stanza *message_to(const char *to)
{
    struct xs_stanza *m = xs_stanza_new("message", XS_NS_CLIENT);
    if (m && xs_stanza_set_attr(m, "to", to) != GW_OK) {
        xs_stanza_free(m);
        return NULL;
    }
    return m;
}

void xs_iot_format_time(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        t--;
    }
    struct tm tm;
    gmtime_r(&t, &tm);
    if (frac)
        snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, frac);
    else
        snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int xs_iot_parse_time(const char *text, int64_t *out_ms)
{
    if (!text)
        return GW_EPARSE;
    int y, mo, d, h, mi, se;
    const char *p;
    size_t len = strlen(text);
    if (len >= 17 && text[8] == 'T' && text[11] == ':') {
        /* legacy jabber:x:delay CCYYMMDDThh:mm:ss */
        if (!digits(text, 4, &y) || !digits(text + 4, 2, &mo) ||
            !digits(text + 6, 2, &d) || !digits(text + 9, 2, &h) ||
            !digits(text + 12, 2, &mi) || text[14] != ':' ||
            !digits(text + 15, 2, &se))
            return GW_EPARSE;
        p = text + 17;
    } else {
        if (len < 19 || text[4] != '-' || text[7] != '-' || text[10] != 'T' ||
            text[13] != ':' || text[16] != ':' || !digits(text, 4, &y) ||
            !digits(text + 5, 2, &mo) || !digits(text + 8, 2, &d) ||
            !digits(text + 11, 2, &h) || !digits(text + 14, 2, &mi) ||
            !digits(text + 17, 2, &se))
            return GW_EPARSE;
        p = text + 19;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || se > 60)
        return GW_EPARSE;
    int ms = 0;
    if (*p == '.') {
        p++;
        int scale = 100;
        if (!isdigit((unsigned char)*p))
            return GW_EPARSE;
        while (isdigit((unsigned char)*p)) {
            ms += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    int64_t secs;
    if (*p == '\0') {
        tm.tm_isdst = -1;
        secs = (int64_t)mktime(&tm);
    } else if (strcmp(p, "Z") == 0) {
        secs = (int64_t)timegm(&tm);
    } else if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || !digits(p + 4, 2, &om) || oh > 14 ||
            om > 59)
            return GW_EPARSE;
        int off = (oh * 60 + om) * 60;
        secs = (int64_t)timegm(&tm) - (p[0] == '+' ? off : -off);
    } else {
        return GW_EPARSE;
    }
    *out_ms = secs * 1000 + ms;
    return GW_OK;
}

static const char *from_of(const struct xs_stanza *st)
{
    const char *f = xs_stanza_attr(st, "from");
    return f ? f : "";
}

/* ---- lifecycle ---------------------------------------------------------- */

static void on_status(void *ud, size_t node, enum gw_iot_state state);

int xs_iot_xsf_new(struct gw_iot *iot, xs_iot_send_fn send, void *send_ud,
                   const struct gw_log *log, const struct xs_iot_xsf_opts *opts,
                   struct xs_iot_xsf **out)
{
    struct xs_iot_xsf *fe = calloc(1, sizeof(*fe));
    if (!fe)
        return GW_ENOMEM;
    fe->iot = iot;
    fe->send = send;
    fe->send_ud = send_ud;
    fe->log = log;
    if (opts)
        fe->opts = *opts;
    if (!fe->opts.control_max_age_ms)
        fe->opts.control_max_age_ms = 60000;
    if (!fe->opts.stanza_max)
        fe->opts.stanza_max = STANZA_MAX_DEFAULT;
    if (!fe->opts.chunk_max)
        fe->opts.chunk_max = CHUNK_DEFAULT;
    if (fe->opts.chunk_max > fe->opts.stanza_max / 2)
        fe->opts.chunk_max = fe->opts.stanza_max / 2;
    if (fe->opts.chunk_max < CHUNK_MIN)
        fe->opts.chunk_max = CHUNK_MIN;
    snprintf(fe->server, sizeof(fe->server), "%s",
             fe->opts.server ? fe->opts.server : "");
    fe->opts.server = NULL; /* not kept: fe->server holds the copy */
    gw_iot_set_status_cb(iot, on_status, fe);
    *out = fe;
    return GW_OK;
}

static void fr_free(struct fe_readout *r)
{
    struct xs_iot_xsf *fe = r->fe;
    if (r->prev)
        r->prev->next = r->next;
    else if (fe->readouts == r)
        fe->readouts = r->next;
    if (r->next)
        r->next->prev = r->prev;
    gw_iot_readout_free(r->ro);
    free(r->to);
    free(r->seqnr);
    free(r);
}

static void fc_free(struct fe_ctl *c)
{
    struct xs_iot_xsf *fe = c->fe;
    if (c->prev)
        c->prev->next = c->next;
    else if (fe->ctls == c)
        fe->ctls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    gw_iot_control_free(c->ctl);
    xs_stanza_free(c->iq);
    free(c->from);
    for (size_t i = 0; i < c->n_names; i++)
        free(c->names[i]);
    free(c->names);
    for (size_t i = 0; i < c->n_node_ids; i++)
        free(c->node_ids[i]);
    free(c->node_ids);
    free(c);
}

static void subs_clear(struct xs_iot_xsf *fe)
{
    while (fe->subs) {
        struct fe_sub *s = fe->subs;
        fe->subs = s->next;
        free(s->jid);
        free(s);
    }
}

void xs_iot_xsf_reset(struct xs_iot_xsf *fe)
{
    while (fe->readouts)
        fr_free(fe->readouts);
    subs_clear(fe);
}

void xs_iot_xsf_free(struct xs_iot_xsf *fe)
{
    if (!fe)
        return;
    gw_iot_set_status_cb(fe->iot, NULL, NULL);
    xs_iot_xsf_reset(fe);
    while (fe->ctls)
        fc_free(fe->ctls);
    free(fe);
}

static int conn_send(void *ud, struct xs_stanza *st)
{
    return xs_conn_send(ud, st);
}

static void on_conn_iq(void *ud, struct xs_conn *c, const struct xs_stanza *iq)
{
    (void)c;
    xs_iot_xsf_iq(ud, iq);
}

int xs_iot_xsf_attach(struct xs_iot_xsf *fe, struct xs_conn *c)
{
    fe->send = conn_send;
    fe->send_ud = c;
    int rc = GW_OK;
    for (size_t i = 0; FEATURES[i] && rc == GW_OK; i++)
        rc = xs_conn_add_feature(c, FEATURES[i]);
    if (rc == GW_OK)
        rc = xs_conn_handle_iq(c, XS_NS_IOT_SD, on_conn_iq, fe);
    if (rc == GW_OK)
        rc = xs_conn_handle_iq(c, XS_NS_IOT_CTL, on_conn_iq, fe);
    if (rc == GW_OK)
        rc = xs_conn_handle_iq(c, XS_NS_IOT_CONC, on_conn_iq, fe);
    return rc;
}

size_t xs_iot_xsf_readouts(const struct xs_iot_xsf *fe)
{
    size_t n = 0;
    for (const struct fe_readout *r = fe->readouts; r; r = r->next)
        n++;
    return n;
}

size_t xs_iot_xsf_subscriptions(const struct xs_iot_xsf *fe)
{
    size_t n = 0;
    for (const struct fe_sub *s = fe->subs; s; s = s->next)
        n++;
    return n;
}

/* Does a presence from `who` end state held for `jid`? A full JID matches
 * itself; a bare JID all of its resources. */
static bool jid_gone(const char *who, const char *jid)
{
    if (strcmp(who, jid) == 0)
        return true;
    if (strchr(who, '/'))
        return false;
    char bare[XS_JID_MAX + 1];
    return xs_jid_bare_of(jid, bare, sizeof(bare)) == GW_OK &&
           xs_jid_bare_equal(bare, who);
}

void xs_iot_xsf_presence(struct xs_iot_xsf *fe, const struct xs_stanza *p)
{
    const char *type = xs_stanza_attr(p, "type");
    const char *who = xs_stanza_attr(p, "from");
    if (!type || !who || strcmp(type, "unavailable") != 0)
        return;
    for (struct fe_readout *r = fe->readouts, *next; r; r = next) {
        next = r->next;
        if (jid_gone(who, r->to)) {
            GW_LOG(fe->log, GW_LOG_INFO, AREA,
                   "readout %s of %s dropped: requester went offline", r->seqnr,
                   r->to);
            fr_free(r);
        }
    }
    struct fe_sub **pp = &fe->subs;
    while (*pp) {
        struct fe_sub *s = *pp;
        if (jid_gone(who, s->jid)) {
            *pp = s->next;
            GW_LOG(fe->log, GW_LOG_INFO, AREA,
                   "subscription of %s dropped: offline", s->jid);
            free(s->jid);
            free(s);
        } else {
            pp = &s->next;
        }
    }
}

/* ---- XEP-0323 sensor data ---------------------------------------------- */

static void sd_reject(struct xs_iot_xsf *fe, const struct xs_stanza *iq,
                      const char *kind, const char *seqnr, const char *type,
                      const char *cond, const char *text)
{
    struct xs_stanza *r = xs_iq_error(iq, type, cond, text);
    if (r && seqnr) {
        struct xs_stanza *rej = add(r, "rejected", XS_NS_IOT_SD);
        set_attr(rej, "seqnr", seqnr);
        set_text(add(rej, "error", NULL), text);
    }
    gw_iot_refused(fe->iot, from_of(iq), kind, "seqnr %s rejected: %s",
                   seqnr ? seqnr : "?", text);
    send_st(fe, r);
}

static const char *vtype_name(enum gw_iot_vtype t)
{
    switch (t) {
    case GW_IOT_V_NUMERIC:
        return "numeric";
    case GW_IOT_V_BOOLEAN:
        return "boolean";
    case GW_IOT_V_STRING:
        return "string";
    case GW_IOT_V_ENUM:
        return "enum";
    case GW_IOT_V_TIMESPAN:
        return "timeSpan";
    case GW_IOT_V_DATETIME:
        return "dateTime";
    }
    return "string";
}

struct xs_stanza *xs_iot_sd_field(const struct gw_iot_field *f)
{
    struct xs_stanza *e = xs_stanza_new(vtype_name(f->vtype), XS_NS_IOT_SD);
    if (!e)
        return NULL;
    set_attr(e, "name", f->name);
    static const struct {
        unsigned bit;
        const char *name;
    } types[] =
        {
            {GW_IOT_T_MOMENTARY, "momentary"},
            {GW_IOT_T_PEAK, "peak"},
            {GW_IOT_T_STATUS, "status"},
            {GW_IOT_T_COMPUTED, "computed"},
            {GW_IOT_T_IDENTITY, "identity"},
            {GW_IOT_T_HISTORICAL, "historicalOther"},
        },
      qos[] = {
          {GW_IOT_Q_MISSING, "missing"},
          {GW_IOT_Q_AUTOMATIC_READOUT, "automaticReadout"},
          {GW_IOT_Q_TIME_OFFSET, "timeOffset"},
          {GW_IOT_Q_WARNING, "warning"},
          {GW_IOT_Q_ERROR, "error"},
      };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (f->types & types[i].bit)
            set_attr(e, types[i].name, "true");
    for (size_t i = 0; i < sizeof(qos) / sizeof(qos[0]); i++)
        if (f->qos & qos[i].bit)
            set_attr(e, qos[i].name, "true");
    char buf[AD_STRING_MAX + 8];
    switch (f->vtype) {
    case GW_IOT_V_TIMESPAN:
        snprintf(buf, sizeof(buf), "PT%sS", f->value);
        set_attr(e, "value", buf);
        break;
    case GW_IOT_V_DATETIME:
        xs_iot_format_time(f->ts_value_ms, buf, sizeof(buf));
        set_attr(e, "value", buf);
        break;
    default:
        set_attr(e, "value", f->value);
        break;
    }
    if (f->vtype == GW_IOT_V_NUMERIC)
        set_attr(e, "unit", f->unit ? f->unit : "");
    if (f->vtype == GW_IOT_V_ENUM)
        set_attr(e, "dataType", f->data_type);
    if (f->writable)
        set_attr(e, "writable", "true");
    return e;
}

static size_t xml_size(const struct xs_stanza *e)
{
    struct xs_buf b;
    xs_buf_init(&b, 1u << 20);
    size_t n =
        xs_stanza_serialize(e, XS_NS_IOT_SD, &b) == GW_OK ? b.len : 1u << 20;
    xs_buf_close(&b);
    return n;
}

int xs_iot_sd_add(struct xs_iot_sd_node *b, struct xs_stanza *e, int64_t ts_ms,
                  size_t *markup)
{
    size_t added = 0;
    if (!b->node) {
        b->node = add(b->fields, "node", NULL);
        set_attr(b->node, "nodeId", b->node_id);
        set_attr(b->node, "sourceId", GW_IOT_SOURCE);
        b->ts = NULL;
        added += 80 + strlen(b->node_id);
    }
    if (!b->ts || b->ts_ms != ts_ms) {
        char t[40];
        xs_iot_format_time(ts_ms, t, sizeof(t));
        b->ts = add(b->node, "timestamp", NULL);
        set_attr(b->ts, "value", t);
        b->ts_ms = ts_ms;
        added += 60;
    }
    if (markup)
        *markup = added;
    if (!b->ts || xs_stanza_add_child(b->ts, e) != GW_OK) {
        xs_stanza_free(e);
        return GW_ENOMEM;
    }
    return GW_OK;
}

/* Builds the <fields> messages of one readout. */
struct emitter {
    struct xs_iot_xsf *fe;
    const char *to, *seqnr;
    struct xs_stanza *msg;
    struct xs_iot_sd_node b; /* the node being built in msg */
    size_t size;
    size_t sent;
    size_t lost; /* messages refused as too large (a size estimate failed) */
};

static void em_open_msg(struct emitter *em)
{
    em->msg = message_to(em->to);
    em->b.fields = add(em->msg, "fields", XS_NS_IOT_SD);
    set_attr(em->b.fields, "seqnr", em->seqnr);
    em->b.node = em->b.ts = NULL;
    em->size = CHUNK_SLACK;
}

static void em_flush(struct emitter *em, bool done)
{
    if (!em->msg)
        em_open_msg(em);
    if (done)
        set_attr(em->b.fields, "done", "true");
    if (send_st(em->fe, em->msg) == GW_ELIMIT)
        em->lost++;
    em->sent++;
    em->msg = em->b.fields = em->b.node = em->b.ts = NULL;
}

static int em_field(void *ud, const struct gw_iot_field *f)
{
    struct emitter *em = ud;
    struct xs_stanza *e = xs_iot_sd_field(f);
    if (!e)
        return GW_ENOMEM;
    size_t sz = xml_size(e), markup = 0;
    if (em->msg && em->size + sz > em->fe->opts.chunk_max)
        em_flush(em, false);
    if (!em->msg)
        em_open_msg(em);
    int rc = xs_iot_sd_add(&em->b, e, f->ts_ms, &markup);
    em->size += sz + markup;
    return rc;
}

static void emit_readout(struct xs_iot_xsf *fe, struct fe_readout *r)
{
    struct gw_iot_readout *ro = r->ro;
    struct emitter em = {.fe = fe, .to = r->to, .seqnr = r->seqnr};
    int64_t now = gw_now_ms();
    size_t n = gw_iot_readout_count(ro), failed = 0;
    for (size_t i = 0; i < n; i++) {
        int err;
        size_t node = gw_iot_readout_node(ro, i, &err, NULL);
        if (err) {
            failed++;
            continue;
        }
        em.b.node_id = gw_iot_node(fe->iot, node)->id;
        em.b.node = em.b.ts = NULL;
        gw_iot_readout_fields(fe->iot, ro, i, now, em_field, &em);
    }
    if (!failed) {
        em_flush(&em, true);
    } else {
        if (em.msg)
            em_flush(&em, false);
        /* Failures last, in chunks, done='true' on the last one. */
        struct xs_stanza *m = NULL, *fl = NULL;
        size_t size = 0, left = failed;
        char t[40];
        xs_iot_format_time(now, t, sizeof(t));
        for (size_t i = 0; i < n; i++) {
            int err;
            const char *text;
            size_t node = gw_iot_readout_node(ro, i, &err, &text);
            if (!err)
                continue;
            left--;
            if (!m) {
                m = message_to(r->to);
                fl = add(m, "failure", XS_NS_IOT_SD);
                set_attr(fl, "seqnr", r->seqnr);
                size = CHUNK_SLACK;
            }
            struct xs_stanza *e = add(fl, "error", NULL);
            set_attr(e, "nodeId", gw_iot_node(fe->iot, node)->id);
            set_attr(e, "sourceId", GW_IOT_SOURCE);
            set_attr(e, "timestamp", t);
            set_text(e, text);
            size += 120 + strlen(text);
            if (left == 0 || size + 400 > fe->opts.chunk_max) {
                if (left == 0)
                    set_attr(fl, "done", "true");
                if (send_st(fe, m) == GW_ELIMIT)
                    em.lost++;
                em.sent++;
                m = fl = NULL;
            }
        }
    }
    if (em.lost)
        GW_LOG(fe->log, GW_LOG_WARN, AREA,
               "readout %s to %s: %zu of %zu message(s) larger than the "
               "stanza limit (%zu bytes) were not sent",
               r->seqnr, r->to, em.lost, em.sent, fe->opts.stanza_max);
    GW_LOG(fe->log, GW_LOG_DEBUG, AREA,
           "readout %s to %s: %zu node(s), %zu failed, %zu message(s)",
           r->seqnr, r->to, n, failed, em.sent);
}

static void on_readout_done(void *ud, struct gw_iot_readout *ro)
{
    (void)ro;
    struct fe_readout *r = ud;
    emit_readout(r->fe, r);
    fr_free(r);
}

static unsigned req_types(const struct xs_stanza *req)
{
    static const struct {
        const char *attr;
        unsigned bit;
    } map[] = {
        {"momentary", GW_IOT_T_MOMENTARY},
        {"peak", GW_IOT_T_PEAK},
        {"status", GW_IOT_T_STATUS},
        {"computed", GW_IOT_T_COMPUTED},
        {"identity", GW_IOT_T_IDENTITY},
        {"identification", GW_IOT_T_IDENTITY},
        {"historical", GW_IOT_T_HISTORICAL},
        {"historicalSecond", GW_IOT_T_HISTORICAL},
        {"historicalMinute", GW_IOT_T_HISTORICAL},
        {"historicalHour", GW_IOT_T_HISTORICAL},
        {"historicalDay", GW_IOT_T_HISTORICAL},
        {"historicalWeek", GW_IOT_T_HISTORICAL},
        {"historicalMonth", GW_IOT_T_HISTORICAL},
        {"historicalQuarter", GW_IOT_T_HISTORICAL},
        {"historicalYear", GW_IOT_T_HISTORICAL},
        {"historicalOther", GW_IOT_T_HISTORICAL},
        {"all", GW_IOT_T_ALL},
    };
    unsigned t = 0;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (truthy(xs_stanza_attr(req, map[i].attr)))
            t |= map[i].bit;
    return t;
}

static void sd_req(struct xs_iot_xsf *fe, const struct xs_stanza *iq,
                   const struct xs_stanza *req)
{
    const char *from = from_of(iq);
    const char *seqnr = xs_stanza_attr(req, "seqnr");
    if (seqnr && !*seqnr)
        seqnr = NULL;
    /* Access first: a stranger learns nothing else. */
    if (gw_iot_access(fe->iot, from) < GW_ACCESS_READ) {
        sd_reject(fe, iq, "readout", seqnr, "cancel", "forbidden",
                  "Access denied");
        return;
    }
    if (!seqnr) {
        sd_reject(fe, iq, "readout", NULL, "modify", "bad-request",
                  "seqnr missing");
        return;
    }
    for (struct fe_readout *r = fe->readouts; r; r = r->next)
        if (strcmp(r->to, from) == 0 && strcmp(r->seqnr, seqnr) == 0) {
            sd_reject(fe, iq, "readout", seqnr, "modify", "bad-request",
                      "seqnr already in use");
            return;
        }
    struct gw_iot_filter flt = {.types = req_types(req)};
    const char *when = xs_stanza_attr(req, "when");
    int64_t when_ms;
    if (when && xs_iot_parse_time(when, &when_ms) == GW_OK &&
        when_ms > gw_now_ms() + 1000) {
        sd_reject(fe, iq, "readout", seqnr, "cancel", "feature-not-implemented",
                  "Scheduled readouts are not supported");
        return;
    }
    const char *from_t = xs_stanza_attr(req, "from");
    const char *to_t = xs_stanza_attr(req, "to");
    if ((from_t && xs_iot_parse_time(from_t, &flt.from_ms) != GW_OK) ||
        (to_t && xs_iot_parse_time(to_t, &flt.to_ms) != GW_OK)) {
        sd_reject(fe, iq, "readout", seqnr, "modify", "bad-request",
                  "from/to is not an xs:dateTime");
        return;
    }
    size_t nodes[MAX_NODES_IN_REQ], n_nodes = 0;
    const char *fields[MAX_NODES_IN_REQ];
    size_t n_fields = 0;
    for (const struct xs_stanza *ch = xs_stanza_first_child(req); ch;
         ch = xs_stanza_next(ch)) {
        const char *name = xs_stanza_name(ch);
        if (strcmp(name, "node") == 0) {
            const char *id = xs_stanza_attr(ch, "nodeId");
            size_t node =
                gw_iot_find(fe->iot, xs_stanza_attr(ch, "sourceId"), id);
            if (node == GW_IOT_NONE) {
                char text[160];
                snprintf(text, sizeof(text), "Unknown node %s", id ? id : "");
                sd_reject(fe, iq, "readout", seqnr, "cancel", "item-not-found",
                          text);
                return;
            }
            if (n_nodes == MAX_NODES_IN_REQ) {
                sd_reject(fe, iq, "readout", seqnr, "modify", "bad-request",
                          "Too many nodes");
                return;
            }
            nodes[n_nodes++] = node;
        } else if (strcmp(name, "field") == 0) {
            const char *fn = xs_stanza_attr(ch, "name");
            if (fn && n_fields < MAX_NODES_IN_REQ)
                fields[n_fields++] = fn;
        }
    }
    flt.fields = n_fields ? fields : NULL;
    flt.n_fields = n_fields;
    struct fe_readout *r = calloc(1, sizeof(*r));
    if (!r || !(r->to = strdup(from)) || !(r->seqnr = strdup(seqnr))) {
        if (r) {
            free(r->to);
            free(r);
        }
        sd_reject(fe, iq, "readout", seqnr, "wait", "resource-constraint",
                  "Out of memory");
        return;
    }
    r->fe = fe;
    bool pending;
    int rc = gw_iot_readout_start(fe->iot, nodes, n_nodes, &flt,
                                  on_readout_done, r, &r->ro, &pending);
    if (rc != GW_OK) {
        free(r->to);
        free(r->seqnr);
        free(r);
        sd_reject(fe, iq, "readout", seqnr, rc == GW_ELIMIT ? "modify" : "wait",
                  rc == GW_ELIMIT ? "not-acceptable" : "resource-constraint",
                  rc == GW_ELIMIT ? "Too many nodes in one readout"
                                  : "Out of memory");
        return;
    }
    r->next = fe->readouts;
    if (r->next)
        r->next->prev = r;
    fe->readouts = r;
    struct xs_stanza *res = xs_iq_result(iq);
    struct xs_stanza *acc = add(res, "accepted", XS_NS_IOT_SD);
    set_attr(acc, "seqnr", seqnr);
    if (pending)
        set_attr(acc, "queued", "true");
    send_st(fe, res);
    GW_LOG(fe->log, GW_LOG_DEBUG, AREA, "readout %s from %s accepted%s", seqnr,
           from, pending ? " (queued on the bus)" : "");
    if (pending) {
        struct xs_stanza *m = message_to(from);
        set_attr(add(m, "started", XS_NS_IOT_SD), "seqnr", seqnr);
        send_st(fe, m);
        return;
    }
    emit_readout(fe, r);
    fr_free(r);
}

static void sd_cancel(struct xs_iot_xsf *fe, const struct xs_stanza *iq,
                      const struct xs_stanza *cancel)
{
    const char *from = from_of(iq);
    const char *seqnr = xs_stanza_attr(cancel, "seqnr");
    /* Access first: a stranger learns nothing about readouts. */
    if (gw_iot_access(fe->iot, from) < GW_ACCESS_READ) {
        struct xs_stanza *r =
            xs_iq_error(iq, "cancel", "forbidden", "Access denied");
        if (r && seqnr) {
            struct xs_stanza *rej = add(r, "rejected", XS_NS_IOT_SD);
            set_attr(rej, "seqnr", seqnr);
            set_text(add(rej, "error", NULL), "Access denied");
        }
        gw_iot_refused(fe->iot, from, "cancel",
                       "seqnr %s rejected: Access denied", seqnr ? seqnr : "?");
        send_st(fe, r);
        return;
    }
    for (struct fe_readout *r = fe->readouts; seqnr && r; r = r->next) {
        if (strcmp(r->to, from) != 0 || strcmp(r->seqnr, seqnr) != 0)
            continue;
        fr_free(r);
        struct xs_stanza *res = xs_iq_result(iq);
        set_attr(add(res, "cancelled", XS_NS_IOT_SD), "seqnr", seqnr);
        send_st(fe, res);
        GW_LOG(fe->log, GW_LOG_INFO, AREA, "readout %s of %s cancelled", seqnr,
               from);
        return;
    }
    sd_reject(fe, iq, "cancel", seqnr, "cancel", "item-not-found",
              "No such readout in progress");
}

/* ---- XEP-0325 control -------------------------------------------------- */

struct set_req {
    size_t nodes[MAX_NODES_IN_REQ];
    const char *node_ids[MAX_NODES_IN_REQ];
    size_t n_nodes;
    struct gw_iot_set params[MAX_PARAMS];
    size_t n_params;
    const char *bad_node; /* unknown nodeId */
    const char *bad_elem; /* unsupported element */
    bool too_many;        /* more nodes or parameters than the arrays hold */
};

static enum gw_iot_hint hint_of(const char *el)
{
    if (strcmp(el, "boolean") == 0)
        return GW_IOT_H_BOOLEAN;
    if (strcmp(el, "int") == 0 || strcmp(el, "long") == 0)
        return GW_IOT_H_INT;
    if (strcmp(el, "double") == 0)
        return GW_IOT_H_DOUBLE;
    if (strcmp(el, "string") == 0)
        return GW_IOT_H_STRING;
    return GW_IOT_H_OTHER;
}

static bool is_typed_param(const char *el)
{
    static const char *const names[] = {"boolean",  "int",  "long", "double",
                                        "string",   "date", "time", "dateTime",
                                        "duration", "color"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(el, names[i]) == 0)
            return true;
    return false;
}

static void parse_set(struct xs_iot_xsf *fe, const struct xs_stanza *set,
                      struct set_req *sr)
{
    memset(sr, 0, sizeof(*sr));
    for (const struct xs_stanza *ch = xs_stanza_first_child(set); ch;
         ch = xs_stanza_next(ch)) {
        const char *name = xs_stanza_name(ch);
        const char *ns = xs_stanza_ns(ch);
        if (ns && strcmp(ns, XS_NS_XDATA) == 0 && strcmp(name, "x") == 0) {
            for (const struct xs_stanza *f = xs_stanza_child(ch, "field", NULL);
                 f; f = xs_stanza_next(f)) {
                if (strcmp(xs_stanza_name(f), "field") != 0)
                    continue;
                const char *var = xs_stanza_attr(f, "var");
                const char *type = xs_stanza_attr(f, "type");
                if (!var || strcmp(var, "FORM_TYPE") == 0 ||
                    strcmp(var, "xdd session") == 0 ||
                    (type && strcmp(type, "hidden") == 0))
                    continue;
                const struct xs_stanza *v = xs_stanza_child(f, "value", NULL);
                if (sr->n_params == MAX_PARAMS) {
                    sr->too_many = true;
                    continue;
                }
                sr->params[sr->n_params++] =
                    (struct gw_iot_set){.name = var,
                                        .hint = GW_IOT_H_ANY,
                                        .value = v ? xs_stanza_text(v) : ""};
            }
            continue;
        }
        if (!ns || strcmp(ns, XS_NS_IOT_CTL) != 0)
            continue;
        if (strcmp(name, "node") == 0) {
            const char *id = xs_stanza_attr(ch, "nodeId");
            size_t node =
                gw_iot_find(fe->iot, xs_stanza_attr(ch, "sourceId"), id);
            if (node == GW_IOT_NONE) {
                if (!sr->bad_node)
                    sr->bad_node = id ? id : "";
                continue;
            }
            if (sr->n_nodes == MAX_NODES_IN_REQ) {
                sr->too_many = true;
                continue;
            }
            sr->node_ids[sr->n_nodes] = id;
            sr->nodes[sr->n_nodes++] = node;
        } else if (is_typed_param(name)) {
            const char *pn = xs_stanza_attr(ch, "name");
            if (!pn) {
                if (!sr->bad_elem)
                    sr->bad_elem = name; /* a parameter without a name */
                continue;
            }
            if (sr->n_params == MAX_PARAMS) {
                sr->too_many = true;
                continue;
            }
            sr->params[sr->n_params++] =
                (struct gw_iot_set){.name = pn,
                                    .hint = hint_of(name),
                                    .value = xs_stanza_attr(ch, "value")};
        } else if (!sr->bad_elem) {
            sr->bad_elem = name;
        }
    }
}

static const char *code_name(enum gw_iot_ctl_code c)
{
    switch (c) {
    case GW_IOT_CTL_OK:
        return "OK";
    case GW_IOT_CTL_FORBIDDEN:
        return "InsufficientPrivileges";
    case GW_IOT_CTL_NOT_FOUND:
        return "NotFound";
    case GW_IOT_CTL_FORM_ERROR:
        return "FormError";
    case GW_IOT_CTL_NOT_IMPLEMENTED:
        return "NotImplemented";
    case GW_IOT_CTL_OTHER:
    case GW_IOT_CTL_LIMIT:
        break;
    }
    return "OtherError";
}

static void code_condition(enum gw_iot_ctl_code c, const char **type,
                           const char **cond)
{
    switch (c) {
    case GW_IOT_CTL_FORBIDDEN:
        *type = "cancel";
        *cond = "forbidden";
        return;
    case GW_IOT_CTL_NOT_FOUND:
        *type = "cancel";
        *cond = "item-not-found";
        return;
    case GW_IOT_CTL_FORM_ERROR:
        *type = "modify";
        *cond = "bad-request";
        return;
    case GW_IOT_CTL_NOT_IMPLEMENTED:
        *type = "cancel";
        *cond = "feature-not-implemented";
        return;
    case GW_IOT_CTL_LIMIT: /* a smaller request would be accepted */
        *type = "modify";
        *cond = "not-acceptable";
        return;
    default:
        *type = "cancel";
        *cond = "undefined-condition";
        return;
    }
}

/* The answer to an iq <set>: result with setResponse responseCode='OK', or
 * an error with the RFC condition (+ paramError) and a 0.2 setResponse. */
static void set_reply(struct xs_iot_xsf *fe, const struct xs_stanza *iq,
                      const struct gw_iot_ctl_result *res,
                      const char *param_name, const char *node_id)
{
    if (res->code == GW_IOT_CTL_OK) {
        struct xs_stanza *r = xs_iq_result(iq);
        set_attr(add(r, "setResponse", XS_NS_IOT_CTL), "responseCode", "OK");
        send_st(fe, r);
        return;
    }
    const char *type, *cond;
    code_condition(res->code, &type, &cond);
    struct xs_stanza *r = xs_iq_error(iq, type, cond, res->text);
    struct xs_stanza *err = r ? xs_stanza_child(r, "error", NULL) : NULL;
    if (err && param_name && res->code == GW_IOT_CTL_FORM_ERROR) {
        struct xs_stanza *pe = add(err, "paramError", XS_NS_IOT_CTL);
        set_attr(pe, "var", param_name);
        set_text(pe, res->text);
    }
    struct xs_stanza *sr = add(r, "setResponse", XS_NS_IOT_CTL);
    set_attr(sr, "responseCode", code_name(res->code));
    if (node_id && res->code == GW_IOT_CTL_NOT_FOUND && !param_name)
        set_attr(add(sr, "node", NULL), "nodeId", node_id);
    if (param_name)
        set_attr(add(sr, "parameter", NULL), "name", param_name);
    struct xs_stanza *e = add(sr, "error", NULL);
    set_attr(e, "var", param_name ? param_name : "");
    set_text(e, res->text);
    send_st(fe, r);
}

static void on_control_done(void *ud, const struct gw_iot_ctl_result *res)
{
    struct fe_ctl *c = ud;
    c->ctl = NULL; /* the model freed it */
    const char *pn = res->param < c->n_names ? c->names[res->param] : NULL;
    const char *nid = res->node < c->n_node_ids ? c->node_ids[res->node] : NULL;
    /* The model logged the request's line (writes and outcome). */
    if (c->iq)
        set_reply(c->fe, c->iq, res, pn, nid);
    fc_free(c);
}

static char **dup_list(const char *const *src, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof(*out));
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!(out[i] = strdup(src[i] ? src[i] : ""))) {
            for (size_t k = 0; k < i; k++)
                free(out[k]);
            free(out);
            return NULL;
        }
    return out;
}

/* Validates and starts a control request (iq or message); iq NULL for a
 * message.  Returns false when it was refused (res filled). */
static bool start_control(struct xs_iot_xsf *fe, const struct xs_stanza *st,
                          const struct xs_stanza *set, bool is_iq,
                          struct gw_iot_ctl_result *res, const char **pn,
                          const char **nid)
{
    const char *from = from_of(st);
    struct set_req *sr = malloc(sizeof(*sr));
    *pn = *nid = NULL;
    memset(res, 0, sizeof(*res));
    res->node = res->param = GW_IOT_NONE;
    if (!sr) {
        res->code = GW_IOT_CTL_OTHER;
        snprintf(res->text, sizeof(res->text), "out of memory");
        return false;
    }
    parse_set(fe, set, sr);
    bool ok = false;
    if (gw_iot_access(fe->iot, from) < GW_ACCESS_CONTROL) {
        res->code = GW_IOT_CTL_FORBIDDEN;
        snprintf(res->text, sizeof(res->text),
                 "%s may not control this gateway", from);
        goto out;
    }
    if (sr->bad_node) {
        res->code = GW_IOT_CTL_NOT_FOUND;
        snprintf(res->text, sizeof(res->text), "Unknown node %s", sr->bad_node);
        *nid = sr->bad_node;
        goto out;
    }
    if (sr->bad_elem) {
        res->code = GW_IOT_CTL_FORM_ERROR;
        snprintf(res->text, sizeof(res->text), "Unsupported element %s",
                 sr->bad_elem);
        goto out;
    }
    if (sr->too_many) {
        res->code = GW_IOT_CTL_LIMIT;
        snprintf(res->text, sizeof(res->text),
                 "set refused: more than %u nodes or %u parameters",
                 MAX_NODES_IN_REQ, MAX_PARAMS);
        goto out;
    }
    struct fe_ctl *c = calloc(1, sizeof(*c));
    const char *names[MAX_PARAMS];
    for (size_t i = 0; i < sr->n_params; i++)
        names[i] = sr->params[i].name;
    if (c) {
        c->fe = fe;
        c->from = strdup(from);
        c->names = dup_list(names, sr->n_params);
        c->n_names = sr->n_params;
        c->node_ids = dup_list(sr->node_ids, sr->n_nodes);
        c->n_node_ids = sr->n_nodes;
        c->iq = is_iq ? xs_stanza_copy(st) : NULL;
    }
    if (!c || !c->from || !c->names || !c->node_ids || (is_iq && !c->iq)) {
        if (c) {
            c->n_names = c->names ? c->n_names : 0;
            c->n_node_ids = c->node_ids ? c->n_node_ids : 0;
            fc_free(c);
        }
        res->code = GW_IOT_CTL_OTHER;
        snprintf(res->text, sizeof(res->text), "out of memory");
        goto out;
    }
    c->next = fe->ctls;
    if (c->next)
        c->next->prev = c;
    fe->ctls = c;
    if (!gw_iot_control_start(fe->iot, from, sr->nodes, sr->n_nodes, sr->params,
                              sr->n_params, on_control_done, c, &c->ctl, res)) {
        if (res->param < sr->n_params)
            *pn = sr->params[res->param].name;
        if (res->node < sr->n_nodes)
            *nid = sr->node_ids[res->node];
        fc_free(c);
        goto out;
    }
    ok = true;
out:
    /* *pn and *nid point into the request, which outlives this call. */
    free(sr);
    return ok;
}

static void ctl_set(struct xs_iot_xsf *fe, const struct xs_stanza *iq,
                    const struct xs_stanza *set)
{
    struct gw_iot_ctl_result res;
    const char *pn, *nid;
    if (!start_control(fe, iq, set, true, &res, &pn, &nid)) {
        gw_iot_refused(fe->iot, from_of(iq), "control", "%s (%s)", res.text,
                       code_name(res.code));
        set_reply(fe, iq, &res, pn, nid);
    }
}

static const char *xs_datatype(const struct gw_iot_ctl_param *p)
{
    switch (p->kind) {
    case GW_IOT_H_BOOLEAN:
        return "xs:boolean";
    case GW_IOT_H_INT:
        return p->is_long ? "xs:long" : "xs:int";
    case GW_IOT_H_DOUBLE:
        return "xs:double";
    default:
        return "xs:string";
    }
}

struct form_ctx {
    struct xs_iot_xsf *fe;
    const size_t *nodes;
    size_t n;
    struct xs_stanza *x;
    size_t fields;
};

/* One XEP-0004 field with XEP-0122 validation and XEP-0336 notSame. */
static int form_field(void *ud, const struct gw_iot_ctl_param *p)
{
    struct form_ctx *fc = ud;
    /* Only parameters every node has, with the same kind. */
    for (size_t i = 1; i < fc->n; i++) {
        struct gw_iot_ctl_param o;
        if (!gw_iot_node_control(fc->fe->iot, fc->nodes[i], p->name, &o) ||
            o.kind != p->kind)
            return GW_OK;
    }
    struct xs_stanza *f = add(fc->x, "field", NULL);
    set_attr(f, "var", p->name);
    char label[256];
    snprintf(label, sizeof(label), "%s%s%s%s",
             p->description ? p->description : p->name, p->unit ? " (" : "",
             p->unit ? p->unit : "", p->unit ? ")" : "");
    set_attr(f, "label", label);
    set_attr(f, "type",
             p->n_labels                   ? "list-single"
             : p->kind == GW_IOT_H_BOOLEAN ? "boolean"
                                           : "text-single");
    if (p->has_value)
        set_text(add(f, "value", NULL), p->value);
    struct xs_stanza *v = add(f, "validate", XS_NS_XDATA_VALIDATE);
    set_attr(v, "datatype", xs_datatype(p));
    if (p->has_min || p->has_max) {
        struct xs_stanza *r = add(v, "range", NULL);
        char b[40];
        if (p->has_min) {
            snprintf(b, sizeof(b), "%.15g", p->min);
            set_attr(r, "min", b);
        }
        if (p->has_max) {
            snprintf(b, sizeof(b), "%.15g", p->max);
            set_attr(r, "max", b);
        }
    } else {
        add(v, "basic", NULL);
    }
    for (size_t i = 0; i < p->n_labels; i++) {
        struct xs_stanza *o = add(f, "option", NULL);
        set_attr(o, "label", p->labels[i].label);
        set_text(add(o, "value", NULL), p->labels[i].label);
    }
    add(f, "notSame", XS_NS_XDATA_DYNAMIC);
    fc->fields++;
    return GW_OK;
}

static void ctl_get_form(struct xs_iot_xsf *fe, const struct xs_stanza *iq,
                         const struct xs_stanza *gf)
{
    const char *from = from_of(iq);
    if (gw_iot_access(fe->iot, from) < GW_ACCESS_CONTROL) {
        gw_iot_refused(fe->iot, from, "getForm", "Control access required");
        send_st(fe, xs_iq_error(iq, "cancel", "forbidden",
                                "Control access required"));
        return;
    }
    size_t nodes[MAX_NODES_IN_REQ], n = 0;
    for (const struct xs_stanza *ch = xs_stanza_first_child(gf); ch;
         ch = xs_stanza_next(ch)) {
        if (strcmp(xs_stanza_name(ch), "node") != 0)
            continue;
        const char *id = xs_stanza_attr(ch, "nodeId");
        size_t node = gw_iot_find(fe->iot, xs_stanza_attr(ch, "sourceId"), id);
        const struct gw_iot_node *nd = gw_iot_node(fe->iot, node);
        if (!nd || nd->kind != GW_IOT_UNIT) {
            char text[160];
            snprintf(text, sizeof(text), "Unknown or not controllable node %s",
                     id ? id : "");
            gw_iot_refused(fe->iot, from, "getForm", "%s", text);
            send_st(fe, xs_iq_error(iq, "cancel", "item-not-found", text));
            return;
        }
        if (n == MAX_NODES_IN_REQ) {
            gw_iot_refused(fe->iot, from, "getForm", "too many nodes");
            send_st(fe, xs_iq_error(iq, "modify", "not-acceptable",
                                    "Too many nodes"));
            return;
        }
        nodes[n++] = node;
    }
    if (n == 0) {
        gw_iot_refused(fe->iot, from, "getForm", "no node named");
        send_st(fe, xs_iq_error(iq, "modify", "bad-request",
                                "Name the node(s) of the form"));
        return;
    }
    struct xs_stanza *r = xs_iq_result(iq);
    struct xs_stanza *x = add(r, "x", XS_NS_XDATA);
    set_attr(x, "type", "form");
    char title[GW_IOT_ID_MAX * 2];
    snprintf(title, sizeof(title), "%s%s", gw_iot_node(fe->iot, nodes[0])->id,
             n > 1 ? " (common parameters)" : "");
    set_text(add(x, "title", NULL), title);
    struct form_ctx fc = {.fe = fe, .nodes = nodes, .n = n, .x = x};
    gw_iot_node_controls(fe->iot, nodes[0], form_field, &fc);
    answer(fe, iq, r, "getForm", "getForm", NULL);
}

static bool is_delay(const struct xs_stanza *el)
{
    const char *name = xs_stanza_name(el), *ns = xs_stanza_ns(el);
    if (!ns)
        return false;
    return (strcmp(name, "delay") == 0 && strcmp(ns, XS_NS_DELAY) == 0) ||
           (strcmp(name, "x") == 0 && strcmp(ns, "jabber:x:delay") == 0);
}

/* One delay stamp against the age bounds; false with why when it fails. */
static bool stamp_ok(const struct xs_iot_xsf *fe, const struct xs_stanza *d,
                     int64_t now_ms, char *why, size_t cap)
{
    int64_t stamp;
    if (xs_iot_parse_time(xs_stanza_attr(d, "stamp"), &stamp) != GW_OK) {
        snprintf(why, cap, "unreadable delay stamp");
        return false;
    }
    if (now_ms - stamp > (int64_t)fe->opts.control_max_age_ms) {
        snprintf(why, cap, "delayed %" PRId64 " ms (max %" PRIu32 " ms)",
                 now_ms - stamp, fe->opts.control_max_age_ms);
        return false;
    }
    if (stamp - now_ms > XS_IOT_DELAY_SKEW_MS) {
        snprintf(why, cap,
                 "delay stamp %" PRId64 " ms in the future (max %d ms)",
                 stamp - now_ms, XS_IOT_DELAY_SKEW_MS);
        return false;
    }
    return true;
}

/* XEP-0203 (and legacy jabber:x:delay) age check of a control message.
 * The server's stamp decides: the last delay whose from is the account's
 * domain (a server appends its delay after anything the sender put in).
 * Without one, every delay the message carries must pass: a stamp the
 * sender added can only get its own message refused. */
static bool delay_refused(const struct xs_iot_xsf *fe,
                          const struct xs_stanza *msg, int64_t now_ms,
                          char *why, size_t cap)
{
    const struct xs_stanza *server = NULL;
    for (const struct xs_stanza *ch = xs_stanza_first_child(msg); ch;
         ch = xs_stanza_next(ch)) {
        const char *by = is_delay(ch) ? xs_stanza_attr(ch, "from") : NULL;
        if (by && fe->server[0] && xs_jid_bare_equal(by, fe->server))
            server = ch;
    }
    if (server)
        return !stamp_ok(fe, server, now_ms, why, cap);
    for (const struct xs_stanza *ch = xs_stanza_first_child(msg); ch;
         ch = xs_stanza_next(ch))
        if (is_delay(ch) && !stamp_ok(fe, ch, now_ms, why, cap))
            return true;
    return false;
}

bool xs_iot_xsf_message(struct xs_iot_xsf *fe, const struct xs_stanza *msg,
                        int64_t now_ms)
{
    const struct xs_stanza *set = xs_stanza_child(msg, "set", XS_NS_IOT_CTL);
    if (!set)
        return false;
    const char *from = from_of(msg);
    char why[128];
    if (delay_refused(fe, msg, now_ms, why, sizeof(why))) {
        gw_iot_refused(fe->iot, from, "control message", "%s", why);
        return true;
    }
    struct gw_iot_ctl_result res;
    const char *pn, *nid;
    if (!start_control(fe, msg, set, false, &res, &pn, &nid))
        gw_iot_refused(fe->iot, from, "control message", "%s (%s)", res.text,
                       code_name(res.code));
    return true;
}

/* ---- XEP-0326 concentrators --------------------------------------------- */

static const char *const CONC_OPS[] = {
    "getCapabilities",
    "getAllDataSources",
    "getRootDataSources",
    "getChildDataSources",
    "containsNode",
    "containsNodes",
    "getNode",
    "getNodes",
    "getAllNodes",
    "getNodeInheritance",
    "getRootNodes",
    "getChildNodes",
    "getAncestors",
    "getNodeCommands",
    "executeNodeCommand",
    "subscribe",
    "unsubscribe",
    NULL,
};

enum conc_code {
    CC_OK,
    CC_NOT_FOUND,
    CC_FORBIDDEN,
    CC_NOT_IMPLEMENTED,
    CC_FORM_ERROR,
    CC_OTHER,
};

/* <opResponse result='OK'> in an iq result; returns the response element. */
static struct xs_stanza *conc_ok(const struct xs_stanza *iq, const char *op,
                                 struct xs_stanza **res)
{
    char name[96];
    snprintf(name, sizeof(name), "%sResponse", op);
    *res = xs_iq_result(iq);
    struct xs_stanza *r = add(*res, name, XS_NS_IOT_CONC);
    set_attr(r, "result", "OK");
    return r;
}

/* Non-OK: an iq error with the opResponse (XEP-0326 code) and the RFC 6120
 * condition. */
static void conc_fail(struct xs_iot_xsf *fe, const struct xs_stanza *iq,
                      const char *op, enum conc_code code, const char *text)
{
    static const struct {
        const char *code, *type, *cond;
    } map[] = {
        [CC_OK] = {"OK", "cancel", "undefined-condition"},
        [CC_NOT_FOUND] = {"NotFound", "cancel", "item-not-found"},
        [CC_FORBIDDEN] = {"InsufficientPrivileges", "cancel", "forbidden"},
        [CC_NOT_IMPLEMENTED] = {"NotImplemented", "cancel",
                                "feature-not-implemented"},
        [CC_FORM_ERROR] = {"FormError", "modify", "bad-request"},
        [CC_OTHER] = {"OtherError", "cancel", "undefined-condition"},
    };
    struct xs_stanza *r = xs_iq_error(iq, map[code].type, map[code].cond, text);
    char name[96];
    if (response_name(op, name, sizeof(name)))
        set_attr(add(r, name, XS_NS_IOT_CONC), "result", map[code].code);
    gw_iot_refused(fe->iot, from_of(iq), "concentrator", "%.64s: %s%s%s", op,
                   map[code].code, text ? ": " : "", text ? text : "");
    send_st(fe, r);
}

static const char *ptype_name(enum gw_iot_ptype t)
{
    switch (t) {
    case GW_IOT_P_INT:
        return "int";
    case GW_IOT_P_LONG:
        return "long";
    case GW_IOT_P_DOUBLE:
        return "double";
    case GW_IOT_P_BOOLEAN:
        return "boolean";
    default:
        return "string";
    }
}

/* Node information as attributes of el, plus parameters and messages. */
static void node_info(struct xs_iot_xsf *fe, struct xs_stanza *el, size_t node,
                      bool params, bool messages)
{
    struct gw_iot_node_info in;
    gw_iot_node_info(fe->iot, node, &in);
    set_attr(el, "nodeId", in.id);
    set_attr(el, "displayName", in.display);
    set_attr(el, "nodeType", in.type);
    set_attr(el, "state", gw_iot_state_name(in.state));
    set_attr(el, "hasChildren", in.has_children ? "true" : "false");
    if (in.has_children)
        set_attr(el, "childrenOrdered", "true");
    set_attr(el, "isReadable", in.readable ? "true" : "false");
    set_attr(el, "isControllable", in.controllable ? "true" : "false");
    set_attr(el, "hasCommands", in.has_commands ? "true" : "false");
    if (in.parent_id)
        set_attr(el, "parentId", in.parent_id);
    if (in.last_changed_ms > 0) {
        char t[40];
        xs_iot_format_time(in.last_changed_ms, t, sizeof(t));
        set_attr(el, "lastChanged", t);
    }
    if (params) {
        struct gw_iot_param ps[GW_IOT_MAX_PARAMS];
        size_t n = gw_iot_node_params(fe->iot, node, ps, GW_IOT_MAX_PARAMS);
        for (size_t i = 0; i < n; i++) {
            struct xs_stanza *p = add(el, ptype_name(ps[i].type), NULL);
            set_attr(p, "id", ps[i].id);
            set_attr(p, "name", ps[i].name);
            set_attr(p, "value", ps[i].value);
        }
    }
    struct gw_iot_message m;
    if (messages && gw_iot_node_message(fe->iot, node, &m)) {
        struct xs_stanza *e = add(el, "message", NULL);
        char t[40];
        xs_iot_format_time(m.ts_ms, t, sizeof(t));
        set_attr(e, "timestamp", t);
        set_attr(e, "type", m.error ? "Error" : "Warning");
        set_text(e, m.text);
    }
}

static void add_node(struct xs_iot_xsf *fe, struct xs_stanza *parent,
                     size_t node, bool params, bool messages)
{
    node_info(fe, add(parent, "node", NULL), node, params, messages);
}

/* The node an op element names (sourceId + nodeId), or GW_IOT_NONE. */
static size_t op_node(struct xs_iot_xsf *fe, const struct xs_stanza *el)
{
    return gw_iot_find(fe->iot, xs_stanza_attr(el, "sourceId"),
                       xs_stanza_attr(el, "nodeId"));
}

static bool source_ok(const struct xs_stanza *op)
{
    const char *src = xs_stanza_attr(op, "sourceId");
    return !src || !*src || strcmp(src, GW_IOT_SOURCE) == 0;
}

static const char *const *base_classes(const struct gw_iot *iot, size_t node)
{
    static const char *const unit[] = {"Modbus.Node", "Fieldgate.Node", NULL};
    static const char *const link[] = {"Modbus.Node", "Fieldgate.Node", NULL};
    static const char *const gw[] = {"Fieldgate.Node", NULL};
    switch (gw_iot_node(iot, node)->kind) {
    case GW_IOT_UNIT:
        return unit;
    case GW_IOT_LINK:
        return link;
    default:
        return gw;
    }
}

static bool derived_from(const struct gw_iot *iot, size_t node, const char *cls)
{
    struct gw_iot_node_info in;
    gw_iot_node_info(iot, node, &in);
    if (strcmp(in.type, cls) == 0)
        return true;
    for (const char *const *b = base_classes(iot, node); *b; b++)
        if (strcmp(*b, cls) == 0)
            return true;
    return false;
}

static void data_source(struct xs_iot_xsf *fe, struct xs_stanza *parent)
{
    (void)fe;
    struct xs_stanza *d = add(parent, "dataSource", NULL);
    set_attr(d, "sourceId", GW_IOT_SOURCE);
    set_attr(d, "name", "Modbus devices");
    set_attr(d, "hasChildren", "false");
}

static void on_status(void *ud, size_t node, enum gw_iot_state state)
{
    struct xs_iot_xsf *fe = ud;
    for (struct fe_sub *s = fe->subs; s; s = s->next) {
        if (!s->status_events)
            continue;
        struct xs_stanza *m = message_to(s->jid);
        struct xs_stanza *ev = add(m, "nodeStatusChanged", XS_NS_IOT_CONC);
        set_attr(ev, "sourceId", GW_IOT_SOURCE);
        set_attr(ev, "nodeId", gw_iot_node(fe->iot, node)->id);
        set_attr(ev, "state", gw_iot_state_name(state));
        char t[40];
        xs_iot_format_time(gw_now_ms(), t, sizeof(t));
        set_attr(ev, "timestamp", t);
        struct gw_iot_message msg;
        if (s->messages && gw_iot_node_message(fe->iot, node, &msg)) {
            struct xs_stanza *e = add(ev, "message", NULL);
            xs_iot_format_time(msg.ts_ms, t, sizeof(t));
            set_attr(e, "timestamp", t);
            set_attr(e, "type", msg.error ? "Error" : "Warning");
            set_text(e, msg.text);
        }
        send_st(fe, m);
    }
}

static bool flag_default(const struct xs_stanza *op, const char *name, bool def)
{
    const char *v = xs_stanza_attr(op, name);
    return v ? truthy(v) : def;
}

static void conc_subscribe(struct xs_iot_xsf *fe, const struct xs_stanza *iq,
                           const struct xs_stanza *op, bool sub)
{
    const char *name = xs_stanza_name(op);
    const char *from = from_of(iq);
    if (!source_ok(op)) {
        conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown data source");
        return;
    }
    struct fe_sub **pp = &fe->subs;
    while (*pp && strcmp((*pp)->jid, from) != 0)
        pp = &(*pp)->next;
    if (!sub) {
        if (*pp && flag_default(op, "nodeStatusChanged", true)) {
            struct fe_sub *s = *pp;
            *pp = s->next;
            free(s->jid);
            free(s);
        }
        struct xs_stanza *res;
        conc_ok(iq, name, &res);
        send_st(fe, res);
        return;
    }
    if (xs_stanza_attr(op, "getEventsSince")) {
        conc_fail(fe, iq, name, CC_NOT_IMPLEMENTED,
                  "Event history is not kept");
        return;
    }
    struct fe_sub *s = *pp;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s || !(s->jid = strdup(from))) {
            free(s);
            conc_fail(fe, iq, name, CC_OTHER, "Out of memory");
            return;
        }
        s->next = fe->subs;
        fe->subs = s;
    }
    s->status_events = flag_default(op, "nodeStatusChanged", true);
    s->messages = flag_default(op, "messages", false);
    GW_LOG(fe->log, GW_LOG_INFO, AREA, "%s subscribed (status events %s)", from,
           s->status_events ? "on" : "off");
    struct xs_stanza *res;
    conc_ok(iq, name, &res);
    send_st(fe, res);
}

static void conc_iq(struct xs_iot_xsf *fe, const struct xs_stanza *iq,
                    const struct xs_stanza *op)
{
    const char *name = xs_stanza_name(op);
    const char *type = xs_stanza_attr(iq, "type");
    bool set = type && strcmp(type, "set") == 0;
    const char *from = from_of(iq);
    bool known = false;
    for (size_t i = 0; CONC_OPS[i]; i++)
        known = known || strcmp(CONC_OPS[i], name) == 0;
    bool set_op = strcmp(name, "subscribe") == 0 ||
                  strcmp(name, "unsubscribe") == 0 ||
                  strcmp(name, "executeNodeCommand") == 0;
    /* Access first: a stranger learns nothing, not even which operations
     * exist. */
    if (gw_iot_access(fe->iot, from) < GW_ACCESS_READ) {
        conc_fail(fe, iq, name, CC_FORBIDDEN, "Access denied");
        return;
    }
    if (!known || set != set_op) {
        conc_fail(fe, iq, name, CC_NOT_IMPLEMENTED, NULL);
        return;
    }
    bool params = truthy(xs_stanza_attr(op, "parameters"));
    bool messages = truthy(xs_stanza_attr(op, "messages"));
    size_t n_nodes = gw_iot_node_count(fe->iot);
    struct xs_stanza *res = NULL, *r;
    if (strcmp(name, "getCapabilities") == 0) {
        r = conc_ok(iq, name, &res);
        for (size_t i = 0; CONC_OPS[i]; i++)
            set_text(add(r, "value", NULL), CONC_OPS[i]);
    } else if (strcmp(name, "getAllDataSources") == 0 ||
               strcmp(name, "getRootDataSources") == 0) {
        r = conc_ok(iq, name, &res);
        data_source(fe, r);
    } else if (strcmp(name, "getChildDataSources") == 0) {
        if (!source_ok(op) || !xs_stanza_attr(op, "sourceId")) {
            conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown data source");
            return;
        }
        conc_ok(iq, name, &res);
    } else if (strcmp(name, "containsNode") == 0) {
        r = conc_ok(iq, name, &res);
        set_text(r, op_node(fe, op) != GW_IOT_NONE ? "true" : "false");
    } else if (strcmp(name, "containsNodes") == 0) {
        r = conc_ok(iq, name, &res);
        for (const struct xs_stanza *ch = xs_stanza_first_child(op); ch;
             ch = xs_stanza_next(ch))
            if (strcmp(xs_stanza_name(ch), "node") == 0)
                set_text(add(r, "value", NULL),
                         op_node(fe, ch) != GW_IOT_NONE ? "true" : "false");
    } else if (strcmp(name, "getNode") == 0) {
        size_t node = op_node(fe, op);
        if (node == GW_IOT_NONE) {
            conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown node");
            return;
        }
        r = conc_ok(iq, name, &res);
        node_info(fe, r, node, params, messages);
    } else if (strcmp(name, "getNodes") == 0) {
        for (const struct xs_stanza *ch = xs_stanza_first_child(op); ch;
             ch = xs_stanza_next(ch))
            if (strcmp(xs_stanza_name(ch), "node") == 0 &&
                op_node(fe, ch) == GW_IOT_NONE) {
                conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown node");
                return;
            }
        r = conc_ok(iq, name, &res);
        for (const struct xs_stanza *ch = xs_stanza_first_child(op); ch;
             ch = xs_stanza_next(ch))
            if (strcmp(xs_stanza_name(ch), "node") == 0)
                add_node(fe, r, op_node(fe, ch), params, messages);
    } else if (strcmp(name, "getAllNodes") == 0) {
        if (!source_ok(op)) {
            conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown data source");
            return;
        }
        r = conc_ok(iq, name, &res);
        bool any_cls = xs_stanza_child(op, "onlyIfDerivedFrom", NULL) != NULL;
        for (size_t i = 0; i < n_nodes; i++) {
            bool ok = !any_cls;
            for (const struct xs_stanza *ch = xs_stanza_first_child(op);
                 ch && !ok; ch = xs_stanza_next(ch))
                if (strcmp(xs_stanza_name(ch), "onlyIfDerivedFrom") == 0)
                    ok = derived_from(fe->iot, i, xs_stanza_text(ch));
            if (ok)
                add_node(fe, r, i, params, messages);
        }
    } else if (strcmp(name, "getNodeInheritance") == 0) {
        size_t node = op_node(fe, op);
        if (node == GW_IOT_NONE) {
            conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown node");
            return;
        }
        r = conc_ok(iq, name, &res);
        struct xs_stanza *b = add(r, "baseClasses", NULL);
        for (const char *const *c = base_classes(fe->iot, node); *c; c++)
            set_text(add(b, "value", NULL), *c);
    } else if (strcmp(name, "getRootNodes") == 0) {
        if (!source_ok(op)) {
            conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown data source");
            return;
        }
        r = conc_ok(iq, name, &res);
        add_node(fe, r, 0, params, messages);
    } else if (strcmp(name, "getChildNodes") == 0) {
        size_t node = op_node(fe, op);
        if (node == GW_IOT_NONE) {
            conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown node");
            return;
        }
        r = conc_ok(iq, name, &res);
        const struct gw_iot_node *nd = gw_iot_node(fe->iot, node);
        for (size_t i = 0; i < nd->n_children; i++)
            add_node(fe, r, nd->first_child + i, params, messages);
    } else if (strcmp(name, "getAncestors") == 0) {
        size_t node = op_node(fe, op);
        if (node == GW_IOT_NONE) {
            conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown node");
            return;
        }
        r = conc_ok(iq, name, &res);
        for (size_t n = node; n != GW_IOT_NONE;
             n = gw_iot_node(fe->iot, n)->parent)
            add_node(fe, r, n, params, messages);
    } else if (strcmp(name, "getNodeCommands") == 0) {
        size_t node = op_node(fe, op);
        if (node == GW_IOT_NONE) {
            conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown node");
            return;
        }
        r = conc_ok(iq, name, &res);
        const struct gw_iot_command *cmds;
        size_t n = gw_iot_node_commands(fe->iot, node, &cmds);
        for (size_t i = 0; i < n; i++) {
            struct xs_stanza *c = add(r, "command", NULL);
            set_attr(c, "command", cmds[i].id);
            set_attr(c, "name", cmds[i].name);
            set_attr(c, "type", "Simple");
            set_attr(c, "sortCategory", "Modbus");
            set_attr(c, "sortKey", cmds[i].id);
        }
    } else if (strcmp(name, "executeNodeCommand") == 0) {
        size_t node = op_node(fe, op);
        if (node == GW_IOT_NONE) {
            conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown node");
            return;
        }
        int rc = gw_iot_node_command(fe->iot, from, node,
                                     xs_stanza_attr(op, "command"));
        if (rc == GW_ENOTFOUND) {
            conc_fail(fe, iq, name, CC_NOT_FOUND, "Unknown command");
            return;
        }
        if (rc == GW_EFORBIDDEN) {
            conc_fail(fe, iq, name, CC_FORBIDDEN, "Control access required");
            return;
        }
        if (rc != GW_OK) {
            conc_fail(fe, iq, name, CC_OTHER, gw_strerror(rc));
            return;
        }
        conc_ok(iq, name, &res);
    } else {
        conc_subscribe(fe, iq, op, strcmp(name, "subscribe") == 0);
        return;
    }
    answer(fe, iq, res, "concentrator", name, name);
}

/* ---- routing ------------------------------------------------------------ */

void xs_iot_xsf_iq(struct xs_iot_xsf *fe, const struct xs_stanza *iq)
{
    const struct xs_stanza *ch = xs_stanza_first_child(iq);
    const char *ns = ch ? xs_stanza_ns(ch) : NULL;
    const char *type = xs_stanza_attr(iq, "type");
    const char *name = ch ? xs_stanza_name(ch) : "";
    bool get = type && strcmp(type, "get") == 0;
    bool set = type && strcmp(type, "set") == 0;
    if (!ns || (!get && !set)) {
        send_st(fe, xs_iq_error(iq, "modify", "bad-request", NULL));
        return;
    }
    if (strcmp(ns, XS_NS_IOT_SD) == 0) {
        if (get && strcmp(name, "req") == 0)
            sd_req(fe, iq, ch);
        else if (get && strcmp(name, "cancel") == 0)
            sd_cancel(fe, iq, ch);
        else
            send_st(fe,
                    xs_iq_error(iq, "cancel", "feature-not-implemented", NULL));
        return;
    }
    if (strcmp(ns, XS_NS_IOT_CTL) == 0) {
        if (set && strcmp(name, "set") == 0)
            ctl_set(fe, iq, ch);
        else if (get && strcmp(name, "getForm") == 0)
            ctl_get_form(fe, iq, ch);
        else
            send_st(fe,
                    xs_iq_error(iq, "cancel", "feature-not-implemented", NULL));
        return;
    }
    if (strcmp(ns, XS_NS_IOT_CONC) == 0) {
        conc_iq(fe, iq, ch);
        return;
    }
    send_st(fe, xs_iq_error(iq, "cancel", "service-unavailable", NULL));
}
