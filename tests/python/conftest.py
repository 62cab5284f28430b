"""Shared helpers for the cymongoose tests. Every socket here is on loopback."""

import socket
import time

import pytest

import cymongoose


def poll_until(mgr, cond, timeout=5.0, step_ms=10):
    """Poll mgr until cond() is true; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached within %.1fs" % timeout)
        mgr.poll(step_ms)


def free_port(kind=socket.SOCK_STREAM):
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """An event handler that records (conn_id, ev, data) and can echo.
    MG_EV_POLL, which comes at every poll, is left out unless polls=True."""

    def __init__(self, echo=False, polls=False):
        self.events = []
        self.echo = echo
        self.polls = polls
        self.received = {}

    def __call__(self, conn, ev, data):
        if ev == cymongoose.MG_EV_POLL and not self.polls:
            return
        self.events.append((conn.id, ev, data))
        if ev == cymongoose.MG_EV_READ:
            chunk = conn.recv_data()
            self.received[conn.id] = self.received.get(conn.id, b"") + chunk
            if self.echo:
                conn.send(chunk)

    def names(self, conn_id):
        return [cymongoose.event_name(ev) for cid, ev, _ in self.events if cid == conn_id]


@pytest.fixture
def mgr():
    m = cymongoose.Manager()
    yield m
    m.close()


def in_thread(mgr, fn, timeout=30.0, step_ms=5):
    """Runs fn() in a thread (a blocking peer: urllib, http.client, sockets) while
    polling mgr on this one; returns fn's result or raises its exception."""
    import threading

    out = {}

    def run():
        try:
            out["result"] = fn()
        except BaseException as e:  # handed to the test thread
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while t.is_alive():
        if time.monotonic() > deadline:
            pytest.fail("peer thread did not finish within %.1fs" % timeout)
        mgr.poll(step_ms)
    if "error" in out:
        raise out["error"]
    return out.get("result")


def http_server(handler, **kwargs):
    """A Manager listening on http://127.0.0.1:<free port>; returns (mgr, port)."""
    m = cymongoose.Manager(handler, **kwargs)
    lsn = m.listen("http://127.0.0.1:0")
    return m, lsn.local_addr[1]


def wsgi_serving(app, **kwargs):
    """A context manager: a cymongoose.wsgi.WSGIServer for app on a free
    loopback port, run() on a thread; yields (server, port) and closes it."""
    import contextlib
    import threading

    from cymongoose.wsgi import WSGIServer

    @contextlib.contextmanager
    def cm():
        srv = WSGIServer(app, **kwargs)
        port = srv.listen("http://127.0.0.1:0").local_addr[1]
        t = threading.Thread(target=srv.run, kwargs={"poll_ms": 20}, daemon=True)
        t.start()
        try:
            yield srv, port
        finally:
            srv.close()
            t.join(30)
            assert not t.is_alive(), "WSGIServer.run() did not end after close()"

    return cm()


def raw_exchange(port, data, until=None, timeout=30.0):
    """Sends data on a fresh loopback socket and reads until `until` (bytes)
    has been seen that many times (a (needle, count) pair), or EOF."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while True:
            if until is not None and got.count(until[0]) >= until[1]:
                return got
            if time.monotonic() > deadline:
                pytest.fail("no complete answer within %.1fs: %r" % (timeout, got[:500]))
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """The throwaway TLS material of tests/data/mkcerts.sh (CA, RSA and EC server
    certificates, client, expired, self-signed, ...), made once per session."""
    from tls_peers import make_certs

    return make_certs(str(tmp_path_factory.mktemp("certs")))


def cymg_tool():
    """The cymg tool of the build tree the package was loaded from (skips if absent)."""
    import os

    build = os.path.dirname(os.path.dirname(os.path.dirname(cymongoose.__file__)))
    path = os.path.join(build, "tools", "cymg")
    if not os.access(path, os.X_OK):
        pytest.skip("the cymg tool is not in this build tree")
    return path
