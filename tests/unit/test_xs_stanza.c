/* Tests of xmpp/xs_stanza and xmpp/xs_buf: building, checks, navigation,
 * copy/equal, escaping and namespace output, limits, deep trees, and
 * parse(serialize(x)) == x through the real parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_err.h"
#include "xs_buf.h"
#include "xs_parser.h"
#include "xs_stanza.h"

#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SD "urn:xmpp:iot:sensordata"
#define NS_SE "urn:ietf:params:xml:ns:xmpp-streams"

/* Serializes s into a fresh string (test helper; fails the test on
 * error). */
static char *ser(const struct xs_stanza *s, const char *scope)
{
    struct xs_buf b;
    xs_buf_init(&b, 1u << 24);
    assert_int_equal(xs_stanza_serialize(s, scope, &b), 0);
    char *r = strdup(b.data ? b.data : "");
    xs_buf_close(&b);
    assert_non_null(r);
    return r;
}

static void assert_ser(const struct xs_stanza *s, const char *scope,
                       const char *want)
{
    char *got = ser(s, scope);
    assert_string_equal(got, want);
    free(got);
}

/* ---- xs_buf ------------------------------------------------------------ */

static void test_buf_limits(void **state)
{
    struct xs_buf b;
    xs_buf_init(&b, 5);
    assert_null(b.data);
    assert_int_equal(xs_buf_append_str(&b, "abc"), 0);
    assert_int_equal(xs_buf_append(&b, "de", 2), 0); /* exactly max */
    assert_string_equal(b.data, "abcde");
    assert_int_equal(xs_buf_append(&b, "f", 1), GW_ELIMIT);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "abcde");
    xs_buf_truncate(&b, 2);
    assert_string_equal(b.data, "ab");
    xs_buf_truncate(&b, 9); /* longer: no change */
    assert_int_equal(b.len, 2);
    xs_buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(xs_buf_append(&b, NULL, 0), 0);
    xs_buf_close(&b);
    xs_buf_close(&b); /* idempotent */
    xs_buf_close(NULL);
    assert_null(b.data);
    assert_int_equal(b.max, 5);

    xs_buf_init(&b, SIZE_MAX); /* no overflow in the cap clamp */
    assert_int_equal(xs_buf_append_str(&b, "x"), 0);
    assert_int_equal(xs_buf_append(&b, "y", SIZE_MAX), GW_ELIMIT);
    assert_string_equal(b.data, "x");
    xs_buf_close(&b);
}

/* ---- construction and checks ------------------------------------------- */

