/* The HTTP connection layer: reading messages off a connection (both sides), the
 * server's request cycle (keep-alive, pipelining in order, limits, timeouts), and
 * the protocol hooks. Replies are in reply.c, the client side in client.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/http_internal.h"

#define DEFAULT_MAX_HEAD CYMG_HTTP_MAX_HEAD
#define DEFAULT_MAX_HEADERS 100
#define DEFAULT_MAX_BODY (8u << 20)
#define DEFAULT_HEAD_MS 30000
#define DEFAULT_IDLE_MS 60000
#define DEFAULT_BODY_GAP_MS 60000
#define DEFAULT_BODY_TOTAL_MS UINT32_MAX /* off */

cymg__http *cymg__http_of(const cymg_conn *c) {
  return cymg_conn_proto(c) == &cymg__http_proto ? cymg_conn_proto_state(c) : NULL;
}

static void set_recv_limit(cymg_conn *c, const cymg__http_conf *conf) {
  /* A buffered message must fit whole: head, body, and one read of slack. */
  uint64_t need = conf->max_head + conf->max_body + 65536;
  if (need > SIZE_MAX) need = SIZE_MAX;
  if (c->recv_limit < need) c->recv_limit = (size_t) need;
}

/* A message block for up to max_headers entries. Not zeroed: the parser writes
 * the entries before anyone reads them, and clearing 100 of them was a third
 * of the user-space instructions of a connection that carries one request.
 * max_headers is bounded by cymg_http_set_limits. */
static cymg__http_rq *rq_new(size_t max_headers) {
  size_t n = max_headers ? max_headers : 1;
  if (n > (SIZE_MAX - sizeof(cymg__http_rq)) / sizeof(cymg_http_header)) return NULL;
  cymg__http_rq *rq = malloc(sizeof(cymg__http_rq) + n * sizeof(cymg_http_header));
  if (rq != NULL) rq->parsed_at = NULL;
  return rq;
}

/* A message block for conf's max_headers: its spare if it has one. */
static cymg__http_rq *rq_get(cymg__http_conf *conf) {
  cymg__http_rq *rq = conf->spare;
  if (rq == NULL) return rq_new(conf->max_headers);
  conf->spare = NULL;
  rq->parsed_at = NULL;
  return rq;
}

/* Gives back a block sized for conf's max_headers. */
static void rq_put(cymg__http_conf *conf, cymg__http_rq *rq) {
  if (conf->spare == NULL) {
    conf->spare = rq;
  } else {
    free(rq);
  }
}

static void conf_unref(cymg__http_conf *conf) {
  if (conf != NULL && --conf->refs == 0) {
    free(conf->spare);
    free(conf);
  }
}

cymg__http_conf *cymg__http_conf_mut(cymg__http *h) {
  if (h->conf->refs == 1) return h->conf;
  cymg__http_conf *own = malloc(sizeof(*own));
  if (own == NULL) return NULL;
  *own = *h->conf;
  own->refs = 1;
  own->spare = NULL;
  conf_unref(h->conf);
  h->conf = own;
  return own;
}

/* conf: a shared block to take a reference on (an accepted connection), or
 * NULL to get a block of its own filled from tmpl. */
static cymg__http *http_new(cymg_conn *c, cymg__http_conf *conf, const cymg__http_conf *tmpl,
                            bool is_server) {
  cymg__http *h = malloc(sizeof(*h)); /* not calloc: see cymg__conn_new */
  if (h == NULL) return NULL;
  *h = (cymg__http){.file_fd = -1, .phase = HTTP_HEAD};
  if (conf != NULL) {
    conf->refs++;
  } else if ((conf = malloc(sizeof(*conf))) != NULL) {
    *conf = *tmpl;
    conf->refs = 1;
    conf->spare = NULL;
  } else {
    free(h);
    return NULL;
  }
  h->conf = conf;
  h->is_server = is_server;
  h->file_fd = -1;
  h->phase = HTTP_HEAD;
  if (!is_server && (h->cl = calloc(1, sizeof(*h->cl))) == NULL) {
    conf_unref(conf);
    free(h);
    return NULL;
  }
  if (!(c->flags & CYMG__F_LISTENING)) {
    if ((h->rq = rq_get(conf)) == NULL) {
      conf_unref(conf);
      free(h->cl);
      free(h);
      return NULL;
    }
    set_recv_limit(c, conf);
  } else {
    h->is_listener = true;
  }
  return h;
}

