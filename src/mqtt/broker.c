/* The MQTT 3.1.1 / 5.0 broker: its connections (own protocol layer over the
 * codec, plain, TLS or inside WebSocket), sessions keyed by client id, routing
 * through the topic tree (broker_tree.c), wills, keep-alive, limits. See
 * docs/mqtt-broker.md for the semantics chosen where the specs leave room. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cymg/mqtt_broker.h"
#include "cymg/rand.h"
#include "cymg/timer.h"
#include "cymg/tls.h"
#include "cymg/url.h"
#include "mqtt/broker_priv.h"
#include "ws/ws_internal.h"

uint64_t cymg__bk_now_ms(const cymg_mqtt_broker *b) {
  return cymg_mgr_now(b->mgr);
}

/* ---- messages ---- */

/* Properties the broker sets per delivery and so does not keep. */
static bool prop_rewritten(uint8_t id) {
  return id == CYMG_MQTT_PROP_TOPIC_ALIAS || id == CYMG_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL ||
         id == CYMG_MQTT_PROP_SUBSCRIPTION_IDENTIFIER || id == CYMG_MQTT_PROP_WILL_DELAY_INTERVAL;
}

/* A message from its parts; props is a valid block (its message expiry read
 * here, the rewritten properties left out). */
bmsg *cymg__bk_msg_new(cymg_mqtt_broker *b, cymg_str topic, cymg_str payload, cymg_str props,
                       int qos, bool retain, const void *origin) {
  size_t keep = 0, ofs = 0, at;
  uint32_t expiry = 0;
  bool has_expiry = false;
  cymg_mqtt_prop p;
  for (at = 0; cymg_mqtt_next_prop(props, &ofs, &p) == 1; at = ofs) {
    if (p.id == CYMG_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL) {
      expiry = p.iv;
      has_expiry = true;
    }
    if (!prop_rewritten(p.id)) keep += ofs - at;
  }
  bmsg *m = malloc(sizeof(*m) + topic.len + 1 + keep + payload.len);
  if (m == NULL) return NULL;
  m->refs = 1;
  m->topic_len = (uint16_t)topic.len;
  m->props_len = (uint32_t)keep;
  m->payload_len = (uint32_t)payload.len;
  m->qos = (uint8_t)qos;
  m->retain = retain;
  m->origin = origin;
  m->expire_at = has_expiry ? cymg__bk_now_ms(b) + (uint64_t)expiry * 1000 : 0;
  memcpy(m->data, topic.buf, topic.len);
  m->data[topic.len] = 0;
  char *d = m->data + topic.len + 1;
  ofs = 0;
  for (at = 0; cymg_mqtt_next_prop(props, &ofs, &p) == 1; at = ofs)
    if (!prop_rewritten(p.id)) {
      memcpy(d, props.buf + at, ofs - at);
      d += ofs - at;
    }
  if (payload.len) memcpy(d, payload.buf, payload.len);
  return m;
}

bool cymg__bk_expired(const cymg_mqtt_broker *b, const bmsg *m) {
  return m->expire_at && cymg__bk_now_ms(b) >= m->expire_at;
}

static size_t put_varint(uint8_t *o, uint32_t v) {
  size_t n = cymg_mqtt_varint_encode(o, v);
  return n;
}

/* Encodes a PUBLISH of m for a v3.1.1 / v5 client into out (cap bytes): id 0
 * writes a placeholder 0x0000 (the caller patches it at *id_at). Returns the
 * length (> cap: nothing written) or 0 when it cannot be framed. */
static size_t enc_publish(const cymg_mqtt_broker *b, const bmsg *m, uint8_t version, uint8_t qos,
                          bool retain, bool dup, uint32_t sub_id, uint8_t *out, size_t cap,
                          size_t *id_at) {
  uint8_t pre[16];
  size_t npre = 0;
  if (version == CYMG_MQTT_V5) {
    if (m->expire_at) {
      uint64_t now = cymg__bk_now_ms(b);
      uint64_t left = m->expire_at > now ? (m->expire_at - now + 999) / 1000 : 0;
      if (left == 0) left = 1;
      pre[npre++] = CYMG_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL;
      pre[npre++] = (uint8_t)(left >> 24);
      pre[npre++] = (uint8_t)(left >> 16);
      pre[npre++] = (uint8_t)(left >> 8);
      pre[npre++] = (uint8_t)left;
    }
    if (sub_id) {
      pre[npre++] = CYMG_MQTT_PROP_SUBSCRIPTION_IDENTIFIER;
      npre += put_varint(pre + npre, sub_id);
    }
  }
  size_t plen = version == CYMG_MQTT_V5 ? npre + m->props_len : 0;
  uint8_t pv[4];
  size_t npv = version == CYMG_MQTT_V5 ? put_varint(pv, (uint32_t)plen) : 0;
  uint64_t rem = 2 + (uint64_t)m->topic_len + (qos ? 2 : 0) + npv + plen + m->payload_len;
  if (rem > CYMG_MQTT_MAX_REMAINING) return 0;
  uint8_t rv[4];
  size_t nrv = put_varint(rv, (uint32_t)rem);
  size_t total = 1 + nrv + (size_t)rem;
  if (total > cap) return total;
  uint8_t *o = out;
  *o++ = (uint8_t)(0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0));
  memcpy(o, rv, nrv);
  o += nrv;
  *o++ = (uint8_t)(m->topic_len >> 8);
  *o++ = (uint8_t)m->topic_len;
  memcpy(o, m->data, m->topic_len);
  o += m->topic_len;
  if (qos) {
    *id_at = (size_t)(o - out);
    *o++ = 0;
    *o++ = 0;
  }
  if (version == CYMG_MQTT_V5) {
    memcpy(o, pv, npv);
    o += npv;
    memcpy(o, pre, npre);
    o += npre;
    cymg_str pr = bmsg_props(m);
    if (pr.len) memcpy(o, pr.buf, pr.len);
    o += pr.len;
  }
  cymg_str pl = bmsg_payload(m);
  if (pl.len) memcpy(o, pl.buf, pl.len);
  return total;
}

/* ---- sending ---- */

static int xmit(bconn *bc, const void *p, size_t n) {
  if (bc->holding) {
    if (bc->x == NULL && (bc->x = calloc(1, sizeof(*bc->x))) == NULL) return CYMG_ENOMEM;
    if (bc->x->held.len + n > bc->c->send_limit && bc->c->send_limit) return CYMG_ELIMIT;
    int hr = cymg_buf_append(&bc->x->held, p, n);
    if (hr >= 0) bc->b->st.bytes_out += n;
    return hr;
  }
  int rc = bc->ws ? cymg_ws_send(bc->c, p, n, CYMG_WS_OP_BINARY) : cymg_send(bc->c, p, n);
  if (rc >= 0) bc->b->st.bytes_out += n;
  return rc;
}

static int send_pkt(bconn *bc, const cymg_mqtt_msg *m) {
  uint8_t small[512];
  int n = cymg_mqtt_encode(m, bc->version ? bc->version : CYMG_MQTT_V311, small, sizeof(small));
  if (n < 0) return n;
  if ((size_t)n <= sizeof(small)) return xmit(bc, small, (size_t)n);
  uint8_t *big = malloc((size_t)n);
  if (big == NULL) return CYMG_ENOMEM;
  int rc = cymg_mqtt_encode(m, bc->version, big, (size_t)n);
  if (rc >= 0) rc = xmit(bc, big, (size_t)n);
  free(big);
  return rc;
}

/* A v5 reason string property, when the client did not ask for none. */
static size_t reason_prop(const bconn *bc, const char *why, uint8_t *out, size_t cap) {
  if (why == NULL || bc->version != CYMG_MQTT_V5 || !bc->problem_info) return 0;
  cymg_mqtt_prop p;
  memset(&p, 0, sizeof(p));
  p.id = CYMG_MQTT_PROP_REASON_STRING;
  p.val = cymg_str_c(why);
  int n = cymg_mqtt_props_encode(&p, 1, out, cap);
  return n > 0 && (size_t)n <= cap ? (size_t)n : 0;
}

/* An acknowledgement (PUBACK..PUBCOMP) with a reason code (v5 only). */
static int send_ack(bconn *bc, uint8_t cmd, uint16_t id, uint8_t code) {
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = cmd;
  m.id = id;
  m.ack = bc->version == CYMG_MQTT_V5 ? code : 0;
  return send_pkt(bc, &m);
}

void cymg__bk_fail(bconn *bc, uint8_t reason, const char *why);

