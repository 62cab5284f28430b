/* cymg_conn_pause_read: a paused connection reads nothing more however much its
 * peer sends (the peer is held by TCP flow control: its output waits unsent),
 * and after resume every byte arrives, in order, over plain TCP and TLS (where
 * records OpenSSL decrypted ahead must come out too). CYMG_TEST_BACKENDS: runs
 * once per backend. */
#include "tls_test.h"

#define TOTAL (32u << 20)
#define PAUSE_AT (64u << 10)

typedef struct {
  size_t got;
  size_t paused_at; /* got when paused, 0 while not */
  int pauses;
  bool bad, closed;
} sink;

static void sink_fn(cymg_conn *c, int ev, void *ev_data) {
  sink *s = cymg_conn_userdata(c);
  (void) ev_data;
  if (cymg_conn_is_listening(c)) return;
  if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c);
    for (size_t i = 0; i < d.len; i++)
      if ((unsigned char) d.buf[i] != (unsigned char) ((s->got + i) % 251)) s->bad = true;
    s->got += d.len;
    cymg_conn_consume(c, d.len);
    /* Each PAUSE_AT-th stretch pauses once, so the test sees several rounds. */
    if (s->paused_at == 0 && s->got >= (size_t) (s->pauses + 1) * 4 * PAUSE_AT && s->pauses < 3) {
      assert_int_equal(cymg_conn_pause_read(c, true), 0);
      assert_true(cymg_conn_is_read_paused(c));
      s->paused_at = s->got;
      s->pauses++;
    }
  } else if (ev == CYMG_EV_CLOSE) {
    s->closed = true;
  }
}

static void src_fn(cymg_conn *c, int ev, void *ev_data) {
  (void) c, (void) ev, (void) ev_data;
}

static cymg_conn *server_conn(cymg_mgr *mgr) {
  for (cymg_conn *c = cymg_mgr_first(mgr); c; c = cymg_conn_next(c))
    if (!cymg_conn_is_listening(c) && cymg_conn_userdata(c) != NULL &&
        cymg_conn_handler(c) == sink_fn)
      return c;
  return NULL;
}

static void run(const char *scheme, bool tls) {
  cymg_mgr *mgr = new_mgr();
  sink s = {0};
  cymg_conn *lsn = NULL;
  char url[96];
  snprintf(url, sizeof(url), "%s://127.0.0.1:0", scheme);
  assert_int_equal(cymg_listen(mgr, url, sink_fn, &s, &lsn), 0);
  assert_int_equal(cymg_conn_pause_read(lsn, true), CYMG_ESTATE);
  assert_int_equal(cymg_conn_pause_read(NULL, true), CYMG_EINVAL);
  cymg_tls_opts so = {0}, co = {0};
  if (tls) {
    so.cert = cymg_str_c(cert("server-ec.crt"));
    so.key = cymg_str_c(cert("server-ec.key"));
    assert_int_equal(cymg_tls_init(lsn, &so), 0);
  }
  snprintf(url, sizeof(url), "%s://localhost:%u", scheme, cymg_conn_local(lsn)->port);
  cymg_conn *cli = NULL;
  assert_int_equal(cymg_connect(mgr, url, src_fn, NULL, &cli), 0);
  if (tls) {
    co.ca = cymg_str_c(cert("ca.crt"));
    assert_int_equal(cymg_tls_init(cli, &co), 0);
  }
  cymg_conn_set_limits(cli, 0, TOTAL + (1u << 20));
  char *data = malloc(TOTAL);
  assert_non_null(data);
  for (size_t i = 0; i < TOTAL; i++) data[i] = (char) (i % 251);
  assert_int_equal(cymg_send(cli, data, TOTAL), 0);
  free(data);

  while (s.got < TOTAL) {
    if (s.paused_at) {
      /* Paused: however long the loop runs, nothing more is read, while the
       * client's output waits on the kernel buffers the server leaves full. */
      size_t before = cymg_conn_send_len(cli);
      for (int i = 0; i < 40; i++) assert_true(cymg_mgr_poll(mgr, 5) >= 0);
      assert_int_equal(s.got, s.paused_at);
      assert_true(cymg_conn_send_len(cli) > 0);
      assert_true(cymg_conn_send_len(cli) <= before);
      cymg_conn *sc = server_conn(mgr);
      assert_non_null(sc);
      assert_int_equal(cymg_conn_pause_read(sc, true), 0); /* idempotent */
      assert_int_equal(cymg_conn_pause_read(sc, false), 0);
      assert_false(cymg_conn_is_read_paused(sc));
      s.paused_at = 0;
    }
    size_t had = s.got;
    POLL_UNTIL(mgr, s.got > had || s.got >= TOTAL);
  }
  assert_int_equal(s.pauses, 3);
  assert_int_equal(s.got, TOTAL);
  assert_false(s.bad);
  close_all_and_free(mgr);
  assert_tls_clean();
}

static void test_pause_plain(void **state) {
  (void) state;
  run("tcp", false);
}

static void test_pause_tls(void **state) {
  (void) state;
  run("tls", true);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pause_plain),
      cmocka_unit_test(test_pause_tls),
  };
  return cmocka_run_group_tests(tests, tls_certs_setup, NULL);
}