static void test_names_checked(void **state)
{
    const char *bad[] = {"",   "1a",       "a b", "a:b",      "-x",  "a<",
                         "a&", "\xC3\x28", "a'",  "\xC0\xAF", "a\"b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(xs_stanza_new(bad[i], NULL));
    assert_null(xs_stanza_new(NULL, NULL));
    assert_null(xs_stanza_new("a", "bad\xFF"));

    const char *good[] = {"a", "_x", "iq", "a.b-c_1", "\xC3\xA9t\xC3\xA9"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct xs_stanza *s = xs_stanza_new(good[i], "urn:x");
        assert_non_null(s);
        assert_string_equal(xs_stanza_name(s), good[i]);
        assert_string_equal(xs_stanza_ns(s), "urn:x");
        xs_stanza_free(s);
    }
    xs_stanza_free(NULL);
}

static void test_attrs(void **state)
{
    struct xs_stanza *s = xs_stanza_new("iq", XS_NS_CLIENT);
    assert_non_null(s);
    assert_int_equal(xs_stanza_set_attr(s, "type", "get"), 0);
    assert_int_equal(xs_stanza_set_attr(s, "id", "1"), 0);
    assert_int_equal(xs_stanza_set_attr(s, "xml:lang", "en"), 0);
    assert_int_equal(xs_stanza_set_attr(s, "xmlns:x", "urn:x"), 0);
    assert_int_equal(xs_stanza_attr_count(s), 4);
    assert_string_equal(xs_stanza_attr(s, "type"), "get");
    assert_string_equal(xs_stanza_attr(s, "xml:lang"), "en");
    assert_null(xs_stanza_attr(s, "to"));
    assert_null(xs_stanza_attr(s, NULL));

    /* Replace keeps the position; remove shifts the rest. */
    assert_int_equal(xs_stanza_set_attr(s, "type", "set"), 0);
    const char *n, *v;
    assert_true(xs_stanza_attr_at(s, 0, &n, &v));
    assert_string_equal(n, "type");
    assert_string_equal(v, "set");
    assert_int_equal(xs_stanza_set_attr(s, "type", NULL), 0);
    assert_int_equal(xs_stanza_attr_count(s), 3);
    assert_true(xs_stanza_attr_at(s, 0, &n, &v));
    assert_string_equal(n, "id");
    assert_false(xs_stanza_attr_at(s, 3, &n, &v));
    assert_int_equal(xs_stanza_set_attr(s, "absent", NULL), 0);

    /* Invalid names and values change nothing. */
    assert_int_equal(xs_stanza_set_attr(s, "xmlns", "urn:y"), GW_EINVAL);
    assert_int_equal(xs_stanza_set_attr(s, "a:b:c", "v"), GW_EINVAL);
    assert_int_equal(xs_stanza_set_attr(s, ":a", "v"), GW_EINVAL);
    assert_int_equal(xs_stanza_set_attr(s, "a:", "v"), GW_EINVAL);
    assert_int_equal(xs_stanza_set_attr(s, "1a", "v"), GW_EINVAL);
    assert_int_equal(xs_stanza_set_attr(s, NULL, "v"), GW_EINVAL);
    assert_int_equal(xs_stanza_set_attr(NULL, "a", "v"), GW_EINVAL);
    const char *badv[] = {
        "\x01",             /* C0 control */
        "a\x1f",            /* C0 control */
        "\xC3\x28",         /* bad continuation */
        "\xC0\xAF",         /* overlong */
        "\xED\xA0\x80",     /* surrogate */
        "\xEF\xBF\xBE",     /* U+FFFE */
        "\xEF\xBF\xBF",     /* U+FFFF */
        "\xF4\x90\x80\x80", /* above U+10FFFF */
        "\xE2\x82",         /* truncated */
    };
    for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++)
        assert_int_equal(xs_stanza_set_attr(s, "id", badv[i]), GW_EINVAL);
    assert_string_equal(xs_stanza_attr(s, "id"), "1");
    assert_int_equal(xs_stanza_set_attr(s, "id",
                                        "\t\n\r \xE2\x82\xAC"
                                        "\xF0\x9F\x98\x80"),
                     0);
    assert_int_equal(xs_stanza_attr_count(s), 3);
    xs_stanza_free(s);
}

static void test_text(void **state)
{
    struct xs_stanza *s = xs_stanza_new("body", NULL);
    assert_string_equal(xs_stanza_text(s), "");
    assert_int_equal(xs_stanza_text_len(s), 0);
    assert_int_equal(xs_stanza_set_text(s, "hello world", 5), 0);
    assert_string_equal(xs_stanza_text(s), "hello");
    assert_int_equal(xs_stanza_append_text(s, ", you", 5), 0);
    assert_string_equal(xs_stanza_text(s), "hello, you");
    assert_int_equal(xs_stanza_text_len(s), 10);
    assert_int_equal(xs_stanza_append_text(s, "\x00", 1), GW_EINVAL);
    assert_int_equal(xs_stanza_set_text(s, "\xFF", 1), GW_EINVAL);
    assert_int_equal(xs_stanza_set_text(s, NULL, 3), GW_EINVAL);
    assert_string_equal(xs_stanza_text(s), "hello, you");
    assert_int_equal(xs_stanza_set_text(s, "", 0), 0);
    assert_string_equal(xs_stanza_text(s), "");
    assert_int_equal(xs_stanza_text_len(s), 0);
    assert_int_equal(xs_stanza_set_text(s, NULL, 0), 0);
    xs_stanza_free(s);
}

