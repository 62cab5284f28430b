/* WebSocket (RFC 6455) with permessage-deflate compression (RFC 7692).
 *
 * The first part is the codec: sans-I/O, allocation-free functions over bytes
 * (frame headers, masking, the receive-side rules, UTF-8, close payloads, the
 * handshake key). The connection layer below feeds it from a connection's
 * receive buffer; the codec is also usable on its own and is fuzzed on its own.
 * Everything here is thread-safe except calls on one connection, which belong to
 * its manager's thread.
 *
 * Receiving decisions (RFC 6455 leaves these to the recipient):
 * - Non-minimal length encodings (a 126 form for 5 bytes) are accepted: the
 *   "MUST use the minimal number of bytes" rule binds senders, and refusing them
 *   buys nothing. A 64-bit length with its top bit set is a protocol error.
 * - Close codes accepted from a peer: 1000-1003, 1007-1014 and 3000-4999. 1004,
 *   1005, 1006, 1015, the rest of 1000-2999 and everything else fail with 1002.
 * - Text is validated as it arrives, frame by frame (a fragmented message fails
 *   at the first bad byte, not at its end); compressed text after inflating.
 */
#ifndef CYMG_WS_H
#define CYMG_WS_H

#include "common.h"
#include "core.h"
#include "http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opcodes (the Python WEBSOCKET_OP_* values). */
enum {
  CYMG_WS_OP_CONT = 0,
  CYMG_WS_OP_TEXT = 1,
  CYMG_WS_OP_BINARY = 2,
  CYMG_WS_OP_CLOSE = 8,
  CYMG_WS_OP_PING = 9,
  CYMG_WS_OP_PONG = 10
};

/* The first byte of a frame: FIN, three reserved bits, the opcode (low 4 bits).
 * cymg_ws_msg.flags uses the same layout. */
#define CYMG_WS_FIN 0x80u
#define CYMG_WS_RSV1 0x40u /* permessage-deflate: the message is compressed */
#define CYMG_WS_RSV2 0x20u
#define CYMG_WS_RSV3 0x10u
#define CYMG_WS_OPCODE(flags) ((flags) & 0x0fu)

/* Close status codes (RFC 6455 §7.4.1). */
enum {
  CYMG_WS_CLOSE_NORMAL = 1000,
  CYMG_WS_CLOSE_GOING_AWAY = 1001,
  CYMG_WS_CLOSE_PROTOCOL = 1002,
  CYMG_WS_CLOSE_UNSUPPORTED = 1003,
  CYMG_WS_CLOSE_NO_STATUS = 1005, /* never sent: reported for a close without a code */
  CYMG_WS_CLOSE_ABNORMAL = 1006,  /* never sent */
  CYMG_WS_CLOSE_INVALID_DATA = 1007,
  CYMG_WS_CLOSE_POLICY = 1008,
  CYMG_WS_CLOSE_TOO_BIG = 1009,
  CYMG_WS_CLOSE_EXTENSION = 1010,
  CYMG_WS_CLOSE_INTERNAL = 1011
};

/* What CYMG_EV_WS_MSG and CYMG_EV_WS_CTL carry. data is the whole message
 * (fragments reassembled, decompressed) or the control frame's payload; it is
 * valid until the event function returns. flags: CYMG_WS_FIN | the opcode
 * (TEXT/BINARY for WS_MSG; CLOSE/PING/PONG for WS_CTL), plus CYMG_WS_RSV1 when
 * the message arrived compressed. */
typedef struct cymg_ws_msg {
  cymg_str data;
  uint8_t flags;
} cymg_ws_msg;

/* ------------------------------------------------------------------ codec --- */

/* A frame header. */
typedef struct cymg_ws_frame {
  uint8_t flags;    /* FIN, RSV1-3, opcode: the frame's first byte */
  bool masked;      /* the MASK bit */
  uint8_t mask[4];  /* masking key when masked */
  uint64_t len;     /* payload length */
} cymg_ws_frame;

/* Largest frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define CYMG_WS_MAX_HEADER 14

/* Parses the frame header at buf[0..len). Returns its length (2..14) and fills
 * *f; CYMG_EAGAIN when more bytes are needed; CYMG_EPARSE for a 64-bit length
 * with the top bit set. Checks nothing else: see cymg_ws_reader_frame(). */
CYMG_API int cymg_ws_parse_header(const void *buf, size_t len, cymg_ws_frame *f);

