/* test_xs_srv.c - SRV answers parsed from hand-built DNS messages, JIDs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gw_err.h"
#include "xs_jid.h"
#include "xs_srv.h"

struct msg {
    unsigned char b[1024];
    size_t n;
};

static void put16(struct msg *m, unsigned v)
{
    m->b[m->n++] = (unsigned char)(v >> 8);
    m->b[m->n++] = (unsigned char)v;
}

static void put_name(struct msg *m, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t)(dot - name) : strlen(name);
        m->b[m->n++] = (unsigned char)len;
        memcpy(m->b + m->n, name, len);
        m->n += len;
        name += len + (dot ? 1 : 0);
    }
    m->b[m->n++] = 0;
}

/* A response with one question and the given SRV answers. */
struct srv {
    unsigned prio, weight, port;
    const char *target; /* "" = the root (".") */
};

static void build(struct msg *m, const struct srv *a, size_t n)
{
    m->n = 0;
    put16(m, 0x1234); /* id */
    put16(m, 0x8180); /* response, recursion desired and available */
    put16(m, 1);      /* questions */
    put16(m, (unsigned)n);
    put16(m, 0);
    put16(m, 0);
    put_name(m, "_xmpp-client._tcp.example.org");
    put16(m, 33); /* SRV */
    put16(m, 1);  /* IN */
    for (size_t i = 0; i < n; i++) {
        put16(m, 0xC00C); /* the question's name */
        put16(m, 33);
        put16(m, 1);
        put16(m, 0);
        put16(m, 300); /* ttl */
        size_t rdlen_at = m->n;
        put16(m, 0);
        size_t rd = m->n;
        put16(m, a[i].prio);
        put16(m, a[i].weight);
        put16(m, a[i].port);
        put_name(m, a[i].target);
        size_t len = m->n - rd;
        m->b[rdlen_at] = (unsigned char)(len >> 8);
        m->b[rdlen_at + 1] = (unsigned char)len;
    }
}

static void test_parse_and_sort(void **state)
{
    (void)state;
    struct msg m;
    static const struct srv a[] = {
        {20, 0, 5222, "backup.example.org"},
        {10, 10, 5222, "xmpp1.example.org"},
        {10, 60, 5269, "xmpp2.example.org"},
    };
    build(&m, a, 3);
    struct xs_srv_target t[8];
    size_t n = 0;
    assert_int_equal(xs_srv_parse(m.b, m.n, false, t, 8, &n), GW_OK);
    assert_int_equal(n, 3);
    assert_string_equal(t[0].host, "backup.example.org");
    assert_int_equal(t[0].priority, 20);
    assert_false(t[0].direct_tls);
    /* Direct TLS records are mixed in by priority. */
    static const struct srv d[] = {{15, 0, 5223, "tls.example.org"}};
    build(&m, d, 1);
    assert_int_equal(xs_srv_parse(m.b, m.n, true, t, 8, &n), GW_OK);
    assert_int_equal(n, 4);
    xs_srv_sort(t, n);
    assert_string_equal(t[0].host, "xmpp2.example.org"); /* 10, weight 60 */
    assert_int_equal(t[0].port, 5269);
    assert_string_equal(t[1].host, "xmpp1.example.org");
    assert_string_equal(t[2].host, "tls.example.org");
    assert_true(t[2].direct_tls);
    assert_int_equal(t[2].port, 5223);
    assert_string_equal(t[3].host, "backup.example.org");
}

static void test_no_service_and_limits(void **state)
{
    (void)state;
    struct msg m;
    static const struct srv root[] = {{0, 0, 0, ""}};
    build(&m, root, 1);
    struct xs_srv_target t[2];
    size_t n = 0;
    assert_int_equal(xs_srv_parse(m.b, m.n, false, t, 2, &n), GW_OK);
    assert_int_equal(n, 0); /* "." means no service */
    static const struct srv many[] = {
        {1, 0, 1, "a.example"}, {2, 0, 2, "b.example"}, {3, 0, 3, "c.example"}};
    build(&m, many, 3);
    assert_int_equal(xs_srv_parse(m.b, m.n, false, t, 2, &n), GW_OK);
    assert_int_equal(n, 2); /* capped */
    /* Truncated and garbage messages are refused. */
    n = 0;
    assert_int_equal(xs_srv_parse(m.b, 30, false, t, 2, &n), GW_EPROTO);
    assert_int_equal(n, 0);
    static const unsigned char junk[5] = {1, 2, 3, 4, 5};
    assert_int_equal(xs_srv_parse(junk, sizeof(junk), false, t, 2, &n),
                     GW_EPROTO);
}

static void test_jids(void **state)
{
    (void)state;
    struct xs_jid j;
    assert_int_equal(xs_jid_parse("gw@example.org/plant/1", &j), GW_OK);
    assert_string_equal(j.local, "gw");
    assert_string_equal(j.domain, "example.org");
    assert_string_equal(j.resource, "plant/1");
    char b[64];
    assert_int_equal(xs_jid_bare(&j, b, sizeof(b)), GW_OK);
    assert_string_equal(b, "gw@example.org");
    assert_int_equal(xs_jid_parse("example.org", &j), GW_OK);
    assert_string_equal(j.local, "");
    assert_int_equal(xs_jid_parse("@example.org", &j), GW_EINVAL);
    assert_int_equal(xs_jid_parse("gw@", &j), GW_EINVAL);
    assert_int_equal(xs_jid_parse("gw@example.org/", &j), GW_EINVAL);
    assert_int_equal(
        xs_jid_bare(&(struct xs_jid){.local = "a", .domain = "bcdef"}, b, 4),
        GW_ELIMIT);
    assert_true(xs_jid_bare_equal("GW@Example.org", "gw@example.ORG"));
    assert_false(xs_jid_bare_equal("gw@example.org", "gw@example.net"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_sort),
        cmocka_unit_test(test_no_service_and_limits),
        cmocka_unit_test(test_jids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
