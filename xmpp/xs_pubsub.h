/* xs_pubsub.h - the PubSub (XEP-0060) publisher of value events.
 *
 * One node per unit, named events.node_prefix + unit name, on the service
 * events.service, or on the gateway's own PEP service (XEP-0163) when no
 * service is configured.  At every login the publisher asks the service
 * for its features (disco#info), makes sure every unit's node exists with
 * the configured configuration (owner <configure> get, submit of the
 * fields that differ; or <create> with <configure>), keeps the member
 * affiliations of whitelisted nodes in sync with the access: section, and
 * then publishes the batches of gateway/gw_events: a bounded window of
 * publish iqs in flight; while it is full, batches are not taken (the
 * change detection coalesces them: latest values win).  After each login
 * a snapshot of every unit is published again.
 *
 * Items: <item id='UNIT-SEQ'> (the unit name, '-', the batch's per-unit
 * number) holding one XEP-0323 <fields xmlns='urn:xmpp:iot:sensordata'
 * seqnr='SEQ' done='true'> with one <node nodeId='UNIT'> and the typed
 * fields of the batch's points, built with the readouts' own emitter
 * (xs_iot_sd_field/xs_iot_sd_add), values as the store has them when the
 * batch is taken.
 *
 * With the publish-options feature every publish carries the node
 * configuration as preconditions; a precondition-not-met is answered by
 * an owner <configure> and the publish is retried once.  A forbidden on
 * create or publish is reported once and puts the publisher in a warning
 * state until the next login (or reload): nothing more is published, and
 * polling and readouts go on.  A service that does not answer its check
 * (disco#info) and nodes that could not be set up are tried again while
 * online, through the owner's timer (xs_pubsub_set_timer), after
 * XS_PUBSUB_RETRY_MIN_MS doubling up to XS_PUBSUB_RETRY_MAX_MS (reset at
 * each login).  docs/events.md tells the whole story.
 *
 * With `events.delivery: every` and a spool (xs_pubsub_set_spool), every
 * batch is taken at once when it is ready (online or not) and appended to
 * the spool as its serialized <fields> payload; the publisher then
 * publishes from the spool, oldest first, in the same window: a record is
 * acknowledged to the spool only on the service's result, the spool is
 * rewound when the session goes down.  Replayed records carry an XEP-0203
 * <delay> inside <fields>; records the spool dropped (bounds) are
 * published as <gap xmlns='urn:fieldgate:spool:0'/> items.  When the spool
 * fails (I/O error), delivery falls back to latest values until an append
 * succeeds again.  docs/events.md, "Delivery modes and replay".
 *
 * Everything runs on the loop thread. */
#ifndef XS_PUBSUB_H
#define XS_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "gw_events.h"
#include "gw_iot.h"
#include "gw_log.h"
#include "gw_spool.h"
#include "xs_conn.h"
#include "xs_stanza.h"

#define XS_NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define XS_NS_PUBSUB_OWNER "http://jabber.org/protocol/pubsub#owner"
#define XS_NS_PUBSUB_ERRORS "http://jabber.org/protocol/pubsub#errors"
#define XS_NS_PUBSUB_NODE_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define XS_NS_PUBSUB_PUBLISH_OPTIONS                                           \
    "http://jabber.org/protocol/pubsub#publish-options"
#define XS_NS_FG_SPOOL "urn:fieldgate:spool:0" /* <gap/> items */

/* A record handed out more than this after its sample time is stamped
 * with an XEP-0203 <delay> (besides every record appended while the
 * publisher was not publishing). */
#define XS_PUBSUB_DELAY_AFTER_MS 10000
/* A spooled record whose publish fails this many times in one session
 * (errors other than forbidden and a lost session) is given up: acked,
 * counted in `lost`, logged. */
#define XS_PUBSUB_SPOOL_TRIES 3
/* In fallback (the spool failed), an append is tried again after this
 * long. */
#define XS_PUBSUB_SPOOL_RETRY_MS 10000
/* A failed service check or node setup is tried again after this long,
 * doubling up to the maximum; back to the minimum at each login. */
#define XS_PUBSUB_RETRY_MIN_MS 5000u
#define XS_PUBSUB_RETRY_MAX_MS 300000u

/* The spool of `delivery: every`: gateway/gw_spool in the daemon (the
 * same contracts as gw_spool_append/next/ack/rewind/get_stats), a fake or
 * a real spool in tests.  append may fail with GW_EIO (the publisher then
 * falls back to latest values). */
