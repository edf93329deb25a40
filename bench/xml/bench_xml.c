/* bench_xml - parse and serialize throughput of xmpp/xs_parser and
 * xs_stanza_serialize on XEP-0323 sensor-data messages, beside libxml2's
 * own xmlReadMemory (DOM) and xmlNodeDump on the same stanzas in the same
 * run.
 *
 * Usage: bench_xml [SCALE]   (SCALE multiplies the fixed iteration counts,
 * default 1).  Prints a table; exits 1 if a check fails (stanza counts, a
 * round trip of every stanza). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "gw_err.h"
#include "xs_buf.h"
#include "xs_parser.h"
#include "xs_stanza.h"

#define NSTANZAS 200   /* distinct stanzas */
#define NFIELDS 20     /* <numeric/> per stanza */
#define PARSE_ITERS 40 /* passes over all stanzas */
#define SER_ITERS 40
#define FEED_CHUNK 4096 /* bytes per xs_parser_feed, like a TLS record */

#define HDR                                                                    \
    "<stream:stream from='example.org' id='b' version='1.0' "                  \
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

static const char *const UNITS[] = {"\xC2\xB0\x43", "kWh",        "V", "A",
                                    "Hz",           "m\xC2\xB3/h"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One sensor-data message (XEP-0323 0.6 fields), NUL-terminated, in buf. */
static int make_stanza(struct xs_buf *b, int i)
{
    char line[512];
    int rc = 0;
    snprintf(line, sizeof(line),
             "<message xmlns='jabber:client' from='gw@example.org/gw' "
             "to='client@example.org/app' id='sd-%d'>"
             "<fields xmlns='urn:xmpp:iot:sensordata' seqnr='%d' "
             "done='true'><node nodeId='plc-%d'>"
             "<timestamp value='2024-05-01T12:%02d:%02dZ'>",
             i, i, i % 7, (i / 60) % 60, i % 60);
    rc = xs_buf_append_str(b, line);
    for (int f = 0; f < NFIELDS && rc == 0; f++) {
        snprintf(line, sizeof(line),
                 "<numeric name='register %d &amp; 40%03d' momentary='true' "
                 "automaticReadout='true' value='%d.%03d' unit='%s'/>",
                 f, f, (i * 31 + f * 7) % 1000, (i * 17 + f) % 1000,
                 UNITS[f % 6]);
        rc = xs_buf_append_str(b, line);
    }
    if (rc == 0)
        rc = xs_buf_append_str(b, "</timestamp></node></fields></message>");
    return rc;
}

struct sink {
    struct xs_stanza **keep; /* NULL: free each stanza */
    size_t n;
};

static void on_stanza(void *data, struct xs_stanza *s)
{
    struct sink *k = data;
    if (k->keep && k->n < NSTANZAS)
        k->keep[k->n] = s;
    else
        xs_stanza_free(s);
    k->n++;
}

/* Parses the whole stream once with fresh parser, FEED_CHUNK at a time.
 * Returns the number of stanzas delivered, or -1 on error. */
static long parse_stream(const char *s, size_t len, struct sink *k)
{
    struct xs_parser_cbs cbs = {.stanza = on_stanza};
    struct xs_parser *p = xs_parser_new(&cbs, k, NULL);
    if (!p)
        return -1;
    k->n = 0;
    for (size_t off = 0; off < len; off += FEED_CHUNK) {
        size_t n = len - off < FEED_CHUNK ? len - off : FEED_CHUNK;
        if (xs_parser_feed(p, s + off, n) != 0) {
            fprintf(stderr, "bench_xml: parse error %s\n",
                    xs_parser_error_text(p));
            xs_parser_free(p);
            return -1;
        }
    }
    xs_parser_free(p);
    return (long)k->n;
}

struct row {
    const char *op;
    double stanzas_s, mb_s;
    int baseline; /* index of the baseline row, or -1 */
};

static void print_table(const struct row *r, int n)
{
    printf("%-40s %12s %10s %12s\n", "operation", "stanzas/s", "MB/s",
           "vs baseline");
    for (int i = 0; i < n; i++) {
        char vs[32];
        if (r[i].baseline < 0)
            snprintf(vs, sizeof(vs), "(baseline)");
        else
            snprintf(vs, sizeof(vs), "%.2fx",
                     r[i].stanzas_s / r[r[i].baseline].stanzas_s);
        printf("%-40s %12.0f %10.1f %12s\n", r[i].op, r[i].stanzas_s, r[i].mb_s,
               vs);
    }
}

int main(int argc, char **argv)
{
    int scale = 1;
    if (argc > 1) {
        char *end;
        long v = strtol(argv[1], &end, 10);
        if (*end || v < 1 || v > 1000) {
            fprintf(stderr, "usage: bench_xml [SCALE 1..1000]\n");
            return 2;
        }
        scale = (int)v;
    }
    int rc = 1;
    struct xs_buf stream, one, out;
    xs_buf_init(&stream, 64u << 20);
    xs_buf_init(&one, 1u << 20);
    xs_buf_init(&out, 1u << 20);
    size_t off[NSTANZAS + 1];
    xmlDocPtr docs[NSTANZAS] = {0};
    struct xs_stanza *trees[NSTANZAS] = {0};
    xmlBufferPtr xb = xmlBufferCreate();

    /* The input: one stream with every stanza, and their offsets. */
    if (xs_buf_append_str(&stream, HDR) != 0)
        goto out;
    size_t hdr_len = stream.len;
    for (int i = 0; i < NSTANZAS; i++) {
        off[i] = stream.len;
        if (make_stanza(&stream, i) != 0)
            goto out;
    }
    off[NSTANZAS] = stream.len;
    double in_bytes = (double)(stream.len - hdr_len);
    printf("%d stanzas with %d <numeric/> fields, %.0f bytes each on "
           "average; %d passes each (scale %d)\n\n",
           NSTANZAS, NFIELDS, in_bytes / NSTANZAS, PARSE_ITERS * scale, scale);

    /* Checks, and the trees/docs the serializers start from. */
    struct sink keep = {.keep = trees};
    if (parse_stream(stream.data, stream.len, &keep) != NSTANZAS)
        goto out;
    for (int i = 0; i < NSTANZAS; i++) {
        docs[i] =
            xmlReadMemory(stream.data + off[i], (int)(off[i + 1] - off[i]),
                          NULL, "UTF-8", XML_PARSE_NONET);
        if (!docs[i])
            goto out;
        /* our output parses back to the same tree */
        xs_buf_clear(&one);
        struct sink rt = {.keep = NULL};
        struct xs_stanza *back[1] = {NULL};
        rt.keep = back;
        if (xs_buf_append_str(&one, HDR) != 0 ||
            xs_stanza_serialize(trees[i], XS_NS_CLIENT, &one) != 0 ||
            parse_stream(one.data, one.len, &rt) != 1 ||
            !xs_stanza_equal(trees[i], back[0])) {
            fprintf(stderr, "bench_xml: round trip of stanza %d failed\n", i);
            xs_stanza_free(back[0]);
            goto out;
        }
        xs_stanza_free(back[0]);
    }

    struct row rows[4];
    long iters = (long)PARSE_ITERS * scale;

    /* 1. xs_parser on the stream. */
    struct sink drop = {.keep = NULL};
    double t0 = now_s();
    for (long it = 0; it < iters; it++)
        if (parse_stream(stream.data, stream.len, &drop) != NSTANZAS)
            goto out;
    double dt = now_s() - t0;
    rows[0] = (struct row){"parse: xs_parser (4 KiB feeds)",
                           (double)iters * NSTANZAS / dt,
                           (double)iters * in_bytes / dt / 1e6, 1};

    /* 2. xmlReadMemory per stanza (DOM). */
    t0 = now_s();
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < NSTANZAS; i++) {
            xmlDocPtr d =
                xmlReadMemory(stream.data + off[i], (int)(off[i + 1] - off[i]),
                              NULL, "UTF-8", XML_PARSE_NONET);
            if (!d)
                goto out;
            xmlFreeDoc(d);
        }
    dt = now_s() - t0;
    rows[1] = (struct row){"parse: xmlReadMemory (libxml2 DOM)",
                           (double)iters * NSTANZAS / dt,
                           (double)iters * in_bytes / dt / 1e6, -1};

    /* 3. xs_stanza_serialize. */
    iters = (long)SER_ITERS * scale;
    double out_bytes = 0;
    t0 = now_s();
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < NSTANZAS; i++) {
            xs_buf_clear(&out);
            if (xs_stanza_serialize(trees[i], XS_NS_CLIENT, &out) != 0)
                goto out;
            out_bytes += (double)out.len;
        }
    dt = now_s() - t0;
    rows[2] =
        (struct row){"serialize: xs_stanza_serialize",
                     (double)iters * NSTANZAS / dt, out_bytes / dt / 1e6, 3};

    /* 4. xmlNodeDump. */
    out_bytes = 0;
    t0 = now_s();
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < NSTANZAS; i++) {
            xmlBufferEmpty(xb);
            int n =
                xmlNodeDump(xb, docs[i], xmlDocGetRootElement(docs[i]), 0, 0);
            if (n < 0)
                goto out;
            out_bytes += (double)n;
        }
    dt = now_s() - t0;
    rows[3] =
        (struct row){"serialize: xmlNodeDump (libxml2)",
                     (double)iters * NSTANZAS / dt, out_bytes / dt / 1e6, -1};

    print_table(rows, 4);
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "bench_xml: FAILED\n");
    for (int i = 0; i < NSTANZAS; i++) {
        xs_stanza_free(trees[i]);
        if (docs[i])
            xmlFreeDoc(docs[i]);
    }
    xmlBufferFree(xb);
    xs_buf_close(&stream);
    xs_buf_close(&one);
    xs_buf_close(&out);
    xmlCleanupParser();
    return rc;
}