static void http_free(void *state) {
  cymg__http *h = state;
  if (h->file_fd >= 0) close(h->file_fd);
  if (h->rq != NULL) rq_put(h->conf, h->rq);
  conf_unref(h->conf);
  free(h->cl);
  free(h->head_copy);
  free(h);
}

static void *http_accept(cymg_conn *child, cymg_conn *lsn) {
  cymg__http *l = cymg__http_of(lsn);
  cymg__http *h = l ? http_new(child, l->conf, NULL, true) : NULL;
  if (l && h == NULL) cymg__conn_fail_later(child, "HTTP: out of memory");
  if (h) cymg__http_deadline(child, h, DL_IDLE, h->conf->idle_ms);
  return h;
}

int cymg_http_attach(cymg_conn *c, bool is_server) {
  if (c == NULL) return CYMG_EINVAL;
  if (cymg__http_of(c)) return 0;
  cymg__http_conf conf = {.max_head = DEFAULT_MAX_HEAD,
                          .max_headers = DEFAULT_MAX_HEADERS,
                          .max_body = DEFAULT_MAX_BODY,
                          .head_ms = DEFAULT_HEAD_MS,
                          .idle_ms = DEFAULT_IDLE_MS,
                          .body_gap_ms = DEFAULT_BODY_GAP_MS,
                          .body_total_ms = DEFAULT_BODY_TOTAL_MS};
  cymg__http *h = http_new(c, NULL, &conf, is_server);
  if (h == NULL) return CYMG_ENOMEM;
  cymg_conn_set_proto(c, &cymg__http_proto, h);
  if (is_server && !h->is_listener) cymg__http_deadline(c, h, DL_IDLE, conf.idle_ms);
  return 0;
}

int cymg_http_set_limits(cymg_conn *c, size_t max_head, size_t max_headers, uint64_t max_body) {
  cymg__http *h = c ? cymg__http_of(c) : NULL;
  if (h == NULL) return CYMG_ESTATE;
  /* Accepted connections allocate this many entries: refuse what cannot be. */
  if (max_headers > (1u << 20)) return CYMG_EINVAL;
  bool resize = max_headers && !h->is_listener && max_headers != h->conf->max_headers;
  if (resize && h->phase != HTTP_HEAD) return CYMG_ESTATE; /* views point into hdrs */
  if (!max_head && !max_headers && !max_body) return 0;
  cymg__http_conf *conf = cymg__http_conf_mut(h);
  if (conf == NULL) return CYMG_ENOMEM;
  if (resize) {
    if (h->rq != NULL) { /* NULL: an idle server connection, the next head sizes it */
      size_t n = sizeof(cymg__http_rq) + max_headers * sizeof(cymg_http_header);
      cymg__http_rq *p = realloc(h->rq, n);
      if (p == NULL) return CYMG_ENOMEM;
      h->rq = p;
    }
  }
  if (max_head) conf->max_head = max_head;
  if (max_headers && max_headers != conf->max_headers && conf->spare != NULL) {
    free(conf->spare); /* sized for the old count (a listener's too) */
    conf->spare = NULL;
  }
  if (max_headers) conf->max_headers = max_headers;
  if (max_body) conf->max_body = max_body;
  if (!h->is_listener) set_recv_limit(c, conf);
  return 0;
}

