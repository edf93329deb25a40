/* fuzz_spool.c - libFuzzer target for the spool's recovery
 * (gateway/gw_spool.c).
 *
 * The input is written as the only segment file of a fresh spool
 * directory, which gw_spool_open then recovers: a torn end is truncated,
 * mid-file corruption is skipped up to the next valid record.  Every
 * record gw_spool_next returns is checked against the file (re-encoding
 * it gives exactly the bytes at its position, so its length and CRC are
 * valid); the file after recovery must be a prefix of the input; a second
 * open must find nothing torn and change nothing; the loop must close
 * clean.  Any broken property aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "gw_err.h"
#include "gw_spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_spool: %s:%d: %s\n", __FILE__, __LINE__,     \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define SEG "seg-0000000000000000.log"

static void on_closed(void *ud)
{
    *(int *)ud = 1;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    *len = (size_t)st.st_size;
    uint8_t *b = malloc(*len + 1);
    CHECK(b);
    CHECK(pread(fd, b, *len, 0) == (ssize_t)*len);
    close(fd);
    return b;
}

/* Opens the spool, checks every record against the file, closes.  Returns
 * the number of torn records the open found. */
static uint64_t open_and_check(const char *dir, const char *seg,
                               uint64_t *records)
{
    static uint8_t enc[GW_SPOOL_REC_MAX];
    uv_loop_t loop;
    CHECK(uv_loop_init(&loop) == 0);
    struct gw_spool_opts o = {.dir = dir};
    struct gw_spool *sp = NULL;
    CHECK(gw_spool_open(&loop, &o, NULL, &sp) == 0);
    struct gw_spool_stats st;
    gw_spool_get_stats(sp, &st);
    size_t flen;
    uint8_t *file = read_all(seg, &flen);
    CHECK(st.bytes == flen);
    struct gw_spool_rec r;
    uint64_t n = 0, last = 0;
    while (gw_spool_next(sp, &r)) {
        CHECK(n == 0 || r.pos > last);
        last = r.pos;
        size_t len = gw_spool_encode(enc, &r);
        CHECK(len > 0);
        CHECK(r.pos + len <= flen);
        CHECK(memcmp(enc, file + r.pos, len) == 0);
        char unit[GW_SPOOL_UNIT_MAX + 1];
        struct gw_spool_rec again;
        size_t rl;
        CHECK(gw_spool_decode(file + r.pos, flen - r.pos, unit, &again, &rl) ==
              0);
        CHECK(rl == len);
        n++;
    }
    CHECK(n == st.records);
    free(file);
    int closed = 0;
    gw_spool_close(sp, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(closed);
    CHECK(uv_loop_close(&loop) == 0);
    *records = n;
    return st.torn;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[] = "/tmp/fuzz-spool-XXXXXX";
    CHECK(mkdtemp(dir));
    char seg[64], cur[64];
    snprintf(seg, sizeof(seg), "%s/" SEG, dir);
    snprintf(cur, sizeof(cur), "%s/cursor", dir);
    int fd = open(seg, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, data, size) == (ssize_t)size);
    close(fd);

    uint64_t n1, n2;
    open_and_check(dir, seg, &n1);
    size_t len1;
    uint8_t *after = read_all(seg, &len1);
    CHECK(len1 <= size);
    CHECK(len1 == 0 || memcmp(after, data, len1) == 0); /* a prefix */

    /* nothing acknowledged: the same records again, nothing torn, the file
     * unchanged */
    CHECK(open_and_check(dir, seg, &n2) == 0);
    CHECK(n1 == n2);
    size_t len2;
    uint8_t *again = read_all(seg, &len2);
    CHECK(len2 == len1 && memcmp(after, again, len1) == 0);
    free(after);
    free(again);

    unlink(seg);
    unlink(cur);
    CHECK(rmdir(dir) == 0);
    return 0;
}
