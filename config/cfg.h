/* cfg.h - the typed device map (YAML -> struct cfg) and its loader.
 *
 * cfg_load() reads a YAML file, checks it against the schema tables in
 * cfg_schema.c, resolves templates, defaults and references, and returns a
 * fully resolved, read-only model: every unit carries its complete point
 * list, every point its final table, 0-based address, byte order and poll
 * group.  Nothing downstream (codec, planner, engine, XMPP) sees "inherit"
 * or "default" values.
 *
 * Errors are collected, never guessed around: all problems of a file are
 * reported in one run as "FILE:LINE:COL: key.path: message". */
#ifndef CFG_H
#define CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Protocol limits (Modbus Application Protocol v1.1b3, section 6). */
#define CFG_MAX_READ_REGISTERS 125  /* FC03/FC04 */
#define CFG_MAX_READ_BITS 2000      /* FC01/FC02 */
#define CFG_MAX_WRITE_REGISTERS 123 /* FC16 */
#define CFG_MAX_WRITE_BITS 1968     /* FC15 */
#define CFG_MAX_NAME 64             /* link, unit, point, template names */

struct cfg_mark {
    uint32_t line; /* 1-based; 0 = unknown */
    uint32_t col;  /* 1-based */
};

enum cfg_table {
    CFG_TABLE_COIL,     /* 0xxxx, FC01 read, FC05/FC15 write */
    CFG_TABLE_DISCRETE, /* 1xxxx, FC02 read, read-only */
    CFG_TABLE_INPUT,    /* 3xxxx, FC04 read, read-only */
    CFG_TABLE_HOLDING,  /* 4xxxx, FC03 read, FC06/FC16 write */
};

enum cfg_type {
    CFG_TYPE_BOOL, /* a coil or discrete input */
    CFG_TYPE_BIT,  /* bit N (0..15) of one register */
    CFG_TYPE_INT16,
    CFG_TYPE_UINT16,
    CFG_TYPE_INT32,
    CFG_TYPE_UINT32,
    CFG_TYPE_INT64,
    CFG_TYPE_UINT64,
    CFG_TYPE_FLOAT32,
    CFG_TYPE_FLOAT64,
    CFG_TYPE_STRING, /* length registers, packed as cfg_packing says */
    CFG_TYPE_BCD16,  /* 4 BCD digits in one register, 0..9999 */
    CFG_TYPE_BCD32,  /* 8 BCD digits in two registers, 0..99999999 */
};

enum cfg_packing {
    CFG_PACK_HI_LO,   /* two characters a register, high byte first */
    CFG_PACK_LO_HI,   /* two characters a register, low byte first */
    CFG_PACK_HI_ONLY, /* one character a register, in the high byte */
    CFG_PACK_LO_ONLY, /* one character a register, in the low byte */
};

enum cfg_write_fc {
    CFG_WRITE_AUTO =
        0, /* FC05 for one coil, FC06 for one register, else 15/16 */
    CFG_WRITE_FC05 = 5,
    CFG_WRITE_FC06 = 6,
    CFG_WRITE_FC15 = 15,
    CFG_WRITE_FC16 = 16,
};

enum cfg_link_type {
    CFG_LINK_TCP,          /* Modbus TCP (MBAP header) */
    CFG_LINK_RTU,          /* Modbus RTU on a serial line */
    CFG_LINK_RTU_OVER_TCP, /* RTU frames (with CRC) through a TCP socket */
};

enum cfg_parity {
    CFG_PARITY_NONE,
    CFG_PARITY_EVEN,
    CFG_PARITY_ODD,
};

struct cfg_enum_label {
    int64_t value;
    char *label;
};

/* When a point's change is published as an event.  Resolved key by key:
 * the point's own `events:` (for a template's point, written in the
 * template's point list), else its unit's `events:`, else the unit's
 * template's `events:` (a unit setting: the unit overrides its template,
 * like timeout or byte_order), else the map's `events.defaults`, else the
 * built-in default.  Always resolved, with or without an `events:`
 * section.  A quality change is always an event. */
struct cfg_event_rule {
    bool enabled;             /* the point emits events (default true) */
    double deadband;          /* numbers: a change smaller than this is not
                                 an event; 0 = any change (default).  Always
                                 0 on bool, bit and string points */
    bool deadband_percent;    /* deadband is in percent (2 = 2 %) of the
                                 last published value's magnitude */
    uint32_t min_interval_ms; /* at most one event per point per interval
                                 (the newest value wins); 0 = no limit */
    uint32_t max_interval_ms; /* heartbeat: publish the current value after
                                 this long without an event; 0 = none */
};

