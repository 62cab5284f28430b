/* HTTPS and WSS over our TLS transport against real peers: curl (CA, client
 * certificates, TLS 1.2 and 1.3), openssl s_client against our server, our
 * client against openssl s_server; bodies from 0 B to 16 MiB, pipelined
 * requests, a ~100 MB static file compared byte for byte, wss between our own
 * client and server. Runs on each backend (CYMG_TEST_BACKENDS). */
#include "tls_test.h"

static char files_dir[1200];

static unsigned char pat(uint64_t i) { return (unsigned char) ((i * 2654435761u) >> 13); }

/* https server: "/" says hello, "/big?n=N" sends N patterned bytes, "/who"
 * names the client certificate, "/files/..." serves files_dir. */
static void https_fn(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_HTTP_MSG) {
    cymg_http_msg *m = ev_data;
    if (cymg_str_starts(m->uri, cymg_str_c("/big"))) {
      char n[32];
      assert_true(cymg_http_query_var(m, "n", n, sizeof(n)) >= 0);
      size_t len = (size_t) strtoull(n, NULL, 10);
      char *b = malloc(len + 1);
      for (size_t i = 0; i < len; i++) b[i] = (char) pat(i);
      assert_int_equal(cymg_http_reply_data(c, 200, "", b, len), 0);
      free(b);
    } else if (cymg_str_starts(m->uri, cymg_str_c("/who"))) {
      cymg_str s = cymg_tls_peer_subject(c), a = cymg_tls_alpn(c);
      assert_int_equal(cymg_http_reply(c, 200, "", "%.*s|%.*s", (int) s.len, s.buf, (int) a.len,
                                       a.buf), 0);
    } else if (cymg_str_starts(m->uri, cymg_str_c("/files/"))) {
      cymg_http_serve_opts o = {0};
      o.root_dir = files_dir;
      cymg_http_msg sub = *m;
      sub.uri.buf += 6;
      sub.uri.len -= 6;
      assert_int_equal(cymg_http_serve_dir(c, &sub, &o), 0);
    } else {
      assert_int_equal(cymg_http_reply(c, 200, "", "hello %.*s", (int) m->uri.len, m->uri.buf), 0);
    }
  }
}

static cymg_conn *https_server(cymg_mgr *mgr, bool mtls, uint16_t *port) {
  cymg_conn *lsn = NULL;
  assert_int_equal(cymg_http_listen(mgr, "https://127.0.0.1:0", https_fn, NULL, &lsn), 0);
  cymg_tls_opts o = {0};
  o.cert = cymg_str_c(cert("server-rsa.crt"));
  o.key = cymg_str_c(cert("server-rsa.key"));
  if (mtls) o.ca = cymg_str_c(cert("ca.crt"));
  assert_int_equal(cymg_tls_init(lsn, &o), 0);
  *port = cymg_conn_local(lsn)->port;
  return lsn;
}

static void finish(cymg_mgr *mgr) {
  close_all_and_free(mgr);
  assert_tls_clean();
}

static void test_curl(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  uint16_t port;
  https_server(mgr, false, &port);
  char url[96], out[4096];
  snprintf(url, sizeof(url), "https://localhost:%u/x", port);
  const char *v12[] = {"--cacert", cert("ca.crt"), "--tlsv1.2", "--tls-max", "1.2", url, NULL};
  int rc = run_curl(mgr, out, sizeof(out), v12);
  if (rc < 0) skip();
  assert_int_equal(rc, 0);
  assert_string_equal(out, "hello /x");
  const char *v13[] = {"--cacert", cert("ca.crt"), "--tlsv1.3", url, NULL};
  assert_int_equal(run_curl(mgr, out, sizeof(out), v13), 0);
  assert_string_equal(out, "hello /x");
  snprintf(url, sizeof(url), "https://localhost:%u/who", port);
  const char *who[] = {"--cacert", cert("ca.crt"), url, NULL};
  assert_int_equal(run_curl(mgr, out, sizeof(out), who), 0);
  assert_string_equal(out, "|http/1.1"); /* no client certificate; ALPN http/1.1 */
  /* curl without our CA refuses the server (exit 60), and the server goes on. */
  const char *noca[] = {url, NULL};
  assert_int_equal(run_curl(mgr, out, sizeof(out), noca), 60);
  assert_int_equal(run_curl(mgr, out, sizeof(out), who), 0);
  finish(mgr);
}

