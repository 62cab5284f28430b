/* An outside program built against the installed library: creates a manager,
 * listens on an OS-assigned port, connects to it, and exchanges a message. */
#include <stdio.h>
#include <string.h>

#include <cymg/cymg.h>

static int done;

static void on_server(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c);
    cymg_send(c, d.buf, d.len);
    cymg_conn_consume(c, d.len);
  }
}

static void on_client(cymg_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CYMG_EV_CONNECT) cymg_send(c, "ping", 4);
  if (ev == CYMG_EV_READ && cymg_conn_recv_len(c) >= 4) {
    done = memcmp(cymg_conn_recv_data(c).buf, "ping", 4) == 0 ? 1 : -1;
    cymg_close(c);
  }
  if (ev == CYMG_EV_ERROR) done = -1;
}

int main(void) {
  if (strcmp(cymg_version(), CYMG_VERSION_STRING) != 0) return 1;
  cymg_mgr *mgr;
  cymg_conn *lsn;
  char url[64];
  if (cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO) != 0) return 1;
  if (cymg_listen(mgr, "tcp://127.0.0.1:0", on_server, NULL, &lsn) != 0) return 1;
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", (unsigned) cymg_conn_local(lsn)->port);
  if (cymg_connect(mgr, url, on_client, NULL, NULL) != 0) return 1;
  for (int i = 0; i < 1000 && done == 0; i++) cymg_mgr_poll(mgr, 10);
  cymg_mgr_free(mgr);
  printf("consumer: libcymg %s %s\n", cymg_version(), done == 1 ? "ok" : "FAILED");
  return done == 1 ? 0 : 1;
}
