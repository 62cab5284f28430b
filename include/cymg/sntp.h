/* SNTP client (RFC 4330, client mode of RFC 5905).
 *
 * The first part is the codec: sans-I/O, allocation-free functions over the
 * 48-byte NTP packet and 64-bit NTP timestamps, thread-safe, fuzzed on their
 * own. The connection layer below sends requests on a UDP connection and turns
 * checked replies into CYMG_EV_SNTP_TIME; its calls belong to the manager's
 * thread.
 *
 * Era handling (RFC 4330 section 3): an NTP timestamp holds seconds modulo
 * 2^32 since 1900-01-01. A value whose top bit of the seconds is set is read in
 * era 0 (1968-2036), one whose top bit is clear in era 1 (from 2036-02-07
 * 06:28:16 UTC), so the range covered is 1968-01-20 .. 2104-02-26.
 */
#ifndef CYMG_SNTP_H
#define CYMG_SNTP_H

#include "common.h"
#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ codec --- */

#define CYMG_SNTP_PACKET_LEN 48
/* Seconds from 1900-01-01 (the NTP epoch) to 1970-01-01 (the Unix one). */
#define CYMG_SNTP_UNIX_OFFSET 2208988800LL

/* The fields of a reply that the client uses. Timestamps are raw 64-bit NTP
 * values (seconds << 32 | fraction). */
typedef struct cymg_sntp_reply {
  uint8_t leap;      /* leap indicator, 0..3 (3: server unsynchronised) */
  uint8_t version;   /* 3 or 4 once checked */
  uint8_t mode;      /* 4 (server) or 5 (broadcast) once checked */
  uint8_t stratum;   /* 1..15 for a usable reply; 0 = kiss-of-death */
  char kiss[5];      /* stratum 0: the reference id as text ("RATE"), NUL-ended;
                        bytes outside printable ASCII become '?' */
  uint64_t origin;   /* T1 as echoed by the server */
  uint64_t receive;  /* T2: when the request reached the server */
  uint64_t transmit; /* T3: when the reply left the server */
} cymg_sntp_reply;

/* NTP timestamp of a Unix time in nanoseconds (any era: seconds are taken
 * modulo 2^32, as on the wire). Thread-safe. */
CYMG_API uint64_t cymg_sntp_ts_from_unix_ns(int64_t unix_ns);

/* Unix time in nanoseconds of an NTP timestamp, with the era rule above.
 * Thread-safe. */
CYMG_API int64_t cymg_sntp_ts_to_unix_ns(uint64_t ts);

/* Writes a client request (version 4, mode 3, every other field 0 but the
 * transmit timestamp) into out, which holds CYMG_SNTP_PACKET_LEN bytes. The
 * transmit timestamp is now_unix_ns with the low 16 bits of its fraction (under
 * 16 us) replaced by those of `random`, so the origin check of the reply means
 * something even to an attacker who knows our clock. Returns the timestamp
 * sent: the origin to give cymg_sntp_parse_reply(). Thread-safe. */
CYMG_API uint64_t cymg_sntp_build_request(uint8_t *out, int64_t now_unix_ns, uint32_t random);

/* Parses and checks a reply to the request whose transmit timestamp was
 * `origin`. Checks, in order: at least 48 bytes, version 3 or 4, mode 4 or 5,
 * origin timestamp equal to `origin`, stratum not 0, leap indicator not 3,
 * transmit timestamp not 0. Fills *out as far as it got (may be NULL).
 * Returns 0 for a usable reply; CYMG_EPROTO for a kiss-of-death (stratum 0 with
 * the right origin: out->kiss holds the code), which tells the client to stop;
 * CYMG_EPARSE for anything else (to be ignored). *why (may be NULL) is set to a
 * static text naming the failed check, or "" on success. Thread-safe. */
CYMG_API int cymg_sntp_parse_reply(const void *buf, size_t len, uint64_t origin,
                                   cymg_sntp_reply *out, const char **why);

/* Clock offset and round-trip delay in nanoseconds from the four times of an
 * exchange (RFC 5905 section 8), all Unix ns: t1 request sent (our clock), t2
 * received by the server, t3 reply sent by the server, t4 reply received (our
 * clock): offset = ((t2 - t1) + (t3 - t4)) / 2, delay = (t4 - t1) - (t3 - t2).
 * Either pointer may be NULL. Thread-safe. */
CYMG_API void cymg_sntp_compute(int64_t t1, int64_t t2, int64_t t3, int64_t t4, int64_t *offset_ns,
                                int64_t *delay_ns);

/* ------------------------------------------------------------ connection --- */

/* Default time a request waits for its reply. */
#define CYMG_SNTP_TIMEOUT_MS 3000

/* Opens a UDP connection to an SNTP server: "sntp://HOST" (port 123 unless
 * given) or "udp://HOST:PORT". The first request goes out by itself when the
 * connection is ready (at CONNECT, on the next poll); the connection stays open
 * for more (cymg_sntp_request). Each checked reply raises CYMG_EV_SNTP_TIME
 * with a const int64_t * of the server's time in Unix milliseconds, corrected
 * by half the round trip. Replies that fail the checks are ignored (logged at
 * debug level) except a kiss-of-death, which gives ERROR "SNTP kiss-of-death:
 * CODE" then CLOSE; no reply within the timeout gives ERROR "SNTP timeout" then
 * CLOSE. Datagrams from other addresses never reach the connection (the socket
 * is connected). Raw READ events are not passed to fn.
 * Returns 0 and sets *out (may be NULL); a malformed URL or another scheme
 * fails here (CYMG_EBADURL, CYMG_ESCHEME; reason in cymg_mgr_errmsg()), later
 * failures arrive as ERROR. The connection is owned by the manager as any
 * other. Manager thread only. */
CYMG_API int cymg_sntp_connect(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                               cymg_conn **out);

/* Sends another request. Before the connection is ready the request is kept
 * and goes out at CONNECT (several such calls make one request). A request
 * still unanswered is superseded: its late reply fails the origin check and is
 * ignored. Each request restarts the timeout. Returns 0; CYMG_ESTATE when c is
 * not an SNTP connection; CYMG_ECLOSED when it is closing; a send failure
 * (-errno). Manager thread only. */
CYMG_API int cymg_sntp_request(cymg_conn *c);

/* Sets the reply timeout in ms (> 0) for requests sent from now on. Returns 0,
 * CYMG_EINVAL for 0, or CYMG_ESTATE when c is not an SNTP connection. Manager
 * thread only. */
CYMG_API int cymg_sntp_set_timeout(cymg_conn *c, uint32_t ms);

/* Clock offset (server minus us) and round-trip delay of the last checked
 * reply, in ms, readable from CYMG_EV_SNTP_TIME on; 0 before any reply or on
 * a connection that is not SNTP. Manager thread only. */
CYMG_API int64_t cymg_sntp_offset_ms(const cymg_conn *c);
CYMG_API int64_t cymg_sntp_delay_ms(const cymg_conn *c);

#ifdef __cplusplus
}
#endif
#endif
