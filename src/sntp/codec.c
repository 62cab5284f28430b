/* SNTP codec: the 48-byte packet and 64-bit NTP timestamps. Sans-I/O. */
#include <string.h>

#include "cymg/error.h"
#include "cymg/sntp.h"

#define NS_PER_S 1000000000LL

/* The request's low fraction bits that carry randomness: 2^-16 s, about 15 us,
 * far below the millisecond the client reports. */
#define RANDOM_MASK 0xffffu

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

uint64_t cymg_sntp_ts_from_unix_ns(int64_t unix_ns) {
  int64_t sec = unix_ns / NS_PER_S, rem = unix_ns % NS_PER_S;
  if (rem < 0) { /* floor, so the fraction is never negative */
    rem += NS_PER_S;
    sec--;
  }
  uint32_t ntp_sec = (uint32_t)(uint64_t)(sec + CYMG_SNTP_UNIX_OFFSET);
  uint64_t frac = ((uint64_t)rem << 32) / (uint64_t)NS_PER_S;
  return ((uint64_t)ntp_sec << 32) | frac;
}

int64_t cymg_sntp_ts_to_unix_ns(uint64_t ts) {
  uint32_t sec = (uint32_t)(ts >> 32);
  uint64_t frac = ts & 0xffffffffu;
  /* RFC 4330 section 3: top bit clear means era 1, from 2036-02-07. */
  int64_t unix_sec = (sec & 0x80000000u) ? (int64_t)sec - CYMG_SNTP_UNIX_OFFSET
                                         : (int64_t)sec + 4294967296LL - CYMG_SNTP_UNIX_OFFSET;
  return unix_sec * NS_PER_S + (int64_t)((frac * (uint64_t)NS_PER_S) >> 32);
}

uint64_t cymg_sntp_build_request(uint8_t *out, int64_t now_unix_ns, uint32_t random) {
  memset(out, 0, CYMG_SNTP_PACKET_LEN);
  out[0] = (0u << 6) | (4u << 3) | 3u; /* LI 0, version 4, mode 3 (client) */
  uint64_t ts = cymg_sntp_ts_from_unix_ns(now_unix_ns);
  ts = (ts & ~(uint64_t)RANDOM_MASK) | (random & RANDOM_MASK);
  if (ts == 0) ts = 1; /* 0 means "no origin" to a server */
  put64(out + 40, ts);
  return ts;
}

static int fail(const char **why, const char *text, int rc) {
  if (why) *why = text;
  return rc;
}

int cymg_sntp_parse_reply(const void *buf, size_t len, uint64_t origin, cymg_sntp_reply *out,
                          const char **why) {
  cymg_sntp_reply tmp;
  cymg_sntp_reply *r = out ? out : &tmp;
  memset(r, 0, sizeof(*r));
  if (why) *why = "";
  if (buf == NULL || len < CYMG_SNTP_PACKET_LEN) return fail(why, "too short", CYMG_EPARSE);
  const uint8_t *p = buf;
  r->leap = p[0] >> 6;
  r->version = (p[0] >> 3) & 7u;
  r->mode = p[0] & 7u;
  r->stratum = p[1];
  r->origin = get64(p + 24);
  r->receive = get64(p + 32);
  r->transmit = get64(p + 40);
  if (r->version != 3 && r->version != 4) return fail(why, "unsupported version", CYMG_EPARSE);
  if (r->mode != 4 && r->mode != 5) return fail(why, "not a server reply (mode)", CYMG_EPARSE);
  /* Before anything that can stop the client, a kiss included: without the
   * right origin the packet may be forged by anyone who can send to us. */
  if (r->origin != origin) return fail(why, "origin timestamp mismatch", CYMG_EPARSE);
  if (r->stratum == 0) {
    for (int i = 0; i < 4; i++) {
      uint8_t ch = p[12 + i];
      r->kiss[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : (ch == 0 ? '\0' : '?');
    }
    r->kiss[4] = '\0';
    return fail(why, "kiss-of-death", CYMG_EPROTO);
  }
  if (r->leap == 3) return fail(why, "server unsynchronised (leap indicator 3)", CYMG_EPARSE);
  if (r->transmit == 0) return fail(why, "zero transmit timestamp", CYMG_EPARSE);
  return 0;
}

void cymg_sntp_compute(int64_t t1, int64_t t2, int64_t t3, int64_t t4, int64_t *offset_ns,
                       int64_t *delay_ns) {
  if (offset_ns) *offset_ns = ((t2 - t1) + (t3 - t4)) / 2;
  if (delay_ns) *delay_ns = (t4 - t1) - (t3 - t2);
}
