"""TCP: echo with raw-socket peers, addresses, event order, connection state."""

import gc
import socket
import weakref

import pytest

import cymongoose
from cymongoose import (MG_EV_ACCEPT, MG_EV_CLOSE, MG_EV_CONNECT, MG_EV_ERROR, MG_EV_OPEN,
                        MG_EV_POLL, MG_EV_READ, Manager)

from conftest import Recorder, free_port, poll_until


def test_echo_with_raw_socket_client(mgr):
    rec = Recorder(echo=True)
    lsn = mgr.listen("tcp://127.0.0.1:0", rec)
    port = lsn.local_addr[1]
    assert port > 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.setblocking(False)
        payload = b"hello, echo" * 1000
        s.sendall(payload)
        got = b""

        def done():
            nonlocal got
            try:
                got += s.recv(65536)
            except BlockingIOError:
                pass
            return len(got) >= len(payload)

        poll_until(mgr, done)
        assert got == payload
    accepted = [c for c in mgr.connections if not c.is_listening]
    assert len(accepted) == 1
    poll_until(mgr, lambda: len(mgr.connections) == 1)
    # The data was consumed after each READ, so it is seen exactly once.
    assert rec.received[accepted[0].id] == payload


def test_read_data_consumed_after_handler(mgr):
    seen = []

    def h(conn, ev, data):
        if ev == MG_EV_READ:
            assert isinstance(data, int) and data > 0
            assert conn.recv_len >= data
            seen.append(conn.recv_data())

    lsn = mgr.listen("tcp://127.0.0.1:0", h)
    with socket.create_connection(("127.0.0.1", lsn.local_addr[1])) as s:
        s.sendall(b"one")
        poll_until(mgr, lambda: seen)
        s.sendall(b"two")
        poll_until(mgr, lambda: b"".join(seen) == b"onetwo")
    conn = [c for c in mgr.connections if not c.is_listening][0]
    assert conn.recv_len == 0


def test_port_zero_and_addresses(mgr):
    lsn = mgr.listen("tcp://127.0.0.1:0")
    ip, port, v6 = lsn.local_addr
    assert ip == "127.0.0.1" and port > 0 and v6 is False
    assert lsn.remote_addr is None
    assert lsn.is_listening and not lsn.is_client and not lsn.is_udp
    accepted = []
    mgr.listen("tcp://127.0.0.1:0")  # a second listener does not interfere
    lsn.set_handler(lambda c, ev, d: accepted.append(c) if ev == MG_EV_ACCEPT else None)
    with socket.create_connection(("127.0.0.1", port)) as s:
        poll_until(mgr, lambda: accepted)
        c = accepted[0]
        assert c.local_addr == ("127.0.0.1", port, False)
        assert c.remote_addr == ("127.0.0.1", s.getsockname()[1], False)
        assert not c.is_listening and not c.is_client


def test_ipv6(mgr):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 not available")
    rec = Recorder(echo=True)
    lsn = mgr.listen("tcp://[::1]:0", rec)
    ip, port, v6 = lsn.local_addr
    assert (ip, v6) == ("::1", True) and port > 0
    with socket.create_connection(("::1", port), timeout=5) as s:
        s.sendall(b"six")
        s.setblocking(False)
        buf = []

        def got():
            try:
                buf.append(s.recv(100))
            except BlockingIOError:
                pass
            return b"".join(buf) == b"six"

        poll_until(mgr, got)


def test_client_and_server_events_in_order(mgr):
    srv = Recorder(echo=True)
    cli = Recorder()
    lsn = mgr.listen("tcp://127.0.0.1:0", srv)
    c = mgr.connect("tcp://127.0.0.1:%d" % lsn.local_addr[1], cli)
    assert c.is_client
    poll_until(mgr, lambda: MG_EV_CONNECT in [ev for _, ev, _ in cli.events])
    c.send("ping ✓")  # str goes out as UTF-8
    poll_until(mgr, lambda: cli.received.get(c.id) == "ping ✓".encode())
    c.close()
    poll_until(mgr, lambda: len(mgr.connections) == 1)
    names = cli.names(c.id)
    assert names[0] == "MG_EV_OPEN"
    assert names.index("MG_EV_CONNECT") < names.index("MG_EV_READ")
    assert names[-1] == "MG_EV_CLOSE" and names.count("MG_EV_CLOSE") == 1
    server_id = [cid for cid, ev, _ in srv.events if ev == MG_EV_ACCEPT][0]
    snames = srv.names(server_id)
    assert snames[:2] == ["MG_EV_OPEN", "MG_EV_ACCEPT"]
    assert snames[-1] == "MG_EV_CLOSE"
    assert srv.names(lsn.id) == ["MG_EV_OPEN"]


