/* What the WebSocket modules share: the negotiated compression parameters, the
 * compressor (deflate.c) and the connection state (ws.c, handshake.c). */
#ifndef CYMG_WS_INTERNAL_H
#define CYMG_WS_INTERNAL_H

#include "cymg/ws.h"
#include "internal.h"
#include "ws/ws_conf.h"

/* ---- permessage-deflate (deflate.c) ---- */

/* Negotiated parameters. Window bits 0 means 15 (no limit). */
typedef struct cymg__ws_pmd {
  bool on;
  bool server_no_ctx, client_no_ctx;
  uint8_t server_bits, client_bits;
} cymg__ws_pmd;

/* One side's compressor and decompressor. Opaque. */
typedef struct cymg__wsz cymg__wsz;

/* Makes the zlib streams for one end of a connection with these parameters:
 * is_server picks which half of them governs our compressor. Returns 0,
 * CYMG_ENOMEM or CYMG_EINVAL. */
CYMG_NODISCARD int cymg__wsz_new(cymg__wsz **out, const cymg__ws_pmd *p, bool is_server);
void cymg__wsz_free(cymg__wsz *z);
/* Compresses n bytes of a message and appends the output to out. fin ends the
 * message: the trailing 00 00 FF FF is left off (RFC 7692 §7.2.1) and, without
 * context takeover, the compressor starts afresh. Returns 0 or CYMG_ENOMEM. */
CYMG_NODISCARD int cymg__wsz_compress(cymg__wsz *z, const void *in, size_t n, bool fin,
                                      cymg_buf *out);
/* Decompresses n bytes of a message, appending to out, at most max_out bytes
 * in all for this call. fin: the message ends here (the 00 00 FF FF is put
 * back). Returns 0, CYMG_ELIMIT (more than max_out: a zip bomb, close 1009),
 * CYMG_EPARSE (corrupt data, close 1007) or CYMG_ENOMEM. */
CYMG_NODISCARD int cymg__wsz_decompress(cymg__wsz *z, const void *in, size_t n, bool fin,
                                        uint64_t max_out, cymg_buf *out);

/* Server: picks the first permessage-deflate offer in msg's
 * Sec-WebSocket-Extensions that it can honour under conf; fills *out and
 * appends the response header line to resp. out->on is false when nothing was
 * accepted (no offer, or none acceptable). Returns 0 or CYMG_ENOMEM. */
CYMG_NODISCARD int cymg__ws_pmd_accept(const cymg_http_msg *msg, const cymg__ws_conf *conf,
                                       cymg__ws_pmd *out, cymg_buf *resp);
/* Client: appends the offer header line for conf to req. */
CYMG_NODISCARD int cymg__ws_pmd_offer(const cymg__ws_conf *conf, cymg_buf *req);
/* Client: checks the response's Sec-WebSocket-Extensions against the offer
 * made under conf and fills *out. Returns 0 or CYMG_EPROTO with *why. */
CYMG_NODISCARD int cymg__ws_pmd_check(const cymg_http_msg *msg, const cymg__ws_conf *conf,
                                      cymg__ws_pmd *out, const char **why);

/* ---- the connection layer (ws.c, handshake.c) ---- */

/* The state of one WebSocket connection. */
typedef struct cymg__ws {
  cymg__ws_conf conf;
  cymg_mgr *mgr;
  bool is_server;
  bool open;     /* handshake done: frames flow */
  bool req_sent; /* client: the upgrade request went out */
  /* client handshake */
  char key[25];
  char host[272];
  char *uri;
  char *req_headers;
  /* the HTTP layer replaced by an upgrade, freed at the next dispatch so the
   * request stays readable until the HTTP_MSG handler returns */
  const cymg_proto *old_proto;
  void *old_state;
  /* A protocol carried in the messages (MQTT over WebSocket): its on_event sees
   * WS_OPEN, WS_MSG, WS_CTL, WRITE and CLOSE first and hides the ones it
   * returns true for from the user; its state is freed with this one. */
  const cymg_proto *inner;
  void *inner_state;
  /* receiving: the message being assembled sits at the front of the receive
   * buffer, [0, have); bytes not yet parsed start at raw (>= have) */
  cymg_ws_reader rd;
  size_t have, raw;
  bool hdr_checked; /* the frame header at raw passed the rules already */
  uint8_t msg_flags; /* opcode | RSV1 of the message being assembled */
  uint32_t utf8;
  cymg_buf inflated;
  /* sending */
  uint8_t send_op; /* opcode of a message being sent in fragments, 0 when none */
  cymg_buf zout;
  /* compression */
  cymg__ws_pmd pmd;
  cymg__wsz *z;
  /* closing */
  bool close_sent, close_rcvd, failed;
  cymg_timer_id timer;
  /* keepalive: when the peer was last heard from, and whether a ping of ours is
   * unanswered */
  uint64_t last_rx;
  bool ping_out;
  /* masking keys come from the CSPRNG in batches: one system call per 16 frames */
  uint8_t rnd[64];
  unsigned rnd_pos;
} cymg__ws;

extern const cymg_proto cymg__ws_proto;

/* The WebSocket state of c, or NULL. */
cymg__ws *cymg__ws_of(const cymg_conn *c);
/* A new state (not yet attached) with conf's settings; NULL on ENOMEM. */
cymg__ws *cymg__ws_new(cymg_conn *c, const cymg__ws_conf *conf, bool is_server);
void cymg__ws_free(void *state);
/* The handshake is done: frames flow from here on, compressed as pmd says.
 * Returns 0 or CYMG_ENOMEM. */
int cymg__ws_open(cymg_conn *c, cymg__ws *ws, const cymg__ws_pmd *pmd);
/* Reads the frames in the receive buffer. */
void cymg__ws_read(cymg_conn *c, cymg__ws *ws);
/* (Re)arms the connection's one timer. */
void cymg__ws_timer(cymg_conn *c, cymg__ws *ws, uint32_t ms);
/* Client side of the handshake (handshake.c): CONNECT sends the request,
 * READ reads the response. Returns true when the event was the layer's. */
bool cymg__ws_client_event(cymg_conn *c, cymg__ws *ws, int ev);

#endif
