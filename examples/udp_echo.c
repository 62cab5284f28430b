/* UDP echo server: each datagram goes back to its sender.
 *   udp_echo [URL]      default udp://127.0.0.1:8001
 * Try it: nc -u 127.0.0.1 8001 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <cymg/cymg.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { stop = sig; }

static void on_event(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CYMG_EV_READ) {
    /* One READ per datagram; the remote address is its sender. */
    cymg_str data = cymg_conn_recv_data(c);
    int rc = cymg_send(c, data.buf, data.len);
    if (rc < 0) fprintf(stderr, "udp_echo: %s\n", cymg_strerror(rc));
    cymg_conn_consume(c, data.len);
  }
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "udp://127.0.0.1:8001";
  if (strcmp(url, "--help") == 0 || strcmp(url, "-h") == 0) {
    printf("usage: %s [URL]   listen on URL (default udp://127.0.0.1:8001) and echo\n", argv[0]);
    return 0;
  }
  cymg_mgr *mgr;
  cymg_conn *lsn;
  if (cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO) != 0) return 1;
  if (cymg_listen(mgr, url, on_event, NULL, &lsn) != 0) {
    fprintf(stderr, "udp_echo: %s\n", cymg_mgr_errmsg(mgr));
    cymg_mgr_free(mgr);
    return 1;
  }
  char a[64];
  cymg_addr_str(cymg_conn_local(lsn), true, a, sizeof(a));
  printf("udp_echo: echoing datagrams on udp://%s (Ctrl-C stops)\n", a);
  fflush(stdout);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!stop) cymg_mgr_poll(mgr, 1000);
  cymg_mgr_free(mgr);
  return 0;
}