struct cfg_point {
    char *name;
    enum cfg_table table;
    uint16_t address; /* 0-based protocol address (after address_base) */
    enum cfg_type type;
    uint8_t bit;    /* CFG_TYPE_BIT: 0 = least significant */
    uint16_t count; /* registers (or bits) the point occupies, derived */
    enum cfg_packing packing; /* CFG_TYPE_STRING */
    /* Byte order of the value on the wire, one letter a byte: "A" is the
     * most significant byte of the value, the string lists the bytes in
     * wire order (register 0 high, register 0 low, register 1 high, ...).
     * Length 2 for 16-bit types, 4 for 32-bit, 8 for 64-bit; "" for bool,
     * bit and string points.  Always fully resolved. */
    char order[9];
    double scale;      /* engineering = raw * scale + offset; default 1 */
    double offset;     /* default 0 */
    int decimals;      /* digits after the point, -1 when not set */
    char *unit;        /* unit of measure or NULL */
    char *description; /* or NULL */
    bool writable;
    bool has_min, has_max;
    double min, max; /* engineering units, checked before any write */
    enum cfg_write_fc write_fc;
    bool verify;                   /* read back after a write and compare */
    struct cfg_enum_label *labels; /* enum labels, sorted by value */
    size_t n_labels;
    size_t poll_group;            /* index into cfg.poll_groups */
    struct cfg_event_rule events; /* resolved: point, template, unit, map */
    struct cfg_mark mark;
};

struct cfg_unit {
    char *name;
    uint8_t id;               /* Modbus unit (slave) id */
    char *template_name;      /* NULL when the unit has no template */
    uint32_t timeout_ms;      /* response timeout */
    uint32_t retries;         /* extra attempts after a failed request */
    uint16_t max_registers;   /* per read request, 1..125 */
    uint16_t max_bits;        /* per read request, 1..2000 */
    uint16_t max_gap;         /* unused registers/bits a read may bridge */
    bool single_register;     /* quirk: one register (or bit) a request */
    char byte_order[5];       /* unit default, one of ABCD CDAB BADC DCBA */
    size_t poll_group;        /* default for points, index into poll_groups */
    struct cfg_point *points; /* template points first, then the unit's */
    size_t n_points;
    struct cfg_mark mark;
    char *description; /* or NULL */
};

struct cfg_link {
    char *name;
    enum cfg_link_type type;
    char *host; /* tcp, rtu-over-tcp */
    uint16_t port;
    char *device; /* rtu: serial device path */
    uint32_t baud;
    enum cfg_parity parity;
    uint8_t data_bits;   /* 7 or 8 */
    uint8_t stop_bits;   /* 1 or 2 */
    bool rs485;          /* rtu: switch the port to RS-485 mode */
    uint32_t timeout_ms; /* default response timeout of the link's units */
    uint32_t
        turnaround_ms;    /* silence after a broadcast before the next frame */
    uint32_t delay_ms;    /* extra delay between two requests */
    uint8_t address_base; /* 0 or 1: how plain addresses are written */
    struct cfg_unit *units;
    size_t n_units;
    struct cfg_mark mark;
};

struct cfg_poll_group {
    char *name;
    uint32_t interval_ms;
    struct cfg_mark mark;
};

struct cfg_template {
    char *name;
    struct cfg_point *points; /* as written: address_base not yet applied */
    size_t n_points;
    struct cfg_mark mark;
    char *description; /* or NULL */
};

enum cfg_tls_mode {
    CFG_TLS_STARTTLS, /* RFC 6120 STARTTLS on the c2s port (default) */
    CFG_TLS_DIRECT,   /* XEP-0368 direct TLS */
};

/* SASL mechanisms, in the order of enum xs_sasl_mech (strongest first). */
#define CFG_SASL_SCRAM_SHA_256_PLUS (1u << 0)
#define CFG_SASL_SCRAM_SHA_1_PLUS (1u << 1)
#define CFG_SASL_SCRAM_SHA_256 (1u << 2)
#define CFG_SASL_SCRAM_SHA_1 (1u << 3)
#define CFG_SASL_PLAIN (1u << 4)