static void test_children(void **state)
{
    struct xs_stanza *iq = xs_stanza_new("iq", XS_NS_CLIENT);
    struct xs_stanza *q = xs_stanza_add_new(iq, "query", "jabber:iq:a");
    struct xs_stanza *b = xs_stanza_add_new(iq, "bind", "jabber:iq:b");
    struct xs_stanza *q2 = xs_stanza_add_new(iq, "query", "jabber:iq:b");
    struct xs_stanza *plain = xs_stanza_add_new(iq, "plain", NULL);
    assert_non_null(q);
    assert_non_null(b);
    assert_non_null(q2);
    assert_non_null(plain);
    assert_int_equal(xs_stanza_child_count(iq), 4);
    assert_ptr_equal(xs_stanza_first_child(iq), q);
    assert_ptr_equal(xs_stanza_next(q), b);
    assert_ptr_equal(xs_stanza_next(b), q2);
    assert_ptr_equal(xs_stanza_next(q2), plain);
    assert_null(xs_stanza_next(plain));
    assert_ptr_equal(xs_stanza_parent(q), iq);
    assert_null(xs_stanza_parent(iq));

    assert_ptr_equal(xs_stanza_child(iq, "query", NULL), q);
    assert_ptr_equal(xs_stanza_child(iq, "query", "jabber:iq:b"), q2);
    assert_ptr_equal(xs_stanza_child(iq, NULL, "jabber:iq:b"), b);
    assert_null(xs_stanza_child(iq, "query", "jabber:iq:c"));
    assert_null(xs_stanza_child(iq, "nope", NULL));
    /* A child without its own ns inherits the parent's. */
    assert_string_equal(xs_stanza_ns(plain), XS_NS_CLIENT);
    assert_ptr_equal(xs_stanza_child(iq, "plain", XS_NS_CLIENT), plain);

    /* Ownership rules. */
    assert_int_equal(xs_stanza_add_child(iq, q), GW_EINVAL); /* has parent */
    struct xs_stanza *top = xs_stanza_new("top", NULL);
    assert_int_equal(xs_stanza_add_child(q, iq), GW_EINVAL); /* cycle */
    assert_int_equal(xs_stanza_add_child(top, top), GW_EINVAL);
    assert_int_equal(xs_stanza_add_child(NULL, top), GW_EINVAL);
    assert_null(xs_stanza_add_new(NULL, "x", NULL));
    assert_null(xs_stanza_add_new(iq, "bad name", NULL));
    assert_int_equal(xs_stanza_child_count(iq), 4);

    /* Detach pins the effective namespace and hands ownership over. */
    assert_int_equal(xs_stanza_detach(plain), 0);
    assert_null(xs_stanza_parent(plain));
    assert_string_equal(xs_stanza_ns(plain), XS_NS_CLIENT);
    assert_int_equal(xs_stanza_child_count(iq), 3);
    assert_null(xs_stanza_next(q2));
    assert_int_equal(xs_stanza_add_child(top, plain), 0);
    assert_string_equal(xs_stanza_ns(plain), XS_NS_CLIENT);

    /* Freeing a middle child unlinks it. */
    xs_stanza_free(b);
    assert_int_equal(xs_stanza_child_count(iq), 2);
    assert_ptr_equal(xs_stanza_next(q), q2);
    xs_stanza_free(q2);
    assert_null(xs_stanza_next(q));
    assert_int_equal(xs_stanza_add_new(iq, "last", NULL) != NULL, 1);
    assert_string_equal(xs_stanza_name(xs_stanza_next(q)), "last");
    xs_stanza_free(iq);
    xs_stanza_free(top);
}

static struct xs_stanza *sample(void)
{
    struct xs_stanza *m = xs_stanza_new("message", XS_NS_CLIENT);
    xs_stanza_set_attr(m, "to", "a@b/c");
    xs_stanza_set_attr(m, "id", "m1");
    struct xs_stanza *f = xs_stanza_add_new(m, "fields", NS_SD);
    xs_stanza_set_attr(f, "seqnr", "7");
    struct xs_stanza *n = xs_stanza_add_new(f, "node", NULL);
    xs_stanza_set_attr(n, "nodeId", "plc1");
    struct xs_stanza *t = xs_stanza_add_new(n, "timestamp", NULL);
    xs_stanza_set_attr(t, "value", "2024-01-01T00:00:00Z");
    struct xs_stanza *v = xs_stanza_add_new(t, "numeric", NULL);
    xs_stanza_set_attr(v, "name", "T");
    xs_stanza_set_attr(v, "unit",
                       "\xC2\xB0"
                       "C");
    struct xs_stanza *body = xs_stanza_add_new(m, "body", NULL);
    xs_stanza_set_text(body, "hi", 2);
    return m;
}

