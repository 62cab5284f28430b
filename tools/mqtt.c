/* cymg mqtt pub / sub: an MQTT client on the command line, in the habits of
 * mosquitto_pub and mosquitto_sub; cymg mqtt broker: the broker of
 * mqtt_broker.h, in mosquitto's. Exit status: 0 done, 1 a failure on the
 * way (connection, refusal, error from the broker, a port in use), 2 bad
 * usage. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cymg/cymg.h>

#include "tool.h"

static volatile sig_atomic_t mqtt_stop;
static void on_mqtt_signal(int sig) {
  mqtt_stop = sig;
}

static const char mqtt_usage[] =
    "usage: cymg mqtt pub URL TOPIC MESSAGE [-q QOS] [-r] [-i ID]\n"
    "       cymg mqtt sub URL TOPIC... [-q QOS] [-v] [-C COUNT] [-i ID]\n"
    "       cymg mqtt broker [--listen URL]... [--persist FILE] [--tls-cert F --tls-key F\n"
    "                        [--cafile F]] [--max-connections N] [-v]\n"
    "                        [--bridge URL [--bridge-id ID] --topic PATTERN[:in|out|both[:QOS]]...]\n"
    "  URL      mqtt://HOST[:PORT] (port 1883 by default)\n"
    "  -q QOS   0, 1 or 2 (default 0)      -r  publish retained\n"
    "  -v       print \"TOPIC PAYLOAD\"      -C  exit after COUNT messages\n"
    "  -i ID    client id (default: a random one)\n"
    "broker:    --listen mqtt://, mqtts://, ws:// or wss:// URL, repeatable (default\n"
    "           mqtt://0.0.0.0:1883); TLS ones take --tls-cert/--tls-key (--cafile: ask\n"
    "           clients for a certificate); --persist keeps retained messages and\n"
    "           sessions in FILE across restarts; --bridge connects upstream, each\n"
    "           --topic after it forwarding PATTERN (default out, QoS 0); -v logs\n"
    "           connects and disconnects; SIGINT/SIGTERM stop it cleanly\n";

typedef struct {
  bool sub, verbose, retain, done;
  bool ended; /* finish() was called: a CLOSE after it is the expected end */
  int qos, status;
  long count, left;
  int pub_id;
  const char *topic, *message;
  char **topics;
  int ntopics, subacks;
} mqtt_ctx;

static void finish(cymg_conn *c, mqtt_ctx *ctx, int status) {
  ctx->ended = true;
  ctx->status = status;
  if (cymg_mqtt_disconnect(c, 0, NULL, 0) < 0) ctx->status = 1;
  cymg_drain(c);
}

static void on_open(cymg_conn *c, mqtt_ctx *ctx, int code) {
  if (code != 0) {
    fprintf(stderr, "cymg mqtt: connection refused by the broker (code %d)\n", code);
    ctx->status = 1;
    return; /* the layer closes it */
  }
  if (!ctx->sub) {
    int rc = cymg_mqtt_pub(c, cymg_str_c(ctx->topic), cymg_str_c(ctx->message), ctx->qos,
                           ctx->retain, NULL, 0);
    if (rc < 0) {
      fprintf(stderr, "cymg mqtt: publish: %s\n", cymg_strerror(rc));
      finish(c, ctx, 1);
    } else if (ctx->qos == 0) {
      finish(c, ctx, 0);
    } else {
      ctx->pub_id = rc;
    }
    return;
  }
  for (int i = 0; i < ctx->ntopics; i++) {
    int rc = cymg_mqtt_sub(c, cymg_str_c(ctx->topics[i]), ctx->qos, NULL, 0);
    if (rc < 0) {
      fprintf(stderr, "cymg mqtt: subscribe '%s': %s\n", ctx->topics[i], cymg_strerror(rc));
      finish(c, ctx, 1);
      return;
    }
  }
}

static void on_cmd(cymg_conn *c, mqtt_ctx *ctx, const cymg_mqtt_msg *m) {
  if (!ctx->sub && m->id == ctx->pub_id &&
      (m->cmd == (ctx->qos == 1 ? CYMG_MQTT_CMD_PUBACK : CYMG_MQTT_CMD_PUBCOMP))) {
    if (m->ack >= 0x80) fprintf(stderr, "cymg mqtt: publish refused (reason 0x%02x)\n", m->ack);
    finish(c, ctx, m->ack >= 0x80);
  } else if (ctx->sub && m->cmd == CYMG_MQTT_CMD_SUBACK) {
    for (size_t i = 0; i < m->data.len; i++) {
      if ((unsigned char)m->data.buf[i] >= 0x80) {
        fprintf(stderr, "cymg mqtt: subscription refused (code 0x%02x)\n",
                (unsigned char)m->data.buf[i]);
        finish(c, ctx, 1);
        return;
      }
    }
  }
}

