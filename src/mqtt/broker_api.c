/* The broker's public entry points (new, listen, free, publish, watch,
 * stats), the ws:// listener's upgrade to MQTT, and the one sweep timer
 * (keep-alive, session expiry, delayed wills, expired retained messages). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymg/mqtt_broker.h"
#include "cymg/timer.h"
#include "cymg/url.h"
#include "mqtt/broker_priv.h"
#include "ws/ws_internal.h"

/* The event function of a ws:// listener and of its connections until they
 * upgrade: MQTT over WebSocket only. */
static void ws_lsn_fn(cymg_conn *c, int ev, void *ev_data) {
  lstate *l = cymg_conn_userdata(c);
  if (l == NULL) return;
  if (cymg_conn_is_listening(c) && ev == CYMG_EV_CLOSE) l->c = NULL;
  if (l->b && l->b->o.fn && ev != CYMG_EV_HTTP_MSG) {
    /* the program's function sees its own pointer, as on other connections */
    c->fn_data = l->b->o.fn_data;
    l->b->o.fn(c, ev, ev_data);
    c->fn_data = l;
  }
  if (ev != CYMG_EV_HTTP_MSG || l->b == NULL || cymg_conn_is_listening(c)) return;
  cymg_mqtt_broker *b = l->b;
  const cymg_http_msg *hm = ev_data;
  if (l->path && !cymg_str_eq(hm->uri, cymg_str_c(l->path))) {
    cymg_http_reply(c, 404, "Connection: close\r\n", "not found\n");
    return;
  }
  cymg_str proto = {NULL, 0};
  bool asked = false;
  for (size_t i = 0; i < hm->num_headers; i++)
    if (cymg_str_case_eq(hm->headers[i].name, cymg_str_c("Sec-WebSocket-Protocol"))) asked = true;
  if (asked && cymg_ws_select_protocol(hm, "mqtt, mqttv3.1", &proto) < 0) {
    cymg_http_reply(c, 400, "Connection: close\r\n",
                    "MQTT over WebSocket needs subprotocol mqtt\n");
    return;
  }
  char hdr[64];
  snprintf(hdr, sizeof(hdr), "Sec-WebSocket-Protocol: %.*s\r\n", (int)proto.len, proto.buf);
  bconn *bc = cymg__bk_bconn_new(b, c);
  if (bc == NULL) {
    cymg_http_reply(c, 500, "Connection: close\r\n", "out of memory\n");
    return;
  }
  bc->ws = true;
  if (cymg_ws_upgrade(c, hm, asked ? hdr : NULL) < 0) {
    cymg__bk_conn_gone(bc);
    cymg__bk_bconn_free(bc);
    return;
  }
  cymg__ws *ws = cymg__ws_of(c);
  ws->inner = &cymg__bk_ws_inner;
  ws->inner_state = bc;
  if (cymg_ws_set_max_message(c, (uint64_t)b->o.max_packet + 5) < 0)
    CYMG__DEBUG("MQTT broker: max message not set");
  cymg_conn_set_handler(c, b->o.fn, b->o.fn_data);
}

/* ---- the sweep: keep-alive, session expiry, delayed wills ---- */

/* Expired retained messages (skipped on replay anyway) are removed once a
 * minute, so they do not hold memory or a place under max_retained. */
static void sweep_retained(cymg_mqtt_broker *b) {
  for (size_t i = 0; i < b->ret.cap; i++)
    for (rent **pp = &b->ret.tab[i]; *pp;) {
      rent *e = *pp;
      if (!cymg__bk_expired(b, e->m)) {
        pp = &e->next;
        continue;
      }
      cymg__bk_p_retain_del(b, bmsg_topic(e->m));
      *pp = e->next;
      bmsg_unref(e->m);
      free(e);
      b->ret.n--;
    }
  b->st.retained = b->ret.n;
}