static void test_copy_equal(void **state)
{
    struct xs_stanza *a = sample();
    struct xs_stanza *b = xs_stanza_copy(a);
    assert_non_null(b);
    assert_true(xs_stanza_equal(a, b));
    assert_true(xs_stanza_equal(NULL, NULL));
    assert_false(xs_stanza_equal(a, NULL));
    char *sa = ser(a, NULL), *sb = ser(b, NULL);
    assert_string_equal(sa, sb);
    free(sa);
    free(sb);

    /* The copy is independent. */
    struct xs_stanza *num = xs_stanza_first_child(xs_stanza_first_child(
        xs_stanza_first_child(xs_stanza_child(b, "fields", NS_SD))));
    assert_string_equal(xs_stanza_name(num), "numeric");
    xs_stanza_set_attr(num, "unit", "K");
    assert_false(xs_stanza_equal(a, b));
    xs_stanza_set_attr(num, "unit",
                       "\xC2\xB0"
                       "C");
    assert_true(xs_stanza_equal(a, b));

    /* Attribute order does not matter; values, text, ns, children do. */
    struct xs_stanza *c = xs_stanza_copy(a);
    xs_stanza_set_attr(c, "to", NULL);
    xs_stanza_set_attr(c, "to", "a@b/c");
    assert_true(xs_stanza_equal(a, c));
    xs_stanza_set_text(xs_stanza_child(c, "body", NULL), "ho", 2);
    assert_false(xs_stanza_equal(a, c));
    xs_stanza_free(c);
    c = xs_stanza_copy(a);
    xs_stanza_add_new(c, "extra", NULL);
    assert_false(xs_stanza_equal(a, c));
    xs_stanza_free(c);
    struct xs_stanza *x1 = xs_stanza_new("x", "urn:1");
    struct xs_stanza *x2 = xs_stanza_new("x", "urn:2");
    struct xs_stanza *x3 = xs_stanza_new("x", "");
    struct xs_stanza *x4 = xs_stanza_new("x", NULL);
    assert_false(xs_stanza_equal(x1, x2));
    assert_true(xs_stanza_equal(x3, x4)); /* both: no namespace */
    assert_null(xs_stanza_ns(x3));

    /* A copied subtree carries its effective ns. */
    struct xs_stanza *sub = xs_stanza_copy(xs_stanza_child(a, "body", NULL));
    assert_string_equal(xs_stanza_ns(sub), XS_NS_CLIENT);
    assert_ser(sub, NULL, "<body xmlns='jabber:client'>hi</body>");
    xs_stanza_free(sub);
    assert_null(xs_stanza_copy(NULL));

    xs_stanza_free(x1);
    xs_stanza_free(x2);
    xs_stanza_free(x3);
    xs_stanza_free(x4);
    xs_stanza_free(a);
    xs_stanza_free(b);
}

/* ---- serializer --------------------------------------------------------- */

static void test_escaping(void **state)
{
    struct xs_stanza *s = xs_stanza_new("body", NULL);
    const char text[] = "a<b>&c\"d'e\r\nf\tg ]]>";
    assert_int_equal(xs_stanza_set_text(s, text, strlen(text)), 0);
    assert_int_equal(
        xs_stanza_set_attr(s, "v", "& < > \" ' \t \n \r \xE2\x82\xAC"), 0);
    assert_ser(s, NULL,
               "<body v='&amp; &lt; &gt; &quot; &apos; &#9; &#10; &#13; "
               "\xE2\x82\xAC'>a&lt;b&gt;&amp;c\"d'e&#13;\nf\tg ]]&gt;</body>");
    xs_stanza_free(s);

    s = xs_stanza_new("e", NULL);
    assert_ser(s, NULL, "<e/>");
    xs_stanza_set_attr(s, "a", "");
    assert_ser(s, NULL, "<e a=''/>");
    xs_stanza_free(s);
}

