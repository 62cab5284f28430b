/* TLS between our own client and server over loopback: handshake, echo,
 * versions, key formats, chains, SNI, mutual TLS, resumption, and every
 * failure giving ERROR with OpenSSL's reason while the server keeps serving.
 * Runs on each backend (CYMG_TEST_BACKENDS). */
#include "tls_test.h"

/* tls:// echo server: sends back whatever it reads. */
static void echo_srv(cymg_conn *c, int ev, void *ev_data) {
  peer *p = cymg_conn_userdata(c);
  if (ev == CYMG_EV_TLS_HS && p) {
    peer_note_hs(c, p);
  } else if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c);
    assert_int_equal(cymg_send(c, d.buf, d.len), 0);
    cymg_conn_consume(c, d.len);
  } else if (ev == CYMG_EV_ERROR && p) {
    peer_note_err(p, ev_data);
  }
}

/* Client: sends "hello" at once (before the handshake: it must wait), keeps
 * what comes back. */
static void echo_cli(cymg_conn *c, int ev, void *ev_data) {
  peer *p = cymg_conn_userdata(c);
  if (ev == CYMG_EV_OPEN) {
    p->opened = true;
  } else if (ev == CYMG_EV_CONNECT) {
    assert_int_equal(cymg_send(c, "hello", 5), 0);
  } else if (ev == CYMG_EV_TLS_HS) {
    peer_note_hs(c, p);
  } else if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c);
    size_t n = d.len < sizeof(p->got) - p->len ? d.len : sizeof(p->got) - p->len;
    memcpy(p->got + p->len, d.buf, n);
    p->len += n;
    cymg_conn_consume(c, d.len);
  } else if (ev == CYMG_EV_ERROR) {
    peer_note_err(p, ev_data);
  } else if (ev == CYMG_EV_CLOSE) {
    p->closed = true;
  }
}

static cymg_conn *tls_server(cymg_mgr *mgr, const cymg_tls_opts *o, peer *sp, char *url,
                             size_t url_len) {
  cymg_conn *lsn = NULL;
  assert_int_equal(cymg_listen(mgr, "tls://127.0.0.1:0", echo_srv, sp, &lsn), 0);
  assert_true(cymg_conn_is_tls(lsn));
  if (o) assert_int_equal(cymg_tls_init(lsn, o), 0);
  snprintf(url, url_len, "tls://localhost:%u", cymg_conn_local(lsn)->port);
  return lsn;
}

/* One client with opts against the listener at url; waits for its end or echo. */
static void run_client(cymg_mgr *mgr, const char *url, const cymg_tls_opts *o, peer *cp) {
  memset(cp, 0, sizeof(*cp));
  cymg_conn *c = NULL;
  assert_int_equal(cymg_connect(mgr, url, echo_cli, cp, &c), 0);
  assert_true(cymg_conn_is_tls(c));
  if (o) assert_int_equal(cymg_tls_init(c, o), 0);
  POLL_UNTIL(mgr, cp->closed || cp->len >= 5);
  if (!cp->closed) cymg_close(c);
  POLL_UNTIL(mgr, cp->closed);
}

static cymg_tls_opts srv_opts(const char *crt, const char *key) {
  cymg_tls_opts o = {0};
  o.cert = cymg_str_c(crt);
  o.key = cymg_str_c(key);
  return o;
}

static cymg_tls_opts ca_opts(void) {
  cymg_tls_opts o = {0};
  o.ca = cymg_str_c(cert("ca.crt"));
  return o;
}

static void finish(cymg_mgr *mgr) {
  close_all_and_free(mgr);
  assert_tls_clean();
}

