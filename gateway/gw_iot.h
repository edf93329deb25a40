/* gw_iot.h - the concentrator model: the gateway, its links and units as a
 * node tree with fields, parameters, commands, readouts and control, over
 * the device map (cfg), the value store and the engine.
 *
 * The model knows nothing about any wire format: the XSF front end
 * (xmpp/xs_iot_xsf) and any later one (urn:ieee:iot:*, urn:nf:iot:*) turn
 * its nodes, fields and results into stanzas.
 *
 * Nodes.  One data source, GW_IOT_SOURCE.  Node 0 is the gateway (id
 * GW_IOT_GATEWAY_ID, the only root); nodes 1..n_links are the links
 * (children of the gateway, in map order); then the units of each link in
 * map order (children of their link).  Node ids are map names: unit names
 * are unique map-wide, link names among links.  A link whose name is also
 * a unit's name gets the id "link:NAME" (map names cannot contain ':').
 * The gateway's id starts with '_', which map names cannot, so it never
 * clashes.
 *
 * Threading: everything runs on the loop thread.  Callbacks never run from
 * inside the call that started the operation. */
#ifndef GW_IOT_H
#define GW_IOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ad_codec.h"
#include "cfg.h"
#include "gw_access.h"
#include "gw_engine.h"
#include "gw_log.h"
#include "gw_store.h"

#define GW_IOT_SOURCE "MeteringTopology"
#define GW_IOT_GATEWAY_ID "_gateway"
#define GW_IOT_ID_MAX (CFG_MAX_NAME + 8)
#define GW_IOT_NONE SIZE_MAX

struct gw_iot_opts {
    /* A point's cached value serves a readout when its last read attempt
     * is at most this old; 0 = the point's poll-group interval. */
    uint32_t fresh_ms;
    /* Samples kept per point for historical readouts (a ring, one sample
     * per value change); 0 = history off. */
    uint32_t history;
    /* Most nodes a single readout may cover; 0 = no limit. */
    size_t max_readout_nodes;
    /* Most point writes one control request may cause (distinct nodes x
     * distinct parameters); 0 = GW_IOT_DEFAULT_MAX_WRITES. */
    uint32_t control_max_writes;
    /* Longest estimated time one control request may occupy a serial
     * line (rtu, rtu-over-tcp), in ms; 0 = GW_IOT_DEFAULT_MAX_BUS_MS. */
    uint32_t control_max_bus_ms;
    /* Refusal log lines: the first refusal of a kind per sender (bare
     * JID) is logged, further ones within this window only counted;
     * 0 = GW_IOT_DEFAULT_AUDIT_WINDOW_MS. */
    uint32_t audit_window_ms;
};

#define GW_IOT_DEFAULT_MAX_WRITES 32u
#define GW_IOT_DEFAULT_MAX_BUS_MS 2000u
#define GW_IOT_DEFAULT_AUDIT_WINDOW_MS 60000u
/* Refusal lines logged per window, all senders together (then counted). */
#define GW_IOT_AUDIT_LINES_MAX 32u
/* Senders whose refusals are tracked at once (the oldest is evicted). */
#define GW_IOT_AUDIT_SLOTS 64u
/* The serial line behind an rtu-over-tcp gateway (the map has no baud for
 * it) is costed at this rate, 8E1 (11 bits a character). */
#define GW_IOT_RTU_OVER_TCP_BAUD 19200u

enum gw_iot_kind {
    GW_IOT_GATEWAY,
    GW_IOT_LINK,
    GW_IOT_UNIT,
};

enum gw_iot_state {
    GW_IOT_STATE_NONE,    /* healthy (or not polled yet) */
    GW_IOT_STATE_WARNING, /* degraded: some requests fail */
    GW_IOT_STATE_ERROR,   /* offline / link down */
};

struct gw_iot_node {
    enum gw_iot_kind kind;
    char id[GW_IOT_ID_MAX];
    size_t link, unit;  /* cfg indices; GW_IOT_NONE where they do not apply */
    size_t parent;      /* node index, GW_IOT_NONE for the root */
    size_t first_child; /* children are contiguous node indices */
    size_t n_children;
};

struct gw_iot_node_info {
    const char *id;
    const char *type;    /* "Fieldgate.Gateway", "Modbus.Link", "Modbus.Unit" */
    const char *display; /* description or name */
    const char *parent_id; /* NULL for the root */
    enum gw_iot_state state;
    bool has_children;
    bool readable;
    bool controllable; /* a unit with writable points */
    bool has_commands;
    int64_t last_changed_ms; /* 0 when unknown */
};