static void test_namespaces(void **state)
{
    struct xs_stanza *m = xs_stanza_new("message", XS_NS_CLIENT);
    struct xs_stanza *body = xs_stanza_add_new(m, "body", NULL);
    xs_stanza_set_text(body, "x", 1);
    struct xs_stanza *x = xs_stanza_add_new(m, "x", "urn:x");
    xs_stanza_add_new(x, "y", NULL);
    xs_stanza_add_new(x, "z", XS_NS_CLIENT);
    xs_stanza_add_new(m, "w", XS_NS_CLIENT); /* same as scope: no xmlns */
    xs_stanza_add_new(m, "none", "");
    assert_ser(m, XS_NS_CLIENT,
               "<message><body>x</body><x xmlns='urn:x'><y/>"
               "<z xmlns='jabber:client'/></x><w/><none xmlns=''/>"
               "</message>");
    assert_ser(m, NULL,
               "<message xmlns='jabber:client'><body>x</body>"
               "<x xmlns='urn:x'><y/><z xmlns='jabber:client'/></x><w/>"
               "<none xmlns=''/></message>");
    /* A subtree: its effective ns against the given scope. */
    assert_ser(x, "urn:x", "<x><y/><z xmlns='jabber:client'/></x>");
    assert_ser(body, NULL, "<body xmlns='jabber:client'>x</body>");
    xs_stanza_free(m);

    /* ns NULL everywhere inherits the scope. */
    struct xs_stanza *p = xs_stanza_new("presence", NULL);
    assert_ser(p, XS_NS_CLIENT, "<presence/>");
    assert_ser(p, NULL, "<presence/>");
    xs_stanza_free(p);

    /* The streams namespace uses the stream: prefix and does not change
     * the default namespace of its children. */
    struct xs_stanza *e = xs_stanza_new("error", XS_NS_STREAMS);
    struct xs_stanza *c = xs_stanza_add_new(e, "conflict", NS_SE);
    assert_non_null(c);
    struct xs_stanza *t = xs_stanza_add_new(e, "text", NS_SE);
    xs_stanza_set_text(t, "bye", 3);
    xs_stanza_add_new(e, "app", XS_NS_CLIENT);
    assert_ser(e, XS_NS_CLIENT,
               "<stream:error><conflict xmlns='" NS_SE "'/>"
               "<text xmlns='" NS_SE "'>bye</text><app/></stream:error>");
    assert_ser(e, NULL,
               "<stream:error xmlns:stream='" XS_NS_STREAMS "'>"
               "<conflict xmlns='" NS_SE "'/><text xmlns='" NS_SE
               "'>bye</text><app xmlns='jabber:client'/></stream:error>");
    /* A stored xmlns:stream is never written twice. */
    xs_stanza_set_attr(e, "xmlns:stream", XS_NS_STREAMS);
    char *out = ser(e, NULL);
    assert_non_null(strstr(out, "xmlns:stream"));
    assert_null(strstr(strstr(out, "xmlns:stream") + 1, "xmlns:stream"));
    free(out);
    xs_stanza_free(e);

    /* The xml namespace is never a default namespace; xmlns's is refused. */
    struct xs_stanza *m2 = xs_stanza_new("m", XS_NS_CLIENT);
    struct xs_stanza *xl = xs_stanza_add_new(m2, "lang", XS_NS_XML);
    xs_stanza_add_new(xl, "in", NULL);
    assert_ser(m2, XS_NS_CLIENT, "<m><xml:lang><xml:in/></xml:lang></m>");
    xs_stanza_free(m2);
    assert_null(xs_stanza_new("a", XS_NS_XMLNS));
}

static void test_serialize_limit(void **state)
{
    struct xs_stanza *m = sample();
    char *full = ser(m, XS_NS_CLIENT);
    size_t n = strlen(full);
    struct xs_buf b;
    /* Exactly enough room after a prefix works; one byte less fails and
     * leaves the buffer as it was. */
    xs_buf_init(&b, n + 3);
    assert_int_equal(xs_buf_append_str(&b, "abc"), 0);
    assert_int_equal(xs_stanza_serialize(m, XS_NS_CLIENT, &b), 0);
    assert_string_equal(b.data + 3, full);
    xs_buf_close(&b);
    for (size_t max = 3; max < n + 3; max += 7) {
        xs_buf_init(&b, max);
        assert_int_equal(xs_buf_append_str(&b, "abc"), 0);
        assert_int_equal(xs_stanza_serialize(m, XS_NS_CLIENT, &b), GW_ELIMIT);
        assert_int_equal(b.len, 3);
        assert_string_equal(b.data, "abc");
        xs_buf_close(&b);
    }
    assert_int_equal(xs_stanza_serialize(NULL, NULL, &b), GW_EINVAL);
    assert_int_equal(xs_stanza_serialize(m, NULL, NULL), GW_EINVAL);
    free(full);
    xs_stanza_free(m);
}

/* Trees far deeper than any stack frame budget: every walk is iterative. */
static void test_deep_tree(void **state)
{
    enum { DEPTH = 100000 };
    struct xs_stanza *top = xs_stanza_new("d", "urn:deep");
    struct xs_stanza *cur = top;
    for (int i = 1; i < DEPTH; i++) {
        cur = xs_stanza_add_new(cur, "d", NULL);
        assert_non_null(cur);
    }
    xs_stanza_set_text(cur, "x", 1);
    char *out = ser(top, NULL);
    size_t want = strlen("<d xmlns='urn:deep'>") + (DEPTH - 1) * 3 + 1 +
                  (size_t)DEPTH * 4;
    assert_int_equal(strlen(out), want);
    assert_memory_equal(out, "<d xmlns='urn:deep'><d><d>", 26);
    assert_memory_equal(out + want - (size_t)DEPTH * 4 - 1, "x</d></d>", 9);
    assert_memory_equal(out + want - 8, "</d></d>", 8);
    struct xs_stanza *copy = xs_stanza_copy(top);
    assert_true(xs_stanza_equal(top, copy));
    xs_stanza_set_text(cur, "y", 1);
    assert_false(xs_stanza_equal(top, copy));
    free(out);
    xs_stanza_free(copy);
    xs_stanza_free(top);
}

