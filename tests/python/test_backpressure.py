"""Output backpressure through the binding: peers that send but never read
(HTTP clients pipelining requests to serve_dir, WebSocket clients flooding
pings) leave the server's memory bounded and are closed once they have taken
nothing for the send-stall timeout, while a well-behaved client on the same
Manager is answered all along. The C test (tests/c/test_backpressure.c) is the
same, larger."""

import os
import resource
import socket
import struct
import time

import pytest

from cymongoose import (
    MG_EV_CLOSE,
    MG_EV_ERROR,
    MG_EV_HTTP_MSG,
    MG_EV_WS_MSG,
    Manager,
)

PAGE = resource.getpagesize()
# ASan keeps freed memory in quarantine, so RSS says little under it.
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")
STALL_MS = 1500
RSS_BUDGET = 20 * 1024 * 1024
FILE_LEN = 65536


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def small_client(port):
    """A non-blocking client with a small receive buffer, so that what the
    server keeps for it shows in the server, not in the kernel."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


def ping_frame():
    payload = b"p" * 125
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x89, 0x80 | 125) + mask + masked


class Flooder:
    """Writes `block` over and over, never reads."""

    def __init__(self, sock, block):
        self.sock, self.block, self.off, self.dead = sock, block, 0, False

    def step(self):
        for _ in range(8):
            if self.dead:
                return
            try:
                n = self.sock.send(self.block[self.off:])
            except BlockingIOError:
                return
            except OSError:
                self.dead = True
                return
            self.off = (self.off + n) % len(self.block)


def test_nonreaders_are_bounded_and_closed(tmp_path):
    (tmp_path / "big.bin").write_bytes(bytes(i % 251 for i in range(FILE_LEN)))
    state = {"closed": 0, "stalled": 0, "errors": []}
    nonreader_ports = set()

    def handler(conn, ev, data):
        if conn.is_listening:
            return
        port = conn.remote_addr[1] if conn.remote_addr else None
        if ev == MG_EV_HTTP_MSG:
            if data.uri == "/ws":
                conn.ws_upgrade(data)
            else:
                conn.serve_dir(data, str(tmp_path))
        elif ev == MG_EV_WS_MSG:
            conn.ws_send(data.data)
        elif ev == MG_EV_ERROR:
            state["errors"].append(data)
            if port in nonreader_ports and "send stalled for %d ms" % STALL_MS in data:
                state["stalled"] += 1
        elif ev == MG_EV_CLOSE and port in nonreader_ports:
            state["closed"] += 1

    m = Manager(handler, send_stall_ms=STALL_MS)
    try:
        lsn = m.listen("http://127.0.0.1:0")
        port = lsn.local_addr[1]

        normal = socket.create_connection(("127.0.0.1", port))
        normal.setblocking(False)
        request = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
        got = {"answers": 0, "buf": b"", "waiting": False, "since": 0.0}

        def normal_step():
            if not got["waiting"]:
                normal.sendall(request)
                got.update(waiting=True, buf=b"", since=time.monotonic())
            while True:
                try:
                    chunk = normal.recv(1 << 20)
                except BlockingIOError:
                    break
                assert chunk, "the server closed the well-behaved client"
                got["buf"] += chunk
            head, sep, body = got["buf"].partition(b"\r\n\r\n")
            if sep and len(body) >= FILE_LEN:
                assert head.startswith(b"HTTP/1.1 200 OK")
                assert len(body) == FILE_LEN
                got["answers"] += 1
                got["waiting"] = False
            elif time.monotonic() - got["since"] > 20:
                pytest.fail("the well-behaved client got no answer")

        while got["answers"] < 3:
            m.poll(1)
            normal_step()

        flooders = []
        for i in range(2):
            s = small_client(port)
            nonreader_ports.add(s.getsockname()[1])
            path = b"/big.bin" if i == 0 else b"/missing.txt"
            flooders.append(Flooder(s, (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n") * 64))
        for _ in range(3):
            s = small_client(port)
            nonreader_ports.add(s.getsockname()[1])
            s.sendall(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            resp = b""
            deadline = time.monotonic() + 20
            while b"\r\n\r\n" not in resp:
                assert time.monotonic() < deadline, "no 101"
                m.poll(1)
                try:
                    resp += s.recv(4096)
                except BlockingIOError:
                    pass
            assert resp.startswith(b"HTTP/1.1 101 ")
            flooders.append(Flooder(s, ping_frame() * 32))

        base = peak = rss_bytes()
        answers_before = got["answers"]
        deadline = time.monotonic() + 120  # a bound for a broken server only
        while state["closed"] < len(flooders):
            for f in flooders:
                f.step()
            m.poll(1)
            normal_step()
            peak = max(peak, rss_bytes())
            assert UNDER_ASAN or peak - base < RSS_BUDGET, "RSS grew by %d KiB" % ((peak - base) >> 10)
            if time.monotonic() > deadline:
                pytest.fail("%d of %d non-readers closed: %r" % (state["closed"], len(flooders), state["errors"][-3:]))
        print("RSS growth %d KiB, %d answers meanwhile" % ((peak - base) >> 10, got["answers"] - answers_before))
        assert state["stalled"] == len(flooders), state["errors"][:10]
        assert got["answers"] > answers_before
        # Still served after the non-readers are gone.
        target = got["answers"] + 2
        while got["answers"] < target:
            m.poll(1)
            normal_step()
        for f in flooders:
            f.sock.close()
        normal.close()
    finally:
        m.close()
