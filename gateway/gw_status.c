/* gw_status.c - the status snapshot: writing it (JSON, atomically) and
 * reading it back (a small bounded JSON reader). */
#include "gw_status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gw_err.h"
#include "gw_json.h"

/* ---- writing ------------------------------------------------------------ */

/* "2026-12-03T18:42:31.250Z" */
static const char *iso_time(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&t, &tm)) {
        snprintf(buf, cap, "?");
        return buf;
    }
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03dZ", day, (int)(ms % 1000));
    return buf;
}

static void put_u(struct gw_json *j, const char *key, uint64_t v)
{
    gw_json_key(j, key);
    gw_json_uint(j, v);
}

static void put_s(struct gw_json *j, const char *key, const char *v)
{
    gw_json_key(j, key);
    gw_json_string(j, v);
}

static void put_time(struct gw_json *j, const char *key, const char *key_ms,
                     int64_t ms)
{
    char buf[64];
    gw_json_key(j, key_ms);
    gw_json_int(j, ms);
    put_s(j, key, iso_time(ms, buf, sizeof(buf)));
}

static void put_counters(struct gw_json *j, const struct gw_counters *c)
{
    put_u(j, "requests", c->requests);
    put_u(j, "errors", c->errors);
    put_u(j, "timeouts", c->timeouts);
    put_u(j, "exceptions", c->exceptions);
}

static void put_links(struct gw_json *j, const struct gw_status_info *in)
{
    const struct cfg *cfg = in->cfg;
    const struct gw_store *st = in->store;
    gw_json_key(j, "links");
    gw_json_array_begin(j);
    for (size_t l = 0; st && l < cfg->n_links; l++) {
        const struct gw_link_state *ls = &st->links[l];
        gw_json_object_begin(j);
        put_s(j, "name", cfg->links[l].name);
        gw_json_key(j, "connected");
        gw_json_bool(j, ls->connected);
        put_counters(j, &ls->c);
        put_u(j, "overruns", ls->overruns);
        put_u(j, "rtt_us", ls->last_rtt_us);
        put_u(j, "units", cfg->links[l].n_units);
        gw_json_object_end(j);
    }
    gw_json_array_end(j);
    size_t listed = 0, omitted = 0;
    gw_json_key(j, "units");
    gw_json_array_begin(j);
    for (size_t l = 0; st && l < cfg->n_links; l++) {
        for (size_t u = 0; u < cfg->links[l].n_units; u++) {
            if (listed == GW_STATUS_MAX_UNITS) {
                omitted++;
                continue;
            }
            listed++;
            const struct gw_unit_state *us = &st->links[l].units[u];
            char why[128];
            gw_json_object_begin(j);
            put_s(j, "name", cfg->links[l].units[u].name);
            put_s(j, "link", cfg->links[l].name);
            put_s(j, "status", gw_unit_status_name(us->status));
            put_s(j, "last_error",
                  gw_store_err_text(us->last_err, us->last_exception, why,
                                    sizeof(why)));
            gw_json_key(j, "since_ms");
            gw_json_int(j, us->last_change_ms);
            put_counters(j, &us->c);
            put_u(j, "rtt_us", us->last_rtt_us);
            if (in->events) {
                put_u(j, "events_published",
                      in->unit_published ? in->unit_published(in->unit_ud, l, u)
                                         : 0);
            }
            gw_json_object_end(j);
        }
    }
    gw_json_array_end(j);
    put_u(j, "units_omitted", omitted);
}

static void put_xmpp(struct gw_json *j, const struct gw_status_info *in)
{
    const struct gw_status_xmpp *x = in->xmpp;
    gw_json_key(j, "xmpp");
    gw_json_object_begin(j);
    gw_json_key(j, "enabled");
    gw_json_bool(j, x != NULL);
    if (x) {
        gw_json_key(j, "online");
        gw_json_bool(j, x->online);
        put_s(j, "jid", x->jid);
        put_u(j, "connects", x->connects);
        put_u(j, "resumes", x->resumes);
        put_u(j, "drops", x->drops);
        put_u(j, "auth_failures", x->auth_failures);
        put_u(j, "dropped_stanzas", x->dropped_stanzas);
    }
    gw_json_object_end(j);
}

