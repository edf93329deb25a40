/* bench_spool.c - the spool's append rate (gateway/gw_spool) beside raw
 * write(2) loops of the same record size, on the same disk, in the same
 * run.
 *
 *   bench_spool [RECORDS [DIR]]     (default 100000 records, DIR ".")
 *
 * Rows: the spool at the default policy (fdatasync every 1000 ms on the
 * thread pool; the loop is turned every 64 appends as the daemon's would
 * be), the spool with fsync_ms 0 (fdatasync after every record, grouped),
 * raw write+fdatasync per record (time-bound: 3 s), raw write without sync.
 * Records carry a 520-byte payload (what the publisher spools for a batch
 * of a few points), 550 bytes framed.  The spool's rows include its close
 * (the final fdatasync and cursor write). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "gw_err.h"
#include "gw_spool.h"

#define PAYLOAD 520u
#define REC (GW_SPOOL_HDR + 2u + 16u + PAYLOAD)

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

static void row(const char *name, uint64_t n, double secs)
{
    double rps = (double)n / secs;
    printf("| %-44s | %8llu | %7.3f | %10.0f | %7.1f |\n", name,
           (unsigned long long)n, secs, rps, rps * REC / 1e6);
}

static void on_closed(void *ud)
{
    *(int *)ud = 1;
}

static int bench_spool(const char *base, uint32_t fsync_ms, uint64_t n,
                       const char *name)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/bench-spool-XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct gw_spool_opts o = {
        .dir = dir, .fsync_ms = fsync_ms, .max_bytes = 4ull * n * REC};
    struct gw_spool *sp;
    int rc = gw_spool_open(&loop, &o, NULL, &sp);
    if (rc) {
        fprintf(stderr, "gw_spool_open: %s\n", gw_strerror(rc));
        return 1;
    }
    uint8_t payload[PAYLOAD];
    memset(payload, 'x', sizeof(payload));
    double t0 = now_s();
    for (uint64_t i = 0; i < n; i++) {
        rc = gw_spool_append(sp, "m1", (int64_t)i, payload, sizeof(payload),
                             NULL);
        if (rc) {
            fprintf(stderr, "gw_spool_append: %s\n", gw_strerror(rc));
            return 1;
        }
        if ((i & 63) == 63)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    double t1 = now_s();
    int closed = 0;
    gw_spool_close(sp, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    double t2 = now_s();
    uv_loop_close(&loop);
    char label[96];
    snprintf(label, sizeof(label), "%s (appends)", name);
    row(label, n, t1 - t0);
    snprintf(label, sizeof(label), "%s (incl. close)", name);
    row(label, n, t2 - t0);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) != 0;
}

static int bench_raw(const char *base, bool sync, uint64_t n, double limit,
                     const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/bench-raw-XXXXXX", base);
    int fd = mkstemp(path);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    close(fd);
    fd = open(path, O_WRONLY | O_APPEND);
    uint8_t rec[REC];
    memset(rec, 'x', sizeof(rec));
    double t0 = now_s();
    uint64_t i;
    for (i = 0; i < n; i++) {
        if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec) ||
            (sync && fdatasync(fd))) {
            perror("write");
            return 1;
        }
        if (limit > 0 && (i & 15) == 15 && now_s() - t0 > limit) {
            i++;
            break;
        }
    }
    double t1 = now_s();
    close(fd);
    unlink(path);
    row(name, i, t1 - t0);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
    const char *dir = argc > 2 ? argv[2] : ".";
    if (!n) {
        fprintf(stderr, "usage: bench_spool [RECORDS [DIR]]\n");
        return 2;
    }
    printf("record: %u bytes (%u-byte payload), %llu records, dir %s\n\n", REC,
           PAYLOAD, (unsigned long long)n, dir);
    printf("| %-44s | %8s | %7s | %10s | %7s |\n", "mode", "records", "s",
           "records/s", "MB/s");
    printf("|%s|%s|%s|%s|%s|\n",
           "----------------------------------------------", "----------",
           "---------", "------------", "---------");
    int bad = 0;
    bad |= bench_spool(dir, GW_SPOOL_DEFAULT_FSYNC_MS, n,
                       "spool, fsync 1000 ms (default)");
    bad |= bench_spool(dir, 0, n / 10 ? n / 10 : 1, "spool, fsync_ms 0");
    bad |= bench_raw(dir, true, n, 3.0, "raw write + fdatasync each");
    bad |= bench_raw(dir, false, n, 0, "raw write, no sync");
    return bad;
}
