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
#include "../bench_server.h"

static long requests;
static const char *root_dir;

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
  return bench_serve("hello_cymg", cymg_http_listen, "http", argv[1], handler, &requests, "requests");
}
