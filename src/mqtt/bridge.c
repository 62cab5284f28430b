/* The bridge: one MQTT client connection from the broker to an upstream
 * broker, built only on the broker's public in-process API (watch, publish)
 * and the public client. See docs/mqtt-store-bridge.md.
 *
 * OUT: a watcher per pattern puts matching local messages in the outbox; the
 * outbox is what goes upstream. Each QoS 1/2 entry stays there until the
 * upstream acknowledges it (PUBACK, or PUBCOMP), whatever happens to the
 * connection or to the upstream's memory of our session: when a CONNACK says
 * no session is present, the entries in flight are published again.
 * IN: each pattern is subscribed upstream; what comes is published locally
 * with the bridge as its origin, so the OUT watchers skip it.
 * Loops: v5 subscribes with no-local, so the upstream never returns our own
 * forwards; 3.1.1 has no such flag, so the forwards the upstream may echo
 * are remembered (topic and payload hash, a bounded ring, 60 s) and one
 * matching echo is dropped per forward. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mqtt/broker_internal.h"

#define BR_MAX_QUEUE 1000              /* messages waiting to go upstream */
#define BR_MAX_QUEUE_BYTES (16u << 20) /* their topic + payload + property bytes */
#define BR_MAX_PROPS 64                /* properties forwarded per message */
#define BR_ECHO_RING 1024              /* 3.1.1 forwards remembered for echo */
#define BR_ECHO_MS 60000
#define BR_V5_SESSION_EXPIRY 3600 /* persistent v5 session when none is given */

typedef struct br_topic {
  struct cymg_mqtt_bridge *br;
  char *filter;
  int direction, qos;
  uint64_t watch_id; /* 0: not watched */
} br_topic;

/* A message for upstream: one allocation, the bytes after the struct. */
typedef struct br_msg {
  struct br_msg *next;
  cymg_str topic, data, props;
  uint16_t id; /* packet id while in flight on this session; 0: not sent */
  uint8_t qos;
  bool retain;
} br_msg;

typedef struct br_echo {
  uint64_t hash, expires;
} br_echo;

struct cymg_mqtt_bridge {
  cymg_mqtt_broker *b;
  cymg_mgr *mgr;
  char *url;
  bool tls;
  cymg_tls_opts tls_opts; /* strings owned, in tls_strs */
  bool has_tls_opts;
  char *tls_strs[7];
  cymg_mqtt_opts copts; /* strings and property arrays owned */
  char *c_strs[5];
  cymg_mqtt_prop *props_copy[2];
  br_topic *topics;
  size_t num_topics;
  uint32_t backoff_min, backoff_max, backoff;
  cymg_timer_id timer;
  cymg_conn *conn;
  cymg_mqtt_session *sess; /* between connections, when persistent */
  bool connected;          /* CONNACK accepted */
  bool acked;              /* the CONNACK's session state applied: may publish */
  br_msg *head, *tail;
  size_t queued, queued_bytes;
  uint64_t dropped;
  br_echo echo[BR_ECHO_RING];
  size_t echo_next;
  bool prop_warned;
};

static void br_connect(cymg_mqtt_bridge *br);

/* ---- copies of the options ---- */

static int dup_str(cymg_str *s, char **owner) {
  *owner = NULL;
  if (s->len == 0) return 0;
  *owner = malloc(s->len);
  if (*owner == NULL) return CYMG_ENOMEM;
  memcpy(*owner, s->buf, s->len);
  s->buf = *owner;
  return 0;
}

