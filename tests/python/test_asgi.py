"""cymongoose.asgi.ASGIServer: ASGI 3.0 (spec 2.4) HTTP, WebSocket and lifespan,
with raw apps, Starlette and FastAPI, and real clients (urllib, http.client,
curl, websocket-client, raw sockets) on 127.0.0.1."""

import asyncio
import http.client
import json
import os
import socket
import struct
import subprocess
import threading
import urllib.error
import urllib.request

import pytest
import websocket  # websocket-client

from cymongoose.asgi import ASGIServer
from conftest import AsgiRunning as Running, blocking, raw_exchange

pytestmark = pytest.mark.asyncio

HANG = 60  # seconds: hang guard only


def get(port, path, method="GET", body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    out = (r.status, r.getheaders(), r.read())
    c.close()
    return out


def hdr(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


# ---- raw ASGI apps ---------------------------------------------------------------


async def test_scope_and_simple_response():
    seen = {}

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                if m["type"] == "lifespan.startup":
                    scope["state"]["db"] = "ready"
                    await send({"type": "lifespan.startup.complete"})
                elif m["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        seen["scope"] = scope
        seen["body"] = await receive()
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"X-Custom-Case", b"Yes"), (b"set-cookie", b"a=1"),
                                (b"set-cookie", b"b=2")]})
        await send({"type": "http.response.body", "body": b"created"})

    async with Running(app) as (server, port):
        status, headers, body = await blocking(
            get, port, "/caf%C3%A9/x%20y?q=1&r=%C3%A9", "POST", b"data", {"X-Req": "v"})
    assert (status, body) == (201, b"created")
    assert hdr(headers, "Set-Cookie") == ["a=1", "b=2"]
    assert ("X-Custom-Case", "Yes") in headers  # case kept
    assert hdr(headers, "Content-Length") == ["7"]
    assert hdr(headers, "Content-Type") == ["text/plain"]  # the default
    assert hdr(headers, "Transfer-Encoding") == []
    s = seen["scope"]
    assert s["type"] == "http"
    assert s["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert s["http_version"] == "1.1" and s["method"] == "POST" and s["scheme"] == "http"
    assert s["path"] == "/café/x y"
    assert s["raw_path"] == b"/caf%C3%A9/x%20y"
    assert s["query_string"] == b"q=1&r=%C3%A9"
    assert s["root_path"] == ""
    assert s["server"] == ("127.0.0.1", port)
    assert s["client"][0] == "127.0.0.1" and isinstance(s["client"][1], int)
    assert (b"x-req", b"v") in s["headers"]
    assert all(k == k.lower() and isinstance(k, bytes) and isinstance(v, bytes)
               for k, v in s["headers"])
    assert s["state"] == {"db": "ready"}
    assert seen["body"] == {"type": "http.request", "body": b"data", "more_body": False}


async def test_manager_before_start_and_stop_without_start():
    server = ASGIServer(lambda s, r, se: None)
    with pytest.raises(RuntimeError, match="not started"):
        server.manager
    await server.stop()  # safe


async def test_streamed_response_and_large_request_body():
    got = {}

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        pieces = []
        while True:
            m = await receive()
            pieces.append(m["body"])
            if not m.get("more_body"):
                break
        got["pieces"] = len(pieces)
        got["body"] = b"".join(pieces)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"%d" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    big = bytes(range(256)) * 4096  # 1 MiB
    async with Running(app) as (server, port):
        status, headers, body = await blocking(get, port, "/", "PUT", big)
    assert status == 200 and body == b"01234"
    assert hdr(headers, "Transfer-Encoding") == ["chunked"]
    assert hdr(headers, "Content-Length") == []
    assert got["body"] == big and got["pieces"] > 1


async def test_streamed_response_with_the_apps_content_length():
    # A Content-Length from the app frames the stream (no chunked coding); bytes
    # beyond it are cut, and a body that ends short closes the connection.
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        declared = b"4" if scope["path"] == "/exact" else b"10"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", declared)]})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"cdXX", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async with Running(app) as (server, port):
        status, headers, body = await blocking(get, port, "/exact")
        assert (status, body) == (200, b"abcd")
        assert hdr(headers, "Content-Length") == ["4"]
        assert hdr(headers, "Transfer-Encoding") == []
        status, _, body = await blocking(get, port, "/exact", "HEAD")
        assert (status, body) == (200, b"")

        def short():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
            c.request("GET", "/short")
            r = c.getresponse()
            try:
                with pytest.raises(http.client.IncompleteRead):
                    r.read()
            finally:
                c.close()
            return r.status, r.getheader("Content-Length")

        assert await blocking(short) == (200, "10")
        # The server is unharmed.
        status, _, body = await blocking(get, port, "/exact")
        assert (status, body) == (200, b"abcd")


async def test_head_request_streamed_has_no_body():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def"})

    async with Running(app) as (server, port):
        status, _, body = await blocking(get, port, "/", "HEAD")
        assert (status, body) == (200, b"")
        status, _, body = await blocking(get, port, "/")
        assert (status, body) == (200, b"abcdef")


async def test_app_raising_before_and_after_start():
    errors = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            raise RuntimeError("no lifespan here")  # proceeds without lifespan
        if scope["path"] == "/before":
            raise ValueError("before start")
        if scope["path"] == "/nothing":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise KeyError("after start")

    async with Running(app, error_handler=errors.append) as (server, port):
        status, _, body = await blocking(get, port, "/before")
        assert status == 500 and b"Internal Server Error" in body
        status, _, body = await blocking(get, port, "/nothing")
        assert status == 500

        def after():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
            c.request("GET", "/after")
            r = c.getresponse()
            assert r.status == 200
            with pytest.raises(http.client.IncompleteRead):
                r.read()  # closed mid-body: the client does not hang

        await blocking(after)
        # the server still serves
        status, _, _ = await blocking(get, port, "/before")
        assert status == 500
    kinds = [type(e).__name__ for e in errors]
    assert "ValueError" in kinds and "KeyError" in kinds and "RuntimeError" in kinds


async def test_disconnect_reaches_the_app():
    told = asyncio.Event()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        assert (await receive())["type"] == "http.request"
        m = await receive()  # waits until the client leaves
        if m["type"] == "http.disconnect":
            told.set()

    async with Running(app) as (server, port):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.05)
        s.close()
        await asyncio.wait_for(told.wait(), HANG)


