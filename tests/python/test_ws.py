"""WebSocket through the binding: its server against Debian's websocket-client
(python3-websocket), its own ws_connect client against its own server and
against a raw server with a bad handshake. Everything on 127.0.0.1."""

import struct

import pytest

websocket = pytest.importorskip("websocket")  # Debian: python3-websocket

import cymongoose  # noqa: E402
from cymongoose import (  # noqa: E402
    MG_EV_CLOSE,
    MG_EV_CONNECT,
    MG_EV_ERROR,
    MG_EV_HTTP_HDRS,
    MG_EV_HTTP_MSG,
    MG_EV_READ,
    MG_EV_WS_CTL,
    MG_EV_WS_MSG,
    MG_EV_WS_OPEN,
    WEBSOCKET_OP_BINARY,
    WEBSOCKET_OP_PING,
    WEBSOCKET_OP_PONG,
    WEBSOCKET_OP_TEXT,
    HttpMessage,
    Manager,
    WsMessage,
)

from conftest import in_thread, poll_until  # noqa: E402

OP_CLOSE = 8


class EchoServer:
    """Upgrades /ws (anything else gets 404), echoes every message with its
    opcode and records what it saw: (event name, payload, opcode)."""

    def __init__(self):
        self.events = []
        self.errors = []

    def __call__(self, conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            if data.uri == "/ws":
                conn.ws_upgrade(data)
            else:
                conn.reply(404, b"not here\n")
        elif ev == MG_EV_WS_OPEN:
            self.events.append(("open", data.uri, None))
        elif ev == MG_EV_WS_MSG:
            self.events.append(("msg", data.data, data.flags & 0x0F))
            conn.ws_send(data.data, data.flags & 0x0F)
        elif ev == MG_EV_WS_CTL:
            self.events.append(("ctl", data.data, data.flags & 0x0F))
        elif ev == MG_EV_ERROR:
            self.errors.append(data)


def ws_server(handler=None, scheme="ws", **kwargs):
    """(manager, port, handler) with a listener on 127.0.0.1:<free port>."""
    handler = handler or EchoServer()
    m = Manager(handler, **kwargs)
    lsn = m.listen("%s://127.0.0.1:0" % scheme)
    return m, lsn.local_addr[1], handler


def client(port, path="/ws", **kw):
    return websocket.create_connection("ws://127.0.0.1:%d%s" % (port, path), timeout=10, **kw)


# ---- messages of every size, both kinds ----


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_echo_text_and_binary_of_every_size(scheme):
    m, port, srv = ws_server(scheme=scheme)
    sizes = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20]

    def run():
        ws = client(port)
        got = []
        try:
            for n in sizes:
                text = ("é" * n)[: n // 2] + "a" * (n - 2 * (n // 2))  # n bytes of UTF-8
                assert len(text.encode()) == n
                ws.send(text)
                got.append(("text", n, ws.recv() == text))
                blob = bytes(range(256)) * (n // 256) + bytes(n % 256)
                ws.send_binary(blob)
                opcode, data = ws.recv_data()
                got.append(("binary", n, opcode == websocket.ABNF.OPCODE_BINARY and data == blob))
        finally:
            ws.close()
        return got

    try:
        got = in_thread(m, run)
        assert all(ok for _, _, ok in got), [g for g in got if not g[2]]
        msgs = [(len(p), op) for kind, p, op in srv.events if kind == "msg"]
        expected = []
        for n in sizes:
            expected += [(n, WEBSOCKET_OP_TEXT), (n, WEBSOCKET_OP_BINARY)]
        assert msgs == expected
        assert srv.events[0] == ("open", "/ws", None)
    finally:
        m.close()


def test_fragmented_message_arrives_whole():
    m, port, srv = ws_server()
    ABNF = websocket.ABNF

    def run():
        ws = client(port)
        try:
            ws.send_frame(ABNF.create_frame(b"frag", ABNF.OPCODE_TEXT, fin=0))
            ws.ping(b"between")
            ws.send_frame(ABNF.create_frame(b"ment", ABNF.OPCODE_CONT, fin=0))
            ws.send_frame(ABNF.create_frame(b"ed", ABNF.OPCODE_CONT, fin=1))
            return ws.recv()
        finally:
            ws.close()

    try:
        assert in_thread(m, run) == "fragmented"
        assert ("ctl", b"between", WEBSOCKET_OP_PING) in srv.events
        assert [p for k, p, _ in srv.events if k == "msg"] == [b"fragmented"]
    finally:
        m.close()


# ---- control frames ----


def test_ping_pong_both_ways():
    state = {}

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev == MG_EV_WS_CTL:
            state.setdefault("ctl", []).append((data.flags & 0x0F, data.data))
        elif ev == MG_EV_WS_MSG and data.text == "ping me":
            assert conn.ws_send(b"srv", WEBSOCKET_OP_PING) is True

    m, port, _ = ws_server(handler)

    def run():
        ws = client(port)
        try:
            ws.ping(b"cli")
            pong = ws.recv_data(control_frame=True)  # the layer answers pings itself
            ws.send("ping me")
            ping = ws.recv_data(control_frame=True)  # websocket-client pongs it
            return pong, ping
        finally:
            ws.close()

    try:
        pong, ping = in_thread(m, run)
        assert pong == (websocket.ABNF.OPCODE_PONG, b"cli")
        assert ping == (websocket.ABNF.OPCODE_PING, b"srv")
        poll_until(m, lambda: (WEBSOCKET_OP_PONG, b"srv") in state.get("ctl", []))
        assert (WEBSOCKET_OP_PING, b"cli") in state["ctl"]  # reported though answered
    finally:
        m.close()


def test_close_with_code_from_the_client():
    srv = EchoServer()
    closed = []

    def handler(conn, ev, data):
        srv(conn, ev, data)
        if ev == MG_EV_CLOSE and not conn.is_listening:
            closed.append(conn.id)

    m, port, _ = ws_server(handler)

    def run():
        ws = client(port)
        ws.send("last")
        assert ws.recv() == "last"
        ws.send_close(3001, b"bye now")
        reply = ws.recv_data(control_frame=True)
        ws.shutdown()
        return reply

    try:
        opcode, payload = in_thread(m, run)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert struct.unpack("!H", payload[:2])[0] == 3001  # the code is echoed
        ctl = [(p, op) for k, p, op in srv.events if k == "ctl"]
        assert ctl == [(struct.pack("!H", 3001) + b"bye now", OP_CLOSE)]
        poll_until(m, lambda: len(closed) == 1)  # the server ends TCP
    finally:
        m.close()


def test_close_with_code_from_the_server():
    seen = {}

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev == MG_EV_WS_MSG:
            code, reason = data.text.split(" ", 1)
            assert conn.ws_send(struct.pack("!H", int(code)) + reason.encode(), OP_CLOSE)
            # After a close frame nothing more may be sent: ws_send says so.
            seen["after"] = conn.ws_send("too late")
        elif ev == MG_EV_WS_CTL:
            seen["ctl"] = (data.flags & 0x0F, data.data)
        elif ev == MG_EV_CLOSE and not conn.is_listening:
            seen["closed"] = True

    m, port, _ = ws_server(handler)

    def run():
        ws = client(port)
        try:
            ws.send("4000 done here")
            return ws.recv_data(control_frame=True)
        finally:
            ws.close()  # answers the server's close

    try:
        opcode, payload = in_thread(m, run)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert payload == struct.pack("!H", 4000) + b"done here"
        poll_until(m, lambda: seen.get("closed"))
        assert seen["after"] is False
        assert seen["ctl"][0] == OP_CLOSE
    finally:
        m.close()


def test_bad_close_payloads_are_refused():
    results = {}

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev == MG_EV_WS_MSG:
            for name, payload in (("short", b"\x03"), ("1005", struct.pack("!H", 1005)),
                                  ("999", struct.pack("!H", 999)),
                                  ("badutf8", struct.pack("!H", 1000) + b"\xff"),
                                  ("nul", struct.pack("!H", 1000) + b"a\0b"),
                                  ("long", struct.pack("!H", 1000) + b"x" * 124)):
                try:
                    conn.ws_send(payload, OP_CLOSE)
                    results[name] = "sent"
                except ValueError:
                    results[name] = "ValueError"
            results["empty"] = conn.ws_send(b"", OP_CLOSE)  # a close without a code

    m, port, _ = ws_server(handler)

    def run():
        ws = client(port)
        try:
            ws.send("go")
            return ws.recv_data(control_frame=True)
        finally:
            ws.close()

    try:
        assert in_thread(m, run) == (websocket.ABNF.OPCODE_CLOSE, b"")
        assert results == {"short": "ValueError", "1005": "ValueError", "999": "ValueError",
                           "badutf8": "ValueError", "nul": "ValueError", "long": "ValueError",
                           "empty": True}
    finally:
        m.close()


# ---- the seeds' examples ----


def test_broadcast_over_manager_connections_as_on_the_manager_page():
    manager = None

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev == MG_EV_WS_MSG and data.text == "go":
            # Broadcast to all WebSocket clients (the Manager page, as written)
            for conn in manager.connections:
                if conn.is_websocket:
                    conn.ws_send("broadcast message", WEBSOCKET_OP_TEXT)

    manager, port, _ = ws_server(handler)

    def run():
        clients = [client(port) for _ in range(4)]
        try:
            clients[2].send("go")
            return [ws.recv() for ws in clients]
        finally:
            for ws in clients:
                ws.close()

    try:
        assert in_thread(manager, run) == ["broadcast message"] * 4
        assert sum(c.is_websocket for c in manager.connections) <= 4
    finally:
        manager.close()


def test_broadcast_skips_peers_that_are_leaving():
    """A WebSocket that is closing is still in connections with is_websocket
    True until its MG_EV_CLOSE: the seed's loop must not fail on it."""
    manager = None
    results = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev == MG_EV_WS_MSG and data.text == "go":
            for other in manager.connections:
                if other.is_websocket and other is not conn:
                    assert other.ws_send(struct.pack("!H", 1001), OP_CLOSE) is True
            for other in manager.connections:
                if other.is_websocket:
                    results.append((other is conn, other.ws_send("bye to all")))

    manager, port, _ = ws_server(handler)

    def run():
        stay = client(port)
        leave = client(port)
        stay.send("go")
        got = stay.recv(), leave.recv_data(control_frame=True)
        leave.close()
        stay.close()
        return got

    try:
        got, closing = in_thread(manager, run)
        assert got == "bye to all"
        assert closing == (websocket.ABNF.OPCODE_CLOSE, struct.pack("!H", 1001))
        assert sorted(results) == [(False, False), (True, True)]
    finally:
        manager.close()


# The user guide's event handler, as written (a WebSocket server in front of it
# decides the upgrade, which the guide leaves out).
def guide_handler(conn, ev, data):
    """
    Args:
        conn: Connection object
        ev: Event type (integer constant)
        data: Event-specific data (or None)
    """
    if ev == MG_EV_HTTP_MSG:
        # data is HttpMessage
        print(f"{data.method} {data.uri}")

    elif ev == MG_EV_WS_MSG:
        # data is WsMessage
        print(f"WebSocket: {data.text}")

    elif ev == cymongoose.MG_EV_MQTT_MSG:
        # data is MqttMessage
        print(f"{data.topic}: {data.text}")


def test_user_guide_event_handler(capsys):
    def server(conn, ev, data):
        guide_handler(conn, ev, data)
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)

    m, port, _ = ws_server(server)

    def run():
        ws = client(port, "/chat")
        ws.send("hello from the guide")
        ws.close()

    try:
        in_thread(m, run)
        poll_until(m, lambda: len(m.connections) == 1)  # the server side has closed
    finally:
        m.close()
    assert capsys.readouterr().out == "GET /chat\nWebSocket: hello from the guide\n"


def test_manager_page_websocket_client_and_per_listener_handler(capsys):
    """The Manager page's "WebSocket Client" and "Per-Listener Handler"
    examples, as written, with 127.0.0.1 for example.com / 0.0.0.0."""

    def default_handler(conn, ev, data):
        pass

    def api_handler(conn, ev, data):
        # Handle API requests
        if ev == MG_EV_HTTP_MSG:
            conn.reply(200, b"api")

    def ws_handler_server(conn, ev, data):
        # Handle WebSocket connections
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev == MG_EV_WS_MSG:
            conn.ws_send("echo: " + data.text, WEBSOCKET_OP_TEXT)

    manager = Manager(default_handler)
    api = manager.listen("http://127.0.0.1:0", handler=api_handler)
    wsl = manager.listen("http://127.0.0.1:0", handler=ws_handler_server)
    assert api.handler is api_handler

    def ws_handler(conn, ev, data):
        if ev == MG_EV_WS_OPEN:
            print("WebSocket connected")
            conn.ws_send("Hello!", WEBSOCKET_OP_TEXT)
        elif ev == MG_EV_WS_MSG:
            print(f"Received: {data.text}")

    try:
        # WebSocket client (handles upgrade automatically)
        conn = manager.ws_connect("ws://127.0.0.1:%d/ws" % wsl.local_addr[1], ws_handler)
        assert conn.is_websocket and conn.is_client
        poll_until(manager, lambda: "Received" in capsys.readouterr().out)
    finally:
        manager.close()


def test_manager_page_client_output_exactly(capsys):
    m, port, _ = ws_server()
    done = []

    def ws_handler(conn, ev, data):
        if ev == MG_EV_WS_OPEN:
            print("WebSocket connected")
            conn.ws_send("Hello!", WEBSOCKET_OP_TEXT)
        elif ev == MG_EV_WS_MSG:
            print(f"Received: {data.text}")
            done.append(1)

    try:
        m.ws_connect("ws://127.0.0.1:%d/ws" % port, ws_handler)
        poll_until(m, lambda: done)
    finally:
        m.close()
    assert capsys.readouterr().out == "WebSocket connected\nReceived: Hello!\n"


# ---- the binding's own client ----


def test_own_client_against_own_server_in_one_manager():
    m, port, srv = ws_server()
    log = []

    def cl(conn, ev, data):
        if ev == MG_EV_WS_OPEN:
            assert isinstance(data, HttpMessage) and data.status() == 101
            assert data.header("Upgrade").lower() == "websocket"
            log.append("open")
        elif ev == MG_EV_WS_MSG:
            log.append((data.flags & 0x0F, data.data))
            if data.data == b"\x00\x01" * 50000:
                conn.ws_send(struct.pack("!H", 1000), OP_CLOSE)
        elif ev == MG_EV_WS_CTL:
            log.append(("ctl", data.flags & 0x0F, data.data))
        elif ev == MG_EV_ERROR:
            log.append(("error", data))
        elif ev == MG_EV_CLOSE:
            log.append("close")

    try:
        c = m.ws_connect("ws://127.0.0.1:%d/ws?x=1" % port, cl)
        assert c.is_websocket and c.is_client
        # Before the handshake: held, then sent in order at MG_EV_WS_OPEN.
        assert c.ws_send("first") is True
        assert c.ws_send(b"\x00\x01" * 50000, WEBSOCKET_OP_BINARY) is True
        assert c.send_len == 0 or b"first" not in c.send_data()
        poll_until(m, lambda: "close" in log)
        assert log == ["open", (WEBSOCKET_OP_TEXT, b"first"),
                       (WEBSOCKET_OP_BINARY, b"\x00\x01" * 50000),
                       ("ctl", OP_CLOSE, struct.pack("!H", 1000)), "close"]
        assert srv.events[0] == ("open", "/ws", None)
        assert ("ctl", struct.pack("!H", 1000), OP_CLOSE) in srv.events
        poll_until(m, lambda: len(m.connections) == 1)
    finally:
        m.close()


def test_connect_with_ws_scheme_is_ws_connect():
    m, port, _ = ws_server()
    got = []

    def cl(conn, ev, data):
        if ev == MG_EV_WS_OPEN:
            conn.ws_send("via connect()")
        elif ev == MG_EV_WS_MSG:
            got.append(data.text)
            conn.close()

    try:
        m.connect("ws://127.0.0.1:%d/ws" % port, cl)
        poll_until(m, lambda: got)
        assert got == ["via connect()"]
    finally:
        m.close()


@pytest.mark.parametrize("answer,why", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "200"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", "ccept"),
    (b"NOT HTTP AT ALL\r\n\r\n", "bad HTTP"),
])
def test_own_client_against_a_bad_handshake(answer, why):
    m = Manager()

    def raw_server(conn, ev, data):
        if ev == MG_EV_READ and b"\r\n\r\n" in conn.recv_data():
            conn.send(answer)

    port = m.listen("tcp://127.0.0.1:0", raw_server).local_addr[1]
    log = []

    def cl(conn, ev, data):
        log.append((ev, data if ev == MG_EV_ERROR else None))

    try:
        c = m.ws_connect("ws://127.0.0.1:%d/" % port, cl)
        assert c.ws_send("never sent") is True  # held for the handshake, which fails
        poll_until(m, lambda: any(ev == MG_EV_CLOSE for ev, _ in log))
        evs = [ev for ev, _ in log]
        assert MG_EV_WS_OPEN not in evs
        assert evs[-2:] == [MG_EV_ERROR, MG_EV_CLOSE]
        assert "handshake" in log[-2][1] and why in log[-2][1], log[-2][1]
        with pytest.raises(RuntimeError, match="closed"):
            c.ws_send("x")
    finally:
        m.close()


