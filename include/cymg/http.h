/* HTTP/1.1 (RFC 9110, RFC 9112).
 *
 * The first part is the codec: sans-I/O, allocation-free functions over bytes that
 * the server and client layers feed from a connection's receive buffer. Every view
 * they hand out (cymg_str) points into the caller's buffer; nothing is copied, and
 * the views stay valid as long as those bytes do. All functions are thread-safe
 * (no shared state).
 *
 * Parsing decisions (RFC 9112 leaves these to the recipient):
 * - Line endings: CRLF; a bare LF is accepted as the end of the start line and of a
 *   header/trailer field line (RFC 9112 §2.2 MAY). A CR not followed by LF is always
 *   an error. Chunked framing lines (chunk size, the CRLF after chunk data) require
 *   CRLF: a bare LF there is rejected, because lenient chunk parsing is a known
 *   request-smuggling vector. That includes the trailer section, which decides
 *   where a chunked message ends.
 * - Empty lines (CRLF or LF) before a request line are skipped (§2.2); the return
 *   value then counts them, while msg->head starts at the request line. Responses
 *   get no such allowance.
 * - Version: "HTTP/" DIGIT "." DIGIT, case-sensitive. Major 1 with minor >= 2 is
 *   handled as HTTP/1.1 (RFC 9110 §2.5); major != 1 fails with
 *   CYMG_HTTP_ERR_VERSION_MAJOR (505); anything else with CYMG_HTTP_ERR_VERSION.
 * - Request-target: no controls, SP or DEL; octets >= 0x80 are passed through (as
 *   nginx does; decoding and path checks belong to the layer above). '#' is
 *   rejected. The form must fit the method: "*" only for OPTIONS, authority-form
 *   (host:port) only and always for CONNECT.
 * - HTTP/1.1 requests must carry exactly one Host field (RFC 9112 §3.2), with a
 *   value made of URI authority characters; HTTP/1.0 requests may omit it.
 * - Content-Length: a list or repetition of identical values is accepted as that
 *   value (RFC 9110 §8.6 allows either choice); differing values, an empty value,
 *   non-digits or a value above INT64_MAX are errors.
 * - Transfer-Encoding together with Content-Length is an error, in requests and in
 *   responses. "chunked" twice is an error. In a request the last coding must be
 *   chunked (400), and any other coding is not implemented (501). In a response any
 *   codings are accepted; if chunked is not last the body is read until close.
 *   Transfer-Encoding in an HTTP/1.0 message is an error (framing is faulty, §6.1).
 * - Response status line: "HTTP/x.y SP 3DIGIT SP reason"; the SP before an empty
 *   reason may be missing (many servers omit it). Status 100..999.
 */
#ifndef CYMG_HTTP_H
#define CYMG_HTTP_H

#include "common.h"
#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- codec ---- */

/* The head-size limit callers should pass (at most this many bytes per call). */
#define CYMG_HTTP_MAX_HEAD 16384
/* Largest trailer section the chunked decoder buffers before failing. */
#define CYMG_HTTP_MAX_TRAILER 16384

/* One header field: views of the name as received and the value with surrounding
 * whitespace removed. */
typedef struct cymg_http_header {
  cymg_str name, value;
} cymg_http_header;

/* msg->flags */
#define CYMG_HTTP_F_CHUNKED 0x01u           /* Transfer-Encoding ends in chunked */
#define CYMG_HTTP_F_KEEPALIVE 0x02u         /* connection persists after this message */
#define CYMG_HTTP_F_UPGRADE 0x04u           /* Upgrade field plus Connection: upgrade */
#define CYMG_HTTP_F_EXPECT_CONTINUE 0x08u   /* HTTP/1.1 request with Expect: 100-continue */
#define CYMG_HTTP_F_HTTP10 0x10u            /* version HTTP/1.0 */
#define CYMG_HTTP_F_TRANSFER_ENCODING 0x20u /* Transfer-Encoding present (any codings) */
#define CYMG_HTTP_F_CONNECTION_CLOSE 0x40u  /* Connection: close was sent */
#define CYMG_HTTP_F_STREAMED 0x80u          /* body went to the handler as READ events */

/* A parsed message: views into the parsed buffer. Only `body` and `message` are
 * left for the layer above to complete once the body is framed. */
