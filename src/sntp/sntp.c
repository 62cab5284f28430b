/* The SNTP client on a UDP connection: requests, the reply checks, the timeout. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cymg/rand.h"
#include "cymg/sntp.h"
#include "internal.h"

typedef struct {
  cymg_mgr *mgr;
  cymg_conn *c;
  uint64_t origin;    /* transmit timestamp of the request awaiting a reply; 0: none */
  int64_t t1_ns;      /* wall clock when it was sent */
  int64_t t1_mono_ns; /* monotonic clock when it was sent */
  uint32_t timeout_ms;
  cymg_timer_id timer; /* the reply timeout; 0 when not armed */
  bool ready;          /* CONNECT seen: requests go out at once */
  int64_t offset_ms, delay_ms;
} sntp_state;

static const cymg_proto sntp_proto;

static sntp_state *sntp_of(const cymg_conn *c) {
  return (c && c->proto == &sntp_proto) ? c->proto_state : NULL;
}

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Floor division, so times before a millisecond boundary round down. */
static int64_t ns_to_ms(int64_t ns) {
  int64_t q = ns / 1000000, r = ns % 1000000;
  return (r < 0) ? q - 1 : q;
}

static void timeout_fn(void *arg) {
  sntp_state *s = arg;
  s->timer = 0;
  cymg_error(s->c, "SNTP timeout");
}

static void disarm(sntp_state *s) {
  if (s->timer) (void)cymg_timer_cancel(s->mgr, s->timer);
  s->timer = 0;
}

static int send_request(sntp_state *s) {
  uint32_t rnd = 0;
  int rc = cymg_random_bytes(&rnd, sizeof(rnd));
  if (rc < 0) return rc;
  uint8_t pkt[CYMG_SNTP_PACKET_LEN];
  s->t1_mono_ns = clock_ns(CLOCK_MONOTONIC);
  s->t1_ns = clock_ns(CLOCK_REALTIME);
  uint64_t origin = cymg_sntp_build_request(pkt, s->t1_ns, rnd);
  rc = cymg_send(s->c, pkt, sizeof(pkt));
  if (rc < 0) return rc;
  s->origin = origin;
  disarm(s);
  rc = cymg_timer_add(s->mgr, s->timeout_ms, CYMG_TIMER_ONCE, timeout_fn, s, &s->timer);
  if (rc < 0) {
    s->timer = 0;
    return rc;
  }
  return 0;
}

static void on_reply(cymg_conn *c, sntp_state *s, const void *buf, size_t len) {
  /* t4 is t1 plus the monotonic time elapsed, so a wall clock step while the
   * request was out cannot distort the delay. */
  int64_t t4 = s->t1_ns + (clock_ns(CLOCK_MONOTONIC) - s->t1_mono_ns);
  cymg_sntp_reply r;
  const char *why;
  int rc = s->origin ? cymg_sntp_parse_reply(buf, len, s->origin, &r, &why) : CYMG_EPARSE;
  if (s->origin == 0) why = "no request outstanding";
  if (rc == CYMG_EPROTO) {
    cymg_error(c, "SNTP kiss-of-death: %s", r.kiss);
    return;
  }
  if (rc < 0) {
    CYMG__DEBUG("conn %llu: SNTP reply ignored: %s", (unsigned long long)c->id, why);
    return;
  }
  s->origin = 0;
  disarm(s);
  int64_t t2 = cymg_sntp_ts_to_unix_ns(r.receive), t3 = cymg_sntp_ts_to_unix_ns(r.transmit);
  int64_t offset, delay;
  cymg_sntp_compute(s->t1_ns, t2, t3, t4, &offset, &delay);
  if (delay < 0) delay = 0; /* clock granularity at either end; never add negative time */
  s->offset_ms = offset / 1000000;
  s->delay_ms = delay / 1000000;
  int64_t ms = ns_to_ms(t3 + delay / 2);
  cymg_call(c, CYMG_EV_SNTP_TIME, &ms);
}

static bool sntp_event(cymg_conn *c, int ev, void *ev_data) {
  sntp_state *s = sntp_of(c);
  (void)ev_data;
  if (s == NULL) return false;
  if (ev == CYMG_EV_CONNECT) {
    s->ready = true; /* also answers any cymg_sntp_request() made before */
    int rc = send_request(s);
    if (rc < 0) cymg_error(c, "SNTP request: %s", cymg_strerror(rc));
  } else if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c); /* one datagram per READ */
    on_reply(c, s, d.buf, d.len);
    cymg_conn_consume(c, d.len);
    return true;
  } else if (ev == CYMG_EV_CLOSE) {
    disarm(s);
  }
  return false;
}

static void sntp_free(void *state) {
  sntp_state *s = state;
  disarm(s);
  free(s);
}

static const cymg_proto sntp_proto = {"sntp", sntp_event, sntp_free, NULL};

int cymg_sntp_connect(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                      cymg_conn **out) {
  if (out) *out = NULL;
  if (mgr == NULL || url == NULL) return CYMG_EINVAL;
  cymg_url u;
  if (cymg_url_parse(cymg_str_c(url), &u) < 0) {
    cymg__mgr_errmsg(mgr, "'%s': malformed URL", url);
    return CYMG_EBADURL;
  }
  if (!cymg_str_case_eq(u.scheme, cymg_str_c("sntp")) &&
      !cymg_str_case_eq(u.scheme, cymg_str_c("udp"))) {
    cymg__mgr_errmsg(mgr, "'%s': SNTP needs an sntp:// or udp:// URL", url);
    return CYMG_ESCHEME;
  }
  sntp_state *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    cymg__mgr_errmsg(mgr, "connect '%s': out of memory", url);
    return CYMG_ENOMEM;
  }
  cymg_conn *c;
  int rc = cymg__connect_url(mgr, url, NULL, fn, fn_data, &c);
  if (rc < 0) {
    free(s);
    return rc;
  }
  s->mgr = mgr;
  s->c = c;
  s->timeout_ms = CYMG_SNTP_TIMEOUT_MS;
  cymg_conn_set_proto(c, &sntp_proto, s);
  if (out) *out = c;
  return 0;
}

int cymg_sntp_request(cymg_conn *c) {
  sntp_state *s = sntp_of(c);
  if (s == NULL) return CYMG_ESTATE;
  if (c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) return CYMG_ECLOSED;
  if (!s->ready) return 0; /* the request sent at CONNECT answers it */
  return send_request(s);
}

int cymg_sntp_set_timeout(cymg_conn *c, uint32_t ms) {
  sntp_state *s = sntp_of(c);
  if (s == NULL) return CYMG_ESTATE;
  if (ms == 0) return CYMG_EINVAL;
  s->timeout_ms = ms;
  return 0;
}

int64_t cymg_sntp_offset_ms(const cymg_conn *c) {
  const sntp_state *s = sntp_of(c);
  return s ? s->offset_ms : 0;
}

int64_t cymg_sntp_delay_ms(const cymg_conn *c) {
  const sntp_state *s = sntp_of(c);
  return s ? s->delay_ms : 0;
}
