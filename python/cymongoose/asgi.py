"""An ASGI 3.0 server on cymongoose: Starlette, FastAPI or any ASGI app with the
``http``, ``websocket`` and ``lifespan`` scopes.

The event loop (an :class:`~cymongoose.aio.AsyncManager` poll thread) does the
I/O; the application runs on the asyncio loop that called :meth:`ASGIServer.start`.
Handlers on the poll thread turn events into work for the asyncio loop (one
``call_soon_threadsafe`` per batch, not per event); the application's ``send``
calls the Connection methods directly (they may be called from any thread).
Design notes, limits and what is not supported: docs/python-async.md.
"""

import asyncio
import collections
import signal
import struct
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote

from ._cymg import (
    MG_EV_CLOSE,
    MG_EV_HTTP_HDRS,
    MG_EV_HTTP_MSG,
    MG_EV_POLL,
    MG_EV_READ,
    MG_EV_WAKEUP,
    MG_EV_WRITE,
    MG_EV_WS_CTL,
    MG_EV_WS_MSG,
    WEBSOCKET_OP_BINARY,
    WEBSOCKET_OP_TEXT,
)
from .aio import AsyncManager, _report

__all__ = ["ASGIServer", "ClientDisconnected", "serve"]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
_WS_ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
_HIGH_WATER = 256 * 1024  # a response's send() waits while more than this is unsent...
_LOW_WATER = 64 * 1024  # ...until the socket has taken it down to this
_WS_MAX_QUEUED = 4096  # WebSocket messages the app has not received yet (then 1008)
_OP_CLOSE = 8
_BODY_PIECE = 256 * 1024  # a buffered body reaches the app in http.request messages of this size
_BODY_QUEUED = 256 * 1024  # a streamed body: reading pauses while more than this waits for the app
_STOP_TIMEOUT = 5.0


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone (ASGI: an OSError subclass)."""


class _Pairs:
    """Header pairs for Connection.ws_upgrade(): anything
    with items() is taken, so order, case and duplicates survive."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: List[Tuple[str, str]]) -> None:
        self.pairs = pairs

    def items(self) -> List[Tuple[str, str]]:
        return self.pairs


def _headers_out(headers: Any, drop: Tuple[bytes, ...] = ()) -> List[Tuple[str, str]]:
    out = []
    for name, value in headers:
        if isinstance(name, str):
            name = name.encode("latin-1")
        if isinstance(value, str):
            value = value.encode("latin-1")
        if name.lower() in drop:
            continue
        out.append((name.decode("latin-1"), value.decode("latin-1")))
    return out


def _scope_headers(msg: Any) -> List[Tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in msg.headers()]


class _Cycle:
    """What both scopes share: the connection, the posted disconnect, waiting."""

    __slots__ = ("server", "conn", "scope", "gone", "_waiter", "task")

    def __init__(self, server: "ASGIServer", conn: Any, scope: Dict[str, Any]) -> None:
        self.server = server
        self.conn = conn
        self.scope = scope
        self.gone = False
        self._waiter: Optional[asyncio.Future] = None
        self.task: Optional[asyncio.Task] = None

    def wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def disconnected(self) -> None:  # on the loop, posted at MG_EV_CLOSE
        self.gone = True
        self.wake()

    async def wait(self) -> None:
        self._waiter = self.server._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def check_gone(self) -> None:
        """A Connection call refused because the client left: ClientDisconnected."""
        if self.gone or self.conn.is_closing:
            raise ClientDisconnected("client disconnected") from None

    async def drain(self) -> None:
        """Backpressure: waits while the connection holds more than _HIGH_WATER unsent."""
        conn = self.conn
        if conn.send_len <= _HIGH_WATER:
            return
        self.server._drain_wait[conn.id] = self
        try:
            while not self.gone and conn.send_len > _LOW_WATER:
                await self.wait()
        finally:
            self.server._drain_wait.pop(conn.id, None)
        if self.gone:
            raise ClientDisconnected("client disconnected")


