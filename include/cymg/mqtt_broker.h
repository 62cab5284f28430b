/* An MQTT 3.1.1 / 5.0 broker on the manager's loop.
 *
 * Opt-in and separate from the parser-level listener (cymg_mqtt_listen, whose
 * connections send nothing by themselves): a broker answers CONNECT,
 * SUBSCRIBE, UNSUBSCRIBE and PINGREQ, routes PUBLISH to every matching
 * subscription, keeps retained messages, persistent sessions with their
 * queued messages, wills, and enforces keep-alive (1.5x) and its limits.
 * One broker may listen on mqtt://, mqtts://, ws:// and wss:// (MQTT over
 * WebSocket, subprotocol "mqtt") at once; TLS listeners take their options
 * with cymg_tls_init on the listener returned.
 *
 * Authentication and per-topic authorisation are hooks; persistence is an
 * optional file (retained messages and persistent sessions survive a restart;
 * nothing acknowledged is lost by a crash); a bridge forwards chosen topics to
 * and from an upstream broker. All calls belong to the manager's thread.
 */
#ifndef CYMG_MQTT_BROKER_H
#define CYMG_MQTT_BROKER_H

#include "mqtt.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cymg_mqtt_broker cymg_mqtt_broker;
typedef struct cymg_mqtt_bridge cymg_mqtt_bridge;

/* Who is connecting or acting, as the hooks see it. Views valid during the
 * call only. */
typedef struct cymg_mqtt_client_info {
  cymg_str client_id; /* the assigned one when the client sent none */
  cymg_str username, password;
  cymg_str cert_subject; /* TLS client certificate subject; empty without one */
  const cymg_conn *conn; /* cymg_conn_remote(conn) gives the peer address */
  uint8_t version;       /* CYMG_MQTT_V311 or CYMG_MQTT_V5 */
  bool has_username, has_password;
} cymg_mqtt_client_info;

/* Authentication, called once per CONNECT before anything else happens for
 * it. Returns 0 to accept, or a v5 CONNACK reason code to refuse (0x86 bad
 * user name or password, 0x87 not authorized, 0x85 client identifier not
 * valid, 0x8A banned, ...); a 3.1.1 client gets the matching return code
 * (0x86 -> 4, 0x85 -> 2, other refusals -> 5). */
typedef int (*cymg_mqtt_auth_fn)(void *data, const cymg_mqtt_client_info *who);

/* What an authorisation call is about. */
enum { CYMG_MQTT_ACL_PUBLISH = 1, CYMG_MQTT_ACL_SUBSCRIBE = 2 };

/* Per-topic authorisation: a PUBLISH (topic name, also a will when it is
 * published) or each SUBSCRIBE filter. Returns 0 to allow or a reason code
 * (0x87 not authorized). A refused PUBLISH is not routed: QoS 1/2 are
 * answered with that code in 5.0 (PUBACK / PUBREC), acknowledged normally in
 * 3.1.1 (which has no negative acknowledgement); a refused filter gets that
 * code in SUBACK (3.1.1: 0x80). */
typedef int (*cymg_mqtt_acl_fn)(void *data, const cymg_mqtt_client_info *who, int action,
                                cymg_str topic, int qos, bool retain);

/* Broker options. Zeroed means: anyone may connect and do anything, in
 * memory only, and the defaults given beside each limit. */