static void mqtt_fn(cymg_conn *c, int ev, void *ev_data) {
  mqtt_ctx *ctx = cymg_conn_userdata(c);
  if (ev == CYMG_EV_MQTT_OPEN) {
    on_open(c, ctx, *(const int *)ev_data);
  } else if (ev == CYMG_EV_MQTT_MSG && ctx->sub && ctx->left != 0) {
    const cymg_mqtt_msg *m = ev_data;
    if (ctx->verbose) printf("%.*s ", (int)m->topic.len, m->topic.buf);
    fwrite(m->data.buf, 1, m->data.len, stdout);
    putchar('\n');
    fflush(stdout);
    if (ctx->left > 0 && --ctx->left == 0) finish(c, ctx, 0);
  } else if (ev == CYMG_EV_MQTT_CMD) {
    on_cmd(c, ctx, ev_data);
  } else if (ev == CYMG_EV_ERROR) {
    fprintf(stderr, "cymg mqtt: %s\n", (const char *)ev_data);
    ctx->status = 1;
  } else if (ev == CYMG_EV_CLOSE) {
    if (!ctx->ended && ctx->status == 0) {
      fprintf(stderr, "cymg mqtt: the connection closed before the work was done\n");
      ctx->status = 1;
    }
    ctx->done = true;
  }
}

/* An option's integer value in [lo, hi], or -1 after a message. */
static long opt_num(const char *opt, const char *v, long lo, long hi) {
  char *end;
  long n = v ? strtol(v, &end, 10) : 0;
  if (v == NULL || *v == '\0' || *end != '\0' || n < lo || n > hi) {
    fprintf(stderr, "cymg mqtt: %s needs a number %ld..%ld\n", opt, lo, hi);
    return -1;
  }
  return n;
}

/* ---- cymg mqtt broker ---- */

enum { MAX_LISTEN = 16, MAX_BRIDGES = 8, MAX_TOPICS = 64 };

typedef struct {
  const char *url, *client_id;
  cymg_mqtt_bridge_topic topics[MAX_TOPICS];
  size_t ntopics;
} bridge_arg;

typedef struct {
  const char *listen[MAX_LISTEN];
  int nlisten;
  const char *persist, *cert, *key, *cafile;
  long max_connections;
  bool verbose;
  bridge_arg bridges[MAX_BRIDGES];
  int nbridges;
} broker_args;

static bool url_tls(const char *url) {
  const char *sep = strstr(url, "://");
  return sep != NULL && cymg_url_is_tls(cymg_str_n(url, (size_t)(sep - url)));
}

/* -v: connects and disconnects, as mosquitto -v logs them. */
static void broker_log(cymg_conn *c, int ev, void *ev_data) {
  if (ev != CYMG_EV_MQTT_CMD && ev != CYMG_EV_CLOSE && ev != CYMG_EV_ERROR) return;
  if (cymg_conn_is_listening(c)) return;
  char addr[64];
  if (cymg_addr_str(cymg_conn_remote(c), true, addr, sizeof(addr)) < 0) addr[0] = '\0';
  unsigned long long id = (unsigned long long)cymg_conn_id(c);
  if (ev == CYMG_EV_MQTT_CMD) {
    const cymg_mqtt_msg *m = ev_data;
    if (m->cmd != CYMG_MQTT_CMD_CONNECT) return;
    const cymg_str cid = m->connect.client_id, u = m->connect.username;
    printf("New client connected from %s as %.*s (p%d, c%d, k%d%s%.*s%s) [conn %llu].\n", addr,
           (int)cid.len, cid.len ? cid.buf : "", m->version, m->connect.clean ? 1 : 0,
           m->connect.keepalive, u.len ? ", u'" : "", (int)u.len, u.len ? u.buf : "",
           u.len ? "'" : "", id);
  } else if (ev == CYMG_EV_ERROR) {
    printf("Client [conn %llu] from %s: %s\n", id, addr, (const char *)ev_data);
  } else {
    printf("Client [conn %llu] from %s disconnected.\n", id, addr);
  }
  fflush(stdout);
}

