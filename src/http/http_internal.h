/* What the HTTP layer's modules share (server, client, static files, multipart). */
#ifndef CYMG_HTTP_INTERNAL_H
#define CYMG_HTTP_INTERNAL_H

#include "cymg/http.h"
#include "internal.h"
#include "ws/ws_conf.h"

/* Settings a listener hands down to the connections it accepts. One block is
 * shared, counted by refs, by a listener and every connection it accepted
 * until one of them changes a setting (cymg__http_conf_mut): 64 bytes fewer
 * per idle connection. Single-threaded, as the manager is. */
typedef struct cymg__http_conf {
  uint32_t refs;
  size_t max_head, max_headers;
  uint64_t max_body;
  uint32_t head_ms, idle_ms;
  /* A body: the longest pause between reads that bring bytes of it, and the
   * longest the whole body may take (UINT32_MAX: no bound). */
  uint32_t body_gap_ms, body_total_ms;
  /* WebSocket settings for a later upgrade: set on a listener, they reach the
   * accepted connections with the rest of this struct. */
  cymg__ws_conf ws;
  /* One message block of max_headers entries that a connection gave back (at
   * close, or idle between requests), for the next one to take: a block that
   * size (3.2 KiB by default) bypasses glibc's per-thread cache, and a
   * connection per request paid its malloc and free each time. Not copied
   * with the rest (cymg__http_conf_mut). */
  struct cymg__http_rq *spare;
} cymg__http_conf;

enum { HTTP_HEAD, HTTP_BODY, HTTP_WAIT_REPLY, HTTP_DEAD };
/* DL_BODY: the gap timeout of a body; DL_BODY_TOTAL: its total limit, once that
 * comes before the next gap deadline could. */
enum { DL_NONE, DL_HEAD, DL_IDLE, DL_BODY, DL_BODY_TOTAL, DL_RESPONSE };

/* The message being read, with its header table: allocated when the first
 * bytes of a head arrive, and on a server freed again when the connection
 * waits for its next request, so that an idle keep-alive connection keeps
 * only the small cymg__http below (docs/design.md, "Per-connection memory").
 * A client keeps its own for the connection's life. No view points into it
 * between requests. */
typedef struct cymg__http_rq {
  cymg_http_msg msg;
  cymg_http_chunked chunked;
  const char *parsed_at; /* receive buffer address msg's views point into */
  size_t head_len;       /* bytes of head (with skipped empty lines) */
  uint64_t body_have;    /* body bytes collected (decoded) behind the head; for a
                          * sized buffered body, the bytes there so far */
  uint64_t body_start;   /* cymg__millis() when the head was complete */
  cymg_http_header hdrs[]; /* conf.max_headers entries (at least 1) */
} cymg__http_rq;

/* The state of one HTTP connection (or the settings of a listener). */
typedef struct cymg__http_client {
  char host[272];        /* Host: value */
  char methods[8][8];    /* FIFO of outstanding request methods (HEAD matters) */
  unsigned mq_head, mq_len;
} cymg__http_client;

/* Every idle keep-alive connection has one: members grouped by size, so that
 * no padding sits between them (104 bytes on LP64; docs/design.md). */
typedef struct cymg__http {
  cymg__http_conf *conf; /* shared; written only through cymg__http_conf_mut */
  /* the message being read: NULL on a server connection waiting for its
   * next request (see cymg__http_rq) */
  struct cymg__http_rq *rq;
  char *head_copy;       /* streaming: the head, kept for the final HTTP_MSG */
  /* client only: a server's connections keep none of it, as every idle
   * connection's bytes count (docs/tls.md) */
  struct cymg__http_client *cl;
  uint64_t resp_left;    /* resp_sized: body bytes still to come */
  uint64_t sent_mark;    /* c->sent_total when the request was handed over */
  /* a file body being sent (server) */
  uint64_t file_off, file_left;
  /* the connection's deadline (its cymg__conn_deadline entry is re-armed
   * lazily: it may be earlier than this) */
  uint64_t deadline;
  int phase;
  int body_kind;
  int last_status;       /* of the reply most recently started */
  int file_fd;
  int deadline_kind;
  bool is_server, is_listener;
  bool in_hdrs;          /* the HTTP_HDRS callback is running */
  bool streaming;
  /* the request being answered (server) */
  bool req_head, req_keepalive, req_http10;
  bool resp_chunked;     /* a reply_start() body is under way */
  bool resp_sized;       /* ... of a declared length: resp_left bytes to come */
  bool resp_close;       /* the body of the reply ends with the connection */
  bool replied;          /* a complete reply was made through the API */
} cymg__http;