static void sweep_fn(void *arg) {
  cymg_mqtt_broker *b = arg;
  uint64_t now = cymg__bk_now_ms(b);
  for (bconn *bc = b->conns, *n; bc; bc = n) {
    n = bc->next;
    if (bc->failed) continue;
    if (!bc->connected && now - bc->since > CONNECT_WAIT_MS) {
      cymg__bk_fail(bc, 0, "no CONNECT");
    } else if (bc->connected && bc->keepalive &&
               now - bc->last_rx > (uint64_t)bc->keepalive * 1500) {
      cymg__bk_fail(bc, CYMG_MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep-alive timeout");
    } else if (bc->c->send.len == 0 && bc->c->send.size > 2 * SEND_FIRST && !bc->c->pump) {
      /* an idle client keeps no send buffer (the core keeps the last one) */
      cymg__trim_note_free(b->mgr, bc->c->send.size);
      cymg__iobuf_free(&bc->c->send);
    }
  }
  for (size_t i = 0; i < b->scap; i++)
    for (bsess *s = b->stab[i], *n; s; s = n) {
      n = s->hnext;
      if (s->bc || s->offline_at == 0) continue;
      bool ends = s->expiry != NEVER && now - s->offline_at >= (uint64_t)s->expiry * 1000;
      if (s->will && (ends || now >= s->will_at)) {
        bmsg *w = s->will;
        s->will = NULL;
        cymg__bk_publish_will(b, w, NULL);
        bmsg_unref(w);
      }
      if (ends) cymg__bk_sess_free(b, s);
    }
  if (++b->sweeps % 60 == 0) sweep_retained(b);
  cymg__bk_store_sync(b); /* what was put outside a batch (publish from the process) */
}

/* ---- public API ---- */

int cymg_mqtt_broker_new(cymg_mgr *mgr, const cymg_mqtt_broker_opts *opts, cymg_mqtt_broker **out) {
  if (out == NULL || mgr == NULL) return CYMG_EINVAL;
  *out = NULL;
  if (opts && opts->has_max_qos && opts->max_qos > 2) return CYMG_EINVAL;
  cymg_mqtt_broker *b = calloc(1, sizeof(*b));
  if (b == NULL) return CYMG_ENOMEM;
  b->mgr = mgr;
  if (opts) b->o = *opts;
  if (!b->o.max_packet) b->o.max_packet = DEF_MAX_PACKET;
  if (b->o.max_packet > CYMG_MQTT_MAX_REMAINING + 5) b->o.max_packet = CYMG_MQTT_MAX_REMAINING + 5;
  if (!b->o.max_subs) b->o.max_subs = DEF_MAX_SUBS;
  if (!b->o.max_queued) b->o.max_queued = DEF_MAX_QUEUED;
  if (!b->o.max_queued_bytes) b->o.max_queued_bytes = DEF_MAX_QBYTES;
  if (!b->o.max_retained) b->o.max_retained = DEF_MAX_RETAINED;
  if (!b->o.receive_max) b->o.receive_max = DEF_RECEIVE_MAX;
  if (!b->o.topic_alias_max) b->o.topic_alias_max = DEF_ALIAS_MAX;
  if (!b->o.has_max_qos) b->o.max_qos = 2;
  if ((b->root = cymg__bk_tree_new()) == NULL) {
    free(b);
    return CYMG_ENOMEM;
  }
  int rc = b->o.persist_path ? cymg__bk_store_open(b, b->o.persist_path) : 0;
  if (rc >= 0) rc = cymg_timer_add(mgr, SWEEP_MS, CYMG_TIMER_REPEAT, sweep_fn, b, &b->sweep);
  if (rc < 0) {
    b->sweep = 0;
    cymg_mqtt_broker_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

int cymg_mqtt_broker_listen(cymg_mqtt_broker *b, const char *url, cymg_conn **out) {
  if (out) *out = NULL;
  if (b == NULL || url == NULL) return CYMG_EINVAL;
  cymg_url u;
  if (cymg_url_parse(cymg_str_c(url), &u) < 0) {
    cymg__mgr_errmsg(b->mgr, "MQTT broker: bad URL '%s'", url);
    return CYMG_EBADURL;
  }
  bool ws =
      cymg_str_case_eq(u.scheme, cymg_str_c("ws")) || cymg_str_case_eq(u.scheme, cymg_str_c("wss"));
  lstate *l = calloc(1, sizeof(*l));
  if (l == NULL) return CYMG_ENOMEM;
  l->kind = K_LSN;
  l->b = b;
  l->ws = ws;
  cymg_str path = cymg_url_uri(cymg_str_c(url));
  for (size_t i = 0; i < path.len; i++)
    if (path.buf[i] == '?' || path.buf[i] == '#') path.len = i;
  if (ws && path.len > 1 && (l->path = cymg__bk_dup_n(path.buf, path.len)) == NULL) {
    free(l);
    return CYMG_ENOMEM;
  }
  cymg_conn *c;
  int rc = ws ? cymg_ws_listen(b->mgr, url, ws_lsn_fn, l, &c)
              : cymg__listen_url(b->mgr, url, "mqtt", false, b->o.fn, b->o.fn_data, &c);
  if (rc < 0) {
    free(l->path);
    free(l);
    return rc;
  }
  l->c = c;
  if (!ws) cymg_conn_set_proto(c, &cymg__bk_proto, l);
  l->next = b->lsns;
  b->lsns = l;
  if (out) *out = c;
  return 0;
}

void cymg_mqtt_broker_free(cymg_mqtt_broker *b) {
  if (b == NULL) return;
  b->freeing = true;
  for (size_t i = 0; i < b->nhooks; i++) b->hooks[i].fn(b->hooks[i].arg);
  free(b->hooks);
  if (b->sweep && cymg_timer_active(b->mgr, b->sweep) && cymg_timer_cancel(b->mgr, b->sweep) < 0)
    CYMG__DEBUG("MQTT broker: sweep timer already gone");
  /* ws connections still in their HTTP phase point at a listener state */
  for (cymg_conn *c = cymg_mgr_first(b->mgr); c; c = cymg_conn_next(c)) {
    if (cymg_conn_handler(c) != ws_lsn_fn) continue;
    for (lstate *l = b->lsns; l; l = l->next)
      if (cymg_conn_userdata(c) == l) {
        cymg_conn_set_handler(c, b->o.fn, b->o.fn_data);
        cymg_close(c);
      }
  }
  for (lstate *l = b->lsns, *n; l; l = n) {
    n = l->next;
    if (l->c) {
      if (!l->ws) cymg_conn_set_proto(l->c, NULL, NULL);
      cymg_conn_set_handler(l->c, b->o.fn, b->o.fn_data); /* l is freed below */
      cymg_close(l->c);
    }
    free(l->path);
    free(l);
  }
  /* connections are freed by the loop later: detached, they do nothing */
  for (bconn *bc = b->conns, *n; bc; bc = n) {
    n = bc->next;
    bc->b = NULL;
    bc->s = NULL;
    bc->next = bc->prev = NULL;
    cymg_close(bc->c);
  }
  cymg__bk_store_close(b); /* sessions stay in the file */
  for (size_t i = 0; i < b->scap; i++)
    for (bsess *s = b->stab[i], *n; s; s = n) {
      n = s->hnext;
      cymg__bk_sess_free(b, s);
    }
  free(b->stab);
  cymg__bk_tree_free(b->root);
  cymg__bk_ret_free(&b->ret);
  for (size_t i = 0; i < b->nw; i++) free(b->w[i]);
  free(b->w);
  for (qent *e = b->qfree, *n; e; e = n) {
    n = e->next;
    free(e);
  }
  free(b->d);
  free(b);
}

int cymg_mqtt_broker_publish(cymg_mqtt_broker *b, cymg_str topic, cymg_str data, int qos,
                             bool retain, const cymg_mqtt_prop *props, size_t num_props,
                             const void *origin) {
  if (b == NULL || qos < 0 || qos > 2 || !cymg_mqtt_topic_valid(topic)) return CYMG_EINVAL;
  if (num_props && props == NULL) return CYMG_EINVAL;
  for (size_t i = 0; i < num_props; i++) {
    uint8_t id = props[i].id;
    if (id != 0x01 && id != 0x02 && id != 0x03 && id != 0x08 && id != 0x09 && id != 0x26)
      return CYMG_EINVAL;
  }
  uint8_t small[512], *pb = small;
  int n = num_props ? cymg_mqtt_props_encode(props, num_props, NULL, 0) : 0;
  if (n < 0) return n;
  if ((size_t)n > sizeof(small) && (pb = malloc((size_t)n)) == NULL) return CYMG_ENOMEM;
  if (n > 0 && (n = cymg_mqtt_props_encode(props, num_props, pb, (size_t)n)) < 0) {
    if (pb != small) free(pb);
    return n;
  }
  if (qos > b->o.max_qos) qos = b->o.max_qos;
  bmsg *m = cymg__bk_msg_new(b, topic, data, cymg_str_n(pb, (size_t)n), qos, retain, origin);
  if (pb != small) free(pb);
  if (m == NULL) return CYMG_ENOMEM;
  b->st.msgs_in++;
  cymg__bk_route(b, m, NULL, NULL);
  bmsg_unref(m);
  return 0;
}

int cymg_mqtt_broker_watch(cymg_mqtt_broker *b, cymg_str filter, cymg_mqtt_watch_fn fn, void *data,
                           uint64_t *id) {
  if (b == NULL || fn == NULL || !cymg_mqtt_filter_valid(filter)) return CYMG_EINVAL;
  if (b->nw == b->wcap) {
    size_t cap = b->wcap ? b->wcap * 2 : 4;
    watcher **a = realloc(b->w, cap * sizeof(*a));
    if (a == NULL) return CYMG_ENOMEM;
    b->w = a;
    b->wcap = cap;
  }
  watcher *w = calloc(1, sizeof(*w) + filter.len + 1);
  if (w == NULL) return CYMG_ENOMEM;
  w->id = ++b->next_wid;
  w->fn = fn;
  w->data = data;
  w->flen = (uint16_t)filter.len;
  memcpy(w->filter, filter.buf, filter.len);
  b->w[b->nw++] = w;
  if (id) *id = w->id;
  return 0;
}

int cymg_mqtt_broker_unwatch(cymg_mqtt_broker *b, uint64_t id) {
  if (b == NULL) return CYMG_EINVAL;
  for (size_t i = 0; i < b->nw; i++)
    if (b->w[i]->id == id && !b->w[i]->dead) {
      if (b->wdepth) {
        b->w[i]->dead = true; /* removed once the walk is over */
      } else {
        free(b->w[i]);
        memmove(b->w + i, b->w + i + 1, (b->nw - i - 1) * sizeof(*b->w));
        b->nw--;
      }
      return 0;
    }
  return CYMG_ENOTFOUND;
}

void cymg_mqtt_broker_get_stats(const cymg_mqtt_broker *b, cymg_mqtt_broker_stats *st) {
  if (st == NULL) return;
  memset(st, 0, sizeof(*st));
  if (b) *st = b->st;
}

int cymg__mqtt_broker_on_free(cymg_mqtt_broker *b, void (*fn)(void *arg), void *arg) {
  free_hook *h = realloc(b->hooks, (b->nhooks + 1) * sizeof(*h));
  if (h == NULL) return CYMG_ENOMEM;
  b->hooks = h;
  b->hooks[b->nhooks].fn = fn;
  b->hooks[b->nhooks++].arg = arg;
  return 0;
}

void cymg__mqtt_broker_off_free(cymg_mqtt_broker *b, void (*fn)(void *arg), void *arg) {
  if (b == NULL || b->freeing) return;
  for (size_t i = 0; i < b->nhooks; i++)
    if (b->hooks[i].fn == fn && b->hooks[i].arg == arg) {
      b->hooks[i] = b->hooks[--b->nhooks];
      return;
    }
}

cymg_mgr *cymg__mqtt_broker_mgr(const cymg_mqtt_broker *b) {
  return b->mgr;
}
