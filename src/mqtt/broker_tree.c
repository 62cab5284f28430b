/* The broker's topic tree (one node per filter level, exact children hashed,
 * '+' and '#' as their own children) and the retained-message store. */
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker_priv.h"

uint32_t cymg__bk_hash(const void *p, size_t n) {
  /* FNV-1a: short keys (topic levels, client ids), no attacker-chosen
   * collisions that matter more than a longer chain. */
  const uint8_t *s = p;
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
  return h;
}

void bmsg_unref(bmsg *m) {
  if (m && --m->refs == 0) free(m);
}

/* ---- tree ---- */

static tnode *node_new(tnode *parent, const char *name, size_t len, uint32_t hv) {
  tnode *n = calloc(1, sizeof(*n) + len + 1);
  if (n == NULL) return NULL;
  n->parent = parent;
  n->len = (uint16_t)len;
  n->hv = hv;
  memcpy(n->name, name, len);
  return n;
}

tnode *cymg__bk_tree_new(void) {
  return node_new(NULL, "", 0, 0);
}

static void node_free(tnode *n) {
  if (n == NULL) return;
  for (uint32_t i = 0; i < n->kcap; i++)
    for (tnode *k = n->kids[i], *nx; k; k = nx) {
      nx = k->hnext;
      node_free(k);
    }
  node_free(n->plus);
  node_free(n->hash);
  for (uint32_t i = 0; i < n->ngroups; i++) {
    free(n->groups[i]->m);
    free(n->groups[i]);
  }
  free(n->groups);
  free(n->kids);
  free(n->subs);
  free(n);
}

void cymg__bk_tree_free(tnode *root) {
  node_free(root);
}

static tnode *kid_find(const tnode *n, const char *name, size_t len, uint32_t hv) {
  if (n->kcap == 0) return NULL;
  for (tnode *k = n->kids[hv & (n->kcap - 1)]; k; k = k->hnext)
    if (k->hv == hv && k->len == len && memcmp(k->name, name, len) == 0) return k;
  return NULL;
}

static int kid_add(tnode *n, tnode *k) {
  if (n->nkids + 1 > n->kcap) {
    uint32_t cap = n->kcap ? n->kcap * 2 : 4;
    tnode **t = calloc(cap, sizeof(*t));
    if (t == NULL) return CYMG_ENOMEM;
    for (uint32_t i = 0; i < n->kcap; i++)
      for (tnode *x = n->kids[i], *nx; x; x = nx) {
        nx = x->hnext;
        x->hnext = t[x->hv & (cap - 1)];
        t[x->hv & (cap - 1)] = x;
      }
    free(n->kids);
    n->kids = t;
    n->kcap = cap;
  }
  k->hnext = n->kids[k->hv & (n->kcap - 1)];
  n->kids[k->hv & (n->kcap - 1)] = k;
  n->nkids++;
  return 0;
}

static void kid_del(tnode *n, tnode *k) {
  for (tnode **pp = &n->kids[k->hv & (n->kcap - 1)]; *pp; pp = &(*pp)->hnext)
    if (*pp == k) {
      *pp = k->hnext;
      n->nkids--;
      return;
    }
}

static bool node_empty(const tnode *n) {
  return n->nkids == 0 && n->plus == NULL && n->hash == NULL && n->nsubs == 0 && n->ngroups == 0;
}

/* Frees n and its empty ancestors (never the root). */
static void prune(tnode *n) {
  while (n->parent && node_empty(n)) {
    tnode *p = n->parent;
    if (p->plus == n)
      p->plus = NULL;
    else if (p->hash == n)
      p->hash = NULL;
    else
      kid_del(p, n);
    free(n->kids);
    free(n->subs);
    free(n->groups);
    free(n);
    n = p;
  }
}

static int ptr_push(void *arrp, uint32_t *n, uint32_t *cap, void *item) {
  void ***arr = arrp;
  if (*n == *cap) {
    uint32_t nc = *cap ? *cap * 2 : 2;
    void **a = realloc(*arr, nc * sizeof(void *));
    if (a == NULL) return CYMG_ENOMEM;
    *arr = a;
    *cap = nc;
  }
  (*arr)[(*n)++] = item;
  return 0;
}

