/* The HTTP client against our server, a raw server and a real peer (Python's
 * http.server); curl against our server; request helpers.
 * CYMG_TEST_BACKENDS: runs once per I/O backend. */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "http_test.h"

typedef struct {
  int msgs, hdrs, closes;
  int status[8];
  char body[8][256];
  char ctype[8][64]; /* Content-Type, read at HTTP_MSG */
  size_t body_len[8];
  char err[256];
  bool closed;
} cli_state;

static void cli_fn(cymg_conn *c, int ev, void *ev_data) {
  cli_state *s = cymg_conn_userdata(c);
  if (ev == CYMG_EV_HTTP_HDRS) s->hdrs++;
  if (ev == CYMG_EV_HTTP_MSG && s->msgs < 8) {
    cymg_http_msg *m = ev_data;
    s->status[s->msgs] = m->status;
    s->body_len[s->msgs] = m->body.len;
    snprintf(s->body[s->msgs], sizeof(s->body[0]), "%.*s", (int) m->body.len, m->body.buf);
    cymg_str *ct = cymg_http_get_header(m, "Content-Type");
    if (ct) snprintf(s->ctype[s->msgs], sizeof(s->ctype[0]), "%.*s", (int) ct->len, ct->buf);
    s->msgs++;
  }
  if (ev == CYMG_EV_ERROR) snprintf(s->err, sizeof(s->err), "%s", (const char *) ev_data);
  if (ev == CYMG_EV_CLOSE) s->closed = true;
}

static void srv_fn(cymg_conn *c, int ev, void *ev_data) {
  if (ev != CYMG_EV_HTTP_MSG) return;
  cymg_http_msg *m = ev_data;
  if (cymg_str_eq(m->uri, cymg_str_c("/chunked"))) {
    cymg_http_reply_start(c, 201, NULL);
    cymg_http_printf_chunk(c, "abc");
    cymg_http_printf_chunk(c, "def");
    cymg_http_chunk(c, NULL, 0);
    return;
  }
  char user[32], pass[32];
  if (cymg_http_creds(m, user, sizeof(user), pass, sizeof(pass)) == 0) {
    cymg_http_reply(c, 200, NULL, "user=%s pass=%s", user, pass);
    return;
  }
  cymg_http_reply(c, 200, "X-Test: 1\r\n", "%.*s %.*s [%.*s]", (int) m->method.len, m->method.buf,
                  (int) m->uri.len, m->uri.buf, (int) m->body.len, m->body.buf);
}

static cymg_mgr *mgr_new(void) {
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  return mgr;
}

static void mgr_done(cymg_mgr *mgr) {
  for (cymg_conn *c = cymg_mgr_first(mgr); c; c = cymg_conn_next(c)) cymg_close(c);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

static void test_against_our_server(void **state) {
  (void) state;
  cymg_mgr *mgr = mgr_new();
  cymg_conn *lsn, *c;
  assert_int_equal(cymg_http_listen(mgr, "http://127.0.0.1:0", srv_fn, NULL, &lsn), 0);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", cymg_conn_local(lsn)->port);
  cli_state s = {0};
  assert_int_equal(cymg_http_connect(mgr, url, cli_fn, &s, &c), 0);
  /* Queued before the connection is up; pipelined; answered in order. */
  assert_int_equal(cymg_http_request(c, "GET", "/a?x=1", NULL, NULL, 0), 0);
  assert_int_equal(cymg_http_request(c, "POST", "/b", "Content-Type: text/plain\r\n", "data", 4), 0);
  assert_int_equal(cymg_http_request(c, "HEAD", "/c", NULL, NULL, 0), 0);
  assert_int_equal(cymg_http_request(c, "GET", "/chunked", NULL, NULL, 0), 0);
  POLL_UNTIL(mgr, s.msgs == 4);
  assert_int_equal(s.status[0], 200);
  assert_string_equal(s.body[0], "GET /a []");
  assert_string_equal(s.body[1], "POST /b [data]");
  assert_int_equal(s.body_len[2], 0); /* HEAD: no body although Content-Length */
  assert_int_equal(s.status[3], 201);
  assert_string_equal(s.body[3], "abcdef");
  assert_int_equal(s.hdrs, 4);
  assert_string_equal(s.err, "");
  /* Bad requests are refused before anything is sent. */
  assert_int_equal(cymg_http_request(c, "GET", "/has space", NULL, NULL, 0), CYMG_EINVAL);
  assert_int_equal(cymg_http_request(c, "", "/", NULL, NULL, 0), CYMG_EINVAL);
  assert_int_equal(cymg_http_request(lsn, "GET", "/", NULL, NULL, 0), CYMG_ESTATE);
  mgr_done(mgr);
}

static void test_basic_auth(void **state) {
  (void) state;
  cymg_mgr *mgr = mgr_new();
  cymg_conn *lsn, *c;
  assert_int_equal(cymg_http_listen(mgr, "http://127.0.0.1:0", srv_fn, NULL, &lsn), 0);
  char url[64];
  snprintf(url, sizeof(url), "http://localhost:%u", cymg_conn_local(lsn)->port);
  cli_state s = {0};
  assert_int_equal(cymg_http_connect(mgr, url, cli_fn, &s, &c), 0);
  assert_int_equal(cymg_printf(c, "GET / HTTP/1.1\r\nHost: x\r\n"), 25);
  assert_int_equal(cymg_http_basic_auth(c, "alice", "s3:cret"), 0);
  assert_int_equal(cymg_printf(c, "\r\n"), 2);
  POLL_UNTIL(mgr, s.msgs == 1);
  assert_string_equal(s.body[0], "user=alice pass=s3:cret");
  mgr_done(mgr);
}

/* A raw server: answers whatever comes with a fixed text, then maybe closes. */
static const char *raw_answer;
static bool raw_close;
static void raw_srv(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CYMG_EV_READ && raw_answer) {
    cymg_conn_consume(c, cymg_conn_recv_len(c));
    cymg_send(c, raw_answer, strlen(raw_answer));
    if (raw_close) cymg_drain(c);
  }
}

