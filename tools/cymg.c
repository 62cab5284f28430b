/* cymg: the command-line face of libcymg.
 *   cymg serve [DIR] [--listen URL] [--tls-cert F --tls-key F] [--workers N]
 *                                      static file server with directory listing
 *   cymg get [-i] [-k] [--cacert F] URL
 *                                      fetch a URL, print the body (-i: and the head)
 *   cymg ws [-k] [--cacert F] URL      WebSocket client: stdin lines out, messages to stdout
 *   cymg sntp [SERVER]                 ask an SNTP server the time
 *   cymg resolve NAME [--type A|AAAA] [--server URL]   look a name up
 *   cymg mqtt pub|sub ...              MQTT client (tools/mqtt.c)
 *   cymg mqtt broker [--listen URL]... MQTT broker (tools/mqtt.c)
 *   cymg --help | --version */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cymg/cymg.h>

#include "tool.h"

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

static void usage(FILE *out) {
  fprintf(out,
          "usage: cymg COMMAND [ARGS]\n"
          "\n"
          "commands:\n"
          "  serve [DIR] [--listen URL] [--tls-cert FILE --tls-key FILE]\n"
          "                              serve DIR (default .) over HTTP, listing folders;\n"
          "                              URL defaults to http://127.0.0.1:8000, or to\n"
          "                              https://127.0.0.1:8443 with a certificate (PEM\n"
          "                              chain, leaf first) and its key\n"
          "        [--workers N] [--grace S] [--quiet] [--log-worker]\n"
          "                              N threads (default: one per online CPU), each\n"
          "                              with its own loop and SO_REUSEPORT listener;\n"
          "                              one access-log line per request on stdout in\n"
          "                              common log format (--quiet: none; --log-worker:\n"
          "                              the worker's number appended); SIGINT/SIGTERM\n"
          "                              stop accepting at once, let requests in flight\n"
          "                              finish, and exit 0, closing what is left after\n"
          "                              S seconds (default 10; exit 1 then)\n"
          "  get [-i] [-k] [--cacert FILE] URL\n"
          "                              fetch URL and print the body (-i: the head too);\n"
          "                              exits non-zero on errors and on status >= 400;\n"
          "                              https:// verifies the server against the system\n"
          "                              CAs or FILE's; -k skips that check\n"
          "  ws [-k] [--cacert FILE] URL WebSocket client (ws:// or wss://): each line of\n"
          "                              stdin is sent as a text message, each message\n"
          "                              received is printed; end of input closes the\n"
          "                              connection (code 1000)\n"
          "  sntp [SERVER]               ask SERVER (sntp://HOST, udp://HOST:PORT, HOST or\n"
          "                              HOST:PORT; default pool.ntp.org) the time: prints\n"
          "                              it (ISO 8601 UTC), the clock offset and the delay\n"
          "  resolve NAME [--type A|AAAA] [--server URL]\n"
          "                              look NAME up (both types unless --type; servers of\n"
          "                              /etc/resolv.conf unless --server udp://IP:PORT,\n"
          "                              which is asked for NAME as given, no search list):\n"
          "                              prints the CNAME chain and the addresses, one\n"
          "                              record a line: owner, TTL, type, value\n"
          "  mqtt pub URL TOPIC MESSAGE [-q QOS] [-r] [-i ID]\n"
          "                              publish one message (mqtt://HOST[:PORT]), wait for\n"
          "                              its acknowledgement at QoS 1/2, then disconnect\n"
          "  mqtt sub URL TOPIC... [-q QOS] [-v] [-C COUNT] [-i ID]\n"
          "                              subscribe and print each payload on a line (-v:\n"
          "                              \"TOPIC PAYLOAD\"); -C: exit after COUNT messages\n"
          "  mqtt broker [--listen URL]... [--persist FILE] [--tls-cert F --tls-key F\n"
          "              [--cafile F]] [--max-connections N] [-v]\n"
          "              [--bridge URL --topic PATTERN[:in|out|both[:QOS]]...]\n"
          "                              an MQTT 3.1.1/5.0 broker (default listener\n"
          "                              mqtt://0.0.0.0:1883; mqtts://, ws://, wss:// too);\n"
          "                              --persist keeps retained messages and sessions\n"
          "                              across restarts; --bridge forwards PATTERN to/from\n"
          "                              an upstream broker; -v logs connects; see\n"
          "                              'cymg mqtt --help'\n"
          "  --help                      this text\n"
          "  --version                   the libcymg version\n");
}