class _BodyStream:
    """A request body streamed from the socket: pieces the poll thread queued
    for the app. Reading pauses while more than _BODY_QUEUED bytes wait and
    resumes once the app has taken them, so the client is held by TCP flow
    control and memory stays bounded whatever the body's size.

    Pause and resume are both done on the poll thread (the app's side asks for
    a resume with a wakeup), so the flag and the socket's state never part."""

    __slots__ = ("server", "conn", "left", "pieces", "queued", "paused", "asked", "done", "discard",
                 "ended", "lock")

    def __init__(self, server: "ASGIServer", conn: Any, length: Optional[int]) -> None:
        self.server = server
        self.conn = conn
        self.left = length  # a declared length: the body is complete with its last byte
        self.pieces: "collections.deque[bytes]" = collections.deque()
        self.queued = 0
        self.paused = False
        self.asked = False  # a resume wakeup is on its way
        self.done = False  # the last piece is queued (MG_EV_HTTP_MSG)
        self.discard = False  # the response is over: what is left of the body is dropped
        self.ended = False  # poll thread: MG_EV_HTTP_MSG came (the next MSG is a new request)
        self.lock = threading.Lock()

    def add(self, piece: bytes) -> None:  # poll thread, in MG_EV_READ
        with self.lock:
            if self.discard:
                return
            self.pieces.append(piece)
            self.queued += len(piece)
            if self.left is not None:
                self.left -= len(piece)
                self.done = self.left <= 0  # known now, before MG_EV_HTTP_MSG: one message less
            if self.queued > _BODY_QUEUED and not self.paused:
                self.paused = True
                self.conn.pause_reading()

    def resume(self) -> None:  # poll thread, at the wakeup take() or drop() sent
        with self.lock:
            self.asked = False
            if self.paused and (self.discard or self.queued <= _BODY_QUEUED // 2):
                self.paused = False
                self.conn.resume_reading()

    def take(self) -> Tuple[Optional[bytes], bool]:  # asyncio thread: (piece, whether it is the last)
        with self.lock:
            if not self.pieces:
                return None, self.done
            piece = self.pieces.popleft()
            self.queued -= len(piece)
            # Joined up to _BODY_PIECE: fewer, larger messages for the app.
            while self.pieces and len(piece) + len(self.pieces[0]) <= _BODY_PIECE:
                nxt = self.pieces.popleft()
                self.queued -= len(nxt)
                piece += nxt
            ask = self.paused and not self.asked and self.queued <= _BODY_QUEUED // 2
            self.asked |= ask
            last = self.done and not self.pieces
        if ask:
            self._ask()
        return piece, last

    def drop(self) -> None:  # asyncio thread: the app answered, the rest is read and dropped
        with self.lock:
            self.discard = True
            self.pieces.clear()
            self.queued = 0
            ask = self.paused and not self.asked
            self.asked |= ask
        if ask:
            self._ask()

    def _ask(self) -> None:
        try:
            self.server._resume_wait[self.conn.id] = self
            am = self.server._am
            if am is None or not am.wakeup(self.conn.id, b"resume"):
                self.server._resume_wait.pop(self.conn.id, None)
                with self.lock:
                    self.asked = False  # the next take() asks again
        except RuntimeError:
            pass  # the server is stopping or the connection is gone: nothing to resume


class _HttpCycle(_Cycle):
    __slots__ = ("body", "body_read", "status", "headers", "length", "started", "streaming",
                 "finished", "stream")

    def __init__(self, server: "ASGIServer", conn: Any, scope: Dict[str, Any], body: bytes) -> None:
        super().__init__(server, conn, scope)
        self.body = body
        self.body_read = False
        self.status = 200
        self.headers: List[Tuple[str, str]] = []
        self.length: Optional[int] = None  # the app's Content-Length; while streaming, what is left
        self.started = False
        self.streaming = False
        self.finished = False
        self.stream: Optional[_BodyStream] = None

    def piece(self) -> None:  # on the loop, posted when a piece (or the end) was queued
        self.wake()

    async def receive(self) -> Dict[str, Any]:
        stream = self.stream
        if stream is not None and not self.body_read:
            while True:
                piece, last = stream.take()
                if piece is not None:
                    self.body_read = last
                    return {"type": "http.request", "body": piece, "more_body": not last}
                if last:
                    self.body_read = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                if self.gone:
                    return {"type": "http.disconnect"}  # the client left mid-body
                await self.wait()
        if not self.body_read and not self.gone:
            # The loop read the whole body (bounded by the HTTP layer's limit: 413
            # beyond); the app gets it in pieces of _BODY_PIECE bytes.
            body = self.body
            if len(body) > _BODY_PIECE:
                self.body = body[_BODY_PIECE:]
                return {"type": "http.request", "body": bytes(body[:_BODY_PIECE]), "more_body": True}
            self.body_read = True
            self.body = b""
            return {"type": "http.request", "body": bytes(body), "more_body": False}
        while not self.gone:
            await self.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Dict[str, Any]) -> None:
        kind = message["type"]
        if self.gone:
            raise ClientDisconnected("client disconnected")
        conn = self.conn
        try:
            if kind == "http.response.start":
                if self.started:
                    raise RuntimeError("ASGI: http.response.start sent twice")
                self.status = int(message["status"])
                self.headers, self.length = [], None
                for name, value in _headers_out(message.get("headers", ()), (b"transfer-encoding",)):
                    if name.lower() != "content-length":
                        self.headers.append((name, value))
                    elif self.length is None and value.strip().isdigit():
                        self.length = int(value)
                if not any(name.lower() == "content-type" for name, _ in self.headers):
                    self.headers.append(("Content-Type", "text/plain"))
                self.started = True
            elif kind == "http.response.body":
                if not self.started:
                    raise RuntimeError("ASGI: http.response.body before http.response.start")
                if self.finished:
                    raise RuntimeError("ASGI: http.response.body after the response ended")
                body = bytes(message.get("body", b""))
                more = bool(message.get("more_body", False))
                if not self.streaming and not more:
                    if self.scope["method"] == "HEAD" and self.length is not None and not body:
                        # The head a GET would have, with the app's length, and no body.
                        conn.http_respond(self.status, self.headers, None, self.length)
                    else:
                        conn.http_respond(self.status, self.headers, body)  # Content-Length: len(body)
                    self.finished = True
                    self.end_body()
                    return
                if not self.streaming:
                    # The app's Content-Length frames the stream when it gave one, else chunked.
                    conn.http_respond(self.status, self.headers, None, self.length)
                    self.streaming = True
                if self.length is not None:
                    body = body[:self.length]  # never more than declared
                    self.length -= len(body)
                if body:
                    conn.http_chunk(body)
                if not more:
                    if self.length is None:
                        conn.http_chunk(b"")
                    elif self.length > 0:
                        conn.drain()  # shorter than declared: the client sees a cut body
                    self.finished = True
                    self.end_body()
                else:
                    await self.drain()
            else:
                raise RuntimeError("ASGI: unexpected message %r in an http scope" % kind)
        except RuntimeError:
            self.check_gone()
            raise

    def end_body(self) -> None:
        """The response is over: a body the app did not read is dropped (and
        reading resumes, so the next keep-alive request can come)."""
        if self.stream is not None:
            try:
                self.stream.drop()
            except RuntimeError:
                pass  # closed meanwhile

    def fail(self) -> None:
        """The app raised or returned without completing the response."""
        self.end_body()
        if self.gone:
            return
        try:
            if not self.started:
                self.conn.reply(500, b"Internal Server Error\n")
            else:
                self.conn.drain()  # a response under way cannot be repaired: end it, never hang
        except RuntimeError:
            pass  # closed meanwhile
        self.finished = True


