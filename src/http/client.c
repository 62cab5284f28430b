/* The HTTP client side, and request helpers shared by both sides (credentials,
 * query variables). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cymg/base64.h"
#include "http/http_internal.h"

int cymg_http_connect(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                      cymg_conn **out) {
  cymg_conn *c;
  int rc = cymg__connect_url(mgr, url, "http", fn, fn_data, &c);
  if (rc < 0) return rc;
  if (out) *out = c;
  rc = cymg_http_attach(c, false);
  if (rc < 0) {
    cymg__conn_fail_later(c, "HTTP: %s", cymg_strerror(rc));
    return 0;
  }
  cymg__http_client *cl = cymg__http_of(c)->cl;
  cymg__http_host(url, cl->host, sizeof(cl->host));
  return 0;
}

void cymg__http_host(const char *url, char *dst, size_t dst_len) {
  cymg_url u;
  dst[0] = '\0';
  if (cymg_url_parse(cymg_str_c(url), &u) < 0) return;
  int n = snprintf(dst, dst_len, "%s%.*s%s", u.is_ip6 ? "[" : "", (int) u.host.len, u.host.buf,
                   u.is_ip6 ? "]" : "");
  if (n >= 0 && (size_t) n < dst_len && u.port.len > 0 &&
      u.port_num != cymg_url_default_port(u.scheme))
    snprintf(dst + n, dst_len - (size_t) n, ":%u", (unsigned) u.port_num);
}

static cymg__http *client_state(cymg_conn *c) {
  cymg__http *h = c ? cymg__http_of(c) : NULL;
  return (h && !h->is_server) ? h : NULL;
}

static bool has_header(const char *headers, const char *name) {
  size_t n = strlen(name);
  for (const char *p = headers; p && *p;) {
    if (strncasecmp(p, name, n) == 0 && p[n] == ':') return true;
    p = strchr(p, '\n');
    if (p) p++;
  }
  return false;
}

int cymg_http_request(cymg_conn *c, const char *method, const char *uri, const char *headers,
                      const void *body, size_t len) {
  cymg__http *h = client_state(c);
  if (h == NULL) return CYMG_ESTATE;
  if (method == NULL || uri == NULL || (body == NULL && len > 0)) return CYMG_EINVAL;
  size_t mlen = strlen(method);
  if (mlen == 0 || mlen >= sizeof(h->cl->methods[0]) || strcspn(method, " \r\n") != mlen ||
      strcspn(uri, " \r\n") != strlen(uri) || uri[0] == '\0')
    return CYMG_EINVAL;
  if (h->cl->mq_len == 8) return CYMG_ELIMIT; /* that many requests in flight */
  cymg_buf b;
  cymg_buf_init(&b);
  int rc = cymg_buf_printf(&b, "%s %s HTTP/1.1\r\n", method, uri);
  if (rc >= 0 && !has_header(headers, "Host")) rc = cymg_buf_printf(&b, "Host: %s\r\n", h->cl->host);
  bool wants_length = body != NULL || len > 0 || strcasecmp(method, "POST") == 0 ||
                      strcasecmp(method, "PUT") == 0 || strcasecmp(method, "PATCH") == 0;
  if (rc >= 0 && wants_length && !has_header(headers, "Content-Length") &&
      !has_header(headers, "Transfer-Encoding"))
    rc = cymg_buf_printf(&b, "Content-Length: %zu\r\n", len);
  if (rc >= 0 && headers) rc = cymg_buf_append(&b, headers, strlen(headers));
  if (rc >= 0) rc = cymg_buf_append(&b, "\r\n", 2);
  if (rc >= 0 && len) rc = cymg_buf_append(&b, body, len);
  if (rc >= 0) rc = cymg_send(c, b.buf, b.len);
  cymg_buf_free(&b);
  if (rc < 0) return rc;
  memcpy(h->cl->methods[(h->cl->mq_head + h->cl->mq_len) % 8], method, mlen + 1);
  h->cl->mq_len++;
  cymg__http_deadline(c, h, DL_RESPONSE, h->conf->head_ms);
  return 0;
}

int cymg_http_basic_auth(cymg_conn *c, const char *user, const char *pass) {
  if (c == NULL || user == NULL || pass == NULL) return CYMG_EINVAL;
  cymg_buf plain, b;
  cymg_buf_init(&plain);
  cymg_buf_init(&b);
  int rc = cymg_buf_printf(&plain, "%s:%s", user, pass);
  if (rc >= 0) rc = cymg_buf_printf(&b, "Authorization: Basic ");
  if (rc >= 0) rc = cymg_base64_encode(cymg_str_n(plain.buf, plain.len), &b);
  if (rc >= 0) rc = cymg_buf_append(&b, "\r\n", 2);
  if (rc >= 0) rc = cymg_send(c, b.buf, b.len);
  cymg_buf_free(&plain);
  cymg_buf_free(&b);
  return rc < 0 ? rc : 0;
}

