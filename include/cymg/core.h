/* The event loop: managers, connections, events, sending, closing, wakeup.
 *
 * A manager (cymg_mgr) owns many non-blocking connections and drives them from one
 * thread with cymg_mgr_poll(). Everything a connection does is reported to its
 * event function as (connection, event, event data). cymg_wakeup() and
 * cymg_mgr_interrupt() may be called from any thread at any time; any other call
 * from another thread needs the caller's own lock serialising it with the
 * manager's thread, and is then allowed while that thread is inside
 * cymg_mgr_block() (see there). */
#ifndef CYMG_CORE_H
#define CYMG_CORE_H

#include <stdarg.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cymg_mgr cymg_mgr;
typedef struct cymg_conn cymg_conn;

/* The one event function type. ev_data's type depends on ev (see the enum); it is
 * valid only until the function returns. */
typedef void (*cymg_event_fn)(cymg_conn *c, int ev, void *ev_data);

/* Events, numbered as in the Python API (MG_EV_*). Beside each: its ev_data. */
enum {
  CYMG_EV_ERROR = 0,   /* const char *: what went wrong; CLOSE follows */
  CYMG_EV_OPEN,        /* NULL: connection created (fired inside listen/connect/accept) */
  CYMG_EV_POLL,        /* const uint64_t *: monotonic ms; only with cymg_conn_set_poll() */
  CYMG_EV_RESOLVE,     /* NULL: host name resolved, connecting */
  CYMG_EV_CONNECT,     /* NULL: outbound connection established */
  CYMG_EV_ACCEPT,      /* NULL: inbound connection accepted (after OPEN) */
  CYMG_EV_TLS_HS,      /* NULL: TLS handshake complete */
  CYMG_EV_READ,        /* const size_t *: bytes just appended to the receive buffer */
  CYMG_EV_WRITE,       /* const size_t *: bytes just written to the socket */
  CYMG_EV_CLOSE,       /* NULL: last event; the connection is freed after it */
  CYMG_EV_HTTP_HDRS,   /* cymg_http_msg *: request or response headers complete */
  CYMG_EV_HTTP_MSG,    /* cymg_http_msg *: whole HTTP message */
  CYMG_EV_WS_OPEN,     /* cymg_http_msg *: WebSocket handshake done */
  CYMG_EV_WS_MSG,      /* cymg_ws_msg *: WebSocket data message */
  CYMG_EV_WS_CTL,      /* cymg_ws_msg *: WebSocket control frame */
  CYMG_EV_MQTT_CMD,    /* cymg_mqtt_msg *: MQTT packet */
  CYMG_EV_MQTT_MSG,    /* cymg_mqtt_msg *: MQTT PUBLISH */
  CYMG_EV_MQTT_OPEN,   /* const int *: CONNACK return code */
  CYMG_EV_SNTP_TIME,   /* const int64_t *: epoch milliseconds */
  CYMG_EV_WAKEUP,      /* const cymg_str *: the payload given to cymg_wakeup() */
  CYMG_EV_USER = 100   /* first number free for applications */
};

/* Name of an event ("CYMG_EV_READ"; "CYMG_EV_USER" for CYMG_EV_USER itself), or
 * NULL for any other number. */
CYMG_API const char *cymg_event_name(int ev);

/* ---- Manager ---------------------------------------------------------------- */

/* I/O multiplexers. AUTO takes the CYMG_BACKEND environment variable
 * ("io_uring", "epoll", "kqueue", "poll" or "select") when set and not empty,
 * else the first of epoll, kqueue, io_uring, poll that this build has and that
 * starts (io_uring can be refused by the kernel, by kernel.io_uring_disabled or
 * by a seccomp filter; it comes after epoll until it measures faster); a DEBUG
 * log line says which one and why the ones before it did not. A CYMG_BACKEND value that names none makes cymg_mgr_new()
 * fail with CYMG_EINVAL and an ERROR line listing the valid names. select
 * serves descriptors below FD_SETSIZE only and refuses others (CYMG_ELIMIT). */
