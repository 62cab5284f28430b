/* What the broker's own sources share (broker.c: connections, sessions,
 * routing; broker_tree.c: the topic tree and the retained messages). Not
 * installed. */
#ifndef CYMG_MQTT_BROKER_PRIV_H
#define CYMG_MQTT_BROKER_PRIV_H

#include "internal.h"
#include "mqtt/broker_internal.h"

/* A message as the broker keeps it: refcounted, shared by every session queue
 * and the retained store that hold it, so a payload is stored once. props is
 * the publisher's v5 property block without the ones the broker rewrites per
 * delivery (topic alias, message expiry, subscription identifiers). */
typedef struct bmsg {
  uint32_t refs;
  uint32_t props_len, payload_len;
  uint16_t topic_len;
  uint8_t qos;
  bool retain;
  uint64_t expire_at; /* manager ms; 0: never */
  const void *origin;
  char data[]; /* topic, NUL, props, payload */
} bmsg;

static inline cymg_str bmsg_topic(const bmsg *m) {
  return cymg_str_n(m->data, m->topic_len);
}
static inline cymg_str bmsg_props(const bmsg *m) {
  return cymg_str_n(m->data + m->topic_len + 1, m->props_len);
}
static inline cymg_str bmsg_payload(const bmsg *m) {
  return cymg_str_n(m->data + m->topic_len + 1 + m->props_len, m->payload_len);
}
static inline bmsg *bmsg_ref(bmsg *m) {
  m->refs++;
  return m;
}
void bmsg_unref(bmsg *m);

struct bsess;
struct tnode;

/* A shared subscription group ($share/NAME/filter) on one node. */
typedef struct sgroup {
  struct bsub **m;
  uint32_t n, cap, rr;
  uint16_t nlen;
  char name[];
} sgroup;

/* One subscription of a session. */
typedef struct bsub {
  struct bsess *s;
  struct tnode *node;
  sgroup *g;    /* shared: its group; NULL otherwise */
  uint32_t idx; /* position in node->subs or g->m */
  uint32_t sub_id;
  uint8_t opts; /* granted QoS in the low bits, v5 flags above */
  uint16_t flen;
  char filter[]; /* as subscribed, "$share/..." included */
} bsub;

/* A level of the topic tree. Exact children are hashed by name. */
typedef struct tnode {
  struct tnode *parent, *hnext;
  struct tnode **kids;
  uint32_t nkids, kcap;
  struct tnode *plus, *hash;
  bsub **subs;
  uint32_t nsubs, scap;
  sgroup **groups;
  uint32_t ngroups;
  uint32_t hv;
  uint16_t len;
  char name[];
} tnode;

uint32_t cymg__bk_hash(const void *p, size_t n);

/* Tree. A filter is inserted level by level (depth bounded by the caller). */
tnode *cymg__bk_tree_new(void);
void cymg__bk_tree_free(tnode *root);
/* Adds sub (its filter without the $share prefix is f) under root, into group
 * (name, when group.len) or the node's plain list. 0 or CYMG_ENOMEM. */
int cymg__bk_tree_add(tnode *root, cymg_str f, cymg_str group, bsub *sub);
/* Removes sub from its node (and empty nodes upward). */
void cymg__bk_tree_del(bsub *sub);
/* Calls fn for every plain subscription and every group matching topic. */
typedef void (*cymg__bk_match_fn)(void *arg, bsub *sub, sgroup *g);
void cymg__bk_tree_match(tnode *root, cymg_str topic, cymg__bk_match_fn fn, void *arg);

/* Retained messages: topic -> message. */
typedef struct rent {
  struct rent *next;
  uint32_t hv;
  bmsg *m;
} rent;
typedef struct rstore {
  rent **tab;
  size_t cap, n;
} rstore;
void cymg__bk_ret_free(rstore *r);
/* Sets (takes a reference to m) or, with m NULL, clears topic. Returns 1 when
 * a new topic was added, 0 when replaced / cleared, CYMG_ENOMEM. */
int cymg__bk_ret_set(rstore *r, cymg_str topic, bmsg *m);
bmsg *cymg__bk_ret_get(const rstore *r, cymg_str topic);
/* Calls fn for each retained message whose topic matches filter. */
void cymg__bk_ret_match(rstore *r, cymg_str filter, void (*fn)(void *arg, bmsg *m), void *arg);

/* ---- the broker's state ---- */

