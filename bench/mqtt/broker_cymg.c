/* libcymg's MQTT broker as bench/mqtt/run.sh runs it: one manager on epoll,
 * one broker with the default options (in memory, no hooks) except the
 * limits a benchmark must not hit (queued messages per session), one
 * mqtt:// listener, the poll loop.
 *
 *   broker_cymg PORT     listen on mqtt://127.0.0.1:PORT (0: any free port)
 *
 * Raises RLIMIT_NOFILE to its hard limit (the idle-client measurement holds
 * 10,000 connections). Prints "port N" once listening; on SIGTERM or SIGINT
 * frees the broker and prints "msgs_in=N msgs_out=N dropped=N cpu_us=N". */
#include "../bench_server.h"

#include <cymg/mqtt_broker.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  bench_catch_signals();
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) perror("broker_cymg: setrlimit");
  }

  cymg_mgr *mgr;
  cymg_mqtt_broker *b = NULL;
  cymg_conn *lsn;
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%d", atoi(argv[1]));
  if (cymg_mgr_new(&mgr, CYMG_BACKEND_EPOLL) != 0) return 1;
  cymg_mqtt_broker_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.max_queued = 100000; /* as mosquitto's max_queued_messages in run.sh */
  int rc = cymg_mqtt_broker_new(mgr, &opts, &b);
  if (rc == 0) rc = cymg_mqtt_broker_listen(b, url, &lsn);
  if (rc != 0) {
    fprintf(stderr, "broker_cymg: %s (%s)\n", cymg_mgr_errmsg(mgr), cymg_strerror(rc));
    cymg_mqtt_broker_free(b);
    cymg_mgr_free(mgr);
    return 1;
  }
  printf("port %u\n", (unsigned)cymg_conn_local(lsn)->port);
  fflush(stdout);
  while (!bench_stop) cymg_mgr_poll(mgr, 1000);
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(b, &st);
  cymg_mqtt_broker_free(b);
  cymg_mgr_free(mgr);
  printf("msgs_in=%llu msgs_out=%llu dropped=%llu cpu_us=%ld\n", (unsigned long long)st.msgs_in,
         (unsigned long long)st.msgs_out, (unsigned long long)st.dropped, bench_cpu_us());
  return 0;
}
