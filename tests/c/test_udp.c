/* UDP over loopback: echo with datagram boundaries kept, IPv6, clients.
 * CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include "cymg_test.h"

typedef struct {
  int ndgrams;
  char dgrams[16][64];
  size_t lens[16];
  bool connected, closed;
} udp_rec;

static void udp_echo(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_READ) {
    size_t n = *(const size_t *) ev_data;
    cymg_str d = cymg_conn_recv_data(c);
    assert_int_equal(d.len, n); /* one datagram per READ */
    assert_int_equal(cymg_send(c, d.buf, d.len), 0);
    cymg_conn_consume(c, d.len);
  }
}

static void udp_client(cymg_conn *c, int ev, void *ev_data) {
  udp_rec *r = cymg_conn_userdata(c);
  (void) ev_data;
  if (ev == CYMG_EV_CONNECT) {
    r->connected = true;
    assert_int_equal(cymg_send(c, "one", 3), 0);
    assert_int_equal(cymg_send(c, "", 0), 0); /* an empty datagram is a datagram */
    assert_int_equal(cymg_send(c, "three!", 6), 0);
  } else if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c);
    assert_true(r->ndgrams < 16);
    memcpy(r->dgrams[r->ndgrams], d.buf, d.len);
    r->lens[r->ndgrams++] = d.len;
    cymg_conn_consume(c, d.len);
  } else if (ev == CYMG_EV_CLOSE) {
    r->closed = true;
  }
}

static void run_echo(const char *listen_url) {
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  cymg_conn *lsn;
  if (cymg_listen(mgr, listen_url, udp_echo, NULL, &lsn) != 0) {
    cymg_mgr_free(mgr);
    skip();
  }
  assert_true(cymg_conn_is_udp(lsn));
  assert_true(cymg_conn_is_listening(lsn));
  char a[64], url[80];
  cymg_addr_str(cymg_conn_local(lsn), true, a, sizeof(a));
  snprintf(url, sizeof(url), "udp://%s", a);
  udp_rec r = {0};
  cymg_conn *c;
  assert_int_equal(cymg_connect(mgr, url, udp_client, &r, &c), 0);
  assert_true(cymg_conn_is_udp(c));
  POLL_UNTIL(mgr, r.ndgrams == 3);
  assert_int_equal(r.lens[0], 3);
  assert_memory_equal(r.dgrams[0], "one", 3);
  assert_int_equal(r.lens[1], 0);
  assert_int_equal(r.lens[2], 6);
  assert_memory_equal(r.dgrams[2], "three!", 6);
  /* The listener's remote address is the last sender: our client. */
  assert_int_equal(cymg_conn_remote(lsn)->port, cymg_conn_local(c)->port);
  cymg_close(c);
  cymg_close(lsn);
  cymg_mgr_poll(mgr, 0);
  assert_true(r.closed);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_udp_echo_v4(void **state) {
  (void) state;
  run_echo("udp://127.0.0.1:0");
}

static void test_udp_echo_v6(void **state) {
  (void) state;
  run_echo("udp://[::1]:0");
}

static void test_udp_oversize(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  cymg_conn *c;
  assert_int_equal(cymg_connect(mgr, "udp://127.0.0.1:9", NULL, NULL, &c), 0);
  static char big[70000];
  assert_int_equal(cymg_send(c, big, sizeof(big)), -EMSGSIZE);
  cymg_close(c);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_udp_echo_v4),
      cmocka_unit_test(test_udp_echo_v6),
      cmocka_unit_test(test_udp_oversize),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