extern const cymg_proto cymg__http_proto;

/* h's settings, made its own (copied when shared) so that the caller may change
 * them; NULL when the copy finds no memory (nothing changed then). */
cymg__http_conf *cymg__http_conf_mut(cymg__http *h);

/* Listens on url, which must carry `scheme` ("http", "ws"), with the HTTP layer
 * on the listener. */
int cymg__http_listen_as(cymg_mgr *mgr, const char *url, const char *scheme, cymg_event_fn fn,
                         void *fn_data, cymg_conn **out);
/* The Host header value for a request to url: the host as written ([v6] in
 * brackets) and the port when it is not the scheme's default. */
void cymg__http_host(const char *url, char *dst, size_t dst_len);

/* The HTTP state of c, or NULL when c carries no HTTP layer. */
cymg__http *cymg__http_of(const cymg_conn *c);

/* Answers the current request with a file body: status, extra header lines (each
 * ending in CRLF; Content-Type etc. are the caller's), len bytes of fd from
 * offset. Content-Length is added. The fd is owned by the layer from here on
 * (closed when sent, on error, or at once for HEAD). On plain connections the
 * bytes go with sendfile(2) as the socket drains; nothing is held in memory.
 * Returns 0 or a negative code (then fd is already closed). */
int cymg__http_reply_file(cymg_conn *c, int status, const char *headers, int fd, uint64_t offset,
                          uint64_t len);
/* Bodies up to this size are read into the send buffer behind the head, so
 * head and body leave in one send (no sendfile, no pump). */
#define CYMG__HTTP_INLINE_FILE 16384
/* The same; with borrowed, fd stays the caller's (a cached descriptor): it is
 * read from, or duplicated for a large body, never closed. */
int cymg__http_reply_file_ex(cymg_conn *c, int status, const char *headers, int fd,
                             uint64_t offset, uint64_t len, bool borrowed);

/* For a reply that could not be queued (rc < 0 but EINVAL, ESTATE, ECLOSED:
 * those changed nothing): fails the connection, ERROR (naming what) at the
 * next dispatch then CLOSE, as its request is left unanswered. Returns rc. */
int cymg__http_reply_failed(cymg_conn *c, int rc, const char *what);

/* The method of the request being answered (empty when none). */
cymg_str cymg__http_req_method(const cymg_conn *c);

/* Sets the connection's deadline of the given kind ms from now (DL_NONE clears). */
void cymg__http_deadline(cymg_conn *c, cymg__http *h, int kind, uint32_t ms);
/* Client side of the layer (client.c). */
bool cymg__http_client_event(cymg_conn *c, cymg__http *h, int ev, void *ev_data);
/* Rebuilds the views of h->msg when the bytes of its head are now at buf (the
 * receive buffer moved since parsing, or the head was copied). */
void cymg__http_refresh_views(cymg__http *h, const char *buf);
/* Gives the body of a fully framed message to the user, with HTTP_MSG. */
void cymg__http_deliver(cymg_conn *c, cymg__http *h);
/* Reads the next message from the receive buffer as far as it goes: returns
 * true when a whole message (head + body) was handed over. */
bool cymg__http_read_message(cymg_conn *c, cymg__http *h);

#endif