typedef struct cymg_http_msg {
  cymg_str method;           /* request: "GET"; empty in responses */
  cymg_str uri;              /* request: path only ("/a/b"). absolute-form: the path after the
                                authority (may be empty); authority-form: "host:port"; "*" */
  cymg_str query;            /* after '?', without it; empty when absent */
  cymg_str proto;            /* "HTTP/1.1" as received */
  int status;                /* responses: 100..999; 0 in requests */
  cymg_str reason;           /* responses: reason phrase, may be empty */
  cymg_http_header *headers; /* the caller's array */
  size_t num_headers;
  cymg_str head;          /* start line + fields + the final empty line */
  cymg_str body;          /* set by the parser to an empty view right after head */
  cymg_str message;       /* set by the parser to head; the layer above extends it */
  int64_t content_length; /* -1 when absent */
  unsigned flags;         /* CYMG_HTTP_F_* */
  cymg_str target;        /* request: the whole request-target as received */
} cymg_http_msg;

/* Why a parse failed: stored through the `reason` out-parameters. */
enum cymg_http_err {
  CYMG_HTTP_ERR_NONE = 0,
  CYMG_HTTP_ERR_METHOD,             /* method is not a token / not followed by SP */
  CYMG_HTTP_ERR_TARGET,             /* bad request-target character or form */
  CYMG_HTTP_ERR_VERSION,            /* malformed HTTP-version */
  CYMG_HTTP_ERR_VERSION_MAJOR,      /* HTTP major version other than 1 (505) */
  CYMG_HTTP_ERR_STATUS,             /* status code not 3 digits in 100..999 */
  CYMG_HTTP_ERR_REASON,             /* control character in reason phrase */
  CYMG_HTTP_ERR_BARE_CR,            /* CR not followed by LF */
  CYMG_HTTP_ERR_BARE_LF,            /* LF without CR where CRLF is required */
  CYMG_HTTP_ERR_NUL,                /* NUL byte */
  CYMG_HTTP_ERR_OBS_FOLD,           /* field line starts with whitespace */
  CYMG_HTTP_ERR_WS_BEFORE_COLON,    /* whitespace between field name and colon */
  CYMG_HTTP_ERR_HEADER_NAME,        /* invalid/empty field name or missing colon */
  CYMG_HTTP_ERR_HEADER_VALUE,       /* control character in field value */
  CYMG_HTTP_ERR_TOO_MANY_HEADERS,   /* more fields than the caller's array (431) */
  CYMG_HTTP_ERR_HEAD_TOO_LARGE,     /* for callers: head exceeds their limit (431) */
  CYMG_HTTP_ERR_CL_INVALID,         /* Content-Length not a decimal number */
  CYMG_HTTP_ERR_CL_CONFLICT,        /* Content-Length values differ */
  CYMG_HTTP_ERR_CL_AND_TE,          /* both Content-Length and Transfer-Encoding */
  CYMG_HTTP_ERR_TE_INVALID,         /* Transfer-Encoding value malformed / empty */
  CYMG_HTTP_ERR_TE_NOT_CHUNKED,     /* request coding list does not end in chunked */
  CYMG_HTTP_ERR_TE_CHUNKED_TWICE,   /* chunked applied more than once */
  CYMG_HTTP_ERR_TE_UNSUPPORTED,     /* transfer coding not implemented (501) */
  CYMG_HTTP_ERR_TE_HTTP10,          /* Transfer-Encoding in an HTTP/1.0 message */
  CYMG_HTTP_ERR_HOST,               /* HTTP/1.1 request without one valid Host */
  CYMG_HTTP_ERR_CHUNK_SIZE,         /* chunk size missing, not hex or too many digits */
  CYMG_HTTP_ERR_CHUNK_TOO_LARGE,    /* chunk size above the decoder's limit */
  CYMG_HTTP_ERR_CHUNK_EXT,          /* malformed chunk extension */
  CYMG_HTTP_ERR_CHUNK_EXT_TOO_LONG, /* chunk extension longer than the bound */
  CYMG_HTTP_ERR_CHUNK_CRLF,         /* chunk data not followed by CRLF */
  CYMG_HTTP_ERR_TRAILER_TOO_LARGE,  /* trailer section above CYMG_HTTP_MAX_TRAILER */
  CYMG_HTTP_ERR_MAX_                /* not a reason: one past the last */
};

