"""Type stubs for the cymongoose._cymg extension (re-exported by ``cymongoose``)."""

from typing import Any, Callable, Optional, Tuple, Union


EventHandler = Callable[["Connection", int, Any], Any]
"""``handler(conn, ev, data)``; see the MG_EV_* constants for what ``data`` is."""

BytesLike = Union[bytes, bytearray, memoryview]

__version__: str

# ---- events (handler's ``ev``); beside each, the ``data`` it carries ----
MG_EV_ERROR: int  # str: what went wrong; MG_EV_CLOSE follows
MG_EV_OPEN: int  # None: connection created (inside listen()/connect() or on accept)
MG_EV_POLL: int  # None
MG_EV_RESOLVE: int  # None: host name resolved, connecting
MG_EV_CONNECT: int  # None: outbound connection established
MG_EV_ACCEPT: int  # None: inbound connection accepted (after MG_EV_OPEN)
MG_EV_TLS_HS: int  # None
MG_EV_READ: int  # int: number of bytes just received (see Connection.recv_data)
MG_EV_WRITE: int  # None
MG_EV_CLOSE: int  # None: the last event of a connection
MG_EV_HTTP_HDRS: int
MG_EV_HTTP_MSG: int
MG_EV_WS_OPEN: int
MG_EV_WS_MSG: int
MG_EV_WS_CTL: int
MG_EV_MQTT_CMD: int
MG_EV_MQTT_MSG: int
MG_EV_MQTT_OPEN: int  # int: CONNACK return code
MG_EV_SNTP_TIME: int  # int: epoch milliseconds
MG_EV_WAKEUP: int  # bytes: the payload given to Manager.wakeup()
MG_EV_USER: int  # 100: first number free for applications

WEBSOCKET_OP_TEXT: int
WEBSOCKET_OP_BINARY: int
WEBSOCKET_OP_PING: int
WEBSOCKET_OP_PONG: int

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

def event_name(ev: int) -> str:
    """``"MG_EV_READ"``, ``"MG_EV_USER+3"`` or ``"MG_EV_UNKNOWN(77)"``."""

def log_set(level: int) -> None:
    """Set the library's (process-wide) log level, MG_LL_NONE..MG_LL_VERBOSE."""

def log_get() -> int:
    """The library's log level."""

class Connection:
    """One connection: a listener, an accepted or an outbound connection.

    Connections are made by :meth:`Manager.listen`, :meth:`Manager.connect` and by
    accepting; they cannot be instantiated directly. The same object is passed to
    every event of its connection. After ``MG_EV_CLOSE`` has been delivered the
    object is detached: methods raise ``RuntimeError("connection is closed")``,
    ``is_closing`` is True, the other flags are False, sizes are 0 and addresses
    are None.

    Reading: in ``MG_EV_READ`` (``data`` = number of bytes just received) call
    :meth:`recv_data` to get what is buffered. On a plain TCP/UDP connection the
    buffered bytes are consumed automatically when the handler returns, so each
    ``MG_EV_READ`` shows only data not seen before. For UDP, each ``MG_EV_READ`` is
    one datagram, and ``send()`` on a UDP listener replies to its sender.

    Thread safety: use a connection only on the thread that runs ``poll()``
    (normally from a handler). From other threads, pass ``conn.id`` and use
    :meth:`Manager.wakeup`.
    """

    @property
    def id(self) -> int: ...
    @property
    def handler(self) -> Optional[EventHandler]:
        """This connection's own handler (None: the manager's default is used).
        Accepted connections start with their listener's handler."""
    def set_handler(self, fn: Optional[EventHandler]) -> None: ...
    userdata: Any
    """Any object you want to attach to the connection."""
    @property
    def is_listening(self) -> bool: ...
    @property
    def is_closing(self) -> bool: ...
    @property
    def is_client(self) -> bool: ...
    @property
    def is_tls(self) -> bool: ...
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
        """Queue data for sending (copied; ``str`` is encoded as UTF-8). A small
        write usually leaves at once. Raises RuntimeError if the connection is
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
    ) -> None: ...
    def __enter__(self) -> "Manager": ...
    def __exit__(self, *exc: Any) -> bool: ...
    def poll(self, timeout_ms: int = 0) -> None:
        """Wait up to ``timeout_ms`` for I/O or the next timer (the GIL is released
        while waiting), then run the handlers (with the GIL). Raises RuntimeError if
        the manager is closed, if called from a handler, or if another thread is
        already polling."""
    def listen(
        self, url: str, handler: Optional[EventHandler] = None, *, http: Optional[bool] = None
    ) -> Connection:
        """Listen on ``tcp://HOST:PORT`` or ``udp://HOST:PORT`` (IPv6 as
        ``tcp://[::1]:0``). Port 0 lets the OS choose: read it from
        ``listener.local_addr[1]``. Raises RuntimeError on failure.

        This build has no HTTP layer yet: ``http=True`` and ``http://``/``ws://``
        URLs raise NotImplementedError (a RuntimeError), except that
        ``http=False`` uses an ``http://``/``ws://`` address for raw TCP."""
    def connect(
        self, url: str, handler: Optional[EventHandler] = None, *, http: Optional[bool] = None
    ) -> Connection:
        """Start an outbound ``tcp://`` or ``udp://`` connection and return at once.
        A malformed URL raises RuntimeError; failures later (refused, unreachable)
        arrive as ``MG_EV_ERROR`` then ``MG_EV_CLOSE``. ``http`` as for listen()."""
    def wakeup(self, connection_id: int, data: BytesLike = b"") -> bool:
        """Thread-safe: have ``MG_EV_WAKEUP`` with ``data`` (bytes-like, copied)
        delivered to the connection on the poll thread. Returns True once queued,
        False when it cannot be queued (wakeup not enabled, queue limit reached,
        manager closing): a payload is never dropped silently. ``str`` data raises
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
        ``repeat``; also at the next poll with ``run_now``). Poll thread only."""
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
    def close(self) -> None:
        """Close every connection (each gets ``MG_EV_CLOSE``), end the timers and
        free the loop. Idempotent. Raises RuntimeError if ``poll()`` is running
        on another thread or if called from a handler."""
