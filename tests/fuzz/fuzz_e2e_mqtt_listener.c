/* End to end: arbitrary bytes from a peer through an accepted connection of the
 * parser-level MQTT listener (framing across reads, the codec, the automatic QoS
 * acknowledgements, the layer's error path) into a handler that acts as a tiny
 * broker: CONNACK for CONNECT, SUBACK granting what was asked, UNSUBACK,
 * PINGRESP, and every PUBLISH sent back on its own topic at its own QoS. See
 * e2e.h for the input layout.
 *
 * ctl[0] bit 4: CONNACK refuses (code 5), after which the peer's packets must
 * still be handled without a crash. */
#include "cymg/cymg.h"
#include "cymg/mqtt.h"
#include "e2e.h"

static cymg_mgr *mgr;
static cymg_conn *lsn;
static bool refuse;

static void at_exit(void) { cymg_mgr_free(mgr); }

static void subscribed(cymg_conn *c, const cymg_mqtt_msg *m) {
  uint8_t codes[64];
  size_t n = 0, ofs = 0;
  cymg_str filter;
  uint8_t opts;
  int rc;
  while (n < sizeof(codes) && (rc = cymg_mqtt_next_filter(m, &ofs, &filter, &opts)) == 1) {
    CHECK(filter.len > 0); /* the layer let only valid filters through */
    codes[n++] = m->cmd == CYMG_MQTT_CMD_SUBSCRIBE ? (uint8_t) (opts & 3) : 0;
  }
  if (m->cmd == CYMG_MQTT_CMD_SUBSCRIBE)
    (void) cymg_mqtt_suback(c, m->id, codes, n, NULL, 0);
  else
    (void) cymg_mqtt_unsuback(c, m->id, codes, n, NULL, 0);
}

static void fn(cymg_conn *c, int ev, void *ev_data) {
  e2e_trace(ev, ev_data);
  if (ev == CYMG_EV_MQTT_MSG) {
    const cymg_mqtt_msg *m = ev_data;
    CHECK(m->qos <= 2);
    CHECK(memchr(m->topic.buf, '+', m->topic.len) == NULL);
    CHECK(memchr(m->topic.buf, '#', m->topic.len) == NULL);
    if (m->topic.len > 0) (void) cymg_mqtt_pub(c, m->topic, m->data, m->qos, false, NULL, 0);
  } else if (ev == CYMG_EV_MQTT_CMD) {
    const cymg_mqtt_msg *m = ev_data;
    switch (m->cmd) {
      case CYMG_MQTT_CMD_CONNECT:
        (void) cymg_mqtt_connack(c, false, refuse ? 5 : 0, NULL, 0);
        break;
      case CYMG_MQTT_CMD_SUBSCRIBE:
      case CYMG_MQTT_CMD_UNSUBSCRIBE:
        subscribed(c, m);
        break;
      case CYMG_MQTT_CMD_PINGREQ:
        (void) cymg_mqtt_pingresp(c);
        break;
      default:
        break;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (mgr == NULL) {
    mgr = e2e_mgr_new();
    CHECK(cymg_mqtt_listen(mgr, "mqtt://127.0.0.1:0", fn, NULL, &lsn) == 0);
    atexit(at_exit);
  }
  e2e_in in;
  if (e2e_in_parse(data, size, &in) < 0) return 0;
  refuse = (in.ctl & 0x10) != 0;
  int fd;
  uint64_t id = e2e_adopt(lsn, &fd);
  e2e_write(mgr, id, fd, &in);
  e2e_finish(mgr, id, fd, &in);
  CHECK(cymg_mgr_count(mgr) == 1);
  return 0;
}
