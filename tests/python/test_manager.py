"""Manager: life cycle, errors from handlers, threads, signals, garbage collection."""

import gc
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest

from cymongoose import MG_EV_ACCEPT, MG_EV_CLOSE, MG_EV_OPEN, MG_EV_READ, Manager

from conftest import poll_until


def test_close_delivers_close_and_is_idempotent():
    closed = []
    m = Manager(lambda c, ev, d: closed.append(c.id) if ev == MG_EV_CLOSE else None)
    a = m.listen("tcp://127.0.0.1:0")
    b = m.listen("udp://127.0.0.1:0")
    m.close()
    assert sorted(closed) == sorted([a.id, b.id])
    m.close()
    assert m.connections == ()
    for call in (lambda: m.poll(0), lambda: m.listen("tcp://127.0.0.1:0"),
                 lambda: m.connect("tcp://127.0.0.1:1"), lambda: m.timer_add(1, print),
                 m.run):
        with pytest.raises(RuntimeError, match="closed"):
            call()
    with pytest.raises(RuntimeError):
        a.send(b"x")


def test_context_manager():
    with Manager() as m:
        lsn = m.listen("tcp://127.0.0.1:0")
    assert lsn.is_closing and m.connections == ()
    with pytest.raises(RuntimeError):
        m.poll()


def test_handler_exception_goes_to_error_handler_and_loop_continues():
    errors = []
    reads = []

    def h(conn, ev, data):
        if ev == MG_EV_READ:
            reads.append(conn.recv_data())
            if len(reads) == 1:
                raise ValueError("first read fails")
            conn.send(b"ok")

    with Manager(h, error_handler=errors.append) as m:
        lsn = m.listen("tcp://127.0.0.1:0")
        with socket.create_connection(("127.0.0.1", lsn.local_addr[1]), timeout=5) as s:
            s.sendall(b"a")
            poll_until(m, lambda: errors)
            s.sendall(b"b")
            poll_until(m, lambda: len(reads) == 2)
            poll_until(m, lambda: m.connections[-1].send_len == 0)
            assert s.recv(10) == b"ok"
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    assert errors[0].__traceback__ is not None


def test_default_error_handler_prints_traceback(capsys):
    def h(conn, ev, data):
        raise RuntimeError("handler blew up")

    with Manager(h) as m:
        m.listen("tcp://127.0.0.1:0")  # OPEN raises inside listen(): reported, not raised
    err = capsys.readouterr().err
    assert "Traceback" in err and "handler blew up" in err


def test_error_handler_exception_printed_and_swallowed(capsys):
    def h(conn, ev, data):
        if ev == MG_EV_OPEN:
            raise ValueError("original")

    def bad_error_handler(exc):
        raise KeyError("error handler broke")

    with Manager(h, error_handler=bad_error_handler) as m:
        lsn = m.listen("tcp://127.0.0.1:0")
        m.poll(0)
        assert lsn.is_listening
    err = capsys.readouterr().err
    assert "error handler broke" in err


def test_keyboard_interrupt_in_handler_propagates_from_poll():
    def h(conn, ev, data):
        if ev == MG_EV_ACCEPT:
            raise KeyboardInterrupt

    with Manager(h) as m:
        lsn = m.listen("tcp://127.0.0.1:0")
        with socket.create_connection(("127.0.0.1", lsn.local_addr[1])):
            with pytest.raises(KeyboardInterrupt):
                for _ in range(500):
                    m.poll(10)
        m.poll(0)  # the loop is usable afterwards


def test_poll_reentrancy_and_close_from_handler_refused():
    seen = []

    def h(conn, ev, data):
        if ev == MG_EV_ACCEPT:
            for call in (lambda: m.poll(0), m.close):
                try:
                    call()
                except RuntimeError as e:
                    seen.append(str(e))

    with Manager(h) as m:
        lsn = m.listen("tcp://127.0.0.1:0")
        with socket.create_connection(("127.0.0.1", lsn.local_addr[1])):
            poll_until(m, lambda: len(seen) == 2)
    assert "inside" in seen[0] and "inside" in seen[1]


