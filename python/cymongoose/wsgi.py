"""cymongoose.wsgi: serve a WSGI application (PEP 3333) on the event loop.

The loop thread does all the I/O and builds each request's environ; a pool of
``workers`` threads runs the application. A worker answers through the
connection's methods, which are safe from any thread (they run while the loop
waits and end its wait), so no payload travels through ``wakeup()`` and nothing
is stashed. Design: docs/python-wsgi.md.

    from cymongoose.wsgi import serve
    serve(app, "http://127.0.0.1:8000", workers=4)
"""

import io
import signal
import sys
import threading
import time
import traceback
from queue import SimpleQueue
from urllib.parse import unquote_to_bytes

from ._cymg import (
    MG_EV_CLOSE,
    MG_EV_HTTP_MSG,
    MG_EV_WRITE,
    Manager,
    url_host,
)

__all__ = ["WSGIServer", "FileWrapper", "serve"]

#: Bodies up to this size are collected and sent in one reply with Content-Length.
BUFFER_LIMIT = 64 * 1024
#: A streaming worker waits while more than this is queued for the socket ...
HIGH_WATER = 512 * 1024
#: ... until the loop has written it down to this.
LOW_WATER = 128 * 1024
#: Larger body pieces are queued in slices of this size (a worker holds the
#: connection's lock for one slice at a time and waits between them).
SLICE = 256 * 1024
#: Request bodies larger than this are refused with 413 (WSGIServer(max_body=)).
DEFAULT_MAX_BODY = 8 * 1024 * 1024

# Headers the server frames itself: the application's are dropped.
_FRAMING = frozenset(("content-length", "transfer-encoding", "date"))
_NO_BODY_STATUS = (204, 304)