static void test_curl_client_cert(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  uint16_t port;
  https_server(mgr, true, &port);
  char url[96], out[4096];
  snprintf(url, sizeof(url), "https://localhost:%u/who", port);
  const char *with[] = {"--cacert", cert("ca.crt"), "--cert", cert("client.crt"), "--key",
                        cert("client.key"), url, NULL};
  int rc = run_curl(mgr, out, sizeof(out), with);
  if (rc < 0) skip();
  assert_int_equal(rc, 0);
  assert_string_equal(out, "CN=test-client|http/1.1");
  const char *without[] = {"--cacert", cert("ca.crt"), url, NULL};
  assert_int_not_equal(run_curl(mgr, out, sizeof(out), without), 0);
  assert_int_equal(run_curl(mgr, out, sizeof(out), with), 0);
  finish(mgr);
}

/* Response bodies from 0 B to 16 MiB, each checked byte for byte. */
static void check_pattern_file(const char *path, size_t len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  size_t i = 0;
  int ch;
  while ((ch = fgetc(f)) != EOF) {
    if ((unsigned char) ch != pat(i)) fail_msg("byte %zu differs", i);
    i++;
  }
  fclose(f);
  assert_int_equal(i, len);
}

static void test_bodies(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  uint16_t port;
  https_server(mgr, false, &port);
  static const size_t sizes[] = {0, 1, 16383, 16384, 16385, 100000, 1u << 20, 16u << 20};
  char path[1300];
  snprintf(path, sizeof(path), "%s/body-%d.bin", tls_dir, (int) getpid());
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    char url[96], out[256];
    snprintf(url, sizeof(url), "https://localhost:%u/big?n=%zu", port, sizes[i]);
    const char *args[] = {"--cacert", cert("ca.crt"), "-o", path, url, NULL};
    int rc = run_curl(mgr, out, sizeof(out), args);
    if (rc < 0) skip();
    assert_int_equal(rc, 0);
    check_pattern_file(path, sizes[i]);
  }
  unlink(path);
  finish(mgr);
}

/* openssl s_client against our server: pipelined requests in one write. */
static void test_s_client_pipelined(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  uint16_t port;
  https_server(mgr, false, &port);
  for (int v = 0; v < 2; v++) {
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    char *argv[] = {"openssl", "s_client", "-connect", addr, "-CAfile", (char *) cert("ca.crt"),
                    "-verify_return_error", "-quiet", "-servername", "localhost",
                    v ? "-tls1_3" : "-tls1_2", NULL};
    child ch;
    child_start(&ch, "/usr/bin/openssl", argv);
    const char req[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(ch.in, req, sizeof(req) - 1), (ssize_t) sizeof(req) - 1);
    assert_true(child_wait_for(mgr, &ch, "hello /c"));
    assert_true(strstr(ch.buf, "hello /a") < strstr(ch.buf, "hello /b"));
    assert_true(strstr(ch.buf, "hello /b") < strstr(ch.buf, "hello /c"));
    child_end(mgr, &ch, false);
  }
  finish(mgr);
}

/* Resumption by tickets with the server's session cache off, in TLS 1.2 as in
 * 1.3: openssl s_client saves its session, the second run offers it and says
 * "Reused". */