/* The end of a batch of packets read: what it changed is made durable, then
 * the output held meanwhile (acknowledgements among it) goes out. */
static void release_held(bconn *bc) {
  if (!bc->holding) return;
  bc->holding = false;
  if (bc->b) cymg__bk_store_sync(bc->b);
  if (bc->x == NULL) return;
  cymg_buf *h = &bc->x->held;
  if (h->len && xmit(bc, h->buf, h->len) < 0)
    cymg_error(bc->c, "MQTT: output not queued");
  else if (bc->b && h->len)
    bc->b->st.bytes_out -= h->len; /* counted once, when held */
  cymg_buf_free(h);
}

static void bdrain(bconn *bc) {
  release_held(bc);
  cymg_drain(bc->c);
}

/* ---- sessions ---- */

static bsess *sess_new(cymg_mqtt_broker *b, cymg_str id);

static bsess *sess_find(const cymg_mqtt_broker *b, cymg_str id, uint32_t hv) {
  if (b->scap == 0) return NULL;
  for (bsess *s = b->stab[hv & (b->scap - 1)]; s; s = s->hnext)
    if (s->hv == hv && s->idlen == id.len && memcmp(s->id, id.buf, id.len) == 0) return s;
  return NULL;
}

bsess *cymg__bk_sess_get(cymg_mqtt_broker *b, cymg_str id, bool create) {
  bsess *s = sess_find(b, id, cymg__bk_hash(id.buf, id.len));
  return s || !create ? s : sess_new(b, id);
}

static bsess *sess_new(cymg_mqtt_broker *b, cymg_str id) {
  if (b->nsess + 1 > b->scap) {
    size_t cap = b->scap ? b->scap * 2 : 64;
    bsess **t = calloc(cap, sizeof(*t));
    if (t == NULL) return NULL;
    for (size_t i = 0; i < b->scap; i++)
      for (bsess *s = b->stab[i], *n; s; s = n) {
        n = s->hnext;
        s->hnext = t[s->hv & (cap - 1)];
        t[s->hv & (cap - 1)] = s;
      }
    free(b->stab);
    b->stab = t;
    b->scap = cap;
  }
  bsess *s = calloc(1, sizeof(*s) + id.len + 1);
  if (s == NULL) return NULL;
  s->hv = cymg__bk_hash(id.buf, id.len);
  s->idlen = (uint16_t)id.len;
  memcpy(s->id, id.buf, id.len);
  s->hnext = b->stab[s->hv & (b->scap - 1)];
  b->stab[s->hv & (b->scap - 1)] = s;
  b->nsess++;
  b->st.sessions = b->nsess;
  return s;
}

void cymg__bk_qent_free(cymg_mqtt_broker *b, bsess *s, qent *e) {
  s->nq--;
  s->qbytes -= e->m->payload_len;
  b->st.queued--;
  bmsg_unref(e->m);
  if (b->nqfree < QENT_CACHE) { /* kept for the next delivery: no malloc per message */
    e->next = b->qfree;
    b->qfree = e;
    b->nqfree++;
  } else {
    free(e);
  }
}

static void sub_free(cymg_mqtt_broker *b, bsub *sub) {
  cymg__bk_tree_del(sub);
  b->st.subscriptions--;
  free(sub);
}

/* Removes a session and everything it holds (not its delayed will: the
 * caller publishes or drops it first). */
void cymg__bk_sess_free(cymg_mqtt_broker *b, bsess *s) {
  if (s->stored) cymg__bk_p_session_del(b, s);
  for (bsess **pp = &b->stab[s->hv & (b->scap - 1)]; *pp; pp = &(*pp)->hnext)
    if (*pp == s) {
      *pp = s->hnext;
      break;
    }
  b->nsess--;
  b->st.sessions = b->nsess;
  for (uint32_t i = 0; i < s->nsubs; i++) sub_free(b, s->subs[i]);
  free(s->subs);
  for (qent *e = s->qhead, *n; e; e = n) {
    n = e->next;
    cymg__bk_qent_free(b, s, e);
  }
  bmsg_unref(s->will);
  free(s->in_ids);
  free(s);
}

static bool in_has(const bsess *s, uint16_t id) {
  for (uint32_t i = 0; i < s->n_in; i++)
    if (s->in_ids[i] == id) return true;
  return false;
}

int cymg__bk_in_add(bsess *s, uint16_t id) {
  if (s->n_in == s->cap_in) {
    uint32_t cap = s->cap_in ? s->cap_in * 2 : 4;
    uint16_t *p = realloc(s->in_ids, cap * sizeof(*p));
    if (p == NULL) return CYMG_ENOMEM;
    s->in_ids = p;
    s->cap_in = cap;
  }
  s->in_ids[s->n_in++] = id;
  return 0;
}

bool cymg__bk_in_del(bsess *s, uint16_t id) {
  for (uint32_t i = 0; i < s->n_in; i++)
    if (s->in_ids[i] == id) {
      s->in_ids[i] = s->in_ids[--s->n_in];
      return true;
    }
  return false;
}

static bool id_busy(const bsess *s, uint16_t id) {
  for (const qent *e = s->qhead; e && e != s->unsent; e = e->next)
    if (e->id == id) return true;
  return false;
}

/* Ids go out in list order, so the ids in flight lie in the circular range
 * from the head's to the last sent one's: outside it an id is free without a
 * walk (the walk is left for a candidate inside, after a wrap). */
static uint16_t new_id(bsess *s) {
  for (;;) {
    if (++s->next_id == 0) s->next_id = 1;
    const qent *h = s->qhead;
    if (h == NULL || h == s->unsent || s->last_sent == NULL) return s->next_id;
    uint16_t lo = h->id, hi = s->last_sent->id, id = s->next_id;
    bool inside = lo <= hi ? (id >= lo && id <= hi) : (id >= lo || id <= hi);
    if (!inside || !id_busy(s, id)) return id;
  }
}

/* Sends e (an entry at s->unsent, or one in flight being resent). Returns 0,
 * 1 when the client cannot take it (too large: dropped by the caller), or a
 * negative code. */
static int send_entry(bconn *bc, qent *e, bool dup) {
  cymg_mqtt_broker *b = bc->b;
  uint8_t small[1024], *buf = small;
  size_t id_at = 0;
  size_t n = enc_publish(b, e->m, bc->version, e->qos, e->retain, dup, e->sub_id, small,
                         sizeof(small), &id_at);
  if (n == 0 || (bc->max_out && n > bc->max_out)) return 1;
  if (n > sizeof(small)) {
    if ((buf = malloc(n)) == NULL) return CYMG_ENOMEM;
    (void)enc_publish(b, e->m, bc->version, e->qos, e->retain, dup, e->sub_id, buf, n, &id_at);
  }
  buf[id_at] = (uint8_t)(e->id >> 8);
  buf[id_at + 1] = (uint8_t)e->id;
  int rc = xmit(bc, buf, n);
  if (buf != small) free(buf);
  if (rc >= 0) b->st.msgs_out++;
  return rc;
}

/* Unlinks e (prev is its predecessor or NULL) from s's queue. */
static void q_unlink(bsess *s, qent *prev, qent *e) {
  if (prev)
    prev->next = e->next;
  else
    s->qhead = e->next;
  if (s->qtail == e) s->qtail = prev;
  if (s->unsent == e) s->unsent = e->next;
  if (s->last_sent == e) s->last_sent = prev;
}

/* Sends what the session has queued, as far as the client's window and our
 * output high-water mark allow. */
static void flush_queue(bconn *bc) {
  bsess *s = bc->s;
  cymg_mqtt_broker *b = bc->b;
  if (s == NULL || !bc->connected || bc->failed ||
      (bc->c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)))
    return;
  qent *prev = s->last_sent;
  while (s->unsent && s->ninfl < bc->recv_max_out && !cymg__conn_out_full(bc->c)) {
    qent *e = s->unsent;
    if (cymg__bk_expired(b, e->m)) {
      cymg__bk_p_msg_del(b, s, e);
      q_unlink(s, prev, e);
      cymg__bk_qent_free(b, s, e);
      continue;
    }
    e->id = new_id(s);
    int rc = send_entry(bc, e, false);
    if (rc < 0) break; /* send buffer at its cap, closing, no memory: stays queued */
    if (rc == 1) {     /* larger than the client takes: dropped for it */
      cymg__bk_p_msg_del(b, s, e);
      q_unlink(s, prev, e);
      cymg__bk_qent_free(b, s, e);
      b->st.dropped++;
      continue;
    }
    e->sent = true;
    cymg__bk_p_msg(b, s, e);
    s->ninfl++;
    s->unsent = e->next;
    s->last_sent = prev = e;
  }
}

