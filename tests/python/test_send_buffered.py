"""Sending is buffered until the next poll: send(), reply(), reply_json(),
http_chunk(), http_sse(), ws_send() and http_basic_auth() only append to the
send buffer (send_len counts it, send_data() shows it); the next poll writes
everything queued on a connection in one system call. UDP sends at once."""

import select
import socket
import struct
import time

import pytest

from cymongoose import (MG_EV_CONNECT, MG_EV_HTTP_MSG, MG_EV_WS_OPEN, Manager)

from conftest import poll_until


def readable(sock):
    return bool(select.select([sock], [], [], 0)[0])


def recv_until(mgr, sock, n, timeout=5.0):
    """Polls mgr while reading sock until n bytes came; returns them."""
    got = b""
    deadline = time.monotonic() + timeout
    sock.setblocking(False)
    while len(got) < n:
        if time.monotonic() > deadline:
            pytest.fail("only %d of %d bytes arrived" % (len(got), n))
        mgr.poll(10)
        try:
            got += sock.recv(65536)
        except BlockingIOError:
            pass
    return got


def raw_pair(m):
    """(client Connection, accepted raw socket, listening raw socket)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    events = []
    c = m.connect("tcp://127.0.0.1:%d" % srv.getsockname()[1], lambda c, ev, d: events.append(ev))
    peer, _ = srv.accept()
    poll_until(m, lambda: MG_EV_CONNECT in events)
    m.poll(0)
    return c, peer, srv


def test_send_is_queued_until_the_next_poll():
    with Manager() as m:
        c, peer, srv = raw_pair(m)
        with peer, srv:
            c.send(b"abc")
            c.send("déf")
            assert c.send_len == 3 + len("déf".encode())
            assert c.send_data() == b"abc" + "déf".encode()
            assert c.send_data(2) == b"ab"
            assert not readable(peer)  # nothing was written yet
            assert recv_until(m, peer, 7) == b"abc" + "déf".encode()
            assert c.send_len == 0


def segs_in(sock):
    """Segments this socket has received (Linux tcp_info.tcpi_segs_in)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("I", info, 140)[0]


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="needs Linux tcp_info")
def test_many_sends_leave_in_one_write():
    # The sockets have TCP_NODELAY: each write would be its own segment (at
    # least most of them); one write of the whole queue is one segment.
    with Manager() as m:
        c, peer, srv = raw_pair(m)
        with peer, srv:
            time.sleep(0.05)  # let the handshake's ACKs settle before counting
            before = segs_in(peer)
            for i in range(100):
                c.send(b"%09d;" % i)
            assert c.send_len == 1000
            got = recv_until(m, peer, 1000)
            assert got == b"".join(b"%09d;" % i for i in range(100))
            assert segs_in(peer) - before <= 2


def http_conn_waiting(m):
    """An HTTP server connection whose request arrived and is not answered,
    and the raw client socket."""
    held = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            held.append(conn)

    lsn = m.listen("http://127.0.0.1:0", handler)
    cli = socket.create_connection(("127.0.0.1", lsn.local_addr[1]))
    cli.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    poll_until(m, lambda: held)
    m.poll(0)
    return held[0], cli


@pytest.mark.parametrize("call, expect", [
    (lambda c: c.reply(200, b"hello"), b"hello"),
    (lambda c: c.reply_json({"a": 1}), b'{"a": 1}'),
    (lambda c: c.http_chunk(b"piece"), b"5\r\npiece\r\n"),
    (lambda c: c.http_sse("tick", "data1"), b"event: tick\ndata: data1\n\n"),
])
def test_replies_are_queued_until_the_next_poll(call, expect):
    with Manager() as m:
        conn, cli = http_conn_waiting(m)
        with cli:
            call(conn)
            queued = conn.send_data()
            assert queued.startswith(b"HTTP/1.1 200 OK\r\n")
            assert expect in queued
            assert conn.send_len == len(queued)
            assert not readable(cli)
            assert recv_until(m, cli, len(queued)) == queued


def test_ws_send_is_queued_until_the_next_poll():
    with Manager() as m:
        def srv(conn, ev, data):
            if ev == MG_EV_HTTP_MSG:
                conn.ws_upgrade(data)

        lsn = m.listen("ws://127.0.0.1:0", srv)
        opened = []
        c = m.ws_connect("ws://127.0.0.1:%d/" % lsn.local_addr[1],
                         lambda conn, ev, d: ev == MG_EV_WS_OPEN and opened.append(1))
        poll_until(m, lambda: opened)
        m.poll(0)
        assert c.send_len == 0
        assert c.ws_send("hello") is True
        assert c.send_len == 2 + 4 + 5  # header, mask key, payload (a client masks)
        assert c.send_data()[:2] == b"\x81\x85"
        poll_until(m, lambda: c.send_len == 0)


def test_http_basic_auth_appends_exactly_one_header_line():
    with Manager() as m:
        c, peer, srv = raw_pair(m)
        with peer, srv:
            c.send(b"GET / HTTP/1.1\r\n")
            c.http_basic_auth("user", "pass")
            line = b"Authorization: Basic dXNlcjpwYXNz\r\n"
            assert c.send_data() == b"GET / HTTP/1.1\r\n" + line
            c.http_basic_auth("user", "")  # RFC 7617: an empty password is "user:"
            assert c.send_data().endswith(b"Authorization: Basic dXNlcjo=\r\n")
            assert recv_until(m, peer, c.send_len) == b"GET / HTTP/1.1\r\n" + line + \
                b"Authorization: Basic dXNlcjo=\r\n"


def test_udp_send_is_one_datagram_sent_at_once():
    with Manager() as m:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        with peer:
            c = m.connect("udp://127.0.0.1:%d" % peer.getsockname()[1])
            c.send(b"one")
            c.send(b"two")
            assert c.send_len == 0
            peer.settimeout(5)
            assert peer.recv(100) == b"one"  # no poll in between
            assert peer.recv(100) == b"two"