async def test_large_streamed_response_100mb():
    chunk = b"x" * 65536
    n = 1600  # 100 MiB

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(n):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def fetch_count():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
        c.request("GET", "/")
        r = c.getresponse()
        total = 0
        while True:
            b = r.read(1 << 20)
            if not b:
                break
            total += len(b)
        return total

    async with Running(app) as (server, port):
        assert await blocking(fetch_count) == n * len(chunk)


async def test_slow_reader_backpressure_and_vanishing_client():
    produced = [0]
    finished = asyncio.Event()
    chunk = b"y" * 65536

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(1024):  # 64 MiB if nobody stopped it
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                produced[0] += len(chunk)
            await send({"type": "http.response.body", "body": b""})
        finally:
            finished.set()

    async with Running(app) as (server, port):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = 0
        while got < 1 << 20:
            got += len(await blocking(s.recv, 65536))
        await asyncio.sleep(0.5)  # the app would run far ahead without backpressure
        # Bounded by what the client read plus socket buffers and the high-water mark.
        assert produced[0] < got + 16 * (1 << 20)
        assert not finished.is_set()
        s.close()  # the client vanishes mid-stream
        await asyncio.wait_for(finished.wait(), HANG)
    assert produced[0] < 1024 * len(chunk)


async def test_curl_client():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body",
                    "body": json.dumps({"path": scope["path"], "body": body.decode()}).encode()})

    # curl runs without the sanitizer runtime the ASan pass preloads into Python.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    async with Running(app) as (server, port):
        out = await blocking(lambda: subprocess.run(
            ["curl", "-s", "--max-time", "30", "--data-binary", "hé",
             "http://127.0.0.1:%d/%%E6%%97%%A5%%E6%%9C%%AC" % port],
            capture_output=True, check=True, env=env).stdout)
    assert json.loads(out) == {"path": "/日本", "body": "hé"}


# ---- lifespan ----------------------------------------------------------------------


async def test_lifespan_startup_failed():
    async def app(scope, receive, send):
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    server = ASGIServer(app)
    with pytest.raises(RuntimeError) as ei:
        await server.start("http://127.0.0.1:0")
    assert str(ei.value) == "ASGI lifespan startup failed: no database"
    with pytest.raises(RuntimeError, match="not started"):
        server.manager
    await server.stop()


async def test_lifespan_shutdown_on_stop():
    events = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                events.append(m["type"])
                await send({"type": m["type"] + ".complete"})
                if m["type"] == "lifespan.shutdown":
                    return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    server = ASGIServer(app)
    await server.start("http://127.0.0.1:0")
    assert events == ["lifespan.startup"]
    await server.stop()
    assert events == ["lifespan.startup", "lifespan.shutdown"]


