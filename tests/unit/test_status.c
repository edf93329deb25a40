/* test_status.c - the status snapshot (gateway/gw_status): a store with
 * known states gives the JSON fields `fieldgate status` reads, the file is
 * replaced atomically (a new inode by rename, no temporary file left, the
 * group can read it), the unit list is bounded, a failed write leaves
 * nothing; and the reader: escapes, numbers, malformed and deep input,
 * the default path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "gw_err.h"
#include "gw_status.h"
#include "gw_store.h"

static const char MAP[] = "links:\n"
                          "  - name: plant\n"
                          "    type: tcp\n"
                          "    host: 127.0.0.1\n"
                          "    port: 1502\n"
                          "    units:\n"
                          "      - name: m1\n"
                          "        id: 1\n"
                          "        points:\n"
                          "          - {name: a, table: holding, address: 0,\n"
                          "             type: uint16}\n"
                          "      - name: dead\n"
                          "        id: 2\n"
                          "        points:\n"
                          "          - {name: a, table: holding, address: 0,\n"
                          "             type: uint16}\n"
                          "      - name: exc\n"
                          "        id: 3\n"
                          "        points:\n"
                          "          - {name: a, table: holding, address: 0,\n"
                          "             type: uint16}\n"
                          "  - name: line2\n"
                          "    type: tcp\n"
                          "    host: 127.0.0.1\n"
                          "    port: 1503\n"
                          "    units:\n"
                          "      - name: m9\n"
                          "        id: 9\n"
                          "        points:\n"
                          "          - {name: a, table: holding, address: 0,\n"
                          "             type: uint16}\n";

struct fx {
    struct cfg *cfg;
    struct gw_store store;
    struct gw_status_xmpp xmpp;
    struct gw_status_events events;
    char dir[64];
};

static int load(struct fx *f, const char *map)
{
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    int rc = cfg_load_buffer("map.yaml", map, strlen(map), &f->cfg, &errs);
    if (rc != GW_OK)
        cfg_errors_print(&errs, stderr);
    cfg_errors_close(&errs);
    if (rc != GW_OK || gw_store_init(&f->store, f->cfg) != GW_OK)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_status.XXXXXX");
    return mkdtemp(f->dir) ? 0 : -1;
}

static int setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    if (load(&f, MAP) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    gw_store_close(&f->store);
    cfg_free(f->cfg);
    return 0;
}

static uint64_t published(void *ud, size_t link, size_t unit)
{
    (void)ud;
    return 100 * link + unit + 1;
}

/* The store the way the engine leaves it: m1 online, dead offline after
 * timeouts, exc degraded by an exception, line2 down. */
static void known_states(struct fx *f)
{
    struct gw_store *s = &f->store;
    gw_store_set_link_connected(s, 0, true);
    s->links[0].c = (struct gw_counters){
        .requests = 50, .errors = 7, .timeouts = 5, .exceptions = 2};
    s->links[0].overruns = 1;
    gw_store_set_unit_status(s, 0, 0, GW_UNIT_ONLINE, 1000);
    s->links[0].units[0].c.requests = 30;
    gw_store_set_unit_status(s, 0, 1, GW_UNIT_OFFLINE, 2000);
    s->links[0].units[1].last_err = GW_ETIMEOUT;
    s->links[0].units[1].c =
        (struct gw_counters){.requests = 10, .errors = 5, .timeouts = 5};
    gw_store_set_unit_status(s, 0, 2, GW_UNIT_DEGRADED, 3000);
    s->links[0].units[2].last_err = GW_EMBEXC;
    s->links[0].units[2].last_exception = 2;
    f->xmpp = (struct gw_status_xmpp){.online = true,
                                      .connects = 3,
                                      .resumes = 1,
                                      .drops = 2,
                                      .dropped_stanzas = 4};
    snprintf(f->xmpp.jid, sizeof(f->xmpp.jid), "gw@example.org/gw");
    f->events = (struct gw_status_events){.published = 1234,
                                          .errors = 5,
                                          .in_flight = 2,
                                          .backlog = 1,
                                          .coalesced = 17,
                                          .suppressed = 40,
                                          .changes = 1300};
    snprintf(f->events.state, sizeof(f->events.state), "warning");
    snprintf(f->events.warning, sizeof(f->events.warning),
             "the gateway account needs \"publisher\" rights\n");
}