enum {
  CYMG_BACKEND_AUTO = 0,
  CYMG_BACKEND_EPOLL,
  CYMG_BACKEND_KQUEUE,
  CYMG_BACKEND_POLL,
  CYMG_BACKEND_SELECT,
  CYMG_BACKEND_IO_URING
};

/* Creates a manager using `backend` (CYMG_BACKEND_*; AUTO picks, see above).
 * Options are set afterwards with the cymg_mgr_set_* calls. On success *out is set
 * and 0 is returned; on failure a negative code (CYMG_ENOMEM, CYMG_ENOTSUP for a
 * backend this OS lacks, CYMG_EINVAL, -errno) and *out is NULL. Free with
 * cymg_mgr_free(). Process-wide effect: when SIGPIPE is at its default action it
 * is set to SIG_IGN (sendfile(2) to a vanished peer would otherwise end the
 * process); a disposition the program chose itself is left alone. */
CYMG_API CYMG_NODISCARD int cymg_mgr_new(cymg_mgr **out, int backend);

/* Default buffer caps for connections created from now on (0 keeps the current
 * value). Defaults: receive 1 MiB, send 64 MiB. */
CYMG_API void cymg_mgr_set_limits(cymg_mgr *mgr, size_t recv_limit, size_t send_limit);
/* Output backpressure. A connection whose unsent output (what waits in its send
 * buffer; a file body being sent counts only as far as it is buffered) goes
 * above `high` bytes stops reading: no more requests or frames are read, and
 * the protocol layers (HTTP pipelining, WebSocket pings) stop turning bytes
 * already received into more output. It resumes once the output is back at
 * `low` bytes or less. So a peer that sends but never reads costs at most about
 * `high` bytes of memory instead of the send limit. Defaults: 1 MiB and
 * 256 KiB. This sets the marks of connections created from now on (accepted
 * connections take their listener's); cymg_conn_set_watermarks() changes one
 * connection's. Returns 0, or CYMG_EINVAL for high == 0 or low > high.
 * Manager thread only, like every call but cymg_wakeup(). */
CYMG_API int cymg_mgr_set_watermarks(cymg_mgr *mgr, size_t high, size_t low);
/* Send-stall timeout: a connection with output pending whose peer takes no byte
 * of it for `ms` milliseconds gets ERROR "send stalled for <ms> ms", then CLOSE.
 * Any byte accepted by the peer starts the count again. 0 disables. Default
 * 60000. For connections created from now on (accepted connections take their
 * listener's); see cymg_conn_set_send_stall(). Returns 0 or CYMG_EINVAL. */
CYMG_API int cymg_mgr_set_send_stall(cymg_mgr *mgr, uint32_t ms);
/* Whether connections created from now on get CYMG_EV_POLL on every poll. */
CYMG_API void cymg_mgr_set_poll_events(cymg_mgr *mgr, bool on);
/* Whether the event function sees CYMG_EV_READ (bytes read from the socket) also
 * on connections whose protocol layer handled it (HTTP, WebSocket): it then
 * comes after the protocol's own events for those bytes, and the receive buffer
 * holds what the protocol left. Default off. Takes effect at once. */
CYMG_API void cymg_mgr_set_read_events(cymg_mgr *mgr, bool on);
/* The hosts file used to resolve names (NULL = /etc/hosts). The string is copied.
 * Returns 0 or CYMG_ENOMEM. */
CYMG_API int cymg_mgr_set_hosts_file(cymg_mgr *mgr, const char *path);

/* Closes every connection (each gets CLOSE), cancels timers, frees the manager.
 * Not from inside an event function or timer of the same manager. NULL is a no-op. */
CYMG_API void cymg_mgr_free(cymg_mgr *mgr);

/* Writes what was queued, waits up to timeout_ms (0 = don't wait, < 0 = until
 * something happens) for I/O or the next timer, then runs event functions and
 * timers. Never sleeps past the next timer deadline. Returns the number of ready
 * descriptors, or a negative code. Equivalent to cymg_mgr_wait() followed by
 * cymg_mgr_dispatch(). */