int cymg__bk_tree_add(tnode *root, cymg_str f, cymg_str group, bsub *sub) {
  tnode *n = root, *created = NULL;
  size_t i = 0;
  for (;;) {
    size_t e = i;
    while (e < f.len && f.buf[e] != '/') e++;
    const char *lv = f.buf + i;
    size_t len = e - i;
    tnode *k;
    if (len == 1 && lv[0] == '+') {
      if ((k = n->plus) == NULL && (k = n->plus = node_new(n, "+", 1, 0)) == NULL) goto oom;
    } else if (len == 1 && lv[0] == '#') {
      if ((k = n->hash) == NULL && (k = n->hash = node_new(n, "#", 1, 0)) == NULL) goto oom;
    } else {
      uint32_t hv = cymg__bk_hash(lv, len);
      if ((k = kid_find(n, lv, len, hv)) == NULL) {
        if ((k = node_new(n, lv, len, hv)) == NULL) goto oom;
        if (kid_add(n, k) < 0) {
          free(k);
          goto oom;
        }
      }
    }
    if (created == NULL && node_empty(k)) created = k;
    n = k;
    if (e >= f.len) break;
    i = e + 1;
  }
  sub->node = n;
  if (group.len == 0) {
    sub->g = NULL;
    sub->idx = n->nsubs;
    if (ptr_push(&n->subs, &n->nsubs, &n->scap, sub) < 0) goto oom;
    return 0;
  }
  sgroup *g = NULL;
  for (uint32_t j = 0; j < n->ngroups && g == NULL; j++)
    if (n->groups[j]->nlen == group.len && memcmp(n->groups[j]->name, group.buf, group.len) == 0)
      g = n->groups[j];
  if (g == NULL) {
    if ((g = calloc(1, sizeof(*g) + group.len + 1)) == NULL) goto oom;
    g->nlen = (uint16_t)group.len;
    memcpy(g->name, group.buf, group.len);
    uint32_t cap = n->ngroups; /* groups grow one by one: there are few */
    sgroup **a = realloc(n->groups, (cap + 1) * sizeof(*a));
    if (a == NULL) {
      free(g);
      goto oom;
    }
    n->groups = a;
    n->groups[n->ngroups++] = g;
  }
  sub->g = g;
  sub->idx = g->n;
  if (ptr_push(&g->m, &g->n, &g->cap, sub) < 0) goto oom;
  return 0;
oom:
  if (created) prune(n);
  return CYMG_ENOMEM;
}

void cymg__bk_tree_del(bsub *sub) {
  tnode *n = sub->node;
  if (n == NULL) return;
  sgroup *g = sub->g;
  if (g == NULL) {
    n->subs[sub->idx] = n->subs[--n->nsubs];
    n->subs[sub->idx]->idx = sub->idx;
  } else {
    /* keep the members' order, so the round robin stays fair */
    memmove(g->m + sub->idx, g->m + sub->idx + 1, (g->n - sub->idx - 1) * sizeof(*g->m));
    g->n--;
    for (uint32_t i = sub->idx; i < g->n; i++) g->m[i]->idx = i;
    if (g->rr > sub->idx) g->rr--;
    if (g->n == 0) {
      for (uint32_t i = 0; i < n->ngroups; i++)
        if (n->groups[i] == g) {
          n->groups[i] = n->groups[--n->ngroups];
          break;
        }
      free(g->m);
      free(g);
    }
  }
  sub->node = NULL;
  sub->g = NULL;
  prune(n);
}

static void emit(tnode *n, cymg__bk_match_fn fn, void *arg) {
  for (uint32_t i = 0; i < n->nsubs; i++) fn(arg, n->subs[i], NULL);
  for (uint32_t i = 0; i < n->ngroups; i++) fn(arg, NULL, n->groups[i]);
}

/* The tree is at most as deep as the longest filter, which the broker bounds,
 * so the recursion is too. */
