/* Internal definitions shared by the library's sources. Never installed. */
#ifndef CYMG_INTERNAL_H
#define CYMG_INTERNAL_H

#include <pthread.h>

#include "cymg/cymg.h"
#include "cymg/url.h"

/* ---- logging --------------------------------------------------------------- */
extern int cymg__log_level_cached(void);
#define CYMG__LOG(level, ...)                                \
  do {                                                       \
    if (cymg__log_level_cached() >= (level)) cymg_log((level), __VA_ARGS__); \
  } while (0)
#define CYMG__ERR(...) CYMG__LOG(CYMG_LL_ERROR, __VA_ARGS__)
#define CYMG__INFO(...) CYMG__LOG(CYMG_LL_INFO, __VA_ARGS__)
#define CYMG__DEBUG(...) CYMG__LOG(CYMG_LL_DEBUG, __VA_ARGS__)
#define CYMG__VERBOSE(...) CYMG__LOG(CYMG_LL_VERBOSE, __VA_ARGS__)

/* ---- I/O buffer ---------------------------------------------------------------
 * Bytes live at buf[head .. head+len). Consuming from the front only moves head,
 * so a partly written send buffer is never shifted per write; the data is moved
 * to the front lazily, when the tail runs out of room. */
typedef struct cymg__iobuf {
  char *buf;
  size_t head, len, size;
} cymg__iobuf;

void cymg__iobuf_free(cymg__iobuf *b);
/* Guarantees `room` free bytes after the data; limit caps len+room (0 = none).
 * Returns 0, CYMG_ELIMIT or CYMG_ENOMEM. */
CYMG_NODISCARD int cymg__iobuf_reserve(cymg__iobuf *b, size_t room, size_t limit);
CYMG_NODISCARD int cymg__iobuf_append(cymg__iobuf *b, const void *p, size_t n, size_t limit);
void cymg__iobuf_consume(cymg__iobuf *b, size_t n);
/* Removes n bytes at offset ofs of the data (clamped to what is there): the bytes
 * after them move down, those before stay where they are, so pointers into the
 * front part remain valid. Costs one move of the bytes after the cut. */
void cymg__iobuf_cut(cymg__iobuf *b, size_t ofs, size_t n);
/* A buffer with nothing allocated (buf NULL: freed while idle) yields NULL, not
 * NULL + 0, which C leaves undefined. */
static inline char *cymg__iobuf_data(const cymg__iobuf *b) {
  return b->buf == NULL ? NULL : b->buf + b->head;
}
static inline char *cymg__iobuf_tail(const cymg__iobuf *b) {
  return b->buf == NULL ? NULL : b->buf + b->head + b->len;
}
static inline size_t cymg__iobuf_room(const cymg__iobuf *b) {
  return b->size - b->head - b->len;
}

/* ---- backends -----------------------------------------------------------------
 * The one contract between the loop and the OS multiplexer. Interest and readiness
 * are CYMG__IO_* bits; `ptr` is handed back with each ready descriptor. */
enum { CYMG__IO_R = 1, CYMG__IO_W = 2, CYMG__IO_ERR = 4 };

typedef struct cymg__ready {
  void *ptr;
  unsigned events;
} cymg__ready;

typedef struct cymg__backend {
  const char *name;
  int (*init)(void **state);
  void (*free)(void *state);
  int (*add)(void *state, int fd, unsigned interest, void *ptr);
  int (*mod)(void *state, int fd, unsigned interest, void *ptr);
  /* Always told, also right before a close: epoll forgets a descriptor only
   * when its open file's last reference goes, and a dup or a child between
   * fork/vfork and exec may hold one (docs/design.md). */
  int (*del)(void *state, int fd);
  /* Fills up to max entries; returns how many, or -errno (EINTR is 0). */
  int (*wait)(void *state, cymg__ready *out, int max, int timeout_ms);
} cymg__backend;

extern const cymg__backend cymg__backend_poll;
extern const cymg__backend cymg__backend_select;
#if defined(__linux__)
#define CYMG__HAVE_EPOLL 1
extern const cymg__backend cymg__backend_epoll;
#endif
/* CYMG_IO_URING (CMake) builds src/backend/uring.c, Linux only. */
#ifdef CYMG__HAVE_URING
extern const cymg__backend cymg__backend_uring;
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
    defined(__NetBSD__) || defined(__DragonFly__)