static void test_echo(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  peer sp = {0}, cp;
  char url[64];
  cymg_tls_opts so = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  tls_server(mgr, &so, &sp, url, sizeof(url));
  cymg_tls_opts co = ca_opts();
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.errors, 0);
  assert_true(cp.hs);
  assert_int_equal(cp.len, 5);
  assert_memory_equal(cp.got, "hello", 5);
  assert_string_equal(cp.version, "TLSv1.3");
  assert_string_equal(cp.alpn, ""); /* tls:// carries no ALPN by default */
  assert_true(strstr(cp.subject, "CN=localhost") != NULL);
  assert_true(sp.hs);
  assert_string_equal(sp.subject, ""); /* no client certificate */
  finish(mgr);
}

/* Every key format and both key types; TLS 1.2 and 1.3; PEM text as well as
 * paths. */
static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  static char bufs[2][16384];
  static int i;
  char *b = bufs[i++ % 2];
  size_t n = fread(b, 1, sizeof(bufs[0]) - 1, f);
  b[n] = '\0';
  fclose(f);
  return b;
}

static void test_key_formats(void **state) {
  (void) state;
  static const char *const pairs[][3] = {
      {"server-rsa.crt", "server-rsa.key", ""},      {"server-rsa.crt", "server-rsa.pkcs1.key", ""},
      {"server-rsa.crt", "server-rsa.enc.key", "secret"}, {"server-ec.crt", "server-ec.key", ""},
      {"server-ec.crt", "server-ec.sec1.key", ""},   {"server-ec.crt", "server-ec.enc.key", "secret"},
      {"chain.crt", "chain.key", ""},
  };
  for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
    for (int ver = 0; ver < 2; ver++) {
      for (int text = 0; text < 2; text++) {
        cymg_mgr *mgr = new_mgr();
        peer sp = {0}, cp;
        char url[64];
        cymg_tls_opts so = srv_opts(cert(pairs[i][0]), cert(pairs[i][1]));
        if (text) {
          so.cert = cymg_str_c(slurp(cert(pairs[i][0])));
          so.key = cymg_str_c(slurp(cert(pairs[i][1])));
        }
        so.key_password = cymg_str_c(pairs[i][2]);
        tls_server(mgr, &so, &sp, url, sizeof(url));
        cymg_tls_opts co = ca_opts();
        co.min_version = ver ? CYMG_TLS_1_3 : CYMG_TLS_DEFAULT;
        co.ciphers = cymg_str_c(ver ? "" : "DEFAULT");
        run_client(mgr, url, &co, &cp);
        if (cp.errors) fail_msg("%s/%s: %s", pairs[i][0], pairs[i][1], cp.err);
        assert_int_equal(cp.len, 5);
        assert_string_equal(cp.version, "TLSv1.3");
        finish(mgr);
      }
    }
  }
}

/* Bad material is refused at once with OpenSSL's reason; on a listener every
 * connection then fails with it and the listener stays. */
static void test_bad_material(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  peer sp = {0}, cp;
  char url[64];
  cymg_conn *lsn = tls_server(mgr, NULL, &sp, url, sizeof(url));
  cymg_tls_opts bad = srv_opts(cert("server-ec.crt"), cert("server-rsa.key"));
  assert_int_equal(cymg_tls_init(lsn, &bad), CYMG_ETLS);
  assert_true(strstr(cymg_mgr_errmsg(mgr), "key type mismatch") != NULL);
  bad = srv_opts(cert("server-ec.crt"), cert("alt.key"));
  assert_int_equal(cymg_tls_init(lsn, &bad), CYMG_ETLS);
  assert_true(strstr(cymg_mgr_errmsg(mgr), "key values mismatch") != NULL);
  cymg_tls_opts co = ca_opts();
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.errors, 1);
  assert_int_equal(sp.errors, 1);
  assert_true(strstr(sp.err, "key values mismatch") != NULL);
  /* Truncated certificate text. */
  char trunc[300];
  snprintf(trunc, sizeof(trunc), "%.200s", slurp(cert("server-ec.crt")));
  cymg_tls_opts t2 = srv_opts(trunc, cert("server-ec.key"));
  assert_int_equal(cymg_tls_init(lsn, &t2), CYMG_ETLS);
  cymg_tls_opts t3 = srv_opts("/nonexistent/x.pem", cert("server-ec.key"));
  assert_int_equal(cymg_tls_init(lsn, &t3), CYMG_ETLS);
  assert_true(strstr(cymg_mgr_errmsg(mgr), "cannot read") != NULL);
  cymg_tls_opts t4 = srv_opts(cert("server-ec.crt"), cert("server-ec.enc.key"));
  t4.key_password = cymg_str_c("wrong");
  assert_int_equal(cymg_tls_init(lsn, &t4), CYMG_ETLS);
  /* Good options afterwards: it serves. */
  cymg_tls_free(lsn);
  assert_true(cymg_conn_is_tls(lsn));
  cymg_tls_opts good = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  assert_int_equal(cymg_tls_init(lsn, &good), 0);
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.errors, 0);
  assert_int_equal(cp.len, 5);
  finish(mgr);
}