def test_connect_refused_error_then_close(mgr):
    rec = Recorder()
    c = mgr.connect("tcp://127.0.0.1:%d" % free_port(), rec)
    poll_until(mgr, lambda: MG_EV_CLOSE in [ev for _, ev, _ in rec.events])
    evs = [ev for _, ev, _ in rec.events]
    assert evs[0] == MG_EV_OPEN
    assert evs.index(MG_EV_ERROR) < evs.index(MG_EV_CLOSE) == len(evs) - 1
    msg = [d for _, ev, d in rec.events if ev == MG_EV_ERROR][0]
    assert isinstance(msg, str) and msg
    assert MG_EV_CONNECT not in evs
    assert c.is_closing


def test_wrapper_identity_userdata_and_set_handler(mgr):
    objs = []
    first, second = [], []
    lsn = mgr.listen("tcp://127.0.0.1:0")

    def on_first(conn, ev, data):
        if ev == MG_EV_POLL:  # the listener's, at every poll
            return
        objs.append(conn)
        first.append(ev)
        if ev == MG_EV_ACCEPT:
            conn.userdata = {"n": 1}
            conn.set_handler(on_second)

    def on_second(conn, ev, data):
        objs.append(conn)
        second.append(ev)
        conn.userdata["n"] += 1

    lsn.set_handler(on_first)
    assert lsn.handler is on_first
    with socket.create_connection(("127.0.0.1", lsn.local_addr[1])) as s:
        s.sendall(b"x")
        poll_until(mgr, lambda: MG_EV_READ in second)
    assert first == [MG_EV_OPEN, MG_EV_ACCEPT]
    assert all(o is objs[0] for o in objs)
    conn = objs[0]
    assert conn.handler is on_second
    assert conn.userdata["n"] >= 2
    conn.userdata = None
    assert conn.userdata is None
    with pytest.raises(TypeError):
        conn.set_handler(42)


def test_default_handler_and_per_listener_override():
    default, special = Recorder(), Recorder()
    with Manager(default) as m:
        a = m.listen("tcp://127.0.0.1:0")
        b = m.listen("tcp://127.0.0.1:0", special)
        assert a.handler is None and b.handler is special
        assert [cid for cid, _, _ in default.events] == [a.id]
        assert [cid for cid, _, _ in special.events] == [b.id]


def test_closed_connection_raises_and_reports_safe_values(mgr):
    rec = Recorder()
    lsn = mgr.listen("tcp://127.0.0.1:0", rec)
    lid = lsn.id
    lsn.close()
    assert lsn.is_closing
    poll_until(mgr, lambda: not mgr.connections)
    assert rec.names(lid) == ["MG_EV_OPEN", "MG_EV_CLOSE"]
    for call in (lambda: lsn.send(b"x"), lambda: lsn.error("x")):
        with pytest.raises(RuntimeError, match="connection is closed"):
            call()
    # The rest of the closed-connection contract: test_dropin_views.py.
    assert lsn.recv_data() == b"" and lsn.send_data() == b""
    assert lsn.id == lid
    assert lsn.is_closing is True
    assert lsn.is_listening is True  # kept from before the close
    assert lsn.is_udp is False and lsn.is_full is False
    assert lsn.local_addr is None and lsn.remote_addr is None
    assert (lsn.recv_len, lsn.send_len, lsn.recv_size, lsn.send_size) == (0, 0, 0, 0)
    assert "closed" in repr(lsn)


def test_wrappers_released_after_close(mgr):
    lsn = mgr.listen("tcp://127.0.0.1:0")
    refs = []
    lsn.set_handler(lambda c, ev, d: refs.append(weakref.ref(c)) if ev == MG_EV_ACCEPT else None)
    socks = [socket.create_connection(("127.0.0.1", lsn.local_addr[1])) for _ in range(5)]
    poll_until(mgr, lambda: len(refs) == 5)
    assert all(r() is not None for r in refs)  # alive while open, even unreferenced
    for s in socks:
        s.close()
    poll_until(mgr, lambda: len(mgr.connections) == 1)
    gc.collect()
    assert all(r() is None for r in refs)