#define DEF_MAX_PACKET (1u << 20)
#define DEF_MAX_SUBS 1000u
#define DEF_MAX_QUEUED 1000u
#define DEF_MAX_QBYTES (16u << 20)
#define DEF_MAX_RETAINED 100000u
#define DEF_RECEIVE_MAX 64u
#define DEF_ALIAS_MAX 64u
#define MAX_LEVELS 128        /* filter depth (bounds the tree and its recursion) */
#define CONNECT_WAIT_MS 30000 /* a connection that sends no CONNECT is closed */
#define SWEEP_MS 1000
#define NEVER UINT32_MAX
#define QENT_CACHE 1024 /* free queue entries kept per broker */
#define SEND_FIRST 32   /* first send buffer of a client connection (CONNACK, SUBACK) */

enum { K_LSN = 1, K_CONN };

typedef struct lstate {
  uint8_t kind; /* K_LSN: shares the protocol with connections */
  struct lstate *next;
  cymg_mqtt_broker *b;
  cymg_conn *c;
  bool ws;
  char *path; /* ws: the path asked for; NULL: any */
} lstate;

/* A QoS > 0 message queued for (or in flight to) a session. */
typedef struct qent {
  struct qent *next;
  bmsg *m;
  uint32_t sub_id;
  uint16_t id; /* packet id once sent */
  uint8_t qos;
  bool retain, sent, released;
  uint64_t seq;
} qent;

typedef struct bconn bconn;

typedef struct bsess {
  struct bsess *hnext;
  bconn *bc; /* online connection or NULL */
  bsub **subs;
  uint32_t nsubs, scap;
  qent *qhead, *qtail, *unsent; /* entries before unsent are in flight */
  qent *last_sent;              /* the entry before unsent (NULL: unsent is the head) */
  uint32_t nq, ninfl;
  uint64_t qbytes;
  uint16_t *in_ids; /* QoS 2 received, PUBREL awaited */
  uint32_t n_in, cap_in;
  uint32_t expiry;     /* seconds, NEVER */
  uint64_t offline_at; /* manager ms; 0: online (or never connected) */
  bmsg *will;          /* delayed will of the last connection */
  uint64_t will_at;
  uint64_t mark; /* routing: last publish that reached it */
  uint32_t mark_idx;
  uint64_t seq;
  uint16_t next_id;
  uint8_t version;
  bool stored; /* written to the store: later changes are too */
  uint32_t hv;
  uint16_t idlen;
  char id[];
} bsess;

struct bconn {
  uint8_t kind; /* K_CONN */
  cymg_mqtt_broker *b;
  cymg_conn *c;
  bsess *s;
  bconn *next, *prev;
  bmsg *will;
  uint32_t will_delay;
  char *cid, *user;
  uint16_t cidlen, userlen;
  char **alias; /* v5 topic aliases set by the client, [1..nalias] */
  uint16_t nalias;
  /* allocated when first needed: in, over WebSocket, the message bytes not
   * parsed yet; held, with a store, the output held until the batch read is
   * synced */
  struct bconn_bufs {
    cymg_buf in, held;
  } * x;
  uint64_t since, last_rx;
  uint32_t max_out; /* the client's Maximum Packet Size; 0: none */
  uint16_t keepalive;
  uint16_t recv_max_out; /* the client's Receive Maximum */
  uint8_t version;
  bool ws, connected, failed, no_will, problem_info, has_user, holding;
  bool cid_own; /* cid is a copy of its own (after a takeover), not the session's */
};

typedef struct watcher {
  uint64_t id;
  cymg_mqtt_watch_fn fn;
  void *data;
  bool dead;
  uint16_t flen;
  char filter[];
} watcher;

typedef struct free_hook {
  void (*fn)(void *);
  void *arg;
} free_hook;

/* One recipient of the message being routed. */
typedef struct dlv {
  bsess *s;
  uint32_t sub_id;
  uint8_t qos;
  bool retain;
} dlv;

struct cymg_mqtt_broker {
  cymg__mqtt_store *store; /* NULL: in memory only */
  bool store_failed;       /* a sync failed: acknowledged as in memory from then on */
  cymg_mgr *mgr;
  cymg_mqtt_broker_opts o;
  tnode *root;
  rstore ret;
  bsess **stab;
  size_t scap, nsess;
  bconn *conns;
  lstate *lsns;
  watcher **w;
  size_t nw, wcap, wdepth;
  uint64_t next_wid;
  free_hook *hooks;
  size_t nhooks;
  cymg_timer_id sweep;
  cymg_mqtt_broker_stats st;
  uint64_t gen;
  dlv *d;
  size_t nd, dcap;
  bsess *from; /* routing: the publisher's session (no-local) */
  uint64_t sweeps;
  qent *qfree; /* free queue entries, reused */
  size_t nqfree;
  bool freeing, replaying;
};