class _WsCycle(_Cycle):
    __slots__ = ("request", "connected", "accepted", "closed", "inbox", "close_code")

    def __init__(self, server: "ASGIServer", conn: Any, scope: Dict[str, Any], request: Any) -> None:
        super().__init__(server, conn, scope)
        self.request = request  # an HttpMessage.copy(): upgraded when the app accepts
        self.connected = False
        self.accepted = False
        self.closed = False
        self.inbox: "collections.deque[Dict[str, Any]]" = collections.deque()
        self.close_code = 1006

    def incoming(self, message: Dict[str, Any]) -> None:  # on the loop
        if len(self.inbox) >= _WS_MAX_QUEUED:
            if not self.closed:
                self.closed = True
                self.conn.ws_send(struct.pack("!H", 1008) + b"receive queue full", _OP_CLOSE)
            return
        self.inbox.append(message)
        self.wake()

    def peer_closed(self, code: int) -> None:
        self.close_code = code
        self.wake()

    async def receive(self) -> Dict[str, Any]:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        while True:
            if self.inbox:
                return self.inbox.popleft()
            if self.gone:
                return {"type": "websocket.disconnect", "code": self.close_code}
            await self.wait()

    async def send(self, message: Dict[str, Any]) -> None:
        kind = message["type"]
        conn = self.conn
        if self.gone or (self.closed and kind != "websocket.close"):
            raise ClientDisconnected("websocket closed")
        try:
            if kind == "websocket.accept":
                if self.accepted:
                    raise RuntimeError("ASGI: websocket.accept sent twice")
                hdrs = _headers_out(message.get("headers", ()))
                if message.get("subprotocol"):
                    hdrs.append(("Sec-WebSocket-Protocol", str(message["subprotocol"])))
                if not conn.ws_upgrade(self.request, _Pairs(hdrs)):
                    self.closed = True
                    raise ClientDisconnected("WebSocket handshake refused (bad upgrade request)")
                self.accepted = True
                self.request = None
            elif kind == "websocket.send":
                if not self.accepted:
                    raise RuntimeError("ASGI: websocket.send before websocket.accept")
                text = message.get("text")
                if text is not None:
                    ok = conn.ws_send(text, WEBSOCKET_OP_TEXT)
                else:
                    ok = conn.ws_send(bytes(message.get("bytes") or b""), WEBSOCKET_OP_BINARY)
                if not ok:
                    raise ClientDisconnected("websocket closed")
                await self.drain()
            elif kind == "websocket.close":
                if self.closed:
                    return
                self.closed = True
                if not self.accepted:
                    conn.reply(403, b"Forbidden\n")
                    return
                code = int(message.get("code") or 1000)
                reason = (message.get("reason") or "").encode("utf-8")[:123]
                conn.ws_send(struct.pack("!H", code) + reason, _OP_CLOSE)
            else:
                raise RuntimeError("ASGI: unexpected message %r in a websocket scope" % kind)
        except RuntimeError:
            self.check_gone()
            raise

    def _end(self, status: int, body: bytes, code: int) -> None:
        """Ends what the app left open: `status` before accept, close `code` after."""
        if self.gone or self.closed:
            return
        self.closed = True
        try:
            if not self.accepted:
                self.conn.reply(status, body)
            else:
                self.conn.ws_send(struct.pack("!H", code), _OP_CLOSE)
        except RuntimeError:
            pass  # closed meanwhile

    def fail(self) -> None:
        """The app raised: 500 before accept, close 1011 after."""
        self._end(500, b"Internal Server Error\n", 1011)

    def done(self) -> None:
        """The app returned: 403 if it never accepted, else close 1000."""
        self._end(403, b"Forbidden\n", 1000)


