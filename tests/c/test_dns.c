/* The resolver against real servers on loopback: dnsmasq for ordinary answers
 * (A, AAAA, CNAME chains, NXDOMAIN) and tests/data/dns_responder.py for what no
 * real server does on demand (truncation, wrong ids, spoofed sources, loops,
 * slow and silent servers, SERVFAIL). Connects by name, cancellation, hosts
 * and resolv.conf files written by the test. CYMG_TEST_BACKENDS. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_test.h"

static pid_t dnsmasq_pid = -1, resp_pid = -1;
static int resp_stdin = -1;
static unsigned dnsmasq_port, resp_port;

static unsigned free_udp_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
  socklen_t sl = sizeof(a);
  assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &sl), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* A blocking probe: true once the server answers anything on port. */
static bool udp_answers(unsigned port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  struct timeval tv = {0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  uint8_t q[64], r[512];
  int n = cymg_dns_build_query(q, sizeof(q), 1, "one.test", CYMG_DNS_A);
  bool ok = n > 0 && sendto(fd, q, (size_t) n, 0, (struct sockaddr *) &a, sizeof(a)) == n &&
            recv(fd, r, sizeof(r), 0) > 0;
  close(fd);
  return ok;
}

static int setup(void **state) {
  (void) state;
  signal(SIGPIPE, SIG_IGN);
  /* dnsmasq may lose the free port to another test between our probe and its
   * bind: it then exits, and we try another port. */
  for (int round = 0; round < 5; round++) {
  dnsmasq_port = free_udp_port();
  char port_arg[32];
  snprintf(port_arg, sizeof(port_arg), "--port=%u", dnsmasq_port);
  dnsmasq_pid = fork();
  if (dnsmasq_pid == 0) {
    execlp("dnsmasq", "dnsmasq", "--no-resolv", "--no-hosts", "--keep-in-foreground",
           port_arg, "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=",
           "--user=root", "--local-ttl=60", "--log-facility=/dev/null",
           "--host-record=one.test,127.0.0.1", "--host-record=both.test,127.0.0.1,::1",
           "--host-record=v6only.test,::1", "--cname=alias.test,mid.test",
           "--cname=mid.test,one.test", "--address=/nx.test/", (char *) NULL);
    _exit(127);
  }
  bool up = false;
  for (int i = 0; i < 100 && !up; i++) {
    up = udp_answers(dnsmasq_port);
    if (!up && waitpid(dnsmasq_pid, NULL, WNOHANG) == dnsmasq_pid) break; /* it exited */
    if (!up) usleep(100000);
  }
  if (up) break;
  kill(dnsmasq_pid, SIGTERM);
  waitpid(dnsmasq_pid, NULL, 0);
  dnsmasq_pid = -1;
  }
  if (dnsmasq_pid < 0) return -1;
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) return -1;
  resp_pid = fork();
  if (resp_pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    execl("/usr/bin/python3", "python3", CYMG_TEST_DATA_DIR "/dns_responder.py", (char *) NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  resp_stdin = in[1];
  char line[32] = {0};
  size_t got = 0;
  while (got < sizeof(line) - 1) {
    ssize_t n = read(out[0], line + got, 1);
    if (n <= 0 || line[got] == '\n') break;
    got++;
  }
  close(out[0]);
  resp_port = (unsigned) strtoul(line, NULL, 10);
  if (resp_port == 0) return -1;
  for (int i = 0; i < 100 && !udp_answers(dnsmasq_port); i++) usleep(100000);
  return udp_answers(dnsmasq_port) ? 0 : -1;
}

static int teardown(void **state) {
  (void) state;
  if (resp_stdin >= 0) close(resp_stdin);
  if (dnsmasq_pid > 0) kill(dnsmasq_pid, SIGTERM);
  if (resp_pid > 0) kill(resp_pid, SIGTERM);
  if (dnsmasq_pid > 0) waitpid(dnsmasq_pid, NULL, 0);
  if (resp_pid > 0) waitpid(resp_pid, NULL, 0);
  return 0;
}

static cymg_mgr *dns_mgr(unsigned port) {
  cymg_mgr *mgr;
  assert_int_equal(cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO), 0);
  char url[64];
  snprintf(url, sizeof(url), "udp://127.0.0.1:%u", port);
  assert_int_equal(cymg_mgr_set_dns(mgr, url), 0);
  /* No test may depend on the machine's own files. */
  assert_int_equal(cymg_mgr_set_resolv_conf(mgr, "/nonexistent/resolv.conf"), 0);
  assert_int_equal(cymg_mgr_set_hosts_file(mgr, "/nonexistent/hosts"), 0);
  cymg_mgr_set_dns_timeout(mgr, 300, 2);
  return mgr;
}

static void free_mgr(cymg_mgr *mgr) {
  for (int i = 0; i < 3; i++) cymg_mgr_poll(mgr, 0); /* reap the query sockets */
  ASSERT_MGR_CLEAN(mgr);
  cymg_mgr_free(mgr);
}

typedef struct {
  bool done;
  int status, calls;
  char error[300];
  size_t naddrs, ncnames;
  cymg_addr addrs[32];
  char cnames[8][CYMG_DNS_NAME_MAX];
  bool from_cache;
} res_t;

static void on_res(cymg_mgr *mgr, const cymg_dns_result *r, void *arg) {
  (void) mgr;
  res_t *o = arg;
  o->done = true;
  o->calls++;
  o->status = r->status;
  snprintf(o->error, sizeof(o->error), "%s", r->error ? r->error : "");
  o->naddrs = r->naddrs < 32 ? r->naddrs : 32;
  memcpy(o->addrs, r->addrs, o->naddrs * sizeof(cymg_addr));
  o->ncnames = r->ncnames;
  for (size_t i = 0; i < r->ncnames && i < 8; i++)
    snprintf(o->cnames[i], CYMG_DNS_NAME_MAX, "%s", r->cnames[i]);
  o->from_cache = r->from_cache;
}

typedef struct {
  bool done, from_cache;
  size_t ncnames;
  uint32_t cname_ttls[8], ttl;
} ttl_res;

static void on_ttls(cymg_mgr *mgr, const cymg_dns_result *r, void *arg) {
  (void) mgr;
  ttl_res *t = arg;
  t->done = true;
  t->from_cache = r->from_cache;
  t->ncnames = r->ncnames;
  for (size_t i = 0; i < r->ncnames && i < 8; i++) t->cname_ttls[i] = r->cname_ttls[i];
  t->ttl = r->naddrs ? r->ttls[0] : 0;
}

static res_t lookup(cymg_mgr *mgr, const char *name, int family) {
  res_t r = {0};
  assert_int_equal(cymg_dns_lookup(mgr, name, family, on_res, &r, NULL), 0);
  assert_false(r.done); /* never called inside the lookup call */
  POLL_UNTIL(mgr, r.done);
  return r;
}

static void assert_ip4(const cymg_addr *a, const char *want) {
  char s[64];
  assert_false(a->is_ip6);
  cymg_addr_str(a, false, s, sizeof(s));
  assert_string_equal(s, want);
}

static void test_dnsmasq_answers(void **state) {
  (void) state;
  cymg_mgr *mgr = dns_mgr(dnsmasq_port);
  res_t r = lookup(mgr, "alias.test", CYMG_DNS_IPV4);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.naddrs, 1);
  assert_ip4(&r.addrs[0], "127.0.0.1");
  assert_int_equal(r.ncnames, 2);
  assert_string_equal(r.cnames[0], "mid.test");
  assert_string_equal(r.cnames[1], "one.test");
  assert_false(r.from_cache);
  r = lookup(mgr, "ALIAS.test.", CYMG_DNS_IPV4); /* same name: from the cache */
  assert_int_equal(r.status, 0);
  assert_true(r.from_cache);
  r = lookup(mgr, "both.test", CYMG_DNS_ANY); /* AAAA and A, IPv6 first */
  assert_int_equal(r.status, 0);
  assert_int_equal(r.naddrs, 2);
  assert_true(r.addrs[0].is_ip6);
  assert_ip4(&r.addrs[1], "127.0.0.1");
  r = lookup(mgr, "x.nx.test", CYMG_DNS_ANY);
  assert_int_equal(r.status, CYMG_ENOTFOUND);
  assert_string_equal(r.error, "x.nx.test: name not found");
  r = lookup(mgr, "v6only.test", CYMG_DNS_IPV6);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.naddrs, 1);
  assert_true(r.addrs[0].is_ip6);
  free_mgr(mgr);
}

