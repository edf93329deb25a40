/* gw_spool.h - the on-disk spool of event records (store-and-forward).
 *
 * With `events.delivery: every`, each batch of a unit's changes becomes a
 * record appended to the spool before it is published; records leave the
 * spool only when the server has acknowledged their publication.  The
 * spool is wire-neutral: a record is an opaque payload (the publisher
 * stores its serialized item) with the unit's name, a per-unit sequence
 * number and the sample time.
 *
 * Format: a directory of append-only segment files; each record framed
 * with its length and a CRC32C (docs/spool.md).  Records of one unit are
 * in append order.  A persisted cursor marks what the server has
 * acknowledged; everything after it is sent again after a restart (the
 * same unit + seq, so the same PubSub item id: a duplicate overwrites).
 *
 * Bounds: max_bytes (the unacknowledged records' bytes; acknowledged
 * bytes still on disk never cause a drop) and max_age.  When one is hit
 * the OLDEST samples never handed out by gw_spool_next are dropped (never
 * the appender blocked) and the drop becomes a GAP record per unit (time
 * range and exact count of the lost samples; one record per unit for an
 * outage: a later drop replaces a gap record not yet handed out),
 * delivered in order like any record.  A record handed out (in flight, or
 * sent before a rewind) is kept until acknowledged, so a sample counted in
 * a gap was never sent, and no kept sample lies in a gap's range
 * (docs/spool.md: the last-resort exception).
 *
 * Durability: records reach the disk with fdatasync every fsync_ms (0 =
 * after every record); gw_spool_close syncs.  A torn last record (power
 * loss, SIGKILL) is detected at open by its length/CRC, logged once and
 * truncated.
 *
 * Everything runs on the loop thread (file I/O is small appends to a
 * local disk; the fsync timer's fdatasync may run on the libuv thread
 * pool). */
#ifndef GW_SPOOL_H
#define GW_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gw_log.h"

#define GW_SPOOL_PAYLOAD_MAX (64u * 1024u) /* one record's payload */
#define GW_SPOOL_UNIT_MAX 64u              /* a unit name (CFG_MAX_NAME) */

struct gw_spool_opts {
    const char *dir;        /* created if missing (mode 0700) */
    uint64_t max_bytes;     /* all segments together; 0 = default 64 MiB */
    int64_t max_age_ms;     /* 0 = no age bound */
    uint32_t fsync_ms;      /* 0 = fdatasync after every record */
    uint32_t segment_bytes; /* 0 = default 4 MiB (at most max_bytes / 4) */
    /* Added: after a failed write, appends fail fast (GW_EIO, no system
     * call) for retry_ms before the next attempt; 0 = default 2000. */
    uint32_t retry_ms;
};

/* Defaults (docs/spool.md). */
#define GW_SPOOL_DEFAULT_MAX_BYTES (64ull * 1024u * 1024u)
#define GW_SPOOL_DEFAULT_SEGMENT (4u * 1024u * 1024u)
#define GW_SPOOL_DEFAULT_FSYNC_MS 1000u /* what the map should default to */
#define GW_SPOOL_CURSOR_MS 100u /* the cursor file at most every 100 ms */
#define GW_SPOOL_RETRY_MS 2000u

/* Record framing (docs/spool.md): a 12-byte header, then the body.
 *   [0] magic/version 0xA1   [1] kind (1 sample, 2 gap)   [2] unit length
 *   [3] 0                    [4..7] body length (LE)
 *   [8..11] CRC32C (LE) of bytes 0..7 and the body
 * Body: unit, seq (u64 LE), ts_ms (i64 LE), then the payload (sample) or
 * gap_from_ms, gap_to_ms (i64 LE), gap_count (u64 LE) (gap). */
#define GW_SPOOL_MAGIC 0xA1u
#define GW_SPOOL_HDR 12u
#define GW_SPOOL_REC_MAX                                                       \
    (GW_SPOOL_HDR + GW_SPOOL_UNIT_MAX + 16u + GW_SPOOL_PAYLOAD_MAX)

enum gw_spool_kind {
    GW_SPOOL_SAMPLE, /* a payload appended by gw_spool_append */
    GW_SPOOL_GAP,    /* samples of `unit` dropped by a bound */
};

/* One record as read back.  Pointers are valid until the next call on the
 * spool. */