/* "PATTERN[:in|out|both[:QOS]]" into t (spec is cut in place); false after a
 * message. The direction defaults to out and QoS to 0, as in mosquitto. */
static bool parse_topic(char *spec, cymg_mqtt_bridge_topic *t) {
  t->direction = CYMG_MQTT_BRIDGE_OUT;
  t->qos = 0;
  char *dir = strchr(spec, ':');
  if (dir != NULL) {
    *dir++ = '\0';
    char *q = strchr(dir, ':');
    if (q != NULL) {
      *q++ = '\0';
      long n = opt_num("--topic QOS", q, 0, 2);
      if (n < 0) return false;
      t->qos = (int)n;
    }
    if (strcmp(dir, "in") == 0) {
      t->direction = CYMG_MQTT_BRIDGE_IN;
    } else if (strcmp(dir, "both") == 0) {
      t->direction = CYMG_MQTT_BRIDGE_BOTH;
    } else if (strcmp(dir, "out") != 0) {
      fprintf(stderr, "cymg mqtt broker: --topic direction must be in, out or both, not '%s'\n",
              dir);
      return false;
    }
  }
  if (!cymg_mqtt_filter_valid(cymg_str_c(spec))) {
    fprintf(stderr, "cymg mqtt broker: invalid topic filter '%s'\n", spec);
    return false;
  }
  t->filter = spec;
  return true;
}

static bool takes_value(const char *o) {
  static const char *const with_value[] = {"--listen", "--persist",         "--tls-cert",
                                           "--tls-key", "--cafile",         "--max-connections",
                                           "--bridge", "--bridge-id",       "--topic"};
  for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
    if (strcmp(o, with_value[i]) == 0) return true;
  return false;
}

/* One option with its value v (NULL for -v); 0, or 2 after a message. */
static int broker_opt(broker_args *a, const char *o, char *v) {
  if (strcmp(o, "-v") == 0) {
    a->verbose = true;
  } else if (strcmp(o, "--listen") == 0) {
    if (a->nlisten == MAX_LISTEN) {
      fprintf(stderr, "cymg mqtt broker: at most %d --listen\n", MAX_LISTEN);
      return 2;
    }
    a->listen[a->nlisten++] = v;
  } else if (strcmp(o, "--persist") == 0) {
    a->persist = v;
  } else if (strcmp(o, "--tls-cert") == 0) {
    a->cert = v;
  } else if (strcmp(o, "--tls-key") == 0) {
    a->key = v;
  } else if (strcmp(o, "--cafile") == 0) {
    a->cafile = v;
  } else if (strcmp(o, "--max-connections") == 0) {
    if ((a->max_connections = opt_num(o, v, 0, 100000000)) < 0) return 2;
  } else if (strcmp(o, "--bridge") == 0) {
    if (a->nbridges == MAX_BRIDGES) {
      fprintf(stderr, "cymg mqtt broker: at most %d --bridge\n", MAX_BRIDGES);
      return 2;
    }
    a->bridges[a->nbridges++].url = v;
  } else if (strcmp(o, "--bridge-id") == 0 || strcmp(o, "--topic") == 0) {
    if (a->nbridges == 0) {
      fprintf(stderr, "cymg mqtt broker: %s belongs after a --bridge URL\n", o);
      return 2;
    }
    bridge_arg *b = &a->bridges[a->nbridges - 1];
    if (strcmp(o, "--bridge-id") == 0) {
      b->client_id = v;
    } else if (b->ntopics == MAX_TOPICS) {
      fprintf(stderr, "cymg mqtt broker: at most %d --topic per bridge\n", MAX_TOPICS);
      return 2;
    } else if (!parse_topic(v, &b->topics[b->ntopics++])) {
      return 2;
    }
  } else {
    fprintf(stderr, "cymg mqtt broker: unknown argument '%s'\n%s", o, mqtt_usage);
    return 2;
  }
  return 0;
}