/* Queues a QoS > 0 message for s; returns false when it was dropped. */
static bool enqueue(cymg_mqtt_broker *b, bsess *s, bmsg *m, uint8_t qos, bool retain,
                    uint32_t sub_id) {
  if (s->nq >= b->o.max_queued || s->qbytes + m->payload_len > b->o.max_queued_bytes) {
    b->st.dropped++;
    if (b->o.disconnect_on_full && s->bc) cymg__bk_fail(s->bc, 0x97, "session queue full");
    return false;
  }
  qent *e = cymg__bk_enqueue_raw(b, s, m, qos, retain, sub_id);
  if (e == NULL) {
    b->st.dropped++;
    return false;
  }
  cymg__bk_p_msg(b, s, e);
  return true;
}

qent *cymg__bk_enqueue_raw(cymg_mqtt_broker *b, bsess *s, bmsg *m, uint8_t qos, bool retain,
                           uint32_t sub_id) {
  qent *e = b->qfree;
  if (e) {
    b->qfree = e->next;
    b->nqfree--;
  } else {
    e = malloc(sizeof(*e));
  }
  if (e == NULL) return NULL;
  e->next = NULL;
  e->m = bmsg_ref(m);
  e->sub_id = sub_id;
  e->id = 0;
  e->qos = qos;
  e->retain = retain;
  e->sent = e->released = false;
  e->seq = ++s->seq;
  if (s->unsent == NULL) { /* all before it is in flight: the old tail is the last sent */
    s->unsent = e;
    s->last_sent = s->qtail;
  }
  if (s->qtail)
    s->qtail->next = e;
  else
    s->qhead = e;
  s->qtail = e;
  s->nq++;
  s->qbytes += m->payload_len;
  b->st.queued++;
  return e;
}

/* ---- routing ---- */

/* A QoS 0 PUBLISH encoded once per shape and sent to each client wanting
 * that shape: no allocation per delivery. */
typedef struct shape {
  uint8_t version, qos;
  bool retain;
  uint32_t sub_id;
  size_t len;
  uint8_t *buf;
} shape;

static void deliver0(cymg_mqtt_broker *b, bconn *bc, bmsg *m, bool retain, uint32_t sub_id,
                     shape *cache, size_t *ncache, uint8_t *scratch, size_t *used, size_t cap) {
  if (cymg__conn_out_full(bc->c)) {
    b->st.dropped++; /* a stalled subscriber: QoS 0 is not kept for it */
    return;
  }
  shape *sh = NULL;
  for (size_t i = 0; i < *ncache && sh == NULL; i++)
    if (cache[i].version == bc->version && cache[i].retain == retain && cache[i].sub_id == sub_id)
      sh = &cache[i];
  uint8_t big_once[1];
  uint8_t *own = NULL;
  if (sh == NULL) {
    size_t id_at;
    size_t n = enc_publish(b, m, bc->version, 0, retain, false, sub_id, big_once, 0, &id_at);
    if (n == 0) return;
    uint8_t *dst;
    if (*used + n <= cap)
      dst = scratch + *used;
    else if ((dst = own = malloc(n)) == NULL) {
      b->st.dropped++;
      return;
    }
    (void)enc_publish(b, m, bc->version, 0, retain, false, sub_id, dst, n, &id_at);
    if (own == NULL && *ncache < 8) {
      *used += n;
      sh = &cache[(*ncache)++];
      sh->version = bc->version;
      sh->retain = retain;
      sh->sub_id = sub_id;
      sh->len = n;
      sh->buf = dst;
    } else if (own == NULL) {
      *used += n;
    }
    if (sh == NULL) {
      shape tmp = {bc->version, 0, retain, sub_id, n, dst};
      if (!(bc->max_out && n > bc->max_out) && xmit(bc, tmp.buf, tmp.len) >= 0)
        b->st.msgs_out++;
      else
        b->st.dropped++;
      free(own);
      return;
    }
  }
  if (bc->max_out && sh->len > bc->max_out) {
    b->st.dropped++;
    return;
  }
  if (xmit(bc, sh->buf, sh->len) >= 0)
    b->st.msgs_out++;
  else
    b->st.dropped++;
}

static void collect(void *arg, bsub *sub, sgroup *g) {
  cymg_mqtt_broker *b = arg;
  if (g) {
    /* one member per group: the next online one, else the next at all */
    bsub *pick = NULL;
    for (uint32_t k = 0; k < g->n && pick == NULL; k++) {
      bsub *x = g->m[(g->rr + k) % g->n];
      if (x->s->bc && x->s->bc->connected) {
        pick = x;
        g->rr = (g->rr + k + 1) % g->n;
      }
    }
    if (pick == NULL) {
      pick = g->m[g->rr % g->n];
      g->rr = (g->rr + 1) % g->n;
    }
    sub = pick;
  } else if ((sub->opts & 0x04) && sub->s == b->from) {
    return; /* no-local */
  }
  bsess *s = sub->s;
  uint8_t qos = sub->opts & 3;
  bool rap = (sub->opts & 0x08) != 0;
  if (g == NULL && s->mark == b->gen) {
    /* overlapping subscriptions: one message, the highest QoS, the largest
     * subscription id */
    dlv *d = &b->d[s->mark_idx];
    if (qos > d->qos) d->qos = qos;
    if (rap) d->retain = true;
    if (sub->sub_id > d->sub_id) d->sub_id = sub->sub_id;
    return;
  }
  if (b->nd == b->dcap) {
    size_t cap = b->dcap ? b->dcap * 2 : 64;
    dlv *n = realloc(b->d, cap * sizeof(*n));
    if (n == NULL) {
      b->st.dropped++;
      return;
    }
    b->d = n;
    b->dcap = cap;
  }
  if (g == NULL) {
    s->mark = b->gen;
    s->mark_idx = (uint32_t)b->nd;
  }
  dlv *d = &b->d[b->nd++];
  d->s = s;
  d->qos = qos;
  d->retain = rap;
  d->sub_id = sub->sub_id;
}

void cymg__bk_retain(cymg_mqtt_broker *b, bmsg *m) {
  cymg_str t = bmsg_topic(m);
  if (m->payload_len == 0) {
    if (cymg__bk_ret_get(&b->ret, t)) cymg__bk_p_retain_del(b, t);
    if (cymg__bk_ret_set(&b->ret, t, NULL) < 0) CYMG__DEBUG("MQTT broker: retained clear failed");
  } else if (b->ret.n >= b->o.max_retained && cymg__bk_ret_get(&b->ret, t) == NULL) {
    b->st.dropped++; /* the store is full: new topics are not kept */
  } else if (cymg__bk_ret_set(&b->ret, t, m) < 0) {
    b->st.dropped++;
  } else {
    cymg__bk_p_retain(b, m);
  }
  b->st.retained = b->ret.n;
}

static void call_watchers(cymg_mqtt_broker *b, const bmsg *m, const cymg_mqtt_msg *as) {
  if (b->nw == 0) return;
  cymg_mqtt_msg tmp;
  if (as == NULL) {
    memset(&tmp, 0, sizeof(tmp));
    tmp.cmd = CYMG_MQTT_CMD_PUBLISH;
    tmp.topic = bmsg_topic(m);
    tmp.data = bmsg_payload(m);
    tmp.props = bmsg_props(m);
    tmp.qos = m->qos;
    tmp.retain = m->retain;
    tmp.version = CYMG_MQTT_V5;
    as = &tmp;
  }
  b->wdepth++;
  for (size_t i = 0; i < b->nw; i++) {
    watcher *w = b->w[i];
    if (!w->dead && cymg_mqtt_match(bmsg_topic(m), cymg_str_n(w->filter, w->flen)))
      w->fn(w->data, as, m->origin);
  }
  if (--b->wdepth == 0) {
    size_t j = 0;
    for (size_t i = 0; i < b->nw; i++)
      if (b->w[i]->dead)
        free(b->w[i]);
      else
        b->w[j++] = b->w[i];
    b->nw = j;
  }
}

/* Routes m (the broker's reference stays the caller's) to every matching
 * subscription; from is the publisher's session (NULL: inside the process). */
