/* libFuzzer target for xmpp/xs_parser and the xs_stanza serializer.
 *
 * Input: byte 0 is a split point k; the rest is fed, after a fixed stream
 * header, as two chunks [0,k) and [k,n), with small limits.  A stanza
 * named "proceed" resets the parser (deferred, as after STARTTLS), so the
 * second chunk may begin a new stream, DOCTYPE and all.
 *
 * Limits are small (depth 16, 16 attributes, 64 elements, 1024 bytes, 48
 * names), so stanzas get dropped (skip mode: the scanner alone finds their
 * end) and the parser starts new libxml2 contexts between stanzas
 * (recycling).
 *
 * Oracle: every delivered stanza is serialized and parsed again by a second
 * parser; it must serialize without error and come back equal
 * (xs_stanza_equal).  A dropped stanza is reported with a name, a
 * namespace and a reason, and one dropped for its size took more than the
 * limit on the wire.  The parser's scanner and libxml2 never disagree on
 * where a stanza ends (that would be "internal-server-error").  The same
 * input fed whole gives the same stanzas and drops as fed in two pieces,
 * when neither run failed or reset (a reset discards the rest of a feed,
 * so there the split matters).  Anything else aborts.
 *
 * Run: cmake -DFG_FUZZ=ON -DCMAKE_C_COMPILER=clang ...; then
 *   build/tests/fuzz_xml -max_len=4096 tests/fuzz/corpus/fuzz_xml */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_err.h"
#include "xs_buf.h"
#include "xs_parser.h"
#include "xs_stanza.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR                                                                    \
    "<stream:stream from='example.org' id='f' version='1.0' "                  \
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

struct fz {
    struct xs_parser *p;
    struct xs_buf log;
    bool log_full;
    bool reset; /* a proceed stanza reset the parser */
};

struct rt {
    struct xs_stanza *got;
    int n;
};

static void rt_stanza(void *data, struct xs_stanza *s)
{
    struct rt *r = data;
    r->n++;
    if (r->got)
        xs_stanza_free(s);
    else
        r->got = s;
}

static void check_round_trip(const struct xs_stanza *s)
{
    struct xs_buf b;
    xs_buf_init(&b, 1u << 22);
    if (xs_buf_append_str(&b, HDR) != 0 ||
        xs_stanza_serialize(s, XS_NS_CLIENT, &b) != 0) {
        fprintf(stderr, "fuzz_xml: serialize failed\n");
        abort();
    }
    /* Re-parse with roomier limits: escaping makes the text longer and
     * prefixed elements gain a default xmlns declaration. */
    struct xs_parser_opts o = {
        .max_stanza_bytes = 1u << 22, .max_depth = 32, .max_attrs = 64};
    struct xs_parser_cbs cbs = {.stanza = rt_stanza};
    struct rt r = {NULL, 0};
    struct xs_parser *q = xs_parser_new(&cbs, &r, &o);
    if (!q)
        abort();
    int rc = xs_parser_feed(q, b.data, b.len);
    if (rc != 0 || r.n != 1 || !xs_stanza_equal(s, r.got)) {
        fprintf(stderr,
                "fuzz_xml: round trip differs (rc %d, %s: %s, n %d):\n%s\n", rc,
                xs_parser_condition(q) ? xs_parser_condition(q) : "-",
                xs_parser_error_text(q), r.n, b.data);
        abort();
    }
    xs_stanza_free(r.got);
    xs_parser_free(q);
    xs_buf_close(&b);
}

#define MAX_BYTES 1024u

/* What a run delivered: each stanza serialized, each drop described. */
static void note(struct fz *f, const char *a, const char *b)
{
    if (xs_buf_append_str(&f->log, a) != 0 ||
        (b && xs_buf_append_str(&f->log, b) != 0) ||
        xs_buf_append_str(&f->log, "\n") != 0)
        f->log_full = true;
}

static void on_dropped(void *data, const struct xs_dropped_info *d)
{
    struct fz *f = data;
    if (!d->name || !d->ns || !d->reason || !d->reason[0] ||
        (d->limit == XS_LIMIT_SIZE && d->wire_bytes <= MAX_BYTES) ||
        strcmp(xs_parser_limit_name(d->limit), "?") == 0) {
        fprintf(stderr, "fuzz_xml: bad drop report\n");
        abort();
    }
    char line[160];
    snprintf(line, sizeof(line), "D %s %zu ", xs_parser_limit_name(d->limit),
             d->wire_bytes);
    note(f, line, d->name);
}

static void on_stanza(void *data, struct xs_stanza *s)
{
    struct fz *f = data;
    check_round_trip(s);
    struct xs_buf b;
    xs_buf_init(&b, 1u << 22);
    if (xs_stanza_serialize(s, XS_NS_CLIENT, &b) == 0)
        note(f, "T ", b.data);
    xs_buf_close(&b);
    if (strcmp(xs_stanza_name(s), "proceed") == 0) {
        f->reset = true;
        xs_parser_reset(f->p);
    }
    xs_stanza_free(s);
}

/* Runs the input fed in two pieces split at k; f->log gets the events.
 * Returns true when the stream failed. */
static bool run(struct fz *f, const uint8_t *in, size_t n, size_t k)
{
    struct xs_parser_opts o = {.max_stanza_bytes = MAX_BYTES,
                               .max_depth = 16,
                               .max_attrs = 16,
                               .max_elements = 64,
                               .max_names = 48};
    struct xs_parser_cbs cbs = {.stanza = on_stanza,
                                .stanza_dropped = on_dropped};
    xs_buf_init(&f->log, 1u << 24);
    f->log_full = f->reset = false;
    f->p = xs_parser_new(&cbs, f, &o);
    if (!f->p)
        abort();
    if (xs_parser_feed(f->p, HDR, strlen(HDR)) != 0)
        abort();
    (void)xs_parser_feed(f->p, in, k);
    (void)xs_parser_feed(f->p, in + k, n - k);
    const char *cond = xs_parser_condition(f->p);
    if (cond && strcmp(cond, "internal-server-error") == 0) {
        fprintf(stderr, "fuzz_xml: %s (%s)\n", cond,
                xs_parser_error_text(f->p));
        abort();
    }
    /* after a failure the error must be sticky */
    if (cond && xs_parser_feed(f->p, "<a/>", 4) == 0)
        abort();
    xs_parser_free(f->p);
    return cond != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    size_t k = data[0] < n ? data[0] : n;
    struct fz split, whole;
    bool failed = run(&split, in, n, k);
    failed |= run(&whole, in, n, n);
    if (!failed && !split.reset && !whole.reset && !split.log_full &&
        !whole.log_full &&
        (split.log.len != whole.log.len ||
         (split.log.len &&
          memcmp(split.log.data, whole.log.data, split.log.len) != 0))) {
        fprintf(stderr, "fuzz_xml: split at %zu gives\n%s\nwhole gives\n%s\n",
                k, split.log.len ? split.log.data : "",
                whole.log.len ? whole.log.data : "");
        abort();
    }
    xs_buf_close(&split.log);
    xs_buf_close(&whole.log);
    return 0;
}
