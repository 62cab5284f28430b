"""cymongoose.wsgi with raw WSGI applications: the environ (PEP 3333), the
response rules, streaming with backpressure, clients that leave, concurrency,
pipelining, HEAD, 413, errors at each stage, and a loop driven by hand.
Clients: urllib, http.client and raw sockets, all on 127.0.0.1."""

import http.client
import io
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import raw_exchange, wsgi_serving
from cymongoose import wsgi
from cymongoose.wsgi import FileWrapper, WSGIServer


def get(port, path="/", method="GET", body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        c.close()


def hdr(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


class Closing:
    """A response iterable that records whether close() was called."""

    def __init__(self, pieces, fail_at=None, on_close=None):
        self.pieces = pieces
        self.fail_at = fail_at
        self.closed = threading.Event()
        self.on_close = on_close
        self.sent = 0

    def __iter__(self):
        for i, p in enumerate(self.pieces):
            if i == self.fail_at:
                raise RuntimeError("boom in iteration")
            self.sent += 1
            yield p

    def close(self):
        self.closed.set()
        if self.on_close:
            self.on_close()


# ---- the environ ----

def test_environ_per_pep3333():
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        seen["body"] = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with wsgi_serving(app) as (srv, port):
        req = ("POST /caf%C3%A9/%E2%82%AC%20x?q=%C3%A9&a=1 HTTP/1.1\r\nHost: h:1\r\n"
               "Content-Type: text/plain\r\nContent-Length: 5\r\nX-Multi: one\r\n"
               "x-multi: two\r\nX_Under: dropped\r\nConnection: close\r\n\r\nhello")
        out = raw_exchange(port, req.encode())
        assert out.startswith(b"HTTP/1.1 200 ")
        assert seen["REQUEST_METHOD"] == "POST"
        assert seen["SCRIPT_NAME"] == ""
        # Percent-decoded bytes, carried as latin-1 (PEP 3333).
        assert seen["PATH_INFO"] == "/café/€ x".encode("utf-8").decode("latin-1")
        assert seen["QUERY_STRING"] == "q=%C3%A9&a=1"
        assert seen["SERVER_NAME"] == "127.0.0.1"
        assert seen["SERVER_PORT"] == str(port)
        assert seen["SERVER_PROTOCOL"] == "HTTP/1.1"
        assert seen["CONTENT_TYPE"] == "text/plain"
        assert seen["CONTENT_LENGTH"] == "5"
        assert "HTTP_CONTENT_TYPE" not in seen and "HTTP_CONTENT_LENGTH" not in seen
        assert seen["HTTP_X_MULTI"] == "one, two"
        assert seen["HTTP_HOST"] == "h:1"
        assert "HTTP_X_UNDER" not in seen
        assert seen["REMOTE_ADDR"] == "127.0.0.1" and seen["REMOTE_HOST"] == "127.0.0.1"
        assert seen["REMOTE_PORT"].isdigit() and int(seen["REMOTE_PORT"]) > 0
        assert seen["body"] == b"hello"
        assert seen["wsgi.version"] == (1, 0)
        assert seen["wsgi.url_scheme"] == "http"
        assert seen["wsgi.multithread"] is True
        assert seen["wsgi.multiprocess"] is False
        assert seen["wsgi.run_once"] is False
        assert seen["wsgi.file_wrapper"] is FileWrapper
        assert hasattr(seen["wsgi.errors"], "write")
        for k, v in seen.items():
            if k.isupper():
                assert type(v) is str, k

        # Without a body: no CONTENT_TYPE / CONTENT_LENGTH at all.
        seen.clear()
        status, _, _ = get(port, "/plain")
        assert status == 200
        assert "CONTENT_TYPE" not in seen and "CONTENT_LENGTH" not in seen
        assert seen["PATH_INFO"] == "/plain" and seen["QUERY_STRING"] == ""


def test_build_environ_uses_only_the_message_interface():
    class Msg:
        method, uri, query, proto, body_bytes = "PUT", "/a%2Fb", "x=1", "HTTP/1.0", b"xyz"
        _h = [("Content-Length", "3"), ("Accept", "a"), ("accept", "b"), ("X-Name", "café")]

        def header(self, name, default=None):
            for k, v in self._h:
                if k.lower() == name.lower():
                    return v
            return default

        def headers(self):
            return list(self._h)

    class Conn:
        is_tls = True
        remote_addr = ("::1", 4242, True)

    env = wsgi._build_environ(Msg(), Conn(), "example", 8443)
    assert env["PATH_INFO"] == "/a/b"
    assert env["SERVER_NAME"] == "example" and env["SERVER_PORT"] == "8443"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_ACCEPT"] == "a, b"
    # Header text beyond ASCII arrives as the wire's bytes in latin-1 (PEP 3333).
    assert env["HTTP_X_NAME"] == "café".encode("utf-8").decode("latin-1")
    assert env["CONTENT_LENGTH"] == "3" and "CONTENT_TYPE" not in env
    assert env["REMOTE_ADDR"] == "::1" and env["REMOTE_PORT"] == "4242"
    assert env["wsgi.input"].read() == b"xyz"


def test_server_name_for_wildcard_hosts():
    names = []

    def app(environ, start_response):
        names.append((environ["SERVER_NAME"], environ["SERVER_PORT"]))
        start_response("200 OK", [])
        return [b""]

    srv = WSGIServer(app)
    try:
        lsn = srv.listen("http://0.0.0.0:0")
        port = lsn.local_addr[1]
        t = threading.Thread(target=lambda: get(port))
        t.start()
        while t.is_alive():
            srv.manager.poll(10)
        assert names == [("127.0.0.1", str(port))]
    finally:
        srv.close()


# ---- responses ----

def test_headers_order_case_and_duplicates_kept():
    def app(environ, start_response):
        start_response("201 Created", [("X-Zeta", "1"), ("content-type", "text/x-custom"),
                                       ("Set-Cookie", "a=1"), ("x-alpha", "2"),
                                       ("Set-Cookie", "b=2")])
        return [b"made"]

    with wsgi_serving(app) as (srv, port):
        out = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, body = out.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 201 Created"
    mine = [ln for ln in lines if ln.split(b":")[0] in
            (b"X-Zeta", b"content-type", b"Set-Cookie", b"x-alpha")]
    assert mine == [b"X-Zeta: 1", b"content-type: text/x-custom", b"Set-Cookie: a=1",
                    b"x-alpha: 2", b"Set-Cookie: b=2"]
    assert b"Content-Length: 4" in lines
    assert body == b"made"
    assert b"text/plain" not in head  # no default added when the app set one


def test_write_output_comes_first_and_close_is_called():
    results = []

    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one,")
        write(b"two,")
        r = Closing([b"three,", b"four"])
        results.append(r)
        return r

    with wsgi_serving(app) as (srv, port):
        status, headers, body = get(port)
    assert status == 200 and body == b"one,two,three,four"
    assert hdr(headers, "Content-Length") == ["18"]
    assert results[0].closed.is_set()


def test_small_buffered_large_chunked_or_sized_never_both():
    big = [b"x" * 50000] * 10

    def app(environ, start_response):
        p = environ["PATH_INFO"]
        if p == "/small":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return iter([b"a", b"b", b"c"])
        if p == "/chunked":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return iter(big)
        start_response("200 OK", [("Content-Length", "500000"), ("Content-Type", "x/y")])
        return iter(big)

    with wsgi_serving(app) as (srv, port):
        s, h, b = get(port, "/small")
        assert b == b"abc" and hdr(h, "Content-Length") == ["3"]
        assert not hdr(h, "Transfer-Encoding")
        s, h, b = get(port, "/chunked")
        assert b == b"".join(big) and hdr(h, "Transfer-Encoding") == ["chunked"]
        assert not hdr(h, "Content-Length")
        s, h, b = get(port, "/sized")
        assert b == b"".join(big) and hdr(h, "Content-Length") == ["500000"]
        assert not hdr(h, "Transfer-Encoding")
        assert srv._streams == {} and srv._stash == {}


def test_hundred_megabytes_streamed():
    piece = bytes(range(256)) * 4096  # 1 MiB

    def app(environ, start_response):
        n = 100
        if environ["PATH_INFO"] == "/sized":
            start_response("200 OK", [("Content-Length", str(n * len(piece)))])
        else:
            start_response("200 OK", [])
        return (piece for _ in range(n))

    with wsgi_serving(app) as (srv, port):
        for path in ("/chunked", "/sized"):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("GET", path)
            r = c.getresponse()
            total = 0
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                assert chunk == piece[:len(chunk)] or len(chunk) != len(piece)
                total += len(chunk)
            c.close()
            assert total == 100 * len(piece)
        deadline = time.monotonic() + 10
        while srv._streams and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv._streams == {} and srv._stash == {}


def test_file_wrapper():
    data = bytes(range(256)) * 1000
    files = []

    def app(environ, start_response):
        f = io.BytesIO(data)
        files.append(f)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 4096)

    with wsgi_serving(app) as (srv, port):
        s, h, b = get(port)
    assert b == data and files[0].closed
    assert list(FileWrapper(io.BytesIO(b"abcdef"), 4)) == [b"abcd", b"ef"]


def test_head_has_no_body_and_the_get_length():
    body = b"y" * 200000

    def app(environ, start_response):
        p = environ["PATH_INFO"]
        if p == "/sized":
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"small"] if p == "/small" else iter([body[:100000], body[100000:]])

    with wsgi_serving(app) as (srv, port):
        req = (b"HEAD /small HTTP/1.1\r\nHost: x\r\n\r\n"
               b"HEAD /sized HTTP/1.1\r\nHost: x\r\n\r\n"
               b"HEAD /streamed HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = raw_exchange(port, req)
    parts = out.split(b"HTTP/1.1 200 OK\r\n")
    assert len(parts) == 5
    assert b"Content-Length: 5\r\n" in parts[1] and parts[1].endswith(b"\r\n\r\n")
    assert b"Content-Length: 200000\r\n" in parts[2] and parts[2].endswith(b"\r\n\r\n")
    assert parts[3].endswith(b"\r\n\r\n") and b"yyy" not in parts[3]
    assert parts[4].endswith(b"\r\n\r\nsmall")


def test_no_content_statuses_have_no_body():
    def app(environ, start_response):
        start_response("204 No Content", [("X-A", "1")])
        return [b"ignored"]

    with wsgi_serving(app) as (srv, port):
        out = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                                 b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 204") == 2 and b"ignored" not in out
    assert b"Content-Length" not in out and b"chunked" not in out


# ---- errors at each stage ----

def test_app_raising_at_each_stage():
    errors = []
    results = []

    def app(environ, start_response):
        stage = environ["PATH_INFO"]
        if stage == "/call":
            raise ValueError("before start")
        if stage == "/badheader":
            start_response("200 OK", [("X-Bad", "a\r\nInjected: 1")])
            return [b"never"]
        if stage == "/badstatus":
            start_response("OK", [])
            return [b"never"]
        if stage == "/nostart":
            return [b"body without start_response"]
        if stage == "/exc_info":
            start_response("200 OK", [("X-First", "1")])
            try:
                raise KeyError("replaced")
            except KeyError:
                import sys
                start_response("503 Service Unavailable", [("X-Second", "1")], sys.exc_info())
            return [b"sorry"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        if stage == "/iter":
            r = Closing([b"a", b"b"], fail_at=1)
        elif stage == "/close":
            def bad_close():
                raise OSError("boom in close")
            r = Closing([b"a"], on_close=bad_close)
        elif stage == "/late":
            r = Closing([b"z" * 100000, b"z" * 100000], fail_at=1)
        else:
            r = Closing([b"fine"])
        results.append((stage, r))
        return r

    with wsgi_serving(app, error_handler=errors.append) as (srv, port):
        for stage in ("/call", "/badheader", "/badstatus", "/nostart", "/iter", "/close"):
            s, h, b = get(port, stage)
            assert s == 500, stage
            assert b == b"Internal Server Error\n"
        s, h, b = get(port, "/exc_info")
        assert s == 503 and b == b"sorry" and hdr(h, "X-Second") == ["1"]
        assert not hdr(h, "X-First")
        # After the head went out, the connection is closed: a cut body.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/late")
        r = c.getresponse()
        assert r.status == 200
        with pytest.raises(http.client.IncompleteRead):
            r.read()
        c.close()
        # The server goes on serving.
        assert get(port, "/ok")[2] == b"fine"
    kinds = sorted(type(e).__name__ for e in errors)
    assert kinds == sorted(["ValueError", "ValueError", "ValueError", "AssertionError",
                            "RuntimeError", "OSError", "RuntimeError"]), errors
    for stage, r in results:
        assert r.closed.is_set(), stage


# ---- backpressure and clients that leave ----

def stream_app(counter, pieces=200, size=1 << 20, results=None):
    piece = b"s" * size

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def gen():
            for _ in range(pieces):
                counter[0] += 1
                yield piece
        r = Closing(gen())
        if results is not None:
            results.append(r)
        return r
    return app


def wait_for(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached within %.1fs" % timeout)
        time.sleep(0.01)


def test_backpressure_worker_blocks_while_client_does_not_read():
    counter = [0]
    results = []
    with wsgi_serving(stream_app(counter, results=results), workers=1,
                      stream_timeout=30.0) as (srv, port):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: srv._streams)
        # The worker fills the socket and the send buffer, then waits.
        last = -1
        while counter[0] != last:
            last = counter[0]
            time.sleep(0.5)
        assert counter[0] < 50, "the app ran ahead of a client that reads nothing"
        (resp,) = srv._streams.values()
        assert resp.conn.send_len <= wsgi.HIGH_WATER + wsgi.SLICE
        # Now read it all: the stream resumes and completes.
        s.settimeout(30)
        total, buf = 0, b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, rest = buf.split(b"\r\n\r\n", 1)
        assert b"Transfer-Encoding: chunked" in head
        data = rest
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = s.recv(1 << 20)
            assert chunk, "connection closed before the body ended"
            total += len(chunk)
            data = (data + chunk)[-64:]
        s.close()
        assert counter[0] == 200
        wait_for(lambda: not srv._streams)
        assert results[0].closed.is_set() and srv._stash == {}


def test_slow_reader_gets_everything():
    body = bytes(range(256)) * 8192  # 2 MiB

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return (body[i:i + 65536] for i in range(0, len(body), 65536))

    with wsgi_serving(app, stream_timeout=5.0) as (srv, port):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            chunk = s.recv(128 * 1024)
            if not chunk:
                break
            got += chunk
            time.sleep(0.005)
        s.close()
        head, data = got.split(b"\r\n\r\n", 1)
        assert data == body
        wait_for(lambda: not srv._streams)


def test_client_vanishing_mid_stream_frees_worker_and_stream():
    counter = [0]
    results = []
    app = stream_app(counter, results=results)

    def router(environ, start_response):
        if environ["PATH_INFO"] == "/ping":
            start_response("200 OK", [])
            return [b"pong"]
        return app(environ, start_response)

    # One worker and a long stream_timeout: only the close can free it.
    with wsgi_serving(router, workers=1, stream_timeout=60.0) as (srv, port):
        for read_some in (True, False):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_for(lambda: srv._streams)
            if read_some:
                got = 0
                while got < 3 << 20:
                    got += len(s.recv(1 << 20))
            s.close()
            wait_for(lambda: not srv._streams)
            wait_for(lambda: results and results[-1].closed.is_set())
            assert counter[0] < 200
            counter[0] = 0
            # The one worker is free again.
            assert get(port, "/ping")[2] == b"pong"
        assert srv._stash == {}


def test_stream_timeout_ends_a_client_that_never_reads():
    counter = [0]
    results = []
    with wsgi_serving(stream_app(counter, results=results), workers=1,
                      stream_timeout=0.3) as (srv, port):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: srv._streams)
        wait_for(lambda: not srv._streams)
        wait_for(lambda: results[0].closed.is_set())
        assert counter[0] < 200
        # The server closed the connection: reading reaches EOF (or a reset).
        try:
            while s.recv(1 << 20):
                pass
        except ConnectionResetError:
            pass
        s.close()


# ---- concurrency ----

def test_four_workers_run_concurrently():
    barrier = threading.Barrier(4, timeout=20)
    threads_seen = set()

    def app(environ, start_response):
        barrier.wait()  # breaks (and raises) unless four run at once
        threads_seen.add(threading.get_ident())
        start_response("200 OK", [])
        return [b"together"]

    with wsgi_serving(app, workers=4) as (srv, port):
        out = [None] * 4

        def client(i):
            out[i] = get(port, "/%d" % i)

        ts = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
    assert [o[0] for o in out] == [200] * 4
    assert [o[2] for o in out] == [b"together"] * 4
    assert len(threads_seen) == 4


def test_pipelined_requests_answered_in_order():
    first = threading.Event()

    def app(environ, start_response):
        p = environ["PATH_INFO"]
        if p == "/slow":
            first.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        if p == "/stream":
            return iter([b"S" * 70000, b"T" * 70000])
        return [p.encode()]

    # Four workers: the later requests would overtake /slow if they could.
    with wsgi_serving(app, workers=4) as (srv, port):
        threading.Timer(0.3, first.set).start()
        req = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p
                       for p in (b"/slow", b"/stream", b"/b", b"/c"))
        req += b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        out = raw_exchange(port, req)
    i_slow, i_s, i_b = out.find(b"/slow"), out.find(b"SSSS"), out.find(b"\r\n\r\n/b")
    i_c, i_d = out.find(b"\r\n\r\n/c"), out.find(b"\r\n\r\n/d")
    assert -1 not in (i_slow, i_s, i_b, i_c, i_d), out[:300]
    assert i_slow < i_s < i_b < i_c < i_d
    assert out.count(b"HTTP/1.1 200 OK") == 5