#define CYMG__HAVE_KQUEUE 1
extern const cymg__backend cymg__backend_kqueue;
#endif

/* ---- transports ---------------------------------------------------------------
 * What sits under a connection: a plain socket, or TLS (src/net/tls_openssl.c).
 * Protocols never call the socket directly. recv/send return bytes, 0 for end of
 * stream (recv only), CYMG_EAGAIN when they would block, or another negative
 * code; a transport with a better reason than the code leaves it with
 * cymg__conn_fail_later(), which the caller's report then uses. The hooks below
 * the first four may be NULL (the plain transport has none). */
typedef struct cymg__transport {
  const char *name;
  ptrdiff_t (*recv)(cymg_conn *c, void *buf, size_t len);
  ptrdiff_t (*send)(cymg_conn *c, const void *buf, size_t len);
  /* Closes the descriptor (and what lives on it); the connection may get
   * another one (the resolver trying the next address). */
  void (*close)(cymg_conn *c);
  /* Frees tp_state when the connection is freed. */
  void (*free)(cymg_conn *c);
  /* Sees a ready report first and returns the readiness the connection's own
   * read and write paths are to act on (0: the transport used it all, as a
   * handshake does). */
  unsigned (*io)(cymg_conn *c, unsigned events);
  /* Adjusts the interest the connection computed (a handshake wanting to read
   * or write whatever the buffers say). */
  unsigned (*want)(const cymg_conn *c, unsigned want);
  /* True when bytes are buffered inside the transport, where the descriptor's
   * readiness does not show them, and a recv would make progress with them:
   * never for a fragment that only waits for the socket (the deferred read
   * runs in the same dispatch pass, so a read that cannot progress would
   * spin it). */
  bool (*pending)(const cymg_conn *c);
  /* A client connection just delivered CONNECT. */
  void (*connected)(cymg_conn *c);
  /* Sends len bytes of file fd from off straight from the kernel (TLS: with
   * kernel TLS active, SSL_sendfile). Returns bytes, CYMG_EAGAIN, another
   * negative code, or CYMG_ENOTSUP when it cannot: the caller then reads the
   * file through the send buffer. */
  ptrdiff_t (*sendfile)(cymg_conn *c, int fd, uint64_t off, size_t len);
} cymg__transport;

extern const cymg__transport cymg__transport_plain;

/* ---- TLS hooks (src/net/tls_openssl.c; stubs when built without TLS) ---------- */
/* Marks a connection made for a TLS scheme URL: a listener (options come from
 * cymg_tls_init), or a client verifying host (bare, no brackets) on port. */
CYMG_NODISCARD int cymg__tls_mark(cymg_conn *c, const char *host, uint16_t port);
/* An accepted connection of TLS listener lsn takes its options (before OPEN). */
void cymg__tls_adopt(cymg_conn *c, cymg_conn *lsn);
/* After ACCEPT: an accepted TLS connection without a certificate fails. */
void cymg__tls_accepted(cymg_conn *c);
/* The manager's TLS state (client session cache, default client context). */
void cymg__tls_mgr_free(cymg_mgr *mgr);
/* The manager's static-file cache (src/http/static_cache.c). */
void cymg__static_cache_free(cymg_mgr *mgr);

/* ---- timers ------------------------------------------------------------------
 * One min-heap of entries ordered by (deadline, seq). An entry is either the
 * head of a slab slot (cymg_timer_add's timers, slot < NO_SLOT) or embedded in
 * a connection (slot == CYMG__TNODE_CONN: its protocol's deadline, fired as
 * CYMG__EV_DEADLINE), so a connection's deadline costs no slot and no handle. */
#define CYMG__TNODE_CONN UINT32_MAX
typedef struct cymg__tnode {
  uint64_t deadline, seq;
  int32_t heap_idx; /* -1 when not scheduled */
  uint32_t slot;
} cymg__tnode;