static void test_invalid_and_literals(void **state) {
  (void) state;
  /* A server port nothing listens on: .invalid and literals never ask it. */
  cymg_mgr *mgr = dns_mgr(free_udp_port());
  res_t r = lookup(mgr, "example.invalid", CYMG_DNS_ANY);
  assert_int_equal(r.status, CYMG_ENOTFOUND);
  assert_string_equal(r.error, "example.invalid: name not found");
  r = lookup(mgr, "192.0.2.1", CYMG_DNS_ANY);
  assert_int_equal(r.status, 0);
  assert_ip4(&r.addrs[0], "192.0.2.1");
  r = lookup(mgr, "localhost", CYMG_DNS_IPV4);
  assert_ip4(&r.addrs[0], "127.0.0.1");
  /* And a real name with that dead server: refused at once, then given up. */
  r = lookup(mgr, "one.test", CYMG_DNS_IPV4);
  assert_true(r.status < 0);
  free_mgr(mgr);
}

static void test_responder_cases(void **state) {
  (void) state;
  cymg_mgr *mgr = dns_mgr(resp_port);
  res_t r = lookup(mgr, "tc.test", CYMG_DNS_IPV4); /* truncated: asked again over TCP */
  assert_int_equal(r.status, 0);
  assert_ip4(&r.addrs[0], "192.0.2.7");
  r = lookup(mgr, "wrongid.test", CYMG_DNS_IPV4); /* the wrong id's 6.6.6.6 is ignored */
  assert_int_equal(r.status, 0);
  assert_int_equal(r.naddrs, 1);
  assert_ip4(&r.addrs[0], "192.0.2.8");
  r = lookup(mgr, "otheraddr.test", CYMG_DNS_IPV4); /* from another port: ignored */
  assert_int_equal(r.status, 0);
  assert_int_equal(r.naddrs, 1);
  assert_ip4(&r.addrs[0], "192.0.2.9");
  cymg_mgr_set_dns_timeout(mgr, 3000, 2); /* slower than the answer's 300 ms */
  r = lookup(mgr, "slow.test", CYMG_DNS_IPV4);
  assert_int_equal(r.status, 0);
  assert_ip4(&r.addrs[0], "192.0.2.10");
  cymg_mgr_set_dns_timeout(mgr, 300, 2);
  r = lookup(mgr, "loop.test", CYMG_DNS_IPV4);
  assert_int_equal(r.status, CYMG_EPROTO);
  assert_string_equal(r.error, "loop.test: server failure");
  r = lookup(mgr, "servfail.test", CYMG_DNS_IPV4);
  assert_int_equal(r.status, CYMG_EPROTO);
  assert_string_equal(r.error, "servfail.test: server failure");
  cymg_mgr_set_dns_timeout(mgr, 100, 3);
  r = lookup(mgr, "silent.test", CYMG_DNS_IPV4);
  assert_int_equal(r.status, CYMG_ETIMEDOUT);
  assert_string_equal(r.error, "silent.test: DNS timeout after 3 attempts");
  free_mgr(mgr);
}

