/* MQTT 3.1.1 (OASIS 2014) and 5.0 (OASIS 2019).
 *
 * The first part is the codec: sans-I/O, allocation-free, thread-safe
 * functions that parse one packet into a cymg_mqtt_msg view and encode one
 * from it, with the spec's checks (remaining length, UTF-8, topic names and
 * filters, v5 properties allowed per packet). Fuzzed on its own.
 *
 * The connection layer below is a client (cymg_mqtt_connect) and a
 * parser-level listener (cymg_mqtt_listen) whose accepted connections parse
 * MQTT and report it but never answer CONNECT, SUBSCRIBE, UNSUBSCRIBE or
 * PINGREQ by themselves: the program does, with the helpers below. A broker is
 * built on the same layer. Its calls belong to the manager's thread.
 */
#ifndef CYMG_MQTT_H
#define CYMG_MQTT_H

#include "common.h"
#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol levels (the CONNECT "protocol level" byte). */
enum { CYMG_MQTT_V311 = 4, CYMG_MQTT_V5 = 5 };

/* Packet types (high nibble of the first byte). */
enum {
  CYMG_MQTT_CMD_CONNECT = 1,
  CYMG_MQTT_CMD_CONNACK = 2,
  CYMG_MQTT_CMD_PUBLISH = 3,
  CYMG_MQTT_CMD_PUBACK = 4,
  CYMG_MQTT_CMD_PUBREC = 5,
  CYMG_MQTT_CMD_PUBREL = 6,
  CYMG_MQTT_CMD_PUBCOMP = 7,
  CYMG_MQTT_CMD_SUBSCRIBE = 8,
  CYMG_MQTT_CMD_SUBACK = 9,
  CYMG_MQTT_CMD_UNSUBSCRIBE = 10,
  CYMG_MQTT_CMD_UNSUBACK = 11,
  CYMG_MQTT_CMD_PINGREQ = 12,
  CYMG_MQTT_CMD_PINGRESP = 13,
  CYMG_MQTT_CMD_DISCONNECT = 14,
  CYMG_MQTT_CMD_AUTH = 15 /* 5.0 only */
};

/* v5 property identifiers (MQTT 5.0 section 2.2.2.2). */
enum {
  CYMG_MQTT_PROP_PAYLOAD_FORMAT_INDICATOR = 0x01,
  CYMG_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL = 0x02,
  CYMG_MQTT_PROP_CONTENT_TYPE = 0x03,
  CYMG_MQTT_PROP_RESPONSE_TOPIC = 0x08,
  CYMG_MQTT_PROP_CORRELATION_DATA = 0x09,
  CYMG_MQTT_PROP_SUBSCRIPTION_IDENTIFIER = 0x0B,
  CYMG_MQTT_PROP_SESSION_EXPIRY_INTERVAL = 0x11,
  CYMG_MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER = 0x12,
  CYMG_MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
  CYMG_MQTT_PROP_AUTHENTICATION_METHOD = 0x15,
  CYMG_MQTT_PROP_AUTHENTICATION_DATA = 0x16,
  CYMG_MQTT_PROP_REQUEST_PROBLEM_INFORMATION = 0x17,
  CYMG_MQTT_PROP_WILL_DELAY_INTERVAL = 0x18,
  CYMG_MQTT_PROP_REQUEST_RESPONSE_INFORMATION = 0x19,
  CYMG_MQTT_PROP_RESPONSE_INFORMATION = 0x1A,
  CYMG_MQTT_PROP_SERVER_REFERENCE = 0x1C,
  CYMG_MQTT_PROP_REASON_STRING = 0x1F,
  CYMG_MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
  CYMG_MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
  CYMG_MQTT_PROP_TOPIC_ALIAS = 0x23,
  CYMG_MQTT_PROP_MAXIMUM_QOS = 0x24,
  CYMG_MQTT_PROP_RETAIN_AVAILABLE = 0x25,
  CYMG_MQTT_PROP_USER_PROPERTY = 0x26,
  CYMG_MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
  CYMG_MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28,
  CYMG_MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29,
  CYMG_MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE = 0x2A
};

