/* Output backpressure and the send-stall timeout, against peers that send but
 * never read: pipelining HTTP clients (a served file and 404s from serve_dir)
 * and WebSocket clients flooding pings. The server must stop reading from them
 * (its memory stays bounded: RSS growth and every connection's unsent output
 * are measured), close each of them once the peer has taken nothing for the
 * stall timeout, and keep answering a well-behaved client on the same loop all
 * along. Also: a reply that cannot be queued fails the connection instead of
 * leaving the request unanswered. CYMG_TEST_BACKENDS: runs once per backend. */
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>

#include "http_test.h"

#define NPIPE 5
#define NWS 10
#define STALL_MS 1500u
#define FILE_LEN 65536
#define RSS_BUDGET (20u << 20)
/* The output mark in force (the default) and what one step may add above it:
 * a reply or a pong queued by the last request or frame processed. */
#define WM_HIGH (1u << 20)
#define WM_SLACK (64u << 10)

/* ASan keeps freed memory in quarantine and adds shadow pages: RSS says little
 * under it. The unsent output of every connection is still bounded there. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

typedef struct {
  cymg_http_serve_opts opts;
  uint16_t ports[NPIPE + NWS]; /* local ports of the non-readers */
  int nports;
  int closed, stalled, normal_closed;
  int msgs; /* HTTP requests and WebSocket frames seen */
  int send_errors;
  char last_error[256];
} srv_state;

static bool is_nonreader(const srv_state *s, const cymg_conn *c) {
  for (int i = 0; i < s->nports; i++)
    if (cymg_conn_remote(c)->port == s->ports[i]) return true;
  return false;
}

static void srv_fn(cymg_conn *c, int ev, void *ev_data) {
  srv_state *s = cymg_conn_userdata(c);
  if (cymg_conn_is_listening(c)) return;
  if (ev == CYMG_EV_HTTP_MSG || ev == CYMG_EV_WS_CTL) s->msgs++;
  if (ev == CYMG_EV_HTTP_MSG) {
    cymg_http_msg *m = ev_data;
    if (cymg_str_eq(m->uri, cymg_str_c("/blob"))) {
      /* A large answer from memory: it waits in the send buffer. */
      static char blob[8u << 20];
      memset(blob, 'b', sizeof(blob));
      if (cymg_http_reply_data(c, 200, NULL, blob, sizeof(blob)) < 0) s->send_errors++;
    } else if (cymg_str_eq(m->uri, cymg_str_c("/ws"))) {
      if (cymg_ws_upgrade(c, m, NULL) < 0) s->send_errors++;
    } else if (cymg_http_serve_dir(c, m, &s->opts) < 0) {
      s->send_errors++;
    }
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *m = ev_data;
    if (cymg_ws_send(c, m->data.buf, m->data.len, CYMG_WS_OPCODE(m->flags)) < 0) s->send_errors++;
  } else if (ev == CYMG_EV_ERROR) {
    snprintf(s->last_error, sizeof(s->last_error), "%s", (const char *) ev_data);
    if (is_nonreader(s, c) && strstr(ev_data, "send stalled for") != NULL) s->stalled++;
  } else if (ev == CYMG_EV_CLOSE) {
    if (is_nonreader(s, c)) {
      s->closed++;
    } else if (cymg_conn_remote(c)->port != 0) {
      s->normal_closed++;
    }
  }
}

static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  assert_non_null(f);
  unsigned long size = 0, res = 0;
  assert_int_equal(fscanf(f, "%lu %lu", &size, &res), 2);
  fclose(f);
  return (size_t) res * (size_t) sysconf(_SC_PAGESIZE);
}

/* A non-blocking client with a small receive buffer: the kernel then holds
 * little of what the server sends, and the server's own buffering shows. */
