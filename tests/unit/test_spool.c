/* test_spool.c - the on-disk spool (gateway/gw_spool): real files in a
 * mkdtemp directory and a real uv loop.  Order across units, ack and
 * rewind, the cursor and sequence numbers across reopen, segment rollover
 * and deletion, the byte and age bounds with their gap records, torn and
 * corrupt records at open, unusable directories, a full disk (RLIMIT_FSIZE)
 * and recovery, fsync progress, CRC32C. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "gw_err.h"
#include "gw_log.h"
#include "gw_spool.h"

struct fx {
    uv_loop_t loop;
    char dir[64];
    struct gw_log log;
    FILE *logf;
    struct gw_spool *sp;
    bool closed;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/fg-spool-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    gw_log_init(&f->log);
    f->log.level = GW_LOG_DEBUG;
    f->logf = tmpfile();
    assert_non_null(f->logf);
    f->log.out = f->logf;
    f->log.journal = false;
    *state = f;
    return 0;
}

static void on_closed(void *ud)
{
    struct fx *f = ud;
    f->closed = true;
}

static void close_spool(struct fx *f)
{
    if (!f->sp)
        return;
    f->closed = false;
    gw_spool_close(f->sp, on_closed, f);
    f->sp = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    close_spool(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    fclose(f->logf);
    free(f);
    return 0;
}

static void open_spool(struct fx *f, const struct gw_spool_opts *o)
{
    struct gw_spool_opts d = {.dir = f->dir};
    if (!o)
        o = &d;
    assert_int_equal(gw_spool_open(&f->loop, o, &f->log, &f->sp), 0);
}

/* The number of log lines containing s. */
static int log_count(struct fx *f, const char *s)
{
    fflush(f->logf);
    rewind(f->logf);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f->logf))
        if (strstr(line, s))
            n++;
    fseek(f->logf, 0, SEEK_END);
    return n;
}

static int count_segments(struct fx *f)
{
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "seg-", 4))
            n++;
    closedir(d);
    return n;
}

/* The path of the only (or the last) segment. */
static void last_segment(struct fx *f, char *out, size_t cap)
{
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    struct dirent *de;
    char best[300] = "";
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "seg-", 4) && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", de->d_name);
    closedir(d);
    assert_true(best[0]);
    snprintf(out, cap, "%s/%s", f->dir, best);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void append(struct fx *f, const char *unit, int64_t ts, size_t len,
                   uint64_t want_seq)
{
    uint8_t buf[1024];
    assert_true(len <= sizeof(buf));
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(ts + (int64_t)i);
    uint64_t seq = 0;
    assert_int_equal(gw_spool_append(f->sp, unit, ts, buf, len, &seq), 0);
    if (want_seq)
        assert_int_equal(seq, want_seq);
}

/* Reads the next record and checks it is a sample of unit/seq/ts whose
 * payload append() made. */
static uint64_t expect(struct fx *f, const char *unit, uint64_t seq, int64_t ts)
{
    struct gw_spool_rec r;
    assert_true(gw_spool_next(f->sp, &r));
    assert_int_equal(r.kind, GW_SPOOL_SAMPLE);
    assert_string_equal(r.unit, unit);
    assert_int_equal(r.seq, seq);
    assert_int_equal(r.ts_ms, ts);
    for (size_t i = 0; i < r.len; i++)
        assert_int_equal(r.payload[i], (uint8_t)(ts + (int64_t)i));
    return r.pos;
}

