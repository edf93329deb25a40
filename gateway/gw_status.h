/* gw_status.h - the daemon's status snapshot: a small JSON file that
 * `fieldgate run` rewrites every GW_STATUS_PERIOD_MS (and at start, reload
 * and stop), and that `fieldgate status` reads.
 *
 * Writing: gw_status_write_json prints the snapshot of a store and of the
 * XMPP side (gw_status_info) with gateway/gw_json; gw_status_write_file
 * writes it to a temporary file beside the target and renames it over the
 * target, so a reader sees the old or the new snapshot, never a part of
 * one.  The size is bounded: at most GW_STATUS_MAX_UNITS units are listed
 * (the rest are counted in "units_omitted"), every text is bounded, and a
 * snapshot larger than GW_STATUS_MAX_BYTES is not written.
 *
 * Reading: gw_status_parse is a small JSON reader (RFC 8259, bounded:
 * GW_STATUS_MAX_BYTES of text, GW_STATUS_MAX_NODES values, nesting
 * GW_STATUS_MAX_DEPTH) for the snapshot; the gw_status_get* helpers look
 * members up.  docs/events.md ("Status") describes the fields. */
#ifndef GW_STATUS_H
#define GW_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cfg.h"
#include "gw_store.h"

#define GW_STATUS_FILE_NAME "status.json"
/* Where `fieldgate status` looks when RUNTIME_DIRECTORY is unset: the
 * RuntimeDirectory= of systemd/fieldgate.service. */
#define GW_STATUS_DEFAULT_DIR "/run/fieldgate"
#define GW_STATUS_PERIOD_MS 2000
/* A snapshot older than this: the daemon is probably not running. */
#define GW_STATUS_STALE_MS 10000
#define GW_STATUS_MAX_BYTES (1024 * 1024)
#define GW_STATUS_MAX_UNITS 1024
#define GW_STATUS_MAX_NODES 65536
#define GW_STATUS_MAX_DEPTH 16
/* The file's mode: the daemon's user and group (RuntimeDirectoryMode=0750
 * lets the group's members run `fieldgate status`). */
#define GW_STATUS_FILE_MODE 0640

/* The XMPP session, as the daemon's XMPP side reports it. */
struct gw_status_xmpp {
    bool online;
    char jid[3072]; /* the full JID while online, else the account's */
    uint64_t connects, resumes, drops, auth_failures, dropped_stanzas;
};

/* The PubSub publisher and the change detection (docs/events.md). */
struct gw_status_events {
    char state[16];    /* offline, setup, running, warning */
    char warning[256]; /* "" unless state is warning */
    uint64_t published, errors, retries;
    uint64_t in_flight, backlog;
    uint64_t changes, suppressed, coalesced, heartbeats;
    /* events.delivery every (docs/events.md, "Delivery modes and
     * replay"): the spool */
    bool spool;
    uint64_t spool_bytes;        /* on disk */
    int64_t spool_oldest_age_ms; /* the oldest unsent sample's, 0: none */
    uint64_t spool_dropped;      /* samples dropped by the bounds */
    uint64_t spool_lost;         /* records given up after failed publishes */
    bool spool_fallback;         /* the spool failed: latest values */
};

/* Items published for one unit (NULL: none). */
typedef uint64_t (*gw_status_unit_fn)(void *ud, size_t link, size_t unit);

struct gw_status_info {
    const char *state; /* running, reloading, stopping, stopped */
    long pid;
    int64_t start_ms; /* realtime */
    int64_t now_ms;   /* realtime of the snapshot */
    const char *map_path;
    const struct cfg *cfg;
    const struct gw_store *store;      /* NULL: no links nor units (a reload) */
    const struct gw_status_xmpp *xmpp; /* NULL: no xmpp: section */
    const struct gw_status_events *events; /* NULL: no events: section */
    gw_status_unit_fn unit_published;
    void *unit_ud;
};

/* Prints the snapshot as one JSON object and a newline.  Returns 0, or
 * GW_EIO when the stream failed. */
int gw_status_write_json(FILE *out, const struct gw_status_info *info);

/* Writes the snapshot to PATH.PID.tmp (mode GW_STATUS_FILE_MODE) and
 * renames it to path.  Returns 0, GW_ELIMIT (larger than
 * GW_STATUS_MAX_BYTES: nothing written) or GW_ESYS with *sys_errno set (the
 * temporary file is removed). */
int gw_status_write_file(const char *path, const struct gw_status_info *info,
                         int *sys_errno);

/* The status file's path: $RUNTIME_DIRECTORY/status.json (the first
 * directory when systemd lists several), else fallback_dir/status.json,
 * else (fallback_dir NULL) none.  Returns 0, GW_ENOTFOUND (none) or
 * GW_ELIMIT. */
int gw_status_default_path(const char *fallback_dir, char *buf, size_t cap);

/* ---- reading ------------------------------------------------------------ */

enum gw_status_type {
    GW_STATUS_NULL,
    GW_STATUS_BOOL,
    GW_STATUS_NUMBER,
    GW_STATUS_STRING,
    GW_STATUS_ARRAY,
    GW_STATUS_OBJECT,
};

/* One JSON value.  Children (of an array or object) are linked by index:
 * first, then next of each; -1 ends. */
struct gw_status_node {
    enum gw_status_type type;
    const char *key; /* its name in an object, else NULL */
    const char *str; /* a string's text (UTF-8, NUL-terminated) */
    double num;
    bool b;
    int32_t first, next;
};

struct gw_status_doc {
    char *text; /* the file's text, strings decoded in place */
    size_t len;
    struct gw_status_node *nodes; /* nodes[0] is the top value */
    size_t n, cap;
};

/* Parses text (len bytes, malloc'ed; taken: gw_status_doc_free frees it,
 * also after a failure).  Strings are decoded in place.  Returns 0,
 * GW_EPARSE, GW_ELIMIT (size, values, nesting) or GW_ENOMEM. */
int gw_status_parse(char *text, size_t len, struct gw_status_doc *doc);
void gw_status_doc_free(struct gw_status_doc *doc);

/* Reads a file of at most GW_STATUS_MAX_BYTES into *text (malloc'ed,
 * NUL-terminated, *len bytes).  Returns 0, GW_ENOTFOUND (no such file),
 * GW_ESYS (*sys_errno), GW_ELIMIT (larger) or GW_ENOMEM. */
int gw_status_read_file(const char *path, char **text, size_t *len,
                        int *sys_errno);

/* The member key of the object obj (NULL when obj is not an object or
 * has no such member); obj NULL means the top value. */
const struct gw_status_node *gw_status_get(const struct gw_status_doc *doc,
                                           const struct gw_status_node *obj,
                                           const char *key);
/* A member's string, number or bool, or def when missing or of another
 * type. */
const char *gw_status_get_str(const struct gw_status_doc *doc,
                              const struct gw_status_node *obj, const char *key,
                              const char *def);
double gw_status_get_num(const struct gw_status_doc *doc,
                         const struct gw_status_node *obj, const char *key,
                         double def);
bool gw_status_get_bool(const struct gw_status_doc *doc,
                        const struct gw_status_node *obj, const char *key,
                        bool def);
/* Iterating an array or object: gw_status_child(doc, v) gives the first
 * element, gw_status_next(doc, e) the following one; NULL ends. */
const struct gw_status_node *gw_status_child(const struct gw_status_doc *doc,
                                             const struct gw_status_node *v);
const struct gw_status_node *gw_status_next(const struct gw_status_doc *doc,
                                            const struct gw_status_node *e);

#endif