static void run_raw(const char *answer, bool close_after, cli_state *s, uint32_t timeout_ms) {
  cymg_mgr *mgr = mgr_new();
  cymg_conn *lsn, *c;
  raw_answer = answer;
  raw_close = close_after;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", raw_srv, NULL, &lsn), 0);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", cymg_conn_local(lsn)->port);
  assert_int_equal(cymg_http_connect(mgr, url, cli_fn, s, &c), 0);
  if (timeout_ms) assert_int_equal(cymg_http_set_timeouts(c, timeout_ms, 0), 0);
  assert_int_equal(cymg_http_request(c, "GET", "/", NULL, NULL, 0), 0);
  POLL_UNTIL(mgr, s->closed);
  mgr_done(mgr);
}

static void test_close_delimited(void **state) {
  (void) state;
  cli_state s = {0};
  run_raw("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", true, &s, 0);
  assert_int_equal(s.msgs, 1);
  assert_string_equal(s.body[0], "until the end");
  /* The head's views are valid at HTTP_MSG even though the final read (the
   * end of stream) may have moved the receive buffer. */
  assert_string_equal(s.ctype[0], "text/plain");
  assert_string_equal(s.err, "");
}

static void test_interim_and_chunked_trailers(void **state) {
  (void) state;
  cli_state s = {0};
  run_raw("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
          true, &s, 0);
  assert_int_equal(s.msgs, 1);
  assert_int_equal(s.status[0], 200);
  assert_string_equal(s.body[0], "abc");
}

static void test_bad_response(void **state) {
  (void) state;
  cli_state s = {0};
  run_raw("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", false, &s, 0);
  assert_int_equal(s.msgs, 0);
  assert_non_null(strstr(s.err, "Content-Length"));
}

static void test_response_timeout(void **state) {
  (void) state;
  cli_state s = {0};
  run_raw(NULL, false, &s, 100);
  assert_int_equal(s.msgs, 0);
  assert_non_null(strstr(s.err, "no response"));
}

static void test_connect_errors(void **state) {
  (void) state;
  cymg_mgr *mgr = mgr_new();
  assert_int_equal(cymg_http_connect(mgr, "ftp://x:1", cli_fn, NULL, NULL), CYMG_ESCHEME);
  assert_int_equal(cymg_http_connect(mgr, "http://", cli_fn, NULL, NULL), CYMG_EBADURL);
  assert_int_equal(cymg_http_listen(mgr, "tcp://127.0.0.1:0", cli_fn, NULL, NULL), CYMG_ESCHEME);
  cli_state s = {0};
  assert_int_equal(cymg_http_connect(mgr, "http://127.0.0.1:1", cli_fn, &s, NULL), 0);
  POLL_UNTIL(mgr, s.closed);
  assert_non_null(strstr(s.err, "refused"));
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

/* ---- real peers ---- */

static pid_t spawn(char *const argv[], const char *dir) {
  pid_t pid = fork();
  if (pid == 0) {
    if (dir && chdir(dir) != 0) _exit(127);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    dup2(null, 2);
    execvp(argv[0], argv);
    _exit(127);
  }
  return pid;
}

static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof(sin);
  bind(fd, (struct sockaddr *) &sin, sizeof(sin));
  getsockname(fd, (struct sockaddr *) &sin, &sl);
  close(fd);
  return ntohs(sin.sin_port);
}

