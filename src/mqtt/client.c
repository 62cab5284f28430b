/* The MQTT connection layer: a client, the parser-level listener and its
 * accepted connections. The codec does the bytes; this file keeps the state
 * of the QoS flows, the session, keep-alive, and raises the events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymg/mqtt.h"
#include "cymg/rand.h"
#include "cymg/timer.h"
#include "cymg/url.h"
#include "internal.h"
#include "ws/ws_internal.h"

/* An outgoing QoS 1/2 PUBLISH kept until its flow ends. */
typedef struct outmsg {
  struct outmsg *next;
  uint16_t id;
  uint8_t qos;
  bool released; /* QoS 2: PUBREC came, PUBREL sent; only PUBCOMP is awaited */
  bool old;      /* carried from a previous connection: resent or dropped at CONNACK */
  size_t len;
  uint8_t pkt[]; /* the encoded PUBLISH */
} outmsg;

struct cymg_mqtt_session {
  outmsg *out;
  size_t n_out;
  uint16_t next_id;
  uint16_t *in_ids; /* QoS 2 PUBLISH ids received, awaiting PUBREL */
  size_t n_in, cap_in;
};

typedef struct {
  cymg_mgr *mgr;
  cymg_conn *c;
  cymg_mqtt_session s;
  uint32_t max_packet;
  uint16_t inflight_max;
  uint16_t keepalive; /* seconds */
  uint8_t version;    /* 0 until known (an accepted connection before CONNECT) */
  bool listener, server;
  bool handshaken; /* client: CONNACK received; server: CONNECT received */
  bool failed;
  bool rx_since_ping, ping_out;
  cymg_timer_id timer;
  /* MQTT over WebSocket: packets go out one per binary message; what is sent
   * before the upgrade completes waits in pre; received message bytes collect
   * in in (a packet may span messages, a message hold several packets). */
  bool ws;
  cymg_buf pre, in;
  /* v5 topic aliases the peer may set on PUBLISHes to us (we advertised
   * alias_max: in CONNECT's properties, or a listener program's CONNACK):
   * aliases[a - 1] is the topic of alias a (NUL-terminated), NULL when unset. */
  uint16_t alias_max;
  char **aliases;
  size_t alias_bytes;
} mqtt_state;

#define DEFAULT_INFLIGHT 64
#define DEFAULT_MAX_PACKET (1u << 20)
/* Bytes of topics the peer may keep in our alias table at once. */
#define MAX_ALIAS_BYTES (256u * 1024)

static const cymg_proto mqtt_proto, mqtt_ws_inner;

static mqtt_state *mq_of(const cymg_conn *c) {
  if (c == NULL) return NULL;
  if (c->proto == &mqtt_proto) return c->proto_state;
  cymg__ws *ws = cymg__ws_of(c);
  return (ws && ws->inner == &mqtt_ws_inner) ? ws->inner_state : NULL;
}

/* Queues one encoded packet on the connection's transport. */
static int xmit(cymg_conn *c, mqtt_state *mq, const void *p, size_t n) {
  if (!mq->ws) return cymg_send(c, p, n);
  cymg__ws *ws = cymg__ws_of(c);
  if (ws && ws->open) return cymg_ws_send(c, p, n, CYMG_WS_OP_BINARY);
  if (c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) return CYMG_ECLOSED;
  if (mq->pre.len + n > c->send_limit) return CYMG_ELIMIT;
  return cymg_buf_append(&mq->pre, p, n);
}

static void session_clear(cymg_mqtt_session *s) {
  for (outmsg *o = s->out, *n; o; o = n) {
    n = o->next;
    free(o);
  }
  free(s->in_ids);
  memset(s, 0, sizeof(*s));
}

static void disarm(mqtt_state *mq) {
  /* CYMG_ENOTFOUND only means the timer had ended already: nothing to undo. */
  if (mq->timer && cymg_timer_active(mq->mgr, mq->timer) &&
      cymg_timer_cancel(mq->mgr, mq->timer) < 0)
    CYMG__DEBUG("MQTT timer already gone");
  mq->timer = 0;
}

static void aliases_free(mqtt_state *mq) {
  for (size_t i = 0; mq->aliases && i < mq->alias_max; i++) free(mq->aliases[i]);
  free(mq->aliases);
  mq->aliases = NULL;
  mq->alias_bytes = 0;
}

/* The integer value of property id among props[0..n), or 0 when absent. */
static uint32_t prop_value(const cymg_mqtt_prop *props, size_t n, uint8_t id) {
  for (size_t i = 0; props && i < n; i++)
    if (props[i].id == id) return props[i].iv;
  return 0;
}

/* The peer may now set up to max aliases (a new table: the old one, from a
 * previous CONNACK of a listener program, is dropped). */
static void aliases_allow(mqtt_state *mq, uint32_t max) {
  aliases_free(mq);
  mq->alias_max = (uint16_t)(max > 65535 ? 65535 : max);
}