def test_send_recv_peek_and_drain(mgr):
    got = []
    lsn = mgr.listen("tcp://127.0.0.1:0")

    def h(conn, ev, data):
        if ev == MG_EV_READ:
            assert conn.recv_data(2) == conn.recv_data()[:2]
            assert conn.recv_data(0) == b""
            assert conn.recv_data(10**9) == conn.recv_data()
            with pytest.raises(ValueError):
                conn.recv_data(-2)
            with pytest.raises(ValueError):
                conn.send_data(-5)
            with pytest.raises(TypeError):
                conn.send(12345)
            conn.send(bytearray(b"a"))
            conn.send(memoryview(b"bc"))
            assert isinstance(conn.send_data(), bytes)
            got.append(conn)
            conn.drain()
            assert conn.is_draining or conn.is_closing

    lsn.set_handler(h)
    with socket.create_connection(("127.0.0.1", lsn.local_addr[1]), timeout=5) as s:
        s.sendall(b"hello")
        poll_until(mgr, lambda: got)
        poll_until(mgr, lambda: len(mgr.connections) == 1)
        data = b""
        while True:
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
        assert data == b"abc"  # everything queued left before the close


def test_error_method_delivers_error_then_close(mgr):
    rec = Recorder()
    lsn = mgr.listen("tcp://127.0.0.1:0")
    lsn.set_handler(lambda c, ev, d: (rec(c, ev, d), c.error("bad peer")
                                      if ev == MG_EV_ACCEPT else None))
    with socket.create_connection(("127.0.0.1", lsn.local_addr[1])):
        poll_until(mgr, lambda: MG_EV_CLOSE in [ev for _, ev, _ in rec.events])
    errs = [d for _, ev, d in rec.events if ev == MG_EV_ERROR]
    assert errs == ["bad peer"]
    with pytest.raises(TypeError):
        lsn.error(b"bytes")


def test_connections_snapshot(mgr):
    a = mgr.listen("tcp://127.0.0.1:0")
    b = mgr.listen("udp://127.0.0.1:0")
    snap = mgr.connections
    assert isinstance(snap, tuple)
    assert snap == (a, b)
    a.close()
    assert mgr.connections == (a, b)  # closing connections stay until CLOSE
    poll_until(mgr, lambda: mgr.connections == (b,))
    assert snap == (a, b)  # a snapshot, not a view


def test_listen_errors(mgr):
    with pytest.raises(RuntimeError):
        mgr.listen("bogus")
    with pytest.raises(RuntimeError, match="scheme"):
        mgr.listen("gopher://127.0.0.1:0")  # unknown (mqtt:// is plain TCP for now)
    with pytest.raises(RuntimeError):
        mgr.connect("tcp://127.0.0.1")  # no port
    with pytest.raises(TypeError):
        mgr.listen(8000)
    with pytest.raises(TypeError):
        mgr.listen("tcp://127.0.0.1:0", handler=3)
    with pytest.raises(ValueError):
        mgr.listen("tcp://127.0.0.1:0\0x")
    busy = mgr.listen("tcp://127.0.0.1:0")
    with pytest.raises(RuntimeError, match="bind"):
        mgr.listen("tcp://127.0.0.1:%d" % busy.local_addr[1])
    assert mgr.connections == (busy,)


def test_tls_schemes_listen(mgr):
    # TLS exists in the library: https and wss listen (their options come
    # from tls_init, the binding's part); so does mqtts, TLS under MQTT.
    tls = [mgr.listen(url) for url in ("https://127.0.0.1:0", "wss://127.0.0.1:0",
                                       "mqtts://127.0.0.1:0")]
    assert all(c.local_addr[1] != 0 for c in tls)
    for c in tls:
        c.close()
    mgr.poll(0)
    raw = mgr.listen("http://127.0.0.1:0", http=False)  # explicit raw TCP
    assert raw.is_listening and not raw.is_udp
    raw_ws = mgr.listen("ws://127.0.0.1:0", http=False)
    ws = mgr.listen("ws://127.0.0.1:0")  # WebSocket starts as HTTP (see test_ws.py)
    assert mgr.connections == (raw, raw_ws, ws)
    assert not any(c.is_websocket for c in mgr.connections)  # listeners never are
    with pytest.raises(RuntimeError, match="tcp"):
        mgr.listen("udp://127.0.0.1:0", http=True)


def test_repr(mgr):
    lsn = mgr.listen("tcp://127.0.0.1:0")
    assert "listening" in repr(lsn) and str(lsn.local_addr[1]) in repr(lsn)
    assert "Manager" in repr(mgr)


def test_is_websocket_false_and_flags(mgr):
    lsn = mgr.listen("tcp://127.0.0.1:0")
    assert lsn.is_websocket is False
    assert lsn.is_tls is False
    assert isinstance(lsn.is_readable, bool) and isinstance(lsn.is_writable, bool)
    assert cymongoose.Connection is type(lsn)