/* A property array with its strings, in one allocation. */
static int dup_props(const cymg_mqtt_prop **props, size_t n, cymg_mqtt_prop **owner) {
  *owner = NULL;
  if (n == 0) return 0;
  if (*props == NULL) return CYMG_EINVAL;
  size_t bytes = n * sizeof(cymg_mqtt_prop);
  for (size_t i = 0; i < n; i++) bytes += (*props)[i].key.len + (*props)[i].val.len;
  cymg_mqtt_prop *p = malloc(bytes);
  if (p == NULL) return CYMG_ENOMEM;
  char *s = (char *)(p + n);
  for (size_t i = 0; i < n; i++) {
    p[i] = (*props)[i];
    cymg_str *f[2] = {&p[i].key, &p[i].val};
    for (int j = 0; j < 2; j++) {
      if (f[j]->len) memcpy(s, f[j]->buf, f[j]->len);
      f[j]->buf = s;
      s += f[j]->len;
    }
  }
  *owner = p;
  *props = p;
  return 0;
}

static int copy_opts(cymg_mqtt_bridge *br, const cymg_mqtt_bridge_opts *o) {
  br->copts = o->client;
  br->copts.session = NULL;
  cymg_str *cs[5] = {&br->copts.client_id, &br->copts.username, &br->copts.password,
                     &br->copts.will_topic, &br->copts.will_payload};
  for (int i = 0; i < 5; i++)
    if (dup_str(cs[i], &br->c_strs[i]) != 0) return CYMG_ENOMEM;
  int rc = dup_props(&br->copts.props, br->copts.num_props, &br->props_copy[0]);
  if (rc == 0) rc = dup_props(&br->copts.will_props, br->copts.num_will_props, &br->props_copy[1]);
  if (rc != 0) return rc;
  if (br->copts.version == 0) br->copts.version = CYMG_MQTT_V5;
  if (br->copts.client_id.len == 0) {
    /* One id for the bridge's life, so a persistent session can resume. */
    char id[32] = "cymg-bridge-";
    if (cymg_random_str(id + 12, 12) != 0) return CYMG_ENOMEM;
    br->copts.client_id = cymg_str_c(id);
    if (dup_str(&br->copts.client_id, &br->c_strs[0]) != 0) return CYMG_ENOMEM;
  }
  if (br->copts.persistent && br->copts.version == CYMG_MQTT_V5 && br->copts.session_expiry == 0)
    br->copts.session_expiry = BR_V5_SESSION_EXPIRY;
  if (o->tls != NULL) {
    br->tls_opts = *o->tls;
    br->has_tls_opts = true;
    br->tls_opts.sni_certs = NULL; /* a server's; the bridge is a client */
    br->tls_opts.sni_count = 0;
    cymg_str *ts[7] = {&br->tls_opts.ca,           &br->tls_opts.cert, &br->tls_opts.key,
                       &br->tls_opts.key_password, &br->tls_opts.name, &br->tls_opts.alpn,
                       &br->tls_opts.ciphers};
    for (int i = 0; i < 7; i++)
      if (dup_str(ts[i], &br->tls_strs[i]) != 0) return CYMG_ENOMEM;
  }
  return 0;
}

/* ---- the outbox ---- */

static void outbox_drop_head(cymg_mqtt_bridge *br) {
  br_msg *m = br->head;
  br->head = m->next;
  if (br->head == NULL) br->tail = NULL;
  br->queued--;
  br->queued_bytes -= m->topic.len + m->data.len + m->props.len;
  free(m);
}

static void outbox_remove(cymg_mqtt_bridge *br, br_msg *prev, br_msg *m) {
  if (prev == NULL) {
    outbox_drop_head(br);
    return;
  }
  prev->next = m->next;
  if (br->tail == m) br->tail = prev;
  br->queued--;
  br->queued_bytes -= m->topic.len + m->data.len + m->props.len;
  free(m);
}

/* The properties of a block that may travel on: a topic alias belongs to one
 * connection and a subscription identifier to one subscription. */