CYMG_API int cymg_mgr_poll(cymg_mgr *mgr, int timeout_ms);

/* The halves of cymg_mgr_poll(): wait, then dispatch, strictly alternately from
 * the manager's thread. wait is prepare followed by block; dispatch runs the
 * event functions and timers. */
CYMG_API int cymg_mgr_wait(cymg_mgr *mgr, int timeout_ms);
CYMG_API void cymg_mgr_dispatch(cymg_mgr *mgr);

/* The first half of cymg_mgr_wait(): writes the output queued on every
 * connection that has some (one write attempt each, however many sends queued
 * it; only connections with queued output are visited), applies every interest
 * change made since the last poll to the backend (registering connections opened
 * meanwhile), and returns how long the blocking wait may last: timeout_ms capped
 * by the next timer, 0 when deferred events or closes are due (< 0: no limit).
 * Runs no event function: WRITE and failures from these writes, and the close
 * of a connection that finished draining, come at the next dispatch. Manager's
 * thread (or under the lock other threads use for this manager). NULL: 0. */
CYMG_API int cymg_mgr_prepare(cymg_mgr *mgr, int timeout_ms);
/* The second half: blocks in the OS up to timeout_ms for readiness. It touches
 * only the backend's wait and the manager's ready list: no connection, timer or
 * backend registration. A binding may therefore drop its lock around it and let
 * other threads, holding that lock, make any call on this manager and its
 * connections meanwhile except cymg_mgr_free(), cymg_mgr_prepare(),
 * cymg_mgr_block() and cymg_mgr_dispatch(). Their effects wait for the next
 * prepare step; cymg_mgr_interrupt() makes this wait end promptly so that it
 * comes soon. Returns the number of ready descriptors, or a negative code. */
CYMG_API int cymg_mgr_block(cymg_mgr *mgr, int timeout_ms);
/* From any thread, at any time (no lock needed): makes a cymg_mgr_block() in
 * progress, or the next one, return promptly, with no event of its own. Needs
 * the wakeup channel (cymg_wakeup_init()). Returns 0, CYMG_ESTATE without the
 * channel, CYMG_EINVAL for NULL. */
CYMG_API int cymg_mgr_interrupt(cymg_mgr *mgr);

/* Name of the backend in use: "io_uring", "epoll", "kqueue", "poll" or "select". */
CYMG_API const char *cymg_mgr_backend(const cymg_mgr *mgr);

/* A readable reason for the last call on this manager that failed synchronously
 * ("" if none). Valid until the next call on the manager. */
CYMG_API const char *cymg_mgr_errmsg(const cymg_mgr *mgr);

/* Monotonic milliseconds as this manager's loop sees them (updated each poll). */
CYMG_API uint64_t cymg_mgr_now(const cymg_mgr *mgr);

/* Iteration over live connections, newest first; listeners included. Closing
 * connections stay in the list until their CLOSE has been dispatched. Don't free
 * the manager while iterating. */
CYMG_API cymg_conn *cymg_mgr_first(cymg_mgr *mgr);
CYMG_API cymg_conn *cymg_conn_next(cymg_conn *c);
/* The connection with this id, or NULL. O(1). */
CYMG_API cymg_conn *cymg_mgr_find(cymg_mgr *mgr, uint64_t id);
/* Number of live connections (listeners included). */
CYMG_API size_t cymg_mgr_count(const cymg_mgr *mgr);
/* Manager-wide user pointer. */
CYMG_API void cymg_mgr_set_userdata(cymg_mgr *mgr, void *p);
CYMG_API void *cymg_mgr_userdata(const cymg_mgr *mgr);

/* ---- Listening and connecting ---------------------------------------------- */