static int small_client(uint16_t port, uint16_t *local_port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  int small = 16384;
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(port)};
  assert_int_equal(connect(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  struct sockaddr_in me;
  socklen_t len = sizeof(me);
  assert_int_equal(getsockname(fd, (struct sockaddr *) &me, &len), 0);
  *local_port = ntohs(me.sin_port);
  return fd;
}

/* A peer that writes `block` over and over and never reads. */
typedef struct {
  int fd;
  const char *block;
  size_t len, off;
  bool dead; /* the server closed it: writes fail */
  uint64_t sent;
} flooder;

static void flood(flooder *p) {
  for (int i = 0; i < 8 && !p->dead; i++) {
    ssize_t n = send(p->fd, p->block + p->off, p->len - p->off, MSG_NOSIGNAL);
    if (n > 0) {
      p->sent += (uint64_t) n;
      p->off = (p->off + (size_t) n) % p->len;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    } else {
      p->dead = true;
    }
  }
}

/* The well-behaved client: one keep-alive GET of the file at a time, each
 * answer read whole before the next request. */
typedef struct {
  int fd;
  bool waiting;
  size_t len;
  int answers;
  uint64_t asked_at;
  char buf[4 * FILE_LEN];
} normal_client;

static void normal_step(cymg_mgr *mgr, normal_client *n) {
  static const char req[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
  if (!n->waiting) {
    assert_int_equal(send(n->fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t) sizeof(req) - 1);
    n->waiting = true;
    n->len = 0;
    n->asked_at = cymg_mgr_now(mgr);
  }
  for (;;) {
    ssize_t k = recv(n->fd, n->buf + n->len, sizeof(n->buf) - n->len - 1, MSG_DONTWAIT);
    if (k > 0) {
      n->len += (size_t) k;
      continue;
    }
    assert_true(k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)); /* never closed */
    break;
  }
  bool framed;
  if (count_responses(n->buf, n->len, &framed) >= 1) {
    assert_non_null(strstr(n->buf, "HTTP/1.1 200 OK\r\n"));
    assert_true(n->len >= FILE_LEN);
    n->waiting = false;
    n->answers++;
  } else if (cymg_mgr_now(mgr) - n->asked_at > CYMG_TEST_WAIT_MS) {
    fail_msg("the normal client got no answer (%zu bytes in)", n->len);
  }
}

/* The largest unsent output of any server connection right now. */
static size_t max_send_len(cymg_mgr *mgr) {
  size_t m = 0;
  for (cymg_conn *c = cymg_mgr_first(mgr); c; c = cymg_conn_next(c))
    if (cymg_conn_send_len(c) > m) m = cymg_conn_send_len(c);
  return m;
}

static char tmpdir[64];

static void make_tree(void) {
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/cymg-bp-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  char path[128];
  snprintf(path, sizeof(path), "%s/big.bin", tmpdir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  for (int i = 0; i < FILE_LEN; i++) fputc('a' + i % 26, f);
  fclose(f);
}

static void remove_tree(void) {
  char path[128];
  snprintf(path, sizeof(path), "%s/big.bin", tmpdir);
  unlink(path);
  snprintf(path, sizeof(path), "%s/small.txt", tmpdir);
  unlink(path);
  rmdir(tmpdir);
}

static normal_client normal;

static void test_nonreaders_bounded_and_closed(void **state) {
  (void) state;
  make_tree();
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  assert_int_equal(cymg_mgr_set_send_stall(mgr, STALL_MS), 0);
  srv_state s = {.opts = {.root_dir = tmpdir}};
  cymg_conn *lsn;
  assert_int_equal(cymg_http_listen(mgr, "http://127.0.0.1:0", srv_fn, &s, &lsn), 0);
  uint16_t port = cymg_conn_local(lsn)->port;

  /* The normal client first, warmed up, so the baseline holds what it needs. */
  memset(&normal, 0, sizeof(normal));
  normal.fd = raw_connect(port);
  while (normal.answers < 3) {
    cymg_mgr_poll(mgr, 1);
    normal_step(mgr, &normal);
  }

  /* The non-readers: requests and frames built once, written forever. */
  static const char get_file[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
  static const char get_missing[] = "GET /missing.txt HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t blk = 64 * (sizeof(get_missing) - 1);
  char *file_block = malloc(64 * (sizeof(get_file) - 1)), *miss_block = malloc(blk);
  for (int i = 0; i < 64; i++) {
    memcpy(file_block + i * (sizeof(get_file) - 1), get_file, sizeof(get_file) - 1);
    memcpy(miss_block + i * (sizeof(get_missing) - 1), get_missing, sizeof(get_missing) - 1);
  }
  /* 125-byte pings, masked as a client must. */
  static const uint8_t key[4] = {1, 2, 3, 4};
  uint8_t frame[CYMG_WS_MAX_HEADER + 125], payload[125];
  memset(payload, 'p', sizeof(payload));
  size_t hl = cymg_ws_encode_header(frame, CYMG_WS_FIN | CYMG_WS_OP_PING, 125, key);
  memcpy(frame + hl, payload, 125);
  cymg_ws_mask(frame + hl, 125, key, 0);
  size_t flen = hl + 125;
  char *ping_block = malloc(32 * flen);
  for (int i = 0; i < 32; i++) memcpy(ping_block + i * flen, frame, flen);

  flooder fl[NPIPE + NWS];
  memset(fl, 0, sizeof(fl));
  for (int i = 0; i < NPIPE; i++) {
    fl[i].fd = small_client(port, &s.ports[s.nports++]);
    fl[i].block = i < 2 ? file_block : miss_block;
    fl[i].len = i < 2 ? 64 * (sizeof(get_file) - 1) : blk;
  }
  for (int i = NPIPE; i < NPIPE + NWS; i++) {
    fl[i].fd = small_client(port, &s.ports[s.nports++]);
    static const char up[] =
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    raw_send(mgr, fl[i].fd, up, sizeof(up) - 1);
    char resp[1024];
    raw_read_str(mgr, fl[i].fd, resp, sizeof(resp), "\r\n\r\n");
    assert_non_null(strstr(resp, "HTTP/1.1 101 "));
    fl[i].block = ping_block;
    fl[i].len = 32 * flen;
  }

  size_t base = rss_bytes(), peak = base, peak_out = 0;
  int answers_before = normal.answers;
  uint64_t start = cymg_mgr_now(mgr);
  unsigned long iter = 0;
  while (s.closed < NPIPE + NWS) {
    for (int i = 0; i < NPIPE + NWS; i++) flood(&fl[i]);
    cymg_mgr_poll(mgr, 1);
    normal_step(mgr, &normal);
    if (++iter % 16 == 0) {
      size_t r = rss_bytes(), o = max_send_len(mgr);
      if (r > peak) peak = r;
      if (o > peak_out) peak_out = o;
      /* Checked as it happens: without backpressure memory runs away. */
      if (!UNDER_ASAN && peak - base >= RSS_BUDGET)
        fail_msg("RSS grew by %zu KiB (unsent output up to %zu KiB)", (peak - base) >> 10,
                 peak_out >> 10);
      assert_true(peak_out <= WM_HIGH + WM_SLACK);
    }
    /* A bound for a broken server only: stalls end within seconds. */
    if (cymg_mgr_now(mgr) - start > 6 * CYMG_TEST_WAIT_MS)
      fail_msg("only %d of %d non-readers closed (last error: %s)", s.closed, NPIPE + NWS,
               s.last_error);
  }
  print_message("RSS growth %zu KiB, peak unsent output %zu KiB, %d answers meanwhile\n",
                (peak - base) >> 10, peak_out >> 10, normal.answers - answers_before);
  assert_int_equal(s.stalled, NPIPE + NWS);
  assert_int_equal(s.send_errors, 0);
  assert_int_equal(s.normal_closed, 0);
  /* The normal client was served throughout, and still is. */
  assert_true(normal.answers > answers_before);
  int now_answers = normal.answers;
  while (normal.answers < now_answers + 3) {
    cymg_mgr_poll(mgr, 1);
    normal_step(mgr, &normal);
  }
  /* The non-readers see their connection gone (reset or closed). */
  for (int i = 0; i < NPIPE + NWS; i++) {
    uint64_t t0 = cymg_mgr_now(mgr);
    while (!fl[i].dead) {
      char junk[65536];
      ssize_t k = recv(fl[i].fd, junk, sizeof(junk), MSG_DONTWAIT);
      if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) fl[i].dead = true;
      cymg_mgr_poll(mgr, 1);
      if (cymg_mgr_now(mgr) - t0 > CYMG_TEST_WAIT_MS) fail_msg("non-reader %d not closed", i);
    }
    close(fl[i].fd);
  }
  close(normal.fd);
  POLL_UNTIL(mgr, cymg_mgr_count(mgr) == 1);
  cymg_close(lsn);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr); /* no stall timer left behind */
  cymg_mgr_free(mgr);
  free(file_block);
  free(miss_block);
  free(ping_block);
  remove_tree();
}

/* A reply that does not fit the send limit: the connection fails with the
 * reason and closes, the client is not left waiting for an answer. */
static void test_unqueued_reply_fails_connection(void **state) {
  (void) state;
  make_tree();
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  cymg_mgr_set_limits(mgr, 0, 64); /* smaller than any reply head */
  srv_state s = {.opts = {.root_dir = tmpdir}};
  cymg_conn *lsn;
  assert_int_equal(cymg_http_listen(mgr, "http://127.0.0.1:0", srv_fn, &s, &lsn), 0);
  const char *reqs[] = {"GET /missing.txt HTTP/1.1\r\nHost: x\r\n\r\n",
                        "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"};
  for (int i = 0; i < 2; i++) {
    s.last_error[0] = '\0';
    int fd = raw_connect(cymg_conn_local(lsn)->port);
    raw_send(mgr, fd, reqs[i], strlen(reqs[i]));
    assert_true(raw_wait_closed(mgr, fd));
    assert_non_null(strstr(s.last_error, "could not be queued"));
    close(fd);
  }
  assert_int_equal(s.send_errors, 2);
  POLL_UNTIL(mgr, cymg_mgr_count(mgr) == 1);
  cymg_close(lsn);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
  remove_tree();
}

/* ---- pausing loses nothing: a peer that stops reading for a while, then
 * reads, gets every answer, in order ---- */

#define PR_HIGH 8192u
#define PR_LOW 2048u
#define PR_COUNT 20000

/* Writes what the socket takes of data[*off..len). */
static void push(int fd, const char *data, size_t len, size_t *off) {
  while (*off < len) {
    ssize_t n = send(fd, data + *off, len - *off, MSG_NOSIGNAL);
    if (n <= 0) {
      assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
      return;
    }
    *off += (size_t) n;
  }
}

static void pull(int fd, char *buf, size_t cap, size_t *len) {
  for (;;) {
    ssize_t n = recv(fd, buf + *len, cap - *len, MSG_DONTWAIT);
    if (n > 0) {
      *len += (size_t) n;
      assert_true(*len < cap);
      continue;
    }
    assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)); /* never closed */
    return;
  }
}