int cymg_http_set_timeouts(cymg_conn *c, uint32_t head_ms, uint32_t idle_ms) {
  cymg__http *h = c ? cymg__http_of(c) : NULL;
  if (h == NULL) return CYMG_ESTATE;
  if (!head_ms && !idle_ms) return 0;
  cymg__http_conf *conf = cymg__http_conf_mut(h);
  if (conf == NULL) return CYMG_ENOMEM;
  if (head_ms) conf->head_ms = head_ms;
  if (idle_ms) conf->idle_ms = idle_ms;
  if (h->deadline_kind == DL_IDLE) cymg__http_deadline(c, h, DL_IDLE, h->conf->idle_ms);
  return 0;
}

static void body_deadline(cymg_conn *c, cymg__http *h);

int cymg_http_set_body_timeouts(cymg_conn *c, uint32_t gap_ms, uint32_t total_ms) {
  cymg__http *h = c ? cymg__http_of(c) : NULL;
  if (h == NULL) return CYMG_ESTATE;
  if (!gap_ms && !total_ms) return 0;
  cymg__http_conf *conf = cymg__http_conf_mut(h);
  if (conf == NULL) return CYMG_ENOMEM;
  if (gap_ms) conf->body_gap_ms = gap_ms;
  if (total_ms) conf->body_total_ms = total_ms;
  if (h->deadline_kind == DL_BODY || h->deadline_kind == DL_BODY_TOTAL) body_deadline(c, h);
  return 0;
}

/* ---- deadlines: one per connection, the connection's own heap entry
 * (cymg__conn_deadline), so an idle keep-alive connection holds no timer slot.
 * Moving a deadline later only writes a field; the entry, when it fires early,
 * is re-armed for the rest. ---- */

static void on_timeout(cymg_conn *c, cymg__http *h, int kind);

static void arm(cymg_conn *c, uint64_t at) {
  /* Without it a silent peer would hold the connection forever. */
  if (cymg__conn_deadline(c, at) < 0) cymg__conn_fail_later(c, "HTTP: deadline: out of memory");
}

static void http_deadline_fired(cymg_conn *c, cymg__http *h) {
  if (h->deadline == 0 || (c->flags & CYMG__F_CLOSING)) return;
  uint64_t now = cymg__millis();
  if (now < h->deadline) {
    arm(c, h->deadline);
    return;
  }
  int kind = h->deadline_kind;
  h->deadline = 0;
  h->deadline_kind = DL_NONE;
  on_timeout(c, h, kind);
}

void cymg__http_deadline(cymg_conn *c, cymg__http *h, int kind, uint32_t ms) {
  if (kind == DL_NONE || ms == UINT32_MAX) {
    h->deadline = 0;
    h->deadline_kind = DL_NONE;
    return;
  }
  uint64_t now = cymg__millis();
  h->deadline = now + ms;
  h->deadline_kind = kind;
  if (c->deadline.heap_idx >= 0 && c->deadline.deadline <= h->deadline) return; /* re-armed then */
  arm(c, h->deadline);
}

/* A body is under way: its deadline is the gap timeout from now, or the end of
 * its total time if that comes first. Bytes of the body arriving move it. */
static void body_deadline(cymg_conn *c, cymg__http *h) {
  uint32_t gap = h->conf->body_gap_ms, total = h->conf->body_total_ms;
  if (total != UINT32_MAX) {
    uint64_t now = cymg__millis(), end = h->rq->body_start + total;
    if (gap == UINT32_MAX || end <= now + gap) {
      cymg__http_deadline(c, h, DL_BODY_TOTAL, end > now ? (uint32_t) (end - now) : 0);
      return;
    }
  }
  cymg__http_deadline(c, h, gap == UINT32_MAX ? DL_NONE : DL_BODY, gap);
}

/* Bytes of the body arrived. Once the total limit is the nearer bound the
 * deadline no longer moves, so this is a field compare per read then. */
static void body_progress(cymg_conn *c, cymg__http *h) {
  if (h->deadline_kind != DL_BODY_TOTAL) body_deadline(c, h);
}

