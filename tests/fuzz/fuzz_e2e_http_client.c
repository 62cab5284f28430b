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
/* Methods of the requests sent, oldest first: answers come in that order, and
 * the method decides whether an answer has a body (HEAD, say). */
static const char *methods[8];
static int mq_head, mq_len;

static void sent(const char *method) {
  CHECK(mq_len < 8);
  methods[(mq_head + mq_len++) % 8] = method;
}

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
    /* Requests written by hand (cymg_printf) are allowed and not tracked, so
     * an answer beyond those sent is framed as one to GET (as the layer does). */
    const char *method = "GET";
    if (mq_len > 0) {
      method = methods[mq_head];
      mq_head = (mq_head + 1) % 8;
      mq_len--;
    }
    /* What the layer framed must be what RFC 9112 §6.3 says for this request
     * and status: a sized body has its length, buffered or streamed; no body
     * (HEAD, 204, 304...) is empty whatever Content-Length says. */
    int kind = cymg_http_body_kind(m, true, cymg_str_c(method));
    uint64_t got = (m->flags & CYMG_HTTP_F_STREAMED) ? streamed : m->body.len;
    if (m->flags & CYMG_HTTP_F_STREAMED) CHECK(m->body.len == 0);
    if (kind == CYMG_HTTP_BODY_LENGTH) CHECK(got == (uint64_t) m->content_length);
    if (kind == CYMG_HTTP_BODY_NONE) CHECK(got == 0);
    cymg_str *ct = cymg_http_get_header(m, "Content-Type"), v;
    if (ct) (void) cymg_http_header_var(*ct, "charset", &v);
    if ((ctl & 0x40) && more < 2) {
      more++;
      if (cymg_http_request(c, "GET", "/again", NULL, NULL, 0) == 0) sent("GET");
    }
  }
}

static void request(cymg_conn *c, const char *method, const char *uri, const char *headers,
                    const char *body) {
  size_t len = body ? strlen(body) : 0;
  if (cymg_http_request(c, method, uri, headers, body, len) == 0) sent(method);
}

static void requests(cymg_conn *c) {
  static const char body[] = "name=value&x=1";
  switch (ctl & 3) {
    case 0: request(c, "GET", "/", NULL, NULL); break;
    case 1:
      request(c, "HEAD", "/h", NULL, NULL);
      request(c, "GET", "/g", NULL, NULL);
      break;
    case 2:
      request(c, "POST", "/p", "Content-Type: text/plain\r\n", body);
      request(c, "GET", "/g", NULL, NULL);
      break;
    default:
      request(c, "GET", "/a", "Accept: */*\r\n", NULL);
      request(c, "DELETE", "/b", NULL, NULL);
      request(c, "PUT", "/c", NULL, body);
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
  mq_head = mq_len = 0;
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