/* Parses a request head from buf[0..len). Pass at most the head-size limit
 * (CYMG_HTTP_MAX_HEAD) of bytes: CYMG_EAGAIN with len >= that limit means the head
 * is too large, answer 431 (CYMG_HTTP_ERR_HEAD_TOO_LARGE).
 * Returns the number of bytes the head occupies from buf (including skipped empty
 * lines before it, so advance by the return value, not head.len) when complete;
 * CYMG_EAGAIN when more bytes are needed; CYMG_EPARSE when malformed; CYMG_ELIMIT
 * when there are more than max_hdrs fields. On failure *reason (if not NULL) gets a
 * CYMG_HTTP_ERR_* value; on success CYMG_HTTP_ERR_NONE. Framing is checked here:
 * msg->content_length and msg->flags are final. A strict prefix of any input
 * returns CYMG_EAGAIN or the same failure as the whole input, never success.
 * msg->headers = hdrs (caller-owned, max_hdrs entries); msg is fully (re)written
 * on success and may hold partial results otherwise. */
CYMG_API CYMG_NODISCARD int cymg_http_parse_request(const char *buf, size_t len, cymg_http_msg *msg,
                                                    cymg_http_header *hdrs, size_t max_hdrs,
                                                    int *reason);

/* Parses a response head; same conventions as cymg_http_parse_request. method,
 * uri, query and target are empty; status and reason are set. */
CYMG_API CYMG_NODISCARD int cymg_http_parse_response(const char *buf, size_t len,
                                                     cymg_http_msg *msg, cymg_http_header *hdrs,
                                                     size_t max_hdrs, int *reason);

/* Parses a field section such as chunked trailers: field lines up to and including
 * the empty line. Same field rules and return conventions as the head parsers;
 * *num_hdrs gets the number of fields stored in hdrs (hdrs may be NULL when
 * max_hdrs is 0 and the caller only validates; then any field gives CYMG_ELIMIT,
 * so pass SIZE_MAX with NULL to count without storing). */
CYMG_API CYMG_NODISCARD int cymg_http_parse_fields(const char *buf, size_t len,
                                                   cymg_http_header *hdrs, size_t max_hdrs,
                                                   size_t *num_hdrs, int *reason);

/* Short English text for a CYMG_HTTP_ERR_* value (static, never NULL). */
CYMG_API const char *cymg_http_err_text(int reason);
/* The status code to answer a request that failed with this reason: 400, 431
 * (too many fields / head too large), 501 (unknown transfer coding) or 505. */
CYMG_API int cymg_http_err_status(int reason);

/* How the body of a parsed message is delimited (RFC 9112 §6.3). */
enum cymg_http_body {
  CYMG_HTTP_BODY_NONE = 0, /* no body */
  CYMG_HTTP_BODY_LENGTH,   /* msg->content_length bytes (may be 0) */
  CYMG_HTTP_BODY_CHUNKED,  /* chunked: use cymg_http_chunked_decode */
  CYMG_HTTP_BODY_CLOSE     /* responses only: everything until the peer closes */
};

/* Returns a CYMG_HTTP_BODY_* value for a message accepted by the parsers. For a
 * response, request_method is the method of the request it answers (an empty
 * view if unknown): HEAD responses, 1xx, 204, 304 and 2xx to CONNECT have no body.
 * Requests without Content-Length or chunked have no body. */
CYMG_API int cymg_http_body_kind(const cymg_http_msg *msg, bool is_response,
                                 cymg_str request_method);

/* Returns the value of the first field named `name` (ASCII case-insensitive), or
 * NULL. The pointer is into msg->headers. */
CYMG_API cymg_str *cymg_http_get_header(const cymg_http_msg *msg, const char *name);

/* Finds parameter `var` inside a field value made of ';' or ','-separated
 * name=value items: `text/html; charset="utf-8"` gives "utf-8" for "charset";
 * `a=1; b=2` gives "2" for "b". Names compare ASCII case-insensitively. A quoted
 * value is returned without its quotes; backslash escapes inside it are left as
 * they are. A ',' ends an unquoted value only when a name= follows it, so dates
 * such as `Expires=Wed, 21 Oct 2015 ...` stay whole. An item without '=' matches
 * with an empty value. Returns 0 and sets *out (a view into header_value) when
 * found, CYMG_ENOTFOUND when absent, CYMG_EPARSE for an unterminated quote. */
