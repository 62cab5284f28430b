"""Header checks of reply(), reply_json() and ws_upgrade(extra_headers=...): the
contract's exact ValueError messages, raised before anything is queued and
whatever the connection's state, so the handler can still answer."""

import socket

import pytest

import cymongoose
from cymongoose import MG_EV_HTTP_MSG, Manager

from conftest import in_thread, poll_until

NAME_MSG = "Header name contains illegal character (CR, LF, or NUL): "
VALUE_MSG = "Header value contains illegal character (CR, LF, or NUL): "


def raw_get(port, path="/", extra=b""):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  + extra + b"\r\n")
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk


def serve_once(body, path="/", extra=b""):
    """Runs body(conn, msg) in the MG_EV_HTTP_MSG handler; returns (what body
    returned, the raw response the client got)."""
    out = {}

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            try:
                out["result"] = body(conn, data)
            except BaseException as e:  # handed to the test
                out["error"] = e
                conn.reply(500, b"test failed")

    m = Manager(handler)
    try:
        port = m.listen("http://127.0.0.1:0").local_addr[1]
        raw = in_thread(m, lambda: raw_get(port, path, extra))
    finally:
        m.close()
    if "error" in out:
        raise out["error"]
    return out.get("result"), raw


class StrIs:
    """A key or value whose str() is given: non-str objects go through str()."""

    def __init__(self, s):
        self.s = s

    def __str__(self):
        return self.s


BAD_NAMES = ["X-Bad\r\nInjected", "X-Bad\nX", "X-Bad\rX", "X\0Nul", "\r\n"]
BAD_VALUES = ["v\r\nX-Injected: 1", "v\nx", "v\rx", "v\0x"]


def check_all_rejected(conn, call):
    """Every bad name and value raises the exact message and queues nothing."""
    seen = []
    before = conn.send_len
    for name in BAD_NAMES:
        with pytest.raises(ValueError) as ei:
            call({name: "ok"})
        seen.append(str(ei.value) == NAME_MSG + repr(name))
    for value in BAD_VALUES:
        with pytest.raises(ValueError) as ei:
            call({"X-Good": value})
        seen.append(str(ei.value) == VALUE_MSG + repr(value))
    # A non-str key or value is checked as its str().
    with pytest.raises(ValueError) as ei:
        call({StrIs("K\r\nJ"): "v"})
    seen.append(str(ei.value) == NAME_MSG + repr("K\r\nJ"))
    with pytest.raises(ValueError) as ei:
        call({"K": StrIs("v\nw")})
    seen.append(str(ei.value) == VALUE_MSG + repr("v\nw"))
    seen.append(conn.send_len == before)  # nothing queued by any of them
    return seen


def test_reply_header_errors_then_400_still_possible():
    def body(conn, msg):
        seen = check_all_rejected(conn, lambda h: conn.reply(200, b"never", h))
        conn.reply(400, b"bad headers")
        return seen

    seen, raw = serve_once(body)
    assert all(seen), seen
    assert raw.startswith(b"HTTP/1.1 400 ")
    assert raw.endswith(b"bad headers") and b"never" not in raw and b"Injected" not in raw


def test_reply_json_header_errors_then_400_still_possible():
    def body(conn, msg):
        seen = check_all_rejected(conn, lambda h: conn.reply_json({"a": 1}, 200, h))
        conn.reply_json({"error": "bad"}, 400)
        return seen

    seen, raw = serve_once(body)
    assert all(seen), seen
    assert raw.startswith(b"HTTP/1.1 400 ") and raw.endswith(b'{"error": "bad"}')


def test_ws_upgrade_extra_header_errors_then_400_still_possible():
    upgrade = (b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")

    def body(conn, msg):
        seen = check_all_rejected(conn, lambda h: conn.ws_upgrade(msg, extra_headers=h))
        seen.append(not conn.is_websocket)
        conn.reply(400, b"no upgrade")
        return seen

    seen, raw = serve_once(body, extra=upgrade)
    assert all(seen), seen
    assert raw.startswith(b"HTTP/1.1 400 ") and b"101" not in raw.split(b"\r\n")[0]


def test_other_rejected_names_use_the_same_wording():
    def body(conn, msg):
        msgs = []
        for name in ("", "Bad Name", "Bad:Name", "Bad(Name)", "Bäd", "X\tY", "X@Y"):
            with pytest.raises(ValueError) as ei:
                conn.reply(200, b"", {name: "v"})
            msgs.append(str(ei.value))
        conn.reply(400)
        return msgs

    msgs, raw = serve_once(body)
    assert len(msgs) == 7
    assert all(m.startswith("Header name contains illegal character") for m in msgs), msgs
    assert raw.startswith(b"HTTP/1.1 400 ")


def test_non_str_names_and_values_are_converted_with_str():
    def body(conn, msg):
        conn.reply(200, b"ok", {"X-Num": 5, 123: "digits", StrIs("X-Obj"): StrIs("val")})

    _, raw = serve_once(body)
    head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert b"X-Num: 5" in head and b"123: digits" in head and b"X-Obj: val" in head


def test_checked_first_on_a_listener_and_on_a_closed_connection():
    m = Manager()
    try:
        lsn = m.listen("http://127.0.0.1:0")
        for call in (lambda h: lsn.reply(200, b"", h), lambda h: lsn.reply_json(1, 200, h)):
            with pytest.raises(ValueError) as ei:
                call({"A\r\n": "b"})
            assert str(ei.value) == NAME_MSG + repr("A\r\n")
            with pytest.raises(ValueError) as ei:
                call({"A": "b\0"})
            assert str(ei.value) == VALUE_MSG + repr("b\0")
        # A valid reply on a listener is still refused, but as a state error.
        with pytest.raises(RuntimeError):
            lsn.reply(200, b"", {"A": "b"})
        lsn.close()
        poll_until(m, lambda: not m.connections)
        with pytest.raises(ValueError, match="Header name contains illegal character"):
            lsn.reply(200, b"", {"A\n": "b"})
        with pytest.raises(ValueError, match="Header value contains illegal character"):
            lsn.reply_json({}, 200, {"A": "\r"})
        with pytest.raises(RuntimeError, match="closed"):
            lsn.reply(200, b"", {"A": "b"})
    finally:
        m.close()


def test_headers_must_be_a_mapping():
    m = Manager()
    try:
        lsn = m.listen("http://127.0.0.1:0")
        with pytest.raises(TypeError):
            lsn.reply(200, b"", ["A: b"])
        with pytest.raises(TypeError):
            lsn.reply(200, b"", b"A: b")
    finally:
        m.close()
    assert cymongoose.Manager  # the package root still imports everything
