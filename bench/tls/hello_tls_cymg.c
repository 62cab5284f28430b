/* The HTTPS twin of bench/http/hello_cymg.c: one manager, one https listener
 * given its certificate once (accepted connections inherit it), every request
 * answered 200 "hello". What bench/tls/run.sh puts next to nginx.
 *
 *   hello_tls_cymg PORT CERT KEY   listen on https://127.0.0.1:PORT (0: any)
 *
 * Prints "port N" once listening; on SIGTERM or SIGINT it stops and prints
 * "requests=N cpu_us=N". */
#include "../bench_server.h"

static long requests;
static const char *cert_file, *key_file;

static void handler(cymg_conn *c, int ev, void *ev_data) {
  if (ev == CYMG_EV_HTTP_MSG) {
    requests++;
    cymg_http_reply(c, 200, "Content-Type: text/plain\r\n", "hello");
  }
  (void) ev_data; /* handshake failures (a client gone mid-handshake) are expected under load */
}

static int give_certificate(cymg_conn *lsn) {
  cymg_tls_opts o = {.cert = cymg_str_c(cert_file), .key = cymg_str_c(key_file)};
  /* An hour of keep-alive, as run.sh gives nginx: the idle measurement holds
   * 10,000 connections, and making them can outlast the 60 s default. */
  int rc = cymg_http_set_timeouts(lsn, 0, 3600u * 1000u);
  if (rc < 0) return rc;
  return cymg_tls_init(lsn, &o);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s PORT CERT KEY\n", argv[0]);
    return 2;
  }
  cert_file = argv[2];
  key_file = argv[3];
  bench_listener_setup = give_certificate;
  return bench_serve("hello_tls_cymg", cymg_http_listen, "https", argv[1], handler, &requests,
                     "requests");
}
