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

#endif