/* Field categories (XEP-0323 field types) and quality flags. */
#define GW_IOT_T_MOMENTARY (1u << 0)
#define GW_IOT_T_PEAK (1u << 1)
#define GW_IOT_T_STATUS (1u << 2)
#define GW_IOT_T_COMPUTED (1u << 3)
#define GW_IOT_T_IDENTITY (1u << 4)
#define GW_IOT_T_HISTORICAL (1u << 5) /* samples of the history ring */
#define GW_IOT_T_ALL 0x3fu

#define GW_IOT_Q_MISSING (1u << 0)
#define GW_IOT_Q_AUTOMATIC_READOUT (1u << 1)
#define GW_IOT_Q_TIME_OFFSET (1u << 2)
#define GW_IOT_Q_WARNING (1u << 3)
#define GW_IOT_Q_ERROR (1u << 4)

enum gw_iot_vtype {
    GW_IOT_V_NUMERIC,
    GW_IOT_V_BOOLEAN,
    GW_IOT_V_STRING,
    GW_IOT_V_ENUM,
    GW_IOT_V_TIMESPAN, /* value is seconds (integer text) */
    GW_IOT_V_DATETIME, /* value is unused; ts_value_ms holds it */
};

struct gw_iot_field {
    char name[GW_IOT_ID_MAX];
    unsigned types; /* GW_IOT_T_* */
    unsigned qos;   /* GW_IOT_Q_* */
    enum gw_iot_vtype vtype;
    char value[AD_STRING_MAX + 1];     /* numeric: decimals already applied */
    const char *unit;                  /* numeric: unit of measure or "" */
    int decimals;                      /* numeric: digits after the point, -1 */
    char data_type[2 * GW_IOT_ID_MAX]; /* enum: the enum's type name */
    int64_t ts_ms;                     /* when the value was valid */
    int64_t ts_value_ms;               /* GW_IOT_V_DATETIME */
    bool writable;
    size_t point; /* cfg point index, GW_IOT_NONE for status/identity */
};

/* What a readout asks for.  types 0 = every category; fields NULL = every
 * field; from/to bound historical samples (0 = open). */
struct gw_iot_filter {
    unsigned types;
    const char *const *fields;
    size_t n_fields;
    int64_t from_ms, to_ms;
};

/* Parameters of a node (XEP-0326 node parameters): how it is reached. */
enum gw_iot_ptype {
    GW_IOT_P_STRING,
    GW_IOT_P_INT,
    GW_IOT_P_LONG,
    GW_IOT_P_DOUBLE,
    GW_IOT_P_BOOLEAN,
};

struct gw_iot_param {
    const char *id;
    const char *name;
    enum gw_iot_ptype type;
    char value[160];
};

#define GW_IOT_MAX_PARAMS 16

/* A status message of a node (its last error). */
struct gw_iot_message {
    int64_t ts_ms;
    bool error; /* else a warning */
    char text[160];
};

struct gw_iot;

/* Called when a node's state changes (unit status, link connection; the
 * gateway's state follows its links and units). */
typedef void (*gw_iot_status_cb)(void *ud, size_t node,
                                 enum gw_iot_state state);

/* Builds the model over cfg, store and engine (which must outlive it;
 * engine may be NULL: readouts then serve the store only and control is
 * refused with GW_EUNSUPPORTED).  opts may be NULL (defaults).  Registers
 * a store listener.  Returns 0, GW_ELIMIT (store listeners full) or
 * GW_ENOMEM. */
int gw_iot_new(const struct cfg *cfg, struct gw_store *store,
               struct gw_engine *engine, const struct gw_log *log,
               const struct gw_iot_opts *opts, struct gw_iot **out);

/* Frees the model (NULL-safe).  Pending readouts and controls are dropped
 * without their callbacks; engine callbacks that arrive later are ignored.
 * The store keeps its listener: free the model after the engine (whose
 * cancelled callbacks are fine) and before the store is closed or written
 * again. */
void gw_iot_free(struct gw_iot *iot);

/* Replaces the engine (NULL: no more bus traffic, e.g. while the daemon
 * stops or reloads). */