/* The `xmpp:` section: the account fieldgate logs in with. */
struct cfg_xmpp {
    bool present;        /* the section exists: run the XMPP session */
    char *jid;           /* bare JID of the gateway's account */
    char *password;      /* inline (discouraged) or NULL */
    char *password_file; /* a file holding the password, or NULL; a
                            relative name is looked up in
                            $CREDENTIALS_DIRECTORY first */
    char *resource;      /* NULL: server-assigned */
    char *host;          /* NULL: SRV records, then the JID's domain */
    uint16_t port;       /* 0: 5222, or 5223 with direct TLS */
    enum cfg_tls_mode tls;
    char *ca_file;            /* NULL: the system trust store */
    char *insecure_server;    /* certificate NOT verified for this server
                                 (must be the JID's domain), or NULL */
    unsigned sasl_mechanisms; /* CFG_SASL_* bits; default every SCRAM */
    bool allow_plain;         /* PLAIN, over TLS only; default false */
    uint32_t keepalive_ms;    /* ping the server after this idle time */
    uint32_t ping_timeout_ms; /* reply and negotiation timeout */
    uint32_t reconnect_min_ms, reconnect_max_ms;
    uint32_t stanza_max;         /* bytes */
    char *status;                /* presence status text, or NULL */
    uint32_t control_max_age_ms; /* control messages delayed longer are
                                    refused (XEP-0203 stamp) */
    uint32_t control_max_writes; /* point writes one control request may
                                    cause (nodes x parameters, after
                                    de-duplication); more is refused */
    uint32_t control_max_bus_ms; /* estimated time one control request may
                                    occupy a serial (RTU) line */
    struct cfg_mark mark;
};

/* The `store:` section: what the value store keeps for readers. */
struct cfg_store {
    uint32_t history;  /* samples kept per point (0 = no history) */
    uint32_t fresh_ms; /* a cached value serves a readout when read within
                          this time; 0 = the point's poll interval */
};

/* The `access:` section: who may do what over XMPP.  Entries are bare JIDs
 * ("ops@example.org") or whole domains ("example.org").  Controllers may
 * read too. */
struct cfg_access {
    char **readers;
    size_t n_readers;
    char **controllers;
    size_t n_controllers;
    struct cfg_mark mark;
};

/* PubSub node access models (XEP-0060 §4.5).  cfg_access_model_name,
 * cfg_notification_type_name and cfg_send_last_name give the XEP-0060
 * node configuration values ("whitelist", "headline", "on_sub", ...). */
enum cfg_access_model {
    CFG_AM_OPEN,
    CFG_AM_PRESENCE,
    CFG_AM_ROSTER,
    CFG_AM_AUTHORIZE,
    CFG_AM_WHITELIST,
};

enum cfg_notification_type {
    CFG_NOTIFY_HEADLINE,
    CFG_NOTIFY_NORMAL,
};

enum cfg_send_last {
    CFG_SEND_LAST_NEVER,
    CFG_SEND_LAST_ON_SUB,
    CFG_SEND_LAST_ON_SUB_AND_PRESENCE,
};

#define CFG_EVENTS_PREFIX_MAX 192 /* bytes of events.node_prefix */

/* events.delivery: what reaches subscribers after a slow or absent
 * server. */
enum cfg_delivery {
    CFG_DELIVERY_LATEST, /* coalescing: each point's newest value (default) */
    CFG_DELIVERY_EVERY,  /* every batch is a spool record: nothing lost */
};

#define CFG_SPOOL_DEFAULT_BYTES (64ull * 1024 * 1024)
#define CFG_SPOOL_DEFAULT_FSYNC_MS 1000u
/* The spool directory when events.spool.dir is not set and systemd gives
 * no STATE_DIRECTORY (resolved at run time, see cfg_spool_dir). */
#define CFG_SPOOL_DEFAULT_DIR "/var/lib/fieldgate/spool"

/* events.spool: the on-disk store-and-forward spool of `delivery: every`
 * (gateway/gw_spool.h).  Every field holds its default without the key. */
struct cfg_spool {
    char *dir;            /* NULL: $STATE_DIRECTORY/spool, else
                             CFG_SPOOL_DEFAULT_DIR, chosen at run time */
    uint64_t max_bytes;   /* all segments; default 64 MiB */
    uint32_t max_age_ms;  /* records older than this are dropped; 0 = no
                             age bound (default) */
    uint32_t fsync_ms;    /* fdatasync period; 0 = after every record
                             (`fsync: every`); default 1 s */
    struct cfg_mark mark; /* of `spool:` ({0, 0} without) */
};

/* The `events:` section: value changes published over PubSub (XEP-0060).
 * One node per unit, named node_prefix + unit name.  Every field holds its
 * default even without the section (present false). */