struct xs_pubsub_spool {
    int (*append)(void *ud, const char *unit, int64_t ts_ms,
                  const void *payload, size_t len, uint64_t *seq_out);
    bool (*next)(void *ud, struct gw_spool_rec *out);
    void (*ack)(void *ud, uint64_t pos);
    void (*rewind)(void *ud);
    void (*stats)(void *ud, struct gw_spool_stats *out);
    void *ud;
};
/* Where batches come from (gw_events in the daemon; a script in tests). */
struct xs_pubsub_source {
    /* The oldest ready batch (see gw_events_take); false when none. */
    bool (*take)(void *ud, struct gw_events_batch *out);
    /* Makes a batch of every event-enabled point of every unit. */
    void (*snapshot)(void *ud);
    /* Batches ready and not taken. */
    size_t (*backlog)(void *ud);
    /* A batch taken failed to publish (latest values; not forbidden, not
     * a lost session): its points go out again (gw_events_requeue).  May
     * be NULL. */
    void (*requeue)(void *ud, const struct gw_events_batch *b);
    void *ud;
};

/* Sends an iq get/set (taken) and calls cb once with the answer, or with
 * NULL and an error; xs_conn_iq's contract.  A seam for tests. */
typedef int (*xs_pubsub_iq_fn)(void *ud, struct xs_stanza *iq,
                               uint32_t timeout_ms, xs_iq_cb cb, void *cb_ud);

/* Service features the publisher uses (from disco#info). */
#define XS_PUBSUB_F_PUBLISH_OPTIONS (1u << 0)
#define XS_PUBSUB_F_AUTO_CREATE (1u << 1)
#define XS_PUBSUB_F_CREATE_AND_CONFIGURE (1u << 2)
#define XS_PUBSUB_F_CONFIG_NODE (1u << 3)
#define XS_PUBSUB_F_PERSISTENT_ITEMS (1u << 4)

enum xs_pubsub_state {
    XS_PUBSUB_OFFLINE, /* no session */
    XS_PUBSUB_SETUP,   /* logged in: checking the service and the nodes */
    XS_PUBSUB_RUNNING, /* publishing */
    XS_PUBSUB_WARNING, /* stopped until the next login (see text) */
};

struct xs_pubsub_stats {
    enum xs_pubsub_state state;
    uint64_t published; /* items the service accepted */
    uint64_t errors;    /* publishes that failed (error, timeout, too big) */
    uint64_t retries;   /* publishes retried after a configure or create */
    uint64_t skipped;   /* batches without any field to publish */
    size_t in_flight;   /* publish iqs waiting for their answer */
    size_t backlog;     /* batches waiting in the source */
    unsigned features;  /* XS_PUBSUB_F_* of the service */
    char text[256];     /* the warning ("" when none) */
    /* delivery every (with a spool); backlog is then the spool's
     * unacknowledged records */
    bool every;              /* delivery every with a spool */
    bool fallback;           /* the spool failed: latest values meanwhile */
    uint64_t spooled;        /* batches appended to the spool */
    uint64_t replayed;       /* items published with a <delay> */
    uint64_t gaps;           /* gap items published */
    uint64_t lost;           /* records given up after failed publishes */
    uint64_t spool_bytes;    /* on disk */
    int64_t spool_oldest_ms; /* sample time of the oldest unsent, 0 if none */
    uint64_t spool_dropped;  /* samples dropped by the spool's bounds */
    char spool_text[256];    /* the fallback's reason ("" when none) */
};

struct xs_pubsub;

/* A publisher for cfg->events over iot's view of the store (both must
 * outlive it).  The source is copied.  Returns 0, GW_EINVAL (no events
 * section) or GW_ENOMEM. */
int xs_pubsub_new(const struct cfg *cfg, struct gw_iot *iot,
                  const struct xs_pubsub_source *src, const struct gw_log *log,
                  struct xs_pubsub **out);

/* Delivery every: batches go through sp (copied) when cfg->events.delivery
 * is every; call before the first xs_pubsub_online.  Without it (or with
 * delivery latest) the publisher coalesces.  When sp's stats report an
 * error at once, the publisher starts in fallback. */
void xs_pubsub_set_spool(struct xs_pubsub *ps,
                         const struct xs_pubsub_spool *sp);