# ---- limits ----

def test_request_body_over_the_limit_is_413_before_the_app():
    calls = []

    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        data = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [str(len(data)).encode()]

    with wsgi_serving(app, max_body=1000) as (srv, port):
        assert get(port, "/ok", "POST", b"x" * 1000)[2] == b"1000"
        s, h, b = get(port, "/big", "POST", b"x" * 1001)
        assert s == 413
        chunked = (b"POST /chunky HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n")
        out = raw_exchange(port, chunked)
        assert out.startswith(b"HTTP/1.1 413 ")
        # A chunked body under the limit reaches the app whole.
        ok = (b"POST /chunked-ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
              b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        assert raw_exchange(port, ok).endswith(b"\r\n\r\n5")
    assert calls == ["/ok", "/chunked-ok"]


# ---- running ----

def test_driving_poll_yourself():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"by hand"] if environ["PATH_INFO"] == "/" else iter([b"q" * 100000] * 5)

    srv = WSGIServer(app, workers=2)
    port = srv.listen("http://127.0.0.1:0").local_addr[1]
    out = {}

    def client():
        out["a"] = urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=20).read()
        out["b"] = urllib.request.urlopen("http://127.0.0.1:%d/big" % port, timeout=20).read()

    t = threading.Thread(target=client)
    t.start()
    deadline = time.monotonic() + 30
    while t.is_alive() and time.monotonic() < deadline:
        srv.manager.poll(10)
    srv.close()
    assert out == {"a": b"by hand", "b": b"q" * 500000}


