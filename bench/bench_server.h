/* What the libcymg benchmark servers share: a manager on epoll (or on the
 * backend the CYMG_BACKEND environment variable names, so run.sh can measure
 * each backend with the same program), a listener on
 * 127.0.0.1:PORT, "port N" once listening, the loop until SIGTERM or SIGINT,
 * and "<counted>=N cpu_us=N" at the end, which the run.sh scripts read. */
#ifndef CYMG_BENCH_SERVER_H
#define CYMG_BENCH_SERVER_H

#define _POSIX_C_SOURCE 200809L /* sigaction under -std=c11 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cymg/cymg.h>

static volatile sig_atomic_t bench_stop;

static void bench_on_signal(int sig) {
  (void) sig;
  bench_stop = 1;
}

static long bench_cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

typedef int (*bench_listen_fn)(cymg_mgr *, const char *, cymg_event_fn, void *, cymg_conn **);

/* Set by a server that configures its listener before the loop (bench/tls
 * gives it the certificate); returns 0, or <0 to stop with errmsg. */
static int (*bench_listener_setup)(cymg_conn *lsn);

/* SIGTERM and SIGINT set bench_stop. No SA_RESTART: the signal interrupts
 * epoll_wait and the loop sees the flag. One landing between the test and the
 * wait is caught by the bounded wait. */
static void bench_catch_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = bench_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

/* Serves scheme://127.0.0.1:port with fn until a signal; *count is what the
 * handler counted, reported under the name `counted`. Returns the exit code.
 * (inline: a server with a listen call of another shape, bench/mqtt's broker,
 * uses the rest of this header without it.) */
static inline int bench_serve(const char *name, bench_listen_fn listen_fn, const char *scheme,
                              const char *port, cymg_event_fn fn, const long *count,
                              const char *counted) {
  bench_catch_signals();

  cymg_mgr *mgr;
  cymg_conn *lsn;
  char url[64];
  snprintf(url, sizeof(url), "%s://127.0.0.1:%d", scheme, atoi(port));
  /* AUTO reads CYMG_BACKEND; unset, the figures stay on epoll as before
   * rather than on whatever AUTO would pick first. */
  const char *env = getenv("CYMG_BACKEND");
  int backend = env != NULL && *env != '\0' ? CYMG_BACKEND_AUTO : CYMG_BACKEND_EPOLL;
  int rc = cymg_mgr_new(&mgr, backend);
  if (rc != 0) {
    fprintf(stderr, "%s: backend %s: %s\n", name, env ? env : "epoll", cymg_strerror(rc));
    return 1;
  }
  if (listen_fn(mgr, url, fn, NULL, &lsn) != 0) {
    fprintf(stderr, "%s: %s\n", name, cymg_mgr_errmsg(mgr));
    cymg_mgr_free(mgr);
    return 1;
  }
  if (bench_listener_setup != NULL && bench_listener_setup(lsn) < 0) {
    fprintf(stderr, "%s: %s\n", name, cymg_mgr_errmsg(mgr));
    cymg_mgr_free(mgr);
    return 1;
  }
  printf("port %u\n", (unsigned) cymg_conn_local(lsn)->port);
  fflush(stdout);
  while (!bench_stop) cymg_mgr_poll(mgr, 1000);
  cymg_mgr_free(mgr);
  printf("%s=%ld cpu_us=%ld\n", counted, *count, bench_cpu_us());
  return 0;
}

#endif