/* ---- connections ------------------------------------------------------------- */
enum {
  CYMG__F_LISTENING = 1u << 0,
  CYMG__F_CLIENT = 1u << 1,
  CYMG__F_UDP = 1u << 2,
  CYMG__F_TLS = 1u << 3,
  CYMG__F_CONNECTING = 1u << 4,
  CYMG__F_CLOSING = 1u << 5,
  CYMG__F_DRAINING = 1u << 6,
  CYMG__F_READABLE = 1u << 7,
  CYMG__F_WRITABLE = 1u << 8,
  CYMG__F_WANT_POLL = 1u << 9,
  CYMG__F_REGISTERED = 1u << 10, /* fd is known to the backend */
  CYMG__F_PENDING = 1u << 11,    /* on the manager's pending list */
  CYMG__F_OUT_FULL = 1u << 13,   /* unsent output passed the high-water mark, not yet
                                    back under the low one: no reading */
  CYMG__F_READ_HELD = 1u << 14,  /* the protocol asked for no reading (cymg__conn_hold_read) */
  CYMG__F_DIRTY = 1u << 15,      /* on the manager's dirty list (work for the prepare step) */
  CYMG__F_UNFLUSHED = 1u << 16,  /* output queued since the last write attempt */
  CYMG__F_HIDDEN = 1u << 17,     /* internal (a DNS query over TCP): not in cymg_mgr_first/count */
  CYMG__F_CONNECTED = 1u << 18,  /* a client that delivered CONNECT */
  CYMG__F_READ_PAUSED = 1u << 19, /* the program asked for no reading (cymg_conn_pause_read) */
  CYMG__F_BODY_STREAM = 1u << 20, /* a server streams a request body: its pieces are the
                                     only READ events (no read_events copy) */
};


/* Work deferred to the next dispatch, so that no event fires inside the call
 * that caused it (connect, send). */
enum {
  CYMG__P_CONNECT = 1u << 0, /* connected at once: report CONNECT */
  CYMG__P_WRITE = 1u << 1,   /* bytes were written directly: report WRITE */
  CYMG__P_ERROR = 1u << 2,   /* failed before any I/O: report ERROR (c->pending_err) */
  CYMG__P_RESUME = 1u << 3,  /* the protocol has work to resume: CYMG__EV_RESUME */
  CYMG__P_READ = 1u << 4,    /* the transport holds bytes the descriptor does not show */
};

/* c->pending and c->interest are bytes. */
_Static_assert(CYMG__P_READ < (1u << 8) && CYMG__IO_ERR < (1u << 8), "a flag outgrew its byte");

/* Delivered to a protocol layer only (never to the user), from the loop, after it
 * asked with cymg__conn_defer(c, CYMG__P_RESUME). */
#define CYMG__EV_RESUME (-100)
/* Delivered to a protocol layer only, when the deadline it set with
 * cymg__conn_deadline has come (ev_data NULL). */
#define CYMG__EV_DEADLINE (-101)

struct cymg_conn {
  cymg_conn *next, *prev;  /* the manager's list */
  cymg_conn *id_next;      /* id hash chain */
  cymg_conn *closing_next; /* the manager's list of connections to free */
  cymg_conn *pending_next; /* the manager's list of deferred work */
  cymg_conn *dirty_next, *dirty_prev; /* the manager's dirty list */
  cymg_mgr *mgr;
  uint64_t id;
  int fd;
  unsigned flags;
  uint32_t stall_ms; /* send stall limit (below); 0: never */
  uint8_t interest;  /* CYMG__IO_* registered with the backend */
  uint8_t pending;   /* CYMG__P_* */
  /* Closing, as cymg_wakeup() on another thread sees it: written under the
   * wakeup lock once wakeup is initialised (c->flags is not: it changes all
   * the time on the manager thread). */
  bool wk_closed;
  size_t pending_written;
  char *pending_err;
  cymg__iobuf recv, send;
  size_t recv_limit, send_limit;
  cymg_addr loc, rem;
  cymg_event_fn fn;
  void *fn_data;
  const cymg_proto *proto;
  void *proto_state;
  const cymg__transport *tp;
  void *tp_state;
  /* Produces more output when the socket is writable and the send buffer is
   * empty (a file body, a large message); returns true while it has more. */
  bool (*pump)(cymg_conn *c);
  uint64_t sent_total; /* bytes ever accepted by cymg_send */
  /* Output backpressure: reading stops above wm_high bytes unsent, resumes at
   * wm_low or less (see cymg__conn_out_full). */
  size_t wm_high, wm_low;
  /* Send stall: stall_at is when the connection fails if the peer takes no byte
   * before stall_ms (0: no output pending). Progress only moves stall_at; the
   * timer re-arms itself for the rest when it fires early. */
  uint64_t stall_at;
  cymg_timer_id stall_timer;
  /* The protocol's deadline (cymg__conn_deadline): a heap entry of its own
   * instead of a timer slot, as every idle keep-alive connection has one. */
  cymg__tnode deadline;
};

