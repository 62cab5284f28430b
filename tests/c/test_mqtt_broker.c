/* The broker (cymg_mqtt_broker_*) against our MQTT client and the real
 * mosquitto_pub / mosquitto_sub, 3.1.1 and 5.0, over mqtt://, mqtts:// and
 * ws://; bad input from raw sockets leaving other clients untouched.
 * CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include "cymg/mqtt_broker.h"
#include "mqtt_test.h"

typedef struct {
  cymg_mgr *mgr;
  cymg_mqtt_broker *b;
  cymg_conn *lsn;
  uint16_t port;
} bk;

static void bk_start(bk *k, const cymg_mqtt_broker_opts *o) {
  k->mgr = new_mgr();
  assert_int_equal(cymg_mqtt_broker_new(k->mgr, o, &k->b), 0);
  assert_int_equal(cymg_mqtt_broker_listen(k->b, "mqtt://127.0.0.1:0", &k->lsn), 0);
  k->port = cymg_conn_local(k->lsn)->port;
}

static void bk_stop(bk *k) {
  cymg_mqtt_broker_free(k->b);
  close_all_and_free(k->mgr);
}

static cymg_conn *cl(bk *k, rec *r, int version, const char *id) {
  cymg_mqtt_opts o = {.version = (uint8_t)version, .client_id = cymg_str_c(id ? id : "")};
  memset(r, 0, sizeof(*r));
  cymg_conn *c = client(k->mgr, "mqtt", k->port, &o, r);
  wait_open(k->mgr, r);
  return c;
}

/* Subscribes and waits for the SUBACK. */
static void sub_wait(bk *k, cymg_conn *c, rec *r, const char *filter, int opts) {
  int before = r->cmds[CYMG_MQTT_CMD_SUBACK];
  sub(c, filter, opts);
  POLL_UNTIL(k->mgr, r->cmds[CYMG_MQTT_CMD_SUBACK] == before + 1);
}

static size_t stat_clients(const bk *k) {
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k->b, &st);
  return st.clients;
}

static size_t stat_queued(const bk *k) {
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k->b, &st);
  return st.queued;
}

static size_t stat_subs(const bk *k) {
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k->b, &st);
  return st.subscriptions;
}

static void count_fn(void *data, const cymg_mqtt_msg *m, const void *origin) {
  (void)m;
  (void)origin;
  (*(int *)data)++;
}

static void routing_with(int version) {
  bk k;
  bk_start(&k, NULL);
  rec a, bsub, dsub;
  cymg_conn *pa = cl(&k, &a, version, "pub");
  cymg_conn *sb = cl(&k, &bsub, version, "subwild");
  cymg_conn *sd = cl(&k, &dsub, version, "subdollar");
  sub_wait(&k, sb, &bsub, "a/+/c", 1);
  sub_wait(&k, sb, &bsub, "x/#", 0);
  sub_wait(&k, sb, &bsub, "#", 0); /* overlapping: one copy per message */
  sub_wait(&k, sd, &dsub, "$SYS/#", 0);
  assert_int_equal(pub(pa, "a/b/c", "one", 1, false) > 0, true);
  assert_int_equal(pub(pa, "x", "two", 0, false), 0);
  assert_int_equal(pub(pa, "$SYS/t", "three", 0, false), 0);
  assert_int_equal(pub(pa, "zz", "four", 0, false), 0);
  POLL_UNTIL(k.mgr, bsub.msgs == 3 && dsub.msgs == 1);
  assert_string_equal(bsub.topic[0], "a/b/c");
  assert_string_equal(bsub.data[0], "one");
  assert_int_equal(bsub.qos[0], 1);
  assert_string_equal(bsub.topic[1], "x");
  assert_string_equal(bsub.topic[2], "zz"); /* "$SYS/t" not matched by "#" */
  assert_string_equal(dsub.topic[0], "$SYS/t");
  /* QoS 2 published, subscription granted 1: downgraded */
  assert_true(pub(pa, "a/q/c", "five", 2, false) > 0);
  POLL_UNTIL(k.mgr, bsub.msgs == 4);
  assert_int_equal(bsub.qos[3], 1);
  POLL_UNTIL(k.mgr, cymg_mqtt_inflight(pa) == 0);
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k.b, &st);
  assert_int_equal(st.clients, 3);
  assert_int_equal(st.subscriptions, 4);
  assert_int_equal(a.errors + bsub.errors + dsub.errors, 0);
  (void)sd;
  bk_stop(&k);
}

static void test_routing_311(void **state) {
  (void)state;
  routing_with(CYMG_MQTT_V311);
}
static void test_routing_v5(void **state) {
  (void)state;
  routing_with(CYMG_MQTT_V5);
}

static void test_retained(void **state) {
  (void)state;
  bk k;
  bk_start(&k, NULL);
  rec a, s1, s2;
  cymg_conn *pa = cl(&k, &a, 4, "p");
  assert_true(pub(pa, "r/1", "kept", 1, true) > 0);
  assert_true(pub(pa, "r/2", "gone", 1, true) > 0);
  POLL_UNTIL(k.mgr, cymg_mqtt_inflight(pa) == 0);
  assert_true(pub(pa, "r/2", "", 1, true) > 0); /* clears */
  POLL_UNTIL(k.mgr, cymg_mqtt_inflight(pa) == 0);
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k.b, &st);
  assert_int_equal(st.retained, 1);
  cymg_conn *c1 = cl(&k, &s1, 4, "s1");
  sub_wait(&k, c1, &s1, "r/#", 1);
  POLL_UNTIL(k.mgr, s1.msgs == 1);
  assert_string_equal(s1.topic[0], "r/1");
  assert_string_equal(s1.data[0], "kept");
  assert_true(s1.retain[0]);
  /* a live message to an existing subscriber has retain off (3.1.1) */
  assert_true(pub(pa, "r/1", "new", 0, true) >= 0);
  POLL_UNTIL(k.mgr, s1.msgs == 2);
  assert_false(s1.retain[1]);
  /* v5 retain handling 2: nothing on subscribe; retain-as-published keeps it */
  cymg_conn *c2 = cl(&k, &s2, 5, "s2");
  sub_wait(&k, c2, &s2, "r/#", 1 | 0x20 | 0x08);
  assert_true(pub(pa, "r/3", "live", 0, true) >= 0);
  POLL_UNTIL(k.mgr, s2.msgs == 1);
  assert_string_equal(s2.topic[0], "r/3");
  assert_true(s2.retain[0]);
  bk_stop(&k);
}