# ---- WebSocket (raw) -----------------------------------------------------------------


def ws_app():
    seen = {}

    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            return
        seen["scope"] = scope
        assert (await receive()) == {"type": "websocket.connect"}
        if scope["path"] == "/deny":
            await send({"type": "websocket.close"})
            return
        if scope["path"] == "/raise":
            raise RuntimeError("ws app failed before accept")
        await send({"type": "websocket.accept", "subprotocol": "chat",
                    "headers": [(b"x-ws", b"hello")]})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                seen["disconnect"] = m["code"]
                return
            if m.get("text") == "close me":
                await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
                return
            if m.get("text") is not None:
                await send({"type": "websocket.send", "text": "echo " + m["text"]})
            else:
                await send({"type": "websocket.send", "bytes": m["bytes"][::-1]})

    return app, seen


async def test_websocket_accept_messages_close():
    app, seen = ws_app()

    def client():
        ws = websocket.create_connection("ws://127.0.0.1:%d/chat?x=1" % port,
                                         subprotocols=["chat", "other"], timeout=HANG)
        assert ws.getsubprotocol() == "chat"
        assert ws.getheaders().get("x-ws") == "hello"
        ws.send("héllo")
        assert ws.recv() == "echo héllo"
        ws.send_binary(b"\x01\x02\x03")
        assert ws.recv() == b"\x03\x02\x01"
        ws.send("close me")
        op, data = ws.recv_data(control_frame=True)
        assert op == websocket.ABNF.OPCODE_CLOSE
        assert struct.unpack("!H", data[:2])[0] == 4000 and data[2:] == b"bye"
        ws.close()

    async with Running(app) as (server, port):
        await blocking(client)
    s = seen["scope"]
    assert s["type"] == "websocket" and s["scheme"] == "ws" and s["path"] == "/chat"
    assert s["query_string"] == b"x=1" and s["subprotocols"] == ["chat", "other"]


async def test_websocket_disconnect_code():
    app, seen = ws_app()

    def client():
        ws = websocket.create_connection("ws://127.0.0.1:%d/d" % port, timeout=HANG)
        ws.send("x")
        assert ws.recv() == "echo x"
        ws.close(status=4001)

    async with Running(app) as (server, port):
        await blocking(client)
        for _ in range(HANG * 100):
            if "disconnect" in seen:
                break
            await asyncio.sleep(0.01)
    assert seen["disconnect"] == 4001


async def test_websocket_close_before_accept_is_403_and_raise_is_500():
    app, _ = ws_app()

    def client(path):
        with pytest.raises(websocket.WebSocketBadStatusException) as ei:
            websocket.create_connection("ws://127.0.0.1:%d%s" % (port, path), timeout=HANG)
        return ei.value.status_code

    async with Running(app, error_handler=lambda e: None) as (server, port):
        assert await blocking(client, "/deny") == 403
        assert await blocking(client, "/raise") == 500


# ---- Starlette and FastAPI ----------------------------------------------------------


async def test_starlette_app():
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route, WebSocketRoute

    life = []

    @asynccontextmanager
    async def lifespan(app):
        life.append("startup")
        yield
        life.append("shutdown")

    async def hello(request):
        return PlainTextResponse("hello " + request.path_params["name"])

    async def echo(request):
        body = await request.body()
        return JSONResponse({"len": len(body), "ct": request.headers.get("content-type")})

    async def stream(request):
        async def gen():
            for i in range(100):
                yield b"line %d\n" % i
        return StreamingResponse(gen(), media_type="text/plain")

    async def ws(websocket_):
        await websocket_.accept()
        data = await websocket_.receive_text()
        await websocket_.send_json({"got": data})
        await websocket_.close()

    app = Starlette(routes=[Route("/hello/{name}", hello), Route("/echo", echo, methods=["POST"]),
                            Route("/stream", stream), WebSocketRoute("/ws", ws)],
                    lifespan=lifespan)

    def client():
        base = "http://127.0.0.1:%d" % port
        with urllib.request.urlopen(base + "/hello/%C3%A9t%C3%A9", timeout=HANG) as r:
            assert r.read() == "hello été".encode()
        req = urllib.request.Request(base + "/echo", data=b"z" * 300000,
                                     headers={"Content-Type": "application/x-test"})
        with urllib.request.urlopen(req, timeout=HANG) as r:
            assert json.loads(r.read()) == {"len": 300000, "ct": "application/x-test"}
        with urllib.request.urlopen(base + "/stream", timeout=HANG) as r:
            assert r.read() == b"".join(b"line %d\n" % i for i in range(100))
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(base + "/missing", timeout=HANG)
        assert ei.value.code == 404
        w = websocket.create_connection("ws://127.0.0.1:%d/ws" % port, timeout=HANG)
        w.send("ping")
        assert json.loads(w.recv()) == {"got": "ping"}
        w.close()

    async with Running(app) as (server, port):
        assert life == ["startup"]
        await blocking(client)
    assert life == ["startup", "shutdown"]


