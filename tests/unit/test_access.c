/* test_access.c - access decisions from the access: section. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gw_access.h"

static char *readers[] = {"viewer@example.org", "partner.net"};
static char *controllers[] = {"ops@example.org", "plant.example.org"};

static const struct cfg_access access = {
    .readers = readers,
    .n_readers = 2,
    .controllers = controllers,
    .n_controllers = 2,
};

static void test_bare_jids(void **state)
{
    (void)state;
    assert_int_equal(gw_access_check(&access, "viewer@example.org"),
                     GW_ACCESS_READ);
    assert_int_equal(gw_access_check(&access, "ops@example.org"),
                     GW_ACCESS_CONTROL);
    assert_int_equal(gw_access_check(&access, "other@example.org"),
                     GW_ACCESS_NONE);
}

static void test_full_jids_and_case(void **state)
{
    (void)state;
    assert_int_equal(gw_access_check(&access, "Viewer@Example.ORG/phone"),
                     GW_ACCESS_READ);
    assert_int_equal(gw_access_check(&access, "ops@example.org/a/b"),
                     GW_ACCESS_CONTROL);
}

static void test_domains(void **state)
{
    (void)state;
    assert_int_equal(gw_access_check(&access, "anyone@partner.net/x"),
                     GW_ACCESS_READ);
    assert_int_equal(gw_access_check(&access, "eng@plant.example.org"),
                     GW_ACCESS_CONTROL);
    /* Subdomains and lookalikes are not covered. */
    assert_int_equal(gw_access_check(&access, "a@sub.partner.net"),
                     GW_ACCESS_NONE);
    assert_int_equal(gw_access_check(&access, "a@evilpartner.net"),
                     GW_ACCESS_NONE);
    assert_int_equal(gw_access_check(&access, "a@partner.net.evil"),
                     GW_ACCESS_NONE);
    /* A bare-JID entry does not cover its domain's other accounts, nor
     * the domain itself. */
    assert_int_equal(gw_access_check(&access, "example.org"), GW_ACCESS_NONE);
    /* A domain entry covers the accounts of the domain, not the domain's
     * own JID: a server or component address is not a user. */
    assert_int_equal(gw_access_check(&access, "partner.net"), GW_ACCESS_NONE);
    assert_int_equal(gw_access_check(&access, "partner.net/res"),
                     GW_ACCESS_NONE);
    assert_int_equal(gw_access_check(&access, "Plant.Example.org"),
                     GW_ACCESS_NONE);
    assert_int_equal(gw_access_check(&access, "x@Plant.Example.org/r"),
                     GW_ACCESS_CONTROL);
}

static void test_bare_domain_entry_as_jid(void **state)
{
    (void)state;
    /* Listed as a bare JID with '@', a user is matched exactly; a domain
     * entry never matches a JID without a local part, whatever the case
     * or resource. */
    static char *r[] = {"example.net"};
    static const struct cfg_access a = {.readers = r, .n_readers = 1};
    assert_int_equal(gw_access_check(&a, "example.net"), GW_ACCESS_NONE);
    assert_int_equal(gw_access_check(&a, "EXAMPLE.NET/x"), GW_ACCESS_NONE);
    assert_int_equal(gw_access_check(&a, "u@example.net"), GW_ACCESS_READ);
}

static void test_malformed(void **state)
{
    (void)state;
    assert_int_equal(gw_access_check(&access, NULL), GW_ACCESS_NONE);
    assert_int_equal(gw_access_check(&access, ""), GW_ACCESS_NONE);
    assert_int_equal(gw_access_check(&access, "@partner.net"), GW_ACCESS_NONE);
    assert_int_equal(gw_access_check(&access, "ops@"), GW_ACCESS_NONE);
    assert_int_equal(gw_access_check(NULL, "ops@example.org"), GW_ACCESS_NONE);
    struct cfg_access empty = {0};
    assert_int_equal(gw_access_check(&empty, "ops@example.org"),
                     GW_ACCESS_NONE);
    assert_string_equal(gw_access_name(GW_ACCESS_CONTROL), "control");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bare_jids),
        cmocka_unit_test(test_full_jids_and_case),
        cmocka_unit_test(test_domains),
        cmocka_unit_test(test_bare_domain_entry_as_jid),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
