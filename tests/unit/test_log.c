/* test_log.c - the log sink writes exactly one bounded, printable line per
 * call, whatever a peer or device put into its arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_log.h"

/* Logs one message (fmt "%s" with text, or the raw fmt when text is NULL)
 * at level and returns everything written, NUL-terminated. */
static char *capture(bool journal, enum gw_log_level level, const char *text)
{
    struct gw_log log;
    gw_log_init(&log);
    log.level = GW_LOG_DEBUG;
    log.journal = journal;
    log.out = tmpfile();
    assert_non_null(log.out);
    GW_LOG(&log, level, "iot", "from %s", text);
    long size = ftell(log.out);
    assert_true(size > 0);
    char *buf = calloc((size_t)size + 1, 1);
    assert_non_null(buf);
    rewind(log.out);
    assert_int_equal(fread(buf, 1, (size_t)size, log.out), (size_t)size);
    fclose(log.out);
    return buf;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* One line, ending in '\n', no other control character anywhere. */
static void assert_one_clean_line(const char *out)
{
    size_t len = strlen(out);
    assert_true(len > 0);
    assert_int_equal(out[len - 1], '\n');
    assert_int_equal(count_char(out, '\n'), 1);
    for (const unsigned char *p = (const unsigned char *)out; *p; p++)
        if (*p != '\n')
            assert_true(*p >= 0x20 && *p != 0x7F);
}

/* The message part of a journal-mode line "<N>iot: MSG\n". */
static const char *journal_msg(char *out)
{
    const char *p = strstr(out, "iot: ");
    assert_non_null(p);
    out[strlen(out) - 1] = '\0';
    return p + 5;
}

static void test_newline_cr_tab(void **state)
{
    (void)state;
    char *out = capture(true, GW_LOG_INFO, "a\nb\rc\td");
    assert_one_clean_line(out);
    assert_string_equal(out, "<6>iot: from a\\nb\\rc\\td\n");
    free(out);
    out = capture(false, GW_LOG_WARN, "x\r\ny");
    assert_one_clean_line(out);
    assert_non_null(strstr(out, " warn   iot: from x\\r\\ny\n"));
    free(out);
}

static void test_journal_priority_forge(void **state)
{
    (void)state;
    /* A peer's node id that would start a new journald record at
     * emergency priority. */
    char *out = capture(true, GW_LOG_DEBUG, "n1\n<0>daemon: root login\n<3>x");
    assert_one_clean_line(out);
    assert_int_equal(strncmp(out, "<7>iot: ", 8), 0);
    assert_int_equal(count_char(out, '<'), 3); /* ours, and two escaped */
    assert_string_equal(journal_msg(out),
                        "from n1\\n<0>daemon: root login\\n<3>x");
    free(out);
}

static void test_escape_and_controls(void **state)
{
    (void)state;
    char *out = capture(true, GW_LOG_INFO, "\x1b[2J\x1b]0;t\x07\x7f\x01");
    assert_one_clean_line(out);
    assert_string_equal(journal_msg(out),
                        "from \\x1B[2J\\x1B]0;t\\x07\\x7F\\x01");
    free(out);
    /* C1 controls (CSI U+009B, NEL U+0085) are escaped byte by byte. */
    out = capture(true, GW_LOG_INFO,
                  "a\xc2\x9b"
                  "31m\xc2\x85z");
    assert_one_clean_line(out);
    assert_string_equal(journal_msg(out), "from a\\xC2\\x9B31m\\xC2\\x85z");
    free(out);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"\x80", "\\x80"},                            /* lone continuation */
        {"\xc0\xaf", "\\xC0\\xAF"},                   /* overlong '/' */
        {"\xe0\x80\xaf", "\\xE0\\x80\\xAF"},          /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\\xED\\xA0\\x80"},          /* surrogate */
        {"\xf4\x90\x80\x80", "\\xF4\\x90\\x80\\x80"}, /* > U+10FFFF */
        {"\xf5\x80", "\\xF5\\x80"},                   /* never valid */
        {"\xff\xfe", "\\xFF\\xFE"},
        {"ok\xe2\x82", "ok\\xE2\\x82"}, /* cut sequence */
        {"\xe2\x82"
         "A",
         "\\xE2\\x82A"}, /* bad continuation */
        {"\xc3\x28", "\\xC3("},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = capture(true, GW_LOG_INFO, cases[i].in);
        assert_one_clean_line(out);
        char want[64];
        snprintf(want, sizeof(want), "from %s", cases[i].want);
        assert_string_equal(journal_msg(out), want);
        free(out);
    }
    /* Valid UTF-8 is kept: 2, 3 and 4 byte sequences, U+10FFFF. */
    const char *valid = "23.5 \xc2\xb0"
                        "C \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
    char *out = capture(true, GW_LOG_INFO, valid);
    char want[64];
    snprintf(want, sizeof(want), "from %s", valid);
    assert_string_equal(journal_msg(out), want);
    free(out);
}

static void test_embedded_nul(void **state)
{
    (void)state;
    struct gw_log log;
    gw_log_init(&log);
    log.journal = true;
    log.out = tmpfile();
    assert_non_null(log.out);
    GW_LOG(&log, GW_LOG_ERROR, "iot", "a%cb", 0);
    char buf[64] = {0};
    rewind(log.out);
    assert_true(fread(buf, 1, sizeof(buf) - 1, log.out) > 0);
    fclose(log.out);
    assert_string_equal(buf, "<3>iot: a\\x00b\n");
}

