"""cymongoose.asgi: request bodies streamed from the socket into http.request
messages with more_body, with backpressure (reading pauses while 256 KiB wait
for the app): a 100 MB upload in bounded memory, a slow app holding its client
by TCP flow control, a client vanishing mid-body, chunked uploads, pipelined
requests with bodies, and max_body (413 for a declared length above it)."""

import asyncio
import hashlib
import http.client
import os
import socket
import threading

import pytest

from cymongoose.asgi import ASGIServer
from conftest import AsgiRunning as Running, blocking, raw_exchange

pytestmark = pytest.mark.asyncio

HANG = 60  # seconds: hang guard only
MB = 1 << 20


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def block(i):
    return bytes((i + j) % 251 for j in range(256)) * 4096  # 1 MiB, varying per i


def digest_app(seen):
    """Reads the whole body, answers its length and SHA-256; notes the messages."""

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        h, n, msgs = hashlib.sha256(), 0, 0
        while True:
            m = await receive()
            if m["type"] == "http.disconnect":
                seen["disconnect"] = True
                return
            msgs += 1
            h.update(m["body"])
            n += len(m["body"])
            seen["max_rss"] = max(seen.get("max_rss", 0), rss())
            if not m["more_body"]:
                break
        seen["msgs"] = msgs
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d %s" % (n, h.hexdigest().encode())})

    return app


def upload(port, blocks, chunked=False, path="/"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
    c.putrequest("POST", path)
    if chunked:
        c.putheader("Transfer-Encoding", "chunked")
    else:
        c.putheader("Content-Length", str(len(blocks) * MB))
    c.endheaders()
    for i in blocks:
        b = block(i)
        c.send(b"%x\r\n%s\r\n" % (len(b), b) if chunked else b)
    if chunked:
        c.send(b"0\r\n\r\n")
    r = c.getresponse()
    out = (r.status, r.read())
    c.close()
    return out


def expected(blocks):
    h = hashlib.sha256()
    for i in blocks:
        h.update(block(i))
    return b"%d %s" % (len(blocks) * MB, h.hexdigest().encode())


async def test_100mb_upload_streams_in_bounded_memory():
    seen = {}
    blocks = [i % 7 for i in range(100)]
    async with Running(digest_app(seen)) as (server, port):
        base = rss()
        status, body = await blocking(upload, port, blocks)
    assert status == 200
    assert body == expected(blocks)
    assert seen["msgs"] > 100  # streamed in pieces, not one buffered body
    # ASan keeps freed memory in quarantine: RSS says little under it.
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert seen["max_rss"] - base < 64 * MB


async def test_chunked_upload_is_streamed_byte_exact():
    seen = {}
    blocks = [3, 1, 4, 1, 5]
    async with Running(digest_app(seen)) as (server, port):
        status, body = await blocking(upload, port, blocks, True)
    assert status == 200 and body == expected(blocks)


async def test_slow_app_holds_the_client_by_tcp_backpressure():
    go = threading.Event()
    total = 48 * MB
    sent = [0]
    seen = {}
    inner = digest_app(seen)

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await asyncio.get_running_loop().run_in_executor(None, go.wait, HANG)
        await inner(scope, receive, send)

    def client(port):
        s = socket.create_connection(("127.0.0.1", port), timeout=HANG)
        s.sendall(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        for i in range(total // MB):
            s.sendall(block(i))
            sent[0] += MB
        got = b""
        while b" " not in got or len(got.split(b"\r\n\r\n", 1)[-1]) < 60:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.close()
        return got

    async with Running(app) as (server, port):
        fut = asyncio.ensure_future(blocking(client, port))
        await asyncio.sleep(1.0)  # lets the client fill whatever buffers there are
        # The app read nothing: the server holds at most its queue (256 KiB plus
        # a read), the kernel the rest of what the client could send.
        stream = next(iter(server._cycles.values())).stream
        assert stream.paused and stream.queued < 2 * MB
        assert sent[0] < total - 16 * MB
        go.set()
        out = await fut
    assert out.startswith(b"HTTP/1.1 200")
    assert out.endswith(expected(list(range(total // MB))))


async def test_client_vanishing_mid_body_gives_http_disconnect():
    seen = {}
    done = asyncio.Event()
    inner = digest_app(seen)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        try:
            await inner(scope, receive, send)
        finally:
            done.set()

    def client(port):
        s = socket.create_connection(("127.0.0.1", port), timeout=HANG)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (10 * MB))
        s.sendall(block(0))
        s.close()

    async with Running(app) as (server, port):
        await blocking(client, port)
        await asyncio.wait_for(done.wait(), HANG)
    assert seen.get("disconnect") is True
    assert "msgs" not in seen  # never a final more_body=False


async def test_pipelined_requests_with_bodies_answered_in_order():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        if scope["path"] == "/slow":
            await asyncio.sleep(0.2)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode() + b":" + body})

    async with Running(app) as (server, port):
        out = await blocking(raw_exchange, port,
                             b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                             b"POST /fast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"3\r\nabc\r\n0\r\n\r\n"
                             b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200") == 3
    assert out.index(b"/slow:hello") < out.index(b"/fast:abc") < out.index(b"/last:")


async def test_app_answering_without_reading_the_body_keeps_the_connection():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async with Running(app) as (server, port):
        body = b"z" * (4 * MB)  # well above the queue: reading must resume to skip it
        out = await blocking(raw_exchange, port,
                             b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                             + body + b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200") == 2
    assert out.index(b"/a") < out.index(b"/b")


async def test_max_body_refuses_a_declared_length_with_413():
    ran = []

    async def app(scope, receive, send):
        if scope["type"] == "http":
            ran.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with pytest.raises(ValueError):
        ASGIServer(app, max_body=0)
    async with Running(app, max_body=1000) as (server, port):
        out = await blocking(raw_exchange, port,
                             b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n")
        ok = await blocking(raw_exchange, port,
                            b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                            b"Connection: close\r\n\r\nabc")
    assert out.startswith(b"HTTP/1.1 413")
    assert ok.startswith(b"HTTP/1.1 200")
    assert ran == ["/small"]