static void match_at(tnode *n, cymg_str t, size_t i, bool first, cymg__bk_match_fn fn, void *arg) {
  bool dollar = first && t.len && t.buf[0] == '$';
  if (n->hash && !dollar) emit(n->hash, fn, arg); /* "a/#" matches "a" and below */
  if (i > t.len) {
    emit(n, fn, arg);
    return;
  }
  size_t e = i;
  while (e < t.len && t.buf[e] != '/') e++;
  size_t len = e - i;
  tnode *k = n->kcap ? kid_find(n, t.buf + i, len, cymg__bk_hash(t.buf + i, len)) : NULL;
  if (k) match_at(k, t, e + 1, false, fn, arg);
  if (n->plus && !dollar) match_at(n->plus, t, e + 1, false, fn, arg);
}

void cymg__bk_tree_match(tnode *root, cymg_str topic, cymg__bk_match_fn fn, void *arg) {
  match_at(root, topic, 0, true, fn, arg);
}

/* ---- retained ---- */

void cymg__bk_ret_free(rstore *r) {
  for (size_t i = 0; i < r->cap; i++)
    for (rent *e = r->tab[i], *n; e; e = n) {
      n = e->next;
      bmsg_unref(e->m);
      free(e);
    }
  free(r->tab);
  memset(r, 0, sizeof(*r));
}

static rent **ret_slot(const rstore *r, cymg_str topic, uint32_t hv) {
  if (r->cap == 0) return NULL;
  rent **pp = &r->tab[hv & (r->cap - 1)];
  for (; *pp; pp = &(*pp)->next) {
    cymg_str t = bmsg_topic((*pp)->m);
    if ((*pp)->hv == hv && t.len == topic.len && memcmp(t.buf, topic.buf, t.len) == 0) return pp;
  }
  return pp;
}

int cymg__bk_ret_set(rstore *r, cymg_str topic, bmsg *m) {
  uint32_t hv = cymg__bk_hash(topic.buf, topic.len);
  rent **pp = ret_slot(r, topic, hv);
  if (pp && *pp) {
    rent *e = *pp;
    bmsg_unref(e->m);
    if (m) {
      e->m = bmsg_ref(m);
    } else {
      *pp = e->next;
      free(e);
      r->n--;
    }
    return 0;
  }
  if (m == NULL) return 0;
  if (r->n + 1 > r->cap / 2 * 3 || r->cap == 0) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    rent **t = calloc(cap, sizeof(*t));
    if (t == NULL) return CYMG_ENOMEM;
    for (size_t i = 0; i < r->cap; i++)
      for (rent *e = r->tab[i], *n; e; e = n) {
        n = e->next;
        e->next = t[e->hv & (cap - 1)];
        t[e->hv & (cap - 1)] = e;
      }
    free(r->tab);
    r->tab = t;
    r->cap = cap;
  }
  rent *e = malloc(sizeof(*e));
  if (e == NULL) return CYMG_ENOMEM;
  e->hv = hv;
  e->m = bmsg_ref(m);
  e->next = r->tab[hv & (r->cap - 1)];
  r->tab[hv & (r->cap - 1)] = e;
  r->n++;
  return 1;
}

bmsg *cymg__bk_ret_get(const rstore *r, cymg_str topic) {
  rent **pp = ret_slot(r, topic, cymg__bk_hash(topic.buf, topic.len));
  return pp && *pp ? (*pp)->m : NULL;
}

void cymg__bk_ret_match(rstore *r, cymg_str filter, void (*fn)(void *arg, bmsg *m), void *arg) {
  bool wild = memchr(filter.buf, '+', filter.len) || memchr(filter.buf, '#', filter.len);
  if (!wild) {
    bmsg *m = cymg__bk_ret_get(r, filter);
    if (m) fn(arg, m);
    return;
  }
  for (size_t i = 0; i < r->cap; i++)
    for (rent *e = r->tab[i]; e; e = e->next)
      if (cymg_mqtt_match(bmsg_topic(e->m), filter)) fn(arg, e->m);
}