def test_own_client_connection_refused():
    from conftest import free_port

    m = Manager()
    log = []
    try:
        m.ws_connect("ws://127.0.0.1:%d/" % free_port(), lambda c, ev, d: log.append(ev))
        poll_until(m, lambda: MG_EV_CLOSE in log)
        assert log[-2:] == [MG_EV_ERROR, MG_EV_CLOSE]
    finally:
        m.close()


# ---- upgrade details ----


def test_upgrade_extra_headers_dict_and_str_and_ws_open_data():
    seen = {}

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            assert conn.is_websocket is False
            proto = "chat" if "chat" in (data.header("Sec-WebSocket-Protocol") or "") else None
            if data.uri == "/dict":
                hdrs = {"X-Served-By": "cymongoose"}
                if proto:
                    hdrs["Sec-WebSocket-Protocol"] = proto
                assert conn.ws_upgrade(data, hdrs) is True
            else:
                assert conn.ws_upgrade(data, extra_headers="X-One: 1\r\nX-Two: 2") is True
            assert conn.is_websocket is True
            assert data  # still readable after the upgrade, inside the handler
            seen["uri_after"] = data.uri
        elif ev == MG_EV_WS_OPEN:
            assert isinstance(data, HttpMessage)
            seen["open"] = (data.method, data.uri, data.query_var("room"),
                            data.header("sec-websocket-version"), data.status())

    m, port, _ = ws_server(handler)

    def run():
        a = client(port, "/dict?room=7", subprotocols=["chat"])
        ha = a.getheaders()
        sub = a.getsubprotocol()
        a.close()
        b = client(port, "/str")
        hb = b.getheaders()
        b.close()
        return ha, sub, hb

    try:
        ha, sub, hb = in_thread(m, run)
        assert ha["x-served-by"] == "cymongoose" and sub == "chat"
        assert hb["x-one"] == "1" and hb["x-two"] == "2"
        assert seen["uri_after"] == "/str"
        assert seen["open"] == ("GET", "/str", None, "13", 0)  # status() 0: a request
    finally:
        m.close()