void cymg__bk_route(cymg_mqtt_broker *b, bmsg *m, bsess *from, const cymg_mqtt_msg *as) {
  if (m->retain && !b->o.no_retain) cymg__bk_retain(b, m);
  b->gen++;
  b->nd = 0;
  b->from = from;
  cymg__bk_tree_match(b->root, bmsg_topic(m), collect, b);
  shape cache[8];
  size_t ncache = 0, used = 0;
  uint8_t scratch[4096];
  for (size_t i = 0; i < b->nd; i++) {
    dlv d = b->d[i];
    uint8_t qos = m->qos < d.qos ? m->qos : d.qos;
    bool retain = d.retain && m->retain;
    bconn *bc = d.s->bc;
    bool online = bc && bc->connected && !bc->failed &&
                  !(bc->c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING));
    if (qos == 0) {
      if (online)
        deliver0(b, bc, m, retain, d.sub_id, cache, &ncache, scratch, &used, sizeof(scratch));
      continue; /* QoS 0 is not queued for offline sessions */
    }
    if (enqueue(b, d.s, m, qos, retain, d.sub_id) && online) flush_queue(bc);
  }
  b->nd = 0;
  call_watchers(b, m, as);
}

/* ---- wills ---- */

cymg_mqtt_client_info cymg__bk_info_of(const bconn *bc) {
  cymg_mqtt_client_info ci;
  memset(&ci, 0, sizeof(ci));
  ci.client_id = cymg_str_n(bc->cid, bc->cidlen);
  ci.username = cymg_str_n(bc->user, bc->userlen);
  ci.has_username = bc->has_user;
  ci.conn = bc->c;
  ci.version = bc->version;
  if (bc->c && cymg_conn_is_tls(bc->c)) ci.cert_subject = cymg_tls_peer_subject(bc->c);
  return ci;
}

void cymg__bk_publish_will(cymg_mqtt_broker *b, bmsg *w, bconn *bc) {
  if (w == NULL) return;
  if (b->o.acl && bc) {
    cymg_mqtt_client_info ci = cymg__bk_info_of(bc);
    if (b->o.acl(b->o.acl_data, &ci, CYMG_MQTT_ACL_PUBLISH, bmsg_topic(w), w->qos, w->retain) != 0)
      return;
  }
  b->st.msgs_in++;
  cymg__bk_route(b, w, NULL, NULL);
}

/* ---- connection end ---- */

/* The connection is gone (CLOSE): its session goes offline or ends, its will
 * is published unless a normal DISCONNECT said not to. */
void cymg__bk_conn_gone(bconn *bc) {
  cymg_mqtt_broker *b = bc->b;
  if (b == NULL) return;
  if (bc->prev)
    bc->prev->next = bc->next;
  else if (b->conns == bc)
    b->conns = bc->next;
  if (bc->next) bc->next->prev = bc->prev;
  bc->next = bc->prev = NULL;
  bsess *s = bc->s;
  bool with_will = bc->connected && !bc->no_will;
  bmsg *will = with_will ? bc->will : NULL;
  if (!with_will) bmsg_unref(bc->will);
  bc->will = NULL;
  if (bc->connected) b->st.clients--;
  bc->connected = false;
  bc->b = NULL;
  if (s == NULL) {
    if (will) cymg__bk_publish_will(b, will, NULL);
    bmsg_unref(will);
    return;
  }
  s->bc = NULL;
  bc->s = NULL;
  if (s->expiry == 0) {
    if (will) cymg__bk_publish_will(b, will, bc); /* first: bc->cid is the session's */
    bmsg_unref(will);
    bc->cid = NULL;
    bc->cidlen = 0;
    cymg__bk_sess_free(b, s);
    return;
  }
  s->offline_at = cymg__bk_now_ms(b);
  cymg__bk_p_session(b, s);
  if (will && bc->will_delay) {
    s->will = will;
    s->will_at = s->offline_at + (uint64_t)bc->will_delay * 1000;
  } else if (will) {
    cymg__bk_publish_will(b, will, bc);
    bmsg_unref(will);
  }
  /* in flight stays in flight: resent with DUP when the session resumes */
}

void cymg__bk_bconn_free(void *state) {
  uint8_t kind = *(uint8_t *)state;
  if (kind == K_LSN) return; /* listeners belong to the broker */
  bconn *bc = state;
  if (bc->b) cymg__bk_conn_gone(bc);
  bmsg_unref(bc->will);
  if (bc->alias)
    for (uint32_t i = 0; i <= bc->nalias; i++) free(bc->alias[i]);
  free(bc->alias);
  if (bc->cid_own) free(bc->cid);
  free(bc->user);
  if (bc->x) {
    cymg_buf_free(&bc->x->in);
    cymg_buf_free(&bc->x->held);
    free(bc->x);
  }
  free(bc);
}

/* A protocol failure: a v5 client past CONNECT gets a DISCONNECT with the
 * reason code; then ERROR and the connection ends once that is out. The will
 * is published (the connection did not end with a normal DISCONNECT). */
void cymg__bk_fail(bconn *bc, uint8_t reason, const char *why) {
  if (bc->failed) return;
  bc->failed = true;
  if (bc->version == CYMG_MQTT_V5 && bc->connected && reason >= 0x80) {
    uint8_t pb[160];
    cymg_mqtt_msg m;
    memset(&m, 0, sizeof(m));
    m.cmd = CYMG_MQTT_CMD_DISCONNECT;
    m.ack = reason;
    m.props = cymg_str_n(pb, reason_prop(bc, why, pb, sizeof(pb)));
    if (send_pkt(bc, &m) < 0) CYMG__DEBUG("MQTT broker: DISCONNECT not queued");
  }
  char msg[200];
  snprintf(msg, sizeof(msg), "MQTT: %s", why);
  cymg_call(bc->c, CYMG_EV_ERROR, msg);
  bdrain(bc);
}

/* ---- CONNECT ---- */

/* CONNACK, with the v5 properties advertising our limits. */
static int send_connack(bconn *bc, bool present, uint8_t code, cymg_str assigned,
                        uint32_t expiry_set, bool ka_capped, const char *why) {
  cymg_mqtt_broker *b = bc->b;
  cymg_mqtt_prop p[16];
  size_t n = 0;
  memset(p, 0, sizeof(p));
#define ADD(ID, V)   \
  do {               \
    p[n].id = (ID);  \
    p[n++].iv = (V); \
  } while (0)
  if (bc->version == CYMG_MQTT_V5 && code == 0) {
    ADD(CYMG_MQTT_PROP_RECEIVE_MAXIMUM, b->o.receive_max);
    if (b->o.max_qos < 2) ADD(CYMG_MQTT_PROP_MAXIMUM_QOS, b->o.max_qos);
    if (b->o.no_retain) ADD(CYMG_MQTT_PROP_RETAIN_AVAILABLE, 0);
    ADD(CYMG_MQTT_PROP_MAXIMUM_PACKET_SIZE, b->o.max_packet);
    ADD(CYMG_MQTT_PROP_TOPIC_ALIAS_MAXIMUM, b->o.topic_alias_max);
    ADD(CYMG_MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE, b->o.no_wildcard ? 0 : 1);
    ADD(CYMG_MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE, b->o.no_sub_ids ? 0 : 1);
    ADD(CYMG_MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE, b->o.no_shared ? 0 : 1);
    if (ka_capped) ADD(CYMG_MQTT_PROP_SERVER_KEEP_ALIVE, bc->keepalive);
    if (expiry_set != NEVER - 1) ADD(CYMG_MQTT_PROP_SESSION_EXPIRY_INTERVAL, expiry_set);
    if (assigned.len) {
      p[n].id = CYMG_MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER;
      p[n++].val = assigned;
    }
  }
  if (bc->version == CYMG_MQTT_V5 && code && why && bc->problem_info) {
    p[n].id = CYMG_MQTT_PROP_REASON_STRING;
    p[n++].val = cymg_str_c(why);
  }
#undef ADD
  uint8_t pb[512];
  int pl = 0;
  if (bc->version == CYMG_MQTT_V5 && n) {
    pl = cymg_mqtt_props_encode(p, n, pb, sizeof(pb));
    if (pl < 0 || (size_t)pl > sizeof(pb)) return pl < 0 ? pl : CYMG_ELIMIT;
  }
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_CONNACK;
  m.ack = code;
  m.session_present = present;
  m.props = cymg_str_n(pb, (size_t)pl);
  return send_pkt(bc, &m);
}

/* A v5 refusal code in the 3.1.1 return codes. */
static uint8_t code311(int v5) {
  switch (v5) {
    case 0: return 0;
    case 0x84: return 1;
    case 0x85: return 2;
    case 0x88:
    case 0x89:
    case 0x97: return 3;
    case 0x86: return 4;
    default: return 5;
  }
}