/* ---- failures ---- */

/* A request that cannot be served: answer with its status, then close. */
static void server_refuse(cymg_conn *c, cymg__http *h, int status, const char *why) {
  CYMG__DEBUG("conn %llu: HTTP %d: %s", (unsigned long long) c->id, status, why);
  h->req_keepalive = false;
  h->req_head = false;
  h->phase = HTTP_DEAD;
  cymg_http_reply(c, status, "Content-Type: text/plain\r\n", "%d %s: %s\n", status,
                  cymg_http_status_reason(status), why);
  cymg_drain(c);
}

static void fail(cymg_conn *c, cymg__http *h, int reason) {
  if (h->is_server) {
    server_refuse(c, h, cymg_http_err_status(reason), cymg_http_err_text(reason));
  } else {
    h->phase = HTTP_DEAD;
    cymg_error(c, "HTTP response: %s", cymg_http_err_text(reason));
  }
}

static void on_timeout(cymg_conn *c, cymg__http *h, int kind) {
  if (h->phase == HTTP_DEAD) {
    /* Already answered (a refusal, a reply from the head) and draining: a
     * second answer would only trail the first. The peer had its time. */
    cymg_close(c);
    return;
  }
  switch (kind) {
    case DL_IDLE:
      /* Not idle while the last answer is still going out to a slow reader:
       * the send-stall timeout watches that. */
      if (c->send.len > 0 || c->pump) {
        cymg__http_deadline(c, h, DL_IDLE, h->conf->idle_ms);
      } else {
        cymg_close(c);
      }
      break;
    case DL_HEAD:
      if (h->is_server) {
        server_refuse(c, h, 408, "request not received in time");
      } else {
        cymg_error(c, "HTTP: no response within %u ms", (unsigned) h->conf->head_ms);
      }
      break;
    case DL_BODY:
      if (h->is_server) {
        server_refuse(c, h, 408, "request body stalled");
      } else {
        cymg_error(c, "HTTP: response body stalled for %u ms", (unsigned) h->conf->body_gap_ms);
      }
      break;
    case DL_BODY_TOTAL:
      if (h->is_server) {
        server_refuse(c, h, 408, "request body not received in time");
      } else {
        cymg_error(c, "HTTP: response body not complete within %u ms",
                   (unsigned) h->conf->body_total_ms);
      }
      break;
    case DL_RESPONSE:
      cymg_error(c, "HTTP: no response within %u ms", (unsigned) h->conf->head_ms);
      break;
    default: break;
  }
}

/* ---- reading a message ---- */

static int parse_head(cymg__http *h, const char *buf, size_t len, int *reason) {
  return h->is_server
             ? cymg_http_parse_request(buf, len, &h->rq->msg, h->rq->hdrs, h->conf->max_headers, reason)
             : cymg_http_parse_response(buf, len, &h->rq->msg, h->rq->hdrs, h->conf->max_headers, reason);
}

static cymg_str client_method(const cymg__http *h) {
  if (h->cl == NULL || h->cl->mq_len == 0) return cymg_str_n("GET", 3);
  return cymg_str_c(h->cl->methods[h->cl->mq_head % 8]);
}

/* Head complete: note what it asks for, hand HTTP_HDRS over. Returns false when
 * the connection must not go on reading. */
