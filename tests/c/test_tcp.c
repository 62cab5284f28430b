/* TCP over loopback: echo, many clients, IPv6, errors, drain, backpressure,
 * closing from callbacks. CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cymg_test.h"

/* ---- a recording client and an echo server ---- */

typedef struct {
  int events[64];
  int nevents;
  char err[256];
  cymg_buf got;
  const char *to_send;
  size_t to_send_len;
  bool closed, connected;
} client_rec;

static void rec_event(client_rec *r, int ev) {
  if (r->nevents < 64) r->events[r->nevents++] = ev;
}

static void client_fn(cymg_conn *c, int ev, void *ev_data) {
  client_rec *r = cymg_conn_userdata(c);
  if (ev != CYMG_EV_READ && ev != CYMG_EV_WRITE && ev != CYMG_EV_POLL) rec_event(r, ev);
  if (ev == CYMG_EV_CONNECT) {
    r->connected = true;
    if (r->to_send) assert_int_equal(cymg_send(c, r->to_send, r->to_send_len), 0);
  } else if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c);
    assert_int_equal(cymg_buf_append(&r->got, d.buf, d.len), 0);
    cymg_conn_consume(c, d.len);
  } else if (ev == CYMG_EV_ERROR) {
    snprintf(r->err, sizeof(r->err), "%s", (const char *) ev_data);
  } else if (ev == CYMG_EV_CLOSE) {
    r->closed = true;
  }
}

static int server_accepts, server_closes;

static void echo_fn(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CYMG_EV_ACCEPT) server_accepts++;
  if (ev == CYMG_EV_CLOSE && !cymg_conn_is_listening(c)) server_closes++;
  if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c);
    assert_int_equal(cymg_send(c, d.buf, d.len), 0);
    cymg_conn_consume(c, d.len);
  }
}

/* ---- tests ---- */

static void test_echo_1mb(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn;
  char url[80];
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", echo_fn, NULL, &lsn), 0);
  assert_int_not_equal(cymg_conn_local(lsn)->port, 0);
  assert_true(cymg_conn_is_listening(lsn));
  url_of(lsn, url, sizeof(url));

  size_t n = 1u << 20;
  char *payload = malloc(n);
  for (size_t i = 0; i < n; i++) payload[i] = (char) (i * 7 + (i >> 11));
  client_rec r = {.to_send = payload, .to_send_len = n};
  cymg_conn *c;
  assert_int_equal(cymg_connect(mgr, url, client_fn, &r, &c), 0);
  assert_true(cymg_conn_is_client(c));
  POLL_UNTIL(mgr, r.got.len >= n);
  assert_int_equal(r.got.len, n);
  assert_memory_equal(r.got.buf, payload, n);
  assert_string_equal(r.err, "");
  /* OPEN, RESOLVE, CONNECT in that order for a client */
  assert_int_equal(r.events[0], CYMG_EV_OPEN);
  assert_int_equal(r.events[1], CYMG_EV_RESOLVE);
  assert_int_equal(r.events[2], CYMG_EV_CONNECT);
  cymg_buf_free(&r.got);
  free(payload);
  close_all_and_free(mgr);
}

static void test_ipv6_loopback(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn;
  char url[80];
  if (cymg_listen(mgr, "tcp://[::1]:0", echo_fn, NULL, &lsn) != 0) {
    cymg_mgr_free(mgr);
    skip(); /* no IPv6 on this host */
  }
  assert_true(cymg_conn_local(lsn)->is_ip6);
  url_of(lsn, url, sizeof(url));
  assert_non_null(strstr(url, "[::1]:"));
  client_rec r = {.to_send = "six", .to_send_len = 3};
  assert_int_equal(cymg_connect(mgr, url, client_fn, &r, NULL), 0);
  POLL_UNTIL(mgr, r.got.len >= 3);
  assert_memory_equal(r.got.buf, "six", 3);
  cymg_conn *c = cymg_mgr_first(mgr); /* newest: the accepted one */
  assert_true(cymg_conn_remote(c)->is_ip6);
  cymg_buf_free(&r.got);
  close_all_and_free(mgr);
}