/* Iqs go out through xs_conn_iq on c (or, for tests, through fn). */
void xs_pubsub_attach(struct xs_pubsub *ps, struct xs_conn *c);
void xs_pubsub_set_iq_fn(struct xs_pubsub *ps, xs_pubsub_iq_fn fn, void *ud);

/* The session is up (bare_jid: the account, also the PEP service): starts
 * the service and node checks, then publishing (a snapshot first). */
void xs_pubsub_online(struct xs_pubsub *ps, const char *bare_jid);

/* The session is down: nothing is sent until the next login; answers to
 * requests of the old session are ignored. */
void xs_pubsub_offline(struct xs_pubsub *ps);

/* The owner's one-shot timer for the retry of failed login checks:
 * timer(ud, ms) with ms > 0 (re)arms it, to call xs_pubsub_retry after ms;
 * timer(ud, 0) stops it (at offline, login and free).  Without a timer
 * (NULL) nothing is retried before the next login. */
void xs_pubsub_set_timer(struct xs_pubsub *ps,
                         void (*timer)(void *ud, uint32_t ms), void *ud);

/* The owner's timer fired: checks the service again (when its check
 * failed) or sets up the nodes that failed, then publishes to them. */
void xs_pubsub_retry(struct xs_pubsub *ps);

/* The source has batches (gw_events' ready callback). */
void xs_pubsub_ready(struct xs_pubsub *ps);

/* Frees the publisher (NULL-safe).  Requests still in the session are
 * orphaned: their callbacks only free their own memory. */
void xs_pubsub_free(struct xs_pubsub *ps);

void xs_pubsub_get_stats(const struct xs_pubsub *ps,
                         struct xs_pubsub_stats *out);

/* Items published for one unit. */
uint64_t xs_pubsub_unit_published(const struct xs_pubsub *ps, size_t link,
                                  size_t unit);

/* Called after each change of state or of the warning text (the gateway
 * node shows them); NULL removes it. */
void xs_pubsub_set_state_cb(struct xs_pubsub *ps, void (*cb)(void *ud),
                            void *ud);

/* ---- building blocks (pure; exposed for tests) -------------------------- */

/* The node of a unit: node_prefix + unit name into buf.  Returns false
 * when it does not fit. */
bool xs_pubsub_node_name(const struct cfg_events *ev, const char *unit,
                         char *buf, size_t cap);

/* A jabber:x:data submit form with FORM_TYPE form_type and the node
 * configuration of ev (access_model, max_items, persist_items,
 * notification_type, send_last_published_item, and title when not NULL).
 * NULL on no memory. */
struct xs_stanza *xs_pubsub_config_form(const struct cfg_events *ev,
                                        const char *form_type,
                                        const char *title);

/* Compares a node's configuration form (an owner <configure> answer's
 * <x>) with ev: returns the number of fields that differ (a field the
 * form lacks counts as differing) and, when submit is not NULL, a submit
 * form with just those fields in *submit (NULL when none differ or no
 * memory).  Booleans compare by meaning ("1" = "true"). */
size_t xs_pubsub_config_diff(const struct cfg_events *ev,
                             const struct xs_stanza *form,
                             struct xs_stanza **submit);

/* The service features in a disco#info result (XS_PUBSUB_F_*). */
unsigned xs_pubsub_parse_features(const struct xs_stanza *reply);

/* The <item> of a batch: id UNIT-SEQ, the <fields> payload with the
 * batch's points as the store has them at now_ms.  *n_fields gets how
 * many fields it holds (0: nothing to publish, e.g. points never read).
 * NULL on no memory. */
struct xs_stanza *xs_pubsub_item(const struct cfg *cfg,
                                 const struct gw_iot *iot,
                                 const struct gw_events_batch *b,
                                 int64_t now_ms, size_t *n_fields);

/* The <item id='UNIT-SEQ'> of a spool record: a SAMPLE's stored <fields>
 * payload (XML text) with seqnr SEQ and, when delay_from is not NULL, an
 * XEP-0203 <delay stamp='sample time' from=delay_from/> as its first
 * child; a GAP's <gap xmlns='urn:fieldgate:spool:0' node from to
 * samples/>.  NULL when the payload does not parse, or on no memory. */
struct xs_stanza *xs_pubsub_spool_item(const struct gw_spool_rec *rec,
                                       const char *delay_from);

#endif
