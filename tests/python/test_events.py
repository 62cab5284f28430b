"""MG_EV_POLL (data None) reaches every connection's handler, listeners
included, at every poll(); Manager(poll_events=False) turns it off. MG_EV_READ
(data: bytes read) reaches HTTP connections' handlers too."""

import socket

from cymongoose import (MG_EV_CONNECT, MG_EV_HTTP_MSG, MG_EV_POLL, MG_EV_READ, Manager)

from conftest import poll_until


def test_poll_reaches_every_handler_at_every_poll():
    seen = []

    def handler(conn, ev, data):
        if ev == MG_EV_POLL:
            seen.append((conn.id, data))

    with Manager(handler) as m:
        lsn = m.listen("tcp://127.0.0.1:0")
        c = m.connect("tcp://127.0.0.1:%d" % lsn.local_addr[1])
        poll_until(m, lambda: len(m.connections) == 3)
        ids = {x.id for x in m.connections}
        assert lsn.id in ids and c.id in ids
        for _ in range(3):
            del seen[:]
            m.poll(0)
            assert sorted(cid for cid, _ in seen) == sorted(ids)  # once each, listener too
            assert all(data is None for _, data in seen)


def test_poll_events_can_be_switched_off():
    seen = []
    with Manager(lambda conn, ev, data: seen.append(ev), poll_events=False) as m:
        m.listen("tcp://127.0.0.1:0")
        for _ in range(3):
            m.poll(0)
    assert MG_EV_POLL not in seen and seen  # OPEN still came


def test_poll_follows_set_handler():
    seen = []
    with Manager() as m:
        lsn = m.listen("tcp://127.0.0.1:0")  # no handler at all: nothing to call
        m.poll(0)
        lsn.set_handler(lambda conn, ev, data: seen.append(ev))
        m.poll(0)
        assert seen == [MG_EV_POLL]
        lsn.set_handler(None)
        m.poll(0)
        assert seen == [MG_EV_POLL]


def test_read_reaches_http_handlers():
    reads = {}
    order = []

    def handler(conn, ev, data):
        if ev == MG_EV_READ:
            assert isinstance(data, int) and data > 0
            reads[conn.id] = reads.get(conn.id, 0) + data
            order.append(("READ", conn.is_client))
        elif ev == MG_EV_HTTP_MSG:
            order.append(("MSG", conn.is_client))
            if not conn.is_client:
                conn.reply(200, b"hi")

    with Manager(handler) as m:
        port = m.listen("http://127.0.0.1:0").local_addr[1]
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(request)
            poll_until(m, lambda: ("READ", False) in order)
            assert order.index(("MSG", False)) < order.index(("READ", False))
            assert sum(reads.values()) == len(request)
        # and on an HTTP client
        connected = []
        c = m.connect("http://127.0.0.1:%d" % port)
        c.set_handler(lambda conn, ev, data: (ev == MG_EV_CONNECT and connected.append(1),
                                              handler(conn, ev, data)))
        poll_until(m, lambda: connected)
        c.send(request)
        poll_until(m, lambda: ("MSG", True) in order and ("READ", True) in order)
        assert reads[c.id] > 0