static void test_s_client_resumes(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  uint16_t port;
  https_server(mgr, false, &port);
  for (int v = 0; v < 2; v++) {
    char addr[64], sess[1200];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    char name[64]; /* per process: the backends' runs share the directory */
    snprintf(name, sizeof(name), "sess%d-%ld.pem", v ? 13 : 12, (long) getpid());
    snprintf(sess, sizeof(sess), "%s", cert(name));
    for (int run = 0; run < 2; run++) {
      char *argv[] = {"openssl", "s_client", "-connect", addr, "-CAfile", (char *) cert("ca.crt"),
                      "-verify_return_error", "-servername", "localhost",
                      v ? "-tls1_3" : "-tls1_2", run ? "-sess_in" : "-sess_out", sess, NULL};
      child ch;
      child_start(&ch, "/usr/bin/openssl", argv);
      const char req[] = "GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      assert_int_equal(write(ch.in, req, sizeof(req) - 1), (ssize_t) sizeof(req) - 1);
      assert_true(child_wait_for(mgr, &ch, "hello /r"));
      child_end(mgr, &ch, false);
      const char *want = run ? "Reused, TLSv1." : "New, TLSv1.";
      if (strstr(ch.buf, want) == NULL) fail_msg("no '%s' in: %s", want, ch.buf);
    }
    unlink(sess);
  }
  finish(mgr);
}

/* Our HTTPS client against openssl s_server -www, TLS 1.2 and 1.3. */
typedef struct {
  int status;
  bool closed, hs;
  int errors;
  char body[8192], version[32], err[256];
} resp;

static void client_fn(cymg_conn *c, int ev, void *ev_data) {
  resp *r = cymg_conn_userdata(c);
  if (ev == CYMG_EV_TLS_HS) {
    r->hs = true;
    cymg_str v = cymg_tls_version(c);
    snprintf(r->version, sizeof(r->version), "%.*s", (int) v.len, v.buf);
  } else if (ev == CYMG_EV_HTTP_MSG) {
    cymg_http_msg *m = ev_data;
    r->status = m->status;
    snprintf(r->body, sizeof(r->body), "%.*s", (int) m->body.len, m->body.buf);
    cymg_close(c);
  } else if (ev == CYMG_EV_ERROR) {
    r->errors++;
    snprintf(r->err, sizeof(r->err), "%s", (const char *) ev_data);
  } else if (ev == CYMG_EV_CLOSE) {
    r->closed = true;
  }
}

static void test_s_server(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  for (int v = 0; v < 2; v++) {
    uint16_t port = free_port();
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", port);
    char *argv[] = {"openssl", "s_server", "-accept", ps, "-cert", (char *) cert("server-ec.crt"),
                    "-key", (char *) cert("server-ec.key"), "-www", v ? "-tls1_3" : "-tls1_2",
                    NULL};
    child ch;
    child_start(&ch, "/usr/bin/openssl", argv);
    wait_port(mgr, port);
    char url[96];
    snprintf(url, sizeof(url), "https://localhost:%u/", port);
    resp r = {0};
    cymg_conn *c = NULL;
    assert_int_equal(cymg_http_connect(mgr, url, client_fn, &r, &c), 0);
    cymg_tls_opts o = {0};
    o.ca = cymg_str_c(cert("ca.crt"));
    assert_int_equal(cymg_tls_init(c, &o), 0);
    assert_int_equal(cymg_http_request(c, "GET", "/", NULL, NULL, 0), 0);
    POLL_UNTIL(mgr, r.closed);
    if (r.errors) fail_msg("%s", r.err);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.version, v ? "TLSv1.3" : "TLSv1.2");
    child_end(mgr, &ch, true);
  }
  finish(mgr);
}

/* A static file of ~100 MB over TLS (read + SSL_write through the pump),
 * compared byte for byte. */