/* The response side of the layer: responses come in order, one per request. */
bool cymg__http_client_event(cymg_conn *c, cymg__http *h, int ev, void *ev_data) {
  (void) ev_data;
  switch (ev) {
    case CYMG_EV_READ:
      while (h->phase != HTTP_DEAD && !(c->flags & CYMG__F_CLOSING) && cymg__http_of(c) == h &&
             cymg__http_read_message(c, h)) {
      }
      return true;
    case CYMG_EV_CLOSE:
      /* A body delimited by the end of the connection is complete now. */
      if (h->phase == HTTP_BODY && h->body_kind == CYMG_HTTP_BODY_CLOSE) {
        cymg_str d = cymg_conn_recv_data(c);
        /* The last read may have grown (moved) the buffer the head was parsed in. */
        cymg__http_refresh_views(h, h->streaming ? h->head_copy : d.buf);
        if (h->streaming) {
          h->rq->msg.body = cymg_str_n(h->head_copy ? h->head_copy + h->rq->head_len : NULL, 0);
          h->rq->msg.message = h->rq->msg.head;
        } else {
          h->rq->msg.body = cymg_str_n(d.buf + h->rq->head_len, d.len - h->rq->head_len);
          h->rq->msg.message = cymg_str_n(h->rq->msg.head.buf, (size_t) (d.buf + d.len - h->rq->msg.head.buf));
        }
        h->phase = HTTP_HEAD;
        if (c->fn) c->fn(c, CYMG_EV_HTTP_MSG, &h->rq->msg);
      }
      return false;
    default: return false;
  }
}

/* ---- helpers on requests ---- */

static int copy_out(cymg_str s, char *dst, size_t len) {
  if (len == 0 || s.len >= len) return CYMG_ENOSPC;
  memcpy(dst, s.buf, s.len);
  dst[s.len] = '\0';
  return 0;
}

int cymg_http_creds(const cymg_http_msg *msg, char *user, size_t user_len, char *pass,
                    size_t pass_len) {
  if (msg == NULL || user == NULL || pass == NULL) return CYMG_EINVAL;
  if (user_len) user[0] = '\0';
  if (pass_len) pass[0] = '\0';
  cymg_str *auth = cymg_http_get_header(msg, "Authorization");
  if (auth && auth->len > 6 && strncasecmp(auth->buf, "Basic ", 6) == 0) {
    cymg_buf dec;
    cymg_buf_init(&dec);
    int rc = cymg_base64_decode(cymg_str_trim(cymg_str_n(auth->buf + 6, auth->len - 6)), &dec);
    if (rc >= 0) {
      const char *colon = dec.len ? memchr(dec.buf, ':', dec.len) : NULL;
      if (colon == NULL) {
        rc = CYMG_EPARSE;
      } else {
        rc = copy_out(cymg_str_n(dec.buf, (size_t) (colon - dec.buf)), user, user_len);
        if (rc == 0)
          rc = copy_out(cymg_str_n(colon + 1, dec.len - (size_t) (colon - dec.buf) - 1), pass,
                        pass_len);
      }
    }
    cymg_buf_free(&dec);
    return rc;
  }
  if (auth && auth->len > 7 && strncasecmp(auth->buf, "Bearer ", 7) == 0)
    return copy_out(cymg_str_trim(cymg_str_n(auth->buf + 7, auth->len - 7)), pass, pass_len);
  /* user:pass@ in an absolute-form target */
  cymg_url u;
  if (msg->target.len && cymg_url_parse(msg->target, &u) == 0 && u.scheme.buf && u.user.buf) {
    int rc = cymg_url_decode_to(u.user, user, user_len, false);
    if (rc >= 0 && u.pass.buf) rc = cymg_url_decode_to(u.pass, pass, pass_len, false);
    return rc < 0 ? rc : 0;
  }
  return CYMG_ENOTFOUND;
}

int cymg_http_query_var(const cymg_http_msg *msg, const char *name, char *dst, size_t dst_len) {
  if (msg == NULL) return CYMG_EINVAL;
  return cymg_http_var(msg->query, name, dst, dst_len);
}