def test_bad_upgrade_request_is_answered_400_and_http_still_works():
    import http.client

    results = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            if data.uri == "/ws":
                results.append(conn.ws_upgrade(data))
            else:
                conn.reply(200, b"plain http")

    m, port, _ = ws_server(handler)

    def run():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/")
        r = c.getresponse()
        plain = (r.status, r.read())
        c.request("GET", "/ws")  # no Upgrade headers
        r = c.getresponse()
        bad = (r.status, r.read())
        c.close()
        return plain, bad

    try:
        plain, bad = in_thread(m, run)
        assert plain == (200, b"plain http")
        assert bad[0] == 400 and bad[1]
        assert results == [False]
    finally:
        m.close()


def test_upgrade_refused_outside_http_msg_and_on_websockets():
    errors = []

    def handler(conn, ev, data):
        try:
            if ev == MG_EV_HTTP_HDRS:
                with pytest.raises(RuntimeError, match="MG_EV_HTTP_MSG"):
                    conn.ws_upgrade(data)
            elif ev == MG_EV_HTTP_MSG:
                with pytest.raises(RuntimeError, match="not a WebSocket"):
                    conn.ws_send("not yet")
                conn.ws_upgrade(data)
                with pytest.raises(RuntimeError, match="MG_EV_HTTP_MSG"):
                    conn.ws_upgrade(data)  # already upgraded
            elif ev == MG_EV_WS_MSG:
                with pytest.raises(TypeError):
                    conn.ws_upgrade(data)  # a WsMessage is not an HttpMessage
                with pytest.raises(RuntimeError):
                    conn.reply(200, b"no HTTP any more")
                conn.ws_send("checked")
        except BaseException as e:  # surfaced by the test, not the error handler
            errors.append(e)

    m, port, _ = ws_server(handler)

    def run():
        ws = client(port)
        ws.send("x")
        got = ws.recv()
        ws.close()
        return got

    try:
        assert in_thread(m, run) == "checked"
        assert errors == []
    finally:
        m.close()