static void mqtt_free(void *state) {
  mqtt_state *mq = state;
  aliases_free(mq);
  disarm(mq);
  session_clear(&mq->s);
  cymg_buf_free(&mq->pre);
  cymg_buf_free(&mq->in);
  free(mq);
}

/* ---- sending ---- */

/* Encodes m for the connection's version and queues it. */
static int send_msg(cymg_conn *c, mqtt_state *mq, const cymg_mqtt_msg *m) {
  uint8_t small[256];
  int n = cymg_mqtt_encode(m, mq->version, small, sizeof(small));
  if (n < 0) return n;
  if ((size_t)n <= sizeof(small)) return xmit(c, mq, small, (size_t)n);
  uint8_t *big = malloc((size_t)n);
  if (big == NULL) return CYMG_ENOMEM;
  int rc = cymg_mqtt_encode(m, mq->version, big, (size_t)n);
  if (rc >= 0) rc = xmit(c, mq, big, (size_t)n);
  free(big);
  return rc;
}

/* A property block from an array, in *out (malloc'd, NULL when empty). */
static int props_block(const mqtt_state *mq, const cymg_mqtt_prop *props, size_t n, uint8_t **out,
                       cymg_str *blk) {
  *out = NULL;
  *blk = cymg_str_n(NULL, 0);
  if (n == 0) return 0;
  if (props == NULL || mq->version != CYMG_MQTT_V5) return CYMG_EINVAL;
  int len = cymg_mqtt_props_encode(props, n, NULL, 0);
  if (len < 0) return len;
  if ((*out = malloc((size_t)len ? (size_t)len : 1)) == NULL) return CYMG_ENOMEM;
  int rc = cymg_mqtt_props_encode(props, n, *out, (size_t)len);
  if (rc < 0) {
    free(*out);
    *out = NULL;
    return rc;
  }
  *blk = cymg_str_n(*out, (size_t)len);
  return 0;
}

/* Checks shared by every send call: 1 on a listener (do nothing), 0 to go on,
 * or a negative code. */
static int send_gate(const cymg_conn *c, mqtt_state **mqp) {
  *mqp = mq_of(c);
  if (c == NULL) return CYMG_EINVAL;
  if (*mqp == NULL) return CYMG_ESTATE;
  if ((*mqp)->listener) return 1;
  if (c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) return CYMG_ECLOSED;
  if ((*mqp)->version == 0) return CYMG_ESTATE; /* accepted, before its CONNECT */
  return 0;
}

static int send_simple(cymg_conn *c, uint8_t cmd, uint16_t id, uint8_t ack,
                       const cymg_mqtt_prop *props, size_t n, cymg_str data) {
  mqtt_state *mq;
  int rc = send_gate(c, &mq);
  if (rc != 0) return rc > 0 ? 0 : rc;
  uint8_t *pb;
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  if ((rc = props_block(mq, props, n, &pb, &m.props)) < 0) return rc;
  m.cmd = cmd;
  m.ack = ack;
  m.data = data;
  /* CONNACK has no packet id: its id argument carries session_present. */
  m.session_present = (cmd == CYMG_MQTT_CMD_CONNACK) && (id != 0);
  m.id = cmd == CYMG_MQTT_CMD_CONNACK ? 0 : id;
  rc = send_msg(c, mq, &m);
  free(pb);
  return rc;
}

static bool id_in_flight(const mqtt_state *mq, uint16_t id) {
  for (const outmsg *o = mq->s.out; o; o = o->next)
    if (o->id == id) return true;
  return false;
}

static uint16_t new_id(mqtt_state *mq) {
  for (;;) {
    if (++mq->s.next_id == 0) mq->s.next_id = 1;
    if (!id_in_flight(mq, mq->s.next_id)) return mq->s.next_id;
  }
}

int cymg_mqtt_pub(cymg_conn *c, cymg_str topic, cymg_str data, int qos, bool retain,
                  const cymg_mqtt_prop *props, size_t num_props) {
  mqtt_state *mq;
  int rc = send_gate(c, &mq);
  if (rc != 0) return rc > 0 ? 0 : rc;
  if (qos < 0 || qos > 2 || !cymg_mqtt_topic_valid(topic)) return CYMG_EINVAL;
  if (qos > 0 && mq->s.n_out >= mq->inflight_max) return CYMG_ELIMIT;
  uint8_t *pb;
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  if ((rc = props_block(mq, props, num_props, &pb, &m.props)) < 0) return rc;
  m.cmd = CYMG_MQTT_CMD_PUBLISH;
  m.topic = topic;
  m.data = data;
  m.qos = (uint8_t)qos;
  m.retain = retain;
  m.id = qos ? new_id(mq) : 0;
  if (qos == 0) {
    rc = send_msg(c, mq, &m);
    free(pb);
    return rc < 0 ? rc : 0;
  }
  int n = cymg_mqtt_encode(&m, mq->version, NULL, 0);
  outmsg *o = n < 0 ? NULL : malloc(sizeof(*o) + (size_t)n);
  if (n < 0 || o == NULL) {
    free(pb);
    return n < 0 ? n : CYMG_ENOMEM;
  }
  rc = cymg_mqtt_encode(&m, mq->version, o->pkt, (size_t)n);
  free(pb);
  if (rc >= 0) rc = xmit(c, mq, o->pkt, (size_t)n);
  if (rc < 0) {
    free(o);
    return rc;
  }
  o->id = m.id;
  o->qos = (uint8_t)qos;
  o->released = o->old = false;
  o->len = (size_t)n;
  /* Appended, so a resend keeps the original order. */
  outmsg **tail = &mq->s.out;
  while (*tail) tail = &(*tail)->next;
  o->next = NULL;
  *tail = o;
  mq->s.n_out++;
  return m.id;
}