/* Property value types (the Python MQTT_PROP_TYPE_* values, in this order). */
enum {
  CYMG_MQTT_PROP_TYPE_BYTE = 0,
  CYMG_MQTT_PROP_TYPE_STRING,
  CYMG_MQTT_PROP_TYPE_STRING_PAIR,
  CYMG_MQTT_PROP_TYPE_BINARY_DATA,
  CYMG_MQTT_PROP_TYPE_VARIABLE_INT,
  CYMG_MQTT_PROP_TYPE_INT,  /* four-byte integer */
  CYMG_MQTT_PROP_TYPE_SHORT /* two-byte integer */
};

/* Reason codes used by the layer itself (5.0 section 2.4; the 3.1.1 CONNACK
 * return codes 1..5 are their own numbers). */
enum {
  CYMG_MQTT_RC_SUCCESS = 0x00,
  CYMG_MQTT_RC_UNSPECIFIED = 0x80,
  CYMG_MQTT_RC_MALFORMED = 0x81,
  CYMG_MQTT_RC_PROTOCOL_ERROR = 0x82,
  CYMG_MQTT_RC_UNSUPPORTED_VERSION = 0x84,
  CYMG_MQTT_RC_TOPIC_NAME_INVALID = 0x90,
  CYMG_MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
  CYMG_MQTT_RC_QUOTA_EXCEEDED = 0x97,
  CYMG_MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
  CYMG_MQTT_RC_PACKET_TOO_LARGE = 0x95,
  CYMG_MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D
};

/* Largest remaining length the 4-byte variable integer can carry. */
#define CYMG_MQTT_MAX_REMAINING 268435455u

/* One property. iv holds the integer types (BYTE, SHORT, INT, VARIABLE_INT),
 * val the STRING and BINARY_DATA ones; a STRING_PAIR (user property) has key
 * and val. Views into the packet when decoded; copied when encoded. */
typedef struct cymg_mqtt_prop {
  uint8_t id;
  uint32_t iv;
  cymg_str key;
  cymg_str val;
} cymg_mqtt_prop;

/* What CYMG_EV_MQTT_MSG and CYMG_EV_MQTT_CMD carry, and what the codec
 * parses into and encodes from. Every view points into the receive buffer and
 * is valid until the event function returns. Fields a packet type lacks are
 * empty / 0.
 *   PUBLISH      topic, data (payload), id (QoS > 0), qos, dup, retain, props
 *   PUBACK..COMP id, ack (reason code; 0 in 3.1.1), props
 *   CONNECT      the connect fields below, version, props (CONNECT's own)
 *   CONNACK      ack (return / reason code), session_present, props
 *   SUBSCRIBE    id, filters (walk with cymg_mqtt_next_filter), topic and qos
 *                of the first filter, props
 *   UNSUBSCRIBE  id, filters (options 0), topic = the first filter, props
 *   SUBACK       id, data (one return / reason code per filter), props
 *   UNSUBACK     id, data (5.0: one reason code per filter; 3.1.1: empty)
 *   DISCONNECT   ack (5.0 reason code; 0 when absent), props
 *   AUTH         ack (reason code), props
 *   PINGREQ, PINGRESP nothing */