/* Phase one: write without reading until the server has paused (its unsent
 * output bounded meanwhile); phase two: read and write until `done`. */
#define PAUSE_THEN_READ(mgr, s, fd, data, len, buf, cap, got, done)                \
  do {                                                                           \
    size_t off_ = 0;                                                             \
    (s).msgs = 0;                                                                \
    for (int i_ = 0; i_ < 300; i_++) {                                           \
      push(fd, data, len, &off_);                                                \
      cymg_mgr_poll(mgr, 1);                                                     \
      assert_true(max_send_len(mgr) <= PR_HIGH + 4096);                          \
    }                                                                            \
    assert_true((s).msgs < PR_COUNT); /* the server paused */                    \
    uint64_t t0_ = cymg_mgr_now(mgr);                                            \
    while (!(done)) {                                                            \
      push(fd, data, len, &off_);                                                \
      cymg_mgr_poll(mgr, 1);                                                     \
      pull(fd, buf, cap, &(got));                                                \
      if (cymg_mgr_now(mgr) - t0_ > CYMG_TEST_WAIT_MS) fail_msg("answers stopped"); \
    }                                                                            \
  } while (0)

/* Statuses of the complete responses in buf, in order; returns how many. */
static int statuses(const char *buf, size_t len, int *out, int max) {
  int n = 0;
  size_t off = 0;
  while (off < len && n < max) {
    cymg_http_header hdrs[32];
    cymg_http_msg m;
    int rc = cymg_http_parse_response(buf + off, len - off, &m, hdrs, 32, NULL);
    if (rc <= 0 || off + (size_t) rc + (size_t) m.content_length > len) break;
    out[n++] = m.status;
    off += (size_t) rc + (size_t) m.content_length;
  }
  return n;
}

