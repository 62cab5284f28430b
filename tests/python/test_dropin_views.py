"""Objects used after their time: message views kept past their handler, and
connections used after MG_EV_CLOSE. Neither raises where programs written for
the package read them; acting on them is refused clearly."""

import socket

import pytest

from cymongoose import (
    MG_EV_CLOSE,
    MG_EV_HTTP_MSG,
    MG_EV_READ,
    MG_EV_WS_MSG,
    Manager,
)

from conftest import in_thread, poll_until


def raw_request(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk


# ---- stale message views ----


def test_stale_http_message_gives_empty_values():
    kept, live = [], {}

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            kept.append(data)
            live["status"] = data.status()
            live["bool"] = bool(data)
            conn.reply(200, b"ok")

    m = Manager(handler)
    try:
        port = m.listen("http://127.0.0.1:0").local_addr[1]
        in_thread(m, lambda: raw_request(
            port, b"POST /p?q=1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain; charset=utf-8"
                  b"\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"))
    finally:
        m.close()
    assert live == {"status": 0, "bool": True}  # a live request: int 0
    (msg,) = kept
    assert bool(msg) is False
    assert (msg.method, msg.uri, msg.query, msg.proto, msg.body_text) == ("", "", "", "", "")
    assert msg.body_bytes == b"" and isinstance(msg.body_bytes, bytes)
    assert msg.header("Host") is None
    assert msg.header("Host", "dflt") == "dflt"
    assert msg.header("Host", default=7) == 7
    assert msg.headers() == []
    assert msg.query_var("q") is None
    assert msg.status() is None
    assert msg.header_var("Content-Type", "charset") is None


def test_live_response_status_is_an_int():
    got = {}

    def server(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.reply(404, b"no")

    def client(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            got["status"] = data.status()
            conn.close()

    m = Manager()
    try:
        port = m.listen("http://127.0.0.1:0", server).local_addr[1]
        c = m.connect("http://127.0.0.1:%d" % port, client)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        poll_until(m, lambda: "status" in got)
    finally:
        m.close()
    assert got["status"] == 404 and type(got["status"]) is int


def ws_handshake(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    return s


def test_stale_ws_message_and_stale_view_passed_on():
    kept, errors = {}, []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            if "http" in kept:
                # A stale HttpMessage is refused by the calls that act on it.
                for call in (lambda: conn.serve_dir(kept["http"], "."),
                             lambda: conn.serve_file(kept["http"], "x"),
                             lambda: conn.ws_upgrade(kept["http"])):
                    try:
                        call()
                    except ValueError:
                        errors.append("ValueError")
                conn.ws_upgrade(data)
            else:
                kept["http"] = data
                conn.reply(200, b"first")
        elif ev == MG_EV_WS_MSG:
            kept["ws"] = data
            kept["live"] = (data.data, data.text, data.flags & 0x0F, bool(data))
            conn.ws_send(b"bye", 2)

    m = Manager(handler)
    try:
        port = m.listen("http://127.0.0.1:0").local_addr[1]

        def run():
            raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            s = ws_handshake(port)
            with s:
                s.sendall(bytes([0x81, 0x82, 1, 2, 3, 4]) + bytes(a ^ b for a, b in
                                                                   zip(b"hi", b"\x01\x02")))
                return s.recv(100)

        reply = in_thread(m, run)
    finally:
        m.close()
    assert errors == ["ValueError"] * 3
    assert reply == b"\x82\x03bye"
    assert kept["live"] == (b"hi", "hi", 1, True)
    ws = kept["ws"]
    assert bool(ws) is False
    assert ws.data == b"" and ws.text == "" and ws.flags == 0


# ---- closed connections ----


def closed_pair():
    """A Manager with a closed client, a closed server-side connection, a closed
    listener and a closed UDP connection, all after their MG_EV_CLOSE."""
    closed = set()

    def handler(conn, ev, data):
        if ev == MG_EV_CLOSE:
            closed.add(conn.id)

    m = Manager(handler)
    lsn = m.listen("tcp://127.0.0.1:0")
    cli = m.connect("tcp://127.0.0.1:%d" % lsn.local_addr[1])
    udp = m.listen("udp://127.0.0.1:0")
    poll_until(m, lambda: len(m.connections) == 4)
    srv = [c for c in m.connections if c not in (lsn, cli, udp)][0]
    conns = {"lsn": lsn, "cli": cli, "srv": srv, "udp": udp}
    before = {k: (c.id, c.is_client, c.is_udp, c.is_listening) for k, c in conns.items()}
    for c in conns.values():
        c.close()
    poll_until(m, lambda: len(closed) == 4 and not m.connections)
    return m, conns, before


def test_closed_connection_safe_values_and_no_ops():
    m, conns, before = closed_pair()
    try:
        assert before["lsn"][1:] == (False, False, True)
        assert before["cli"][1:] == (True, False, False)
        assert before["srv"][1:] == (False, False, False)
        assert before["udp"][1:] == (False, True, True)
        for name, c in conns.items():
            assert (c.id, c.is_client, c.is_udp, c.is_listening) == before[name], name
            assert c.recv_data() == b"" and c.send_data() == b""
            assert c.recv_data(10) == b"" and c.send_data(length=3) == b""
            assert c.recv_len == 0 and c.send_len == 0
            assert c.close() is None and c.drain() is None  # silent no-ops
            assert c.set_handler(lambda *a: None) is None
            c.close()  # twice is fine too
            assert c.id == before[name][0]
    finally:
        m.close()


def test_closed_connection_other_methods_raise_closed():
    m, conns, _ = closed_pair()
    try:
        c = conns["cli"]
        calls = [
            lambda: c.send(b"x"),
            lambda: c.reply(200),
            lambda: c.reply_json({}),
            lambda: c.http_chunk(b"x"),
            lambda: c.http_sse("e", "d"),
            lambda: c.http_basic_auth("u", "p"),
            lambda: c.ws_send("x"),
            lambda: c.error("x"),
        ]
        for call in calls:
            with pytest.raises(RuntimeError, match="closed"):
                call()
    finally:
        m.close()


def test_set_handler_after_close_changes_nothing():
    got = []
    m = Manager()
    try:
        lsn = m.listen("tcp://127.0.0.1:0", lambda c, ev, d: got.append(ev))
        lsn.close()
        poll_until(m, lambda: not m.connections)
        lsn.set_handler(lambda c, ev, d: got.append("new"))
        m.poll(0)
        assert "new" not in got
    finally:
        m.close()


def test_read_handler_still_sees_data_before_close():
    """Guard: a connection that is only closing (not yet closed) still peeks."""
    seen = []

    def handler(conn, ev, data):
        if ev == MG_EV_READ:
            seen.append(conn.recv_data())
            conn.close()
            seen.append(conn.recv_data())  # closing, not closed: data still there

    m = Manager(handler)
    try:
        port = m.listen("tcp://127.0.0.1:0").local_addr[1]
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"ping")
            poll_until(m, lambda: len(seen) == 2)
    finally:
        m.close()
    assert seen == [b"ping", b"ping"]