static bool on_head(cymg_conn *c, cymg__http *h, size_t head_len) {
  h->rq->head_len = head_len;
  h->body_kind = cymg_http_body_kind(&h->rq->msg, !h->is_server, client_method(h));
  h->rq->body_have = 0;
  h->streaming = false;
  c->flags &= ~CYMG__F_BODY_STREAM;
  if (h->body_kind == CYMG_HTTP_BODY_CHUNKED) cymg_http_chunked_init(&h->rq->chunked, 0);
  h->phase = HTTP_BODY;
  if (h->is_server) {
    h->req_head = cymg_str_eq(h->rq->msg.method, cymg_str_n("HEAD", 4));
    h->req_keepalive = (h->rq->msg.flags & CYMG_HTTP_F_KEEPALIVE) != 0;
    h->req_http10 = (h->rq->msg.flags & CYMG_HTTP_F_HTTP10) != 0;
    h->replied = false;
    h->sent_mark = c->sent_total;
    if (h->body_kind == CYMG_HTTP_BODY_NONE) cymg__http_deadline(c, h, DL_NONE, 0);
  }
  if (h->body_kind != CYMG_HTTP_BODY_NONE) {
    /* From here the body's timeouts bound the wait (on a client, they take over
     * from the wait for the response). */
    h->rq->body_start = cymg__millis();
    body_deadline(c, h);
  }
  h->in_hdrs = true;
  if (c->fn) c->fn(c, CYMG_EV_HTTP_HDRS, &h->rq->msg);
  if (cymg__http_of(c) != h) return false; /* the handler switched protocols */
  h->in_hdrs = false;
  if (c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) return false;
  if (h->is_server && (h->replied || c->sent_total != h->sent_mark)) {
    /* Answered from the head alone (401, 413...): the body, if any, is not
     * read; the connection closes once the reply is out. */
    if (h->body_kind != CYMG_HTTP_BODY_NONE) {
      h->phase = HTTP_DEAD;
      cymg_drain(c);
      return false;
    }
  }
  if (!h->streaming && h->body_kind == CYMG_HTTP_BODY_LENGTH &&
      (uint64_t) h->rq->msg.content_length > h->conf->max_body) {
    if (h->is_server) {
      server_refuse(c, h, 413, "body larger than the server accepts");
    } else {
      h->phase = HTTP_DEAD;
      cymg_error(c, "HTTP response: body of %lld bytes exceeds the limit",
                 (long long) h->rq->msg.content_length);
    }
    return false;
  }
  if (h->is_server && (h->rq->msg.flags & CYMG_HTTP_F_EXPECT_CONTINUE) &&
      h->body_kind != CYMG_HTTP_BODY_NONE && cymg_conn_recv_len(c) <= head_len) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    int rc = cymg_send(c, cont, sizeof(cont) - 1);
    if (rc < 0) { /* the client may wait for it before sending the body */
      cymg_error(c, "HTTP: 100 Continue could not be queued: %s", cymg_strerror(rc));
      return false;
    }
    h->sent_mark = c->sent_total; /* an interim response answers nothing */
  }
  if (h->streaming) {
    h->head_copy = malloc(head_len);
    if (h->head_copy == NULL) {
      fail(c, h, CYMG_HTTP_ERR_HEAD_TOO_LARGE);
      return false;
    }
    memcpy(h->head_copy, cymg__iobuf_data(&c->recv), head_len);
    cymg_conn_consume(c, head_len);
  }
  return true;
}

void cymg__http_refresh_views(cymg__http *h, const char *buf) {
  if (buf == h->rq->parsed_at) return;
  int reason;
  cymg_http_msg saved = h->rq->msg;
  parse_head(h, buf, h->rq->head_len, &reason);
  h->rq->msg.flags = saved.flags;
  h->rq->parsed_at = buf;
}

static void deliver(cymg_conn *c, cymg__http *h, size_t consumed) {
  if (h->is_server) {
    h->phase = HTTP_WAIT_REPLY;
    /* The request is in: no timeout runs while the handler answers (a late
     * answer from a timer or a worker is fine), as for a request without body. */
    cymg__http_deadline(c, h, DL_NONE, 0);
  } else {
    h->phase = HTTP_HEAD;
    if (h->cl->mq_len) {
      h->cl->mq_head++;
      h->cl->mq_len--;
    }
    cymg__http_deadline(c, h, h->cl->mq_len ? DL_RESPONSE : DL_NONE, h->conf->head_ms);
  }
  /* The handler may switch the connection to another protocol (a WebSocket
   * upgrade), which frees h: after it, only c is touched. The message's bytes
   * are HTTP's either way. */
  if (c->fn) c->fn(c, CYMG_EV_HTTP_MSG, &h->rq->msg);
  cymg_conn_consume(c, consumed);
}