static void run_for(struct fx *f, uint64_t ms)
{
    uint64_t end = uv_hrtime() / 1000000u + ms;
    while (uv_hrtime() / 1000000u < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- tests ---- */

static void test_crc32c(void **state)
{
    (void)state;
    assert_int_equal(gw_crc32c(0, "123456789", 9), 0xE3069283u);
    /* continuing a CRC is the CRC of the concatenation */
    assert_int_equal(gw_crc32c(gw_crc32c(0, "1234", 4), "56789", 5),
                     0xE3069283u);
    assert_int_equal(gw_crc32c(0, "", 0), 0);
}

static void test_codec(void **state)
{
    (void)state;
    static uint8_t buf[GW_SPOOL_REC_MAX];
    char unit[GW_SPOOL_UNIT_MAX + 1];
    struct gw_spool_rec in = {.kind = GW_SPOOL_GAP,
                              .unit = "m1",
                              .seq = 7,
                              .ts_ms = 20,
                              .gap_from_ms = 10,
                              .gap_to_ms = 20,
                              .gap_count = 3},
                        out;
    size_t n = gw_spool_encode(buf, &in), rl;
    assert_int_equal(n, GW_SPOOL_HDR + 2 + 40);
    assert_int_equal(gw_spool_decode(buf, n, unit, &out, &rl), 0);
    assert_int_equal(rl, n);
    assert_string_equal(out.unit, "m1");
    assert_int_equal(out.kind, GW_SPOOL_GAP);
    assert_int_equal(out.gap_count, 3);
    assert_int_equal(out.gap_from_ms, 10);
    assert_int_equal(out.gap_to_ms, 20);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(gw_spool_decode(buf, k, unit, &out, &rl), GW_EAGAIN);
    for (size_t k = 0; k < n; k++) { /* every single bit flip is caught */
        for (int b = 0; b < 8; b++) {
            buf[k] ^= (uint8_t)(1u << b);
            int rc = gw_spool_decode(buf, n, unit, &out, &rl);
            assert_true(rc == GW_EPARSE || rc == GW_EAGAIN);
            buf[k] ^= (uint8_t)(1u << b);
        }
    }
    in.kind = GW_SPOOL_SAMPLE;
    in.payload = (const uint8_t *)"abc";
    in.len = GW_SPOOL_PAYLOAD_MAX + 1;
    assert_int_equal(gw_spool_encode(buf, &in), 0);
    in.unit = "";
    in.len = 3;
    assert_int_equal(gw_spool_encode(buf, &in), 0);
}

static void test_order_ack_rewind(void **state)
{
    struct fx *f = *state;
    open_spool(f, NULL);
    append(f, "m1", 100, 10, 1);
    append(f, "m2", 101, 20, 1);
    append(f, "m1", 102, 30, 2);
    append(f, "m2", 103, 0, 2);
    append(f, "m1", 104, 500, 3);
    uint64_t p[5];
    p[0] = expect(f, "m1", 1, 100);
    p[1] = expect(f, "m2", 1, 101);
    p[2] = expect(f, "m1", 2, 102);
    p[3] = expect(f, "m2", 2, 103);
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.oldest_ms, 100);
    /* out of order: m2's answers first */
    gw_spool_ack(f->sp, p[1]);
    gw_spool_ack(f->sp, p[3]);
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.cursor, p[0]); /* the front did not move */
    gw_spool_ack(f->sp, p[0]);
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.cursor, p[2]);
    assert_int_equal(st.oldest_ms, 102);
    /* a disconnect: everything unacked again, oldest first */
    gw_spool_rewind(f->sp);
    assert_true(gw_spool_has_next(f->sp));
    assert_int_equal(expect(f, "m1", 2, 102), p[2]);
    p[4] = expect(f, "m1", 3, 104);
    struct gw_spool_rec r;
    assert_false(gw_spool_next(f->sp, &r));
    assert_false(gw_spool_has_next(f->sp));
    gw_spool_ack(f->sp, p[4]);
    gw_spool_ack(f->sp, p[4]);  /* twice: harmless */
    gw_spool_ack(f->sp, 12345); /* unknown: harmless */
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.appended, 5);
    assert_int_equal(gw_spool_append(f->sp, "", 1, "x", 1, NULL), GW_EINVAL);
    static uint8_t big[GW_SPOOL_PAYLOAD_MAX + 1];
    assert_int_equal(gw_spool_append(f->sp, "m1", 1, big, sizeof(big), NULL),
                     GW_ELIMIT);
}