static void test_refused(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  /* A port that was just free: bind, read it, close. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof(sin);
  assert_int_equal(bind(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *) &sin, &sl), 0);
  close(fd);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ntohs(sin.sin_port));
  client_rec r = {0};
  assert_int_equal(cymg_connect(mgr, url, client_fn, &r, NULL), 0);
  POLL_UNTIL(mgr, r.closed);
  assert_false(r.connected);
  assert_non_null(strstr(r.err, "refused"));
  /* ERROR then CLOSE, last */
  assert_int_equal(r.events[r.nevents - 2], CYMG_EV_ERROR);
  assert_int_equal(r.events[r.nevents - 1], CYMG_EV_CLOSE);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_bad_urls(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *c = (cymg_conn *) 1;
  assert_int_equal(cymg_listen(mgr, "127.0.0.1:80", NULL, NULL, &c), CYMG_EBADURL);
  assert_null(c);
  assert_non_null(strstr(cymg_mgr_errmsg(mgr), "malformed"));
  assert_int_equal(cymg_listen(mgr, "gopher://127.0.0.1:70", NULL, NULL, NULL), CYMG_ESCHEME);
  assert_non_null(strstr(cymg_mgr_errmsg(mgr), "gopher"));
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:99999", NULL, NULL, NULL), CYMG_EBADURL);
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:8x", NULL, NULL, NULL), CYMG_EBADURL);
  assert_int_equal(cymg_listen(mgr, "tcp://[::1:0", NULL, NULL, NULL), CYMG_EBADURL);
  assert_int_equal(cymg_listen(mgr, "tcp://[nonsense]:0", NULL, NULL, NULL), CYMG_EBADURL);
  assert_int_equal(cymg_listen(mgr, "tcp://bad host:1", NULL, NULL, NULL), CYMG_EBADURL);
  assert_int_equal(cymg_listen(mgr, NULL, NULL, NULL, NULL), CYMG_EBADURL);
  assert_int_equal(cymg_connect(mgr, "tcp://127.0.0.1", NULL, NULL, NULL), CYMG_EBADURL);
  assert_non_null(strstr(cymg_mgr_errmsg(mgr), "port"));
  assert_int_equal(cymg_connect(mgr, "http2://x:1", NULL, NULL, NULL), CYMG_ESCHEME);
  assert_int_equal(cymg_listen(mgr, "tcp://no-such-host.invalid:0", NULL, NULL, NULL),
                   CYMG_ERESOLVE);
  assert_non_null(strstr(cymg_mgr_errmsg(mgr), "no-such-host.invalid"));
  /* Nothing was left behind by any failure. */
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

/* Schemes of the URL table listen and connect on their own transport (plain
 * TCP until a protocol layer is asked for, UDP for sntp, TLS for tls, https,
 * wss and mqtts). */
static void test_scheme_table(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *c = NULL;
  assert_int_equal(cymg_listen(mgr, "mqtt://127.0.0.1:0", NULL, NULL, &c), 0);
  assert_true(cymg_conn_is_listening(c) && !cymg_conn_is_udp(c));
  assert_int_not_equal(cymg_conn_local(c)->port, 0);
  assert_int_equal(cymg_listen(mgr, "http://127.0.0.1:0", NULL, NULL, &c), 0);
  assert_null(cymg_conn_proto(c)); /* raw TCP: cymg_http_listen() adds HTTP */
  assert_false(cymg_conn_is_tls(c));
  assert_int_equal(cymg_listen(mgr, "SNTP://127.0.0.1:0", NULL, NULL, &c), 0);
  assert_true(cymg_conn_is_udp(c));
  static const char *tls[] = {"https://127.0.0.1:0", "wss://127.0.0.1:0", "tls://127.0.0.1:0",
                              "mqtts://127.0.0.1:0"};
  for (size_t i = 0; i < sizeof(tls) / sizeof(tls[0]); i++) {
    assert_int_equal(cymg_listen(mgr, tls[i], NULL, NULL, &c), 0);
    assert_true(cymg_conn_is_tls(c) && !cymg_conn_is_udp(c));
  }
  assert_int_equal(cymg_http_listen(mgr, "https://127.0.0.1:0", NULL, NULL, &c), 0);
  assert_true(cymg_conn_is_tls(c));
  assert_int_equal(cymg_http_listen(mgr, "tls://127.0.0.1:0", NULL, NULL, NULL), CYMG_ESCHEME);
  assert_int_equal(cymg_listen(mgr, "invalid://127.0.0.1:0", NULL, NULL, NULL), CYMG_ESCHEME);
  assert_non_null(strstr(cymg_mgr_errmsg(mgr), "unsupported scheme 'invalid'"));
  /* mqtt:// without a port connects to 1883; here only the table is checked. */
  cymg_url u;
  assert_int_equal(cymg_url_parse(cymg_str_c("mqtt://127.0.0.1"), &u), 0);
  assert_int_equal(u.port_num, 1883);
  assert_int_equal(cymg_url_parse(cymg_str_c("mqtts://127.0.0.1"), &u), 0);
  assert_int_equal(u.port_num, 8883);
  assert_int_equal(cymg_mgr_count(mgr), 8);
  close_all_and_free(mgr);
}

static void test_address_in_use(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn;
  char url[80];
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", echo_fn, NULL, &lsn), 0);
  url_of(lsn, url, sizeof(url));
  assert_int_equal(cymg_listen(mgr, url, echo_fn, NULL, NULL), -EADDRINUSE);
  assert_non_null(strstr(cymg_mgr_errmsg(mgr), "in use"));
  assert_int_equal(cymg_mgr_count(mgr), 1);
  /* With SO_REUSEPORT on both, the port can be shared. */
  cymg_conn *a, *b;
  assert_int_equal(cymg_listen_reuseport(mgr, "tcp://127.0.0.1:0", echo_fn, NULL, &a), 0);
  url_of(a, url, sizeof(url));
  assert_int_equal(cymg_listen_reuseport(mgr, url, echo_fn, NULL, &b), 0);
  close_all_and_free(mgr);
}

static void test_unresolvable_is_async(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  client_rec r = {0};
  cymg_conn *c;
  assert_int_equal(cymg_connect(mgr, "tcp://no-such-host.invalid:80", client_fn, &r, &c), 0);
  assert_non_null(c);
  assert_false(r.closed); /* nothing fired inside the call but OPEN */
  assert_int_equal(r.nevents, 1);
  POLL_UNTIL(mgr, r.closed);
  assert_string_equal(r.err, "no-such-host.invalid: name not found"); /* RFC 6761: at once */
  assert_int_equal(r.events[r.nevents - 2], CYMG_EV_ERROR);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_hosts_file(void **state) {
  (void) state;
  char path[] = "/tmp/cymg-hosts-XXXXXX";
  int fd = mkstemp(path);
  const char *text = "# test hosts\n10.9.9.9 other\n127.0.0.1   Alpha.Test beta  # comment\n";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
  close(fd);
  cymg_mgr *mgr = new_mgr();
  assert_int_equal(cymg_mgr_set_hosts_file(mgr, path), 0);
  cymg_conn *lsn;
  assert_int_equal(cymg_listen(mgr, "tcp://beta:0", echo_fn, NULL, &lsn), 0);
  char url[80];
  snprintf(url, sizeof(url), "tcp://alpha.test:%u", cymg_conn_local(lsn)->port);
  client_rec r = {.to_send = "hi", .to_send_len = 2};
  assert_int_equal(cymg_connect(mgr, url, client_fn, &r, NULL), 0);
  POLL_UNTIL(mgr, r.got.len == 2);
  cymg_buf_free(&r.got);
  unlink(path);
  close_all_and_free(mgr);
}

static bool on_select(void) {
  const char *be = getenv("CYMG_BACKEND");
  return be && strcmp(be, "select") == 0;
}

/* 1,000 clients at once, each with its own message (400 on select, whose
 * descriptors must stay below FD_SETSIZE: both ends are in this process). */
#define NCLIENTS_MAX 1000
static void test_many_clients(void **state) {
  (void) state;
  const int NCLIENTS = on_select() ? 400 : NCLIENTS_MAX;
  const rlim_t need = (rlim_t) (2 * NCLIENTS + 64);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < need && rl.rlim_max >= need) {
    rl.rlim_cur = need;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn;
  char url[80];
  server_accepts = server_closes = 0;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", echo_fn, NULL, &lsn), 0);
  url_of(lsn, url, sizeof(url));
  static client_rec recs[NCLIENTS_MAX];
  static char msgs[NCLIENTS_MAX][16];
  for (int i = 0; i < NCLIENTS; i++) {
    memset(&recs[i], 0, sizeof(recs[i]));
    recs[i].to_send_len = (size_t) snprintf(msgs[i], sizeof(msgs[i]), "client-%d", i);
    recs[i].to_send = msgs[i];
    assert_int_equal(cymg_connect(mgr, url, client_fn, &recs[i], NULL), 0);
  }
  int done = 0;
  uint64_t start = cymg_mgr_now(mgr);
  while (done < NCLIENTS) {
    assert_true(cymg_mgr_poll(mgr, 50) >= 0);
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("only %d clients done", done);
    done = 0;
    for (int i = 0; i < NCLIENTS; i++) done += recs[i].got.len == recs[i].to_send_len;
  }
  for (int i = 0; i < NCLIENTS; i++) {
    assert_memory_equal(recs[i].got.buf, msgs[i], recs[i].to_send_len);
    assert_string_equal(recs[i].err, "");
    cymg_buf_free(&recs[i].got);
  }
  assert_int_equal(server_accepts, NCLIENTS);
  assert_int_equal(cymg_mgr_count(mgr), 2 * NCLIENTS + 1);
  close_all_and_free(mgr);
  assert_int_equal(server_closes, NCLIENTS);
}

/* select: a descriptor at or above FD_SETSIZE is refused with an error on that
 * connection alone (an fd_set cannot hold it), and the manager and the
 * connections below the limit go on. Other backends take it. */
static void test_descriptor_above_fd_setsize(void **state) {
  (void) state;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < FD_SETSIZE + 64) {
    if (rl.rlim_max < FD_SETSIZE + 64) skip();
    rl.rlim_cur = FD_SETSIZE + 64;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn;
  char url[80];
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", echo_fn, NULL, &lsn), 0);
  url_of(lsn, url, sizeof(url));
  client_rec low = {.to_send = "below", .to_send_len = 5};
  assert_int_equal(cymg_connect(mgr, url, client_fn, &low, NULL), 0);
  POLL_UNTIL(mgr, low.got.len == 5);
  /* Fill every descriptor below FD_SETSIZE, so the next socket is above it. */
  int fillers[FD_SETSIZE], nfill = 0;
  for (;;) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    if (fd >= FD_SETSIZE) {
      close(fd);
      break;
    }
    fillers[nfill++] = fd;
  }
  client_rec high = {.to_send = "above", .to_send_len = 5};
  assert_int_equal(cymg_connect(mgr, url, client_fn, &high, NULL), 0);
  if (on_select()) {
    POLL_UNTIL(mgr, high.closed);
    assert_non_null(strstr(high.err, "limit"));
    assert_int_equal(high.got.len, 0);
  } else {
    POLL_UNTIL(mgr, high.got.len == 5);
  }
  for (int i = 0; i < nfill; i++) close(fillers[i]);
  /* The connection below the limit still works. */
  cymg_buf_free(&low.got);
  low.got = (cymg_buf){0};
  cymg_conn *lc = NULL;
  for (cymg_conn *c = cymg_mgr_first(mgr); c; c = cymg_conn_next(c))
    if (cymg_conn_userdata(c) == &low) lc = c;
  assert_non_null(lc);
  assert_int_equal(cymg_send(lc, "again", 5), 0);
  POLL_UNTIL(mgr, low.got.len == 5);
  assert_memory_equal(low.got.buf, "again", 5);
  cymg_buf_free(&low.got);
  cymg_buf_free(&high.got);
  close_all_and_free(mgr);
}

/* ---- drain: every queued byte reaches the peer before the close ---- */

static size_t drain_size;
static void drain_server_fn(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CYMG_EV_ACCEPT) {
    char *big = malloc(drain_size);
    for (size_t i = 0; i < drain_size; i++) big[i] = (char) ('a' + i % 26);
    assert_int_equal(cymg_send(c, big, drain_size), 0);
    free(big);
    cymg_drain(c);
    assert_true(cymg_conn_is_draining(c));
    /* Drain is final: nothing more is taken. */
    assert_int_equal(cymg_send(c, "END", 3), CYMG_ECLOSED);
  }
}

static void test_drain_delivers_everything(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn;
  char url[80];
  drain_size = 8u << 20; /* far beyond socket buffers: most of it is queued */
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", drain_server_fn, NULL, &lsn), 0);
  url_of(lsn, url, sizeof(url));
  client_rec r = {0};
  assert_int_equal(cymg_connect(mgr, url, client_fn, &r, NULL), 0);
  POLL_UNTIL(mgr, r.closed);
  assert_int_equal(r.got.len, drain_size);
  for (size_t i = 0; i < drain_size; i++) {
    if (r.got.buf[i] != (char) ('a' + i % 26)) fail_msg("byte %zu differs", i);
  }
  assert_string_equal(r.err, "");
  cymg_buf_free(&r.got);
  close_all_and_free(mgr);
}

/* ---- backpressure: a handler that does not consume fills the buffer ---- */

static cymg_conn *lazy_conn;
static void lazy_server_fn(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CYMG_EV_ACCEPT) {
    cymg_conn_set_limits(c, 64 * 1024, 0);
    lazy_conn = c;
  }
}