/* Counts complete responses as they come, from where the last call stopped. */
static size_t scan_pos;
static int scan_n;
static int count_statuses(const char *buf, size_t len) {
  int st[64];
  for (;;) {
    int k = statuses(buf + scan_pos, len - scan_pos, st, 1);
    if (k == 0) return scan_n;
    cymg_http_header hdrs[32];
    cymg_http_msg m;
    int rc = cymg_http_parse_response(buf + scan_pos, len - scan_pos, &m, hdrs, 32, NULL);
    scan_pos += (size_t) rc + (size_t) m.content_length;
    scan_n++;
  }
}

static void test_pause_resume_loses_nothing(void **state) {
  (void) state;
  make_tree();
  char path[128];
  snprintf(path, sizeof(path), "%s/small.txt", tmpdir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("small file", f);
  fclose(f);
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  srv_state s = {.opts = {.root_dir = tmpdir}};
  cymg_conn *lsn;
  assert_int_equal(cymg_http_listen(mgr, "http://127.0.0.1:0", srv_fn, &s, &lsn), 0);
  assert_int_equal(cymg_conn_set_watermarks(lsn, PR_HIGH, PR_LOW), 0);
  uint16_t port = cymg_conn_local(lsn)->port, me;
  size_t cap = 8u << 20, got = 0;
  char *buf = malloc(cap);

  /* HTTP: pipelined requests for a file and for a missing one, alternating. */
  static const char r1[] = "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n";
  static const char r2[] = "GET /missing.txt HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t plen = (PR_COUNT / 2) * (sizeof(r1) + sizeof(r2) - 2);
  char *pipe_reqs = malloc(plen), *p = pipe_reqs;
  for (int i = 0; i < PR_COUNT / 2; i++) {
    memcpy(p, r1, sizeof(r1) - 1);
    p += sizeof(r1) - 1;
    memcpy(p, r2, sizeof(r2) - 1);
    p += sizeof(r2) - 1;
  }
  int fd = small_client(port, &me);
  scan_pos = 0;
  scan_n = 0;
  PAUSE_THEN_READ(mgr, s, fd, pipe_reqs, plen, buf, cap, got, count_statuses(buf, got) == PR_COUNT);
  int *st = calloc(PR_COUNT, sizeof(int));
  assert_int_equal(statuses(buf, got, st, PR_COUNT), PR_COUNT);
  for (int i = 0; i < PR_COUNT; i++) assert_int_equal(st[i], i % 2 ? 404 : 200);
  free(st);
  close(fd);

  /* WebSocket: numbered pings, each pong in order with its number. */
  fd = small_client(port, &me);
  static const char up[] =
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  raw_send(mgr, fd, up, sizeof(up) - 1);
  char resp[1024];
  size_t rl = raw_read_str(mgr, fd, resp, sizeof(resp), "\r\n\r\n");
  assert_int_equal(rl, (size_t) (strstr(resp, "\r\n\r\n") + 4 - resp)); /* nothing behind */
  static const uint8_t key[4] = {9, 8, 7, 6};
  size_t flen = 0;
  char *pings = malloc((size_t) PR_COUNT * (CYMG_WS_MAX_HEADER + 125));
  uint8_t pl[125];
  memset(pl, 'q', sizeof(pl));
  for (uint32_t i = 0; i < PR_COUNT; i++) {
    uint8_t *b = (uint8_t *) pings + flen;
    size_t hl = cymg_ws_encode_header(b, CYMG_WS_FIN | CYMG_WS_OP_PING, 125, key);
    memcpy(pl, &i, 4);
    memcpy(b + hl, pl, 125);
    cymg_ws_mask(b + hl, 125, key, 0);
    flen += hl + 125;
  }
  got = 0;
  PAUSE_THEN_READ(mgr, s, fd, pings, flen, buf, cap, got, got >= (size_t) PR_COUNT * 127);
  size_t off = 0;
  for (uint32_t i = 0; i < PR_COUNT; i++) {
    cymg_ws_frame fr;
    int hl = cymg_ws_parse_header(buf + off, got - off, &fr);
    assert_true(hl > 0);
    assert_int_equal(CYMG_WS_OPCODE(fr.flags), CYMG_WS_OP_PONG);
    assert_int_equal(fr.len, 125);
    uint32_t v;
    memcpy(&v, buf + off + hl, 4);
    assert_int_equal(v, i);
    off += (size_t) hl + 125;
  }
  assert_int_equal(off, got);
  close(fd);

  free(pings);
  free(pipe_reqs);
  free(buf);
  POLL_UNTIL(mgr, cymg_mgr_count(mgr) == 1);
  assert_int_equal(s.send_errors, 0);
  cymg_close(lsn);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
  remove_tree();
}

/* A keep-alive connection whose last answer is still going out to a slow
 * reader is not idle: the idle timeout must not cut the answer (the stall
 * timeout watches such a connection instead). */
static void test_slow_reader_not_idle(void **state) {
  (void) state;
  make_tree();
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  srv_state s = {.opts = {.root_dir = tmpdir}};
  cymg_conn *lsn;
  assert_int_equal(cymg_http_listen(mgr, "http://127.0.0.1:0", srv_fn, &s, &lsn), 0);
  assert_int_equal(cymg_http_set_timeouts(lsn, 0, 200), 0);
  uint16_t me;
  int fd = small_client(cymg_conn_local(lsn)->port, &me);
  static const char req[] = "GET /blob HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_send(mgr, fd, req, sizeof(req) - 1);
  size_t cap = 9u << 20, got = 0;
  char *buf = malloc(cap);
  uint64_t t0 = cymg_mgr_now(mgr);
  bool framed;
  while (count_responses(buf, got, &framed) < 1) {
    cymg_mgr_poll(mgr, 2);
    ssize_t n = recv(fd, buf + got, 16384, MSG_DONTWAIT); /* a slow reader */
    if (n > 0) got += (size_t) n;
    if (n == 0) fail_msg("closed after %zu bytes of the answer", got);
    if (cymg_mgr_now(mgr) - t0 > CYMG_TEST_WAIT_MS) fail_msg("stuck at %zu bytes", got);
  }
  assert_true(got > (8u << 20));
  assert_int_equal(s.send_errors, 0);
  free(buf);
  close(fd);
  POLL_UNTIL(mgr, cymg_mgr_count(mgr) == 1);
  cymg_close(lsn);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
  remove_tree();
}

/* A client that goes away in the middle of a file body: the pump's sendfile(2)
 * then meets a dead socket, and sendfile has no MSG_NOSIGNAL. With SIGPIPE at
 * its default action (as in any C program that did not change it) the signal
 * would end this whole process; the manager must keep it alive, fail only that
 * connection, and go on serving. */
static void test_peer_gone_mid_file(void **state) {
  (void) state;
  struct sigaction dfl = {0};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  assert_int_equal(sigaction(SIGPIPE, &dfl, NULL), 0);
  make_tree();
  char path[160];
  snprintf(path, sizeof(path), "%s/huge.bin", tmpdir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  static char block[65536];
  memset(block, 'h', sizeof(block));
  for (int i = 0; i < 128; i++) assert_int_equal(fwrite(block, 1, sizeof(block), f), sizeof(block));
  assert_int_equal(fclose(f), 0);
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  srv_state s = {.opts = {.root_dir = tmpdir}};
  cymg_conn *lsn;
  assert_int_equal(cymg_http_listen(mgr, "http://127.0.0.1:0", srv_fn, &s, &lsn), 0);
  for (int round = 0; round < 3; round++) {
    uint16_t me;
    int fd = small_client(cymg_conn_local(lsn)->port, &me);
    static const char req[] = "GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_send(mgr, fd, req, sizeof(req) - 1);
    char buf[4096];
    ssize_t got = 0;
    uint64_t t0 = cymg_mgr_now(mgr);
    while (got <= 0) { /* the body has started */
      cymg_mgr_poll(mgr, 2);
      got = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (cymg_mgr_now(mgr) - t0 > CYMG_TEST_WAIT_MS) fail_msg("no answer");
    }
    /* A half-close first puts the server's socket in CLOSE_WAIT; the reset
     * that close() then sends over the unread bytes makes the kernel fail the
     * next sendfile with EPIPE, the case that raises SIGPIPE. */
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    close(fd);
    POLL_UNTIL(mgr, cymg_mgr_count(mgr) == 1);
  }
  /* Still serving. */
  uint16_t me;
  int fd = small_client(cymg_conn_local(lsn)->port, &me);
  static const char req[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  raw_send(mgr, fd, req, sizeof(req) - 1);
  size_t total = 0;
  uint64_t t0 = cymg_mgr_now(mgr);
  for (;;) {
    cymg_mgr_poll(mgr, 2);
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) total += (size_t) n;
    if (n == 0) break;
    if (cymg_mgr_now(mgr) - t0 > CYMG_TEST_WAIT_MS) fail_msg("stuck at %zu bytes", total);
  }
  assert_true(total > FILE_LEN);
  close(fd);
  POLL_UNTIL(mgr, cymg_mgr_count(mgr) == 1);
  cymg_close(lsn);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
  unlink(path);
  remove_tree();
}

static void test_setters(void **state) {
  (void) state;
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  assert_int_equal(cymg_mgr_set_watermarks(mgr, 100, 200), CYMG_EINVAL);
  assert_int_equal(cymg_mgr_set_watermarks(mgr, 0, 0), CYMG_EINVAL);
  assert_int_equal(cymg_mgr_set_watermarks(NULL, 10, 1), CYMG_EINVAL);
  assert_int_equal(cymg_mgr_set_watermarks(mgr, 4096, 0), 0);
  assert_int_equal(cymg_mgr_set_send_stall(mgr, 0), 0);
  assert_int_equal(cymg_mgr_set_send_stall(NULL, 0), CYMG_EINVAL);
  cymg_conn *lsn;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", NULL, NULL, &lsn), 0);
  assert_int_equal(cymg_conn_set_watermarks(lsn, 10, 11), CYMG_EINVAL);
  assert_int_equal(cymg_conn_set_watermarks(NULL, 10, 1), CYMG_EINVAL);
  assert_int_equal(cymg_conn_set_watermarks(lsn, 8192, 8192), 0);
  assert_int_equal(cymg_conn_set_send_stall(lsn, 500), 0);
  assert_int_equal(cymg_conn_set_send_stall(NULL, 500), CYMG_EINVAL);
  cymg_close(lsn);
  cymg_mgr_poll(mgr, 0);
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_setters),
      cmocka_unit_test(test_unqueued_reply_fails_connection),
      cmocka_unit_test(test_pause_resume_loses_nothing),
      cmocka_unit_test(test_slow_reader_not_idle),
      cmocka_unit_test(test_peer_gone_mid_file),
      cmocka_unit_test(test_nonreaders_bounded_and_closed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