static void test_cursor_and_seq_across_reopen(void **state)
{
    struct fx *f = *state;
    open_spool(f, NULL);
    uint64_t p[4];
    for (int i = 0; i < 4; i++)
        append(f, "m1", 10 + i, 40, (uint64_t)i + 1);
    for (int i = 0; i < 4; i++)
        p[i] = expect(f, "m1", (uint64_t)i + 1, 10 + i);
    gw_spool_ack(f->sp, p[0]);
    gw_spool_ack(f->sp, p[1]);
    gw_spool_ack(f->sp, p[3]); /* not at the front: sent again */
    close_spool(f);

    open_spool(f, NULL);
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.cursor, p[2]);
    assert_int_equal(expect(f, "m1", 3, 12), p[2]);
    assert_int_equal(expect(f, "m1", 4, 13), p[3]);
    append(f, "m1", 14, 5, 5); /* the sequence goes on */
    append(f, "m9", 15, 5, 1);
    close_spool(f);
    open_spool(f, NULL);
    append(f, "m1", 16, 5, 6);
    append(f, "m9", 17, 5, 2);
}

/* A unit whose records all left the disk keeps its sequence (the cursor
 * file carries every unit's last number). */
static void test_seq_never_reused(void **state)
{
    struct fx *f = *state;
    struct gw_spool_opts o = {.dir = f->dir, .segment_bytes = 4096};
    open_spool(f, &o);
    for (uint64_t i = 1; i <= 20; i++)
        append(f, "gone", (int64_t)i, 500, i);
    for (uint64_t i = 1; i <= 20; i++)
        append(f, "other", (int64_t)i, 500, i);
    struct gw_spool_rec r;
    while (gw_spool_next(f->sp, &r))
        gw_spool_ack(f->sp, r.pos);
    run_for(f, 250); /* the cursor is written, then acked segments go */
    assert_true(count_segments(f) <= 2);
    close_spool(f);
    /* no record of "gone" is left on disk */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "grep -q gone %s/seg-*", f->dir);
    assert_int_not_equal(system(cmd), 0);
    open_spool(f, &o);
    append(f, "gone", 100, 5, 21);
    close_spool(f);
    open_spool(f, &o);
    append(f, "gone", 101, 5, 22);
}

static void test_rollover_and_delete(void **state)
{
    struct fx *f = *state;
    struct gw_spool_opts o = {.dir = f->dir, .segment_bytes = 4096};
    open_spool(f, &o);
    for (uint64_t i = 1; i <= 40; i++)
        append(f, "m1", (int64_t)i, 500, i);
    int segs = count_segments(f);
    assert_true(segs >= 5); /* ~540 bytes a record, 7 a segment */
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.segments, (uint64_t)segs);
    /* positions are global: records of every segment come back in order,
     * and acks across segments work */
    uint64_t pos[40];
    for (uint64_t i = 1; i <= 40; i++)
        pos[i - 1] = expect(f, "m1", i, (int64_t)i);
    for (int i = 0; i < 20; i++)
        gw_spool_ack(f->sp, pos[i]);
    run_for(f, 250);
    int after = count_segments(f);
    assert_true(after < segs);
    assert_true(after >= 3);
    /* unacked records are still all there after a reopen */
    close_spool(f);
    open_spool(f, &o);
    for (uint64_t i = 21; i <= 40; i++)
        assert_int_equal(expect(f, "m1", i, (int64_t)i), pos[i - 1]);
    for (int i = 20; i < 40; i++)
        gw_spool_ack(f->sp, pos[i]);
    run_for(f, 250);
    assert_int_equal(count_segments(f), 1); /* the last one stays */
}

/* Reads everything and checks units "a" and "b": the samples seen plus the
 * gaps' counts are all that was appended, each gap's range covers exactly
 * missing samples, the gap comes before the samples after it. */