/* ---- broker.c, for the store's replay ---- */
bmsg *cymg__bk_msg_new(cymg_mqtt_broker *b, cymg_str topic, cymg_str payload, cymg_str props,
                       int qos, bool retain, const void *origin);
bsess *cymg__bk_sess_get(cymg_mqtt_broker *b, cymg_str id, bool create);
void cymg__bk_sess_free(cymg_mqtt_broker *b, bsess *s);
/* Adds (or replaces) a subscription of s; 0 or CYMG_ENOMEM; *existed says
 * whether it replaced one. */
int cymg__bk_sess_sub(cymg_mqtt_broker *b, bsess *s, cymg_str f, uint8_t opts, uint32_t sub_id,
                      bool *existed);
bool cymg__bk_sess_unsub(cymg_mqtt_broker *b, bsess *s, cymg_str f);
void cymg__bk_retain(cymg_mqtt_broker *b, bmsg *m);
/* Appends a queue entry (replay); NULL on ENOMEM. */
qent *cymg__bk_enqueue_raw(cymg_mqtt_broker *b, bsess *s, bmsg *m, uint8_t qos, bool retain,
                           uint32_t sub_id);
void cymg__bk_qent_free(cymg_mqtt_broker *b, bsess *s, qent *e);
int cymg__bk_in_add(bsess *s, uint16_t id);
bool cymg__bk_in_del(bsess *s, uint16_t id);

/* ---- broker.c, for broker_api.c ---- */
extern const cymg_proto cymg__bk_proto, cymg__bk_ws_inner;
uint64_t cymg__bk_now_ms(const cymg_mqtt_broker *b);
bool cymg__bk_expired(const cymg_mqtt_broker *b, const bmsg *m);
/* A protocol failure (v5: DISCONNECT with reason), ERROR, then the end. */
void cymg__bk_fail(bconn *bc, uint8_t reason, const char *why);
void cymg__bk_publish_will(cymg_mqtt_broker *b, bmsg *w, bconn *bc);
/* Routes m to every matching subscription and watcher; from: the publisher's
 * session (no-local), as: the PUBLISH as received (NULL: made from m). */
void cymg__bk_route(cymg_mqtt_broker *b, bmsg *m, bsess *from, const cymg_mqtt_msg *as);
/* The connection is gone: its session goes offline or ends, its will. */
void cymg__bk_conn_gone(bconn *bc);
void cymg__bk_bconn_free(void *state);
bconn *cymg__bk_bconn_new(cymg_mqtt_broker *b, cymg_conn *c);
char *cymg__bk_dup_n(const void *p, size_t n);
cymg_mqtt_client_info cymg__bk_info_of(const bconn *bc);

/* ---- broker_store.c: durable state (each a no-op without a store) ---- */
int cymg__bk_store_open(cymg_mqtt_broker *b, const char *path);
void cymg__bk_store_close(cymg_mqtt_broker *b);
/* Group commit: syncs what was put (and compacts when worth it). */
void cymg__bk_store_sync(cymg_mqtt_broker *b);
void cymg__bk_p_retain(cymg_mqtt_broker *b, const bmsg *m);
void cymg__bk_p_retain_del(cymg_mqtt_broker *b, cymg_str topic);
void cymg__bk_p_session(cymg_mqtt_broker *b, bsess *s);
void cymg__bk_p_session_del(cymg_mqtt_broker *b, bsess *s);
void cymg__bk_p_sub(cymg_mqtt_broker *b, const bsess *s, const bsub *sub);
void cymg__bk_p_unsub(cymg_mqtt_broker *b, const bsess *s, cymg_str f);
void cymg__bk_p_msg(cymg_mqtt_broker *b, const bsess *s, const qent *e);
void cymg__bk_p_msg_del(cymg_mqtt_broker *b, const bsess *s, const qent *e);
void cymg__bk_p_in(cymg_mqtt_broker *b, const bsess *s, uint16_t id, bool add);

#endif