static void test_backpressure(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn, *cl;
  char url[80];
  lazy_conn = NULL;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", lazy_server_fn, NULL, &lsn), 0);
  url_of(lsn, url, sizeof(url));
  /* More than loopback socket buffers can hold (they autotune to several MiB),
   * so some of it must wait in the client's own send buffer. */
  size_t n = 32u << 20;
  char *payload = calloc(1, n);
  client_rec r = {.to_send = payload, .to_send_len = n};
  assert_int_equal(cymg_connect(mgr, url, client_fn, &r, &cl), 0);
  POLL_UNTIL(mgr, lazy_conn && cymg_conn_is_full(lazy_conn));
  assert_int_equal(cymg_conn_recv_len(lazy_conn), 64 * 1024);
  /* Further polls read nothing more: the rest waits in the client's buffer. */
  for (int i = 0; i < 20; i++) cymg_mgr_poll(mgr, 5);
  assert_int_equal(cymg_conn_recv_len(lazy_conn), 64 * 1024);
  assert_true(cymg_conn_send_len(cl) > 0);
  /* Consuming resumes reading, and every byte arrives. */
  size_t total = 0;
  while (total < n) {
    size_t have = cymg_conn_recv_len(lazy_conn);
    total += have;
    cymg_conn_consume(lazy_conn, have);
    if (total < n) POLL_UNTIL(mgr, cymg_conn_recv_len(lazy_conn) > 0);
  }
  assert_int_equal(total, n);
  assert_false(cymg_conn_is_full(lazy_conn));
  free(payload);
  close_all_and_free(mgr);
}