static void test_mosquitto_clients(void **state) {
  (void)state;
  bk k;
  bk_start(&k, NULL);
  char port[16];
  snprintf(port, sizeof(port), "%u", k.port);
  for (int v = 0; v < 2; v++) {
    char *ver = v ? "mqttv5" : "mqttv311";
    char *sargv[] = {"mosquitto_sub",
                     "-h",
                     "127.0.0.1",
                     "-p",
                     port,
                     "-V",
                     ver,
                     "-t",
                     "m/+",
                     "-q",
                     "2",
                     "-C",
                     "2",
                     "-v",
                     "-i",
                     "msub",
                     NULL};
    child sc;
    child_start(&sc, "/usr/bin/mosquitto_sub", sargv);
    POLL_UNTIL(k.mgr, stat_subs(&k) == 1);
    char *pargv[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", ver,    "-t",
                     "m/x",           "-m", "hello",     "-q", "2",  "-i", "mpub", NULL};
    child pc;
    child_start(&pc, "/usr/bin/mosquitto_pub", pargv);
    assert_int_equal(child_end(k.mgr, &pc, false), 0);
    assert_int_equal(cymg_mqtt_broker_publish(k.b, cymg_str_c("m/y"), cymg_str_c("inside"), 1,
                                              false, NULL, 0, NULL),
                     0);
    assert_true(child_wait_for(k.mgr, &sc, "m/x hello"));
    assert_true(child_wait_for(k.mgr, &sc, "m/y inside"));
    assert_int_equal(child_end(k.mgr, &sc, false), 0);
    /* retained from mosquitto_pub -r, replayed to a later mosquitto_sub */
    char *rargv[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", ver, "-t",
                     "keep/me",       "-m", "stays",     "-q", "1",  "-r", NULL};
    child rc;
    child_start(&rc, "/usr/bin/mosquitto_pub", rargv);
    assert_int_equal(child_end(k.mgr, &rc, false), 0);
    char *gargv[] = {"mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", ver, "-t",
                     "keep/#",        "-C", "1",         "-v", NULL};
    child gc;
    child_start(&gc, "/usr/bin/mosquitto_sub", gargv);
    assert_true(child_wait_for(k.mgr, &gc, "keep/me stays"));
    assert_int_equal(child_end(k.mgr, &gc, false), 0);
  }
  bk_stop(&k);
}

/* ---- a raw MQTT peer (packets encoded with the codec) ---- */

typedef struct {
  int fd;
  uint8_t buf[1 << 16];
  size_t len, pos;
  int version;
  bool closed;
} rawc;

static void raw_open(bk *k, rawc *r, int version) {
  memset(r, 0, sizeof(*r));
  r->fd = raw_connect(k->port);
  r->version = version;
}

static void raw_pkt(bk *k, rawc *r, const cymg_mqtt_msg *m) {
  uint8_t out[4096];
  int n = cymg_mqtt_encode(m, r->version, out, sizeof(out));
  assert_true(n > 0 && (size_t)n <= sizeof(out));
  raw_send(k->mgr, r->fd, out, (size_t)n);
}

static void raw_conn(bk *k, rawc *r, const char *id, bool clean, uint16_t ka) {
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_CONNECT;
  m.connect.client_id = cymg_str_c(id);
  m.connect.clean = clean;
  m.connect.keepalive = ka;
  raw_pkt(k, r, &m);
}

/* The next packet from the broker; false once it closed the connection. */
static bool raw_next(bk *k, rawc *r, cymg_mqtt_msg *m) {
  uint64_t start = cymg_mgr_now(k->mgr);
  for (;;) {
    if (r->pos < r->len) {
      int n = cymg_mqtt_parse(r->buf + r->pos, r->len - r->pos, r->version, 0, m, NULL);
      assert_true(n > 0 || n == CYMG_EAGAIN);
      if (n > 0) {
        r->pos += (size_t)n;
        return true;
      }
    }
    if (r->closed) return false;
    cymg_mgr_poll(k->mgr, 2);
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, MSG_DONTWAIT);
    if (n > 0) r->len += (size_t)n;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) r->closed = true;
    if (cymg_mgr_now(k->mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("raw peer: nothing came");
  }
}

/* Waits for a packet of type cmd (skipping others); fails when closed. */
static void raw_expect(bk *k, rawc *r, int cmd, cymg_mqtt_msg *m) {
  while (raw_next(k, r, m))
    if (m->cmd == cmd) return;
  fail_msg("closed before %s", cymg_mqtt_cmd_name(cmd));
}

/* Reads until the broker closes; returns the last DISCONNECT reason seen
 * (-1: none). */
static int raw_until_closed(bk *k, rawc *r) {
  cymg_mqtt_msg m;
  int reason = -1;
  while (raw_next(k, r, &m))
    if (m.cmd == CYMG_MQTT_CMD_DISCONNECT) reason = m.ack;
  close(r->fd);
  return reason;
}

static void raw_pub(bk *k, rawc *r, const char *topic, const char *data, int qos, uint16_t id,
                    bool dup) {
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_PUBLISH;
  m.topic = cymg_str_c(topic);
  m.data = cymg_str_c(data);
  m.qos = (uint8_t)qos;
  m.id = id;
  m.dup = dup;
  raw_pkt(k, r, &m);
}

static void raw_simple(bk *k, rawc *r, int cmd, uint16_t id) {
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = (uint8_t)cmd;
  m.id = id;
  raw_pkt(k, r, &m);
}

/* ---- what the client connections of these tests record besides rec ---- */

typedef struct {
  rec r; /* first: rec_fn sees a rec */
  uint32_t subid[MAXMSG], expiry[MAXMSG];
  int disc, puback, suback;
} xrec;

static void xfn(cymg_conn *c, int ev, void *ev_data) {
  xrec *x = cymg_conn_userdata(c);
  int i = x->r.msgs;
  rec_fn(c, ev, ev_data);
  if (ev == CYMG_EV_MQTT_MSG && i < MAXMSG) {
    const cymg_mqtt_msg *m = ev_data;
    size_t ofs = 0;
    cymg_mqtt_prop p;
    while (cymg_mqtt_next_prop(m->props, &ofs, &p) == 1) {
      if (p.id == CYMG_MQTT_PROP_SUBSCRIPTION_IDENTIFIER) x->subid[i] = p.iv;
      if (p.id == CYMG_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL) x->expiry[i] = p.iv;
    }
  } else if (ev == CYMG_EV_MQTT_CMD) {
    const cymg_mqtt_msg *m = ev_data;
    if (m->cmd == CYMG_MQTT_CMD_DISCONNECT) x->disc = m->ack;
    if (m->cmd == CYMG_MQTT_CMD_PUBACK || m->cmd == CYMG_MQTT_CMD_PUBREC) x->puback = m->ack;
    if (m->cmd == CYMG_MQTT_CMD_SUBACK && m->data.len) x->suback = (uint8_t)m->data.buf[0];
  }
}

static cymg_conn *xcl(bk *k, xrec *x, const cymg_mqtt_opts *o) {
  memset(x, 0, sizeof(*x));
  x->disc = -1;
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", k->port);
  cymg_conn *c = NULL;
  assert_int_equal(cymg_mqtt_connect(k->mgr, url, o, xfn, x, &c), 0);
  POLL_UNTIL(k->mgr, x->r.opened || x->r.closed);
  return c;
}

static void sub_props(bk *k, cymg_conn *c, rec *r, const char *filter, int opts, uint32_t subid) {
  cymg_mqtt_prop p = {.id = CYMG_MQTT_PROP_SUBSCRIPTION_IDENTIFIER, .iv = subid};
  int before = r->cmds[CYMG_MQTT_CMD_SUBACK];
  assert_true(cymg_mqtt_sub(c, cymg_str_c(filter), opts, subid ? &p : NULL, subid ? 1 : 0) > 0);
  POLL_UNTIL(k->mgr, r->cmds[CYMG_MQTT_CMD_SUBACK] == before + 1);
}

/* ---- QoS 2 exactly once, publisher gone mid-flow ---- */