/* Streaming: hands decoded body pieces to the user as READ, then HTTP_MSG. */
static bool stream_body(cymg_conn *c, cymg__http *h) {
  for (;;) {
    if (c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) return false;
    cymg_str d = cymg_conn_recv_data(c);
    size_t piece = 0, used = 0;
    bool done = false;
    if (h->body_kind == CYMG_HTTP_BODY_LENGTH) {
      uint64_t left = (uint64_t) h->rq->msg.content_length - h->rq->body_have;
      piece = used = d.len < left ? d.len : (size_t) left;
      done = h->rq->body_have + piece == (uint64_t) h->rq->msg.content_length;
    } else if (h->body_kind == CYMG_HTTP_BODY_CHUNKED) {
      int n = cymg_http_chunked_decode(&h->rq->chunked, (char *) d.buf, d.len, &piece);
      if (n < 0) {
        fail(c, h, cymg_http_chunked_reason(&h->rq->chunked));
        return false;
      }
      used = (size_t) n;
      done = cymg_http_chunked_done(&h->rq->chunked);
    } else if (h->body_kind == CYMG_HTTP_BODY_CLOSE) {
      piece = used = d.len; /* ends at CLOSE */
    } else {
      done = true;
    }
    if (used > 0 && !done) body_progress(c, h);
    if (piece > 0 && c->fn) {
      size_t n = piece;
      c->fn(c, CYMG_EV_READ, &n);
      if (cymg__http_of(c) != h) return false;
    }
    h->rq->body_have += piece;
    cymg_conn_consume(c, used);
    if (!done) {
      if (used == 0 || cymg_conn_recv_len(c) == 0) return false;
      continue;
    }
    c->flags &= ~CYMG__F_BODY_STREAM;
    cymg__http_refresh_views(h, h->head_copy);
    h->rq->msg.body = cymg_str_n(h->head_copy + h->rq->head_len, 0);
    h->rq->msg.message = cymg_str_n(h->rq->msg.head.buf, h->rq->msg.head.len);
    h->rq->msg.flags |= CYMG_HTTP_F_STREAMED;
    deliver(c, h, 0);
    if (cymg__http_of(c) == h) {
      free(h->head_copy);
      h->head_copy = NULL;
      h->rq->parsed_at = NULL;
    }
    return true;
  }
}