static void test_shared_and_cached(void **state) {
  (void) state;
  cymg_mgr *mgr = dns_mgr(resp_port);
  res_t a = {0}, b = {0};
  assert_int_equal(cymg_dns_lookup(mgr, "count.test", CYMG_DNS_IPV4, on_res, &a, NULL), 0);
  assert_int_equal(cymg_dns_lookup(mgr, "count.test", CYMG_DNS_IPV4, on_res, &b, NULL), 0);
  POLL_UNTIL(mgr, a.done && b.done);
  assert_int_equal(a.status, 0);
  assert_int_equal(b.status, 0);
  res_t c = lookup(mgr, "count.test", CYMG_DNS_IPV4);
  assert_true(c.from_cache);
  /* The responder saw one query for the three lookups. */
  res_t q = lookup(mgr, "queries.test", CYMG_DNS_IPV4);
  assert_ip4(&q.addrs[0], "10.0.0.1");
  /* A cancelled lookup never calls back. */
  res_t d = {0};
  uint64_t id;
  cymg_mgr_dns_flush(mgr);
  assert_int_equal(cymg_dns_lookup(mgr, "slow.test", CYMG_DNS_IPV4, on_res, &d, &id), 0);
  cymg_dns_cancel(mgr, id);
  res_t e = lookup(mgr, "wrongid.test", CYMG_DNS_IPV4); /* time passes meanwhile */
  assert_int_equal(e.status, 0);
  for (int i = 0; i < 10; i++) cymg_mgr_poll(mgr, 50);
  assert_false(d.done);
  free_mgr(mgr);
}