static void test_qos2_exactly_once(void **state) {
  (void)state;
  bk k;
  bk_start(&k, NULL);
  rec s;
  cymg_conn *sc = cl(&k, &s, 4, "q2sub");
  sub_wait(&k, sc, &s, "q2/#", 2);
  rawc p;
  cymg_mqtt_msg m;
  raw_open(&k, &p, 4);
  raw_conn(&k, &p, "q2pub", false, 0);
  raw_expect(&k, &p, CYMG_MQTT_CMD_CONNACK, &m);
  raw_pub(&k, &p, "q2/a", "once", 2, 7, false);
  raw_expect(&k, &p, CYMG_MQTT_CMD_PUBREC, &m);
  assert_int_equal(m.id, 7);
  close(p.fd); /* killed before PUBREL */
  POLL_UNTIL(k.mgr, s.msgs == 1);
  /* it comes back and resends the PUBLISH with DUP, then releases it */
  raw_open(&k, &p, 4);
  raw_conn(&k, &p, "q2pub", false, 0);
  raw_expect(&k, &p, CYMG_MQTT_CMD_CONNACK, &m);
  assert_true(m.session_present);
  raw_pub(&k, &p, "q2/a", "once", 2, 7, true);
  raw_expect(&k, &p, CYMG_MQTT_CMD_PUBREC, &m);
  raw_simple(&k, &p, CYMG_MQTT_CMD_PUBREL, 7);
  raw_expect(&k, &p, CYMG_MQTT_CMD_PUBCOMP, &m);
  assert_int_equal(m.id, 7);
  /* a marker behind it: everything before it has been routed */
  raw_pub(&k, &p, "q2/end", "end", 0, 0, false);
  POLL_UNTIL(k.mgr, s.msgs == 2);
  assert_string_equal(s.topic[0], "q2/a");
  assert_int_equal(s.qos[0], 2);
  assert_string_equal(s.topic[1], "q2/end");
  close(p.fd);
  bk_stop(&k);
}

/* ---- persistent sessions ---- */

static void resume_with(int version, const char *persist) {
  cymg_mqtt_broker_opts o = {.persist_path = persist};
  bk k;
  bk_start(&k, &o);
  rec s, p;
  cymg_mqtt_opts so = {.version = (uint8_t)version,
                       .client_id = cymg_str_c("keeper"),
                       .persistent = true,
                       .session_expiry = version == 5 ? 600 : 0};
  memset(&s, 0, sizeof(s));
  cymg_conn *sc = client(k.mgr, "mqtt", k.port, &so, &s);
  wait_open(k.mgr, &s);
  sub_wait(&k, sc, &s, "ps/#", 1);
  cymg_close(sc);
  POLL_UNTIL(k.mgr, s.closed);
  cymg_conn *pc = cl(&k, &p, version, "feeder");
  for (int i = 0; i < 3; i++) {
    char d[8];
    snprintf(d, sizeof(d), "m%d", i);
    assert_true(pub(pc, "ps/x", d, 1, false) > 0);
  }
  assert_true(pub(pc, "ps/zero", "q0", 0, false) == 0); /* not kept for offline sessions */
  assert_true(pub(pc, "ps/ret", "kept", 1, true) > 0);
  POLL_UNTIL(k.mgr, cymg_mqtt_inflight(pc) == 0);
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k.b, &st);
  assert_int_equal(st.queued, 4);
  assert_int_equal(st.sessions, 2);
  if (persist) { /* a restart in between: all of it from the file */
    cymg_mqtt_broker_free(k.b);
    POLL_UNTIL(k.mgr, cymg_mgr_count(k.mgr) == 0);
    assert_int_equal(cymg_mqtt_broker_new(k.mgr, &o, &k.b), 0);
    cymg_mqtt_broker_get_stats(k.b, &st);
    assert_int_equal(st.queued, 4);
    assert_int_equal(st.retained, 1);
    assert_int_equal(st.subscriptions, 1);
    assert_int_equal(cymg_mqtt_broker_listen(k.b, "mqtt://127.0.0.1:0", &k.lsn), 0);
    k.port = cymg_conn_local(k.lsn)->port;
  }
  rec s2;
  memset(&s2, 0, sizeof(s2));
  sc = client(k.mgr, "mqtt", k.port, &so, &s2);
  POLL_UNTIL(k.mgr, s2.msgs == 4);
  assert_string_equal(s2.data[0], "m0");
  assert_string_equal(s2.data[1], "m1");
  assert_string_equal(s2.data[2], "m2");
  assert_string_equal(s2.data[3], "kept");
  assert_int_equal(s2.errors, 0);
  POLL_UNTIL(k.mgr, stat_queued(&k) == 0);
  bk_stop(&k);
}

static void test_session_resume(void **state) {
  (void)state;
  resume_with(4, NULL);
  resume_with(5, NULL);
}

/* QoS 2 ids received survive a restart: the resent PUBLISH is not routed again. */
static void qos2_across_restart(const char *path) {
  cymg_mqtt_broker_opts o = {.persist_path = path};
  bk k;
  bk_start(&k, &o);
  uint64_t wid;
  int seen = 0;
  assert_int_equal(cymg_mqtt_broker_watch(k.b, cymg_str_c("r2/#"), count_fn, &seen, &wid), 0);
  rawc p;
  cymg_mqtt_msg m;
  raw_open(&k, &p, 4);
  raw_conn(&k, &p, "r2pub", false, 0);
  raw_expect(&k, &p, CYMG_MQTT_CMD_CONNACK, &m);
  raw_pub(&k, &p, "r2/a", "once", 2, 9, false);
  raw_expect(&k, &p, CYMG_MQTT_CMD_PUBREC, &m);
  close(p.fd);
  assert_int_equal(seen, 1);
  cymg_mqtt_broker_free(k.b);
  POLL_UNTIL(k.mgr, cymg_mgr_count(k.mgr) == 0);
  assert_int_equal(cymg_mqtt_broker_new(k.mgr, &o, &k.b), 0);
  assert_int_equal(cymg_mqtt_broker_watch(k.b, cymg_str_c("r2/#"), count_fn, &seen, &wid), 0);
  assert_int_equal(cymg_mqtt_broker_listen(k.b, "mqtt://127.0.0.1:0", &k.lsn), 0);
  k.port = cymg_conn_local(k.lsn)->port;
  raw_open(&k, &p, 4);
  raw_conn(&k, &p, "r2pub", false, 0);
  raw_expect(&k, &p, CYMG_MQTT_CMD_CONNACK, &m);
  assert_true(m.session_present);
  raw_pub(&k, &p, "r2/a", "once", 2, 9, true);
  raw_expect(&k, &p, CYMG_MQTT_CMD_PUBREC, &m);
  raw_simple(&k, &p, CYMG_MQTT_CMD_PUBREL, 9);
  raw_expect(&k, &p, CYMG_MQTT_CMD_PUBCOMP, &m);
  raw_pub(&k, &p, "r2/b", "after", 1, 10, false);
  raw_expect(&k, &p, CYMG_MQTT_CMD_PUBACK, &m);
  assert_int_equal(seen, 2); /* "r2/b" only */
  close(p.fd);
  bk_stop(&k);
}

static void test_persistence_restart(void **state) {
  (void)state;
  char path[1200];
  snprintf(path, sizeof(path), "%s/broker-%d.db", tls_dir, (int)getpid());
  unlink(path);
  resume_with(4, path);
  unlink(path);
  resume_with(5, path);
  unlink(path);
  qos2_across_restart(path);
  unlink(path);
  /* not a store: refused with a message; the same file twice: refused too */
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("this is not a broker's log, but something else entirely\n", f);
  fclose(f);
  cymg_mgr *mgr = new_mgr();
  cymg_mqtt_broker_opts o = {.persist_path = path};
  cymg_mqtt_broker *b = NULL;
  assert_true(cymg_mqtt_broker_new(mgr, &o, &b) < 0);
  assert_null(b);
  assert_true(strlen(cymg_mgr_errmsg(mgr)) > 0);
  unlink(path);
  assert_int_equal(cymg_mqtt_broker_new(mgr, &o, &b), 0);
  cymg_mqtt_broker *b2 = NULL;
  assert_true(cymg_mqtt_broker_new(mgr, &o, &b2) < 0);
  cymg_mqtt_broker_free(b);
  close_all_and_free(mgr);
  unlink(path);
}

