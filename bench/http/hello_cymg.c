/* A libcymg HTTP server written the way an application would write it: one
 * manager, one listener, and an HTTP_MSG handler that answers every request with
 * cymg_http_reply. It is what bench/http/run.sh puts next to nginx.
 *
 *   hello_cymg PORT [ROOT]   listen on 127.0.0.1:PORT (0: any free port)
 *
 * Every request gets 200 with the 5-byte body "hello" (Content-Type: text/plain),
 * except, when ROOT is given, those under /static/, which cymg_http_serve_dir
 * answers from the files under ROOT (/static/x is ROOT/static/x, as nginx's
 * `root` maps it). Prints "port N" once listening; on SIGTERM or SIGINT it
 * stops and prints "requests=N cpu_us=N". */
#define _POSIX_C_SOURCE 200809L /* sigaction under -std=c11 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cymg/cymg.h>

static volatile sig_atomic_t stop;
static long requests;
static const char *root_dir;

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
    cymg_http_msg *msg = ev_data;
    requests++;
    if (root_dir && msg->uri.len > 8 && memcmp(msg->uri.buf, "/static/", 8) == 0) {
      cymg_http_serve_opts opts = {.root_dir = root_dir};
      cymg_http_serve_dir(c, msg, &opts);
      return;
    }
    cymg_http_reply(c, 200, "Content-Type: text/plain\r\n", "hello");
  } else if (ev == CYMG_EV_ERROR) {
    fprintf(stderr, "hello_cymg: %s\n", (const char *) ev_data);
  }
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: %s PORT [ROOT]\n", argv[0]);
    return 2;
  }
  if (argc == 3) root_dir = argv[2];
  /* No SA_RESTART: the signal interrupts epoll_wait and the loop sees `stop`. */
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  cymg_mgr *mgr;
  cymg_conn *lsn;
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d", atoi(argv[1]));
  if (cymg_mgr_new(&mgr, CYMG_BACKEND_EPOLL) != 0) return 1;
  if (cymg_http_listen(mgr, url, handler, NULL, &lsn) != 0) {
    fprintf(stderr, "hello_cymg: %s\n", cymg_mgr_errmsg(mgr));
    cymg_mgr_free(mgr);
    return 1;
  }
  printf("port %u\n", (unsigned) cymg_conn_local(lsn)->port);
  fflush(stdout);
  /* A signal that lands between the test of `stop` and epoll_wait does not
   * interrupt the wait, so the wait is bounded; under load the HTTP layer's
   * deadlines wake the loop sooner anyway. */
  while (!stop) cymg_mgr_poll(mgr, 1000);
  cymg_mgr_free(mgr);
  printf("requests=%ld cpu_us=%ld\n", requests, cpu_us());
  return 0;
}