async def test_fastapi_app():
    from fastapi import FastAPI, WebSocket
    from pydantic import BaseModel

    app = FastAPI()

    class Item(BaseModel):
        name: str
        price: float

    @app.post("/items/{item_id}")
    async def create(item_id: int, item: Item):
        return {"id": item_id, "name": item.name, "total": item.price * 2}

    @app.get("/fail")
    async def fail():
        raise ValueError("boom")

    @app.websocket("/ws")
    async def ws(websocket_: WebSocket):
        await websocket_.accept()
        n = await websocket_.receive_bytes()
        await websocket_.send_bytes(n * 2)
        await websocket_.close(code=1000)

    def client():
        req = urllib.request.Request(
            "http://127.0.0.1:%d/items/7" % port,
            data=json.dumps({"name": "ünï", "price": 2.5}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=HANG) as r:
            assert json.loads(r.read()) == {"id": 7, "name": "ünï", "total": 5.0}
        status, _, _ = get(port, "/items/notanint", "POST", b"{}",
                           {"Content-Type": "application/json"})
        assert status == 422
        status, _, _ = get(port, "/fail")
        assert status == 500
        w = websocket.create_connection("ws://127.0.0.1:%d/ws" % port, timeout=HANG)
        w.send_binary(b"ab")
        assert w.recv() == b"abab"
        w.close()

    async with Running(app, error_handler=lambda e: None) as (server, port):
        await blocking(client)


async def test_stop_cancels_running_requests_promptly():
    started = asyncio.Event()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        started.set()
        await asyncio.sleep(3600)

    server = ASGIServer(app)
    port = (await server.start("http://127.0.0.1:0")).local_addr[1]
    answer = []

    def client():
        try:
            answer.append(get(port, "/")[0])
        except (OSError, http.client.HTTPException) as e:
            answer.append(type(e).__name__)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    await asyncio.wait_for(started.wait(), HANG)
    await asyncio.wait_for(server.stop(), 5.0 + 1.0)  # the documented bound, as a hang guard
    t.join(HANG)
    assert not t.is_alive()
    assert answer == [500]  # cancelled before it answered: the client is not left hanging
    with pytest.raises(RuntimeError, match="not started"):
        server.manager


async def test_pipelined_requests_answered_in_order():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            await asyncio.sleep(0.2)  # the second request's app must not overtake it
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async with Running(app) as (server, port):
        out = await blocking(raw_exchange, port,
                             b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200") == 2
    assert out.index(b"/slow") < out.index(b"/fast")


async def test_serve_runs_until_sigterm(tmp_path):
    import signal
    import sys

    port_file = tmp_path / "app.py"
    port_file.write_text(
        "import socket, sys\n"
        "from cymongoose.asgi import serve\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'served'})\n"
        "serve(app, 'http://127.0.0.1:%d' % int(sys.argv[1]))\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(port_file), str(port)], env=os.environ.copy())
    try:
        for _ in range(HANG * 20):
            try:
                assert (await blocking(get, port, "/"))[2] == b"served"
                break
            except ConnectionRefusedError:
                assert proc.poll() is None
                await asyncio.sleep(0.05)
        else:
            pytest.fail("serve() did not start")
        proc.send_signal(signal.SIGTERM)
        assert await blocking(proc.wait) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_keep_alive_previous_request_gets_disconnect():
    told = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        told.append((await receive())["type"])  # after the response: waits for the end

    def two_requests():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
        for _ in range(2):
            c.request("GET", "/")
            assert c.getresponse().read() == b"ok"
        c.close()

    async with Running(app) as (server, port):
        await blocking(two_requests)
        for _ in range(HANG * 100):
            if len(told) == 2:
                break
            await asyncio.sleep(0.01)
    assert told == ["http.disconnect", "http.disconnect"]
