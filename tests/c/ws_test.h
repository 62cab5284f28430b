/* Helpers for the WebSocket integration tests: the echo server they share, a
 * client that records what arrives, the message contents both Node peers use
 * (tests/node/common.js), and running Node. */
#ifndef CYMG_WS_TEST_H
#define CYMG_WS_TEST_H

#include <signal.h>
#include <sys/wait.h>

#include "http_test.h"

/* tests/node and scripts/, found from this header's own path (tests/c/...),
 * which the build passes as an absolute one. */
static inline const char *test_path(char *out, size_t len, const char *rel) {
  const char *slash = strrchr(__FILE__, '/');
  snprintf(out, len, "%.*s/../%s", slash ? (int) (slash - __FILE__) : 1, slash ? __FILE__ : ".",
           rel);
  return out;
}

/* The same bytes as payload() in tests/node/common.js. */
static inline void ws_payload(uint8_t *b, size_t n, bool text) {
  for (size_t i = 0; i < n; i++)
    b[i] = text ? (uint8_t) (0x61 + i % 26) : (uint8_t) ((i * 31 + 7) & 0xff);
  if (text && n >= 5) memcpy(b + n - 5, "\xc3\xa9\xe2\x82\xac", 5); /* "é€" */
}

/* ---- the echo server: commands as text "close:CODE", "ping", "frag:N",
 * "deflate?"; everything else comes back as it came ---- */

typedef struct {
  int opens, msgs, errors;
  bool want_pong;
  char last_error[256];
} ws_srv;

/* The number after a command's prefix. A message's payload is not a C
 * string: what lies after it in the receive buffer is whatever that memory
 * held (atoi on it once read stale digits on: "frag:200000" became 2000005). */
static int ws_cmd_num(cymg_str d, size_t skip) {
  char num[16];
  size_t n = d.len - skip < sizeof(num) - 1 ? d.len - skip : sizeof(num) - 1;
  memcpy(num, d.buf + skip, n);
  num[n] = '\0';
  return atoi(num);
}

static void ws_srv_fn(cymg_conn *c, int ev, void *ev_data) {
  ws_srv *s = cymg_conn_userdata(c);
  if (ev == CYMG_EV_HTTP_MSG) {
    cymg_ws_upgrade(c, ev_data, NULL);
  } else if (ev == CYMG_EV_WS_OPEN) {
    s->opens++;
  } else if (ev == CYMG_EV_ERROR) {
    s->errors++;
    snprintf(s->last_error, sizeof(s->last_error), "%s", (const char *) ev_data);
  } else if (ev == CYMG_EV_WS_CTL) {
    cymg_ws_msg *m = ev_data;
    if (CYMG_WS_OPCODE(m->flags) == CYMG_WS_OP_PONG && s->want_pong) {
      s->want_pong = false;
      assert_int_equal(cymg_ws_send(c, "ponged", 6, CYMG_WS_OP_TEXT), 0);
    }
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *m = ev_data;
    s->msgs++;
    cymg_str d = m->data;
    int op = CYMG_WS_OPCODE(m->flags);
    if (op == CYMG_WS_OP_TEXT && d.len > 6 && memcmp(d.buf, "close:", 6) == 0) {
      assert_int_equal(cymg_ws_close(c, ws_cmd_num(d, 6), "bye"), 0);
    } else if (op == CYMG_WS_OP_TEXT && cymg_str_eq(d, cymg_str_c("ping"))) {
      s->want_pong = true;
      assert_int_equal(cymg_ws_send(c, "srv-ping", 8, CYMG_WS_OP_PING), 0);
    } else if (op == CYMG_WS_OP_TEXT && d.len > 5 && memcmp(d.buf, "frag:", 5) == 0) {
      size_t n = (size_t) ws_cmd_num(d, 5), third = n / 3;
      uint8_t *b = malloc(n);
      ws_payload(b, n, false);
      assert_int_equal(cymg_ws_send_frag(c, CYMG_WS_OP_BINARY, b, third, false), 0);
      assert_int_equal(cymg_ws_send(c, "x", 1, CYMG_WS_OP_TEXT), CYMG_ESTATE);
      assert_int_equal(cymg_ws_send(c, "mid", 3, CYMG_WS_OP_PING), 0);
      assert_int_equal(cymg_ws_send_frag(c, CYMG_WS_OP_CONT, b + third, third, false), 0);
      assert_int_equal(cymg_ws_send_frag(c, CYMG_WS_OP_BINARY, b + 2 * third, n - 2 * third, true), 0);
      free(b);
    } else if (op == CYMG_WS_OP_TEXT && cymg_str_eq(d, cymg_str_c("deflate?"))) {
      assert_true(cymg_ws_printf(c, CYMG_WS_OP_TEXT, "%s", cymg_ws_is_deflate(c) ? "yes" : "no") > 0);
    } else {
      assert_int_equal(cymg_ws_send(c, d.buf, d.len, op), 0);
    }
  }
}