CYMG_API CYMG_NODISCARD int cymg_http_header_var(cymg_str header_value, const char *var,
                                                 cymg_str *out);

/* The RFC 9110 reason phrase for a status code (plus 418, 429, 431, 451 and a few
 * other registered ones); "" for unknown codes. Static storage. */
CYMG_API const char *cymg_http_status_reason(int status);

/* Incremental, in-place chunked body decoder (RFC 9112 §7.1).
 *
 * Contract: call cymg_http_chunked_decode(st, buf, len, &data_len) with the raw
 * bytes received so far that it has not consumed yet. It returns the number of
 * bytes consumed (n) and moves the decoded body bytes to buf[0..data_len)
 * (data_len <= n; buf[data_len..n) is garbage afterwards). Bytes buf[n..len) were
 * not consumed and must be passed again, at the front of the next call, followed by
 * newly received bytes. Chunk-size lines and data are consumed as they arrive, at
 * any split; only the trailer section is held back until it is complete (at most
 * CYMG_HTTP_MAX_TRAILER bytes), so while cymg_http_chunked_in_trailer() is true
 * the unconsumed bytes start with the trailer section and the caller may look at
 * it with cymg_http_parse_fields(). Once cymg_http_chunked_done() is true the
 * message has ended exactly at the last byte consumed: what follows is the next
 * message, and further calls consume nothing.
 * Chunk extensions (BWS ";" BWS name [BWS "=" BWS token|quoted-string]) are
 * validated and skipped (no blanks before the CRLF, no bare LF anywhere), at most
 * 4096 bytes per size line, at most 16 hex digits per size (leading zeros count).
 * Trailer fields are validated like header fields, but every line of the trailer
 * section must end in CRLF.
 * Errors: CYMG_EPARSE or CYMG_ELIMIT, with the CYMG_HTTP_ERR_* reason from
 * cymg_http_chunked_reason(); errors are sticky.
 * To gather a whole body in a receive buffer: keep decoded bytes at the front,
 * decode the raw rest in place, then move the unconsumed tail down behind the new
 * data. */
typedef struct cymg_http_chunked {
  /* Private state: public only so it can be embedded. Do not touch. */
  uint64_t remaining; /* data bytes left in the current chunk */
  uint64_t size;      /* chunk size being read */
  uint64_t max_chunk; /* limit on one chunk's size */
  uint32_t line_len;  /* bytes of the current size line after the digits */
  uint8_t digits;     /* hex digits read on the current size line */
  uint8_t state;
  uint8_t reason; /* CYMG_HTTP_ERR_* after an error */
} cymg_http_chunked;

/* Initialises the decoder. max_chunk_size limits one chunk's declared size
 * (0 means INT64_MAX); the body's total size is for the caller to limit. */
CYMG_API void cymg_http_chunked_init(cymg_http_chunked *st, uint64_t max_chunk_size);
/* Decodes; see above. Returns bytes consumed (>= 0; at most INT_MAX per call, the
 * rest is simply left unconsumed), CYMG_EPARSE or CYMG_ELIMIT. */
CYMG_API CYMG_NODISCARD int cymg_http_chunked_decode(cymg_http_chunked *st, char *buf, size_t len,
                                                     size_t *data_len);
/* True once the last chunk and the trailer section have been consumed. */
CYMG_API bool cymg_http_chunked_done(const cymg_http_chunked *st);
/* True while the decoder waits for a complete trailer section. */
CYMG_API bool cymg_http_chunked_in_trailer(const cymg_http_chunked *st);
/* The CYMG_HTTP_ERR_* value after a failed decode, else CYMG_HTTP_ERR_NONE. */
CYMG_API int cymg_http_chunked_reason(const cymg_http_chunked *st);

/* ------------------------------------------------- server / client API ---- */
/* An HTTP connection carries the HTTP protocol layer: requests (on a server) or
 * responses (on a client) arrive as CYMG_EV_HTTP_HDRS when the head is complete,
 * then CYMG_EV_HTTP_MSG with the whole message, both with a cymg_http_msg * whose
 * views are valid until the event function returns. Framing, keep-alive,
 * pipelining (answered in order), chunked bodies, 100-continue, HEAD, limits and
 * timeouts are handled by the layer; bad requests are answered with the right
 * status (400, 408, 413, 431, 501, 505) and the connection is closed. */