/* A TLS listener whose connection has no certificate by the end of ACCEPT
 * fails it: never plain text. */
static void test_no_certificate(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  peer sp = {0}, cp;
  char url[64];
  tls_server(mgr, NULL, &sp, url, sizeof(url));
  cymg_tls_opts co = ca_opts();
  run_client(mgr, url, &co, &cp);
  assert_int_equal(sp.errors, 1);
  assert_string_equal(sp.err, "TLS: no certificate");
  assert_int_equal(cp.errors, 1);
  assert_int_equal(cp.len, 0);
  finish(mgr);
}

/* Client-side verification failures: each a clear ERROR, the server goes on. */
static void test_verify_failures(void **state) {
  (void) state;
  static const char *const cases[][3] = {
      {"wrong.crt", "wrong.key", "hostname mismatch"},
      {"expired.crt", "expired.key", "certificate has expired"},
      {"self.crt", "self.key", "self-signed certificate"},
      {"untrusted.crt", "untrusted.key", "unable to get local issuer certificate"},
  };
  cymg_mgr *mgr = new_mgr();
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    peer sp = {0}, cp;
    char url[64];
    cymg_tls_opts so = srv_opts(cert(cases[i][0]), cert(cases[i][1]));
    cymg_conn *lsn = tls_server(mgr, &so, &sp, url, sizeof(url));
    cymg_tls_opts co = ca_opts();
    run_client(mgr, url, &co, &cp);
    assert_int_equal(cp.errors, 1);
    if (strstr(cp.err, "certificate verify failed") == NULL || strstr(cp.err, cases[i][2]) == NULL)
      fail_msg("%s: %s", cases[i][0], cp.err);
    assert_int_equal(cp.len, 0);
    /* The same server still serves a client that skips verification. */
    cymg_tls_opts skip = {0};
    skip.skip_verification = true;
    run_client(mgr, url, &skip, &cp);
    assert_int_equal(cp.errors, 0);
    assert_int_equal(cp.len, 5);
    cymg_close(lsn);
  }
  /* Default options: the system store does not know our CA. */
  peer sp = {0}, cp;
  char url[64];
  cymg_tls_opts so = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  tls_server(mgr, &so, &sp, url, sizeof(url));
  run_client(mgr, url, NULL, &cp);
  assert_int_equal(cp.errors, 1);
  assert_true(strstr(cp.err, "unable to get local issuer certificate") != NULL);
  /* An IP literal is checked against the certificate's IP SANs. */
  char ipurl[64];
  snprintf(ipurl, sizeof(ipurl), "tls://127.0.0.1:%s", strrchr(url, ':') + 1);
  cymg_tls_opts co = ca_opts();
  run_client(mgr, ipurl, &co, &cp);
  assert_int_equal(cp.errors, 0);
  assert_int_equal(cp.len, 5);
  co.name = cymg_str_c("10.1.2.3");
  run_client(mgr, ipurl, &co, &cp);
  assert_int_equal(cp.errors, 1);
  assert_true(strstr(cp.err, "IP address mismatch") != NULL);
  finish(mgr);
}