static void check_gaps(struct fx *f, int n, int64_t ts0)
{
    const char *units[2] = {"a", "b"};
    bool seen[2][256] = {{false}};
    uint64_t gap_total[2] = {0}, gaps = 0;
    int64_t gfrom[2] = {INT64_MAX, INT64_MAX}, gto[2] = {INT64_MIN, INT64_MIN};
    uint64_t last_seq[2] = {0};
    struct gw_spool_rec r;
    while (gw_spool_next(f->sp, &r)) {
        int u = !strcmp(r.unit, "b");
        assert_string_equal(r.unit, units[u]);
        assert_true(r.seq > last_seq[u]); /* per-unit order */
        last_seq[u] = r.seq;
        if (r.kind == GW_SPOOL_GAP) {
            gaps++;
            gap_total[u] += r.gap_count;
            assert_true(r.gap_from_ms <= r.gap_to_ms);
            assert_int_equal(r.ts_ms, r.gap_to_ms);
            /* nothing of its range was seen before */
            for (int64_t t = r.gap_from_ms; t <= r.gap_to_ms; t++)
                assert_false(seen[u][t - ts0]);
            if (r.gap_from_ms < gfrom[u])
                gfrom[u] = r.gap_from_ms;
            if (r.gap_to_ms > gto[u])
                gto[u] = r.gap_to_ms;
        } else {
            assert_true(r.ts_ms > gto[u]); /* after its unit's gaps */
            seen[u][r.ts_ms - ts0] = true;
        }
    }
    assert_true(gaps > 0);
    for (int u = 0; u < 2; u++) {
        uint64_t missing = 0;
        int64_t mfrom = INT64_MAX, mto = INT64_MIN;
        for (int i = 0; i < n; i++) {
            if ((i % 2) != u || seen[u][i])
                continue;
            missing++;
            if (ts0 + i < mfrom)
                mfrom = ts0 + i;
            mto = ts0 + i;
        }
        assert_int_equal(gap_total[u], missing);
        assert_true(missing > 0);
        assert_int_equal(gfrom[u], mfrom);
        assert_int_equal(gto[u], mto);
    }
}

static void test_max_bytes_gaps(void **state)
{
    struct fx *f = *state;
    struct gw_spool_opts o = {
        .dir = f->dir, .max_bytes = 16384, .segment_bytes = 4096};
    open_spool(f, &o);
    int n = 120;
    for (int i = 0; i < n; i++)
        append(f, i % 2 ? "b" : "a", 1000 + i, 400, 0);
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    assert_true(st.live_bytes <= 16384); /* the bound: unacknowledged */
    run_for(f, 250); /* segments of dropped records go with the cursor */
    gw_spool_get_stats(f->sp, &st);
    assert_true(st.bytes <= 16384 + 2 * 4096); /* + dead bytes to reap */
    assert_true(st.dropped > 0);
    assert_true(st.dropped < (uint64_t)n);
    assert_int_equal(st.appended, (uint64_t)n);
    check_gaps(f, n, 1000);
    /* the same after a reopen (gaps are records like the others) */
    close_spool(f);
    open_spool(f, &o);
    check_gaps(f, n, 1000);
}

/* The bound tests below: units "a" (even i) and "b" (odd i), sample i at
 * ts 1000 + i with a 400-byte payload (~430 bytes a record). */
enum { BT_N = 512 };
struct bt {
    uint8_t state[BT_N]; /* 0 not seen, 1 delivered (acked), 2 read back */
    uint64_t pos[BT_N];
    int n;
};

static void bt_append(struct fx *f, struct bt *b, int count)
{
    for (int k = 0; k < count; k++, b->n++) {
        assert_true(b->n < BT_N);
        append(f, b->n % 2 ? "b" : "a", 1000 + b->n, 400, 0);
    }
}

/* Hands out the next record, which must be sample i; returns its pos. */
static uint64_t bt_next(struct fx *f, struct bt *b, int i)
{
    struct gw_spool_rec r;
    assert_true(gw_spool_next(f->sp, &r));
    assert_int_equal(r.kind, GW_SPOOL_SAMPLE);
    assert_int_equal(r.ts_ms, 1000 + i);
    b->pos[i] = r.pos;
    return r.pos;
}

/* Reads everything from the oldest unacknowledged record (a rewind) and
 * checks per unit: delivered + read back + the gaps' counts = appended,
 * each exactly once; no gap's range holds a delivered or read-back sample;
 * the gap records of each unit (returned in ngaps) come in seq order. */