static struct gw_status_info info_of(struct fx *f)
{
    return (struct gw_status_info){
        .state = "running",
        .pid = 4242,
        .start_ms = 1700000000000,
        .now_ms = 1700000012345,
        .map_path = "/etc/fieldgate/fieldgate.yaml",
        .cfg = f->cfg,
        .store = &f->store,
        .xmpp = &f->xmpp,
        .events = &f->events,
        .unit_published = published,
    };
}

/* The snapshot as text (malloc'ed), through gw_status_write_json. */
static char *to_text(const struct gw_status_info *in, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    assert_non_null(m);
    assert_int_equal(gw_status_write_json(m, in), GW_OK);
    assert_int_equal(fclose(m), 0);
    *len = n;
    return buf;
}

static const struct gw_status_node *unit_named(const struct gw_status_doc *d,
                                               const char *name)
{
    const struct gw_status_node *units = gw_status_get(d, NULL, "units");
    for (const struct gw_status_node *u = gw_status_child(d, units); u;
         u = gw_status_next(d, u))
        if (strcmp(gw_status_get_str(d, u, "name", ""), name) == 0)
            return u;
    return NULL;
}

static void test_json_fields(void **state)
{
    struct fx *f = *state;
    known_states(f);
    struct gw_status_info in = info_of(f);
    size_t len;
    char *text = to_text(&in, &len);
    assert_int_equal(text[len - 1], '\n');
    struct gw_status_doc d;
    assert_int_equal(gw_status_parse(text, len, &d), GW_OK);

    assert_string_equal(gw_status_get_str(&d, NULL, "version", ""), FG_VERSION);
    assert_string_equal(gw_status_get_str(&d, NULL, "state", ""), "running");
    assert_true(gw_status_get_num(&d, NULL, "pid", 0) == 4242);
    assert_true(gw_status_get_num(&d, NULL, "time_ms", 0) == 1700000012345.0);
    assert_string_equal(gw_status_get_str(&d, NULL, "time", ""),
                        "2023-11-14T22:13:32.345Z");
    assert_string_equal(gw_status_get_str(&d, NULL, "start", ""),
                        "2023-11-14T22:13:20.000Z");
    assert_string_equal(gw_status_get_str(&d, NULL, "map", ""),
                        "/etc/fieldgate/fieldgate.yaml");

    const struct gw_status_node *links = gw_status_get(&d, NULL, "links");
    const struct gw_status_node *l0 = gw_status_child(&d, links);
    const struct gw_status_node *l1 = gw_status_next(&d, l0);
    assert_non_null(l1);
    assert_null(gw_status_next(&d, l1));
    assert_string_equal(gw_status_get_str(&d, l0, "name", ""), "plant");
    assert_true(gw_status_get_bool(&d, l0, "connected", false));
    assert_true(gw_status_get_num(&d, l0, "requests", 0) == 50);
    assert_true(gw_status_get_num(&d, l0, "errors", 0) == 7);
    assert_true(gw_status_get_num(&d, l0, "timeouts", 0) == 5);
    assert_true(gw_status_get_num(&d, l0, "exceptions", 0) == 2);
    assert_true(gw_status_get_num(&d, l0, "overruns", 0) == 1);
    assert_string_equal(gw_status_get_str(&d, l1, "name", ""), "line2");
    assert_false(gw_status_get_bool(&d, l1, "connected", true));

    const struct gw_status_node *u = unit_named(&d, "m1");
    assert_non_null(u);
    assert_string_equal(gw_status_get_str(&d, u, "link", ""), "plant");
    assert_string_equal(gw_status_get_str(&d, u, "status", ""), "online");
    assert_string_equal(gw_status_get_str(&d, u, "last_error", ""), "none");
    assert_true(gw_status_get_num(&d, u, "requests", 0) == 30);
    assert_true(gw_status_get_num(&d, u, "since_ms", 0) == 1000);
    assert_true(gw_status_get_num(&d, u, "events_published", 0) == 1);
    u = unit_named(&d, "dead");
    assert_string_equal(gw_status_get_str(&d, u, "status", ""), "offline");
    assert_string_equal(gw_status_get_str(&d, u, "last_error", ""),
                        gw_strerror(GW_ETIMEOUT));
    assert_true(gw_status_get_num(&d, u, "timeouts", 0) == 5);
    assert_true(gw_status_get_num(&d, u, "events_published", 0) == 2);
    u = unit_named(&d, "exc");
    assert_string_equal(gw_status_get_str(&d, u, "status", ""), "degraded");
    char why[128];
    assert_string_equal(gw_status_get_str(&d, u, "last_error", ""),
                        gw_store_err_text(GW_EMBEXC, 2, why, sizeof(why)));
    assert_non_null(strstr(why, "02"));
    u = unit_named(&d, "m9");
    assert_string_equal(gw_status_get_str(&d, u, "link", ""), "line2");
    assert_string_equal(gw_status_get_str(&d, u, "status", ""), "unknown");
    assert_true(gw_status_get_num(&d, u, "events_published", 0) == 101);
    assert_true(gw_status_get_num(&d, NULL, "units_omitted", -1) == 0);

    const struct gw_status_node *x = gw_status_get(&d, NULL, "xmpp");
    assert_true(gw_status_get_bool(&d, x, "enabled", false));
    assert_true(gw_status_get_bool(&d, x, "online", false));
    assert_string_equal(gw_status_get_str(&d, x, "jid", ""),
                        "gw@example.org/gw");
    assert_true(gw_status_get_num(&d, x, "connects", 0) == 3);
    assert_true(gw_status_get_num(&d, x, "resumes", 0) == 1);
    assert_true(gw_status_get_num(&d, x, "drops", 0) == 2);
    assert_true(gw_status_get_num(&d, x, "dropped_stanzas", 0) == 4);

    const struct gw_status_node *e = gw_status_get(&d, NULL, "events");
    assert_true(gw_status_get_bool(&d, e, "enabled", false));
    assert_string_equal(gw_status_get_str(&d, e, "mode", ""), "pep");
    assert_string_equal(gw_status_get_str(&d, e, "state", ""), "warning");
    /* Quotes and a newline survive the round trip. */
    assert_string_equal(gw_status_get_str(&d, e, "warning", ""),
                        "the gateway account needs \"publisher\" rights\n");
    assert_true(gw_status_get_num(&d, e, "published", 0) == 1234);
    assert_true(gw_status_get_num(&d, e, "errors", 0) == 5);
    assert_true(gw_status_get_num(&d, e, "in_flight", 0) == 2);
    assert_true(gw_status_get_num(&d, e, "backlog", 0) == 1);
    assert_true(gw_status_get_num(&d, e, "coalesced", 0) == 17);
    assert_true(gw_status_get_num(&d, e, "suppressed", 0) == 40);
    assert_true(gw_status_get_num(&d, e, "changes", 0) == 1300);
    gw_status_doc_free(&d);
}