class FileWrapper:
    """``wsgi.file_wrapper``: iterates over a file-like object in blocks of
    ``blksize`` bytes and closes it with :meth:`close` (PEP 3333)."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read, size = self.filelike.read, self.blksize
        while True:
            data = read(size)
            if not data:
                return
            yield data


def _native(text):
    """A PEP 3333 "native string": the bytes of the wire, one character per byte
    (latin-1). The message gives UTF-8-decoded text; ASCII, the common case, is
    already right."""
    return text if text.isascii() else text.encode("utf-8").decode("latin-1")


def _build_environ(message, conn, server_name, server_port):
    """The PEP 3333 environ of one request, from the message's ``method, uri,
    query, proto, body_bytes, header(), headers()`` and the connection's
    ``is_tls`` and ``remote_addr``."""
    body = message.body_bytes
    remote = conn.remote_addr or ("", 0, False)
    environ = {
        "REQUEST_METHOD": message.method,
        "SCRIPT_NAME": "",
        # The path as bytes, percent-decoded, carried in a latin-1 str (PEP 3333).
        "PATH_INFO": unquote_to_bytes(message.uri).decode("latin-1"),
        "QUERY_STRING": _native(message.query),
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "SERVER_PROTOCOL": message.proto,
        "REMOTE_ADDR": remote[0],
        "REMOTE_HOST": remote[0],
        "REMOTE_PORT": str(remote[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if conn.is_tls else "http",
        "wsgi.input": io.BytesIO(body),
        # The body is complete in memory: reading to the end is safe even
        # without CONTENT_LENGTH (a chunked upload).
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    ctype = message.header("Content-Type")
    if ctype is not None:
        environ["CONTENT_TYPE"] = ctype
    clen = message.header("Content-Length")
    if clen is not None:
        environ["CONTENT_LENGTH"] = clen
    for name, value in message.headers():
        if "_" in name:
            # "X_A" and "X-A" would both become HTTP_X_A: a proxy that checks
            # one could be fooled by the other (as gunicorn and nginx, dropped).
            continue
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            continue
        key = "HTTP_" + key
        value = _native(value)
        if key in environ:
            environ[key] += ", " + value
        else:
            environ[key] = value
    return environ


class _Gone(Exception):
    """The client left (or stopped reading for stream_timeout): stop the body."""


def _status_code(status):
    if not isinstance(status, str):
        raise TypeError("status must be a str such as '200 OK', not %s" % type(status).__name__)
    code = status[:3]
    if len(status) < 3 or not code.isdigit() or (len(status) > 3 and status[3] != " "):
        raise ValueError("malformed status %r (want e.g. '200 OK')" % status)
    return int(code)


class _Response:
    """One request's answer, on a worker thread."""

    __slots__ = ("server", "conn", "environ", "code", "headers", "length", "pieces",
                 "size", "started", "left", "ready", "gone", "no_body")

    def __init__(self, server, conn, environ):
        self.server = server
        self.conn = conn
        self.environ = environ
        self.code = None       # status code once start_response was called
        self.headers = None    # the application's headers, framing ones removed
        self.length = None     # the application's Content-Length, or None
        self.pieces = []       # body collected while it may still be buffered
        self.size = 0
        self.started = False   # the head is queued: no 500 possible any more
        self.left = None       # bytes still due of a sized streamed body
        self.ready = None      # threading.Event set by the loop as output drains
        self.gone = False
        self.no_body = False

    # ---- the WSGI callables ----

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.code is not None:
            raise AssertionError("start_response() called twice without exc_info")
        code = _status_code(status)
        kept, length = [], None
        for item in headers:
            name, value = item
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError("header names and values must be str: %r" % (item,))
            low = name.lower()
            if low in _FRAMING:
                if low == "content-length":
                    value = value.strip()
                    if not value.isdigit():
                        raise ValueError("malformed Content-Length %r" % value)
                    length = int(value)
                continue
            kept.append((name, value))
        self.code, self.headers, self.length = code, kept, length
        self.no_body = (self.environ["REQUEST_METHOD"] == "HEAD" or code in _NO_BODY_STATUS)
        self.pieces, self.size = [], 0  # a new start (exc_info) discards the old body
        return self.write

    def write(self, data):
        if self.code is None:
            raise AssertionError("write() before start_response()")
        self._push(data)

    # ---- body ----

    def _push(self, data):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("WSGI body pieces must be bytes, not %s" % type(data).__name__)
        if not data:
            return
        if self.started:
            self._send(data)
            return
        if self.no_body:
            self.size += len(data)  # only counted: HEAD gets the length a GET would
            return
        self.pieces.append(data)
        self.size += len(data)
        if self.size > BUFFER_LIMIT:
            self._start_stream()

    def _start_stream(self):
        """The body is too large to collect: the head goes out now, the
        collected pieces after it, and the rest as it comes."""
        pieces, self.pieces, self.size = self.pieces, [], 0
        self.ready = threading.Event()
        self.server._streams[self.conn.id] = self
        self.conn.http_respond(self.code, self.headers, None, self.length)
        self.started = True
        if self.length is not None:
            self.left = self.length
        for piece in pieces:
            self._send(piece)

    def _send(self, data):
        if self.left == 0:
            return  # the declared length is reached
        view = memoryview(data).cast("B")
        if self.left is not None and len(view) > self.left:
            view = view[:self.left]  # never more than the declared length
        for off in range(0, len(view), SLICE):
            part = view[off:off + SLICE]
            self._wait_room()
            try:
                self.conn.http_chunk(part)
            except RuntimeError:
                if self.gone or self.conn.is_closing:
                    raise _Gone() from None
                raise
            if self.left is not None:
                self.left -= len(part)

    def _wait_room(self):
        """Blocks while the connection's send buffer is above the high mark,
        as long as the peer keeps taking bytes at least every stream_timeout."""
        conn, ready, timeout = self.conn, self.ready, self.server.stream_timeout
        while True:
            if self.gone:
                raise _Gone()
            pending = conn.send_len
            if pending <= HIGH_WATER:
                return
            ready.clear()
            # Re-read after clear(): a drain reported in between is not lost.
            if conn.send_len <= LOW_WATER or self.gone:
                continue
            if not ready.wait(timeout) and not self.gone and conn.send_len >= pending:
                # Nothing taken for stream_timeout: give up on this client.
                self.gone = True
                conn.close()
                raise _Gone()

    def _finish(self):
        conn = self.conn
        if not self.started:
            if self.code in _NO_BODY_STATUS:
                conn.http_respond(self.code, self.headers, b"")
            elif self.no_body:
                # HEAD: the head a GET would have, with its length.
                conn.http_respond(self.code, self.headers, None,
                                  self.size if self.length is None else self.length)
            else:
                pieces = self.pieces
                conn.http_respond(self.code, self.headers,
                                  pieces[0] if len(pieces) == 1 else b"".join(pieces))
            self.started = True
        elif self.left is None:
            conn.http_chunk(b"")
        elif self.left > 0:
            raise RuntimeError("the application sent %d bytes fewer than its Content-Length %d"
                               % (self.left, self.length))

    def fail(self):
        """An error in the application: 500 if nothing went out, else the
        connection is closed (the client sees a cut body, never a hang)."""
        conn = self.conn
        try:
            if not self.started:
                self.started = True
                conn.http_respond(500, [("Content-Type", "text/plain")],
                                  b"Internal Server Error\n")
            else:
                conn.drain()  # what is queued goes out, then the body ends cut
        except RuntimeError:
            pass  # the connection is already gone

    def run(self, app):
        server = self.server
        try:
            result = app(self.environ, self.start_response)
        except Exception as exc:
            self._failed(exc)
            return
        failed = False
        try:
            for piece in result:
                if self.code is None:
                    raise AssertionError("body before start_response()")
                self._push(piece)
            if self.code is None:
                raise AssertionError("the application never called start_response()")
        except Exception as exc:
            failed = True
            self._failed(exc)
        try:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        except Exception as exc:
            if not failed:
                failed = True
                self._failed(exc)
            else:
                server._report(exc)
        if not failed:
            try:
                self._finish()
            except Exception as exc:
                self._failed(exc)

    def _failed(self, exc):
        """Reports exc unless it only says the client left, and answers."""
        if isinstance(exc, _Gone):
            return
        if isinstance(exc, RuntimeError) and (self.gone or self.conn.is_closing):
            return  # the connection closed under us: nobody to answer
        self.server._report(exc)
        self.fail()