typedef struct cymg_mqtt_msg {
  cymg_str topic;
  cymg_str data;
  cymg_str props;   /* v5 property block, without its length prefix: walk it
                       with cymg_mqtt_next_prop(); empty in 3.1.1 */
  cymg_str filters; /* SUBSCRIBE / UNSUBSCRIBE payload */
  cymg_str dgram;   /* the whole packet, fixed header included */
  uint16_t id;      /* packet identifier; 0 when the packet has none */
  uint8_t cmd;      /* CYMG_MQTT_CMD_* */
  uint8_t qos;      /* PUBLISH QoS 0..2; SUBSCRIBE: the first filter's */
  uint8_t ack;      /* return / reason code (see above) */
  uint8_t version;  /* CYMG_MQTT_V311 or CYMG_MQTT_V5 */
  bool dup, retain, session_present;
  /* CONNECT only. has_* say whether the optional fields are present (a
   * present field may be empty). */
  struct cymg_mqtt_connect_fields {
    cymg_str client_id, username, password;
    cymg_str will_topic, will_payload, will_props; /* will_props: v5 will properties */
    uint16_t keepalive;                            /* seconds */
    uint8_t will_qos;
    bool has_will, will_retain, has_username, has_password, clean;
  } connect;
} cymg_mqtt_msg;

/* A decode failure: the reason code the spec gives it (MALFORMED,
 * PROTOCOL_ERROR, PACKET_TOO_LARGE, TOPIC_NAME_INVALID, UNSUPPORTED_VERSION)
 * and a static text saying exactly what was wrong. */
typedef struct cymg_mqtt_err {
  uint8_t reason;
  const char *why;
} cymg_mqtt_err;

/* ------------------------------------------------------------------ codec --- */

/* Parses the variable byte integer at buf[0..len) (1..4 bytes, value up to
 * CYMG_MQTT_MAX_REMAINING). Returns its length and sets *value; CYMG_EAGAIN
 * when more bytes are needed; CYMG_EPARSE for a fifth byte. Non-minimal forms
 * (0x80 0x00) are accepted as the spec does not forbid them on input.
 * Thread-safe. */
CYMG_API int cymg_mqtt_varint_parse(const void *buf, size_t len, uint32_t *value);
/* Writes value (<= CYMG_MQTT_MAX_REMAINING) in the minimal form into out;
 * returns its length (1..4), or 0 when value is too large. */
CYMG_API size_t cymg_mqtt_varint_encode(uint8_t out[4], uint32_t value);

/* Parses one packet from buf[0..len). version is the connection's protocol
 * level (CYMG_MQTT_V311 or V5); a CONNECT brings its own and sets
 * m->version from it. max_size limits the whole packet (0: the spec's
 * maximum). Returns the packet's length (> 0) with *m filled; CYMG_EAGAIN when
 * the packet is not complete yet (never when its announced size already
 * exceeds max_size: that is CYMG_ELIMIT at once); otherwise CYMG_EPARSE
 * (malformed), CYMG_EPROTO (a protocol error: bad flags, forbidden property,
 * wildcard in a PUBLISH topic, ...) or CYMG_ELIMIT (too large), with *err
 * filled (err may be NULL). Reads no byte outside buf[0..len). Thread-safe. */
CYMG_API CYMG_NODISCARD int cymg_mqtt_parse(const void *buf, size_t len, int version,
                                            size_t max_size, cymg_mqtt_msg *m, cymg_mqtt_err *err);

/* Encodes m (as cymg_mqtt_parse would have produced it: cmd, the fields of
 * that packet type, props as a raw block, filters as a raw SUBSCRIBE /
 * UNSUBSCRIBE payload) for protocol level `version` into out[0..cap). Returns
 * the length of the whole packet (even when larger than cap: then nothing is
 * complete and the caller retries with that much room, as snprintf), or
 * CYMG_EINVAL for a packet the spec forbids (bad topic, QoS 3, properties in
 * 3.1.1, a property not allowed in that packet, remaining length too large).
 * Thread-safe. */
CYMG_API CYMG_NODISCARD int cymg_mqtt_encode(const cymg_mqtt_msg *m, int version, void *out,
                                             size_t cap);

/* Walks a property block: *ofs starts at 0. Returns 1 and fills *p with the
 * next property, 0 at the end, CYMG_EPARSE on a malformed block (the blocks
 * the parser hands out are already checked). Thread-safe. */