/* Without an xmpp: or events: section, and during a reload (no store). */
static void test_json_sections_off(void **state)
{
    struct fx *f = *state;
    struct gw_status_info in = info_of(f);
    in.xmpp = NULL;
    in.events = NULL;
    in.store = NULL;
    in.state = "reloading";
    size_t len;
    char *text = to_text(&in, &len);
    struct gw_status_doc d;
    assert_int_equal(gw_status_parse(text, len, &d), GW_OK);
    assert_string_equal(gw_status_get_str(&d, NULL, "state", ""), "reloading");
    assert_null(gw_status_child(&d, gw_status_get(&d, NULL, "links")));
    assert_null(gw_status_child(&d, gw_status_get(&d, NULL, "units")));
    const struct gw_status_node *x = gw_status_get(&d, NULL, "xmpp");
    assert_false(gw_status_get_bool(&d, x, "enabled", true));
    assert_null(gw_status_get(&d, x, "online"));
    const struct gw_status_node *e = gw_status_get(&d, NULL, "events");
    assert_false(gw_status_get_bool(&d, e, "enabled", true));
    assert_null(gw_status_get(&d, e, "published"));
    gw_status_doc_free(&d);
}

static int count_entries(const char *dir)
{
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dh)))
        if (de->d_name[0] != '.')
            n++;
    closedir(dh);
    return n;
}

static void load_file(const char *path, struct gw_status_doc *d)
{
    char *text;
    size_t len;
    int err;
    assert_int_equal(gw_status_read_file(path, &text, &len, &err), GW_OK);
    assert_int_equal(gw_status_parse(text, len, d), GW_OK);
}

