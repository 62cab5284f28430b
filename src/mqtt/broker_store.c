/* The broker's durable state through the persistence log (store.c): a record
 * for each change of a retained message or a persistent session (its
 * subscriptions, queued and in-flight QoS > 0 messages, QoS 2 ids received),
 * the replay at start, the group-commit sync and compaction. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mqtt/broker_priv.h"

static uint64_t unix_now(void) {
  return (uint64_t)time(NULL);
}

/* A manager-clock deadline as Unix seconds, and back. */
static uint64_t to_unix(const cymg_mqtt_broker *b, uint64_t at_ms) {
  if (at_ms == 0) return 0;
  uint64_t now = cymg_mgr_now(b->mgr);
  return unix_now() + (at_ms > now ? (at_ms - now + 999) / 1000 : 0);
}
static uint64_t from_unix(const cymg_mqtt_broker *b, uint64_t t) {
  if (t == 0) return 0;
  uint64_t u = unix_now(), now = cymg_mgr_now(b->mgr);
  return t > u ? now + (t - u) * 1000 : now; /* already due: expires at once */
}

static bool on(const cymg_mqtt_broker *b) {
  return b->store && !b->store_failed && !b->replaying;
}

static void put(cymg_mqtt_broker *b, const cymg__mqtt_rec *r) {
  int rc = cymg__mqtt_store_put(b->store, r);
  if (rc < 0) {
    /* Acknowledging as if durable would be a lie: from here the broker runs in
     * memory only, and says so. */
    CYMG__ERR("MQTT broker: persistence failed (%s): going on in memory only", cymg_strerror(rc));
    b->store_failed = true;
  }
}

static cymg_str id_of(const bsess *s) {
  return cymg_str_n(s->id, s->idlen);
}

void cymg__bk_p_retain(cymg_mqtt_broker *b, const bmsg *m) {
  if (!on(b)) return;
  cymg__mqtt_rec r = {.type = CYMG__ST_RETAIN,
                      .topic = bmsg_topic(m),
                      .payload = bmsg_payload(m),
                      .props = bmsg_props(m),
                      .qos = m->qos,
                      .time = to_unix(b, m->expire_at)};
  put(b, &r);
}

void cymg__bk_p_retain_del(cymg_mqtt_broker *b, cymg_str topic) {
  if (!on(b)) return;
  cymg__mqtt_rec r = {.type = CYMG__ST_RETAIN_DEL, .topic = topic};
  put(b, &r);
}

static uint64_t offline_unix(const cymg_mqtt_broker *b, const bsess *s) {
  uint64_t now = cymg_mgr_now(b->mgr), ago = now > s->offline_at ? (now - s->offline_at) / 1000 : 0;
  return unix_now() > ago ? unix_now() - ago : 1;
}

void cymg__bk_p_session(cymg_mqtt_broker *b, bsess *s) {
  if (!on(b)) return;
  s->stored = true;
  cymg__mqtt_rec r = {.type = CYMG__ST_SESSION,
                      .client_id = id_of(s),
                      .num = s->expiry,
                      .version = s->version,
                      .time = s->offline_at ? offline_unix(b, s) : 0};
  put(b, &r);
}

void cymg__bk_p_session_del(cymg_mqtt_broker *b, bsess *s) {
  if (!on(b) || !s->stored) return;
  cymg__mqtt_rec r = {.type = CYMG__ST_SESSION_DEL, .client_id = id_of(s)};
  put(b, &r);
}

void cymg__bk_p_sub(cymg_mqtt_broker *b, const bsess *s, const bsub *sub) {
  if (!on(b) || !s->stored) return;
  cymg__mqtt_rec r = {.type = CYMG__ST_SUB,
                      .client_id = id_of(s),
                      .topic = cymg_str_n(sub->filter, sub->flen),
                      .opts = sub->opts,
                      .num = sub->sub_id};
  put(b, &r);
}

void cymg__bk_p_unsub(cymg_mqtt_broker *b, const bsess *s, cymg_str f) {
  if (!on(b) || !s->stored) return;
  cymg__mqtt_rec r = {.type = CYMG__ST_UNSUB, .client_id = id_of(s), .topic = f};
  put(b, &r);
}