static void test_long_lines(void **state)
{
    (void)state;
    size_t marker = strlen(GW_LOG_TRUNCATED);
    /* Plain text longer than any buffer: cut, marked, one line. */
    char *big = malloc(10001);
    assert_non_null(big);
    memset(big, 'a', 10000);
    big[10000] = '\0';
    char *out = capture(true, GW_LOG_INFO, big);
    assert_one_clean_line(out);
    const char *msg = journal_msg(out);
    assert_int_equal(strlen(msg), GW_LOG_MSG_MAX);
    assert_string_equal(msg + GW_LOG_MSG_MAX - marker, GW_LOG_TRUNCATED);
    free(out);
    /* Text that only the escaping makes too long: never a half escape. */
    memset(big, '\n', 600);
    big[600] = '\0';
    out = capture(true, GW_LOG_INFO, big);
    assert_one_clean_line(out);
    msg = journal_msg(out);
    size_t len = strlen(msg);
    assert_true(len <= GW_LOG_MSG_MAX);
    assert_string_equal(msg + len - marker, GW_LOG_TRUNCATED);
    for (size_t i = 5; i < len - marker; i += 2)
        assert_memory_equal(msg + i, "\\n", 2);
    free(out);
    /* Multibyte characters are not split either. */
    for (size_t i = 0; i + 3 <= 3000; i += 3)
        memcpy(big + i, "\xe2\x82\xac", 3);
    big[3000] = '\0';
    out = capture(true, GW_LOG_INFO, big);
    assert_one_clean_line(out);
    msg = journal_msg(out);
    len = strlen(msg);
    assert_true(len <= GW_LOG_MSG_MAX);
    assert_int_equal((len - marker - 5) % 3, 0);
    assert_int_equal((unsigned char)msg[len - marker - 3], 0xe2);
    free(out);
    /* A message that fits exactly is not marked. */
    memset(big, 'b', GW_LOG_MSG_MAX - 5);
    big[GW_LOG_MSG_MAX - 5] = '\0';
    out = capture(true, GW_LOG_INFO, big);
    msg = journal_msg(out);
    assert_int_equal(strlen(msg), GW_LOG_MSG_MAX);
    assert_null(strstr(msg, GW_LOG_TRUNCATED));
    free(out);
    free(big);
}

static void test_journal_and_plain_format(void **state)
{
    (void)state;
    char *out = capture(true, GW_LOG_NOTICE, "x");
    assert_string_equal(out, "<5>iot: from x\n");
    free(out);
    out = capture(false, GW_LOG_ERROR, "x");
    assert_one_clean_line(out);
    /* 2024-01-02T03:04:05.678Z error  iot: from x */
    assert_int_equal(out[4], '-');
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[23], 'Z');
    assert_string_equal(out + 24, " error  iot: from x\n");
    free(out);
    /* The area is escaped too. */
    struct gw_log log;
    gw_log_init(&log);
    log.journal = true;
    log.out = tmpfile();
    assert_non_null(log.out);
    GW_LOG(&log, GW_LOG_WARN, "a\nb", "m");
    GW_LOG(&log, GW_LOG_DEBUG, "dropped", "below the level");
    char buf[64] = {0};
    rewind(log.out);
    assert_true(fread(buf, 1, sizeof(buf) - 1, log.out) > 0);
    fclose(log.out);
    assert_string_equal(buf, "<4>a\\nb: m\n");
}

static void test_esc_helper(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(gw_log_esc(buf, sizeof(buf), "op@x/r\n<0>"), 11);
    assert_string_equal(buf, "op@x/r\\n<0>");
    /* Escaping escaped text changes nothing. */
    char again[32];
    gw_log_esc(again, sizeof(again), buf);
    assert_string_equal(again, buf);
    assert_int_equal(gw_log_esc(buf, sizeof(buf), NULL), 6);
    assert_string_equal(buf, "(null)");
    /* Bounded, cut whole, marked. */
    assert_int_equal(gw_log_esc(buf, 10, "abcdefghijkl"), 9);
    assert_string_equal(buf, "abcdef...");
    assert_int_equal(gw_log_esc(buf, 12,
                                "abcd\x1b"
                                "efgh"),
                     11);
    assert_string_equal(buf, "abcd\\x1B...");
    gw_log_esc(buf, 10,
               "abcd\x1b"
               "efgh");
    assert_string_equal(buf, "abcd...");
    memset(buf, 'z', sizeof(buf));
    gw_log_esc(buf, 8, "\x1b\x1b\x1b");
    assert_string_equal(buf, "\\x1B...");
    gw_log_esc(buf, 3, "abcdef");
    assert_string_equal(buf, "ab");
    gw_log_esc(buf, 3, "\x01");
    assert_string_equal(buf, "");
    gw_log_esc(buf, 1, "abc");
    assert_string_equal(buf, "");
    assert_int_equal(gw_log_esc(buf, 0, "abc"), 0);
    gw_log_esc(buf, 6, "\xe2\x82\xac\xe2\x82\xac");
    assert_string_equal(buf, "...");
    gw_log_esc(buf, sizeof(buf), "\xe2\x82\xac\xe2\x82\xac");
    assert_string_equal(buf, "\xe2\x82\xac\xe2\x82\xac");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newline_cr_tab),
        cmocka_unit_test(test_journal_priority_forge),
        cmocka_unit_test(test_escape_and_controls),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_journal_and_plain_format),
        cmocka_unit_test(test_esc_helper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
