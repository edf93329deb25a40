/* gw_spool.c - the on-disk spool of event records (docs/spool.md).
 *
 * Layout: DIR/seg-<16 hex digits>.log, named by the global position of
 * their first byte; DIR/cursor, the persisted state (the acknowledged front
 * and every unit's last sequence number), replaced atomically.
 *
 * In memory: the segments (base, size), a ring of index entries for the
 * records at and after the cursor (24 bytes each: position, time, length,
 * unit, kind, done), and the units.  Records are read back from disk for
 * gw_spool_next.  fdatasync and the cursor file run in one uv_work_t job on
 * the thread pool at a time; the loop thread only does write(2), pread(2),
 * open(2) and unlink(2). */
#include "gw_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gw_err.h"

#define AREA "spool"
#define K_SAMPLE 1u
#define K_GAP 2u
#define GAP_FIXED 40u           /* seq, ts, from, to, count */
#define SAMPLE_FIXED 16u        /* seq, ts */
#define STATE_MAGIC 0x50534746u /* "FGSP" */
#define STATE_VERSION 1u
#define STATE_NAME "cursor"
#define STATE_TMP "cursor.tmp"
#define SEG_NAME_LEN 24 /* seg-0123456789abcdef.log */
#define UNITS_MAX 65535u

static const uint32_t crc_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu,
    0x35f1141cu, 0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu,
    0x6be22838u, 0x9989ab3bu, 0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u,
    0x5e133c24u, 0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu,
    0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u, 0x9a879fa0u,
    0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
    0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u,
    0x33ed7d2au, 0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u,
    0xaa64d611u, 0x580f5512u, 0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu,
    0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau, 0x30e349b1u, 0xc288cab2u,
    0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu, 0x1642ae59u,
    0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
    0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu,
    0xb3109ebfu, 0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u,
    0x67dafa54u, 0x95b17957u, 0xcba24573u, 0x39c9c670u, 0x2a993584u,
    0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu, 0xed03a29bu, 0x1f682198u,
    0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u, 0x96bf4dccu,
    0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
    0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u,
    0x0f36e6f7u, 0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u,
    0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u, 0xeb1fcbadu,
    0x197448aeu, 0x0a24bb5au, 0xf84f3859u, 0x2c855cb2u, 0xdeeedfb1u,
    0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu, 0x90a324fau,
    0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
    0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu,
    0xceb018deu, 0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu,
    0x63cd4b8fu, 0x91a6c88cu, 0x456cac67u, 0xb7072f64u, 0xa457dc90u,
    0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u,
    0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu, 0x92a8fc17u,
    0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
    0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu,
    0x0b21572cu, 0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u,
    0xa24bb5a6u, 0x502036a5u, 0x4370c551u, 0xb11b4652u, 0x65d122b9u,
    0x97baa1bau, 0x84ea524eu, 0x7681d14du, 0x2892ed69u, 0xdaf96e6au,
    0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u, 0x0e330a81u,
    0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
    0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u,
    0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au,
    0x1e6dcdeeu, 0xec064eedu, 0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u,
    0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu,
    0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu, 0x8ecee914u,
    0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u,
    0x07198540u, 0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u,
    0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au,
    0x115b2b19u, 0x020bd8edu, 0xf0605beeu, 0x24aa3f05u, 0xd6c1bc06u,
    0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u,
    0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
    0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au,
    0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u,
    0x988c474du, 0x6ae7c44eu, 0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u,
    0xad7d5351u,
};