CYMG_API CYMG_NODISCARD int cymg_mqtt_next_prop(cymg_str props, size_t *ofs, cymg_mqtt_prop *p);
/* Encodes n properties as a block (no length prefix) into out[0..cap). Returns
 * the block's length (as cymg_mqtt_encode when over cap) or CYMG_EINVAL for an
 * unknown id, a value out of its type's range or invalid UTF-8. */
CYMG_API CYMG_NODISCARD int cymg_mqtt_props_encode(const cymg_mqtt_prop *props, size_t n, void *out,
                                                   size_t cap);
/* The value type of a property id (CYMG_MQTT_PROP_TYPE_*), or -1 when unknown. */
CYMG_API int cymg_mqtt_prop_type(uint8_t id);

/* Walks a SUBSCRIBE / UNSUBSCRIBE filter list (m->filters): *ofs starts at 0.
 * Returns 1 with the filter and its options byte (SUBSCRIBE: QoS in the low
 * two bits; 5.0 adds no-local 0x04, retain-as-published 0x08, retain handling
 * 0x30; UNSUBSCRIBE: 0), 0 at the end, CYMG_EPARSE when malformed. */
CYMG_API CYMG_NODISCARD int cymg_mqtt_next_filter(const cymg_mqtt_msg *m, size_t *ofs,
                                                  cymg_str *filter, uint8_t *opts);
/* Appends one filter entry (2-byte length, filter, and for SUBSCRIBE the
 * options byte; opts < 0 for UNSUBSCRIBE) at out + len, the list built so far
 * being out[0..len). Returns len plus the entry's size (written only when that
 * fits in cap, as snprintf) or CYMG_EINVAL for a bad filter. */
CYMG_API CYMG_NODISCARD int cymg_mqtt_filter_encode(cymg_str filter, int opts, void *out,
                                                    size_t cap, size_t len);

/* Validation (spec rules, thread-safe). UTF-8 string: well-formed, no U+0000,
 * no surrogates, at most 65535 bytes. A topic name: non-empty UTF-8 without
 * '+' or '#'. A filter: non-empty UTF-8, '#' only as the whole last level,
 * '+' only as a whole level. Each returns true when valid. */
CYMG_API bool cymg_mqtt_utf8_valid(cymg_str s);
CYMG_API bool cymg_mqtt_topic_valid(cymg_str topic);
CYMG_API bool cymg_mqtt_filter_valid(cymg_str filter);
/* Whether topic matches filter ('+' one level, '#' the rest; a filter
 * starting with a wildcard matches no topic starting with '$'). */
CYMG_API bool cymg_mqtt_match(cymg_str topic, cymg_str filter);

/* Name of a packet type ("PUBLISH") or "?" */
CYMG_API const char *cymg_mqtt_cmd_name(int cmd);

/* ------------------------------------------------------- connection layer --- */

/* An MQTT session's client-side state carried from one connection to the
 * next: outgoing QoS 1/2 messages not yet acknowledged (resent with DUP),
 * incoming QoS 2 ids awaiting PUBREL, the next packet id. Opaque. */
typedef struct cymg_mqtt_session cymg_mqtt_session;

/* Client options. Zeroed means: 3.1.1, random client id, no credentials, no
 * will, clean session, keep-alive 60 s... (see each field). Strings are
 * copied by cymg_mqtt_connect. */
