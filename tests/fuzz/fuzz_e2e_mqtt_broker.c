/* End to end: arbitrary bytes from a peer through a real broker connection
 * (framing across reads, the codec, CONNECT / session handling, routing
 * through the topic tree to the peer itself and to a watcher, retained
 * replay, QoS flows, topic aliases, the error paths). A fresh broker per input,
 * so sessions made by one input do not pile up over the run. See e2e.h for the
 * input layout.
 *
 * ctl[0] bit 4: tight limits (small packets, queues, windows, aliases)
 *        bit 5: a full session queue disconnects instead of dropping
 *        bit 6: a persistent session "p" exists beforehand, with queued
 *               messages (a peer resuming it gets them) */
#include "cymg/cymg.h"
#include "cymg/mqtt_broker.h"
#include "e2e.h"

static cymg_mgr *mgr;
static cymg_mqtt_broker *broker;
static cymg_conn *lsn;
static uint64_t routed;

static void at_exit(void) {
  cymg_mqtt_broker_free(broker);
  for (int i = 0; i < 8 && cymg_mgr_count(mgr); i++) CHECK(cymg_mgr_poll(mgr, 0) >= 0);
  cymg_mgr_free(mgr);
}

static void watch_fn(void *data, const cymg_mqtt_msg *m, const void *origin) {
  (void)data;
  (void)origin;
  CHECK(m->topic.len > 0);
  CHECK(memchr(m->topic.buf, '+', m->topic.len) == NULL);
  CHECK(memchr(m->topic.buf, '#', m->topic.len) == NULL);
  routed++;
}

static void fn(cymg_conn *c, int ev, void *ev_data) {
  (void)c;
  e2e_trace(ev, ev_data);
}

static void fresh_broker(uint8_t ctl) {
  cymg_mqtt_broker_free(broker);
  for (int i = 0; i < 8 && cymg_mgr_count(mgr); i++) CHECK(cymg_mgr_poll(mgr, 0) >= 0);
  CHECK(cymg_mgr_count(mgr) == 0);
  cymg_mqtt_broker_opts o = {.fn = fn};
  if (ctl & 0x10) {
    o.max_packet = 256;
    o.max_queued = 4;
    o.receive_max = 2;
    o.topic_alias_max = 2;
    o.max_subs = 3;
    o.max_retained = 2;
  }
  o.disconnect_on_full = (ctl & 0x20) != 0;
  CHECK(cymg_mqtt_broker_new(mgr, &o, &broker) == 0);
  CHECK(cymg_mqtt_broker_listen(broker, "mqtt://127.0.0.1:0", &lsn) == 0);
  uint64_t wid;
  CHECK(cymg_mqtt_broker_watch(broker, cymg_str_c("#"), watch_fn, NULL, &wid) == 0);
  CHECK(cymg_mqtt_broker_publish(broker, cymg_str_c("a/r"), cymg_str_c("kept"), 1, true, NULL, 0,
                                 NULL) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (mgr == NULL) {
    mgr = e2e_mgr_new();
    atexit(at_exit);
  }
  e2e_in in;
  if (e2e_in_parse(data, size, &in) < 0) return 0;
  fresh_broker(in.ctl);
  if (in.ctl & 0x40) {
    /* a persistent 3.1.1 session "p" subscribed to "a/#", gone offline */
    int fd;
    uint64_t id = e2e_adopt(lsn, &fd);
    static const uint8_t pre[] = {0x10, 13,  0,    4, 'M', 'Q', 'T', 'T', 4,   0x00, 0,   0, 0,
                                  1,    'p', 0x82, 8, 0,   1,   0,   3,   'a', '/',  '#', 1};
    static const uint8_t whole[3] = {255, 255, 255};
    e2e_in p;
    memset(&p, 0, sizeof(p));
    e2e_in_set(&p, pre, sizeof(pre), whole);
    e2e_write(mgr, id, fd, &p);
    e2e_finish(mgr, id, fd, &p);
    for (int i = 0; i < 3; i++)
      CHECK(cymg_mqtt_broker_publish(broker, cymg_str_c("a/q"), cymg_str_c("queued"), 1 + (i & 1),
                                     false, NULL, 0, NULL) == 0);
  }
  int fd;
  uint64_t id = e2e_adopt(lsn, &fd);
  e2e_write(mgr, id, fd, &in);
  e2e_finish(mgr, id, fd, &in);
  CHECK(cymg_mgr_count(mgr) == 1); /* the listener */
  cymg_mqtt_broker_stats st;
  cymg_mqtt_broker_get_stats(broker, &st);
  CHECK(st.clients == 0);
  return 0;
}
