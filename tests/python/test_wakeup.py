"""wakeup(): the one thread-safe call. Payloads are delivered or refused."""

import queue
import threading
import time

import pytest

from cymongoose import MG_EV_WAKEUP, Manager

from conftest import poll_until


def test_wakeup_delivers_bytes_to_the_right_connection():
    got = []

    def h(conn, ev, data):
        if ev == MG_EV_WAKEUP:
            got.append((conn.id, data))

    with Manager(h, enable_wakeup=True) as m:
        assert m.wakeup_id > 0
        a = m.listen("tcp://127.0.0.1:0")
        b = m.listen("tcp://127.0.0.1:0")
        assert m.wakeup_id not in [c.id for c in m.connections]
        assert m.wakeup(b.id, b"for b") is True
        assert m.wakeup(a.id, bytearray(b"for a")) is True
        assert m.wakeup(a.id) is True
        poll_until(m, lambda: len(got) == 3)
        assert got == [(b.id, b"for b"), (a.id, b"for a"), (a.id, b"")]


def test_wakeup_argument_errors():
    with Manager(enable_wakeup=True) as m:
        c = m.listen("tcp://127.0.0.1:0")
        with pytest.raises(TypeError, match="str"):
            m.wakeup(c.id, "text")
        with pytest.raises(TypeError):
            m.wakeup("1", b"x")
        with pytest.raises(TypeError):
            m.wakeup(c.id, 5)
        with pytest.raises(ValueError):
            m.wakeup(-1, b"x")


def test_wakeup_not_enabled_returns_false():
    with Manager() as m:
        c = m.listen("tcp://127.0.0.1:0")
        assert m.wakeup_id == 0
        assert m.wakeup(c.id, b"x") is False


def test_wakeup_to_missing_or_closed_connection_returns_false():
    # Refused at the call (False), not queued and dropped later: an id never
    # used, the wakeup channel's own, a connection closed but not yet freed
    # (its MG_EV_CLOSE still to come), and one already freed.
    got = []

    def h(conn, ev, data):
        if ev == MG_EV_WAKEUP:
            got.append((conn.id, data))

    with Manager(h, enable_wakeup=True) as m:
        a = m.listen("tcp://127.0.0.1:0")
        b = m.listen("tcp://127.0.0.1:0")
        assert m.wakeup(b.id + 1000, b"x") is False
        assert m.wakeup(0, b"x") is False
        assert m.wakeup(m.wakeup_id, b"x") is False
        a_id = a.id
        a.close()
        assert a_id in [c.id for c in m.connections]  # closing, not yet freed
        assert m.wakeup(a_id, b"x") is False
        assert m.wakeup(b.id, b"for b") is True
        poll_until(m, lambda: got == [(b.id, b"for b")])
        assert a_id not in [c.id for c in m.connections]
        assert m.wakeup(a_id, b"x") is False
        m.poll(0)
        assert got == [(b.id, b"for b")]


def test_wakeup_on_closed_manager_raises():
    m = Manager(enable_wakeup=True)
    m.close()
    assert m.wakeup_id == 0
    with pytest.raises(RuntimeError, match="closed"):
        m.wakeup(1, b"x")


def test_threading_guide_pattern_nothing_lost():
    """The seed's pattern: workers hand results back with wakeup(conn_id, ...)."""
    n_threads, per_thread = 8, 1000
    results = queue.Queue()
    received = {i: [] for i in range(n_threads)}

    def handler(conn, ev, data):
        if ev == MG_EV_WAKEUP:
            th, seq = data.split(b":")
            received[int(th)].append(int(seq))
            results.get_nowait()

    m = Manager(handler, enable_wakeup=True)
    target = m.listen("tcp://127.0.0.1:0")
    failures = []

    def worker(th):
        for seq in range(per_thread):
            results.put(seq)
            if not m.wakeup(target.id, b"%d:%d" % (th, seq)):
                failures.append((th, seq))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    total = n_threads * per_thread
    poll_until(m, lambda: sum(map(len, received.values())) == total
               and not any(t.is_alive() for t in threads), timeout=60)
    for t in threads:
        t.join()
    assert failures == []
    for th in range(n_threads):
        assert received[th] == list(range(per_thread))  # complete and in order
    assert results.empty()
    m.close()


def test_poll_releases_the_gil_while_waiting():
    """A worker can call wakeup() while the main thread sits in poll(): the GIL
    is free during the wait, and the wakeup ends the wait early."""
    got = []
    with Manager(lambda c, ev, d: got.append(d) if ev == MG_EV_WAKEUP else None,
                 enable_wakeup=True) as m:
        lsn = m.listen("tcp://127.0.0.1:0")

        def worker():
            time.sleep(0.05)
            m.wakeup(lsn.id, b"wake")

        th = threading.Thread(target=worker)
        th.start()
        start = time.monotonic()
        while not got and time.monotonic() - start < 5:
            m.poll(3000)
        elapsed = time.monotonic() - start
        th.join()
    assert got == [b"wake"]
    assert elapsed < 1.5