static void test_failover(void **state) {
  (void) state;
  cymg_mgr *mgr = dns_mgr(resp_port);
  /* A first server that never answers (a socket nobody reads), then dnsmasq. */
  int mute = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(mute, (struct sockaddr *) &a, sizeof(a)), 0);
  socklen_t sl = sizeof(a);
  assert_int_equal(getsockname(mute, (struct sockaddr *) &a, &sl), 0);
  char list[96];
  snprintf(list, sizeof(list), "udp://127.0.0.1:%u, udp://127.0.0.1:%u", ntohs(a.sin_port),
           dnsmasq_port);
  assert_int_equal(cymg_mgr_set_dns(mgr, list), 0);
  res_t r = lookup(mgr, "one.test", CYMG_DNS_IPV4);
  assert_int_equal(r.status, 0);
  assert_ip4(&r.addrs[0], "127.0.0.1");
  close(mute);
  assert_int_equal(cymg_mgr_set_dns(mgr, "tcp://127.0.0.1:53"), CYMG_EBADURL);
  free_mgr(mgr);
}

static void write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  assert_true(fputs(text, fp) >= 0);
  assert_int_equal(fclose(fp), 0);
}

static void test_files(void **state) {
  (void) state;
  char dir[] = "/tmp/cymg-dns-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char hosts[64], conf[64];
  snprintf(hosts, sizeof(hosts), "%s/hosts", dir);
  snprintf(conf, sizeof(conf), "%s/resolv.conf", dir);
  write_file(hosts, "192.0.2.55 myhost.example # first\n");
  write_file(conf, "search nowhere.example test\noptions ndots:2 attempts:1\n");
  cymg_mgr *mgr = dns_mgr(dnsmasq_port);
  assert_int_equal(cymg_mgr_set_hosts_file(mgr, hosts), 0);
  assert_int_equal(cymg_mgr_set_resolv_conf(mgr, conf), 0);
  res_t r = lookup(mgr, "myhost.example", CYMG_DNS_ANY);
  assert_int_equal(r.status, 0);
  assert_ip4(&r.addrs[0], "192.0.2.55");
  /* "one" has fewer dots than ndots: the search list first, "one.test" answers
   * (dnsmasq refuses one.nowhere.example: the next name is tried). */
  r = lookup(mgr, "alias", CYMG_DNS_IPV4);
  assert_int_equal(r.status, 0);
  assert_ip4(&r.addrs[0], "127.0.0.1");
  /* The hosts file changes: the new address shows within a bounded wait. */
  write_file(hosts, "192.0.2.66 myhost.example # second, longer line\n");
  uint64_t start = cymg_mgr_now(mgr);
  for (;;) {
    r = lookup(mgr, "myhost.example", CYMG_DNS_ANY);
    if (r.naddrs == 1 && r.addrs[0].ip[3] == 66) break;
    assert_true(cymg_mgr_now(mgr) - start < CYMG_TEST_WAIT_MS);
    cymg_mgr_poll(mgr, 100);
  }
  /* resolv.conf without servers and none set: a readable error. */
  assert_int_equal(cymg_mgr_set_dns(mgr, NULL), 0);
  r = lookup(mgr, "nothing.test", CYMG_DNS_ANY);
  assert_int_equal(r.status, CYMG_ERESOLVE);
  assert_string_equal(r.error, "nothing.test: no name servers configured");
  free_mgr(mgr);
  unlink(hosts);
  unlink(conf);
  rmdir(dir);
}