void gw_iot_set_engine(struct gw_iot *iot, struct gw_engine *engine);

/* One status listener (replaced by a second call; NULL removes it). */
void gw_iot_set_status_cb(struct gw_iot *iot, gw_iot_status_cb cb, void *ud);

/* ---- events (the PubSub publisher's counters, shown on the nodes) ------ */

struct gw_iot_events_stats {
    uint64_t published; /* items published (a unit: its own) */
    uint64_t errors;    /* failed publishes (gateway only) */
    uint64_t in_flight; /* publishes waiting for an answer (gateway only) */
    uint64_t backlog;   /* batches waiting to be published (gateway only) */
    bool warning;       /* publishing stopped (gateway only) */
    char text[256];     /* the warning, "" when none */
    /* delivery every: the spool (gateway only) */
    bool spool;                  /* the fields below are meaningful */
    uint64_t spool_bytes;        /* on disk */
    int64_t spool_oldest_age_ms; /* age of the oldest unsent sample, 0 if
                                    none */
    uint64_t spool_dropped;      /* samples dropped by the bounds */
};

/* Fills *out for the gateway (link == GW_IOT_NONE) or one unit.  Returns
 * false when that node has no events. */
typedef bool (*gw_iot_events_stats_fn)(void *ud, size_t link, size_t unit,
                                       struct gw_iot_events_stats *out);

/* With a stats function (the daemon sets one when events: is on), the
 * gateway gets the status fields `Events published`, `Event errors`,
 * `Events in flight`, `Event backlog`, `Events` ("OK" or the warning) and
 * the parameters eventsPublished, eventErrors, eventBacklog, events; a
 * publisher warning makes the gateway's state WarningUnsigned with the
 * warning as its message.  With a spool (delivery every) also `Spool
 * bytes`, `Spool oldest unsent age` (seconds), `Spool dropped` and
 * spoolBytes, spoolOldestAge, spoolDropped.  Units get `Events published`
 * and eventsPublished.  NULL removes it. */
void gw_iot_set_events_stats_fn(struct gw_iot *iot, gw_iot_events_stats_fn fn,
                                void *ud);

/* The publisher's state changed (warning set or cleared): node states are
 * computed again and changes reported to the status listener. */
void gw_iot_events_changed(struct gw_iot *iot);

/* Access level of a JID (bare or full) under the access: section. */
enum gw_access_level gw_iot_access(const struct gw_iot *iot, const char *jid);

/* Logs a refused request as an audit event: "KIND from JID refused: WHY".
 * Rate-limited: per sender (bare JID) and kind the first refusal in
 * audit_window_ms is logged and later ones counted (the count is logged
 * once the window has passed, at the next refusal or at gw_iot_free); at
 * most GW_IOT_AUDIT_LINES_MAX refusal lines per window in all (the rest
 * counted and reported as one line).  kind is a fixed text ("readout",
 * "control", ...); jid and the formatted text may come from the peer. */