static void bt_check(struct fx *f, struct bt *b, int ngaps[2])
{
    uint8_t st[BT_N];
    memcpy(st, b->state, sizeof(st));
    uint64_t counted[2] = {0};
    int64_t from[2][16], to[2][16];
    ngaps[0] = ngaps[1] = 0;
    struct gw_spool_rec r;
    gw_spool_rewind(f->sp);
    while (gw_spool_next(f->sp, &r)) {
        int u = !strcmp(r.unit, "b");
        if (r.kind == GW_SPOOL_GAP) {
            assert_true(ngaps[u] < 16);
            from[u][ngaps[u]] = r.gap_from_ms;
            to[u][ngaps[u]] = r.gap_to_ms;
            ngaps[u]++;
            counted[u] += r.gap_count;
            continue;
        }
        int i = (int)(r.ts_ms - 1000);
        assert_true(i >= 0 && i < b->n);
        assert_int_equal(st[i], 0); /* not delivered, not read twice */
        st[i] = 2;
    }
    for (int u = 0; u < 2; u++) {
        uint64_t missing = 0;
        for (int i = u; i < b->n; i += 2)
            missing += st[i] == 0;
        assert_int_equal(counted[u], missing);
        for (int g = 0; g < ngaps[u]; g++) {
            for (int i = u; i < b->n; i += 2) {
                int64_t ts = 1000 + i;
                if (ts >= from[u][g] && ts <= to[u][g])
                    assert_int_equal(st[i], 0); /* only lost samples */
            }
        }
    }
}

/* A bound drop with acknowledged, in-flight and unsent records: the gap
 * counts exactly the samples lost, its range holds no sample delivered
 * (the in-flight ones are acknowledged after the drop), one gap record
 * per unit; the same after a reopen (the dropped records do not come
 * back). */
static void test_bound_gap_exact_mixed(void **state)
{
    struct fx *f = *state;
    struct gw_spool_opts o = {
        .dir = f->dir, .max_bytes = 16384, .segment_bytes = 4096};
    open_spool(f, &o);
    struct bt b = {.n = 0};
    bt_append(f, &b, 20);
    for (int i = 0; i < 10; i++)
        bt_next(f, &b, i);
    for (int i = 0; i < 4; i++) { /* 0..3 delivered, 4..9 in flight */
        gw_spool_ack(f->sp, b.pos[i]);
        b.state[i] = 1;
    }
    bt_append(f, &b, 60); /* the outage: far past the bound */
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    assert_true(st.dropped > 0);
    assert_true(st.live_bytes <= 16384);
    /* the answers for the records in flight arrive after the drop */
    for (int i = 4; i < 10; i++) {
        gw_spool_ack(f->sp, b.pos[i]);
        b.state[i] = 1;
    }
    int ngaps[2];
    bt_check(f, &b, ngaps);
    assert_int_equal(ngaps[0], 1);
    assert_int_equal(ngaps[1], 1);
    uint64_t dropped = st.dropped;
    close_spool(f);
    open_spool(f, &o);
    bt_check(f, &b, ngaps);
    assert_int_equal(ngaps[0], 1);
    assert_int_equal(ngaps[1], 1);
    gw_spool_get_stats(f->sp, &st);
    assert_true(st.records <= 40);
    (void)dropped;
}

/* A long outage (many drops, many segments): still one gap record per
 * unit, exact counts; a gap record handed out is never replaced, the next
 * drop starts a new one whose range follows it. */
static void test_bound_one_gap_per_episode(void **state)
{
    struct fx *f = *state;
    struct gw_spool_opts o = {
        .dir = f->dir, .max_bytes = 16384, .segment_bytes = 4096};
    open_spool(f, &o);
    struct bt b = {.n = 0};
    bt_append(f, &b, 150);
    int ngaps[2];
    bt_check(f, &b, ngaps); /* hands everything out (a rewind) */
    assert_int_equal(ngaps[0], 1);
    assert_int_equal(ngaps[1], 1);
    /* the gap records were sent: a further outage gets new ones */
    gw_spool_rewind(f->sp);
    bt_append(f, &b, 60);
    bt_check(f, &b, ngaps);
    assert_true(ngaps[0] >= 1 && ngaps[0] <= 2);
    assert_true(ngaps[1] >= 1 && ngaps[1] <= 2);
}

/* max_bytes bounds the unacknowledged data: a publisher that keeps up
 * never loses a sample however much passed through, and acknowledged
 * bytes still in a segment never cause a drop. */