/* ---- TLS options shared by the clients ---- */

typedef struct {
  const char *cacert; /* --cacert FILE, or NULL: the system store */
  bool insecure;      /* -k */
} tls_flags;

/* Consumes -k / --cacert FILE at argv[*i]. Returns 1 if it did, 0 if argv[*i]
 * is something else, -1 (after a message) when FILE is missing. */
static int tls_flag(const char *cmd, int argc, char **argv, int *i, tls_flags *f) {
  if (strcmp(argv[*i], "-k") == 0 || strcmp(argv[*i], "--insecure") == 0) {
    f->insecure = true;
    return 1;
  }
  if (strcmp(argv[*i], "--cacert") != 0) return 0;
  if (*i + 1 >= argc) {
    fprintf(stderr, "cymg %s: --cacert needs a file\n", cmd);
    return -1;
  }
  f->cacert = argv[++*i];
  return 1;
}

/* On a TLS client (https://, wss://): the options the flags ask for, set
 * before CONNECT so the handshake uses them; the URL's host is verified. Plain
 * URLs are left alone. Returns 0 or -1 after a message. */
static int tls_client(const char *cmd, cymg_mgr *mgr, cymg_conn *c, const char *url,
                      const tls_flags *f) {
  cymg_url u;
  if (cymg_url_parse(cymg_str_c(url), &u) < 0 || !cymg_url_is_tls(u.scheme)) return 0;
  if (f->cacert == NULL && !f->insecure) return 0; /* the library's defaults */
  cymg_tls_opts o = {0};
  if (f->cacert) o.ca = cymg_str_c(f->cacert);
  o.skip_verification = f->insecure;
  int rc = cymg_tls_init(c, &o);
  if (rc < 0) {
    const char *why = cymg_mgr_errmsg(mgr);
    fprintf(stderr, "cymg %s: %s\n", cmd, why[0] ? why : cymg_strerror(rc));
    return -1;
  }
  return 0;
}

/* ---- serve ---- */

/* One worker: its own manager and listener on the shared port (SO_REUSEPORT
 * when there are several), and its own access-log buffer, written once per
 * poll under log_lock so lines of different workers never interleave. */
#define SERVE_LOG_CAP 65536

typedef struct serve_ctx serve_ctx;
typedef struct {
  serve_ctx *ctx;
  int index;
  cymg_mgr *mgr;
  cymg_conn *lsn;
  uint64_t wakeup_id;
  pthread_t th;
  bool stopping, forced, failed;
  size_t log_len;
  time_t log_sec;     /* the second log_when was formatted for */
  char log_when[40];  /* "[date]" of the access log, formatted once a second */
  char log[SERVE_LOG_CAP];
} serve_worker;

struct serve_ctx {
  cymg_http_serve_opts opts;
  bool quiet, log_worker;
  unsigned grace_ms;
  atomic_bool stop;
  pthread_mutex_t log_lock;
};