# ---- views and errors ----


def test_stale_ws_message_is_false_and_empty():
    kept = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev in (MG_EV_WS_MSG, MG_EV_WS_CTL):
            assert isinstance(data, WsMessage) and bool(data)
            assert "WsMessage" in repr(data)
            kept.append(data)
            if ev == MG_EV_WS_MSG:
                conn.ws_send(data.text)

    m, port, _ = ws_server(handler)

    def run():
        ws = client(port)
        ws.send("keep me")
        ws.recv()
        ws.ping(b"p")
        ws.recv_data(control_frame=True)
        ws.close()

    try:
        in_thread(m, run)
        poll_until(m, lambda: len(kept) >= 2)
    finally:
        m.close()
    for msg in kept:
        assert not msg
        assert "stale" in repr(msg)
        assert (msg.data, msg.text, msg.flags) == (b"", "", 0)
    with pytest.raises(TypeError):
        WsMessage()


def test_text_decoding_and_flags():
    seen = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev == MG_EV_WS_MSG:
            seen.append((data.flags, data.text, data.data))
            conn.ws_send("ok")

    m, port, _ = ws_server(handler)

    def run():
        ws = client(port)
        ws.send("żółć ✓")
        ws.recv()
        ws.send_binary(b"\xffbin")
        ws.recv()
        ws.close()

    try:
        in_thread(m, run)
    finally:
        m.close()
    assert seen[0] == (0x80 | WEBSOCKET_OP_TEXT, "żółć ✓", "żółć ✓".encode())
    assert seen[1] == (0x80 | WEBSOCKET_OP_BINARY, "\ufffdbin", b"\xffbin")