/* Writes a frame header for a payload of len bytes into out; mask NULL means
 * unmasked. flags as in cymg_ws_frame. Uses the shortest length form. Returns the
 * header length (2..14). */
CYMG_API size_t cymg_ws_encode_header(uint8_t out[CYMG_WS_MAX_HEADER], uint8_t flags,
                                      uint64_t len, const uint8_t mask[4]);

/* XORs len bytes of buf with the masking key, as if buf started `offset` bytes
 * into the payload (so a payload can be (un)masked piece by piece). Masking and
 * unmasking are the same operation. */
CYMG_API void cymg_ws_mask(void *buf, size_t len, const uint8_t mask[4], uint64_t offset);

/* The receive-side rules of RFC 6455 §5 as a small state machine: fragment
 * sequencing, control frame rules, masking by role, reserved bits, size limit.
 * Private fields: public only so it can be embedded. */
typedef struct cymg_ws_reader {
  uint64_t max_msg; /* limit on a message's payload (compressed or not) */
  uint64_t msg_len; /* payload bytes of the message in progress */
  uint8_t op;       /* opcode of the message in progress, 0 when none */
  bool server;      /* frames come from a client: must be masked */
  bool deflate;     /* permessage-deflate negotiated: RSV1 allowed on a first frame */
  bool compressed;  /* the message in progress has RSV1 */
} cymg_ws_reader;

/* Starts a reader. server: true when reading a client's frames (they must be
 * masked), false when reading a server's (they must not be). max_msg 0 means no
 * limit. */
CYMG_API void cymg_ws_reader_init(cymg_ws_reader *r, bool server, bool deflate, uint64_t max_msg);

/* Checks the next frame header against the rules and the state, and advances the
 * state. Returns 0 when the frame is acceptable, or the close code to fail the
 * connection with: 1002 (bad opcode, reserved bit, masking, control frame longer
 * than 125 or fragmented, continuation without a message, new message inside
 * one) or 1009 (the message would exceed max_msg). After a data frame with FIN,
 * cymg_ws_reader_in_message() is false again. */
CYMG_API CYMG_NODISCARD int cymg_ws_reader_frame(cymg_ws_reader *r, const cymg_ws_frame *f);
/* True while a fragmented message is in progress. */
CYMG_API bool cymg_ws_reader_in_message(const cymg_ws_reader *r);

/* Incremental UTF-8 validation (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). Start with *state = 0 and feed the bytes in pieces of
 * any size. Returns 0 while the input is valid so far, CYMG_EPARSE once it is
 * not. The whole input is valid when the last call returned 0 and *state is 0
 * (not inside a sequence). */
CYMG_API int cymg_ws_utf8(uint32_t *state, const void *buf, size_t len);

/* Checks a close frame's payload: empty, or a 2-byte code that may be sent (see
 * above) followed by a UTF-8 reason. Returns 0, 1002 or 1007. */
CYMG_API int cymg_ws_check_close(const void *payload, size_t len);
/* The code of a close payload (1005 when it has none). */
CYMG_API int cymg_ws_close_code(cymg_str payload);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2): base64 of the
 * SHA-1 of key + the protocol GUID, 28 characters and a NUL. Returns 0 or a
 * negative code from the hash. */
CYMG_API CYMG_NODISCARD int cymg_ws_accept_key(cymg_str key, char out[29]);

/* Validates an upgrade request (RFC 6455 §4.2.1): GET, HTTP/1.1, Host, Upgrade:
 * websocket, Connection containing the token "upgrade", a Sec-WebSocket-Key that
 * is base64 of 16 bytes, Sec-WebSocket-Version: 13. Returns 0, or CYMG_EPROTO
 * with *status set to the answer to give (400, or 426 for a version other than
 * 13) and *why to a static explanation. status/why may be NULL. */
CYMG_API CYMG_NODISCARD int cymg_ws_check_request(const cymg_http_msg *msg, int *status,
                                                  const char **why);

/* Validates a server's answer to an upgrade request sent with key: status 101,
 * Upgrade: websocket, Connection: upgrade, the matching Sec-WebSocket-Accept.
 * Returns 0 or CYMG_EPROTO with *why (static text). */
CYMG_API CYMG_NODISCARD int cymg_ws_check_response(const cymg_http_msg *msg, cymg_str key,
                                                   const char **why);

/* Subprotocol selection for a server: the first protocol the client listed in
 * Sec-WebSocket-Protocol (in its order of preference) that also appears in
 * `supported` (comma-separated, e.g. "chat, superchat"). Returns 0 and sets *out
 * to a view into msg; CYMG_ENOTFOUND when there is no match or no header. Pass
 * the choice back in cymg_ws_upgrade()'s extra headers
 * ("Sec-WebSocket-Protocol: chat\r\n"). */