/* ---- wills ---- */

static void test_wills(void **state) {
  (void)state;
  bk k;
  bk_start(&k, NULL);
  rec w;
  cymg_conn *wc = cl(&k, &w, 5, "watcher");
  sub_wait(&k, wc, &w, "will/#", 1);
  /* abrupt close: published */
  rec a;
  cymg_mqtt_opts ao = {.client_id = cymg_str_c("dies"),
                       .will_topic = cymg_str_c("will/dies"),
                       .will_payload = cymg_str_c("gone"),
                       .will_qos = 1};
  memset(&a, 0, sizeof(a));
  cymg_conn *ac = client(k.mgr, "mqtt", k.port, &ao, &a);
  wait_open(k.mgr, &a);
  cymg_close(ac);
  POLL_UNTIL(k.mgr, w.msgs == 1);
  assert_string_equal(w.topic[0], "will/dies");
  assert_string_equal(w.data[0], "gone");
  /* a normal DISCONNECT: not published (marker published after it) */
  rec b;
  ao.client_id = cymg_str_c("polite");
  ao.will_topic = cymg_str_c("will/polite");
  memset(&b, 0, sizeof(b));
  cymg_conn *bc = client(k.mgr, "mqtt", k.port, &ao, &b);
  wait_open(k.mgr, &b);
  assert_int_equal(cymg_mqtt_disconnect(bc, 0, NULL, 0), 0);
  POLL_UNTIL(k.mgr, b.closed);
  /* v5 DISCONNECT 0x04: published */
  rec c;
  ao.version = 5;
  ao.client_id = cymg_str_c("withwill");
  ao.will_topic = cymg_str_c("will/0x04");
  memset(&c, 0, sizeof(c));
  cymg_conn *cc = client(k.mgr, "mqtt", k.port, &ao, &c);
  wait_open(k.mgr, &c);
  assert_int_equal(cymg_mqtt_disconnect(cc, 0x04, NULL, 0), 0);
  POLL_UNTIL(k.mgr, w.msgs == 2);
  assert_string_equal(w.topic[1], "will/0x04");
  /* a protocol error: published (raw peer sends CONNECT twice) */
  rawc r;
  raw_open(&k, &r, 4);
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_CONNECT;
  m.connect.client_id = cymg_str_c("bad");
  m.connect.clean = true;
  m.connect.has_will = true;
  m.connect.will_topic = cymg_str_c("will/bad");
  m.connect.will_payload = cymg_str_c("x");
  raw_pkt(&k, &r, &m);
  raw_pkt(&k, &r, &m);
  (void)raw_until_closed(&k, &r);
  POLL_UNTIL(k.mgr, w.msgs == 3);
  assert_string_equal(w.topic[2], "will/bad");
  /* will delay: cancelled when the session resumes in time */
  cymg_mqtt_prop delay = {.id = CYMG_MQTT_PROP_WILL_DELAY_INTERVAL, .iv = 30};
  cymg_mqtt_opts d = {.version = 5,
                      .client_id = cymg_str_c("delayed"),
                      .persistent = true,
                      .session_expiry = 60,
                      .will_topic = cymg_str_c("will/delayed"),
                      .will_payload = cymg_str_c("late"),
                      .will_props = &delay,
                      .num_will_props = 1};
  rec d1, d2;
  memset(&d1, 0, sizeof(d1));
  cymg_conn *dc = client(k.mgr, "mqtt", k.port, &d, &d1);
  wait_open(k.mgr, &d1);
  cymg_close(dc);
  POLL_UNTIL(k.mgr, d1.closed);
  d.will_topic = cymg_str_c("");
  memset(&d2, 0, sizeof(d2));
  dc = client(k.mgr, "mqtt", k.port, &d, &d2);
  wait_open(k.mgr, &d2);
  /* a delay of 1 s, not resumed: published by the sweep */
  delay.iv = 1;
  d.client_id = cymg_str_c("delayed2");
  d.will_topic = cymg_str_c("will/delayed2");
  rec d3;
  memset(&d3, 0, sizeof(d3));
  cymg_conn *ec = client(k.mgr, "mqtt", k.port, &d, &d3);
  wait_open(k.mgr, &d3);
  cymg_close(ec);
  POLL_UNTIL(k.mgr, w.msgs == 4);
  assert_string_equal(w.topic[3], "will/delayed2");
  assert_int_equal(w.msgs, 4); /* "will/polite" and "will/delayed" never came */
  bk_stop(&k);
}

/* ---- takeover ---- */

static void test_takeover(void **state) {
  (void)state;
  bk k;
  bk_start(&k, NULL);
  xrec a, b;
  cymg_mqtt_opts o = {
      .version = 5, .client_id = cymg_str_c("same"), .persistent = true, .session_expiry = 60};
  cymg_conn *ac = xcl(&k, &a, &o);
  sub_wait(&k, ac, &a.r, "to/#", 1);
  cymg_conn *bc = xcl(&k, &b, &o);
  assert_int_equal(b.r.open_code, 0);
  POLL_UNTIL(k.mgr, a.r.closed);
  assert_int_equal(a.disc, 0x8E);
  /* the session went on: its subscription serves the new connection */
  assert_int_equal(
      cymg_mqtt_broker_publish(k.b, cymg_str_c("to/x"), cymg_str_c("hi"), 1, false, NULL, 0, NULL),
      0);
  POLL_UNTIL(k.mgr, b.r.msgs == 1);
  assert_string_equal(b.r.topic[0], "to/x");
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k.b, &st);
  assert_int_equal(st.sessions, 1);
  assert_int_equal(st.clients, 1);
  (void)bc;
  bk_stop(&k);
}

/* ---- shared subscriptions ---- */

static void test_shared(void **state) {
  (void)state;
  bk k;
  bk_start(&k, NULL);
  rec m1, m2, all, p;
  cymg_conn *c1 = cl(&k, &m1, 5, "m1");
  cymg_conn *c2 = cl(&k, &m2, 4, "m2");
  cymg_conn *ca = cl(&k, &all, 5, "all");
  sub_wait(&k, c1, &m1, "$share/g/sh/+", 1);
  sub_wait(&k, c2, &m2, "$share/g/sh/+", 1);
  sub_wait(&k, ca, &all, "sh/#", 1);
  cymg_conn *pc = cl(&k, &p, 5, "shpub");
  for (int i = 0; i < 6; i++) assert_true(pub(pc, "sh/t", "x", 1, false) > 0);
  POLL_UNTIL(k.mgr, all.msgs == 6 && m1.msgs + m2.msgs == 6);
  assert_int_equal(m1.msgs, 3); /* round robin */
  assert_int_equal(m2.msgs, 3);
  /* an offline member is skipped */
  cymg_close(c2);
  POLL_UNTIL(k.mgr, stat_subs(&k) == 2); /* the broker saw it go */
  for (int i = 0; i < 2; i++) assert_true(pub(pc, "sh/t", "y", 1, false) > 0);
  POLL_UNTIL(k.mgr, m1.msgs == 5);
  bk_stop(&k);
}