/* SNI picks the certificate; mutual TLS required and missing. */
static void test_sni_and_mtls(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  peer sp = {0}, cp;
  char url[64];
  cymg_tls_cert extra[] = {{cymg_str_c(cert("alt.crt")), cymg_str_c(cert("alt.key")), {0}}};
  cymg_tls_opts so = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  so.sni_certs = extra;
  so.sni_count = 1;
  tls_server(mgr, &so, &sp, url, sizeof(url));
  cymg_tls_opts co = ca_opts();
  co.name = cymg_str_c("alt.example");
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.errors, 0);
  assert_true(strstr(cp.subject, "CN=alt.example") != NULL);
  co.name = cymg_str_c("localhost");
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.errors, 0);
  assert_true(strstr(cp.subject, "CN=localhost") != NULL);

  /* Mutual TLS: the server given a CA requires a client certificate. */
  peer mp = {0};
  so = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  so.ca = cymg_str_c(cert("ca.crt"));
  tls_server(mgr, &so, &mp, url, sizeof(url));
  co = ca_opts();
  co.cert = cymg_str_c(cert("client.crt"));
  co.key = cymg_str_c(cert("client.key"));
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.errors, 0);
  assert_int_equal(cp.len, 5);
  assert_true(strstr(mp.subject, "CN=test-client") != NULL);
  assert_int_equal(mp.errors, 0);
  /* Missing: the server fails the handshake. */
  co = ca_opts();
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.len, 0);
  assert_int_equal(mp.errors, 1);
  assert_true(strstr(mp.err, "peer did not return a certificate") != NULL);
  /* Signed by a CA the server does not trust. */
  co.cert = cymg_str_c(cert("other-client.crt"));
  co.key = cymg_str_c(cert("other-client.key"));
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.len, 0);
  assert_int_equal(mp.errors, 2);
  assert_true(strstr(mp.err, "certificate verify failed") != NULL);
  finish(mgr);
}

/* The manager's client session cache: the second connection resumes. */
static void test_resumption(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  peer sp = {0}, cp;
  char url[64];
  cymg_tls_opts so = srv_opts(cert("server-rsa.crt"), cert("server-rsa.key"));
  tls_server(mgr, &so, &sp, url, sizeof(url));
  cymg_tls_opts co = ca_opts();
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.errors, 0);
  assert_false(cp.resumed);
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.errors, 0);
  assert_true(cp.resumed);
  assert_int_equal(cp.len, 5);
  finish(mgr);
}

/* A peer that stops mid-handshake times out; garbage instead of a ClientHello
 * and a plain client on a TLS port fail; a TLS client on a plain port fails;
 * a peer closing without close_notify is an error. The server serves on. */
static void test_broken_peers(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_mgr_set_tls_handshake_timeout(mgr, 300);
  peer sp = {0}, cp;
  char url[64];
  cymg_tls_opts so = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  cymg_conn *lsn = tls_server(mgr, &so, &sp, url, sizeof(url));
  uint16_t port = cymg_conn_local(lsn)->port;

  int fd = raw_connect(port); /* says nothing */
  POLL_UNTIL(mgr, sp.errors == 1);
  assert_true(strstr(sp.err, "timed out") != NULL);
  assert_true(raw_wait_closed(mgr, fd));
  close(fd);

  fd = raw_connect(port);
  raw_send(mgr, fd, "\x16\x03\x01\x00\x05garbage-garbage-garbage", 29);
  POLL_UNTIL(mgr, sp.errors == 2);
  assert_true(strstr(sp.err, "TLS handshake: ") != NULL);
  assert_true(raw_wait_closed(mgr, fd));
  close(fd);

  fd = raw_connect(port);
  raw_send(mgr, fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
  POLL_UNTIL(mgr, sp.errors == 3);
  assert_true(strstr(sp.err, "http request") != NULL || strstr(sp.err, "wrong version") != NULL);
  char buf[256];
  bool closed;
  size_t n = raw_read(mgr, fd, buf, sizeof(buf), 0, &closed);
  assert_true(closed);
  assert_true(n == 0 || buf[0] == 0x15); /* an alert at most, never plain text */
  close(fd);

  /* TLS client on a plain port. */
  cymg_conn *plain = NULL;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", echo_srv, NULL, &plain), 0);
  char purl[64];
  snprintf(purl, sizeof(purl), "tls://localhost:%u", cymg_conn_local(plain)->port);
  cymg_tls_opts co = ca_opts();
  run_client(mgr, purl, &co, &cp);
  assert_int_equal(cp.errors, 1);
  assert_true(strstr(cp.err, "TLS handshake: ") != NULL);

  /* Still serving. */
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.errors, 0);
  assert_int_equal(cp.len, 5);
  finish(mgr);
}