CYMG_API CYMG_NODISCARD int cymg_ws_select_protocol(const cymg_http_msg *msg, const char *supported,
                                                    cymg_str *out);

/* ------------------------------------------------------- connection layer --- */
/* A WebSocket connection carries the WebSocket protocol layer. The handler gets
 * CYMG_EV_WS_OPEN once (cymg_http_msg *: the upgrade request on a server, the
 * 101 response on a client), then CYMG_EV_WS_MSG for each data message and
 * CYMG_EV_WS_CTL for each control frame (cymg_ws_msg *). Pings are answered
 * with pongs by the layer (and still reported). A close from the peer is
 * answered with a close echoing its code, and the connection ends: a server
 * closes TCP once its close frame is out; a client waits for the server to close
 * TCP, at most the close timeout. A peer that breaks the protocol gets a close
 * frame with the code (1002, 1007, 1009), CYMG_EV_ERROR with the reason, and the
 * connection ends once that frame is out. */

/* Listens on "ws://HOST:PORT": an HTTP listener (cymg_http_listen semantics,
 * HTTP limits and timeouts apply until the upgrade). Requests arrive as
 * CYMG_EV_HTTP_MSG; answer the ones that ask for WebSocket with
 * cymg_ws_upgrade(), others with HTTP replies. cymg_http_listen with "http://"
 * works the same way. */
CYMG_API int cymg_ws_listen(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                            cymg_conn **out);

/* Call during CYMG_EV_HTTP_MSG on a server connection. Validates the request
 * (cymg_ws_check_request); a bad one is answered with 400 (426 and
 * Sec-WebSocket-Version: 13 for a wrong version) and a plain-text reason, the
 * connection closes after it, and CYMG_EPROTO is returned. Otherwise answers 101
 * with Sec-WebSocket-Accept, the negotiated Sec-WebSocket-Extensions (when
 * compression is enabled on this connection and offered), and extra_headers
 * (header lines each ending in "\r\n"; may be NULL), switches the connection to
 * WebSocket and delivers CYMG_EV_WS_OPEN with msg before returning. From then on
 * the HTTP layer is gone: only WebSocket events follow. Returns 0, CYMG_EPROTO,
 * CYMG_ESTATE (not an HTTP server connection), or CYMG_ENOMEM (answered 500). */
CYMG_API int cymg_ws_upgrade(cymg_conn *c, const cymg_http_msg *msg, const char *extra_headers);

/* Connects to "ws://HOST:PORT/PATH?QUERY". The upgrade request (random 16-byte
 * key, Host, the headers from cymg_ws_set_request_headers(), a compression offer
 * when enabled) is sent on CONNECT, so options can be set right after this call.
 * The 101 response is checked (status, Upgrade, Connection, Sec-WebSocket-Accept,
 * extensions and subprotocol against what was offered); on failure ERROR (with
 * what was wrong) and CLOSE follow. Then CYMG_EV_WS_OPEN and messages. Returns 0
 * and sets *out (may be NULL), or a negative code as cymg_connect(). */
CYMG_API int cymg_ws_connect(cymg_mgr *mgr, const char *url, cymg_event_fn fn, void *fn_data,
                             cymg_conn **out);

/* Extra header lines for a client's upgrade request (each ending in "\r\n"; e.g.
 * "Sec-WebSocket-Protocol: chat\r\nOrigin: http://x\r\n"); copied. Only before
 * the request is sent. Returns 0, CYMG_ESTATE or CYMG_ENOMEM. */
CYMG_API int cymg_ws_set_request_headers(cymg_conn *c, const char *headers);

/* Options. Each applies to: an HTTP listener (inherited by the connections it
 * accepts), an HTTP server connection before its upgrade, a WebSocket client
 * connection before its request is sent (right after cymg_ws_connect), and
 * where stated, an open WebSocket connection. Return 0 or CYMG_ESTATE. */

/* Largest message accepted, in bytes of payload (after decompression; on the
 * wire a compressed message may take 1/256 more plus 4 KiB, since deflate can
 * expand incompressible data slightly); beyond it the connection fails with
 * 1009. Also on open connections. 0 keeps the current value. Default 16 MiB (a
 * message of exactly 16 MiB is accepted). The receive buffer grows to hold one
 * message. */