/* ---- v5 properties ---- */

static void test_v5_properties(void **state) {
  (void)state;
  bk k;
  bk_start(&k, NULL);
  xrec s, p;
  cymg_mqtt_opts o5 = {.version = 5, .client_id = cymg_str_c("v5sub")};
  cymg_conn *sc = xcl(&k, &s, &o5);
  sub_props(&k, sc, &s.r, "v/+", 1, 42);
  sub_props(&k, sc, &s.r, "v/#", 1, 7); /* overlapping: one copy, the larger id */
  o5.client_id = cymg_str_c("v5pub");
  cymg_conn *pc = xcl(&k, &p, &o5);
  sub_props(&k, pc, &p.r, "v/#", 1 | 0x04, 0); /* no-local: not its own */
  cymg_mqtt_prop props[2] = {
      {.id = CYMG_MQTT_PROP_USER_PROPERTY, .key = cymg_str_c("k"), .val = cymg_str_c("v")},
      {.id = CYMG_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, .iv = 100}};
  assert_true(cymg_mqtt_pub(pc, cymg_str_c("v/a"), cymg_str_c("1"), 1, false, props, 2) > 0);
  POLL_UNTIL(k.mgr, s.r.msgs == 1);
  assert_true(s.r.userprop[0]);
  assert_int_equal(s.subid[0], 42);
  assert_true(s.expiry[0] > 0 && s.expiry[0] <= 100);
  /* topic alias from a client: set, then used with an empty topic */
  rawc r;
  cymg_mqtt_msg m;
  raw_open(&k, &r, 5);
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_CONNECT;
  m.connect.client_id = cymg_str_c("aliaser");
  m.connect.clean = true;
  raw_pkt(&k, &r, &m);
  raw_expect(&k, &r, CYMG_MQTT_CMD_CONNACK, &m);
  uint8_t alias[] = {CYMG_MQTT_PROP_TOPIC_ALIAS, 0, 3};
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_PUBLISH;
  m.topic = cymg_str_c("v/alias");
  m.data = cymg_str_c("first");
  m.props = cymg_str_n(alias, sizeof(alias));
  raw_pkt(&k, &r, &m);
  m.topic = cymg_str_n(NULL, 0);
  m.data = cymg_str_c("second");
  raw_pkt(&k, &r, &m);
  POLL_UNTIL(k.mgr, s.r.msgs == 3);
  assert_string_equal(s.r.topic[1], "v/alias");
  assert_string_equal(s.r.topic[2], "v/alias");
  assert_string_equal(s.r.data[2], "second");
  POLL_UNTIL(k.mgr, p.r.msgs == 2); /* no-local: the aliaser's, not its own "v/a" */
  assert_string_equal(p.r.topic[0], "v/alias");
  /* an alias above our maximum: DISCONNECT 0x94 */
  alias[2] = 200;
  raw_pkt(&k, &r, &m);
  assert_int_equal(raw_until_closed(&k, &r), 0x94);
  /* message expiry: a message that expired while queued is not delivered */
  xrec off;
  cymg_mqtt_opts po = {
      .version = 5, .client_id = cymg_str_c("sleepy"), .persistent = true, .session_expiry = 60};
  cymg_conn *oc = xcl(&k, &off, &po);
  sub_props(&k, oc, &off.r, "exp/#", 1, 0);
  cymg_close(oc);
  POLL_UNTIL(k.mgr, stat_clients(&k) == 2); /* the broker saw it go */
  props[1].iv = 1;
  assert_true(cymg_mqtt_pub(pc, cymg_str_c("exp/a"), cymg_str_c("old"), 1, false, props + 1, 1) >
              0);
  props[1].iv = 600;
  assert_true(cymg_mqtt_pub(pc, cymg_str_c("exp/b"), cymg_str_c("new"), 1, false, props + 1, 1) >
              0);
  POLL_UNTIL(k.mgr, stat_queued(&k) == 2);
  uint64_t t0 = cymg_mgr_now(k.mgr);
  POLL_UNTIL(k.mgr, cymg_mgr_now(k.mgr) - t0 > 1100);
  oc = xcl(&k, &off, &po);
  POLL_UNTIL(k.mgr, off.r.msgs == 1);
  assert_string_equal(off.r.topic[0], "exp/b");
  assert_true(off.expiry[0] > 0 && off.expiry[0] <= 600);
  (void)oc;
  bk_stop(&k);
}

/* ---- keep-alive ---- */

static void test_keepalive_enforced(void **state) {
  (void)state;
  bk k;
  bk_start(&k, NULL);
  rec w;
  cymg_conn *wc = cl(&k, &w, 4, "kw");
  sub_wait(&k, wc, &w, "ka/#", 0);
  rawc r;
  cymg_mqtt_msg m;
  raw_open(&k, &r, 5);
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_CONNECT;
  m.connect.client_id = cymg_str_c("silent");
  m.connect.clean = true;
  m.connect.keepalive = 1;
  m.connect.has_will = true;
  m.connect.will_topic = cymg_str_c("ka/silent");
  m.connect.will_payload = cymg_str_c("timeout");
  raw_pkt(&k, &r, &m);
  raw_expect(&k, &r, CYMG_MQTT_CMD_CONNACK, &m);
  raw_simple(&k, &r, CYMG_MQTT_CMD_PINGREQ, 0); /* answered */
  raw_expect(&k, &r, CYMG_MQTT_CMD_PINGRESP, &m);
  assert_int_equal(raw_until_closed(&k, &r), CYMG_MQTT_RC_KEEP_ALIVE_TIMEOUT);
  POLL_UNTIL(k.mgr, w.msgs == 1);
  assert_string_equal(w.topic[0], "ka/silent");
  bk_stop(&k);
}

/* ---- hooks ---- */

static int auth_fn(void *data, const cymg_mqtt_client_info *who) {
  (void)data;
  if (cymg_str_eq(who->username, cymg_str_c("bad"))) return 0x86;
  if (cymg_str_eq(who->client_id, cymg_str_c("banned"))) return 0x8A;
  return 0;
}

static int acl_fn(void *data, const cymg_mqtt_client_info *who, int action, cymg_str topic, int qos,
                  bool retain) {
  (void)data;
  (void)who;
  (void)qos;
  (void)retain;
  if (cymg_str_starts(topic, cymg_str_c("secret"))) return 0x87;
  if (action == CYMG_MQTT_ACL_SUBSCRIBE && cymg_str_starts(topic, cymg_str_c("ro"))) return 0x87;
  return 0;
}

