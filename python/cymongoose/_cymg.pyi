"""Type stubs for the cymongoose._cymg extension (re-exported by ``cymongoose``)."""

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union


EventHandler = Callable[["Connection", int, Any], Any]
"""``handler(conn, ev, data)``; see the MG_EV_* constants for what ``data`` is."""

BytesLike = Union[bytes, bytearray, memoryview]
Data = Union[str, bytes, bytearray, memoryview]
"""Text (used as UTF-8) or bytes."""

__version__: str

# ---- events (handler's ``ev``); beside each, the ``data`` it carries ----
MG_EV_ERROR: int  # str: what went wrong; MG_EV_CLOSE follows
MG_EV_OPEN: int  # None: connection created (inside listen()/connect() or on accept)
MG_EV_POLL: int  # None: at every poll(), to every connection with a handler
MG_EV_RESOLVE: int  # None: host name resolved, connecting
MG_EV_CONNECT: int  # None: outbound connection established
MG_EV_ACCEPT: int  # None: inbound connection accepted (after MG_EV_OPEN)
MG_EV_TLS_HS: int  # None: the TLS handshake completed (before any HTTP/WebSocket event)
MG_EV_READ: int  # int: bytes just received (see Connection.recv_data); HTTP/WebSocket too
MG_EV_WRITE: int  # None
MG_EV_CLOSE: int  # None: the last event of a connection
MG_EV_HTTP_HDRS: int  # HttpMessage: head complete, body not read yet (body_bytes == b"")
MG_EV_HTTP_MSG: int  # HttpMessage: the whole message
MG_EV_WS_OPEN: int  # HttpMessage: the upgrade request (server) or the 101 response (client)
MG_EV_WS_MSG: int  # WsMessage: a whole data message (fragments reassembled)
MG_EV_WS_CTL: int  # WsMessage: a control frame (ping, pong, close); pings are answered already
MG_EV_MQTT_CMD: int
MG_EV_MQTT_MSG: int
MG_EV_MQTT_OPEN: int  # int: CONNACK return code
MG_EV_SNTP_TIME: int  # int: epoch milliseconds
MG_EV_WAKEUP: int  # bytes: the payload given to Manager.wakeup()
MG_EV_USER: int  # 100: first number free for applications

WEBSOCKET_OP_TEXT: int  # 1
WEBSOCKET_OP_BINARY: int  # 2
WEBSOCKET_OP_PING: int  # 9
WEBSOCKET_OP_PONG: int  # 10 (a close frame is opcode 8, which has no constant)

MG_LL_NONE: int
MG_LL_ERROR: int
MG_LL_INFO: int
MG_LL_DEBUG: int
MG_LL_VERBOSE: int

MQTT_PROP_TYPE_BYTE: int
MQTT_PROP_TYPE_STRING: int
MQTT_PROP_TYPE_STRING_PAIR: int
MQTT_PROP_TYPE_BINARY_DATA: int
MQTT_PROP_TYPE_VARIABLE_INT: int
MQTT_PROP_TYPE_INT: int
MQTT_PROP_TYPE_SHORT: int

# MQTT packet types (MqttMessage.cmd)
MQTT_CMD_CONNECT: int  # 1
MQTT_CMD_CONNACK: int
MQTT_CMD_PUBLISH: int
MQTT_CMD_PUBACK: int
MQTT_CMD_PUBREC: int
MQTT_CMD_PUBREL: int
MQTT_CMD_PUBCOMP: int
MQTT_CMD_SUBSCRIBE: int
MQTT_CMD_SUBACK: int
MQTT_CMD_UNSUBSCRIBE: int
MQTT_CMD_UNSUBACK: int
MQTT_CMD_PINGREQ: int
MQTT_CMD_PINGRESP: int
MQTT_CMD_DISCONNECT: int
MQTT_CMD_AUTH: int  # 15, MQTT 5 only

# A v5 property: {"id": int, "iv": int} for the integer types,
# {"id": int, "val": str | bytes} for strings / binary data, and
# {"id": 0x26, "key": str, "val": str} for a user property.
MqttProperty = Dict[str, Any]

def event_name(ev: int) -> str:
    """``"MG_EV_READ"``, ``"MG_EV_USER+3"`` or ``"MG_EV_UNKNOWN(77)"``."""

def log_set(level: int) -> None:
    """Set the library's (process-wide) log level, MG_LL_NONE..MG_LL_VERBOSE."""

def log_get() -> int:
    """The library's log level."""

# ---- JSON ----
def json_get(data: Data, path: str) -> Optional[str]:
    """Raw JSON text of the value at ``path`` (``$``, ``$.a.b[2].c``), or None when
    absent or when ``data`` is not valid JSON. A malformed path raises ValueError."""
def json_get_num(data: Data, path: str, default: Any = None) -> Any:
    """The number at ``path`` as a float, else ``default``."""
def json_get_bool(data: Data, path: str, default: Any = None) -> Any:
    """``true``/``false`` at ``path`` as a bool, else ``default``."""
def json_get_long(data: Data, path: str, default: Any = 0) -> Any:
    """The number at ``path`` as an int (exact for integers of any size; a
    fraction is truncated toward zero), else ``default``."""
def json_get_str(data: Data, path: str) -> Optional[str]:
    """The string at ``path``, unescaped, or None."""

# ---- JSON-RPC 2.0 ----
class RpcReq:
    """One request given to an :class:`Rpc` method handler. Valid only during the
    handler call; afterwards ``bool(req)`` is False and using it raises RuntimeError."""

    @property
    def frame(self) -> str:
        """The whole request object (JSON text)."""
    @property
    def method(self) -> str: ...
    @property
    def params(self) -> Optional[str]:
        """Raw JSON of ``params``, or None when absent."""
    @property
    def id(self) -> Optional[str]:
        """Raw JSON of ``id``, or None for a notification."""
    def ok(self, result_json: Data) -> None:
        """Answer with this JSON text as ``result`` (ValueError if not valid JSON).
        Only the first answer counts: a second ``ok()``/``err()`` raises
        RuntimeError("response already sent ..."). A notification answered with
        ``ok()`` gets no response (``process()`` gives "")."""
    def err(self, code: int, message: Data) -> None:
        """Answer with ``{"code": code, "message": message}`` (same rules as ok())."""
    def __bool__(self) -> bool: ...