static void test_bound_counts_unsent(void **state)
{
    struct fx *f = *state;
    struct gw_spool_opts o = {
        .dir = f->dir, .max_bytes = 16384, .segment_bytes = 4096};
    open_spool(f, &o);
    struct bt b = {.n = 0};
    for (int i = 0; i < 200; i++) { /* 86 KB through a 16 KB bound */
        bt_append(f, &b, 1);
        gw_spool_ack(f->sp, bt_next(f, &b, i));
    }
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.live_bytes, 0);
    /* now an outage: 37 records (15.9 KB) fit, whatever acknowledged
     * bytes are still on disk */
    bt_append(f, &b, 37);
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.records, 37);
    /* acknowledged segments go once the cursor is on disk */
    run_for(f, 250);
    gw_spool_get_stats(f->sp, &st);
    assert_true(st.bytes <= 16384 + 4096);
    /* and a long outage keeps the files near the bound */
    bt_append(f, &b, 25);
    run_for(f, 250);
    gw_spool_get_stats(f->sp, &st);
    assert_true(st.dropped > 0);
    assert_true(st.live_bytes <= 16384);
    assert_true(st.bytes <= 16384 + 2 * 4096);
}

static void test_max_age_gaps(void **state)
{
    struct fx *f = *state;
    struct gw_spool_opts o = {.dir = f->dir, .max_age_ms = 60000};
    open_spool(f, &o);
    int64_t old = now_ms() - 3600 * 1000;
    int n = 10;
    for (int i = 0; i < n; i++)
        append(f, i % 2 ? "b" : "a", old + i, 50, 0);
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.dropped, (uint64_t)n - 1); /* all but the last */
    int64_t fresh = now_ms();
    append(f, "a", fresh, 50, 0);
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.dropped, (uint64_t)n);
    struct gw_spool_rec r;
    uint64_t count[2] = {0};
    int samples = 0;
    while (gw_spool_next(f->sp, &r)) {
        int u = !strcmp(r.unit, "b");
        if (r.kind == GW_SPOOL_GAP) {
            count[u] += r.gap_count;
            assert_true(r.gap_from_ms >= old && r.gap_to_ms <= old + n - 1);
        } else {
            samples++;
            assert_int_equal(r.ts_ms, fresh);
        }
    }
    assert_int_equal(samples, 1);
    assert_int_equal(count[0], 5);
    assert_int_equal(count[1], 5);
    /* gaps are exempt from the age bound: one more append keeps them */
    gw_spool_get_stats(f->sp, &st);
    uint64_t live = st.records;
    append(f, "a", now_ms(), 50, 0);
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.records, live + 1);
}

/* Five records, closed; returns the file and the record boundaries. */
static void five_records(struct fx *f, char *path, size_t cap, off_t *ends)
{
    open_spool(f, NULL);
    for (int i = 0; i < 5; i++) {
        append(f, "m1", 10 + i, 100 + (size_t)i, (uint64_t)i + 1);
        struct gw_spool_stats st;
        gw_spool_get_stats(f->sp, &st);
        ends[i] = (off_t)st.bytes;
    }
    close_spool(f);
    last_segment(f, path, cap);
    assert_int_equal(file_size(path), ends[4]);
}

static void torn_at(struct fx *f, off_t cut)
{
    char path[512];
    off_t ends[5];
    five_records(f, path, sizeof(path), ends);
    assert_int_equal(truncate(path, ends[3] + cut), 0);
    int before = log_count(f, "torn record");
    open_spool(f, NULL);
    assert_int_equal(log_count(f, "torn record"), before + 1);
    assert_int_equal(log_count(f, "offset " /* names the offset */), 1);
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.torn, 1);
    assert_int_equal(file_size(path), ends[3]);
    for (int i = 0; i < 4; i++)
        expect(f, "m1", (uint64_t)i + 1, 10 + i);
    struct gw_spool_rec r;
    assert_false(gw_spool_next(f->sp, &r));
    append(f, "m1", 20, 10, 5); /* seq 5 was lost: it is free again */
    close_spool(f);
    /* the second open finds nothing torn */
    open_spool(f, NULL);
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.torn, 0);
    assert_int_equal(log_count(f, "torn record"), before + 1);
    for (int i = 0; i < 4; i++)
        expect(f, "m1", (uint64_t)i + 1, 10 + i);
    expect(f, "m1", 5, 20);
}