struct gw_spool_rec {
    enum gw_spool_kind kind;
    const char *unit;
    uint64_t seq;           /* per unit, from 1, never reused (also for gaps) */
    int64_t ts_ms;          /* sample time (GAP: the newest lost sample's;
                               gap records are exempt from max_age) */
    const uint8_t *payload; /* SAMPLE only */
    size_t len;
    /* GAP only: the lost samples */
    int64_t gap_from_ms, gap_to_ms;
    uint64_t gap_count;
    uint64_t pos; /* the record's position, for gw_spool_ack */
};

struct gw_spool;

/* Opens (or creates) the spool in opts->dir: scans the segments, truncates
 * a torn last record (logged once), reads the cursor and every unit's last
 * sequence number.  Returns 0, GW_EIO (directory not usable: the log line
 * names it and the errno text), GW_EINVAL or GW_ENOMEM. */
int gw_spool_open(uv_loop_t *loop, const struct gw_spool_opts *opts,
                  const struct gw_log *log, struct gw_spool **out);

/* Syncs and closes; closed_cb (may be NULL) runs when the memory is
 * freed.  NULL-safe. */
void gw_spool_close(struct gw_spool *sp, void (*closed_cb)(void *ud), void *ud);

/* Appends a sample record for unit; *seq_out (may be NULL) gets its
 * sequence number.  Enforces the bounds first (dropping the oldest
 * records into GAP records).  Returns 0, GW_ELIMIT (payload too large),
 * GW_EIO (write failed: disk full or read-only; the spool is then in an
 * error state, see stats) or GW_ENOMEM. */
int gw_spool_append(struct gw_spool *sp, const char *unit, int64_t ts_ms,
                    const void *payload, size_t len, uint64_t *seq_out);

/* The next record not yet handed out since the last rewind (oldest
 * first).  Returns true and fills *out, or false when none is left. */
bool gw_spool_next(struct gw_spool *sp, struct gw_spool_rec *out);

/* Added: true when gw_spool_next would return a record. */
bool gw_spool_has_next(const struct gw_spool *sp);

/* The server acknowledged the record at pos.  The persisted cursor
 * advances over every acknowledged record at its front (acks may arrive
 * out of order across units). */
void gw_spool_ack(struct gw_spool *sp, uint64_t pos);

/* Hands out again from the oldest unacknowledged record (after a
 * disconnect: whatever was in flight is sent again). */
void gw_spool_rewind(struct gw_spool *sp);

struct gw_spool_stats {
    uint64_t bytes;       /* on disk */
    uint64_t records;     /* unacknowledged */
    int64_t oldest_ms;    /* sample time of the oldest unacked, 0 if none */
    uint64_t dropped;     /* samples dropped by the bounds, ever */
    uint64_t torn;        /* torn records truncated at open */
    uint64_t appended;    /* since open */
    int error;            /* last I/O error (gw_err), 0 when healthy */
    char error_text[128]; /* for the gateway node's warning state */
    /* Added: */
    uint64_t corrupt;    /* bytes skipped over mid-segment corruption */
    uint64_t segments;   /* segment files */
    uint64_t cursor;     /* the acknowledged front (in memory) */
    uint64_t durable;    /* records below this position are fdatasync'ed */
    uint64_t live_bytes; /* bytes of the unacknowledged records (gap
                            records too): what max_bytes bounds */
};
void gw_spool_get_stats(const struct gw_spool *sp, struct gw_spool_stats *out);

/* CRC32C (Castagnoli) of len bytes, continuing from crc (0 to start).
 * gw_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t gw_crc32c(uint32_t crc, const void *data, size_t len);

/* Added: decodes the record at the start of buf (avail bytes), pure: no
 * I/O, no allocation.  Returns 0 and fills *out (pointers into buf and
 * unit, which gets the NUL-terminated name; out->pos is left 0) and
 * *reclen (header + body), GW_EAGAIN when avail is shorter than the record
 * its header announces (or than a header), or GW_EPARSE (bad magic, kind,
 * lengths, CRC or unit name). */
int gw_spool_decode(const uint8_t *buf, size_t avail,
                    char unit[GW_SPOOL_UNIT_MAX + 1], struct gw_spool_rec *out,
                    size_t *reclen);

/* Added: encodes a record into buf (at least GW_SPOOL_REC_MAX bytes) and
 * returns its length, or 0 when an argument is out of range (unit empty,
 * longer than GW_SPOOL_UNIT_MAX or with a NUL byte; payload too large).
 * rec->pos is ignored.  For tests, tools and the fuzzer. */
size_t gw_spool_encode(uint8_t *buf, const struct gw_spool_rec *rec);

#endif
