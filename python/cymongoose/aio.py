"""asyncio integration: :class:`AsyncManager` runs a Manager's loop in a daemon
thread next to the asyncio loop.

The public behaviour is the one documented for ``cymongoose.AsyncManager``
(constructor, ``async with``, delegated methods, ``schedule``, the shutdown
sequence and its warnings). What differs, by design (docs/python-async.md):

- No lock is held across a poll. Manager and Connection methods are callable
  from any thread (the extension's call lock is released during the poll's
  blocking wait and a call made meanwhile interrupts it), so a call from the
  asyncio thread never waits for a poll to finish.
- ``schedule()`` returns the :class:`concurrent.futures.Future` and reports an
  exception of the scheduled work to ``error_handler`` (default: printed).
- Awaitable helpers: ``await connect_ready(url)`` and ``events(...)``, an async
  iterator over one connection's events.
"""

import asyncio
import collections
import concurrent.futures
import threading
import traceback
import warnings
from typing import Any, Callable, Optional, Tuple

from ._cymg import (
    MG_EV_CLOSE,
    MG_EV_CONNECT,
    MG_EV_ERROR,
    MG_EV_OPEN,
    MG_EV_POLL,
    MG_EV_READ,
    MG_EV_WS_OPEN,
    Connection,
    HttpMessage,
    Manager,
    MqttBroker,
    Timer,
    WsMessage,
)

__all__ = ["AsyncManager", "EventStream", "WsFrame"]

_NOT_STARTED = "AsyncManager is not started (use 'async with AsyncManager(...) as am')"


def _report(error_handler: Optional[Callable[[Exception], Any]], exc: BaseException) -> None:
    """Hands exc to error_handler, or prints it; never raises."""
    if error_handler is not None and isinstance(exc, Exception):
        try:
            error_handler(exc)
            return
        except Exception as inner:  # the handler's own failure must not be lost either
            exc = inner
    traceback.print_exception(type(exc), exc, exc.__traceback__)


class WsFrame(collections.namedtuple("WsFrame", "data flags")):
    """A WebSocket message or control frame kept past its handler (WsMessage
    views go stale when the handler returns): ``data`` bytes, ``flags`` the
    frame's first byte (opcode in the low 4 bits)."""

    __slots__ = ()

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    @property
    def op(self) -> int:
        return self.flags & 0x0F


def _keep(conn: Connection, ev: int, data: Any, raw: bool) -> Any:
    """Event data that stays valid after the handler returns."""
    if isinstance(data, HttpMessage):
        return data.copy() if data else None
    if isinstance(data, WsMessage):
        return WsFrame(data.data, data.flags)
    if ev == MG_EV_READ and raw:
        return conn.recv_data()  # plain TCP/UDP: the bytes (consumed when the handler returns)
    return data