class Rpc:
    """A JSON-RPC 2.0 dispatcher. Request objects without a ``"jsonrpc"`` member
    are accepted (one that is present must be "2.0"); ``id`` is echoed as written
    and responses carry ``"jsonrpc": "2.0"``. A handler that raises gets error
    -32603 with ``str(exc)`` as the message; the exception also goes to
    ``error_handler(exc)`` (default: the traceback is printed). A handler that
    does not answer a request with an id gets -32603 too. Unknown methods get
    -32601, malformed frames -32700/-32600. Batches are answered as arrays."""

    def __init__(self, *, error_handler: Optional[Callable[[Exception], Any]] = None) -> None: ...
    def add(self, method: str, fn: Callable[[RpcReq], Any]) -> None:
        """Register ``fn`` for ``method`` (a name, or a glob with ``?``, ``*``, ``#``;
        the first match in registration order wins). Adding a name again replaces
        its handler. Not allowed while ``process()`` runs."""
    def process(self, frame: Data) -> str:
        """Answer a request or a batch: the response text, "" for notifications."""
    @property
    def methods(self) -> List[str]:
        """Registered method names, in registration order."""

# ---- URLs, form data, multipart, glob ----
def url_host(url: str) -> str:
    """The host ("" when none; IPv6 without brackets). ValueError if malformed."""
def url_port(url: str) -> int:
    """The port, or the scheme's default (http 80, https 443, ...; 0 if none)."""
def url_user(url: str) -> str: ...
def url_pass(url: str) -> str: ...
def url_uri(url: str) -> str:
    """The request target (path, query, fragment), "/" when none."""
def url_is_ssl(url: str) -> bool:
    """True for https, wss, mqtts and tls."""
def url_encode(s: Data) -> str:
    """Percent-encode every byte but ``A-Z a-z 0-9 - . _ ~``."""
def http_var(buf: Data, name: str) -> Optional[str]:
    """The decoded value of ``name`` in a query string or form body ("a=1&b=x+y"),
    None when absent (or badly %-escaped)."""
def http_parse_multipart(
    body: Data, offset: int = 0
) -> Tuple[int, Optional[Dict[str, Any]]]:
    """One part of a multipart/form-data body (the boundary is read from its
    first delimiter line): ``(next_offset, {"name": str, "filename": str,
    "body": bytes})``, or ``(0, None)`` after the last part. Loop by passing
    ``next_offset`` back. Never raises over the content: an empty, non-multipart,
    malformed or truncated body, and an offset at or past the end (or negative),
    give ``(0, None)``. TypeError for a body that is not str or bytes-like."""
def match(s: Data, pattern: Data) -> Tuple[bool, List[str]]:
    """Glob match of the whole of ``s``: ``?`` one char, ``*`` anything but ``/``,
    ``#`` anything. Captures are the spans taken by the wildcards."""

# ---- hashes, codecs, clock, randomness ----
def md5(data: Data) -> bytes: ...
def sha1(data: Data) -> bytes: ...
def sha256(data: Data) -> bytes: ...
def hmac_sha256(key: Data, data: Data) -> bytes: ...
def base64_encode(data: Data) -> str: ...
def base64_decode(s: Data) -> bytes:
    """Strict standard base64 with padding; ValueError for anything else."""
def crc32(data: Data, initial: int = 0) -> int:
    """CRC-32 as zlib computes it; pass a previous result as ``initial`` to chain."""
def millis() -> int:
    """Milliseconds on a monotonic clock."""
def random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS CSPRNG (ValueError for n < 0)."""
def random_str(n: int) -> str:
    """``n`` random characters from ``[A-Za-z0-9]``."""

class TlsOpts:
    """TLS settings for :meth:`Connection.tls_init` and the ``tls=`` keyword of
    :meth:`Manager.listen` / :meth:`Manager.connect` / :meth:`Manager.ws_connect`:
    PEM contents, not paths, and ``name``, the SNI / expected peer host name.
    ``ca``, ``cert``, ``key`` and ``name`` are stored as bytes (``str`` encoded
    as UTF-8, None as b""), on construction and on assignment; anything not
    bytes-like, str or None raises TypeError.

    ``cert``/``key``: this side's certificate chain (leaf first) and key (RSA or
    EC; PKCS#1, SEC1 or PKCS#8), required on a server. ``ca``: a client verifies
    the server against it (else against the system store); a server given one
    requires client certificates that verify against it (mutual TLS)."""

    ca: bytes
    cert: bytes
    key: bytes
    name: bytes
    skip_verification: bool
    """Clients verify the peer by default; True turns that off."""

    def __init__(
        self,
        ca: Optional[Data] = None,
        cert: Optional[Data] = None,
        key: Optional[Data] = None,
        name: Optional[Data] = None,
        skip_verification: bool = False,
    ) -> None: ...

class HttpMessage:
    """The HTTP message of an ``MG_EV_HTTP_HDRS``/``MG_EV_HTTP_MSG`` event.

    Valid only while the handler runs (the bytes it points to are reused):
    afterwards ``bool(msg)`` is False and, without raising, the accessors give
    "" (method, uri, query, proto, body_text), b"" (body_bytes), the default
    (header), [] (headers) and None (query_var, status, header_var). Passing a
    stale message to serve_dir/serve_file/ws_upgrade raises ValueError.
    Accessors copy out, so what they return can be kept. Text is UTF-8 with
    invalid bytes replaced."""

    @property
    def method(self) -> str:
        """"GET", ...; "" in a response."""
    @property
    def uri(self) -> str:
        """The path as received (not %-decoded), without the query."""
    @property
    def query(self) -> str:
        """The query string without "?" ("" when none)."""
    @property
    def proto(self) -> str:
        """"HTTP/1.1" or "HTTP/1.0"."""
    @property
    def body_bytes(self) -> bytes: ...
    @property
    def body_text(self) -> str: ...
    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first header called ``name`` (any case), else ``default``."""
    def headers(self) -> List[Tuple[str, str]]:
        """All headers in order, names as received."""
    def query_var(self, name: str) -> Optional[str]:
        """A query variable, %-decoded ("+" is a space), or None."""
    def status(self) -> Optional[int]:
        """The status code of a response; 0 for a request; None once stale."""
    def header_var(self, header_name: str, var_name: str) -> Optional[str]:
        """A parameter inside a header value: ``header_var("Content-Type",
        "charset")`` gives "utf-8" for ``text/html; charset=utf-8``."""
    def copy(self) -> "HttpMessage":
        """An HttpMessage owning a copy of this one (head and body): it stays
        valid after the handler returns, e.g. for ``ws_upgrade()`` later, from
        another thread. ValueError on a stale view."""
    def __bool__(self) -> bool: ...