/* ---- timers (the heap entry is above, with the connections) ------------------ */
typedef struct cymg__timer {
  cymg__tnode node;
  uint64_t interval;
  cymg_timer_fn fn;
  void *arg;
  uint32_t gen;      /* bumped when the slot is freed: stale handles miss */
  uint32_t next_free;
  bool repeat, in_use, firing, cancelled;
} cymg__timer;

typedef struct cymg__timers {
  cymg__timer *slots;
  uint32_t nslots, free_head, live;
  cymg__tnode **heap; /* ordered by (deadline, seq) */
  uint32_t heap_len, heap_cap;
  uint64_t seq;
} cymg__timers;

void cymg__timers_free(cymg__timers *t);
/* Milliseconds until the earliest deadline (0 if due), or -1 with no timers. */
int64_t cymg__timers_next(const cymg__timers *t, uint64_t now);
void cymg__timers_run(cymg_mgr *mgr);
/* Schedules (or moves) an embedded entry for deadline, a cymg__millis() time.
 * Returns 0 or CYMG_ENOMEM (the entry is then as it was). */
CYMG_NODISCARD int cymg__tnode_arm(cymg_mgr *mgr, cymg__tnode *n, uint64_t deadline);
void cymg__tnode_disarm(cymg_mgr *mgr, cymg__tnode *n);

/* ---- wakeup ------------------------------------------------------------------ */
typedef struct cymg__wk_item {
  struct cymg__wk_item *next;
  uint64_t conn_id;
  size_t len;
  char data[];
} cymg__wk_item;

typedef struct cymg__wakeup {
  pthread_mutex_t lock;
  cymg__wk_item *head, *tail; /* guarded by lock */
  size_t queued, limit;       /* guarded by lock */
  int rfd, wfd;               /* eventfd: rfd == wfd */
  uint64_t id;
  uint64_t orphans;
  bool ready;
} cymg__wakeup;

void cymg__wakeup_free(cymg_mgr *mgr);
void cymg__wakeup_deliver(cymg_mgr *mgr);
/* The manager thread changes what cymg_wakeup() reads from other threads (the
 * id table, a connection's closing mark) between these two: they take the
 * wakeup lock once wakeup is initialised, and cost one test before. */
bool cymg__wakeup_lock(cymg_mgr *mgr);
void cymg__wakeup_unlock(cymg_mgr *mgr, bool locked);
/* Marks c closing for cymg_wakeup(): later calls for it are refused. */
void cymg__wakeup_closing(cymg_conn *c);