/* num carries the subscription identifier of the delivery. */
void cymg__bk_p_msg(cymg_mqtt_broker *b, const bsess *s, const qent *e) {
  if (!on(b) || !s->stored) return;
  cymg__mqtt_rec r = {.type = CYMG__ST_MSG,
                      .client_id = id_of(s),
                      .seq = e->seq,
                      .topic = bmsg_topic(e->m),
                      .payload = bmsg_payload(e->m),
                      .props = bmsg_props(e->m),
                      .qos = e->qos,
                      .retain = e->retain,
                      .time = to_unix(b, e->m->expire_at),
                      .id = e->sent ? e->id : 0,
                      .released = e->released,
                      .num = e->sub_id};
  put(b, &r);
}

void cymg__bk_p_msg_del(cymg_mqtt_broker *b, const bsess *s, const qent *e) {
  if (!on(b) || !s->stored) return;
  cymg__mqtt_rec r = {.type = CYMG__ST_MSG_DEL, .client_id = id_of(s), .seq = e->seq};
  put(b, &r);
}

void cymg__bk_p_in(cymg_mqtt_broker *b, const bsess *s, uint16_t id, bool add) {
  if (!on(b) || !s->stored) return;
  cymg__mqtt_rec r = {
      .type = add ? CYMG__ST_QOS2_IN : CYMG__ST_QOS2_IN_DEL, .client_id = id_of(s), .id = id};
  put(b, &r);
}

/* ---- replay ---- */

static qent *find_seq(bsess *s, uint64_t seq, qent **prev) {
  *prev = NULL;
  for (qent *e = s->qhead; e; *prev = e, e = e->next)
    if (e->seq == seq) return e;
  return NULL;
}

static void replay_msg(cymg_mqtt_broker *b, bsess *s, const cymg__mqtt_rec *r) {
  qent *prev, *e = find_seq(s, r->seq, &prev);
  if (e == NULL) {
    bmsg *m = cymg__bk_msg_new(b, r->topic, r->payload, r->props, r->qos, r->retain, NULL);
    if (m == NULL) return;
    m->expire_at = from_unix(b, r->time);
    e = cymg__bk_enqueue_raw(b, s, m, r->qos, r->retain, r->num);
    bmsg_unref(m);
    if (e == NULL) return;
    e->seq = r->seq;
    if (r->seq > s->seq) s->seq = r->seq;
  }
  e->id = r->id;
  e->released = r->released;
}

static void replay_rec(void *data, const cymg__mqtt_rec *r) {
  cymg_mqtt_broker *b = data;
  bsess *s =
      r->client_id.len ? cymg__bk_sess_get(b, r->client_id, r->type == CYMG__ST_SESSION) : NULL;
  switch (r->type) {
    case CYMG__ST_RETAIN: {
      bmsg *m = cymg__bk_msg_new(b, r->topic, r->payload, r->props, r->qos, true, NULL);
      if (m == NULL) return;
      m->expire_at = from_unix(b, r->time);
      cymg__bk_retain(b, m);
      bmsg_unref(m);
      return;
    }
    case CYMG__ST_RETAIN_DEL:
      if (cymg__bk_ret_set(&b->ret, r->topic, NULL) < 0) return;
      b->st.retained = b->ret.n;
      return;
    default: break;
  }
  if (s == NULL) return; /* a record of a session that is gone */
  bool ex;
  qent *prev, *e;
  switch (r->type) {
    case CYMG__ST_SESSION:
      s->expiry = r->num;
      s->version = r->version;
      s->stored = true;
      /* offline since then (or, when it was online, since now) */
      s->offline_at = cymg_mgr_now(b->mgr);
      if (r->time && r->time < unix_now()) {
        uint64_t ago = (unix_now() - r->time) * 1000;
        s->offline_at = ago < s->offline_at ? s->offline_at - ago : 1;
      }
      break;
    case CYMG__ST_SESSION_DEL: cymg__bk_sess_free(b, s); break;
    case CYMG__ST_SUB:
      if (cymg__bk_sess_sub(b, s, r->topic, r->opts, r->num, &ex) < 0)
        CYMG__ERR("MQTT broker: subscription not restored");
      break;
    case CYMG__ST_UNSUB: (void)cymg__bk_sess_unsub(b, s, r->topic); break;
    case CYMG__ST_MSG: replay_msg(b, s, r); break;
    case CYMG__ST_MSG_DEL:
      if ((e = find_seq(s, r->seq, &prev)) == NULL) break;
      if (prev)
        prev->next = e->next;
      else
        s->qhead = e->next;
      if (s->qtail == e) s->qtail = prev;
      if (s->unsent == e) s->unsent = e->next;
      if (s->last_sent == e) s->last_sent = prev;
      cymg__bk_qent_free(b, s, e);
      break;
    case CYMG__ST_QOS2_IN:
      if (cymg__bk_in_add(s, r->id) < 0) CYMG__ERR("MQTT broker: QoS 2 id not restored");
      break;
    case CYMG__ST_QOS2_IN_DEL: (void)cymg__bk_in_del(s, r->id); break;
    default: break;
  }
}