def test_handler_exceptions_go_to_error_handler_and_serving_goes_on():
    caught = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev == MG_EV_WS_OPEN:
            raise KeyError("in WS_OPEN")  # raised inside ws_upgrade()
        elif ev == MG_EV_WS_MSG:
            if data.text == "boom":
                raise ValueError("in WS_MSG")
            conn.ws_send("echo " + data.text)
        elif ev == MG_EV_WS_CTL:
            raise ZeroDivisionError("in WS_CTL")

    m, port, _ = ws_server(handler, error_handler=caught.append)

    def run():
        ws = client(port)
        ws.send("boom")
        ws.ping(b"x")
        ws.send("still here")
        got = ws.recv()
        ws.close()
        ws2 = client(port)  # and new clients are served too
        ws2.send("second")
        got2 = ws2.recv()
        ws2.close()
        return got, got2

    try:
        assert in_thread(m, run) == ("echo still here", "echo second")
        poll_until(m, lambda: len(m.connections) == 1)
        kinds = [type(e) for e in caught]
        assert kinds.count(KeyError) == 2 and ValueError in kinds and ZeroDivisionError in kinds
    finally:
        m.close()


def test_keyboard_interrupt_in_ws_open_propagates_from_poll():
    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif ev == MG_EV_WS_OPEN:
            raise KeyboardInterrupt

    m, port, _ = ws_server(handler)
    try:
        c = m.ws_connect("ws://127.0.0.1:%d/ws" % port)
        with pytest.raises(KeyboardInterrupt):
            poll_until(m, lambda: False, timeout=5)
        assert c.is_websocket
    finally:
        m.close()


