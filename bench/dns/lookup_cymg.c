/* Lookups per second through libcymg's resolver: PORT NAMES LOOKUPS INFLIGHT MODE.
 * Names h0.test .. h<NAMES-1>.test, INFLIGHT lookups outstanding at a time.
 * MODE "cached": the names are resolved once, then LOOKUPS more are timed (all
 * answered from the cache); "uncached": the cache is flushed before each lookup,
 * so every one is a query to the server. Prints "rate N failed F". */
#define _POSIX_C_SOURCE 200809L
#include <cymg/dns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long names, started, done, failed, total;
static int uncached;

static void one(cymg_mgr *mgr);
static void on_result(cymg_mgr *mgr, const cymg_dns_result *res, void *arg) {
  (void) arg;
  done++;
  if (res->status < 0 || res->naddrs == 0) failed++;
  if (started < total) one(mgr);
}
static void one(cymg_mgr *mgr) {
  char name[32];
  snprintf(name, sizeof(name), "h%ld.test", started % names);
  started++;
  if (uncached) cymg_mgr_dns_flush(mgr);
  if (cymg_dns_lookup(mgr, name, CYMG_DNS_IPV4, on_result, NULL, NULL) != 0) { done++; failed++; }
}
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}
/* Runs n lookups, at most inflight at once; returns seconds taken. */
static double run(cymg_mgr *mgr, long n, long inflight) {
  started = done = failed = 0;
  total = n;
  double t0 = now();
  for (long i = 0; i < inflight && started < total; i++) one(mgr);
  while (done < total) {
    if (cymg_mgr_poll(mgr, 100) < 0) break;
  }
  return now() - t0;
}
int main(int argc, char **argv) {
  if (argc != 6) { fprintf(stderr, "usage: %s PORT NAMES LOOKUPS INFLIGHT cached|uncached\n", argv[0]); return 2; }
  char srv[64];
  snprintf(srv, sizeof(srv), "udp://127.0.0.1:%s", argv[1]);
  names = atol(argv[2]);
  long n = atol(argv[3]), inflight = atol(argv[4]);
  uncached = strcmp(argv[5], "uncached") == 0;
  cymg_mgr *mgr;
  if (names <= 0 || n <= 0 || inflight <= 0 || cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO) != 0) return 1;
  if (cymg_mgr_set_dns(mgr, srv) != 0) return 1;
  if (!uncached) run(mgr, names, inflight); /* fill the cache */
  double secs = run(mgr, n, inflight);
  printf("rate %.0f failed %ld\n", secs > 0 ? (double) n / secs : 0, failed);
  cymg_mgr_free(mgr);
  return failed ? 1 : 0;
}