static int sub_unsub(cymg_conn *c, uint8_t cmd, cymg_str filter, int opts,
                     const cymg_mqtt_prop *props, size_t n) {
  mqtt_state *mq;
  int rc = send_gate(c, &mq);
  if (rc != 0) return rc > 0 ? 0 : rc;
  uint8_t fb[2 + 65535 + 1];
  if (filter.len > 65535) return CYMG_EINVAL;
  int fl = cymg_mqtt_filter_encode(filter, opts, fb, sizeof(fb), 0);
  if (fl < 0) return fl;
  uint8_t *pb;
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  if ((rc = props_block(mq, props, n, &pb, &m.props)) < 0) return rc;
  m.cmd = cmd;
  m.filters = cymg_str_n(fb, (size_t)fl);
  m.id = new_id(mq);
  rc = send_msg(c, mq, &m);
  free(pb);
  return rc < 0 ? rc : m.id;
}

int cymg_mqtt_sub(cymg_conn *c, cymg_str filter, int opts, const cymg_mqtt_prop *props, size_t n) {
  if (opts < 0 || opts > 0xff) return CYMG_EINVAL;
  return sub_unsub(c, CYMG_MQTT_CMD_SUBSCRIBE, filter, opts, props, n);
}

int cymg_mqtt_unsub(cymg_conn *c, cymg_str filter, const cymg_mqtt_prop *props, size_t n) {
  return sub_unsub(c, CYMG_MQTT_CMD_UNSUBSCRIBE, filter, -1, props, n);
}

int cymg_mqtt_ping(cymg_conn *c) {
  return send_simple(c, CYMG_MQTT_CMD_PINGREQ, 0, 0, NULL, 0, cymg_str_n(NULL, 0));
}
int cymg_mqtt_pong(cymg_conn *c) {
  return send_simple(c, CYMG_MQTT_CMD_PINGRESP, 0, 0, NULL, 0, cymg_str_n(NULL, 0));
}
int cymg_mqtt_pingresp(cymg_conn *c) {
  return cymg_mqtt_pong(c);
}

int cymg_mqtt_disconnect(cymg_conn *c, uint8_t reason, const cymg_mqtt_prop *props, size_t n) {
  return send_simple(c, CYMG_MQTT_CMD_DISCONNECT, 0, reason, props, n, cymg_str_n(NULL, 0));
}

int cymg_mqtt_connack(cymg_conn *c, bool session_present, uint8_t code, const cymg_mqtt_prop *props,
                      size_t n) {
  /* send_simple carries session_present in the id argument */
  int rc = send_simple(c, CYMG_MQTT_CMD_CONNACK, session_present ? 1 : 0, code, props, n,
                       cymg_str_n(NULL, 0));
  mqtt_state *mq = mq_of(c);
  if (rc >= 0 && mq && !mq->listener && mq->server)
    aliases_allow(mq, prop_value(props, n, CYMG_MQTT_PROP_TOPIC_ALIAS_MAXIMUM));
  return rc;
}

int cymg_mqtt_suback(cymg_conn *c, uint16_t id, const uint8_t *codes, size_t n,
                     const cymg_mqtt_prop *props, size_t np) {
  if (id == 0 || n == 0 || codes == NULL) return CYMG_EINVAL;
  return send_simple(c, CYMG_MQTT_CMD_SUBACK, id, 0, props, np, cymg_str_n(codes, n));
}

int cymg_mqtt_unsuback(cymg_conn *c, uint16_t id, const uint8_t *codes, size_t n,
                       const cymg_mqtt_prop *props, size_t np) {
  mqtt_state *mq = mq_of(c);
  if (id == 0 || (n && codes == NULL)) return CYMG_EINVAL;
  bool v5 = mq && mq->version == CYMG_MQTT_V5;
  return send_simple(c, CYMG_MQTT_CMD_UNSUBACK, id, 0, props, np,
                     v5 ? cymg_str_n(codes, n) : cymg_str_n(NULL, 0));
}

/* ---- receiving ---- */

/* A protocol failure: v5 peers past the handshake get a DISCONNECT with the
 * reason code; then ERROR, and the connection ends once that is out. */