static void serve_log_flush(serve_worker *w) {
  if (w->log_len == 0) return;
  pthread_mutex_lock(&w->ctx->log_lock);
  size_t off = 0;
  while (off < w->log_len) {
    ssize_t n = write(STDOUT_FILENO, w->log + off, w->log_len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break; /* stdout gone: the lines are lost, serving goes on */
    off += (size_t) n;
  }
  pthread_mutex_unlock(&w->ctx->log_lock);
  w->log_len = 0;
}

/* Common log format: host ident authuser [date] "request" status bytes (the
 * size is not known here: "-"); --log-worker adds the worker's number. */
static void serve_log(serve_worker *w, cymg_conn *c, const cymg_http_msg *m) {
  char who[64], line[1024];
  time_t now = time(NULL);
  if (now != w->log_sec || w->log_when[0] == '\0') {
    struct tm tm;
    if (localtime_r(&now, &tm) == NULL ||
        strftime(w->log_when, sizeof(w->log_when), "%d/%b/%Y:%H:%M:%S %z", &tm) == 0) {
      snprintf(w->log_when, sizeof(w->log_when), "%lld", (long long) now);
    }
    w->log_sec = now;
  }
  const char *when = w->log_when;
  cymg_addr_str(cymg_conn_remote(c), false, who, sizeof(who));
  int n = snprintf(line, sizeof(line), "%s - - [%s] \"%.*s %.*s %.*s\" %d -", who, when,
                   (int) m->method.len, m->method.buf, (int) m->target.len, m->target.buf,
                   (int) m->proto.len, m->proto.buf, cymg_http_reply_status(c));
  if (n < 0) return;
  size_t len = (size_t) n < sizeof(line) - 32 ? (size_t) n : sizeof(line) - 32;
  if (w->ctx->log_worker) {
    int k = snprintf(line + len, sizeof(line) - len, " %d", w->index);
    if (k > 0) len += (size_t) k;
  }
  line[len++] = '\n';
  if (w->log_len + len > sizeof(w->log)) serve_log_flush(w);
  memcpy(w->log + w->log_len, line, len);
  w->log_len += len;
}

static void serve_fn(cymg_conn *c, int ev, void *ev_data) {
  serve_worker *w = cymg_conn_userdata(c);
  if (ev != CYMG_EV_HTTP_MSG) return;
  cymg_http_msg *m = ev_data;
  cymg_http_serve_dir(c, m, &w->ctx->opts);
  if (!w->ctx->quiet) serve_log(w, c, m);
  /* Stopping: this request was in flight; its answer goes, then the end. */
  if (w->stopping) cymg_drain(c);
}

/* Stop: the listener closes at once; idle connections close; those with a
 * request half read or an answer still going are let finish. */
static void serve_begin_stop(serve_worker *w) {
  w->stopping = true;
  for (cymg_conn *c = cymg_mgr_first(w->mgr); c != NULL; c = cymg_conn_next(c)) {
    if (cymg_conn_id(c) == w->wakeup_id || cymg_conn_is_closing(c)) continue;
    if (cymg_conn_is_listening(c)) {
      cymg_close(c);
    } else if (cymg_conn_recv_len(c) == 0 || cymg_conn_send_len(c) > 0) {
      cymg_drain(c); /* closes at once when nothing is queued or pumped */
    }
  }
}

static size_t serve_live(serve_worker *w) {
  size_t n = 0;
  for (cymg_conn *c = cymg_mgr_first(w->mgr); c != NULL; c = cymg_conn_next(c))
    if (cymg_conn_id(c) != w->wakeup_id) n++;
  return n;
}

static void *serve_worker_run(void *arg) {
  serve_worker *w = arg;
  uint64_t deadline = 0;
  for (;;) {
    int timeout = 1000;
    if (w->stopping) {
      uint64_t now = cymg_mgr_now(w->mgr);
      if (serve_live(w) == 0) break;
      if (now >= deadline && !w->forced) {
        /* A peer that never reads must not hold the process forever. */
        w->forced = true;
        for (cymg_conn *c = cymg_mgr_first(w->mgr); c != NULL; c = cymg_conn_next(c))
          if (cymg_conn_id(c) != w->wakeup_id) cymg_close(c);
      }
      timeout = w->forced ? 0 : (int) (deadline - now < 1000 ? deadline - now : 1000);
    }
    int rc = cymg_mgr_poll(w->mgr, timeout);
    serve_log_flush(w);
    if (rc < 0) {
      fprintf(stderr, "cymg serve: worker %d: poll: %s\n", w->index, cymg_strerror(rc));
      w->failed = true;
      break;
    }
    if (!w->stopping && (atomic_load(&w->ctx->stop) || stop_signal)) {
      serve_begin_stop(w);
      deadline = cymg_mgr_now(w->mgr) + w->ctx->grace_ms;
    }
  }
  serve_log_flush(w);
  return NULL;
}

/* Opens worker w's manager and listener. With several workers each listens
 * with SO_REUSEPORT on the address the first one got (so port 0 works). */
static int serve_open(serve_worker *w, const char *url, const char *cert, const char *key,
                      bool reuse) {
  int rc = cymg_mgr_new(&w->mgr, CYMG_BACKEND_AUTO);
  if (rc < 0) {
    fprintf(stderr, "cymg serve: %s\n", cymg_strerror(rc));
    return -1;
  }
  int64_t wid = cymg_wakeup_init(w->mgr);
  if (wid < 0) {
    fprintf(stderr, "cymg serve: wakeup: %s\n", cymg_strerror((int) wid));
    return -1;
  }
  w->wakeup_id = (uint64_t) wid;
  rc = reuse ? cymg_listen_reuseport(w->mgr, url, serve_fn, w, &w->lsn)
             : cymg_http_listen(w->mgr, url, serve_fn, w, &w->lsn);
  if (rc == 0 && reuse && (rc = cymg_http_attach(w->lsn, true)) < 0) {
    fprintf(stderr, "cymg serve: %s\n", cymg_strerror(rc));
    return -1;
  }
  if (rc != 0) {
    fprintf(stderr, "cymg serve: %s\n", cymg_mgr_errmsg(w->mgr));
    return -1;
  }
  if (cert != NULL) {
    /* Files are loaded and checked now: bad material stops the tool at once
     * rather than failing every handshake. */
    cymg_tls_opts o = {.cert = cymg_str_c(cert), .key = cymg_str_c(key)};
    rc = cymg_tls_init(w->lsn, &o);
    if (rc < 0) {
      const char *why = cymg_mgr_errmsg(w->mgr);
      fprintf(stderr, "cymg serve: %s\n", why[0] ? why : cymg_strerror(rc));
      return -1;
    }
  }
  return 0;
}

static int cmd_serve(int argc, char **argv) {
  const char *dir = ".", *url = NULL, *cert = NULL, *key = NULL;
  long workers = sysconf(_SC_NPROCESSORS_ONLN), grace = 10;
  bool quiet = false, log_worker = false;
  for (int i = 0; i < argc; i++) {
    char *end;
    if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      url = argv[++i];
    } else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc) {
      cert = argv[++i];
    } else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc) {
      key = argv[++i];
    } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      workers = strtol(argv[++i], &end, 10);
      if (*end != '\0' || workers < 1 || workers > 1024) {
        fprintf(stderr, "cymg serve: --workers takes a number from 1 to 1024\n");
        return 2;
      }
    } else if (strcmp(argv[i], "--grace") == 0 && i + 1 < argc) {
      grace = strtol(argv[++i], &end, 10);
      if (*end != '\0' || grace < 0 || grace > 3600) {
        fprintf(stderr, "cymg serve: --grace takes seconds from 0 to 3600\n");
        return 2;
      }
    } else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
      quiet = true;
    } else if (strcmp(argv[i], "--log-worker") == 0) {
      log_worker = true;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "cymg serve: unknown option '%s'\n", argv[i]);
      return 2;
    } else {
      dir = argv[i];
    }
  }
  if (workers < 1) workers = 1;
  if ((cert == NULL) != (key == NULL)) {
    fprintf(stderr, "cymg serve: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if (url == NULL) url = cert ? "https://127.0.0.1:8443" : "http://127.0.0.1:8000";
  cymg_url u;
  bool secure = cymg_url_parse(cymg_str_c(url), &u) == 0 && cymg_url_is_tls(u.scheme);
  if (secure != (cert != NULL)) {
    fprintf(stderr, "cymg serve: %s\n", cert ? "--tls-cert needs an https:// URL to listen on"
                                             : "an https:// URL needs --tls-cert and --tls-key");
    return 2;
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "cymg serve: '%s' is not a folder\n", dir);
    return 1;
  }
  serve_ctx ctx = {.opts = {.root_dir = dir, .dir_listing = true},
                   .quiet = quiet,
                   .log_worker = log_worker,
                   .grace_ms = (unsigned) grace * 1000u};
  atomic_init(&ctx.stop, false);
  if (pthread_mutex_init(&ctx.log_lock, NULL) != 0) {
    fprintf(stderr, "cymg serve: cannot create a mutex\n");
    return 1;
  }
  serve_worker *ws = calloc((size_t) workers, sizeof(*ws));
  if (ws == NULL) {
    fprintf(stderr, "cymg serve: out of memory\n");
    return 1;
  }
  int status = 1;
  long opened = 0, started = 0;
  char a[64], same[96];
  for (; opened < workers; opened++) {
    serve_worker *w = &ws[opened];
    w->ctx = &ctx;
    w->index = (int) opened;
    if (serve_open(w, opened == 0 ? url : same, cert, key, workers > 1) < 0) {
      opened++;
      goto out;
    }
    if (opened == 0) {
      cymg_addr_str(cymg_conn_local(w->lsn), true, a, sizeof(a));
      if (snprintf(same, sizeof(same), "%s://%s", cert ? "https" : "http", a) >=
          (int) sizeof(same)) {
        fprintf(stderr, "cymg serve: address too long\n");
        opened++;
        goto out;
      }
    }
  }
  printf("cymg %s serving %s at %s/ with %ld worker%s (Ctrl-C stops)\n", cymg_version(), dir, same,
         workers, workers == 1 ? "" : "s");
  fflush(stdout);
  /* The signals go to this thread alone (sigwait); workers start with them
   * blocked and learn of the stop through the flag and an interrupt. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
    fprintf(stderr, "cymg serve: cannot block signals\n");
    goto out;
  }
  if (workers == 1) {
    /* Today's single-threaded path: the loop runs here; the flag is polled. */
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    ws[0].ctx = &ctx;
    serve_worker_run(&ws[0]);
  } else {
    for (; started < workers; started++) {
      if (pthread_create(&ws[started].th, NULL, serve_worker_run, &ws[started]) != 0) {
        fprintf(stderr, "cymg serve: cannot start worker %ld\n", started);
        atomic_store(&ctx.stop, true);
        break;
      }
    }
    int sig = 0;
    if (started == workers && sigwait(&set, &sig) != 0) fprintf(stderr, "cymg serve: sigwait\n");
    atomic_store(&ctx.stop, true);
    for (long i = 0; i < started; i++) {
      int rc = cymg_mgr_interrupt(ws[i].mgr);
      if (rc < 0) fprintf(stderr, "cymg serve: worker %ld: %s\n", i, cymg_strerror(rc));
    }
    for (long i = 0; i < started; i++) pthread_join(ws[i].th, NULL);
    if (started < workers) goto out;
  }
  status = 0;
  for (long i = 0; i < workers; i++) {
    if (ws[i].failed) status = 1;
    if (ws[i].forced) {
      fprintf(stderr, "cymg serve: worker %ld: connections still open after %ld s closed\n", i,
              grace);
      status = 1;
    }
  }
