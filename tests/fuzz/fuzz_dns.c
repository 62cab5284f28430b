/* Fuzz target: DNS answers through the codec. The input is copied into a
 * buffer of exactly its size, so any read past the message trips ASan; the
 * parsed result is checked for its own invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cymg/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size ? size : 1);
  if (copy == NULL) return 0;
  memcpy(copy, data, size);
  cymg_dns_answer a;
  int rc = cymg_dns_parse_answer(copy, size, &a);
  if (rc >= 0) {
    if ((size_t) rc > size || a.naddrs > CYMG_DNS_MAX_ADDRS || a.ncnames > CYMG_DNS_MAX_CNAMES ||
        strlen(a.qname) >= CYMG_DNS_NAME_MAX || strlen(a.canon) >= CYMG_DNS_NAME_MAX)
      abort();
  }
  /* Every offset as a name start: pointers, loops, labels crossing the end. */
  char name[CYMG_DNS_NAME_MAX];
  for (size_t ofs = 0; ofs < size && ofs < 64; ofs++) {
    int n = cymg_dns_decode_name(copy, size, ofs, name, sizeof(name));
    if (n > 0 && ((size_t) n > size - ofs || strlen(name) >= sizeof(name))) abort();
  }
  free(copy);
  return 0;
}
