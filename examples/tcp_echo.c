/* TCP echo server: every byte a client sends comes straight back.
 *   tcp_echo [URL]      default tcp://127.0.0.1:8000
 * Try it: nc 127.0.0.1 8000 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <cymg/cymg.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { stop = sig; }

static void on_event(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_ACCEPT) {
    char a[64];
    cymg_addr_str(cymg_conn_remote(c), true, a, sizeof(a));
    printf("connection %llu from %s\n", (unsigned long long) cymg_conn_id(c), a);
  } else if (ev == CYMG_EV_READ) {
    cymg_str data = cymg_conn_recv_data(c);
    if (cymg_send(c, data.buf, data.len) == 0) cymg_conn_consume(c, data.len);
  } else if (ev == CYMG_EV_ERROR) {
    fprintf(stderr, "connection %llu: %s\n", (unsigned long long) cymg_conn_id(c),
            (const char *) ev_data);
  }
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:8000";
  if (strcmp(url, "--help") == 0 || strcmp(url, "-h") == 0) {
    printf("usage: %s [URL]   listen on URL (default tcp://127.0.0.1:8000) and echo\n", argv[0]);
    return 0;
  }
  cymg_mgr *mgr;
  cymg_conn *lsn;
  if (cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO) != 0) return 1;
  if (cymg_listen(mgr, url, on_event, NULL, &lsn) != 0) {
    fprintf(stderr, "tcp_echo: %s\n", cymg_mgr_errmsg(mgr));
    cymg_mgr_free(mgr);
    return 1;
  }
  char a[64];
  cymg_addr_str(cymg_conn_local(lsn), true, a, sizeof(a));
  printf("tcp_echo: libcymg %s (%s) echoing on tcp://%s\n", cymg_version(), cymg_mgr_backend(mgr), a);
  printf("talk to it with: nc %.*s %u   (Ctrl-C stops)\n",
         (int) (strrchr(a, ':') - a), a, (unsigned) cymg_conn_local(lsn)->port);
  fflush(stdout);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!stop) cymg_mgr_poll(mgr, 1000);
  cymg_mgr_free(mgr);
  printf("tcp_echo: stopped\n");
  return 0;
}