out:
  for (long i = 0; i < opened; i++) cymg_mgr_free(ws[i].mgr);
  free(ws);
  pthread_mutex_destroy(&ctx.log_lock);
  return status;
}

/* ---- get ---- */

typedef struct {
  bool show_head, done;
  int status;
  char err[256];
} get_ctx;

static void get_fn(cymg_conn *c, int ev, void *ev_data) {
  get_ctx *ctx = cymg_conn_userdata(c);
  if (ev == CYMG_EV_HTTP_HDRS) {
    cymg_http_msg *m = ev_data;
    ctx->status = m->status;
    if (ctx->show_head) fwrite(m->head.buf, 1, m->head.len, stdout);
    cymg_http_stream_body(c); /* any size: written out as it arrives */
  } else if (ev == CYMG_EV_READ) {
    cymg_str d = cymg_conn_recv_data(c);
    fwrite(d.buf, 1, *(size_t *) ev_data, stdout);
  } else if (ev == CYMG_EV_HTTP_MSG) {
    ctx->done = true;
    cymg_close(c);
  } else if (ev == CYMG_EV_ERROR) {
    snprintf(ctx->err, sizeof(ctx->err), "%s", (const char *) ev_data);
  } else if (ev == CYMG_EV_CLOSE && !ctx->done && ctx->err[0] == '\0') {
    snprintf(ctx->err, sizeof(ctx->err), "connection closed before a response");
  }
}