static void test_against_python_http_server(void **state) {
  (void) state;
  if (access("/usr/bin/python3", X_OK) != 0) skip();
  char dir[] = "/tmp/cymg-pyhttp-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof(path), "%s/file.bin", dir);
  FILE *fp = fopen(path, "wb");
  size_t size = 300000;
  for (size_t i = 0; i < size; i++) fputc((int) (i % 253), fp);
  fclose(fp);
  uint16_t port = free_port();
  char portstr[8];
  snprintf(portstr, sizeof(portstr), "%u", port);
  char *argv[] = {"/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", portstr, NULL};
  pid_t pid = spawn(argv, dir);
  cymg_mgr *mgr = mgr_new();
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
  /* The peer needs a moment to listen: retry refused connections. */
  cli_state s;
  for (int attempt = 0; attempt < 200; attempt++) {
    memset(&s, 0, sizeof(s));
    cymg_conn *c;
    assert_int_equal(cymg_http_connect(mgr, url, cli_fn, &s, &c), 0);
    assert_int_equal(cymg_http_request(c, "GET", "/file.bin", NULL, NULL, 0), 0);
    POLL_UNTIL(mgr, s.closed || s.msgs == 1);
    if (s.msgs == 1) {
      cymg_close(c);
      break;
    }
    usleep(20000);
  }
  assert_int_equal(s.msgs, 1);
  assert_int_equal(s.status[0], 200);
  assert_int_equal(s.body_len[0], size);
  cymg_mgr_poll(mgr, 0);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  unlink(path);
  rmdir(dir);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

/* curl, run in a child while this process serves it. */
static void test_curl_against_server(void **state) {
  (void) state;
  if (access("/usr/bin/curl", X_OK) != 0) skip();
  cymg_mgr *mgr = mgr_new();
  cymg_conn *lsn;
  assert_int_equal(cymg_http_listen(mgr, "http://127.0.0.1:0", srv_fn, NULL, &lsn), 0);
  char url1[80], url2[80], out[] = "/tmp/cymg-curl-XXXXXX";
  int ofd = mkstemp(out);
  close(ofd);
  snprintf(url1, sizeof(url1), "http://127.0.0.1:%u/first", cymg_conn_local(lsn)->port);
  snprintf(url2, sizeof(url2), "http://127.0.0.1:%u/second", cymg_conn_local(lsn)->port);
  /* Two URLs on one keep-alive connection, a chunked upload, then -o. */
  char *argv[] = {"/usr/bin/curl", "-sS", "--fail", "-H", "Transfer-Encoding: chunked", "-d",
                  "payload", url1, url2, "-o", out, "-o", out, NULL};
  pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv);
    _exit(127);
  }
  int status = -1;
  uint64_t start = cymg_mgr_now(mgr);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    cymg_mgr_poll(mgr, 5);
    if (cymg_mgr_now(mgr) - start > CYMG_TEST_WAIT_MS) fail_msg("curl hung");
  }
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  char got[256] = {0};
  FILE *fp = fopen(out, "r");
  assert_non_null(fgets(got, sizeof(got), fp));
  fclose(fp);
  unlink(out);
  assert_string_equal(got, "POST /second [payload]");
  mgr_done(mgr);
}

static void test_creds_and_query(void **state) {
  (void) state;
  const char *req =
      "GET /p?user=bob&x=a%20b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok123\r\n\r\n";
  cymg_http_header hdrs[8];
  cymg_http_msg m;
  assert_true(cymg_http_parse_request(req, strlen(req), &m, hdrs, 8, NULL) > 0);
  char u[16], p[16];
  assert_int_equal(cymg_http_creds(&m, u, sizeof(u), p, sizeof(p)), 0);
  assert_string_equal(u, "");
  assert_string_equal(p, "tok123");
  assert_int_equal(cymg_http_creds(&m, u, sizeof(u), p, 3), CYMG_ENOSPC);
  char v[16];
  assert_int_equal(cymg_http_query_var(&m, "x", v, sizeof(v)), 3);
  assert_string_equal(v, "a b");
  assert_int_equal(cymg_http_query_var(&m, "nope", v, sizeof(v)), CYMG_ENOTFOUND);
  req = "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic !!!\r\n\r\n";
  assert_true(cymg_http_parse_request(req, strlen(req), &m, hdrs, 8, NULL) > 0);
  assert_int_equal(cymg_http_creds(&m, u, sizeof(u), p, sizeof(p)), CYMG_EPARSE);
  req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_true(cymg_http_parse_request(req, strlen(req), &m, hdrs, 8, NULL) > 0);
  assert_int_equal(cymg_http_creds(&m, u, sizeof(u), p, sizeof(p)), CYMG_ENOTFOUND);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_against_our_server),
      cmocka_unit_test(test_basic_auth),
      cmocka_unit_test(test_close_delimited),
      cmocka_unit_test(test_interim_and_chunked_trailers),
      cmocka_unit_test(test_bad_response),
      cmocka_unit_test(test_response_timeout),
      cmocka_unit_test(test_connect_errors),
      cmocka_unit_test(test_against_python_http_server),
      cmocka_unit_test(test_curl_against_server),
      cmocka_unit_test(test_creds_and_query),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