/* Listens on "http://HOST:PORT" (see cymg_listen for hosts and port 0).
 * Returns 0 and sets *out, or a negative code with a reason in cymg_mgr_errmsg(). */
CYMG_API int cymg_http_listen(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                              cymg_conn **out);

/* Connects to "http://HOST:PORT". Send requests with cymg_http_request() (or
 * cymg_printf) after CYMG_EV_CONNECT, or at once: they are queued. */
CYMG_API int cymg_http_connect(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                               cymg_conn **out);

/* Turns the HTTP layer on for an existing TCP connection (server side when
 * is_server). For listeners, accepted connections inherit it. */
CYMG_API int cymg_http_attach(cymg_conn *c, bool is_server);

/* Limits, set on a listener (inherited by accepted connections) or a connection.
 * Zero keeps the current value. Defaults: head 16 KiB (431 beyond), 100 header
 * fields (431; at most 1,048,576), body 8 MiB when buffered (413). Returns 0,
 * CYMG_ESTATE (no HTTP layer, or a message is being read), CYMG_EINVAL, CYMG_ENOMEM. */
CYMG_API int cymg_http_set_limits(cymg_conn *c, size_t max_head, size_t max_headers,
                                  uint64_t max_body);
/* Timeouts in ms (0 keeps the current value; UINT32_MAX disables). head_ms: from
 * the first byte of a request to its complete head (408; slowloris), default
 * 30000. idle_ms: a keep-alive connection with no request in progress is closed,
 * default 60000. On a client, head_ms bounds the wait from a request to the
 * head of its response (ERROR "no response within N ms", then close); the body
 * is under cymg_http_set_body_timeouts(). On a listener, the values go to the
 * connections accepted afterwards. Returns 0, or CYMG_ESTATE when c carries no
 * HTTP layer. Not thread-safe: call from the manager's thread. */
CYMG_API int cymg_http_set_timeouts(cymg_conn *c, uint32_t head_ms, uint32_t idle_ms);
/* Timeouts of a message body in ms (0 keeps the current value; UINT32_MAX
 * disables), counted from the moment its head is complete, for buffered and
 * streamed bodies alike. gap_ms: the longest wait for more bytes of the body
 * (chunk framing counts as bytes of it); every read that brings some starts
 * the wait again; default 60000. total_ms: the longest the whole body may take,
 * however steadily it arrives; default UINT32_MAX (no limit). A server answers
 * 408 and closes; a client gets ERROR ("response body stalled" / "not complete
 * within N ms") and closes. On a listener, the values go to the connections
 * accepted afterwards; during a body, they apply to it from now on. Returns 0,
 * or CYMG_ESTATE when c carries no HTTP layer. Not thread-safe: call from the
 * manager's thread. */
CYMG_API int cymg_http_set_body_timeouts(cymg_conn *c, uint32_t gap_ms, uint32_t total_ms);

/* Called during CYMG_EV_HTTP_HDRS: the body is not buffered but handed over as it
 * arrives, as CYMG_EV_READ events whose data (const size_t *) counts the decoded
 * body bytes now at the front of cymg_conn_recv_data(); they are discarded when
 * the event returns. CYMG_EV_HTTP_MSG follows the last piece, with the same head
 * and an empty body. The body limit does not apply. On a server, while the body
 * streams, these pieces are the only READ events (cymg_mgr_set_read_events()
 * adds none). cymg_conn_pause_read() holds the body back while the program
 * cannot take more. Returns 0 or CYMG_ESTATE. */
CYMG_API int cymg_http_stream_body(cymg_conn *c);

/* ---- replies (server) ----
 * headers: extra header lines, each ending in "\r\n" (may be NULL or ""). Date,
 * Content-Length or Transfer-Encoding and, when the connection will close,
 * Connection: close are added. A reply to a HEAD request has no body.
 * status is a final status, 200..999: a 1xx (or anything outside) is refused
 * with CYMG_EINVAL and nothing is sent. 100 Continue goes out by itself when a
 * request expects it; 101 only through cymg_ws_upgrade(). */