static void test_static_100mb(void **state) {
  (void) state;
  /* Per process: the backends' runs of this test may go in parallel. */
  snprintf(files_dir, sizeof(files_dir), "%s/files-%d", tls_dir, (int) getpid());
  mkdir(files_dir, 0700);
  char src[1300], dst[1300];
  snprintf(src, sizeof(src), "%s/big.bin", files_dir);
  snprintf(dst, sizeof(dst), "%s/got-%d.bin", tls_dir, (int) getpid());
  const size_t len = 100u << 20;
  FILE *f = fopen(src, "wb");
  assert_non_null(f);
  static unsigned char blk[1 << 16];
  for (size_t off = 0; off < len; off += sizeof(blk)) {
    for (size_t i = 0; i < sizeof(blk); i++) blk[i] = pat(off + i);
    assert_int_equal(fwrite(blk, 1, sizeof(blk), f), sizeof(blk));
  }
  fclose(f);
  cymg_mgr *mgr = new_mgr();
  uint16_t port;
  https_server(mgr, false, &port);
  char url[96], out[256];
  snprintf(url, sizeof(url), "https://localhost:%u/files/big.bin", port);
  const char *args[] = {"--cacert", cert("ca.crt"), "-o", dst, url, NULL};
  int rc = run_curl(mgr, out, sizeof(out), args);
  if (rc >= 0) {
    assert_int_equal(rc, 0);
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "rb");
    assert_non_null(a);
    assert_non_null(b);
    static unsigned char x[1 << 16], y[1 << 16];
    size_t na, total = 0;
    while ((na = fread(x, 1, sizeof(x), a)) > 0) {
      assert_int_equal(fread(y, 1, na, b), na);
      assert_memory_equal(x, y, na);
      total += na;
    }
    assert_int_equal(fread(y, 1, 1, b), 0);
    assert_int_equal(total, len);
    fclose(a);
    fclose(b);
  }
  unlink(src);
  unlink(dst);
  rmdir(files_dir);
  finish(mgr);
  if (rc < 0) skip();
}

/* wss between our own client and server. */
typedef struct {
  char got[64];
  bool open, closed;
  int errors;
} wsp;

static void wss_srv(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_HTTP_MSG) {
    assert_int_equal(cymg_ws_upgrade(c, ev_data, NULL), 0);
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *m = ev_data;
    assert_true(cymg_ws_send(c, m->data.buf, m->data.len, CYMG_WS_OP_TEXT) >= 0);
  }
}

static void wss_cli(cymg_conn *c, int ev, void *ev_data) {
  wsp *p = cymg_conn_userdata(c);
  if (ev == CYMG_EV_WS_OPEN) {
    p->open = true;
    assert_true(cymg_ws_send(c, "over tls", 8, CYMG_WS_OP_TEXT) >= 0);
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *m = ev_data;
    snprintf(p->got, sizeof(p->got), "%.*s", (int) m->data.len, m->data.buf);
    cymg_close(c);
  } else if (ev == CYMG_EV_ERROR) {
    p->errors++;
  } else if (ev == CYMG_EV_CLOSE) {
    p->closed = true;
  }
}

static void test_wss(void **state) {
  (void) state;
  cymg_mgr *mgr = new_mgr();
  cymg_conn *lsn = NULL;
  assert_int_equal(cymg_ws_listen(mgr, "wss://127.0.0.1:0", wss_srv, NULL, &lsn), 0);
  cymg_tls_opts so = {0};
  so.cert = cymg_str_c(cert("server-ec.crt"));
  so.key = cymg_str_c(cert("server-ec.key"));
  assert_int_equal(cymg_tls_init(lsn, &so), 0);
  char url[96];
  snprintf(url, sizeof(url), "wss://localhost:%u/chat", cymg_conn_local(lsn)->port);
  wsp p = {0};
  cymg_conn *c = NULL;
  assert_int_equal(cymg_ws_connect(mgr, url, wss_cli, &p, &c), 0);
  cymg_tls_opts co = {0};
  co.ca = cymg_str_c(cert("ca.crt"));
  assert_int_equal(cymg_tls_init(c, &co), 0);
  POLL_UNTIL(mgr, p.closed);
  assert_int_equal(p.errors, 0);
  assert_true(p.open);
  assert_string_equal(p.got, "over tls");
  finish(mgr);
}

int main(void) {
  /* CYMG_TEST_BACKENDS: registered once per backend. */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_curl),           cmocka_unit_test(test_s_client_resumes),           cmocka_unit_test(test_curl_client_cert),
      cmocka_unit_test(test_bodies),         cmocka_unit_test(test_s_client_pipelined),
      cmocka_unit_test(test_s_server),       cmocka_unit_test(test_static_100mb),
      cmocka_unit_test(test_wss),
  };
  return cmocka_run_group_tests(tests, tls_certs_setup, NULL);
}