typedef struct cymg_mqtt_opts {
  cymg_str client_id;          /* empty: a random one "cymg-" + 16 hex digits */
  cymg_str username, password; /* empty: not sent (a password needs a username
                                  in 3.1.1) */
  cymg_str will_topic;         /* empty: no will */
  cymg_str will_payload;
  const cymg_mqtt_prop *will_props; /* 5.0 only */
  size_t num_will_props;
  const cymg_mqtt_prop *props; /* CONNECT properties, 5.0 only */
  size_t num_props;
  uint32_t session_expiry; /* 5.0: added as Session Expiry Interval when != 0 */
  uint16_t keepalive;      /* seconds; 0 = no keep-alive. See no_keepalive. */
  bool no_keepalive;       /* keepalive 0 in a zeroed struct means 60; set this
                              to really send 0 */
  uint8_t version;         /* 0 or CYMG_MQTT_V311: 3.1.1; CYMG_MQTT_V5 */
  uint8_t will_qos;
  bool will_retain;
  bool persistent;            /* clean session / clean start off (zeroed: clean) */
  uint16_t inflight;          /* outgoing QoS 1/2 messages unacknowledged at once;
                                 further pub calls fail with CYMG_ELIMIT. 0: 64 */
  uint32_t max_packet;        /* largest incoming packet; 0: 1 MiB (also the
                                 receive buffer's limit) */
  cymg_mqtt_session *session; /* taken over by a successful connect (freed by
                                 the connection); still the caller's when
                                 cymg_mqtt_connect fails */
} cymg_mqtt_opts;

/* Connects to "mqtt://HOST[:1883]" or "mqtts://HOST[:8883]" (TLS: options with
 * cymg_tls_init on the connection, the system trust store by default).
 * "ws://HOST/PATH" or "wss://..." is MQTT over WebSocket (subprotocol "mqtt",
 * one packet per binary message, packets may span messages on input; the
 * WebSocket layer's WS_CTL events still reach fn, WS_OPEN and WS_MSG do not).
 * CONNECT is queued at once (over WebSocket: sent when the upgrade is done).
 * Then:
 * CYMG_EV_MQTT_OPEN once with the CONNACK code (int *; non-zero: the
 * connection closes after the event); CYMG_EV_MQTT_MSG for each PUBLISH
 * received (its PUBACK / PUBREC already queued; a QoS 2 message is delivered
 * once even when the broker resends it); CYMG_EV_MQTT_CMD for every packet,
 * after MSG for a PUBLISH. PUBREL/PUBCOMP are answered automatically. A
 * malformed or forbidden packet gives CYMG_EV_ERROR with the reason (v5: a
 * DISCONNECT with the reason code is sent first), then CLOSE. Keep-alive: a
 * PINGREQ goes out every keepalive seconds; when a whole interval passes
 * after it with no packet from the broker, ERROR "keep-alive timeout" and
 * CLOSE. opts may be NULL. Returns 0 and sets *out (may be NULL), or a
 * negative code as cymg_connect() (message in cymg_mgr_errmsg()). */
CYMG_API int cymg_mqtt_connect(cymg_mgr *mgr, const char *url, const cymg_mqtt_opts *opts,
                               cymg_event_fn fn, void *fn_data, cymg_conn **out);

/* Listens on "mqtt://HOST:PORT" (or mqtts://). Accepted connections parse
 * MQTT (the version comes from their CONNECT) and deliver MQTT_MSG and
 * MQTT_CMD as a client does, answering PUBLISH with PUBACK/PUBREC and PUBREL
 * with PUBCOMP (the QoS flow), but nothing else: CONNACK, SUBACK, UNSUBACK
 * and PINGRESP are the program's to send with the helpers below. A second
 * CONNECT, a packet before CONNECT, or malformed input gives ERROR and CLOSE
 * of that connection only. Returns 0 or a negative code as cymg_listen(). */
CYMG_API int cymg_mqtt_listen(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                              cymg_conn **out);

/* True when c carries the MQTT layer (client, listener or accepted). */
CYMG_API bool cymg_conn_is_mqtt(const cymg_conn *c);
/* The connection's protocol level (from opts, or the peer's CONNECT); 0 when
 * not MQTT or not known yet. */
CYMG_API int cymg_mqtt_version(const cymg_conn *c);