static void test_auth_acl(void **state) {
  (void)state;
  cymg_mqtt_broker_opts o = {.auth = auth_fn, .acl = acl_fn};
  bk k;
  bk_start(&k, &o);
  xrec x;
  cymg_mqtt_opts bad = {.username = cymg_str_c("bad"), .password = cymg_str_c("pw")};
  (void)xcl(&k, &x, &bad);
  assert_int_equal(x.r.open_code, 4); /* 3.1.1: bad user name or password */
  bad.version = 5;
  (void)xcl(&k, &x, &bad);
  assert_int_equal(x.r.open_code, 0x86);
  cymg_mqtt_opts sw = {.version = 5, .will_topic = cymg_str_c("secret/will")};
  (void)xcl(&k, &x, &sw);
  assert_int_equal(x.r.open_code, 0x87); /* the will goes through the ACL */
  cymg_mqtt_opts ban = {.version = 5, .client_id = cymg_str_c("banned")};
  (void)xcl(&k, &x, &ban);
  assert_int_equal(x.r.open_code, 0x8A);
  ban.version = 4;
  (void)xcl(&k, &x, &ban);
  assert_int_equal(x.r.open_code, 5);
  /* publish refused: v5 PUBACK 0x87, not routed; subscribe refused: SUBACK */
  xrec s, p;
  cymg_mqtt_opts so = {.version = 5, .client_id = cymg_str_c("aclsub")};
  cymg_conn *sc = xcl(&k, &s, &so);
  sub_props(&k, sc, &s.r, "secret/#", 1, 0);
  assert_int_equal(s.suback, 0x87);
  sub_props(&k, sc, &s.r, "#", 1, 0);
  assert_int_equal(s.suback, 1);
  cymg_mqtt_opts po = {.version = 5, .client_id = cymg_str_c("aclpub")};
  cymg_conn *pc = xcl(&k, &p, &po);
  assert_true(pub(pc, "secret/x", "no", 1, false) > 0);
  POLL_UNTIL(k.mgr, p.r.cmds[CYMG_MQTT_CMD_PUBACK] == 1);
  assert_int_equal(p.puback, 0x87);
  assert_true(pub(pc, "open/x", "yes", 1, false) > 0);
  POLL_UNTIL(k.mgr, s.r.msgs == 1);
  assert_string_equal(s.r.topic[0], "open/x");
  xrec s3;
  cymg_mqtt_opts s3o = {.client_id = cymg_str_c("acl311")};
  cymg_conn *c3 = xcl(&k, &s3, &s3o);
  sub_props(&k, c3, &s3.r, "ro/x", 1, 0);
  assert_int_equal(s3.suback, 0x80);
  bk_stop(&k);
}

/* ---- limits ---- */

static void test_limits(void **state) {
  (void)state;
  cymg_mqtt_broker_opts o = {
      .max_connections = 3, .max_subs = 1, .max_packet = 200, .max_queued = 2};
  bk k;
  bk_start(&k, &o);
  xrec a, b, c, d;
  cymg_mqtt_opts ao = {.version = 5, .client_id = cymg_str_c("la")};
  cymg_conn *ac = xcl(&k, &a, &ao);
  sub_props(&k, ac, &a.r, "l/1", 1, 0);
  sub_props(&k, ac, &a.r, "l/2", 1, 0);
  assert_int_equal(a.suback, 0x97);
  /* a session queue of 2: the third message for an offline session is dropped */
  cymg_mqtt_opts bo = {
      .version = 5, .client_id = cymg_str_c("lb"), .persistent = true, .session_expiry = 60};
  cymg_conn *bcn = xcl(&k, &b, &bo);
  sub_props(&k, bcn, &b.r, "q/#", 1, 0);
  cymg_close(bcn);
  POLL_UNTIL(k.mgr, b.r.closed);
  for (int i = 0; i < 3; i++)
    assert_int_equal(
        cymg_mqtt_broker_publish(k.b, cymg_str_c("q/x"), cymg_str_c("m"), 1, false, NULL, 0, NULL),
        0);
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k.b, &st);
  assert_int_equal(st.queued, 2);
  assert_int_equal(st.dropped, 1);
  /* connections: la, lc, ld are 3; the fourth is refused */
  cymg_mqtt_opts co = {.version = 5, .client_id = cymg_str_c("lc")};
  (void)xcl(&k, &c, &co);
  co.client_id = cymg_str_c("ld");
  (void)xcl(&k, &d, &co);
  xrec e;
  co.client_id = cymg_str_c("le");
  (void)xcl(&k, &e, &co);
  assert_int_equal(e.r.open_code, 0x97);
  co.version = 4;
  (void)xcl(&k, &e, &co);
  assert_int_equal(e.r.open_code, 3);
  /* a packet over max_packet: DISCONNECT 0x95, the others go on */
  char big[300];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  assert_true(pub(ac, "l/1", big, 0, false) == 0);
  POLL_UNTIL(k.mgr, a.r.closed);
  assert_int_equal(a.disc, CYMG_MQTT_RC_PACKET_TOO_LARGE);
  assert_false(c.r.closed);
  bk_stop(&k);
}

/* ---- bad input ---- */