/* After the replay: what had an id was in flight (resent with DUP when the
 * session resumes); the first entry without one starts the unsent part. */
static void settle(cymg_mqtt_broker *b) {
  for (size_t i = 0; i < b->scap; i++)
    for (bsess *s = b->stab[i]; s; s = s->hnext) {
      s->unsent = s->last_sent = NULL;
      bool inflight = true;
      for (qent *e = s->qhead; e; e = e->next) {
        if (e->id == 0 || !inflight) {
          inflight = false;
          e->sent = false;
          e->id = 0;
          e->released = false;
          if (s->unsent == NULL) s->unsent = e;
        } else {
          s->last_sent = e;
          e->sent = true;
          if (e->id > s->next_id) s->next_id = e->id;
        }
      }
    }
}

int cymg__bk_store_open(cymg_mqtt_broker *b, const char *path) {
  char err[256];
  b->replaying = true;
  int rc = cymg__mqtt_store_open(path, replay_rec, b, &b->store, err, sizeof(err));
  b->replaying = false;
  if (rc < 0) {
    cymg__mgr_errmsg(b->mgr, "MQTT broker: %s", err[0] ? err : cymg_strerror(rc));
    b->store = NULL;
    return rc;
  }
  settle(b);
  return 0;
}

void cymg__bk_store_close(cymg_mqtt_broker *b) {
  cymg__mqtt_store_close(b->store);
  b->store = NULL;
}

/* ---- sync and compaction ---- */

static void dump(void *data) {
  cymg_mqtt_broker *b = data;
  for (size_t i = 0; i < b->ret.cap; i++)
    for (rent *e = b->ret.tab[i]; e; e = e->next) cymg__bk_p_retain(b, e->m);
  for (size_t i = 0; i < b->scap; i++)
    for (bsess *s = b->stab[i]; s; s = s->hnext) {
      if (!s->stored) continue;
      cymg__bk_p_session(b, s);
      for (uint32_t k = 0; k < s->nsubs; k++) cymg__bk_p_sub(b, s, s->subs[k]);
      for (qent *e = s->qhead; e; e = e->next) cymg__bk_p_msg(b, s, e);
      for (uint32_t k = 0; k < s->n_in; k++) cymg__bk_p_in(b, s, s->in_ids[k], true);
    }
}

void cymg__bk_store_sync(cymg_mqtt_broker *b) {
  if (b->store == NULL || b->store_failed || !cymg__mqtt_store_dirty(b->store)) return;
  int rc = cymg__mqtt_store_sync(b->store);
  if (rc < 0) {
    CYMG__ERR("MQTT broker: persistence sync failed (%s): going on in memory only",
              cymg_strerror(rc));
    b->store_failed = true;
    return;
  }
  if (cymg__mqtt_store_wants_compact(b->store)) {
    rc = cymg__mqtt_store_compact(b->store, dump, b);
    if (rc < 0) CYMG__ERR("MQTT broker: compaction failed (%s)", cymg_strerror(rc));
    b->store_failed = false; /* a put failing inside dump only failed the compaction */
  }
}