uint32_t gw_crc32c(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

/* ---- little-endian helpers ---- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- the pure codec ---- */

static size_t unit_len(const char *unit)
{
    if (!unit)
        return 0;
    size_t n = strnlen(unit, GW_SPOOL_UNIT_MAX + 1);
    return n > GW_SPOOL_UNIT_MAX ? 0 : n;
}

size_t gw_spool_encode(uint8_t *buf, const struct gw_spool_rec *rec)
{
    size_t ul = unit_len(rec->unit);
    if (!ul)
        return 0;
    size_t body;
    if (rec->kind == GW_SPOOL_SAMPLE) {
        if (rec->len > GW_SPOOL_PAYLOAD_MAX || (rec->len && !rec->payload))
            return 0;
        body = ul + SAMPLE_FIXED + rec->len;
    } else if (rec->kind == GW_SPOOL_GAP) {
        body = ul + GAP_FIXED;
    } else {
        return 0;
    }
    buf[0] = GW_SPOOL_MAGIC;
    buf[1] = (uint8_t)(rec->kind == GW_SPOOL_SAMPLE ? K_SAMPLE : K_GAP);
    buf[2] = (uint8_t)ul;
    buf[3] = 0;
    put32(buf + 4, (uint32_t)body);
    uint8_t *b = buf + GW_SPOOL_HDR;
    memcpy(b, rec->unit, ul);
    b += ul;
    put64(b, rec->seq);
    put64(b + 8, (uint64_t)rec->ts_ms);
    b += 16;
    if (rec->kind == GW_SPOOL_SAMPLE) {
        if (rec->len)
            memcpy(b, rec->payload, rec->len);
    } else {
        put64(b, (uint64_t)rec->gap_from_ms);
        put64(b + 8, (uint64_t)rec->gap_to_ms);
        put64(b + 16, rec->gap_count);
    }
    uint32_t crc = gw_crc32c(0, buf, 8);
    crc = gw_crc32c(crc, buf + GW_SPOOL_HDR, body);
    put32(buf + 8, crc);
    return GW_SPOOL_HDR + body;
}

int gw_spool_decode(const uint8_t *buf, size_t avail,
                    char unit[GW_SPOOL_UNIT_MAX + 1], struct gw_spool_rec *out,
                    size_t *reclen)
{
    if (avail < GW_SPOOL_HDR)
        return avail && buf[0] != GW_SPOOL_MAGIC ? GW_EPARSE : GW_EAGAIN;
    if (buf[0] != GW_SPOOL_MAGIC || buf[3] != 0)
        return GW_EPARSE;
    unsigned kind = buf[1], ul = buf[2];
    uint32_t body = get32(buf + 4);
    if (ul == 0 || ul > GW_SPOOL_UNIT_MAX)
        return GW_EPARSE;
    if (kind == K_SAMPLE) {
        if (body < ul + SAMPLE_FIXED ||
            body > ul + SAMPLE_FIXED + GW_SPOOL_PAYLOAD_MAX)
            return GW_EPARSE;
    } else if (kind == K_GAP) {
        if (body != ul + GAP_FIXED)
            return GW_EPARSE;
    } else {
        return GW_EPARSE;
    }
    if (avail - GW_SPOOL_HDR < body)
        return GW_EAGAIN;
    const uint8_t *b = buf + GW_SPOOL_HDR;
    uint32_t crc = gw_crc32c(0, buf, 8);
    crc = gw_crc32c(crc, b, body);
    if (crc != get32(buf + 8))
        return GW_EPARSE;
    if (memchr(b, 0, ul))
        return GW_EPARSE;
    memcpy(unit, b, ul);
    unit[ul] = '\0';
    memset(out, 0, sizeof(*out));
    out->unit = unit;
    out->seq = get64(b + ul);
    out->ts_ms = (int64_t)get64(b + ul + 8);
    b += ul + 16;
    if (kind == K_SAMPLE) {
        out->kind = GW_SPOOL_SAMPLE;
        out->len = body - ul - SAMPLE_FIXED;
        out->payload = b;
    } else {
        out->kind = GW_SPOOL_GAP;
        out->gap_from_ms = (int64_t)get64(b);
        out->gap_to_ms = (int64_t)get64(b + 8);
        out->gap_count = get64(b + 16);
    }
    *reclen = GW_SPOOL_HDR + body;
    return 0;
}

/* ---- the spool ---- */

struct sp_ent {
    uint64_t pos;
    int64_t ts; /* sample time; a gap's newest lost sample */
    uint32_t len;
    uint16_t unit;
    uint8_t kind;      /* K_SAMPLE, K_GAP */
    unsigned done : 1; /* acknowledged or dropped */
    unsigned sent : 1; /* handed out by gw_spool_next since open: it may
                          have reached the server, the bounds keep it */
};

struct sp_seg {
    uint64_t base, size;
    uint64_t nlive; /* its entries not done (0: only dead bytes left) */
};

struct sp_unit {
    char name[GW_SPOOL_UNIT_MAX + 1];
    uint64_t last_seq;
    /* samples dropped and not yet written as a GAP record */
    uint64_t gcount;
    int64_t gfrom, gto;
    /* the unit's last GAP record, while later drops may replace it (it
     * is not done, not handed out, and no record of the unit after the
     * last sample it counts has been handed out): its position, what it
     * counts, and the position of the last sample it counts */
    bool gopen;
    uint64_t gpos, gcount_w, glast;
    int64_t gfrom_w, gto_w;
};

/* One thread-pool job: fdatasync some segment files (the retired ones are
 * closed afterwards on the loop thread), fsync the directory, write the
 * state file.  Filled on the loop thread, run on the pool. */
struct sp_job {
    int *fds;
    size_t nfds, nretired; /* fds[0..nretired) are closed after the job */
    bool sync_dir;
    uint8_t *state;
    size_t state_len;
    uint64_t state_cursor, state_end;
    uint64_t durable; /* written end when the job started */
    int dirfd;
    int err; /* errno of the first failure */
    const char *what;
};

struct gw_spool {
    uv_loop_t *loop;
    const struct gw_log *log;
    char dir[PATH_MAX];
    int dirfd;
    uint64_t max_bytes;
    int64_t max_age_ms;
    uint32_t fsync_ms, seg_bytes, retry_ms;

    struct sp_seg *segs;
    size_t nsegs, segcap;
    int tail_fd; /* the last segment, O_RDWR | O_APPEND */
    int rd_fd;   /* a cached read descriptor of another one */
    uint64_t rd_base;
    uint64_t bytes; /* sum of the segment sizes */

    struct sp_ent *ents; /* ring, in position order */
    size_t ecap, ehead, ecount;
    size_t nlive;        /* entries not done */
    uint64_t live_bytes; /* their bytes: what max_bytes bounds */
    size_t bound_skip;   /* entries before it: done, sent or gaps */
    size_t next;         /* gw_spool_next, relative to the head */
    size_t age_skip;     /* entries before it: done, gaps or in flight */

    struct sp_unit *units;
    size_t nunits, ucap;
    size_t ulast; /* the unit found last */

    uint64_t cursor, persisted, written, durable;
    uint64_t persisted_end; /* written end when the persisted state was
                               built: segments below it whose records are
                               all done may go */

    uv_timer_t timer;
    bool timer_on;
    uv_work_t work;
    struct sp_job job;
    bool busy, data_dirty, dir_dirty, state_dirty, force_state;
    uint64_t last_sync, last_state; /* uv_now */
    int *retired;
    size_t nretired, retcap;

    int err;
    char err_text[128];
    uint64_t err_at; /* monotonic ms */

    uint64_t dropped, torn, appended, corrupt;
    bool closing;
    void (*closed_cb)(void *ud);
    void *closed_ud;

    uint8_t wbuf[GW_SPOOL_REC_MAX];
    uint8_t rbuf[GW_SPOOL_REC_MAX];
    char unit_out[GW_SPOOL_UNIT_MAX + 1];
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void seg_name(char *buf, size_t cap, uint64_t base)
{
    snprintf(buf, cap, "seg-%016" PRIx64 ".log", base);
}

static uint64_t end_pos(const struct gw_spool *sp)
{
    if (!sp->nsegs)
        return sp->cursor;
    const struct sp_seg *t = &sp->segs[sp->nsegs - 1];
    return t->base + t->size;
}

/* ---- the index ring ---- */

static struct sp_ent *ent_at(const struct gw_spool *sp, size_t i)
{
    return &sp->ents[(sp->ehead + i) % sp->ecap];
}

static int ent_reserve(struct gw_spool *sp)
{
    if (sp->ecount < sp->ecap)
        return 0;
    size_t ncap = sp->ecap ? sp->ecap * 2 : 256;
    struct sp_ent *n = malloc(ncap * sizeof(*n));
    if (!n)
        return GW_ENOMEM;
    for (size_t i = 0; i < sp->ecount; i++)
        n[i] = *ent_at(sp, i);
    free(sp->ents);
    sp->ents = n;
    sp->ecap = ncap;
    sp->ehead = 0;
    return 0;
}

/* Call ent_reserve first. */
static void ent_push(struct gw_spool *sp, const struct sp_ent *e)
{
    *ent_at(sp, sp->ecount) = *e;
    sp->ecount++;
    if (!e->done) {
        sp->nlive++;
        sp->live_bytes += e->len;
    }
}

static size_t seg_find(const struct gw_spool *sp, uint64_t pos);

/* Marks an entry done (acknowledged, dropped or unreadable). */
static void ent_done(struct gw_spool *sp, struct sp_ent *e)
{
    if (e->done)
        return;
    e->done = 1;
    sp->nlive--;
    sp->live_bytes -= e->len;
    size_t si = seg_find(sp, e->pos);
    if (si != SIZE_MAX && sp->segs[si].nlive)
        sp->segs[si].nlive--;
}

static void ent_pop(struct gw_spool *sp)
{
    ent_done(sp, ent_at(sp, 0));
    sp->ehead = (sp->ehead + 1) % sp->ecap;
    sp->ecount--;
    if (sp->next)
        sp->next--;
    if (sp->age_skip)
        sp->age_skip--;
    if (sp->bound_skip)
        sp->bound_skip--;
}

/* The index of the entry at pos, or SIZE_MAX. */
static size_t ent_find(const struct gw_spool *sp, uint64_t pos)
{
    size_t lo = 0, hi = sp->ecount;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t p = ent_at(sp, mid)->pos;
        if (p == pos)
            return mid;
        if (p < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

/* Pops the done entries at the front; the cursor follows. */
static void advance_front(struct gw_spool *sp)
{
    while (sp->ecount && ent_at(sp, 0)->done)
        ent_pop(sp);
    uint64_t c = sp->ecount ? ent_at(sp, 0)->pos : end_pos(sp);
    if (c != sp->cursor) {
        sp->cursor = c;
        sp->state_dirty = true;
    }
}

/* ---- units ---- */

static int unit_get(struct gw_spool *sp, const char *name, size_t *idx)
{
    if (sp->ulast < sp->nunits && !strcmp(sp->units[sp->ulast].name, name)) {
        *idx = sp->ulast;
        return 0;
    }
    for (size_t i = 0; i < sp->nunits; i++) {
        if (!strcmp(sp->units[i].name, name)) {
            *idx = sp->ulast = i;
            return 0;
        }
    }
    if (sp->nunits >= UNITS_MAX)
        return GW_ELIMIT;
    if (sp->nunits == sp->ucap) {
        size_t ncap = sp->ucap ? sp->ucap * 2 : 8;
        struct sp_unit *n = realloc(sp->units, ncap * sizeof(*n));
        if (!n)
            return GW_ENOMEM;
        sp->units = n;
        sp->ucap = ncap;
    }
    struct sp_unit *u = &sp->units[sp->nunits];
    memset(u, 0, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", name);
    *idx = sp->ulast = sp->nunits++;
    return 0;
}

static void gap_add(struct sp_unit *u, uint64_t count, int64_t from, int64_t to)
{
    if (!count)
        return;
    if (!u->gcount || from < u->gfrom)
        u->gfrom = from;
    if (!u->gcount || to > u->gto)
        u->gto = to;
    u->gcount += count;
}

/* ---- errors ---- */

static void set_error(struct gw_spool *sp, int e, const char *what)
{
    sp->err_at = mono_ms();
    if (sp->err)
        return; /* logged once */
    sp->err = GW_EIO;
    int n = snprintf(sp->err_text, sizeof(sp->err_text), "spool %s: %s: %s",
                     sp->dir, what, strerror(e));
    if (n >= (int)sizeof(sp->err_text)) /* a long path: the cause counts */
        snprintf(sp->err_text, sizeof(sp->err_text), "spool: %s: %s", what,
                 strerror(e));
    GW_LOG(sp->log, GW_LOG_ERROR, AREA,
           "spool %s: %s: %s (appends fail until the disk takes data again; "
           "retried every %u ms)",
           sp->dir, what, strerror(e), (unsigned)sp->retry_ms);
}

static void clear_error(struct gw_spool *sp)
{
    if (!sp->err)
        return;
    GW_LOG(sp->log, GW_LOG_NOTICE, AREA, "spool %s: writable again", sp->dir);
    sp->err = 0;
    sp->err_text[0] = '\0';
}

/* ---- reading ---- */

/* The segment that holds pos, or SIZE_MAX. */
static size_t seg_find(const struct gw_spool *sp, uint64_t pos)
{
    size_t lo = 0, hi = sp->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct sp_seg *s = &sp->segs[mid];
        if (pos < s->base)
            hi = mid;
        else if (pos >= s->base + s->size)
            lo = mid + 1;
        else
            return mid;
    }
    return SIZE_MAX;
}

static int read_fd(struct gw_spool *sp, size_t si)
{
    if (si == sp->nsegs - 1 && sp->tail_fd >= 0)
        return sp->tail_fd;
    if (sp->rd_fd >= 0 && sp->rd_base == sp->segs[si].base)
        return sp->rd_fd;
    if (sp->rd_fd >= 0)
        close(sp->rd_fd);
    char name[64];
    seg_name(name, sizeof(name), sp->segs[si].base);
    sp->rd_fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
    sp->rd_base = sp->segs[si].base;
    return sp->rd_fd;
}

/* Reads and decodes the record of e into rbuf/unit_out. */
static int read_rec(struct gw_spool *sp, const struct sp_ent *e,
                    struct gw_spool_rec *out)
{
    size_t si = seg_find(sp, e->pos);
    if (si == SIZE_MAX || e->len > sizeof(sp->rbuf))
        return GW_EIO;
    int fd = read_fd(sp, si);
    if (fd < 0)
        return GW_EIO;
    ssize_t n =
        pread(fd, sp->rbuf, e->len, (off_t)(e->pos - sp->segs[si].base));
    size_t rl;
    if (n != (ssize_t)e->len ||
        gw_spool_decode(sp->rbuf, e->len, sp->unit_out, out, &rl) ||
        rl != e->len)
        return GW_EIO;
    out->pos = e->pos;
    return 0;
}

/* ---- the sync job ---- */

static void job_work(uv_work_t *req)
{
    struct gw_spool *sp = req->data;
    struct sp_job *j = &sp->job;
    for (size_t i = 0; i < j->nfds; i++) {
        if (fdatasync(j->fds[i]) && !j->err) {
            j->err = errno;
            j->what = "fdatasync";
        }
    }
    if (j->sync_dir && fsync(j->dirfd) && !j->err) {
        j->err = errno;
        j->what = "fsync of the directory";
    }
    if (!j->state)
        return;
    int fd = openat(j->dirfd, STATE_TMP,
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (!j->err) {
            j->err = errno;
            j->what = "cannot create " STATE_TMP;
        }
        j->state_len = 0;
        return;
    }
    ssize_t n = write(fd, j->state, j->state_len);
    int e = n == (ssize_t)j->state_len ? 0 : (n < 0 ? errno : ENOSPC);
    if (!e && fdatasync(fd))
        e = errno;
    close(fd);
    if (!e && renameat(j->dirfd, STATE_TMP, j->dirfd, STATE_NAME))
        e = errno;
    if (!e && fsync(j->dirfd))
        e = errno;
    if (e) {
        if (!j->err) {
            j->err = e;
            j->what = "cannot write the cursor file";
        }
        j->state_len = 0; /* not persisted */
    }
}

static void finish_close(struct gw_spool *sp);
static void kick(struct gw_spool *sp);

/* Deletes the segments (never the last one) whose records are all done
 * (acknowledged or dropped) and that lie wholly below persisted_end: the
 * unit state persisted since covers them.  Such a segment may be above
 * the cursor (an older record in flight holds the cursor back). */
static void reap(struct gw_spool *sp)
{
    size_t k = 0, n = sp->nsegs;
    for (size_t i = 0; i < n; i++) {
        struct sp_seg *s = &sp->segs[i];
        if (i + 1 < n && !s->nlive && s->base + s->size <= sp->persisted_end) {
            char name[64];
            seg_name(name, sizeof(name), s->base);
            if (sp->rd_fd >= 0 && sp->rd_base == s->base) {
                close(sp->rd_fd);
                sp->rd_fd = -1;
            }
            if (unlinkat(sp->dirfd, name, 0) && errno != ENOENT)
                GW_LOG(sp->log, GW_LOG_WARN, AREA,
                       "spool %s: cannot delete %s: %s", sp->dir, name,
                       strerror(errno));
            sp->bytes -= s->size;
            continue;
        }
        sp->segs[k++] = *s;
    }
    if (k != n) {
        sp->nsegs = k;
        sp->dir_dirty = true;
    }
}

static void job_after(uv_work_t *req, int status)
{
    struct gw_spool *sp = req->data;
    struct sp_job *j = &sp->job;
    sp->busy = false;
    for (size_t i = 0; i < j->nretired; i++)
        close(j->fds[i]);
    free(j->fds);
    j->fds = NULL;
    if (status == 0 && j->err)
        set_error(sp, j->err, j->what);
    if (status == 0 && !j->err)
        sp->durable = j->durable;
    if (status == 0 && j->state && j->state_len) {
        sp->persisted = j->state_cursor;
        sp->persisted_end = j->state_end;
        reap(sp);
    }
    free(j->state);
    j->state = NULL;
    if (sp->closing) {
        if (sp->data_dirty || sp->dir_dirty || sp->state_dirty ||
            sp->nretired) {
            sp->force_state = true;
            kick(sp);
            if (sp->busy)
                return;
        }
        finish_close(sp);
        return;
    }
    if ((sp->fsync_ms == 0 && sp->data_dirty) || sp->force_state)
        kick(sp);
}

static uint8_t *state_build(struct gw_spool *sp, size_t *len)
{
    size_t cap = 4 + 4 + 8 + 4 + sp->nunits * (1 + GW_SPOOL_UNIT_MAX + 8) + 4;
    uint8_t *b = malloc(cap), *p = b;
    if (!b)
        return NULL;
    put32(p, STATE_MAGIC);
    put32(p + 4, STATE_VERSION);
    put64(p + 8, sp->cursor);
    put32(p + 16, (uint32_t)sp->nunits);
    p += 20;
    for (size_t i = 0; i < sp->nunits; i++) {
        size_t ul = strlen(sp->units[i].name);
        *p++ = (uint8_t)ul;
        memcpy(p, sp->units[i].name, ul);
        p += ul;
        put64(p, sp->units[i].last_seq);
        p += 8;
    }
    put32(p, gw_crc32c(0, b, (size_t)(p - b)));
    p += 4;
    *len = (size_t)(p - b);
    return b;
}

/* Starts a job with whatever is due, unless one runs. */
static void kick(struct gw_spool *sp)
{
    if (sp->busy)
        return;
    struct sp_job *j = &sp->job;
    memset(j, 0, sizeof(*j));
    j->dirfd = sp->dirfd;
    uint64_t now = uv_now(sp->loop);
    bool want_data = sp->data_dirty && sp->tail_fd >= 0;
    bool want_state =
        sp->state_dirty && (sp->force_state || sp->closing ||
                            now - sp->last_state >= GW_SPOOL_CURSOR_MS);
    if (!want_data && !want_state && !sp->nretired && !sp->dir_dirty)
        return;
    size_t n = sp->nretired + (want_data ? 1u : 0u);
    if (n) {
        j->fds = malloc(n * sizeof(int));
        if (!j->fds)
            return; /* retried at the next tick */
        if (sp->nretired)
            memcpy(j->fds, sp->retired, sp->nretired * sizeof(int));
        j->nretired = sp->nretired;
        j->nfds = sp->nretired;
        sp->nretired = 0;
        if (want_data)
            j->fds[j->nfds++] = sp->tail_fd;
    }
    j->durable = sp->written;
    sp->data_dirty = false;
    j->sync_dir = sp->dir_dirty;
    sp->dir_dirty = false;
    sp->last_sync = now;
    if (want_state) {
        j->state = state_build(sp, &j->state_len);
        if (j->state) {
            j->state_cursor = sp->cursor;
            j->state_end = sp->written;
            sp->state_dirty = false;
            sp->force_state = false;
            sp->last_state = now;
        }
    }
    sp->work.data = sp;
    sp->busy = true;
    if (uv_queue_work(sp->loop, &sp->work, job_work, job_after)) {
        /* cannot happen with valid arguments; undo */
        sp->busy = false;
        for (size_t i = 0; i < j->nretired; i++)
            close(j->fds[i]);
        free(j->fds);
        free(j->state);
        j->fds = NULL;
        j->state = NULL;
        sp->data_dirty = sp->state_dirty = true;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct gw_spool *sp = t->data;
    uint64_t now = uv_now(sp->loop);
    bool data = (sp->data_dirty || sp->nretired) &&
                (sp->fsync_ms == 0 || now - sp->last_sync >= sp->fsync_ms);
    bool state = sp->state_dirty && now - sp->last_state >= GW_SPOOL_CURSOR_MS;
    if (data || state || sp->dir_dirty)
        kick(sp);
}

/* ---- writing ---- */

static int seg_push(struct gw_spool *sp, uint64_t base, uint64_t size)
{
    if (sp->nsegs == sp->segcap) {
        size_t ncap = sp->segcap ? sp->segcap * 2 : 8;
        struct sp_seg *n = realloc(sp->segs, ncap * sizeof(*n));
        if (!n)
            return GW_ENOMEM;
        sp->segs = n;
        sp->segcap = ncap;
    }
    sp->segs[sp->nsegs].base = base;
    sp->segs[sp->nsegs].size = size;
    sp->segs[sp->nsegs].nlive = 0;
    sp->nsegs++;
    return 0;
}

static int retire_fd(struct gw_spool *sp, int fd)
{
    if (sp->nretired == sp->retcap) {
        size_t ncap = sp->retcap ? sp->retcap * 2 : 4;
        int *n = realloc(sp->retired, ncap * sizeof(*n));
        if (!n)
            return GW_ENOMEM;
        sp->retired = n;
        sp->retcap = ncap;
    }
    sp->retired[sp->nretired++] = fd;
    return 0;
}

/* Starts a new segment at the end position. */
static int roll(struct gw_spool *sp)
{
    uint64_t base = end_pos(sp);
    char name[64];
    seg_name(name, sizeof(name), base);
    /* room first, so that nothing can fail after the open */
    if (seg_push(sp, 0, 0))
        return GW_ENOMEM;
    sp->nsegs--;
    if (retire_fd(sp, -1))
        return GW_ENOMEM;
    sp->nretired--;
    int fd = openat(sp->dirfd, name,
                    O_RDWR | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        set_error(sp, errno, "cannot create a segment");
        return GW_EIO;
    }
    if (sp->tail_fd >= 0)
        retire_fd(sp, sp->tail_fd);
    sp->tail_fd = fd;
    seg_push(sp, base, 0);
    sp->dir_dirty = true;
    return 0;
}

/* Writes one record (encoded in wbuf, reclen bytes) at the end. */
static int write_rec(struct gw_spool *sp, size_t reclen, size_t unit,
                     uint8_t kind, int64_t ts)
{
    if (ent_reserve(sp))
        return GW_ENOMEM;
    struct sp_seg *t = sp->nsegs ? &sp->segs[sp->nsegs - 1] : NULL;
    if (!t || sp->tail_fd < 0 ||
        (t->size && t->size + reclen > sp->seg_bytes)) {
        int rc = roll(sp);
        if (rc)
            return rc;
        t = &sp->segs[sp->nsegs - 1];
    }
    size_t done = 0;
    int err = 0;
    while (done < reclen) {
        ssize_t n = write(sp->tail_fd, sp->wbuf + done, reclen - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)n;
    }
    if (err) {
        if (done && ftruncate(sp->tail_fd, (off_t)t->size)) {
            /* the partial record stays: the next open truncates it; write
             * after it no more */
            retire_fd(sp, sp->tail_fd);
            sp->tail_fd = -1;
        }
        set_error(sp, err, "cannot append");
        return GW_EIO;
    }
    struct sp_ent e = {.pos = t->base + t->size,
                       .ts = ts,
                       .len = (uint32_t)reclen,
                       .unit = (uint16_t)unit,
                       .kind = kind};
    ent_push(sp, &e);
    t->nlive++;
    t->size += reclen;
    sp->bytes += reclen;
    sp->written = t->base + t->size;
    sp->data_dirty = true;
    clear_error(sp);
    return 0;
}

/* Drops a sample entry (not done) into its unit's pending gap. */
static void drop_ent(struct gw_spool *sp, struct sp_ent *e)
{
    struct sp_unit *u = &sp->units[e->unit];
    if (e->kind == K_SAMPLE) {
        gap_add(u, 1, e->ts, e->ts);
        u->glast = e->pos;
        sp->dropped++;
    } else {
        struct gw_spool_rec r;
        if (!read_rec(sp, e, &r))
            gap_add(u, r.gap_count, r.gap_from_ms, r.gap_to_ms);
    }
    ent_done(sp, e);
}

/* max_bytes bounds the unacknowledged bytes (live_bytes: records neither
 * acknowledged nor dropped, gap records included); bytes of acknowledged
 * or dropped records still in a segment do not count (they go with their
 * segment, reap).  When the new record would pass the bound, the oldest
 * samples never handed out are dropped until it fits with some slack
 * (max_bytes / 16, at most one segment: drops come in episodes, not one
 * sample per append).  Handed-out samples (they may have reached the
 * server) and gap records are kept; only when nothing else is left are
 * handed-out samples dropped too (a last resort: the publisher's window
 * is far smaller than any bound). */
static void enforce_max_bytes(struct gw_spool *sp, size_t reclen)
{
    if (sp->live_bytes + reclen <= sp->max_bytes)
        return;
    uint64_t slack = sp->max_bytes / 16;
    if (slack > sp->seg_bytes)
        slack = sp->seg_bytes;
    if (slack + reclen > sp->max_bytes)
        slack = 0;
    uint64_t target = sp->max_bytes - slack - reclen;
    bool any = false;
    size_t i = sp->bound_skip;
    for (; i < sp->ecount && sp->live_bytes > target; i++) {
        struct sp_ent *e = ent_at(sp, i);
        if (e->done || e->sent || e->kind == K_GAP)
            continue;
        drop_ent(sp, e);
        any = true;
    }
    for (size_t k = sp->bound_skip; k < i; k++) {
        const struct sp_ent *e = ent_at(sp, k);
        if (!e->done && !e->sent && e->kind != K_GAP)
            break;
        sp->bound_skip = k + 1;
    }
    for (i = 0; i < sp->ecount && sp->live_bytes + reclen > sp->max_bytes;
         i++) {
        struct sp_ent *e = ent_at(sp, i);
        if (e->done || e->kind == K_GAP)
            continue;
        drop_ent(sp, e); /* handed out: it may be delivered too */
        any = true;
    }
    if (any) {
        sp->force_state = true;
        advance_front(sp);
    }
}

static void enforce_bounds(struct gw_spool *sp, size_t reclen)
{
    if (sp->max_age_ms > 0) {
        int64_t limit = wall_ms() - sp->max_age_ms;
        size_t i = sp->age_skip > sp->next ? sp->age_skip : sp->next;
        bool any = false;
        for (; i < sp->ecount; i++) {
            struct sp_ent *e = ent_at(sp, i);
            if (e->done || e->sent || e->kind == K_GAP)
                continue;
            if (e->ts >= limit)
                break;
            drop_ent(sp, e);
            any = true;
        }
        sp->age_skip = i;
        if (any) {
            sp->force_state = true;
            advance_front(sp);
        }
    }
    enforce_max_bytes(sp, reclen);
}

/* The unit's last gap record, when a new drop may replace it: still not
 * done and never handed out. */
static struct sp_ent *open_gap(struct gw_spool *sp, struct sp_unit *u)
{
    if (!u->gopen)
        return NULL;
    size_t i = ent_find(sp, u->gpos);
    struct sp_ent *e = i == SIZE_MAX ? NULL : ent_at(sp, i);
    if (!e || e->done || e->sent || e->kind != K_GAP) {
        u->gopen = false;
        return NULL;
    }
    return e;
}

/* Writes the pending GAP records.  A unit whose last gap record is still
 * open (nothing of the unit after the samples it counts was handed out,
 * the record itself neither) gets one record for both: the old one is
 * marked done (never delivered: its seq stays unused) and the new one
 * counts its samples and range too.  So a drop episode (an outage) ends
 * up as one gap record per unit, and a gap's range holds only samples
 * that were dropped. */
static int write_gaps(struct gw_spool *sp)
{
    for (size_t i = 0; i < sp->nunits; i++) {
        struct sp_unit *u = &sp->units[i];
        if (!u->gcount)
            continue;
        struct sp_ent *old = open_gap(sp, u);
        uint64_t count = u->gcount;
        int64_t from = u->gfrom, to = u->gto;
        if (old) {
            if (u->gfrom_w < from)
                from = u->gfrom_w;
            if (u->gto_w > to)
                to = u->gto_w;
            count += u->gcount_w;
        }
        struct gw_spool_rec r = {.kind = GW_SPOOL_GAP,
                                 .unit = u->name,
                                 .seq = u->last_seq + 1,
                                 .ts_ms = to,
                                 .gap_from_ms = from,
                                 .gap_to_ms = to,
                                 .gap_count = count};
        size_t rl = gw_spool_encode(sp->wbuf, &r);
        int rc = write_rec(sp, rl, i, K_GAP, to);
        if (rc)
            return rc;
        uint64_t pos = ent_at(sp, sp->ecount - 1)->pos;
        if (old) { /* write_rec may have moved the index */
            ent_done(sp, ent_at(sp, ent_find(sp, u->gpos)));
            GW_LOG(sp->log, GW_LOG_DEBUG, AREA,
                   "spool %s: bound: %" PRIu64 " more sample(s) of %s "
                   "dropped; gap record seq %" PRIu64 " now counts %" PRIu64
                   " (%" PRId64 "..%" PRId64 " ms)",
                   sp->dir, u->gcount, u->name, r.seq, count, from, to);
        } else {
            GW_LOG(sp->log, GW_LOG_WARN, AREA,
                   "spool %s: bound reached: %" PRIu64
                   " sample(s) of %s dropped (%" PRId64 "..%" PRId64
                   " ms), gap record seq %" PRIu64,
                   sp->dir, u->gcount, u->name, u->gfrom, u->gto, r.seq);
        }
        u->last_seq = r.seq;
        u->gcount = 0;
        u->gopen = true;
        u->gpos = pos;
        u->gcount_w = count;
        u->gfrom_w = from;
        u->gto_w = to;
        advance_front(sp);
    }
    return 0;
}

int gw_spool_append(struct gw_spool *sp, const char *unit, int64_t ts_ms,
                    const void *payload, size_t len, uint64_t *seq_out)
{
    if (!sp || sp->closing)
        return GW_ECLOSED;
    size_t ul = unit_len(unit);
    if (!ul || (len && !payload))
        return GW_EINVAL;
    if (len > GW_SPOOL_PAYLOAD_MAX)
        return GW_ELIMIT;
    size_t reclen = GW_SPOOL_HDR + ul + SAMPLE_FIXED + len;
    if (reclen > sp->max_bytes)
        return GW_ELIMIT;
    if (sp->err && mono_ms() - sp->err_at < sp->retry_ms)
        return GW_EIO;
    size_t ui;
    int rc = unit_get(sp, unit, &ui);
    if (rc)
        return rc;
    enforce_bounds(sp, reclen);
    rc = write_gaps(sp);
    if (rc)
        return rc;
    struct sp_unit *u = &sp->units[ui];
    struct gw_spool_rec r = {.kind = GW_SPOOL_SAMPLE,
                             .unit = u->name,
                             .seq = u->last_seq + 1,
                             .ts_ms = ts_ms,
                             .payload = payload,
                             .len = len};
    size_t rl = gw_spool_encode(sp->wbuf, &r);
    rc = write_rec(sp, rl, ui, K_SAMPLE, ts_ms);
    if (rc)
        return rc;
    u->last_seq = r.seq;
    sp->appended++;
    if (seq_out)
        *seq_out = r.seq;
    if (sp->fsync_ms == 0 || sp->force_state)
        kick(sp);
    return 0;
}

/* ---- reading back, acknowledging ---- */

bool gw_spool_next(struct gw_spool *sp, struct gw_spool_rec *out)
{
    if (!sp)
        return false;
    while (sp->next < sp->ecount) {
        struct sp_ent *e = ent_at(sp, sp->next);
        if (e->done) {
            sp->next++;
            continue;
        }
        if (read_rec(sp, e, out)) {
            GW_LOG(sp->log, GW_LOG_ERROR, AREA,
                   "spool %s: the record at position %" PRIu64
                   " cannot be read back (%" PRIu32 " bytes); skipped",
                   sp->dir, e->pos, e->len);
            sp->corrupt += e->len;
            ent_done(sp, e);
            sp->next++;
            advance_front(sp);
            continue;
        }
        e->sent = 1;
        /* a record of the unit after its open gap's samples may reach the
         * server: a later drop gets a new gap record (its range must not
         * hold this one) */
        struct sp_unit *u = &sp->units[e->unit];
        if (u->gopen && e->pos > u->glast)
            u->gopen = false;
        sp->next++;
        return true;
    }
    return false;
}

bool gw_spool_has_next(const struct gw_spool *sp)
{
    if (!sp)
        return false;
    for (size_t i = sp->next; i < sp->ecount; i++)
        if (!ent_at(sp, i)->done)
            return true;
    return false;
}

void gw_spool_ack(struct gw_spool *sp, uint64_t pos)
{
    if (!sp)
        return;
    size_t i = ent_find(sp, pos);
    if (i == SIZE_MAX || ent_at(sp, i)->done)
        return;
    ent_done(sp, ent_at(sp, i));
    advance_front(sp);
}

void gw_spool_rewind(struct gw_spool *sp)
{
    if (sp) {
        sp->next = 0;
        sp->age_skip = 0;
    }
}

void gw_spool_get_stats(const struct gw_spool *sp, struct gw_spool_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!sp)
        return;
    out->bytes = sp->bytes;
    out->records = sp->nlive;
    out->live_bytes = sp->live_bytes;
    for (size_t i = 0; i < sp->ecount; i++) {
        const struct sp_ent *e = ent_at(sp, i);
        if (!e->done) {
            out->oldest_ms = e->ts;
            break;
        }
    }
    out->dropped = sp->dropped;
    out->torn = sp->torn;
    out->appended = sp->appended;
    out->error = sp->err;
    snprintf(out->error_text, sizeof(out->error_text), "%s", sp->err_text);
    out->corrupt = sp->corrupt;
    out->segments = sp->nsegs;
    out->cursor = sp->cursor;
    out->durable = sp->durable;
}

/* ---- open: state file, segments, recovery ---- */

static void sp_free(struct gw_spool *sp)
{
    free(sp->segs);
    free(sp->ents);
    free(sp->units);
    free(sp->retired);
    free(sp);
}

/* Reads DIR/cursor.  A missing file is an empty state; an invalid one is
 * logged and ignored (everything is sent again). */
static int read_state(struct gw_spool *sp)
{
    int fd = openat(sp->dirfd, STATE_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : GW_EIO;
    struct stat st;
    size_t max = 24 + UNITS_MAX * (1 + GW_SPOOL_UNIT_MAX + 8);
    if (fstat(fd, &st) || st.st_size < 24 || (uint64_t)st.st_size > max) {
        close(fd);
        goto invalid;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *b = malloc(len);
    if (!b) {
        close(fd);
        return GW_ENOMEM;
    }
    ssize_t n = pread(fd, b, len, 0);
    close(fd);
    if (n != (ssize_t)len || get32(b) != STATE_MAGIC ||
        get32(b + 4) != STATE_VERSION ||
        gw_crc32c(0, b, len - 4) != get32(b + len - 4)) {
        free(b);
        goto invalid;
    }
    uint64_t cursor = get64(b + 8);
    uint32_t nu = get32(b + 16);
    const uint8_t *p = b + 20, *end = b + len - 4;
    for (uint32_t i = 0; i < nu; i++) {
        char name[GW_SPOOL_UNIT_MAX + 1];
        size_t ul = p < end ? *p++ : 0;
        if (!ul || ul > GW_SPOOL_UNIT_MAX || (size_t)(end - p) < ul + 8 ||
            memchr(p, 0, ul)) {
            free(b);
            goto invalid;
        }
        memcpy(name, p, ul);
        name[ul] = '\0';
        size_t ui;
        int rc = unit_get(sp, name, &ui);
        if (rc) {
            free(b);
            return rc;
        }
        uint64_t seq = get64(p + ul);
        if (seq > sp->units[ui].last_seq)
            sp->units[ui].last_seq = seq;
        p += ul + 8;
    }
    free(b);
    sp->cursor = cursor;
    return 0;
invalid:
    GW_LOG(sp->log, GW_LOG_WARN, AREA,
           "spool %s: the cursor file is not valid; every record in the "
           "spool is sent again",
           sp->dir);
    sp->cursor = 0;
    return 0;
}

/* A window over a segment file for the scan. */
struct scan_rd {
    int fd;
    uint64_t fsize, base;
    uint8_t *buf;
    size_t cap, n;
};

static const uint8_t *rd_view(struct scan_rd *r, uint64_t off, size_t *avail)
{
    uint64_t want = r->fsize - off;
    if (want > GW_SPOOL_REC_MAX)
        want = GW_SPOOL_REC_MAX;
    if (off < r->base || off + want > r->base + r->n) {
        uint64_t left = r->fsize - off;
        size_t get = left < r->cap ? (size_t)left : r->cap;
        ssize_t n = pread(r->fd, r->buf, get, (off_t)off);
        r->base = off;
        r->n = n > 0 ? (size_t)n : 0;
        if (r->n < get) /* shorter than fstat said: treat as the end */
            r->fsize = off + r->n;
    }
    *avail = (size_t)(r->base + r->n - off);
    return r->buf + (off - r->base);
}

/* The offset of the first valid record at or after off, or the size. */
static uint64_t resync(struct scan_rd *r, uint64_t off)
{
    char unit[GW_SPOOL_UNIT_MAX + 1];
    struct gw_spool_rec rec;
    size_t rl;
    while (off < r->fsize) {
        size_t avail;
        const uint8_t *p = rd_view(r, off, &avail);
        const uint8_t *m = memchr(p, GW_SPOOL_MAGIC, avail);
        if (!m) {
            off += avail ? avail : 1;
            continue;
        }
        off += (uint64_t)(m - p);
        p = rd_view(r, off, &avail);
        if (!gw_spool_decode(p, avail, unit, &rec, &rl))
            return off;
        off++;
    }
    return r->fsize;
}

static int scan_record(struct gw_spool *sp, uint64_t pos,
                       const struct gw_spool_rec *rec, size_t rl)
{
    size_t ui;
    int rc = unit_get(sp, rec->unit, &ui);
    if (rc)
        return rc;
    if (rec->seq > sp->units[ui].last_seq)
        sp->units[ui].last_seq = rec->seq;
    if (pos < sp->cursor)
        return 0;
    if (ent_reserve(sp))
        return GW_ENOMEM;
    struct sp_ent e = {.pos = pos,
                       .ts = rec->ts_ms,
                       .len = (uint32_t)rl,
                       .unit = (uint16_t)ui,
                       .kind = rec->kind == GW_SPOOL_SAMPLE ? K_SAMPLE : K_GAP};
    ent_push(sp, &e);
    return 0;
}

/* Scans segment si: indexes its records, skips mid-file corruption (resync
 * on the next valid record), truncates a torn end. */
static int scan_segment(struct gw_spool *sp, size_t si, uint8_t *buf,
                        size_t cap)
{
    struct sp_seg *s = &sp->segs[si];
    char name[64];
    seg_name(name, sizeof(name), s->base);
    int fd = openat(sp->dirfd, name, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        GW_LOG(sp->log, GW_LOG_ERROR, AREA, "spool %s: cannot open %s: %s",
               sp->dir, name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return GW_EIO;
    }
    struct scan_rd r = {.fd = fd,
                        .fsize = (uint64_t)st.st_size,
                        .base = 0,
                        .buf = buf,
                        .cap = cap,
                        .n = 0};
    char unit[GW_SPOOL_UNIT_MAX + 1];
    uint64_t o = 0;
    int rc = 0;
    while (o < r.fsize) {
        size_t avail, rl;
        struct gw_spool_rec rec;
        const uint8_t *p = rd_view(&r, o, &avail);
        if (!gw_spool_decode(p, avail, unit, &rec, &rl)) {
            rc = scan_record(sp, s->base + o, &rec, rl);
            if (rc)
                break;
            o += rl;
            continue;
        }
        uint64_t q = resync(&r, o + 1);
        if (q < r.fsize) {
            GW_LOG(sp->log, GW_LOG_WARN, AREA,
                   "spool %s: %s: %" PRIu64
                   " corrupt byte(s) at offset %" PRIu64
                   " skipped (the records in them are lost)",
                   sp->dir, name, q - o, o);
            sp->corrupt += q - o;
            o = q;
            continue;
        }
        uint64_t cut = r.fsize - o;
        if (ftruncate(fd, (off_t)o)) {
            GW_LOG(sp->log, GW_LOG_ERROR, AREA,
                   "spool %s: %s: cannot truncate a torn record at offset "
                   "%" PRIu64 ": %s",
                   sp->dir, name, o, strerror(errno));
            rc = GW_EIO;
            break;
        }
        GW_LOG(sp->log, GW_LOG_WARN, AREA,
               "spool %s: %s: torn record at offset %" PRIu64 " (%" PRIu64
               " byte(s)) truncated",
               sp->dir, name, o, cut);
        sp->torn++;
        sp->dir_dirty = true;
        r.fsize = o;
    }
    s->size = r.fsize;
    sp->bytes += s->size;
    close(fd);
    return rc;
}

/* After the scan: every segment's count of live entries, then the gap
 * records' effect.  A bound drop marks samples done in memory only (and
 * replaces a unit's open gap record by a new one); the persisted cursor
 * may lie before them (a record in flight held it back), so at open a gap
 * record marks done the records of its unit before it whose time lies in
 * its range: the samples it counts and the gap records it replaced (a
 * gap's range never holds a sample that was kept). */
static void apply_gaps(struct gw_spool *sp)
{
    for (size_t i = 0; i < sp->ecount; i++) {
        const struct sp_ent *e = ent_at(sp, i);
        size_t si = seg_find(sp, e->pos);
        if (!e->done && si != SIZE_MAX)
            sp->segs[si].nlive++;
    }
    for (size_t j = 0; j < sp->ecount; j++) {
        struct sp_ent *g = ent_at(sp, j);
        struct gw_spool_rec r;
        if (g->done || g->kind != K_GAP || read_rec(sp, g, &r))
            continue;
        for (size_t i = 0; i < j; i++) {
            struct sp_ent *e = ent_at(sp, i);
            if (!e->done && e->unit == g->unit && e->ts >= r.gap_from_ms &&
                e->ts <= r.gap_to_ms)
                ent_done(sp, e);
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists DIR/seg-*.log into sp->segs (sorted, sizes 0). */
static int list_segments(struct gw_spool *sp)
{
    int dfd = dup(sp->dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        GW_LOG(sp->log, GW_LOG_ERROR, AREA, "spool %s: cannot list: %s",
               sp->dir, strerror(errno));
        return GW_EIO;
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, STATE_TMP)) {
            unlinkat(sp->dirfd, n, 0);
            continue;
        }
        if (strlen(n) != SEG_NAME_LEN || strncmp(n, "seg-", 4) ||
            strcmp(n + 20, ".log"))
            continue;
        uint64_t base = 0;
        bool ok = true;
        for (int i = 4; i < 20; i++) {
            char c = n[i];
            unsigned v;
            if (c >= '0' && c <= '9')
                v = (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v = (unsigned)(c - 'a' + 10);
            else {
                ok = false;
                break;
            }
            base = (base << 4) | v;
        }
        if (!ok)
            continue;
        rc = seg_push(sp, base, 0);
        if (rc)
            break;
    }
    closedir(d);
    if (sp->nsegs > 1) {
        uint64_t *b = malloc(sp->nsegs * sizeof(*b));
        if (!b)
            return GW_ENOMEM;
        for (size_t i = 0; i < sp->nsegs; i++)
            b[i] = sp->segs[i].base;
        qsort(b, sp->nsegs, sizeof(*b), cmp_u64);
        for (size_t i = 0; i < sp->nsegs; i++)
            sp->segs[i].base = b[i];
        free(b);
    }
    return rc;
}

/* mkdir -p with mode 0700 for what is created. */
static int make_dirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) && errno != EEXIST)
        return -1;
    return 0;
}

static int open_fail(struct gw_spool *sp, int rc)
{
    if (sp->tail_fd >= 0)
        close(sp->tail_fd);
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    for (size_t i = 0; i < sp->nretired; i++)
        close(sp->retired[i]);
    sp_free(sp);
    return rc;
}

int gw_spool_open(uv_loop_t *loop, const struct gw_spool_opts *opts,
                  const struct gw_log *log, struct gw_spool **out)
{
    *out = NULL;
    if (!loop || !opts || !opts->dir || !opts->dir[0] ||
        strlen(opts->dir) >= PATH_MAX || opts->max_age_ms < 0)
        return GW_EINVAL;
    struct gw_spool *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return GW_ENOMEM;
    sp->loop = loop;
    sp->log = log;
    sp->dirfd = sp->tail_fd = sp->rd_fd = -1;
    snprintf(sp->dir, sizeof(sp->dir), "%s", opts->dir);
    sp->max_bytes =
        opts->max_bytes ? opts->max_bytes : GW_SPOOL_DEFAULT_MAX_BYTES;
    sp->max_age_ms = opts->max_age_ms;
    sp->fsync_ms = opts->fsync_ms;
    sp->retry_ms = opts->retry_ms ? opts->retry_ms : GW_SPOOL_RETRY_MS;
    uint64_t seg =
        opts->segment_bytes ? opts->segment_bytes : GW_SPOOL_DEFAULT_SEGMENT;
    if (seg > sp->max_bytes / 4)
        seg = sp->max_bytes / 4;
    if (seg < 4096)
        seg = 4096;
    sp->seg_bytes = (uint32_t)seg;

    if (make_dirs(sp->dir) ||
        (sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        GW_LOG(log, GW_LOG_ERROR, AREA, "spool %s: not a usable directory: %s",
               sp->dir, strerror(errno));
        return open_fail(sp, GW_EIO);
    }
    int rc = read_state(sp);
    if (rc == GW_EIO)
        GW_LOG(log, GW_LOG_ERROR, AREA, "spool %s: cannot read %s: %s", sp->dir,
               STATE_NAME, strerror(errno));
    if (!rc)
        rc = list_segments(sp);
    if (rc)
        return open_fail(sp, rc);

    size_t cap = 2 * GW_SPOOL_REC_MAX;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return open_fail(sp, GW_ENOMEM);
    uint64_t prev_end = 0;
    for (size_t i = 0; i < sp->nsegs && !rc; i++) {
        if (i && sp->segs[i].base < prev_end) {
            /* overlapping positions: not ours to interpret */
            GW_LOG(log, GW_LOG_WARN, AREA,
                   "spool %s: segment at %" PRIu64 " overlaps the one before; "
                   "ignored",
                   sp->dir, sp->segs[i].base);
            memmove(sp->segs + i, sp->segs + i + 1,
                    (sp->nsegs - i - 1) * sizeof(*sp->segs));
            sp->nsegs--;
            i--;
            continue;
        }
        rc = scan_segment(sp, i, buf, cap);
        prev_end = sp->segs[i].base + sp->segs[i].size;
    }
    free(buf);
    if (rc)
        return open_fail(sp, rc);
    if (sp->nsegs && sp->cursor > end_pos(sp))
        sp->cursor = end_pos(sp);
    sp->persisted = sp->persisted_end = sp->cursor;
    apply_gaps(sp);
    reap(sp);
    if (!sp->nsegs) {
        rc = roll(sp);
        if (rc)
            return open_fail(sp, rc); /* logged by set_error */
    } else {
        char name[64];
        seg_name(name, sizeof(name), sp->segs[sp->nsegs - 1].base);
        sp->tail_fd = openat(sp->dirfd, name, O_RDWR | O_APPEND | O_CLOEXEC);
        if (sp->tail_fd < 0) {
            GW_LOG(log, GW_LOG_ERROR, AREA, "spool %s: cannot open %s: %s",
                   sp->dir, name, strerror(errno));
            return open_fail(sp, GW_EIO);
        }
    }
    sp->err = 0;
    sp->err_text[0] = '\0';
    sp->written = sp->durable = end_pos(sp);
    advance_front(sp);
    sp->state_dirty = sp->cursor != sp->persisted;
    sp->last_sync = sp->last_state = uv_now(loop);
    uint64_t tick = sp->fsync_ms && sp->fsync_ms < GW_SPOOL_CURSOR_MS
                        ? sp->fsync_ms
                        : GW_SPOOL_CURSOR_MS;
    uv_timer_init(loop, &sp->timer);
    sp->timer.data = sp;
    uv_timer_start(&sp->timer, on_tick, tick, tick);
    GW_LOG(log, GW_LOG_INFO, AREA,
           "spool %s: %zu segment(s), %" PRIu64 " byte(s), %zu record(s) to "
           "send",
           sp->dir, sp->nsegs, sp->bytes, sp->nlive);
    *out = sp;
    return 0;
}

/* ---- close ---- */

static void on_timer_closed(uv_handle_t *h)
{
    struct gw_spool *sp = h->data;
    void (*cb)(void *) = sp->closed_cb;
    void *ud = sp->closed_ud;
    sp_free(sp);
    if (cb)
        cb(ud);
}

static void finish_close(struct gw_spool *sp)
{
    if (sp->tail_fd >= 0)
        close(sp->tail_fd);
    if (sp->rd_fd >= 0)
        close(sp->rd_fd);
    for (size_t i = 0; i < sp->nretired; i++)
        close(sp->retired[i]);
    sp->nretired = 0;
    sp->tail_fd = sp->rd_fd = -1;
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    sp->dirfd = -1;
    uv_close((uv_handle_t *)&sp->timer, on_timer_closed);
}

void gw_spool_close(struct gw_spool *sp, void (*closed_cb)(void *ud), void *ud)
{
    if (!sp || sp->closing)
        return;
    sp->closing = true;
    sp->closed_cb = closed_cb;
    sp->closed_ud = ud;
    uv_timer_stop(&sp->timer);
    if (sp->busy)
        return;             /* job_after goes on */
    sp->state_dirty = true; /* the cursor is written at close, always */
    if (sp->tail_fd >= 0 && sp->written != sp->durable)
        sp->data_dirty = true;
    kick(sp);
    if (!sp->busy)
        finish_close(sp);
}