static void put_events(struct gw_json *j, const struct gw_status_info *in)
{
    const struct gw_status_events *e = in->events;
    gw_json_key(j, "events");
    gw_json_object_begin(j);
    gw_json_key(j, "enabled");
    gw_json_bool(j, e != NULL);
    if (e) {
        const char *service = in->cfg ? in->cfg->events.service : NULL;
        put_s(j, "mode", service ? "pubsub" : "pep");
        put_s(j, "service", service);
        put_s(j, "state", e->state);
        put_s(j, "warning", e->warning);
        put_u(j, "published", e->published);
        put_u(j, "errors", e->errors);
        put_u(j, "retries", e->retries);
        put_u(j, "in_flight", e->in_flight);
        put_u(j, "backlog", e->backlog);
        put_u(j, "changes", e->changes);
        put_u(j, "suppressed", e->suppressed);
        put_u(j, "coalesced", e->coalesced);
        put_u(j, "heartbeats", e->heartbeats);
        put_s(j, "delivery", e->spool ? "every" : "latest");
        if (e->spool) {
            gw_json_key(j, "spool");
            gw_json_object_begin(j);
            put_u(j, "bytes", e->spool_bytes);
            put_u(j, "oldest_unsent_age_ms",
                  e->spool_oldest_age_ms > 0 ? (uint64_t)e->spool_oldest_age_ms
                                             : 0);
            put_u(j, "dropped", e->spool_dropped);
            put_u(j, "lost", e->spool_lost);
            gw_json_key(j, "fallback");
            gw_json_bool(j, e->spool_fallback);
            gw_json_object_end(j);
        }
    }
    gw_json_object_end(j);
}

int gw_status_write_json(FILE *out, const struct gw_status_info *in)
{
    struct gw_json j;
    gw_json_init(&j, out);
    gw_json_object_begin(&j);
    put_s(&j, "version", FG_VERSION);
    put_s(&j, "state", in->state);
    gw_json_key(&j, "pid");
    gw_json_int(&j, in->pid);
    put_time(&j, "time", "time_ms", in->now_ms);
    put_time(&j, "start", "start_ms", in->start_ms);
    put_u(&j, "period_ms", GW_STATUS_PERIOD_MS);
    put_s(&j, "map", in->map_path);
    put_links(&j, in);
    put_xmpp(&j, in);
    put_events(&j, in);
    gw_json_object_end(&j);
    gw_json_newline(&j);
    return j.error || ferror(out) ? GW_EIO : GW_OK;
}

int gw_status_write_file(const char *path, const struct gw_status_info *info,
                         int *sys_errno)
{
    *sys_errno = 0;
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return GW_ELIMIT;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                  GW_STATUS_FILE_MODE);
    if (fd < 0) {
        *sys_errno = errno;
        return GW_ESYS;
    }
    /* Readable by the group whatever the umask (UMask=0077 in the unit):
     * `fieldgate status` is for the daemon's group too. */
    (void)fchmod(fd, GW_STATUS_FILE_MODE);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        *sys_errno = errno;
        close(fd);
        unlink(tmp);
        return GW_ESYS;
    }
    int rc = gw_status_write_json(f, info);
    long size = ftell(f);
    if (rc != GW_OK)
        *sys_errno = errno;
    if (fclose(f) != 0 && rc == GW_OK) {
        *sys_errno = errno;
        rc = GW_ESYS;
    }
    if (rc == GW_EIO)
        rc = GW_ESYS;
    if (rc == GW_OK && (size < 0 || size > GW_STATUS_MAX_BYTES))
        rc = GW_ELIMIT;
    if (rc == GW_OK && rename(tmp, path) != 0) {
        *sys_errno = errno;
        rc = GW_ESYS;
    }
    if (rc != GW_OK)
        unlink(tmp);
    return rc;
}

int gw_status_default_path(const char *fallback_dir, char *buf, size_t cap)
{
    const char *dir = getenv("RUNTIME_DIRECTORY");
    size_t len = 0;
    if (dir && *dir) {
        /* systemd lists several directories separated by ':'. */
        const char *colon = strchr(dir, ':');
        len = colon ? (size_t)(colon - dir) : strlen(dir);
    } else if (fallback_dir) {
        dir = fallback_dir;
        len = strlen(dir);
    } else {
        return GW_ENOTFOUND;
    }
    int n = snprintf(buf, cap, "%.*s/%s", (int)len, dir, GW_STATUS_FILE_NAME);
    if (n < 0 || (size_t)n >= cap)
        return GW_ELIMIT;
    return GW_OK;
}

/* ---- reading ------------------------------------------------------------ */

struct parser {
    char *p, *end;
    struct gw_status_doc *doc;
    int depth;
};

static int new_node(struct parser *ps, enum gw_status_type type,
                    const char *key, int32_t *idx)
{
    struct gw_status_doc *d = ps->doc;
    if (d->n == d->cap) {
        if (d->cap >= GW_STATUS_MAX_NODES)
            return GW_ELIMIT;
        size_t cap = d->cap ? d->cap * 2 : 64;
        if (cap > GW_STATUS_MAX_NODES)
            cap = GW_STATUS_MAX_NODES;
        struct gw_status_node *nodes = realloc(d->nodes, cap * sizeof(*nodes));
        if (!nodes)
            return GW_ENOMEM;
        d->nodes = nodes;
        d->cap = cap;
    }
    struct gw_status_node *nd = &d->nodes[d->n];
    memset(nd, 0, sizeof(*nd));
    nd->type = type;
    nd->key = key;
    nd->first = nd->next = -1;
    *idx = (int32_t)d->n++;
    return GW_OK;
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
                               *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return GW_EPARSE;
    }
    *out = v;
    return GW_OK;
}

