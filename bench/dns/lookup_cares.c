/* The same uncached lookups through c-ares (no cache of its own):
 * PORT NAMES LOOKUPS INFLIGHT. Prints "rate N failed F". */
#define _POSIX_C_SOURCE 200809L
#include <sys/select.h> /* before ares.h, which uses fd_set */
#include <ares.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long names, started, done, failed, total;
static ares_channel ch;

static void one(void);
static void on_host(void *arg, int status, int timeouts, struct hostent *h) {
  (void) arg, (void) timeouts;
  done++;
  if (status != ARES_SUCCESS || !h || !h->h_addr_list[0]) failed++;
  if (started < total) one();
}
static void one(void) {
  char name[32];
  snprintf(name, sizeof(name), "h%ld.test", started++ % names);
  ares_gethostbyname(ch, name, AF_INET, on_host, NULL);
}
int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: %s PORT NAMES LOOKUPS INFLIGHT\n", argv[0]); return 2; }
  char srv[64];
  snprintf(srv, sizeof(srv), "127.0.0.1:%s", argv[1]);
  names = atol(argv[2]), total = atol(argv[3]);
  long inflight = atol(argv[4]);
  struct ares_options o = {.flags = ARES_FLAG_NOSEARCH, .lookups = (char *) "b"};
  if (ares_library_init(ARES_LIB_INIT_ALL) || ares_init_options(&ch, &o, ARES_OPT_FLAGS | ARES_OPT_LOOKUPS) ||
      ares_set_servers_ports_csv(ch, srv)) return 1;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < inflight && started < total; i++) one();
  while (done < total) {
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    int nfds = ares_fds(ch, &r, &w);
    struct timeval tv, *tvp = ares_timeout(ch, NULL, &tv);
    if (select(nfds, &r, &w, NULL, tvp) < 0) return 1;
    ares_process(ch, &r, &w);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("rate %.0f failed %ld\n", secs > 0 ? (double) total / secs : 0, failed);
  ares_destroy(ch);
  ares_library_cleanup();
  return failed ? 1 : 0;
}