# ---- arguments ----


def test_bad_arguments():
    checks = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            for bad in (None, 5, "GET /", b"raw"):
                with pytest.raises(TypeError):
                    conn.ws_upgrade(bad)
            with pytest.raises(TypeError):
                conn.ws_upgrade(data, extra_headers=5)
            with pytest.raises(TypeError):
                conn.ws_upgrade(data, extra_headers=b"X: 1")
            with pytest.raises(ValueError):  # names go through str(), then the checks
                conn.ws_upgrade(data, {1: "x\n"})
            with pytest.raises(ValueError):
                conn.ws_upgrade(data, {"Bad Name": "x"})
            with pytest.raises(ValueError):
                conn.ws_upgrade(data, {"X-Inject": "a\r\nB: c"})
            with pytest.raises(ValueError):
                conn.ws_upgrade(data, "X: a\0b")
            with pytest.raises(TypeError):
                conn.ws_upgrade()
            assert conn.is_websocket is False  # nothing above upgraded it
            conn.ws_upgrade(message=data, extra_headers=None)
        elif ev == MG_EV_WS_MSG:
            for bad in (None, 12, 1.5, ["x"], {"a": 1}):
                with pytest.raises(TypeError):
                    conn.ws_send(bad)
            with pytest.raises(TypeError):
                conn.ws_send("x", op="text")
            with pytest.raises(TypeError):
                conn.ws_send("x", op=1.0)
            with pytest.raises(TypeError):
                conn.ws_send()
            with pytest.raises(TypeError):
                conn.ws_send("x", 1, 2)
            for op in (0, 3, 7, 11, -1, 2**40):
                with pytest.raises((ValueError, OverflowError)):
                    conn.ws_send("x", op)
            with pytest.raises(ValueError, match="UTF-8"):
                conn.ws_send(b"\xff\xfe", WEBSOCKET_OP_TEXT)
            with pytest.raises(ValueError, match="UTF-8"):
                conn.ws_send(b"\xe2\x82", WEBSOCKET_OP_TEXT)  # cut inside a character
            with pytest.raises(ValueError):
                conn.ws_send("\ud800")  # a lone surrogate has no UTF-8 form
            with pytest.raises(ValueError, match="125"):
                conn.ws_send(b"x" * 126, WEBSOCKET_OP_PING)
            assert conn.ws_send(b"x" * 125, WEBSOCKET_OP_PONG) is True  # unsolicited pong: fine
            assert conn.ws_send(bytearray(b"\xff\xfe"), op=WEBSOCKET_OP_BINARY) is True
            assert conn.ws_send(memoryview(b"mv")) is True
            checks.append("done")
            conn.ws_send(data="end")

    m, port, _ = ws_server(handler)

    def run():
        ws = client(port)
        ws.send("go")
        got = []
        while True:
            opcode, payload = ws.recv_data(control_frame=True)
            got.append((opcode, payload))
            if payload == b"end":
                break
        ws.close()
        return got

    try:
        got = in_thread(m, run)
        assert got == [(websocket.ABNF.OPCODE_PONG, b"x" * 125),
                       (websocket.ABNF.OPCODE_BINARY, b"\xff\xfe"),
                       (websocket.ABNF.OPCODE_TEXT, b"mv"),
                       (websocket.ABNF.OPCODE_TEXT, b"end")]
        assert checks == ["done"]
        for bad in (None, 5, b"ws://127.0.0.1:1/"):
            with pytest.raises(TypeError):
                m.ws_connect(bad)
        with pytest.raises(TypeError):
            m.ws_connect("ws://127.0.0.1:1/", handler=5)
        with pytest.raises(TypeError):
            m.ws_connect("ws://127.0.0.1:1/", http=True)  # no such argument
        for url in ("http://127.0.0.1:1/", "tcp://127.0.0.1:1", "127.0.0.1:1"):
            with pytest.raises(RuntimeError, match="Failed to connect to .*ws://"):
                m.ws_connect(url)
        with pytest.raises(RuntimeError):
            m.ws_connect("ws://[::1")  # malformed
    finally:
        m.close()
    with pytest.raises(RuntimeError, match="closed"):
        m.ws_connect("ws://127.0.0.1:1/")