/* Replies with a printf-formatted body. Returns 0 or a negative code. */
CYMG_API int cymg_http_reply(cymg_conn *c, int status, const char *headers, const char *fmt, ...)
    CYMG_PRINTF(4, 5);
/* Replies with len bytes of body (copied). */
CYMG_API int cymg_http_reply_data(cymg_conn *c, int status, const char *headers,
                                  const void *body, size_t len);
/* Starts a reply whose body follows in chunks (Transfer-Encoding: chunked; for an
 * HTTP/1.0 client, delimited by closing the connection). */
CYMG_API int cymg_http_reply_start(cymg_conn *c, int status, const char *headers);
/* Starts a reply with Content-Length: len whose body follows through
 * cymg_http_chunk(), sent as it is (no chunk framing); the reply is complete
 * with the len-th byte. A piece beyond len, or len 0 before the end, is refused
 * with CYMG_EINVAL and nothing is sent (a body cut short can only be ended by
 * closing the connection). For HEAD, 204 and 304, or len 0, only the head goes
 * out and the reply is complete at once. Returns 0 or a negative code. */
CYMG_API int cymg_http_reply_start_sized(cymg_conn *c, int status, const char *headers,
                                         uint64_t len);
/* Sends one body chunk; len 0 ends the body. Returns 0 or a negative code
 * (CYMG_ESTATE without cymg_http_reply_start). */
CYMG_API int cymg_http_chunk(cymg_conn *c, const void *data, size_t len);
CYMG_API int cymg_http_printf_chunk(cymg_conn *c, const char *fmt, ...) CYMG_PRINTF(2, 3);
/* Sends one Server-Sent Event (event: TYPE, then a data: line per line of data)
 * on a reply started with cymg_http_reply_start() and Content-Type:
 * text/event-stream. event may be NULL. */
CYMG_API int cymg_http_sse(cymg_conn *c, const char *event, const char *data);

/* The status of the reply most recently started on c (0 when none): for access
 * logs. */
CYMG_API int cymg_http_reply_status(const cymg_conn *c);

/* ---- requests (client) ---- */

/* Sends a request: method, uri ("/path?query"), extra header lines (each ending in
 * "\r\n"), and len bytes of body (Content-Length is added when body or len is
 * given, or for POST/PUT/PATCH). Host is added from the connect URL unless given.
 * Returns 0 or a negative code. */
CYMG_API int cymg_http_request(cymg_conn *c, const char *method, const char *uri,
                               const char *headers, const void *body, size_t len);
/* Writes an "Authorization: Basic ..." header line (for use while composing a
 * request by hand). */
CYMG_API int cymg_http_basic_auth(cymg_conn *c, const char *user, const char *pass);

/* ---- request helpers ---- */

/* Credentials of a request: Authorization: Basic (user and password), else
 * Authorization: Bearer (pass gets the token, user is empty), else user:pass in
 * an absolute-form target. Decoded into user/pass (NUL-terminated). Returns 0,
 * CYMG_ENOTFOUND, CYMG_EPARSE (bad base64), or CYMG_ENOSPC. */
CYMG_API CYMG_NODISCARD int cymg_http_creds(const cymg_http_msg *msg, char *user, size_t user_len,
                                            char *pass, size_t pass_len);
/* Decodes query variable `name` of a request into dst (see cymg_http_var). */
CYMG_API CYMG_NODISCARD int cymg_http_query_var(const cymg_http_msg *msg, const char *name,
                                                char *dst, size_t dst_len);

/* ---- static files ---- */

/* Options for serving files. Zero-initialise; fields added later keep their old
 * meaning at zero. Strings are borrowed for the duration of the call. */
typedef struct cymg_http_serve_opts {
  const char *root_dir;      /* serve_dir: the folder served (required) */
  const char *extra_headers; /* header lines added to every reply */
  const char *mime_types;    /* overrides, "ext=type,ext2=type2" */
  const char *page404;       /* file sent with 404 when nothing matches */
  const char *index_files;   /* tried for a folder, comma-separated; default "index.html,index.htm" */
  bool dir_listing;          /* list folders without an index file */
} cymg_http_serve_opts;