/* Returns 0, or 2 after a usage message. */
static int broker_parse(int argc, char **argv, broker_args *a) {
  for (int i = 0; i < argc; i++) {
    char *v = NULL;
    if (takes_value(argv[i])) {
      if (i + 1 >= argc) {
        fprintf(stderr, "cymg mqtt broker: %s needs a value\n", argv[i]);
        return 2;
      }
      v = argv[i + 1];
    }
    int rc = broker_opt(a, argv[i], v);
    if (rc != 0) return rc;
    if (v != NULL) i++;
  }
  for (int i = 0; i < a->nbridges; i++) {
    if (a->bridges[i].ntopics == 0) {
      fprintf(stderr, "cymg mqtt broker: --bridge %s needs at least one --topic\n",
              a->bridges[i].url);
      return 2;
    }
  }
  if ((a->cert == NULL) != (a->key == NULL)) {
    fprintf(stderr, "cymg mqtt broker: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if (a->nlisten == 0) a->listen[a->nlisten++] = "mqtt://0.0.0.0:1883";
  for (int i = 0; i < a->nlisten; i++) {
    if (url_tls(a->listen[i]) && a->cert == NULL) {
      fprintf(stderr, "cymg mqtt broker: %s needs --tls-cert and --tls-key\n", a->listen[i]);
      return 2;
    }
  }
  return 0;
}

static const char *why(cymg_mgr *mgr, int rc) {
  return cymg_mgr_errmsg(mgr)[0] ? cymg_mgr_errmsg(mgr) : cymg_strerror(rc);
}

/* Opens the listeners and bridges; 0, or 1 after a message. */
static int broker_start(cymg_mgr *mgr, cymg_mqtt_broker *b, const broker_args *a) {
  cymg_tls_opts tls = {.cert = cymg_str_c(a->cert ? a->cert : ""),
                       .key = cymg_str_c(a->key ? a->key : ""),
                       .ca = cymg_str_c(a->cafile ? a->cafile : "")};
  for (int i = 0; i < a->nlisten; i++) {
    cymg_conn *c = NULL;
    int rc = cymg_mqtt_broker_listen(b, a->listen[i], &c);
    if (rc < 0) {
      fprintf(stderr, "cymg mqtt broker: cannot listen on %s: %s\n", a->listen[i], why(mgr, rc));
      return 1;
    }
    if (url_tls(a->listen[i]) && (rc = cymg_tls_init(c, &tls)) < 0) {
      fprintf(stderr, "cymg mqtt broker: TLS on %s: %s\n", a->listen[i], why(mgr, rc));
      return 1;
    }
    char addr[64];
    if (cymg_addr_str(cymg_conn_local(c), true, addr, sizeof(addr)) < 0) addr[0] = '\0';
    fprintf(stderr, "cymg mqtt broker: listening on %s (%s)\n", a->listen[i], addr);
  }
  for (int i = 0; i < a->nbridges; i++) {
    const bridge_arg *ba = &a->bridges[i];
    cymg_mqtt_bridge_opts o = {.url = ba->url, .topics = ba->topics, .num_topics = ba->ntopics};
    o.client.client_id = cymg_str_c(ba->client_id ? ba->client_id : "");
    o.client.version = CYMG_MQTT_V5;
    int rc = cymg_mqtt_bridge_new(b, &o, NULL);
    if (rc < 0) {
      fprintf(stderr, "cymg mqtt broker: bridge %s: %s\n", ba->url, why(mgr, rc));
      return 1;
    }
    fprintf(stderr, "cymg mqtt broker: bridging to %s (%zu topics)\n", ba->url, ba->ntopics);
  }
  return 0;
}

static int mqtt_broker_cmd(int argc, char **argv) {
  if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
    fputs(mqtt_usage, stdout);
    return 0;
  }
  static broker_args a; /* large (bridge topics): not on the stack */
  memset(&a, 0, sizeof(a));
  int rc = broker_parse(argc, argv, &a);
  if (rc != 0) return rc;
  cymg_mgr *mgr;
  if ((rc = cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO)) < 0) {
    fprintf(stderr, "cymg mqtt broker: %s\n", cymg_strerror(rc));
    return 1;
  }
  cymg_mqtt_broker_opts o = {.persist_path = a.persist,
                             .max_connections = (uint32_t)a.max_connections,
                             .fn = a.verbose ? broker_log : NULL};
  cymg_mqtt_broker *b = NULL;
  if ((rc = cymg_mqtt_broker_new(mgr, &o, &b)) < 0) {
    fprintf(stderr, "cymg mqtt broker: %s\n", why(mgr, rc));
    cymg_mgr_free(mgr);
    return 1;
  }
  int status = broker_start(mgr, b, &a);
  signal(SIGINT, on_mqtt_signal);
  signal(SIGTERM, on_mqtt_signal);
  signal(SIGPIPE, SIG_IGN);
  while (status == 0 && !mqtt_stop) {
    if ((rc = cymg_mgr_poll(mgr, 500)) < 0) {
      fprintf(stderr, "cymg mqtt broker: poll: %s\n", cymg_strerror(rc));
      status = 1;
    }
  }
  if (status == 0) fprintf(stderr, "cymg mqtt broker: signal %d, shutting down\n", (int)mqtt_stop);
  cymg_mqtt_broker_free(b); /* sessions and retained messages flushed to --persist */
  cymg_mgr_free(mgr);
  return status;
}