def test_close_waits_for_running_workers():
    entered, release = threading.Event(), threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/block":
            entered.set()
            release.wait(20)
        start_response("200 OK", [])
        return [b"finished"]

    with wsgi_serving(app) as (srv, port):
        res = {}
        t = threading.Thread(target=lambda: res.update(r=get(port, "/block")))
        t.start()
        assert entered.wait(20)
        keep = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        keep.request("GET", "/quick")
        r = keep.getresponse()
        assert r.status == 200 and r.read() == b"finished"
        closer = threading.Thread(target=srv.close)
        closer.start()
        wait_for(lambda: srv._closed)
        # While it stops, a keep-alive client is told so instead of served.
        keep.request("GET", "/quick")
        r = keep.getresponse()
        assert r.status == 503 and r.getheader("Connection") == "close"
        r.read()
        keep.close()
        assert closer.is_alive()  # still waiting for the worker
        release.set()
        closer.join(20)
        t.join(20)
        assert not closer.is_alive()
    assert res["r"][0] == 200 and res["r"][2] == b"finished"


def test_urllib_keeps_working_after_errors():
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/missing":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such page"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"here"]

    with wsgi_serving(app) as (srv, port):
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen("http://127.0.0.1:%d/missing" % port, timeout=10)
        assert ei.value.code == 404 and ei.value.read() == b"no such page"
        assert urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10).read() == b"here"


def test_bad_arguments():
    with pytest.raises(ValueError):
        WSGIServer(lambda e, s: [], workers=0)
    srv = WSGIServer(lambda e, s: [])
    srv.close()
    with pytest.raises(RuntimeError):
        srv.listen("http://127.0.0.1:0")
