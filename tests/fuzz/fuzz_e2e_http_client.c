/* End to end: the HTTP client reads arbitrary bytes as the server's answer to
 * the requests it sent (status lines, interim responses, Content-Length,
 * chunked and close-delimited bodies, responses to HEAD, pipelined answers),
 * over a real loopback TCP connection; the harness plays the server. See e2e.h
 * for the input layout.
 *
 * ctl[0] bits 0-1 pick the requests queued at connect:
 *   0  GET /          1  HEAD /h, GET /g (pipelined: HEAD answers have no body)
 *   2  POST /p with a body, GET /g     3  GET /a, DELETE /b, PUT /c with a body
 * ctl[0] bit 4: bodies are streamed (cymg_http_stream_body) instead of buffered
 *        bit 5: small limits (1 KiB head, 8 fields, 4 KiB body)
 *        bit 6: each answer is followed by one more GET (up to two) */
#include "cymg/cymg.h"
#include "e2e.h"

static cymg_mgr *mgr;
static int lfd = -1;
static char url[64];
static uint8_t ctl;
static uint64_t streamed;
static int more;

static void at_exit(void) {
  cymg_mgr_free(mgr);
  if (lfd >= 0) close(lfd);
}

static void fn(cymg_conn *c, int ev, void *ev_data) {
  e2e_trace(ev, ev_data);
  if (ev == CYMG_EV_HTTP_HDRS) {
    cymg_http_msg *m = ev_data;
    CHECK(m->status >= 100 && m->status <= 999);
    streamed = 0;
    if (ctl & 0x10) (void) cymg_http_stream_body(c);
  } else if (ev == CYMG_EV_READ) {
    streamed += *(const size_t *) ev_data;
  } else if (ev == CYMG_EV_HTTP_MSG) {
    cymg_http_msg *m = ev_data;
    CHECK(m->status >= 100 && m->status <= 999 && m->head.len > 0);
    if (m->flags & CYMG_HTTP_F_STREAMED) {
      CHECK(m->body.len == 0);
      if (m->content_length >= 0) CHECK(streamed == (uint64_t) m->content_length);
    } else if (m->content_length >= 0 && !(m->flags & CYMG_HTTP_F_CHUNKED)) {
      /* Sized, unless the request (HEAD) or the status (204, 304) says none. */
      CHECK(m->body.len == (uint64_t) m->content_length || m->body.len == 0);
    }
    cymg_str *ct = cymg_http_get_header(m, "Content-Type"), v;
    if (ct) (void) cymg_http_header_var(*ct, "charset", &v);
    if ((ctl & 0x40) && more < 2) {
      more++;
      (void) cymg_http_request(c, "GET", "/again", NULL, NULL, 0);
    }
  }
}

static void requests(cymg_conn *c) {
  static const char body[] = "name=value&x=1";
  switch (ctl & 3) {
    case 0: (void) cymg_http_request(c, "GET", "/", NULL, NULL, 0); break;
    case 1:
      (void) cymg_http_request(c, "HEAD", "/h", NULL, NULL, 0);
      (void) cymg_http_request(c, "GET", "/g", NULL, NULL, 0);
      break;
    case 2:
      (void) cymg_http_request(c, "POST", "/p", "Content-Type: text/plain\r\n", body,
                               sizeof(body) - 1);
      (void) cymg_http_request(c, "GET", "/g", NULL, NULL, 0);
      break;
    default:
      (void) cymg_http_request(c, "GET", "/a", "Accept: */*\r\n", NULL, 0);
      (void) cymg_http_request(c, "DELETE", "/b", NULL, NULL, 0);
      (void) cymg_http_request(c, "PUT", "/c", NULL, body, sizeof(body) - 1);
      break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (mgr == NULL) {
    mgr = e2e_mgr_new();
    uint16_t port;
    lfd = e2e_tcp_listener(&port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned) port);
    atexit(at_exit);
  }
  e2e_in in;
  if (e2e_in_parse(data, size, &in) < 0) return 0;
  ctl = in.ctl;
  more = 0;
  cymg_conn *c = NULL;
  CHECK(cymg_http_connect(mgr, url, fn, NULL, &c) == 0 && c != NULL);
  uint64_t id = cymg_conn_id(c);
  if (ctl & 0x20) CHECK(cymg_http_set_limits(c, 1024, 8, 4096) == 0);
  requests(c);
  int fd = e2e_tcp_accept(mgr, lfd, id);
  CHECK(fd >= 0);
  e2e_write(mgr, id, fd, &in);
  e2e_finish(mgr, id, fd, &in);
  CHECK(cymg_mgr_count(mgr) == 0);
  return 0;
}
