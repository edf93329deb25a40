/* xs_iot_xsf.h - the XSF wire front end of the concentrator model:
 * XEP-0323 sensor data (urn:xmpp:iot:sensordata), XEP-0325 control
 * (urn:xmpp:iot:control) and XEP-0326 concentrators
 * (urn:xmpp:iot:concentrators), over gateway/gw_iot.
 *
 * It speaks the 2014 wire format that slixmpp 1.8.3 implements (XEP-0323/
 * 0325 v0.2) and the latest XEP text at once where they differ: rejects
 * carry both <rejected> and an RFC 6120 error, setResponse carries
 * responseCode and errors carry paramError, done='true' goes on the last
 * <fields> or <failure> message, and failures go last.  docs/xmpp-iot.md
 * lists every choice.
 *
 * The front end does not own the session: stanzas go out through a send
 * function (xs_conn_send, or a test's capture), iqs and messages come in
 * through the calls below.  Everything runs on the loop thread. */
#ifndef XS_IOT_XSF_H
#define XS_IOT_XSF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_iot.h"
#include "gw_log.h"
#include "xs_conn.h"
#include "xs_stanza.h"

#define XS_NS_IOT_SD "urn:xmpp:iot:sensordata"
#define XS_NS_IOT_CTL "urn:xmpp:iot:control"
#define XS_NS_IOT_CONC "urn:xmpp:iot:concentrators"
#define XS_NS_XDATA "jabber:x:data"
#define XS_NS_XDATA_VALIDATE "http://jabber.org/protocol/xdata-validate"
#define XS_NS_XDATA_DYNAMIC "urn:xmpp:xdata:dynamic"

struct xs_iot_xsf_opts {
    /* A control <set> message whose XEP-0203 <delay> is older than this is
     * refused (and logged); 0 = 60 s.  A stamp more than
     * XS_IOT_DELAY_SKEW_MS in the future is refused too. */
    uint32_t control_max_age_ms;
    /* Largest <fields> message, in bytes of XML; 0 = 16 KiB (min 2 KiB),
     * at most half of stanza_max. */
    size_t chunk_max;
    /* Largest stanza the session sends (xmpp.stanza_max); 0 = 256 KiB.
     * An answer the send function refuses as larger (GW_ELIMIT) is
     * replaced by an error. */
    size_t stanza_max;
    /* The account's domain (the server that adds XEP-0203 delays to
     * offline messages), or NULL.  A control message's age is read from
     * the last <delay> whose from is this domain; without one, every
     * <delay> it carries must pass. */
    const char *server;
};

/* How far in the future a <delay> stamp may be (clock skew). */
#define XS_IOT_DELAY_SKEW_MS 30000

/* Sends st (taken, always).  Returns 0, GW_ELIMIT (larger than the largest
 * stanza: not sent) or another gw_err.  This is also the seam that lets
 * tests and the fuzz target drive the front end without a session. */
typedef int (*xs_iot_send_fn)(void *ud, struct xs_stanza *st);

struct xs_iot_xsf;

/* A front end over iot (which must outlive it).  opts may be NULL.  It
 * sets itself as the model's status listener.  Returns 0 or GW_ENOMEM. */
int xs_iot_xsf_new(struct gw_iot *iot, xs_iot_send_fn send, void *send_ud,
                   const struct gw_log *log, const struct xs_iot_xsf_opts *opts,
                   struct xs_iot_xsf **out);

/* Drops every readout, control and subscription (no more stanzas are
 * sent) and frees the front end.  NULL-safe. */
void xs_iot_xsf_free(struct xs_iot_xsf *fe);

/* Routes the three namespaces of c to this front end, adds the disco#info
 * features it serves, and sends through xs_conn_send.  Returns 0 or a
 * gw_err. */
int xs_iot_xsf_attach(struct xs_iot_xsf *fe, struct xs_conn *c);

/* The disco#info features served, NULL-terminated (static). */
const char *const *xs_iot_xsf_features(void);

/* Handles an iq get/set whose child is in one of the three namespaces
 * (answers exactly once, now or later).  Every refusal (no access, unknown
 * node, bounds, ...) is logged through gw_iot_refused (rate-limited per
 * sender); an answer too large for one stanza becomes a
 * resource-constraint error (XEP-0326: with result='OtherError'), also
 * logged. */
void xs_iot_xsf_iq(struct xs_iot_xsf *fe, const struct xs_stanza *iq);

/* A message: handles a control <set> (fire-and-forget; refusals are
 * logged, never answered).  now_ms is the realtime clock (for the delay
 * check: the server's stamp, see opts.server, must be neither older than
 * control_max_age_ms nor more than XS_IOT_DELAY_SKEW_MS ahead).  Returns
 * true when the message was for this front end. */
bool xs_iot_xsf_message(struct xs_iot_xsf *fe, const struct xs_stanza *msg,
                        int64_t now_ms);

/* A presence: 'unavailable' from a full JID drops its readouts and
 * subscriptions (a bare JID: all of its resources). */
void xs_iot_xsf_presence(struct xs_iot_xsf *fe, const struct xs_stanza *p);

/* The session was lost or restarted: subscriptions and readouts end. */
void xs_iot_xsf_reset(struct xs_iot_xsf *fe);

/* Counts for tests: readouts in progress, subscriptions held. */
size_t xs_iot_xsf_readouts(const struct xs_iot_xsf *fe);
size_t xs_iot_xsf_subscriptions(const struct xs_iot_xsf *fe);

/* ---- the XEP-0323 field format, shared by readouts and PubSub events ----
 *
 * One format, one parser for subscribers: readouts (<fields> messages)
 * and PubSub event items (xmpp/xs_pubsub) build the
 * <node nodeId sourceId><timestamp value>FIELD...</timestamp></node>
 * subtree with these two calls. */

/* The element of one field (numeric, boolean, string, enum, timeSpan,
 * dateTime) with its name, category and QoS flags, value, unit (numeric),
 * dataType (enum) and writable; a top element the caller owns, or NULL
 * on no memory. */
struct xs_stanza *xs_iot_sd_field(const struct gw_iot_field *f);

/* A <node> being built under a <fields> element.  Set fields and node_id
 * (borrowed) and node = ts = NULL to start a node. */
struct xs_iot_sd_node {
    struct xs_stanza *fields; /* the parent <fields> */
    const char *node_id;
    struct xs_stanza *node, *ts; /* open elements (NULL: none yet) */
    int64_t ts_ms;               /* of ts */
};

/* Adds the field element e (taken, also on error) to the node: opens the
 * <node> when none is open, and a <timestamp> when ts_ms differs from the
 * open one's.  *markup (may be NULL) gets an estimate of the bytes of
 * markup opened.  Returns 0 or GW_ENOMEM. */
int xs_iot_sd_add(struct xs_iot_sd_node *b, struct xs_stanza *e, int64_t ts_ms,
                  size_t *markup);

/* xs:dateTime (XEP-0082; also the legacy CCYYMMDDThh:mm:ss) to realtime
 * milliseconds.  No zone means local time (XEP-0082).
 * Returns 0 or GW_EPARSE. */
int xs_iot_parse_time(const char *text, int64_t *out_ms);

/* Realtime milliseconds as UTC xs:dateTime ("...Z"; milliseconds only when
 * not zero) into buf (>= 32 bytes). */
void xs_iot_format_time(int64_t ms, char *buf, size_t cap);

#endif
