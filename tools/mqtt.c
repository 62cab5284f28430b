/* cymg mqtt pub / sub: an MQTT client on the command line, in the habits of
 * mosquitto_pub and mosquitto_sub. Exit status: 0 done, 1 a failure on the
 * way (connection, refusal, error from the broker), 2 bad usage. */
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
    "  URL      mqtt://HOST[:PORT] (port 1883 by default)\n"
    "  -q QOS   0, 1 or 2 (default 0)      -r  publish retained\n"
    "  -v       print \"TOPIC PAYLOAD\"      -C  exit after COUNT messages\n"
    "  -i ID    client id (default: a random one)\n";

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

int cymg_tool_mqtt(int argc, char **argv) {
  if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
    fputs(mqtt_usage, stdout);
    return 0;
  }
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