static size_t props_collect(cymg_mqtt_bridge *br, cymg_str block, cymg_mqtt_prop *out) {
  size_t n = 0, ofs = 0;
  cymg_mqtt_prop p;
  int rc;
  while ((rc = cymg_mqtt_next_prop(block, &ofs, &p)) == 1) {
    if (p.id == CYMG_MQTT_PROP_TOPIC_ALIAS || p.id == CYMG_MQTT_PROP_SUBSCRIPTION_IDENTIFIER)
      continue;
    if (n == BR_MAX_PROPS) {
      if (!br->prop_warned)
        CYMG__ERR(
            "mqtt bridge %s: a message has over %d properties; the rest are not "
            "forwarded",
            br->url, BR_MAX_PROPS);
      br->prop_warned = true;
      break;
    }
    out[n++] = p;
  }
  if (rc < 0) CYMG__ERR("mqtt bridge %s: malformed property block not forwarded", br->url);
  return rc < 0 ? 0 : n;
}

/* Sends what the window allows. Runs after the CONNACK's session state is
 * known (acked), on acknowledgements and when output drains. */
static void pump(cymg_mqtt_bridge *br) {
  if (br->conn == NULL || !br->acked) return;
  br_msg *prev = NULL, *m = br->head;
  while (m != NULL) {
    if (m->id != 0) { /* in flight */
      prev = m;
      m = m->next;
      continue;
    }
    cymg_mqtt_prop props[BR_MAX_PROPS];
    size_t np = br->copts.version == CYMG_MQTT_V5 ? props_collect(br, m->props, props) : 0;
    int rc = cymg_mqtt_pub(br->conn, m->topic, m->data, m->qos, m->retain, props, np);
    if (rc == CYMG_ELIMIT || rc == CYMG_ECLOSED) return; /* window or buffer full */
    if (rc < 0) {
      CYMG__ERR("mqtt bridge %s: message on %.*s not forwarded: %s", br->url, (int)m->topic.len,
                m->topic.buf, cymg_strerror(rc));
      br->dropped++;
    } else if (m->qos > 0) {
      m->id = (uint16_t)rc;
      prev = m;
      m = m->next;
      continue;
    }
    br_msg *next = m->next;
    outbox_remove(br, prev, m);
    m = next;
  }
}

static uint64_t echo_hash(cymg_str topic, cymg_str data) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (size_t i = 0; i < topic.len; i++) h = (h ^ (unsigned char)topic.buf[i]) * 0x100000001b3ull;
  h = (h ^ 0xff) * 0x100000001b3ull; /* separator no topic byte can be (UTF-8) */
  for (size_t i = 0; i < data.len; i++) h = (h ^ (unsigned char)data.buf[i]) * 0x100000001b3ull;
  return h | 1; /* 0 marks a free slot */
}

static bool matches_dir(const cymg_mqtt_bridge *br, cymg_str topic, int dir, size_t *first,
                        int *qos) {
  bool any = false;
  for (size_t i = 0; i < br->num_topics; i++) {
    const br_topic *t = &br->topics[i];
    if (!(t->direction & dir) || !cymg_mqtt_match(topic, cymg_str_c(t->filter))) continue;
    if (!any && first != NULL) *first = i;
    if (!any || t->qos > *qos) *qos = t->qos;
    any = true;
  }
  return any;
}

