/* Fuzzes the MQTT packet parser and encoder. The first byte picks the
 * protocol level (odd: 5.0), the rest is the packet.
 * Invariants: the parser reads only len bytes (the copy ends at an ASan
 * boundary); what it accepts re-encodes to exactly the same bytes and parses
 * again the same; property and filter walks of an accepted packet succeed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                \
  do {                                                                          \
    if (!(c)) {                                                                 \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                                  \
    }                                                                           \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int version = (data[0] & 1) ? CYMG_MQTT_V5 : CYMG_MQTT_V311;
  size_t len = size - 1;
  uint8_t *pkt = malloc(len ? len : 1);
  if (pkt == NULL) return 0;
  memcpy(pkt, data + 1, len);
  cymg_mqtt_msg m;
  cymg_mqtt_err e;
  int n = cymg_mqtt_parse(pkt, len, version, 0, &m, &e);
  if (n > 0) {
    CHECK((size_t)n <= len);
    size_t ofs = 0;
    cymg_mqtt_prop p;
    int rc;
    while ((rc = cymg_mqtt_next_prop(m.props, &ofs, &p)) == 1)
      CHECK(cymg_mqtt_prop_type(p.id) >= 0);
    CHECK(rc == 0);
    cymg_str f;
    uint8_t o;
    ofs = 0;
    while ((rc = cymg_mqtt_next_filter(&m, &ofs, &f, &o)) == 1) CHECK(cymg_mqtt_filter_valid(f));
    CHECK(rc == 0);
    uint8_t *out = malloc((size_t)n);
    CHECK(out != NULL);
    int k = cymg_mqtt_encode(&m, m.version, out, (size_t)n);
    /* Equal unless the input used a non-minimal remaining length, which the
     * encoder never writes. */
    if (k == n) {
      CHECK(memcmp(out, pkt, (size_t)n) == 0);
      cymg_mqtt_msg m2;
      CHECK(cymg_mqtt_parse(out, (size_t)n, version, 0, &m2, NULL) == n);
      CHECK(m2.cmd == m.cmd && m2.id == m.id && m2.qos == m.qos && m2.ack == m.ack);
    } else {
      CHECK(k > 0 && k < n);
    }
    free(out);
  } else {
    CHECK(n == CYMG_EAGAIN || n == CYMG_EPARSE || n == CYMG_EPROTO || n == CYMG_ELIMIT);
    if (n != CYMG_EAGAIN) CHECK(e.why != NULL && e.why[0] && e.reason >= 0x80);
  }
  free(pkt);
  return 0;
}