/* Listens on url: "tcp://HOST:PORT" or "udp://HOST:PORT" with an IPv4 or [IPv6]
 * literal, "localhost", or a name from the hosts file. Other schemes of the URL
 * table (cymg_url_scheme_flags) use their transport and default port with no
 * protocol layer (mqtt:// is plain TCP on 1883: MQTT is cymg_mqtt_listen's, sntp://
 * UDP); tls://, https://, wss:// and mqtts:// listen over TLS (options from
 * cymg_tls_init, see tls.h), unknown schemes fail with CYMG_ESCHEME. Port 0
 * lets the OS choose (read it back with cymg_conn_local()). fn/fn_data become the listener's handler
 * and are inherited by accepted connections. OPEN fires before the call returns.
 * Returns 0 and sets *out (may be NULL) on success; on failure a negative code, a
 * reason in cymg_mgr_errmsg(), and no connection is left behind. */
CYMG_API int cymg_listen(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                         cymg_conn **out);

/* Like cymg_listen, with SO_REUSEPORT so that several managers (threads or
 * processes) can share one port. */
CYMG_API int cymg_listen_reuseport(cymg_mgr *mgr, const char *url, cymg_event_fn fn,
                                   void *fn_data, cymg_conn **out);

/* Opens an outbound connection to url ("tcp://", "udp://" or another scheme as
 * for cymg_listen). Returns at once: a
 * malformed URL or unknown scheme fails here (negative code, reason in
 * cymg_mgr_errmsg()); everything later (name not found, refused, unreachable)
 * arrives as ERROR with a message, then CLOSE. On success CONNECT follows (for UDP
 * on the next poll). Returns 0 and sets *out (may be NULL). */
CYMG_API int cymg_connect(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                          cymg_conn **out);

/* ---- Connections -------------------------------------------------------------- */

/* An IP address with its port (host byte order). IPv4 uses ip[0..3]. */
typedef struct cymg_addr {
  uint8_t ip[16];
  uint16_t port;
  bool is_ip6;
} cymg_addr;

/* Formats "1.2.3.4:80" or "[::1]:80" (with_port) or the bare address into dst.
 * Returns the length written, or CYMG_ENOSPC if dst_len is too small; dst then
 * holds the text cut short, still NUL-terminated (when dst_len > 0), so a caller
 * that only prints it (64 bytes always suffice) may drop the result. */
CYMG_API int cymg_addr_str(const cymg_addr *a, bool with_port, char *dst, size_t dst_len);

/* Appends len bytes (copied) to the connection's send buffer and returns: no
 * system call is made here. Until they are written cymg_conn_send_len() counts
 * them and cymg_conn_send_data() shows them. They are written at the next flush
 * point: right after the READ (or CONNECT) event being handled, if the call is
 * made inside one, else in the prepare step at the start of the next
 * cymg_mgr_wait()/cymg_mgr_poll(). Each flush point makes one write of all that
 * is queued, however many calls queued it; writability is asked of the backend
 * only when such a write comes up short. WRITE is reported from the loop, never
 * from inside this call. Returns 0, CYMG_ECLOSED on a closing or draining
 * connection, or CYMG_ELIMIT when the send buffer would pass its limit (nothing
 * is queued then). On UDP, each call is one datagram, sent at once to the
 * connected peer or, on a listener, to the sender of the last datagram read. */
CYMG_API int cymg_send(cymg_conn *c, const void *data, size_t len);
/* printf into the send buffer. Returns bytes queued or a negative code. */
CYMG_API int cymg_printf(cymg_conn *c, const char *fmt, ...) CYMG_PRINTF(2, 3);
CYMG_API int cymg_vprintf(cymg_conn *c, const char *fmt, va_list ap) CYMG_PRINTF(2, 0);

/* Closes at the end of this poll iteration, discarding unsent data. CLOSE is
 * delivered once; the connection is freed after it, never inside its own event
 * function. Idempotent. */
CYMG_API void cymg_close(cymg_conn *c);
/* Stops reading, sends everything queued, then closes. Nothing more can be sent
 * after it (CYMG_ECLOSED). */
CYMG_API void cymg_drain(cymg_conn *c);
/* Delivers ERROR with a printf-formatted message, then closes. */
CYMG_API void cymg_error(cymg_conn *c, const char *fmt, ...) CYMG_PRINTF(2, 3);