static void test_file_atomic(void **state)
{
    struct fx *f = *state;
    known_states(f);
    char path[128];
    snprintf(path, sizeof(path), "%s/status.json", f->dir);
    struct gw_status_info in = info_of(f);
    int err = -1;
    mode_t old_umask = umask(077);
    assert_int_equal(gw_status_write_file(path, &in, &err), GW_OK);
    assert_int_equal(err, 0);
    struct stat st1;
    assert_int_equal(stat(path, &st1), 0);
    /* Readable by the group whatever the umask. */
    assert_int_equal(st1.st_mode & 0777, GW_STATUS_FILE_MODE);
    assert_int_equal(count_entries(f->dir), 1);

    /* A reader holding the old file keeps reading the old snapshot: the
     * new one is another inode renamed over it, never rewritten in place. */
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    in.state = "stopping";
    in.now_ms += 2000;
    gw_status_write_file(path, &in, &err);
    struct stat st2;
    assert_int_equal(stat(path, &st2), 0);
    assert_true(st1.st_ino != st2.st_ino);
    char old[4096];
    ssize_t n = read(fd, old, sizeof(old) - 1);
    close(fd);
    assert_true(n > 0);
    old[n] = '\0';
    assert_non_null(strstr(old, "\"state\":\"running\""));
    assert_int_equal(count_entries(f->dir), 1);
    struct gw_status_doc d;
    load_file(path, &d);
    assert_string_equal(gw_status_get_str(&d, NULL, "state", ""), "stopping");
    gw_status_doc_free(&d);

    /* A directory that does not exist: an error, nothing left behind. */
    char bad[160];
    snprintf(bad, sizeof(bad), "%s/nope/status.json", f->dir);
    assert_int_equal(gw_status_write_file(bad, &in, &err), GW_ESYS);
    assert_int_equal(err, ENOENT);
    /* The target is a directory: rename fails, the temporary file goes. */
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/sub", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(gw_status_write_file(sub, &in, &err), GW_ESYS);
    assert_int_equal(count_entries(f->dir), 2);
    umask(old_umask);

    char *text;
    size_t len;
    snprintf(bad, sizeof(bad), "%s/missing.json", f->dir);
    assert_int_equal(gw_status_read_file(bad, &text, &len, &err), GW_ENOTFOUND);
}

/* More units than GW_STATUS_MAX_UNITS: the rest are counted. */
static void test_units_bounded(void **state)
{
    (void)state;
    size_t cap = 256 * 1024, n = 0;
    char *map = malloc(cap);
    assert_non_null(map);
    n += (size_t)snprintf(map + n, cap - n, "links:\n");
    size_t total = 0;
    for (int l = 0; l < 5; l++) {
        n += (size_t)snprintf(map + n, cap - n,
                              "  - name: l%d\n    type: tcp\n    host: "
                              "127.0.0.1\n    port: %d\n    units:\n",
                              l, 1500 + l);
        for (int u = 1; u <= 210; u++, total++)
            n += (size_t)snprintf(map + n, cap - n,
                                  "      - name: u%d_%d\n        id: %d\n"
                                  "        points:\n          - {name: a, "
                                  "table: holding, address: 0, type: "
                                  "uint16}\n",
                                  l, u, u);
    }
    assert_true(n < cap);
    struct fx f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(load(&f, map), 0);
    free(map);
    struct gw_status_info in = info_of(&f);
    size_t len;
    char *text = to_text(&in, &len);
    assert_true(len < GW_STATUS_MAX_BYTES);
    struct gw_status_doc d;
    assert_int_equal(gw_status_parse(text, len, &d), GW_OK);
    size_t listed = 0;
    for (const struct gw_status_node *u =
             gw_status_child(&d, gw_status_get(&d, NULL, "units"));
         u; u = gw_status_next(&d, u))
        listed++;
    assert_int_equal(listed, GW_STATUS_MAX_UNITS);
    assert_true(gw_status_get_num(&d, NULL, "units_omitted", 0) ==
                (double)(total - GW_STATUS_MAX_UNITS));
    gw_status_doc_free(&d);
    teardown((void **)&(struct fx *){&f});
}

static int parse_str(const char *s, struct gw_status_doc *d)
{
    size_t len = strlen(s);
    char *t = malloc(len + 1);
    assert_non_null(t);
    memcpy(t, s, len + 1);
    return gw_status_parse(t, len, d);
}