/* ---- closing from inside callbacks ---- */

static int close_at_ev;
static int closes_seen;
static void closer_fn(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (cymg_conn_is_listening(c)) return;
  if (ev == CYMG_EV_CLOSE) {
    closes_seen++;
    return;
  }
  if (ev == close_at_ev) {
    cymg_close(c);
    cymg_close(c); /* idempotent */
    assert_true(cymg_conn_is_closing(c));
    assert_int_equal(cymg_send(c, "x", 1), CYMG_ECLOSED);
  }
}

static void test_close_in_callbacks(void **state) {
  (void) state;
  int evs[] = {CYMG_EV_OPEN, CYMG_EV_ACCEPT, CYMG_EV_READ};
  for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
    cymg_mgr *mgr = new_mgr();
    cymg_conn *lsn;
    char url[80];
    close_at_ev = evs[i];
    closes_seen = 0;
    assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", closer_fn, NULL, &lsn), 0);
    url_of(lsn, url, sizeof(url));
    client_rec r = {.to_send = "data", .to_send_len = 4};
    assert_int_equal(cymg_connect(mgr, url, client_fn, &r, NULL), 0);
    POLL_UNTIL(mgr, r.closed); /* the server's close reaches the client as EOF */
    assert_int_equal(closes_seen, 1);
    assert_int_equal(cymg_mgr_count(mgr), 1);
    close_all_and_free(mgr);
  }
}

