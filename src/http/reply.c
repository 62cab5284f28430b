/* Server replies: status line and standard headers, whole bodies, chunked
 * bodies, Server-Sent Events, file bodies through sendfile. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/sendfile.h>
#endif

#include "http/http_internal.h"

/* "Date: <IMF-fixdate>\r\n", formatted once per second per manager. */
static const char *date_line(cymg_mgr *mgr) {
  time_t now = time(NULL);
  if ((uint64_t) now != mgr->http_date_sec || mgr->http_date[0] == '\0') {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(mgr->http_date, sizeof(mgr->http_date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    mgr->http_date_sec = (uint64_t) now;
  }
  return mgr->http_date;
}

/* The handler may end the connection itself by saying so in its headers: a line
 * "Connection: close", any case. Checked line by line; strcasestr cost more than
 * the rest of a small reply's formatting. */
static bool says_close(const char *headers) {
  for (const char *p = headers; p && *p;) {
    if (strncasecmp(p, "connection:", 11) == 0) {
      const char *v = p + 11;
      while (*v == ' ' || *v == '\t') v++;
      if (strncasecmp(v, "close", 5) == 0) return true;
    }
    p = strchr(p, '\n');
    if (p) p++;
  }
  return false;
}

static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

static char *put_u64(char *p, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char) ('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

/* Sends status line, Date, framing, Connection, the caller's headers and len
 * bytes of body with one cymg_send: one system call for a small reply.
 * content_length: >= 0 for a sized body, -1 for chunked, -2 for a body that ends
 * with the connection. This runs for every request, so the head is put together
 * by hand in a stack buffer (no printf, no allocation) when it fits. */
static int send_head(cymg_conn *c, cymg__http *h, int status, const char *headers,
                     int64_t content_length, const void *body, size_t len) {
  /* A 1xx is never final: sent as the reply it would leave the real reply
   * to answer the next request, and every later one out of step. 100
   * Continue and 101 have their own paths (server.c, the WS upgrade). */
  if (status < 200 || status > 999) return CYMG_EINVAL;
  bool close_said = says_close(headers);
  if (close_said) h->req_keepalive = false;
  h->last_status = status;
  const char *reason = cymg_http_status_reason(status);
  if (*reason == '\0') reason = "Status";
  const char *date = date_line(c->mgr);
  const char *conn = NULL;
  if (!h->req_keepalive || content_length == -2) {
    if (!close_said) conn = "Connection: close\r\n";
  } else if (h->req_http10) {
    conn = "Connection: keep-alive\r\n";
  }
  static const char cl[] = "Content-Length: ", te[] = "Transfer-Encoding: chunked\r\n";
  size_t rlen = strlen(reason), dlen = strlen(date), clen = conn ? strlen(conn) : 0;
  size_t hlen = headers ? strlen(headers) : 0;
  /* An upper bound: Content-Length is counted with 20 digits. */
  size_t head = sizeof("HTTP/1.1 200 \r\n") - 1 + rlen + dlen + (sizeof(cl) - 1 + 20 + 2) +
                (sizeof(te) - 1) + clen + hlen + 2;
  if (len > SIZE_MAX - head) return CYMG_ELIMIT;
  char stack[2048];
  char *out = head + len <= sizeof(stack) ? stack : malloc(head + len);
  if (out == NULL) return CYMG_ENOMEM;
  char *p = put(out, "HTTP/1.1 ", 9);
  *p++ = (char) ('0' + status / 100);
  *p++ = (char) ('0' + status / 10 % 10);
  *p++ = (char) ('0' + status % 10);
  *p++ = ' ';
  p = put(p, reason, rlen);
  p = put(p, "\r\n", 2);
  p = put(p, date, dlen);
  /* 1xx and 204 must not carry Content-Length, and a 304 may carry only the
   * length of the 200 it stands for, which we do not know (RFC 9110 §8.6). */
  bool no_content = status < 200 || status == 204 || status == 304;
  if (content_length >= 0 && !no_content) {
    p = put(p, cl, sizeof(cl) - 1);
    p = put_u64(p, (uint64_t) content_length);
    p = put(p, "\r\n", 2);
  } else if (content_length == -1) {
    p = put(p, te, sizeof(te) - 1);
  }
  if (conn) p = put(p, conn, clen);
  if (hlen) p = put(p, headers, hlen);
  p = put(p, "\r\n", 2);
  if (len) p = put(p, body, len);
  int rc = cymg_send(c, out, (size_t) (p - out));
  if (out != stack) free(out);
  return rc;
}

/* A reply, or part of one, that could not be queued (send limit, memory, a
 * failed write) leaves its request unanswered or its body cut: the client
 * would wait for good, and every later answer on the connection would be out
 * of step. So the connection fails: ERROR with the reason at the next
 * dispatch, then CLOSE, whether or not the caller looks at rc. A call refused
 * for its arguments or state changed nothing and is only reported. */
int cymg__http_reply_failed(cymg_conn *c, int rc, const char *what) {
  if (rc < 0 && rc != CYMG_EINVAL && rc != CYMG_ESTATE && rc != CYMG_ECLOSED)
    cymg__conn_fail_later(c, "HTTP %s could not be queued: %s", what, cymg_strerror(rc));
  return rc;
}

static cymg__http *server_state(cymg_conn *c) {
  cymg__http *h = c ? cymg__http_of(c) : NULL;
  return (h && h->is_server && !h->is_listener) ? h : NULL;
}

/* A reply was completed through the API: if the layer waits on it, resume the
 * request cycle from the loop, not from inside the caller. */
static void replied(cymg_conn *c, cymg__http *h) {
  h->replied = true;
  if (h->phase == HTTP_WAIT_REPLY) cymg__conn_defer(c, CYMG__P_RESUME);
}

static int send_reply(cymg_conn *c, cymg__http *h, int status, const char *headers,
                      const void *body, size_t len) {
  /* Replies to HEAD, 1xx, 204 and 304 have no body, whatever len says. */
  bool no_body = h->req_head || status < 200 || status == 204 || status == 304;
  int rc = send_head(c, h, status, headers, (int64_t) len, body, no_body ? 0 : len);
  if (rc == 0) replied(c, h);
  return cymg__http_reply_failed(c, rc, "reply");
}

int cymg_http_reply_data(cymg_conn *c, int status, const char *headers, const void *body,
                         size_t len) {
  cymg__http *h = server_state(c);
  if (h == NULL) return CYMG_ESTATE;
  if (body == NULL && len > 0) return CYMG_EINVAL;
  if (h->resp_chunked || h->file_fd >= 0) return CYMG_ESTATE;
  return send_reply(c, h, status, headers, body, len);
}

int cymg_http_reply(cymg_conn *c, int status, const char *headers, const char *fmt, ...) {
  cymg__http *h = server_state(c);
  if (h == NULL) return CYMG_ESTATE;
  if (fmt == NULL) return cymg_http_reply_data(c, status, headers, NULL, 0);
  /* A body with no conversion is its own text: vsnprintf would only copy it
   * (a third of the instructions of a short reply, by callgrind). */
  if (strchr(fmt, '%') == NULL) return cymg_http_reply_data(c, status, headers, fmt, strlen(fmt));
  /* Most bodies are short: formatted on the stack, on the heap only when larger. */
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0) return CYMG_EINVAL;
  if ((size_t) n < sizeof(small)) return cymg_http_reply_data(c, status, headers, small, (size_t) n);
  char *big = malloc((size_t) n + 1);
  if (big == NULL) return cymg__http_reply_failed(c, CYMG_ENOMEM, "reply");
  va_start(ap, fmt);
  vsnprintf(big, (size_t) n + 1, fmt, ap);
  va_end(ap);
  int rc = cymg_http_reply_data(c, status, headers, big, (size_t) n);
  free(big);
  return rc;
}

int cymg_http_reply_start(cymg_conn *c, int status, const char *headers) {
  cymg__http *h = server_state(c);
  if (h == NULL) return CYMG_ESTATE;
  if (h->resp_chunked || h->file_fd >= 0) return CYMG_ESTATE;
  /* HTTP/1.0 has no chunked coding: the body ends when the connection does. */
  h->resp_close = h->req_http10;
  int rc = send_head(c, h, status, headers, h->req_http10 ? -2 : -1, NULL, 0);
  if (rc == 0) {
    h->resp_chunked = !h->req_head;
    if (h->req_head) replied(c, h);
  }
  return cymg__http_reply_failed(c, rc, "reply");
}

int cymg_http_reply_start_sized(cymg_conn *c, int status, const char *headers, uint64_t len) {
  cymg__http *h = server_state(c);
  if (h == NULL) return CYMG_ESTATE;
  if (h->resp_chunked || h->file_fd >= 0) return CYMG_ESTATE;
  if (len > INT64_MAX) return CYMG_EINVAL;
  bool no_body = h->req_head || status == 204 || status == 304;
  int rc = send_head(c, h, status, headers, (int64_t) len, NULL, 0);
  if (rc == 0) {
    if (no_body || len == 0) {
      replied(c, h);
    } else {
      h->resp_chunked = h->resp_sized = true;
      h->resp_left = len;
    }
  }
  return cymg__http_reply_failed(c, rc, "reply");
}

/* A piece of a sized body goes out as it is; the reply is complete with its
 * last byte. More than declared is refused (nothing sent), and so is an end
 * before the length is reached: the caller must close, the body is cut. */
static int sized_piece(cymg_conn *c, cymg__http *h, const void *data, size_t len) {
  if (len == 0 || len > h->resp_left) return CYMG_EINVAL;
  int rc = cymg_send(c, data, len);
  if (rc < 0) return cymg__http_reply_failed(c, rc, "body piece");
  if ((h->resp_left -= len) == 0) {
    h->resp_chunked = h->resp_sized = false;
    replied(c, h);
  }
  return 0;
}

int cymg_http_chunk(cymg_conn *c, const void *data, size_t len) {
  cymg__http *h = server_state(c);
  if (h == NULL || !h->resp_chunked) return CYMG_ESTATE;
  if (data == NULL && len > 0) return CYMG_EINVAL;
  if (h->resp_sized) return sized_piece(c, h, data, len);
  int rc;
  if (h->resp_close) { /* HTTP/1.0: raw bytes, the end is the close */
    rc = len ? cymg_send(c, data, len) : 0;
  } else {
    cymg_buf b;
    cymg_buf_init(&b);
    rc = cymg_buf_printf(&b, "%zx\r\n", len);
    if (rc >= 0 && len) rc = cymg_buf_append(&b, data, len);
    if (rc >= 0) rc = cymg_buf_append(&b, "\r\n", 2);
    if (rc >= 0) rc = cymg_send(c, b.buf, b.len);
    cymg_buf_free(&b);
  }
  if (rc >= 0 && len == 0) {
    h->resp_chunked = false;
    replied(c, h);
  }
  return rc < 0 ? cymg__http_reply_failed(c, rc, "body chunk") : 0;
}

/* A chunk that could not even be formatted is a hole in a body under way. */
static int chunk_unformatted(cymg_conn *c, int rc) {
  cymg__http *h = server_state(c);
  return h && h->resp_chunked ? cymg__http_reply_failed(c, rc, "body chunk") : rc;
}

int cymg_http_printf_chunk(cymg_conn *c, const char *fmt, ...) {
  cymg_buf b;
  cymg_buf_init(&b);
  va_list ap;
  va_start(ap, fmt);
  int rc = cymg_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  /* An empty format would end the body by accident: only an explicit
   * cymg_http_chunk(c, NULL, 0) does that. */
  if (rc > 0) {
    rc = cymg_http_chunk(c, b.buf, b.len);
  } else if (rc < 0) {
    rc = chunk_unformatted(c, rc);
  }
  cymg_buf_free(&b);
  return rc < 0 ? rc : 0;
}

int cymg_http_sse(cymg_conn *c, const char *event, const char *data) {
  cymg_buf b;
  cymg_buf_init(&b);
  int rc = 0;
  if (event && *event) rc = cymg_buf_printf(&b, "event: %s\n", event);
  /* Each line of data is its own data: field; the client joins them with \n. */
  const char *p = data ? data : "";
  do {
    size_t n = strcspn(p, "\r\n");
    if (rc >= 0) rc = cymg_buf_printf(&b, "data: %.*s\n", (int) n, p);
    p += n;
    if (*p == '\r' && p[1] == '\n') p++;
    if (*p) p++;
  } while (*p && rc >= 0);
  if (rc >= 0) rc = cymg_buf_append(&b, "\n", 1);
  rc = rc >= 0 ? cymg_http_chunk(c, b.buf, b.len) : chunk_unformatted(c, rc);
  cymg_buf_free(&b);
  return rc < 0 ? rc : 0;
}

/* ---- file bodies ---- */

static void file_done(cymg_conn *c, cymg__http *h) {
  close(h->file_fd);
  h->file_fd = -1;
  replied(c, h);
}

/* Moves file bytes to the socket while it takes them. Returns true while there
 * is more to send. */
static bool file_pump(cymg_conn *c) {
  cymg__http *h = cymg__http_of(c);
  if (h == NULL || h->file_fd < 0) return false;
  while (h->file_left > 0) {
    size_t want = h->file_left > (1u << 20) ? (1u << 20) : (size_t) h->file_left;
#if defined(__linux__)
    if (c->tp == &cymg__transport_plain) {
      off_t off = (off_t) h->file_off;
      ssize_t n = sendfile(c->fd, h->file_fd, &off, want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        c->flags &= ~CYMG__F_WRITABLE;
        return true;
      }
      if (n <= 0) {
        cymg_error(c, "sendfile: %s", n < 0 ? strerror(errno) : "file shrank while sent");
        return false;
      }
      h->file_off += (uint64_t) n;
      h->file_left -= (uint64_t) n;
      cymg__conn_progress(c);
      continue;
    }
#endif
    if (c->tp->sendfile) {
      ptrdiff_t n = c->tp->sendfile(c, h->file_fd, h->file_off, want);
      if (n == CYMG_EAGAIN) {
        c->flags &= ~CYMG__F_WRITABLE;
        return true;
      }
      if (n > 0) {
        h->file_off += (uint64_t) n;
        h->file_left -= (uint64_t) n;
        cymg__conn_progress(c);
        continue;
      }
      if (n != CYMG_ENOTSUP) {
        cymg_error(c, "%s", c->pending_err ? c->pending_err : "sendfile: file shrank while sent");
        return false;
      }
    }
    /* Other transports get the file through the send buffer, a piece at a time. */
    char buf[65536];
    if (want > sizeof(buf)) want = sizeof(buf);
    ssize_t n = pread(h->file_fd, buf, want, (off_t) h->file_off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      cymg_error(c, "read file: %s", n < 0 ? strerror(errno) : "file shrank while sent");
      return false;
    }
    int rc = cymg__conn_send(c, buf, (size_t) n);
    if (rc < 0) {
      cymg_error(c, "file body: %s", cymg_strerror(rc));
      return false;
    }
    h->file_off += (uint64_t) n;
    h->file_left -= (uint64_t) n;
    if (cymg_conn_send_len(c) > 0 && h->file_left > 0) return true; /* wait for the drain */
  }
  file_done(c, h);
  return false;
}

int cymg__http_reply_file(cymg_conn *c, int status, const char *headers, int fd, uint64_t offset,
                          uint64_t len) {
  return cymg__http_reply_file_ex(c, status, headers, fd, offset, len, false);
}

int cymg__http_reply_file_ex(cymg_conn *c, int status, const char *headers, int fd,
                             uint64_t offset, uint64_t len, bool borrowed) {
  cymg__http *h = server_state(c);
  if (h == NULL || h->resp_chunked || h->file_fd >= 0) {
    if (!borrowed) close(fd);
    return CYMG_ESTATE;
  }
  if (len <= CYMG__HTTP_INLINE_FILE && !h->req_head) {
    /* A small body is read behind the head, and both leave in one send: no
     * sendfile, no pump, and the descriptor is done with at once. */
    char body[CYMG__HTTP_INLINE_FILE];
    size_t got = 0;
    int rc = 0;
    while (got < len) {
      ssize_t n = pread(fd, body + got, (size_t) len - got, (off_t) (offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        rc = n < 0 ? -errno : CYMG_ERANGE;
        break;
      }
      got += (size_t) n;
    }
    if (!borrowed) close(fd);
    if (rc < 0) {
      /* Nothing went out yet: the client waits for an answer that cannot be
       * given, so the connection fails with the reason. */
      cymg__conn_fail_later(c, "read file: %s",
                            rc == CYMG_ERANGE ? "file shrank while sent" : cymg_strerror(rc));
      return rc;
    }
    rc = send_head(c, h, status, headers, (int64_t) len, body, (size_t) len);
    if (rc == 0) replied(c, h);
    return cymg__http_reply_failed(c, rc, "reply");
  }
  if (borrowed && !h->req_head) {
    /* The pump closes what it sends from; the cache keeps its own. */
    fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return cymg__http_reply_failed(c, -errno, "reply");
    borrowed = false;
  }
  int rc = send_head(c, h, status, headers, (int64_t) len, NULL, 0);
  if (rc < 0 || h->req_head || len == 0) {
    if (!borrowed) close(fd);
    if (rc == 0) replied(c, h);
    return cymg__http_reply_failed(c, rc, "reply");
  }
  h->file_fd = fd;
  h->file_off = offset;
  h->file_left = len;
  /* Start at once when the head went out whole; else when the socket drains. */
  if (cymg_conn_send_len(c) == 0 && file_pump(c) == false) return 0;
  cymg__conn_set_pump(c, file_pump);
  return 0;
}

int cymg_http_reply_status(const cymg_conn *c) {
  cymg__http *h = c ? cymg__http_of(c) : NULL;
  return h ? h->last_status : 0;
}

cymg_str cymg__http_req_method(const cymg_conn *c) {
  cymg__http *h = cymg__http_of(c);
  if (h == NULL || !h->is_server || h->phase == HTTP_HEAD || h->rq == NULL) return cymg_str_n("", 0);
  return h->rq->msg.method;
}