static int cmd_get(int argc, char **argv) {
  get_ctx ctx = {0};
  tls_flags tf = {0};
  const char *url = NULL;
  for (int i = 0; i < argc; i++) {
    int t = tls_flag("get", argc, argv, &i, &tf);
    if (t < 0) return 2;
    if (t > 0) continue;
    if (strcmp(argv[i], "-i") == 0) {
      ctx.show_head = true;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "cymg get: unknown option '%s'\n", argv[i]);
      return 2;
    } else {
      url = argv[i];
    }
  }
  if (url == NULL) {
    fprintf(stderr, "cymg get: a URL is needed (cymg get http://host:port/path)\n");
    return 2;
  }
  cymg_mgr *mgr;
  cymg_conn *c;
  if (cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO) < 0) return 1;
  if (cymg_http_connect(mgr, url, get_fn, &ctx, &c) != 0) {
    fprintf(stderr, "cymg get: %s\n", cymg_mgr_errmsg(mgr));
    cymg_mgr_free(mgr);
    return 1;
  }
  if (tls_client("get", mgr, c, url, &tf) < 0) {
    cymg_mgr_free(mgr);
    return 1;
  }
  cymg_str uri = cymg_url_uri(cymg_str_c(url));
  char path[4096];
  snprintf(path, sizeof(path), "%s%.*s", uri.len && uri.buf[0] != '/' ? "/" : "", (int) uri.len,
           uri.buf);
  char *hash = strchr(path, '#'); /* the fragment stays with the client */
  if (hash) *hash = '\0';
  int rc = cymg_http_request(c, "GET", path, "Accept: */*\r\nUser-Agent: cymg\r\n", NULL, 0);
  if (rc < 0) {
    fprintf(stderr, "cymg get: %s\n", cymg_strerror(rc));
    cymg_mgr_free(mgr);
    return 1;
  }
  signal(SIGINT, on_signal);
  while (!ctx.done && ctx.err[0] == '\0' && !stop_signal) cymg_mgr_poll(mgr, 1000);
  cymg_mgr_free(mgr);
  fflush(stdout);
  if (ctx.err[0]) {
    fprintf(stderr, "cymg get: %s: %s\n", url, ctx.err);
    return 1;
  }
  if (ctx.status >= 400) {
    fprintf(stderr, "cymg get: %s: HTTP %d %s\n", url, ctx.status,
            cymg_http_status_reason(ctx.status));
    return 1;
  }
  return stop_signal ? 130 : 0;
}

