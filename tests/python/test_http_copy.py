"""HttpMessage.copy() and the streamed Connection.http_respond(): the extension calls
the ASGI adapter relies on, through a plain Manager."""

import http.client

import pytest
import websocket  # websocket-client

import cymongoose
from cymongoose import MG_EV_HTTP_MSG, MG_EV_WS_MSG, MG_EV_WS_OPEN
from conftest import http_server, in_thread, raw_exchange


def test_copy_outlives_the_handler():
    kept = []

    def h(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            kept.append((data, data.copy()))
            conn.reply(200, b"ok")

    mgr, port = http_server(h)
    try:
        def client():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/p/q?x=%C3%A9", body=b"the body", headers={"X-A": "1", "X-B": "2"})
            assert c.getresponse().read() == b"ok"
            c.close()

        in_thread(mgr, client)
        view, copy = kept[0]
        assert not view and copy  # the view went stale, the copy did not
        assert (copy.method, copy.uri, copy.query, copy.proto) == ("POST", "/p/q", "x=%C3%A9", "HTTP/1.1")
        assert copy.body_bytes == b"the body"
        assert copy.header("x-a") == "1" and ("X-B", "2") in copy.headers()
        assert copy.query_var("x") == "é"
        assert copy.status() == 0
        again = copy.copy()
        del copy
        assert again.body_bytes == b"the body"
        with pytest.raises(ValueError, match="stale"):
            view.copy()
    finally:
        mgr.close()


def test_ws_upgrade_later_with_a_copy():
    pending = []
    got = []

    def h(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            pending.append((conn, data.copy()))  # decide later
        elif ev == MG_EV_WS_OPEN:
            got.append(("open", data.uri))
        elif ev == MG_EV_WS_MSG:
            conn.ws_send(b"echo " + data.data, cymongoose.WEBSOCKET_OP_TEXT)

    def upgrade():
        conn, msg = pending.pop()
        assert conn.ws_upgrade(msg, {"Sec-WebSocket-Protocol": "p1"}) is True

    mgr, port = http_server(h)
    try:
        def client():
            ws = websocket.create_connection("ws://127.0.0.1:%d/later" % port,
                                             subprotocols=["p1"], timeout=10)
            ws.send("x")
            r = ws.recv()
            ws.close()
            return r

        t = mgr.timer_add(20, lambda: pending and upgrade(), repeat=True)
        assert in_thread(mgr, client) == "echo x"
        t.cancel()
        assert got == [("open", "/later")]
    finally:
        mgr.close()


def test_http_respond_streamed_to_get_and_to_head():
    """The streamed reply the ASGI adapter makes: status, repeated headers kept,
    chunked to GET, the head alone to HEAD (later pieces are dropped)."""

    def h(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            pairs = [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Case", "Kept")]
            conn.http_respond(202, pairs)
            with pytest.raises(RuntimeError):
                conn.http_respond(200)  # one reply per request
            conn.http_chunk(b"abc")
            conn.http_chunk(b"def")
            conn.http_chunk(b"")

    mgr, port = http_server(h)
    try:
        out = in_thread(mgr, lambda: raw_exchange(
            port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 202 ")
        assert b"\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Case: Kept\r\n" in head + b"\r\n"
        assert b"Transfer-Encoding: chunked" in head
        assert body == b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
        out = in_thread(mgr, lambda: raw_exchange(
            port, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 202 ") and body == b""
    finally:
        mgr.close()
