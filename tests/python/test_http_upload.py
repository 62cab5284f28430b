"""Request bodies through the binding at the extreme of chunked framing: the
default body limit (8 MiB) sent in 1-byte chunks, six bytes of wire per body
byte, is accepted whole and intact; one byte more is refused with 413."""

import socket

from cymongoose import MG_EV_HTTP_MSG

from conftest import http_server, in_thread

LIMIT = 8 << 20  # the server's default max_body

# 256 one-byte chunks holding the bytes 0..255; the body repeats them.
BLOCK = b"".join(b"1\r\n" + bytes([i]) + b"\r\n" for i in range(256))
HEAD = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def upload(port, wire):
    """Sends the request, returns everything the server sent until it closed or
    answered (the test's requests ask for Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(wire)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk


def serve(bodies):
    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            bodies.append(data.body_bytes)
            conn.reply(200, b"got %d" % len(data.body_bytes), headers={"Connection": "close"})

    return http_server(handler)


def test_body_of_the_limit_in_one_byte_chunks_is_accepted():
    bodies = []
    m, port = serve(bodies)
    try:
        wire = HEAD + BLOCK * (LIMIT // 256) + b"0\r\n\r\n"
        got = in_thread(m, lambda: upload(port, wire), timeout=60)
        assert got.startswith(b"HTTP/1.1 200 "), got[:200]
        assert got.endswith(b"got %d" % LIMIT)
        assert len(bodies) == 1
        assert bodies[0] == bytes(range(256)) * (LIMIT // 256)
    finally:
        m.close()


def test_one_byte_over_the_limit_in_one_byte_chunks_is_413():
    bodies = []
    m, port = serve(bodies)
    try:
        # The last byte goes without its CRLF, so nothing is left unread when the
        # server refuses and closes (a reset could lose the answer).
        wire = HEAD + BLOCK * (LIMIT // 256) + b"1\r\nX"
        got = in_thread(m, lambda: upload(port, wire), timeout=60)
        assert got.startswith(b"HTTP/1.1 413 "), got[:200]
        assert bodies == []
    finally:
        m.close()