struct cfg_events {
    bool present;      /* the section exists (and xmpp: too): publish */
    char *service;     /* PubSub service JID (a domain or user@domain), or
                          NULL for PEP (the gateway's own bare JID): the
                          map leaves `service` out */
    char *node_prefix; /* prefix of every node name, never NULL after
                          loading; default "fieldgate/" + the local part
                          of xmpp.jid + "/"; at most CFG_EVENTS_PREFIX_MAX
                          bytes, no control characters */
    /* Node configuration, applied at creation and enforced at login. */
    enum cfg_access_model access_model;           /* whitelist with a service,
                                                     presence with PEP */
    uint32_t max_items;                           /* 1..256, default 1 */
    bool persist_items;                           /* default false */
    enum cfg_notification_type notification_type; /* default headline */
    enum cfg_send_last send_last;   /* default on_sub_and_presence */
    uint32_t window;                /* publish iqs in flight at most, 1..256,
                                       default 16 */
    uint32_t publish_timeout_ms;    /* a publish not answered by then failed;
                                       1s..10m, default 10s */
    struct cfg_event_rule defaults; /* the map-wide rule */
    struct cfg_mark mark;           /* of the section ({0, 0} without) */
    enum cfg_delivery delivery;     /* default latest */
    struct cfg_spool spool;         /* used with delivery every */
};

/* One problem found in a file. */
struct cfg_error {
    struct cfg_mark mark;
    char *path; /* key path, e.g. "links[0].units[2].points[1].type" */
    char *message;
};

struct cfg_errors {
    char *file;
    struct cfg_error *items;
    size_t n;
    size_t cap;
};

struct cfg {
    char *path;
    struct cfg_poll_group *poll_groups; /* never empty: "default" exists */
    size_t n_poll_groups;
    struct cfg_template *templates;
    size_t n_templates;
    struct cfg_link *links;
    size_t n_links;
    struct cfg_xmpp xmpp;     /* xmpp.present false without the section */
    struct cfg_access access; /* empty without the section */
    struct cfg_store store;   /* defaults without the section */
    struct cfg_events events; /* events.present false without it */
    /* Valid but probably not what was meant (e.g. domains in access: with
     * whitelisted event nodes): the map loads; `fieldgate check` prints
     * them (cfg_warnings_print).  file is the map's path. */
    struct cfg_errors warnings;
};

void cfg_errors_init(struct cfg_errors *errs);
void cfg_errors_close(struct cfg_errors *errs);
/* Prints every error as "FILE:LINE:COL: path: message\n". */
void cfg_errors_print(const struct cfg_errors *errs, FILE *out);
/* Prints every warning of a loaded map as
 * "FILE:LINE:COL: path: warning: message\n". */
void cfg_warnings_print(const struct cfg *cfg, FILE *out);

/* Adds a warning to a loaded map (e.g. a check that needs the running
 * system, like `fieldgate check` on the spool directory).  Returns 0 or
 * GW_ENOMEM. */
int cfg_warning_add(struct cfg *cfg, struct cfg_mark mark, const char *path,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Loads and validates a device map.  On success returns 0 and *out owns a
 * new model (free with cfg_free).  On failure returns GW_ECONFIG (or
 * GW_EIO/GW_ENOMEM), *out is NULL and errs holds every problem found. */
int cfg_load(const char *path, struct cfg **out, struct cfg_errors *errs);

/* The same from memory; name is used in error messages. */
int cfg_load_buffer(const char *name, const char *data, size_t len,
                    struct cfg **out, struct cfg_errors *errs);

void cfg_free(struct cfg *cfg);

/* Names for printing and JSON. */
const char *cfg_table_name(enum cfg_table t); /* "holding" ... */
const char *cfg_type_name(enum cfg_type t);   /* "float32" ... */
const char *cfg_link_type_name(enum cfg_link_type t);
const char *cfg_parity_name(enum cfg_parity p);
const char *cfg_access_model_name(enum cfg_access_model m); /* "whitelist" */
const char *cfg_notification_type_name(enum cfg_notification_type t);
const char *cfg_send_last_name(enum cfg_send_last s); /* "on_sub" ... */
const char *cfg_delivery_name(enum cfg_delivery d);   /* "latest", "every" */

/* The spool directory of a map: events.spool.dir when set, else
 * $STATE_DIRECTORY/spool (the first directory when systemd lists several,
 * separated by ':'), else CFG_SPOOL_DEFAULT_DIR.  Read at run time (the
 * environment of the process that runs, not of the one that loaded the
 * map).  Returns 0 or GW_ELIMIT (does not fit in cap). */
int cfg_spool_dir(const struct cfg_spool *sp, char *buf, size_t cap);

/* Bytes of a fixed-size numeric value (2, 4 or 8: what a byte order
 * string describes); 0 for bool, bit and string. */
size_t cfg_type_bytes(enum cfg_type t);

/* Registers (or bits, for coil/discrete) a value of this type occupies;
 * for strings the caller passes the length in registers. */
uint16_t cfg_type_count(enum cfg_type t, uint16_t string_len);

#endif