static char *put_utf8(char *w, uint32_t cp)
{
    if (cp < 0x80) {
        *w++ = (char)cp;
    } else if (cp < 0x800) {
        *w++ = (char)(0xc0 | (cp >> 6));
        *w++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *w++ = (char)(0xe0 | (cp >> 12));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *w++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *w++ = (char)(0xf0 | (cp >> 18));
        *w++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *w++ = (char)(0x80 | (cp & 0x3f));
    }
    return w;
}

/* A string at ps->p (the opening quote), decoded in place from the quote
 * on: never longer than its encoding, so it ends before the closing quote
 * (where its NUL goes at the latest). */
static int parse_string(struct parser *ps, const char **out)
{
    char *w = ps->p, *r = ps->p + 1;
    *out = w;
    for (;;) {
        if (r >= ps->end)
            return GW_EPARSE;
        unsigned char c = (unsigned char)*r;
        if (c == '"')
            break;
        if (c < 0x20)
            return GW_EPARSE;
        if (c != '\\') {
            *w++ = *r++;
            continue;
        }
        if (ps->end - r < 2)
            return GW_EPARSE;
        char e = r[1];
        r += 2;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            *w++ = e;
            break;
        case 'b':
            *w++ = '\b';
            break;
        case 'f':
            *w++ = '\f';
            break;
        case 'n':
            *w++ = '\n';
            break;
        case 'r':
            *w++ = '\r';
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'u': {
            uint32_t cp, lo;
            if (ps->end - r < 4 || hex4(r, &cp) != GW_OK)
                return GW_EPARSE;
            r += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {
                if (ps->end - r < 6 || r[0] != '\\' || r[1] != 'u' ||
                    hex4(r + 2, &lo) != GW_OK || lo < 0xdc00 || lo > 0xdfff)
                    return GW_EPARSE;
                r += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if ((cp >= 0xdc00 && cp < 0xe000) || cp == 0) {
                return GW_EPARSE; /* a lone low surrogate; NUL */
            }
            w = put_utf8(w, cp);
            break;
        }
        default:
            return GW_EPARSE;
        }
    }
    *w = '\0';
    ps->p = r + 1;
    return GW_OK;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(struct parser *ps, double *out)
{
    char *s = ps->p, *q = s;
    if (q < ps->end && *q == '-')
        q++;
    if (q >= ps->end || !is_digit(*q))
        return GW_EPARSE;
    if (*q == '0')
        q++;
    else
        while (q < ps->end && is_digit(*q))
            q++;
    if (q < ps->end && *q == '.') {
        q++;
        if (q >= ps->end || !is_digit(*q))
            return GW_EPARSE;
        while (q < ps->end && is_digit(*q))
            q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < ps->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= ps->end || !is_digit(*q))
            return GW_EPARSE;
        while (q < ps->end && is_digit(*q))
            q++;
    }
    char num[64];
    size_t n = (size_t)(q - s);
    if (n >= sizeof(num))
        return GW_ELIMIT;
    memcpy(num, s, n);
    num[n] = '\0';
    *out = strtod(num, NULL);
    ps->p = q;
    return GW_OK;
}

static int parse_value(struct parser *ps, const char *key, int32_t *out);

/* Members of an object or elements of an array, after the opening
 * bracket. */
static int parse_children(struct parser *ps, int32_t parent, bool object)
{
    char close = object ? '}' : ']';
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return GW_OK;
    }
    int32_t last = -1;
    for (;;) {
        const char *key = NULL;
        skip_ws(ps);
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"')
                return GW_EPARSE;
            int rc = parse_string(ps, &key);
            if (rc != GW_OK)
                return rc;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return GW_EPARSE;
            ps->p++;
        }
        int32_t child;
        int rc = parse_value(ps, key, &child);
        if (rc != GW_OK)
            return rc;
        /* nodes may have moved (realloc): index again. */
        if (last < 0)
            ps->doc->nodes[parent].first = child;
        else
            ps->doc->nodes[last].next = child;
        last = child;
        skip_ws(ps);
        if (ps->p >= ps->end)
            return GW_EPARSE;
        char c = *ps->p++;
        if (c == close)
            return GW_OK;
        if (c != ',')
            return GW_EPARSE;
    }
}

static bool literal(struct parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return false;
    ps->p += n;
    return true;
}