/* ---- ws ---- */

/* Lines come from a thread reading stdin and reach the loop through
 * cymg_wakeup(), the one thread-safe call. A payload starts with 'L' (a line to
 * send) or 'E' (end of input). */
typedef struct {
  cymg_mgr *mgr;
  uint64_t conn_id;
  bool open, done;
  int status;
} ws_ctx;

static void *stdin_reader(void *arg) {
  ws_ctx *ctx = arg;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, stdin)) >= 0) {
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    char *msg = malloc((size_t) n + 1);
    if (msg == NULL) break;
    msg[0] = 'L';
    memcpy(msg + 1, line, (size_t) n);
    int rc = cymg_wakeup(ctx->mgr, ctx->conn_id, msg, (size_t) n + 1);
    free(msg);
    if (rc < 0) {
      fprintf(stderr, "cymg ws: line not sent: %s\n", cymg_strerror(rc));
      break;
    }
  }
  free(line);
  cymg_wakeup(ctx->mgr, ctx->conn_id, "E", 1);
  return NULL;
}

static void ws_fn(cymg_conn *c, int ev, void *ev_data) {
  ws_ctx *ctx = cymg_conn_userdata(c);
  if (ev == CYMG_EV_WS_OPEN) {
    ctx->open = true;
    fprintf(stderr, "cymg ws: connected\n");
    pthread_t th;
    if (pthread_create(&th, NULL, stdin_reader, ctx) == 0) pthread_detach(th);
  } else if (ev == CYMG_EV_WS_MSG) {
    cymg_ws_msg *m = ev_data;
    fwrite(m->data.buf, 1, m->data.len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
  } else if (ev == CYMG_EV_WS_CTL) {
    cymg_ws_msg *m = ev_data;
    if (CYMG_WS_OPCODE(m->flags) == CYMG_WS_OP_CLOSE)
      fprintf(stderr, "cymg ws: closed by the server (code %d)\n", cymg_ws_close_code(m->data));
  } else if (ev == CYMG_EV_WAKEUP) {
    const cymg_str *p = ev_data;
    if (p->len >= 1 && p->buf[0] == 'L') {
      int rc = cymg_ws_send(c, p->buf + 1, p->len - 1, CYMG_WS_OP_TEXT);
      if (rc < 0) fprintf(stderr, "cymg ws: send: %s\n", cymg_strerror(rc));
    } else {
      cymg_ws_close(c, 1000, "");
    }
  } else if (ev == CYMG_EV_ERROR) {
    fprintf(stderr, "cymg ws: %s\n", (const char *) ev_data);
    ctx->status = 1;
  } else if (ev == CYMG_EV_CLOSE) {
    ctx->done = true;
  }
}

static int cmd_ws(int argc, char **argv) {
  tls_flags tf = {0};
  const char *url = NULL;
  for (int i = 0; i < argc; i++) {
    int t = tls_flag("ws", argc, argv, &i, &tf);
    if (t < 0) return 2;
    if (t > 0) continue;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (argv[i][0] == '-' || url != NULL) {
      url = NULL;
      break;
    }
    url = argv[i];
  }
  if (url == NULL) {
    fprintf(stderr, "cymg ws: one URL is needed (cymg ws [-k] [--cacert F] ws://host:port/path)\n");
    return 2;
  }
  ws_ctx ctx = {0};
  cymg_conn *c;
  if (cymg_mgr_new(&ctx.mgr, CYMG_BACKEND_AUTO) < 0) return 1;
  if (cymg_wakeup_init(ctx.mgr) < 0 || cymg_ws_connect(ctx.mgr, url, ws_fn, &ctx, &c) != 0) {
    fprintf(stderr, "cymg ws: %s\n", cymg_mgr_errmsg(ctx.mgr));
    cymg_mgr_free(ctx.mgr);
    return 1;
  }
  if (tls_client("ws", ctx.mgr, c, url, &tf) < 0) {
    cymg_mgr_free(ctx.mgr);
    return 1;
  }
  ctx.conn_id = cymg_conn_id(c);
  signal(SIGINT, on_signal);
  while (!ctx.done && !stop_signal) cymg_mgr_poll(ctx.mgr, 1000);
  /* The reader thread may still be blocked in getline: exit without freeing the
   * manager it would post to. */
  fflush(stdout);
  _exit(stop_signal ? 130 : (ctx.status || !ctx.open) ? 1 : 0);
}

/* ---- sntp ---- */

typedef struct {
  int64_t ms;
  bool done, ok;
} sntp_ctx;

static void sntp_fn(cymg_conn *c, int ev, void *ev_data) {
  sntp_ctx *ctx = cymg_conn_userdata(c);
  if (ev == CYMG_EV_SNTP_TIME) {
    ctx->ms = *(const int64_t *) ev_data;
    ctx->ok = ctx->done = true;
    char when[40];
    time_t sec = (time_t) (ctx->ms >= 0 ? ctx->ms / 1000 : (ctx->ms - 999) / 1000);
    struct tm tm;
    if (gmtime_r(&sec, &tm) == NULL || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
      snprintf(when, sizeof(when), "?");
    printf("time   %s.%03dZ\n", when, (int) (ctx->ms - (int64_t) sec * 1000));
    printf("offset %lld ms\n", (long long) cymg_sntp_offset_ms(c));
    printf("delay  %lld ms\n", (long long) cymg_sntp_delay_ms(c));
    cymg_close(c);
  } else if (ev == CYMG_EV_ERROR) {
    fprintf(stderr, "cymg sntp: %s\n", (const char *) ev_data);
  } else if (ev == CYMG_EV_CLOSE) {
    ctx->done = true;
  }
}

static int cmd_sntp(int argc, char **argv) {
  if (argc > 0 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc > 1 || (argc == 1 && argv[0][0] == '-')) {
    fprintf(stderr, "usage: cymg sntp [SERVER]\n");
    return 2;
  }
  const char *server = argc == 1 ? argv[0] : "pool.ntp.org";
  char url[512];
  int n = snprintf(url, sizeof(url), "%s%s", strstr(server, "://") ? "" : "sntp://", server);
  if (n < 0 || (size_t) n >= sizeof(url)) {
    fprintf(stderr, "cymg sntp: server name too long\n");
    return 2;
  }
  cymg_mgr *mgr;
  int rc = cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO);
  if (rc < 0) {
    fprintf(stderr, "cymg sntp: %s\n", cymg_strerror(rc));
    return 1;
  }
  sntp_ctx ctx = {0};
  rc = cymg_sntp_connect(mgr, url, sntp_fn, &ctx, NULL);
  if (rc < 0) {
    const char *why = cymg_mgr_errmsg(mgr);
    fprintf(stderr, "cymg sntp: %s\n", why[0] ? why : cymg_strerror(rc));
    cymg_mgr_free(mgr);
    return strstr(server, "://") && rc == CYMG_ESCHEME ? 2 : 1;
  }
  /* The connection ends with the answer, an error or the SNTP timeout. */
  while (!ctx.done) {
    rc = cymg_mgr_poll(mgr, 1000);
    if (rc < 0) {
      fprintf(stderr, "cymg sntp: poll: %s\n", cymg_strerror(rc));
      break;
    }
  }
  cymg_mgr_free(mgr);
  return ctx.ok ? 0 : 1;
}

/* ---- resolve ---- */

typedef struct {
  bool done;
  int status;
} resolve_ctx;

static void resolve_fn(cymg_mgr *mgr, const cymg_dns_result *r, void *arg) {
  (void) mgr;
  resolve_ctx *ctx = arg;
  ctx->done = true;
  ctx->status = r->status;
  if (r->status < 0) {
    fprintf(stderr, "cymg resolve: %s\n", r->error);
    return;
  }
  /* Zone-file order: each link of the chain, then the addresses of its end. */
  const char *owner = r->name;
  for (size_t i = 0; i < r->ncnames; i++) {
    printf("%s\t%u\tCNAME\t%s\n", owner, (unsigned) r->cname_ttls[i], r->cnames[i]);
    owner = r->cnames[i];
  }
  for (size_t i = 0; i < r->naddrs; i++) {
    char ip[64];
    cymg_addr_str(&r->addrs[i], false, ip, sizeof(ip));
    printf("%s\t%u\t%s\t%s\n", owner, (unsigned) r->ttls[i], r->addrs[i].is_ip6 ? "AAAA" : "A",
           ip);
  }
}

static int cmd_resolve(int argc, char **argv) {
  const char *name = NULL, *server = NULL;
  int family = CYMG_DNS_ANY;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
      const char *t = argv[++i];
      if (strcasecmp(t, "A") == 0) family = CYMG_DNS_IPV4;
      else if (strcasecmp(t, "AAAA") == 0) family = CYMG_DNS_IPV6;
      else return fprintf(stderr, "cymg resolve: --type is A or AAAA, not '%s'\n", t), 2;
    } else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
      server = argv[++i];
    } else if (argv[i][0] == '-' || name != NULL) {
      fprintf(stderr, "usage: cymg resolve NAME [--type A|AAAA] [--server URL]\n");
      return 2;
    } else {
      name = argv[i];
    }
  }
  if (name == NULL) {
    fprintf(stderr, "usage: cymg resolve NAME [--type A|AAAA] [--server URL]\n");
    return 2;
  }
  cymg_mgr *mgr;
  int rc = cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO);
  if (rc < 0) {
    fprintf(stderr, "cymg resolve: %s\n", cymg_strerror(rc));
    return 1;
  }
  if (server && cymg_mgr_set_dns(mgr, server) < 0) {
    fprintf(stderr, "cymg resolve: bad --server '%s' (udp://IP:PORT, comma-separated)\n", server);
    cymg_mgr_free(mgr);
    return 2;
  }
  /* Like dig @SERVER: that server asked for NAME as given, no search list. */
  if (server && cymg_mgr_set_resolv_conf(mgr, "/dev/null") < 0) {
    fprintf(stderr, "cymg resolve: out of memory\n");
    cymg_mgr_free(mgr);
    return 1;
  }
  resolve_ctx ctx = {0};
  rc = cymg_dns_lookup(mgr, name, family, resolve_fn, &ctx, NULL);
  if (rc < 0) {
    fprintf(stderr, "cymg resolve: %s: %s\n", name, cymg_strerror(rc));
    cymg_mgr_free(mgr);
    return 1;
  }
  /* The resolver always ends a lookup: an answer, or the timeout of its attempts. */
  while (!ctx.done) {
    rc = cymg_mgr_poll(mgr, 1000);
    if (rc < 0) {
      fprintf(stderr, "cymg resolve: poll: %s\n", cymg_strerror(rc));
      break;
    }
  }
  cymg_mgr_free(mgr);
  return ctx.done && ctx.status == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("cymg %s\n", cymg_version());
    return 0;
  }
  if (strcmp(argv[1], "serve") == 0) return cmd_serve(argc - 2, argv + 2);
  if (strcmp(argv[1], "get") == 0) return cmd_get(argc - 2, argv + 2);
  if (strcmp(argv[1], "ws") == 0) return cmd_ws(argc - 2, argv + 2);
  if (strcmp(argv[1], "sntp") == 0) return cmd_sntp(argc - 2, argv + 2);
  if (strcmp(argv[1], "resolve") == 0) return cmd_resolve(argc - 2, argv + 2);
  if (strcmp(argv[1], "mqtt") == 0) return cymg_tool_mqtt(argc - 2, argv + 2);
  fprintf(stderr, "cymg: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