/* A peer that closes the TCP connection without close_notify: the other side
 * sees an ERROR (a truncation), not an orderly end. */
static void hs_then_close(cymg_conn *c, int ev, void *ev_data) {
  peer *p = cymg_conn_userdata(c);
  if (ev == CYMG_EV_TLS_HS) {
    peer_note_hs(c, p);
    shutdown(cymg_conn_fd(c), SHUT_RDWR); /* no close_notify */
  } else if (ev == CYMG_EV_ERROR) {
    peer_note_err(p, ev_data);
  } else if (ev == CYMG_EV_CLOSE) {
    p->closed = true;
  }
}

static void test_no_close_notify(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  peer sp = {0}, cp = {0};
  char url[64];
  cymg_tls_opts so = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  tls_server(mgr, &so, &sp, url, sizeof(url));
  cymg_tls_opts co = ca_opts();
  cymg_conn *c = NULL;
  assert_int_equal(cymg_connect(mgr, url, hs_then_close, &cp, &c), 0);
  assert_int_equal(cymg_tls_init(c, &co), 0);
  POLL_UNTIL(mgr, sp.errors == 1);
  assert_true(strstr(sp.err, "unexpected eof") != NULL);
  POLL_UNTIL(mgr, cp.closed);
  /* An orderly close (close_notify) is no error. */
  run_client(mgr, url, &co, &cp);
  assert_int_equal(cp.errors, 0);
  finish(mgr);
  assert_int_equal(sp.errors, 1);
}

/* Bulk both ways: 8 MiB echoed, bytes buffered inside OpenSSL never stall. */
typedef struct {
  size_t sent, got, total;
  bool bad, closed;
  int errors;
} bulk;

static void bulk_cli(cymg_conn *c, int ev, void *ev_data) {
  bulk *b = cymg_conn_userdata(c);
  if (ev == CYMG_EV_TLS_HS || ev == CYMG_EV_WRITE) {
    while (b->sent < b->total && cymg_conn_send_len(c) < 262144) {
      char chunk[8192];
      for (size_t i = 0; i < sizeof(chunk); i++) chunk[i] = (char) ((b->sent + i) * 7);
      size_t n = b->total - b->sent < sizeof(chunk) ? b->total - b->sent : sizeof(chunk);
      assert_int_equal(cymg_send(c, chunk, n), 0);
      b->sent += n;
    }
  } else if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c);
    for (size_t i = 0; i < d.len; i++)
      if (d.buf[i] != (char) ((b->got + i) * 7)) b->bad = true;
    b->got += d.len;
    cymg_conn_consume(c, d.len);
    if (b->got == b->total) cymg_close(c);
  } else if (ev == CYMG_EV_ERROR) {
    b->errors++;
  } else if (ev == CYMG_EV_CLOSE) {
    b->closed = true;
  }
  (void) ev_data;
}

