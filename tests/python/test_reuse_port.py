"""Manager.listen(reuse_port=True): SO_REUSEPORT before bind, so several
managers (threads or processes) listen on one port and the kernel spreads the
connections over them. The kernel picks a listener by a hash of the peer's
address and port, so a test opens many connections (each from its own source
port) and asks only that every listener got some."""

import socket

import pytest

import cymongoose
from conftest import poll_until

CONNECTIONS = 200  # all in one listener by chance: 2 ** -199


def poll_both(a, b, cond):
    """Polls both managers (one thread) until cond() holds; fails after 10 s."""

    class Both:
        def poll(self, ms):
            a.poll(0)
            b.poll(ms)

    poll_until(Both(), cond, timeout=10.0, step_ms=2)


def http_pair(scheme):
    """Two Managers each listening on the same port with reuse_port=True; each
    answers with its own name. Returns (managers, port, served per name)."""
    served = {"a": 0, "b": 0}

    def handler_for(name):
        def handler(conn, ev, data):
            if ev == cymongoose.MG_EV_HTTP_MSG:
                served[name] += 1
                conn.reply(200, name.encode(), headers={"Connection": "close"})

        return handler

    a = cymongoose.Manager(handler_for("a"))
    b = cymongoose.Manager(handler_for("b"))
    port = a.listen("%s://127.0.0.1:0" % scheme, reuse_port=True).local_addr[1]
    lsn = b.listen("%s://127.0.0.1:%d" % (scheme, port), reuse_port=True)
    assert lsn.local_addr[1] == port
    return (a, b), port, served


@pytest.mark.parametrize("scheme", ["http", "ws"])
def test_two_http_listeners_share_a_port(scheme):
    (a, b), port, served = http_pair(scheme)
    try:
        # The kernel queues each connection on one listener whether or not it
        # has been accepted yet, so the requests can all go out first.
        clients = []
        for _ in range(CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(s)
        poll_both(a, b, lambda: served["a"] + served["b"] == CONNECTIONS)
        bodies = {"a": 0, "b": 0}
        for s in clients:
            got = b""
            while True:
                a.poll(0)
                b.poll(0)
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            assert got.startswith(b"HTTP/1.1 200")
            bodies[got.rsplit(b"\r\n\r\n", 1)[1].decode()] += 1
            s.close()
        assert bodies == served
        assert served["a"] > 0 and served["b"] > 0, served
    finally:
        a.close()
        b.close()


def test_two_tcp_listeners_share_a_port():
    accepted = {"a": 0, "b": 0}

    def handler_for(name):
        def handler(conn, ev, data):
            if ev == cymongoose.MG_EV_ACCEPT:
                accepted[name] += 1

        return handler

    a = cymongoose.Manager(handler_for("a"))
    b = cymongoose.Manager(handler_for("b"))
    try:
        port = a.listen("tcp://127.0.0.1:0", reuse_port=True).local_addr[1]
        b.listen("tcp://127.0.0.1:%d" % port, reuse_port=True)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10)
                   for _ in range(CONNECTIONS)]
        poll_both(a, b, lambda: accepted["a"] + accepted["b"] == CONNECTIONS)
        assert accepted["a"] > 0 and accepted["b"] > 0, accepted
        for s in clients:
            s.close()
    finally:
        a.close()
        b.close()


def test_two_udp_listeners_share_a_port():
    got = {"a": b"", "b": b""}

    def handler_for(name):
        def handler(conn, ev, data):
            if ev == cymongoose.MG_EV_READ:
                got[name] += conn.recv_data()

        return handler

    a = cymongoose.Manager(handler_for("a"))
    b = cymongoose.Manager(handler_for("b"))
    senders = []
    try:
        port = a.listen("udp://127.0.0.1:0", reuse_port=True).local_addr[1]
        b.listen("udp://127.0.0.1:%d" % port, reuse_port=True)
        for _ in range(CONNECTIONS):  # each from its own port: its own hash
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"x", ("127.0.0.1", port))
            senders.append(s)
        poll_both(a, b, lambda: len(got["a"]) + len(got["b"]) == CONNECTIONS)
        assert got["a"] and got["b"], {k: len(v) for k, v in got.items()}
    finally:
        for s in senders:
            s.close()
        a.close()
        b.close()


@pytest.mark.parametrize("first_reuse", [False, True])
def test_without_reuse_port_the_second_listen_fails(first_reuse):
    with cymongoose.Manager() as a, cymongoose.Manager() as b:
        port = a.listen("http://127.0.0.1:0", reuse_port=first_reuse).local_addr[1]
        url = "http://127.0.0.1:%d" % port
        with pytest.raises(RuntimeError) as e:
            b.listen(url)
        assert str(e.value) == "Failed to listen on '%s': bind: Address already in use" % url
        # Both sides must ask for it: the first one did not, so this fails too.
        if not first_reuse:
            with pytest.raises(RuntimeError, match="Address already in use"):
                b.listen(url, reuse_port=True)


def test_reuse_port_needs_a_bool(mgr):
    for bad in (1, 0, None, "yes"):
        with pytest.raises(TypeError, match=r"listen\(reuse_port=\) takes a bool"):
            mgr.listen("http://127.0.0.1:0", reuse_port=bad)
    assert mgr.connections == ()  # nothing was opened by a refused call


def test_reuse_port_does_not_apply_to_mqtt(mgr):
    for url in ("mqtt://127.0.0.1:0", "mqtts://127.0.0.1:0"):
        with pytest.raises(ValueError, match="does not apply to 'mqtt"):
            mgr.listen(url, reuse_port=True)
    assert mgr.connections == ()
    mgr.listen("mqtt://127.0.0.1:0", reuse_port=False).close()  # the default stays


def test_connect_does_not_take_reuse_port(mgr):
    with pytest.raises(TypeError, match="reuse_port"):
        mgr.connect("http://127.0.0.1:1", reuse_port=True)


def test_reuse_port_with_http_false_is_raw_tcp(mgr):
    lsn = mgr.listen("http://127.0.0.1:0", http=False, reuse_port=True)
    assert lsn.is_listening
    with cymongoose.Manager() as other:
        other.listen("tcp://127.0.0.1:%d" % lsn.local_addr[1], reuse_port=True)