class WSGIServer:
    """Serves ``app`` on a :class:`~cymongoose.Manager` (``.manager``) with a pool
    of ``workers`` threads running the application.

    ``error_handler(exc)`` receives exceptions of the application (default:
    the traceback is printed to stderr). ``stream_timeout``: a worker streaming
    a body waits at most this many seconds for a client that takes no bytes,
    then closes that connection. ``max_body``: request bodies above it are
    refused with 413 before the application runs.
    """

    def __init__(self, app, workers=4, error_handler=None, stream_timeout=5.0, *,
                 max_body=DEFAULT_MAX_BODY):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if max_body < 1:
            raise ValueError("max_body must be at least 1")
        self.app = app
        self.workers = workers
        self.error_handler = error_handler
        self.stream_timeout = stream_timeout
        self.max_body = max_body
        self._manager = Manager(None, error_handler=error_handler, poll_events=False)
        self._streams = {}   # conn id -> _Response of a body being streamed
        self._stash = {}     # kept for programs that look: always empty
        self._listeners = []
        self._jobs = SimpleQueue()
        self._threads = []
        self._busy = 0
        self._idle = threading.Condition()
        self._closed = False
        self._stop = False
        self._running = None  # the thread inside run(), if any
        self._run_done = threading.Event()

    @property
    def manager(self):
        return self._manager

    def listen(self, url="http://127.0.0.1:8000"):
        """Listens on ``url`` and returns the listener. SERVER_NAME is the URL's
        host (127.0.0.1 for 0.0.0.0 and ::), SERVER_PORT the bound port."""
        if self._closed:
            raise RuntimeError("WSGIServer is closed")
        host = url_host(url)
        name = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        where = [name, 0]  # the port is known once bound
        lsn = self._manager.listen(url, lambda c, ev, data: self._event(c, ev, data, where),
                                   http=True)
        lsn.http_set_limits(max_body=self.max_body)
        where[1] = lsn.local_addr[1]
        self._listeners.append(lsn)
        self._start_workers()
        return lsn

    def _start_workers(self):
        while len(self._threads) < self.workers:
            t = threading.Thread(target=self._work, name="cymongoose-wsgi-%d" % len(self._threads),
                                 daemon=True)
            t.start()
            self._threads.append(t)

    # ---- the loop thread ----

    def _event(self, conn, ev, data, where):
        if ev == MG_EV_HTTP_MSG:
            if self._closed:
                # Shutting down: a keep-alive client must not keep close() waiting.
                conn.http_respond(503, [("Content-Type", "text/plain"), ("Connection", "close")],
                                  b"Service Unavailable: the server is stopping\n")
                return
            environ = _build_environ(data, conn, where[0], where[1])
            with self._idle:
                self._busy += 1
            self._jobs.put((conn, environ))
        elif ev == MG_EV_WRITE:
            r = self._streams.get(conn.id)
            if r is not None and conn.send_len <= LOW_WATER:
                r.ready.set()
        elif ev == MG_EV_CLOSE:
            r = self._streams.get(conn.id)
            if r is not None:
                r.gone = True
                r.ready.set()

    # ---- workers ----

    def _work(self):
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            conn, environ = job
            r = _Response(self, conn, environ)
            try:
                r.run(self.app)
            except BaseException as exc:  # noqa: B902 - a worker must survive
                self._report(exc)
            finally:
                self._streams.pop(conn.id, None)
                with self._idle:
                    self._busy -= 1
                    if self._busy == 0:
                        self._idle.notify_all()

    def _report(self, exc):
        eh = self.error_handler
        if eh is not None:
            try:
                eh(exc)
                return
            except Exception:
                sys.stderr.write("cymongoose.wsgi: exception in error_handler:\n")
                traceback.print_exc()
                return
        sys.stderr.write("cymongoose.wsgi: exception in the WSGI application:\n")
        traceback.print_exception(type(exc), exc, exc.__traceback__)

    # ---- running and stopping ----

    def run(self, poll_ms=100):
        """Polls until SIGINT or SIGTERM (or :meth:`close` from another thread),
        then closes. Signal handlers are installed only on the main thread."""
        self._running = threading.current_thread()
        old = {}
        if threading.current_thread() is threading.main_thread():
            def stop(signum, frame):
                self._stop = True
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, stop)
        try:
            while not self._stop:
                self._manager.poll(poll_ms)
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)
            self._running = None
            try:
                self._shutdown()
            finally:
                self._run_done.set()

    def close(self):
        """Stops listening, lets running workers finish (the loop keeps turning
        for them meanwhile), stops the pool and closes the manager. From another
        thread while :meth:`run` runs, it asks run() to stop and waits for it."""
        runner = self._running
        if runner is not None and runner is not threading.current_thread():
            self._stop = True
            self._run_done.wait()
            return
        self._shutdown()

    def _shutdown(self):
        if self._closed:
            return
        self._closed = True
        for lsn in self._listeners:
            lsn.close()
        mgr = self._manager
        with self._idle:
            busy = self._busy
        while busy:
            try:
                mgr.poll(20)
            except RuntimeError:
                # Polled by another thread (the program drives poll() itself):
                # that thread turns the loop; just wait.
                with self._idle:
                    self._idle.wait(0.05)
            with self._idle:
                busy = self._busy
        # Their last answers are queued: let them reach the sockets (a peer
        # that reads nothing for stream_timeout is left behind).
        deadline = time.monotonic() + self.stream_timeout
        while time.monotonic() < deadline and any(c.send_len for c in mgr.connections):
            try:
                mgr.poll(20)
            except RuntimeError:
                break
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()
        mgr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def serve(app, url="http://127.0.0.1:8000", workers=4, stream_timeout=5.0, **kwargs):
    """Serves ``app`` on ``url`` until SIGINT or SIGTERM."""
    server = WSGIServer(app, workers=workers, stream_timeout=stream_timeout, **kwargs)
    server.listen(url)
    server.run()