/* Sending. Each queues one packet (data and properties copied; properties
 * only in 5.0, else CYMG_EINVAL). On a listener each does nothing and returns
 * 0. Errors: CYMG_EINVAL (bad topic / filter, QoS > 2, property not allowed),
 * CYMG_ECLOSED (closing), CYMG_ESTATE (not MQTT), CYMG_ELIMIT (inflight
 * window full, send buffer limit), CYMG_ENOMEM. */

/* PUBLISH. Returns 0 for QoS 0, else the packet id (1..65535, never one still
 * in flight on this connection); the message is kept until acknowledged
 * (PUBACK; PUBREC then PUBCOMP for QoS 2) and resent with DUP when its
 * session resumes on a new connection. Also on accepted connections, to route
 * messages from a program acting as a broker. */
CYMG_API int cymg_mqtt_pub(cymg_conn *c, cymg_str topic, cymg_str data, int qos, bool retain,
                           const cymg_mqtt_prop *props, size_t num_props);
/* SUBSCRIBE one filter with options (QoS in the low bits, 5.0 flags above, see
 * cymg_mqtt_next_filter). Returns the packet id (> 0). */
CYMG_API int cymg_mqtt_sub(cymg_conn *c, cymg_str filter, int opts, const cymg_mqtt_prop *props,
                           size_t num_props);
/* UNSUBSCRIBE one filter. Returns the packet id (> 0). */
CYMG_API int cymg_mqtt_unsub(cymg_conn *c, cymg_str filter, const cymg_mqtt_prop *props,
                             size_t num_props);
/* PINGREQ; PINGRESP. Return 0. */
CYMG_API int cymg_mqtt_ping(cymg_conn *c);
CYMG_API int cymg_mqtt_pong(cymg_conn *c);
/* DISCONNECT (5.0: with reason and properties) and nothing else: the
 * connection stays open until the peer closes it or the program does. */
CYMG_API int cymg_mqtt_disconnect(cymg_conn *c, uint8_t reason, const cymg_mqtt_prop *props,
                                  size_t num_props);

/* Listener-side answers (on an accepted connection). */
/* CONNACK with the return / reason code (3.1.1: 0..5). */
CYMG_API int cymg_mqtt_connack(cymg_conn *c, bool session_present, uint8_t code,
                               const cymg_mqtt_prop *props, size_t num_props);
/* SUBACK / UNSUBACK for packet id with one code per filter (UNSUBACK in 3.1.1
 * carries none: codes ignored). */
CYMG_API int cymg_mqtt_suback(cymg_conn *c, uint16_t id, const uint8_t *codes, size_t n,
                              const cymg_mqtt_prop *props, size_t num_props);
CYMG_API int cymg_mqtt_unsuback(cymg_conn *c, uint16_t id, const uint8_t *codes, size_t n,
                                const cymg_mqtt_prop *props, size_t num_props);
/* PINGRESP: the same as cymg_mqtt_pong(). */
CYMG_API int cymg_mqtt_pingresp(cymg_conn *c);

/* Sessions. Detaches the session state from a client connection (any time
 * before its CLOSE has been dispatched, typically in the CLOSE event) and
 * gives it to *out: pass it as opts.session to resume on a new connection
 * with persistent set. Returns 0, CYMG_ESTATE (not an MQTT client) or
 * CYMG_ENOMEM; CYMG_EINVAL for a NULL out. */
CYMG_API int cymg_mqtt_session_take(cymg_conn *c, cymg_mqtt_session **out);
/* Messages waiting for acknowledgement in a session. */
CYMG_API size_t cymg_mqtt_session_pending(const cymg_mqtt_session *s);
CYMG_API void cymg_mqtt_session_free(cymg_mqtt_session *s);
/* Outgoing QoS 1/2 messages unacknowledged on a connection. */
CYMG_API size_t cymg_mqtt_inflight(const cymg_conn *c);

#ifdef __cplusplus
}
#endif
#endif
