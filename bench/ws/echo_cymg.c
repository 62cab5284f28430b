/* libcymg WebSocket echo server for bench/ws/run.sh, written as an application
 * would write it (examples/ws_echo.c without the page and without compression,
 * which the Node server does not offer either): every message goes straight back
 * with cymg_ws_send.
 *
 *   echo_cymg PORT       listen on ws://127.0.0.1:PORT (0: any free port)
 *
 * Prints "port N" once listening; on SIGTERM or SIGINT it stops and prints
 * "messages=N cpu_us=N". */
#define _POSIX_C_SOURCE 200809L /* sigaction under -std=c11 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cymg/cymg.h>

static volatile sig_atomic_t stop;
static long messages;

static void on_signal(int sig) {
  (void) sig;
  stop = 1;
}

static long cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

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
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal; /* no SA_RESTART: the signal interrupts epoll_wait */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  cymg_mgr *mgr;
  cymg_conn *lsn;
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d", atoi(argv[1]));
  if (cymg_mgr_new(&mgr, CYMG_BACKEND_EPOLL) != 0) return 1;
  if (cymg_ws_listen(mgr, url, handler, NULL, &lsn) != 0) {
    fprintf(stderr, "echo_cymg: %s\n", cymg_mgr_errmsg(mgr));
    cymg_mgr_free(mgr);
    return 1;
  }
  printf("port %u\n", (unsigned) cymg_conn_local(lsn)->port);
  fflush(stdout);
  while (!stop) cymg_mgr_poll(mgr, 1000);
  cymg_mgr_free(mgr);
  printf("messages=%ld cpu_us=%ld\n", messages, cpu_us());
  return 0;
}