static void test_bulk_echo(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  peer sp = {0};
  char url[64];
  cymg_tls_opts so = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  tls_server(mgr, &so, &sp, url, sizeof(url));
  cymg_tls_opts co = ca_opts();
  bulk b = {0, 0, 8u << 20, false, false, 0};
  cymg_conn *c = NULL;
  assert_int_equal(cymg_connect(mgr, url, bulk_cli, &b, &c), 0);
  assert_int_equal(cymg_tls_init(c, &co), 0);
  /* Small receive buffers: reading stops often with records inside OpenSSL. */
  cymg_conn_set_limits(c, 3000, 0);
  POLL_UNTIL(mgr, b.closed);
  assert_int_equal(b.errors, 0);
  assert_false(b.bad);
  assert_int_equal(b.got, b.total);
  finish(mgr);
}

/* A plain relay between a TLS client and server that passes the client's
 * bytes on a piece at a time, one piece per poll: the server keeps finding
 * incomplete records, which OpenSSL holds (SSL_has_pending) until the rest
 * comes. Reading them must wait for the socket: a deferred read that found
 * nothing new would run again in the same dispatch pass, for ever. */
typedef struct {
  char up_url[64];
  cymg_conn *down, *up;
  bool up_ready;
  size_t piece, passed;
} relay;

static void relay_up(cymg_conn *c, int ev, void *ev_data) {
  relay *r = cymg_conn_userdata(c);
  (void) ev_data;
  if (ev == CYMG_EV_CONNECT) {
    r->up_ready = true;
  } else if (ev == CYMG_EV_READ && r->down) {
    cymg_str d = cymg_conn_recv_data(c);
    assert_int_equal(cymg_send(r->down, d.buf, d.len), 0);
    cymg_conn_consume(c, d.len);
  } else if (ev == CYMG_EV_CLOSE) {
    r->up = NULL;
    if (r->down) cymg_close(r->down);
  }
}

static void relay_down(cymg_conn *c, int ev, void *ev_data) {
  relay *r = cymg_conn_userdata(c);
  (void) ev_data;
  if (ev == CYMG_EV_ACCEPT) {
    r->down = c;
    assert_int_equal(cymg_connect(cymg_conn_mgr(c), r->up_url, relay_up, r, &r->up), 0);
    cymg_conn_set_poll(c, true);
  } else if (ev == CYMG_EV_POLL && r->up_ready && r->up) {
    cymg_str d = cymg_conn_recv_data(c);
    size_t n = d.len < r->piece ? d.len : r->piece;
    if (n == 0) return;
    assert_int_equal(cymg_send(r->up, d.buf, n), 0);
    cymg_conn_consume(c, n);
    r->passed += n;
  } else if (ev == CYMG_EV_CLOSE && c == r->down) {
    r->down = NULL;
    if (r->up) cymg_close(r->up);
  }
}

static void test_split_records(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  peer sp = {0};
  char url[64];
  cymg_tls_opts so = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  cymg_conn *lsn = tls_server(mgr, &so, &sp, url, sizeof(url));
  relay r = {.piece = 500};
  snprintf(r.up_url, sizeof(r.up_url), "tcp://127.0.0.1:%u", cymg_conn_local(lsn)->port);
  cymg_conn *rl = NULL;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", relay_down, &r, &rl), 0);
  snprintf(url, sizeof(url), "tls://localhost:%u", cymg_conn_local(rl)->port);
  cymg_tls_opts co = ca_opts();
  bulk b = {0, 0, 64u << 10, false, false, 0}; /* records of 8 KiB, in pieces of 500 B */
  cymg_conn *c = NULL;
  assert_int_equal(cymg_connect(mgr, url, bulk_cli, &b, &c), 0);
  assert_int_equal(cymg_tls_init(c, &co), 0);
  uint64_t start = cymg_mgr_now(mgr);
  while (!b.closed) {
    assert_true(cymg_mgr_poll(mgr, 1) >= 0);
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS)
      fail_msg("relay: %zu of %zu echoed", b.got, b.total);
  }
  assert_int_equal(b.errors + sp.errors, 0);
  assert_false(b.bad);
  assert_int_equal(b.got, b.total);
  assert_true(r.passed > b.total); /* all of it went through the relay */
  finish(mgr);
}