void gw_iot_refused(struct gw_iot *iot, const char *jid, const char *kind,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- nodes -------------------------------------------------------------- */

size_t gw_iot_node_count(const struct gw_iot *iot);
const struct gw_iot_node *gw_iot_node(const struct gw_iot *iot, size_t node);

/* Finds a node by id (sourceId NULL/"" or GW_IOT_SOURCE, else not found).
 * Returns the index or GW_IOT_NONE. */
size_t gw_iot_find(const struct gw_iot *iot, const char *source,
                   const char *id);

void gw_iot_node_info(const struct gw_iot *iot, size_t node,
                      struct gw_iot_node_info *out);

/* The node's parameters into out[0..cap); returns how many. */
size_t gw_iot_node_params(const struct gw_iot *iot, size_t node,
                          struct gw_iot_param *out, size_t cap);

/* The node's status message; false when it has none. */
bool gw_iot_node_message(const struct gw_iot *iot, size_t node,
                         struct gw_iot_message *out);

const char *gw_iot_state_name(enum gw_iot_state st); /* "None" ... */

/* Is `node` equal to or below `ancestor`? */
bool gw_iot_node_within(const struct gw_iot *iot, size_t node, size_t ancestor);

/* ---- fields ------------------------------------------------------------- */

/* Receives one field; a non-zero return stops the walk and is returned. */
typedef int (*gw_iot_field_fn)(void *ud, const struct gw_iot_field *f);

/* Builds the fields of a node as the store has them now, filtered (flt may
 * be NULL = everything).  Unit nodes: momentary fields from the points
 * (omitted while a point has never been read), identity (Link, Unit id,
 * Template), status (State, Last error, Requests, Errors, RTT); with
 * history, historical samples.  A point with no good value whose last
 * read failed with a Modbus exception or a decode error (a learnt hole,
 * say) is a string field carrying that error, with GW_IOT_Q_ERROR.  Links and
 * the gateway have status fields. Returns 0 or the first non-zero fn result. */
int gw_iot_node_fields(const struct gw_iot *iot, size_t node,
                       const struct gw_iot_filter *flt, int64_t now_ms,
                       gw_iot_field_fn fn, void *ud);

/* Quality flags for a point state as seen at now_ms. */
unsigned gw_iot_point_qos(const struct gw_iot *iot, size_t link, size_t unit,
                          size_t point, int64_t now_ms);

/* ---- readouts ----------------------------------------------------------- */

struct gw_iot_readout;

/* The readout is complete: iterate its nodes, then free it. */
typedef void (*gw_iot_readout_cb)(void *ud, struct gw_iot_readout *ro);

/* Starts a readout of nodes[0..n_nodes) (n_nodes 0 = every node); a node
 * implies its descendants.  The filter is copied.  Units whose requested
 * momentary values are not fresh are read now; concurrent readouts of a
 * unit share one bus read.  *pending tells whether cb will run (true) or
 * the result is complete already (false: cb never runs).  Returns 0,
 * GW_ELIMIT (more nodes than max_readout_nodes) or GW_ENOMEM. */
int gw_iot_readout_start(struct gw_iot *iot, const size_t *nodes,
                         size_t n_nodes, const struct gw_iot_filter *flt,
                         gw_iot_readout_cb cb, void *ud,
                         struct gw_iot_readout **out, bool *pending);

/* Result nodes in tree order.  err is 0 (fields available) or the gw_err
 * that failed the node (no answer from the unit...), text a message. */
size_t gw_iot_readout_count(const struct gw_iot_readout *ro);
size_t gw_iot_readout_node(const struct gw_iot_readout *ro, size_t i, int *err,
                           const char **text);
int gw_iot_readout_fields(const struct gw_iot *iot,
                          const struct gw_iot_readout *ro, size_t i,
                          int64_t now_ms, gw_iot_field_fn fn, void *ud);
/* Bus reads the readout waited for (for tests and stats). */
size_t gw_iot_readout_reads(const struct gw_iot_readout *ro);

/* Frees a readout; a pending one is cancelled (cb will not run; a bus read
 * already sent completes for the other readouts sharing it).  NULL-safe. */
void gw_iot_readout_free(struct gw_iot_readout *ro);

/* Total bus reads started by readouts (coalescing shows here). */
uint64_t gw_iot_reads_started(const struct gw_iot *iot);

/* ---- control ------------------------------------------------------------ */

/* A parameter as it came from the wire: its name, an optional type hint
 * (the element name's meaning) and its text value. */
enum gw_iot_hint {
    GW_IOT_H_ANY, /* a form field: anything ad_value_parse accepts */
    GW_IOT_H_BOOLEAN,
    GW_IOT_H_INT, /* int and long */
    GW_IOT_H_DOUBLE,
    GW_IOT_H_STRING, /* text, enum labels */
    GW_IOT_H_OTHER,  /* date, time, duration, color: never accepted */
};

struct gw_iot_set {
    const char *name;
    enum gw_iot_hint hint;
    const char *value;
};

enum gw_iot_ctl_code {
    GW_IOT_CTL_OK,
    GW_IOT_CTL_FORBIDDEN,       /* the JID may not control */
    GW_IOT_CTL_NOT_FOUND,       /* unknown node or parameter */
    GW_IOT_CTL_FORM_ERROR,      /* type, range or writability */
    GW_IOT_CTL_NOT_IMPLEMENTED, /* no engine */
    GW_IOT_CTL_OTHER,           /* a write failed on the bus */
    GW_IOT_CTL_LIMIT, /* too many writes, or too long on a serial line */
};

struct gw_iot_ctl_result {
    enum gw_iot_ctl_code code;
    size_t node;  /* offending node index or GW_IOT_NONE */
    size_t param; /* offending parameter index or GW_IOT_NONE */
    int err;      /* gw_err behind the code, 0 for OK */
    char text[200];
};

/* Checks the JID's access, then the size of the request, then every
 * parameter against every node (units only: a node must be a unit with a
 * writable point of that name; the value must parse for the point, fit its
 * type hint and its min/max), then the estimated bus time.  A node named
 * twice counts once; a parameter repeated with the same type and value
 * counts once (repeated with another value it is another write, in
 * document order).  More than control_max_writes writes, or more than
 * control_max_bus_ms of estimated time on one serial line (every write's
 * frames, its re-read and a verify read-back, by the planner's RTU
 * formula), is GW_IOT_CTL_LIMIT.  Returns true when all pass; else res
 * says the first problem (node and param are indices into the caller's
 * arrays).  Writes nothing. */
bool gw_iot_control_check(const struct gw_iot *iot, const char *jid,
                          const size_t *nodes, size_t n_nodes,
                          const struct gw_iot_set *params, size_t n_params,
                          struct gw_iot_ctl_result *res);

struct gw_iot_control;
typedef void (*gw_iot_control_cb)(void *ud,
                                  const struct gw_iot_ctl_result *res);

/* gw_iot_control_check, then the writes one after the other, nodes in the
 * given order (repeats dropped), each node's parameters in document order;
 * the first failed write stops the rest.  One log line per request, when
 * it ends (done, failed or dropped), names the JID, every point with its
 * old and new value, and the result.  Refusals are not logged here (the
 * front end logs them with gw_iot_refused).  Returns true when the writes
 * were started (cb runs once at the end; *out lets the caller drop it),
 * false when validation failed (res filled, nothing written, cb never
 * runs). */
bool gw_iot_control_start(struct gw_iot *iot, const char *jid,
                          const size_t *nodes, size_t n_nodes,
                          const struct gw_iot_set *params, size_t n_params,
                          gw_iot_control_cb cb, void *ud,
                          struct gw_iot_control **out,
                          struct gw_iot_ctl_result *res);

/* Drops a running control: remaining writes are not started, cb will not
 * run.  NULL-safe. */
void gw_iot_control_free(struct gw_iot_control *ctl);

/* A writable point of a unit as a control parameter (for forms). */
struct gw_iot_ctl_param {
    const char *name;        /* borrowed from the map */
    const char *description; /* or NULL */
    const char *unit;        /* or NULL */
    enum gw_iot_hint kind;   /* BOOLEAN, INT, DOUBLE or STRING */
    bool is_long;            /* INT that needs 64 bits */
    bool has_min, has_max;
    double min, max; /* engineering units: map min/max, else the raw type's */
    const struct cfg_enum_label *labels; /* enum labels (kind STRING) */
    size_t n_labels;
    bool has_value;                /* the store holds a value */
    char value[AD_STRING_MAX + 1]; /* current value (label for enums) */
};

typedef int (*gw_iot_ctl_param_fn)(void *ud, const struct gw_iot_ctl_param *p);

/* Walks a unit's writable points in map order (nothing for other nodes).
 * Returns 0 or the first non-zero fn result. */
int gw_iot_node_controls(const struct gw_iot *iot, size_t node,
                         gw_iot_ctl_param_fn fn, void *ud);

/* One writable point of a node by name; false when there is none. */
bool gw_iot_node_control(const struct gw_iot *iot, size_t node,
                         const char *name, struct gw_iot_ctl_param *out);

/* ---- commands ----------------------------------------------------------- */

struct gw_iot_command {
    const char *id;   /* "readNow", "resetBackoff" */
    const char *name; /* human text */
    enum gw_access_level needs;
};

/* The node's commands (every node has both); returns how many. */
size_t gw_iot_node_commands(const struct gw_iot *iot, size_t node,
                            const struct gw_iot_command **out);

/* Runs a command on a node and its units.  readNow starts bus reads
 * (fire-and-forget: the store gets the values); resetBackoff ends the
 * units' backoff.  Returns 0, GW_ENOTFOUND (no such command),
 * GW_EFORBIDDEN (access), GW_EUNSUPPORTED (no engine). */
int gw_iot_node_command(struct gw_iot *iot, const char *jid, size_t node,
                        const char *command);

/* ---- history ------------------------------------------------------------ */

/* Samples held for a point (tests). */
size_t gw_iot_history_count(const struct gw_iot *iot, size_t link, size_t unit,
                            size_t point);

#endif