/* ---- manager ----------------------------------------------------------------- */
struct cymg_mgr {
  cymg_conn *conns;
  size_t nconns;
  cymg_conn **idtab; /* chained hash of live connections by id */
  size_t idtab_size;
  cymg_conn *closing; /* singly linked via closing_next, in close order */
  cymg_conn *closing_tail;
  cymg_conn *pending; /* singly linked via pending_next */
  /* Connections with output to flush or interest to settle in the next prepare
   * step (CYMG__F_DIRTY), doubly linked via dirty_next/dirty_prev. */
  cymg_conn *dirty;
  size_t npoll;       /* connections with CYMG__F_WANT_POLL */
  uint64_t next_id;
  uint64_t now;
  const cymg__backend *be;
  void *be_state;
  cymg__ready *ready;
  int nready, ready_cap;
  bool waited; /* wait() ran; dispatch() owes its ready list */
  /* Only deferred reports made a wait of 0: block() skips that wait (it could
   * only say "nothing yet" or what the next one will say), never twice in a
   * row, so readiness is still collected every other pass at worst. */
  bool skip_wait, skipped;
  cymg__timers timers;
  cymg__wakeup wk;
  size_t recv_limit, send_limit;
  size_t wm_high, wm_low; /* defaults for new connections */
  uint32_t stall_ms;
  bool poll_events;
  bool read_events; /* READ reaches the user's function after a protocol's handling */
  char *hosts_file;
  struct cymg__dns *dns; /* the resolver (src/dns/), created on first use */
  /* The resolver's UDP sockets register with the backend under pointers in
   * [dns_io, dns_io + dns_io_len) (src/dns/pool.c); NULL until one exists. */
  char *dns_io;
  size_t dns_io_len;
  size_t nhidden; /* connections with CYMG__F_HIDDEN */
  struct cymg__tls_mgr *tls; /* TLS state (src/net/tls_openssl.c), created on first use */
  uint32_t tls_hs_ms;        /* handshake timeout of new TLS connections; 0: none */
  struct cymg__static_cache *static_cache; /* src/http/static_cache.c, made on first use */
  int reserve_fd; /* spare descriptor given up to shed connections at EMFILE */
  void *userdata;
  char errmsg[256];
  char http_date[40]; /* "Date: ...\r\n" for this second, shared by HTTP replies */
  uint64_t http_date_sec;
  size_t trim_freed; /* connection bytes freed since the heap was last trimmed */
  uint64_t trim_at;  /* cymg__millis() of the last trim (0: never) */
  /* A connection with no receive buffer reads here first (conn.c, do_read)
   * and keeps a block sized to what came; made on first use. */
  char *read_scratch;
};

/* ---- giving memory back (trim.c) ----------------------------------------------
 * glibc keeps freed connection buffers in its heap: after a burst of 10,000
 * connections the resident set stayed at its peak. The manager counts what
 * connections free and, when a wait finds nothing to do, trims the heap, at
 * most once a second. No-ops without glibc. */
void cymg__trim_note_free(cymg_mgr *mgr, size_t bytes);
void cymg__trim_idle(cymg_mgr *mgr);

uint64_t cymg__millis(void);
void cymg__mgr_errmsg(cymg_mgr *mgr, const char *fmt, ...) CYMG_PRINTF(2, 3);
uint64_t cymg__mgr_next_id(cymg_mgr *mgr);
/* Adds to / removes from the connection list and the id table. */
void cymg__mgr_link(cymg_mgr *mgr, cymg_conn *c);
/* Resolver hooks (src/dns/resolver.c): manager teardown, a connection freed,
 * a connect by name failed (true: the next address is being tried). */
void cymg__dns_free(cymg_mgr *mgr);
void cymg__dns_conn_gone(cymg_conn *c);
bool cymg__dns_connect_failed(cymg_conn *c);
/* Readiness of one of the resolver's UDP sockets (ptr inside mgr->dns_io). */
void cymg__dns_io(cymg_mgr *mgr, void *ptr, unsigned events);
void cymg__mgr_unlink(cymg_mgr *mgr, cymg_conn *c);

/* Creates a connection around fd (which may be -1), links it into the manager.
 * Returns NULL on ENOMEM (fd is then left to the caller). */
cymg_conn *cymg__conn_new(cymg_mgr *mgr, int fd, unsigned flags, cymg_event_fn fn,
                          void *fn_data);
/* Unlinks, closes and frees; CLOSE must already have been delivered. */
void cymg__conn_free(cymg_conn *c);
/* Notes that the connection's interest may have changed; the backend learns it
 * in the next prepare step (cymg__conns_prepare). */
void cymg__conn_update_io(cymg_conn *c);
/* Takes the connection off the manager's dirty list (it is being freed). */
void cymg__conn_undirty(cymg_conn *c);
/* The prepare step's work on connections: one write attempt for each with
 * queued output, then their interest applied to the backend. Runs no event
 * function (what it causes is reported at the next dispatch). */
void cymg__conns_prepare(cymg_mgr *mgr);
/* Sets the protocol's deadline to `at` (a cymg__millis() time; 0: none): the
 * protocol gets CYMG__EV_DEADLINE once it has passed. Returns 0 or CYMG_ENOMEM.
 * A new protocol (cymg_conn_set_proto) starts without one. */