static int parse_value(struct parser *ps, const char *key, int32_t *out)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return GW_EPARSE;
    char c = *ps->p;
    int rc;
    if (c == '{' || c == '[') {
        if (++ps->depth > GW_STATUS_MAX_DEPTH)
            return GW_ELIMIT;
        rc = new_node(ps, c == '{' ? GW_STATUS_OBJECT : GW_STATUS_ARRAY, key,
                      out);
        if (rc != GW_OK)
            return rc;
        ps->p++;
        rc = parse_children(ps, *out, c == '{');
        ps->depth--;
        return rc;
    }
    if (c == '"') {
        const char *s;
        rc = parse_string(ps, &s);
        if (rc == GW_OK)
            rc = new_node(ps, GW_STATUS_STRING, key, out);
        if (rc == GW_OK)
            ps->doc->nodes[*out].str = s;
        return rc;
    }
    if (literal(ps, "true") || literal(ps, "false")) {
        rc = new_node(ps, GW_STATUS_BOOL, key, out);
        if (rc == GW_OK)
            ps->doc->nodes[*out].b = c == 't';
        return rc;
    }
    if (literal(ps, "null"))
        return new_node(ps, GW_STATUS_NULL, key, out);
    double v;
    rc = parse_number(ps, &v);
    if (rc == GW_OK)
        rc = new_node(ps, GW_STATUS_NUMBER, key, out);
    if (rc == GW_OK)
        ps->doc->nodes[*out].num = v;
    return rc;
}

int gw_status_parse(char *text, size_t len, struct gw_status_doc *doc)
{
    memset(doc, 0, sizeof(*doc));
    doc->text = text;
    doc->len = len;
    if (len > GW_STATUS_MAX_BYTES)
        return GW_ELIMIT;
    if (memchr(text, '\0', len))
        return GW_EPARSE;
    struct parser ps = {.p = text, .end = text + len, .doc = doc};
    int32_t top;
    int rc = parse_value(&ps, NULL, &top);
    if (rc != GW_OK)
        return rc;
    skip_ws(&ps);
    return ps.p == ps.end ? GW_OK : GW_EPARSE;
}

int gw_status_read_file(const char *path, char **text, size_t *len,
                        int *sys_errno)
{
    *text = NULL;
    *len = 0;
    *sys_errno = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        *sys_errno = errno;
        return errno == ENOENT ? GW_ENOTFOUND : GW_ESYS;
    }
    char *buf = malloc(GW_STATUS_MAX_BYTES + 2);
    if (!buf) {
        fclose(f);
        return GW_ENOMEM;
    }
    size_t n = fread(buf, 1, GW_STATUS_MAX_BYTES + 1, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        free(buf);
        *sys_errno = err;
        return GW_ESYS;
    }
    if (n > GW_STATUS_MAX_BYTES) {
        free(buf);
        return GW_ELIMIT;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return GW_OK;
}

void gw_status_doc_free(struct gw_status_doc *doc)
{
    free(doc->text);
    free(doc->nodes);
    memset(doc, 0, sizeof(*doc));
}

const struct gw_status_node *gw_status_get(const struct gw_status_doc *doc,
                                           const struct gw_status_node *obj,
                                           const char *key)
{
    if (!obj)
        obj = doc->n ? &doc->nodes[0] : NULL;
    if (!obj || obj->type != GW_STATUS_OBJECT)
        return NULL;
    for (const struct gw_status_node *e = gw_status_child(doc, obj); e;
         e = gw_status_next(doc, e))
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

const char *gw_status_get_str(const struct gw_status_doc *doc,
                              const struct gw_status_node *obj, const char *key,
                              const char *def)
{
    const struct gw_status_node *v = gw_status_get(doc, obj, key);
    return v && v->type == GW_STATUS_STRING ? v->str : def;
}

double gw_status_get_num(const struct gw_status_doc *doc,
                         const struct gw_status_node *obj, const char *key,
                         double def)
{
    const struct gw_status_node *v = gw_status_get(doc, obj, key);
    return v && v->type == GW_STATUS_NUMBER ? v->num : def;
}

bool gw_status_get_bool(const struct gw_status_doc *doc,
                        const struct gw_status_node *obj, const char *key,
                        bool def)
{
    const struct gw_status_node *v = gw_status_get(doc, obj, key);
    return v && v->type == GW_STATUS_BOOL ? v->b : def;
}

const struct gw_status_node *gw_status_child(const struct gw_status_doc *doc,
                                             const struct gw_status_node *v)
{
    if (!v || (v->type != GW_STATUS_ARRAY && v->type != GW_STATUS_OBJECT) ||
        v->first < 0)
        return NULL;
    return &doc->nodes[v->first];
}

const struct gw_status_node *gw_status_next(const struct gw_status_doc *doc,
                                            const struct gw_status_node *e)
{
    return e && e->next >= 0 ? &doc->nodes[e->next] : NULL;
}