/* A connection closed by a timer after it deferred work is still freed cleanly. */
static void close_later(void *arg) { cymg_close(arg); }
static void test_close_after_deferred_write(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn, *cl;
  char url[80];
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", echo_fn, NULL, &lsn), 0);
  url_of(lsn, url, sizeof(url));
  client_rec r = {0};
  assert_int_equal(cymg_connect(mgr, url, client_fn, &r, &cl), 0);
  POLL_UNTIL(mgr, r.connected);
  assert_int_equal(cymg_send(cl, "abc", 3), 0); /* defers a WRITE report */
  cymg_close(cl);
  cymg_mgr_poll(mgr, 0);
  assert_true(r.closed);
  assert_int_equal(cymg_timer_add(mgr, 0, CYMG_TIMER_ONCE, close_later, lsn, NULL), 0);
  POLL_UNTIL(mgr, cymg_mgr_count(mgr) == 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_send_limit(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn, *cl;
  char url[80];
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", lazy_server_fn, NULL, &lsn), 0);
  url_of(lsn, url, sizeof(url));
  client_rec r = {0};
  assert_int_equal(cymg_connect(mgr, url, client_fn, &r, &cl), 0);
  cymg_conn_set_limits(cl, 0, 1000);
  /* Before the connection is up nothing is written, so the limit applies whole. */
  char buf[600] = {0};
  assert_int_equal(cymg_send(cl, buf, 600), 0);
  assert_int_equal(cymg_send(cl, buf, 600), CYMG_ELIMIT);
  assert_int_equal(cymg_conn_send_len(cl), 600);
  assert_int_equal(cymg_send(lsn, "x", 1), CYMG_ESTATE);
  assert_int_equal(cymg_send(cl, NULL, 1), CYMG_EINVAL);
  close_all_and_free(mgr);
}

/* The peer closing while we still owe it data: the data goes out first. */
static bool half_close_done;
static void half_close_server(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CYMG_EV_CLOSE && !cymg_conn_is_listening(c)) half_close_done = true;
  if (ev == CYMG_EV_READ && cymg_conn_recv_len(c) >= 5) {
    cymg_conn_consume(c, cymg_conn_recv_len(c));
    assert_int_equal(cymg_printf(c, "reply %d", 42), 8);
  }
}

static void test_peer_shutdown_gets_reply(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", half_close_server, NULL, &lsn), 0);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(cymg_conn_local(lsn)->port)};
  assert_int_equal(connect(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
  assert_int_equal(send(fd, "hello", 5, 0), 5);
  shutdown(fd, SHUT_WR);
  char buf[64];
  size_t got = 0;
  half_close_done = false;
  POLL_UNTIL(mgr, half_close_done); /* served and closed */
  for (;;) {
    ssize_t n = recv(fd, buf + got, sizeof(buf) - got, MSG_DONTWAIT);
    if (n <= 0) break;
    got += (size_t) n;
  }
  assert_int_equal(got, 8);
  assert_memory_equal(buf, "reply 42", 8);
  close(fd);
  close_all_and_free(mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_echo_1mb),
      cmocka_unit_test(test_ipv6_loopback),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_bad_urls),
      cmocka_unit_test(test_scheme_table),
      cmocka_unit_test(test_address_in_use),
      cmocka_unit_test(test_unresolvable_is_async),
      cmocka_unit_test(test_hosts_file),
      cmocka_unit_test(test_many_clients),
      cmocka_unit_test(test_descriptor_above_fd_setsize),
      cmocka_unit_test(test_drain_delivers_everything),
      cmocka_unit_test(test_backpressure),
      cmocka_unit_test(test_close_in_callbacks),
      cmocka_unit_test(test_close_after_deferred_write),
      cmocka_unit_test(test_send_limit),
      cmocka_unit_test(test_peer_shutdown_gets_reply),
  };
  return cmocka_run_group_tests_name(getenv("CYMG_BACKEND") ? getenv("CYMG_BACKEND") : "tcp",
                                     tests, NULL, NULL);
}