class ASGIServer:
    """Serves one ASGI 3 application::

        server = ASGIServer(app)
        listener = await server.start("http://127.0.0.1:8000")
        ...
        await server.stop()
    """

    def __init__(self, app: Callable[..., Any], error_handler: Optional[Callable[[Exception], Any]] = None,
                 *, max_body: Optional[int] = None) -> None:
        if max_body is not None and max_body < 1:
            raise ValueError("max_body must be a positive number of bytes, or None for no limit")
        self.app = app
        self.max_body = max_body  # a declared Content-Length above it: 413, the app never runs
        self._error_handler = error_handler
        self._am: Optional[AsyncManager] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._listener: Any = None
        self._server_addr: Optional[Tuple[str, int]] = None
        self._state: Dict[str, Any] = {}
        self._cycles: Dict[int, _Cycle] = {}  # poll thread only: conn id -> current cycle
        self._drain_wait: Dict[int, _Cycle] = {}  # conn id -> cycle waiting for the socket
        self._resume_wait: Dict[int, _BodyStream] = {}  # conn id -> a body to resume reading
        self._tasks: "set[asyncio.Task]" = set()
        self._posted: List[Tuple[Callable[..., Any], tuple]] = []
        self._post_lock = threading.Lock()
        self._post_pending = False
        self._lifespan_task: Optional[asyncio.Task] = None
        self._lifespan_inbox: Optional[asyncio.Queue] = None
        self._lifespan_reply: Optional[asyncio.Queue] = None
        self._lifespan_on = False

    # -- public -----------------------------------------------------------------

    @property
    def manager(self) -> Any:
        if self._am is None or self._am._manager is None:
            raise RuntimeError("ASGIServer is not started")
        return self._am.manager

    async def start(self, url: str = "http://127.0.0.1:8000") -> Any:
        """Runs lifespan startup, then listens on url; returns the listener."""
        if self._am is not None:
            raise RuntimeError("ASGIServer is already started")
        self._loop = asyncio.get_running_loop()
        await self._lifespan_startup()
        am = AsyncManager(self._on_event, error_handler=self._report, shutdown_timeout=_STOP_TIMEOUT)
        await am.__aenter__()
        self._am = am
        try:
            self._listener = am.listen(url)
        except BaseException:
            await self.stop()
            raise
        addr = self._listener.local_addr
        self._server_addr = (addr[0], addr[1]) if addr else None
        return self._listener

    async def stop(self) -> None:
        """Cancels the running app tasks, runs lifespan shutdown, closes the
        manager. Safe after a failed or no start; finishes within ~5 s."""
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_STOP_TIMEOUT / 2)
        await self._lifespan_shutdown()
        am, self._am = self._am, None
        if am is not None:
            await am.__aexit__(None, None, None)
        self._listener = None

    # -- the poll thread's side ---------------------------------------------------

    def _report(self, exc: BaseException) -> None:
        _report(self._error_handler, exc)

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queues fn(*args) for the asyncio loop; one wakeup per batch."""
        with self._post_lock:
            self._posted.append((fn, args))
            if self._post_pending:
                return
            self._post_pending = True
        self._loop.call_soon_threadsafe(self._run_posted)

    def _run_posted(self) -> None:
        with self._post_lock:
            batch, self._posted = self._posted, []
            self._post_pending = False
        for fn, args in batch:
            try:
                fn(*args)
            except Exception as e:
                self._report(e)

    def _on_event(self, conn: Any, ev: int, data: Any) -> None:
        if ev == MG_EV_POLL or ev == MG_EV_WRITE:
            if self._drain_wait:
                cycle = self._drain_wait.get(conn.id)
                if cycle is not None and conn.send_len <= _LOW_WATER:
                    self._post(cycle.wake)
            return
        if ev == MG_EV_WAKEUP:
            stream = self._resume_wait.pop(conn.id, None)
            if stream is not None:
                stream.resume()
            return
        if ev == MG_EV_READ:
            cycle = self._cycles.get(conn.id)
            stream = getattr(cycle, "stream", None)
            if stream is not None and not stream.ended and data:
                stream.add(conn.recv_data(data))
                self._post(cycle.piece)
            return
        if ev == MG_EV_HTTP_HDRS:
            if not conn.is_listening and self._streams(conn, data):
                self._request(conn, data, True)
            return
        if ev == MG_EV_HTTP_MSG:
            if not conn.is_listening:
                cycle = self._cycles.get(conn.id)
                stream = getattr(cycle, "stream", None)
                if stream is not None and not stream.ended:
                    stream.ended = True
                    # The streamed body's end (the app runs already). Marked here,
                    # not on the loop: the next pipelined request's MSG may follow
                    # at once and must not be taken for this end.
                    with stream.lock:
                        stream.done = True
                    self._post(cycle.piece)
                else:
                    self._request(conn, data)
        elif ev == MG_EV_WS_MSG:
            cycle = self._cycles.get(conn.id)
            if cycle is not None:
                if data.flags & 0x0F == WEBSOCKET_OP_TEXT:
                    msg = {"type": "websocket.receive", "text": data.text}
                else:
                    msg = {"type": "websocket.receive", "bytes": data.data}
                self._post(cycle.incoming, msg)
        elif ev == MG_EV_WS_CTL:
            cycle = self._cycles.get(conn.id)
            if cycle is not None and data.flags & 0x0F == _OP_CLOSE:
                payload = data.data
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._post(cycle.peer_closed, code)
        elif ev == MG_EV_CLOSE:
            self._resume_wait.pop(conn.id, None)
            cycle = self._cycles.pop(conn.id, None)
            if cycle is not None:
                self._post(cycle.disconnected)

    def _streams(self, conn: Any, msg: Any) -> bool:
        """At MG_EV_HTTP_HDRS: whether this request's body is streamed to an app
        started at once. Requests without a body (and WebSocket upgrades) wait
        for MG_EV_HTTP_MSG as before; a declared length above max_body is left
        to the HTTP layer, which answers 413."""
        chunked = msg.header("Transfer-Encoding") is not None
        length = msg.header("Content-Length")
        if not chunked:
            if length is None or not length.strip().isdigit() or int(length) == 0:
                return False  # no body, or a malformed length the layer refuses
            if self.max_body is not None and int(length) > self.max_body:
                conn.http_set_limits(max_body=self.max_body)
                return False
        conn.http_stream_body()
        return True

    def _request(self, conn: Any, msg: Any, streamed: bool = False) -> None:
        uri = msg.uri
        remote = conn.remote_addr
        upgrade = msg.header("Upgrade")
        is_ws = upgrade is not None and "websocket" in upgrade.lower()
        tls = conn.is_tls
        scope: Dict[str, Any] = {
            "type": "websocket" if is_ws else "http",
            "asgi": _WS_ASGI_VERSION if is_ws else ASGI_VERSION,
            "http_version": msg.proto[5:] if msg.proto.startswith("HTTP/") else "1.1",
            "scheme": ("wss" if tls else "ws") if is_ws else ("https" if tls else "http"),
            "path": unquote(uri, errors="surrogateescape"),
            "raw_path": uri.encode(),
            "query_string": msg.query.encode(),
            "root_path": "",
            "headers": _scope_headers(msg),
            "client": (remote[0], remote[1]) if remote else None,
            "server": self._server_addr,
            "state": dict(self._state),
        }
        if is_ws:
            proto = msg.header("Sec-WebSocket-Protocol")
            scope["subprotocols"] = [p.strip() for p in proto.split(",") if p.strip()] if proto else []
            scope["extensions"] = {}
            cycle: _Cycle = _WsCycle(self, conn, scope, msg.copy())
        else:
            scope["method"] = msg.method
            cycle = _HttpCycle(self, conn, scope, memoryview(b"" if streamed else msg.body_bytes))
            if streamed:
                length = msg.header("Content-Length")
                chunked = msg.header("Transfer-Encoding") is not None
                cycle.stream = _BodyStream(self, conn, None if chunked else int(length))
        previous = self._cycles.get(conn.id)
        self._cycles[conn.id] = cycle
        if previous is not None:
            # Keep-alive: the previous request on this connection was answered;
            # an app still in receive() for it gets http.disconnect (ASGI).
            self._post(previous.disconnected)
        self._post(self._spawn, cycle)

    # -- the asyncio side ---------------------------------------------------------

    def _spawn(self, cycle: _Cycle) -> None:
        if cycle.gone:
            return
        task = self._loop.create_task(self._run_app(cycle))
        cycle.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_app(self, cycle: _Cycle) -> None:
        try:
            await self.app(cycle.scope, cycle.receive, cycle.send)
        except ClientDisconnected:
            pass  # the client left: nothing to answer, nothing to report
        except asyncio.CancelledError:
            cycle.fail()
            raise
        except Exception as e:
            self._report(e)
            cycle.fail()
        else:
            if isinstance(cycle, _HttpCycle):
                if not cycle.finished and not cycle.gone:
                    if not cycle.started:
                        self._report(RuntimeError("ASGI app returned without sending a response"))
                    cycle.fail()
            else:
                cycle.done()

    # -- lifespan -------------------------------------------------------------------

    async def _lifespan_startup(self) -> None:
        self._lifespan_inbox = asyncio.Queue()
        self._lifespan_reply = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self._state}
        self._lifespan_inbox.put_nowait({"type": "lifespan.startup"})

        async def receive() -> Dict[str, Any]:
            return await self._lifespan_inbox.get()

        async def send(message: Dict[str, Any]) -> None:
            await self._lifespan_reply.put(message)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except asyncio.CancelledError:
                raise
            except BaseException as e:
                # An app without lifespan support raises here: the server goes on
                # without it (ASGI spec), but a failure after startup is reported.
                await self._lifespan_reply.put({"type": "_raised", "exc": e})
            else:
                await self._lifespan_reply.put({"type": "_returned"})

        self._lifespan_task = self._loop.create_task(run())
        reply = await self._lifespan_reply.get()
        kind = reply["type"]
        if kind == "lifespan.startup.complete":
            self._lifespan_on = True
            return
        if kind == "lifespan.startup.failed":
            await self._lifespan_end()
            raise RuntimeError("ASGI lifespan startup failed: %s" % reply.get("message", ""))
        # _raised / _returned before answering: no lifespan support; proceed.
        self._lifespan_on = False

    async def _lifespan_shutdown(self) -> None:
        task = self._lifespan_task
        if task is None:
            return
        if self._lifespan_on and not task.done():
            self._lifespan_inbox.put_nowait({"type": "lifespan.shutdown"})
            try:
                reply = await asyncio.wait_for(self._lifespan_reply.get(), _STOP_TIMEOUT / 2)
            except asyncio.TimeoutError:
                reply = {"type": "lifespan.shutdown.failed", "message": "no answer to shutdown"}
            if reply["type"] == "lifespan.shutdown.failed":
                self._report(RuntimeError("ASGI lifespan shutdown failed: %s" % reply.get("message", "")))
            elif reply["type"] == "_raised":
                self._report(reply["exc"])
        self._lifespan_on = False
        await self._lifespan_end()

    async def _lifespan_end(self) -> None:
        task, self._lifespan_task = self._lifespan_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=_STOP_TIMEOUT / 4)


def serve(app: Callable[..., Any], url: str = "http://127.0.0.1:8000", error_handler: Optional[Callable[[Exception], Any]] = None) -> None:
    """Runs app on url under asyncio.run() until SIGINT or SIGTERM."""

    async def main() -> None:
        server = ASGIServer(app, error_handler=error_handler)
        await server.start(url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await server.stop()

    asyncio.run(main())