/* Accessors. ids start at 1 and are never reused within a manager. Accessors
 * take a live connection (one whose CLOSE has not yet returned); calls that
 * can fail return CYMG_EINVAL for a NULL handle instead. */
CYMG_API uint64_t cymg_conn_id(const cymg_conn *c);
CYMG_API cymg_mgr *cymg_conn_mgr(const cymg_conn *c);
CYMG_API const cymg_addr *cymg_conn_local(const cymg_conn *c);
CYMG_API const cymg_addr *cymg_conn_remote(const cymg_conn *c);
CYMG_API bool cymg_conn_is_listening(const cymg_conn *c);
CYMG_API bool cymg_conn_is_client(const cymg_conn *c);
CYMG_API bool cymg_conn_is_udp(const cymg_conn *c);
CYMG_API bool cymg_conn_is_tls(const cymg_conn *c);
CYMG_API bool cymg_conn_is_connecting(const cymg_conn *c);
CYMG_API bool cymg_conn_is_closing(const cymg_conn *c);
CYMG_API bool cymg_conn_is_draining(const cymg_conn *c);
/* The socket was readable / writable at the last poll (writable: or took all
 * of the last write). */
CYMG_API bool cymg_conn_is_readable(const cymg_conn *c);
CYMG_API bool cymg_conn_is_writable(const cymg_conn *c);
/* The receive buffer is at its limit: reading pauses until data is consumed. */
CYMG_API bool cymg_conn_is_full(const cymg_conn *c);
CYMG_API size_t cymg_conn_recv_len(const cymg_conn *c);
CYMG_API size_t cymg_conn_send_len(const cymg_conn *c);
/* Allocated sizes of the buffers. */
CYMG_API size_t cymg_conn_recv_size(const cymg_conn *c);
CYMG_API size_t cymg_conn_send_size(const cymg_conn *c);
/* Views of the buffered bytes: valid until the buffer next changes. */
CYMG_API cymg_str cymg_conn_recv_data(const cymg_conn *c);
CYMG_API cymg_str cymg_conn_send_data(const cymg_conn *c);
/* Removes n bytes from the front of the receive buffer (clamped); a full
 * connection resumes reading. */
CYMG_API void cymg_conn_consume(cymg_conn *c, size_t n);
/* The socket descriptor (-1 when none). */
CYMG_API int cymg_conn_fd(const cymg_conn *c);

/* The user pointer given to listen/connect (inherited by accepted connections). */
CYMG_API void *cymg_conn_userdata(const cymg_conn *c);
CYMG_API void cymg_conn_set_userdata(cymg_conn *c, void *p);
CYMG_API cymg_event_fn cymg_conn_handler(const cymg_conn *c);
/* Replaces the event function and the user pointer from the next event on. */
CYMG_API void cymg_conn_set_handler(cymg_conn *c, cymg_event_fn fn, void *fn_data);
/* Asks for (or stops) CYMG_EV_POLL on every poll iteration. */
CYMG_API void cymg_conn_set_poll(cymg_conn *c, bool on);
/* Per-connection buffer caps (0 keeps the current one). */
CYMG_API void cymg_conn_set_limits(cymg_conn *c, size_t recv_limit, size_t send_limit);
/* This connection's output watermarks (see cymg_mgr_set_watermarks); on a
 * listener, also those of the connections it accepts from now on. A marks'
 * change takes effect at once. Returns 0, or CYMG_EINVAL (NULL, high == 0,
 * low > high). */
CYMG_API int cymg_conn_set_watermarks(cymg_conn *c, size_t high, size_t low);
/* Pauses (paused = true) or resumes reading from the connection's socket, for a
 * program that cannot take more input yet (a slow consumer of a streamed body):
 * while paused the descriptor is not watched for input, so the peer is held by
 * TCP flow control once the kernel buffers fill. Bytes already in the receive
 * buffer may still be delivered (at most one receive buffer's worth); bytes a
 * TLS transport decrypted ahead are delivered after resume. Independent of the
 * output watermarks and of the protocol's own holds: reading goes on only when
 * none of them stops it. Works on every backend. A peer that closes while
 * paused is noticed once reading resumes (or when a write fails). Returns 0, CYMG_EINVAL (NULL) or
 * CYMG_ESTATE (a listener). Manager's thread. */
