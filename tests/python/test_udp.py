"""UDP: one datagram per MG_EV_READ; a listener replies to the last sender."""

import socket

from cymongoose import MG_EV_CONNECT, MG_EV_READ

from conftest import Recorder, poll_until


def test_udp_echo_with_raw_socket(mgr):
    reads = []

    def h(conn, ev, data):
        if ev == MG_EV_READ:
            reads.append(data)
            conn.send(conn.recv_data().upper())

    lsn = mgr.listen("udp://127.0.0.1:0", h)
    assert lsn.is_udp and lsn.is_listening
    port = lsn.local_addr[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        replies = []
        for msg in (b"one", b"two", b"three"):
            s.sendto(msg, ("127.0.0.1", port))

        def got_all():
            try:
                replies.append(s.recvfrom(100)[0])
            except BlockingIOError:
                pass
            return len(replies) == 3

        poll_until(mgr, got_all)
        assert replies == [b"ONE", b"TWO", b"THREE"]
        assert reads == [3, 3, 5]  # datagram boundaries kept
        assert lsn.remote_addr == ("127.0.0.1", s.getsockname()[1], False)
    assert lsn.recv_len == 0


def test_udp_client_to_udp_listener(mgr):
    srv = Recorder(echo=True)
    cli = Recorder()
    lsn = mgr.listen("udp://127.0.0.1:0", srv)
    c = mgr.connect("udp://127.0.0.1:%d" % lsn.local_addr[1], cli)
    assert c.is_udp and c.is_client
    poll_until(mgr, lambda: MG_EV_CONNECT in [ev for _, ev, _ in cli.events])
    c.send(b"datagram")
    poll_until(mgr, lambda: cli.received.get(c.id) == b"datagram")
    assert srv.received[lsn.id] == b"datagram"