CYMG_NODISCARD int cymg__conn_deadline(cymg_conn *c, uint64_t at);
/* The timer loop's report of a connection's deadline. */
void cymg__conn_deadline_fire(cymg_conn *c);
/* Queues deferred work for the next dispatch. */
void cymg__conn_defer(cymg_conn *c, unsigned what);
/* Runs the I/O a ready descriptor calls for. */
void cymg__conn_io(cymg_conn *c, unsigned events);
void cymg__conn_run_pending(cymg_conn *c);
/* cymg_send without the draining check: for a protocol finishing output it had
 * started before the drain (a file body through the pump). Queues only; see
 * cymg_send. */
int cymg__conn_send(cymg_conn *c, const void *data, size_t len);
/* Installs (or with NULL removes) the output pump; see struct cymg_conn. */
void cymg__conn_set_pump(cymg_conn *c, bool (*pump)(cymg_conn *c));
/* Reports ERROR with this message at the next dispatch, then closes. */
void cymg__conn_fail_later(cymg_conn *c, const char *fmt, ...) CYMG_PRINTF(2, 3);
/* True while the unsent output is above the high-water mark (and until it is
 * back at the low one): the connection reads nothing then, and a protocol must
 * not turn bytes already received into more output (pipelined requests,
 * buffered pings) but wait for WRITE. Updates the hysteresis state. */
bool cymg__conn_out_full(cymg_conn *c);
/* A protocol's own pause of reading (an HTTP server with a pipelined request
 * waiting behind one not yet answered). */
void cymg__conn_hold_read(cymg_conn *c, bool on);
/* The peer took bytes: moves the send-stall deadline (a field write). */
static inline void cymg__conn_progress(cymg_conn *c) {
  if (c->stall_at) c->stall_at = c->mgr->now + c->stall_ms;
}

/* ---- sockets and addresses ----------------------------------------------------- */
/* Parses url (any scheme) and resolves its host without DNS: IP literal,
 * localhost, hosts file. Returns 0, CYMG_EBADURL, or CYMG_ERESOLVE (then u and
 * addr->port are still set); writes the reason to the manager's errmsg. host gets
 * the bare host name. */
CYMG_NODISCARD int cymg__resolve_url(cymg_mgr *mgr, const char *url, cymg_url *u, cymg_addr *addr,
                                     char *host, size_t host_len);
/* listen/connect for a URL. scheme NULL takes "tcp" or "udp" as the URL says;
 * otherwise the URL must carry that scheme, over TCP ("http", "ws", ...). */
int cymg__listen_url(cymg_mgr *mgr, const char *url, const char *scheme, bool reuseport,
                     cymg_event_fn fn, void *fn_data, cymg_conn **out);
int cymg__connect_url(cymg_mgr *mgr, const char *url, const char *scheme, cymg_event_fn fn,
                      void *fn_data, cymg_conn **out);
CYMG_NODISCARD int cymg__hosts_lookup(const char *path, const char *name, cymg_addr *addr);
int cymg__listen_addr(cymg_mgr *mgr, const cymg_addr *addr, bool udp, bool reuseport,
                      cymg_event_fn fn, void *fn_data, cymg_conn **out);
/* Starts a non-blocking connect on an existing client connection. */
void cymg__connect_addr(cymg_conn *c, const cymg_addr *addr);
void cymg__accept(cymg_conn *lsn);
/* Makes a connection of listener lsn around fd, a connected non-blocking
 * stream socket, exactly as if it had just been accepted (protocol state, limits,
 * OPEN and ACCEPT). The fuzz harnesses feed a socketpair through it. Returns the
 * connection, or NULL on ENOMEM (fd is then left to the caller). */
cymg_conn *cymg__conn_adopt(cymg_conn *lsn, int fd, const cymg_addr *rem);
/* Reads one datagram on a UDP connection into recv (as a READ). */
void cymg__udp_read(cymg_conn *c);
int cymg__udp_send(cymg_conn *c, const void *data, size_t len);
/* A non-blocking UDP socket connected to `to` (random source port); fd or -errno. */
int cymg__udp_connected_socket(const cymg_addr *to);
void cymg__udp_flush(cymg_conn *c);
void cymg__sockaddr_to_addr(const void *sa, cymg_addr *a);
/* The pending error of a socket (SO_ERROR) as a positive errno, 0 if none. */
int cymg__sock_error(int fd);
/* Refreshes c->loc from the socket. */
void cymg__sock_local(cymg_conn *c);

#endif