typedef struct {
  int evs[16];
  int n;
  char err[200];
  bool closed;
} evlog;

static void on_ev(cymg_conn *c, int ev, void *ev_data) {
  evlog *l = cymg_conn_userdata(c);
  if (ev == CYMG_EV_POLL || ev == CYMG_EV_WRITE || ev == CYMG_EV_READ) return;
  if (l->n < 16) l->evs[l->n++] = ev;
  if (ev == CYMG_EV_ERROR) snprintf(l->err, sizeof(l->err), "%s", (const char *) ev_data);
  if (ev == CYMG_EV_CONNECT) cymg_close(c);
  if (ev == CYMG_EV_CLOSE) l->closed = true;
}

static void test_connect_by_name(void **state) {
  (void) state;
  cymg_mgr *mgr = dns_mgr(dnsmasq_port);
  cymg_conn *lsn;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", NULL, NULL, &lsn), 0);
  unsigned port = cymg_conn_local(lsn)->port;
  char url[96];
  /* alias.test: a CNAME chain to 127.0.0.1. both.test: ::1 first, where nothing
   * listens, then 127.0.0.1 (the RFC 8305 fallback). */
  const char *names[] = {"alias.test", "both.test"};
  for (int i = 0; i < 2; i++) {
    evlog l = {0};
    snprintf(url, sizeof(url), "tcp://%s:%u", names[i], port);
    cymg_conn *c;
    assert_int_equal(cymg_connect(mgr, url, on_ev, &l, &c), 0);
    POLL_UNTIL(mgr, l.closed);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.evs[0], CYMG_EV_OPEN);
    assert_int_equal(l.evs[1], CYMG_EV_RESOLVE);
    assert_int_equal(l.evs[2], CYMG_EV_CONNECT);
    assert_int_equal(l.evs[3], CYMG_EV_CLOSE);
  }
  /* A name that does not exist: ERROR with the reason, then CLOSE. */
  evlog l = {0};
  snprintf(url, sizeof(url), "tcp://x.nx.test:%u", port);
  assert_int_equal(cymg_connect(mgr, url, on_ev, &l, NULL), 0);
  POLL_UNTIL(mgr, l.closed);
  assert_int_equal(l.n, 3);
  assert_int_equal(l.evs[1], CYMG_EV_ERROR);
  assert_string_equal(l.err, "x.nx.test: name not found");
  /* A lookup in progress is dropped with its connection: nothing is left. */
  cymg_mgr_set_dns_timeout(mgr, 5000, 2);
  char slow[64];
  snprintf(slow, sizeof(slow), "udp://127.0.0.1:%u", resp_port);
  assert_int_equal(cymg_mgr_set_dns(mgr, slow), 0);
  evlog l2 = {0};
  cymg_conn *c;
  assert_int_equal(cymg_connect(mgr, "tcp://silent.test:80", on_ev, &l2, &c), 0);
  cymg_mgr_poll(mgr, 10);
  cymg_close(c);
  POLL_UNTIL(mgr, l2.closed);
  assert_int_equal(l2.n, 2); /* OPEN, CLOSE */
  cymg_close(lsn);
  free_mgr(mgr); /* no query socket, no timer left */
}

static void test_conn_resolve(void **state) {
  (void) state;
  cymg_mgr *mgr = dns_mgr(dnsmasq_port);
  evlog l = {0};
  cymg_conn *lsn;
  assert_int_equal(cymg_listen(mgr, "tcp://127.0.0.1:0", on_ev, &l, &lsn), 0);
  int fd = cymg_conn_fd(lsn);
  assert_int_equal(cymg_conn_resolve(lsn, "http://alias.test:4321/x"), 0);
  POLL_UNTIL(mgr, l.n == 2);
  assert_int_equal(l.evs[1], CYMG_EV_RESOLVE);
  char s[64];
  cymg_addr_str(cymg_conn_remote(lsn), true, s, sizeof(s));
  assert_string_equal(s, "127.0.0.1:4321");
  assert_int_equal(cymg_conn_fd(lsn), fd);
  assert_false(cymg_conn_is_closing(lsn));
  /* Cancelled: no later event. */
  assert_int_equal(cymg_conn_resolve(lsn, "one.test"), 0);
  cymg_conn_resolve_cancel(lsn);
  for (int i = 0; i < 5; i++) cymg_mgr_poll(mgr, 20);
  assert_int_equal(l.n, 2);
  cymg_close(lsn);
  POLL_UNTIL(mgr, l.closed);
  free_mgr(mgr);
}