/* TLS on plain tcp:// connections: the server turns it on in ACCEPT and
 * greets at once (kept until the handshake is done), the client in CONNECT. */
static cymg_tls_opts starttls_srv;
static void greet_srv(cymg_conn *c, int ev, void *ev_data) {
  peer *p = cymg_conn_userdata(c);
  if (ev == CYMG_EV_ACCEPT) {
    assert_int_equal(cymg_tls_init(c, &starttls_srv), 0);
    assert_true(cymg_conn_is_tls(c));
    assert_int_equal(cymg_send(c, "greet", 5), 0);
  } else if (ev == CYMG_EV_TLS_HS) {
    peer_note_hs(c, p);
  } else if (ev == CYMG_EV_ERROR) {
    peer_note_err(p, ev_data);
  }
}

static const char *greet_name; /* NULL: the address connected to is checked */
static void greet_cli(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_CONNECT) {
    cymg_tls_opts o = {0};
    o.ca = cymg_str_c(cert("ca.crt"));
    if (greet_name) o.name = cymg_str_c(greet_name);
    assert_int_equal(cymg_tls_init(c, &o), 0);
    return;
  }
  echo_cli(c, ev, ev_data);
}

static void test_tls_on_plain(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  starttls_srv = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  peer sp = {0}, cp = {0};
  cymg_conn *lsn = NULL;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", greet_srv, &sp, &lsn), 0);
  assert_false(cymg_conn_is_tls(lsn));
  char url[96];
  url_of(lsn, url, sizeof(url));
  static const char *const names[] = {"localhost", NULL, "wrong.example"};
  for (int i = 0; i < 3; i++) {
    greet_name = names[i];
    memset(&cp, 0, sizeof(cp));
    cymg_conn *c = NULL;
    assert_int_equal(cymg_connect(mgr, url, greet_cli, &cp, &c), 0);
    assert_false(cymg_conn_is_tls(c));
    POLL_UNTIL(mgr, cp.len >= 5 || cp.closed);
    if (i == 2) { /* the certificate does not name it */
      assert_int_equal(cp.errors, 1);
      assert_true(strstr(cp.err, "hostname mismatch") != NULL);
      continue;
    }
    assert_int_equal(cp.errors, 0);
    assert_memory_equal(cp.got, "greet", 5);
    assert_true(cp.hs && sp.hs);
    assert_true(cymg_conn_is_tls(c));
    /* Options cannot change once the handshake started. */
    cymg_tls_opts o = {0};
    assert_int_equal(cymg_tls_init(c, &o), CYMG_ESTATE);
    cymg_close(c);
    POLL_UNTIL(mgr, cp.closed);
  }
  finish(mgr);
}

/* STARTTLS: the server turns TLS on when it reads the command. Bytes that came
 * in the clear behind it (here "EXTRA", in the same segment) are refused with
 * a clear error, never fed to TLS nor taken as protected; the check runs once
 * the handler returned (it consumes the command after cymg_tls_init), so only
 * the 5 bytes count. A client that waits for the answer gets its handshake. */
static void starttls_srv_fn(cymg_conn *c, int ev, void *ev_data) {
  peer *p = cymg_conn_userdata(c);
  if (ev == CYMG_EV_READ && !cymg_conn_is_tls(c)) {
    cymg_str d = cymg_conn_recv_data(c);
    if (d.len < 10 || memcmp(d.buf, "STARTTLS\r\n", 10) != 0) return;
    if (d.len == 10) { /* a well-behaved peer: answer in the clear, then TLS */
      assert_int_equal(cymg_send(c, "GO\r\n", 4), 0);
      cymg_conn_consume(c, 10);
      return;
    }
    assert_int_equal(cymg_tls_init(c, &starttls_srv), 0);
    cymg_conn_consume(c, 10);
  } else if (ev == CYMG_EV_WRITE && !cymg_conn_is_tls(c)) {
    assert_int_equal(cymg_tls_init(c, &starttls_srv), 0); /* "GO" has left */
  } else if (ev == CYMG_EV_TLS_HS) {
    peer_note_hs(c, p);
  } else if (ev == CYMG_EV_ERROR) {
    peer_note_err(p, ev_data);
  }
}