static void refuse(bconn *bc, int code, const char *why) {
  uint8_t c = bc->version == CYMG_MQTT_V5 ? (uint8_t)code : code311(code);
  if (send_connack(bc, false, c, cymg_str_n(NULL, 0), NEVER - 1, false, why) < 0)
    CYMG__DEBUG("MQTT broker: CONNACK not queued");
  bc->failed = true;
  char msg[200];
  snprintf(msg, sizeof(msg), "MQTT: connection refused: %s", why);
  cymg_call(bc->c, CYMG_EV_ERROR, msg);
  bdrain(bc);
}

char *cymg__bk_dup_n(const void *p, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    if (n) memcpy(d, p, n);
    d[n] = 0;
  }
  return d;
}

/* Takes over s from the connection holding it. */
static void take_over(bconn *old) {
  bsess *s = old->s;
  if (s) s->bc = NULL;
  old->s = NULL;
  /* its will is published later: it needs a client id of its own now */
  old->cid = s ? cymg__bk_dup_n(s->id, s->idlen) : NULL;
  old->cid_own = old->cid != NULL;
  if (old->cid == NULL) old->cidlen = 0;
  if (old->will_delay) { /* its session goes on: a delayed will is cancelled */
    bmsg_unref(old->will);
    old->will = NULL;
  }
  cymg__bk_fail(old, 0x8E, "session taken over");
}

static bool on_connect(bconn *bc, const cymg_mqtt_msg *m) {
  cymg_mqtt_broker *b = bc->b;
  const struct cymg_mqtt_connect_fields *cf = &m->connect;
  bc->version = m->version;
  bc->problem_info = true;
  /* 3.1.1 has no Receive Maximum: our own window; 5.0 default 65535 */
  bc->recv_max_out = m->version == CYMG_MQTT_V5 ? 65535 : b->o.receive_max;
  uint32_t expiry = 0;
  bool has_auth_method = false;
  if (m->version == CYMG_MQTT_V5) {
    size_t ofs = 0;
    cymg_mqtt_prop p;
    while (cymg_mqtt_next_prop(m->props, &ofs, &p) == 1) {
      switch (p.id) {
        case CYMG_MQTT_PROP_SESSION_EXPIRY_INTERVAL: expiry = p.iv; break;
        case CYMG_MQTT_PROP_RECEIVE_MAXIMUM: bc->recv_max_out = (uint16_t)p.iv; break;
        case CYMG_MQTT_PROP_MAXIMUM_PACKET_SIZE: bc->max_out = p.iv; break;
        case CYMG_MQTT_PROP_REQUEST_PROBLEM_INFORMATION: bc->problem_info = p.iv != 0; break;
        case CYMG_MQTT_PROP_AUTHENTICATION_METHOD: has_auth_method = true; break;
        default: break;
      }
    }
  } else {
    expiry = cf->clean ? 0 : NEVER;
  }
  if (bc->recv_max_out > b->o.max_queued) bc->recv_max_out = (uint16_t)b->o.max_queued;
  if (has_auth_method) {
    refuse(bc, 0x8C, "enhanced authentication is not supported");
    return false;
  }
  char idbuf[40];
  cymg_str cid = cf->client_id, assigned = {NULL, 0};
  if (cid.len == 0) {
    if (m->version != CYMG_MQTT_V5 && !cf->clean) {
      refuse(bc, 0x85, "an empty client id needs a clean session");
      return false;
    }
    uint8_t rnd[8];
    if (cymg_random_bytes(rnd, sizeof(rnd)) < 0) {
      refuse(bc, 0x80, "no randomness for a client id");
      return false;
    }
    int n = snprintf(idbuf, sizeof(idbuf), "cymg-");
    for (size_t i = 0; i < sizeof(rnd); i++)
      n += snprintf(idbuf + n, sizeof(idbuf) - (size_t)n, "%02x", rnd[i]);
    cid = assigned = cymg_str_n(idbuf, (size_t)n);
  }
  /* The client id is not copied: until the session exists it is a view of the
   * packet (used by the auth hook only), then the session's own copy. */
  bc->cid = (char *)cid.buf;
  if ((cf->has_username &&
       (bc->user = cymg__bk_dup_n(cf->username.buf, cf->username.len)) == NULL)) {
    refuse(bc, 0x80, "out of memory");
    return false;
  }
  bc->cidlen = (uint16_t)cid.len;
  bc->has_user = cf->has_username;
  bc->userlen = (uint16_t)cf->username.len;
  if (b->o.max_connections && b->st.clients >= b->o.max_connections) {
    refuse(bc, 0x97, "too many connections");
    return false;
  }
  if (b->o.auth) {
    cymg_mqtt_client_info ci = cymg__bk_info_of(bc);
    ci.password = cf->password;
    ci.has_password = cf->has_password;
    int rc = b->o.auth(b->o.auth_data, &ci);
    if (rc != 0) {
      refuse(bc, rc, "not authorised");
      return false;
    }
  }
  if (cf->has_will) {
    if (cf->will_qos > b->o.max_qos) {
      refuse(bc, 0x9B, "will QoS not supported");
      return false;
    }
    if (cf->will_retain && b->o.no_retain) {
      refuse(bc, 0x9A, "retain not supported");
      return false;
    }
    if (b->o.acl) { /* checked now too: a delayed will is published with no connection */
      cymg_mqtt_client_info ci = cymg__bk_info_of(bc);
      int code = b->o.acl(b->o.acl_data, &ci, CYMG_MQTT_ACL_PUBLISH, cf->will_topic, cf->will_qos,
                          cf->will_retain);
      if (code) {
        refuse(bc, code >= 0x80 ? code : 0x87, "will topic not authorised");
        return false;
      }
    }
    size_t ofs = 0;
    cymg_mqtt_prop p;
    while (cymg_mqtt_next_prop(cf->will_props, &ofs, &p) == 1)
      if (p.id == CYMG_MQTT_PROP_WILL_DELAY_INTERVAL) bc->will_delay = p.iv;
    bc->will = cymg__bk_msg_new(b, cf->will_topic, cf->will_payload, cf->will_props, cf->will_qos,
                                cf->will_retain, NULL);
    if (bc->will == NULL) {
      refuse(bc, 0x80, "out of memory");
      return false;
    }
  }
  uint32_t expiry_set = NEVER - 1; /* "not changed by us" */
  if (b->o.max_session_expiry && expiry > b->o.max_session_expiry) {
    expiry = b->o.max_session_expiry;
    expiry_set = expiry;
  }
  bool ka_capped = false;
  bc->keepalive = cf->keepalive;
  if (m->version == CYMG_MQTT_V5 && b->o.max_keepalive &&
      (bc->keepalive == 0 || bc->keepalive > b->o.max_keepalive)) {
    bc->keepalive = b->o.max_keepalive;
    ka_capped = true;
  }
  uint32_t hv = cymg__bk_hash(cid.buf, cid.len);
  bsess *s = sess_find(b, cid, hv);
  if (s && s->bc) take_over(s->bc);
  bool clean = cf->clean;
  if (s && clean) {
    if (s->will) cymg__bk_publish_will(b, s->will, NULL); /* the old session ends now */
    bmsg_unref(s->will);
    s->will = NULL;
    cymg__bk_sess_free(b, s);
    s = NULL;
  }
  bool present = s != NULL;
  if (s == NULL && (s = sess_new(b, cid)) == NULL) {
    refuse(bc, 0x80, "out of memory");
    return false;
  }
  bmsg_unref(s->will); /* resumed: a pending delayed will is cancelled */
  s->will = NULL;
  s->expiry = expiry;
  s->offline_at = 0;
  s->version = bc->version;
  if (s->expiry || s->stored) cymg__bk_p_session(b, s);
  s->bc = bc;
  bc->s = s;
  bc->cid = s->id;
  bc->connected = true;
  b->st.clients++;
  if (send_connack(bc, present, 0, assigned, expiry_set, ka_capped, NULL) < 0) {
    cymg__bk_fail(bc, 0x80, "CONNACK not queued");
    return false;
  }
  /* resume: what was in flight goes again, with DUP, in order */
  s->ninfl = 0;
  for (qent *e = s->qhead; e && e != s->unsent; e = e->next) {
    int rc = e->released ? send_ack(bc, CYMG_MQTT_CMD_PUBREL, e->id, 0) : send_entry(bc, e, true);
    if (rc < 0) {
      cymg__bk_fail(bc, 0x80, "resend failed");
      return false;
    }
    s->ninfl++;
  }
  flush_queue(bc);
  return true;
}

