/* What the broker's parts share inside the library: the persistence log
 * (store.c) the broker (broker.c) writes through, and the lifetime link the
 * bridge (bridge.c, public API otherwise) needs. Not installed. */
#ifndef CYMG_MQTT_BROKER_INTERNAL_H
#define CYMG_MQTT_BROKER_INTERNAL_H

#include "cymg/mqtt_broker.h"

/* ---- broker <-> bridge ---- */

/* Runs fn(arg) at the start of cymg_mqtt_broker_free, before anything is
 * freed (the bridge frees itself there). Returns 0 or CYMG_ENOMEM. */
int cymg__mqtt_broker_on_free(cymg_mqtt_broker *b, void (*fn)(void *arg), void *arg);
/* Removes a registration made with the same fn and arg (no-op if absent). */
void cymg__mqtt_broker_off_free(cymg_mqtt_broker *b, void (*fn)(void *arg), void *arg);
cymg_mgr *cymg__mqtt_broker_mgr(const cymg_mqtt_broker *b);

/* ---- persistence log ----
 * An append-only file of records, each framed with its length and a CRC so a
 * torn last record (a crash mid-write) is recognised and dropped. The store
 * knows nothing of MQTT rules: the broker puts a record for every change of
 * durable state and, at load, gets every record back in order and applies
 * it. Compaction rewrites the file from the broker's live state. */

typedef struct cymg__mqtt_store cymg__mqtt_store;

enum {
  CYMG__ST_RETAIN = 1,  /* topic, payload, props, qos, time = expiry (unix s, 0 none) */
  CYMG__ST_RETAIN_DEL,  /* topic */
  CYMG__ST_SESSION,     /* client_id, num = session expiry interval (s; UINT32_MAX
                           never), version, time = offline since (unix s; 0 online) */
  CYMG__ST_SESSION_DEL, /* client_id (its subs, msgs and ids go with it) */
  CYMG__ST_SUB,         /* client_id, topic = filter, opts, num = subscription id */
  CYMG__ST_UNSUB,       /* client_id, topic = filter */
  CYMG__ST_MSG,         /* client_id, seq, topic, payload, props, qos, retain,
                           time = expiry (unix s, 0 none), id = packet id (0: not
                           sent yet), released (QoS 2: PUBREC came) */
  CYMG__ST_MSG_DEL,     /* client_id, seq */
  CYMG__ST_QOS2_IN,     /* client_id, id: a QoS 2 PUBLISH received, PUBREL awaited */
  CYMG__ST_QOS2_IN_DEL  /* client_id, id */
};

typedef struct cymg__mqtt_rec {
  uint8_t type; /* CYMG__ST_* */
  cymg_str client_id;
  cymg_str topic;
  cymg_str payload;
  cymg_str props; /* a v5 property block, raw */
  uint64_t seq;
  uint64_t time;
  uint32_t num;
  uint16_t id;
  uint8_t qos, opts, version;
  bool retain, released;
} cymg__mqtt_rec;

/* Called for each record at load, in the order written. Views valid during
 * the call. */
typedef void (*cymg__mqtt_store_fn)(void *data, const cymg__mqtt_rec *r);

/* Opens (creating it, 0600) the log at path and replays it through fn. A torn
 * or corrupt tail is cut off (logged at WARN); a file that is not a store, or
 * a bad record before the tail, fails with CYMG_EPARSE; I/O errors give a
 * negative errno. err (may be NULL) gets a message on failure. */
int cymg__mqtt_store_open(const char *path, cymg__mqtt_store_fn fn, void *data,
                          cymg__mqtt_store **out, char *err, size_t errlen);
/* Queues one record in memory (nothing is written yet). 0 or CYMG_ENOMEM /
 * CYMG_EINVAL (a field too long to frame). */
int cymg__mqtt_store_put(cymg__mqtt_store *st, const cymg__mqtt_rec *r);
/* Whether records were put since the last sync. */
bool cymg__mqtt_store_dirty(const cymg__mqtt_store *st);
/* Writes the queued records and fdatasync()s: once it returns 0, every record
 * put before survives a crash. The broker calls it before sending the
 * acknowledgements that depend on those records (group commit: one sync per
 * batch of packets read, not one per message). 0 or a negative errno. */
int cymg__mqtt_store_sync(cymg__mqtt_store *st);
/* Whether the file has grown enough past its live content to be worth
 * compacting (the broker checks after syncs). */
bool cymg__mqtt_store_wants_compact(const cymg__mqtt_store *st);
/* Rewrites the file: dump(data) must cymg__mqtt_store_put every live record;
 * they go to a temporary file that is synced and renamed over the old one
 * (the directory synced too), so a crash at any point leaves either file
 * whole. 0 or a negative code (the old file stays in use). */
int cymg__mqtt_store_compact(cymg__mqtt_store *st, void (*dump)(void *data), void *data);
/* Syncs what is queued and closes. NULL is fine. */
void cymg__mqtt_store_close(cymg__mqtt_store *st);

#endif