static bool starttls_extra;
static void starttls_cli_fn(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_CONNECT) {
    const char *cmd = starttls_extra ? "STARTTLS\r\nEXTRA" : "STARTTLS\r\n";
    assert_int_equal(cymg_send(c, cmd, strlen(cmd)), 0);
  } else if (ev == CYMG_EV_READ && !cymg_conn_is_tls(c)) {
    cymg_str d = cymg_conn_recv_data(c);
    if (d.len < 4) return;
    assert_memory_equal(d.buf, "GO\r\n", 4);
    cymg_conn_consume(c, 4);
    cymg_tls_opts o = ca_opts();
    o.name = cymg_str_c("localhost");
    assert_int_equal(cymg_tls_init(c, &o), 0);
  } else {
    echo_cli(c, ev, ev_data);
  }
}

static void test_starttls_early_bytes(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  starttls_srv = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  peer sp = {0}, cp = {0};
  cymg_conn *lsn = NULL;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", starttls_srv_fn, &sp, &lsn), 0);
  char url[96];
  url_of(lsn, url, sizeof(url));
  for (int i = 0; i < 2; i++) {
    starttls_extra = i == 0;
    memset(&sp, 0, sizeof(sp));
    memset(&cp, 0, sizeof(cp));
    cymg_conn *c = NULL;
    assert_int_equal(cymg_connect(mgr, url, starttls_cli_fn, &cp, &c), 0);
    if (starttls_extra) {
      POLL_UNTIL(mgr, cp.closed);
      assert_int_equal(sp.errors, 1);
      assert_true(strstr(sp.err, "5 bytes arrived in the clear before the handshake") != NULL);
      assert_false(sp.hs);
      continue;
    }
    POLL_UNTIL(mgr, cp.hs && sp.hs);
    assert_int_equal(sp.errors + cp.errors, 0);
    cymg_close(c);
    POLL_UNTIL(mgr, cp.closed);
  }
  finish(mgr);
}

/* TLS is for TCP: on a UDP connection a clear reason, not just EINVAL. */
static void test_udp_refused(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *u = NULL;
  assert_int_equal(cymg_listen(mgr, "udp://127.0.0.1:0", echo_srv, NULL, &u), 0);
  cymg_tls_opts o = srv_opts(cert("server-ec.crt"), cert("server-ec.key"));
  assert_int_equal(cymg_tls_init(u, &o), CYMG_EINVAL);
  assert_string_equal(cymg_mgr_errmsg(mgr), "TLS needs a TCP connection, not UDP");
  assert_false(cymg_conn_is_tls(u));
  finish(mgr);
}

int main(void) {
  /* CYMG_TEST_BACKENDS: registered once per backend. */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_echo),           cmocka_unit_test(test_key_formats),
      cmocka_unit_test(test_bad_material),   cmocka_unit_test(test_no_certificate),
      cmocka_unit_test(test_verify_failures), cmocka_unit_test(test_sni_and_mtls),
      cmocka_unit_test(test_resumption),     cmocka_unit_test(test_broken_peers),
      cmocka_unit_test(test_no_close_notify), cmocka_unit_test(test_bulk_echo),
      cmocka_unit_test(test_split_records),
      cmocka_unit_test(test_tls_on_plain),   cmocka_unit_test(test_starttls_early_bytes),
      cmocka_unit_test(test_udp_refused),
  };
  return cmocka_run_group_tests(tests, tls_certs_setup, NULL);
}