/* ---- PUBLISH ---- */

static bool on_publish(bconn *bc, cymg_mqtt_msg *m) {
  cymg_mqtt_broker *b = bc->b;
  bsess *s = bc->s;
  b->st.msgs_in++;
  if (m->qos > b->o.max_qos) {
    cymg__bk_fail(bc, 0x9B, "QoS not supported");
    return false;
  }
  if (m->retain && b->o.no_retain) {
    cymg__bk_fail(bc, 0x9A, "retain not supported");
    return false;
  }
  if (bc->version == CYMG_MQTT_V5) {
    size_t ofs = 0;
    cymg_mqtt_prop p;
    while (cymg_mqtt_next_prop(m->props, &ofs, &p) == 1) {
      if (p.id == CYMG_MQTT_PROP_SUBSCRIPTION_IDENTIFIER) {
        cymg__bk_fail(bc, CYMG_MQTT_RC_PROTOCOL_ERROR, "subscription identifier from a client");
        return false;
      }
      if (p.id != CYMG_MQTT_PROP_TOPIC_ALIAS) continue;
      if (p.iv == 0 || p.iv > b->o.topic_alias_max) {
        cymg__bk_fail(bc, 0x94, "topic alias invalid");
        return false;
      }
      if (bc->alias == NULL) {
        bc->nalias = b->o.topic_alias_max;
        if ((bc->alias = calloc((size_t)bc->nalias + 1, sizeof(char *))) == NULL) {
          cymg__bk_fail(bc, 0x80, "out of memory");
          return false;
        }
      }
      if (m->topic.len) {
        char *t = cymg__bk_dup_n(m->topic.buf, m->topic.len);
        if (t == NULL) {
          cymg__bk_fail(bc, 0x80, "out of memory");
          return false;
        }
        free(bc->alias[p.iv]);
        bc->alias[p.iv] = t;
      } else if (bc->alias[p.iv] == NULL) {
        cymg__bk_fail(bc, CYMG_MQTT_RC_PROTOCOL_ERROR, "topic alias not set");
        return false;
      } else {
        m->topic = cymg_str_c(bc->alias[p.iv]);
      }
    }
  }
  if (m->topic.len == 0) {
    cymg__bk_fail(bc, CYMG_MQTT_RC_PROTOCOL_ERROR, "empty topic without an alias");
    return false;
  }
  if (m->qos == 2 && in_has(s, m->id)) { /* a resend: acknowledged, not routed again */
    if (send_ack(bc, CYMG_MQTT_CMD_PUBREC, m->id, 0) < 0)
      cymg__bk_fail(bc, 0x80, "PUBREC not queued");
    return !bc->failed;
  }
  if (m->qos == 2 && s->n_in >= b->o.receive_max) {
    cymg__bk_fail(bc, CYMG_MQTT_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");
    return false;
  }
  int code = 0;
  if (b->o.acl) {
    cymg_mqtt_client_info ci = cymg__bk_info_of(bc);
    code = b->o.acl(b->o.acl_data, &ci, CYMG_MQTT_ACL_PUBLISH, m->topic, m->qos, m->retain);
    if (code && code < 0x80) code = 0x87;
  }
  if (code == 0) {
    bmsg *bm = cymg__bk_msg_new(b, m->topic, m->data, m->props, m->qos, m->retain, NULL);
    if (bm == NULL) {
      cymg__bk_fail(bc, 0x80, "out of memory");
      return false;
    }
    cymg__bk_route(b, bm, s, m);
    bmsg_unref(bm);
    if (bc->failed || bc->b == NULL) return false;
  }
  int rc = 0;
  if (m->qos == 1) rc = send_ack(bc, CYMG_MQTT_CMD_PUBACK, m->id, (uint8_t)code);
  if (m->qos == 2) {
    /* 3.1.1 has no refusal: the flow completes as if routed */
    if (code == 0 || bc->version != CYMG_MQTT_V5) {
      rc = cymg__bk_in_add(s, m->id);
      if (rc >= 0) cymg__bk_p_in(b, s, m->id, true);
    }
    if (rc >= 0) rc = send_ack(bc, CYMG_MQTT_CMD_PUBREC, m->id, (uint8_t)code);
  }
  if (rc < 0) {
    cymg__bk_fail(bc, 0x80, "acknowledgement not queued");
    return false;
  }
  return true;
}

/* PUBACK / PUBREC / PUBCOMP from the client for our outgoing flows. */
static bool on_ack(bconn *bc, const cymg_mqtt_msg *m) {
  bsess *s = bc->s;
  cymg_mqtt_broker *b = bc->b;
  qent *prev = NULL, *e = s->qhead;
  for (; e && e != s->unsent; prev = e, e = e->next)
    if (e->id == m->id) break;
  if (e == NULL || e == s->unsent) {
    if (m->cmd == CYMG_MQTT_CMD_PUBREC) /* unknown id: v5 says 0x92 */
      return send_ack(bc, CYMG_MQTT_CMD_PUBREL, m->id, 0x92) >= 0 ||
             (cymg__bk_fail(bc, 0x80, "send"), 0);
    return true;
  }
  bool done = false;
  if (m->cmd == CYMG_MQTT_CMD_PUBACK) done = e->qos == 1;
  if (m->cmd == CYMG_MQTT_CMD_PUBCOMP) done = e->qos == 2 && e->released;
  if (m->cmd == CYMG_MQTT_CMD_PUBREC && e->qos == 2) {
    if (m->ack >= 0x80) {
      done = true;
    } else {
      e->released = true;
      cymg__bk_p_msg(b, s, e);
      if (send_ack(bc, CYMG_MQTT_CMD_PUBREL, m->id, 0) < 0) {
        cymg__bk_fail(bc, 0x80, "PUBREL not queued");
        return false;
      }
    }
  }
  if (done) {
    cymg__bk_p_msg_del(b, s, e);
    q_unlink(s, prev, e);
    cymg__bk_qent_free(b, s, e);
    s->ninfl--;
    flush_queue(bc);
  }
  return !bc->failed;
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

/* Splits "$share/GROUP/filter"; returns false for a malformed share. */
static bool split_share(cymg_str f, cymg_str *group, cymg_str *rest) {
  *group = cymg_str_n(NULL, 0);
  *rest = f;
  static const char pfx[] = "$share/";
  if (f.len < sizeof(pfx) - 1 || memcmp(f.buf, pfx, sizeof(pfx) - 1) != 0) return true;
  const char *g = f.buf + sizeof(pfx) - 1;
  size_t left = f.len - (sizeof(pfx) - 1);
  const char *sl = memchr(g, '/', left);
  if (sl == NULL || sl == g) return false;
  *group = cymg_str_n(g, (size_t)(sl - g));
  *rest = cymg_str_n(sl + 1, left - group->len - 1);
  if (memchr(group->buf, '+', group->len) || memchr(group->buf, '#', group->len)) return false;
  return rest->len > 0 && cymg_mqtt_filter_valid(*rest);
}

static size_t levels(cymg_str f) {
  size_t n = 1;
  for (size_t i = 0; i < f.len; i++) n += f.buf[i] == '/';
  return n;
}

typedef struct replay {
  cymg_mqtt_broker *b;
  bconn *bc;
  uint8_t qos;
  uint32_t sub_id;
} replay;

static void replay_one(void *arg, bmsg *m) {
  replay *r = arg;
  if (cymg__bk_expired(r->b, m) || r->bc->failed) return;
  uint8_t qos = m->qos < r->qos ? m->qos : r->qos;
  if (qos == 0) {
    uint8_t small[1024], *buf = small;
    size_t id_at;
    size_t n = enc_publish(r->b, m, r->bc->version, 0, true, false, r->sub_id, small, sizeof(small),
                           &id_at);
    if (n == 0 || (r->bc->max_out && n > r->bc->max_out)) return;
    if (n > sizeof(small) && (buf = malloc(n)) == NULL) return;
    if (buf != small)
      (void)enc_publish(r->b, m, r->bc->version, 0, true, false, r->sub_id, buf, n, &id_at);
    if (xmit(r->bc, buf, n) >= 0) r->b->st.msgs_out++;
    if (buf != small) free(buf);
    return;
  }
  if (enqueue(r->b, r->bc->s, m, qos, true, r->sub_id)) flush_queue(r->bc);
}

static bsub *sess_sub_find(bsess *s, cymg_str f, uint32_t *idx) {
  for (uint32_t i = 0; i < s->nsubs; i++)
    if (s->subs[i]->flen == f.len && memcmp(s->subs[i]->filter, f.buf, f.len) == 0) {
      *idx = i;
      return s->subs[i];
    }
  return NULL;
}

/* One filter of a SUBSCRIBE: returns the SUBACK code; *replay_it says whether
 * retained messages are to be sent for it. */
static uint8_t subscribe_one(bconn *bc, cymg_str f, uint8_t opts, uint32_t sub_id,
                             bool *replay_it) {
  cymg_mqtt_broker *b = bc->b;
  bsess *s = bc->s;
  bool v5 = bc->version == CYMG_MQTT_V5;
  *replay_it = false;
  cymg_str group, rest;
  if (!split_share(f, &group, &rest) || levels(rest) > MAX_LEVELS)
    return v5 ? 0x8F : 0x80; /* topic filter invalid */
  bool wild = memchr(rest.buf, '+', rest.len) || memchr(rest.buf, '#', rest.len);
  if (group.len && b->o.no_shared) return v5 ? 0x9E : 0x80;
  if (wild && b->o.no_wildcard) return v5 ? 0xA2 : 0x80;
  if (sub_id && b->o.no_sub_ids) return v5 ? 0xA1 : 0x80;
  uint8_t qos = opts & 3;
  if (qos > b->o.max_qos) qos = b->o.max_qos;
  if (b->o.acl) {
    cymg_mqtt_client_info ci = cymg__bk_info_of(bc);
    int code = b->o.acl(b->o.acl_data, &ci, CYMG_MQTT_ACL_SUBSCRIBE, f, qos, false);
    if (code) return v5 ? (uint8_t)(code >= 0x80 ? code : 0x87) : 0x80;
  }
  uint32_t idx;
  bool existed = sess_sub_find(s, f, &idx) != NULL;
  if (!existed && s->nsubs >= b->o.max_subs) return v5 ? 0x97 : 0x80;
  if (cymg__bk_sess_sub(b, s, f, (uint8_t)((opts & ~3) | qos), sub_id, &existed) < 0) return 0x80;
  int rh = (opts >> 4) & 3;
  *replay_it = !group.len && !b->o.no_retain && (rh == 0 || (rh == 1 && !existed));
  return qos;
}

int cymg__bk_sess_sub(cymg_mqtt_broker *b, bsess *s, cymg_str f, uint8_t opts, uint32_t sub_id,
                      bool *existed) {
  cymg_str group, rest;
  if (!split_share(f, &group, &rest)) return CYMG_EINVAL;
  uint32_t idx;
  bsub *old = sess_sub_find(s, f, &idx);
  *existed = old != NULL;
  bsub *sub = calloc(1, sizeof(*sub) + f.len + 1);
  if (sub == NULL) return CYMG_ENOMEM;
  sub->s = s;
  sub->sub_id = sub_id;
  sub->opts = opts;
  sub->flen = (uint16_t)f.len;
  memcpy(sub->filter, f.buf, f.len);
  if (cymg__bk_tree_add(b->root, rest, group, sub) < 0) {
    free(sub);
    return CYMG_ENOMEM;
  }
  if (old) {
    sub_free(b, old);
    s->subs[idx] = sub;
  } else {
    if (s->nsubs == s->scap) {
      uint32_t cap = s->scap ? s->scap * 2 : 2;
      bsub **a = realloc(s->subs, cap * sizeof(*a));
      if (a == NULL) {
        cymg__bk_tree_del(sub);
        free(sub);
        return CYMG_ENOMEM;
      }
      s->subs = a;
      s->scap = cap;
    }
    s->subs[s->nsubs++] = sub;
  }
  b->st.subscriptions++;
  cymg__bk_p_sub(b, s, sub);
  return 0;
}

bool cymg__bk_sess_unsub(cymg_mqtt_broker *b, bsess *s, cymg_str f) {
  uint32_t idx;
  bsub *sub = sess_sub_find(s, f, &idx);
  if (sub == NULL) return false;
  sub_free(b, sub);
  s->subs[idx] = s->subs[--s->nsubs];
  cymg__bk_p_unsub(b, s, f);
  return true;
}

static bool on_subscribe(bconn *bc, const cymg_mqtt_msg *m) {
  cymg_mqtt_broker *b = bc->b;
  uint32_t sub_id = 0;
  size_t ofs = 0;
  cymg_mqtt_prop p;
  while (cymg_mqtt_next_prop(m->props, &ofs, &p) == 1)
    if (p.id == CYMG_MQTT_PROP_SUBSCRIPTION_IDENTIFIER) sub_id = p.iv;
  uint8_t codes[256];
  bool again[256];
  cymg_str fl[256];
  size_t n = 0;
  cymg_str f;
  uint8_t opts;
  ofs = 0;
  int rc;
  while ((rc = cymg_mqtt_next_filter(m, &ofs, &f, &opts)) == 1) {
    if (n == sizeof(codes)) {
      cymg__bk_fail(bc, 0x97, "too many filters in one SUBSCRIBE");
      return false;
    }
    cymg_str g, r;
    if ((opts & 0x04) && split_share(f, &g, &r) && g.len) {
      cymg__bk_fail(bc, CYMG_MQTT_RC_PROTOCOL_ERROR, "no-local on a shared subscription");
      return false;
    }
    fl[n] = f;
    codes[n] = subscribe_one(bc, f, opts, sub_id, &again[n]);
    n++;
  }
  if (rc < 0 || n == 0) {
    cymg__bk_fail(bc, CYMG_MQTT_RC_PROTOCOL_ERROR, "SUBSCRIBE without filters");
    return false;
  }
  cymg_mqtt_msg a;
  memset(&a, 0, sizeof(a));
  a.cmd = CYMG_MQTT_CMD_SUBACK;
  a.id = m->id;
  a.data = cymg_str_n(codes, n);
  if (send_pkt(bc, &a) < 0) {
    cymg__bk_fail(bc, 0x80, "SUBACK not queued");
    return false;
  }
  for (size_t i = 0; i < n && !bc->failed; i++) {
    if (!again[i]) continue;
    replay r = {b, bc, codes[i], sub_id};
    cymg__bk_ret_match(&b->ret, fl[i], replay_one, &r);
  }
  return !bc->failed;
}

static bool on_unsubscribe(bconn *bc, const cymg_mqtt_msg *m) {
  cymg_mqtt_broker *b = bc->b;
  bsess *s = bc->s;
  uint8_t codes[256];
  size_t n = 0, ofs = 0;
  cymg_str f;
  uint8_t opts;
  int rc;
  while ((rc = cymg_mqtt_next_filter(m, &ofs, &f, &opts)) == 1) {
    bool had = cymg__bk_sess_unsub(b, s, f);
    if (n < sizeof(codes)) codes[n++] = had ? 0 : 0x11;
  }
  if (rc < 0 || n == 0) {
    cymg__bk_fail(bc, CYMG_MQTT_RC_PROTOCOL_ERROR, "UNSUBSCRIBE without filters");
    return false;
  }
  cymg_mqtt_msg a;
  memset(&a, 0, sizeof(a));
  a.cmd = CYMG_MQTT_CMD_UNSUBACK;
  a.id = m->id;
  if (bc->version == CYMG_MQTT_V5) a.data = cymg_str_n(codes, n);
  if (send_pkt(bc, &a) < 0) {
    cymg__bk_fail(bc, 0x80, "UNSUBACK not queued");
    return false;
  }
  return true;
}

/* ---- the packet loop ---- */

static bool handle(bconn *bc, cymg_mqtt_msg *m) {
  unsigned cmd = m->cmd;
  if (!bc->connected) {
    if (cmd != CYMG_MQTT_CMD_CONNECT) {
      cymg__bk_fail(bc, CYMG_MQTT_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
      return false;
    }
    return on_connect(bc, m);
  }
  switch (cmd) {
    case CYMG_MQTT_CMD_CONNECT:
      cymg__bk_fail(bc, CYMG_MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
      return false;
    case CYMG_MQTT_CMD_PUBLISH: return on_publish(bc, m);
    case CYMG_MQTT_CMD_PUBACK:
    case CYMG_MQTT_CMD_PUBREC:
    case CYMG_MQTT_CMD_PUBCOMP: return on_ack(bc, m);
    case CYMG_MQTT_CMD_PUBREL: {
      bool had = cymg__bk_in_del(bc->s, m->id);
      if (had) cymg__bk_p_in(bc->b, bc->s, m->id, false);
      if (send_ack(bc, CYMG_MQTT_CMD_PUBCOMP, m->id, had ? 0 : 0x92) < 0) {
        cymg__bk_fail(bc, 0x80, "PUBCOMP not queued");
        return false;
      }
      return true;
    }
    case CYMG_MQTT_CMD_SUBSCRIBE: return on_subscribe(bc, m);
    case CYMG_MQTT_CMD_UNSUBSCRIBE: return on_unsubscribe(bc, m);
    case CYMG_MQTT_CMD_PINGREQ: {
      cymg_mqtt_msg a;
      memset(&a, 0, sizeof(a));
      a.cmd = CYMG_MQTT_CMD_PINGRESP;
      if (send_pkt(bc, &a) < 0) {
        cymg__bk_fail(bc, 0x80, "PINGRESP not queued");
        return false;
      }
      return true;
    }
    case CYMG_MQTT_CMD_DISCONNECT: {
      /* 0: no will; 0x04 (v5): with will; others: the client failed */
      bc->no_will = m->ack == 0;
      size_t ofs = 0;
      cymg_mqtt_prop p;
      while (cymg_mqtt_next_prop(m->props, &ofs, &p) == 1)
        if (p.id == CYMG_MQTT_PROP_SESSION_EXPIRY_INTERVAL && bc->s) {
          if (bc->s->expiry == 0 && p.iv != 0) {
            bc->no_will = false;
            cymg__bk_fail(bc, CYMG_MQTT_RC_PROTOCOL_ERROR, "session expiry set at DISCONNECT");
            return false;
          }
          bc->s->expiry = p.iv;
          cymg__bk_p_session(bc->b, bc->s);
        }
      bc->failed = true; /* nothing more is read */
      bdrain(bc);
      return false;
    }
    default:
      cymg__bk_fail(bc, CYMG_MQTT_RC_PROTOCOL_ERROR, "packet type not allowed from a client");
      return false;
  }
}

static void bk_read_batch(bconn *bc);

/* Reads the packets received; with a store, their output is held until what
 * they changed is synced (one sync for the batch). */
static void bk_read(bconn *bc) {
  bc->holding = bc->b && bc->b->store && !bc->b->store_failed;
  bk_read_batch(bc);
  release_held(bc);
}

static void bk_read_batch(bconn *bc) {
  cymg_mqtt_broker *b = bc->b;
  cymg_conn *c = bc->c;
  while (bc->b && !bc->failed && !(c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) &&
         !cymg__conn_out_full(c)) {
    cymg_str d = !bc->ws ? cymg_conn_recv_data(c)
                 : bc->x ? cymg_str_n(bc->x->in.buf, bc->x->in.len)
                         : cymg_str_n(NULL, 0);
    if (d.len == 0) break;
    cymg_mqtt_msg m;
    cymg_mqtt_err e;
    int rc = cymg_mqtt_parse(d.buf, d.len, bc->version ? bc->version : CYMG_MQTT_V311,
                             b->o.max_packet, &m, &e);
    if (rc == CYMG_EAGAIN) break;
    if (rc < 0) {
      if (!bc->connected && e.reason == CYMG_MQTT_RC_UNSUPPORTED_VERSION) {
        /* MQTT-3.1.2-2: CONNACK "unacceptable protocol level", in the form
         * every level understands */
        static const uint8_t level[] = {0x20, 2, 0, 1};
        if (xmit(bc, level, sizeof(level)) < 0) CYMG__DEBUG("MQTT broker: CONNACK not queued");
      }
      cymg__bk_fail(bc, e.reason, e.why);
      return;
    }
    if (m.cmd == CYMG_MQTT_CMD_CONNECT && !bc->connected) bc->version = m.version;
    b->st.bytes_in += (size_t)rc;
    bc->last_rx = cymg__bk_now_ms(b);
    bool go = handle(bc, &m);
    if (!bc->connected && !bc->cid_own) { /* a refused CONNECT: its id view ends here */
      bc->cid = NULL;
      bc->cidlen = 0;
    }
    if (bc->b && b->o.fn) {
      if (m.cmd == CYMG_MQTT_CMD_PUBLISH) cymg_call(c, CYMG_EV_MQTT_MSG, &m);
      cymg_call(c, CYMG_EV_MQTT_CMD, &m);
    }
    if (bc->ws)
      cymg_buf_del(&bc->x->in, 0, (size_t)rc);
    else
      cymg_conn_consume(c, (size_t)rc);
    if (!go) return;
  }
}

static bool bk_event(cymg_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (c->proto_state == NULL) return false;
  if (*(uint8_t *)c->proto_state == K_LSN) {
    lstate *l = c->proto_state;
    if (ev == CYMG_EV_CLOSE) l->c = NULL;
    return false;
  }
  bconn *bc = c->proto_state;
  if (bc->b == NULL) return ev == CYMG_EV_READ;
  switch (ev) {
    case CYMG_EV_READ: bk_read(bc); return true;
    case CYMG_EV_WRITE:
      if (!bc->failed && !cymg__conn_out_full(c)) {
        flush_queue(bc);
        if (c->recv.len) bk_read(bc);
      }
      return false;
    case CYMG_EV_CLOSE: cymg__bk_conn_gone(bc); return false;
    default: return false;
  }
}

static bool bk_ws_event(cymg_conn *c, int ev, void *ev_data) {
  cymg__ws *ws = cymg__ws_of(c);
  bconn *bc = ws ? ws->inner_state : NULL;
  if (bc == NULL) return false;
  if (bc->b == NULL) return ev == CYMG_EV_WS_MSG || ev == CYMG_EV_WS_OPEN;
  if (ev == CYMG_EV_WS_MSG) {
    const cymg_ws_msg *m = ev_data;
    if (bc->failed) return true;
    if (CYMG_WS_OPCODE(m->flags) != CYMG_WS_OP_BINARY) {
      cymg__bk_fail(bc, CYMG_MQTT_RC_MALFORMED, "text WebSocket message (MQTT needs binary)");
      return true;
    }
    if (bc->x == NULL && (bc->x = calloc(1, sizeof(*bc->x))) == NULL) {
      cymg__bk_fail(bc, 0x80, "out of memory");
      return true;
    }
    if (bc->x->in.len + m->data.len > (size_t)bc->b->o.max_packet + 5) {
      cymg__bk_fail(bc, CYMG_MQTT_RC_PACKET_TOO_LARGE, "packet larger than the maximum");
      return true;
    }
    if (cymg_buf_append(&bc->x->in, m->data.buf, m->data.len) < 0) {
      cymg__bk_fail(bc, 0x80, "out of memory");
      return true;
    }
    bk_read(bc);
    return true;
  }
  if (ev == CYMG_EV_WS_OPEN) return true;
  if (ev == CYMG_EV_WRITE && !bc->failed && !cymg__conn_out_full(c)) {
    flush_queue(bc);
    if (bc->x && bc->x->in.len) bk_read(bc);
  }
  if (ev == CYMG_EV_CLOSE) cymg__bk_conn_gone(bc);
  return false;
}

bconn *cymg__bk_bconn_new(cymg_mqtt_broker *b, cymg_conn *c) {
  bconn *bc = calloc(1, sizeof(*bc));
  if (bc == NULL) return NULL;
  bc->kind = K_CONN;
  bc->b = b;
  bc->c = c;
  bc->since = bc->last_rx = cymg__bk_now_ms(b);
  /* A small first send buffer (the core would start at 1 KiB for a 4-byte
   * CONNACK), allocated now, beside the connection's other long-lived blocks. */
  if (c->send.size == 0 && (c->send.buf = malloc(SEND_FIRST)) != NULL) c->send.size = SEND_FIRST;
  bc->next = b->conns;
  if (b->conns) b->conns->prev = bc;
  b->conns = bc;
  return bc;
}

static void *bk_accept(cymg_conn *child, cymg_conn *lsn) {
  lstate *l = lsn->proto_state;
  if (l == NULL || l->kind != K_LSN || l->b == NULL) return NULL;
  bconn *bc = cymg__bk_bconn_new(l->b, child);
  if (bc && child->recv_limit < l->b->o.max_packet + 8)
    cymg_conn_set_limits(child, l->b->o.max_packet + 8, 0);
  return bc;
}

const cymg_proto cymg__bk_proto = {"mqtt-broker", bk_event, cymg__bk_bconn_free, bk_accept};
const cymg_proto cymg__bk_ws_inner = {"mqtt-broker-ws", bk_ws_event, cymg__bk_bconn_free, NULL};