def test_close_from_another_thread_while_polling_raises():
    m = Manager(enable_wakeup=True)
    lsn = m.listen("tcp://127.0.0.1:0")
    running = threading.Event()
    stop = threading.Event()

    def poller():
        running.set()
        while not stop.is_set():
            m.poll(50)

    th = threading.Thread(target=poller)
    th.start()
    running.wait()
    errors = []
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        try:
            m.close()
        except RuntimeError as e:
            errors.append(str(e))
        else:
            break
    assert errors and "another thread" in errors[0]
    # Other poll-thread-only calls are refused too while it waits without the GIL,
    # or succeed when it happened to be dispatching; never both threads in C at once.
    with pytest.raises(RuntimeError):
        while time.monotonic() < deadline:
            m.poll(0)
    assert m.wakeup(lsn.id, b"hi") is True  # the thread-safe call works
    stop.set()
    th.join()
    m.close()


def test_run_requires_main_thread():
    errors = []
    m = Manager()

    def target():
        try:
            m.run()
        except RuntimeError as e:
            errors.append(str(e))

    th = threading.Thread(target=target)
    th.start()
    th.join()
    m.close()
    assert errors and "main thread" in errors[0]


def test_bad_arguments():
    with pytest.raises(TypeError):
        Manager(handler=42)
    with pytest.raises(TypeError):
        Manager(error_handler="x")
    with pytest.raises(TypeError):
        Manager(lambda *a: None, False, None, "extra")
    with Manager() as m:
        with pytest.raises(TypeError):
            m.poll("10")
        with pytest.raises(TypeError):
            m.poll(1.5)
        with pytest.raises(ValueError):
            m.poll(-1)
        with pytest.raises(ValueError):
            m.run(poll_ms=-5)
        with pytest.raises(RuntimeError):
            m.__init__()


RUN_CHILD = textwrap.dedent("""
    import signal, sys
    import cymongoose
    orig_int, orig_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    closed = []
    m = cymongoose.Manager(lambda c, ev, d: closed.append(c.id)
                           if ev == cymongoose.MG_EV_CLOSE else None)
    lsn = m.listen("tcp://127.0.0.1:0")
    m.timer_add(20, lambda: print("ready", flush=True))
    m.run(poll_ms=5000)
    assert signal.getsignal(signal.SIGINT) is orig_int, "SIGINT handler not restored"
    assert signal.getsignal(signal.SIGTERM) is orig_term, "SIGTERM handler not restored"
    assert closed == [lsn.id], closed
    assert m.connections == ()
    print("clean", flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_stops_on_signal_and_restores_handlers(sig):
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-c", RUN_CHILD], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        start = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "clean" in out
    # The signal interrupts the wait: no need to sit out poll_ms=5000.
    assert time.monotonic() - start < 3


def _make_cycle():
    box = {}

    def handler(conn, ev, data):
        return box["m"]  # the handler refers to the manager

    m = Manager(handler, error_handler=lambda e: m)
    box["m"] = m
    lsn = m.listen("tcp://127.0.0.1:0")
    lsn.userdata = m  # the connection refers to the manager too
    t = m.timer_add(100_000, lambda: m, repeat=True)  # and a timer
    return weakref.ref(m), weakref.ref(lsn), weakref.ref(t)


def test_reference_cycles_are_collected():
    refs = _make_cycle()
    gc.collect()
    assert all(r() is None for r in refs)


def test_unreferenced_manager_closes_its_connections():
    closed = []
    m = Manager(lambda c, ev, d: closed.append(ev) if ev == MG_EV_CLOSE else None)
    m.listen("tcp://127.0.0.1:0")
    del m
    gc.collect()
    assert closed == [MG_EV_CLOSE]


@pytest.mark.parametrize("name", ["epoll", "poll", "select"])
def test_backend_property_follows_cymg_backend(monkeypatch, name):
    monkeypatch.setenv("CYMG_BACKEND", name)
    m = Manager()
    assert m.backend == name
    m.close()
    with pytest.raises(RuntimeError):
        m.backend


def test_unknown_cymg_backend_is_an_error_naming_the_valid_ones(monkeypatch):
    monkeypatch.setenv("CYMG_BACKEND", "epol")
    with pytest.raises(ValueError, match="CYMG_BACKEND=epol.*epoll.*poll.*select"):
        Manager()
    monkeypatch.setenv("CYMG_BACKEND", "")
    m = Manager()
    assert m.backend in ("io_uring", "epoll")
    m.close()