int cymg_tool_mqtt(int argc, char **argv) {
  if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
    fputs(mqtt_usage, stdout);
    return 0;
  }
  if (argc >= 1 && strcmp(argv[0], "broker") == 0) return mqtt_broker_cmd(argc - 1, argv + 1);
  mqtt_ctx ctx = {.left = -1};
  if (argc < 1 || (strcmp(argv[0], "pub") != 0 && strcmp(argv[0], "sub") != 0)) {
    fputs(mqtt_usage, stderr);
    return 2;
  }
  ctx.sub = strcmp(argv[0], "sub") == 0;
  char *pos[64];
  int npos = 0;
  const char *client_id = "";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-q") == 0) {
      if ((ctx.qos = (int)opt_num("-q", i + 1 < argc ? argv[++i] : NULL, 0, 2)) < 0) return 2;
    } else if (strcmp(a, "-C") == 0) {
      if ((ctx.left = opt_num("-C", i + 1 < argc ? argv[++i] : NULL, 1, 1000000000)) < 0) return 2;
    } else if (strcmp(a, "-i") == 0 && i + 1 < argc) {
      client_id = argv[++i];
    } else if (strcmp(a, "-r") == 0 && !ctx.sub) {
      ctx.retain = true;
    } else if (strcmp(a, "-v") == 0 && ctx.sub) {
      ctx.verbose = true;
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "cymg mqtt: unknown option '%s'\n%s", a, mqtt_usage);
      return 2;
    } else if (npos < (int)(sizeof(pos) / sizeof(pos[0]))) {
      pos[npos++] = argv[i];
    } else {
      fprintf(stderr, "cymg mqtt: too many arguments\n");
      return 2;
    }
  }
  if (ctx.sub ? npos < 2 : npos != 3) {
    fputs(mqtt_usage, stderr);
    return 2;
  }
  if (ctx.sub) {
    ctx.topics = pos + 1;
    ctx.ntopics = npos - 1;
    for (int i = 0; i < ctx.ntopics; i++) {
      if (!cymg_mqtt_filter_valid(cymg_str_c(ctx.topics[i]))) {
        fprintf(stderr, "cymg mqtt: invalid topic filter '%s'\n", ctx.topics[i]);
        return 2;
      }
    }
  } else {
    ctx.topic = pos[1];
    ctx.message = pos[2];
    if (!cymg_mqtt_topic_valid(cymg_str_c(ctx.topic))) {
      fprintf(stderr, "cymg mqtt: invalid topic name '%s' (no + or #)\n", ctx.topic);
      return 2;
    }
  }
  cymg_mgr *mgr;
  int rc = cymg_mgr_new(&mgr, CYMG_BACKEND_AUTO);
  if (rc < 0) {
    fprintf(stderr, "cymg mqtt: %s\n", cymg_strerror(rc));
    return 1;
  }
  cymg_mqtt_opts o = {.client_id = cymg_str_c(client_id)};
  cymg_conn *c;
  if (cymg_mqtt_connect(mgr, pos[0], &o, mqtt_fn, &ctx, &c) != 0) {
    fprintf(stderr, "cymg mqtt: %s\n", cymg_mgr_errmsg(mgr));
    cymg_mgr_free(mgr);
    return 1;
  }
  signal(SIGINT, on_mqtt_signal);
  signal(SIGTERM, on_mqtt_signal);
  bool stopping = false;
  while (!ctx.done) {
    if (mqtt_stop && !stopping) { /* Ctrl-C ends a subscription cleanly (status 0) */
      stopping = true;
      finish(c, &ctx, ctx.sub ? ctx.status : 1);
    }
    rc = cymg_mgr_poll(mgr, 200);
    if (rc < 0) {
      fprintf(stderr, "cymg mqtt: poll: %s\n", cymg_strerror(rc));
      ctx.status = 1;
      break;
    }
  }
  cymg_mgr_free(mgr);
  return ctx.status;
}