static void test_bad_input(void **state) {
  (void)state;
  bk k;
  bk_start(&k, NULL);
  rec w, p;
  cymg_conn *wc = cl(&k, &w, 5, "survivor");
  sub_wait(&k, wc, &w, "ok/#", 0);
  cymg_conn *pc = cl(&k, &p, 5, "okpub");
  static const uint8_t conn311[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 1, 'z'};
  static const uint8_t conn5[] = {0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 0, 0, 0, 1, 'y'};
  struct {
    const char *what;
    bool v5;
    uint8_t pkt[16];
    size_t len;
    int reason; /* the v5 DISCONNECT expected, -1: just closed */
  } t[] = {
      {"bad remaining length", true, {0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, 6, 0x81},
      {"invalid UTF-8 topic", true, {0x30, 6, 0, 2, 0xc3, 0x28, 0, 'x'}, 8, 0x81},
      {"wildcard in PUBLISH topic", true, {0x30, 6, 0, 3, 'a', '/', '#', 0}, 8, 0x90},
      {"unknown packet type", false, {0xf0, 0}, 2, -1},
      {"reserved packet type 0", true, {0x00, 0}, 2, 0x81},
      {"CONNECT twice", true, {0}, 0, 0x82},
      {"server-only packet", true, {0x90, 3, 0, 1, 0}, 5, 0x82},
      {"oversize", true, {0x30, 0xff, 0xff, 0xff, 0x7f}, 5, 0x95},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    rawc r;
    raw_open(&k, &r, t[i].v5 ? 5 : 4);
    if (t[i].v5)
      raw_send(k.mgr, r.fd, conn5, sizeof(conn5));
    else
      raw_send(k.mgr, r.fd, conn311, sizeof(conn311));
    cymg_mqtt_msg m;
    raw_expect(&k, &r, CYMG_MQTT_CMD_CONNACK, &m);
    if (t[i].len)
      raw_send(k.mgr, r.fd, t[i].pkt, t[i].len);
    else
      raw_send(k.mgr, r.fd, conn5, sizeof(conn5));
    int got = raw_until_closed(&k, &r);
    if (got != t[i].reason) fail_msg("%s: DISCONNECT %d, expected %d", t[i].what, got, t[i].reason);
    /* the others are untouched */
    char d[8];
    snprintf(d, sizeof(d), "%zu", i);
    assert_int_equal(pub(pc, "ok/t", d, 0, false), 0);
    POLL_UNTIL(k.mgr, w.msgs == (int)i + 1);
  }
  /* a packet before CONNECT: closed without an answer */
  rawc r;
  raw_open(&k, &r, 4);
  raw_simple(&k, &r, CYMG_MQTT_CMD_PINGREQ, 0);
  assert_int_equal(raw_until_closed(&k, &r), -1);
  /* MQTT 3.1 (level 3): CONNACK 1, unacceptable protocol level */
  static const uint8_t conn31[] = {0x10, 15, 0,    6, 'M', 'Q', 'I', 's', 'd',
                                   'p',  3,  0x02, 0, 60,  0,   1,   'a'};
  raw_open(&k, &r, 4);
  raw_send(k.mgr, r.fd, conn31, sizeof(conn31));
  {
    cymg_mqtt_msg a;
    raw_expect(&k, &r, CYMG_MQTT_CMD_CONNACK, &a);
    assert_int_equal(a.ack, 1);
  }
  (void)raw_until_closed(&k, &r);
  /* empty client id with a persistent 3.1.1 session: CONNACK 2 */
  raw_open(&k, &r, 4);
  raw_conn(&k, &r, "", false, 0);
  cymg_mqtt_msg m;
  raw_expect(&k, &r, CYMG_MQTT_CMD_CONNACK, &m);
  assert_int_equal(m.ack, 2);
  (void)raw_until_closed(&k, &r);
  assert_false(w.closed || p.closed);
  assert_int_equal(w.errors + p.errors, 0);
  bk_stop(&k);
}

/* ---- TLS (with a client certificate) and WebSocket ---- */

static char seen_subject[128];

static int subject_fn(void *data, const cymg_mqtt_client_info *who) {
  (void)data;
  snprintf(seen_subject, sizeof(seen_subject), "%.*s", (int)who->cert_subject.len,
           who->cert_subject.buf);
  return 0;
}

static void test_tls_and_ws(void **state) {
  (void)state;
  cymg_mqtt_broker_opts o = {.auth = subject_fn};
  bk k;
  bk_start(&k, &o);
  cymg_conn *tl = NULL, *wl = NULL;
  assert_int_equal(cymg_mqtt_broker_listen(k.b, "mqtts://127.0.0.1:0", &tl), 0);
  cymg_tls_opts so = {.cert = cymg_str_c(cert("server-ec.crt")),
                      .key = cymg_str_c(cert("server-ec.key")),
                      .ca = cymg_str_c(cert("ca.crt"))};
  assert_int_equal(cymg_tls_init(tl, &so), 0);
  assert_int_equal(cymg_mqtt_broker_listen(k.b, "ws://127.0.0.1:0/mqtt", &wl), 0);
  rec a, b, c;
  cymg_mqtt_opts ao = {.version = 5, .client_id = cymg_str_c("tlsc")};
  memset(&a, 0, sizeof(a));
  cymg_conn *ac = client(k.mgr, "mqtts", cymg_conn_local(tl)->port, &ao, &a);
  cymg_tls_opts co = {.ca = cymg_str_c(cert("ca.crt")),
                      .cert = cymg_str_c(cert("client.crt")),
                      .key = cymg_str_c(cert("client.key")),
                      .name = cymg_str_c("localhost")};
  assert_int_equal(cymg_tls_init(ac, &co), 0);
  wait_open(k.mgr, &a);
  assert_non_null(strstr(seen_subject, "test-client"));
  sub_wait(&k, ac, &a, "mix/#", 1);
  char url[96];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/mqtt", cymg_conn_local(wl)->port);
  cymg_mqtt_opts bo = {.version = 4, .client_id = cymg_str_c("wsc")};
  memset(&b, 0, sizeof(b));
  cymg_conn *bc = NULL;
  assert_int_equal(cymg_mqtt_connect(k.mgr, url, &bo, rec_fn, &b, &bc), 0);
  wait_open(k.mgr, &b);
  sub_wait(&k, bc, &b, "mix/#", 2);
  /* wss:// too, at the same time */
  cymg_conn *sl = NULL;
  assert_int_equal(cymg_mqtt_broker_listen(k.b, "wss://127.0.0.1:0", &sl), 0);
  cymg_tls_opts wso = {.cert = cymg_str_c(cert("server-ec.crt")),
                       .key = cymg_str_c(cert("server-ec.key"))};
  assert_int_equal(cymg_tls_init(sl, &wso), 0);
  snprintf(url, sizeof(url), "wss://127.0.0.1:%u/", cymg_conn_local(sl)->port);
  rec d;
  memset(&d, 0, sizeof(d));
  cymg_mqtt_opts dopt = {.version = 5, .client_id = cymg_str_c("wssc")};
  cymg_conn *dc = NULL;
  assert_int_equal(cymg_mqtt_connect(k.mgr, url, &dopt, rec_fn, &d, &dc), 0);
  cymg_tls_opts dco = {.ca = cymg_str_c(cert("ca.crt")), .name = cymg_str_c("localhost")};
  assert_int_equal(cymg_tls_init(dc, &dco), 0);
  wait_open(k.mgr, &d);
  sub_wait(&k, dc, &d, "mix/1", 1);
  cymg_conn *pc = cl(&k, &c, 5, "plain");
  assert_true(pub(pc, "mix/1", "over all", 2, false) > 0);
  assert_true(pub(bc, "mix/2", "from ws", 1, false) > 0);
  POLL_UNTIL(k.mgr, a.msgs == 2 && b.msgs == 2 && d.msgs == 1);
  assert_string_equal(d.data[0], "over all");
  /* two publishers: either order */
  bool first = strcmp(a.data[0], "over all") == 0;
  assert_string_equal(a.data[first ? 0 : 1], "over all");
  assert_string_equal(a.data[first ? 1 : 0], "from ws");
  first = strcmp(b.data[0], "over all") == 0;
  assert_string_equal(b.data[first ? 1 : 0], "from ws");
  assert_int_equal(b.qos[first ? 0 : 1], 2);
  bk_stop(&k);
}

/* ---- a subscriber that stops reading ---- */

static void test_stalled_subscriber(void **state) {
  (void)state;
  cymg_mqtt_broker_opts o = {.max_queued = 50, .max_packet = 1 << 20};
  bk k;
  bk_start(&k, &o);
  rawc r;
  cymg_mqtt_msg m;
  raw_open(&k, &r, 4);
  int small = 4096;
  assert_int_equal(setsockopt(r.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
  raw_conn(&k, &r, "stall", true, 0);
  raw_expect(&k, &r, CYMG_MQTT_CMD_CONNACK, &m);
  uint8_t fl[16];
  int n = cymg_mqtt_filter_encode(cymg_str_c("st/#"), 1, fl, sizeof(fl), 0);
  assert_true(n > 0);
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_SUBSCRIBE;
  m.id = 1;
  m.filters = cymg_str_n(fl, (size_t)n);
  raw_pkt(&k, &r, &m);
  raw_expect(&k, &r, CYMG_MQTT_CMD_SUBACK, &m);
  /* from here it reads nothing */
  static char payload[16384];
  memset(payload, 'p', sizeof(payload));
  for (int i = 0; i < 400; i++) {
    assert_int_equal(
        cymg_mqtt_broker_publish(k.b, cymg_str_c("st/x"), cymg_str_n(payload, sizeof(payload)),
                                 i & 1, false, NULL, 0, NULL),
        0);
    assert_true(cymg_mgr_poll(k.mgr, 0) >= 0);
  }
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(k.b, &st);
  assert_true(st.queued <= 50);
  assert_true(st.dropped > 0);
  size_t most = 0;
  for (cymg_conn *c = cymg_mgr_first(k.mgr); c; c = cymg_conn_next(c))
    if (cymg_conn_send_len(c) > most) most = cymg_conn_send_len(c);
  assert_true(most < (4u << 20)); /* bounded by the high-water mark, not by 6 MiB sent */
  close(r.fd);
  bk_stop(&k);
}

/* ---- resend with DUP on resume; CONNACK properties ---- */

static void raw_conn5(bk *k, rawc *r, const char *id, bool clean, uint32_t expiry) {
  uint8_t pr[] = {CYMG_MQTT_PROP_SESSION_EXPIRY_INTERVAL, (uint8_t)(expiry >> 24),
                  (uint8_t)(expiry >> 16), (uint8_t)(expiry >> 8), (uint8_t)expiry};
  cymg_mqtt_msg m;
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_CONNECT;
  m.connect.client_id = cymg_str_c(id);
  m.connect.clean = clean;
  m.props = cymg_str_n(pr, expiry ? sizeof(pr) : 0);
  raw_pkt(k, r, &m);
}

static void test_resend_and_connack(void **state) {
  (void)state;
  cymg_mqtt_broker_opts o = {.receive_max = 10, .topic_alias_max = 5};
  bk k;
  bk_start(&k, &o);
  rawc r;
  cymg_mqtt_msg m;
  /* an empty client id in 5.0: one is assigned; our limits are advertised */
  raw_open(&k, &r, 5);
  raw_conn5(&k, &r, "", true, 0);
  raw_expect(&k, &r, CYMG_MQTT_CMD_CONNACK, &m);
  assert_int_equal(m.ack, 0);
  bool assigned = false, rmax = false, amax = false;
  size_t ofs = 0;
  cymg_mqtt_prop p;
  while (cymg_mqtt_next_prop(m.props, &ofs, &p) == 1) {
    if (p.id == CYMG_MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER) assigned = p.val.len > 0;
    if (p.id == CYMG_MQTT_PROP_RECEIVE_MAXIMUM) rmax = p.iv == 10;
    if (p.id == CYMG_MQTT_PROP_TOPIC_ALIAS_MAXIMUM) amax = p.iv == 5;
  }
  assert_true(assigned && rmax && amax);
  close(r.fd);
  /* a subscriber that takes a QoS 1 and a QoS 2 message and acknowledges
   * neither fully, then goes */
  raw_open(&k, &r, 5);
  raw_conn5(&k, &r, "forgetful", false, 60);
  raw_expect(&k, &r, CYMG_MQTT_CMD_CONNACK, &m);
  assert_false(m.session_present);
  uint8_t fl[32];
  int n = cymg_mqtt_filter_encode(cymg_str_c("rs/#"), 2, fl, sizeof(fl), 0);
  assert_true(n > 0);
  memset(&m, 0, sizeof(m));
  m.cmd = CYMG_MQTT_CMD_SUBSCRIBE;
  m.id = 1;
  m.filters = cymg_str_n(fl, (size_t)n);
  raw_pkt(&k, &r, &m);
  raw_expect(&k, &r, CYMG_MQTT_CMD_SUBACK, &m);
  assert_int_equal(
      cymg_mqtt_broker_publish(k.b, cymg_str_c("rs/1"), cymg_str_c("one"), 1, false, NULL, 0, NULL),
      0);
  assert_int_equal(
      cymg_mqtt_broker_publish(k.b, cymg_str_c("rs/2"), cymg_str_c("two"), 2, false, NULL, 0, NULL),
      0);
  raw_expect(&k, &r, CYMG_MQTT_CMD_PUBLISH, &m);
  uint16_t id1 = m.id;
  assert_false(m.dup);
  raw_expect(&k, &r, CYMG_MQTT_CMD_PUBLISH, &m);
  uint16_t id2 = m.id;
  assert_int_equal(m.qos, 2);
  raw_simple(&k, &r, CYMG_MQTT_CMD_PUBREC, id2);
  raw_expect(&k, &r, CYMG_MQTT_CMD_PUBREL, &m);
  close(r.fd);
  POLL_UNTIL(k.mgr, stat_clients(&k) == 0);
  /* back: the QoS 1 message again with DUP and its id, then PUBREL for the other */
  raw_open(&k, &r, 5);
  raw_conn5(&k, &r, "forgetful", false, 60);
  raw_expect(&k, &r, CYMG_MQTT_CMD_CONNACK, &m);
  assert_true(m.session_present);
  raw_expect(&k, &r, CYMG_MQTT_CMD_PUBLISH, &m);
  assert_true(m.dup);
  assert_int_equal(m.id, id1);
  assert_true(cymg_str_eq(m.data, cymg_str_c("one")));
  raw_simple(&k, &r, CYMG_MQTT_CMD_PUBACK, id1);
  raw_expect(&k, &r, CYMG_MQTT_CMD_PUBREL, &m);
  assert_int_equal(m.id, id2);
  raw_simple(&k, &r, CYMG_MQTT_CMD_PUBCOMP, id2);
  POLL_UNTIL(k.mgr, stat_queued(&k) == 0);
  close(r.fd);
  bk_stop(&k);
}

/* ---- the program's event function ---- */

typedef struct {
  int cmds, closes, lsn_closes, bad_data;
} seen_t;

static void user_fn(cymg_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  seen_t *t = cymg_conn_userdata(c);
  if (t == NULL || t->bad_data < 0) return;
  if (t->cmds < 0) { /* not ours: would be a wrong pointer */
    t->bad_data++;
    return;
  }
  if (ev == CYMG_EV_MQTT_CMD) t->cmds++;
  if (ev == CYMG_EV_CLOSE && cymg_conn_is_listening(c)) t->lsn_closes++;
  if (ev == CYMG_EV_CLOSE && !cymg_conn_is_listening(c)) t->closes++;
}

static void test_user_fn(void **state) {
  (void)state;
  seen_t t = {0};
  cymg_mqtt_broker_opts o = {.fn = user_fn, .fn_data = &t};
  bk k;
  bk_start(&k, &o);
  cymg_conn *wl = NULL;
  assert_int_equal(cymg_mqtt_broker_listen(k.b, "ws://127.0.0.1:0", &wl), 0);
  rec a, b;
  cymg_conn *ac = cl(&k, &a, 4, "fa");
  char url[96];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/", cymg_conn_local(wl)->port);
  cymg_mqtt_opts bo = {.client_id = cymg_str_c("fb")};
  memset(&b, 0, sizeof(b));
  cymg_conn *bc = NULL;
  assert_int_equal(cymg_mqtt_connect(k.mgr, url, &bo, rec_fn, &b, &bc), 0);
  wait_open(k.mgr, &b);
  assert_int_equal(t.cmds, 2); /* the two CONNECTs, with fn_data as the user pointer */
  assert_int_equal(pub(ac, "x", "y", 0, false), 0);
  POLL_UNTIL(k.mgr, t.cmds == 3);
  /* freeing the broker closes everything: every CLOSE reaches fn */
  cymg_mqtt_broker_free(k.b);
  POLL_UNTIL(k.mgr, t.closes == 2 && t.lsn_closes == 2);
  assert_int_equal(t.bad_data, 0);
  (void)bc;
  close_all_and_free(k.mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_routing_311),
      cmocka_unit_test(test_routing_v5),
      cmocka_unit_test(test_retained),
      cmocka_unit_test(test_mosquitto_clients),
      cmocka_unit_test(test_qos2_exactly_once),
      cmocka_unit_test(test_session_resume),
      cmocka_unit_test(test_persistence_restart),
      cmocka_unit_test(test_wills),
      cmocka_unit_test(test_takeover),
      cmocka_unit_test(test_shared),
      cmocka_unit_test(test_v5_properties),
      cmocka_unit_test(test_keepalive_enforced),
      cmocka_unit_test(test_auth_acl),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_tls_and_ws),
      cmocka_unit_test(test_stalled_subscriber),
      cmocka_unit_test(test_resend_and_connack),
      cmocka_unit_test(test_user_fn),
  };
  return cmocka_run_group_tests(tests, tls_certs_setup, NULL);
}
