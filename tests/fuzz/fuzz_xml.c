/* libFuzzer target for xmpp/xs_parser and the xs_stanza serializer.
 *
 * Input: byte 0 is a split point k; the rest is fed, after a fixed stream
 * header, as two chunks [0,k) and [k,n), with small limits.  A stanza
 * named "proceed" resets the parser (deferred, as after STARTTLS), so the
 * second chunk may begin a new stream, DOCTYPE and all.
 *
 * Limits are small (depth 16, 16 attributes, 64 elements, 4096 bytes, 48
 * names), so stanzas get dropped (skip mode) and the parser starts new
 * libxml2 contexts between stanzas (recycling).
 *
 * Oracle: every delivered stanza is serialized and parsed again by a second
 * parser; it must serialize without error and come back equal
 * (xs_stanza_equal).  A dropped stanza is reported with a name, a
 * namespace and a reason, and one dropped for its size took more than the
 * limit on the wire.  Anything else aborts.
 *
 * Run: cmake -DFG_FUZZ=ON -DCMAKE_C_COMPILER=clang ...; then
 *   build/tests/fuzz_xml -max_len=4096 tests/fuzz/corpus/fuzz_xml */
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

#define MAX_BYTES 4096u

static void on_dropped(void *data, const struct xs_dropped_info *d)
{
    (void)data;
    if (!d->name || !d->ns || !d->reason || !d->reason[0] ||
        (d->limit == XS_LIMIT_SIZE && d->wire_bytes <= MAX_BYTES) ||
        strcmp(xs_parser_limit_name(d->limit), "?") == 0) {
        fprintf(stderr, "fuzz_xml: bad drop report\n");
        abort();
    }
}

static void on_stanza(void *data, struct xs_stanza *s)
{
    struct fz *f = data;
    check_round_trip(s);
    if (strcmp(xs_stanza_name(s), "proceed") == 0)
        xs_parser_reset(f->p);
    xs_stanza_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xs_parser_opts o = {.max_stanza_bytes = MAX_BYTES,
                               .max_depth = 16,
                               .max_attrs = 16,
                               .max_elements = 64,
                               .max_names = 48};
    struct xs_parser_cbs cbs = {.stanza = on_stanza,
                                .stanza_dropped = on_dropped};
    struct fz f;
    f.p = xs_parser_new(&cbs, &f, &o);
    if (!f.p)
        return 0;
    if (xs_parser_feed(f.p, HDR, strlen(HDR)) != 0)
        abort();
    if (size > 0) {
        const uint8_t *in = data + 1;
        size_t n = size - 1;
        size_t k = data[0] < n ? data[0] : n;
        (void)xs_parser_feed(f.p, in, k);
        (void)xs_parser_feed(f.p, in + k, n - k);
        /* after a failure the error must be sticky */
        const char *cond = xs_parser_condition(f.p);
        if (cond && xs_parser_feed(f.p, "<a/>", 4) == 0)
            abort();
    }
    xs_parser_free(f.p);
    return 0;
}