/* A local message matching the OUT pattern at index arg. */
static void on_local(void *data, const cymg_mqtt_msg *m, const void *origin) {
  br_topic *t = data;
  cymg_mqtt_bridge *br = t->br;
  if (origin == br) return; /* came from upstream through us */
  size_t first = 0;
  int qos = 0;
  if (!matches_dir(br, m->topic, CYMG_MQTT_BRIDGE_OUT, &first, &qos)) return;
  if (&br->topics[first] != t) return; /* the first matching pattern forwards it */
  if (m->qos < qos) qos = m->qos;

  size_t bytes = m->topic.len + m->data.len + m->props.len;
  if (bytes > BR_MAX_QUEUE_BYTES) {
    br->dropped++;
    CYMG__ERR("mqtt bridge %s: a %zu-byte message on %.*s is larger than the queue; dropped",
              br->url, bytes, (int)m->topic.len, m->topic.buf);
    return;
  }
  while (br->head != NULL &&
         (br->queued >= BR_MAX_QUEUE || br->queued_bytes + bytes > BR_MAX_QUEUE_BYTES)) {
    br->dropped++;
    if (br->dropped == 1 || br->dropped % 1000 == 0)
      CYMG__ERR("mqtt bridge %s: upstream queue full (%zu messages); oldest dropped, %" PRIu64
                " so far",
                br->url, br->queued, br->dropped);
    outbox_drop_head(br);
  }
  br_msg *e = malloc(sizeof(*e) + bytes);
  if (e == NULL) {
    br->dropped++;
    CYMG__ERR("mqtt bridge %s: out of memory; a message on %.*s dropped", br->url,
              (int)m->topic.len, m->topic.buf);
    return;
  }
  char *p = (char *)(e + 1);
  cymg_str src[3] = {m->topic, m->data, m->props};
  cymg_str *dst[3] = {&e->topic, &e->data, &e->props};
  for (int i = 0; i < 3; i++) {
    if (src[i].len) memcpy(p, src[i].buf, src[i].len);
    *dst[i] = cymg_str_n(p, src[i].len);
    p += src[i].len;
  }
  e->next = NULL;
  e->id = 0;
  e->qos = (uint8_t)qos;
  e->retain = m->retain;
  if (br->tail)
    br->tail->next = e;
  else
    br->head = e;
  br->tail = e;
  br->queued++;
  br->queued_bytes += bytes;

  if (br->copts.version != CYMG_MQTT_V5 &&
      matches_dir(br, m->topic, CYMG_MQTT_BRIDGE_IN, NULL, &qos)) {
    br->echo[br->echo_next].hash = echo_hash(m->topic, m->data);
    br->echo[br->echo_next].expires = cymg_mgr_now(br->mgr) + BR_ECHO_MS;
    br->echo_next = (br->echo_next + 1) % BR_ECHO_RING;
  }
  pump(br);
}

/* 3.1.1: whether an upstream message is the echo of one of our forwards
 * (then forgotten: one echo per forward). */
static bool is_echo(cymg_mqtt_bridge *br, const cymg_mqtt_msg *m) {
  if (br->copts.version == CYMG_MQTT_V5) return false;
  uint64_t h = echo_hash(m->topic, m->data), now = cymg_mgr_now(br->mgr);
  for (size_t k = 0; k < BR_ECHO_RING; k++) {
    /* Oldest first, so repeated equal forwards pair with their echoes in order. */
    br_echo *e = &br->echo[(br->echo_next + k) % BR_ECHO_RING];
    if (e->hash == h && e->expires > now) {
      e->hash = 0;
      return true;
    }
  }
  return false;
}

/* An upstream message: published locally when an IN pattern wants it. */
static void on_upstream(cymg_mqtt_bridge *br, const cymg_mqtt_msg *m) {
  int qos = 0;
  if (!matches_dir(br, m->topic, CYMG_MQTT_BRIDGE_IN, NULL, &qos)) return;
  if (is_echo(br, m)) return;
  if (m->qos < qos) qos = m->qos;
  cymg_mqtt_prop props[BR_MAX_PROPS];
  size_t np = props_collect(br, m->props, props);
  int rc = cymg_mqtt_broker_publish(br->b, m->topic, m->data, qos, m->retain, props, np, br);
  if (rc != 0)
    CYMG__ERR("mqtt bridge %s: upstream message on %.*s not published locally: %s", br->url,
              (int)m->topic.len, m->topic.buf, cymg_strerror(rc));
}

