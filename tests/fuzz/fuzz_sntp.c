/* Fuzzes the SNTP reply parser and the timestamp conversions.
 * The first 8 bytes are the origin the client expects, the rest the reply.
 * Invariants: the parser reads only len bytes (the copy ends at an ASan
 * boundary); a usable reply satisfies every documented check; a kiss code is
 * printable text; timestamps survive the Unix round trip within 1 ns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymg/error.h"
#include "cymg/sntp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                \
  do {                                                                          \
    if (!(c)) {                                                                 \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                                  \
    }                                                                           \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8) return 0;
  uint64_t origin = 0;
  for (int i = 0; i < 8; i++) origin = (origin << 8) | data[i];
  size_t len = size - 8;
  uint8_t *pkt = malloc(len ? len : 1);
  if (pkt == NULL) return 0;
  memcpy(pkt, data + 8, len);
  cymg_sntp_reply r;
  const char *why = NULL;
  int rc = cymg_sntp_parse_reply(pkt, len, origin, &r, &why);
  CHECK(why != NULL);
  CHECK(rc == 0 || rc == CYMG_EPARSE || rc == CYMG_EPROTO);
  if (rc == 0) {
    CHECK(len >= CYMG_SNTP_PACKET_LEN && why[0] == '\0');
    CHECK(r.version == 3 || r.version == 4);
    CHECK(r.mode == 4 || r.mode == 5);
    CHECK(r.origin == origin && r.stratum != 0 && r.leap != 3 && r.transmit != 0);
  } else {
    CHECK(why[0] != '\0');
  }
  if (rc == CYMG_EPROTO) {
    CHECK(r.stratum == 0 && r.origin == origin);
    for (size_t i = 0; r.kiss[i]; i++) CHECK(i < 4 && r.kiss[i] >= 0x20 && r.kiss[i] < 0x7f);
  }
  if (len >= 8) {
    uint64_t ts = 0;
    for (int i = 0; i < 8; i++) ts = (ts << 8) | pkt[i];
    int64_t ns = cymg_sntp_ts_to_unix_ns(ts);
    uint64_t back = cymg_sntp_ts_from_unix_ns(ns);
    /* Whole seconds are exact; the fraction loses under one nanosecond. */
    CHECK((back >> 32) == (ts >> 32));
    CHECK((ts & 0xffffffffu) - (back & 0xffffffffu) <= 5);
    uint8_t req[CYMG_SNTP_PACKET_LEN];
    uint64_t sent = cymg_sntp_build_request(req, ns, (uint32_t)ts);
    CHECK(sent != 0 && req[0] == 0x23);
  }
  free(pkt);
  return 0;
}