bool cymg__http_read_message(cymg_conn *c, cymg__http *h) {
  if (h->phase == HTTP_HEAD) {
    cymg_str d = cymg_conn_recv_data(c);
    if (d.len == 0) {
      /* A keep-alive connection waiting for its next request keeps no
       * message block (its header table alone is 3.2 KiB by default;
       * docs/tls.md, docs/design.md): the next head gets a fresh one. No
       * view points into it between requests. */
      if (h->is_server && h->rq != NULL) {
        rq_put(h->conf, h->rq);
        h->rq = NULL;
      }
      return false;
    }
    if (h->rq == NULL && (h->rq = rq_get(h->conf)) == NULL) {
      cymg_error(c, "HTTP: header table: out of memory");
      return false;
    }
    if (h->is_server && h->deadline_kind != DL_HEAD)
      cymg__http_deadline(c, h, DL_HEAD, h->conf->head_ms);
    size_t n = d.len < h->conf->max_head ? d.len : h->conf->max_head;
    int reason = CYMG_HTTP_ERR_NONE;
    int rc = parse_head(h, d.buf, n, &reason);
    if (rc == CYMG_EAGAIN) {
      if (d.len >= h->conf->max_head) fail(c, h, CYMG_HTTP_ERR_HEAD_TOO_LARGE);
      return false;
    }
    if (rc < 0) {
      fail(c, h, reason != CYMG_HTTP_ERR_NONE ? reason : CYMG_HTTP_ERR_TOO_MANY_HEADERS);
      return false;
    }
    h->rq->parsed_at = d.buf;
    if (!h->is_server && h->rq->msg.status < 200 && h->rq->msg.status != 101) {
      cymg_conn_consume(c, (size_t) rc); /* interim response: wait for the real one */
      return true;
    }
    if (!on_head(c, h, (size_t) rc)) return false;
  }
  if (h->phase != HTTP_BODY) return false;
  if (h->streaming) return stream_body(c, h);

  cymg_str d = cymg_conn_recv_data(c);
  char *buf = (char *) d.buf;
  size_t body_len = 0, consumed = h->rq->head_len;
  switch (h->body_kind) {
    case CYMG_HTTP_BODY_LENGTH: {
      uint64_t have = d.len - h->rq->head_len;
      if (have < (uint64_t) h->rq->msg.content_length) {
        if (have > h->rq->body_have) {
          h->rq->body_have = have;
          body_progress(c, h);
        }
        return false;
      }
      body_len = (size_t) h->rq->msg.content_length;
      consumed += body_len;
      break;
    }
    case CYMG_HTTP_BODY_CHUNKED: {
      /* Decoded bytes are kept right behind the head and the framing is cut out
       * of the buffer as it is parsed, so the buffer holds head + body + what
       * is not decoded yet (a partial size line or trailer): the limits count
       * body bytes, however small the chunks. Everything that arrived is decoded
       * at once and the rest moved down once, so each byte is touched a bounded
       * number of times. */
      size_t at = h->rq->head_len + (size_t) h->rq->body_have, dlen;
      int n = cymg_http_chunked_decode(&h->rq->chunked, buf + at, d.len - at, &dlen);
      if (n < 0) {
        fail(c, h, cymg_http_chunked_reason(&h->rq->chunked));
        return false;
      }
      h->rq->body_have += dlen;
      if (h->rq->body_have > h->conf->max_body) {
        if (h->is_server) {
          server_refuse(c, h, 413, "body larger than the server accepts");
        } else {
          h->phase = HTTP_DEAD;
          cymg_error(c, "HTTP response: body exceeds the limit");
        }
        return false;
      }
      if (!cymg_http_chunked_done(&h->rq->chunked)) {
        if (n > 0) body_progress(c, h);
        /* Not done: the decoder took every byte but a partial trailer section,
         * so what moves down is at most that. Done, nothing is cut: the bytes
         * behind the message (a pipelined request) are consumed with it. */
        if ((size_t) n > dlen) {
          bool was_full = c->recv.len >= c->recv_limit;
          cymg__iobuf_cut(&c->recv, at + dlen, (size_t) n - dlen);
          if (was_full) cymg__conn_update_io(c);
        }
        return false;
      }
      body_len = (size_t) h->rq->body_have;
      consumed = at + (size_t) n;
      break;
    }
    case CYMG_HTTP_BODY_CLOSE: {
      uint64_t have = d.len - h->rq->head_len;
      if (have > h->conf->max_body) { /* else it would stall at the receive limit */
        h->phase = HTTP_DEAD;
        cymg_error(c, "HTTP response: body exceeds the limit");
        return false;
      }
      if (have > h->rq->body_have) {
        h->rq->body_have = have;
        body_progress(c, h);
      }
      return false; /* complete at end of stream: see the CLOSE event */
    }
    default: break;
  }
  cymg__http_refresh_views(h, buf);
  h->rq->msg.body = cymg_str_n(buf + h->rq->head_len, body_len);
  h->rq->msg.message = cymg_str_n(h->rq->msg.head.buf, (size_t) (buf + h->rq->head_len + body_len - h->rq->msg.head.buf));
  deliver(c, h, consumed);
  return true;
}

