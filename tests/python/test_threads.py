"""Calls from other threads: every Manager and Connection method may be called
from any thread while another thread polls. It runs while the poll thread waits
(never in the middle of a dispatch), takes effect at the next poll and ends the
wait so that this comes promptly. poll() is not reentrant; close() is refused
while another thread polls."""

import socket
import threading
import time

import pytest

from cymongoose import MG_EV_ACCEPT, MG_EV_HTTP_MSG, MG_EV_READ, Manager

from conftest import poll_until

NTHREADS = 8
NMSGS = 200


def test_threads_send_and_connect_while_another_thread_polls():
    streams = {}  # server connection id -> bytearray

    def server(conn, ev, data):
        if ev == MG_EV_READ:
            streams.setdefault(conn.id, bytearray()).extend(conn.recv_data())

    m = Manager()
    url = "tcp://127.0.0.1:%d" % m.listen("tcp://127.0.0.1:0", server).local_addr[1]
    stop = threading.Event()
    failures = []

    def poller():
        while not stop.is_set():
            m.poll(1000)  # long waits: the calls below must end them

    def worker(k):
        try:
            c = m.connect(url)  # opened from this thread while the other polls
            for i in range(NMSGS):
                c.send(b"%d:%d;" % (k, i))
                if i % 50 == 25:
                    extra = m.connect(url)
                    extra.send(b"%d:x%d;" % (k, i))
                    assert extra.send_len > 0  # queued, not yet written
        except Exception as e:  # reported by the main thread
            failures.append(repr(e))

    pt = threading.Thread(target=poller)
    pt.start()
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(NTHREADS)]
    try:
        for t in workers:
            t.start()
        for t in workers:
            t.join(30)
        assert not failures, failures
        main = {k: b"".join(b"%d:%d;" % (k, i) for i in range(NMSGS)) for k in range(NTHREADS)}
        extras = {b"%d:x%d;" % (k, i) for k in range(NTHREADS) for i in range(NMSGS)
                  if i % 50 == 25}
        want = sum(map(len, main.values())) + sum(map(len, extras))
        deadline = time.monotonic() + 20
        while sum(map(len, list(streams.values()))) < want and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        pt.join()
    got = [bytes(s) for s in streams.values()]
    assert sorted(got) == sorted(list(main.values()) + list(extras))  # all there, in order
    m.close()


def test_a_call_from_another_thread_ends_the_wait():
    m = Manager()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    c = m.connect("tcp://127.0.0.1:%d" % srv.getsockname()[1])
    peer, _ = srv.accept()
    m.poll(50)
    returned = threading.Event()

    def poller():
        m.poll(60000)  # nothing to do for a minute: only a call can end it sooner
        returned.set()

    t = threading.Thread(target=poller)
    t.start()
    sent = 0
    deadline = time.monotonic() + 30
    # The first send may come before the poller reaches its wait (it is then
    # written by that poll); any later one lands while it waits and ends it.
    while not returned.wait(0.2) and time.monotonic() < deadline:
        c.send(b"w")
        sent += 1
    assert returned.is_set()
    t.join()
    m.poll(0)  # the next poll writes what is still queued
    peer.settimeout(5)
    got = b""
    while len(got) < sent:
        got += peer.recv(100)
    assert got == b"w" * sent
    peer.close()
    srv.close()
    m.close()


def test_reply_from_another_thread_while_polling():
    held = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            held.append(conn)

    m = Manager(handler)
    port = m.listen("http://127.0.0.1:0").local_addr[1]
    cli = socket.create_connection(("127.0.0.1", port))
    cli.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    poll_until(m, lambda: held)
    stop = threading.Event()

    def poller():
        while not stop.is_set():
            m.poll(1000)

    t = threading.Thread(target=poller)
    t.start()
    try:
        time.sleep(0.05)  # most likely inside its wait now; either way must work
        held[0].reply(200, b"from another thread")
        cli.settimeout(10)
        got = b""
        while not got.endswith(b"from another thread"):
            chunk = cli.recv(4096)
            assert chunk
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 OK")
    finally:
        stop.set()
        t.join()
        cli.close()
        m.close()


def test_poll_is_not_reentrant_from_a_handler():
    errors = []

    def handler(conn, ev, data):
        if ev == MG_EV_READ:
            try:
                m.poll(0)
            except RuntimeError as e:
                errors.append(str(e))

    m = Manager(handler)
    port = m.listen("tcp://127.0.0.1:0").local_addr[1]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"x")
        poll_until(m, lambda: errors)
    assert "not reentrant" in errors[0]
    m.close()


def test_poll_is_not_reentrant_from_another_thread():
    m = Manager()
    inside = threading.Event()
    release = threading.Event()

    def slow(conn, ev, data):
        if ev == MG_EV_READ:
            inside.set()
            release.wait(10)

    port = m.listen("tcp://127.0.0.1:0", slow).local_addr[1]
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"x")
    t = threading.Thread(target=lambda: poll_until(m, inside.is_set))
    t.start()
    assert inside.wait(10)
    with pytest.raises(RuntimeError, match="not reentrant"):
        m.poll(0)
    with pytest.raises(RuntimeError, match="another thread"):
        m.close()
    release.set()
    t.join()
    s.close()
    m.close()


def test_listen_and_timer_add_from_another_thread_while_polling():
    m = Manager()
    fired, accepted = threading.Event(), threading.Event()
    stop = threading.Event()

    def poller():
        while not stop.is_set():
            m.poll(1000)

    t = threading.Thread(target=poller)
    t.start()
    try:
        time.sleep(0.05)  # most likely inside its wait now; either way must work
        m.timer_add(10, fired.set)
        lsn = m.listen("tcp://127.0.0.1:0",
                       lambda conn, ev, data: ev == MG_EV_ACCEPT and accepted.set())
        with socket.create_connection(("127.0.0.1", lsn.local_addr[1])):
            assert accepted.wait(10)  # registered with the backend by the poll thread
        assert fired.wait(10)
    finally:
        stop.set()
        t.join()
        m.close()