static size_t open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  size_t n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

/* Many lookups at once share the pool's sockets: never more than its 16
 * (CYMG__DNS_SOCKS) open, none among the user's connections, each socket
 * retired after 64 queries (so the server sees several source ports), and
 * answers still checked on a reused socket. */
static void test_socket_pool(void **state) {
  (void) state;
  enum { N = 300 };
  cymg_mgr *mgr = dns_mgr(resp_port);
  cymg_mgr_set_dns_timeout(mgr, 5000, 2);
  res_t *r = calloc(N, sizeof(*r));
  assert_non_null(r);
  size_t base = open_fds(), most = base;
  for (int i = 0; i < N; i++) {
    char name[32];
    snprintf(name, sizeof(name), "many.%d.test", i);
    assert_int_equal(cymg_dns_lookup(mgr, name, CYMG_DNS_IPV4, on_res, &r[i], NULL), 0);
  }
  uint64_t start = cymg_mgr_now(mgr);
  for (int done = 0; done < N;) {
    assert_true(cymg_mgr_now(mgr) - start < CYMG_TEST_WAIT_MS);
    cymg_mgr_poll(mgr, 50);
    size_t fds = open_fds();
    most = fds > most ? fds : most;
    assert_int_equal(cymg_mgr_count(mgr), 0); /* query sockets are not connections */
    done = 0;
    for (int i = 0; i < N; i++) done += r[i].done;
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(r[i].status, 0);
    assert_int_equal(r[i].naddrs, 1);
    assert_ip4(&r[i].addrs[0], "192.0.2.13");
  }
  assert_true(most - base <= 16);
  res_t p = lookup(mgr, "ports.test", CYMG_DNS_IPV4);
  assert_int_equal(p.status, 0);
  unsigned ports = (unsigned) p.addrs[0].ip[2] << 8 | p.addrs[0].ip[3];
  assert_true(ports >= (N + 63) / 64); /* rotated, not one port for everything */
  /* Spoofs on the warm, shared sockets: another question with our id, another
   * id, another source address; each lookup still gets only its real answer. */
  const char *names[] = {"wrongq.test", "wrongid.test", "otheraddr.test", "many.x.test"};
  const char *want[] = {"192.0.2.12", "192.0.2.8", "192.0.2.9", "192.0.2.13"};
  res_t s[4] = {0};
  for (int i = 0; i < 4; i++)
    assert_int_equal(cymg_dns_lookup(mgr, names[i], CYMG_DNS_IPV4, on_res, &s[i], NULL), 0);
  POLL_UNTIL(mgr, s[0].done && s[1].done && s[2].done && s[3].done);
  for (int i = 0; i < 4; i++) {
    if (s[i].status) print_message("%s: %s\n", names[i], s[i].error);
    assert_int_equal(s[i].status, 0);
    assert_int_equal(s[i].naddrs, 1);
    assert_ip4(&s[i].addrs[0], want[i]);
  }
  /* Truncated: the TCP attempt is a connection, hidden from the user's list too. */
  res_t t = {0};
  assert_int_equal(cymg_dns_lookup(mgr, "tc.test", CYMG_DNS_IPV4, on_res, &t, NULL), 0);
  while (!t.done) {
    cymg_mgr_poll(mgr, 20);
    assert_int_equal(cymg_mgr_count(mgr), 0);
    assert_null(cymg_mgr_first(mgr));
  }
  assert_ip4(&t.addrs[0], "192.0.2.7");
  free(r);
  free_mgr(mgr);
}