static void test_parse(void **state)
{
    (void)state;
    struct gw_status_doc d;
    assert_int_equal(
        parse_str(" {\"a\" : \"x\\u00e9\\n\\\"\\/\\ud83d\\ude00\", \"n\": "
                  "-12.5e1, \"z\": 0, \"t\": true, \"f\": false, "
                  "\"nul\": null, \"arr\": [1, [], {}], \"e\": \"\"}\n",
                  &d),
        GW_OK);
    assert_string_equal(gw_status_get_str(&d, NULL, "a", ""),
                        "x\xc3\xa9\n\"/\xf0\x9f\x98\x80");
    assert_true(gw_status_get_num(&d, NULL, "n", 0) == -125.0);
    assert_true(gw_status_get_num(&d, NULL, "z", 1) == 0);
    assert_true(gw_status_get_bool(&d, NULL, "t", false));
    assert_false(gw_status_get_bool(&d, NULL, "f", true));
    assert_int_equal(gw_status_get(&d, NULL, "nul")->type, GW_STATUS_NULL);
    assert_string_equal(gw_status_get_str(&d, NULL, "e", "?"), "");
    /* A member of another type gives the default. */
    assert_string_equal(gw_status_get_str(&d, NULL, "n", "def"), "def");
    assert_null(gw_status_get(&d, NULL, "missing"));
    const struct gw_status_node *arr = gw_status_get(&d, NULL, "arr");
    const struct gw_status_node *e = gw_status_child(&d, arr);
    assert_true(e->type == GW_STATUS_NUMBER && e->num == 1);
    e = gw_status_next(&d, e);
    assert_true(e->type == GW_STATUS_ARRAY && !gw_status_child(&d, e));
    e = gw_status_next(&d, e);
    assert_true(e->type == GW_STATUS_OBJECT && !gw_status_next(&d, e));
    gw_status_doc_free(&d);

    static const char *const bad[] = {
        "",
        "{",
        "{\"a\":}",
        "{\"a\" 1}",
        "{a:1}",
        "[1,]",
        "[1 2]",
        "{} x",
        "\"\\x\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\u0000\"",
        "\"a\nb\"",
        "01",
        "1.",
        "-",
        "1e",
        "tru",
        "nulls",
        "\"abc",
        "[\"\\u12\"]",
        "{\"a\":1,}",
        "\"\\ud800\\u0041\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_str(bad[i], &d);
        if (rc != GW_EPARSE)
            fail_msg("'%s': %d", bad[i], rc);
        gw_status_doc_free(&d);
    }
    /* A NUL inside the text. */
    char *t = malloc(4);
    memcpy(t, "[1\0]", 4);
    assert_int_equal(gw_status_parse(t, 4, &d), GW_EPARSE);
    gw_status_doc_free(&d);
    /* Nesting is bounded. */
    char deep[2 * (GW_STATUS_MAX_DEPTH + 1) + 1];
    memset(deep, '[', GW_STATUS_MAX_DEPTH + 1);
    memset(deep + GW_STATUS_MAX_DEPTH + 1, ']', GW_STATUS_MAX_DEPTH + 1);
    deep[sizeof(deep) - 1] = '\0';
    assert_int_equal(parse_str(deep, &d), GW_ELIMIT);
    gw_status_doc_free(&d);
    deep[GW_STATUS_MAX_DEPTH] = ' ';
    deep[GW_STATUS_MAX_DEPTH + 1] = ' ';
    assert_int_equal(parse_str(deep, &d), GW_OK);
    gw_status_doc_free(&d);
}

static void test_default_path(void **state)
{
    (void)state;
    char buf[64];
    unsetenv("RUNTIME_DIRECTORY");
    assert_int_equal(gw_status_default_path(NULL, buf, sizeof(buf)),
                     GW_ENOTFOUND);
    assert_int_equal(gw_status_default_path("/run/fg", buf, sizeof(buf)),
                     GW_OK);
    assert_string_equal(buf, "/run/fg/status.json");
    setenv("RUNTIME_DIRECTORY", "/run/fieldgate:/run/other", 1);
    assert_int_equal(gw_status_default_path(NULL, buf, sizeof(buf)), GW_OK);
    assert_string_equal(buf, "/run/fieldgate/status.json");
    assert_int_equal(gw_status_default_path(NULL, buf, 10), GW_ELIMIT);
    unsetenv("RUNTIME_DIRECTORY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_sections_off, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_atomic, setup, teardown),
        cmocka_unit_test(test_units_bounded),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_default_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