static void test_torn_mid_record(void **state)
{
    torn_at(*state, 50);
}

static void test_torn_mid_header(void **state)
{
    torn_at(*state, 5);
}

static void test_torn_bad_crc_last(void **state)
{
    struct fx *f = *state;
    char path[512];
    off_t ends[5];
    five_records(f, path, sizeof(path), ends);
    /* whole length, bad CRC (a torn page in the middle of the record) */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t z = 0x5a;
    assert_int_equal(pwrite(fd, &z, 1, ends[3] + 40), 1);
    close(fd);
    open_spool(f, NULL);
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.torn, 1);
    assert_int_equal(st.records, 4);
    assert_int_equal(file_size(path), ends[3]);
}

/* Corruption in the middle: the rule is resync, the damaged record is
 * skipped (logged, counted), the valid records after it are kept. */
static void test_mid_corruption(void **state)
{
    struct fx *f = *state;
    char path[512];
    off_t ends[5];
    five_records(f, path, sizeof(path), ends);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t z = 0xff;
    assert_int_equal(pwrite(fd, &z, 1, ends[0] + 30), 1); /* record 2 */
    close(fd);
    open_spool(f, NULL);
    assert_int_equal(log_count(f, "corrupt byte"), 1);
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.torn, 0);
    assert_int_equal(st.corrupt, (uint64_t)(ends[1] - ends[0]));
    assert_int_equal(file_size(path), ends[4]); /* nothing truncated */
    expect(f, "m1", 1, 10);
    expect(f, "m1", 3, 12);
    expect(f, "m1", 4, 13);
    expect(f, "m1", 5, 14);
    struct gw_spool_rec r;
    assert_false(gw_spool_next(f->sp, &r));
    append(f, "m1", 30, 10, 6);
}

static void test_unusable_dir(void **state)
{
    struct fx *f = *state;
    struct gw_spool *sp = NULL;
    char file[128];
    snprintf(file, sizeof(file), "%s/plainfile", f->dir);
    FILE *pf = fopen(file, "w");
    assert_non_null(pf);
    fclose(pf);
    /* a file where the directory is expected, also below it; /proc refuses
     * root too */
    const char *bad[3];
    char below[160];
    snprintf(below, sizeof(below), "%s/sub", file);
    bad[0] = file;
    bad[1] = below;
    bad[2] = "/proc/fieldgate-spool-test";
    for (int i = 0; i < 3; i++) {
        struct gw_spool_opts o = {.dir = bad[i]};
        int before = log_count(f, bad[i]);
        assert_int_equal(gw_spool_open(&f->loop, &o, &f->log, &sp), GW_EIO);
        assert_null(sp);
        assert_int_equal(log_count(f, bad[i]), before + 1);
    }
    struct gw_spool_opts o = {.dir = ""};
    assert_int_equal(gw_spool_open(&f->loop, &o, &f->log, &sp), GW_EINVAL);
}

static void set_fsize(rlim_t v)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = v;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/* A full disk, simulated by RLIMIT_FSIZE (EFBIG, with SIGXFSZ ignored: the
 * same path as ENOSPC): an error state, fast failures, one log line, no
 * partial record left, recovery when writes work again. */