static void fail(cymg_conn *c, mqtt_state *mq, uint8_t reason, const char *why) {
  if (mq->failed) return;
  mq->failed = true;
  disarm(mq);
  if (mq->version == CYMG_MQTT_V5 && reason >= 0x80 && (mq->handshaken || !mq->server)) {
    cymg_mqtt_msg m;
    memset(&m, 0, sizeof(m));
    m.cmd = CYMG_MQTT_CMD_DISCONNECT;
    m.ack = reason;
    if (send_msg(c, mq, &m) < 0)
      CYMG__DEBUG("conn %llu: DISCONNECT not queued", (unsigned long long)c->id);
  }
  char msg[200];
  snprintf(msg, sizeof(msg), "MQTT: %s", why);
  cymg_call(c, CYMG_EV_ERROR, msg);
  cymg_drain(c);
}

/* v5 topic aliases on a PUBLISH received (MQTT 5.0 3.3.2.3.4): a topic with
 * an alias sets it, an empty topic uses it; m->topic is the topic either way.
 * Returns false when the connection failed. */
static bool resolve_alias(cymg_conn *c, mqtt_state *mq, cymg_mqtt_msg *m) {
  size_t ofs = 0;
  cymg_mqtt_prop p;
  uint32_t alias = 0;
  while (cymg_mqtt_next_prop(m->props, &ofs, &p) == 1)
    if (p.id == CYMG_MQTT_PROP_TOPIC_ALIAS) alias = p.iv;
  if (alias == 0) {
    if (m->topic.len == 0) fail(c, mq, CYMG_MQTT_RC_PROTOCOL_ERROR, "empty topic and no alias");
    return m->topic.len != 0;
  }
  if (alias > mq->alias_max) {
    fail(c, mq, CYMG_MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias above the maximum we allowed");
    return false;
  }
  if (mq->aliases == NULL && (mq->aliases = calloc(mq->alias_max, sizeof(char *))) == NULL) {
    fail(c, mq, CYMG_MQTT_RC_UNSPECIFIED, "out of memory");
    return false;
  }
  char **slot = &mq->aliases[alias - 1];
  if (m->topic.len == 0) {
    if (*slot == NULL) {
      fail(c, mq, CYMG_MQTT_RC_PROTOCOL_ERROR, "topic alias used before it was set");
      return false;
    }
    m->topic = cymg_str_c(*slot);
    return true;
  }
  size_t old = *slot ? strlen(*slot) : 0;
  if (mq->alias_bytes - old + m->topic.len > MAX_ALIAS_BYTES) {
    fail(c, mq, CYMG_MQTT_RC_QUOTA_EXCEEDED, "topic aliases hold too many bytes");
    return false;
  }
  char *t = malloc(m->topic.len + 1);
  if (t == NULL) {
    fail(c, mq, CYMG_MQTT_RC_UNSPECIFIED, "out of memory");
    return false;
  }
  memcpy(t, m->topic.buf, m->topic.len);
  t[m->topic.len] = '\0';
  free(*slot);
  *slot = t;
  mq->alias_bytes = mq->alias_bytes - old + m->topic.len;
  return true;
}

static int ack(cymg_conn *c, mqtt_state *mq, uint8_t cmd, uint16_t id) {
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = cmd;
  m.id = id;
  return send_msg(c, mq, &m);
}

static bool in_has(const cymg_mqtt_session *s, uint16_t id) {
  for (size_t i = 0; i < s->n_in; i++)
    if (s->in_ids[i] == id) return true;
  return false;
}

static int in_add(cymg_mqtt_session *s, uint16_t id) {
  if (s->n_in == s->cap_in) {
    size_t cap = s->cap_in ? s->cap_in * 2 : 8;
    if (cap > 65535) return CYMG_ELIMIT;
    uint16_t *p = realloc(s->in_ids, cap * sizeof(*p));
    if (p == NULL) return CYMG_ENOMEM;
    s->in_ids = p;
    s->cap_in = cap;
  }
  s->in_ids[s->n_in++] = id;
  return 0;
}

static void in_del(cymg_mqtt_session *s, uint16_t id) {
  for (size_t i = 0; i < s->n_in; i++)
    if (s->in_ids[i] == id) {
      s->in_ids[i] = s->in_ids[--s->n_in];
      return;
    }
}

static void out_del(mqtt_state *mq, uint16_t id) {
  for (outmsg **pp = &mq->s.out; *pp; pp = &(*pp)->next)
    if ((*pp)->id == id) {
      outmsg *o = *pp;
      *pp = o->next;
      free(o);
      mq->s.n_out--;
      return;
    }
}

static outmsg *out_find(mqtt_state *mq, uint16_t id) {
  for (outmsg *o = mq->s.out; o; o = o->next)
    if (o->id == id) return o;
  return NULL;
}

/* CONNACK on a client: the session carried over is resent (the broker kept
 * it) or dropped (it did not, MQTT-3.2.2: discard the session). */
static int on_connack(cymg_conn *c, mqtt_state *mq, const cymg_mqtt_msg *m) {
  for (outmsg **pp = &mq->s.out; *pp;) {
    outmsg *o = *pp;
    if (o->old && !m->session_present) {
      *pp = o->next;
      free(o);
      mq->s.n_out--;
      continue;
    }
    if (o->old) {
      int rc;
      if (o->released) {
        rc = ack(c, mq, CYMG_MQTT_CMD_PUBREL, o->id);
      } else {
        o->pkt[0] |= 0x08; /* DUP */
        rc = xmit(c, mq, o->pkt, o->len);
      }
      if (rc < 0) return rc;
      o->old = false;
    }
    pp = &o->next;
  }
  if (!m->session_present) mq->s.n_in = 0;
  /* v5 Receive Maximum lowers the window */
  size_t ofs = 0;
  cymg_mqtt_prop p;
  while (cymg_mqtt_next_prop(m->props, &ofs, &p) == 1)
    if (p.id == CYMG_MQTT_PROP_RECEIVE_MAXIMUM && p.iv < mq->inflight_max)
      mq->inflight_max = (uint16_t)p.iv;
  return 0;
}

/* Rules on who may send what, and the QoS flows. Returns false when the
 * connection failed. */
static bool handle(cymg_conn *c, mqtt_state *mq, cymg_mqtt_msg *m) {
  int rc = 0;
  unsigned cmd = m->cmd;
  if (!mq->handshaken) {
    unsigned first = mq->server ? CYMG_MQTT_CMD_CONNECT : CYMG_MQTT_CMD_CONNACK;
    if (cmd != first && cmd != CYMG_MQTT_CMD_AUTH) {
      fail(c, mq, CYMG_MQTT_RC_PROTOCOL_ERROR,
           mq->server ? "first packet is not CONNECT" : "first packet is not CONNACK");
      return false;
    }
  }
  bool from_client_only = cmd == CYMG_MQTT_CMD_CONNECT || cmd == CYMG_MQTT_CMD_SUBSCRIBE ||
                          cmd == CYMG_MQTT_CMD_UNSUBSCRIBE || cmd == CYMG_MQTT_CMD_PINGREQ;
  bool from_server_only = cmd == CYMG_MQTT_CMD_CONNACK || cmd == CYMG_MQTT_CMD_SUBACK ||
                          cmd == CYMG_MQTT_CMD_UNSUBACK || cmd == CYMG_MQTT_CMD_PINGRESP;
  if ((mq->server && from_server_only) ||
      (!mq->server && from_client_only && cmd != CYMG_MQTT_CMD_PINGREQ)) {
    fail(c, mq, CYMG_MQTT_RC_PROTOCOL_ERROR, "packet type not allowed in this direction");
    return false;
  }
  switch (cmd) {
    case CYMG_MQTT_CMD_CONNECT:
      if (mq->handshaken) {
        fail(c, mq, CYMG_MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
        return false;
      }
      mq->handshaken = true;
      mq->version = m->version;
      break;
    case CYMG_MQTT_CMD_CONNACK:
      if (mq->handshaken) {
        fail(c, mq, CYMG_MQTT_RC_PROTOCOL_ERROR, "second CONNACK");
        return false;
      }
      mq->handshaken = true;
      if (m->ack == 0) rc = on_connack(c, mq, m);
      break;
    case CYMG_MQTT_CMD_PUBLISH:
      if (mq->version == CYMG_MQTT_V5 && !resolve_alias(c, mq, m)) return false;
      if (m->qos == 1) rc = ack(c, mq, CYMG_MQTT_CMD_PUBACK, m->id);
      if (m->qos == 2) {
        rc = ack(c, mq, CYMG_MQTT_CMD_PUBREC, m->id);
        if (rc >= 0 && in_has(&mq->s, m->id))
          rc = 1; /* seen: no second MSG */
        else if (rc >= 0)
          rc = in_add(&mq->s, m->id);
      }
      break;
    case CYMG_MQTT_CMD_PUBREL:
      in_del(&mq->s, m->id);
      rc = ack(c, mq, CYMG_MQTT_CMD_PUBCOMP, m->id);
      break;
    case CYMG_MQTT_CMD_PUBACK: {
      outmsg *o = out_find(mq, m->id);
      if (o && o->qos == 1) out_del(mq, m->id);
      break;
    }
    case CYMG_MQTT_CMD_PUBREC: {
      outmsg *o = out_find(mq, m->id);
      if (o && o->qos == 2 && m->ack >= 0x80) {
        out_del(mq, m->id); /* refused (v5): the flow ends here */
      } else {
        if (o && o->qos == 2) o->released = true;
        rc = ack(c, mq, CYMG_MQTT_CMD_PUBREL, m->id);
      }
      break;
    }
    case CYMG_MQTT_CMD_PUBCOMP: {
      outmsg *o = out_find(mq, m->id);
      if (o && o->qos == 2) out_del(mq, m->id);
      break;
    }
    default: break;
  }
  if (rc < 0) {
    char why[120];
    snprintf(why, sizeof(why), "%s answer not queued: %s", cymg_mqtt_cmd_name((int)cmd),
             cymg_strerror(rc));
    fail(c, mq, CYMG_MQTT_RC_UNSPECIFIED, why);
    return false;
  }
  if (cmd == CYMG_MQTT_CMD_CONNACK) {
    int code = m->ack;
    cymg_call(c, CYMG_EV_MQTT_OPEN, &code);
  } else if (cmd == CYMG_MQTT_CMD_PUBLISH && rc == 0) {
    cymg_call(c, CYMG_EV_MQTT_MSG, m);
  }
  if (c->flags & CYMG__F_CLOSING) return false;
  cymg_call(c, CYMG_EV_MQTT_CMD, m);
  if (cmd == CYMG_MQTT_CMD_CONNACK && m->ack != 0) {
    cymg_drain(c); /* refused: nothing more on this connection */
    return false;
  }
  return !(c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) && mq_of(c) == mq;
}

/* Packets already received wait while the peer leaves our output unread above
 * the high-water mark (each may add an acknowledgement); WRITE resumes. */
static void mqtt_read(cymg_conn *c, mqtt_state *mq) {
  while (!mq->failed && !(c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) &&
         !cymg__conn_out_full(c)) {
    cymg_str d = mq->ws ? cymg_str_n(mq->in.buf, mq->in.len) : cymg_conn_recv_data(c);
    if (d.len == 0) break;
    cymg_mqtt_msg m;
    cymg_mqtt_err e;
    int rc = cymg_mqtt_parse(d.buf, d.len, mq->version ? mq->version : CYMG_MQTT_V311,
                             mq->max_packet, &m, &e);
    if (rc == CYMG_EAGAIN) break;
    if (rc < 0) {
      fail(c, mq, e.reason, e.why);
      return;
    }
    mq->rx_since_ping = true;
    bool go = handle(c, mq, &m);
    if (mq_of(c) == mq && mq->ws)
      cymg_buf_del(&mq->in, 0, (size_t)rc);
    else if (mq_of(c) == mq)
      cymg_conn_consume(c, (size_t)rc);
    if (!go) return;
  }
}

static void keepalive_fn(void *arg) {
  cymg_conn *c = arg;
  mqtt_state *mq = mq_of(c);
  if (mq == NULL || mq->failed) return;
  if (mq->ping_out && !mq->rx_since_ping) {
    mq->failed = true; /* no DISCONNECT: the broker is not answering anyway */
    disarm(mq);
    cymg_error(c, "keep-alive timeout");
    return;
  }
  mq->rx_since_ping = false;
  mq->ping_out = true;
  int rc = ack(c, mq, CYMG_MQTT_CMD_PINGREQ, 0);
  if (rc < 0) fail(c, mq, CYMG_MQTT_RC_UNSPECIFIED, "PINGREQ not queued");
}

static bool mqtt_event(cymg_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  mqtt_state *mq = mq_of(c);
  if (mq == NULL || mq->listener) return false;
  switch (ev) {
    case CYMG_EV_READ: mqtt_read(c, mq); return true;
    case CYMG_EV_WRITE:
      if (c->recv.len && !mq->failed && !cymg__conn_out_full(c)) mqtt_read(c, mq);
      return false;
    case CYMG_EV_CLOSE: disarm(mq); return false;
    default: return false;
  }
}

/* The inner protocol of an MQTT-over-WebSocket client (see cymg__ws.inner). */
static bool mqtt_ws_event(cymg_conn *c, int ev, void *ev_data) {
  mqtt_state *mq = mq_of(c);
  if (mq == NULL) return false;
  if (ev == CYMG_EV_WS_OPEN) {
    int rc = mq->pre.len ? cymg_ws_send(c, mq->pre.buf, mq->pre.len, CYMG_WS_OP_BINARY) : 0;
    cymg_buf_free(&mq->pre);
    if (rc < 0) fail(c, mq, CYMG_MQTT_RC_UNSPECIFIED, "CONNECT not queued");
    return true;
  }
  if (ev == CYMG_EV_WS_MSG) {
    const cymg_ws_msg *m = ev_data;
    if (mq->failed) return true;
    if (CYMG_WS_OPCODE(m->flags) != CYMG_WS_OP_BINARY) {
      fail(c, mq, CYMG_MQTT_RC_MALFORMED, "text WebSocket message (MQTT needs binary)");
      return true;
    }
    if (mq->in.len + m->data.len > (size_t)mq->max_packet + 5) {
      fail(c, mq, CYMG_MQTT_RC_PACKET_TOO_LARGE, "packet larger than the maximum");
      return true;
    }
    if (cymg_buf_append(&mq->in, m->data.buf, m->data.len) < 0) {
      fail(c, mq, CYMG_MQTT_RC_UNSPECIFIED, "out of memory");
      return true;
    }
    mq->rx_since_ping = true;
    mqtt_read(c, mq);
    return true;
  }
  if (ev == CYMG_EV_WRITE && mq->in.len && !mq->failed && !cymg__conn_out_full(c)) mqtt_read(c, mq);
  if (ev == CYMG_EV_CLOSE) disarm(mq);
  return false;
}

static const cymg_proto mqtt_ws_inner = {"mqtt-ws", mqtt_ws_event, mqtt_free, NULL};

static void *mqtt_accept(cymg_conn *child, cymg_conn *lsn) {
  mqtt_state *l = mq_of(lsn), *mq = calloc(1, sizeof(*mq));
  if (mq == NULL) return NULL;
  mq->mgr = child->mgr;
  mq->c = child;
  mq->server = true;
  mq->max_packet = l ? l->max_packet : DEFAULT_MAX_PACKET;
  mq->inflight_max = DEFAULT_INFLIGHT;
  return mq;
}

static const cymg_proto mqtt_proto = {"mqtt", mqtt_event, mqtt_free, mqtt_accept};

/* ---- entry points ---- */

static int copy_opts_connect(mqtt_state *mq, const cymg_mqtt_opts *o, cymg_mqtt_msg *m, char *idbuf,
                             uint8_t **pb, uint8_t **wpb) {
  memset(m, 0, sizeof(*m));
  m->cmd = CYMG_MQTT_CMD_CONNECT;
  m->connect.client_id = o->client_id;
  if (m->connect.client_id.len == 0) {
    uint8_t rnd[8];
    int rc = cymg_random_bytes(rnd, sizeof(rnd));
    if (rc < 0) return rc;
    int n = snprintf(idbuf, 32, "cymg-");
    for (size_t i = 0; i < sizeof(rnd); i++)
      n += snprintf(idbuf + n, 32 - (size_t)n, "%02x", rnd[i]);
    m->connect.client_id = cymg_str_n(idbuf, (size_t)n);
  }
  m->connect.keepalive = mq->keepalive;
  m->connect.clean = !o->persistent;
  m->connect.has_username = o->username.len > 0;
  m->connect.username = o->username;
  m->connect.has_password = o->password.len > 0;
  m->connect.password = o->password;
  if (o->will_topic.len) {
    m->connect.has_will = true;
    m->connect.will_topic = o->will_topic;
    m->connect.will_payload = o->will_payload;
    m->connect.will_qos = o->will_qos;
    m->connect.will_retain = o->will_retain;
  }
  int rc;
  if (mq->version == CYMG_MQTT_V5) {
    /* the session expiry joins the caller's CONNECT properties */
    size_t n = o->num_props + (o->session_expiry ? 1 : 0);
    cymg_mqtt_prop *all = calloc(n ? n : 1, sizeof(*all));
    if (all == NULL) return CYMG_ENOMEM;
    if (o->num_props) memcpy(all, o->props, o->num_props * sizeof(*all));
    if (o->session_expiry) {
      all[n - 1].id = CYMG_MQTT_PROP_SESSION_EXPIRY_INTERVAL;
      all[n - 1].iv = o->session_expiry;
    }
    rc = props_block(mq, all, n, pb, &m->props);
    free(all);
    if (rc < 0) return rc;
  } else if (o->num_props || o->num_will_props || o->session_expiry) {
    return CYMG_EINVAL;
  }
  if ((rc = props_block(mq, o->will_props, o->num_will_props, wpb, &m->connect.will_props)) < 0)
    return rc;
  return 0;
}

int cymg_mqtt_connect(cymg_mgr *mgr, const char *url, const cymg_mqtt_opts *opts, cymg_event_fn fn,
                      void *fn_data, cymg_conn **out) {
  if (out) *out = NULL;
  cymg_mqtt_opts zero;
  memset(&zero, 0, sizeof(zero));
  const cymg_mqtt_opts *o = opts ? opts : &zero;
  if (mgr == NULL || url == NULL) return CYMG_EINVAL;
  cymg_url u;
  bool over_ws =
      cymg_url_parse(cymg_str_c(url), &u) == 0 && (cymg_str_case_eq(u.scheme, cymg_str_c("ws")) ||
                                                   cymg_str_case_eq(u.scheme, cymg_str_c("wss")));
  if (o->version && o->version != CYMG_MQTT_V311 && o->version != CYMG_MQTT_V5) {
    cymg__mgr_errmsg(mgr, "MQTT: protocol level %u is not supported", o->version);
    return CYMG_EINVAL;
  }
  mqtt_state *mq = calloc(1, sizeof(*mq));
  if (mq == NULL) return CYMG_ENOMEM;
  mq->mgr = mgr;
  mq->version = o->version ? o->version : CYMG_MQTT_V311;
  mq->keepalive = o->no_keepalive ? 0 : (o->keepalive ? o->keepalive : 60);
  mq->max_packet = o->max_packet ? o->max_packet : DEFAULT_MAX_PACKET;
  mq->inflight_max = o->inflight ? o->inflight : DEFAULT_INFLIGHT;
  if (mq->version == CYMG_MQTT_V5)
    aliases_allow(mq, prop_value(o->props, o->num_props, CYMG_MQTT_PROP_TOPIC_ALIAS_MAXIMUM));
  char idbuf[32];
  uint8_t *pb = NULL, *wpb = NULL;
  cymg_mqtt_msg m;
  int rc = copy_opts_connect(mq, o, &m, idbuf, &pb, &wpb);
  uint8_t small[512], *pkt = small;
  int n = rc < 0 ? rc : cymg_mqtt_encode(&m, mq->version, NULL, 0);
  if (n > (int)sizeof(small) && (pkt = malloc((size_t)n)) == NULL) n = CYMG_ENOMEM;
  if (n >= 0) n = cymg_mqtt_encode(&m, mq->version, pkt, (size_t)n);
  free(pb);
  free(wpb);
  if (n < 0) {
    cymg__mgr_errmsg(mgr, "MQTT: bad CONNECT options (%s)", cymg_strerror(n));
    if (pkt != small) free(pkt);
    free(mq);
    return n;
  }
  cymg_conn *c;
  rc = over_ws ? cymg_ws_connect(mgr, url, fn, fn_data, &c)
               : cymg__connect_url(mgr, url, "mqtt", fn, fn_data, &c);
  if (rc < 0) {
    if (pkt != small) free(pkt);
    free(mq);
    return rc;
  }
  mq->c = c;
  mq->ws = over_ws;
  if (over_ws) {
    cymg__ws *ws = cymg__ws_of(c);
    ws->inner = &mqtt_ws_inner;
    ws->inner_state = mq;
    if (cymg_ws_set_request_headers(c, "Sec-WebSocket-Protocol: mqtt\r\n") < 0 ||
        cymg_ws_set_max_message(c, (uint64_t)mq->max_packet + 5) < 0)
      cymg__conn_fail_later(c, "MQTT: WebSocket set-up failed");
  } else {
    cymg_conn_set_proto(c, &mqtt_proto, mq);
  }
  if (c->recv_limit < mq->max_packet) cymg_conn_set_limits(c, mq->max_packet, 0);
  rc = xmit(c, mq, pkt, (size_t)n);
  if (pkt != small) free(pkt);
  if (rc < 0) {
    cymg__conn_fail_later(c, "MQTT: CONNECT not queued: %s", cymg_strerror(rc));
  }
  if (o->session) {
    mq->s = *o->session;
    for (outmsg *x = mq->s.out; x; x = x->next) x->old = true;
    free(o->session);
  }
  if (mq->keepalive && (rc = cymg_timer_add(mgr, (uint64_t)mq->keepalive * 1000, CYMG_TIMER_REPEAT,
                                            keepalive_fn, c, &mq->timer)) < 0) {
    mq->timer = 0;
    cymg__conn_fail_later(c, "MQTT: keep-alive timer: %s", cymg_strerror(rc));
  }
  if (out) *out = c;
  return 0;
}

int cymg_mqtt_listen(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                     cymg_conn **out) {
  if (out) *out = NULL;
  if (mgr == NULL || url == NULL) return CYMG_EINVAL;
  mqtt_state *mq = calloc(1, sizeof(*mq));
  if (mq == NULL) return CYMG_ENOMEM;
  cymg_conn *c;
  int rc = cymg__listen_url(mgr, url, "mqtt", false, fn, fn_data, &c);
  if (rc < 0) {
    free(mq);
    return rc;
  }
  mq->mgr = mgr;
  mq->c = c;
  mq->listener = true;
  mq->max_packet = DEFAULT_MAX_PACKET;
  cymg_conn_set_proto(c, &mqtt_proto, mq);
  if (out) *out = c;
  return 0;
}

bool cymg_conn_is_mqtt(const cymg_conn *c) {
  return mq_of(c) != NULL;
}

int cymg_mqtt_version(const cymg_conn *c) {
  mqtt_state *mq = mq_of(c);
  return mq ? mq->version : 0;
}

size_t cymg_mqtt_inflight(const cymg_conn *c) {
  mqtt_state *mq = mq_of(c);
  return mq ? mq->s.n_out : 0;
}

int cymg_mqtt_session_take(cymg_conn *c, cymg_mqtt_session **out) {
  mqtt_state *mq = mq_of(c);
  if (out == NULL) return CYMG_EINVAL;
  *out = NULL;
  if (mq == NULL || mq->server || mq->listener) return CYMG_ESTATE;
  cymg_mqtt_session *s = malloc(sizeof(*s));
  if (s == NULL) return CYMG_ENOMEM;
  *s = mq->s;
  memset(&mq->s, 0, sizeof(mq->s));
  mq->s.next_id = s->next_id;
  *out = s;
  return 0;
}

size_t cymg_mqtt_session_pending(const cymg_mqtt_session *s) {
  return s ? s->n_out : 0;
}

void cymg_mqtt_session_free(cymg_mqtt_session *s) {
  if (s == NULL) return;
  session_clear(s);
  free(s);
}