class EventStream:
    """The events of one connection, as an async iterator of ``(ev, data)``.

    Made by :meth:`AsyncManager.events`. Message views are copied
    (``HttpMessage.copy()``, :class:`WsFrame`), ``MG_EV_READ`` on a
    ``tcp://``/``udp://`` connection carries the bytes read, ``MG_EV_OPEN``
    (delivered inside the call that opened it) and ``MG_EV_POLL`` are left out. Iteration ends after ``MG_EV_CLOSE`` (which is yielded). The queue is bounded by ``max_events``: a consumer that
    falls that far behind gets the connection closed with ``MG_EV_ERROR``
    ("event stream overflow"), rather than memory growing without limit.
    """

    def __init__(self, am: "AsyncManager", max_events: int) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self._loop = am._require_loop()
        self._max = max_events
        self._items: "collections.deque[Tuple[int, Any]]" = collections.deque()
        self._lock = threading.Lock()
        self._waiter: Optional[asyncio.Future] = None
        self._overflow = False
        self._closed = False
        self.conn: Optional[Connection] = None
        self.raw = False  # MG_EV_READ gives bytes (plain TCP/UDP, no protocol layer)

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def handler(self, conn: Connection, ev: int, data: Any) -> None:
        """The connection's event handler (runs on the poll thread)."""
        if ev == MG_EV_POLL or ev == MG_EV_OPEN or self._closed:
            return
        overflow = False
        with self._lock:
            if len(self._items) >= self._max and ev not in (MG_EV_ERROR, MG_EV_CLOSE):
                overflow = not self._overflow
                self._overflow = True
            else:
                self._items.append((ev, _keep(conn, ev, data, self.raw)))
        if overflow:  # outside the lock: error() delivers MG_EV_ERROR here at once
            conn.error("event stream overflow: the consumer fell %d events behind" % self._max)
            return
        if ev == MG_EV_CLOSE:
            self._closed = True
        self._loop.call_soon_threadsafe(self._wake)

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> Tuple[int, Any]:
        while True:
            with self._lock:
                if self._items:
                    item = self._items.popleft()
                    if item[0] == MG_EV_CLOSE:
                        self._items.clear()
                        self._items.append((-1, None))  # the end marker for later calls
                    if item[0] == -1:
                        self._items.append(item)
                        raise StopAsyncIteration
                    return item
                self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class AsyncManager:
    """Asyncio-compatible wrapper around Manager.

    Runs the event loop in a daemon thread; ``poll()`` releases the GIL while it
    waits, so the asyncio loop runs meanwhile. Usage::

        async with AsyncManager(handler) as am:
            am.listen("http://0.0.0.0:8080")
            ...
    """

    _MAX_POLL_MS = 200  # one wait's cap, so a stop is seen even if its wakeup were lost
    _JOIN_INTERVAL = 5.0  # seconds between shutdown retries (the documented sequence)

    def __init__(
        self,
        handler: Optional[Callable[..., Any]] = None,
        poll_interval: int = 100,
        error_handler: Optional[Callable[[Exception], Any]] = None,
        shutdown_timeout: float = 30,
    ) -> None:
        self._handler = handler
        self._poll_interval = poll_interval
        self._error_handler = error_handler
        self._shutdown_timeout = shutdown_timeout
        self._manager: Optional[Manager] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        # Kept for its documented meaning (serialises enter/exit); no call holds it
        # across a poll: the extension's own call lock does that job, per call.
        self._lock = threading.RLock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._wake_id: int = 0  # connection ID used to interrupt poll()

    # -- async context manager -----------------------------------------------

    async def __aenter__(self) -> "AsyncManager":
        with self._lock:
            if self._manager is not None:
                raise RuntimeError("AsyncManager is already started")
            self._loop = asyncio.get_running_loop()
            self._manager = Manager(
                self._handler, enable_wakeup=True, error_handler=self._error_handler
            )
            self._stop.clear()
            self._wake_id = self._manager.wakeup_id
            self._thread = threading.Thread(
                target=self._run, args=(self._manager,), name="cymongoose-poll", daemon=True
            )
            self._thread.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._stop.set()
        self._wake_poll()
        thread = self._thread
        if thread is not None:
            loop = asyncio.get_running_loop()
            elapsed = 0.0
            while thread.is_alive():
                step = max(0.0, min(self._JOIN_INTERVAL, self._shutdown_timeout - elapsed))
                await loop.run_in_executor(None, thread.join, step)
                elapsed += step
                if not thread.is_alive():
                    break
                if elapsed >= self._shutdown_timeout:
                    warnings.warn(
                        "AsyncManager poll thread did not stop within %ss; abandoning thread. "
                        "A handler is likely blocked." % self._shutdown_timeout,
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    break
                warnings.warn(
                    "AsyncManager poll thread has not stopped after %.0fs; a handler may be "
                    "blocking. Retrying shutdown..." % elapsed,
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._wake_poll()
            if not thread.is_alive():
                self._thread = None
        with self._lock:
            if self._manager is not None and self._thread is None:
                self._manager.close()
                self._manager = None
            self._loop = None

    # -- poll loop (runs in the background thread) ---------------------------

    def _run(self, mgr: Manager) -> None:
        timeout = max(0, min(self._poll_interval, self._MAX_POLL_MS))
        while not self._stop.is_set():
            try:
                mgr.poll(timeout)
            except Exception as e:  # a poll that fails keeps failing: report, stop
                _report(self._error_handler, e)
                break
            except BaseException as e:  # KeyboardInterrupt/SystemExit from a handler
                _report(None, e)
                return
        else:
            # One last pass: output queued before the stop (a reply made from the
            # asyncio thread just now) gets its write attempt before close().
            try:
                mgr.poll(0)
            except Exception as e:
                _report(self._error_handler, e)

    # -- internal helpers ----------------------------------------------------

    def _wake_poll(self) -> None:
        """Ends the poll thread's current wait (the wakeup channel) so it sees _stop."""
        mgr = self._manager
        if mgr is not None:
            # Not wakeup(self._wake_id): the channel's own id takes no payload here
            # (it has no handler to give it to); the interrupt is what is needed.
            mgr._interrupt()

    def _track_conn(self, conn: Connection) -> None:
        """Remember a connection ID for future _wake_poll() calls."""
        if self._wake_id == 0 and conn.id > 0:
            self._wake_id = conn.id

    def _require(self) -> Manager:
        mgr = self._manager
        if mgr is None:
            raise RuntimeError(_NOT_STARTED)
        return mgr

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None or self._manager is None:
            raise RuntimeError(_NOT_STARTED)
        return loop

    # -- delegated methods: straight calls (any thread, no wait for a poll) ----

    def listen(
        self,
        url: str,
        handler: Optional[Callable[..., Any]] = None,
        *,
        http: Optional[bool] = None,
        reuse_port: bool = False,
    ) -> Connection:
        conn = self._require().listen(url, handler=handler, http=http, reuse_port=reuse_port)
        self._track_conn(conn)
        return conn

    def connect(
        self, url: str, handler: Optional[Callable[..., Any]] = None, *, http: Optional[bool] = None
    ) -> Connection:
        conn = self._require().connect(url, handler=handler, http=http)
        self._track_conn(conn)
        return conn

    def _mqtt(self, name: str, url: str, **kwargs: Any) -> Connection:
        conn = getattr(self._require(), name)(url, **kwargs)
        self._track_conn(conn)
        return conn

    def mqtt_connect(self, url: str, **kwargs: Any) -> Connection:
        return self._mqtt("mqtt_connect", url, **kwargs)

    def mqtt_listen(self, url: str, handler: Optional[Callable[..., Any]] = None) -> Connection:
        return self._mqtt("mqtt_listen", url, handler=handler)

    def mqtt_broker(self, url: Optional[str] = None, **kwargs: Any) -> MqttBroker:
        """Manager.mqtt_broker() on this loop's manager: an MqttBroker whose methods
        are safe from the event loop's thread; its hooks, handler and watch
        callbacks run on the poll thread (hand results to asyncio with
        ``loop.call_soon_threadsafe``). Stopping the AsyncManager closes it."""
        return self._require().mqtt_broker(url, **kwargs)

    def sntp_connect(self, url: str, handler: Optional[Callable[..., Any]] = None) -> Connection:
        conn = self._require().sntp_connect(url, handler=handler)
        self._track_conn(conn)
        return conn

    def wakeup(self, connection_id: int, data: bytes = b"") -> bool:
        """Thread-safe: queues data for MG_EV_WAKEUP on that connection."""
        return self._require().wakeup(connection_id, data)

    def timer_add(
        self, ms: int, callback: Callable[..., Any], *, repeat: bool = False, run_now: bool = False
    ) -> Timer:
        return self._require().timer_add(ms, callback, repeat=repeat, run_now=run_now)

    # -- asyncio helpers -----------------------------------------------------

    def schedule(self, coro_or_callback: Any) -> "concurrent.futures.Future[Any]":
        """Runs a coroutine (or calls a callable) on the asyncio loop, from any
        thread (typically a handler on the poll thread). Returns a
        concurrent.futures.Future with the outcome; an exception is also
        reported to error_handler (default: printed), so it is never lost."""
        loop = self._require_loop()
        if asyncio.iscoroutine(coro_or_callback):
            fut = asyncio.run_coroutine_threadsafe(coro_or_callback, loop)
        elif callable(coro_or_callback):
            fut = concurrent.futures.Future()
            fn = coro_or_callback

            def call() -> None:
                if not fut.set_running_or_notify_cancel():
                    return
                try:
                    fut.set_result(fn())
                except BaseException as e:
                    fut.set_exception(e)

            loop.call_soon_threadsafe(call)
        else:
            raise TypeError(
                "schedule() takes a coroutine or a callable, not %s" % type(coro_or_callback).__name__
            )
        fut.add_done_callback(self._scheduled_done)
        return fut

    def _scheduled_done(self, fut: "concurrent.futures.Future[Any]") -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            _report(self._error_handler, exc)

    async def connect_ready(
        self,
        url: str,
        handler: Optional[Callable[..., Any]] = None,
        *,
        http: Optional[bool] = None,
        timeout: Optional[float] = None,
    ) -> Connection:
        """Connects and returns the Connection once it is usable: after
        MG_EV_CONNECT (MG_EV_WS_OPEN for ws:// URLs). Raises ConnectionError
        with the MG_EV_ERROR message when it fails first (then closes), and
        asyncio.TimeoutError after `timeout` seconds (the connection is closed).
        The handler (or the manager's) sees every event, these included."""
        loop = self._require_loop()
        ready: asyncio.Future = loop.create_future()
        want = MG_EV_WS_OPEN if url.lower().startswith("ws") else MG_EV_CONNECT
        user = handler if handler is not None else self._handler
        errors = []

        def settle(value: Any, exc: Optional[BaseException]) -> None:
            if ready.done():
                return
            if exc is not None:
                ready.set_exception(exc)
            else:
                ready.set_result(value)

        def wrapper(conn: Connection, ev: int, data: Any) -> None:
            # The user's handler runs first, so that the awaiting coroutine
            # resumes only after it has seen the event.
            if ev == MG_EV_ERROR:
                errors.append(str(data))
            try:
                if user is not None:
                    user(conn, ev, data)
            finally:
                if ev == want:
                    conn.set_handler(user)
                    loop.call_soon_threadsafe(settle, conn, None)
                elif ev == MG_EV_CLOSE:
                    why = errors[0] if errors else "connection closed before it was ready"
                    loop.call_soon_threadsafe(
                        settle, None, ConnectionError("connect to %r failed: %s" % (url, why))
                    )

        conn = self.connect(url, wrapper, http=http)
        try:
            return await asyncio.wait_for(asyncio.shield(ready), timeout)
        except BaseException:
            conn.close()
            raise

    def events(
        self,
        url: Optional[str] = None,
        *,
        conn: Optional[Connection] = None,
        http: Optional[bool] = None,
        max_events: int = 10000,
    ) -> EventStream:
        """An async iterator over one connection's events (see EventStream):
        either a new client connection to `url`, or an existing `conn`, whose
        handler it replaces. ``stream.conn`` is the Connection::

            stream = am.events("tcp://127.0.0.1:9000")
            stream.conn.send(b"hi")
            async for ev, data in stream:
                ...
        """
        if (url is None) == (conn is None):
            raise TypeError("events() takes a url or conn=, exactly one")
        stream = EventStream(self, max_events)
        target = url if url is not None else ""
        stream.raw = target.split("://", 1)[0].lower() in ("tcp", "udp") and not http
        if conn is None:
            conn = self.connect(url, stream.handler, http=http)
        else:
            conn.set_handler(stream.handler)
        stream.conn = conn
        return stream

    # -- properties ----------------------------------------------------------

    @property
    def manager(self) -> Manager:
        """The underlying Manager (RuntimeError "not started" outside the block)."""
        return self._require()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