CYMG_API int cymg_ws_set_max_message(cymg_conn *c, uint64_t bytes);

/* How long a closing connection waits for the peer (its close frame after ours,
 * or a client for the server to end TCP), in ms. Default 5000. Also on open
 * connections. 0 keeps the current value. */
CYMG_API int cymg_ws_set_close_timeout(cymg_conn *c, uint32_t ms);
/* Keepalive against peers that vanish without closing: after ms without a
 * frame from the peer a ping is sent; after ms more without one, ERROR and the
 * connection closes. 0 turns it off (the default). On a listener, inherited by
 * the connections it upgrades. Returns 0 or CYMG_ESTATE. */
CYMG_API int cymg_ws_set_ping_interval(cymg_conn *c, uint32_t ms);

/* permessage-deflate flags. */
#define CYMG_WS_DEFLATE_SERVER_NO_CONTEXT 0x01u /* server_no_context_takeover */
#define CYMG_WS_DEFLATE_CLIENT_NO_CONTEXT 0x02u /* client_no_context_takeover */

/* Enables (on) or disables permessage-deflate. A server accepts a client's
 * offer when enabled (declining offers it cannot honour); a client offers it.
 * flags ask for no context takeover on either side; server_bits / client_bits
 * (8..15, 0 = no limit) ask for a smaller LZ77 window on that side. Parameters
 * the peer asks for are honoured too. zlib cannot compress with a 256-byte
 * window: a side limited to 8 bits compresses with 9 (zlib's own choice; peers
 * built on zlib, Node's ws among them, inflate that fine; see docs/websocket.md).
 * Off by default.
 * Not on open connections (CYMG_ESTATE). Returns 0, CYMG_EINVAL or CYMG_ESTATE. */
CYMG_API int cymg_ws_set_deflate(cymg_conn *c, bool on, unsigned flags, int server_bits,
                                 int client_bits);

/* True when c carries the WebSocket layer (handshake done or, on a client, in
 * progress). */
CYMG_API bool cymg_conn_is_ws(const cymg_conn *c);
/* True on an open WebSocket connection whose messages are compressed. */
CYMG_API bool cymg_ws_is_deflate(const cymg_conn *c);

/* Sends one whole message or control frame: op is CYMG_WS_OP_TEXT, BINARY,
 * PING, PONG (or CLOSE, though cymg_ws_close() is the way to close). Data is
 * copied (masked on a client with a fresh random key per frame; compressed when
 * negotiated). Text is not validated: sending valid UTF-8 is the caller's part.
 * Returns 0; CYMG_EINVAL (bad op, control payload over 125 bytes); CYMG_ESTATE
 * (not an open WebSocket connection, after a close was sent, or a data message
 * while a fragmented one is in progress); CYMG_ELIMIT (send buffer limit); or
 * CYMG_ENOMEM. */
CYMG_API int cymg_ws_send(cymg_conn *c, const void *buf, size_t len, int op);

/* printf-formatted message. Returns the bytes of text formatted, or a negative
 * code as cymg_ws_send(). */
CYMG_API int cymg_ws_printf(cymg_conn *c, int op, const char *fmt, ...) CYMG_PRINTF(3, 4);
CYMG_API int cymg_ws_vprintf(cymg_conn *c, int op, const char *fmt, va_list ap)
    CYMG_PRINTF(3, 0);

/* Streams one message as fragments, so a large message never has to be held
 * whole: the first call gives op (TEXT or BINARY), later ones CYMG_WS_OP_CONT
 * (or the same op); fin ends the message. Between calls, control frames may be
 * sent, but no other data message. To keep memory flat, send the next fragment
 * from CYMG_EV_WRITE once cymg_conn_send_len() is low. Returns as
 * cymg_ws_send() (CYMG_ESTATE for CONT without a message in progress). */
CYMG_API int cymg_ws_send_frag(cymg_conn *c, int op, const void *buf, size_t len, bool fin);

/* Starts the close handshake: sends a close frame with code (0 for none: an
 * empty close frame; otherwise 1000-1003, 1007-1014 or 3000-4999) and reason
 * (UTF-8, at most 123 bytes; may be NULL). Later sends fail with CYMG_ESTATE.
 * The connection ends when the peer answers (a server then closes TCP at once)
 * or after the close timeout. Returns 0, CYMG_EINVAL, CYMG_ESTATE (already
 * closing or not WebSocket). */
CYMG_API int cymg_ws_close(cymg_conn *c, int code, const char *reason);

#ifdef __cplusplus
}
#endif
#endif