def test_ws_send_on_plain_connections_and_after_close(mgr):
    lsn = mgr.listen("tcp://127.0.0.1:0")
    with pytest.raises(RuntimeError, match="not a WebSocket"):
        lsn.ws_send("x")
    c = mgr.ws_connect("ws://127.0.0.1:%d/" % lsn.local_addr[1])
    c.close()
    poll_until(mgr, lambda: len(mgr.connections) == 1)
    assert c.is_websocket is False and c.is_closing is True
    with pytest.raises(RuntimeError, match="closed"):
        c.ws_send("x")
    with pytest.raises(RuntimeError, match="closed"):
        c.ws_upgrade(None)


def test_ws_send_while_polling_on_another_thread():
    import threading
    import time

    m, port, srv = ws_server()
    got = []

    def cl(conn, ev, data):
        if ev == MG_EV_WS_MSG:
            got.append(data.text)

    c = m.ws_connect("ws://127.0.0.1:%d/ws" % port, cl)
    poll_until(m, lambda: sum(x.is_websocket for x in m.connections) == 2)
    started, stop = threading.Event(), threading.Event()

    def poller():
        started.set()
        while not stop.is_set():
            m.poll(50)

    t = threading.Thread(target=poller)
    t.start()
    started.wait()
    try:
        for i in range(50):  # the poller is waiting most of the time
            assert c.ws_send("m%d" % i) is True
        deadline = time.monotonic() + 10
        while len(got) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        t.join()
        m.close()
    assert got == ["m%d" % i for i in range(50)]  # echoed back, in order