static void test_disk_full_and_recovery(void **state)
{
    struct fx *f = *state;
    struct gw_spool_opts o = {.dir = f->dir, .retry_ms = 100};
    open_spool(f, &o);
    append(f, "m1", 1, 300, 1);
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    off_t used = (off_t)st.bytes;
    void (*old)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    set_fsize((rlim_t)used + 500); /* the next record fits, not the one after */
    append(f, "m1", 2, 300, 2);
    uint8_t buf[300] = {0};
    assert_int_equal(gw_spool_append(f->sp, "m1", 3, buf, sizeof(buf), NULL),
                     GW_EIO);
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.error, GW_EIO);
    assert_non_null(strstr(st.error_text, "File too large"));
    assert_int_equal(st.appended, 2);
    char path[512];
    last_segment(f, path, sizeof(path));
    assert_int_equal(file_size(path), (off_t)st.bytes); /* no partial record */
    /* failing fast, logged once */
    for (int i = 0; i < 5; i++)
        assert_int_equal(
            gw_spool_append(f->sp, "m1", 3, buf, sizeof(buf), NULL), GW_EIO);
    assert_int_equal(log_count(f, "cannot append"), 1);
    /* the disk has room again: the next attempt after retry_ms works */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old);
    assert_int_equal(gw_spool_append(f->sp, "m1", 3, buf, sizeof(buf), NULL),
                     GW_EIO); /* within retry_ms: not tried */
    usleep(150 * 1000);
    append(f, "m1", 3, 300, 3); /* no sequence number was used up */
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.error, 0);
    assert_string_equal(st.error_text, "");
    assert_int_equal(log_count(f, "writable again"), 1);
    close_spool(f);
    open_spool(f, &o);
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.torn, 0);
    expect(f, "m1", 1, 1);
    expect(f, "m1", 2, 2);
    expect(f, "m1", 3, 3);
}

/* Optional: a real ENOSPC on a 64 KiB tmpfs, when mounting is allowed. */
static void test_enospc_tmpfs(void **state)
{
    struct fx *f = *state;
    char mnt[128], cmd[256];
    snprintf(mnt, sizeof(mnt), "%s/mnt", f->dir);
    assert_int_equal(mkdir(mnt, 0700), 0);
    snprintf(cmd, sizeof(cmd),
             "mount -t tmpfs -o size=64k tmpfs %s 2>/dev/null", mnt);
    if (system(cmd) != 0) {
        skip();
        return;
    }
    struct gw_spool_opts o = {.dir = mnt, .retry_ms = 50};
    assert_int_equal(gw_spool_open(&f->loop, &o, &f->log, &f->sp), 0);
    uint8_t buf[1000] = {0};
    int rc = 0, ok = 0;
    for (int i = 0; i < 200 && !rc; i++) {
        rc = gw_spool_append(f->sp, "m1", i, buf, sizeof(buf), NULL);
        if (!rc)
            ok++;
    }
    assert_int_equal(rc, GW_EIO);
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.error, GW_EIO);
    assert_non_null(strstr(st.error_text, "No space left"));
    close_spool(f); /* the final sync and cursor write fail quietly */
    snprintf(cmd, sizeof(cmd), "umount %s", mnt);
    assert_int_equal(system(cmd), 0);
    assert_true(ok > 10);
}

static void test_fsync_progress(void **state)
{
    struct fx *f = *state;
    struct gw_spool_opts o = {.dir = f->dir, .fsync_ms = 0};
    open_spool(f, &o);
    append(f, "m1", 1, 100, 1);
    append(f, "m1", 2, 100, 2);
    struct gw_spool_stats st;
    gw_spool_get_stats(f->sp, &st);
    uint64_t end = st.bytes;
    for (int i = 0; i < 500; i++) {
        gw_spool_get_stats(f->sp, &st);
        if (st.durable == end)
            break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(st.durable, end);
    close_spool(f);
    /* with the default policy the timer syncs within fsync_ms */
    o.fsync_ms = 50;
    open_spool(f, &o);
    append(f, "m1", 3, 100, 3);
    gw_spool_get_stats(f->sp, &st);
    end = st.bytes;
    assert_true(st.durable < end);
    run_for(f, 200);
    gw_spool_get_stats(f->sp, &st);
    assert_int_equal(st.durable, end);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_crc32c),
        T(test_codec),
        T(test_order_ack_rewind),
        T(test_cursor_and_seq_across_reopen),
        T(test_seq_never_reused),
        T(test_rollover_and_delete),
        T(test_max_bytes_gaps),
        T(test_bound_gap_exact_mixed),
        T(test_bound_one_gap_per_episode),
        T(test_bound_counts_unsent),
        T(test_max_age_gaps),
        T(test_torn_mid_record),
        T(test_torn_mid_header),
        T(test_torn_bad_crc_last),
        T(test_mid_corruption),
        T(test_unusable_dir),
        T(test_disk_full_and_recovery),
        T(test_enospc_tmpfs),
        T(test_fsync_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