typedef struct cymg_mqtt_broker_opts {
  cymg_mqtt_auth_fn auth; /* NULL: everyone accepted */
  void *auth_data;
  cymg_mqtt_acl_fn acl; /* NULL: everything allowed */
  void *acl_data;
  /* Sees every event of the broker's client connections after the broker
   * handled it (ACCEPT, MQTT_CMD, MQTT_MSG, ERROR, CLOSE...), e.g. for
   * logging; NULL: none. Must not send on them. */
  cymg_event_fn fn;
  void *fn_data;
  const char *persist_path; /* NULL: nothing survives the process */
  uint32_t max_connections; /* client connections at once; 0: no limit. Beyond:
                               CONNACK 0x97 quota exceeded (3.1.1: 3) and close */
  uint32_t max_packet;      /* largest packet accepted (and sent, v5: the
                               client's own Maximum Packet Size too); 0: 1 MiB */
  uint32_t max_subs;        /* subscriptions per client; 0: 1000. Beyond: SUBACK
                               0x97 for that filter */
  uint32_t max_queued;      /* messages queued per session (offline, or beyond
                               the inflight window); 0: 1000 */
  uint64_t max_queued_bytes; /* payload bytes queued per session; 0: 16 MiB */
  uint32_t max_retained;     /* retained messages kept; 0: 100,000 */
  uint32_t max_session_expiry; /* cap on v5 Session Expiry (s); 0: none */
  uint16_t receive_max;        /* QoS 1/2 in flight per client, each way
                                  (v5 Receive Maximum); 0: 64 */
  uint16_t topic_alias_max;    /* aliases a v5 client may set; 0: 64 */
  uint16_t max_keepalive;      /* v5 Server Keep Alive when a client asks more
                                  (or 0); 0: no cap */
  uint8_t max_qos;             /* 0..2 with has_max_qos; otherwise 2 */
  bool has_max_qos;
  bool no_retain;   /* retained messages off (v5 Retain Available 0) */
  bool no_wildcard; /* wildcard filters refused (0xA2) */
  bool no_shared;   /* $share/ refused (0x9E) */
  bool no_sub_ids;  /* subscription identifiers refused (0xA1) */
  /* What a full session queue does: false (zeroed) drops the new message
   * for that session (counted); true disconnects the client (v5 0x97). */
  bool disconnect_on_full;
} cymg_mqtt_broker_opts;

/* Counters, for monitoring and tests. */
typedef struct cymg_mqtt_broker_stats {
  size_t clients;       /* connected and past CONNECT */
  size_t sessions;      /* including offline persistent ones */
  size_t subscriptions; /* over all sessions, shared ones included */
  size_t retained;
  size_t queued;        /* messages waiting in sessions */
  uint64_t msgs_in, msgs_out; /* PUBLISH packets received / sent */
  uint64_t bytes_in, bytes_out;
  uint64_t dropped; /* messages not delivered to a session for a limit */
} cymg_mqtt_broker_stats;

/* Creates a broker on mgr (no listener yet). With persist_path, loads what
 * the file holds first (retained messages, offline sessions with their
 * subscriptions and queued messages); a file that cannot be read or is not
 * ours fails with a negative errno / CYMG_EPARSE and a message in
 * cymg_mgr_errmsg(),
 * while a torn last record (a crash mid-write) is dropped, as it was never
 * acknowledged. opts may be NULL. Returns 0 and sets *out. */
CYMG_API CYMG_NODISCARD int cymg_mqtt_broker_new(cymg_mgr *mgr, const cymg_mqtt_broker_opts *opts,
                                                 cymg_mqtt_broker **out);

/* Listens on "mqtt://HOST:PORT" (1883), "mqtts://..." (8883),
 * "ws://HOST:PORT[/PATH]" or "wss://..." (MQTT over WebSocket with the "mqtt"
 * subprotocol; any path unless one is given). Any number of listeners, of any
 * kinds. A TLS listener needs cymg_tls_init(*out, ...) before its first
 * accept; a CA there makes it ask for client certificates, whose subject the
 * hooks see. Returns 0 or a negative code as cymg_listen(). */
CYMG_API CYMG_NODISCARD int cymg_mqtt_broker_listen(cymg_mqtt_broker *b, const char *url,
                                                    cymg_conn **out);

/* Closes the listeners and client connections (no wills are published: a
 * shutdown is not a client failure; persistent sessions stay in the file),
 * flushes and closes the persistence file, frees everything. Bridges are
 * freed with it. NULL is fine. */
CYMG_API void cymg_mqtt_broker_free(cymg_mqtt_broker *b);

/* Publishes from inside the process, as if a client had: routed to every
 * matching subscription, retained when asked (an empty payload with retain
 * clears the topic). origin is an opaque tag handed to watchers (NULL for
 * none) so a forwarder can recognise its own messages. Returns 0, CYMG_EINVAL
 * (bad topic, QoS > 2, property not allowed in PUBLISH) or CYMG_ENOMEM. */