/* Answers the request in msg from files under opts->root_dir: GET and HEAD (405
 * otherwise), Range (one range: 206/416), ETag/If-None-Match and
 * Last-Modified/If-Modified-Since (304), MIME types, index files, a listing when
 * asked, precompressed ".gz" siblings for clients accepting gzip. Paths never
 * leave the root: "..", encoded dots and slashes, NUL, and symlinks pointing
 * outside give 404 (or 403). Returns 0 once a reply is under way, or a negative
 * code when nothing could be sent. */
CYMG_API int cymg_http_serve_dir(cymg_conn *c, const cymg_http_msg *msg,
                                 const cymg_http_serve_opts *opts);
/* Answers with one file (path on disk), with the same conditional, range and MIME
 * handling; 404 when it cannot be opened. */
CYMG_API int cymg_http_serve_file(cymg_conn *c, const cymg_http_msg *msg, const char *path,
                                  const cymg_http_serve_opts *opts);
/* The MIME type for a file name (by extension; overrides as in mime_types, may
 * be NULL). Returns a view of static storage or of overrides; never empty
 * ("application/octet-stream" when unknown). */
CYMG_API cymg_str cymg_http_mime_type(const char *path, const char *overrides);

/* ---- multipart/form-data ---- */

typedef struct cymg_http_part {
  cymg_str name;     /* form field name */
  cymg_str filename; /* empty when not a file */
  cymg_str headers;  /* the part's header block */
  cymg_str body;
} cymg_http_part;

/* Iterates the parts of a multipart/form-data body: start with ofs = 0; returns
 * the offset of the next part (> 0) and fills *part, 0 when there are no more
 * parts, or CYMG_EPARSE for a malformed body. The boundary is taken from msg's
 * Content-Type. */
CYMG_API CYMG_NODISCARD int64_t cymg_http_next_multipart(const cymg_http_msg *msg, int64_t ofs,
                                                         cymg_http_part *part);
/* Same, with the body and the boundary given directly. */
CYMG_API CYMG_NODISCARD int64_t cymg_http_multipart_next(cymg_str body, cymg_str boundary,
                                                         int64_t ofs, cymg_http_part *part);

/* Streams the file parts of a multipart/form-data request to files in folder
 * dir, without buffering the body. Call it from the handler's
 * CYMG_EV_HTTP_HDRS. It turns on cymg_http_stream_body() and takes over the
 * connection's event function until the request is done: body pieces (READ)
 * go to an incremental parser, other events (WRITE, POLL, ERROR, CLOSE...) are
 * passed on to your function with your user pointer.
 * - Each part with a filename goes to dir/<name>, where <name> is the last
 *   component of the filename (after any '/' or '\\'); a name that is empty,
 *   "." or "..", starts with '.', holds a control byte, or is longer than 255
 *   bytes fails the upload (400). A part with filename="" (a browser's empty
 *   file input) and parts without a filename (plain fields) are skipped.
 *   Percent-escapes and backslash escapes in the name are kept as sent.
 * - Bytes go to hidden temporary files in dir, renamed over dir/<name> only
 *   once the whole body has parsed, so a failed upload leaves no file behind
 *   (a later part's name replaces an earlier one's).
 * - max_size caps the request body in bytes as received (0: no cap): a
 *   Content-Length above it is refused at once, a body growing past it as soon
 *   as it does (413).
 * - On success your function gets CYMG_EV_HTTP_MSG (empty body; the files are
 *   in place) with your event function restored; answer there as usual. If it
 *   does not, the helper answers 200 with a short text.
 * - On failure the helper answers (400 malformed body or name, 413, 500 disk
 *   error, 507 disk full), your function gets CYMG_EV_ERROR with the reason,
 *   and the connection closes once the answer is out.
 * Returns 0 once the upload owns the request; CYMG_ELIMIT when Content-Length
 * is above max_size (413 already sent; the connection closes); CYMG_EPARSE when
 * the request is not multipart/form-data with a valid boundary, CYMG_EINVAL
 * for NULL arguments, -ENOTDIR or another -errno when dir is unusable, or
 * CYMG_ESTATE / CYMG_ENOMEM: then nothing was changed and the request is yours
 * to answer. Files are written with blocking writes on the manager's thread. */
CYMG_API int cymg_http_upload(cymg_conn *c, const cymg_http_msg *msg, const char *dir,
                              uint64_t max_size);

#ifdef __cplusplus
}
#endif
#endif