class WsMessage:
    """The WebSocket message of ``MG_EV_WS_MSG`` (a whole message, fragments
    reassembled, decompressed) or the control frame of ``MG_EV_WS_CTL``.

    Valid only while the handler runs: afterwards ``bool(msg)`` is False and the
    accessors give b"", "" and 0. Accessors copy out."""

    @property
    def data(self) -> bytes:
        """The payload. For a close frame: empty, or a 2-byte status code
        (big-endian) and a UTF-8 reason."""
    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (text messages are valid UTF-8, checked on
        arrival; other bytes are replaced)."""
    @property
    def flags(self) -> int:
        """The frame's first byte: the opcode in the low 4 bits (``flags & 0x0F``:
        WEBSOCKET_OP_TEXT/BINARY for MG_EV_WS_MSG, 8 close / PING / PONG for
        MG_EV_WS_CTL), 0x80 FIN, 0x40 when the message arrived compressed."""
    def __bool__(self) -> bool: ...

class MqttMessage:
    """The MQTT packet of ``MG_EV_MQTT_MSG`` (every PUBLISH received; its
    PUBACK/PUBREC already queued) and ``MG_EV_MQTT_CMD`` (every packet, after
    MSG for a PUBLISH). Fields a packet type lacks are empty / 0.

    Valid only while the handler runs: afterwards ``bool(msg)`` is False and the
    accessors give "", b"", 0, False and []. Accessors copy out."""

    @property
    def topic(self) -> str:
        """PUBLISH topic; SUBSCRIBE/UNSUBSCRIBE: the first filter."""
    @property
    def data(self) -> bytes:
        """PUBLISH payload; SUBACK/UNSUBACK: the codes as bytes."""
    @property
    def text(self) -> str:
        """The payload as UTF-8 (invalid bytes replaced)."""
    @property
    def id(self) -> int:
        """Packet identifier; 0 when the packet has none (QoS 0 PUBLISH...)."""
    @property
    def cmd(self) -> int:
        """Packet type, MQTT_CMD_*."""
    @property
    def qos(self) -> int: ...
    @property
    def ack(self) -> int:
        """Return / reason code: CONNACK, PUBACK..PUBCOMP (v5), DISCONNECT, AUTH."""
    @property
    def version(self) -> int:
        """Protocol level: 4 (3.1.1) or 5."""
    @property
    def dup(self) -> bool: ...
    @property
    def retain(self) -> bool: ...
    @property
    def session_present(self) -> bool:
        """CONNACK's session-present flag."""
    # CONNECT fields, for programs answering CONNECT on an mqtt_listen() connection
    @property
    def client_id(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def password(self) -> str: ...
    @property
    def will_topic(self) -> str:
        """"" when the CONNECT has no will."""
    @property
    def will_message(self) -> bytes: ...
    @property
    def will_qos(self) -> int: ...
    @property
    def will_retain(self) -> bool: ...
    @property
    def keepalive(self) -> int:
        """Seconds."""
    @property
    def clean_session(self) -> bool: ...
    @property
    def raw(self) -> bytes:
        """The whole packet as received."""
    def properties(self) -> List[MqttProperty]:
        """The v5 properties of the packet ([] in 3.1.1)."""
    def will_properties(self) -> List[MqttProperty]:
        """The v5 will properties of a CONNECT."""
    def topics(self) -> List[Tuple[str, int]]:
        """SUBSCRIBE: (filter, qos) per filter; UNSUBSCRIBE: (filter, 0)."""
    def subscriptions(self) -> List[Tuple[str, int]]:
        """SUBSCRIBE: (filter, options byte): QoS in the low 2 bits, v5 no-local
        0x04, retain-as-published 0x08, retain handling 0x30."""
    def codes(self) -> List[int]:
        """SUBACK / UNSUBACK: one return / reason code per filter."""
    def __bool__(self) -> bool: ...

class Connection:
    """One connection: a listener, an accepted or an outbound connection.

    Connections are made by :meth:`Manager.listen`, :meth:`Manager.connect` and by
    accepting; they cannot be instantiated directly. The same object is passed to
    every event of its connection. After ``MG_EV_CLOSE`` has been delivered the
    object is detached: ``id`` is unchanged, ``recv_data()``/``send_data()`` give
    b"", sizes are 0, ``close()``, ``drain()`` and ``set_handler()`` do nothing,
    ``is_closing`` is True, ``is_client``/``is_udp``/``is_listening`` keep their
    last value, the other flags are False, addresses are None, and the other
    methods raise ``RuntimeError("connection is closed")``.

    Reading: in ``MG_EV_READ`` (``data`` = number of bytes just received) call
    :meth:`recv_data` to get what is buffered. On a plain TCP/UDP connection the
    buffered bytes are consumed automatically when the handler returns, so each
    ``MG_EV_READ`` shows only data not seen before. For UDP, each ``MG_EV_READ`` is
    one datagram, and ``send()`` on a UDP listener replies to its sender.

    Sending is buffered: ``send``, ``reply``, ``reply_json``, ``http_chunk``,
    ``http_sse``, ``ws_send`` and ``http_basic_auth`` append to the send buffer
    (``send_len``/``send_data()`` show it until the next poll); the next poll
    writes it, one write per connection (a reply made in a handler leaves in
    that same poll, right after the read that brought the request). UDP
    ``send()`` is one datagram, sent at once.

    Thread safety: every method may be called from any thread. Called while
    another thread polls, it runs while that thread waits (never during a
    dispatch), takes effect at the next poll and ends the wait so that this
    comes at once.
    """

    @property
    def id(self) -> int: ...
    @property
    def handler(self) -> Optional[EventHandler]:
        """This connection's own handler (None: the manager's default is used).
        Accepted connections start with their listener's handler."""
    def set_handler(self, fn: Optional[EventHandler]) -> None: ...
    # MQTT. Each queues one packet (sent at the next poll). On a listener each
    # does nothing and returns 0 / None; on a closed connection each raises
    # RuntimeError("connection is closed"). TypeError for wrong types,
    # ValueError for a bad topic / filter, QoS outside 0..2, properties on a
    # 3.1.1 connection. RuntimeError when the in-flight window is full.
    def mqtt_pub(self, topic: str, message: Data, qos: int = 0, retain: bool = False, *,
                 properties: Optional[List[MqttProperty]] = None) -> int:
        """PUBLISH. 0 for QoS 0, else the packet id (1..65535, never one still
        in flight); the message is kept until acknowledged. Also on accepted
        mqtt_listen() connections, to route messages."""
    def mqtt_sub(self, topic: str, qos: int = 0, *,
                 properties: Optional[List[MqttProperty]] = None) -> int:
        """SUBSCRIBE one filter; returns the packet id (its SUBACK comes as
        MG_EV_MQTT_CMD)."""
    def mqtt_unsub(self, topic: str, *, properties: Optional[List[MqttProperty]] = None) -> int:
        """UNSUBSCRIBE one filter; returns the packet id."""
    def mqtt_ping(self) -> None:
        """PINGREQ (the client also sends them by itself at the keep-alive)."""
    def mqtt_pong(self) -> None:
        """PINGRESP."""
    def mqtt_pingresp(self) -> None:
        """PINGRESP, the same as mqtt_pong()."""
    def mqtt_disconnect(self, reason: int = 0, *,
                        properties: Optional[List[MqttProperty]] = None) -> None:
        """DISCONNECT (v5: with reason code) and nothing else: the peer closes."""
    def mqtt_connack(self, code: int = 0, session_present: bool = False, *,
                     properties: Optional[List[MqttProperty]] = None) -> None:
        """CONNACK on an accepted mqtt_listen() connection (3.1.1 codes 0..5)."""
    def mqtt_suback(self, packet_id: int, codes: List[int], *,
                    properties: Optional[List[MqttProperty]] = None) -> None:
        """SUBACK: one code (granted QoS, or 0x80 refused) per filter."""
    def mqtt_unsuback(self, packet_id: int, codes: List[int] = ..., *,
                      properties: Optional[List[MqttProperty]] = None) -> None:
        """UNSUBACK (v5: one reason code per filter; 3.1.1: none)."""
    def sntp_request(self) -> None:
        """Send another SNTP request on a connection from
        :meth:`Manager.sntp_connect`; the answer arrives as ``MG_EV_SNTP_TIME``
        (``data``: int epoch milliseconds). Made before the connection is ready,
        it is answered by the request sent then (not dropped). Raises
        RuntimeError on a closed connection or one that is not SNTP."""
    def resolve(self, url: str) -> None:
        """Look up a bare name or a URL's host (port from the URL, else the
        scheme's default; 0 for a bare name) without touching this connection's
        socket (a listener keeps listening). ``MG_EV_RESOLVE`` (``data`` None)
        follows with ``remote_addr`` set to the first address, or
        ``MG_EV_ERROR`` with the reason ("x.test: name not found", "x.test: DNS
        timeout after 2 attempts") and then close. Names under ``.invalid`` fail
        at once (RFC 6761). The hosts file, then the manager's cache, then the
        name servers (see :meth:`Manager.set_dns`). A second call replaces the
        first. TypeError for a non-str, ValueError for an empty or malformed
        name or URL, RuntimeError on a closed connection."""
    def resolve_cancel(self) -> None:
        """Stop a :meth:`resolve` in progress: no event comes from it later.
        Harmless when none is. RuntimeError on a closed connection."""
    userdata: Any
    """Any object you want to attach to the connection."""
    @property
    def is_listening(self) -> bool: ...
    @property
    def is_closing(self) -> bool: ...
    @property
    def is_client(self) -> bool: ...
    @property
    def is_tls(self) -> bool:
        """True on a TLS connection, and on a TLS listener (https://, wss://,
        tls://, or one given options) and its accepted connections from
        MG_EV_ACCEPT on."""
    @property
    def is_udp(self) -> bool: ...
    @property
    def is_websocket(self) -> bool: ...
    @property
    def is_readable(self) -> bool: ...
    @property
    def is_writable(self) -> bool: ...
    @property
    def is_full(self) -> bool:
        """The receive buffer is at its limit; reading pauses until it is consumed."""
    @property
    def is_draining(self) -> bool: ...
    @property
    def is_read_paused(self) -> bool:
        """pause_reading() is in force."""
    @property
    def local_addr(self) -> Optional[Tuple[str, int, bool]]:
        """``(ip, port, is_ipv6)``, or None when not known (yet)."""
    @property
    def remote_addr(self) -> Optional[Tuple[str, int, bool]]:
        """``(ip, port, is_ipv6)`` of the peer (for a UDP listener: the last sender)."""
    @property
    def recv_len(self) -> int: ...
    @property
    def send_len(self) -> int: ...
    @property
    def recv_size(self) -> int: ...
    @property
    def send_size(self) -> int: ...
    def send(self, data: Union[BytesLike, str]) -> None:
        """Queue data for sending (copied; ``str`` is encoded as UTF-8); it is
        written at the next poll (or right after the current read event). Raises RuntimeError if the connection is
        closing or the send buffer limit would be passed, TypeError for other types."""
    def recv_data(self, length: int = -1) -> bytes:
        """The first ``length`` bytes of the receive buffer (all with -1), not consumed."""
    def send_data(self, length: int = -1) -> bytes:
        """The first ``length`` bytes waiting to be sent (all with -1), not consumed."""
    def error(self, message: str) -> None:
        """Deliver ``MG_EV_ERROR`` with ``message`` now, then close the connection."""
    def close(self) -> None:
        """Close at the end of this poll iteration, discarding unsent data.
        ``MG_EV_CLOSE`` follows once."""
    def drain(self) -> None:
        """Stop reading, send everything queued, then close."""
    def pause_reading(self) -> None:
        """Read nothing more from the socket until resume_reading() (the peer is
        then held by TCP flow control); bytes already received may still be
        delivered. Any thread; a no-op on a closed connection; RuntimeError on
        a listener."""
    def resume_reading(self) -> None:
        """Read again after pause_reading(). Any thread; a no-op when closed."""
    def http_stream_body(self) -> None:
        """Only in MG_EV_HTTP_HDRS of a request on a server connection
        (RuntimeError otherwise): the body is not buffered but handed over as
        MG_EV_READ events whose data is the piece's length n (read the piece
        with ``recv_data(n)`` during the event; it is discarded afterwards),
        then MG_EV_HTTP_MSG with an empty body. No body limit applies; use
        pause_reading() while you cannot take more."""
    # ---- TLS ----
    def tls_init(self, opts: TlsOpts) -> None:
        """Start TLS on this connection with ``opts``; on a listener, set the
        options every connection it accepts gets. On an accepted connection call
        it in MG_EV_ACCEPT (a TLS listener's connection with no certificate by the
        end of ACCEPT fails with MG_EV_ERROR "no certificate"); on a client, by
        MG_EV_CONNECT (else the defaults: verify against the system store, the
        URL's host as SNI and name). MG_EV_TLS_HS follows the handshake; data
        sent before it goes out after it. Bad material (truncated, a key that
        does not match) never raises: it is MG_EV_ERROR with OpenSSL's reason on
        this connection, or on a listener logged and the reason of each accepted
        connection's failed handshake. TypeError for a non-TlsOpts;
        RuntimeError on a closed connection."""
    def tls_free(self) -> None:
        """Drop this connection's TLS options before its handshake (then
        :meth:`tls_init` may be called again); on a listener, the options its
        connections inherit. After the handshake it closes the connection."""
    # ---- HTTP (connections made by an http:// listener or connect, or http=True) ----
    def reply(self, status_code: int, body: Data = b"",
              headers: Optional[Mapping[str, Any]] = None) -> None:
        """Send a complete response. ``Content-Type: text/plain`` is added unless
        ``headers`` has one; Date, Content-Length and, when the connection will
        close, ``Connection: close`` are added by the library. A reply to HEAD
        has no body. RuntimeError on a connection that is not an HTTP server
        connection or is closing; ValueError for a status outside 100..999.
        Headers are checked first, whatever the connection's state and before
        anything is queued (names and values go through ``str()``): a CR, LF or
        NUL raises ``ValueError("Header name contains illegal character (CR, LF,
        or NUL): 'NAME'")`` (``Header value ...`` for a value; the text is the
        repr()); another name that is not a token uses the same wording."""
    def reply_json(self, data: Any, status_code: int = 200,
                   headers: Optional[Mapping[str, Any]] = None) -> None:
        """``reply()`` with ``json.dumps(data)`` and ``Content-Type: application/json``."""
    def serve_dir(self, message: HttpMessage, root_dir: Union[str, "os.PathLike[str]"],
                  extra_headers: str = "", mime_types: str = "", page404: str = "") -> None:
        """Answer ``message`` (the current event's) from files under ``root_dir``:
        GET/HEAD (405 otherwise), index.html, Range (206/416), ETag and
        Last-Modified (304), MIME types by extension (``mime_types`` overrides,
        "ext=type,ext2=type2"), ``.gz`` siblings. Paths never leave the root
        (404/403). ``extra_headers`` are header lines added to the reply (the
        final CRLF is optional); ``page404`` is a file sent with 404 answers.
        Large files are sent as the socket drains, not read into memory."""
    def serve_file(self, message: HttpMessage, path: Union[str, "os.PathLike[str]"],
                   extra_headers: str = "", mime_types: str = "") -> None:
        """Answer with one file, with the same range, conditional and MIME
        handling; 404 when it cannot be opened."""
    def http_chunk(self, data: Data) -> None:
        """One piece of a chunked body; empty data ends it. On a server, the first
        call starts a ``200`` chunked reply if none was started. If you wrote the
        head yourself with ``send()`` (``Transfer-Encoding: chunked``), the data is
        only framed as a chunk; likewise on a client sending a chunked body."""
    def http_sse(self, event_type: Optional[str], data: Data) -> None:
        """One Server-Sent Event (``event:`` line unless event_type is empty/None,
        one ``data:`` line per line of data) as a chunk. The first call on a
        server starts the reply with ``Content-Type: text/event-stream``. End the
        stream with ``http_chunk(b"")`` or by closing."""
    def http_respond(
        self,
        status_code: int,
        headers: Union[Mapping[str, Any], Sequence[Tuple[str, str]], None] = None,
        body: Optional[Data] = None,
        length: Optional[int] = None,
    ) -> None:
        """Answer the current request with exactly ``headers`` (a mapping, or
        (name, value) pairs whose order and repeats are kept; checked as for
        :meth:`reply`, no default Content-Type). Date, the framing header and
        ``Connection: close`` when due are added. With ``body``: the complete
        reply with its Content-Length. Without: a streamed reply whose pieces
        follow through :meth:`http_chunk`: chunked (``http_chunk(b"")`` ends it),
        or with ``length``, a body of that Content-Length, complete with its last
        byte (a piece beyond it raises; a body cut short must be ended with
        ``close()``). Pipelined requests wait until the reply is complete. For
        HEAD, 204 and 304 only the head goes out. Any thread. RuntimeError when
        the request already has an answer under way or on another connection."""
    def http_set_limits(self, max_head: int = 0, max_headers: int = 0, max_body: int = 0) -> None:
        """The HTTP layer's limits (0 keeps a value): head size (431 beyond),
        header count (431), buffered body size (413, decided from Content-Length
        before the body is read, or as chunks add up). On a listener, for the
        connections it accepts from then on."""
    def http_basic_auth(self, username: str, password: str) -> None:
        """Client side: write an ``Authorization: Basic ...`` header line, while
        composing a request with ``send()``."""
    # ---- WebSocket ----
    def ws_upgrade(self, message: HttpMessage,
                   extra_headers: Union[Mapping[str, Any], str, None] = None) -> bool:
        """In ``MG_EV_HTTP_MSG`` on a server connection: answer ``message`` (the
        current event's) with ``101 Switching Protocols`` and switch the connection
        to WebSocket. ``MG_EV_WS_OPEN`` is delivered before this returns; from then
        on only WebSocket events follow. ``extra_headers`` are added to the 101
        (a dict as for ``reply()``, or header lines as a str, the final CRLF
        optional), e.g. ``{"Sec-WebSocket-Protocol": "chat"}``.

        Returns False when the request is not a valid upgrade request: it was
        answered ``400`` (``426`` for another protocol version) and the connection
        closes after it. RuntimeError if the connection is not an HTTP server
        connection in ``MG_EV_HTTP_MSG`` with nothing sent yet for the request;
        TypeError/RuntimeError for a message that is not the current event's."""
    def ws_send(self, data: Data, op: int = ...) -> bool:
        """Send one WebSocket message (``op`` WEBSOCKET_OP_TEXT, the default, or
        WEBSOCKET_OP_BINARY) or control frame (WEBSOCKET_OP_PING, _PONG, or 8 for
        close: empty, or a 2-byte code and a reason). Data is copied; ``str`` is
        sent as UTF-8. Text must be valid UTF-8: ``bytes`` that are not raise
        ValueError, as do control payloads over 125 bytes, an unknown ``op`` and
        a close code that may not be sent.

        Returns True when the frame is queued, False when the WebSocket is ending
        (a close frame was sent or received, or the connection is closing), so a
        broadcast over ``Manager.connections`` never fails on a peer that is
        leaving. On a client whose handshake is still under way, frames are held
        and sent, in order, when ``MG_EV_WS_OPEN`` arrives (up to 64 MiB).
        RuntimeError on a connection that is not a WebSocket or when the send
        buffer limit would be passed."""

class Timer:
    """Returned by :meth:`Manager.timer_add`. The manager keeps a reference to every
    live timer, so discarding the object is safe."""

    @property
    def active(self) -> bool:
        """True until the timer is cancelled, has fired (one-shot) or its manager closed."""
    def cancel(self) -> None:
        """Stop the timer. Thread-safe: ``active`` turns False at once and the
        callback is not called again; off the poll thread, the timer is removed
        from the loop at the start of the next poll."""

class MqttClientInfo(Tuple[str, Optional[str], Optional[bytes], str,
                           Optional[Tuple[str, int, bool]], int]):
    """Who is connecting or acting, as the MqttBroker hooks see it (a named tuple)."""
    n_fields: int
    n_sequence_fields: int
    n_unnamed_fields: int
    def count(self, value: Any) -> int: ...
    def index(self, value: Any, start: int = ..., stop: int = ...) -> int: ...
    @property
    def client_id(self) -> str:
        """The client identifier (the assigned one when the client sent none)."""
    @property
    def username(self) -> Optional[str]:
        """The CONNECT user name, None when absent."""
    @property
    def password(self) -> Optional[bytes]:
        """The CONNECT password, None when absent."""
    @property
    def cert_subject(self) -> str:
        """The TLS client certificate's subject ('' without one)."""
    @property
    def remote_addr(self) -> Optional[Tuple[str, int, bool]]:
        """(ip, port, is_ipv6) of the client."""
    @property
    def version(self) -> int:
        """4 (MQTT 3.1.1) or 5."""

class MqttBridge:
    """A link from an MqttBroker to an upstream broker (:meth:`MqttBroker.bridge`):
    reconnects with exponential back-off; QoS 1/2 kept until the upstream
    acknowledges; messages never loop."""
    @property
    def connected(self) -> bool:
        """Whether the upstream accepted our CONNECT (False once closed)."""
    def close(self) -> None:
        """Disconnect and stop (idempotent; also done by the broker's close())."""

class MqttBroker:
    """An MQTT broker made by :meth:`Manager.mqtt_broker`. It runs while its
    Manager does, whether or not the program keeps a reference; ``close()`` or
    ``Manager.close()`` ends it (persistent sessions stay in the persistence
    file; no wills are published for a shutdown). Every method is safe from any
    thread; a context manager closes it."""
    @property
    def listeners(self) -> Tuple[Connection, ...]:
        """The live listener Connections."""
    @property
    def closed(self) -> bool: ...
    def listen(self, url: str, tls: Optional[TlsOpts] = None) -> Connection:
        """Another listener: ``mqtt://`` (1883), ``mqtts://`` (8883, needs ``tls``),
        ``ws://HOST:PORT[/PATH]`` or ``wss://`` (MQTT over WebSocket, subprotocol
        ``mqtt``). A CA in ``tls`` asks clients for certificates (the hooks see the
        subject). ``RuntimeError("Failed to listen on '<url>': ...")`` on failure."""
    def publish(self, topic: str, message: Data, qos: int = 0, retain: bool = False,
                properties: Optional[List[MqttProperty]] = None) -> None:
        """Route a message as if a client had published it (retained when asked; an
        empty retained payload clears the topic). ValueError for a bad topic, QoS or
        a property not allowed in PUBLISH."""
    def watch(self, filter: str, callback: Callable[[MqttMessage], Any]) -> int:
        """``callback(MqttMessage)`` for every message the broker routes whose topic
        matches ``filter`` (from clients, wills, :meth:`publish`), the PUBLISH as
        received; retained ones are not replayed. Exceptions in it are reported,
        not propagated. Returns an id for :meth:`unwatch`."""
    def unwatch(self, id: int) -> None:
        """End a watch; KeyError if there is none with that id."""
    def bridge(self, url: str, topics: List[Tuple[str, str, int]], *, client_id: str = "",
               username: str = "", password: str = "", version: int = 5, keepalive: int = 60,
               tls: Optional[TlsOpts] = None, backoff_min_ms: int = 0,
               backoff_max_ms: int = 0) -> MqttBridge:
        """Connect to an upstream broker and forward ``topics``: (filter, "in" |
        "out" | "both", qos) each. Back-off defaults: 1 s to 60 s."""
    def stats(self) -> Dict[str, int]:
        """clients, sessions, subscriptions, retained, queued, msgs_in, msgs_out,
        bytes_in, bytes_out, dropped."""
    def close(self) -> None:
        """Close listeners and clients, flush the persistence file, free (idempotent).
        RuntimeError from inside the broker's own hooks or callbacks."""
    def __enter__(self) -> "MqttBroker": ...
    def __exit__(self, *exc: Any) -> bool: ...

class Manager:
    """The event loop: owns connections and timers, driven by :meth:`poll`.

    ``handler(conn, ev, data)`` is the default for connections that have none.
    If a handler or timer callback raises an ``Exception``, it is passed to
    ``error_handler(exc)`` (default: the traceback is printed) and the loop goes
    on; an exception raised by ``error_handler`` is printed and swallowed.
    ``KeyboardInterrupt``/``SystemExit`` raised in a callback end the current
    ``poll()`` and propagate from it.
    """

    def __init__(
        self,
        handler: Optional[EventHandler] = None,
        enable_wakeup: bool = False,
        error_handler: Optional[Callable[[Exception], Any]] = None,
        *,
        send_stall_ms: Optional[int] = None,
        poll_events: bool = True,
        dns: Optional[str] = None,
    ) -> None:
        """``send_stall_ms``: a connection whose peer takes none of its pending
        output for that long gets MG_EV_ERROR ("send stalled for N ms") and is
        closed; None keeps the default of 60000, 0 disables it.
        ``poll_events=False`` turns ``MG_EV_POLL`` off (it otherwise reaches
        every connection's handler at every poll, listeners included).
        ``dns``: name servers to use instead of /etc/resolv.conf's, as in
        :meth:`set_dns` (ValueError if malformed)."""
    def set_dns(
        self,
        servers: Optional[str],
        *,
        timeout_ms: Optional[int] = None,
        attempts: Optional[int] = None,
        resolv_conf: Optional[str] = None,
        hosts_file: Optional[str] = None,
    ) -> None:
        """Configure the resolver behind connects by name and
        :meth:`Connection.resolve`. ``servers``: up to three ``"udp://IP:PORT"``
        (or bare IPs, port 53), comma-separated; None goes back to the
        resolv.conf's. ``timeout_ms`` per attempt and ``attempts`` per server
        override resolv.conf's (default 5000 and 2). ``resolv_conf`` and
        ``hosts_file``: paths read instead of /etc/resolv.conf and /etc/hosts
        (re-read when they change). Keywords left None are unchanged. ValueError
        for malformed servers or a non-positive number, TypeError for a wrong
        type, RuntimeError on a closed manager."""
    def __enter__(self) -> "Manager": ...
    def __exit__(self, *exc: Any) -> bool: ...
    def poll(self, timeout_ms: int = 0) -> None:
        """Write what was queued, wait up to ``timeout_ms`` for I/O or the next
        timer (the GIL is released while waiting; calls from other threads then
        run and end the wait), then run the handlers (with the GIL). Raises
        RuntimeError if the manager is closed, and RuntimeError containing "not
        reentrant" if called from a handler or while another thread polls."""
    def listen(
        self,
        url: str,
        handler: Optional[EventHandler] = None,
        *,
        http: Optional[bool] = None,
        tls: Optional[TlsOpts] = None,
        reuse_port: bool = False,
    ) -> Connection:
        """Listen on ``http://``, ``https://``, ``ws://``, ``wss://``, ``tcp://``,
        ``tls://`` or ``udp://HOST:PORT`` (IPv6
        as ``tcp://[::1]:0``). Port 0 lets the OS choose: read it from
        ``listener.local_addr[1]``. Raises RuntimeError on failure.

        ``http`` is inferred from the scheme: ``http://`` and ``ws://`` serve HTTP
        (requests arrive as MG_EV_HTTP_HDRS/MG_EV_HTTP_MSG; a WebSocket server
        calls ``conn.ws_upgrade(data)`` in MG_EV_HTTP_MSG, on either scheme);
        ``http=False`` uses the address for raw TCP; ``http=True`` on ``tcp://``
        attaches HTTP. ``mqtt://`` and ``mqtts://`` are the parser-level MQTT
        listener of :meth:`mqtt_listen`; other schemes libcymg knows are plain
        TCP with their default port; ``sntp://`` is UDP. Every failure raises
        ``RuntimeError("Failed to listen on '<url>': <reason>")``: an unknown
        scheme (``invalid://``), a malformed URL, a busy port.

        ``https://``, ``wss://`` and ``tls://`` listeners are TLS: give the
        certificate once with ``tls=TlsOpts(cert=..., key=...)`` (accepted
        connections inherit it) or per connection with ``conn.tls_init()`` in
        MG_EV_ACCEPT. ``tls=`` on another scheme makes it TLS too. A non-TlsOpts
        ``tls`` raises TypeError; bad material is logged, not raised (see
        :meth:`Connection.tls_init`).

        ``reuse_port=True`` sets SO_REUSEPORT before bind, so several Managers
        (threads or processes, same user) can listen on one address and the
        kernel spreads connections (UDP datagrams: by sender) over them; every
        listener on the port must ask for it, else the bind fails with
        ``RuntimeError("... bind: Address already in use")``. It applies to
        ``tcp://``, ``tls://``, ``udp://``, ``http(s)://`` and ``ws(s)://``
        (``http=`` as usual); ``mqtt://``/``mqtts://`` raise ValueError (an MQTT
        listener's sessions are one process's). Not a bool: TypeError."""
    def connect(
        self,
        url: str,
        handler: Optional[EventHandler] = None,
        *,
        http: Optional[bool] = None,
        tls: Optional[TlsOpts] = None,
    ) -> Connection:
        """Start an outbound ``http://``, ``https://``, ``tcp://``, ``tls://`` or
        ``udp://`` connection and return at once (``ws://`` is the same as
        :meth:`ws_connect`). TLS clients verify the server against the system
        store with the URL's host unless ``tls=`` (or ``tls_init`` by
        MG_EV_CONNECT) gives other options; a failed verification is
        MG_EV_ERROR with OpenSSL's reason. Failures here
        raise ``RuntimeError("Failed to connect to '<url>': <reason>")`` (schemes
        as for listen()); failures later
        (refused, unreachable) arrive as ``MG_EV_ERROR`` then ``MG_EV_CLOSE``.
        ``http`` as for listen(): on an HTTP connection, write the request with
        ``send()`` (at MG_EV_CONNECT or at once) and the response arrives as
        MG_EV_HTTP_MSG (``data.status()``, ``data.body_bytes``)."""
    def ws_connect(
        self, url: str, handler: Optional[EventHandler] = None, *, tls: Optional[TlsOpts] = None
    ) -> Connection:
        """Start an outbound WebSocket connection to ``ws://HOST:PORT/PATH`` or
        ``wss://`` (TLS, verified as for :meth:`connect`; ``tls=`` as there) and
        return at once. The upgrade request is sent on connect; when the 101
        answer checks out the handler gets ``MG_EV_WS_OPEN`` (``data``: the 101
        response as an HttpMessage), then MG_EV_WS_MSG / MG_EV_WS_CTL. A refused
        or malformed handshake arrives as ``MG_EV_ERROR`` (saying what was wrong),
        then ``MG_EV_CLOSE``. ``ws_send()`` before MG_EV_WS_OPEN is held until it.
        Failures here raise ``RuntimeError("Failed to connect to '<url>': ...")``:
        another scheme, a malformed URL."""
    def mqtt_connect(
        self,
        url: str,
        handler: Optional[EventHandler] = None,
        client_id: str = "",
        username: str = "",
        password: str = "",
        clean_session: bool = True,
        keepalive: int = 60,
        *,
        version: int = 4,
        will_topic: str = "",
        will_message: Data = b"",
        will_qos: int = 0,
        will_retain: bool = False,
        will_properties: Optional[List[MqttProperty]] = None,
        properties: Optional[List[MqttProperty]] = None,
        session_expiry: int = 0,
    ) -> Connection:
        """An MQTT client on ``mqtt://HOST[:1883]``, ``mqtts://HOST[:8883]``,
        ``ws://`` or ``wss://`` (MQTT over WebSocket). CONNECT is queued at once
        (3.1.1, or 5.0 with ``version=5``; an empty ``client_id`` becomes a random
        one; a will when ``will_topic`` is set). Then ``MG_EV_MQTT_OPEN`` once
        (``data``: the CONNACK code, non-zero: refused, the connection closes),
        ``MG_EV_MQTT_MSG`` per PUBLISH received, ``MG_EV_MQTT_CMD`` per packet.
        PINGREQ goes out every ``keepalive`` seconds (0: never); no answer within
        another interval gives MG_EV_ERROR "keep-alive timeout". With
        ``clean_session=False`` and a client id, what the broker had not
        acknowledged when the connection closed is resent (DUP) by the next
        such connect to the same URL with that id. ``properties``
        (CONNECT) and ``will_properties`` need version 5. ValueError for a
        keepalive outside 0..65535, another version, will_qos outside 0..2;
        ``RuntimeError("Failed to connect to '<url>': ...")`` otherwise."""
    def mqtt_listen(self, url: str, handler: Optional[EventHandler] = None) -> Connection:
        """A parser-level MQTT listener (``mqtt://`` or ``mqtts://``; the same as
        ``listen("mqtt://...")``): accepted connections deliver MG_EV_MQTT_MSG and
        MG_EV_MQTT_CMD and answer only the QoS flow (PUBACK, PUBREC, PUBCOMP):
        CONNACK, SUBACK, UNSUBACK and PINGRESP are the program's to send
        (:meth:`Connection.mqtt_connack` ...). Malformed input, a packet before
        CONNECT or a second CONNECT: MG_EV_ERROR, then that connection closes."""
    def mqtt_broker(
        self,
        url: Optional[str] = None,
        *,
        tls: Optional[TlsOpts] = None,
        persist: Optional[Union[str, "os.PathLike[str]"]] = None,
        auth: Optional[Callable[["MqttClientInfo"], Union[bool, int]]] = None,
        acl: Optional[Callable[["MqttClientInfo", str, str, int, bool], Union[bool, int]]] = None,
        handler: Optional[EventHandler] = None,
        max_connections: int = 0,
        max_packet: int = 0,
        max_subs: int = 0,
        max_queued: int = 0,
        max_queued_bytes: int = 0,
        max_retained: int = 0,
        max_session_expiry: int = 0,
        receive_max: int = 0,
        topic_alias_max: int = 0,
        max_keepalive: int = 0,
        max_qos: int = 2,
        retain: bool = True,
        wildcard: bool = True,
        shared: bool = True,
        sub_ids: bool = True,
        disconnect_on_full: bool = False,
    ) -> "MqttBroker":
        """An MQTT 3.1.1 / 5.0 broker on this loop (see :class:`MqttBroker`), listening
        on ``url`` at once when given (``tls=`` for that listener; ``mqtts://`` and
        ``wss://`` need it). ``persist``: a file keeping retained messages and
        persistent sessions across restarts (one that cannot be loaded raises
        RuntimeError with the reason). ``auth(info)`` and ``acl(info, action, topic,
        qos, retain)`` (action ``"publish"`` or ``"subscribe"``) return True, False
        or a reason code (0x80..0xFF); False from auth is 0x86 "bad user name or
        password" (3.1.1: 4), from acl 0x87 "not authorized"; a hook that raises or
        returns anything else refuses with 0x87, the exception reported like a
        handler's. ``handler(conn, ev, data)`` sees the events of the broker's
        connections after the broker handled them (logging: do not send on them).
        Limits (0: the library's default): connections (beyond: CONNACK 0x97 /
        3.1.1: 3), packet size (1 MiB), subscriptions per client (1000), messages
        (1000) and bytes (16 MiB) queued per session, retained messages (100,000),
        session expiry cap, receive maximum (64), topic aliases (64), server
        keep-alive; ``max_qos`` caps granted QoS; ``retain``, ``wildcard``,
        ``shared``, ``sub_ids`` False turn those features off; a full session queue
        drops the new message unless ``disconnect_on_full``. ValueError/TypeError
        for bad options; the hooks run on the polling thread with the GIL."""
    def sntp_connect(self, url: str, handler: Optional[EventHandler] = None) -> Connection:
        """Start an SNTP client on ``sntp://HOST`` (UDP port 123 unless given) or
        ``udp://HOST:PORT`` and return a UDP Connection (``is_udp`` True at once).
        The first request goes out by itself when the connection is ready; each
        checked reply gives ``MG_EV_SNTP_TIME`` with ``data`` an int of epoch
        milliseconds (the server's time plus half the round trip). Replies that
        fail the checks (mode, version, origin, length) are ignored; a
        kiss-of-death gives ``MG_EV_ERROR`` "SNTP kiss-of-death: CODE", no reply
        within 3 s ``MG_EV_ERROR`` "SNTP timeout", then ``MG_EV_CLOSE``. The
        connection stays open for :meth:`Connection.sntp_request`. Another scheme
        or a malformed URL raises ``RuntimeError("Failed to connect to ...")``."""
    def wakeup(self, connection_id: int, data: BytesLike = b"") -> bool:
        """Thread-safe: have ``MG_EV_WAKEUP`` with ``data`` (bytes-like, copied)
        delivered to the connection on the poll thread. Returns True once queued,
        False when it cannot be queued (wakeup not enabled, no connection with
        that id, the connection closed, queue limit reached, manager closing): a
        payload is never dropped silently (one queued for a connection that
        closes before delivery is counted as an orphan). ``str`` data raises
        TypeError; a closed manager raises RuntimeError."""
    def timer_add(
        self,
        milliseconds: int,
        callback: Callable[[], Any],
        *,
        repeat: bool = False,
        run_now: bool = False,
    ) -> Timer:
        """Call ``callback()`` after ``milliseconds`` (every ``milliseconds`` with
        ``repeat``; also at the next poll with ``run_now``). Any thread."""
    def run(self, poll_ms: int = 100) -> None:
        """Poll until SIGINT or SIGTERM, then ``close()``. Installs its own signal
        handlers with the ``signal`` module and restores the previous ones, so it
        must be called from the main thread (RuntimeError otherwise)."""
    @property
    def connections(self) -> Tuple[Connection, ...]:
        """Snapshot of the live connections, listeners included, oldest first."""
    @property
    def wakeup_id(self) -> int:
        """Id of the internal wakeup channel, or 0 if wakeup is not enabled."""
    @property
    def backend(self) -> str:
        """The I/O backend this manager runs on: "io_uring", "epoll", "kqueue",
        "poll" or "select" (CYMG_BACKEND when set, else the best that works here).
        RuntimeError once the manager is closed."""
    def _interrupt(self) -> bool:
        """From any thread: end a poll's wait in progress (or the next) with no
        event. False once closed. (AsyncManager's shutdown uses it.)"""
    def close(self) -> None:
        """Close every connection (each gets ``MG_EV_CLOSE``), end the timers and
        free the loop. Idempotent. Raises RuntimeError if ``poll()`` is running
        on another thread or if called from a handler."""