CYMG_API CYMG_NODISCARD int cymg_mqtt_broker_publish(cymg_mqtt_broker *b, cymg_str topic,
                                                     cymg_str data, int qos, bool retain,
                                                     const cymg_mqtt_prop *props, size_t num_props,
                                                     const void *origin);

/* In-process subscribers. fn is called for every message routed by the
 * broker (from clients, wills, cymg_mqtt_broker_publish) whose topic matches
 * filter, with the PUBLISH as received (m->qos the publisher's, m->props its
 * v5 properties) and the origin given to cymg_mqtt_broker_publish (NULL for
 * messages from clients). Retained messages are not replayed to a new
 * watcher. fn may publish, but must not free the broker. Returns 0 and sets
 * *id (for unwatch), or CYMG_EINVAL for a bad filter. */
typedef void (*cymg_mqtt_watch_fn)(void *data, const cymg_mqtt_msg *m, const void *origin);
CYMG_API CYMG_NODISCARD int cymg_mqtt_broker_watch(cymg_mqtt_broker *b, cymg_str filter,
                                                   cymg_mqtt_watch_fn fn, void *data,
                                                   uint64_t *id);
/* Returns 0 or CYMG_ENOTFOUND. */
CYMG_API int cymg_mqtt_broker_unwatch(cymg_mqtt_broker *b, uint64_t id);

CYMG_API void cymg_mqtt_broker_get_stats(const cymg_mqtt_broker *b, cymg_mqtt_broker_stats *st);

/* ----------------------------------------------------------------- bridge --- */

/* Which way a bridged pattern goes. */
enum { CYMG_MQTT_BRIDGE_OUT = 1, CYMG_MQTT_BRIDGE_IN = 2, CYMG_MQTT_BRIDGE_BOTH = 3 };

typedef struct cymg_mqtt_bridge_topic {
  const char *filter; /* e.g. "sensors/#" */
  int direction;      /* CYMG_MQTT_BRIDGE_* */
  int qos;            /* the QoS used on the bridge for it (0..2) */
} cymg_mqtt_bridge_topic;

typedef struct cymg_mqtt_bridge_opts {
  const char *url; /* upstream: mqtt://, mqtts://, ws://, wss:// */
  /* client id, credentials, version (zeroed: 5.0, so no-local stops the
   * upstream echoing our own messages back), keep-alive, persistent session */
  cymg_mqtt_opts client;
  const cymg_tls_opts *tls; /* for a TLS upstream; NULL: the system trust store */
  const cymg_mqtt_bridge_topic *topics;
  size_t num_topics;
  uint32_t backoff_min_ms, backoff_max_ms; /* reconnect back-off; 0: 1 s, 60 s */
} cymg_mqtt_bridge_opts;

/* Connects b to an upstream broker and keeps it connected (exponential
 * back-off with jitter between attempts): local messages matching an OUT
 * pattern are published upstream, upstream messages matching an IN pattern
 * are published locally, each with its QoS (at most the pattern's) and retain
 * flag; messages never loop (our own forwarded ones are recognised in both
 * directions). QoS 1/2 messages forwarded upstream are kept until the
 * upstream acknowledges them, also across reconnects. Returns 0 and sets *out
 * (may be NULL), or CYMG_EINVAL for bad options. */
CYMG_API CYMG_NODISCARD int cymg_mqtt_bridge_new(cymg_mqtt_broker *b,
                                                 const cymg_mqtt_bridge_opts *opts,
                                                 cymg_mqtt_bridge **out);
/* Whether the bridge is connected upstream (CONNACK accepted). */
CYMG_API bool cymg_mqtt_bridge_connected(const cymg_mqtt_bridge *br);
/* Stops and frees a bridge (also done by cymg_mqtt_broker_free). */
CYMG_API void cymg_mqtt_bridge_free(cymg_mqtt_bridge *br);

#ifdef __cplusplus
}
#endif
#endif