int cymg_http_stream_body(cymg_conn *c) {
  cymg__http *h = c ? cymg__http_of(c) : NULL;
  /* Only while the head is being handed over: later, body bytes may already sit
   * behind the head in the buffer. */
  if (h == NULL || h->phase != HTTP_BODY || !h->in_hdrs) return CYMG_ESTATE;
  h->streaming = true;
  if (h->is_server) c->flags |= CYMG__F_BODY_STREAM;
  return 0;
}

/* ---- the server's request cycle ---- */

static bool response_complete(const cymg_conn *c, const cymg__http *h) {
  return (h->replied || c->sent_total != h->sent_mark) && !h->resp_chunked && h->file_fd < 0;
}

/* How far a connection reads ahead of a request still being answered: enough
 * for a burst of pipelined requests, not the whole receive limit (a client
 * pipelining file requests without reading the files would otherwise fill it). */
#define PIPELINE_AHEAD (64u << 10)

/* Serves what is in the buffer: requests one after the other, each only once the
 * one before it has been answered, so pipelined replies keep their order. The
 * next request is not started either while the answers before it wait unread
 * above the output high-water mark: it is, on WRITE, once they drain. */
static void server_run(cymg_conn *c, cymg__http *h) {
  for (;;) {
    if (c->flags & (CYMG__F_CLOSING | CYMG__F_DRAINING)) return;
    if (h->phase == HTTP_WAIT_REPLY) {
      if (!response_complete(c, h)) {
        cymg__conn_hold_read(c, cymg_conn_recv_len(c) >= PIPELINE_AHEAD);
        return;
      }
      cymg__conn_hold_read(c, false);
      if (!h->req_keepalive || h->resp_close) {
        h->phase = HTTP_DEAD;
        cymg_drain(c);
        return;
      }
      h->phase = HTTP_HEAD;
      cymg__http_deadline(c, h, DL_IDLE, h->conf->idle_ms);
    }
    if (h->phase == HTTP_HEAD && cymg__conn_out_full(c)) return;
    if (h->phase == HTTP_DEAD || !cymg__http_read_message(c, h)) return;
    if (cymg__http_of(c) != h) return; /* upgraded to another protocol */
  }
}

static bool http_event(cymg_conn *c, int ev, void *ev_data) {
  cymg__http *h = cymg_conn_proto_state(c);
  if (h == NULL || h->is_listener) return false;
  if (ev == CYMG__EV_DEADLINE) {
    http_deadline_fired(c, h);
    return true;
  }
  if (!h->is_server) return cymg__http_client_event(c, h, ev, ev_data);
  switch (ev) {
    case CYMG_EV_READ:
      server_run(c, h);
      return true;
    case CYMG_EV_WRITE:
    case CYMG__EV_RESUME:
      /* A reply may be complete now; or requests wait in the buffer, paused
       * by backpressure (server_run checks the marks). */
      if (h->phase == HTTP_WAIT_REPLY || (h->phase == HTTP_HEAD && cymg_conn_recv_len(c) > 0))
        server_run(c, h);
      return ev == CYMG__EV_RESUME;
    default: return false;
  }
}

const cymg_proto cymg__http_proto = {"http", http_event, http_free, http_accept};

/* ---- entry points ---- */

int cymg__http_listen_as(cymg_mgr *mgr, const char *url, const char *scheme, cymg_event_fn fn,
                         void *fn_data, cymg_conn **out) {
  cymg_conn *c;
  int rc = cymg__listen_url(mgr, url, scheme, false, fn, fn_data, &c);
  if (rc < 0) return rc;
  rc = cymg_http_attach(c, true);
  if (rc < 0) {
    cymg__mgr_errmsg(mgr, "listen '%s': %s", url, cymg_strerror(rc));
    cymg_close(c);
    return rc;
  }
  if (out) *out = c;
  return 0;
}

int cymg_http_listen(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                     cymg_conn **out) {
  return cymg__http_listen_as(mgr, url, "http", fn, fn_data, out);
}
