/* The SNTP client against a real chronyd on loopback, and against a responder
 * in this test (a cymg UDP listener) for the replies no real server sends on
 * demand: wrong mode, kiss-of-death, wrong origin, too short, late, none.
 * CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cymg_test.h"

/* ---- chronyd on 127.0.0.1:<free port> ---- */

static pid_t chrony_pid = -1;
static int chrony_port;
static char chrony_dir[64];

static int free_udp_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof(sa);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sl), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

static const char *find_chronyd(void) {
  static const char *paths[] = {"/usr/sbin/chronyd", "/usr/bin/chronyd", "/sbin/chronyd",
                                "/usr/local/sbin/chronyd"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
    if (access(paths[i], X_OK) == 0) return paths[i];
  return NULL;
}

/* True once chronyd answers a request (a bounded wait for it to start). */
static bool chrony_answers(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  struct timeval tv = {0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)chrony_port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  uint8_t p[CYMG_SNTP_PACKET_LEN], r[128];
  cymg_sntp_build_request(p, cymg_wall_millis() * 1000000, 1);
  bool ok = sendto(fd, p, sizeof(p), 0, (struct sockaddr *)&sa, sizeof(sa)) == sizeof(p) &&
            recv(fd, r, sizeof(r), 0) >= CYMG_SNTP_PACKET_LEN;
  close(fd);
  return ok;
}

static int start_chronyd(void **state) {
  (void)state;
  const char *bin = find_chronyd();
  if (bin == NULL) {
    /* make test installs chrony (scripts/deps.sh): only a bare build lacks it. */
    fprintf(stderr, "test_sntp_client: chronyd not installed: chrony tests skipped\n");
    return 0;
  }
  snprintf(chrony_dir, sizeof(chrony_dir), "/tmp/cymg-chrony-XXXXXX");
  assert_non_null(mkdtemp(chrony_dir));
  chmod(chrony_dir, 0755); /* chronyd drops root for _chrony after reading it */
  chrony_port = free_udp_port();
  char conf[128];
  snprintf(conf, sizeof(conf), "%s/chrony.conf", chrony_dir);
  FILE *f = fopen(conf, "w");
  assert_non_null(f);
  fprintf(f,
          "port %d\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\n"
          "cmdport 0\nbindcmdaddress /\npidfile %s/chronyd.pid\ndriftfile %s/drift\n",
          chrony_port, chrony_dir, chrony_dir);
  assert_int_equal(fclose(f), 0);
  chrony_pid = fork();
  assert_true(chrony_pid >= 0);
  if (chrony_pid == 0) {
    /* -x: serve time without touching the clock; -U: allowed as non-root. */
    if (getuid() == 0) {
      execl(bin, "chronyd", "-x", "-d", "-f", conf, (char *)NULL);
    } else {
      execl(bin, "chronyd", "-x", "-d", "-U", "-f", conf, (char *)NULL);
    }
    _exit(127);
  }
  for (int i = 0; i < 100 && !chrony_answers(); i++) {
    int st;
    if (waitpid(chrony_pid, &st, WNOHANG) == chrony_pid) fail_msg("chronyd exited at start");
  }
  return 0;
}

static int stop_chronyd(void **state) {
  (void)state;
  if (chrony_pid > 0) {
    kill(chrony_pid, SIGTERM);
    int st;
    waitpid(chrony_pid, &st, 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", chrony_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", chrony_dir);
  }
  return 0;
}

/* ---- the client side ---- */

typedef struct {
  int times, errors, closes, connects;
  int64_t last_ms, delay_ms;
  char err[128];
} rec;

static void client_fn(cymg_conn *c, int ev, void *ev_data) {
  rec *r = cymg_conn_userdata(c);
  if (ev == CYMG_EV_SNTP_TIME) {
    r->times++;
    r->last_ms = *(const int64_t *)ev_data;
    r->delay_ms = cymg_sntp_delay_ms(c);
  } else if (ev == CYMG_EV_ERROR) {
    r->errors++;
    snprintf(r->err, sizeof(r->err), "%s", (const char *)ev_data);
  } else if (ev == CYMG_EV_CONNECT) {
    r->connects++;
  } else if (ev == CYMG_EV_CLOSE) {
    r->closes++;
  }
  assert_true(ev != CYMG_EV_READ); /* the SNTP layer keeps raw datagrams */
}

static int64_t abs64(int64_t v) {
  return v < 0 ? -v : v;
}

static void test_chrony_time(void **state) {
  (void)state;
  if (chrony_pid <= 0) skip();
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  char url[64];
  snprintf(url, sizeof(url), "udp://127.0.0.1:%d", chrony_port);
  rec r = {0};
  cymg_conn *c;
  assert_int_equal(cymg_sntp_connect(mgr, url, client_fn, &r, &c), 0);
  assert_true(cymg_conn_is_udp(c));
  POLL_UNTIL(mgr, r.times == 1 || r.closes);
  assert_int_equal(r.errors, 0);
  /* chronyd serves this machine's own clock: the answer is our time. */
  assert_true(abs64(r.last_ms - cymg_wall_millis()) < 5000);
  assert_true(abs64(cymg_sntp_offset_ms(c)) < 5000);
  assert_true(cymg_sntp_delay_ms(c) >= 0);
  /* The connection stays open for periodic requests. */
  assert_int_equal(cymg_sntp_request(c), 0);
  POLL_UNTIL(mgr, r.times == 2 || r.closes);
  assert_int_equal(r.errors, 0);
  cymg_close(c);
  cymg_mgr_poll(mgr, 0);
  assert_int_equal(r.closes, 1);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_chrony_sntp_scheme_and_early_request(void **state) {
  (void)state;
  if (chrony_pid <= 0) skip();
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  char url[64];
  snprintf(url, sizeof(url), "sntp://127.0.0.1:%d", chrony_port);
  rec r = {0};
  cymg_conn *c;
  assert_int_equal(cymg_sntp_connect(mgr, url, client_fn, &r, &c), 0);
  /* Asked before the connection is ready: answered, not dropped. */
  assert_int_equal(cymg_sntp_request(c), 0);
  POLL_UNTIL(mgr, r.times == 1 || r.closes);
  assert_int_equal(r.errors, 0);
  assert_int_equal(r.connects, 1);
  cymg_close(c);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_urls(void **state) {
  (void)state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  cymg_conn *c = NULL;
  assert_int_equal(cymg_sntp_connect(mgr, "http://127.0.0.1:123", NULL, NULL, &c), CYMG_ESCHEME);
  assert_null(c);
  assert_non_null(strstr(cymg_mgr_errmsg(mgr), "sntp://"));
  assert_int_equal(cymg_sntp_connect(mgr, "udp://127.0.0.1", NULL, NULL, &c), CYMG_EBADURL);
  /* sntp:// means port 123. */
  assert_int_equal(cymg_sntp_connect(mgr, "sntp://127.0.0.1", NULL, NULL, &c), 0);
  assert_int_equal(cymg_conn_remote(c)->port, 123);
  assert_int_equal(cymg_sntp_set_timeout(c, 0), CYMG_EINVAL);
  cymg_close(c);
  assert_int_equal(cymg_sntp_request(c), CYMG_ECLOSED);
  cymg_mgr_poll(mgr, 0);
  /* Not an SNTP connection. */
  assert_int_equal(cymg_connect(mgr, "udp://127.0.0.1:9", NULL, NULL, &c), 0);
  assert_int_equal(cymg_sntp_request(c), CYMG_ESTATE);
  assert_int_equal(cymg_sntp_offset_ms(c), 0);
  cymg_close(c);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

/* ---- the responder ---- */

enum { R_GOOD, R_MODE3, R_KISS, R_ORIGIN, R_SHORT, R_SILENT, R_LATE, R_BAD_THEN_GOOD };

typedef struct {
  int mode;
  int requests;
  cymg_mgr *mgr;
  cymg_conn *lsn;
  uint8_t pending[CYMG_SNTP_PACKET_LEN];
  int64_t server_ms; /* the time the responder claims */
} responder;

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static void make_reply(responder *rs, const uint8_t *req, uint8_t *p) {
  memset(p, 0, CYMG_SNTP_PACKET_LEN);
  p[0] = (4 << 3) | 4;
  p[1] = 3;
  memcpy(p + 24, req + 40, 8); /* origin = the client's transmit time */
  uint64_t now = cymg_sntp_ts_from_unix_ns(rs->server_ms * 1000000);
  put64(p + 32, now);
  put64(p + 40, now);
}

static void late_fn(void *arg) {
  responder *rs = arg;
  assert_int_equal(cymg_send(rs->lsn, rs->pending, sizeof(rs->pending)), 0);
}

static void responder_fn(cymg_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev != CYMG_EV_READ) return;
  responder *rs = cymg_conn_userdata(c);
  cymg_str d = cymg_conn_recv_data(c);
  assert_int_equal(d.len, CYMG_SNTP_PACKET_LEN);
  assert_int_equal((uint8_t)d.buf[0], 0x23); /* a v4 client request */
  rs->requests++;
  uint8_t p[CYMG_SNTP_PACKET_LEN];
  make_reply(rs, (const uint8_t *)d.buf, p);
  cymg_conn_consume(c, d.len);
  switch (rs->mode) {
    case R_MODE3: p[0] = (4 << 3) | 3; break;
    case R_KISS:
      p[0] = (3 << 6) | (4 << 3) | 4;
      p[1] = 0;
      memcpy(p + 12, "DENY", 4);
      break;
    case R_ORIGIN: p[31] ^= 0x55; break;
    case R_SILENT: return;
    case R_LATE:
      memcpy(rs->pending, p, sizeof(p));
      assert_int_equal(cymg_timer_add(rs->mgr, 300, CYMG_TIMER_ONCE, late_fn, rs, NULL), 0);
      return;
    case R_BAD_THEN_GOOD: {
      uint8_t bad[CYMG_SNTP_PACKET_LEN];
      memcpy(bad, p, sizeof(bad));
      bad[1] = 0; /* stratum 0 with a wrong origin: a forged kiss, ignored */
      memcpy(bad + 12, "RATE", 4);
      bad[25] ^= 1;
      assert_int_equal(cymg_send(c, bad, sizeof(bad)), 0);
      assert_int_equal(cymg_send(c, p, 20), 0); /* too short */
      break;
    }
    default: break;
  }
  assert_int_equal(cymg_send(c, p, rs->mode == R_SHORT ? 47 : sizeof(p)), 0);
}

/* Runs one exchange against the responder in `mode`; returns what the client saw. */
static rec run_responder(int mode, uint32_t timeout_ms, int64_t *server_ms) {
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  /* A time far from ours and past the 2036 rollover: it must come from the reply. */
  responder rs = {.mode = mode, .mgr = mgr, .server_ms = 2200000000000LL + 123};
  assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", responder_fn, &rs, &rs.lsn), 0);
  char url[64];
  snprintf(url, sizeof(url), "udp://127.0.0.1:%u", (unsigned)cymg_conn_local(rs.lsn)->port);
  rec r = {0};
  cymg_conn *c;
  assert_int_equal(cymg_sntp_connect(mgr, url, client_fn, &r, &c), 0);
  if (timeout_ms) assert_int_equal(cymg_sntp_set_timeout(c, timeout_ms), 0);
  POLL_UNTIL(mgr, r.times > 0 || r.closes > 0);
  /* A few more polls: late or duplicate datagrams would show up here. */
  for (int i = 0; i < 5; i++) cymg_mgr_poll(mgr, 20);
  assert_int_equal(rs.requests, 1);
  if (r.closes == 0) cymg_close(c);
  cymg_close(rs.lsn);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
  if (server_ms) *server_ms = rs.server_ms;
  return r;
}

static void test_reply_good(void **state) {
  (void)state;
  int64_t server_ms;
  rec r = run_responder(R_GOOD, 0, &server_ms);
  assert_int_equal(r.times, 1);
  assert_int_equal(r.errors, 0);
  /* The server's time plus half the round trip (1 ms for the ns rounding of
   * the timestamps). */
  assert_true(r.delay_ms >= 0);
  assert_true(llabs(r.last_ms - (server_ms + r.delay_ms / 2)) <= 1);
}

static void test_reply_late_within_timeout(void **state) {
  (void)state;
  int64_t server_ms;
  rec r = run_responder(R_LATE, 5000, &server_ms);
  assert_int_equal(r.times, 1);
  assert_int_equal(r.errors, 0);
  /* The reply was held 300 ms: the delay shows it (a loop iteration of
   * timer slack aside), and half of it was added to the server's time. */
  assert_true(r.delay_ms >= 200);
  assert_true(llabs(r.last_ms - (server_ms + r.delay_ms / 2)) <= 1);
}

static void test_reply_ignored_then_good(void **state) {
  (void)state;
  rec r = run_responder(R_BAD_THEN_GOOD, 0, NULL);
  assert_int_equal(r.times, 1);
  assert_int_equal(r.errors, 0);
}

static void expect_timeout(int mode) {
  rec r = run_responder(mode, 300, NULL);
  assert_int_equal(r.times, 0);
  assert_int_equal(r.errors, 1);
  assert_string_equal(r.err, "SNTP timeout");
  assert_int_equal(r.closes, 1);
}

static void test_reply_wrong_mode(void **state) {
  (void)state;
  expect_timeout(R_MODE3);
}

static void test_reply_wrong_origin(void **state) {
  (void)state;
  expect_timeout(R_ORIGIN);
}

static void test_reply_too_short(void **state) {
  (void)state;
  expect_timeout(R_SHORT);
}

static void test_no_reply(void **state) {
  (void)state;
  expect_timeout(R_SILENT);
}

static void test_kiss_of_death(void **state) {
  (void)state;
  rec r = run_responder(R_KISS, 0, NULL);
  assert_int_equal(r.times, 0);
  assert_int_equal(r.errors, 1);
  assert_string_equal(r.err, "SNTP kiss-of-death: DENY");
  assert_int_equal(r.closes, 1);
}

/* A reply from the server's address but another port never reaches us. */
static void other_port_fn(cymg_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev != CYMG_EV_READ) return;
  responder *rs = cymg_conn_userdata(c);
  cymg_str d = cymg_conn_recv_data(c);
  uint8_t p[CYMG_SNTP_PACKET_LEN];
  make_reply(rs, (const uint8_t *)d.buf, p);
  rs->requests++;
  cymg_conn_consume(c, d.len);
  /* Sent from a second socket to the client's address. */
  char url[80], a[64];
  cymg_addr_str(cymg_conn_remote(c), true, a, sizeof(a));
  snprintf(url, sizeof(url), "udp://%s", a);
  cymg_conn *other;
  assert_int_equal(cymg_connect(rs->mgr, url, NULL, NULL, &other), 0);
  assert_int_equal(cymg_send(other, p, sizeof(p)), 0);
  cymg_drain(other);
}

static void test_reply_from_other_port(void **state) {
  (void)state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  responder rs = {.mgr = mgr, .server_ms = 2200000000000LL};
  assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", other_port_fn, &rs, &rs.lsn), 0);
  char url[64];
  snprintf(url, sizeof(url), "udp://127.0.0.1:%u", (unsigned)cymg_conn_local(rs.lsn)->port);
  rec r = {0};
  cymg_conn *c;
  assert_int_equal(cymg_sntp_connect(mgr, url, client_fn, &r, &c), 0);
  assert_int_equal(cymg_sntp_set_timeout(c, 300), 0);
  POLL_UNTIL(mgr, r.closes > 0);
  assert_int_equal(rs.requests, 1);
  assert_int_equal(r.times, 0);
  assert_string_equal(r.err, "SNTP timeout");
  cymg_close(rs.lsn);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chrony_time),
      cmocka_unit_test(test_chrony_sntp_scheme_and_early_request),
      cmocka_unit_test(test_urls),
      cmocka_unit_test(test_reply_good),
      cmocka_unit_test(test_reply_late_within_timeout),
      cmocka_unit_test(test_reply_ignored_then_good),
      cmocka_unit_test(test_reply_wrong_mode),
      cmocka_unit_test(test_reply_wrong_origin),
      cmocka_unit_test(test_reply_too_short),
      cmocka_unit_test(test_no_reply),
      cmocka_unit_test(test_kiss_of_death),
      cmocka_unit_test(test_reply_from_other_port),
  };
  return cmocka_run_group_tests(tests, start_chronyd, stop_chronyd);
}
