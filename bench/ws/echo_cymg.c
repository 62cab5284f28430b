/* libcymg WebSocket echo server for bench/ws/run.sh, written as an application
 * would write it (examples/ws_echo.c without the page and without compression,
 * which the Node server does not offer either): every message goes straight back
 * with cymg_ws_send.
 *
 *   echo_cymg PORT       listen on ws://127.0.0.1:PORT (0: any free port)
 *
 * Prints "port N" once listening; on SIGTERM or SIGINT it stops and prints
 * "messages=N cpu_us=N". */
#include "../bench_server.h"

static long messages;

static void handler(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_HTTP_MSG) {
    cymg_http_msg *hm = ev_data;
    if (hm->flags & CYMG_HTTP_F_UPGRADE) {
      cymg_ws_upgrade(c, hm, NULL); /* answers 400/426 itself when the request is bad */
    } else {
      cymg_http_reply(c, 404, "Content-Type: text/plain\r\n", "not found\n");
    }
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *m = ev_data;
    messages++;
    cymg_ws_send(c, m->data.buf, m->data.len, CYMG_WS_OPCODE(m->flags));
  } else if (ev == CYMG_EV_ERROR) {
    fprintf(stderr, "echo_cymg: %s\n", (const char *) ev_data);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  return bench_serve("echo_cymg", cymg_ws_listen, "ws", argv[1], handler, &messages, "messages");
}