/* The acknowledgement that ends a QoS flow upstream. */
static void on_acked(cymg_mqtt_bridge *br, uint16_t id, uint8_t qos, uint8_t code) {
  br_msg *prev = NULL;
  for (br_msg *m = br->head; m != NULL; prev = m, m = m->next) {
    if (m->id != id || m->qos != qos) continue;
    if (code >= 0x80)
      CYMG__ERR("mqtt bridge %s: upstream refused a message on %.*s (reason 0x%02x)", br->url,
                (int)m->topic.len, m->topic.buf, code);
    outbox_remove(br, prev, m);
    break;
  }
  pump(br);
}

/* ---- the connection ---- */

static void retry_timer(void *arg) {
  cymg_mqtt_bridge *br = arg;
  br->timer = 0;
  br_connect(br);
}

static void schedule(cymg_mqtt_bridge *br) {
  if (br->timer != 0) return;
  /* Full jitter over the upper half: [d/2, d], so brokers that lost the same
   * upstream do not come back in step. */
  uint32_t d = br->backoff, r = 0;
  if (cymg_random_bytes(&r, sizeof(r)) != 0) r = (uint32_t)cymg_mgr_now(br->mgr);
  uint32_t delay = d / 2 + r % (d / 2 + 1);
  br->backoff = d > br->backoff_max / 2 ? br->backoff_max : d * 2;
  int rc = cymg_timer_add(br->mgr, delay, CYMG_TIMER_ONCE, retry_timer, br, &br->timer);
  if (rc != 0) {
    br->timer = 0;
    CYMG__ERR("mqtt bridge %s: cannot schedule a reconnect (%s); bridge stopped", br->url,
              cymg_strerror(rc));
  } else {
    CYMG__INFO("mqtt bridge %s: reconnecting in %u ms", br->url, delay);
  }
}

static void noop_fn(cymg_conn *c, int ev, void *ev_data) {
  (void)c;
  (void)ev;
  (void)ev_data;
}

static void subscribe_in(cymg_mqtt_bridge *br) {
  for (size_t i = 0; i < br->num_topics; i++) {
    const br_topic *t = &br->topics[i];
    if (!(t->direction & CYMG_MQTT_BRIDGE_IN)) continue;
    /* v5: no-local (our forwards do not come back), retain as published (the
     * flag survives), retained messages only for a new subscription (a
     * resumed session does not get them again). */
    int opts = t->qos | (br->copts.version == CYMG_MQTT_V5 ? 0x04 | 0x08 | 0x10 : 0);
    int rc = cymg_mqtt_sub(br->conn, cymg_str_c(t->filter), opts, NULL, 0);
    if (rc < 0) {
      CYMG__ERR("mqtt bridge %s: cannot subscribe to %s: %s", br->url, t->filter,
                cymg_strerror(rc));
      cymg_close(br->conn);
      return;
    }
  }
}