/* The CNAME chain's TTLs reach the result, fresh and from the cache. */
static void test_chain_ttls(void **state) {
  (void) state;
  cymg_mgr *mgr = dns_mgr(dnsmasq_port);
  for (int round = 0; round < 2; round++) {
    ttl_res t = {0};
    assert_int_equal(cymg_dns_lookup(mgr, "alias.test", CYMG_DNS_IPV4, on_ttls, &t, NULL), 0);
    POLL_UNTIL(mgr, t.done);
    assert_int_equal(t.ncnames, 2);
    assert_int_equal(t.from_cache, round == 1);
    for (int i = 0; i < 2; i++) assert_true(t.cname_ttls[i] > 50 && t.cname_ttls[i] <= 60);
    assert_true(t.ttl > 50 && t.ttl <= 60);
  }
  free_mgr(mgr);
}

static void srv_fn(cymg_conn *c, int ev, void *ev_data) {
  if (ev != CYMG_EV_HTTP_MSG) return;
  cymg_http_msg *m = ev_data;
  cymg_http_reply(c, 200, NULL, "hello %.*s", (int) m->uri.len, m->uri.buf);
}

typedef struct {
  evlog l;
  int status;
  char body[64];
} http_res;

static void cli_fn(cymg_conn *c, int ev, void *ev_data) {
  http_res *h = cymg_conn_userdata(c);
  if (ev == CYMG_EV_HTTP_MSG) {
    cymg_http_msg *m = ev_data;
    h->status = m->status;
    snprintf(h->body, sizeof(h->body), "%.*s", (int) m->body.len, m->body.buf);
    cymg_close(c);
  }
  if (ev == CYMG_EV_RESOLVE || ev == CYMG_EV_CONNECT || ev == CYMG_EV_HTTP_MSG ||
      ev == CYMG_EV_ERROR || ev == CYMG_EV_CLOSE) {
    if (h->l.n < 16) h->l.evs[h->l.n++] = ev;
    if (ev == CYMG_EV_ERROR) snprintf(h->l.err, sizeof(h->l.err), "%s", (const char *) ev_data);
    if (ev == CYMG_EV_CLOSE) h->l.closed = true;
  }
}

/* The HTTP client connects to a name dnsmasq serves (a CNAME chain; an IPv6
 * address first where nothing listens, then IPv4). */
static void test_http_client_by_name(void **state) {
  (void) state;
  cymg_mgr *mgr = dns_mgr(dnsmasq_port);
  cymg_conn *lsn;
  assert_int_equal(cymg_http_listen(mgr, "http://127.0.0.1:0", srv_fn, NULL, &lsn), 0);
  const char *names[] = {"alias.test", "both.test"};
  for (int i = 0; i < 2; i++) {
    char url[96];
    snprintf(url, sizeof(url), "http://%s:%u/x", names[i], cymg_conn_local(lsn)->port);
    http_res h = {0};
    cymg_conn *c;
    assert_int_equal(cymg_http_connect(mgr, url, cli_fn, &h, &c), 0);
    assert_int_equal(cymg_http_request(c, "GET", "/by-name", NULL, NULL, 0), 0);
    POLL_UNTIL(mgr, h.l.closed);
    assert_int_equal(h.l.n, 4);
    assert_int_equal(h.l.evs[0], CYMG_EV_RESOLVE);
    assert_int_equal(h.l.evs[1], CYMG_EV_CONNECT);
    assert_int_equal(h.l.evs[2], CYMG_EV_HTTP_MSG);
    assert_int_equal(h.status, 200);
    assert_string_equal(h.body, "hello /by-name");
  }
  cymg_close(lsn);
  for (int i = 0; i < 3; i++) cymg_mgr_poll(mgr, 0);
  free_mgr(mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dnsmasq_answers), cmocka_unit_test(test_invalid_and_literals),
      cmocka_unit_test(test_responder_cases), cmocka_unit_test(test_shared_and_cached),
      cmocka_unit_test(test_failover),        cmocka_unit_test(test_files),
      cmocka_unit_test(test_connect_by_name), cmocka_unit_test(test_conn_resolve),
      cmocka_unit_test(test_socket_pool),     cmocka_unit_test(test_chain_ttls),
      cmocka_unit_test(test_http_client_by_name),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