/* ---- round trips through the parser ------------------------------------ */

struct rt {
    struct xs_stanza *got[8];
    int n;
};

static void rt_stanza(void *data, struct xs_stanza *s)
{
    struct rt *r = data;
    assert_true(r->n < 8);
    r->got[r->n++] = s;
}

#define HDR                                                                    \
    "<stream:stream xmlns='jabber:client' "                                    \
    "xmlns:stream='http://etherx.jabber.org/streams'>"

/* Serializes x on a client stream, parses it, and checks the tree that
 * comes back equals x. */
static void round_trip(const struct xs_stanza *x)
{
    struct xs_parser_cbs cbs = {.stanza = rt_stanza};
    struct rt r = {.n = 0};
    struct xs_parser *p = xs_parser_new(&cbs, &r, NULL);
    assert_non_null(p);
    struct xs_buf b;
    xs_buf_init(&b, 1u << 20);
    assert_int_equal(xs_buf_append_str(&b, HDR), 0);
    assert_int_equal(xs_stanza_serialize(x, XS_NS_CLIENT, &b), 0);
    assert_int_equal(xs_parser_feed(p, b.data, b.len), 0);
    assert_int_equal(r.n, 1);
    assert_true(xs_stanza_equal(x, r.got[0]));
    /* and serializing again gives the same bytes */
    struct xs_buf b2;
    xs_buf_init(&b2, 1u << 20);
    assert_int_equal(xs_buf_append_str(&b2, HDR), 0);
    assert_int_equal(xs_stanza_serialize(r.got[0], XS_NS_CLIENT, &b2), 0);
    assert_string_equal(b.data, b2.data);
    xs_buf_close(&b);
    xs_buf_close(&b2);
    xs_stanza_free(r.got[0]);
    xs_parser_free(p);
}

static void test_round_trip(void **state)
{
    struct xs_stanza *m = sample();
    round_trip(m);

    /* Every character that needs care, in text and attributes. */
    struct xs_stanza *body = xs_stanza_child(m, "body", NULL);
    const char nasty[] = "&amp; <x> \"q\" 'a' \t\n\r\r\n ]]> &#38; "
                         "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 \xEF\xBF\xBD";
    assert_int_equal(xs_stanza_set_text(body, nasty, strlen(nasty)), 0);
    assert_int_equal(xs_stanza_set_attr(body, "a", nasty), 0);
    assert_int_equal(xs_stanza_set_attr(body, "xml:lang", "de"), 0);
    round_trip(m);

    /* Namespaces: a declared prefix, an empty default, a streams element,
     * a whitespace-only leaf text (kept). */
    struct xs_stanza *x = xs_stanza_add_new(m, "x", "urn:x");
    xs_stanza_set_attr(x, "xmlns:p", "urn:p");
    xs_stanza_set_attr(x, "p:attr", "v");
    struct xs_stanza *none = xs_stanza_add_new(x, "none", "");
    xs_stanza_add_new(none, "inner", NULL);
    xs_stanza_add_new(x, "xl", XS_NS_XML);
    struct xs_stanza *ws = xs_stanza_add_new(x, "ws", NULL);
    xs_stanza_set_text(ws, "  \n ", 4);
    round_trip(m);
    xs_stanza_free(m);

    struct xs_stanza *e = xs_stanza_new("error", XS_NS_STREAMS);
    xs_stanza_add_new(e, "policy-violation", NS_SE);
    struct xs_stanza *t = xs_stanza_add_new(e, "text", NS_SE);
    xs_stanza_set_text(t, "too big", 7);
    round_trip(e);
    xs_stanza_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_limits),
        cmocka_unit_test(test_names_checked),
        cmocka_unit_test(test_attrs),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_children),
        cmocka_unit_test(test_copy_equal),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_serialize_limit),
        cmocka_unit_test(test_deep_tree),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