/* ---- a client that records what arrives ---- */

typedef struct {
  bool open, closed;
  int msgs, pongs, closes, errors;
  uint8_t flags;
  cymg_buf last, pong;
  int close_code;
  char close_reason[128];
  char error[256];
} ws_cli;

static void ws_cli_fn(cymg_conn *c, int ev, void *ev_data) {
  ws_cli *s = cymg_conn_userdata(c);
  if (ev == CYMG_EV_WS_OPEN) {
    s->open = true;
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *m = ev_data;
    s->msgs++;
    s->flags = m->flags;
    s->last.len = 0;
    assert_int_equal(cymg_buf_append(&s->last, m->data.buf, m->data.len), 0);
  } else if (ev == CYMG_EV_WS_CTL) {
    cymg_ws_msg *m = ev_data;
    if (CYMG_WS_OPCODE(m->flags) == CYMG_WS_OP_PONG) {
      s->pongs++;
      s->pong.len = 0;
      assert_int_equal(cymg_buf_append(&s->pong, m->data.buf, m->data.len), 0);
    } else if (CYMG_WS_OPCODE(m->flags) == CYMG_WS_OP_CLOSE) {
      s->closes++;
      s->close_code = cymg_ws_close_code(m->data);
      snprintf(s->close_reason, sizeof(s->close_reason), "%.*s",
               m->data.len > 2 ? (int) m->data.len - 2 : 0, m->data.len > 2 ? m->data.buf + 2 : "");
    }
  } else if (ev == CYMG_EV_ERROR) {
    s->errors++;
    snprintf(s->error, sizeof(s->error), "%s", (const char *) ev_data);
  } else if (ev == CYMG_EV_CLOSE) {
    s->closed = true;
  }
}

static inline void ws_cli_free(ws_cli *s) {
  cymg_buf_free(&s->last);
  cymg_buf_free(&s->pong);
}

/* ---- Node ---- */

/* True when node is on PATH and the ws package is installed next to the
 * scripts (installing it with scripts/deps-node.sh when it is missing). */
static inline bool node_ready(void) {
  if (system("node --version >/dev/null 2>&1") != 0) return false;
  char pkg[512], script[512], cmd[600];
  test_path(pkg, sizeof(pkg), "node/node_modules/ws/package.json");
  if (access(pkg, R_OK) != 0) {
    snprintf(cmd, sizeof(cmd), "%s >&2", test_path(script, sizeof(script), "../scripts/deps-node.sh"));
    int rc = system(cmd);
    if (rc != 0 || access(pkg, R_OK) != 0)
      fail_msg("node is here but the ws package is not: run scripts/deps-node.sh");
  }
  return true;
}

/* Runs `node NODE_DIR/script args...` with its stdin and stdout on pipes. The
 * child's stdin is our end (*to_child): closing it tells a server to exit. */
static inline pid_t node_spawn(const char *script, const char *a1, const char *a2, int *from_child,
                               int *to_child) {
  int out[2], in[2];
  assert_int_equal(pipe(out), 0);
  assert_int_equal(pipe(in), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(in[0], 0);
    close(out[0]);
    close(out[1]);
    close(in[0]);
    close(in[1]);
    char rel[128], path[512];
    snprintf(rel, sizeof(rel), "node/%s", script);
    test_path(path, sizeof(path), rel);
    execlp("node", "node", path, a1, a2, (char *) NULL);
    _exit(127);
  }
  close(out[1]);
  close(in[0]);
  *from_child = out[0];
  *to_child = in[1];
  return pid;
}

/* Polls mgr until the child exits; returns its exit status. */
static inline int node_wait(cymg_mgr *mgr, pid_t pid) {
  int status = 0;
  uint64_t start = cymg_mgr_now(mgr);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    cymg_mgr_poll(mgr, 10);
    if (cymg_mgr_now(mgr) - start > 180000) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fail_msg("node peer did not finish");
    }
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#endif