CYMG_API CYMG_NODISCARD int cymg_conn_pause_read(cymg_conn *c, bool paused);
/* Whether cymg_conn_pause_read() paused the connection. */
CYMG_API bool cymg_conn_is_read_paused(const cymg_conn *c);
/* This connection's send-stall timeout in ms, 0 to disable (see
 * cymg_mgr_set_send_stall); on a listener, also that of the connections it
 * accepts from now on. Pending output is given the full new time from now.
 * Returns 0 or CYMG_EINVAL. */
CYMG_API int cymg_conn_set_send_stall(cymg_conn *c, uint32_t ms);

/* ---- Protocol layers ----------------------------------------------------------
 * A protocol (HTTP, WebSocket, MQTT...) sits between the socket and the user's
 * event function: it sees every event first and may raise its own with
 * cymg_call(). Applications rarely need these. */
typedef struct cymg_proto {
  const char *name;
  /* Sees each event before the user's function. Returns true when the event was
   * the protocol's own business (raw READ on an HTTP connection, say) and the
   * user's function must not see it. CLOSE always reaches the user. */
  bool (*on_event)(cymg_conn *c, int ev, void *ev_data);
  /* Frees the protocol's state; called once, after CLOSE or on replacement. */
  void (*free_state)(void *state);
  /* Makes the state of a connection just accepted on a listener carrying this
   * protocol (before its OPEN). NULL: accepted connections get no protocol. */
  void *(*accept)(cymg_conn *child, cymg_conn *listener);
} cymg_proto;

/* Attaches a protocol layer (replacing any previous one, whose state is freed). */
CYMG_API void cymg_conn_set_proto(cymg_conn *c, const cymg_proto *p, void *state);
CYMG_API const cymg_proto *cymg_conn_proto(const cymg_conn *c);
CYMG_API void *cymg_conn_proto_state(const cymg_conn *c);
/* Raises event ev on c: protocol layer first, then the user's function. */
CYMG_API void cymg_call(cymg_conn *c, int ev, void *ev_data);

/* ---- Wakeup: thread-safe entry points (with cymg_mgr_interrupt()) ------------- */

/* Prepares the manager to receive wakeups (an eventfd or a pipe). Call on the
 * manager's thread before other threads call cymg_wakeup(). Returns a positive
 * id of the internal wakeup channel, or a negative code. Idempotent. */
CYMG_API int64_t cymg_wakeup_init(cymg_mgr *mgr);

/* From any thread: copies len bytes and has CYMG_EV_WAKEUP with them delivered to
 * connection conn_id on the manager's thread, in call order per calling thread.
 * Returns 0 once queued; CYMG_ESTATE if wakeup is not initialised; CYMG_ENOCONN
 * when no connection has that id (never had, or already freed; the wakeup
 * channel's own id is no connection); CYMG_ECLOSED when it is closing (closed,
 * its CLOSE not yet delivered); CYMG_ENOMEM or CYMG_ELIMIT (queue full): a
 * payload is queued or refused, never silently lost. If the connection closes
 * between the call and delivery, the payload is discarded and counted in
 * cymg_wakeup_orphans(). */
CYMG_API int cymg_wakeup(cymg_mgr *mgr, uint64_t conn_id, const void *data, size_t len);
/* Caps the bytes waiting in the wakeup queue (default 64 MiB); beyond it
 * cymg_wakeup() returns CYMG_ELIMIT. Manager thread. */
CYMG_API void cymg_wakeup_set_limit(cymg_mgr *mgr, size_t bytes);
/* Number of payloads whose connection had closed before delivery. */
CYMG_API uint64_t cymg_wakeup_orphans(const cymg_mgr *mgr);

#ifdef __cplusplus
}
#endif
#endif