static void bridge_fn(cymg_conn *c, int ev, void *ev_data) {
  cymg_mqtt_bridge *br = cymg_conn_userdata(c);
  if (ev == CYMG_EV_MQTT_OPEN) {
    int code = *(const int *)ev_data;
    if (code != 0) {
      CYMG__ERR("mqtt bridge %s: upstream refused the connection (CONNACK code 0x%02x)", br->url,
                (unsigned)code);
      return; /* the connection closes; CLOSE retries */
    }
    br->connected = true;
    br->backoff = br->backoff_min;
    CYMG__INFO("mqtt bridge %s: connected", br->url);
    subscribe_in(br);
  } else if (ev == CYMG_EV_MQTT_MSG) {
    on_upstream(br, ev_data);
  } else if (ev == CYMG_EV_MQTT_CMD) {
    const cymg_mqtt_msg *m = ev_data;
    if (m->cmd == CYMG_MQTT_CMD_CONNACK && br->connected && !br->acked) {
      if (!m->session_present)
        for (br_msg *e = br->head; e != NULL; e = e->next) e->id = 0; /* publish again */
      br->acked = true;
      pump(br);
    } else if (m->cmd == CYMG_MQTT_CMD_PUBACK) {
      on_acked(br, m->id, 1, m->ack);
    } else if (m->cmd == CYMG_MQTT_CMD_PUBCOMP) {
      on_acked(br, m->id, 2, m->ack);
    } else if (m->cmd == CYMG_MQTT_CMD_PUBREC && m->ack >= 0x80) {
      on_acked(br, m->id, 2, m->ack); /* v5: the flow ends at a failed PUBREC */
    } else if (m->cmd == CYMG_MQTT_CMD_SUBACK) {
      for (size_t i = 0; i < m->data.len; i++)
        if ((unsigned char)m->data.buf[i] >= 0x80)
          CYMG__ERR("mqtt bridge %s: upstream refused a subscription (code 0x%02x)", br->url,
                    (unsigned char)m->data.buf[i]);
    }
  } else if (ev == CYMG_EV_WRITE) {
    if (br->head != NULL) pump(br);
  } else if (ev == CYMG_EV_ERROR) {
    CYMG__ERR("mqtt bridge %s: %s", br->url, (const char *)ev_data);
  } else if (ev == CYMG_EV_CLOSE) {
    if (br->copts.persistent) {
      cymg_mqtt_session *s = NULL;
      if (cymg_mqtt_session_take(c, &s) == 0) {
        cymg_mqtt_session_free(br->sess);
        br->sess = s;
      }
    }
    br->conn = NULL;
    br->connected = br->acked = false;
    schedule(br);
  }
}

static void br_connect(cymg_mqtt_bridge *br) {
  cymg_mqtt_opts o = br->copts;
  o.session = br->sess;
  cymg_conn *c = NULL;
  int rc = cymg_mqtt_connect(br->mgr, br->url, &o, bridge_fn, br, &c);
  if (rc != 0) {
    CYMG__ERR("mqtt bridge %s: cannot connect: %s (%s)", br->url, cymg_strerror(rc),
              cymg_mgr_errmsg(br->mgr));
    schedule(br);
    return;
  }
  br->sess = NULL; /* the connection has it */
  br->conn = c;
  if (br->tls) {
    rc = cymg_tls_init(c, br->has_tls_opts ? &br->tls_opts : NULL);
    if (rc != 0) /* c fails with ERROR and CLOSE, which retries */
      CYMG__ERR("mqtt bridge %s: TLS options refused: %s", br->url, cymg_mgr_errmsg(br->mgr));
  }
}

/* ---- life ---- */

static void br_destroy(cymg_mqtt_bridge *br) {
  if (br->timer && cymg_timer_cancel(br->mgr, br->timer) != 0)
    CYMG__ERR("mqtt bridge %s: reconnect timer already gone", br->url);
  for (size_t i = 0; i < br->num_topics; i++)
    if (br->topics[i].watch_id && cymg_mqtt_broker_unwatch(br->b, br->topics[i].watch_id) != 0)
      CYMG__ERR("mqtt bridge %s: watcher for %s already gone", br->url, br->topics[i].filter);
  if (br->conn) {
    cymg_conn_set_handler(br->conn, noop_fn, NULL);
    cymg_close(br->conn);
  }
  while (br->head) outbox_drop_head(br);
  cymg_mqtt_session_free(br->sess);
  for (size_t i = 0; i < br->num_topics; i++) free(br->topics[i].filter);
  free(br->topics);
  for (int i = 0; i < 5; i++) free(br->c_strs[i]);
  for (int i = 0; i < 7; i++) free(br->tls_strs[i]);
  free(br->props_copy[0]);
  free(br->props_copy[1]);
  free(br->url);
  free(br);
}

/* The broker is being freed: it forgets its registrations itself. */
static void on_broker_free(void *arg) {
  br_destroy(arg);
}

void cymg_mqtt_bridge_free(cymg_mqtt_bridge *br) {
  if (br == NULL) return;
  cymg__mqtt_broker_off_free(br->b, on_broker_free, br);
  br_destroy(br);
}

bool cymg_mqtt_bridge_connected(const cymg_mqtt_bridge *br) {
  return br != NULL && br->connected;
}

static int check_opts(const cymg_mqtt_bridge_opts *o) {
  if (o == NULL || o->url == NULL || o->topics == NULL || o->num_topics == 0) return CYMG_EINVAL;
  cymg_url u;
  if (cymg_url_parse(cymg_str_c(o->url), &u) != 0 || u.host.len == 0) return CYMG_EINVAL;
  static const char *schemes[] = {"mqtt", "mqtts", "ws", "wss"};
  bool known = false;
  for (size_t i = 0; i < 4; i++)
    known = known || cymg_str_case_eq(u.scheme, cymg_str_c(schemes[i]));
  if (!known) return CYMG_EINVAL;
  for (size_t i = 0; i < o->num_topics; i++) {
    const cymg_mqtt_bridge_topic *t = &o->topics[i];
    if (t->filter == NULL || !cymg_mqtt_filter_valid(cymg_str_c(t->filter)) ||
        t->direction < CYMG_MQTT_BRIDGE_OUT || t->direction > CYMG_MQTT_BRIDGE_BOTH || t->qos < 0 ||
        t->qos > 2)
      return CYMG_EINVAL;
  }
  uint8_t v = o->client.version;
  if (v != 0 && v != CYMG_MQTT_V311 && v != CYMG_MQTT_V5) return CYMG_EINVAL;
  if (o->backoff_min_ms && o->backoff_max_ms && o->backoff_min_ms > o->backoff_max_ms)
    return CYMG_EINVAL;
  return 0;
}

int cymg_mqtt_bridge_new(cymg_mqtt_broker *b, const cymg_mqtt_bridge_opts *opts,
                         cymg_mqtt_bridge **out) {
  if (out != NULL) *out = NULL;
  if (b == NULL) return CYMG_EINVAL;
  int rc = check_opts(opts);
  if (rc != 0) return rc;
  cymg_mqtt_bridge *br = calloc(1, sizeof(*br));
  if (br == NULL) return CYMG_ENOMEM;
  br->b = b;
  br->mgr = cymg__mqtt_broker_mgr(b);
  br->backoff_min = opts->backoff_min_ms ? opts->backoff_min_ms : 1000;
  br->backoff_max = opts->backoff_max_ms ? opts->backoff_max_ms : 60000;
  if (br->backoff_max < br->backoff_min) br->backoff_max = br->backoff_min;
  br->backoff = br->backoff_min;
  br->url = strdup(opts->url);
  br->topics = calloc(opts->num_topics, sizeof(*br->topics));
  rc = br->url && br->topics ? copy_opts(br, opts) : CYMG_ENOMEM;
  if (rc == 0) {
    cymg_url u;
    rc = cymg_url_parse(cymg_str_c(br->url), &u);
    br->tls = rc == 0 && cymg_url_is_tls(u.scheme);
  }
  for (size_t i = 0; rc == 0 && i < opts->num_topics; i++) {
    br_topic *t = &br->topics[i];
    t->br = br;
    t->direction = opts->topics[i].direction;
    t->qos = opts->topics[i].qos;
    t->filter = strdup(opts->topics[i].filter);
    br->num_topics = i + 1;
    if (t->filter == NULL) rc = CYMG_ENOMEM;
  }
  for (size_t i = 0; rc == 0 && i < br->num_topics; i++) {
    br_topic *t = &br->topics[i];
    if (t->direction & CYMG_MQTT_BRIDGE_OUT)
      rc = cymg_mqtt_broker_watch(b, cymg_str_c(t->filter), on_local, t, &t->watch_id);
  }
  if (rc == 0) rc = cymg__mqtt_broker_on_free(b, on_broker_free, br);
  if (rc != 0) {
    br_destroy(br);
    return rc;
  }
  br_connect(br);
  if (out != NULL) *out = br;
  return 0;
}
